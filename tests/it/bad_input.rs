//! Refusals: the exact message, exit status 1, and nothing changed on the
//! host or in the container (no bridge made, no litter in /var/run/netns).

use std::process::Output;

use crate::common::*;

/// A Docker host namespace with a bridge `br0` and a plain interface `eth0`
/// (a veth, so "physical" to pipework), and a container.
struct Fixture {
    host: Netns,
    ctr: Container,
}

impl Fixture {
    fn new() -> Fixture {
        let host = Netns::new("host");
        host.add_bridge("br0", None);
        host.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
        host.ip(&["link", "set", "eth0", "up"]);
        Fixture { host, ctr: Container::run("ctr") }
    }

    /// Runs pipework with `CTR` standing for the container, checks that it
    /// exits 1 and changes nothing, and returns what it printed.
    #[track_caller]
    fn refused(&self, args: &[&str]) -> Output {
        let args = with_guest(args, &self.ctr.name);
        assert_refused(pipework, &self.host, Some(&self.ctr), &args)
    }

    /// Refused with exactly `message` on stderr.
    #[track_caller]
    fn refused_with(&self, args: &[&str], message: &str) {
        let out = self.refused(args);
        assert_eq!(stderr(&out), format!("{message}\n"), "{args:?}");
    }

    /// Refused with one `pipework: ` line on stderr that mentions `bad`.
    #[track_caller]
    fn refused_mentioning(&self, args: &[&str], bad: &str) {
        assert_one_line_naming(args, &self.refused(args), bad);
    }
}

#[test]
fn no_ip_prints_usage_on_stdout() {
    let f = Fixture::new();
    for args in [&["br0", "CTR"][..], &["br0"], &[]] {
        let out = f.refused(args);
        assert!(stdout(&out).starts_with("Syntax:"), "{args:?}: {}", stdout(&out));
    }
}

#[test]
fn ip_without_netmask() {
    Fixture::new().refused_with(
        &["br0", "CTR", "10.0.0.5"],
        "The IP address should include a netmask.\nMaybe you meant 10.0.0.5/24 ?",
    );
}

#[test]
fn unknown_host_interface() {
    Fixture::new()
        .refused_with(&["foo0", "CTR", "10.0.0.5/24"], "I do not know how to setup interface foo0.");
}

#[test]
fn vlan_on_a_linux_bridge_that_does_not_filter() {
    // The original refused every VLAN on a Linux bridge; turning filtering
    // on changes the bridge's other ports, so only on request.
    Fixture::new().refused_with(
        &["br0", "CTR", "10.0.0.5/24", "@10"],
        "pipework: bridge br0 does not filter VLANs; add --vlan-filtering to turn it on (`ip link set br0 type bridge vlan_filtering 1`: this changes every port)",
    );
}

#[test]
fn vlan_filtering_without_a_vlan_or_a_linux_bridge() {
    let f = Fixture::new();
    f.refused_with(
        &["--vlan-filtering", "br0", "CTR", "10.0.0.5/24"],
        "pipework: --vlan-filtering goes with @VLAN",
    );
    f.refused_with(
        &["eth0", "CTR", "10.0.0.5/24", "@10", "--vlan-filtering"],
        "pipework: --vlan-filtering applies to a Linux bridge",
    );
}

#[test]
fn invalid_vlan_on_a_bridge_to_be_made() {
    // Refused before the bridge is made: the snapshot shows no br7.
    Fixture::new().refused_with(
        &["br7", "CTR", "10.0.0.5/24", "02:12:34:56:78:9a@4095"],
        "pipework: invalid VLAN ID '4095' (must be 1-4094)",
    );
}

#[test]
fn invalid_family() {
    Fixture::new().refused_with(&["br0", "-a", "5", "CTR", "10.0.0.5/24"], "Invalid family: 5");
}

