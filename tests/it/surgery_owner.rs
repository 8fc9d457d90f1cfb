//! git-surgery and file permissions: a file it cannot read is not damage (never quarantined,
//! repair refuses to run), repair refuses a repository another user owns (as git's
//! `safe.directory` does), and the packs it writes get the modes git gives them. Run as root
//! (as CI does), the repository belongs to `nobody` and the tools run as `nobody` through
//! setpriv; run as another user, that user owns everything and the root-only case is
//! exercised as far as one user can.

use crate::surgery::Lab;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_git-surgery");
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program args` as the repository's owner: `nobody` when the tests run as root.
fn as_owner(program: &str, args: &[&str], home: &Path) -> Output {
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
        c
    } else {
        Command::new(program)
    };
    let o = c
        .args(args)
        .env("HOME", home)
        .env_remove("BITROT_LOG")
        .output()
        .expect("runs");
    eprintln!(
        "$ {program} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Hands the lab to `nobody` when root (and lets nobody reach it).
fn give_to_owner(lab: &Lab) {
    let dir = lab.repo.parent().expect("lab dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if is_root() {
        let o = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(dir)
            .output()
            .expect("chown");
        assert!(o.status.success());
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn surgery(lab: &Lab, args: &[&str]) -> Output {
    let repo = lab.repo.to_str().expect("utf-8");
    let mut all = vec!["-C", repo];
    all.extend_from_slice(args);
    as_owner(BIN, &all, lab.repo.parent().expect("dir"))
}

#[test]
fn unreadable_files_are_named_never_quarantined_and_repair_refuses_until_it_can_read() {
    let lab = Lab::new();
    // A loose object file, a whole fan-out directory of another, and a ref file.
    let head = crate::surgery::git(&lab.repo, &["rev-parse", "HEAD"]);
    let head = head.trim();
    let objects = lab.repo.join(".git/objects");
    let file = objects.join(&head[..2]).join(&head[2..]);
    assert!(file.is_file(), "the HEAD commit is loose in the lab");
    let mut fanouts: Vec<_> = std::fs::read_dir(&objects)
        .expect("objects")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.len() == 2) && p.is_dir())
        .collect();
    fanouts.sort();
    let dir = fanouts
        .into_iter()
        .find(|d| Some(d.as_path()) != file.parent())
        .expect("a second fan-out directory with loose objects");
    let branch = lab.repo.join(".git/refs/heads/unreadable");
    std::fs::write(&branch, format!("{}\n", head.trim())).expect("ref");
    // Files that are not this repository's to read: LFS content and a submodule's store.
    let foreign = [
        lab.repo.join(".git/lfs/objects/ab/cd/abcd0123"),
        lab.repo.join(".git/modules/sub/config"),
    ];
    for f in &foreign {
        std::fs::create_dir_all(f.parent().expect("dir")).expect("mkdir");
        std::fs::write(f, "not git's\n").expect("write");
    }
    give_to_owner(&lab);
    chmod(&file, 0o000);
    chmod(&dir, 0o000);
    chmod(&branch, 0o000);
    for f in &foreign {
        chmod(f, 0o000);
    }

    let o = surgery(&lab, &["scan", "--json"]);
    assert_eq!(o.status.code(), Some(3), "unreadable: the verdict is open");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let unreadable: Vec<String> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "unreadable")
        .map(|f| f["path"].as_str().unwrap_or_default().to_string())
        .collect();
    for p in [&file, &dir, &branch] {
        assert!(
            unreadable.iter().any(|u| Path::new(u) == p.as_path()),
            "{} named unreadable: {unreadable:?}",
            p.display()
        );
    }
    assert!(
        !v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["code"] == "loose-corrupt"),
        "an unreadable file is not corrupt: {v}"
    );
    assert!(
        !unreadable
            .iter()
            .any(|u| foreign.iter().any(|f| Path::new(u) == f.as_path())),
        "LFS and submodule stores are not this repository's: {unreadable:?}"
    );
    // The other fan-out directories were still listed.
    assert!(v["objects"]["loose"].as_u64().unwrap_or(0) > 0, "{v}");

    let o = surgery(&lab, &["repair"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot read"),
        "refused, saying why"
    );
    chmod(&dir, 0o755);
    chmod(&file, 0o444);
    chmod(&branch, 0o644);
    assert!(
        file.is_file() && dir.is_dir() && branch.is_file(),
        "nothing was moved"
    );
    assert!(
        !lab.repo.join(".git/surgery/quarantine").exists(),
        "no quarantine was made"
    );
    let o = surgery(&lab, &["scan"]);
    assert_eq!(o.status.code(), Some(0), "readable again: healthy");
}

#[test]
fn repair_refuses_another_users_repository_and_the_owner_gets_gits_modes() {
    let lab = Lab::new();
    // Damage that repair salvages into a new pack: zeroed bytes in the middle of the pack.
    lab.sh(r#"P=$(pack); wr $P; S=$(stat -c %s $P); head -c 64 /dev/zero | dd of=$P bs=1 seek=$((S / 2)) conv=notrunc status=none"#);
    give_to_owner(&lab);
    let pack_dir = lab.repo.join(".git/objects/pack");
    let listing = |d: &Path| -> Vec<(String, u64)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .expect("pack dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().expect("meta").len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    if is_root() {
        let before = listing(&pack_dir);
        let o = Command::new(BIN)
            .arg("-C")
            .arg(&lab.repo)
            .arg("repair")
            .env_remove("BITROT_LOG")
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(
            err.contains("belongs to nobody") && err.contains("sudo -u"),
            "{err}"
        );
        assert_eq!(listing(&pack_dir), before, "nothing was changed");
        assert!(
            !lab.repo.join(".git/surgery").exists(),
            "not even the log was written"
        );
    }
    let o = surgery(&lab, &["repair"]);
    assert_eq!(o.status.code(), Some(0), "the owner's repair ends healthy");
    let fsck = as_owner(
        "git",
        &[
            "-C",
            lab.repo.to_str().expect("utf-8"),
            "fsck",
            "--full",
            "--strict",
        ],
        lab.repo.parent().expect("dir"),
    );
    assert!(fsck.status.success(), "the owner's own git fsck passes");
    // What repair wrote has git's modes: 0444 less the umask the tools ran with (this
    // process's, which they inherit).
    let umask = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| {
            l.strip_prefix("Umask:")
                .map(|v| u32::from_str_radix(v.trim(), 8))
        })
        .expect("Umask line")
        .expect("octal");
    for e in std::fs::read_dir(&pack_dir).expect("pack dir") {
        let e = e.expect("entry");
        let m = e.metadata().expect("meta");
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".pack") || name.ends_with(".idx") || name.ends_with(".rev") {
            assert_eq!(m.mode() & 0o777, 0o444 & !umask, "{name}");
            if is_root() {
                assert_eq!(m.uid(), NOBODY, "{name} belongs to the owner");
            }
        }
    }
}
