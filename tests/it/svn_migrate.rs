//! git-svn-migrate on real Subversion repositories made with svnadmin and svn
//! (tests/fixtures/svn-rich.sh) and on the dump corpus in research/svn-dumps: each behaviour of
//! research/svn-migrate.md §6, checked with git and `svn export`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_git-svn-migrate");

/// The dump corpus (research/svn-dumps), read in place: `BITROT_SVN_CORPUS`, else beside the
/// checkout in the workplace's shared research directory.
pub(crate) fn corpus() -> PathBuf {
    let candidates = [
        std::env::var_os("BITROT_SVN_CORPUS").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/research/svn-dumps")),
        Some(PathBuf::from("/work/shared/research/svn-dumps")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("README.md").is_file())
        .expect("the svn dump corpus (set BITROT_SVN_CORPUS to research/svn-dumps)")
}

/// The rich repository, built once, with its three dump flavours.
struct Rich {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    v2: PathBuf,
    v3: PathBuf,
    rdump: PathBuf,
}

pub(crate) fn sh(cmd: &str) -> Vec<u8> {
    let o = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("bash");
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// [`sh`]'s output as trimmed text.
pub(crate) fn sh_text(cmd: &str) -> String {
    String::from_utf8_lossy(&sh(cmd)).trim().to_string()
}

fn rich() -> &'static Rich {
    static R: OnceLock<Rich> = OnceLock::new();
    R.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = dir.path().join("repo");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/svn-rich.sh");
        sh(&format!("bash {} {}", script.display(), repo.display()));
        let (v2, v3, rdump) = (dir.path().join("v2.dump"), dir.path().join("v3.dump"), dir.path().join("rdump.dump"));
        sh(&format!("svnadmin dump -q {r} > {v2}; svnadmin dump -q --deltas {r} > {v3}; svnrdump dump -q file://{r} > {rd}", r = repo.display(), v2 = v2.display(), v3 = v3.display(), rd = rdump.display()));
        Rich { _dir: dir, repo, v2, v3, rdump }
    })
}

/// A converted repository in a temporary directory.
struct Out {
    _dir: tempfile::TempDir,
    git: PathBuf,
    out: Output,
}

fn migrate(source: &Path, args: &[&str]) -> Out {
    let dir = tempfile::tempdir().expect("tmp");
    let git = dir.path().join("git");
    let out = Command::new(BIN)
        .arg(source)
        .arg(&git)
        .args(args)
        .env_remove("BITROT_LOG")
        .output()
        .expect("runs");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Out {
        _dir: dir,
        git,
        out,
    }
}

impl Out {
    fn ok(self) -> Out {
        assert_eq!(self.out.status.code(), Some(0), "conversion succeeds");
        self
    }

    fn git(&self, args: &[&str]) -> String {
        let o = Command::new("git")
            .arg("-C")
            .arg(&self.git)
            .args(args)
            .output()
            .expect("git");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// The commit whose trailer names `rev` and `path` (exactly one must exist).
    fn commit_of(&self, rev: u64, path: &str) -> String {
        let found = self.git(&[
            "log",
            "--all",
            "--format=%H",
            &format!("--grep=@{rev} {path}$"),
        ]);
        let ids: Vec<&str> = found.lines().collect();
        assert_eq!(
            ids.len(),
            1,
            "exactly one commit for r{rev} {path}: {ids:?}"
        );
        ids[0].to_string()
    }

    fn refs(&self) -> String {
        self.git(&["for-each-ref", "--format=%(objectname) %(refname)"])
    }
}

/// A Subversion repository at `<tmp>/r` made by `script`, where `{r}` stands for the
/// repository path and `{d}` for the temporary directory (working copies go there).
fn svn_repo(script: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let repo = dir.path().join("r");
    sh(&script
        .replace("{r}", &repo.display().to_string())
        .replace("{d}", &dir.path().display().to_string()));
    (dir, repo)
}

fn stdout(o: &Out) -> String {
    String::from_utf8_lossy(&o.out.stdout).into_owned()
}

#[test]
fn copies_expand_from_the_named_revision_with_the_right_parent() {
    let o = migrate(&rich().repo, &[]).ok();
    let b_first = o.commit_of(6, "/branches/b");
    assert_eq!(
        o.git(&["rev-parse", &format!("{b_first}^")]),
        o.commit_of(2, "/trunk"),
        "branch b (copied from trunk@2) starts at trunk's r2 commit, not trunk's tip"
    );
    assert_eq!(
        o.git(&["show", &format!("{b_first}^:README")]),
        "hello",
        "with trunk@2's content"
    );
}

#[test]
fn tags_are_annotated_on_the_source_commit_unless_they_have_commits_of_their_own() {
    let o = migrate(&rich().repo, &[]).ok();
    assert_eq!(
        o.git(&["cat-file", "-t", "v1"]),
        "tag",
        "tags are annotated"
    );
    assert_eq!(
        o.git(&["rev-parse", "v1^{commit}"]),
        o.commit_of(7, "/trunk"),
        "v1 (copied from HEAD after r7) points at trunk's r7 commit, no phantom commit"
    );
    assert!(
        o.git(&["log", "--all", "--format=%H", "--grep=/tags/v1$"])
            .is_empty(),
        "an unmodified tag makes no commit"
    );
    assert_eq!(
        o.git(&["log", "-1", "--format=%s", "v2^{commit}"]),
        "Commit on tag v2",
        "a tag with its own commit keeps it"
    );
    assert_eq!(
        o.git(&["rev-parse", "v2^{commit}^"]),
        o.commit_of(9, "/trunk")
    );
}

#[test]
fn a_deleted_then_recreated_branch_starts_clean_and_the_old_tip_is_kept() {
    let o = migrate(&rich().repo, &[]).ok();
    assert_eq!(
        o.git(&["rev-parse", "f"]),
        o.commit_of(4, "/trunk"),
        "f recreated from trunk@4 is that commit"
    );
    let old = o.git(&["rev-parse", "refs/deleted/heads/f@16"]);
    assert_eq!(o.git(&["log", "-1", "--format=%s", &old]), "Work on f two");
    let st = Command::new("git")
        .arg("-C")
        .arg(&o.git)
        .args(["merge-base", "--is-ancestor", &old, "f"])
        .status()
        .expect("git");
    assert!(
        !st.success(),
        "the old history is not an ancestor of the new branch"
    );
}

#[test]
fn sync_merges_become_merge_commits_and_cherry_picks_do_not() {
    let o = migrate(&rich().repo, &["--json"]).ok();
    let merge = o.commit_of(7, "/trunk");
    let parents: Vec<String> = o
        .git(&["log", "-1", "--format=%P", &merge])
        .split(' ')
        .map(str::to_string)
        .collect();
    assert_eq!(parents.len(), 2, "the sync merge of b has two parents");
    assert_eq!(parents[1], o.commit_of(6, "/branches/b"));
    let pick = o.git(&["log", "--all", "--format=%H", "--grep=^Cherry-pick f2"]);
    assert_eq!(
        o.git(&["log", "-1", "--format=%P", &pick])
            .split(' ')
            .count(),
        1,
        "a cherry-pick is not a merge"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.out.stdout).expect("json");
    assert!(
        v["ignored_merges"]
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m.as_str().is_some_and(|s| s.contains("cherry-pick"))),
        "the ignored mergeinfo is reported"
    );
}

