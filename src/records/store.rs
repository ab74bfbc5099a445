//! The record store: one `<key>.json` a guest in one directory
//! (`/var/lib/pipework`, or `PIPEWORK_STATE_DIR`).
//!
//! Every change happens under an exclusive `flock` on `.lock` in that
//! directory, as read, modify, write: concurrent runs plumbing the same guest
//! keep each other's interfaces. A write goes to a temporary file in the
//! same directory, is fsync'd, renamed over the record, and the directory is
//! fsync'd: a crash leaves the old record or the new one, never half of one.
//! Readers take no lock; a rename is atomic to them. Every writer (the
//! command line, watch, the CNI plugin) writes so: an empty or torn record
//! would drop a guest's other interfaces at its next update.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{private_files, Record, VERSION};
use crate::error::{Error, Kind, Result};

pub const DIR_ENV: &str = "PIPEWORK_STATE_DIR";
pub const DEFAULT_DIR: &str = "/var/lib/pipework";

const LOCK_FILE: &str = ".lock";
const SUFFIX: &str = ".json";

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// The store's lock, held until dropped.
pub struct Lock<'a> {
    store: &'a Store,
    _flock: Flock<File>,
}

/// Every record, and the files that are not one (unreadable, not JSON, or
/// of a newer version): reported, not fatal, so one bad file stops nothing.
#[derive(Debug, Default)]
pub struct Listing {
    pub records: Vec<Record>,
    pub broken: Vec<Broken>,
}

#[derive(Debug)]
pub struct Broken {
    pub path: PathBuf,
    pub error: Error,
}

impl Store {
    /// `$PIPEWORK_STATE_DIR`, else /var/lib/pipework. Nothing is created
    /// until a record is written.
    pub fn from_env() -> Store {
        match std::env::var_os(DIR_ENV) {
            Some(dir) if !dir.is_empty() => Store::at(dir),
            _ => Store::at(DEFAULT_DIR),
        }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}{SUFFIX}"))
    }

    /// Takes the store's lock, making the directory (0700) if need be.
    /// Hold it across a read-modify-write that `update` cannot express.
    pub fn lock(&self) -> Result<Lock<'_>> {
        private_files::make_dir(&self.dir)
            .map_err(|e| Error::from(e).context(format!("creating {}", self.dir.display())))?;
        let path = self.dir.join(LOCK_FILE);
        let file = private_files::open(OpenOptions::new().create(true).truncate(false).write(true), &path)
            .map_err(|e| Error::from(e).context(format!("opening {}", path.display())))?;
        let flock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::from(e).context(format!("locking {}", path.display())))?;
        Ok(Lock { store: self, _flock: flock })
    }

    /// The record of `key`, if there is one.
    pub fn load(&self, key: &str) -> Result<Option<Record>> {
        read(&self.path(key))
    }

    /// Every record (sorted by key), and what could not be read. A missing
    /// directory is an empty store.
    pub fn load_all(&self) -> Result<Listing> {
        let mut listing = Listing::default();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(listing),
            Err(e) => return Err(Error::from(e).context(format!("reading {}", self.dir.display()))),
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                !name.starts_with('.') && name.ends_with(SUFFIX)
            })
            .collect();
        paths.sort();
        for path in paths {
            match read(&path) {
                Ok(Some(record)) => listing.records.push(record),
                // Removed since the listing: not a record any more.
                Ok(None) => {}
                Err(error) => listing.broken.push(Broken { path, error }),
            }
        }
        Ok(listing)
    }

    /// The records of a container ID (any runtime), a full ID or a prefix.
    pub fn by_container(&self, id: &str) -> Result<Vec<Record>> {
        let listing = self.load_all()?;
        Ok(listing
            .records
            .into_iter()
            .filter(
                |r| matches!(&r.guest.find, super::Finder::Container { id: rid, .. } if rid.starts_with(id)),
            )
            .collect())
    }

    /// Writes `record` whole, in place of any record of its key.
    pub fn write(&self, record: &Record) -> Result<()> {
        self.lock()?.write(record)
    }

    /// Removes the record of `key`; whether there was one.
    pub fn remove(&self, key: &str) -> Result<bool> {
        self.lock()?.remove(key)
    }

    /// Under the lock: reads the record of `key`, lets `change` return what
    /// it becomes (`None` removes it) and writes that.
    pub fn update<T>(&self, key: &str, change: impl FnOnce(&mut Option<Record>) -> T) -> Result<T> {
        let lock = self.lock()?;
        let mut record = lock.store.load(key)?;
        let before = record.clone();
        let out = change(&mut record);
        match record {
            _ if record == before => {}
            Some(record) => {
                if record.key() != key {
                    return Err(Error::new(
                        Kind::Internal,
                        format!("record {key} would be written as {}", record.key()),
                    ));
                }
                lock.write(&record)?;
            }
            None => {
                lock.remove(key)?;
            }
        }
        Ok(out)
    }

    /// Moves the record file of `key`, one that cannot be read, aside to
    /// `<key>.json.damaged` (no longer a record: listings skip it), where
    /// an operator can look at it; where it went.
    pub fn set_aside(&self, key: &str) -> Result<PathBuf> {
        let _lock = self.lock()?;
        let path = self.path(key);
        let aside = self.dir.join(format!("{key}{SUFFIX}.damaged"));
        fs::rename(&path, &aside)
            .and_then(|()| sync_dir(&self.dir))
            .map_err(|e| Error::from(e).context(format!("moving {} aside", path.display())))?;
        Ok(aside)
    }

    /// Drops the interfaces `names` from the record of `key`, and the
    /// record with the last of them; whether it had any of them.
    pub fn forget(&self, key: &str, names: &[&str]) -> Result<bool> {
        self.update(key, |slot| {
            let Some(record) = slot.as_mut() else { return false };
            let before = record.interfaces.len();
            record.interfaces.retain(|i| !names.contains(&i.name.as_str()));
            let dropped = record.interfaces.len() != before;
            if record.interfaces.is_empty() {
                *slot = None;
            }
            dropped
        })
    }
}

