//! CNI ADD side by side: the reference bridge plugin (containernetworking-
//! plugins, /usr/lib/cni) and pipework, the same configuration (gateway,
//! default route, host-local IPv4), each on a host namespace of its own,
//! calls alternating so that both see the same machine. host-local ADD
//! alone is timed too: both plugins run it, and its share bounds the ratio.
//! PIPEWORK_BENCH_ALSO=label=path,... adds other pipework builds to the
//! rotation, for an A/B of a change.

use std::path::PathBuf;

use super::{
    also_builds, ms, report, unique, verdict, Host, Namespaces, Outcome, Stats, NETNS_DIR, PIPEWORK,
};

const REFERENCE: &str = "/usr/lib/cni/bridge";
const IPAM: &str = "/usr/lib/cni/host-local";
const CNI_PATH: &str = "/usr/lib/cni";
const ADDS: usize = 30;
const TARGET: f64 = 0.5;

/// One program in the rotation, and the `type` its configuration names.
struct Contender {
    label: String,
    program: String,
    plugin: &'static str,
}

/// The reference, pipework, host-local alone, then the builds of `ALSO`.
fn contenders() -> Result<Vec<Contender>, String> {
    let one = |label: &str, program: &str, plugin| Contender {
        label: label.into(),
        program: program.into(),
        plugin,
    };
    let mut all = vec![
        one("reference bridge plugin", REFERENCE, "bridge"),
        one("pipework", PIPEWORK, "pipework"),
        one("host-local IPAM alone", IPAM, "host-local"),
    ];
    for (label, program) in also_builds()? {
        all.push(one(&format!("pipework {label}"), &program, "pipework"));
    }
    Ok(all)
}

/// What each contender measured.
struct Figures {
    labels: Vec<String>,
    times: Vec<Outcome>,
    /// CPU time (user + system) of each call, its children included.
    cpu: Option<Vec<Stats>>,
}

/// Each contender's row and the target's line (and the ratio of every
/// other pipework build).
pub fn report_all(failed: &mut bool) {
    let figures = bench();
    let stats: Vec<Option<Stats>> = figures
        .labels
        .iter()
        .zip(figures.times)
        .map(|(label, outcome)| report(&format!("CNI ADD, {label}"), outcome, failed))
        .collect();
    if let Some(cpu) = &figures.cpu {
        let each: Vec<String> =
            figures.labels.iter().zip(cpu).map(|(l, c)| format!("{l} {:.2} ms", ms(c.median))).collect();
        println!("CPU per ADD (user + system, IPAM included), median: {}", each.join(", "));
    }
    let [reference, ours, ipam, ..] = stats[..] else { return };
    verdict_line(reference, ours, ipam);
    for (label, other) in figures.labels.iter().zip(&stats).skip(3) {
        if let (Some(r), Some(o)) = (reference, other) {
            println!("{label}: {:.2}x of the reference", o.median.as_secs_f64() / r.median.as_secs_f64());
        }
    }
}

/// CPU time the waited-for children of this process have used so far.
fn children_cpu() -> std::time::Duration {
    // SAFETY: getrusage fills the struct it is given and touches nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// A scratch directory for IPAM and pipework's records, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench() -> Figures {
    let all = match contenders() {
        Ok(all) => all,
        Err(e) => {
            return Figures { labels: vec!["setup".into()], times: vec![Outcome::Failed(e)], cpu: None };
        }
    };
    let labels: Vec<String> = all.iter().map(|c| c.label.clone()).collect();
    let every = |outcome: &dyn Fn() -> Outcome| labels.iter().map(|_| outcome()).collect();
    if !std::path::Path::new(REFERENCE).exists() {
        let why = format!("{REFERENCE} is not installed (containernetworking-plugins)");
        return Figures { times: every(&|| Outcome::Skipped(why.clone())), labels, cpu: None };
    }
    match measure(&all) {
        Ok((times, cpu)) => {
            Figures { times: times.into_iter().map(Outcome::Measured).collect(), labels, cpu: Some(cpu) }
        }
        Err(e) => Figures { times: every(&|| Outcome::Failed(e.clone())), labels, cpu: None },
    }
}

/// Wall-clock and CPU times of each contender's ADDs, one of each in turn.
fn measure(all: &[Contender]) -> Result<(Vec<Stats>, Vec<Stats>), String> {
    let id = unique();
    let scratch = Scratch(std::env::temp_dir().join(format!("{id}-cni")));
    std::fs::create_dir(&scratch.0).map_err(|e| format!("mkdir {}: {e}", scratch.0.display()))?;
    let n = all.len();
    let hosts = (0..n).map(|k| Host::new(&format!("{id}h{k}"))).collect::<Result<Vec<_>, _>>()?;
    let ctrs = Namespaces::add((0..n * ADDS).map(|i| format!("{id}-c{i}")).collect())?;
    let state = scratch.0.join("state").to_string_lossy().into_owned();
    let mut times = vec![Vec::new(); n];
    let mut cpu = vec![Vec::new(); n];
    for i in 0..ADDS {
        // Each round starts one further on: the call after the reference's
        // finds the machine still busy with what that one left (its exit,
        // the kernel's work on its links), so no contender always follows it.
        for k in (0..n).map(|j| (i + j) % n) {
            let c = &all[k];
            let ctr = &ctrs.names()[n * i + k];
            let netns = format!("{NETNS_DIR}/{ctr}");
            let conf = config(c.plugin, &scratch.0.join(format!("ipam-{k}")));
            let env = [
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", ctr.as_str()),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", CNI_PATH),
                ("PIPEWORK_STATE_DIR", state.as_str()),
            ];
            let before = children_cpu();
            let (took, _) = hosts[k].time(&c.program, &[], &env, conf.as_bytes())?;
            times[k].push(took);
            cpu[k].push(children_cpu().saturating_sub(before));
        }
    }
    Ok((times.into_iter().map(Stats::of).collect(), cpu.into_iter().map(Stats::of).collect()))
}

fn config(plugin: &str, ipam_dir: &std::path::Path) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"bench","type":"{plugin}","bridge":"cni0","isGateway":true,
        "isDefaultGateway":true,"ipam":{{"type":"host-local","dataDir":"{}",
        "ranges":[[{{"subnet":"10.66.0.0/16"}}]]}}}}"#,
        ipam_dir.display()
    )
}

fn verdict_line(reference: Option<Stats>, ours: Option<Stats>, ipam: Option<Stats>) {
    let (Some(r), Some(p)) = (reference, ours) else {
        println!("target: CNI ADD median <= {TARGET} x the reference's: not measured");
        return;
    };
    let ratio = p.median.as_secs_f64() / r.median.as_secs_f64();
    println!(
        "target: CNI ADD median <= {TARGET} x the reference's: {} ({:.2} ms vs {:.2} ms, {ratio:.2}x)",
        verdict(ratio <= TARGET),
        ms(p.median),
        ms(r.median)
    );
    if let Some(i) = ipam {
        let own = |s: Stats| ms(s.median) - ms(i.median);
        println!(
            "without host-local's {:.2} ms: pipework {:.2} ms, reference {:.2} ms ({:.2}x)",
            ms(i.median),
            own(p),
            own(r),
            own(p) / own(r)
        );
    }
}
