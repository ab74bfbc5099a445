//! How long one `pipework` attach takes, process start to exit.
//!
//! Run as root: `cargo bench --bench attach`. A measurement, not a test: it
//! prints a table and checks it against two targets, but only a failed
//! pipework run or setup step makes it exit non-zero.
//!
//! - N = 1, 10, 100, 1000 bare namespaces (`netns:<name>`) attached one after
//!   another to one bridge: the per-attach median, p90 and min for each N,
//!   and whether the median at N=1000 stays within 1.5x of that at N=10.
//! - One Docker container attached repeatedly, the name lookup included:
//!   whether the median stays under 5 ms. Skipped if Docker is unreachable.
//!
//! - CNI ADD: the reference bridge plugin and pipework, the same
//!   configuration, one call of each in turn (see cni.rs): whether
//!   pipework's median is at most half the reference's.
//!
//! The machine's own interfaces are never touched: every pipework process
//! runs inside a throwaway "Docker host" namespace, entered by `setns` between
//! fork and exec rather than through `ip netns exec`, whose own cost would
//! swamp what we measure. Everything made here is named `pwb<pid>x<n>-…` and
//! removed on drop, also on panic; what a killed run left is swept at start.

use std::fs::File;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod cni;

const PIPEWORK: &str = env!("CARGO_BIN_EXE_pipework");
const NETNS_DIR: &str = "/var/run/netns";
const IMAGE: &str = "pipework-test:latest";
/// Marks what this bench owns; the integration tests use `pwt`.
const TAG: &str = "pwb";
const BRIDGE: &str = "br0";

const SIZES: [usize; 4] = [1, 10, 100, 1000];
const DOCKER_ATTACHES: usize = 30;
const DOCKER_TARGET: Duration = Duration::from_millis(5);
const SCALING_TARGET: f64 = 1.5;

fn main() -> ExitCode {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("attach bench: needs root (it creates namespaces and bridges)");
        return ExitCode::FAILURE;
    }
    sweep_stale();
    let mut failed = false;

    // `cargo bench --bench attach -- cni`: the CNI comparison alone.
    if std::env::args().skip(1).any(|a| a == "cni") {
        cni::report_all(&mut failed);
        return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }

    // Docker first: the kernel tears namespaces down asynchronously, and the
    // teardown of a thousand of them would run under the Docker figures.
    let docker = report("attach to docker container", bench_docker(), &mut failed);
    let mut by_size = Vec::new();
    for n in SIZES {
        let label = format!("attach to netns, N={n}");
        by_size.push((n, report(&label, bench_netns(n), &mut failed)));
    }

    println!();
    match docker {
        Some(s) => println!(
            "target: docker attach median < {} ms: {} ({:.2} ms)",
            ms(DOCKER_TARGET),
            verdict(s.median < DOCKER_TARGET),
            ms(s.median)
        ),
        None => println!("target: docker attach median < {} ms: not measured", ms(DOCKER_TARGET)),
    }
    cni::report_all(&mut failed);
    let median_at = |n| by_size.iter().find(|(m, _)| *m == n)?.1.map(|s| s.median);
    match (median_at(10), median_at(1000)) {
        (Some(at10), Some(at1000)) => {
            let ratio = at1000.as_secs_f64() / at10.as_secs_f64();
            println!(
                "target: median(N=1000) / median(N=10) <= {SCALING_TARGET}: {} ({ratio:.2}x)",
                verdict(ratio <= SCALING_TARGET)
            );
        }
        _ => println!("target: median(N=1000) / median(N=10) <= {SCALING_TARGET}: not measured"),
    }

    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What one part of the bench came to.
enum Outcome {
    Measured(Stats),
    /// Could not be measured here, and that is not pipework's fault.
    Skipped(String),
    Failed(String),
}

/// Prints one table row; returns the figures, if any.
fn report(label: &str, outcome: Outcome, failed: &mut bool) -> Option<Stats> {
    let stats = match outcome {
        Outcome::Measured(s) => {
            println!("{label}: {s}");
            Some(s)
        }
        Outcome::Skipped(why) => {
            println!("{label}: skipped: {why}");
            None
        }
        Outcome::Failed(why) => {
            println!("{label}: FAILED: {why}");
            *failed = true;
            None
        }
    };
    // Rows come minutes apart at N=1000: show each as soon as it is known.
    let _ = std::io::stdout().flush();
    stats
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

// ---------------------------------------------------------------- benches

/// N fresh namespaces attached one after another to one bridge, which the
/// first attach creates.
fn bench_netns(n: usize) -> Outcome {
    let run = || -> Result<Vec<Duration>, String> {
        let id = unique();
        let host = Host::new(&id)?;
        let guests = Namespaces::add((0..n).map(|i| format!("{id}-g{i}")).collect())?;
        guests
            .names()
            .iter()
            .enumerate()
            .map(|(i, name)| host.pipework(&[BRIDGE, &format!("netns:{name}"), &address(i)]))
            .collect()
    };
    match run() {
        Ok(times) => Outcome::Measured(Stats::of(times)),
        Err(e) => Outcome::Failed(e),
    }
}

/// One running container attached repeatedly, each time with a new interface
/// (`-i e<k>`), so every run pays the Docker lookup.
fn bench_docker() -> Outcome {
    if let Err(why) = run(&["docker", "version", "--format", "{{.Server.Version}}"]) {
        return Outcome::Skipped(format!("Docker is not reachable: {why}"));
    }
    let id = unique();
    let ctr = match Container::run(&format!("{id}-ctr")) {
        Ok(c) => c,
        Err(why) => return Outcome::Skipped(format!("cannot start a container: {why}")),
    };
    let attach = || -> Result<Vec<Duration>, String> {
        let host = Host::new(&id)?;
        (1..=DOCKER_ATTACHES)
            .map(|k| {
                let ifname = format!("e{k}");
                host.pipework(&[BRIDGE, "-i", &ifname, &ctr.name, &address(k)])
            })
            .collect()
    };
    match attach() {
        Ok(times) => Outcome::Measured(Stats::of(times)),
        Err(e) => Outcome::Failed(e),
    }
}

/// The `i`-th distinct address in 10.0.0.0/8, clear of .0.
fn address(i: usize) -> String {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 10));
    let ip = Ipv4Addr::from(base + u32::try_from(i).expect("few addresses"));
    format!("{ip}/8")
}