#[test]
fn mixed_branch_revisions_are_split_into_one_commit_per_branch() {
    let o = migrate(&rich().repo, &[]).ok();
    let (t, b) = (o.commit_of(9, "/trunk"), o.commit_of(9, "/branches/b"));
    assert_ne!(t, b);
    let meta = |c: &str| o.git(&["log", "-1", "--format=%an %ae %at %s", c]);
    assert_eq!(
        meta(&t),
        meta(&b),
        "both halves carry the revision's author, date and log"
    );
    assert_eq!(o.git(&["show", &format!("{b}:mixed")]), "mixed b");
    assert!(
        o.git(&["ls-tree", "--name-only", &t])
            .lines()
            .any(|l| l == "mixed")
    );
}

#[test]
fn exec_bits_and_symlinks_follow_properties_through_copies_and_changes() {
    let o = migrate(&rich().repo, &[]).ok();
    let mode = |rev: &str, path: &str| {
        o.git(&["ls-tree", rev, path])
            .split(' ')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let r2 = o.commit_of(2, "/trunk");
    assert_eq!(mode(&r2, "run.sh"), "100755");
    assert_eq!(mode(&r2, "link"), "120000");
    assert_eq!(
        o.git(&["cat-file", "-p", &format!("{r2}:link")]),
        "README",
        "a symlink's blob is its target"
    );
    assert_eq!(
        mode("b", "run.sh"),
        "100755",
        "the exec bit survives the branch copy"
    );
    assert_eq!(
        mode("main", "run.sh"),
        "100644",
        "propdel svn:executable clears it"
    );
    assert_eq!(
        o.git(&["cat-file", "-p", "main:link"]),
        "src/main.c",
        "a retargeted link stays a link"
    );
}

#[test]
fn every_branch_and_tag_tip_and_every_commit_matches_svn_export() {
    let o = migrate(&rich().repo, &["--verify=all"]).ok();
    assert!(
        stdout(&o).contains("identical"),
        "--verify=all compares every commit with svn export"
    );
    let oddly = o.git(&["show", "main:odd names/ leading space #%.txt"]);
    assert_eq!(oddly, "x", "odd path names are kept");
    let crlf = Command::new("git")
        .arg("-C")
        .arg(&o.git)
        .args(["cat-file", "blob", "main:crlf.txt"])
        .output()
        .expect("git")
        .stdout;
    assert_eq!(
        crlf, b"line one\r\nline two\r\n",
        "CRLF without eol-style is kept byte for byte"
    );
    assert_eq!(
        o.git(&["show", "main:keywords.txt"]),
        "$Id$",
        "keywords stay unexpanded"
    );
    assert_eq!(
        o.git(&["cat-file", "-s", "main:empty.txt"]),
        "0",
        "empty files exist"
    );
}

#[test]
fn verify_finds_a_tree_that_differs_from_subversion() {
    let dir = tempfile::tempdir().expect("tmp");
    let repo = dir.path().join("r");
    sh(&format!(
        "cp -a {} {}",
        rich().repo.display(),
        repo.display()
    ));
    let o = migrate(&repo, &[]).ok();
    // Change the Subversion side after the conversion (a new revision rewrites trunk/README),
    // then point main at a commit with the old tree that claims that revision: verify must find README.
    sh(&format!(
        "svn checkout -q --ignore-externals file://{r}/trunk {d}/wc && echo changed > {d}/wc/README && svn commit -q -m x {d}/wc",
        r = repo.display(),
        d = dir.path().display()
    ));
    let tip = o.git(&["rev-parse", "main"]);
    let tree = o.git(&["rev-parse", "main^{tree}"]);
    let uuid = String::from_utf8(sh(&format!("svnlook uuid {}", repo.display()))).expect("utf8");
    let youngest =
        String::from_utf8(sh(&format!("svnlook youngest {}", repo.display()))).expect("utf8");
    let claim = format!(
        "x\n\nsvn-revision: {}@{} /trunk",
        uuid.trim(),
        youngest.trim()
    );
    let fake = o.git(&["commit-tree", &tree, "-p", &tip, "-m", &claim]);
    o.git(&["update-ref", "refs/heads/main", &fake]);
    let diffs = bitrot::svn::convert::verify::verify(
        &o.git.join(".git"),
        &format!("file://{}", repo.display()),
        &["main".to_string()],
        None,
    )
    .expect("verify runs");
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0].path, "README");
    assert_eq!(diffs[0].what, "content differs");
}

