//! System access: netlink, namespaces, sysctls, a guest's process,
//! running a named program in a namespace, and stdout.

pub mod exec;
pub mod loop_control;
pub mod netlink;
pub mod netns;
pub mod output;
pub mod process;
pub mod sysctl;
