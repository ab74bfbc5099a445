//! The drivers: how a guest is connected, one module per kind of host
//! interface.

pub mod bridge;
pub mod macvlan;
