//! The tailer of one source: discovery, reading, rotation, idle and close detection.
//!
//! It runs on one blocking thread (file reads and directory walks are blocking I/O) and hands its
//! events to the async world through a bounded channel; a full channel blocks it, which is the
//! backpressure. Each pass (woken by inotify, by the poll timer, or right away while there is
//! more to read) lists the files matching the globs, opens the new ones, and reads every open
//! file from its offset towards its end.
//!
//! How rotation is followed, all by keeping the file descriptor open:
//! - rename + create: the old file is no longer at a watched path ("detached"); it is read to its
//!   end, then closed once it has not grown for the idle timeout; the new file is a new identity.
//! - delete: the same (the descriptor still reads the unlinked file).
//! - copytruncate: the size falls below the offset (or the first bytes change): a warning, the
//!   rest of the old content is read from the copy next to it if one has the same fingerprint,
//!   and the file is read again from 0 as a new identity.
//! - after a restart, a checkpointed file that is no longer at its path is looked for among its
//!   siblings by fingerprint (`x.log.1`, `x.log.1.gz`...) and finished from the checkpoint; one
//!   that cannot be found was deleted while scrubd was stopped: its checkpoint is forgotten.
//!
//! Must not: read a byte twice within a run or skip one, send events of one file out of order,
//! log file content, or read while the pause signal says the spool is full.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use globset::{GlobBuilder, GlobMatcher};
use notify::Watcher;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::removal::{RemovalCheck, is_removable, remove_file};
use super::{Checkpointer, DEFAULT_FINGERPRINT_BYTES, FileId, Fingerprint, SourceConfig, SourceError, SourceEvent};
use super::{RemoveMode, WatchMode};

/// How often checkpoints of done files are checked for files that are gone.
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// Settings of the tailer that come from the daemon rather than the source.
#[derive(Clone, Debug)]
pub struct TailerOptions {
    /// A file that has not grown for this long gets an `Idle` event; a rotated-away or deleted
    /// file is closed after it; a file shorter than `fingerprint_bytes` is identified after it.
    pub idle_timeout: Duration,
    /// Number of leading bytes hashed into a file's fingerprint.
    pub fingerprint_bytes: usize,
    /// Most chunks read from one file in one pass before the others get their turn.
    pub chunks_per_pass: usize,
    /// Read every file to its end once, then stop (`scrubd run --once`).
    pub once: bool,
}

impl Default for TailerOptions {
    fn default() -> Self {
        TailerOptions {
            idle_timeout: Duration::from_secs(5),
            fingerprint_bytes: DEFAULT_FINGERPRINT_BYTES,
            chunks_per_pass: 16,
            once: false,
        }
    }
}

/// Counters of one tailer, for metrics (monotonic; read them with `Ordering::Relaxed`).
#[derive(Debug, Default)]
pub struct TailerStats {
    /// Bytes sent in `Data` events.
    pub bytes_read: AtomicU64,
    /// Files given an identity (new, or resumed from a checkpoint).
    pub files_opened: AtomicU64,
    /// `Closed` events sent.
    pub files_closed: AtomicU64,
    /// Truncations detected (copytruncate).
    pub truncations: AtomicU64,
    /// Files rotated while scrubd was stopped, found again by fingerprint.
    pub resumed_rotated: AtomicU64,
    /// Checkpointed files deleted while scrubd was stopped (their unread rest is lost).
    pub deleted_while_stopped: AtomicU64,
    /// Files removed by compliance removal.
    pub removed: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// One glob pattern: the directory to walk, how deep, and the matcher.
struct Pattern {
    base: PathBuf,
    /// Directory levels below `base` to walk; `None` for `**`.
    depth: Option<usize>,
    matcher: GlobMatcher,
    recursive: bool,
}

impl Pattern {
    fn new(source_name: &str, pattern: &str) -> Result<Pattern, SourceError> {
        let matcher = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|error| SourceError::Pattern {
                source_name: source_name.to_owned(),
                pattern: pattern.to_owned(),
                error,
            })?
            .compile_matcher();
        let components: Vec<Component> = Path::new(pattern).components().collect();
        let mut split = components
            .iter()
            .position(|c| c.as_os_str().to_string_lossy().contains(['*', '?', '[', '{']))
            .unwrap_or(components.len());
        if split == components.len() && matches!(components.last(), Some(Component::Normal(_))) {
            // A plain file path: watch its directory.
            split -= 1;
        }
        let base: PathBuf = components[..split].iter().collect();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let rest = &components[split..];
        let recursive = rest.len() > 1;
        let depth = if rest.iter().any(|c| c.as_os_str() == "**") {
            None
        } else {
            Some(rest.len())
        };
        Ok(Pattern {
            base,
            depth,
            matcher,
            recursive,
        })
    }
}

/// Tails the files of one source. Build with [`Tailer::new`], start with [`Tailer::run`].
pub struct Tailer {
    config: SourceConfig,
    options: TailerOptions,
    patterns: Vec<Pattern>,
    checkpointer: Arc<Checkpointer>,
    tx: mpsc::Sender<SourceEvent>,
    room: watch::Receiver<bool>,
    stats: Arc<TailerStats>,
}

