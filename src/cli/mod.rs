//! The command line: one clap definition (`definition`) that parses, prints
//! `--help` and renders the man page, plus the original's positional
//! grammar on top (here, with `words`); `manual` is the man page's prose.

pub mod completions;
mod definition;
pub mod manual;
pub mod words;

use std::ffi::OsString;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::request::{
    self, Addressing, Attach, DhcpClient, GuestRef, HostIf, LoopRequest, Mkbridge, Request, Watch,
};
use definition::CompanionCli;
pub use definition::{
    command, Cli, Companion, DetachArgs, LoopCommand, MkbridgeArgs, RecordsArgs, WatchArgs, SYNTAX, TOOLS,
};

const TIMEOUT_WITHOUT_USE: &str = "--timeout applies to --wait and to DHCP";

/// What to do, and how loudly.
#[derive(Debug)]
pub struct Invocation {
    pub request: Request,
    pub verbose: u8,
    pub dry_run: bool,
}

/// Parses argv. `host_has(name)` tells whether the host has an interface of
/// that name: `route`, `rule` and `tc` are words only when it does not.
pub fn parse(argv: Vec<OsString>, host_has: impl Fn(&str) -> bool) -> Result<Invocation> {
    // The DHCP agent, started by pipework itself: not part of the grammar.
    if argv.len() == 3 && argv[1] == crate::dhcp::agent::WORD {
        let request = Request::DhcpAgent(argv[2].clone().into());
        return Ok(Invocation { request, verbose: 1, dry_run: false });
    }
    if let Some(inv) = parse_passthrough(&argv, &host_has)? {
        return Ok(inv);
    }
    // The companion words are the subcommands clap knows: a new one needs no list.
    if first_word(&argv).is_some_and(|w| Companion::has_subcommand(&w) && !host_has(&w)) {
        return parse_companion(argv);
    }
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        // The attach parser knows no companions; the help lists them.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok(help(command().render_help().to_string()));
        }
        Err(e) => return clap_error(e),
    };
    let family =
        cli.family.as_deref().map(Family::parse).transpose().map_err(|e| Error::verbatim(Kind::Usage, e))?;
    let (verbose, dry_run) = (cli.verbose, cli.dry_run);
    if let Some(name) = &cli.container_if {
        request::check_ifname(name).map_err(words::usage)?;
    }
    let timeout = cli
        .timeout
        .map(|s| match Duration::try_from_secs_f64(s) {
            Ok(d) if d <= request::MAX_WAIT => Ok(d),
            // Beyond a Duration (1e20) as well: out of range, not malformed.
            Ok(_) | Err(_) if s.is_finite() && s > 0.0 => Err(Error::new(
                Kind::Usage,
                format!("--timeout {s} is out of range (at most {} s)", request::MAX_WAIT.as_secs()),
            )),
            Ok(_) | Err(_) => Err(Error::new(Kind::Usage, format!("invalid --timeout '{s}'"))),
        })
        .transpose()?;
    if cli.wait {
        let ifname = cli.container_if.unwrap_or_else(|| "eth1".into());
        return Ok(Invocation { request: Request::Wait { ifname, timeout }, verbose, dry_run });
    }
    if timeout.is_some() && cli.ip.is_none() {
        return Err(Error::new(Kind::Usage, TIMEOUT_WITHOUT_USE));
    }
    let (Some(host_if), Some(guest), Some(ip)) = (cli.host_if, cli.guest, cli.ip) else {
        return Err(syntax());
    };
    if let Some(name) = &cli.local_if {
        request::check_ifname(name).map_err(words::usage)?;
    }
    let host = match host_if.strip_prefix("mac:") {
        Some(mac) => {
            let parsed =
                mac.parse().map_err(|_| Error::new(Kind::Usage, format!("invalid MAC address '{mac}'")))?;
            HostIf::Mac(parsed, mac.to_string())
        }
        None => {
            request::check_ifname(&host_if).map_err(words::usage)?;
            HostIf::Name(host_if)
        }
    };
    let mut addr = words::parse_addressing(&ip, family)?;
    match (&mut addr, timeout) {
        (Addressing::Dhcp(dhcp), Some(limit)) => dhcp.timeout = limit,
        (_, Some(_)) => return Err(Error::new(Kind::Usage, TIMEOUT_WITHOUT_USE)),
        _ => {}
    }
    if cli.resolv_conf {
        resolv_conf_applies(&addr)?;
    }
    let guest = GuestRef::parse(&guest)?;
    let (mac, tag) = match &cli.mac_vlan {
        Some(arg) => words::parse_mac_vlan(arg)?,
        None => (None, None),
    };
    let attach = Attach {
        host,
        direct_phys: cli.direct_phys,
        container_if: cli.container_if,
        local_if: cli.local_if,
        guest,
        addr,
        mac,
        tag,
        vlan_filtering: cli.vlan_filtering,
        no_firewall: cli.no_firewall,
        more_addresses: Vec::new(),
        macvlan_mode: cli.macvlan_mode.as_deref().map(request::MacvlanMode::parse).transpose()?,
        host_access: cli.host_access,
        resolv_conf: cli.resolv_conf,
    };
    Ok(Invocation { request: Request::Attach(attach), verbose, dry_run })
}

