//! `git-svn-migrate` (`git svn-migrate`): the command line of [`crate::svn`].

use crate::svn::convert::odb::Packs;
use crate::svn::convert::{self, Converter, Options, Outcome};
use crate::svn::dump::{Reader, Record};
use anyhow::{Context, Result, bail};
use clap::Parser;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;

const EXIT_CODES: &str = "\
Exit status:
  0  converted (and, with --verify, every checked tree matches Subversion)
  1  --verify found a difference (listed)
  2  bad input: unreadable or corrupt dump (the message names the revision and node),
     checksum mismatch, bad authors file, unknown authors; refs show the last complete revision
  3  an unusable SOURCE/DEST (DEST exists without --resume, svnadmin missing, ...)
  129  bad usage: an unknown flag or subcommand, a missing or extra argument (as git's own
       commands do)";

/// Convert a Subversion repository to git: branches, tags, merges, authors, exactly and fast.
#[derive(Parser, Debug)]
#[command(
    name = "git-svn-migrate",
    version,
    after_help = super::after_help(EXIT_CODES),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    sub: Option<Sub>,
    /// Repository path or file:// URL (svnadmin dump), svn:// or http(s):// URL (svnrdump dump), a dump file, or - for stdin
    #[arg(required_unless_present = "generate", value_hint = clap::ValueHint::AnyPath)]
    source: Option<String>,
    /// The git repository to create
    #[arg(required_unless_present = "generate")]
    dest: Option<PathBuf>,
    /// Authors map: `user = Name <email>` lines (git-svn's format) or YAML `user: Name <email>`
    #[arg(long, value_name = "FILE")]
    authors: Option<PathBuf>,
    /// YAML rules: which paths are branches, tags or nothing (per revision range), and which
    /// repository under DEST each project goes to
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Write `.gitattributes` from `svn:eol-style` (native: text, LF: text eol=lf, CRLF: -text)
    #[arg(long)]
    eol_attributes: bool,
    /// Make an empty commit for each revision that changes a branch in nothing git records
    /// (property changes, empty directories); without it they are listed in the report
    #[arg(long)]
    keep_empty_revisions: bool,
    /// Keep empty directories as an empty file of this name (e.g. `--empty-dirs=.gitkeep`)
    #[arg(long, value_name = "NAME", require_equals = true, value_parser = placeholder_name)]
    empty_dirs: Option<String>,
    /// Email domain for users the authors map lacks (otherwise they stop the run)
    #[arg(long, value_name = "DOMAIN")]
    default_domain: Option<String>,
    /// Create a bare repository
    #[arg(long)]
    bare: bool,
    /// Branch name for trunk
    #[arg(long, default_value = "main", value_name = "NAME")]
    trunk: String,
    /// Continue an interrupted conversion into DEST (gives the same commits as one run)
    #[arg(long)]
    resume: bool,
    /// Make every checkpoint after this many revisions (refs updated, resumable from there)
    #[arg(long, default_value_t = 5000, value_name = "N")]
    checkpoint_every: u64,
    /// Compare every branch and tag tip (`--verify=all`: every commit) with `svn export` of its revision
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "tips", value_name = "WHAT")]
    verify: Option<Verify>,
    /// Machine-readable JSON summary on stdout
    #[arg(long)]
    json: bool,
    /// (set by `sync`) Check that the revisions DEST holds convert to exactly its refs again
    #[arg(long, hide = true, requires = "resume")]
    sync_check: bool,
    /// Print the man page or the bash completion script and exit (for packagers)
    #[arg(long, hide = true, value_enum, exclusive = true)]
    generate: Option<super::Generate>,
}

/// Other things than a conversion (`git svn-migrate SOURCE DEST` converts).
#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// List every svn author of SOURCE with their revision counts, as an authors file to fill in
    Authors {
        /// Repository path or URL, a dump file, or - for stdin (as for a conversion)
        source: String,
        /// Email domain to write for every author (otherwise the email is left to fill in)
        #[arg(long, value_name = "DOMAIN")]
        default_domain: Option<String>,
        /// One JSON object instead: authors with revisions, first and last revision
        #[arg(long)]
        json: bool,
    },
    /// Continue a finished conversion in DEST with the revisions Subversion has gained since,
    /// giving the commits a one-shot conversion of the longer history gives; refused when the
    /// history already converted changed
    Sync {
        /// A git repository made by git-svn-migrate
        dest: PathBuf,
        /// Read from here instead of the source the conversion recorded
        #[arg(long, value_name = "SOURCE", value_hint = clap::ValueHint::AnyPath)]
        source: Option<String>,
        /// Compare with `svn export` afterwards (as for a conversion)
        #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "tips", value_name = "WHAT")]
        verify: Option<Verify>,
        /// Machine-readable JSON summary on stdout
        #[arg(long)]
        json: bool,
    },
}

/// What `--verify` compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Verify {
    Tips,
    All,
}

