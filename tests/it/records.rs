//! Records, `show`, `check` and `detach` against a real dockerd and kernel.
//! Oracles: `ip -j`, `docker inspect`, and the JSON files in the host's
//! state directory, read here with serde_json.

use std::path::Path;

use crate::common::*;
use serde_json::Value;

const ADDR: &str = "10.5.106.101/24";
const RUNBOOK: &str = "10.5.106.101/24@10.5.106.1";

/// The JSON files in `host`'s state directory, by file name.
fn record_files(host: &Netns) -> Vec<(String, Value)> {
    let Ok(dir) = std::fs::read_dir(host.state_dir()) else { return Vec::new() };
    let mut files: Vec<(String, Value)> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), serde_json::from_str(&text).unwrap())
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// A Docker host with a bridge br0 and a running container attached to it.
fn attached() -> (Netns, Container) {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("rec");
    assert_success(&pipework(&host, &["br0", &ctr.name, RUNBOOK]));
    (host, ctr)
}

fn check(host: &Netns, args: &[&str]) -> (i32, Vec<String>) {
    let out = pipework(host, &[&["check"], args].concat());
    (out.status.code().unwrap(), stdout(&out).lines().map(String::from).collect())
}

#[test]
fn the_record_on_disk_is_what_the_kernel_and_docker_say() {
    let (host, ctr) = attached();
    let id = ctr.inspect("{{.Id}}");
    let files = record_files(&host);
    assert_eq!(files.len(), 1);
    let (name, rec) = &files[0];
    assert_eq!(name, &format!("docker-{id}.json"));
    assert_eq!(rec["version"], 1);
    assert_eq!(
        rec["guest"]["find"],
        serde_json::json!({"kind": "container", "runtime": "docker", "id": id, "name": ctr.name})
    );
    assert_eq!(rec["host"]["netns"], host.name.as_str());
    let eth1 = ctr.must_link("eth1");
    let side = host_side("eth1", ctr.pid);
    let iface = &rec["interfaces"][0];
    assert_eq!(iface["name"], "eth1");
    assert_eq!(iface["ifindex"], eth1.ifindex);
    assert_eq!(iface["how"], "veth");
    assert_eq!(iface["host_side"], side.as_str());
    assert_eq!(iface["attached_to"], serde_json::json!({"bridge": "br0"}));
    assert_eq!(iface["mac"], eth1.address.as_str());
    assert_eq!(iface["mtu"], eth1.mtu);
    assert_eq!(iface["addresses"], serde_json::json!([ADDR]));
    assert_eq!(iface["gateway"], "10.5.106.1");
    assert_eq!(host.must_link(&side).master.as_deref(), Some("br0"));
}

#[test]
fn show_lists_live_interfaces_and_check_passes() {
    let (host, ctr) = attached();
    let eth1 = ctr.must_link("eth1");
    let side = host_side("eth1", ctr.pid);
    let out = pipework(&host, &["show"]);
    assert_success(&out);
    let lines: Vec<Vec<String>> =
        stdout(&out).lines().map(|l| l.split_whitespace().map(String::from).collect()).collect();
    assert_eq!(
        lines[0],
        ["GUEST", "INTERFACE", "HOST-SIDE", "ATTACHED-TO", "ADDRESSES", "MAC", "RULES", "STATE"]
    );
    assert_eq!(lines[1], [ctr.name.as_str(), "eth1", &side, "bridge:br0", ADDR, &eth1.address, "-", "live"]);
    assert_eq!(lines.len(), 2);

    let out = pipework(&host, &["show", &ctr.name, "--json"]);
    assert_success(&out);
    let rows: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let row = &rows[0];
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "addresses",
            "attached_to",
            "find",
            "gateway",
            "guest",
            "host_side",
            "how",
            "interface",
            "key",
            "mac",
            "mtu",
            "state",
            "vlan"
        ]
    );
    assert_eq!(row["guest"], ctr.name.as_str());
    assert_eq!(row["key"], format!("docker-{}", ctr.inspect("{{.Id}}")));
    assert_eq!(
        (&row["interface"], &row["state"], &row["mac"]),
        (&"eth1".into(), &"live".into(), &eth1.address.clone().into())
    );

    assert_eq!(check(&host, &[]), (0, vec![]));
    assert_eq!(check(&host, &[&ctr.name]), (0, vec![]));
    let out = pipework(&host, &["check", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&out)).unwrap(),
        serde_json::json!({"ok": true, "differences": []})
    );
}

