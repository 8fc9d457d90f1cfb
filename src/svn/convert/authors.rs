//! Author maps: git-svn's `user = Name <email>` lines, or YAML (`user: Name <email>`).

use std::collections::BTreeMap;

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
}
