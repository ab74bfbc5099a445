//! Running CNI plugins as a runtime would: inside a test's host namespace,
//! environment and configuration as the spec passes them, with a plugin dir
//! holding pipework in front of the reference plugins (/usr/lib/cni), and
//! host-local's and pipework's state in the test's own temp dir.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};

use serde_json::{json, Value};

use super::cli::{pipework_env, PIPEWORK, STATE_DIR_ENV};
use super::commands::command;
use super::netns::Netns;
use super::podman::{host_local_allocations, CNI_PLUGINS};
use super::tempdir::TempDir;

/// A node: its host namespace and the files its plugins keep.
pub struct CniNode {
    pub host: Netns,
    pub dir: TempDir,
}

/// Where a call attaches: container ID, netns path ("" for none), interface.
#[derive(Clone)]
pub struct Attach {
    pub id: String,
    pub netns: String,
    pub ifname: String,
}

impl Attach {
    /// `ifname` in the namespace `ctr`, whose name is the container ID.
    pub fn to(ctr: &Netns, ifname: &str) -> Attach {
        Attach { id: ctr.name.clone(), netns: ctr.path(), ifname: ifname.into() }
    }
}

impl CniNode {
    pub fn new() -> CniNode {
        let node = CniNode { host: Netns::new("cni"), dir: TempDir::new("cni") };
        std::fs::create_dir(node.dir.join("bin")).expect("mkdir bin");
        std::os::unix::fs::symlink(PIPEWORK, node.dir.join("bin/pipework")).expect("symlink pipework");
        node
    }

    /// The plugin dir holding pipework (for CNI_PATH and Podman).
    pub fn bin_dir(&self) -> String {
        self.dir.join("bin")
    }

    /// CNI_PATH: pipework's dir, then the reference plugins.
    pub fn cni_path(&self) -> String {
        format!("{}:{CNI_PLUGINS}", self.bin_dir())
    }

    /// host-local's `dataDir` for this node.
    pub fn ipam_dir(&self) -> String {
        self.dir.join("ipam")
    }

    /// pipework's PIPEWORK_STATE_DIR for this node.
    pub fn state_dir(&self) -> String {
        self.dir.join("state")
    }

    /// The program of plugin `name`: pipework's link, or a reference plugin.
    pub fn plugin(&self, name: &str) -> String {
        match name {
            "pipework" => self.dir.join("bin/pipework"),
            other => format!("{CNI_PLUGINS}/{other}"),
        }
    }

    /// Runs plugin `name` for `command` with `conf` on stdin; `extra` adds
    /// or overrides variables (an empty value removes one).
    pub fn call(
        &self,
        name: &str,
        command_name: &str,
        at: Option<&Attach>,
        conf: &Value,
        extra: &[(&str, &str)],
    ) -> Output {
        self.spawn(name, command_name, at, conf, extra).wait_with_output().expect("wait for plugin")
    }

    /// The same, left running: `ip netns exec` execs the plugin in place,
    /// so the child's pid is the plugin's own.
    pub fn spawn(
        &self,
        name: &str,
        command_name: &str,
        at: Option<&Attach>,
        conf: &Value,
        extra: &[(&str, &str)],
    ) -> Child {
        let mut vars: Vec<(String, String)> = vec![
            ("CNI_COMMAND".into(), command_name.into()),
            ("CNI_PATH".into(), self.cni_path()),
            ("PIPEWORK_STATE_DIR".into(), self.state_dir()),
        ];
        if let Some(at) = at {
            vars.push(("CNI_CONTAINERID".into(), at.id.clone()));
            vars.push(("CNI_NETNS".into(), at.netns.clone()));
            vars.push(("CNI_IFNAME".into(), at.ifname.clone()));
        }
        for (k, v) in extra {
            vars.retain(|(key, _)| key != k);
            if !v.is_empty() {
                vars.push((k.to_string(), v.to_string()));
            }
        }
        let program = self.plugin(name);
        let mut argv: Vec<&str> = vec!["ip", "netns", "exec", &self.host.name];
        argv.push(&program);
        let mut cmd = command(&argv);
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd.envs(vars).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn plugin");
        child.stdin.take().expect("stdin").write_all(conf.to_string().as_bytes()).expect("write stdin");
        child
    }

    /// ADD that must succeed; its result.
    #[track_caller]
    pub fn add(&self, name: &str, at: &Attach, conf: &Value) -> Value {
        let out = self.call(name, "ADD", Some(at), conf, &[]);
        assert_plugin_ok(name, "ADD", &out);
        serde_json::from_slice(&out.stdout).expect("ADD result is JSON")
    }

    /// The addresses host-local has handed out on this node.
    pub fn allocations(&self) -> Vec<String> {
        host_local_allocations(&PathBuf::from(self.ipam_dir()))
    }

    /// The records in pipework's state dir, by file name, read as JSON.
    pub fn records(&self) -> Vec<(String, Value)> {
        let Ok(dir) = std::fs::read_dir(self.state_dir()) else { return Vec::new() };
        let mut files: Vec<(String, Value)> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("read a record");
                let name = p.file_name().expect("a file name").to_string_lossy().into_owned();
                (name, serde_json::from_str(&text).expect("a record is JSON"))
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    }

    /// The attachments on record: file name, interface, network.
    pub fn attachments(&self) -> Vec<(String, String, String)> {
        let mut found = Vec::new();
        for (file, record) in self.records() {
            for iface in record["interfaces"].as_array().expect("interfaces") {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                found.push((file.clone(), text(&iface["name"]), text(&iface["cni"]["network"])));
            }
        }
        found
    }

    /// `pipework ARGS` on the command line of this node, with its records.
    pub fn pipework(&self, args: &[&str]) -> Output {
        pipework_env(&self.host, args, &[(STATE_DIR_ENV, &self.state_dir())])
    }
}

/// The plugin exited 0; otherwise both streams in the panic.
#[track_caller]
pub fn assert_plugin_ok(name: &str, command_name: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{name} {command_name}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CNI error object a failed call printed on stdout (exit status not 0).
#[track_caller]
pub fn cni_error(out: &Output) -> Value {
    assert!(!out.status.success(), "expected a failure, got: {}", String::from_utf8_lossy(&out.stdout));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not a CNI error object ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// `conf` with `extra`'s keys set over its own (a test's variation on a
/// base configuration).
pub fn with_keys(mut conf: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("extra is an object") {
        conf[k] = v.clone();
    }
    conf
}

/// The tests' bridge-plugin configuration ("testnet": gateway, default
/// route, host-local with an IPv4 and an IPv6 range, DNS) with `extra`
/// merged in; `plugin` is "bridge" or "pipework".
pub fn testnet_conf(node: &CniNode, plugin: &str, version: &str, extra: Value) -> Value {
    with_keys(
        json!({
            "cniVersion": version,
            "name": "testnet",
            "type": plugin,
            "bridge": "cni0",
            "isGateway": true,
            "isDefaultGateway": true,
            "ipam": {
                "type": "host-local",
                "dataDir": node.ipam_dir(),
                "ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]],
            },
            "dns": {"nameservers": ["10.77.0.1"], "search": ["example.org"]},
        }),
        extra,
    )
}
