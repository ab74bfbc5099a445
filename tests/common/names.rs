//! Names of what the harness makes: unique across parallel tests and test
//! processes, and parseable back, so leftovers of a killed run can be told
//! from what a live process owns.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Marks the namespaces, containers, bridges and processes this harness owns.
pub(crate) const TAG: &str = "pwt";

/// A short name unique across parallel tests and test processes: `prefix`,
/// the process id, `x`, a counter. At most 15 bytes, so it is also a valid
/// interface name (pids stay below 8 digits; keep prefixes to ~4 letters).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    assert!(
        prefix.bytes().all(|b| b.is_ascii_lowercase()),
        "prefix {prefix:?}: lowercase letters only, so a name can be parsed back"
    );
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("{prefix}{}x{n}", std::process::id());
    assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// Name of a namespace, container or cgroup owned by the harness.
pub fn owned_name(prefix: &str) -> String {
    format!("{}-{prefix}", unique(TAG))
}

/// The pid embedded in an owned name, if `name` is one.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TAG)?;
    let (pid, rest) = rest.split_once('x')?;
    let (n, _) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

pub(crate) fn is_owned(name: &str) -> bool {
    owner_pid(name).is_some()
}
