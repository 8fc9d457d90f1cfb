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
        use std::os::unix::fs::PermissionsExt;
        walkdir::WalkDir::new(self.repo.join(".git"))
            .into_iter()
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
    let rep = lab.surgery(&["repair"]);
    assert_eq!(rep.status.code(), Some(0), "repair must end healthy");
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
    r#"touch .git/index.lock .git/packed-refs.lock; : > .git/objects/tmp_obj_X; : > .git/objects/pack/tmp_pack_X"#
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
touch .git/index.lock
echo garbage >> .git/packed-refs
flip .git/objects/info/commit-graph 300 '\xff'"#
);
