//! What the host interface is, which decides how the guest gets connected:
//! the original's first step, over netlink instead of /sys.

use rtnetlink::packet_route::link::InfoKind;

use crate::error::{Error, Kind, Result};
use crate::request::HostIf;
use crate::sys::netlink::{Link, Netlink};

#[derive(Debug)]
pub enum HostKind {
    /// An existing Linux bridge, or a `br*` name that will be created.
    LinuxBridge {
        name: String,
        existing: Option<Link>,
    },
    OpenVswitch {
        name: String,
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
    match sel {
        HostIf::Name(name) => match host.link(name).await? {
            Some(link) => Ok(of_link(link)),
            None => by_name(name),
        },
        HostIf::Mac(mac, text) => match host.links().await?.into_iter().find(|l| l.mac == Some(*mac)) {
            Some(link) => Ok(of_link(link)),
            None => Err(Error::original(
                Kind::NotFound,
                format!("Mac address {text} specified for interface but no host interface matched."),
            )),
        },
    }
}

/// An existing interface: what it is decides the path.
fn of_link(link: Link) -> HostKind {
    match link.kind {
        _ if link.is_bridge() => HostKind::LinuxBridge { name: link.name.clone(), existing: Some(link) },
        Some(InfoKind::Other(ref k)) if k == "openvswitch" => HostKind::OpenVswitch { name: link.name },
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
        Ok(HostKind::OpenVswitch { name })
    } else if name.starts_with("dummy") {
        Ok(HostKind::Dummy { name })
    } else {
        Err(Error::original(Kind::NotFound, format!("I do not know how to setup interface {name}.")))
    }
}