/// `--resolv-conf` takes the native client's lease: a host client's script
/// writes its own copy of resolv.conf, and a static address has none.
fn resolv_conf_applies(addr: &Addressing) -> Result<()> {
    match addr {
        Addressing::Dhcp(d) if d.client == DhcpClient::Native => Ok(()),
        Addressing::Dhcp(d) => Err(Error::new(
            Kind::Usage,
            format!("--resolv-conf works with the native DHCP client (dhcp), not {}", d.client.program()),
        )),
        _ => Err(Error::new(Kind::Usage, "--resolv-conf applies to a DHCP address (dhcp[:OPTS])")),
    }
}

/// `pipework [-v] route|rule|tc <guest> <args...>`: everything after the
/// guest belongs to the tool, dashes included, so clap never sees it.
fn parse_passthrough(argv: &[OsString], host_has: &impl Fn(&str) -> bool) -> Result<Option<Invocation>> {
    let args: Vec<String> = argv.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let verbose =
        args.iter().take_while(|a| is_verbose_flag(a)).fold(0u8, |v, a| v.saturating_add(verbosity(a)));
    let mut words = args.iter().skip_while(|a| is_verbose_flag(a));
    let Some(word) = words.next() else { return Ok(None) };
    let Some(&(_, tool)) = TOOLS.iter().find(|(prefix, _)| word.starts_with(prefix)) else {
        return Ok(None);
    };
    if host_has(word) {
        return Ok(None);
    }
    let rest: Vec<String> = words.cloned().collect();
    let Some((guest, args)) = rest.split_first().filter(|(_, args)| !args.is_empty()) else {
        return Err(syntax());
    };
    let request = Request::Passthrough { tool, guest: GuestRef::parse(guest)?, args: args.to_vec() };
    Ok(Some(Invocation { request, verbose, dry_run: false }))
}

fn is_verbose_flag(arg: &str) -> bool {
    arg == "--verbose" || (arg.len() > 1 && arg.starts_with('-') && arg[1..].chars().all(|c| c == 'v'))
}

fn verbosity(flag: &str) -> u8 {
    if flag == "--verbose" {
        1
    } else {
        u8::try_from(flag.len() - 1).unwrap_or(u8::MAX)
    }
}

/// The first word after any leading `-v` flags.
fn first_word(argv: &[OsString]) -> Option<String> {
    argv.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).find(|a| !is_verbose_flag(a))
}

fn parse_companion(argv: Vec<OsString>) -> Result<Invocation> {
    let cli = match CompanionCli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let (request, dry_run) = match cli.companion {
        Companion::Mkbridge(m) => {
            request::check_ifname(&m.bridge).map_err(words::usage)?;
            request::check_ifname(&m.iface).map_err(words::usage)?;
            let req = Mkbridge {
                bridge: m.bridge,
                iface: m.iface,
                stp: m.stp == "on",
                forward_delay: m.forward_delay,
                no_firewall: m.no_firewall,
            };
            (Request::Mkbridge(req), m.dry_run)
        }
        Companion::Loop { command: LoopCommand::Free { dev } } => {
            (Request::Loop(LoopRequest::Free { dev }), false)
        }
        Companion::Loop { command: LoopCommand::Ensure { count, dev, container } } => {
            let container = container.as_deref().map(GuestRef::parse).transpose()?;
            (Request::Loop(LoopRequest::Ensure { count, dev, container }), false)
        }
        Companion::Completions { shell } => (Request::Completions(shell), false),
        Companion::Show(RecordsArgs { guest, json }) => {
            (Request::Show { guest: guest.as_deref().map(GuestRef::parse).transpose()?, json }, false)
        }
        Companion::Check(RecordsArgs { guest, json }) => {
            (Request::Check { guest: guest.as_deref().map(GuestRef::parse).transpose()?, json }, false)
        }
        Companion::Detach(DetachArgs { guest, container_if, dry_run }) => {
            if let Some(name) = &container_if {
                request::check_ifname(name).map_err(words::usage)?;
            }
            (Request::Detach { guest: GuestRef::parse(&guest)?, ifname: container_if }, dry_run)
        }
        Companion::Watch(WatchArgs { only, allow, no_firewall, no_repair }) => {
            for name in &allow {
                request::check_ifname(name).map_err(words::usage)?;
            }
            (Request::Watch(Watch { only, allow, no_firewall, no_repair }), false)
        }
    };
    Ok(Invocation { request, verbose: cli.verbose, dry_run })
}

