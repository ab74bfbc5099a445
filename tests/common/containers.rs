//! Docker containers with no network of their own, for pipework to plumb.

use std::process::Output;

use super::commands::{quiet, run};
use super::names::{is_owned, owned_name};
use super::netns::netns_entries;
use super::readback::Ns;
use super::sweep::init;

pub const IMAGE: &str = "pipework-test:latest";

/// The guest namespace of a process, entered with nsenter.
pub(crate) fn enter_pid(pid: u32) -> Vec<String> {
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
        let mut argv = vec!["docker"];
        argv.extend(docker_run(&c.name, docker_args));
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

/// The words after `docker` (or `docker -H <host>`) that run the test image
/// as container `name`: detached, no network of its own, NET_ADMIN, with
/// `docker_args` (`--label`s...), sleeping until removed. The tests' and
/// the benches' containers are all made so.
pub fn docker_run<'a>(name: &'a str, docker_args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["run", "-d", "--net=none", "--cap-add=NET_ADMIN", "--name", name];
    argv.extend_from_slice(docker_args);
    argv.extend([IMAGE, "/bin/sleep", "1000000"]);
    argv
}

/// Docker run options that give a container IPv6: Docker 20.10 turns it off
/// (`disable_ipv6=1`) in `--net=none` containers.
pub const DOCKER_IPV6: &[&str] =
    &["--sysctl", "net.ipv6.conf.all.disable_ipv6=0", "--sysctl", "net.ipv6.conf.default.disable_ipv6=0"];

/// Host side name of a bridge connection: `v<ctr_if>pl<pid>`.
pub fn host_side(ctr_if: &str, pid: u32) -> String {
    format!("v{ctr_if}pl{pid}")
}
