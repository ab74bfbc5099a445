//! `pipework loop free` and `pipework loop ensure`, on the real kernel.
//!
//! Nodes are only ever made in temporary directories and in containers'
//! /dev, never in the machine's own /dev. The kernel may gain loop devices
//! (LOOP_CTL_ADD, or LOOP_CTL_GET_FREE when all are bound); each test removes
//! those again, and runs alone so that it does not remove another's.

use std::path::Path;

use crate::common::*;

#[track_caller]
pub(crate) fn assert_loop_node(path: &Path, i: u32) {
    let node = node_info(path).unwrap_or_else(|| panic!("{} is missing", path.display()));
    assert!(node.is_block, "{}: not a block device: {node:?}", path.display());
    assert_eq!((node.major, node.minor), (7, i), "{}", path.display());
    assert_eq!(node.mode, 0o660, "{}: mode {:o}", path.display(), node.mode);
    assert_eq!(node.gid, disk_gid(), "{}: group", path.display());
}

#[track_caller]
fn assert_failed_naming(args: &[&str], out: &std::process::Output, bad: &str) {
    assert_eq!(out.status.code(), Some(1), "{args:?}\n{}{}", stdout(out), stderr(out));
    assert_one_line_naming(args, out, bad);
    assert_eq!(stdout(out), "", "{args:?}");
}

#[test]
fn ensure_makes_the_nodes_in_a_directory_once() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let dev = TempDir::new("dev");
    let args = ["loop", "ensure", "--count", "4", "--dev", dev.arg()];

    let out = pipework(&host, &args);
    assert_success(&out);
    let want: Vec<String> =
        (0..4).map(|i| format!("created {} (block 7:{i})", dev.join(&format!("loop{i}")))).collect();
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), want);
    assert_eq!(dev.names(), ["loop0", "loop1", "loop2", "loop3"]);
    for i in 0..4 {
        assert_loop_node(&dev.path.join(format!("loop{i}")), i);
    }

    let before = loop_nodes(&dev.path);
    let out = pipework(&host, &args);
    assert_success(&out);
    assert_eq!(stdout(&out), "nothing to do: loop0 to loop3 exist\n");
    assert_eq!(loop_nodes(&dev.path), before);
}

#[test]
fn ensure_leaves_an_existing_node_as_it_is() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let dev = TempDir::new("dev");
    let loop1 = dev.join("loop1");
    run(&["mknod", "-m", "0600", &loop1, "b", "7", "1"]);
    let before = node_info(Path::new(&loop1)).unwrap();

    let out = pipework(&host, &["loop", "ensure", "--count", "4", "--dev", dev.arg()]);
    assert_success(&out);
    assert!(!stdout(&out).contains(&loop1), "{}", stdout(&out));
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    assert_eq!(node_info(Path::new(&loop1)), Some(before));
    assert_eq!(before.mode, 0o600);
    for i in [0, 2, 3] {
        assert_loop_node(&dev.path.join(format!("loop{i}")), i);
    }
}

#[test]
fn ensure_refuses_a_file_in_the_way_and_makes_nothing() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let dev = TempDir::new("dev");
    let loop2 = dev.join("loop2");
    std::fs::write(&loop2, "keep me").unwrap();

    let args = ["loop", "ensure", "--count", "4", "--dev", dev.arg()];
    let out = pipework(&host, &args);
    assert_failed_naming(&args, &out, &loop2);
    assert_eq!(dev.names(), ["loop2"]);
    assert_eq!(std::fs::read_to_string(&loop2).unwrap(), "keep me");
}

#[test]
fn free_finds_what_losetup_finds_and_makes_its_node() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let dev = TempDir::new("dev");

    let out = pipework(&host, &["loop", "free", "--dev", dev.arg()]);
    assert_success(&out);
    let printed = stdout(&out);
    let losetup = run(&["losetup", "-f"]);
    let number = |line: &str| -> u32 {
        let name = Path::new(line.trim()).file_name().unwrap().to_string_lossy().into_owned();
        loop_index(&name).unwrap_or_else(|| panic!("not a loop device: {line:?}"))
    };
    let i = number(&printed);
    assert_eq!(i, number(&losetup), "pipework printed {printed:?}, losetup -f {losetup:?}");
    assert_eq!(printed, format!("{}\n", dev.join(&format!("loop{i}"))));
    assert_eq!(dev.names(), [format!("loop{i}")]);
    assert_loop_node(&dev.path.join(format!("loop{i}")), i);

    // In /dev, only when its node is there already: nothing is made there.
    if Path::new(losetup.trim()).exists() {
        let out = pipework(&host, &["loop", "free"]);
        assert_success(&out);
        assert_eq!(stdout(&out), losetup);
    }
}

