//! The CNI versions this plugin speaks, and what each one changes in the
//! shape of a result.

use std::fmt;

use super::error::{CniError, CniResult, Code};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

pub const SUPPORTED: [Version; 5] =
    [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0, Version::V1_0_0, Version::V1_1_0];

pub const LATEST: Version = Version::V1_1_0;

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// A configuration's `cniVersion`; a missing one is 0.1.0 as libcni
    /// reads it, which this plugin does not speak.
    pub fn parse(text: Option<&str>) -> CniResult<Version> {
        let text = text.unwrap_or("0.1.0");
        SUPPORTED.into_iter().find(|v| v.as_str() == text).ok_or_else(|| {
            let list: Vec<String> = SUPPORTED.iter().map(|v| format!("\"{v}\"")).collect();
            CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "incompatible CNI versions; config is \"{text}\", plugin supports [{}]",
                    list.join(", ")
                ),
            )
        })
    }

    /// 0.3.x and 0.4.0 results carry `"version": "4"|"6"` on each IP.
    pub fn ips_have_family(self) -> bool {
        self < Version::V1_0_0
    }

    /// CHECK came with 0.4.0; STATUS and GC with 1.1.0.
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    pub fn has_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }

    /// 1.1.0 added an interface's `mtu`, `socketPath`, `pciID` and a route's
    /// `mtu`, `advmss`, `priority`, `table`, `scope`.
    pub fn has_1_1_fields(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_and_refuses_the_rest() {
        assert_eq!(Version::parse(Some("0.3.1")).unwrap(), Version::V0_3_1);
        assert_eq!(Version::parse(Some("1.1.0")).unwrap(), Version::V1_1_0);
        let e = Version::parse(Some("0.2.0")).unwrap_err();
        assert_eq!(e.code, 1);
        assert_eq!(
            e.msg,
            "incompatible CNI versions; config is \"0.2.0\", plugin supports \
             [\"0.3.0\", \"0.3.1\", \"0.4.0\", \"1.0.0\", \"1.1.0\"]"
        );
        assert_eq!(Version::parse(None).unwrap_err().code, 1);
    }
}
