//! `pipework loop free|ensure`: loop devices and their nodes (`loopdev`).
//! The changes are made or undone whole: an interrupt waits the few
//! milliseconds (held on this thread, and on the one that enters the
//! container, which inherits the mask), though not the printing. `ensure`
//! first rolls back the runs killed half-way (`intents`), and keeps an
//! intent of its own.

use std::os::fd::AsFd;
use std::path::Path;

use crate::apply::signals::HeldSignals;
use crate::error::Result;
use crate::intents::{self, Scope};
use crate::loopdev::{disk_gid, ensure, free, Log, MountNs};
use crate::records::Store;
use crate::request::LoopRequest;
use crate::sys::loop_control::LoopControl;
use crate::sys::netlink::Netlink;
use crate::sys::{netns, output};

pub async fn run(req: &LoopRequest) -> Result<()> {
    let lines = match req {
        LoopRequest::Free { dev } => {
            let _held = HeldSignals::hold();
            vec![free(dev)?.display().to_string()]
        }
        LoopRequest::Ensure { count, dev, container: None } => {
            let store = recovered().await?;
            let ctl = LoopControl::open()?;
            let _held = HeldSignals::hold();
            ensure(dev, *count, &ctl, disk_gid(), Log::begin(&store, None)?)?
        }
        LoopRequest::Ensure { count, container: Some(label), .. } => {
            let store = recovered().await?;
            let mnt = MountNs::of(label).await?;
            // Both before entering: the container has neither the host's
            // /dev/loop-control nor (safely) its group database; nor the
            // records, where the intent is.
            let (ctl, gid) = (LoopControl::open()?, disk_gid());
            let _held = HeldSignals::hold();
            let log = Log::begin(&store, Some(mnt.id))?;
            netns::within_mounts(mnt.file.as_fd(), || ensure(Path::new("/dev"), *count, &ctl, gid, log))
                .map_err(|e| e.context(format!("in {}", mnt.path.display())))?
        }
    };
    output::lines(lines)
}

/// The records' store, the runs on the host killed half-way (a `loop
/// ensure`'s, a `mkbridge`'s) rolled back first.
async fn recovered() -> Result<Store> {
    let store = Store::from_env();
    intents::report(&intents::recover(&store, &Netlink::here()?, Scope::Host).await?);
    Ok(store)
}
