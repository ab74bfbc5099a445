//! A guest's sysctls under /proc/sys/net. Such a file belongs to the network
//! namespace of the thread that opens it, so it is opened on a thread inside
//! the guest and may then be read and written from anywhere.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::BorrowedFd;

use crate::error::{Error, Kind, Result};
use crate::family::Family;

pub struct Sysctl {
    file: File,
    /// As sysctl(8) spells it, for messages.
    name: String,
}

/// `net.ipv4.conf.<dev>.<key>` as sysctl(8) spells it: a dot in the device
/// name is written as a slash (`net.ipv4.conf.eth1/100.arp_notify`).
pub fn conf_name(family: Family, dev: &str, key: &str) -> String {
    format!("net.{}.conf.{}.{key}", dir(family), dev.replace('.', "/"))
}

fn dir(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

impl Sysctl {
    /// `/proc/sys/net/<ipv4|ipv6>/conf/<dev>/<key>`, the path built from its
    /// parts so that the device keeps its dots (`eth1.100`); `dev` may also
    /// be `all` or `default`. `ns` None is the namespace this thread is in.
    pub fn conf(ns: Option<BorrowedFd<'_>>, family: Family, dev: &str, key: &str) -> Result<Sysctl> {
        let name = conf_name(family, dev, key);
        // Interface names never hold a slash nor are `.` or `..`: the
        // device stays one component of the path.
        if dev.is_empty() || dev.contains('/') || dev == "." || dev == ".." {
            return Err(Error::new(
                Kind::Usage,
                format!("no sysctl {name}: '{dev}' is not an interface name"),
            ));
        }
        let path = format!("/proc/sys/net/{}/conf/{dev}/{key}", dir(family));
        let open = move || File::options().read(true).write(true).open(path);
        let file = match ns {
            Some(ns) => crate::sys::netns::within(ns, open),
            None => open().map_err(Error::from),
        };
        let file = file.map_err(|e| e.context(format!("opening {name}")))?;
        Ok(Sysctl { file, name })
    }

    pub fn read(&mut self) -> Result<String> {
        let mut value = String::new();
        self.file.rewind()?;
        self.file
            .read_to_string(&mut value)
            .map_err(|e| Error::from(e).context(format!("reading {}", self.name)))?;
        Ok(value.trim().to_string())
    }

    pub fn write(&mut self, value: &str) -> Result<()> {
        self.file.rewind()?;
        self.file
            .write_all(value.as_bytes())
            .map_err(|e| Error::from(e).context(format!("writing {}", self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_in_a_device_name_are_slashes_to_sysctl_8_only() {
        assert_eq!(conf_name(Family::V4, "eth1.100", "arp_notify"), "net.ipv4.conf.eth1/100.arp_notify");
        assert_eq!(conf_name(Family::V6, "default", "disable_ipv6"), "net.ipv6.conf.default.disable_ipv6");
    }

    #[test]
    fn a_device_that_is_not_one_path_component_is_refused() {
        for dev in ["", ".", "..", "a/b"] {
            let e = Sysctl::conf(None, Family::V4, dev, "arp_notify").err().expect(dev);
            assert!(e.message().contains("is not an interface name"), "{dev}: {}", e.message());
        }
    }
}
