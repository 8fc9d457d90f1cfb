//! The converter's object writer: objects go straight into a pack file as they are made,
//! compressed in parallel on `bitrot::sched`, and can be read back (delta bases, symlink
//! targets) before the pack is finished.
//!
//! Invariants: an id is known (hashed) the moment an object is put, and each object is written
//! once; the pack is written under a temporary name and only becomes visible, with its `.idx`
//! and `.rev`, in `finish`, so an interrupted run leaves no half pack git could see. Memory
//! holds only the objects waiting for compression (bounded by `FLUSH_BYTES`) and an offset per
//! object.

use crate::git::object::{Kind, Oid, OidMap, hash_object};
use crate::git::packwrite::{encode_entry, index_bytes, write_durably, write_rev};
use crate::git::store::Store;
use crate::sched::Executor;
use sha1::{Digest, Sha1};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Compress once this much is waiting.
const FLUSH_BYTES: usize = 8 << 20;

/// A pack being written.
pub struct Odb {
    dir: PathBuf,
    file: std::fs::File,
    tmp: PathBuf,
    offset: u64,
    entries: Vec<(Oid, u32, u64)>,
    /// (offset, length) of each written entry.
    offsets: OidMap<(u64, u64)>,
    /// The repository's earlier packs (a resumed run): their objects are not written again,
    /// and are read from there.
    older: Option<Store>,
    pending: Vec<(Oid, Kind, Arc<Vec<u8>>)>,
    pending_at: OidMap<usize>,
    pending_bytes: usize,
    exec: Arc<Executor>,
    level: u32,
}

impl Odb {
    /// Starts a pack in `objects/pack` of the repository whose objects directory is `objects`.
    pub fn create(objects: &Path, exec: Arc<Executor>) -> std::io::Result<Odb> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = objects.join("pack");
        std::fs::create_dir_all(&dir)?;
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("tmp_pack_svn_migrate_{}_{n}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(b"PACK\0\0\0\x02\0\0\0\0")?;
        Ok(Odb {
            dir,
            file,
            tmp,
            offset: 12,
            entries: Vec::new(),
            offsets: OidMap::default(),
            older: None,
            pending: Vec::new(),
            pending_at: OidMap::default(),
            pending_bytes: 0,
            exec,
            level: 1,
        })
    }

    /// Uses the packs already in the repository (a resumed run): their objects are not
    /// written again.
    pub fn set_older(&mut self, store: Store) {
        self.older = Some(store);
    }

    /// Stores an object; returns its id.
    pub fn put(&mut self, kind: Kind, data: Vec<u8>) -> std::io::Result<Oid> {
        let id = hash_object(kind, &data);
        self.put_known(kind, data, id)
    }

    /// Stores an object whose id the caller computed with `hash_object`.
    pub fn put_known(&mut self, kind: Kind, data: Vec<u8>, id: Oid) -> std::io::Result<Oid> {
        if self.offsets.contains_key(&id)
            || self.pending_at.contains_key(&id)
            || self.older.as_ref().is_some_and(|o| o.has_packed(&id))
        {
            return Ok(id);
        }
        self.pending_bytes += data.len();
        self.pending_at.insert(id, self.pending.len());
        self.pending.push((id, kind, Arc::new(data)));
        if self.pending_bytes >= FLUSH_BYTES || self.pending.len() >= 4096 {
            self.flush_pending()?;
        }
        Ok(id)
    }

