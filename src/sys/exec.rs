//! Running a program the command line names (`tc`, `ip`, the DHCP clients)
//! inside a guest's network namespace. pipework runs as root, so the
//! program is taken only from fixed system directories that only root can
//! change, never through PATH, and it starts with a clean environment
//! (`tc` would load modules from `TC_LIB_DIR`, for one).

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::process::Process;
use super::shutdown;
use crate::error::{is_permission, needs_root, Error, Kind, Result};

/// Where programs are looked for, in this order.
const SYSTEM_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
/// The child's PATH, for the programs it runs in turn (dhclient-script).
pub const CHILD_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The directories searched: test builds may name others in
/// PIPEWORK_TEST_SBIN (a colon-separated list), so that a test can offer
/// no `ip` at all; release builds carry no such hook.
pub fn search_dirs() -> Vec<PathBuf> {
    #[cfg(feature = "failpoints")]
    if let Ok(dirs) = std::env::var("PIPEWORK_TEST_SBIN") {
        return dirs.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect();
    }
    SYSTEM_DIRS.iter().map(PathBuf::from).collect()
}

/// The program `name` of `package` in the first system directory that has
/// it, if only root can change it there.
pub fn find(name: &str, package: &str) -> Result<PathBuf> {
    let path = search_dirs()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok())
        .ok_or_else(|| Error::new(Kind::NotFound, format!("{name} not found; install {package}")))?;
    trusted(&path)
        .map_err(|why| Error::new(Kind::Conflict, format!("refusing to run {}: {why}", path.display())))?;
    Ok(path)
}

/// Whether only root can change what `path` runs: the file, and the
/// directories on the way to it.
pub fn trusted(path: &Path) -> std::result::Result<(), String> {
    let real = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let file = std::fs::metadata(&real).map_err(|e| e.to_string())?;
    if !file.is_file() {
        return Err(format!("{} is not a regular file", real.display()));
    }
    root_only(&real, &file)?;
    root_only_dirs(path)
}

/// Whether only root can change what is found at `path` through its
/// directories: each one on the way, as named and as links resolve it,
/// belongs to root and is writable by no one else (a sticky directory such
/// as /tmp only by the owners of its entries, who cannot touch root's).
pub fn root_only_dirs(path: &Path) -> std::result::Result<(), String> {
    let real = std::fs::canonicalize(path.parent().unwrap_or(path)).map_err(|e| e.to_string())?;
    // Without links on the way, both name the same directories: each once.
    let mut seen = std::collections::HashSet::new();
    let dirs = path.ancestors().skip(1).chain(real.ancestors());
    for dir in dirs.filter(|p| !p.as_os_str().is_empty() && seen.insert(*p)) {
        let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        root_only(dir, &meta)?;
    }
    Ok(())
}

fn root_only(path: &Path, meta: &std::fs::Metadata) -> std::result::Result<(), String> {
    if meta.uid() != 0 {
        return Err(format!("{} is not owned by root", path.display()));
    }
    let sticky = meta.is_dir() && meta.mode() & libc::S_ISVTX != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(format!("{} is writable by others than root", path.display()));
    }
    Ok(())
}

/// The open-files soft limit this process had before `raise_fd_limit`:
/// what the programs it starts get back.
static STARTED_WITH: OnceLock<libc::rlimit> = OnceLock::new();

/// Room for an fd per watched thing (watch holds a pidfd per DHCP agent):
/// the soft limit on open files (1024 under systemd and most shells)
/// raised to the hard one. Programs started afterwards get the soft limit
/// back (`restore_fd_limit`): one that closes every fd up to its limit, or
/// uses select(), expects the usual one.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let _ = STARTED_WITH.set(limit);
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, ..limit };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
    }
}

/// In a child, between fork and exec: the soft limit on open files its
/// parent started with. Async-signal-safe: a load and a system call.
pub fn restore_fd_limit() -> std::io::Result<()> {
    match STARTED_WITH.get() {
        // SAFETY: setrlimit reads the struct we pass.
        Some(limit) if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) } != 0 => {
            Err(std::io::Error::last_os_error())
        }
        _ => Ok(()),
    }
}

/// `path args` to be run inside the network namespace `ns`, with nothing
/// of pipework's environment but a fixed PATH, the open-files limit
/// pipework started with, and the signals of a process started by a shell.
pub fn command_in(ns: BorrowedFd<'_>, path: &Path, args: &[String]) -> Command {
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(path);
    cmd.args(args).env_clear().env("PATH", CHILD_PATH);
    default_signals(&mut cmd);
    // SAFETY: between fork and exec the child only makes the setns and
    // setrlimit system calls, on an fd the parent keeps open; it allocates
    // nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            restore_fd_limit()
        });
    }
    cmd
}

