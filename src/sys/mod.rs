//! System access: netlink, namespaces, sysctls, running a named program
//! in a namespace.

pub mod exec;
pub mod netlink;
pub mod netns;
pub mod process;
pub mod sysctl;
