//! `dhcp:OPTS`: the original handed OPTS to busybox udhcpc. The options that
//! mean something to a native client are taken with udhcpc's syntax; any
//! other is refused by name.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::error::{self, Error, Result};
use crate::request::MAX_WAIT;

/// Option 12, the host name.
pub const HOSTNAME: u8 = 12;
/// Option 60, the vendor class identifier.
pub const VENDOR_CLASS: u8 = 60;
/// Option 61, the client identifier.
pub const CLIENT_ID: u8 = 61;

/// What the native client sends and how it retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Native {
    /// Options sent in every request, by code (host name, vendor class,
    /// `-x` ones), in the order given.
    pub send: Vec<(u8, Vec<u8>)>,
    /// `-r`: the address asked for in the DISCOVER.
    pub requested: Option<Ipv4Addr>,
    /// `-t`: how many DISCOVERs at most (none: until the timeout).
    pub tries: Option<u32>,
    /// `-T`: the wait for an answer before sending again.
    pub retry_every: Duration,
    /// `-O`: codes asked for on top of those the lease needs.
    pub request: Vec<u8>,
    /// `-q`: take the lease and keep no agent to renew it.
    pub once: bool,
    /// `-B`: ask the server to broadcast its answers.
    pub broadcast: bool,
    /// `-C`: send no client identifier.
    pub no_client_id: bool,
}

/// udhcpc's default wait between DISCOVERs (`-T 3`).
const RETRY_EVERY: Duration = Duration::from_secs(3);

/// The supported options, for the refusal message.
const SUPPORTED: &str = "-x, -V, -r, -t, -T, -O, -H, -B, -C, -f, -q, -n, -R";

impl Native {
    /// Parses OPTS as udhcpc would (whitespace-separated words, getopt
    /// style); `guest` is the default host name, as the original's
    /// `-x hostname:<guest>`.
    pub fn parse(opts: Option<&str>, guest: Option<&str>) -> Result<Native> {
        let mut native = Native {
            send: Vec::new(),
            requested: None,
            tries: None,
            retry_every: RETRY_EVERY,
            request: Vec::new(),
            once: false,
            broadcast: false,
            no_client_id: false,
        };
        if let Some(name) = guest {
            native.set(HOSTNAME, name.as_bytes().to_vec());
        }
        let words: Vec<&str> = opts.unwrap_or("").split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            i += 1;
            let (flag, attached) = if let Some(long) = word.strip_prefix("--") {
                match long.split_once('=') {
                    Some((name, value)) => (long_flag(name)?, Some(value)),
                    None => (long_flag(long)?, None),
                }
            } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
                // Clustered flags (`-qf`) until one that takes a value.
                let mut chars = short.char_indices();
                let mut flag = None;
                for (at, c) in chars.by_ref() {
                    if takes_value(c) {
                        let rest = &short[at + c.len_utf8()..];
                        flag = Some((c, (!rest.is_empty()).then_some(rest)));
                        break;
                    }
                    native.switch(c)?;
                }
                match flag {
                    Some(found) => found,
                    None => continue,
                }
            } else {
                return Err(usage(format!("unexpected '{word}' in the DHCP options")));
            };
            if !takes_value(flag) {
                if attached.is_some() {
                    return Err(usage(format!("DHCP option -{flag} takes no value")));
                }
                native.switch(flag)?;
                continue;
            }
            let value = match attached {
                Some(value) => value,
                None => {
                    let value =
                        words.get(i).ok_or_else(|| usage(format!("DHCP option -{flag} needs a value")))?;
                    i += 1;
                    value
                }
            };
            native.valued(flag, value)?;
        }
        Ok(native)
    }

    /// The host name sent, if any.
    pub fn hostname(&self) -> Option<String> {
        self.send.iter().find(|(code, _)| *code == HOSTNAME).map(|(_, v)| String::from_utf8_lossy(v).into())
    }

    fn set(&mut self, code: u8, value: Vec<u8>) {
        self.send.retain(|(c, _)| *c != code);
        self.send.push((code, value));
    }

    fn switch(&mut self, flag: char) -> Result<()> {
        match flag {
            'q' => self.once = true,
            'B' => self.broadcast = true,
            'C' => self.no_client_id = true,
            // The agent renews for the guest's life (-f), a missed lease is
            // a failure (-n), and the lease is released when detached (-R).
            'f' | 'n' | 'R' => {}
            other => return Err(unsupported(other)),
        }
        Ok(())
    }

    fn valued(&mut self, flag: char, value: &str) -> Result<()> {
        let bad = || usage(format!("invalid value '{value}' for DHCP option -{flag}"));
        match flag {
            'x' => {
                let (code, bytes) = extra_option(value)?;
                self.set(code, bytes);
            }
            'H' | 'h' => self.set(HOSTNAME, value.as_bytes().to_vec()),
            'V' => self.set(VENDOR_CLASS, value.as_bytes().to_vec()),
            'r' => self.requested = Some(value.parse().map_err(|_| bad())?),
            't' => self.tries = Some(value.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?),
            'T' => {
                let secs: u64 = value.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
                if secs > MAX_WAIT.as_secs() {
                    return Err(usage(format!(
                        "DHCP option -T {value} is out of range (at most {} s)",
                        MAX_WAIT.as_secs()
                    )));
                }
                self.retry_every = Duration::from_secs(secs);
            }
            'O' => {
                let code = match named(value) {
                    Some((code, _)) => code,
                    None => number(value).ok_or_else(bad)?,
                };
                self.request.push(code);
            }
            other => return Err(unsupported(other)),
        }
        Ok(())
    }
}