impl Tailer {
    /// A tailer for `config`, resuming from `checkpointer`, sending to `tx`, reading only while
    /// `room` (the spool has room) is `true`.
    pub fn new(
        config: SourceConfig,
        options: TailerOptions,
        checkpointer: Arc<Checkpointer>,
        tx: mpsc::Sender<SourceEvent>,
        room: watch::Receiver<bool>,
    ) -> Result<Tailer, SourceError> {
        let patterns = config
            .paths
            .iter()
            .map(|p| Pattern::new(&config.name, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tailer {
            config,
            options,
            patterns,
            checkpointer,
            tx,
            room,
            stats: Arc::default(),
        })
    }

    /// The tailer's counters, shared: they keep counting while [`Tailer::run`] runs.
    pub fn stats(&self) -> Arc<TailerStats> {
        self.stats.clone()
    }

    /// Tails until `cancel` fires (or the receiver is dropped). The work runs on a blocking
    /// thread; this future completes when that thread has stopped.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), SourceError> {
        let name = self.config.name.clone();
        let handle = tokio::runtime::Handle::current();
        // Capacity 1: wake-ups coalesce, one pending wake-up is enough to cause a new pass.
        let (wake_tx, wake_rx) = std_mpsc::sync_channel::<()>(1);
        let waker = {
            let cancel = cancel.clone();
            let wake_tx = wake_tx.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                let _ = wake_tx.try_send(());
            })
        };
        let span = tracing::info_span!("source", source = %name);
        let result = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            Run::new(self, handle, cancel, wake_tx, wake_rx).main()
        })
        .await;
        waker.abort();
        result.map_err(|e| SourceError::Internal {
            source_name: name,
            message: e.to_string(),
        })?
    }
}

/// The receiver is gone or cancellation fired: stop.
struct Stopped;

enum Reader {
    /// A live (or renamed) file, read with positioned reads.
    Plain(File),
    /// A compressed rotated copy, read sequentially.
    Gz(Box<MultiGzDecoder<File>>),
}

struct Tracked {
    /// `None` while the file is too short to fingerprint.
    id: Option<Arc<FileId>>,
    path: Arc<Path>,
    reader: Reader,
    /// Device and inode of the open file.
    key: (u64, u64),
    /// Offset of the next byte to read.
    offset: u64,
    size_seen: u64,
    last_growth: Instant,
    idle_sent: bool,
    /// No longer at a watched path (rotated away or deleted).
    detached: bool,
    /// The file may still be written to; `false` for copies found by fingerprint, which are
    /// closed as soon as they are read to their end.
    growing: bool,
}

/// A closed file kept open until compliance removal deals with it.
struct Finished {
    id: Arc<FileId>,
    file: File,
    path: Arc<Path>,
    key: (u64, u64),
    end: u64,
}

struct Run {
    t: Tailer,
    source: Arc<str>,
    handle: tokio::runtime::Handle,
    cancel: CancellationToken,
    wake_tx: std_mpsc::SyncSender<()>,
    wake_rx: std_mpsc::Receiver<()>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    warned: HashSet<PathBuf>,
    files: Vec<Tracked>,
    finished: Vec<Finished>,
    last_sweep: Option<Instant>,
    last_gc: Option<Instant>,
}

impl Run {
    fn new(
        t: Tailer,
        handle: tokio::runtime::Handle,
        cancel: CancellationToken,
        wake_tx: std_mpsc::SyncSender<()>,
        wake_rx: std_mpsc::Receiver<()>,
    ) -> Run {
        Run {
            source: Arc::from(t.config.name.as_str()),
            t,
            handle,
            cancel,
            wake_tx,
            wake_rx,
            watcher: None,
            watched: HashSet::new(),
            warned: HashSet::new(),
            files: Vec::new(),
            finished: Vec::new(),
            last_sweep: None,
            last_gc: None,
        }
    }

    fn main(mut self) -> Result<(), SourceError> {
        let result = self.main_loop();
        self.shutdown();
        result
    }

    /// On the way out: files still too short to fingerprint get an identity from the bytes they
    /// have, and the checkpoints are written, so that a file rotated away before the next start
    /// is found again. (An empty file has no identity: if it is rotated while scrubd is stopped,
    /// the next start cannot know it.)
    fn shutdown(&mut self) {
        self.discover_files();
        for i in 0..self.files.len() {
            if self.files[i].id.is_none() {
                let _ = self.identify(i, true);
            }
        }
        if let Err(error) = self.t.checkpointer.flush() {
            warn!(%error, "cannot write checkpoints");
        }
    }

