//! The DHCP steps run: the native client takes a lease (and the steps that
//! configure it follow), gives it back on a rollback, and the agent that
//! keeps it is started; a host client runs in the guest.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use super::announce::port_forwards;
use super::Target;
use crate::dhcp::client::Client;
use crate::dhcp::lease_file::LeaseFile;
use crate::dhcp::wire::Lease;
use crate::dhcp::{agent, resolv_conf, socket, Setup};
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::plan::{lease, Step, Undo};
use crate::sys::netlink::Link;
use crate::sys::netns;
use crate::sys::process::Process;
use crate::sys::shutdown;

/// Takes a lease on `dev` (the plan's name of `link`) once the bridge port `port` (if any) forwards: a
/// DISCOVER sent before that is dropped. Returns the undo that gives the
/// lease back and the steps that configure it.
pub async fn take_lease(
    dev: &str,
    link: Link,
    port: Option<&str>,
    setup: &Setup,
    t: &Target<'_>,
) -> Result<(Undo, Vec<Step>)> {
    if let Some(port) = port {
        port_forwards(t.host, port).await?;
    }
    let mac = link.mac.ok_or_else(|| Error::new(Kind::NotFound, format!("{dev} has no hardware address")))?;
    let fd = netns::within(t.guest_ns, || socket::open_packet(link.index))?;
    let packet = socket::PacketSocket::new(fd, link.index)?;
    let client = Client { ifname: dev.into(), mac, native: setup.native.clone() };
    let lease = shutdown::unless_stopping("DHCP", client.acquire(&packet, setup.timeout)).await?;
    tracing::info!(
        "lease of {}/{} from {} for {} s",
        lease.address,
        lease.prefix,
        lease.server,
        lease.time.as_secs()
    );
    let default = t.guest.default_routes(Family::V4).await?.into_iter().next();
    let mut more = lease::steps(&lease, dev, link.mtu, default)?;
    if let Some(guest) = setup.resolv {
        let saved = resolv_conf::saved_path(setup.netns_inode, dev);
        more.push(Step::ResolvConf { dev: dev.into(), guest, lease: Box::new(lease.clone()), saved });
    }
    more.push(Step::Announce { dev: dev.into(), ip: lease.address, port: None });
    if !setup.native.once {
        more.push(Step::StartAgent {
            dev: dev.into(),
            setup: Box::new(setup.clone()),
            lease: Box::new(lease.clone()),
            socket: Some(Arc::new(packet.into_fd())),
        });
    }
    let undo = Undo::Release { client: Box::new(client), index: link.index, lease: Box::new(lease) };
    Ok((undo, more))
}

/// Gives a lease back during a rollback: broadcast from the leased address,
/// which may not be configured any more.
pub async fn release(client: &Client, index: u32, lease: &Lease, t: &Target<'_>) -> Result<()> {
    let Some(link) = t.guest.link_by_index(index).await? else { return Ok(()) };
    let fd = netns::within(t.guest_ns, || socket::open_packet(link.index))?;
    let packet = socket::PacketSocket::new(fd, link.index)?;
    client.release_broadcast(&packet, lease)
}

/// The lease's DNS into the guest's resolv.conf (a lease that names no
/// server leaves it as it is); the undo puts back what it held.
pub fn write_resolv_conf(
    dev: &str,
    guest: resolv_conf::Guest,
    lease: &Lease,
    saved: &Path,
) -> Result<Option<Undo>> {
    let Some(text) = resolv_conf::text(lease, dev) else {
        tracing::info!("the lease on {dev} names no DNS server: {} left as it is", resolv_conf::PATH);
        return Ok(None);
    };
    resolv_conf::write(guest, &text, saved, true)?;
    Ok(Some(Undo::RestoreResolvConf { guest, saved: saved.to_path_buf() }))
}

/// Writes the agent's state and starts it; the undo stops it.
pub fn start_agent(
    dev: &str,
    setup: &Setup,
    lease: &Lease,
    socket: Option<&OwnedFd>,
    t: &Target<'_>,
) -> Result<Undo> {
    let mut state = LeaseFile {
        path: LeaseFile::path_for(setup.netns_inode, dev),
        ifname: dev.into(),
        guest_pid: setup.guest_pid,
        netns_file: setup.netns_file.clone(),
        options: setup.options.clone(),
        hostname: setup.hostname.clone(),
        lease: lease.clone(),
        bound_at: LeaseFile::now(),
        agent: None,
        resolv_mntns: setup.resolv.map(|g| g.mntns),
    };
    state.write()?;
    let guest = match setup.guest_pid {
        Some(pid) => {
            Some(Process::open(pid).map_err(|e| Error::from(e).context(format!("watching process {pid}")))?)
        }
        None => None,
    };
    let agent = agent::spawn(&state, t.guest_ns, guest.as_ref().map(Process::pidfd), socket)?;
    state.agent = Some(agent);
    state.write()?;
    tracing::info!("DHCP agent {} keeps {} ({})", agent.pid, lease.address, state.path.display());
    Ok(Undo::StopAgent { agent, lease_file: state.path.clone() })
}
