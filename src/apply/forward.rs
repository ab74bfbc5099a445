//! A bridge's accepting FORWARD rules (`sys::firewall`) added and removed
//! together with its record, under the store's lock: one rule per bridge
//! and family whoever asks, and the record says which pipework added.

use crate::error::Result;
use crate::records::{HostNs, Store};
use crate::sys::firewall::Accept;

/// Adds those of `rules` that are not in the kernel and records them as
/// the bridge's; returns those it added. A rule there already stays as it
/// is, the operator's or an earlier run's.
pub fn accept(bridge: &str, rules: &[Accept]) -> Result<Vec<Accept>> {
    let host = HostNs::current()?;
    Store::from_env().update_bridge(&host, bridge, |kept| {
        let mut added = Vec::new();
        for rule in rules {
            let done = match rule.present_in_either(bridge) {
                Ok(true) => Ok(()),
                Ok(false) => rule.add(bridge).map(|()| added.push(rule.clone())),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                // What this call added goes again: the step failed whole.
                for rule in &added {
                    let _ = rule.remove(bridge);
                }
                return Err(e);
            }
        }
        kept.extend(added.iter().filter(|r| !kept.contains(r)).cloned().collect::<Vec<_>>());
        Ok(added)
    })?
}

/// Removes `rules` from the kernel and from the bridge's record; returns
/// those that were there.
pub fn remove(bridge: &str, rules: &[Accept]) -> Result<Vec<Accept>> {
    let host = HostNs::current()?;
    Store::from_env().update_bridge(&host, bridge, |kept| {
        let mut removed = Vec::new();
        for rule in rules {
            if rule.present(bridge)? {
                rule.remove(bridge)?;
                removed.push(rule.clone());
            }
            kept.retain(|k| k != rule);
        }
        Ok(removed)
    })?
}
