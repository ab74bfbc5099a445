//! Open vSwitch for the OVS tests: an instance of its own per test
//! (ovsdb-server and ovs-vswitchd with their database, sockets and pid files
//! in a temp dir, the switch inside the test's "docker host" namespace),
//! read back through `ovs-vsctl --format=json`, the oracle.
//!
//! Why not the machine's OVS (tests/run.sh starts one with ovs-ctl): its
//! ovs-vswitchd lives in the machine's own namespace, so its bridges and the
//! ports it can open would be there too. This kernel has no openvswitch
//! module: bridges use the userspace datapath (`datapath_type=netdev`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::cli::{assert_refused, pipework_env};
use super::commands::run;
use super::daemons::{kill_pidfiles, wait_for};
use super::names::unique;
use super::netns::Netns;
use super::readback::Ns;
use super::tempdir::TempDir;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// ovsdb-server and ovs-vswitchd serving one namespace, killed on drop.
pub struct Ovs {
    dir: TempDir,
}

impl Ovs {
    /// Starts an instance whose switch runs in `host`.
    pub fn new(host: &Netns) -> Ovs {
        let ovs = Ovs { dir: TempDir::new("ovs") };
        let d = |name: &str| ovs.dir.join(name);
        // Both daemons detach, their pid file, control socket and log here.
        let daemon = |program: &str, target: String| -> Vec<String> {
            let mut argv = vec![program.to_owned(), target];
            for (flag, ext) in [("--pidfile", "pid"), ("--unixctl", "ctl"), ("--log-file", "log")] {
                argv.push(format!("{flag}={}", d(&format!("{program}.{ext}"))));
            }
            argv.extend(["--detach", "--no-chdir", "-vconsole:emer"].map(String::from));
            argv
        };
        run(&["ovsdb-tool", "create", &d("conf.db"), SCHEMA]);
        let mut server = daemon("ovsdb-server", d("conf.db"));
        server.push(format!("--remote=punix:{}", d("db.sock")));
        run(&server.iter().map(String::as_str).collect::<Vec<_>>());
        ovs.vsctl(&["--no-wait", "init"]);
        // `ip netns exec` gives it the namespace's /sys, where it looks
        // interfaces up; OVS_RUNDIR keeps its bridges' sockets here.
        let rundir = format!("OVS_RUNDIR={}", ovs.dir.arg());
        let mut switch = ["ip", "netns", "exec", &host.name, "env", &rundir].map(String::from).to_vec();
        switch.extend(daemon("ovs-vswitchd", format!("unix:{}", d("db.sock"))));
        run(&switch.iter().map(String::as_str).collect::<Vec<_>>());
        ovs
    }

    /// The database socket, as `DB_SOCK` and `--db=unix:` name it.
    pub fn db_sock(&self) -> String {
        self.dir.join("db.sock")
    }

    /// The environment that points a program (pipework, ovs-vsctl, the
    /// original script) at this instance.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("OVS_RUNDIR", self.dir.arg().to_owned()), ("DB_SOCK", self.db_sock())]
    }

    /// pipework in `host`, pointed at this instance, with extra environment
    /// (which comes last, so it may point elsewhere).
    pub fn pipework(&self, host: &Netns, args: &[&str], env: &[(&str, &str)]) -> Output {
        let ours = self.env();
        let mut all: Vec<(&str, &str)> = ours.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        pipework_env(host, args, &all)
    }

    /// pipework pointed at this instance, refused: exit 1, and the database,
    /// `host` and `guest` as before (see `assert_refused`). Returns what it
    /// printed.
    #[track_caller]
    pub fn assert_refused(&self, host: &Netns, guest: &dyn Ns, args: &[&str]) -> Output {
        let before = self.snapshot();
        let out = assert_refused(|h, args| self.pipework(h, args, &[]), host, Some(guest), args);
        assert_eq!(self.snapshot(), before, "the database after {args:?}");
        out
    }

    /// `ovs-vsctl <args>` against this instance, which must succeed. Without
    /// `--no-wait` it returns once ovs-vswitchd has applied the change.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.db_sock());
        let mut argv = vec!["ovs-vsctl", &db, "--timeout=10"];
        argv.extend_from_slice(args);
        run(&argv)
    }

    /// A bridge named `ovs<unique>` (the original's OVS prefix) on the
    /// userspace datapath.
    pub fn add_bridge(&self) -> OvsBridge<'_> {
        self.add_bridge_named(&unique("ovs"))
    }

    /// The same with a name of the test's choosing (at most 15 bytes).
    pub fn add_bridge_named(&self, name: &str) -> OvsBridge<'_> {
        self.vsctl(&["add-br", name, "--", "set", "bridge", name, "datapath_type=netdev"]);
        OvsBridge { name: name.to_owned(), ovs: self }
    }

    /// Every row of `table`, values decoded from OVSDB's JSON notation:
    /// sets as arrays, maps as objects, uuids as strings.
    pub fn rows(&self, table: &str) -> Vec<Map<String, Value>> {
        let out = self.vsctl(&["--format=json", "list", table]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("ovs-vsctl list {table}: {e}"));
        let headings: Vec<String> = v["headings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect();
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                let cells = row.as_array().cloned().unwrap_or_default();
                headings.iter().cloned().zip(cells.iter().map(decode)).collect()
            })
            .collect()
    }

    /// The row of `table` named `name`, decoded as `rows` decodes it.
    pub fn row(&self, table: &str, name: &str) -> Option<Map<String, Value>> {
        self.rows(table).into_iter().find(|r| r["name"] == name)
    }

    /// The database as far as pipework could change it, references by name
    /// and counters, ofports and states left out: equal when nothing changed.
    pub fn snapshot(&self) -> Value {
        let tables = [
            ("Bridge", &["name", "datapath_type", "ports", "external_ids", "other_config", "fail_mode"][..]),
            ("Port", &["name", "tag", "trunks", "vlan_mode", "interfaces", "external_ids", "other_config"]),
            ("Interface", &["name", "type", "options", "mac", "external_ids", "other_config"]),
        ];
        let all: Vec<(&str, Vec<Map<String, Value>>)> =
            tables.iter().map(|(t, _)| (*t, self.rows(t))).collect();
        let names: BTreeMap<String, Value> = all
            .iter()
            .flat_map(|(_, rows)| {
                rows.iter().map(|r| (r["_uuid"].as_str().unwrap_or("").to_owned(), r["name"].clone()))
            })
            .collect();
        let by_name = |v: &Value| match v {
            Value::String(s) if names.contains_key(s) => names[s].clone(),
            Value::Array(items) => {
                let set: BTreeSet<String> = items
                    .iter()
                    .map(|i| names.get(i.as_str().unwrap_or("")).unwrap_or(i).to_string())
                    .collect();
                json!(set)
            }
            other => other.clone(),
        };
        let mut out = Map::new();
        for ((table, columns), (_, rows)) in tables.iter().zip(&all) {
            let kept: BTreeSet<String> = rows
                .iter()
                .map(|r| {
                    let row: Map<String, Value> =
                        columns.iter().map(|c| (c.to_string(), by_name(&r[*c]))).collect();
                    Value::Object(row).to_string()
                })
                .collect();
            out.insert(table.to_string(), json!(kept));
        }
        Value::Object(out)
    }
}

