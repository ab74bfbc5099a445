//! Physical host interfaces: `pipework eth0 <guest> ...` gives the guest a
//! macvlan child of eth0 in bridge mode (on a VLAN child `eth0.<vid>` with
//! `@vid`); `--direct-phys` lends the interface itself; `mac:` picks the host
//! interface by its MAC; `dummy*` makes a dummy interface. The "NIC" is a
//! veth whose peer sits in a "lan" namespace.

use std::process::Output;

use crate::common::*;

const IP: &str = "10.5.0.5/24";
const IP_GW: &str = "10.5.0.5/24@10.5.0.1";

/// A host whose `eth0` (MTU 1400, down) faces a LAN owning 10.5.0.1/24,
/// and a guest namespace.
struct Fixture {
    host: Netns,
    lan: Netns,
    guest: Netns,
    /// The guest as pipework is told it: `netns:<name>`.
    target: String,
}

impl Fixture {
    fn new() -> Fixture {
        let host = Netns::new("host");
        let lan = host.add_lan("eth0", "10.5.0.1/24");
        // Not the default, so that the child's MTU says where it came from.
        host.ip(&["link", "set", "eth0", "mtu", "1400"]);
        let guest = Netns::new("guest");
        let target = format!("netns:{}", guest.name);
        Fixture { host, lan, guest, target }
    }

    /// `args` with `CTR` standing for the guest.
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        with_guest(args, &self.target)
    }

    #[track_caller]
    fn attach(&self, args: &[&str]) {
        assert_success(&pipework(&self.host, &self.args(args)));
    }

    /// The host-side name the macvlan of this attach gets, as planned.
    fn macvlan_name(&self, args: &[&str]) -> String {
        planned_link(&planned_steps(&self.host, &self.args(args)), "macvlan")
    }

    /// Exit 1, host and guest unchanged; returns what it printed.
    #[track_caller]
    fn refused(&self, args: &[&str]) -> Output {
        assert_refused(pipework, &self.host, Some(&self.guest), &self.args(args))
    }

    /// A second NIC `name`, a veth whose peer stays here, with a fixed MAC
    /// and MTU, its peer up (so that carrier follows the NIC's own state).
    fn add_nic(&self, name: &str, mac: &str, mtu: &str) {
        let peer = format!("{name}p");
        self.host
            .ip(&["link", "add", name, "address", mac, "mtu", mtu, "type", "veth", "peer", "name", &peer]);
        self.host.ip(&["link", "set", &peer, "up"]);
    }
}

/// Nothing named `name` on the host, and no macvlan at all.
#[track_caller]
fn assert_no_host_side(host: &Netns, name: &str) {
    let links = host.links();
    assert!(links.iter().all(|l| l.ifname != name), "{name} left on the host");
    let macvlans: Vec<_> = links.iter().filter(|l| l.kind.as_deref() == Some("macvlan")).collect();
    assert!(macvlans.is_empty(), "macvlan left on the host: {macvlans:?}");
}

