//! VLANs on a Linux bridge: filtering on the bridge, and a port's VLANs
//! (`bridge vlan add/del/show`), as the CNI bridge plugin's `vlan` sets them.

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    AfSpecBridge, BridgeVlanInfoFlags, LinkAttribute, LinkExtentMask, LinkMessage,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkBridge, LinkBridgeVlan};

use super::error::{errno, kernel_message, nl_error};
use super::Netlink;
use crate::error::{Error, Kind, Result};

/// One VLAN of a bridge port, as `bridge vlan show` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    pub vid: u16,
    /// Untagged frames coming in are put on this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

/// The VLANs in one link's IFLA_AF_SPEC of family AF_BRIDGE.
fn vlans_of(msg: &LinkMessage) -> Vec<PortVlan> {
    let spec = msg.attributes.iter().filter_map(|a| match a {
        LinkAttribute::AfSpecBridge(spec) => Some(spec),
        _ => None,
    });
    spec.flatten()
        .filter_map(|nla| match nla {
            AfSpecBridge::VlanInfo(info) => Some(PortVlan {
                vid: info.vid,
                pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
                untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
            }),
            _ => None,
        })
        .collect()
}

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

    /// `bridge vlan show dev <port>`: the VLANs of bridge port `index`,
    /// none when it is no bridge port. The kernel answers AF_BRIDGE link
    /// requests only as a dump of every port, hence the filter here; the
    /// uncompressed mask has it list each VLAN on its own, no ranges.
    pub async fn port_vlans(&self, index: u32) -> Result<Vec<PortVlan>> {
        let ports: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .set_filter_mask(AddressFamily::Bridge, vec![LinkExtentMask::Brvlan])
            .execute()
            .try_filter(|m| futures::future::ready(m.header.index == index))
            .try_collect()
            .await
            .map_err(|e| nl_error(e, format!("listing the VLANs of bridge port {index}")))?;
        Ok(ports.iter().flat_map(vlans_of).collect())
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::{Emitable, Parseable};
    use rtnetlink::packet_route::link::{
        AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags, LinkAttribute, LinkMessage,
    };
    use rtnetlink::packet_route::AddressFamily;

    use super::{vlans_of, PortVlan};

    /// A port's VLANs as the kernel's AF_BRIDGE answer carries them, through
    /// bytes and back: IFLA_AF_SPEC parses as bridge VLAN info only in
    /// that family.
    #[test]
    fn vlans_come_from_the_bridge_af_spec() {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        let info = |vid, flags| AfSpecBridge::VlanInfo(BridgeVlanInfo { vid, flags });
        msg.attributes.push(LinkAttribute::AfSpecBridge(vec![
            info(1, BridgeVlanInfoFlags::Untagged),
            info(100, BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged),
            info(200, BridgeVlanInfoFlags::empty()),
        ]));
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes);
        let parsed = LinkMessage::parse(bytes.as_slice()).expect("a link message");
        let vlan = |vid, pvid, untagged| PortVlan { vid, pvid, untagged };
        assert_eq!(
            vlans_of(&parsed),
            vec![vlan(1, false, true), vlan(100, true, true), vlan(200, false, false)]
        );
    }
}
