//! The reference sections: exit status, files, environment, and what
//! differs from the original.

pub const EXIT_STATUS: &str = "\
0 on success. 1 for every refusal and failure, with one message on standard \
error; the usage text (no IP given) and 'Link ... exists and is up' go to \
standard output, as in the original. --help and --version exit 0.";

pub const FILES: &str = "\
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
client, .resolv.conf is the file bound over its /etc/resolv.conf; with \
--resolv-conf, .resolv.saved is the guest's resolv.conf as it was. The log \
moves to .log.1 at 1 MiB.

= /var/lib/pipework/bridges/<netns inode>-<BRIDGE>.json
The FORWARD rules pipework added for a bridge (see HOST INTERFACES), removed \
with the bridge's last recorded attachment.

= /var/lib/pipework/intents/<n>
A run's intent (see RECORDS), one slot a run alive, locked with flock for \
its life: the run's PID and start time, its command, the host namespace and \
guest, then each step and its undo. Freed when the run ends; a slot whose \
lock is free but still open is a run killed half-way.

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
The CNI plugin, a link to /usr/bin/pipework (Debian's CNI directory).";

pub const ENVIRONMENT: &str = "\
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
plugin, as the CNI specification defines them.";

pub const DIFFERENCES_FROM_THE_ORIGINAL: &str = "\
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
pipework replaces the record, so the port has the VLAN asked for.";