/// OPTS the operator must change.
fn usage(message: String) -> Error {
    Error::new(error::Kind::Usage, message)
}

fn unsupported(flag: char) -> Error {
    usage(format!("DHCP option -{flag} is not supported by the native client (it takes {SUPPORTED})"))
}

/// The udhcpc options that take a value, supported or not (so that an
/// unsupported one is named, not its value).
fn takes_value(flag: char) -> bool {
    matches!(flag, 'x' | 'H' | 'h' | 'V' | 'r' | 't' | 'T' | 'O' | 'A' | 'F' | 'i' | 'p' | 's' | 'P' | 'y')
}

fn long_flag(name: &str) -> Result<char> {
    Ok(match name {
        "hostname" => 'H',
        "vendorclass" => 'V',
        "request" => 'r',
        "retries" => 't',
        "timeout" => 'T',
        "request-option" => 'O',
        "broadcast" => 'B',
        "clientid-none" => 'C',
        "foreground" => 'f',
        "quit" => 'q',
        "now" => 'n',
        "release" => 'R',
        other => {
            return Err(usage(format!(
                "DHCP option --{other} is not supported by the native client (it takes {SUPPORTED})"
            )))
        }
    })
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Ip,
    IpList,
    U8,
    U16,
    U32,
    S32,
}

/// udhcpc's option names that a value can be written for.
const NAMES: &[(&str, u8, Kind)] = &[
    ("subnet", 1, Kind::Ip),
    ("timezone", 2, Kind::S32),
    ("router", 3, Kind::IpList),
    ("dns", 6, Kind::IpList),
    ("hostname", 12, Kind::Text),
    ("bootsize", 13, Kind::U16),
    ("domain", 15, Kind::Text),
    ("swapsrv", 16, Kind::Ip),
    ("rootpath", 17, Kind::Text),
    ("ipttl", 23, Kind::U8),
    ("mtu", 26, Kind::U16),
    ("broadcast", 28, Kind::Ip),
    ("nisdomain", 40, Kind::Text),
    ("nissrv", 41, Kind::IpList),
    ("ntpsrv", 42, Kind::IpList),
    ("wins", 44, Kind::IpList),
    ("lease", 51, Kind::U32),
    ("serverid", 54, Kind::Ip),
    ("message", 56, Kind::Text),
    ("tftp", 66, Kind::Text),
    ("bootfile", 67, Kind::Text),
    ("vlanid", 132, Kind::U16),
    ("vlanpriority", 133, Kind::U8),
    ("wpad", 252, Kind::Text),
];

fn named(name: &str) -> Option<(u8, Kind)> {
    NAMES.iter().find(|(n, _, _)| *n == name).map(|(_, code, kind)| (*code, *kind))
}

/// A number as strtoul base 0 reads it, below 255.
fn number(text: &str) -> Option<u8> {
    let n = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok()?,
        None if text.len() > 1 && text.starts_with('0') => u8::from_str_radix(&text[1..], 8).ok()?,
        None => text.parse().ok()?,
    };
    (1..255).contains(&n).then_some(n)
}

