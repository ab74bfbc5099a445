//! The companions: mkbridge, loop devices, the watch service, the
//! records, the CNI plugin, and the original's route/rule/tc and --wait.

pub const MKBRIDGE: &str = "\
pipework mkbridge BRIDGE IFACE does what the runbook's hand-written mkbridge script \
did, as one transaction that keeps the host reachable: BRIDGE is created if absent \
(with IFACE's MAC and MTU, STP off and forward delay 0, the script's brctl setfd 0), \
IFACE's global IPv4 and IPv6 addresses are put on BRIDGE, BRIDGE comes up, IFACE \
becomes its port, every route through IFACE (default gateway, static routes, any \
table) is replaced in place by the same route through BRIDGE, and IFACE lets go of \
its addresses last. A peer pinging the host through the move loses at most a reply \
or two.

If any step fails, IFACE gets back exactly its addresses, routes, master and \
state, and a bridge this run created is removed. Run again on a converted host, \
it changes nothing and exits 0. --dry-run prints the script. It refuses a missing \
or loopback IFACE, an IFACE that is a port of another bridge, and a BRIDGE that \
exists and is not a bridge.

  pipework mkbridge br0 eth0
  pipework mkbridge --dry-run --stp on --forward-delay 4 br0 eth0";

pub const LOOP_DEVICES: &str = "\
The runbook's known issue: copycds hangs when every loop device is busy. pipework \
loop free prints the first free loop device as losetup -f does (LOOP_CTL_GET_FREE \
on /dev/loop-control), making its node if the kernel has the device but /dev lacks \
it. pipework loop ensure --count N makes sure loop0 to loop<N-1> exist as block \
nodes 7:i, mode 0660, group disk, adding kernel devices (LOOP_CTL_ADD) when there \
are fewer; existing nodes are left as they are. --dev DIR works on another device \
directory (a chroot's); --container GUEST makes the nodes inside a container's \
/dev, entering its mount namespace, since a running container never sees nodes \
made on the host later. Such a container may still be denied access to \
the devices by its device cgroup: Docker's default rules let it create block \
nodes 7:* but not open them, so start it with --device-cgroup-rule='b 7:* rmw' \
(or, where the kernel allows it, --privileged, as the runbook does).

  pipework loop free
  pipework loop ensure --count 10 --container xcatmn";

pub const WATCH: &str = "\
pipework watch is a foreground service that keeps containers plumbed across \
restarts; run it under a service manager or with &. It follows the Docker Engine \
API's event stream (Podman's Docker-compatible socket too; the socket is found and \
trusted as for an attach, DOCKER_HOST included).

Labels are input from whoever may run a container (a CI job, a Portainer user, \
anyone the Docker socket or an authorization plugin lets start one), and watch \
acts on them as root. So a label may name only a host interface allowed with \
--allow HOSTIF (repeatable; the pipework-watch unit takes its options from \
PIPEWORK_WATCH_OPTS in /etc/default/pipework): a Linux bridge (made if absent, as \
an attach makes one), an ovs* bridge, or a physical parent for macvlan children. \
Without any --allow no label is plumbed: watch logs, for each labelled container, \
what it ignored and the --allow that would let it. Whatever is allowed, a label \
never gets --direct-phys, -l, --vlan-filtering, a host DHCP client (udhcpc, \
dhclient, dhcpcd, whose options name files, scripts and programs: labels use \
dhcp, the native client, and its options) or a mac: that is not an allowed \
interface's; such a label is refused and logged with why, and the container's \
other labels are served. A container that does not own its network namespace \
(NetworkMode host or container:...) gets no label plumbed. Records are written \
by the operator's own pipework commands and are trusted: they are re-applied \
whatever --allow says.

When a container starts, its recorded interfaces are made again with the names, \
MAC, address, gateway and VLAN they had, through the same plan, apply and \
rollback as an attach, then the pipework route and rule lines recorded for it; \
the record is updated. A container labelled pipework.CTR_IF=LINE gets CTR_IF as \
if pipework HOSTIF -i CTR_IF CONTAINER ... had been run, LINE being the rest of \
the command line after the guest; each such label makes one interface. LINE is \
split into words as a shell splits them, quoting only: single quotes, double \
quotes and backslashes group and escape, nothing is expanded ($, globs and ~ stay \
as written), so pipework.eth1=br0 'dhcp:-V acme -t 3' passes one option word; an \
unterminated quote makes the label malformed. An \
interface already there with the recorded MAC is left alone. A malformed label \
is logged with the container's name and the others are plumbed.

