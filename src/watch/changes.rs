//! Records written while the service runs, as inotify reports them: an
//! attach run by hand (`pipework br0 web dhcp`) starts a DHCP agent the
//! service has to watch from then on, and a `detach` ends one it watched.
//! Every record is written by a rename into the directory (see
//! `records::store`), so IN_MOVED_TO sees each write whole, once.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::{Error, Result};

pub struct Changes {
    fd: AsyncFd<OwnedFd>,
}

impl Changes {
    /// Watches `dir`, made if it is not there yet.
    pub fn watch(dir: &Path) -> Result<Changes> {
        let failed = |e: io::Error| Error::from(e).context(format!("watching {}", dir.display()));
        crate::records::private_files::make_dir(dir).map_err(failed)?;
        // SAFETY: inotify_init1 takes flags and returns a new fd or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(failed(io::Error::last_os_error()));
        }
        // SAFETY: the kernel just gave us this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| failed(io::Error::from(io::ErrorKind::InvalidInput)))?;
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MOVED_TO) } < 0 {
            return Err(failed(io::Error::last_os_error()));
        }
        // SAFETY: the fd is owned and moves into the AsyncFd for good.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| failed(e.into_parts().1))?;
        Ok(Changes { fd })
    }

    /// The names of the files written since the last call; waits for one.
    pub async fn next(&self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        loop {
            let Ok(mut ready) = self.fd.readable().await else { return std::future::pending().await };
            let read = ready.try_io(|fd| {
                // SAFETY: read(2) into a buffer of the length we pass.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match read {
                Ok(Ok(n)) => return names(&buf[..n]),
                Ok(Err(e)) => {
                    tracing::warn!("records written from now on are not noticed: {e}");
                    return std::future::pending().await;
                }
                Err(_would_block) => {}
            }
        }
    }
}

/// The names in a buffer of `struct inotify_event`s: a fixed header (wd,
/// mask, cookie, len), then `len` bytes of name padded with NULs.
fn names(mut buf: &[u8]) -> Vec<String> {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    let mut names = Vec::new();
    while buf.len() >= HEADER {
        let len = u32::from_ne_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
        let Some(name) = buf.get(HEADER..HEADER + len) else { break };
        let name = name.split(|b| *b == 0).next().unwrap_or_default();
        names.push(std::ffi::OsString::from_vec(name.to_vec()).to_string_lossy().into_owned());
        buf = &buf[HEADER + len..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events as the kernel lays them out: header, then the name padded
    /// with NULs to a multiple of the header's alignment.
    fn event(name: &str, padded: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&1i32.to_ne_bytes());
        bytes.extend_from_slice(&(libc::IN_MOVED_TO).to_ne_bytes());
        bytes.extend_from_slice(&7u32.to_ne_bytes());
        bytes.extend_from_slice(&(padded as u32).to_ne_bytes());
        let mut name = name.as_bytes().to_vec();
        name.resize(padded, 0);
        bytes.extend(name);
        bytes
    }

    #[test]
    fn names_of_the_events_in_a_read() {
        let mut buf = event("docker-ab12.json", 32);
        buf.extend(event("x", 16));
        buf.extend(event("", 0));
        assert_eq!(names(&buf), ["docker-ab12.json", "x", ""]);
        assert!(names(&buf[..10]).is_empty());
    }
}
