//! The CNI environment: CNI_COMMAND and the variables each command needs,
//! checked before anything reads stdin or touches the system.

use std::path::PathBuf;

use super::error::{CniError, CniResult, Code};
use crate::request::check_ifname;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    fn parse(text: &str) -> Option<Command> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// The variables the spec makes mandatory for this command. DEL may come
    /// without CNI_NETNS (the namespace may be gone already).
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            Command::Status | Command::Gc => &["CNI_PATH"],
            Command::Version => &[],
        }
    }
}

/// Everything the runtime passed in the environment.
#[derive(Debug, Clone)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    /// Empty on a DEL whose namespace is gone.
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS as key/value pairs, in order.
    pub args: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Whether CNI_COMMAND is set at all: the binary is then a CNI plugin.
    pub fn is_plugin_call(get: impl Fn(&str) -> Option<String>) -> bool {
        get("CNI_COMMAND").is_some()
    }

    /// Reads and validates the variables through `get` (the process
    /// environment, or a map in tests).
    pub fn read(get: impl Fn(&str) -> Option<String>) -> CniResult<Env> {
        let command_text = get("CNI_COMMAND").unwrap_or_default();
        let command = Command::parse(&command_text).ok_or_else(|| {
            CniError::new(Code::InvalidEnvironment, format!("unknown CNI_COMMAND \"{command_text}\""))
                .with_details("CNI_COMMAND is one of ADD, DEL, CHECK, STATUS, GC, VERSION")
        })?;
        let value = |name: &str| get(name).filter(|v| !v.is_empty());
        let missing: Vec<&str> = command.required().iter().copied().filter(|n| value(n).is_none()).collect();
        if !missing.is_empty() {
            return Err(CniError::new(
                Code::InvalidEnvironment,
                format!("required env variables [{}] missing", missing.join(" ")),
            ));
        }
        // What a command does not use is not read: libcni's VERSION call
        // passes "dummy" for the container's variables.
        let used = |name: &str| match command {
            Command::Version => false,
            Command::Status | Command::Gc => name == "CNI_PATH",
            Command::Add | Command::Del | Command::Check => true,
        };
        let read = |name: &str| value(name).filter(|_| used(name)).unwrap_or_default();
        let env = Env {
            command,
            container_id: read("CNI_CONTAINERID"),
            netns: read("CNI_NETNS"),
            ifname: read("CNI_IFNAME"),
            args: parse_args(&read("CNI_ARGS"))?,
            path: split_path(&read("CNI_PATH")),
        };
        env.validate()?;
        Ok(env)
    }

    fn validate(&self) -> CniResult<()> {
        if !self.container_id.is_empty() && !valid_container_id(&self.container_id) {
            return Err(CniError::new(
                Code::InvalidEnvironment,
                format!("invalid CNI_CONTAINERID \"{}\"", self.container_id),
            )
            .with_details("it starts with a letter or digit, then letters, digits, '_', '.' or '-'"));
        }
        if !self.ifname.is_empty() {
            check_ifname(&self.ifname).map_err(|e| {
                CniError::new(Code::InvalidEnvironment, format!("invalid CNI_IFNAME \"{}\"", self.ifname))
                    .with_details(e)
            })?;
        }
        if !self.netns.is_empty() && !self.netns.starts_with('/') {
            return Err(CniError::new(
                Code::InvalidEnvironment,
                format!("invalid CNI_NETNS \"{}\": not an absolute path", self.netns),
            ));
        }
        Ok(())
    }

    /// A CNI_ARGS value by key.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The spec's container ID: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `FOO=BAR;ABC=123`.
fn parse_args(text: &str) -> CniResult<Vec<(String, String)>> {
    text.split(';')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CniError::new(Code::InvalidEnvironment, format!("invalid CNI_ARGS pair \"{pair}\""))
                .with_details("CNI_ARGS is KEY=VALUE pairs separated by ';'")),
        })
        .collect()
}

fn split_path(text: &str) -> Vec<PathBuf> {
    text.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CniResult<Env> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env::read(|k| map.get(k).cloned())
    }

    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc-1.2_3"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    #[test]
    fn add_with_everything() {
        let mut pairs = ADD.to_vec();
        pairs.push(("CNI_ARGS", "IgnoreUnknown=1;MAC=02:00:00:00:00:01"));
        let e = env(&pairs).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.path, vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]);
        assert_eq!(e.arg("MAC"), Some("02:00:00:00:00:01"));
        assert_eq!(e.arg("IgnoreUnknown"), Some("1"));
    }

    #[test]
    fn missing_variables_are_named() {
        let e = env(&ADD[..2]).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (4, "required env variables [CNI_NETNS CNI_IFNAME CNI_PATH] missing")
        );
    }

    #[test]
    fn del_needs_no_netns_version_needs_nothing() {
        let del: Vec<_> = ADD
            .iter()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .map(|&(k, v)| if k == "CNI_COMMAND" { (k, "DEL") } else { (k, v) })
            .collect();
        assert_eq!(env(&del).unwrap().netns, "");
        assert_eq!(env(&[("CNI_COMMAND", "VERSION")]).unwrap().command, Command::Version);
        let dummy = [("CNI_COMMAND", "VERSION"), ("CNI_NETNS", "dummy"), ("CNI_ARGS", "x")];
        assert_eq!(env(&dummy).unwrap().netns, "", "VERSION reads nothing else");
        assert_eq!(
            env(&[("CNI_COMMAND", "GC")]).unwrap_err().msg,
            "required env variables [CNI_PATH] missing"
        );
    }

    #[test]
    fn refuses_bad_values() {
        let bad = |k: &str, v: &str| {
            let pairs: Vec<_> =
                ADD.iter().map(|&(key, val)| if key == k { (key, v) } else { (key, val) }).collect();
            let e = env(&pairs).unwrap_err();
            assert_eq!(e.code, 4, "{k}={v}");
            e.msg
        };
        assert_eq!(bad("CNI_COMMAND", "ATTACH"), "unknown CNI_COMMAND \"ATTACH\"");
        assert_eq!(bad("CNI_CONTAINERID", "-x"), "invalid CNI_CONTAINERID \"-x\"");
        assert_eq!(bad("CNI_CONTAINERID", "a/b"), "invalid CNI_CONTAINERID \"a/b\"");
        assert_eq!(bad("CNI_IFNAME", "a-very-long-ifname0"), "invalid CNI_IFNAME \"a-very-long-ifname0\"");
        assert_eq!(bad("CNI_NETNS", "netns"), "invalid CNI_NETNS \"netns\": not an absolute path");
        let mut pairs = ADD.to_vec();
        pairs.push(("CNI_ARGS", "MAC"));
        assert_eq!(env(&pairs).unwrap_err().msg, "invalid CNI_ARGS pair \"MAC\"");
    }
}
