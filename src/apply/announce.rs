//! The gratuitous ARP that tells the guest's neighbours its new address,
//! and the wait for a bridge port to forward, which the first DHCP
//! DISCOVER needs as well.

use std::time::{Duration, Instant};

use rtnetlink::packet_route::link::BridgePortState;

use super::Target;
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::sys::netlink::{Link, Netlink};
use crate::sys::sysctl::Sysctl;

/// A new bridge port forwards only once the kernel's linkwatch has seen its
/// carrier, a moment after the link comes up; a frame sent before that is
/// dropped. Waiting longer than this means STP holds the port (forward delay),
/// which a gratuitous ARP cannot outwait either.
const PORT_WAIT: Duration = Duration::from_millis(500);

/// Waits for the bridge port to forward, then has the kernel send the
/// gratuitous ARP: `arp_notify` on, the MAC set to itself, `arp_notify` back.
pub async fn announce(t: &Target<'_>, link: Link, port: Option<&str>) -> Result<()> {
    if let Some(port) = port {
        port_forwards(t.host, port).await?;
    }
    let notify = Sysctl::conf(Some(t.guest_ns), Family::V4, &link.name, "arp_notify")?;
    gratuitous_arp(notify, t.guest, link).await
}

/// The gratuitous ARP of `link`, seen by `guest`, with `notify` its
/// `arp_notify`, opened beforehand (in the guest, on a thread of its own).
pub async fn gratuitous_arp(mut notify: Sysctl, guest: &Netlink, link: Link) -> Result<()> {
    let mac = link
        .mac
        .ok_or_else(|| Error::new(Kind::NotFound, format!("{} has no hardware address", link.name)))?;
    // With arp_notify, the kernel answers a (same) MAC being set with a
    // gratuitous ARP for the interface's addresses; no packet socket, whose
    // close would wait for an RCU grace period.
    let previous = notify.read()?;
    notify.write("1")?;
    let sent = guest.set_address(link.index, mac).await;
    notify.write(&previous)?;
    sent
}

/// Waits until the bridge port `port` forwards.
pub async fn port_forwards(host: &Netlink, port: &str) -> Result<()> {
    let deadline = Instant::now() + PORT_WAIT;
    let mut pause = Duration::from_micros(50);
    while host.require(port).await?.port_state != Some(BridgePortState::Forwarding) {
        if Instant::now() > deadline {
            return Err(Error::new(Kind::Timeout, format!("bridge port {port} is not forwarding")));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    tracing::debug!("bridge port {port} forwards");
    Ok(())
}
