use std::net::Ipv4Addr;

use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::AddressFamily;

use super::*;
use crate::plan::Side;

struct TempStore(Store);

impl TempStore {
    fn new(name: &str) -> TempStore {
        let dir = std::env::temp_dir().join(format!("pipework-intents-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempStore(Store::at(dir))
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.dir());
    }
}

fn about(what: &str) -> About {
    About { what: what.into(), guest: None, commit: None }
}

fn delete_link(index: u32) -> Undo {
    Undo::DeleteLink { side: Side::Host, name: format!("veth{index}"), index }
}

#[test]
fn a_live_run_holds_its_slot_and_frees_it_at_its_end() {
    let store = TempStore::new("live");
    let mut intent = Intent::begin(&store.0, about("pipework br0 c1 10.0.0.2/24")).unwrap();
    intent.step(1, "ip link add veth1pl1 type veth", false).unwrap();
    let path = dir(&store.0).join("0");
    // Another open of the slot (another run, or a recovery) cannot take it.
    assert!(Slot::try_lock(&path).unwrap().is_none());
    intent.end();
    let slot = Slot::try_lock(&path).unwrap().expect("free after the run");
    assert_eq!(slot.header().unwrap().state, State::Free);
}

#[test]
fn a_dead_run_leaves_its_header_and_each_undo_in_order() {
    let store = TempStore::new("dead");
    let mut intent = Intent::begin(&store.0, about("pipework br0 c1")).unwrap();
    intent.step(1, "one", false).unwrap();
    intent.applied(Some(&delete_link(7))).unwrap();
    intent.step(2, "two", true).unwrap();
    intent.applied(None).unwrap();
    intent.step(3, "three", false).unwrap();
    // Killed: the lock goes with the file, the slot stays open.
    drop(intent);
    let slot = Slot::try_lock(&dir(&store.0).join("0")).unwrap().expect("a dead run's slot");
    let header = slot.header().unwrap();
    assert_eq!(
        (header.state, header.what.as_str(), header.run.pid),
        (State::Open, "pipework br0 c1", std::process::id())
    );
    let entries = slot.entries(&header.run);
    assert!(
        matches!(&entries[..], [
        Entry::Step { n: 1, .. },
        Entry::Undo(Undo::DeleteLink { index: 7, .. }),
        Entry::Step { n: 2, .. },
        Entry::Applied,
        Entry::Step { n: 3, command },
    ] if command == "three"),
        "{entries:?}"
    );
}

#[test]
fn a_new_run_leaves_a_dead_runs_slot_to_its_recovery_and_reuses_a_freed_one() {
    let store = TempStore::new("reuse");
    let mut dead = Intent::begin(&store.0, about("dead")).unwrap();
    dead.applied(Some(&delete_link(3))).unwrap();
    drop(dead);
    let mut next = Intent::begin(&store.0, about("next")).unwrap();
    next.applied(None).unwrap();
    next.end();
    assert_eq!(slots(&store.0).unwrap().len(), 2);
    let again = Intent::begin(&store.0, about("again")).unwrap();
    again.end();
    assert_eq!(slots(&store.0).unwrap().len(), 2, "slot 1 reused");
    // Slot 1's earlier, longer log is not read as this run's.
    let slot = Slot::try_lock(&dir(&store.0).join("1")).unwrap().unwrap();
    let header = slot.header().unwrap();
    assert_eq!(header.what, "again");
    assert!(slot.entries(&header.run).is_empty());
}

#[test]
fn a_rewritten_log_keeps_only_what_is_left() {
    let store = TempStore::new("rewrite");
    let mut intent = Intent::begin(&store.0, about("run")).unwrap();
    for i in 1..=3 {
        intent.applied(Some(&delete_link(i))).unwrap();
    }
    drop(intent);
    let slot = Slot::try_lock(&dir(&store.0).join("0")).unwrap().unwrap();
    let header = slot.header().unwrap();
    slot.rewrite(&header.run, &[Entry::Undo(delete_link(2)), Entry::Leftover("x".into())]).unwrap();
    let entries = slot.entries(&header.run);
    assert!(matches!(&entries[..], [Entry::Undo(Undo::DeleteLink { index: 2, .. }), Entry::Leftover(_)]));
}

#[test]
fn a_route_is_kept_as_the_kernels_bytes() {
    let mut route = RouteMessage::default();
    route.header.address_family = AddressFamily::Inet;
    route.header.destination_prefix_length = 24;
    route.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 1, 2, 0))));
    route.attributes.push(RouteAttribute::Oif(4));
    let undo = Undo::RestoreRoute { route: Box::new(route.clone()) };
    let text = serde_json::to_string(&undo).unwrap();
    let Undo::RestoreRoute { route: back } = serde_json::from_str(&text).unwrap() else { panic!("{text}") };
    assert_eq!(*back, route);
}

#[test]
fn a_slot_being_rolled_back_is_no_free_slot() {
    let store = TempStore::new("recovering");
    let mut dead = Intent::begin(&store.0, about("dead")).unwrap();
    dead.applied(Some(&delete_link(3))).unwrap();
    drop(dead);
    let slot = Slot::try_lock(&dir(&store.0).join("0")).unwrap().unwrap();
    let header = slot.header().unwrap();
    slot.set_state(&header, State::Recovering).unwrap();
    assert_eq!(Slot::peek(&dir(&store.0).join("0")).unwrap().state, State::Recovering);
    // Its recovery died in turn: the slot still holds a run to roll back.
    drop(slot);
    Intent::begin(&store.0, about("next")).unwrap().end();
    assert_eq!(slots(&store.0).unwrap().len(), 2, "slot 0 left to a recovery");
}
