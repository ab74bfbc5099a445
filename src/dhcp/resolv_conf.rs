//! `--resolv-conf`: the lease's DNS servers and domain written into the
//! guest's own /etc/resolv.conf (through `sys::guest_root`, never out of
//! the guest's tree), in place: Docker's is a bind mount, which a rename
//! would not reach. Its content before the first write is kept beside the
//! lease file (`<netns inode>-<ifname>.resolv.saved`, 0600) for detach to
//! put back. The lease is the server's word: only IPv4 servers and a
//! domain of host-name labels are copied, nothing else.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::lease_file::{beside, LeaseFile};
use super::wire::Lease;
use crate::error::{failed, Error, Kind, Result};
use crate::records::private_files;
use crate::sys::guest_root::{host_has, inode, mount_namespace, overwrite, read_bounded, GuestRoot};
use crate::sys::process::Process;

/// The file, in the guest.
pub const PATH: &str = "/etc/resolv.conf";
/// A resolv.conf larger than this is left alone (and not kept).
pub const MAX: u64 = 64 * 1024;
/// The resolver reads no more servers than this (glibc's MAXNS).
const MAX_SERVERS: usize = 3;

/// The guest whose resolv.conf takes the lease's DNS: its process and that
/// process's mount namespace (`dev`, inode), checked again at each write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Guest {
    pub pid: u64,
    pub mntns: (u64, u64),
}

/// The guest of `process`, refused before anything changes when it has no
/// mount namespace of its own or its resolv.conf is not a regular file of
/// at most `MAX` bytes.
pub fn check(process: &Process, label: &str) -> Result<Guest> {
    let root = GuestRoot::open(process, label)?.ok_or_else(|| no_mount_namespace(label))?;
    read(&root)?;
    Ok(Guest { pid: root.pid, mntns: root.mntns })
}

/// The guest of `process` as a detach finds it: none if it is gone or has
/// no mount namespace of its own (its resolv.conf is then not touched).
pub fn guest_of(process: &Process) -> Option<Guest> {
    let mntns = mount_namespace(process).ok().flatten()?;
    Some(Guest { pid: process.pid(), mntns })
}

/// The refusal of a guest whose files are the host's (a `netns:` guest, a
/// process in the host's mount namespace or tree).
pub fn no_mount_namespace(label: &str) -> Error {
    Error::new(
        Kind::Usage,
        format!("--resolv-conf needs a guest with a root directory of its own (a container); {label} has the host's"),
    )
}

/// The guest's resolv.conf, open, and what it holds.
fn read(root: &GuestRoot) -> Result<(std::fs::File, Vec<u8>)> {
    let file = root.open_regular(PATH)?;
    let shown = root.show(PATH);
    // A guest given the host's /etc (a bind mount) must not write it.
    let id = inode(&file).map_err(|e| failed("reading", Path::new(&shown), e))?;
    if host_has(&[PATH, "/proc/1/root/etc/resolv.conf"], id) {
        return Err(Error::new(Kind::Conflict, format!("{shown} is the host's own; leaving it alone")));
    }
    match read_bounded(&file, MAX).map_err(|e| failed("reading", Path::new(&shown), e))? {
        Some(text) => Ok((file, text)),
        None => Err(Error::new(
            Kind::Conflict,
            format!("{shown} is larger than {} KiB; leaving it alone", MAX / 1024),
        )),
    }
}

/// Where the guest's resolv.conf as it was is kept.
pub fn saved_path(netns_inode: u64, ifname: &str) -> PathBuf {
    saved_beside(&LeaseFile::path_for(netns_inode, ifname))
}

/// The same, beside the lease file at `lease_file`.
pub fn saved_beside(lease_file: &Path) -> PathBuf {
    beside(lease_file, "resolv.saved")
}

/// `name` if it is a domain name: labels of letters, digits and inner
/// hyphens (RFC 1035's, a digit first as RFC 1123 allows), 1 to 63 bytes
/// each, 253 in all; a final dot dropped.
pub fn domain(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (!name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)).then(|| name.to_string())
}

