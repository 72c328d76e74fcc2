//! sd_notify against a real unix datagram socket standing in for systemd: the messages arrive,
//! and the watchdog pings only while every stage makes progress.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

use scrubd::metrics::Health;
use scrubd::notify::{Liveness, Notifier, Verdict, Watchdog};
use tokio_util::sync::CancellationToken;

/// A socket bound where systemd's would be, collecting what the daemon sends.
struct FakeSystemd {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        socket.set_nonblocking(true).expect("nonblocking");
        FakeSystemd {
            socket,
            path,
            _dir: dir,
        }
    }

    fn notifier(&self) -> Notifier {
        Notifier::with_socket(&self.path).expect("notifier")
    }

    /// Every datagram received so far (sends are synchronous: they are already queued).
    fn drain(&self) -> Vec<String> {
        drain(&self.socket)
    }

    /// Waits up to `limit` for a datagram.
    fn recv_within(&self, limit: Duration) -> Option<String> {
        self.socket.set_nonblocking(false).expect("blocking");
        self.socket.set_read_timeout(Some(limit)).expect("timeout");
        let mut buf = [0u8; 4096];
        let got = self
            .socket
            .recv(&mut buf)
            .ok()
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
        self.socket.set_nonblocking(true).expect("nonblocking");
        got
    }
}

fn drain(socket: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

#[test]
fn lifecycle_messages_arrive() {
    let systemd = FakeSystemd::new();
    let n = systemd.notifier();
    assert!(n.is_enabled());

    n.ready("watching 2 sources").unwrap();
    n.status("uploading\nREADY=1").unwrap();
    n.reloading().unwrap();
    n.stopping().unwrap();
    n.extend_timeout(Duration::from_secs(5)).unwrap();

    let got = systemd.drain();
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], "READY=1\nSTATUS=watching 2 sources\n");
    // A newline in the status cannot smuggle in another field.
    assert_eq!(got[1], "STATUS=uploading READY=1\n");
    let reload: Vec<&str> = got[2].lines().collect();
    assert_eq!(reload.len(), 2, "{reload:?}");
    assert_eq!(reload[0], "RELOADING=1");
    let usec: u64 = reload[1]
        .strip_prefix("MONOTONIC_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("MONOTONIC_USEC with a number, got {:?}", reload[1]));
    assert!(usec > 0);
    assert_eq!(got[3], "STOPPING=1\n");
    assert_eq!(got[4], "EXTEND_TIMEOUT_USEC=5000000\n");
}

#[test]
fn abstract_sockets_work() {
    let name = format!("scrubd-test-{}-{}", std::process::id(), rand::random::<u64>());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).expect("bind abstract socket");
    socket.set_nonblocking(true).unwrap();
    let n = Notifier::with_socket(format!("@{name}")).expect("notifier");
    n.ready("up").unwrap();
    assert_eq!(drain(&socket), vec!["READY=1\nSTATUS=up\n".to_owned()]);
}

#[test]
fn a_vanished_systemd_is_an_error_naming_the_socket() {
    let systemd = FakeSystemd::new();
    let n = systemd.notifier();
    let path = systemd.path.clone();
    drop(systemd);
    let error = n.ready("up").expect_err("nobody listens");
    assert!(error.to_string().contains(&*path.to_string_lossy()), "{error}");
}

