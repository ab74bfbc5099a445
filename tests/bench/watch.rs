//! `pipework watch`: how fast it catches up, how soon it re-plumbs a
//! restarted container, how much memory it keeps, and that it idles.
//!
//! Run as root: `cargo bench --bench watch` (`-- 100` for one size, any N). For N = 100 and 200 running
//! containers, each attached to one bridge by pipework (so each has a
//! record), all restarted while no watch runs (so each lost its eth1):
//!
//! - catch-up: from `pipework watch`'s start to its "caught up" line, and
//!   the containers a second that makes (target: at least 200/s);
//! - VmRSS and VmHWM from /proc once caught up (target: at most 16 MiB with
//!   100 containers), and its CPU time over 3 s of idling (target: none);
//! - re-plumbing: 20 containers stopped and started again, from `docker
//!   start` returning to eth1 seen in the container (target: 200 ms), and
//!   watch's own figure for the work, from its log;
//! - SIGTERM to exit;
//! - repair (`-- repair` for it alone): 50 containers on the bridge, which
//!   is deleted and made again as `ifup` makes one (made, its address, up)
//!   while watch runs: from the bridge's return until every container's
//!   port is enslaved and up (target: 1 s), and until each answers a ping
//!   from the bridge's address, and watch's own figure for each
//!   container's repair, from its log.
//!
//! A measurement, not a test: only a failed setup step or pipework run
//! makes it exit non-zero. Everything is named `pwb<pid>x<n>-…` and removed
//! at the end, also on panic.

mod fixtures;

