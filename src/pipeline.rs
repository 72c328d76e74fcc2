//! `scrubd run`: wires the daemon's stages, from the last to the first, with bounded channels.
//!
//! ```text
//! Tailer (one per source) ──SourceEvent──▶ Processor ──Sealed──▶ Uploader ──▶ ObjectStore
//!                                             │  split, scrub, archive,        └─▶ index segment
//!                                             │  seal into the spool (fsync)
//!                                             └─▶ Checkpointer::commit (only after the seal)
//! ```
//!
//! Shutdown (SIGTERM/SIGINT): stop reading, seal what is buffered, commit checkpoints, let the
//! uploader drain the spool until the grace period ends, exit 0. What is left in the spool is
//! uploaded at the next start. SIGHUP reloads the configuration: a valid one swaps the rules and
//! archive settings atomically (between two records); an invalid one is logged and ignored.
//!
//! Must not: commit a checkpoint before the records under it are sealed into the spool, or drop a
//! record anywhere (a full spool pauses the tailers instead).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::archive::{
    ArchiveBuilder, ArchiveConfig, ArchiveError, ArchiveIdentity, Prescan, RecordMeta, RetryPolicy, Sealed, Spool,
    Uploader,
};
use crate::config::Config;
use crate::metrics::{Health, Metrics, MetricsServer, RuleMetrics};
use crate::notify::{Liveness, Notifier, Progress, Watchdog, WatchdogTiming};
use crate::record::{Format, Record, Splitter};
use crate::scrub::{Scrubber, SourceState};
use crate::source::{Checkpointer, FileId, SourceError, SourceEvent, Tailer, TailerOptions};
use crate::store::{ObjectStore, StoreError};

/// How `scrubd run` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Process what is in the files now, upload it, and exit (backfills, tests).
    pub once: bool,
    /// The config file to re-read on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Show a progress bar (a terminal is attached).
    pub progress_bar: bool,
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("cannot open the object store: {0}")]
    Store(#[from] StoreError),
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the processing stage stopped unexpectedly: {0}")]
    Processor(String),
    #[error(
        "{spooled} archives could not be uploaded (a permanent store error, logged above); they stay in the spool {dir} and upload on the next run"
    )]
    Upload { spooled: usize, dir: String },
}

/// Everything one configuration generation decides for the processor.
struct Generation {
    scrubber: Arc<Scrubber>,
    /// Sources with `disable_rules` get a rule set of their own.
    per_source: HashMap<String, Arc<Scrubber>>,
    /// With `max_archive_age` capped at the flush interval: a record appended to a watched file is
    /// sealed (and handed to the uploader) within that interval.
    archive: ArchiveConfig,
}

impl Generation {
    fn new(cfg: &Config) -> Result<Generation, PipelineError> {
        let mut archive = cfg.raw.archive.clone();
        archive.max_archive_age = archive.max_archive_age.min(cfg.raw.daemon.flush_interval);
        let mut per_source = HashMap::new();
        for source in cfg.raw.sources.iter().filter(|s| !s.disable_rules.is_empty()) {
            let mut rules = cfg.raw.rules.clone();
            for name in &source.disable_rules {
                let rule = rules.get_mut(name).ok_or_else(|| {
                    PipelineError::Config(format!(
                        "source {:?}: disable_rules names unknown rule {name:?}",
                        source.name
                    ))
                })?;
                rule.enabled = Some(false);
            }
            let scrubber = Scrubber::new(&cfg.raw.scrub, &rules)
                .map_err(|e| PipelineError::Config(format!("source {:?}: {e}", source.name)))?;
            per_source.insert(source.name.clone(), Arc::new(scrubber));
        }
        Ok(Generation {
            scrubber: cfg.scrubber.clone(),
            per_source,
            archive,
        })
    }

    /// The rules of `source`: the rule set less the source's `disable_rules`.
    fn scrubber_for(&self, source: &str) -> &Arc<Scrubber> {
        self.per_source.get(source).unwrap_or(&self.scrubber)
    }
}