#[test]
fn svn_ignore_becomes_an_anchored_gitignore() {
    let o = migrate(&rich().repo, &[]).ok();
    assert_eq!(o.git(&["show", "main:src/.gitignore"]), "/*.o\n/build");
}

#[test]
fn format_2_format_3_svnrdump_and_the_repository_give_identical_commits() {
    let r = rich();
    let refs: Vec<String> = [&r.v2, &r.v3, &r.rdump, &r.repo]
        .iter()
        .map(|s| migrate(s, &["--bare"]).ok().refs())
        .collect();
    assert!(!refs[0].is_empty());
    assert_eq!(
        refs[0], refs[1],
        "svnadmin dump --deltas gives the same commits as a full-text dump"
    );
    assert_eq!(refs[0], refs[2], "svnrdump's output gives the same commits");
    assert_eq!(
        refs[0], refs[3],
        "reading the repository gives the same commits"
    );
    let again = migrate(&r.v2, &["--bare"]).ok().refs();
    assert_eq!(refs[0], again, "output is deterministic");
    let tiny = corpus().join("generated");
    let t: Vec<String> = [
        "tiny-v2.dump",
        "tiny-v3-svnadmin-deltas.dump",
        "tiny-v3-svnrdump.dump",
    ]
    .iter()
    .map(|f| migrate(&tiny.join(f), &["--bare"]).ok().refs())
    .collect();
    assert_eq!(t[0], t[1]);
    assert_eq!(t[0], t[2]);
}

#[test]
fn authors_are_mapped_and_unknown_ones_are_listed_all_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let authors = dir.path().join("authors.txt");
    std::fs::write(
        &authors,
        "alice = Alice Example <alice@example.com>\nbob = Bob Example <bob@example.com>\n",
    )
    .expect("write");
    let a = authors.to_str().expect("utf-8");
    let o = migrate(&rich().repo, &["--authors", a]);
    assert_eq!(o.out.status.code(), Some(2), "unknown authors stop the run");
    let err = String::from_utf8_lossy(&o.out.stderr);
    assert!(
        err.contains("carol") && err.contains("dave"),
        "all unknown authors are listed at once: {err}"
    );
    std::fs::write(&authors, "alice = Alice Example <alice@example.com>\nbob = Bob Example <bob@example.com>\ncarol = Carol C <carol@example.com>\ndave = Dave D <dave@example.com>\n").expect("write");
    let resumed = Command::new(BIN)
        .arg(&rich().repo)
        .arg(&o.git)
        .args(["--resume", "--authors", a])
        .output()
        .expect("runs");
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "with the map completed, --resume finishes: {}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        o.git(&["log", "-1", "--format=%an", &o.commit_of(9, "/trunk")]),
        "Carol C",
        "every commit gets its mapped identity"
    );
    std::fs::write(
        &authors,
        "alice = Alice Example <alice@example.com>\nbob = Bob Example <bob@example.com>\n",
    )
    .expect("write");
    let o = migrate(
        &rich().repo,
        &["--authors", a, "--default-domain", "example.org"],
    )
    .ok();
    assert_eq!(
        o.git(&["log", "-1", "--format=%an <%ae>", &o.commit_of(2, "/trunk")]),
        "Alice Example <alice@example.com>"
    );
    assert_eq!(
        o.git(&["log", "-1", "--format=%an <%ae>", &o.commit_of(9, "/trunk")]),
        "carol <carol@example.org>"
    );
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "alice Alice\n").expect("write");
    let o = migrate(&rich().repo, &["--authors", bad.to_str().expect("utf-8")]);
    assert_eq!(o.out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.out.stderr).contains("bad.txt:1"),
        "a bad authors file names the line"
    );
}

#[test]
fn a_revision_without_author_log_or_date_still_converts() {
    let o = migrate(&rich().repo, &[]).ok();
    let last = o.git(&["log", "-1", "--format=%an|%at|%B", "main"]);
    assert!(last.starts_with("(no author)|0|svn-revision: "), "{last}");
}

#[test]
fn replace_nodes_are_a_delete_and_an_add_in_one_revision() {
    let (_dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q -m layout file://{r}/trunk && svn checkout -q file://{r}/trunk {d}/wc && cd {d}/wc && \
         echo a > x && echo b > y && mkdir d && echo c > d/f && svn add -q x y d && svn commit -q -m files && \
         svn rm -q x && svn cp -q y x && svn rm -q d && svn mkdir -q d && echo new > d/g && svn add -q d/g && svn commit -q -m replace",
    );
    let dump =
        String::from_utf8_lossy(&sh(&format!("svnadmin dump -q {}", repo.display()))).into_owned();
    assert!(
        dump.contains("Node-action: replace"),
        "the scenario really has a replace node"
    );
    let o = migrate(&repo, &["--verify"]).ok();
    assert_eq!(
        o.git(&["show", "main:x"]),
        "b",
        "a file replaced by a copy has the copy's content"
    );
    assert_eq!(
        o.git(&["ls-tree", "-r", "--name-only", "main", "d"]),
        "d/g",
        "a replaced directory keeps nothing of the old one"
    );
}

