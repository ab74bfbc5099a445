//! Applying a plan over netlink. The first failing step stops the run and
//! every step applied so far is undone, newest first.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use rtnetlink::packet_route::link::{BridgePortState, InfoKind};
use rtnetlink::packet_route::route::RouteAttribute;

use crate::error::{Error, Kind, Result};
use crate::plan::{NewLink, Plan, Side, Step, Undo};
use crate::sys::netlink::{errno, nl_error, requests, Netlink};
use crate::sys::sysctl::Sysctl;

/// The two namespaces a plan acts in.
pub struct Target<'a> {
    pub host: &'a Netlink,
    pub guest: &'a Netlink,
    pub host_ns: BorrowedFd<'a>,
    pub guest_ns: BorrowedFd<'a>,
}

impl Target<'_> {
    fn side(&self, side: Side) -> &Netlink {
        match side {
            Side::Host => self.host,
            Side::Guest => self.guest,
        }
    }
}

pub async fn apply(plan: &Plan, target: &Target<'_>) -> Result<()> {
    // Applied or rolled back whole: an interrupt waits the few milliseconds.
    let _held = HeldSignals::hold();
    let total = plan.steps.len();
    let mut undo = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let command = plan.command(step);
        tracing::info!("step {}/{total}: {command}", i + 1);
        injected_pause(i + 1);
        let result = match injected_failure(i + 1) {
            Some(e) => Err(e),
            None => run(step, target).await,
        };
        match result {
            Ok(Some(u)) => undo.push(u),
            Ok(None) => {}
            Err(e) => {
                let failed = rollback(undo, target).await;
                let e = e.context(format!("step {}/{total} failed ({command})", i + 1));
                return Err(e.with_rollback(failed));
            }
        }
    }
    tracing::info!("all {total} steps applied");
    Ok(())
}

/// Test builds fail on purpose before step `PIPEWORK_FAIL_AT`.
#[cfg(feature = "failpoints")]
fn injected_failure(step: usize) -> Option<Error> {
    let at: usize = std::env::var("PIPEWORK_FAIL_AT").ok()?.parse().ok()?;
    (at == step).then(|| Error::new(Kind::Internal, "injected failure (PIPEWORK_FAIL_AT)"))
}

#[cfg(not(feature = "failpoints"))]
fn injected_failure(_step: usize) -> Option<Error> {
    None
}

/// Test builds pause half a second before step `PIPEWORK_PAUSE_AT`, so a
/// test can interrupt a run in the middle.
#[cfg(feature = "failpoints")]
fn injected_pause(step: usize) {
    if std::env::var("PIPEWORK_PAUSE_AT").ok().and_then(|v| v.parse().ok()) == Some(step) {
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(not(feature = "failpoints"))]
fn injected_pause(_step: usize) {}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT held back on this thread (the only
/// one a run has) until dropped; one that arrived meanwhile lands then.
struct HeldSignals(Option<SigSet>);

impl HeldSignals {
    fn hold() -> HeldSignals {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
            set.add(signal);
        }
        let mut old = SigSet::empty();
        let held = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).is_ok();
        HeldSignals(held.then_some(old))
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }
}

/// Undoes the applied steps, newest first, carrying on past a failure;
/// returns the failures.
async fn rollback(undo: Vec<Undo>, target: &Target<'_>) -> Vec<Error> {
    let mut failed = Vec::new();
    for u in undo.into_iter().rev() {
        tracing::info!("rollback: {u}");
        if let Err(e) = revert(&u, target).await {
            tracing::warn!("rollback of '{u}' failed: {e}");
            failed.push(e.context(format!("rollback of '{u}' failed")));
        }
    }
    failed
}

