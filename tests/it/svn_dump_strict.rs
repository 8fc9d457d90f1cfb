//! git-svn-migrate's dump parser is at least as strict as `svnadmin load`, the real loader
//! being the oracle: every lie in a dump that svnadmin refuses is refused with an error naming
//! the revision, every dump svnadmin loads converts to exactly what the loaded repository
//! converts to, and mutated corpus dumps (fixed seed) never crash the converter.

use crate::svn_migrate::sh;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_git-svn-migrate");

/// A small real repository: layout, a file with a property, an edit; dumped as format 2.
fn small_dump(dir: &Path) -> Vec<u8> {
    let r = dir.join("repo");
    sh(&format!(
        "svnadmin create {r} && svn mkdir -q -m layout file://{r}/trunk file://{r}/branches && \
         svn co -q file://{r}/trunk {w} && printf 'hello world\\nline2\\n' > {w}/a && \
         svn add -q {w}/a && svn propset -q svn:eol-style native {w}/a && svn ci -q -m one {w} && \
         printf 'hello again\\n' >> {w}/a && svn ci -q -m two {w} && \
         svnadmin dump -q {r} > {d}",
        r = r.display(),
        w = dir.join("wc").display(),
        d = dir.join("small.dump").display(),
    ));
    std::fs::read(dir.join("small.dump")).expect("dump")
}

/// `svnadmin load` of `dump` into a fresh repository: the repository, or svnadmin's error.
fn svnadmin_load(dump: &[u8], at: &Path) -> Result<PathBuf, String> {
    let _ = std::fs::remove_dir_all(at);
    sh(&format!("svnadmin create {}", at.display()));
    let mut c = Command::new("svnadmin")
        .args(["load", "-q", "--force-uuid"])
        .arg(at)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("svnadmin");
    let mut stdin = c.stdin.take().expect("stdin");
    let feed = {
        let dump = dump.to_vec();
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &dump);
        })
    };
    let o = c.wait_with_output().expect("svnadmin runs");
    feed.join().expect("feeder");
    match o.status.success() {
        true => Ok(at.to_path_buf()),
        false => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
    }
}

