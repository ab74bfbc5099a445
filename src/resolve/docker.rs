//! The Docker Engine API client (Podman's Docker-compatible socket too):
//! which process is a container, as `docker inspect` says, from a socket
//! only root controls.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{ClientVersion, Docker};

use super::guest::Guest;
use crate::error::{is_permission, needs_root, Error, Kind, Result};
use crate::records::Finder;

/// API 1.41 (Docker 20.10) is understood by every engine from 20.10 on and
/// by Podman's compatibility layer, and needs no negotiation round trip.
const DOCKER_API: ClientVersion = ClientVersion { major_version: 1, minor_version: 41 };

/// The Engine API socket: `DOCKER_HOST=unix://…`, else Docker's, else Podman's.
fn docker_socket() -> Result<Option<PathBuf>> {
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        if !host.is_empty() {
            let path = host.strip_prefix("unix://").ok_or_else(|| {
                Error::new(
                    Kind::Unsupported,
                    format!("DOCKER_HOST={host} is not supported: only unix:// sockets are"),
                )
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
    let refuse = |why: String| {
        Error::new(Kind::Conflict, format!("refusing the Docker socket {}: {why}", socket.display()))
    };
    let real = std::fs::canonicalize(&socket).map_err(|e| refuse(e.to_string()))?;
    let meta = std::fs::metadata(&real).map_err(|e| refuse(e.to_string()))?;
    if meta.uid() != 0 {
        return Err(refuse(format!("it belongs to uid {}, not root", meta.uid())));
    }
    crate::sys::exec::root_only_dirs(&socket)
        .and_then(|()| crate::sys::exec::root_only_dirs(&real))
        .map_err(refuse)?;
    Ok(socket)
}

/// A Docker container: `docker inspect`'s `.State.Pid`, retried while it is
/// 0 (the container is not running yet) three times a second apart, as the
/// original did; then, its namespace open, confirmed as the container's (its
/// cgroup, else the engine asked again), in case the container stopped and
/// its PID went to another process meanwhile. The cgroup also says which
/// engine runs it; only when it does not is the engine's `/version` asked
/// (dockerd takes about 8 ms over it, ten times an inspect).
pub async fn guest(label: &str) -> Result<Guest> {
    let (docker, socket) = client(label)?;
    let no_such = || Error::verbatim(Kind::NotFound, format!("Error: No such object: {label}"));
    for attempt in 1..=3 {
        let found = inspect(&docker, label, &socket).await?.ok_or_else(no_such)?;
        if found.pid != 0 {
            let mut guest = Guest::from_pid(label, found.pid, found.find(DOCKER))?;
            let (engine, still) = match engine_by_cgroup(found.pid, &found.id) {
                Some(engine) => (engine, true),
                None => {
                    let (engine, again) =
                        tokio::join!(runtime(&docker, &socket), inspect(&docker, label, &socket));
                    (engine?, again?.ok_or_else(no_such)?.pid == found.pid)
                }
            };
            guest.find = found.find(engine);
            guest.engine = EngineId::of(&docker, &socket);
            return guest.confirm(still);
        }
        tracing::debug!(attempt, "container {label} has PID 0 (not running)");
        if attempt < 3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Err(Error::verbatim(Kind::NotFound, "Docker inspect returned invalid PID 0"))
}

/// A container of a record, by its ID, if it is running now: asked once,
/// no waiting (`None` when it is stopped or gone). `runtime` is the
/// record's.
pub async fn running(label: &str, runtime: &str, id: &str) -> Result<Option<Guest>> {
    let (docker, socket) = client(label)?;
    Ok(running_with(&docker, &socket, runtime, label, id).await?.map(|found| found.guest))
}

/// A running container as the watch service sees it.
pub struct Running {
    pub guest: Guest,
    pub labels: HashMap<String, String>,
    /// `.HostConfig.NetworkMode`: `host` or `container:<ID>` (Podman's
    /// `ns:<PATH>` too) when it does not own its network namespace.
    pub network_mode: String,
}

/// The same through a client already open (the watch service keeps one,
/// and knows its engine's `runtime`), with what else the service needs.
pub async fn running_with(
    docker: &Docker,
    socket: &Path,
    runtime: &str,
    label: &str,
    id: &str,
) -> Result<Option<Running>> {
    match inspect(docker, id, socket).await? {
        None | Some(Inspected { pid: 0, .. }) => Ok(None),
        Some(found) => {
            let pid = found.pid;
            let guest = Guest::from_pid(label, pid, found.find(runtime))?;
            // A process in a cgroup named after the container (Docker's
            // `docker-<id>.scope` or `/docker/<id>`, Podman's `libpod-<id>`)
            // is the container's; else the engine is asked again.
            let still = match in_cgroup_of(pid, id) {
                true => true,
                false => inspect(docker, id, socket).await?.map(|i| i.pid) == Some(pid),
            };
            let (labels, network_mode) = (found.labels, found.network_mode);
            Ok(Some(Running { guest: guest.confirm(still)?, labels, network_mode }))
        }
    }
}

/// The engine behind the socket, as records name it: `podman` when its
/// `/version` lists a "Podman Engine" component (Podman's
/// Docker-compatible socket), else `docker`.
pub async fn runtime(docker: &Docker, socket: &Path) -> Result<&'static str> {
    let version = docker
        .version()
        .await
        .map_err(|e| Error::new(Kind::Io, format!("cannot reach Docker at {}: {e}", socket.display())))?;
    let podman = version.components.unwrap_or_default().iter().any(|c| c.name == PODMAN_COMPONENT);
    Ok(if podman { "podman" } else { DOCKER })
}

/// The engine of a container guest, as its record names it
/// (`GuestRecord::engine`): Docker's `/info` ID. Asked only for an attach
/// that records (`ask`, while its plan is applied: dockerd takes tens of
/// milliseconds over `/info`), and then only once per engine socket
/// (`engine_ids`), or known already (the watch service's).
#[derive(Debug, Default)]
pub struct EngineId {
    client: Option<Docker>,
    socket: Option<PathBuf>,
    known: Option<String>,
    asking: std::sync::Mutex<Option<tokio::task::JoinHandle<Option<String>>>>,
}

impl EngineId {
    pub fn known(id: &str) -> EngineId {
        EngineId { known: Some(id.to_string()), ..Default::default() }
    }

    fn of(docker: &Docker, socket: &Path) -> EngineId {
        EngineId { client: Some(docker.clone()), socket: Some(socket.to_path_buf()), ..Default::default() }
    }

    /// Starts asking the engine, if there is one to ask and its answer is
    /// not kept already.
    pub fn ask(&self) {
        let (Some(docker), None) = (&self.client, &self.known) else { return };
        if self.kept().is_some() {
            return;
        }
        let mut asking = self.asking.lock().unwrap_or_else(|e| e.into_inner());
        if asking.is_none() {
            let docker = docker.clone();
            *asking = Some(tokio::spawn(async move { engine_id(&docker).await }));
        }
    }

    /// The engine's ID; None for a guest that is no container, or an
    /// engine that does not answer.
    pub async fn get(&self) -> Option<String> {
        if self.known.is_some() {
            return self.known.clone();
        }
        if let Some(id) = self.kept() {
            return Some(id);
        }
        self.ask();
        let asking = self.asking.lock().unwrap_or_else(|e| e.into_inner()).take();
        let id = asking?.await.ok().flatten()?;
        if let Some(socket) = &self.socket {
            engine_ids::keep(socket, &id);
        }
        Some(id)
    }

    fn kept(&self) -> Option<String> {
        engine_ids::kept(self.socket.as_deref()?)
    }
}

/// The engines' IDs, kept by socket: `<state dir>/engines/<md5 of the
/// socket's path>` holds the socket's device and inode and the ID `/info`
/// gave through it. A socket made again (a restarted dockerd, or another
/// engine on the same path) has another inode, and is asked again.
mod engine_ids {
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use md5::{Digest, Md5};

    use crate::records::private_files;

    fn file(socket: &Path) -> PathBuf {
        let digest = Md5::digest(socket.as_os_str().as_encoded_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        crate::records::Store::from_env().dir().join("engines").join(name)
    }

    fn inode(socket: &Path) -> Option<(u64, u64)> {
        let meta = std::fs::metadata(socket).ok()?;
        Some((meta.dev(), meta.ino()))
    }

    /// The ID kept for `socket` as it is now.
    pub fn kept(socket: &Path) -> Option<String> {
        let (dev, ino) = inode(socket)?;
        let text = std::fs::read_to_string(file(socket)).ok()?;
        let mut words = text.split_whitespace();
        let same = words.next()? == dev.to_string() && words.next()? == ino.to_string();
        let id = words.next()?;
        (same && words.next().is_none()).then(|| id.to_string())
    }

    /// Keeps `id` for `socket`; a failure only costs the next attach a
    /// question, so it is logged, not raised.
    pub fn keep(socket: &Path, id: &str) {
        // An ID is one word of printable ASCII; anything else is not kept.
        if id.is_empty() || id.len() > 256 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return;
        }
        let Some((dev, ino)) = inode(socket) else { return };
        let path = file(socket);
        let temp = path.with_extension(format!("{}.tmp", std::process::id()));
        let kept = path
            .parent()
            .map_or(Ok(()), private_files::make_dir)
            .and_then(|()| private_files::write(&temp, format!("{dev} {ino} {id}\n").as_bytes()))
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = kept {
            let _ = std::fs::remove_file(&temp);
            tracing::debug!("keeping the engine's ID in {}: {e}", path.display());
        }
    }
}

/// The engine's ID, as its `/info` gives it (none when it gives none).
pub async fn engine_id(docker: &Docker) -> Option<String> {
    docker.info().await.ok()?.id.filter(|id| !id.is_empty())
}

/// The component Podman's `/version` names itself by.
const PODMAN_COMPONENT: &str = "Podman Engine";

/// Records' name for Docker's containers, and for any engine that does not
/// say it is Podman.
const DOCKER: &str = "docker";

/// Whether process `pid` is in a cgroup whose path holds container `id`
/// (the full 64-digit ID; a shorter one is not trusted).
fn in_cgroup_of(pid: u64, id: &str) -> bool {
    engine_by_cgroup(pid, id).is_some()
}

/// The engine whose cgroup, named after container `id`, holds process
/// `pid`: Podman's are `libpod-<id>`, Docker's `docker-<id>.scope` or
/// `/docker/<id>`. None when no cgroup of the process names the container.
fn engine_by_cgroup(pid: u64, id: &str) -> Option<&'static str> {
    if id.len() != 64 {
        return None;
    }
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let line = groups.lines().find(|line| line.contains(id))?;
    Some(if line.contains(&format!("libpod-{id}")) { "podman" } else { DOCKER })
}

/// The Engine API client on the socket found and trusted as for an attach
/// (`label` names the guest in the message when there is no engine).
pub fn client(label: &str) -> Result<(Docker, PathBuf)> {
    let Some(socket) = docker_socket()? else {
        return Err(Error::verbatim(
            Kind::NotFound,
            format!("Container {label} not found, and Docker not installed."),
        ));
    };
    // Said here: bollard would bury it in a connection error.
    if nix::unistd::access(&socket, nix::unistd::AccessFlags::W_OK).is_err_and(|e| is_permission(e as i32)) {
        return Err(needs_root(format!("connecting to {}", socket.display())));
    }
    let docker = Docker::connect_with_unix(&socket.to_string_lossy(), 10, &DOCKER_API).map_err(|e| {
        Error::new(Kind::Io, format!("cannot use the Docker socket {}: {e}", socket.display()))
    })?;
    Ok((docker, socket))
}

/// What `docker inspect` says of a container.
struct Inspected {
    /// `.State.Pid`, 0 when not running.
    pid: u64,
    id: String,
    /// Its name, without Docker's leading `/`.
    name: String,
    labels: HashMap<String, String>,
    /// `.HostConfig.NetworkMode`.
    network_mode: String,
}

impl Inspected {
    /// How a record finds it again: by `runtime` and ID.
    fn find(&self, runtime: &str) -> Finder {
        Finder::Container { runtime: runtime.into(), id: self.id.clone(), name: self.name.clone() }
    }
}

/// `None` for no such container.
async fn inspect(docker: &Docker, label: &str, socket: &Path) -> Result<Option<Inspected>> {
    use bollard::errors::Error as E;
    match docker.inspect_container(label, None).await {
        Ok(info) => {
            // Docker keeps the last PID of a container that stopped.
            let pid = match info.state {
                Some(state) if state.running == Some(true) => state.pid.unwrap_or(0),
                _ => 0,
            };
            let (id, name) = (info.id.unwrap_or_default(), info.name.unwrap_or_default());
            tracing::debug!(id, name, pid, "docker inspect");
            let name = name.trim_start_matches('/').to_string();
            let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
            let network_mode = info.host_config.and_then(|h| h.network_mode).unwrap_or_default();
            let pid = u64::try_from(pid).unwrap_or(0);
            Ok(Some(Inspected { pid, id, name, labels, network_mode }))
        }
        Err(E::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
        // An ID prefix that several containers share.
        Err(E::DockerResponseServerError { message, .. }) if message.contains("multiple") => {
            Err(Error::verbatim(Kind::Usage, format!("Found more than one container matching {label}.")))
        }
        Err(E::DockerResponseServerError { message, .. }) => {
            Err(Error::verbatim(Kind::Io, format!("Error response from daemon: {message}")))
        }
        Err(e) => Err(Error::new(Kind::Io, format!("cannot reach Docker at {}: {e}", socket.display()))),
    }
}
