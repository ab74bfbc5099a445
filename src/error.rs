//! One error type for the whole tool. Its kind says what went wrong and
//! decides the exit status (and, for a CNI plugin, the error code); its
//! message is what the operator reads, on the stream the original used.
//! A netlink refusal keeps the kernel's errno and extended-ACK text, and a
//! failed run carries the failures of its rollback, if any.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, whatever the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command line is wrong, or names something in the wrong form.
    Usage,
    /// A guest, interface, program or file named does not exist.
    NotFound,
    /// Something is in the way: a name taken, a link up, a port elsewhere.
    Conflict,
    /// Not done by this version, this kernel or this kind of interface.
    Unsupported,
    /// The kernel refused a netlink request; see `Error::kernel`.
    KernelRefused,
    /// A system call, file, socket or the Docker API failed.
    Io,
    /// pipework lacks the privilege it needs: it runs as root.
    Permission,
    /// Waited for something that did not happen in time.
    Timeout,
    /// A wait cut short because the service is stopping (`sys::shutdown`).
    Interrupted,
    /// A failure of pipework itself (or one injected by a test build).
    Internal,
    /// A program pipework ran (`tc`, a host DHCP client) failed; its exit
    /// status is passed on, as the original's `exec` and `set -e` did.
    ProgramFailed,
}

/// What the kernel said when it refused a netlink request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelReply {
    pub errno: Option<i32>,
    /// The extended ACK's message, which rtnetlink alone would drop.
    pub text: Option<String>,
}

#[derive(Debug)]
pub struct Error {
    kind: Kind,
    /// The cause's words alone, without the `pipework: ` an operator reads
    /// before them.
    message: String,
    /// What we were doing, innermost first: rendered outer-first before the
    /// cause, "creating veth vethXpl1: File exists".
    context: Vec<String>,
    /// Worded by another: the original script, or `ip` for a refusal it
    /// words. Printed as is, without the prefix.
    verbatim: bool,
    /// The original prints a few refusals ("exists and is up", usage) on stdout.
    stdout: bool,
    kernel: Option<KernelReply>,
    /// Undo steps that failed while this run was rolled back.
    rollback: Vec<Error>,
    /// The exit status, where it is not 1: a program's own, passed on, or
    /// `ip`'s for a refusal worded as `ip` words it.
    status: Option<i32>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A message of our own: printed after `pipework: `.
    pub fn new(kind: Kind, message: impl fmt::Display) -> Self {
        Error { verbatim: false, ..Error::verbatim(kind, message.to_string()) }
    }

    /// A refusal worded as the original script (or `ip`) words it: printed
    /// as is.
    pub fn verbatim(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            verbatim: true,
            stdout: false,
            kernel: None,
            rollback: Vec::new(),
            status: None,
        }
    }

    /// A refusal of the kernel's, with what it said.
    pub fn kernel(message: impl fmt::Display, reply: KernelReply) -> Self {
        Error { kernel: Some(reply), ..Error::new(Kind::KernelRefused, message) }
    }

    /// A program that printed its own words and exited with `code`:
    /// pipework prints nothing more and exits with the same status.
    pub fn program_status(code: i32) -> Self {
        Error::verbatim(Kind::ProgramFailed, "").with_status(code)
    }

    /// Exit with `code` instead of 1, as the program whose words these are.
    pub fn with_status(self, code: i32) -> Self {
        Error { status: Some(code), ..self }
    }

    /// Printed on stdout, as the original printed this refusal.
    pub fn on_stdout(self) -> Self {
        Error { stdout: true, ..self }
    }

    /// The failures of the rollback that followed this one.
    pub fn with_rollback(self, rollback: Vec<Error>) -> Self {
        Error { rollback, ..self }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The exit status: a passed-on status as it is; 1 for every other
    /// refusal and failure, as the original script had it.
    pub fn code(&self) -> i32 {
        self.status.unwrap_or(1)
    }

    pub fn to_stdout(&self) -> bool {
        self.stdout
    }

    /// The words, what we were doing first, without the `pipework: ` that
    /// `Display` puts before ours.
    pub fn message(&self) -> Cow<'_, str> {
        match self.context.is_empty() {
            true => Cow::Borrowed(&self.message),
            false => Cow::Owned(self.chain().chain([self.cause()]).collect::<Vec<_>>().join(": ")),
        }
    }

    /// The innermost words: what failed, without what we were doing.
    pub fn cause(&self) -> &str {
        &self.message
    }

    /// What we were doing when it failed, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &str> {
        self.context.iter().rev().map(String::as_str)
    }

    pub fn kernel_reply(&self) -> Option<&KernelReply> {
        self.kernel.as_ref()
    }

    pub fn rollback(&self) -> &[Error] {
        &self.rollback
    }

    /// Prefix what we were doing: "creating veth vethXpl1: File exists".
    /// The result is ours, whoever worded the cause.
    pub fn context(self, what: impl fmt::Display) -> Self {
        let mut context = self.context;
        context.push(what.to_string());
        Error { context, verbatim: false, ..self }
    }
}

/// What prints an error puts before the words of our own.
pub const PREFIX: &str = "pipework: ";

/// The line an operator reads: ours after `pipework: `, the original's as is.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.verbatim {
            f.write_str(PREFIX)?;
        }
        for doing in self.chain() {
            write!(f, "{doing}: ")?;
        }
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
    Error::new(
        Kind::Permission,
        format!("{doing}: permission denied: pipework needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"),
    )
}

/// Describes an errno the way an operator needs it, without "(os error N)".
pub fn errno_text(errno: i32) -> String {
    nix::errno::Errno::from_raw(errno).desc().to_string()
}

/// One line naming `path`: "creating /dev/loop8: permission denied".
pub fn failed(doing: &str, path: &std::path::Path, e: std::io::Error) -> Error {
    let why = match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => "permission denied".to_string(),
        Some(errno) => errno_text(errno),
        None => e.to_string(),
    };
    Error::new(Kind::Io, format!("{doing} {}: {why}", path.display()))
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno) => Error::new(Kind::Io, errno_text(errno)),
            None => Error::new(Kind::Io, e),
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::new(Kind::Io, e.desc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_kind_and_one_prefix() {
        let e = Error::verbatim(Kind::NotFound, "Error: No such object: c1").context("finding c1");
        assert_eq!(e.to_string(), "pipework: finding c1: Error: No such object: c1");
        assert_eq!(e.message(), "finding c1: Error: No such object: c1");
        assert_eq!((e.kind(), e.code()), (Kind::NotFound, 1));
        let e = Error::new(Kind::Conflict, "x").context("a").context("b");
        assert_eq!(e.to_string(), "pipework: b: a: x");
        assert_eq!((e.message().as_ref(), e.cause()), ("b: a: x", "x"));
        assert_eq!(e.chain().collect::<Vec<_>>(), ["b", "a"]);
    }

    #[test]
    fn exit_status_is_one_unless_passed_on() {
        assert_eq!(Error::program_status(2).code(), 2);
        assert_eq!(Error::new(Kind::Usage, "bad").code(), 1);
        assert!(Error::program_status(3).message().is_empty());
        let e = Error::verbatim(Kind::KernelRefused, "RTNETLINK answers: File exists").with_status(2);
        assert_eq!((e.code(), e.context("adding").code()), (2, 2));
    }
}
