//! The client's sockets. Before the interface has an address only a packet
//! socket can send (from 0.0.0.0 to the broadcast address) and hear the
//! answers; once bound, renewals go to the server by plain UDP. Sockets
//! belong to the namespace they were created in: open them on a thread (or
//! in a process) that is inside the guest's.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::wire::{self, CLIENT_PORT, SERVER_PORT};

const ETH_P_IP: u16 = 0x0800;

/// A packet socket on one interface, IPv4 frames without their Ethernet header.
pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: i32,
}

/// Opens the packet socket; call it inside the guest's namespace.
pub fn open_packet(ifindex: u32) -> io::Result<OwnedFd> {
    // Protocol 0 here and ETH_P_IP in bind: a socket made with a protocol
    // is hooked to every interface, and moving the hook to one waits for an
    // RCU grace period (milliseconds).
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let addr = link_addr(ifindex as i32, None);
    // SAFETY: bind with a sockaddr_ll of the size we pass.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn link_addr(ifindex: i32, to: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_IP.to_be();
    addr.sll_ifindex = ifindex;
    if let Some(mac) = to {
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&mac);
    }
    addr
}

impl PacketSocket {
    /// Wraps an fd from `open_packet`; needs the tokio runtime.
    pub fn new(fd: OwnedFd, ifindex: u32) -> io::Result<PacketSocket> {
        Ok(PacketSocket { fd: watch(fd)?, ifindex: ifindex as i32 })
    }

    /// The socket back, for the agent: the last close of a packet socket
    /// waits for an RCU grace period, which the agent can afford.
    pub fn into_fd(self) -> OwnedFd {
        self.fd.into_inner()
    }

    /// Broadcasts a DHCP message from `src` (0.0.0.0 until bound).
    pub fn broadcast(&self, src: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
        let packet = wire::frame(src, Ipv4Addr::BROADCAST, payload);
        let addr = link_addr(self.ifindex, Some([0xff; 6]));
        // SAFETY: sendto with a buffer and a sockaddr_ll we own, sizes given.
        let sent = unsafe {
            libc::sendto(
                self.fd.get_ref().as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next DHCP payload sent to the client port.
    pub async fn recv(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 1600];
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|fd| {
                // SAFETY: recv into a buffer of the length given.
                let n =
                    unsafe { libc::recv(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            if let Ok(n) = got {
                if let Some(payload) = wire::unframe(&buf[..n?]) {
                    return Ok(payload.to_vec());
                }
            }
        }
    }
}

/// An fd we own, registered with the runtime for reading.
pub fn watch<T: AsRawFd + Into<OwnedFd> + From<OwnedFd>>(fd: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `fd` is owned and moves into the AsyncFd, which keeps it open
    // and unchanged until it is dropped.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts().1)
}

/// A UDP socket on port 68 of this interface only, for talking to the
/// server once the address is configured: bound to any address, as a NAK
/// comes broadcast. Call it inside the namespace.
pub fn open_udp(ifname: &str) -> io::Result<UdpSocket> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = socket(AddressFamily::Inet, SockType::Datagram, flags, None)?;
    // Bound to the device before the port: another interface's client may
    // hold port 68 too.
    setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(ifname))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT)))?;
    Ok(UdpSocket::from(fd))
}

/// Sends to the server's port 67.
pub async fn unicast(socket: &tokio::net::UdpSocket, server: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
    socket.send_to(payload, SocketAddrV4::new(server, SERVER_PORT)).await.map(|_| ())
}
