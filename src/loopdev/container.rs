//! A container's mount namespace, for `loop ensure --container`: its /dev
//! is reached from a thread that joined it.

use std::fs::File;
use std::path::PathBuf;

use crate::error::{failed, Error, Kind, Result};
use crate::request::GuestRef;

pub struct MountNs {
    pub file: File,
    /// For messages.
    pub path: PathBuf,
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
        let path = PathBuf::from(format!("/proc/{}/ns/mnt", process.pid()));
        let file = process.namespace("mnt").map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => {
                Error::new(Kind::NotFound, format!("{label} stopped while pipework looked it up"))
            }
            _ => failed("opening", &path, e),
        })?;
        Ok(MountNs { file, path })
    }
}
