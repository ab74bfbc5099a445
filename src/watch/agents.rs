//! The DHCP agent of a native DHCP interface that is there already (its
//! container ran on while the service was away or restarting). Agents are
//! not the service's to stop: the unit's KillMode=process leaves them
//! running when the service stops or restarts, so one still keeping the
//! lease is adopted; one that is gone (it crashed, was killed, or released
//! the lease at a SIGTERM) is replaced by exactly one new agent.

use crate::dhcp::agent::{self, AgentId};
use crate::dhcp::lease_file::LeaseFile;
use crate::dhcp::options::Native;
use crate::drivers::{dhcp as dhcp_steps, Context};
use crate::error::{Error, Kind, Result};
use crate::records::{DhcpRecord, Store};
use crate::request::{Addressing, Attach, Dhcp};
use crate::resolve::guest::Guest;
use crate::sys::netlink::Netlink;

/// What became of an interface's agent.
pub enum Kept {
    /// It still runs, in the container's namespace: left alone.
    Adopted(u32),
    /// It was gone and its state (the lease) was there: a new agent
    /// resumes from it, with no new DISCOVER.
    Resumed(u32),
    /// It was gone with its state: the interface leased again.
    Leased(u32),
}

/// Adopts or replaces the agent of `ifname` of `guest`, recorded as `dhcp`
/// under `key`. `None` for an interface that has no agent to keep (a host
/// client, or `-q`: lease once).
pub async fn keep(
    key: &str,
    req: &Attach,
    dhcp: &DhcpRecord,
    guest: &Guest,
    host: &Netlink,
    inside: &Netlink,
) -> Result<Option<Kept>> {
    let Addressing::Dhcp(asked) = &req.addr else { return Ok(None) };
    let once = Native::parse(asked.options.as_deref(), None).map(|n| n.once).unwrap_or(true);
    if dhcp.client != "dhcp" || once {
        return Ok(None);
    }
    let ifname = req.container_if.as_deref().unwrap_or("eth1");
    let netns = guest.netns();
    let path = LeaseFile::path_for(nix::sys::stat::fstat(netns).map_err(Error::from)?.st_ino, ifname);
    let state = LeaseFile::read(&path).ok().filter(|s| s.ifname == ifname);
    let recorded = AgentId::recorded(dhcp);
    let running = [state.as_ref().and_then(|s| s.agent), recorded]
        .into_iter()
        .flatten()
        .find(|a| a.keeps(&path, netns));
    let (kept, agent) = match (running, state) {
        (Some(agent), _) => (Kept::Adopted(agent.pid), agent),
        (None, Some(state)) => {
            let agent = resume(state, guest)?;
            (Kept::Resumed(agent.pid), agent)
        }
        (None, None) => {
            lease_again(req, asked, ifname, guest, host, inside).await?;
            let agent = LeaseFile::read(&path)?
                .agent
                .ok_or_else(|| Error::new(Kind::Internal, format!("{} names no agent", path.display())))?;
            (Kept::Leased(agent.pid), agent)
        }
    };
    if recorded != Some(agent) || dhcp.lease_file.as_deref() != path.to_str() {
        note(key, ifname, agent, path.display().to_string()).await?;
    }
    Ok(Some(kept))
}

/// A new agent for the lease its state holds, watching the container's
/// init (the state may name another process: one of an earlier life).
fn resume(mut state: LeaseFile, guest: &Guest) -> Result<AgentId> {
    state.guest_pid = guest.process().map(|p| p.pid());
    state.agent = None;
    state.write()?;
    let pidfd = guest.process().map(|p| p.pidfd());
    let agent = agent::spawn(&state, guest.netns(), pidfd, None)?;
    state.agent = Some(agent);
    state.write()?;
    Ok(agent)
}

/// The DHCP steps alone, on the interface that is there: a lease with the
/// interface's MAC (the server gives the same address), its configuration
/// and a new agent; rolled back whole if any fails.
async fn lease_again(
    req: &Attach,
    dhcp: &Dhcp,
    ifname: &str,
    guest: &Guest,
    host: &Netlink,
    inside: &Netlink,
) -> Result<()> {
    let ctx = Context { req, guest, host, inside };
    let mut plan = ctx.new_plan();
    dhcp_steps::steps(&mut plan, &ctx, dhcp, ifname, None)?;
    crate::apply::here_then(&plan, host, Some((inside, guest.netns())), None, async || Ok(())).await
}

/// The record names the agent that keeps the lease now.
async fn note(key: &str, ifname: &str, agent: AgentId, lease_file: String) -> Result<()> {
    let (key, ifname) = (key.to_string(), ifname.to_string());
    let write = move || {
        Store::from_env().update(&key, |slot| {
            let iface = slot.as_mut().and_then(|r| r.interfaces.iter_mut().find(|i| i.name == ifname));
            if let Some(dhcp) = iface.and_then(|i| i.dhcp.as_mut()) {
                dhcp.agent_pid = Some(agent.pid);
                dhcp.agent_started = agent.started;
                dhcp.lease_file = Some(lease_file);
            }
        })
    };
    tokio::task::spawn_blocking(write)
        .await
        .unwrap_or_else(|e| Err(Error::new(Kind::Internal, format!("record writer: {e}"))))
}