async fn run(step: &Step, t: &Target<'_>) -> Result<Option<Undo>> {
    let nl = t.side(step.side());
    match step {
        Step::CreateBridge { name } => create_bridge(t.host, name).await,
        Step::DeleteStale { name } => {
            let link = t.host.require(name).await?;
            t.host.del_link(link.index).await.map_err(|e| nl_error(e, format!("deleting {name}")))?;
            Ok(None)
        }
        Step::CreateVeth { host, guest, mtu, mac, .. } => {
            t.host.add_veth(host, guest, *mtu, *mac, t.guest_ns).await?;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: host.clone() }))
        }
        Step::SetMaster { link, bridge } => {
            let (link, bridge) = (t.host.require(link).await?, t.host.require(bridge).await?);
            t.host.set_master(link.index, bridge.index).await?;
            Ok(Some(Undo::NoMaster { name: link.name, bridge: bridge.name, bridge_mac: bridge.mac }))
        }
        Step::LinkUp { side, name } => {
            let link = nl.require(name).await?;
            if link.up {
                return Ok(None);
            }
            nl.set_up(link.index).await?;
            Ok(Some(Undo::LinkDown { side: *side, name: name.clone() }))
        }
        Step::MakeBridge { name, mac, mtu, stp, forward_delay } => {
            t.host
                .add_bridge_with(name, *mac, *mtu, *stp, *forward_delay)
                .await
                .map_err(|e| nl_error(e, format!("creating bridge {name}")))?;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: name.clone() }))
        }
        Step::CopyAddress { to, addr, .. } => {
            let link = t.host.require(to).await?;
            let added = t.host.add_address_msg((**addr).clone(), link.index).await?;
            Ok(Some(Undo::DeleteAddress { addr: Box::new(added) }))
        }
        Step::DeleteAddress { dev, addr, text } => {
            t.host
                .del_address_msg((**addr).clone())
                .await
                .map_err(|e| nl_error(e, format!("deleting {text}")))?;
            Ok(Some(Undo::AddAddress { dev: dev.clone(), addr: addr.clone() }))
        }
        Step::MoveRoute { route, to, .. } => {
            let link = t.host.require(to).await?;
            let mut moved = (**route).clone();
            for a in &mut moved.attributes {
                if let RouteAttribute::Oif(i) = a {
                    *i = link.index;
                }
            }
            t.host.replace_route(moved).await?;
            Ok(Some(Undo::ReplaceRoute { route: route.clone() }))
        }
        Step::AddAddress { dev, net } => {
            nl.add_address(nl.require(dev).await?.index, net.ip(), net.prefix()).await?;
            Ok(None)
        }
        Step::DeleteDefault { route, .. } => {
            nl.del_route((**route).clone()).await?;
            Ok(Some(Undo::RestoreRoute { route: route.clone() }))
        }
        Step::GatewayRoute { gateway, dev } => {
            if nl.reachable(*gateway).await? {
                return Ok(None);
            }
            let route = nl.add_host_route(*gateway, nl.require(dev).await?.index).await?;
            Ok(Some(Undo::DeleteRoute { route: Box::new(route) }))
        }
        Step::ReplaceDefault { gateway, dev } => {
            let route = nl.replace_default(*gateway, nl.require(dev).await?.index).await?;
            Ok(Some(Undo::DeleteRoute { route: Box::new(route) }))
        }
        Step::CreateLink { name, kind } => {
            let mut parent = 0;
            if let Some(name) = kind.parent() {
                parent = t.host.require(name).await?.index;
            }
            let msg = match kind {
                NewLink::Vlan { vid, mtu, .. } => requests::vlan(name, parent, *vid, *mtu),
                NewLink::Macvlan { mtu, .. } => requests::macvlan(name, parent, *mtu),
                NewLink::Dummy => requests::dummy(name),
                NewLink::Ipoib { pkey, .. } => requests::ipoib(name, parent, *pkey),
            };
            t.host.add_link(msg).await.map_err(|e| match errno(&e) {
                Some(libc::EOPNOTSUPP) => Error::new(Kind::Unsupported, kind.missing()),
                Some(libc::EEXIST) => {
                    Error::new(Kind::Conflict, format!("{name} already exists on the host"))
                }
                _ => nl_error(e, format!("creating {name}")),
            })?;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: name.clone() }))
        }
        Step::MoveToGuest { name, to, give_back, .. } => {
            let link = t.host.require(name).await?;
            t.host.move_to(link.index, t.guest_ns, to).await?;
            Ok(Some(match give_back {
                true => Undo::MoveBack { guest_name: to.clone(), host_name: name.clone(), was_up: link.up },
                false => Undo::DeleteLink { side: Side::Guest, name: to.clone() },
            }))
        }
        Step::SetMac { dev, mac } => {
            let link = t.guest.require(dev).await?;
            t.guest.set_address(link.index, *mac).await?;
            Ok(link.mac.map(|old| Undo::SetMac { side: Side::Guest, name: dev.clone(), mac: old }))
        }
        Step::Ipv6 { side, dev, enable } => {
            let ns = match side {
                Side::Host => None,
                Side::Guest => Some(t.guest_ns),
            };
            Sysctl::open(ns, &format!("net.ipv6.conf.{dev}.disable_ipv6"))?.write(if *enable {
                "0"
            } else {
                "1"
            })?;
            Ok(None)
        }
        Step::Announce { dev, ip, port } => {
            // Like the original's `arping ... || true`: a nudge, not a requirement.
            if let Err(e) = announce(t, dev, port.as_deref()).await {
                tracing::warn!("{ip} not announced: {e}");
            }
            Ok(None)
        }
    }
}

/// A new bridge port forwards only once the kernel's linkwatch has seen its
/// carrier, a moment after the link comes up; a frame sent before that is
/// dropped. Waiting longer than this means STP holds the port (forward delay),
/// which a gratuitous ARP cannot outwait either.
const PORT_WAIT: Duration = Duration::from_millis(500);

