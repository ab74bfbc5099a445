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
use std::path::{Path, PathBuf};
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

/// Name of a namespace, container or cgroup owned by the harness.
pub fn owned_name(prefix: &str) -> String {
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
        for h in Hierarchy::all() {
            let parents = LXC_PARENTS.iter().map(|p| h.root.join(p));
            for dir in subdirs(&h.root).into_iter().chain(parents.flat_map(|p| subdirs(&p))) {
                let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
                if stale(name.strip_prefix(LXC_PAYLOAD).unwrap_or(&name)) {
                    h.remove_group(&dir);
                }
            }
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
    pipework_via(&host.enter(), args, env)
}

/// Runs pipework in `host`'s network namespace only, seeing the machine's
/// mounts: `ip netns exec` mounts a fresh /sys, which hides /sys/fs/cgroup,
/// where LXC guests are looked up.
pub fn pipework_keeping_mounts(host: &Netns, args: &[&str]) -> Output {
    pipework_via(&["nsenter".into(), format!("--net={}", host.path())], args, &[])
}

fn pipework_via(enter: &[String], args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut argv: Vec<&str> = enter.iter().map(String::as_str).collect();
    argv.extend(["timeout", "-k", "5", PIPEWORK_TIMEOUT_SECS, PIPEWORK]);
    let mut cmd = command(&argv);
    cmd.args(args).env_remove("FAILPOINTS").env_remove("PIPEWORK_FAIL_AT").env_remove("PIPEWORK_TEST_SBIN");
    cmd.envs(env.iter().copied());
    cmd.output().expect("cannot run pipework")
}

/// Runs pipework through `run` (`pipework`, `pipework_keeping_mounts`...),
/// asserts that it exits 1 and changes nothing on `host` or in `guest`, and
/// returns what it printed.
#[track_caller]
pub fn assert_refused(
    run: impl FnOnce(&Netns, &[&str]) -> Output,
    host: &Netns,
    guest: Option<&dyn Ns>,
    args: &[&str],
) -> Output {
    let (host_before, guest_before) = (host.snapshot(), guest.map(|g| g.snapshot()));
    let out = run(host, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}\n--- stdout\n{}--- stderr\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_unchanged("host", &host_before, || host.snapshot());
    if let (Some(guest), Some(before)) = (guest, guest_before) {
        assert_unchanged("guest", &before, || guest.snapshot());
    }
    out
}

/// The refusal of `args` printed one `pipework: ` line, mentioning `bad`.
#[track_caller]
pub fn assert_one_line_naming(args: &[&str], out: &Output, bad: &str) {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{args:?}: one line expected:\n{err}");
    assert!(err.starts_with("pipework: "), "{args:?}: {err}");
    assert!(err.contains(bad), "{args:?}: message does not mention {bad:?}: {err}");
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

/// The guest got `ctr_if`, up, holding `cidr`; its host side `host_if` is a
/// veth, up, enslaved to `bridge`.
#[track_caller]
pub fn assert_connected(
    host: &impl Ns,
    bridge: &str,
    host_if: &str,
    guest: &impl Ns,
    ctr_if: &str,
    cidr: &str,
) {
    let br = host.must_link(bridge);
    assert_eq!(br.kind.as_deref(), Some("bridge"), "{br:?}");
    assert!(br.is_up(), "bridge is down: {br:?}");

    let h = host.must_link(host_if);
    assert_eq!(h.kind.as_deref(), Some("veth"), "{h:?}");
    assert_eq!(h.master.as_deref(), Some(bridge), "{h:?}");
    assert!(h.is_up(), "host side is down: {h:?}");

    let g = guest.must_link(ctr_if);
    assert_eq!(g.kind.as_deref(), Some("veth"), "{g:?}");
    assert!(g.is_up(), "container side is down: {g:?}");
    let family = if cidr.contains(':') { Family::V6 } else { Family::V4 };
    assert_eq!(guest.cidrs(ctr_if, family), vec![cidr.to_owned()]);
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
        let mut c = Container::created(prefix, docker_args, cmd);
        run(&["docker", "start", &c.name]);
        c.pid = c.inspect_pid();
        c
    }

    /// The same, never started: Docker reports its PID as 0 and it has no
    /// namespace, so `pid` is 0 and only `inspect` works on it.
    pub fn created(prefix: &str, docker_args: &[&str], cmd: &[&str]) -> Container {
        init();
        let c = Container { name: owned_name(prefix), pid: 0 };
        let name_arg = format!("--name={}", c.name);
        let mut argv = vec!["docker", "create"];
        argv.extend_from_slice(docker_args);
        argv.extend(["--net=none", "--cap-add=NET_ADMIN", &name_arg, IMAGE]);
        argv.extend_from_slice(cmd);
        run(&argv);
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

// ---------------------------------------------------------------- cgroups

/// LXC 4 names a container's cgroup `lxc.payload.<name>`.
pub const LXC_PAYLOAD: &str = "lxc.payload.";
/// Earlier LXC put it under one of these: `lxc/<name>`, `lxc.payload/<name>`.
pub const LXC_PARENTS: &[&str] = &["lxc", "lxc.payload"];

/// A mounted cgroup hierarchy where LXC puts its containers: the cgroup v1
/// one of the `devices` controller, or the cgroup2 one.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub root: PathBuf,
    /// The file of a group that lists its processes.
    procs: &'static str,
}

impl Hierarchy {
    /// Both, as /proc/self/mounts has them (each only if mounted).
    fn all() -> Vec<Hierarchy> {
        Hierarchy::v1_devices().into_iter().chain(Hierarchy::v2()).collect()
    }

    pub fn v1_devices() -> Option<Hierarchy> {
        Hierarchy::mounted(
            |fstype, opts| fstype == "cgroup" && opts.split(',').any(|o| o == "devices"),
            "tasks",
        )
    }

    pub fn v2() -> Option<Hierarchy> {
        Hierarchy::mounted(|fstype, _| fstype == "cgroup2", "cgroup.procs")
    }

    fn mounted(matches: impl Fn(&str, &str) -> bool, procs: &'static str) -> Option<Hierarchy> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
        mounts.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3 && matches(f[2], f[3])).then(|| Hierarchy { root: PathBuf::from(f[1]), procs })
        })
    }

    /// Makes the group `path` (relative, parents included). Its first
    /// component should be an [`owned_name`], optionally after
    /// `lxc.payload.`, so that a killed run's leftovers are swept.
    pub fn group(&self, path: &str) -> Cgroup {
        init();
        let top = self.root.join(Path::new(path).components().next().expect("a cgroup path"));
        let group = Cgroup { hierarchy: self.clone(), top, dir: self.root.join(path), parent: None };
        std::fs::create_dir_all(&group.dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", group.dir.display()));
        group
    }

    /// The same under `parent` (one of [`LXC_PARENTS`]), which is made if
    /// missing and then removed with the group if nothing else is in it.
    /// Only one test at a time may use a parent this makes.
    pub fn group_under(&self, parent: &str, path: &str) -> Cgroup {
        let dir = self.root.join(parent);
        let made = !dir.exists();
        let mut group = Hierarchy { root: dir.clone(), procs: self.procs }.group(path);
        group.hierarchy = self.clone();
        group.parent = made.then_some(dir);
        group
    }

    /// Moves the processes of `dir` and of the groups below it back to the
    /// root group, then removes them all, innermost first.
    fn remove_group(&self, dir: &Path) {
        for child in subdirs(dir) {
            self.remove_group(&child);
        }
        let listed = std::fs::read_to_string(dir.join(self.procs)).unwrap_or_default();
        for pid in listed.lines() {
            let _ = std::fs::write(self.root.join(self.procs), pid);
        }
        // A process that just left can hold the group busy for a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect()
}

/// Cgroup directories made by a test, removed on drop (their processes
/// moved back to the root group first).
pub struct Cgroup {
    hierarchy: Hierarchy,
    /// The outermost directory made.
    top: PathBuf,
    /// The group itself, the innermost.
    dir: PathBuf,
    /// A parent group made for it, removed after it.
    parent: Option<PathBuf>,
}

impl Cgroup {
    /// Moves the process `pid` into the group.
    pub fn add(&self, pid: u32) {
        let procs = self.dir.join(self.hierarchy.procs);
        std::fs::write(&procs, pid.to_string())
            .unwrap_or_else(|e| panic!("{pid} > {}: {e}", procs.display()));
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.hierarchy.remove_group(&self.top);
        if let Some(parent) = &self.parent {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

// ---------------------------------------------------------------- loop devices

/// A directory under /tmp standing in for a /dev, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(owned_name(prefix));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    /// The path of `name` inside, as a string for command lines.
    pub fn join(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }

    /// The names it holds, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .expect("read temp dir")
            .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What `ls -ln` shows of a node, read with lstat: type and permission
/// bits, owner, group, and major:minor for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    pub is_block: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub major: u32,
    pub minor: u32,
}

/// The node at `path`, if there is one.
pub fn node_info(path: &Path) -> Option<NodeInfo> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(path).ok()?;
    Some(NodeInfo {
        is_block: m.file_type().is_block_device(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        major: libc::major(m.rdev()),
        minor: libc::minor(m.rdev()),
    })
}

/// The `loopN` entries of a directory (loop-control left out) by name.
pub fn loop_nodes(dir: &Path) -> std::collections::BTreeMap<String, NodeInfo> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| loop_index(n).is_some())
        .filter_map(|n| node_info(&dir.join(&n)).map(|info| (n, info)))
        .collect()
}

/// N of `loopN`.
pub fn loop_index(name: &str) -> Option<u32> {
    name.strip_prefix("loop")?.parse().ok()
}

/// The gid of group disk, as the machine's group database has it.
pub fn disk_gid() -> u32 {
    let line = run(&["getent", "group", "disk"]);
    line.trim().split(':').nth(2).and_then(|g| g.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

/// The loop devices the kernel has (/sys/block/loopN).
pub fn kernel_loops() -> BTreeSet<u32> {
    std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .filter_map(|e| e.ok())
        .filter_map(|e| loop_index(&e.file_name().to_string_lossy()))
        .collect()
}

/// Notes the kernel's loop devices; on drop, removes those added since
/// (LOOP_CTL_REMOVE), so a test leaves the machine's devices, and with
/// devtmpfs the nodes the kernel made in its /dev, as they were. The kernel
/// refuses (EBUSY) to remove a device in use, which is then left alone.
pub struct KernelLoops {
    before: BTreeSet<u32>,
}

impl KernelLoops {
    pub fn note() -> KernelLoops {
        KernelLoops { before: kernel_loops() }
    }

    /// Devices added since the note.
    pub fn added(&self) -> BTreeSet<u32> {
        kernel_loops().difference(&self.before).copied().collect()
    }
}

impl Drop for KernelLoops {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;
        let Ok(ctl) = std::fs::File::options().read(true).write(true).open("/dev/loop-control") else {
            return;
        };
        for i in self.added() {
            // SAFETY: LOOP_CTL_REMOVE takes the index by value; the fd is open.
            let _ = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_REMOVE as _, i as libc::c_ulong) };
        }
    }
}

