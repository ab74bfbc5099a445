//! What the host interface is, which decides how the guest gets connected:
//! the original's first step, over netlink instead of /sys.

use crate::error::{Error, Result};
use crate::netlink::{Link, Netlink};
use crate::request::HostIf;

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

impl HostKind {
    pub fn name(&self) -> &str {
        match self {
            HostKind::LinuxBridge { name, .. }
            | HostKind::OpenVswitch { name }
            | HostKind::Dummy { name } => name,
            HostKind::IpoIb(link) | HostKind::Physical(link) => &link.name,
        }
    }
}

pub async fn classify(host: &Netlink, sel: &HostIf) -> Result<HostKind> {
    let link = match sel {
        HostIf::Name(name) => host.link(name).await?,
        HostIf::Mac(mac, text) => {
            let found = host.links().await?.into_iter().find(|l| l.mac == Some(*mac));
            let Some(link) = found else {
                return Err(Error::plain(format!(
                    "Mac address {text} specified for interface but no host interface matched."
                )));
            };
            Some(link)
        }
    };
    if let Some(link) = link {
        return Ok(match link.kind {
            _ if link.is_bridge() => HostKind::LinuxBridge { name: link.name.clone(), existing: Some(link) },
            Some(rtnetlink::packet_route::link::InfoKind::Other(ref k)) if k == "openvswitch" => {
                HostKind::OpenVswitch { name: link.name }
            }
            _ if link.infiniband => HostKind::IpoIb(link),
            _ => HostKind::Physical(link),
        });
    }
    let HostIf::Name(name) = sel else { unreachable!("a MAC match is an existing link") };
    let name = name.clone();
    Ok(if name.starts_with("br") {
        HostKind::LinuxBridge { name, existing: None }
    } else if name.starts_with("ovs") {
        HostKind::OpenVswitch { name }
    } else if name.starts_with("dummy") {
        HostKind::Dummy { name }
    } else {
        return Err(Error::plain(format!("I do not know how to setup interface {name}.")));
    })
}