#[test]
fn check_names_each_kind_of_drift() {
    let (host, ctr) = attached();
    let n = ctr.name.clone();
    let side = host_side("eth1", ctr.pid);

    ctr.ip(&["link", "set", "eth1", "mtu", "1400"]);
    assert_eq!(check(&host, &[]), (1, vec![format!("MTU 1400 on eth1 of {n}, recorded 1500")]));
    ctr.ip(&["link", "set", "eth1", "mtu", "1500"]);

    ctr.ip(&["route", "replace", "default", "via", "10.5.106.254", "dev", "eth1"]);
    let want = format!("default route of {n}: via 10.5.106.254 dev eth1, recorded via 10.5.106.1 dev eth1");
    assert_eq!(check(&host, &[]), (1, vec![want]));
    ctr.ip(&["route", "replace", "default", "via", "10.5.106.1", "dev", "eth1"]);

    host.add_bridge("br9", None);
    host.ip(&["link", "set", &side, "master", "br9"]);
    assert_eq!(check(&host, &[]), (1, vec![format!("wrong master br9 of host side {side}, recorded br0")]));
    host.ip(&["link", "set", &side, "master", "br0"]);
    assert_eq!(check(&host, &[&n]), (0, vec![]));

    // The kernel drops the default route with the address its gateway was reached through.
    ctr.ip(&["addr", "del", ADDR, "dev", "eth1"]);
    let (code, lines) = check(&host, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [
            format!("missing address {ADDR} on eth1 of {n}"),
            format!("default route of {n}: none, recorded via 10.5.106.1 dev eth1")
        ]
    );
    let out = pipework(&host, &["check", "--json"]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["differences"][0]["kind"], "address");
    assert_eq!(json["differences"][0]["interface"], "eth1");
    assert_eq!(json["differences"][1]["kind"], "default-route");

    host.ip(&["link", "del", &side]);
    let (code, lines) = check(&host, &[]);
    assert_eq!(code, 1);
    assert_eq!(lines, [format!("eth1 missing in {n}"), format!("host side {side} gone")]);
    let out = pipework(&host, &["show"]);
    assert!(stdout(&out).lines().nth(1).unwrap().ends_with(" stale"), "{}", stdout(&out));
}

#[test]
fn detach_undoes_the_attach_and_a_second_is_a_no_op() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("det");
    let (host_before, ctr_before) = (settled_snapshot(&host), settled_snapshot(&ctr));
    assert_success(&pipework(&host, &["br0", &ctr.name, RUNBOOK]));
    let side = host_side("eth1", ctr.pid);

    let attached_host = settled_snapshot(&host);
    let out = pipework(&host, &["detach", "--dry-run", &ctr.name]);
    assert_success(&out);
    assert_eq!(stdout(&out), format!("ip link del {side}\n"));
    assert_unchanged("host", &attached_host, || host.snapshot());
    assert_eq!(record_files(&host).len(), 1);

    let out = pipework(&host, &["detach", &ctr.name]);
    assert_success(&out);
    assert_eq!(stdout(&out), "");
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
    assert!(record_files(&host).is_empty());

    let out = pipework(&host, &["detach", &ctr.name]);
    assert_eq!((out.status.code(), stdout(&out), stderr(&out)), (Some(0), String::new(), String::new()));
    assert_unchanged("host", &host_before, || host.snapshot());
}

#[test]
fn detach_without_a_record_goes_by_the_names() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("nor");
    let (host_before, ctr_before) = (settled_snapshot(&host), settled_snapshot(&ctr));
    assert_success(&pipework(&host, &["br0", &ctr.name, RUNBOOK]));
    std::fs::remove_dir_all(host.state_dir()).unwrap();

    let out = pipework(&host, &["detach", "--dry-run", &ctr.name]);
    assert_eq!(stdout(&out), format!("nsenter --net=/proc/{}/ns/net ip link del eth1\n", ctr.pid));
    assert_success(&pipework(&host, &["detach", &ctr.name]));
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
    assert_success(&pipework(&host, &["detach", &ctr.name]));
}

