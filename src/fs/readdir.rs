//! Directory listings for readdir and readdirplus. Directories are not opened (OPENDIR is
//! answered ENOSYS once, so the kernel stops sending OPENDIR and RELEASEDIR and caches
//! listings): a pass over a directory lists it at offset 0, sorted by name, and reads the
//! rest of the same listing from here. readdirplus resolves each entry as a lookup would.

use super::attr::Attr;
use super::error::FsError;
use super::id::NodeId;
use super::lookup::Found;
use super::union::UnionFs;
use rustix::fs::FileType;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The merged entries of a directory, sorted by name.
pub type Listing = Arc<Vec<(Vec<u8>, FileType)>>;

/// Listings kept between the readdir calls of one pass over a directory: at most this many.
const LISTINGS_KEPT: usize = 256;

/// The listings of the passes under way.
#[derive(Default)]
pub struct Listings(Mutex<HashMap<NodeId, Listing>>);

impl Listings {
    /// The merged entries of directory `dir` for a readdir at `offset`: listed afresh when a
    /// pass starts (offset 0), else the pass's listing. A pass that reached the end drops it.
    pub fn entries(&self, fs: &UnionFs, dir: NodeId, offset: u64) -> Result<Listing, FsError> {
        if offset > 0 {
            let mut listings = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(listing) = listings.get(&dir).cloned() {
                // "." and ".." come first: offset len + 2 is past the end.
                if offset as usize >= listing.len() + 2 {
                    listings.remove(&dir);
                }
                return Ok(listing);
            }
        }
        let (path, lower) = fs.node(dir)?;
        let mut entries = fs.layers.list_dir(&path, lower)?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let listing = Arc::new(entries);
        let mut listings = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if listings.len() >= LISTINGS_KEPT {
            // Passes left unfinished (a reader that stopped early) are forgotten.
            listings.clear();
        }
        listings.insert(dir, listing.clone());
        Ok(listing)
    }
}

impl UnionFs {
    /// Resolves the entries `names` of directory `dir` as lookups would, with their
    /// attributes, one item per name: `None` for an entry that vanished meanwhile. The
    /// caller remembers ([`UnionFs::remember`]) each one it hands the kernel.
    pub fn resolve_entries<'a>(
        &'a self,
        dir: NodeId,
        names: impl Iterator<Item = &'a [u8]> + 'a,
    ) -> Result<impl Iterator<Item = Option<(Found, Attr)>> + 'a, FsError> {
        let (path, lower) = self.node(dir)?;
        // One upper lookup for the directory instead of one per entry when it has no upper
        // side.
        let in_upper = !matches!(self.layers.in_upper(&path), Ok(None));
        Ok(names.map(move |name| {
            let found = self.layers.child_in(&path, lower, in_upper, name).ok()?;
            let attr = self.layers.attr_of(&found).ok()?;
            Some((found, attr))
        }))
    }
}
