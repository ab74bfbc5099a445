//! The integration tests: one binary, a module per area, run as root.
//!
//! `cargo test --features failpoints --test it watch::` runs one area,
//! `... --test it watch::name_of_a_test` one test; a filter matches
//! anywhere in the name (`bridge::` selects `mkbridge::` too: docs/testing.md).
//! The harness they share, tests/common, is also the benches'.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod bridge;
mod bridge_vlan;
mod cni;
mod cni_nftables;
mod cni_records;
mod cni_vlan;
mod compat;
mod crash;
mod cri;
mod dhcp;
mod dhcp_hostile;
mod dual_stack;
mod firewall;
mod fuzz_corpus;
mod guest;
mod infra;
mod loopdev;
mod man;
mod mkbridge;
mod no_panic;
mod ovs;
mod ovsdb;
mod package;
mod passthrough;
mod physical;
mod records;
mod rollback;
mod wait;
mod watch;
mod watch_dhcp;
mod watch_labels;
