//! Finding the guest: the network namespace a request targets.
//!
//! Explicit forms first (`pid:`, `netns:`, a path), then, as the original
//! did, a cgroup named after the guest (LXC; cgroup v1 and v2), then the
//! Docker Engine API (or Podman's Docker-compatible socket).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::docker;
use crate::error::{Error, Kind, Result};
use crate::request::GuestRef;

/// Netns inode numbers are handed out from here (PROC_DYNAMIC_FIRST), so the
/// offset is a small number unique among live namespaces.
const PROC_DYNAMIC_FIRST: u64 = 0xF000_0000;

#[derive(Debug)]
pub struct Guest {
    /// What the operator typed.
    pub label: String,
    /// The number in interface names (`veth1pl<N>`): the PID, or for a bare
    /// namespace its inode offset.
    pub name_number: u64,
    /// A process of the guest, when there is one (not for netns files):
    /// its other namespaces (mount, for `loop --container`) are reached by it.
    pub pid: Option<u64>,
    /// How a person would enter it, for dry-run output.
    pub enter: String,
    /// How `ip link ... netns <X>` names it, for dry-run output.
    pub netns_arg: String,
    /// Held open for the whole run, so the namespace cannot vanish or be
    /// swapped under us even if the process exits.
    netns: File,
}

impl Guest {
    pub fn netns(&self) -> BorrowedFd<'_> {
        self.netns.as_fd()
    }

    /// Whether the guest's network namespace is the one this thread is in
    /// (a `--net=host` container, `pid:1`): there is nothing to connect.
    pub fn is_here(&self) -> Result<bool> {
        let here = std::fs::metadata(crate::sys::netns::CURRENT)?;
        let there = self.netns.metadata()?;
        Ok(here.ino() == there.ino() && here.dev() == there.dev())
    }

    fn from_pid(label: &str, pid: u64) -> Result<Guest> {
        let path = format!("/proc/{pid}/ns/net");
        let netns = File::open(&path)
            .map_err(|_| Error::new(Kind::NotFound, format!("process {pid} of {label} not found")))?;
        let enter = format!("nsenter --net={path}");
        Ok(Guest {
            label: label.to_string(),
            name_number: pid,
            pid: Some(pid),
            enter,
            netns_arg: pid.to_string(),
            netns,
        })
    }

    fn from_file(label: &str, path: &Path, enter: String, netns_arg: String) -> Result<Guest> {
        let netns =
            File::open(path).map_err(|e| Error::from(e).context(format!("opening {}", path.display())))?;
        check_is_netns(&netns, path)?;
        let name_number = netns.metadata()?.ino().saturating_sub(PROC_DYNAMIC_FIRST);
        Ok(Guest { label: label.to_string(), name_number, pid: None, enter, netns_arg, netns })
    }
}

// NS_GET_NSTYPE, _IO(0xb7, 0x3) in <linux/nsfs.h>: the kind of namespace.
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

/// Refuses a file that is not a network namespace.
fn check_is_netns(file: &File, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: an ioctl that takes no argument, on an fd we own.
    let kind = unsafe { ns_get_nstype(file.as_raw_fd()) };
    if kind != Ok(libc::CLONE_NEWNET) {
        return Err(Error::new(Kind::Usage, format!("{} is not a network namespace", path.display())));
    }
    Ok(())
}

pub async fn resolve(guest: &GuestRef) -> Result<Guest> {
    let label = &guest.to_string();
    match guest {
        GuestRef::Pid(pid) => Guest::from_pid(label, *pid),
        GuestRef::Netns(name) => {
            let path = Path::new("/var/run/netns").join(name);
            if !path.exists() {
                return Err(Error::new(
                    Kind::NotFound,
                    format!("network namespace {name} not found in /var/run/netns"),
                ));
            }
            Guest::from_file(label, &path, format!("ip netns exec {name}"), name.to_string())
        }
        GuestRef::Path(path) => {
            Guest::from_file(label, path, format!("nsenter --net={label}"), label.clone())
        }
        GuestRef::Name(name) => match cgroup_pid(name)? {
            Some(pid) => Guest::from_pid(label, pid),
            None => docker::pid(name).await.and_then(|pid| Guest::from_pid(label, pid)),
        },
    }
}

/// The original's LXC lookup: a cgroup directory named after the guest. We
/// also look in the cgroup2 hierarchy, which the original never did, and
/// accept LXC 4's `lxc.payload.<name>`.
fn cgroup_pid(label: &str) -> Result<Option<u64>> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let names = [label.to_string(), format!("lxc.payload.{label}")];
    for (root, procs) in cgroup_roots(&mounts) {
        let mut found = Vec::new();
        find_dirs(&root, &names, &mut found);
        match found.len() {
            0 => continue,
            1 => {
                return match first_pid(&found[0], procs) {
                    Some(pid) => Ok(Some(pid)),
                    None => Err(Error::original(
                        Kind::NotFound,
                        format!("Could not find a process inside container {label}."),
                    )),
                }
            }
            _ => {
                return Err(Error::original(
                    Kind::Usage,
                    format!("Found more than one container matching {label}."),
                ))
            }
        }
    }
    Ok(None)
}

/// The v1 `devices` hierarchy (as the original) and then the v2 one, each
/// with the file that lists its processes.
fn cgroup_roots(mounts: &str) -> Vec<(PathBuf, &'static str)> {
    let mut v1 = None;
    let mut v2 = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        match f[2] {
            "cgroup" if f[3].split(',').any(|o| o == "devices") => v1 = Some((PathBuf::from(f[1]), "tasks")),
            "cgroup2" if v2.is_none() => v2 = Some((PathBuf::from(f[1]), "cgroup.procs")),
            _ => {}
        }
    }
    v1.into_iter().chain(v2).collect()
}

fn find_dirs(dir: &Path, names: &[String], found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if names.iter().any(|n| entry.file_name() == n.as_str()) {
            found.push(path.clone());
        }
        find_dirs(&path, names, found);
    }
}

/// The first process of a cgroup or, on cgroup2 where a container's
/// processes sit in child groups, of its first populated descendant.
fn first_pid(dir: &Path, procs: &str) -> Option<u64> {
    let listed = std::fs::read_to_string(dir.join(procs)).unwrap_or_default();
    if let Some(pid) = listed.lines().next().and_then(|l| l.trim().parse().ok()) {
        return Some(pid);
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    children.sort();
    children.iter().find_map(|c| first_pid(c, procs))
}
