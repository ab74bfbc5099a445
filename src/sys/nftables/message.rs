//! nf_tables messages on the wire: a netlink header, the nfnetlink header
//! (`nfgenmsg`), then attributes, nested as the kernel's `nft` tool nests
//! them; a transaction is such messages between a batch begin and end.
//! Integers inside nf_tables attributes are big-endian.

use rtnetlink::packet_core::{NLA_F_NESTED, NLA_HEADER_SIZE, NLA_TYPE_MASK};

/// NFNL_SUBSYS_NFTABLES: the subsystem in a message type's high byte.
const SUBSYS_NFTABLES: u16 = 10;
/// NFNL_MSG_BATCH_BEGIN / _END (NLMSG_MIN_TYPE and the next).
const BATCH_BEGIN: u16 = 0x10;
const BATCH_END: u16 = 0x11;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
/// On a delete: refuse (EBUSY) rather than take what is inside along.
pub const NLM_F_NONREC: u16 = 0x100;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

/// NFT_MSG_*: what a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    NewTable = 0,
    DelTable = 2,
    NewChain = 3,
    GetChain = 4,
    DelChain = 5,
    NewRule = 6,
    GetRule = 7,
    DelRule = 8,
}

impl Op {
    pub fn message_type(self) -> u16 {
        SUBSYS_NFTABLES << 8 | self as u16
    }
}

/// NFTA_TABLE_*, NFTA_CHAIN_*, NFTA_HOOK_*, NFTA_RULE_*: attribute numbers.
pub mod attr {
    pub const TABLE_NAME: u16 = 1;
    pub const TABLE_FLAGS: u16 = 2;
    pub const CHAIN_TABLE: u16 = 1;
    pub const CHAIN_NAME: u16 = 3;
    pub const CHAIN_HOOK: u16 = 4;
    pub const CHAIN_POLICY: u16 = 5;
    pub const CHAIN_TYPE: u16 = 7;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
    pub const RULE_TABLE: u16 = 1;
    pub const RULE_CHAIN: u16 = 2;
    pub const RULE_HANDLE: u16 = 3;
    pub const RULE_EXPRESSIONS: u16 = 4;
    pub const RULE_COMPAT: u16 = 5;
    pub const RULE_USERDATA: u16 = 7;
    pub const COMPAT_PROTO: u16 = 1;
    pub const COMPAT_FLAGS: u16 = 2;
    pub const LIST_ELEM: u16 = 1;
}

/// Attributes being written: plain ones, and nests closed in order.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    pub bytes: Vec<u8>,
    open: Vec<usize>,
}

