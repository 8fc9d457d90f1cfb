//! Bash completion scripts generated from a tool's clap command tree.
//!
//! clap_complete's bash output is not used: for a binary whose name has a hyphen (all four of
//! ours) its case arms are named differently from its dispatch, so nothing past the first word
//! completes, and it offers hidden flags. The script written here is data plus one small engine:
//! per subcommand path (`"."` for the top, `"repair"`, `"quarantine restore"`) the subcommands, the visible
//! flags, what each value-taking flag's value is, and what each positional is. The engine walks
//! the words before the cursor (skipping flag values, `--flag=value` included), then offers
//! subcommands, flags, or values: a fixed list, files, directories, host or user names, git
//! remotes, ssh-ca policy profiles, or nothing for free text (never file names by default).
//!
//! For `git surgery` and `git svn-migrate` the script also defines `_git_surgery` and
//! `_git_svn_migrate`: git's own completion loads `git-<cmd>`'s completion file and calls
//! `_git_<cmd>` when the user completes `git <cmd>`.

use clap::{Arg, ArgAction, Command, ValueHint};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a value is, as the completion script offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hint {
    Words(Vec<String>),
    File,
    Dir,
    Host,
    User,
    GitRemote,
    Profile,
    Text,
}

impl Hint {
    fn script(&self) -> String {
        match self {
            Hint::Words(w) => format!("words:{}", w.join(" ")),
            Hint::File => "file".into(),
            Hint::Dir => "dir".into(),
            Hint::Host => "host".into(),
            Hint::User => "user".into(),
            Hint::GitRemote => "remote".into(),
            Hint::Profile => "profile".into(),
            Hint::Text => "text".into(),
        }
    }
}

/// The hint for one argument's value: flags named for a kind of thing first, then the fixed
/// values clap knows, then clap's value hint (a `PathBuf` infers a path).
fn hint_of(arg: &Arg) -> Hint {
    match arg.get_long() {
        Some("remote") => return Hint::GitRemote,
        Some("profile") => return Hint::Profile,
        _ => {}
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if !values.is_empty() {
        return Hint::Words(values);
    }
    let names_a_dir = arg
        .get_value_names()
        .is_some_and(|v| v.iter().any(|n| n.as_str().contains("DIR")));
    match arg.get_value_hint() {
        ValueHint::AnyPath if names_a_dir => Hint::Dir,
        ValueHint::FilePath | ValueHint::AnyPath | ValueHint::ExecutablePath => Hint::File,
        ValueHint::DirPath => Hint::Dir,
        ValueHint::Hostname => Hint::Host,
        ValueHint::Username => Hint::User,
        _ => Hint::Text,
    }
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
        && !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
}

/// One subcommand path's completion data.
#[derive(Default)]
struct Node {
    subcommands: Vec<String>,
    flags: Vec<String>,
    /// "-x" or "--long" → hint, for flags that take a value
    values: BTreeMap<String, Hint>,
    /// one hint per positional, in order; the last repeats when it takes several values
    positionals: Vec<Hint>,
}

fn node_of(cmd: &Command) -> Node {
    let mut node = Node {
        subcommands: cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect(),
        ..Node::default()
    };
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if arg.is_positional() {
            node.positionals.push(hint_of(arg));
            continue;
        }
        let names: Vec<String> = arg
            .get_long_and_visible_aliases()
            .into_iter()
            .flatten()
            .map(|l| format!("--{l}"))
            .chain(
                arg.get_short_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(|s| format!("-{s}")),
            )
            .collect();
        for name in names {
            if takes_value(arg) {
                node.values.insert(name.clone(), hint_of(arg));
            }
            node.flags.push(name);
        }
    }
    node
}

/// Adds the nodes of `cmd` and its subcommands; `help` completes its first word only.
fn walk(cmd: &Command, path: &str, out: &mut BTreeMap<String, Node>) {
    out.insert(path.to_string(), node_of(cmd));
    if cmd.get_name() == "help" {
        return;
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_path = if path.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{path} {}", sub.get_name())
        };
        walk(sub, &sub_path, out);
    }
}

/// A bash word in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Appends `declare -gA _bitrot_ID_VAR=( [key]=value ... )`.
fn write_table(s: &mut String, id: &str, var: &str, rows: impl Iterator<Item = (String, String)>) {
    let _ = writeln!(s, "declare -gA _bitrot_{id}_{var}=(");
    for (k, v) in rows {
        let _ = writeln!(s, "  [{}]={}", quote(&k), quote(&v));
    }
    let _ = writeln!(s, ")");
}

