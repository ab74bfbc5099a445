//! Finding the guest: LXC containers through their cgroup (v1 and v2), a
//! Docker container that is not running, and guest forms naming nothing.

use std::time::{Duration, Instant};

use crate::common::*;

const IP: &str = "10.5.106.101/24";

/// `hierarchy`, or None after saying why the test is skipped.
fn mounted(hierarchy: Option<Hierarchy>, what: &str) -> Option<Hierarchy> {
    if hierarchy.is_none() {
        eprintln!("skipped: no {what} hierarchy in /proc/self/mounts");
    }
    hierarchy
}

/// A stand-in for an LXC container called `name`: a process in a network
/// namespace of its own, in `group`. pipework must find it by `name` and
/// connect that namespace.
fn lxc_guest_is_found(group: &Cgroup, name: &str) {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let proc = guest.spawn_process();
    group.add(proc.pid());
    assert_success(&pipework_keeping_mounts(&host, &["br0", name, IP]));
    assert_connected(&host, "br0", &host_side("eth1", proc.pid()), &guest, "eth1", IP);
}

#[test]
fn lxc_container_in_the_v1_devices_hierarchy() {
    let Some(v1) = mounted(Hierarchy::v1_devices(), "cgroup v1 devices") else { return };
    let name = owned_name("lxc");
    lxc_guest_is_found(&v1.group(&name), &name);
}

#[test]
fn lxc_payload_container_in_the_v2_hierarchy() {
    let Some(v2) = mounted(Hierarchy::v2(), "cgroup2") else { return };
    let name = owned_name("lxc");
    // LXC 4 keeps the container's processes in a child group: the named
    // group itself lists none.
    lxc_guest_is_found(&v2.group(&format!("{LXC_PAYLOAD}{name}/init")), &name);
}

/// Where each LXC version puts a container, in either hierarchy:
/// `lxc.payload.NAME` (LXC 4 on), `lxc.payload/NAME` (LXC 3.1), `lxc/NAME`.
#[test]
fn lxc_container_where_each_version_puts_it() {
    let hierarchies = [(Hierarchy::v1_devices(), "cgroup v1 devices"), (Hierarchy::v2(), "cgroup2")];
    for hierarchy in hierarchies.into_iter().filter_map(|(h, what)| mounted(h, what)) {
        let name = owned_name("lxc");
        lxc_guest_is_found(&hierarchy.group(&format!("{LXC_PAYLOAD}{name}")), &name);
        for parent in LXC_PARENTS {
            let name = owned_name("lxc");
            lxc_guest_is_found(&hierarchy.group_under(parent, &name), &name);
        }
    }
}

/// Groups that are not where LXC puts a container name no guest, even with
/// a process of another namespace in them: one named like a systemd unit,
/// one nested anywhere, and Docker's `docker` (the original found the first
/// container in it). The name goes on to Docker, which has no such
/// container.
#[test]
fn other_cgroups_name_no_guest() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let _ctr = Container::run("ctr"); // so that Docker's group holds one
    let mut kept = Vec::new();
    let mut labels = vec![("docker".to_string(), vec!["route", "docker", "show"])];
    for hierarchy in [Hierarchy::v1_devices(), Hierarchy::v2()].into_iter().flatten() {
        let unit = format!("{}.service", owned_name("unit"));
        let nested = unique("ctr");
        for path in [unit.clone(), format!("{}/{nested}", owned_name("slice"))] {
            let (group, proc) = (hierarchy.group(&path), guest.spawn_process());
            group.add(proc.pid());
            kept.push((group, proc));
        }
        labels.push((unit.clone(), vec!["br0", "UNIT", IP]));
        labels.push((nested.clone(), vec!["br0", "UNIT", IP]));
    }
    for (label, args) in &labels {
        let args: Vec<&str> = args.iter().map(|a| if *a == "UNIT" { label.as_str() } else { a }).collect();
        let out = assert_refused(pipework_keeping_mounts, &host, Some(&guest), &args);
        assert_eq!(stderr(&out), format!("Error: No such object: {label}\n"), "{args:?}");
    }
}

/// An LXC group whose processes are in two network namespaces holds more
/// than one container: either could be the wrong one.
#[test]
fn lxc_group_holding_several_namespaces() {
    let Some(v2) = mounted(Hierarchy::v2(), "cgroup2") else { return };
    let host = Netns::new("host");
    let (a, b) = (Netns::new("guest"), Netns::new("guest"));
    let (pa, pb) = (a.spawn_process(), b.spawn_process());
    let name = owned_name("lxc");
    let top = format!("{LXC_PAYLOAD}{name}");
    let ga = v2.group(&format!("{top}/init"));
    ga.add(pa.pid());
    let gb = v2.group(&format!("{top}/inner"));
    gb.add(pb.pid());
    let out = assert_refused(pipework_keeping_mounts, &host, Some(&a), &["br0", &name, IP]);
    assert_eq!(
        stderr(&out),
        format!(
            "pipework: the processes of {} are in more than one network namespace \
             (containers inside a container?): name one with pid:<PID>\n",
            v2.root.join(&top).display()
        )
    );
}