pub fn main() -> ExitCode {
    let cli = match super::parse_args::<Cli>(super::GIT_USAGE_EXIT) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(cli, &mut std::io::stdout().lock()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = if e.downcast_ref::<BadInput>().is_some()
                || e.downcast_ref::<OtherRepository>().is_some()
            {
                2
            } else {
                3
            };
            super::report_error("git-svn-migrate", &e, code)
        }
    }
}

/// An error in the input (exit 2), as opposed to usage or environment (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

/// The resume state kept in DEST: where the conversion stands and which Subversion
/// repository it is of (its UUID and the date of its first revision, compared on `--resume`).
#[derive(serde::Serialize, serde::Deserialize, Debug, Default, Clone)]
struct State {
    uuid: String,
    #[serde(default)]
    first_date: Option<String>,
    last_revision: u64,
    complete: bool,
    /// Where the dump came from (an absolute path or a URL; none for stdin), for `sync`.
    #[serde(default)]
    source: Option<String>,
    /// The options the conversion ran with, as arguments, for `sync` to run with again.
    #[serde(default)]
    args: Vec<String>,
    /// The authors and rules files' contents (sha1), which the commits depend on.
    #[serde(default)]
    inputs_sha1: Option<String>,
}

/// The source turned out to be another repository than the one DEST was converted from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct OtherRepository(String);

/// What the dump has said so far about which repository it is, and, on `--resume`, what DEST
/// recorded.
#[derive(Default)]
struct Binding {
    seen: State,
    dates_seen: bool,
    expected: Option<State>,
    /// `sync`: the replayed revisions must give DEST's refs again; done once checked.
    sync: bool,
    synced: bool,
}

impl Binding {
    /// Whether `number` is one DEST already holds (no checkpoint may rewrite refs for it).
    fn replaying(&self, number: u64) -> bool {
        self.expected
            .as_ref()
            .is_some_and(|e| number <= e.last_revision)
    }
}

