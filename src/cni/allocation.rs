//! An address IPAM hands out, as a run's intent keeps it before the
//! plugin's ADD starts: the recovery of an ADD killed half-way gives it
//! back with the plugin's DEL, as the runtime's own DEL would.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::env::{Command, Env};
use super::error::CniError;
use super::ipam::Ipam;
use crate::error::{Error, Kind, Result};

/// What the plugin's DEL needs: its name (found again on CNI_PATH, and
/// checked again as the ADD did), the CNI variables and the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub plugin: String,
    pub path: Vec<PathBuf>,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: Vec<(String, String)>,
    pub config: String,
}

impl Allocation {
    pub fn of(ipam: &Ipam, env: &Env, config: &[u8]) -> Allocation {
        Allocation {
            plugin: ipam.name.clone(),
            path: env.path.clone(),
            container_id: env.container_id.clone(),
            netns: env.netns.clone(),
            ifname: env.ifname.clone(),
            args: env.args.clone(),
            config: String::from_utf8_lossy(config).into_owned(),
        }
    }

    /// The plugin's DEL: what it handed out is free again (DEL of what it
    /// never handed out, an ADD killed before it answered, is no error).
    pub fn release(&self) -> Result<()> {
        let env = Env {
            command: Command::Del,
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: self.args.clone(),
            path: self.path.clone(),
        };
        let failed = |e: CniError| {
            let details = if e.details.is_empty() { String::new() } else { format!(" ({})", e.details) };
            Error::new(Kind::ProgramFailed, format!("{}{details}", e.msg))
        };
        Ipam::find(&self.plugin, &self.path)
            .map_err(failed)?
            .call(Command::Del, &env, self.config.as_bytes())
            .map_err(failed)
    }
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CNI DEL of IPAM plugin {} for {} of container {}",
            self.plugin, self.ifname, self.container_id
        )
    }
}
