//! The typed request: what the operator asked for, checked for syntax and
//! nothing else. Looking things up on the host comes later.

use std::net::IpAddr;
use std::time::Duration;

use ipnetwork::IpNetwork;

use crate::mac::Mac;

/// Linux caps interface names at IFNAMSIZ - 1 bytes.
pub const IFNAME_MAX: usize = 15;

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Attach(Attach),
    /// `route`, `rule` or `tc`: arguments handed over inside the guest.
    Passthrough {
        tool: Tool,
        guest: String,
        args: Vec<String>,
    },
    /// `--wait`: runs inside a container until its interface shows up.
    Wait {
        ifname: String,
        timeout: Option<Duration>,
    },
    /// `mkbridge`: IFACE becomes a port of BRIDGE, which takes over its
    /// addresses and routes.
    Mkbridge(Mkbridge),
    /// `loop free` and `loop ensure`.
    Loop(LoopRequest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mkbridge {
    pub bridge: String,
    pub iface: String,
    pub stp: bool,
    /// Seconds; unset: 0 without STP (the runbook's `setfd 0`), the
    /// kernel's default with it.
    pub forward_delay: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopRequest {
    /// Print the first free loop device, making its node if missing.
    Free { dev: std::path::PathBuf },
    /// Make sure nodes loop0 to loop(count-1) exist in `dev`, or in the
    /// `/dev` of a container.
    Ensure { count: u32, dev: std::path::PathBuf, container: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Route,
    Rule,
    Tc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attach {
    pub host: HostIf,
    pub direct_phys: bool,
    /// `-i`; its default depends on the host interface (`ib0` for IPoIB).
    pub container_if: Option<String>,
    /// `-l`: the host-side name of a veth.
    pub local_if: Option<String>,
    pub guest: String,
    pub addr: Addressing,
    pub mac: Option<Mac>,
    /// What follows `@` in `[mac][@vlan]`: a VLAN id on a physical
    /// interface, a partition key (hex) on IPoIB; checked once the host
    /// interface is known.
    pub vlan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostIf {
    Name(String),
    /// `mac:<hwaddr>`: the host interface that has this address; the text
    /// is kept as typed for the original's message.
    Mac(Mac, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Addressing {
    /// `<ip>/<len>[@gw]`; the network keeps the host part.
    Static {
        net: IpNetwork,
        gateway: Option<IpAddr>,
    },
    /// `0/0`: connect, assign nothing.
    None,
    Dhcp(Dhcp),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp {
    pub client: DhcpClient,
    /// `-f`: the client stays in the foreground to renew the lease.
    pub foreground: bool,
    pub options: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpClient {
    /// `dhcp`: busybox udhcpc run by Docker beside the guest.
    Docker,
    Udhcpc,
    Dhclient,
    Dhcpcd,
}

impl DhcpClient {
    pub fn program(self) -> &'static str {
        match self {
            DhcpClient::Docker | DhcpClient::Udhcpc => "udhcpc",
            DhcpClient::Dhclient => "dhclient",
            DhcpClient::Dhcpcd => "dhcpcd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// `-a`: `4`, `6`, `inet` or `inet6`, with the original's message.
    pub fn parse(arg: &str) -> Result<Family, String> {
        match arg {
            "4" | "inet" => Ok(Family::V4),
            "6" | "inet6" => Ok(Family::V6),
            _ => Err(format!("Invalid family: {arg}")),
        }
    }

    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }
}

/// An interface name the kernel will take: 1 to 15 bytes, no `/`, no space.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an interface name cannot be empty".into());
    }
    if name.len() > IFNAME_MAX {
        return Err(format!("interface name '{name}' is longer than {IFNAME_MAX} bytes"));
    }
    if name == "." || name == ".." || name.contains(['/', ':']) || name.contains(char::is_whitespace) {
        return Err(format!("interface name '{name}' is not valid (no '/', ':', spaces, '.' or '..')"));
    }
    Ok(())
}

/// The third argument: a static address, `0/0`, or a DHCP word.
pub fn parse_addressing(arg: &str, family: Option<Family>) -> Result<Addressing, crate::error::Error> {
    if let Some(dhcp) = parse_dhcp(arg) {
        return Ok(Addressing::Dhcp(dhcp));
    }
    // The gateway is what lies between the first and a second `@`.
    let (ip, gateway) = match arg.split_once('@') {
        Some((ip, rest)) => (ip, Some(rest.split('@').next().unwrap_or(""))),
        None => (arg, None),
    };
    if !ip.contains('/') {
        return Err(crate::error::Error::plain(format!(
            "The IP address should include a netmask.\nMaybe you meant {ip}/24 ?"
        )));
    }
    if ip == "0/0" {
        if gateway.is_some() {
            return Err(crate::error::Error::new("0/0 assigns no address, so it takes no @gateway"));
        }
        return Ok(Addressing::None);
    }
    let net: IpNetwork =
        ip.parse().map_err(|_| crate::error::Error::new(format!("invalid IP address '{ip}'")))?;
    if let Some(family) = family {
        if family != Family::of(net.ip()) {
            let want = if family == Family::V4 { "IPv4" } else { "IPv6" };
            return Err(crate::error::Error::new(format!(
                "'{ip}' is not an {want} address (-a {})",
                &family.flag()[1..]
            )));
        }
    }
    let gateway = match gateway {
        None => None,
        Some(gw) => {
            let gw: IpAddr =
                gw.parse().map_err(|_| crate::error::Error::new(format!("invalid gateway '{gw}'")))?;
            if Family::of(gw) != Family::of(net.ip()) {
                return Err(crate::error::Error::new(format!(
                    "gateway {gw} is not of the same family as {ip}"
                )));
            }
            if gw == net.ip() {
                return Err(crate::error::Error::new(format!("gateway {gw} is the container's own address")));
            }
            Some(gw)
        }
    };
    Ok(Addressing::Static { net, gateway })
}

/// `dhcp[:OPTS]`, `udhcpc[-f][:OPTS]`, `dhclient[-f][:OPTS]`, `dhcpcd[:OPTS]`.
fn parse_dhcp(arg: &str) -> Option<Dhcp> {
    let (word, options) = match arg.split_once(':') {
        Some((word, opts)) => (word, Some(opts.to_string())),
        None => (arg, None),
    };
    let (client, foreground) = match word {
        "dhcp" => (DhcpClient::Docker, false),
        "udhcpc" => (DhcpClient::Udhcpc, false),
        "udhcpc-f" => (DhcpClient::Udhcpc, true),
        "dhclient" => (DhcpClient::Dhclient, false),
        "dhclient-f" => (DhcpClient::Dhclient, true),
        "dhcpcd" => (DhcpClient::Dhcpcd, false),
        _ => return None,
    };
    // dhcpcd takes no options in the original.
    let options = if client == DhcpClient::Dhcpcd { None } else { options };
    Some(Dhcp { client, foreground, options })
}

/// The fourth argument: `[mac][@vlan]`; the VLAN is what follows the first `@`.
pub fn parse_mac_vlan(arg: &str) -> Result<(Option<Mac>, Option<String>), crate::error::Error> {
    let (mac, vlan) = match arg.split_once('@') {
        Some((mac, vlan)) => (mac, Some(vlan.split('@').next().unwrap_or("").to_string())),
        None => (arg, None),
    };
    let mac = match mac {
        "" => None,
        mac => Some(Mac::parse_arg(mac).map_err(crate::error::Error::new)?),
    };
    Ok((mac, vlan))
}

/// An 802.1Q VLAN id: 1 to 4094.
pub fn vlan_id(tag: &str) -> Result<u16, crate::error::Error> {
    match tag.parse::<u16>() {
        Ok(id @ 1..=4094) => Ok(id),
        _ => Err(crate::error::Error::new(format!("invalid VLAN ID '{tag}' (must be 1-4094)"))),
    }
}

/// An InfiniBand partition key, written in hex as the original took it
/// (`@8001` is pkey 0x8001).
pub fn pkey(tag: &str) -> Result<u16, crate::error::Error> {
    match u16::from_str_radix(tag.trim_start_matches("0x"), 16) {
        Ok(key) if key != 0 && !tag.is_empty() => Ok(key),
        _ => Err(crate::error::Error::new(format!("invalid partition key '{tag}' (hex, 1-ffff)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(arg: &str) -> (String, Option<IpAddr>) {
        match parse_addressing(arg, None).unwrap() {
            Addressing::Static { net, gateway } => (net.to_string(), gateway),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn static_with_gateway() {
        assert_eq!(
            stat("10.5.106.101/24@10.5.106.1"),
            ("10.5.106.101/24".into(), Some("10.5.106.1".parse().unwrap()))
        );
        assert_eq!(stat("2001:db8::10/64@2001:db8::1").0, "2001:db8::10/64");
        // Only the part before a second `@` is the gateway, as in the script.
        assert_eq!(stat("10.0.0.2/8@10.0.0.1@junk").1, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn netmask_missing_is_the_original_message() {
        let e = parse_addressing("10.0.0.5", None).unwrap_err();
        assert_eq!(e.message(), "The IP address should include a netmask.\nMaybe you meant 10.0.0.5/24 ?");
    }

    #[test]
    fn refusals() {
        for (arg, fam, msg) in [
            ("10.0.0.300/24", None, "pipework: invalid IP address '10.0.0.300/24'"),
            ("10.0.0.3/33", None, "pipework: invalid IP address '10.0.0.3/33'"),
            ("10.0.0.3/24@10.0.0.x", None, "pipework: invalid gateway '10.0.0.x'"),
            (
                "10.0.0.3/24@2001:db8::1",
                None,
                "pipework: gateway 2001:db8::1 is not of the same family as 10.0.0.3/24",
            ),
            ("10.0.0.3/24", Some(Family::V6), "pipework: '10.0.0.3/24' is not an IPv6 address (-a 6)"),
        ] {
            assert_eq!(parse_addressing(arg, fam).unwrap_err().message(), msg);
        }
    }

    #[test]
    fn zero_and_dhcp() {
        assert_eq!(parse_addressing("0/0", None).unwrap(), Addressing::None);
        assert_eq!(
            parse_addressing("udhcpc-f:-q", None).unwrap(),
            Addressing::Dhcp(Dhcp {
                client: DhcpClient::Udhcpc,
                foreground: true,
                options: Some("-q".into())
            })
        );
        assert_eq!(
            parse_addressing("dhcpcd:ignored", None).unwrap(),
            Addressing::Dhcp(Dhcp { client: DhcpClient::Dhcpcd, foreground: false, options: None })
        );
    }

    #[test]
    fn mac_and_vlan() {
        assert_eq!(parse_mac_vlan("@10").unwrap(), (None, Some("10".into())));
        let (mac, vlan) = parse_mac_vlan("U:myhost.foo.com@4094").unwrap();
        assert_eq!((mac.unwrap().to_string().as_str(), vlan.as_deref()), ("02:72:6c:cd:9b:8d", Some("4094")));
        assert_eq!(vlan_id("4094").unwrap(), 4094);
        for bad in ["0", "4095", "x", ""] {
            assert!(vlan_id(bad).is_err(), "{bad}");
        }
        assert_eq!(pkey("8001").unwrap(), 0x8001);
        assert!(pkey("xyz").is_err() && pkey("0").is_err());
    }

    #[test]
    fn ifnames() {
        assert!(check_ifname("eth1").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        assert_eq!(
            check_ifname("abcdefghijklmnop").unwrap_err(),
            "interface name 'abcdefghijklmnop' is longer than 15 bytes"
        );
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("").is_err());
    }
}
