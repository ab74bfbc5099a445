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

use crate::error::{Error, Result};

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
        let netns =
            File::open(&path).map_err(|_| Error::new(format!("process {pid} of {label} not found")))?;
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

/// Refuses a file that is not a network namespace (NS_GET_NSTYPE).
fn check_is_netns(file: &File, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    // _IO(0xb7, 0x3)
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: a plain ioctl on an fd we own; it takes no argument.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(Error::new(format!("{} is not a network namespace", path.display())));
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
        Some(pid) => Guest::from_pid(label, pid),
        None => docker_pid(label).await.and_then(|pid| Guest::from_pid(label, pid)),
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
                    None => Err(Error::plain(format!("Could not find a process inside container {label}."))),
                }
            }
            _ => return Err(Error::plain(format!("Found more than one container matching {label}."))),
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

/// The Engine API socket: `DOCKER_HOST=unix://…`, else Docker's, else Podman's.
fn docker_socket() -> Result<Option<PathBuf>> {
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        if !host.is_empty() {
            let path = host.strip_prefix("unix://").ok_or_else(|| {
                Error::new(format!("DOCKER_HOST={host} is not supported: only unix:// sockets are"))
            })?;
            return Ok(Some(PathBuf::from(path)));
        }
    }
    let mut candidates =
        vec![PathBuf::from("/var/run/docker.sock"), PathBuf::from("/run/podman/podman.sock")];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        candidates.push(Path::new(&dir).join("podman/podman.sock"));
    }
    Ok(candidates.into_iter().find(|p| p.exists()))
}

/// `docker inspect`'s `.State.Pid`, retried while it is 0 (the container is
/// not running yet) three times a second apart, as the original did.
async fn docker_pid(label: &str) -> Result<u64> {
    let Some(socket) = docker_socket()? else {
        return Err(Error::plain(format!("Container {label} not found, and Docker not installed.")));
    };
    let docker = Docker::connect_with_unix(&socket.to_string_lossy(), 10, &DOCKER_API)
        .map_err(|e| Error::new(format!("cannot use the Docker socket {}: {e}", socket.display())))?;
    for attempt in 1..=3 {
        let pid = inspect_pid(&docker, label, &socket).await?;
        if pid != 0 {
            return Ok(pid);
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
            let pid = info.state.and_then(|s| s.pid).unwrap_or(0);
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
