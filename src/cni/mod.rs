//! pipework as a CNI plugin (spec 1.1.0): when CNI_COMMAND is set, the
//! binary reads the runtime's environment and network configuration and
//! answers on stdout, with a result or a CNI error object.

pub mod config;
pub mod env;
pub mod error;
pub mod ipam;
pub mod result;
pub mod version;
