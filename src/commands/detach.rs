//! `pipework detach GUEST [-i IF] [--dry-run]`: undoes attachments, as one
//! plan applied (and rolled back) like an attach's. With a record, each
//! interface's driver plans its teardown (`drivers::teardown`); the default
//! route an attach replaced is put back while the one it set still holds,
//! and once the guest's last recorded interface goes, the rules its
//! `pipework rule GUEST add ...` lines made go too. A link is deleted only
//! if it is still the one made (its recorded identity: see
//! `drivers::made_on_host`); one that took its name since stays, with a
//! message. Without a record it goes by the names pipework gives
//! (`v<IF>pl<PID>`, the veth pair it names). Bridges, VLAN devices and
//! parents are shared and stay. What is already gone is no error: a second
//! detach does nothing and exits 0.
//! An interface a CNI runtime attached is refused: the runtime removes it.

use super::observe::{guest_now, select};
use super::print_or_apply;
use crate::drivers::{self, Teardown};
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::iproute2::{parse_rule, RuleOp};
use crate::plan::{Plan, Side, Step};
use crate::request::GuestRef;
use crate::resolve::guest::{self, Guest};
use crate::state::{Attached, HostNs, Interface, Record, Store};
use crate::sys::netlink::{route_via, Link, Netlink};
use crate::sys::output;
use rtnetlink::packet_route::link::InfoKind;

pub async fn detach(label: &GuestRef, ifname: Option<&str>, dry_run: bool) -> Result<()> {
    let store = Store::from_env();
    let host = Netlink::here()?;
    let records = select(&store, Some(label)).await?.records;
    let by_record = records.iter().any(|r| ifname.is_none_or(|i| r.interface(i).is_some()));
    if !by_record {
        let guest = guest::resolve(label).await?;
        let inside = Netlink::inside(guest.netns())?;
        let plan = by_names(&guest, &host, &inside, ifname.unwrap_or("eth1")).await?;
        return print_or_apply(&plan, dry_run, &host, Some((&inside, guest.netns()))).await;
    }
    refuse_cni(&records, ifname)?;
    for record in &records {
        let chosen: Vec<&Interface> =
            record.interfaces.iter().filter(|i| ifname.is_none_or(|name| i.name == name)).collect();
        if chosen.is_empty() {
            continue;
        }
        let now = guest_now(record).await?;
        undo(record, &chosen, &host, now.as_ref().map(|(g, nl)| (g, nl)), dry_run).await?;
        if !dry_run {
            forget(&store, record, &chosen)?;
        }
    }
    Ok(())
}

/// What is left of a removed container's interfaces on the host (an OVS
/// port, an agent; a veth's host side went with its namespace) undone, as
/// a detach would: for the watch service, which then drops the record.
pub async fn collect(record: &Record, host: &Netlink) -> Result<()> {
    let all: Vec<&Interface> = record.interfaces.iter().collect();
    undo(record, &all, host, None, false).await
}

/// Plans and applies (or prints) the undoing of the `chosen` interfaces of
/// `record`, in the guest `now` if it is there, else on the host alone.
async fn undo(
    record: &Record,
    chosen: &[&Interface],
    host: &Netlink,
    now: Option<(&Guest, &Netlink)>,
    dry_run: bool,
) -> Result<()> {
    let inside = now.map(|(_, nl)| nl);
    let mut plan = match now {
        Some((guest, _)) => Plan::new(&guest.enter),
        None => Plan::on_host(),
    };
    let mut last = Vec::new();
    for iface in chosen {
        let t = Teardown { record, iface, host, inside };
        drivers::teardown(&t, &mut plan, &mut last).await?;
    }
    if let Some(inside) = inside {
        restore_defaults(&mut plan, inside, chosen).await?;
        if chosen.len() == record.interfaces.len() {
            delete_rules(&mut plan, record);
        }
    }
    plan.steps.extend(last);
    plan.steps.extend(forward_removals(record, chosen)?);
    // A plan for a guest that is gone acts on the host only.
    let guest_side = now.map(|(g, nl)| (nl, g.netns()));
    print_or_apply(&plan, dry_run, host, guest_side).await
}

/// A CNI attachment is the container runtime's: it removes it with DEL,
/// which also gives the address back to IPAM and keeps the runtime's own
/// state right. Refused before anything is undone.
fn refuse_cni(records: &[Record], ifname: Option<&str>) -> Result<()> {
    let chosen = records.iter().flat_map(|r| r.interfaces.iter().map(move |i| (r, i)));
    match chosen.filter(|(_, i)| ifname.is_none_or(|name| i.name == name)).find(|(_, i)| i.cni.is_some()) {
        Some((record, Interface { name, cni: Some(cni), .. })) => Err(Error::new(
            Kind::Conflict,
            format!(
                "{name} of {} is a CNI attachment of network {}: the container runtime removes it (CNI DEL)",
                record.guest_name(),
                cni.network
            ),
        )),
        _ => Ok(()),
    }
}

