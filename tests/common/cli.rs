//! Running pipework inside a test's "docker host" namespace, and what a run
//! printed or planned.

use std::process::{Command, Output};

use super::commands::{assert_success, command, stderr, stdout, which};
use super::netns::Netns;
use super::readback::Ns;
use super::snapshot::{assert_unchanged, settled_snapshot};
use super::tempdir::TempDir;

pub const PIPEWORK: &str = env!("CARGO_BIN_EXE_pipework");

/// Where pipework keeps its records; each test host has its own (see
/// `Netns::state_dir`).
pub const STATE_DIR_ENV: &str = "PIPEWORK_STATE_DIR";

/// One pipework run must end by then: a hung run fails the test, not CI.
const PIPEWORK_TIMEOUT_SECS: &str = "120";

/// The test builds' failure injection (src/apply/failpoints.rs, and the
/// recovery's): never inherited from the caller's environment, so a test
/// sets what it injects itself.
pub const INJECTION_VARS: &[&str] = &[
    "FAILPOINTS",
    "PIPEWORK_FAIL_AT",
    "PIPEWORK_PAUSE_AT",
    "PIPEWORK_PAUSE_MS",
    "PIPEWORK_KILL_AT",
    "PIPEWORK_FAIL_RECOVERY",
    "PIPEWORK_RECOVERY_PAUSE_MS",
];

/// `cmd` without the injection variables of this process's environment.
pub(crate) fn without_injection(cmd: &mut Command) -> &mut Command {
    INJECTION_VARS.iter().fold(cmd, |cmd, var| cmd.env_remove(var))
}

/// Runs pipework inside `host`, the namespace standing in for the Docker host.
pub fn pipework(host: &Netns, args: &[&str]) -> Output {
    pipework_env(host, args, &[])
}

/// Same, with extra environment (failure injection). Injection variables from
/// the caller's own environment are dropped so they cannot leak into a test.
pub fn pipework_env(host: &Netns, args: &[&str], env: &[(&str, &str)]) -> Output {
    pipework_via(&host.enter(), host, args, env)
}

/// `pipework`, with the records, and the DHCP agents' files, in `state`
/// rather than in the host's own directory.
pub fn pipework_in(host: &Netns, state: &TempDir, args: &[&str]) -> Output {
    pipework_env(host, args, &[(STATE_DIR_ENV, state.arg())])
}

/// Runs pipework in `host`'s network namespace only, seeing the machine's
/// mounts: `ip netns exec` mounts a fresh /sys, which hides /sys/fs/cgroup,
/// where LXC guests are looked up.
pub fn pipework_keeping_mounts(host: &Netns, args: &[&str]) -> Output {
    pipework_via(&["nsenter".into(), format!("--net={}", host.path())], host, args, &[])
}

/// `host`'s records are kept apart from every other host's.
fn pipework_via(enter: &[String], host: &Netns, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut argv: Vec<&str> = enter.iter().map(String::as_str).collect();
    argv.extend(["timeout", "-k", "5", PIPEWORK_TIMEOUT_SECS, PIPEWORK]);
    let mut cmd = command(&argv);
    without_injection(cmd.args(args)).env_remove("PIPEWORK_TEST_SBIN");
    cmd.env(STATE_DIR_ENV, host.state_dir());
    cmd.envs(env.iter().copied());
    cmd.output().expect("cannot run pipework")
}

/// pipework started in `host` with `env` and left running, its output
/// piped. `ip netns exec` execs pipework in place: the child's pid is
/// pipework's own (no `timeout` in between).
#[cfg(feature = "failpoints")]
pub fn pipework_child(host: &Netns, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = command(&["ip", "netns", "exec", &host.name, PIPEWORK]);
    without_injection(cmd.args(args)).env_remove("PIPEWORK_TEST_SBIN");
    cmd.env(STATE_DIR_ENV, host.state_dir()).envs(env.iter().copied());
    let piped = std::process::Stdio::piped;
    cmd.stdout(piped()).stderr(piped()).spawn().expect("cannot run pipework")
}

/// Runs pipework through `run` (`pipework`, `pipework_keeping_mounts`...),
/// asserts that it exits 1 and changes nothing on `host` or in `guest`, and
/// returns what it printed.
#[track_caller]
pub fn assert_refused(
    run: impl FnOnce(&Netns, &[&str]) -> Output,
    host: &Netns,
    guest: Option<&dyn Ns>,
    args: &[&str],
) -> Output {
    let (host_before, guest_before) = (host.snapshot(), guest.map(|g| g.snapshot()));
    let out = run(host, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}\n--- stdout\n{}--- stderr\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_unchanged("host", &host_before, || host.snapshot());
    if let (Some(guest), Some(before)) = (guest, guest_before) {
        assert_unchanged("guest", &before, || guest.snapshot());
    }
    out
}