/// The original's usage text: on stdout, exit 1.
fn syntax() -> Error {
    Error::verbatim(Kind::Usage, SYNTAX).on_stdout()
}

/// clap's own errors, made to exit 1 like every other refusal; help and
/// version are not errors: a request to print them.
fn clap_error(e: clap::Error) -> Result<Invocation> {
    use clap::error::ErrorKind::*;
    Err(match e.kind() {
        DisplayHelp | DisplayVersion => return Ok(help(e.render().to_string())),
        // `pipework` alone: the original's usage text.
        DisplayHelpOnMissingArgumentOrSubcommand => syntax(),
        _ => {
            // clap's message runs until its usage block: keep all of it.
            let text = e.to_string();
            let detail: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let detail = detail.join(" ");
            Error::new(Kind::Usage, format!("{}\n{SYNTAX}", detail.trim_start_matches("error: ")))
        }
    })
}

/// `--help` or `--version`: their text, printed as a command's output.
fn help(text: String) -> Invocation {
    Invocation { request: Request::Help(text), verbose: 0, dry_run: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Tool;

    fn parse_words(line: &str) -> Result<Invocation> {
        let argv = std::iter::once("pipework").chain(line.split_whitespace()).map(OsString::from).collect();
        parse(argv, |name| name == "tc0" || name == "loop")
    }

    fn attach(line: &str) -> Attach {
        match parse_words(line).unwrap().request {
            Request::Attach(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watch_takes_the_host_interfaces_labels_may_use() {
        let watch = |line: &str| match parse_words(line).map(|inv| inv.request) {
            Ok(Request::Watch(w)) => Ok(w),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        let w = watch("watch --allow br0 --only a=b --allow ovs1").unwrap();
        assert_eq!((w.only, w.allow), (vec!["a=b".to_string()], vec!["br0".to_string(), "ovs1".to_string()]));
        assert_eq!(watch("watch").unwrap().allow, Vec::<String>::new());
        assert_eq!(
            watch("watch --allow abcdefghijklmnop").unwrap_err(),
            "pipework: interface name 'abcdefghijklmnop' is longer than 15 bytes"
        );
    }

    #[test]
    fn runbook_line() {
        let a = attach("br0 xcatmn 10.5.106.101/24@10.5.106.1");
        assert_eq!(a.host, HostIf::Name("br0".into()));
        assert_eq!(a.guest, GuestRef::Name("xcatmn".into()));
        assert!(matches!(a.addr, Addressing::Static { gateway: Some(_), .. }));
        assert_eq!((a.container_if, a.local_if, a.mac, a.tag), (None, None, None, None));
    }

    #[test]
    fn options_in_the_original_order_and_any_other() {
        let a = attach("br1 -i eth2 -l vethweb -a 4 web 192.168.4.25/20@192.168.4.1 U:web");
        let b = attach("-l vethweb br1 web -a inet -i eth2 192.168.4.25/20@192.168.4.1 U:web");
        assert_eq!(a, b);
        assert_eq!(a.container_if.as_deref(), Some("eth2"));
        assert_eq!(a.local_if.as_deref(), Some("vethweb"));
    }

    #[test]
    fn missing_ip_prints_syntax_on_stdout() {
        let e = parse_words("br0 c1").unwrap_err();
        assert!(
            e.to_stdout() && e.code() == 1 && e.message().starts_with("Syntax:\npipework <hostinterface>")
        );
    }

    #[test]
    fn bad_family_is_the_original_message() {
        assert_eq!(parse_words("br0 -a 5 c1 10.0.0.1/24").unwrap_err().message(), "Invalid family: 5");
    }

    #[test]
    fn passthrough_keeps_dashes_and_yields_to_real_interfaces() {
        let inv = parse_words("-v tc c1 -s qdisc show").unwrap();
        assert_eq!(inv.verbose, 1);
        assert_eq!(
            inv.request,
            Request::Passthrough {
                tool: Tool::Tc,
                guest: GuestRef::Name("c1".into()),
                args: vec!["-s".into(), "qdisc".into(), "show".into()]
            }
        );
        // A host interface named tc0 is a host interface, not the tc word.
        assert!(matches!(parse_words("tc0 c1 10.0.0.1/24").unwrap().request, Request::Attach(_)));
        assert!(parse_words("route c1").unwrap_err().to_stdout());
    }

    #[test]
    fn vlan_filtering_is_asked_for_only_by_its_option() {
        assert!(!attach("br0 -i eth2 c1 10.0.0.2/24@10.0.0.1 02:00:00:00:00:01@10").vlan_filtering);
        let a = attach("br0 c1 10.0.0.2/24 @10 --vlan-filtering");
        assert!(a.vlan_filtering && a.tag == Some(crate::request::Tag("10".into())));
        assert_eq!(a, attach("--vlan-filtering br0 c1 10.0.0.2/24 @10"));
    }

    #[test]
    fn wait_and_mac_selection() {
        assert_eq!(
            parse_words("--wait -i eth3 --timeout 2").unwrap().request,
            Request::Wait { ifname: "eth3".into(), timeout: Some(Duration::from_secs(2)) }
        );
        let a = attach("mac:02:AB:cd:00:00:01 c1 10.0.0.2/24");
        assert_eq!(a.host, HostIf::Mac("02:ab:cd:00:00:01".parse().unwrap(), "02:AB:cd:00:00:01".into()));
    }

    #[test]
    fn long_names_refused_before_anything() {
        let e = parse_words("br0 -i abcdefghijklmnop c1 10.0.0.2/24").unwrap_err();
        assert_eq!(e.to_string(), "pipework: interface name 'abcdefghijklmnop' is longer than 15 bytes");
    }

    #[test]
    fn companions_are_words_unless_an_interface_has_the_name() {
        let inv = parse_words("-v mkbridge --dry-run br0 eth0").unwrap();
        assert!(inv.dry_run && inv.verbose == 1);
        assert_eq!(
            inv.request,
            Request::Mkbridge(Mkbridge {
                bridge: "br0".into(),
                iface: "eth0".into(),
                stp: false,
                forward_delay: None,
                no_firewall: false,
            })
        );
        // This host has an interface named `loop`: the line is an attach.
        assert!(matches!(parse_words("loop c1 10.0.0.1/24").unwrap().request, Request::Attach(_)));
        assert!(parse_words("mkbridge br0").is_err());
    }

    #[test]
    fn record_commands() {
        assert_eq!(parse_words("show").unwrap().request, Request::Show { guest: None, json: false });
        assert_eq!(
            parse_words("check xcatmn --json").unwrap().request,
            Request::Check { guest: Some(GuestRef::Name("xcatmn".into())), json: true }
        );
        let inv = parse_words("detach --dry-run xcatmn -i eth2").unwrap();
        assert!(inv.dry_run);
        assert_eq!(
            inv.request,
            Request::Detach { guest: GuestRef::Name("xcatmn".into()), ifname: Some("eth2".into()) }
        );
        assert!(parse_words("detach").is_err());
        assert!(parse_words("detach c1 -i abcdefghijklmnop").is_err());
    }

    #[test]
    fn clap_refusals_keep_their_detail() {
        let e = parse_words("--wait --bogus").unwrap_err();
        let first = e.to_string();
        let first = first.lines().next().unwrap();
        assert_eq!(first, "pipework: unexpected argument '--bogus' found");
    }

    #[test]
    fn timeout_is_for_wait_and_dhcp() {
        let e = parse_words("--timeout 1 br0 c1 10.0.0.2/24").unwrap_err();
        assert_eq!(e.to_string(), "pipework: --timeout applies to --wait and to DHCP");
        let e = parse_words("--timeout 1 -i eth1").unwrap_err();
        assert_eq!(e.to_string(), "pipework: --timeout applies to --wait and to DHCP");
        let a = attach("--timeout 2.5 br0 c1 dhcp");
        assert!(matches!(a.addr, Addressing::Dhcp(d) if d.timeout == Duration::from_millis(2500)));
    }
}
