//! /dev/loop-control: the kernel's loop devices, found free, added and
//! removed by index.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;

use crate::error::{failed, Error, Kind, Result};

const LOOP_CONTROL: &str = "/dev/loop-control";
/// Present when the loop driver is loaded or built in.
const LOOP_MODULE: &str = "/sys/module/loop";

// <linux/loop.h>: "bad" ioctls, plain numbers rather than _IO() codes.
nix::ioctl_write_int_bad!(loop_ctl_add, 0x4C80);
nix::ioctl_write_int_bad!(loop_ctl_remove, 0x4C81);
nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);

/// /dev/loop-control, through which the kernel hands out loop devices.
pub struct LoopControl(File);

impl LoopControl {
    pub fn open() -> Result<LoopControl> {
        let path = Path::new(LOOP_CONTROL);
        match File::options().read(true).write(true).open(path) {
            Ok(file) => Ok(LoopControl(file)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV | libc::ENXIO)) => {
                Err(Error::new(
                    Kind::Unsupported,
                    if Path::new(LOOP_MODULE).exists() {
                        format!(
                            "{LOOP_CONTROL} is missing although the loop driver is loaded \
                         (mknod {LOOP_CONTROL} c 10 237)"
                        )
                    } else {
                        "the kernel lacks loop device support (module loop): modprobe loop".to_string()
                    },
                ))
            }
            Err(e) => Err(failed("opening", path, e)),
        }
    }

    /// The first unbound device, as `losetup -f` finds it; the kernel adds
    /// one when all are bound.
    pub fn get_free(&self) -> Result<u32> {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument; the fd is open.
        let i = unsafe { loop_ctl_get_free(self.0.as_raw_fd()) }
            .map_err(|e| failed("finding a free loop device through", Path::new(LOOP_CONTROL), e.into()))?;
        Ok(i as u32) // never negative: nix turns -1 into an error
    }

    /// Removes loop device `i` from the kernel; the kernel refuses (EBUSY)
    /// while it is bound.
    pub fn remove(&self, i: u32) -> Result<()> {
        self.remove_unbound(i).and_then(|removed| match removed {
            true => Ok(()),
            false => Err(failed(
                &format!("removing loop{i} through"),
                Path::new(LOOP_CONTROL),
                Errno::EBUSY.into(),
            )),
        })
    }

    /// Removes loop device `i` unless it is bound (or open): false then,
    /// the kernel having refused (EBUSY). A device already gone is removed.
    pub fn remove_unbound(&self, i: u32) -> Result<bool> {
        let arg =
            i32::try_from(i).map_err(|_| Error::new(Kind::Usage, format!("loop{i}: index too large")))?;
        // SAFETY: LOOP_CTL_REMOVE takes the index by value, no pointer.
        match unsafe { loop_ctl_remove(self.0.as_raw_fd(), arg) } {
            Ok(_) | Err(Errno::ENODEV) => Ok(true),
            Err(Errno::EBUSY) => Ok(false),
            Err(e) => Err(failed(&format!("removing loop{i} through"), Path::new(LOOP_CONTROL), e.into())),
        }
    }

    /// Adds loop device `i` to the kernel; false if it had it already.
    pub fn add(&self, i: u32) -> Result<bool> {
        let arg =
            i32::try_from(i).map_err(|_| Error::new(Kind::Usage, format!("loop{i}: index too large")))?;
        // SAFETY: LOOP_CTL_ADD takes the index by value, no pointer.
        match unsafe { loop_ctl_add(self.0.as_raw_fd(), arg) } {
            Ok(_) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(failed(&format!("adding loop{i} through"), Path::new(LOOP_CONTROL), e.into())),
        }
    }
}
