//! `pipework route|rule|tc <guest> <args...>`: the original handed these to
//! `ip route`, `ip rule` and `tc` inside the guest's network namespace.
//!
//! Native, over netlink in the guest's namespace, with iproute2's defaults
//! (`proto boot`, table main, `scope link` for an IPv4 unicast route without
//! a gateway, the kernel picking a rule's priority when none is given):
//!
//! - `route add|del|delete|replace|change|chg|append|prepend`, optionally
//!   after `-4` or `-6`: a destination (`[to] [TYPE] PREFIX|ADDRESS|default|all`,
//!   TYPE one of `unicast`, `local`, `blackhole`, `unreachable`, `prohibit`,
//!   `throw`), `via ADDRESS` (same family), `dev`/`oif NAME`, `src ADDRESS`,
//!   `metric`/`priority`/`preference N`, `table main|local|default|N`,
//!   `scope global|universe|site|link|host|nowhere|N`,
//!   `proto`/`protocol boot|static|kernel|dhcp|redirect|ra|N`, `onlink`,
//!   `mtu [lock] N`.
//! - `rule add|del|delete`, optionally after `-4` or `-6`: `from`/`to
//!   PREFIX|ADDRESS|all`, `table`/`lookup main|local|default|N`,
//!   `priority`/`prio`/`preference`/`pref`/`order N`, `fwmark N[/MASK]`,
//!   `iif`/`dev NAME`, `oif NAME`, `not`.
//!
//! Keywords are taken whole (no abbreviations) and each at most once. The
//! family comes from `-4`/`-6`, else from the first address (IPv4 when none
//! says). A failure prints what `ip` prints (`RTNETLINK answers: File
//! exists`, the kernel's own `Error: ...` when it gives one, `Cannot find
//! device "X"`) and exits as `ip` does (2, or 1 for a missing device).
//!
//! Everything else runs the real `ip route ...` or `ip rule ...` inside the
//! namespace: `show`/`list`/`get`/`flush`/`save`/`restore`, any keyword,
//! abbreviation, name from /etc/iproute2 or address notation the parser does
//! not know (`nexthop`, `encap`, `realm`, `expires`, `pref`, `10/8`...),
//! and anything it would refuse, so that `ip` words the refusal. Leading
//! value-less `ip` options (`-4`, `-6`, `-d`, `-s`, `-j`, `-p`, `-o`, `-r`,
//! `-N`) go before the object word, where `ip` reads them (the original
//! passed them after it, where `ip` refuses them). `tc` always runs the real
//! `tc`. Both are forked and exec'd directly, never through a shell, after
//! the child joins the guest's namespace (setns); stdio is inherited and
//! pipework exits with their status.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{errno_text, Error, Kind, Result};
use crate::family::Family;
use crate::request::{GuestRef, Tool};
use crate::sys::netlink::{errno, kernel_message, Netlink};

const RT_TABLE_UNSPEC: u32 = 0;
const RT_TABLE_DEFAULT: u32 = 253;
const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;
/// Bit of RTAX_MTU (2) in RTAX_LOCK.
const RTAX_MTU_LOCK: u32 = 1 << 2;
/// `ip` options that take no value, which may precede the object word.
const IP_FLAGS: &[&str] = &["-4", "-6", "-d", "-s", "-j", "-p", "-o", "-r", "-N"];

pub async fn run(tool: Tool, label: &GuestRef, args: &[String]) -> Result<()> {
    let guest = crate::resolve::guest::resolve(label).await?;
    let ns = guest.netns();
    match tool {
        Tool::Tc => exec_in(ns, "tc", args),
        Tool::Route => match parse_route(args) {
            Some(cmd) => {
                tracing::info!("ip route {}: native", args.join(" "));
                route(ns, &cmd).await
            }
            None => exec_in(ns, "ip", &ip_argv("route", args)),
        },
        Tool::Rule => match parse_rule(args) {
            Some(cmd) => {
                tracing::info!("ip rule {}: native", args.join(" "));
                rule(ns, &cmd).await
            }
            None => exec_in(ns, "ip", &ip_argv("rule", args)),
        },
    }
}

// ---------------------------------------------------------------- running ip, tc

