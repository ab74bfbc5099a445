//! What each ADD made, kept so that CHECK, DEL and GC know it later: one
//! JSON file per attachment, keyed by container ID and interface, under
//! `$PIPEWORK_STATE_DIR/cni` (default /var/lib/pipework/cni). Written to a
//! temporary name and renamed, so a reader never sees half a record.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::error::{CniError, CniResult, Code};

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub container_id: String,
    pub ifname: String,
    pub network: String,
    pub netns: String,
    pub bridge: String,
    pub host_veth: String,
    /// The configuration ADD got (stdin), for the IPAM DEL of a later GC.
    pub config: Value,
    /// ADD's own result, in the 1.1.0 shape.
    pub result: Value,
}

fn io_error(what: String, e: std::io::Error) -> CniError {
    CniError::new(Code::Io, what).with_details(e.to_string())
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open() -> Store {
        let base = std::env::var_os("PIPEWORK_STATE_DIR").unwrap_or_else(|| "/var/lib/pipework".into());
        Store { dir: Path::new(&base).join("cni") }
    }

    /// Container IDs and interface names hold no '/' (both are checked).
    fn path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{container_id}_{ifname}.json"))
    }

    pub fn save(&self, r: &Record) -> CniResult<()> {
        fs::create_dir_all(&self.dir).map_err(|e| io_error(format!("creating {}", self.dir.display()), e))?;
        let value = json!({
            "containerID": r.container_id, "ifname": r.ifname, "network": r.network, "netns": r.netns,
            "bridge": r.bridge, "hostVeth": r.host_veth, "config": r.config, "result": r.result,
        });
        let path = self.path(&r.container_id, &r.ifname);
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&temp, value.to_string())
            .map_err(|e| io_error(format!("writing {}", temp.display()), e))?;
        fs::rename(&temp, &path).map_err(|e| io_error(format!("writing {}", path.display()), e))
    }

    pub fn load(&self, container_id: &str, ifname: &str) -> CniResult<Option<Record>> {
        let path = self.path(container_id, ifname);
        match fs::read(&path) {
            Ok(bytes) => parse(&bytes).map(Some).ok_or_else(|| {
                CniError::new(Code::Decoding, format!("failed to decode the record {}", path.display()))
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(format!("reading {}", path.display()), e)),
        }
    }

    /// Removing a record that is gone already is not an error (DEL is idempotent).
    pub fn remove(&self, container_id: &str, ifname: &str) -> CniResult<()> {
        let path = self.path(container_id, ifname);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(io_error(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }

    /// Every record of network `name`.
    pub fn of_network(&self, name: &str) -> CniResult<Vec<Record>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(format!("listing {}", self.dir.display()), e)),
        };
        Ok(entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|entry| parse(&fs::read(entry.path()).ok()?))
            .filter(|r| r.network == name)
            .collect())
    }
}

fn parse(bytes: &[u8]) -> Option<Record> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let text = |key: &str| v.get(key)?.as_str().map(String::from);
    Some(Record {
        container_id: text("containerID")?,
        ifname: text("ifname")?,
        network: text("network")?,
        netns: text("netns")?,
        bridge: text("bridge")?,
        host_veth: text("hostVeth")?,
        config: v.get("config")?.clone(),
        result: v.get("result")?.clone(),
    })
}
