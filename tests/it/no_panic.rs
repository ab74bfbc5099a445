//! Inputs and surroundings that once made pipework panic (exit 101): each
//! is now a message and an exit status. Stdout that cannot be written (full,
//! closed, a pipe nobody reads) is reported as coreutils do, once, exit 1.

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};

use crate::common::*;

/// pipework run directly (nothing here changes the system) with `stdout`.
fn pipework_to(args: &[&str], stdout: Stdio) -> Output {
    Command::new(PIPEWORK)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("cannot run pipework")
}

fn dev_full() -> Stdio {
    File::options().write(true).open("/dev/full").expect("/dev/full").into()
}

/// The write end of a pipe whose read end is closed already.
fn broken_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds, which we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just made and are owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write.into()
}

#[track_caller]
fn assert_write_error(args: &[&str], out: &Output, why: &str) {
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(out));
    assert_eq!(stderr(out), format!("pipework: write error: {why}\n"), "{args:?}");
}

/// Help, version, the usage text and the companions' help.
const PRINTING: &[&[&str]] =
    &[&["--help"], &["-V"], &["--version"], &[], &["mkbridge", "--help"], &["loop", "ensure", "--help"]];

#[test]
fn a_full_stdout_is_a_write_error() {
    for args in PRINTING {
        assert_write_error(args, &pipework_to(args, dev_full()), "No space left on device");
    }
}

#[test]
fn a_broken_pipe_is_a_write_error() {
    for args in PRINTING {
        assert_write_error(args, &pipework_to(args, broken_pipe()), "Broken pipe");
    }
}

/// Rust's runtime reopens a closed stdout on /dev/null before main: what
/// is printed is lost, as with `> /dev/null`, and the status is unchanged.
#[test]
fn a_closed_stdout_loses_the_text_only() {
    for args in PRINTING {
        let mut argv = vec!["-c", "exec \"$0\" \"$@\" >&-", PIPEWORK];
        argv.extend_from_slice(args);
        let out = Command::new("sh").args(&argv).stderr(Stdio::piped()).output().expect("sh");
        let usage = args.is_empty();
        assert_eq!(out.status.code(), Some(if usage { 1 } else { 0 }), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

/// Plans and a loop report to a full stdout.
#[test]
fn reports_to_a_full_stdout_are_write_errors() {
    // `loop free` may make the kernel add a loop device.
    let _loops = KernelLoops::alone();
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    host.add_bridge("br0", None);
    host.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
    let target = format!("netns:{}", guest.name);
    let dev = TempDir::new("dev");
    let runs: [&[&str]; 3] = [
        &["--dry-run", "br0", &target, "10.0.0.2/24"],
        &["loop", "free", "--dev", dev.arg()],
        &["mkbridge", "--dry-run", "br1", "eth0"],
    ];
    for args in runs {
        let mut argv = host.enter();
        argv.push(PIPEWORK.into());
        argv.extend(args.iter().map(|a| a.to_string()));
        let out = Command::new(&argv[0]).args(&argv[1..]).stdout(dev_full()).stderr(Stdio::piped()).output();
        assert_write_error(args, &out.expect("cannot run pipework"), "No space left on device");
    }
}

/// `ph<pid><CTR_IF>` cut to 15 bytes keeps whole characters: one of these
/// two names puts a 2-byte character across byte 15 whatever the pid's length.
#[test]
fn a_multibyte_container_interface_on_a_macvlan() {
    let host = Netns::new("host");
    let _lan = host.add_lan("eth0", "10.5.0.1/24");
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    for ctr_if in ["ééééééé", "xééééééé"] {
        let args = ["eth0", "-i", ctr_if, &target, "10.5.0.5/24"];
        let temp = planned_link(&planned_steps(&host, &args), "macvlan");
        assert!(temp.starts_with("ph") && temp.len() <= 15 && temp.len() >= 14, "{temp:?}");
    }
    let args = ["eth0", "-i", "xééééééé", &target, "10.5.0.5/24"];
    assert_success(&pipework(&host, &args));
    assert_macvlan_on(&host, "eth0", &guest, "xééééééé", "10.5.0.5/24");
}

#[test]
fn an_out_of_range_timeout_is_refused() {
    let invalid = |shown: &str| format!("pipework: invalid --timeout '{shown}'\n");
    for (timeout, message) in [
        ("1e20", "pipework: --timeout 100000000000000000000 is out of range (at most 86400 s)\n".to_string()),
        ("-1", invalid("-1")),
        ("inf", invalid("inf")),
        ("NaN", invalid("NaN")),
    ] {
        let arg = format!("--timeout={timeout}");
        let args = ["--wait", &arg];
        let out = pipework_to(&args, Stdio::piped());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), message, "{args:?}");
    }
}

/// 256 `-v`, as separate flags and as one word, before any command: the
/// count stops at its top, the most verbose.
#[test]
fn many_v_flags_are_the_most_verbose() {
    let host = Netns::new("host");
    let many = vec!["-v"; 256];
    let word = format!("-{}", "v".repeat(256));
    for flags in [many, vec![word.as_str()]] {
        let mut args = flags.clone();
        args.extend(["--wait", "-i", "lo", "--timeout", "1"]);
        let out = pipework(&host, &args);
        assert_success(&out);
        let mut args = flags;
        args.extend(["route", "pid:999999999", "show"]);
        let out = pipework(&host, &args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("pipework: "), "{}", stderr(&out));
    }
}
