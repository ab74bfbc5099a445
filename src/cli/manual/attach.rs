//! What an attach takes and makes: its guests, host interfaces, DHCP,
//! addresses and routes, and examples.

pub const GUESTS: &str = "\
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
0xF0000000, a small number unique among live namespaces.";

pub const HOST_INTERFACES: &str = "\
If HOSTIF exists and is a Linux bridge, the guest gets a veth pair: the host side \
v<CTR_IF>pl<PID> (or -l LOCAL_IF) is enslaved to the bridge and brought up; the \
guest side is created directly inside the guest under its final name CTR_IF \
(default eth1). Both ends take the bridge's MTU.

If HOSTIF does not exist and its name starts with br, the bridge is created and \
brought up first. Runs that race to create the same bridge all use it; a run that \
fails removes a bridge it created only if no port is left on it.

If the host side already exists and is up, pipework prints \
'Link LOCAL_IF exists and is up' on standard output and exits 1, unless the \
command line names an interface pipework made from this HOSTIF: then it adds \
the address (see ADDRESSES AND ROUTES). If it exists and \
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

--macvlan-mode bridge|vepa|private|passthru makes the macvlan child in that \
mode (bridge by default, as the original): bridge lets the children of one \
parent talk to each other directly, vepa sends every frame out to the switch \
(which must hairpin it back), private keeps them apart, passthru lets one child \
take the parent over. The mode is recorded, checked (check reads the guest \
link's mode back) and made again by watch. It is refused, changing nothing, \
where no macvlan is made (a bridge, --direct-phys).

--host-access lets the host reach the guest, which a macvlan's parent never \
does by itself: the host gets a macvlan of its own on the same parent (on the \
VLAN device with @VLAN), pwh-<PARENT> (pwh- and 11 hex digits of the name's MD5 \
where that passes 15 bytes), bridge mode, up, holding no address (the host's \
addresses stay where they are), made by the first attach that needs it and \
shared by the others; and a host route to the guest's address through it \
(ip route add ADDR/32 dev pwh-<PARENT>, /128 for IPv6). The guest reaches \
the host's addresses through it as long as the host answers ARP on any of its \
links (net.ipv4.conf.*.arp_ignore 0, the default). Over IPv6 it cannot: \
neighbour discovery answers only for a link's own addresses, so the guest's \
replies to the host's addresses are lost; from the shim's link-local address \
(ip -6 route replace ADDR/128 dev pwh-<PARENT> src <its fe80:: address>) the \
host reaches the guest. The routes go with their guest (detach, watch's removal), the \
shim with the last recorded guest using it; check names a missing shim or \
route. Only bridge-mode siblings talk to each other, so --host-access is \
refused with another --macvlan-mode; it is refused too without a static \
address (the route goes to it) and where no macvlan is made, changing nothing.

A HOSTIF that does not exist and starts with dummy gives the guest a dummy \
interface (du<PID><CTR_IF>). An IPoIB HOSTIF (link type 32) gets a child \
<HOSTIF>.<PID>, or <HOSTIF>.<PKEY>.<PID> where @PKEY is a hex partition key; \
CTR_IF defaults to ib0 and a MAC is refused. Kernels without these get a message \
naming the missing module.

An unknown HOSTIF \
that does not exist: 'I do not know how to setup interface HOSTIF.'";

pub const DHCP: &str = "\
dhcp[:OPTS] runs a native DHCPv4 client on CTR_IF inside the guest, sending the \
guest's name as the host name (as the original's -x hostname:GUEST). OPTS are \
udhcpc options: -x NAME:VALUE or -x CODE:HEX, -V VENDOR, -r IP, -t N, -T SECS, \
-O OPT, -H NAME, -B, -C, -q (no renewal), -f, -n and -R; any other is refused by \
name. The lease gives the address with its prefix and broadcast, the MTU (option \
26), the default route by the gateway sequence below, and the classless static \
routes (option 121, which overrides option 3); DNS is left to the runtime \
unless --resolv-conf (below). No \
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

