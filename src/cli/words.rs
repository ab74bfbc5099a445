//! The original's positional words: the address (`<ip>/<len>[@gw]`, `0/0`,
//! the DHCP words) and `[mac][@vlan]`, checked for syntax.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::{Error, Kind};
use crate::family::Family;
use crate::mac::Mac;
use crate::request::{Addressing, Dhcp, DhcpClient, Tag, DHCP_TIMEOUT};

/// A refusal of the command line, in our words.
pub fn usage(message: impl std::fmt::Display) -> Error {
    Error::new(Kind::Usage, message)
}

/// The third argument: a static address, `0/0`, or a DHCP word.
pub fn parse_addressing(arg: &str, family: Option<Family>) -> Result<Addressing, Error> {
    if let Some(dhcp) = parse_dhcp(arg) {
        if let Some(c) = dhcp.options.as_deref().and_then(|o| o.chars().find(|c| c.is_control())) {
            // A newline would end a line of the DHCP agent's state file early.
            return Err(usage(format!(
                "control character {c:?} in the DHCP options of '{}'",
                arg.escape_debug()
            )));
        }
        return Ok(Addressing::Dhcp(dhcp));
    }
    // The gateway is what lies between the first and a second `@`.
    let (ip, gateway) = match arg.split_once('@') {
        Some((ip, rest)) => (ip, Some(rest.split('@').next().unwrap_or(""))),
        None => (arg, None),
    };
    if !ip.contains('/') {
        return Err(Error::verbatim(
            Kind::Usage,
            format!("The IP address should include a netmask.\nMaybe you meant {ip}/24 ?"),
        ));
    }
    if ip == "0/0" {
        if gateway.is_some() {
            return Err(Error::new(Kind::Usage, "0/0 assigns no address, so it takes no @gateway"));
        }
        return Ok(Addressing::None);
    }
    let net: IpNetwork =
        ip.parse().map_err(|_| Error::new(Kind::Usage, format!("invalid IP address '{ip}'")))?;
    if let Some(family) = family {
        if family != Family::of(net.ip()) {
            let want = if family == Family::V4 { "IPv4" } else { "IPv6" };
            return Err(Error::new(
                Kind::Usage,
                format!("'{ip}' is not an {want} address (-a {})", &family.flag()[1..]),
            ));
        }
    }
    let gateway = match gateway {
        None => None,
        Some(gw) => {
            let gw: IpAddr =
                gw.parse().map_err(|_| Error::new(Kind::Usage, format!("invalid gateway '{gw}'")))?;
            if Family::of(gw) != Family::of(net.ip()) {
                return Err(Error::new(
                    Kind::Usage,
                    format!("gateway {gw} is not of the same family as {ip}"),
                ));
            }
            if gw == net.ip() {
                return Err(Error::new(Kind::Usage, format!("gateway {gw} is the container's own address")));
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
        "udhcpc-f" => (DhcpClient::Udhcpc, true),
        "dhclient-f" => (DhcpClient::Dhclient, true),
        word => (DhcpClient::from_word(word)?, false),
    };
    // dhcpcd takes no options in the original.
    let options = if client == DhcpClient::Dhcpcd { None } else { options };
    Some(Dhcp { client, foreground, options, timeout: DHCP_TIMEOUT })
}

/// The fourth argument: `[mac][@vlan]`; the VLAN is what follows the first `@`.
pub fn parse_mac_vlan(arg: &str) -> Result<(Option<Mac>, Option<Tag>), Error> {
    let (mac, vlan) = match arg.split_once('@') {
        Some((mac, vlan)) => (mac, Some(Tag(vlan.split('@').next().unwrap_or("").to_string()))),
        None => (arg, None),
    };
    let mac = match mac {
        "" => None,
        mac => Some(Mac::parse_arg(mac).map_err(usage)?),
    };
    Ok((mac, vlan))
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
            assert_eq!(parse_addressing(arg, fam).unwrap_err().to_string(), msg);
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
                options: Some("-q".into()),
                timeout: DHCP_TIMEOUT
            })
        );
        assert_eq!(
            parse_addressing("dhcpcd:ignored", None).unwrap(),
            Addressing::Dhcp(Dhcp {
                client: DhcpClient::Dhcpcd,
                foreground: false,
                options: None,
                timeout: DHCP_TIMEOUT
            })
        );
    }

    #[test]
    fn mac_and_vlan() {
        assert_eq!(parse_mac_vlan("@10").unwrap(), (None, Some(Tag("10".into()))));
        let (mac, vlan) = parse_mac_vlan("U:myhost.foo.com@4094").unwrap();
        assert_eq!(
            (mac.unwrap().to_string().as_str(), vlan.map(|t| t.0).as_deref()),
            ("02:72:6c:cd:9b:8d", Some("4094"))
        );
        assert_eq!(Tag("4094".into()).vlan_id().unwrap(), 4094);
        for bad in ["0", "4095", "x", ""] {
            assert!(Tag(bad.into()).vlan_id().is_err(), "{bad}");
        }
        assert_eq!(Tag("8001".into()).pkey().unwrap(), 0x8001);
        assert!(Tag("xyz".into()).pkey().is_err() && Tag("0".into()).pkey().is_err());
    }
}
