//! `ssh-keygen -O` certificate options: critical options and extensions.
//!
//! Invariant: the maps are keyed by the names written into the certificate; an empty value is
//! a flag. User certificates start with the five `permit-*` extensions (as `ssh-keygen` does);
//! host certificates start empty (no options are defined for them).

use super::CertType;
use std::collections::BTreeMap;

pub const PERMIT: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Critical options OpenSSH understands; any other is refused by sshd.
pub const KNOWN_CRITICAL: [&str; 3] = ["force-command", "source-address", "verify-required"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertOptions {
    pub critical: BTreeMap<String, String>,
    pub extensions: BTreeMap<String, String>,
    /// Whether any `-O` touched the extensions (so policy defaults no longer apply).
    pub extensions_explicit: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown certificate option {0:?} (see -O in ssh-ca sign --help)")]
    Unknown(String),
    #[error("certificate option {option:?}: {why}")]
    Invalid { option: String, why: String },
    #[error("certificate option {0:?} applies to user certificates only")]
    UserOnly(String),
}

impl CertOptions {
    /// The options a certificate of `kind` has before any `-O`.
    pub fn defaults(kind: CertType) -> CertOptions {
        let mut o = CertOptions::default();
        if kind == CertType::User {
            for p in PERMIT {
                o.extensions.insert(p.into(), String::new());
            }
        }
        o
    }

    /// Applies options in order, as `ssh-keygen -O` does.
    pub fn apply_all<'a>(
        &mut self,
        kind: CertType,
        opts: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), OptionError> {
        opts.into_iter().try_for_each(|o| self.apply(kind, o))
    }

    pub fn apply(&mut self, kind: CertType, opt: &str) -> Result<(), OptionError> {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let lower = name.to_ascii_lowercase();
        if lower == "clear" && value.is_none() {
            self.critical.clear();
            self.extensions.clear();
            self.extensions_explicit = true;
            return Ok(());
        }
        // An option OpenSSH defines, spelled `critical:NAME` or `extension:NAME`, takes the
        // plain spelling's path, so that no spelling escapes its checks.
        if let Some(custom) = name.strip_prefix("critical:") {
            if let Some(known) = KNOWN_CRITICAL
                .iter()
                .find(|k| k.eq_ignore_ascii_case(custom))
            {
                return self.plain(kind, opt, known, value);
            }
            return self.custom(opt, custom, value, true);
        }
        if let Some(custom) = name.strip_prefix("extension:") {
            let flag = custom.to_ascii_lowercase();
            if flag == "no-touch-required" || PERMIT.iter().any(|p| p.eq_ignore_ascii_case(&flag)) {
                if value.is_some_and(|v| !v.is_empty()) {
                    return Err(OptionError::Invalid {
                        option: opt.into(),
                        why: "this extension is a flag and takes no value".into(),
                    });
                }
                return self.plain(kind, opt, &flag, None);
            }
            return self.custom(opt, custom, value, false);
        }
        self.plain(kind, opt, &lower, value)
    }

    /// An option by its plain name (`lower`, lower case); errors name `opt` as written.
    fn plain(
        &mut self,
        kind: CertType,
        opt: &str,
        lower: &str,
        value: Option<&str>,
    ) -> Result<(), OptionError> {
        if kind == CertType::Host {
            return Err(OptionError::UserOnly(opt.into()));
        }
        match (lower, value) {
            ("force-command", Some(cmd)) if !cmd.is_empty() => {
                self.critical.insert("force-command".into(), cmd.into());
            }
            ("source-address", Some(list)) => {
                check_cidr_list(opt, list)?;
                self.critical.insert("source-address".into(), list.into());
            }
            ("verify-required", None) => {
                self.critical
                    .insert("verify-required".into(), String::new());
            }
            ("no-touch-required", None) => self.set_ext("no-touch-required", true),
            (other, None) => self.permission(opt, other)?,
            _ => return Err(OptionError::Unknown(opt.into())),
        }
        Ok(())
    }

    fn permission(&mut self, opt: &str, lower: &str) -> Result<(), OptionError> {
        let (on, what) = if let Some(w) = lower.strip_prefix("permit-") {
            (true, w)
        } else if let Some(w) = lower.strip_prefix("no-") {
            (false, w)
        } else {
            return Err(OptionError::Unknown(opt.into()));
        };
        let ext = PERMIT
            .iter()
            .find(|p| p[7..].eq_ignore_ascii_case(what))
            .ok_or_else(|| OptionError::Unknown(opt.into()))?;
        self.set_ext(ext, on);
        Ok(())
    }

    fn set_ext(&mut self, name: &str, on: bool) {
        self.extensions_explicit = true;
        if on {
            self.extensions.insert(name.into(), String::new());
        } else {
            self.extensions.remove(name);
        }
    }

    fn custom(
        &mut self,
        opt: &str,
        name: &str,
        value: Option<&str>,
        critical: bool,
    ) -> Result<(), OptionError> {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(OptionError::Invalid {
                option: opt.into(),
                why: "the name is empty or has spaces".into(),
            });
        }
        let v = value.unwrap_or("").to_string();
        if critical {
            self.critical.insert(name.into(), v);
        } else {
            self.extensions_explicit = true;
            self.extensions.insert(name.into(), v);
        }
        Ok(())
    }
}

