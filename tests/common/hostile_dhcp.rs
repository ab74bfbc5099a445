//! A DHCP server of the tests' own, for what dnsmasq will not send: a lease
//! of 0 s, T1 and T2 past the lease, a subnet mask that is no prefix, every
//! answer many times over. It serves a bridge of a namespace from a thread
//! that entered it (setns is per thread), and keeps what it heard as the
//! tests' oracle.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use dhcproto::{Decodable, Encodable};

use super::netns::Netns;
use super::readback::Ns;

/// The server's own address on its bridge, and the one address it offers.
pub const HOSTILE_SERVER: Ipv4Addr = Ipv4Addr::new(10, 44, 0, 1);
pub const HOSTILE_OFFER: Ipv4Addr = Ipv4Addr::new(10, 44, 0, 50);

/// What the server answers; [`Hostile::start_in`] runs it.
#[derive(Debug, Clone)]
pub struct Hostile {
    bridge: String,
    lease: Option<u32>,
    t1: Option<u32>,
    t2: Option<u32>,
    mask: Ipv4Addr,
    copies: usize,
}

/// One message the server heard.
#[derive(Debug, Clone)]
pub struct Heard {
    pub at: Instant,
    pub kind: MessageType,
    pub ciaddr: Ipv4Addr,
}

impl Hostile {
    /// On `bridge` (made if missing), with a /24 and no lease time at all.
    pub fn new(bridge: &str) -> Hostile {
        Hostile {
            bridge: bridge.to_owned(),
            lease: None,
            t1: None,
            t2: None,
            mask: Ipv4Addr::new(255, 255, 255, 0),
            copies: 1,
        }
    }

    /// Options 51, 58 and 59 in seconds, each sent only if given.
    pub fn times(mut self, lease: Option<u32>, t1: Option<u32>, t2: Option<u32>) -> Hostile {
        (self.lease, self.t1, self.t2) = (lease, t1, t2);
        self
    }

    /// Option 1, whatever it is.
    pub fn mask(mut self, mask: Ipv4Addr) -> Hostile {
        self.mask = mask;
        self
    }

    /// A flood: each answer sent `n` times, each copy followed by an
    /// answer to nobody's transaction.
    pub fn copies(mut self, n: usize) -> Hostile {
        self.copies = n;
        self
    }

    pub fn start_in(self, ns: &Netns) -> HostileServer {
        if ns.link(&self.bridge).is_none() {
            ns.add_bridge(&self.bridge, None);
        }
        ns.ip(&["addr", "add", &format!("{HOSTILE_SERVER}/24"), "dev", &self.bridge]);
        let stop = Arc::new(AtomicBool::new(false));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = {
            let (stop, heard, path) = (stop.clone(), heard.clone(), ns.path());
            std::thread::spawn(move || {
                let socket = bind_in(&path, &self.bridge);
                let _ = ready_tx.send(());
                serve(&socket, &self, &stop, &heard);
            })
        };
        ready.recv_timeout(Duration::from_secs(10)).expect("the hostile DHCP server to bind");
        HostileServer { stop, heard, thread: Some(thread) }
    }
}

/// A UDP socket on port 67 of `bridge`, inside the namespace at `path`.
/// Bound to the bridge before the port, and with SO_REUSEADDR, as dnsmasq's:
/// a dnsmasq serving another bridge of the namespace can bind port 67 too.
fn bind_in(path: &str, bridge: &str) -> UdpSocket {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let ns = std::fs::File::open(path).expect("open the server's namespace");
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    let fd = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).expect("socket");
    setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(bridge)).expect("SO_BINDTODEVICE");
    setsockopt(&fd, sockopt::ReuseAddr, &true).expect("SO_REUSEADDR");
    setsockopt(&fd, sockopt::Broadcast, &true).expect("SO_BROADCAST");
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(0, 0, 0, 0, 67)).expect("bind port 67");
    let socket = UdpSocket::from(fd);
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    socket
}

fn serve(socket: &UdpSocket, config: &Hostile, stop: &AtomicBool, heard: &Mutex<Vec<Heard>>) {
    let mut buf = [0u8; 1600];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = socket.recv(&mut buf) else { continue };
        let Ok(request) = Message::from_bytes(&buf[..n]) else { continue };
        let Some(kind) = request.opts().msg_type() else { continue };
        if request.opcode() != Opcode::BootRequest {
            continue;
        }
        heard.lock().unwrap().push(Heard { at: Instant::now(), kind, ciaddr: request.ciaddr() });
        let answer = match kind {
            MessageType::Discover => MessageType::Offer,
            MessageType::Request => MessageType::Ack,
            _ => continue,
        };
        let to = match request.ciaddr() {
            ip if ip.is_unspecified() => Ipv4Addr::BROADCAST,
            ip => ip,
        };
        for _ in 0..config.copies {
            for xid in [request.xid(), !request.xid()] {
                let bytes = answer_to(&request, xid, answer, config);
                let _ = socket.send_to(&bytes, SocketAddrV4::new(to, 68));
            }
        }
    }
}

fn answer_to(request: &Message, xid: u32, kind: MessageType, config: &Hostile) -> Vec<u8> {
    let chaddr = &request.chaddr()[..6];
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(xid, request.ciaddr(), HOSTILE_OFFER, HOSTILE_SERVER, zero, chaddr);
    msg.set_opcode(Opcode::BootReply).set_flags(request.flags());
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(HOSTILE_SERVER));
    opts.insert(DhcpOption::SubnetMask(config.mask));
    if let Some(s) = config.lease {
        opts.insert(DhcpOption::AddressLeaseTime(s));
    }
    if let Some(s) = config.t1 {
        opts.insert(DhcpOption::Renewal(s));
    }
    if let Some(s) = config.t2 {
        opts.insert(DhcpOption::Rebinding(s));
    }
    msg.to_vec().unwrap()
}

/// The running server, stopped on drop.
pub struct HostileServer {
    stop: Arc<AtomicBool>,
    heard: Arc<Mutex<Vec<Heard>>>,
    thread: Option<JoinHandle<()>>,
}

impl HostileServer {
    /// Everything heard so far.
    pub fn heard(&self) -> Vec<Heard> {
        self.heard.lock().unwrap().clone()
    }

    /// The renewals and rebinds heard so far: requests from a bound address.
    pub fn extensions(&self) -> Vec<Heard> {
        self.heard()
            .into_iter()
            .filter(|h| h.kind == MessageType::Request && !h.ciaddr.is_unspecified())
            .collect()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