#[test]
fn ensure_in_a_container_makes_the_nodes_in_its_dev_only() {
    let alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let ctr = Container::run("loop");
    let host_dev = Path::new("/dev");
    let host_before = loop_nodes(host_dev);

    let args = ["loop", "ensure", "--count", "12", "--container", &ctr.name];
    let out = pipework(&host, &args);
    assert_success(&out);
    assert!(stdout(&out).contains("created /dev/loop11 (block 7:11)\n"), "{}", stdout(&out));

    let ls = run(&["docker", "exec", &ctr.name, "ls", "-l", "/dev/loop11"]);
    let f: Vec<&str> = ls.split_whitespace().collect();
    assert!(f[0].starts_with('b'), "not a block device: {ls}");
    assert_eq!((f[0], f[4], f[5]), ("brw-rw----", "7,", "11"), "{ls}");
    let paths: Vec<String> = (0..12).map(|i| format!("/dev/loop{i}")).collect();
    let mut argv = vec!["docker", "exec", &ctr.name, "ls", "-ln"];
    argv.extend(paths.iter().map(String::as_str));
    for line in run(&argv).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let i = loop_index(f[f.len() - 1].trim_start_matches("/dev/")).expect(line);
        assert_eq!((f[0], f[3], f[4], f[5]), ("brw-rw----", &*disk_gid().to_string(), "7,", &*i.to_string()));
    }

    // The host's nodes are as they were; with devtmpfs the kernel itself
    // makes one for each device it gained, and only those may appear.
    let host_after = loop_nodes(host_dev);
    let gained = alone.added();
    for (name, node) in &host_before {
        assert_eq!(host_after.get(name), Some(node), "/dev/{name} changed");
    }
    for name in host_after.keys().filter(|n| !host_before.contains_key(*n)) {
        let i = loop_index(name).unwrap();
        assert!(gained.contains(&i), "/dev/{name} appeared, but the kernel had loop{i} already");
    }

    let out = pipework(&host, &args);
    assert_success(&out);
    assert_eq!(stdout(&out), "nothing to do: loop0 to loop11 exist\n");
}

#[test]
fn a_bare_network_namespace_has_no_dev_to_fill() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let guest = Netns::new("bare");
    let args = ["loop", "ensure", "--count", "2", "--container", &guest.path()];
    let out = pipework(&host, &args);
    assert_failed_naming(&args, &out, &guest.path());
}

#[test]
fn a_missing_or_non_directory_dev_is_refused_by_name() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    for bad in ["/nonexistent", "/etc/hostname"] {
        for args in
            [["loop", "free", "--dev", bad].as_slice(), &["loop", "ensure", "--count", "2", "--dev", bad]]
        {
            let out = pipework(&host, args);
            assert_failed_naming(args, &out, bad);
        }
    }
}

/// The exact one-line refusal of `args`, exit 1, nothing on stdout.
#[track_caller]
fn assert_refused_with(args: &[&str], out: &std::process::Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "{args:?}\n{}{}", stdout(out), stderr(out));
    assert_eq!(stderr(out), format!("{message}\n"), "{args:?}");
    assert_eq!(stdout(out), "", "{args:?}");
}

/// A file standing for something root must not touch: odd owner and mode.
fn bait(path: &Path) -> NodeInfo {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, "bait").unwrap();
    std::os::unix::fs::chown(path, Some(4321), Some(4321)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o604)).unwrap();
    node_info(path).unwrap()
}

#[test]
fn a_symlinked_dev_directory_or_parent_is_refused() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let tmp = TempDir::new("dev");
    let real = tmp.path.join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, tmp.path.join("link")).unwrap();
    std::os::unix::fs::symlink(&tmp.path, tmp.path.join("up")).unwrap();
    let (link, through) = (tmp.join("link"), format!("{}/real", tmp.join("up")));
    for (dir, message) in [
        (&link, format!("pipework: {link} is a symbolic link; give the directory's real path")),
        (
            &through,
            format!(
                "pipework: {through}: {} is a symbolic link; give the directory's real path",
                tmp.join("up")
            ),
        ),
    ] {
        for args in [vec!["loop", "ensure", "--count", "2", "--dev", dir], vec!["loop", "free", "--dev", dir]]
        {
            let out = pipework(&host, &args);
            assert_refused_with(&args, &out, &message);
            assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0, "{args:?} made something");
        }
    }
}