#[test]
fn a_truncated_dump_is_a_clear_error_and_resume_gives_the_one_shot_hashes() {
    let r = rich();
    let whole = std::fs::read(&r.v2).expect("dump");
    let cut = whole
        .windows(20)
        .position(|w| w == b"Revision-number: 12\n")
        .expect("r12")
        + 300;
    let dir = tempfile::tempdir().expect("tmp");
    let part = dir.path().join("part.dump");
    std::fs::write(&part, &whole[..cut]).expect("write");
    let git = dir.path().join("git");
    let o = Command::new(BIN)
        .arg(&part)
        .arg(&git)
        .arg("--bare")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("r12") && err.contains("--resume"),
        "the error names the revision and the way on: {err}"
    );
    let refs = Command::new("git")
        .arg("--git-dir")
        .arg(&git)
        .args(["log", "-1", "--format=%B", "main"])
        .output()
        .expect("git");
    assert!(
        String::from_utf8_lossy(&refs.stdout).contains("@9 /trunk"),
        "refs show the last complete revision touching trunk"
    );
    let o = Command::new(BIN)
        .arg(&r.v2)
        .arg(&git)
        .args(["--bare", "--resume"])
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let resumed = Command::new("git")
        .arg("--git-dir")
        .arg(&git)
        .args(["for-each-ref", "--format=%(objectname) %(refname)"])
        .output()
        .expect("git");
    let one_shot = migrate(&r.v2, &["--bare"]).ok().refs();
    assert_eq!(
        String::from_utf8_lossy(&resumed.stdout).trim_end(),
        one_shot,
        "resume gives bit-identical hashes"
    );
    let fsck = Command::new("git")
        .arg("--git-dir")
        .arg(&git)
        .args(["fsck", "--strict"])
        .status()
        .expect("fsck");
    assert!(fsck.success());
}

#[test]
fn a_checksum_mismatch_names_the_revision_and_node() {
    let mut d = std::fs::read(rich().v2.clone()).expect("dump");
    let at = d
        .windows(6)
        .position(|w| w == b"hello\n")
        .expect("README text");
    d[at] = b'j';
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.dump");
    std::fs::write(&bad, d).expect("write");
    let o = migrate(&bad, &["--bare"]);
    assert_eq!(o.out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.out.stderr);
    assert!(
        err.contains("r2") && err.contains("trunk/README") && err.contains("md5"),
        "{err}"
    );
}

#[test]
fn an_existing_destination_is_refused_without_resume() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("x"), "keep").expect("write");
    let o = Command::new(BIN)
        .arg(&rich().v2)
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("x")).expect("x"),
        "keep"
    );
}

#[test]
fn layout_is_found_at_depth_and_paths_outside_branches_are_reported() {
    let (_dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q --parents -m layout file://{r}/proj/trunk file://{r}/proj/branches file://{r}/proj/tags && \
         svn checkout -q file://{r} {d}/wc && echo a > {d}/wc/proj/trunk/a && echo stray > {d}/wc/README.root && \
         svn add -q {d}/wc/proj/trunk/a {d}/wc/README.root && svn commit -q -m files {d}/wc && \
         svn copy -q -m branch file://{r}/proj/trunk file://{r}/proj/branches/x",
    );
    let o = migrate(&repo, &["--json"]).ok();
    assert_eq!(o.git(&["show", "main:a"]), "a", "proj/trunk becomes main");
    assert_eq!(
        o.git(&["rev-parse", "x"]),
        o.git(&["rev-parse", "main"]),
        "proj/branches/x becomes x"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.out.stdout).expect("json");
    assert_eq!(
        v["outside"][0][1], "README.root",
        "a file outside every branch is reported, not dropped silently"
    );
}

#[test]
fn every_dump_of_the_corpus_converts_to_a_repository_git_fsck_accepts() {
    let mut dumps: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "svn" || x == "dump"))
        .collect();
    dumps.extend(
        std::fs::read_dir(corpus().join("generated"))
            .expect("generated")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "dump")),
    );
    assert!(dumps.len() >= 33, "the whole corpus is here");
    for d in dumps {
        let o = migrate(&d, &["--bare"]);
        assert_eq!(o.out.status.code(), Some(0), "{} converts", d.display());
        let f = Command::new("git")
            .arg("--git-dir")
            .arg(&o.git)
            .args(["fsck", "--strict", "--no-dangling"])
            .output()
            .expect("fsck");
        assert!(
            f.status.success(),
            "{}: {}",
            d.display(),
            String::from_utf8_lossy(&f.stderr)
        );
    }
}