/// `ip [leading flags] <object> <rest>`.
pub fn ip_argv(object: &str, args: &[String]) -> Vec<String> {
    let flags = args.iter().take_while(|a| IP_FLAGS.contains(&a.as_str())).count();
    let mut argv: Vec<String> = args[..flags].to_vec();
    argv.push(object.to_string());
    argv.extend_from_slice(&args[flags..]);
    argv
}

/// Runs `program args` inside the namespace `ns`, and passes its status on.
fn exec_in(ns: BorrowedFd<'_>, program: &str, args: &[String]) -> Result<()> {
    tracing::info!("running {program} {} in the guest's namespace", args.join(" "));
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: between fork and exec the child only makes the setns system
    // call on an fd the parent keeps open; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = match cmd.status() {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(Kind::NotFound, format!("{program} not found; install iproute2")))
        }
        Err(e) => return Err(Error::from(e).context(format!("running {program}"))),
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(Error::exit(code)),
        (None, Some(signal)) => Err(Error::exit(128 + signal)),
        (None, None) => Err(Error::exit(1)),
    }
}

// ---------------------------------------------------------------- parsing

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

/// Tokens with the family they imply.
struct Tokens<'a> {
    rest: std::slice::Iter<'a, String>,
    family: Option<Family>,
}

impl<'a> Tokens<'a> {
    /// Takes a leading `-4`/`-6`.
    fn new(args: &'a [String]) -> Tokens<'a> {
        let (family, rest) = match args.first().map(String::as_str) {
            Some("-4") => (Some(Family::V4), &args[1..]),
            Some("-6") => (Some(Family::V6), &args[1..]),
            _ => (None, args),
        };
        Tokens { rest: rest.iter(), family }
    }

    fn next(&mut self) -> Option<&'a str> {
        self.rest.next().map(String::as_str)
    }

    /// An address of the family in force, which it sets if unset.
    fn addr(&mut self, word: &str) -> Option<IpAddr> {
        let ip: IpAddr = word.parse().ok()?;
        self.agree(Family::of(ip))?;
        Some(ip)
    }

    fn agree(&mut self, family: Family) -> Option<()> {
        match self.family {
            Some(f) if f != family => None,
            _ => {
                self.family = Some(family);
                Some(())
            }
        }
    }

    /// `ADDRESS/LEN`, `ADDRESS` (a host route) or `default`/`all`.
    fn prefix(&mut self, word: &str) -> Option<Prefix> {
        if word == "default" || word == "all" {
            return Some(Prefix { addr: None, len: 0 });
        }
        let (ip, len) = match word.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (word, None),
        };
        let ip = self.addr(ip)?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(len) => number(len).filter(|l| *l <= max)?,
            None => max,
        };
        Some(Prefix { addr: Some(ip), len: len as u8 })
    }
}

/// Sets `slot` once; a second time refuses (left to `ip`).
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

