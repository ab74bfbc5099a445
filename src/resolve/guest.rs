//! Finding the guest: the network namespace a request targets.
//!
//! Explicit forms first (`pid:`, `netns:`, a path), then, as the original
//! did, a cgroup named after the guest (LXC; cgroup v1 and v2), then the
//! Docker Engine API (or Podman's Docker-compatible socket).

use super::docker;
use crate::error::{is_permission, needs_root, Error, Kind, Result};
use crate::records::{Finder, NsId};
use crate::request::GuestRef;
use crate::sys::process::Process;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
    /// A process of the guest, when there is one (not for netns files),
    /// held by its pidfd: its other namespaces (mount, for `loop
    /// --container`) are taken from this same process.
    process: Option<Process>,
    /// How a person would enter it, for dry-run output.
    pub enter: String,
    /// How `ip link ... netns <X>` names it, for dry-run output.
    pub netns_arg: String,
    /// How to find it again, for its record: a container by its runtime,
    /// `id` and `name` (see `Finder::Container`), else the form it was named by.
    pub find: Finder,
    /// Held open for the whole run, so the namespace cannot vanish or be
    /// swapped under us even if the process exits.
    netns: File,
    /// The engine of a container, for its record.
    pub engine: docker::EngineId,
}

impl Guest {
    pub fn netns(&self) -> BorrowedFd<'_> {
        self.netns.as_fd()
    }

    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// Its network namespace's identity (nsfs inode and device).
    pub fn netns_id(&self) -> Result<NsId> {
        Ok(NsId::of_file(&self.netns)?)
    }

    /// Refuses a guest whose network namespace is the one this thread is in
    /// (a `--net=host` container, `pid:1`): pipework would change the host's
    /// own network, with `then` saying what it would have done.
    pub fn refuse_here(&self, then: &str) -> Result<()> {
        let here = std::fs::metadata(crate::sys::netns::CURRENT)?;
        let there = self.netns.metadata()?;
        if here.ino() == there.ino() && here.dev() == there.dev() {
            return Err(Error::new(
                Kind::Usage,
                format!("{} shares this network namespace (a --net=host container?): {then}", self.label),
            ));
        }
        Ok(())
    }

    /// The process `pid` and its network namespace. Where the PID came from
    /// a lookup, the caller then checks that the process is still the one
    /// found ([`Guest::confirm`]).
    pub(super) fn from_pid(label: &str, pid: u64, find: Finder) -> Result<Guest> {
        let gone = || Error::new(Kind::NotFound, format!("process {pid} of {label} not found"));
        let process = Process::open(pid).map_err(|_| gone())?;
        let netns = process.namespace("net").map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => gone(),
            Some(errno) if is_permission(errno) => needs_root(format!("opening /proc/{pid}/ns/net")),
            _ => Error::from(e).context(format!("opening /proc/{pid}/ns/net")),
        })?;
        Ok(Guest {
            label: label.to_string(),
            name_number: pid,
            process: Some(process),
            enter: format!("nsenter --net=/proc/{pid}/ns/net"),
            netns_arg: pid.to_string(),
            find,
            netns,
            engine: Default::default(),
        })
    }

    /// Whether the process found is still alive, after its source said again
    /// that it is the guest: alive, it has kept its PID all along, so what was
    /// opened is the guest's.
    pub(super) fn confirm(self, still_listed: bool) -> Result<Guest> {
        match &self.process {
            Some(p) if !still_listed || !p.is_alive() => Err(Error::new(
                Kind::NotFound,
                format!("{} stopped while pipework looked it up (its process was {})", self.label, p.pid()),
            )),
            _ => Ok(self),
        }
    }

    fn from_file(label: &str, path: &Path, enter: String, netns_arg: String, find: Finder) -> Result<Guest> {
        let netns = open_netns_file(path)?;
        let name_number = netns.metadata()?.ino().saturating_sub(PROC_DYNAMIC_FIRST);
        let engine = Default::default();
        Ok(Guest {
            label: label.to_string(),
            name_number,
            process: None,
            enter,
            netns_arg,
            find,
            netns,
            engine,
        })
    }
}

#[cfg(test)]
impl Guest {
    /// `netns:<name>` for planning tests, numbered `number` in interface
    /// names; the namespace held is this process's own, which any user may
    /// open (planning only reads the guest through `drivers::Facts`).
    pub fn for_tests(name: &str, number: u64) -> Guest {
        Guest {
            label: name.to_string(),
            name_number: number,
            process: None,
            enter: format!("ip netns exec {name}"),
            netns_arg: name.to_string(),
            find: Finder::Netns { name: name.to_string() },
            netns: File::open("/proc/self/ns/net").expect("this process's network namespace"),
            engine: Default::default(),
        }
    }
}

