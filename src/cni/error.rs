//! CNI errors: the spec's error object (`cniVersion`, `code`, `msg`,
//! `details`), printed on stdout with a non-zero exit.

use std::fmt;

use serde_json::{json, Value};

/// The spec's well-known codes (0-99); `Internal` is libcni's 999, which the
/// reference plugins use for everything else (kernel, netlink, I/O on links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decoding = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    NotAvailable = 50,
    Internal = 999,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

pub type CniResult<T> = std::result::Result<T, CniError>;

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> CniError {
        CniError { code: code as u32, msg: msg.into(), details: String::new() }
    }

    pub fn with_details(self, details: impl Into<String>) -> CniError {
        CniError { details: details.into(), ..self }
    }

    /// An error object another plugin (IPAM) printed, passed on as it is.
    pub fn from_plugin(code: u32, msg: String, details: String) -> CniError {
        CniError { code, msg, details }
    }

    /// The JSON object for stdout, in the version the request used.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut obj = json!({ "cniVersion": cni_version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            obj["details"] = Value::String(self.details.clone());
        }
        obj
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.details.is_empty() {
            true => write!(f, "{} (code {})", self.msg, self.code),
            false => write!(f, "{}: {} (code {})", self.msg, self.details, self.code),
        }
    }
}

/// What the rest of pipework reports, by its kind: a wait that ran out is
/// worth a retry, a failed system call an I/O failure, anything else
/// (netlink, a name taken, a link gone) the plugin's internal failure. Its
/// text already names what failed; undo steps that failed go in `details`.
impl From<crate::error::Error> for CniError {
    fn from(e: crate::error::Error) -> CniError {
        use crate::error::Kind;
        let code = match e.kind() {
            Kind::Timeout => Code::TryAgainLater,
            Kind::Io => Code::Io,
            _ => Code::Internal,
        };
        let undo: Vec<_> = e.rollback().iter().map(crate::error::Error::message).collect();
        CniError::new(code, e.message()).with_details(undo.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_object_has_the_spec_fields() {
        let e = CniError::new(Code::InvalidConfig, "bad").with_details("why");
        assert_eq!(
            e.to_json("1.1.0"),
            json!({"cniVersion": "1.1.0", "code": 7, "msg": "bad", "details": "why"})
        );
        assert_eq!(
            CniError::new(Code::Io, "x").to_json("0.4.0"),
            json!({"cniVersion": "0.4.0", "code": 5, "msg": "x"})
        );
    }
}
