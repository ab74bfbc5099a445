//! The CNI result: one model (1.1.0's, the richest), read from any version
//! this plugin speaks and written in the version the configuration asked for.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::{json, Map, Value};

use super::error::{CniError, CniResult, Code};
use super::version::Version;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// Set only for interfaces inside a container: its netns path.
    pub sandbox: String,
    pub mtu: Option<u32>,
    pub socket_path: String,
    pub pci_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix: `10.1.0.5/16`.
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub domain: String,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniOutput {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

fn decode(what: &str, detail: impl Into<String>) -> CniError {
    CniError::new(Code::Decoding, format!("failed to decode {what}")).with_details(detail)
}

fn str_field(obj: &Map<String, Value>, key: &str, what: &str) -> CniResult<String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(decode(what, format!("\"{key}\" is {other}, not a string"))),
    }
}

fn u32_field(obj: &Map<String, Value>, key: &str, what: &str) -> CniResult<Option<u32>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(decode(what, format!("\"{key}\" is {v}, not a number"))),
        },
    }
}

fn strings(obj: &Map<String, Value>, key: &str, what: &str) -> CniResult<Vec<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(|| decode(what, format!("\"{key}\" holds {v}"))))
            .collect(),
        Some(other) => Err(decode(what, format!("\"{key}\" is {other}, not a list"))),
    }
}

fn objects<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> CniResult<Vec<&'a Map<String, Value>>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_object().ok_or_else(|| decode(what, format!("\"{key}\" holds {v}, not an object"))))
            .collect(),
        Some(other) => Err(decode(what, format!("\"{key}\" is {other}, not a list"))),
    }
}

fn parse_ip(text: &str, what: &str) -> CniResult<Option<IpAddr>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| decode(what, format!("\"{text}\" is not an IP address")))
}

fn parse_net(text: &str, what: &str) -> CniResult<IpNetwork> {
    text.parse().map_err(|_| decode(what, format!("\"{text}\" is not an address with a prefix")))
}

impl Dns {
    pub fn parse(value: &Value, what: &str) -> CniResult<Dns> {
        let Some(obj) = value.as_object() else {
            return match value {
                Value::Null => Ok(Dns::default()),
                other => Err(decode(what, format!("\"dns\" is {other}, not an object"))),
            };
        };
        Ok(Dns {
            nameservers: strings(obj, "nameservers", what)?,
            domain: str_field(obj, "domain", what)?,
            search: strings(obj, "search", what)?,
            options: strings(obj, "options", what)?,
        })
    }

    fn to_json(&self) -> Value {
        let mut obj = Map::new();
        if !self.nameservers.is_empty() {
            obj.insert("nameservers".into(), json!(self.nameservers));
        }
        if !self.domain.is_empty() {
            obj.insert("domain".into(), json!(self.domain));
        }
        if !self.search.is_empty() {
            obj.insert("search".into(), json!(self.search));
        }
        if !self.options.is_empty() {
            obj.insert("options".into(), json!(self.options));
        }
        Value::Object(obj)
    }

    pub fn is_empty(&self) -> bool {
        *self == Dns::default()
    }
}

