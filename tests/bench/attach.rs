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
//!   whether the median stays under 5 ms. Beside each, the same container by
//!   `pid:` and a `/bin/true` started the same way in the same namespace:
//!   the ratios of the medians (issue 13: at most 1.5x by name, 1.3x by
//!   `pid:`) and the peak RSS of an attach (at most 8 MiB, from wait4).
//!   Also beside each, iproute2 making the same links and address (two
//!   `ip -batch` runs, host then container): the kernel's share of an
//!   attach, with a process start per namespace, as another program pays it.
//!   Skipped if Docker is unreachable; `-- docker` runs this part alone.
//!   PIPEWORK_BENCH_ALSO=label=path,... adds other builds' attach by `pid:`
//!   to the rotation, and their ratio to this build's: an A/B of a change.
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

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

mod cni;
mod fixtures;

use fixtures::*;

const SIZES: [usize; 4] = [1, 10, 100, 1000];
const DOCKER_ATTACHES: usize = 30;
const DOCKER_TARGET: Duration = Duration::from_millis(5);
/// The trivial process an attach is compared with.
const TRUE: &str = "/bin/true";
/// iproute2, which makes the same links and address for comparison.
const IP: &str = "/bin/ip";
/// The bridge of iproute2's veths, apart from pipework's: their ports
/// would have every announcement of pipework's flooded to them as well.
const IP_BRIDGE: &str = "br1";
/// An attach against starting `/bin/true` the same way (issue 13): by
/// Docker name, and by `pid:`, which skips the Docker lookup.
const NAME_RATIO_TARGET: f64 = 1.5;
const PID_RATIO_TARGET: f64 = 1.3;
/// Peak resident memory of one attach, in KiB.
const RSS_TARGET_KIB: u64 = 8 * 1024;
const SCALING_TARGET: f64 = 1.5;

fn main() -> ExitCode {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("attach bench: needs root (it creates namespaces and bridges)");
        return ExitCode::FAILURE;
    }
    print_header("attach");
    sweep_stale();
    let mut failed = false;

    // `cargo bench --bench attach -- cni`: the CNI comparison alone.
    if std::env::args().skip(1).any(|a| a == "cni") {
        cni::report_all(&mut failed);
        return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }

    // Docker first: the kernel tears namespaces down asynchronously, and the
    // teardown of a thousand of them would run under the Docker figures.
    let docker = docker_report(bench_docker(), &mut failed);
    // `cargo bench --bench attach -- docker`: the Docker figures alone.
    if std::env::args().skip(1).any(|a| a == "docker") {
        println!();
        docker.inspect(DockerFigures::targets);
        return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }
    let mut by_size = Vec::new();
    for n in SIZES {
        let label = format!("attach to netns, N={n}");
        by_size.push((n, report(&label, bench_netns(n), &mut failed)));
    }

    println!();
    match docker {
        Some(d) => d.targets(),
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
enum Outcome<T = Stats> {
    Measured(T),
    /// Could not be measured here, and that is not pipework's fault.
    Skipped(String),
    Failed(String),
}

/// Prints one table row; returns the figures, if any.
fn report<T: std::fmt::Display>(label: &str, outcome: Outcome<T>, failed: &mut bool) -> Option<T> {
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
            .map(|(i, name)| host.pipework(&[BRIDGE, &format!("netns:{name}"), &address(i)]).map(|r| r.took))
            .collect()
    };
    match run() {
        Ok(times) => Outcome::Measured(Stats::of(times)),
        Err(e) => Outcome::Failed(e),
    }
}

