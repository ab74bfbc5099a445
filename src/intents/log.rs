//! A run's intent in its slot: the header written in place, then the log
//! lines appended, synced before a change that outlives a boot. `Slot` is
//! a slot file opened and locked, by a run for its own intent or by a
//! recovery for a dead one's.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::{About, Commit, Entry};
use crate::error::{Error, Kind, Result};
use crate::plan::Undo;
use crate::records::{private_files, GuestRecord, NsId, Store};

const DIR: &str = "intents";
/// The header's block; the log starts after it.
const BLOCK: usize = 4096;
/// More slots than this are refused: that many runs alive (or dead and not
/// yet recovered) is a machine in trouble.
const MAX_SLOTS: usize = 1024;
/// A log is read up to this much; a run writes far less.
const MAX_LOG: u64 = 1 << 20;

/// The header of an intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub state: State,
    pub run: RunId,
    /// `/proc/sys/kernel/random/boot_id`: an intent of an earlier boot names
    /// kernel state that is gone.
    pub boot: String,
    pub what: String,
    /// When the run began (`process::ticks_now`): dead runs are rolled
    /// back newest first.
    #[serde(default)]
    pub began: u64,
    /// The network namespace the run acted from.
    pub host: NsId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A run's, alive or dead.
    Open,
    /// A dead run's, being rolled back by another process (dead too once
    /// that one's lock is free: it died in turn).
    Recovering,
    /// Free for the next run.
    Free,
}

impl State {
    /// Whether the slot holds a run, once its lock is free a dead one.
    pub fn holds_run(self) -> bool {
        matches!(self, State::Open | State::Recovering)
    }
}

/// A run: its process (PID and start time, in clock ticks after boot) and
/// which of that process's runs (the watch service makes many).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunId {
    pub pid: u32,
    pub started: u64,
    pub seq: u32,
}

impl RunId {
    fn next() -> RunId {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let started = crate::sys::process::started_at(pid.into()).unwrap_or(0);
        RunId { pid, started, seq: SEQ.fetch_add(1, Ordering::Relaxed) }
    }
}

/// A slot file, locked.
pub(super) struct Slot {
    file: Flock<File>,
    pub path: PathBuf,
}

impl Slot {
    /// The slot at `path` if its lock is free now (its run, if any, dead).
    pub fn try_lock(path: &Path) -> Result<Option<Slot>> {
        let file = match private_files::open(OpenOptions::new().read(true).write(true), path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::from(e).context(format!("opening {}", path.display()))),
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(Some(Slot { file, path: path.to_path_buf() })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(Error::from(e).context(format!("locking {}", path.display()))),
        }
    }

    /// The header, if the slot holds a readable one.
    pub fn header(&self) -> Option<Header> {
        read_header(&self.file)
    }

    /// The header of the slot at `path`, read without its lock: whether
    /// another process is rolling it back.
    pub fn peek(path: &Path) -> Option<Header> {
        read_header(&File::open(path).ok()?)
    }

    /// The log lines of `run`, in order: up to the first line that is not
    /// its (a longer log of an earlier run of the slot) or is cut short.
    pub fn entries(&self, run: &RunId) -> Vec<Entry> {
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0).min(MAX_LOG);
        let mut text = vec![0; usize::try_from(len).unwrap_or(0).saturating_sub(BLOCK)];
        let n = self.file.read_at(&mut text, BLOCK as u64).unwrap_or(0);
        let mut entries = Vec::new();
        for line in text[..n].split(|b| *b == b'\n') {
            match serde_json::from_slice::<(RunId, Entry)>(line) {
                Ok((id, entry)) if id == *run => entries.push(entry),
                _ => break,
            }
        }
        entries
    }

    /// Writes `header` in place.
    fn put_header(&self, header: &Header) -> Result<()> {
        let mut block = serde_json::to_vec(header).map_err(|e| Error::new(Kind::Internal, e))?;
        if block.len() >= BLOCK {
            // Names and paths that long (a CNI_NETNS, a label) are refused
            // here, before the first change.
            return Err(Error::new(
                Kind::Usage,
                format!(
                    "the guest's names are too long to keep an intent of this run ({} bytes)",
                    block.len()
                ),
            ));
        }
        block.resize(BLOCK - 1, b' ');
        block.push(b'\n');
        self.file
            .write_all_at(&block, 0)
            .map_err(|e| Error::from(e).context(format!("writing {}", self.path.display())))
    }

    /// Frees the slot for the next run.
    pub fn free(&self, header: &Header) -> Result<()> {
        self.set_state(header, State::Free)
    }

    pub fn set_state(&self, header: &Header, state: State) -> Result<()> {
        self.put_header(&Header { state, ..header.clone() })
    }

    /// Replaces the log with `entries` (a recovery keeps what it could not undo).
    pub fn rewrite(&self, run: &RunId, entries: &[Entry]) -> Result<()> {
        let mut text = Vec::new();
        for entry in entries {
            text.extend(line(run, entry)?);
        }
        let written =
            self.file.set_len(BLOCK as u64).and_then(|()| self.file.write_all_at(&text, BLOCK as u64));
        written.map_err(|e| Error::from(e).context(format!("writing {}", self.path.display())))
    }
}

