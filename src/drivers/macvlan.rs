//! Physical host interfaces: a macvlan child (`ph<pid><if>`, with the
//! parent's MTU, in bridge mode unless `--macvlan-mode` says otherwise),
//! optionally on a VLAN `<if>.<vid>`, moved into the guest.
//!
//! The original made these links on the host under their final names, then
//! moved and renamed them in two steps; here the move and the rename are one
//! request, and a name taken on the host is refused before anything changes.
//!
//! `--host-access`: a macvlan's parent never hands its children's frames
//! to the host's own stack, so the host cannot reach its guests. A macvlan
//! of the host's own on the same link (the shim, `pwh-<link>`, bridge mode,
//! no address: the host's stay where they are) is a bridge-mode sibling of
//! the guest's, and a host route to each guest address through it sends
//! the host's traffic there. Only bridge-mode siblings talk to each other:
//! in vepa mode frames go out to the switch, private mode forbids it, and
//! passthru allows one child only; so host access needs bridge mode.

use futures::future::BoxFuture;
use md5::{Digest, Md5};
use rtnetlink::packet_route::link::InfoKind;

use super::{moved_in, refuse_taken, Context, Driver, Made, Planned, Teardown};
use crate::error::{Error, Kind, Result};
use crate::plan::{NewLink, Plan, Side, Step};
use crate::records::{Attached, How, Interface, Record, Store};
use crate::request::{check_ifname, Addressing, Attach, MacvlanMode, Tag, IFNAME_MAX};
use crate::sys::netlink::Link;

pub struct Macvlan {
    pub parent: Link,
}

/// Refuses `--macvlan-mode` and `--host-access` where no macvlan is made.
pub fn refuse_without_macvlan(req: &Attach, macvlan: bool) -> Result<()> {
    let usage = |flag: &str| {
        Error::new(
            Kind::Usage,
            format!("{flag} applies to a macvlan: a physical HOSTIF without --direct-phys"),
        )
    };
    match () {
        _ if macvlan => Ok(()),
        _ if req.macvlan_mode.is_some() => Err(usage("--macvlan-mode")),
        _ if req.host_access => Err(usage("--host-access")),
        _ => Ok(()),
    }
}

impl Driver for Macvlan {
    fn validate(&self, req: &Attach) -> Result<()> {
        if !req.host_access {
            return Ok(());
        }
        let mode = req.macvlan_mode.unwrap_or_default();
        if !mode.is_bridge() {
            return Err(Error::new(
                Kind::Usage,
                format!(
                    "--host-access needs --macvlan-mode bridge: the host's macvlan reaches the guest's \
                     only as a bridge-mode sibling ({} mode keeps them apart)",
                    mode.word()
                ),
            ));
        }
        if !matches!(req.addr, Addressing::Static { .. }) {
            return Err(Error::new(
                Kind::Usage,
                "--host-access needs a static address: the host route goes to it",
            ));
        }
        Ok(())
    }

    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Planned>> {
        Box::pin(async move {
            let ctr_if = ctx.guest_if("eth1");
            let mut plan = ctx.new_plan();
            let lower = on_vlan(&mut plan, ctx, &self.parent).await?;
            let name = cut(format!("ph{}{ctr_if}", ctx.guest.name_number));
            refuse_taken(ctx.host, &name).await?;
            let mtu = self.parent.mtu;
            plan.push(Step::CreateLink {
                name: name.clone(),
                kind: NewLink::Macvlan {
                    parent: lower.clone(),
                    mtu,
                    mode: ctx.req.macvlan_mode.unwrap_or_default(),
                },
            });
            plan.push(Step::LinkUp { side: Side::Host, name: lower.clone() });
            let replaced_default = moved_in(&mut plan, ctx, &name, false, ctr_if).await?;
            if ctx.req.host_access {
                host_access(&mut plan, ctx, &lower, mtu).await?;
            }
            let made = Made {
                name: ctr_if.to_string(),
                how: How::Macvlan,
                host_side: Some(lower),
                attached_to: Attached::Parent(self.parent.name.clone()),
                vlan: ctx.req.tag.as_ref().map(Tag::vlan_id).transpose()?,
                replaced_default,
            };
            Ok(Planned { plan, made })
        })
    }
}

