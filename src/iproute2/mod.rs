//! The `ip route` and `ip rule` grammar pipework speaks natively, as
//! iproute2 reads it: `tokens` (words, numbers, names), `parse` (the
//! commands), `message` (the netlink requests `ip` would send) and
//! `refusal` (what `ip` prints when the kernel refuses); `run` sends the
//! requests in a guest, and runs `ip` or `tc` for the rest.
//!
//! Native, over netlink in the guest's namespace, with iproute2's defaults
//! (`proto boot`, table main, `scope link` for an IPv4 unicast route without
//! a gateway, the kernel picking a rule's priority when none is given):
//!
//! - `route add|del|delete|replace|change|chg|append|prepend`, optionally
//!   after `-4` or `-6`: a destination (`[to] [TYPE] PREFIX|ADDRESS|default|all`,
//!   TYPE one of `unicast`, `local`, `blackhole`, `unreachable`, `prohibit`,
//!   `throw`), `via ADDRESS` (same family), `dev`/`oif NAME`, `src ADDRESS`,
//!   `metric`/`priority`/`preference N`, `table main|local|default|N`,
//!   `scope global|universe|site|link|host|nowhere|N`,
//!   `proto`/`protocol boot|static|kernel|dhcp|redirect|ra|N`, `onlink`,
//!   `mtu [lock] N`.
//! - `rule add|del|delete`, optionally after `-4` or `-6`: `from`/`to
//!   PREFIX|ADDRESS|all`, `table`/`lookup main|local|default|N`,
//!   `priority`/`prio`/`preference`/`pref`/`order N`, `fwmark N[/MASK]`,
//!   `iif`/`dev NAME`, `oif NAME`, `not`.
//!
//! Keywords are taken whole (no abbreviations) and each at most once. The
//! family comes from `-4`/`-6`, else from the first address (IPv4 when none
//! says). A failure prints what `ip` prints (`RTNETLINK answers: File
//! exists`, the kernel's own `Error: ...` when it gives one, `Cannot find
//! device "X"`) and exits as `ip` does (2, or 1 for a missing device).
//!
//! Everything else runs the real `ip route ...` or `ip rule ...` inside the
//! namespace: `show`/`list`/`get`/`flush`/`save`/`restore`, any keyword,
//! abbreviation, name from /etc/iproute2 or address notation the parser does
//! not know (`nexthop`, `encap`, `realm`, `expires`, `pref`, `10/8`...),
//! and anything it would refuse, so that `ip` words the refusal. Leading
//! value-less `ip` options (`-4`, `-6`, `-d`, `-s`, `-j`, `-p`, `-o`, `-r`,
//! `-N`) go before the object word, where `ip` reads them (the original
//! passed them after it, where `ip` refuses them). `tc` always runs the real
//! `tc`. Both are forked and exec'd directly, never through a shell, after
//! the child joins the guest's namespace (setns); stdio is inherited and
//! pipework exits with their status.

pub mod message;
pub mod parse;
pub mod refusal;
pub mod run;
mod tokens;

pub use parse::{parse_route, parse_rule, Prefix, RouteCmd, RouteOp, RuleCmd, RuleOp};