/// `source-address` takes comma-separated addresses or CIDR blocks (IPv4 or IPv6).
fn check_cidr_list(opt: &str, list: &str) -> Result<(), OptionError> {
    for item in list.split(',') {
        let (addr, bits) = match item.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (item, None),
        };
        let ip: std::net::IpAddr = addr.parse().map_err(|_| OptionError::Invalid {
            option: opt.into(),
            why: format!("{item:?} is not an IP address or CIDR block"),
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if let Some(b) = bits
            && b.parse::<u8>().map_or(true, |b| b > max)
        {
            return Err(OptionError::Invalid {
                option: opt.into(),
                why: format!("{item:?} has a bad prefix length"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kind: CertType, o: &[&str]) -> Result<CertOptions, OptionError> {
        let mut c = CertOptions::defaults(kind);
        c.apply_all(kind, o.iter().copied())?;
        Ok(c)
    }

    #[test]
    fn ssh_keygen_option_semantics() {
        let c = opts(
            CertType::User,
            &[
                "clear",
                "permit-pty",
                "force-command=echo hi",
                "source-address=127.0.0.1/32,::1",
            ],
        )
        .unwrap();
        assert_eq!(c.extensions.keys().collect::<Vec<_>>(), ["permit-pty"]);
        assert_eq!(c.critical["force-command"], "echo hi");
        assert_eq!(c.critical["source-address"], "127.0.0.1/32,::1");
        let c = opts(
            CertType::User,
            &[
                "no-x11-forwarding",
                "extension:foo@example.com=bar",
                "critical:x@example.com",
            ],
        )
        .unwrap();
        assert!(!c.extensions.contains_key("permit-X11-forwarding"));
        assert_eq!(c.extensions["foo@example.com"], "bar");
        assert_eq!(c.critical["x@example.com"], "");
        assert!(opts(CertType::Host, &[]).unwrap().extensions.is_empty());
    }

    #[test]
    fn bad_options_are_named() {
        assert_eq!(
            opts(CertType::User, &["permit-teleport"]).unwrap_err(),
            OptionError::Unknown("permit-teleport".into())
        );
        assert!(
            opts(CertType::User, &["source-address=10.0.0.0/33"])
                .unwrap_err()
                .to_string()
                .contains("prefix")
        );
        assert!(opts(CertType::User, &["source-address=example.com"]).is_err());
        assert_eq!(
            opts(CertType::Host, &["permit-pty"]).unwrap_err(),
            OptionError::UserOnly("permit-pty".into())
        );
    }

    #[test]
    fn both_spellings_of_a_known_option_are_checked_alike() {
        // The `critical:`/`extension:` spelling of an option OpenSSH defines goes through the
        // same checks as its plain spelling: no way around a syntax rule.
        let pairs: [(&str, &str); 7] = [
            (
                "source-address=10.0.0.0/8,junk",
                "critical:source-address=10.0.0.0/8,junk",
            ),
            (
                "source-address=127.0.0.1,evil",
                "critical:source-address=127.0.0.1,evil",
            ),
            ("source-address=", "critical:source-address"),
            ("force-command=", "critical:force-command="),
            ("verify-required=yes", "critical:verify-required=yes"),
            ("permit-pty=yes", "extension:permit-pty=yes"),
            ("no-touch-required=1", "extension:no-touch-required=1"),
        ];
        for (plain, spelled) in pairs {
            let a = opts(CertType::User, &[plain]);
            let b = opts(CertType::User, &[spelled]);
            assert!(a.is_err(), "{plain} is refused");
            assert!(b.is_err(), "{spelled} is refused like {plain}");
        }
        let a = opts(CertType::User, &["source-address=10.0.0.0/8"]).expect("plain");
        let b = opts(CertType::User, &["critical:source-address=10.0.0.0/8"]).expect("spelled");
        assert_eq!(a, b, "and accepted alike");
        let a = opts(CertType::User, &["clear", "permit-pty"]).expect("plain");
        let b = opts(CertType::User, &["clear", "extension:permit-pty"]).expect("spelled");
        assert_eq!(a.extensions, b.extensions);
        assert_eq!(
            opts(CertType::Host, &["critical:source-address=10.0.0.0/8"]).unwrap_err(),
            OptionError::UserOnly("critical:source-address=10.0.0.0/8".into()),
            "host certificates take none of the user options in either spelling"
        );
    }
}
