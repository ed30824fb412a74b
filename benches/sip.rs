//! Latency of the telecomx-compatible listing `GET /sip` with 100 000 accounts in one customer.
//!
//! For each backend (SQLite, and PostgreSQL when `SIPSETTINGS_TEST_POSTGRES_URL` is set, in a
//! database of its own that is dropped at the end) this bulk-loads, in transactions of 1 000
//! rows through the store's connection (the migration's triggers keep the search text as for
//! any write): N accounts (default 100 000) in ONE customer, each with a name
//! `"<city> trunk <i>"` (20 cities), one ENUM number `+4570<i:06>`, an IP address on 10 %,
//! notes on 5 %; live registrations on 10 % and expired ones on another 10 %; one placed call
//! in the last months on half of them. Then it starts the server on a socket and, with
//! `--connections` keep-alive connections (default 1) of the customer's OWNER (bearer token),
//! measures pages of 50 (`limit=50`, sorted by user name as always) per scenario: p50 and p99
//! over `--seconds` (default 8) after a 1 s warm-up.
//!
//! Run with `cargo bench --bench sip -- [--backend sqlite|postgres|all] [--accounts N]
//! [--seconds N] [--connections N]`.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::Method;
use hyper::header::AUTHORIZATION;
use sipsettings::config::Config;
use sipsettings::crypto::Keys;
use sipsettings::domain::Role;
use sipsettings::http::{AppState, start};
use sipsettings::service::Services;
use sipsettings::service::tenancy::NewOperator;
use sipsettings::store::Store;

use common::{Backend, BackendChoice, Connection, POSTGRES_URL_ENV, Result, with_fresh_store};

const DOMAIN: &str = "bench.example";
const CITIES: [&str; 20] = [
    "Copenhagen",
    "Aarhus",
    "Odense",
    "Aalborg",
    "Esbjerg",
    "Randers",
    "Kolding",
    "Horsens",
    "Vejle",
    "Roskilde",
    "Herning",
    "Silkeborg",
    "Naestved",
    "Fredericia",
    "Viborg",
    "Koege",
    "Holstebro",
    "Taastrup",
    "Slagelse",
    "Hilleroed",
];
const ROWS_PER_TX: usize = 1_000;
const WARM_UP: Duration = Duration::from_secs(1);

