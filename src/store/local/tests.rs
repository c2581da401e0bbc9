use std::io::Write as _;

use super::*;
use crate::store::ReportFormat;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    (dir, store)
}

fn records(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| t.as_bytes().to_vec()).collect()
}

fn holder(run_id: &str, host: &str) -> LockHolder {
    LockHolder {
        pid: std::process::id(),
        host: host.into(),
        user: "someone".into(),
        run_id: run_id.into(),
        since: 0,
    }
}

#[test]
fn appended_records_read_back_in_order_as_lines_of_the_runs_journal() {
    let (dir, store) = store();
    let log = store.create_run("r-1").unwrap();
    log.append(&records(&["{\"a\":1}"])).unwrap();
    log.append(&records(&["{\"b\":2}", "{\"c\":3}"])).unwrap();
    assert_eq!(
        log.read().unwrap(),
        records(&["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"])
    );
    assert_eq!(store.read_run("r-1").unwrap(), log.read().unwrap());
    let file = dir.path().join("runs/r-1/events.jsonl");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
    );
    assert_eq!(store.location(&Key::journal("r-1")), file);

    let reopened = store.open_run("r-1").unwrap().expect("the run exists");
    reopened.append(&records(&["{\"d\":4}"])).unwrap();
    assert_eq!(store.read_run("r-1").unwrap().len(), 4);
}

#[test]
fn a_torn_last_line_is_no_record_and_the_next_append_cuts_it_off() {
    let (dir, store) = store();
    let log = store.create_run("r-1").unwrap();
    log.append(&records(&["one"])).unwrap();
    let file = dir.path().join("runs/r-1/events.jsonl");
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    torn.write_all(b"tw").unwrap();
    assert_eq!(store.read_run("r-1").unwrap(), records(&["one"]));
    log.append(&records(&["two"])).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "one\ntwo\n");
}

#[test]
fn a_new_run_is_refused_when_its_id_exists_and_an_unknown_one_does_not_open() {
    let (_dir, store) = store();
    assert!(!store.has_run("r-1"));
    assert!(store.open_run("r-1").unwrap().is_none());
    assert_eq!(store.read_run("r-1").unwrap(), Vec::<Vec<u8>>::new());
    store.create_run("r-1").unwrap();
    assert!(store.has_run("r-1"));
    let Err(refused) = store.create_run("r-1") else {
        panic!("a second run r-1 was created");
    };
    assert!(
        matches!(&refused, StoreError::RunExists { run_id, .. } if run_id == "r-1"),
        "{refused:?}"
    );
}

#[test]
fn runs_are_listed_by_id() {
    let (_dir, store) = store();
    assert_eq!(store.list_runs().unwrap(), Vec::<String>::new());
    for id in ["r-2", "r-1", "r-3"] {
        store.create_run(id).unwrap();
    }
    assert_eq!(store.list_runs().unwrap(), ["r-1", "r-2", "r-3"]);
}

#[test]
fn an_environment_lock_names_its_owner_and_refuses_another_until_released() {
    let (_dir, store) = store();
    let lease = store
        .lock_environment("e", "r", &holder("run-1", "here"))
        .unwrap();
    assert_eq!(store.environment_holder("e", "r").unwrap().run_id, "run-1");
    match store.lock_environment("e", "r", &holder("run-2", "here")) {
        Err(LockRefusal::Held(Some(h))) => assert_eq!(h.run_id, "run-1"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.unlock_environment("e", "r", "me@here"),
        Err(LockRefusal::Held(Some(_)))
    ));
    drop(lease);
    assert_eq!(store.environment_holder("e", "r"), None);
    drop(
        store
            .lock_environment("e", "r", &holder("run-2", "here"))
            .unwrap(),
    );
}

#[test]
fn a_record_left_on_another_host_is_refused_until_unlocked() {
    let (_dir, store) = store();
    let path = store.location(&Key::environment_lock("e", "r"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let left = holder("run-old", "elsewhere");
    std::fs::write(&path, serde_json::to_vec(&left).unwrap()).unwrap();
    match store.lock_environment("e", "r", &holder("run-new", "here")) {
        Err(LockRefusal::LeftOnOtherHost(h)) => assert_eq!(h, left),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.unlock_environment("e", "r", "me@here").unwrap(),
        Some(left)
    );
    assert_eq!(store.unlock_environment("e", "r", "me@here").unwrap(), None);
    drop(
        store
            .lock_environment("e", "r", &holder("run-new", "here"))
            .unwrap(),
    );
}

#[test]
fn one_scheduler_holds_its_lock_and_a_second_is_told_who() {
    let (dir, store) = store();
    let first = store.lock_scheduler("pid 1").unwrap();
    let file = dir.path().join("schedule/daemon.lock");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pid 1\n");
    match store.lock_scheduler("pid 2") {
        Err(StoreError::Busy { path, holder }) => {
            assert_eq!((path, holder.as_str()), (file.clone(), "pid 1"));
        }
        other => panic!("{other:?}"),
    }
    drop(first);
    drop(store.lock_scheduler("pid 2").unwrap());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pid 2\n");
}

#[test]
fn whole_objects_are_put_got_and_listed() {
    let (dir, store) = store();
    let json = Key::report("web", "r-2", ReportFormat::Json);
    let markdown = Key::report("web", "r-2", ReportFormat::Markdown);
    assert_eq!(store.get(&json).unwrap(), None);
    assert_eq!(store.list(&Key::reports("web")).unwrap(), []);
    store.put(&json, b"{}\n").unwrap();
    store.put(&markdown, b"# r-2\n").unwrap();
    store
        .put(&Key::report("web", "r-1", ReportFormat::Json), b"{}")
        .unwrap();
    store.put(&json, b"{\"again\":1}\n").unwrap();
    assert_eq!(store.get(&json).unwrap().unwrap(), b"{\"again\":1}\n");
    assert_eq!(
        std::fs::read(dir.path().join("reports/web/r-2.md")).unwrap(),
        b"# r-2\n"
    );
    let names: Vec<String> = store
        .list(&Key::reports("web"))
        .unwrap()
        .iter()
        .map(|k| k.name().to_string())
        .collect();
    assert_eq!(
        names,
        ["r-1.json", "r-2.json", "r-2.md"],
        "no temporary file"
    );
    assert_eq!(store.list(&Key::reports("db")).unwrap(), []);
}
