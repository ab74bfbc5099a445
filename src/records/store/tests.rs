use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::Arc;

use super::*;
use crate::records::tests::sample;
use crate::records::{Attached, How, Interface};

/// A store in a fresh directory, removed on drop.
struct TempStore(Store);

impl TempStore {
    fn new(name: &str) -> TempStore {
        let dir = std::env::temp_dir().join(format!("pipework-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempStore(Store::at(dir))
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.0.dir());
    }
}

fn iface(name: &str) -> Interface {
    Interface {
        host_side: Some("eth0".into()),
        attached_to: Attached::Parent("eth0".into()),
        vlan: Some(10),
        ..Interface::new(name.into(), 2, How::Macvlan, "02:00:00:00:00:02".parse().unwrap(), 9000)
    }
}

fn files(store: &Store) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn round_trip() {
    let t = TempStore::new("round");
    let store = &t.0;
    assert!(store.load("docker-a").unwrap().is_none());
    assert!(store.load_all().unwrap().records.is_empty(), "a missing directory is an empty store");
    let record = sample("a");
    store.write(&record).unwrap();
    assert_eq!(store.load("docker-a").unwrap(), Some(record.clone()));
    assert_eq!(store.load_all().unwrap().records, vec![record.clone()]);
    assert_eq!(store.by_container("a").unwrap(), vec![record]);
    assert_eq!(files(store), [".lock", "docker-a.json"]);
    assert!(store.remove("docker-a").unwrap());
    assert!(!store.remove("docker-a").unwrap());
    assert!(store.load("docker-a").unwrap().is_none());
}

#[test]
fn replace_is_a_rename_and_a_crash_leaves_the_old_record() {
    let t = TempStore::new("replace");
    let store = &t.0;
    let mut record = sample("b");
    store.write(&record).unwrap();
    let path = store.dir().join("docker-b.json");
    let first = fs::metadata(&path).unwrap().ino();
    record.put_interface(iface("eth2"));
    store.write(&record).unwrap();
    assert_ne!(fs::metadata(&path).unwrap().ino(), first, "a new file renamed over the old one");
    assert_eq!(store.load("docker-b").unwrap(), Some(record.clone()));
    // A run killed between writing its temporary file and renaming it.
    fs::write(store.dir().join(".docker-b.999999.tmp"), b"{\"version\": 1, \"gu").unwrap();
    assert_eq!(store.load("docker-b").unwrap(), Some(record.clone()));
    assert_eq!(store.load_all().unwrap().records, vec![record]);
    assert!(store.load_all().unwrap().broken.is_empty());
}

#[test]
fn update_reads_modifies_writes_and_removes() {
    let t = TempStore::new("update");
    let store = &t.0;
    let added = store.update("docker-c", |r| r.is_none()).unwrap();
    assert!(added);
    assert!(!store.dir().join("docker-c.json").exists(), "no change, no file");
    store.update("docker-c", |r| *r = Some(sample("c"))).unwrap();
    store.update("docker-c", |r| r.as_mut().unwrap().commands.push(vec!["route".into()])).unwrap();
    assert_eq!(store.load("docker-c").unwrap().unwrap().commands, vec![vec!["route".to_string()]]);
    let e = store.update("docker-c", |r| *r = Some(sample("other"))).unwrap_err();
    assert_eq!(e.to_string(), "pipework: record docker-c would be written as docker-other");
    store.update("docker-c", |r| *r = None).unwrap();
    assert_eq!(files(store), [".lock"]);
}

#[test]
fn broken_and_newer_records_are_reported_not_fatal() {
    let t = TempStore::new("broken");
    let store = &t.0;
    store.write(&sample("d")).unwrap();
    fs::write(store.dir().join("junk.json"), b"not json").unwrap();
    let mut newer = serde_json::to_value(sample("e")).unwrap();
    newer["version"] = 99.into();
    fs::write(store.dir().join("docker-e.json"), newer.to_string()).unwrap();
    let listing = store.load_all().unwrap();
    assert_eq!(listing.records, vec![sample("d")]);
    let errors: Vec<String> = listing.broken.iter().map(|b| b.error.to_string()).collect();
    let dir = store.dir().display();
    assert_eq!(
        errors[0],
        format!("pipework: {dir}/docker-e.json: record version 99 is newer than this pipework's (1)")
    );
    assert!(errors[1].starts_with(&format!("pipework: {dir}/junk.json: not a record: ")), "{errors:?}");
}

/// Adds interface `eth<n>` to the shared record and writes a record of its own.
fn one_writer(store: &Store, n: usize) {
    store
        .update("docker-shared", |r| {
            r.get_or_insert_with(|| sample("shared")).put_interface(iface(&format!("eth{n}")));
        })
        .unwrap();
    store.write(&sample(&format!("own{n}"))).unwrap();
}

fn assert_all_kept(store: &Store, writers: usize) {
    let shared = store.load("docker-shared").unwrap().unwrap();
    // sample() has eth1 already, and writer 1 replaced it.
    let mut names: Vec<String> = shared.interfaces.iter().map(|i| i.name.clone()).collect();
    names.sort();
    let mut want: Vec<String> = (0..writers).map(|n| format!("eth{n}")).collect();
    want.sort();
    assert_eq!(names, want);
    let listing = store.load_all().unwrap();
    assert_eq!(listing.records.len(), writers + 1);
    assert!(listing.broken.is_empty());
    assert_eq!(files(store).iter().filter(|f| f.ends_with(".tmp")).count(), 0, "no temporary file left");
}

#[test]
fn fifty_threads_lose_nothing() {
    let t = Arc::new(TempStore::new("threads"));
    let threads: Vec<_> = (0..50)
        .map(|n| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || one_writer(&t.0, n))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_all_kept(&t.0, 50);
}

const WORKER_ENV: &str = "PIPEWORK_STORE_WORKER";

/// The body of one writer process of `fifty_processes_lose_nothing`; a
/// no-op in a normal test run.
#[test]
fn store_worker_process() {
    if let Ok(job) = std::env::var(WORKER_ENV) {
        let (dir, n) = job.rsplit_once(',').unwrap();
        one_writer(&Store::at(dir), n.parse().unwrap());
    }
}

#[test]
fn fifty_processes_lose_nothing() {
    let t = TempStore::new("procs");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..50)
        .map(|n| {
            Command::new(&exe)
                .args(["--exact", "records::store::tests::store_worker_process", "--test-threads", "1"])
                .env(WORKER_ENV, format!("{},{n}", t.0.dir().display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_all_kept(&t.0, 50);
}

/// The empty file a crash left of an older version's unsynced write reads
/// as no record, in one record and in the listing.
#[test]
fn the_empty_file_of_a_crash() {
    let t = TempStore::new("empty");
    let store = t.0.clone();
    let record = sample("u");
    store.write(&record).unwrap();
    assert_eq!(t.0.load("docker-u").unwrap(), Some(record));
    assert_eq!(files(&t.0), [".lock", "docker-u.json"]);
    fs::write(t.0.dir().join("docker-u.json"), b"").unwrap();
    assert_eq!(t.0.load("docker-u").unwrap(), None);
    let listing = t.0.load_all().unwrap();
    assert!(listing.records.is_empty() && listing.broken.is_empty(), "{listing:?}");
}
