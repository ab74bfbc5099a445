//! The Open vSwitch driver: a veth pair whose host side becomes a port of
//! an OVS bridge (made as `ovs-vsctl add-br` would when missing), tagged
//! with the VLAN and marked as pipework's with the original's external-ids
//! on its interface. Pipework ports whose interfaces are gone are collected
//! on the way. Each change is one OVSDB transaction (see `apply`).
//! `teardown` undoes a recorded attachment: its port, with the dead ones.

use futures::future::BoxFuture;

use super::veth_port::{refuse_direct_phys, VethPort, NEW_BRIDGE_MTU};
use super::{Context, Driver, Facts, Made, Planned, Teardown};
use crate::error::{Error, Kind, Result};
use crate::plan::Step;
use crate::records::{Attached, Finder, How};
use crate::request::{Attach, Tag};
use crate::resolve::guest::Guest;
use crate::sys::ovsdb::Ovsdb;
use crate::sys::vswitch::{no_datapath, Bridge, Interface, NewPort, Port, PortId, MARK};

/// A bridge of Open vSwitch's database, or an `ovs*` name to create.
pub struct Ovs {
    pub name: String,
    pub existing: Option<Bridge>,
}

impl Driver for Ovs {
    fn validate(&self, req: &Attach) -> Result<()> {
        if let Some(tag) = &req.tag {
            tag.vlan_id()?;
        }
        refuse_direct_phys(req, &self.name)
    }

    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Planned>> {
        Box::pin(self.steps(ctx))
    }
}

impl Ovs {
    async fn steps(&self, ctx: &Context<'_>) -> Result<Planned> {
        let vlan = ctx.req.tag.as_ref().map(Tag::vlan_id).transpose()?;
        let port = VethPort::named(ctx)?;
        let mut plan = ctx.new_plan();
        let (mtu, survey) = match &self.existing {
            // The bridge's own interface gives the MTU, when it has one.
            Some(bridge) => {
                let mtu = ctx.host.link(&self.name).await?.map_or(NEW_BRIDGE_MTU, |l| l.mtu);
                (mtu, survey(bridge, &port.local, ctx.host).await?)
            }
            None => {
                plan.push(Step::OvsAddBridge { name: self.name.clone() });
                (NEW_BRIDGE_MTU, Survey::default())
            }
        };
        let mut attach = Vec::new();
        if !survey.dead.is_empty() {
            attach.push(Step::OvsDelPorts { bridge: self.name.clone(), ports: survey.dead });
        }
        let new = new_port(&self.name, &port.local, vlan, ctx.guest);
        attach.push(Step::OvsAddPort { bridge: self.name.clone(), port: new, replacing: survey.replacing });
        let replaced_default = port.plan(&mut plan, ctx, mtu, attach, false).await?;
        let made = Made {
            name: port.ctr_if,
            how: How::Veth,
            host_side: Some(port.local.clone()),
            attached_to: Attached::Ovs { bridge: self.name.clone(), port: port.local },
            vlan,
            replaced_default,
        };
        Ok(Planned { plan, made })
    }
}

/// What planning learnt of an existing bridge: the port record of the same
/// name to replace, and the pipework ports whose interfaces are gone.
#[derive(Debug, Default)]
struct Survey {
    replacing: Option<String>,
    dead: Vec<PortId>,
}

/// The checks the original never made, before anything changes: a bridge
/// without a datapath, a port name taken on another bridge. Lists the dead
/// pipework ports of this bridge: their interfaces are listed in OVSDB first
/// and looked for on the host after, so a port a concurrent run is adding
/// (its veth made before its port) is never taken for dead.
async fn survey(bridge: &Bridge, local: &str, host: &dyn Facts) -> Result<Survey> {
    let mut db = Ovsdb::connect().await?;
    let mut survey = Survey::default();
    let ports = db.ports(bridge).await?;
    if let Some(own) = ports.iter().flat_map(|(_, ifaces)| ifaces).find(|i| i.name == bridge.name) {
        if let Err(reason) = own.opened() {
            return Err(no_datapath(&bridge.name, reason, &bridge.datapath_type));
        }
    }
    if let Some(port) = db.port(local).await? {
        match db.bridge_of_port(&port.uuid).await? {
            Some(other) if other.uuid != bridge.uuid => {
                return Err(Error::new(
                    Kind::Conflict,
                    format!("port {local} already exists on Open vSwitch bridge {}", other.name),
                ))
            }
            _ => survey.replacing = Some(port.uuid),
        }
    }
    survey.dead = dead(ports, local, host).await?;
    Ok(survey)
}

fn is_pipeworks(ifaces: &[Interface]) -> bool {
    !ifaces.is_empty() && ifaces.iter().all(Interface::is_pipeworks)
}

/// The pipework ports (all their interfaces marked) whose interfaces the
/// host no longer has, `except` the one of that name.
async fn dead(ports: Vec<(Port, Vec<Interface>)>, except: &str, host: &dyn Facts) -> Result<Vec<PortId>> {
    let mut dead = Vec::new();
    for (port, ifaces) in ports {
        if !is_pipeworks(&ifaces) || port.name == except {
            continue;
        }
        let mut gone = true;
        for iface in &ifaces {
            gone &= host.link(&iface.name).await?.is_none();
        }
        if gone {
            dead.push(PortId { uuid: port.uuid, name: port.name });
        }
    }
    Ok(dead)
}

/// Detaching a recorded OVS port: the port leaves the bridge (if it is
/// still there and still pipework's), with the bridge's dead pipework
/// ports, in one transaction; then the veth goes as on a Linux bridge.
pub async fn teardown(t: &Teardown<'_>, bridge: &str, port: &str, last: &mut Vec<Step>) -> Result<()> {
    let detaching = |e: Error| e.context(format!("detaching {port} from Open vSwitch bridge {bridge}"));
    let mut db = Ovsdb::connect().await.map_err(detaching)?;
    if let Some(found) = db.bridge(bridge).await? {
        let ports = db.ports(&found).await?;
        let own = ports.iter().find(|(p, ifaces)| p.name == port && is_pipeworks(ifaces));
        let mut gone: Vec<PortId> =
            own.map(|(p, _)| PortId { uuid: p.uuid.clone(), name: p.name.clone() }).into_iter().collect();
        gone.extend(dead(ports, port, t.host).await?);
        if !gone.is_empty() {
            last.push(Step::OvsDelPorts { bridge: bridge.to_string(), ports: gone });
        }
    }
    super::veth_port::teardown(t, last).await
}

/// The port `add-port` makes, with the original's external-ids on its
/// interface: `pipework.interface` is the host side (the port itself), the
/// container's name as `docker inspect` gives `.Name`, with its `/`.
fn new_port(bridge: &str, local: &str, vlan: Option<u16>, guest: &Guest) -> NewPort {
    let mut ids = vec![("pipework.interface", local.to_string()), (MARK, bridge.to_string())];
    if let Finder::Container { id, name, .. } = &guest.find {
        ids.push(("pipework.containerid", id.clone()));
        ids.push(("pipework.containername", format!("/{name}")));
    }
    ids.push(("pipework.nspid", guest.name_number.to_string()));
    if let Some(vid) = vlan {
        ids.push(("pipework.vlan", vid.to_string()));
    }
    NewPort {
        name: local.to_string(),
        tag: vlan,
        external_ids: ids.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}
