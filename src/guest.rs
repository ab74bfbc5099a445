//! Finding the guest: the network namespace a request targets.
//!
//! Explicit forms first (`pid:`, `netns:`, a path), then, as the original
//! did, a cgroup named after the guest (LXC; cgroup v1 and v2), then the
//! Docker Engine API (or Podman's Docker-compatible socket).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{ClientVersion, Docker};

use crate::error::{is_permission, needs_root, Error, Result};
use crate::process::Process;

/// Netns inode numbers are handed out from here (PROC_DYNAMIC_FIRST), so the
/// offset is a small number unique among live namespaces.
const PROC_DYNAMIC_FIRST: u64 = 0xF000_0000;

/// API 1.41 (Docker 20.10) is understood by every engine from 20.10 on and
/// by Podman's compatibility layer, and costs no version round trip.
const DOCKER_API: ClientVersion = ClientVersion { major_version: 1, minor_version: 41 };

#[derive(Debug)]
pub struct Guest {
    /// What the operator typed.
    pub label: String,
    /// The number in interface names (`veth1pl<N>`): the PID, or for a bare
    /// namespace its inode offset.
    pub nspid: u64,
    /// A process of the guest, when there is one (not for netns files),
    /// held by its pidfd: its other namespaces (mount, for `loop
    /// --container`) are taken from this same process.
    process: Option<Process>,
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

    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// Refuses a guest whose network namespace is the one this thread is in
    /// (a `--net=host` container, `pid:1`): pipework would change the host's
    /// own network, with `then` saying what it would have done.
    pub fn refuse_here(&self, then: &str) -> Result<()> {
        let here = std::fs::metadata(crate::netns::CURRENT)?;
        let there = self.netns.metadata()?;
        if here.ino() == there.ino() && here.dev() == there.dev() {
            return Err(Error::new(format!(
                "{} shares this network namespace (a --net=host container?): {then}",
                self.label
            )));
        }
        Ok(())
    }

    /// The process `pid` and its network namespace. Where the PID came from
    /// a lookup, the caller then checks that the process is still the one
    /// found ([`Guest::confirm`]).
    fn from_pid(label: &str, pid: u64) -> Result<Guest> {
        let gone = || Error::new(format!("process {pid} of {label} not found"));
        let process = Process::open(pid).map_err(|_| gone())?;
        let netns = process.namespace("net").map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => gone(),
            Some(errno) if is_permission(errno) => needs_root(format!("opening /proc/{pid}/ns/net")),
            _ => Error::from(e).context(format!("opening /proc/{pid}/ns/net")),
        })?;
        Ok(Guest {
            label: label.to_string(),
            nspid: pid,
            process: Some(process),
            enter: format!("nsenter --net=/proc/{pid}/ns/net"),
            netns_arg: pid.to_string(),
            netns,
        })
    }

    /// Whether the process found is still alive, after its source said again
    /// that it is the guest: alive, it has kept its PID all along, so what was
    /// opened is the guest's.
    fn confirm(self, still_listed: bool) -> Result<Guest> {
        match &self.process {
            Some(p) if !still_listed || !p.is_alive() => Err(Error::new(format!(
                "{} stopped while pipework looked it up (its process was {})",
                self.label,
                p.pid()
            ))),
            _ => Ok(self),
        }
    }

    fn from_file(label: &str, path: &Path, enter: String, netns_arg: String) -> Result<Guest> {
        let netns = open_netns_file(path)?;
        let nspid = netns.metadata()?.ino().saturating_sub(PROC_DYNAMIC_FIRST);
        Ok(Guest { label: label.to_string(), nspid, process: None, enter, netns_arg, netns })
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
    let not_netns = || Error::new(format!("{} is not a network namespace", path.display()));
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

/// Refuses a namespace file of another kind (NS_GET_NSTYPE).
fn check_is_netns(file: &File) -> Result<(), ()> {
    use std::os::fd::AsRawFd;
    // _IO(0xb7, 0x3)
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: a plain ioctl on an fd we own; it takes no argument.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(());
    }
    Ok(())
}

