//! ADD: the reference bridge plugin's attachment as a pipework
//! transaction, in phases: the checks that need no lookup (`validate`),
//! the namespace and plugin found (`Run::resolve`); then the IPAM plugin
//! starts, and while it runs the links are planned, checked and made and
//! what the end needs is read (`plan_links`, `Early`); the addressing
//! follows its answer (`address`), then the record (`attach`'s commit). If anything fails
//! after IPAM allocated, IPAM DEL gives the address back; the links go with
//! the transaction's rollback. The record is the transaction's commit: an
//! ADD that cannot record what it made leaves nothing.

use std::os::fd::AsFd;

use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::BridgePortState;

use super::config::NetConf;
use super::env::{Command, Env};
use super::error::{CniError, CniResult, Code};
use super::ipam::{Exit, Ipam, PendingAdd};
use super::records;
use super::result::{CniOutput, Interface};
use super::steps;
use crate::apply::{Target, Transaction};
use crate::error::Result;
use crate::family::Family;
use crate::intents::{About, Commit};
use crate::records::{Finder, GuestRecord};
use crate::request::GuestRef;
use crate::resolve::guest::Guest;
use crate::sys::netlink::{Link, Netlink};
use crate::sys::sysctl::Sysctl;

pub async fn add(env: &Env, conf: &NetConf) -> CniResult<CniOutput> {
    tracing::debug!("ADD {} {}", env.container_id, env.ifname);
    validate(conf)?;
    let run = Run::resolve(env, conf).await?;
    // IPAM is the slowest part of ADD: it starts before anything else is
    // looked at, and runs while the links are made. Started before the
    // transaction holds signals, which a child inherits.
    let pending = run.ipam.as_ref().map(|ipam| ipam.start_add(env, &conf.raw)).transpose()?;
    tracing::debug!("IPAM started");
    let ours = run.attach(pending).await?;
    Ok(match &conf.prev_result {
        Some(prev) => prev.clone().chain(ours),
        None => ours,
    })
}

/// The refusals that need nothing looked up.
fn validate(conf: &NetConf) -> CniResult<()> {
    if conf.hairpin && conf.promisc {
        return Err(CniError::new(
            Code::InvalidConfig,
            "cannot set hairpin mode and promiscuous mode at the same time",
        ));
    }
    if let (Some(vid), true) = (conf.vlan, conf.is_gateway) {
        let why = format!(
            "a gateway on a VLAN (the reference's interface {}.{vid} for the gateway address) is not implemented",
            conf.bridge
        );
        return Err(CniError::new(Code::UnsupportedField, format!("unsupported field \"vlan\": {vid}"))
            .with_details(why));
    }
    Ok(())
}

/// IPAM's answer, waited for.
fn ipam_answer(pending: Option<PendingAdd>) -> CniResult<Option<(CniOutput, Exit)>> {
    let out = pending.map(|p| p.answer()).transpose();
    tracing::debug!("IPAM answered");
    out
}

/// One ADD, resolved before anything changes: the container's namespace
/// held open (and this one), the IPAM plugin, the host side's name.
struct Run<'a> {
    env: &'a Env,
    conf: &'a NetConf,
    netns: Guest,
    own: std::fs::File,
    ipam: Option<Ipam>,
    host_veth: String,
}

