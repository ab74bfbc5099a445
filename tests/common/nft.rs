//! nftables as `nft -j` lists it: the oracle of the CNI plugin's rules and
//! of what iptables-nft writes.

use serde_json::Value;

use super::readback::Ns;

/// The `kind` objects ("rule", "table"...) that `nft -j <args>` lists in `ns`.
#[track_caller]
pub fn nft_listed(ns: &dyn Ns, args: &[&str], kind: &str) -> Vec<Value> {
    let mut argv = vec!["nft", "-j"];
    argv.extend_from_slice(args);
    let all: Value = serde_json::from_str(&ns.must(&argv)).expect("nft -j is JSON");
    let items = all["nftables"].as_array().expect("nftables").iter();
    items.filter_map(|item| item.get(kind)).cloned().collect()
}
