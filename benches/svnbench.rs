//! git-svn-migrate benchmark: a generated Subversion dump of 20,000 revisions (200 files, a
//! branch every 100 revisions with sync merges back to trunk carrying svn:mergeinfo, a tag
//! every 500) converted by git-svn-migrate, reposurgeon and svn-all-fast-export (from the
//! repository loaded with `svnadmin load`), and git-svn on the first 500 revisions, in the same
//! run. Wall time, peak RSS, revisions per second, merges found.
//!
//! Run: `cargo bench --bench svnbench` (`BENCH_REVS=5000` for the research's smaller size).

mod common;

use common::{Row, env_n, loadavg, measure, print_table};
use md5::Digest;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

const MIGRATE: &str = env!("CARGO_BIN_EXE_git-svn-migrate");

struct Dump<W: Write> {
    w: W,
    rev: u64,
}

impl<W: Write> Dump<W> {
    fn props(p: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in p {
            out.extend_from_slice(format!("K {}\n{k}\nV {}\n{v}\n", k.len(), v.len()).as_bytes());
        }
        out.extend_from_slice(b"PROPS-END\n");
        out
    }

    fn revision(&mut self, author: &str, log: &str) {
        self.rev += 1;
        let date = format!(
            "2020-01-01T{:02}:{:02}:{:02}.000000Z",
            (self.rev / 3600) % 24,
            (self.rev / 60) % 60,
            self.rev % 60
        );
        let p = Self::props(&[
            ("svn:author", author),
            ("svn:date", &date),
            ("svn:log", log),
        ]);
        write!(
            self.w,
            "Revision-number: {}\nProp-content-length: {}\nContent-length: {}\n\n",
            self.rev,
            p.len(),
            p.len()
        )
        .expect("write");
        self.w.write_all(&p).expect("write");
        self.w.write_all(b"\n").expect("write");
    }

    fn dir(
        &mut self,
        path: &str,
        action: &str,
        copy: Option<(u64, &str)>,
        props: Option<&[(&str, &str)]>,
    ) {
        write!(
            self.w,
            "Node-path: {path}\nNode-kind: dir\nNode-action: {action}\n"
        )
        .expect("write");
        if let Some((r, p)) = copy {
            write!(self.w, "Node-copyfrom-rev: {r}\nNode-copyfrom-path: {p}\n").expect("write");
        }
        match props {
            Some(p) => {
                let p = Self::props(p);
                write!(
                    self.w,
                    "Prop-content-length: {}\nContent-length: {}\n\n",
                    p.len(),
                    p.len()
                )
                .expect("write");
                self.w.write_all(&p).expect("write");
            }
            None => self.w.write_all(b"\n").expect("write"),
        }
        self.w.write_all(b"\n\n").expect("write");
    }

    fn file(&mut self, path: &str, action: &str, text: &[u8]) {
        let md5: [u8; 16] = md5::Md5::digest(text).into();
        let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
        let props = if action == "add" {
            Self::props(&[])
        } else {
            Vec::new()
        };
        write!(
            self.w,
            "Node-path: {path}\nNode-kind: file\nNode-action: {action}\nText-content-md5: {hex}\n"
        )
        .expect("write");
        if !props.is_empty() {
            writeln!(self.w, "Prop-content-length: {}", props.len()).expect("write");
        }
        write!(
            self.w,
            "Text-content-length: {}\nContent-length: {}\n\n",
            text.len(),
            props.len() + text.len()
        )
        .expect("write");
        self.w.write_all(&props).expect("write");
        self.w.write_all(text).expect("write");
        self.w.write_all(b"\n\n").expect("write");
    }
}

fn content(file: usize, rev: u64) -> Vec<u8> {
    (0..40)
        .map(|l| {
            if l == (rev as usize % 40) {
                format!("file {file} line {l} changed in r{rev}\n")
            } else {
                format!("file {file} line {l} of the generated project\n")
            }
        })
        .collect::<String>()
        .into_bytes()
}

