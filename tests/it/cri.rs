//! pipework as a Kubernetes node's CNI plugin: containerd's CRI (the
//! runtime a kubelet drives) runs pods on a `"type": "pipework"` network,
//! ADD at RunPodSandbox, DEL at StopPodSandbox. Each scenario runs with the
//! reference `bridge` plugin too, as a control: the same steps give the same
//! network. Checked through `ip -j`, iptables, ping and the plugins' files
//! (host-local's, pipework's state dir, libcni's cache), never through
//! pipework's own code.

use crate::common::{assert_default_via, has_br_netfilter, Cri, Family, Ns, Pod, PortMapping};
use serde_json::{json, Value};

const SUBNET: &str = "10.88.0.0/24";
const GATEWAY: &str = "10.88.0.1";
const SUBNET6: &str = "fd88::/64";
const GATEWAY6: &str = "fd88::1";

/// The network's main plugin as a conflist's first entry: a bridge `cni0`
/// with the gateways, host-local handing out SUBNET and SUBNET6 (a
/// dual-stack cluster's pod network).
fn main_plugin(cri: &Cri, plugin: &str) -> Value {
    json!({
        "type": plugin,
        "bridge": "cni0",
        "isGateway": true,
        "isDefaultGateway": true,
        "ipam": {
            "type": "host-local",
            "dataDir": cri.ipam_dir(),
            "ranges": [[{"subnet": SUBNET}], [{"subnet": SUBNET6}]],
        },
    })
}

/// A node whose network is `plugins` (the main one first).
fn node(plugin: &str, chained: Vec<Value>) -> Cri {
    Cri::start(|cri| {
        let mut plugins = vec![main_plugin(cri, plugin)];
        plugins.extend(chained);
        json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": plugins})
    })
}

/// The pod has the addresses the CRI reports, on `eth0`, up, with the
/// default routes via the gateways, and its host side is a port of cni0 on
/// the node; the node reaches it. Returns its IPv4 address.
#[track_caller]
fn assert_pod_network(cri: &Cri, pod: &Pod) -> String {
    let network = cri.status(pod).status.and_then(|s| s.network).expect("the pod's network status");
    let (ip, ip6) = (network.ip, network.additional_ips.first().map(|a| a.ip.clone()).unwrap_or_default());
    assert!(ip.starts_with("10.88.0."), "the CRI reports {ip:?} for the pod");
    assert!(ip6.starts_with("fd88::"), "the CRI reports {ip6:?} as the pod's other address");
    let ns = cri.pod_ns(pod);
    let eth0 = ns.must_link("eth0");
    assert!(eth0.is_up(), "{eth0:?}");
    assert_eq!(ns.cidrs("eth0", Family::V4), vec![format!("{ip}/24")]);
    assert_eq!(ns.cidrs("eth0", Family::V6), vec![format!("{ip6}/64")]);
    assert_default_via(&ns, Family::V4, GATEWAY, "eth0");
    assert_default_via(&ns, Family::V6, GATEWAY6, "eth0");
    // eth0's peer (link_index) on the node is a veth, up, a port of cni0.
    let peer = ns.ip_j(&["-d", "link", "show", "eth0"])[0]["link_index"].as_u64().expect("eth0's peer");
    let port = cri.node.links().into_iter().find(|l| l.ifindex == peer).expect("eth0's peer on the node");
    assert_eq!((port.kind.as_deref(), port.master.as_deref()), (Some("veth"), Some("cni0")), "{port:?}");
    assert!(port.is_up(), "{port:?}");
    assert_eq!(cri.node.cidrs("cni0", Family::V4), vec![format!("{GATEWAY}/24")]);
    assert_eq!(cri.node.cidrs("cni0", Family::V6), vec![format!("{GATEWAY6}/64")]);
    assert!(cri.node.ping(&ip), "the node cannot reach the pod at {ip}");
    // Longer for IPv6: both ends' duplicate address detection comes first.
    assert!((0..3).any(|_| cri.node.ping(&ip6)), "the node cannot reach the pod at {ip6}");
    // What teardown must remove is there: libcni's cache entry, the address in host-local.
    let cached = cri.cni_cache();
    assert!(cached.iter().any(|n| n == &format!("k8s-pod-network-{}-eth0", pod.id)), "{cached:?}");
    assert!(cri.allocations().contains(&ip) && cri.allocations().contains(&ip6), "{:?}", cri.allocations());
    ip
}

/// Nothing of any pod is left: no pod, no veth and no port on the node, no
/// address taken in host-local, no pipework record, no libcni cache entry.
#[track_caller]
fn assert_nothing_left(cri: &Cri) {
    assert!(cri.pods().is_empty(), "pods left");
    let veths: Vec<String> = cri
        .node
        .links()
        .into_iter()
        .filter(|l| l.kind.as_deref() == Some("veth"))
        .map(|l| l.ifname)
        .collect();
    assert!(veths.is_empty(), "veths left on the node: {veths:?}");
    assert_eq!(cri.allocations(), Vec::<String>::new(), "host-local's addresses left");
    assert_eq!(cri.records(), Vec::<String>::new(), "pipework's records left");
    assert_eq!(cri.cni_cache(), Vec::<String>::new(), "libcni's cache left");
}