/// One running container attached repeatedly, each time with a new interface
/// (`-i e<k>`), so every run pays the Docker lookup; beside each, the same
/// container by `pid:` (`-i p<k>`) and a `/bin/true`, spawned the same way
/// in the same namespace: the floor an attach is measured against.
fn bench_docker() -> Outcome<DockerFigures> {
    if let Err(why) = run(&["docker", "version", "--format", "{{.Server.Version}}"]) {
        return Outcome::Skipped(format!("Docker is not reachable: {why}"));
    }
    let id = unique();
    let ctr = match Container::run(&format!("{id}-ctr")) {
        Ok(c) => c,
        Err(why) => return Outcome::Skipped(format!("cannot start a container: {why}")),
    };
    let attach = || -> Result<DockerFigures, String> {
        let pid = run(&["docker", "inspect", "--format", "{{.State.Pid}}", &ctr.name])?;
        let by_pid = format!("pid:{}", pid.trim());
        let host = Host::new(&id)?;
        let guest = Entered::open(&format!("/proc/{}/ns/net", pid.trim()))?;
        host.measure(IP, &["link", "add", IP_BRIDGE, "up", "type", "bridge"], &[], b"")?;
        let (mut floor, mut name, mut pid, mut iproute2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let builds = also_builds()?;
        let mut others: Vec<Vec<Ran>> = builds.iter().map(|_| Vec::new()).collect();
        // Interleaved, so that a slower moment of the machine hits them all.
        for k in 1..=DOCKER_ATTACHES {
            floor.push(host.measure(TRUE, &[], &[], b"")?);
            let ifname = format!("e{k}");
            name.push(host.pipework(&[BRIDGE, "-i", &ifname, &ctr.name, &address(k)])?);
            let ifname = format!("p{k}");
            pid.push(host.pipework(&[BRIDGE, "-i", &ifname, &by_pid, &address(DOCKER_ATTACHES + k)])?);
            iproute2.push(iproute2_attach(&host, &guest, &by_pid[4..], k)?);
            for (j, ((_, program), runs)) in builds.iter().zip(&mut others).enumerate() {
                let ifname = format!("a{j}x{k}");
                let addr = address((3 + j) * DOCKER_ATTACHES + k);
                runs.push(host.measure(program, &[BRIDGE, "-i", &ifname, &by_pid, &addr], &[], b"")?);
            }
        }
        Ok(DockerFigures {
            floor: Runs::of(floor),
            name: Runs::of(name),
            pid: Runs::of(pid),
            iproute2: Runs::of(iproute2),
            others: builds
                .into_iter()
                .map(|(label, _)| label)
                .zip(others.into_iter().map(Runs::of))
                .collect(),
        })
    };
    match attach() {
        Ok(figures) => Outcome::Measured(figures),
        Err(e) => Outcome::Failed(e),
    }
}

/// The kernel work of an attach by `pid:`, done by iproute2: the veth pair
/// with its peer made in the container, the bridge port, up, then the
/// address and up inside, as two `ip -batch` runs (one per namespace). No
/// lookup, record, IPv6 setting nor announcement: less than an attach does.
fn iproute2_attach(host: &Host, guest: &Entered, pid: &str, k: usize) -> Result<Ran, String> {
    let (port, ifname) = (format!("v{k}"), format!("i{k}"));
    let outside = format!(
        "link add {port} mtu 1500 type veth peer name {ifname} mtu 1500 netns {pid}\n\
         link set {port} master {IP_BRIDGE}\nlink set {port} up\n"
    );
    let inside =
        format!("addr add {} dev {ifname}\nlink set {ifname} up\n", address(2 * DOCKER_ATTACHES + k));
    let made = host.measure(IP, &["-batch", "-"], &[], outside.as_bytes())?;
    let addressed = guest.measure(IP, &["-batch", "-"], inside.as_bytes())?;
    Ok(Ran {
        took: made.took + addressed.took,
        cpu: made.cpu + addressed.cpu,
        stdout: Vec::new(),
        max_rss_kib: made.max_rss_kib.max(addressed.max_rss_kib),
    })
}

/// The Docker rows: `/bin/true`, by name, by `pid:`, iproute2, each with its
/// peak RSS; and by `pid:` with each other build of `ALSO`.
struct DockerFigures {
    floor: Runs,
    name: Runs,
    pid: Runs,
    iproute2: Runs,
    others: Vec<(String, Runs)>,
}

/// Times, CPU times and the largest peak RSS of a series of runs.
struct Runs {
    stats: Stats,
    cpu: Stats,
    max_rss_kib: u64,
}

impl Runs {
    fn of(runs: Vec<Ran>) -> Runs {
        let max_rss_kib = runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
        let cpu = Stats::of(runs.iter().map(|r| r.cpu).collect());
        Runs { stats: Stats::of(runs.into_iter().map(|r| r.took).collect()), cpu, max_rss_kib }
    }
}

impl std::fmt::Display for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, CPU median {:.2} ms, peak RSS {:.1} MiB",
            self.stats,
            ms(self.cpu.median),
            self.max_rss_kib as f64 / 1024.0
        )
    }
}

