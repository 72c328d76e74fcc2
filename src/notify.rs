//! sd_notify: readiness, status, reload and stop notifications, and a watchdog that pings only
//! while the pipeline makes progress.
//!
//! [`Notifier`] sends `READY=1`, `STATUS=`, `RELOADING=1` (with `MONOTONIC_USEC=`, which
//! `Type=notify-reload` needs since systemd 253 and older versions ignore), `STOPPING=1` and
//! `WATCHDOG=1` to `$NOTIFY_SOCKET`; it does nothing when the variable is unset.
//!
//! The watchdog is not a timer that pings regardless. Each stage holds a [`Progress`] handle
//! (from [`Liveness::register`]) and ticks it every time its loop completes an iteration: work
//! done, or an idle wait that returned normally (stages bound their idle waits by
//! [`WatchdogTiming::stage_idle_max`]). [`Watchdog`] pings only when every registered stage
//! ticked since the previous ping, so a stage blocked forever stops the pings and systemd
//! restarts the daemon; it also marks [`Health`] unhealthy, so `/healthz` tells the same story.
//!
//! What it must not do: block the runtime (sends are non-blocking datagrams), or put record
//! content into `STATUS=` (the status is a summary of counts and states; newlines are removed so
//! a status cannot inject other fields).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::Health;

/// Longest `STATUS=` sent; systemd shows it in `systemctl status`, one line.
const MAX_STATUS_CHARS: usize = 200;

/// An error talking to the service manager.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` names something we cannot send to (not an absolute path or `@name`).
    #[error("unsupported notify socket {socket:?}: {reason}")]
    Unsupported { socket: String, reason: &'static str },
    /// The datagram could not be sent (systemd gone, buffer full).
    #[error("cannot send to notify socket {socket:?}: {source}")]
    Send { socket: String, source: io::Error },
}

/// Sends notifications to the service manager; a no-op when there is none.
///
/// The `sd-notify` crate reads `$NOTIFY_SOCKET` on every call and cannot be pointed at another
/// socket, so this owns a small unbound `UnixDatagram` instead: tests give it an explicit
/// socket and never touch the process environment. The crate still formats the messages.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    target: Option<Arc<Target>>,
}

#[derive(Debug)]
struct Target {
    /// As given, for error messages.
    name: String,
    addr: SocketAddr,
    socket: UnixDatagram,
}

impl Notifier {
    /// A notifier that sends nothing (no service manager).
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// Reads `$NOTIFY_SOCKET`; unset or empty gives a disabled notifier.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(socket) if !socket.is_empty() => Notifier::with_socket(&socket),
            _ => Ok(Notifier::disabled()),
        }
    }

    /// Sends to `socket`: an absolute path, or `@name` for a socket in the abstract namespace.
    pub fn with_socket(socket: impl AsRef<OsStr>) -> Result<Notifier, NotifyError> {
        let raw = socket.as_ref();
        let name = raw.to_string_lossy().into_owned();
        let bytes = raw.as_bytes();
        let unsupported = |reason| NotifyError::Unsupported {
            socket: name.clone(),
            reason,
        };
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(raw),
            _ => return Err(unsupported("not an absolute path or @abstract name")),
        }
        .map_err(|_| unsupported("name too long for a unix socket"))?;
        let send_error = |source| NotifyError::Send {
            socket: name.clone(),
            source,
        };
        let socket = UnixDatagram::unbound().map_err(send_error)?;
        // Never block the runtime: if systemd's queue is full, report it and move on.
        socket.set_nonblocking(true).map_err(send_error)?;
        Ok(Notifier {
            target: Some(Arc::new(Target { name, addr, socket })),
        })
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Startup (or a reload) is complete: `READY=1` with a status line.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        let status = sanitize_status(status);
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)])
    }

    /// A short summary shown by `systemctl status`; never record content.
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        let status = sanitize_status(status);
        self.send(&[NotifyState::Status(&status)])
    }

    /// A reload started; send [`Notifier::ready`] when it is done (whether it succeeded or the
    /// old configuration was kept).
    pub fn reloading(&self) -> Result<(), NotifyError> {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(error) => {
                // Without the timestamp systemd < 253 is fine; notify-reload units would time out
                // the reload, which is better than not announcing it at all.
                warn!(%error, "cannot read the monotonic clock for MONOTONIC_USEC");
                self.send(&[NotifyState::Reloading])
            }
        }
    }

    /// Shutdown started.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send(&[NotifyState::Stopping])
    }

    /// Asks for `extra` more time before systemd's start/stop timeout fires (for a long drain).
    pub fn extend_timeout(&self, extra: Duration) -> Result<(), NotifyError> {
        let usec = u32::try_from(extra.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)])
    }

    /// `WATCHDOG=1`. Only [`Watchdog`] should call this: it knows whether the pipeline moves.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send(&[NotifyState::Watchdog])
    }

    fn send(&self, states: &[NotifyState<'_>]) -> Result<(), NotifyError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let mut msg = String::new();
        for state in states {
            msg.push_str(&state.to_string());
            msg.push('\n');
        }
        let error = |source| NotifyError::Send {
            socket: target.name.clone(),
            source,
        };
        let sent = target
            .socket
            .send_to_addr(msg.as_bytes(), &target.addr)
            .map_err(error)?;
        if sent != msg.len() {
            return Err(error(io::Error::new(io::ErrorKind::WriteZero, "short datagram write")));
        }
        debug!(message = %msg.trim_end().replace('\n', " "), "sent sd_notify message");
        Ok(())
    }
}