/// OVSDB's `["set", [...]]`, `["map", [[k, v]...]]`, `["uuid", "..."]`
/// as plain JSON; a one-element set comes bare, as OVSDB sends it.
fn decode(v: &Value) -> Value {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, inner]) if tag == "set" => {
            Value::Array(inner.as_array().into_iter().flatten().map(decode).collect())
        }
        Some([tag, inner]) if tag == "map" => Value::Object(
            inner
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|kv| Some((kv[0].as_str()?.to_owned(), decode(&kv[1]))))
                .collect(),
        ),
        Some([tag, id]) if tag == "uuid" || tag == "named-uuid" => id.clone(),
        _ => v.clone(),
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        kill_pidfiles(&self.dir.path);
    }
}

/// One port of an OVS bridge as the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsPort {
    pub name: String,
    /// The access VLAN, if any.
    pub tag: Option<u64>,
    pub external_ids: BTreeMap<String, String>,
    /// The external_ids of its interface (of the same name).
    pub interface_ids: BTreeMap<String, String>,
    /// The interface's `error` column: why ovs-vswitchd could not open it.
    pub error: Option<String>,
}

/// A bridge of an [`Ovs`] instance, deleted with its ports on drop.
pub struct OvsBridge<'a> {
    pub name: String,
    pub ovs: &'a Ovs,
}

impl OvsBridge<'_> {
    /// Its ports, the bridge's own internal port left out, sorted by name.
    pub fn ports(&self) -> Vec<OvsPort> {
        let names: BTreeSet<String> =
            self.ovs.vsctl(&["list-ports", &self.name]).lines().map(str::to_owned).collect();
        let interfaces = self.ovs.rows("Interface");
        let strings = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        };
        let mut ports: Vec<OvsPort> = self
            .ovs
            .rows("Port")
            .into_iter()
            .filter(|p| p["name"].as_str().is_some_and(|n| names.contains(n)))
            .map(|p| {
                let name = p["name"].as_str().unwrap_or_default().to_owned();
                let iface = interfaces.iter().find(|i| i["name"] == name.as_str());
                OvsPort {
                    tag: p["tag"].as_u64(),
                    external_ids: strings(&p["external_ids"]),
                    interface_ids: iface.map(|i| strings(&i["external_ids"])).unwrap_or_default(),
                    error: iface.and_then(|i| i["error"].as_str().map(str::to_owned)),
                    name,
                }
            })
            .collect();
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        ports
    }

    /// The port called `name`, which must exist.
    #[track_caller]
    pub fn port(&self, name: &str) -> OvsPort {
        let ports = self.ports();
        ports
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no port {name} on {}: {ports:?}", self.name))
    }

    /// Adds an existing interface of the switch's namespace as a port,
    /// with `tag=VLAN` if given; returns once ovs-vswitchd has opened it.
    pub fn add_port(&self, ifname: &str, vlan: Option<u16>) {
        let tag = vlan.map(|v| format!("tag={v}"));
        let mut args = vec!["add-port", &self.name, ifname];
        args.extend(tag.as_deref());
        self.ovs.vsctl(&args);
        wait_for(&format!("ovs-vswitchd to open {ifname}"), Duration::from_secs(10), || {
            let ofport = self.ovs.vsctl(&["get", "Interface", ifname, "ofport"]);
            (ofport.trim().parse::<i64>().is_ok_and(|n| n > 0)).then_some(())
        });
    }
}

impl Drop for OvsBridge<'_> {
    fn drop(&mut self) {
        let db = format!("--db=unix:{}", self.ovs.db_sock());
        let _ =
            super::commands::quiet(&["ovs-vsctl", &db, "--timeout=10", "--if-exists", "del-br", &self.name]);
    }
}
