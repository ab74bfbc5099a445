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
