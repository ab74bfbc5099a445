//! DHCP as a guest's addressing: the native client's step, whose lease
//! brings the steps that configure it when the plan runs, or a host
//! client's. Bad OPTS and a missing host client are refused here, before
//! anything changes.

use std::path::PathBuf;

use super::{Context, Teardown};
use crate::dhcp::agent::AgentId;
use crate::dhcp::lease_file::LeaseFile;
use crate::dhcp::options::Native;
use crate::dhcp::{host, resolv_conf, Setup};
use crate::error::{Error, Result};
use crate::plan::{Plan, Side, Step};
use crate::records::DhcpRecord;
use crate::request::{Dhcp, DhcpClient, GuestRef};

/// The refusal that needs no guest: a host client that is not there, as
/// the original checked it.
pub fn validate(dhcp: &Dhcp) -> Result<()> {
    match dhcp.client {
        DhcpClient::Native => Ok(()),
        client => host::check(client),
    }
}

/// The steps of a DHCP word for `dev`; `port` is the bridge port that must
/// forward before the first DISCOVER.
pub fn steps(plan: &mut Plan, ctx: &Context<'_>, dhcp: &Dhcp, dev: &str, port: Option<&str>) -> Result<()> {
    let netns_inode = nix::sys::stat::fstat(ctx.guest.netns()).map_err(Error::from)?.st_ino;
    if dhcp.client != DhcpClient::Native {
        let label = &ctx.guest.label;
        let argv = host::argv(dhcp, dev, label);
        let resolv = host::resolv_conf(netns_inode, dev);
        plan.push(Step::HostDhcp { dhcp: dhcp.clone(), argv, guest: label.clone(), resolv });
        return Ok(());
    }
    let hostname = default_hostname(&ctx.req.guest, &ctx.guest.label);
    let native = Native::parse(dhcp.options.as_deref(), hostname.as_deref())?;
    let netns_file = match &ctx.req.guest {
        GuestRef::Netns(name) => Some(PathBuf::from("/var/run/netns").join(name)),
        GuestRef::Path(path) => Some(path.clone()),
        GuestRef::Pid(_) | GuestRef::Name(_) => None,
    };
    let resolv = match (ctx.req.resolv_conf, &netns_file, ctx.guest.process()) {
        (false, ..) => None,
        (true, None, Some(process)) => Some(resolv_conf::check(process, &ctx.guest.label)?),
        (true, ..) => return Err(resolv_conf::no_mount_namespace(&ctx.guest.label)),
    };
    let setup = Setup {
        native,
        options: dhcp.options.clone().unwrap_or_default(),
        hostname,
        timeout: dhcp.timeout,
        guest_pid: match netns_file {
            None => ctx.guest.process().map(|p| p.pid()),
            Some(_) => None,
        },
        netns_file: netns_file.map(|p| p.display().to_string()),
        netns_inode,
        resolv,
    };
    plan.push(Step::LinkUp { side: Side::Guest, name: dev.into() });
    plan.push(Step::Dhcp { dev: dev.into(), port: port.map(String::from), setup: Box::new(setup) });
    Ok(())
}

/// The guest's name as the original sent it (`-x hostname:<guest>`), when
/// it can be a host name: not for `pid:N` or a path. A container goes by
/// its label, the name it was found by: the name typed, or the
/// container's own where the watch service names it by its ID.
fn default_hostname(guest: &GuestRef, label: &str) -> Option<String> {
    let name = match guest {
        GuestRef::Netns(name) => name.as_str(),
        GuestRef::Name(_) => label,
        GuestRef::Pid(_) | GuestRef::Path(_) => return None,
    };
    let fits = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    fits.then(|| name.to_string())
}

/// The DHCP mode, and what holds the lease: the native client's agent and
/// its state file (`dhcp` as the client), or the host client and the
/// guest's resolv.conf its script wrote.
pub fn dhcp_record(plan: &Plan, d: &Dhcp) -> DhcpRecord {
    let (client, agent, lease_file, saved) = plan
        .steps
        .iter()
        .find_map(|step| match step {
            Step::Dhcp { dev, setup, .. } => {
                let path = LeaseFile::path_for(setup.netns_inode, dev);
                let agent = LeaseFile::read(&path).ok().and_then(|s| s.agent);
                let saved = setup.resolv.map(|_| resolv_conf::saved_beside(&path));
                Some(("dhcp", agent, Some(path), saved))
            }
            Step::HostDhcp { resolv, .. } => Some((d.client.program(), None, Some(resolv.clone()), None)),
            _ => None,
        })
        .unwrap_or((d.client.program(), None, None, None));
    DhcpRecord {
        client: client.to_string(),
        foreground: d.foreground,
        options: d.options.clone(),
        timeout_ms: u64::try_from(d.timeout.as_millis()).unwrap_or(u64::MAX),
        agent_pid: agent.map(|a| a.pid),
        agent_started: agent.and_then(|a| a.started),
        lease_file: lease_file.map(|p| p.display().to_string()),
        resolv_conf: saved.map(|p| p.display().to_string()),
    }
}

/// `detach`: the agent stopped (it releases the lease) and the lease's file
/// removed.
pub fn teardown(t: &Teardown<'_>, plan: &mut Plan) {
    let Some(dhcp) = &t.iface.dhcp else { return };
    if let Some(file) = &dhcp.lease_file {
        plan.push(Step::ForgetLease { agent: AgentId::recorded(dhcp), file: PathBuf::from(file) });
    }
}
