//! An attachment's nf_tables rules (`ipMasq`, `macspoofchk`): the steps
//! ADD plans, the steps that remove them in DEL's and GC's plans (and
//! GC's sweep of a network's rules without records), CHECK's comparison. Every rule
//! carries its attachment's tag (network, interface, container ID) as its
//! comment, so that DEL removes exactly its own.

use super::config::NetConf;
use super::env::Env;
use super::error::{CniError, CniResult, Code};
use super::result::CniOutput;
use crate::mac::Mac;
use crate::plan::Step;
use crate::records::{CniFlags, CniRecord};
use crate::sys::nftables::{rules, Hook, Nftables, Tag};

pub fn tag(conf: &NetConf, env: &Env) -> Tag {
    Tag::new(&conf.name, &env.container_id, &env.ifname)
}

/// `macspoofchk`'s step, for the links plan: before the port comes up.
pub fn mac_check(env: &Env, conf: &NetConf, host_veth: &str) -> Option<Step> {
    conf.mac_spoof_check.then(|| Step::MacCheck {
        port: host_veth.into(),
        dev: env.ifname.clone(),
        tag: tag(conf, env),
    })
}

/// `ipMasq`'s step, for the addressing plan: every address IPAM gave.
pub fn masquerade(env: &Env, conf: &NetConf, out: &CniOutput) -> Option<Step> {
    let addresses = out.ips.iter().map(|ip| ip.address).collect();
    conf.ip_masq.then(|| Step::Masquerade { addresses, tag: tag(conf, env) })
}

/// The chains an attachment has rules in, as a configuration asks.
fn hooks_of(flags: CniFlags) -> Vec<Hook> {
    let mut hooks = Vec::new();
    if flags.ip_masq {
        hooks.push(Hook::Masquerade);
    }
    if flags.mac_spoof_check {
        hooks.push(Hook::MacCheck);
    }
    hooks
}

/// The same, from an attachment on record.
pub fn recorded_hooks(recorded: Option<&CniRecord>) -> Vec<Hook> {
    hooks_of(recorded.map(CniRecord::flags).unwrap_or_default())
}

/// DEL's: what this configuration asks for, and what ADD's did (on record).
pub fn del_hooks(conf: &NetConf, recorded: Option<&CniRecord>) -> Vec<Hook> {
    let (asked, made) = (conf.flags(), recorded.map(CniRecord::flags).unwrap_or_default());
    hooks_of(CniFlags {
        ip_masq: asked.ip_masq || made.ip_masq,
        mac_spoof_check: asked.mac_spoof_check || made.mac_spoof_check,
    })
}

pub fn hooks(conf: &NetConf) -> Vec<Hook> {
    hooks_of(conf.flags())
}

fn kernel(e: crate::error::Error) -> CniError {
    CniError::from(e)
}

/// STATUS: the chains the configuration's rules go in can be listed.
pub fn ready(conf: &NetConf) -> CniResult<()> {
    let hooks = hooks(conf);
    if hooks.is_empty() {
        return Ok(());
    }
    let mut nft = Nftables::here().map_err(kernel)?;
    for hook in hooks {
        nft.rules(hook).map_err(kernel)?;
    }
    Ok(())
}

/// DEL's and GC's steps: the attachment's rules in `hooks`' chains go
/// (none there is fine).
pub fn drop_steps(network: &str, container_id: &str, ifname: &str, hooks: Vec<Hook>) -> Vec<Step> {
    let tag = Tag::new(network, container_id, ifname);
    hooks.into_iter().map(|hook| Step::DropRules { hook, tag: tag.clone() }).collect()
}

/// GC's steps: rules of the network whose attachment is not valid go,
/// whether or not a record is left of it.
pub fn collect_steps(conf: &NetConf) -> Vec<Step> {
    let valid: Vec<Tag> =
        conf.valid_attachments.iter().map(|a| Tag::new(&conf.name, &a.container_id, &a.ifname)).collect();
    let network = &conf.name;
    hooks(conf)
        .into_iter()
        .map(|hook| Step::CollectRules { hook, network: network.clone(), valid: valid.clone() })
        .collect()
}

/// The rules ADD made, as nft lines, for the record.
pub fn made(env: &Env, conf: &NetConf, out: &CniOutput, host_veth: &str, mac: Mac) -> Vec<String> {
    expected(conf, out, host_veth, mac)
        .into_iter()
        .map(|r| format!("{} {} comment \"{}\"", r.hook.name(), r.text, tag(conf, env).comment))
        .collect()
}

fn expected(conf: &NetConf, out: &CniOutput, host_veth: &str, mac: Mac) -> Vec<rules::Rule> {
    let addresses: Vec<_> = out.ips.iter().map(|ip| ip.address).collect();
    rules::of_attachment(conf.ip_masq, conf.mac_spoof_check, &addresses, host_veth, mac)
}

/// CHECK: each rule the attachment should have is in the kernel, tagged
/// with it, its expressions those pipework makes.
pub fn check(env: &Env, conf: &NetConf, recorded: &CniOutput, host_veth: &str, mac: Mac) -> CniResult<()> {
    let wanted = expected(conf, recorded, host_veth, mac);
    if wanted.is_empty() {
        return Ok(());
    }
    let missing =
        Nftables::here().and_then(|mut nft| nft.missing(&tag(conf, env), &wanted)).map_err(kernel)?;
    match missing.first() {
        None => Ok(()),
        Some(rule) => Err(CniError::new(
            Code::Internal,
            format!("{} lacks the rule \"{}\" of {}", rule.hook.name(), rule.text, env.ifname),
        )),
    }
}
