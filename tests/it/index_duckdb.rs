//! DuckDB (from PyPI) reads the index segments and answers queries the same way `search` does,
//! before and after compaction. Needs `scripts/install-duckdb.sh` to have run; fails (never
//! skips) without it.

use std::path::PathBuf;
use std::process::Command;

use crate::index_common::{fixture, small};
use chrono::{DateTime, Duration, Utc};
use scrubd::index::compact::compact_closed_days;
use scrubd::index::{SearchOptions, SearchQuery, search};
use scrubd::record::Level;

fn python() -> PathBuf {
    let tools = std::env::var_os("SCRUBD_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools"));
    let py = tools.join("venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import duckdb"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "DuckDB is missing ({} cannot import duckdb): run scripts/install-duckdb.sh first",
        py.display()
    );
    py
}

const SCRIPT: &str = r#"
import duckdb, json, sys
root, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"create view idx as select * from read_parquet('{root}/index/**/*.parquet')")
for row in con.execute(sql).fetchall():
    print(json.dumps([str(v) for v in row]))
"#;

/// Rows of `sql` over the view `idx` of every segment, as strings.
fn duckdb(py: &PathBuf, root: &std::path::Path, sql: &str) -> Vec<Vec<String>> {
    let out = Command::new(py)
        .args(["-c", SCRIPT, &root.display().to_string(), sql])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows: Vec<Vec<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.sort();
    rows
}

async fn scrubd(store: &std::sync::Arc<dyn scrubd::store::ObjectStore>, q: SearchQuery) -> Vec<Vec<String>> {
    let opts = SearchOptions {
        with_text: false,
        ..Default::default()
    };
    let mut rows: Vec<Vec<String>> = search(store.clone(), q, &opts)
        .await
        .unwrap()
        .into_iter()
        .map(|h| vec![h.row.archive_key, h.row.record_start.to_string()])
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_answers_like_search() {
    let py = python();
    let f = fixture(&small()).await;
    let root = f.dir.path().join("bucket");
    let cus = f.truth[5].record.ids[1].clone();
    let since = DateTime::<Utc>::from_timestamp_millis(f.truth[0].ts_ms).unwrap() + Duration::hours(20);
    let until = since + Duration::hours(30);

    let schema = duckdb(
        &py,
        &root,
        "select column_name, column_type from (describe idx) order by all",
    );
    let types: std::collections::BTreeMap<String, String> =
        schema.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(types["ts"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(types["ids"], "VARCHAR[]");
    assert_eq!(types["frame_offset"], "UBIGINT");

    for phase in ["per-archive segments", "compacted"] {
        if phase == "compacted" {
            compact_closed_days(&f.store, None, &f.cfg).await.unwrap();
        }
        let by_id = duckdb(
            &py,
            &root,
            &format!("select archive_key, record_start from idx where list_contains(ids, '{cus}') order by all"),
        );
        assert!(!by_id.is_empty());
        let q = SearchQuery {
            ids: vec![cus.clone()],
            ..Default::default()
        };
        assert_eq!(by_id, scrubd(&f.store, q).await, "{phase}: by customer id");

        let sql = format!(
            "select archive_key, record_start from idx where event_type like 'invoice.%' \
             and level in ('error', 'warning') and host = 'h2' \
             and ts >= epoch_ms({}) and ts < epoch_ms({}) order by all",
            since.timestamp_millis(),
            until.timestamp_millis()
        );
        let combined = duckdb(&py, &root, &sql);
        assert!(!combined.is_empty());
        let q = SearchQuery {
            event_type: Some("invoice.*".into()),
            levels: vec![Level::Error, Level::Warning],
            hosts: vec!["h2".into()],
            since: Some(since),
            until: Some(until),
            ..Default::default()
        };
        assert_eq!(
            combined,
            scrubd(&f.store, q).await,
            "{phase}: type, level, host and time"
        );
    }
}
