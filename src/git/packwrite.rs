//! Writes a pack (version 2, whole objects, no deltas) and its `.idx` (version 2).
//!
//! Invariants: every object is hashed as it is added, so the index can only name what the pack
//! holds; both files are written to temporary names, fsynced, and renamed pack first, index
//! last (git only uses a pack once its index exists), then the directory is fsynced. A crash
//! between the two renames leaves a complete `.pack` without its `.idx`, which git ignores and
//! git-surgery's scan reports and repairs with `git index-pack`.

use super::object::{Kind, Oid, hash_object};
use flate2::Compression;
use sha1::{Digest, Sha1};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Accumulates objects for one pack.
#[derive(Default)]
pub struct PackWriter {
    body: Vec<u8>,
    entries: Vec<(Oid, u32, u64)>,
    seen: super::object::OidSet,
}

impl PackWriter {
    pub fn new() -> PackWriter {
        PackWriter::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an object (duplicates are ignored) and returns its id.
    pub fn add(&mut self, kind: Kind, data: &[u8]) -> Oid {
        let id = hash_object(kind, data);
        if !self.seen.insert(id) {
            return id;
        }
        let start = self.body.len();
        encode_entry(kind, data, 1, &mut self.body);
        let crc = crc32fast::hash(&self.body[start..]);
        self.entries.push((id, crc, start as u64 + 12));
        id
    }

    /// Writes `pack-<sum>.pack` and `.idx` into `dir`; returns the pack path.
    pub fn finish(mut self, dir: &Path) -> std::io::Result<PathBuf> {
        let mut pack = Vec::with_capacity(self.body.len() + 32);
        pack.extend_from_slice(b"PACK");
        pack.extend_from_slice(&2u32.to_be_bytes());
        pack.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        pack.append(&mut self.body);
        let sum: [u8; 20] = Sha1::digest(&pack).into();
        pack.extend_from_slice(&sum);
        let idx = index_bytes(&mut self.entries, &sum);
        let name = format!("pack-{}", Oid(sum));
        let pack_path = dir.join(format!("{name}.pack"));
        write_durably(dir, &pack_path, &pack)?;
        write_durably(dir, &dir.join(format!("{name}.idx")), &idx)?;
        sync_dir(dir)?;
        Ok(pack_path)
    }
}

/// Appends one whole-object pack entry (type/size header, zlib data at `level`) to `out`.
/// Each thread keeps one compressor and resets it between objects: setting up a fresh zlib
/// stream per object (its window and tables) cost more than compressing small objects.
pub fn encode_entry(kind: Kind, data: &[u8], level: u32, out: &mut Vec<u8>) {
    let mut size = data.len() as u64;
    let mut c = ((kind as u8) << 4) | (size & 15) as u8;
    size >>= 4;
    while size > 0 {
        out.push(c | 0x80);
        c = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(c);
    thread_local! {
        static Z: std::cell::RefCell<Option<(u32, flate2::Compress)>> = const { std::cell::RefCell::new(None) };
    }
    Z.with(|z| {
        let mut z = z.borrow_mut();
        if z.as_ref().is_none_or(|(l, _)| *l != level) {
            *z = Some((level, flate2::Compress::new(Compression::new(level), true)));
        }
        let (_, comp) = z.as_mut().expect("just set");
        comp.reset();
        out.reserve(data.len() / 2 + 64);
        loop {
            let before = comp.total_in() as usize;
            let status = comp.compress_vec(&data[before..], out, flate2::FlushCompress::Finish);
            match status {
                Ok(flate2::Status::StreamEnd) => break,
                Ok(_) => out.reserve(out.capacity().max(1024)),
                // Compressing into a Vec has no failure mode but running out of space.
                Err(_) => break,
            }
        }
    });
}

/// The bytes of a version-2 `.idx` for `entries` (id, CRC32, offset); sorts `entries`.
pub fn index_bytes(entries: &mut [(Oid, u32, u64)], pack_sum: &[u8; 20]) -> Vec<u8> {
    entries.sort_by_key(|e| e.0);
    let mut idx = Vec::new();
    idx.extend_from_slice(b"\xfftOc");
    idx.extend_from_slice(&2u32.to_be_bytes());
    let mut fan = [0u32; 256];
    for e in entries.iter() {
        fan[usize::from(e.0.0[0])] += 1;
    }
    let mut acc = 0;
    for f in fan {
        acc += f;
        idx.extend_from_slice(&acc.to_be_bytes());
    }
    for e in entries.iter() {
        idx.extend_from_slice(&e.0.0);
    }
    for e in entries.iter() {
        idx.extend_from_slice(&e.1.to_be_bytes());
    }
    let mut large = Vec::new();
    for e in entries.iter() {
        if e.2 < 0x8000_0000 {
            idx.extend_from_slice(&(e.2 as u32).to_be_bytes());
        } else {
            idx.extend_from_slice(&(0x8000_0000u32 | large.len() as u32).to_be_bytes());
            large.push(e.2);
        }
    }
    for l in large {
        idx.extend_from_slice(&l.to_be_bytes());
    }
    idx.extend_from_slice(pack_sum);
    let sum: [u8; 20] = Sha1::digest(&idx).into();
    idx.extend_from_slice(&sum);
    idx
}

/// Writes the reverse index (`.rev`, version 1) of the pack at `pack` from its `.idx`: the
/// index positions in pack-offset order, the pack checksum, and its own SHA-1.
pub fn write_rev(pack: &Path) -> std::io::Result<PathBuf> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let idx =
        super::pack::Index::parse(&std::fs::read(pack.with_extension("idx"))?).map_err(bad)?;
    let mut order: Vec<u32> = (0..idx.len() as u32).collect();
    order.sort_by_key(|&i| idx.offsets[i as usize]);
    let mut rev = Vec::with_capacity(12 + order.len() * 4 + 40);
    rev.extend_from_slice(b"RIDX");
    rev.extend_from_slice(&1u32.to_be_bytes());
    rev.extend_from_slice(&1u32.to_be_bytes());
    for i in order {
        rev.extend_from_slice(&i.to_be_bytes());
    }
    rev.extend_from_slice(&idx.pack_checksum);
    let sum: [u8; 20] = Sha1::digest(&rev).into();
    rev.extend_from_slice(&sum);
    let path = pack.with_extension("rev");
    let dir = pack.parent().unwrap_or(Path::new("."));
    write_durably(dir, &path, &rev)?;
    Ok(path)
}

/// Writes `bytes` to `path` through a temporary file in `dir`, fsynced, with the mode git
/// gives pack files ([`read_only_mode`]).
pub fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = tempfile::Builder::new()
        .prefix("tmp_surgery_")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let perm = std::fs::Permissions::from_mode(read_only_mode(dir));
    tmp.as_file().set_permissions(perm)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The mode git gives a pack, index or reverse index written into `dir` (`objects/pack` of
/// a repository): 0444 less the process's umask, widened as the repository's
/// `core.sharedRepository` asks (git's `adjust_shared_perm`; write bits always off). A
/// tempfile's 0600 made read-only is 0400, which locks everyone but the writer out.
pub fn read_only_mode(dir: &Path) -> u32 {
    let base = 0o444 & !umask();
    let git_dir = match dir.file_name().and_then(|n| n.to_str()) {
        Some("pack") => dir.parent().and_then(Path::parent),
        _ => None,
    };
    let shared = git_dir.and_then(|g| {
        let out = crate::git::command()
            .arg("--git-dir")
            .arg(g)
            .args(["config", "--get", "core.sharedRepository"])
            .output()
            .ok()?;
        Some(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .to_ascii_lowercase(),
        )
    });
    shared_mode(base, shared.as_deref().unwrap_or(""))
}

/// `base` widened by a `core.sharedRepository` value, for a read-only file.
fn shared_mode(base: u32, shared: &str) -> u32 {
    match shared {
        "group" | "true" | "1" => base | 0o440,
        "all" | "world" | "everybody" | "2" => base | 0o444,
        v if v.len() > 1 && v.starts_with('0') => {
            u32::from_str_radix(v, 8).map_or(base, |m| (m & 0o666) & !0o222 | 0o400)
        }
        _ => base,
    }
}

/// This process's umask, from /proc (reading it with umask(2) would change it for a moment,
/// under other threads' feet); 022 where /proc does not say.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// fsyncs a directory so the renames in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::super::pack::{Index, Pack};
    use super::*;

    #[test]
    fn modes_follow_umask_and_shared_repository() {
        assert_eq!(shared_mode(0o444, ""), 0o444);
        assert_eq!(shared_mode(0o400, "group"), 0o440);
        assert_eq!(shared_mode(0o400, "all"), 0o444);
        assert_eq!(shared_mode(0o444, "0640"), 0o440);
        assert_eq!(shared_mode(0o444, "0600"), 0o400);
        assert_eq!(shared_mode(0o444, "false"), 0o444);
        let dir = tempfile::tempdir().expect("tmp");
        let pack = dir.path().join("objects/pack");
        std::fs::create_dir_all(&pack).expect("dirs");
        let m = read_only_mode(&pack);
        assert_eq!(
            m,
            0o444 & !umask(),
            "no repository config: the umask decides"
        );
    }

    #[test]
    fn written_pack_reads_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = PackWriter::new();
        let a = w.add(Kind::Blob, b"alpha\n");
        let b = w.add(Kind::Blob, &vec![7u8; 100_000]);
        let path = w.finish(dir.path()).expect("write");
        let idx = std::fs::read(path.with_extension("idx")).expect("idx");
        let pack = Pack::open(&path, Index::parse(&idx).expect("parses")).expect("open");
        assert!(pack.check_envelope().is_empty());
        let rev = write_rev(&path).expect("rev");
        let sum = pack.index.pack_checksum;
        crate::git::files::check_rev(&std::fs::read(rev).expect("read"), &sum).expect("valid .rev");
        let pa = pack.index.find(&a).expect("a indexed");
        assert_eq!(pack.read(pa).expect("reads").1, b"alpha\n");
        let pb = pack.index.find(&b).expect("b indexed");
        assert_eq!(pack.read(pb).expect("reads").1.len(), 100_000);
    }
}
