//! Everything pipework prints on stdout goes through here. A full stdout,
//! or a pipe nobody reads, is then an error with a message, as in coreutils
//! ("pipework: write error: No space left on device", exit 1), never a
//! panic of `println!`; what pipework says on stderr is best effort. (A
//! stdout closed at start is /dev/null to a Rust program: std reopens it.)

use std::io::{self, Write};

use crate::error::{errno_text, Error, Kind, Result, PREFIX};

/// `text` on stdout as is, flushed.
pub fn print(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(write_error)
}

/// Each line on stdout, ended by a newline.
pub fn lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(line.as_ref());
        text.push('\n');
    }
    print(&text)
}

/// A line on stderr: an error as it prints itself (`Display` puts the
/// prefix before words of our own). Nothing is left to tell if that fails.
pub fn warn(line: impl std::fmt::Display) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// A warning of our own on stderr, after `pipework: ` as errors are.
pub fn warning(text: impl std::fmt::Display) {
    warn(format_args!("{PREFIX}{text}"));
}

fn write_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(errno) => Error::new(Kind::Io, format!("write error: {}", errno_text(errno))),
        None => Error::new(Kind::Io, format!("write error: {e}")),
    }
}
