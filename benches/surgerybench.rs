//! git-surgery benchmark: `git surgery scan` against `git fsck --full` on a generated repository
//! of 100,000+ objects (or on `BENCH_REPO=<path>`), and `git surgery repair` against Debian's
//! `git-repair` on copies of it with one flipped byte in the pack and ten damaged loose objects,
//! both recovering from the same healthy `--no-local` remote. Wall time and peak RSS of each
//! child process are measured in the same run.
//!
//! Run: `cargo bench --bench surgerybench` (`BENCH_COMMITS=2000` for a smaller repository).

mod common;

use common::{Row, env_n, loadavg, measure, print_table};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SURGERY: &str = env!("CARGO_BIN_EXE_git-surgery");

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git starts");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git starts");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A repository with `commits` commits touching six files each (blobs, nested trees, deltas).
fn generate(dir: &Path, commits: u64) -> PathBuf {
    let repo = dir.join("gen");
    git(
        dir,
        &["init", "-q", "-b", "main", repo.to_str().expect("utf-8")],
    );
    let mut fi = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    let mut w = std::io::BufWriter::new(fi.stdin.take().expect("stdin"));
    for c in 0..commits {
        let msg = format!("commit {c}\n");
        write!(w, "commit refs/heads/main\nmark :{}\ncommitter Bench <bench@example.invalid> {} +0000\ndata {}\n{msg}", c + 1, 1_700_000_000 + c, msg.len()).expect("write");
        if c > 0 {
            writeln!(w, "from :{c}").expect("write");
        }
        for k in 0..6 {
            let body: String = (0..20)
                .map(|l| {
                    format!(
                        "dir {} file {k} line {l} rev {}\n",
                        (c + k) % 40,
                        if l == c % 20 { c } else { 0 }
                    )
                })
                .collect();
            write!(
                w,
                "M 100644 inline d{}/s{}/f{k}.txt\ndata {}\n{body}\n",
                (c * 7 + k) % 40,
                k % 3,
                body.len()
            )
            .expect("write");
        }
    }
    drop(w);
    assert!(fi.wait().expect("fast-import").success());
    git(&repo, &["repack", "-adq"]);
    git(&repo, &["commit-graph", "write", "--reachable"]);
    repo
}

/// Ten loose commits on top, then a bare `--no-local` remote of everything.
fn add_loose_and_remote(repo: &Path, dir: &Path) -> PathBuf {
    for i in 0..10 {
        std::fs::write(repo.join(format!("loose{i}.txt")), format!("loose {i}\n")).expect("write");
        git(repo, &["add", "-A"]);
        git(
            repo,
            &[
                "-c",
                "user.name=B",
                "-c",
                "user.email=b@example.invalid",
                "commit",
                "-qm",
                &format!("loose {i}"),
            ],
        );
    }
    let remote = dir.join("remote.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--no-local",
            "--bare",
            repo.to_str().expect("utf-8"),
            remote.to_str().expect("utf-8"),
        ],
    );
    git(
        repo,
        &["remote", "add", "origin", remote.to_str().expect("utf-8")],
    );
    git(repo, &["fetch", "-q", "origin"]);
    remote
}

/// A copy of `repo` with one zeroed byte in the middle of its pack and the ten loose blobs
/// bit-flipped.
fn damaged_copy(repo: &Path, to: &Path) {
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(repo)
            .arg(to)
            .status()
            .expect("cp")
            .success()
    );
    let packs: Vec<PathBuf> = std::fs::read_dir(to.join(".git/objects/pack"))
        .expect("pack dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    let biggest = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a pack");
    flip(
        biggest,
        std::fs::metadata(biggest).expect("meta").len() / 2,
        0,
    );
    for i in 0..10 {
        let id = git_out(to, &["rev-parse", &format!("HEAD:loose{i}.txt")]);
        flip(
            &to.join(".git/objects").join(&id[..2]).join(&id[2..]),
            5,
            0xff,
        );
    }
}

fn flip(path: &Path, at: u64, byte: u8) {
    use std::os::unix::fs::{FileExt, PermissionsExt};
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.write_at(&[byte], at).expect("write");
}

fn healthy(repo: &Path) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["fsck", "--full", "--strict", "--no-dangling"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let load0 = loadavg();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (repo, generated) = match std::env::var_os("BENCH_REPO") {
        Some(p) => (PathBuf::from(p), false),
        None => (generate(tmp.path(), env_n("BENCH_COMMITS", 8000)), true),
    };
    let objects = git_out(&repo, &["count-objects", "-v"]);
    let n: u64 = objects
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| *k == "count" || *k == "in-pack")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    let runs = env_n("BENCH_RUNS", 3);
    let mut rows = Vec::new();
    let mut best = |name: &str, mk: &dyn Fn() -> Command| {
        let mut b = (f64::MAX, 0.0, 0);
        for _ in 0..runs {
            let r = measure(&mut mk());
            if r.0 < b.0 {
                b = r;
            }
        }
        rows.push(Row {
            name: name.into(),
            cols: vec![
                format!("{:.2}", b.0),
                format!("{:.0}", b.1),
                b.2.to_string(),
            ],
        });
        b
    };
    let ours = best("git surgery scan", &|| {
        let mut c = Command::new(SURGERY);
        c.arg("-C").arg(&repo).arg("scan");
        c
    });
    let fsck = best("git fsck --full", &|| {
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(&repo)
            .args(["fsck", "--full", "--no-progress"]);
        c
    });
    print_table(
        &format!("scan vs fsck on {n} objects (best of {runs})"),
        &["tool", "wall s", "peak RSS MiB", "exit"],
        &rows,
    );
    let mut line = format!(
        "RESULT objects={n} scan_s={:.2} fsck_s={:.2} scan_vs_fsck={:.2} scan_rss_mib={:.0} fsck_rss_mib={:.0}",
        ours.0,
        fsck.0,
        ours.0 / fsck.0,
        ours.1,
        fsck.1
    );
    if generated && std::env::var_os("BENCH_SKIP_REPAIR").is_none() {
        let remote = add_loose_and_remote(&repo, tmp.path());
        let _ = remote;
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        damaged_copy(&repo, &a);
        damaged_copy(&repo, &b);
        let s = measure(Command::new(SURGERY).arg("-C").arg(&a).arg("repair"));
        let g = measure(Command::new("git-repair").current_dir(&b));
        let rows = vec![
            Row {
                name: "git surgery repair".into(),
                cols: vec![
                    format!("{:.2}", s.0),
                    format!("{:.0}", s.1),
                    s.2.to_string(),
                    healthy(&a).to_string(),
                ],
            },
            Row {
                name: "git-repair".into(),
                cols: vec![
                    format!("{:.2}", g.0),
                    format!("{:.0}", g.1),
                    g.2.to_string(),
                    healthy(&b).to_string(),
                ],
            },
        ];
        print_table(
            "repair: one zeroed pack byte + ten bit-flipped loose blobs",
            &["tool", "wall s", "peak RSS MiB", "exit", "fsck clean after"],
            &rows,
        );
        line += &format!(
            " repair_s={:.2} git_repair_s={:.2} repair_speedup={:.1} repair_healthy={} git_repair_healthy={}",
            s.0,
            g.0,
            g.0 / s.0,
            healthy(&a),
            healthy(&b)
        );
    }
    println!("\nload average before: {load0}; after: {}", loadavg());
    println!("{line}");
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("kept {}", tmp.keep().display());
    }
}