impl Binding {
    /// Checks one record against the recorded identity, before it is applied.
    fn check(&mut self, record: &Record) -> Result<()> {
        match record {
            Record::Uuid(u) => {
                self.seen.uuid = u.clone();
                if let Some(e) = self.expected.as_ref().filter(|e| !e.uuid.is_empty())
                    && e.uuid != *u
                {
                    bail!(OtherRepository(format!(
                        "this dump is of repository {u}, DEST was converted from {}; \
                         nothing was changed",
                        e.uuid
                    )));
                }
            }
            Record::Revision { props, .. } if !self.dates_seen => {
                self.dates_seen = true;
                self.seen.first_date = props
                    .get(&b"svn:date"[..])
                    .map(|d| String::from_utf8_lossy(d).into_owned());
                let Some(e) = &self.expected else {
                    return Ok(());
                };
                if !e.uuid.is_empty() && self.seen.uuid.is_empty() {
                    bail!(OtherRepository(format!(
                        "this dump names no repository UUID, DEST was converted from {}; \
                         nothing was changed",
                        e.uuid
                    )));
                }
                if e.first_date.is_some() && e.first_date != self.seen.first_date {
                    bail!(OtherRepository(format!(
                        "this dump's first revision is dated {}, DEST's was {} \
                         (another repository with the same UUID?); nothing was changed",
                        self.seen.first_date.as_deref().unwrap_or("(none)"),
                        e.first_date.as_deref().unwrap_or("(none)")
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// One git repository being written (several when the rules name several).
struct Target {
    git_dir: PathBuf,
    state: PathBuf,
    bare: bool,
    conv: Converter<Packs>,
    /// With `sync`: DEST's refs before the run, which the replay must give again.
    before: Option<Vec<(String, crate::git::object::Oid)>>,
}

pub fn run(cli: Cli, out: &mut dyn Write) -> Result<u8> {
    if let Some(g) = cli.generate {
        super::generate::<Cli>(g, out)?;
        return Ok(0);
    }
    if let Some(Sub::Authors {
        source,
        default_domain,
        json,
    }) = &cli.sub
    {
        return authors(source, default_domain.as_deref(), *json, out);
    }
    if let Some(Sub::Sync {
        dest,
        source,
        verify,
        json,
    }) = &cli.sub
    {
        return run(sync_cli(dest, source.as_deref(), *verify, *json)?, out);
    }
    let (source, dest) = (
        cli.source.clone().unwrap_or_default(),
        cli.dest.clone().unwrap_or_default(),
    );
    let opts = options(&cli)?;
    let verify_url = match cli.verify {
        Some(_) => Some(repository_url(&source)?),
        None => None,
    };
    // The source is opened and seen to have data before DEST is touched: an unreadable or
    // empty source leaves DEST as it was.
    let (mut reader, child) = open_source(&source)?;
    if reader.fill_buf().context("reading the source")?.is_empty() {
        wait_source(child)?;
        bail!(BadInput(format!(
            "{source}: the dump is empty; nothing was created"
        )));
    }
    let dest_existed = dest.exists();
    if !cli.resume {
        refuse_nonempty(&dest)?;
    }
    let dests = destinations(&dest, cli.bare, cli.resume, opts.rules.as_deref())?;
    let mut git_dirs = Vec::new();
    for (d, _) in &dests {
        git_dirs.push(prepare_dest(d, cli.bare, cli.resume)?);
    }
    let mut binding = Binding {
        expected: match cli.resume {
            true => Some(read_state(&git_dirs[0].join("svn-migrate.json"))?),
            false => None,
        },
        sync: cli.sync_check,
        ..Binding::default()
    };
    binding.seen.source = recorded_source(&source);
    binding.seen.args = recorded_args(&cli)?;
    binding.seen.inputs_sha1 = inputs_sha1(&cli)?;
    if let Some(e) = binding.expected.as_ref().filter(|_| cli.sync_check)
        && e.inputs_sha1 != binding.seen.inputs_sha1
    {
        bail!(OtherRepository(
            "the authors or rules file changed since the conversion, so every commit would \
             change: convert again into a new DEST; nothing was changed"
                .into()
        ));
    }
    let _log = super::init_logging(Some(&git_dirs[0].join("svn-migrate.log.jsonl")))?;
    if binding.expected.as_ref().is_some_and(|e| e.uuid.is_empty()) {
        crate::warn!(
            "resuming a checkpoint that records no repository UUID (made by an older version): \
             the source cannot be checked against it"
        );
    }
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader: Box<dyn BufRead + Send> = Box::new(Counting {
        inner: reader,
        n: read.clone(),
    });
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // One worker more than cores: the parse stage is a task that runs for the whole conversion.
    let exec = Arc::new(
        crate::sched::Builder::new()
            .workers(n + 1)
            .thread_name("svn-migrate")
            .build()?,
    );
    let mut targets = Vec::new();
    for ((_, repo), git_dir) in dests.into_iter().zip(git_dirs) {
        let packs =
            Packs::open(&git_dir.join("objects"), exec.clone()).context("starting the pack")?;
        let conv = Converter::new(
            packs,
            Options {
                repository: repo,
                ..opts.clone()
            },
        );
        let before = match cli.sync_check {
            true => Some(current_refs(&git_dir)?),
            false => None,
        };
        targets.push(Target {
            state: git_dir.join("svn-migrate.json"),
            git_dir,
            bare: cli.bare,
            conv,
            before,
        });
    }
    let bar = progress(&source, read);
    let result = convert_all(
        &mut targets,
        reader,
        &exec,
        cli.checkpoint_every,
        &bar,
        &mut binding,
    );
    bar.bar.finish_and_clear();
    let source_ok = wait_source(child);
    if let Err(e) = result {
        if e.is::<OtherRepository>() {
            for t in &mut targets {
                t.conv.sink().abandon();
            }
            return Err(e);
        }
        if !cli.resume && targets[0].conv.last_revision().unwrap_or(0) == 0 {
            // Nothing was converted: take away the DEST this run made, so that a rerun
            // starts clean.
            drop(targets);
            remove_made_dest(&dest, dest_existed);
            return Err(e.context("nothing was converted; DEST was not created"));
        }
        for t in &mut targets {
            checkpoint(t, false, &binding.seen).context("saving the last complete revision")?;
        }
        let last = targets[0]
            .conv
            .last_revision()
            .map_or("none".to_string(), |r| format!("r{r}"));
        return Err(e.context(format!(
            "converted up to {last}; fix the input and run again with --resume"
        )));
    }
    source_ok?;
    let mut unknown: Vec<String> = targets
        .iter()
        .flat_map(|t| t.conv.unknown_authors())
        .collect();
    unknown.sort();
    unknown.dedup();
    if !unknown.is_empty() {
        // Checkpointed like any bad input, so that `--resume` with a completed authors map
        // continues (and rewrites every commit with the right identities).
        for t in &mut targets {
            checkpoint(t, false, &binding.seen)?;
        }
        bail!(BadInput(format!(
            "authors missing from the authors map (add them, or give --default-domain): {}",
            unknown.join(", ")
        )));
    }
    let mut code = 0;
    for t in targets {
        let git_dir = t.git_dir.clone();
        let must_equal = t.before.clone().filter(|_| !binding.synced);
        // Only a run that completed no revision takes its DEST away (never a checkpointed one).
        let nothing_yet = t.conv.last_revision().unwrap_or(0) == 0;
        if let Err(e) = finish(t, out, cli.json, &binding.seen, must_equal) {
            if !cli.resume && nothing_yet && e.is::<BadInput>() {
                remove_made_dest(&dest, dest_existed);
                return Err(e.context("nothing was converted; DEST was not created"));
            }
            return Err(e);
        }
        if let (Some(what), Some(url)) = (cli.verify, &verify_url) {
            let placeholder = cli.empty_dirs.as_deref();
            code = code.max(verify(&git_dir, url, what, placeholder, out, cli.json)?);
        }
    }
    Ok(code)
}

/// DEST itself, or with several repositories in the rules, one directory per repository
/// under DEST (`NAME.git` when bare), each with the repository name its converter writes.
fn destinations(
    dest: &Path,
    bare: bool,
    resume: bool,
    rules: Option<&convert::rules::Rules>,
) -> Result<Vec<(PathBuf, Option<String>)>> {
    let Some(names) = rules
        .map(|r| r.repositories.clone())
        .filter(|r| !r.is_empty())
    else {
        return Ok(vec![(dest.to_path_buf(), None)]);
    };
    if !resume {
        refuse_nonempty(dest)?;
    }
    std::fs::create_dir_all(dest).with_context(|| format!("{}: cannot create", dest.display()))?;
    Ok(names
        .into_iter()
        .map(|n| {
            (
                dest.join(if bare { format!("{n}.git") } else { n.clone() }),
                Some(n),
            )
        })
        .collect())
}

/// A conversion starts only into a missing or empty directory.
fn refuse_nonempty(dest: &Path) -> Result<()> {
    let nonempty = dest.exists()
        && std::fs::read_dir(dest)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
    if nonempty {
        bail!(
            "{}: already exists and is not empty (use --resume to continue a conversion)",
            dest.display()
        );
    }
    Ok(())
}

/// The conversion `sync` runs: DEST's recorded source and options, resumed, with the replay
/// checked against DEST's refs.
fn sync_cli(dest: &Path, source: Option<&str>, verify: Option<Verify>, json: bool) -> Result<Cli> {
    let state = [
        dest.join("svn-migrate.json"),
        dest.join(".git/svn-migrate.json"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .with_context(|| {
        format!(
            "{}: not a repository git-svn-migrate converted (no svn-migrate.json)",
            dest.display()
        )
    })?;
    let st = read_state(&state)?;
    if !st.complete {
        bail!(
            "{}: the conversion did not finish: run it again with --resume first",
            dest.display()
        );
    }
    let source = source.map(str::to_string).or(st.source).with_context(|| {
        format!(
            "{}: the conversion recorded no source (read from stdin, or an older version): \
             give --source",
            dest.display()
        )
    })?;
    let mut argv: Vec<std::ffi::OsString> = vec!["git-svn-migrate".into(), source.into()];
    argv.push(dest.as_os_str().to_owned());
    argv.extend(st.args.iter().map(Into::into));
    argv.extend(["--resume".into(), "--sync-check".into()]);
    if json {
        argv.push("--json".into());
    }
    if let Some(v) = verify {
        argv.push(match v {
            Verify::Tips => "--verify=tips".into(),
            Verify::All => "--verify=all".into(),
        });
    }
    Ok(Cli::try_parse_from(argv)?)
}

/// SOURCE as `sync` can find it again: an absolute path or the URL; none for stdin.
fn recorded_source(source: &str) -> Option<String> {
    if source == "-" {
        return None;
    }
    if source.contains("://") {
        return Some(source.to_string());
    }
    std::path::absolute(source)
        .ok()
        .map(|p| p.display().to_string())
}

/// The options the commits depend on, as arguments (paths absolute).
fn recorded_args(cli: &Cli) -> Result<Vec<String>> {
    let abs = |p: &Path| -> Result<String> {
        Ok(std::path::absolute(p)
            .with_context(|| format!("{}: no absolute path", p.display()))?
            .display()
            .to_string())
    };
    let mut a = vec!["--trunk".to_string(), cli.trunk.clone()];
    a.extend([
        "--checkpoint-every".to_string(),
        cli.checkpoint_every.to_string(),
    ]);
    if let Some(p) = &cli.authors {
        a.extend(["--authors".to_string(), abs(p)?]);
    }
    if let Some(p) = &cli.rules {
        a.extend(["--rules".to_string(), abs(p)?]);
    }
    if let Some(d) = &cli.default_domain {
        a.extend(["--default-domain".to_string(), d.clone()]);
    }
    if let Some(n) = &cli.empty_dirs {
        a.push(format!("--empty-dirs={n}"));
    }
    for (on, flag) in [
        (cli.bare, "--bare"),
        (cli.eol_attributes, "--eol-attributes"),
        (cli.keep_empty_revisions, "--keep-empty-revisions"),
    ] {
        if on {
            a.push(flag.to_string());
        }
    }
    Ok(a)
}

/// One digest of the authors and rules files' contents.
fn inputs_sha1(cli: &Cli) -> Result<Option<String>> {
    let mut all = Vec::new();
    for p in [&cli.authors, &cli.rules].into_iter().flatten() {
        all.extend(std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?);
        all.push(0);
    }
    if all.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        crate::git::object::Oid(crate::git::object::sha1(&all)).to_string(),
    ))
}

/// DEST's refs now (what a sync must leave as they are unless the source moved on).
fn current_refs(git_dir: &Path) -> Result<Vec<(String, crate::git::object::Oid)>> {
    let o = crate::git::command()
        .arg("--git-dir")
        .arg(git_dir)
        .args(["for-each-ref", "--format=%(objectname) %(refname)"])
        .output()
        .context("cannot run git for-each-ref")?;
    if !o.status.success() {
        bail!(
            "reading DEST's refs: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let mut refs = Vec::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some((id, name)) = line.split_once(' ')
            && let Some(id) = crate::git::object::Oid::from_hex(id.as_bytes())
        {
            refs.push((name.to_string(), id));
        }
    }
    Ok(refs)
}

/// `git svn-migrate authors SOURCE`.
fn authors(source: &str, domain: Option<&str>, json: bool, out: &mut dyn Write) -> Result<u8> {
    let (reader, child) = open_source(source)?;
    let counted = convert::authors::count(reader);
    // A bad dump is the error to report (the dump process then fails for the closed pipe).
    let waited = wait_source(child);
    let (list, anonymous) = counted.map_err(|e| BadInput(e.to_string()))?;
    waited?;
    if json {
        let v = serde_json::json!({ "authors": list, "without_author": anonymous });
        writeln!(out, "{v}")?;
    } else {
        out.write_all(convert::authors::template(&list, anonymous, domain).as_bytes())?;
    }
    Ok(0)
}

/// Removes what this run made of DEST: the directory, or its contents when it existed (then
/// empty, which `refuse_nonempty` made sure of).
fn remove_made_dest(dest: &Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_dir_all(dest);
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dest) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = match p.is_dir() && !p.is_symlink() {
                true => std::fs::remove_dir_all(&p),
                false => std::fs::remove_file(&p),
            };
        }
    }
}

fn read_state(path: &Path) -> Result<State> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not a checkpoint", path.display()))
}

/// The repository root URL `--verify` exports from.
fn repository_url(source: &str) -> Result<String> {
    if source.contains("://") {
        return Ok(source.trim_end_matches('/').to_string());
    }
    let p = Path::new(source);
    if p.join("format").is_file() {
        let abs = std::fs::canonicalize(p)?;
        return Ok(format!("file://{}", abs.display()));
    }
    bail!("--verify needs SOURCE to be a repository or URL (a dump file cannot be exported)")
}

fn verify(
    git_dir: &Path,
    url: &str,
    what: Verify,
    placeholder: Option<&str>,
    out: &mut dyn Write,
    json: bool,
) -> Result<u8> {
    let args: &[&str] = match what {
        Verify::Tips => &[
            "for-each-ref",
            "--format=%(objectname)^{commit}",
            "refs/heads",
            "refs/tags",
        ],
        Verify::All => &["rev-list", "--branches", "--tags"],
    };
    let o = crate::git::command()
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .output()?;
    if !o.status.success() {
        bail!(
            "listing what to verify: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let commits: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let bar = crate::logging::progress_bar(commits.len() as u64, "verifying");
    let diffs =
        convert::verify::verify(git_dir, url, &commits, placeholder).map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "verified": commits.len(), "differences": diffs })
        )?;
    } else if diffs.is_empty() {
        writeln!(
            out,
            "verified {} trees against svn export: identical",
            commits.len()
        )?;
    } else {
        writeln!(out, "{} differences:", diffs.len())?;
        for d in &diffs {
            writeln!(out, "  {} ({}) {}: {}", d.commit, d.svn, d.path, d.what)?;
        }
    }
    Ok(u8::from(!diffs.is_empty()))
}

fn options(cli: &Cli) -> Result<Options> {
    let authors = match &cli.authors {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the authors file", p.display()))?;
            Some(
                convert::authors::parse(&p.display().to_string(), &text)
                    .map_err(|e| BadInput(e.to_string()))?,
            )
        }
        None => None,
    };
    let rules = match &cli.rules {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the rules file", p.display()))?;
            Some(Arc::new(
                convert::rules::Rules::parse(&p.display().to_string(), &text)
                    .map_err(|e| BadInput(e.to_string()))?,
            ))
        }
        None => None,
    };
    Ok(Options {
        authors,
        default_domain: cli.default_domain.clone(),
        trunk: cli.trunk.clone(),
        rules,
        repository: None,
        eol_attributes: cli.eol_attributes,
        keep_empty_revisions: cli.keep_empty_revisions,
        empty_dir_placeholder: cli.empty_dirs.clone(),
    })
}

/// A placeholder is one plain file name.
fn placeholder_name(s: &str) -> std::result::Result<String, String> {
    let bad = s.is_empty() || s == "." || s == ".." || s.contains(['/', '\0']) || s == ".git";
    match bad {
        true => Err(format!("{s:?}: a file name is needed (like .gitkeep)")),
        false => Ok(s.to_string()),
    }
}

/// Creates DEST (which must not exist, or be empty), or checks it for `--resume`; returns the
/// git directory.
fn prepare_dest(dest: &Path, bare: bool, resume: bool) -> Result<PathBuf> {
    let git_dir = if bare {
        dest.to_path_buf()
    } else {
        dest.join(".git")
    };
    if resume {
        if !git_dir.join("svn-migrate.json").is_file() {
            bail!(
                "{}: nothing to resume (no svn-migrate.json; was it made by git-svn-migrate?)",
                dest.display()
            );
        }
        // A run killed while writing refs leaves our own lock files: this DEST is ours.
        for lock in ["packed-refs.lock", "HEAD.lock"] {
            let _ = std::fs::remove_file(git_dir.join(lock));
        }
        return Ok(git_dir);
    }
    refuse_nonempty(dest)?;
    let mut c = crate::git::command();
    c.args(["init", "-q", "-b", "main"]);
    if bare {
        c.arg("--bare");
    }
    let o = c.arg(dest).output().context("cannot run git init")?;
    if !o.status.success() {
        bail!(
            "git init {}: {}",
            dest.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(git_dir)
}

/// The dump stream for SOURCE, and the child process producing it, if any.
fn open_source(source: &str) -> Result<(Box<dyn BufRead + Send>, Option<Child>)> {
    if source == "-" {
        return Ok((
            Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin())),
            None,
        ));
    }
    let (prog, args): (&str, Vec<String>) = if source.starts_with("svn://")
        || source.starts_with("http://")
        || source.starts_with("https://")
        || source.starts_with("svn+ssh://")
    {
        ("svnrdump", vec!["dump".into(), "-q".into(), source.into()])
    } else {
        let decoded = percent_decode(source.strip_prefix("file://").unwrap_or(source));
        let path = decoded.as_str();
        let p = Path::new(path);
        if p.is_file() {
            let f = std::fs::File::open(p)
                .with_context(|| format!("{path}: cannot open the dump file"))?;
            return Ok((
                Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
                None,
            ));
        }
        if !p.join("format").is_file() {
            bail!("{source}: not a dump file, a Subversion repository or a URL");
        }
        ("svnadmin", vec!["dump".into(), "-q".into(), path.into()])
    };
    let mut child = Command::new(prog)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {prog} (install Subversion)"))?;
    let stdout = child
        .stdout
        .take()
        .context("no stdout from the dump process")?;
    Ok((
        Box::new(std::io::BufReader::with_capacity(1 << 20, stdout)),
        Some(child),
    ))
}

fn wait_source(child: Option<Child>) -> Result<()> {
    let Some(child) = child else { return Ok(()) };
    let o = child.wait_with_output()?;
    if !o.status.success() {
        bail!(
            "the dump process failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

/// Counts the bytes the parser consumes (for the progress bar of a dump file).
struct Counting {
    inner: Box<dyn BufRead + Send>,
    n: Arc<std::sync::atomic::AtomicU64>,
}

impl std::io::Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n
            .fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(k)
    }
}

impl BufRead for Counting {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.n
            .fetch_add(amt as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// The progress bar: revisions of a repository (total from `svnlook youngest`), bytes of a
/// dump file, or a running count for streams. Drawn only when stderr is a terminal.
struct Progress {
    bar: indicatif::ProgressBar,
    bytes: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Progress {
    fn tick_revision(&self, rev: u64) {
        match &self.bytes {
            Some(n) => {
                self.bar
                    .set_position(n.load(std::sync::atomic::Ordering::Relaxed));
                self.bar.set_message(format!("r{rev}"));
            }
            None => self.bar.set_position(rev),
        }
    }
}

fn progress(source: &str, read: Arc<std::sync::atomic::AtomicU64>) -> Progress {
    let decoded = percent_decode(source.strip_prefix("file://").unwrap_or(source));
    let path = Path::new(&decoded);
    let youngest = || -> Option<u64> {
        let o = Command::new("svnlook")
            .arg("youngest")
            .arg(path)
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if path.is_file() {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = crate::logging::progress_bar(len, "r0");
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        return Progress {
            bar,
            bytes: Some(read),
        };
    }
    let total = if path.join("format").is_file() {
        youngest().unwrap_or(0)
    } else {
        0
    };
    Progress {
        bar: crate::logging::progress_bar(total, "revisions"),
        bytes: None,
    }
}

/// Decodes `%XX` escapes in a `file://` URL path (`sp%20ace` → `sp ace`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads, checks and hashes records on a `sched` task (the parse stage) while this thread
/// applies them (the convert stage), through a bounded channel.
fn convert_all(
    targets: &mut [Target],
    reader: Box<dyn BufRead + Send>,
    exec: &crate::sched::Executor,
    every: u64,
    bar: &Progress,
    binding: &mut Binding,
) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<convert::Prepared, String>>(1024);
    let opts = crate::sched::Opts::new(exec.now() + std::time::Duration::from_secs(86_400))
        .on_miss(crate::sched::OnMiss::RunLate);
    let parse = exec.spawn_with(opts, move |_| {
        let mut rev = 0;
        let mut records = Reader::new(reader);
        while let Some(rec) = records.next() {
            let parse_warnings = records.take_warnings();
            let item = rec.map_err(|e| e.to_string()).and_then(|rec| {
                if let Record::Revision { number, .. } = &rec {
                    rev = *number;
                }
                let mut p = convert::prepare(rec, rev).map_err(|e| e.to_string())?;
                p.warnings
                    .splice(0..0, parse_warnings.iter().map(|w| w.to_string()));
                Ok(p)
            });
            let stop = item.is_err();
            if tx.send(item).is_err() || stop {
                break;
            }
        }
    });
    let result = apply_all(targets, rx, every, bar, binding);
    // A parse stage that died (a bug) must not look like the end of the dump.
    let parsed = parse.join();
    result?;
    parsed.map_err(|e| anyhow::anyhow!("the dump reader stopped: {e}"))
}

fn apply_all(
    targets: &mut [Target],
    rx: std::sync::mpsc::Receiver<Result<convert::Prepared, String>>,
    every: u64,
    bar: &Progress,
    binding: &mut Binding,
) -> Result<()> {
    let mut since = 0u64;
    for item in rx {
        let p = item.map_err(BadInput)?;
        binding.check(&p.record)?;
        let mut check_now = false;
        if let Record::Revision { number, .. } = &p.record {
            bar.tick_revision(*number);
            since += 1;
            // Revisions DEST holds are replayed, never checkpointed: the refs they give are
            // DEST's already; and nothing is written before a sync's replay is checked.
            let unchecked = binding.sync && !binding.synced;
            if since > every && !binding.replaying(*number) && !unchecked {
                for t in targets.iter_mut() {
                    checkpoint(t, false, &binding.seen)?;
                }
                since = 1;
            }
            check_now = binding.sync && !binding.synced && !binding.replaying(*number);
        }
        let (last, rest) = targets.split_last_mut().context("no repository to write")?;
        for t in rest {
            feed(
                &mut t.conv,
                convert::Prepared {
                    record: p.record.clone(),
                    blob: p.blob,
                    warnings: p.warnings.clone(),
                },
            )?;
        }
        feed(&mut last.conv, p)?;
        if check_now {
            // The first new revision has begun: every revision before it is complete.
            for t in targets.iter_mut() {
                let now = t.conv.refs_now()?;
                same_history(t.before.as_deref().unwrap_or_default(), &now)?;
            }
            binding.synced = true;
        }
    }
    Ok(())
}

/// Refuses a replay whose refs differ from DEST's: the Subversion history already converted
/// has changed (a revision property edited, the repository reloaded or replaced).
fn same_history(
    before: &[(String, crate::git::object::Oid)],
    now: &[(String, crate::git::object::Oid)],
) -> Result<()> {
    let old: std::collections::BTreeMap<_, _> = before.iter().cloned().collect();
    let new: std::collections::BTreeMap<_, _> = now.iter().cloned().collect();
    if old == new {
        return Ok(());
    }
    let differs = old
        .iter()
        .find(|(k, v)| new.get(*k) != Some(v))
        .map(|(k, v)| match new.get(k) {
            Some(n) => format!("{k} was {v}, the source now gives {n}"),
            None => format!("{k} ({v}) is not made by the source any more"),
        })
        .or_else(|| {
            new.keys()
                .find(|k| !old.contains_key(*k))
                .map(|k| format!("{k} is new in revisions DEST holds"))
        })
        .unwrap_or_default();
    bail!(OtherRepository(format!(
        "the Subversion history DEST was converted from has changed ({differs}: a revision \
         property edited, or the repository reloaded); nothing was changed; convert again \
         into a new DEST"
    )))
}

fn feed(conv: &mut Converter<Packs>, p: convert::Prepared) -> Result<()> {
    conv.record_prepared(p).map_err(|e| match e {
        convert::ConvertError::Io(io) => anyhow::Error::from(io),
        other => BadInput(other.to_string()).into(),
    })
}

/// Makes the objects so far visible, points the refs at the last complete revision and
/// records it for `--resume`.
fn checkpoint(t: &mut Target, complete: bool, seen: &State) -> Result<()> {
    let refs = t.conv.refs_now()?;
    t.conv.sink().checkpoint()?;
    write_refs(&t.git_dir, &refs, None)?;
    let last = t.conv.last_revision().unwrap_or(0);
    write_state(&t.state, seen, last, complete)
}

/// Records where the conversion stands, replacing the file whole (write and rename).
fn write_state(path: &Path, seen: &State, last_revision: u64, complete: bool) -> Result<()> {
    let s = State {
        last_revision,
        complete,
        ..seen.clone()
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&s)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Sets the refs to exactly `refs` (plus HEAD). With the files ref backend (a repository this
/// tool created, so no loose refs of ours exist) the whole set is one `packed-refs` file
/// replaced through git's `.lock` protocol: one file instead of one per ref. A reftable
/// repository goes through `git update-ref --stdin`.
fn write_refs(
    git_dir: &Path,
    refs: &[(String, crate::git::object::Oid)],
    head: Option<&str>,
) -> Result<()> {
    if git_dir.join("reftable").exists() {
        return update_ref_stdin(git_dir, refs, head);
    }
    let mut text = String::new();
    let mut sorted: Vec<&(String, crate::git::object::Oid)> = refs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, id) in sorted {
        text.push_str(&format!("{id} {name}\n"));
    }
    replace_locked(&git_dir.join("packed-refs"), text.as_bytes())?;
    if let Some(h) = head {
        replace_locked(&git_dir.join("HEAD"), format!("ref: {h}\n").as_bytes())?;
    }
    Ok(())
}

/// Replaces `path` through `path.lock` (created exclusively, as git does), fsynced.
fn replace_locked(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(crate::git::lockfile::replace(path, bytes)?)
}

fn update_ref_stdin(
    git_dir: &Path,
    refs: &[(String, crate::git::object::Oid)],
    head: Option<&str>,
) -> Result<()> {
    let old = crate::git::command()
        .arg("--git-dir")
        .arg(git_dir)
        .args(["for-each-ref", "--format=%(refname)"])
        .output()?;
    let mut input = String::new();
    for name in String::from_utf8_lossy(&old.stdout).lines() {
        if !refs.iter().any(|(r, _)| r == name) {
            input.push_str(&format!("delete {name}\n"));
        }
    }
    for (name, id) in refs {
        input.push_str(&format!("update {name} {id}\n"));
    }
    let mut child = crate::git::command()
        .arg("--git-dir")
        .arg(git_dir)
        .args(["update-ref", "--stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let o = child.wait_with_output()?;
    if !o.status.success() {
        bail!(
            "git update-ref: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    if let Some(h) = head {
        let o = crate::git::command()
            .arg("--git-dir")
            .arg(git_dir)
            .args(["symbolic-ref", "HEAD", h])
            .output()?;
        if !o.status.success() {
            bail!(
                "git symbolic-ref HEAD: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
    }
    Ok(())
}

fn finish(
    t: Target,
    out: &mut dyn Write,
    json: bool,
    seen: &State,
    must_equal: Option<Vec<(String, crate::git::object::Oid)>>,
) -> Result<u8> {
    let (git_dir, state, bare) = (t.git_dir.clone(), t.state.clone(), t.bare);
    let (git_dir, state) = (git_dir.as_path(), state.as_path());
    let (outcome, mut packs) = t.conv.finish().map_err(|e| BadInput(e.to_string()))?;
    if let Some(before) = must_equal
        && let Err(e) = same_history(&before, &outcome.refs)
    {
        packs.abandon();
        return Err(e);
    }
    let last = outcome.last_revision.unwrap_or(0);
    packs.finish().context("finishing the pack")?;
    write_refs(git_dir, &outcome.refs, outcome.head.as_deref())?;
    write_state(state, seen, last, true)?;
    if !bare && outcome.head.is_some() {
        let wt = git_dir.parent().unwrap_or(Path::new("."));
        let o = crate::git::command()
            .arg("-C")
            .arg(wt)
            .args(["reset", "-q", "--hard"])
            .output()?;
        if !o.status.success() {
            bail!(
                "checking out the work tree: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
    }
    report(&outcome, json, out)?;
    Ok(0)
}

fn report(o: &Outcome, json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(o)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "converted {} revisions: {} commits ({} merges), {} refs",
        o.revisions,
        o.commits,
        o.merges,
        o.refs.len()
    )?;
    for (r, id) in &o.refs {
        writeln!(out, "  {id} {r}")?;
    }
    if !o.outside.is_empty() {
        writeln!(
            out,
            "{} changes outside every branch (not converted):",
            o.outside.len()
        )?;
        for (rev, p) in o.outside.iter().take(50) {
            writeln!(out, "  r{rev} {p}")?;
        }
    }
    if !o.kept_properties.is_empty() {
        writeln!(
            out,
            "{} svn:externals / svn:eol-style values have no git equivalent (listed with --json; --eol-attributes writes .gitattributes):",
            o.kept_properties.len()
        )?;
        for (rev, p, k, v) in o.kept_properties.iter().take(20) {
            writeln!(out, "  r{rev} {p}: {k} = {v}")?;
        }
    }
    for m in &o.ignored_merges {
        writeln!(out, "  note: {m}")?;
    }
    if !o.unconverted.is_empty() {
        writeln!(
            out,
            "{} revisions made no commit (all listed with --json; --keep-empty-revisions keeps the ones that change a branch):",
            o.unconverted.len()
        )?;
        for u in o.unconverted.iter().take(20) {
            let first = u.log.lines().next().unwrap_or_default();
            writeln!(
                out,
                "  r{} {} {} {first:?}: {}",
                u.revision,
                u.author.as_deref().unwrap_or("(no author)"),
                u.date.as_deref().unwrap_or("(no date)"),
                u.why
            )?;
        }
    }
    for w in &o.warnings {
        writeln!(out, "  warning: {w}")?;
    }
    Ok(())
}
