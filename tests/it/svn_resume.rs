//! git-svn-migrate's DEST belongs to one Subversion repository: `--resume` from another one
//! (another UUID, no UUID, or the same UUID on another history) is refused and changes
//! nothing, the checkpoint names the last revision converted, and a source that gives
//! nothing (empty, not a dump, not there) leaves DEST as it was.

use crate::svn_migrate::sh_text as sh;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_git-svn-migrate");

/// A repository with `n` commits to trunk, dumped; returns (repository, dump).
fn repo(dir: &Path, name: &str, n: usize) -> (PathBuf, PathBuf) {
    let r = dir.join(name);
    let w = dir.join(format!("{name}-wc"));
    let mut script = format!(
        "svnadmin create {r} && svn mkdir -q -m layout file://{r}/trunk file://{r}/tags && \
         svn co -q file://{r}/trunk {w}",
        r = r.display(),
        w = w.display()
    );
    for i in 0..n {
        script.push_str(&format!(
            " && echo '{name} {i}' >> {w}/f && {{ svn add -q {w}/f 2>/dev/null || true; }} && \
             svn ci -q -m '{name} edit {i}' {w}",
            w = w.display()
        ));
    }
    sh(&script);
    let dump = dir.join(format!("{name}.dump"));
    sh(&format!(
        "svnadmin dump -q {} > {}",
        r.display(),
        dump.display()
    ));
    (r, dump)
}

