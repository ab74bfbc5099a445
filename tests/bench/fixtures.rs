//! What the benches share: the throwaway Docker host, namespaces and
//! containers named `pwb<pid>x<n>-…` and removed on drop (what a killed run
//! left is swept at start), and the figures.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// The integration tests' harness: the benches' containers are made as the
// tests' are (`docker_run`), the rest of it unused here.
#[path = "../common/mod.rs"]
#[allow(unused_imports)]
mod common;

pub use common::docker_run;

pub const PIPEWORK: &str = env!("CARGO_BIN_EXE_pipework");
pub const NETNS_DIR: &str = "/var/run/netns";
/// Marks what the benches own; the integration tests use `pwt`.
pub const TAG: &str = "pwb";
pub const BRIDGE: &str = "br0";
/// `label=path,...`: other pipework builds measured in the same rotation,
/// for an A/B of a change (another commit's binary).
pub const ALSO: &str = "PIPEWORK_BENCH_ALSO";

/// The builds of `ALSO`, as (label, path).
pub fn also_builds() -> Result<Vec<(String, String)>, String> {
    let listed = std::env::var(ALSO).unwrap_or_default();
    listed
        .split(',')
        .filter(|i| !i.is_empty())
        .map(|item| {
            let (label, path) = item.split_once('=').ok_or(format!("{ALSO}: {item}: not label=path"))?;
            Ok((label.to_string(), path.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------- header

/// The lines every bench prints first, so that its output pasted into
/// docs/performance.md says when, on what and under what load it ran.
pub fn print_header(bench: &str) {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let date = run(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    println!(
        "bench: cargo bench --bench {bench}{}",
        if args.is_empty() { String::new() } else { format!(" -- {}", args.join(" ")) }
    );
    println!("date: {}", date.trim());
    println!("commit: {commit}{}", if dirty { " (with uncommitted changes)" } else { "" });
    println!("machine: {cores} cores, {cpu}, Linux {}", kernel.trim());
    println!("load average (1, 5, 15 min): {}", load.join(" "));
    println!("build: {}", if cfg!(debug_assertions) { "debug" } else { "release" });
    println!();
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------- stats

#[derive(Clone, Copy)]
pub struct Stats {
    pub median: Duration,
    pub p90: Duration,
    pub min: Duration,
    pub count: usize,
}

impl Stats {
    pub fn of(mut times: Vec<Duration>) -> Stats {
        assert!(!times.is_empty(), "no samples");
        times.sort();
        let n = times.len();
        let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2 };
        Stats {
            median,
            // Nearest rank: the smallest sample at or above 90% of them.
            p90: times[(n * 9).div_ceil(10) - 1],
            min: times[0],
            count: n,
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:.2} ms, p90 {:.2} ms, min {:.2} ms ({} run{})",
            ms(self.median),
            ms(self.p90),
            ms(self.min),
            self.count,
            if self.count == 1 { "" } else { "s" }
        )
    }
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------- the host

/// The throwaway Docker host: pipework runs inside it, so the bridge and the
/// host sides of the veths land there and vanish with it.
pub struct Host {
    // Declared first so it is closed first: an open handle would keep the
    // namespace, and its bridge, alive past the delete.
    netns: File,
    _ns: Namespaces,
    /// Its records, as a real host's /var/lib/pipework; removed with it.
    pub state: std::path::PathBuf,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Host {
    pub fn new(id: &str) -> Result<Host, String> {
        let ns = Namespaces::add(vec![format!("{id}-host")])?;
        let path = format!("{NETNS_DIR}/{}", ns.names()[0]);
        let netns = File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
        let state = std::env::temp_dir().join(format!("{}-state", ns.names()[0]));
        Ok(Host { netns, _ns: ns, state })
    }

    /// Runs pipework inside this namespace.
    pub fn pipework(&self, args: &[&str]) -> Result<Ran, String> {
        self.measure(PIPEWORK, args, &[], b"")
    }

    /// Runs `program` inside this namespace with `env` added and `stdin`
    /// fed; returns how long it took from spawn to exit, and its stdout.
    pub fn time(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: &[u8],
    ) -> Result<(Duration, Vec<u8>), String> {
        self.measure(program, args, env, stdin).map(|r| (r.took, r.stdout))
    }

    /// The same, with the child's own CPU time and peak RSS (wait4's rusage).
    pub fn measure(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: &[u8],
    ) -> Result<Ran, String> {
        let mut cmd = self.command(program, args);
        cmd.envs(env.iter().copied());
        measure(cmd, program, args, stdin)
    }

    /// `program args`, to be run inside this namespace, with its records.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = command_in(&self.netns, program, args);
        cmd.env("PIPEWORK_STATE_DIR", &self.state);
        cmd
    }
}

/// A network namespace that is not the bench's (a container's), entered the
/// same way as the host: `setns` between fork and exec.
pub struct Entered(File);

impl Entered {
    pub fn open(path: &str) -> Result<Entered, String> {
        File::open(path).map(Entered).map_err(|e| format!("opening {path}: {e}"))
    }

    /// Runs `program` inside it with `stdin` fed: time, CPU time, peak RSS.
    pub fn measure(&self, program: &str, args: &[&str], stdin: &[u8]) -> Result<Ran, String> {
        measure(command_in(&self.0, program, args), program, args, stdin)
    }
}

fn measure(mut cmd: Command, program: &str, args: &[&str], stdin: &[u8]) -> Result<Ran, String> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let cannot = |e: std::io::Error| format!("cannot run {program}: {e}");
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(cannot)?;
    // Small enough for the pipes: written whole before the child reads,
    // and its output fits them, so reading one after the other is safe.
    child.stdin.take().map(|mut input| input.write_all(stdin)).transpose().map_err(cannot)?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child.stdout.take().map(|mut s| s.read_to_end(&mut stdout)).transpose().map_err(cannot)?;
    child.stderr.take().map(|mut s| s.read_to_end(&mut stderr)).transpose().map_err(cannot)?;
    let (status, usage) = wait4(child.id()).map_err(cannot)?;
    let took = start.elapsed();
    if !status.success() {
        return Err(format!(
            "`{program} {}` exited with {}; stdout:\n{}\nstderr:\n{}",
            args.join(" "),
            status,
            String::from_utf8_lossy(&stdout).trim_end(),
            String::from_utf8_lossy(&stderr).trim_end()
        ));
    }
    let cpu = |t: libc::timeval| {
        Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_usec).unwrap_or(0) * 1000)
    };
    let cpu = cpu(usage.ru_utime) + cpu(usage.ru_stime);
    // ru_maxrss is in KiB on Linux.
    Ok(Ran { took, cpu, stdout, max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0) })
}

/// `program args`, to be run inside the network namespace `netns`.
fn command_in(netns: &File, program: &str, args: &[&str]) -> Command {
    let fd = netns.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: between fork and exec only async-signal-safe calls are
    // allowed; setns is a bare syscall and this closure allocates nothing.
    // The fd stays open in the child until exec (O_CLOEXEC).
    unsafe {
        cmd.pre_exec(move || match libc::setns(fd, libc::CLONE_NEWNET) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    cmd
}

/// One run of a program: from spawn to exit, its CPU time, its stdout, its
/// peak RSS.
pub struct Ran {
    pub took: Duration,
    /// User plus system CPU time: less at the mercy of a busy machine.
    pub cpu: Duration,
    pub stdout: Vec<u8>,
    pub max_rss_kib: u64,
}

/// Reaps `pid` with its own resource usage (not the sum RUSAGE_CHILDREN keeps).
fn wait4(pid: u32) -> std::io::Result<(std::process::ExitStatus, libc::rusage)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals.
        match unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } {
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            -1 => return Err(std::io::Error::last_os_error()),
            _ => return Ok((std::process::ExitStatus::from_raw(status), usage)),
        }
    }
}

// ---------------------------------------------------------------- fixtures

/// Named network namespaces, deleted on drop.
pub struct Namespaces(Vec<String>);

impl Namespaces {
    /// Creates them in one `ip -batch` run: a thousand `ip netns add`
    /// processes would take longer than the attaches we measure.
    pub fn add(names: Vec<String>) -> Result<Namespaces, String> {
        // Guard first, so a batch that fails halfway is still cleaned up.
        let guard = Namespaces(names);
        ip_batch("netns add", &guard.0, false)?;
        Ok(guard)
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Err(e) = ip_batch("netns del", &self.0, true) {
            eprintln!("bench: cleanup: {e}");
        }
    }
}

/// Runs `ip -batch -` with one `<verb> <name>` line per name; `force` goes
/// on past errors (for cleanup, where some may already be gone).
pub fn ip_batch(verb: &str, names: &[String], force: bool) -> Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let script: String = names.iter().map(|n| format!("{verb} {n}\n")).collect();
    let mut argv = vec!["ip"];
    if force {
        argv.push("-force");
    }
    argv.extend(["-batch", "-"]);
    let mut child = Command::new("ip")
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    let written = child.stdin.take().expect("piped stdin").write_all(script.as_bytes());
    let out = child.wait_with_output().map_err(|e| format!("ip -batch: {e}"))?;
    written.map_err(|e| format!("ip -batch: writing the script: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{} ({verb} ×{})` exited with {}: {}",
            argv.join(" "),
            names.len(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(())
}

/// A Docker container without networking, removed on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    pub fn run(name: &str) -> Result<Container, String> {
        Container::run_with(name, &[])
    }

    /// The same with extra `docker run` options.
    pub fn run_with(name: &str, docker_args: &[&str]) -> Result<Container, String> {
        // Guard first: `docker run` may fail after creating the container.
        let ctr = Container { name: name.to_string() };
        let mut argv = vec!["docker"];
        argv.extend(docker_run(name, docker_args));
        run(&argv)?;
        Ok(ctr)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = remove_containers(std::slice::from_ref(&self.name)) {
            eprintln!("bench: cleanup: {e}");
        }
    }
}

/// How many containers one `docker rm -f` removes, and how long it may
/// take: one `docker rm -f` of 200 kept the shared dockerd busy for
/// minutes, and other work waited behind it.
const RM_BATCH: usize = 8;
const RM_WAIT: Duration = Duration::from_secs(60);

/// Removes containers `names` a batch at a time, each `docker rm -f` killed
/// if it takes longer than `RM_WAIT`; goes on past a failed batch and says
/// which failed. A name already gone is no failure.
pub fn remove_containers(names: &[String]) -> Result<(), String> {
    let mut failed = Vec::new();
    for batch in names.chunks(RM_BATCH) {
        let mut argv = vec!["docker", "rm", "-f"];
        argv.extend(batch.iter().map(String::as_str));
        if let Err(e) = run_within(&argv, RM_WAIT) {
            // Docker's words for each name it did not find, one a line.
            let said: Vec<&str> = e.lines().skip(1).collect();
            let gone = !said.is_empty() && said.iter().all(|l| l.contains("No such container"));
            if !gone {
                failed.push(e);
            }
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("\n")),
    }
}

/// `run`, with the command killed after `limit`.
pub fn run_within(argv: &[&str], limit: Duration) -> Result<String, String> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    let deadline = Instant::now() + limit;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{}` did not end within {limit:?}: killed", argv.join(" ")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stdout_of(argv, child.wait_with_output().map_err(|e| e.to_string())?)
}

/// Runs a helper command that must succeed; returns its stdout.
pub fn run(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    stdout_of(argv, out)
}

/// A command's stdout if it succeeded, else its status and stderr (from
/// the next line on).
fn stdout_of(argv: &[&str], out: std::process::Output) -> Result<String, String> {
    if !out.status.success() {
        return Err(format!(
            "`{}` exited with {}:\n{}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------- names

/// `pwb<pid>x<n>`: unique across runs in parallel, and says whose it is.
pub fn unique() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{TAG}{}x{n}", std::process::id())
}

/// Whether `name` was made by a bench process that is gone.
pub fn is_stale(name: &str) -> bool {
    let pid = name
        .strip_prefix(TAG)
        .and_then(|rest| rest.split_once('x'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok());
    pid.is_some_and(|pid| {
        pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// Removes what an interrupted run left: a killed N=1000 run leaves a
/// thousand namespaces behind.
pub fn sweep_stale() {
    let netns: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_stale(n))
        .collect();
    let _ = ip_batch("netns del", &netns, true);
    let listed = run(&["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name=^{TAG}")]);
    let stale: Vec<String> =
        listed.unwrap_or_default().lines().filter(|n| is_stale(n)).map(String::from).collect();
    if let Err(e) = remove_containers(&stale) {
        eprintln!("bench: sweeping: {e}");
    }
}
