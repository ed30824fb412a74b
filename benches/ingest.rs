//! Ingestion feed throughput through the operator API (`POST /api/v1/feeds/*` over a real
//! socket with a bearer token; `--via service` calls the services directly instead).
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
//! [--batch N] [--accounts N] [--via http|service]`.

mod common;

use std::process::ExitCode;
use std::time::Instant;

use serde_json::{Value, json};
use sipsettings::config::Config;
use sipsettings::crypto::Keys;
use sipsettings::domain::NewAccount;
use sipsettings::domain::Role;
use sipsettings::http::{AppState, start};
use sipsettings::service::Services;
use sipsettings::service::ingest::{FeedBatch, parse_batch};
use sipsettings::service::tenancy::NewOperator;
use sipsettings::store::Store;

use common::{Backend, BackendChoice, POSTGRES_URL_ENV, Result, with_fresh_store};

const DOMAIN: &str = "bench.example";

struct Args {
    backends: Vec<Backend>,
    records: usize,
    batch: usize,
    accounts: usize,
    http: bool,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut a = Args {
            backends: Backend::available(),
            records: 100_000,
            batch: 1_000,
            accounts: 1_000,
            http: true,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--backend" => {
                    let choice = BackendChoice::parse(&value()?)?;
                    a.backends = Backend::ALL
                        .into_iter()
                        .filter(|b| choice.includes(*b))
                        .collect();
                }
                "--records" => a.records = value()?.parse()?,
                "--batch" => a.batch = value()?.parse()?,
                "--accounts" => a.accounts = value()?.parse()?,
                "--via" => {
                    a.http = match value()?.as_str() {
                        "http" => true,
                        "service" => false,
                        other => return Err(format!("unknown --via {other}").into()),
                    }
                }
                // `cargo bench` passes --bench.
                "--bench" => {}
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if a.backends.contains(&Backend::Postgres)
            && !Backend::available().contains(&Backend::Postgres)
        {
            return Err(format!("postgres needs {POSTGRES_URL_ENV}").into());
        }
        Ok(a)
    }
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

/// Sends one batch (a JSON array) and returns how many records were duplicates.
enum Feeder {
    Service(Services),
    Http {
        client: reqwest::Client,
        base: String,
        auth: String,
    },
}

impl Feeder {
    async fn send(&self, kind: &str, batch: &[Value]) -> Result<usize> {
        let body = serde_json::to_string(batch)?;
        match self {
            Feeder::Service(s) => {
                let b = match kind {
                    "registrations" => FeedBatch::Registrations(parse_batch(&body)?),
                    "cdrs" => FeedBatch::Cdrs(parse_batch(&body)?),
                    _ => FeedBatch::Balance(parse_batch(&body)?),
                };
                Ok(s.ingest(&b).await?.duplicates)
            }
            Feeder::Http { client, base, auth } => {
                let r = client
                    .post(format!("{base}/api/v1/feeds/{kind}"))
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = r.status();
                let v: Value = r.json().await?;
                if !status.is_success() {
                    return Err(format!("{kind}: HTTP {status}: {v}").into());
                }
                Ok(v["duplicates"].as_u64().unwrap_or(0) as usize)
            }
        }
    }
}

/// `count` records made by `record` from their index, in batches of `size`.
fn batches(count: usize, size: usize, record: impl Fn(usize) -> Value) -> Vec<Vec<Value>> {
    let records: Vec<Value> = (0..count).map(record).collect();
    records.chunks(size.max(1)).map(<[Value]>::to_vec).collect()
}