#[test]
fn detach_one_interface_keeps_the_others_in_the_record() {
    let (host, ctr) = attached();
    assert_success(&pipework(&host, &["br0", "-i", "eth2", &ctr.name, "10.5.107.5/24"]));
    let names = |host: &Netns| -> Vec<String> {
        let (_, rec) = &record_files(host)[0];
        rec["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&host), ["eth1", "eth2"]);
    assert_success(&pipework(&host, &["detach", &ctr.name, "-i", "eth2"]));
    assert!(ctr.link("eth2").is_none() && host.link(&host_side("eth2", ctr.pid)).is_none());
    assert!(ctr.link("eth1").is_some());
    assert_eq!(names(&host), ["eth1"]);
    assert_eq!(check(&host, &[]), (0, vec![]));
}

#[test]
fn a_rolled_back_run_leaves_no_record() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    for step in 1..=8 {
        let out = pipework_env(&host, &["br0", &target, RUNBOOK], &[("PIPEWORK_FAIL_AT", &step.to_string())]);
        assert_eq!(out.status.code(), Some(1), "step {step}: {}", stderr(&out));
        assert!(record_files(&host).is_empty(), "step {step} left a record");
    }
    assert!(!Path::new(&host.state_dir()).join(format!("netns-{}.json", guest.name)).exists());
}

#[test]
fn route_lines_are_recorded_reads_are_not() {
    let (host, ctr) = attached();
    assert_success(&pipework(&host, &["route", &ctr.name, "add", "10.9.0.0/16", "via", "10.5.106.1"]));
    assert_success(&pipework(&host, &["route", &ctr.name, "show"]));
    let (_, rec) = &record_files(&host)[0];
    assert_eq!(rec["commands"], serde_json::json!([["route", "add", "10.9.0.0/16", "via", "10.5.106.1"]]));
}

#[test]
fn fifty_concurrent_attaches_keep_every_record() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let guests: Vec<Netns> = (0..50).map(|_| Netns::new("g")).collect();
    // And five interfaces of one guest at once: one record, read-modify-written.
    let shared = Netns::new("sh");
    std::thread::scope(|s| {
        let mut runs = Vec::new();
        for (i, g) in guests.iter().enumerate() {
            let (host, target, addr) =
                (&host, format!("netns:{}", g.name), format!("10.7.{}.{}/16", i / 200, i % 200 + 2));
            runs.push(s.spawn(move || pipework(host, &["br0", &target, &addr])));
        }
        for i in 0..5 {
            let (host, target, ctr_if) = (&host, format!("netns:{}", shared.name), format!("eth{}", i + 1));
            runs.push(s.spawn(move || pipework(host, &["br0", "-i", &ctr_if, &target, "0/0"])));
        }
        for run in runs {
            assert_success(&run.join().unwrap());
        }
    });
    let files = record_files(&host);
    assert_eq!(files.len(), 51);
    for g in &guests {
        let (_, rec) = files.iter().find(|(name, _)| name == &format!("netns-{}.json", g.name)).unwrap();
        assert_eq!(rec["interfaces"][0]["mac"], g.must_link("eth1").address.as_str());
    }
    let (_, rec) = files.iter().find(|(name, _)| name == &format!("netns-{}.json", shared.name)).unwrap();
    let mut names: Vec<&str> =
        rec["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["eth1", "eth2", "eth3", "eth4", "eth5"]);
    let out = pipework(&host, &["show", "--json"]);
    let rows: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.as_array().unwrap().iter().filter(|r| r["state"] == "live").count(), 55);
    assert_eq!(check(&host, &[]), (0, vec![]));
}

/// A host whose NIC `eth0` (a veth to a LAN namespace) is up, and a guest.
fn nic_host() -> (Netns, Netns, Netns) {
    let host = Netns::new("host");
    let lan = host.add_lan("eth0", "10.5.0.1/24");
    host.ip(&["link", "set", "eth0", "up"]);
    (host, lan, Netns::new("guest"))
}

#[test]
fn a_macvlan_is_recorded_with_its_parent_and_detached() {
    let (host, _lan, guest) = nic_host();
    let target = format!("netns:{}", guest.name);
    let (host_before, guest_before) = (settled_snapshot(&host), settled_snapshot(&guest));
    assert_success(&pipework(&host, &["eth0", &target, "10.5.0.5/24"]));
    let (name, rec) = &record_files(&host)[0];
    assert_eq!(name, &format!("netns-{}.json", guest.name));
    let eth1 = guest.must_link("eth1");
    let iface = &rec["interfaces"][0];
    assert_eq!((&iface["how"], &iface["host_side"]), (&"macvlan".into(), &"eth0".into()));
    assert_eq!(iface["attached_to"], serde_json::json!({"parent": "eth0"}));
    assert_eq!((&iface["mac"], &iface["mtu"]), (&eth1.address.clone().into(), &eth1.mtu.into()));
    assert_eq!(check(&host, &[]), (0, vec![]));

    assert_success(&pipework(&host, &["detach", &target]));
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("guest", &guest_before, || guest.snapshot());
    assert!(record_files(&host).is_empty());
}

