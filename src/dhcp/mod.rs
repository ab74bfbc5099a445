//! DHCPv4 for a guest's interface, as a subsystem of its own: the native
//! client (`options` from udhcpc's syntax, `wire` for the messages,
//! `socket`, `client` for the exchanges, `timing` for how often), the
//! lease file and log of the agent that keeps a lease (`lease_file`, `log`) and
//! how the agent is started and stopped (`agent`), the agent's life
//! (`lease_loop`: renew, rebind, acquire again, release), and the host's
//! own clients run in the guest (`host`). The rest knows nothing of plans
//! (`drivers` plans with it, `apply` runs it); the lease loop alone is
//! above them, making a new lease's address and routes through the same
//! steps and transaction as an attach.

pub mod agent;
pub mod client;
pub mod host;
pub mod lease_file;
pub mod lease_loop;
pub mod log;
pub mod options;
pub mod resolv_conf;
pub mod socket;
pub mod timing;
pub mod wire;

use std::time::Duration;

use options::Native;

/// What the native client needs once the plan runs.
#[derive(Debug, Clone)]
pub struct Setup {
    pub native: Native,
    /// OPTS as typed, for the agent.
    pub options: String,
    pub hostname: Option<String>,
    pub timeout: Duration,
    /// The guest's init, watched by the agent through a pidfd; none for a
    /// namespace file.
    pub guest_pid: Option<u64>,
    /// The namespace file the agent watches when there is no process.
    pub netns_file: Option<String>,
    pub netns_inode: u64,
    /// `--resolv-conf`: the guest process and mount namespace whose
    /// /etc/resolv.conf takes the lease's DNS.
    pub resolv: Option<resolv_conf::Guest>,
}
