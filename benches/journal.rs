//! End-to-end load benchmark for the journal replication API (spec §5).
//!
//! For each backend (SQLite, and PostgreSQL when `SIPSETTINGS_TEST_POSTGRES_URL`
//! is set) this prepares a fresh data set with the CLI, fills one account with
//! 1 000 and one with 1 000 000 journal entries directly in the database, starts
//! `sipsettings serve` and drives it with keep-alive HTTP/1.1 connections using
//! Digest authentication:
//!
//! * `get_journal_entries` latency for both accounts, asking for the newest ~50
//!   entries (`after_id` = largest id − 50), to show the lookup is indexed;
//! * `put_journal_entries` throughput with 10-row calls of ~100-byte rows.
//!
//! Run with `cargo bench --bench journal -- [--seconds N] [--connections N]
//! [--backend sqlite|postgres|all]`.

mod common;

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyper::Method;
use hyper::body::Bytes;
use serde_json::Value;
use tokio::runtime::Runtime;

use common::{
    Args, Backend, Context, DOMAIN, Fixture, Measured, PASSWORD, Result, SqlShell, Workload,
    abbreviate, fmt_ms,
};

/// Writes go to their own account so the read-side accounts stay at their sizes.
const PUT_USER: &str = "alice";
const SMALL_USER: &str = "small";
const SMALL_ENTRIES: u64 = 1_000;
const BIG_USER: &str = "big";
const BIG_ENTRIES: u64 = 1_000_000;
/// The default per-account limit (100 000) would refuse writes to the big account.
const MAX_ENTRIES_PER_ACCOUNT: &str = "2000000";

/// `get_journal_entries` asks for entries after (largest id − this), so this many come back.
const GET_TAIL: u64 = 50;
const GET_LIMIT: u64 = 100;
const ROWS_PER_PUT: usize = 10;
/// Size of the opaque `data` string of one row, as stored.
const ROW_DATA_BYTES: usize = 100;

const PUT_TARGET_ROWS_PER_SEC: f64 = 5_000.0;
const P99_RATIO_TARGET: f64 = 1.2;

fn main() -> ExitCode {
    // The HTTPS listener is not measured here; off, so a busy port 8443 cannot fail the run.
    let server_env = [
        (
            "SIPSETTINGS_JOURNAL__MAX_ENTRIES_PER_ACCOUNT",
            MAX_ENTRIES_PER_ACCOUNT,
        ),
        ("SIPSETTINGS_TLS_LISTEN", ""),
    ];
    common::load_bench_main("journal", 8, &server_env, bench_backend, print_table)
}

fn bench_backend(runtime: &Runtime, args: &Args, fixture: Fixture) -> Result<Vec<Measured<Kind>>> {
    let backend = fixture.backend;
    fixture.add_accounts(&[PUT_USER, SMALL_USER, BIG_USER])?;
    let sql = &fixture.sql;
    let small_last = fill_journal(sql, backend, SMALL_USER, SMALL_ENTRIES)?;
    let big_last = fill_journal(sql, backend, BIG_USER, BIG_ENTRIES)?;
    if backend == Backend::Postgres {
        // What autovacuum would soon do after such a bulk load; without it the
        // planner would guess from an empty table and the figures would drift
        // when autovacuum kicks in mid-run.
        sql.query("ANALYZE journal_entries; ANALYZE accounts")?;
    }
    // A local, so it is stopped before `fixture` (a parameter) removes the data.
    let mut server = fixture.start_server(runtime)?;

    let scenarios = [
        Scenario::get("get 1k", SMALL_USER, small_last),
        Scenario::get("get 1M", BIG_USER, big_last),
        Scenario::put("put", PUT_USER),
    ];
    let mut results = Vec::new();
    for scenario in scenarios {
        let (label, kind) = (scenario.label, scenario.kind);
        let load = fixture.measure(runtime, &mut server, args, label, scenario)?;
        if let Some(e) = &load.first_error {
            eprintln!(
                "{}: {label}: {} errors, first: {e}",
                backend.name(),
                load.errors
            );
        }
        results.push(Measured {
            label,
            scenario: kind,
            load,
        });
    }
    Ok(results)
}

