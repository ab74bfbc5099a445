//! The record of an attach, written once its plan is wholly applied: what
//! its driver says it made, the request, and the kernel for what the
//! kernel chose. The way back, the attach that makes a recorded interface
//! again, is `drivers::replay`.

use rtnetlink::packet_route::route::RouteMessage;

use crate::drivers::addressing::Added;
use crate::drivers::{dhcp::dhcp_record, macvlan, Planned};
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::plan::Step;
use crate::records::{DefaultRoute, GuestRecord, HostNs, Interface, Record, Store};
use crate::request::{Addressing, Attach};
use crate::resolve::guest::Guest;
use crate::sys::netlink::{route_via, Netlink};

/// Where a record's write (and its two fsyncs) runs.
#[derive(Clone, Copy)]
pub enum Writer {
    /// On this thread: a command run has nothing else to do meanwhile, and a
    /// thread would cost it more than the wait.
    Inline,
    /// On a blocking thread: the watch service has other containers' work
    /// to do while the disk syncs.
    OffThread,
}

/// Records the interface a wholly applied plan made in `guest`, beside
/// the guest's other interfaces.
pub async fn attached(
    planned: &Planned,
    req: &Attach,
    guest: &Guest,
    (host_nl, inside): (&Netlink, &Netlink),
    writer: Writer,
) -> Result<()> {
    let iface = describe(planned, req, host_nl, inside).await?;
    let host = HostNs::current()?;
    let record_guest = GuestRecord {
        label: guest.label.clone(),
        find: guest.find.clone(),
        netns: guest.netns_id()?,
        engine: guest.engine.get().await,
    };
    let key = guest.find.key();
    let write = move || {
        Store::from_env().update(&key, |slot| {
            let record = slot.get_or_insert_with(|| Record::new(record_guest.clone(), host.clone()));
            // A restarted container has a new namespace; the rest stays.
            record.guest.netns = record_guest.netns;
            if record_guest.engine.is_some() {
                record.guest.engine = record_guest.engine;
            }
            record.host = host;
            record.put_interface(iface);
        })
    };
    in_writer(writer, write)
        .await
        .map_err(|e| e.context(format!("recording what was made in {}", guest.label)))
}

/// The interface as the driver says its plan made it; MAC, MTU and index
/// read back, and a veth's host side as the host has it.
async fn describe(planned: &Planned, req: &Attach, host: &Netlink, inside: &Netlink) -> Result<Interface> {
    let made = planned.made.clone();
    let (macvlan_mode, shim) = macvlan::recorded(made.how, made.host_side.as_deref(), req);
    let host_link = made.host_link(host).await?;
    let link = inside.require(&made.name).await?;
    let name = made.name;
    let mac = link
        .mac
        .ok_or_else(|| Error::new(Kind::Internal, format!("{name} has no hardware address to record")))?;
    let (addresses, gateway, dhcp) = match &req.addr {
        Addressing::Static { net, gateway } => {
            let more = req.more_addresses.iter().map(|(net, _)| *net);
            (std::iter::once(*net).chain(more).collect(), *gateway, None)
        }
        Addressing::None => (Vec::new(), None, None),
        Addressing::Dhcp(d) => (Vec::new(), None, Some(dhcp_record(&planned.plan, d))),
    };
    let replaced_default = match &made.replaced_default {
        Some(route) => default_route(route, inside).await?,
        None => None,
    };
    let mut iface = Interface {
        host_side: made.host_side,
        attached_to: made.attached_to,
        addresses,
        gateway,
        vlan: made.vlan,
        vlan_filtering: req.vlan_filtering,
        no_firewall: req.no_firewall,
        dhcp,
        replaced_default,
        host_link,
        macvlan_mode,
        shim,
        ..Interface::new(name, link.index, made.how, mac, link.mtu)
    };
    // A replay's further gateways, with the default routes they replaced.
    for gw in req.more_addresses.iter().filter_map(|(_, gw)| *gw) {
        let replaced = planned.plan.steps.iter().find_map(|step| match step {
            Step::DeleteDefault { family, route } if *family == Family::of(gw) => Some(route),
            _ => None,
        });
        let replaced = match replaced {
            Some(route) => default_route(route, inside).await?,
            None => None,
        };
        iface.add_gateway(gw, replaced);
    }
    Ok(iface)
}

/// Records an address (and gateway) a wholly applied plan added to the
/// guest's interface `name`, beside what it had.
pub async fn added(added: &Added, name: &str, guest: &Guest, inside: &Netlink, writer: Writer) -> Result<()> {
    let replaced = match &added.replaced_default {
        Some(route) => default_route(route, inside).await?,
        None => None,
    };
    let (net, gateway, name) = (added.net, added.gateway, name.to_string());
    let key = guest.find.key();
    let label = guest.label.clone();
    let write = move || {
        Store::from_env().update(&key, |slot| {
            let Some(iface) = slot.as_mut().and_then(|r| r.interfaces.iter_mut().find(|i| i.name == name))
            else {
                return Err(Error::new(Kind::Conflict, format!("{name} of {label} was detached meanwhile")));
            };
            iface.addresses.extend(net);
            if let Some(gw) = gateway {
                iface.add_gateway(gw, replaced);
            }
            Ok(())
        })?
    };
    in_writer(writer, write)
        .await
        .map_err(|e| e.context(format!("recording the address added in {}", guest.label)))
}

/// Runs a record's write where `writer` says.
async fn in_writer(writer: Writer, write: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    match writer {
        Writer::Inline => write(),
        Writer::OffThread => tokio::task::spawn_blocking(write)
            .await
            .unwrap_or_else(|e| Err(Error::new(Kind::Internal, format!("record writer: {e}")))),
    }
}

/// The default route an attach deleted, as a detach can put it back: via
/// a gateway, out of a link the guest still has. Others are not kept.
async fn default_route(route: &RouteMessage, inside: &Netlink) -> Result<Option<DefaultRoute>> {
    let (gateway, oif) = route_via(route);
    let (Some(gateway), Some(index)) = (gateway, oif) else { return Ok(None) };
    Ok(inside.link_by_index(index).await?.map(|link| DefaultRoute { gateway, dev: link.name }))
}
