//! OpenSSH Key Revocation Lists (PROTOCOL.krl), the format `sshd`'s `RevokedKeys` and
//! `ssh-keygen -Q` read. ssh-key cannot write them, so this is ours.
//!
//! Invariant: lists are written sorted and without duplicates (serials ascending, key ids and
//! key blobs in byte order), one certificates section per CA key, as `ssh-keygen -k` does.

const MAGIC: u64 = 0x5353_484b_524c_0a00; // "SSHKRL\n\0"
const FORMAT_VERSION: u32 = 1;
const SECTION_CERTIFICATES: u8 = 1;
const SECTION_EXPLICIT_KEY: u8 = 2;
const CERT_SERIAL_LIST: u8 = 0x20;
const CERT_KEY_ID: u8 = 0x23;

/// What one CA revoked.
#[derive(Debug, Clone, Default)]
pub struct CaRevocations {
    /// The CA's public key blob (wire encoding).
    pub ca_key: Vec<u8>,
    pub serials: Vec<u64>,
    pub key_ids: Vec<String>,
}

/// Everything a KRL says.
#[derive(Debug, Clone, Default)]
pub struct Krl {
    /// Increases with every KRL the CA writes.
    pub version: u64,
    /// Unix seconds.
    pub generated: u64,
    pub comment: String,
    pub cas: Vec<CaRevocations>,
    /// Plain public key blobs; revoking a key also revokes every certificate on it.
    pub keys: Vec<Vec<u8>>,
}

use super::wire::{put_string, put_u32, put_u64};

impl Krl {
    /// The binary KRL.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u64(&mut out, MAGIC);
        put_u32(&mut out, FORMAT_VERSION);
        put_u64(&mut out, self.version);
        put_u64(&mut out, self.generated);
        put_u64(&mut out, 0); // flags
        put_string(&mut out, b""); // reserved
        put_string(&mut out, self.comment.as_bytes());
        for ca in &self.cas {
            out.push(SECTION_CERTIFICATES);
            put_string(&mut out, &certificates_section(ca));
        }
        if !self.keys.is_empty() {
            let mut keys = self.keys.clone();
            keys.sort();
            keys.dedup();
            let mut data = Vec::new();
            keys.iter().for_each(|k| put_string(&mut data, k));
            out.push(SECTION_EXPLICIT_KEY);
            put_string(&mut out, &data);
        }
        out
    }
}

fn certificates_section(ca: &CaRevocations) -> Vec<u8> {
    let mut data = Vec::new();
    put_string(&mut data, &ca.ca_key);
    put_string(&mut data, b""); // reserved
    let mut serials = ca.serials.clone();
    serials.retain(|s| *s != 0);
    serials.sort_unstable();
    serials.dedup();
    if !serials.is_empty() {
        let mut sub = Vec::new();
        serials.iter().for_each(|s| put_u64(&mut sub, *s));
        data.push(CERT_SERIAL_LIST);
        put_string(&mut data, &sub);
    }
    let mut ids = ca.key_ids.clone();
    ids.sort();
    ids.dedup();
    if !ids.is_empty() {
        let mut sub = Vec::new();
        ids.iter()
            .for_each(|id| put_string(&mut sub, id.as_bytes()));
        data.push(CERT_KEY_ID);
        put_string(&mut data, &sub);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_sections_are_laid_out_as_protocol_krl_says() {
        let krl = Krl {
            version: 7,
            generated: 0x0102,
            comment: "c".into(),
            cas: vec![CaRevocations {
                ca_key: vec![0xAA],
                serials: vec![7, 2, 7, 0],
                key_ids: vec!["b".into(), "a".into()],
            }],
            keys: vec![],
        };
        let b = krl.encode();
        assert_eq!(&b[..8], b"SSHKRL\n\0");
        assert_eq!(&b[8..12], &[0, 0, 0, 1]);
        assert_eq!(&b[12..20], &7u64.to_be_bytes());
        // serials sorted, deduplicated, zero dropped
        let serials: Vec<u8> = [2u64, 7].iter().flat_map(|s| s.to_be_bytes()).collect();
        assert!(b.windows(serials.len()).any(|w| w == serials.as_slice()));
        let ids = [0, 0, 0, 1, b'a', 0, 0, 0, 1, b'b'];
        assert!(b.windows(ids.len()).any(|w| w == ids));
    }
}