/// The shim on `lower` (made if absent, up) and the host route to the
/// guest's address through it. A link of the shim's name that is not a
/// bridge-mode macvlan on `lower` is refused.
async fn host_access(plan: &mut Plan, ctx: &Context<'_>, lower: &str, mtu: u32) -> Result<()> {
    let shim = shim_name(lower);
    // None: a VLAN device this plan makes, which no shim can be on yet.
    let lower_index = ctx.host.link(lower).await?.map(|l| l.index);
    let on_lower = |l: &Link| lower_index.is_some_and(|i| l.peer == Some(i));
    match ctx.host.link(&shim).await? {
        Some(link)
            if link.kind == Some(InfoKind::MacVlan)
                && link.macvlan_mode == Some(MacvlanMode::Bridge)
                && on_lower(&link) => {}
        Some(link) => {
            return Err(Error::new(
                Kind::Conflict,
                format!(
                    "{shim} exists on the host but is not a bridge-mode macvlan on {lower} (it is a {}); \
                     delete it or rename it for --host-access",
                    link.kind_word()
                ),
            ))
        }
        None => {
            let kind = NewLink::Macvlan { parent: lower.into(), mtu, mode: MacvlanMode::Bridge };
            plan.push(Step::CreateLink { name: shim.clone(), kind });
        }
    }
    plan.push(Step::LinkUp { side: Side::Host, name: shim.clone() });
    if let Addressing::Static { net, .. } = &ctx.req.addr {
        plan.push(Step::HostRoute { ip: net.ip(), dev: shim });
    }
    Ok(())
}

