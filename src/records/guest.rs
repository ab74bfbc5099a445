//! The guest a record is about and the host namespace it was plumbed
//! from: how to find the guest again (`Finder`, which also names the
//! record's file), its network namespace's identity, its engine.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestRecord {
    /// The guest as the operator first named it.
    pub label: String,
    pub find: Finder,
    /// Its network namespace when the record was written; a restarted
    /// container has a new one.
    pub netns: NsId,
    /// For a container, the ID of the engine that runs it (Docker's
    /// `/info` ID): only that engine's word that the container is gone
    /// counts. None in records of before it was kept, or when the engine
    /// did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// How to find a guest again, also after a restart where that is possible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Finder {
    /// A container of an engine: `docker`, or `podman` when the Engine API
    /// socket is Podman's (its `/version` says so); records written before
    /// that was asked say `docker` for both. The ID survives restarts.
    Container {
        runtime: String,
        id: String,
        name: String,
    },
    Lxc {
        name: String,
    },
    /// `netns:<name>`, a name under /var/run/netns.
    Netns {
        name: String,
    },
    /// A network namespace file's absolute path.
    Path {
        path: String,
    },
    /// `pid:<pid>`: only as long as that process lives (checked by `netns`).
    Pid {
        pid: u64,
    },
    /// What a container runtime plumbed through pipework as a CNI plugin:
    /// its container ID (the record's key; one record holds the container's
    /// interfaces of every network) and the network namespace path it gave
    /// (`CNI_NETNS`), where DEL and GC find the interfaces again. Each
    /// interface names its network (`Interface::cni`).
    Cni {
        container_id: String,
        netns: String,
    },
}

/// A namespace by its nsfs inode and device: unique among live namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NsId {
    pub ino: u64,
    pub dev: u64,
}

impl NsId {
    pub fn of_path(path: impl AsRef<Path>) -> std::io::Result<NsId> {
        let meta = std::fs::metadata(path)?;
        Ok(NsId { ino: meta.ino(), dev: meta.dev() })
    }

    pub fn of_file(file: &std::fs::File) -> std::io::Result<NsId> {
        let meta = file.metadata()?;
        Ok(NsId { ino: meta.ino(), dev: meta.dev() })
    }

    /// Whether this is PID 1's network namespace, the host's own.
    fn is_init(self) -> bool {
        NsId::of_path(INIT_NETNS).is_ok_and(|init| init == self)
    }
}

/// The host network namespace: its identity, and its name under
/// /var/run/netns when it has one, so it can be named and reopened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNs {
    #[serde(flatten)]
    pub id: NsId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

const NETNS_DIR: &str = "/var/run/netns";
const INIT_NETNS: &str = "/proc/1/ns/net";

impl HostNs {
    /// The namespace this thread is in, named if a /var/run/netns entry is
    /// it. PID 1's namespace, where pipework mostly runs, is not looked for
    /// there: `1` names it already (`pid:1`), and a host with a pod per
    /// entry would stat them all at every attach.
    pub fn current() -> std::io::Result<HostNs> {
        let id = NsId::of_path("/proc/thread-self/ns/net")?;
        if id.is_init() {
            return Ok(HostNs { id, netns: None });
        }
        let netns = std::fs::read_dir(NETNS_DIR).ok().and_then(|dir| {
            dir.flatten()
                .find(|e| NsId::of_path(e.path()).is_ok_and(|other| other == id))
                .map(|e| e.file_name().to_string_lossy().into_owned())
        });
        Ok(HostNs { id, netns })
    }

    /// How to tell the operator which namespace this is.
    pub fn describe(&self) -> String {
        match &self.netns {
            Some(name) => format!("netns:{name}"),
            None if self.id.is_init() => "the host's own network namespace (PID 1's)".to_string(),
            None => format!("the network namespace with inode {}", self.id.ino),
        }
    }
}

impl Finder {
    /// The record's file name stem: `docker-<id>`, `lxc-<name>`,
    /// `netns-<name>`, `path-<path>`, `pid-<pid>`, `cni-<id>`, with anything but
    /// `[A-Za-z0-9._-]` escaped as `%XX`. The prefix keeps it from starting
    /// with a dot (hidden, or `..`).
    pub fn key(&self) -> String {
        match self {
            Finder::Container { runtime, id, .. } => format!("{}-{}", escape(runtime), escape(id)),
            Finder::Lxc { name } => format!("lxc-{}", escape(name)),
            Finder::Netns { name } => format!("netns-{}", escape(name)),
            Finder::Path { path } => format!("path-{}", escape(path)),
            Finder::Pid { pid } => format!("pid-{pid}"),
            Finder::Cni { container_id, .. } => Finder::cni_key(container_id),
        }
    }

    /// The key of CNI container `container_id`'s record.
    pub fn cni_key(container_id: &str) -> String {
        format!("cni-{}", escape(container_id))
    }

    /// Whether `arg`, as an operator would type a guest, names this one:
    /// the container's name or ID (or a prefix of 12 or more of it), or the
    /// `netns:`, path and `pid:` forms.
    pub fn answers_to(&self, arg: &str) -> bool {
        let by_id = |id: &str| arg == id || (arg.len() >= 12 && id.starts_with(arg));
        match self {
            Finder::Container { id, name, .. } => arg == name.trim_start_matches('/') || by_id(id),
            Finder::Cni { container_id, .. } => by_id(container_id),
            Finder::Lxc { name } => arg == name,
            Finder::Netns { name } => arg.strip_prefix("netns:") == Some(name),
            Finder::Path { path } => arg == path,
            Finder::Pid { pid } => arg.strip_prefix("pid:").and_then(|p| p.parse().ok()) == Some(*pid),
        }
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