impl Lock<'_> {
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Temporary file, fsync, rename, fsync of the directory.
    pub fn write(&self, record: &Record) -> Result<()> {
        let key = record.key();
        let path = self.store.path(&key);
        let tmp = self.store.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let failed = |e: std::io::Error| Error::from(e).context(format!("writing {}", path.display()));
        let mut text = serde_json::to_vec_pretty(record).map_err(|e| Error::new(Kind::Internal, e))?;
        text.push(b'\n');
        let result = (|| {
            let mut file =
                private_files::open(OpenOptions::new().create(true).truncate(true).write(true), &tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(&self.store.dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(failed)
    }

    pub fn remove(&self, key: &str) -> Result<bool> {
        let path = self.store.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.store.dir)
                    .map_err(|e| Error::from(e).context("syncing the record directory"))?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::from(e).context(format!("removing {}", path.display()))),
        }
    }
}

pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn read(path: &Path) -> Result<Option<Record>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::from(e).context(format!("reading {}", path.display()))),
    };
    // pipework writes no empty record: an empty file is an unsynced write
    // of an older version's CNI ADD that a crash cut short, whose record
    // never was.
    if text.is_empty() {
        return Ok(None);
    }
    let bad = |what: String| Error::new(Kind::Io, format!("{}: {what}", path.display()));
    // The version first, so a newer record is named as such, not as garbage.
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned = serde_json::from_slice(&text).map_err(|e| bad(format!("not a record: {e}")))?;
    if v.version > VERSION {
        return Err(bad(format!("record version {} is newer than this pipework's ({VERSION})", v.version)));
    }
    serde_json::from_slice(&text).map(Some).map_err(|e| bad(format!("not a record: {e}")))
}

#[cfg(test)]
mod tests;