// ---------------------------------------------------------------- mkbridge

impl Netns {
    /// A "compute node": another namespace cabled to this one by a veth pair
    /// named `eth0` at both ends, each end up and holding its `cidrs`. IPv6
    /// ones get `nodad`, so that they answer at once.
    pub fn add_node(&self, host_cidrs: &[&str], node_cidrs: &[&str]) -> Netns {
        let node = Netns::new("node");
        self.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &node.name]);
        for (ns, cidrs) in [(self, host_cidrs), (&node, node_cidrs)] {
            for cidr in cidrs {
                if cidr.contains(':') {
                    ns.ip(&["-6", "addr", "add", cidr, "dev", "eth0", "nodad"]);
                } else {
                    ns.ip(&["addr", "add", cidr, "dev", "eth0"]);
                }
            }
            ns.ip(&["link", "set", "eth0", "up"]);
        }
        node
    }
}

/// Routes of every table, the local one included; `table` is None for main.
pub fn all_routes(ns: &dyn Ns, family: Family) -> Vec<Route> {
    as_vec(ns.ip_j(&[family.flag(), "route", "show", "table", "all"])).iter().map(Route::from_json).collect()
}

/// `linkinfo.info_data` of `ip -d -j link show dev <name>`: for a bridge,
/// stp_state, forward_delay (in hundredths of a second)...
pub fn link_info_data(ns: &dyn Ns, name: &str) -> Value {
    ns.ip_j(&["-d", "link", "show", "dev", name])[0]["linkinfo"]["info_data"].clone()
}

