//! Addresses: added by prefix, or copied from one link to another as the
//! kernel listed them (`mkbridge`).

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};

use super::error::nl_error;
use super::Netlink;
use crate::error::Result;

impl Netlink {
    /// `ip addr add`; rtnetlink sets the IPv4 broadcast address itself.
    pub async fn add_address(&self, index: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        self.handle
            .address()
            .add(index, ip, prefix)
            .execute()
            .await
            .map_err(|e| nl_error(e, format!("adding address {ip}/{prefix}")))
    }

    /// The global (not link-local, not host) addresses of a link.
    pub async fn global_addresses(&self, index: u32) -> Result<Vec<AddressMessage>> {
        let all: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error(e, "listing addresses"))?;
        Ok(all
            .into_iter()
            .filter(|a| a.header.index == index && a.header.scope == AddressScope::Universe)
            .collect())
    }

    /// Adds an address as listed, on link `index`; no DAD for an address
    /// already in use on this host. Returns the address as added: without
    /// the old link's label, which the kernel would match on deletion.
    pub async fn add_address_msg(&self, mut addr: AddressMessage, index: u32) -> Result<AddressMessage> {
        addr.header.index = index;
        addr.attributes.retain(|a| !matches!(a, AddressAttribute::CacheInfo(_) | AddressAttribute::Label(_)));
        let mut flags = AddressFlags::empty();
        for a in &addr.attributes {
            if let AddressAttribute::Flags(f) = a {
                flags = *f;
            }
        }
        addr.attributes.retain(|a| !matches!(a, AddressAttribute::Flags(_)));
        addr.attributes.push(AddressAttribute::Flags(flags | AddressFlags::Nodad));
        let mut request = self.handle.address().add(index, address_ip(&addr), addr.header.prefix_len);
        *request.message_mut() = addr.clone();
        request.execute().await.map_err(|e| nl_error(e, "adding address"))?;
        Ok(addr)
    }

    pub async fn del_address_msg(&self, addr: AddressMessage) -> std::result::Result<(), rtnetlink::Error> {
        self.handle.address().del(addr).execute().await
    }
}

pub fn address_ip(addr: &AddressMessage) -> IpAddr {
    let local = addr.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local
        .or_else(|| {
            addr.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}
