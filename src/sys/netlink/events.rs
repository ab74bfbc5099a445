//! The links of this namespace as they come and go: the kernel's
//! RTNLGRP_LINK messages (NEWLINK on creation and on every change, DELLINK
//! on deletion), for the watch service's repairs.

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr, TokioSocket};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::os::fd::{FromRawFd, IntoRawFd};

use super::Link;
use crate::error::{Error, Result};

/// rtnetlink's link group (`RTNLGRP_LINK` in linux/rtnetlink.h).
const RTNLGRP_LINK: u32 = 1;
/// Room for a burst (a bridge's ports released at once) before ENOBUFS.
const RECEIVE_BUFFER: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Made, or changed (up, down, master, MTU...).
    New(Link),
    Deleted(Link),
}

pub struct LinkEvents {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
}

impl LinkEvents {
    /// Subscribes to this namespace's link messages.
    pub fn subscribe() -> Result<LinkEvents> {
        let failed = |e: std::io::Error| Error::from(e).context("subscribing to link events");
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(failed)?;
        socket.bind_auto().map_err(failed)?;
        socket.add_membership(RTNLGRP_LINK).map_err(failed)?;
        let _ = socket.set_rx_buf_sz(RECEIVE_BUFFER);
        // SAFETY: the fd comes straight from a socket we own and give up here.
        let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
        let (connection, _handle, messages) = rtnetlink::from_socket(socket);
        tokio::spawn(connection);
        Ok(LinkEvents { messages })
    }

    /// The next link message; pending for good if the connection ends.
    pub async fn next(&mut self) -> LinkEvent {
        loop {
            let Some((message, _)) = self.messages.next().await else {
                tracing::warn!(
                    "link events: the kernel's connection ended; links lost from now on are not repaired"
                );
                return std::future::pending().await;
            };
            // AF_BRIDGE messages speak of bridge ports: a DELLINK of that
            // family is a port leaving its bridge (all of them, when the
            // bridge goes), not a link deleted.
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))
                    if link.header.interface_family != AddressFamily::Bridge =>
                {
                    return LinkEvent::New(Link::from_message(link))
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link))
                    if link.header.interface_family != AddressFamily::Bridge =>
                {
                    return LinkEvent::Deleted(Link::from_message(link))
                }
                _ => {}
            }
        }
    }
}