impl<'a> Run<'a> {
    async fn resolve(env: &'a Env, conf: &'a NetConf) -> CniResult<Run<'a>> {
        let netns = open_netns(&env.netns).await?;
        let ipam = conf.ipam.as_deref().map(|name| Ipam::find(name, &env.path)).transpose()?;
        let host_veth = steps::veth_name()?;
        let own = crate::sys::netns::current()?;
        Ok(Run { env, conf, netns, own, ipam, host_veth })
    }

    /// The transaction: the links while IPAM runs, then the addressing its
    /// answer asks for, then the record as its commit. A failure rolls
    /// back what was made, and gives back an address IPAM handed out.
    async fn attach(&self, pending: Option<PendingAdd<'_>>) -> CniResult<CniOutput> {
        let (host, inside, links) = match self.plan_links().await {
            Ok(planned) => planned,
            Err(e) => return Err(self.refused(e, ipam_answer(pending))),
        };
        let target =
            Target { host: &host, guest: &inside, host_ns: self.own.as_fd(), guest_ns: self.netns.netns() };
        let mut tx = Transaction::begin(&target, Some(self.about()?));
        let linked = match tx.apply(&links).await {
            Ok(()) => Early::gather(self, &host, &inside).await,
            Err(e) => Err(e.into()),
        };
        let allocated = ipam_answer(pending);
        let early = match linked {
            Ok(early) => early,
            // The links are rolled back; an address IPAM handed out goes back.
            Err(e) => return Err(self.refused(with_undo(e, tx.roll_back().await), allocated)),
        };
        let (out, exit) = match allocated {
            Ok(Some((out, exit))) => (out, Some(exit)),
            Ok(None) => (CniOutput::default(), None),
            // IPAM's own failure: it allocated nothing.
            Err(e) => return Err(with_undo(e, tx.roll_back().await)),
        };
        let made = self.address(&mut tx, early, out, &host, &inside).await;
        // IPAM's exit, waited for while the addressing was made; a plugin
        // that answered but did not exit with 0 failed after all.
        let confirmed = exit.map(Exit::confirm).transpose();
        let (ours, draft) = match made.and_then(|made| confirmed.map(|_| made)) {
            Ok(made) => made,
            Err(e) => return Err(self.released(with_undo(e, tx.roll_back().await))),
        };
        let recorded = async || draft.commit(self.env, self.conf, &ours);
        tx.commit(recorded).await.map_err(|e| self.released(e.into()))?;
        Ok(ours)
    }

    /// The ADD's intent: the container's record, and the interface in it.
    fn about(&self) -> Result<About> {
        let env = self.env;
        let find = Finder::Cni { container_id: env.container_id.clone(), netns: env.netns.clone() };
        let guest = GuestRecord {
            label: env.container_id.clone(),
            find,
            netns: self.netns.netns_id()?,
            engine: None,
        };
        let commit =
            Commit { key: guest.find.key(), interface: env.ifname.clone(), ifindex: None, address: None };
        let what = format!("CNI ADD of {} in container {}", env.ifname, env.container_id);
        Ok(About { what, guest: Some(guest), commit: Some(commit) })
    }

    /// The connections to both namespaces and the plan of the links,
    /// checked against what is there: the work done while IPAM runs,
    /// before any change.
    async fn plan_links(&self) -> CniResult<(Netlink, Netlink, crate::plan::Plan)> {
        let (env, conf) = (self.env, self.conf);
        let host = Netlink::here()?;
        let inside = Netlink::inside(self.netns.netns())?;
        if inside.link(&env.ifname).await?.is_some() {
            return Err(CniError::new(
                Code::Internal,
                format!("container interface {} already exists", env.ifname),
            ));
        }
        let links = steps::links(env, conf, &self.host_veth, &host).await?;
        Ok((host, inside, links))
    }

    /// What IPAM's answer asks for, applied, and the container's addresses
    /// announced: ADD's own result, and the record to write.
    async fn address(
        &self,
        tx: &mut Transaction<'_, '_>,
        mut early: Early,
        mut out: CniOutput,
        host: &Netlink,
        inside: &Netlink,
    ) -> CniResult<(CniOutput, records::Draft)> {
        let (env, conf) = (self.env, self.conf);
        if self.ipam.is_some() && out.ips.is_empty() {
            return Err(CniError::new(Code::Internal, "IPAM plugin returned missing IP config"));
        }
        let gateways = steps::gateways(conf, &mut out);
        let addressing = steps::addressing(env, conf, &out, &gateways, &early.bridge_addrs, early.v6_off)?;
        tx.apply(&addressing).await?;
        if out.ips.iter().any(|ip| ip.address.is_ipv4()) {
            announce(host, &early.veth, inside, early.arp_notify.take(), &early.ctr).await;
        }
        let ours = result(env, conf, &early, out);
        Ok((ours, early.draft))
    }

    /// A failure with IPAM's answer in hand: once the plugin has exited,
    /// an address it handed out goes back.
    fn refused(&self, e: CniError, allocated: CniResult<Option<(CniOutput, Exit)>>) -> CniError {
        match allocated {
            Ok(Some((_, exit))) => {
                // Its exit status does not matter: DEL releases what there is.
                let _ = exit.confirm();
                self.released(e)
            }
            _ => e,
        }
    }

    /// IPAM DEL after a failed ADD; its own failure is added to the error.
    fn released(&self, e: CniError) -> CniError {
        let Some(ipam) = &self.ipam else { return e };
        match ipam.call(Command::Del, self.env, &self.conf.raw) {
            Ok(()) => e,
            Err(del) => {
                let details = format!("{}; releasing the address failed too: {del}", e.details);
                e.with_details(details.trim_start_matches("; ").to_string())
            }
        }
    }
}

