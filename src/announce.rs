//! Announcing a new IPv4 address, as the original's `arping -c 1 -A` did,
//! without its one-second wait and without a packet socket (whose close
//! waits for an RCU grace period, milliseconds): with `arp_notify` set, the
//! kernel sends a gratuitous ARP for the interface's addresses itself when
//! the interface's address is set (NETDEV_CHANGEADDR). The setting is put
//! back right after.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::BorrowedFd;

use crate::error::Result;

/// `net.ipv4.conf.<dev>.arp_notify` of one guest interface, held open.
pub struct ArpNotify {
    file: File,
    previous: String,
}

impl ArpNotify {
    /// Sets `arp_notify` to 1. The file is opened on a thread inside the
    /// guest, and so stays the guest's setting whoever writes it later.
    pub fn enable(ns: BorrowedFd<'_>, dev: &str) -> Result<ArpNotify> {
        let path = format!("/proc/sys/net/ipv4/conf/{dev}/arp_notify");
        let (mut file, previous) = crate::netns::within(ns, move || {
            let mut file = File::options().read(true).write(true).open(path)?;
            let mut previous = String::new();
            file.read_to_string(&mut previous)?;
            Ok((file, previous.trim().to_string()))
        })?;
        file.rewind()?;
        file.write_all(b"1")?;
        Ok(ArpNotify { file, previous })
    }

    /// Puts the setting back as it was.
    pub fn restore(mut self) -> Result<()> {
        self.file.rewind()?;
        self.file.write_all(self.previous.as_bytes())?;
        Ok(())
    }
}