/// One line, bounded: a newline would let a status inject another field (`READY=1`...).
fn sanitize_status(status: &str) -> String {
    status
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_STATUS_CHARS)
        .collect()
}

/// How often the watchdog checks, and how long a stage may wait idle between ticks, derived
/// from systemd's watchdog timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogTiming {
    /// `WatchdogSec=`: systemd kills the daemon after this long without a ping.
    pub timeout: Duration,
    /// Half the timeout, as systemd recommends.
    pub check_every: Duration,
    /// A quarter of the timeout: a stage's idle wait (a `recv` or `sleep` with nothing to do)
    /// must return at least this often, so that every check interval sees a tick of each
    /// healthy stage.
    pub stage_idle_max: Duration,
}

impl WatchdogTiming {
    /// What the daemon uses to detect stalls when systemd's watchdog is off: the `WatchdogSec=`
    /// of the shipped unit.
    pub const DEFAULT: WatchdogTiming = WatchdogTiming {
        timeout: Duration::from_secs(60),
        check_every: Duration::from_secs(30),
        stage_idle_max: Duration::from_secs(15),
    };

    /// Timing for a watchdog timeout of `timeout`.
    pub fn from_timeout(timeout: Duration) -> WatchdogTiming {
        WatchdogTiming {
            timeout,
            check_every: timeout / 2,
            stage_idle_max: timeout / 4,
        }
    }

    /// Reads `$WATCHDOG_USEC` and `$WATCHDOG_PID`; `None` when the watchdog is off or meant for
    /// another process.
    pub fn from_env() -> Option<WatchdogTiming> {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        WatchdogTiming::parse(usec.as_deref(), pid.as_deref(), std::process::id())
    }

    /// The pure part of [`WatchdogTiming::from_env`]: `usec` and `pid` as found in the
    /// environment, `own_pid` this process's id.
    pub fn parse(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<WatchdogTiming> {
        let usec: u64 = usec?.trim().parse().ok()?;
        if usec == 0 {
            return None;
        }
        // WATCHDOG_PID is set when the variables may have been inherited from a parent; a
        // value we cannot parse is not ours either.
        if let Some(pid) = pid
            && pid.trim().parse::<u32>().ok() != Some(own_pid)
        {
            return None;
        }
        Some(WatchdogTiming::from_timeout(Duration::from_micros(usec)))
    }
}

/// The set of stages the watchdog watches. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    stages: Arc<Mutex<Vec<Arc<Stage>>>>,
}

#[derive(Debug)]
struct Stage {
    name: &'static str,
    /// Bumped by the stage at each completed iteration.
    iterations: AtomicU64,
    /// `iterations` as of the last ping; written only by the watchdog.
    at_last_ping: AtomicU64,
    /// The stage finished normally; it is no longer watched.
    retired: AtomicBool,
}

impl Liveness {
    /// An empty set.
    pub fn new() -> Liveness {
        Liveness::default()
    }

    /// Watches a new stage named `name` (for logs); it must tick before the next ping.
    pub fn register(&self, name: &'static str) -> Progress {
        let stage = Arc::new(Stage {
            name,
            iterations: AtomicU64::new(0),
            at_last_ping: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        });
        self.lock().push(Arc::clone(&stage));
        Progress { stage }
    }

