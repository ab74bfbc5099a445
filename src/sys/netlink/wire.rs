//! Netlink messages kept in a file (a run's intent log) as the bytes the
//! kernel reads, in hex: a route or an address is given back exactly as
//! the kernel listed it, every attribute included.

use rtnetlink::packet_core::{Emitable, Parseable};
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::RouteMessage;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

fn to_hex<S: Serializer>(msg: &impl Emitable, s: S) -> Result<S::Ok, S::Error> {
    let mut bytes = vec![0; msg.buffer_len()];
    msg.emit(&mut bytes);
    s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn from_hex<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    if text.len() % 2 != 0 {
        return Err(D::Error::custom("odd number of hex digits"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("x"), 16).map_err(D::Error::custom))
        .collect()
}

pub mod route {
    use super::*;

    pub fn serialize<S: Serializer>(msg: &RouteMessage, s: S) -> Result<S::Ok, S::Error> {
        to_hex(msg, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<RouteMessage>, D::Error> {
        let bytes = from_hex(d)?;
        RouteMessage::parse(bytes.as_slice()).map(Box::new).map_err(D::Error::custom)
    }
}

pub mod address {
    use super::*;

    pub fn serialize<S: Serializer>(msg: &AddressMessage, s: S) -> Result<S::Ok, S::Error> {
        to_hex(msg, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<AddressMessage>, D::Error> {
        let bytes = from_hex(d)?;
        AddressMessage::parse(bytes.as_slice()).map(Box::new).map_err(D::Error::custom)
    }
}