#[test]
fn a_lent_interface_is_given_back_under_its_own_name() {
    let (host, _lan, guest) = nic_host();
    let target = format!("netns:{}", guest.name);
    let mac = host.must_link("eth0").address;
    assert_success(&pipework(&host, &["--direct-phys", "eth0", &target, "10.5.0.5/24"]));
    assert!(host.link("eth0").is_none());
    let (_, rec) = &record_files(&host)[0];
    assert_eq!(
        (&rec["interfaces"][0]["how"], &rec["interfaces"][0]["host_side"]),
        (&"moved".into(), &"eth0".into())
    );

    let out = pipework(&host, &["detach", "--dry-run", &target]);
    let want = format!("ip netns exec {} ip link set dev eth1 netns {} name eth0\n", guest.name, host.name);
    assert_eq!(stdout(&out), want);
    assert_success(&pipework(&host, &["detach", &target]));
    assert!(guest.link("eth1").is_none());
    assert_eq!(host.must_link("eth0").address, mac);
    assert!(record_files(&host).is_empty());
    assert_success(&pipework(&host, &["detach", &target]));
}

#[test]
fn a_record_that_cannot_be_written_rolls_the_attach_back() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    let (host_before, guest_before) = (settled_snapshot(&host), settled_snapshot(&guest));
    // A directory where the guest's record should be.
    let record = format!("{}/netns-{}.json", host.state_dir(), guest.name);
    std::fs::create_dir_all(&record).unwrap();
    let out = pipework(&host, &["br0", &target, RUNBOOK]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("pipework: recording what was made in {target}: reading {record}: Is a directory\n")
    );
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("guest", &guest_before, || guest.snapshot());
}

/// A records directory that cannot be made (a file in its place) is
/// refused before any change: the run could keep no intent.
#[test]
fn a_records_directory_that_cannot_be_made_refuses_the_attach_before_any_change() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    let (host_before, guest_before) = (settled_snapshot(&host), settled_snapshot(&guest));
    let not_a_dir = format!("{}-file", host.state_dir());
    std::fs::write(&not_a_dir, b"").unwrap();
    let out = pipework_env(&host, &["br0", &target, RUNBOOK], &[(STATE_DIR_ENV, &not_a_dir)]);
    let _ = std::fs::remove_file(&not_a_dir);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("pipework: keeping an intent of this run: creating {not_a_dir}: File exists\n")
    );
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("guest", &guest_before, || guest.snapshot());
}

/// A guest whose own `eth0` (a veth to a LAN) carries its default route.
fn guest_with_default() -> (Netns, Netns, Netns) {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let guest = Netns::new("guest");
    let lan = guest.add_lan("eth0", "10.5.0.1/24");
    guest.ip(&["addr", "add", "10.5.0.2/24", "dev", "eth0"]);
    guest.ip(&["link", "set", "eth0", "up"]);
    guest.ip(&["route", "add", "default", "via", "10.5.0.1", "dev", "eth0"]);
    (host, guest, lan)
}

#[test]
fn detach_puts_back_the_default_route_the_attach_replaced() {
    let (host, guest, _lan) = guest_with_default();
    let target = format!("netns:{}", guest.name);
    let (host_before, guest_before) = (settled_snapshot(&host), settled_snapshot(&guest));
    assert_success(&pipework(&host, &["br0", &target, RUNBOOK]));
    let (_, rec) = &record_files(&host)[0];
    assert_eq!(
        rec["interfaces"][0]["replaced_default"],
        serde_json::json!({"gateway": "10.5.0.1", "dev": "eth0"})
    );
    let side = host_side_of(&guest);
    let out = pipework(&host, &["detach", "--dry-run", &target]);
    let enter = format!("ip netns exec {}", guest.name);
    assert_eq!(
        stdout(&out),
        format!("{enter} ip -4 route replace default via 10.5.0.1 dev eth0\nip link del {side}\n")
    );
    assert_success(&pipework(&host, &["detach", &target]));
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("guest", &guest_before, || guest.snapshot());
}

