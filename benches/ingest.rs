//! Ingestion feed throughput through the service API (no HTTP).
//!
//! For each backend (SQLite, and PostgreSQL when `SIPSETTINGS_TEST_POSTGRES_URL` is set, in a
//! database of its own that is dropped at the end) this creates 1 000 accounts, then ingests
//! in batches of 1 000 records (one transaction each):
//!
//! * 100 000 registrations (100 contacts per account),
//! * 100 000 call detail records (half placed with a price, which also debits the balance),
//! * the same 100 000 call records again (all duplicates: the idempotent path),
//! * 20 000 balance moves.
//!
//! Records are spread round-robin over the accounts, so every batch touches 1 000 distinct
//! accounts (the worst case for per-batch account resolution). Prints rows/s per feed.
//!
//! Run with `cargo bench --bench ingest -- [--backend sqlite|postgres|all] [--records N]
//! [--batch N] [--accounts N]`.

use std::process::ExitCode;
use std::time::Instant;

use sipsettings::config::{Config, Secret};
use sipsettings::crypto::Keys;
use sipsettings::domain::NewAccount;
use sipsettings::service::{BalanceRecord, CdrRecord, RegistrationRecord, Services};
use sipsettings::store::Store;
use sqlx::Connection;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const POSTGRES_URL_ENV: &str = "SIPSETTINGS_TEST_POSTGRES_URL";
const DOMAIN: &str = "bench.example";

struct Args {
    backends: Vec<&'static str>,
    records: usize,
    batch: usize,
    accounts: usize,
}

impl Args {
    fn parse() -> Result<Args> {
        let pg = std::env::var(POSTGRES_URL_ENV).is_ok_and(|v| !v.is_empty());
        let mut a = Args {
            backends: if pg {
                vec!["sqlite", "postgres"]
            } else {
                vec!["sqlite"]
            },
            records: 100_000,
            batch: 1_000,
            accounts: 1_000,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--backend" => {
                    a.backends = match value()?.as_str() {
                        "sqlite" => vec!["sqlite"],
                        "postgres" => vec!["postgres"],
                        "all" => vec!["sqlite", "postgres"],
                        other => return Err(format!("unknown backend {other}").into()),
                    }
                }
                "--records" => a.records = value()?.parse()?,
                "--batch" => a.batch = value()?.parse()?,
                "--accounts" => a.accounts = value()?.parse()?,
                // `cargo bench` passes --bench.
                "--bench" => {}
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if a.backends.contains(&"postgres") && !pg {
            return Err(format!("postgres needs {POSTGRES_URL_ENV}").into());
        }
        Ok(a)
    }
}

/// A fresh PostgreSQL database, dropped by `drop_db`.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn pg_admin(sql: String) -> Result<()> {
    let admin = std::env::var(POSTGRES_URL_ENV)?;
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    Ok(())
}

struct Row {
    backend: &'static str,
    feed: &'static str,
    records: usize,
    secs: f64,
}

