//! Applying a plan over netlink. The first failing step stops the run and
//! every step applied so far is undone, newest first.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use rtnetlink::packet_route::link::{BridgePortState, InfoKind};
use rtnetlink::packet_route::route::RouteAttribute;

use crate::error::{Error, Result};
use crate::netlink::{address_ip, errno, nl_error, requests, Link, Netlink};
use crate::plan::{NewLink, Plan, Side, Step, Undo};
use crate::request::Family;
use crate::sysctl::Sysctl;

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
    Transaction::begin(target).apply(plan).await
}

/// Plans applied one after another and undone together, newest first, on
/// the first failure: a run whose later steps wait for something slow (a
/// CNI plugin's IPAM) applies the rest meanwhile. Signals are held from
/// begin to end: an interrupt waits the few milliseconds.
pub struct Transaction<'t, 'a> {
    target: &'t Target<'a>,
    undo: Vec<Undo>,
    links: GuestLinks,
    /// Steps applied so far; failpoints count across plans.
    done: usize,
    _held: HeldSignals,
}

impl<'t, 'a> Transaction<'t, 'a> {
    pub fn begin(target: &'t Target<'a>) -> Self {
        let _held = HeldSignals::hold();
        Transaction { target, undo: Vec::new(), links: GuestLinks::default(), done: 0, _held }
    }

    /// Applies `plan`; if a step fails, everything this transaction applied
    /// is undone.
    pub async fn apply(&mut self, plan: &Plan) -> Result<()> {
        let total = self.done + plan.steps.len();
        for step in &plan.steps {
            let n = self.done + 1;
            let command = plan.command(step);
            tracing::info!("step {n}/{total}: {command}");
            injected_pause(n);
            let result = match injected_failure(n) {
                Some(e) => Err(e),
                None => run(step, self.target, &mut self.links).await,
            };
            match result {
                Ok(Some(u)) => self.undo.push(u),
                Ok(None) => {}
                Err(e) => {
                    rollback(std::mem::take(&mut self.undo), self.target).await;
                    return Err(e.context(format!("step {n}/{total} failed ({command})")));
                }
            }
            self.done = n;
        }
        tracing::info!("all {total} steps applied");
        Ok(())
    }

    /// Undoes what was applied, for a failure between plans.
    pub async fn roll_back(self) {
        rollback(self.undo, self.target).await;
    }
}

/// Test builds fail on purpose before step `PIPEWORK_FAIL_AT`.
#[cfg(feature = "failpoints")]
pub(crate) fn injected_failure(step: usize) -> Option<Error> {
    let at: usize = std::env::var("PIPEWORK_FAIL_AT").ok()?.parse().ok()?;
    (at == step).then(|| Error::new("injected failure (PIPEWORK_FAIL_AT)"))
}

#[cfg(not(feature = "failpoints"))]
pub(crate) fn injected_failure(_step: usize) -> Option<Error> {
    None
}

