//! Making a `route`, `rule` or `tc` line in a guest's namespace: the forms
//! `parse` reads go natively over netlink there, the rest (and `tc`) run
//! the real program inside it. `pipework route|rule|tc` and the watch
//! service's replay of a recorded line both come here.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use rtnetlink::packet_route::RouteNetlinkMessage;

use super::refusal::refused;
use super::{parse_route, parse_rule, RouteCmd, RouteOp, RuleCmd, RuleOp};
use crate::error::{Error, Kind, Result};
use crate::request::Tool;
use crate::sys::exec::run_in;
use crate::sys::netlink::Netlink;

/// The package that has `ip` and `tc`, for the message when they are missing.
const IPROUTE2: &str = "iproute2";
/// `ip` options that take no value, which may precede the object word.
const IP_FLAGS: &[&str] = &["-4", "-6", "-d", "-s", "-j", "-p", "-o", "-r", "-N"];
/// How long the watch service waits for `ip` making a recorded line again:
/// an attach's default --timeout. One that hangs holds up nothing more.
const REPLAY_WAIT: Duration = crate::request::DHCP_TIMEOUT;

/// A recorded `pipework route|rule` line (its words after the guest, the
/// tool's first: `["route", "add", ...]`) made again in the guest `ns`, by
/// the watch service after a restart.
pub async fn replay(ns: BorrowedFd<'_>, line: &[String]) -> Result<()> {
    match line.split_first() {
        Some((word, args)) if word == "route" => in_guest(Tool::Route, ns, args, Some(REPLAY_WAIT)).await,
        Some((word, args)) if word == "rule" => in_guest(Tool::Rule, ns, args, Some(REPLAY_WAIT)).await,
        _ => Err(Error::new(Kind::Usage, format!("not a route or rule line: {}", line.join(" ")))),
    }
}

/// `limit`: how long the program it runs may take, if it runs one.
pub async fn in_guest(
    tool: Tool,
    ns: BorrowedFd<'_>,
    args: &[String],
    limit: Option<Duration>,
) -> Result<()> {
    match tool {
        Tool::Tc => run_in(ns, "tc", IPROUTE2, args, limit).await,
        Tool::Route => match parse_route(args) {
            Some(cmd) => {
                tracing::info!("ip route {}: native", args.join(" "));
                route(ns, &cmd).await
            }
            None => run_in(ns, "ip", IPROUTE2, &ip_argv("route", args), limit).await,
        },
        Tool::Rule => match parse_rule(args) {
            Some(cmd) => {
                tracing::info!("ip rule {}: native", args.join(" "));
                rule(ns, &cmd).await
            }
            None => run_in(ns, "ip", IPROUTE2, &ip_argv("rule", args), limit).await,
        },
    }
}

/// `ip [leading flags] <object> <rest>`.
pub fn ip_argv(object: &str, args: &[String]) -> Vec<String> {
    let flags = args.iter().take_while(|a| IP_FLAGS.contains(&a.as_str())).count();
    let mut argv: Vec<String> = args[..flags].to_vec();
    argv.push(object.to_string());
    argv.extend_from_slice(&args[flags..]);
    argv
}

async fn route(ns: BorrowedFd<'_>, cmd: &RouteCmd) -> Result<()> {
    let conn = Netlink::inside(ns)?;
    let oif = match &cmd.dev {
        None => None,
        Some(dev) => match conn.link(dev).await.ok().flatten() {
            Some(link) => Some(link.index),
            None => {
                // `ip`'s words and status.
                return Err(Error::verbatim(Kind::NotFound, format!("Cannot find device \"{dev}\"")));
            }
        },
    };
    let msg = cmd.message(oif);
    let msg = match cmd.op {
        RouteOp::Delete => RouteNetlinkMessage::DelRoute(msg),
        _ => RouteNetlinkMessage::NewRoute(msg),
    };
    conn.talk(msg, cmd.op.flags()).await.map_err(refused)
}

async fn rule(ns: BorrowedFd<'_>, cmd: &RuleCmd) -> Result<()> {
    let conn = Netlink::inside(ns)?;
    let msg = match cmd.op {
        RuleOp::Add => RouteNetlinkMessage::NewRule(cmd.message()),
        RuleOp::Delete => RouteNetlinkMessage::DelRule(cmd.message()),
    };
    conn.talk(msg, cmd.flags()).await.map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iproute2::parse::tests::words;

    #[test]
    fn ip_options_go_before_the_object() {
        assert_eq!(ip_argv("route", &words("show table all")), words("route show table all"));
        assert_eq!(ip_argv("route", &words("-6 -d show")), words("-6 -d route show"));
        assert_eq!(ip_argv("rule", &words("-n x show")), words("rule -n x show"));
    }
}
