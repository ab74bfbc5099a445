use std::process::ExitCode;

use pipework::cli;
use pipework::sys::output;

fn main() -> ExitCode {
    const ELEVATED: &str = "refusing to run setuid, setgid or with file capabilities: run it as root";
    // Run by a container runtime as a CNI plugin, it answers in CNI's terms.
    let plugin = pipework::cni::is_plugin_call();
    if elevated() {
        match plugin {
            true => return pipework::cni::refuse(ELEVATED),
            false => eprintln!("pipework: {ELEVATED}"),
        }
        return ExitCode::FAILURE;
    }
    if plugin {
        // Runtimes keep a plugin's stderr: RUST_LOG shows the steps there.
        init_logging(0, false, None);
        return pipework::cni::main();
    }
    let outcome = cli::parse(std::env::args_os().collect(), host_has).and_then(|inv| {
        if matches!(inv.request, pipework::request::Request::DhcpAgent(_)) {
            // Before the runtime opens its own fds, which would take fd 4
            // when nothing was handed over on it.
            pipework::dhcp::agent::close_handed_socket();
        }
        let agent_log = match &inv.request {
            pipework::request::Request::DhcpAgent(state) => Some(pipework::dhcp::log::Log::of_agent(state)),
            _ => None,
        };
        init_logging(inv.verbose, matches!(inv.request, pipework::request::Request::Watch(_)), agent_log);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(pipework::commands::run(inv))
    });
    match outcome {
        Ok(pipework::commands::Outcome::Done) => ExitCode::SUCCESS,
        Ok(pipework::commands::Outcome::Differs) => ExitCode::FAILURE,
        Err(e) => {
            // What the rollback could not undo, then why the run failed;
            // printing one (Display) puts `pipework: ` before words of our own.
            for failure in e.rollback() {
                output::warn(failure);
            }
            if !e.message().is_empty() {
                if !e.to_stdout() {
                    output::warn(&e);
                } else if let Err(write) = output::lines([e.to_string()]) {
                    output::warn(&write);
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::from(u8::try_from(e.code()).unwrap_or(1))
        }
    }
}

/// Whether this process got privileges its caller does not have (a setuid
/// or setgid binary, file capabilities): pipework would run `ip` and `tc`
/// and act on any namespace for them. Checked before anything else.
fn elevated() -> bool {
    // SAFETY: plain queries of this process's credentials and auxv.
    unsafe {
        libc::getauxval(libc::AT_SECURE) != 0
            || libc::geteuid() != libc::getuid()
            || libc::getegid() != libc::getgid()
    }
}

/// Whether this namespace has an interface of that name (SIOCGIFINDEX).
fn host_has(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// `-v` shows the steps, `-vv` the detail; RUST_LOG overrides both. Quiet
/// runs install nothing, which keeps an attach fast. The watch service
/// says what it did for each container, without each step, by default.
/// The DHCP agent writes to its log, kept under a cap.
fn init_logging(verbose: u8, service: bool, agent_log: Option<pipework::dhcp::log::Log>) {
    let level = match (verbose, service) {
        (0, true) => Some("pipework=info,pipework::apply=warn"),
        (0, false) => None,
        (1, _) => Some("pipework=info"),
        _ => Some("pipework=debug"),
    };
    let filter = match (std::env::var("RUST_LOG"), level) {
        (Ok(env), _) if !env.is_empty() => env,
        (_, Some(level)) => level.to_string(),
        _ => return,
    };
    let writer = match agent_log {
        Some(log) => tracing_subscriber::fmt::writer::BoxMakeWriter::new(log),
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        // Colours for a terminal; a service's log goes to a file or journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