async fn timed<T, F>(
    rows: &mut Vec<Row>,
    backend: &'static str,
    feed: &'static str,
    batches: &[Vec<T>],
    ingest: F,
) -> Result<usize>
where
    F: AsyncFn(&[T]) -> Result<usize>,
{
    let start = Instant::now();
    let mut duplicates = 0;
    for b in batches {
        duplicates += ingest(b).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let records = batches.iter().map(Vec::len).sum();
    eprintln!(
        "{backend:8} {feed:23} {records:>8} records in {secs:7.2} s = {:>9.0} rows/s",
        records as f64 / secs
    );
    rows.push(Row {
        backend,
        feed,
        records,
        secs,
    });
    Ok(duplicates)
}

fn chunks<T: Clone>(v: Vec<T>, n: usize) -> Vec<Vec<T>> {
    v.chunks(n.max(1)).map(<[T]>::to_vec).collect()
}

async fn run_backend(backend: &'static str, args: &Args, rows: &mut Vec<Row>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db_name = format!("sipsettings_bench_ingest_{}", std::process::id());
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    if backend == "postgres" {
        let admin = std::env::var(POSTGRES_URL_ENV)?;
        pg_admin(format!("DROP DATABASE IF EXISTS {db_name}")).await?;
        pg_admin(format!("CREATE DATABASE {db_name}")).await?;
        cfg.database_url = Secret::new(with_db(&admin, &db_name));
    }
    let result = bench_store(backend, &cfg, args, rows).await;
    if backend == "postgres" {
        pg_admin(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")).await?;
    }
    result
}

async fn bench_store(
    backend: &'static str,
    cfg: &Config,
    args: &Args,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let store = Store::open(cfg).await?;
    let keys = Keys::load(cfg)?;
    let s = Services::new(store, keys, cfg);
    s.add_domain(DOMAIN).await?;
    let setup = Instant::now();
    for i in 0..args.accounts {
        s.add_account(
            NewAccount {
                username: format!("user{i}"),
                domain: DOMAIN.into(),
                ..NewAccount::default()
            },
            "benchpass",
        )
        .await?;
    }
    eprintln!(
        "{backend:8} created {} accounts in {:.1} s",
        args.accounts,
        setup.elapsed().as_secs_f64()
    );
    let account = |i: usize| format!("user{}@{DOMAIN}", i % args.accounts);
    let now = sipsettings::util::now();

    let regs: Vec<RegistrationRecord> = (0..args.records)
        .map(|i| RegistrationRecord {
            account: account(i),
            contact: format!("10.{}.{}.{}:5060", i / 65536 % 256, i / 256 % 256, i % 256),
            public_contact: Some(format!("80.1.{}.{}:34567", i / 256 % 256, i % 256)),
            expires: Some(3600),
            expires_at: None,
            user_agent: Some("Blink 6.0 (Linux)".into()),
            transport: Some("tls".into()),
            instance_id: Some(format!("urn:uuid:{i:08}")),
        })
        .collect();
    let regs = chunks(regs, args.batch);
    timed(rows, backend, "registrations", &regs, async |b| {
        Ok(s.ingest_registrations(b).await?.duplicates)
    })
    .await?;

    let cdrs: Vec<CdrRecord> = (0..args.records)
        .map(|i| {
            let placed = i % 2 == 0;
            let start = now - 86_400 + (i as i64 % 80_000);
            serde_json::from_value(serde_json::json!({
                "account": account(i),
                "direction": if placed { "placed" } else { "received" },
                "remoteParty": format!("sip:{i}@example.org"),
                "startTime": start,
                "stopTime": start + 60,
                "status": "200",
                "price": if placed { Some("0.0100") } else { None },
                "sessionId": format!("bench-{i}@host"),
                "fromTag": format!("ft{i}"),
                "toTag": "tt",
                "proxyIP": "10.0.0.1",
                "media": ["audio"],
            }))
        })
        .collect::<std::result::Result<_, _>>()?;
    let cdrs = chunks(cdrs, args.batch);
    let dups = timed(rows, backend, "cdrs", &cdrs, async |b| {
        Ok(s.ingest_cdrs(b).await?.duplicates)
    })
    .await?;
    if dups != 0 {
        return Err(format!("{dups} duplicates on first ingest").into());
    }
    let dups = timed(rows, backend, "cdrs again (duplicates)", &cdrs, async |b| {
        Ok(s.ingest_cdrs(b).await?.duplicates)
    })
    .await?;
    if dups != args.records {
        return Err(format!("{dups} duplicates of {} on re-ingest", args.records).into());
    }

    let moves: Vec<BalanceRecord> = (0..args.records / 5)
        .map(|i| BalanceRecord {
            account: account(i),
            value: if i % 2 == 0 { "5.0000" } else { "-0.0100" }.into(),
            description: format!("bench move {i}"),
            session: None,
        })
        .collect();
    let moves = chunks(moves, args.batch);
    timed(rows, backend, "balance", &moves, async |b| {
        Ok(s.ingest_balance(b).await?.duplicates)
    })
    .await?;

    // Sanity: everything is there exactly once.
    let pool = s.store.pool();
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls")
        .fetch_one(pool)
        .await?;
    let regs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM registrations")
        .fetch_one(pool)
        .await?;
    if calls != args.records as i64 || regs != args.records as i64 {
        return Err(format!("stored {calls} calls and {regs} registrations").into());
    }
    s.store.close().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "usage: ingest [--backend sqlite|postgres|all] [--records N] [--batch N] [--accounts N]"
            );
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    for backend in &args.backends {
        if let Err(e) = rt.block_on(run_backend(backend, &args, &mut rows)) {
            eprintln!("error: {backend}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "\ningest benchmark: {} accounts, batches of {} records (one transaction each)\n",
        args.accounts, args.batch
    );
    println!("| backend  | feed                   |  records | seconds |   rows/s |");
    println!("|----------|-------------------------|---------:|--------:|---------:|");
    for r in &rows {
        println!(
            "| {:8} | {:23} | {:>8} | {:>7.2} | {:>8.0} |",
            r.backend,
            r.feed,
            r.records,
            r.secs,
            r.records as f64 / r.secs
        );
    }
    ExitCode::SUCCESS
}