    fn main_loop(&mut self) -> Result<(), SourceError> {
        if self.t.config.watch == WatchMode::Notify {
            self.start_watcher();
        }
        let mut first = true;
        let mut forced = false;
        loop {
            if self.cancel.is_cancelled() {
                return Ok(());
            }
            if !*self.t.room.borrow() {
                debug!("spool full, reading paused");
                if self.wait_for_room().is_err() {
                    return Ok(());
                }
                continue;
            }
            self.watch_dirs();
            if first {
                // Identify every file at a watched path first: the checkpoints left over are
                // files that rotated or vanished while we were stopped, and the rotated files
                // that match no checkpoint were written while we were stopped.
                first = false;
                self.discover_files();
                for i in 0..self.files.len() {
                    let _ = self.identify(i, false);
                }
                self.resume_rotated();
                self.adopt_unseen_rotated();
                continue;
            }
            let more = match self.pass() {
                Ok(more) => more,
                Err(Stopped) => return Ok(()),
            };
            self.sweep_removals();
            self.forget_gone();
            if !more && self.t.options.once {
                // Everything is read to its end. Files still too short to fingerprint get their
                // identity from what they have, and one more pass reads them; then we are done.
                if !forced {
                    forced = true;
                    for i in 0..self.files.len() {
                        if self.files[i].id.is_none() {
                            let _ = self.identify(i, true);
                        }
                    }
                    continue;
                }
                return Ok(());
            }
            if !more {
                let wait = self
                    .t
                    .config
                    .poll_interval
                    .min(self.t.options.idle_timeout)
                    .max(Duration::from_millis(10));
                let _ = self.wake_rx.recv_timeout(wait);
                while self.wake_rx.try_recv().is_ok() {}
            }
        }
    }

    fn wait_for_room(&mut self) -> Result<(), Stopped> {
        let mut room = self.t.room.clone();
        let cancel = self.cancel.clone();
        self.handle.block_on(async move {
            tokio::select! {
                _ = cancel.cancelled() => Err(Stopped),
                r = room.wait_for(|has_room| *has_room) => r.map(|_| ()).map_err(|_| Stopped),
            }
        })
    }

    fn paused(&self) -> bool {
        !*self.t.room.borrow()
    }

    fn send(&self, event: SourceEvent) -> Result<(), Stopped> {
        let tx = self.t.tx.clone();
        let cancel = self.cancel.clone();
        self.handle.block_on(async move {
            tokio::select! {
                biased;
                r = tx.send(event) => r.map_err(|_| Stopped),
                _ = cancel.cancelled() => Err(Stopped),
            }
        })
    }