/// Has the child of `cmd` start with no signal blocked and every one at its
/// default action: not with the signals a transaction holds (a client
/// that ignored SIGTERM could not be stopped), nor with an ignored one.
pub fn default_signals(cmd: &mut Command) {
    let last = libc::SIGRTMAX();
    // SAFETY: between fork and exec the child makes only the sigprocmask
    // and sigaction system calls, on structs on its stack; it allocates
    // nothing. SIGKILL and SIGSTOP refuse a new action: nothing to reset.
    unsafe {
        cmd.pre_exec(move || {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            for signal in 1..=last {
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Has the child of `cmd` run in a mount and UTS namespace of its own,
/// with `file` bound over /etc/resolv.conf: what a DHCP client's script
/// writes there (or dhcpcd's hook sets as the host name) stays out of the
/// machine's. The mounts are made private first, so none of it propagates.
pub fn private_resolv_conf(cmd: &mut Command, file: &Path) -> Result<()> {
    const TARGET: &str = "/etc/resolv.conf";
    // A missing one would be created by the script, on the machine.
    if std::fs::metadata(TARGET).is_err() {
        return Err(Error::new(
            Kind::NotFound,
            format!("{TARGET} is missing: the DHCP client's script would create it on this machine"),
        ));
    }
    let source = CString::new(file.as_os_str().as_bytes())
        .map_err(|_| Error::new(Kind::Usage, format!("{} has a NUL byte", file.display())))?;
    // SAFETY: between fork and exec the child makes only the unshare and
    // mount system calls, on C strings made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let none: *const libc::c_char = std::ptr::null();
            if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS) != 0
                || libc::mount(none, c"/".as_ptr(), none, libc::MS_PRIVATE | libc::MS_REC, none.cast()) != 0
                || libc::mount(
                    source.as_ptr(),
                    c"/etc/resolv.conf".as_ptr(),
                    none,
                    libc::MS_BIND,
                    none.cast(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Runs `name` of `package` inside `ns`, its stdio inherited, within
/// `limit` if any, and passes its exit status on.
pub async fn run_in(
    ns: BorrowedFd<'_>,
    name: &str,
    package: &str,
    args: &[String],
    limit: Option<Duration>,
) -> Result<()> {
    let path = find(name, package)?;
    status_within(command_in(ns, &path, args), &path, limit).await
}

/// Runs `cmd` (of the program at `path`) to its end, within `limit` if
/// any, and not past a stop of the service (`shutdown`): a program still
/// running then is killed and reaped, and the run fails (`Kind::Timeout`,
/// `Kind::Interrupted`). A failure's exit status is passed on
/// (`Kind::ProgramFailed`).
pub async fn status_within(mut cmd: Command, path: &Path, limit: Option<Duration>) -> Result<()> {
    log_run(&cmd, path);
    let mut child = cmd.spawn().map_err(|e| spawn_failed(e, path))?;
    let name = path.file_name().unwrap_or(path.as_os_str()).to_string_lossy().into_owned();
    let ran = async {
        let process = Process::open(child.id().into()).map_err(Error::from)?;
        let Some(limit) = limit else { return process.exited().await.map_err(Error::from) };
        match tokio::time::timeout(limit, process.exited()).await {
            Ok(exited) => exited.map_err(Error::from),
            Err(_) => Err(Error::new(
                Kind::Timeout,
                format!("{name} did not finish within {} s: stopped", crate::request::seconds(limit)),
            )),
        }
    };
    if let Err(e) = shutdown::unless_stopping(&name, ran).await {
        // Not left running, nor a zombie.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    passed_on(child.wait().map_err(|e| Error::from(e).context(format!("waiting for {name}")))?)
}

fn log_run(cmd: &Command, path: &Path) {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    tracing::info!("running {} {} in the guest's namespace", path.display(), args.join(" "));
}

fn spawn_failed(e: std::io::Error, path: &Path) -> Error {
    match e.raw_os_error() {
        // The child's setns, refused.
        Some(errno) if is_permission(errno) => needs_root("entering the namespace"),
        _ => Error::from(e).context(format!("running {}", path.display())),
    }
}

fn passed_on(status: std::process::ExitStatus) -> Result<()> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(Error::program_status(code)),
        (None, Some(signal)) => Err(Error::program_status(128 + signal)),
        (None, None) => Err(Error::program_status(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_programs_are_trusted() {
        assert_eq!(trusted(Path::new("/bin/sh")), Ok(()));
    }

    #[test]
    fn a_program_others_can_change_is_not() {
        // Files made by anyone else are refused for their owner first.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the files must be root's to be judged by their modes");
            return;
        }
        let dir = std::env::temp_dir().join(format!("pipework-exec-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let prog = dir.join("tc");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o777)).unwrap();
        let verdict = trusted(&prog);
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir_verdict = trusted(&prog);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(verdict, Err(format!("{} is writable by others than root", prog.display())));
        assert_eq!(dir_verdict, Err(format!("{} is writable by others than root", dir.display())));
    }
}
