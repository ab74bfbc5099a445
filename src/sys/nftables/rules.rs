//! pipework's own nf_tables rules, in tables of its own: the masquerade of
//! a CNI attachment's addresses (`inet pipework`, chain `postrouting`) and
//! the source-MAC check of its bridge port (`bridge pipework`, chain
//! `prerouting`). Each rule is built twice, as expressions for the kernel
//! and as the `nft` line that means the same, and carries its
//! attachment's tag as its comment.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use md5::{Digest, Md5};

use super::expr::{Base, CmpOp, Expr, MetaKey};
use crate::mac::Mac;

/// The name of both of pipework's tables.
pub const TABLE: &str = "pipework";

/// nft's longest comment.
const COMMENT_MAX: usize = 128;

/// Where a kind of rule goes: a base chain of one of pipework's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// `inet pipework postrouting`: type nat, priority srcnat (100).
    Masquerade,
    /// `bridge pipework prerouting`: type filter, priority -300 (the
    /// reference's, ahead of everything on the bridge).
    MacCheck,
}

impl Hook {
    /// NFPROTO_INET, NFPROTO_BRIDGE.
    pub fn family(self) -> u8 {
        match self {
            Hook::Masquerade => 1,
            Hook::MacCheck => 7,
        }
    }

    pub fn family_name(self) -> &'static str {
        match self {
            Hook::Masquerade => "inet",
            Hook::MacCheck => "bridge",
        }
    }

    pub fn chain(self) -> &'static str {
        match self {
            Hook::Masquerade => "postrouting",
            Hook::MacCheck => "prerouting",
        }
    }

    pub fn chain_type(self) -> &'static str {
        match self {
            Hook::Masquerade => "nat",
            Hook::MacCheck => "filter",
        }
    }

    /// NF_INET_POST_ROUTING, NF_BR_PRE_ROUTING.
    pub fn hook_number(self) -> u32 {
        match self {
            Hook::Masquerade => 4,
            Hook::MacCheck => 0,
        }
    }

    pub fn priority(self) -> i32 {
        match self {
            Hook::Masquerade => 100,
            Hook::MacCheck => -300,
        }
    }

    /// `inet pipework postrouting`, as nft names a chain.
    pub fn name(self) -> String {
        format!("{} {TABLE} {}", self.family_name(), self.chain())
    }

    /// The nft commands that make the table and chain if absent.
    pub fn declare(self) -> String {
        // Each chain is named after its hook.
        let (family, chain, kind) = (self.family_name(), self.chain(), self.chain_type());
        format!(
            "add table {family} {TABLE}; add chain {family} {TABLE} {chain} \
             {{ type {kind} hook {chain} priority {}; policy accept; }}",
            self.priority()
        )
    }
}

/// A rule: its chain, its expressions, and the same as an nft line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub hook: Hook,
    pub exprs: Vec<Expr>,
    pub text: String,
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The destination in (`Eq`) or out of (`Neq`) `net`, as nft encodes a
/// prefix: whole bytes are compared as they are, a prefix that ends inside
/// a byte is masked over the whole address.
fn destination(net: IpNetwork, op: CmpOp) -> Vec<Expr> {
    let (offset, len) = if net.is_ipv4() { (16, 4) } else { (24, 16) };
    let network = octets(net.network());
    let prefix = net.prefix() as usize;
    if prefix.is_multiple_of(8) {
        let n = prefix / 8;
        return vec![
            Expr::Payload { base: Base::Network, offset, len: n as u32 },
            Expr::Cmp { op, data: network[..n].to_vec() },
        ];
    }
    let mask = octets(net.mask());
    vec![
        Expr::Payload { base: Base::Network, offset, len },
        Expr::Bitwise { mask },
        Expr::Cmp { op, data: network },
    ]
}

