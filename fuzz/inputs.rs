//! How fuzz inputs become calls, shared by the cargo-fuzz targets and by
//! the corpus replay that `cargo test` runs (tests/it/fuzz_corpus.rs).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Names a fuzzed host may have: route, rule, tc, loop and mkbridge are
/// words only when no interface has the name.
const HOST_NAMES: [&str; 6] = ["route", "rule", "tc0", "loop", "mkbridge", "br0"];

/// The command line: the first byte says which of HOST_NAMES the host has
/// (one bit each); the rest is argv after `pipework`, NUL-separated, bytes
/// as they come (not necessarily UTF-8).
pub fn cli(data: &[u8]) {
    let Some((&has, rest)) = data.split_first() else { return };
    let mut argv = vec![OsString::from("pipework")];
    if !rest.is_empty() {
        argv.extend(rest.split(|b| *b == 0).map(|a| OsString::from_vec(a.to_vec())));
    }
    let host_has = |name: &str| HOST_NAMES.iter().enumerate().any(|(i, n)| *n == name && has & (1 << i) != 0);
    let _ = pipework::cli::parse(argv, host_has);
}

/// `ip route` / `ip rule` arguments, whitespace-separated (lossy UTF-8);
/// what parses is also turned into its netlink message.
pub fn route_rule(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let args: Vec<String> = text.split_ascii_whitespace().map(String::from).collect();
    if let Some(cmd) = pipework::iproute2::parse_route(&args) {
        let _ = cmd.message(Some(1));
        let _ = cmd.op.flags();
    }
    if let Some(cmd) = pipework::iproute2::parse_rule(&args) {
        let _ = cmd.message();
        let _ = cmd.flags();
    }
}
