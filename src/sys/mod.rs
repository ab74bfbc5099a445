//! System access: netlink, nf_tables, namespaces, sysctls, a guest's process,
//! running a named program in a namespace, stdout, device nodes made in a
//! directory held open (`devdir`), and Open vSwitch's
//! database (`ovsdb`, the protocol; `vswitch`, its bridges and ports).

pub mod devdir;
pub mod exec;
pub mod firewall;
pub mod guest_root;
pub mod loop_control;
pub mod netlink;
pub mod netns;
pub mod nftables;
pub mod output;
pub mod ovsdb;
pub mod process;
pub mod shutdown;
pub mod sysctl;
pub mod vswitch;