impl CniOutput {
    /// Reads a result of 0.3.0 or later (`what` names it in errors: "IPAM
    /// result", "prevResult"). The only difference between those versions a
    /// reader sees, an IP's `version`, is implied by the address.
    pub fn parse(value: &Value, what: &str) -> CniResult<CniOutput> {
        let obj = value.as_object().ok_or_else(|| decode(what, "not a JSON object"))?;
        if obj.contains_key("ip4") || obj.contains_key("ip6") {
            return Err(CniError::new(Code::IncompatibleVersion, format!("{what} is in the 0.1/0.2 format"))
                .with_details("this plugin reads results of CNI 0.3.0 and later"));
        }
        let mut out = CniOutput::default();
        for i in objects(obj, "interfaces", what)? {
            out.interfaces.push(Interface {
                name: str_field(i, "name", what)?,
                mac: str_field(i, "mac", what)?,
                sandbox: str_field(i, "sandbox", what)?,
                mtu: u32_field(i, "mtu", what)?,
                socket_path: str_field(i, "socketPath", what)?,
                pci_id: str_field(i, "pciID", what)?,
            });
        }
        for ip in objects(obj, "ips", what)? {
            let interface = u32_field(ip, "interface", what)?.map(|n| n as usize);
            if let Some(n) = interface.filter(|n| *n >= out.interfaces.len()) {
                return Err(decode(what, format!("an IP names interface {n}, which is not listed")));
            }
            out.ips.push(IpConfig {
                address: parse_net(&str_field(ip, "address", what)?, what)?,
                gateway: parse_ip(&str_field(ip, "gateway", what)?, what)?,
                interface,
            });
        }
        for r in objects(obj, "routes", what)? {
            out.routes.push(Route {
                dst: parse_net(&str_field(r, "dst", what)?, what)?,
                gw: parse_ip(&str_field(r, "gw", what)?, what)?,
                mtu: u32_field(r, "mtu", what)?,
                advmss: u32_field(r, "advmss", what)?,
                priority: u32_field(r, "priority", what)?,
                table: u32_field(r, "table", what)?,
                scope: u32_field(r, "scope", what)?,
            });
        }
        out.dns = Dns::parse(obj.get("dns").unwrap_or(&Value::Null), what)?;
        Ok(out)
    }

    /// The result as `version` shapes it. `dns` is always there, as the
    /// reference plugins print it (an empty object when there is none).
    pub fn to_json(&self, version: Version) -> Value {
        let mut obj = Map::new();
        obj.insert("cniVersion".into(), json!(version.as_str()));
        if !self.interfaces.is_empty() {
            let list = self.interfaces.iter().map(|i| interface_json(i, version)).collect();
            obj.insert("interfaces".into(), Value::Array(list));
        }
        if !self.ips.is_empty() {
            let list = self.ips.iter().map(|ip| ip_json(ip, version)).collect();
            obj.insert("ips".into(), Value::Array(list));
        }
        if !self.routes.is_empty() {
            let list = self.routes.iter().map(|r| route_json(r, version)).collect();
            obj.insert("routes".into(), Value::Array(list));
        }
        obj.insert("dns".into(), self.dns.to_json());
        Value::Object(obj)
    }

    /// Appends another plugin's interfaces, IPs and routes after ours
    /// (`prevResult` first, then what this plugin made): interface indices
    /// of `later` move by the number of interfaces already listed.
    pub fn chain(mut self, later: CniOutput) -> CniOutput {
        let offset = self.interfaces.len();
        self.interfaces.extend(later.interfaces);
        self.ips.extend(
            later.ips.into_iter().map(|ip| IpConfig { interface: ip.interface.map(|i| i + offset), ..ip }),
        );
        self.routes.extend(later.routes);
        if !later.dns.is_empty() {
            self.dns = later.dns;
        }
        self
    }
}

fn interface_json(i: &Interface, version: Version) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(i.name));
    if !i.mac.is_empty() {
        obj.insert("mac".into(), json!(i.mac));
    }
    if !i.sandbox.is_empty() {
        obj.insert("sandbox".into(), json!(i.sandbox));
    }
    if version.has_1_1_fields() {
        if let Some(mtu) = i.mtu {
            obj.insert("mtu".into(), json!(mtu));
        }
        if !i.socket_path.is_empty() {
            obj.insert("socketPath".into(), json!(i.socket_path));
        }
        if !i.pci_id.is_empty() {
            obj.insert("pciID".into(), json!(i.pci_id));
        }
    }
    Value::Object(obj)
}

fn ip_json(ip: &IpConfig, version: Version) -> Value {
    let mut obj = Map::new();
    if version.ips_have_family() {
        obj.insert("version".into(), json!(if ip.address.is_ipv4() { "4" } else { "6" }));
    }
    if let Some(i) = ip.interface {
        obj.insert("interface".into(), json!(i));
    }
    obj.insert("address".into(), json!(ip.address.to_string()));
    if let Some(gw) = ip.gateway {
        obj.insert("gateway".into(), json!(gw.to_string()));
    }
    Value::Object(obj)
}

