//! `--direct-phys`: the host's physical interface itself (or its VLAN
//! device) is lent to the guest; an undo gives it back under its own name.

use futures::future::BoxFuture;

use super::{macvlan::on_vlan, moved_in, Context, Driver, Made, Planned, Teardown};
use crate::error::Result;
use crate::plan::{Plan, Step};
use crate::records::{Attached, How};
use crate::request::Tag;
use crate::sys::netlink::Link;

pub struct Direct {
    pub link: Link,
}

impl Driver for Direct {
    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Planned>> {
        Box::pin(async move {
            let ctr_if = ctx.guest_if("eth1");
            let mut plan = ctx.new_plan();
            let lent = on_vlan(&mut plan, ctx, &self.link).await?;
            let replaced_default = moved_in(&mut plan, ctx, &lent, true, ctr_if).await?;
            let vlan = ctx.req.tag.as_ref().map(Tag::vlan_id).transpose()?;
            // Lent on a VLAN, it hangs off the parent of its VLAN device.
            let attached_to = match vlan {
                Some(_) => Attached::Parent(self.link.name.clone()),
                None => Attached::None,
            };
            let made = Made {
                name: ctr_if.to_string(),
                how: How::Lent,
                host_side: Some(lent),
                attached_to,
                vlan,
                replaced_default,
            };
            Ok(Planned { plan, made })
        })
    }
}

/// A lent interface goes back to the host under the name it had there
/// (`1`, PID 1's namespace, names the host for display when it has no
/// /var/run/netns name).
pub async fn teardown(t: &Teardown<'_>, plan: &mut Plan) -> Result<()> {
    if t.in_guest().await?.is_some() {
        let to = t.iface.host_side.clone().unwrap_or_else(|| t.iface.name.clone());
        let host = t.record.host.netns.clone().unwrap_or_else(|| "1".into());
        plan.push(Step::GiveBack { name: t.iface.name.clone(), to, host });
    }
    Ok(())
}