/// Two pods: each its address, route and bridge port; a container in a pod
/// shares its network and reaches the other pod; deleting them leaves nothing.
fn pods_and_containers(plugin: &str) {
    let cri = node(plugin, vec![]);
    let (a, b) = (cri.run_pod("a", vec![]), cri.run_pod("b", vec![]));
    let (ip_a, ip_b) = (assert_pod_network(&cri, &a), assert_pod_network(&cri, &b));
    assert_ne!(ip_a, ip_b);
    assert_eq!(cri.node.ports("cni0").len(), 2, "{:?}", cri.node.ports("cni0"));
    if plugin == "pipework" {
        assert!(!cri.records().is_empty(), "pipework kept no record of the pods");
    }

    let ctr = cri.container(&a, "app", &["/bin/sleep", "1000000"]);
    let seen = cri.exec(&ctr, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert_eq!(seen.exit_code, 0, "{}", String::from_utf8_lossy(&seen.stderr));
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(
        seen.contains(&format!("inet {ip_a}/24")),
        "the container does not share the pod's network: {seen}"
    );
    let ping = cri.exec(&ctr, &["ping", "-c", "2", "-W", "2", &ip_b]);
    assert_eq!(ping.exit_code, 0, "pod a cannot reach pod b: {}", String::from_utf8_lossy(&ping.stdout));

    // The network goes at StopPodSandbox (CNI DEL), before the pod is removed.
    cri.stop_pod(&a.id);
    assert!(!cri.allocations().contains(&ip_a), "{ip_a} still taken: {:?}", cri.allocations());
    assert!(!cri.cni_cache().iter().any(|n| n.contains(&a.id)), "{:?}", cri.cni_cache());
    cri.remove_pod(&a.id);
    cri.remove_pod(&b.id);
    assert_nothing_left(&cri);
}

#[test]
fn pipework_pods_and_containers() {
    pods_and_containers("pipework");
}

#[test]
fn bridge_pods_and_containers() {
    pods_and_containers("bridge");
}

/// Ten pods made at once, then deleted at once: ten addresses, ten ports,
/// and nothing left.
fn ten_pods_in_parallel(plugin: &str) {
    let cri = node(plugin, vec![]);
    let pods: Vec<Pod> = std::thread::scope(|s| {
        let cri = &cri;
        let made: Vec<_> = (0..10).map(|i| s.spawn(move || cri.run_pod(&format!("p{i}"), vec![]))).collect();
        made.into_iter().map(|t| t.join().expect("RunPodSandbox")).collect()
    });
    let mut ips: Vec<String> = pods.iter().map(|p| assert_pod_network(&cri, p)).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10, "{ips:?}");
    assert_eq!(cri.node.ports("cni0").len(), 10);
    assert_eq!(cri.allocations().len(), 20);
    std::thread::scope(|s| {
        for pod in &pods {
            s.spawn(|| cri.remove_pod(&pod.id));
        }
    });
    assert_nothing_left(&cri);
}

#[test]
fn pipework_ten_pods_in_parallel() {
    ten_pods_in_parallel("pipework");
}

#[test]
fn bridge_ten_pods_in_parallel() {
    ten_pods_in_parallel("bridge");
}

/// containerd restarts with a pod running: the pod keeps its network, a
/// new pod gets one, and both are torn down cleanly after.
fn containerd_restart(plugin: &str) {
    let mut cri = node(plugin, vec![]);
    let a = cri.run_pod("a", vec![]);
    let ip_a = assert_pod_network(&cri, &a);
    cri.restart_containerd();
    let state = cri.status(&a).status.map(|s| s.state);
    assert_eq!(state, Some(0), "the pod is not SANDBOX_READY after the restart");
    assert_eq!(assert_pod_network(&cri, &a), ip_a, "the pod's address changed across the restart");
    let b = cri.run_pod("b", vec![]);
    assert_pod_network(&cri, &b);
    cri.remove_pod(&a.id);
    cri.remove_pod(&b.id);
    assert_nothing_left(&cri);
}

#[test]
fn pipework_containerd_restart() {
    containerd_restart("pipework");
}

#[test]
fn bridge_containerd_restart() {
    containerd_restart("bridge");
}

/// The NAT rules portmap made on the node (its CNI-* chains).
fn portmap_rules(cri: &Cri) -> Vec<String> {
    cri.node
        .must(&["iptables", "-t", "nat", "-S"])
        .lines()
        .filter(|l| l.contains("CNI-"))
        .map(str::to_owned)
        .collect()
}