fn read_header(file: &File) -> Option<Header> {
    let mut block = vec![0; BLOCK];
    let n = file.read_at(&mut block, 0).ok()?;
    let text = std::str::from_utf8(&block[..n]).ok()?;
    serde_json::from_str(text.trim_end_matches(['\0', ' ', '\n'])).ok()
}

fn line(run: &RunId, entry: &Entry) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec(&(run, entry)).map_err(|e| Error::new(Kind::Internal, e))?;
    text.push(b'\n');
    Ok(text)
}

/// The slots' directory of `store`.
pub(super) fn dir(store: &Store) -> PathBuf {
    store.dir().join(DIR)
}

/// Every slot file, in order.
pub(super) fn slots(store: &Store) -> Result<Vec<PathBuf>> {
    let dir = dir(store);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        // No records directory (or a file in its place): no intents.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(Vec::new()),
        Err(e) => return Err(io_failed("reading", &dir, e)),
    };
    let mut numbered: Vec<(usize, PathBuf)> =
        entries.flatten().filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path()))).collect();
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, path)| path).collect())
}

/// An I/O failure on the records directory; a user's, pipework needing root.
fn io_failed(doing: &str, path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::PermissionDenied => crate::error::needs_root(format!("{doing} {}", path.display())),
        _ => Error::from(e).context(format!("{doing} {}", path.display())),
    }
}

/// This boot's id, read once a process (a run's recovery, then its intent).
pub fn boot_id() -> String {
    static BOOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_string()
    })
    .clone()
}

/// A live run's intent, held until the run ends.
pub struct Intent {
    slot: Slot,
    header: Header,
    /// Where the next line goes.
    end: u64,
    /// Whether the log is on disk (see `step`).
    synced: bool,
    commit: Option<Commit>,
}

impl Intent {
    /// Takes a free slot (a dead run's is left to its recovery) and writes
    /// the header: call before the first change.
    pub fn begin(store: &Store, about: About) -> Result<Intent> {
        Intent::write_header(store, about).map_err(|e| e.context("keeping an intent of this run"))
    }

    fn write_header(store: &Store, about: About) -> Result<Intent> {
        let header = Header {
            state: State::Open,
            run: RunId::next(),
            boot: boot_id(),
            what: cut(about.what, 1024),
            began: crate::sys::process::ticks_now(),
            host: NsId::of_path("/proc/thread-self/ns/net")?,
            guest: about.guest,
        };
        let slot = take_slot(store)?;
        slot.put_header(&header)?;
        Ok(Intent { slot, header, end: BLOCK as u64, synced: false, commit: about.commit })
    }

    fn append(&mut self, entry: &Entry) -> Result<()> {
        self.write(line(&self.header.run, entry)?)
    }

    fn write(&mut self, text: Vec<u8>) -> Result<()> {
        self.slot
            .file
            .write_all_at(&text, self.end)
            .map_err(|e| Error::from(e).context(format!("writing {}", self.slot.path.display())))?;
        self.end += text.len() as u64;
        Ok(())
    }

