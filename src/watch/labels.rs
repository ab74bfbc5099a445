//! Container labels that ask for an interface:
//! `pipework.<CTR_IF>=<HOSTIF> <IP>/<LEN>[@GW] [MAC][@VLAN]`, the rest of a
//! pipework command line after the guest. Its words are split as a POSIX
//! shell splits them (quotes and backslashes, no expansion), then read by
//! the command line's own parser, so every form an attach takes works in a
//! label.
//!
//! Labels are input from whoever may run a container, and watch runs as
//! root: `Trust` is what a label may ask of the host (`watch --allow`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;

use crate::cli;
use crate::mac::Mac;
use crate::request::{Addressing, Attach, DhcpClient, GuestRef, HostIf, Request};

pub const PREFIX: &str = "pipework.";

/// A label that asks for something an attach cannot be.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    pub label: String,
    pub why: String,
}

/// A label that is an attach, not yet checked against `Trust`.
#[derive(Debug)]
pub struct Asked {
    pub key: String,
    pub value: String,
    pub req: Attach,
}

/// The attaches `labels` ask for in container `id` (in label order), and
/// the labels that are not one. `host_has` tells whether the host has an
/// interface of that name, as for a command line.
pub fn attaches(
    id: &str,
    labels: &HashMap<String, String>,
    host_has: impl Fn(&str) -> bool,
) -> (Vec<Asked>, Vec<Malformed>) {
    let mut ours: Vec<(&String, &String)> =
        labels.iter().filter(|(key, _)| key.starts_with(PREFIX)).collect();
    ours.sort();
    let mut wanted = Vec::new();
    let mut malformed = Vec::new();
    for (key, value) in ours {
        match attach(id, &key[PREFIX.len()..], value, &host_has) {
            Ok(req) => wanted.push(Asked { key: key.clone(), value: value.clone(), req }),
            Err(why) => malformed.push(Malformed { label: format!("{key}={value}"), why }),
        }
    }
    (wanted, malformed)
}

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

/// Whether any label is one of ours.
pub fn any(labels: &HashMap<String, String>) -> bool {
    labels.keys().any(|key| key.starts_with(PREFIX))
}

