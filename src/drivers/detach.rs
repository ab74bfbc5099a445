//! The plans of `detach`. With a record, each interface's kind plans its
//! teardown (`drivers::teardown`); the default route an attach replaced is
//! put back while the one it set still holds, and once the guest's last
//! recorded interface goes, the rules its `pipework rule GUEST add ...`
//! lines made go too. A link is deleted only if it is still the one made
//! (its recorded identity: see `drivers::made_on_host`); one that took its
//! name since stays, with a message. Without a record it goes by the names
//! pipework gives (`v<IF>pl<PID>`, the veth pair it names). Bridges, VLAN
//! devices and parents are shared and stay.

use rtnetlink::packet_route::link::InfoKind;

use super::veth_port::default_name;
use super::{teardown, Teardown};
use crate::dhcp::resolv_conf;
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::iproute2::{parse_rule, RuleOp};
use crate::plan::{Plan, Side, Step};
use crate::records::{Attached, HostNs, Interface, Record, Store};
use crate::resolve::guest::Guest;
use crate::sys::netlink::{route_via, Link, Netlink};
use crate::sys::output;

/// The undoing of the `chosen` interfaces of `record`, in the guest `now`
/// if it is there, else on the host alone.
pub async fn undo(
    record: &Record,
    chosen: &[&Interface],
    host: &Netlink,
    now: Option<(&Guest, &Netlink)>,
) -> Result<Plan> {
    let inside = now.map(|(_, inside)| inside);
    let mut plan = match now {
        Some((guest, _)) => Plan::new(&guest.enter),
        None => Plan::on_host(),
    };
    let mut last = Vec::new();
    let mut resolv = Vec::new();
    for iface in chosen {
        let t = Teardown { record, iface, leaving: chosen, host, inside };
        teardown(&t, &mut plan, &mut last).await?;
        if let Some(saved) = iface.dhcp.as_ref().and_then(|d| d.resolv_conf.as_ref()) {
            let guest = now.and_then(|(g, _)| g.process()).and_then(resolv_conf::guest_of);
            resolv.push(Step::RestoreResolvConf { guest, saved: saved.into() });
        }
    }
    // Once the agents are stopped (they would write the lease's DNS
    // again), newest first: the first attach's copy is the file as it was.
    plan.steps.extend(resolv.into_iter().rev());
    if let Some(inside) = inside {
        restore_defaults(&mut plan, inside, chosen).await?;
        if chosen.len() == record.interfaces.len() {
            delete_rules(&mut plan, record);
        }
    }
    plan.steps.extend(last);
    plan.steps.extend(forward_removals(record, chosen)?);
    Ok(plan)
}

/// For each gateway (each family's) that replaced the guest's default
/// route: the old one back, if the default is still the one set and the
/// old route's link stays.
async fn restore_defaults(plan: &mut Plan, inside: &Netlink, chosen: &[&Interface]) -> Result<()> {
    let replaced = chosen.iter().flat_map(|i| i.gateways().into_iter().map(move |(gw, old)| (*i, gw, old)));
    for (iface, set, old) in replaced {
        let Some(old) = old else { continue };
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
            None if args.iter().any(|w| w == "add") => output::warning(format!(
                "not undone (delete it by hand if needed): ip rule {}",
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

/// Without a record, only what pipework's own names say is its own: the
/// guest's `ctr_if` if it is a veth whose peer is the host's `v<IF>pl<PID>`
/// (the name a bridge attach gives its host side, each end the other's
/// peer), else that host side alone. A link of any other kind, or a veth
/// paired with anything else, has nothing to say pipework made it (Docker's
/// own networks make veths `eth1`): refused, changing nothing. The original
/// had no detach; its users deleted the link by hand, as the message says.
pub async fn by_names(guest: &Guest, host: &Netlink, inside: &Netlink, ctr_if: &str) -> Result<Plan> {
    let mut plan = Plan::new(&guest.enter);
    let veth = default_name(ctr_if, guest.name_number);
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