#[test]
fn a_symlink_planted_at_a_node_is_refused_and_its_target_untouched() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let dev = TempDir::new("dev");
    let outside = TempDir::new("out");
    let target = outside.path.join("secret");
    let before = bait(&target);
    let loop1 = dev.join("loop1");
    std::os::unix::fs::symlink(&target, &loop1).unwrap();

    let args = ["loop", "ensure", "--count", "3", "--dev", dev.arg()];
    let out = pipework(&host, &args);
    let message = format!("pipework: {loop1} is a symbolic link, not loop device 7:1; leaving it alone");
    assert_refused_with(&args, &out, &message);
    assert_eq!(node_info(&target), Some(before));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "bait");
    assert_eq!(dev.names(), ["loop1"]);
    assert_eq!(std::fs::read_link(&loop1).unwrap(), target);
}

#[test]
fn a_character_device_or_file_at_a_node_is_refused() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    for what in ["a character device", "a regular file"] {
        let dev = TempDir::new("dev");
        let loop1 = dev.join("loop1");
        let before = match what {
            "a regular file" => bait(Path::new(&loop1)),
            _ => {
                run(&["mknod", "-m", "0600", &loop1, "c", "1", "3"]);
                node_info(Path::new(&loop1)).unwrap()
            }
        };
        let args = ["loop", "ensure", "--count", "3", "--dev", dev.arg()];
        let out = pipework(&host, &args);
        let message = format!("pipework: {loop1} is {what}, not loop device 7:1; leaving it alone");
        assert_refused_with(&args, &out, &message);
        assert_eq!(node_info(Path::new(&loop1)), Some(before), "{what}");
        assert_eq!(dev.names(), ["loop1"], "{what}");
    }
}

/// A count that makes `loop ensure` add two kernel devices.
#[cfg(feature = "failpoints")]
pub(crate) fn count_adding_two() -> u32 {
    kernel_loops().iter().max().map_or(0, |m| m + 1) + 2
}

#[cfg(feature = "failpoints")]
pub(crate) fn ensure_args(count: u32, dev: &TempDir) -> Vec<String> {
    ["loop", "ensure", "--count", &count.to_string(), "--dev", dev.arg()].map(String::from).to_vec()
}

/// A test's `loop ensure` into a temporary directory, with a count that
/// makes it add two kernel devices; the kernel's devices held alone.
#[cfg(feature = "failpoints")]
struct Ensure {
    alone: KernelLoops,
    host: Netns,
    dev: TempDir,
    count: u32,
    args: Vec<String>,
}

#[cfg(feature = "failpoints")]
impl Ensure {
    fn new() -> Ensure {
        let alone = KernelLoops::alone();
        let (host, dev, count) = (Netns::new("loop"), TempDir::new("dev"), count_adding_two());
        let args = ensure_args(count, &dev);
        Ensure { alone, host, dev, count, args }
    }

    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// The run killed before the chgrp of loop0: loop0 made, two kernel
    /// devices added. Its pid.
    fn killed_with_loop0_made(&self) -> u32 {
        killed_at(&self.host, &self.args(), self.count as usize + 2)
    }
}

/// `pipework loop ensure ...` in `host`, started and left running, with
/// PIPEWORK_PAUSE_AT=`pause`.
#[cfg(feature = "failpoints")]
fn spawn_paused(host: &Netns, args: &[&str], pause: usize) -> std::process::Child {
    spawn_at(host, args, ("PIPEWORK_PAUSE_AT", pause))
}

/// `pipework ...` in `host` with `failpoint` set, started. `ip netns exec`
/// execs pipework in place, so the child's pid is pipework's.
#[cfg(feature = "failpoints")]
fn spawn_at(host: &Netns, args: &[&str], failpoint: (&str, usize)) -> std::process::Child {
    std::process::Command::new("ip")
        .args(["netns", "exec", &host.name, PIPEWORK])
        .args(args)
        .env_remove("PIPEWORK_FAIL_AT")
        .env(STATE_DIR_ENV, host.state_dir())
        .env(failpoint.0, failpoint.1.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run pipework")
}

/// `pipework ...` in `host`, SIGKILLed before its change `at` (as by the
/// OOM killer); its pid.
#[cfg(feature = "failpoints")]
#[track_caller]
fn killed_at(host: &Netns, args: &[&str], at: usize) -> u32 {
    use std::os::unix::process::ExitStatusExt;
    let run = spawn_at(host, args, ("PIPEWORK_KILL_AT", at));
    let pid = run.id();
    let out = run.wait_with_output().expect("pipework did not end");
    let status = out.status;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "killed at {at}: {status:?}\n{}", stderr(&out));
    pid
}

