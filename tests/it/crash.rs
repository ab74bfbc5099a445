//! Issue 24: a run killed with SIGKILL in the middle of its plan (test
//! builds: PIPEWORK_KILL_AT=n kills it just before step n) leaves an intent
//! in $PIPEWORK_STATE_DIR/intents/. The next command of any kind (show,
//! check, detach, the same attach again, watch's catch-up, the CNI plugin's
//! next ADD, DEL or CHECK, mkbridge and `loop ensure` again) rolls the dead
//! run back before its own work, says so on stderr, and leaves host and
//! guest exactly as they were before the killed run. A dead run that cannot
//! be rolled back is reported until a later command can; a live run is
//! never touched. Read back through `ip -j`, `iptables -S`, `nft`, the nodes
//! on disk and host-local's files.

#![cfg(feature = "failpoints")]

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

/// What a recovering command prints on stderr, once per run it rolled back.
const ROLLED_BACK: &str = "rolled back an interrupted run of pid ";

/// What check prints of a dead run it could not roll back.
const INTERRUPTED: &str = "interrupted run of pid ";

/// No plan is this long; reaching it means the kill never stops coming.
const MAX_STEPS: usize = 40;

// ---- killed runs, and what the next command said of them

/// The lines of `text` with `what` followed by `pid` (the whole number).
fn lines_naming<'a>(text: &'a str, what: &str, pid: u32) -> Vec<&'a str> {
    let key = format!("{what}{pid}");
    text.lines()
        .filter(|l| {
            l.match_indices(&key)
                .any(|(at, _)| !l[at + key.len()..].starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect()
}

/// The run `child` was killed at its failpoint: its pid. None when it got
/// through (the kill came after its last step) and exited 0.
#[track_caller]
fn killed(child: Child) -> Option<u32> {
    let pid = child.id();
    let out = child.wait_with_output().expect("the run did not end");
    if out.status.success() {
        return None;
    }
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{:?}\n{}", out.status, stderr(&out));
    Some(pid)
}

/// `args` run in `host` with PIPEWORK_KILL_AT=`k` (and `env`): the pid of
/// the killed run, which left its intent, or None if it got through.
fn kill_at(host: &Netns, args: &[&str], k: usize, env: &[(&str, &str)]) -> Option<u32> {
    let at = k.to_string();
    let mut all = vec![("PIPEWORK_KILL_AT", at.as_str())];
    all.extend_from_slice(env);
    let pid = killed(pipework_child(host, args, &all))?;
    if k > 1 {
        assert!(!intents(&host.state_dir()).is_empty(), "{args:?} killed before step {k} left no intent");
    }
    Some(pid)
}

/// The runs a recovery rolls back after run `pid` was killed before step
/// `k`: a run killed before its first step has changed nothing, and the
/// intent is written with that step; there is nothing to roll back, and
/// nothing is said.
fn rolled_back(k: usize, pid: u32) -> Vec<u32> {
    if k == 1 {
        Vec::new()
    } else {
        vec![pid]
    }
}

/// The files in `intents/` of the state dir `state` (its dot files left
/// out): a run's intent is one; the file may stay, marked free, for the
/// next run, so only a check tells a dead run's intent from a free one.
fn intents(state: &str) -> Vec<String> {
    let dir = std::path::Path::new(state).join("intents");
    let names =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
    names.map(|n| n.filter(|n| !n.starts_with('.')).collect()).unwrap_or_default()
}

/// `err` (a recovering command's stderr) has one line saying so for each
/// run of `pids`, and no other such line.
#[track_caller]
fn assert_rolled_back(what: &str, err: &str, pids: &[u32]) {
    for pid in pids {
        let lines = lines_naming(err, ROLLED_BACK, *pid);
        assert_eq!(lines.len(), 1, "{what}: one `{ROLLED_BACK}{pid}` line expected:\n{err}");
    }
    let all = err.lines().filter(|l| l.contains(ROLLED_BACK)).count();
    assert_eq!(all, pids.len(), "{what}: runs rolled back other than {pids:?}:\n{err}");
}

/// After the recovery no intent of a dead run is left: a `check`
/// (`check`'s output) has nothing to roll back or report, and exits 0.
#[track_caller]
fn assert_clean_check(what: &str, check: &Output) {
    let (out, err) = (stdout(check), stderr(check));
    assert_eq!(check.status.code(), Some(0), "{what}: a second check\n--- stdout\n{out}--- stderr\n{err}");
    assert!(
        !out.contains("interrupted") && !err.contains("interrupted"),
        "{what}: a second check\n{out}{err}"
    );
}

/// A snapshot with the links' MACs left out (a veth's are random), sorted
/// again.
fn without_macs(mut snap: Value) -> Value {
    if let Some(links) = snap["links"].as_array_mut() {
        let sorted: BTreeSet<String> = links
            .iter_mut()
            .map(|l| {
                l.as_object_mut().map(|o| o.remove("address"));
                l.to_string()
            })
            .collect();
        *links = sorted.iter().map(|s| serde_json::from_str(s).unwrap()).collect();
    }
    snap
}

// ---- an attach

/// A host whose FORWARD drops by policy (where br_netfilter hands bridged
/// frames to iptables: then an attach adds its accept rule, with a record
/// of it), and a netns guest with an uplink and a default route for the
/// attach to replace.
struct Scene {
    host: Netns,
    guest: Netns,
    label: String,
    firewall: bool,
}

/// What an attach changes: host and guest, the host's firewall rules, the
/// records of them.
struct State {
    host: Value,
    guest: Value,
    rules: String,
}

impl Scene {
    fn new() -> Scene {
        let host = Netns::new("host");
        let firewall = has_br_netfilter(&host);
        if firewall {
            host.must(&["iptables", "-P", "FORWARD", "DROP"]);
            host.must(&["ip6tables", "-P", "FORWARD", "DROP"]);
        }
        let guest = Netns::new("guest");
        guest.add_uplink("192.168.77.2/24", "192.168.77.1");
        let label = format!("netns:{}", guest.name);
        Scene { host, guest, label, firewall }
    }

    fn args(&self) -> [&str; 3] {
        ["br0", &self.label, "10.5.106.101/24@10.5.106.1"]
    }

    fn rules(&self) -> String {
        let bridges = std::path::Path::new(&self.host.state_dir()).join("bridges");
        let records: Vec<String> = std::fs::read_dir(bridges)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        format!(
            "{}{}bridge records: {records:?}",
            self.host.must(&["iptables", "-S"]),
            self.host.must(&["ip6tables", "-S"])
        )
    }

    fn state(&self) -> State {
        State {
            host: settled_snapshot(&self.host),
            guest: settled_snapshot(&self.guest),
            rules: self.rules(),
        }
    }

    /// As `before`, or the differences.
    #[track_caller]
    fn assert_as(&self, what: &str, before: &State) {
        assert_unchanged(&format!("host {what}"), &before.host, || self.host.snapshot());
        assert_unchanged(&format!("guest {what}"), &before.guest, || self.guest.snapshot());
        assert_eq!(self.rules(), before.rules, "firewall {what}");
    }

    /// What a clean attach makes (MACs aside), the attach then undone.
    fn clean_attach(&self) -> State {
        assert_success(&pipework(&self.host, &self.args()));
        let attached = State {
            host: without_macs(settled_snapshot(&self.host)),
            guest: without_macs(settled_snapshot(&self.guest)),
            rules: self.rules(),
        };
        self.undo_attach();
        attached
    }

    /// A whole attach undone: detached, and br0, which the attach made and
    /// detach keeps, deleted.
    fn undo_attach(&self) {
        assert_success(&pipework(&self.host, &["detach", &self.label]));
        self.host.ip(&["link", "del", "br0"]);
    }
}

/// The commands that roll a dead attach back before their own work.
#[derive(Clone, Copy, Debug)]
enum Next {
    Again,
    Check,
    Show,
    Detach,
    Watch,
}

const NEXT: [Next; 5] = [Next::Again, Next::Check, Next::Show, Next::Detach, Next::Watch];

impl Next {
    /// Runs it in `s`, asserting how its own work ended; returns its stderr
    /// (watch's log).
    fn run(self, s: &Scene, rolled_back: &[u32]) -> String {
        if let Next::Watch = self {
            let w = Watcher::start(&s.host, &unique("crash"), &[]);
            if !rolled_back.is_empty() {
                w.wait_log(ROLLED_BACK, Duration::from_secs(5));
            }
            return w.log();
        }
        let args: Vec<&str> = match self {
            Next::Again => s.args().to_vec(),
            Next::Check => vec!["check"],
            Next::Show => vec!["show"],
            _ => vec!["detach", &s.label],
        };
        let out = pipework(&s.host, &args);
        let (o, e) = (stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{self:?}: {args:?}\n--- stdout\n{o}--- stderr\n{e}");
        match self {
            Next::Check => assert_eq!(o, "", "{self:?}: nothing differs"),
            Next::Show => assert!(!o.contains(&s.label), "{self:?}: the rolled back guest is shown:\n{o}"),
            // As for any guest without attachments: nothing said, nothing done.
            Next::Detach => {
                assert_eq!(o, "", "{self:?}");
                assert!(
                    e.lines().all(|l| l.contains(ROLLED_BACK)),
                    "{self:?}: the recovery's lines alone:\n{e}"
                );
            }
            _ => {}
        }
        e
    }
}

/// An attach making a bridge, its port, an address, a default route (and a
/// FORWARD accept rule) killed before each step in turn; the next command,
/// each kind in turn, rolls it back: host, guest and rules as before. The
/// attach again then succeeds, with what a clean attach makes.
#[test]
fn an_attach_killed_at_any_step_is_rolled_back_by_the_next_command() {
    let s = Scene::new();
    let plan = planned_steps(&s.host, &s.args());
    if s.firewall {
        assert!(plan.iter().any(|l| l.starts_with("iptables ")), "no FORWARD rule planned: {plan:#?}");
    }
    let before = s.state();
    let attached = s.clean_attach();
    s.assert_as("after a clean attach and its undoing", &before);

    // Past its steps a run has two failpoints more (src/apply/mod.rs):
    // before its record is written, and after. Killed before, it is rolled
    // back as at any step; killed after, it is whole, and kept, unsaid.
    let n = plan.len();
    for k in 1..=n + 1 {
        let next = NEXT[(k - 1) % NEXT.len()];
        let step = plan.get(k - 1).map_or("its record", String::as_str);
        let what = format!("killed before step {k} ({step}), then {next:?}");
        let pid = kill_at(&s.host, &s.args(), k, &[]).unwrap_or_else(|| panic!("{what}: not killed"));
        let rolled = rolled_back(k, pid);
        let err = next.run(&s, &rolled);
        assert_rolled_back(&what, &err, &rolled);
        if let Next::Again = next {
            assert_attached(&s, &what, &attached);
            s.undo_attach();
        }
        s.assert_as(&what, &before);
        assert_clean_check(&what, &pipework(&s.host, &["check"]));
    }
    let what = "killed after its record was written, then check";
    kill_at(&s.host, &s.args(), n + 2, &[]).unwrap_or_else(|| panic!("{what}: not killed"));
    let check = pipework(&s.host, &["check"]);
    assert_eq!(check.status.code(), Some(0), "{what}: {}{}", stdout(&check), stderr(&check));
    assert_rolled_back(what, &stderr(&check), &[]);
    assert_attached(&s, what, &attached);
    let show = stdout(&pipework(&s.host, &["show"]));
    assert!(show.lines().any(|l| l.contains(&s.label) && l.contains("10.5.106.101/24")), "{what}: {show}");
    s.undo_attach();
    s.assert_as(what, &before);
    assert!(kill_at(&s.host, &s.args(), n + 3, &[]).is_none(), "killed past the run's end");
}

/// An attach on a guest whose dead run another command is rolling back
/// (a check, paused once it has taken the run) waits for that rollback,
/// then plans on what it left: it succeeds, with what a clean attach
/// makes, and says nothing of the run the check rolled back.
#[test]
fn an_attach_waits_for_a_rollback_under_way_on_its_guest() {
    let s = Scene::new();
    let before = s.state();
    let attached = s.clean_attach();
    // Killed with its bridge, its veth and the port made.
    let pid = kill_at(&s.host, &s.args(), 5, &[]).expect("not killed");
    let check = pipework_child(&s.host, &["check"], &[("PIPEWORK_RECOVERY_PAUSE_MS", "1500")]);
    let slots = std::path::Path::new(&s.host.state_dir()).join("intents");
    wait_for("the check to take the run", Duration::from_secs(10), || {
        let texts =
            std::fs::read_dir(&slots).ok()?.flatten().filter_map(|e| std::fs::read_to_string(e.path()).ok());
        texts.into_iter().any(|t| t.starts_with("{\"state\":\"recovering\"")).then_some(())
    });
    let again = pipework(&s.host, &s.args());
    assert_success(&again);
    assert_rolled_back("the attach", &stderr(&again), &[]);
    let check = check.wait_with_output().expect("the check did not end");
    assert_eq!(check.status.code(), Some(0), "{}{}", stdout(&check), stderr(&check));
    assert_rolled_back("the check", &stderr(&check), &[pid]);
    assert_attached(&s, "after the attach that waited", &attached);
    s.undo_attach();
    s.assert_as("after the attach that waited, undone", &before);
}

/// Host and guest as a clean attach left them (`attached`), its MACs
/// aside, and nothing differs from the record.
#[track_caller]
fn assert_attached(s: &Scene, what: &str, attached: &State) {
    assert_unchanged(&format!("host {what}"), &attached.host, || without_macs(s.host.snapshot()));
    assert_unchanged(&format!("guest {what}"), &attached.guest, || without_macs(s.guest.snapshot()));
    assert_eq!(s.rules(), attached.rules, "{what}");
    assert_clean_check(what, &pipework(&s.host, &["check"]));
}

/// The host side's name a plan gives a veth (`ip link add <name> ... type veth`).
fn planned_veth(plan: &[String]) -> String {
    let step = plan.iter().find(|s| s.starts_with("ip link add ") && s.contains("type veth"));
    let step = step.unwrap_or_else(|| panic!("no veth in the plan: {plan:#?}"));
    step.split_whitespace().nth(3).unwrap().to_owned()
}

/// Two runs on one container, both killed mid-way: eth1's pauses (alive)
/// before its step 5, its veth a port of the bridge it made, and is killed
/// there; meanwhile eth2's is killed before its step 4, its own veth a
/// port. One check rolls both back: two lines, and the container and host
/// as before.
#[test]
fn two_runs_killed_on_one_guest_are_rolled_back_by_one_check() {
    let host = Netns::new("host");
    let ctr = Container::run("ctr");
    ctr.add_uplink("192.168.77.2/24", "192.168.77.1");
    let (host_before, ctr_before) = (settled_snapshot(&host), settled_snapshot(&ctr));
    let eth1 = ["br0", ctr.name.as_str(), "10.5.106.101/24@10.5.106.1"];
    let eth2 = ["br0", "-i", "eth2", ctr.name.as_str(), "10.5.107.101/24"];
    let plan = planned_steps(&host, &eth1);
    assert!(plan[0].starts_with("ip link add br0") && plan[3].ends_with("master br0"), "{plan:#?}");
    let first = pipework_child(
        &host,
        &eth1,
        &[("PIPEWORK_PAUSE_AT", "5"), ("PIPEWORK_PAUSE_MS", "3000"), ("PIPEWORK_KILL_AT", "5")],
    );
    wait_for("eth1's veth in br0", Duration::from_secs(10), || {
        host.link(&host_side("eth1", ctr.pid)).filter(|l| l.master.as_deref() == Some("br0"))
    });
    let second = kill_at(&host, &eth2, 4, &[]).expect("eth2's run was not killed");
    assert_eq!(host.ports("br0").len(), 2, "eth2's veth is no port of br0");
    let first = killed(first).expect("eth1's run was not killed");

    let check = pipework(&host, &["check"]);
    assert_eq!(check.status.code(), Some(0), "{}{}", stdout(&check), stderr(&check));
    assert_rolled_back("check", &stderr(&check), &[first, second]);
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
    assert_clean_check("after two runs", &pipework(&host, &["check"]));
}

/// A check while a run on another guest is alive (paused mid-way, its veth
/// a port of br0) rolls back the dead run only: the live one finishes,
/// whole and shown.
#[test]
fn a_check_beside_a_live_run_rolls_back_the_dead_one_only() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let (a, b) = (Netns::new("ga"), Netns::new("gb"));
    let (host_before, a_before) = (settled_snapshot(&host), settled_snapshot(&a));
    let (a_label, b_label) = (format!("netns:{}", a.name), format!("netns:{}", b.name));
    let a_args = ["br0", a_label.as_str(), "10.5.106.101/24@10.5.106.1"];
    let b_args = ["br0", b_label.as_str(), "10.5.106.102/24@10.5.106.1"];
    let (a_plan, b_plan) = (planned_steps(&host, &a_args), planned_steps(&host, &b_args));
    assert!(b_plan[2].ends_with("master br0"), "{b_plan:#?}");
    let b_veth = planned_veth(&b_plan);

    let b_run = pipework_child(&host, &b_args, &[("PIPEWORK_PAUSE_AT", "4"), ("PIPEWORK_PAUSE_MS", "4000")]);
    wait_for("B's veth in br0", Duration::from_secs(10), || {
        host.link(&b_veth).filter(|l| l.master.as_deref() == Some("br0"))
    });
    let a_pid = kill_at(&host, &a_args, 5, &[]).expect("A's run was not killed");
    let a_veth = planned_veth(&a_plan);
    assert!(host.link(&a_veth).is_some(), "A's veth is not there");

    let mut b_run = b_run;
    let check = pipework(&host, &["check"]);
    assert!(b_run.try_wait().expect("B's status").is_none(), "B ended before the check did");
    assert_eq!(check.status.code(), Some(0), "{}{}", stdout(&check), stderr(&check));
    assert_rolled_back("check beside a live run", &stderr(&check), &[a_pid]);

    let b_out = b_run.wait_with_output().expect("B did not end");
    assert_success(&b_out);
    assert_connected(&host, "br0", &b_veth, &b, "eth1", "10.5.106.102/24");
    assert_default_via(&b, Family::V4, "10.5.106.1", "eth1");
    assert_eq!(
        host.ports("br0").iter().map(|l| l.ifname.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&b_veth)
    );
    assert!(host.link(&a_veth).is_none(), "A's veth is left");
    assert_unchanged("A", &a_before, || a.snapshot());
    let show = stdout(&pipework(&host, &["show"]));
    assert!(show.lines().any(|l| l.contains(&b_label) && l.contains("10.5.106.102/24")), "{show}");
    assert!(!show.contains(&a_label), "{show}");
    assert_clean_check("after B", &pipework(&host, &["check"]));
    assert_success(&pipework(&host, &["detach", &b_label]));
    assert_unchanged("host after B's detach", &host_before, || host.snapshot());
}

/// Every undo of the recovery failing (PIPEWORK_FAIL_RECOVERY=1 in the
/// recovering command's environment), the dead run is reported: check
/// names it and exits 1, show lists it as interrupted, its changes stay.
/// A later check without the failure rolls it back.
#[test]
fn a_run_that_cannot_be_rolled_back_is_reported_until_it_can() {
    let s = Scene::new();
    let plan = planned_steps(&s.host, &s.args());
    let before = s.state();
    let k = plan.len();
    let pid = kill_at(&s.host, &s.args(), k, &[]).expect("not killed");
    let left = s.state();
    assert_ne!(left.host, before.host, "killed before its last step, the run changed nothing on the host");

    let failing = [("PIPEWORK_FAIL_RECOVERY", "1")];
    let check = pipework_env(&s.host, &["check"], &failing);
    let said = format!("{}{}", stdout(&check), stderr(&check));
    assert_eq!(check.status.code(), Some(1), "{said}");
    assert!(!lines_naming(&said, INTERRUPTED, pid).is_empty(), "no `{INTERRUPTED}{pid}` line:\n{said}");
    assert!(lines_naming(&said, ROLLED_BACK, pid).is_empty(), "{said}");
    s.assert_as("after a failed recovery", &left);

    let show = pipework_env(&s.host, &["show"], &failing);
    let listed = stdout(&show);
    let pid_word = pid.to_string();
    assert!(
        listed
            .lines()
            .any(|l| l.contains("interrupted")
                && l.split(|c: char| !c.is_ascii_digit()).any(|w| w == pid_word)),
        "show does not list run {pid} as interrupted:\n{listed}{}",
        stderr(&show)
    );
    s.assert_as("after show with a failing recovery", &left);

    let check = pipework(&s.host, &["check"]);
    assert_eq!(check.status.code(), Some(0), "{}{}", stdout(&check), stderr(&check));
    assert_rolled_back("check", &stderr(&check), &rolled_back(k, pid));
    s.assert_as("after the recovery", &before);
    assert_clean_check("after the recovery", &pipework(&s.host, &["check"]));
}

// ---- the CNI plugin

/// `v` with each string in `ips` replaced by "IP": host-local hands out the
/// next free address, not the one a clean node's ADD got.
fn masked(v: Value, ips: &[String]) -> Value {
    match v {
        Value::String(s) if ips.contains(&s) => json!("IP"),
        Value::Array(items) => Value::Array(items.into_iter().map(|i| masked(i, ips)).collect()),
        Value::Object(obj) => Value::Object(obj.into_iter().map(|(k, v)| (k, masked(v, ips))).collect()),
        other => other,
    }
}

/// The addresses an ADD result gives, without their prefix.
fn result_ips(result: &Value) -> Vec<String> {
    let ips = result["ips"].as_array().expect("ips");
    let mut ips: Vec<String> =
        ips.iter().map(|ip| ip["address"].as_str().unwrap().split('/').next().unwrap().to_owned()).collect();
    ips.sort();
    ips
}

/// Waits until no process is left of a call for container `id` (an IPAM
/// plugin the killed ADD started, finishing on its own).
fn wait_calls_gone(id: &str) {
    let needle = format!("CNI_CONTAINERID={id}\0");
    wait_for("the killed ADD's plugins to end", Duration::from_secs(10), || {
        let busy = std::fs::read_dir("/proc").expect("/proc").flatten().any(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
        });
        (!busy).then_some(())
    });
}

/// A CNI ADD (bridge, gateway, masquerade, host-local) killed before each
/// step in turn; the runtime's next call, ADD, DEL or CHECK in turn, rolls
/// it back first: host and container as before, no address kept by
/// host-local, no record. The ADD then makes what an ADD on a clean node
/// makes.
#[test]
fn a_cni_add_killed_at_any_step_is_rolled_back_by_the_next_call() {
    let clean = CniNode::new();
    let clean_ctr = Netns::new("ctr");
    let conf = |node: &CniNode| testnet_conf(node, "pipework", "1.0.0", json!({"ipMasq": true}));
    let clean_result = clean.add("pipework", &Attach::to(&clean_ctr, "eth0"), &conf(&clean));
    let want = masked(crate::cni::kernel_state(&clean, &clean_ctr, "eth0"), &result_ips(&clean_result));
    drop((clean_ctr, clean));

    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = conf(&node);
    let checked = with_keys(c.clone(), json!({ "prevResult": clean_result }));
    let rules = || node.host.must(&["nft", "list", "ruleset"]);
    let (host_before, ctr_before, rules_before) = (settled_snapshot(&node.host), ctr.snapshot(), rules());
    let mut killed_at = 0;
    for k in 1..=MAX_STEPS {
        let kill = k.to_string();
        let run = node.spawn("pipework", "ADD", Some(&at), &c, &[("PIPEWORK_KILL_AT", &kill)]);
        let Some(pid) = killed(run) else {
            assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at), &c, &[]));
            break;
        };
        killed_at = k;
        assert!(
            k == 1 || !intents(&node.state_dir()).is_empty(),
            "ADD killed before step {k} left no intent"
        );
        wait_calls_gone(&at.id);
        // Killed after its record was written, the ADD is whole, and kept
        // unsaid: the runtime's DEL takes it away.
        let whole = !node.records().is_empty();
        let next = if whole { "DEL" } else { ["ADD", "DEL", "CHECK"][(k - 1) % 3] };
        let what = format!("ADD killed before step {k} (whole: {whole}), then {next}");
        let out = node.call("pipework", next, Some(&at), if next == "CHECK" { &checked } else { &c }, &[]);
        // IPAM's call is noted before step 1: even a kill there leaves it to undo.
        let rolled = if whole { Vec::new() } else { vec![pid] };
        assert_rolled_back(&what, &stderr(&out), &rolled);
        match next {
            "ADD" => {
                assert_plugin_ok("pipework", &what, &out);
                let result: Value = serde_json::from_slice(&out.stdout).expect("ADD result is JSON");
                let ips = result_ips(&result);
                assert_eq!(masked(crate::cni::kernel_state(&node, &ctr, "eth0"), &ips), want, "{what}");
                assert_eq!(node.allocations(), ips, "{what}: host-local keeps others");
                assert_eq!(node.attachments().len(), 1, "{what}");
                assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at), &c, &[]));
                // A DEL keeps the bridge, which the ADD made.
                node.host.ip(&["link", "del", "cni0"]);
            }
            "DEL" => {
                assert_plugin_ok("pipework", &what, &out);
                if whole {
                    node.host.ip(&["link", "del", "cni0"]);
                }
            }
            _ => {
                let e = cni_error(&out);
                let msg = e["msg"].as_str().unwrap_or_default();
                assert!(msg.contains("no attachment recorded"), "{what}: {e}");
            }
        }
        assert_unchanged(&format!("host, {what}"), &host_before, || node.host.snapshot());
        assert_unchanged(&format!("container, {what}"), &ctr_before, || ctr.snapshot());
        assert_eq!(rules(), rules_before, "{what}");
        assert!(node.allocations().is_empty(), "{what}: {:?}", node.allocations());
        assert!(node.records().is_empty(), "{what}: {:?}", node.records());
        assert_clean_check(&what, &node.pipework(&["check"]));
    }
    assert!(killed_at > 15, "killed before each of {killed_at} steps, then the ADD got through");
}