/// Inserts `entries` journal entries for `user` straight into the store (far
/// faster than the API), stamped a day ago so they are all visible, and
/// returns the largest journal id of that account.
fn fill_journal(sql: &SqlShell, backend: Backend, user: &str, entries: u64) -> Result<u64> {
    let started = Instant::now();
    let account_id: u64 = sql
        .query(&format!(
            "SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id \
             WHERE d.name = '{DOMAIN}' AND a.username = '{user}'"
        ))?
        .parse()
        .with_context(|| format!("no account id for {user}@{DOMAIN}"))?;
    let since = unix_now()? - 86_400;
    // `"payload-<i>-xxx…"`: a JSON string of about ROW_DATA_BYTES bytes (exactly, for 7-digit i).
    let filler = "x".repeat(ROW_DATA_BYTES - 18);
    let columns = "account_id, timestamp, uuid, ip_address, client_id, data";
    let select = format!(
        "SELECT {account_id}, {since} + i / 100, 'bench-fill', '127.0.0.1', 'c' || i, \
         '\"payload-' || i || '-{filler}\"'"
    );
    let insert = match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {entries}) \
             INSERT INTO journal_entries ({columns}) {select} FROM n;"
        ),
        Backend::Postgres => format!(
            "INSERT INTO journal_entries ({columns}) {select} \
             FROM generate_series(1, {entries}) AS n(i);"
        ),
    };
    sql.query(&format!(
        "BEGIN; {insert} \
         UPDATE accounts SET journal_count = \
         (SELECT COUNT(*) FROM journal_entries WHERE account_id = {account_id}) \
         WHERE id = {account_id}; COMMIT;"
    ))?;
    let last: u64 = sql
        .query(&format!(
            "SELECT MAX(id) FROM journal_entries WHERE account_id = {account_id}"
        ))?
        .parse()
        .with_context(|| format!("no journal entries for {user}@{DOMAIN} after filling"))?;
    eprintln!(
        "{}: filled {entries} entries for {user}@{DOMAIN} in {:.1} s",
        backend.name(),
        started.elapsed().as_secs_f64()
    );
    Ok(last)
}

fn unix_now() -> Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs())
}

// ---------------------------------------------------------------------------
// Load generation
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `get_journal_entries`, expecting this many rows back.
    Get { rows: u64 },
    /// `put_journal_entries` with `ROWS_PER_PUT` rows per call.
    Put,
}

impl Kind {
    /// Rows moved by one successful request.
    fn rows_per_call(self) -> u64 {
        match self {
            Self::Get { rows } => rows,
            Self::Put => ROWS_PER_PUT as u64,
        }
    }
}

/// One workload: every request of it has the same user, method and URI.
struct Scenario {
    label: &'static str,
    kind: Kind,
    user: &'static str,
    uri: String,
}

impl Scenario {
    /// The newest `GET_TAIL` entries of an account whose largest journal id is `last_id`.
    fn get(label: &'static str, user: &'static str, last_id: u64) -> Self {
        Self {
            label,
            kind: Kind::Get { rows: GET_TAIL },
            user,
            uri: format!(
                "/settings.phtml?action=get_journal_entries&realm={DOMAIN}&after_id={}&limit={GET_LIMIT}",
                last_id.saturating_sub(GET_TAIL)
            ),
        }
    }

    fn put(label: &'static str, user: &'static str) -> Self {
        Self {
            label,
            kind: Kind::Put,
            user,
            uri: format!("/settings.phtml?action=put_journal_entries&realm={DOMAIN}"),
        }
    }
}

impl Workload for Scenario {
    fn method(&self) -> Method {
        match self.kind {
            Kind::Get { .. } => Method::GET,
            Kind::Put => Method::POST,
        }
    }

    fn uri(&self) -> &str {
        &self.uri
    }

    fn credentials(&self) -> Option<(&str, &str)> {
        Some((self.user, PASSWORD))
    }

    /// `seq` makes the client ids of puts unique per connection.
    fn body(&self, conn_index: usize, seq: u64) -> Option<(&'static str, Bytes)> {
        match self.kind {
            Kind::Get { .. } => None,
            Kind::Put => Some((
                "application/x-www-form-urlencoded",
                Bytes::from(put_body(conn_index, seq)),
            )),
        }
    }

