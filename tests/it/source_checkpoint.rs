//! The checkpoint file on disk: survives a crash mid-write, refuses what it cannot read with a
//! clear error, and keeps committed offsets across reopenings.

use std::path::Path;

use scrubd::source::{CHECKPOINT_FILE_NAME, Checkpointer, FileId, Fingerprint, SourceError};

fn id(n: u64) -> FileId {
    FileId {
        dev: 0x801,
        ino: n,
        fingerprint: Fingerprint::of(format!("first bytes of {n}").as_bytes()),
    }
}

/// Writes `content` as the checkpoint file and opens it; `expect` is `Ok(offset of id(1))` or
/// `Err(words the error message must contain)`.
fn check(content: &str, expect: Result<Option<u64>, &[&str]>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CHECKPOINT_FILE_NAME), content).unwrap();
    match (Checkpointer::open(dir.path()), expect) {
        (Ok(cp), Ok(offset)) => assert_eq!(cp.get(&id(1)), offset, "{content}"),
        (Err(e), Err(words)) => {
            let msg = e.to_string();
            for w in words {
                assert!(msg.contains(w), "{msg:?} should contain {w:?}");
            }
            assert!(!e.is_retryable(), "{msg}");
        }
        (got, want) => panic!("{content}: got {:?}, want {want:?}", got.map(|_| "a checkpointer")),
    }
}

fn v1_with(offset: u64) -> String {
    let entry = serde_json::json!({
        "file": id(1),
        "source": "s",
        "path": "/var/log/w/a.log",
        "offset": offset,
    });
    serde_json::json!({"version": "1", "files": [entry]}).to_string()
}

#[test]
fn reading_checkpoint_files() {
    check(&v1_with(42), Ok(Some(42)));
    check(r#"{"version":"1","files":[]}"#, Ok(None));
    check(
        r#"{"version":"2","files":[]}"#,
        Err(&["checkpoints.json", "version \"2\"", "newer scrubd"]),
    );
    check(r#"{"version":7}"#, Err(&["checkpoints.json", "version \"7\""]));
    check(r#"{"files":[]}"#, Err(&["checkpoints.json", "no \"version\""]));
    check(
        r#"{"version":"1","files":[{"bogus":1}]}"#,
        Err(&["checkpoints.json", "not valid"]),
    );
    check("{\"version\":\"1\",\"fi", Err(&["checkpoints.json", "not valid"]));
    check(
        &v1_with(42).replace("\"offset\"", "\"extra\":1,\"offset\""),
        Err(&["extra"]),
    );
}

fn committed(dir: &Path) -> Option<u64> {
    Checkpointer::open(dir).unwrap().get(&id(1))
}

#[test]
fn a_crash_mid_write_leaves_the_last_complete_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cp = Checkpointer::open(dir.path()).unwrap();
        cp.track(&id(1), "s", Path::new("/var/log/w/a.log"));
        cp.commit(&id(1), 100).unwrap();
    }
    // A crash after writing part of the next temp file, before the rename.
    let tmp = dir.path().join(format!("{CHECKPOINT_FILE_NAME}.tmp"));
    std::fs::write(&tmp, &v1_with(500)[..30]).unwrap();
    assert_eq!(committed(dir.path()), Some(100));
    assert!(!tmp.exists(), "leftover temp file removed");

    // And the next commit goes through normally.
    let cp = Checkpointer::open(dir.path()).unwrap();
    cp.commit(&id(1), 200).unwrap();
    drop(cp);
    assert_eq!(committed(dir.path()), Some(200));
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(CHECKPOINT_FILE_NAME)).unwrap()).unwrap();
    assert_eq!(on_disk["version"], "1");
}

#[test]
fn io_errors_are_retryable_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // The state "directory" is a file: cannot be created.
    let not_a_dir = dir.path().join("state");
    std::fs::write(&not_a_dir, b"").unwrap();
    let err = match Checkpointer::open(&not_a_dir) {
        Err(e) => e,
        Ok(_) => panic!("opened a checkpointer in a regular file"),
    };
    assert!(matches!(err, SourceError::CheckpointIo { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("checkpoints.json"), "{err}");
}

#[test]
fn lag_is_size_minus_committed() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpointer::open(dir.path()).unwrap();
    cp.track(&id(1), "s", Path::new("/var/log/w/a.log"));
    cp.track(&id(2), "s", Path::new("/var/log/w/b.log"));
    cp.observe_size(&id(1), 1000);
    cp.observe_size(&id(2), 10);
    cp.commit_many([(id(1), 400), (id(2), 10)]).unwrap();
    let lag: Vec<(String, u64)> = cp.lag().into_iter().map(|l| (l.path, l.lag_bytes)).collect();
    assert_eq!(
        lag,
        vec![
            ("/var/log/w/a.log".to_string(), 600),
            ("/var/log/w/b.log".to_string(), 0)
        ]
    );
}