/// Fails a run just before each of its `steps` in turn: `run` makes the
/// run with that PIPEWORK_FAIL_AT value. Each must exit 1 (at the injected
/// failure, or earlier where the kernel refuses a step) and leave `host` and
/// `guest` exactly as before.
#[track_caller]
pub fn assert_every_step_rolls_back(
    host: &Netns,
    guest: &dyn Ns,
    steps: usize,
    run: impl Fn(&str) -> Output,
) {
    assert!(steps > 0, "no steps to fail");
    let (host_before, guest_before) = (settled_snapshot(host), guest.snapshot());
    for at in 1..=steps {
        let at = at.to_string();
        let out = run(&at);
        assert_eq!(out.status.code(), Some(1), "fail at {at}: {}", stderr(&out));
        assert_unchanged(&format!("host after step {at}"), &host_before, || host.snapshot());
        assert_unchanged(&format!("guest after step {at}"), &guest_before, || guest.snapshot());
    }
}

/// The refusal of `args` printed one `pipework: ` line, mentioning `bad`.
#[track_caller]
pub fn assert_one_line_naming(args: &[&str], out: &Output, bad: &str) {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{args:?}: one line expected:\n{err}");
    assert!(err.starts_with("pipework: "), "{args:?}: {err}");
    assert!(err.contains(bad), "{args:?}: message does not mention {bad:?}: {err}");
}

/// `args` with each placeholder `CTR` replaced by `guest`, so a test can
/// write a command line the way the docs do.
pub fn with_guest<'a>(args: &[&'a str], guest: &'a str) -> Vec<&'a str> {
    args.iter().map(|a| if *a == "CTR" { guest } else { *a }).collect()
}

/// Runs pipework inside `host` with `path` as the only place for pipework
/// alone to find programs in: what it may exec is then only what `path`
/// holds. pipework ignores PATH (it takes `ip` and `tc` from fixed system
/// directories); test builds take the directories from PIPEWORK_TEST_SBIN.
pub fn pipework_with_path(host: &Netns, path: &str, args: &[&str]) -> Output {
    let (ip, timeout) = (which("ip"), which("timeout"));
    let mut cmd = command(&[&ip, "netns", "exec", &host.name, &timeout, "-k", "5", PIPEWORK_TIMEOUT_SECS]);
    cmd.arg(PIPEWORK).args(args).env("PATH", path).env("PIPEWORK_TEST_SBIN", path);
    without_injection(&mut cmd);
    cmd.env(STATE_DIR_ENV, host.state_dir());
    cmd.output().expect("cannot run pipework")
}

/// A directory for PATH holding links to the machine's `cmds` and nothing else.
pub fn path_with(cmds: &[&str]) -> TempDir {
    let dir = TempDir::new("path");
    for cmd in cmds {
        std::os::unix::fs::symlink(which(cmd), dir.path.join(cmd)).expect("symlink");
    }
    dir
}

/// The steps `pipework --dry-run <args>` prints in `host`, one per line.
pub fn planned_steps(host: &Netns, args: &[&str]) -> Vec<String> {
    let mut full = vec!["--dry-run"];
    full.extend_from_slice(args);
    let out = pipework(host, &full);
    assert_success(&out);
    stdout(&out).lines().map(str::to_owned).collect()
}

/// The name a plan gives the link of `kind` (macvlan, dummy, vlan) that it
/// makes on the host: the `dev`/`name` of its `ip link add ... type <kind>`.
/// For a netns guest the number in it is the tool's own, so tests read it
/// here rather than compute it.
#[track_caller]
pub fn planned_link(plan: &[String], kind: &str) -> String {
    let type_kind = format!("type {kind}");
    plan.iter()
        .filter(|step| step.starts_with("ip link add ") && step.contains(&type_kind))
        .find_map(|step| {
            let words: Vec<&str> = step.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "dev" || *w == "name")?;
            words.get(at + 1).map(|w| (*w).to_owned())
        })
        .unwrap_or_else(|| panic!("no `ip link add ... {type_kind}` step in the plan:\n{}", plan.join("\n")))
}
