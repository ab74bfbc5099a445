//! `--direct-phys`: the host's physical interface itself (or its VLAN
//! device) is lent to the guest; an undo gives it back under its own name.

use futures::future::BoxFuture;

use super::{macvlan::on_vlan, moved_in, Context, Driver};
use crate::error::Result;
use crate::plan::Plan;
use crate::sys::netlink::Link;

pub struct Direct {
    pub link: Link,
}

impl Driver for Direct {
    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Plan>> {
        Box::pin(async move {
            let ctr_if = ctx.guest_if("eth1");
            let mut plan = ctx.new_plan();
            let lent = on_vlan(&mut plan, ctx, &self.link).await?;
            moved_in(&mut plan, ctx, &lent, true, ctr_if).await?;
            Ok(plan)
        })
    }
}