/// Whether this kernel makes links of the kind `ip link add <args>` asks
/// for, tried in a scratch namespace holding a veth `pr0`. Only the kernel's
/// "Unknown device type." (the module is missing) counts as no.
fn kernel_makes(args: &[&str]) -> bool {
    let scratch = Netns::new("probe");
    scratch.ip(&["link", "add", "pr0", "type", "veth", "peer", "name", "pr1"]);
    let mut argv = scratch.ip_argv();
    argv.extend(["link", "add"].iter().chain(args).map(|s| s.to_string()));
    let out = quiet(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    if out.status.success() {
        return true;
    }
    let err = stderr(&out);
    assert!(err.contains("Unknown device type"), "probe {args:?} failed otherwise: {err}");
    false
}

fn kernel_has_vlan() -> bool {
    kernel_makes(&["link", "pr0", "name", "pr0.10", "type", "vlan", "id", "10"])
}

fn kernel_has_dummy() -> bool {
    kernel_makes(&["pd0", "type", "dummy"])
}

// ---- macvlan

#[test]
fn macvlan_in_bridge_mode_reaches_the_lan() {
    let f = Fixture::new();
    let temp = f.macvlan_name(&["eth0", "CTR", IP_GW]);
    f.attach(&["eth0", "CTR", IP_GW]);
    assert_macvlan_on(&f.host, "eth0", &f.guest, "eth1", IP);
    assert_eq!(f.guest.must_link("eth1").mtu, 1400);
    assert_no_host_side(&f.host, &temp);
    assert_default_via(&f.guest, Family::V4, "10.5.0.1", "eth1");
    assert!(f.lan.ping("10.5.0.5"), "the LAN cannot ping the guest");
    assert!(f.guest.ping("10.5.0.1"), "the guest cannot ping the LAN");
}

#[test]
fn dash_i_and_mac_on_the_macvlan() {
    let f = Fixture::new();
    f.attach(&["eth0", "-i", "eth3", "CTR", IP, "U:myhost.foo.com"]);
    assert_macvlan_on(&f.host, "eth0", &f.guest, "eth3", IP);
    assert_eq!(f.guest.must_link("eth3").address, "02:72:6c:cd:9b:8d");
    assert!(f.guest.link("eth1").is_none());
    assert!(f.lan.ping("10.5.0.5"), "the LAN cannot ping the guest");
}

#[test]
fn container_host_side_name_is_ph_pid_ctr_if_cut_to_15_bytes() {
    let f = Fixture::new();
    let ctr = Container::run("ctr");
    // Long enough that the cut always bites: "ph" + pid + 10 bytes.
    let args = ["eth0", "-i", "ethlong123", &ctr.name, IP];
    let temp = planned_link(&planned_steps(&f.host, &args), "macvlan");
    let mut want = format!("ph{}ethlong123", ctr.pid);
    want.truncate(15);
    assert_eq!(temp, want);
    assert_success(&pipework(&f.host, &args));
    assert_macvlan_on(&f.host, "eth0", &ctr, "ethlong123", IP);
    assert_no_host_side(&f.host, &temp);
}

#[test]
fn host_side_name_taken_on_the_host_is_refused() {
    let f = Fixture::new();
    let temp = f.macvlan_name(&["eth0", "CTR", IP]);
    f.host.ip(&["link", "add", &temp, "type", "veth", "peer", "name", "takenp"]);
    let out = f.refused(&["eth0", "CTR", IP]);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("pipework: {temp} already exists on the host; ")), "{err}");
}

// ---- mac: selection

#[test]
fn mac_selector_picks_the_interface_whatever_the_case() {
    let f = Fixture::new();
    f.host.ip(&["link", "set", "eth0", "address", "02:aa:bb:cc:dd:01"]);
    // Another NIC, so the pick means something.
    f.add_nic("eth2", "02:aa:bb:cc:dd:02", "1500");
    f.attach(&["mac:02:AA:BB:CC:DD:01", "CTR", IP]);
    assert_macvlan_on(&f.host, "eth0", &f.guest, "eth1", IP);
    assert!(f.lan.ping("10.5.0.5"), "the LAN cannot ping the guest");
}

#[test]
fn mac_selector_matching_nothing_is_quoted_as_typed() {
    let f = Fixture::new();
    f.host.ip(&["link", "set", "eth0", "address", "02:aa:bb:cc:dd:01"]);
    let out = f.refused(&["mac:02:AA:BB:CC:DD:99", "CTR", IP]);
    assert_eq!(
        stderr(&out),
        "Mac address 02:AA:BB:CC:DD:99 specified for interface but no host interface matched.\n"
    );
}

// ---- --direct-phys

#[test]
fn direct_phys_lends_the_interface_keeping_its_mac() {
    let f = Fixture::new();
    f.add_nic("eth9", "02:00:00:00:09:09", "1450");
    let before = f.host.must_link("eth9");
    f.attach(&["--direct-phys", "eth9", "-i", "eth5", "CTR", "10.9.0.5/24"]);
    assert!(f.host.link("eth9").is_none(), "eth9 is still on the host");
    let eth5 = f.guest.must_link("eth5");
    assert_eq!(eth5.kind.as_deref(), Some("veth"), "not the NIC itself: {eth5:?}");
    assert_eq!((eth5.address.as_str(), eth5.mtu), (before.address.as_str(), before.mtu));
    assert!(eth5.is_up(), "{eth5:?}");
    assert_eq!(f.guest.cidrs("eth5", Family::V4), vec!["10.9.0.5/24"]);
    // Its peer is still cabled to it: the same interface, not a copy.
    assert!(f.host.must_link("eth9p").flags.iter().any(|fl| fl == "LOWER_UP"), "eth9p has no carrier");
}

