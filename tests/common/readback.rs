//! Reading a namespace back the way `ip -j` shows it: the oracle of every
//! test. The [`Ns`] trait gives the same reads on a netns, a container or a
//! process.

use std::process::Output;

use serde_json::{json, Value};

use super::commands::{quiet, run};
use super::snapshot;

/// An interface as `ip -d -j link` shows it.
#[derive(Debug, Clone)]
pub struct Link {
    pub ifindex: u64,
    pub ifname: String,
    pub mtu: u64,
    pub master: Option<String>,
    pub flags: Vec<String>,
    pub address: String,
    /// `linkinfo.info_kind`: veth, bridge, macvlan...
    pub kind: Option<String>,
}

impl Link {
    pub(crate) fn from_json(v: &Value) -> Link {
        Link {
            ifindex: v["ifindex"].as_u64().unwrap_or_default(),
            ifname: str_of(v, "ifname"),
            mtu: v["mtu"].as_u64().unwrap_or_default(),
            master: v["master"].as_str().map(str::to_owned),
            flags: v["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect(),
            address: str_of(v, "address"),
            kind: v["linkinfo"]["info_kind"].as_str().map(str::to_owned),
        }
    }

    /// Administratively up.
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

/// One address as `ip -j addr` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: String,
    pub local: String,
    pub prefixlen: u64,
    pub broadcast: Option<String>,
    pub scope: String,
}

impl Addr {
    /// `local/prefixlen`, the way it was given on the command line.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.local, self.prefixlen)
    }
}

/// One route as `ip -j route` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: String,
    pub gateway: Option<String>,
    pub dev: Option<String>,
    pub scope: Option<String>,
    pub table: Option<String>,
}