    /// Compresses the waiting objects in parallel and appends them in order.
    fn flush_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.pending);
        self.pending_at.clear();
        self.pending_bytes = 0;
        let level = self.level;
        let deadline = self.exec.now() + Duration::from_secs(3600);
        let chunk = items.len().div_ceil(self.exec.workers().max(1) * 4).max(1);
        let mut tasks = Vec::new();
        for part in items.chunks(chunk) {
            let part: Vec<(Oid, Kind, Arc<Vec<u8>>)> = part.to_vec();
            tasks.push(self.exec.spawn(deadline, move |_| {
                part.into_iter()
                    .map(|(id, kind, data)| {
                        let mut out = Vec::with_capacity(data.len() / 2 + 16);
                        encode_entry(kind, &data, level, &mut out);
                        (id, out)
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let mut w = std::io::BufWriter::new(&mut self.file);
        w.seek(SeekFrom::Start(self.offset))?;
        for t in tasks {
            let encoded = t
                .join()
                .map_err(|e| std::io::Error::other(format!("compression task failed: {e}")))?;
            for (id, bytes) in encoded {
                w.write_all(&bytes)?;
                self.entries
                    .push((id, crc32fast::hash(&bytes), self.offset));
                self.offsets.insert(id, (self.offset, bytes.len() as u64));
                self.offset += bytes.len() as u64;
            }
        }
        w.flush()
    }

    /// Reads an object back (it may still be waiting for compression).
    pub fn get(&mut self, id: Oid) -> std::io::Result<Option<(Kind, Vec<u8>)>> {
        if let Some(&i) = self.pending_at.get(&id) {
            let (_, kind, data) = &self.pending[i];
            return Ok(Some((*kind, data.as_ref().clone())));
        }
        let Some(&(off, len)) = self.offsets.get(&id) else {
            return Ok(self.older.as_ref().and_then(|o| o.get(id)));
        };
        let mut raw = vec![0u8; len as usize];
        self.file.seek(SeekFrom::Start(off))?;
        self.file.read_exact(&mut raw)?;
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let h = crate::git::pack::entry_header(&raw, 0).map_err(bad)?;
        let crate::git::pack::Base::Full(kind) = h.base else {
            return Err(bad("unexpected delta entry".into()));
        };
        let (data, _) =
            crate::git::loose::inflate(&raw[h.header_len..], h.size as usize).map_err(bad)?;
        Ok(Some((kind, data)))
    }

    pub fn count(&self) -> usize {
        self.entries.len() + self.pending.len()
    }

    /// Finishes the pack (count, trailer, `.idx`, `.rev`), renames it into place; returns its
    /// path, or `None` when it holds no objects.
    pub fn finish(mut self) -> std::io::Result<Option<PathBuf>> {
        self.flush_pending()?;
        if self.entries.is_empty() {
            std::fs::remove_file(&self.tmp)?;
            return Ok(None);
        }
        self.file.seek(SeekFrom::Start(8))?;
        self.file
            .write_all(&(self.entries.len() as u32).to_be_bytes())?;
        self.file.seek(SeekFrom::Start(0))?;
        let mut h = Sha1::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut r = std::io::BufReader::new(&self.file);
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let sum: [u8; 20] = h.finalize().into();
        self.file.seek(SeekFrom::End(0))?;
        self.file.write_all(&sum)?;
        self.file.sync_all()?;
        let name = format!("pack-{}", Oid(sum));
        let pack = self.dir.join(format!("{name}.pack"));
        std::fs::rename(&self.tmp, &pack)?;
        let idx = index_bytes(&mut self.entries, &sum);
        write_durably(&self.dir, &self.dir.join(format!("{name}.idx")), &idx)?;
        write_rev(&pack)?;
        crate::git::packwrite::sync_dir(&self.dir)?;
        Ok(Some(pack))
    }
}

/// The converter's sink in the tool: the pack being written, plus the packs finished before
/// (earlier checkpoints of this run, or of the run being resumed).
pub struct Packs {
    objects: PathBuf,
    exec: Arc<Executor>,
    cur: Option<Odb>,
}

impl Packs {
    /// Starts writing into `objects`; objects already packed there are reused, not rewritten.
    pub fn open(objects: &Path, exec: Arc<Executor>) -> std::io::Result<Packs> {
        let mut p = Packs {
            objects: objects.to_path_buf(),
            exec,
            cur: None,
        };
        p.cur = Some(p.fresh()?);
        Ok(p)
    }

    fn fresh(&self) -> std::io::Result<Odb> {
        let mut odb = Odb::create(&self.objects, self.exec.clone())?;
        odb.set_older(Store::open("repository", &self.objects));
        Ok(odb)
    }

    fn odb(&mut self) -> &mut Odb {
        self.cur
            .as_mut()
            .expect("a pack is always open between checkpoints")
    }

    /// Makes everything written so far a visible pack and starts a new one.
    pub fn checkpoint(&mut self) -> std::io::Result<()> {
        if let Some(odb) = self.cur.take() {
            odb.finish()?;
        }
        self.cur = Some(self.fresh()?);
        Ok(())
    }

    /// Drops the pack being written (a run refused part-way leaves no objects behind it);
    /// packs finished at earlier checkpoints stay.
    pub fn abandon(&mut self) {
        if let Some(odb) = self.cur.take() {
            let _ = std::fs::remove_file(&odb.tmp);
        }
    }

    /// Finishes the last pack.
    pub fn finish(mut self) -> std::io::Result<()> {
        if let Some(odb) = self.cur.take() {
            odb.finish()?;
        }
        Ok(())
    }
}

impl super::Sink for Packs {
    fn put(&mut self, kind: Kind, data: Vec<u8>) -> Result<Oid, String> {
        self.odb().put(kind, data).map_err(|e| e.to_string())
    }

    fn put_known(&mut self, kind: Kind, data: Vec<u8>, id: Oid) -> Result<Oid, String> {
        self.odb()
            .put_known(kind, data, id)
            .map_err(|e| e.to_string())
    }

    fn get(&mut self, id: Oid) -> Result<Vec<u8>, String> {
        match self.odb().get(id) {
            Ok(Some((_, d))) => Ok(d),
            Ok(None) => Err(format!(
                "object {id} is not in the repository being written"
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}