#[test]
fn direct_phys_with_a_mac_sets_it() {
    let f = Fixture::new();
    f.add_nic("eth9", "02:00:00:00:09:09", "1500");
    f.attach(&["--direct-phys", "eth9", "-i", "eth5", "CTR", "10.9.0.5/24", "02:12:34:56:78:9A"]);
    assert!(f.host.link("eth9").is_none(), "eth9 is still on the host");
    assert_eq!(f.guest.must_link("eth5").address, "02:12:34:56:78:9a");
    assert_eq!(f.guest.cidrs("eth5", Family::V4), vec!["10.9.0.5/24"]);
}

#[test]
fn direct_phys_on_a_bridge_is_refused() {
    let f = Fixture::new();
    f.host.add_bridge("br0", None);
    let args = ["--direct-phys", "br0", "CTR", IP];
    let out = f.refused(&args);
    assert_one_line_naming(&args, &out, "bridge");
}

// ---- VLAN

#[test]
fn vlan_without_kernel_support_is_refused() {
    if kernel_has_vlan() {
        // Then vlan_child_carries_the_macvlan runs instead.
        eprintln!("skipped: this kernel has 802.1Q VLAN support");
        return;
    }
    let f = Fixture::new();
    let err = stderr(&f.refused(&["eth0", "CTR", "10.6.0.5/24", "@10"]));
    assert!(err.contains("kernel lacks 802.1Q VLAN support (module 8021q)"), "{err}");
}

#[test]
fn vlan_name_taken_by_another_kind_of_link_is_refused() {
    let f = Fixture::new();
    f.host.ip(&["link", "add", "eth0.10", "type", "veth", "peer", "name", "e10p"]);
    let out = f.refused(&["eth0", "CTR", "10.6.0.5/24", "@10"]);
    assert_eq!(stderr(&out), "pipework: eth0.10 exists but is not a VLAN device for tag 10\n");
}

#[test]
fn vlan_ids_out_of_range_are_refused() {
    let f = Fixture::new();
    for vid in ["0", "4095", "x"] {
        let vlan = format!("@{vid}");
        let args = ["eth0", "CTR", "10.6.0.5/24", &vlan];
        let out = f.refused(&args);
        assert_one_line_naming(&args, &out, "invalid VLAN ID");
        assert!(stderr(&out).contains(vid), "{vid}: {}", stderr(&out));
    }
}

#[test]
fn vlan_child_carries_the_macvlan() {
    if !kernel_has_vlan() {
        eprintln!("skipped: kernel lacks 802.1Q VLAN support");
        return;
    }
    let f = Fixture::new();
    f.lan.ip(&["link", "add", "link", "lan0", "name", "lan0.10", "type", "vlan", "id", "10"]);
    f.lan.ip(&["addr", "add", "10.6.0.1/24", "dev", "lan0.10"]);
    f.lan.ip(&["link", "set", "lan0.10", "up"]);
    let args = ["eth0", "CTR", "10.6.0.5/24", "@10"];
    let temp = f.macvlan_name(&args);
    f.attach(&args);
    let vlan = f.host.must_link("eth0.10");
    assert_eq!(vlan.kind.as_deref(), Some("vlan"), "{vlan:?}");
    assert_eq!(link_info_data(&f.host, "eth0.10")["id"], 10);
    assert_eq!(vlan.mtu, 1400, "the VLAN child has eth0's MTU");
    assert!(f.host.must_link("eth0").is_up());
    assert_macvlan_on(&f.host, "eth0.10", &f.guest, "eth1", "10.6.0.5/24");
    assert_no_host_side(&f.host, &temp);
    assert!(f.lan.ping("10.6.0.5"), "the LAN cannot ping the guest over VLAN 10");
}

// ---- macvlan modes

#[test]
fn each_macvlan_mode_is_made_recorded_and_checked() {
    for mode in ["bridge", "vepa", "private", "passthru"] {
        let f = Fixture::new();
        let args = ["--macvlan-mode", mode, "eth0", "CTR", IP];
        let plan = planned_steps(&f.host, &f.args(&args));
        let wanted = format!("type macvlan mode {mode}");
        assert!(plan.iter().any(|s| s.ends_with(&wanted)), "{mode}: {plan:?}");
        f.attach(&args);
        assert_eq!(link_info_data(&f.guest, "eth1")["mode"], mode, "{mode}");
        assert_eq!(f.guest.cidrs("eth1", Family::V4), vec![IP]);
        let check = pipework(&f.host, &["check", &f.target]);
        assert_eq!((check.status.code(), stdout(&check)), (Some(0), String::new()), "{mode}");
    }
}

