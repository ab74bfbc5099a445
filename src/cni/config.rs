//! The network configuration on stdin, read as the reference `bridge`
//! plugin (1.1.1) reads it, so that a configuration written for
//! `"type": "bridge"` works unchanged with `"type": "pipework"`.
//!
//! Keys are handled in three ways:
//! - the reference's keys that pipework implements are read and checked
//!   (`ipMasq` and `macspoofchk` with nf_tables rules of its own);
//! - the keys of later bridge versions it does not implement (`vlanTrunk`,
//!   `ipMasqBackend` other than `nftables`, `disableContainerInterface`,
//!   `portIsolation`, `preserveDefaultVlan`), are refused with code 2 when
//!   they ask for anything but the default: never silently ignored;
//! - any other key is ignored, as the reference ignores it (runtimes and
//!   other plugins of a conflist add their own).

use serde_json::{Map, Value};

use super::env::Env;
use super::error::{CniError, CniResult, Code};
use super::result::{CniOutput, Dns};
use super::version::Version;
use crate::mac::Mac;
use crate::records::CniFlags;

/// The reference's default bridge name.
pub const DEFAULT_BRIDGE: &str = "cni0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

#[derive(Debug, Clone)]
pub struct NetConf {
    pub version: Version,
    pub name: String,
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub mtu: Option<u32>,
    pub hairpin: bool,
    pub promisc: bool,
    pub vlan: Option<u16>,
    pub enable_dad: bool,
    /// `ipMasq`: the container's addresses masqueraded beyond their subnets.
    pub ip_masq: bool,
    /// `macspoofchk`: frames from the container with another source MAC dropped.
    pub mac_spoof_check: bool,
    /// The IPAM plugin's `type`; none means a layer-2 only attachment.
    pub ipam: Option<String>,
    pub dns: Dns,
    /// From `runtimeConfig.mac`, `args.cni.mac` or CNI_ARGS `MAC`, in that
    /// order of precedence.
    pub mac: Option<Mac>,
    pub prev_result: Option<CniOutput>,
    /// GC's `cni.dev/valid-attachments`.
    pub valid_attachments: Vec<Attachment>,
    /// stdin as it came, for the IPAM plugin.
    pub raw: Vec<u8>,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidConfig, msg)
}

fn unsupported(key: &str, value: &Value, why: &str) -> CniError {
    CniError::new(Code::UnsupportedField, format!("unsupported field \"{key}\": {value}")).with_details(why)
}

/// The `cniVersion` of whatever stdin holds, for error objects that must
/// answer in the request's version; the latest when it cannot be read.
pub fn version_hint(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(String::from))
        .filter(|v| Version::parse(Some(v)).is_ok())
        .unwrap_or_else(|| super::version::LATEST.to_string())
}

fn boolean(obj: &Map<String, Value>, key: &str) -> CniResult<bool> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(invalid(format!("\"{key}\" is {other}, not true or false"))),
    }
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str) -> CniResult<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(format!("\"{key}\" is {other}, not a string"))),
    }
}

/// A whole number in `range`; 0 means "not set", as in the reference.
fn number(obj: &Map<String, Value>, key: &str, max: u64) -> CniResult<Option<u64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(0) => Ok(None),
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(invalid(format!("\"{key}\" is {v}, not a whole number from 0 to {max}"))),
        },
    }
}

fn object<'a>(obj: &'a Map<String, Value>, key: &str) -> CniResult<Option<&'a Map<String, Value>>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(invalid(format!("\"{key}\" is {other}, not an object"))),
    }
}

fn mac(text: &str, from: &str) -> CniResult<Mac> {
    // pipework's own `U:<text>` form is not CNI's.
    let parsed = if text.starts_with("U:") { Err(String::new()) } else { Mac::parse_arg(text) };
    parsed.map_err(|_| invalid(format!("{from} \"{text}\" is not a unicast MAC address")))
}

/// A key pipework does not implement, whether a value of it asks for
/// nothing (the default), and why the others are refused.
type Refusal = (&'static str, fn(&Value) -> bool, &'static str);

/// Keys pipework refuses unless they hold the value that asks for nothing.
fn refuse_unimplemented(obj: &Map<String, Value>) -> CniResult<()> {
    let refusals: [Refusal; 5] = [
        (
            "ipMasqBackend",
            |v| v.as_str() == Some("nftables"),
            "pipework masquerades with nf_tables rules of its own, never iptables",
        ),
        (
            "vlanTrunk",
            |v| v.as_array().is_some_and(|a| a.is_empty()),
            "VLAN trunks on the container port are not implemented",
        ),
        (
            "preserveDefaultVlan",
            |v| *v == Value::Bool(true),
            "the default VLAN is always kept on the port, as bridge 1.1.1 does",
        ),
        (
            "disableContainerInterface",
            |v| *v == Value::Bool(false),
            "the container interface is always brought up",
        ),
        ("portIsolation", |v| *v == Value::Bool(false), "bridge port isolation is not implemented"),
    ];
    for (key, harmless, why) in refusals {
        match obj.get(key) {
            Some(v) if !v.is_null() && !harmless(v) => return Err(unsupported(key, v, why)),
            _ => {}
        }
    }
    Ok(())
}

impl NetConf {
    /// The flags the record keeps, which DEL, GC and CHECK go by.
    pub fn flags(&self) -> CniFlags {
        CniFlags { ip_masq: self.ip_masq, mac_spoof_check: self.mac_spoof_check }
    }

