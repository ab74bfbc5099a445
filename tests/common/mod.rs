//! Harness shared by the integration tests.
//!
//! Every test gets its own network namespace standing in for the Docker host,
//! so tests run in parallel and never touch the machine's own interfaces.
//! The pipework binary only ever runs inside such a namespace. What it did is
//! read back through `ip -j`, /proc and `docker inspect`: the tests never use
//! the project's own code as their oracle.
//!
//! Every namespace, container, temp dir and cgroup made here is named
//! `pwt<pid>x<n>-<prefix>` and removed on drop (also when the test panics);
//! the daemons a fixture starts (dnsmasq, an OVS instance) keep their pid
//! files in its temp dir and are killed with it. Leftovers of a killed run
//! are swept the first time a test process makes one.

mod assertions;
mod cgroups;
mod cli;
mod cni;
mod commands;
mod containers;
mod cri;
mod cri_api;
mod daemons;
mod dhcp;
mod docker_host;
mod hostile_dhcp;
mod loops;
mod names;
mod netns;
mod nft;
mod ovs;
mod podman;
mod readback;
mod snapshot;
mod sweep;
mod tempdir;
mod watch;

pub use assertions::{assert_connected, assert_default_via, assert_macvlan_on};
pub use cgroups::{Cgroup, Hierarchy, LXC_PARENTS, LXC_PAYLOAD};
#[cfg(feature = "failpoints")] // the killed runs of tests/it/crash.rs
pub use cli::pipework_child;
pub use cli::{
    assert_every_step_rolls_back, assert_one_line_naming, assert_refused, path_with, pipework, pipework_env,
    pipework_in, pipework_keeping_mounts, pipework_with_path, planned_link, planned_steps, with_guest,
    PIPEWORK, STATE_DIR_ENV,
};
pub use cni::{assert_plugin_ok, cni_error, testnet_conf, with_keys, Attach, CniNode};
pub use commands::{assert_success, quiet, run, stderr, stdout, which};
#[allow(unused_imports)] // the benches' (tests/bench/fixtures.rs)
pub use containers::docker_run;
pub use containers::{host_side, Container, DOCKER_IPV6, IMAGE};
pub use cri::{Cri, Pod};
pub use cri_api::PortMapping;
pub use daemons::wait_for;
pub use dhcp::{DhcpConfig, DhcpServer};
pub use docker_host::{has_br_netfilter, DockerHost};
pub use hostile_dhcp::{Hostile, HOSTILE_OFFER, HOSTILE_SERVER};
pub use loops::{disk_gid, loop_index, loop_nodes, node_info, KernelLoops, NodeInfo};
#[cfg(feature = "failpoints")] // loopdev's failure injection alone
pub use loops::{kernel_loops, listing};
pub use names::{owned_name, unique};
pub use netns::{add_eth1, Netns};
pub use nft::nft_listed;
pub use ovs::{Ovs, OvsBridge, OvsPort};
pub use podman::{Podman, CNI_PLUGINS};
pub use readback::{all_routes, link_detail, link_info_data, port_vlans, Addr, Family, Ns};
pub use snapshot::{assert_unchanged, made_routes, made_routes_to, rules, settled_snapshot};
pub use tempdir::TempDir;
pub use watch::{
    container_id, record_file, restart_container, wait_eth1, watched_container, Watcher, SCOPE, SETTLE,
};
