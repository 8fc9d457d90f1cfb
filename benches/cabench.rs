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

/// Microseconds per certificate for `n` runs of `make`.
fn per_cert(n: u64, mut make: impl FnMut(u64) -> Command) -> f64 {
    let t0 = Instant::now();
    for i in 0..n {
        ok(&mut make(i));
    }
    t0.elapsed().as_secs_f64() * 1e6 / n as f64
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

    let single = per_cert(n, |i| {
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
            &single_keys[i as usize],
        ]);
        c
    });
    let ca_key = dir.join("ca/user_ca");
    let keygen = per_cert(n, |i| {
        let mut c = Command::new("ssh-keygen");
        c.current_dir(dir).args(["-q", "-s"]).arg(&ca_key);
        c.args([
            "-I",
            &format!("kg-{i}"),
            "-n",
            "alice",
            "-V",
            v,
            "-z",
            &(1_000_000 + i).to_string(),
            &keygen_keys[i as usize],
        ]);
        c
    });
    let t0 = Instant::now();
    ok(ssh_ca(dir)
        .args(["sign", "--user", "-I", "batch", "-n", "alice", "-V", v])
        .args(&names));
    let batch = t0.elapsed().as_secs_f64() * 1e6 / n as f64;

    // The floor of any batch on this filesystem: creating the N certificate files alone
    // (temporary file and rename), with no signing and no store.
    let floor_dir = dir.join("floor");
    std::fs::create_dir_all(&floor_dir).expect("dir");
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = (0..n)
        .map(|i| (floor_dir.join(format!("k{i}-cert.pub")), vec![b'x'; 600]))
        .collect();
    let t0 = Instant::now();
    bitrot::ca::keys::write_all_atomic(&files, 0o644).expect("floor files");
    let floor = t0.elapsed().as_secs_f64() * 1e6 / n as f64;

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
        ],
    );
    println!(
        "\nRESULT keygen_us={keygen:.0} ssh_ca_single_us={single:.0} ssh_ca_batch_us={batch:.0} file_floor_us={floor:.0} single_vs_keygen={:.2} batch_speedup={:.1} loadavg={}",
        single / keygen,
        keygen / batch,
        loadavg()
    );
}