pub async fn resolve(label: &str) -> Result<Guest> {
    if let Some(pid) = label.strip_prefix("pid:") {
        let pid: u64 = pid.parse().map_err(|_| Error::new(format!("invalid PID in '{label}'")))?;
        return Guest::from_pid(label, pid);
    }
    if let Some(name) = label.strip_prefix("netns:") {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::new(format!("invalid namespace name in '{label}'")));
        }
        let path = Path::new("/var/run/netns").join(name);
        if !path.exists() {
            return Err(Error::new(format!("network namespace {name} not found in /var/run/netns")));
        }
        return Guest::from_file(label, &path, format!("ip netns exec {name}"), name.to_string());
    }
    if label.starts_with('/') {
        return Guest::from_file(
            label,
            Path::new(label),
            format!("nsenter --net={label}"),
            label.to_string(),
        );
    }
    match cgroup_pid(label)? {
        Some((pid, group, procs)) => {
            let guest = Guest::from_pid(label, pid)?;
            let listed = pids_in(&group, procs).contains(&pid);
            guest.confirm(listed)
        }
        None => docker_guest(label).await,
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
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for (root, procs) in cgroup_roots(&mounts) {
        let mut found = lxc_groups(&root, label, procs);
        match found.len() {
            0 => continue,
            1 => {
                let group = found.swap_remove(0);
                let pids = pids_in(&group, procs);
                let Some(&pid) = pids.first() else {
                    return Err(Error::plain(format!("Could not find a process inside container {label}.")));
                };
                one_netns(&group, &pids)?;
                return Ok(Some((pid, group, procs)));
            }
            _ => return Err(Error::plain(format!("Found more than one container matching {label}."))),
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
            return Err(Error::new(format!(
                "the processes of {} are in more than one network namespace (containers inside a container?): \
                 name one with pid:<PID>",
                group.display()
            )));
        }
        seen = Some(ns);
    }
    Ok(())
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

/// The Engine API socket: `DOCKER_HOST=unix://…`, else Docker's, else Podman's.
fn docker_socket() -> Result<Option<PathBuf>> {
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        if !host.is_empty() {
            let path = host.strip_prefix("unix://").ok_or_else(|| {
                Error::new(format!("DOCKER_HOST={host} is not supported: only unix:// sockets are"))
            })?;
            let path = PathBuf::from(path);
            // One that is not there fails to connect, by name.
            return if path.exists() { trusted_socket(path).map(Some) } else { Ok(Some(path)) };
        }
    }
    let mut candidates =
        vec![PathBuf::from("/var/run/docker.sock"), PathBuf::from("/run/podman/podman.sock")];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        candidates.push(Path::new(&dir).join("podman/podman.sock"));
    }
    match candidates.into_iter().find(|p| p.exists()) {
        Some(socket) => trusted_socket(socket).map(Some),
        None => Ok(None),
    }
}

/// The Engine API says which process is the guest: only a socket that root
/// owns, in directories only root can change, is believed. Any user can
/// make `$XDG_RUNTIME_DIR/podman/podman.sock` (or a DOCKER_HOST a `su`
/// kept) answer with a process of their choosing.
fn trusted_socket(socket: PathBuf) -> Result<PathBuf> {
    let refuse = |why: String| Error::new(format!("refusing the Docker socket {}: {why}", socket.display()));
    let real = std::fs::canonicalize(&socket).map_err(|e| refuse(e.to_string()))?;
    let meta = std::fs::metadata(&real).map_err(|e| refuse(e.to_string()))?;
    if meta.uid() != 0 {
        return Err(refuse(format!("it belongs to uid {}, not root", meta.uid())));
    }
    crate::exec::root_only_dirs(&socket).and_then(|()| crate::exec::root_only_dirs(&real)).map_err(refuse)?;
    Ok(socket)
}

/// A Docker container: `docker inspect`'s `.State.Pid`, retried while it is
/// 0 (the container is not running yet) three times a second apart, as the
/// original did; then, its namespace open, asked again, in case the
/// container stopped and its PID went to another process meanwhile.
async fn docker_guest(label: &str) -> Result<Guest> {
    let Some(socket) = docker_socket()? else {
        return Err(Error::plain(format!("Container {label} not found, and Docker not installed.")));
    };
    // Said here: bollard would bury it in a connection error.
    if nix::unistd::access(&socket, nix::unistd::AccessFlags::W_OK).is_err_and(|e| is_permission(e as i32)) {
        return Err(needs_root(format!("connecting to {}", socket.display())));
    }
    let docker = Docker::connect_with_unix(&socket.to_string_lossy(), 10, &DOCKER_API)
        .map_err(|e| Error::new(format!("cannot use the Docker socket {}: {e}", socket.display())))?;
    for attempt in 1..=3 {
        let pid = inspect_pid(&docker, label, &socket).await?;
        if pid != 0 {
            let guest = Guest::from_pid(label, pid)?;
            let again = inspect_pid(&docker, label, &socket).await?;
            return guest.confirm(again == pid);
        }
        tracing::debug!(attempt, "container {label} has PID 0 (not running)");
        if attempt < 3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Err(Error::plain("Docker inspect returned invalid PID 0"))
}

async fn inspect_pid(docker: &Docker, label: &str, socket: &Path) -> Result<u64> {
    use bollard::errors::Error as E;
    match docker.inspect_container(label, None).await {
        Ok(info) => {
            // Docker keeps the last PID of a container that stopped.
            let pid = match info.state {
                Some(state) if state.running == Some(true) => state.pid.unwrap_or(0),
                _ => 0,
            };
            tracing::debug!(
                id = info.id.as_deref().unwrap_or(""),
                name = info.name.as_deref().unwrap_or(""),
                pid,
                "docker inspect"
            );
            Ok(u64::try_from(pid).unwrap_or(0))
        }
        Err(E::DockerResponseServerError { status_code: 404, .. }) => {
            Err(Error::plain(format!("Error: No such object: {label}")))
        }
        // An ID prefix that several containers share.
        Err(E::DockerResponseServerError { message, .. }) if message.contains("multiple") => {
            Err(Error::plain(format!("Found more than one container matching {label}.")))
        }
        Err(E::DockerResponseServerError { message, .. }) => {
            Err(Error::plain(format!("Error response from daemon: {message}")))
        }
        Err(e) => Err(Error::new(format!("cannot reach Docker at {}: {e}", socket.display()))),
    }
}
