//! `pipework loop free` and `pipework loop ensure`, on the real kernel.
//!
//! Nodes are only ever made in temporary directories and in containers'
//! /dev, never in the machine's own /dev. The kernel may gain loop devices
//! (LOOP_CTL_ADD, or LOOP_CTL_GET_FREE when all are bound); each test removes
//! those again, and runs alone so that it does not remove another's.

mod common;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use common::*;

/// Held for a whole test: no other test of this file runs meanwhile, and
/// the kernel's loop devices are put back as they were (fields drop in order).
struct Alone {
    kernel: KernelLoops,
    _lock: MutexGuard<'static, ()>,
}

fn alone() -> Alone {
    static LOCK: Mutex<()> = Mutex::new(());
    let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Alone { kernel: KernelLoops::note(), _lock: lock }
}

#[track_caller]
fn assert_loop_node(path: &Path, i: u32) {
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
    let _alone = alone();
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
    let _alone = alone();
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
    let _alone = alone();
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
    let _alone = alone();
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
    let alone = alone();
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
    let gained = alone.kernel.added();
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
    let _alone = alone();
    let host = Netns::new("loop");
    let guest = Netns::new("bare");
    let args = ["loop", "ensure", "--count", "2", "--container", &guest.path()];
    let out = pipework(&host, &args);
    assert_failed_naming(&args, &out, &guest.path());
}

#[test]
fn a_missing_or_non_directory_dev_is_refused_by_name() {
    let _alone = alone();
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
    let _alone = alone();
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
    let _alone = alone();
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
    let _alone = alone();
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
