//! What labels may ask of the host (`Trust`, from `watch --allow`), and
//! the attaches asked for that it lets through (`sift`).

use std::fmt;

use super::Asked;
use crate::mac::Mac;
use crate::request::{Addressing, Attach, DhcpClient, HostIf};

/// The attaches of `asked` that `trust` lets through, each naming the host
/// interface it was checked as (`mac:` resolved by `mac_owner`, so that
/// the attach uses that one), and a log line for what it refused: one for
/// each label, but without any `--allow` one for all those that only need
/// theirs, saying how to allow them.
pub fn sift(
    asked: Vec<Asked>,
    trust: &Trust,
    mac_owner: impl Fn(&Mac) -> Option<String>,
) -> (Vec<Attach>, Vec<String>) {
    let (mut made, mut said) = (Vec::new(), Vec::new());
    let (mut unallowed, mut hosts): (Vec<String>, Vec<String>) = Default::default();
    for Asked { key, value, mut req } in asked {
        let owner = match &req.host {
            HostIf::Mac(mac, _) => mac_owner(mac),
            HostIf::Name(_) => None,
        };
        match trust.check(&req, owner.as_deref()) {
            Ok(host) => {
                req.host = HostIf::Name(host);
                made.push(req);
            }
            Err(Refusal::NotAllowed(host)) if trust.allowed.is_empty() => {
                unallowed.push(key);
                if !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
            Err(refusal) => said.push(format!("label {key}={value} refused: {refusal}")),
        }
    }
    if !unallowed.is_empty() {
        let allow: Vec<String> = hosts.iter().map(|h| format!("--allow {h}")).collect();
        said.push(format!(
            "label{} {} ignored: labels may plumb only host interfaces allowed with --allow; \
             restart watch with {}",
            if unallowed.len() > 1 { "s" } else { "" },
            unallowed.join(", "),
            allow.join(" ")
        ));
    }
    (made, said)
}

/// What labels may ask of the host: only the host interfaces the operator
/// allowed (`watch --allow`), and never what reaches past the container's
/// own interface. Records, written by the operator's own commands, are
/// not labels: they are trusted.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    allowed: Vec<String>,
}

/// Why a label's attach is not made.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// What no label may ask for, whatever `--allow` says: the word, and
    /// what it would do.
    Never { word: String, why: &'static str },
    /// A host interface `--allow` does not name.
    NotAllowed(String),
    /// `mac:` that no host interface has.
    NoSuchMac(String),
}

impl Trust {
    pub fn new(allowed: &[String]) -> Trust {
        Trust { allowed: allowed.to_vec() }
    }

    /// The host interface a label's `req` may use (`mac_owner`: the one
    /// that has its `mac:`), or why it may not be made.
    pub fn check(&self, req: &Attach, mac_owner: Option<&str>) -> Result<String, Refusal> {
        let never = |word: &str, why| Err(Refusal::Never { word: word.into(), why });
        if req.direct_phys {
            return never("--direct-phys", "it moves a host interface into the container");
        }
        if req.local_if.is_some() {
            return never("-l", "it names an interface of the host");
        }
        if req.vlan_filtering {
            return never("--vlan-filtering", "it changes every port of a host bridge");
        }
        if let Addressing::Dhcp(dhcp) = &req.addr {
            if dhcp.client != DhcpClient::Native {
                let word = format!("{}{}", dhcp.client.program(), if dhcp.foreground { "-f" } else { "" });
                return never(
                    &word,
                    "host DHCP clients take options that name files, scripts and programs; \
                     labels use dhcp, the native client",
                );
            }
        }
        let host = match (&req.host, mac_owner) {
            (HostIf::Name(name), _) => name.as_str(),
            (HostIf::Mac(..), Some(owner)) => owner,
            (HostIf::Mac(_, text), None) => return Err(Refusal::NoSuchMac(text.clone())),
        };
        match self.allowed.iter().any(|a| a == host) {
            true => Ok(host.to_string()),
            false => Err(Refusal::NotAllowed(host.to_string())),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Never { word, why } => write!(f, "{word} is never taken from a label: {why}"),
            Refusal::NotAllowed(host) => write!(
                f,
                "host interface {host} is not allowed: labels may plumb only host interfaces allowed with --allow"
            ),
            Refusal::NoSuchMac(text) => write!(f, "no host interface has MAC {text}"),
        }
    }
}

