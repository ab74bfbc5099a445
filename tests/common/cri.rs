//! A Kubernetes node's runtime: Debian's containerd 1.6 with its built-in
//! CRI plugin, private to a test, driven over the CRI v1 API as a kubelet
//! drives it.
//!
//! containerd runs in a throwaway network namespace (the node) and in a
//! mount namespace of its own where `/run` and `/var/lib` are the test's
//! directories: containerd 1.6 puts its shims' sockets under
//! /run/containerd whatever its config says, and libcni caches results
//! under /var/lib/cni. A holder process keeps that mount namespace, so the
//! pods' netns mounts live on across a containerd restart, as on a node.
//! Entered with `nsenter` (not `ip netns exec`, which mounts a fresh /sys):
//! the cgroup mounts runc needs stay visible. The CNI bin dir holds the
//! reference plugins and pipework; the image is imported from a
//! busybox-static root, as tests/run.sh builds it, no registry.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use serde_json::{json, Value};

use super::cgroups::subdirs;
use super::cli::{PIPEWORK, STATE_DIR_ENV};
use super::commands::{run, which};
use super::cri_api::*;
use super::daemons::{terminate, wait_for};
use super::docker_host::busybox_root;
use super::netns::Netns;
use super::podman::{host_local_allocations, CNI_PLUGINS};
use super::readback::Ns;
use super::tempdir::TempDir;

/// The image of the pods (sandbox and containers): busybox, `sleep` its command.
pub const CRI_IMAGE: &str = "pipework-cri:latest";

/// How long one CRI call may take (a RunPodSandbox among ten at once).
const CALL: Duration = Duration::from_secs(120);

/// A node: its namespace, containerd and the files of its plugins. Its
/// pods are stopped and removed, containerd and everything it started
/// killed, on drop.
pub struct Cri {
    holder: Child,
    daemon: Option<Child>,
    pub dir: TempDir,
    pub node: Netns,
}

/// A pod sandbox: its ID and the configuration it was made with.
pub struct Pod {
    pub id: String,
    pub config: PodSandboxConfig,
}

/// A pod's network namespace, entered through its sandbox's pid.
pub struct PodNs {
    pub pid: u32,
}

impl Ns for PodNs {
    fn enter(&self) -> Vec<String> {
        vec!["nsenter".into(), format!("--net=/proc/{}/ns/net", self.pid)]
    }
}

impl Cri {
    /// A node whose conf_dir holds `conflist` (its `ipam` dataDir is
    /// [`Cri::ipam_dir`]'s, the caller's to set), containerd answering and
    /// the image imported.
    pub fn start(conflist: impl FnOnce(&Cri) -> Value) -> Cri {
        let node = Netns::new("cri");
        let dir = TempDir::new("cri");
        for sub in ["run", "varlib", "bin", "net.d", "state"] {
            std::fs::create_dir(dir.path.join(sub)).expect("mkdir");
        }
        for plugin in std::fs::read_dir(CNI_PLUGINS).expect("the reference plugins").flatten() {
            std::os::unix::fs::symlink(plugin.path(), dir.path.join("bin").join(plugin.file_name()))
                .expect("link a plugin");
        }
        std::os::unix::fs::symlink(PIPEWORK, dir.path.join("bin/pipework")).expect("link pipework");
        std::fs::write(dir.path.join("config.toml"), config(&dir)).expect("config.toml");
        // The mount namespace's holder: /run and /var/lib bound, then it
        // waits on a FIFO no one writes, its command line naming the dir.
        run(&["mkfifo", &dir.join("hold")]);
        let binds =
            r#"mount --bind "$0/run" /run && mount --bind "$0/varlib" /var/lib && exec cat "$0/hold""#;
        let holder = Command::new(which("nsenter"))
            .args([&format!("--net={}", node.path()), "unshare", "--mount", "--propagation", "private"])
            .args(["sh", "-c", binds, dir.arg()])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the mount namespace's holder");
        let pid = holder.id();
        let mut cri = Cri { holder, daemon: None, dir, node };
        wait_for("the mount namespace's holder", Duration::from_secs(10), || {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (comm.trim() == "cat").then_some(())
        });
        let list = conflist(&cri);
        std::fs::write(cri.dir.path.join("net.d/10-test.conflist"), list.to_string()).expect("conflist");
        cri.launch();
        cri.import_image();
        cri
    }