/// A snapshot taken once the kernel has settled (two in a row, 100 ms
/// apart, agree), to compare later ones with: right after a bridge got a
/// port, its carrier and flags are still on their way.
pub fn settled_snapshot(ns: &dyn Ns) -> Value {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = ns.snapshot();
    loop {
        sleep(Duration::from_millis(100));
        let now = ns.snapshot();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

// ---------------------------------------------------------------- passthrough

/// The guest the passthrough tests work in: `eth1`, one end of a veth pair
/// (`p1` the other, both up), holding `cidr4`, and `cidr6` without DAD.
pub fn add_eth1(ns: &dyn Ns, cidr4: &str, cidr6: &str) {
    ns.ip(&["link", "add", "eth1", "type", "veth", "peer", "name", "p1"]);
    ns.ip(&["addr", "add", cidr4, "dev", "eth1"]);
    ns.ip(&["-6", "addr", "add", cidr6, "dev", "eth1", "nodad"]);
    ns.ip(&["link", "set", "p1", "up"]);
    ns.ip(&["link", "set", "eth1", "up"]);
}

/// Every route not made by the kernel itself (those follow addresses and
/// carry the veth's random link-local address), both families, every table,
/// as `ip -d -j route` shows them, carrier flags left out; sorted.
pub fn made_routes(ns: &dyn Ns) -> Value {
    let mut all = Vec::new();
    for flag in ["-4", "-6"] {
        all.extend(as_vec(ns.ip_j(&[flag, "-d", "route", "show", "table", "all"])));
    }
    let made = all.into_iter().filter(|r| r["protocol"].as_str() != Some("kernel")).map(|mut r| {
        if let Some(flags) = r.get_mut("flags").and_then(Value::as_array_mut) {
            flags.retain(|f| !VOLATILE_ROUTE_FLAGS.contains(&f.as_str().unwrap_or_default()));
        }
        r
    });
    normalise(Value::Array(made.collect()), |v| Some(v.clone()))
}

/// The routes `made_routes` lists with destination `dst`.
pub fn made_routes_to(ns: &dyn Ns, dst: &str) -> Vec<Value> {
    as_vec(made_routes(ns)).into_iter().filter(|r| r["dst"] == dst).collect()
}

/// Every rule, both families, as `ip -d -j rule` shows them; sorted.
pub fn rules(ns: &dyn Ns) -> Value {
    let mut all = as_vec(ns.ip_j(&["-4", "-d", "rule", "show"]));
    all.extend(as_vec(ns.ip_j(&["-6", "-d", "rule", "show"])));
    normalise(Value::Array(all), |v| Some(v.clone()))
}

/// Where `cmd` is found on this process's PATH.
pub fn which(cmd: &str) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|dir| Path::new(dir).join(cmd))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{cmd} not found on PATH"))
        .to_string_lossy()
        .into_owned()
}

