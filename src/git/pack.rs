//! Pack files and their `.idx` (version 2): parsing, entry-by-entry verification, random reads.
//!
//! Invariants: nothing here writes. Verification never stops at the first error: every entry
//! gets its own verdict (CRC32 of its raw bytes, inflate, delta chain, hash against the idx),
//! and pack-level problems (header, trailer, idx checksum, idx/pack mismatch) are listed
//! beside them. Random reads (`Pack::read`) work on damaged and truncated packs, so the good
//! entries of a damaged pack can be salvaged.

use super::loose::inflate;
use super::object::{Kind, Oid, hash_object, links_into, sha1};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::Path;

/// The longest delta chain followed; git's own default maximum is 50, aggressive repacks 250.
const MAX_CHAIN: usize = 10_000;

/// Sizes read from a file are only hints for allocation: capped, so a corrupt size field costs
/// a clean error later rather than an allocation failure now.
const MAX_HINT: usize = 64 << 20;

/// A parsed `.idx` version 2.
pub struct Index {
    pub oids: Vec<Oid>,
    pub crcs: Vec<u32>,
    pub offsets: Vec<u64>,
    /// The pack checksum the index was written for.
    pub pack_checksum: [u8; 20],
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Index {
    /// Parses and checks an index: magic, version, fanout order, size, and its own checksum.
    pub fn parse(b: &[u8]) -> Result<Index, String> {
        if b.len() < 8 + 1024 + 40 || &b[..4] != b"\xfftOc" {
            return Err("not a version-2 pack index (bad magic or too short)".into());
        }
        if be32(b, 4) != Some(2) {
            return Err(format!("unsupported index version {:?}", be32(b, 4)));
        }
        let body = b.len() - 20;
        if sha1(&b[..body]) != b[body..] {
            return Err("index checksum mismatch (the .idx file is corrupt)".into());
        }
        let n = be32(b, 8 + 255 * 4).unwrap_or(0) as usize;
        let mut prev = 0;
        for i in 0..256 {
            let f = be32(b, 8 + i * 4).unwrap_or(0);
            if f < prev {
                return Err("index fanout is not sorted".into());
            }
            prev = f;
        }
        let oid_at = 8 + 1024;
        let crc_at = oid_at + n * 20;
        let off_at = crc_at + n * 4;
        let large_at = off_at + n * 4;
        if large_at + 40 > b.len() {
            return Err(format!(
                "index claims {n} objects but is only {} bytes",
                b.len()
            ));
        }
        let oids = (0..n)
            .map(|i| Oid::from_raw(&b[oid_at + i * 20..]).unwrap_or_default())
            .collect();
        let crcs = (0..n)
            .map(|i| be32(b, crc_at + i * 4).unwrap_or(0))
            .collect();
        let mut offsets = Vec::with_capacity(n);
        for i in 0..n {
            let o = be32(b, off_at + i * 4).unwrap_or(0);
            if o & 0x8000_0000 == 0 {
                offsets.push(u64::from(o));
            } else {
                let k = (o & 0x7fff_ffff) as usize;
                let at = large_at + k * 8;
                if at + 8 > body - 20 {
                    return Err(format!("large offset {k} lies outside the index"));
                }
                offsets.push(be64(b, at).unwrap_or(0));
            }
        }
        let pack_checksum = b[body - 20..body].try_into().unwrap_or([0; 20]);
        Ok(Index {
            oids,
            crcs,
            offsets,
            pack_checksum,
        })
    }

    pub fn len(&self) -> usize {
        self.oids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.oids.is_empty()
    }

    /// The position of `oid`, by binary search (oids are sorted in a valid index).
    pub fn find(&self, oid: &Oid) -> Option<usize> {
        self.oids.binary_search(oid).ok()
    }
}

/// How an entry's data is stored.
#[derive(Clone, Copy, Debug)]
pub enum Base {
    Full(Kind),
    Ofs(u64),
    Ref(Oid),
}

/// A parsed entry header.
#[derive(Clone, Copy, Debug)]
pub struct EntryHeader {
    pub base: Base,
    pub size: u64,
    /// Bytes from the entry start to the zlib data.
    pub header_len: usize,
}

/// Parses the entry header at `off`.
pub fn entry_header(pack: &[u8], off: u64) -> Result<EntryHeader, String> {
    let mut at = usize::try_from(off).map_err(|_| "offset too large")?;
    let start = at;
    let byte = |i: usize| -> Result<u8, String> {
        pack.get(i)
            .copied()
            .ok_or_else(|| format!("entry at offset {off} runs past the end of the pack"))
    };
    let mut c = byte(at)?;
    at += 1;
    let typ = (c >> 4) & 7;
    let mut size = u64::from(c & 15);
    let mut shift = 4;
    while c & 0x80 != 0 {
        c = byte(at)?;
        at += 1;
        if shift > 60 {
            return Err(format!("entry at offset {off}: size field too long"));
        }
        size |= u64::from(c & 0x7f) << shift;
        shift += 7;
    }
    let base = match typ {
        1..=4 => Base::Full(Kind::from_pack_type(typ).unwrap_or(Kind::Blob)),
        6 => {
            let mut c = byte(at)?;
            at += 1;
            let mut rel = u64::from(c & 0x7f);
            while c & 0x80 != 0 {
                c = byte(at)?;
                at += 1;
                rel = rel
                    .checked_add(1)
                    .and_then(|r| r.checked_mul(128))
                    .map(|r| r | u64::from(c & 0x7f))
                    .ok_or_else(|| format!("entry at offset {off}: delta base offset overflows"))?;
            }
            if rel == 0 || rel > off {
                return Err(format!(
                    "entry at offset {off}: delta base offset out of range"
                ));
            }
            Base::Ofs(off - rel)
        }
        7 => {
            let id = pack
                .get(at..at + 20)
                .and_then(Oid::from_raw)
                .ok_or_else(|| format!("entry at offset {off} runs past the end of the pack"))?;
            at += 20;
            Base::Ref(id)
        }
        t => return Err(format!("entry at offset {off}: invalid type {t}")),
    };
    Ok(EntryHeader {
        base,
        size,
        header_len: at - start,
    })
}

fn delta_varint(d: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let c = *d.get(*at).ok_or("delta header truncated")?;
        *at += 1;
        v |= u64::from(c & 0x7f) << shift;
        shift += 7;
        if c & 0x80 == 0 || shift > 63 {
            return Ok(v);
        }
    }
}