    fn start_watcher(&mut self) {
        let wake = self.wake_tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Our own reads must not wake us up again.
            if let Ok(ev) = &res
                && matches!(ev.kind, notify::EventKind::Access(_))
            {
                return;
            }
            let _ = wake.try_send(());
        });
        match watcher {
            Ok(w) => self.watcher = Some(w),
            Err(error) => warn!(%error, "cannot start the file watcher, falling back to polling"),
        }
    }

    /// Watches the base directories not watched yet (they may appear later).
    fn watch_dirs(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else { return };
        for p in &self.t.patterns {
            if self.watched.contains(&p.base) || !p.base.is_dir() {
                continue;
            }
            let mode = if p.recursive {
                notify::RecursiveMode::Recursive
            } else {
                notify::RecursiveMode::NonRecursive
            };
            match watcher.watch(&p.base, mode) {
                Ok(()) => {
                    self.watched.insert(p.base.clone());
                }
                Err(error) => {
                    if self.warned.insert(p.base.clone()) {
                        warn!(dir = %p.base.display(), %error, "cannot watch directory, polling it");
                    }
                }
            }
        }
    }

    /// The files matching the globs now, with their metadata.
    fn discover(&mut self) -> Vec<(PathBuf, std::fs::Metadata)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..self.t.patterns.len() {
            let base = self.t.patterns[i].base.clone();
            let depth = self.t.patterns[i].depth;
            self.walk(i, &base, depth, &mut out, &mut seen);
        }
        out
    }

    fn walk(
        &mut self,
        pattern: usize,
        dir: &Path,
        depth: Option<usize>,
        out: &mut Vec<(PathBuf, std::fs::Metadata)>,
        seen: &mut HashSet<PathBuf>,
    ) {
        if depth == Some(0) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(error) => {
                if error.kind() != std::io::ErrorKind::NotFound && self.warned.insert(dir.to_owned()) {
                    warn!(dir = %dir.display(), %error, "cannot list directory");
                }
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // Follows symlinks: a symlinked log file is tailed as its target.
            let Ok(md) = std::fs::metadata(&path) else { continue };
            if md.is_dir() {
                self.walk(pattern, &path, depth.map(|d| d - 1), out, seen);
            } else if md.is_file()
                && self.t.patterns[pattern]
                    .matcher
                    .is_match(path.strip_prefix("./").unwrap_or(&path))
                && seen.insert(path.clone())
            {
                out.push((path, md));
            }
        }
    }

    /// One pass: discovery, then every open file read towards its end. Returns whether some
    /// file has more to read right away.
    fn pass(&mut self) -> Result<bool, Stopped> {
        self.discover_files();
        let mut more = false;
        let mut i = 0;
        while i < self.files.len() {
            match self.service(i)? {
                Service::Keep { more: m } => {
                    more |= m;
                    i += 1;
                }
                Service::Remove => {
                    self.files.remove(i);
                }
            }
        }
        Ok(more)
    }

    /// Opens the files newly at a watched path, and notes those that left.
    fn discover_files(&mut self) {
        let matches = self.discover();
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        for (path, md) in matches {
            let key = (md.dev(), md.ino());
            seen.insert(key);
            if let Some(t) = self
                .files
                .iter_mut()
                .find(|t| t.growing && t.key == key && matches!(t.reader, Reader::Plain(_)))
            {
                if *t.path != *path {
                    info!(from = %t.path.display(), to = %path.display(), "file renamed within the watched paths");
                    t.path = Arc::from(path.as_path());
                    if let Some(id) = &t.id {
                        self.t.checkpointer.track(id, &self.source, &t.path);
                    }
                }
                t.detached = false;
                continue;
            }
            if self.finished.iter().any(|f| f.key == key) {
                continue;
            }
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(error) => {
                    // Once per path: an unreadable file would otherwise warn on every pass.
                    if error.kind() != std::io::ErrorKind::NotFound && self.warned.insert(path.clone()) {
                        warn!(path = %path.display(), %error, "cannot open log file");
                    }
                    continue;
                }
            };
            // The path may have been replaced between listing and opening: trust the descriptor.
            let Ok(fmd) = file.metadata() else { continue };
            let key = (fmd.dev(), fmd.ino());
            seen.insert(key);
            if !fmd.is_file() || self.files.iter().any(|t| t.key == key && t.growing) {
                continue;
            }
            debug!(path = %path.display(), "new file");
            self.files.push(Tracked {
                id: None,
                path: Arc::from(path.as_path()),
                reader: Reader::Plain(file),
                key,
                offset: 0,
                size_seen: 0,
                last_growth: Instant::now(),
                idle_sent: false,
                detached: false,
                growing: true,
            });
        }
        for t in &mut self.files {
            if t.growing && !t.detached && !seen.contains(&t.key) {
                debug!(path = %t.path.display(), "file left the watched paths, reading it to its end");
                t.detached = true;
            }
        }
    }

    fn service(&mut self, i: usize) -> Result<Service, Stopped> {
        if self.files[i].id.is_none() {
            match self.identify(i, false) {
                Ident::Waiting => return Ok(Service::Keep { more: false }),
                Ident::Drop => return Ok(Service::Remove),
                Ident::Done => {}
            }
        }
        match self.files[i].reader {
            Reader::Plain(_) => self.read_plain(i),
            Reader::Gz(_) => self.read_gz(i),
        }
    }

    /// Gives the file an identity: its checkpoint's, when one matches, or a new one once it has
    /// enough bytes (or has been idle, or was rotated away, or `force`).
    fn identify(&mut self, i: usize, force: bool) -> Ident {
        let n = self.t.options.fingerprint_bytes;
        let idle_timeout = self.t.options.idle_timeout;
        let t = &mut self.files[i];
        let Reader::Plain(file) = &t.reader else {
            return Ident::Drop;
        };
        let size = match file.metadata() {
            Ok(md) => md.len(),
            Err(error) => {
                warn!(path = %t.path.display(), %error, "cannot stat open log file");
                return Ident::Waiting;
            }
        };
        let now = Instant::now();
        if size != t.size_seen {
            t.size_seen = size;
            t.last_growth = now;
        }
        let idle = now.duration_since(t.last_growth) >= idle_timeout;
        if size == 0 {
            return if t.detached && idle {
                Ident::Drop
            } else {
                Ident::Waiting
            };
        }
        let prefix = match read_prefix(file, size.min(n as u64) as usize) {
            Ok(p) => p,
            Err(error) => {
                warn!(path = %t.path.display(), %error, "cannot read log file");
                return Ident::Waiting;
            }
        };
        let resumed = self.t.checkpointer.entries().into_iter().find(|e| {
            e.source == *self.source
                && (e.file.dev, e.file.ino) == t.key
                && (e.file.fingerprint.len as usize) <= prefix.len()
                && Fingerprint::of(&prefix[..e.file.fingerprint.len as usize]) == e.file.fingerprint
        });
        let (id, offset) = match resumed {
            Some(e) if e.offset > size => {
                warn!(path = %t.path.display(), offset = e.offset, size,
                    "file is shorter than its checkpoint (truncated while scrubd was stopped), reading it from the start");
                (e.file, 0)
            }
            Some(e) => {
                info!(path = %t.path.display(), offset = e.offset, "resuming from checkpoint");
                (e.file, e.offset)
            }
            None if prefix.len() >= n || idle || t.detached || force => {
                let id = FileId {
                    dev: t.key.0,
                    ino: t.key.1,
                    fingerprint: Fingerprint::of(&prefix),
                };
                debug!(path = %t.path.display(), file = %id, "tailing new file from the start");
                (id, 0)
            }
            None => return Ident::Waiting,
        };
        self.t.checkpointer.track(&id, &self.source, &t.path);
        bump(&self.t.stats.files_opened, 1);
        t.id = Some(Arc::new(id));
        t.offset = offset;
        Ident::Done
    }

    fn read_plain(&mut self, i: usize) -> Result<Service, Stopped> {
        let buf_size = (self.t.config.read_buffer.as_u64() as usize).max(1);
        let idle_timeout = self.t.options.idle_timeout;
        let budget = self.t.options.chunks_per_pass.max(1);
        let t = &mut self.files[i];
        let (Reader::Plain(file), Some(id)) = (&t.reader, t.id.clone()) else {
            return Ok(Service::Keep { more: false });
        };
        let size = match file.metadata() {
            Ok(md) => md.len(),
            Err(error) => {
                warn!(path = %t.path.display(), %error, "cannot stat open log file");
                return Ok(Service::Keep { more: false });
            }
        };
        let now = Instant::now();
        if t.growing && size != t.size_seen {
            // A file truncated and written again past our offset between two passes keeps a
            // large size: only its first bytes tell.
            let rewritten = !id.fingerprint.matches(ReadAt(file, 0)).unwrap_or(true);
            if size < t.offset || rewritten {
                warn!(path = %t.path.display(), offset = t.offset, size,
                    "file truncated (copytruncate?), reading it again from the start");
                bump(&self.t.stats.truncations, 1);
                return self.truncated(i);
            }
            t.size_seen = size;
            t.last_growth = now;
            t.idle_sent = false;
        }
        self.t.checkpointer.observe_size(&id, size);

        let mut chunks = 0;
        loop {
            if self.paused() {
                return Ok(Service::Keep { more: true });
            }
            let t = &mut self.files[i];
            let Reader::Plain(file) = &t.reader else { break };
            if t.offset >= size || chunks >= budget {
                break;
            }
            let want = buf_size.min((size - t.offset) as usize);
            let buf = match read_chunk(file, t.offset, want) {
                Ok(buf) => buf,
                Err(error) => {
                    warn!(path = %t.path.display(), offset = t.offset, %error, "cannot read log file");
                    return Ok(Service::Keep { more: false });
                }
            };
            let n = buf.len();
            if n == 0 {
                break;
            }
            let offset = t.offset;
            t.offset += n as u64;
            bump(&self.t.stats.bytes_read, n as u64);
            chunks += 1;
            let event = SourceEvent::Data {
                source: self.source.clone(),
                file: id.clone(),
                path: t.path.clone(),
                offset,
                bytes: Bytes::from(buf),
            };
            self.send(event)?;
        }
        let t = &mut self.files[i];
        if t.offset < size {
            return Ok(Service::Keep { more: true });
        }
        let idle = now.duration_since(t.last_growth) >= idle_timeout;
        if !t.growing || (t.detached && idle) {
            return self.close(i);
        }
        if idle && !t.idle_sent {
            t.idle_sent = true;
            self.send(SourceEvent::Idle {
                source: self.source.clone(),
                file: id,
            })?;
        }
        Ok(Service::Keep { more: false })
    }

    fn read_gz(&mut self, i: usize) -> Result<Service, Stopped> {
        let buf_size = (self.t.config.read_buffer.as_u64() as usize).max(1);
        let budget = self.t.options.chunks_per_pass.max(1);
        for _ in 0..budget {
            if self.paused() {
                return Ok(Service::Keep { more: true });
            }
            let t = &mut self.files[i];
            let (Reader::Gz(dec), Some(id)) = (&mut t.reader, t.id.clone()) else {
                return Ok(Service::Keep { more: false });
            };
            let mut buf = vec![0u8; buf_size];
            let n = match read_full(dec, &mut buf) {
                Ok(n) => n,
                Err(error) => {
                    warn!(path = %t.path.display(), offset = t.offset, %error, "cannot decompress rotated log file, closing it");
                    0
                }
            };
            if n == 0 {
                return self.close(i);
            }
            buf.truncate(n);
            let offset = t.offset;
            t.offset += n as u64;
            bump(&self.t.stats.bytes_read, n as u64);
            let event = SourceEvent::Data {
                source: self.source.clone(),
                file: id,
                path: t.path.clone(),
                offset,
                bytes: Bytes::from(buf),
            };
            self.send(event)?;
        }
        Ok(Service::Keep { more: true })
    }

    /// The file is done: `Closed`, and the checkpointer told where it ends.
    fn close(&mut self, i: usize) -> Result<Service, Stopped> {
        let retain = self.t.config.remove_archived_after.is_some();
        let t = &mut self.files[i];
        let Some(id) = t.id.take() else {
            return Ok(Service::Remove);
        };
        debug!(path = %t.path.display(), end = t.offset, "file done");
        if let Err(error) = self.t.checkpointer.mark_closed(&id, t.offset) {
            warn!(%error, "cannot write checkpoints");
        }
        if retain
            && let Reader::Plain(file) = &t.reader
            && let Ok(file) = file.try_clone()
        {
            self.finished.push(Finished {
                id: id.clone(),
                file,
                path: t.path.clone(),
                key: t.key,
                end: t.offset,
            });
        }
        let end = t.offset;
        bump(&self.t.stats.files_closed, 1);
        self.send(SourceEvent::Closed {
            source: self.source.clone(),
            file: id,
            end,
        })?;
        Ok(Service::Remove)
    }

    /// Copytruncate: finish the old identity (from a copy, if there is one), then read the file
    /// again from the start as a new one.
    fn truncated(&mut self, i: usize) -> Result<Service, Stopped> {
        let t = &mut self.files[i];
        let Some(old) = t.id.take() else {
            return Ok(Service::Keep { more: false });
        };
        let old_offset = t.offset;
        t.offset = 0;
        t.size_seen = 0;
        t.idle_sent = false;
        t.last_growth = Instant::now();
        let path = t.path.clone();
        let key = t.key;
        match find_rotated(&old, &path, old_offset, Some(key)) {
            Some(found) => {
                info!(path = %found.path.display(), offset = old_offset, "reading the rest of the truncated file from its copy");
                self.files.push(Tracked {
                    id: Some(old),
                    path: Arc::from(found.path.as_path()),
                    key: found.key,
                    reader: found.reader,
                    offset: old_offset,
                    size_seen: 0,
                    last_growth: Instant::now(),
                    idle_sent: false,
                    detached: true,
                    growing: false,
                });
            }
            None => {
                debug!(path = %path.display(), "no copy of the truncated file found");
                if let Err(error) = self.t.checkpointer.mark_closed(&old, old_offset) {
                    warn!(%error, "cannot write checkpoints");
                }
                bump(&self.t.stats.files_closed, 1);
                self.send(SourceEvent::Closed {
                    source: self.source.clone(),
                    file: old,
                    end: old_offset,
                })?;
            }
        }
        Ok(Service::Keep { more: true })
    }

    /// After the first pass: checkpoints of this source that match no file at a watched path.
    fn resume_rotated(&mut self) {
        let live: HashSet<FileId> = self.files.iter().filter_map(|t| t.id.as_deref().copied()).collect();
        let retain = self.t.config.remove_archived_after.is_some();
        for e in self.t.checkpointer.entries() {
            if e.source != *self.source || live.contains(&e.file) {
                continue;
            }
            let path = PathBuf::from(&e.path);
            // A done file is only looked for (it is kept in the checkpoints while it exists).
            let from = if e.is_done() { 0 } else { e.offset };
            match find_rotated(&e.file, &path, from, None) {
                Some(found) => {
                    let id = Arc::new(e.file);
                    if e.is_done() {
                        if retain && let Reader::Plain(file) = found.reader {
                            self.finished.push(Finished {
                                id,
                                file,
                                path: Arc::from(found.path.as_path()),
                                key: found.key,
                                end: e.offset,
                            });
                        }
                        continue;
                    }
                    info!(checkpointed = %e.path, found = %found.path.display(), offset = e.offset,
                        "resuming a file rotated while scrubd was stopped");
                    self.t.checkpointer.track(&id, &self.source, &found.path);
                    bump(&self.t.stats.resumed_rotated, 1);
                    self.files.push(Tracked {
                        id: Some(id),
                        path: Arc::from(found.path.as_path()),
                        key: found.key,
                        reader: found.reader,
                        offset: e.offset,
                        size_seen: 0,
                        last_growth: Instant::now(),
                        idle_sent: false,
                        detached: true,
                        growing: found.same_inode,
                    });
                }
                None => {
                    if !e.is_done() {
                        bump(&self.t.stats.deleted_while_stopped, 1);
                        warn!(path = %e.path, offset = e.offset,
                            "file deleted while scrubd was stopped, forgetting its checkpoint");
                    }
                    if let Err(error) = self.t.checkpointer.forget(&e.file) {
                        warn!(%error, "cannot write checkpoints");
                    }
                }
            }
        }
    }

    /// At startup: rotated siblings of the watched files (`x.log.1`, `x.log.2.gz`...) that match
    /// no checkpoint and were modified since the previous scrubd stopped were written while it
    /// was stopped (created and rotated away before it could see them): read them from the start.
    /// On a first start (no checkpoint file) old rotated files are left alone.
    fn adopt_unseen_rotated(&mut self) {
        let Some(prev) = self.t.checkpointer.previous_write() else {
            return;
        };
        // Margin for a file created just before the previous stop, after its last pass.
        let since = prev.checked_sub(Duration::from_secs(60)).unwrap_or(prev);
        let n = self.t.options.fingerprint_bytes;
        let entries: Vec<_> = self
            .t
            .checkpointer
            .entries()
            .into_iter()
            .filter(|e| e.source == *self.source)
            .collect();
        // Fingerprints of every file read or being read, including those adopted below (so
        // `x.log.1` and `x.log.1.gz`, mid-compression, are read once).
        let mut fingerprints: Vec<Fingerprint> = entries.iter().map(|e| e.file.fingerprint).collect();
        let mut bases: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|t| t.growing && !t.detached)
            .map(|t| t.path.to_path_buf())
            .chain(entries.iter().map(|e| PathBuf::from(&e.path)))
            .collect();
        bases.sort();
        bases.dedup();
        let mut known: HashSet<(u64, u64)> = self.files.iter().map(|t| t.key).collect();
        known.extend(self.finished.iter().map(|f| f.key));
        for base in bases {
            let (Some(dir), Some(name)) = (base.parent(), base.file_name()) else {
                continue;
            };
            let name = name.to_string_lossy().into_owned();
            let Ok(listing) = std::fs::read_dir(dir) else { continue };
            let mut candidates: Vec<PathBuf> = listing
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .map(|f| f.to_string_lossy())
                        .is_some_and(|f| f.len() > name.len() && f.starts_with(&name))
                })
                .filter(|p| !self.t.patterns.iter().any(|pat| pat.matcher.is_match(p)))
                .collect();
            candidates.sort();
            for cpath in candidates {
                let Ok(md) = std::fs::metadata(&cpath) else { continue };
                let key = (md.dev(), md.ino());
                if !md.is_file() || known.contains(&key) || md.modified().map_or(true, |m| m < since) {
                    continue;
                }
                let Ok(file) = File::open(&cpath) else { continue };
                let gz = cpath.extension().is_some_and(|e| e == "gz");
                let mut prefix = Vec::with_capacity(n);
                let read = if gz {
                    MultiGzDecoder::new(&file).take(n as u64).read_to_end(&mut prefix)
                } else {
                    ReadAt(&file, 0).take(n as u64).read_to_end(&mut prefix)
                };
                if read.is_err() || prefix.is_empty() {
                    continue;
                }
                let seen_before = fingerprints.iter().any(|fp| {
                    let len = fp.len as usize;
                    len <= prefix.len() && Fingerprint::of(&prefix[..len]) == *fp
                });
                if seen_before {
                    continue;
                }
                let reader = if gz {
                    let Ok(f) = File::open(&cpath) else { continue };
                    Reader::Gz(Box::new(MultiGzDecoder::new(f)))
                } else {
                    Reader::Plain(file)
                };
                let id = FileId {
                    dev: key.0,
                    ino: key.1,
                    fingerprint: Fingerprint::of(&prefix),
                };
                warn!(path = %cpath.display(), "rotated file written while scrubd was stopped, reading it");
                bump(&self.t.stats.resumed_rotated, 1);
                self.t.checkpointer.track(&id, &self.source, &cpath);
                known.insert(key);
                fingerprints.push(id.fingerprint);
                self.files.push(Tracked {
                    id: Some(Arc::new(id)),
                    path: Arc::from(cpath.as_path()),
                    key,
                    reader,
                    offset: 0,
                    size_seen: 0,
                    last_growth: Instant::now(),
                    idle_sent: false,
                    detached: true,
                    growing: false,
                });
            }
        }
    }

    /// Forgets, about once a minute, the checkpoints of done files that no longer exist.
    fn forget_gone(&mut self) {
        if self.last_gc.is_some_and(|l| l.elapsed() < GC_INTERVAL) {
            return;
        }
        self.last_gc = Some(Instant::now());
        let tracked: HashSet<FileId> = self
            .files
            .iter()
            .filter_map(|t| t.id.as_deref().copied())
            .chain(self.finished.iter().map(|f| *f.id))
            .collect();
        for e in self.t.checkpointer.entries() {
            if e.source != *self.source || !e.is_done() || tracked.contains(&e.file) {
                continue;
            }
            if find_rotated(&e.file, Path::new(&e.path), 0, None).is_none() {
                debug!(path = %e.path, "archived file is gone, forgetting its checkpoint");
                if let Err(error) = self.t.checkpointer.forget(&e.file) {
                    warn!(%error, "cannot write checkpoints");
                }
            }
        }
    }

    /// Compliance removal, at most once per poll interval.
    fn sweep_removals(&mut self) {
        let Some(after) = self.t.config.remove_archived_after else {
            return;
        };
        if self
            .last_sweep
            .is_some_and(|l| l.elapsed() < self.t.config.poll_interval)
        {
            return;
        }
        self.last_sweep = Some(Instant::now());
        let mode = self.t.config.remove_mode;
        let now = SystemTime::now();
        let cp = self.t.checkpointer.clone();
        let stats = self.t.stats.clone();

        // Closed files (rotated away), once committed to their end.
        self.finished.retain(|f| {
            if !cp.is_done(&f.id) {
                return true;
            }
            let Ok(md) = f.file.metadata() else { return true };
            if md.nlink() == 0 {
                let _ = cp.forget(&f.id);
                return false;
            }
            let check = RemovalCheck {
                after: Some(after),
                committed: f.end,
                size: md.len(),
                active: false,
                modified: md.modified().unwrap_or(now),
                now,
            };
            if !is_removable(&check) {
                return true;
            }
            let path = current_path(&f.file).unwrap_or_else(|| f.path.to_path_buf());
            match remove_file(&path, f.key, mode) {
                Ok(true) => {
                    info!(path = %path.display(), ?mode, "removed fully archived source file");
                    bump(&stats.removed, 1);
                    let _ = cp.forget(&f.id);
                    false
                }
                Ok(false) => true,
                Err(error) => {
                    warn!(%error, "compliance removal failed");
                    true
                }
            }
        });

        // Files still at a watched path: all but the newest, once idle and committed to the end.
        let newest = self
            .files
            .iter()
            .filter(|t| t.growing && !t.detached)
            .filter_map(|t| match &t.reader {
                Reader::Plain(f) => f.metadata().ok().and_then(|m| m.modified().ok()).map(|m| (m, t.key)),
                Reader::Gz(_) => None,
            })
            .max()
            .map(|(_, key)| key);
        for i in 0..self.files.len() {
            let t = &self.files[i];
            let (Reader::Plain(file), Some(id)) = (&t.reader, &t.id) else {
                continue;
            };
            if !t.growing || t.detached || !t.idle_sent || t.offset != t.size_seen {
                continue;
            }
            let Ok(md) = file.metadata() else { continue };
            let check = RemovalCheck {
                after: Some(after),
                committed: cp.get(id).unwrap_or(0),
                size: md.len(),
                active: Some(t.key) == newest,
                modified: md.modified().unwrap_or(now),
                now,
            };
            if !is_removable(&check) {
                continue;
            }
            match remove_file(&t.path, t.key, mode) {
                Ok(true) => {
                    info!(path = %t.path.display(), ?mode, "removed fully archived source file");
                    bump(&stats.removed, 1);
                    if mode == RemoveMode::Truncate {
                        // We truncated it ourselves: not a copytruncate. The file starts anew.
                        let _ = cp.forget(id);
                        let id = id.clone();
                        let end = t.offset;
                        let t = &mut self.files[i];
                        t.id = None;
                        t.offset = 0;
                        t.size_seen = 0;
                        t.idle_sent = false;
                        t.last_growth = Instant::now();
                        bump(&stats.files_closed, 1);
                        let _ = self.send(SourceEvent::Closed {
                            source: self.source.clone(),
                            file: id,
                            end,
                        });
                    }
                    // Deleted: the next pass sees it gone and closes it.
                }
                Ok(false) => {}
                Err(error) => warn!(%error, "compliance removal failed"),
            }
        }
    }
}