/// Opens a namespace file named by the operator. Its type is checked before
/// it is opened for real: an O_PATH open runs no driver code (a FIFO would
/// block, a device node would see our open and ioctl), and only a file of
/// nsfs is then reopened through /proc/self/fd. Links are followed: a
/// `/var/run/netns/NAME` may be a link to `/proc/PID/ns/net`, and wherever
/// one leads is checked the same way.
fn open_netns_file(path: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let not_netns = || Error::new(Kind::Usage, format!("{} is not a network namespace", path.display()));
    let failed = |e: std::io::Error| match e.raw_os_error() {
        Some(errno) if is_permission(errno) => needs_root(format!("opening {}", path.display())),
        _ => Error::from(e).context(format!("opening {}", path.display())),
    };
    let handle = File::options().read(true).custom_flags(libc::O_PATH).open(path).map_err(failed)?;
    let fs = nix::sys::statfs::fstatfs(&handle)
        .map_err(|e| Error::from(e).context(format!("opening {}", path.display())))?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(not_netns());
    }
    let netns = File::open(format!("/proc/self/fd/{}", handle.as_raw_fd())).map_err(failed)?;
    check_is_netns(&netns).map_err(|()| not_netns())?;
    Ok(netns)
}

// NS_GET_NSTYPE, _IO(0xb7, 0x3) in <linux/nsfs.h>: the kind of namespace.
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

/// Refuses a namespace file of another kind.
fn check_is_netns(file: &File) -> Result<(), ()> {
    use std::os::fd::AsRawFd;
    // SAFETY: an ioctl that takes no argument, on an fd we own.
    let kind = unsafe { ns_get_nstype(file.as_raw_fd()) };
    if kind != Ok(libc::CLONE_NEWNET) {
        return Err(());
    }
    Ok(())
}

pub async fn resolve(guest: &GuestRef) -> Result<Guest> {
    let label = &guest.to_string();
    match guest {
        GuestRef::Pid(pid) => Guest::from_pid(label, *pid, Finder::Pid { pid: *pid }),
        GuestRef::Netns(name) => {
            let path = Path::new("/var/run/netns").join(name);
            if !path.exists() {
                return Err(Error::new(
                    Kind::NotFound,
                    format!("network namespace {name} not found in /var/run/netns"),
                ));
            }
            let find = Finder::Netns { name: name.clone() };
            Guest::from_file(label, &path, format!("ip netns exec {name}"), name.to_string(), find)
        }
        GuestRef::Path(path) => {
            let find = Finder::Path { path: label.clone() };
            Guest::from_file(label, path, format!("nsenter --net={label}"), label.clone(), find)
        }
        GuestRef::Name(name) => match lxc_guest(label, name)? {
            Some(guest) => Ok(guest),
            None => docker::guest(label).await,
        },
    }
}

fn lxc_guest(label: &str, name: &str) -> Result<Option<Guest>> {
    let Some((pid, group, procs)) = cgroup_pid(name)? else { return Ok(None) };
    let guest = Guest::from_pid(label, pid, Finder::Lxc { name: name.to_string() })?;
    let listed = pids_in(&group, procs).contains(&pid);
    guest.confirm(listed).map(Some)
}

/// The guest of a record, found again now without waiting: `None` when it
/// is not there (not running, removed, its process gone).
pub async fn find(label: &str, find: &Finder) -> Result<Option<Guest>> {
    let by_path = |path: &str, enter: String, arg: String| match Path::new(path).exists() {
        true => Guest::from_file(label, Path::new(path), enter, arg, find.clone()).map(Some),
        false => Ok(None),
    };
    match find {
        Finder::Pid { pid } => match Path::new(&format!("/proc/{pid}/ns/net")).exists() {
            true => Guest::from_pid(label, *pid, find.clone()).map(Some),
            false => Ok(None),
        },
        Finder::Netns { name } => {
            by_path(&format!("/var/run/netns/{name}"), format!("ip netns exec {name}"), name.clone())
        }
        Finder::Path { path } => by_path(path, format!("nsenter --net={path}"), path.clone()),
        Finder::Lxc { name } => lxc_guest(label, name),
        Finder::Container { runtime, id, .. } => docker::running(label, runtime, id).await,
        Finder::Cni { netns, .. } => by_path(netns, format!("nsenter --net={netns}"), netns.clone()),
    }
}

/// The original's LXC lookup, a cgroup named after the guest, but only where
/// LXC puts a container (the original took a directory of that name anywhere,
/// so `docker` or `sshd.service` named some other process). Also in the
/// cgroup2 hierarchy, which the original never searched.
fn cgroup_pid(label: &str) -> Result<Option<(u64, PathBuf, &'static str)>> {
    if label.is_empty() || label.contains('/') || label.starts_with('.') {
        return Ok(None);
    }
    for (root, procs) in cgroup_roots() {
        let mut found = lxc_groups(&root, label, procs);
        match found.len() {
            0 => continue,
            1 => {
                let group = found.swap_remove(0);
                let pids = pids_in(&group, procs);
                let Some(&pid) = pids.first() else {
                    return Err(Error::verbatim(
                        Kind::NotFound,
                        format!("Could not find a process inside container {label}."),
                    ));
                };
                one_netns(&group, &pids)?;
                return Ok(Some((pid, group, procs)));
            }
            _ => {
                return Err(Error::verbatim(
                    Kind::Usage,
                    format!("Found more than one container matching {label}."),
                ))
            }
        }
    }
    Ok(None)
}

