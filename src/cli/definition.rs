//! The clap definition: the attach grammar (`Cli`), the companions
//! (`Companion`) and their arguments, the original's usage text. It parses,
//! prints `--help`, and renders the man page and the completions.

use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};

use crate::request::Tool;

/// The original's usage text, word for word (stdout, exit 1).
pub const SYNTAX: &str = "\
Syntax:
pipework <hostinterface> [-i containerinterface] [-l localinterfacename] [-a addressfamily] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr][@vlan]
pipework <hostinterface> [-i containerinterface] [-l localinterfacename] <guest> dhcp [macaddr][@vlan]
pipework route <guest> <route_command>
pipework rule <guest> <rule_command>
pipework tc <guest> <tc_command>
pipework --wait [-i containerinterface]";

const USAGE: &str = "\
pipework <HOSTIF> [-i CTR_IF] [-l LOCAL_IF] [-a FAMILY] <GUEST> <IP>/<LEN>[@GW] [MAC][@VLAN]
       pipework <HOSTIF> [-i CTR_IF] [-l LOCAL_IF] <GUEST> dhcp|udhcpc|dhclient|dhcpcd[:OPTS] [MAC][@VLAN]
       pipework mac:<HWADDR> ... | pipework --direct-phys <HOSTIF> ...
       pipework route|rule|tc <GUEST> <ARGS>...
       pipework --wait [-i CTR_IF] [--timeout SECS]
       pipework mkbridge [--stp on|off] [--forward-delay SECS] [--dry-run] <BRIDGE> <IFACE>
       pipework loop free [--dev DIR] | pipework loop ensure [--count N] [--dev DIR | --container GUEST]
       pipework show|check [GUEST] [--json] | pipework detach [--dry-run] <GUEST> [-i CTR_IF]
       pipework watch [--only LABEL[=VALUE]]... [--allow HOSTIF]...";

const GUESTS: &str = "\
GUEST is a Docker (or Podman) container name or ID, an LXC container name,
pid:<PID>, netns:<NAME> (a name under /var/run/netns) or the absolute path
of a network namespace file.

HOSTIF decides how the guest is connected: an existing Linux bridge, or a
name starting with 'br' (the bridge is created), gets a veth pair whose host
side is v<CTR_IF>pl<PID>; a physical interface gets a macvlan child; 'mac:'
selects the host interface by its hardware address.

MAC is aa:bb:cc:dd:ee:ff or U:<text>, which derives a stable address from
<text>. VLAN is 1-4094.

Every change is made over netlink and undone if a later step fails; nothing
is left in /var/run/netns. --dry-run prints the plan as iproute2 commands.

Examples:
  pipework br0 xcatmn 10.5.106.101/24@10.5.106.1
  pipework br1 -i eth2 web 192.168.4.25/20@192.168.4.1 U:web.example.com
  pipework br0 -a 6 netns:blue 2001:db8::10/64@2001:db8::1
  pipework --dry-run br0 pid:4242 0/0";

#[derive(Parser, Debug)]
#[command(
    name = "pipework",
    version,
    about = "Connect containers and network namespaces to host networks",
    override_usage = USAGE,
    after_help = GUESTS,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Interface name inside the guest [default: eth1, ib0 on IPoIB]
    #[arg(short = 'i', value_name = "CTR_IF")]
    pub container_if: Option<String>,

    /// Host-side name of the veth pair [default: v<CTR_IF>pl<PID>]
    #[arg(short = 'l', value_name = "LOCAL_IF")]
    pub local_if: Option<String>,

    /// Address family: 4, 6, inet or inet6 [default: from the address]
    #[arg(short = 'a', value_name = "FAMILY")]
    pub family: Option<String>,

    /// Move the host interface itself into the guest
    #[arg(long)]
    pub direct_phys: bool,

    /// Inside a container: wait until CTR_IF exists, then exit 0
    #[arg(long)]
    pub wait: bool,

    /// With --wait or DHCP: give up after SECS seconds, exit 1 [DHCP default: 10]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,

    /// With @VLAN on an existing Linux bridge: turn its VLAN filtering on
    /// (this changes every port; undone if the run fails)
    #[arg(long)]
    pub vlan_filtering: bool,

    /// Leave the firewall alone: no rule accepting a Linux bridge's own
    /// traffic where the FORWARD hook would drop it
    #[arg(long)]
    pub no_firewall: bool,

    /// On a physical HOSTIF: the macvlan's mode [default: bridge]
    #[arg(long, value_name = "MODE", value_parser = crate::request::MacvlanMode::WORDS)]
    pub macvlan_mode: Option<String>,

    /// On a physical HOSTIF: let the host reach the guest, by a macvlan of
    /// its own on HOSTIF (pwh-<HOSTIF>) and a host route to the address
    #[arg(long)]
    pub host_access: bool,

    /// With dhcp: write the lease's DNS servers and domain into the
    /// guest's /etc/resolv.conf, kept current at renewals
    #[arg(long)]
    pub resolv_conf: bool,

    /// Print the plan as iproute2 commands and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Log each step (-vv for netlink detail); RUST_LOG works too
    #[arg(short = 'v', long, action = ArgAction::Count)]
    pub verbose: u8,

    /// Host interface: a bridge, a physical interface or mac:<HWADDR>
    #[arg(value_name = "HOSTIF")]
    pub host_if: Option<String>,

    /// The container or namespace to connect
    #[arg(value_name = "GUEST")]
    pub guest: Option<String>,

    /// <IP>/<LEN>[@GW], 0/0 for no address, or a DHCP client word
    #[arg(value_name = "IP")]
    pub ip: Option<String>,

    /// [MAC][@VLAN]
    #[arg(value_name = "MAC@VLAN")]
    pub mac_vlan: Option<String>,
}

