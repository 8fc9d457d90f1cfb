//! Man pages from a tool's clap tree: one page per command and subcommand (`git-surgery(1)`,
//! `git-surgery-repair(1)`, `ssh-acme-account-allow(1)`, ...).
//!
//! clap_mangen renders the title, NAME, DESCRIPTION and OPTIONS (every option with its
//! environment variable, default and possible values). The rest is written here, because
//! clap_mangen's versions are wrong for us: its SYNOPSIS drops the value of a short-only option
//! (`[-C ]`), its SUBCOMMANDS names a `-help(1)` page nobody ships, and it puts the exit codes
//! under "EXTRA". Here: a SYNOPSIS with every value named, SUBCOMMANDS naming only pages that
//! are generated, EXIT STATUS and ENVIRONMENT from the tool's after-help text (the blocks
//! headed `Exit status:` and `Environment:`) plus every option's environment variable, and a
//! SEE ALSO that names only pages of the same set.

use clap::{Arg, Command};
use roff::{Roff, bold, italic, roman};

/// The page set: (file name, roff source) for the command and every visible subcommand.
pub fn pages(cmd: &mut Command) -> Vec<(String, String)> {
    cmd.build();
    let after = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    let root = cmd.get_name().to_string();
    let mut out = Vec::new();
    collect(cmd, &root, None, &after, &mut out);
    out
}

/// The marker line that starts each page in `--generate man-pages` output.
pub const PAGE_MARKER: &str = "### bitrot-man-page";

fn page_name(cmd: &Command) -> String {
    cmd.get_display_name().unwrap_or(cmd.get_name()).to_string()
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

fn collect(
    cmd: &Command,
    root: &str,
    parent: Option<&str>,
    after: &str,
    out: &mut Vec<(String, String)>,
) {
    let name = page_name(cmd);
    out.push((format!("{name}.1"), render(cmd, root, parent, after)));
    for sub in visible_subcommands(cmd) {
        collect(sub, root, Some(&name), after, out);
    }
}

/// The lines of the block headed `header` (e.g. "Exit status:") in an after-help text.
fn block<'a>(after: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = after.lines().skip_while(|l| l.trim_end() != header);
    lines.next();
    lines.take_while(|l| !l.trim().is_empty()).collect()
}

fn render(cmd: &Command, root: &str, parent: Option<&str>, after: &str) -> String {
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("bitrot {}", env!("CARGO_PKG_VERSION")))
        .manual("bitrot");
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut buf);
    let _ = man.render_name_section(&mut buf);
    let mut roff = Roff::new();
    synopsis(&mut roff, cmd);
    let _ = roff.to_writer(&mut buf);
    let _ = man.render_description_section(&mut buf);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(&mut buf);
    }
    let mut roff = Roff::new();
    subcommands(&mut roff, cmd);
    text_section(&mut roff, "EXIT STATUS", &block(after, "Exit status:"));
    environment(&mut roff, cmd, &block(after, "Environment:"));
    see_also(&mut roff, cmd, root, parent);
    if let Some(v) = cmd.get_version() {
        roff.control("SH", ["VERSION"]).text([roman(v)]);
    }
    let _ = roff.to_writer(&mut buf);
    dedupe_preamble(String::from_utf8_lossy(&buf).into_owned())
}

/// Every roff writer starts with the same two-line apostrophe preamble; one is enough.
fn dedupe_preamble(page: String) -> String {
    let preamble = Roff::new().render();
    let body = page.replace(&preamble, "");
    format!("{preamble}{body}")
}

fn synopsis(roff: &mut Roff, cmd: &Command) {
    roff.control("SH", ["SYNOPSIS"]);
    let invocation = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    let mut line = vec![bold(invocation)];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        line.push(roman(" "));
        line.extend(synopsis_arg(arg));
    }
    if visible_subcommands(cmd).next().is_some() {
        line.push(roman(" "));
        line.push(italic("COMMAND"));
    }
    roff.text(line);
}

fn value_name(arg: &Arg) -> String {
    arg.get_value_names()
        .and_then(|v| v.first().map(|n| n.to_string()))
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
}

