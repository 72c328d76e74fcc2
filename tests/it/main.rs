//! The integration tests, as one test binary: every file here links the whole crate with the AWS
//! SDK, and one binary links it once instead of fifteen times (build time and disk: see
//! ARCHITECTURE.md, "Testing"). Run one area with a filter, e.g.
//! `scripts/test.sh --test it store_conformance::`.
//!
//! Shared harnesses: `common` (the S3-compatible test servers, one bucket per test),
//! `archive_support` (synthetic archives, a failure-injecting store) and `index_common` (a
//! multi-day, multi-host indexed fixture on either backend).

#[macro_use]
mod index_common;
mod archive_support;
mod common;

mod archive_measure;
mod archive_pipeline;
mod daemon_e2e;
mod garage_e2e;
mod golden;
mod index_duckdb;
mod index_fetch;
mod index_search;
mod service_metrics;
mod service_notify;
mod service_systemd;
mod source_checkpoint;
mod source_tail;
mod store_conformance;
