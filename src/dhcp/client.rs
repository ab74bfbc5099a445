//! The DHCPv4 exchanges (RFC 2131): getting a lease (DISCOVER, OFFER,
//! REQUEST, ACK), extending it (RENEWING by unicast, REBINDING by
//! broadcast) and giving it back (RELEASE).

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::MessageType;
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, timeout_at};

use super::options::Native;
use super::socket::{unicast, PacketSocket};
use super::timing::POLICY;
use super::wire::{self, Kind, Lease, Refused};
use crate::error::{self, Error, Result};
use crate::mac::Mac;

/// One interface's client.
#[derive(Debug, Clone)]
pub struct Client {
    pub ifname: String,
    pub mac: Mac,
    pub native: Native,
}

/// How a server answered a request to extend a lease.
#[derive(Debug)]
pub enum Answer {
    Ack(Lease),
    Nak,
    Silence,
}

impl Client {
    /// INIT to BOUND within `limit` (shortened by `-t` and `-T`), sending a
    /// DISCOVER every `-T` seconds until an offer is acknowledged.
    pub async fn acquire(&self, socket: &PacketSocket, limit: Duration) -> Result<Lease> {
        let every = self.native.retry_every;
        let limit = match self.native.tries {
            // -t 4294967295 -T 86400 would overflow: the limit is less anyway.
            Some(tries) => limit.min(every.saturating_mul(tries)),
            None => limit,
        };
        let deadline = tokio::time::Instant::now() + limit;
        let mut offered_by = None;
        // The last lease refused, which a good offer of another server may follow.
        let mut refused = None;
        // One transaction: a late offer (a server that pings the address
        // first) still answers a DISCOVER sent again.
        let xid = random_xid();
        let mut next = tokio::time::Instant::now();
        while next < deadline {
            sleep_until(next).await;
            let round = (tokio::time::Instant::now() + every).min(deadline);
            next = round;
            self.send(socket, Ipv4Addr::UNSPECIFIED, Kind::Discover, xid)?;
            tracing::debug!("DHCPDISCOVER on {} (xid {xid:#x})", self.ifname);
            let offers = self.answer(socket, xid, &[MessageType::Offer], &mut refused);
            let offer = match timeout_at(round, offers).await {
                Ok(reply) => reply?.1,
                Err(_) => continue,
            };
            tracing::debug!("DHCPOFFER of {} from {}", offer.address, offer.server);
            offered_by = Some(offer.server);
            let select = Kind::Select { offered: offer.address, server: offer.server };
            self.send(socket, Ipv4Addr::UNSPECIFIED, select, xid)?;
            let round = (tokio::time::Instant::now() + every).min(deadline);
            let wanted = [MessageType::Ack, MessageType::Nak];
            match timeout_at(round, self.answer(socket, xid, &wanted, &mut refused)).await {
                Ok(Ok((MessageType::Ack, lease))) => return Ok(lease),
                Ok(Ok(_)) => {
                    tracing::info!("{} refused {} (DHCPNAK)", offer.server, offer.address);
                    // Not at once: a server that refuses at once would set the pace.
                    next = tokio::time::Instant::now() + POLICY.min_interval;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {}
            }
        }
        if let Some(refused) = refused {
            return Err(refused.on(&self.ifname));
        }
        let within = crate::request::seconds(limit);
        Err(Error::new(
            error::Kind::Timeout,
            match offered_by {
                None => format!("no DHCP offer on {} within {within} s", self.ifname),
                Some(server) => {
                    format!("no DHCP acknowledgement from {server} on {} within {within} s", self.ifname)
                }
            },
        ))
    }

    /// RENEWING: asks the server that gave the lease, by unicast.
    pub async fn renew(&self, udp: &UdpSocket, lease: &Lease, wait: Duration) -> Result<Answer> {
        let xid = random_xid();
        let msg = wire::request(Kind::Extend { bound: lease.address }, xid, self.mac, &self.native);
        unicast(udp, lease.server, &msg).await.map_err(|e| Error::from(e).context("sending DHCPREQUEST"))?;
        let mut refused_here = None;
        let heard = async {
            let mut buf = vec![0u8; 1600];
            loop {
                let n = udp.recv(&mut buf).await?;
                match wire::reply(&buf[..n], xid, self.mac) {
                    Some(Ok(r)) if r.kind == MessageType::Ack => {
                        return Ok::<_, std::io::Error>(Answer::Ack(r.lease))
                    }
                    Some(Ok(r)) if r.kind == MessageType::Nak => return Ok(Answer::Nak),
                    Some(Err(refused)) => warn_once(&mut refused_here, refused, &self.ifname),
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(wait, heard).await {
            Ok(answer) => answer.map_err(|e| Error::from(e).context("waiting for DHCPACK")),
            Err(_) => Ok(Answer::Silence),
        }
    }

    /// REBINDING: asks any server, by broadcast.
    pub async fn rebind(&self, socket: &PacketSocket, lease: &Lease, wait: Duration) -> Result<Answer> {
        let xid = random_xid();
        self.send(socket, lease.address, Kind::Extend { bound: lease.address }, xid)?;
        let wanted = [MessageType::Ack, MessageType::Nak];
        match tokio::time::timeout(wait, self.answer(socket, xid, &wanted, &mut None)).await {
            Ok(Ok((MessageType::Ack, lease))) => Ok(Answer::Ack(lease)),
            Ok(Ok(_)) => Ok(Answer::Nak),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(Answer::Silence),
        }
    }

    /// DHCPRELEASE, unicast to the server that gave the lease.
    pub async fn release(&self, udp: &UdpSocket, lease: &Lease) -> Result<()> {
        let kind = Kind::Release { bound: lease.address, server: lease.server };
        let msg = wire::request(kind, random_xid(), self.mac, &self.native);
        unicast(udp, lease.server, &msg).await.map_err(|e| Error::from(e).context("sending DHCPRELEASE"))
    }

    /// DHCPRELEASE broadcast from the leased address, for when it may no
    /// longer be configured (a rollback).
    pub fn release_broadcast(&self, socket: &PacketSocket, lease: &Lease) -> Result<()> {
        let kind = Kind::Release { bound: lease.address, server: lease.server };
        self.send(socket, lease.address, kind, random_xid())
    }

    fn send(&self, socket: &PacketSocket, src: Ipv4Addr, kind: Kind, xid: u32) -> Result<()> {
        let msg = wire::request(kind, xid, self.mac, &self.native);
        socket
            .broadcast(src, &msg)
            .map_err(|e| Error::from(e).context(format!("sending DHCP on {}", self.ifname)))
    }

    /// The first answer of a `wanted` kind; leases refused on the way are
    /// logged (the first time) and kept in `refused`.
    async fn answer(
        &self,
        socket: &PacketSocket,
        xid: u32,
        wanted: &[MessageType],
        refused: &mut Option<Refused>,
    ) -> Result<(MessageType, Lease)> {
        loop {
            let payload = socket.recv().await.map_err(|e| Error::from(e).context("receiving DHCP"))?;
            match wire::reply(&payload, xid, self.mac) {
                Some(Ok(reply))
                    if wanted.contains(&reply.kind) && reply.lease.address != Ipv4Addr::UNSPECIFIED
                        || reply.kind == MessageType::Nak && wanted.contains(&MessageType::Nak) =>
                {
                    return Ok((reply.kind, reply.lease));
                }
                Some(Err(new)) => warn_once(refused, new, &self.ifname),
                _ => {}
            }
        }
    }
}

/// Keeps the refusal, logged unless it is the one kept already: a server
/// repeating it does not grow the log.
fn warn_once(kept: &mut Option<Refused>, new: Refused, ifname: &str) {
    if kept.as_ref() != Some(&new) {
        tracing::warn!("{}", new.on(ifname));
        *kept = Some(new);
    }
}

fn random_xid() -> u32 {
    let mut bytes = [0u8; 4];
    // SAFETY: getrandom fills the buffer of the length given.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != 4 {
        // Never short for 4 bytes once the pool is up; the clock will do.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return nanos.subsec_nanos() ^ std::process::id();
    }
    u32::from_ne_bytes(bytes)
}
