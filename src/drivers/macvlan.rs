//! Physical host interfaces: a macvlan child in bridge mode (`ph<pid><if>`,
//! with the parent's MTU), optionally on a VLAN `<if>.<vid>`, moved into
//! the guest.
//!
//! The original made these links on the host under their final names, then
//! moved and renamed them in two steps; here the move and the rename are one
//! request, and a name taken on the host is refused before anything changes.

use futures::future::BoxFuture;
use rtnetlink::packet_route::link::InfoKind;

use super::{moved_in, refuse_taken, Context, Driver, Made, Planned};
use crate::error::{Error, Kind, Result};
use crate::plan::{NewLink, Plan, Side, Step};
use crate::records::{Attached, How};
use crate::request::{check_ifname, Tag, IFNAME_MAX};
use crate::sys::netlink::Link;

pub struct Macvlan {
    pub parent: Link,
}

impl Driver for Macvlan {
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
                kind: NewLink::Macvlan { parent: lower.clone(), mtu },
            });
            plan.push(Step::LinkUp { side: Side::Host, name: lower.clone() });
            let replaced_default = moved_in(&mut plan, ctx, &name, false, ctr_if).await?;
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
    use super::cut;

    #[test]
    fn cut_keeps_15_bytes_and_whole_characters() {
        assert_eq!(cut("ph4242424eth1".into()), "ph4242424eth1");
        assert_eq!(cut("ph123456789012345".into()), "ph1234567890123");
        // "é" is 2 bytes, at bytes 14 and 15: it does not fit.
        assert_eq!(cut("ph123456789012é".into()), "ph123456789012");
        assert_eq!(cut("ph12345678901éx".into()), "ph12345678901é");
    }
}
