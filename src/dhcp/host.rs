//! `udhcpc[-f][:OPTS]`, `dhclient[-f][:OPTS]`, `dhcpcd`: the host's own
//! client run inside the guest's namespace (fork, setns, exec), with the
//! original's arguments and pidfiles. Unlike the original's, the client
//! runs in a mount namespace of its own where a file of the guest's is
//! bound over /etc/resolv.conf: its script writes the lease's DNS servers
//! there, never into the machine's resolv.conf.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use super::lease_file::{beside, LeaseFile};
use crate::error::{failed, Error, Kind, Result};
use crate::request::{Dhcp, DhcpClient};
use crate::sys::exec;

/// The Debian package of each client, for the "install" hint.
fn package(client: DhcpClient) -> &'static str {
    match client {
        DhcpClient::Dhclient => "isc-dhcp-client",
        DhcpClient::Dhcpcd => "dhcpcd-base",
        DhcpClient::Udhcpc | DhcpClient::Native => "udhcpc",
    }
}

/// The original's refusal when the client is missing, before anything
/// changes; one that is there but not root's own is refused as `exec` says.
pub fn check(client: DhcpClient) -> Result<()> {
    let program = client.program();
    let found = exec::search_dirs().iter().any(|dir| dir.join(program).exists());
    if !found {
        return Err(Error::verbatim(
            Kind::NotFound,
            format!("You asked for DHCP client {program}, but I can't find it."),
        ));
    }
    exec::find(program, package(client)).map(|_| ())
}

/// The original's command line for the client.
pub fn argv(dhcp: &Dhcp, ifname: &str, guest: &str) -> Vec<String> {
    let opts = dhcp.options.as_deref().unwrap_or("").split_whitespace().map(String::from);
    let mut argv: Vec<String> = match dhcp.client {
        DhcpClient::Udhcpc => {
            let mut v: Vec<String> =
                vec!["-qi".into(), ifname.into(), "-x".into(), format!("hostname:{guest}")];
            v.extend(["-p".into(), udhcpc_pidfile(guest)]);
            v.extend(opts);
            if dhcp.foreground {
                v.push("-f".into());
            }
            v
        }
        DhcpClient::Dhclient => {
            let mut v = vec![ifname.to_string(), "-pf".into(), dhclient_pidfile(guest)];
            v.extend(["-lf".into(), format!("/etc/dhclient/dhclient.{guest}.leases")]);
            v.extend(opts);
            v
        }
        // The original gives dhcpcd no OPTS.
        DhcpClient::Dhcpcd => vec!["-q".into(), ifname.into(), "-h".into(), guest.into()],
        DhcpClient::Native => Vec::new(),
    };
    argv.insert(0, dhcp.client.program().into());
    argv
}

fn udhcpc_pidfile(guest: &str) -> String {
    format!("/var/run/udhcpc.{guest}.pid")
}

fn dhclient_pidfile(guest: &str) -> String {
    format!("/var/run/dhclient.{guest}.pid")
}

/// The guest's own resolv.conf, which the client's script writes:
/// `<state dir>/dhcp/<netns inode>-<ifname>.resolv.conf`.
pub fn resolv_conf(netns_inode: u64, ifname: &str) -> PathBuf {
    beside(&LeaseFile::path_for(netns_inode, ifname), "resolv.conf")
}

/// Runs the client to its lease, with `resolv` over /etc/resolv.conf,
/// within the attach's `--timeout` (a server that never answers would
/// hold the run, and the watch service, forever), then does what the
/// original did after it: without `-f`, udhcpc's pidfile goes and dhclient
/// is stopped. A client that fails passes its exit status on, as the
/// original's `set -e` did.
pub async fn run(ns: BorrowedFd<'_>, dhcp: &Dhcp, argv: &[String], guest: &str, resolv: &Path) -> Result<()> {
    if dhcp.client == DhcpClient::Dhclient {
        // dhclient cannot write its lease file into a missing directory.
        std::fs::create_dir_all("/etc/dhclient")
            .map_err(|e| Error::from(e).context("creating /etc/dhclient"))?;
    }
    let dir = resolv.parent().unwrap_or(Path::new("/"));
    crate::records::private_files::make_dir(dir).map_err(|e| failed("creating", dir, e))?;
    crate::records::private_files::write(resolv, b"").map_err(|e| failed("writing", resolv, e))?;
    let path = exec::find(&argv[0], package(dhcp.client))?;
    let mut cmd = exec::command_in(ns, &path, &argv[1..]);
    exec::private_resolv_conf(&mut cmd, resolv)?;
    if let Err(e) = exec::status_within(cmd, &path, Some(dhcp.timeout)).await {
        let _ = std::fs::remove_file(resolv);
        // A client stopped before its lease leaves its pidfile.
        match dhcp.client {
            DhcpClient::Udhcpc => drop(std::fs::remove_file(udhcpc_pidfile(guest))),
            DhcpClient::Dhclient => drop(std::fs::remove_file(dhclient_pidfile(guest))),
            DhcpClient::Dhcpcd | DhcpClient::Native => {}
        }
        return Err(match e.kind() {
            Kind::ProgramFailed => {
                let code = e.code();
                Error::new(Kind::ProgramFailed, format!("{} exited with status {code}", argv[0]))
                    .with_status(code)
            }
            _ => e,
        });
    }
    if dhcp.foreground {
        return Ok(());
    }
    match dhcp.client {
        // udhcpc -q removes its own pidfile; the original's `rm` then
        // failed and made it exit 1. Gone is what we want.
        DhcpClient::Udhcpc => {
            let _ = std::fs::remove_file(udhcpc_pidfile(guest));
        }
        DhcpClient::Dhclient => {
            let pidfile = dhclient_pidfile(guest);
            // The daemon writes its pidfile after its parent has exited.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let pid = loop {
                let pid = std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok());
                if pid.is_some() || std::time::Instant::now() > deadline {
                    break pid;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            };
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = std::fs::remove_file(pidfile);
        }
        DhcpClient::Dhcpcd | DhcpClient::Native => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dhcp(client: DhcpClient, foreground: bool, options: Option<&str>) -> Dhcp {
        Dhcp { client, foreground, options: options.map(String::from), timeout: crate::request::DHCP_TIMEOUT }
    }

    #[test]
    fn the_original_command_lines() {
        assert_eq!(
            argv(&dhcp(DhcpClient::Udhcpc, true, Some("-t 2")), "eth1", "web").join(" "),
            "udhcpc -qi eth1 -x hostname:web -p /var/run/udhcpc.web.pid -t 2 -f"
        );
        assert_eq!(
            argv(&dhcp(DhcpClient::Dhclient, false, None), "eth1", "web").join(" "),
            "dhclient eth1 -pf /var/run/dhclient.web.pid -lf /etc/dhclient/dhclient.web.leases"
        );
        assert_eq!(
            argv(&dhcp(DhcpClient::Dhcpcd, false, None), "eth2", "db").join(" "),
            "dhcpcd -q eth2 -h db"
        );
    }
}