    /// Reads stdin's configuration for the command in `env`.
    pub fn parse(stdin: &[u8], env: &Env) -> CniResult<NetConf> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(Code::Decoding, "failed to decode network configuration")
                .with_details(e.to_string())
        })?;
        let obj = value.as_object().ok_or_else(|| {
            CniError::new(Code::Decoding, "failed to decode network configuration")
                .with_details("not a JSON object")
        })?;
        let version = Version::parse(match obj.get("cniVersion") {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => None,
            Some(other) => return Err(invalid(format!("\"cniVersion\" is {other}, not a string"))),
        })?;
        refuse_unimplemented(obj)?;

        let is_default_gateway = boolean(obj, "isDefaultGateway")?;
        let ipam = match object(obj, "ipam")? {
            None => None,
            Some(ipam) => match string(ipam, "type")? {
                Some(t) if t.contains('/') || t == "." || t == ".." => {
                    return Err(invalid(format!("IPAM type \"{t}\" is not a plugin name")))
                }
                Some(t) => Some(t.to_string()),
                None if ipam.is_empty() => None,
                None => return Err(invalid("\"ipam\" has settings but no \"type\"")),
            },
        };
        let prev_result = match obj.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(CniOutput::parse(v, "prevResult")?),
        };
        Ok(NetConf {
            version,
            name: string(obj, "name")?.unwrap_or_default().to_string(),
            bridge: string(obj, "bridge")?.unwrap_or(DEFAULT_BRIDGE).to_string(),
            is_gateway: boolean(obj, "isGateway")? || is_default_gateway,
            is_default_gateway,
            force_address: boolean(obj, "forceAddress")?,
            mtu: number(obj, "mtu", 65535)?.map(|n| n as u32),
            hairpin: boolean(obj, "hairpinMode")?,
            promisc: boolean(obj, "promiscMode")?,
            vlan: number(obj, "vlan", 4094)?.map(|n| n as u16),
            enable_dad: boolean(obj, "enabledad")?,
            ip_masq: boolean(obj, "ipMasq")?,
            mac_spoof_check: boolean(obj, "macspoofchk")?,
            ipam,
            dns: Dns::parse(obj.get("dns").unwrap_or(&Value::Null), "network configuration")
                .map_err(|e| invalid(e.details))?,
            mac: configured_mac(obj, env)?,
            prev_result,
            valid_attachments: valid_attachments(obj)?,
            raw: stdin.to_vec(),
        })
        .and_then(NetConf::checked)
    }

    fn checked(self) -> CniResult<NetConf> {
        crate::request::check_ifname(&self.bridge).map_err(|e| {
            invalid(format!("\"bridge\" \"{}\" is not an interface name", self.bridge)).with_details(e)
        })?;
        if let Some(mtu) = self.mtu.filter(|m| *m < 68) {
            return Err(invalid(format!("\"mtu\" {mtu} is below the minimum of 68")));
        }
        Ok(self)
    }
}

/// `runtimeConfig.mac` over `args.cni.mac` over CNI_ARGS `MAC`, as the
/// reference ranks them. CNI_ARGS keys other than `MAC` and `IgnoreUnknown`
/// are refused unless `IgnoreUnknown` is set, as the reference does.
fn configured_mac(obj: &Map<String, Value>, env: &Env) -> CniResult<Option<Mac>> {
    if let Some(runtime) = object(obj, "runtimeConfig")? {
        if let Some(text) = string(runtime, "mac")? {
            return mac(text, "runtimeConfig.mac").map(Some);
        }
    }
    if let Some(cni) = object(obj, "args")?.map(|args| object(args, "cni")).transpose()?.flatten() {
        if let Some(text) = string(cni, "mac")? {
            return mac(text, "args.cni.mac").map(Some);
        }
    }
    let ignore_unknown = env.arg("IgnoreUnknown").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let unknown: Vec<&str> =
        env.args.iter().map(|(k, _)| k.as_str()).filter(|k| !matches!(*k, "MAC" | "IgnoreUnknown")).collect();
    if !unknown.is_empty() && !ignore_unknown {
        return Err(CniError::new(Code::InvalidEnvironment, format!("CNI_ARGS: unknown args {unknown:?}"))
            .with_details("add IgnoreUnknown=1 to CNI_ARGS to let other plugins' arguments through"));
    }
    match env.arg("MAC").filter(|m| !m.is_empty()) {
        Some(text) => mac(text, "CNI_ARGS MAC")
            .map(Some)
            .map_err(|e| CniError { code: Code::InvalidEnvironment as u32, ..e }),
        None => Ok(None),
    }
}

fn valid_attachments(obj: &Map<String, Value>) -> CniResult<Vec<Attachment>> {
    const KEY: &str = "cni.dev/valid-attachments";
    let Some(list) = obj.get(KEY).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let bad = || invalid(format!("\"{KEY}\" is not a list of {{\"containerID\", \"ifname\"}} objects"));
    let list = list.as_array().ok_or_else(bad)?;
    list.iter()
        .map(|item| {
            let item = item.as_object().ok_or_else(bad)?;
            match (string(item, "containerID")?, string(item, "ifname")?) {
                (Some(id), Some(ifname)) => Ok(Attachment { container_id: id.into(), ifname: ifname.into() }),
                _ => Err(bad()),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
