//! A YAML rules file: which paths are branches, tags or nothing, per revision range, and (for
//! repositories holding several projects) which git repository each goes to.
//!
//! ```yaml
//! repositories: [app, lib]          # optional: one git repository per name, under DEST
//! rules:
//!   - match: app/trunk              # path components; `*` matches within one component
//!     repository: app
//!     branch: main
//!   - match: app/branches/*
//!     repository: app
//!     branch: $1                    # $N: what the Nth `*` component matched
//!   - match: app/tags/*
//!     repository: app
//!     tag: $1
//!   - match: lib/trunk
//!     repository: lib
//!     branch: main
//!     max-revision: 4999            # this rule applies up to r4999
//!   - match: junk
//!     ignore: true                  # dropped on purpose (not reported as outside)
//! ```
//!
//! Invariants: the first rule whose pattern matches the start of a path and whose revision
//! range holds the revision decides; a path no rule matches is "outside" and reported. Parse
//! errors name the file and what is wrong, before anything is converted.

use serde::Deserialize;

/// A rules-file problem.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {what}")]
pub struct RulesError {
    pub file: String,
    pub what: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    repositories: Vec<String>,
    rules: Vec<Spec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Spec {
    r#match: String,
    repository: Option<String>,
    branch: Option<String>,
    tag: Option<String>,
    #[serde(default)]
    ignore: bool,
    min_revision: Option<u64>,
    max_revision: Option<u64>,
}

#[derive(Debug, Clone)]
enum Target {
    Branch(String),
    Tag(String),
    Ignore,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Vec<Vec<u8>>,
    target: Target,
    repository: Option<String>,
    revs: (u64, u64),
}

/// What a rule says about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// At or below a branch or tag root.
    Root {
        root: Vec<u8>,
        name: String,
        tag: bool,
        repository: Option<String>,
    },
    /// Matched by an `ignore` rule.
    Ignored,
}

/// A parsed rules file.
#[derive(Debug, Clone)]
pub struct Rules {
    pub repositories: Vec<String>,
    rules: Vec<Rule>,
}

