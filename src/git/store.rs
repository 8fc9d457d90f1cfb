//! Reading objects out of an object directory that is not being repaired: a reference copy,
//! a temporary fetch repository, or the packs a resumed conversion already wrote.
//!
//! Invariant: every object handed out is re-read from disk and hash-checked (pack entries
//! against their index and content, loose files against their name).

use crate::git::loose;
use crate::git::object::{Kind, Oid};
use crate::git::pack::{Index, Pack};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An object directory we may copy good objects from.
pub struct Store {
    pub name: String,
    objects: PathBuf,
    packs: Vec<Pack>,
    /// Where each packed id is: (pack number, position).
    packed: HashMap<Oid, (usize, usize)>,
}

impl Store {
    /// Opens an object directory (its packs and loose objects), read-only.
    pub fn open(name: &str, objects: &Path) -> Store {
        let mut packs = Vec::new();
        let mut packed = HashMap::new();
        let rd = std::fs::read_dir(objects.join("pack"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok);
        for e in rd {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "pack") {
                continue;
            }
            let Ok(idx) = std::fs::read(p.with_extension("idx"))
                .map_err(|e| e.to_string())
                .and_then(|b| Index::parse(&b))
            else {
                continue;
            };
            let Ok(pack) = Pack::open(&p, idx) else {
                continue;
            };
            for (pos, id) in pack.index.oids.iter().enumerate() {
                packed.entry(*id).or_insert((packs.len(), pos));
            }
            packs.push(pack);
        }
        Store {
            name: name.to_string(),
            objects: objects.to_path_buf(),
            packs,
            packed,
        }
    }

    /// Whether a pack of this store lists `oid` (its entry is not read).
    pub fn has_packed(&self, oid: &Oid) -> bool {
        self.packed.contains_key(oid)
    }

    /// A good copy of `oid`, hash-checked, or `None`.
    pub fn get(&self, oid: Oid) -> Option<(Kind, Vec<u8>)> {
        if let Some(&(p, pos)) = self.packed.get(&oid)
            && let Ok(o) = self.packs[p].read(pos)
        {
            return Some(o);
        }
        loose::read(&loose::path_of(&self.objects, oid), oid)
            .ok()
            .map(|o| (o.kind, o.data))
    }
}
