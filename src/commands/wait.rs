//! `pipework --wait [-i IF]`: run inside a container, returns as soon as the
//! interface exists (what the original's loop checked, once a second).
//! Here it listens to the kernel's link notifications instead of polling.

use std::time::Duration;

use futures::StreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;

use crate::error::{Error, Kind, Result};
use crate::sys::netlink::Netlink;

pub async fn wait(ifname: &str, timeout: Option<Duration>) -> Result<()> {
    // Subscribe before looking, so an interface that appears in between is
    // not missed.
    let (connection, _, mut events) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
        .map_err(|e| Error::from(e).context("listening to link notifications"))?;
    tokio::spawn(connection);
    if Netlink::here()?.link(ifname).await?.is_some() {
        return Ok(());
    }
    let appeared = async {
        while let Some((message, _)) = events.next().await {
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = message.payload {
                if link.attributes.iter().any(|a| matches!(a, LinkAttribute::IfName(n) if n == ifname)) {
                    return Ok(());
                }
            }
        }
        Err(Error::new(Kind::Io, "link notifications stopped"))
    };
    match timeout {
        None => appeared.await,
        Some(limit) => tokio::time::timeout(limit, appeared).await.unwrap_or_else(|_| {
            Err(Error::new(
                Kind::Timeout,
                format!("{ifname} did not appear within {} s", limit.as_secs_f64()),
            ))
        }),
    }
}
