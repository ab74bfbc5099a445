//! Harness shared by the integration tests.
//!
//! Every test gets its own network namespace standing in for the Docker host,
//! so tests run in parallel and never touch the machine's own interfaces.
//! The pipework binary only ever runs inside such a namespace. What it did is
//! read back through `ip -j`, /proc and `docker inspect`: the tests never use
//! the project's own code as their oracle.
//!
//! Every namespace and container made here is named `pwt<pid>x<n>-<prefix>` and
//! removed on drop (also when the test panics). Leftovers of a killed run are
//! swept the first time a test process makes one.

#![allow(dead_code)] // each test crate uses a different part of the harness

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

pub const IMAGE: &str = "pipework-test:latest";
pub const PIPEWORK: &str = env!("CARGO_BIN_EXE_pipework");

/// Marks the namespaces and containers this harness owns.
const TAG: &str = "pwt";
const NETNS_DIR: &str = "/var/run/netns";
/// One pipework run must end by then: a hung run fails the test, not CI.
const PIPEWORK_TIMEOUT_SECS: &str = "120";

// ---------------------------------------------------------------- names

/// A short name unique across parallel tests and test processes: `prefix`,
/// the process id, `x`, a counter. At most 15 bytes, so it is also a valid
/// interface name (pids stay below 8 digits; keep prefixes to ~4 letters).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    assert!(
        prefix.bytes().all(|b| b.is_ascii_lowercase()),
        "prefix {prefix:?}: lowercase letters only, so a name can be parsed back"
    );
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("{prefix}{}x{n}", std::process::id());
    assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// Name of a namespace or container owned by the harness.
fn owned_name(prefix: &str) -> String {
    format!("{}-{prefix}", unique(TAG))
}

/// The pid embedded in an owned name, if `name` is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TAG)?;
    let (pid, rest) = rest.split_once('x')?;
    let (n, _) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn is_owned(name: &str) -> bool {
    owner_pid(name).is_some()
}

/// Removes what a killed test process left behind (its pid is gone, or was
/// reused by this process, which has made nothing yet), and makes sure
/// /var/run/netns is set up before parallel `ip netns add` race to do it.
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let me = std::process::id();
        let stale = |name: &str| {
            owner_pid(name)
                .is_some_and(|pid| pid == me || !std::path::Path::new(&format!("/proc/{pid}")).exists())
        };
        for name in netns_entries().iter().filter(|n| stale(n)) {
            let _ = quiet(&["ip", "netns", "del", name]);
        }
        let names =
            run(&["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name=^{TAG}")]);
        for name in names.lines().filter(|n| stale(n)) {
            let _ = quiet(&["docker", "rm", "-f", name]);
        }
        let probe = format!("{TAG}{me}x0-init"); // swept like any other if we die here
        run(&["ip", "netns", "add", &probe]);
        run(&["ip", "netns", "del", &probe]);
    });
}

// ---------------------------------------------------------------- commands

fn command(argv: &[&str]) -> Command {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null());
    cmd
}

