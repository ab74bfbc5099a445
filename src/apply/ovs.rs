//! The Open vSwitch steps, each one OVSDB transaction, then ovs-vswitchd's
//! verdict on it (`cur_cfg`, then the interface's `ofport` and `error`):
//! a bridge that gets no datapath or a port that cannot be opened is
//! removed again and the step fails.

use crate::error::{Error, Kind, Result};
use crate::plan::AddPort;
use crate::sys::ovsdb::Ovsdb;
use crate::sys::vswitch::{no_datapath, NewPort, PortId};

/// What the database log says of a change: `ovs-vsctl` leaves the same.
fn comment(what: &str) -> String {
    format!("pipework: {what}")
}

/// `ovs-vsctl add-br`, with the default datapath. `None`: a concurrent run
/// made it first, and it is not ours to delete.
pub async fn add_bridge(name: &str) -> Result<Option<String>> {
    let mut db = Ovsdb::connect().await?;
    let written = match db.add_bridge(name, "", &comment(&format!("ovs-vsctl add-br {name}"))).await {
        Ok(w) => w,
        Err(e) if e.message().contains("constraint violation") && db.bridge(name).await?.is_some() => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if let Err(reason) = verdict(&mut db, written.cfg, name).await {
        let cleanup = db.del_bridge(&written.uuid, &comment(&format!("ovs-vsctl del-br {name}"))).await;
        let error = match reason {
            Verdict::Refused(reason) => no_datapath(name, reason.as_deref(), ""),
            Verdict::Failed(e) => e,
        };
        return Err(match cleanup {
            Ok(_) => error,
            Err(e) => error.context(format!("and removing bridge {name} again failed ({e})")),
        });
    }
    Ok(Some(written.uuid))
}

/// Removes pipework ports, in one transaction.
pub async fn del_ports(ports: &[PortId]) -> Result<()> {
    let mut db = Ovsdb::connect().await?;
    let uuids: Vec<String> = ports.iter().map(|p| p.uuid.clone()).collect();
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    let cfg = db.del_ports(&uuids, &comment(&format!("ovs-vsctl del-port {}", names.join(" ")))).await?;
    db.wait_applied(cfg).await
}

/// `ovs-vsctl add-port`; a port ovs-vswitchd cannot open is removed again.
pub async fn add_port(bridge: &str, port: &NewPort, replacing: Option<&str>) -> Result<String> {
    let mut db = Ovsdb::connect().await?;
    let found = db.bridge(bridge).await?.ok_or_else(|| {
        Error::new(Kind::NotFound, format!("Open vSwitch bridge {bridge} disappeared meanwhile"))
    })?;
    let replacing: Vec<String> = replacing.into_iter().map(String::from).collect();
    let text = AddPort { bridge, port }.to_string();
    let written = db.add_port(&found.uuid, port, &replacing, &comment(&text)).await?;
    if let Err(reason) = verdict(&mut db, written.cfg, &port.name).await {
        let _ = db
            .del_ports(std::slice::from_ref(&written.uuid), &comment(&format!("rollback of {}", port.name)))
            .await;
        return Err(match reason {
            Verdict::Refused(reason) => Error::new(
                Kind::Unsupported,
                format!(
                    "ovs-vswitchd cannot use {} as a port of {bridge}: {}",
                    port.name,
                    reason.as_deref().unwrap_or("no reason given")
                ),
            ),
            Verdict::Failed(e) => e,
        });
    }
    Ok(written.uuid)
}

/// `ovs-vsctl del-port` of the port this run added.
pub async fn del_port(uuid: &str, name: &str) -> Result<()> {
    let mut db = Ovsdb::connect().await?;
    let cfg = db.del_ports(&[uuid.to_string()], &comment(&format!("ovs-vsctl del-port {name}"))).await?;
    db.wait_applied(cfg).await
}

/// `ovs-vsctl del-br` of a bridge this run made, unless another run has
/// put a port on it meanwhile.
pub async fn del_bridge_if_unused(uuid: &str, name: &str) -> Result<()> {
    let mut db = Ovsdb::connect().await?;
    let Some(bridge) = db.bridge(name).await?.filter(|b| b.uuid == uuid) else {
        return Ok(());
    };
    if bridge.ports.len() > 1 {
        return Ok(());
    }
    let cfg = db.del_bridge(uuid, &comment(&format!("ovs-vsctl del-br {name}"))).await?;
    db.wait_applied(cfg).await
}

enum Verdict {
    /// ovs-vswitchd acted and could not open the interface (its reason).
    Refused(Option<String>),
    Failed(Error),
}

async fn verdict(db: &mut Ovsdb, cfg: i64, iface: &str) -> std::result::Result<(), Verdict> {
    db.wait_applied(cfg).await.map_err(Verdict::Failed)?;
    match db.interface(iface).await.map_err(Verdict::Failed)? {
        Some(i) => i.opened().map(|_| ()).map_err(|r| Verdict::Refused(r.map(String::from))),
        None => Err(Verdict::Refused(None)),
    }
}
