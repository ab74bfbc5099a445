//! A bridge's own traffic through iptables' FORWARD hook. With
//! br_netfilter (`net.bridge.bridge-nf-call-iptables`, Docker turns it on),
//! frames bridged between two ports of a bridge pass the FORWARD hook, and
//! a filter FORWARD chain that drops by policy (Docker sets DROP) drops
//! them. pipework then accepts frames forwarded from the bridge to itself
//! (`-i BR -o BR -j ACCEPT`), in Docker's chain for operators' rules
//! (`DOCKER-USER`, kept across Docker's restarts) if there is one, else at
//! the head of FORWARD; it never changes a policy nor any other rule.
//!
//! On iptables-nft hosts the rule goes over netlink into the `ip filter` /
//! `ip6 filter` tables with the expressions iptables-nft writes; on
//! iptables-legacy hosts (x_tables) the system's `iptables-legacy` is run
//! from a system directory with a clean environment.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::exec::{self, CHILD_PATH};
use super::nftables::{listed, rules, same_exprs, Chain, Nftables, POLICY_DROP};
use super::output;
use crate::error::{Error, Kind, Result};
use crate::family::Family;

/// Docker's chain for operators' rules, which it keeps across its restarts.
pub const DOCKER_USER: &str = "DOCKER-USER";
const FORWARD: &str = "FORWARD";

/// Where the host's iptables keeps its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// nf_tables, as iptables-nft uses it.
    Nft,
    /// x_tables, through `iptables-legacy`.
    Legacy,
}

/// One accepting rule of a bridge: its family, backend and chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    pub family: Family,
    pub backend: Backend,
    /// `DOCKER-USER` or `FORWARD`.
    pub chain: String,
}

impl Accept {
    /// The command that means the same: `iptables -I DOCKER-USER -i br0 -o
    /// br0 -j ACCEPT`, `ip6tables -I FORWARD 1 ...`.
    pub fn command(&self, bridge: &str) -> String {
        let at = if self.chain == FORWARD { " 1" } else { "" };
        format!("{} -I {}{at} {}", self.tool(), self.chain, self.matches(bridge).join(" "))
    }

    /// The command that removes it.
    pub fn delete_command(&self, bridge: &str) -> String {
        format!("{} -D {} {}", self.tool(), self.chain, self.matches(bridge).join(" "))
    }

    fn tool(&self) -> &'static str {
        match (self.family, self.backend) {
            (Family::V4, Backend::Nft) => "iptables",
            (Family::V6, Backend::Nft) => "ip6tables",
            (Family::V4, Backend::Legacy) => "iptables-legacy",
            (Family::V6, Backend::Legacy) => "ip6tables-legacy",
        }
    }

    fn matches(&self, bridge: &str) -> Vec<String> {
        ["-i", bridge, "-o", bridge, "-j", "ACCEPT"].map(String::from).to_vec()
    }

    fn nft_chain(&self) -> Chain<'_> {
        Chain { family: nfproto(self.family), table: "filter", name: &self.chain }
    }

    /// Whether the rule is in its chain.
    pub fn present(&self, bridge: &str) -> Result<bool> {
        match self.backend {
            Backend::Nft => Ok(self.handle(bridge)?.is_some()),
            Backend::Legacy => {
                let args = [vec!["-C".to_string(), self.chain.clone()], self.matches(bridge)].concat();
                legacy(self.family, &args).map(|out| out.is_some())
            }
        }
    }

    /// Whether the rule is in its chain or the other one (DOCKER-USER,
    /// FORWARD): one made at the head of FORWARD before Docker made its
    /// chain still lets the bridge's traffic through.
    pub fn present_in_either(&self, bridge: &str) -> Result<bool> {
        let other = if self.chain == FORWARD { DOCKER_USER } else { FORWARD };
        Ok(self.present(bridge)? || Accept { chain: other.into(), ..self.clone() }.present(bridge)?)
    }

    /// The nf_tables handle of the first rule of its chain that is it.
    fn handle(&self, bridge: &str) -> Result<Option<u64>> {
        let wanted = listed(&rules::bridge_accept(bridge));
        let present = Nftables::here()?.rules_of(self.nft_chain())?;
        Ok(present
            .into_iter()
            .find(|r| r.comment.is_empty() && same_exprs(&r.exprs, &wanted))
            .map(|r| r.handle))
    }

    /// Puts the rule at the head of its chain.
    pub fn add(&self, bridge: &str) -> Result<()> {
        match self.backend {
            Backend::Nft => Nftables::here()?.insert(self.nft_chain(), &rules::bridge_accept(bridge)),
            Backend::Legacy => {
                let mut args = vec!["-I".to_string(), self.chain.clone()];
                if self.chain == FORWARD {
                    args.push("1".into());
                }
                args.extend(self.matches(bridge));
                legacy_must(self.family, &args)
            }
        }
    }

    /// Deletes one such rule, if there is one.
    pub fn remove(&self, bridge: &str) -> Result<()> {
        match self.backend {
            Backend::Nft => match self.handle(bridge)? {
                Some(handle) => Nftables::here()?.delete(self.nft_chain(), handle),
                None => Ok(()),
            },
            Backend::Legacy if self.present(bridge)? => {
                let args = [vec!["-D".to_string(), self.chain.clone()], self.matches(bridge)].concat();
                legacy_must(self.family, &args)
            }
            Backend::Legacy => Ok(()),
        }
    }
}

/// NFPROTO_IPV4, NFPROTO_IPV6.
fn nfproto(family: Family) -> u8 {
    match family {
        Family::V4 => 2,
        Family::V6 => 10,
    }
}

