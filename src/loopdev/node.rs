//! Which loop nodes a directory lacks, what is in the way of one, and the
//! report of what a run did.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::sys::devdir::{Node, Wanted};

/// The block major of loop devices (LOOP_MAJOR in <linux/major.h>).
pub const LOOP_MAJOR: u32 = 7;
/// What udev gives block devices, and the runbook's `mknod -m0660`.
pub const NODE_MODE: u32 = 0o660;

/// The node of loop device `i`.
pub fn wanted(i: u32) -> Wanted {
    Wanted { name: format!("loop{i}"), major: LOOP_MAJOR, minor: i, mode: NODE_MODE, kind: "loop device" }
}

pub fn node_path(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("loop{i}"))
}

/// Which of loop0..loop(N-1) must be made, given what is at each path; the
/// first thing in the way is an error naming it.
pub fn nodes_to_make(dir: &Path, found: &[Node]) -> Result<Vec<u32>> {
    let mut todo = Vec::new();
    for (i, node) in (0..).zip(found) {
        if needs_node(&node_path(dir, i), i, node)? {
            todo.push(i);
        }
    }
    Ok(todo)
}

/// Whether loop device `i` still needs its node at `path`. An existing node
/// 7:i is kept whatever its mode; anything else is left alone and refused.
pub fn needs_node(path: &Path, i: u32, node: &Node) -> Result<bool> {
    wanted(i).needs(path, node)
}

/// One line per kernel device added and node made, or one saying that all
/// were there.
pub fn report(dir: &Path, count: u32, added: &[u32], made: &[u32]) -> Vec<String> {
    let mut lines: Vec<String> = added.iter().map(|i| format!("added kernel device loop{i}")).collect();
    lines.extend(
        made.iter().map(|&i| format!("created {} (block {LOOP_MAJOR}:{i})", node_path(dir, i).display())),
    );
    if lines.is_empty() {
        lines.push(match count {
            0 => "nothing to do: no loop device asked for".to_string(),
            1 => "nothing to do: loop0 exists".to_string(),
            n => format!("nothing to do: loop0 to loop{} exist", n - 1),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_missing_node_is_made_and_the_right_one_kept_whatever_its_mode() {
        let p = Path::new("/d/loop3");
        assert!(needs_node(p, 3, &Node::Missing).unwrap());
        assert!(!needs_node(p, 3, &Node::Block(7, 3)).unwrap());
    }

    #[test]
    fn anything_else_in_the_way_is_refused_by_name() {
        let p = Path::new("/d/loop3");
        assert_eq!(
            msg(needs_node(p, 3, &Node::Block(7, 4))),
            "pipework: /d/loop3 is block device 7:4, not loop device 7:3; leaving it alone"
        );
        assert_eq!(
            msg(needs_node(p, 3, &Node::Block(8, 3))),
            "pipework: /d/loop3 is block device 8:3, not loop device 7:3; leaving it alone"
        );
        assert_eq!(
            msg(needs_node(p, 3, &Node::Other("a regular file"))),
            "pipework: /d/loop3 is a regular file, not loop device 7:3; leaving it alone"
        );
    }

    #[test]
    fn only_the_missing_nodes_are_made() {
        let found = [Node::Block(7, 0), Node::Missing, Node::Block(7, 2), Node::Missing];
        assert_eq!(nodes_to_make(Path::new("/d"), &found).unwrap(), vec![1, 3]);
    }

    #[test]
    fn one_thing_in_the_way_refuses_the_whole_run() {
        let found = [Node::Missing, Node::Missing, Node::Other("a directory"), Node::Missing];
        assert!(msg(nodes_to_make(Path::new("/d"), &found)).contains("/d/loop2 is a directory"));
    }

    #[test]
    fn the_report_says_each_thing_done_or_that_there_was_nothing() {
        let dir = Path::new("/dev");
        assert_eq!(
            report(dir, 10, &[8, 9], &[9]),
            ["added kernel device loop8", "added kernel device loop9", "created /dev/loop9 (block 7:9)"]
        );
        assert_eq!(report(dir, 8, &[], &[]), ["nothing to do: loop0 to loop7 exist"]);
        assert_eq!(report(dir, 1, &[], &[]), ["nothing to do: loop0 exists"]);
    }
}
