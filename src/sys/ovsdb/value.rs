//! OVSDB's data and operations as RFC 7047 encodes them in JSON: atoms,
//! sets and maps (`Datum`), conditions, mutations, the operations of a
//! `transact`, and what each returned.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{Error, Kind, Result};

/// One value of a column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    Str(String),
    Int(i64),
    Real(f64),
    Bool(bool),
    Uuid(String),
    /// A row inserted earlier in the same transaction, by its `uuid-name`.
    NamedUuid(String),
}

/// A column's value: OVSDB encodes sets and maps with a tag, and a set of
/// one as the bare atom.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Atom(Atom),
    Set(Vec<Atom>),
    Map(Vec<(Atom, Atom)>),
}

/// A row as the server returns it (only the selected columns).
pub type Row = BTreeMap<String, Datum>;

impl Atom {
    fn to_json(&self) -> Value {
        match self {
            Atom::Str(s) => json!(s),
            Atom::Int(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Bool(b) => json!(b),
            Atom::Uuid(u) => json!(["uuid", u]),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    fn from_json(v: &Value) -> Result<Atom> {
        Ok(match v {
            Value::String(s) => Atom::Str(s.clone()),
            Value::Bool(b) => Atom::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Atom::Int(i),
                None => Atom::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::Array(a) => match (a.first().and_then(Value::as_str), a.get(1).and_then(Value::as_str)) {
                (Some("uuid"), Some(u)) if a.len() == 2 => Atom::Uuid(u.into()),
                (Some("named-uuid"), Some(n)) if a.len() == 2 => Atom::NamedUuid(n.into()),
                _ => return Err(malformed("an atom", v)),
            },
            _ => return Err(malformed("an atom", v)),
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::Str(s) | Atom::Uuid(s) => Some(s),
            _ => None,
        }
    }
}

impl Datum {
    pub fn str(s: impl Into<String>) -> Datum {
        Datum::Atom(Atom::Str(s.into()))
    }

    pub fn int(i: i64) -> Datum {
        Datum::Atom(Atom::Int(i))
    }

    pub fn uuid(u: impl Into<String>) -> Datum {
        Datum::Atom(Atom::Uuid(u.into()))
    }

    pub fn named(n: impl Into<String>) -> Datum {
        Datum::Atom(Atom::NamedUuid(n.into()))
    }

    /// The empty set: an optional column with no value.
    pub fn empty() -> Datum {
        Datum::Set(Vec::new())
    }

    /// A string-to-string map, such as `external_ids`.
    pub fn str_map<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Datum {
        Datum::Map(pairs.into_iter().map(|(k, v)| (Atom::Str(k.into()), Atom::Str(v.into()))).collect())
    }

    pub fn to_json(&self) -> Value {
        match self {
            Datum::Atom(a) => a.to_json(),
            Datum::Set(items) => json!(["set", items.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(pairs) => {
                let pairs: Vec<Value> =
                    pairs.iter().map(|(k, v)| json!([k.to_json(), v.to_json()])).collect();
                json!(["map", pairs])
            }
        }
    }

    pub fn from_json(v: &Value) -> Result<Datum> {
        let tagged = v.as_array().filter(|a| a.len() == 2).and_then(|a| Some((a[0].as_str()?, &a[1])));
        match tagged {
            Some(("set", Value::Array(items))) => {
                Ok(Datum::Set(items.iter().map(Atom::from_json).collect::<Result<_>>()?))
            }
            Some(("map", Value::Array(pairs))) => {
                let pair = |p: &Value| match p.as_array().map(Vec::as_slice) {
                    Some([k, v]) => Ok((Atom::from_json(k)?, Atom::from_json(v)?)),
                    _ => Err(malformed("a map pair", p)),
                };
                Ok(Datum::Map(pairs.iter().map(pair).collect::<Result<_>>()?))
            }
            _ => Ok(Datum::Atom(Atom::from_json(v)?)),
        }
    }

    /// The values of a set (one for a bare atom, none for a map).
    pub fn atoms(&self) -> &[Atom] {
        match self {
            Datum::Atom(a) => std::slice::from_ref(a),
            Datum::Set(items) => items,
            Datum::Map(_) => &[],
        }
    }

    /// The single value of a column that has one (a string or a UUID).
    pub fn as_str(&self) -> Option<&str> {
        match self.atoms() {
            [a] => a.as_str(),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.atoms() {
            [Atom::Int(i)] => Some(*i),
            _ => None,
        }
    }

    /// A string-to-string map; other entries are skipped.
    pub fn as_str_map(&self) -> BTreeMap<String, String> {
        let Datum::Map(pairs) = self else { return BTreeMap::new() };
        pairs.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect()
    }
}

/// `[column, function, value]`: which rows an operation touches.
#[derive(Debug, Clone)]
pub struct Cond(pub String, pub &'static str, pub Datum);

impl Cond {
    pub fn eq(column: &str, value: Datum) -> Cond {
        Cond(column.into(), "==", value)
    }

    pub fn uuid(uuid: &str) -> Cond {
        Cond::eq("_uuid", Datum::uuid(uuid))
    }

    fn to_json(&self) -> Value {
        json!([self.0, self.1, self.2.to_json()])
    }
}

/// `[column, mutator, value]`: `insert`/`delete` on sets and maps, `+=` on
/// integers.
#[derive(Debug, Clone)]
pub struct Mutation(pub String, pub &'static str, pub Datum);

impl Mutation {
    pub fn insert(column: &str, value: Datum) -> Mutation {
        Mutation(column.into(), "insert", value)
    }

    pub fn delete(column: &str, value: Datum) -> Mutation {
        Mutation(column.into(), "delete", value)
    }

    pub fn add(column: &str, n: i64) -> Mutation {
        Mutation(column.into(), "+=", Datum::int(n))
    }

    fn to_json(&self) -> Value {
        json!([self.0, self.1, self.2.to_json()])
    }
}

/// The operations of RFC 7047 section 5.2 that pipework uses.
#[derive(Debug, Clone)]
pub enum Op {
    Select {
        table: String,
        conds: Vec<Cond>,
        columns: Vec<String>,
    },
    /// `uuid_name` lets later operations of the transaction refer to the row.
    Insert {
        table: String,
        row: Vec<(String, Datum)>,
        uuid_name: Option<String>,
    },
    Update {
        table: String,
        conds: Vec<Cond>,
        row: Vec<(String, Datum)>,
    },
    Mutate {
        table: String,
        conds: Vec<Cond>,
        mutations: Vec<Mutation>,
    },
    Delete {
        table: String,
        conds: Vec<Cond>,
    },
    /// Blocks (up to `timeout_ms`) until the selected columns of the rows
    /// matching `conds` are (`equal`) or are not exactly `rows`; fails the
    /// transaction otherwise.
    Wait {
        table: String,
        conds: Vec<Cond>,
        columns: Vec<String>,
        equal: bool,
        rows: Vec<Vec<(String, Datum)>>,
        timeout_ms: Option<u64>,
    },
    /// Recorded in the database log, for whoever reads it later.
    Comment(String),
}

fn row_json(row: &[(String, Datum)]) -> Value {
    Value::Object(row.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

fn conds_json(conds: &[Cond]) -> Value {
    Value::Array(conds.iter().map(Cond::to_json).collect())
}

impl Op {
    pub fn to_json(&self) -> Value {
        match self {
            Op::Select { table, conds, columns } => {
                json!({"op": "select", "table": table, "where": conds_json(conds), "columns": columns})
            }
            Op::Insert { table, row, uuid_name } => {
                let mut op = json!({"op": "insert", "table": table, "row": row_json(row)});
                if let Some(name) = uuid_name {
                    op["uuid-name"] = json!(name);
                }
                op
            }
            Op::Update { table, conds, row } => {
                json!({"op": "update", "table": table, "where": conds_json(conds), "row": row_json(row)})
            }
            Op::Mutate { table, conds, mutations } => {
                let mutations: Vec<Value> = mutations.iter().map(Mutation::to_json).collect();
                json!({"op": "mutate", "table": table, "where": conds_json(conds), "mutations": mutations})
            }
            Op::Delete { table, conds } => {
                json!({"op": "delete", "table": table, "where": conds_json(conds)})
            }
            Op::Wait { table, conds, columns, equal, rows, timeout_ms } => {
                let rows: Vec<Value> = rows.iter().map(|r| row_json(r)).collect();
                let until = if *equal { "==" } else { "!=" };
                let mut op = json!({"op": "wait", "table": table, "where": conds_json(conds),
                    "columns": columns, "until": until, "rows": rows});
                if let Some(ms) = timeout_ms {
                    op["timeout"] = json!(ms);
                }
                op
            }
            Op::Comment(text) => json!({"op": "comment", "comment": text}),
        }
    }

    /// "insert into Port", for error messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Op::Select { table, .. } => format!("select from {table}"),
            Op::Insert { table, .. } => format!("insert into {table}"),
            Op::Update { table, .. } => format!("update of {table}"),
            Op::Mutate { table, .. } => format!("mutate of {table}"),
            Op::Delete { table, .. } => format!("delete from {table}"),
            Op::Wait { table, .. } => format!("wait on {table}"),
            Op::Comment(_) => "comment".into(),
        }
    }
}

/// What one operation returned: the inserted row's UUID, selected rows, or
/// how many rows were updated, mutated or deleted.
#[derive(Debug, Default)]
pub struct Outcome {
    pub uuid: Option<String>,
    pub rows: Vec<Row>,
    pub count: Option<u64>,
}

impl Outcome {
    pub(super) fn from_json(v: &Value) -> Result<Outcome> {
        let mut out = Outcome { count: v.get("count").and_then(Value::as_u64), ..Outcome::default() };
        if let Some(uuid) = v.get("uuid") {
            out.uuid = Atom::from_json(uuid)?.as_str().map(String::from);
        }
        for row in v.get("rows").and_then(Value::as_array).into_iter().flatten() {
            let row = row.as_object().ok_or_else(|| malformed("a row", row))?;
            out.rows
                .push(row.iter().map(|(k, v)| Ok((k.clone(), Datum::from_json(v)?))).collect::<Result<_>>()?);
        }
        Ok(out)
    }
}

pub(super) fn malformed(what: &str, v: &Value) -> Error {
    Error::new(Kind::Io, format!("ovsdb-server sent {v} where {what} was expected"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_encode_as_rfc7047_says() {
        assert_eq!(Datum::str("a").to_json(), json!("a"));
        assert_eq!(Datum::empty().to_json(), json!(["set", []]));
        assert_eq!(Datum::named("p").to_json(), json!(["named-uuid", "p"]));
        assert_eq!(
            Datum::Set(vec![Atom::Uuid("u1".into()), Atom::Int(3)]).to_json(),
            json!(["set", [["uuid", "u1"], 3]])
        );
        assert_eq!(Datum::str_map([("k", "v")]).to_json(), json!(["map", [["k", "v"]]]));
    }

    #[test]
    fn data_decode_round_trip() {
        for v in [
            json!(["set", [["uuid", "a"], ["uuid", "b"]]]),
            json!(["map", [["pipework.vlan", "10"]]]),
            json!(10),
            json!(["uuid", "x"]),
            json!(true),
        ] {
            assert_eq!(Datum::from_json(&v).unwrap().to_json(), v);
        }
        assert_eq!(Datum::from_json(&json!(["set", [5]])).unwrap().as_int(), Some(5));
        assert_eq!(Datum::from_json(&json!(["set", []])).unwrap().as_int(), None);
        assert!(Datum::from_json(&json!(["bogus", 1, 2])).is_err());
    }

    #[test]
    fn operations_encode() {
        let op = Op::Insert {
            table: "Port".into(),
            row: vec![("name".into(), Datum::str("p"))],
            uuid_name: Some("port".into()),
        };
        assert_eq!(
            op.to_json(),
            json!({"op": "insert", "table": "Port", "row": {"name": "p"}, "uuid-name": "port"})
        );
        let op = Op::Mutate {
            table: "Bridge".into(),
            conds: vec![Cond::uuid("u")],
            mutations: vec![Mutation::insert("ports", Datum::Set(vec![Atom::NamedUuid("port".into())]))],
        };
        assert_eq!(
            op.to_json(),
            json!({"op": "mutate", "table": "Bridge", "where": [["_uuid", "==", ["uuid", "u"]]],
                "mutations": [["ports", "insert", ["set", [["named-uuid", "port"]]]]]})
        );
    }
}