/// The next command after a run of pid `pid` was killed: odd `at`s a
/// `pipework check`, even ones the same `args` again, failed on purpose at
/// its first change so that all it leaves is its recovery. Either must
/// say that it rolled the dead run back.
#[cfg(feature = "failpoints")]
#[track_caller]
fn recover_after(host: &Netns, args: &[&str], at: usize, pid: u32) {
    let (out, what) = match at % 2 {
        1 => (pipework(host, &["check"]), "check"),
        _ => (pipework_env(host, args, &[("PIPEWORK_FAIL_AT", "1")]), "the same run"),
    };
    let err = stderr(&out);
    match at % 2 {
        1 => assert_success(&out),
        _ if out.status.code() != Some(1) => panic!("{what}: {:?}\n{err}", out.status),
        // After "in /proc/PID/ns/mnt: " for a container.
        _ => assert!(err.ends_with("injected failure (PIPEWORK_FAIL_AT)\n"), "{what}: {err}"),
    }
    // Killed before its first change, the run left nothing to roll back.
    match at {
        1 => assert!(!err.contains("rolled back"), "killed at 1, {what}: {err}"),
        _ => assert_rolled_back(&out, pid, &format!("killed at {at}, {what}")),
    }
}

/// `out` says that it rolled back the run of `pid`.
#[cfg(feature = "failpoints")]
#[track_caller]
fn assert_rolled_back(out: &std::process::Output, pid: u32, what: &str) {
    let (said, err) = (format!("rolled back an interrupted run of pid {pid} ("), stderr(out));
    assert!(err.contains(&said), "{what} did not say {said:?}:\n{err}");
}

/// `pipework check` in `host` succeeds, having rolled back the run of `pid`.
#[cfg(feature = "failpoints")]
#[track_caller]
fn check_rolls_back(host: &Netns, pid: u32) {
    let out = pipework(host, &["check"]);
    assert_success(&out);
    assert_rolled_back(&out, pid, "check");
}

/// Waits until `path` exists (a run reached that far).
#[cfg(feature = "failpoints")]
#[track_caller]
fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::symlink_metadata(path).is_err() {
        assert!(std::time::Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
#[cfg(feature = "failpoints")]
fn a_failed_ensure_removes_its_nodes_and_the_kernel_devices_it_added() {
    let t = Ensure::new();
    let (alone, host, dev, count, args) = (&t.alone, &t.host, &t.dev, t.count, t.args());
    // One step per device (add if missing), two per node (mknod, chgrp).
    let steps = 3 * count as usize;
    for n in 1..=steps {
        let out = pipework_env(host, &args, &[("PIPEWORK_FAIL_AT", &n.to_string())]);
        assert_refused_with(&args, &out, "pipework: injected failure (PIPEWORK_FAIL_AT)");
        assert_eq!(dev.names(), Vec::<String>::new(), "failing at step {n} left nodes");
        assert_eq!(alone.added(), Default::default(), "failing at step {n} left kernel devices");
    }
    let out = pipework_env(host, &args, &[("PIPEWORK_FAIL_AT", &(steps + 1).to_string())]);
    assert_success(&out);
    assert_eq!(dev.names().len(), count as usize);
    assert_eq!(alone.added().len(), 2);
}

#[test]
#[cfg(feature = "failpoints")]
fn sigterm_mid_ensure_leaves_every_node_made() {
    use std::os::unix::process::ExitStatusExt;
    let t = Ensure::new();
    let (host, dev, count, args) = (&t.host, &t.dev, t.count, t.args());
    // Paused before the chgrp of loop0, its node made.
    let run = spawn_paused(host, &args, count as usize + 2);
    wait_for(&dev.path.join("loop0"));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.id() as i32, libc::SIGTERM) }, 0);
    let out = run.wait_with_output().expect("pipework did not end");
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{:?}\n{}", out.status, stderr(&out));
    for i in 0..count {
        assert_loop_node(&dev.path.join(format!("loop{i}")), i);
    }
}