/// The bash completion script for `cmd` (its name is the binary's).
pub fn bash_script(cmd: &mut Command) -> String {
    cmd.build();
    let name = cmd.get_name().to_string();
    let id = name.replace('-', "_");
    let mut nodes = BTreeMap::new();
    walk(cmd, "", &mut nodes);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# bash completion for {name}, generated by `{name} --generate bash-completion`.\n"
    );
    // bash refuses an empty key in an associative array: the top level is ".".
    let nodes: Vec<(&str, &Node)> = nodes
        .iter()
        .map(|(p, n)| (if p.is_empty() { "." } else { p.as_str() }, n))
        .collect();
    let subs = nodes
        .iter()
        .map(|(p, n)| (p.to_string(), n.subcommands.join(" ")));
    write_table(&mut s, &id, "subs", subs);
    let opts = nodes
        .iter()
        .map(|(p, n)| (p.to_string(), n.flags.join(" ")));
    write_table(&mut s, &id, "opts", opts);
    let vals = nodes.iter().flat_map(|(p, n)| {
        n.values
            .iter()
            .map(move |(f, h)| (format!("{p}|{f}"), h.script()))
    });
    write_table(&mut s, &id, "vals", vals);
    // Positional hints are space-separated; a word list's own spaces travel as commas.
    let pos = nodes.iter().map(|(p, n)| {
        let hints: Vec<String> = n
            .positionals
            .iter()
            .map(|h| h.script().replace(' ', ","))
            .collect();
        (p.to_string(), hints.join(" "))
    });
    write_table(&mut s, &id, "pos", pos);
    s.push_str(ENGINE);
    let _ = writeln!(s, "\n_bitrot_{id}() {{ _bitrot_complete {id} 1; }}");
    let _ = writeln!(s, "complete -F _bitrot_{id} {name}");
    if let Some(sub) = name.strip_prefix("git-") {
        let git_fn = sub.replace('-', "_");
        let _ = writeln!(
            s,
            "\n# `git {sub} <TAB>`: git's completion loads this file and calls _git_{git_fn}.\n\
             _git_{git_fn}() {{\n  local i\n  for ((i = 1; i < COMP_CWORD; i++)); do\n    \
             [[ ${{COMP_WORDS[i]}} == {sub} ]] && {{ _bitrot_complete {id} $((i + 1)); return; }}\n  \
             done\n}}"
        );
    }
    s
}

/// The engine every generated script carries (the same text in each: defining it again is
/// harmless). `_bitrot_complete ID START`: the tool's words begin at COMP_WORDS[START].
const ENGINE: &str = r#"
_bitrot_complete() {
  local -n subs=_bitrot_$1_subs opts=_bitrot_$1_opts vals=_bitrot_$1_vals pos=_bitrot_$1_pos
  local cur=${COMP_WORDS[COMP_CWORD]} path=. i w npos=0 prev hints
  COMPREPLY=()
  for ((i = $2; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ -n ${vals["$path|$w"]+x} ]]; then
      # the flag's value follows: as the next word, or after an "=" word (--flag=value)
      ((i + 1 < COMP_CWORD)) && [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
      ((i++))
      continue
    fi
    [[ $w == -* || $w == = ]] && continue
    if ((npos == 0)) && [[ " ${subs[$path]-} " == *" $w "* ]]; then
      if [[ $path == . ]]; then path=$w; else path="$path $w"; fi
      continue
    fi
    ((npos++))
  done
  prev=${COMP_WORDS[COMP_CWORD - 1]-}
  [[ $cur == = ]] && { prev=${COMP_WORDS[COMP_CWORD - 1]}; cur=; }
  [[ $prev == = ]] && prev=${COMP_WORDS[COMP_CWORD - 2]-}
  if ((COMP_CWORD > $2)) && [[ -n ${vals["$path|$prev"]+x} ]]; then
    _bitrot_offer "${vals["$path|$prev"]}" "$cur"
    return 0
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${opts[$path]-}" -- "$cur")
    return 0
  fi
  if ((npos == 0)) && [[ -n ${subs[$path]-} ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${subs[$path]}" -- "$cur")
    return 0
  fi
  read -ra hints <<<"${pos[$path]-}"
  ((${#hints[@]} == 0)) && return 0
  ((npos >= ${#hints[@]})) && npos=$((${#hints[@]} - 1))
  _bitrot_offer "${hints[npos]//,/ }" "$cur"
}

# Offers the values of hint $1 that start with $2.
_bitrot_offer() {
  local cur=$2 dir i
  case $1 in
    words:*) mapfile -t COMPREPLY < <(compgen -W "${1#words:}" -- "$cur") ;;
    file) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    dir) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
    host) mapfile -t COMPREPLY < <(compgen -A hostname -- "$cur") ;;
    user) mapfile -t COMPREPLY < <(compgen -u -- "$cur") ;;
    remote) mapfile -t COMPREPLY < <(compgen -W "$(git remote 2>/dev/null)" -- "$cur") ;;
    profile)
      # The profiles of the CA the command line names (--dir), else SSH_CA_DIR, else the default.
      dir=${SSH_CA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/ssh-ca}
      for ((i = 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == --dir ]] && dir=${COMP_WORDS[i + 1]}
        [[ ${COMP_WORDS[i]} == --dir && ${COMP_WORDS[i + 1]} == = ]] && dir=${COMP_WORDS[i + 2]}
      done
      mapfile -t COMPREPLY < <(compgen -W "$(awk '/^profiles:/ { p = 1; next } /^[^ #]/ { p = 0 }
        p && /^  [A-Za-z0-9_.-]+:/ { sub(/^  /, ""); sub(/:.*/, ""); print }' "$dir/config.yaml" 2>/dev/null)" -- "$cur")
      ;;
  esac
  return 0
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    #[command(name = "my-tool")]
    struct Demo {
        #[arg(long, hide = true)]
        secret: Option<String>,
        #[command(subcommand)]
        cmd: Sub,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        /// a hyphenated subcommand
        KeyChange {
            #[arg(long)]
            remote: Option<String>,
            #[arg(long, value_enum)]
            mode: Option<Mode>,
            key: std::path::PathBuf,
        },
    }

    #[derive(Clone, clap::ValueEnum)]
    enum Mode {
        Fast,
        Slow,
    }

    #[test]
    fn tables_hold_every_visible_flag_and_no_hidden_one() {
        let s = bash_script(&mut Demo::command());
        assert!(s.contains("  ['.']='key-change help'\n"), "{s}");
        assert!(s.contains("['key-change|--remote']='remote'"), "{s}");
        assert!(s.contains("['key-change|--mode']='words:fast slow'"), "{s}");
        assert!(s.contains("['key-change']='file'"), "{s}");
        assert!(!s.contains("--secret"), "{s}");
        assert!(s.contains("complete -F _bitrot_my_tool my-tool"), "{s}");
    }
}
