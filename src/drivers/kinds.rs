//! The kinds of attachment, as records keep them (`How`), and what each
//! one is to the rest of pipework: what it leaves on the host, how its link
//! in the guest is recognised, how it is undone, and how an attach asks for
//! it again. Every match here is exhaustive, with no catch-all: a new kind
//! is pointed at by the compiler.

use rtnetlink::packet_route::link::InfoKind;

use super::{direct, link_id, macvlan, ovs, veth_port, Made, Teardown};
use crate::error::Result;
use crate::mac::Mac;
use crate::plan::{Plan, Side, Step};
use crate::records::{Attached, How, Interface, LinkId};
use crate::request::{Attach, Tag};
use crate::sys::netlink::{Link, Netlink};

/// What an interface of a kind keeps on the host, by its `host_side` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSide {
    /// A veth's peer, whose identity the record keeps (`host_link`).
    Peer,
    /// The parent it is a child of (a macvlan's, through its VLAN device;
    /// an IPoIB child's).
    Parent,
    /// Nothing that must stay there: a lent interface (its host-side name
    /// is the one it goes back under), a dummy.
    Nothing,
}

impl How {
    pub fn host_side(self) -> HostSide {
        match self {
            How::Veth => HostSide::Peer,
            How::Macvlan | How::Ipoib => HostSide::Parent,
            How::Lent | How::Dummy => HostSide::Nothing,
        }
    }

    /// Whether `link`, the guest's link of a recorded name, is of this kind,
    /// with the MAC recorded (`mac`) where the kind keeps one: an IPoIB
    /// child's 20-byte address is not kept, and a lent interface is any.
    pub fn recognises(self, link: &Link, mac: Mac) -> bool {
        let kind = match self {
            How::Veth => InfoKind::Veth,
            How::Macvlan => InfoKind::MacVlan,
            How::Dummy => InfoKind::Dummy,
            How::Ipoib => return link.kind == Some(InfoKind::Ipoib),
            How::Lent => return true,
        };
        link.kind == Some(kind) && link.mac == Some(mac)
    }

    /// The steps that undo an interface of this kind (see `drivers::teardown`).
    pub(super) async fn teardown(
        self,
        t: &Teardown<'_>,
        plan: &mut Plan,
        last: &mut Vec<Step>,
    ) -> Result<()> {
        match self {
            How::Veth => match &t.iface.attached_to {
                Attached::Ovs { bridge, port } => ovs::teardown(t, bridge, port, last).await,
                Attached::Bridge(_) | Attached::Parent(_) | Attached::None => {
                    veth_port::teardown(t, last).await
                }
            },
            How::Lent => direct::teardown(t, plan).await,
            How::Macvlan => macvlan::teardown(t, last).await,
            How::Dummy | How::Ipoib => delete_in_guest(t, last).await,
        }
    }

    /// What `req`, the attach that makes `iface` again, asks of this kind
    /// beyond the host interface, names and addressing.
    pub(super) fn ask_again(self, iface: &Interface, req: &mut Attach) {
        let vlan = |v: u16| Tag(v.to_string());
        match self {
            How::Veth => {
                req.local_if = iface.host_side.clone();
                req.tag = iface.vlan.map(vlan);
            }
            How::Macvlan => {
                req.tag = iface.vlan.map(vlan);
                req.macvlan_mode = Some(iface.macvlan_mode).filter(|m| !m.is_bridge());
                req.host_access = iface.shim.is_some();
            }
            How::Dummy => req.tag = iface.vlan.map(vlan),
            How::Lent => {
                req.direct_phys = true;
                req.tag = iface.vlan.map(vlan);
            }
            // A partition key, in hexadecimal; an IPoIB child takes no MAC.
            How::Ipoib => {
                req.mac = None;
                req.tag = iface.vlan.map(|pkey| Tag(format!("{pkey:x}")));
            }
        }
    }
}

impl Made {
    /// The identity of the host side made, as the host has it once the
    /// plan is applied, where the kind keeps one (a veth's peer).
    pub async fn host_link(&self, host: &Netlink) -> Result<Option<LinkId>> {
        let Some(side) = &self.host_side else { return Ok(None) };
        match self.how.host_side() {
            HostSide::Peer => Ok(host.link(side).await?.as_ref().and_then(link_id)),
            HostSide::Parent | HostSide::Nothing => Ok(None),
        }
    }
}

/// A link made on the host and moved in: deleted in the guest, if it is
/// still the one made.
async fn delete_in_guest(t: &Teardown<'_>, last: &mut Vec<Step>) -> Result<()> {
    if t.in_guest().await?.is_some() {
        last.push(Step::DeleteLink { side: Side::Guest, name: t.iface.name.clone() });
    }
    Ok(())
}
