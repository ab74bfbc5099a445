//! DHCPv4 on the wire: the messages a client sends (encoded by dhcproto),
//! the IPv4/UDP framing a packet socket needs before the interface has an
//! address, and the lease read back from an ACK.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, OptionCode, UnknownOption};
use dhcproto::{Decodable, Encodable};

use super::options::{Native, CLIENT_ID};
use super::timing::POLICY;
use crate::error::{self, Error};
use crate::mac::Mac;

pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;

/// What the lease needs from the server, asked for in every request.
const WANTED: [u8; 10] = [1, 3, 6, 15, 26, 28, 51, 54, 58, 59];
/// Classless static routes (RFC 3442).
const CLASSLESS_ROUTES: u8 = 121;

/// Which message, and the addresses it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover,
    /// SELECTING: the offer taken, from that server.
    Select {
        offered: Ipv4Addr,
        server: Ipv4Addr,
    },
    /// RENEWING or REBINDING: `ciaddr` set, nothing else.
    Extend {
        bound: Ipv4Addr,
    },
    Release {
        bound: Ipv4Addr,
        server: Ipv4Addr,
    },
}

pub fn request(kind: Kind, xid: u32, mac: Mac, native: &Native) -> Vec<u8> {
    let zero = Ipv4Addr::UNSPECIFIED;
    let ciaddr = match kind {
        Kind::Extend { bound } | Kind::Release { bound, .. } => bound,
        _ => zero,
    };
    let mut msg = Message::new_with_id(xid, ciaddr, zero, zero, zero, &mac.0);
    if native.broadcast && ciaddr == zero {
        msg.set_flags(Flags::default().set_broadcast());
    }
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(match kind {
        Kind::Discover => MessageType::Discover,
        Kind::Release { .. } => MessageType::Release,
        _ => MessageType::Request,
    }));
    if !native.no_client_id {
        let mut id = vec![1];
        id.extend_from_slice(&mac.0);
        opts.insert(DhcpOption::ClientIdentifier(id));
    }
    match kind {
        Kind::Discover => {
            if let Some(ip) = native.requested {
                opts.insert(DhcpOption::RequestedIpAddress(ip));
            }
        }
        Kind::Select { offered, server } => {
            opts.insert(DhcpOption::RequestedIpAddress(offered));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
        Kind::Release { server, .. } => {
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
        Kind::Extend { .. } => {}
    }
    if !matches!(kind, Kind::Release { .. }) {
        for (code, value) in &native.send {
            // Raw bytes under the option's own code, whatever its type.
            opts.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::from(*code), value.clone())));
        }
        let mut wanted: Vec<u8> = WANTED.into_iter().chain([CLASSLESS_ROUTES]).collect();
        wanted.extend(native.request.iter().filter(|c| !WANTED.contains(c) && **c != CLASSLESS_ROUTES));
        opts.insert(DhcpOption::ParameterRequestList(wanted.into_iter().map(OptionCode::from).collect()));
    }
    // The -x client identifier replaces ours, as in udhcpc.
    if let Some((_, id)) = native.send.iter().find(|(c, _)| *c == CLIENT_ID) {
        opts.insert(DhcpOption::ClientIdentifier(id.clone()));
    }
    msg.to_vec().expect("a DHCP request always encodes")
}

/// A server's answer to us.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: MessageType,
    pub lease: Lease,
}

/// What an OFFER or ACK gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub mtu: Option<u16>,
    /// Option 121: destination, prefix, gateway (0.0.0.0: on link).
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    /// Option 6, for `show`, and for the guest's resolv.conf with
    /// `--resolv-conf` (else the runtime owns it).
    pub dns: Vec<Ipv4Addr>,
    /// Option 15, if it is a domain name (`resolv_conf::domain`).
    pub domain: Option<String>,
    pub time: Duration,
    pub t1: Duration,
    pub t2: Duration,
}

#[cfg(test)]
impl Lease {
    /// 10.9.0.50/24 from 10.9.0.1 for two minutes, nothing else.
    pub fn sample() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 9, 0, 50),
            prefix: 24,
            server: Ipv4Addr::new(10, 9, 0, 1),
            routers: Vec::new(),
            mtu: None,
            routes: Vec::new(),
            dns: Vec::new(),
            domain: None,
            time: Duration::from_secs(120),
            t1: Duration::from_secs(60),
            t2: Duration::from_secs(105),
        }
    }
}