/// Whether a container of `.HostConfig.NetworkMode` `mode` owns its
/// network namespace: with `host` or `container:<ID>` (Podman's
/// `ns:<PATH>` too) its labels would plumb the host's or another's.
pub fn owns_netns(mode: &str) -> bool {
    !(mode == "host" || mode.starts_with("container:") || mode.starts_with("ns:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::labels::attaches;
    use crate::watch::labels::tests::labels;

    /// `labels` of container c1 through `sift` with `--allow` `allow`; the
    /// host has eth9 with MAC 02:00:00:00:00:e9 and br0 with 02:00:00:00:00:b0.
    fn sifted(pairs: &[(&str, &str)], allow: &[&str]) -> (Vec<Attach>, Vec<String>) {
        let (asked, bad) = attaches("c1", &labels(pairs), |_| false);
        assert_eq!(bad, vec![]);
        let allow: Vec<String> = allow.iter().map(|a| a.to_string()).collect();
        sift(asked, &Trust::new(&allow), |mac| match mac.to_string().as_str() {
            "02:00:00:00:00:e9" => Some("eth9".into()),
            "02:00:00:00:00:b0" => Some("br0".into()),
            _ => None,
        })
    }

    #[test]
    fn labels_never_take_what_reaches_past_the_container() {
        let hostile = [
            ("pipework.eth1", "eth0 --direct-phys 0/0"),
            ("pipework.eth2", "br0 -l vhost 10.0.0.2/24"),
            ("pipework.eth3", "br0 --vlan-filtering 10.0.0.3/24 @10"),
            ("pipework.eth4", "br0 'udhcpc:-s /tmp/x.sh -n'"),
            ("pipework.eth5", "br0 udhcpc-f"),
            ("pipework.eth6", "br0 'dhclient:-sf /tmp/x.sh'"),
            ("pipework.eth7", "br0 dhclient-f"),
            ("pipework.eth8", "br0 dhcpcd"),
        ];
        // Allowing every host interface they name changes nothing.
        let (made, said) = sifted(&hostile, &["eth0", "br0"]);
        assert!(made.is_empty(), "{made:?}");
        let dhcp = "is never taken from a label: host DHCP clients take options that name files, \
                    scripts and programs; labels use dhcp, the native client";
        assert_eq!(
            said,
            [
                "label pipework.eth1=eth0 --direct-phys 0/0 refused: --direct-phys is never taken from a label: \
                 it moves a host interface into the container"
                    .to_string(),
                "label pipework.eth2=br0 -l vhost 10.0.0.2/24 refused: -l is never taken from a label: \
                 it names an interface of the host"
                    .to_string(),
                "label pipework.eth3=br0 --vlan-filtering 10.0.0.3/24 @10 refused: --vlan-filtering is never \
                 taken from a label: it changes every port of a host bridge"
                    .to_string(),
                format!("label pipework.eth4=br0 'udhcpc:-s /tmp/x.sh -n' refused: udhcpc {dhcp}"),
                format!("label pipework.eth5=br0 udhcpc-f refused: udhcpc-f {dhcp}"),
                format!("label pipework.eth6=br0 'dhclient:-sf /tmp/x.sh' refused: dhclient {dhcp}"),
                format!("label pipework.eth7=br0 dhclient-f refused: dhclient-f {dhcp}"),
                format!("label pipework.eth8=br0 dhcpcd refused: dhcpcd {dhcp}"),
            ]
        );
    }

    #[test]
    fn labels_name_only_allowed_host_interfaces() {
        let (made, said) = sifted(
            &[
                ("pipework.eth1", "br0 10.0.0.1/24"),
                ("pipework.eth2", "br9 10.0.0.2/24"),
                ("pipework.eth3", "eth0 dhcp:-t3"),
                ("pipework.eth4", "mac:02:00:00:00:00:e9 10.0.0.4/24"),
                ("pipework.eth5", "mac:02:00:00:00:00:b0 10.0.0.5/24"),
                ("pipework.eth6", "mac:02:00:00:00:00:99 10.0.0.6/24"),
                ("pipework.eth7", "ovs9 10.0.0.7/24"),
            ],
            &["br0", "eth0", "ovs0"],
        );
        let made: Vec<(&str, &HostIf)> =
            made.iter().map(|r| (r.container_if.as_deref().unwrap(), &r.host)).collect();
        let name = |n: &str| HostIf::Name(n.into());
        // mac: becomes the name it was checked as: the attach uses that one.
        assert_eq!(made, [("eth1", &name("br0")), ("eth3", &name("eth0")), ("eth5", &name("br0"))]);
        let not_allowed = "is not allowed: labels may plumb only host interfaces allowed with --allow";
        assert_eq!(
            said,
            [
                format!("label pipework.eth2=br9 10.0.0.2/24 refused: host interface br9 {not_allowed}"),
                format!(
                    "label pipework.eth4=mac:02:00:00:00:00:e9 10.0.0.4/24 refused: host interface eth9 {not_allowed}"
                ),
                "label pipework.eth6=mac:02:00:00:00:00:99 10.0.0.6/24 refused: no host interface has MAC \
                 02:00:00:00:00:99"
                    .to_string(),
                format!("label pipework.eth7=ovs9 10.0.0.7/24 refused: host interface ovs9 {not_allowed}"),
            ]
        );
    }

    #[test]
    fn without_allow_one_line_says_how_to_allow_them() {
        let (made, said) = sifted(
            &[
                ("pipework.eth1", "br0 10.0.0.1/24"),
                ("pipework.eth2", "br1 10.0.0.2/24"),
                ("pipework.eth3", "br0 dhcp"),
                ("pipework.eth4", "eth0 --direct-phys 0/0"),
            ],
            &[],
        );
        assert!(made.is_empty(), "{made:?}");
        assert_eq!(
            said,
            [
                "label pipework.eth4=eth0 --direct-phys 0/0 refused: --direct-phys is never taken from a label: \
                 it moves a host interface into the container",
                "labels pipework.eth1, pipework.eth2, pipework.eth3 ignored: labels may plumb only host \
                 interfaces allowed with --allow; restart watch with --allow br0 --allow br1",
            ]
        );
        let (_, said) = sifted(&[("pipework.eth1", "br0 10.0.0.1/24")], &[]);
        assert_eq!(
            said,
            ["label pipework.eth1 ignored: labels may plumb only host interfaces allowed with --allow; \
                 restart watch with --allow br0"]
        );
    }

    #[test]
    fn the_native_client_and_its_options_pass() {
        let (made, said) = sifted(
            &[("pipework.eth1", "br0 dhcp"), ("pipework.eth2", "br0 'dhcp:-V x -t 3' --timeout 5")],
            &["br0"],
        );
        assert_eq!((made.len(), said), (2, Vec::<String>::new()));
    }

    #[test]
    fn only_a_container_that_owns_its_network_namespace_takes_labels() {
        for own in ["default", "bridge", "none", "mynet", "", "container", "hostnet"] {
            assert!(owns_netns(own), "{own}");
        }
        for shared in ["host", "container:victim", "container:0123abcd", "ns:/run/netns/x"] {
            assert!(!owns_netns(shared), "{shared}");
        }
    }
}
