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
    /// How far in the future a certificate may start; unset means the backdate.
    #[serde(default)]
    pub max_postdate: Option<String>,
    /// Host profiles only: allow one leading `*.` label in a host principal (OpenSSH matches
    /// host certificate principals as patterns). Off by default.
    #[serde(default)]
    pub allow_wildcard_hosts: bool,
    /// Extensions this profile may grant. User certificates get ssh-keygen's defaults
    /// (the five `permit-*`) filtered to this list unless `-O` says otherwise.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Critical options this profile allows a request to set.
    #[serde(default)]
    pub critical_options: Vec<String>,
    /// The smallest RSA subject key certified, in bits (NIST SP 800-131A: 2048).
    #[serde(default = "default_min_rsa_bits")]
    pub min_rsa_bits: u32,
}

fn default_backdate() -> String {
    "5m".into()
}

fn default_min_rsa_bits() -> u32 {
    2048
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
    pub key_id: &'a str,
    pub principals: &'a [String],
    /// The parsed `-V`, if given.
    pub validity: Option<Validity>,
    pub options: &'a mut CertOptions,
    /// The key to be certified.
    pub subject: &'a ssh_key::PublicKey,
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
                (
                    "max_postdate",
                    p.max_postdate.as_ref().unwrap_or(&p.backdate),
                ),
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
        check_key_id(req.key_id).map_err(refuse)?;
        self.check_subject(req.subject).map_err(refuse)?;
        self.check_principals(req.principals).map_err(refuse)?;
        let v = self.check_validity(req.validity, now).map_err(refuse)?;
        self.check_options(req.options).map_err(refuse)?;
        Ok(v)
    }

    /// Refuses subject keys too weak to certify: DSA (OpenSSH has disabled it since 7.0) and
    /// RSA below `min_rsa_bits`.
    pub fn check_subject(&self, key: &ssh_key::PublicKey) -> Result<(), String> {
        use ssh_key::public::KeyData;
        match key.key_data() {
            KeyData::Dsa(_) => Err("subject key: DSA keys are not certified".into()),
            KeyData::Rsa(rsa) => {
                let bits = mpint_bits(rsa.n().as_positive_bytes().unwrap_or_default());
                if bits < self.min_rsa_bits {
                    Err(format!(
                        "subject key: RSA {bits} bits, at least {} (min_rsa_bits)",
                        self.min_rsa_bits
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn check_principals(&self, principals: &[String]) -> Result<(), String> {
        if principals.is_empty() && !self.allow_any_principal {
            return Err("a certificate without principals is valid for every name; give -n (allow_any_principal is off)".into());
        }
        if principals.len() > MAX_PRINCIPALS {
            return Err(format!(
                "principals: {} given, at most {MAX_PRINCIPALS} (ssh-keygen and sshd refuse more)",
                principals.len()
            ));
        }
        for p in principals {
            self.check_principal_syntax(p)?;
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
        let postdate = self.max_postdate.as_deref().unwrap_or(&self.backdate);
        if v.after > now.saturating_add(interval(postdate)) {
            return Err(format!(
                "start time: the certificate would start more than {postdate} in the future (max_postdate)"
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

/// OpenSSH's limit on principals in one certificate (`SSHKEY_CERT_MAX_PRINCIPALS`): ssh-keygen
/// 9.2 signs 256 and refuses 257, and `ssh-keygen -L` cannot read a certificate with more.
pub const MAX_PRINCIPALS: usize = 256;
/// Longest principal: a DNS name is at most 253 characters; user names are far shorter.
pub const MAX_PRINCIPAL_LEN: usize = 253;
/// Longest key id; it is logged by sshd on every login, so it is kept to one short line.
pub const MAX_KEY_ID_LEN: usize = 256;

fn check_key_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("key id: empty (give -I)".into());
    }
    if id.len() > MAX_KEY_ID_LEN {
        return Err(format!(
            "key id: {} bytes, at most {MAX_KEY_ID_LEN}",
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(format!(
            "key id {id:?}: control character {c:?} (it would forge lines in sshd's log)"
        ));
    }
    Ok(())
}

impl Profile {
    /// Syntax of one principal: no character OpenSSH treats as a separator or pattern, and for
    /// host certificates an RFC 1123 name (wildcard `*.` first label only if the profile allows).
    fn check_principal_syntax(&self, p: &str) -> Result<(), String> {
        if p.is_empty() {
            return Err("principal: empty".into());
        }
        if p.len() > MAX_PRINCIPAL_LEN {
            return Err(format!(
                "principal {:?}...: {} bytes, at most {MAX_PRINCIPAL_LEN}",
                p.chars().take(20).collect::<String>(),
                p.len()
            ));
        }
        if let Some(c) = p
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || matches!(c, ',' | '*' | '?' | '!'))
        {
            let allowed_wildcard = c == '*'
                && self.cert_type == CertType::Host
                && self.allow_wildcard_hosts
                && p.starts_with("*.")
                && !p[1..].contains(['*', '?']);
            if !allowed_wildcard {
                return Err(format!(
                    "principal {p:?}: character {c:?} is not allowed (no control characters, whitespace, commas or pattern characters{})",
                    if self.cert_type == CertType::Host {
                        "; a leading `*.` needs allow_wildcard_hosts"
                    } else {
                        ""
                    }
                ));
            }
        }
        if self.cert_type == CertType::Host {
            check_host_name(p.strip_prefix("*.").unwrap_or(p))
                .map_err(|why| format!("principal {p:?}: not a host name per RFC 1123: {why}"))?;
        }
        Ok(())
    }
}

/// RFC 1123 host name: dot-separated labels of 1-63 letters, digits and hyphens, no hyphen at
/// either end of a label.
fn check_host_name(name: &str) -> Result<(), String> {
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("label {label:?} must be 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "label {label:?} may hold only letters, digits and '-'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

/// The bit length of a big-endian unsigned integer.
fn mpint_bits(bytes: &[u8]) -> u32 {
    let bytes = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
    match bytes.first() {
        None => 0,
        Some(top) => (bytes.len() as u32 - 1) * 8 + (8 - top.leading_zeros()),
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
#   max_postdate:       how far into the future a certificate may start (default: backdate)
#   allow_wildcard_hosts: host profiles: allow a leading `*.` in host principals; default false
#   min_rsa_bits:       smallest RSA subject key certified (default 2048; DSA keys never are)
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

    const HOSTILE: &str = r#"
profiles:
  user:
    cert_type: user
    principals: ["ops-*", "alice"]
    default_validity: 8h
    max_validity: 24h
    backdate: 5m
  host:
    cert_type: host
    principals: ["*.example.com"]
    default_validity: 1d
    max_validity: 90d
  wild:
    cert_type: host
    principals: ["*.example.com"]
    default_validity: 1d
    max_validity: 90d
    allow_wildcard_hosts: true
"#;

    const NOW: u64 = 2_000_000_000;
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGy+ep07XMjGpIyG6lcfgSyfsZDZqr/r2zQ2oOpOS32Z";
    const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDOCn1LCzj1ErItSXdr987SPBQrP0lihnE0g9kZUoNEyiYzaGK0Wh/Zmi2IDteN8TKa25+GjKhvttkCcxty7Y4wMicEYXGBxNa3/tKILl9S0MGYy49lN+AHw7AeROtZlMskG+29Q52ijJ6G1RFoGxEjTJIQP046nQX9NPqNi2OzqQ==";
    const RSA_2048: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCY5SRJbjDjAPJUSrFYwKzsXSP48ualm98ObJ0Au1agP4XyYX8OdkJ+E8ULZJ5pOjwd8E8EcykRwKkyVgqMQRc+IxxlHNBMr9zKbfknbP7o8NU7bNPM8JddySI0WpkOW5RlSjBkCdV/QPNl9N8KXGgllYex+uMP5FeBJICQ+N2CRBBWC6mHqEzt72MqIf5QTAFDneywiMP3+vxJsOLR6x8iHt8WHePtVL/n34NdY8VYJ5Z4I1Pe2pi4ry26hGozUZJW1iUi7+qP0DFSlTfDd2SBurMAunjeu1jMU0Sgu0+raTbi1sh+az7SdqzZhBKThuW5JjAApJfR96ohVIQhS11Z";

    fn key(line: &str) -> ssh_key::PublicKey {
        ssh_key::PublicKey::from_openssh(line).unwrap()
    }

    fn ask(
        profile: &str,
        key_id: &str,
        principals: &[&str],
        v: Option<&str>,
    ) -> Result<Validity, String> {
        let c: Config = serde_yaml::from_str(HOSTILE).unwrap();
        c.check().unwrap();
        let (name, p) = c.profile(Some(profile), CertType::User).unwrap();
        let principals: Vec<String> = principals.iter().map(|s| s.to_string()).collect();
        let mut o = CertOptions::defaults(p.cert_type);
        p.check(
            name,
            Request {
                cert_type: p.cert_type,
                key_id,
                principals: &principals,
                validity: v.map(|s| validity::parse(s, NOW).unwrap()),
                options: &mut o,
                subject: &key(ED25519),
            },
            NOW,
        )
        .map_err(|e| e.to_string())
    }

    fn refused(r: Result<Validity, String>, profile: &str, words: &[&str]) {
        let e = r.expect_err("crafted request was signed");
        assert!(e.contains(&format!("profile {profile:?}")), "{e}");
        for w in words {
            assert!(e.contains(w), "{w:?} missing from: {e}");
        }
    }

    #[test]
    fn crafted_principals_are_refused_naming_field_and_rule() {
        ask("user", "k", &["ops-a", "alice"], None).unwrap();
        refused(
            ask("user", "k", &["ops-a\nroot"], None),
            "user",
            &["principal", "control"],
        );
        refused(
            ask("user", "k", &["ops-a root"], None),
            "user",
            &["principal", "' '"],
        );
        refused(
            ask("user", "k", &["ops-a,root"], None),
            "user",
            &["principal", "','"],
        );
        refused(
            ask("user", "k", &["ops-*"], None),
            "user",
            &["principal", "'*'"],
        );
        refused(
            ask("user", "k", &["ops-?"], None),
            "user",
            &["principal", "'?'"],
        );
        refused(ask("user", "k", &[""], None), "user", &["principal: empty"]);
        let long = format!("ops-{}", "a".repeat(4000));
        refused(
            ask("user", "k", &[&long], None),
            "user",
            &["principal", "at most 253"],
        );
        let many: Vec<String> = (0..257).map(|i| format!("ops-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        refused(
            ask("user", "k", &many, None),
            "user",
            &["257 given, at most 256"],
        );
        ask("user", "k", &many[..256], None).unwrap();
    }

    #[test]
    fn host_principals_are_rfc_1123_names_with_wildcards_only_where_allowed() {
        ask("host", "k", &["web1.example.com"], None).unwrap();
        refused(
            ask("host", "k", &["*.example.com"], None),
            "host",
            &["'*'", "allow_wildcard_hosts"],
        );
        ask("wild", "k", &["*.example.com"], None).unwrap();
        refused(
            ask("wild", "k", &["a.*.example.com"], None),
            "wild",
            &["'*'"],
        );
        refused(
            ask("wild", "k", &["*.*.example.com"], None),
            "wild",
            &["'*'"],
        );
        refused(
            ask("host", "k", &["-web.example.com"], None),
            "host",
            &["RFC 1123", "'-'"],
        );
        refused(
            ask("host", "k", &["we_b.example.com"], None),
            "host",
            &["RFC 1123"],
        );
        refused(
            ask("host", "k", &["a..example.com"], None),
            "host",
            &["RFC 1123", "1 to 63"],
        );
        let label = format!("{}.example.com", "a".repeat(64));
        refused(
            ask("host", "k", &[&label], None),
            "host",
            &["RFC 1123", "1 to 63"],
        );
    }

    #[test]
    fn crafted_key_ids_are_refused() {
        refused(
            ask("user", "a\nb", &["alice"], None),
            "user",
            &["key id", "control"],
        );
        refused(
            ask("user", "a\u{1b}[2Jb", &["alice"], None),
            "user",
            &["key id", "control"],
        );
        refused(
            ask("user", "", &["alice"], None),
            "user",
            &["key id: empty"],
        );
        let big = "k".repeat(100_000);
        refused(
            ask("user", &big, &["alice"], None),
            "user",
            &["key id", "at most 256"],
        );
        ask("user", &"k".repeat(256), &["alice"], None).unwrap();
    }

    #[test]
    fn weak_subject_keys_are_refused_by_size() {
        let c: Config = serde_yaml::from_str(DEFAULT_CONFIG).unwrap();
        let (_, p) = c.profile(None, CertType::User).unwrap();
        let e = p.check_subject(&key(RSA_1024)).unwrap_err();
        assert!(e.contains("RSA 1024 bits, at least 2048"), "{e}");
        p.check_subject(&key(RSA_2048)).unwrap();
        p.check_subject(&key(ED25519)).unwrap();
        assert_eq!(mpint_bits(&[0, 0x01, 0]), 9);
        assert_eq!(mpint_bits(&[0x80]), 8);
        assert_eq!(mpint_bits(&[]), 0);
    }

    #[test]
    fn post_dated_certificates_are_refused() {
        refused(
            ask("user", "k", &["alice"], Some("+1h:+25h")),
            "user",
            &["start time", "5m in the future"],
        );
        refused(
            ask("user", "k", &["alice"], Some("20400101:20400102")),
            "user",
            &["start time"],
        );
        let v = ask("user", "k", &["alice"], Some("+4m:+20h")).unwrap();
        assert_eq!(v.after, NOW + 240);
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
                    key_id: "k",
                    cert_type: CertType::User,
                    principals: &["a".into()],
                    validity: Some(validity::parse("+2d", 1_000_000).unwrap()),
                    options: &mut o,
                    subject: &key(ED25519),
                },
                1_000_000,
            )
            .unwrap_err();
        assert!(e.to_string().contains("max_validity 24h"), "{e}");
        let e = p
            .check(
                name,
                Request {
                    key_id: "k",
                    cert_type: CertType::User,
                    principals: &[],
                    validity: None,
                    options: &mut o,
                    subject: &key(ED25519),
                },
                1_000_000,
            )
            .unwrap_err();
        assert!(e.to_string().contains("without principals"), "{e}");
        let e = p
            .check(
                name,
                Request {
                    key_id: "k",
                    cert_type: CertType::Host,
                    principals: &["h".into()],
                    validity: None,
                    options: &mut o,
                    subject: &key(ED25519),
                },
                1_000_000,
            )
            .unwrap_err();
        assert!(e.to_string().contains("not host certificates"), "{e}");
    }
}
