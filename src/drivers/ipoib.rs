//! An IPoIB host interface (link type 32): a child `<if>.<pid>`, or
//! `<if>.<pkey>.<pid>` with a partition key, made on the host and moved in.

use futures::future::BoxFuture;

use super::{moved_in, refuse_taken, Context, Driver, Made, Planned};
use crate::error::{Error, Kind, Result};
use crate::plan::{NewLink, Side, Step};
use crate::records::{Attached, How};
use crate::request::{check_ifname, Attach, Tag};
use crate::sys::netlink::Link;

pub struct Ipoib {
    pub parent: Link,
}

impl Driver for Ipoib {
    fn default_if(&self) -> &'static str {
        "ib0"
    }

    fn validate(&self, req: &Attach) -> Result<()> {
        match req.mac {
            Some(_) => Err(Error::verbatim(
                Kind::Unsupported,
                "MACADDR configuration unsupported for IPoIB interfaces.",
            )),
            None => Ok(()),
        }
    }

    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Planned>> {
        Box::pin(async move {
            // The IPoIB driver is fussy about names: ib0 unless told otherwise.
            let ctr_if = ctx.guest_if(self.default_if());
            let parent = &self.parent.name;
            let number = ctx.guest.name_number;
            let pkey = ctx.req.tag.as_ref().map(Tag::pkey).transpose()?;
            let name = match &ctx.req.tag {
                Some(Tag(tag)) => format!("{parent}.{tag}.{number}"),
                None => format!("{parent}.{number}"),
            };
            check_ifname(&name).map_err(|e| Error::new(Kind::Usage, format!("IPoIB child: {e}")))?;
            refuse_taken(ctx.host, &name).await?;
            let mut plan = ctx.new_plan();
            plan.push(Step::CreateLink {
                name: name.clone(),
                kind: NewLink::Ipoib { parent: parent.clone(), pkey },
            });
            plan.push(Step::LinkUp { side: Side::Host, name: parent.clone() });
            let replaced_default = moved_in(&mut plan, ctx, &name, false, ctr_if).await?;
            let made = Made {
                name: ctr_if.to_string(),
                how: How::Ipoib,
                host_side: Some(parent.clone()),
                attached_to: Attached::Parent(parent.clone()),
                vlan: pkey,
                replaced_default,
            };
            Ok(Planned { plan, made })
        })
    }
}