fn word(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

/// Whether br_netfilter hands a bridge's frames of `family` to iptables:
/// this namespace's `/proc/sys/net/bridge/bridge-nf-call-ip{,6}tables`, or
/// the bridge's own `nf_call_ip{,6}tables` (`own`, as netlink lists them).
fn bridged_frames_filtered(family: Family, own: [bool; 2]) -> bool {
    let path = format!("/proc/sys/net/bridge/bridge-nf-call-{}", word(family));
    let own = match family {
        Family::V4 => own[0],
        Family::V6 => own[1],
    };
    // Without the module there is no file, and the bridge's own setting is
    // not looked at either.
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1" || own)
}

/// The accepting rules a bridge (whose own `nf_call_*` settings are `own`)
/// needs in this namespace: one per family and backend whose FORWARD hook
/// sees bridged frames and drops them by policy, whether or not the rule is
/// there already.
pub fn needed(own: [bool; 2]) -> Result<Vec<Accept>> {
    let mut needed = Vec::new();
    for family in [Family::V4, Family::V6] {
        if !bridged_frames_filtered(family, own) {
            continue;
        }
        let forward = Chain { family: nfproto(family), table: "filter", name: FORWARD };
        if nft_policy(forward)? == Some(Some(POLICY_DROP)) {
            let user = Chain { name: DOCKER_USER, ..forward };
            let chain = if nft_policy(user)?.is_some() { DOCKER_USER } else { FORWARD };
            needed.push(Accept { family, backend: Backend::Nft, chain: chain.into() });
        }
        if legacy_filter_table(family) && legacy_policy_drops(family)? {
            let chain = match legacy(family, &["-S".into(), DOCKER_USER.into()])? {
                Some(_) => DOCKER_USER,
                None => FORWARD,
            };
            needed.push(Accept { family, backend: Backend::Legacy, chain: chain.into() });
        }
    }
    Ok(needed)
}

/// `Nftables::chain`, on a kernel without nf_tables too: no socket for
/// nfnetlink, or a subsystem it does not know (EINVAL, EOPNOTSUPP), is no
/// chain.
fn nft_policy(chain: Chain<'_>) -> Result<Option<Option<u32>>> {
    let Ok(mut nft) = Nftables::here() else { return Ok(None) };
    match nft.chain(chain) {
        Err(e)
            if e.kernel_reply().is_some_and(|r| matches!(r.errno, Some(libc::EINVAL | libc::EOPNOTSUPP))) =>
        {
            Ok(None)
        }
        other => other,
    }
}

/// The rules of `needed(own)` that `bridge` lacks, in either chain.
pub fn missing(bridge: &str, own: [bool; 2]) -> Result<Vec<Accept>> {
    let mut missing = Vec::new();
    for rule in needed(own)? {
        if !rule.present_in_either(bridge)? {
            missing.push(rule);
        }
    }
    Ok(missing)
}

/// Whether x_tables has a filter table in this namespace: made by
/// `iptables-legacy` (the file lists the tables of the reader's namespace).
fn legacy_filter_table(family: Family) -> bool {
    let file = match family {
        Family::V4 => "/proc/net/ip_tables_names",
        Family::V6 => "/proc/net/ip6_tables_names",
    };
    std::fs::read_to_string(file).is_ok_and(|names| names.lines().any(|n| n == "filter"))
}

/// Whether x_tables' FORWARD drops by policy. Without iptables-legacy to
/// ask (a table some other tool made), stderr says the hook is not looked at.
fn legacy_policy_drops(family: Family) -> Result<bool> {
    let listing = match legacy(family, &["-S".into(), FORWARD.into()]) {
        Err(e) if e.kind() == Kind::NotFound => {
            output::warning(format!(
                "an x_tables filter table is loaded but {}-legacy is not installed: \
                 its FORWARD policy is not looked at ({})",
                word(family),
                e.message()
            ));
            return Ok(false);
        }
        listing => listing?.unwrap_or_default(),
    };
    Ok(listing.lines().any(|l| l.trim() == "-P FORWARD DROP"))
}

/// The system's iptables-legacy (or ip6tables-legacy), found in a system
/// directory only root can change, run here with a clean environment and
/// `-w` (it waits for the xtables lock); its output, or None if it exits 1
/// (a rule or chain not there).
fn legacy(family: Family, args: &[String]) -> Result<Option<String>> {
    let name = format!("{}-legacy", word(family));
    let path = exec::find(&name, "iptables")?;
    let output =
        command(&path, args).output().map_err(|e| Error::from(e).context(format!("running {name}")))?;
    match output.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned())),
        Some(1) => Ok(None),
        _ => Err(Error::new(
            Kind::Io,
            format!("{name} {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()),
        )),
    }
}

fn legacy_must(family: Family, args: &[String]) -> Result<()> {
    match legacy(family, args)? {
        Some(_) => Ok(()),
        None => Err(Error::new(Kind::Io, format!("{}-legacy {} failed", word(family), args.join(" ")))),
    }
}

fn command(path: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(path);
    cmd.arg("-w").args(args).env_clear().env("PATH", CHILD_PATH);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_iptables_own() {
        let rule = Accept { family: Family::V4, backend: Backend::Nft, chain: DOCKER_USER.into() };
        assert_eq!(rule.command("br0"), "iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT");
        assert_eq!(rule.delete_command("br0"), "iptables -D DOCKER-USER -i br0 -o br0 -j ACCEPT");
        let rule = Accept { family: Family::V6, backend: Backend::Legacy, chain: FORWARD.into() };
        assert_eq!(rule.command("br0"), "ip6tables-legacy -I FORWARD 1 -i br0 -o br0 -j ACCEPT");
    }
}
