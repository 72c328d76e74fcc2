//! [`Faulty`]: an [`ObjectStore`] wrapper that injects failures, so tests can prove that the
//! callers' retries lose nothing and duplicate nothing.
//!
//! Faults are planned up front: "the first N calls of this operation (or of any) fail this way".
//! Calls no plan matches go to the wrapped store unchanged. Every call is counted per operation,
//! and so is every injected fault, so a test can assert how often the caller tried.
//!
//! ```
//! # use scrubd::store::{Fault, Faulty, LocalDir, Op};
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Faulty::new(LocalDir::new(dir.path()).unwrap())
//!     .fail_first(2, Op::PutFile, Fault::ServerError(503))
//!     .fail_first(1, Op::PutFile, Fault::LandedButFailed);
//! // The first two put_file calls fail without storing, the third stores and still fails,
//! // the fourth goes through.
//! ```
//!
//! Must not: be used outside tests and fault drills; it never corrupts stored bytes (stores are
//! atomic: a cut upload leaves no object, which [`Fault::ServerError`] models).

use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectMeta, ObjectStore, PutOptions, StoreError};

/// A store operation, to aim faults and read counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    PutFile,
    PutBytes,
    Get,
    Head,
    List,
    Delete,
    PresignGet,
    /// In a plan: every operation. In a counter: the sum over all operations.
    Any,
}

const OPS: [Op; 7] = [
    Op::PutFile,
    Op::PutBytes,
    Op::Get,
    Op::Head,
    Op::List,
    Op::Delete,
    Op::PresignGet,
];

/// What an injected failure does.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Fails at once with a transient error like an HTTP 500/503 (the operation does not reach
    /// the wrapped store).
    ServerError(u16),
    /// Hangs for the duration (set it past the caller's deadline), then fails with a transient
    /// "timed out" error; the operation does not reach the wrapped store.
    Timeout(Duration),
    /// Performs the operation on the wrapped store, then reports a transient failure anyway: the
    /// object landed but the caller saw an error (a response lost on the way back). A retry must
    /// then overwrite the same key, not add a duplicate.
    LandedButFailed,
    /// Fails at once with a permanent access-denied error (revoked credentials).
    AccessDenied,
}

#[derive(Debug)]
struct Plan {
    op: Op,
    remaining: u64,
    fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    plans: Vec<Plan>,
    calls: [u64; OPS.len()],
    injected: [u64; OPS.len()],
}

/// A failure-injecting wrapper around a store. See the module docs.
#[derive(Debug)]
pub struct Faulty<S: ObjectStore> {
    inner: S,
    state: Mutex<State>,
}

fn index(op: Op) -> usize {
    OPS.iter().position(|o| *o == op).unwrap_or(0)
}

impl<S: ObjectStore> Faulty<S> {
    /// Wraps `inner` with no faults planned.
    pub fn new(inner: S) -> Faulty<S> {
        Faulty {
            inner,
            state: Mutex::new(State::default()),
        }
    }

    /// Plans that the next `n` calls of `op` (or of any operation with [`Op::Any`]) fail with
    /// `fault`. Plans are used in the order they were added, each until exhausted.
    pub fn fail_first(self, n: u64, op: Op, fault: Fault) -> Faulty<S> {
        self.add_fault(n, op, fault);
        self
    }

    /// Like [`Faulty::fail_first`], on a store already in use (e.g. "the store goes down now").
    pub fn add_fault(&self, n: u64, op: Op, fault: Fault) {
        self.lock().plans.push(Plan {
            op,
            remaining: n,
            fault,
        });
    }

    /// Drops every fault not yet injected ("the store is back").
    pub fn clear_faults(&self) {
        self.lock().plans.clear();
    }

    /// Calls of `op` so far (with [`Op::Any`]: of all operations), injected faults included.
    pub fn calls(&self, op: Op) -> u64 {
        let s = self.lock();
        match op {
            Op::Any => s.calls.iter().sum(),
            op => s.calls[index(op)],
        }
    }

    /// Faults injected into calls of `op` so far (with [`Op::Any`]: into all operations).
    pub fn injected(&self, op: Op) -> u64 {
        let s = self.lock();
        match op {
            Op::Any => s.injected.iter().sum(),
            op => s.injected[index(op)],
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panicking test thread must not hide the counters from the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the call and takes the fault planned for it, if any.
    fn next_fault(&self, op: Op) -> Option<Fault> {
        let mut s = self.lock();
        s.calls[index(op)] += 1;
        let plan = s
            .plans
            .iter_mut()
            .find(|p| p.remaining > 0 && (p.op == op || p.op == Op::Any))?;
        plan.remaining -= 1;
        let fault = plan.fault.clone();
        s.injected[index(op)] += 1;
        Some(fault)
    }

    /// Runs `call` under the planned fault for `op`.
    async fn run<T, F>(&self, op: Op, key: &str, call: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        let transient = |message: String| StoreError::Transient {
            key: key.to_string(),
            message,
        };
        match self.next_fault(op) {
            None => call.await,
            Some(Fault::ServerError(status)) => Err(transient(format!("injected fault: http {status}"))),
            Some(Fault::Timeout(d)) => {
                tokio::time::sleep(d).await;
                Err(transient(format!("injected fault: timed out after {d:?}")))
            }
            Some(Fault::LandedButFailed) => {
                call.await?;
                Err(transient(
                    "injected fault: response lost after the operation succeeded".into(),
                ))
            }
            Some(Fault::AccessDenied) => Err(StoreError::AccessDenied {
                key: key.to_string(),
                message: "injected fault".into(),
            }),
        }
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Faulty<S> {
    async fn put_file(&self, key: &str, path: &Path, opts: &PutOptions) -> Result<(), StoreError> {
        self.run(Op::PutFile, key, self.inner.put_file(key, path, opts)).await
    }

    async fn put_bytes(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.run(Op::PutBytes, key, self.inner.put_bytes(key, body, opts)).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        self.run(Op::Get, key, self.inner.get(key, range)).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.run(Op::Head, key, self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.run(Op::List, prefix, self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.run(Op::Delete, key, self.inner.delete(key)).await
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, StoreError> {
        self.run(Op::PresignGet, key, self.inner.presign_get(key, expires))
            .await
    }
}
