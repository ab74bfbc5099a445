//! `ip route <op> ...` and `ip rule <op> ...` as the native path takes
//! them; anything else is None, and left to `ip`.

use std::net::IpAddr;

use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::route::RouteType;

use super::tokens::{ifname, number, once, proto, route_type, scope, table, Tokens};
use crate::family::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOp {
    Add,
    Delete,
    Replace,
    Change,
    Append,
    Prepend,
}

impl RouteOp {
    fn parse(word: &str) -> Option<RouteOp> {
        Some(match word {
            "add" => RouteOp::Add,
            "del" | "delete" => RouteOp::Delete,
            "replace" => RouteOp::Replace,
            "change" | "chg" => RouteOp::Change,
            "append" => RouteOp::Append,
            "prepend" => RouteOp::Prepend,
            _ => return None,
        })
    }

    /// The netlink flags `ip route <op>` sends, besides REQUEST and ACK.
    pub fn flags(self) -> u16 {
        match self {
            RouteOp::Add => NLM_F_CREATE | NLM_F_EXCL,
            RouteOp::Delete => 0,
            RouteOp::Replace => NLM_F_CREATE | NLM_F_REPLACE,
            RouteOp::Change => NLM_F_REPLACE,
            RouteOp::Append => NLM_F_CREATE | NLM_F_APPEND,
            RouteOp::Prepend => NLM_F_CREATE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOp {
    Add,
    Delete,
}

/// An address and prefix length; no address for `default`/`all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: Option<IpAddr>,
    pub len: u8,
}

/// `ip route <op> ...` as the native path understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCmd {
    pub op: RouteOp,
    /// From `-4`/`-6` or the first address; None: IPv4.
    pub family: Option<Family>,
    pub kind: Option<RouteType>,
    pub dst: Prefix,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub src: Option<IpAddr>,
    pub metric: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
    pub proto: Option<u8>,
    pub onlink: bool,
    /// MTU, and whether it is locked.
    pub mtu: Option<(u32, bool)>,
}

/// `ip rule <op> ...` as the native path understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCmd {
    pub op: RuleOp,
    pub family: Option<Family>,
    pub not: bool,
    pub from: Option<Prefix>,
    pub to: Option<Prefix>,
    pub table: Option<u32>,
    pub priority: Option<u32>,
    pub fwmark: Option<(u32, Option<u32>)>,
    pub iif: Option<String>,
    pub oif: Option<String>,
}

/// `ip route` arguments the native path takes, or None: run `ip`.
pub fn parse_route(args: &[String]) -> Option<RouteCmd> {
    let mut t = Tokens::new(args);
    let op = RouteOp::parse(t.next()?)?;
    let (mut kind, mut dst, mut via, mut dev, mut src) = (None, None, None, None, None);
    let (mut metric, mut table_id, mut scope_id, mut proto_id, mut mtu) = (None, None, None, None, None);
    let mut onlink = false;
    while let Some(word) = t.next() {
        match word {
            "via" => {
                let ip = t.next()?;
                once(&mut via, t.addr(ip))?
            }
            "dev" | "oif" => once(&mut dev, t.next().map(str::to_string))?,
            "src" => {
                let ip = t.next()?;
                once(&mut src, t.addr(ip))?
            }
            "metric" | "priority" | "preference" => once(&mut metric, t.next().and_then(number))?,
            "table" => once(&mut table_id, t.next().and_then(table))?,
            "scope" => once(&mut scope_id, t.next().and_then(scope))?,
            "proto" | "protocol" => once(&mut proto_id, t.next().and_then(proto))?,
            "onlink" if !onlink => onlink = true,
            "mtu" => {
                let (value, lock) = match t.next()? {
                    "lock" => (t.next()?, true),
                    value => (value, false),
                };
                once(&mut mtu, number(value).map(|n| (n, lock)))?
            }
            word => {
                let mut word = word;
                if word == "to" {
                    word = t.next()?;
                }
                if let Some(k) = route_type(word) {
                    once(&mut kind, Some(k))?;
                    word = t.next()?;
                }
                once(&mut dst, t.prefix(word))?
            }
        }
    }
    Some(RouteCmd {
        op,
        family: t.family,
        kind,
        dst: dst?,
        via,
        dev,
        src,
        metric,
        table: table_id,
        scope: scope_id,
        proto: proto_id,
        onlink,
        mtu,
    })
}

