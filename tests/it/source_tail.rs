//! The source stage against real files in temp dirs: appends, rotation (rename + create,
//! copytruncate, delete, gzip while stopped), restarts from checkpoints, inode reuse, polling and
//! backpressure. No wall-clock assertions: every wait is on an event, with a generous timeout.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use scrubd::source::{Checkpointer, FileId, SourceConfig, SourceEvent, Tailer, TailerOptions, TailerStats, WatchMode};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// What one file's events added up to.
#[derive(Default, Debug)]
struct FileSeen {
    start: u64,
    bytes: Vec<u8>,
    paths: Vec<PathBuf>,
    idle: usize,
    closed: Option<u64>,
}

#[derive(Default, Debug)]
struct Seen {
    files: BTreeMap<FileId, FileSeen>,
    /// Files in the order of their first event.
    order: Vec<FileId>,
}

impl Seen {
    fn apply(&mut self, ev: SourceEvent) {
        let id = **ev.file();
        if !self.files.contains_key(&id) {
            self.order.push(id);
        }
        let f = self.files.entry(id).or_default();
        assert!(f.closed.is_none(), "event after Closed for {id}: {ev:?}");
        match ev {
            SourceEvent::Data {
                offset, bytes, path, ..
            } => {
                if f.bytes.is_empty() && f.paths.is_empty() {
                    f.start = offset;
                }
                // Exactly once, in order: each chunk starts where the previous one ended.
                assert_eq!(offset, f.start + f.bytes.len() as u64, "gap or overlap in {id}");
                f.bytes.extend_from_slice(&bytes);
                if f.paths.last().map(PathBuf::as_path) != Some(&*path) {
                    f.paths.push(path.to_path_buf());
                }
            }
            SourceEvent::Idle { .. } => f.idle += 1,
            SourceEvent::Closed { end, .. } => {
                if f.paths.is_empty() {
                    // Nothing read in this run: the file was already read up to `end`.
                    f.start = end;
                }
                assert_eq!(end, f.start + f.bytes.len() as u64, "Closed end of {id}");
                f.closed = Some(end);
            }
        }
    }

    /// The file whose data arrived from `path` (as its first path).
    fn by_path(&self, path: &Path) -> Option<(&FileId, &FileSeen)> {
        self.order
            .iter()
            .map(|id| (id, &self.files[id]))
            .find(|(_, f)| f.paths.first().map(PathBuf::as_path) == Some(path))
    }

    fn bytes_of(&self, path: &Path) -> Vec<u8> {
        self.by_path(path).map(|(_, f)| f.bytes.clone()).unwrap_or_default()
    }
}

struct Opts {
    watch: WatchMode,
    idle: Duration,
    fingerprint: usize,
    read_buffer: u64,
    channel: usize,
    remove_after: Option<Duration>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            watch: WatchMode::Notify,
            idle: Duration::from_millis(300),
            fingerprint: 64,
            read_buffer: 4096,
            channel: 64,
            remove_after: None,
        }
    }
}

struct Running {
    rx: mpsc::Receiver<SourceEvent>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), scrubd::source::SourceError>>,
    room: watch::Sender<bool>,
    cp: Arc<Checkpointer>,
    stats: Arc<TailerStats>,
    seen: Seen,
}

fn start(logs: &Path, state: &Path, opts: Opts) -> Running {
    start_with(logs, state, opts, |_| {})
}

fn start_with(logs: &Path, state: &Path, opts: Opts, tweak: impl FnOnce(&mut SourceConfig)) -> Running {
    let mut cfg = SourceConfig::new("test", vec![format!("{}/*.log", logs.display())]);
    cfg.watch = opts.watch;
    cfg.poll_interval = Duration::from_millis(100);
    cfg.read_buffer = bytesize::ByteSize::b(opts.read_buffer);
    cfg.remove_archived_after = opts.remove_after;
    tweak(&mut cfg);
    let options = TailerOptions {
        idle_timeout: opts.idle,
        fingerprint_bytes: opts.fingerprint,
        chunks_per_pass: 4,
        once: false,
    };
    let cp = Arc::new(Checkpointer::open(state).unwrap());
    let (tx, rx) = mpsc::channel(opts.channel);
    let (room, room_rx) = watch::channel(true);
    let tailer = Tailer::new(cfg, options, cp.clone(), tx, room_rx).unwrap();
    let stats = tailer.stats();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(tailer.run(cancel.clone()));
    Running {
        rx,
        cancel,
        task,
        room,
        cp,
        stats,
        seen: Seen::default(),
    }
}