#[test]
fn detach_leaves_a_default_route_someone_else_changed() {
    let (host, guest, _lan) = guest_with_default();
    let target = format!("netns:{}", guest.name);
    assert_success(&pipework(&host, &["br0", &target, RUNBOOK]));
    guest.ip(&["route", "replace", "default", "via", "10.5.106.254", "dev", "eth1"]);
    let out = pipework(&host, &["detach", "--dry-run", &target]);
    assert_eq!(stdout(&out), format!("ip link del {}\n", host_side_of(&guest)));
    assert_success(&pipework(&host, &["detach", &target]));
    // The changed default went with eth1; the old one was not brought back.
    assert!(guest.ip_j(&["-4", "route", "show", "default"]).as_array().unwrap().is_empty());
}

#[test]
fn detach_deletes_the_rules_recorded_for_the_guest() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("rul");
    let ctr_before = settled_snapshot(&ctr);
    assert_success(&pipework(&host, &["br0", &ctr.name, RUNBOOK]));
    let side = host_side("eth1", ctr.pid);
    assert_success(&pipework(&host, &["rule", &ctr.name, "add", "from", "10.5.106.0/24", "table", "100"]));
    assert_success(&pipework(&host, &["rule", &ctr.name, "add", "to", "10.9.0.0/16", "table", "101"]));
    let out = pipework(&host, &["detach", "--dry-run", &ctr.name]);
    let enter = format!("nsenter --net=/proc/{}/ns/net", ctr.pid);
    assert_eq!(
        stdout(&out),
        format!(
            "{enter} ip rule del to 10.9.0.0/16 table 101\n{enter} ip rule del from 10.5.106.0/24 table 100\n\
             ip link del {side}\n"
        )
    );
    assert_success(&pipework(&host, &["detach", &ctr.name]));
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
    assert!(record_files(&host).is_empty());
}

/// The host side of a namespace guest's eth1: `veth1pl<N>`, N its nsfs
/// inode less 0xF0000000 (where the kernel starts numbering them).
fn host_side_of(guest: &Netns) -> String {
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(guest.path()).unwrap());
    host_side("eth1", u32::try_from(ino - 0xF000_0000).unwrap())
}

/// The number in a netns guest's interface names: its inode's offset.
fn name_number(ns: &Netns) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(ns.path()).unwrap().ino() - 0xF000_0000
}

/// A guest whose namespace went (its veth with it), and a bridge made
/// since under the host side's recorded name: detach leaves the bridge,
/// says why, and drops the record of what is gone.
#[test]
fn detach_leaves_a_link_that_took_the_recorded_name() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    assert_success(&pipework(&host, &["br0", &target, ADDR]));
    let (_, rec) = &record_files(&host)[0];
    let side = rec["interfaces"][0]["host_side"].as_str().unwrap().to_string();
    assert_eq!(rec["interfaces"][0]["host_link"]["ifindex"], host.must_link(&side).ifindex);
    run(&["ip", "netns", "del", &guest.name]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host.link(&side).is_some() {
        assert!(std::time::Instant::now() < deadline, "{side} outlived its peer's namespace");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    host.ip(&["link", "add", &side, "type", "bridge"]);
    let index = host.must_link(&side).ifindex;

    let out = pipework(&host, &["detach", &target]);
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (
            Some(0),
            String::new(),
            format!(
                "pipework: {side} on the host is not the link pipework made for eth1 of {target} \
                 (it is a bridge with index {index} now): left alone\n"
            )
        )
    );
    let bridge = host.must_link(&side);
    assert_eq!((bridge.kind.as_deref(), bridge.ifindex), (Some("bridge"), index));
    assert!(record_files(&host).is_empty());
}

/// Without a record, a veth `eth1` that is not paired with the host side
/// pipework would have named is not pipework's: refused, left as it is.
#[test]
fn detach_without_a_record_leaves_a_veth_pipework_did_not_make() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    guest.ip(&["link", "add", "eth1", "type", "veth", "peer", "name", "p1"]);
    let target = format!("netns:{}", guest.name);
    let out = assert_refused(pipework, &host, Some(&guest), &["detach", &target]);
    assert_eq!(
        stderr(&out),
        format!(
            "pipework: eth1 of {target} has no record, and is no veth paired with veth1pl{} (veth): \
             nothing says pipework made it; delete it by hand if it should go\n",
            name_number(&guest)
        )
    );
    assert!(guest.link("eth1").is_some() && guest.link("p1").is_some());
}

