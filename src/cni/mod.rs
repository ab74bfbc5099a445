//! pipework as a CNI plugin (spec 1.1.0): when CNI_COMMAND is set, the
//! binary reads the runtime's environment and network configuration and
//! answers on stdout, with a result or a CNI error object.

pub mod add;
pub mod check;
pub mod config;
pub mod del;
pub mod env;
pub mod error;
pub mod ipam;
pub mod netfilter;
pub mod records;
pub mod result;
pub mod steps;
pub mod version;

use std::io::Read;
use std::process::ExitCode;

use serde_json::json;

use config::NetConf;
use env::{Command, Env};
use error::{CniError, Code};
use version::{Version, LATEST, SUPPORTED};

/// Whether the process was started as a CNI plugin.
pub fn is_plugin_call() -> bool {
    Env::is_plugin_call(|k| std::env::var(k).ok())
}

/// The plugin's whole run: its answer on stdout, its status as exit code.
pub fn main() -> ExitCode {
    // A configuration is a few KiB: read in one call, not grown from 32 bytes.
    let mut stdin = Vec::with_capacity(64 * 1024);
    let read = std::io::stdin().read_to_end(&mut stdin);
    let outcome = read
        .map_err(|e| {
            CniError::new(Code::Io, "failed to read the network configuration from stdin")
                .with_details(e.to_string())
        })
        .and_then(|_| Env::read(|k| std::env::var(k).ok()))
        .and_then(|env| run(&env, &stdin));
    match outcome {
        Ok(Some(answer)) => answer_with(&answer.to_string(), ExitCode::SUCCESS),
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => answer_with(&e.to_json(&config::version_hint(&stdin)).to_string(), ExitCode::FAILURE),
    }
}

/// A refusal before anything is read (how the binary was started).
pub fn refuse(msg: &str) -> ExitCode {
    answer_with(&CniError::new(Code::Internal, msg).to_json(LATEST.as_str()).to_string(), ExitCode::FAILURE)
}

/// The answer on stdout, then `status`; a stdout that cannot take it is a
/// failure, told on stderr (the only place left).
fn answer_with(json: &str, status: ExitCode) -> ExitCode {
    match crate::sys::output::lines([json]) {
        Ok(()) => status,
        Err(e) => {
            crate::sys::output::warn(&e);
            ExitCode::FAILURE
        }
    }
}

/// One command; `Some` is what to print on success.
fn run(env: &Env, stdin: &[u8]) -> Result<Option<serde_json::Value>, CniError> {
    if env.command == Command::Version {
        let versions: Vec<&str> = SUPPORTED.iter().map(|v| v.as_str()).collect();
        return Ok(Some(json!({"cniVersion": LATEST.as_str(), "supportedVersions": versions})));
    }
    let conf = NetConf::parse(stdin, env)?;
    refuse_older(env.command, conf.version)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(Code::Internal, "failed to start").with_details(e.to_string()))?;
    runtime.block_on(async {
        if matches!(env.command, Command::Add | Command::Del | Command::Check) {
            recover(env).await?;
        }
        match env.command {
            Command::Add => add::add(env, &conf).await.map(|out| Some(out.to_json(conf.version))),
            Command::Del => del::del(env, &conf).await.map(|()| None),
            Command::Check => check::check(env, &conf).await.map(|()| None),
            Command::Status => check::status(env, &conf).await.map(|()| None),
            Command::Gc => del::gc(env, &conf).await.map(|()| None),
            Command::Version => Ok(None),
        }
    })
}

/// Rolls back this container's runs killed half-way (`intents`), before
/// its ADD, DEL or CHECK: a runtime's next word on a container after a
/// killed ADD is one of them.
async fn recover(env: &Env) -> Result<(), CniError> {
    let host = crate::sys::netlink::Netlink::here()?;
    let key = crate::records::Finder::cni_key(&env.container_id);
    let store = crate::records::Store::from_env();
    let left = crate::intents::recover(&store, &host, crate::intents::Scope::Guest(&key)).await?;
    crate::intents::report(&left);
    Ok(())
}

/// CHECK came with 0.4.0, STATUS and GC with 1.1.0: a configuration of an
/// older version cannot ask for them.
fn refuse_older(command: Command, version: Version) -> Result<(), CniError> {
    let allowed = match command {
        Command::Check => version.has_check(),
        Command::Status | Command::Gc => version.has_status_and_gc(),
        _ => true,
    };
    match allowed {
        true => Ok(()),
        false => Err(CniError::new(
            Code::IncompatibleVersion,
            format!("config version {version} does not allow {}", command.as_str()),
        )),
    }
}
