//! What `ip` prints when the kernel refuses a request, and its exit status.

use crate::error::{errno_text, Error, Kind};
use crate::sys::netlink::{errno, kernel_message};

/// The line `ip` prints for a refusal: the kernel's message if any, else
/// strerror, as iproute2's rtnl_talk does.
fn refusal_text(e: &rtnetlink::Error) -> String {
    match (kernel_message(e), errno(e)) {
        (Some(m), _) if m.ends_with('.') => format!("Error: {m}"),
        (Some(m), _) => format!("Error: {m}."),
        (None, Some(code)) => format!("RTNETLINK answers: {}", errno_text(code)),
        (None, None) => format!("RTNETLINK answers: {e}"),
    }
}

/// What `ip` prints for a refusal, and its exit status (2).
pub fn refused(e: rtnetlink::Error) -> Error {
    Error::verbatim(Kind::KernelRefused, refusal_text(&e)).with_status(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_like_iproute2() {
        use crate::sys::netlink::error::tests::refusal;
        assert_eq!(refusal_text(&refusal(libc::EEXIST, None)), "RTNETLINK answers: File exists");
        assert_eq!(refusal_text(&refusal(libc::ESRCH, None)), "RTNETLINK answers: No such process");
        let e = refusal(libc::EINVAL, Some("Nexthop has invalid gateway"));
        assert_eq!(refusal_text(&e), "Error: Nexthop has invalid gateway.");
        let e = refusal(libc::EINVAL, Some("Invalid source address."));
        assert_eq!(refusal_text(&e), "Error: Invalid source address.");
    }
}