#[test]
fn check_names_a_macvlan_whose_mode_changed() {
    let f = Fixture::new();
    f.attach(&["eth0", "CTR", IP]);
    assert_eq!(link_info_data(&f.guest, "eth1")["mode"], "bridge");
    f.guest.ip(&["link", "set", "eth1", "type", "macvlan", "mode", "private"]);
    let out = pipework(&f.host, &["check", &f.target]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("is in macvlan mode private, recorded bridge"), "{}", stdout(&out));
}

#[test]
fn macvlan_mode_and_host_access_refused_where_they_do_not_apply() {
    let f = Fixture::new();
    f.host.add_bridge("br5", None);
    let out = f.refused(&["--macvlan-mode", "vepa2", "eth0", "CTR", IP]);
    assert!(stderr(&out).contains("invalid value 'vepa2' for '--macvlan-mode <MODE>'"), "{}", stderr(&out));
    let not_macvlan = |flag: &str| {
        format!("pipework: {flag} applies to a macvlan: a physical HOSTIF without --direct-phys\n")
    };
    for (args, flag) in [
        (vec!["--macvlan-mode", "vepa", "br5", "CTR", IP], "--macvlan-mode"),
        (vec!["--macvlan-mode", "vepa", "br9", "CTR", IP], "--macvlan-mode"),
        (vec!["--direct-phys", "--macvlan-mode", "private", "eth0", "CTR", IP], "--macvlan-mode"),
        (vec!["--host-access", "br5", "CTR", IP], "--host-access"),
        (vec!["--host-access", "br9", "CTR", IP], "--host-access"),
        (vec!["--host-access", "--direct-phys", "eth0", "CTR", IP], "--host-access"),
    ] {
        assert_eq!(stderr(&f.refused(&args)), not_macvlan(flag), "{args:?}");
    }
    for mode in ["vepa", "private", "passthru"] {
        let out = f.refused(&["--host-access", "--macvlan-mode", mode, "eth0", "CTR", IP]);
        let want = format!(
            "pipework: --host-access needs --macvlan-mode bridge: the host's macvlan reaches the guest's \
             only as a bridge-mode sibling ({mode} mode keeps them apart)\n"
        );
        assert_eq!(stderr(&out), want);
    }
    for addr in ["dhcp", "0/0"] {
        let out = f.refused(&["--host-access", "eth0", "CTR", addr]);
        assert_eq!(
            stderr(&out),
            "pipework: --host-access needs a static address: the host route goes to it\n"
        );
    }
}

// ---- host access

/// The shim `name` on the host: a bridge-mode macvlan on `parent`, up,
/// without an IPv4 address.
#[track_caller]
fn assert_shim(host: &Netns, name: &str, parent: &str) {
    let shim = host.must_link(name);
    assert_eq!(shim.kind.as_deref(), Some("macvlan"), "{shim:?}");
    assert_eq!(link_info_data(host, name)["mode"], "bridge", "{shim:?}");
    assert_eq!(link_detail(host, name)["link"], parent, "{name} is not on {parent}");
    assert!(shim.is_up(), "{shim:?}");
    assert!(host.cidrs(name, Family::V4).is_empty(), "{name} has an address");
}

/// The host routes through `dev`, as (destination, scope).
fn routes_via(host: &Netns, dev: &str) -> Vec<String> {
    let all = host.routes(Family::V4);
    all.into_iter().filter(|r| r.dev.as_deref() == Some(dev)).map(|r| r.dst).collect()
}