/// The servers worth writing: unicast IPv4 addresses, the first three.
fn servers(lease: &Lease) -> Vec<Ipv4Addr> {
    let usable = |ip: &&Ipv4Addr| !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast());
    lease.dns.iter().filter(usable).take(MAX_SERVERS).copied().collect()
}

/// The resolv.conf for `lease` on `ifname`; none when it names no server
/// (the guest's file is then left as it is).
pub fn text(lease: &Lease, ifname: &str) -> Option<String> {
    let servers = servers(lease);
    if servers.is_empty() {
        return None;
    }
    let mut text = format!("# written by pipework from the DHCP lease on {ifname}\n");
    if let Some(domain) = lease.domain.as_deref().and_then(domain) {
        text.push_str(&format!("search {domain}\n"));
    }
    for ip in servers {
        text.push_str(&format!("nameserver {ip}\n"));
    }
    Some(text)
}

/// Whether two leases call for the same resolv.conf.
pub fn same(a: &Lease, b: &Lease) -> bool {
    servers(a) == servers(b) && a.domain == b.domain
}

/// Writes `text` into the guest's resolv.conf, in place, keeping what it
/// held at `saved` first: always when `fresh` (an attach), else only if
/// nothing is kept yet (the agent). Returns whether it kept it.
pub fn write(guest: Guest, text: &str, saved: &Path, fresh: bool) -> Result<bool> {
    let root = GuestRoot::reopen(guest.pid, guest.mntns)?;
    let (file, was) = read(&root)?;
    let keep = fresh || !saved.exists();
    if keep {
        if let Some(dir) = saved.parent() {
            private_files::make_dir(dir).map_err(|e| failed("creating", dir, e))?;
        }
        private_files::write(saved, &was).map_err(|e| failed("writing", saved, e))?;
    }
    if let Err(e) = overwrite(&file, text.as_bytes()) {
        if keep {
            let _ = std::fs::remove_file(saved);
        }
        return Err(failed("writing", Path::new(&root.show(PATH)), e));
    }
    Ok(keep)
}

/// Puts the kept content back into the guest's resolv.conf (when the guest
/// is still there) and forgets it. Nothing kept, nothing to do.
pub fn restore(guest: Option<Guest>, saved: &Path) -> Result<()> {
    let was = match std::fs::read(saved) {
        Ok(was) => was,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed("reading", saved, e)),
    };
    if let Some(guest) = guest {
        let root = GuestRoot::reopen(guest.pid, guest.mntns)?;
        let (file, _) = read(&root)?;
        overwrite(&file, &was).map_err(|e| failed("writing", Path::new(&root.show(PATH)), e))?;
    }
    std::fs::remove_file(saved).map_err(|e| failed("removing", saved, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_host_name_labels() {
        assert_eq!(domain("example.org."), Some("example.org".into()));
        assert_eq!(domain("a-1.b2.EXAMPLE"), Some("a-1.b2.EXAMPLE".into()));
        for bad in ["", ".", "a..b", "-a.b", "a-.b", "a b", "a\nnameserver 1.2.3.4", "a_b", "é.org"] {
            assert_eq!(domain(bad), None, "{bad:?}");
        }
        assert_eq!(domain(&"a".repeat(64)), None);
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(domain(&long), None, "{} bytes", long.len());
    }

    #[test]
    fn the_text_has_the_servers_and_domain_alone() {
        let mut lease = Lease::sample();
        lease.dns = vec![
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 9, 0, 53),
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(10, 9, 0, 54),
            Ipv4Addr::new(10, 9, 0, 55),
            Ipv4Addr::new(10, 9, 0, 56),
        ];
        lease.domain = Some("corp.example".into());
        assert_eq!(
            text(&lease, "eth1").unwrap(),
            "# written by pipework from the DHCP lease on eth1\nsearch corp.example\n\
             nameserver 10.9.0.53\nnameserver 10.9.0.54\nnameserver 10.9.0.55\n"
        );
        lease.domain = Some("x\nnameserver 6.6.6.6".into());
        assert!(!text(&lease, "eth1").unwrap().contains("6.6.6.6"));
        lease.dns = vec![Ipv4Addr::UNSPECIFIED];
        assert_eq!(text(&lease, "eth1"), None);
    }
}
