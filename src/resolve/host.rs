//! What the host interface is, which decides how the guest gets connected:
//! the original's first step, over netlink instead of /sys, and over OVSDB
//! for Open vSwitch's bridges.

use rtnetlink::packet_route::link::InfoKind;

use crate::error::{Error, Kind, Result};
use crate::request::HostIf;
use crate::sys::netlink::{Link, Netlink};
use crate::sys::ovsdb::Ovsdb;
use crate::sys::vswitch::Bridge as OvsBridge;

#[derive(Debug)]
pub enum HostKind {
    /// An existing Linux bridge, or a `br*` name that will be created.
    LinuxBridge {
        name: String,
        existing: Option<Link>,
    },
    /// A bridge of Open vSwitch's database, or an `ovs*` name to create.
    OpenVswitch {
        name: String,
        existing: Option<OvsBridge>,
    },
    /// Link type 32: an IPoIB child is made.
    IpoIb(Link),
    /// Anything else that exists: a macvlan child (or the interface itself
    /// with `--direct-phys`).
    Physical(Link),
    Dummy {
        name: String,
    },
}

pub async fn classify(host: &Netlink, sel: &HostIf) -> Result<HostKind> {
    let (name, link) = match sel {
        HostIf::Name(name) => (name.clone(), host.link(name).await?),
        HostIf::Mac(mac, text) => match host.links().await?.into_iter().find(|l| l.mac == Some(*mac)) {
            Some(link) => (link.name.clone(), Some(link)),
            None => {
                return Err(Error::verbatim(
                    Kind::NotFound,
                    format!("Mac address {text} specified for interface but no host interface matched."),
                ))
            }
        },
    };
    if let Some(link) = link.as_ref().filter(|l| l.is_bridge()) {
        return Ok(HostKind::LinuxBridge { name, existing: Some(link.clone()) });
    }
    if let Some(bridge) = ovs_bridge(&name, link.as_ref()).await? {
        return Ok(HostKind::OpenVswitch { name, existing: Some(bridge) });
    }
    match link {
        Some(link) if is_kernel_ovs(&link) => Err(Error::new(
            Kind::Usage,
            format!("{name} is an Open vSwitch datapath device, not a bridge of its database"),
        )),
        Some(link) => Ok(of_link(link)),
        None => by_name(&name),
    }
}

/// The kernel datapath's devices: an OVS bridge's own port among them.
fn is_kernel_ovs(link: &Link) -> bool {
    matches!(&link.kind, Some(InfoKind::Other(k)) if k == "openvswitch")
}

/// The OVS bridge of that name, if the database has one. Asked only of a
/// name that can be one, so that other runs make no connection (and never
/// wait on a stuck ovsdb-server): an `ovs*` name, a kernel datapath device,
/// or a tap device (the userspace datapath's bridges are taps). Where only
/// Open vSwitch could make sense of the name (a missing `ovs*`, a datapath
/// device), not reaching it is the run's error.
async fn ovs_bridge(name: &str, link: Option<&Link>) -> Result<Option<OvsBridge>> {
    let kernel_ovs = link.is_some_and(is_kernel_ovs);
    let tap = link.is_some_and(|l| l.kind == Some(InfoKind::Tun));
    let required = kernel_ovs || (link.is_none() && name.starts_with("ovs"));
    if !(required || tap || name.starts_with("ovs")) {
        return Ok(None);
    }
    let found = match Ovsdb::connect().await {
        Ok(mut db) => db.bridge(name).await,
        Err(e) => Err(e),
    };
    match found {
        Err(e) if required => Err(e.context(format!("{name} needs Open vSwitch"))),
        Err(e) => {
            tracing::debug!("{name} taken for what it is on the host: {e}");
            Ok(None)
        }
        Ok(bridge) => Ok(bridge),
    }
}

/// An existing interface: what it is decides the path.
fn of_link(link: Link) -> HostKind {
    match link.kind {
        _ if link.infiniband => HostKind::IpoIb(link),
        _ => HostKind::Physical(link),
    }
}

/// A name the host does not have: its prefix decides what to make.
fn by_name(name: &str) -> Result<HostKind> {
    let name = name.to_string();
    if name.starts_with("br") {
        Ok(HostKind::LinuxBridge { name, existing: None })
    } else if name.starts_with("ovs") {
        Ok(HostKind::OpenVswitch { name, existing: None })
    } else if name.starts_with("dummy") {
        Ok(HostKind::Dummy { name })
    } else {
        Err(Error::verbatim(Kind::NotFound, format!("I do not know how to setup interface {name}.")))
    }
}