enum Service {
    Keep { more: bool },
    Remove,
}

enum Ident {
    Done,
    Waiting,
    Drop,
}

/// A rotated copy or the renamed file itself, found by fingerprint.
struct Found {
    path: PathBuf,
    key: (u64, u64),
    reader: Reader,
    same_inode: bool,
}

/// Looks next to `path` for the file `id` (renamed, copied, or gzipped), positioned at `offset`.
/// Candidates are the files of the same directory whose name starts with `path`'s name, and any
/// with the same device and inode; `exclude` is the live file itself.
fn find_rotated(id: &FileId, path: &Path, offset: u64, exclude: Option<(u64, u64)>) -> Option<Found> {
    let dir = path.parent()?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    let mut best: Option<(u8, Found)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let cpath = entry.path();
        let Ok(md) = std::fs::metadata(&cpath) else { continue };
        let key = (md.dev(), md.ino());
        let cname = entry.file_name().to_string_lossy().into_owned();
        if !md.is_file() || Some(key) == exclude {
            continue;
        }
        let same_inode = key == (id.dev, id.ino);
        if !same_inode && !cname.starts_with(&name) {
            continue;
        }
        let Ok(file) = File::open(&cpath) else { continue };
        let (rank, reader) = if cname.ends_with(".gz") {
            let Ok(true) = id.fingerprint.matches(MultiGzDecoder::new(&file)) else {
                continue;
            };
            let Ok(file) = File::open(&cpath) else { continue };
            let mut dec = Box::new(MultiGzDecoder::new(file));
            match std::io::copy(&mut (&mut dec).take(offset), &mut std::io::sink()) {
                Ok(skipped) if skipped == offset => {}
                _ => {
                    warn!(path = %cpath.display(), offset, "rotated copy is shorter than the checkpoint, ignoring it");
                    continue;
                }
            }
            (2, Reader::Gz(dec))
        } else {
            if !matches!(id.fingerprint.matches(ReadAt(&file, 0)), Ok(true)) || md.len() < offset {
                continue;
            }
            (if same_inode { 0 } else { 1 }, Reader::Plain(file))
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((
                rank,
                Found {
                    path: cpath,
                    key,
                    reader,
                    same_inode,
                },
            ));
        }
    }
    best.map(|(_, f)| f)
}

