//! nf_tables, natively: a NETLINK_NETFILTER socket speaking the
//! NFNL_SUBSYS_NFTABLES messages the `nft` tool sends (`message`), the
//! expressions of pipework's rules (`expr`) and the rules themselves
//! (`rules`). Changes go as one batch, a transaction the kernel applies
//! whole or not at all; a refusal keeps the kernel's extended-ACK text.

mod expr;
mod message;
pub mod rules;

use std::num::NonZeroI32;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use rtnetlink::packet_core::ErrorMessage;

use crate::error::{errno_text, is_permission, needs_root, Error, KernelReply, Result};
use crate::sys::netlink::kernel_message;
use message::{
    attr, Attrs, Message, Op, NLMSG_DONE, NLMSG_ERROR, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_NONREC,
};
pub use rules::{Hook, Rule, Tag, TABLE};

/// A chain of any table, by family (NFPROTO_*), table and name: iptables-nft's
/// `ip filter FORWARD` as well as pipework's own.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a> {
    pub family: u8,
    pub table: &'a str,
    pub name: &'a str,
}

impl Chain<'_> {
    fn describe(&self) -> String {
        let family = match self.family {
            2 => "ip",
            10 => "ip6",
            1 => "inet",
            7 => "bridge",
            _ => "family",
        };
        format!("{family} {} {}", self.table, self.name)
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::default();
        a.string(attr::CHAIN_TABLE, self.table).string(attr::CHAIN_NAME, self.name);
        a
    }
}

impl Hook {
    fn as_chain(self) -> Chain<'static> {
        Chain { family: self.family(), table: TABLE, name: self.chain() }
    }
}

/// NF_DROP, as a base chain's policy.
pub const POLICY_DROP: u32 = 0;

/// Whether two listings of a rule's expressions are the same rule: the
/// counters' values aside.
pub fn same_exprs(listed: &[String], wanted: &[String]) -> bool {
    let plain = |e: &String| if e.starts_with("[ counter ") { "[ counter ]".to_string() } else { e.clone() };
    listed.len() == wanted.len() && listed.iter().map(plain).eq(wanted.iter().map(plain))
}

/// Expressions as the kernel would list them.
pub fn listed(exprs: &[expr::Expr]) -> Vec<String> {
    expr::describe(&expr::encode_all(exprs))
}

pub use expr::Expr;

/// NFTNL_UDATA_RULE_COMMENT: a rule's comment in its user data.
const UDATA_COMMENT: u8 = 0;

/// A rule as the kernel lists it: its handle, comment, and expressions as
/// `nft --debug=netlink` shows them.
#[derive(Debug, Clone)]
pub struct Listed {
    pub handle: u64,
    pub comment: String,
    pub exprs: Vec<String>,
}

impl Rule {
    /// The expressions as the kernel would list them.
    pub fn listed(&self) -> Vec<String> {
        expr::describe(&expr::encode_all(&self.exprs))
    }
}

/// A connection to nf_tables in the namespace this process runs in.
pub struct Nftables {
    socket: Socket,
    seq: u32,
}

fn failed(e: std::io::Error, what: &str) -> Error {
    Error::from(e).context(what)
}

/// The kernel's refusal in an NLMSG_ERROR payload (none for an ACK): its
/// extended-ACK text if it gave one, else the errno's.
fn refusal(payload: &[u8], what: &str) -> Option<Error> {
    let code = i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?);
    let mut message = ErrorMessage::default();
    message.code = Some(NonZeroI32::new(code)?);
    message.header = payload[4..].to_vec();
    let errno = code.abs();
    if is_permission(errno) {
        return Some(needs_root(what));
    }
    let text = kernel_message(&rtnetlink::Error::NetlinkError(message));
    let reason = match (&text, errno) {
        (Some(text), _) => text.clone(),
        // What the kernel says of a chain already there with another type or hook.
        (None, libc::EOPNOTSUPP) => "not supported (a chain of that name with another type or hook, \
                                     or a kernel without this nf_tables feature)"
            .to_string(),
        (None, _) => errno_text(errno),
    };
    Some(Error::kernel(format!("{what}: {reason}"), KernelReply { errno: Some(errno), text }))
}

