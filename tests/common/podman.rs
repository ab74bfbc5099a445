//! Podman with its CNI backend, for the CNI tests: each test gets a network
//! config dir of its own and runs Podman inside its "docker host"
//! namespace, so the CNI plugins make their bridges and veths there, never
//! on the machine's own network.
//!
//! Storage is shared (vfs, under [`ROOT`]): tests/run.sh imports the test
//! image there. The engine settings this machine needs (no systemd: cgroupfs
//! and a file for events; runc; ulimits below its hard limits, which
//! Podman's defaults exceed) go into a containers.conf per test, with the
//! test's CNI plugin dirs.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use super::commands::quiet;
use super::containers::{enter_pid, IMAGE};
use super::daemons::wait_for;
use super::names::owned_name;
use super::netns::Netns;
use super::readback::Ns;
use super::sweep::init;
use super::tempdir::TempDir;

/// Podman's image and container storage for the tests (`--root`).
pub const ROOT: &str = "/var/lib/pipework-test/podman";
/// Its run state (`--runroot`).
const RUNROOT: &str = "/run/pipework-test/podman";
/// The reference CNI plugins (Debian's containernetworking-plugins).
pub const CNI_PLUGINS: &str = "/usr/lib/cni";

/// Podman set up for one test, its files removed on drop.
pub struct Podman {
    dir: TempDir,
    /// The path of the namespace Podman runs in.
    host: String,
}

impl Podman {
    /// Podman running in `host`, finding CNI plugins in `plugin_dirs`.
    pub fn new(host: &Netns, plugin_dirs: &[&str]) -> Podman {
        init();
        let p = Podman { dir: TempDir::new("podman"), host: host.path() };
        std::fs::create_dir(p.network_dir()).expect("mkdir net.d");
        let dirs = serde_json::to_string(plugin_dirs).expect("plugin dirs");
        std::fs::write(p.dir.join("containers.conf"), containers_conf(&dirs)).expect("write containers.conf");
        p
    }

    /// Where its CNI network configurations (`*.conflist`) go.
    pub fn network_dir(&self) -> PathBuf {
        self.dir.path.join("net.d")
    }

    /// Writes the network `name` (a conflist, `name` filled in).
    pub fn add_network(&self, name: &str, mut conflist: Value) {
        conflist["name"] = json!(name);
        let text = serde_json::to_string_pretty(&conflist).expect("conflist");
        std::fs::write(self.network_dir().join(format!("{name}.conflist")), text).expect("write conflist");
    }