fn docker_report(outcome: Outcome<DockerFigures>, failed: &mut bool) -> Option<DockerFigures> {
    const LABEL: &str = "attach to docker container";
    let figures = match outcome {
        Outcome::Measured(f) => f,
        Outcome::Skipped(why) => {
            report::<Stats>(LABEL, Outcome::Skipped(why), failed);
            return None;
        }
        Outcome::Failed(why) => {
            report::<Stats>(LABEL, Outcome::Failed(why), failed);
            return None;
        }
    };
    println!("start {TRUE} (the floor): {}", figures.floor);
    println!("{LABEL}: {}", figures.name);
    println!("{LABEL} by pid: {}", figures.pid);
    println!("the same links and address by iproute2 (two `ip -batch`): {}", figures.iproute2);
    for (label, runs) in &figures.others {
        println!("{LABEL} by pid:, pipework {label}: {runs}");
    }
    let _ = std::io::stdout().flush();
    Some(figures)
}

impl DockerFigures {
    fn targets(&self) {
        println!(
            "target: docker attach median < {} ms: {} ({:.2} ms)",
            ms(DOCKER_TARGET),
            verdict(self.name.stats.median < DOCKER_TARGET),
            ms(self.name.stats.median)
        );
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        for (what, runs, target) in
            [("docker name", &self.name, NAME_RATIO_TARGET), ("pid:", &self.pid, PID_RATIO_TARGET)]
        {
            let wall = ratio(runs.stats.median, self.floor.stats.median);
            let cpu = ratio(runs.cpu.median, self.floor.cpu.median);
            println!(
                "target: attach by {what} / {TRUE} (medians) <= {target}: {} ({wall:.2}x; CPU time {cpu:.2}x)",
                verdict(wall <= target)
            );
        }
        let (wall, cpu) = (
            ratio(self.pid.stats.median, self.iproute2.stats.median),
            ratio(self.pid.cpu.median, self.iproute2.cpu.median),
        );
        println!("attach by pid: / iproute2 (medians): {wall:.2}x; CPU time {cpu:.2}x");
        for (label, runs) in &self.others {
            let (wall, cpu) = (
                ratio(self.pid.stats.median, runs.stats.median),
                ratio(self.pid.cpu.median, runs.cpu.median),
            );
            println!(
                "attach by pid: this build / pipework {label} (medians): {wall:.2}x; CPU time {cpu:.2}x"
            );
        }
        let rss = self.name.max_rss_kib.max(self.pid.max_rss_kib);
        println!(
            "target: peak RSS of an attach <= {} MiB: {} ({:.1} MiB)",
            RSS_TARGET_KIB / 1024,
            verdict(rss <= RSS_TARGET_KIB),
            rss as f64 / 1024.0
        );
    }
}

/// The `i`-th distinct address in 10.0.0.0/8, clear of .0.
fn address(i: usize) -> String {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 10));
    let ip = Ipv4Addr::from(base + u32::try_from(i).expect("few addresses"));
    format!("{ip}/8")
}
