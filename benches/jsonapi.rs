//! Latency of the JSON:API surface (`/api/rest/public/operator/sip_device_routes`) over a big
//! store: filtered, sorted pages of 50 among 100 000 accounts.
//!
//! For each backend (SQLite, and PostgreSQL when `SIPSETTINGS_TEST_POSTGRES_URL` is set, in a
//! database of its own that is dropped at the end) this loads the accounts through the store
//! in transactions of 5 000 (`insert_account` with a sealed password, `update_attrs` with
//! varied attributes, a live registration for one account in ten), 100 customers under 10
//! resellers (1 000 accounts each), and operators with bearer tokens; then starts the release
//! server (`sipsettings serve`) and, for each scenario, sends the same request back to back on
//! `--connections` keep-alive connections for `--seconds`, after a warm-up, and prints
//! requests/s, p50 and p99.
//!
//! Run with `cargo bench --bench jsonapi -- [--backend sqlite|postgres|all] [--accounts N]
//! [--seconds N] [--connections N]`.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::Method;
use hyper::StatusCode;
use hyper::header::AUTHORIZATION;
use sipsettings::config::{Config, Secret};
use sipsettings::crypto::{Ha1Set, Keys, new_uuid};
use sipsettings::domain::{Attr, AttrValue, NewAccount, Registration, Role};
use sipsettings::service::Services;
use sipsettings::service::tenancy::NewOperator;
use sipsettings::store::{NewAccountSecrets, Store};
use tokio::runtime::Runtime;

use common::{
    Backend, BackendChoice, Connection, PostgresDatabase, Result, ServerEnv, TempDir, WARM_UP,
    abbreviate, fmt_ms, free_port, parse_positive, percentile_ms, run_backends, wait_healthy,
};

const DOMAIN: &str = "bench.example";
const BASE: &str = "/api/rest/public/operator/sip_device_routes";
const RESELLERS: usize = 10;
const CUSTOMERS: usize = 100;
const TX_ROWS: usize = 5_000;
/// Every successful list answer has it.
const MARK: &[u8] = b"\"record_count\":";

struct Args {
    backend: BackendChoice,
    accounts: usize,
    seconds: u64,
    connections: usize,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut a = Args {
            backend: BackendChoice::All,
            accounts: 100_000,
            seconds: 10,
            // Latency of one request at a time: with more connections than the machine's two
            // cores the figures measure queueing, not the request.
            connections: 1,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--backend" => a.backend = BackendChoice::parse(&value()?)?,
                "--accounts" => a.accounts = parse_positive(&arg, &value()?)?,
                "--seconds" => a.seconds = parse_positive(&arg, &value()?)?,
                "--connections" => a.connections = parse_positive(&arg, &value()?)?,
                // `cargo bench` passes --bench.
                "--bench" => {}
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        Ok(a)
    }
}

/// What the loaded store holds that the scenarios need.
struct Loaded {
    admin: String,
    reseller: String,
    owner: String,
    /// Two customers of the reseller.
    reseller_customers: (i64, i64),
}

fn caller_id_name(i: usize) -> Option<String> {
    // One in twenty without a name (NULLs sort last), the rest spread over 5 000 names.
    (!i.is_multiple_of(20)).then(|| format!("Name {:05}", (i * 7_919) % 5_000))
}

