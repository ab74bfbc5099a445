//! Delegated IPAM, as the spec has it: the plugin the configuration names
//! (`ipam.type`), found in CNI_PATH, run with the same configuration on
//! stdin and the same CNI variables. The user names the program, so this is
//! one of the places pipework runs one: directly, no shell, with only the
//! CNI variables and a fixed PATH, and only if root alone can change it.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

use serde_json::Value;

use super::env::{Command, Env};
use super::error::{CniError, CniResult, Code};
use super::result::CniOutput;
use super::version::SUPPORTED;

/// How long an IPAM plugin may take to answer and exit: 60 s, well within
/// the few minutes a runtime gives the whole ADD, so that a plugin that
/// hangs (a DHCP IPAM daemon with no server) fails the ADD with an error
/// of our own, code 11, try again later, and is killed, not left behind.
const DEADLINE: Duration = Duration::from_secs(60);

/// The deadline: test builds may shorten it (PIPEWORK_TEST_IPAM_DEADLINE,
/// seconds); release builds carry no such hook.
fn deadline() -> Duration {
    #[cfg(feature = "failpoints")]
    if let Some(secs) = std::env::var("PIPEWORK_TEST_IPAM_DEADLINE").ok().and_then(|s| s.parse().ok()) {
        return Duration::from_secs_f64(secs);
    }
    DEADLINE
}

/// A plugin started, and when it must have answered and exited.
struct Running {
    child: Child,
    limit: Duration,
    deadline: Instant,
}

impl Running {
    fn new(child: Child, limit: Duration) -> Running {
        Running { child, limit, deadline: Instant::now() + limit }
    }

    fn timeout(&self) -> PollTimeout {
        until(self.deadline)
    }
}

/// poll()'s wait until `deadline`.
fn until(deadline: Instant) -> PollTimeout {
    let left = deadline.saturating_duration_since(Instant::now());
    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
}

/// An IPAM plugin found on CNI_PATH.
#[derive(Debug, Clone)]
pub struct Ipam {
    pub name: String,
    pub program: PathBuf,
}

impl Ipam {
    /// The first executable file named `name` in CNI_PATH's directories.
    pub fn find(name: &str, path: &[PathBuf]) -> CniResult<Ipam> {
        let program = path.iter().map(|dir| dir.join(name)).find(|candidate| is_executable(candidate));
        if let Some(program) = &program {
            crate::sys::exec::trusted(program).map_err(|why| {
                CniError::new(
                    Code::InvalidConfig,
                    format!("refusing to run IPAM plugin {}", program.display()),
                )
                .with_details(why)
            })?;
        }
        program.map(|program| Ipam { name: name.to_string(), program }).ok_or_else(|| {
            let dirs: Vec<String> = path.iter().map(|d| d.display().to_string()).collect();
            CniError::new(
                Code::InvalidConfig,
                format!("failed to find IPAM plugin \"{name}\" in CNI_PATH [{}]", dirs.join(" ")),
            )
        })
    }