    /// The stages still watched; forgets retired ones.
    fn active(&self) -> Vec<Arc<Stage>> {
        let mut stages = self.lock();
        stages.retain(|s| !s.retired.load(Ordering::Acquire));
        stages.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Stage>>> {
        self.stages.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A stage's progress handle; clones tick the same stage.
///
/// Tick where the loop completes an iteration, not from a side task. A stage whose single
/// iteration can legitimately take long (an upload with retries) bounds it with timeouts, or
/// ticks as it advances (after each attempt, each part); otherwise the watchdog counts it as
/// stalled once an iteration outlasts [`WatchdogTiming::check_every`].
///
/// Dropping it does not unregister the stage: a stage task that died stops ticking, and that
/// must stop the pings. A stage that finishes normally calls [`Progress::retire`].
#[derive(Clone, Debug)]
pub struct Progress {
    stage: Arc<Stage>,
}

impl Progress {
    /// The stage completed an iteration of its loop.
    pub fn tick(&self) {
        self.stage.iterations.fetch_add(1, Ordering::Release);
    }

    /// The stage finished normally and is no longer watched (all clones).
    pub fn retire(&self) {
        self.stage.retired.store(true, Ordering::Release);
    }

    /// The stage's name.
    pub fn name(&self) -> &'static str {
        self.stage.name
    }
}

/// The outcome of one watchdog check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every stage made progress since the last ping: `WATCHDOG=1` was sent.
    Pinged,
    /// These stages made no progress since the last ping: nothing was sent.
    Stalled(Vec<&'static str>),
}

/// The component name under which the watchdog reports to [`Health`].
pub const HEALTH_COMPONENT: &str = "watchdog";

/// Pings systemd's watchdog while every stage makes progress.
///
/// Run it even when systemd's watchdog is off (with [`WatchdogTiming::DEFAULT`]): the pings then
/// go nowhere, but `/healthz` still reports a stalled stage.
#[derive(Debug)]
pub struct Watchdog {
    notifier: Notifier,
    liveness: Liveness,
    health: Health,
}

impl Watchdog {
    /// A watchdog over `liveness`'s stages, reporting stalls to `health`.
    pub fn new(notifier: Notifier, liveness: Liveness, health: Health) -> Watchdog {
        Watchdog {
            notifier,
            liveness,
            health,
        }
    }

    /// One check: ping if every active stage ticked since the last ping.
    pub fn check(&self) -> Result<Verdict, NotifyError> {
        let stages = self.liveness.active();
        let seen: Vec<u64> = stages.iter().map(|s| s.iterations.load(Ordering::Acquire)).collect();
        let stalled: Vec<&'static str> = stages
            .iter()
            .zip(&seen)
            .filter(|(s, now)| **now == s.at_last_ping.load(Ordering::Relaxed))
            .map(|(s, _)| s.name)
            .collect();
        if !stalled.is_empty() {
            warn!(stages = ?stalled, "pipeline stage made no progress, not pinging the watchdog");
            self.health
                .set_unhealthy(HEALTH_COMPONENT, "a pipeline stage made no progress");
            return Ok(Verdict::Stalled(stalled));
        }
        self.health.set_healthy(HEALTH_COMPONENT);
        for (stage, now) in stages.iter().zip(seen) {
            stage.at_last_ping.store(now, Ordering::Relaxed);
        }
        self.notifier.watchdog()?;
        Ok(Verdict::Pinged)
    }

    /// Checks every `check_every` (see [`WatchdogTiming::check_every`]) until `cancel` fires.
    pub async fn run(self, check_every: Duration, cancel: CancellationToken) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
        // After a pause (a suspended VM), check once, not a burst.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.check() {
                warn!(%error, "cannot ping the watchdog");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(usec: Option<&str>, pid: Option<&str>, expect: Option<(u64, u64, u64)>) {
        let got = WatchdogTiming::parse(usec, pid, 42).map(|t| {
            (
                t.timeout.as_millis() as u64,
                t.check_every.as_millis() as u64,
                t.stage_idle_max.as_millis() as u64,
            )
        });
        assert_eq!(got, expect, "WATCHDOG_USEC={usec:?} WATCHDOG_PID={pid:?}");
    }

    #[test]
    fn watchdog_env() {
        check(None, None, None);
        check(Some("60000000"), None, Some((60_000, 30_000, 15_000)));
        check(Some("60000000"), Some("42"), Some((60_000, 30_000, 15_000)));
        check(Some("60000000"), Some("43"), None);
        check(Some("60000000"), Some("x"), None);
        check(Some("0"), None, None);
        check(Some("-1"), None, None);
        check(Some("soon"), None, None);
        check(None, Some("42"), None);
    }

    #[test]
    fn default_matches_its_timeout() {
        assert_eq!(
            WatchdogTiming::DEFAULT,
            WatchdogTiming::from_timeout(WatchdogTiming::DEFAULT.timeout)
        );
    }

    #[test]
    fn status_is_one_bounded_line() {
        assert_eq!(sanitize_status("ok\nREADY=1"), "ok READY=1");
        assert_eq!(sanitize_status(&"x".repeat(500)).len(), MAX_STATUS_CHARS);
        assert_eq!(sanitize_status("3 sources, 0 B spooled"), "3 sources, 0 B spooled");
    }

    #[test]
    fn unsupported_sockets() {
        for socket in ["", "relative/path", "vsock:2:1234"] {
            assert!(
                matches!(Notifier::with_socket(socket), Err(NotifyError::Unsupported { .. })),
                "{socket:?}"
            );
        }
        let long = format!("/{}", "a".repeat(200));
        assert!(matches!(
            Notifier::with_socket(long),
            Err(NotifyError::Unsupported { .. })
        ));
    }

    #[test]
    fn disabled_notifier_sends_nothing_and_succeeds() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready("up").unwrap();
        n.watchdog().unwrap();
    }
}
