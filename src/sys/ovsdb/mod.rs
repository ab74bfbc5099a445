//! A small OVSDB client (RFC 7047): JSON-RPC over ovsdb-server's Unix
//! socket, enough to run `transact` with typed operations. The OVSDB crates
//! are young; this is the part of the protocol pipework needs, and no more.
//! `value` holds the data and operations as JSON; what the rows mean
//! (bridges, ports) lives in `vswitch`.

mod value;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{errno_text, Error, Kind, Result};
use value::malformed;
pub use value::{Atom, Cond, Datum, Mutation, Op, Outcome, Row};

/// The database every operation here is on.
pub const DATABASE: &str = "Open_vSwitch";

const DEFAULT_RUNDIR: &str = "/var/run/openvswitch";

/// A whole call: ovsdb-server answers in milliseconds, or is stuck.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where ovsdb-server listens, as Open vSwitch's own tools find it:
/// `DB_SOCK` (ovs-ctl's variable), else `$OVS_RUNDIR/db.sock`.
pub fn socket_path() -> PathBuf {
    socket_path_from(|name| std::env::var(name).ok())
}

/// The same, with the variables read through `var`: tests share a process,
/// and with it the environment.
pub fn socket_path_from(var: impl Fn(&str) -> Option<String>) -> PathBuf {
    let set = |name| var(name).filter(|v: &String| !v.is_empty());
    if let Some(sock) = set("DB_SOCK") {
        return PathBuf::from(sock.strip_prefix("unix:").unwrap_or(&sock));
    }
    PathBuf::from(set("OVS_RUNDIR").unwrap_or_else(|| DEFAULT_RUNDIR.into())).join("db.sock")
}

/// A connection to ovsdb-server.
pub struct Ovsdb {
    stream: UnixStream,
    /// Bytes received and not parsed yet: replies arrive back to back,
    /// with no framing but JSON's own.
    pending: Vec<u8>,
    next_id: u64,
    timeout: Duration,
}

impl Ovsdb {
    /// Connects to the socket `socket_path()` names.
    pub async fn connect() -> Result<Ovsdb> {
        Ovsdb::connect_to(&socket_path()).await
    }

    pub async fn connect_to(path: &Path) -> Result<Ovsdb> {
        let unreachable = |why: String| {
            Error::new(Kind::Io, format!(
                "cannot reach ovsdb-server at {}: {why} (is Open vSwitch running? DB_SOCK and OVS_RUNDIR choose the socket)",
                path.display()
            ))
        };
        let stream = match tokio::time::timeout(TIMEOUT, UnixStream::connect(path)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(unreachable(e.raw_os_error().map(errno_text).unwrap_or_else(|| e.to_string())))
            }
            Err(_) => return Err(unreachable("no answer".into())),
        };
        Ok(Ovsdb { stream, pending: Vec::new(), next_id: 0, timeout: TIMEOUT })
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Runs the operations as one transaction; all happen or none does.
    pub async fn transact(&mut self, ops: &[Op]) -> Result<Vec<Outcome>> {
        let mut params = vec![json!(DATABASE)];
        params.extend(ops.iter().map(Op::to_json));
        let reply = self.call("transact", Value::Array(params)).await?;
        let results = reply.as_array().ok_or_else(|| malformed("a transaction result", &reply))?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for (i, result) in results.iter().enumerate() {
            if let Some(error) = result.get("error") {
                // One result more than operations: the commit itself failed.
                let what = ops.get(i).map(Op::describe).unwrap_or_else(|| "commit".into());
                return Err(Error::new(
                    Kind::Conflict,
                    format!("OVSDB refused the transaction ({what}): {}", error_text(error, result)),
                ));
            }
            if i < ops.len() {
                outcomes.push(if result.is_null() {
                    Outcome::default()
                } else {
                    Outcome::from_json(result)?
                });
            }
        }
        if outcomes.len() != ops.len() {
            return Err(malformed("a transaction result", &reply));
        }
        Ok(outcomes)
    }