#[test]
fn a_rules_file_sends_two_projects_into_two_repositories_and_reports_the_rest() {
    let (dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q --parents -m layout file://{r}/app/trunk file://{r}/app/branches file://{r}/lib/trunk file://{r}/lib/tags file://{r}/junk && \
         svn checkout -q file://{r} {d}/wc && echo a > {d}/wc/app/trunk/a && echo l > {d}/wc/lib/trunk/l && echo j > {d}/wc/junk/j && echo s > {d}/wc/stray && \
         svn add -q {d}/wc/app/trunk/a {d}/wc/lib/trunk/l {d}/wc/junk/j {d}/wc/stray && svn commit -q -m files {d}/wc && \
         svn copy -q -m rel file://{r}/app/trunk file://{r}/app/branches/release-1 && svn copy -q -m tag file://{r}/lib/trunk file://{r}/lib/tags/1.0",
    );
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "repositories: [app, lib]\nrules:\n  - match: app/trunk\n    repository: app\n    branch: main\n  - match: app/branches/release-*\n    repository: app\n    branch: rel/$1\n  - match: lib/trunk\n    repository: lib\n    branch: main\n  - match: lib/tags/*\n    repository: lib\n    tag: v$1\n  - match: junk\n    ignore: true\n",
    )
    .expect("rules");
    let out = dir.path().join("out");
    let o = Command::new(BIN)
        .arg(&repo)
        .arg(&out)
        .args(["--bare", "--json", "--rules"])
        .arg(&rules)
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let git = |repo: &str, args: &[&str]| {
        String::from_utf8_lossy(
            &Command::new("git")
                .arg("--git-dir")
                .arg(out.join(repo))
                .args(args)
                .output()
                .expect("git")
                .stdout,
        )
        .trim()
        .to_string()
    };
    assert_eq!(
        git("app.git", &["ls-tree", "--name-only", "main"]),
        "a",
        "app gets only app's files"
    );
    assert_eq!(
        git("lib.git", &["ls-tree", "--name-only", "main"]),
        "l",
        "lib gets only lib's files"
    );
    assert_eq!(
        git("app.git", &["rev-parse", "rel/release-1"]),
        git("app.git", &["rev-parse", "main"]),
        "the branch is named by the rule"
    );
    assert_eq!(git("lib.git", &["cat-file", "-t", "v1.0"]), "tag");
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let outside: Vec<String> = reports
        .iter()
        .flat_map(|r| r["outside"].as_array().cloned().unwrap_or_default())
        .map(|o| o[1].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        outside.iter().all(|p| p == "stray") && !outside.is_empty(),
        "only the path no rule matches is reported: {outside:?}"
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "rules:\n  - match: x\n    branch: a\n    tag: b\n").expect("write");
    let o = Command::new(BIN)
        .arg(&repo)
        .arg(dir.path().join("out2"))
        .arg("--rules")
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.yaml: rule 1"),
        "an unreadable rules file names the rule"
    );
    assert!(!dir.path().join("out2").exists(), "and nothing is created");
}

#[test]
fn externals_and_eol_style_are_reported_and_eol_style_becomes_gitattributes_on_request() {
    let o = migrate(&rich().repo, &["--json"]).ok();
    let v: serde_json::Value = serde_json::from_slice(&o.out.stdout).expect("json");
    let kept = v["kept_properties"].as_array().expect("list");
    assert!(
        kept.iter().any(|k| k[1] == "trunk"
            && k[2] == "svn:externals"
            && k[3].as_str().is_some_and(|s| s.contains("vendor"))),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .any(|k| k[1] == "trunk/native.txt" && k[2] == "svn:eol-style")
    );
    assert!(
        Command::new("git")
            .arg("-C")
            .arg(&o.git)
            .args(["cat-file", "-e", "main:.gitattributes"])
            .status()
            .expect("git")
            .code()
            != Some(0),
        "no .gitattributes unless asked"
    );
    let o = migrate(&rich().repo, &["--eol-attributes"]).ok();
    assert_eq!(o.git(&["show", "main:.gitattributes"]), "/native.txt text");
}

#[test]
fn an_svn_url_is_read_through_svnrdump_and_stdin_takes_a_dump() {
    let r = rich();
    let root = r.repo.parent().expect("parent").to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = Command::new("svnserve")
        .args([
            "-d",
            "--foreground",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            &port.to_string(),
            "-r",
        ])
        .arg(&root)
        .spawn()
        .expect("svnserve starts");
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "svnserve listens"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("svn://127.0.0.1:{port}/repo");
    let dir = tempfile::tempdir().expect("tmp");
    let o = Command::new(BIN)
        .arg(&url)
        .arg(dir.path().join("net"))
        .args(["--bare", "--verify"])
        .output()
        .expect("runs");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let refs = |git: &Path| {
        String::from_utf8_lossy(
            &Command::new("git")
                .arg("--git-dir")
                .arg(git)
                .args(["for-each-ref", "--format=%(objectname) %(refname)"])
                .output()
                .expect("git")
                .stdout,
        )
        .trim_end()
        .to_string()
    };
    let local = migrate(&r.repo, &["--bare"]).ok().refs();
    assert_eq!(
        refs(&dir.path().join("net")),
        local,
        "svn:// through svnrdump gives the same commits"
    );
    let stdin = std::fs::File::open(&r.v3).expect("dump");
    let o = Command::new(BIN)
        .arg("-")
        .arg(dir.path().join("pipe"))
        .arg("--bare")
        .stdin(stdin)
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        refs(&dir.path().join("pipe")),
        local,
        "a dump on stdin gives the same commits"
    );
}