/// Runs pipework inside `host` with `path` as the only place for pipework
/// alone to find programs in: what it may exec is then only what `path`
/// holds. pipework ignores PATH (it takes `ip` and `tc` from fixed system
/// directories); test builds take the directories from PIPEWORK_TEST_SBIN.
pub fn pipework_with_path(host: &Netns, path: &str, args: &[&str]) -> Output {
    let (ip, timeout) = (which("ip"), which("timeout"));
    let mut cmd = command(&[&ip, "netns", "exec", &host.name, &timeout, "-k", "5", PIPEWORK_TIMEOUT_SECS]);
    cmd.arg(PIPEWORK).args(args).env("PATH", path).env("PIPEWORK_TEST_SBIN", path);
    cmd.env_remove("FAILPOINTS").env_remove("PIPEWORK_FAIL_AT");
    cmd.output().expect("cannot run pipework")
}

/// A directory for PATH holding links to the machine's `cmds` and nothing else.
pub fn path_with(cmds: &[&str]) -> TempDir {
    let dir = TempDir::new("path");
    for cmd in cmds {
        std::os::unix::fs::symlink(which(cmd), dir.path.join(cmd)).expect("symlink");
    }
    dir
}

// ---------------------------------------------------------------- physical host interfaces

impl Netns {
    /// A "LAN" behind a NIC of this host: `host_if` here is a veth (to
    /// pipework, a physical interface like any other), left down; its peer
    /// `lan0` lives in a new namespace, up, holding `cidr`.
    pub fn add_lan(&self, host_if: &str, cidr: &str) -> Netns {
        let lan = Netns::new("lan");
        self.ip(&["link", "add", host_if, "type", "veth", "peer", "name", "lan0", "netns", &lan.name]);
        lan.ip(&["addr", "add", cidr, "dev", "lan0"]);
        lan.ip(&["link", "set", "lan0", "up"]);
        lan
    }
}