#[test]
fn host_access_shim_shared_by_guests_and_gone_with_the_last() {
    let f = Fixture::new();
    // The host's own address stays on eth0.
    f.host.ip(&["addr", "add", "10.5.0.2/24", "dev", "eth0"]);
    let plan = planned_steps(&f.host, &f.args(&["--host-access", "eth0", "CTR", IP]));
    assert!(
        plan.contains(&"ip link add link eth0 dev pwh-eth0 mtu 1400 type macvlan mode bridge".into()),
        "{plan:?}"
    );
    assert!(plan.contains(&"ip route add 10.5.0.5/32 dev pwh-eth0".into()), "{plan:?}");
    f.attach(&["--host-access", "eth0", "CTR", IP]);
    assert_macvlan_on(&f.host, "eth0", &f.guest, "eth1", IP);
    assert_shim(&f.host, "pwh-eth0", "eth0");
    assert_eq!(f.host.cidrs("eth0", Family::V4), vec!["10.5.0.2/24"]);
    assert_eq!(routes_via(&f.host, "pwh-eth0"), vec!["10.5.0.5"]);
    assert!(f.host.ping("10.5.0.5"), "the host cannot ping the guest");
    assert!(f.guest.ping("10.5.0.2"), "the guest cannot ping the host");
    assert!(f.lan.ping("10.5.0.5"), "the LAN cannot ping the guest");

    // A second guest shares the shim.
    let guest2 = Netns::new("guest2");
    let target2 = format!("netns:{}", guest2.name);
    assert_success(&pipework(&f.host, &["--host-access", "eth0", &target2, "10.5.0.6/24"]));
    let macvlans = f.host.links().into_iter().filter(|l| l.kind.as_deref() == Some("macvlan")).count();
    assert_eq!(macvlans, 1, "one shim on the host");
    assert_eq!(routes_via(&f.host, "pwh-eth0"), vec!["10.5.0.5", "10.5.0.6"]);
    assert!(f.host.ping("10.5.0.6"), "the host cannot ping the second guest");
    assert!(guest2.ping("10.5.0.5"), "the guests cannot reach each other");
    let check = |target: &str| {
        let out = pipework(&f.host, &["check", target]);
        (out.status.code(), stdout(&out))
    };
    assert_eq!(check(&target2), (Some(0), String::new()));

    // check names a host route deleted by hand.
    f.host.ip(&["route", "del", "10.5.0.6/32", "dev", "pwh-eth0"]);
    let (code, out) = check(&target2);
    assert_eq!(code, Some(1));
    assert!(out.contains("missing host route 10.5.0.6/32 dev pwh-eth0 to eth1 of "), "{out}");
    f.host.ip(&["route", "add", "10.5.0.6/32", "dev", "pwh-eth0"]);
    assert_eq!(check(&target2), (Some(0), String::new()));

    // Detaching one guest keeps the shim for the other.
    assert_success(&pipework(&f.host, &["detach", &f.target]));
    assert!(f.guest.link("eth1").is_none());
    assert_shim(&f.host, "pwh-eth0", "eth0");
    assert_eq!(routes_via(&f.host, "pwh-eth0"), vec!["10.5.0.6"]);
    assert!(f.host.ping("10.5.0.6"), "the host lost the second guest");

    // The last one takes the shim and its routes along.
    assert_success(&pipework(&f.host, &["detach", &target2]));
    assert!(f.host.link("pwh-eth0").is_none(), "the shim outlived its last guest");
    assert!(
        f.host
            .routes(Family::V4)
            .iter()
            .all(|r| !r.dst.starts_with("10.5.0.") || r.dev.as_deref() == Some("eth0")),
        "{:?}",
        f.host.routes(Family::V4)
    );
    assert_eq!(f.host.cidrs("eth0", Family::V4), vec!["10.5.0.2/24"]);
}

#[test]
fn host_access_over_ipv6_routes_the_guests_128() {
    let f = Fixture::new();
    f.host.ip(&["-6", "addr", "add", "2001:db8:5::2/64", "dev", "eth0", "nodad"]);
    f.attach(&["--host-access", "eth0", "-a", "6", "CTR", "2001:db8:5::5/64"]);
    assert_shim(&f.host, "pwh-eth0", "eth0");
    let via: Vec<_> =
        f.host.routes(Family::V6).into_iter().filter(|r| r.dev.as_deref() == Some("pwh-eth0")).collect();
    assert!(via.iter().any(|r| r.dst == "2001:db8:5::5"), "{via:?}");
    let check = pipework(&f.host, &["check", &f.target]);
    assert_eq!((check.status.code(), stdout(&check)), (Some(0), String::new()));
    // No ping: the guest cannot resolve the host's global address through
    // the shim (neighbour discovery answers for a link's own addresses
    // only); see the manual.
    assert_success(&pipework(&f.host, &["detach", &f.target]));
    assert!(f.host.link("pwh-eth0").is_none());
}

