//! The CA's policy: YAML profiles saying who may get which certificates, for how long, with
//! which options. A request outside a profile is refused with the rule that refused it.
//!
//! Invariant: checking is pure: it takes the request and `now` and returns the validity to
//! use or a [`PolicyError`] naming the profile and the rule.

use super::CertType;
use super::options::CertOptions;
use super::validity::{self, FOREVER, Validity};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `config.yaml` in the CA directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Profile used for user certificates when `--profile` is not given.
    #[serde(default = "default_user")]
    pub default_user_profile: String,
    /// Profile used for host certificates when `--profile` is not given.
    #[serde(default = "default_host")]
    pub default_host_profile: String,
    pub profiles: BTreeMap<String, Profile>,
}

fn default_user() -> String {
    "user".into()
}

fn default_host() -> String {
    "host".into()
}

/// One profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub cert_type: CertType,
    /// Globs (`*`, `?`) a requested principal must match.
    pub principals: Vec<String>,
    /// Allow certificates with no principals (valid for any name). Off by default.
    #[serde(default)]
    pub allow_any_principal: bool,
    /// Validity when `-V` is not given, e.g. `8h`.
    pub default_validity: String,
    /// Longest validity, e.g. `24h`, or `forever`.
    pub max_validity: String,
    /// How far a certificate may start in the past; also the start of default certificates.
    #[serde(default = "default_backdate")]
    pub backdate: String,
    /// Extensions this profile may grant. User certificates get ssh-keygen's defaults
    /// (the five `permit-*`) filtered to this list unless `-O` says otherwise.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Critical options this profile allows a request to set.
    #[serde(default)]
    pub critical_options: Vec<String>,
}

fn default_backdate() -> String {
    "5m".into()
}

/// A request refused by policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused by profile {profile:?}: {rule}")]
pub struct PolicyError {
    pub profile: String,
    pub rule: String,
}

/// What a profile is checked against.
pub struct Request<'a> {
    pub cert_type: CertType,
    pub principals: &'a [String],
    /// The parsed `-V`, if given.
    pub validity: Option<Validity>,
    pub options: &'a mut CertOptions,
}

