//! Assertions on how a guest is plugged in, read back through `ip -j`.

use super::readback::{link_detail, link_info_data, Family, Ns};

/// The guest got `ctr_if`, up, holding `cidr`; its host side `host_if` is a
/// veth, up, enslaved to `bridge`.
#[track_caller]
pub fn assert_connected(
    host: &impl Ns,
    bridge: &str,
    host_if: &str,
    guest: &impl Ns,
    ctr_if: &str,
    cidr: &str,
) {
    let br = host.must_link(bridge);
    assert_eq!(br.kind.as_deref(), Some("bridge"), "{br:?}");
    assert!(br.is_up(), "bridge is down: {br:?}");

    let h = host.must_link(host_if);
    assert_eq!(h.kind.as_deref(), Some("veth"), "{h:?}");
    assert_eq!(h.master.as_deref(), Some(bridge), "{h:?}");
    assert!(h.is_up(), "host side is down: {h:?}");

    let g = guest.must_link(ctr_if);
    assert_eq!(g.kind.as_deref(), Some("veth"), "{g:?}");
    assert!(g.is_up(), "container side is down: {g:?}");
    let family = if cidr.contains(':') { Family::V6 } else { Family::V4 };
    assert_eq!(guest.cidrs(ctr_if, family), vec![cidr.to_owned()]);
}

/// The guest has exactly one default route of `family`: via `gw` on `dev`.
#[track_caller]
pub fn assert_default_via(guest: &dyn Ns, family: Family, gw: &str, dev: &str) {
    let defaults = guest.default_routes(family);
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    let via = (defaults[0].gateway.as_deref(), defaults[0].dev.as_deref());
    assert_eq!(via, (Some(gw), Some(dev)), "{defaults:?}");
}

/// The guest's `ctr_if` is a macvlan in bridge mode whose lower device is
/// `parent` of `host`, with the parent's MTU, up, holding `cidr`; the parent
/// is up too (a macvlan on a down parent passes nothing).
#[track_caller]
pub fn assert_macvlan_on(host: &dyn Ns, parent: &str, guest: &dyn Ns, ctr_if: &str, cidr: &str) {
    let p = host.must_link(parent);
    assert!(p.is_up(), "parent is down: {p:?}");
    let g = guest.must_link(ctr_if);
    assert_eq!(g.kind.as_deref(), Some("macvlan"), "{g:?}");
    assert_eq!(link_info_data(guest, ctr_if)["mode"], "bridge", "{g:?}");
    assert_eq!(g.mtu, p.mtu, "{ctr_if} does not have {parent}'s MTU");
    // The lower device lives in another namespace: link_index is its ifindex there.
    let detail = link_detail(guest, ctr_if);
    assert!(detail["link_netnsid"].is_number(), "{ctr_if}'s lower device is in the guest: {detail}");
    assert_eq!(detail["link_index"].as_u64(), Some(p.ifindex), "{ctr_if} is not on {parent}: {detail}");
    assert!(g.is_up(), "{ctr_if} is down: {g:?}");
    let family = if cidr.contains(':') { Family::V6 } else { Family::V4 };
    assert_eq!(guest.cidrs(ctr_if, family), vec![cidr.to_owned()]);
}