When a container is removed, what its interfaces left on the host is undone as \
detach undoes it, and its record is dropped. At its own start, and after each \
reconnection, watch catches up: every running container with a record or a label \
is reconciled, and records of containers that no longer exist are dropped: only \
those that name this engine (its ID, as docker info gives it: a record names the \
engine its container ran on), so that a watch on another DOCKER_HOST drops none. \
A record of an older pipework names no engine: it is never dropped for its \
container's absence (detach drops it), and names this engine from the first \
catch-up that finds its container. A host link is deleted only if it is still \
the one made (its index, kind, MAC and veth peer, as recorded).

A native DHCP interface keeps one agent while its container runs. An agent still \
running when watch starts (after a restart of the service, which leaves agents \
running: KillMode=process) is adopted; one that is gone is replaced, resuming its \
lease from its state. An agent that dies while watch runs (a crash, kill -9) is \
replaced at once, then after 1 s, doubling up to a minute, if it keeps dying; one \
that leaves on purpose (its container stops, detach) is not.

While a container runs, watch also makes again what the host loses under it, \
from the host's own link messages. A recorded bridge deleted and made again \
(ifdown br0; ifup br0, a network restart, a netplan apply) gets its ports back: \
deleting a bridge releases its ports without deleting them, and each host side \
a record names is put on the new bridge again (on its VLAN) and brought up; the \
FORWARD rules pipework added for the bridge are made again if they went; a new \
bridge whose MTU is not the one its ports were recorded with is named in the \
log. A host side deleted (or its veth peer, inside the container) is made again \
as at a start: the same names, MAC, addresses and gateway. Only what records \
name is made again (detach drops the record before it deletes), never what \
labels alone ask. A link lost again within 10 s of its last repair waits 1 s, \
then 2, 4, ... up to a minute, each wait logged. A recorded bridge port found \
released at a catch-up is put back too. --no-repair turns this off.

If the engine goes away, watch reconnects after 0.1 s, doubling up to 3 s. It logs \
what it did for each container at info level (-v adds each step), failures as \
warnings, and never exits because of one container. What it waits for has a \
deadline: a host DHCP client an attach's --timeout (default 10 s), then it is \
killed and that attach rolled back, so one container's silent DHCP server holds \
up neither the others nor the service; ip making a recorded route or rule again \
10 s, then it is killed and the line logged as not made again. SIGTERM or SIGINT stops it within a \
second: a DHCP client or lease it waits for is cut short (a client killed) and \
that attach rolled back whole, never left half-made. --only LABEL[=VALUE] \
limits it to containers carrying that label.

  docker run -d --net=none --label 'pipework.eth1=br0 10.5.106.101/24@10.5.106.1' IMAGE
  pipework watch --allow br0 --only com.example.plumb";

pub const RECORDS: &str = "\
Every attach records what it made (see FILES): the guest and how to find it \
again (a container by its ID, which survives restarts), the host network \
namespace it was plumbed from, and per interface its name, kind (veth, macvlan, \
moved, dummy, ipoib), host side, bridge or parent, MAC, MTU, addresses, gateway, \
VLAN and DHCP mode, the default route the gateway replaced, and a macvlan's \
mode and host-access shim. pipework route \
and rule lines that change something are added to the guest's record. The \
record is written once every step is applied; if it cannot be written, the \
attach is rolled back. Records are acted on only from the network namespace \
they were made in.

A run killed half-way (SIGKILL, the OOM killer, a stop past its timeout) \
cannot roll back: before its first change it writes an intent (see FILES) \
and adds each change's undo as it goes. The next run on the same guest, \
detach, mkbridge, loop ensure, CNI ADD, DEL and CHECK of that container, and \
every show, check and watch catch-up roll such a run back, newest change \
first, each only if what it made is still there as made, and say so on \
stderr (\"rolled back an interrupted run of pid PID (COMMAND): N changes \
undone\"). What cannot be undone is kept: show lists the run as \
interrupted, check prints each change left and exits 1, and the next of \
those commands tries again.

