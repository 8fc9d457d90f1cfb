//! Object ids, object kinds, hashing and the links an object holds to others.
//!
//! Invariant: an object is only called good when its bytes hash to the id it is filed under;
//! links come from gix-object's strict decoders, so a malformed commit, tree or tag is reported
//! as malformed rather than silently followed.

use sha1::{Digest, Sha1};
use std::fmt;

/// A SHA-1 object id (the repositories git-surgery handles use `objectFormat = sha1`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Oid(pub [u8; 20]);

impl Oid {
    /// The all-zero id git writes for "no object" in reflogs.
    pub const ZERO: Oid = Oid([0; 20]);

    /// Parses 40 hex digits (lower or upper case); anything else is `None`.
    pub fn from_hex(s: &[u8]) -> Option<Oid> {
        if s.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, pair) in s.chunks(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(Oid(out))
    }

    /// Takes the first 20 bytes of `b` as a raw id.
    pub fn from_raw(b: &[u8]) -> Option<Oid> {
        b.get(..20)?.try_into().ok().map(Oid)
    }

    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 20]
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Oid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::hash::Hash for Oid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Object ids are already uniformly distributed: eight of their bytes are a good hash.
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(b));
    }
}

/// A hasher for [`Oid`] keys that passes their first eight bytes through (ids are SHA-1
/// outputs, so they need no further mixing; hash flooding would need SHA-1 preimages).
#[derive(Default, Clone, Copy)]
pub struct OidHasher(u64);

impl std::hash::Hasher for OidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by object id, hashed with [`OidHasher`].
pub type OidMap<V> = std::collections::HashMap<Oid, V, std::hash::BuildHasherDefault<OidHasher>>;
/// A set of object ids, hashed with [`OidHasher`].
pub type OidSet = std::collections::HashSet<Oid, std::hash::BuildHasherDefault<OidHasher>>;

/// The four object kinds, numbered as in pack entry headers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Commit = 1,
    Tree = 2,
    Blob = 3,
    Tag = 4,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Commit => "commit",
            Kind::Tree => "tree",
            Kind::Blob => "blob",
            Kind::Tag => "tag",
        }
    }

    pub fn from_name(s: &[u8]) -> Option<Kind> {
        match s {
            b"commit" => Some(Kind::Commit),
            b"tree" => Some(Kind::Tree),
            b"blob" => Some(Kind::Blob),
            b"tag" => Some(Kind::Tag),
            _ => None,
        }
    }

    pub fn from_pack_type(t: u8) -> Option<Kind> {
        match t {
            1 => Some(Kind::Commit),
            2 => Some(Kind::Tree),
            3 => Some(Kind::Blob),
            4 => Some(Kind::Tag),
            _ => None,
        }
    }
}

/// The id git gives `data` as an object of `kind`: SHA-1 over `"<kind> <len>\0" + data`.
pub fn hash_object(kind: Kind, data: &[u8]) -> Oid {
    let mut h = Sha1::new();
    h.update(format!("{} {}\0", kind.name(), data.len()).as_bytes());
    h.update(data);
    Oid(h.finalize().into())
}

/// SHA-1 of raw bytes (file trailers).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// What an object points at. Gitlinks (submodule commits in trees) are not followed: they live
/// in another repository.
pub fn links(kind: Kind, data: &[u8]) -> Result<Vec<Oid>, String> {
    let mut out = Vec::new();
    links_into(kind, data, &mut out)?;
    Ok(out)
}

/// Like [`links`], appending to `out` (which is left with a partial list on error).
pub fn links_into(kind: Kind, data: &[u8], out: &mut Vec<Oid>) -> Result<(), String> {
    let hk = gix_hash::Kind::Sha1;
    let conv = |id: &gix_hash::oid| Oid::from_raw(id.as_bytes()).unwrap_or_default();
    match kind {
        Kind::Blob => {}
        Kind::Commit => {
            let c = gix_object::CommitRef::from_bytes(data, hk).map_err(|e| e.to_string())?;
            out.push(conv(&c.tree()));
            out.extend(c.parents().map(|p| conv(&p)));
        }
        Kind::Tree => {
            let t = gix_object::TreeRef::from_bytes(data, hk).map_err(|e| e.to_string())?;
            out.extend(
                t.entries
                    .iter()
                    .filter(|e| !e.mode.is_commit())
                    .map(|e| conv(e.oid)),
            );
        }
        Kind::Tag => {
            let t = gix_object::TagRef::from_bytes(data, hk).map_err(|e| e.to_string())?;
            out.push(conv(&t.target()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_blob_has_gits_id() {
        assert_eq!(
            hash_object(Kind::Blob, b"").to_hex(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let h = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
        assert_eq!(
            Oid::from_hex(h.as_bytes()).map(|o| o.to_hex()),
            Some(h.into())
        );
        assert!(Oid::from_hex(b"e69de29bb2d1d6434b8b29ae775ad8c2e48c539").is_none());
        assert!(Oid::from_hex(b"g69de29bb2d1d6434b8b29ae775ad8c2e48c5391").is_none());
    }
}
