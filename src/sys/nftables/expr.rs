//! The nf_tables expressions pipework's rules use, encoded as the kernel
//! takes them, and any rule's expressions shown as `nft --debug=netlink`
//! (libnftnl) shows them: the unit tests compare the two, and CHECK
//! compares a rule the kernel lists with the one pipework would make.

use super::message::{attr, be_u32, be_u64, find, parse, text, Attrs};

/// NFT_REG_1: the one data register pipework's rules need; 0 is the verdict.
pub const REG_1: u32 = 1;

/// NFT_META_*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    IifName = 6,
    OifName = 7,
    NfProto = 15,
}

/// NFT_PAYLOAD_*_HEADER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Link = 0,
    Network = 1,
}

/// NFT_CMP_EQ, NFT_CMP_NEQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta {
        key: MetaKey,
    },
    Payload {
        base: Base,
        offset: u32,
        len: u32,
    },
    Cmp {
        op: CmpOp,
        data: Vec<u8>,
    },
    Bitwise {
        mask: Vec<u8>,
    },
    Masquerade,
    /// A counter starting at zero, as iptables-nft adds to every rule.
    Counter,
    Drop,
    Accept,
}

// NFTA_EXPR_*, and each expression's own attributes.
const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;
const META_DREG: u16 = 1;
const META_KEY: u16 = 2;
const PAYLOAD_DREG: u16 = 1;
const PAYLOAD_BASE: u16 = 2;
const PAYLOAD_OFFSET: u16 = 3;
const PAYLOAD_LEN: u16 = 4;
const CMP_SREG: u16 = 1;
const CMP_OP: u16 = 2;
const CMP_DATA: u16 = 3;
const BITWISE_SREG: u16 = 1;
const BITWISE_DREG: u16 = 2;
const BITWISE_LEN: u16 = 3;
const BITWISE_MASK: u16 = 4;
const BITWISE_XOR: u16 = 5;
const COUNTER_BYTES: u16 = 1;
const COUNTER_PACKETS: u16 = 2;
const IMMEDIATE_DREG: u16 = 1;
const IMMEDIATE_DATA: u16 = 2;
const DATA_VALUE: u16 = 1;
const DATA_VERDICT: u16 = 2;
const VERDICT_CODE: u16 = 1;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Masquerade => "masq",
            Expr::Counter => "counter",
            Expr::Drop | Expr::Accept => "immediate",
        }
    }

    /// `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }`.
    pub fn encode(&self, a: &mut Attrs) {
        a.nest(attr::LIST_ELEM).string(EXPR_NAME, self.name()).nest(EXPR_DATA);
        match self {
            Expr::Meta { key } => {
                a.u32(META_KEY, *key as u32).u32(META_DREG, REG_1);
            }
            Expr::Payload { base, offset, len } => {
                a.u32(PAYLOAD_DREG, REG_1).u32(PAYLOAD_BASE, *base as u32);
                a.u32(PAYLOAD_OFFSET, *offset).u32(PAYLOAD_LEN, *len);
            }
            Expr::Cmp { op, data } => {
                a.u32(CMP_SREG, REG_1).u32(CMP_OP, *op as u32);
                a.nest(CMP_DATA).bytes(DATA_VALUE, data).end();
            }
            Expr::Bitwise { mask } => {
                a.u32(BITWISE_SREG, REG_1).u32(BITWISE_DREG, REG_1).u32(BITWISE_LEN, mask.len() as u32);
                a.nest(BITWISE_MASK).bytes(DATA_VALUE, mask).end();
                a.nest(BITWISE_XOR).bytes(DATA_VALUE, &vec![0; mask.len()]).end();
            }
            Expr::Masquerade => {}
            // libnftnl's order: bytes, then packets.
            Expr::Counter => {
                a.u64(COUNTER_BYTES, 0).u64(COUNTER_PACKETS, 0);
            }
            Expr::Drop | Expr::Accept => {
                let code = if *self == Expr::Drop { NF_DROP } else { NF_ACCEPT };
                a.u32(IMMEDIATE_DREG, 0);
                a.nest(IMMEDIATE_DATA).nest(DATA_VERDICT).u32(VERDICT_CODE, code).end().end();
            }
        }
        a.end().end();
    }
}