use std::fs::File;
use std::process::{Child, ExitCode, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use fixtures::*;

const SIZES: [usize; 2] = [100, 200];
const RESTARTS: usize = 20;
const RATE_TARGET: f64 = 200.0;
const MEMORY_TARGET_KIB: u64 = 16 * 1024;
const REPLUMB_TARGET: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(120);
const REPAIRED: usize = 50;
const REPAIR_TARGET: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("watch bench: needs root (it creates namespaces and bridges)");
        return ExitCode::FAILURE;
    }
    if let Err(why) = run(&["docker", "version", "--format", "{{.Server.Version}}"]) {
        println!("watch bench: skipped: Docker is not reachable: {why}");
        return ExitCode::SUCCESS;
    }
    print_header("watch");
    sweep_stale();
    let mut failed = false;
    // `cargo bench --bench watch -- 200`: the sizes named alone (any N);
    // `-- repair`: the repair case alone.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let named: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let only_repair = args.iter().any(|a| a == "repair");
    let sizes = match (only_repair, named.is_empty()) {
        (true, _) => Vec::new(),
        (false, true) => SIZES.to_vec(),
        (false, false) => named,
    };
    let cases = sizes.into_iter().map(|n| (format!("watch, N={n}"), bench(n)));
    let repair_case = || (format!("watch repair, N={REPAIRED}"), repair(REPAIRED));
    for (case, outcome) in cases.chain((only_repair || args.is_empty()).then(repair_case)) {
        match outcome {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                println!("{case}: FAILED: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn bench(n: usize) -> Result<Vec<String>, String> {
    let id = unique();
    let host = Host::new(&id)?;
    let scope = format!("pwb.watch={id}");
    let names: Vec<String> = (0..n).map(|i| format!("{id}-c{i}")).collect();
    let containers = Containers::run(&names, &scope)?;
    for (i, name) in names.iter().enumerate() {
        host.pipework(&[BRIDGE, name, &address(i)])?;
    }
    let mut restart = vec!["docker", "restart", "-t", "0"];
    restart.extend(names.iter().map(String::as_str));
    run(&restart)?;

    let began = Instant::now();
    let mut watch = Watch::start(&host, &id, &scope)?;
    let caught_up = watch.wait_line("caught up", WAIT)?;
    let wall = began.elapsed();
    // The old host sides go with the old namespaces, which the kernel
    // frees in its own time: wait until the bridge has one port a container.
    let settled = Instant::now();
    loop {
        let ports = run(&["ip", "-n", &format!("{id}-host"), "-o", "link", "show", "master", BRIDGE])?;
        if ports.lines().count() == n {
            break;
        }
        if settled.elapsed() > WAIT {
            return Err(format!(
                "{} ports for {n} containers after catch-up: {caught_up}",
                ports.lines().count()
            ));
        }
        sleep(Duration::from_millis(100));
    }
    let own = seconds_in(&caught_up).ok_or_else(|| format!("no duration in {caught_up:?}"))?;
    let (rss, hwm) = watch.memory_kib()?;
    let ticks = watch.cpu_ticks()?;
    sleep(Duration::from_secs(3));
    let idle = watch.cpu_ticks()? - ticks;

    let mut seen = Vec::new();
    for name in names.iter().take(RESTARTS) {
        run(&["docker", "stop", "-t", "0", name])?;
        run(&["docker", "start", name])?;
        let started = Instant::now();
        let pid = run(&["docker", "inspect", "-f", "{{.State.Pid}}", name])?;
        let netns = format!("--net=/proc/{}/ns/net", pid.trim());
        while !quiet_ok(&["nsenter", &netns, "ip", "link", "show", "eth1"]) {
            if started.elapsed() > WAIT {
                return Err(format!("eth1 of {name} did not come back"));
            }
        }
        seen.push(started.elapsed());
    }
    let mut own_replumb: Vec<Duration> = watch
        .log()
        .lines()
        .filter(|l| l.contains(": plumbed eth1 in "))
        .filter_map(|l| l.rsplit(" in ").next().and_then(parse_duration))
        .collect();
    // The restarts' lines, after the catch-up's.
    own_replumb.drain(..own_replumb.len().saturating_sub(RESTARTS));
    let seen = Stats::of(seen);
    let own_replumb = Stats::of(own_replumb);
    let (stop, _) = watch.stop()?;
    drop(containers);

    let rate = n as f64 / own.as_secs_f64();
    Ok(vec![
        format!(
            "watch, N={n}: catch-up {:.0} ms by its log ({rate:.0} containers/s; {:.0} ms from exec), \
             target >= {RATE_TARGET}/s: {}",
            ms(own),
            ms(wall),
            verdict(rate >= RATE_TARGET)
        ),
        format!(
            "watch, N={n}: VmRSS {rss} KiB, VmHWM {hwm} KiB{}; idle CPU {idle} ticks in 3 s: {}",
            if n == 100 {
                format!(", target <= {MEMORY_TARGET_KIB} KiB: {}", verdict(hwm <= MEMORY_TARGET_KIB))
            } else {
                String::new()
            },
            verdict(idle == 0)
        ),
        format!(
            "watch, N={n}: re-plumb after docker start, as seen from outside: {seen}; \
             target median < {} ms: {}",
            ms(REPLUMB_TARGET),
            verdict(seen.median < REPLUMB_TARGET)
        ),
        format!("watch, N={n}: re-plumb work by its log: {own_replumb}"),
        format!("watch, N={n}: SIGTERM to exit {:.1} ms", ms(stop)),
    ])
}

/// `n` containers on the bridge, which is deleted and made again while
/// watch runs: the time from its return until every port is enslaved
/// and up, and until every container answers a ping.
fn repair(n: usize) -> Result<Vec<String>, String> {
    let id = unique();
    let host = Host::new(&id)?;
    let ns = format!("{id}-host");
    let scope = format!("pwb.watch={id}");
    let names: Vec<String> = (0..n).map(|i| format!("{id}-r{i}")).collect();
    let containers = Containers::run(&names, &scope)?;
    for (i, name) in names.iter().enumerate() {
        host.pipework(&[BRIDGE, name, &address(i)])?;
    }
    // The bridge's own address, outside `address`'s range.
    let own = "10.255.255.254/8";
    let ip = |args: &[&str]| {
        let mut argv = vec!["ip", "-n", ns.as_str()];
        argv.extend_from_slice(args);
        run(&argv)
    };
    ip(&["addr", "add", own, "dev", BRIDGE])?;

    let mut watch = Watch::start(&host, &id, &scope)?;
    watch.wait_line("caught up", WAIT)?;

    ip(&["link", "del", BRIDGE])?;
    // Back as ifup makes it: the bridge, its address, up.
    let back = Instant::now();
    ip(&["link", "add", BRIDGE, "type", "bridge", "forward_delay", "0"])?;
    ip(&["addr", "add", own, "dev", BRIDGE])?;
    ip(&["link", "set", BRIDGE, "up"])?;
    let ported = loop {
        let ports = run(&["ip", "-n", &ns, "-o", "link", "show", "master", BRIDGE, "up"])?;
        if ports.lines().count() == n {
            break back.elapsed();
        }
        if back.elapsed() > WAIT {
            return Err(format!(
                "{} of {n} ports back after {WAIT:?}:\n{}",
                ports.lines().count(),
                watch.log()
            ));
        }
        sleep(Duration::from_millis(2));
    };
    // Every container pinged at once from the bridge's address.
    let reached = std::thread::scope(|s| {
        let pings: Vec<_> = (0..n)
            .map(|i| {
                let (ns, back) = (&ns, back);
                s.spawn(move || {
                    let to = address(i);
                    let to = to.split('/').next().unwrap_or_default();
                    while back.elapsed() < WAIT {
                        if quiet_ok(&["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", to]) {
                            return Ok(back.elapsed());
                        }
                    }
                    Err(format!("{to} does not answer"))
                })
            })
            .collect();
        pings.into_iter().map(|p| p.join().expect("ping thread")).collect::<Result<Vec<_>, String>>()
    })?;
    let own_repairs: Vec<Duration> = watch
        .log()
        .lines()
        .filter(|l| l.contains(": repaired: put eth1 on br0 back in "))
        .filter_map(|l| l.rsplit(" in ").next().and_then(parse_duration))
        .collect();
    if own_repairs.is_empty() {
        return Err(format!("no repair in the log:\n{}", watch.log()));
    }
    let last = reached.iter().max().copied().unwrap_or_default();
    let (repaired, reached) = (own_repairs.len(), Stats::of(reached));
    let own_repairs = Stats::of(own_repairs);
    watch.stop()?;
    drop(containers);
    Ok(vec![
        format!(
            "watch repair, N={n}: every port enslaved and up {:.0} ms after the bridge came back; \
             target < {} ms: {}",
            ms(ported),
            ms(REPAIR_TARGET),
            verdict(ported < REPAIR_TARGET)
        ),
        format!(
            "watch repair, N={n}: each container answers a ping after the bridge came back: {reached}; \
             the last {:.0} ms",
            ms(last)
        ),
        format!("watch repair, N={n}: {repaired} repairs, work by its log: {own_repairs}"),
    ])
}

/// The `i`-th distinct address in 10.0.0.0/8, clear of .0.
fn address(i: usize) -> String {
    format!("10.{}.{}.{}/8", 1 + i / 62500, (i / 250) % 250, 1 + i % 250)
}

fn quiet_ok(argv: &[&str]) -> bool {
    std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `caught up: … in 812ms` (Debug of a Duration) as seconds.
fn seconds_in(line: &str) -> Option<Duration> {
    line.rsplit(" in ").next().and_then(parse_duration)
}

/// A Duration's Debug form (`812.4ms`, `1.2s`, `950µs`).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.split_whitespace().next()?;
    let (number, unit) = text.split_at(text.find(|c: char| c.is_alphabetic() || c == 'µ')?);
    let value: f64 = number.parse().ok()?;
    let secs = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "µs" => value / 1e6,
        "ns" => value / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

struct Watch {
    child: Child,
    log: std::path::PathBuf,
}

impl Watch {
    /// `pipework watch --only <scope>` in `host`, its log in a file named after `id`.
    fn start(host: &Host, id: &str, scope: &str) -> Result<Watch, String> {
        let log_path = std::env::temp_dir().join(format!("{id}-watch.log"));
        let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let child = host
            .command(PIPEWORK, &["watch", "--only", scope])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run pipework watch: {e}"))?;
        Ok(Watch { child, log: log_path })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_line(&mut self, what: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(what)) {
                return Ok(line.to_string());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("pipework watch exited ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("no {what:?} after {timeout:?}:\n{}", self.log()));
            }
            sleep(Duration::from_millis(5));
        }
    }

    fn proc_file(&self, name: &str) -> Result<String, String> {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).map_err(|e| e.to_string())
    }

    fn memory_kib(&self) -> Result<(u64, u64), String> {
        let status = self.proc_file("status")?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/{}/status", self.child.id()))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    fn cpu_ticks(&self) -> Result<u64, String> {
        let stat = self.proc_file("stat")?;
        let fields: Vec<&str> =
            stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("").split_whitespace().collect();
        // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
        let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or("bad /proc stat");
        Ok(tick(11)? + tick(12)?)
    }

    fn stop(&mut self) -> Result<(Duration, std::process::ExitStatus), String> {
        let began = Instant::now();
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().map_err(|e| e.to_string())?;
        Ok((began.elapsed(), status))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The containers, started four at a time; removed on drop a few at a
/// time, each batch with a bounded wait (see `remove_containers`), also
/// when the bench fails or panics halfway.
struct Containers(Vec<String>);

impl Containers {
    fn run(names: &[String], scope: &str) -> Result<Containers, String> {
        // Guard first: a failed `docker run` may have created its container.
        let guard = Containers(names.to_vec());
        for chunk in names.chunks(4) {
            std::thread::scope(|s| {
                let runs: Vec<_> = chunk
                    .iter()
                    .map(|name| {
                        s.spawn(move || {
                            let mut argv = vec!["docker"];
                            argv.extend(docker_run(name, &["--label", scope]));
                            // Under load, runc now and then fails to start one: once more.
                            run(&argv).or_else(|_| {
                                let _ = remove_containers(std::slice::from_ref(name));
                                run(&argv)
                            })
                        })
                    })
                    .collect();
                runs.into_iter().try_for_each(|r| r.join().expect("docker run thread").map(drop))
            })?;
        }
        Ok(guard)
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        let began = Instant::now();
        match remove_containers(&self.0) {
            Ok(()) => {
                eprintln!("watch bench: {} containers removed in {:.1?}", self.0.len(), began.elapsed())
            }
            Err(e) => eprintln!("watch bench: cleanup: {e}"),
        }
    }
}
