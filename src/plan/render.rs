//! Steps and undos as the iproute2 commands they stand for: what
//! `--dry-run` prints, and what logs and error messages name.

use std::fmt;

use ipnetwork::IpNetwork;

use super::{NewLink, Plan, Side, Step, Undo};
use crate::dhcp::Setup;
use crate::error::Result;
use crate::family::Family;
use crate::request::seconds;
use crate::sys::firewall::Accept;
use crate::sys::nftables::{rules, Hook, Tag};
use crate::sys::output;
use crate::sys::sysctl::conf_name;
use crate::sys::vswitch::NewPort;

impl Plan {
    /// `--dry-run`: the steps as commands, one a line.
    pub fn print(&self) -> Result<()> {
        output::lines(self.steps.iter().map(|step| self.command(step)))
    }

    /// The step as a command an operator could type.
    pub fn command(&self, step: &Step) -> String {
        let body = step.to_string();
        match step.side() {
            Side::Host => body,
            Side::Guest => format!("{} {body}", self.enter),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateBridge { name, mtu } => {
                write!(f, "ip link add {name} ")?;
                if let Some(mtu) = mtu {
                    write!(f, "mtu {mtu} ")?;
                }
                write!(f, "type bridge && ip link set {name} up")
            }
            Step::Promisc { name } => write!(f, "ip link set {name} promisc on"),
            Step::PinMac { name } => {
                write!(f, "ip link set {name} address $(cat /sys/class/net/{name}/address)")
            }
            Step::Hairpin { port } => write!(f, "ip link set {port} type bridge_slave hairpin on"),
            Step::Sysctl { family, dev, key, value, .. } => {
                write!(f, "sysctl -qw {}={value}", conf_name(*family, dev, key))
            }
            Step::HostAddress { dev, net } => write!(f, "ip addr add {net} dev {dev}"),
            Step::AddRoute { dst, gw, dev } => match gw {
                Some(gw) => write!(f, "ip route add {dst} via {gw} dev {dev}"),
                None => write!(f, "ip route add {dst} dev {dev} scope link"),
            },
            Step::DeleteStale { name } | Step::DeleteLink { name, .. } => write!(f, "ip link del {name}"),
            Step::GiveBack { name, to, host } => write!(f, "ip link set dev {name} netns {host} name {to}"),
            Step::DeleteRule { text, .. } => write!(f, "ip rule del {text}"),
            Step::HostRoute { ip, dev } => write!(f, "ip route add {} dev {dev}", host_prefix(ip)),
            Step::DeleteHostRoute { ip, dev } => write!(f, "ip route del {} dev {dev}", host_prefix(ip)),
            Step::CreateVeth { host, guest, mtu, mac, netns } => {
                write!(f, "ip link add {host} mtu {mtu} type veth peer name {guest} mtu {mtu}")?;
                if let Some(mac) = mac {
                    write!(f, " address {mac}")?;
                }
                write!(f, " netns {netns}")
            }
            Step::SetMaster { link, bridge } => write!(f, "ip link set {link} master {bridge}"),
            Step::LinkUp { name, .. } => write!(f, "ip link set {name} up"),
            Step::AddAddress { dev, net } | Step::AddAnotherAddress { dev, net } => match net {
                IpNetwork::V4(v4) if v4.prefix() < 31 => {
                    write!(f, "ip -4 addr add {net} brd {} dev {dev}", v4.broadcast())
                }
                _ => write!(f, "ip {} addr add {net} dev {dev}", Family::of(net.ip()).flag()),
            },
            Step::DeleteDefault { family, .. } => {
                write!(f, "ip {} route del default", family.flag())
            }
            Step::GatewayRoute { gateway, dev } => {
                let (flag, len) = if gateway.is_ipv4() { ("-4", 32) } else { ("-6", 128) };
                write!(f, "ip {flag} route get {gateway} || ip {flag} route add {gateway}/{len} dev {dev}")
            }
            Step::MakeBridge { name, mac, mtu, stp, forward_delay } => {
                write!(
                    f,
                    "ip link add {name} address {mac} mtu {mtu} type bridge stp_state {}",
                    u8::from(*stp)
                )?;
                match forward_delay {
                    Some(secs) => write!(f, " forward_delay {}", secs * 100),
                    None => Ok(()),
                }
            }
            Step::CreateLink { name, kind } => match kind {
                NewLink::Vlan { parent, vid, mtu } => {
                    write!(f, "ip link add link {parent} name {name} mtu {mtu} type vlan id {vid}")
                }
                NewLink::Macvlan { parent, mtu, mode } => write!(
                    f,
                    "ip link add link {parent} dev {name} mtu {mtu} type macvlan mode {}",
                    mode.word()
                ),
                NewLink::Dummy => write!(f, "ip link add dev {name} type dummy"),
                NewLink::Ipoib { parent, pkey: None } => {
                    write!(f, "ip link add link {parent} name {name} type ipoib")
                }
                NewLink::Ipoib { parent, pkey: Some(key) } => {
                    write!(f, "ip link add link {parent} name {name} type ipoib pkey {key:#x}")
                }
            },
            Step::MoveToGuest { name, to, netns, .. } => {
                write!(f, "ip link set dev {name} netns {netns} name {to}")
            }
            Step::SetMac { dev, mac } => write!(f, "ip link set dev {dev} address {mac}"),
            Step::Ipv6 { dev, enable, .. } => {
                write!(f, "sysctl -qw {}={}", conf_name(Family::V6, dev, "disable_ipv6"), u8::from(!enable))
            }
            Step::CopyAddress { to, text, .. } => write!(f, "ip addr add {text} dev {to}"),
            Step::DeleteAddress { dev, text, .. } => write!(f, "ip addr del {text} dev {dev}"),
            Step::MoveRoute { to, text, .. } => write!(f, "ip {text} dev {to}"),
            Step::Announce { dev, ip, .. } => {
                let key = conf_name(Family::V4, dev, "arp_notify");
                let mac = format!("$(cat /sys/class/net/{dev}/address)");
                write!(f, "sysctl -qw {key}=1 && ip link set {dev} address {mac} && sysctl -qw {key}=0  # announces {ip}")
            }
            Step::ReplaceDefault { gateway, dev } | Step::RestoreDefault { gateway, dev } => {
                write!(f, "ip {} route replace default via {gateway} dev {dev}", Family::of(*gateway).flag())
            }
            Step::Dhcp { dev, setup, .. } => describe_dhcp(f, dev, setup),
            Step::ForgetLease { agent: Some(agent), file } => {
                write!(
                    f,
                    "kill {} && rm -f {}  # the DHCP agent releases its lease",
                    agent.pid,
                    file.display()
                )
            }
            Step::ForgetLease { agent: None, file } => write!(f, "rm -f {}", file.display()),
            Step::SetMtu { dev, mtu } => write!(f, "ip link set dev {dev} mtu {mtu}"),
            Step::StartAgent { dev, lease, .. } => {
                write!(f, "pipework --dhcp-agent  # keeps {} on {dev}", lease.address)
            }
            Step::ResolvConf { dev, guest, saved, .. } => write!(
                f,
                "cp {} {} && cat > {}  # the DNS servers and domain of the lease on {dev}, in place",
                guest_resolv_conf(guest.pid),
                saved.display(),
                guest_resolv_conf(guest.pid)
            ),
            Step::RestoreResolvConf { guest: Some(guest), saved } => write!(
                f,
                "cat {} > {} && rm {}",
                saved.display(),
                guest_resolv_conf(guest.pid),
                saved.display()
            ),
            Step::RestoreResolvConf { guest: None, saved } => write!(f, "rm -f {}", saved.display()),
            Step::HostDhcp { argv, resolv, .. } => {
                write!(f, "{}  # its /etc/resolv.conf: {}", argv.join(" "), resolv.display())
            }
            Step::VlanFiltering { bridge } => write!(f, "ip link set {bridge} type bridge vlan_filtering 1"),
            Step::PortVlan { port, vid, drop } => {
                write!(f, "bridge vlan add dev {port} vid {vid} pvid untagged")?;
                match drop {
                    Some(old) => write!(f, " && bridge vlan del dev {port} vid {old}"),
                    None => Ok(()),
                }
            }
            Step::Masquerade { addresses, tag } => {
                let lines: Vec<String> =
                    addresses.iter().filter_map(|a| rules::masquerade(*a)).map(|r| r.text).collect();
                nft(f, Hook::Masquerade, &lines, tag)
            }
            Step::MacCheck { port, dev, tag } => {
                let line = format!("iifname \"{port}\" ether saddr != <the MAC of {dev}> drop");
                nft(f, Hook::MacCheck, &[line], tag)
            }
            Step::DropRules { hook, tag } => {
                write!(f, "nft delete rule {} handle <each rule commented \"{}\">", hook.name(), tag.comment)
            }
            Step::CollectRules { hook, network, valid } => write!(
                f,
                "nft delete rule {} handle <each rule of network {network} but those of its {} valid attachments>",
                hook.name(),
                valid.len()
            ),
            Step::ForwardAccept { bridge, rules } => add_rules(f, bridge, rules),
            Step::ForwardRemove { bridge, rules } => delete_rules(f, bridge, rules),
            Step::OvsAddBridge { name } => write!(f, "ovs-vsctl add-br {name}"),
            Step::OvsDelPorts { bridge, ports } => {
                let dels: Vec<String> =
                    ports.iter().map(|p| format!("del-port {bridge} {}", p.name)).collect();
                write!(f, "ovs-vsctl {}", dels.join(" -- "))
            }
            Step::OvsAddPort { bridge, port, replacing } => {
                if replacing.is_some() {
                    write!(f, "ovs-vsctl --if-exists del-port {bridge} {} -- ", port.name)?;
                }
                let line = AddPort { bridge, port }.to_string();
                f.write_str(if replacing.is_some() { line.trim_start_matches("ovs-vsctl ") } else { &line })
            }
        }
    }
}