impl Rules {
    pub fn parse(file: &str, text: &str) -> Result<Rules, RulesError> {
        let err = |what: String| RulesError {
            file: file.to_string(),
            what,
        };
        let f: File = serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut rules = Vec::new();
        for (i, s) in f.rules.into_iter().enumerate() {
            let at = format!("rule {} (match: {:?})", i + 1, s.r#match);
            let target = match (s.branch, s.tag, s.ignore) {
                (Some(b), None, false) => Target::Branch(b),
                (None, Some(t), false) => Target::Tag(t),
                (None, None, true) => Target::Ignore,
                _ => {
                    return Err(err(format!(
                        "{at}: give exactly one of branch, tag or ignore: true"
                    )));
                }
            };
            if let Some(r) = &s.repository
                && !f.repositories.contains(r)
            {
                return Err(err(format!(
                    "{at}: repository {r:?} is not listed under repositories"
                )));
            }
            if !f.repositories.is_empty()
                && s.repository.is_none()
                && !matches!(target, Target::Ignore)
            {
                return Err(err(format!(
                    "{at}: with several repositories every rule names one"
                )));
            }
            let pattern: Vec<Vec<u8>> = s
                .r#match
                .trim_matches('/')
                .split('/')
                .filter(|c| !c.is_empty())
                .map(|c| c.as_bytes().to_vec())
                .collect();
            if pattern.is_empty() {
                return Err(err(format!("{at}: empty pattern")));
            }
            let revs = (
                s.min_revision.unwrap_or(0),
                s.max_revision.unwrap_or(u64::MAX),
            );
            rules.push(Rule {
                pattern,
                target,
                repository: s.repository,
                revs,
            });
        }
        Ok(Rules {
            repositories: f.repositories,
            rules,
        })
    }

    /// The class of `path` at `rev`, or `None` when no rule matches it.
    pub fn classify(&self, path: &[u8], rev: u64) -> Option<Class> {
        let comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        for r in self
            .rules
            .iter()
            .filter(|r| r.revs.0 <= rev && rev <= r.revs.1)
        {
            if r.pattern.len() > comps.len() {
                continue;
            }
            let mut caps = Vec::new();
            if !r
                .pattern
                .iter()
                .zip(&comps)
                .all(|(p, c)| glob(p, c, &mut caps))
            {
                continue;
            }
            let root = comps[..r.pattern.len()].join(&b'/');
            let fill = |t: &str| expand(t, &caps);
            return Some(match &r.target {
                Target::Branch(b) => Class::Root {
                    root,
                    name: fill(b),
                    tag: false,
                    repository: r.repository.clone(),
                },
                Target::Tag(t) => Class::Root {
                    root,
                    name: fill(t),
                    tag: true,
                    repository: r.repository.clone(),
                },
                Target::Ignore => Class::Ignored,
            });
        }
        None
    }

    /// Whether `path` is a directory above some rule's root (like `app` or `app/branches`).
    pub fn is_structural(&self, path: &[u8]) -> bool {
        let comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        self.rules.iter().any(|r| {
            r.pattern.len() > comps.len()
                && r.pattern
                    .iter()
                    .zip(&comps)
                    .all(|(p, c)| glob(p, c, &mut Vec::new()))
        })
    }
}

/// Matches one component against a pattern with `*` wildcards; a component holding a `*`
/// is captured whole.
fn glob(p: &[u8], c: &[u8], caps: &mut Vec<String>) -> bool {
    fn m(p: &[u8], c: &[u8]) -> bool {
        match p.split_first() {
            None => c.is_empty(),
            Some((b'*', rest)) => (0..=c.len()).any(|i| m(rest, &c[i..])),
            Some((x, rest)) => c.first() == Some(x) && m(rest, &c[1..]),
        }
    }
    let ok = m(p, c);
    if ok && p.contains(&b'*') {
        caps.push(String::from_utf8_lossy(c).into_owned());
    }
    ok
}

fn expand(template: &str, caps: &[String]) -> String {
    let mut out = template.to_string();
    for (i, c) in caps.iter().enumerate().rev() {
        out = out.replace(&format!("${}", i + 1), c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "repositories: [app, lib]\nrules:\n  - match: app/trunk\n    repository: app\n    branch: main\n  - match: app/branches/release-*\n    repository: app\n    branch: rel/$1\n  - match: lib/tags/*\n    repository: lib\n    tag: v$1\n    max-revision: 10\n  - match: junk\n    ignore: true\n";

    #[test]
    fn first_matching_rule_in_range_decides() {
        let r = Rules::parse("r.yaml", RULES).expect("parses");
        assert_eq!(
            r.classify(b"app/trunk/src/a.c", 5),
            Some(Class::Root {
                root: b"app/trunk".to_vec(),
                name: "main".into(),
                tag: false,
                repository: Some("app".into())
            })
        );
        assert_eq!(
            r.classify(b"app/branches/release-1/x", 5).map(|c| match c {
                Class::Root { name, .. } => name,
                Class::Ignored => String::new(),
            }),
            Some("rel/release-1".into())
        );
        assert!(matches!(
            r.classify(b"lib/tags/1.0", 5),
            Some(Class::Root { tag: true, .. })
        ));
        assert_eq!(
            r.classify(b"lib/tags/1.0", 11),
            None,
            "outside the rule's revision range"
        );
        assert_eq!(r.classify(b"junk/file", 1), Some(Class::Ignored));
        assert!(r.is_structural(b"app/branches") && !r.is_structural(b"elsewhere"));
    }

    #[test]
    fn bad_rules_are_named() {
        let e = Rules::parse(
            "r.yaml",
            "rules:\n  - match: x\n    branch: a\n    tag: b\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("rule 1"), "{e}");
        let e = Rules::parse("r.yaml", "rules:\n  - match: x\n    branhc: a\n").unwrap_err();
        assert!(e.to_string().contains("branhc"), "{e}");
    }
}
