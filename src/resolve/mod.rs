//! Resolving what a request names: the host interface (what it is decides
//! the driver) and the guest (its network namespace, held open).

pub mod docker;
pub mod guest;
pub mod host;
