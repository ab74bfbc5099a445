//! VLANs on a Linux bridge: filtering on the bridge, and a port's VLANs
//! (`bridge vlan add/del`), as the CNI bridge plugin's `vlan` sets them.

use rtnetlink::packet_route::link::{BridgeVlanInfoFlags, LinkAttribute};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkBridge, LinkBridgeVlan};

use super::error::{errno, kernel_message, nl_error};
use super::Netlink;
use crate::error::{Error, Kind, Result};

/// A kernel built without CONFIG_BRIDGE_VLAN_FILTERING answers both
/// requests with EOPNOTSUPP and no text of its own: that, and why. Any
/// other refusal is `what` failing, with the kernel's words.
fn refused(e: rtnetlink::Error, what: &str) -> Error {
    match errno(&e) {
        Some(libc::EOPNOTSUPP) if kernel_message(&e).is_none() => Error::new(
            Kind::Unsupported,
            "this kernel's bridges cannot filter VLANs: Operation not supported (it lacks \
             CONFIG_BRIDGE_VLAN_FILTERING)",
        ),
        _ => nl_error(e, what),
    }
}

impl Netlink {
    /// `ip link set <bridge> type bridge vlan_filtering 1` (or `0`).
    pub async fn set_vlan_filtering(&self, index: u32, on: bool) -> Result<()> {
        // RTM_NEWLINK on an existing link: a bridge option is link data,
        // which RTM_SETLINK does not take.
        let mut msg = LinkBridge::new("").index(index).vlan_filtering(on).build();
        msg.attributes.retain(|a| !matches!(a, LinkAttribute::IfName(_)));
        let what = if on { "turning on VLAN filtering" } else { "turning off VLAN filtering" };
        self.handle.link().change(msg).execute().await.map_err(|e| refused(e, what))
    }

    /// `bridge vlan add dev <port> vid <vid> pvid untagged`, or with
    /// `add == false`, `bridge vlan del dev <port> vid <vid>`.
    pub async fn port_vlan(&self, index: u32, vid: u16, add: bool) -> Result<()> {
        let flags = match add {
            true => BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
            false => BridgeVlanInfoFlags::empty(),
        };
        let msg = LinkBridgeVlan::new(index).vlan(vid, flags).build();
        let (msg, what) = match add {
            true => (RouteNetlinkMessage::SetLink(msg), format!("putting the port on VLAN {vid}")),
            false => (RouteNetlinkMessage::DelLink(msg), format!("taking the port off VLAN {vid}")),
        };
        self.talk(msg, 0).await.map_err(|e| refused(e, &what))
    }
}
