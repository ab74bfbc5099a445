//! A running container's DHCP agents: adopted if they run, replaced if
//! they died, and listed for the supervisor.

use super::*;

impl Reconciler<'_> {
    /// After one of its DHCP agents died: the agents of the container's
    /// recorded DHCP interfaces that are there (with their MAC), adopted or
    /// replaced as at a catch-up; nothing else is made or changed.
    pub(super) async fn keep_agents(&self, id: &str, name: &str) -> Result<bool> {
        let Some(Running { guest, .. }) = self.running(id, name).await? else { return Ok(false) };
        let Some(record) = self.store.load(&self.key(id))?.filter(|r| r.host.id == self.here) else {
            return Ok(true);
        };
        guest.refuse_here("there is nothing to connect")?;
        let inside = Netlink::inside_async(guest.netns()).await?;
        for iface in &record.interfaces {
            let Some(dhcp) = &iface.dhcp else { continue };
            match inside.link(&iface.name).await? {
                Some(link) if link.mac == Some(iface.mac) => {
                    let w = replayed(&record, iface);
                    self.keep_agent(id, &guest.label, &w, dhcp, &guest, &inside).await;
                }
                _ => tracing::info!(
                    "{}: {} is not there as recorded: its DHCP agent is not replaced",
                    guest.label,
                    iface.name
                ),
            }
        }
        Ok(true)
    }

    /// The name and native DHCP agents (interface, agent, state file) that
    /// the record of container `id` names, if it was made here.
    pub fn agents(&self, id: &str) -> (String, Vec<(String, AgentId, PathBuf)>) {
        let record = match self.store.load(&self.key(id)) {
            Ok(record) => record.filter(|r| r.host.id == self.here),
            Err(e) => {
                tracing::warn!("{}", e.message());
                None
            }
        };
        let Some(record) = record else { return (String::new(), Vec::new()) };
        let agents = record
            .interfaces
            .iter()
            .filter_map(|i| {
                let dhcp = i.dhcp.as_ref().filter(|d| d.client == "dhcp")?;
                Some((i.name.clone(), AgentId::recorded(dhcp)?, PathBuf::from(dhcp.lease_file.as_ref()?)))
            })
            .collect();
        (record.guest_name().to_string(), agents)
    }

    /// The agent of a DHCP interface that is there, adopted or replaced.
    pub(super) async fn keep_agent(
        &self,
        id: &str,
        name: &str,
        w: &Wanted,
        dhcp: &DhcpRecord,
        guest: &Guest,
        inside: &Netlink,
    ) {
        let ifname = w.req.container_if.as_deref().unwrap_or("eth1");
        match agents::keep(&self.key(id), &w.req, dhcp, guest, self.host, inside).await {
            Ok(Some(Kept::Adopted(pid))) => {
                tracing::debug!("{name}: {ifname}'s DHCP agent {pid} still keeps its lease: adopted");
            }
            Ok(Some(Kept::Resumed(pid))) => {
                tracing::info!("{name}: {ifname}'s DHCP agent was gone: agent {pid} resumes its lease");
            }
            Ok(Some(Kept::Leased(pid))) => {
                tracing::info!(
                    "{name}: {ifname}'s DHCP agent was gone with its lease: leased again, agent {pid}"
                );
            }
            Ok(None) => {}
            Err(e) => report(&format!("{name}: {ifname}'s DHCP agent not replaced"), &e),
        }
    }
}