/// `-x NAME:VALUE` (typed by the name) or `-x CODE:HEX` (raw bytes), as
/// udhcpc takes them; `=` separates as well as `:`.
fn extra_option(arg: &str) -> Result<(u8, Vec<u8>)> {
    let bad = || usage(format!("invalid DHCP option value in '-x {arg}'"));
    let (name, value) = arg.split_once([':', '=']).ok_or_else(bad)?;
    if let Some((code, kind)) = named(name) {
        let bytes = match kind {
            Kind::Text if !value.is_empty() => value.as_bytes().to_vec(),
            Kind::Text => return Err(bad()),
            Kind::Ip => value.parse::<Ipv4Addr>().map_err(|_| bad())?.octets().to_vec(),
            Kind::IpList => {
                let mut out = Vec::new();
                for ip in value.split([',', ' ']).filter(|s| !s.is_empty()) {
                    out.extend(ip.parse::<Ipv4Addr>().map_err(|_| bad())?.octets());
                }
                out
            }
            Kind::U8 => vec![value.parse::<u8>().map_err(|_| bad())?],
            Kind::U16 => value.parse::<u16>().map_err(|_| bad())?.to_be_bytes().to_vec(),
            Kind::U32 => value.parse::<u32>().map_err(|_| bad())?.to_be_bytes().to_vec(),
            Kind::S32 => value.parse::<i32>().map_err(|_| bad())?.to_be_bytes().to_vec(),
        };
        return Ok((code, bytes));
    }
    let code = number(name).ok_or_else(|| usage(format!("unknown DHCP option '{name}' in '-x {arg}'")))?;
    Ok((code, hex(value).ok_or_else(bad)?))
}

/// Hex bytes, as udhcpc reads a numbered option's value.
fn hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &str) -> Result<Native> {
        Native::parse(Some(opts), Some("web"))
    }

    #[test]
    fn default_hostname_is_the_guest() {
        let n = Native::parse(None, Some("web")).unwrap();
        assert_eq!(n.send, vec![(HOSTNAME, b"web".to_vec())]);
        assert_eq!((n.tries, n.retry_every, n.once), (None, Duration::from_secs(3), false));
    }

    #[test]
    fn the_udhcpc_options() {
        let n =
            parse("-x hostname:db -V acme -r 10.0.0.9 -t 5 -T 1 -x 0x3d:01020304 -x mtu:1400 -O 42").unwrap();
        assert_eq!(
            n.send,
            vec![
                (HOSTNAME, b"db".to_vec()),
                (VENDOR_CLASS, b"acme".to_vec()),
                (CLIENT_ID, vec![1, 2, 3, 4]),
                (26, vec![5, 120])
            ]
        );
        assert_eq!(n.requested, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!((n.tries, n.retry_every, n.request.clone()), (Some(5), Duration::from_secs(1), vec![42]));
        // Attached values, clusters and long forms, as getopt takes them.
        let m = parse("-xhostname=db -Vacme --request=10.0.0.9 -qfT1 --retries 5").unwrap();
        assert_eq!(
            (m.hostname().as_deref(), m.once, m.retry_every),
            (Some("db"), true, Duration::from_secs(1))
        );
        assert_eq!((m.requested, m.tries), (n.requested, Some(5)));
        assert_eq!(parse("-x 61:aa").unwrap().send[1], (CLIENT_ID, vec![0xaa]));
    }

    #[test]
    fn refusals_name_the_option() {
        for (opts, msg) in [
            ("-s /bin/script", "pipework: DHCP option -s is not supported by the native client (it takes -x, -V, -r, -t, -T, -O, -H, -B, -C, -f, -q, -n, -R)"),
            ("-b", "pipework: DHCP option -b is not supported by the native client (it takes -x, -V, -r, -t, -T, -O, -H, -B, -C, -f, -q, -n, -R)"),
            ("--script=x", "pipework: DHCP option --script is not supported by the native client (it takes -x, -V, -r, -t, -T, -O, -H, -B, -C, -f, -q, -n, -R)"),
            ("-x bogus:1", "pipework: unknown DHCP option 'bogus' in '-x bogus:1'"),
            ("-x 0x3d:zz", "pipework: invalid DHCP option value in '-x 0x3d:zz'"),
            ("-r 10.0.0", "pipework: invalid value '10.0.0' for DHCP option -r"),
            ("-t 0", "pipework: invalid value '0' for DHCP option -t"),
            ("-T", "pipework: DHCP option -T needs a value"),
            ("eth0", "pipework: unexpected 'eth0' in the DHCP options"),
        ] {
            assert_eq!(parse(opts).unwrap_err().to_string(), msg, "{opts}");
        }
    }
}
