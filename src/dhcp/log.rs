//! The agent's log: its stderr, a file beside its state that `agent::spawn`
//! opens. Kept under `CAP`: past it the file becomes `<log>.1` (one
//! generation, the one before replaced) and a new file takes over fd 2, so
//! that nothing a server does grows it without limit.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tracing_subscriber::fmt::MakeWriter;

use super::lease_file::beside;

/// The most a log file holds before it is moved aside.
pub const CAP: u64 = 1 << 20;

/// The log of the agent whose state is at `state`.
pub fn path(state: &Path) -> PathBuf {
    beside(state, "log")
}

/// Every file of that log: the current one and the one before.
pub fn files(state: &Path) -> [PathBuf; 2] {
    let log = path(state);
    let before = beside(&log, "1");
    [log, before]
}

/// The log file open on `fd`, for tracing.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    fd: RawFd,
    cap: u64,
}

impl Log {
    /// The agent's own: the log of `state` on stderr.
    pub fn of_agent(state: &Path) -> Log {
        Log { path: path(state), fd: libc::STDERR_FILENO, cap: CAP }
    }

    /// The fd as a file, not closed when dropped.
    fn file(&self) -> ManuallyDrop<File> {
        // SAFETY: the fd stays open for the process's life (stderr); the
        // file is never dropped, so never closes it.
        ManuallyDrop::new(unsafe { File::from_raw_fd(self.fd) })
    }

    /// Past the cap, and if the fd is still the log file (not a terminal
    /// the agent was run on by hand): moves it to `.1` and puts a new file
    /// on the fd; emptied in place if it cannot be moved.
    fn keep_under_cap(&self) -> io::Result<()> {
        let file = self.file();
        let open = file.metadata()?;
        if open.len() < self.cap {
            return Ok(());
        }
        let named = std::fs::metadata(&self.path)?;
        if (named.dev(), named.ino()) != (open.dev(), open.ino()) {
            return Ok(());
        }
        let [log, before] = [self.path.clone(), beside(&self.path, "1")];
        if std::fs::rename(&log, &before).is_err() {
            return file.set_len(0);
        }
        let new = File::options().create(true).append(true).mode(0o600).open(&log)?;
        // SAFETY: both fds are open; dup2 closes the old file's fd atomically.
        if unsafe { libc::dup2(new.as_raw_fd(), self.fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Log {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}

/// One event's writes; the cap is checked once it is written.
pub struct Line<'a>(&'a Log);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0.file()).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        let _ = self.0.keep_under_cap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(log: &Log, bytes: usize) {
        log.make_writer().write_all(&vec![b'x'; bytes]).unwrap();
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// A directory of the test's own, and the log files of a state in it.
    fn files_in(test: &str) -> (PathBuf, [PathBuf; 2]) {
        let dir = std::env::temp_dir().join(format!("pipework-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = files(&dir.join("4026-eth1"));
        (dir, files)
    }

    #[test]
    fn a_full_log_moves_aside_and_a_new_one_goes_on() {
        let (dir, [log_path, before]) = files_in("log");
        let open = File::options().create(true).append(true).open(&log_path).unwrap();
        let log = Log { path: log_path.clone(), fd: open.as_raw_fd(), cap: 100 };
        write(&log, 60);
        assert_eq!((len(&log_path), len(&before)), (60, 0));
        write(&log, 60);
        assert_eq!((len(&log_path), len(&before)), (0, 120));
        write(&log, 10);
        assert_eq!((len(&log_path), len(&before)), (10, 120), "the new file is on the fd");
        write(&log, 100);
        assert_eq!((len(&log_path), len(&before)), (0, 110), "one generation kept");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_log_not_on_the_fd_is_left_alone() {
        let (dir, [log_path, before]) = files_in("log-other");
        std::fs::write(&log_path, "").unwrap();
        let elsewhere = File::create(dir.join("terminal")).unwrap();
        let log = Log { path: log_path.clone(), fd: elsewhere.as_raw_fd(), cap: 10 };
        write(&log, 20);
        assert_eq!((len(&log_path), len(&before), len(&dir.join("terminal"))), (0, 0, 20));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