/// What ADD's end needs and IPAM's answer does not change, read while IPAM
/// runs: the links as made, whether the container's IPv6 is off by
/// default (as its new link has it), its `arp_notify` (for an attachment
/// with addresses), the record but for the addresses.
struct Early {
    veth: Link,
    ctr: Link,
    bridge: Link,
    /// The bridge's global addresses, for its gateway addresses.
    bridge_addrs: Vec<AddressMessage>,
    v6_off: bool,
    arp_notify: Option<Sysctl>,
    draft: records::Draft,
}

impl Early {
    async fn gather(run: &Run<'_>, host: &Netlink, inside: &Netlink) -> CniResult<Early> {
        let (env, conf) = (run.env, run.conf);
        let (veth, ctr) = (host.require(&run.host_veth).await?, inside.require(&env.ifname).await?);
        let bridge = host.require(&conf.bridge).await?;
        let bridge_addrs = host.global_addresses(bridge.index).await?;
        // A link just made has its namespace's default (no thread to read
        // that namespace's sysctl); without IPv6 at all, the kernel refuses
        // an IPv6 address itself.
        let v6_off = ctr.ipv6_disabled == Some(true);
        let arp_notify = match conf.ipam {
            Some(_) => Some(Sysctl::conf(Some(run.netns.netns()), Family::V4, &env.ifname, "arp_notify")?),
            None => None,
        };
        let draft = records::Draft::new(env, conf, &run.netns, &veth, &ctr)?;
        Ok(Early { veth, ctr, bridge, bridge_addrs, v6_off, arp_notify, draft })
    }
}

/// The gratuitous ARP of the container's new addresses, once its bridge
/// port forwards (a port seen forwarding already is not asked again): as
/// the reference's, a nudge, not a requirement.
async fn announce(host: &Netlink, port: &Link, inside: &Netlink, notify: Option<Sysctl>, ctr: &Link) {
    let Some(notify) = notify else { return };
    let sent = async {
        if port.port_state != Some(BridgePortState::Forwarding) {
            crate::apply::port_forwards(host, &port.name).await?;
        }
        crate::apply::gratuitous_arp(notify, inside, ctr.clone()).await
    };
    if let Err(e) = sent.await {
        tracing::warn!("{} not announced: {e}", ctr.name);
    }
}

/// Undo steps that failed, added to the error's details.
fn with_undo(e: CniError, undo: Vec<crate::error::Error>) -> CniError {
    let mut details: Vec<String> = [e.details.clone()].into_iter().filter(|d| !d.is_empty()).collect();
    details.extend(undo.iter().map(|u| u.message().to_string()));
    e.with_details(details.join("; "))
}

/// The container's network namespace, held open: a namespace file (nsfs,
/// of the network type), never the one this plugin runs in.
pub async fn open_netns(path: &str) -> CniResult<Guest> {
    let failed = |e: crate::error::Error| {
        let code = if std::path::Path::new(path).exists() {
            Code::InvalidEnvironment
        } else {
            Code::UnknownContainer
        };
        CniError::new(code, format!("failed to open netns \"{path}\"")).with_details(e.message().to_string())
    };
    let guest = crate::resolve::guest::resolve(&GuestRef::Path(path.into())).await.map_err(failed)?;
    guest.refuse_here("the container's interface would be the host's").map_err(failed)?;
    Ok(guest)
}

/// What this plugin made, as the result lists it; the bridge's MAC as read
/// after its port was added, since it may change with its first port.
fn result(env: &Env, conf: &NetConf, early: &Early, out: CniOutput) -> CniOutput {
    let interface = |name: &str, link: &Link, sandbox: &str| Interface {
        name: name.to_string(),
        mac: link.mac.map(|m| m.to_string()).unwrap_or_default(),
        sandbox: sandbox.to_string(),
        mtu: Some(link.mtu),
        ..Interface::default()
    };
    CniOutput {
        interfaces: vec![
            interface(&conf.bridge, &early.bridge, ""),
            interface(&early.veth.name, &early.veth, ""),
            interface(&env.ifname, &early.ctr, &env.netns),
        ],
        dns: if conf.dns.is_empty() { out.dns.clone() } else { conf.dns.clone() },
        ..out
    }
}