struct Args {
    backends: Vec<Backend>,
    accounts: usize,
    seconds: u64,
    connections: usize,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut a = Args {
            backends: Backend::available(),
            accounts: 100_000,
            seconds: 8,
            connections: 1,
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
                "--accounts" => a.accounts = common::parse_positive("--accounts", &value()?)?,
                "--seconds" => a.seconds = common::parse_positive("--seconds", &value()?)?,
                "--connections" => {
                    a.connections = common::parse_positive("--connections", &value()?)?;
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

/// A user name per index: a bijection of the index, so user-name order is not load order.
fn username(i: usize) -> String {
    format!(
        "sip{:08x}",
        (i as u64).wrapping_mul(2_654_435_761) & 0xffff_ffff
    )
}

/// One scenario: the query of request number `n`.
struct Scenario {
    label: &'static str,
    query: Box<dyn Fn(u64) -> String + Send + Sync>,
}

fn scenarios(accounts: usize) -> Vec<Scenario> {
    let n = accounts as u64;
    vec![
        Scenario {
            label: "no filter, first page",
            query: Box::new(|_| "limit=50".into()),
        },
        Scenario {
            label: "no filter, deep page",
            query: Box::new(move |i| format!("limit=50&offset={}", (i * 7_919) % n)),
        },
        Scenario {
            label: "filter: one number",
            query: Box::new(move |i| format!("limit=50&filter=4570{:06}", (i * 7_919) % n)),
        },
        Scenario {
            label: "filter: 100 numbers",
            query: Box::new(move |i| {
                format!("limit=50&filter=%2B4570{:04}", (i * 31) % (n / 100).max(1))
            }),
        },
        Scenario {
            label: "filter: city (5 %)",
            query: Box::new(|i| format!("limit=50&filter={}", CITIES[i as usize % 20])),
        },
        Scenario {
            label: "filter: 2 chars",
            query: Box::new(|i| {
                format!(
                    "limit=50&filter={}",
                    ["ro", "sk", "rh", "ve"][i as usize % 4]
                )
            }),
        },
        Scenario {
            label: "filter: every account",
            query: Box::new(|_| "limit=50&filter=trunk".into()),
        },
        Scenario {
            label: "up=true (10 %)",
            query: Box::new(|_| "limit=50&up=true".into()),
        },
        Scenario {
            label: "up=false (90 %)",
            query: Box::new(|_| "limit=50&up=false".into()),
        },
        // Live registrations fall on two of the 20 cities: 5 000 matches or none.
        Scenario {
            label: "filter: city + up=true",
            query: Box::new(|i| format!("limit=50&up=true&filter={}", CITIES[i as usize % 20])),
        },
        Scenario {
            label: "full=true, first page",
            query: Box::new(|_| "limit=50&full=true".into()),
        },
    ]
}

struct Row {
    backend: &'static str,
    label: &'static str,
    total: i64,
    calls: usize,
    per_sec: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    errors: u64,
    first_error: Option<String>,
}

/// Multi-row INSERTs of `rows` (each a list of bound values), `ROWS_PER_TX` per transaction.
async fn bulk_insert(store: &Store, head: &str, rows: &[Vec<Value>]) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_TX) {
        let mut sql = format!("{head} VALUES ");
        let mut n = 0;
        for (r, row) in chunk.iter().enumerate() {
            if r > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..row.len() {
                n += 1;
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for v in row {
                q = match v {
                    Value::Int(i) => q.bind(*i),
                    Value::Text(t) => q.bind(t.clone()),
                    Value::Null => q.bind(None::<String>),
                };
            }
        }
        let mut tx = store.begin_write().await?;
        q.execute(tx.conn()).await?;
        tx.commit().await?;
    }
    Ok(())
}

#[derive(Clone)]
enum Value {
    Int(i64),
    Text(String),
    Null,
}

fn t(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// Loads the data set; returns the OWNER's `Authorization` value.
async fn load(s: &Services, accounts: usize) -> Result<String> {
    let admin = Services::cli_admin();
    let domain = s.add_domain(DOMAIN).await?;
    let customer = s.create_customer(&admin, "Bench BV", None, None).await?;
    let op = s
        .create_operator(
            &admin,
            NewOperator {
                name: "owner".into(),
                role: Role::Owner,
                customer_id: Some(customer.id),
                reseller_id: None,
                password: None,
            },
        )
        .await?;
    let (_, token) = s.create_token(&admin, op.id, "bench", None).await?;
    let now = sipsettings::util::now();
    let started = Instant::now();
    let hex32 = "0".repeat(32);
    let hex64 = "0".repeat(64);
    let rows: Vec<Vec<Value>> = (0..accounts)
        .map(|i| {
            vec![
                Value::Int(domain.id),
                t(username(i)),
                t(&hex32),
                t(&hex64),
                t(&hex32),
                t(&hex64),
                Value::Int(now),
                Value::Int(now),
                Value::Int(customer.id),
                t(sipsettings::crypto::new_uuid()),
                t(format!("{} trunk {i}", CITIES[i % 20])),
                if i % 10 == 3 {
                    t(format!(
                        "10.{}.{}.{}",
                        i / 65_536 % 256,
                        i / 256 % 256,
                        i % 256
                    ))
                } else {
                    Value::Null
                },
                if i % 20 == 5 {
                    t(format!("Customer since 2019, contract C-{i}"))
                } else {
                    Value::Null
                },
                t("rp-standard"),
                t("Standard SIP account"),
                t("IP_AUTH_REG"),
            ]
        })
        .collect();
    bulk_insert(
        &s.store,
        "INSERT INTO accounts (domain_id, username, ha1_md5, ha1_sha256, ha1_md5_full, \
         ha1_sha256_full, created_at, updated_at, customer_id, public_id, name, ip_address, \
         notes, rate_plan, rate_plan_name, connection)",
        &rows,
    )
    .await?;
    let ids: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, username FROM accounts WHERE customer_id = $1")
            .bind(customer.id)
            .fetch_all(s.store.pool())
            .await?;
    let by_name: std::collections::HashMap<String, i64> =
        ids.into_iter().map(|(id, u)| (u, id)).collect();
    let id_of = |i: usize| by_name.get(&username(i)).copied().unwrap_or(0);
    let numbers: Vec<Vec<Value>> = (0..accounts)
        .map(|i| {
            vec![
                Value::Int(id_of(i)),
                t(format!("+4570{i:06}")),
                Value::Int(now),
            ]
        })
        .collect();
    bulk_insert(
        &s.store,
        "INSERT INTO enum_numbers (account_id, number, created_at)",
        &numbers,
    )
    .await?;
    let regs: Vec<Vec<Value>> = (0..accounts)
        .filter(|i| i % 10 < 2)
        .map(|i| {
            let live = i % 10 == 0;
            vec![
                Value::Int(id_of(i)),
                t(format!("sip:{}@192.0.2.{}:5060", username(i), i % 250)),
                Value::Int(if live { now + 3 * 86_400 } else { now - 100 }),
                t("Asterisk 18.0"),
                Value::Int(now - 200),
            ]
        })
        .collect();
    bulk_insert(
        &s.store,
        "INSERT INTO registrations (account_id, contact, expires_at, user_agent, updated_at)",
        &regs,
    )
    .await?;
    let calls: Vec<Vec<Value>> = (0..accounts)
        .filter(|i| i % 2 == 0)
        .map(|i| {
            let start = now - (i as i64 % 200) * 86_400;
            vec![
                Value::Int(id_of(i)),
                t("placed"),
                t("+4512345678"),
                Value::Int(start),
                Value::Int(start + 60 + (i as i64 % 600)),
                Value::Int(60 + (i as i64 % 600)),
                t("200"),
                t(format!("bench-{i}")),
                t("ft"),
            ]
        })
        .collect();
    bulk_insert(
        &s.store,
        "INSERT INTO calls (account_id, direction, remote_party, start_time, stop_time, \
         duration, status, session_id, from_tag)",
        &calls,
    )
    .await?;
    if s.store.backend() == sipsettings::store::Backend::Postgres {
        // What autovacuum does soon after a bulk load: statistics for the planner and a
        // visibility map for index-only scans.
        sqlx::query("VACUUM ANALYZE")
            .execute(s.store.pool())
            .await?;
    }
    eprintln!(
        "loaded {accounts} accounts, {} numbers, {} registrations, {} calls in {:.1} s",
        numbers.len(),
        regs.len(),
        calls.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(format!("Bearer {token}"))
}

/// `connections` keep-alive connections send the scenario's requests back to back.
async fn measure(
    addr: SocketAddr,
    auth: &str,
    scenario: &Scenario,
    connections: usize,
    seconds: u64,
) -> Result<(Vec<u64>, u64, Option<String>, i64)> {
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let end = measure_from + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let auth = auth.to_owned();
        let uris: Vec<String> = (0..20_000u64)
            .map(|n| {
                format!(
                    "/sip?{}",
                    (scenario.query)(n * connections as u64 + c as u64)
                )
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await?;
            let mut lat = Vec::new();
            let (mut errors, mut first, mut total) = (0u64, None, -1i64);
            let mut n = 0usize;
            while Instant::now() < end {
                let uri = &uris[n % uris.len()];
                n += 1;
                let req = conn
                    .request(Method::GET, uri)
                    .header(AUTHORIZATION, &auth)
                    .body(Full::default())?;
                let t0 = Instant::now();
                let r = conn.send(req).await;
                let took = t0.elapsed();
                let counted = t0 >= measure_from;
                match r {
                    Ok(r) if r.status == 200 && r.body.starts_with(b"{\"offset\"") => {
                        if counted {
                            lat.push(took.as_micros() as u64);
                        }
                        if total < 0 {
                            let v: serde_json::Value = serde_json::from_slice(&r.body)?;
                            total = v["total"].as_i64().unwrap_or(-1);
                        }
                    }
                    Ok(r) => {
                        errors += 1;
                        first.get_or_insert_with(|| {
                            format!("{uri}: {} {}", r.status, String::from_utf8_lossy(&r.body))
                        });
                    }
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert_with(|| format!("{uri}: {e}"));
                        conn = Connection::open(addr).await?;
                    }
                }
            }
            Ok::<_, common::BoxError>((lat, errors, first, total))
        }));
    }
    let mut all = Vec::new();
    let (mut errors, mut first, mut total) = (0, None, -1);
    for t in tasks {
        let (l, e, f, tot) = t.await??;
        all.extend(l);
        errors += e;
        first = first.or(f);
        total = total.max(tot);
    }
    all.sort_unstable();
    Ok((all, errors, first, total))
}

async fn bench_backend(
    backend: Backend,
    cfg: &Config,
    args: &Args,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let store = Store::open(cfg).await?;
    let keys = Keys::load(cfg)?;
    let s = Services::new(store, keys, cfg);
    let auth = load(&s, args.accounts).await?;
    let mut scfg = cfg.clone();
    scfg.listen = "127.0.0.1:0".into();
    scfg.tls_listen = String::new();
    let srv = start(AppState::new(scfg, s.clone())).await?;
    for sc in scenarios(args.accounts) {
        eprintln!("{}: {} ...", backend.name(), sc.label);
        let (lat, errors, first_error, total) =
            measure(srv.addr, &auth, &sc, args.connections, args.seconds).await?;
        rows.push(Row {
            backend: backend.name(),
            label: sc.label,
            total,
            calls: lat.len(),
            per_sec: lat.len() as f64 / args.seconds as f64,
            p50: common::percentile_ms(&lat, 50.0),
            p99: common::percentile_ms(&lat, 99.0),
            errors,
            first_error,
        });
    }
    srv.stop().await;
    s.store.close().await;
    Ok(())
}

fn run_backend(
    rt: &tokio::runtime::Runtime,
    backend: Backend,
    args: &Args,
    rows: &mut Vec<Row>,
) -> Result<()> {
    with_fresh_store(backend, "sip", |cfg| {
        rt.block_on(bench_backend(backend, cfg, args, rows))
    })
}

fn main() -> ExitCode {
    let usage =
        "sip [--backend sqlite|postgres|all] [--accounts N] [--seconds N] [--connections N]";
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
        "\nGET /sip, limit=50: {} accounts in one customer, {} connections, {} s per scenario\n",
        args.accounts, args.connections, args.seconds
    );
    println!("| backend | scenario | total | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut failed = false;
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            r.backend,
            r.label,
            r.total,
            r.per_sec,
            common::fmt_ms(r.p50),
            common::fmt_ms(r.p99),
            r.errors
        );
        if let Some(e) = &r.first_error {
            eprintln!(
                "{} {}: first error: {}",
                r.backend,
                r.label,
                common::abbreviate(e)
            );
        }
        failed |= r.calls == 0;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