// ---- mkbridge and loop ensure

/// mkbridge killed before each step in turn: a check puts eth0's addresses
/// and routes back (the node reaches the host again), a mkbridge again
/// completes the move.
#[test]
fn a_mkbridge_killed_at_any_step_is_rolled_back_or_completed() {
    use crate::mkbridge::{assert_moved, dockerhost, MKBRIDGE};
    let steps = {
        let (host, _node) = dockerhost();
        let out = pipework(&host, &["mkbridge", "--dry-run", "br0", "eth0"]);
        assert_success(&out);
        stdout(&out).lines().count()
    };
    // Two failpoints past the steps (src/apply/mod.rs's commit, a run's
    // record): killed there, the run has not ended, and is rolled back too.
    for k in 1..=MAX_STEPS {
        let (host, node) = dockerhost();
        let (host_before, node_before) = (settled_snapshot(&host), node.snapshot());
        let Some(pid) = kill_at(&host, MKBRIDGE, k, &[]) else {
            assert_eq!(k, steps + 3, "{steps} commands printed, and the run got through a kill at {k}");
            break;
        };
        if k % 2 == 1 {
            let what = format!("mkbridge killed before step {k}, then check");
            let check = pipework(&host, &["check"]);
            assert_eq!(check.status.code(), Some(0), "{what}: {}{}", stdout(&check), stderr(&check));
            assert_rolled_back(&what, &stderr(&check), &rolled_back(k, pid));
            assert_unchanged(&format!("host {what}"), &host_before, || host.snapshot());
            assert_unchanged(&format!("node {what}"), &node_before, || node.snapshot());
            assert!(node.ping("10.5.106.1") && node.ping("2001:db8:5::1"), "{what}: the host is unreachable");
        } else {
            let what = format!("mkbridge killed before step {k}, then mkbridge again");
            let again = pipework(&host, MKBRIDGE);
            assert_success(&again);
            assert_rolled_back(&what, &stderr(&again), &rolled_back(k, pid));
            assert_moved(&host, &node);
        }
        assert_clean_check(&format!("mkbridge killed before step {k}"), &pipework(&host, &["check"]));
    }
}