/// `<ip>/32`, or `/128`: a route to one address.
fn host_prefix(ip: &std::net::IpAddr) -> String {
    format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })
}

impl fmt::Display for Undo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undo::DeleteLink { name, .. } => write!(f, "ip link del {name}"),
            Undo::DeleteBridgeIfUnused { name } => {
                write!(f, "ip link del {name} (if it has no ports)")
            }
            Undo::RestoreRoute { .. } => write!(f, "ip route add <the deleted default route>"),
            Undo::DeleteRoute { .. } | Undo::DeleteHostRoute { .. } => {
                write!(f, "ip route del <the route added>")
            }
            Undo::NoMaster { name, .. } => write!(f, "ip link set {name} nomaster"),
            Undo::LinkDown { name, .. } => write!(f, "ip link set {name} down"),
            Undo::Ipv6 { index, enable, .. } => {
                write!(f, "sysctl -qw net.ipv6.conf.<link {index}>.disable_ipv6={}", u8::from(!enable))
            }
            Undo::AddAddress { dev, .. } => write!(f, "ip addr add <the deleted address> dev {dev}"),
            Undo::DeleteAddress { .. } => write!(f, "ip addr del <the address added>"),
            Undo::MoveBack { guest_name, host_name, .. } => {
                write!(f, "ip link set dev {guest_name} netns <host> name {host_name}")
            }
            Undo::SetMac { name, mac, .. } => write!(f, "ip link set dev {name} address {mac}"),
            Undo::ReplaceRoute { .. } => write!(f, "ip route replace <the route as it was>"),
            Undo::Release { lease, .. } => write!(f, "DHCPRELEASE of {}", lease.address),
            Undo::RestoreResolvConf { guest, saved } => {
                write!(
                    f,
                    "cat {} > {} && rm {}",
                    saved.display(),
                    guest_resolv_conf(guest.pid),
                    saved.display()
                )
            }
            Undo::StopAgent { agent, .. } => {
                write!(f, "kill {}  # the DHCP agent releases its lease", agent.pid)
            }
            Undo::SetMtu { dev, mtu, .. } => write!(f, "ip link set dev {dev} mtu {mtu}"),
            Undo::OvsDelPort { name, .. } => write!(f, "ovs-vsctl del-port {name}"),
            Undo::NoVlanFiltering { name, .. } => {
                write!(f, "ip link set {name} type bridge vlan_filtering 0")
            }
            Undo::OvsDelBridgeIfUnused { name, .. } => {
                write!(f, "ovs-vsctl del-br {name} (if it has no ports)")
            }
            Undo::MoveIn { host_name, guest_name } => {
                write!(f, "ip link set dev {host_name} netns <guest> name {guest_name}")
            }
            Undo::AddRule { .. } => write!(f, "ip rule add <the rule deleted>"),
            Undo::ForwardRemove { bridge, rules } => delete_rules(f, bridge, rules),
            Undo::ForwardAccept { bridge, rules } => add_rules(f, bridge, rules),
            Undo::DropRules { hook, tag } => {
                write!(f, "nft delete rule {} handle <each rule commented \"{}\">", hook.name(), tag.comment)
            }
        }
    }
}