fn attach(id: &str, ifname: &str, value: &str, host_has: &impl Fn(&str) -> bool) -> Result<Attach, String> {
    let words = words(value)?;
    let Some((host_if, rest)) = words.split_first() else {
        return Err("no host interface and address".into());
    };
    // `pipework HOSTIF -i CTR_IF GUEST ...`: the label is the line after the guest.
    let argv: Vec<OsString> = ["pipework", host_if, "-i", ifname, id]
        .into_iter()
        .chain(rest.iter().map(String::as_str))
        .map(OsString::from)
        .collect();
    let inv = cli::parse(argv, host_has).map_err(|e| {
        let message = e.message();
        let first = message.lines().next().unwrap_or_default();
        match first {
            "Syntax:" => "not a pipework command line: <HOSTIF> <IP>/<LEN>[@GW] [MAC][@VLAN]".to_string(),
            why => why.to_string(),
        }
    })?;
    match inv.request {
        // An option first would shift the words: the guest must be this container.
        Request::Attach(req) if !inv.dry_run && req.guest == GuestRef::Name(id.into()) => Ok(req),
        _ => Err("not an attach: <HOSTIF> <IP>/<LEN>[@GW] [MAC][@VLAN]".into()),
    }
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
            if dhcp.client != DhcpClient::Docker {
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

/// `value`'s words as a POSIX shell splits them, for quoting only: single
/// quotes, double quotes (where a backslash escapes `"`, `\`, `$` and a
/// backquote), a backslash outside quotes. Nothing is expanded: `$`, globs
/// and `~` stay as written.
fn words(value: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = value.chars();
    // The word being read; `None` between words (`Some("")` is `''`).
    let mut word: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some('\n') => {}
                            Some(c) => w.extend(['\\', c]),
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                // A trailing backslash stays, as in sh.
                next => word.get_or_insert_with(String::new).extend(next.or(Some('\\'))),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Addressing, GuestRef, HostIf, Tag};

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_runbook_label() {
        let (wanted, bad) = attaches(
            "abc123",
            &labels(&[("pipework.eth1", "br0 10.5.106.101/24@10.5.106.1"), ("other", "x")]),
            |_| false,
        );
        assert_eq!(bad, vec![]);
        let [Asked { req, .. }] = &wanted[..] else { panic!("{wanted:?}") };
        assert_eq!(req.host, HostIf::Name("br0".into()));
        assert_eq!(req.container_if.as_deref(), Some("eth1"));
        assert_eq!(req.guest, GuestRef::Name("abc123".into()));
        assert_eq!(
            req.addr,
            Addressing::Static {
                net: "10.5.106.101/24".parse().unwrap(),
                gateway: Some("10.5.106.1".parse().unwrap())
            }
        );
    }

    #[test]
    fn every_form_and_several_interfaces() {
        let (wanted, bad) = attaches(
            "c1",
            &labels(&[
                ("pipework.eth2", "eth0 dhcp 02:00:00:00:00:02@10"),
                ("pipework.eth1", "br1 -l vweb 192.168.4.25/20 U:web"),
            ]),
            |_| false,
        );
        assert_eq!(bad, vec![]);
        assert_eq!(wanted.len(), 2);
        assert_eq!(wanted[0].req.local_if.as_deref(), Some("vweb"));
        assert!(wanted[0].req.mac.is_some());
        assert!(matches!(wanted[1].req.addr, Addressing::Dhcp(_)));
        assert_eq!(wanted[1].req.tag, Some(Tag("10".into())));
    }

    #[test]
    fn words_split_as_a_shell_splits_them_without_expanding() {
        let split = |s: &str| words(s).unwrap();
        assert_eq!(split("  br0\tdhcp  "), ["br0", "dhcp"]);
        assert_eq!(split("br0 'udhcpc:-t 10 -T 1'"), ["br0", "udhcpc:-t 10 -T 1"]);
        assert_eq!(split("a\"b \\\" \\$x \\q\"c"), ["ab \" $x \\qc"]);
        assert_eq!(split("a\\ b '' \"\" 'it'\\''s'"), ["a b", "", "", "it's"]);
        assert_eq!(split("$HOME ~ * '$x' \"$y\" end\\"), ["$HOME", "~", "*", "$x", "$y", "end\\"]);
        assert_eq!(words("br0 'udhcpc:-t 10"), Err("unterminated single quote".into()));
        assert_eq!(words("br0 \"dhcp\\\""), Err("unterminated double quote".into()));
    }

    #[test]
    fn a_quoted_option_is_one_word() {
        let (wanted, bad) = attaches(
            "c1",
            &labels(&[("pipework.eth1", "br0 'udhcpc:-t 10 -T 1'"), ("pipework.eth2", "br0 \"dhcp:-x a\"")]),
            |_| false,
        );
        assert_eq!(bad, vec![]);
        let [Addressing::Dhcp(a), Addressing::Dhcp(b)] = [&wanted[0].req.addr, &wanted[1].req.addr] else {
            panic!("{wanted:?}")
        };
        assert_eq!(a.options.as_deref(), Some("-t 10 -T 1"));
        assert_eq!(b.options.as_deref(), Some("-x a"));
    }

    #[test]
    fn malformed_labels_say_why_and_spare_the_others() {
        let (wanted, bad) = attaches(
            "c1",
            &labels(&[
                ("pipework.eth1", "br0 10.0.0.300/24"),
                ("pipework.eth2", ""),
                ("pipework.eth3", "br0"),
                ("pipework.eth4", "br0 -i eth9 10.0.0.4/24"),
                ("pipework.abcdefghijklmnop", "br0 10.0.0.5/24"),
                ("pipework.eth5", "route 10.0.0.0/8"),
                ("pipework.eth6", "br0 10.0.0.6/24"),
                ("pipework.eth7", "br0 'udhcpc:-t 10"),
                ("pipework.eth8", "-v victim 10.0.0.8/24"),
            ]),
            |_| false,
        );
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[0].req.container_if.as_deref(), Some("eth6"));
        let labels: Vec<&str> = bad.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "pipework.abcdefghijklmnop=br0 10.0.0.5/24",
                "pipework.eth1=br0 10.0.0.300/24",
                "pipework.eth2=",
                "pipework.eth3=br0",
                "pipework.eth4=br0 -i eth9 10.0.0.4/24",
                "pipework.eth5=route 10.0.0.0/8",
                "pipework.eth7=br0 'udhcpc:-t 10",
                "pipework.eth8=-v victim 10.0.0.8/24",
            ]
        );
        assert_eq!(bad[0].why, "interface name 'abcdefghijklmnop' is longer than 15 bytes");
        assert_eq!(bad[2].why, "no host interface and address");
        assert_eq!(bad[3].why, "not a pipework command line: <HOSTIF> <IP>/<LEN>[@GW] [MAC][@VLAN]");
        assert!(bad[4].why.contains("cannot be used multiple times"), "{}", bad[4].why);
        assert_eq!(bad[5].why, "not an attach: <HOSTIF> <IP>/<LEN>[@GW] [MAC][@VLAN]");
        assert_eq!(bad[6].why, "unterminated single quote");
        // `pipework -v -i eth8 c1 victim ...`: c1 the host interface, victim the guest.
        assert_eq!(bad[7].why, "not an attach: <HOSTIF> <IP>/<LEN>[@GW] [MAC][@VLAN]");
    }

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