/// The state directory and the records are root's alone, 0700 and 0600,
/// whatever the umask of the run that makes them.
#[test]
fn the_state_directory_and_records_are_private_whatever_the_umask() {
    for umask in ["0000", "0277"] {
        let host = Netns::new("host");
        host.add_bridge("br0", None);
        let guest = Netns::new("guest");
        let state = format!("{}/deeper", host.state_dir());
        let script = format!("umask {umask} && exec \"$@\"");
        let target = format!("netns:{}", guest.name);
        let argv = ["netns", "exec", &host.name, "sh", "-c", &script, "sh", PIPEWORK, "br0", &target, ADDR];
        let out = std::process::Command::new("ip").args(argv).env(STATE_DIR_ENV, &state).output().unwrap();
        assert_success(&out);
        let mode = |p: &str| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        let record = format!("{state}/netns-{}.json", guest.name);
        assert_eq!(
            [mode(&host.state_dir()), mode(&state), mode(&record), mode(&format!("{state}/.lock"))],
            [0o700, 0o700, 0o600, 0o600],
            "umask {umask}"
        );
    }
}

/// A record of an older version, without the host side's identity: its
/// veth is still told by its kind and peer, and detached.
#[test]
fn an_older_record_without_the_host_sides_identity_still_detaches() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    let (host_before, guest_before) = (settled_snapshot(&host), settled_snapshot(&guest));
    assert_success(&pipework(&host, &["br0", &target, ADDR]));
    let (name, mut rec) = record_files(&host).remove(0);
    rec["interfaces"][0].as_object_mut().unwrap().remove("host_link").expect("host_link recorded");
    let path = Path::new(&host.state_dir()).join(name);
    std::fs::write(&path, rec.to_string()).unwrap();
    let out = pipework(&host, &["detach", &target]);
    assert_eq!((out.status.code(), stderr(&out)), (Some(0), String::new()));
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("guest", &guest_before, || guest.snapshot());
    assert!(record_files(&host).is_empty());
}

/// The engine's ID is asked of `/info` once per engine socket and kept in
/// `engines/` (dockerd takes tens of milliseconds over `/info`): the file
/// holds the socket's device and inode and the ID, and while they match
/// the next attach takes the ID from it, not from the engine; a socket made
/// again (another inode) is asked again.
#[test]
fn the_engines_id_is_asked_once_per_socket() {
    use std::os::unix::fs::MetadataExt;
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let engine = run(&["docker", "info", "-f", "{{.ID}}"]).trim().to_string();
    let socket = std::fs::metadata("/var/run/docker.sock").unwrap();
    let recorded = |ctr: &Container| {
        let id = ctr.inspect("{{.Id}}");
        let (_, rec) = record_files(&host).into_iter().find(|(n, _)| n.contains(&id)).expect("a record");
        rec["guest"]["engine"].as_str().unwrap_or_default().to_string()
    };
    let kept = || {
        let dir = std::path::Path::new(&host.state_dir()).join("engines");
        let files: Vec<_> =
            std::fs::read_dir(&dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    };

    let first = Container::run("eng");
    assert_success(&pipework(&host, &["br0", &first.name, "10.5.106.121/24"]));
    assert_eq!(recorded(&first), engine);
    let file = kept();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{} {} {engine}\n", socket.dev(), socket.ino())
    );
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);

    // Kept: an ID written for this very socket is taken as it is.
    std::fs::write(&file, format!("{} {} KEPT:ID\n", socket.dev(), socket.ino())).unwrap();
    let second = Container::run("eng");
    assert_success(&pipework(&host, &["br0", &second.name, "10.5.106.122/24"]));
    assert_eq!(recorded(&second), "KEPT:ID");

    // Another socket at that path (another inode): asked again.
    std::fs::write(&file, format!("{} {} KEPT:ID\n", socket.dev(), socket.ino() + 1)).unwrap();
    let third = Container::run("eng");
    assert_success(&pipework(&host, &["br0", &third.name, "10.5.106.123/24"]));
    assert_eq!(recorded(&third), engine);
    assert_eq!(
        std::fs::read_to_string(kept()).unwrap(),
        format!("{} {} {engine}\n", socket.dev(), socket.ino())
    );
}
