//! Gratuitous ARP, sent natively: what `arping -c 1 -A -I <if> <ip>` did in
//! the original, minus the second it spent waiting for a reply that a
//! gratuitous ARP never gets.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::mac::Mac;

const ETH_P_ARP: u16 = 0x0806;

/// An ARP reply announcing `ip` at `mac`: sender and target both ours, sent
/// to the broadcast address (arping's `-A`).
pub fn packet(mac: Mac, ip: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&2u16.to_be_bytes()); // reply
    p[8..14].copy_from_slice(&mac.0);
    p[14..18].copy_from_slice(&ip.octets());
    p[18..24].copy_from_slice(&mac.0);
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// Sends one gratuitous ARP from interface `ifindex` of namespace `ns`.
pub fn announce(ns: BorrowedFd<'_>, ifindex: u32, mac: Mac, ip: Ipv4Addr) -> Result<()> {
    let socket = crate::netns::within(ns, || {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ARP.to_be()),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })?;
    // Straight to the driver: a link that has just come up may still have
    // its no-op qdisc for a moment, which would drop the packet.
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a live c_int of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let pkt = packet(mac, ip);
    // SAFETY: pkt and `to` outlive the call; lengths are theirs.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(Error::from(std::io::Error::last_os_error()).context("sending gratuitous ARP"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arping_advert_layout() {
        let p = packet(
            Mac([2, 0x72, 0x6c, 0xcd, 0x9b, 0x8d]),
            Ipv4Addr::new(10, 5, 106, 101),
        );
        assert_eq!(&p[..8], &[0, 1, 8, 0, 6, 4, 0, 2]);
        assert_eq!(&p[8..14], &p[18..24]);
        assert_eq!(&p[14..18], &[10, 5, 106, 101]);
        assert_eq!(&p[14..18], &p[24..28]);
    }
}