/// Loads `n` accounts and the tenancy through the library (store and services), as the server
/// would write them.
async fn load(cfg: &Config, n: usize) -> Result<Loaded> {
    let store = Store::open(cfg).await?;
    let keys = Keys::load(cfg)?;
    let services = Services::new(store.clone(), keys, cfg);
    let admin_op = Services::cli_admin();
    services.add_domain(DOMAIN).await?;
    let domain = store
        .domain_by_name(DOMAIN)
        .await?
        .ok_or("domain vanished")?;
    let mut resellers = Vec::new();
    for r in 0..RESELLERS {
        resellers.push(
            services
                .create_reseller(&admin_op, &format!("Reseller {r}"), None)
                .await?
                .id,
        );
    }
    let mut customers = Vec::new();
    for c in 0..CUSTOMERS {
        customers.push(
            services
                .create_customer(
                    &admin_op,
                    &format!("Customer {c:03}"),
                    Some(resellers[c % RESELLERS]),
                    None,
                )
                .await?
                .id,
        );
    }
    let started = Instant::now();
    let now = sipsettings::util::now();
    let mut i = 0;
    while i < n {
        let mut tx = store.begin_write().await?;
        for _ in 0..TX_ROWS.min(n - i) {
            let username = format!("u{i:07}");
            let password = format!("pw-{i}");
            let account = NewAccount {
                username: username.clone(),
                domain: DOMAIN.into(),
                customer_id: Some(customers[i % CUSTOMERS]),
                ..Default::default()
            };
            let ha1 = Ha1Set::new(&username, DOMAIN, &password);
            let sealed = services.keys.seal(&password)?;
            let public_id = new_uuid();
            let id = store
                .insert_account(
                    &mut tx,
                    domain.id,
                    &account,
                    &ha1,
                    &NewAccountSecrets {
                        public_id: &public_id,
                        password_sealed: Some(&sealed),
                    },
                    now,
                )
                .await?;
            let changes = [
                (Attr::CallerIdName, AttrValue::Text(caller_id_name(i))),
                (
                    Attr::InternalCallerId,
                    AttrValue::Int(Some(100 + (i % 900) as i64)),
                ),
                // Independent of the customer (i % 100), so every customer has both values.
                (
                    Attr::AllowExternalCalls,
                    AttrValue::Flag((i / 7).is_multiple_of(2)),
                ),
                (Attr::UseAllowedIps, AttrValue::Flag(i.is_multiple_of(5))),
                (
                    Attr::AllowedIps,
                    AttrValue::Text(Some(if i.is_multiple_of(5) {
                        format!("10.{}.{}.0/24", (i / 256) % 256, i % 256)
                    } else {
                        String::new()
                    })),
                ),
                (Attr::IncomingExternal, AttrValue::Flag(i.is_multiple_of(3))),
            ];
            store.update_attrs(&mut tx, id, &changes, now).await?;
            if i.is_multiple_of(10) {
                store
                    .upsert_registration(
                        &mut tx,
                        id,
                        &Registration {
                            contact: format!("sip:{username}@192.0.2.1:5060"),
                            public_contact: None,
                            expires_at: now + 86_400,
                            user_agent: Some(format!("Phone/{}", i % 7)),
                            transport: Some("udp".into()),
                            instance_id: None,
                        },
                        now,
                    )
                    .await?;
            }
            i += 1;
        }
        tx.commit().await?;
    }
    eprintln!(
        "loaded {n} accounts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let token_of = async |name: &str, role: Role, customer, reseller| -> Result<String> {
        let row = services
            .create_operator(
                &admin_op,
                NewOperator {
                    name: name.into(),
                    role,
                    customer_id: customer,
                    reseller_id: reseller,
                    password: None,
                },
            )
            .await?;
        Ok(services
            .create_token(&admin_op, row.id, "bench", None)
            .await?
            .1)
    };
    let loaded = Loaded {
        admin: token_of("admin", Role::Admin, None, None).await?,
        reseller: token_of("reseller", Role::Reseller, None, Some(resellers[0])).await?,
        owner: token_of("owner", Role::Owner, Some(customers[0]), None).await?,
        reseller_customers: (customers[0], customers[RESELLERS]),
    };
    // After a bulk load: fresh planner statistics, and on PostgreSQL the visibility map that
    // index-only scans need, as autovacuum would make them shortly after an import.
    let after_load = match store.backend() {
        sipsettings::store::Backend::Postgres => "VACUUM ANALYZE",
        sipsettings::store::Backend::Sqlite => "ANALYZE",
    };
    sqlx::query(after_load).execute(store.pool()).await?;
    store.close().await;
    Ok(loaded)
}

struct Scenario {
    label: String,
    token: String,
    uri: String,
}

fn scenarios(l: &Loaded) -> Vec<Scenario> {
    let s = |label: &str, token: &str, query: String| Scenario {
        label: label.to_owned(),
        token: token.to_owned(),
        uri: format!("{BASE}?{query}"),
    };
    let (c1, c2) = l.reseller_customers;
    vec![
        s(
            "ADMIN, all 100k: allow_external_calls=true, sort=-caller_id_name, page 10",
            &l.admin,
            "filter[allow_external_calls]=true&sort=-caller_id_name&page[number]=10&page[size]=50"
                .into(),
        ),
        s(
            "ADMIN, all 100k: sort=username, page 1000",
            &l.admin,
            "sort=username&page[number]=1000&page[size]=50".into(),
        ),
        s(
            "ADMIN: customer.id (2 of 100), sort=caller_id_name,-internal_caller_id",
            &l.admin,
            format!(
                "filter[customer.id]={c1},{c2}&sort=caller_id_name,-internal_caller_id&page[size]=50"
            ),
        ),
        s(
            "RESELLER (10k): allow_external_calls=false, sort=-is_online,username",
            &l.reseller,
            "filter[allow_external_calls]=false&sort=-is_online,username&page[number]=2&page[size]=50"
                .into(),
        ),
        s(
            "OWNER (1k): sort=user_agent, include=customer",
            &l.owner,
            "sort=user_agent&include=customer&page[number]=3&page[size]=50".into(),
        ),
    ]
}

struct Measured {
    label: String,
    calls: usize,
    per_sec: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    errors: u64,
    first_error: Option<String>,
}

