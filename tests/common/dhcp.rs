//! A real DHCP server for the DHCP tests: dnsmasq serving a bridge in a
//! namespace, logging every exchange (`--log-dhcp`) to a file the tests read
//! as their oracle, leases in a file of its own.

use std::process::Child;
use std::time::Duration;

use super::commands::command;
use super::daemons::wait_for;
use super::netns::Netns;
use super::readback::Ns;
use super::tempdir::TempDir;

/// What dnsmasq is to serve; [`DhcpConfig::start_in`] or [`DhcpConfig::start`]
/// runs it.
#[derive(Debug, Clone)]
pub struct DhcpConfig {
    bridge: String,
    cidr: String,
    range: (String, String),
    lease: String,
    args: Vec<String>,
    routes: Vec<String>,
}

impl DhcpConfig {
    /// A server on `bridge` (made if missing) holding `cidr`, handing out
    /// `first`..=`last` with a one-hour lease. Unless told otherwise dnsmasq
    /// names itself (the bridge's address) as the router.
    pub fn new(bridge: &str, cidr: &str, first: &str, last: &str) -> DhcpConfig {
        DhcpConfig {
            bridge: bridge.to_owned(),
            cidr: cidr.to_owned(),
            range: (first.to_owned(), last.to_owned()),
            lease: "1h".to_owned(),
            args: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Lease time in dnsmasq's syntax: `2m` (its minimum), `1h`, `infinite`.
    pub fn lease(mut self, time: &str) -> DhcpConfig {
        self.lease = time.to_owned();
        self
    }

    /// Option 3, the router.
    pub fn router(self, ip: &str) -> DhcpConfig {
        self.option(&format!("option:router,{ip}"))
    }

    /// Option 26, the interface MTU.
    pub fn mtu(self, mtu: u32) -> DhcpConfig {
        self.option(&format!("option:mtu,{mtu}"))
    }

    /// One classless static route (option 121); repeat for more. A client
    /// given option 121 ignores option 3 (RFC 3442): add `0.0.0.0/0` here
    /// for a default route.
    pub fn route(mut self, dst: &str, gw: &str) -> DhcpConfig {
        self.routes.push(format!("{dst},{gw}"));
        self
    }

    /// A fixed address for the client with `mac`.
    pub fn host(mut self, mac: &str, ip: &str) -> DhcpConfig {
        self.args.push(format!("--dhcp-host={mac},{ip}"));
        self
    }

    /// Any other `--dhcp-option` (`option:domain-name,example.org`, `42,10.0.0.1`).
    pub fn option(mut self, spec: &str) -> DhcpConfig {
        self.args.push(format!("--dhcp-option={spec}"));
        self
    }

    /// Serves in a namespace of its own, removed with the server; cable
    /// clients to it with [`DhcpServer::plug`].
    pub fn start(self) -> DhcpServer {
        let ns = Netns::new("dhcp");
        let mut server = self.start_in(&ns);
        server.own_ns = Some(ns);
        server
    }

    /// Serves in `ns` (a test's "docker host"), where pipework plugs its
    /// guests into the same bridge.
    pub fn start_in(self, ns: &Netns) -> DhcpServer {
        if ns.link(&self.bridge).is_none() {
            ns.add_bridge(&self.bridge, None);
        }
        ns.ip(&["addr", "add", &self.cidr, "dev", &self.bridge]);
        let dir = TempDir::new("dhcp");
        let mask = prefix_mask(&self.cidr);
        let mut argv = vec![
            "ip".to_owned(),
            "netns".to_owned(),
            "exec".to_owned(),
            ns.name.clone(),
            "dnsmasq".to_owned(),
            "--keep-in-foreground".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--port=0".to_owned(), // DHCP only, no DNS
            format!("--interface={}", self.bridge),
            "--bind-interfaces".to_owned(),
            format!("--dhcp-range={},{},{mask},{}", self.range.0, self.range.1, self.lease),
            "--dhcp-authoritative".to_owned(),
            // dnsmasq pings an address for 3 s before offering it.
            "--no-ping".to_owned(),
            "--log-dhcp".to_owned(),
            format!("--log-facility={}", dir.join("dnsmasq.log")),
            format!("--dhcp-leasefile={}", dir.join("leases")),
            format!("--pid-file={}", dir.join("dnsmasq.pid")),
            // Root keeps the log and lease files writable and readable.
            "--user=root".to_owned(),
        ];
        argv.extend(self.args.iter().cloned());
        if !self.routes.is_empty() {
            argv.push(format!("--dhcp-option=option:classless-static-route,{}", self.routes.join(",")));
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        // `ip netns exec` execs dnsmasq: the child is dnsmasq itself.
        let child = command(&argv).spawn().expect("spawn dnsmasq (tests/run.sh installs dnsmasq-base)");
        let server =
            DhcpServer { child, dir, ns: ns.name.clone(), bridge: self.bridge.clone(), own_ns: None };
        wait_for("dnsmasq to serve", Duration::from_secs(10), || {
            server.log().contains("DHCP, sockets bound exclusively").then_some(())
        });
        server
    }
}

/// The dotted netmask of `a.b.c.d/len`.
fn prefix_mask(cidr: &str) -> String {
    let len: u32 = cidr.split_once('/').and_then(|(_, l)| l.parse().ok()).expect("an IPv4 CIDR");
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    std::net::Ipv4Addr::from(mask).to_string()
}

/// A running dnsmasq, killed on drop (also when the test panics).
pub struct DhcpServer {
    child: Child,
    dir: TempDir,
    /// The namespace it serves in.
    pub ns: String,
    pub bridge: String,
    own_ns: Option<Netns>,
}

/// One line of dnsmasq's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub expiry: u64,
    pub mac: String,
    pub ip: String,
    /// `*` when the client sent none.
    pub hostname: String,
    pub client_id: String,
}

impl DhcpServer {
    /// Cables `client` to the bridge: a veth whose end in `client` is
    /// `ifname`, left down (the client's program brings it up).
    pub fn plug(&self, client: &dyn Ns, ifname: &str) {
        let port = super::names::unique("dp");
        client.ip(&["link", "add", ifname, "type", "veth", "peer", "name", &port, "netns", &self.ns]);
        let ip = ["ip", "-n", &self.ns, "link", "set", &port, "master", &self.bridge, "up"];
        super::commands::run(&ip);
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// The first log line containing every one of `words`, waiting up to
    /// `timeout` for it.
    #[track_caller]
    pub fn wait_log(&self, words: &[&str], timeout: Duration) -> String {
        let what = format!("a dnsmasq log line with {words:?}");
        let found = || self.log().lines().find(|l| words.iter().all(|w| l.contains(w))).map(str::to_owned);
        wait_for(&what, timeout, found)
    }

    /// Waits for the DHCPACK naming `hostname` (`DHCPACK(br0) <ip> <mac>
    /// <hostname>`); returns the address acknowledged.
    #[track_caller]
    pub fn wait_ack(&self, hostname: &str, timeout: Duration) -> String {
        let line = self.wait_log(&["DHCPACK(", &format!(" {hostname}")], timeout);
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| w.starts_with("DHCPACK(")).expect("DHCPACK");
        words[at + 1].to_owned()
    }

    /// The leases dnsmasq holds, as its lease file has them.
    pub fn leases(&self) -> Vec<Lease> {
        let text = std::fs::read_to_string(self.dir.join("leases")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 5).then(|| Lease {
                    expiry: f[0].parse().unwrap_or_default(),
                    mac: f[1].to_owned(),
                    ip: f[2].to_owned(),
                    hostname: f[3].to_owned(),
                    client_id: f[4].to_owned(),
                })
            })
            .collect()
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