pipework show [GUEST] [--json] lists the recorded interfaces and whether each \
is live or stale (gone from the kernel). pipework check [GUEST] [--json] prints \
one line a difference between a record and the kernel (a missing interface or \
address, MAC, MTU, link down, default route, host side gone or on another \
master, a bridge port's VLAN, an Open vSwitch port, a DHCP agent not running, \
a CNI attachment's nf_tables rule, a macvlan's mode, a --host-access shim or \
host route) and exits 1 if there is any, or if a record \
cannot be read; --json gives {\"ok\", \"differences\": [{\"guest\", \"interface\", \
\"kind\", \"message\"}]}. pipework detach GUEST [-i CTR_IF] [--dry-run] undoes \
what the record says, as a plan with rollback: veths and children deleted, a \
--direct-phys interface given back to the host, the replaced default route put \
back, a DHCP agent stopped (it releases its lease), --host-access routes deleted \
(and the shim with its last guest); bridges, VLAN devices and \
parents are shared and stay. A link is deleted only if it is still the one \
made (its recorded index, kind, MAC and veth peer): one that took its name \
since is left alone, with a message. Without a record, detach deletes the \
guest's eth1 only if it is a veth paired with the host's v<CTR_IF>pl<PID>. A second detach does nothing and exits 0. CNI \
attachments are listed and checked, but only their runtime removes them (CNI \
DEL).";

pub const CNI_PLUGIN: &str = "\
With CNI_COMMAND set, pipework is a CNI plugin (specification 1.1.0: ADD, DEL, \
CHECK, STATUS, GC, VERSION; configurations of 0.3.0 to 1.1.0, results shaped \
for the version asked). Put it (or a link to it) in the runtime's CNI bin \
directory as pipework and write \"type\": \"pipework\" where a configuration \
had \"type\": \"bridge\": it reads the reference bridge plugin's configuration \
and makes what that plugin makes, a bridge (bridge, default cni0) made if \
absent and a veth veth<8 hex> on it whose container side is born in the \
container as CNI_IFNAME.

Configuration keys: bridge, isGateway, isDefaultGateway, forceAddress, mtu, \
hairpinMode, promiscMode, enabledad, dns, vlan, ipMasq, ipMasqBackend \
(nftables), macspoofchk, ipam, and the MAC from runtimeConfig.mac, args.cni.mac \
or CNI_ARGS MAC. Keys the reference ignores are ignored. Refused with code 2: \
vlan with isGateway, vlanTrunk, ipMasqBackend iptables, \
disableContainerInterface, portIsolation and preserveDefaultVlan false.

Addresses come from the IPAM plugin the configuration names, found in CNI_PATH, \
run with the CNI variables and a fixed PATH only, and only if root alone can \
change it and its directories; a call that has not answered and exited \
within 60 s is killed and fails with code 11. If the ADD fails after IPAM answered, IPAM DEL \
gives the address back and the links are rolled back. ipMasq and macspoofchk \
are nf_tables rules of pipework's own (tables inet pipework and bridge \
pipework), each tagged with its attachment. FORWARD is left to the chain's \
firewall plugin, as the reference bridge plugin leaves it.

Each ADD is recorded as cni-<container ID> (see FILES): pipework show and \
check list CNI attachments with their rules; detach refuses them. CHECK compares \
the kernel with the record and prevResult. DEL releases the address, removes \
the links and rules, drops the interface from the record, and succeeds again \
when they are gone. GC removes every attachment of the network not in \
cni.dev/valid-attachments. STATUS says whether the IPAM plugin is there, and \
asks it.

Every failure is a CNI error object on standard output (cniVersion, code, msg, \
details) and exit status 1. Codes: 1 incompatible version, 2 unsupported \
field, 3 no such network namespace, 4 bad environment, 5 I/O, 6 undecodable \
JSON, 7 invalid configuration, 11 try again later, 50 not available (STATUS), \
999 anything else.";

pub const COMPANION_WORDS: &str = "\
mkbridge, loop and watch, like route, rule and tc, are taken as words only when the host \
has no interface of that name; otherwise the line is an ordinary attach.";

pub const ROUTE_RULE_AND_TC: &str = "\
pipework route GUEST ARGS... and pipework rule GUEST ARGS... apply ip route or ip \
rule arguments inside the guest's network namespace. The forms operators use are \
done natively over netlink, with iproute2's defaults (proto boot, table main, \
scope link for an IPv4 route without a gateway): route add, del, replace, change, \
append and prepend with a prefix, an address or default, via, dev, src, metric, \
table, scope, proto, onlink and mtu; rule add and del with from, to, table or \
lookup, priority or pref, fwmark, iif, oif and not. A refusal reads as ip's \
(RTNETLINK answers: File exists, or the kernel's own Error: ... line) with ip's \
exit status 2.

Everything else (show, list, get, flush, and any keyword, abbreviation or name \
the native parser does not know) runs the real ip inside the namespace, forked \
and executed directly after joining the namespace, never through a shell; its \
output and exit status are pipework's. pipework tc GUEST ARGS... always runs tc \
that way.

  pipework route xcatmn add 10.20.0.0/16 via 10.5.106.254
  pipework route xcatmn show
  pipework rule xcatmn add from 10.5.106.101 table 100
  pipework tc xcatmn qdisc add dev eth1 root tbf rate 1mbit burst 32kbit latency 400ms";

pub const WAITING: &str = "\
pipework --wait [-i CTR_IF] [--timeout SECS], run inside a container, returns 0 as \
soon as CTR_IF (default eth1) exists. It listens to the kernel's link \
notifications instead of polling once a second as the original did. Without \
--timeout it waits forever, as the original; with it, it exits 1 when the time is up.";