/// The current path of an open file (Linux: `/proc/self/fd`), `None` if deleted or unknown.
fn current_path(file: &File) -> Option<PathBuf> {
    let p = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    if p.to_string_lossy().ends_with(" (deleted)") {
        return None;
    }
    Some(p)
}

fn read_prefix(file: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    ReadAt(file, 0).take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads until `buf` is full or the end: a gzip decoder returns short reads at member ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Up to `want` bytes of `file` from `offset` (fewer at its end). `read_to_end` reads into the
/// vector's spare capacity; `read_at` would need the buffer zeroed first, a pass over every byte
/// read. Moves the descriptor's position, which nothing else reads.
fn read_chunk(mut file: &File, offset: u64, want: usize) -> std::io::Result<Vec<u8>> {
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(want);
    file.take(want as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A `Read` over positioned reads, leaving the descriptor's own position alone.
struct ReadAt<'a>(&'a File, u64);

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read_at(buf, self.1)?;
        self.1 += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, base: &str, depth: Option<usize>, recursive: bool, matches: &[(&str, bool)]) {
        let p = Pattern::new("s", pattern).unwrap();
        assert_eq!(p.base, PathBuf::from(base), "{pattern}");
        assert_eq!(p.depth, depth, "{pattern}");
        assert_eq!(p.recursive, recursive, "{pattern}");
        for (path, want) in matches {
            assert_eq!(p.matcher.is_match(path), *want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn patterns() {
        check(
            "/var/log/w/*.log",
            "/var/log/w",
            Some(1),
            false,
            &[
                ("/var/log/w/a.log", true),
                ("/var/log/w/a.log.1", false),
                ("/var/log/w/x/a.log", false),
            ],
        );
        check(
            "/var/log/w/app.log",
            "/var/log/w",
            Some(1),
            false,
            &[("/var/log/w/app.log", true)],
        );
        check(
            "/var/log/*/app.log",
            "/var/log",
            Some(2),
            true,
            &[("/var/log/a/app.log", true), ("/var/log/a/b/app.log", false)],
        );
        check(
            "/var/log/**/*.log",
            "/var/log",
            None,
            true,
            &[("/var/log/a/b/c.log", true)],
        );
        check("logs/*.log", "logs", Some(1), false, &[("logs/a.log", true)]);
        check("*.log", ".", Some(1), false, &[("a.log", true)]);
        assert!(Pattern::new("s", "/var/log/[.log").is_err());
    }
}
