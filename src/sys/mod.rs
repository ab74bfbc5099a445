//! System access: netlink, namespaces, sysctls.

pub mod netlink;
pub mod netns;
pub mod sysctl;