/// The race of issue 7: the node swapped for a symbolic link between its
/// mknod and its chgrp. The chgrp goes to the node made (through its
/// descriptor), never to the link's target; the run refuses the swap.
#[test]
#[cfg(feature = "failpoints")]
fn a_node_swapped_for_a_symlink_mid_run_is_refused_and_its_target_untouched() {
    let t = Ensure::new();
    let (alone, host, dev, count, args) = (&t.alone, &t.host, &t.dev, t.count, t.args());
    let outside = TempDir::new("out");
    let target = outside.path.join("secret");
    let before = bait(&target);

    let run = spawn_paused(host, &args, count as usize + 2);
    let loop0 = dev.path.join("loop0");
    wait_for(&loop0);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let planted = outside.path.join("planted");
    std::os::unix::fs::symlink(&target, &planted).unwrap();
    std::fs::rename(&planted, &loop0).unwrap();
    let out = run.wait_with_output().expect("pipework did not end");

    let message =
        format!("pipework: {} is a symbolic link, not loop device 7:0; leaving it alone", loop0.display());
    assert_refused_with(&args, &out, &message);
    assert_eq!(node_info(&target), Some(before));
    assert_eq!(std::fs::read_link(&loop0).unwrap(), target);
    assert_eq!(dev.names(), ["loop0"]);
    assert_eq!(alone.added(), Default::default());
}

/// A container that put a symbolic link where a node goes: refused, and
/// the file it points to (the container's own) untouched.
#[test]
fn a_symlink_in_a_containers_dev_is_refused() {
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let ctr = Container::run("loop");
    let exec = |argv: &[&str]| {
        let mut full = vec!["docker", "exec", &ctr.name];
        full.extend_from_slice(argv);
        run(&full)
    };
    exec(&["busybox", "ln", "-s", "/bin/busybox", "/dev/loop1"]);
    let before = exec(&["ls", "-lnL", "/bin/busybox"]);
    let args = ["loop", "ensure", "--count", "3", "--container", &ctr.name];
    let out = pipework(&host, &args);
    let message = format!(
        "pipework: in /proc/{}/ns/mnt: /dev/loop1 is a symbolic link, not loop device 7:1; leaving it alone",
        ctr.pid
    );
    assert_refused_with(&args, &out, &message);
    assert_eq!(exec(&["ls", "-lnL", "/bin/busybox"]), before);
    assert_eq!(exec(&["busybox", "readlink", "/dev/loop1"]), "/bin/busybox\n");
    assert!(!exec(&["ls", "/dev"]).lines().any(|l| l == "loop0" || l == "loop2"), "nodes were made");
}

/// A `loop ensure` killed before each of its changes in turn (kernel devices
/// added, nodes made and given their group; one node there already): the
/// next command, `check` or the same `loop ensure`, rolls it back, leaving
/// the directory and the kernel's devices as they were.
#[test]
#[cfg(feature = "failpoints")]
fn a_killed_ensure_is_rolled_back_by_the_next_command() {
    let t = Ensure::new();
    let (alone, host, dev, count, args) = (&t.alone, &t.host, &t.dev, t.count, t.args());
    run(&["mknod", "-m", "0600", &dev.join("loop1"), "b", "7", "1"]);
    std::fs::write(dev.path.join("other"), "keep me").unwrap();
    let before = listing(&dev.path);
    // One step per device (add if missing), two per node but loop1's.
    let steps = count as usize + 2 * (count as usize - 1);
    for at in 1..=steps {
        let pid = killed_at(host, &args, at);
        recover_after(host, &args, at, pid);
        assert_eq!(listing(&dev.path), before, "killed at {at}");
        assert_eq!(alone.added(), Default::default(), "killed at {at}: kernel devices left");
    }

    // Recovered first, the run then makes everything anew.
    let pid = killed_at(host, &args, steps);
    let out = pipework(host, &args);
    assert_success(&out);
    assert_rolled_back(&out, pid, "the next run");
    assert_eq!(stdout(&out).lines().count(), 2 + count as usize - 1, "{}", stdout(&out));
    assert_eq!(alone.added().len(), 2);
    for i in (0..count).filter(|&i| i != 1) {
        assert_loop_node(&dev.path.join(format!("loop{i}")), i);
    }
    assert_eq!(listing(&dev.path)["loop1"], before["loop1"]);
}