// ---------------------------------------------------------------- stats

#[derive(Clone, Copy)]
struct Stats {
    median: Duration,
    p90: Duration,
    min: Duration,
    count: usize,
}

impl Stats {
    fn of(mut times: Vec<Duration>) -> Stats {
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
            "median {:.2} ms, p90 {:.2} ms, min {:.2} ms ({} attach{})",
            ms(self.median),
            ms(self.p90),
            ms(self.min),
            self.count,
            if self.count == 1 { "" } else { "es" }
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------- the host

/// The throwaway Docker host: pipework runs inside it, so the bridge and the
/// host sides of the veths land there and vanish with it.
struct Host {
    // Declared first so it is closed first: an open handle would keep the
    // namespace, and its bridge, alive past the delete.
    netns: File,
    _ns: Namespaces,
    /// Its records, as a real host's /var/lib/pipework; removed with it.
    state: std::path::PathBuf,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Host {
    fn new(id: &str) -> Result<Host, String> {
        let ns = Namespaces::add(vec![format!("{id}-host")])?;
        let path = format!("{NETNS_DIR}/{}", ns.names()[0]);
        let netns = File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
        let state = std::env::temp_dir().join(format!("{}-state", ns.names()[0]));
        Ok(Host { netns, _ns: ns, state })
    }

    /// Runs pipework inside this namespace; returns how long it took from
    /// spawn to exit.
    fn pipework(&self, args: &[&str]) -> Result<Duration, String> {
        self.time(PIPEWORK, args, &[], b"").map(|(took, _)| took)
    }

    /// Runs `program` inside this namespace with `env` added and `stdin`
    /// fed; returns how long it took from spawn to exit, and its stdout.
    fn time(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: &[u8],
    ) -> Result<(Duration, Vec<u8>), String> {
        let fd = self.netns.as_raw_fd();
        let mut cmd = Command::new(program);
        cmd.args(args).envs(env.iter().copied()).env("PIPEWORK_STATE_DIR", &self.state);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe calls are
        // allowed; setns is a bare syscall and this closure allocates nothing.
        // The fd stays open in the child until exec (O_CLOEXEC).
        unsafe {
            cmd.pre_exec(move || match libc::setns(fd, libc::CLONE_NEWNET) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
        let start = Instant::now();
        let out = cmd
            .spawn()
            .and_then(|mut child| {
                // Small enough for the pipe: written whole before the child reads.
                child.stdin.take().map(|mut input| input.write_all(stdin)).transpose()?;
                child.wait_with_output()
            })
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let took = start.elapsed();
        if !out.status.success() {
            return Err(format!(
                "`{program} {}` exited with {}; stdout:\n{}\nstderr:\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout).trim_end(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            ));
        }
        Ok((took, out.stdout))
    }
}

// ---------------------------------------------------------------- fixtures

/// Named network namespaces, deleted on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    /// Creates them in one `ip -batch` run: a thousand `ip netns add`
    /// processes would take longer than the attaches we measure.
    fn add(names: Vec<String>) -> Result<Namespaces, String> {
        // Guard first, so a batch that fails halfway is still cleaned up.
        let guard = Namespaces(names);
        ip_batch("netns add", &guard.0, false)?;
        Ok(guard)
    }

    fn names(&self) -> &[String] {
        &self.0
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Err(e) = ip_batch("netns del", &self.0, true) {
            eprintln!("attach bench: cleanup: {e}");
        }
    }
}

/// Runs `ip -batch -` with one `<verb> <name>` line per name; `force` goes
/// on past errors (for cleanup, where some may already be gone).
fn ip_batch(verb: &str, names: &[String], force: bool) -> Result<(), String> {
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
struct Container {
    name: String,
}

impl Container {
    fn run(name: &str) -> Result<Container, String> {
        // Guard first: `docker run` may fail after creating the container.
        let ctr = Container { name: name.to_string() };
        run(&[
            "docker",
            "run",
            "-d",
            "--net=none",
            "--cap-add=NET_ADMIN",
            "--name",
            name,
            IMAGE,
            "/bin/sleep",
            "1000000",
        ])?;
        Ok(ctr)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = run(&["docker", "rm", "-f", &self.name]) {
            eprintln!("attach bench: cleanup: {e}");
        }
    }
}

/// Runs a helper command that must succeed; returns its stdout.
fn run(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` exited with {}: {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------- names

/// `pwb<pid>x<n>`: unique across runs in parallel, and says whose it is.
fn unique() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{TAG}{}x{n}", std::process::id())
}

/// Whether `name` was made by a bench process that is gone.
fn is_stale(name: &str) -> bool {
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
fn sweep_stale() {
    let netns: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_stale(n))
        .collect();
    let _ = ip_batch("netns del", &netns, true);
    let listed = run(&["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name=^{TAG}")]);
    for name in listed.unwrap_or_default().lines().filter(|n| is_stale(n)) {
        let _ = run(&["docker", "rm", "-f", name]);
    }
}
