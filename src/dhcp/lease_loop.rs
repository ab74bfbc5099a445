//! The DHCP agent's life (`pipework --dhcp-agent <state file>`): it keeps
//! a lease for the guest's life, started by an attach (`agent::spawn`)
//! inside the guest's network namespace. It renews at T1, rebinds at T2, removes the
//! address when the lease is lost (and asks for a new one), releases the
//! lease on SIGTERM, and exits when the guest's init dies (a pidfd), its
//! namespace file goes away or the interface is gone.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;
use tokio::time::{sleep_until, Instant};

use super::agent::{AgentId, PIDFD};
use super::client::{Answer, Client};
use super::lease_file::LeaseFile;
use super::log;
use super::options::Native;
use super::resolv_conf;
use super::socket::{open_packet, open_udp, watch, PacketSocket};
use super::timing::POLICY;
use super::wire::Lease;
use crate::apply::{apply, Target};
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::plan::{lease, Plan};
use crate::sys::netlink::{address_ip, nl_error, Netlink};
use crate::sys::netns;

/// How the agent's watch ended.
enum End {
    GuestGone,
    Terminated,
}

/// The agent's life; it runs inside the guest's namespace.
pub async fn run(path: &Path) -> Result<()> {
    let mut state = LeaseFile::read(path)?;
    state.agent = Some(AgentId::of(std::process::id()));
    state.write()?;
    let native = Native::parse(Some(&state.options), state.hostname.as_deref())?;
    let nl = Netlink::here()?;
    let link = nl.require(&state.ifname).await?;
    let mac = link
        .mac
        .ok_or_else(|| Error::new(Kind::NotFound, format!("{} has no hardware address", state.ifname)))?;
    let client = Client { ifname: state.ifname.clone(), mac, native };
    let term = terminations()?;
    let age = Duration::from_secs(LeaseFile::now().saturating_sub(state.bound_at));
    let mut bound = Some((state.lease.clone(), Instant::now().checked_sub(age).unwrap_or_else(Instant::now)));
    tracing::info!("keeping {}/{} on {}", state.lease.address, state.lease.prefix, state.ifname);
    let end = tokio::select! {
        () = guest_gone(state.guest_pid, state.netns_file.clone(), state.ifname.clone()) => End::GuestGone,
        _ = term.readable() => End::Terminated,
        e = keep(&client, &nl, &mut state, &mut bound) => return e,
    };
    if let Some((lease, _)) = bound {
        release(&client, &nl, &lease).await;
    }
    // Only while the state still names this agent: a restarted guest whose
    // new namespace got the old one's inode has the same state path, which
    // its own new agent may hold by now.
    if LeaseFile::names_agent(&state.path, std::process::id()) {
        let _ = std::fs::remove_file(&state.path);
        for log in log::files(&state.path) {
            let _ = std::fs::remove_file(log);
        }
    }
    tracing::info!("{}", if matches!(end, End::GuestGone) { "guest gone" } else { "released" });
    Ok(())
}

/// SIGTERM as a readable fd: blocked, then read through a signalfd.
fn terminations() -> Result<AsyncFd<SignalFd>> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.thread_block().map_err(|e| Error::from(e).context("blocking SIGTERM"))?;
    let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::from(e).context("listening for SIGTERM"))?;
    // SAFETY: the signalfd is owned and moves into the AsyncFd for good.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| Error::from(e.into_parts().1))
}

/// Renews, rebinds and reacquires, for ever; returns only on an error.
async fn keep(
    client: &Client,
    nl: &Netlink,
    state: &mut LeaseFile,
    bound: &mut Option<(Lease, Instant)>,
) -> Result<()> {
    // Whatever the server answers, its answers set no faster pace.
    let mut pace = POLICY.pace();
    let mut failing = false;
    loop {
        let Some((lease, since)) = bound.clone() else {
            // A lost lease is asked for again at once (its renewal waited
            // its turn); a failed try waits, longer each time.
            if failing {
                pace.turn().await;
            } else {
                pace.skip();
            }
            let packet = packet_socket(nl, &client.ifname).await?;
            match client.acquire(&packet, POLICY.acquire_for).await {
                Ok(lease) => {
                    failing = false;
                    pace.succeeded();
                    configure(nl, &client.ifname, &lease).await?;
                    *bound = Some((lease.clone(), Instant::now()));
                    save(state, &lease)?;
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    failing = true;
                    pace.failed();
                }
            }
            continue;
        };
        sleep_until(since + lease.t1).await;
        pace.turn().await;
        match extend(client, nl, &lease, since).await? {
            Some(renewed) if renewed.address == lease.address => {
                tracing::info!("renewed {} for {} s", renewed.address, renewed.time.as_secs());
                *bound = Some((renewed.clone(), Instant::now()));
                save(state, &renewed)?;
            }
            other => {
                tracing::warn!("lease of {} lost", lease.address);
                unconfigure(nl, &client.ifname, &lease).await?;
                *bound = None;
                if let Some(new) = other {
                    configure(nl, &client.ifname, &new).await?;
                    *bound = Some((new.clone(), Instant::now()));
                    save(state, &new)?;
                }
            }
        }
    }
}

