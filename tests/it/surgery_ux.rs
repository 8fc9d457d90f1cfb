//! What a git-surgery user reads when things go wrong: exit 2 names the next commands to try
//! (and following one of them works), and with --json a failure is JSON on stdout too.

use crate::surgery::{Lab, git};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_git-surgery");

/// A commit object with HEAD's tree and parent `parent`, made in `dir` (no ref names it).
fn commit_tree(dir: &std::path::Path, parent: &str, msg: &str) -> String {
    let args = [
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit-tree",
        "HEAD^{tree}",
    ];
    let mut all = args.to_vec();
    all.extend(["-p", parent, "-m", msg]);
    git(dir, &all).trim().to_string()
}

#[test]
fn exit_2_names_the_next_commands_and_the_suggested_reference_heals() {
    let lab = Lab::new();
    // No remote to recover from, and the branch tip's commit gone.
    git(&lab.repo, &["remote", "remove", "origin"]);
    lab.sh(r#"c=$(git rev-parse HEAD); rm -f "$(objpath "$c")""#);

    let o = lab.surgery(&["repair"]);
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("next, try:"), "{out}");
    for hint in [
        "--remote",
        "--reference",
        "--force",
        "--force --reset-broken",
    ] {
        assert!(
            out.contains(&format!("git surgery repair {hint}")),
            "no {hint} hint: {out}"
        );
    }

    let o = lab.surgery(&["repair", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let next = v["next"].as_array().expect("next is a list");
    assert!(
        next.iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("--reference")))
    );

    // Following the --reference hint with a healthy copy heals the repository.
    let o = lab.surgery(&["repair", "--reference", lab.remote.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0));
    assert!(lab.fsck_ok());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("next, try:"));
}

#[test]
fn with_json_a_failure_is_json_on_stdout_too() {
    let d = tempfile::tempdir().expect("tmp");
    for cmd in ["scan", "repair"] {
        let o = Command::new(BIN)
            .arg("-C")
            .arg(d.path())
            .args([cmd, "--json"])
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(3));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
        assert_eq!(v["exit"], 3);
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("not a git repository")),
            "{v}"
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("not a git repository"));
    }
}

/// A linked worktree's own refs (refs/worktree, refs/bisect) are refs like any other: a
/// garbage one is found and restored from that worktree's reflog, and an object only they
/// reach is held to be needed, as `git fsck` holds it.
#[test]
fn a_linked_worktrees_own_refs_are_scanned_and_restored_from_its_reflogs() {
    let lab = Lab::new();
    let wt = lab.repo.parent().expect("parent").join("wt");
    let wt_s = wt.to_str().expect("utf-8");
    git(&lab.repo, &["config", "core.logAllRefUpdates", "always"]);
    git(&lab.repo, &["worktree", "add", "-q", wt_s, "side"]);
    let id = commit_tree(&wt, "HEAD", "only the worktree's refs reach this");
    for r in ["refs/worktree/keep", "refs/bisect/bad"] {
        git(&wt, &["update-ref", r, &id]);
    }
    assert_eq!(lab.surgery(&["scan"]).status.code(), Some(0));

    // A ref file holding garbage, in the worktree's private directory.
    let file = lab.repo.join(".git/worktrees/wt/refs/worktree/keep");
    assert!(file.is_file(), "git keeps it there");
    std::fs::write(&file, "garbage\n").expect("write");
    let o = lab.surgery(&["scan"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ref-corrupt"));
    let o = lab.surgery(&["repair"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(git(&wt, &["rev-parse", "refs/worktree/keep"]).trim(), id);
    assert!(lab.fsck_ok());

    // The object only those refs reach, gone: git fsck says so, and so must scan.
    lab.sh(&format!(r#"rm -f "$(objpath {id})""#));
    assert!(!lab.fsck_ok(), "git fsck holds worktree refs as roots");
    let o = lab.surgery(&["scan"]);
    assert_eq!(o.status.code(), Some(1), "scan agrees");
}

/// `--force` ends healthy when what no source has is reached from a linked worktree: its own
/// ref goes into the quarantine with its reflog, its detached HEAD goes back to the newest
/// entry of its reflog whose history is whole, and its reflogs lose the broken entries.
#[test]
fn force_ends_healthy_when_a_linked_worktree_reaches_lost_history() {
    let lab = Lab::new();
    let wt = lab.repo.parent().expect("parent").join("wt");
    git(&lab.repo, &["config", "core.logAllRefUpdates", "always"]);
    git(
        &lab.repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            wt.to_str().expect("utf-8"),
            "HEAD",
        ],
    );
    let commit = |parent: &str, msg: &str| commit_tree(&wt, parent, msg);
    let base = git(&wt, &["rev-parse", "HEAD"]).trim().to_string();
    let x1 = commit(&base, "x1");
    let x2 = commit(&x1, "x2");
    let x3 = commit(&x2, "x3");
    git(&wt, &["checkout", "-q", "--detach", &x1]);
    git(&wt, &["checkout", "-q", "--detach", &x3]);
    git(&wt, &["update-ref", "refs/worktree/mine", &x3]);
    // x2 exists nowhere else: x3's history is lost.
    lab.sh(&format!(r#"rm -f "$(objpath {x2})""#));
    assert_eq!(lab.surgery(&["repair"]).status.code(), Some(2));
    let o = lab.surgery(&["repair", "--force"]);
    assert_eq!(o.status.code(), Some(0), "--force ends healthy");
    assert!(lab.fsck_ok());
    assert_eq!(
        git(&wt, &["rev-parse", "HEAD"]).trim(),
        x1,
        "the worktree's HEAD is back at the newest whole entry of its reflog"
    );
    assert!(
        !lab.repo
            .join(".git/worktrees/wt/refs/worktree/mine")
            .exists()
    );
    let list = String::from_utf8_lossy(&lab.surgery(&["quarantine", "list", "--json"]).stdout)
        .into_owned();
    assert!(list.contains("worktrees/wt/refs/worktree/mine"), "{list}");
    assert!(list.contains("worktrees/wt/HEAD"), "{list}");
}

/// On a terminal every phase is named while it runs and reported with its time when done
/// (through `script`, a real pseudo-terminal); piped, stderr gets none of it.
#[test]
fn on_a_terminal_every_phase_is_named_and_timed() {
    let lab = Lab::new();
    // a damaged pack (salvage) and an emptied loose object (fetch from origin)
    lab.sh(r#"P=$(pack); flip $P $(( $(stat -c %s $P) / 2 )) '\x00'
B=$(git rev-parse HEAD:l23.txt); F=$(objpath $B); wr $F; : > $F"#);
    let cmd = format!("{BIN} -C {} repair", lab.repo.display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("BITROT_LOG")
        .output()
        .expect("script");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    for phase in [
        "salvage",
        "quarantine",
        "refs",
        "fetch",
        "rebuild",
        "verify",
    ] {
        assert!(
            screen.contains(&format!("git surgery: {phase} done (")),
            "no {phase} line on the terminal: {screen}"
        );
    }
    assert!(lab.fsck_ok());

    let lab = Lab::new();
    lab.sh(r#"B=$(git rev-parse HEAD:l23.txt); F=$(objpath $B); wr $F; : > $F"#);
    let o = lab.surgery(&["repair"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stderr).contains(" done ("));
}