fn run_backend(
    rt: &tokio::runtime::Runtime,
    backend: Backend,
    args: &Args,
    rows: &mut Vec<Row>,
) -> Result<()> {
    with_fresh_store(backend, "ingest", |cfg| {
        rt.block_on(bench_store(backend.name(), cfg, args, rows))
    })
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
    let mut server = None;
    let feeder = if args.http {
        let admin = Services::cli_admin();
        let op = s
            .create_operator(
                &admin,
                NewOperator {
                    name: "platform".into(),
                    role: Role::Admin,
                    customer_id: None,
                    reseller_id: None,
                    password: None,
                },
            )
            .await?;
        let (_, token) = s.create_token(&admin, op.id, "bench", None).await?;
        let mut scfg = cfg.clone();
        scfg.listen = "127.0.0.1:0".into();
        scfg.tls_listen = String::new();
        scfg.max_body_bytes = 64 * 1024 * 1024;
        let srv = start(AppState::new(scfg, s.clone())).await?;
        let base = format!("http://{}", srv.addr);
        server = Some(srv);
        // reqwest is built with `rustls-no-provider`: without a process-wide
        // provider `Client::new` panics. (An error only means one is installed.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        Feeder::Http {
            client: reqwest::Client::new(),
            base,
            auth: format!("Bearer {token}"),
        }
    } else {
        Feeder::Service(s.clone())
    };

    let regs = batches(args.records, args.batch, |i| {
        json!({
            "account": account(i),
            "contact": format!("10.{}.{}.{}:5060", i / 65536 % 256, i / 256 % 256, i % 256),
            "public_contact": format!("80.1.{}.{}:34567", i / 256 % 256, i % 256),
            "expires": 3600,
            "user_agent": "Blink 6.0 (Linux)",
            "transport": "tls",
            "instance_id": format!("urn:uuid:{i:08}"),
        })
    });
    timed(rows, backend, "registrations", &regs, async |b| {
        feeder.send("registrations", b).await
    })
    .await?;

    let cdrs = batches(args.records, args.batch, |i| {
        let placed = i % 2 == 0;
        let start = now - 86_400 + (i as i64 % 80_000);
        let mut v = json!({
            "account": account(i),
            "direction": if placed { "placed" } else { "received" },
            "remoteParty": format!("sip:{i}@example.org"),
            "startTime": start,
            "stopTime": start + 60,
            "status": "200",
            "sessionId": format!("bench-{i}@host"),
            "fromTag": format!("ft{i}"),
            "toTag": "tt",
            "proxyIP": "10.0.0.1",
            "media": ["audio"],
        });
        if placed && let Some(o) = v.as_object_mut() {
            o.insert("price".into(), json!("0.0100"));
        }
        v
    });
    let dups = timed(rows, backend, "cdrs", &cdrs, async |b| {
        feeder.send("cdrs", b).await
    })
    .await?;
    if dups != 0 {
        return Err(format!("{dups} duplicates on first ingest").into());
    }
    let dups = timed(rows, backend, "cdrs again (duplicates)", &cdrs, async |b| {
        feeder.send("cdrs", b).await
    })
    .await?;
    if dups != args.records {
        return Err(format!("{dups} duplicates of {} on re-ingest", args.records).into());
    }

    let moves = batches(args.records / 5, args.batch, |i| {
        json!({
            "account": account(i),
            "value": if i % 2 == 0 { "5.0000" } else { "-0.0100" },
            "description": format!("bench move {i}"),
        })
    });
    timed(rows, backend, "balance", &moves, async |b| {
        feeder.send("balance", b).await
    })
    .await?;
    if let Some(srv) = server {
        srv.stop().await;
    }

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
    let usage = "ingest [--backend sqlite|postgres|all] [--records N] [--batch N] [--accounts N]";
    let Some(args) = common::parse_or_usage(Args::parse(), usage) else {
        return ExitCode::FAILURE;
    };
    let Some(rt) = common::runtime() else {
        return ExitCode::FAILURE;
    };
    let mut rows = Vec::new();
    for &backend in &args.backends {
        if let Err(e) = run_backend(&rt, backend, &args, &mut rows) {
            eprintln!("error: {}: {e}", backend.name());
            return ExitCode::FAILURE;
        }
    }
    println!(
        "\ningest benchmark ({}): {} accounts, batches of {} records (one transaction each)\n",
        if args.http {
            "POST /api/v1/feeds over HTTP"
        } else {
            "service calls"
        },
        args.accounts,
        args.batch
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
