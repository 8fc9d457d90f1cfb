//! The git tools under git's own environment variables. `git --git-dir=X surgery` exports
//! GIT_DIR=X to git-surgery, git hooks run with GIT_DIR set, and some users export GIT_DIR and
//! GIT_WORK_TREE for a bare dotfiles repository: git-surgery must act on the repository they
//! name, as git does, and neither tool may let them redirect a git child process that works on
//! another repository (a conversion's DEST, a temporary repository).

use crate::surgery::{Lab, git};
use crate::svn_migrate::sh;
use std::path::Path;
use std::process::{Command, Output};

const SURGERY: &str = env!("CARGO_BIN_EXE_git-surgery");
const MIGRATE: &str = env!("CARGO_BIN_EXE_git-svn-migrate");

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A healthy repository unrelated to the lab, to run from.
fn bystander(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("bystander");
    sh(&format!(
        "git init -q {p} && git -C {p} -c user.name=b -c user.email=b@b commit -q --allow-empty -m b",
        p = p.display()
    ));
    p
}

/// Damage the lab: a loose commit emptied (scan exits 1, repair recovers it from origin).
fn damage(lab: &Lab) {
    lab.sh(r#"c=$(git rev-parse HEAD); f=$(objpath "$c"); wr "$f"; : >"$f""#);
}

fn surgery_in(cwd: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = Command::new(SURGERY);
    c.current_dir(cwd).args(args).env_remove("BITROT_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("git-surgery runs");
    eprintln!("$ {env:?} git-surgery {args:?}\n{}", text(&o));
    o
}

#[test]
fn git_dir_names_the_repository_scanned_and_repaired_as_git_does() {
    let lab = Lab::new();
    damage(&lab);
    let tmp = tempfile::tempdir().expect("tmp");
    let other = bystander(tmp.path());
    let dot_git = lab.repo.join(".git");

    // From the bystander's work tree: without GIT_DIR its own (healthy) repository...
    assert_eq!(surgery_in(&other, &[], &["scan"]).status.code(), Some(0));
    // ...with GIT_DIR the lab's, as `git fsck` would.
    let o = surgery_in(&other, &[("GIT_DIR", &dot_git)], &["scan"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Relative to -C, as git resolves it after -C.
    let parent = lab.repo.parent().expect("parent");
    let o = surgery_in(
        &other,
        &[("GIT_DIR", Path::new("repo/.git"))],
        &["-C", parent.to_str().expect("utf-8"), "scan"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Through git itself: `git --git-dir=... surgery scan`.
    let bin_dir = Path::new(SURGERY).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("git")
        .arg("--git-dir")
        .arg(&dot_git)
        .args(["surgery", "scan"])
        .current_dir(&other)
        .env("PATH", &path)
        .output()
        .expect("git runs");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Repair acts on the lab and leaves the bystander byte for byte as it was.
    let before = snapshot(&other);
    let o = surgery_in(&other, &[("GIT_DIR", &dot_git)], &["repair"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(lab.fsck_ok());
    assert!(before == snapshot(&other), "the bystander was changed");
}

#[test]
fn a_git_dir_that_is_no_repository_is_named_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let other = bystander(tmp.path());
    let nothing = tmp.path().join("nothing");
    std::fs::create_dir(&nothing).expect("mkdir");
    let before = snapshot(&other);
    let o = surgery_in(&other, &[("GIT_DIR", &nothing)], &["repair"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("GIT_DIR"), "{}", text(&o));
    assert!(text(&o).contains(&nothing.display().to_string()));
    assert!(before == snapshot(&other));
}

#[test]
fn git_work_tree_is_the_top_a_relative_remote_is_resolved_from_as_git_fetch_does() {
    let lab = Lab::new();
    // `url = ../remote.git`: git resolves it from the top of the work tree.
    git(&lab.repo, &["remote", "set-url", "origin", "../remote.git"]);
    damage(&lab);
    // Run from a subdirectory of the work tree: git goes up to the top of GIT_WORK_TREE and
    // finds ../remote.git from there; taking the subdirectory for the top would not.
    let other = lab.repo.join("sub");
    std::fs::create_dir(&other).expect("mkdir");
    let env = [
        ("GIT_DIR", lab.repo.join(".git")),
        ("GIT_WORK_TREE", lab.repo.clone()),
    ];
    // The oracle: git itself reaches that remote under this environment (a fetch into the
    // damaged store would fail on the damage itself).
    let fetch = Command::new("git")
        .args(["ls-remote", "-q", "origin"])
        .current_dir(&other)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .expect("git fetch");
    assert!(fetch.status.success(), "{}", text(&fetch));
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let o = surgery_in(&other, &env, &["repair"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(lab.fsck_ok());
}

#[test]
fn git_svn_migrate_ignores_a_git_dir_pointing_elsewhere() {
    let tmp = tempfile::tempdir().expect("tmp");
    let victim = bystander(tmp.path());
    let svn = tmp.path().join("svn");
    sh(&format!(
        "svnadmin create {r} && svn mkdir -q -m layout file://{r}/trunk file://{r}/branches file://{r}/tags && \
         svn checkout -q file://{r}/trunk {w} && echo hello > {w}/a.txt && svn add -q {w}/a.txt && \
         svn commit -q -m one {w}",
        r = svn.display(),
        w = tmp.path().join("wc").display()
    ));
    let before = snapshot(&victim);
    let dest = tmp.path().join("dest");
    for (wt, args) in [(false, vec!["--bare"]), (true, vec![])] {
        let _ = std::fs::remove_dir_all(&dest);
        let mut c = Command::new(MIGRATE);
        c.arg(&svn)
            .arg(&dest)
            .args(&args)
            .current_dir(&victim)
            .env("GIT_DIR", victim.join(".git"))
            .env("GIT_INDEX_FILE", victim.join(".git/index"));
        if wt {
            c.env("GIT_WORK_TREE", &victim);
        }
        let o = c.output().expect("runs");
        assert!(o.status.success(), "{}", text(&o));
        let git_dir = if dest.join(".git").is_dir() {
            dest.join(".git")
        } else {
            dest.clone()
        };
        let log = git(&git_dir, &["log", "--format=%s", "main"]);
        assert!(log.contains("one"), "DEST holds the conversion: {log}");
        assert!(
            before == snapshot(&victim),
            "GIT_DIR's repository was changed"
        );
    }
}

fn snapshot(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| {
            let bytes = if e.file_type().is_file() {
                std::fs::read(e.path()).unwrap_or_default()
            } else {
                Vec::new()
            };
            (e.path().to_path_buf(), bytes)
        })
        .collect();
    v.sort();
    v
}