    /// Checks that a 200 answer carries what was asked for.
    fn check(&self, body: &[u8]) -> Result<(), String> {
        let json: Value = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
        let problem = if json["success"] != Value::Bool(true) {
            Some("success is not true")
        } else {
            match self.kind {
                Kind::Get { rows } => (json["rows"].as_u64() != Some(rows)
                    || json["results"].as_array().map(Vec::len) != Some(rows as usize))
                .then_some("unexpected number of rows"),
                Kind::Put => (json["results"].as_array().map(Vec::len) != Some(ROWS_PER_PUT))
                    .then_some("unexpected number of results"),
            }
        };
        match problem {
            Some(problem) => {
                let text = String::from_utf8_lossy(body);
                Err(format!("{problem}: {}", abbreviate(&text)))
            }
            None => Ok(()),
        }
    }
}

/// Form body of one `put_journal_entries` call: `ROWS_PER_PUT` rows whose
/// `data` is a string of `ROW_DATA_BYTES` bytes.
fn put_body(conn_index: usize, seq: u64) -> String {
    let rows: Vec<Value> = (0..ROWS_PER_PUT)
        .map(|row| {
            let id = format!("c{conn_index}-{seq}-{row}");
            // JSON-encoded length = ROW_DATA_BYTES (two quotes added).
            let data = format!("{id:x<width$}", width = ROW_DATA_BYTES - 2);
            serde_json::json!({ "id": id, "data": data })
        })
        .collect();
    form_urlencoded::Serializer::new(String::new())
        .append_pair("uuid", &format!("bench-device-{conn_index}"))
        .append_pair("data", &Value::Array(rows).to_string())
        .finish()
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

fn print_table(backend: Backend, args: &Args, results: &[Measured<Kind>]) {
    let rows_per_sec =
        |r: &Measured<Kind>| r.load.calls_per_sec * r.scenario.rows_per_call() as f64;
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "{:<10}{:<9}{:<7}{:<10}{:<10}{:<8}{:<8}errors",
        "backend", "scenario", "conns", "calls/s", "rows/s", "p50_ms", "p99_ms"
    );
    for r in results {
        println!(
            "{:<10}{:<9}{:<7}{:<10}{:<10}{:<8}{:<8}{}",
            backend.name(),
            r.label,
            args.connections,
            format!("{:.0}", r.load.calls_per_sec),
            format!("{:.0}", rows_per_sec(r)),
            fmt_ms(r.load.p50_ms),
            fmt_ms(r.load.p99_ms),
            r.load.errors
        );
    }
    println!(
        "{:<10}(get: {GET_TAIL} of {SMALL_ENTRIES} / {BIG_ENTRIES} entries per call; \
         put: {ROWS_PER_PUT} rows of {ROW_DATA_BYTES} B per call)",
        backend.name()
    );

    let p99 = |label: &str| {
        results
            .iter()
            .find(|r| r.label == label)
            .and_then(|r| r.load.p99_ms)
    };
    match (p99("get 1M"), p99("get 1k")) {
        (Some(big), Some(small)) if small > 0.0 => {
            let ratio = big / small;
            println!(
                "{:<10}p99(1M)/p99(1k) = {ratio:.2} (target <= {P99_RATIO_TARGET}): {}",
                backend.name(),
                verdict(ratio <= P99_RATIO_TARGET)
            );
        }
        _ => println!(
            "{:<10}p99(1M)/p99(1k) = n/a (target <= {P99_RATIO_TARGET}): NOT met",
            backend.name()
        ),
    }
    if let Some(put) = results.iter().find(|r| r.scenario == Kind::Put) {
        let put_rows_per_sec = rows_per_sec(put);
        println!(
            "{:<10}put rows/s = {:.0} (target >= {PUT_TARGET_ROWS_PER_SEC:.0}{}): {}",
            backend.name(),
            put_rows_per_sec,
            if backend == Backend::Sqlite {
                ""
            } else {
                ", set for sqlite"
            },
            verdict(put_rows_per_sec >= PUT_TARGET_ROWS_PER_SEC)
        );
    }
}