/// Two interfaces of one guest on the shim: detaching one keeps it,
/// detaching the guest takes it.
#[test]
fn detaching_a_guest_with_two_interfaces_on_the_shim_removes_it() {
    let f = Fixture::new();
    f.attach(&["--host-access", "eth0", "CTR", IP]);
    f.attach(&["--host-access", "eth0", "-i", "eth2", "CTR", "10.5.0.7/24"]);
    assert_eq!(routes_via(&f.host, "pwh-eth0"), vec!["10.5.0.5", "10.5.0.7"]);
    assert_success(&pipework(&f.host, &["detach", &f.target, "-i", "eth2"]));
    assert_eq!(routes_via(&f.host, "pwh-eth0"), vec!["10.5.0.5"]);
    f.attach(&["--host-access", "eth0", "-i", "eth2", "CTR", "10.5.0.7/24"]);
    assert_success(&pipework(&f.host, &["detach", &f.target]));
    assert!(f.host.link("pwh-eth0").is_none(), "the shim outlived its guest");
    assert!(f.host.links().iter().all(|l| l.kind.as_deref() != Some("macvlan")));
}

#[test]
fn check_names_a_missing_shim() {
    let f = Fixture::new();
    f.attach(&["--host-access", "eth0", "CTR", IP]);
    f.host.ip(&["link", "del", "pwh-eth0"]);
    let out = pipework(&f.host, &["check", &f.target]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("host macvlan pwh-eth0 of eth1 of "), "{}", stdout(&out));
    assert!(stdout(&out).contains(" gone"), "{}", stdout(&out));
}

#[test]
fn host_access_on_a_vlan_puts_the_shim_on_the_vlan_child() {
    if !kernel_has_vlan() {
        eprintln!(
            "skipped: kernel lacks 802.1Q VLAN support (module 8021q): no VLAN child to put the shim on"
        );
        return;
    }
    let f = Fixture::new();
    f.host.ip(&["addr", "add", "10.5.0.2/24", "dev", "eth0"]);
    f.lan.ip(&["link", "add", "link", "lan0", "name", "lan0.10", "type", "vlan", "id", "10"]);
    f.lan.ip(&["addr", "add", "10.6.0.1/24", "dev", "lan0.10"]);
    f.lan.ip(&["link", "set", "lan0.10", "up"]);
    f.attach(&["--host-access", "eth0", "CTR", "10.6.0.5/24", "@10"]);
    assert_macvlan_on(&f.host, "eth0.10", &f.guest, "eth1", "10.6.0.5/24");
    assert_shim(&f.host, "pwh-eth0.10", "eth0.10");
    assert_eq!(routes_via(&f.host, "pwh-eth0.10"), vec!["10.6.0.5"]);
    assert!(f.host.ping("10.6.0.5"), "the host cannot ping the guest over VLAN 10");
    assert_success(&pipework(&f.host, &["detach", &f.target]));
    assert!(f.host.link("pwh-eth0.10").is_none());
}

// ---- dummy

#[test]
fn dummy_without_kernel_support_is_refused() {
    if kernel_has_dummy() {
        // Then dummy_interface_in_the_guest runs instead.
        eprintln!("skipped: this kernel has dummy interface support");
        return;
    }
    let f = Fixture::new();
    let err = stderr(&f.refused(&["dummy0", "CTR", "10.7.0.5/24"]));
    assert!(err.contains("kernel lacks dummy interface support (module dummy)"), "{err}");
}

#[test]
fn dummy_interface_in_the_guest() {
    if !kernel_has_dummy() {
        eprintln!("skipped: kernel lacks dummy interface support");
        return;
    }
    let f = Fixture::new();
    let args = ["dummy0", "CTR", "10.7.0.5/24"];
    let temp = planned_link(&planned_steps(&f.host, &f.args(&args)), "dummy");
    f.attach(&args);
    let eth1 = f.guest.must_link("eth1");
    assert_eq!(eth1.kind.as_deref(), Some("dummy"), "{eth1:?}");
    assert!(eth1.is_up(), "{eth1:?}");
    assert_eq!(f.guest.cidrs("eth1", Family::V4), vec!["10.7.0.5/24"]);
    assert!(f.host.link(&temp).is_none(), "{temp} left on the host");
    assert!(f.host.link("dummy0").is_none(), "dummy0 made on the host");
}