#[test]
fn unknown_container() {
    let f = Fixture::new();
    let name = format!("nosuch{}", unique("c"));
    f.refused_with(&["br0", &name, "10.0.0.5/24"], &format!("Error: No such object: {name}"));
}

#[test]
fn bad_addresses() {
    let f = Fixture::new();
    for (ip, bad) in [
        ("10.0.0.300/24", "10.0.0.300"),
        ("banana/24", "banana"),
        ("10.0.0.5/33", "33"),
        ("10.0.0.5/abc", "abc"),
        ("10.0.0.5/", "10.0.0.5/"),
    ] {
        f.refused_mentioning(&["br0", "CTR", ip], bad);
    }
}

#[test]
fn address_of_the_wrong_family() {
    let f = Fixture::new();
    f.refused_mentioning(&["br0", "-a", "6", "CTR", "10.0.0.5/24"], "10.0.0.5");
    f.refused_mentioning(&["br0", "-a", "4", "CTR", "2001:db8::10/64"], "2001:db8::10");
    f.refused_mentioning(&["br0", "-a", "6", "CTR", "2001:db8::10/129"], "129");
}

#[test]
fn bad_gateways() {
    let f = Fixture::new();
    for (ip, bad) in [
        ("10.0.0.5/24@10.0.0.999", "10.0.0.999"),
        ("10.0.0.5/24@gw", "gw"),
        ("10.0.0.5/24@2001:db8::1", "2001:db8::1"),
    ] {
        f.refused_mentioning(&["br0", "CTR", ip], bad);
    }
}

#[test]
fn bad_macs() {
    let f = Fixture::new();
    for mac in ["zz:00:00:00:00:01", "02:ab:cd", "02:ab:cd:00:11:22:33", "01:00:5e:00:00:01"] {
        f.refused_mentioning(&["br0", "CTR", "10.0.0.5/24", mac], mac);
    }
}

#[test]
fn bad_vlans() {
    // On a "physical" interface, where a VLAN is allowed at all.
    let f = Fixture::new();
    for vlan in ["5000", "4095", "abc", "-1"] {
        f.refused_mentioning(&["eth0", "CTR", "10.0.0.5/24", &format!("@{vlan}")], vlan);
        f.refused_mentioning(&["eth0", "CTR", "10.0.0.5/24", &format!("02:12:34:56:78:9a@{vlan}")], vlan);
    }
}

/// Refused with one line (any wording) mentioning `name`.
#[track_caller]
fn refused_naming(f: &Fixture, args: &[&str], name: &str) {
    let err = stderr(&f.refused(args));
    assert_eq!(err.lines().count(), 1, "{args:?}: one line expected:\n{err}");
    assert!(err.contains(name), "{args:?}: message does not mention {name:?}: {err}");
}

#[test]
fn interface_names_too_long() {
    let f = Fixture::new();
    let long = "abcdefghijklmnop"; // 16 bytes
    refused_naming(&f, &["br0", "-i", long, "CTR", "10.0.0.5/24"], long);
    refused_naming(&f, &["br0", "-l", long, "CTR", "10.0.0.5/24"], long);
    // A bridge to be made under a name the kernel would refuse.
    refused_naming(&f, &["brabcdefghijklmn", "CTR", "10.0.0.5/24"], "brabcdefghijklmn");
}

#[test]
fn interface_names_with_a_slash() {
    let f = Fixture::new();
    refused_naming(&f, &["br0", "-i", "eth/1", "CTR", "10.0.0.5/24"], "eth/1");
    refused_naming(&f, &["br0", "-l", "v/host", "CTR", "10.0.0.5/24"], "v/host");
}

#[test]
fn mac_selector_matching_nothing() {
    Fixture::new().refused_with(
        &["mac:02:00:00:00:00:99", "CTR", "10.0.0.5/24"],
        "Mac address 02:00:00:00:00:99 specified for interface but no host interface matched.",
    );
}