--resolv-conf (with dhcp) writes the lease's DNS servers (option 6: the first \
three IPv4 unicast addresses) and domain (option 15, as a search line, if it \
is letters, digits and inner hyphens in labels of at most 63 bytes, 253 in \
all) into the guest's /etc/resolv.conf, and nothing else of the lease; the \
agent writes it again when a renewed or new lease's servers or domain \
differ. A lease that names no server leaves the file as it is. The file is \
rewritten in place (Docker's is a bind mount, which a new file would not \
reach), reached inside the guest's own tree (/proc/PID/root, openat2 \
RESOLVE_IN_ROOT: a symbolic link leads nowhere outside the guest), and must \
be a regular file of at most 64 KiB: a symbolic link there, or anything \
else, is refused ('/proc/PID/root/etc/resolv.conf is a symbolic link, not a \
regular file; leaving it alone') before anything changes. Its content as it \
was is kept in $PIPEWORK_STATE_DIR/dhcp/<netns inode>-<CTR_IF>.resolv.saved \
(0600) and put back by detach (and by a rollback). Refused, before anything \
changes: with a static address or 0/0 ('--resolv-conf applies to a DHCP \
address (dhcp[:OPTS])'); with a host client, whose script writes a \
resolv.conf of its own for the guest ('--resolv-conf works with the native \
DHCP client (dhcp), not udhcpc'); with a guest whose files are the host's, \
a netns: or path guest or a process in the host's mount namespace or root \
directory, such as one that ip netns exec started ('--resolv-conf needs a \
guest with a root directory of its own (a container); GUEST has the host's'); \
with a guest whose /etc/resolv.conf is the host's file (a bind mount).

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
SIGTERM, which releases the lease, and removes its files (with --resolv-conf, \
after putting the guest's resolv.conf back as it was).";

pub const ADDRESSES_AND_ROUTES: &str = "\
IP is ADDRESS/LEN, optionally followed by @GATEWAY. The address is added (IPv4 \
with its broadcast address) and the link brought up. With a gateway, the first \
default route of that family is deleted; if the guest has no route to the \
gateway, a host route GATEWAY/32 (IPv6: /128) on CTR_IF is added; then the \
default route via GATEWAY on CTR_IF replaces any other. An IPv4 address is \
announced with one gratuitous ARP.

More than one address (dual stack, a second IPv4): a command line naming a \
CTR_IF that pipework made in this guest, from the same HOSTIF (and VLAN, \
--direct-phys, -l and MAC where given), adds its address to it, and with \
@GATEWAY that family's gateway and default route, as above; nothing else is \
made or changed, and a failure takes back the added address alone. The same \
address again does nothing and exits 0. Each family has one gateway: another \
is refused, as are the same address with another length, DHCP, and an address \
for an interface DHCP configures. Any other HOSTIF for that CTR_IF, or an \
interface pipework did not make, is refused as before. The record keeps every \
address and each family's gateway: show lists them, check verifies each, watch \
makes them all again after a restart, and detach removes the interface whole, \
putting back each default route a gateway replaced.

0/0 connects the interface and brings it up with no address. The family follows \
the address; -a 6 (or inet6) insists on IPv6, -a 4 (or inet) on IPv4.

MAC is aa:bb:cc:dd:ee:ff or U:TEXT, which gives 02: followed by the first five \
bytes of the MD5 of TEXT and a newline (U:myhost.foo.com is 02:72:6c:cd:9b:8d).";

pub const EXAMPLES: &str = "\
The xCAT runbook: a container made with --net=none, plugged into br0 with its \
default route via the Docker host:

  pipework br0 xcatmn 10.5.106.101/24@10.5.106.1

A second interface eth2 with a stable MAC, a named host side, and IPv6:

  pipework br1 -i eth2 -l vethweb web 192.168.4.25/20@192.168.4.1 U:web.example.com
  pipework br0 -a 6 netns:blue 2001:db8::10/64@2001:db8::1

Both families on one interface, one command line each:

  pipework br0 -i eth1 web 10.0.0.2/24@10.0.0.1
  pipework br0 -i eth1 web 2001:db8::2/64@2001:db8::1

A macvlan child on eth0 that the host itself can reach:

  pipework --host-access eth0 web 192.168.1.50/24@192.168.1.1

What would be done, without doing it:

  pipework --dry-run br0 pid:4242 0/0";
