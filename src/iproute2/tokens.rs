//! The words of iproute2's grammar: numbers as `strtoul` reads them, the
//! names every `rt_tables`, `rt_scopes` and `rt_protos` file has, and
//! addresses that must agree on one family.

use std::net::IpAddr;

use rtnetlink::packet_route::route::RouteType;

use super::parse::Prefix;
use crate::family::Family;

pub const RT_TABLE_UNSPEC: u32 = 0;
pub const RT_TABLE_DEFAULT: u32 = 253;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;

/// Tokens with the family they imply.
pub struct Tokens<'a> {
    rest: std::slice::Iter<'a, String>,
    pub family: Option<Family>,
}

impl<'a> Tokens<'a> {
    /// Takes a leading `-4`/`-6`.
    pub fn new(args: &'a [String]) -> Tokens<'a> {
        let (family, rest) = match args.first().map(String::as_str) {
            Some("-4") => (Some(Family::V4), &args[1..]),
            Some("-6") => (Some(Family::V6), &args[1..]),
            _ => (None, args),
        };
        Tokens { rest: rest.iter(), family }
    }

    pub fn next(&mut self) -> Option<&'a str> {
        self.rest.next().map(String::as_str)
    }

    /// An address of the family in force, which it sets if unset.
    pub fn addr(&mut self, word: &str) -> Option<IpAddr> {
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
    pub fn prefix(&mut self, word: &str) -> Option<Prefix> {
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
pub fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
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
pub fn table(word: &str) -> Option<u32> {
    match word {
        "main" => Some(RT_TABLE_MAIN),
        "local" => Some(RT_TABLE_LOCAL),
        "default" => Some(RT_TABLE_DEFAULT),
        _ => number(word),
    }
}

pub fn scope(word: &str) -> Option<u8> {
    match word {
        "global" | "universe" => Some(0),
        "site" => Some(200),
        "link" => Some(253),
        "host" => Some(254),
        "nowhere" => Some(255),
        _ => byte(word),
    }
}

pub fn proto(word: &str) -> Option<u8> {
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

pub fn route_type(word: &str) -> Option<RouteType> {
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
pub fn ifname(word: &str) -> Option<String> {
    crate::request::check_ifname(word).ok().map(|_| word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