    /// containerd's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path.join("containerd.sock")
    }

    /// host-local's `dataDir` for this node.
    pub fn ipam_dir(&self) -> String {
        self.dir.join("ipam")
    }

    /// pipework's PIPEWORK_STATE_DIR in containerd's environment.
    pub fn state_dir(&self) -> String {
        self.dir.join("state")
    }

    /// Starts containerd in the holder's namespaces; waits until the CRI answers.
    pub fn launch(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path.join("containerd.log"))
            .expect("containerd log");
        let target = self.holder.id().to_string();
        let child = Command::new(which("nsenter"))
            .args([
                "--target",
                &target,
                "--mount",
                "--net",
                "containerd",
                "--config",
                &self.dir.join("config.toml"),
            ])
            .env(STATE_DIR_ENV, self.state_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.daemon = Some(child);
        wait_for("containerd's CRI to answer", Duration::from_secs(60), || {
            if let Some(status) = self.daemon.as_mut().and_then(|c| c.try_wait().expect("wait")) {
                panic!("containerd exited ({status}):\n{}", self.log_trouble());
            }
            self.try_call::<_, VersionResponse>("Version", &VersionRequest { version: "v1".into() }).ok()
        });
    }

    /// SIGTERM, as a service manager stops it; its shims and pods live on.
    pub fn stop_containerd(&mut self) {
        if let Some(child) = self.daemon.take() {
            terminate(child, Duration::from_secs(30));
        }
    }

    pub fn restart_containerd(&mut self) {
        self.stop_containerd();
        self.launch();
    }

    fn try_call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        request: &Req,
    ) -> Result<Resp, String> {
        call(&self.socket(), method, request, CALL)
    }

    /// A call that must succeed; containerd's log in the panic.
    #[track_caller]
    pub fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        request: &Req,
    ) -> Resp {
        self.try_call(method, request).unwrap_or_else(|e| {
            panic!("CRI {e}\n--- containerd.log (its last errors and warnings)\n{}", self.log_trouble())
        })
    }

    /// The last errors and warnings (or, if none, lines) of containerd's log.
    fn log_trouble(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let trouble: Vec<&str> =
            lines.iter().copied().filter(|l| l.contains("level=error") || l.contains("level=warn")).collect();
        let shown = if trouble.is_empty() { &lines } else { &trouble };
        shown[shown.len().saturating_sub(20)..].join("\n")
    }

    /// RunPodSandbox of pod `name` publishing `ports`, as a kubelet asks.
    #[track_caller]
    pub fn run_pod(&self, name: &str, ports: Vec<PortMapping>) -> Pod {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            port_mappings: ports,
            labels: Default::default(),
            // Its cgroups (and its containers') under one of the test's own.
            linux: Some(LinuxPodSandboxConfig { cgroup_parent: format!("/{}", self.dir.name()) }),
        };
        let made: RunPodSandboxResponse = self.call(
            "RunPodSandbox",
            &RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: "".into() },
        );
        Pod { id: made.pod_sandbox_id, config }
    }

    /// PodSandboxStatus, verbose.
    pub fn status(&self, pod: &Pod) -> PodSandboxStatusResponse {
        self.call(
            "PodSandboxStatus",
            &PodSandboxStatusRequest { pod_sandbox_id: pod.id.clone(), verbose: true },
        )
    }

    /// The pod's network namespace, through its sandbox process's pid.
    pub fn pod_ns(&self, pod: &Pod) -> PodNs {
        let status = self.status(pod);
        let info: Value =
            serde_json::from_str(status.info.get("info").expect("verbose info")).expect("info is JSON");
        PodNs { pid: info["pid"].as_u64().expect("the sandbox's pid") as u32 }
    }

    /// A container of the image in `pod` running `command`, started; its ID.
    pub fn container(&self, pod: &Pod, name: &str, command: &[&str]) -> String {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(ImageSpec { image: CRI_IMAGE.into() }),
            command: command.iter().map(|s| s.to_string()).collect(),
        };
        let made: CreateContainerResponse = self.call(
            "CreateContainer",
            &CreateContainerRequest {
                pod_sandbox_id: pod.id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.config.clone()),
            },
        );
        let _: Empty =
            self.call("StartContainer", &ContainerIdRequest { container_id: made.container_id.clone() });
        made.container_id
    }

    /// ExecSync of `cmd` in a container.
    pub fn exec(&self, container: &str, cmd: &[&str]) -> ExecSyncResponse {
        self.call(
            "ExecSync",
            &ExecSyncRequest {
                container_id: container.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 30,
            },
        )
    }

    /// StopPodSandbox: its containers stopped, its network torn down.
    #[track_caller]
    pub fn stop_pod(&self, id: &str) {
        let _: Empty = self.call("StopPodSandbox", &PodSandboxIdRequest { pod_sandbox_id: id.into() });
    }

    /// StopPodSandbox then RemovePodSandbox, as a kubelet deletes a pod.
    #[track_caller]
    pub fn remove_pod(&self, id: &str) {
        self.stop_pod(id);
        let _: Empty = self.call("RemovePodSandbox", &PodSandboxIdRequest { pod_sandbox_id: id.into() });
    }

    pub fn pods(&self) -> Vec<PodSandbox> {
        self.call::<_, ListPodSandboxResponse>("ListPodSandbox", &ListPodSandboxRequest {}).items
    }

    /// The addresses host-local has handed out on this node.
    pub fn allocations(&self) -> Vec<String> {
        host_local_allocations(Path::new(&self.ipam_dir()))
    }

    /// pipework's records (its state dir's files).
    pub fn records(&self) -> Vec<String> {
        names(Path::new(&self.state_dir())).into_iter().filter(|n| n.ends_with(".json")).collect()
    }

    /// libcni's cached results (/var/lib/cni/results of the node).
    pub fn cni_cache(&self) -> Vec<String> {
        names(&self.dir.path.join("varlib/cni/results"))
    }

    /// tests/run.sh's root (busybox-static and its applets) as a docker
    /// archive, `sleep` its command (a sandbox must stay up), imported into
    /// containerd's k8s.io namespace.
    fn import_image(&self) {
        let root = self.dir.path.join("image/root");
        busybox_root(&root, &["sh", "ip", "ping", "sleep", "cat", "ls", "mkdir", "httpd"]);
        let archive = self.dir.path.join("image/archive");
        std::fs::create_dir(&archive).expect("archive dir");
        let layer = archive.join("layer.tar");
        run(&["tar", "-C", &root.to_string_lossy(), "-cf", &layer.to_string_lossy(), "."]);
        let sum = run(&["sha256sum", &layer.to_string_lossy()]);
        let diff_id = format!("sha256:{}", sum.split_whitespace().next().expect("a digest"));
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sleep", "1000000"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        std::fs::write(archive.join("config.json"), config.to_string()).expect("image config");
        let manifest = json!([{"Config": "config.json", "RepoTags": [CRI_IMAGE], "Layers": ["layer.tar"]}]);
        std::fs::write(archive.join("manifest.json"), manifest.to_string()).expect("manifest");
        let tar = self.dir.join("image/image.tar");
        run(&[
            "tar",
            "-C",
            &archive.to_string_lossy(),
            "-cf",
            &tar,
            "manifest.json",
            "config.json",
            "layer.tar",
        ]);
        let socket = self.socket();
        let socket = socket.to_string_lossy();
        run(&["ctr", "-a", &socket, "-n", "k8s.io", "images", "import", "--snapshotter", "native", &tar]);
    }
}