/// Writes the synthetic dump; returns (revisions, sync merges).
fn generate(path: &Path, revs: u64) -> (u64, u64) {
    let mut d = Dump {
        w: std::io::BufWriter::new(std::fs::File::create(path).expect("dump")),
        rev: 0,
    };
    d.w.write_all(
        b"SVN-fs-dump-format-version: 2\n\nUUID: 6f2b2f1e-0000-4000-8000-000000000001\n\n",
    )
    .expect("write");
    let p = Dump::<std::io::BufWriter<std::fs::File>>::props(&[(
        "svn:date",
        "2020-01-01T00:00:00.000000Z",
    )]);
    write!(
        d.w,
        "Revision-number: 0\nProp-content-length: {}\nContent-length: {}\n\n",
        p.len(),
        p.len()
    )
    .expect("write");
    d.w.write_all(&p).expect("write");
    d.w.write_all(b"\n").expect("write");
    d.revision("alice", "Standard layout");
    for dir in ["trunk", "branches", "tags"] {
        d.dir(dir, "add", None, None);
    }
    d.revision("alice", "Initial import");
    let name = |f: usize| format!("d{}/f{}.txt", f / 10, f % 10);
    for g in 0..20 {
        d.dir(&format!("trunk/d{g}"), "add", None, None);
    }
    let mut trunk: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    for f in 0..200 {
        let c = content(f, 2);
        d.file(&format!("trunk/{}", name(f)), "add", &c);
        trunk.insert(f, c);
    }
    let (mut branch, mut merges, mut mergeinfo) = (
        None::<(String, u64, BTreeMap<usize, Vec<u8>>)>,
        0,
        BTreeMap::<String, String>::new(),
    );
    while d.rev < revs {
        let next = d.rev + 1;
        match next % 100 {
            3 => {
                let b = format!("b{}", next / 100);
                d.revision("bob", &format!("Create branch {b}"));
                d.dir(
                    &format!("branches/{b}"),
                    "add",
                    Some((next - 1, "trunk")),
                    None,
                );
                branch = Some((b, next, BTreeMap::new()));
            }
            90 if branch.is_some() => {
                let (b, created, changed) = branch.take().expect("branch");
                d.revision("alice", &format!("Merge {b} into trunk"));
                mergeinfo.insert(b.clone(), format!("/branches/{b}:{created}-{}", next - 1));
                let mi: String = mergeinfo.values().cloned().collect::<Vec<_>>().join("\n");
                d.dir("trunk", "change", None, Some(&[("svn:mergeinfo", &mi)]));
                for (f, c) in changed {
                    d.file(&format!("trunk/{}", name(f)), "change", &c);
                    trunk.insert(f, c);
                }
                merges += 1;
            }
            50 if next % 500 == 250 => {
                d.revision("carol", &format!("Tag t{}", next / 500));
                d.dir(
                    &format!("tags/t{}", next / 500),
                    "add",
                    Some((next - 1, "trunk")),
                    None,
                );
            }
            _ => {
                let on_branch = next % 2 == 1 && branch.is_some();
                let who = if on_branch { "bob" } else { "alice" };
                d.revision(who, &format!("Change r{next}"));
                for k in 0..2 {
                    let f = if on_branch {
                        100 + (next as usize * 7 + k * 13) % 100
                    } else {
                        (next as usize * 7 + k * 13) % 100
                    };
                    let c = content(f, next);
                    match &mut branch {
                        Some((b, _, changed)) if on_branch => {
                            d.file(&format!("branches/{b}/{}", name(f)), "change", &c);
                            changed.insert(f, c);
                        }
                        _ => {
                            d.file(&format!("trunk/{}", name(f)), "change", &c);
                            trunk.insert(f, c);
                        }
                    }
                }
            }
        }
    }
    d.w.flush().expect("flush");
    (d.rev, merges)
}