#[test]
fn two_cgroups_of_the_same_name() {
    let Some(v1) = mounted(Hierarchy::v1_devices(), "cgroup v1 devices") else { return };
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let name = owned_name("lxc");
    // A process in each, so that picking either one would succeed.
    let procs = [guest.spawn_process(), guest.spawn_process()];
    let groups = [v1.group(&name), v1.group(&format!("{LXC_PAYLOAD}{name}"))];
    for (group, proc) in groups.iter().zip(&procs) {
        group.add(proc.pid());
    }
    let out = assert_refused(pipework_keeping_mounts, &host, Some(&guest), &["br0", &name, IP]);
    assert_eq!(stderr(&out), format!("Found more than one container matching {name}.\n"));
}

#[test]
fn docker_container_created_but_not_started() {
    let host = Netns::new("host");
    let ctr = Container::created("ctr", &[], &["/bin/sleep", "1000000"]);
    let mut waited = Duration::ZERO;
    let out = assert_refused(
        |host, args| {
            let started = Instant::now();
            let out = pipework(host, args);
            waited = started.elapsed();
            out
        },
        &host,
        None,
        &["br0", &ctr.name, IP],
    );
    assert_eq!(stderr(&out), "Docker inspect returned invalid PID 0\n");
    // It gave the container a few seconds to start, and no more.
    assert!(waited >= Duration::from_millis(1500), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(10), "gave up after {waited:?}");
}

#[test]
fn guest_forms_naming_nothing() {
    let host = Netns::new("host");
    let nosuch = format!("nosuch{}", unique("n"));
    let netns = format!("netns:{nosuch}");
    for (guest, bad) in [
        ("pid:abc", "abc"),
        // Above any pid_max the kernel allows.
        ("pid:999999999", "999999999"),
        (&netns, &nosuch),
        ("/etc/hostname", "/etc/hostname"),
    ] {
        let args = ["br0", guest, IP];
        let out = assert_refused(pipework, &host, None, &args);
        assert_one_line_naming(&args, &out, bad);
    }
}

/// `route`, `rule` and `tc` refuse a guest in the host's own namespace as
/// attach does: they would change the host's own network.
#[test]
fn passthrough_in_the_hosts_own_namespace() {
    let host = Netns::new("host");
    let netns = format!("netns:{}", host.name);
    for args in
        [vec!["route", &netns, "show"], vec!["rule", &netns, "show"], vec!["tc", &netns, "qdisc", "show"]]
    {
        let out = assert_refused(pipework, &host, None, &args);
        assert_eq!(
            stderr(&out),
            format!(
                "pipework: {netns} shares this network namespace (a --net=host container?): \
                 this would change the host's own network; run ip or tc directly\n"
            )
        );
    }
}

/// `pid:<PID>` of a live process connects its namespace; of a process that
/// has exited, it is refused by number, changing nothing.
#[test]
fn pid_guest_alive_and_dead() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let proc = guest.spawn_process();
    let label = format!("pid:{}", proc.pid());
    assert_success(&pipework(&host, &["br0", &label, IP]));
    assert_connected(&host, "br0", &host_side("eth1", proc.pid()), &guest, "eth1", IP);

    let mut dead = std::process::Command::new("true").spawn().expect("spawn true");
    let pid = dead.id();
    dead.wait().expect("wait true");
    let label = format!("pid:{pid}");
    let out = assert_refused(pipework, &host, None, &["br0", &label, IP]);
    assert_eq!(stderr(&out), format!("pipework: process {pid} of {label} not found\n"));
}