#[test]
fn branches_inside_a_moved_directory_carry_on_and_names_never_collide() {
    let (_dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q --parents -m layout file://{r}/proj/trunk file://{r}/proj/branches file://{r}/trunk file://{r}/branches && \
         svn checkout -q file://{r} {d}/wc && cd {d}/wc && echo a > proj/trunk/a && echo t > trunk/t && svn add -q proj/trunk/a trunk/t && svn commit -q -m files && \
         svn cp -q -m branch file://{r}/proj/trunk file://{r}/proj/branches/b && svn cp -q -m main-branch file://{r}/trunk file://{r}/branches/main && \
         svn mv -q -m move file://{r}/proj file://{r}/proj2 && svn update -q && echo more >> proj2/branches/b/a && svn commit -q -m 'edit moved branch'",
    );
    let o = migrate(&repo, &["--json", "--verify"]).ok();
    let v: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().next().expect("summary")).expect("json");
    let refs: Vec<String> = v["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .map(|r| r[0].as_str().unwrap_or("").to_string())
        .collect();
    let unique: std::collections::BTreeSet<&String> = refs.iter().collect();
    assert_eq!(
        unique.len(),
        refs.len(),
        "no two refs share a name: {refs:?}"
    );
    assert!(
        refs.iter().any(|r| r == "refs/heads/branches/main"),
        "branches/main beside trunk gets its path as name: {refs:?}"
    );
    let edit = o.git(&["log", "--all", "--format=%s", "--grep=^edit moved branch"]);
    assert_eq!(
        edit, "edit moved branch",
        "the edit on the moved branch is converted, not dropped"
    );
    assert!(
        stdout(&o).contains("\"differences\":[]"),
        "and matches svn export"
    );
}

#[test]
fn malformed_lengths_and_deltas_are_clear_errors_not_crashes() {
    let v2 = std::fs::read(&rich().v2).expect("dump");
    let text = String::from_utf8_lossy(&v2).into_owned();
    let dir = tempfile::tempdir().expect("tmp");
    let cases = [
        (
            "huge text length",
            text.replacen(
                "Text-content-length: 6\n",
                "Text-content-length: 18446744073709551615\n",
                1,
            ),
        ),
        (
            "huge property length",
            text.replacen("K 10\nsvn:author", "K 18446744073709551615\nsvn:author", 1),
        ),
    ];
    for (what, dump) in cases {
        assert_ne!(dump, text, "{what}: the case changes the dump");
        let p = dir.path().join("bad.dump");
        std::fs::write(&p, dump).expect("write");
        let o = Command::new(BIN)
            .arg(&p)
            .arg(dir.path().join(format!("o-{}", what.len())))
            .arg("--bare")
            .output()
            .expect("runs");
        assert_eq!(
            o.status.code(),
            Some(2),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("dump r"),
            "{what}: the error names where"
        );
    }
}

#[test]
fn a_tag_of_a_subdirectory_continues_from_the_branch_it_was_copied_from() {
    let (_dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q --parents -m layout file://{r}/trunk/doc file://{r}/tags && \
         svn checkout -q file://{r}/trunk {d}/wc && echo manual > {d}/wc/doc/manual && echo code > {d}/wc/code && svn add -q {d}/wc/doc/manual {d}/wc/code && svn commit -q -m files {d}/wc && \
         svn cp -q -m 'tag the docs' file://{r}/trunk/doc file://{r}/tags/doc-1.0",
    );
    let o = migrate(&repo, &["--verify"]).ok();
    assert_eq!(
        o.git(&["rev-parse", "doc-1.0^{commit}^"]),
        o.git(&["rev-parse", "main"]),
        "the tag's commit has trunk's commit as parent, not an orphan root"
    );
    assert_eq!(
        o.git(&["rev-parse", "doc-1.0^{tree}"]),
        o.git(&["rev-parse", "main:doc"]),
        "and the subdirectory's tree"
    );
}

#[test]
fn a_merge_names_no_parent_that_another_parent_already_contains() {
    // b was copied from a after a's own commit; merging b into trunk records both
    // /branches/a and /branches/b in trunk's mergeinfo. git would make two parents.
    let (_dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q -m layout file://{r}/trunk file://{r}/branches && \
         svn co -q file://{r}/trunk {d}/t && echo f > {d}/t/f && svn add -q {d}/t/f && svn ci -q -m f {d}/t && \
         svn cp -q -m 'branch a' file://{r}/trunk file://{r}/branches/a && \
         svn co -q file://{r}/branches/a {d}/a && echo g > {d}/a/g && svn add -q {d}/a/g && svn ci -q -m g {d}/a && \
         svn cp -q -m 'branch b' file://{r}/branches/a file://{r}/branches/b && \
         svn co -q file://{r}/branches/b {d}/b && echo h > {d}/b/h && svn add -q {d}/b/h && svn ci -q -m h {d}/b && \
         svn up -q {d}/t && svn merge -q ^/branches/b {d}/t && svn ci -q -m 'merge b' {d}/t && \
         svn propget svn:mergeinfo file://{r}/trunk | grep -q /branches/a",
    );
    let o = migrate(&repo, &["--verify"]).ok();
    let parents = o.git(&["log", "-1", "--format=%P", "main"]);
    let parents: Vec<&str> = parents.split(' ').collect();
    assert_eq!(parents.len(), 2, "trunk and b only: {parents:?}");
    assert_eq!(
        parents[1],
        o.git(&["rev-parse", "b"]),
        "b is the merged parent"
    );
    assert_eq!(
        o.git(&["merge-base", "--is-ancestor", "b", "main"]),
        "",
        "and a's work is reached through it"
    );
    assert!(
        o.git(&["rev-list", "main"])
            .contains(&o.git(&["rev-parse", "a"]))
    );
}

