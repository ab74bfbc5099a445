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

/// `pipework loop ensure ...` in `host`, started and left running, with
/// PIPEWORK_PAUSE_AT=`pause`. `ip netns exec` execs pipework in place, so
/// the child's pid is pipework's.
#[cfg(feature = "failpoints")]
fn spawn_paused(host: &Netns, args: &[&str], pause: usize) -> std::process::Child {
    std::process::Command::new("ip")
        .args(["netns", "exec", &host.name, PIPEWORK])
        .args(args)
        .env("PIPEWORK_PAUSE_AT", pause.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run pipework")
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
    let alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let dev = TempDir::new("dev");
    let count = count_adding_two();
    let args = ensure_args(count, &dev);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // One step per device (add if missing), two per node (mknod, chgrp).
    let steps = 3 * count as usize;
    for n in 1..=steps {
        let out = pipework_env(&host, &args, &[("PIPEWORK_FAIL_AT", &n.to_string())]);
        assert_refused_with(&args, &out, "pipework: injected failure (PIPEWORK_FAIL_AT)");
        assert_eq!(dev.names(), Vec::<String>::new(), "failing at step {n} left nodes");
        assert_eq!(alone.added(), Default::default(), "failing at step {n} left kernel devices");
    }
    let out = pipework_env(&host, &args, &[("PIPEWORK_FAIL_AT", &(steps + 1).to_string())]);
    assert_success(&out);
    assert_eq!(dev.names().len(), count as usize);
    assert_eq!(alone.added().len(), 2);
}

#[test]
#[cfg(feature = "failpoints")]
fn sigterm_mid_ensure_leaves_every_node_made() {
    use std::os::unix::process::ExitStatusExt;
    let _alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let dev = TempDir::new("dev");
    let count = count_adding_two();
    let args = ensure_args(count, &dev);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Paused before the chgrp of loop0, its node made.
    let run = spawn_paused(&host, &args, count as usize + 2);
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
    let alone = KernelLoops::alone();
    let host = Netns::new("loop");
    let dev = TempDir::new("dev");
    let outside = TempDir::new("out");
    let target = outside.path.join("secret");
    let before = bait(&target);
    let count = count_adding_two();
    let args = ensure_args(count, &dev);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let run = spawn_paused(&host, &args, count as usize + 2);
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