/// One `nft` command: the table and chain made if absent, then the rules,
/// each with the attachment's tag as its comment.
fn nft(f: &mut fmt::Formatter<'_>, hook: Hook, lines: &[String], tag: &Tag) -> fmt::Result {
    write!(f, "nft '{}", hook.declare())?;
    for line in lines {
        write!(f, "; add rule {} {line} comment \"{}\"", hook.name(), tag.comment)?;
    }
    f.write_str("'")
}

/// A bridge's accepting rules as the iptables commands that add them.
fn add_rules(f: &mut fmt::Formatter<'_>, bridge: &str, rules: &[Accept]) -> fmt::Result {
    let commands: Vec<String> = rules.iter().map(|r| r.command(bridge)).collect();
    f.write_str(&commands.join(" && "))
}

fn delete_rules(f: &mut fmt::Formatter<'_>, bridge: &str, rules: &[Accept]) -> fmt::Result {
    let commands: Vec<String> = rules.iter().map(|r| r.delete_command(bridge)).collect();
    f.write_str(&commands.join(" && "))
}

/// The dry-run line of the native client.
fn describe_dhcp(f: &mut fmt::Formatter<'_>, dev: &str, setup: &Setup) -> fmt::Result {
    write!(f, "dhcp {dev}")?;
    if let Some(name) = setup.native.hostname() {
        write!(f, " hostname {name}")?;
    }
    if !setup.options.is_empty() {
        write!(f, " options '{}'", setup.options)?;
    }
    let agent = if setup.native.once { "" } else { "; an agent renews it for the guest's life" };
    write!(
        f,
        "  # native DHCPv4 (fails after {} s): the lease's address, routes and MTU follow{agent}",
        seconds(setup.timeout)
    )?;
    match &setup.resolv {
        Some(guest) => write!(f, "; its DNS servers and domain into {}", guest_resolv_conf(guest.pid)),
        None => Ok(()),
    }
}

/// The guest's resolv.conf as the host reaches it.
fn guest_resolv_conf(pid: u64) -> String {
    format!("/proc/{pid}/root{}", crate::dhcp::resolv_conf::PATH)
}

/// The `ovs-vsctl` command line of an added port, the original's: the tag on
/// the port, the external-ids on its interface. For `--dry-run`, logs and
/// the comment the transaction leaves in the database.
pub struct AddPort<'a> {
    pub bridge: &'a str,
    pub port: &'a NewPort,
}

impl fmt::Display for AddPort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NewPort { name, tag, external_ids } = self.port;
        write!(f, "ovs-vsctl add-port {} {name}", self.bridge)?;
        if let Some(tag) = tag {
            write!(f, " tag={tag}")?;
        }
        if !external_ids.is_empty() {
            write!(f, " -- set Interface {name}")?;
            for (k, v) in external_ids {
                write!(f, " external-ids:{k}=\"{v}\"")?;
            }
        }
        Ok(())
    }
}