fn names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// containerd's config: everything under `dir` (its `opt` plugin's dir
/// too, /opt/containerd by default); the CRI with the native
/// snapshotter (a temp dir may not take overlayfs) and without setting
/// oom_score_adj below its own (this machine's containers refuse that).
fn config(dir: &TempDir) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "{image}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
"#,
        root = dir.join("root"),
        state = dir.join("containerd-state"),
        socket = dir.join("containerd.sock"),
        opt = dir.join("opt"),
        image = CRI_IMAGE,
        bin = dir.join("bin"),
        conf = dir.join("net.d"),
    )
}

/// Kills what the node of `dir` runs, as its drop does and as the sweep of
/// a killed run does: the processes naming `dir` on their command line
/// (containerd, its shims, the mount namespace's holder) and those in its
/// cgroups (sandboxes, containers); then removes the cgroups.
pub(crate) fn kill_node(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let groups: Vec<PathBuf> = subdirs(Path::new(CGROUPS)).into_iter().map(|h| h.join(&name)).collect();
    let me = std::process::id() as i32;
    for _ in 0..50 {
        let mut pids: Vec<i32> = groups.iter().flat_map(|g| procs_below(g)).collect();
        let procs = std::fs::read_dir("/proc").map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
        pids.extend(procs.iter().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle)
        }));
        pids.retain(|p| *p != me);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) of a process of this node (its cgroup or command line).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        sleep(Duration::from_millis(40));
    }
    for group in groups {
        remove_cgroup(&group);
    }
}

/// Where the cgroup hierarchies are mounted, one directory each (cgroup v1)
/// or the one (v2, whose files are no directories).
const CGROUPS: &str = "/sys/fs/cgroup";

fn procs_below(group: &Path) -> Vec<i32> {
    let listed = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
    let mut pids: Vec<i32> = listed.lines().filter_map(|l| l.trim().parse().ok()).collect();
    pids.extend(subdirs(group).iter().flat_map(|g| procs_below(g)));
    pids
}

fn remove_cgroup(group: &Path) {
    for child in subdirs(group) {
        remove_cgroup(&child);
    }
    let _ = std::fs::remove_dir(group);
}

impl Drop for Cri {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            // Each pod's teardown, as the kubelet would: its CNI DEL runs.
            if let Ok(list) =
                self.try_call::<_, ListPodSandboxResponse>("ListPodSandbox", &ListPodSandboxRequest {})
            {
                for pod in list.items {
                    let id = PodSandboxIdRequest { pod_sandbox_id: pod.id };
                    let _ = self.try_call::<_, Empty>("StopPodSandbox", &id);
                    let _ = self.try_call::<_, Empty>("RemovePodSandbox", &id);
                }
            }
        }
        self.stop_containerd();
        kill_node(&self.dir.path);
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