#[test]
fn svk_and_svnmerge_merge_tickets_make_merge_parents_like_mergeinfo() {
    // git's own t9150 dump: an SVK merge of 'left' into trunk (git-svn makes it a merge).
    let o = migrate(&corpus().join("git-t9150-svk-merge.dump"), &["--bare"]).ok();
    let merge = o.git(&[
        "log",
        "--format=%H",
        "--grep=merge branch 'left' into 'trunk'",
        "main",
    ]);
    let parents = o.git(&["log", "-1", "--format=%P", &merge]);
    let parents: Vec<&str> = parents.split(' ').collect();
    assert_eq!(parents.len(), 2, "the SVK merge is a merge commit");
    assert_eq!(parents[1], o.commit_of(6, "/branches/left"), "of left@6");

    // svnmerge.py's ticket, made on a real repository (the content merged without mergeinfo).
    let (_dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q -m layout file://{r}/trunk file://{r}/branches && \
         svn co -q file://{r}/trunk {d}/t && echo f > {d}/t/f && svn add -q {d}/t/f && svn ci -q -m f {d}/t && \
         svn cp -q -m 'branch a' file://{r}/trunk file://{r}/branches/a && \
         svn co -q file://{r}/branches/a {d}/a && echo g > {d}/a/g && svn add -q {d}/a/g && svn ci -q -m g {d}/a && \
         svn up -q {d}/t && svn merge -q --ignore-ancestry -r 3:4 file://{r}/branches/a {d}/t && \
         svn propdel -q svn:mergeinfo {d}/t 2>/dev/null; svn propset -q svnmerge-integrated '/branches/a:1-4' {d}/t && \
         svn ci -q -m 'merged a (svnmerge)' {d}/t",
    );
    let o = migrate(&repo, &["--verify"]).ok();
    let parents = o.git(&["log", "-1", "--format=%P", "main"]);
    assert_eq!(
        parents.split(' ').nth(1),
        Some(o.git(&["rev-parse", "a"]).as_str()),
        "svnmerge-integrated names a: {parents}"
    );
}

/// Every revision number a dump holds (r0 aside).
fn dump_revisions(dump: &Path) -> Vec<u64> {
    let text = String::from_utf8_lossy(&std::fs::read(dump).expect("dump")).into_owned();
    text.lines()
        .filter_map(|l| l.strip_prefix("Revision-number: "))
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect()
}

/// The revisions a conversion accounts for: named by a commit's or a tag's trailer, or listed
/// as unconverted in the JSON summary.
fn accounted(o: &Out) -> (std::collections::BTreeSet<u64>, serde_json::Value) {
    let mut text = o.git(&["log", "--all", "--format=%B"]);
    text.push_str(&o.git(&["for-each-ref", "refs/tags", "--format=%(contents)"]));
    let mut revs: std::collections::BTreeSet<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("svn-revision: "))
        .filter_map(|l| l.split(' ').next()?.rsplit_once('@')?.1.parse().ok())
        .collect();
    let summary: serde_json::Value = stdout(o)
        .lines()
        .find_map(|l| {
            serde_json::from_str(l)
                .ok()
                .filter(|v: &serde_json::Value| v.get("refs").is_some())
        })
        .expect("the JSON summary");
    for u in summary["unconverted"].as_array().expect("unconverted") {
        revs.insert(u["revision"].as_u64().expect("number"));
    }
    (revs, summary)
}

#[test]
fn every_revision_is_a_commit_a_tag_or_listed_with_its_log() {
    // The class: across the whole corpus and the rich repository, no revision vanishes.
    let mut dumps: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "svn" || e == "dump"))
        .collect();
    dumps.sort();
    dumps.push(rich().v2.clone());
    let mut listed = 0;
    for d in &dumps {
        let o = migrate(d, &["--bare", "--json", "--default-domain", "example.org"]);
        if o.out.status.code() != Some(0) {
            continue; // the corpus test holds every dump to converting
        }
        let (revs, summary) = accounted(&o);
        for r in dump_revisions(d) {
            assert!(revs.contains(&r), "{}: r{r} is accounted for", d.display());
        }
        for u in summary["unconverted"].as_array().expect("list") {
            assert!(u["why"].as_str().is_some_and(|w| !w.is_empty()), "{u}");
            listed += 1;
        }
    }
    assert!(listed > 0, "the corpus has revisions that change no tree");
}