/// Runs the daemon until SIGTERM/SIGINT (or, with `once`, until the files are processed and
/// uploaded).
pub async fn run(cfg: Config, opts: RunOptions) -> Result<(), PipelineError> {
    let raw = &cfg.raw;
    let host = if raw.host.is_empty() {
        system_host_name()
    } else {
        raw.host.clone()
    };
    let state_dir = raw.daemon.state_dir.clone();
    std::fs::create_dir_all(&state_dir).map_err(|source| PipelineError::StateDir {
        path: state_dir.display().to_string(),
        source,
    })?;
    raw.archive.validate()?;

    let metrics = Metrics::new();
    let health = Health::new();
    let notifier = Notifier::from_env().unwrap_or_else(|error| {
        warn!(%error, "cannot use NOTIFY_SOCKET; not notifying systemd");
        Notifier::disabled()
    });
    let liveness = Liveness::new();

    // Durable state first: the spool, whose entries also move checkpoints forward (an archive
    // sealed just before a crash, whose checkpoint commit did not happen).
    let spool = Arc::new(Spool::from_config(&raw.spool, &state_dir)?);
    let checkpointer = Arc::new(Checkpointer::open(&state_dir)?);
    let startup = spool.scan()?;
    recover_checkpoints(&checkpointer, &startup)?;
    metrics.set_spool_bytes(spool.used_bytes());
    if !startup.is_empty() {
        info!(archives = startup.len(), "resuming uploads left in the spool");
    }

    let store = crate::store::open(&raw.store).await?;

    // Stages, from the last to the first.
    let upload_cancel = CancellationToken::new();
    let read_cancel = CancellationToken::new();
    let background = CancellationToken::new();

    let (gen_tx, gen_rx) = watch::channel(Arc::new(Generation::new(&cfg)?));
    let (sealed_tx, sealed_rx) = mpsc::channel::<Sealed>(16);
    // The last line of defence uses the current rules (they may be reloaded).
    let rescan_rules = gen_rx.clone();
    let uploader = Uploader::new(
        store.clone(),
        spool.clone(),
        Arc::new(CurrentRules(rescan_rules)),
        RetryPolicy {
            stop_on_permanent: opts.once,
            ..RetryPolicy::default()
        },
    )
    .with_after_upload(index_hook(store.clone(), raw.index.clone()))
    .with_metrics(metrics.clone());
    let upload_counters = uploader.counters();
    let upload_task = tokio::spawn(
        uploader
            .run(startup, sealed_rx, upload_cancel.clone())
            .instrument(info_span!("upload")),
    );

    // A few read buffers in flight keep the processor busy; more would only be memory (2 MiB
    // per eight at the default `read_buffer`), every page of it faulted in once.
    let (events_tx, events_rx) = mpsc::channel::<SourceEvent>(8);
    let (room_tx, room_rx) = watch::channel(spool.has_room());
    let mut tailers = Vec::new();
    let tailer_options = TailerOptions {
        idle_timeout: raw.daemon.idle_timeout,
        once: opts.once,
        ..TailerOptions::default()
    };
    for source in &raw.sources {
        let tailer = Tailer::new(
            source.clone(),
            tailer_options.clone(),
            checkpointer.clone(),
            events_tx.clone(),
            room_rx.clone(),
        )?;
        let span = info_span!("source", source = %source.name);
        tailers.push(tokio::spawn(tailer.run(read_cancel.clone()).instrument(span)));
    }
    drop(events_tx);
    if raw.sources.is_empty() {
        warn!("no [[sources]] configured: nothing to watch");
    }

    // Records and bytes processed, for the --once progress bar.
    let done = Arc::new(Done::default());
    let bar = opts
        .progress_bar
        .then(|| progress_bar(done.clone(), checkpointer.clone(), upload_counters.clone()));
    let processor = Processor {
        host: host.clone(),
        max_record_bytes: raw.records.max_record_bytes.as_u64() as usize,
        formats: raw.sources.iter().map(|s| (s.name.clone(), s.format)).collect(),
        generation: gen_rx,
        spool: spool.clone(),
        checkpointer: checkpointer.clone(),
        sealed_tx,
        room_tx,
        metrics: metrics.clone(),
        files: HashMap::new(),
        rule_metrics: HashMap::new(),
        source_states: HashMap::new(),
        once: opts.once,
        done: done.clone(),
        progress: liveness.register("process"),
        hosts: raw
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.host.clone().unwrap_or_else(|| host.clone())))
            .collect(),
    };
    let process_task = tokio::spawn(processor.run(events_rx).instrument(info_span!("process")));

    // Observability.
    if let Some(addr) = crate::metrics::endpoint_addr(&raw.daemon.metrics_addr)? {
        let server = MetricsServer::bind(addr).await?;
        tokio::spawn(server.run(metrics.clone(), health.clone(), background.clone()));
    }
    let timing = WatchdogTiming::from_env().unwrap_or(WatchdogTiming::DEFAULT);
    let watchdog = Watchdog::new(notifier.clone(), liveness.clone(), health.clone());
    tokio::spawn(watchdog.run(timing.check_every, background.clone()));
    tokio::spawn(report_status(
        notifier.clone(),
        metrics.clone(),
        spool.clone(),
        checkpointer.clone(),
        background.clone(),
    ));

    let _ = notifier.ready("running");
    info!(sources = raw.sources.len(), once = opts.once, "scrubd running");

    // Wait for the end: signals, or (once) the processor finishing.
    let mut process_task = process_task;
    let process_result = if opts.once {
        let r = (&mut process_task).await;
        Some(r)
    } else {
        wait_for_shutdown(&opts, &gen_tx, &metrics, &notifier).await;
        None
    };

    // Stop reading; the processor drains what the tailers sent, seals and commits.
    let _ = notifier.stopping();
    read_cancel.cancel();
    for t in tailers {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => error!(%error, "source stopped with an error"),
            Err(error) => error!(%error, "source task failed"),
        }
    }
    let process_result = match process_result {
        Some(r) => r,
        None => process_task.await,
    };
    let processed = match process_result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(join) => Err(PipelineError::Processor(join.to_string())),
    };

    // The processor dropped its sender: the uploader drains the spool, bounded by the grace period
    // (unbounded with --once: its job is to upload everything).
    let mut left_behind = None;
    if opts.once {
        let _ = upload_task.await;
        // The uploader stopped at a permanent error: say so in the exit status.
        let spooled = spool.scan().map(|s| s.len()).unwrap_or(0);
        if spooled > 0 {
            left_behind = Some(PipelineError::Upload {
                spooled,
                dir: spool.dir().display().to_string(),
            });
        }
    } else {
        let grace = raw.daemon.shutdown_grace;
        tokio::select! {
            _ = upload_task => {}
            _ = tokio::time::sleep(grace) => {
                warn!(grace = ?grace, spooled = spool.used_bytes(), "shutdown grace period over; the rest stays in the spool for the next start");
                upload_cancel.cancel();
            }
        }
    }
    checkpointer.flush()?;
    if let Some((bar, task)) = bar {
        task.abort();
        bar.finish();
    }
    background.cancel();
    info!("scrubd stopped");
    processed.and(left_behind.map_or(Ok(()), Err))
}