/// `DOCKER_HOST=unix://…` names the Engine API socket; anything else is
/// refused by name, and a socket that is not there too, changing nothing.
#[test]
fn docker_host_names_the_socket() {
    let host = Netns::new("host");
    let ctr = Container::run("ctr");
    let env = [("DOCKER_HOST", "unix:///var/run/docker.sock")];
    let out = pipework_env(&host, &["br0", &ctr.name, IP], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_connected(&host, "br0", &host_side("eth1", ctr.pid), &ctr, "eth1", IP);

    for (socket, bad) in
        [("unix:///nonexistent.sock", "/nonexistent.sock"), ("tcp://127.0.0.1:2375", "tcp://")]
    {
        let run = |host: &Netns, args: &[&str]| pipework_env(host, args, &[("DOCKER_HOST", socket)]);
        let args = ["br0", &ctr.name, "10.5.106.102/24"];
        let out = assert_refused(run, &host, Some(&ctr), &args);
        assert_one_line_naming(&args, &out, bad);
    }
}

/// A guest in the host's own namespace (a `--net=host` container) is
/// refused: the original would have given the host an eth1 and a default
/// route.
#[test]
fn guest_in_the_hosts_own_namespace() {
    let host = Netns::new("host");
    let path = format!("/var/run/netns/{}", host.name);
    let netns = format!("netns:{}", host.name);
    for guest in [path.as_str(), netns.as_str()] {
        let args = ["br0", guest, IP];
        let out = assert_refused(pipework, &host, None, &args);
        assert_one_line_naming(&args, &out, "shares this network namespace");
    }
}

/// A path guest that is not a namespace file is refused before it is opened
/// for real: a FIFO would hang the run, a device node would see an open and
/// an ioctl (one whose driver is missing fails the open with another message).
#[test]
fn path_guest_that_is_no_namespace_file() {
    let host = Netns::new("host");
    let dir = TempDir::new("node");
    let (fifo, null, absent) = (dir.join("fifo"), dir.join("null"), dir.join("absent"));
    run(&["mkfifo", &fifo]);
    run(&["mknod", &null, "c", "1", "3"]);
    // Major 240 is for local use: no driver here.
    run(&["mknod", &absent, "c", "240", "7"]);
    for path in [&fifo, &null, &absent, &dir.join(".")] {
        let args = ["br0", path.as_str(), IP];
        let started = Instant::now();
        let out = assert_refused(pipework, &host, None, &args);
        assert!(started.elapsed() < Duration::from_secs(10), "{path}: took {:?}", started.elapsed());
        assert_eq!(stderr(&out), format!("pipework: {path} is not a network namespace\n"));
    }
}

/// pipework run by an ordinary user: whichever way the guest is named, it
/// says that it needs root before anything changes, not "not found".
#[test]
fn unprivileged_run_says_it_needs_root() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let proc = guest.spawn_process();
    let ctr = Container::run("ctr");
    let nobody = |host: &Netns, args: &[&str]| {
        let mut argv = vec!["ip", "netns", "exec", &host.name];
        argv.extend(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PIPEWORK]);
        argv.extend(args);
        quiet(&argv)
    };
    let needs_root = "permission denied: pipework needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)";
    let netns = format!("netns:{}", guest.name);
    let pid = format!("pid:{}", proc.pid());
    let path = guest.path();
    for (args, doing) in [
        (vec!["br0", &netns, IP], "entering the namespace".to_string()),
        (vec!["br0", &path, IP], "entering the namespace".to_string()),
        (vec!["br0", &pid, IP], format!("opening /proc/{}/ns/net", proc.pid())),
        (vec!["route", &netns, "add", "10.1.0.0/16", "dev", "lo"], "entering the namespace".to_string()),
        (vec!["tc", &netns, "qdisc", "show"], "entering the namespace".to_string()),
    ] {
        let out = assert_refused(nobody, &host, Some(&guest), &args);
        assert_eq!(stderr(&out), format!("pipework: {doing}: {needs_root}\n"), "{args:?}");
    }
    let out = assert_refused(nobody, &host, Some(&ctr), &["br0", &ctr.name, IP]);
    assert_eq!(stderr(&out), format!("pipework: connecting to /var/run/docker.sock: {needs_root}\n"));
    // Planning asks whether the host's FORWARD chain would drop the
    // bridge's traffic (br_netfilter is on here): nf_tables refuses.
    host.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
    let out = assert_refused(nobody, &host, None, &["mkbridge", "br0", "eth0"]);
    let err = stderr(&out);
    let bridged_to_iptables =
        host.exec(&["cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"]).stdout == b"1\n";
    if bridged_to_iptables {
        assert_eq!(err, format!("pipework: looking for ip filter FORWARD: {needs_root}\n"));
    } else {
        // Else the run's intent, written before its first change, is refused.
        assert!(err.starts_with("pipework: keeping an intent of this run: creating "), "{err}");
        assert!(err.ends_with(&format!(": {needs_root}\n")), "{err}");
    }
}

/// A Podman socket in $XDG_RUNTIME_DIR is believed only if root owns it and
/// the directories it is in: any user could make one that names a process
/// of their choosing. Docker's own socket is hidden for the run.
#[test]
fn podman_socket_not_owned_by_root() {
    let host = Netns::new("host");
    let xdg = TempDir::new("xdg");
    let dir = xdg.path.join("podman");
    std::fs::create_dir(&dir).expect("mkdir podman");
    let socket = dir.join("podman.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let without_docker = |host: &Netns, args: &[&str]| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &host.name, "unshare", "--mount", "sh", "-c"]);
        cmd.args(["mount -t tmpfs none /run && exec \"$0\" \"$@\"", PIPEWORK]).args(args);
        cmd.env("XDG_RUNTIME_DIR", xdg.arg()).env_remove("DOCKER_HOST");
        cmd.output().expect("cannot run pipework")
    };
    let args = ["br0", "nosuchctr", IP];
    let (sock, podman_dir) = (socket.display().to_string(), dir.display().to_string());
    for (owner, why) in [
        ((&sock, 65534), "it belongs to uid 65534, not root".to_string()),
        ((&podman_dir, 65534), format!("{podman_dir} is not owned by root")),
    ] {
        run(&["chown", "0", &sock]);
        run(&["chown", &owner.1.to_string(), owner.0]);
        let out = assert_refused(without_docker, &host, None, &args);
        assert_eq!(stderr(&out), format!("pipework: refusing the Docker socket {sock}: {why}\n"));
    }
}