/// Waits for the bridge port to forward, then has the kernel send the
/// gratuitous ARP: `arp_notify` on, the MAC set to itself, `arp_notify` back.
async fn announce(t: &Target<'_>, dev: &str, port: Option<&str>) -> Result<()> {
    if let Some(port) = port {
        let deadline = Instant::now() + PORT_WAIT;
        let mut pause = Duration::from_micros(50);
        while t.host.require(port).await?.port_state != Some(BridgePortState::Forwarding) {
            if Instant::now() > deadline {
                return Err(Error::new(Kind::Timeout, format!("bridge port {port} is not forwarding")));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        tracing::debug!("bridge port {port} forwards");
    }
    let link = t.guest.require(dev).await?;
    let mac = link.mac.ok_or_else(|| Error::new(Kind::NotFound, format!("{dev} has no hardware address")))?;
    // With arp_notify, the kernel answers a (same) MAC being set with a
    // gratuitous ARP for the interface's addresses; no packet socket, whose
    // close would wait for an RCU grace period.
    let mut notify = Sysctl::open(Some(t.guest_ns), &format!("net.ipv4.conf.{dev}.arp_notify"))?;
    let previous = notify.read()?;
    notify.write("1")?;
    let sent = t.guest.set_address(link.index, mac).await;
    notify.write(&previous)?;
    sent
}

/// Creates and brings up a bridge. If another run created it first, the
/// bridge is reused and this run will not delete it.
async fn create_bridge(host: &Netlink, name: &str) -> Result<Option<Undo>> {
    let created = match host.add_bridge(name).await {
        Ok(()) => true,
        Err(e) if errno(&e) == Some(libc::EEXIST) => false,
        Err(e) => return Err(nl_error(e, format!("creating bridge {name}"))),
    };
    let bridge = host.require(name).await?;
    if !bridge.is_bridge() {
        return Err(Error::new(Kind::Conflict, format!("{name} appeared meanwhile and is not a bridge")));
    }
    if created {
        host.set_up(bridge.index).await?;
    }
    Ok(created.then(|| Undo::DeleteBridgeIfUnused { name: name.to_string() }))
}

async fn revert(undo: &Undo, t: &Target<'_>) -> Result<()> {
    match undo {
        Undo::DeleteLink { side, name } => {
            let nl = t.side(*side);
            if let Some(link) = nl.link(name).await? {
                nl.del_link(link.index).await.map_err(|e| nl_error(e, format!("deleting {name}")))?;
            }
        }
        Undo::DeleteBridgeIfUnused { name } => {
            let Some(bridge) = t.host.link(name).await? else {
                return Ok(());
            };
            let in_use = t.host.links().await?.iter().any(|l| l.master == Some(bridge.index));
            if bridge.kind == Some(InfoKind::Bridge) && !in_use {
                t.host.del_link(bridge.index).await.map_err(|e| nl_error(e, format!("deleting {name}")))?;
            }
        }
        Undo::RestoreRoute { route } => t.guest.restore_route((**route).clone()).await?,
        Undo::DeleteRoute { route } => t.guest.del_route((**route).clone()).await?,
        Undo::NoMaster { name, bridge, bridge_mac } => {
            t.host.set_nomaster(t.host.require(name).await?.index).await?;
            let now = t.host.require(bridge).await?;
            if let Some(mac) = bridge_mac.filter(|m| now.mac != Some(*m)) {
                t.host.set_address(now.index, mac).await?;
            }
        }
        Undo::LinkDown { side, name } => {
            let nl = t.side(*side);
            if let Some(link) = nl.link(name).await? {
                nl.set_down(link.index).await?;
            }
        }
        Undo::AddAddress { dev, addr } => {
            t.host.add_address_msg((**addr).clone(), t.host.require(dev).await?.index).await?;
        }
        // Gone already is fine: a link going down takes its IPv6 addresses.
        Undo::DeleteAddress { addr } => match t.host.del_address_msg((**addr).clone()).await {
            Err(e) if !matches!(errno(&e), Some(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ENODEV)) => {
                return Err(nl_error(e, "deleting the address added"));
            }
            _ => {}
        },
        Undo::MoveBack { guest_name, host_name, was_up } => {
            let link = t.guest.require(guest_name).await?;
            t.guest.move_to(link.index, t.host_ns, host_name).await?;
            if *was_up {
                t.host.set_up(t.host.require(host_name).await?.index).await?;
            }
        }
        Undo::SetMac { side, name, mac } => {
            let nl = t.side(*side);
            nl.set_address(nl.require(name).await?.index, *mac).await?;
        }
        Undo::ReplaceRoute { route } => t.host.replace_route((**route).clone()).await?,
    }
    Ok(())
}