/// A number as iproute2's get_u32 reads it (strtoul, base 0): decimal,
/// `0x` hexadecimal or `0` octal. Signs and spaces are left to `ip`.
pub fn number(word: &str) -> Option<u32> {
    let (digits, radix) = if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        (hex, 16)
    } else if word.len() > 1 && word.starts_with('0') {
        (&word[1..], 8)
    } else {
        (word, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

fn byte(word: &str) -> Option<u8> {
    number(word).and_then(|n| u8::try_from(n).ok())
}

/// A table number or one of the names every rt_tables file has.
fn table(word: &str) -> Option<u32> {
    match word {
        "main" => Some(RT_TABLE_MAIN),
        "local" => Some(RT_TABLE_LOCAL),
        "default" => Some(RT_TABLE_DEFAULT),
        _ => number(word),
    }
}

fn scope(word: &str) -> Option<u8> {
    match word {
        "global" | "universe" => Some(0),
        "site" => Some(200),
        "link" => Some(253),
        "host" => Some(254),
        "nowhere" => Some(255),
        _ => byte(word),
    }
}

fn proto(word: &str) -> Option<u8> {
    match word {
        "redirect" => Some(1),
        "kernel" => Some(2),
        "boot" => Some(3),
        "static" => Some(4),
        "ra" => Some(9),
        "dhcp" => Some(16),
        _ => byte(word),
    }
}

fn route_type(word: &str) -> Option<RouteType> {
    Some(match word {
        "unicast" => RouteType::Unicast,
        "local" => RouteType::Local,
        "blackhole" => RouteType::BlackHole,
        "unreachable" => RouteType::Unreachable,
        "prohibit" => RouteType::Prohibit,
        "throw" => RouteType::Throw,
        _ => return None,
    })
}

/// The interface names iproute2 accepts in a rule.
fn ifname(word: &str) -> Option<String> {
    crate::request::check_ifname(word).ok().map(|_| word.to_string())
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

// ---------------------------------------------------------------- messages

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

// ---------------------------------------------------------------- netlink

/// The line `ip` prints for a refusal: the kernel's message if any, else
/// strerror, as iproute2's rtnl_talk does.
fn refusal_text(e: &rtnetlink::Error) -> String {
    match (kernel_message(e), errno(e)) {
        (Some(m), _) if m.ends_with('.') => format!("Error: {m}"),
        (Some(m), _) => format!("Error: {m}."),
        (None, Some(code)) => format!("RTNETLINK answers: {}", errno_text(code)),
        (None, None) => format!("RTNETLINK answers: {e}"),
    }
}

/// Prints what `ip` prints and exits as it does (2).
fn refused(e: rtnetlink::Error) -> Error {
    eprintln!("{}", refusal_text(&e));
    Error::exit(2)
}

async fn route(ns: BorrowedFd<'_>, cmd: &RouteCmd) -> Result<()> {
    let conn = Netlink::inside(ns)?;
    let oif = match &cmd.dev {
        None => None,
        Some(dev) => match conn.link(dev).await.ok().flatten() {
            Some(link) => Some(link.index),
            None => {
                eprintln!("Cannot find device \"{dev}\"");
                return Err(Error::exit(1));
            }
        },
    };
    let msg = cmd.message(oif);
    let msg = match cmd.op {
        RouteOp::Delete => RouteNetlinkMessage::DelRoute(msg),
        _ => RouteNetlinkMessage::NewRoute(msg),
    };
    conn.talk(msg, cmd.op.flags()).await.map_err(refused)
}

async fn rule(ns: BorrowedFd<'_>, cmd: &RuleCmd) -> Result<()> {
    let conn = Netlink::inside(ns)?;
    let msg = match cmd.op {
        RuleOp::Add => RouteNetlinkMessage::NewRule(cmd.message()),
        RuleOp::Delete => RouteNetlinkMessage::DelRule(cmd.message()),
    };
    conn.talk(msg, cmd.flags()).await.map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

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

    #[test]
    fn ip_options_go_before_the_object() {
        assert_eq!(ip_argv("route", &words("show table all")), words("route show table all"));
        assert_eq!(ip_argv("route", &words("-6 -d show")), words("-6 -d route show"));
        assert_eq!(ip_argv("rule", &words("-n x show")), words("rule -n x show"));
    }

    #[test]
    fn numbers_as_strtoul_base_zero() {
        assert_eq!(number("0"), Some(0));
        assert_eq!(number("42"), Some(42));
        assert_eq!(number("0x2A"), Some(42));
        assert_eq!(number("052"), Some(42));
        assert_eq!(number("4294967295"), Some(u32::MAX));
        for bad in ["", "0x", "08", "+1", "-1", " 1", "1k", "4294967296"] {
            assert_eq!(number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refusals_read_like_iproute2() {
        use crate::sys::netlink::tests::refusal;
        assert_eq!(refusal_text(&refusal(libc::EEXIST, None)), "RTNETLINK answers: File exists");
        assert_eq!(refusal_text(&refusal(libc::ESRCH, None)), "RTNETLINK answers: No such process");
        let e = refusal(libc::EINVAL, Some("Nexthop has invalid gateway"));
        assert_eq!(refusal_text(&e), "Error: Nexthop has invalid gateway.");
        let e = refusal(libc::EINVAL, Some("Invalid source address."));
        assert_eq!(refusal_text(&e), "Error: Invalid source address.");
    }
}
