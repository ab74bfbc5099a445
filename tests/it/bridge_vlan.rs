//! `@VLAN` on a Linux bridge: the port on that VLAN untagged (its PVID),
//! off the bridge's default VLAN, as the CNI bridge plugin's `vlan` does,
//! with `bridge -j vlan show` and `ip -d -j link` as the oracles.

use crate::common::*;

/// What a kernel without CONFIG_BRIDGE_VLAN_FILTERING answers (EOPNOTSUPP,
/// no extended ACK), and why.
const NO_FILTERING: &str =
    "this kernel's bridges cannot filter VLANs: Operation not supported (it lacks CONFIG_BRIDGE_VLAN_FILTERING)";

fn vlan_filtering(host: &Netns, bridge: &str) -> u64 {
    let v = host.ip_j(&["-d", "link", "show", bridge]);
    v[0]["linkinfo"]["info_data"]["vlan_filtering"].as_u64().unwrap()
}

/// Whether this kernel's bridges can filter VLANs (CONFIG_BRIDGE_VLAN_FILTERING):
/// tried on a bridge of a throwaway namespace.
fn kernel_filters_vlans() -> bool {
    let ns = Netns::new("vprobe");
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    let out = quiet(&["ip", "-n", &ns.name, "link", "set", "br0", "type", "bridge", "vlan_filtering", "1"]);
    if !out.status.success() {
        eprintln!("skipped: this kernel's bridges cannot filter VLANs ({})", stderr(&out).trim());
    }
    out.status.success()
}

fn attach(host: &Netns, bridge: &str, c: &Container, ip: &str, vlan: &str) {
    assert_success(&pipework(host, &[bridge, &c.name, ip, vlan]));
}

#[test]
fn vlans_separate_guests_on_a_bridge_pipework_makes() {
    if !kernel_filters_vlans() {
        return;
    }
    let host = Netns::new("vlan");
    let (a, b, c) = (Container::run("a"), Container::run("b"), Container::run("c"));
    attach(&host, "br5", &a, "10.31.0.1/24", "02:12:34:56:78:9b@10");
    attach(&host, "br5", &b, "10.31.0.2/24", "@10");
    attach(&host, "br5", &c, "10.31.0.3/24", "@20");

    assert_eq!(vlan_filtering(&host, "br5"), 1);
    let port = host_side("eth1", a.pid);
    assert_eq!(
        port_vlans(&host.name, &port),
        vec![(10, vec!["PVID".to_string(), "Egress Untagged".to_string()])]
    );
    assert_eq!(port_vlans(&host.name, &host_side("eth1", c.pid))[0].0, 20);
    assert_eq!(a.must_link("eth1").address, "02:12:34:56:78:9b");

    assert!(a.ping("10.31.0.2"), "VLAN 10 to VLAN 10");
    assert!(
        !a.exec(&["ping", "-c", "2", "-W", "1", "10.31.0.3"]).status.success(),
        "VLAN 10 reached VLAN 20"
    );
}

#[test]
fn an_existing_filtering_bridge_takes_vlan_and_untagged_ports() {
    if !kernel_filters_vlans() {
        return;
    }
    let host = Netns::new("vlan");
    host.add_bridge("br0", None);
    host.ip(&["link", "set", "br0", "type", "bridge", "vlan_filtering", "1"]);
    let (a, b, c) = (Container::run("a"), Container::run("b"), Container::run("c"));
    attach(&host, "br0", &a, "10.31.0.1/24", "@30");
    assert_success(&pipework(&host, &["br0", &b.name, "10.31.0.2/24"]));
    assert_success(&pipework(&host, &["br0", &c.name, "10.31.0.3/24"]));

    assert_eq!(
        port_vlans(&host.name, &host_side("eth1", a.pid)),
        vec![(30, vec!["PVID".into(), "Egress Untagged".into()])]
    );
    // Untagged ports are left as the bridge makes them: on its default VLAN 1.
    assert_eq!(
        port_vlans(&host.name, &host_side("eth1", b.pid)),
        vec![(1, vec!["PVID".into(), "Egress Untagged".into()])]
    );
    assert!(b.ping("10.31.0.3"), "untagged to untagged");
    assert!(!a.exec(&["ping", "-c", "2", "-W", "1", "10.31.0.2"]).status.success(), "VLAN 30 reached VLAN 1");
}