/// What a loaded repository holds, as svnadmin dumps it (its UUID left out).
fn svnadmin_dump(repo: &Path) -> Vec<u8> {
    let o = Command::new("svnadmin")
        .args(["dump", "-q"])
        .arg(repo)
        .output()
        .expect("svnadmin dump");
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.lines()
        .filter(|l| !l.starts_with("UUID: "))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// git-svn-migrate of `source` (a dump file or repository) into a new bare `dest`.
fn convert(source: &Path, dest: &Path) -> Output {
    let o = Command::new(BIN)
        .arg(source)
        .arg(dest)
        .arg("--bare")
        .env_remove("BITROT_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("runs");
    if let Some(code) = o.status.code() {
        assert!(
            code == 0 || code == 2,
            "exit {code}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "no panic: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn refs(dir: &Path) -> String {
    git(dir, &["for-each-ref", "--format=%(objectname) %(refname)"])
}

/// What a user compares of two conversions, with the repository UUID (which svnadmin makes
/// up for a dump that has none) left out: every ref with its history's trees, authors, dates
/// and messages.
fn history(dir: &Path, uuid: &str) -> String {
    let mut out = String::new();
    for name in git(dir, &["for-each-ref", "--format=%(refname)"]).lines() {
        out.push_str(name);
        out.push('\n');
        out.push_str(&git(
            dir,
            &["log", "--topo-order", "--format=%T %an %ae %at %B", name],
        ));
        // The shape of the history: how many parents each commit has.
        out.push_str(
            &git(dir, &["log", "--topo-order", "--format=%p", name])
                .lines()
                .map(|l| l.split(' ').filter(|p| !p.is_empty()).count().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        out.push('\n');
    }
    if uuid.is_empty() {
        return out;
    }
    out.replace(uuid, "")
}

/// The UUID a dump names (empty when it names none), and the one svnadmin gave its load.
fn uuids(dump: &[u8], loaded: &Path) -> (String, String) {
    let text = String::from_utf8_lossy(dump);
    let named = text
        .lines()
        .find_map(|l| l.strip_prefix("UUID: "))
        .unwrap_or_default()
        .to_string();
    let o = Command::new("svnlook")
        .arg("uuid")
        .arg(loaded)
        .output()
        .expect("svnlook");
    (named, String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Replaces the first `from` at or after `anchor` with `to`.
fn lie(dump: &[u8], anchor: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(dump.to_vec()).expect("the small dump is UTF-8");
    let at = text.find(anchor).unwrap_or_else(|| panic!("{anchor}"));
    let rel = text[at..].find(from).unwrap_or_else(|| panic!("{from}"));
    let mut out = text[..at + rel].to_string();
    out.push_str(to);
    out.push_str(&text[at + rel + from.len()..]);
    assert_ne!(out, text);
    out.into_bytes()
}

const FILE_ADD: &str = "Node-path: trunk/a\nNode-kind: file\nNode-action: add\n";
const DIR_ADD: &str = "Node-path: branches\nNode-kind: dir\nNode-action: add\n";

#[test]
fn every_lie_svnadmin_refuses_is_refused_naming_the_revision() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = small_dump(dir.path());
    let no_sums = |d: Vec<u8>| -> Vec<u8> {
        let t = String::from_utf8(d).expect("utf-8");
        t.lines()
            .filter(|l| !l.starts_with("Text-content-md5") && !l.starts_with("Text-content-sha1"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "Content-length +10",
            lie(&d, FILE_ADD, "Content-length: 58\n", "Content-length: 68\n"),
            "r2",
        ),
        (
            "Content-length -10",
            lie(&d, FILE_ADD, "Content-length: 58\n", "Content-length: 48\n"),
            "Content-length",
        ),
        (
            "Content-length 10^14",
            lie(
                &d,
                FILE_ADD,
                "Content-length: 58\n",
                "Content-length: 100000000000000\n",
            ),
            "Content-length",
        ),
        (
            "negative Content-length",
            lie(
                &d,
                FILE_ADD,
                "Content-length: 58\n",
                "Content-length: -58\n",
            ),
            "Content-length",
        ),
        (
            "Prop-content-length past Content-length",
            lie(
                &d,
                FILE_ADD,
                "Prop-content-length: 40\n",
                "Prop-content-length: 45\n",
            ),
            "Content-length",
        ),
        (
            "Text-content-length +3 without checksums",
            no_sums(lie(
                &d,
                FILE_ADD,
                "Text-content-length: 18\nContent-length: 58\n",
                "Text-content-length: 21\nContent-length: 61\n",
            )),
            "r2",
        ),
        (
            "revision Content-length +10",
            lie(
                &d,
                "Revision-number: 2\n",
                "Content-length: 101\n",
                "Content-length: 111\n",
            ),
            "r2",
        ),
        (
            "a directory with a text",
            lie(
                &d,
                DIR_ADD,
                "Prop-content-length: 10\nContent-length: 10\n\nPROPS-END\n",
                "Prop-content-length: 10\nText-content-length: 4\nContent-length: 14\n\nPROPS-END\nabc\n",
            ),
            "directory",
        ),
        (
            "no format-version line",
            lie(&d, "SVN-fs", "SVN-fs-dump-format-version: 2\n\n", ""),
            "SVN-fs-dump-format-version",
        ),
        (
            "an add without a kind",
            lie(&d, FILE_ADD, "Node-kind: file\n", ""),
            "Node-kind",
        ),
        (
            "an unknown kind",
            lie(&d, FILE_ADD, "Node-kind: file\n", "Node-kind: fil\n"),
            "Node-kind",
        ),
        (
            "an unknown action",
            lie(&d, FILE_ADD, "Node-action: add\n", "Node-action: ad\n"),
            "Node-action",
        ),
        (
            "a change of a path that does not exist",
            lie(
                &d,
                "Revision-number: 3\n",
                "Node-path: trunk/a\nNode-kind: file\nNode-action: change\n",
                "Node-path: trunk/zz\nNode-kind: file\nNode-action: change\n",
            ),
            "trunk/zz",
        ),
    ];
    for (i, (what, dump, names)) in cases.into_iter().enumerate() {
        let refused = svnadmin_load(&dump, &dir.path().join("oracle"));
        assert!(refused.is_err(), "{what}: the oracle refuses it too");
        let p = dir.path().join(format!("case-{i}.dump"));
        std::fs::write(&p, &dump).expect("write");
        let o = convert(&p, &dir.path().join(format!("git-{i}")));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: refused: {err}");
        assert!(
            err.contains(names)
                && (err.contains("dump r")
                    || err.contains("dump header")
                    || err.contains(", node \"")),
            "{what}: the error names {names:?} and where: {err}"
        );
    }
}

#[test]
fn revisions_that_go_backwards_or_repeat_are_refused_and_gaps_are_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = small_dump(dir.path());
    for (what, to) in [("repeated", "2"), ("backwards", "1")] {
        let dump = lie(
            &d,
            "Revision-number: 3\n",
            "Revision-number: 3\n",
            &format!("Revision-number: {to}\n"),
        );
        let p = dir.path().join(format!("{what}.dump"));
        std::fs::write(&p, &dump).expect("write");
        let o = convert(&p, &dir.path().join(format!("git-{what}")));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(&format!("Revision-number {to} follows r2")),
            "{what}: {err}"
        );
    }
    // A gap (a renumbered or filtered dump) converts, with the dump's own numbers.
    let dump = lie(
        &d,
        "Revision-number: 3\n",
        "Revision-number: 3\n",
        "Revision-number: 7\n",
    );
    let p = dir.path().join("gap.dump");
    std::fs::write(&p, &dump).expect("write");
    let git = dir.path().join("git-gap");
    let o = convert(&p, &git);
    assert_eq!(o.status.code(), Some(0));
    let log = Command::new("git")
        .arg("--git-dir")
        .arg(&git)
        .args(["log", "-1", "--format=%B", "main"])
        .output()
        .expect("git");
    assert!(String::from_utf8_lossy(&log.stdout).contains("@7 /trunk"));
}

#[test]
fn what_svnadmin_loads_converts_exactly_as_the_loaded_repository_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = small_dump(dir.path());
    let stale_sha1 = {
        let t = String::from_utf8(d.clone()).expect("utf-8");
        let at = t.find("Text-content-sha1: ").expect("sha1") + "Text-content-sha1: ".len();
        let mut b = t.into_bytes();
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        b
    };
    let half = d
        .windows(19)
        .position(|w| w == b"Revision-number: 2\n")
        .expect("r2");
    let concatenated = {
        // `cat a.dump b.dump`: the second part repeats the version and UUID records.
        let head = String::from_utf8(d[..half].to_vec()).expect("utf-8");
        let uuid_end = head.find("\n\nRevision-number: 0").expect("r0");
        let mut c = d[..half].to_vec();
        c.extend_from_slice(&head.as_bytes()[..uuid_end + 2]);
        c.extend_from_slice(&d[half..]);
        c
    };
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "Content-length +1 (a blank line counted in)",
            lie(&d, FILE_ADD, "Content-length: 58\n", "Content-length: 59\n"),
            None,
        ),
        (
            "no Content-length",
            lie(&d, FILE_ADD, "Content-length: 58\n", ""),
            None,
        ),
        (
            "Prop-content-length off, Content-length agreeing with it",
            lie(
                &d,
                FILE_ADD,
                "Prop-content-length: 40\nText-content-length: 18\nContent-length: 58\n",
                "Prop-content-length: 35\nText-content-length: 18\nContent-length: 53\n",
            ),
            Some("Prop-content-length 35, but the property section is 40 bytes"),
        ),
        (
            "a stale sha1 beside a right md5",
            stale_sha1,
            Some("not its Text-content-sha1"),
        ),
        ("two dumps concatenated", concatenated, None),
    ];
    for (i, (what, dump, warning)) in cases.into_iter().enumerate() {
        let loaded = svnadmin_load(&dump, &dir.path().join(format!("oracle-{i}")))
            .unwrap_or_else(|e| panic!("{what}: the oracle loads it: {e}"));
        let p = dir.path().join(format!("ok-{i}.dump"));
        std::fs::write(&p, &dump).expect("write");
        let ours = dir.path().join(format!("ours-{i}"));
        let o = convert(&p, &ours);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let theirs = dir.path().join(format!("theirs-{i}"));
        assert_eq!(convert(&loaded, &theirs).status.code(), Some(0));
        assert_eq!(refs(&ours), refs(&theirs), "{what}: the same commits");
        match warning {
            Some(w) => assert!(stdout.contains(w), "{what}: warned: {stdout}"),
            None => assert!(!stdout.contains("warning"), "{what}: {stdout}"),
        }
    }
}

/// splitmix64: a fixed-seed sequence, so that a failure names a case that can be re-run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One mutation of a dump's header lines (the part a lying writer gets wrong).
fn mutate(dump: &[u8], rng: &mut Rng) -> (String, Vec<u8>) {
    let lines: Vec<&[u8]> = dump.split_inclusive(|&b| b == b'\n').collect();
    let header = |l: &[u8]| {
        [
            &b"Content-length: "[..],
            b"Prop-content-length: ",
            b"Text-content-length: ",
            b"Node-kind: ",
            b"Node-action: ",
            b"Node-copyfrom-rev: ",
            b"Node-copyfrom-path: ",
            b"Text-content-md5: ",
        ]
        .iter()
        .any(|h| l.starts_with(h))
    };
    let candidates: Vec<usize> = (0..lines.len()).filter(|&i| header(lines[i])).collect();
    let i = candidates[rng.below(candidates.len())];
    let line = String::from_utf8_lossy(lines[i]).into_owned();
    let (name, value) = line.trim_end().split_once(": ").expect("header");
    let new = match rng.below(4) {
        0 => String::new(),
        _ if name.ends_with("length") || name == "Node-copyfrom-rev" => {
            let n: i64 = value.parse().unwrap_or(0);
            let d = [-10, -1, 1, 10, 1_000_000][rng.below(5)];
            format!("{name}: {}\n", n + d)
        }
        _ if name == "Node-kind" => format!("{name}: {}\n", ["file", "dir"][rng.below(2)]),
        _ if name == "Node-action" => format!(
            "{name}: {}\n",
            ["add", "change", "delete", "replace"][rng.below(4)]
        ),
        _ => format!("{name}: {value}x\n"),
    };
    let mut out = Vec::with_capacity(dump.len());
    for (j, l) in lines.iter().enumerate() {
        out.extend_from_slice(if j == i { new.as_bytes() } else { l });
    }
    (
        format!(
            "line {} {:?} -> {:?}",
            i + 1,
            line.trim_end(),
            new.trim_end()
        ),
        out,
    )
}

#[test]
fn mutated_corpus_dumps_are_refused_by_name_or_convert_as_svnadmin_loads_them() {
    let corpus = crate::svn_migrate::corpus();
    let mut dumps: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "svn" || e == "dump"))
        .collect();
    dumps.sort();
    let dir = tempfile::tempdir().expect("tmp");
    let mut rng = Rng(0x5eed_0016);
    let (mut both_refuse, mut both_load, mut stricter) = (0, 0, Vec::new());
    let (mut svnadmin_misread, mut malformed_checksum) = (0, 0);
    // Two rounds over the corpus in the suite; BITROT_DUMP_FUZZ_ROUNDS=N for a longer run.
    let rounds: u32 = std::env::var("BITROT_DUMP_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut n = 0;
    for round in 0..rounds {
        for path in &dumps {
            n += 1;
            let original = std::fs::read(path).expect("read");
            let (what, dump) = mutate(&original, &mut rng);
            let case = format!("{} round {round}: {what}", path.display());
            let oracle = svnadmin_load(&dump, &dir.path().join("oracle"));
            let p = dir.path().join("m.dump");
            std::fs::write(&p, &dump).expect("write");
            let ours = dir.path().join(format!("ours-{n}"));
            let o = convert(&p, &ours);
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            match (oracle, o.status.code()) {
                (Err(e), Some(2)) => {
                    assert!(
                        err.contains("dump r")
                            || err.contains("dump header")
                            || err.contains(", node "),
                        "{case}: the error names where (svnadmin: {e}): {err}"
                    );
                    both_refuse += 1;
                }
                (Err(e), _) => panic!("{case}: svnadmin refuses it ({e}), we converted it"),
                (Ok(loaded), Some(0)) => {
                    let theirs = dir.path().join(format!("theirs-{n}"));
                    assert_eq!(convert(&loaded, &theirs).status.code(), Some(0), "{case}");
                    let (named, made_up) = uuids(&dump, &loaded);
                    if named == made_up {
                        assert_eq!(refs(&ours), refs(&theirs), "{case}: the same commits");
                    } else {
                        assert_eq!(
                            history(&ours, ""),
                            history(&theirs, &made_up),
                            "{case}: the same histories (the dump has no UUID)"
                        );
                    }
                    both_load += 1;
                }
                (Ok(loaded), _) => {
                    // Refusing what svnadmin loads is right only where svnadmin's load is not
                    // what the dump meant: the lie made it skip or misread data.
                    // A checksum header that is not a checksum is refused by design.
                    let original_load = svnadmin_load(&original, &dir.path().join("original"))
                        .expect("the corpus loads");
                    if err.contains("bad Text-content-md5") || err.contains("bad Text-content-sha1")
                    {
                        malformed_checksum += 1;
                    } else if svnadmin_dump(&loaded) == svnadmin_dump(&original_load) {
                        stricter.push(format!("{case}: {err}"));
                    } else {
                        svnadmin_misread += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "{n} mutants: {both_refuse} refused by both, {both_load} loaded by both, \
         {svnadmin_misread} refused by us where svnadmin loads something else, \
         {malformed_checksum} malformed checksum headers refused, {} refused only by us",
        stricter.len()
    );
    for s in &stricter {
        eprintln!("  stricter: {s}");
    }
    assert!(
        both_refuse > 0 && both_load > 0,
        "the mutations reach both sides"
    );
    assert!(
        stricter.is_empty(),
        "refused what svnadmin loads: {stricter:#?}"
    );
}