/// Applies a git delta to `base`.
pub fn apply_delta(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, String> {
    let mut at = 0;
    let src = delta_varint(delta, &mut at)?;
    let dst = delta_varint(delta, &mut at)? as usize;
    if src != base.len() as u64 {
        return Err(format!(
            "delta expects a {src}-byte base, base has {}",
            base.len()
        ));
    }
    let mut out = Vec::with_capacity(dst.min(MAX_HINT));
    while at < delta.len() {
        let op = delta[at];
        at += 1;
        if op & 0x80 != 0 {
            let mut off = 0usize;
            let mut len = 0usize;
            for i in 0..4 {
                if op & (1 << i) != 0 {
                    off |= usize::from(*delta.get(at).ok_or("delta copy truncated")?) << (8 * i);
                    at += 1;
                }
            }
            for i in 0..3 {
                if op & (0x10 << i) != 0 {
                    len |= usize::from(*delta.get(at).ok_or("delta copy truncated")?) << (8 * i);
                    at += 1;
                }
            }
            if len == 0 {
                len = 0x10000;
            }
            let chunk = base
                .get(off..off + len)
                .ok_or("delta copies from outside its base")?;
            out.extend_from_slice(chunk);
        } else if op != 0 {
            let chunk = delta
                .get(at..at + usize::from(op))
                .ok_or("delta insert truncated")?;
            out.extend_from_slice(chunk);
            at += usize::from(op);
        } else {
            return Err("delta has a zero opcode".into());
        }
    }
    if out.len() != dst {
        return Err(format!(
            "delta result is {} bytes, header says {dst}",
            out.len()
        ));
    }
    Ok(out)
}

/// An open pack with its index: random reads by offset, tolerant of damage.
pub struct Pack {
    pub data: Mmap,
    pub index: Index,
    /// (offset, index position), sorted by offset.
    by_offset: Vec<(u64, u32)>,
    /// Entry end offsets (the next entry's start, or the trailer) by index position.
    ends: Vec<u64>,
}

impl Pack {
    /// Opens `pack` with an already parsed index.
    pub fn open(pack: &Path, index: Index) -> std::io::Result<Pack> {
        let f = std::fs::File::open(pack)?;
        // SAFETY: the map is read-only and git never rewrites a pack in place (packs are
        // immutable once named); a concurrent truncation is the damage this tool reports.
        let data = unsafe { Mmap::map(&f)? };
        let mut order: Vec<usize> = (0..index.len()).collect();
        order.sort_by_key(|&i| index.offsets[i]);
        let trailer = (data.len() as u64).saturating_sub(20);
        let mut ends = vec![trailer; index.len()];
        for w in order.windows(2) {
            ends[w[0]] = index.offsets[w[1]];
        }
        let by_offset = order
            .iter()
            .map(|&i| (index.offsets[i], i as u32))
            .collect();
        Ok(Pack {
            data,
            index,
            by_offset,
            ends,
        })
    }

    /// Positions in the index sorted by pack offset.
    pub fn by_pack_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.index.len()).collect();
        order.sort_by_key(|&i| self.index.offsets[i]);
        order
    }

    /// The raw bytes of entry `pos` (header and zlib data), checked for length.
    fn raw(&self, pos: usize) -> Result<&[u8], String> {
        let start = self.index.offsets[pos];
        let end = self.ends[pos];
        if start >= end || end > self.data.len() as u64 {
            return Err(format!(
                "entry at offset {start} lies beyond the end of the pack"
            ));
        }
        Ok(&self.data[start as usize..end as usize])
    }

    /// Checks the CRC32 and inflates entry `pos`: its header and its (possibly delta) bytes.
    pub fn inflate_entry(&self, pos: usize) -> Result<(EntryHeader, Vec<u8>), String> {
        let off = self.index.offsets[pos];
        let raw = self.raw(pos)?;
        let crc = crc32fast::hash(raw);
        if crc != self.index.crcs[pos] {
            return Err(format!("CRC32 mismatch at offset {off}"));
        }
        let h = entry_header(&self.data, off)?;
        let body = raw
            .get(h.header_len..)
            .ok_or_else(|| format!("offset {off}: entry header runs past the entry"))?;
        let (out, used) = inflate(body, (h.size as usize).min(MAX_HINT))
            .map_err(|e| format!("offset {off}: {e}"))?;
        if out.len() as u64 != h.size {
            return Err(format!(
                "offset {off}: inflated {} bytes, header says {}",
                out.len(),
                h.size
            ));
        }
        if used != body.len() {
            return Err(format!(
                "offset {off}: bytes left over after the zlib stream"
            ));
        }
        Ok((h, out))
    }

    /// The position of the base an entry's delta refers to.
    pub fn base_pos(&self, base: Base) -> Result<Option<usize>, String> {
        match base {
            Base::Full(_) => Ok(None),
            Base::Ofs(o) => self
                .by_offset
                .binary_search_by_key(&o, |e| e.0)
                .map(|i| Some(self.by_offset[i].1 as usize))
                .map_err(|_| format!("delta base offset {o} is not an entry of this pack")),
            Base::Ref(id) => self
                .index
                .find(&id)
                .map(Some)
                .ok_or_else(|| format!("delta base {id} is not in this pack")),
        }
    }

    /// Reads and fully resolves entry `pos`, checking its hash against the index.
    pub fn read(&self, pos: usize) -> Result<(Kind, Vec<u8>), String> {
        let mut chain = Vec::new();
        let mut cur = pos;
        let (kind, mut data) = loop {
            let (h, bytes) = self.inflate_entry(cur)?;
            match h.base {
                Base::Full(k) => break (k, bytes),
                b => {
                    chain.push(bytes);
                    if chain.len() > MAX_CHAIN {
                        return Err("delta chain too long (a loop?)".into());
                    }
                    cur = self.base_pos(b)?.unwrap_or(cur);
                }
            }
        };
        while let Some(delta) = chain.pop() {
            data = apply_delta(&data, &delta)?;
        }
        let id = hash_object(kind, &data);
        if id != self.index.oids[pos] {
            return Err(format!(
                "entry hashes to {id}, index says {}",
                self.index.oids[pos]
            ));
        }
        Ok((kind, data))
    }

    /// Pack-level checks: header, object count, trailer checksum and the idx's record of it.
    pub fn check_envelope(&self) -> Vec<String> {
        let d = &self.data[..];
        let mut out = Vec::new();
        if d.len() < 32 || &d[..4] != b"PACK" {
            out.push("not a pack file (bad signature or too short)".into());
            return out;
        }
        match be32(d, 4) {
            Some(2 | 3) => {}
            v => out.push(format!("unsupported pack version {v:?}")),
        }
        let n = be32(d, 8).unwrap_or(0) as usize;
        if n != self.index.len() {
            out.push(format!(
                "pack holds {n} objects, index lists {}",
                self.index.len()
            ));
        }
        let body = d.len() - 20;
        let sum = sha1(&d[..body]);
        if sum != d[body..] {
            out.push("pack checksum mismatch (truncated or corrupt pack)".into());
        } else if sum != self.index.pack_checksum {
            out.push("pack does not match its index (index written for another pack)".into());
        }
        out
    }
}