/// `loop ensure` killed before each step in turn: a check removes the nodes
/// it made and the kernel devices it added, an ensure again makes them all.
#[test]
fn a_loop_ensure_killed_at_any_step_is_rolled_back_or_completed() {
    use crate::loopdev::{assert_loop_node, count_adding_two, ensure_args};
    let alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let count = count_adding_two();
    // One step per device (add if missing), two per node (mknod, chgrp).
    let steps = 3 * count as usize;
    for k in 1..=steps {
        let dev = TempDir::new("dev");
        let args = ensure_args(count, &dev);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let pid = kill_at(&host, &args, k, &[]).unwrap_or_else(|| panic!("not killed before step {k}"));
        if k % 2 == 1 {
            let what = format!("loop ensure killed before step {k}, then check");
            let check = pipework(&host, &["check"]);
            assert_eq!(check.status.code(), Some(0), "{what}: {}{}", stdout(&check), stderr(&check));
            assert_rolled_back(&what, &stderr(&check), &rolled_back(k, pid));
            assert_eq!(dev.names(), Vec::<String>::new(), "{what}: nodes left");
            assert_eq!(alone.added(), Default::default(), "{what}: kernel devices left");
        } else {
            let what = format!("loop ensure killed before step {k}, then ensure again");
            let again = pipework(&host, &args);
            assert_success(&again);
            assert_rolled_back(&what, &stderr(&again), &rolled_back(k, pid));
            for i in 0..count {
                assert_loop_node(&dev.path.join(format!("loop{i}")), i);
            }
            assert_eq!(alone.added().len(), 2, "{what}");
            alone.remove_added();
        }
        assert_clean_check(&format!("loop ensure killed before step {k}"), &pipework(&host, &["check"]));
    }
}

