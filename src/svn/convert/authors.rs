//! Author maps: git-svn's `user = Name <email>` lines, or YAML (`user: Name <email>`); and
//! the list of a dump's authors in that format, to fill in (`git svn-migrate authors`).

use crate::svn::dump::{DumpError, Reader, Record};
use std::collections::BTreeMap;
use std::io::BufRead;

/// One svn user and the revisions they made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuthorCount {
    pub user: String,
    pub revisions: u64,
    pub first: u64,
    pub last: u64,
}

/// Every `svn:author` of a dump with its revision count (most revisions first, then by name),
/// and how many revisions have no author. r0 is not counted.
pub fn count(dump: impl BufRead) -> Result<(Vec<AuthorCount>, u64), DumpError> {
    let mut by_user: BTreeMap<String, AuthorCount> = BTreeMap::new();
    let mut anonymous = 0;
    for rec in Reader::new(dump) {
        let Record::Revision { number, props } = rec? else {
            continue;
        };
        if number == 0 {
            continue;
        }
        let Some(user) = props.get(&b"svn:author"[..]) else {
            anonymous += 1;
            continue;
        };
        let user = String::from_utf8_lossy(user).into_owned();
        let e = by_user.entry(user.clone()).or_insert(AuthorCount {
            user,
            revisions: 0,
            first: number,
            last: number,
        });
        e.revisions += 1;
        e.last = number;
    }
    let mut list: Vec<AuthorCount> = by_user.into_values().collect();
    list.sort_by(|a, b| b.revisions.cmp(&a.revisions).then(a.user.cmp(&b.user)));
    Ok((list, anonymous))
}

/// The authors-file text for `list`: one `user = user <user@domain>` line each (the name and
/// email to be filled in), with the counts as comments; it parses back with [`parse`].
pub fn template(list: &[AuthorCount], anonymous: u64, domain: Option<&str>) -> String {
    let mut out = String::from(
        "# svn user = Name <email>: fill in each line, then convert with --authors FILE\n",
    );
    for a in list {
        let email = match domain {
            Some(d) => format!("{}@{d}", a.user),
            None => a.user.clone(),
        };
        let span = match a.first == a.last {
            true => format!("r{}", a.first),
            false => format!("r{}-r{}", a.first, a.last),
        };
        out.push_str(&format!(
            "{} = {} <{email}>  # {} revision{}, {span}\n",
            a.user,
            a.user,
            a.revisions,
            if a.revisions == 1 { "" } else { "s" },
        ));
    }
    if anonymous > 0 {
        out.push_str(&format!(
            "# {anonymous} revision{} without svn:author (converted as `(no author)`)\n",
            if anonymous == 1 { "" } else { "s" }
        ));
    }
    out
}

/// An authors-file problem, with its line.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {what}")]
pub struct AuthorsError {
    pub file: String,
    pub line: usize,
    pub what: String,
}

/// Parses an authors file. Both forms name one author per line; `#` starts a comment.
pub fn parse(file: &str, text: &str) -> Result<BTreeMap<String, (String, String)>, AuthorsError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split_once('#').map_or(raw, |(a, _)| a).trim();
        if line.is_empty() || line == "---" {
            continue;
        }
        let err = |what: &str| AuthorsError {
            file: file.to_string(),
            line: i + 1,
            what: what.to_string(),
        };
        let (user, ident) = line
            .split_once(" = ")
            .or_else(|| line.split_once(": "))
            .ok_or_else(|| err("expected `user = Name <email>`"))?;
        let ident = ident.trim().trim_matches('"');
        let (name, rest) = ident
            .split_once('<')
            .ok_or_else(|| err("expected `Name <email>`"))?;
        let email = rest
            .strip_suffix('>')
            .ok_or_else(|| err("the email must end with `>`"))?;
        out.insert(
            user.trim().trim_matches('"').to_string(),
            (name.trim().to_string(), email.trim().to_string()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let m = parse(
            "a",
            "alice = Alice Example <alice@example.com>\nbob: \"Bob B <bob@example.com>\"\n",
        )
        .expect("parses");
        assert_eq!(
            m["alice"],
            ("Alice Example".into(), "alice@example.com".into())
        );
        assert_eq!(m["bob"].1, "bob@example.com");
        assert_eq!(parse("a", "x\n").unwrap_err().line, 1);
    }

    #[test]
    fn the_template_parses_back() {
        let list = vec![
            AuthorCount {
                user: "alice".into(),
                revisions: 3,
                first: 1,
                last: 9,
            },
            AuthorCount {
                user: "bob".into(),
                revisions: 1,
                first: 4,
                last: 4,
            },
        ];
        let text = template(&list, 2, Some("example.org"));
        let m = parse("t", &text).expect("parses back");
        assert_eq!(m["alice"], ("alice".into(), "alice@example.org".into()));
        assert!(text.contains("3 revisions, r1-r9") && text.contains("1 revision, r4"));
        assert!(text.contains("2 revisions without svn:author"));
    }
}