/// The groups of a hierarchy where LXC keeps container `name`'s processes:
/// `lxc.payload.NAME` (LXC 4 on), `lxc.payload/NAME` (LXC 3.1 to 3.2),
/// `lxc/NAME` (LXC 1 to 3.0) and, in a cgroup v1 hierarchy, the top-level
/// `NAME` of older LXC that the original found, if it holds processes itself
/// and is not named like a systemd unit (systemd's own groups sit there too).
fn lxc_groups(root: &Path, name: &str, procs: &str) -> Vec<PathBuf> {
    const SYSTEMD_UNITS: &[&str] = &[".service", ".scope", ".slice", ".socket", ".mount", ".swap"];
    let mut at = vec![
        root.join(format!("lxc.payload.{name}")),
        root.join("lxc.payload").join(name),
        root.join("lxc").join(name),
    ];
    let top = root.join(name);
    let v1 = procs == "tasks";
    if v1 && !SYSTEMD_UNITS.iter().any(|u| name.ends_with(u)) && has_own_processes(&top, procs) {
        at.push(top);
    }
    at.retain(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()));
    at
}

fn has_own_processes(group: &Path, procs: &str) -> bool {
    std::fs::read_to_string(group.join(procs)).is_ok_and(|listed| !listed.trim().is_empty())
}

/// A container's processes share one network namespace: a group whose
/// processes are in several holds more than one container (an LXC container
/// running others), and any of them could be the wrong one.
fn one_netns(group: &Path, pids: &[u64]) -> Result<()> {
    let mut seen = None;
    for pid in pids {
        let path = format!("/proc/{pid}/ns/net");
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.raw_os_error().is_some_and(is_permission) => {
                return Err(needs_root(format!("reading {path}")))
            }
            // It exited meanwhile.
            Err(_) => continue,
        };
        let ns = (meta.dev(), meta.ino());
        if seen.is_some_and(|first| first != ns) {
            return Err(Error::new(
                Kind::Conflict,
                format!(
                "the processes of {} are in more than one network namespace (containers inside a container?): \
                 name one with pid:<PID>",
                group.display()
            ),
            ));
        }
        seen = Some(ns);
    }
    Ok(())
}

/// The v1 `devices` hierarchy (as the original) and then the v2 one, each
/// with the file that lists its processes: where systemd mounts them if they
/// are there, else from the mount table. Reading that table costs a Docker
/// host about 0.7 ms of CPU (the kernel renders every overlay mount's
/// options), a quarter of what a dry run by container name costs.
fn cgroup_roots() -> Vec<(PathBuf, &'static str)> {
    standard_cgroup_roots()
        .unwrap_or_else(|| cgroup_roots_in(&std::fs::read_to_string("/proc/self/mounts").unwrap_or_default()))
}

/// systemd's layouts: unified (cgroup2 on /sys/fs/cgroup, no v1 hierarchy)
/// and hybrid (a tmpfs there, `devices` and the cgroup2 `unified` in it).
/// Each hierarchy is one tree wherever it is mounted. `None` for anything
/// else (a legacy layout, a container's own mounts), which the mount table
/// decides.
fn standard_cgroup_roots() -> Option<Vec<(PathBuf, &'static str)>> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};
    const BASE: &str = "/sys/fs/cgroup";
    let fs_of = |path: &Path| statfs(path).ok().map(|fs| fs.filesystem_type());
    let base = Path::new(BASE);
    match fs_of(base)? {
        CGROUP2_SUPER_MAGIC => Some(vec![(base.to_path_buf(), "cgroup.procs")]),
        TMPFS_MAGIC => {
            let (devices, unified) = (base.join("devices"), base.join("unified"));
            let v1 = fs_of(&devices) == Some(CGROUP_SUPER_MAGIC) && devices.join("devices.list").exists();
            let v2 = fs_of(&unified) == Some(CGROUP2_SUPER_MAGIC);
            (v1 && v2).then(|| vec![(devices, "tasks"), (unified, "cgroup.procs")])
        }
        _ => None,
    }
}

/// The same from the mount table: its last v1 `devices` mount, its first
/// cgroup2 mount.
fn cgroup_roots_in(mounts: &str) -> Vec<(PathBuf, &'static str)> {
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

/// The processes of a cgroup, then (on cgroup2 a container's processes sit
/// in child groups) those of its descendants, in name order.
fn pids_in(dir: &Path, procs: &str) -> Vec<u64> {
    let listed = std::fs::read_to_string(dir.join(procs)).unwrap_or_default();
    let mut pids: Vec<u64> = listed.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    children.sort();
    for child in children {
        pids.extend(pids_in(&child, procs));
    }
    pids
}