// ---- an Open vSwitch attach

/// An attach to an OVS bridge (the fixture's, datapath_type=netdev) killed
/// before each step in turn; the next command, a check or the attach again
/// in turn, rolls it back: host, guest and the OVS database (ovs-vsctl) as
/// before, no port left on the bridge. Killed after its record, it is
/// kept, shown, and nothing is said.
#[test]
fn an_ovs_attach_killed_at_any_step_is_rolled_back() {
    let host = Netns::new("host");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    let guest = Netns::new("guest");
    let label = format!("netns:{}", guest.name);
    let args = [br.name.as_str(), "-i", "eth1", label.as_str(), "10.30.0.1/24"];
    let env = ovs.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = |args: &[&str]| ovs.pipework(&host, args, &[]);
    let plan = planned_steps_with(&host, &ovs, &args);
    assert!(plan.iter().any(|l| l.starts_with("ovs-vsctl ")), "no ovs-vsctl step: {plan:#?}");
    let (host_before, guest_before, db_before) =
        (settled_snapshot(&host), settled_snapshot(&guest), ovs.snapshot());
    let assert_as_before = |what: &str| {
        assert_unchanged(&format!("host {what}"), &host_before, || host.snapshot());
        assert_unchanged(&format!("guest {what}"), &guest_before, || guest.snapshot());
        assert_eq!(ovs.vsctl(&["list-ports", &br.name]), "", "{what}: ports left on {}", br.name);
        assert_eq!(ovs.snapshot(), db_before, "the OVS database {what}");
    };
    let attached = |what: &str| {
        let ports = br.ports();
        assert_eq!(ports.len(), 1, "{what}: {ports:?}");
        let port = &ports[0];
        assert_eq!(port.interface_ids.get("pipework.interface"), Some(&port.name), "{what}: {port:?}");
        assert!(host.link(&port.name).is_some(), "{what}: no host side {}", port.name);
        let addrs = guest.addrs("eth1");
        assert!(addrs.iter().any(|a| a.local == "10.30.0.1" && a.prefixlen == 24), "{what}: {addrs:?}");
        assert_clean_check(what, &run(&["check"]));
    };
    let detach = |what: &str| {
        assert_success(&run(&["detach", &label]));
        assert_as_before(&format!("{what}, then detached"));
    };

    let n = plan.len();
    for k in 1..=n + 1 {
        let again = k % 2 == 0;
        let step = plan.get(k - 1).map_or("its record", String::as_str);
        let what = format!("killed before step {k} ({step}), then {}", if again { "again" } else { "check" });
        let pid = kill_at(&host, &args, k, &env).unwrap_or_else(|| panic!("{what}: not killed"));
        let out = run(if again { &args[..] } else { &["check"] });
        let (o, e) = (stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{what}\n--- stdout\n{o}--- stderr\n{e}");
        assert_rolled_back(&what, &e, &rolled_back(k, pid));
        if again {
            attached(&what);
            detach(&what);
        } else {
            assert_eq!(o, "", "{what}: nothing differs");
            assert_as_before(&what);
            assert_clean_check(&what, &run(&["check"]));
        }
    }
    let what = "killed after its record was written, then check";
    kill_at(&host, &args, n + 2, &env).unwrap_or_else(|| panic!("{what}: not killed"));
    let check = run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{what}: {}{}", stdout(&check), stderr(&check));
    assert_rolled_back(what, &stderr(&check), &[]);
    attached(what);
    let show = stdout(&run(&["show"]));
    assert!(show.lines().any(|l| l.contains(&label) && l.contains("10.30.0.1/24")), "{what}: {show}");
    detach(what);
}

/// `planned_steps` pointed at `ovs`.
fn planned_steps_with(host: &Netns, ovs: &Ovs, args: &[&str]) -> Vec<String> {
    let out = ovs.pipework(host, &[&["--dry-run"], args].concat(), &[]);
    assert_success(&out);
    stdout(&out).lines().map(str::to_owned).collect()
}

// ---- a native DHCP attach

/// The pids of the DHCP agents (`pipework --dhcp-agent <lease file>`)
/// keeping a lease file under `state`, read from /proc.
fn agents_under(state: &str) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("/proc").flatten();
    entries
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.get(1) == Some(&&b"--dhcp-agent"[..])
                && args.get(2).is_some_and(|f| f.starts_with(state.as_bytes()));
            ours.then_some(pid)
        })
        .collect()
}