/// The same in a container's /dev, read through /proc/PID/root; the host's
/// /dev gains and loses only the nodes devtmpfs makes for the kernel's.
#[test]
#[cfg(feature = "failpoints")]
fn a_killed_ensure_in_a_container_is_rolled_back_by_the_next_command() {
    let alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let ctr = Container::run("loop");
    let ctr_dev = std::path::PathBuf::from(format!("/proc/{}/root/dev", ctr.pid));
    let count = count_adding_two();
    let count_arg = count.to_string();
    let args = ["loop", "ensure", "--count", &count_arg, "--container", &ctr.name];
    let (before, host_before) = (listing(&ctr_dev), loop_nodes(Path::new("/dev")));
    assert!(loop_nodes(&ctr_dev).is_empty(), "the container has loop nodes: {before:?}");
    let steps = 3 * count as usize;
    for at in 1..=steps {
        let pid = killed_at(&host, &args, at);
        recover_after(&host, &args, at, pid);
        assert_eq!(listing(&ctr_dev), before, "killed at {at}");
        assert_eq!(alone.added(), Default::default(), "killed at {at}: kernel devices left");
        assert_eq!(loop_nodes(Path::new("/dev")), host_before, "killed at {at}: the host's /dev");
    }
}

/// What a recovery cannot undo is reported by `check` (exit 1) and kept
/// for the next one.
#[test]
#[cfg(feature = "failpoints")]
fn what_a_recovery_cannot_undo_is_reported_and_tried_again() {
    let t = Ensure::new();
    let (alone, host, dev, args) = (&t.alone, &t.host, &t.dev, t.args());
    let pid = t.killed_with_loop0_made();

    let out = pipework_env(host, &["check"], &[("PIPEWORK_FAIL_RECOVERY", "1")]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let loop0 = dev.join("loop0");
    let said = format!(
        "interrupted run of pid {pid} (pipework {}): rm {loop0} was not undone: injected failure (PIPEWORK_FAIL_RECOVERY)",
        args.join(" ")
    );
    assert!(stdout(&out).lines().any(|l| l == said), "{said:?} not in:\n{}", stdout(&out));
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    assert_eq!(dev.names(), ["loop0"]);
    assert_eq!(alone.added().len(), 2);

    check_rolls_back(host, pid);
    assert_eq!(dev.names(), Vec::<String>::new());
    assert_eq!(alone.added(), Default::default());
}

/// What was made since a run was killed is not its recovery's: a node put
/// in place of the one it made, a device it added that is bound since.
#[test]
#[cfg(feature = "failpoints")]
fn a_recovery_leaves_what_was_made_since_the_kill() {
    let t = Ensure::new();
    let (alone, host, dev, count) = (&t.alone, &t.host, &t.dev, t.count);
    let pid = t.killed_with_loop0_made();
    let loop0 = dev.join("loop0");
    std::fs::remove_file(&loop0).unwrap();
    run(&["mknod", "-m", "0640", &loop0, "b", "7", "0"]);
    let replaced = listing(&dev.path);
    let (bound, unbound) = (count - 1, count - 2);
    let outside = TempDir::new("out");
    let backing = outside.path.join("backing");
    std::fs::write(&backing, vec![0u8; 1 << 16]).unwrap();
    let node = format!("/dev/loop{bound}");
    run(&["losetup", &node, &backing.to_string_lossy()]);
    let backing_file = format!("/sys/block/loop{bound}/loop/backing_file");
    let detach = Detached(node.clone());

    check_rolls_back(host, pid);
    assert_eq!(listing(&dev.path), replaced);
    assert!(Path::new(&backing_file).exists(), "loop{bound} was unbound");
    assert_eq!(alone.added(), [bound].into(), "loop{unbound} was not removed");
    drop(detach);
}

/// A loop device bound by a test, unbound on drop (before `KernelLoops`
/// removes it).
#[cfg(feature = "failpoints")]
struct Detached(String);

#[cfg(feature = "failpoints")]
impl Drop for Detached {
    fn drop(&mut self) {
        quiet(&["losetup", "-d", &self.0]);
    }
}

/// A container gone since its run was killed took its /dev with it: the
/// recovery removes the kernel devices the run added, and nothing else.
#[test]
#[cfg(feature = "failpoints")]
fn a_recovery_after_the_container_is_gone_removes_the_kernel_devices_only() {
    let alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let ctr = Container::run("loop");
    let count = count_adding_two().to_string();
    let args = ["loop", "ensure", "--count", &count, "--container", &ctr.name];
    // Past the first node's mknod and chgrp.
    let pid = killed_at(&host, &args, count.parse::<usize>().unwrap() + 3);
    assert_eq!(alone.added().len(), 2);
    run(&["docker", "rm", "-f", &ctr.name]);

    check_rolls_back(&host, pid);
    assert_eq!(alone.added(), Default::default());
}
