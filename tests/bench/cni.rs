//! CNI ADD side by side: the reference bridge plugin (containernetworking-
//! plugins, /usr/lib/cni) and pipework, the same configuration (gateway,
//! default route, host-local IPv4), each on a host namespace of its own,
//! calls alternating so that both see the same machine. host-local ADD
//! alone is timed too: both plugins run it, and its share bounds the ratio.

use std::path::PathBuf;

use super::{ms, report, unique, verdict, Host, Namespaces, Outcome, Stats, NETNS_DIR, PIPEWORK};

const REFERENCE: &str = "/usr/lib/cni/bridge";
const IPAM: &str = "/usr/lib/cni/host-local";
const CNI_PATH: &str = "/usr/lib/cni";
const ADDS: usize = 30;
const TARGET: f64 = 0.5;

struct Figures {
    reference: Outcome,
    pipework: Outcome,
    ipam: Outcome,
    /// CPU time (user + system) of each call, its children included.
    cpu: Option<[Stats; 3]>,
}

/// Both rows and the target's line.
pub fn report_all(failed: &mut bool) {
    let figures = bench();
    let reference = report("CNI ADD, reference bridge plugin", figures.reference, failed);
    let ours = report("CNI ADD, pipework", figures.pipework, failed);
    let ipam = report("CNI ADD, host-local IPAM alone", figures.ipam, failed);
    if let Some([r, p, i]) = figures.cpu {
        println!(
            "CPU per ADD (user + system, IPAM included), median: reference {:.2} ms, pipework {:.2} ms, host-local {:.2} ms",
            ms(r.median),
            ms(p.median),
            ms(i.median)
        );
    }
    verdict_line(reference, ours, ipam);
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
    if !std::path::Path::new(REFERENCE).exists() {
        let why = || Outcome::Skipped(format!("{REFERENCE} is not installed (containernetworking-plugins)"));
        return Figures { reference: why(), pipework: why(), ipam: why(), cpu: None };
    }
    match measure() {
        Ok(([reference, pipework, ipam], cpu)) => Figures {
            reference: Outcome::Measured(reference),
            pipework: Outcome::Measured(pipework),
            ipam: Outcome::Measured(ipam),
            cpu: Some(cpu),
        },
        Err(e) => Figures {
            reference: Outcome::Failed(e.clone()),
            pipework: Outcome::Failed(e.clone()),
            ipam: Outcome::Failed(e),
            cpu: None,
        },
    }
}

/// Wall-clock and CPU times of each plugin's ADDs.
fn measure() -> Result<([Stats; 3], [Stats; 3]), String> {
    let id = unique();
    let scratch = Scratch(std::env::temp_dir().join(format!("{id}-cni")));
    std::fs::create_dir(&scratch.0).map_err(|e| format!("mkdir {}: {e}", scratch.0.display()))?;
    let hosts = [Host::new(&format!("{id}r"))?, Host::new(&format!("{id}p"))?, Host::new(&format!("{id}i"))?];
    let ctrs = Namespaces::add((0..3 * ADDS).map(|i| format!("{id}-c{i}")).collect())?;
    let state = scratch.0.join("state").to_string_lossy().into_owned();
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new(), Vec::new()];
    let plugins = [(REFERENCE, "bridge"), (PIPEWORK, "pipework"), (IPAM, "host-local")];
    for i in 0..ADDS {
        for (k, (program, plugin)) in plugins.into_iter().enumerate() {
            let ctr = &ctrs.names()[3 * i + k];
            let netns = format!("{NETNS_DIR}/{ctr}");
            let conf = config(plugin, &scratch.0.join(format!("ipam-{plugin}")));
            let env = [
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", ctr.as_str()),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", CNI_PATH),
                ("PIPEWORK_STATE_DIR", state.as_str()),
            ];
            let before = children_cpu();
            let (took, _) = hosts[k].time(program, &[], &env, conf.as_bytes())?;
            times[k].push(took);
            cpu[k].push(children_cpu().saturating_sub(before));
        }
    }
    Ok((times.map(Stats::of), cpu.map(Stats::of)))
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