/// Test builds pause half a second before step `PIPEWORK_PAUSE_AT`, so a
/// test can interrupt a run in the middle.
#[cfg(feature = "failpoints")]
pub(crate) fn injected_pause(step: usize) {
    if std::env::var("PIPEWORK_PAUSE_AT").ok().and_then(|v| v.parse().ok()) == Some(step) {
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(not(feature = "failpoints"))]
pub(crate) fn injected_pause(_step: usize) {}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT held back on this thread (the only
/// one a run has) until dropped; one that arrived meanwhile lands then.
/// Threads started meanwhile inherit the mask (`loop --container`).
pub(crate) struct HeldSignals(Option<SigSet>);

impl HeldSignals {
    pub(crate) fn hold() -> HeldSignals {
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

async fn rollback(undo: Vec<Undo>, target: &Target<'_>) {
    for u in undo.into_iter().rev() {
        tracing::info!("rollback: {u}");
        if let Err(e) = revert(&u, target).await {
            crate::output::warn(e.context(format!("rollback of '{u}' failed")));
        }
    }
}

/// Links this run made in or moved into the guest, by the name the plan
/// gives them, and the ifindex each got: learned right after the create or
/// move, then used by every later step and undo. A guest with CAP_NET_ADMIN
/// in its own namespace may rename a link and plant another under its name.
#[derive(Default)]
struct GuestLinks(HashMap<String, u32>);

impl GuestLinks {
    /// Notes what `name` is in the guest right after this run put it there.
    async fn learn(&mut self, guest: &Netlink, name: &str) -> Result<Link> {
        let link = guest.require(name).await?;
        self.0.insert(name.to_string(), link.index);
        Ok(link)
    }

    /// The link the plan calls `name` on `side`, by its learned ifindex
    /// whatever it is called now; other links (the host's) by name.
    async fn get(&self, t: &Target<'_>, side: Side, name: &str) -> Result<Link> {
        match (side, self.0.get(name)) {
            (Side::Guest, Some(&index)) => {
                t.guest.link_by_index(index).await?.ok_or_else(|| {
                    Error::new(format!("link {name} (ifindex {index}) is gone from the guest"))
                })
            }
            _ => t.side(side).require(name).await,
        }
    }
}

async fn run(step: &Step, t: &Target<'_>, links: &mut GuestLinks) -> Result<Option<Undo>> {
    let nl = t.side(step.side());
    let side = step.side();
    match step {
        Step::CreateBridge { name, mtu } => create_bridge(t.host, name, *mtu).await,
        Step::Promisc { name } => {
            t.host.set_promisc(t.host.require(name).await?.index).await?;
            Ok(None)
        }
        Step::PinMac { name } => {
            let link = t.host.require(name).await?;
            if let Some(mac) = link.mac {
                t.host.set_address(link.index, mac).await?;
            }
            Ok(None)
        }
        Step::Hairpin { port } => {
            t.host.set_hairpin(t.host.require(port).await?.index).await?;
            Ok(None)
        }
        Step::Sysctl { side, family, dev, key, value } => {
            let (ns, dev) = match side {
                Side::Host => (None, dev.clone()),
                Side::Guest => (Some(t.guest_ns), links.get(t, Side::Guest, dev).await?.name),
            };
            Sysctl::conf(ns, *family, &dev, key)?.write(value)?;
            Ok(None)
        }
        Step::HostAddress { dev, net } => {
            let link = t.host.require(dev).await?;
            let find = || async {
                let present = t.host.global_addresses(link.index).await?;
                Ok::<_, Error>(
                    present
                        .into_iter()
                        .find(|a| address_ip(a) == net.ip() && a.header.prefix_len == net.prefix()),
                )
            };
            if find().await?.is_some() {
                return Ok(None);
            }
            // A concurrent run may add the same address first: theirs then.
            if let Err(e) = t.host.add_address(link.index, net.ip(), net.prefix()).await {
                return match find().await? {
                    Some(_) => Ok(None),
                    None => Err(e),
                };
            }
            Ok(find().await?.map(|addr| Undo::DeleteAddress { addr: Box::new(addr) }))
        }
        Step::AddRoute { dst, gw, dev } => {
            // A route already there wins, as in the reference plugins: a
            // second interface on the same network finds the default route
            // of the first.
            match t.guest.add_route(*dst, *gw, links.get(t, side, dev).await?.index).await {
                Err(e) if errno(&e) != Some(libc::EEXIST) => {
                    Err(nl_error(e, format!("adding route to {dst}")))
                }
                _ => Ok(None),
            }
        }
        Step::DeleteStale { name } => {
            let link = t.host.require(name).await?;
            t.host.del_link(link.index).await.map_err(|e| nl_error(e, format!("deleting {name}")))?;
            Ok(None)
        }
        Step::CreateVeth { host, guest, mtu, mac, .. } => {
            t.host.add_veth(host, guest, *mtu, *mac, t.guest_ns).await?;
            let index = t.host.require(host).await?.index;
            links.learn(t.guest, guest).await?;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: host.clone(), index }))
        }
        Step::SetMaster { link, bridge } => {
            let (link, bridge) = (t.host.require(link).await?, t.host.require(bridge).await?);
            t.host.set_master(link.index, bridge.index).await?;
            Ok(Some(Undo::NoMaster { name: link.name, bridge: bridge.name, bridge_mac: bridge.mac }))
        }
        Step::LinkUp { side, name } => {
            let link = links.get(t, *side, name).await?;
            if link.up {
                return Ok(None);
            }
            nl.set_up(link.index).await?;
            Ok(Some(Undo::LinkDown { side: *side, name: name.clone(), index: link.index }))
        }
        Step::MakeBridge { name, mac, mtu, stp, forward_delay } => {
            t.host
                .add_bridge_with(name, *mac, *mtu, *stp, *forward_delay)
                .await
                .map_err(|e| nl_error(e, format!("creating bridge {name}")))?;
            let index = t.host.require(name).await?.index;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: name.clone(), index }))
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
            nl.add_address(links.get(t, side, dev).await?.index, net.ip(), net.prefix()).await?;
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
            let route = nl.add_host_route(*gateway, links.get(t, side, dev).await?.index).await?;
            Ok(Some(Undo::DeleteRoute { route: Box::new(route) }))
        }
        Step::ReplaceDefault { gateway, dev } => {
            let route = nl.replace_default(*gateway, links.get(t, side, dev).await?.index).await?;
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
                Some(libc::EOPNOTSUPP) => Error::new(kind.missing()),
                Some(libc::EEXIST) => Error::new(format!("{name} already exists on the host")),
                _ => nl_error(e, format!("creating {name}")),
            })?;
            let index = t.host.require(name).await?.index;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: name.clone(), index }))
        }
        Step::MoveToGuest { name, to, give_back, .. } => {
            let link = t.host.require(name).await?;
            t.host.move_to(link.index, t.guest_ns, to).await?;
            let moved = links.learn(t.guest, to).await?;
            Ok(Some(match give_back {
                true => Undo::MoveBack {
                    guest_name: to.clone(),
                    guest_index: moved.index,
                    host_name: name.clone(),
                    was_up: link.up,
                },
                false => Undo::DeleteLink { side: Side::Guest, name: to.clone(), index: moved.index },
            }))
        }
        Step::SetMac { dev, mac } => {
            let link = links.get(t, side, dev).await?;
            t.guest.set_address(link.index, *mac).await?;
            Ok(link.mac.map(|old| Undo::SetMac { side, name: dev.clone(), index: link.index, mac: old }))
        }
        Step::Ipv6 { side, dev, enable } => {
            // A sysctl is reached by name only: the link's name now.
            let (ns, dev) = match side {
                Side::Host => (None, dev.clone()),
                Side::Guest => (Some(t.guest_ns), links.get(t, Side::Guest, dev).await?.name),
            };
            Sysctl::conf(ns, Family::V6, &dev, "disable_ipv6")?.write(if *enable { "0" } else { "1" })?;
            Ok(None)
        }
        Step::Announce { dev, ip, port } => {
            // Like the original's `arping ... || true`: a nudge, not a requirement.
            if let Err(e) = announce(t, links.get(t, side, dev).await?, port.as_deref()).await {
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
async fn announce(t: &Target<'_>, link: Link, port: Option<&str>) -> Result<()> {
    if let Some(port) = port {
        let deadline = Instant::now() + PORT_WAIT;
        let mut pause = Duration::from_micros(50);
        while t.host.require(port).await?.port_state != Some(BridgePortState::Forwarding) {
            if Instant::now() > deadline {
                return Err(Error::new(format!("bridge port {port} is not forwarding")));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        tracing::debug!("bridge port {port} forwards");
    }
    let mac = link.mac.ok_or_else(|| Error::new(format!("{} has no hardware address", link.name)))?;
    // With arp_notify, the kernel answers a (same) MAC being set with a
    // gratuitous ARP for the interface's addresses; no packet socket, whose
    // close would wait for an RCU grace period.
    let mut notify = Sysctl::conf(Some(t.guest_ns), Family::V4, &link.name, "arp_notify")?;
    let previous = notify.read()?;
    notify.write("1")?;
    let sent = t.guest.set_address(link.index, mac).await;
    notify.write(&previous)?;
    sent
}

/// Creates and brings up a bridge. If another run created it first, the
/// bridge is reused and this run will not delete it.
async fn create_bridge(host: &Netlink, name: &str, mtu: Option<u32>) -> Result<Option<Undo>> {
    let created = match host.add_bridge(name, mtu).await {
        Ok(()) => true,
        Err(e) if errno(&e) == Some(libc::EEXIST) => false,
        Err(e) => return Err(nl_error(e, format!("creating bridge {name}"))),
    };
    let bridge = host.require(name).await?;
    if !bridge.is_bridge() {
        return Err(Error::new(format!("{name} appeared meanwhile and is not a bridge")));
    }
    if created {
        host.set_up(bridge.index).await?;
    }
    Ok(created.then(|| Undo::DeleteBridgeIfUnused { name: name.to_string() }))
}

async fn revert(undo: &Undo, t: &Target<'_>) -> Result<()> {
    match undo {
        Undo::DeleteLink { side, name, index } => {
            let nl = t.side(*side);
            if nl.link_by_index(*index).await?.is_some() {
                nl.del_link(*index).await.map_err(|e| nl_error(e, format!("deleting {name}")))?;
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
        Undo::LinkDown { side, index, .. } => {
            let nl = t.side(*side);
            if nl.link_by_index(*index).await?.is_some() {
                nl.set_down(*index).await?;
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
        Undo::MoveBack { guest_name, guest_index, host_name, was_up } => {
            if t.guest.link_by_index(*guest_index).await?.is_none() {
                return Err(Error::new(format!(
                    "{guest_name} (ifindex {guest_index}) is gone from the guest"
                )));
            }
            t.guest.move_to(*guest_index, t.host_ns, host_name).await?;
            if *was_up {
                t.host.set_up(t.host.require(host_name).await?.index).await?;
            }
        }
        Undo::SetMac { side, index, mac, .. } => t.side(*side).set_address(*index, *mac).await?,
        Undo::ReplaceRoute { route } => t.host.replace_route((**route).clone()).await?,
    }
    Ok(())
}