/// The steps `pipework --dry-run <args>` prints in `host`, one per line.
pub fn planned_steps(host: &Netns, args: &[&str]) -> Vec<String> {
    let mut full = vec!["--dry-run"];
    full.extend_from_slice(args);
    let out = pipework(host, &full);
    assert_success(&out);
    stdout(&out).lines().map(str::to_owned).collect()
}

/// The name a plan gives the link of `kind` (macvlan, dummy, vlan) that it
/// makes on the host: the `dev`/`name` of its `ip link add ... type <kind>`.
/// For a netns guest the number in it is the tool's own, so tests read it
/// here rather than compute it.
#[track_caller]
pub fn planned_link(plan: &[String], kind: &str) -> String {
    let type_kind = format!("type {kind}");
    plan.iter()
        .filter(|step| step.starts_with("ip link add ") && step.contains(&type_kind))
        .find_map(|step| {
            let words: Vec<&str> = step.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "dev" || *w == "name")?;
            words.get(at + 1).map(|w| (*w).to_owned())
        })
        .unwrap_or_else(|| panic!("no `ip link add ... {type_kind}` step in the plan:\n{}", plan.join("\n")))
}

/// `ip -d -j link show dev <name>`: the whole record, link_index and
/// link_netnsid included.
pub fn link_detail(ns: &dyn Ns, name: &str) -> Value {
    ns.ip_j(&["-d", "link", "show", "dev", name])[0].clone()
}

/// The guest's `ctr_if` is a macvlan in bridge mode whose lower device is
/// `parent` of `host`, with the parent's MTU, up, holding `cidr`; the parent
/// is up too (a macvlan on a down parent passes nothing).
#[track_caller]
pub fn assert_macvlan_on(host: &dyn Ns, parent: &str, guest: &dyn Ns, ctr_if: &str, cidr: &str) {
    let p = host.must_link(parent);
    assert!(p.is_up(), "parent is down: {p:?}");
    let g = guest.must_link(ctr_if);
    assert_eq!(g.kind.as_deref(), Some("macvlan"), "{g:?}");
    assert_eq!(link_info_data(guest, ctr_if)["mode"], "bridge", "{g:?}");
    assert_eq!(g.mtu, p.mtu, "{ctr_if} does not have {parent}'s MTU");
    // The lower device lives in another namespace: link_index is its ifindex there.
    let detail = link_detail(guest, ctr_if);
    assert!(detail["link_netnsid"].is_number(), "{ctr_if}'s lower device is in the guest: {detail}");
    assert_eq!(detail["link_index"].as_u64(), Some(p.ifindex), "{ctr_if} is not on {parent}: {detail}");
    assert!(g.is_up(), "{ctr_if} is down: {g:?}");
    let family = if cidr.contains(':') { Family::V6 } else { Family::V4 };
    assert_eq!(guest.cidrs(ctr_if, family), vec![cidr.to_owned()]);
}