/// For each interface whose attach replaced the guest's default route: the
/// old one back, if the default is still the one that attach set and the
/// old route's link stays.
async fn restore_defaults(plan: &mut Plan, inside: &Netlink, chosen: &[&Interface]) -> Result<()> {
    for iface in chosen {
        let (Some(old), Some(set)) = (&iface.replaced_default, iface.gateway) else { continue };
        if chosen.iter().any(|i| i.name == old.dev) || inside.link(&old.dev).await?.is_none() {
            continue;
        }
        let Some(link) = inside.link(&iface.name).await? else { continue };
        let current = inside.default_routes(Family::of(set)).await?;
        if current.first().is_some_and(|r| route_via(r) == (Some(set), Some(link.index))) {
            plan.push(Step::RestoreDefault { gateway: old.gateway, dev: old.dev.clone() });
        }
    }
    Ok(())
}

/// The rules the guest's recorded `rule add` lines made, newest first; a
/// line pipework does not parse natively (`ip` ran it) is named, not undone.
fn delete_rules(plan: &mut Plan, record: &Record) {
    for line in record.commands.iter().rev() {
        let Some(("rule", args)) = line.split_first().map(|(w, a)| (w.as_str(), a)) else { continue };
        match parse_rule(args) {
            Some(rule) if rule.op == RuleOp::Add => {
                let after_verb: Vec<&str> =
                    args.iter().skip_while(|w| w.starts_with('-')).skip(1).map(String::as_str).collect();
                let text = after_verb.join(" ");
                plan.push(Step::DeleteRule { rule: Box::new(rule), text });
            }
            Some(_) => {}
            None if args.iter().any(|w| w == "add") => output::warn(format!(
                "pipework: not undone (delete it by hand if needed): ip rule {}",
                args.join(" ")
            )),
            None => {}
        }
    }
}

/// For each bridge whose last recorded attachment (of any guest, in this
/// host namespace) is among `chosen`: the FORWARD rules pipework added for
/// it removed, after its ports.
fn forward_removals(record: &Record, chosen: &[&Interface]) -> Result<Vec<Step>> {
    let bridges: Vec<&str> = chosen
        .iter()
        .filter_map(|i| match &i.attached_to {
            Attached::Bridge(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if bridges.is_empty() || HostNs::current()?.id != record.host.id {
        return Ok(Vec::new());
    }
    let store = Store::from_env();
    let listing = store.load_all()?;
    let leaving =
        |r: &Record, i: &Interface| r.key() == record.key() && chosen.iter().any(|c| c.name == i.name);
    let mut steps = Vec::new();
    for (n, bridge) in bridges.iter().enumerate() {
        let on_it = Attached::Bridge(bridge.to_string());
        let stays = listing
            .records
            .iter()
            .filter(|r| r.host.id == record.host.id)
            .any(|r| r.interfaces.iter().any(|i| i.attached_to == on_it && !leaving(r, i)));
        if stays || bridges[..n].contains(bridge) {
            continue;
        }
        if let Some(kept) = store.bridge(record.host.id, bridge)?.filter(|b| !b.accept.is_empty()) {
            steps.push(Step::ForwardRemove { bridge: bridge.to_string(), rules: kept.accept });
        }
    }
    Ok(steps)
}

/// Drops the detached interfaces from the record, and the record with the
/// last of them. The links are gone by now: a record that cannot be
/// updated is an error saying so, and `check` will show it stale.
fn forget(store: &Store, record: &Record, chosen: &[&Interface]) -> Result<()> {
    let names: Vec<&str> = chosen.iter().map(|i| i.name.as_str()).collect();
    store.forget(&record.key(), &names).map(drop).map_err(|e| {
        e.context(format!("detached from {}, but its record was not updated", record.guest_name()))
    })
}

/// Without a record, only what pipework's own names say is its own: the
/// guest's `ctr_if` if it is a veth whose peer is the host's `v<IF>pl<PID>`
/// (the name a bridge attach gives its host side, each end the other's
/// peer), else that host side alone. A link of any other kind, or a veth
/// paired with anything else, has nothing to say pipework made it (Docker's
/// own networks make veths `eth1`): refused, changing nothing. The original
/// had no detach; its users deleted the link by hand, as the message says.
async fn by_names(guest: &Guest, host: &Netlink, inside: &Netlink, ctr_if: &str) -> Result<Plan> {
    let mut plan = Plan::new(&guest.enter);
    let veth = format!("v{ctr_if}pl{}", guest.name_number);
    let host_veth = host.link(&veth).await?.filter(|l| l.kind == Some(InfoKind::Veth));
    let paired = |link: &Link| {
        host_veth.as_ref().is_some_and(|h| h.peer == Some(link.index) && link.peer == Some(h.index))
    };
    match inside.link(ctr_if).await? {
        Some(link) if link.kind == Some(InfoKind::Veth) && paired(&link) => {
            plan.push(Step::DeleteLink { side: Side::Guest, name: ctr_if.into() })
        }
        Some(link) => {
            return Err(Error::new(
                Kind::Conflict,
                format!(
                    "{ctr_if} of {} has no record, and is no veth paired with {veth} ({}): \
                     nothing says pipework made it; delete it by hand if it should go",
                    guest.label,
                    link.kind_word()
                ),
            ))
        }
        None if host_veth.is_some() => plan.push(Step::DeleteLink { side: Side::Host, name: veth }),
        None => {}
    }
    Ok(plan)
}