// ---- rollback

/// Failure injection (see tests/it/rollback.rs): each step failed in turn must
/// leave host and guest exactly as they were.
#[cfg(feature = "failpoints")]
mod rollback {
    use super::*;

    /// No plan is this long; reaching it means the injection never stops failing.
    const MAX_STEPS: usize = 64;

    /// Fails the run before step 1, 2, ... until one gets through; returns
    /// how many steps were failed.
    fn fail_at_every_step(f: &Fixture, args: &[&str]) -> usize {
        let args = f.args(args);
        for n in 1..=MAX_STEPS {
            let (host_before, guest_before) = (f.host.snapshot(), f.guest.snapshot());
            let out = pipework_env(&f.host, &args, &[("PIPEWORK_FAIL_AT", &n.to_string())]);
            if out.status.success() {
                return n - 1;
            }
            let err = stderr(&out);
            eprint!("PIPEWORK_FAIL_AT={n}:\n{err}"); // shown if the test fails
            assert_eq!(out.status.code(), Some(1), "failing at step {n}:\n{err}");
            assert_unchanged(&format!("host after failing at step {n}"), &host_before, || f.host.snapshot());
            assert_unchanged(&format!("guest after failing at step {n}"), &guest_before, || {
                f.guest.snapshot()
            });
        }
        panic!("{args:?} still fails with PIPEWORK_FAIL_AT={MAX_STEPS}");
    }

    #[test]
    fn macvlan_with_mac_and_replaced_default_route() {
        let f = Fixture::new();
        f.guest.add_uplink("192.168.77.2/24", "192.168.77.1");
        let args = ["eth0", "-i", "eth2", "CTR", IP_GW, "U:myhost.foo.com"];
        let temp = f.macvlan_name(&args);
        // Made, brought up (eth0 too), moved, addressed, routed, announced.
        let failed = fail_at_every_step(&f, &args);
        assert!(failed >= 5, "only {failed} steps could be failed: is PIPEWORK_FAIL_AT honoured?");
        assert_macvlan_on(&f.host, "eth0", &f.guest, "eth2", IP);
        assert_default_via(&f.guest, Family::V4, "10.5.0.1", "eth2");
        assert_no_host_side(&f.host, &temp);
    }

    /// `--host-access`: the shim made, up, and the host route; then a
    /// second guest's run on the shim that is there, whose rollback keeps it.
    #[test]
    fn host_access_rolls_back_at_every_step() {
        let f = Fixture::new();
        f.host.ip(&["addr", "add", "10.5.0.2/24", "dev", "eth0"]);
        let failed = fail_at_every_step(&f, &["--host-access", "eth0", "CTR", IP]);
        assert!(failed >= 7, "only {failed} steps could be failed");
        assert_eq!(routes_via(&f.host, "pwh-eth0"), vec!["10.5.0.5"]);
        let guest2 = Netns::new("guest2");
        let args =
            ["--host-access", "eth0", &format!("netns:{}", guest2.name), "10.5.0.6/24"].map(String::from);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut n = 1;
        loop {
            let (host_before, guest_before) = (f.host.snapshot(), guest2.snapshot());
            let out = pipework_env(&f.host, &args, &[("PIPEWORK_FAIL_AT", &n.to_string())]);
            if out.status.success() {
                break;
            }
            assert_eq!(out.status.code(), Some(1), "failing at step {n}:\n{}", stderr(&out));
            assert_unchanged(&format!("host after failing at step {n}"), &host_before, || f.host.snapshot());
            assert_unchanged(&format!("guest after failing at step {n}"), &guest_before, || {
                guest2.snapshot()
            });
            n += 1;
            assert!(n < MAX_STEPS, "never succeeds");
        }
        assert!(n >= 5, "only {} steps could be failed", n - 1);
        assert_eq!(routes_via(&f.host, "pwh-eth0"), vec!["10.5.0.5", "10.5.0.6"]);
        assert!(f.host.ping("10.5.0.6"), "the host cannot ping the second guest");
    }