/// RENEWING until T2, then REBINDING until the lease ends: the new lease,
/// or none if it was refused or ran out.
async fn extend(client: &Client, nl: &Netlink, lease: &Lease, since: Instant) -> Result<Option<Lease>> {
    let udp = open_udp(&client.ifname).and_then(tokio::net::UdpSocket::from_std);
    let udp = udp.map_err(|e| Error::from(e).context("opening the renewal socket"))?;
    match POLICY.ask_until(since + lease.t2, async |wait| client.renew(&udp, lease, wait).await).await? {
        Answer::Ack(new) => return Ok(Some(new)),
        Answer::Nak => return Ok(None),
        Answer::Silence => {}
    }
    let packet = packet_socket(nl, &client.ifname).await?;
    match POLICY.ask_until(since + lease.time, async |wait| client.rebind(&packet, lease, wait).await).await?
    {
        Answer::Ack(new) => Ok(Some(new)),
        Answer::Nak | Answer::Silence => Ok(None),
    }
}

async fn packet_socket(nl: &Netlink, ifname: &str) -> Result<PacketSocket> {
    let index = nl.require(ifname).await?.index;
    let fd = open_packet(index).map_err(|e| Error::from(e).context("opening a packet socket"))?;
    PacketSocket::new(fd, index).map_err(Error::from)
}

fn save(state: &mut LeaseFile, lease: &Lease) -> Result<()> {
    if !resolv_conf::same(&state.lease, lease) {
        keep_resolv_conf(state, lease);
    }
    state.lease = lease.clone();
    state.bound_at = LeaseFile::now();
    state.write()
}

/// With `--resolv-conf`, a lease whose DNS differs from the last one's
/// written into the guest's resolv.conf; a failure is logged, and the
/// lease kept all the same.
fn keep_resolv_conf(state: &LeaseFile, lease: &Lease) {
    let (Some(mntns), Some(pid)) = (state.resolv_mntns, state.guest_pid) else { return };
    let Some(text) = resolv_conf::text(lease, &state.ifname) else { return };
    let saved = resolv_conf::saved_beside(&state.path);
    match resolv_conf::write(resolv_conf::Guest { pid, mntns }, &text, &saved, false) {
        Ok(_) => tracing::info!("wrote the lease's DNS into {}", resolv_conf::PATH),
        Err(e) => tracing::warn!("{}", e.context(format!("keeping {} current", resolv_conf::PATH))),
    }
}

/// A new lease's address and routes, through the same steps as an attach.
async fn configure(nl: &Netlink, ifname: &str, lease: &Lease) -> Result<()> {
    let link = nl.require(ifname).await?;
    let default = nl.default_routes(Family::V4).await?.into_iter().next();
    let mut plan = Plan::on_host();
    plan.steps = lease::steps(lease, ifname, link.mtu, default)?;
    let here = netns::current()?;
    apply(&plan, &Target { host: nl, guest: nl, host_ns: here.as_fd(), guest_ns: here.as_fd() }).await
}

/// Removes the lease's address; the kernel takes the routes through it.
async fn unconfigure(nl: &Netlink, ifname: &str, lease: &Lease) -> Result<()> {
    let Some(link) = nl.link(ifname).await? else { return Ok(()) };
    for addr in nl.global_addresses(link.index).await? {
        if address_ip(&addr) == lease.address {
            nl.del_address_msg(addr).await.map_err(|e| nl_error(e, "removing the lease's address"))?;
        }
    }
    Ok(())
}

/// DHCPRELEASE, then the address goes: the server may give it to another.
async fn release(client: &Client, nl: &Netlink, lease: &Lease) {
    let sent = match open_udp(&client.ifname).and_then(tokio::net::UdpSocket::from_std) {
        Ok(udp) => client.release(&udp, lease).await,
        Err(e) => Err(Error::from(e)),
    };
    if let Err(e) = sent {
        tracing::warn!("{}", e.context("releasing the lease"));
    }
    if let Err(e) = unconfigure(nl, &client.ifname, lease).await {
        tracing::warn!("{e}");
    }
}

/// Resolves when the guest is gone: its init exited (the pidfd handed over
/// turns readable), its namespace file is gone or names another namespace,
/// or the interface left.
async fn guest_gone(guest_pid: Option<u64>, netns_file: Option<String>, ifname: String) {
    let pidfd = guest_pid.and_then(|_| {
        // SAFETY: fd 3 was handed over by the parent as the guest's pidfd.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(PIDFD) };
        watch(fd).ok()
    });
    let ours = std::fs::metadata(netns::CURRENT).ok().map(|m| (m.dev(), m.ino()));
    let exited = async {
        match &pidfd {
            Some(fd) => {
                let _ = fd.readable().await;
            }
            None => std::future::pending().await,
        }
    };
    let vanished = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if nix::net::if_::if_nametoindex(ifname.as_str()).is_err() {
                return;
            }
            if let Some(file) = &netns_file {
                let now = std::fs::metadata(file).ok().map(|m| (m.dev(), m.ino()));
                if now != ours {
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = exited => {},
        () = vanished => {},
    }
}
