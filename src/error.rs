//! One error type for the whole tool: a message the operator reads, the
//! stream it goes to and the exit status, as the original script had them.

use std::fmt;

#[derive(Debug)]
pub struct Error {
    message: String,
    /// The original prints a few refusals ("exists and is up", usage) on stdout.
    stdout: bool,
    code: i32,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A refusal worded by the original script: printed as is, exit 1.
    pub fn plain(message: impl Into<String>) -> Self {
        Error { message: message.into(), stdout: false, code: 1 }
    }

    /// A message of our own: prefixed with `pipework: `, exit 1.
    pub fn new(message: impl fmt::Display) -> Self {
        Error::plain(format!("pipework: {message}"))
    }

    /// A refusal the original printed on stdout.
    pub fn stdout(message: impl Into<String>) -> Self {
        Error { stdout: true, ..Error::plain(message) }
    }

    /// A passthrough's own exit status, with nothing more to print.
    pub fn exit(code: i32) -> Self {
        Error { message: String::new(), stdout: false, code }
    }

    pub fn code(&self) -> i32 {
        self.code
    }

    pub fn to_stdout(&self) -> bool {
        self.stdout
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix what we were doing: "creating veth vethXpl1: File exists".
    pub fn context(self, what: impl fmt::Display) -> Self {
        let bare = self.message.strip_prefix("pipework: ").unwrap_or(&self.message);
        Error { message: format!("pipework: {what}: {bare}"), ..self }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Whether an errno means pipework lacks the privilege it needs.
pub fn is_permission(errno: i32) -> bool {
    errno == libc::EPERM || errno == libc::EACCES
}

/// A permission error while `doing` something only root may: said so
/// before anything has changed.
pub fn needs_root(doing: impl fmt::Display) -> Error {
    Error::new(format!("{doing}: permission denied: pipework needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"))
}

/// Describes an errno the way an operator needs it, without "(os error N)".
pub fn errno_text(errno: i32) -> String {
    nix::errno::Errno::from_raw(errno).desc().to_string()
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno) => Error::new(errno_text(errno)),
            None => Error::new(e),
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::new(e.desc())
    }
}