/// A rule's expressions, encoded: the value of NFTA_RULE_EXPRESSIONS.
pub fn encode_all(exprs: &[Expr]) -> Vec<u8> {
    let mut a = Attrs::default();
    for e in exprs {
        e.encode(&mut a);
    }
    a.bytes
}

/// Data as libnftnl prints it: 32-bit words in host order, `0x%08x`.
fn words(data: &[u8]) -> String {
    let words: Vec<String> = data
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            format!("0x{:08x}", u32::from_ne_bytes(w))
        })
        .collect();
    words.join(" ")
}

fn value_of(nested: &[u8]) -> Vec<u8> {
    find(&parse(nested), DATA_VALUE).unwrap_or_default()
}

/// The encoded expressions (the value of NFTA_RULE_EXPRESSIONS) as
/// `nft --debug=netlink` lists them, one a line; an expression pipework
/// does not use is named with its attributes unread.
pub fn describe(encoded: &[u8]) -> Vec<String> {
    parse(encoded)
        .into_iter()
        .filter(|(kind, _)| *kind == attr::LIST_ELEM)
        .map(|(_, elem)| {
            let elem = parse(elem);
            let name = find(&elem, EXPR_NAME).map(|n| text(&n)).unwrap_or_default();
            let data = find(&elem, EXPR_DATA).unwrap_or_default();
            format!("[ {} ]", describe_one(&name, &parse(&data)))
        })
        .collect()
}

fn describe_one(name: &str, a: &[(u16, &[u8])]) -> String {
    let num = |kind| find(a, kind).and_then(|v| be_u32(&v)).unwrap_or_default();
    match name {
        "meta" => {
            let key = match num(META_KEY) {
                6 => "iifname".to_string(),
                7 => "oifname".to_string(),
                15 => "nfproto".to_string(),
                other => format!("key {other}"),
            };
            format!("meta load {key} => reg {}", num(META_DREG))
        }
        "payload" => {
            let base = ["link", "network", "transport"].get(num(PAYLOAD_BASE) as usize).unwrap_or(&"inner");
            let (len, offset, reg) = (num(PAYLOAD_LEN), num(PAYLOAD_OFFSET), num(PAYLOAD_DREG));
            format!("payload load {len}b @ {base} header + {offset} => reg {reg}")
        }
        "cmp" => {
            let op = ["eq", "neq", "lt", "lte", "gt", "gte"].get(num(CMP_OP) as usize).unwrap_or(&"?");
            let data = value_of(&find(a, CMP_DATA).unwrap_or_default());
            format!("cmp {op} reg {} {}", num(CMP_SREG), words(&data))
        }
        "bitwise" => {
            let mask = value_of(&find(a, BITWISE_MASK).unwrap_or_default());
            let xor = value_of(&find(a, BITWISE_XOR).unwrap_or_default());
            let (s, d) = (num(BITWISE_SREG), num(BITWISE_DREG));
            format!("bitwise reg {d} = ( reg {s} & {} ) ^ {}", words(&mask), words(&xor))
        }
        "immediate" => {
            let data = find(a, IMMEDIATE_DATA).unwrap_or_default();
            let data = parse(&data);
            match find(&data, DATA_VERDICT) {
                Some(v) => {
                    let code = find(&parse(&v), VERDICT_CODE).and_then(|c| be_u32(&c));
                    let verdict = match code {
                        Some(NF_DROP) => "drop".to_string(),
                        Some(NF_ACCEPT) => "accept".to_string(),
                        other => format!("verdict {other:?}"),
                    };
                    format!("immediate reg {} {verdict}", num(IMMEDIATE_DREG))
                }
                None => format!("immediate reg {}", num(IMMEDIATE_DREG)),
            }
        }
        "counter" => {
            let count = |kind| find(a, kind).and_then(|v| be_u64(&v)).unwrap_or_default();
            format!("counter pkts {} bytes {}", count(COUNTER_PACKETS), count(COUNTER_BYTES))
        }
        other => other.to_string(),
    }
}