#[test]
fn container_interface_that_already_exists() {
    let f = Fixture::new();
    assert_success(&pipework(&f.host, &["br0", &f.ctr.name, "10.0.0.5/24"]));
    // Another host side name, so the host side check cannot be what stops it.
    f.refused_mentioning(&["br0", "-l", "vother", "CTR", "10.0.0.6/24"], "eth1");
    f.refused_mentioning(&["br0", "-i", "lo", "CTR", "10.0.0.6/24"], "lo");
}

/// A setuid copy of pipework run by an ordinary user refuses to do anything
/// at all: it would run `ip` and `tc` as root for them.
#[test]
fn setuid_copy_refuses_to_run() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let dir = TempDir::new("suid");
    let copy = dir.join("pipework");
    std::fs::copy(PIPEWORK, &copy).expect("copy pipework");
    run(&["chmod", "4755", &copy]);
    let netns = format!("netns:{}", guest.name);
    let nobody = |host: &Netns, args: &[&str]| {
        let mut argv = vec!["ip", "netns", "exec", &host.name];
        argv.extend(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", &copy]);
        argv.extend(args);
        quiet(&argv)
    };
    for args in [vec!["br0", netns.as_str(), "10.5.106.101/24"], vec!["--help"]] {
        let out = assert_refused(nobody, &host, Some(&guest), &args);
        assert_eq!(
            stderr(&out),
            "pipework: refusing to run setuid, setgid or with file capabilities: run it as root\n"
        );
        assert_eq!(stdout(&out), "");
    }
}

/// A wait too long for a clock's arithmetic is refused before anything is
/// made (these panicked once the bridge, the veth and the guest's
/// interface were there, and left them behind).
#[test]
fn waits_that_would_overflow_are_out_of_range() {
    let f = Fixture::new();
    for (args, message) in [
        (
            &["br0", "CTR", "dhcp:-T 18446744073709551615"][..],
            "pipework: DHCP option -T 18446744073709551615 is out of range (at most 86400 s)",
        ),
        (
            &["br0", "CTR", "dhcp:-t 2 -T 18446744073709551615"],
            "pipework: DHCP option -T 18446744073709551615 is out of range (at most 86400 s)",
        ),
        (
            &["--timeout", "1e19", "br0", "CTR", "dhcp"],
            "pipework: --timeout 10000000000000000000 is out of range (at most 86400 s)",
        ),
        (
            &["--timeout", "1e20", "br0", "CTR", "dhcp"],
            "pipework: --timeout 100000000000000000000 is out of range (at most 86400 s)",
        ),
        (
            &["--timeout", "86401", "br0", "CTR", "udhcpc"],
            "pipework: --timeout 86401 is out of range (at most 86400 s)",
        ),
        (
            &["--wait", "--timeout", "1e19"],
            "pipework: --timeout 10000000000000000000 is out of range (at most 86400 s)",
        ),
    ] {
        f.refused_with(args, message);
    }
}

/// A control character in DHCP options would reach the DHCP agent's state
/// file (a newline there is a key of its own) or a host client's command
/// line: refused by name, before anything changes.
#[test]
fn control_characters_in_dhcp_options() {
    let f = Fixture::new();
    f.refused_with(
        &["br0", "CTR", "dhcp:-H\nagent=1"],
        r"pipework: control character '\n' in the DHCP options of 'dhcp:-H\nagent=1'",
    );
    f.refused_with(
        &["br0", "CTR", "dhcp:-H a\nagent=1"],
        r"pipework: control character '\n' in the DHCP options of 'dhcp:-H a\nagent=1'",
    );
    f.refused_with(
        &["br0", "CTR", "dhcp:-x hostname:web\r"],
        r"pipework: control character '\r' in the DHCP options of 'dhcp:-x hostname:web\r'",
    );
    f.refused_with(
        &["br0", "CTR", "udhcpc:-V a\u{1b}b"],
        r"pipework: control character '\u{1b}' in the DHCP options of 'udhcpc:-V a\u{1b}b'",
    );
}