    /// A network of the reference `bridge` plugin on `bridge` with
    /// host-local addresses from `subnet` (state kept in this test's dir);
    /// returns its name.
    pub fn add_bridge_network(&self, bridge: &str, subnet: &str) -> String {
        let name = owned_name("net");
        let ipam = json!({
            "type": "host-local",
            "ranges": [[{ "subnet": subnet }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "dataDir": self.dir.join("ipam"),
        });
        let plugin =
            json!({ "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false, "ipam": ipam });
        self.add_network(&name, json!({ "cniVersion": "0.4.0", "plugins": [plugin] }));
        name
    }

    /// The addresses host-local has handed out (its files named by address).
    pub fn ipam_allocations(&self) -> Vec<String> {
        host_local_allocations(&self.dir.path.join("ipam"))
    }

    /// argv for `podman <args>` as this test runs it.
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let net_dir = self.network_dir().to_string_lossy().into_owned();
        let mut argv: Vec<String> = vec!["nsenter".into(), format!("--net={}", self.host)];
        argv.extend(base_argv());
        argv.extend(["--network-backend".into(), "cni".into(), "--network-config-dir".into(), net_dir]);
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// `podman <args>`; its failure is an answer.
    pub fn podman(&self, args: &[&str]) -> Output {
        let argv = self.argv(args);
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        cmd.stdin(std::process::Stdio::null()).output().expect("cannot run podman")
    }

    /// `podman <args>`, which must succeed; returns stdout.
    #[track_caller]
    pub fn must(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman system service`: its Docker-compatible Engine API on a
    /// socket of this test's, until dropped.
    pub fn service(&self) -> PodmanService {
        let socket = self.dir.join("podman.sock");
        let argv = self.argv(&["system", "service", "--time=0", &format!("unix://{socket}")]);
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        cmd.stderr(std::process::Stdio::null());
        let child = cmd.spawn().expect("spawn podman system service");
        let service = PodmanService { child, socket };
        wait_for("podman's socket to answer", Duration::from_secs(30), || {
            let argv = ["docker", "-H", &service.host(), "version", "--format", "{{.Server.Version}}"];
            quiet(&argv).status.success().then_some(())
        });
        service
    }

    /// `podman run -d --network <network> <extra> <test image> sleep`: a
    /// container that lives until dropped.
    pub fn run(&self, prefix: &str, network: &str, extra: &[&str]) -> PodmanContainer<'_> {
        let mut c = PodmanContainer { name: owned_name(prefix), pid: 0, podman: self };
        let mut args = vec!["run", "-d", "--name", &c.name, "--network", network];
        args.extend_from_slice(extra);
        args.extend([IMAGE, "/bin/sleep", "1000000"]);
        self.must(&args);
        c.pid = c.inspect("{{.State.Pid}}").parse().expect("pid");
        c
    }
}

fn containers_conf(plugin_dirs: &str) -> String {
    format!(
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
         [network]\ncni_plugin_dirs = {plugin_dirs}\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n"
    )
}

fn base_argv() -> Vec<String> {
    ["podman", "--root", ROOT, "--runroot", RUNROOT, "--storage-driver", "vfs"].map(String::from).to_vec()
}

/// The addresses host-local handed out under its `dataDir`: its files are
/// named by address.
pub(crate) fn host_local_allocations(dir: &std::path::Path) -> Vec<String> {
    let mut ips: Vec<String> = walk(dir)
        .into_iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    ips.sort();
    ips
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

/// Removes the containers of killed test runs (`stale` names them).
pub(crate) fn sweep(stale: &dyn Fn(&str) -> bool) {
    if !std::path::Path::new(ROOT).exists() {
        return;
    }
    let dir = TempDir::new("podswp");
    let conf = dir.join("containers.conf");
    std::fs::write(&conf, containers_conf(&format!("[\"{CNI_PLUGINS}\"]"))).expect("write containers.conf");
    let podman = |args: &[&str]| {
        let mut argv = base_argv();
        argv.extend(args.iter().map(|a| a.to_string()));
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).env("CONTAINERS_CONF", &conf).stdin(std::process::Stdio::null());
        cmd.output().ok().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    };
    let names = podman(&["ps", "-a", "--format", "{{.Names}}"]);
    for name in names.lines().filter(|n| stale(n)) {
        podman(&["rm", "-f", "-t", "0", name]);
    }
}

/// Podman's Engine API service, killed on drop.
pub struct PodmanService {
    child: std::process::Child,
    socket: String,
}

impl PodmanService {
    /// `unix://<socket>`, for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket)
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Podman container, removed (`podman rm -f`) on drop.
pub struct PodmanContainer<'a> {
    pub name: String,
    pub pid: u32,
    pub podman: &'a Podman,
}

impl PodmanContainer<'_> {
    /// `podman inspect -f <format>`.
    pub fn inspect(&self, format: &str) -> String {
        self.podman.must(&["inspect", "-f", format, &self.name]).trim().to_owned()
    }

    /// `podman rm -f` now, so a test can check what removal leaves.
    pub fn remove(self) {}
}

impl Ns for PodmanContainer<'_> {
    fn enter(&self) -> Vec<String> {
        enter_pid(self.pid)
    }
}

impl Drop for PodmanContainer<'_> {
    fn drop(&mut self) {
        let _ = self.podman.podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}