/// Without the kernel's support the run fails at the filtering step and
/// rolls back; the bridge it made goes again.
#[test]
fn a_kernel_without_vlan_filtering_is_named() {
    if kernel_filters_vlans() {
        eprintln!("skipped: this kernel's bridges filter VLANs");
        return;
    }
    let host = Netns::new("vlan");
    let a = Container::run("a");
    let out = assert_refused(pipework, &host, Some(&a), &["br5", &a.name, "10.31.0.1/24", "@10"]);
    assert_eq!(
        stderr(&out).trim_end(),
        format!("pipework: step 2/10 failed (ip link set br5 type bridge vlan_filtering 1): {NO_FILTERING}")
    );
}

#[test]
fn every_step_rolls_back_on_a_bridge_pipework_makes() {
    let host = Netns::new("vlan");
    let a = Container::run("a");
    let args = ["br6", a.name.as_str(), "10.31.0.1/24", "@10"];
    let dry = pipework(&host, &[&["--dry-run"], &args[..]].concat());
    let text = stdout(&dry);
    assert!(text.contains("ip link set br6 type bridge vlan_filtering 1\n"), "{text}");
    let port = host_side("eth1", a.pid);
    let want =
        format!("bridge vlan add dev {port} vid 10 pvid untagged && bridge vlan del dev {port} vid 1\n");
    assert!(text.contains(&want), "{text}");
    assert_every_step_rolls_back(&host, &a, text.lines().count(), |at| {
        pipework_env(&host, &args, &[("PIPEWORK_FAIL_AT", at)])
    });
}

/// An existing bridge with a port already, and no VLAN filtering.
fn bridge_with_a_port(host: &Netns) -> Container {
    host.add_bridge("br0", None);
    let b = Container::run("b");
    assert_success(&pipework(host, &["br0", &b.name, "10.31.0.2/24"]));
    b
}

/// `--vlan-filtering` plans the bridge's filtering first, in iproute2's words.
#[test]
fn vlan_filtering_on_request_is_planned_first() {
    let host = Netns::new("vlan");
    let _b = bridge_with_a_port(&host);
    let a = Container::run("a");
    let plan = planned_steps(&host, &["--vlan-filtering", "br0", &a.name, "10.31.0.1/24", "@10"]);
    assert_eq!(plan[0], "ip link set br0 type bridge vlan_filtering 1", "{plan:?}");
    // A bridge that filters already needs nothing more.
    host.ip(&["link", "add", "br1", "type", "bridge"]);
    if kernel_filters_vlans() {
        host.ip(&["link", "set", "br1", "type", "bridge", "vlan_filtering", "1"]);
        let plan = planned_steps(&host, &["--vlan-filtering", "br1", &a.name, "10.31.0.1/24", "@10"]);
        assert!(!plan.iter().any(|s| s.contains("vlan_filtering")), "{plan:?}");
    }
}

/// On a kernel without filtering, the request fails at its step with the
/// kernel's words, and the bridge, its port and the guest are as before.
#[test]
fn vlan_filtering_on_request_without_the_kernels_support() {
    if kernel_filters_vlans() {
        eprintln!("skipped: this kernel's bridges filter VLANs");
        return;
    }
    let host = Netns::new("vlan");
    let _b = bridge_with_a_port(&host);
    let a = Container::run("a");
    let args = ["--vlan-filtering", "br0", &a.name, "10.31.0.1/24", "@10"];
    let out = assert_refused(pipework, &host, Some(&a), &args);
    let step = "step 1/9 failed (ip link set br0 type bridge vlan_filtering 1)";
    assert_eq!(stderr(&out).trim_end(), format!("pipework: {step}: {NO_FILTERING}"));
}

