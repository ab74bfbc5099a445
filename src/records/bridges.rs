//! Bridges' records: which accepting FORWARD rules pipework added for a
//! bridge (`sys::firewall`), one file a bridge and host namespace,
//! `bridges/<namespace inode>-<bridge>.json` in the record directory
//! (where `load_all` does not look). Changed under the store's lock.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::store::sync_dir;
use super::{HostNs, NsId, Store};
use crate::error::{Error, Kind, Result};
use crate::sys::firewall::Accept;

const DIR: &str = "bridges";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeRecord {
    pub bridge: String,
    pub host: HostNs,
    /// The rules pipework added for the bridge and keeps while it has
    /// attachments.
    pub accept: Vec<Accept>,
}

impl Store {
    fn bridge_path(&self, host: NsId, bridge: &str) -> PathBuf {
        self.dir().join(DIR).join(format!("{}-{bridge}.json", host.ino))
    }

    /// The record of `bridge` in the host namespace `host`, if any.
    pub fn bridge(&self, host: NsId, bridge: &str) -> Result<Option<BridgeRecord>> {
        read(&self.bridge_path(host, bridge))
    }

    /// Under the lock: lets `change` edit the bridge's rules; a record
    /// left with none is removed.
    pub fn update_bridge<T>(
        &self,
        host: &HostNs,
        bridge: &str,
        change: impl FnOnce(&mut Vec<Accept>) -> T,
    ) -> Result<T> {
        let _lock = self.lock()?;
        let path = self.bridge_path(host.id, bridge);
        let before = read(&path)?.map(|r| r.accept).unwrap_or_default();
        let mut accept = before.clone();
        let out = change(&mut accept);
        let failed = |e: std::io::Error| Error::from(e).context(format!("writing {}", path.display()));
        if accept == before {
            return Ok(out);
        }
        if accept.is_empty() {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(failed(e)),
                _ => return Ok(out),
            }
        }
        let record = BridgeRecord { bridge: bridge.to_string(), host: host.clone(), accept };
        let mut text = serde_json::to_vec_pretty(&record).map_err(|e| Error::new(Kind::Internal, e))?;
        text.push(b'\n');
        let dir = self.dir().join(DIR);
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(failed)?;
        let tmp = dir.join(format!(".{}.{}.tmp", bridge, std::process::id()));
        (|| {
            let mut file =
                OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(&dir)
        })()
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            failed(e)
        })?;
        Ok(out)
    }
}

fn read(path: &std::path::Path) -> Result<Option<BridgeRecord>> {
    match fs::read(path) {
        Ok(text) if text.is_empty() => Ok(None),
        Ok(text) => serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::new(Kind::Io, format!("{}: not a bridge record: {e}", path.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::from(e).context(format!("reading {}", path.display()))),
    }
}