#[test]
fn property_only_and_empty_directory_revisions_are_listed_or_kept_on_request() {
    // r1 layout, r2 a file, r3 only a property, r4 only an empty directory, r5 a branch,
    // r6 a commit on it, r7 a record-only merge, then an empty revision and a branch delete.
    let (_dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q -m layout file://{r}/trunk file://{r}/branches && \
         svn co -q file://{r}/trunk {d}/t && echo f > {d}/t/f && svn add -q {d}/t/f && svn ci -q -m 'add f' {d}/t && \
         svn propset -q svn:eol-style native {d}/t/f && svn ci -q -m 'eol style only' {d}/t && \
         svn mkdir -q {d}/t/empty && svn ci -q -m 'an empty directory' {d}/t && \
         svn cp -q -m 'branch x' file://{r}/trunk file://{r}/branches/x && \
         svn co -q file://{r}/branches/x {d}/x && echo g > {d}/x/g && svn add -q {d}/x/g && svn ci -q -m 'g on x' {d}/x && \
         svn up -q {d}/t && svn merge -q --record-only ^/branches/x {d}/t && svn ci -q -m 'record-only merge of x' {d}/t && \
         svnadmin dump -q {r} > {d}/full.dump && \
         printf 'Revision-number: 8\\nProp-content-length: 119\\nContent-length: 119\\n\\nK 10\\nsvn:author\\nV 5\\nalice\\nK 8\\nsvn:date\\nV 27\\n2020-01-01T00:00:00.000000Z\\nK 7\\nsvn:log\\nV 16\\nnothing changed!\\nPROPS-END\\n\\n' >> {d}/full.dump && \
         rm -rf {r} && svnadmin create {r} && svnadmin load -q {r} < {d}/full.dump && \
         svn rm -q -m 'drop x' file://{r}/branches/x",
    );
    let o = migrate(&repo, &["--json", "--verify"]).ok();
    let (_, summary) = accounted(&o);
    let listed: Vec<(u64, String, String)> = summary["unconverted"]
        .as_array()
        .expect("list")
        .iter()
        .map(|u| {
            (
                u["revision"].as_u64().expect("rev"),
                u["log"].as_str().expect("log").to_string(),
                u["why"].as_str().expect("why").to_string(),
            )
        })
        .collect();
    let revs: Vec<u64> = listed.iter().map(|l| l.0).collect();
    assert_eq!(revs, vec![1, 3, 4, 5, 8, 9], "{listed:?}");
    assert_eq!(listed[1].1, "eol style only");
    assert!(listed[1].2.contains("properties"), "{listed:?}");
    assert!(listed[3].2.contains("creates branch x"), "{listed:?}");
    assert!(listed[4].2.contains("empty revision") && listed[4].1 == "nothing changed!");
    assert!(listed[5].2.contains("deletes"), "{listed:?}");
    let u = &summary["unconverted"][4];
    assert_eq!(u["author"], "alice");
    assert_eq!(u["date"], "2020-01-01T00:00:00.000000Z");
    // The record-only merge completes a merge: a merge commit with trunk's tree.
    let merge = o.commit_of(7, "/trunk");
    assert_eq!(
        o.git(&["log", "-1", "--format=%P", &merge])
            .split(' ')
            .count(),
        2,
        "record-only merge keeps its merge parent"
    );
    assert!(stdout(&o).contains("\"differences\":[]"));

    // Kept: an empty commit for each revision that changes a branch (its creation too); the
    // rest still listed.
    let o = migrate(
        &repo,
        &[
            "--json",
            "--keep-empty-revisions",
            "--empty-dirs=.gitkeep",
            "--verify=all",
        ],
    )
    .ok();
    for r in [1, 2, 3, 4, 7] {
        o.commit_of(r, "/trunk");
    }
    assert_eq!(
        o.git(&[
            "rev-parse",
            &format!("{}^{{tree}}", o.commit_of(3, "/trunk"))
        ]),
        o.git(&[
            "rev-parse",
            &format!("{}^{{tree}}", o.commit_of(2, "/trunk"))
        ]),
        "the property change is an empty commit"
    );
    assert_eq!(
        o.git(&["ls-tree", "--name-only", "-r", "main", "empty"]),
        "empty/.gitkeep",
        "the empty directory holds its placeholder"
    );
    let (_, summary) = accounted(&o);
    let revs: Vec<u64> = summary["unconverted"]
        .as_array()
        .expect("list")
        .iter()
        .map(|u| u["revision"].as_u64().expect("rev"))
        .collect();
    assert_eq!(revs, vec![8, 9], "what no branch can hold stays listed");
    o.commit_of(5, "/branches/x");
    assert!(
        stdout(&o).contains("\"differences\":[]"),
        "placeholders are not differences from svn export"
    );
}

#[test]
fn verify_compares_stored_bytes_where_they_contradict_their_eol_style() {
    // svn cannot commit such a file, a dump can hold one: CRLF stored under eol-style native.
    let (dir, repo) = svn_repo(
        "svnadmin create {r} && svn mkdir -q -m layout file://{r}/trunk && \
         svn co -q file://{r}/trunk {d}/wc && printf 'a\\nb\\n' > {d}/wc/x && svn add -q {d}/wc/x && \
         svn propset -q svn:eol-style native {d}/wc/x && svn ci -q -m x {d}/wc && \
         svnadmin dump -q {r} > {d}/ok.dump",
    );
    let text = std::fs::read_to_string(dir.path().join("ok.dump")).expect("dump");
    let node = text.find("Node-path: trunk/x").expect("node");
    let (head, tail) = text.split_at(node);
    let tail: String = tail
        .lines()
        .filter(|l| !l.starts_with("Text-content-md5") && !l.starts_with("Text-content-sha1"))
        .map(|l| format!("{l}\n"))
        .collect();
    let plen: usize = tail
        .lines()
        .find_map(|l| l.strip_prefix("Prop-content-length: "))
        .and_then(|n| n.parse().ok())
        .expect("props");
    let tail = tail
        .replacen("Text-content-length: 4\n", "Text-content-length: 5\n", 1)
        .replacen(
            &format!("Content-length: {}\n", plen + 4),
            &format!("Content-length: {}\n", plen + 5),
            1,
        )
        .replacen("PROPS-END\na\nb\n", "PROPS-END\na\r\nb\n", 1);
    let bad = dir.path().join("crlf.dump");
    std::fs::write(&bad, format!("{head}{tail}")).expect("write");
    let crlf = dir.path().join("crlf-repo");
    sh(&format!(
        "svnadmin create {c} && svnadmin load -q {c} < {b} && svnlook cat {c} trunk/x | od -c | grep -q '\\\\r'",
        c = crlf.display(),
        b = bad.display()
    ));
    let o = migrate(&crlf, &["--verify", "--json"]).ok();
    assert_eq!(
        o.git(&["cat-file", "blob", "main:x"]),
        "a\r\nb",
        "git keeps the stored bytes"
    );
    assert!(
        stdout(&o).contains("\"differences\":[]"),
        "no false difference: {}",
        stdout(&o)
    );
    drop(repo);
}