    #[test]
    fn direct_phys_comes_back_as_it_was() {
        // Down (pipework brings it up in the guest) and up (moving it takes it down).
        for up in [false, true] {
            let f = Fixture::new();
            f.guest.add_uplink("192.168.77.2/24", "192.168.77.1");
            f.add_nic("eth9", "02:00:00:00:09:09", "1450");
            if up {
                f.host.ip(&["link", "set", "eth9", "up"]);
            }
            let args =
                ["--direct-phys", "eth9", "-i", "eth5", "CTR", "10.9.0.5/24@10.9.0.1", "02:12:34:56:78:9a"];
            let failed = fail_at_every_step(&f, &args);
            assert!(failed >= 4, "up={up}: only {failed} steps could be failed");
            assert!(f.host.link("eth9").is_none(), "up={up}: eth9 is still on the host");
            assert_eq!(f.guest.must_link("eth5").address, "02:12:34:56:78:9a");
            assert_default_via(&f.guest, Family::V4, "10.9.0.1", "eth5");
        }
    }

    /// A guest that renames the link just moved in and plants a veth pair
    /// under its name, while the run is paused after the move; then a later
    /// step fails. The rollback must act on the link the run moved in (by
    /// ifindex), not on the one now called by its name.
    fn renamed_mid_run(f: &Fixture, args: &[&str]) -> Output {
        let args = f.args(args);
        let plan = planned_steps(&f.host, &args);
        let moved = plan.iter().position(|s| s.contains(" netns ")).expect("a move step") + 1;
        let mut run = std::process::Command::new("ip");
        run.args(["netns", "exec", &f.host.name, PIPEWORK]).args(&args);
        run.env("PIPEWORK_PAUSE_AT", (moved + 1).to_string());
        run.env("PIPEWORK_FAIL_AT", plan.len().to_string()).env(STATE_DIR_ENV, f.host.state_dir());
        let run = run.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn();
        let run = run.expect("cannot run pipework");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while f.guest.link("eth5").is_none() {
            assert!(std::time::Instant::now() < deadline, "eth5 never reached the guest");
        }
        f.guest.ip(&["link", "set", "eth5", "name", "moved0"]);
        f.guest.ip(&["link", "add", "eth5", "address", PLANTED, "type", "veth", "peer", "name", "planted0"]);
        let out = run.wait_with_output().expect("pipework did not end");
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        out
    }

    const PLANTED: &str = "02:00:00:00:66:66";

    /// The planted pair is in the guest as it was made, the moved link gone.
    #[track_caller]
    fn assert_planted_left(f: &Fixture) {
        let eth5 = f.guest.must_link("eth5");
        assert_eq!((eth5.address.as_str(), eth5.kind.as_deref()), (PLANTED, Some("veth")), "{eth5:?}");
        assert!(f.guest.cidrs("eth5", Family::V4).is_empty(), "the planted link got the address");
        assert!(f.guest.link("planted0").is_some());
        assert!(f.guest.link("moved0").is_none(), "the moved link stayed in the guest");
    }

    #[test]
    fn rollback_returns_the_lent_interface_not_one_planted_under_its_name() {
        let f = Fixture::new();
        f.add_nic("eth9", "02:00:00:00:09:09", "1450");
        let index = f.host.must_link("eth9").ifindex;
        renamed_mid_run(&f, &["--direct-phys", "eth9", "-i", "eth5", "CTR", "10.9.0.5/24@10.9.0.1"]);
        let eth9 = f.host.must_link("eth9");
        assert_eq!((eth9.address.as_str(), eth9.mtu), ("02:00:00:00:09:09", 1450), "{eth9:?}");
        assert_eq!(eth9.ifindex, index, "{eth9:?}");
        assert_planted_left(&f);
    }

    #[test]
    fn rollback_deletes_the_macvlan_moved_in_not_one_planted_under_its_name() {
        let f = Fixture::new();
        renamed_mid_run(&f, &["eth0", "-i", "eth5", "CTR", "10.9.0.5/24@10.9.0.1"]);
        assert!(f.host.links().iter().all(|l| l.kind.as_deref() != Some("macvlan")), "a macvlan on the host");
        assert!(
            f.guest.links().iter().all(|l| l.kind.as_deref() != Some("macvlan")),
            "a macvlan in the guest"
        );
        assert_planted_left(&f);
    }
}