#[test]
fn watchdog_pings_only_when_every_stage_progressed() {
    let systemd = FakeSystemd::new();
    let liveness = Liveness::new();
    let health = Health::new();
    let tail = liveness.register("tail");
    let upload = liveness.register("upload");
    let dog = Watchdog::new(systemd.notifier(), liveness.clone(), health.clone());

    // Nothing happened yet.
    assert_eq!(dog.check().unwrap(), Verdict::Stalled(vec!["tail", "upload"]));
    assert_eq!(systemd.drain(), Vec::<String>::new());
    assert!(health.check().is_err());

    tail.tick();
    upload.tick();
    assert_eq!(dog.check().unwrap(), Verdict::Pinged);
    assert_eq!(systemd.drain(), vec!["WATCHDOG=1\n".to_owned()]);
    assert_eq!(health.check(), Ok(()));

    // Progress counts since the last ping, not since the start.
    tail.tick();
    tail.tick();
    assert_eq!(dog.check().unwrap(), Verdict::Stalled(vec!["upload"]));
    assert_eq!(dog.check().unwrap(), Verdict::Stalled(vec!["upload"]));
    assert_eq!(systemd.drain(), Vec::<String>::new());
    assert!(health.check().unwrap_err().contains("watchdog"));

    // The stalled stage recovers: the others progressed since the last ping too.
    upload.clone().tick();
    assert_eq!(dog.check().unwrap(), Verdict::Pinged);
    assert_eq!(systemd.drain(), vec!["WATCHDOG=1\n".to_owned()]);

    // A stage that died (its handle dropped without retiring) stops the pings...
    let parse = liveness.register("parse");
    tail.tick();
    upload.tick();
    drop(parse);
    assert_eq!(dog.check().unwrap(), Verdict::Stalled(vec!["parse"]));
    // ...while one that finished normally is no longer watched.
    let once = liveness.register("once");
    once.retire();
    tail.tick();
    upload.tick();
    assert_eq!(dog.check().unwrap(), Verdict::Stalled(vec!["parse"]));
    assert_eq!(systemd.drain(), Vec::<String>::new());
}

/// The running task, with real stages on real timers: pings flow while both stages loop, and
/// stop for good once one stage blocks forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_task_stops_pinging_when_a_stage_blocks() {
    let systemd = FakeSystemd::new();
    let liveness = Liveness::new();
    let health = Health::new();
    let cancel = CancellationToken::new();
    let check_every = Duration::from_millis(50);

    // `stall` asks the stage to block; it cancels `blocked` once it ticks no more.
    let spawn_stage = |name: &'static str, stall: CancellationToken, blocked: CancellationToken| {
        let progress = liveness.register(name);
        tokio::spawn(async move {
            loop {
                // An idle wait that returns normally is progress.
                tokio::time::sleep(Duration::from_millis(5)).await;
                if stall.is_cancelled() {
                    blocked.cancel();
                    // Blocked forever, as a deadlocked stage would be.
                    std::future::pending::<()>().await;
                }
                progress.tick();
            }
        })
    };
    let (stall_upload, upload_blocked) = (CancellationToken::new(), CancellationToken::new());
    let tail = spawn_stage("tail", CancellationToken::new(), CancellationToken::new());
    let upload = spawn_stage("upload", stall_upload.clone(), upload_blocked.clone());
    let dog = Watchdog::new(systemd.notifier(), liveness.clone(), health.clone());
    let task = tokio::spawn(dog.run(check_every, cancel.clone()));

    let systemd = tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            assert_eq!(
                systemd.recv_within(Duration::from_secs(30)).as_deref(),
                Some("WATCHDOG=1\n")
            );
        }
        systemd
    })
    .await
    .unwrap();

    stall_upload.cancel();
    upload_blocked.cancelled().await;
    // Forget any earlier verdict (a check may have been late on a loaded machine); the watchdog
    // notices the stall: health turns bad on a check that sees no progress.
    health.set_healthy("watchdog");
    let mut waited = Duration::ZERO;
    while health.check().is_ok() {
        assert!(waited < Duration::from_secs(30), "watchdog never noticed the stall");
        tokio::time::sleep(check_every).await;
        waited += check_every;
    }
    // Pings sent before the stall was noticed may be queued; after that, none may come.
    systemd.drain();
    let systemd = tokio::task::spawn_blocking(move || {
        assert_eq!(
            systemd.recv_within(check_every * 6),
            None,
            "no ping while a stage is blocked"
        );
        systemd
    })
    .await
    .unwrap();
    assert!(health.check().unwrap_err().contains("watchdog"));
    assert!(
        !task.is_finished(),
        "the watchdog task is still running, just not pinging"
    );

    cancel.cancel();
    task.await.unwrap();
    tail.abort();
    upload.abort();
    drop(systemd);
}