impl Running {
    /// Receives events until `done(seen)` holds; panics after a generous timeout.
    async fn until(&mut self, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.seen.apply(ev),
                Ok(None) => panic!("tailer stopped while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; seen: {:#?}", self.summary()),
            }
        }
    }

    fn summary(&self) -> Vec<String> {
        self.seen
            .order
            .iter()
            .map(|id| {
                let f = &self.seen.files[id];
                format!(
                    "{id} {:?} start={} len={} idle={} closed={:?}",
                    f.paths,
                    f.start,
                    f.bytes.len(),
                    f.idle,
                    f.closed
                )
            })
            .collect()
    }

    /// Receives events for `d`, whatever comes.
    async fn drain_for(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.seen.apply(ev);
        }
    }

    /// Commits every file to what it has received (as the pipeline would once spooled).
    fn commit_all(&self) {
        for (id, f) in &self.seen.files {
            self.cp.commit(id, f.start + f.bytes.len() as u64).unwrap();
        }
    }

    async fn stop(self) -> Seen {
        self.cancel.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("tailer did not stop")
            .unwrap()
            .unwrap();
        self.seen
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

fn lines(tag: &str, range: std::ops::Range<usize>) -> Vec<u8> {
    range
        .map(|i| format!("{tag} line {i:05} {}\n", "x".repeat(i % 37)))
        .collect::<String>()
        .into_bytes()
}

fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&logs).unwrap();
    (dir, logs, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_arrive_in_order_exactly_once() {
    let (_d, logs, state) = dirs();
    let a = logs.join("a.log");
    let b = logs.join("b.log");
    append(&a, &lines("a", 0..10));
    let mut r = start(&logs, &state, Opts::default());
    let mut written_a = lines("a", 0..10);
    let mut written_b = Vec::new();
    for round in 0..20 {
        let chunk = lines("a", round * 50..round * 50 + 50);
        append(&a, &chunk);
        written_a.extend_from_slice(&chunk);
        let chunk = lines("b", round * 7..round * 7 + 7);
        append(&b, &chunk);
        written_b.extend_from_slice(&chunk);
        if round % 5 == 0 {
            let (wa, wb) = (written_a.len(), written_b.len());
            r.until("a round", |s| s.bytes_of(&a).len() == wa && s.bytes_of(&b).len() == wb)
                .await;
        }
    }
    // Idle comes after the last data of a file: once both are idle, nothing more is on its way.
    r.until("both idle", |s| {
        [&a, &b].iter().all(|p| {
            s.by_path(p)
                .is_some_and(|(_, f)| f.idle > 0 && f.bytes.len() == std::fs::metadata(p).unwrap().len() as usize)
        })
    })
    .await;
    let seen = r.stop().await;
    assert_eq!(seen.bytes_of(&a), written_a);
    assert_eq!(seen.bytes_of(&b), written_b);
    assert_eq!(seen.files.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_file_is_read_after_the_idle_timeout() {
    let (_d, logs, state) = dirs();
    let a = logs.join("a.log");
    append(&a, b"tiny\n");
    let mut r = start(
        &logs,
        &state,
        Opts {
            fingerprint: 1024,
            ..Opts::default()
        },
    );
    r.until("tiny file", |s| s.bytes_of(&a) == b"tiny\n").await;
    // It grows past the fingerprint size later: still the same file.
    let more = lines("a", 0..100);
    append(&a, &more);
    let want = [b"tiny\n".as_slice(), &more].concat();
    r.until("the rest", |s| s.bytes_of(&a).len() == want.len()).await;
    let seen = r.stop().await;
    assert_eq!(seen.bytes_of(&a), want);
    assert_eq!(seen.files.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_create_rotation_loses_and_duplicates_nothing() {
    let (_d, logs, state) = dirs();
    let live = logs.join("app.log");
    let mut r = start(&logs, &state, Opts::default());
    let mut old_written = Vec::new();
    let mut writer = OpenOptions::new().create(true).append(true).open(&live).unwrap();
    let mut generation_written: Vec<Vec<u8>> = Vec::new();
    for generation in 0..3 {
        for i in 0..40 {
            let chunk = lines(&format!("g{generation}"), i * 10..i * 10 + 10);
            writer.write_all(&chunk).unwrap();
            old_written.extend_from_slice(&chunk);
            if i == 20 {
                // Let the tailer catch up with everything so far, so the rotation hits a file
                // that is being read.
                let n = old_written.len() + generation_written.iter().map(Vec::len).sum::<usize>();
                r.until("catch up", |s| {
                    s.files.values().map(|f| f.bytes.len()).sum::<usize>() == n
                })
                .await;
            }
        }
        // logrotate: rename, the application writes a bit more into the old descriptor, then
        // reopens the new file.
        std::fs::rename(&live, logs.join(format!("app.log.{generation}"))).unwrap();
        let late = lines(&format!("late{generation}"), 0..5);
        writer.write_all(&late).unwrap();
        old_written.extend_from_slice(&late);
        generation_written.push(std::mem::take(&mut old_written));
        writer = OpenOptions::new().create(true).append(true).open(&live).unwrap();
    }
    let last = lines("g3", 0..30);
    writer.write_all(&last).unwrap();
    drop(writer);

    let want = generation_written.clone();
    r.until("all rotated files closed and the new one read", |s| {
        let closed: Vec<_> = s.order.iter().filter(|id| s.files[id].closed.is_some()).collect();
        closed.len() == want.len()
            && s.files.values().map(|f| f.bytes.len()).sum::<usize>()
                == want.iter().map(Vec::len).sum::<usize>() + last.len()
    })
    .await;
    let seen = r.stop().await;
    // Each generation is one file whose data is exactly what was written to it, in order.
    assert_eq!(seen.order.len(), 4, "{:?}", seen.order);
    for (g, id) in seen.order.iter().take(3).enumerate() {
        assert_eq!(seen.files[id].bytes, generation_written[g], "generation {g}");
        assert!(seen.files[id].closed.is_some());
    }
    assert_eq!(seen.files[&seen.order[3]].bytes, last);
    assert!(seen.files[&seen.order[3]].closed.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_is_detected_and_the_rest_read_from_the_copy() {
    let (_d, logs, state) = dirs();
    let live = logs.join("app.log");
    let first = lines("first", 0..50);
    append(&live, &first);
    let mut r = start(&logs, &state, Opts::default());
    r.until("first part", |s| s.bytes_of(&live).len() == first.len()).await;
    let old_id = *r.seen.by_path(&live).unwrap().0;

    // Pause reading, so the tail of the old content is only read after the truncation.
    r.room.send(false).unwrap();
    let unread = lines("unread", 0..30);
    append(&live, &unread);
    // copytruncate: copy, truncate in place, the application goes on writing (more than before,
    // so the size alone does not show the truncation).
    std::fs::copy(&live, logs.join("app.log.1")).unwrap();
    OpenOptions::new().write(true).open(&live).unwrap().set_len(0).unwrap();
    let second = lines("second", 0..200);
    append(&live, &second);
    r.room.send(true).unwrap();

    r.until("old closed and new read", |s| {
        s.files.get(&old_id).is_some_and(|f| f.closed.is_some())
            && s.files
                .iter()
                .any(|(id, f)| *id != old_id && f.bytes.len() == second.len())
    })
    .await;
    assert_eq!(r.stats.truncations.load(Ordering::Relaxed), 1);
    let seen = r.stop().await;
    let old = &seen.files[&old_id];
    assert_eq!(
        old.bytes,
        [first.as_slice(), &unread].concat(),
        "old content read to its end from the copy"
    );
    assert_eq!(old.paths.last().unwrap(), &logs.join("app.log.1"));
    let (new_id, new) = seen.files.iter().find(|(id, _)| **id != old_id).unwrap();
    assert_eq!(new.bytes, second);
    assert_eq!(
        (new_id.dev, new_id.ino),
        (old_id.dev, old_id.ino),
        "same inode, new identity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_file_is_read_to_its_end_and_closed() {
    let (_d, logs, state) = dirs();
    let a = logs.join("a.log");
    let data = lines("a", 0..100);
    append(&a, &data);
    let mut r = start(&logs, &state, Opts::default());
    r.until("data", |s| s.bytes_of(&a).len() == data.len()).await;
    std::fs::remove_file(&a).unwrap();
    r.until("closed", |s| s.by_path(&a).is_some_and(|(_, f)| f.closed.is_some()))
        .await;
    let seen = r.stop().await;
    let (_, f) = seen.by_path(&a).unwrap();
    assert_eq!(f.closed, Some(data.len() as u64));
    assert_eq!(f.bytes, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_committed_offset() {
    let (_d, logs, state) = dirs();
    let a = logs.join("a.log");
    let one = lines("one", 0..100);
    append(&a, &one);
    let mut r = start(&logs, &state, Opts::default());
    r.until("one", |s| s.bytes_of(&a).len() == one.len()).await;
    let id = *r.seen.by_path(&a).unwrap().0;
    // Only the first 1000 bytes reached the spool before the stop.
    r.cp.commit(&id, 1000).unwrap();
    drop(r.stop().await);

    let two = lines("two", 0..100);
    append(&a, &two);
    let mut r = start(&logs, &state, Opts::default());
    let total = one.len() + two.len();
    r.until("resumed", |s| {
        s.files
            .get(&id)
            .is_some_and(|f| f.start as usize + f.bytes.len() == total)
    })
    .await;
    r.commit_all();
    let seen = r.stop().await;
    let f = &seen.files[&id];
    assert_eq!(f.start, 1000);
    assert_eq!(f.bytes, [&one[1000..], two.as_slice()].concat());
    assert_eq!(seen.files.len(), 1);

    // Fully committed: a third run sends nothing but the idle notice.
    let mut r = start(&logs, &state, Opts::default());
    r.until("idle", |s| s.files.get(&id).is_some_and(|f| f.idle > 0)).await;
    let seen = r.stop().await;
    assert!(seen.files[&id].bytes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_rotated_and_gzipped_while_stopped_is_finished_from_the_gz() {
    let (_d, logs, state) = dirs();
    let live = logs.join("app.log");
    let done = lines("done", 0..100);
    let pending = lines("pending", 0..300);
    append(&live, &[done.as_slice(), &pending].concat());
    let mut r = start(&logs, &state, Opts::default());
    r.until("all", |s| s.bytes_of(&live).len() == done.len() + pending.len())
        .await;
    let id = *r.seen.by_path(&live).unwrap().0;
    r.cp.commit(&id, done.len() as u64).unwrap();
    drop(r.stop().await);

    // While stopped: rotate, compress the rotated file, and start a new one.
    let rotated = logs.join("app.log.1");
    std::fs::rename(&live, &rotated).unwrap();
    let gz = logs.join("app.log.1.gz");
    let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(&std::fs::read(&rotated).unwrap()).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(&rotated).unwrap();
    let fresh = lines("fresh", 0..50);
    append(&live, &fresh);

    let mut r = start(&logs, &state, Opts::default());
    r.until("old finished, new read", |s| {
        s.files.get(&id).is_some_and(|f| f.closed.is_some())
            && s.files.iter().any(|(i, f)| *i != id && f.bytes.len() == fresh.len())
    })
    .await;
    assert_eq!(r.stats.resumed_rotated.load(Ordering::Relaxed), 1);
    let seen = r.stop().await;
    let old = &seen.files[&id];
    assert_eq!(old.start, done.len() as u64);
    assert_eq!(old.bytes, pending);
    assert_eq!(old.paths, vec![gz]);
    let (_, new) = seen.files.iter().find(|(i, _)| **i != id).unwrap();
    assert_eq!(new.bytes, fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_deleted_while_stopped_is_forgotten_and_inode_reuse_is_a_new_file() {
    let (_d, logs, state) = dirs();
    let a = logs.join("a.log");
    let old = lines("old", 0..100);
    append(&a, &old);
    let mut r = start(&logs, &state, Opts::default());
    r.until("old", |s| s.bytes_of(&a).len() == old.len()).await;
    r.commit_all();
    let old_id = *r.seen.by_path(&a).unwrap().0;
    drop(r.stop().await);

    // While stopped: delete it, and create new files until one takes the old inode (most
    // filesystems hand a freed inode out again soon); whether or not one does, each new file
    // must be read from the start as a new identity.
    std::fs::remove_file(&a).unwrap();
    let new = lines("new", 0..80);
    let mut reused = false;
    for i in 0..50 {
        let p = logs.join(format!("probe{i}.tmp"));
        File::create(&p).unwrap();
        if std::fs::metadata(&p).unwrap().ino() == old_id.ino {
            std::fs::rename(&p, &a).unwrap();
            reused = true;
            break;
        }
        std::fs::remove_file(&p).unwrap();
    }
    append(&a, &new);
    eprintln!("inode reused: {reused}");

    let mut r = start(&logs, &state, Opts::default());
    r.until("new file", |s| s.bytes_of(&a).len() == new.len()).await;
    assert_eq!(r.stats.deleted_while_stopped.load(Ordering::Relaxed), 1);
    let seen = r.stop().await;
    let (new_id, f) = seen.by_path(&a).unwrap();
    assert_ne!(*new_id, old_id);
    assert_eq!(f.start, 0);
    assert_eq!(f.bytes, new);
    assert!(!seen.files.contains_key(&old_id));
    let cp = Checkpointer::open(&state).unwrap();
    assert_eq!(cp.get(&old_id), None, "checkpoint of the deleted file forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inode_reuse_while_running_is_a_new_file() {
    let (_d, logs, state) = dirs();
    let a = logs.join("a.log");
    let mut r = start(&logs, &state, Opts::default());
    let mut ids = Vec::new();
    for round in 0..5 {
        let data = lines(&format!("r{round}"), 0..30 + round);
        append(&a, &data);
        r.until("data", |s| {
            s.order.len() == round + 1 && s.files[&s.order[round]].bytes.len() == data.len()
        })
        .await;
        std::fs::remove_file(&a).unwrap();
        r.until("closed", |s| s.files[&s.order[round]].closed.is_some()).await;
        ids.push(r.seen.order[round]);
        assert_eq!(r.seen.files[&ids[round]].bytes, data);
    }
    let seen = r.stop().await;
    assert_eq!(seen.files.len(), 5);
    let unique: std::collections::HashSet<FileId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 5);
    let inodes: std::collections::HashSet<u64> = ids.iter().map(|i| i.ino).collect();
    eprintln!("{} distinct inodes for 5 files", inodes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_alone_finds_new_files_and_appends() {
    let (_d, logs, state) = dirs();
    let mut r = start(
        &logs,
        &state,
        Opts {
            watch: WatchMode::Poll,
            ..Opts::default()
        },
    );
    let a = logs.join("later.log");
    let one = lines("one", 0..20);
    append(&a, &one);
    r.until("new file", |s| s.bytes_of(&a).len() == one.len()).await;
    let two = lines("two", 0..20);
    append(&a, &two);
    r.until("append", |s| s.bytes_of(&a).len() == one.len() + two.len())
        .await;
    let ignored = logs.join("other.txt");
    append(&ignored, &one);
    let seen = r.stop().await;
    assert_eq!(seen.bytes_of(&a), [one, two].concat());
    assert!(seen.by_path(&ignored).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_signal_stops_reading_until_there_is_room() {
    let (_d, logs, state) = dirs();
    let a = logs.join("a.log");
    let one = lines("one", 0..20);
    append(&a, &one);
    let mut r = start(&logs, &state, Opts::default());
    r.until("one", |s| s.bytes_of(&a).len() == one.len()).await;
    r.room.send(false).unwrap();
    let two = lines("two", 0..200);
    append(&a, &two);
    // Give a running tailer every chance to read: several poll intervals and notify events.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&logs.join("noise.txt"), b"x");
    }
    while let Ok(ev) = r.rx.try_recv() {
        assert!(!matches!(ev, SourceEvent::Data { .. }), "read while paused: {ev:?}");
        r.seen.apply(ev);
    }
    r.room.send(true).unwrap();
    r.until("two", |s| s.bytes_of(&a).len() == one.len() + two.len()).await;
    let seen = r.stop().await;
    assert_eq!(seen.bytes_of(&a), [one, two].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_channel_blocks_the_tailer_without_losing_anything() {
    let (_d, logs, state) = dirs();
    let a = logs.join("a.log");
    let data = lines("big", 0..20_000);
    append(&a, &data);
    let mut r = start(
        &logs,
        &state,
        Opts {
            channel: 1,
            read_buffer: 1000,
            ..Opts::default()
        },
    );
    // Receive slowly at first: the tailer can only be one event ahead.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let ev = tokio::time::timeout(WAIT, r.rx.recv()).await.unwrap().unwrap();
        r.seen.apply(ev);
    }
    r.until("all", |s| s.bytes_of(&a).len() == data.len()).await;
    let seen = r.stop().await;
    assert_eq!(seen.bytes_of(&a), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_removal_deletes_rotated_files_once_fully_committed() {
    let (_d, logs, state) = dirs();
    let live = logs.join("app.log");
    let old = lines("old", 0..100);
    append(&live, &old);
    let mut r = start(
        &logs,
        &state,
        Opts {
            remove_after: Some(Duration::ZERO),
            ..Opts::default()
        },
    );
    r.until("old", |s| s.bytes_of(&live).len() == old.len()).await;
    let rotated = logs.join("app.log.1");
    std::fs::rename(&live, &rotated).unwrap();
    append(&live, &lines("new", 0..10));
    r.until("rotated closed", |s| {
        s.by_path(&live).is_some_and(|(_, f)| f.closed.is_some())
    })
    .await;
    // Not committed yet: it must stay.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rotated.exists(), "removed before it was committed");
    r.commit_all();
    let deadline = tokio::time::Instant::now() + WAIT;
    while rotated.exists() {
        assert!(tokio::time::Instant::now() < deadline, "rotated file never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(live.exists(), "the active file is kept");
    drop(r.stop().await);
}

/// Adds one run's events to those of the runs before: a file's data must continue exactly where
/// the previous run's committed data ended.
fn merge(total: &mut BTreeMap<FileId, FileSeen>, run: Seen) {
    for (id, f) in run.files {
        let t = total.entry(id).or_default();
        if !f.bytes.is_empty() {
            assert_eq!(
                f.start,
                t.start + t.bytes.len() as u64,
                "gap or overlap across restarts in {id}"
            );
            t.bytes.extend_from_slice(&f.bytes);
            t.paths.extend(f.paths);
        }
        t.closed = t.closed.or(f.closed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_during_concurrent_writes_and_restarts_loses_and_duplicates_nothing() {
    let (_d, logs, state) = dirs();
    let live = logs.join("app.log");
    const GENERATIONS: usize = 8;
    let writer = {
        let (live, logs) = (live.clone(), logs.clone());
        std::thread::spawn(move || {
            let mut gens = Vec::new();
            for g in 0..GENERATIONS {
                let mut f = OpenOptions::new().create(true).append(true).open(&live).unwrap();
                let mut w = Vec::new();
                for i in 0..3000 {
                    let line = format!("g{g} {i:05} {}\n", "y".repeat(i % 50));
                    f.write_all(line.as_bytes()).unwrap();
                    w.extend_from_slice(line.as_bytes());
                    if i % 50 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                if g + 1 < GENERATIONS {
                    std::fs::rename(&live, logs.join(format!("app.log.{g}"))).unwrap();
                    let late = format!("g{g} written after the rename\n");
                    f.write_all(late.as_bytes()).unwrap();
                    w.extend_from_slice(late.as_bytes());
                }
                gens.push(w);
            }
            gens
        })
    };

    // Restart the tailer over and over while the application writes and rotates.
    let mut total: BTreeMap<FileId, FileSeen> = BTreeMap::new();
    let mut runs = 0;
    while !writer.is_finished() {
        let mut r = start(&logs, &state, Opts::default());
        r.drain_for(Duration::from_millis(120)).await;
        r.commit_all();
        merge(&mut total, r.stop().await);
        runs += 1;
    }
    let gens = writer.join().unwrap();
    let want: usize = gens.iter().map(Vec::len).sum();

    let mut r = start(&logs, &state, Opts::default());
    let before_bytes: usize = total.values().map(|f| f.bytes.len()).sum();
    // A rotated file is finished when it was closed, or when its checkpoint says it is done (its
    // Closed event was still in the channel when a run stopped, and the commit of its last
    // bytes then made it fully archived).
    for (id, f) in &total {
        eprintln!(
            "before the final run: {id} start={} len={} closed={:?}",
            f.start,
            f.bytes.len(),
            f.closed
        );
    }
    eprintln!("checkpoints: {:#?}", r.cp.entries());
    eprintln!("want {want} bytes: {:?}", gens.iter().map(Vec::len).collect::<Vec<_>>());
    let cp = r.cp.clone();
    let finished = |s: &Seen, total: &BTreeMap<FileId, FileSeen>| {
        total
            .keys()
            .chain(s.files.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|id| {
                total.get(id).is_some_and(|f| f.closed.is_some())
                    || s.files.get(id).is_some_and(|f| f.closed.is_some())
                    || cp.is_done(id)
            })
            .count()
    };
    r.until("everything", |s| {
        before_bytes + s.files.values().map(|f| f.bytes.len()).sum::<usize>() == want
            && finished(s, &total) == GENERATIONS - 1
    })
    .await;
    r.commit_all();
    merge(&mut total, r.stop().await);
    eprintln!("{runs} restarts during the writes");

    assert_eq!(total.len(), GENERATIONS);
    for f in total.values() {
        let g: usize = std::str::from_utf8(&f.bytes[1..f.bytes.iter().position(|b| *b == b' ').unwrap()])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(f.start, 0);
        assert!(
            f.bytes == gens[g],
            "generation {g}: {} bytes read, {} written",
            f.bytes.len(),
            gens[g].len()
        );
        if g + 1 == GENERATIONS {
            assert!(f.closed.is_none(), "the live file is not closed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_created_and_rotated_while_stopped_is_read_from_its_rotated_name() {
    created_and_rotated_while_stopped(false).await;
}

/// Compression in progress: both `app.log.1` and `app.log.1.gz` exist; it is read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_rotated_while_stopped_and_half_compressed_is_read_once() {
    created_and_rotated_while_stopped(true).await;
}

async fn created_and_rotated_while_stopped(keep_uncompressed: bool) {
    let (_d, logs, state) = dirs();
    let live = logs.join("app.log");
    // Rotated before scrubd ever ran: left alone.
    let ancient = logs.join("app.log.9");
    append(&ancient, &lines("ancient", 0..20));
    File::options()
        .write(true)
        .open(&ancient)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(86_400))
        .unwrap();
    let g1 = lines("g1", 0..100);
    append(&live, &g1);
    let mut r = start(&logs, &state, Opts::default());
    r.until("g1", |s| s.bytes_of(&live).len() == g1.len()).await;
    r.commit_all();
    let g1_id = *r.seen.by_path(&live).unwrap().0;
    drop(r.stop().await);

    // While stopped, two rotations: g1 goes to app.log.2, g2 is written and goes to app.log.1
    // (then compressed), g3 is the live file.
    std::fs::rename(&live, logs.join("app.log.2")).unwrap();
    let g2 = lines("g2", 0..150);
    append(&live, &g2);
    std::fs::rename(&live, logs.join("app.log.1")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        File::create(logs.join("app.log.1.gz")).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&g2).unwrap();
    enc.finish().unwrap();
    if !keep_uncompressed {
        std::fs::remove_file(logs.join("app.log.1")).unwrap();
    }
    let g2_path = logs.join(if keep_uncompressed { "app.log.1" } else { "app.log.1.gz" });
    let g3 = lines("g3", 0..50);
    append(&live, &g3);

    let mut r = start(&logs, &state, Opts::default());
    r.until("g2 and g3", |s| {
        s.bytes_of(&g2_path).len() == g2.len() && s.bytes_of(&live).len() == g3.len()
    })
    .await;
    r.until("g1 closed", |s| s.files.get(&g1_id).is_some_and(|f| f.closed.is_some()))
        .await;
    let seen = r.stop().await;
    let (_, f2) = seen.by_path(&g2_path).unwrap();
    assert_eq!(f2.start, 0);
    assert_eq!(f2.bytes, g2);
    assert!(f2.closed.is_some());
    assert!(seen.files[&g1_id].bytes.is_empty(), "g1 was already read");
    assert!(
        seen.by_path(&ancient).is_none(),
        "a file rotated before the first start is not read"
    );
    assert_eq!(seen.files.len(), 3, "{:?}", seen.order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_truncation_empties_archived_files_but_not_the_active_one() {
    let (_d, logs, state) = dirs();
    let old = logs.join("2026-11-22.log");
    let active = logs.join("2026-11-23.log");
    let old_data = lines("old", 0..100);
    append(&old, &old_data);
    File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    append(&active, &lines("active", 0..100));
    let opts = Opts {
        remove_after: Some(Duration::from_secs(600)),
        ..Opts::default()
    };
    let mut r = start_with(&logs, &state, opts, |c| {
        c.remove_mode = scrubd::source::RemoveMode::Truncate
    });
    r.until("both idle", |s| {
        [&old, &active]
            .iter()
            .all(|p| s.by_path(p).is_some_and(|(_, f)| f.idle > 0 && !f.bytes.is_empty()))
    })
    .await;
    // Nothing is committed yet: nothing may be removed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(std::fs::metadata(&old).unwrap().len(), old_data.len() as u64);
    r.commit_all();
    r.until("old closed after truncation", |s| {
        s.by_path(&old).is_some_and(|(_, f)| f.closed.is_some())
    })
    .await;
    assert_eq!(std::fs::metadata(&old).unwrap().len(), 0, "archived file truncated");
    assert!(std::fs::metadata(&active).unwrap().len() > 0, "active file kept");
    assert_eq!(r.stats.removed.load(Ordering::Relaxed), 1);
    // The application writes to the emptied file again: a new file, and not a copytruncate.
    let again = lines("again", 0..30);
    append(&old, &again);
    r.until("new content", |s| s.files.values().any(|f| f.bytes == again))
        .await;
    assert_eq!(r.stats.truncations.load(Ordering::Relaxed), 0);
    drop(r.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subdirectories_created_later_are_watched() {
    let (_d, logs, state) = dirs();
    let pattern = format!("{}/*/webhooks.log", logs.display());
    let mut r = start_with(&logs, &state, Opts::default(), |c| c.paths = vec![pattern]);
    let host_a = logs.join("host-a");
    std::fs::create_dir(&host_a).unwrap();
    let a = host_a.join("webhooks.log");
    let data = lines("a", 0..40);
    append(&a, &data);
    append(&host_a.join("other.log"), &data);
    r.until("file in the new subdirectory", |s| s.bytes_of(&a).len() == data.len())
        .await;
    let more = lines("more", 0..40);
    append(&a, &more);
    r.until("append", |s| s.bytes_of(&a).len() == data.len() + more.len())
        .await;
    let seen = r.stop().await;
    assert_eq!(seen.bytes_of(&a), [data, more].concat());
    assert_eq!(seen.files.len(), 1, "other.log does not match");
}
