//! The manual's own sections, beside the options clap documents. The man
//! page (`man/pipework.8`) is rendered from `cli::command()` plus these;
//! `tests/man.rs` keeps the file current.
//!
//! Format: paragraphs separated by blank lines; lines indented by two
//! spaces are shown verbatim (commands, tables); a paragraph whose first
//! line is `= TAG` is a tagged item (its tag in bold, the rest indented
//! under it), as ENVIRONMENT and FILES list theirs.

pub const DESCRIPTION: &str = "\
pipework connects a container or a network namespace (the guest) to a network of \
the host. It is a drop-in replacement for the pipework shell script: the same \
command lines give the same interface names, addresses, routes, MTU, messages and \
exit status. It talks to the kernel over netlink and enters namespaces with \
setns(2); it runs no ip, brctl, arping, docker or shell of its own. It runs only \
what a command line names: tc for pipework tc, and ip for the route and rule \
forms its own parser does not cover.

Every run first checks everything it can (the arguments, the host interface, the \
guest, name clashes), then makes its changes one step at a time. If a step fails, \
the steps already made are undone, newest first, and the message names the step \
that failed and why. --dry-run prints those steps as the iproute2 commands they \
stand for and changes nothing.

Two companions make the runbook's other fragile steps safe: pipework mkbridge \
turns a host interface into a bridge port in one transaction, and pipework loop \
provides loop devices (see MKBRIDGE and LOOP DEVICES).";