fn count_merges(git_dir: &Path) -> u64 {
    let o = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-list", "--all", "--merges", "--count"])
        .output()
        .expect("git");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

const RULES: &str = "create repository out\nend repository\nmatch /trunk/\n  repository out\n  branch master\nend match\nmatch /branches/([^/]+)/\n  repository out\n  branch \\1\nend match\nmatch /tags/([^/]+)/\n  repository out\n  branch refs/tags/\\1\n  annotated true\nend match\nmatch /\nend match\n";

fn main() {
    let load0 = loadavg();
    let revs = env_n("BENCH_REVS", 20_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let dump = t.join("synthetic.dump");
    let (n, merges) = generate(&dump, revs);
    let mut rows = Vec::new();
    let mut line = format!("RESULT revisions={n} merges_in_dump={merges}");
    let mut row = |name: &str, r: (f64, f64, i32), revs: u64, found: u64| {
        rows.push(Row {
            name: name.into(),
            cols: vec![
                format!("{:.2}", r.0),
                format!("{:.0}", revs as f64 / r.0),
                format!("{:.0}", r.1),
                found.to_string(),
                r.2.to_string(),
            ],
        });
        revs as f64 / r.0
    };
    let ours = measure(
        Command::new(MIGRATE)
            .arg(&dump)
            .arg(t.join("ours"))
            .arg("--bare"),
    );
    let ours_rate = row(
        "git-svn-migrate (dump)",
        ours,
        n,
        count_merges(&t.join("ours")),
    );
    if std::env::var_os("BENCH_ONLY_OURS").is_some() {
        let header = [
            "tool",
            "wall s",
            "rev/s",
            "peak RSS MiB",
            "merges found",
            "exit",
        ];
        print_table("git-svn-migrate only (BENCH_ONLY_OURS)", &header, &rows);
        println!("kept {}", tmp.keep().display());
        return;
    }
    let rs = measure(
        Command::new("reposurgeon")
            .arg(format!("read <{}", dump.display()))
            .arg("prefer git")
            .arg(format!("rebuild {}", t.join("rs").display())),
    );
    let rs_rate = row(
        "reposurgeon (dump)",
        rs,
        n,
        count_merges(&t.join("rs/.git")),
    );
    let repo = t.join("repo");
    assert!(
        Command::new("svnadmin")
            .arg("create")
            .arg(&repo)
            .status()
            .expect("svnadmin")
            .success()
    );
    let load = measure(Command::new("bash").arg("-c").arg(format!(
        "svnadmin load -q --no-flush-to-disk {} < {}",
        repo.display(),
        dump.display()
    )));
    row("(svnadmin load, setup for the two below)", load, n, 0);
    let rules = t.join("rules.txt");
    std::fs::write(&rules, RULES).expect("rules");
    std::fs::create_dir(t.join("safe")).expect("mkdir");
    let safe = measure(
        Command::new("svn-all-fast-export")
            .arg("--rules")
            .arg(&rules)
            .arg(&repo)
            .current_dir(t.join("safe")),
    );
    let safe_rate = row(
        "svn-all-fast-export (repo)",
        safe,
        n,
        count_merges(&t.join("safe/out")),
    );
    let first = 500.min(n);
    let gs = measure(
        Command::new("git")
            .args([
                "svn",
                "clone",
                "-q",
                "--stdlayout",
                "-r",
                &format!("0:{first}"),
            ])
            .arg(format!("file://{}", repo.display()))
            .arg(t.join("gitsvn")),
    );
    let gs_rate = row(
        &format!("git-svn (first {first} revisions)"),
        gs,
        first,
        count_merges(&t.join("gitsvn/.git")),
    );
    let ours_repo = measure(
        Command::new(MIGRATE)
            .arg(&repo)
            .arg(t.join("ours-repo"))
            .arg("--bare"),
    );
    row(
        "git-svn-migrate (repository, via svnadmin dump)",
        ours_repo,
        n,
        count_merges(&t.join("ours-repo")),
    );
    print_table(
        &format!("{n} revisions, {merges} sync merges"),
        &[
            "tool",
            "wall s",
            "rev/s",
            "peak RSS MiB",
            "merges found",
            "exit",
        ],
        &rows,
    );
    let fastest_peer = rs_rate.max(safe_rate).max(gs_rate);
    line += &format!(
        " ours_rev_s={ours_rate:.0} reposurgeon_rev_s={rs_rate:.0} svn_all_fast_export_rev_s={safe_rate:.0} git_svn_rev_s={gs_rate:.1} vs_fastest_peer={:.1} ours_rss_mib={:.0} merges_found={}",
        ours_rate / fastest_peer,
        ours.1,
        count_merges(&t.join("ours"))
    );
    println!("\nload average before: {load0}; after: {}", loadavg());
    println!("{line}");
}
