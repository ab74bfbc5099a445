//! `pipework watch` running in a test's "docker host" namespace with that
//! host's own records, killed on drop; and a private dockerd, for the test
//! that restarts one (restarting the shared one would break every other
//! test running beside it).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::cli::{without_injection, PIPEWORK};
use super::commands::run;
use super::containers::Container;
use super::daemons::wait_for;
use super::netns::Netns;
use super::readback::{Link, Ns};
use super::tempdir::TempDir;

/// The label every container of a test carries, so that its watcher looks
/// after that test's containers only (`--only`).
pub const SCOPE: &str = "pwt.watch";

pub struct Watcher {
    child: Child,
    /// Its log (stderr) and anything else it needs on disk.
    dir: TempDir,
    /// `--only pwt.watch=<scope>`.
    pub scope: String,
}

impl Watcher {
    /// `pipework watch --only pwt.watch=<scope>` in `host`, with `host`'s
    /// records and `env`; returns once it has caught up.
    pub fn start(host: &Netns, scope: &str, env: &[(&str, &str)]) -> Watcher {
        Watcher::allowing(host, scope, &[], env)
    }

    /// `start` with `--allow` each of `allowed`: the host interfaces its
    /// containers' labels may plumb into.
    pub fn allowing(host: &Netns, scope: &str, allowed: &[&str], env: &[(&str, &str)]) -> Watcher {
        let w = Watcher::launch(host, scope, allowed, &[], env, None);
        w.wait_log("caught up", Duration::from_secs(30));
        w
    }

    /// `start` with more `options` (`--no-repair`).
    pub fn start_with(host: &Netns, scope: &str, options: &[&str]) -> Watcher {
        let w = Watcher::launch(host, scope, &[], options, &[], None);
        w.wait_log("caught up", Duration::from_secs(30));
        w
    }

    /// `start` with the service's open-files limits at `soft` and `hard`
    /// (as systemd starts services: 1024, and a higher hard limit).
    pub fn start_with_nofile(host: &Netns, scope: &str, soft: u64, hard: u64) -> Watcher {
        let w = Watcher::launch(host, scope, &[], &[], &[], Some((soft, hard)));
        w.wait_log("caught up", Duration::from_secs(30));
        w
    }

    /// The same, without waiting for anything.
    pub fn spawn(host: &Netns, scope: &str, env: &[(&str, &str)]) -> Watcher {
        Watcher::launch(host, scope, &[], &[], env, None)
    }

    fn launch(
        host: &Netns,
        scope: &str,
        allowed: &[&str],
        options: &[&str],
        env: &[(&str, &str)],
        nofile: Option<(u64, u64)>,
    ) -> Watcher {
        let dir = TempDir::new("watch");
        let log = File::create(dir.path.join("watch.log")).expect("watch log");
        let only = format!("{SCOPE}={scope}");
        let mut cmd = Command::new("nsenter");
        without_injection(&mut cmd)
            .arg(format!("--net={}", host.path()))
            .args([PIPEWORK, "watch", "--only", &only])
            .args(allowed.iter().flat_map(|a| ["--allow", a]))
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .env_remove("RUST_LOG")
            .env("PIPEWORK_STATE_DIR", host.state_dir())
            .envs(env.iter().copied());
        // SAFETY: prctl and setrlimit only, between fork and exec. The
        // service dies with the test's thread, even when the test panics or
        // is killed.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some((rlim_cur, rlim_max)) = nofile {
                    let limit = libc::rlimit { rlim_cur, rlim_max };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn pipework watch");
        Watcher { child, dir, scope: scope.to_string() }
    }

    /// `--label pwt.watch=<scope>`, for `docker run`.
    pub fn label(&self) -> String {
        format!("{SCOPE}={}", self.scope)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("watch.log")).unwrap_or_default()
    }

    /// Waits until the log has a line containing `what`; returns that line.
    #[track_caller]
    pub fn wait_log(&self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(what)) {
                return line.to_string();
            }
            assert!(self.is_running(), "pipework watch exited while waiting for {what:?}:\n{log}");
            assert!(Instant::now() < deadline, "no {what:?} in the watch log after {timeout:?}:\n{log}");
            sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&self) -> bool {
        is_alive(self.pid())
    }

    /// VmRSS and VmHWM from /proc, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).expect(name);
            line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect(name)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User and system CPU time so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        let rest = stat.rsplit_once(") ").expect("stat format").1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15; `rest` starts at field 3.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Sends `signal`; returns how long it took to exit, and its status.
    pub fn stop(&mut self, signal: i32) -> (Duration, std::process::ExitStatus) {
        let began = Instant::now();
        // SAFETY: kill(2) on our own child, which has not been reaped.
        unsafe { libc::kill(self.pid() as i32, signal) };
        let status = wait_for("pipework watch to exit", Duration::from_secs(10), || {
            self.child.try_wait().expect("wait")
        });
        (began.elapsed(), status)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// How long a watch test waits for what the service does.
pub const SETTLE: Duration = Duration::from_secs(20);

/// A container of the test's watcher (`--only` lets it in), with `docker run` options `extra`.
pub fn watched_container(w: &Watcher, prefix: &str, extra: &[&str]) -> Container {
    let label = w.label();
    let mut args = vec!["--label", label.as_str()];
    args.extend_from_slice(extra);
    Container::run_with(prefix, &args)
}

/// Its full ID.
pub fn container_id(c: &Container) -> String {
    c.inspect("{{.Id}}")
}

/// Where `host`'s record of container `id` lives.
pub fn record_file(host: &Netns, id: &str) -> PathBuf {
    PathBuf::from(host.state_dir()).join(format!("docker-{id}.json"))
}

/// Restarted with `docker restart`; its new PID.
pub fn restart_container(c: &mut Container) {
    run(&["docker", "restart", "-t", "0", &c.name]);
    c.pid = c.inspect("{{.State.Pid}}").parse().unwrap();
}

/// `eth1` of `c`, once it is there.
pub fn wait_eth1(c: &Container) -> Link {
    wait_for(&format!("eth1 in {}", c.name), SETTLE, || c.link("eth1"))
}