/// A lease a server offered or acknowledged that is not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub address: Ipv4Addr,
    pub server: Ipv4Addr,
    pub why: String,
}

impl Refused {
    pub fn on(&self, ifname: &str) -> Error {
        let Refused { address, server, why } = self;
        Error::new(
            error::Kind::Io,
            format!("refused the lease of {address} from {server} on {ifname}: {why}"),
        )
    }
}

/// A DHCP payload, if it answers `xid` for `mac`; refused if it does but
/// cannot be taken as it is.
pub fn reply(payload: &[u8], xid: u32, mac: Mac) -> Option<Result<Reply, Refused>> {
    let msg = Message::from_bytes(payload).ok()?;
    if msg.xid() != xid || msg.chaddr().get(..6) != Some(&mac.0[..]) {
        return None;
    }
    let opts = msg.opts();
    let kind = opts.msg_type()?;
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => *ip,
        _ => msg.siaddr(),
    };
    let prefix = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => match prefix_of(*mask) {
            Some(prefix) => prefix,
            None => {
                let what = if mask.is_unspecified() { "empty" } else { "non-contiguous" };
                let why = format!("{what} subnet mask {mask}");
                return Some(Err(Refused { address: msg.yiaddr(), server, why }));
            }
        },
        _ => natural_prefix(msg.yiaddr()),
    };
    let routers = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(list)) => list.clone(),
        _ => Vec::new(),
    };
    let mtu = match opts.get(OptionCode::InterfaceMtu) {
        Some(DhcpOption::InterfaceMtu(mtu)) if *mtu >= 68 => Some(*mtu),
        _ => None,
    };
    let routes = match opts.get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(list)) => {
            list.iter().map(|(net, gw)| (net.network(), net.prefix_len(), *gw)).collect()
        }
        _ => Vec::new(),
    };
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(list)) => list.clone(),
        _ => Vec::new(),
    };
    let domain = match opts.get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(name)) => super::resolv_conf::domain(name),
        _ => None,
    };
    let secs = |code| match opts.get(code) {
        Some(DhcpOption::AddressLeaseTime(s) | DhcpOption::Renewal(s) | DhcpOption::Rebinding(s)) => {
            Some(u64::from(*s))
        }
        _ => None,
    };
    let times = POLICY.times(
        secs(OptionCode::AddressLeaseTime),
        secs(OptionCode::Renewal),
        secs(OptionCode::Rebinding),
    );
    let lease = Lease {
        address: msg.yiaddr(),
        prefix,
        server,
        routers,
        mtu,
        routes,
        dns,
        domain,
        time: times.lease,
        t1: times.t1,
        t2: times.t2,
    };
    Some(Ok(Reply { kind, lease }))
}

/// The prefix length of a subnet mask, if it is one: some ones, then only
/// zeros. 255.0.255.0 is none (not /0); 0.0.0.0 would put all of IPv4 on
/// the link.
fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (ones > 0 && bits.count_ones() == ones).then_some(ones as u8)
}

/// The class prefix, for a server that sends no subnet mask.
fn natural_prefix(ip: Ipv4Addr) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// An IPv4 packet carrying a UDP datagram from port 68 to port 67.
pub fn frame(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0x10]); // version 4, 5 words; low-delay TOS as dhclient
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]); // id, no fragments, TTL 64, UDP
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = checksum(&[&p[..20]]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    p.extend_from_slice(&SERVER_PORT.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let sum = match checksum(&[&pseudo, &p[20..]]) {
        0 => 0xffff,
        s => s,
    };
    p[26..28].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The DHCP payload of an IPv4 packet sent to UDP port 68, if it is one.
pub fn unframe(packet: &[u8]) -> Option<&[u8]> {
    let header = usize::from(packet.first()? & 0x0f) * 4;
    if packet[0] >> 4 != 4 || packet.get(9) != Some(&17) || header < 20 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]])).min(packet.len());
    let udp = packet.get(header..total)?;
    if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != CLIENT_PORT {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]])).min(udp.len());
    udp.get(8..len)
}