/// The pre-upload rescan with the current rules of the archive's source.
struct CurrentRules(watch::Receiver<Arc<Generation>>);

impl crate::archive::Rescan for CurrentRules {
    fn rescan(&self, record: &[u8]) -> std::collections::BTreeMap<String, u64> {
        let scrubber = self.0.borrow().scrubber.clone();
        scrubber.rescan(record, Format::Auto)
    }

    fn rescan_source(&self, source: &str, record: &[u8]) -> std::collections::BTreeMap<String, u64> {
        let scrubber = self.0.borrow().scrubber_for(source).clone();
        scrubber.rescan(record, Format::Auto)
    }

    fn rules_of(&self, source: &str) -> Option<u64> {
        Some(self.0.borrow().scrubber_for(source).instance())
    }
}

/// Archives sealed into the spool before a crash may have missed their checkpoint commit: commit
/// them now, so their records are not read (and archived) again.
fn recover_checkpoints(checkpointer: &Checkpointer, spooled: &[Sealed]) -> Result<(), PipelineError> {
    for entry in spooled {
        let Ok(file) = entry.manifest.file_id.parse::<FileId>() else {
            warn!(key = %entry.manifest.key, "spooled archive names an unknown file id; not moving any checkpoint");
            continue;
        };
        if checkpointer.get(&file).is_none_or(|at| at < entry.manifest.end_offset) {
            checkpointer.commit(&file, entry.manifest.end_offset)?;
        }
    }
    Ok(())
}