fn describe(argv: &[&str], out: &Output) -> String {
    format!(
        "`{}` exited with {}\n--- stdout\n{}--- stderr\n{}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(argv: &[&str]) -> String {
    let out = command(argv).output().unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    assert!(out.status.success(), "{}", describe(argv, &out));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command whose failure is an answer, not an error.
pub fn quiet(argv: &[&str]) -> Output {
    command(argv).output().unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Panics with both streams unless the run exited 0.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "pipework failed: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

// ---------------------------------------------------------------- pipework

/// Runs pipework inside `host`, the namespace standing in for the Docker host.
pub fn pipework(host: &Netns, args: &[&str]) -> Output {
    pipework_env(host, args, &[])
}

/// Same, with extra environment (failure injection). Injection variables from
/// the caller's own environment are dropped so they cannot leak into a test.
pub fn pipework_env(host: &Netns, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd =
        command(&["ip", "netns", "exec", &host.name, "timeout", "-k", "5", PIPEWORK_TIMEOUT_SECS, PIPEWORK]);
    cmd.args(args).env_remove("FAILPOINTS").env_remove("PIPEWORK_FAIL_AT");
    cmd.envs(env.iter().copied());
    cmd.output().expect("cannot run pipework")
}

/// `args` with each placeholder `CTR` replaced by `guest`, so a test can
/// write a command line the way the docs do.
pub fn with_guest<'a>(args: &[&'a str], guest: &'a str) -> Vec<&'a str> {
    args.iter().map(|a| if *a == "CTR" { guest } else { *a }).collect()
}

// ---------------------------------------------------------------- ip -j, read back

/// An interface as `ip -d -j link` shows it.
#[derive(Debug, Clone)]
pub struct Link {
    pub ifindex: u64,
    pub ifname: String,
    pub mtu: u64,
    pub master: Option<String>,
    pub operstate: String,
    pub flags: Vec<String>,
    pub address: String,
    pub link_type: String,
    /// `linkinfo.info_kind`: veth, bridge, macvlan...
    pub kind: Option<String>,
}

impl Link {
    fn from_json(v: &Value) -> Link {
        Link {
            ifindex: v["ifindex"].as_u64().unwrap_or_default(),
            ifname: str_of(v, "ifname"),
            mtu: v["mtu"].as_u64().unwrap_or_default(),
            master: v["master"].as_str().map(str::to_owned),
            operstate: str_of(v, "operstate"),
            flags: v["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect(),
            address: str_of(v, "address"),
            link_type: str_of(v, "link_type"),
            kind: v["linkinfo"]["info_kind"].as_str().map(str::to_owned),
        }
    }

    /// Administratively up.
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

/// One address as `ip -j addr` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: String,
    pub local: String,
    pub prefixlen: u64,
    pub broadcast: Option<String>,
    pub scope: String,
}

impl Addr {
    /// `local/prefixlen`, the way it was given on the command line.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.local, self.prefixlen)
    }
}

/// One route as `ip -j route` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: String,
    pub gateway: Option<String>,
    pub dev: Option<String>,
    pub scope: Option<String>,
    pub table: Option<String>,
}

impl Route {
    fn from_json(v: &Value) -> Route {
        let opt = |k: &str| v[k].as_str().map(str::to_owned);
        Route {
            dst: str_of(v, "dst"),
            gateway: opt("gateway"),
            dev: opt("dev"),
            scope: opt("scope"),
            table: opt("table"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// Anything with a network namespace: a named netns, a container, a process.
/// All reading back goes through here, so the same checks work on each.
pub trait Ns {
    /// argv prefix that runs a command inside the namespace.
    fn enter(&self) -> Vec<String>;

    /// argv prefix for `ip` inside the namespace.
    fn ip_argv(&self) -> Vec<String> {
        let mut argv = self.enter();
        argv.push("ip".into());
        argv
    }

    /// /var/run/netns entries a pipework run for this guest might leave.
    fn netns_litter(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs any command inside the namespace.
    fn exec(&self, argv: &[&str]) -> Output {
        let mut full = self.enter();
        full.extend(argv.iter().map(|s| s.to_string()));
        quiet(&full.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `ip <args>`, which must succeed; returns stdout.
    fn ip(&self, args: &[&str]) -> String {
        let mut argv = self.ip_argv();
        argv.extend(args.iter().map(|s| s.to_string()));
        run(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `ip -j <args>`, parsed.
    fn ip_j(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let out = self.ip(&full);
        if out.trim().is_empty() {
            return json!([]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    fn links(&self) -> Vec<Link> {
        as_vec(self.ip_j(&["-d", "link", "show"])).iter().map(Link::from_json).collect()
    }

    /// The interface called `name`, if there is one.
    fn link(&self, name: &str) -> Option<Link> {
        self.links().into_iter().find(|l| l.ifname == name)
    }

    /// The interface called `name`, which must exist.
    #[track_caller]
    fn must_link(&self, name: &str) -> Link {
        let links = self.links();
        let names: Vec<_> = links.iter().map(|l| l.ifname.clone()).collect();
        links
            .into_iter()
            .find(|l| l.ifname == name)
            .unwrap_or_else(|| panic!("no link {name}; links: {names:?}"))
    }

    /// Interfaces enslaved to `master`.
    fn ports(&self, master: &str) -> Vec<Link> {
        self.links().into_iter().filter(|l| l.master.as_deref() == Some(master)).collect()
    }

    /// Addresses of `dev`, IPv6 link-local ones left out (the kernel makes those).
    fn addrs(&self, dev: &str) -> Vec<Addr> {
        let v = self.ip_j(&["addr", "show", "dev", dev]);
        as_vec(v)
            .iter()
            .flat_map(|l| as_vec(l["addr_info"].clone()))
            .filter(|a| !is_kernel_v6(a["local"].as_str().unwrap_or_default()))
            .map(|a| Addr {
                family: str_of(&a, "family"),
                local: str_of(&a, "local"),
                prefixlen: a["prefixlen"].as_u64().unwrap_or_default(),
                broadcast: a["broadcast"].as_str().map(str::to_owned),
                scope: str_of(&a, "scope"),
            })
            .collect()
    }

    /// `local/len` of each address of `dev` in `family`.
    fn cidrs(&self, dev: &str, family: Family) -> Vec<String> {
        let want = if family == Family::V4 { "inet" } else { "inet6" };
        self.addrs(dev).iter().filter(|a| a.family == want).map(Addr::cidr).collect()
    }

    /// Routes of the main table.
    fn routes(&self, family: Family) -> Vec<Route> {
        as_vec(self.ip_j(&[family.flag(), "route", "show"])).iter().map(Route::from_json).collect()
    }

    fn default_routes(&self, family: Family) -> Vec<Route> {
        self.routes(family).into_iter().filter(|r| r.dst == "default").collect()
    }

    /// Pings `ip` from inside, a few tries (the first packets may go to ARP).
    fn ping(&self, ip: &str) -> bool {
        (0..5).any(|_| self.exec(&["ping", "-c", "1", "-W", "1", ip]).status.success())
    }

    /// A veth pair inside the namespace, `eth0` holding `cidr` with a default
    /// route via `gw`: a default route for pipework to replace (and restore).
    fn add_uplink(&self, cidr: &str, gw: &str) {
        if self.link("eth0").is_none() {
            self.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
            self.ip(&["link", "set", "eth0p", "up"]);
            self.ip(&["link", "set", "eth0", "up"]);
        }
        if cidr.contains(':') {
            self.ip(&["-6", "addr", "add", cidr, "dev", "eth0", "nodad"]);
            self.ip(&["-6", "route", "add", "default", "via", gw, "dev", "eth0"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", "eth0"]);
            self.ip(&["route", "add", "default", "via", gw, "dev", "eth0"]);
        }
    }

    /// Everything pipework could change here, normalised so that two
    /// snapshots compare equal when nothing changed: links, addresses,
    /// routes of every table, rules, and netns litter for this guest.
    fn snapshot(&self) -> Value {
        json!({
            "links": normalise(self.ip_j(&["-d", "link", "show"]), link_fields),
            "addrs": normalise(self.ip_j(&["addr", "show"]), addr_fields),
            "routes4": normalise(self.ip_j(&["-4", "route", "show", "table", "all"]), route_fields),
            "routes6": normalise(self.ip_j(&["-6", "route", "show", "table", "all"]), route_fields),
            "rules4": normalise(self.ip_j(&["-4", "rule", "show"]), |v| Some(v.clone())),
            "rules6": normalise(self.ip_j(&["-6", "rule", "show"]), |v| Some(v.clone())),
            "netns_litter": self.netns_litter(),
        })
    }
}

/// The guest has exactly one default route of `family`: via `gw` on `dev`.
#[track_caller]
pub fn assert_default_via(guest: &dyn Ns, family: Family, gw: &str, dev: &str) {
    let defaults = guest.default_routes(family);
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    let via = (defaults[0].gateway.as_deref(), defaults[0].dev.as_deref());
    assert_eq!(via, (Some(gw), Some(dev)), "{defaults:?}");
}

fn as_vec(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

/// IPv6 link-local and multicast: the kernel adds and keeps these by itself
/// (a bridge gets its fe80:: when its first port brings carrier), so they say
/// nothing about what pipework did.
fn is_kernel_v6(addr: &str) -> bool {
    let a = addr.to_ascii_lowercase();
    a.starts_with("fe80") || a.starts_with("ff")
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for k in keys {
        if let Some(x) = v.get(*k) {
            out.insert((*k).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

/// The stable facts of a link: no ifindex, counters or timers, and no
/// operstate, which the kernel's linkwatch updates up to a second late (the
/// flags carry UP and LOWER_UP without delay).
fn link_fields(v: &Value) -> Option<Value> {
    let mut l = pick(v, &["ifname", "flags", "mtu", "master", "address", "link_type"]);
    l["kind"] = v["linkinfo"]["info_kind"].clone();
    l["slave_kind"] = v["linkinfo"]["info_slave_kind"].clone();
    Some(l)
}

fn addr_fields(link: &Value) -> Option<Value> {
    let addrs: Vec<Value> = as_vec(link["addr_info"].clone())
        .iter()
        .filter(|a| !is_kernel_v6(a["local"].as_str().unwrap_or_default()))
        .map(|a| pick(a, &["family", "local", "prefixlen", "broadcast", "scope", "label"]))
        .collect();
    Some(json!({ "ifname": link["ifname"], "addr_info": addrs }))
}

/// Route flags that follow carrier, through the same late linkwatch.
const VOLATILE_ROUTE_FLAGS: &[&str] = &["linkdown", "dead"];

fn route_fields(v: &Value) -> Option<Value> {
    let dst = v["dst"].as_str().unwrap_or_default();
    if is_kernel_v6(dst) {
        return None;
    }
    let mut r =
        pick(v, &["type", "dst", "gateway", "dev", "protocol", "scope", "prefsrc", "table", "metric"]);
    r["flags"] = Value::Array(
        v["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| !VOLATILE_ROUTE_FLAGS.contains(&f.as_str().unwrap_or_default()))
            .cloned()
            .collect(),
    );
    Some(r)
}

/// Keeps what `f` keeps of each item, sorted so order does not matter.
fn normalise(v: Value, f: impl Fn(&Value) -> Option<Value>) -> Value {
    let set: BTreeSet<String> = as_vec(v).iter().filter_map(&f).map(|x| x.to_string()).collect();
    Value::Array(set.into_iter().map(|s| serde_json::from_str(&s).unwrap()).collect())
}

/// Asserts that a snapshot comes back equal to `before`. Carrier and
/// operstate settle asynchronously, so it polls for a few seconds before
/// failing with the items that went away (-) and appeared (+).
#[track_caller]
pub fn assert_unchanged(what: &str, before: &Value, now: impl Fn() -> Value) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let after = now();
        if &after == before {
            return;
        }
        if Instant::now() > deadline {
            panic!("{what} changed:\n{}", snapshot_diff(before, &after));
        }
        sleep(Duration::from_millis(100));
    }
}

fn snapshot_diff(before: &Value, after: &Value) -> String {
    let mut out = String::new();
    let empty = Map::new();
    let keys: BTreeSet<&String> = before
        .as_object()
        .unwrap_or(&empty)
        .keys()
        .chain(after.as_object().unwrap_or(&empty).keys())
        .collect();
    for key in keys {
        let items = |v: &Value| -> BTreeSet<String> {
            v[key.as_str()].as_array().into_iter().flatten().map(|x| x.to_string()).collect()
        };
        let (b, a) = (items(before), items(after));
        for gone in b.difference(&a) {
            let _ = writeln!(out, "  {key} - {gone}");
        }
        for new in a.difference(&b) {
            let _ = writeln!(out, "  {key} + {new}");
        }
    }
    out
}

/// Entries of /var/run/netns, the harness's own included.
pub fn netns_entries() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> =
        dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

// ---------------------------------------------------------------- netns

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        init();
        let ns = Netns { name: owned_name(prefix) };
        run(&["ip", "netns", "add", &ns.name]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its path under /var/run/netns, the guest form `/absolute/path`.
    pub fn path(&self) -> String {
        format!("{NETNS_DIR}/{}", self.name)
    }

    /// A Linux bridge, up, STP off, with a fixed MAC and (if given) an MTU
    /// set after creation: the kernel keeps both as they are when ports come
    /// and go (a bridge's own MAC and an MTU given at creation follow its ports).
    pub fn add_bridge(&self, name: &str, mtu: Option<u32>) {
        self.ip(&[
            "link",
            "add",
            name,
            "address",
            "02:00:00:00:00:01",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        if let Some(mtu) = mtu {
            self.ip(&["link", "set", name, "mtu", &mtu.to_string()]);
        }
        self.ip(&["link", "set", name, "up"]);
    }

    /// A "peer": another namespace whose `eth0` holds `cidr` and is plugged
    /// into `bridge` of this one through a veth pair.
    pub fn add_peer(&self, bridge: &str, cidr: &str) -> Netns {
        let peer = Netns::new("peer");
        let port = unique("pp");
        self.ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &peer.name]);
        self.ip(&["link", "set", &port, "master", bridge, "up"]);
        peer.ip(&["addr", "add", cidr, "dev", "eth0"]);
        peer.ip(&["link", "set", "eth0", "up"]);
        peer
    }

    /// A process living in this namespace, for the `pid:<pid>` guest form.
    pub fn spawn_process(&self) -> NsProcess {
        // `ip netns exec` execs the command, so the child's pid is sleep's.
        let child =
            command(&["ip", "netns", "exec", &self.name, "sleep", "1000000"]).spawn().expect("spawn sleep");
        let proc = NsProcess { child };
        // Wait until the exec into the namespace has happened.
        let want = inode(&self.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        while inode(&format!("/proc/{}/ns/net", proc.pid())) != want {
            assert!(Instant::now() < deadline, "process never entered {}", self.name);
            sleep(Duration::from_millis(20));
        }
        proc
    }
}

fn inode(path: &str) -> Option<u64> {
    std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok()
}

impl Ns for Netns {
    fn enter(&self) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.name.clone()]
    }

    fn ip_argv(&self) -> Vec<String> {
        vec!["ip".into(), "-n".into(), self.name.clone()]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = quiet(&["ip", "netns", "del", &self.name]);
    }
}

/// A process in a namespace, killed on drop.
pub struct NsProcess {
    child: Child,
}

impl NsProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- containers

/// The guest namespace of a process, entered with nsenter.
fn enter_pid(pid: u32) -> Vec<String> {
    vec!["nsenter".into(), format!("--net=/proc/{pid}/ns/net")]
}

/// A Docker container with no network of its own, removed on drop.
pub struct Container {
    pub name: String,
    pub pid: u32,
}

impl Container {
    /// `docker run -d --net=none --cap-add=NET_ADMIN` of the test image.
    pub fn run(prefix: &str) -> Container {
        Container::run_with(prefix, &[])
    }

    /// The same with extra `docker run` options.
    pub fn run_with(prefix: &str, docker_args: &[&str]) -> Container {
        init();
        let mut c = Container { name: owned_name(prefix), pid: 0 };
        let mut argv = vec!["docker", "run", "-d", "--net=none", "--cap-add=NET_ADMIN", "--name", &c.name];
        argv.extend_from_slice(docker_args);
        argv.extend([IMAGE, "/bin/sleep", "1000000"]);
        run(&argv);
        c.pid = c.inspect_pid();
        c
    }

    /// `docker create <docker_args> --net=none --cap-add=NET_ADMIN --name=...
    /// <image> <cmd>`, then `docker start`: the runbook's way.
    pub fn create(prefix: &str, docker_args: &[&str], cmd: &[&str]) -> Container {
        init();
        let mut c = Container { name: owned_name(prefix), pid: 0 };
        let name_arg = format!("--name={}", c.name);
        let mut argv = vec!["docker", "create"];
        argv.extend_from_slice(docker_args);
        argv.extend(["--net=none", "--cap-add=NET_ADMIN", &name_arg, IMAGE]);
        argv.extend_from_slice(cmd);
        run(&argv);
        run(&["docker", "start", &c.name]);
        c.pid = c.inspect_pid();
        c
    }

    fn inspect_pid(&self) -> u32 {
        let pid: u32 = self.inspect("{{.State.Pid}}").parse().expect("pid");
        assert_ne!(pid, 0, "container {} is not running", self.name);
        pid
    }

    /// `docker inspect -f <format>`.
    pub fn inspect(&self, format: &str) -> String {
        run(&["docker", "inspect", "-f", format, &self.name]).trim().to_owned()
    }

    /// Runs a command of the machine inside the container's network namespace.
    pub fn nsenter(&self, argv: &[&str]) -> Output {
        self.exec(argv)
    }
}

impl Ns for Container {
    fn enter(&self) -> Vec<String> {
        enter_pid(self.pid)
    }

    /// The original left `/var/run/netns/<pid>` behind; any entry naming the
    /// pid counts.
    fn netns_litter(&self) -> Vec<String> {
        let pid = self.pid.to_string();
        netns_entries().into_iter().filter(|n| !is_owned(n) && n.contains(&pid)).collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = quiet(&["docker", "rm", "-f", &self.name]);
    }
}

/// Docker run options that give a container IPv6: Docker 20.10 turns it off
/// (`disable_ipv6=1`) in `--net=none` containers.
pub const DOCKER_IPV6: &[&str] =
    &["--sysctl", "net.ipv6.conf.all.disable_ipv6=0", "--sysctl", "net.ipv6.conf.default.disable_ipv6=0"];

/// Host side name of a bridge connection: `v<ctr_if>pl<pid>`.
pub fn host_side(ctr_if: &str, pid: u32) -> String {
    format!("v{ctr_if}pl{pid}")
}