/// Verified objects of one batch of entries: their links live in one shared arena so that a
/// pack of a million objects costs one allocation per batch, not one per object.
#[derive(Default)]
pub struct Batch {
    pub links: Vec<Oid>,
    /// (index position, kind, first link in `links`, number of links).
    pub good: Vec<(u32, Kind, u32, u32)>,
    pub bad: Vec<(u32, String)>,
    /// (index position, position of its delta base).
    pub deltas: Vec<(u32, u32)>,
}

impl Batch {
    fn verdict(&mut self, pack: &Pack, pos: usize, kind: Kind, data: &[u8]) -> bool {
        let id = hash_object(kind, data);
        if id != pack.index.oids[pos] {
            let why = format!("entry hashes to {id}, index says {}", pack.index.oids[pos]);
            self.bad.push((pos as u32, why));
            return false;
        }
        let start = self.links.len();
        if let Err(e) = links_into(kind, data, &mut self.links) {
            self.links.truncate(start);
            self.bad
                .push((pos as u32, format!("malformed {}: {e}", kind.name())));
            return false;
        }
        let n = self.links.len() - start;
        self.good.push((pos as u32, kind, start as u32, n as u32));
        true
    }
}

/// Checks entries without resolving deltas: CRC, inflate, and for whole objects the hash and
/// links. Deltas are listed with their base and resolved later by `resolve_from`.
pub fn check_entries(pack: &Pack, positions: &[usize]) -> Batch {
    let mut b = Batch::default();
    for &pos in positions {
        let r = pack.inflate_entry(pos).and_then(|(h, bytes)| match h.base {
            Base::Full(kind) => {
                b.verdict(pack, pos, kind, &bytes);
                Ok(())
            }
            base => {
                let bp = pack.base_pos(base)?.ok_or("delta without a base")?;
                b.deltas.push((pos as u32, bp as u32));
                Ok(())
            }
        });
        if let Err(e) = r {
            b.bad.push((pos as u32, e));
        }
    }
    b
}