/// The shim's name on `lower`: `pwh-<lower>`, or, where that passes the
/// kernel's 15 bytes, `pwh-` and 11 hex digits of the MD5 of the name.
pub fn shim_name(lower: &str) -> String {
    let name = format!("pwh-{lower}");
    if name.len() <= IFNAME_MAX {
        return name;
    }
    let digest = Md5::digest(lower.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("pwh-{}", &hex[..IFNAME_MAX - 4])
}

/// What the record keeps of a macvlan attach beyond `Made`: its mode, and
/// its shim (the one on its host side) with `--host-access`.
pub fn recorded(how: How, host_side: Option<&str>, req: &Attach) -> (MacvlanMode, Option<String>) {
    if how != How::Macvlan {
        return (MacvlanMode::default(), None);
    }
    let shim = host_side.filter(|_| req.host_access).map(shim_name);
    (req.macvlan_mode.unwrap_or_default(), shim)
}

/// Undoing a macvlan: the guest's link, then, with host access, the host
/// routes to its addresses, and the shim when no other recorded interface
/// in this host namespace uses it. All deletions, at the end of the plan.
pub async fn teardown(t: &Teardown<'_>, last: &mut Vec<Step>) -> Result<()> {
    if t.in_guest().await?.is_some() {
        last.push(Step::DeleteLink { side: Side::Guest, name: t.iface.name.clone() });
    }
    let Some(shim) = &t.iface.shim else { return Ok(()) };
    let Some(link) = t.host.link(shim).await? else { return Ok(()) };
    for net in &t.iface.addresses {
        if t.host.host_route(net.ip(), link.index).await?.is_some() {
            last.push(Step::DeleteHostRoute { ip: net.ip(), dev: shim.clone() });
        }
    }
    // The last of the leaving interfaces on this shim deletes it.
    let mut later = t.leaving.iter().skip_while(|i| i.name != t.iface.name).skip(1);
    let last_leaving = !later.any(|i| i.shim.as_deref() == Some(shim));
    if link.kind == Some(InfoKind::MacVlan) && last_leaving && !shim_stays(t, shim)? {
        last.push(Step::DeleteLink { side: Side::Host, name: shim.clone() });
    }
    Ok(())
}

/// `check`: the guest's macvlan `link` in another mode than recorded.
pub fn mode_differs(iface: &Interface, link: &Link, guest: &str) -> Option<String> {
    if iface.how != How::Macvlan || link.macvlan_mode == Some(iface.macvlan_mode) {
        return None;
    }
    let now = link.macvlan_mode.map_or("unknown", MacvlanMode::word);
    let name = &iface.name;
    Some(format!("{name} of {guest} is in macvlan mode {now}, recorded {}", iface.macvlan_mode.word()))
}

/// `check`: the recorded shim, a macvlan on the host, and the host route to
/// each of the interface's addresses through it.
pub async fn verify_host_access(
    host: &crate::sys::netlink::Netlink,
    iface: &Interface,
    guest: &str,
) -> Result<Vec<(&'static str, String)>> {
    let Some(shim) = &iface.shim else { return Ok(Vec::new()) };
    let name = &iface.name;
    let link = match host.link(shim).await? {
        Some(link) if link.kind == Some(InfoKind::MacVlan) => link,
        _ => return Ok(vec![("host-access", format!("host macvlan {shim} of {name} of {guest} gone"))]),
    };
    let mut out = Vec::new();
    if !link.up {
        out.push(("host-access", format!("host macvlan {shim} of {name} of {guest} is down")));
    }
    for net in &iface.addresses {
        if host.host_route(net.ip(), link.index).await?.is_none() {
            let len = if net.is_ipv4() { 32 } else { 128 };
            let text = format!("missing host route {}/{len} dev {shim} to {name} of {guest}", net.ip());
            out.push(("host-access", text));
        }
    }
    Ok(out)
}

/// Whether a recorded interface that is not leaving, of any guest plumbed
/// from the same host namespace, goes through `shim`.
fn shim_stays(t: &Teardown<'_>, shim: &str) -> Result<bool> {
    let listing = Store::from_env().load_all()?;
    let leaving =
        |r: &Record, i: &Interface| r.key() == t.record.key() && t.leaving.iter().any(|l| l.name == i.name);
    Ok(listing
        .records
        .iter()
        .filter(|r| r.host.id == t.record.host.id)
        .any(|r| r.interfaces.iter().any(|i| i.shim.as_deref() == Some(shim) && !leaving(r, i))))
}

/// The link to build on: `parent`, or with `@VLAN` its VLAN device
/// `<parent>.<vid>` (made if absent; the parent brought up).
pub async fn on_vlan(plan: &mut Plan, ctx: &Context<'_>, parent: &Link) -> Result<String> {
    let Some(tag) = &ctx.req.tag else {
        return Ok(parent.name.clone());
    };
    let vid = tag.vlan_id()?;
    let name = format!("{}.{vid}", parent.name);
    check_ifname(&name).map_err(|e| Error::new(Kind::Usage, format!("VLAN device: {e}")))?;
    match ctx.host.link(&name).await? {
        Some(vlan) if vlan.kind == Some(InfoKind::Vlan) && vlan.vlan_id == Some(vid) => {}
        Some(_) => {
            return Err(Error::new(
                Kind::Conflict,
                format!("{name} exists but is not a VLAN device for tag {vid}"),
            ))
        }
        None => {
            let kind = NewLink::Vlan { parent: parent.name.clone(), vid, mtu: parent.mtu };
            plan.push(Step::CreateLink { name: name.clone(), kind });
        }
    }
    plan.push(Step::LinkUp { side: Side::Host, name: parent.name.clone() });
    Ok(name)
}

/// The original cut `ph<pid><if>` to the kernel's 15 bytes; a character
/// that would be cut in two (`-i` may be any UTF-8) goes whole.
fn cut(mut name: String) -> String {
    let end = (0..=IFNAME_MAX.min(name.len())).rev().find(|&i| name.is_char_boundary(i)).unwrap_or(0);
    name.truncate(end);
    name
}

#[cfg(test)]
mod tests {
    use super::{cut, shim_name};

    #[test]
    fn shim_names_fit_15_bytes() {
        assert_eq!(shim_name("eth0"), "pwh-eth0");
        assert_eq!(shim_name("eth0.10"), "pwh-eth0.10");
        assert_eq!(shim_name("enp0s31f6ab"), "pwh-enp0s31f6ab");
        let long = shim_name("enp0s31f6abc.4000");
        assert_eq!((long.len(), &long[..4]), (15, "pwh-"), "{long}");
        assert_ne!(long, shim_name("enp0s31f6abc.4001"));
    }

    #[test]
    fn cut_keeps_15_bytes_and_whole_characters() {
        assert_eq!(cut("ph4242424eth1".into()), "ph4242424eth1");
        assert_eq!(cut("ph123456789012345".into()), "ph1234567890123");
        // "é" is 2 bytes, at bytes 14 and 15: it does not fit.
        assert_eq!(cut("ph123456789012é".into()), "ph123456789012");
        assert_eq!(cut("ph12345678901éx".into()), "ph12345678901é");
    }
}