/// Traffic from `source`'s address to anywhere outside its subnet and not
/// multicast is masqueraded: what the reference's iptables chain for the
/// address does (`-d <subnet> -j ACCEPT`, `! -d <multicast> -j MASQUERADE`).
/// None for a /0, which has no outside.
pub fn masquerade(source: IpNetwork) -> Option<Rule> {
    if source.prefix() == 0 {
        return None;
    }
    let ip = source.ip();
    let (nfproto, saddr_offset, word, multicast) = match ip {
        IpAddr::V4(_) => (2u8, 12, "ip", IpNetwork::new([224, 0, 0, 0].into(), 4)),
        IpAddr::V6(_) => (10u8, 8, "ip6", IpNetwork::new([0xff00, 0, 0, 0, 0, 0, 0, 0].into(), 8)),
    };
    let multicast = multicast.ok()?;
    let subnet = IpNetwork::new(source.network(), source.prefix()).ok()?;
    let saddr = octets(ip);
    let mut exprs = vec![
        Expr::Meta { key: MetaKey::NfProto },
        Expr::Cmp { op: CmpOp::Eq, data: vec![nfproto] },
        Expr::Payload { base: Base::Network, offset: saddr_offset, len: saddr.len() as u32 },
        Expr::Cmp { op: CmpOp::Eq, data: saddr },
    ];
    exprs.extend(destination(subnet, CmpOp::Neq));
    exprs.extend(destination(multicast, CmpOp::Neq));
    exprs.push(Expr::Masquerade);
    let text = format!("{word} saddr {ip} {word} daddr != {subnet} {word} daddr != {multicast} masquerade");
    Some(Rule { hook: Hook::Masquerade, exprs, text })
}

/// Frames entering the bridge from `port` whose source MAC is not `mac`
/// are dropped: the reference's spoof check (its `cni-br-iface` chains) in
/// one rule.
pub fn mac_check(port: &str, mac: Mac) -> Rule {
    let mut name = [0u8; 16];
    let len = port.len().min(15);
    name[..len].copy_from_slice(&port.as_bytes()[..len]);
    let exprs = vec![
        Expr::Meta { key: MetaKey::IifName },
        Expr::Cmp { op: CmpOp::Eq, data: name.to_vec() },
        Expr::Payload { base: Base::Link, offset: 6, len: 6 },
        Expr::Cmp { op: CmpOp::Neq, data: mac.0.to_vec() },
        Expr::Drop,
    ];
    let text = format!("iifname \"{port}\" ether saddr != {mac} drop");
    Rule { hook: Hook::MacCheck, exprs, text }
}

/// An interface name as iptables-nft compares it: the name and its NUL
/// (a name without `+` matches whole).
fn ifname_with_nul(name: &str) -> Vec<u8> {
    [name.as_bytes(), b"\0"].concat()
}

/// iptables' `-i BRIDGE -o BRIDGE -j ACCEPT`, with exactly the expressions
/// iptables-nft writes for it, so that `iptables -S` lists it as that:
/// frames forwarded from the bridge to itself accepted.
pub fn bridge_accept(bridge: &str) -> Vec<Expr> {
    vec![
        Expr::Meta { key: MetaKey::IifName },
        Expr::Cmp { op: CmpOp::Eq, data: ifname_with_nul(bridge) },
        Expr::Meta { key: MetaKey::OifName },
        Expr::Cmp { op: CmpOp::Eq, data: ifname_with_nul(bridge) },
        Expr::Counter,
        Expr::Accept,
    ]
}

/// An attachment's rules: with `masquerade`, one per address of
/// `addresses`; with `mac_check`, one for its bridge port `port` and the
/// container's `mac`. What ADD makes, and CHECK and `pipework check` look
/// for.
pub fn of_attachment(
    masquerade: bool,
    mac_check: bool,
    addresses: &[IpNetwork],
    port: &str,
    mac: Mac,
) -> Vec<Rule> {
    let mut all = Vec::new();
    if mac_check {
        all.push(self::mac_check(port, mac));
    }
    if masquerade {
        all.extend(addresses.iter().filter_map(|a| self::masquerade(*a)));
    }
    all
}

fn hash(text: &str) -> String {
    let digest = Md5::new().chain_update(text.as_bytes()).finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Which attachment a rule is for, as its comment says: a hash of the
/// network's name, a hash of the interface and container ID, then the
/// three in words (cut at nft's 128 characters; the hashes decide).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tag {
    pub comment: String,
}