    /// One JSON-RPC request and its reply, answering the server's echo
    /// requests meanwhile; times out as a whole.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"method": method, "params": params, "id": id});
        match tokio::time::timeout(self.timeout, self.exchange(id, request)).await {
            Ok(reply) => reply,
            Err(_) => Err(Error::new(
                Kind::Timeout,
                format!("ovsdb-server did not answer {method} within {} s", self.timeout.as_secs_f32()),
            )),
        }
    }

    async fn exchange(&mut self, id: u64, request: Value) -> Result<Value> {
        self.send(&request).await?;
        loop {
            let msg = self.receive().await?;
            match msg.get("method").and_then(Value::as_str) {
                Some("echo") => {
                    let params = msg.get("params").cloned().unwrap_or(json!([]));
                    let id = msg.get("id").cloned().unwrap_or(Value::Null);
                    self.send(&json!({"result": params, "error": null, "id": id})).await?;
                    continue;
                }
                // Notifications (monitor updates) are not ours: we set none.
                Some(_) => continue,
                None => {}
            }
            if msg.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            return match msg.get("error") {
                Some(e) if !e.is_null() => {
                    Err(Error::new(Kind::Io, format!("ovsdb-server: {}", error_text(e, &msg))))
                }
                _ => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
            };
        }
    }

    async fn send(&mut self, msg: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(msg)
            .map_err(|e| Error::new(Kind::Internal, format!("encoding an OVSDB request: {e}")))?;
        self.stream.write_all(&bytes).await.map_err(|e| lost(&e))
    }

    /// The next complete JSON value the server sent.
    async fn receive(&mut self) -> Result<Value> {
        loop {
            let mut values = serde_json::Deserializer::from_slice(&self.pending).into_iter::<Value>();
            match values.next() {
                Some(Ok(value)) => {
                    let used = values.byte_offset();
                    self.pending.drain(..used);
                    return Ok(value);
                }
                Some(Err(e)) if !e.is_eof() => {
                    return Err(Error::new(Kind::Io, format!("ovsdb-server sent malformed JSON: {e}")));
                }
                _ => {}
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk).await.map_err(|e| lost(&e))?;
            if n == 0 {
                return Err(Error::new(Kind::Io, "ovsdb-server closed the connection"));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

/// An OVSDB error object (`{"error": "...", "details": "..."}`) or a bare
/// error string, as one line.
fn error_text(error: &Value, whole: &Value) -> String {
    let error = error.as_str().map(String::from).unwrap_or_else(|| error.to_string());
    match whole.get("details").and_then(Value::as_str) {
        Some(details) if !details.is_empty() => format!("{error}: {details}"),
        _ => error,
    }
}

fn lost(e: &std::io::Error) -> Error {
    let why = e.raw_os_error().map(errno_text).unwrap_or_else(|| e.to_string());
    Error::new(Kind::Io, format!("connection to ovsdb-server lost: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's side of a connection, played by the test: an echo
    /// request, another id's reply, then ours in two pieces.
    #[tokio::test]
    async fn echo_is_answered_and_replies_matched_by_id() {
        let (ours, mut server) = UnixStream::pair().unwrap();
        let mut db = Ovsdb { stream: ours, pending: Vec::new(), next_id: 7, timeout: TIMEOUT };
        let serve = async {
            let mut buf = vec![0u8; 4096];
            let n = server.read(&mut buf).await.unwrap();
            let request: Value = serde_json::from_slice(&buf[..n]).unwrap();
            assert_eq!(request, json!({"method": "list_dbs", "params": [], "id": 7}));
            server
                .write_all(
                    br#"{"method":"echo","params":["x"],"id":"echo"} {"id":6,"result":[],"error":null}"#,
                )
                .await
                .unwrap();
            let n = server.read(&mut buf).await.unwrap();
            let echo: Value = serde_json::from_slice(&buf[..n]).unwrap();
            assert_eq!(echo, json!({"result": ["x"], "error": null, "id": "echo"}));
            server.write_all(br#"{"id":7,"result":["Open_"#).await.unwrap();
            server.write_all(br#"vSwitch"],"error":null}"#).await.unwrap();
        };
        let (reply, ()) = tokio::join!(db.call("list_dbs", json!([])), serve);
        assert_eq!(reply.unwrap(), json!(["Open_vSwitch"]));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (ours, _server) = UnixStream::pair().unwrap();
        let mut db =
            Ovsdb { stream: ours, pending: Vec::new(), next_id: 0, timeout: Duration::from_millis(50) };
        let e = db.call("list_dbs", json!([])).await.unwrap_err();
        assert_eq!(e.to_string(), "pipework: ovsdb-server did not answer list_dbs within 0.05 s");
    }

    #[test]
    fn errors_read_as_one_line() {
        let e = json!({"error": "constraint violation", "details": "duplicate name"});
        assert_eq!(error_text(&e["error"], &e), "constraint violation: duplicate name");
        assert_eq!(error_text(&json!("unknown database"), &json!({})), "unknown database");
    }
}