/// A native DHCP attach (dnsmasq on br0, the fixture of tests/it/dhcp.rs)
/// on a netns guest.
struct DhcpScene {
    host: Netns,
    server: DhcpServer,
    guest: Netns,
    label: String,
}

impl DhcpScene {
    fn new() -> DhcpScene {
        let host = Netns::new("host");
        let server = DhcpConfig::new("br0", "10.33.0.1/24", "10.33.0.50", "10.33.0.99").start_in(&host);
        let guest = Netns::new("guest");
        let label = format!("netns:{}", guest.name);
        DhcpScene { host, server, guest, label }
    }

    fn args(&self) -> [&str; 5] {
        ["br0", "-i", "eth1", &self.label, "dhcp"]
    }

    /// The attach killed before each step in turn, each kill rolled back
    /// by a check (no agent, no eth1, no host side, host and guest as
    /// before), until one is past the step starting its agent (the plan
    /// names that step only once the lease is in, so the kill finds it):
    /// that kill's step, pid, and its agent's pid.
    fn kill_until_an_agent_runs(&self) -> (usize, u32, u32) {
        let (host, guest) = (&self.host, &self.guest);
        let plan = planned_steps(host, &self.args());
        let veth = planned_veth(&plan);
        let (host_before, guest_before) = (settled_snapshot(host), settled_snapshot(guest));
        let state = host.state_dir();
        for k in 1..=MAX_STEPS {
            let what = format!("killed before step {k}");
            let pid =
                kill_at(host, &self.args(), k, &[]).unwrap_or_else(|| panic!("{what}: the run got through"));
            let agents = agents_under(&state);
            if let [agent] = agents[..] {
                assert!(k > plan.len(), "an agent before the DHCP step ({k}): {plan:#?}");
                return (k, pid, agent);
            }
            assert_eq!(agents, Vec::<u32>::new(), "{what}");
            let check = pipework(host, &["check"]);
            assert_eq!(check.status.code(), Some(0), "{what}: {}{}", stdout(&check), stderr(&check));
            assert_rolled_back(&what, &stderr(&check), &rolled_back(k, pid));
            assert!(guest.link("eth1").is_none(), "{what}: eth1 left in the guest");
            assert!(host.link(&veth).is_none(), "{what}: {veth} left on the host");
            assert_unchanged(&format!("host, {what}"), &host_before, || host.snapshot());
            assert_unchanged(&format!("guest, {what}"), &guest_before, || guest.snapshot());
            assert_clean_check(&what, &pipework(host, &["check"]));
        }
        panic!("no kill left an agent running");
    }
}