pub const SECTIONS: &[(&str, &str)] = &[
    (
        "GUESTS",
        "\
GUEST names what to connect. In this order, pipework accepts:

  pid:PID          the network namespace of process PID
  netns:NAME       /var/run/netns/NAME, as made by ip netns add
  /PATH            a network namespace file (a bind mount or /proc/PID/ns/net)
  NAME             an LXC container: a cgroup directory NAME (or lxc.payload.NAME)
                   in the cgroup v1 devices hierarchy, then in the cgroup2 one
  NAME or ID       a Docker container, asked through the Engine API

The Engine API is reached at DOCKER_HOST (unix:// only), else \
/var/run/docker.sock, else Podman's /run/podman/podman.sock or \
$XDG_RUNTIME_DIR/podman/podman.sock. A container whose PID is 0 (not running) is \
asked for again three times, a second apart, as the original did.

The number in generated names (v<CTR_IF>pl<PID>) is the guest's PID; for netns: \
and path guests, which have none, it is the namespace's inode number less \
0xF0000000, a small number unique among live namespaces.",
    ),
    (
        "HOST INTERFACES",
        "\
If HOSTIF exists and is a Linux bridge, the guest gets a veth pair: the host side \
v<CTR_IF>pl<PID> (or -l LOCAL_IF) is enslaved to the bridge and brought up; the \
guest side is created directly inside the guest under its final name CTR_IF \
(default eth1). Both ends take the bridge's MTU.

If HOSTIF does not exist and its name starts with br, the bridge is created and \
brought up first. Runs that race to create the same bridge all use it; a run that \
fails removes a bridge it created only if no port is left on it.

If the host side already exists and is up, pipework prints \
'Link LOCAL_IF exists and is up' on standard output and exits 1. If it exists and \
is down, it is deleted and made again (only if it is a veth).

With @VLAN on a Linux bridge, the port is on that VLAN untagged (its PVID) and \
off the bridge's default VLAN, as the CNI bridge plugin does. A bridge pipework \
creates gets VLAN filtering; an existing bridge without it is refused unless \
--vlan-filtering is given (turning it on changes every port: 'ip link set BRIDGE \
type bridge vlan_filtering 1'), which turns it on as the run's first step, off \
again if the run fails, and is recorded (a replay asks again; detach leaves the \
bridge filtering; check names a recorded VLAN port whose bridge no longer \
filters, or whose PVID is no longer its VLAN, untagged). A kernel whose bridges cannot filter VLANs is named and nothing is \
left behind.

When the FORWARD hook sees bridged frames (br_netfilter: \
net.bridge.bridge-nf-call-iptables or -ip6tables, or the bridge's own \
nf_call_iptables) and a filter FORWARD chain \
drops them by policy (Docker sets DROP), an attach to a Linux bridge, and \
mkbridge, add one rule per bridge and family accepting the bridge's own \
traffic, 'iptables -I DOCKER-USER -i BRIDGE -o BRIDGE -j ACCEPT' (at the head \
of FORWARD where there is no DOCKER-USER), as iptables-nft writes it, or \
through iptables-legacy on an x_tables host. No policy nor other rule is \
changed. The rule is the bridge's: rolled back with the run, removed when \
the bridge's last recorded attachment is detached, shown by show, verified \
by check (kind firewall), made again by watch. --no-firewall adds nothing and \
prints the command that would.

If HOSTIF is a bridge of Open vSwitch's database (found over OVSDB at \
/var/run/openvswitch/db.sock, or $OVS_RUNDIR/db.sock, or $DB_SOCK; asked only \
for a name starting with ovs, a kernel datapath device or a tap device), or \
does not exist and starts with ovs (then it is created as 'ovs-vsctl add-br' \
would), the host side becomes its port, with tag=VLAN and the original's \
external-ids on its interface (pipework.interface, the host side's name; \
.bridge, .containerid, .containername, .nspid, .vlan), one transaction per \
change. Pipework ports whose interfaces are gone are removed on the next \
attach to the bridge, and by detach, which removes the guest's port too. A bridge ovs-vswitchd cannot give a datapath (the kernel \
datapath without the openvswitch module) or a port it cannot open is reported \
and removed again; no ovsdb-server is reported before anything changes. check \
asks OVSDB whether each recorded port is still on its bridge with its tag.

Any other existing HOSTIF is physical: the guest gets a macvlan child in bridge \
mode, ph<PID><CTR_IF> cut to 15 bytes, with HOSTIF's MTU, made on the host and \
moved into the guest under its final name in one request; HOSTIF is brought up. \
A name already taken on the host is refused before anything changes. With \
@VLAN, the child sits on <HOSTIF>.<VLAN> (made if absent, with HOSTIF's MTU; if \
present it must be a VLAN with that id). A kernel without 802.1Q support gives \
'kernel lacks 802.1Q VLAN support (module 8021q)' and nothing is changed. With \
--direct-phys, HOSTIF itself (or its VLAN device) moves into the guest as \
CTR_IF, keeping its MAC unless one is given; a failed run gives it back under its \
name, MAC and state. mac:HWADDR selects the host interface by its address (any case).

A HOSTIF that does not exist and starts with dummy gives the guest a dummy \
interface (du<PID><CTR_IF>). An IPoIB HOSTIF (link type 32) gets a child \
<HOSTIF>.<PID>, or <HOSTIF>.<PKEY>.<PID> where @PKEY is a hex partition key; \
CTR_IF defaults to ib0 and a MAC is refused. Kernels without these get a message \
naming the missing module.

An unknown HOSTIF \
that does not exist: 'I do not know how to setup interface HOSTIF.'",
    ),
    (
        "DHCP",
        "\
dhcp[:OPTS] runs a native DHCPv4 client on CTR_IF inside the guest, sending the \
guest's name as the host name (as the original's -x hostname:GUEST). OPTS are \
udhcpc options: -x NAME:VALUE or -x CODE:HEX, -V VENDOR, -r IP, -t N, -T SECS, \
-O OPT, -H NAME, -B, -C, -q (no renewal), -f, -n and -R; any other is refused by \
name. The lease gives the address with its prefix and broadcast, the MTU (option \
26), the default route by the gateway sequence below, and the classless static \
routes (option 121, which overrides option 3); DNS is left to the runtime. No \
lease within --timeout SECS (default 10): 'no DHCP offer on CTR_IF within 10 s', \
and nothing is left. Unless -q, pipework --dhcp-agent keeps the lease for the \
guest's life: it renews at T1, rebinds at T2, removes the address of a lost \
lease and asks again, releases it on SIGTERM and exits when the guest does. Its \
PID, lease and DNS servers are in $PIPEWORK_STATE_DIR/dhcp (default \
/var/lib/pipework). A lease is taken for at least 60 s, T1 and T2 outside \
T1 < T2 < lease are 1/2 and 7/8 of it, two exchanges with a server are at least \
10 s apart, a subnet mask that is no prefix refuses the lease ('refused the \
lease of IP from SERVER on CTR_IF: non-contiguous subnet mask MASK'), and the \
agent's log moves to .log.1 at 1 MiB.

udhcpc[-f][:OPTS], dhclient[-f][:OPTS] and dhcpcd run that program of the host \
inside the guest with the original's arguments and pidfiles \
(/var/run/udhcpc.GUEST.pid, /var/run/dhclient.GUEST.pid); without -f, dhclient \
is stopped once it has the lease. The client must have its lease within \
--timeout SECS (default 10): then it is killed, 'udhcpc did not finish within \
10 s: stopped', and nothing is left. It starts with no signal blocked or \
ignored. Unlike the original's, the client runs in a mount and UTS namespace of \
its own where $PIPEWORK_STATE_DIR/dhcp/<netns inode>-<CTR_IF>.resolv.conf is \
bound over /etc/resolv.conf: a script that writes /etc/resolv.conf writes the \
lease's DNS servers there, and the client cannot change the machine's host \
name. That is all the namespace covers: the client's script and its hooks run \
as root with the rest of the machine's files, services and /run as they are. \
Debian's dhclient exit hooks and dhcpcd's hooks give the server's NTP servers \
to the machine's timesyncd (or chrony) and restart it; udhcpc's and dhcpcd's \
scripts hand the DNS servers to resolvconf where it is installed, which \
rewrites the machine's resolv.conf. A \
guest whose DHCP server is not the machine's own belongs on the native client \
(dhcp), which runs no script. A missing one: 'You asked for DHCP client NAME, \
but I can't find it.' A client that fails: pipework exits with its status. A \
udhcpc lease exits 0 (the original exited 1).

The record of a DHCP interface holds the mode (dhcp or the host client), the \
agent's PID and its state file (or the host client's resolv.conf): show gives \
the mode, the address the lease holds and its DNS servers (--json: dhcp, lease, \
dns); check reports an agent that is not running; detach stops the agent with \
SIGTERM, which releases the lease, and removes its files.",
    ),
    (
        "ADDRESSES AND ROUTES",
        "\
IP is ADDRESS/LEN, optionally followed by @GATEWAY. The address is added (IPv4 \
with its broadcast address) and the link brought up. With a gateway, the first \
default route of that family is deleted; if the guest has no route to the \
gateway, a host route GATEWAY/32 (IPv6: /128) on CTR_IF is added; then the \
default route via GATEWAY on CTR_IF replaces any other. An IPv4 address is \
announced with one gratuitous ARP.

0/0 connects the interface and brings it up with no address. The family follows \
the address; -a 6 (or inet6) insists on IPv6, -a 4 (or inet) on IPv4.

MAC is aa:bb:cc:dd:ee:ff or U:TEXT, which gives 02: followed by the first five \
bytes of the MD5 of TEXT and a newline (U:myhost.foo.com is 02:72:6c:cd:9b:8d).",
    ),
    (
        "EXAMPLES",
        "\
The xCAT runbook: a container made with --net=none, plugged into br0 with its \
default route via the Docker host:

  pipework br0 xcatmn 10.5.106.101/24@10.5.106.1

A second interface eth2 with a stable MAC, a named host side, and IPv6:

  pipework br1 -i eth2 -l vethweb web 192.168.4.25/20@192.168.4.1 U:web.example.com
  pipework br0 -a 6 netns:blue 2001:db8::10/64@2001:db8::1

What would be done, without doing it:

  pipework --dry-run br0 pid:4242 0/0",
    ),
    (
        "MKBRIDGE",
        "\
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
  pipework mkbridge --dry-run --stp on --forward-delay 4 br0 eth0",
    ),
    (
        "LOOP DEVICES",
        "\
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
  pipework loop ensure --count 10 --container xcatmn",
    ),
    (
        "WATCH",
        "\
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
  pipework watch --allow br0 --only com.example.plumb",
    ),
    (
        "RECORDS",
        "\
Every attach records what it made (see FILES): the guest and how to find it \
again (a container by its ID, which survives restarts), the host network \
namespace it was plumbed from, and per interface its name, kind (veth, macvlan, \
moved, dummy, ipoib), host side, bridge or parent, MAC, MTU, addresses, gateway, \
VLAN and DHCP mode, and the default route the gateway replaced. pipework route \
and rule lines that change something are added to the guest's record. The \
record is written once every step is applied; if it cannot be written, the \
attach is rolled back. Records are acted on only from the network namespace \
they were made in.

pipework show [GUEST] [--json] lists the recorded interfaces and whether each \
is live or stale (gone from the kernel). pipework check [GUEST] [--json] prints \
one line a difference between a record and the kernel (a missing interface or \
address, MAC, MTU, link down, default route, host side gone or on another \
master, a bridge port's VLAN, an Open vSwitch port, a DHCP agent not running, \
a CNI attachment's nf_tables rule) and exits 1 if there is any, or if a record \
cannot be read; --json gives {\"ok\", \"differences\": [{\"guest\", \"interface\", \
\"kind\", \"message\"}]}. pipework detach GUEST [-i CTR_IF] [--dry-run] undoes \
what the record says, as a plan with rollback: veths and children deleted, a \
--direct-phys interface given back to the host, the replaced default route put \
back, a DHCP agent stopped (it releases its lease); bridges, VLAN devices and \
parents are shared and stay. A link is deleted only if it is still the one \
made (its recorded index, kind, MAC and veth peer): one that took its name \
since is left alone, with a message. Without a record, detach deletes the \
guest's eth1 only if it is a veth paired with the host's v<CTR_IF>pl<PID>. A second detach does nothing and exits 0. CNI \
attachments are listed and checked, but only their runtime removes them (CNI \
DEL).",
    ),
    (
        "CNI PLUGIN",
        "\
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
999 anything else.",
    ),
    (
        "COMPANION WORDS",
        "\
mkbridge, loop and watch, like route, rule and tc, are taken as words only when the host \
has no interface of that name; otherwise the line is an ordinary attach.",
    ),
    (
        "ROUTE, RULE AND TC",
        "\
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
  pipework tc xcatmn qdisc add dev eth1 root tbf rate 1mbit burst 32kbit latency 400ms",
    ),
    (
        "WAITING",
        "\
pipework --wait [-i CTR_IF] [--timeout SECS], run inside a container, returns 0 as \
soon as CTR_IF (default eth1) exists. It listens to the kernel's link \
notifications instead of polling once a second as the original did. Without \
--timeout it waits forever, as the original; with it, it exits 1 when the time is up.",
    ),
    (
        "EXIT STATUS",
        "\
0 on success. 1 for every refusal and failure, with one message on standard \
error; the usage text (no IP given) and 'Link ... exists and is up' go to \
standard output, as in the original. --help and --version exit 0.",
    ),
    (
        "FILES",
        "\
= /var/lib/pipework
The records' directory ($PIPEWORK_STATE_DIR overrides it), mode 0700. One JSON \
file a guest: docker-<container ID>.json (podman-<ID>.json for Podman's \
engine), netns-<name>.json, lxc-<name>.json, pid-<PID>.json, \
path-<path>.json, cni-<container ID>.json. Each carries a version. Writers \
take an flock on .lock there and replace a record by a temporary file, fsync \
and rename.

= /var/lib/pipework/dhcp/<netns inode>-<CTR_IF>
A native DHCP interface's state: its agent's PID and start time, the lease \
and its DNS servers. Beside it, .log is the agent's log and, for a host DHCP \
client, .resolv.conf is the file bound over its /etc/resolv.conf. The log \
moves to .log.1 at 1 MiB.

= /var/lib/pipework/bridges/<netns inode>-<BRIDGE>.json
The FORWARD rules pipework added for a bridge (see HOST INTERFACES), removed \
with the bridge's last recorded attachment.

= /var/lib/pipework/engines/
The Engine API's ID for each socket pipework reached (the socket's device \
and inode, and the ID /info gave through it), so that records name their \
engine without asking it at every attach.

= /etc/default/pipework
The pipework-watch unit's environment file: the options it passes to pipework \
watch.

= /usr/lib/systemd/system/pipework-watch.service
The unit (installed, not enabled) that runs pipework watch.

= /usr/lib/cni/pipework
The CNI plugin, a link to /usr/bin/pipework (Debian's CNI directory).",
    ),
    (
        "ENVIRONMENT",
        "\
= DOCKER_HOST
The Engine API socket, unix:///path/to/docker.sock (unix:// only). Without it: \
/var/run/docker.sock, then Podman's /run/podman/podman.sock, then \
$XDG_RUNTIME_DIR/podman/podman.sock.

= XDG_RUNTIME_DIR
Where a rootless Podman's socket is looked for, without DOCKER_HOST.

= DB_SOCK
ovsdb-server's socket (unix:PATH or PATH), as ovs-ctl names it.

= OVS_RUNDIR
Where ovsdb-server's db.sock is, without DB_SOCK (default /var/run/openvswitch).

= PIPEWORK_STATE_DIR
The records' directory (default /var/lib/pipework); see FILES.

= PIPEWORK_NO_FIREWALL
1 (or true) is pipework watch's --no-firewall.

= RUST_LOG
A tracing filter, overriding -v (e.g. RUST_LOG=pipework=debug). For the CNI \
plugin, set in the runtime's environment, it logs the steps to the plugin's \
standard error.

= CNI_COMMAND
When set, the binary is a CNI plugin (see CNI PLUGIN): ADD, DEL, CHECK, STATUS, \
GC or VERSION.

= CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH
The CNI call's container ID, network namespace path, interface name, extra \
arguments (MAC=... is honoured) and the directories searched for the IPAM \
plugin, as the CNI specification defines them.",
    ),
    (
        "DIFFERENCES FROM THE ORIGINAL",
        "\
These fix the original's bugs; command lines that worked still work the same way.

Nothing is left behind on failure: every change of the run is undone. The \
original stopped half-way and left interfaces behind. An interrupt (Ctrl-C, \
SIGTERM, SIGHUP) during the few milliseconds of changes takes effect once the \
run is whole.

No /var/run/netns/PID symlink is made. The original made one on every run, left \
it behind on failure, and two runs on one container deleted each other's.

Interface names longer than 15 bytes are refused before anything is changed.

IPv6 works: addresses are not passed through ipcalc (which failed on every IPv6 \
address where busybox was installed), and the host route to an unreachable IPv6 \
gateway is /128, not /32.

The guest side of the veth is born inside the guest under its final name; the \
temporary name v<CTR_IF>pg<PID> of the original never exists.

The gratuitous ARP is sent natively and takes no time (the original's arping \
waited a second); it is sent only for an address really configured, and no \
'arping not found' warning is ever printed.

The host side of a veth is a bridge port and gets no IPv6 of its own \
(disable_ipv6=1, as LXD does): no link-local address, no DAD, router \
solicitations or MLD from it flooding every port of the bridge.

LXC containers are found on cgroup2 hosts too. Options may come in any order. \
A stale host-side link is deleted only if it is a veth. A guest that shares \
the host's own network namespace (a --net=host container) is refused; the \
original gave the host itself an eth1 and a new default route.

@VLAN on a Linux bridge works (the original refused it). Open vSwitch is \
spoken to over OVSDB, not through ovs-vsctl; an OVS port record left by a \
container that is gone is collected, where the original kept it forever, and a \
bridge that gets no datapath is removed instead of left broken. The port, its \
interface and tag are those of the original's 'ovs-vsctl add-port BRIDGE \
LOCAL_IF tag=VLAN'; the external-ids are set on the interface in the same \
transaction, so no port is ever seen without them. Where a port of that name \
was on the bridge already, the original skipped add-port and kept its old tag; \
pipework replaces the record, so the port has the VLAN asked for.",
    ),
    ("SEE ALSO", "ip(8), ip-link(8), ip-route(8), bridge(8), ovs-vsctl(8), docker(1), lxc(7)"),
];