/// `tuning` then `portmap` chained after the main plugin: the pod's sysctl
/// is set, its published port answers on the node, and its DEL removes the
/// port's rules.
fn chained(plugin: &str) {
    let cri = node(
        plugin,
        vec![
            json!({"type": "tuning", "sysctl": {"net.core.somaxconn": "777"}}),
            json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        ],
    );
    let http = PortMapping { protocol: 0, container_port: 80, host_port: 8080, host_ip: String::new() };
    let pod = cri.run_pod("web", vec![http]);
    let ip = assert_pod_network(&cri, &pod);
    let somaxconn = cri.pod_ns(&pod).exec(&["cat", "/proc/sys/net/core/somaxconn"]);
    assert_eq!(String::from_utf8_lossy(&somaxconn.stdout).trim(), "777", "tuning's sysctl");

    let serve = "mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 80 -h /www";
    cri.container(&pod, "web", &["sh", "-c", serve]);
    let rules = portmap_rules(&cri);
    assert!(
        rules.iter().any(|r| r.contains("--dport 8080") && r.contains(&format!("--to-destination {ip}:80"))),
        "no DNAT of 8080 to the pod: {rules:#?}"
    );
    // From the node to its own address on cni0, as a client on the node would.
    let get =
        format!("exec 3<>/dev/tcp/{GATEWAY}/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3");
    let answered = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let out = cri.node.exec(&["timeout", "3", "bash", "-c", &get]);
        String::from_utf8_lossy(&out.stdout).ends_with("\r\n\r\nhello from the pod\n")
    });
    assert!(answered, "the published port does not answer");

    cri.remove_pod(&pod.id);
    assert_nothing_left(&cri);
    let left: Vec<String> = portmap_rules(&cri).into_iter().filter(|r| r.contains("8080")).collect();
    assert!(left.is_empty(), "portmap's rules for the pod left: {left:#?}");
}

#[test]
fn pipework_chained_with_tuning_and_portmap() {
    chained("pipework");
}

#[test]
fn bridge_chained_with_tuning_and_portmap() {
    chained("bridge");
}

/// The node's FORWARD chain as `iptables -S` lists it.
fn forward_rules(cri: &Cri) -> String {
    cri.node.must(&["iptables", "-S", "FORWARD"])
}

/// A node whose FORWARD policy is DROP with br_netfilter on (as Docker
/// leaves a host): frames bridged between two pods meet that policy. Like
/// the reference plugin, the main plugin adds no FORWARD rule of its own:
/// the chain's `firewall` plugin lets the pods' traffic through, and takes
/// its rules away at teardown.
fn chained_with_firewall(plugin: &str) {
    let cri = node(plugin, vec![json!({"type": "firewall"})]);
    if !has_br_netfilter(&cri.node) {
        return;
    }
    for argv in [
        &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"][..],
        &["iptables", "-P", "FORWARD", "DROP"],
    ] {
        cri.node.must(argv);
    }
    let (a, b) = (cri.run_pod("a", vec![]), cri.run_pod("b", vec![]));
    let (ip_a, ip_b) = (assert_pod_network(&cri, &a), assert_pod_network(&cri, &b));
    let ctr = cri.container(&a, "app", &["/bin/sleep", "1000000"]);
    let ping = |to: &str| cri.exec(&ctr, &["ping", "-c", "1", "-W", "2", to]).exit_code == 0;
    assert!(ping(&ip_b), "pod a cannot reach pod b through the firewall plugin's rules");

    // The policy is in force: without the firewall plugin's jump the same ping fails.
    let jump = ["-m", "comment", "--comment", "CNI firewall plugin rules", "-j", "CNI-FORWARD"];
    let rules = forward_rules(&cri);
    assert!(rules.contains(r#"--comment "CNI firewall plugin rules" -j CNI-FORWARD"#), "{rules}");
    let with = |op: &str| {
        let mut argv = vec!["iptables", op, "FORWARD"];
        argv.extend(jump);
        cri.node.must(&argv);
    };
    with("-D");
    assert!(!ping(&ip_b), "the DROP policy does not apply to the pods' bridged traffic");
    with("-I");
    assert!(ping(&ip_b), "pod a cannot reach pod b once the jump is back");

    cri.remove_pod(&a.id);
    cri.remove_pod(&b.id);
    assert_nothing_left(&cri);
    let chains = cri.node.exec(&["iptables", "-S"]);
    let left: Vec<String> = String::from_utf8_lossy(&chains.stdout)
        .lines()
        .filter(|l| l.contains(&ip_a) || l.contains(&ip_b))
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "the firewall plugin's rules for the pods left: {left:#?}");
}

#[test]
fn pipework_chained_with_firewall_under_a_drop_policy() {
    chained_with_firewall("pipework");
}

#[test]
fn bridge_chained_with_firewall_under_a_drop_policy() {
    chained_with_firewall("bridge");
}
