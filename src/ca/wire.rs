//! SSH wire encoding helpers (RFC 4251 §5) for the formats ssh-key does not write for us:
//! KRLs, agent requests, raw option data.

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A `string`: a u32 length, then the bytes.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(
        out,
        u32::try_from(s.len()).expect("SSH strings here are far below 4 GiB"),
    );
    out.extend_from_slice(s);
}
