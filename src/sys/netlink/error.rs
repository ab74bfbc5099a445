//! Netlink refusals: the errno, the kernel's extended-ACK text (which
//! rtnetlink leaves undecoded), and the error an operator reads.

use crate::error::{errno_text, is_permission, needs_root, Error, KernelReply};

/// The errno behind a netlink failure, if the kernel gave one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// NLMSGERR_ATTR_MSG: the kernel's own explanation of a refusal.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The kernel's extended-ACK text, which rtnetlink leaves in the error's
/// payload: with capped ACKs (see `from_socket`) that is the request's
/// 16-byte header, then attributes.
pub fn kernel_message(e: &rtnetlink::Error) -> Option<String> {
    let rtnetlink::Error::NetlinkError(m) = e else { return None };
    let mut rest = m.header.get(16..)?;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = rest[4..len].split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text).into_owned();
            return (!text.is_empty()).then_some(text);
        }
        rest = rest.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// "what: reason", with the reasons an operator can act on spelled out and
/// the kernel's own words when it gave some.
pub fn nl_error(e: rtnetlink::Error, what: impl std::fmt::Display) -> Error {
    if errno(&e).is_some_and(is_permission) {
        return needs_root(what);
    }
    let reply = KernelReply { errno: errno(&e), text: kernel_message(&e) };
    if let Some(text) = &reply.text {
        return Error::kernel(format!("{what}: {text}"), reply);
    }
    let reason = match reply.errno {
        Some(libc::EOPNOTSUPP) => "the kernel does not support this link type".to_string(),
        Some(libc::ERANGE) => "name too long for the kernel (15 bytes at most)".to_string(),
        Some(code) => errno_text(code),
        None => e.to_string(),
    };
    Error::kernel(format!("{what}: {reason}"), reply)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{kernel_message, nl_error};
    use rtnetlink::packet_core::ErrorMessage;

    /// A refusal as the kernel sends it with capped, extended ACKs: the
    /// request's header, an offset attribute, then the message.
    pub(crate) fn refusal(errno: i32, message: Option<&str>) -> rtnetlink::Error {
        let mut header = vec![0u8; 16];
        header.extend_from_slice(&8u16.to_ne_bytes());
        header.extend_from_slice(&2u16.to_ne_bytes());
        header.extend_from_slice(&40u32.to_ne_bytes());
        if let Some(text) = message {
            let text = [text.as_bytes(), b"\0"].concat();
            header.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
            header.extend_from_slice(&1u16.to_ne_bytes());
            header.extend_from_slice(&text);
            header.resize(header.len().next_multiple_of(4), 0);
        }
        let mut error = ErrorMessage::default();
        error.code = std::num::NonZeroI32::new(-errno);
        error.header = header;
        rtnetlink::Error::NetlinkError(error)
    }

    #[test]
    fn kernel_words_come_first() {
        let e = refusal(libc::EINVAL, Some("Nexthop has invalid gateway"));
        assert_eq!(kernel_message(&e).as_deref(), Some("Nexthop has invalid gateway"));
        assert_eq!(
            nl_error(e, "adding route").to_string(),
            "pipework: adding route: Nexthop has invalid gateway"
        );
        let e = refusal(libc::EEXIST, None);
        assert_eq!(kernel_message(&e), None);
        assert_eq!(nl_error(e, "adding route").to_string(), "pipework: adding route: File exists");
    }
}
