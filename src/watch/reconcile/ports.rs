//! A recorded bridge that comes back (a host network restart deleted and
//! made it again, releasing its ports down and masterless): its ports put
//! back, enslaved, on their VLANs and up, by the same transaction as an
//! attach. Where a repair finds them, for `repair`.

use super::*;

impl Reconciler<'_> {
    /// The steps that put a recorded bridge port back on its bridge (a
    /// bridge deleted and made again released it, down and masterless):
    /// enslaved again, on its VLAN, up. Whether there are any: none when
    /// it is on its bridge and up, when the host side or the bridge is not
    /// there (a host side gone is made again with its interface), or when
    /// it is another bridge's port now (the operator's), or another link
    /// took its name.
    pub(super) async fn port_steps(&self, port: Port<'_>, steps: &mut Vec<Step>) -> Result<bool> {
        let Some(link) = self.host.link(port.side).await? else { return Ok(false) };
        if port.index.is_some_and(|index| index != link.index) {
            return Ok(false);
        }
        let Some(bridge) = self.host.link(port.bridge).await?.filter(|b| b.is_bridge()) else {
            return Ok(false);
        };
        match link.master {
            Some(master) if master == bridge.index && link.up => return Ok(false),
            Some(master) if master == bridge.index => {}
            Some(other) => {
                tracing::warn!(
                    "{} is a port of link {other} now, not of {}: left alone",
                    port.side,
                    port.bridge
                );
                return Ok(false);
            }
            None => {
                steps.push(Step::SetMaster { link: port.side.into(), bridge: port.bridge.into() });
                if let Some(vid) = port.vlan {
                    if !bridge.vlan_filtering
                        && !steps.iter().any(|s| matches!(s, Step::VlanFiltering { .. }))
                    {
                        steps.push(Step::VlanFiltering { bridge: port.bridge.into() });
                    }
                    let default = if bridge.vlan_filtering { bridge.default_pvid } else { 1 };
                    let drop = (default != 0 && default != vid).then_some(default);
                    steps.push(Step::PortVlan { port: port.side.into(), vid, drop });
                }
            }
        }
        steps.push(Step::LinkUp { side: Side::Host, name: port.side.into() });
        Ok(true)
    }

    /// A recorded bridge made again: a replacement whose MTU is not the
    /// one its ports were recorded with named in the log, the FORWARD
    /// rules recorded for it made again if they went with it, and each
    /// container's recorded ports on it put back, one plan a container.
    /// Host sides only, whose veths are alive (their guests' namespaces
    /// hold them): no guest is entered and no engine asked, so 50
    /// containers are back within milliseconds.
    pub(super) async fn bridge_back(&self, bridge: &str) -> Result<()> {
        let Some(link) = self.host.link(bridge).await?.filter(|b| b.is_bridge()) else { return Ok(()) };
        let on_it = Attached::Bridge(bridge.to_string());
        let records = self.records(false);
        let recorded = records.iter().flat_map(|(_, r)| &r.interfaces).filter(|i| i.attached_to == on_it);
        if let Some(mtu) = recorded.map(|i| i.mtu).find(|mtu| *mtu != link.mtu) {
            tracing::warn!(
                "{bridge} came back unlike the bridge its ports were plumbed on: MTU {}, recorded {mtu}",
                link.mtu
            );
        }
        if let Some(kept) = self.store.bridge(self.here, bridge)?.filter(|b| !b.accept.is_empty()) {
            let mut plan = Plan::on_host();
            plan.push(Step::ForwardAccept { bridge: bridge.to_string(), rules: kept.accept });
            if let Err(e) = crate::apply::here_then(&plan, self.host, None, None, async || Ok(())).await {
                report(&format!("{bridge}'s FORWARD rules not made again"), &e);
            }
        }
        for (_, record) in &records {
            let began = Instant::now();
            let (mut ports, mut back) = (Plan::on_host(), Vec::new());
            for iface in &record.interfaces {
                if let Some(port) = on_bridge(iface).filter(|p| p.bridge == bridge) {
                    if self.port_steps(port, &mut ports.steps).await? {
                        back.push(format!("{} on {bridge}", iface.name));
                    }
                }
            }
            let name = record.guest_name();
            let back = self.put_back(name, &ports, back).await;
            if !back.is_empty() {
                tracing::info!("{name}: repaired: put {} back in {:.1?}", back.join(", "), began.elapsed());
            }
        }
        Ok(())
    }

    /// Applies the steps that put `back` (a container's ports) back;
    /// what was put back, nothing if the plan failed (and was rolled back).
    pub(super) async fn put_back(&self, name: &str, ports: &Plan, back: Vec<String>) -> Vec<String> {
        if ports.steps.is_empty() {
            return back;
        }
        match crate::apply::here_then(ports, self.host, None, None, async || Ok(())).await {
            Ok(()) => back,
            Err(e) => {
                report(&format!("{name}: {} not put back", back.join(", ")), &e);
                Vec::new()
            }
        }
    }

    /// The containers whose records name a port on `bridge`: ID and name.
    pub fn on_bridge(&self, bridge: &str) -> Vec<(String, String)> {
        let on_it = Attached::Bridge(bridge.to_string());
        self.records(false)
            .into_iter()
            .filter(|(_, r)| r.interfaces.iter().any(|i| i.attached_to == on_it))
            .map(|(id, r)| (id, r.guest_name().to_string()))
            .collect()
    }

    /// The containers (ID, name) and interfaces whose recorded host side
    /// is `side`: a veth's peer, a macvlan's or IPoIB child's parent (which
    /// takes its children along when it goes).
    pub fn owners_of(&self, side: &str) -> Vec<(String, String, String)> {
        let mut owners = Vec::new();
        for (id, r) in self.records(false) {
            let made_there = |i: &&Interface| {
                i.how.host_side() != HostSide::Nothing && i.host_side.as_deref() == Some(side)
            };
            for iface in r.interfaces.iter().filter(made_there) {
                owners.push((id.clone(), r.guest_name().to_string(), iface.name.clone()));
            }
        }
        owners
    }
}

/// A recorded veth's host side on a Linux bridge.
#[derive(Clone, Copy)]
pub(super) struct Port<'r> {
    pub(super) side: &'r str,
    pub(super) bridge: &'r str,
    pub(super) vlan: Option<u16>,
    /// The host side's index when it was made, if recorded: a link that
    /// took its name since is not put on the bridge for it.
    pub(super) index: Option<u32>,
}

pub(super) fn on_bridge(iface: &Interface) -> Option<Port<'_>> {
    let index = iface.host_link.as_ref().map(|l| l.ifindex);
    match (&iface.how, &iface.attached_to, &iface.host_side) {
        (How::Veth, Attached::Bridge(bridge), Some(side)) => {
            Some(Port { side, bridge, vlan: iface.vlan, index })
        }
        _ => None,
    }
}