impl Route {
    pub(crate) fn from_json(v: &Value) -> Route {
        let opt = |k: &str| v[k].as_str().map(str::to_owned);
        Route {
            dst: str_of(v, "dst"),
            gateway: opt("gateway"),
            dev: opt("dev"),
            scope: opt("scope"),
            table: opt("table"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }
}

pub(crate) fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// Anything with a network namespace: a named netns, a container, a process.
/// All reading back goes through here, so the same checks work on each.
pub trait Ns {
    /// argv prefix that runs a command inside the namespace.
    fn enter(&self) -> Vec<String>;

    /// argv prefix for `ip` inside the namespace.
    fn ip_argv(&self) -> Vec<String> {
        let mut argv = self.enter();
        argv.push("ip".into());
        argv
    }

    /// /var/run/netns entries a pipework run for this guest might leave.
    fn netns_litter(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs any command inside the namespace.
    fn exec(&self, argv: &[&str]) -> Output {
        let mut full = self.enter();
        full.extend(argv.iter().map(|s| s.to_string()));
        quiet(&full.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs a command inside the namespace that must succeed; its stdout.
    fn must(&self, argv: &[&str]) -> String {
        let mut full = self.enter();
        full.extend(argv.iter().map(|s| s.to_string()));
        run(&full.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs a DHCP client (or anything else that rewrites /etc/resolv.conf
    /// through its scripts) inside the namespace, in a private mount
    /// namespace whose /etc/resolv.conf is a throwaway file: the machine's
    /// own resolver configuration is never written.
    fn exec_private_resolv(&self, argv: &[&str]) -> Output {
        let scratch = std::env::temp_dir().join(format!("{}-resolv.conf", super::unique("pwres")));
        std::fs::write(&scratch, "").expect("scratch resolv.conf");
        let scratch_arg = scratch.to_string_lossy().into_owned();
        let bind = r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#;
        let mut full =
            vec!["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", bind, &scratch_arg];
        full.extend_from_slice(argv);
        let out = self.exec(&full);
        let _ = std::fs::remove_file(&scratch);
        out
    }

    /// `ip <args>`, which must succeed; returns stdout.
    fn ip(&self, args: &[&str]) -> String {
        let mut argv = self.ip_argv();
        argv.extend(args.iter().map(|s| s.to_string()));
        run(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `ip -j <args>`, parsed.
    fn ip_j(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let out = self.ip(&full);
        if out.trim().is_empty() {
            return json!([]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    fn links(&self) -> Vec<Link> {
        as_vec(self.ip_j(&["-d", "link", "show"])).iter().map(Link::from_json).collect()
    }

    /// The interface called `name`, if there is one.
    fn link(&self, name: &str) -> Option<Link> {
        self.links().into_iter().find(|l| l.ifname == name)
    }

    /// The interface called `name`, which must exist.
    #[track_caller]
    fn must_link(&self, name: &str) -> Link {
        let links = self.links();
        let names: Vec<_> = links.iter().map(|l| l.ifname.clone()).collect();
        links
            .into_iter()
            .find(|l| l.ifname == name)
            .unwrap_or_else(|| panic!("no link {name}; links: {names:?}"))
    }

    /// Interfaces enslaved to `master`.
    fn ports(&self, master: &str) -> Vec<Link> {
        self.links().into_iter().filter(|l| l.master.as_deref() == Some(master)).collect()
    }

    /// Addresses of `dev`, IPv6 link-local ones left out (the kernel makes those).
    fn addrs(&self, dev: &str) -> Vec<Addr> {
        let v = self.ip_j(&["addr", "show", "dev", dev]);
        as_vec(v)
            .iter()
            .flat_map(|l| as_vec(l["addr_info"].clone()))
            .filter(|a| !is_kernel_v6(a["local"].as_str().unwrap_or_default()))
            .map(|a| Addr {
                family: str_of(&a, "family"),
                local: str_of(&a, "local"),
                prefixlen: a["prefixlen"].as_u64().unwrap_or_default(),
                broadcast: a["broadcast"].as_str().map(str::to_owned),
                scope: str_of(&a, "scope"),
            })
            .collect()
    }

    /// `local/len` of each address of `dev` in `family`.
    fn cidrs(&self, dev: &str, family: Family) -> Vec<String> {
        let want = if family == Family::V4 { "inet" } else { "inet6" };
        self.addrs(dev).iter().filter(|a| a.family == want).map(Addr::cidr).collect()
    }

    /// Routes of the main table.
    fn routes(&self, family: Family) -> Vec<Route> {
        as_vec(self.ip_j(&[family.flag(), "route", "show"])).iter().map(Route::from_json).collect()
    }

    fn default_routes(&self, family: Family) -> Vec<Route> {
        self.routes(family).into_iter().filter(|r| r.dst == "default").collect()
    }

    /// Pings `ip` from inside, a few tries (the first packets may go to ARP).
    fn ping(&self, ip: &str) -> bool {
        (0..5).any(|_| self.exec(&["ping", "-c", "1", "-W", "1", ip]).status.success())
    }

    /// A veth pair inside the namespace, `eth0` holding `cidr` with a default
    /// route via `gw`: a default route for pipework to replace (and restore).
    fn add_uplink(&self, cidr: &str, gw: &str) {
        if self.link("eth0").is_none() {
            self.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
            self.ip(&["link", "set", "eth0p", "up"]);
            self.ip(&["link", "set", "eth0", "up"]);
        }
        if cidr.contains(':') {
            self.ip(&["-6", "addr", "add", cidr, "dev", "eth0", "nodad"]);
            self.ip(&["-6", "route", "add", "default", "via", gw, "dev", "eth0"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", "eth0"]);
            self.ip(&["route", "add", "default", "via", gw, "dev", "eth0"]);
        }
    }

    /// Everything pipework could change here, normalised so that two
    /// snapshots compare equal when nothing changed: links, addresses,
    /// routes of every table, rules, and netns litter for this guest.
    fn snapshot(&self) -> Value {
        snapshot::take(self)
    }
}

pub(crate) fn as_vec(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

/// IPv6 link-local and multicast: the kernel adds and keeps these by itself
/// (a bridge gets its fe80:: when its first port brings carrier), so they say
/// nothing about what pipework did.
pub(crate) fn is_kernel_v6(addr: &str) -> bool {
    let a = addr.to_ascii_lowercase();
    a.starts_with("fe80") || a.starts_with("ff")
}

/// Routes of every table, the local one included; `table` is None for main.
pub fn all_routes(ns: &dyn Ns, family: Family) -> Vec<Route> {
    as_vec(ns.ip_j(&[family.flag(), "route", "show", "table", "all"])).iter().map(Route::from_json).collect()
}

/// `linkinfo.info_data` of `ip -d -j link show dev <name>`: for a bridge,
/// stp_state, forward_delay (in hundredths of a second)...
pub fn link_info_data(ns: &dyn Ns, name: &str) -> Value {
    ns.ip_j(&["-d", "link", "show", "dev", name])[0]["linkinfo"]["info_data"].clone()
}

/// `ip -d -j link show dev <name>`: the whole record, link_index and
/// link_netnsid included.
pub fn link_detail(ns: &dyn Ns, name: &str) -> Value {
    ns.ip_j(&["-d", "link", "show", "dev", name])[0].clone()
}

/// `bridge -j vlan show dev <port>` in the namespace named `ns`: (vid,
/// flags) pairs, flags as `bridge` prints them ("PVID", "Egress Untagged").
pub fn port_vlans(ns: &str, port: &str) -> Vec<(u64, Vec<String>)> {
    let out = run(&["bridge", "-n", ns, "-j", "vlan", "show", "dev", port]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bridge -j vlan show: {e}: {out}"));
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let entries = list(&v).into_iter().find(|e| e["ifname"] == port).map(|e| list(&e["vlans"]));
    entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let flags = list(&e["flags"]).iter().filter_map(|f| f.as_str().map(String::from)).collect();
            (e["vlan"].as_u64().unwrap_or_default(), flags)
        })
        .collect()
}
