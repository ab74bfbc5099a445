//! Running the machine's commands: those that must succeed, and those whose
//! failure is an answer.

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub(crate) fn command(argv: &[&str]) -> Command {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null());
    cmd
}

fn describe(argv: &[&str], out: &Output) -> String {
    format!(
        "`{}` exited with {}\n--- stdout\n{}--- stderr\n{}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(argv: &[&str]) -> String {
    let out = command(argv).output().unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    assert!(out.status.success(), "{}", describe(argv, &out));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command whose failure is an answer, not an error.
pub fn quiet(argv: &[&str]) -> Output {
    command(argv).output().unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Panics with both streams unless the run exited 0.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "pipework failed: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Where `cmd` is found on this process's PATH.
pub fn which(cmd: &str) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|dir| Path::new(dir).join(cmd))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{cmd} not found on PATH"))
        .to_string_lossy()
        .into_owned()
}
