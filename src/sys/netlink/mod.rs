//! A netlink connection bound to one network namespace, with the few
//! operations pipework needs, by object: `link`, `bridge_vlan`, `addr`,
//! `route`; `events` the links as they come and go; `error` decodes
//! refusals. Every error says what was being done, and the kernel's
//! extended-ACK text, which rtnetlink alone would drop.

mod addr;
mod bridge_vlan;
pub(crate) mod error;
mod events;
mod link;
mod route;
pub mod wire;

use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd};

use futures::StreamExt;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::Handle;

pub use addr::address_ip;
pub use bridge_vlan::PortVlan;
pub use error::{errno, kernel_message, nl_error};
pub use events::{LinkEvent, LinkEvents};
pub use link::{requests, Link};
pub use route::{route_text, route_via};

use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// A connection in the namespace this process runs in.
    pub fn here() -> Result<Netlink> {
        let socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::from(e).context("opening a netlink socket"))?;
        Ok(Netlink::from_socket(socket))
    }

    /// A connection inside the namespace `ns`, opened on a thread of its own.
    pub fn inside(ns: BorrowedFd<'_>) -> Result<Netlink> {
        let socket = crate::sys::netns::within(ns, || Socket::new(NETLINK_ROUTE))?;
        Ok(Netlink::from_socket(socket))
    }

    /// The same, the caller's runtime free while the thread runs.
    pub async fn inside_async(ns: BorrowedFd<'_>) -> Result<Netlink> {
        let socket = crate::sys::netns::within_async(ns, || Socket::new(NETLINK_ROUTE)).await?;
        Ok(Netlink::from_socket(socket))
    }

    fn from_socket(socket: Socket) -> Netlink {
        // Capped ACKs with extended ACK: the kernel's explanation of a
        // refusal comes back right after the request's header.
        if socket.set_cap_ack(true).is_ok() {
            let _ = socket.set_ext_ack(true);
        }
        // SAFETY: the fd comes straight from a socket we own and give up here.
        let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(connection);
        Netlink { handle }
    }

    /// One request as built, acknowledged or refused: for the passthrough,
    /// which builds its own messages.
    pub async fn talk(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> std::result::Result<(), rtnetlink::Error> {
        use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut answers = self.handle.clone().request(req)?;
        while let Some(answer) = answers.next().await {
            if let NetlinkPayload::Error(e) = answer.payload {
                if e.code.is_some() {
                    return Err(rtnetlink::Error::NetlinkError(e));
                }
            }
        }
        Ok(())
    }
}