impl Config {
    /// The profile `name`, or the default one for `kind`.
    pub fn profile(
        &self,
        name: Option<&str>,
        kind: CertType,
    ) -> Result<(&str, &Profile), PolicyError> {
        let name = name.unwrap_or(match kind {
            CertType::User => &self.default_user_profile,
            CertType::Host => &self.default_host_profile,
        });
        self.profiles
            .get_key_value(name)
            .map(|(k, p)| (k.as_str(), p))
            .ok_or_else(|| PolicyError {
                profile: name.into(),
                rule: format!(
                    "no such profile in config.yaml (profiles: {})",
                    self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
    }

    /// Checks every profile's intervals once, so a typo is reported when the config loads.
    pub fn check(&self) -> Result<(), String> {
        for (name, p) in &self.profiles {
            for (field, v) in [
                ("default_validity", &p.default_validity),
                ("max_validity", &p.max_validity),
                ("backdate", &p.backdate),
            ] {
                if !(field == "max_validity" && v == "forever") {
                    validity::interval(v, v)
                        .map_err(|e| format!("profile {name:?}, {field}: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

fn interval(p: &str) -> u64 {
    validity::interval(p, p).unwrap_or(0)
}

impl Profile {
    /// Checks `req` against this profile; returns the validity the certificate gets and
    /// adjusts the options to the profile's defaults.
    pub fn check(&self, name: &str, req: Request<'_>, now: u64) -> Result<Validity, PolicyError> {
        let refuse = |rule: String| PolicyError {
            profile: name.into(),
            rule,
        };
        if req.cert_type != self.cert_type {
            return Err(refuse(format!(
                "it issues {} certificates, not {} certificates",
                self.cert_type, req.cert_type
            )));
        }
        self.check_principals(req.principals).map_err(refuse)?;
        let v = self.check_validity(req.validity, now).map_err(refuse)?;
        self.check_options(req.options).map_err(refuse)?;
        Ok(v)
    }

    fn check_principals(&self, principals: &[String]) -> Result<(), String> {
        if principals.is_empty() && !self.allow_any_principal {
            return Err("a certificate without principals is valid for every name; give -n (allow_any_principal is off)".into());
        }
        for p in principals {
            if !self.principals.iter().any(|g| glob(g, p)) {
                return Err(format!(
                    "principal {p:?} is not allowed (allowed: {})",
                    self.principals.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn check_validity(&self, requested: Option<Validity>, now: u64) -> Result<Validity, String> {
        let backdate = interval(&self.backdate);
        let v = requested.unwrap_or(Validity {
            after: now.saturating_sub(backdate),
            before: now.saturating_add(interval(&self.default_validity)),
        });
        if v.after < now.saturating_sub(backdate) {
            return Err(format!(
                "the certificate would start more than {} in the past",
                self.backdate
            ));
        }
        if self.max_validity != "forever" {
            let max = interval(&self.max_validity);
            if v.before == FOREVER || v.span() > max.saturating_add(backdate) {
                return Err(format!(
                    "validity longer than max_validity {}",
                    self.max_validity
                ));
            }
        }
        if v.before <= now {
            return Err("the certificate would already be expired".into());
        }
        Ok(v)
    }

    fn check_options(&self, o: &mut CertOptions) -> Result<(), String> {
        if !o.extensions_explicit {
            o.extensions.retain(|k, _| self.extensions.contains(k));
        }
        if let Some(bad) = o.extensions.keys().find(|k| !self.extensions.contains(k)) {
            return Err(format!(
                "extension {bad:?} is not granted (allowed: {})",
                list_or_none(&self.extensions)
            ));
        }
        if let Some(bad) = o
            .critical
            .keys()
            .find(|k| !self.critical_options.contains(k))
        {
            return Err(format!(
                "critical option {bad:?} is not allowed (allowed: {})",
                list_or_none(&self.critical_options)
            ));
        }
        Ok(())
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Shell-style glob with `*` and `?`.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The commented configuration `ssh-ca init` writes.
pub const DEFAULT_CONFIG: &str = r#"# ssh-ca policy. Every `ssh-ca sign` is checked against one profile: the one named by
# --profile, else default_user_profile / default_host_profile below.
#
# Profile fields:
#   cert_type:          user | host
#   principals:         globs (* and ?) every requested principal must match
#   allow_any_principal: allow certificates without principals (valid for any name); default false
#   default_validity:   validity when -V is not given (s m h d w), starting `backdate` ago
#   max_validity:       longest validity allowed, or `forever`
#   backdate:           how far into the past a certificate may start (default 5m)
#   extensions:         extensions the profile may grant; user certificates get the ssh-keygen
#                       defaults (the five permit-*) filtered to this list unless -O says otherwise
#   critical_options:   critical options a request may set (force-command, source-address,
#                       verify-required, or custom name@domain)

default_user_profile: user
default_host_profile: host

profiles:
  user:
    cert_type: user
    principals: ["*"]
    default_validity: 8h
    max_validity: 24h
    backdate: 5m
    extensions: [permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc]
    critical_options: [force-command, source-address, verify-required]
  host:
    cert_type: host
    principals: ["*"]
    default_validity: 30d
    max_validity: 90d
    backdate: 5m
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("ops-*", "ops-web"));
        assert!(!glob("ops-*", "dev-web"));
        assert!(glob("web?.example.com", "web1.example.com"));
        assert!(!glob("web?.example.com", "web12.example.com"));
        assert!(glob("*.example.com", "a.b.example.com"));
    }

    #[test]
    fn the_default_config_parses_and_checks() {
        let c: Config = serde_yaml::from_str(DEFAULT_CONFIG).unwrap();
        c.check().unwrap();
        assert_eq!(c.profile(None, CertType::Host).unwrap().0, "host");
    }

    #[test]
    fn refusals_name_the_rule() {
        let c: Config = serde_yaml::from_str(DEFAULT_CONFIG).unwrap();
        let (name, p) = c.profile(None, CertType::User).unwrap();
        let mut o = CertOptions::defaults(CertType::User);
        let e = p
            .check(
                name,
                Request {
                    cert_type: CertType::User,
                    principals: &["a".into()],
                    validity: Some(validity::parse("+2d", 1_000_000).unwrap()),
                    options: &mut o,
                },
                1_000_000,
            )
            .unwrap_err();
        assert!(e.to_string().contains("max_validity 24h"), "{e}");
        let e = p
            .check(
                name,
                Request {
                    cert_type: CertType::User,
                    principals: &[],
                    validity: None,
                    options: &mut o,
                },
                1_000_000,
            )
            .unwrap_err();
        assert!(e.to_string().contains("without principals"), "{e}");
        let e = p
            .check(
                name,
                Request {
                    cert_type: CertType::Host,
                    principals: &["h".into()],
                    validity: None,
                    options: &mut o,
                },
                1_000_000,
            )
            .unwrap_err();
        assert!(e.to_string().contains("not host certificates"), "{e}");
    }
}