/// `ip rule` arguments the native path takes, or None: run `ip`.
pub fn parse_rule(args: &[String]) -> Option<RuleCmd> {
    let mut t = Tokens::new(args);
    let op = match t.next()? {
        "add" => RuleOp::Add,
        "del" | "delete" => RuleOp::Delete,
        _ => return None,
    };
    let mut cmd = RuleCmd {
        op,
        family: None,
        not: false,
        from: None,
        to: None,
        table: None,
        priority: None,
        fwmark: None,
        iif: None,
        oif: None,
    };
    let mut any = false;
    while let Some(word) = t.next() {
        any = true;
        match word {
            "not" if !cmd.not => cmd.not = true,
            "from" => {
                let p = t.next()?;
                once(&mut cmd.from, t.prefix(p))?
            }
            "to" => {
                let p = t.next()?;
                once(&mut cmd.to, t.prefix(p))?
            }
            "table" | "lookup" => once(&mut cmd.table, t.next().and_then(table))?,
            "priority" | "prio" | "preference" | "pref" | "order" => {
                once(&mut cmd.priority, t.next().and_then(number))?
            }
            "fwmark" => {
                let value = t.next()?;
                let mark = match value.split_once('/') {
                    Some((mark, mask)) => number(mark).zip(number(mask).map(Some)),
                    None => number(value).map(|m| (m, None)),
                };
                once(&mut cmd.fwmark, mark)?
            }
            "iif" | "dev" => once(&mut cmd.iif, t.next().and_then(ifname))?,
            "oif" => once(&mut cmd.oif, t.next().and_then(ifname))?,
            _ => return None,
        }
    }
    // `ip rule add` and `del` with nothing after them are refusals of `ip`'s.
    if !any {
        return None;
    }
    cmd.family = t.family;
    Some(cmd)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn route_forms_left_to_ip() {
        for line in [
            "",
            "show",
            "list table all",
            "get 10.0.0.1",
            "flush dev eth1",
            "save",
            "restore",
            "help",
            "add",
            "add dev eth1",
            "test 10.0.0.0/8 dev eth1",
            "add 10.7.0.0/16 dev eth1 realm 5",
            "add 10.7.0.0/16 dev eth1 expires 10",
            "add 10.7.0.0/16 nexthop via 10.9.0.1 nexthop via 10.9.0.3",
            "add 10.7.0.0/16 encap mpls 100 via 10.9.0.1",
            "add 10.7.0.0/16 dev eth1 rto_min 10ms",
            "add 2001:db8::/32 dev eth1 pref high",
            "add 10/8 dev eth1",
            "add 10.0.0.0/255.0.0.0 dev eth1",
            "add 10.0.0.0/33 dev eth1",
            "add 10.0.0.0/8 via 2001:db8::1",
            "-6 add 10.0.0.0/8 dev eth1",
            "-4 -6 add 10.0.0.0/8 dev eth1",
            "add 10.0.0.0/8 dev eth1 table mytable",
            "add 10.0.0.0/8 dev eth1 metric -1",
            "add 10.0.0.0/8 dev eth1 metric 4294967296",
            "add 10.0.0.0/8 dev eth1 metric",
            "add 10.0.0.0/8 dev eth1 metric 1 metric 2",
            "add 10.0.0.0/8 10.1.0.0/16 dev eth1",
            "add 10.0.0.0/8 dev eth1 scope 256",
            "add 10.0.0.0/8 dev eth1 proto bird",
            "add 10.0.0.0/8 dev eth1 met 5",
            "add any dev eth1",
            "add anycast 10.0.0.0/8 dev eth1",
            "a 10.0.0.0/8 dev eth1",
            "add fe80::1%eth1 dev eth1",
        ] {
            assert_eq!(parse_route(&words(line)), None, "{line:?} should run ip");
        }
    }

    #[test]
    fn rule_forms_left_to_ip() {
        for line in [
            "",
            "show",
            "list",
            "flush",
            "save",
            "add",
            "del",
            "add blackhole from 10.0.0.0/8",
            "add from 10.0.0.0/8 goto 100",
            "add from 10.0.0.0/8 table 100 realms 5",
            "add from 10.0.0.0/8 table 100 uidrange 1-2",
            "add from 10.0.0.0/8 table 100 ipproto tcp",
            "add from 10.0.0.0/8 table 100 sport 80",
            "add from 10.0.0.0/8 table 100 suppress_prefixlength 0",
            "add from 10.0.0.0/8 table 100 protocol static",
            "add from 10.0.0.0/8 table 100 tos 0x10",
            "add from 10.0.0.0/8 to 2001:db8::/32 table 100",
            "-4 add from 2001:db8::/32 table 100",
            "add from 10.0.0.0/8 lookup mytable",
            "add fwmark 1/ table 100",
            "add fwmark x table 100",
            "add iif a/b table 100",
            "add from 10.0.0.0/8 table 100 table 101",
        ] {
            assert_eq!(parse_rule(&words(line)), None, "{line:?} should run ip");
        }
    }
}