/// One connection sending `uri` back to back until `end`; latencies of requests started
/// after `from`.
async fn drive(
    addr: SocketAddr,
    sc: Arc<Scenario>,
    from: Instant,
    end: Instant,
) -> Result<(Vec<u64>, u64, Option<String>)> {
    let mut conn = Connection::open(addr).await?;
    let auth = format!("Bearer {}", sc.token);
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first = None;
    while Instant::now() < end {
        if conn.sender.ready().await.is_err() {
            conn = Connection::open(addr).await?;
        }
        let req = conn
            .request(Method::GET, &sc.uri)
            .header(AUTHORIZATION, &auth)
            .body(Full::default())?;
        let t = Instant::now();
        let r = conn.send(req).await;
        let el = t.elapsed();
        let counted = t >= from && t < end;
        match r {
            Ok(resp)
                if resp.status == StatusCode::OK
                    && resp.body.windows(MARK.len()).any(|w| w == MARK) =>
            {
                if counted {
                    lat.push(el.as_micros() as u64);
                }
            }
            Ok(resp) => {
                if counted {
                    errors += 1;
                    first.get_or_insert_with(|| {
                        format!(
                            "status {}: {}",
                            resp.status,
                            abbreviate(&String::from_utf8_lossy(&resp.body))
                        )
                    });
                }
            }
            Err(e) => {
                if counted {
                    errors += 1;
                    first.get_or_insert_with(|| e.to_string());
                }
                conn = Connection::open(addr).await?;
            }
        }
    }
    Ok((lat, errors, first))
}

async fn measure(addr: SocketAddr, sc: Scenario, args: &Args) -> Result<Measured> {
    let sc = Arc::new(sc);
    let start = Instant::now();
    let from = start + WARM_UP;
    let end = from + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(drive(addr, sc.clone(), from, end)))
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (lat, e, f) = t.await??;
        all.extend(lat);
        errors += e;
        first_error = first_error.or(f);
    }
    all.sort_unstable();
    Ok(Measured {
        label: sc.label.clone(),
        calls: all.len(),
        per_sec: all.len() as f64 / args.seconds as f64,
        p50: percentile_ms(&all, 50.0),
        p99: percentile_ms(&all, 99.0),
        errors,
        first_error,
    })
}

fn bench_backend(rt: &Runtime, args: &Args, backend: Backend, pg: Option<&str>) -> Result<bool> {
    let database = pg
        .map(|url| PostgresDatabase::create(url, "jsonapi"))
        .transpose()?;
    let dir = TempDir::create("jsonapi")?;
    let env = ServerEnv {
        data_dir: dir.0.clone(),
        database_url: database.as_ref().map(|d| d.url.clone()),
        listen: free_port()?,
        extra_env: vec![("SIPSETTINGS_TLS_LISTEN", Some(String::new()))],
    };
    let cfg = Config {
        data_dir: dir.0.clone(),
        database_url: match &env.database_url {
            Some(u) => Secret::new(u.clone()),
            None => Secret::default(),
        },
        ..Config::default()
    };
    eprintln!(
        "{}: loading {} accounts into {}",
        backend.name(),
        args.accounts,
        dir.0.display()
    );
    let loaded = rt.block_on(load(&cfg, args.accounts))?;
    let mut server = env.spawn_server()?;
    wait_healthy(rt, env.listen, &mut server.0)?;
    let mut ok = true;
    let mut rows = Vec::new();
    for sc in scenarios(&loaded) {
        eprintln!(
            "{}: {}: warm-up {} s, then {} s with {} connections",
            backend.name(),
            sc.label,
            WARM_UP.as_secs(),
            args.seconds,
            args.connections
        );
        let m = rt.block_on(measure(env.listen, sc, args))?;
        if m.calls == 0 || m.errors > 0 {
            eprintln!(
                "error: {}: {}: {} errors, first: {}",
                backend.name(),
                m.label,
                m.errors,
                m.first_error.as_deref().unwrap_or("-")
            );
            ok = false;
        }
        rows.push(m);
    }
    drop(server);
    println!(
        "{:<10}{:<75}{:>8}{:>9}{:>9}{:>8}",
        "backend", "scenario", "req/s", "p50_ms", "p99_ms", "errors"
    );
    for m in &rows {
        println!(
            "{:<10}{:<75}{:>8.0}{:>9}{:>9}{:>8}",
            backend.name(),
            m.label,
            m.per_sec,
            fmt_ms(m.p50),
            fmt_ms(m.p99),
            m.errors
        );
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "usage: jsonapi [--backend sqlite|postgres|all] [--accounts N] [--seconds N] [--connections N]"
            );
            return ExitCode::FAILURE;
        }
    };
    let Some(rt) = common::runtime() else {
        return ExitCode::FAILURE;
    };
    run_backends(args.backend, |backend, url| {
        bench_backend(&rt, &args, backend, url)
    })
}