/// Resolves every delta below the whole objects at `roots`, depth first, giving each a
/// verdict. `children` maps a position to the deltas based on it.
pub fn resolve_from(pack: &Pack, roots: &[usize], children: &HashMap<u32, Vec<u32>>) -> Batch {
    let mut b = Batch::default();
    for &root in roots {
        let Ok((h, data)) = pack.inflate_entry(root) else {
            continue;
        };
        let Base::Full(kind) = h.base else { continue };
        let mut stack = vec![(root, data)];
        while let Some((pos, data)) = stack.pop() {
            for &child in children
                .get(&(pos as u32))
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let child = child as usize;
                match pack
                    .inflate_entry(child)
                    .and_then(|(_, delta)| apply_delta(&data, &delta))
                {
                    Ok(cdata) => {
                        if b.verdict(pack, child, kind, &cdata)
                            && children.contains_key(&(child as u32))
                        {
                            stack.push((child, cdata));
                        }
                    }
                    Err(e) => b.bad.push((child as u32, e)),
                }
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_copy_and_insert() {
        let base = b"hello world";
        // src 11, dst 8; copy off 0 len 5; insert "!!!"
        let delta = [11u8, 8, 0x90, 5, 3, b'!', b'!', b'!'];
        assert_eq!(apply_delta(base, &delta).expect("applies"), b"hello!!!");
        assert!(apply_delta(b"short", &delta).is_err());
    }
}