/// The Internet checksum over the concatenated parts (each of even length
/// but the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_checks_out() {
        let payload = b"hello dhcp";
        let packet = frame(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, payload);
        assert_eq!(checksum(&[&packet[..20]]), 0, "IP header checksum");
        // Swapped ports make it a packet for the client: unframe reads it.
        let mut back = packet.clone();
        back[20..22].copy_from_slice(&SERVER_PORT.to_be_bytes());
        back[22..24].copy_from_slice(&CLIENT_PORT.to_be_bytes());
        assert_eq!(unframe(&back), Some(&payload[..]));
        assert_eq!(unframe(&packet), None, "a packet to the server is not ours");
    }

    /// An ACK from 10.9.0.1 of 10.9.0.50 for `mac`, xid 7, with `mask`.
    fn ack(mac: Mac, mask: Option<Ipv4Addr>) -> Vec<u8> {
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut msg = Message::new_with_id(7, zero, Ipv4Addr::new(10, 9, 0, 50), zero, zero, &mac.0);
        msg.opts_mut().insert(DhcpOption::MessageType(MessageType::Ack));
        msg.opts_mut().insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 9, 0, 1)));
        msg.opts_mut().insert(DhcpOption::AddressLeaseTime(0));
        if let Some(mask) = mask {
            msg.opts_mut().insert(DhcpOption::SubnetMask(mask));
        }
        msg.to_vec().unwrap()
    }

    #[test]
    fn a_mask_that_is_no_prefix_is_refused() {
        let mac: Mac = "02:00:00:00:00:07".parse().unwrap();
        let prefix = |mask: Option<Ipv4Addr>| reply(&ack(mac, mask), 7, mac).unwrap().map(|r| r.lease.prefix);
        assert_eq!(prefix(Some(Ipv4Addr::new(255, 255, 255, 0))), Ok(24));
        assert_eq!(prefix(Some(Ipv4Addr::BROADCAST)), Ok(32));
        assert_eq!(prefix(None), Ok(8));
        for (mask, why) in [
            (Ipv4Addr::new(255, 0, 255, 0), "non-contiguous subnet mask 255.0.255.0"),
            (Ipv4Addr::new(0, 255, 255, 255), "non-contiguous subnet mask 0.255.255.255"),
            (Ipv4Addr::UNSPECIFIED, "empty subnet mask 0.0.0.0"),
        ] {
            let refused = prefix(Some(mask)).unwrap_err();
            assert_eq!(
                refused.on("eth1").to_string(),
                format!("pipework: refused the lease of 10.9.0.50 from 10.9.0.1 on eth1: {why}")
            );
        }
    }

    #[test]
    fn lease_times_are_clamped() {
        let mac: Mac = "02:00:00:00:00:07".parse().unwrap();
        let lease = reply(&ack(mac, None), 7, mac).unwrap().unwrap().lease;
        assert_eq!(
            (lease.time, lease.t1, lease.t2),
            (Duration::from_secs(60), Duration::from_secs(30), Duration::from_secs(52))
        );
    }

    #[test]
    fn discover_carries_the_options() {
        let native = Native::parse(Some("-V acme -r 10.1.2.3"), Some("web")).unwrap();
        let mac: Mac = "02:00:00:00:00:07".parse().unwrap();
        let bytes = request(Kind::Discover, 7, mac, &native);
        let msg = Message::from_bytes(&bytes).unwrap();
        let opts = msg.opts();
        assert_eq!(opts.msg_type(), Some(MessageType::Discover));
        assert!(matches!(opts.get(OptionCode::Hostname), Some(DhcpOption::Hostname(h)) if h == "web"));
        assert!(
            matches!(opts.get(OptionCode::ClassIdentifier), Some(DhcpOption::ClassIdentifier(v)) if v == b"acme")
        );
        assert!(
            matches!(opts.get(OptionCode::RequestedIpAddress), Some(DhcpOption::RequestedIpAddress(ip)) if *ip == Ipv4Addr::new(10, 1, 2, 3))
        );
        assert!(
            matches!(opts.get(OptionCode::ClientIdentifier), Some(DhcpOption::ClientIdentifier(id)) if id[0] == 1 && id[1..] == mac.0)
        );
    }
}
