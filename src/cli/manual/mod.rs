//! The manual's own sections, beside the options clap documents. The man
//! page (`man/pipework.8`) is rendered from `cli::command()` plus these;
//! `tests/man.rs` keeps the file current. The sections' text is in
//! `attach`, `companions` and `reference`, in the order the page shows them.
//!
//! Format: paragraphs separated by blank lines; lines indented by two
//! spaces are shown verbatim (commands, tables); a paragraph whose first
//! line is `= TAG` is a tagged item (its tag in bold, the rest indented
//! under it), as ENVIRONMENT and FILES list theirs.

mod attach;
mod companions;
mod reference;

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
    ("GUESTS", attach::GUESTS),
    ("HOST INTERFACES", attach::HOST_INTERFACES),
    ("DHCP", attach::DHCP),
    ("ADDRESSES AND ROUTES", attach::ADDRESSES_AND_ROUTES),
    ("EXAMPLES", attach::EXAMPLES),
    ("MKBRIDGE", companions::MKBRIDGE),
    ("LOOP DEVICES", companions::LOOP_DEVICES),
    ("WATCH", companions::WATCH),
    ("RECORDS", companions::RECORDS),
    ("CNI PLUGIN", companions::CNI_PLUGIN),
    ("COMPANION WORDS", companions::COMPANION_WORDS),
    ("ROUTE, RULE AND TC", companions::ROUTE_RULE_AND_TC),
    ("WAITING", companions::WAITING),
    ("EXIT STATUS", reference::EXIT_STATUS),
    ("FILES", reference::FILES),
    ("ENVIRONMENT", reference::ENVIRONMENT),
    ("DIFFERENCES FROM THE ORIGINAL", reference::DIFFERENCES_FROM_THE_ORIGINAL),
    ("SEE ALSO", "ip(8), ip-link(8), ip-route(8), bridge(8), ovs-vsctl(8), docker(1), lxc(7)"),
];
