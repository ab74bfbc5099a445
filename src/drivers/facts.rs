//! What a driver reads of the system while planning, behind one narrow
//! trait: the kernel's answers (`Netlink`, with the sysctls and the
//! firewall) in a run, a fake (`tests::Fake`) in unit tests, so that every
//! driver's plan is tested without root.

use std::os::fd::BorrowedFd;

use futures::future::BoxFuture;
use rtnetlink::packet_route::route::RouteMessage;

use crate::error::Result;
use crate::family::Family;
use crate::sys::firewall::{self, Accept};
use crate::sys::netlink::{Link, Netlink};
use crate::sys::sysctl::Sysctl;

/// One network namespace as planning sees it.
pub trait Facts: Send + Sync {
    /// The link of that name, if there is one.
    fn link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Link>>>;

    /// The default routes of `family`.
    fn default_routes(&self, family: Family) -> BoxFuture<'_, Result<Vec<RouteMessage>>>;

    /// Whether links made here start with IPv6 disabled
    /// (`net.ipv6.conf.default.disable_ipv6`; `ns` is this namespace,
    /// None for the one this thread is in).
    fn ipv6_off_by_default(&self, ns: Option<BorrowedFd<'_>>) -> Result<bool>;

    /// The rules a bridge's own traffic (`own`: its `nf_call_*`) needs
    /// through the FORWARD hook of the namespace this process runs in (the
    /// host's) that are not there.
    fn forward_missing(&self, bridge: &str, own: [bool; 2]) -> Result<Vec<Accept>>;
}

impl Facts for Netlink {
    fn link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Link>>> {
        Box::pin(Netlink::link(self, name))
    }

    fn default_routes(&self, family: Family) -> BoxFuture<'_, Result<Vec<RouteMessage>>> {
        Box::pin(Netlink::default_routes(self, family))
    }

    fn ipv6_off_by_default(&self, ns: Option<BorrowedFd<'_>>) -> Result<bool> {
        Ok(Sysctl::conf(ns, Family::V6, "default", "disable_ipv6")?.read()? == "1")
    }

    fn forward_missing(&self, bridge: &str, own: [bool; 2]) -> Result<Vec<Accept>> {
        firewall::missing(bridge, own)
    }
}

#[cfg(test)]
pub mod tests {
    //! A namespace made of what a test says it holds.

    use super::*;

    #[derive(Default)]
    pub struct Fake {
        pub links: Vec<Link>,
        pub defaults: Vec<(Family, RouteMessage)>,
        pub ipv6_off: bool,
        pub forward_missing: Vec<Accept>,
    }

    impl Facts for Fake {
        fn link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Link>>> {
            Box::pin(async move { Ok(self.links.iter().find(|l| l.name == name).cloned()) })
        }

        fn default_routes(&self, family: Family) -> BoxFuture<'_, Result<Vec<RouteMessage>>> {
            let routes = self.defaults.iter().filter(|(f, _)| *f == family).map(|(_, r)| r.clone()).collect();
            Box::pin(async move { Ok(routes) })
        }

        fn ipv6_off_by_default(&self, _ns: Option<BorrowedFd<'_>>) -> Result<bool> {
            Ok(self.ipv6_off)
        }

        fn forward_missing(&self, _bridge: &str, _own: [bool; 2]) -> Result<Vec<Accept>> {
            Ok(self.forward_missing.clone())
        }
    }
}