    /// ADD started: the plugin runs while the caller does what does not
    /// need its addresses (making the links).
    pub fn start_add<'i>(&'i self, env: &'i Env, stdin: &'i [u8]) -> CniResult<PendingAdd<'i>> {
        Ok(PendingAdd { ipam: self, env, stdin, child: self.start(Command::Add, env, stdin)? })
    }

    /// DEL, CHECK, GC or STATUS: success or the plugin's error.
    pub fn call(&self, command: Command, env: &Env, stdin: &[u8]) -> CniResult<()> {
        self.exec(command, env, stdin).map(drop)
    }

    /// The versions the plugin speaks (its VERSION answer).
    pub fn versions(&self, env: &Env) -> CniResult<Vec<String>> {
        let out = self.exec(Command::Version, env, b"{\"cniVersion\":\"1.1.0\"}")?;
        let value: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        Ok(value["supportedVersions"]
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default())
    }

    /// Runs the plugin; one that does not speak the configuration's version
    /// (host-local 1.1.1 and a 1.1.0 configuration) is asked again in the
    /// newest version both speak: results of 0.3.0 and later read the same.
    fn exec(&self, command: Command, env: &Env, stdin: &[u8]) -> CniResult<Vec<u8>> {
        self.or_older(command, env, stdin, self.run(command, env, stdin))
    }

    fn or_older(
        &self,
        command: Command,
        env: &Env,
        stdin: &[u8],
        first: CniResult<Vec<u8>>,
    ) -> CniResult<Vec<u8>> {
        match first {
            Err(e) if e.code == Code::IncompatibleVersion as u32 && command != Command::Version => {
                let mut conf: Value = serde_json::from_slice(stdin).map_err(|_| e.clone())?;
                let asked = conf["cniVersion"].as_str().unwrap_or_default().to_string();
                let theirs = self.versions(env)?;
                let common = SUPPORTED
                    .iter()
                    .rev()
                    .map(|v| v.as_str())
                    .skip_while(|v| *v != asked)
                    .find(|v| theirs.iter().any(|t| t == v));
                let Some(common) = common else {
                    return Err(e);
                };
                conf["cniVersion"] = Value::String(common.to_string());
                self.run(command, env, conf.to_string().as_bytes())
            }
            other => other,
        }
    }

    /// Runs the plugin for `command` with `env`'s variables and `stdin`;
    /// a failure is the plugin's own error object, passed on.
    fn run(&self, command: Command, env: &Env, stdin: &[u8]) -> CniResult<Vec<u8>> {
        self.finish(self.start(command, env, stdin)?)
    }

    /// The plugin started, its stdin written and closed. Configurations are
    /// far below a pipe's capacity, so the write does not wait for it.
    fn start(&self, command: Command, env: &Env, stdin: &[u8]) -> CniResult<Running> {
        let args: Vec<String> = env.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let path: Vec<String> = env.path.iter().map(|d| d.display().to_string()).collect();
        let mut cmd = Process::new(&self.program);
        cmd.env_clear()
            .env("PATH", crate::sys::exec::CHILD_PATH)
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &env.container_id)
            .env("CNI_NETNS", &env.netns)
            .env("CNI_IFNAME", &env.ifname)
            .env("CNI_ARGS", args.join(";"))
            .env("CNI_PATH", path.join(":"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: killed at the deadline with what it started.
            .process_group(0);
        // Not with the signals the transaction holds.
        crate::sys::exec::default_signals(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            CniError::new(Code::Io, format!("failed to run IPAM plugin {}", self.program.display()))
                .with_details(crate::error::Error::from(e).message().to_string())
        })?;
        // A plugin that exits without reading stdin closes the pipe: its
        // exit status and output tell what happened, not the write error.
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin);
        }
        Ok(Running::new(child, deadline()))
    }

    fn finish(&self, run: Running) -> CniResult<Vec<u8>> {
        finish(&self.name, run, Vec::new(), Vec::new())
    }
}

/// Waits for the plugin's exit, until its deadline; its stdout, or its
/// error. `out` and `err` are what was read of its stdout and stderr
/// already. One past its deadline is killed and reaped.
fn finish(name: &str, mut run: Running, mut out: Vec<u8>, mut err: Vec<u8>) -> CniResult<Vec<u8>> {
    let status = exit_by_deadline(&mut run, &mut out, &mut err).map_err(|e| {
        CniError::new(Code::Io, format!("failed to wait for IPAM plugin {name}")).with_details(e.to_string())
    })?;
    match status {
        Some(status) if status.success() => Ok(out),
        Some(_) => Err(plugin_error(name, &out, &err)),
        None => {
            let pgid = run.child.id() as libc::pid_t;
            // SAFETY: kill takes a process group and a signal.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = run.child.wait();
            let within = crate::request::seconds(run.limit);
            Err(CniError::new(
                Code::TryAgainLater,
                format!("IPAM plugin {name} did not answer within {within} s: killed"),
            ))
        }
    }
}

