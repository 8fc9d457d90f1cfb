//! `git svn-migrate sync DEST`: a conversion keeps following a live Subversion repository
//! (real svn commits between syncs: edits, a branch, a tag, a merge), giving exactly the
//! commits a one-shot conversion of the longer history gives, and refusing, with nothing
//! changed, when the history it already converted was edited.

use crate::svn_migrate::sh_text as sh;
use std::path::{Path, PathBuf};
use std::process::Output;

fn tool(args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    crate::svn_resume::run(&args)
}

fn refs(git: &Path) -> String {
    sh(&format!(
        "git --git-dir {} for-each-ref --format='%(objectname) %(refname)'",
        git.display()
    ))
}

struct Svn {
    repo: PathBuf,
    url: String,
    wc: PathBuf,
}

impl Svn {
    fn run(&self, script: &str) {
        sh(&script
            .replace("{u}", &self.url)
            .replace("{w}", &self.wc.display().to_string()));
    }
}

/// A one-shot conversion of the repository as it is now, with the same options.
fn one_shot(dir: &Path, svn: &Svn, authors: &Path, name: &str) -> String {
    let git = dir.join(name);
    let o = tool(&[
        svn.repo.to_str().expect("utf-8"),
        git.to_str().expect("utf-8"),
        "--bare",
        "--authors",
        authors.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    refs(&git)
}

#[test]
fn sync_follows_new_revisions_with_one_shot_ids_and_refuses_an_edited_history() {
    let dir = tempfile::tempdir().expect("tmp");
    let repo = dir.path().join("svn");
    let svn = Svn {
        url: format!("file://{}", repo.display()),
        wc: dir.path().join("wc"),
        repo,
    };
    sh(&format!("svnadmin create {}", svn.repo.display()));
    svn.run(
        "svn mkdir -q --username alice -m layout {u}/trunk {u}/branches {u}/tags && \
         svn co -q {u}/trunk {w} && echo one > {w}/f && svn add -q {w}/f && \
         svn ci -q --username alice -m 'add f' {w}",
    );
    let authors = dir.path().join("authors.txt");
    std::fs::write(
        &authors,
        "alice = Alice <alice@example.org>\nbob = Bob <bob@example.org>\n",
    )
    .expect("write");
    let git = dir.path().join("mirror.git");
    let g = git.to_str().expect("utf-8");
    // A checkpoint after every revision: a sync must still write nothing before its check.
    let o = tool(&[
        svn.repo.to_str().expect("utf-8"),
        g,
        "--bare",
        "--checkpoint-every",
        "1",
        "--authors",
        authors.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(0));

    // The team keeps committing: an edit, a branch with a commit, a tag, a merge.
    svn.run(
        "echo two >> {w}/f && svn ci -q --username bob -m 'edit f' {w} && \
         svn cp -q --username bob -m 'branch b' {u}/trunk {u}/branches/b && \
         svn co -q {u}/branches/b {w}-b && echo bee > {w}-b/g && svn add -q {w}-b/g && \
         svn ci -q --username bob -m 'g on b' {w}-b && \
         svn cp -q --username alice -m 'tag 1.0' {u}/trunk {u}/tags/1.0 && \
         svn up -q {w} && svn merge -q ^/branches/b {w} && \
         svn ci -q --username alice -m 'merge b' {w}",
    );
    let o = tool(&["sync", g]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        refs(&git),
        one_shot(dir.path(), &svn, &authors, "one-shot-1"),
        "the same ids as a one-shot conversion of the longer history"
    );
    let merge = sh(&format!("git --git-dir {g} log -1 --format=%P main"));
    assert_eq!(merge.split(' ').count(), 2, "the merge is a merge commit");
    assert!(refs(&git).contains("refs/tags/1.0"));

    // Nothing new: nothing changes. Then one more revision.
    let before = refs(&git);
    assert_eq!(tool(&["sync", g]).status.code(), Some(0));
    assert_eq!(refs(&git), before);
    svn.run("echo three >> {w}/f && svn ci -q --username alice -m 'three' {w}");
    let o = tool(&["sync", g, "--json", "--verify"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"differences\":[]"));
    assert_eq!(
        refs(&git),
        one_shot(dir.path(), &svn, &authors, "one-shot-2")
    );

    // An edited log message in a revision DEST holds: refused, nothing changed.
    sh(&format!(
        "printf '#!/bin/sh\\nexit 0\\n' > {r}/hooks/pre-revprop-change && \
         chmod +x {r}/hooks/pre-revprop-change && \
         svn propset -q --revprop -r 2 svn:log 'edited later' {u}",
        r = svn.repo.display(),
        u = svn.url
    ));
    let before = refs(&git);
    let state = std::fs::read(git.join("svn-migrate.json")).expect("state");
    let o = tool(&["sync", g]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("has changed") && err.contains("refs/heads/"),
        "{err}"
    );
    assert_eq!(refs(&git), before, "refs unchanged");
    assert_eq!(
        std::fs::read(git.join("svn-migrate.json")).expect("state"),
        state
    );
    let leftovers = sh(&format!("ls {g}/objects/pack | grep -c tmp_pack || true"));
    assert_eq!(leftovers, "0", "no half-written pack left");
    // And so it stays once svn has moved on past the edit (found before any new revision
    // is written).
    svn.run("echo four >> {w}/f && svn ci -q --username alice -m 'four' {w}");
    let o = tool(&["sync", g]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has changed"));
    assert_eq!(refs(&git), before, "refs unchanged");
    assert_eq!(
        std::fs::read(git.join("svn-migrate.json")).expect("state"),
        state
    );
    let leftovers = sh(&format!("ls {g}/objects/pack | grep -c tmp_pack || true"));
    assert_eq!(leftovers, "0", "no half-written pack left");

    // A changed authors file would change every commit: refused too.
    let dir2 = tempfile::tempdir().expect("tmp");
    let git2 = dir2.path().join("m.git");
    let g2 = git2.to_str().expect("utf-8");
    assert_eq!(
        tool(&[
            svn.repo.to_str().expect("utf-8"),
            g2,
            "--bare",
            "--authors",
            authors.to_str().expect("utf-8"),
        ])
        .status
        .code(),
        Some(0)
    );
    std::fs::write(
        &authors,
        "alice = A <a@example.org>\nbob = B <b@example.org>\n",
    )
    .expect("write");
    let o = tool(&["sync", g2]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("authors or rules file changed"));

    // Not a conversion: a usage error naming DEST.
    let o = tool(&["sync", dir.path().to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("svn-migrate.json"));
}