fn synopsis_arg(arg: &Arg) -> Vec<roff::Inline> {
    let repeats = arg.get_num_args().is_some_and(|n| n.max_values() > 1)
        || matches!(
            arg.get_action(),
            clap::ArgAction::Append | clap::ArgAction::Count
        );
    let mut v = Vec::new();
    if arg.is_positional() {
        let name = italic(value_name(arg));
        if arg.is_required_set() {
            v.push(name);
        } else {
            v.extend([roman("["), name, roman("]")]);
        }
    } else {
        let flag = match (arg.get_short(), arg.get_long()) {
            (_, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => return v,
        };
        v.push(roman("["));
        v.push(bold(flag));
        if arg.get_action().takes_values() {
            let sep = if arg.is_require_equals_set() {
                "="
            } else {
                " "
            };
            v.push(roman(sep));
            v.push(italic(value_name(arg)));
        }
        v.push(roman("]"));
    }
    if repeats {
        v.push(roman("..."));
    }
    v
}

fn subcommands(roff: &mut Roff, cmd: &Command) {
    let subs: Vec<&Command> = visible_subcommands(cmd).collect();
    if subs.is_empty() {
        return;
    }
    roff.control("SH", ["SUBCOMMANDS"]);
    for sub in subs {
        roff.control("TP", []);
        roff.text([bold(page_name(sub)), roman("(1)")]);
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        roff.text([roman(about)]);
    }
}

/// A section of indented `  KEY  text` lines, each key a tagged paragraph.
fn text_section(roff: &mut Roff, title: &str, lines: &[&str]) {
    if lines.is_empty() {
        return;
    }
    roff.control("SH", [title]);
    for line in lines {
        let t = line.trim();
        match t.split_once("  ") {
            Some((key, rest)) if line.starts_with("  ") && !line.starts_with("   ") => {
                roff.control("TP", []);
                roff.text([bold(key.trim())]);
                roff.text([roman(rest.trim())]);
            }
            // a continuation line of the previous entry
            _ => {
                roff.text([roman(t)]);
            }
        }
    }
}

fn environment(roff: &mut Roff, cmd: &Command, shared: &[&str]) {
    let mut lines: Vec<String> = shared.iter().map(|l| l.to_string()).collect();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
            lines.push(format!(
                "  {}  the default of --{long}",
                env.to_string_lossy()
            ));
        }
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    text_section(roff, "ENVIRONMENT", &refs);
}

fn see_also(roff: &mut Roff, cmd: &Command, root: &str, parent: Option<&str>) {
    let me = page_name(cmd);
    let mut names: Vec<String> = Vec::new();
    if me != root {
        names.push(root.to_string());
    }
    if let Some(p) = parent.filter(|p| *p != root) {
        names.push(p.to_string());
    }
    names.extend(visible_subcommands(cmd).map(page_name));
    if names.is_empty() {
        return;
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, n) in names.into_iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(n));
        line.push(roman("(1)"));
    }
    roff.text(line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// Demo tool.
    #[derive(Parser)]
    #[command(
        name = "my-tool",
        version,
        after_help = "Exit status:\n  0  fine\n  3  not\n\nEnvironment:\n  BITROT_LOG  the level"
    )]
    struct Demo {
        /// Run in DIR
        #[arg(short = 'C', global = true, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
        #[arg(long, env = "MY_TOOL_HOME")]
        home: Option<String>,
        #[command(subcommand)]
        cmd: Sub,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        /// Change the key
        KeyChange {
            /// the new key
            #[arg(long)]
            new_key: String,
        },
    }

    #[test]
    fn one_page_per_subcommand_with_sections_and_named_values() {
        let pages = pages(&mut Demo::command());
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["my-tool.1", "my-tool-key-change.1"]);
        let (_, top) = &pages[0];
        assert!(top.contains("\\fB\\-C\\fR \\fIDIR\\fR"), "{top}");
        assert!(top.contains(".SH \"EXIT STATUS\""), "{top}");
        assert!(top.contains("MY_TOOL_HOME"), "{top}");
        assert!(top.contains("my\\-tool\\-key\\-change\\fR(1)"), "{top}");
        assert!(!top.contains("EXTRA"), "{top}");
        assert!(!top.contains("help(1)"), "{top}");
        let (_, sub) = &pages[1];
        assert!(sub.contains("\\-\\-new\\-key"), "{sub}");
        assert!(sub.contains("BITROT_LOG"), "{sub}");
        assert!(sub.contains(".SH \"SEE ALSO\""), "{sub}");
        assert_eq!(top.matches(".ds Aq").count(), 2, "one preamble: {top}");
    }
}
