//! Replays the fuzz corpus, `fuzz/corpus/<target>/*`, through the same
//! calls as the cargo-fuzz targets (fuzz/inputs.rs): a plain `cargo test`
//! then catches a panic on any input the fuzzer found or was seeded with,
//! without a nightly toolchain. Fuzzing itself: fuzz/README.md.

#[path = "../../fuzz/inputs.rs"]
mod inputs;

use std::path::Path;

/// Runs every input of `target`; each must return without a panic.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{}: only {} inputs", dir.display(), files.len());
    let panicked: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).expect("corpus file");
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(panicked.is_empty(), "{target}: these inputs panic:\n{}", panicked.join("\n"));
}

#[test]
fn command_line_corpus() {
    replay("cli", inputs::cli);
}

#[test]
fn route_and_rule_corpus() {
    replay("route_rule", inputs::route_rule);
}