impl Nftables {
    pub fn here() -> Result<Nftables> {
        let socket = Socket::new(NETLINK_NETFILTER).map_err(|e| failed(e, "opening an nf_tables socket"))?;
        if socket.set_cap_ack(true).is_ok() {
            let _ = socket.set_ext_ack(true);
        }
        Ok(Nftables { socket, seq: std::process::id().wrapping_shl(12) })
    }

    fn next_seq(&mut self, count: usize) -> u32 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(count as u32 + 2);
        seq
    }

    /// One transaction. The kernel handles a batch within the send, so its
    /// answers (an ACK or a refusal per message) are all queued when the
    /// send returns: they are read until none is left.
    fn transact(&mut self, messages: &[Message], what: &str) -> Result<()> {
        let seq = self.next_seq(messages.len());
        let bytes = message::batch(messages, seq);
        self.socket.send(&bytes, 0).map_err(|e| failed(e, what))?;
        let mut first = None;
        loop {
            let mut buf = Vec::with_capacity(1 << 16);
            match self.socket.recv(&mut buf, libc::MSG_DONTWAIT) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(failed(e, what)),
            }
            for m in message::split(&buf).into_iter().filter(|m| m.kind == NLMSG_ERROR) {
                if first.is_none() {
                    first = refusal(m.payload, what);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The rules of `hook`'s chain; none if the table or chain is absent.
    pub fn rules(&mut self, hook: Hook) -> Result<Vec<Listed>> {
        self.rules_of(hook.as_chain())
    }

    /// The rules of a chain; none if the table or chain is absent.
    pub fn rules_of(&mut self, chain: Chain<'_>) -> Result<Vec<Listed>> {
        let what = format!("listing {}", chain.describe());
        let mut filter = Attrs::default();
        filter.string(attr::RULE_TABLE, chain.table).string(attr::RULE_CHAIN, chain.name);
        let seq = self.next_seq(0);
        let request = message::request(Op::GetRule, NLM_F_DUMP, chain.family, &filter, seq);
        self.socket.send(&request, 0).map_err(|e| failed(e, &what))?;
        let mut listed = Vec::new();
        loop {
            let mut buf = Vec::with_capacity(1 << 16);
            self.socket.recv(&mut buf, 0).map_err(|e| failed(e, &what))?;
            for m in message::split(&buf).into_iter().filter(|m| m.seq == seq) {
                match m.kind {
                    NLMSG_DONE => return Ok(listed),
                    NLMSG_ERROR => match refusal(m.payload, &what) {
                        Some(e) if !gone(&e) => return Err(e),
                        _ => return Ok(listed),
                    },
                    kind if kind == Op::NewRule.message_type() => listed.extend(decode_rule(m.payload)),
                    _ => {}
                }
            }
        }
    }

    /// Whether `hook`'s chain exists.
    fn has_chain(&mut self, hook: Hook) -> Result<bool> {
        Ok(self.chain(hook.as_chain())?.is_some())
    }

    /// A chain's policy if it is there: None for a chain that is not, a
    /// policy of None for a chain on no hook (a user chain).
    pub fn chain(&mut self, chain: Chain<'_>) -> Result<Option<Option<u32>>> {
        let what = format!("looking for {}", chain.describe());
        let seq = self.next_seq(0);
        self.socket
            .send(&message::request(Op::GetChain, 0, chain.family, &chain.attrs(), seq), 0)
            .map_err(|e| failed(e, &what))?;
        loop {
            let mut buf = Vec::with_capacity(1 << 16);
            self.socket.recv(&mut buf, 0).map_err(|e| failed(e, &what))?;
            // The chain (NFT_MSG_NEWCHAIN), or a refusal.
            if let Some(m) = message::split(&buf).into_iter().find(|m| m.seq == seq) {
                return match (m.kind, refusal(m.payload, &what)) {
                    (NLMSG_ERROR, Some(e)) if gone(&e) => Ok(None),
                    (NLMSG_ERROR, Some(e)) => Err(e),
                    (NLMSG_ERROR, None) => Ok(Some(None)),
                    _ => {
                        let attrs = message::parse(m.payload.get(4..).unwrap_or_default());
                        let policy =
                            message::find(&attrs, attr::CHAIN_POLICY).and_then(|p| message::be_u32(&p));
                        Ok(Some(policy))
                    }
                };
            }
        }
    }

    /// Puts a rule of `exprs` at the head of `chain` as `iptables-nft -I
    /// CHAIN` does (`iptables_rule`).
    pub fn insert(&mut self, chain: Chain<'_>, exprs: &[Expr]) -> Result<()> {
        let attrs = iptables_rule(chain, exprs);
        let message = Message { op: Op::NewRule, family: chain.family, flags: NLM_F_CREATE, attrs };
        self.transact(&[message], &format!("adding a rule to {}", chain.describe()))
    }

    /// Deletes the rule `handle` of `chain`; gone already is no error.
    pub fn delete(&mut self, chain: Chain<'_>, handle: u64) -> Result<()> {
        let mut a = Attrs::default();
        a.string(attr::RULE_TABLE, chain.table)
            .string(attr::RULE_CHAIN, chain.name)
            .u64(attr::RULE_HANDLE, handle);
        let message = Message { op: Op::DelRule, family: chain.family, flags: 0, attrs: a };
        match self.transact(&[message], &format!("deleting a rule from {}", chain.describe())) {
            Err(e) if gone(&e) => Ok(()),
            done => done,
        }
    }

    /// Makes `hook`'s table and chain if absent, removes the rules `tag`
    /// marks there (left by an earlier run), and appends `rules`: one
    /// transaction. The chain is declared only when absent: declaring a
    /// base chain that exists costs its commit about 10 ms. A DEL may drop
    /// the chain, empty, between the lookup and the transaction
    /// (`drop_if_empty`): the rules then find no chain (ENOENT) and are
    /// sent again with the table and chain declared.
    pub fn add(&mut self, hook: Hook, tag: &Tag, rules: &[Rule]) -> Result<()> {
        let declare = !self.has_chain(hook)?;
        injected_wait();
        match self.add_once(hook, tag, rules, declare) {
            Err(e) if !declare && gone(&e) => self.add_once(hook, tag, rules, true),
            done => done,
        }
    }

    fn add_once(&mut self, hook: Hook, tag: &Tag, rules: &[Rule], declare: bool) -> Result<()> {
        let stale: Vec<u64> =
            self.rules(hook)?.into_iter().filter(|r| tag.marks(&r.comment)).map(|r| r.handle).collect();
        let family = hook.family();
        let mut messages = Vec::new();
        if declare {
            let mut chain = chain_name(hook);
            chain.nest(attr::CHAIN_HOOK).u32(attr::HOOK_HOOKNUM, hook.hook_number());
            chain.u32(attr::HOOK_PRIORITY, hook.priority() as u32).end();
            chain.u32(attr::CHAIN_POLICY, 1).string(attr::CHAIN_TYPE, hook.chain_type());
            let mut table = table_name();
            table.u32(attr::TABLE_FLAGS, 0);
            messages.push(Message { op: Op::NewTable, family, flags: NLM_F_CREATE, attrs: table });
            messages.push(Message { op: Op::NewChain, family, flags: NLM_F_CREATE, attrs: chain });
        }
        messages.extend(stale.into_iter().map(|handle| delete_rule(hook, handle)));
        for rule in rules {
            let mut a = Attrs::default();
            a.string(attr::RULE_TABLE, TABLE).string(attr::RULE_CHAIN, hook.chain());
            a.nest(attr::RULE_EXPRESSIONS).raw(&expr::encode_all(&rule.exprs)).end();
            a.bytes(attr::RULE_USERDATA, &comment(&tag.comment));
            messages.push(Message { op: Op::NewRule, family, flags: NLM_F_CREATE | NLM_F_APPEND, attrs: a });
        }
        self.transact(&messages, &format!("adding rules to {}", hook.name()))
    }

    /// Removes the rules of `hook`'s chain whose comment `which` picks;
    /// returns how many. Rules gone meanwhile are no error. Then the chain
    /// and table go if nothing is left in them, also when no rule was
    /// removed: a DEL run again after one that stopped in between (or after
    /// a rule deleted by hand) still leaves nothing behind.
    pub fn remove(&mut self, hook: Hook, which: impl Fn(&str) -> bool) -> Result<usize> {
        let doomed: Vec<u64> =
            self.rules(hook)?.into_iter().filter(|r| which(&r.comment)).map(|r| r.handle).collect();
        let what = format!("deleting rules from {}", hook.name());
        for handle in &doomed {
            match self.transact(&[delete_rule(hook, *handle)], &what) {
                Err(e) if gone(&e) => {}
                other => other?,
            }
        }
        self.drop_if_empty(hook)?;
        Ok(doomed.len())
    }

    /// Deletes `hook`'s chain, then its table, in one transaction that the
    /// kernel refuses whole (EBUSY) if a rule is left in the chain or
    /// another chain in the table: NLM_F_NONREC asks it to check, under
    /// the same mutex that orders every nf_tables transaction, so a rule a
    /// concurrent ADD commits first is never taken along (a plain
    /// NFT_MSG_DELTABLE flushes what is inside), and an ADD that commits
    /// after finds no chain and declares it again (`add`). No lock of
    /// pipework's is needed, nor would one cover `nft` or a GC without
    /// records. Gone already (ENOENT) is as good.
    fn drop_if_empty(&mut self, hook: Hook) -> Result<()> {
        let family = hook.family();
        let messages = [
            Message { op: Op::DelChain, family, flags: NLM_F_NONREC, attrs: chain_name(hook) },
            Message { op: Op::DelTable, family, flags: NLM_F_NONREC, attrs: table_name() },
        ];
        match self.transact(&messages, &format!("deleting the empty {}", hook.name())) {
            Err(e) if gone(&e) || busy(&e) => Ok(()),
            done => done,
        }
    }

    /// The rules of `wanted` (an attachment's, all tagged `tag`) that the
    /// kernel does not list with that tag and those expressions: what CNI
    /// CHECK and `pipework check` both compare.
    pub fn missing(&mut self, tag: &Tag, wanted: &[Rule]) -> Result<Vec<Rule>> {
        let mut missing = Vec::new();
        for hook in [Hook::Masquerade, Hook::MacCheck] {
            let ours: Vec<&Rule> = wanted.iter().filter(|r| r.hook == hook).collect();
            if ours.is_empty() {
                continue;
            }
            let present = self.rules(hook)?;
            for rule in ours {
                let exprs = rule.listed();
                if !present.iter().any(|p| tag.marks(&p.comment) && p.exprs == exprs) {
                    missing.push(rule.clone());
                }
            }
        }
        Ok(missing)
    }
}

/// A new rule's attributes as iptables-nft sends them: table, chain,
/// expressions, and the x_tables compatibility data it adds to every rule
/// (protocol 0, no flags, for a rule without `-p`); no user data.
fn iptables_rule(chain: Chain<'_>, exprs: &[Expr]) -> Attrs {
    let mut a = Attrs::default();
    a.string(attr::RULE_TABLE, chain.table).string(attr::RULE_CHAIN, chain.name);
    a.nest(attr::RULE_EXPRESSIONS).raw(&expr::encode_all(exprs)).end();
    a.nest(attr::RULE_COMPAT).u32(attr::COMPAT_PROTO, 0).u32(attr::COMPAT_FLAGS, 0).end();
    a
}

fn table_name() -> Attrs {
    let mut a = Attrs::default();
    a.string(attr::TABLE_NAME, TABLE);
    a
}

fn chain_name(hook: Hook) -> Attrs {
    hook.as_chain().attrs()
}

/// EBUSY: a chain or table not empty.
fn busy(e: &Error) -> bool {
    e.kernel_reply().is_some_and(|r| r.errno == Some(libc::EBUSY))
}

/// Test builds only: with `PIPEWORK_NFT_WAIT=<file>`, `add` stops between
/// its chain lookup and its transaction, says so with `<file>.reached` and
/// goes on once `<file>` exists (10 s at most), so that a test can drop
/// the chain in between.
#[cfg(feature = "failpoints")]
fn injected_wait() {
    let Some(file) = std::env::var_os("PIPEWORK_NFT_WAIT").map(std::path::PathBuf::from) else { return };
    let _ = std::fs::write(file.with_extension("reached"), b"");
    for _ in 0..1000 {
        if file.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(not(feature = "failpoints"))]
fn injected_wait() {}

/// ENOENT: a table, chain or rule not there.
fn gone(e: &Error) -> bool {
    e.kernel_reply().is_some_and(|r| r.errno == Some(libc::ENOENT))
}

fn delete_rule(hook: Hook, handle: u64) -> Message {
    let mut a = Attrs::default();
    a.string(attr::RULE_TABLE, TABLE).string(attr::RULE_CHAIN, hook.chain()).u64(attr::RULE_HANDLE, handle);
    Message { op: Op::DelRule, family: hook.family(), flags: 0, attrs: a }
}

/// A comment as nft keeps it in a rule's user data: type, length, text
/// with its NUL.
fn comment(text: &str) -> Vec<u8> {
    let value = [text.as_bytes(), b"\0"].concat();
    [vec![UDATA_COMMENT, value.len() as u8], value].concat()
}

fn decode_comment(udata: &[u8]) -> String {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], rest[1] as usize);
        let Some(value) = rest.get(2..2 + len) else { break };
        if kind == UDATA_COMMENT {
            return message::text(value);
        }
        rest = &rest[2 + len..];
    }
    String::new()
}

