//! ssh-ca issuance benchmark: N user certificates issued by one `ssh-ca sign` process each, by
//! one `ssh-keygen -s` process each, and by one `ssh-ca sign` run with N keys (batch), in the
//! same run with the same key types (Ed25519 CA and subject).
//!
//! Run: `cargo bench --bench cabench` (`BENCH_N=1000` for a quicker run; default 10000).

mod common;

use common::{Row, env_n, loadavg, print_table};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const SSH_CA: &str = env!("CARGO_BIN_EXE_ssh-ca");

fn ok(cmd: &mut Command) {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ssh_ca(dir: &Path) -> Command {
    let mut c = Command::new(SSH_CA);
    c.env("SSH_CA_DIR", dir.join("ca")).current_dir(dir);
    c
}

/// Seconds one run of `cmd` takes (asserting it succeeds).
fn timed(cmd: &mut Command) -> f64 {
    let t0 = Instant::now();
    ok(cmd);
    t0.elapsed().as_secs_f64()
}

fn main() {
    let n = env_n("BENCH_N", 10_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    println!(
        "# cabench: {n} Ed25519 user certificates per method; loadavg at start {}",
        loadavg()
    );
    ok(ssh_ca(dir).args(["init"]));
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.join("id")));
    let v = "-5m:+1h";
    // Every certificate is for its own key file, as when a CA issues for many users; signing
    // the same file over and over would measure the filesystem's handling of replaced inodes
    // (ssh-ca writes a temporary file and renames it over the old certificate; on an ext4
    // without a journal each freed inode slows the next allocations for a minute or more).
    let public = std::fs::read(dir.join("id.pub")).expect("pub");
    let key_files = |sub: &str| -> Vec<String> {
        std::fs::create_dir_all(dir.join(sub)).expect("dir");
        (0..n)
            .map(|i| {
                let name = format!("{sub}/k{i}.pub");
                std::fs::write(dir.join(&name), &public).expect("copy");
                name
            })
            .collect()
    };
    let single_keys = key_files("single");
    let keygen_keys = key_files("keygen");
    let names = key_files("batch");

    let ca_key = dir.join("ca/user_ca");
    let single = |i: usize| {
        let mut c = ssh_ca(dir);
        c.args([
            "sign",
            "--user",
            "-I",
            &format!("single-{i}"),
            "-n",
            "alice",
            "-V",
            v,
        ])
        .arg(&single_keys[i]);
        c
    };
    let keygen = |i: usize| {
        let mut c = Command::new("ssh-keygen");
        c.current_dir(dir).args(["-q", "-s"]).arg(&ca_key);
        c.args(["-I", &format!("kg-{i}"), "-n", "alice", "-V", v])
            .args(["-z", &(1_000_000 + i).to_string()])
            .arg(&keygen_keys[i]);
        c
    };
    // Interleaved, one of each per step, so a change in the machine's load hits both alike.
    let (mut single_s, mut keygen_s) = (0.0, 0.0);
    for i in 0..n as usize {
        single_s += timed(&mut single(i));
        keygen_s += timed(&mut keygen(i));
    }
    let (single, keygen) = (single_s * 1e6 / n as f64, keygen_s * 1e6 / n as f64);
    let (batch, floor) = batch_and_floor(dir, &dir.join("ca"), &names, v);
    // The same batch with the key and certificate files on tmpfs (the store stays on disk):
    // this machine's root filesystem is an ext4 without a journal, where creating a file right
    // after many were deleted costs from 30 µs to over 500 µs, so the disk figures swing with
    // whatever ran before; tmpfs shows what ssh-ca itself costs.
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let (batch_tmpfs, floor_tmpfs) = match &shm {
        Some(t) => {
            let copied: Vec<String> = names
                .iter()
                .map(|name| {
                    let to = t.path().join(name);
                    std::fs::create_dir_all(to.parent().expect("parent")).expect("dir");
                    std::fs::copy(dir.join(name), &to).expect("copy");
                    to.to_string_lossy().into_owned()
                })
                .collect();
            batch_and_floor(t.path(), &dir.join("ca"), &copied, v)
        }
        None => (f64::NAN, f64::NAN),
    };

    print_table(
        &format!("µs per certificate (loadavg {})", loadavg()),
        &["method", "µs/cert", "vs ssh-keygen -s"],
        &[
            Row {
                name: "ssh-keygen -s, one process per cert".into(),
                cols: vec![format!("{keygen:.0}"), "1.00".into()],
            },
            Row {
                name: "ssh-ca sign, one process per cert".into(),
                cols: vec![format!("{single:.0}"), format!("{:.2}", single / keygen)],
            },
            Row {
                name: "ssh-ca sign, one run for all".into(),
                cols: vec![format!("{batch:.0}"), format!("{:.3}", batch / keygen)],
            },
            Row {
                name: "(floor: writing N cert-sized files, nothing else)".into(),
                cols: vec![format!("{floor:.0}"), format!("{:.3}", floor / keygen)],
            },
            Row {
                name: "ssh-ca sign, one run for all, files on tmpfs".into(),
                cols: vec![
                    format!("{batch_tmpfs:.0}"),
                    format!("{:.3}", batch_tmpfs / keygen),
                ],
            },
            Row {
                name: "(floor on tmpfs)".into(),
                cols: vec![
                    format!("{floor_tmpfs:.0}"),
                    format!("{:.3}", floor_tmpfs / keygen),
                ],
            },
        ],
    );
    println!(
        "\nRESULT keygen_us={keygen:.0} ssh_ca_single_us={single:.0} ssh_ca_batch_us={batch:.0} file_floor_us={floor:.0} single_vs_keygen={:.2} batch_speedup={:.1} batch_tmpfs_us={batch_tmpfs:.0} batch_speedup_tmpfs={:.1} loadavg={}",
        single / keygen,
        keygen / batch,
        keygen / batch_tmpfs,
        loadavg()
    );
}

/// Microseconds per certificate for one `ssh-ca sign` of all `keys` (run in `work`, with the CA
/// in `ca`), and for only writing as many certificate-sized files there (temporary file and
/// rename, as ssh-ca does), the floor of any batch on that filesystem.
fn batch_and_floor(work: &Path, ca: &Path, keys: &[String], v: &str) -> (f64, f64) {
    let n = keys.len() as f64;
    let t0 = Instant::now();
    let mut cmd = Command::new(SSH_CA);
    cmd.env("SSH_CA_DIR", ca).current_dir(work);
    ok(cmd
        .args(["sign", "--user", "-I", "batch", "-n", "alice", "-V", v])
        .args(keys));
    let batch = t0.elapsed().as_secs_f64() * 1e6 / n;
    let floor_dir = work.join("floor");
    std::fs::create_dir_all(&floor_dir).expect("dir");
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = (0..keys.len())
        .map(|i| (floor_dir.join(format!("k{i}-cert.pub")), vec![b'x'; 600]))
        .collect();
    let t0 = Instant::now();
    bitrot::ca::keys::write_all_atomic(&files, 0o644).expect("floor files");
    (batch, t0.elapsed().as_secs_f64() * 1e6 / n)
}