pub(crate) fn run(args: &[&std::ffi::OsStr]) -> Output {
    let o = Command::new(BIN)
        .args(args)
        .env_remove("BITROT_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("runs");
    eprintln!(
        "$ git-svn-migrate {args:?}\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn convert(source: &Path, dest: &Path, extra: &[&str]) -> Output {
    let mut args = vec![source.as_os_str(), dest.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    run(&args)
}

/// Everything a user would look at in DEST: refs and the checkpoint.
fn snapshot(git: &Path) -> (String, String) {
    let refs = sh(&format!(
        "git --git-dir {} for-each-ref --format='%(objectname) %(refname)'",
        git.display()
    ));
    let state = std::fs::read_to_string(git.join("svn-migrate.json")).expect("checkpoint");
    (refs, state)
}

fn state(git: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(git.join("svn-migrate.json")).expect("read"))
        .expect("json")
}

#[test]
fn resume_from_another_repository_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, a_dump) = repo(dir.path(), "a", 6);
    let (b, b_dump) = repo(dir.path(), "b", 6);
    let (a_uuid, b_uuid) = (
        sh(&format!("svnlook uuid {}", a.display())),
        sh(&format!("svnlook uuid {}", b.display())),
    );
    // A's conversion stops part-way (its dump is cut inside r5).
    let whole = std::fs::read(&a_dump).expect("dump");
    let cut = whole
        .windows(19)
        .position(|w| w == b"Revision-number: 5\n")
        .expect("r5")
        + 40;
    let part = dir.path().join("a-part.dump");
    std::fs::write(&part, &whole[..cut]).expect("write");
    let git = dir.path().join("git");
    assert_eq!(convert(&part, &git, &["--bare"]).status.code(), Some(2));
    let st = state(&git);
    assert_eq!(st["uuid"], a_uuid.as_str(), "the checkpoint names A: {st}");
    // The cut could have hidden more of r4's nodes: r3 is the last one known complete.
    assert_eq!(st["last_revision"], 3, "the last revision converted: {st}");
    let before = snapshot(&git);

    let b_text = std::fs::read_to_string(&b_dump).expect("dump");
    let no_uuid = dir.path().join("b-no-uuid.dump");
    std::fs::write(
        &no_uuid,
        b_text
            .lines()
            .filter(|l| !l.starts_with("UUID: "))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .expect("write");
    let a_uuid_b_history = dir.path().join("b-as-a.dump");
    std::fs::write(&a_uuid_b_history, b_text.replace(&b_uuid, &a_uuid)).expect("write");
    for (what, source, says) in [
        (
            "another UUID",
            &b_dump,
            vec![a_uuid.as_str(), b_uuid.as_str()],
        ),
        (
            "no UUID",
            &no_uuid,
            vec![a_uuid.as_str(), "names no repository UUID"],
        ),
        (
            "the same UUID, another history",
            &a_uuid_b_history,
            vec!["first revision is dated"],
        ),
    ] {
        let o = convert(source, &git, &["--bare", "--resume"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{what}: refused as bad input: {err}"
        );
        for s in says {
            assert!(err.contains(s), "{what}: the error says {s:?}: {err}");
        }
        assert_eq!(snapshot(&git), before, "{what}: DEST is unchanged");
    }

    // The right repository resumes, and the checkpoint then names its last revision.
    let o = convert(&a_dump, &git, &["--bare", "--resume"]);
    assert_eq!(o.status.code(), Some(0));
    let youngest: u64 = sh(&format!("svnlook youngest {}", a.display()))
        .parse()
        .expect("number");
    let st = state(&git);
    assert_eq!(st["last_revision"], youngest, "{st}");
    assert_eq!(st["complete"], true);
    assert_eq!(st["uuid"], a_uuid.as_str());
    // And a live repository resumes from itself (svnadmin dump of the path).
    let o = convert(&a, &git, &["--bare", "--resume"]);
    assert_eq!(o.status.code(), Some(0));
    let o = convert(&b, &git, &["--bare", "--resume"]);
    assert_eq!(o.status.code(), Some(2), "B's repository is refused too");
}

#[test]
fn a_source_that_gives_nothing_leaves_dest_as_it_was() {
    let dir = tempfile::tempdir().expect("tmp");
    let empty = dir.path().join("empty.dump");
    std::fs::write(&empty, "").expect("write");
    let garbage = dir.path().join("notes.txt");
    std::fs::write(
        &garbage,
        "these are not the revisions you are looking for\n",
    )
    .expect("w");
    let header_only = dir.path().join("header.dump");
    std::fs::write(
        &header_only,
        "SVN-fs-dump-format-version: 2\n\nUUID: 5b3a0b52-7a3e-4b8e-9a53-f3b1b2a1c0de\n\n",
    )
    .expect("write");
    let not_a_repo = dir.path().join("plain-dir");
    std::fs::create_dir(&not_a_repo).expect("mkdir");
    let missing = dir.path().join("nowhere");
    let gone_repo = PathBuf::from(format!("file://{}/nowhere-repo", dir.path().display()));
    for (what, source, code) in [
        ("an empty file", &empty, 2),
        ("a file that is not a dump", &garbage, 2),
        ("a dump without revisions", &header_only, 2),
        ("a directory that is no repository", &not_a_repo, 3),
        ("a path that does not exist", &missing, 3),
        ("a file:// URL of nothing", &gone_repo, 3),
    ] {
        // A DEST that does not exist is not created; an empty one stays empty.
        let dest = dir.path().join("dest");
        let o = convert(source, &dest, &["--bare"]);
        assert_eq!(o.status.code(), Some(code), "{what}");
        assert!(!dest.exists(), "{what}: DEST was not created");
        let kept = dir.path().join("kept");
        std::fs::create_dir_all(&kept).expect("mkdir");
        let o = convert(source, &kept, &[]);
        assert_eq!(o.status.code(), Some(code), "{what}");
        assert_eq!(
            std::fs::read_dir(&kept).expect("kept").count(),
            0,
            "{what}: an empty DEST stays empty"
        );
    }
    // And the same DEST then takes a real conversion.
    let (_, dump) = repo(dir.path(), "c", 2);
    let dest = dir.path().join("dest");
    assert_eq!(convert(&dump, &dest, &["--bare"]).status.code(), Some(0));
}

#[test]
fn verify_takes_its_mode_only_with_an_equals_sign() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = repo(dir.path(), "v", 2);
    let dest = dir.path().join("out");
    // `--verify SOURCE DEST`: SOURCE is the source, not the verify mode.
    let o = run(&[
        std::ffi::OsStr::new("--verify"),
        r.as_os_str(),
        dest.as_os_str(),
        std::ffi::OsStr::new("--json"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"differences\":[]"));
    let dest = dir.path().join("out-all");
    let o = run(&[
        std::ffi::OsStr::new("--verify=all"),
        r.as_os_str(),
        dest.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn authors_lists_every_user_as_an_authors_file_that_converts_once_filled_in() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = dir.path().join("r");
    let w = dir.path().join("wc");
    sh(&format!(
        "svnadmin create {r} && svn mkdir -q --username alice -m layout file://{r}/trunk && \
         svn co -q file://{r}/trunk {w} && for i in 1 2; do echo $i >> {w}/f; \
         svn add -q {w}/f 2>/dev/null; svn ci -q --username alice -m a$i {w}; done && \
         echo b >> {w}/f && svn ci -q --username 'bob.smith' -m b {w}",
        r = r.display(),
        w = w.display()
    ));
    let o = run(&[std::ffi::OsStr::new("authors"), r.as_os_str()]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("alice = alice <alice>  # 3 revisions, r1-r3"),
        "{text}"
    );
    assert!(text.contains("bob.smith = bob.smith <bob.smith>  # 1 revision, r4"));
    let o = run(&[
        std::ffi::OsStr::new("authors"),
        r.as_os_str(),
        std::ffi::OsStr::new("--json"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["authors"][0]["user"], "alice");
    assert_eq!(v["authors"][0]["revisions"], 3);
    assert_eq!(v["authors"][1]["last"], 4);

    // Filled in, the file converts with those identities.
    let filled = text
        .replace(
            "alice = alice <alice>",
            "alice = Alice Liddell <alice@example.org>",
        )
        .replace(
            "bob.smith = bob.smith <bob.smith>",
            "bob.smith = Bob Smith <bob@example.org>",
        );
    let file = dir.path().join("authors.txt");
    std::fs::write(&file, filled).expect("write");
    let git = dir.path().join("git");
    let mut args = vec![r.as_os_str(), git.as_os_str()];
    args.extend([
        std::ffi::OsStr::new("--bare"),
        std::ffi::OsStr::new("--authors"),
    ]);
    args.push(file.as_os_str());
    assert_eq!(run(&args).status.code(), Some(0));
    let who = sh(&format!(
        "git --git-dir {} log --format='%an <%ae>' main | sort | uniq -c",
        git.display()
    ));
    assert!(who.contains("2 Alice Liddell <alice@example.org>"), "{who}");
    assert!(who.contains("1 Bob Smith <bob@example.org>"), "{who}");

    // A dump that is not one is a named error; a missing source a usage error.
    let bad = dir.path().join("bad.dump");
    std::fs::write(
        &bad,
        "SVN-fs-dump-format-version: 2\n\nRevision-number: x\n\n",
    )
    .expect("w");
    let o = run(&[std::ffi::OsStr::new("authors"), bad.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Revision-number"));
    let o = run(&[
        std::ffi::OsStr::new("authors"),
        dir.path().join("nope").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(3));
}