/// Writes the index segment of each uploaded archive. A store error is retried by the uploader;
/// a segment that cannot be built is logged and skipped (`scrubd reindex` rebuilds it), so one bad
/// manifest cannot hold the spool.
fn index_hook(store: Arc<dyn ObjectStore>, cfg: crate::index::IndexConfig) -> crate::archive::AfterUpload {
    Arc::new(move |manifest| {
        let (store, cfg) = (store.clone(), cfg.clone());
        Box::pin(async move {
            match crate::index::write_segment_for(&store, manifest.clone(), &cfg).await {
                Ok(_) => Ok(()),
                Err(crate::index::IndexError::Store(e)) => Err(e),
                Err(error) => {
                    error!(key = %manifest.key, %error, "cannot write the index segment; run `scrubd reindex` later");
                    Ok(())
                }
            }
        })
    })
}

/// Waits for SIGTERM or SIGINT, handling SIGHUP reloads meanwhile.
async fn wait_for_shutdown(
    opts: &RunOptions,
    gen_tx: &watch::Sender<Arc<Generation>>,
    metrics: &Metrics,
    notifier: &Notifier,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; stopping");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: shutting down"); return; }
            _ = int.recv() => { info!("SIGINT: shutting down"); return; }
            _ = hup.recv() => {
                let _ = notifier.reloading();
                reload(opts, gen_tx, metrics);
                let _ = notifier.ready("running");
            }
        }
    }
}

/// Re-reads the configuration; a valid one replaces the rules and archive settings, an invalid
/// one is rejected and the running one stays.
fn reload(opts: &RunOptions, gen_tx: &watch::Sender<Arc<Generation>>, metrics: &Metrics) {
    match crate::config::load(opts.config_path.as_deref()) {
        Ok(cfg) => {
            if let Err(error) = cfg.raw.archive.validate() {
                error!(%error, "configuration reload rejected; keeping the running configuration");
                metrics.config_reload(false);
                return;
            }
            let digest = cfg.scrubber.ruleset_digest().to_owned();
            let generation = match Generation::new(&cfg) {
                Ok(g) => g,
                Err(error) => {
                    error!(%error, "configuration reload rejected; keeping the running configuration");
                    metrics.config_reload(false);
                    return;
                }
            };
            gen_tx.send_replace(Arc::new(generation));
            metrics.config_reload(true);
            info!(ruleset_digest = %digest, "configuration reloaded (sources and store settings apply at the next restart)");
        }
        Err(error) => {
            error!(%error, "configuration reload rejected; keeping the running configuration");
            metrics.config_reload(false);
        }
    }
}

/// Keeps systemd's STATUS= line and the spool and checkpoint-lag gauges current.
async fn report_status(
    notifier: Notifier,
    metrics: Metrics,
    spool: Arc<Spool>,
    checkpointer: Arc<Checkpointer>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        metrics.set_spool_bytes(spool.used_bytes());
        let mut behind = 0;
        for lag in checkpointer.lag() {
            metrics.set_checkpoint_lag(&lag.source, std::path::Path::new(&lag.path), lag.lag_bytes);
            behind += lag.lag_bytes;
        }
        let _ = notifier.status(&format!("spool {} bytes, {} bytes behind", spool.used_bytes(), behind));
    }
}

fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What the processor keeps per open file.
struct FileState {
    source: Arc<str>,
    splitter: Splitter,
    builder: Option<ArchiveBuilder>,
    /// The rescan of the builder's records, made as they are scrubbed (while in cache, and with no
    /// decompression before upload); `None` once two rule set instances scrubbed into one archive.
    prescan: Option<Prescan>,
    /// Stable fallback day for records without a timestamp (the time the file was first seen by
    /// this process: a crash before sealing re-reads the records anyway).
    first_seen_ms: i64,
}

/// Splits, scrubs and archives; seals into the spool; commits checkpoints after each seal.
struct Processor {
    host: String,
    max_record_bytes: usize,
    formats: HashMap<String, Format>,
    generation: watch::Receiver<Arc<Generation>>,
    spool: Arc<Spool>,
    checkpointer: Arc<Checkpointer>,
    sealed_tx: mpsc::Sender<Sealed>,
    room_tx: watch::Sender<bool>,
    metrics: Metrics,
    files: HashMap<Arc<FileId>, FileState>,
    /// Counter handles per rule name: looked up once per record and rule, so not made anew.
    rule_metrics: HashMap<String, RuleMetrics>,
    /// Propagation windows, per source.
    source_states: HashMap<Arc<str>, SourceState>,
    once: bool,
    done: Arc<Done>,
    /// Watchdog liveness of this stage.
    progress: Progress,
    /// Host label per source (`[[sources]] host`, else the daemon's host).
    hosts: HashMap<String, String>,
}