/// A listed rule: the payload after `nfgenmsg`.
fn decode_rule(payload: &[u8]) -> Option<Listed> {
    let attrs = message::parse(payload.get(4..)?);
    let handle = message::be_u64(&message::find(&attrs, attr::RULE_HANDLE)?)?;
    let comment = message::find(&attrs, attr::RULE_USERDATA).map(|u| decode_comment(&u)).unwrap_or_default();
    let exprs = expr::describe(&message::find(&attrs, attr::RULE_EXPRESSIONS).unwrap_or_default());
    Some(Listed { handle, comment, exprs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_kernel_words() {
        let with_text = crate::sys::netlink::error::tests::refusal(libc::EINVAL, Some("Unknown chain type"));
        let rtnetlink::Error::NetlinkError(m) = with_text else { unreachable!() };
        let payload = [(-libc::EINVAL).to_ne_bytes().to_vec(), m.header].concat();
        let e = refusal(&payload, "adding rules to inet pipework postrouting").unwrap();
        assert_eq!(e.to_string(), "pipework: adding rules to inet pipework postrouting: Unknown chain type");
        assert_eq!(e.kernel_reply().unwrap().errno, Some(libc::EINVAL));
        let payload = [(-libc::EOPNOTSUPP).to_ne_bytes().to_vec(), vec![0; 16]].concat();
        let e = refusal(&payload, "adding rules").unwrap();
        assert_eq!(
            e.to_string(),
            "pipework: adding rules: not supported (a chain of that name with another type or hook, \
             or a kernel without this nf_tables feature)"
        );
        assert!(refusal(&[0; 20], "an ACK").is_none());
    }

    #[test]
    fn comments_are_user_data_as_nft_writes_it() {
        // nft --debug=netlink: userdata = { \x00\x15abc-def net: testnet\x00 }
        let bytes = comment("abc-def net: testnet");
        assert_eq!(&bytes[..2], [0x00, 0x15]);
        assert_eq!(&bytes[2..], b"abc-def net: testnet\0");
        assert_eq!(decode_comment(&bytes), "abc-def net: testnet");
    }

    /// Byte for byte what `iptables-nft -I X -i br0 -o br0 -j ACCEPT` sent
    /// (1.8.9, its sendmsg as `strace -e write=3` dumps it) after the
    /// `nfgenmsg` of its NFT_MSG_NEWRULE.
    #[test]
    fn a_bridge_rule_is_the_message_iptables_nft_sends() {
        let chain = Chain { family: 2, table: "filter", name: "X" };
        let hex: String = iptables_rule(chain, &rules::bridge_accept("br0"))
            .bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "0b00010066696c746572000006000200580000000001048024000180090001006d6574610000000014000280080002000000\
             000608000100000000012c00018008000100636d700020000280080001000000000108000200000000000c00038008000100\
             6272300024000180090001006d6574610000000014000280080002000000000708000100000000012c00018008000100636d\
             700020000280080001000000000108000200000000000c00038008000100627230002c0001800c000100636f756e74657200\
             1c0002800c00010000000000000000000c0002000000000000000000300001800e000100696d6d6564696174650000001c00\
             02800800010000000000100002800c00028008000100000000011400058008000100000000000800020000000000"
        );
    }
}
