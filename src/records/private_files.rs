//! The records directory, its `dhcp/`, and the files in them (records, DHCP
//! agents' lease files and logs) are root's alone: 0700 and 0600 whoever makes
//! them first (an attach, the watch service, a DHCP agent), set explicitly
//! so that no umask loosens or tightens them. An existing directory is left
//! as it is: it may be the operator's (`PIPEWORK_STATE_DIR=/srv/x`).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Result};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Makes `dir` and its missing parents, each 0700.
pub fn make_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dir(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)),
        // Made meanwhile by another run: its mode is that run's to set.
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` with `options`, made 0600 if it is created, and 0600 in
/// any case: a lease or log file is never anyone else's to read.
pub fn open(options: &mut OpenOptions, path: &Path) -> Result<File> {
    let file = options.mode(FILE_MODE).open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Writes `text` to the new file `path`, 0600.
pub fn write(path: &Path, text: &[u8]) -> Result<()> {
    use std::io::Write;
    open(OpenOptions::new().create(true).truncate(true).write(true), path)?.write_all(text)
}
