//! Cgroup hierarchies and groups where LXC would put its containers.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::sweep::init;

/// LXC 4 names a container's cgroup `lxc.payload.<name>`.
pub const LXC_PAYLOAD: &str = "lxc.payload.";
/// Earlier LXC put it under one of these: `lxc/<name>`, `lxc.payload/<name>`.
pub const LXC_PARENTS: &[&str] = &["lxc", "lxc.payload"];

/// A mounted cgroup hierarchy where LXC puts its containers: the cgroup v1
/// one of the `devices` controller, or the cgroup2 one.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub root: PathBuf,
    /// The file of a group that lists its processes.
    procs: &'static str,
}

impl Hierarchy {
    /// Both, as /proc/self/mounts has them (each only if mounted).
    pub(crate) fn all() -> Vec<Hierarchy> {
        Hierarchy::v1_devices().into_iter().chain(Hierarchy::v2()).collect()
    }

    pub fn v1_devices() -> Option<Hierarchy> {
        Hierarchy::mounted(
            |fstype, opts| fstype == "cgroup" && opts.split(',').any(|o| o == "devices"),
            "tasks",
        )
    }

    pub fn v2() -> Option<Hierarchy> {
        Hierarchy::mounted(|fstype, _| fstype == "cgroup2", "cgroup.procs")
    }

    fn mounted(matches: impl Fn(&str, &str) -> bool, procs: &'static str) -> Option<Hierarchy> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
        mounts.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3 && matches(f[2], f[3])).then(|| Hierarchy { root: PathBuf::from(f[1]), procs })
        })
    }

    /// Makes the group `path` (relative, parents included). Its first
    /// component should be an [`owned_name`], optionally after
    /// `lxc.payload.`, so that a killed run's leftovers are swept.
    pub fn group(&self, path: &str) -> Cgroup {
        init();
        let top = self.root.join(Path::new(path).components().next().expect("a cgroup path"));
        let group = Cgroup { hierarchy: self.clone(), top, dir: self.root.join(path), parent: None };
        std::fs::create_dir_all(&group.dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", group.dir.display()));
        group
    }

    /// The same under `parent` (one of [`LXC_PARENTS`]), which is made if
    /// missing and then removed with the group if nothing else is in it.
    /// Only one test at a time may use a parent this makes.
    pub fn group_under(&self, parent: &str, path: &str) -> Cgroup {
        let dir = self.root.join(parent);
        let made = !dir.exists();
        let mut group = Hierarchy { root: dir.clone(), procs: self.procs }.group(path);
        group.hierarchy = self.clone();
        group.parent = made.then_some(dir);
        group
    }

    /// Moves the processes of `dir` and of the groups below it back to the
    /// root group, then removes them all, innermost first.
    pub(crate) fn remove_group(&self, dir: &Path) {
        for child in subdirs(dir) {
            self.remove_group(&child);
        }
        let listed = std::fs::read_to_string(dir.join(self.procs)).unwrap_or_default();
        for pid in listed.lines() {
            let _ = std::fs::write(self.root.join(self.procs), pid);
        }
        // A process that just left can hold the group busy for a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
    }
}

pub(crate) fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect()
}

/// Cgroup directories made by a test, removed on drop (their processes
/// moved back to the root group first).
pub struct Cgroup {
    hierarchy: Hierarchy,
    /// The outermost directory made.
    top: PathBuf,
    /// The group itself, the innermost.
    dir: PathBuf,
    /// A parent group made for it, removed after it.
    parent: Option<PathBuf>,
}

impl Cgroup {
    /// Moves the process `pid` into the group.
    pub fn add(&self, pid: u32) {
        let procs = self.dir.join(self.hierarchy.procs);
        std::fs::write(&procs, pid.to_string())
            .unwrap_or_else(|e| panic!("{pid} > {}: {e}", procs.display()));
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.hierarchy.remove_group(&self.top);
        if let Some(parent) = &self.parent {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