/// What the processor has done so far (read by the progress bar).
#[derive(Default)]
struct Done {
    records: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

/// A progress bar on stderr for `run --once`: bytes scrubbed out of bytes known to be waiting.
fn progress_bar(
    done: Arc<Done>,
    checkpointer: Arc<Checkpointer>,
    uploads: Arc<crate::archive::UploadCounters>,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::Ordering::Relaxed;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            let bytes = done.bytes.load(Relaxed);
            let behind: u64 = checkpointer.lag().iter().map(|l| l.lag_bytes).sum();
            // `behind` counts from the committed offset, so this overestimates by what is read but
            // not yet sealed: at most one archive per file.
            b.set_length(bytes + behind);
            b.set_position(bytes);
            b.set_message(format!(
                "{} records, {} archives uploaded",
                done.records.load(Relaxed),
                uploads.uploaded.load(Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (bar, task)
}

impl Processor {
    async fn run(mut self, mut rx: mpsc::Receiver<SourceEvent>) -> Result<(), PipelineError> {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            let event = tokio::select! {
                ev = rx.recv() => match ev { Some(ev) => Some(ev), None => break },
                _ = tick.tick() => None,
            };
            // Scrubbing and fsync are blocking work; this task is the only one doing them.
            tokio::task::block_in_place(|| match event {
                Some(ev) => self.handle(ev),
                None => self.on_tick(),
            })?;
            self.progress.tick();
        }
        // The tailers are done. With --once the files are at their end: their last records are
        // complete. Otherwise a record still open stays unread (its checkpoint is before it).
        tokio::task::block_in_place(|| self.seal_all(self.once))?;
        self.progress.retire();
        Ok(())
    }

    fn handle(&mut self, event: SourceEvent) -> Result<(), PipelineError> {
        let mut records = Vec::new();
        match event {
            SourceEvent::Data {
                source,
                file,
                offset,
                bytes,
                ..
            } => {
                let state = self.file_state(&source, &file, offset);
                state.splitter.push(&bytes, &mut records);
                self.archive(&file, records)?;
            }
            SourceEvent::Idle { file, .. } => {
                if let Some(state) = self.files.get_mut(&file) {
                    state.splitter.flush_idle(&mut records);
                    self.archive(&file, records)?;
                }
            }
            SourceEvent::Closed { file, end, .. } => {
                if let Some(state) = self.files.get_mut(&file) {
                    state.splitter.finish(&mut records);
                    self.archive(&file, records)?;
                    self.seal(&file)?;
                    self.files.remove(&file);
                }
                self.checkpointer.mark_closed(&file, end)?;
            }
        }
        Ok(())
    }

    fn file_state(&mut self, source: &Arc<str>, file: &Arc<FileId>, offset: u64) -> &mut FileState {
        let format = self.formats.get(&**source).copied().unwrap_or_default();
        let max = self.max_record_bytes;
        self.files.entry(file.clone()).or_insert_with(|| FileState {
            source: source.clone(),
            splitter: Splitter::new(format, max, offset),
            builder: None,
            prescan: None,
            first_seen_ms: now_ms(),
        })
    }

    /// Scrubs `records` of `file` into its archive builder, sealing when it is full.
    fn archive(&mut self, file: &Arc<FileId>, records: Vec<Record>) -> Result<(), PipelineError> {
        if records.is_empty() {
            return Ok(());
        }
        let generation = self.generation.borrow().clone();
        // An archive states the rule set that scrubbed it: after a reload, seal what the old
        // rules scrubbed before scrubbing with the new ones.
        let stale = self.files.get(file).is_some_and(|s| {
            let scrubber = generation.scrubber_for(&s.source);
            s.builder.as_ref().is_some_and(|b| {
                let id = b.identity();
                id.ruleset_digest != scrubber.ruleset_digest() || id.ruleset_version != scrubber.ruleset_version()
            })
        });
        if stale {
            self.seal(file)?;
        }
        // One file, one source: resolve its metric handles once, not per record.
        let Some(source_metrics) = self.files.get(file).map(|s| self.metrics.source(&s.source)) else {
            return Ok(());
        };
        for record in records {
            let Some(state) = self.files.get_mut(file) else {
                return Ok(());
            };
            let source_state = self.source_states.entry(state.source.clone()).or_default();
            let scrubber = generation.scrubber_for(&state.source);
            let scrubbed = scrubber.scrub(&record, &state.source, source_state);
            source_metrics.records_in(1, record.bytes.len() as u64);
            self.done.records.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.done
                .bytes
                .fetch_add(record.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            source_metrics.records_out(1, scrubbed.bytes.len() as u64);
            if scrubbed.fallback {
                source_metrics.scrub_fallback();
            }
            for (rule, n) in &scrubbed.counts {
                match self.rule_metrics.get(rule.as_str()) {
                    Some(m) => m.scrubbed(*n),
                    None => {
                        let m = self.metrics.rule(rule);
                        m.scrubbed(*n);
                        self.rule_metrics.insert(rule.clone(), m);
                    }
                }
            }
            if state.builder.is_none() {
                state.prescan = Some(Prescan {
                    rules: scrubber.instance(),
                    findings: Default::default(),
                });
            }
            match &mut state.prescan {
                Some(p) if p.rules == scrubber.instance() => {
                    for (rule, n) in scrubber.rescan(&scrubbed.bytes, Format::Auto) {
                        *p.findings.entry(rule).or_default() += n;
                    }
                }
                _ => state.prescan = None,
            }
            let builder = match &mut state.builder {
                Some(b) => b,
                None => state.builder.insert(ArchiveBuilder::new(
                    ArchiveIdentity {
                        host: self.hosts.get(&*state.source).unwrap_or(&self.host).clone(),
                        source: state.source.to_string(),
                        file_id: file.to_string(),
                        ruleset_version: scrubber.ruleset_version().to_owned(),
                        ruleset_digest: scrubber.ruleset_digest().to_owned(),
                        fallback_time_ms: state.first_seen_ms,
                    },
                    &generation.archive,
                )?),
            };
            builder.push_owned(RecordMeta::of(&record), scrubbed)?;
            if builder.should_seal(Instant::now()) {
                self.seal(file)?;
            }
        }
        Ok(())
    }

    /// Seals the archive of `file` into the spool, then (and only then) commits its checkpoint and
    /// hands the archive to the uploader.
    fn seal(&mut self, file: &Arc<FileId>) -> Result<(), PipelineError> {
        let Some(state) = self.files.get_mut(file) else {
            return Ok(());
        };
        let Some(builder) = state.builder.take() else {
            return Ok(());
        };
        if builder.is_empty() {
            return Ok(());
        }
        let mut sealed = builder.seal(&self.spool, now_ms())?;
        sealed.prescan = state.prescan.take();
        self.checkpointer.commit(file, sealed.manifest.end_offset)?;
        self.metrics.archive_sealed();
        self.metrics.set_spool_bytes(self.spool.used_bytes());
        self.update_room();
        // Waiting for the uploader (a store outage) is backpressure, not a stall: keep telling the
        // watchdog we are alive while the queue is full.
        loop {
            match self.sealed_tx.try_send(sealed) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    sealed = back;
                    self.progress.tick();
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // The uploader is gone (shutdown): the archive stays in the spool for the next start.
                    warn!("uploader stopped; archive left in the spool");
                    break;
                }
            }
        }
        Ok(())
    }

    fn on_tick(&mut self) -> Result<(), PipelineError> {
        let now = Instant::now();
        let due: Vec<Arc<FileId>> = self
            .files
            .iter()
            .filter(|(_, s)| s.builder.as_ref().is_some_and(|b| b.should_seal(now)))
            .map(|(f, _)| f.clone())
            .collect();
        for file in due {
            self.seal(&file)?;
        }
        self.update_room();
        Ok(())
    }

    /// Tells the tailers whether the spool has room (a full spool or disk pauses reading).
    fn update_room(&self) {
        let room = self.spool.has_room();
        self.room_tx.send_if_modified(|r| std::mem::replace(r, room) != room);
    }

    /// Seals every open archive; with `at_eof`, the files' last records are complete first.
    fn seal_all(&mut self, at_eof: bool) -> Result<(), PipelineError> {
        let files: Vec<Arc<FileId>> = self.files.keys().cloned().collect();
        for file in files {
            if at_eof {
                let mut records = Vec::new();
                if let Some(state) = self.files.get_mut(&file) {
                    state.splitter.finish(&mut records);
                }
                self.archive(&file, records)?;
            }
            self.seal(&file)?;
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
