//! A container's mount namespace, for `loop ensure --container`: its /dev
//! is reached from a thread that joined it.

use std::fs::File;
use std::path::PathBuf;

use super::recover::Mounts;
use crate::error::{failed, Error, Kind, Result};
use crate::records::NsId;
use crate::request::GuestRef;
use crate::sys::process::started_at;

pub struct MountNs {
    pub file: File,
    /// For messages.
    pub path: PathBuf,
    /// How a later process finds it again (the run's intent).
    pub id: Mounts,
}

impl MountNs {
    /// The mount namespace of `label`'s process: the process whose network
    /// namespace identified the guest, held by its pidfd since.
    pub async fn of(label: &GuestRef) -> Result<MountNs> {
        let guest = crate::resolve::guest::resolve(label).await?;
        let Some(process) = guest.process() else {
            return Err(Error::new(
                Kind::Usage,
                format!(
                    "{label} is a bare network namespace with no /dev of its own: \
             --container needs a container or pid:<PID>"
                ),
            ));
        };
        let pid = process.pid();
        let path = PathBuf::from(format!("/proc/{pid}/ns/mnt"));
        let stopped = || Error::new(Kind::NotFound, format!("{label} stopped while pipework looked it up"));
        // Read before the namespace, which checks the process is alive after.
        let started = started_at(pid).ok_or_else(stopped)?;
        let file = process.namespace("mnt").map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => stopped(),
            _ => failed("opening", &path, e),
        })?;
        let ns = NsId::of_file(&file).map_err(|e| failed("reading", &path, e))?;
        Ok(MountNs { file, path, id: Mounts { pid, started, ns } })
    }
}
