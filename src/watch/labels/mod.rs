//! Container labels that ask for an interface:
//! `pipework.<CTR_IF>=<HOSTIF> <IP>/<LEN>[@GW] [MAC][@VLAN]`, the rest of a
//! pipework command line after the guest. Its words are split as a POSIX
//! shell splits them (quotes and backslashes, no expansion), then read by
//! the command line's own parser, so every form an attach takes works in a
//! label.
//!
//! Labels are input from whoever may run a container, and watch runs as
//! root: `Trust` (in `trust`) is what a label may ask of the host
//! (`watch --allow`), and `sift` lets through what it allows.

mod trust;

use std::collections::HashMap;
use std::ffi::OsString;

use crate::cli;
use crate::request::{Attach, GuestRef, Request};
pub use trust::{owns_netns, sift, Trust};

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

    pub(super) fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
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
}
