//! A Docker host as Docker ships it: a namespace whose `ip_forward` starts
//! at 0, as on a fresh machine, and a dockerd with its defaults (iptables
//! on, its own docker0) running in it. Docker turns forwarding on at start
//! and, having done so, sets FORWARD's policy to DROP; with br_netfilter,
//! frames bridged between two ports of a bridge then meet that policy.
//!
//! dockerd is started in the namespace through `nsenter --net=` (not `ip
//! netns exec`, which mounts a fresh /sys and hides the cgroup mounts it
//! needs), with its own data root, exec root, pid file and socket under a
//! temp dir; the test image is imported into it from a busybox-static root,
//! as tests/run.sh builds it. Everything goes on drop.

use std::fs::File;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::cli::pipework_env;
use super::commands::{quiet, run, which};
use super::containers::IMAGE;
use super::daemons::{terminate, wait_for};
use super::netns::Netns;
use super::readback::Ns;
use super::tempdir::TempDir;

/// A dockerd of a test's own: its data root, exec root, pid file and
/// socket in a temp dir, started by `argv` (the program, or what enters a
/// namespace and runs it) with `options`. Stopped, its containers and
/// containerd with it, on drop.
pub(crate) struct Dockerd {
    pub dir: TempDir,
    argv: Vec<String>,
    daemon: Option<Child>,
}

impl Dockerd {
    pub fn start(prefix: &str, argv: &[&str], options: &[&str]) -> Dockerd {
        let argv = argv.iter().chain(options).map(|a| a.to_string()).collect();
        let mut engine = Dockerd { dir: TempDir::new(prefix), argv, daemon: None };
        engine.launch();
        engine
    }

    /// `unix://<socket>`, for DOCKER_HOST.
    pub fn socket(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock"))
    }

    /// The docker CLI against this daemon; must succeed.
    pub fn cli(&self, args: &[&str]) -> String {
        let host = self.socket();
        let mut argv = vec!["docker", "-H", host.as_str()];
        argv.extend_from_slice(args);
        run(&argv)
    }

    pub fn launch(&mut self) {
        let log = File::create(self.dir.path.join("dockerd.log")).expect("dockerd log");
        let socket = self.socket();
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .args(["--data-root", &self.dir.join("data"), "--exec-root", &self.dir.join("exec")])
            .args(["--pidfile", &self.dir.join("dockerd.pid"), "-H", &socket])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        self.daemon = Some(child);
        wait_for("the private dockerd to answer", Duration::from_secs(60), || {
            let argv = ["docker", "-H", &socket, "version", "--format", "{{.Server.Version}}"];
            quiet(&argv).status.success().then_some(())
        });
    }

    /// SIGTERM, as a service manager stops it, and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(child) = self.daemon.take() {
            terminate(child, Duration::from_secs(30));
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let ids = quiet(&["docker", "-H", &self.socket(), "ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = quiet(&["docker", "-H", &self.socket(), "rm", "-f", id]);
            }
        }
        self.stop();
        // Its containerd, if it outlived it.
        let pidfile = self.dir.path.join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) with the pid the private containerd wrote.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Fields drop in order: the engine stops before its namespace goes.
pub struct DockerHost {
    engine: Dockerd,
    pub ns: Netns,
}

impl DockerHost {
    /// The host, its engine answering and the image imported; None, with
    /// the reason printed, where the kernel has no br_netfilter (the
    /// failure this host is for cannot happen there).
    pub fn start() -> Option<DockerHost> {
        let ns = Netns::new("dkh");
        if !has_br_netfilter(&ns) {
            return None;
        }
        ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
        let enter = format!("--net={}", ns.path());
        // Its defaults but the storage: the tests' temp dirs may not take overlayfs.
        let engine =
            Dockerd::start("dkh", &[&which("nsenter"), &enter, &which("dockerd")], &["--storage-driver=vfs"]);
        let host = DockerHost { engine, ns };
        host.import_image();
        Some(host)
    }

    /// `unix://<socket>`, for DOCKER_HOST.
    pub fn socket(&self) -> String {
        self.engine.socket()
    }

    /// The docker CLI against this engine; must succeed.
    pub fn docker(&self, args: &[&str]) -> String {
        self.engine.cli(args)
    }

    /// pipework in the host's namespace, DOCKER_HOST this engine.
    pub fn pipework(&self, args: &[&str]) -> Output {
        let socket = self.socket();
        pipework_env(&self.ns, args, &[("DOCKER_HOST", socket.as_str())])
    }

    /// `iptables`/`ip6tables`/... `args` in the host's namespace; stdout.
    pub fn tables(&self, tool: &str, args: &[&str]) -> String {
        let mut argv = vec![tool];
        argv.extend_from_slice(args);
        self.ns.must(&argv)
    }

    /// A container of the test image made as the runbook makes it
    /// (`docker create --net=none`), then started; its name.
    pub fn container(&self, name: &str) -> String {
        self.container_with(name, &[])
    }

    /// The same with more `docker create` options (a watcher's label).
    pub fn container_with(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", "--net=none", "--name", name];
        args.extend_from_slice(extra);
        args.extend([IMAGE, "sleep", "100000"]);
        self.docker(&args);
        self.docker(&["start", name]);
        name.to_string()
    }

    /// Stops dockerd (SIGTERM, as a service manager does) and starts it
    /// again; its containers stop with it, as on a host without live-restore.
    pub fn restart_dockerd(&mut self) {
        self.stop_dockerd();
        self.start_dockerd();
    }

    /// Stops dockerd (SIGTERM) and waits until it is gone.
    pub fn stop_dockerd(&mut self) {
        self.engine.stop();
    }

    /// Starts the stopped dockerd again and waits until it answers.
    pub fn start_dockerd(&mut self) {
        self.engine.launch();
    }

    /// tests/run.sh's image: a busybox-static root, `docker import`ed.
    fn import_image(&self) {
        let root = self.engine.dir.path.join("root");
        busybox_root(&root, &["sh", "ip", "ping", "sleep", "cat", "ls", "arping", "udhcpc", "mknod"]);
        let tar = self.engine.dir.join("root.tar");
        run(&["tar", "-C", &root.to_string_lossy(), "-cf", &tar, "."]);
        self.docker(&["import", &tar, IMAGE]);
    }
}

/// An image's root as tests/run.sh makes it: busybox-static in /bin, with
/// links for `applets`.
pub(crate) fn busybox_root(root: &std::path::Path, applets: &[&str]) {
    std::fs::create_dir_all(root.join("bin")).expect("image root");
    std::fs::copy(which("busybox"), root.join("bin/busybox")).expect("busybox");
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("applet");
    }
}

/// Whether br_netfilter hands `ns`'s bridged frames to iptables
/// (/proc/sys/net/bridge there, after a `modprobe br_netfilter` if it is
/// missing); if not, says the test is skipped and why.
pub fn has_br_netfilter(ns: &Netns) -> bool {
    let there = || ns.exec(&["test", "-d", "/proc/sys/net/bridge"]).status.success();
    if !there() {
        let _ = quiet(&["modprobe", "br_netfilter"]);
    }
    let there = there();
    if !there {
        eprintln!("skipped: the kernel has no br_netfilter (no /proc/sys/net/bridge)");
    }
    there
}