    /// Step `n` is about to be applied. Before the first step whose change
    /// `outlives_boot`, the log is synced (once): the page cache keeps it
    /// for a recovery after a killed process, and a crash of the machine
    /// takes every other change with the kernel's state.
    pub fn step(&mut self, n: usize, command: &str, outlives_boot: bool) -> Result<()> {
        self.append(&Entry::Step { n, command: command.to_string() })?;
        if outlives_boot && !self.synced {
            self.slot
                .file
                .sync_data()
                .map_err(|e| Error::from(e).context(format!("syncing {}", self.slot.path.display())))?;
            self.synced = true;
        }
        Ok(())
    }

    /// A step was applied, leaving `undo` (None: nothing to undo).
    pub fn applied(&mut self, undo: Option<&Undo>) -> Result<()> {
        let Some(undo) = undo else { return self.append(&Entry::Applied) };
        // `Entry::Undo` by reference: the same JSON.
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Kept<'a> {
            Undo(&'a Undo),
        }
        match serde_json::to_vec(&(&self.header.run, Kept::Undo(undo))) {
            Ok(mut text) => {
                text.push(b'\n');
                self.write(text)
            }
            Err(_) => match undo {
                Undo::Release { .. } => self.append(&Entry::Lapses(undo.to_string())),
                _ => self.append(&Entry::Leftover(undo.to_string())),
            },
        }
    }

    /// Anything else to note (`loop ensure`'s changes).
    pub fn note(&mut self, entry: &Entry) -> Result<()> {
        self.append(entry)
    }

    /// The record is about to be written, with the ifindex the run's link got.
    pub fn committing(&mut self, ifindex: Option<u32>) -> Result<()> {
        match self.commit.take() {
            Some(commit) => self.append(&Entry::Commit(Commit { ifindex, ..commit })),
            None => Ok(()),
        }
    }

    /// Which interface the commit is about.
    pub fn committed_interface(&self) -> Option<&str> {
        self.commit.as_ref().map(|c| c.interface.as_str())
    }

    /// The run ended (whole, or rolled back): the slot is free again.
    pub fn end(self) {
        if let Err(e) = self.slot.free(&self.header) {
            tracing::warn!("{e}");
        }
    }
}

fn cut(mut text: String, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// The first slot whose lock is free and that holds no dead run; a new one
/// made if none is.
fn take_slot(store: &Store) -> Result<Slot> {
    let dir = dir(store);
    for made in [store.dir(), dir.as_path()] {
        private_files::make_dir(made).map_err(|e| io_failed("creating", made, e))?;
    }
    for n in 0..MAX_SLOTS {
        let path = dir.join(n.to_string());
        let slot = match Slot::try_lock(&path)? {
            Some(slot) => slot,
            None if path.exists() => continue,
            None => match make_slot(&path)? {
                Some(slot) => slot,
                None => continue,
            },
        };
        // A dead run's, of this boot or an earlier one, is its recovery's.
        match slot.header() {
            Some(h) if h.state.holds_run() => continue,
            _ => return Ok(slot),
        }
    }
    Err(Error::new(Kind::Conflict, format!("all {MAX_SLOTS} intent slots in {} are taken", dir.display())))
}

/// A new slot file, its block allocated and synced with its directory
/// entry (once in the slot's life); None if another run made it first.
fn make_slot(path: &Path) -> Result<Option<Slot>> {
    let made = private_files::open(OpenOptions::new().read(true).write(true).create_new(true), path);
    let file = match made {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Error::from(e).context(format!("creating {}", path.display()))),
    };
    let failed = |e: std::io::Error| Error::from(e).context(format!("creating {}", path.display()));
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(file) => file,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
        Err((_, e)) => return Err(failed(e.into())),
    };
    let mut block = vec![b' '; BLOCK - 1];
    block.push(b'\n');
    file.write_all_at(&block, 0).and_then(|()| file.sync_all()).map_err(failed)?;
    if let Some(parent) = path.parent() {
        File::open(parent).and_then(|d| d.sync_all()).map_err(failed)?;
    }
    Ok(Some(Slot { file, path: path.to_path_buf() }))
}

#[cfg(test)]
mod tests;
