//! The netlink requests `ip route` and `ip rule` send for a parsed
//! command, with iproute2's defaults.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::packet_route::AddressFamily;

use super::parse::{RouteCmd, RouteOp, RuleCmd, RuleOp};
use super::tokens::{RT_TABLE_LOCAL, RT_TABLE_MAIN, RT_TABLE_UNSPEC};
use crate::family::Family;

/// Bit of RTAX_MTU (2) in RTAX_LOCK.
const RTAX_MTU_LOCK: u32 = 1 << 2;

fn address_family(family: Option<Family>) -> AddressFamily {
    match family {
        Some(Family::V6) => AddressFamily::Inet6,
        _ => AddressFamily::Inet,
    }
}

impl RouteCmd {
    /// The request `ip route` sends; `oif` is the index of `dev`.
    pub fn message(&self, oif: Option<u32>) -> RouteMessage {
        let del = self.op == RouteOp::Delete;
        let family = address_family(self.family);
        let kind = self.kind.unwrap_or(if del { RouteType::Unspec } else { RouteType::Unicast });
        let mut msg = RouteMessage::default();
        let h = &mut msg.header;
        h.address_family = family;
        h.destination_prefix_length = self.dst.len;
        h.kind = kind;
        h.protocol = match self.proto {
            Some(p) => RouteProtocol::from(p),
            None if del => RouteProtocol::Unspec,
            None => RouteProtocol::Boot,
        };
        h.scope = match self.scope {
            Some(s) => RouteScope::from(s),
            None => self.default_scope(family, kind),
        };
        if self.onlink {
            h.flags |= RouteFlags::Onlink;
        }
        let local =
            matches!(kind, RouteType::Local | RouteType::Broadcast | RouteType::Nat | RouteType::Anycast);
        let table = self.table.unwrap_or(if local { RT_TABLE_LOCAL } else { RT_TABLE_MAIN });
        let a = &mut msg.attributes;
        match u8::try_from(table) {
            Ok(t) => msg.header.table = t,
            Err(_) => {
                msg.header.table = RT_TABLE_UNSPEC as u8;
                a.push(RouteAttribute::Table(table));
            }
        }
        if let Some(ip) = self.dst.addr {
            a.push(RouteAttribute::Destination(RouteAddress::from(ip)));
        }
        if let Some(ip) = self.src {
            a.push(RouteAttribute::PrefSource(RouteAddress::from(ip)));
        }
        if let Some(ip) = self.via {
            a.push(RouteAttribute::Gateway(RouteAddress::from(ip)));
        }
        if let Some(metric) = self.metric {
            a.push(RouteAttribute::Priority(metric));
        }
        if let Some(index) = oif {
            a.push(RouteAttribute::Oif(index));
        }
        if let Some((mtu, lock)) = self.mtu {
            let mut metrics = vec![RouteMetric::Mtu(mtu)];
            if lock {
                metrics.push(RouteMetric::Lock(RTAX_MTU_LOCK));
            }
            a.push(RouteAttribute::Metrics(metrics));
        }
        msg
    }

    /// iproute2's choice when no `scope` is given.
    fn default_scope(&self, family: AddressFamily, kind: RouteType) -> RouteScope {
        let del = self.op == RouteOp::Delete;
        if family == AddressFamily::Inet6 {
            return RouteScope::Universe;
        }
        match kind {
            RouteType::Local | RouteType::Nat => RouteScope::Host,
            RouteType::Broadcast | RouteType::Multicast | RouteType::Anycast => RouteScope::Link,
            RouteType::Unicast | RouteType::Unspec if del => RouteScope::NoWhere,
            RouteType::Unicast | RouteType::Unspec if self.via.is_none() => RouteScope::Link,
            _ if del => RouteScope::NoWhere,
            _ => RouteScope::Universe,
        }
    }
}

impl RuleCmd {
    /// The netlink flags `ip rule <op>` sends, besides REQUEST and ACK.
    pub fn flags(&self) -> u16 {
        match self.op {
            RuleOp::Add => NLM_F_CREATE | NLM_F_EXCL,
            RuleOp::Delete => 0,
        }
    }