fn route_json(r: &Route, version: Version) -> Value {
    let mut obj = Map::new();
    obj.insert("dst".into(), json!(r.dst.to_string()));
    if let Some(gw) = r.gw {
        obj.insert("gw".into(), json!(gw.to_string()));
    }
    if version.has_1_1_fields() {
        for (key, value) in [
            ("mtu", r.mtu),
            ("advmss", r.advmss),
            ("priority", r.priority),
            ("table", r.table),
            ("scope", r.scope),
        ] {
            if let Some(v) = value {
                obj.insert(key.into(), json!(v));
            }
        }
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "cni0", "mac": "52:f6:c4:9a:1b:58"},
                {"name": "veth59495cf4", "mac": "7a:d5:fb:6e:37:e7", "mtu": 1400},
                {"name": "eth0", "mac": "12:25:2b:66:9f:23", "sandbox": "/run/netns/c"}
            ],
            "ips": [
                {"interface": 2, "address": "10.99.0.2/24", "gateway": "10.99.0.1"},
                {"interface": 2, "address": "fd99::2/64", "gateway": "fd99::1"}
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1", "priority": 10}, {"dst": "::/0"}],
            "dns": {"nameservers": ["10.99.0.1"], "search": ["example.org"]}
        })
    }

    #[test]
    fn round_trip_at_1_1() {
        let out = CniOutput::parse(&sample(), "result").unwrap();
        assert_eq!(out.to_json(Version::V1_1_0), sample());
    }

    #[test]
    fn shaped_for_older_versions() {
        let out = CniOutput::parse(&sample(), "result").unwrap();
        let v1 = out.to_json(Version::V1_0_0);
        assert_eq!(v1["interfaces"][1], json!({"name": "veth59495cf4", "mac": "7a:d5:fb:6e:37:e7"}));
        assert_eq!(v1["routes"][0], json!({"dst": "0.0.0.0/0", "gw": "10.99.0.1"}));
        assert_eq!(v1["ips"][0], json!({"interface": 2, "address": "10.99.0.2/24", "gateway": "10.99.0.1"}));
        let v03 = out.to_json(Version::V0_3_1);
        assert_eq!(v03["cniVersion"], "0.3.1");
        assert_eq!(
            v03["ips"][1],
            json!({"version": "6", "interface": 2, "address": "fd99::2/64", "gateway": "fd99::1"})
        );
        assert_eq!(out.to_json(Version::V0_4_0)["ips"][0]["version"], "4");
    }

    #[test]
    fn reads_0_3_results_and_empty_ones() {
        let v03 = json!({"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.0.0.2/8"}]});
        let out = CniOutput::parse(&v03, "IPAM result").unwrap();
        assert_eq!(out.ips[0].interface, None);
        assert_eq!(
            out.to_json(Version::V1_0_0),
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/8"}], "dns": {}})
        );
        let empty = CniOutput::parse(&json!({"cniVersion": "1.0.0"}), "r").unwrap();
        assert_eq!(empty.to_json(Version::V1_0_0), json!({"cniVersion": "1.0.0", "dns": {}}));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let bad = |v: Value| CniOutput::parse(&v, "IPAM result").unwrap_err();
        let e = bad(json!({"ips": [{"address": "10.0.0.300/8"}]}));
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (6, "failed to decode IPAM result", "\"10.0.0.300/8\" is not an address with a prefix")
        );
        assert_eq!(
            bad(json!({"ips": [{"address": "10.0.0.2/8", "interface": 0}]})).details,
            "an IP names interface 0, which is not listed"
        );
        assert_eq!(bad(json!({"ip4": {"ip": "10.0.0.2/8"}})).code, 1);
        assert_eq!(bad(json!([])).details, "not a JSON object");
    }

    #[test]
    fn chaining_moves_interface_indices() {
        let first = CniOutput::parse(
            &json!({"interfaces": [{"name": "a"}], "ips": [{"address": "10.0.0.2/8", "interface": 0}]}),
            "p",
        )
        .unwrap();
        let ours = CniOutput::parse(&sample(), "r").unwrap();
        let all = first.chain(ours);
        assert_eq!(all.interfaces.len(), 4);
        assert_eq!(all.ips.iter().map(|i| i.interface).collect::<Vec<_>>(), vec![Some(0), Some(3), Some(3)]);
        assert_eq!(all.dns.nameservers, vec!["10.99.0.1"]);
    }
}
