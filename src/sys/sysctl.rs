//! A guest's sysctls under /proc/sys/net. Such a file belongs to the network
//! namespace of the thread that opens it, so it is opened on a thread inside
//! the guest and may then be read and written from anywhere.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::BorrowedFd;

use crate::error::Result;

pub struct Sysctl {
    file: File,
    key: String,
}

impl Sysctl {
    /// `key` as sysctl(8) spells it: `net.ipv4.conf.eth1.arp_notify`; `ns`
    /// None is the namespace this thread is in.
    pub fn open(ns: Option<BorrowedFd<'_>>, key: &str) -> Result<Sysctl> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let open = move || File::options().read(true).write(true).open(path);
        let file = match ns {
            Some(ns) => crate::sys::netns::within(ns, open),
            None => open().map_err(crate::error::Error::from),
        };
        let file = file.map_err(|e| e.context(format!("opening {key}")))?;
        Ok(Sysctl { file, key: key.to_string() })
    }

    pub fn read(&mut self) -> Result<String> {
        let mut value = String::new();
        self.file.rewind()?;
        self.file
            .read_to_string(&mut value)
            .map_err(|e| crate::error::Error::from(e).context(format!("reading {}", self.key)))?;
        Ok(value.trim().to_string())
    }

    pub fn write(&mut self, value: &str) -> Result<()> {
        self.file.rewind()?;
        self.file
            .write_all(value.as_bytes())
            .map_err(|e| crate::error::Error::from(e).context(format!("writing {}", self.key)))
    }
}
