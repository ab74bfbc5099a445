//! Snapshots of everything pipework could change in a namespace, normalised
//! so that two compare equal when nothing changed, and the assertions on
//! them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::readback::{as_vec, is_kernel_v6, Ns};

/// What [`Ns::snapshot`] returns: links, addresses, routes of every table,
/// rules, and netns litter for this guest.
pub(crate) fn take(ns: &(impl Ns + ?Sized)) -> Value {
    json!({
        "links": normalise(ns.ip_j(&["-d", "link", "show"]), link_fields),
        "addrs": normalise(ns.ip_j(&["addr", "show"]), addr_fields),
        "routes4": normalise(ns.ip_j(&["-4", "route", "show", "table", "all"]), route_fields),
        "routes6": normalise(ns.ip_j(&["-6", "route", "show", "table", "all"]), route_fields),
        "rules4": normalise(ns.ip_j(&["-4", "rule", "show"]), |v| Some(v.clone())),
        "rules6": normalise(ns.ip_j(&["-6", "rule", "show"]), |v| Some(v.clone())),
        "netns_litter": ns.netns_litter(),
    })
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for k in keys {
        if let Some(x) = v.get(*k) {
            out.insert((*k).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

/// The stable facts of a link: no ifindex, counters or timers, and no
/// operstate, which the kernel's linkwatch updates up to a second late, and
/// seconds late on a loaded machine (the flags carry UP and LOWER_UP without
/// delay). `ip` derives NO-CARRIER from that same operstate (UP without
/// RUNNING), so it is left out of the flags too.
fn link_fields(v: &Value) -> Option<Value> {
    let mut l = pick(v, &["ifname", "flags", "mtu", "master", "address", "link_type"]);
    if let Some(flags) = l.get_mut("flags").and_then(Value::as_array_mut) {
        flags.retain(|f| f != "NO-CARRIER");
    }
    l["kind"] = v["linkinfo"]["info_kind"].clone();
    l["slave_kind"] = v["linkinfo"]["info_slave_kind"].clone();
    l["vlan_filtering"] = v["linkinfo"]["info_data"]["vlan_filtering"].clone();
    Some(l)
}

fn addr_fields(link: &Value) -> Option<Value> {
    let addrs: Vec<Value> = as_vec(link["addr_info"].clone())
        .iter()
        .filter(|a| !is_kernel_v6(a["local"].as_str().unwrap_or_default()))
        .map(|a| pick(a, &["family", "local", "prefixlen", "broadcast", "scope", "label"]))
        .collect();
    Some(json!({ "ifname": link["ifname"], "addr_info": addrs }))
}

/// Route flags that follow carrier, through the same late linkwatch.
const VOLATILE_ROUTE_FLAGS: &[&str] = &["linkdown", "dead"];

fn route_fields(v: &Value) -> Option<Value> {
    let dst = v["dst"].as_str().unwrap_or_default();
    if is_kernel_v6(dst) {
        return None;
    }
    let mut r =
        pick(v, &["type", "dst", "gateway", "dev", "protocol", "scope", "prefsrc", "table", "metric"]);
    r["flags"] = Value::Array(
        v["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| !VOLATILE_ROUTE_FLAGS.contains(&f.as_str().unwrap_or_default()))
            .cloned()
            .collect(),
    );
    Some(r)
}

/// Keeps what `f` keeps of each item, sorted so order does not matter.
fn normalise(v: Value, f: impl Fn(&Value) -> Option<Value>) -> Value {
    let set: BTreeSet<String> = as_vec(v).iter().filter_map(&f).map(|x| x.to_string()).collect();
    Value::Array(set.into_iter().map(|s| serde_json::from_str(&s).unwrap()).collect())
}

/// Asserts that a snapshot comes back equal to `before`. Carrier and
/// operstate settle asynchronously, so it polls for a few seconds before
/// failing with the items that went away (-) and appeared (+).
#[track_caller]
pub fn assert_unchanged(what: &str, before: &Value, now: impl Fn() -> Value) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let after = now();
        if &after == before {
            return;
        }
        if Instant::now() > deadline {
            panic!("{what} changed:\n{}", snapshot_diff(before, &after));
        }
        sleep(Duration::from_millis(100));
    }
}

fn snapshot_diff(before: &Value, after: &Value) -> String {
    let mut out = String::new();
    let empty = Map::new();
    let keys: BTreeSet<&String> = before
        .as_object()
        .unwrap_or(&empty)
        .keys()
        .chain(after.as_object().unwrap_or(&empty).keys())
        .collect();
    for key in keys {
        let items = |v: &Value| -> BTreeSet<String> {
            v[key.as_str()].as_array().into_iter().flatten().map(|x| x.to_string()).collect()
        };
        let (b, a) = (items(before), items(after));
        for gone in b.difference(&a) {
            let _ = writeln!(out, "  {key} - {gone}");
        }
        for new in a.difference(&b) {
            let _ = writeln!(out, "  {key} + {new}");
        }
    }
    out
}

/// A snapshot taken once the kernel has settled (two in a row, 100 ms
/// apart, agree), to compare later ones with: right after a bridge got a
/// port, its carrier and flags are still on their way.
pub fn settled_snapshot(ns: &dyn Ns) -> Value {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = ns.snapshot();
    loop {
        sleep(Duration::from_millis(100));
        let now = ns.snapshot();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Every route not made by the kernel itself (those follow addresses and
/// carry the veth's random link-local address), both families, every table,
/// as `ip -d -j route` shows them, carrier flags left out; sorted.
pub fn made_routes(ns: &dyn Ns) -> Value {
    let mut all = Vec::new();
    for flag in ["-4", "-6"] {
        all.extend(as_vec(ns.ip_j(&[flag, "-d", "route", "show", "table", "all"])));
    }
    let made = all.into_iter().filter(|r| r["protocol"].as_str() != Some("kernel")).map(|mut r| {
        if let Some(flags) = r.get_mut("flags").and_then(Value::as_array_mut) {
            flags.retain(|f| !VOLATILE_ROUTE_FLAGS.contains(&f.as_str().unwrap_or_default()));
        }
        r
    });
    normalise(Value::Array(made.collect()), |v| Some(v.clone()))
}

/// The routes `made_routes` lists with destination `dst`.
pub fn made_routes_to(ns: &dyn Ns, dst: &str) -> Vec<Value> {
    as_vec(made_routes(ns)).into_iter().filter(|r| r["dst"] == dst).collect()
}

/// Every rule, both families, as `ip -d -j rule` shows them; sorted.
pub fn rules(ns: &dyn Ns) -> Value {
    let mut all = as_vec(ns.ip_j(&["-4", "-d", "rule", "show"]));
    all.extend(as_vec(ns.ip_j(&["-6", "-d", "rule", "show"])));
    normalise(Value::Array(all), |v| Some(v.clone()))
}
