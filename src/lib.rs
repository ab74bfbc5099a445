//! pipework: connect containers and network namespaces to host networks,
//! natively over netlink. A run goes parse (`cli`, `request`) → resolve
//! (`resolve`) → plan (`drivers`, into a `plan`) → apply (`apply`), which
//! rolls back on the first failure; `attach` strings these together for
//! one interface. `commands` holds one entry point per subcommand, `watch`
//! the service, `sys` the kernel access, `iproute2` the route/rule grammar,
//! `dhcp` the DHCP client and its agent. Imports run downward: commands,
//! watch → attach → drivers, plan, apply → dhcp → sys. `cni` is the CNI
//! plugin the binary becomes when CNI_COMMAND is set; it sits beside
//! `commands`.

pub mod apply;
pub mod attach;
pub mod cli;
pub mod cni;
pub mod commands;
pub mod dhcp;
pub mod drivers;
pub mod error;
pub mod family;
pub mod intents;
pub mod iproute2;
pub mod loopdev;
pub mod mac;
pub mod plan;
pub mod records;
pub mod request;
pub mod resolve;
pub mod sys;
pub mod watch;
