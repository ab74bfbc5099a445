//! The Docker Engine API client (Podman's Docker-compatible socket too):
//! a container's PID, as `docker inspect` gives it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{ClientVersion, Docker};

use crate::error::{Error, Kind, Result};

/// API 1.41 (Docker 20.10) is understood by every engine from 20.10 on and
/// by Podman's compatibility layer, and costs no version round trip.
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
pub async fn pid(label: &str) -> Result<u64> {
    let Some(socket) = docker_socket()? else {
        return Err(Error::original(
            Kind::NotFound,
            format!("Container {label} not found, and Docker not installed."),
        ));
    };
    let docker = Docker::connect_with_unix(&socket.to_string_lossy(), 10, &DOCKER_API).map_err(|e| {
        Error::new(Kind::Io, format!("cannot use the Docker socket {}: {e}", socket.display()))
    })?;
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
    Err(Error::original(Kind::NotFound, "Docker inspect returned invalid PID 0"))
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
            Err(Error::original(Kind::NotFound, format!("Error: No such object: {label}")))
        }
        // An ID prefix that several containers share.
        Err(E::DockerResponseServerError { message, .. }) if message.contains("multiple") => {
            Err(Error::original(Kind::Usage, format!("Found more than one container matching {label}.")))
        }
        Err(E::DockerResponseServerError { message, .. }) => {
            Err(Error::original(Kind::Io, format!("Error response from daemon: {message}")))
        }
        Err(e) => Err(Error::new(Kind::Io, format!("cannot reach Docker at {}: {e}", socket.display()))),
    }
}
