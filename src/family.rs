//! IP address families: `-a 4|6|inet|inet6`, and what an address is.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Family {
    #[serde(rename = "ipv4")]
    V4,
    #[serde(rename = "ipv6")]
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