    /// The request `ip rule` sends.
    pub fn message(&self) -> RuleMessage {
        let add = self.op == RuleOp::Add;
        let mut msg = RuleMessage::default();
        let h = &mut msg.header;
        h.family = address_family(self.family);
        h.action = if add { RuleAction::ToTable } else { RuleAction::Unspec };
        if self.not {
            h.flags |= RuleFlags::Invert;
        }
        // Deleting without a table matches a rule of any table.
        let table = self.table.unwrap_or(if add { RT_TABLE_MAIN } else { RT_TABLE_UNSPEC });
        let a = &mut msg.attributes;
        match u8::try_from(table) {
            Ok(t) => msg.header.table = t,
            Err(_) => {
                msg.header.table = RT_TABLE_UNSPEC as u8;
                a.push(RuleAttribute::Table(table));
            }
        }
        if let Some(p) = self.from {
            msg.header.src_len = p.len;
            a.extend(p.addr.map(RuleAttribute::Source));
        }
        if let Some(p) = self.to {
            msg.header.dst_len = p.len;
            a.extend(p.addr.map(RuleAttribute::Destination));
        }
        if let Some(prio) = self.priority {
            a.push(RuleAttribute::Priority(prio));
        }
        if let Some((mark, mask)) = self.fwmark {
            a.push(RuleAttribute::FwMark(mark));
            a.extend(mask.map(RuleAttribute::FwMask));
        }
        if let Some(name) = &self.iif {
            a.push(RuleAttribute::Iifname(name.clone()));
        }
        if let Some(name) = &self.oif {
            a.push(RuleAttribute::Oifname(name.clone()));
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_REPLACE};

    use super::*;
    use crate::iproute2::parse::tests::words;
    use crate::iproute2::parse::{parse_route, parse_rule, Prefix};

    fn route(line: &str) -> RouteCmd {
        parse_route(&words(line)).unwrap_or_else(|| panic!("not native: {line}"))
    }

    fn rule(line: &str) -> RuleCmd {
        parse_rule(&words(line)).unwrap_or_else(|| panic!("not native: {line}"))
    }

    fn v4(s: &str) -> RouteAddress {
        RouteAddress::Inet(s.parse().unwrap())
    }

    #[test]
    fn link_route_gets_iproute2_defaults() {
        let cmd = route("add 10.1.0.0/16 dev eth1");
        assert_eq!(cmd.op.flags(), NLM_F_CREATE | NLM_F_EXCL);
        let m = cmd.message(Some(7));
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        assert_eq!(m.header.destination_prefix_length, 16);
        assert_eq!(m.header.table, 254);
        assert_eq!(m.header.protocol, RouteProtocol::Boot);
        assert_eq!(m.header.scope, RouteScope::Link);
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert_eq!(m.attributes, vec![RouteAttribute::Destination(v4("10.1.0.0")), RouteAttribute::Oif(7)]);
    }

    #[test]
    fn gateway_route_is_universe() {
        let m = route("add 10.2.0.0/16 via 10.9.0.1 metric 50").message(None);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert_eq!(
            m.attributes,
            vec![
                RouteAttribute::Destination(v4("10.2.0.0")),
                RouteAttribute::Gateway(v4("10.9.0.1")),
                RouteAttribute::Priority(50)
            ]
        );
    }

    #[test]
    fn every_native_keyword() {
        let cmd = route(
            "replace to 10.3.0.0/24 via 192.168.7.1 dev eth1 src 10.9.0.2 preference 7 table 100 \
             scope global proto static onlink mtu lock 1400",
        );
        assert_eq!(cmd.op.flags(), NLM_F_CREATE | NLM_F_REPLACE);
        let m = cmd.message(Some(3));
        assert_eq!(m.header.table, 100);
        assert_eq!(m.header.protocol, RouteProtocol::Static);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert!(m.header.flags.contains(RouteFlags::Onlink));
        assert!(m.attributes.contains(&RouteAttribute::PrefSource(v4("10.9.0.2"))));
        assert!(m.attributes.contains(&RouteAttribute::Priority(7)));
        assert!(m.attributes.contains(&RouteAttribute::Metrics(vec![
            RouteMetric::Mtu(1400),
            RouteMetric::Lock(RTAX_MTU_LOCK)
        ])));
        let m = route("change 10.3.0.0/24 dev eth1 scope host protocol 99 table local").message(Some(3));
        assert_eq!(
            (m.header.scope, m.header.protocol, m.header.table),
            (RouteScope::Host, RouteProtocol::Other(99), 255)
        );
        assert_eq!(route("change 10.3.0.0/24 dev eth1").op.flags(), NLM_F_REPLACE);
        assert_eq!(route("append 10.3.0.0/24 dev eth1").op.flags(), NLM_F_CREATE | NLM_F_APPEND);
        assert_eq!(route("prepend 10.3.0.0/24 dev eth1").op.flags(), NLM_F_CREATE);
        assert_eq!(route("add 10.3.0.0/24 dev eth1 scope universe").scope, Some(0));
        assert_eq!(route("add 10.3.0.0/24 dev eth1 table default").table, Some(253));
        assert_eq!(route("add 10.3.0.0/24 dev eth1 priority 0x10").metric, Some(16));
        assert_eq!(route("add 10.3.0.0/24 dev eth1 metric 010").metric, Some(8));
        assert_eq!(route("add 10.3.0.0/24 dev eth1 proto dhcp").proto, Some(16));
        assert_eq!(route("add 10.3.0.0/24 dev eth1 proto kernel").proto, Some(2));
        assert_eq!(route("add 10.3.0.0/24 dev eth1 mtu 1300").mtu, Some((1300, false)));
    }

    #[test]
    fn big_table_goes_in_an_attribute() {
        let m = route("add 10.3.0.0/24 dev eth1 table 1000").message(Some(2));
        assert_eq!(m.header.table, 0);
        assert!(m.attributes.contains(&RouteAttribute::Table(1000)));
    }

    #[test]
    fn host_route_default_and_types() {
        let m = route("add 10.5.0.1 dev eth1").message(Some(2));
        assert_eq!(m.header.destination_prefix_length, 32);
        let m = route("add default via 10.9.0.1").message(None);
        assert_eq!(m.header.destination_prefix_length, 0);
        assert_eq!(m.attributes, vec![RouteAttribute::Gateway(v4("10.9.0.1"))]);
        let m = route("add blackhole 10.12.0.0/16").message(None);
        assert_eq!(
            (m.header.kind, m.header.scope, m.header.table),
            (RouteType::BlackHole, RouteScope::Universe, 254)
        );
        let m = route("add local 10.12.0.1 dev lo").message(Some(1));
        assert_eq!(
            (m.header.kind, m.header.scope, m.header.table),
            (RouteType::Local, RouteScope::Host, 255)
        );
        let m = route("add to unreachable 10.13.0.0/16 metric 5").message(None);
        assert_eq!(m.header.kind, RouteType::Unreachable);
    }

    #[test]
    fn delete_leaves_protocol_scope_and_type_open() {
        let cmd = route("del 10.1.0.0/16 dev eth1");
        assert_eq!(cmd.op.flags(), 0);
        let m = cmd.message(Some(2));
        assert_eq!(m.header.protocol, RouteProtocol::Unspec);
        assert_eq!(m.header.scope, RouteScope::NoWhere);
        assert_eq!(m.header.kind, RouteType::Unspec);
        assert_eq!(m.header.table, 254);
        assert_eq!(route("delete 10.1.0.0/16 table 100").message(None).header.table, 100);
    }

    #[test]
    fn family_from_addresses_or_flag() {
        let m = route("add 2001:db8:1::/48 via 2001:db8:9::1").message(None);
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        assert_eq!(m.header.destination_prefix_length, 48);
        assert_eq!(m.header.scope, RouteScope::Universe);
        // IPv6 routes are universe even without a gateway, as in iproute2.
        let m = route("add 2001:db8:2::/48 dev eth1").message(Some(2));
        assert_eq!(m.header.scope, RouteScope::Universe);
        let m = route("-6 add default dev eth1").message(Some(2));
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        let m = route("add default dev eth1").message(Some(2));
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        let m = route("add default via 2001:db8:9::1").message(None);
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        assert_eq!(
            m.attributes,
            vec![RouteAttribute::Gateway(RouteAddress::from("2001:db8:9::1".parse::<IpAddr>().unwrap()))]
        );
    }

    #[test]
    fn rule_add_defaults() {
        let cmd = rule("add from 10.0.0.0/8 table 100");
        assert_eq!(cmd.flags(), NLM_F_CREATE | NLM_F_EXCL);
        let m = cmd.message();
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!(m.header.action, RuleAction::ToTable);
        assert_eq!((m.header.table, m.header.src_len, m.header.dst_len), (100, 8, 0));
        // No priority: the kernel picks one, as with iproute2.
        assert_eq!(m.attributes, vec![RuleAttribute::Source("10.0.0.0".parse().unwrap())]);
        assert_eq!(rule("add fwmark 1").message().header.table, 254);
    }

    #[test]
    fn every_rule_keyword() {
        let m = rule(
            "add not from 10.1.0.0/16 to 10.2.0.0/16 lookup 1000 pref 100 fwmark 0x10/0xff iif eth1 oif eth2",
        )
        .message();
        assert!(m.header.flags.contains(RuleFlags::Invert));
        assert_eq!((m.header.table, m.header.src_len, m.header.dst_len), (0, 16, 16));
        for a in [
            RuleAttribute::Table(1000),
            RuleAttribute::Source("10.1.0.0".parse().unwrap()),
            RuleAttribute::Destination("10.2.0.0".parse().unwrap()),
            RuleAttribute::Priority(100),
            RuleAttribute::FwMark(16),
            RuleAttribute::FwMask(255),
            RuleAttribute::Iifname("eth1".into()),
            RuleAttribute::Oifname("eth2".into()),
        ] {
            assert!(m.attributes.contains(&a), "{a:?} missing from {m:?}");
        }
        assert_eq!(rule("add from all lookup main priority 5").from, Some(Prefix { addr: None, len: 0 }));
        assert_eq!(rule("add to 10.0.0.1 table local order 5").to.unwrap().len, 32);
        assert_eq!(rule("add dev eth1 table default prio 5").iif.as_deref(), Some("eth1"));
        assert_eq!(rule("add fwmark 7 preference 6").fwmark, Some((7, None)));
    }

    #[test]
    fn rule_delete_and_families() {
        let cmd = rule("del priority 100");
        assert_eq!(cmd.flags(), 0);
        let m = cmd.message();
        assert_eq!((m.header.action, m.header.table), (RuleAction::Unspec, 0));
        assert_eq!(m.attributes, vec![RuleAttribute::Priority(100)]);
        assert_eq!(rule("delete from 10.0.0.0/8 table 100").message().header.table, 100);
        assert_eq!(rule("add from 2001:db8::/64 table 100").message().header.family, AddressFamily::Inet6);
        assert_eq!(rule("-6 add fwmark 1 table 100").message().header.family, AddressFamily::Inet6);
    }
}
