//! A `dummy*` host interface that does not exist: a dummy link
//! `du<pid><if>`, made on the host and moved in.

use futures::future::BoxFuture;

use super::{moved_in, refuse_taken, Context, Driver, Made, Planned};
use crate::error::{Error, Kind, Result};
use crate::plan::{NewLink, Step};
use crate::records::{Attached, How};
use crate::request::check_ifname;

pub struct Dummy;

impl Driver for Dummy {
    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Planned>> {
        Box::pin(async move {
            let ctr_if = ctx.guest_if("eth1");
            let name = format!("du{}{ctr_if}", ctx.guest.name_number);
            check_ifname(&name).map_err(|e| Error::new(Kind::Usage, format!("{e}; choose a shorter -i")))?;
            refuse_taken(ctx.host, &name).await?;
            let mut plan = ctx.new_plan();
            plan.push(Step::CreateLink { name: name.clone(), kind: NewLink::Dummy });
            let replaced_default = moved_in(&mut plan, ctx, &name, false, ctr_if).await?;
            // Nothing stays on the host: its name there is not kept.
            let made = Made {
                name: ctr_if.to_string(),
                how: How::Dummy,
                host_side: None,
                attached_to: Attached::None,
                vlan: None,
                replaced_default,
            };
            Ok(Planned { plan, made })
        })
    }
}