/// Filtering turned on at the request of one attach: the port on its VLAN,
/// the request recorded, `check` naming a bridge that stops filtering; a
/// run failing at any step turns filtering off again.
#[test]
fn vlan_filtering_on_request_is_applied_recorded_and_undone() {
    if !kernel_filters_vlans() {
        return;
    }
    let host = Netns::new("vlan");
    let b = bridge_with_a_port(&host);
    let a = Container::run("a");
    let args = ["--vlan-filtering", "br0", a.name.as_str(), "10.31.0.1/24", "@10"];
    let steps = planned_steps(&host, &args).len();
    assert_every_step_rolls_back(&host, &a, steps, |at| {
        pipework_env(&host, &args, &[("PIPEWORK_FAIL_AT", at)])
    });
    assert_eq!(vlan_filtering(&host, "br0"), 0);

    assert_success(&pipework(&host, &args));
    assert_eq!(vlan_filtering(&host, "br0"), 1);
    let port = host_side("eth1", a.pid);
    assert_eq!(port_vlans(&host.name, &port), vec![(10, vec!["PVID".into(), "Egress Untagged".into()])]);
    assert!(!a.exec(&["ping", "-c", "2", "-W", "1", "10.31.0.2"]).status.success(), "VLAN 10 reached VLAN 1");
    let show: serde_json::Value =
        serde_json::from_str(&stdout(&pipework(&host, &["show", &a.name, "--json"]))).unwrap();
    assert_eq!(show[0]["vlan_filtering"], true, "{show}");
    assert_success(&pipework(&host, &["check", &a.name]));

    host.ip(&["link", "set", "br0", "type", "bridge", "vlan_filtering", "0"]);
    let out = pipework(&host, &["check", &a.name]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), format!("bridge br0 does not filter VLANs, recorded {port} on VLAN 10\n"));
    drop(b);
}

/// `check` against the port's VLANs as `bridge vlan show` lists them: its
/// PVID moved, its VLAN left tagged, its VLAN gone are each named; put
/// back, the port passes again.
#[test]
fn check_names_a_port_whose_vlan_changed() {
    if !kernel_filters_vlans() {
        return;
    }
    let host = Netns::new("vlan");
    let a = Container::run("a");
    attach(&host, "br5", &a, "10.31.0.1/24", "@10");
    let port = host_side("eth1", a.pid);
    let bridge_vlan =
        |args: &[&str]| run(&[&["bridge", "-n", &host.name, "vlan"], args, &["dev", &port]].concat());
    let check = || {
        let out = pipework(&host, &["check", &a.name]);
        (out.status.code(), stdout(&out))
    };
    assert_eq!(check(), (Some(0), String::new()));

    bridge_vlan(&["add", "vid", "200", "pvid", "untagged"]);
    assert_eq!(port_vlans(&host.name, &port)[0], (10, vec!["Egress Untagged".into()]));
    assert_eq!(check(), (Some(1), format!("host side {port} has PVID 200, recorded VLAN 10\n")));
    let out = pipework(&host, &["check", &a.name, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["differences"][0]["kind"], "vlan", "{json}");
    assert_eq!(json["differences"][0]["interface"], "eth1", "{json}");

    bridge_vlan(&["add", "vid", "10", "pvid"]);
    assert_eq!(port_vlans(&host.name, &port)[0], (10, vec!["PVID".into()]));
    assert_eq!(check(), (Some(1), format!("host side {port} sends VLAN 10 tagged, recorded untagged\n")));

    bridge_vlan(&["del", "vid", "10"]);
    assert_eq!(check(), (Some(1), format!("host side {port} is not on VLAN 10\n")));

    bridge_vlan(&["add", "vid", "10", "pvid", "untagged"]);
    bridge_vlan(&["del", "vid", "200"]);
    assert_eq!(port_vlans(&host.name, &port), vec![(10, vec!["PVID".into(), "Egress Untagged".into()])]);
    assert_eq!(check(), (Some(0), String::new()));
}
