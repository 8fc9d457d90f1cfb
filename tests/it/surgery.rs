//! git-surgery against real repositories: each corruption scenario of research/git-surgery.md §6
//! is made with shell commands on a repository built by tests/fixtures/surgery-base.sh, whose
//! healthy remote is a `--no-local` clone (no shared hard links).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_git-surgery");

/// Shell helpers every scenario script can use, run in the repository's work tree.
const HELPERS: &str = r#"
set -euo pipefail
objpath() { echo ".git/objects/${1:0:2}/${1:2}"; }
wr() { chmod u+w "$@"; }
flip() { wr "$1"; printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
pack() { ls .git/objects/pack/*.pack | head -1; }
"#;

/// A copy of the base repository and its remote in a temporary directory.
pub struct Lab {
    _dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub remote: PathBuf,
}

fn template() -> &'static Path {
    static T: OnceLock<tempfile::TempDir> = OnceLock::new();
    T.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/surgery-base.sh");
        let o = Command::new("bash")
            .arg(script)
            .arg(d.path().join("repo"))
            .arg(d.path().join("remote.git"))
            .output()
            .expect("bash runs");
        assert!(
            o.status.success(),
            "fixture script failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        d
    })
    .path()
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Command::new("cp")
            .arg("-a")
            .arg(template().join("repo"))
            .arg(template().join("remote.git"))
            .arg(dir.path())
            .output()
            .expect("cp");
        assert!(o.status.success());
        let repo = dir.path().join("repo");
        let remote = dir.path().join("remote.git");
        git(
            &repo,
            &[
                "remote",
                "set-url",
                "origin",
                remote.to_str().expect("utf-8 path"),
            ],
        );
        Lab {
            _dir: dir,
            repo,
            remote,
        }
    }

    /// Runs a scenario script in the work tree.
    pub fn sh(&self, script: &str) {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("{HELPERS}\n{script}"))
            .current_dir(&self.repo)
            .output()
            .expect("bash");
        assert!(
            o.status.success(),
            "scenario script failed: {}\n{script}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn surgery(&self, args: &[&str]) -> Output {
        let o = Command::new(BIN)
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            .env_remove("BITROT_LOG")
            .output()
            .expect("git-surgery runs");
        eprintln!(
            "$ git surgery {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub fn fsck_ok(&self) -> bool {
        let o = Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["fsck", "--full", "--strict", "--no-dangling"])
            .output()
            .expect("git fsck");
        if !o.status.success() {
            eprintln!("fsck: {}", String::from_utf8_lossy(&o.stderr));
        }
        o.status.success()
    }

    /// Every ref of the remote names a commit whose whole history is readable here.
    pub fn remote_refs_readable(&self) -> bool {
        let refs = git(&self.remote, &["for-each-ref", "--format=%(objectname)"]);
        refs.lines().all(|id| {
            Command::new("git")
                .arg("-C")
                .arg(&self.repo)
                .args(["rev-list", "--objects", "--quiet", id])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Every file under .git (path → bytes and mode), for "changed nothing" checks.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        snapshot(&self.repo.join(".git"), |_| true)
    }

    /// Every file of the working tree outside .git.
    pub fn work_tree(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        snapshot(&self.repo, |e| e.file_name() != ".git")
    }
}

fn snapshot(
    root: &Path,
    keep: impl FnMut(&walkdir::DirEntry) -> bool,
) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(keep)
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.metadata().expect("metadata").permissions().mode();
            let bytes = if e.file_type().is_file() {
                std::fs::read(e.path()).expect("read")
            } else {
                Vec::new()
            };
            (e.path().to_path_buf(), (bytes, m))
        })
        .collect()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Clones the lab's remote with `--filter=blob:none` plus `extra` into `name`, and scans it.
fn partial_clone_scan(lab: &Lab, name: &str, extra: &str) -> Output {
    git(&lab.remote, &["config", "uploadpack.allowFilter", "true"]);
    let p = lab.repo.parent().expect("parent").join(name);
    let url = format!("file://{}", lab.remote.display());
    let o = Command::new("git")
        .args(["clone", "-q", "--filter=blob:none", extra, &url])
        .arg(&p)
        .output()
        .expect("clone");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Command::new(BIN)
        .arg("-C")
        .arg(&p)
        .arg("scan")
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Scan finds `code`, a dry run changes nothing, repair ends healthy with fsck agreeing and
/// every remote ref readable.
fn detect_and_repair(script: &str, code: &str) {
    let lab = Lab::new();
    lab.sh(script);
    let scan = lab.surgery(&["scan"]);
    assert_eq!(scan.status.code(), Some(1), "scan must report damage");
    assert!(
        stdout(&scan).contains(code),
        "scan must name the damage as {code}"
    );
    let json = lab.surgery(&["scan", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("scan --json is JSON");
    assert_eq!(v["healthy"], false);
    assert!(
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["code"] == code)
    );
    let before = lab.snapshot();
    let dry = lab.surgery(&["repair", "--dry-run"]);
    assert_eq!(
        dry.status.code(),
        Some(1),
        "a dry run reports damage with exit 1"
    );
    assert!(
        before == lab.snapshot(),
        "--dry-run must leave every byte of .git unchanged"
    );
    let work_tree = lab.work_tree();
    let rep = lab.surgery(&["repair"]);
    assert_eq!(rep.status.code(), Some(0), "repair must end healthy");
    assert!(
        work_tree == lab.work_tree(),
        "repair never touches the working tree"
    );
    assert!(lab.fsck_ok(), "git fsck --full --strict must agree");
    assert!(
        lab.remote_refs_readable(),
        "every ref of the remote must be readable after repair"
    );
    assert_eq!(
        lab.surgery(&["scan"]).status.code(),
        Some(0),
        "a scan after repair is clean"
    );
}

macro_rules! scenario {
    ($name:ident, $code:expr, $script:expr) => {
        #[test]
        fn $name() {
            detect_and_repair($script, $code);
        }
    };
}

scenario!(
    s01_empty_loose_object,
    "loose-corrupt",
    r#"B=$(git rev-parse HEAD:l23.txt); F=$(objpath $B); wr $F; : > $F"#
);
scenario!(
    s02_nul_filled_loose_object,
    "loose-corrupt",
    r#"B=$(git rev-parse HEAD:l23.txt); F=$(objpath $B); wr $F; head -c $(stat -c %s $F) /dev/zero > $F"#
);
scenario!(
    s03_bit_flip_in_loose_object,
    "loose-corrupt",
    r#"B=$(git rev-parse HEAD:l23.txt); flip $(objpath $B) 5 '\xff'"#
);
scenario!(
    s04_trailing_garbage_after_loose_object,
    "loose-corrupt",
    r#"B=$(git rev-parse HEAD:l23.txt); F=$(objpath $B); wr $F; head -c 3000 /dev/zero >> $F"#
);
scenario!(
    s05_valid_object_under_wrong_name,
    "loose-corrupt",
    r#"B=$(git rev-parse HEAD:l23.txt); F=$(objpath $B); wr $F; cp $(objpath $(git rev-parse HEAD:l22.txt)) $F"#
);
scenario!(
    s06_missing_loose_commit_at_branch_tip,
    "missing-object",
    r#"rm -f $(objpath $(git rev-parse HEAD))"#
);
scenario!(
    s07_truncated_pack,
    "pack-corrupt",
    r#"P=$(pack); wr $P; truncate -s $(( $(stat -c %s $P) / 2 )) $P"#
);
scenario!(
    s08_bit_flip_inside_pack_entry,
    "packed-object-corrupt",
    r#"P=$(pack); flip $P $(( $(stat -c %s $P) / 2 )) '\x00'"#
);
scenario!(
    s09_corrupt_pack_index,
    "index-corrupt",
    r#"I=$(ls .git/objects/pack/*.idx); flip $I 2000 '\xff'"#
);
scenario!(
    s10a_pack_without_index,
    "pack-without-index",
    r#"rm -f .git/objects/pack/*.idx"#
);
scenario!(
    s10b_index_without_pack,
    "orphan-pack-file",
    r#"rm -f .git/objects/pack/*.pack"#
);
scenario!(
    s11_stale_commit_graph_after_object_loss,
    "commit-graph-stale",
    r#"rm -f .git/objects/pack/*.pack .git/objects/pack/*.idx .git/objects/pack/*.rev"#
);
scenario!(
    s12_corrupt_commit_graph,
    "commit-graph-corrupt",
    r#"flip .git/objects/info/commit-graph 300 '\xff'"#
);
scenario!(
    s13_corrupt_rev_file,
    "rev-corrupt",
    r#"flip $(ls .git/objects/pack/*.rev) 20 '\xff\xff\xff\xff'"#
);
scenario!(
    s14_truncated_index,
    "index-file-corrupt",
    r#"truncate -s 100 .git/index"#
);
scenario!(
    s14b_nul_filled_index,
    "index-file-corrupt",
    r#"head -c $(stat -c %s .git/index) /dev/zero > .git/index.new; mv .git/index.new .git/index"#
);
scenario!(
    s15_index_entry_whose_blob_is_missing,
    "missing-object",
    r#"echo staged > s; git add s; rm -f $(objpath $(git rev-parse :s))"#
);
scenario!(
    s16_garbage_packed_refs_line,
    "packed-refs-line",
    r#"echo garbage >> .git/packed-refs"#
);
scenario!(
    s16b_nul_filled_packed_refs,
    "packed-refs-line",
    r#"git pack-refs --all; git update-ref refs/heads/keep HEAD; head -c 200 /dev/zero >> .git/packed-refs"#
);
scenario!(
    s17_empty_loose_ref,
    "ref-corrupt",
    r#"git update-ref refs/heads/x HEAD; : > .git/refs/heads/x"#
);
scenario!(s18_missing_head, "head-corrupt", r#"rm .git/HEAD"#);
scenario!(
    s18b_garbage_head,
    "head-corrupt",
    r#"echo garbage > .git/HEAD"#
);
scenario!(
    s20_garbage_reflog_line,
    "reflog-line",
    r#"printf 'garbage\n' >> .git/logs/HEAD"#
);
scenario!(
    s23_stale_locks_and_temp_files,
    "leftover",
    r#"touch -d '10 minutes ago' .git/index.lock .git/packed-refs.lock; : > .git/objects/tmp_obj_X; : > .git/objects/pack/tmp_pack_X"#
);
scenario!(
    s28_good_loose_copy_next_to_corrupt_packed_copy,
    "packed-object-corrupt",
    r#"
P=$(pack); flip $P $(( $(stat -c %s $P) / 2 )) '\x00'
for id in $(git -C ../remote.git rev-list --objects --all | cut -d' ' -f1); do
  git -C ../remote.git cat-file -p $id >/dev/null
  t=$(git -C ../remote.git cat-file -t $id)
  git -C ../remote.git cat-file $t $id > /tmp/o.$$; git hash-object -w -t $t --literally /tmp/o.$$ >/dev/null 2>&1 || true
done
rm -f /tmp/o.$$"#
);
scenario!(
    s_combined_damage,
    "pack-corrupt",
    r#"
B=$(git rev-parse HEAD:l23.txt); F=$(objpath $B); wr $F; : > $F
P=$(pack); wr $P; truncate -s $(( $(stat -c %s $P) * 6 / 10 )) $P
printf 'garbage\n' >> .git/logs/HEAD
touch -d '10 minutes ago' .git/index.lock
echo garbage >> .git/packed-refs
flip .git/objects/info/commit-graph 300 '\xff'"#
);

scenario!(
    s19_nul_filled_config,
    "config-corrupt",
    r#"head -c $(stat -c %s .git/config) /dev/zero > .git/config.new; mv .git/config.new .git/config"#
);
scenario!(
    s21_dangling_alternates_entry,
    "alternate-missing",
    r#"echo /nonexistent/objects > .git/objects/info/alternates"#
);
scenario!(
    s26_linked_worktree_head_damaged,
    "worktree-head-corrupt",
    r#"git worktree add -q ../wt -b w; echo garbage > .git/worktrees/wt/HEAD"#
);

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("stdout is one JSON document")
}

#[test]
fn s22_alternates_source_lost_is_recovered_from_the_remote() {
    let lab = Lab::new();
    let alt = lab.repo.parent().expect("parent").join("alt");
    let o = Command::new("git")
        .args(["clone", "-q", "--shared"])
        .arg(&lab.repo)
        .arg(&alt)
        .output()
        .expect("clone");
    assert!(o.status.success());
    git(
        &alt,
        &[
            "remote",
            "set-url",
            "origin",
            lab.remote.to_str().expect("utf-8"),
        ],
    );
    let moved = lab.repo.parent().expect("parent").join("moved-packs");
    std::fs::rename(lab.repo.join(".git/objects/pack"), &moved).expect("move packs away");
    std::fs::create_dir(lab.repo.join(".git/objects/pack")).expect("mkdir");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("-C")
            .arg(&alt)
            .args(args)
            .output()
            .expect("runs")
    };
    let scan = run(&["scan", "--json"]);
    assert_eq!(
        scan.status.code(),
        Some(1),
        "objects lost with the alternate are damage"
    );
    assert!(
        json(&scan)["missing"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
    let rep = run(&["repair"]);
    assert_eq!(
        rep.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rep.stdout)
    );
    let fsck = Command::new("git")
        .arg("-C")
        .arg(&alt)
        .args(["fsck", "--full", "--strict"])
        .status()
        .expect("fsck");
    assert!(fsck.success(), "the shared clone is whole again");
}

#[test]
fn s24_shallow_clone_is_no_false_alarm_until_its_shallow_file_is_lost() {
    let lab = Lab::new();
    let s = lab.repo.parent().expect("parent").join("shallow");
    let url = format!("file://{}", lab.remote.display());
    let o = Command::new("git")
        .args(["clone", "-q", "--depth", "3", &url])
        .arg(&s)
        .output()
        .expect("clone");
    assert!(o.status.success());
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("-C")
            .arg(&s)
            .args(args)
            .output()
            .expect("runs")
    };
    assert_eq!(
        run(&["scan"]).status.code(),
        Some(0),
        "a shallow clone is healthy"
    );
    std::fs::remove_file(s.join(".git/shallow")).expect("rm shallow");
    let scan = run(&["scan"]);
    assert_eq!(
        scan.status.code(),
        Some(1),
        "without .git/shallow the cut history is missing"
    );
    assert!(stdout(&scan).contains("missing-object"));
}

#[test]
fn s25_partial_clone_is_no_false_alarm() {
    let lab = Lab::new();
    let scan = partial_clone_scan(&lab, "partial", "--no-checkout");
    assert_eq!(
        scan.status.code(),
        Some(0),
        "blobs a promisor remote has are not damage: {}",
        stdout(&scan)
    );
}

#[test]
fn s27_damaged_submodule_is_found_and_repaired_from_its_own_remote() {
    let lab = Lab::new();
    let url = format!("file://{}", lab.remote.display());
    let o = Command::new("git")
        .arg("-C")
        .arg(&lab.repo)
        .args([
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &url,
            "sub",
        ])
        .output()
        .expect("submodule add");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    git(
        &lab.repo,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@e.invalid",
            "commit",
            "-qm",
            "add sub",
        ],
    );
    lab.sh(r#"P=$(ls .git/modules/sub/objects/pack/*.pack | head -1); wr $P; truncate -s 300 $P"#);
    let scan = lab.surgery(&["scan"]);
    assert_eq!(
        scan.status.code(),
        Some(1),
        "git fsck misses this; scan must not"
    );
    assert!(stdout(&scan).contains("submodule-damaged"));
    let rep = lab.surgery(&["repair"]);
    assert_eq!(rep.status.code(), Some(0));
    let sub = lab.repo.join("sub");
    assert!(
        Command::new("git")
            .arg("-C")
            .arg(&sub)
            .args(["fsck", "--full", "--strict"])
            .status()
            .expect("fsck")
            .success()
    );
}

#[test]
fn s17b_ref_to_an_object_no_remote_has_ends_with_exit_2_and_the_exact_loss() {
    let lab = Lab::new();
    let ghost = "1234567890123456789012345678901234567890";
    lab.sh(&format!("echo {ghost} > .git/refs/heads/ghost"));
    let rep = lab.surgery(&["repair", "--json"]);
    assert_eq!(rep.status.code(), Some(2), "damage remains");
    let v = json(&rep);
    let lost = v["lost"].as_array().expect("lost list");
    assert_eq!(lost.len(), 1, "exactly the one lost object");
    assert_eq!(lost[0]["oid"], ghost);
    assert!(
        lost[0]["needed_by"]
            .as_array()
            .expect("refs")
            .iter()
            .any(|r| r == "refs/heads/ghost")
    );
    assert!(
        lab.repo.join(".git/refs/heads/ghost").exists(),
        "without --force no ref is touched"
    );
    let forced = lab.surgery(&["repair", "--force"]);
    assert_eq!(
        forced.status.code(),
        Some(0),
        "--force ends healthy: the ref is out of the ref namespace"
    );
    assert!(lab.fsck_ok());
    assert!(!lab.repo.join(".git/refs/heads/ghost").exists());
    // Not deleted: in the quarantine, and restore brings it back as it was.
    let list = json(&lab.surgery(&["quarantine", "list", "--json"]));
    let entry = list
        .as_array()
        .expect("list")
        .iter()
        .find(|q| {
            q["files"]
                .as_array()
                .is_some_and(|f| f.iter().any(|i| i["path"] == "refs/heads/ghost"))
        })
        .expect("the ref is in a quarantine");
    let id = entry["id"].as_str().expect("id");
    assert_eq!(
        lab.surgery(&["quarantine", "restore", id]).status.code(),
        Some(0)
    );
    assert_eq!(
        std::fs::read_to_string(lab.repo.join(".git/refs/heads/ghost")).expect("restored"),
        format!("{ghost}\n")
    );
}

#[test]
fn s30_lost_local_commits_are_listed_and_force_resets_the_branch_to_its_newest_intact_commit() {
    let lab = Lab::new();
    lab.sh(r#"
for i in 1 2 3; do echo "local $i" > "local$i.txt"; git add -A; git -c user.name=T -c user.email=t@e.invalid commit -qm "local $i"; done"#);
    let newest_intact = git(&lab.repo, &["rev-parse", "HEAD~2"]).trim().to_string();
    lab.sh(r#"rm -f $(objpath $(git rev-parse HEAD~1))"#);
    let tip = git(&lab.repo, &["rev-parse", "HEAD"]).trim().to_string();
    let rep = lab.surgery(&["repair", "--json"]);
    assert_eq!(rep.status.code(), Some(2));
    let v = json(&rep);
    assert!(v["lost"].as_array().expect("lost").iter().all(|m| {
        m["needed_by"]
            .as_array()
            .expect("refs")
            .iter()
            .any(|r| r == "refs/heads/main")
    }));
    let forced = lab.surgery(&["repair", "--force", "--reset-broken"]);
    assert_eq!(forced.status.code(), Some(0), "--force ends healthy");
    assert!(lab.fsck_ok());
    let list = json(&lab.surgery(&["quarantine", "list", "--json"]));
    let kept = list
        .as_array()
        .expect("list")
        .iter()
        .flat_map(|q| q["files"].as_array().cloned().unwrap_or_default())
        .any(|i| i["path"] == "refs/surgery/broken/heads/main");
    assert!(kept, "the old tip is kept in the quarantine: {list}");
    let parked = walkdir::WalkDir::new(lab.repo.join(".git/surgery/quarantine"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.path().ends_with("refs/surgery/broken/heads/main"))
        .expect("the file");
    assert_eq!(
        std::fs::read_to_string(parked.path()).expect("read").trim(),
        tip
    );
    let main = git(&lab.repo, &["rev-parse", "refs/heads/main"])
        .trim()
        .to_string();
    assert_eq!(
        main, newest_intact,
        "main is back at the newest commit whose history is whole (found in its reflog)"
    );
    assert!(
        Command::new("git")
            .arg("-C")
            .arg(&lab.repo)
            .args(["rev-list", "--objects", "--quiet", "main"])
            .status()
            .expect("rev-list")
            .success()
    );
}

#[test]
fn repair_killed_after_each_step_converges_when_run_again() {
    for step in [
        "leftovers",
        "salvage",
        "quarantine",
        "refs",
        "recover",
        "rebuild",
    ] {
        let lab = Lab::new();
        lab.sh(r#"
B=$(git rev-parse HEAD:l23.txt); F=$(objpath $B); wr $F; : > $F
P=$(pack); flip $P $(( $(stat -c %s $P) / 2 )) '\x00'
printf 'garbage\n' >> .git/logs/HEAD
touch -d '10 minutes ago' .git/index.lock
echo garbage >> .git/packed-refs
flip .git/objects/info/commit-graph 300 '\xff'"#);
        let killed = Command::new(BIN)
            .arg("-C")
            .arg(&lab.repo)
            .arg("repair")
            .env("BITROT_SURGERY_KILL_AFTER", step)
            .output()
            .expect("runs");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "repair was killed after {step}"
        );
        // The JSON-lines log was written through: the step before the kill is in it.
        let log = std::fs::read_to_string(lab.repo.join(".git/surgery/log.jsonl"))
            .expect("the log exists");
        let step_logged = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["msg"] == "repair step done" && v["step"] == step);
        assert!(step_logged, "the log survives SIGKILL after {step}:\n{log}");
        let again = lab.surgery(&["repair"]);
        assert_eq!(
            again.status.code(),
            Some(0),
            "rerun after a kill at {step} ends healthy"
        );
        assert!(lab.fsck_ok(), "fsck agrees after a kill at {step}");
        assert!(lab.remote_refs_readable());
    }
}

#[test]
fn quarantine_keeps_what_repair_moved_and_restore_brings_it_back() {
    let lab = Lab::new();
    lab.sh(r#"B=$(git rev-parse HEAD:l23.txt); flip $(objpath $B) 5 '\xff'"#);
    let bad = git(&lab.repo, &["rev-parse", "HEAD:l23.txt"])
        .trim()
        .to_string();
    assert_eq!(lab.surgery(&["repair"]).status.code(), Some(0));
    let list = json(&lab.surgery(&["quarantine", "list", "--json"]));
    let q = &list.as_array().expect("list")[0];
    let id = q["id"].as_str().expect("id").to_string();
    let rel = format!("objects/{}/{}", &bad[..2], &bad[2..]);
    assert!(
        q["files"]
            .as_array()
            .expect("files")
            .iter()
            .any(|f| f["path"] == rel.as_str()
                && f["reason"].as_str().is_some_and(|r| r.contains("corrupt"))),
        "the manifest names the moved object and why"
    );
    let log = std::fs::read_to_string(lab.repo.join(".git/surgery/log.jsonl"))
        .expect("repair writes a JSON-lines log");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every log line is JSON"
    );
    assert!(log.contains("quarantined"));
    assert_eq!(
        lab.surgery(&["quarantine", "restore", &id]).status.code(),
        Some(0)
    );
    assert!(
        lab.repo.join(".git").join(&rel).exists(),
        "restore puts the file back"
    );
    assert_eq!(
        lab.surgery(&["scan"]).status.code(),
        Some(1),
        "the restored copy is the corrupt one"
    );
    assert_eq!(
        lab.surgery(&["quarantine", "purge", &id]).status.code(),
        Some(0)
    );
    assert_eq!(
        lab.surgery(&["quarantine", "restore", &id]).status.code(),
        Some(3),
        "a purged quarantine is gone"
    );
}

#[test]
fn objects_only_the_second_remote_has_are_fetched_from_it_by_id() {
    let lab = Lab::new();
    let empty = lab.repo.parent().expect("parent").join("empty.git");
    assert!(
        Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&empty)
            .status()
            .expect("init")
            .success()
    );
    git(
        &lab.repo,
        &["remote", "add", "aaa-empty", empty.to_str().expect("utf-8")],
    );
    git(
        &lab.repo,
        &["config", "--add", "surgery.remote", "aaa-empty"],
    );
    git(&lab.repo, &["config", "--add", "surgery.remote", "origin"]);
    lab.sh(r#"rm -f $(objpath $(git rev-parse HEAD))"#);
    let rep = lab.surgery(&["repair", "--json"]);
    assert_eq!(rep.status.code(), Some(0));
    let v = json(&rep);
    assert_eq!(
        v["fetch_failures"][0]["source"], "aaa-empty",
        "the first remote lacks the object"
    );
    assert_eq!(v["recovered"][0]["source"], "origin");
    assert!(v["actions"].as_array().expect("actions").iter().any(
        |a| a["action"] == "fetch" && a["detail"].as_str().is_some_and(|d| d.contains("by-id"))
    ));
    assert!(
        v["recovered"].as_array().expect("recovered").len() < 10,
        "only the missing objects are fetched, not the whole remote"
    );
}

#[test]
fn a_reference_copy_is_used_when_no_remote_is_configured() {
    let lab = Lab::new();
    git(&lab.repo, &["remote", "remove", "origin"]);
    lab.sh(r#"P=$(pack); wr $P; truncate -s $(( $(stat -c %s $P) / 2 )) $P"#);
    let r = lab.remote.to_str().expect("utf-8").to_string();
    let rep = lab.surgery(&["repair", "--json", "--reference", &r]);
    assert_eq!(rep.status.code(), Some(0));
    assert!(
        json(&rep)["recovered"]
            .as_array()
            .expect("recovered")
            .iter()
            .all(|x| x["source"] == r.as_str())
    );
    assert!(lab.fsck_ok());
}

#[test]
fn repair_refuses_while_a_git_process_works_in_the_repository() {
    let lab = Lab::new();
    lab.sh(r#"B=$(git rev-parse HEAD:l23.txt); flip $(objpath $B) 5 '\xff'"#);
    let mut busy = Command::new("git")
        .args(["cat-file", "--batch"])
        .current_dir(&lab.repo)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("git runs");
    let before = lab.snapshot();
    let rep = lab.surgery(&["repair"]);
    let _ = busy.kill();
    let _ = busy.wait();
    assert_eq!(rep.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&rep.stderr).contains("git is working in this repository"));
    assert!(before == lab.snapshot(), "a refused repair changes nothing");
}

#[test]
fn not_a_repository_is_a_clear_error() {
    let d = tempfile::tempdir().expect("tmp");
    let o = Command::new(BIN)
        .arg("-C")
        .arg(d.path())
        .arg("scan")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a git repository"));
}

/// Recovery over ssh from a real sshd on a loopback port (login with a certificate from
/// bitrot's own CA). Without `AcceptEnv GIT_PROTOCOL` the server speaks protocol v0, which
/// refuses wants by id: repair must fall back to fetching all refs. With it, v2 fetches by id.
#[test]
fn objects_are_recovered_over_ssh_by_id_and_by_fallback_from_a_v0_server() {
    use crate::ssh_ca;
    let ca = ssh_ca::Lab::new("ed25519");
    let (host_key, host_cert) = ssh_ca::host_setup(&ca);
    let me = ssh_ca::whoami();
    let key = ca.keygen("id_git", "ed25519");
    let cert = ca.sign(
        "id_git",
        &[
            "--user",
            "-I",
            "git-surgery-test",
            "-n",
            &me,
            "-V",
            "-5m:+1h",
        ],
    );
    let (_, known) = ca.export();
    let kh = ca.path("known_hosts_git");
    std::fs::write(&kh, format!("{known}\n")).expect("known_hosts");
    let ssh_cmd = format!(
        "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile={} -i {} -o CertificateFile={}",
        kh.display(),
        key.display(),
        cert.display()
    );
    for (extra, how) in [("", "all-refs"), ("AcceptEnv GIT_PROTOCOL\n", "by-id")] {
        let sshd = ssh_ca::Sshd::start(&ca, &host_key, Some(&host_cert), extra);
        let lab = Lab::new();
        let url = format!("ssh://{me}@127.0.0.1:{}{}", sshd.port, lab.remote.display());
        git(&lab.repo, &["remote", "set-url", "origin", &url]);
        // A tree: no ref advertises it, so a v0 server refuses it as a want.
        lab.sh(r#"rm -f $(objpath $(git rev-parse 'HEAD^{tree}'))"#);
        let o = Command::new(BIN)
            .arg("-C")
            .arg(&lab.repo)
            .args(["repair", "--json"])
            .env("GIT_SSH_COMMAND", &ssh_cmd)
            .output()
            .expect("runs");
        eprintln!(
            "{}{}\n{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr),
            sshd.log()
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "repair over ssh ends healthy ({how})"
        );
        let v = json(&o);
        assert!(
            v["actions"]
                .as_array()
                .expect("actions")
                .iter()
                .any(|a| a["action"] == "fetch"
                    && a["detail"].as_str().is_some_and(|d| d.contains(how))),
            "fetched {how}"
        );
        assert!(lab.fsck_ok());
    }
}

/// Recovery from an https remote: `git http-backend` behind a TLS server on a loopback port,
/// trusted through GIT_SSL_CAINFO.
#[test]
fn objects_are_recovered_from_an_https_remote() {
    use std::io::BufRead;
    let lab = Lab::new();
    let dir = lab.repo.parent().expect("parent").to_path_buf();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/git-https-server.py");
    let mut server = Command::new("python3")
        .arg(script)
        .arg(&dir)
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut port = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port line");
    let url = format!("https://127.0.0.1:{}/remote.git", port.trim());
    git(&lab.repo, &["remote", "set-url", "origin", &url]);
    lab.sh(r#"rm -f $(objpath $(git rev-parse HEAD))"#);
    let o = Command::new(BIN)
        .arg("-C")
        .arg(&lab.repo)
        .args(["repair", "--json"])
        .env("GIT_SSL_CAINFO", &cert)
        .output()
        .expect("runs");
    let _ = server.kill();
    let _ = server.wait();
    eprintln!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        o.status.code(),
        Some(0),
        "repair from an https remote ends healthy"
    );
    let v = json(&o);
    assert!(v["actions"].as_array().expect("actions").iter().any(
        |a| a["action"] == "fetch" && a["detail"].as_str().is_some_and(|d| d.contains("by-id"))
    ));
    assert!(lab.fsck_ok());
}

scenario!(
    s13b_corrupt_bitmap,
    "bitmap-corrupt",
    r#"git repack -adbq; B=$(ls .git/objects/pack/*.bitmap); flip $B $(( $(stat -c %s $B) - 30 )) '\xff'"#
);
scenario!(
    s13c_corrupt_multi_pack_index,
    "midx-corrupt",
    r#"git multi-pack-index write; flip .git/objects/pack/multi-pack-index 100 '\xff'"#
);

/// research §6 #31: the remote is damaged too. Repair must not pretend: exit 2, the fetch
/// failure named, the exact loss listed, and the local damage still quarantined.
#[test]
fn s31_a_remote_that_is_damaged_too_gives_exit_2_and_the_loss() {
    let lab = Lab::new();
    lab.sh(r#"P=$(pack); wr $P; truncate -s $(( $(stat -c %s $P) / 2 )) $P"#);
    let o = Command::new("bash")
        .arg("-c")
        .arg(
            "P=$(ls objects/pack/*.pack); chmod u+w $P; truncate -s $(( $(stat -c %s $P) / 2 )) $P",
        )
        .current_dir(&lab.remote)
        .output()
        .expect("bash");
    assert!(o.status.success());
    let rep = lab.surgery(&["repair", "--json"]);
    assert_eq!(
        rep.status.code(),
        Some(2),
        "damage remains when no remote has the data"
    );
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout).expect("json");
    assert!(
        v["lost"]
            .as_array()
            .expect("lost")
            .iter()
            .all(|m| !m["needed_by"].as_array().expect("refs").is_empty()),
        "every lost object names the refs that need it"
    );
    assert!(
        v["fetch_failures"]
            .as_array()
            .expect("failures")
            .iter()
            .any(|f| f["source"] == "origin"),
        "the damaged remote is named"
    );
    assert!(
        v["quarantine"].as_str().is_some(),
        "the damaged pack was still quarantined, not deleted"
    );
}

#[test]
fn a_fresh_lock_file_makes_repair_refuse_and_an_old_one_is_a_stale_leftover() {
    let lab = Lab::new();
    lab.sh("touch .git/index.lock");
    let before = lab.snapshot();
    let rep = lab.surgery(&["repair"]);
    assert_eq!(
        rep.status.code(),
        Some(3),
        "a lock changed moments ago may belong to a git process"
    );
    assert!(String::from_utf8_lossy(&rep.stderr).contains("fresh lock"));
    assert!(before == lab.snapshot(), "and nothing is changed");
    lab.sh("touch -d '10 minutes ago' .git/index.lock");
    assert_eq!(
        lab.surgery(&["repair"]).status.code(),
        Some(0),
        "an old lock is quarantined"
    );
}

#[test]
fn refs_git_reads_are_not_damage_and_unreadable_refs_come_back_from_their_reflog() {
    let lab = Lab::new();
    lab.sh(r#"printf '%s\r\n' "$(git rev-parse HEAD)" > .git/refs/heads/crlf; printf 'ref:refs/heads/main\n' > .git/HEAD"#);
    assert_eq!(
        lab.surgery(&["scan"]).status.code(),
        Some(0),
        "CRLF refs and `ref:` without a space are what git reads"
    );
    let side = git(&lab.repo, &["rev-parse", "side"]).trim().to_string();
    lab.sh("git pack-refs --all; sed -i 's/^\\(.\\).\\(.*refs\\/heads\\/side\\)$/\\1z\\2/' .git/packed-refs");
    assert!(
        std::fs::read_to_string(lab.repo.join(".git/packed-refs"))
            .expect("packed")
            .lines()
            .any(|l| l.ends_with("refs/heads/side") && l.as_bytes()[1] == b'z'),
        "the side line is damaged"
    );
    let rep = lab.surgery(&["repair"]);
    assert_eq!(rep.status.code(), Some(0));
    assert_eq!(
        git(&lab.repo, &["rev-parse", "side"]).trim(),
        side,
        "the branch is back at its reflog value, not dropped"
    );
    assert!(lab.fsck_ok());
}

#[test]
fn an_unreadable_ref_without_a_reflog_is_reported_lost_with_exit_2() {
    let lab = Lab::new();
    lab.sh("git update-ref refs/tags/nolog HEAD; rm -f .git/logs/refs/tags/nolog; echo garbage > .git/refs/tags/nolog");
    let rep = lab.surgery(&["repair", "--json"]);
    assert_eq!(
        rep.status.code(),
        Some(2),
        "a ref whose value is gone is damage that remains"
    );
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout).expect("json");
    assert!(
        v["remaining"]
            .as_array()
            .expect("remaining")
            .iter()
            .any(|f| f["code"] == "ref-lost"
                && f["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("refs/tags/nolog")))
    );
    let q = v["quarantine"].as_str().expect("quarantine");
    assert!(
        Path::new(q).join("files/refs/tags/nolog").is_file(),
        "the unreadable file is kept"
    );
}

#[test]
fn sha256_and_reftable_repositories_are_refused_untouched() {
    let d = tempfile::tempdir().expect("tmp");
    for (name, args) in [
        ("sha256", vec!["--object-format=sha256"]),
        ("reftable", vec!["--ref-format=reftable"]),
    ] {
        let repo = d.path().join(name);
        let o = Command::new("git")
            .arg("init")
            .arg("-q")
            .args(&args)
            .arg(&repo)
            .output()
            .expect("git init");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = Command::new(BIN)
            .arg("-C")
            .arg(&repo)
            .arg("repair")
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(3), "{name}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not supported"),
            "{name}"
        );
        assert!(
            !repo.join(".git/surgery").exists(),
            "{name}: nothing written"
        );
    }
}

#[test]
fn a_sparse_partial_clone_whose_index_names_unfetched_blobs_is_healthy() {
    let lab = Lab::new();
    // Files in a subdirectory: a cone-mode sparse checkout leaves them out (skip-worktree), so
    // their blobs are never fetched although the index names them.
    lab.sh("mkdir -p sub && echo x > sub/x && git add sub && git -c user.name=T -c user.email=t@e.invalid commit -qm sub && git push -q origin main");
    let scan = partial_clone_scan(&lab, "sparse", "--sparse");
    assert_eq!(
        scan.status.code(),
        Some(0),
        "index entries for blobs a promisor remote has are not damage: {}",
        stdout(&scan)
    );
}

#[test]
fn the_index_and_reflog_of_a_linked_worktree_are_roots_too() {
    let lab = Lab::new();
    lab.sh(r#"git worktree add -q ../wt2 -b w2; cd ../wt2; echo only-here > staged; git add staged; B=$(git rev-parse :staged); rm -f ../repo/$(objpath $B)"#);
    let scan = lab.surgery(&["scan", "--json"]);
    assert_eq!(
        scan.status.code(),
        Some(1),
        "a blob only a linked worktree's index names is missing"
    );
    let v: serde_json::Value = serde_json::from_slice(&scan.stdout).expect("json");
    assert!(
        v["missing"]
            .as_array()
            .expect("missing")
            .iter()
            .any(|m| m["needed_by"]
                .as_array()
                .expect("refs")
                .iter()
                .any(|r| r.as_str().is_some_and(|r| r.starts_with("index(wt2)")))),
        "{v}"
    );
    let reflogs = v["findings"].to_string();
    assert!(
        !reflogs.contains("reflog-line"),
        "the worktree's reflog parses"
    );
}

/// Every ref that has a reflog, with its value (tags have none: their loss is not in scope).
fn logged_refs(repo: &Path) -> Vec<String> {
    git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .filter(|l| {
            let name = l.split(' ').next().unwrap_or_default();
            repo.join(".git/logs").join(name).is_file()
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn refs_are_held_to_their_reflogs_and_restored_from_them() {
    let cases = [
        (
            "packed-refs emptied",
            "git pack-refs --all; : > .git/packed-refs",
        ),
        (
            "packed-refs deleted",
            "git pack-refs --all; rm .git/packed-refs",
        ),
        (
            "a remote-tracking ref deleted",
            r#"R=$(git for-each-ref --format='%(refname)' refs/remotes | grep -v HEAD | head -1); git pack-refs --all; grep -v " $R$" .git/packed-refs > p; mv p .git/packed-refs"#,
        ),
        (
            "a ref file holding reflog text",
            "git update-ref refs/heads/side $(git rev-parse side); tail -1 .git/logs/refs/heads/side > .git/refs/heads/side",
        ),
        (
            "a loose ref with one hex digit flipped",
            r#"git update-ref refs/heads/side $(git rev-parse side); V=$(git rev-parse side); L=${V: -1}; if [ "$L" = 0 ]; then N=1; else N=0; fi; echo "${V%?}$N" > .git/refs/heads/side"#,
        ),
    ];
    for (what, damage) in cases {
        let lab = Lab::new();
        let before = logged_refs(&lab.repo);
        assert!(
            before.len() >= 3,
            "branches and remote-tracking refs with reflogs: {before:?}"
        );
        lab.sh(damage);
        assert_ne!(
            logged_refs(&lab.repo),
            before,
            "{what}: the damage changed the refs"
        );
        let scan = lab.surgery(&["scan"]);
        assert_eq!(
            scan.status.code(),
            Some(1),
            "{what}: scan must not say healthy"
        );
        let repair = lab.surgery(&["repair"]);
        assert_eq!(repair.status.code(), Some(0), "{what}: repair ends healthy");
        assert_eq!(
            logged_refs(&lab.repo),
            before,
            "{what}: every ref is what it was"
        );
        assert!(lab.fsck_ok(), "{what}: fsck agrees");
    }
}