impl Attrs {
    pub fn bytes(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.bytes.extend_from_slice(&(len as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        self.pad()
    }

    /// A string, NUL-terminated as the kernel's `nla_put_string`.
    pub fn string(&mut self, kind: u16, value: &str) -> &mut Self {
        self.bytes(kind, &[value.as_bytes(), b"\0"].concat())
    }

    pub fn u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    pub fn u64(&mut self, kind: u16, value: u64) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// Attributes encoded elsewhere, inside a nest.
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(encoded);
        self
    }

    pub fn nest(&mut self, kind: u16) -> &mut Self {
        self.open.push(self.bytes.len());
        self.bytes.extend_from_slice(&[0, 0]);
        self.bytes.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end(&mut self) -> &mut Self {
        let start = self.open.pop().expect("an attribute nest to close");
        let len = (self.bytes.len() - start) as u16;
        self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn pad(&mut self) -> &mut Self {
        self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
        self
    }
}

/// One message: its operation, family, extra flags and attributes.
#[derive(Debug, Clone)]
pub struct Message {
    pub op: Op,
    pub family: u8,
    pub flags: u16,
    pub attrs: Attrs,
}

/// A netlink message: header, `nfgenmsg` (family, version 0, `res_id`),
/// payload.
fn frame(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, payload: &[u8]) {
    let len = (16 + 4 + payload.len()) as u32;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The messages as one transaction, each acknowledged: sequence numbers
/// from `seq` on, the batch's begin and end around them.
pub fn batch(messages: &[Message], seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    frame(&mut out, BATCH_BEGIN, NLM_F_REQUEST, seq, 0, SUBSYS_NFTABLES, &[]);
    for (i, m) in messages.iter().enumerate() {
        let flags = NLM_F_REQUEST | NLM_F_ACK | m.flags;
        frame(&mut out, m.op.message_type(), flags, seq + 1 + i as u32, m.family, 0, &m.attrs.bytes);
    }
    let end = seq + 1 + messages.len() as u32;
    frame(&mut out, BATCH_END, NLM_F_REQUEST, end, 0, SUBSYS_NFTABLES, &[]);
    out
}

/// A request outside any batch: a dump, or (no `flags`) a get of one object.
pub fn request(op: Op, flags: u16, family: u8, attrs: &Attrs, seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    frame(&mut out, op.message_type(), NLM_F_REQUEST | flags, seq, family, 0, &attrs.bytes);
    out
}

/// A received netlink message: its type, sequence number and payload
/// (after the netlink header).
pub struct Received<'a> {
    pub kind: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// The messages in one datagram.
pub fn split(mut buf: &[u8]) -> Vec<Received<'_>> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push(Received { kind, seq, payload: &buf[16..len] });
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

/// The attributes of `payload`, as (kind without flags, value).
pub fn parse(mut payload: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while payload.len() >= NLA_HEADER_SIZE {
        let len = u16::from_ne_bytes([payload[0], payload[1]]) as usize;
        let kind = u16::from_ne_bytes([payload[2], payload[3]]) & NLA_TYPE_MASK;
        let Some(value) = payload.get(NLA_HEADER_SIZE..len.max(NLA_HEADER_SIZE)) else { break };
        out.push((kind, value));
        payload = payload.get(len.next_multiple_of(4).max(NLA_HEADER_SIZE)..).unwrap_or_default();
    }
    out
}

/// The value of attribute `kind`, if present.
pub fn find(attrs: &[(u16, &[u8])], kind: u16) -> Option<Vec<u8>> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.to_vec())
}

/// A NUL-terminated string attribute's text.
pub fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

pub fn be_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?))
}

pub fn be_u64(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_framed_as_nft_frames_it() {
        let mut attrs = Attrs::default();
        attrs.string(attr::TABLE_NAME, "pw").u32(attr::TABLE_FLAGS, 0);
        let m = Message { op: Op::NewTable, family: 1, flags: NLM_F_CREATE, attrs };
        let bytes = batch(&[m], 7);
        let msgs = split(&bytes);
        assert_eq!(
            msgs.iter().map(|m| (m.kind, m.seq)).collect::<Vec<_>>(),
            [(0x10, 7), (0xa00, 8), (0x11, 9)]
        );
        // nfgenmsg of the batch: AF_UNSPEC, version 0, res_id NFNL_SUBSYS_NFTABLES (big-endian).
        assert_eq!(msgs[0].payload, [0, 0, 0, 10]);
        let table = msgs[1].payload;
        assert_eq!(&table[..4], [1, 0, 0, 0]);
        // "pw\0" padded to 4, then the flags, big-endian.
        assert_eq!(&table[4..], [7, 0, 1, 0, b'p', b'w', 0, 0, 8, 0, 2, 0, 0, 0, 0, 0]);
        let flags = u16::from_ne_bytes([bytes[26], bytes[27]]);
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        let parsed = parse(&table[4..]);
        assert_eq!(text(&find(&parsed, attr::TABLE_NAME).unwrap()), "pw");
        assert_eq!(be_u32(&find(&parsed, attr::TABLE_FLAGS).unwrap()), Some(0));
    }

    #[test]
    fn nests_carry_their_length_and_flag() {
        let mut a = Attrs::default();
        a.nest(attr::CHAIN_HOOK).u32(attr::HOOK_HOOKNUM, 4).end();
        assert_eq!(a.bytes, [12, 0, 4, 0x80, 8, 0, 1, 0, 0, 0, 0, 4]);
    }
}
