//! `pipework loop free|ensure`: loop devices and their nodes (`loopdev`).
//! The changes are made or undone whole: an interrupt waits the few
//! milliseconds (held on this thread, and on the one that enters the
//! container, which inherits the mask), though not the printing.

use std::os::fd::AsFd;
use std::path::Path;

use crate::apply::signals::HeldSignals;
use crate::error::Result;
use crate::loopdev::{disk_gid, ensure, free, MountNs};
use crate::request::LoopRequest;
use crate::sys::devdir::DevDir;
use crate::sys::loop_control::LoopControl;
use crate::sys::{netns, output};

pub async fn run(req: &LoopRequest) -> Result<()> {
    let lines = match req {
        LoopRequest::Free { dev } => {
            let _held = HeldSignals::hold();
            vec![free(dev)?.display().to_string()]
        }
        LoopRequest::Ensure { count, dev, container: None } => {
            let _held = HeldSignals::hold();
            ensure(&DevDir::open(dev)?, *count, &LoopControl::open()?, disk_gid())?
        }
        LoopRequest::Ensure { count, container: Some(label), .. } => {
            let mnt = MountNs::of(label).await?;
            // Both before entering: the container has neither the host's
            // /dev/loop-control nor (safely) its group database.
            let (ctl, gid) = (LoopControl::open()?, disk_gid());
            let _held = HeldSignals::hold();
            netns::within_mounts(mnt.file.as_fd(), || {
                ensure(&DevDir::open(Path::new("/dev"))?, *count, &ctl, gid)
            })
            .map_err(|e| e.context(format!("in {}", mnt.path.display())))?
        }
    };
    output::lines(lines)
}