/// The companions. Their words are subcommands only when no host interface
/// has that name, so they are parsed apart from the attach grammar.
#[derive(Parser, Debug)]
#[command(name = "pipework", version)]
pub struct CompanionCli {
    /// Log each step (-vv for netlink detail); RUST_LOG works too
    #[arg(short = 'v', long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub companion: Companion,
}

#[derive(Subcommand, Debug)]
pub enum Companion {
    /// Make BRIDGE the host's interface in IFACE's place, in one safe step
    Mkbridge(MkbridgeArgs),
    /// Loop devices: find a free one, or make sure their nodes exist
    Loop {
        #[command(subcommand)]
        command: LoopCommand,
    },
    /// Print the shell completion script for SHELL
    Completions {
        /// bash, zsh, fish, elvish or powershell
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// List recorded attachments, one line an interface: live, or stale when the kernel lost it
    Show(RecordsArgs),
    /// Compare the kernel with the records; exit 1 naming each difference
    Check(RecordsArgs),
    /// Undo an attachment: the guest's interface, its host side, its record
    Detach(DetachArgs),
    /// Keep containers plumbed: re-apply their records at every start, plumb
    /// their pipework.<CTR_IF> labels, collect what a removed one leaves
    Watch(WatchArgs),
}

#[derive(Args, Debug)]
pub struct RecordsArgs {
    /// Only this guest's records (any GUEST form, or the container ID)
    #[arg(value_name = "GUEST")]
    pub guest: Option<String>,

    /// JSON for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DetachArgs {
    /// The guest (any GUEST form)
    #[arg(value_name = "GUEST")]
    pub guest: String,

    /// Only this interface of the guest [default: all recorded, eth1 without a record]
    #[arg(short = 'i', value_name = "CTR_IF")]
    pub container_if: Option<String>,

    /// Print the plan as iproute2 commands and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Only containers carrying this label (with this value): as docker ps --filter label=...
    #[arg(long, value_name = "LABEL[=VALUE]")]
    pub only: Vec<String>,

    /// A host interface labels may plumb into: a bridge (made if absent), an
    /// ovs* bridge or a macvlan parent; without any, labels are ignored
    #[arg(long, value_name = "HOSTIF")]
    pub allow: Vec<String>,

    /// Leave the firewall alone in the attachments it makes (as attach's --no-firewall)
    #[arg(long, env = "PIPEWORK_NO_FIREWALL", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_firewall: bool,

    /// Do not make again what the host loses under a running container (a
    /// bridge's ports when it comes back, a deleted host side)
    #[arg(long)]
    pub no_repair: bool,
}

#[derive(Args, Debug)]
pub struct MkbridgeArgs {
    /// The bridge: created if absent
    #[arg(value_name = "BRIDGE")]
    pub bridge: String,

    /// The interface that becomes its port; its addresses and routes move to BRIDGE
    #[arg(value_name = "IFACE")]
    pub iface: String,

    /// Spanning tree on the bridge
    #[arg(long, value_name = "on|off", default_value = "off", value_parser = ["on", "off"])]
    pub stp: String,

    /// Forward delay of the bridge, in seconds [default: 0, the kernel's with --stp on]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(0..=30))]
    pub forward_delay: Option<u32>,

    /// Leave the firewall alone: no rule accepting the bridge's own
    /// traffic where the FORWARD hook would drop it
    #[arg(long)]
    pub no_firewall: bool,

    /// Print the plan as iproute2 commands and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub enum LoopCommand {
    /// Print the first free loop device as losetup -f does, making its node if missing
    Free {
        /// The device directory
        #[arg(long, value_name = "DIR", default_value = "/dev")]
        dev: PathBuf,
    },
    /// Make sure loop0 to loop<N-1> exist as block nodes 7:i, mode 0660, group disk
    Ensure {
        /// How many loop devices
        #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
        count: u32,

        /// The device directory (a chroot's or an image's /dev)
        #[arg(long, value_name = "DIR", default_value = "/dev")]
        dev: PathBuf,

        /// Make them in this container's /dev instead (any GUEST form)
        #[arg(long, value_name = "GUEST", conflicts_with = "dev")]
        container: Option<String>,
    },
}

/// The passthrough words, matched on their prefix as the original does
/// (`routes` and `tc0` are words too).
pub const TOOLS: [(&str, Tool); 3] = [("route", Tool::Route), ("rule", Tool::Rule), ("tc", Tool::Tc)];

/// The whole command line, companions included: for `--help` and the man page.
pub fn command() -> clap::Command {
    Companion::augment_subcommands(Cli::command())
}