/// A DHCP attach killed before each step until its agent runs: each kill
/// before that is rolled back by a check. (The agent left running is
/// stopped here: what a check does of it is the next test's.)
#[test]
fn a_dhcp_attach_killed_before_its_agent_started_is_rolled_back() {
    let s = DhcpScene::new();
    let (_, _, agent) = s.kill_until_an_agent_runs();
    run(&["kill", "-TERM", &agent.to_string()]);
    wait_for("the agent to go", Duration::from_secs(5), || {
        agents_under(&s.host.state_dir()).is_empty().then_some(())
    });
}

/// A DHCP attach killed just past the step starting its agent: the agent
/// runs, eth1 has its lease. A check rolls the run back, exit 0, saying
/// so: the agent is gone, having released the lease (dnsmasq's log),
/// eth1 and its host side with it, and no interrupted run is left (the
/// agent's release took the default route the run added with eth1's
/// address: its undo finds it gone).
#[test]
fn a_dhcp_attach_killed_after_its_agent_started_is_rolled_back() {
    let s = DhcpScene::new();
    let (host, guest) = (&s.host, &s.guest);
    let (host_before, guest_before) = (settled_snapshot(host), settled_snapshot(guest));
    let veth = planned_veth(&planned_steps(host, &s.args()));
    let (k, pid, agent) = s.kill_until_an_agent_runs();
    let what = format!("killed before step {k}, its agent {agent} running");
    let ip = guest.addrs("eth1").into_iter().find(|a| a.family == "inet");
    let ip = ip.unwrap_or_else(|| panic!("{what}: no lease on eth1")).local;
    s.server.wait_log(&["DHCPACK(br0)", &ip], Duration::from_secs(1));
    assert!(host.link(&veth).is_some(), "{what}: no host side {veth}");

    let check = pipework(host, &["check"]);
    let (o, e) = (stdout(&check), stderr(&check));
    let gone = || (!std::path::Path::new(&format!("/proc/{agent}")).exists()).then_some(());
    wait_for(&format!("{what}: the agent to go"), Duration::from_secs(5), gone);
    assert_eq!(agents_under(&host.state_dir()), Vec::<u32>::new(), "{what}");
    s.server.wait_log(&["DHCPRELEASE(br0)", &ip], Duration::from_secs(5));
    assert!(guest.link("eth1").is_none(), "{what}: eth1 left in the guest");
    assert!(host.link(&veth).is_none(), "{what}: {veth} left on the host");
    assert_unchanged(&format!("host, {what}"), &host_before, || host.snapshot());
    assert_unchanged(&format!("guest, {what}"), &guest_before, || guest.snapshot());
    assert_eq!(check.status.code(), Some(0), "{what}: check\n--- stdout\n{o}--- stderr\n{e}");
    assert_rolled_back(&what, &e, &[pid]);
    assert_clean_check(&what, &pipework(host, &["check"]));
}