impl Tag {
    pub fn new(network: &str, container_id: &str, ifname: &str) -> Tag {
        let head = format!("{}-{}", hash(network), hash(&format!("{ifname}:{container_id}")));
        let mut comment = format!("{head} net: {network}, if: {ifname}, id: {container_id}");
        comment.retain(|c| c != '"' && !c.is_control());
        let mut end = comment.len().min(COMMENT_MAX);
        while !comment.is_char_boundary(end) {
            end -= 1;
        }
        comment.truncate(end);
        Tag { comment }
    }

    /// The hashes, which identify the attachment.
    fn head(&self) -> &str {
        self.comment.split(' ').next().unwrap_or_default()
    }

    /// Whether a rule's comment is this attachment's.
    pub fn marks(&self, comment: &str) -> bool {
        comment.split(' ').next() == Some(self.head())
    }

    /// Whether a rule's comment is of an attachment of `network`.
    pub fn of_network(network: &str, comment: &str) -> bool {
        comment.starts_with(&format!("{}-", hash(network)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::expr::{describe, encode_all};
    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    /// What `nft --debug=netlink add rule inet pipework postrouting <text>`
    /// printed (nftables 1.0.6) for each rule.
    #[test]
    fn masquerade_is_encoded_as_nft_encodes_it() {
        let v4 = masquerade(net("10.77.0.2/24")).unwrap();
        assert_eq!(v4.text, "ip saddr 10.77.0.2 ip daddr != 10.77.0.0/24 ip daddr != 224.0.0.0/4 masquerade");
        assert_eq!(
            describe(&encode_all(&v4.exprs)),
            [
                "[ meta load nfproto => reg 1 ]",
                "[ cmp eq reg 1 0x00000002 ]",
                "[ payload load 4b @ network header + 12 => reg 1 ]",
                "[ cmp eq reg 1 0x02004d0a ]",
                "[ payload load 3b @ network header + 16 => reg 1 ]",
                "[ cmp neq reg 1 0x00004d0a ]",
                "[ payload load 4b @ network header + 16 => reg 1 ]",
                "[ bitwise reg 1 = ( reg 1 & 0x000000f0 ) ^ 0x00000000 ]",
                "[ cmp neq reg 1 0x000000e0 ]",
                "[ masq ]",
            ]
        );
        let v6 = masquerade(net("fd77::2/64")).unwrap();
        assert_eq!(v6.text, "ip6 saddr fd77::2 ip6 daddr != fd77::/64 ip6 daddr != ff00::/8 masquerade");
        assert_eq!(
            describe(&encode_all(&v6.exprs)),
            [
                "[ meta load nfproto => reg 1 ]",
                "[ cmp eq reg 1 0x0000000a ]",
                "[ payload load 16b @ network header + 8 => reg 1 ]",
                "[ cmp eq reg 1 0x000077fd 0x00000000 0x00000000 0x02000000 ]",
                "[ payload load 8b @ network header + 24 => reg 1 ]",
                "[ cmp neq reg 1 0x000077fd 0x00000000 ]",
                "[ payload load 1b @ network header + 24 => reg 1 ]",
                "[ cmp neq reg 1 0x000000ff ]",
                "[ masq ]",
            ]
        );
        assert_eq!(masquerade(net("10.0.0.1/0")), None);
    }

    #[test]
    fn a_prefix_inside_a_byte_is_masked() {
        let r = masquerade(net("172.16.5.9/12")).unwrap();
        assert_eq!(
            describe(&encode_all(&r.exprs))[4..7],
            [
                "[ payload load 4b @ network header + 16 => reg 1 ]",
                "[ bitwise reg 1 = ( reg 1 & 0x0000f0ff ) ^ 0x00000000 ]",
                "[ cmp neq reg 1 0x000010ac ]",
            ]
        );
        let r = masquerade(net("2001:db8::5/61")).unwrap();
        assert_eq!(
            describe(&encode_all(&r.exprs))[4..7],
            [
                "[ payload load 16b @ network header + 24 => reg 1 ]",
                "[ bitwise reg 1 = ( reg 1 & 0xffffffff 0xf8ffffff 0x00000000 0x00000000 ) \
                 ^ 0x00000000 0x00000000 0x00000000 0x00000000 ]",
                "[ cmp neq reg 1 0xb80d0120 0x00000000 0x00000000 0x00000000 ]",
            ]
        );
    }

    /// `nft --debug=netlink add rule bridge pipework prerouting iifname
    /// "veth01234567" ether saddr != 02:00:00:0a:0b:0c drop`.
    #[test]
    fn mac_check_is_encoded_as_nft_encodes_it() {
        let r = mac_check("veth01234567", Mac([2, 0, 0, 0x0a, 0x0b, 0x0c]));
        assert_eq!(r.text, "iifname \"veth01234567\" ether saddr != 02:00:00:0a:0b:0c drop");
        assert_eq!(
            describe(&encode_all(&r.exprs)),
            [
                "[ meta load iifname => reg 1 ]",
                "[ cmp eq reg 1 0x68746576 0x33323130 0x37363534 0x00000000 ]",
                "[ payload load 6b @ link header + 6 => reg 1 ]",
                "[ cmp neq reg 1 0x0a000002 0x00000c0b ]",
                "[ immediate reg 0 drop ]",
            ]
        );
    }

    /// What `nft --debug=netlink list ruleset` shows of the rule
    /// `iptables-nft -A FORWARD -i br0 -o br0 -j ACCEPT` writes (1.8.9).
    #[test]
    fn bridge_accept_is_encoded_as_iptables_nft_encodes_it() {
        assert_eq!(
            describe(&encode_all(&bridge_accept("br0"))),
            [
                "[ meta load iifname => reg 1 ]",
                "[ cmp eq reg 1 0x00307262 ]",
                "[ meta load oifname => reg 1 ]",
                "[ cmp eq reg 1 0x00307262 ]",
                "[ counter pkts 0 bytes 0 ]",
                "[ immediate reg 0 accept ]",
            ]
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Byte for byte what `nft --debug=mnl add rule ...` sends as the
    /// rule's NFTA_RULE_EXPRESSIONS (nftables 1.0.6).
    #[test]
    fn expressions_are_the_bytes_nft_sends() {
        let masq = masquerade(net("10.77.0.2/24")).unwrap();
        assert_eq!(
            hex(&encode_all(&masq.exprs)),
            "24000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d7000\
         20000280080001000000000108000200000000000c0003800500010002000000340001800c0001007061796c6f616400\
         2400028008000100000000010800020000000001080003000000000c08000400000000042c00018008000100636d7000\
         20000280080001000000000108000200000000000c000380080001000a4d0002340001800c0001007061796c6f616400\
         2400028008000100000000010800020000000001080003000000001008000400000000032c00018008000100636d7000\
         20000280080001000000000108000200000000010c000380070001000a4d0000340001800c0001007061796c6f616400\
         240002800800010000000001080002000000000108000300000000100800040000000004440001800c00010062697477\
         69736500340002800800010000000001080002000000000108000300000000040c00048008000100f00000000c000580\
         08000100000000002c00018008000100636d700020000280080001000000000108000200000000010c00038008000100\
         e000000014000180090001006d6173710000000004000280"
        );
        let check = mac_check("veth01234567", Mac([2, 0, 0, 0x0a, 0x0b, 0x0c]));
        assert_eq!(
            hex(&encode_all(&check.exprs)),
            "24000180090001006d6574610000000014000280080002000000000608000100000000013800018008000100636d7000\
         2c0002800800010000000001080002000000000018000380140001007665746830313233343536370000000034000180\
         0c0001007061796c6f616400240002800800010000000001080002000000000008000300000000060800040000000006\
         3000018008000100636d70002400028008000100000000010800020000000001100003800a0001000200000a0b0c0000\
         300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000000"
        );
    }

    #[test]
    fn tags_tell_attachments_and_networks_apart() {
        let a = Tag::new("testnet", "abc", "eth0");
        assert!(a.comment.ends_with(" net: testnet, if: eth0, id: abc"), "{}", a.comment);
        assert!(a.marks(&a.comment));
        assert!(!a.marks(&Tag::new("testnet", "abc", "eth1").comment));
        assert!(!a.marks(&Tag::new("othernet", "abc", "eth0").comment));
        assert!(Tag::of_network("testnet", &a.comment));
        assert!(!Tag::of_network("othernet", &a.comment));
        let long = Tag::new(&"n".repeat(200), &"f".repeat(64), "eth0");
        assert_eq!(long.comment.len(), 128);
        assert!(long.marks(&long.comment));
    }
}
