//! Open vSwitch's bridges and ports, as rows of its database: what
//! `ovs-vsctl add-br`, `add-port` and `del-port` write, one transaction per
//! change. ovs-vswitchd then acts on the change and reports back in the
//! database (`cur_cfg`, each interface's `ofport` and `error`), which is how
//! a failure to make a datapath or to open a port is seen.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Kind, Result};
use crate::sys::ovsdb::{Atom, Cond, Datum, Mutation, Op, Ovsdb, Row};

/// Where pipework marks a port as its own: the interface's `external_ids`.
pub const MARK: &str = "pipework.bridge";

/// How long ovs-vswitchd may take to act on a change (ovs-vsctl waits
/// forever by default; pipework would rather say what is wrong).
const APPLY_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Bridge {
    pub uuid: String,
    pub name: String,
    /// "" is the default, the kernel's datapath (`system`).
    pub datapath_type: String,
    pub ports: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Port {
    pub uuid: String,
    pub name: String,
    pub tag: Option<u16>,
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Interface {
    pub uuid: String,
    pub name: String,
    /// -1 when ovs-vswitchd could not open it; none before it has tried,
    /// or when its bridge has no datapath.
    pub ofport: Option<i64>,
    pub error: Option<String>,
    pub external_ids: BTreeMap<String, String>,
}

/// A port with the one interface of the same name, as `add-port` makes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPort {
    pub name: String,
    pub tag: Option<u16>,
    pub external_ids: Vec<(String, String)>,
}

/// A port by its row and name: one to delete.
#[derive(Debug, Clone)]
pub struct PortId {
    pub uuid: String,
    pub name: String,
}

/// A bridge ovs-vswitchd gave no datapath (its own interface never opened),
/// with its reason, or what this kernel lacks when it gave none.
pub fn no_datapath(bridge: &str, reason: Option<&str>, datapath_type: &str) -> Error {
    let kind = if datapath_type.is_empty() { "system" } else { datapath_type };
    let reason = reason.map(String::from).unwrap_or_else(|| {
        let hint = if kind == "system" && !std::path::Path::new("/sys/module/openvswitch").exists() {
            "; this kernel has no openvswitch module: use a bridge with datapath_type=netdev"
        } else {
            ""
        };
        format!("ovs-vswitchd gave it no port (datapath type {kind}{hint}; see ovs-vswitchd's log)")
    });
    Error::new(
        Kind::Unsupported,
        format!("Open vSwitch cannot make a datapath for bridge {bridge}: {reason}"),
    )
}

/// A change written, and the configuration number ovs-vswitchd reports in
/// `cur_cfg` once it has acted on it.
#[derive(Debug)]
pub struct Written {
    /// The inserted bridge's or port's row.
    pub uuid: String,
    pub cfg: i64,
}

fn text(row: &Row, name: &str) -> String {
    row.get(name).and_then(Datum::as_str).unwrap_or_default().to_string()
}

fn uuids(row: &Row, name: &str) -> Vec<String> {
    let atoms = row.get(name).map(Datum::atoms).unwrap_or_default();
    atoms.iter().filter_map(|a| a.as_str().map(String::from)).collect()
}

fn select(table_name: &str, conds: Vec<Cond>, columns: &[&str]) -> Op {
    let columns = columns.iter().map(|c| c.to_string()).collect();
    Op::Select { table: table_name.into(), conds, columns }
}

fn bridge_of(row: &Row) -> Bridge {
    Bridge {
        uuid: text(row, "_uuid"),
        name: text(row, "name"),
        datapath_type: text(row, "datapath_type"),
        ports: uuids(row, "ports"),
    }
}

fn port_of(row: &Row) -> Port {
    let tag = row.get("tag").and_then(Datum::as_int).and_then(|t| u16::try_from(t).ok());
    Port { uuid: text(row, "_uuid"), name: text(row, "name"), tag, interfaces: uuids(row, "interfaces") }
}

fn interface_of(row: &Row) -> Interface {
    Interface {
        uuid: text(row, "_uuid"),
        name: text(row, "name"),
        ofport: row.get("ofport").and_then(Datum::as_int),
        error: row.get("error").and_then(Datum::as_str).map(String::from),
        external_ids: row.get("external_ids").map(Datum::as_str_map).unwrap_or_default(),
    }
}

const BRIDGE_COLUMNS: &[&str] = &["_uuid", "name", "datapath_type", "ports"];
const PORT_COLUMNS: &[&str] = &["_uuid", "name", "tag", "interfaces"];
const INTERFACE_COLUMNS: &[&str] = &["_uuid", "name", "ofport", "error", "external_ids"];

/// Bumps `next_cfg`, so ovs-vswitchd reports when it has acted on the
/// transaction, and reads the new value back: ovs-vsctl's way to wait.
fn bump_cfg() -> [Op; 2] {
    [
        Op::Mutate {
            table: "Open_vSwitch".into(),
            conds: vec![],
            mutations: vec![Mutation::add("next_cfg", 1)],
        },
        select("Open_vSwitch", vec![], &["next_cfg"]),
    ]
}

fn cfg_of(outcome: &crate::sys::ovsdb::Outcome) -> Result<i64> {
    let row = outcome
        .rows
        .first()
        .ok_or_else(|| Error::new(Kind::Internal, "the Open vSwitch database is not initialised"))?;
    row.get("next_cfg")
        .and_then(Datum::as_int)
        .ok_or_else(|| Error::new(Kind::Internal, "Open_vSwitch.next_cfg has no value"))
}

fn set_of(named: &str) -> Datum {
    Datum::Set(vec![Atom::NamedUuid(named.into())])
}

impl Ovsdb {
    pub async fn bridge(&mut self, name: &str) -> Result<Option<Bridge>> {
        let out = self
            .transact(&[select("Bridge", vec![Cond::eq("name", Datum::str(name))], BRIDGE_COLUMNS)])
            .await?;
        Ok(out[0].rows.first().map(bridge_of))
    }

    pub async fn port(&mut self, name: &str) -> Result<Option<Port>> {
        let out =
            self.transact(&[select("Port", vec![Cond::eq("name", Datum::str(name))], PORT_COLUMNS)]).await?;
        Ok(out[0].rows.first().map(port_of))
    }

    pub async fn interface(&mut self, name: &str) -> Result<Option<Interface>> {
        let conds = vec![Cond::eq("name", Datum::str(name))];
        let out = self.transact(&[select("Interface", conds, INTERFACE_COLUMNS)]).await?;
        Ok(out[0].rows.first().map(interface_of))
    }

    /// The bridge whose `ports` hold this port, if any.
    pub async fn bridge_of_port(&mut self, port_uuid: &str) -> Result<Option<Bridge>> {
        let conds = vec![Cond("ports".into(), "includes", Datum::uuid(port_uuid))];
        let out = self.transact(&[select("Bridge", conds, BRIDGE_COLUMNS)]).await?;
        Ok(out[0].rows.first().map(bridge_of))
    }

    /// The ports of a bridge with their interfaces, in one read.
    pub async fn ports(&mut self, bridge: &Bridge) -> Result<Vec<(Port, Vec<Interface>)>> {
        let out = self
            .transact(&[select("Port", vec![], PORT_COLUMNS), select("Interface", vec![], INTERFACE_COLUMNS)])
            .await?;
        let interfaces: Vec<Interface> = out[1].rows.iter().map(interface_of).collect();
        let ports = out[0].rows.iter().map(port_of).filter(|p| bridge.ports.contains(&p.uuid));
        Ok(ports
            .map(|p| {
                let ifaces = interfaces.iter().filter(|i| p.interfaces.contains(&i.uuid)).cloned().collect();
                (p, ifaces)
            })
            .collect())
    }

    /// `ovs-vsctl add-br NAME [-- set bridge NAME datapath_type=TYPE]`: the
    /// bridge, its internal port and interface of the same name.
    pub async fn add_bridge(&mut self, name: &str, datapath_type: &str, comment: &str) -> Result<Written> {
        let mut ops = vec![
            Op::Comment(comment.into()),
            insert("Interface", "iface", vec![("name", Datum::str(name)), ("type", Datum::str("internal"))]),
            insert("Port", "port", vec![("name", Datum::str(name)), ("interfaces", set_of("iface"))]),
            insert(
                "Bridge",
                "bridge",
                vec![
                    ("name", Datum::str(name)),
                    ("ports", set_of("port")),
                    ("datapath_type", Datum::str(datapath_type)),
                ],
            ),
            Op::Mutate {
                table: "Open_vSwitch".into(),
                conds: vec![],
                mutations: vec![Mutation::insert("bridges", set_of("bridge"))],
            },
        ];
        ops.extend(bump_cfg());
        let out = self.transact(&ops).await?;
        let uuid = out[3]
            .uuid
            .clone()
            .ok_or_else(|| Error::new(Kind::Internal, "ovsdb-server returned no UUID for the bridge"))?;
        Ok(Written { uuid, cfg: cfg_of(&out[6])? })
    }

    /// `ovs-vsctl del-br`: the bridge leaves the switch; its ports and
    /// interfaces, referenced from nowhere else, go with it.
    pub async fn del_bridge(&mut self, uuid: &str, comment: &str) -> Result<i64> {
        let mut ops = vec![
            Op::Comment(comment.into()),
            Op::Mutate {
                table: "Open_vSwitch".into(),
                conds: vec![],
                mutations: vec![Mutation::delete("bridges", Datum::uuid(uuid))],
            },
        ];
        ops.extend(bump_cfg());
        let out = self.transact(&ops).await?;
        cfg_of(&out[3])
    }

    /// `ovs-vsctl add-port BRIDGE NAME [tag=N] -- set interface NAME
    /// external-ids:...`, and, in the same transaction, the removal of the
    /// ports in `replacing` (a dead record of the same name).
    pub async fn add_port(
        &mut self,
        bridge: &str,
        port: &NewPort,
        replacing: &[String],
        comment: &str,
    ) -> Result<Written> {
        let mut port_row = vec![("name", Datum::str(&port.name)), ("interfaces", set_of("iface"))];
        if let Some(tag) = port.tag {
            port_row.push(("tag", Datum::int(tag.into())));
        }
        let mut iface_row = vec![("name", Datum::str(&port.name))];
        if !port.external_ids.is_empty() {
            iface_row.push(("external_ids", Datum::str_map(port.external_ids.iter().cloned())));
        }
        let mut mutations = vec![Mutation::insert("ports", set_of("port"))];
        if !replacing.is_empty() {
            let old = replacing.iter().map(|u| Atom::Uuid(u.clone())).collect();
            mutations.insert(0, Mutation::delete("ports", Datum::Set(old)));
        }
        let mut ops = vec![
            Op::Comment(comment.into()),
            insert("Interface", "iface", iface_row),
            insert("Port", "port", port_row),
            Op::Mutate { table: "Bridge".into(), conds: vec![Cond::uuid(bridge)], mutations },
        ];
        ops.extend(bump_cfg());
        let out = self.transact(&ops).await?;
        if out[3].count != Some(1) {
            return Err(Error::new(Kind::NotFound, "the Open vSwitch bridge disappeared meanwhile"));
        }
        let uuid = out[2]
            .uuid
            .clone()
            .ok_or_else(|| Error::new(Kind::Internal, "ovsdb-server returned no UUID for the port"))?;
        Ok(Written { uuid, cfg: cfg_of(&out[5])? })
    }

    /// `ovs-vsctl del-port`: the ports leave whichever bridge holds them
    /// (the rows are then collected by the database). Ports gone already
    /// are no error.
    pub async fn del_ports(&mut self, port_uuids: &[String], comment: &str) -> Result<i64> {
        let set = Datum::Set(port_uuids.iter().map(|u| Atom::Uuid(u.clone())).collect());
        let mut ops = vec![
            Op::Comment(comment.into()),
            Op::Mutate {
                table: "Bridge".into(),
                conds: vec![],
                mutations: vec![Mutation::delete("ports", set)],
            },
        ];
        ops.extend(bump_cfg());
        let out = self.transact(&ops).await?;
        cfg_of(&out[3])
    }

    /// Waits until ovs-vswitchd has acted on configuration `cfg`.
    pub async fn wait_applied(&mut self, cfg: i64) -> Result<()> {
        let deadline = Instant::now() + APPLY_WAIT;
        let mut pause = Duration::from_millis(2);
        loop {
            let out = self.transact(&[select("Open_vSwitch", vec![], &["cur_cfg"])]).await?;
            let cur = out[0].rows.first().and_then(|r| r.get("cur_cfg")).and_then(Datum::as_int);
            if cur.is_some_and(|c| c >= cfg) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    Kind::Timeout,
                    format!(
                        "ovs-vswitchd did not act on the change within {} s (is ovs-vswitchd running?)",
                        APPLY_WAIT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

fn insert(table_name: &str, uuid_name: &str, row: Vec<(&str, Datum)>) -> Op {
    Op::Insert {
        table: table_name.into(),
        row: row.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        uuid_name: Some(uuid_name.into()),
    }
}

impl Interface {
    /// Whether ovs-vswitchd opened it: an OpenFlow port number. `None`
    /// means it did not, with its reason when it gave one.
    pub fn opened(&self) -> std::result::Result<i64, Option<&str>> {
        match self.ofport {
            Some(n) if n >= 0 => Ok(n),
            _ => Err(self.error.as_deref()),
        }
    }

    pub fn is_pipeworks(&self) -> bool {
        self.external_ids.contains_key(MARK)
    }
}