/// Reads the rest of the plugin's stdout and stderr, then waits for its
/// exit: its status, or None when the deadline came first.
fn exit_by_deadline(
    run: &mut Running,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> std::io::Result<Option<ExitStatus>> {
    let (mut stdout, mut stderr) = (run.child.stdout.take(), run.child.stderr.take());
    while stdout.is_some() || stderr.is_some() {
        let (out_ready, err_ready) = {
            let mut fds = Vec::new();
            let pipes = [stdout.as_ref().map(AsFd::as_fd), stderr.as_ref().map(AsFd::as_fd)];
            for fd in pipes.iter().flatten() {
                fds.push(PollFd::new(*fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, run.timeout()) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready =
                |fd: Option<&PollFd>| fd.is_some_and(|fd| fd.revents().is_some_and(|r| !r.is_empty()));
            let out_ready = stdout.is_some() && ready(fds.first());
            let err_ready = stderr.is_some() && ready(fds.get(usize::from(stdout.is_some())));
            (out_ready, err_ready)
        };
        if out_ready {
            read_some(&mut stdout, out)?;
        }
        if err_ready {
            read_some(&mut stderr, err)?;
        }
    }
    // Both closed: the exit is near, but a plugin may close them and hang.
    let process = crate::sys::process::Process::open(run.child.id().into())?;
    loop {
        match poll(&mut [PollFd::new(process.pidfd(), PollFlags::POLLIN)], run.timeout()) {
            Ok(0) => return Ok(None),
            Ok(_) => return run.child.wait().map(Some),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// An IPAM ADD under way.
pub struct PendingAdd<'i> {
    ipam: &'i Ipam,
    env: &'i Env,
    stdin: &'i [u8],
    child: Running,
}

impl PendingAdd<'_> {
    /// Waits for the plugin's answer: the addresses, routes and DNS it
    /// allocated, as soon as its result is whole on stdout. Its exit, which
    /// a busy kernel takes its time over (a Go program's threads each end
    /// in turn), is left to `Exit::confirm`, before anything is committed.
    pub fn answer(self) -> CniResult<(CniOutput, Exit)> {
        let PendingAdd { ipam, env, stdin, mut child } = self;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let what = format!("result of IPAM plugin {}", ipam.name);
        if let Ok(Some(value)) = whole_result(&mut child, &mut out, &mut err) {
            let exit = Exit { name: ipam.name.clone(), child: Some(child), out, err };
            return match CniOutput::parse(&value, &what) {
                Ok(parsed) => Ok((parsed, exit)),
                // Not left a zombie: its exit, whatever it is, changes nothing.
                Err(e) => {
                    let _ = exit.confirm();
                    Err(e)
                }
            };
        }
        let first = finish(&ipam.name, child, out, err);
        let out = ipam.or_older(Command::Add, env, stdin, first)?;
        let value: Value = serde_json::from_slice(&out).map_err(|e| {
            CniError::new(Code::Decoding, format!("failed to decode the {what}")).with_details(e.to_string())
        })?;
        let exited = Exit { name: ipam.name.clone(), child: None, out: Vec::new(), err: Vec::new() };
        Ok((CniOutput::parse(&value, &what)?, exited))
    }
}

/// An IPAM plugin that has answered, until its exit status is known.
pub struct Exit {
    name: String,
    /// None once it has exited.
    child: Option<Running>,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl Exit {
    /// Waits for the exit: a plugin succeeded only if it exits with 0.
    pub fn confirm(self) -> CniResult<()> {
        match self.child {
            Some(child) => finish(&self.name, child, self.out, self.err).map(drop),
            None => Ok(()),
        }
    }
}

/// Reads the plugin's stdout until it holds one whole JSON object that is
/// not an error object, and stderr meanwhile (a plugin that writes much
/// there would stall otherwise). None: stdout ended first, or held
/// something else; the exit status and all the output will tell.
fn whole_result(run: &mut Running, out: &mut Vec<u8>, err: &mut Vec<u8>) -> std::io::Result<Option<Value>> {
    let deadline = run.deadline;
    let (Some(stdout), Some(stderr)) = (run.child.stdout.as_mut(), run.child.stderr.as_mut()) else {
        return Ok(None);
    };
    let mut open = [true, true];
    let mut buf = [0u8; 4096];
    while open[0] {
        let (out_ready, err_ready) = {
            let mut fds = vec![PollFd::new(stdout.as_fd(), PollFlags::POLLIN)];
            if open[1] {
                fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, until(deadline)) {
                // The deadline: `finish` kills it.
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if err_ready {
            match stderr.read(&mut buf)? {
                0 => open[1] = false,
                n => err.extend_from_slice(&buf[..n]),
            }
        }
        if out_ready {
            match stdout.read(&mut buf)? {
                0 => open[0] = false,
                n => {
                    out.extend_from_slice(&buf[..n]);
                    match serde_json::from_slice::<Value>(out) {
                        Ok(v) if v.is_object() && v.get("code").is_none() => return Ok(Some(v)),
                        Err(e) if e.is_eof() => {}
                        _ => return Ok(None),
                    }
                }
            }
        }
    }
    Ok(None)
}

/// What `pipe` has ready, into `into`; at its end, the pipe dropped.
fn read_some(pipe: &mut Option<impl Read>, into: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    if let Some(reader) = pipe.as_mut() {
        match reader.read(&mut buf)? {
            0 => *pipe = None,
            n => into.extend_from_slice(&buf[..n]),
        }
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The plugin's error object, or its stderr when it printed none.
fn plugin_error(name: &str, stdout: &[u8], stderr: &[u8]) -> CniError {
    let object: Option<Value> = serde_json::from_slice(stdout).ok();
    match object.as_ref().and_then(|o| Some((o.get("code")?.as_u64()?, o.get("msg")?.as_str()?))) {
        Some((code, msg)) => {
            let details = object.as_ref().and_then(|o| o.get("details")?.as_str()).unwrap_or_default();
            CniError::from_plugin(code as u32, format!("IPAM plugin {name}: {msg}"), details.to_string())
        }
        None => {
            let text = String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr });
            CniError::new(Code::Internal, format!("IPAM plugin {name} failed"))
                .with_details(text.trim().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_plugins_error_object_on() {
        let e = plugin_error("host-local", br#"{"code": 11, "msg": "busy", "details": "d"}"#, b"");
        assert_eq!((e.code, e.msg.as_str(), e.details.as_str()), (11, "IPAM plugin host-local: busy", "d"));
        let e = plugin_error("x", b"", b"boom\n");
        assert_eq!((e.code, e.details.as_str()), (999, "boom"));
    }

    fn sh(script: &str) -> Running {
        sh_within(script, DEADLINE)
    }

    fn sh_within(script: &str, limit: Duration) -> Running {
        Running::new(
            Process::new("/bin/sh")
                .args(["-c", script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .expect("sh"),
            limit,
        )
    }

    /// The result is taken as soon as it is whole, before the exit, which
    /// still decides: here, a failure after all.
    #[test]
    fn takes_the_result_once_whole_and_the_exit_still_decides() {
        let start = std::time::Instant::now();
        let mut child = sh("printf '{\"ips\":'; echo oops >&2; sleep 0.1; printf '[]}'; sleep 1; exit 3");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let value = whole_result(&mut child, &mut out, &mut err).unwrap();
        assert_eq!(value, Some(serde_json::json!({"ips": []})));
        assert!(start.elapsed() < std::time::Duration::from_millis(900), "{:?}", start.elapsed());
        let e = finish("x", child, out, err).unwrap_err();
        assert_eq!((e.code, e.details.as_str()), (999, "oops"));
    }

    /// An error object is not a result: read to the end, judged by the exit.
    #[test]
    fn an_error_object_waits_for_the_exit() {
        let mut child = sh("printf '{\"code\": 11, \"msg\": \"busy\"}'; exit 1");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(whole_result(&mut child, &mut out, &mut err).unwrap(), None);
        let e = finish("x", child, out, err).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "IPAM plugin x: busy"));
    }

    /// A plugin that does not answer by the deadline is killed, with what
    /// it started (the sleep holds its stdout), and reaped: code 11.
    #[test]
    fn a_plugin_past_its_deadline_is_killed() {
        let start = Instant::now();
        let mut run = sh_within("echo started >&2; sleep 30", Duration::from_millis(300));
        let pid = run.child.id();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(whole_result(&mut run, &mut out, &mut err).unwrap(), None);
        let e = finish("slow", run, out, err).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "IPAM plugin slow did not answer within 0.3 s: killed"));
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "reaped");
    }

    #[test]
    fn finds_only_executables() {
        let e =
            Ipam::find("no-such-ipam", &[PathBuf::from("/nonexistent"), PathBuf::from("/etc")]).unwrap_err();
        assert_eq!(e.msg, "failed to find IPAM plugin \"no-such-ipam\" in CNI_PATH [/nonexistent /etc]");
        assert!(Ipam::find("passwd", &[PathBuf::from("/etc")]).is_err(), "not executable");
    }
}
