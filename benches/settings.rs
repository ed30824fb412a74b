//! End-to-end load benchmark for the `sipsettings` server.
//!
//! For each backend (SQLite, and PostgreSQL when `SIPSETTINGS_TEST_POSTGRES_URL`
//! is set) this prepares a fresh data set with the CLI, starts `sipsettings
//! serve` and drives it with many keep-alive HTTP/1.1 connections, comparing
//! an unauthenticated `GET /health` with a Digest-authenticated
//! `settings.phtml` request.
//!
//! Run with `cargo bench --bench settings -- [--seconds N] [--connections N]
//! [--backend sqlite|postgres|all]`.

use std::error::Error;
use std::fmt::Display;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const SERVER_BIN: &str = env!("CARGO_BIN_EXE_sipsettings");
const POSTGRES_URL_ENV: &str = "SIPSETTINGS_TEST_POSTGRES_URL";

const DOMAIN: &str = "example.com";
const USERNAME: &str = "alice";
const PASSWORD: &str = "benchpass";
const SETTINGS_URI: &str = "/settings.phtml?action=get_identity&realm=example.com";

const WARM_UP: Duration = Duration::from_secs(2);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Distinguishes the temp dirs / databases of one bench process.
static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "usage: settings [--seconds N] [--connections N] [--backend sqlite|postgres|all]"
            );
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut failed = false;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if !args.backend.includes(backend) {
            continue;
        }
        let base_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => match std::env::var(POSTGRES_URL_ENV) {
                Ok(url) if !url.is_empty() => Some(url),
                // An explicit request for postgres that cannot be honoured is an error.
                _ if args.backend == BackendChoice::Postgres => {
                    eprintln!("error: --backend postgres needs {POSTGRES_URL_ENV}");
                    failed = true;
                    continue;
                }
                _ => {
                    println!("postgres: skipped ({POSTGRES_URL_ENV} unset)");
                    continue;
                }
            },
        };
        match bench_backend(&runtime, &args, backend, base_url.as_deref()) {
            Ok(results) => {
                print_table(backend, args.connections, &results);
                // Figures without a single successful request are meaningless.
                for r in results.iter().filter(|r| r.requests == 0) {
                    eprintln!(
                        "error: {}: {}: no successful requests ({} errors)",
                        backend.name(),
                        r.scenario.name(),
                        r.errors
                    );
                    failed = true;
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e}", backend.name());
                failed = true;
            }
        }
    }

    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendChoice {
    Sqlite,
    Postgres,
    All,
}

impl BackendChoice {
    fn includes(self, backend: Backend) -> bool {
        matches!(
            (self, backend),
            (Self::All, _) | (Self::Sqlite, Backend::Sqlite) | (Self::Postgres, Backend::Postgres)
        )
    }
}

#[derive(Debug)]
struct Args {
    seconds: u64,
    connections: usize,
    backend: BackendChoice,
}

impl Args {
    /// Hand-rolled so that the flags cargo adds (e.g. `--bench`) are ignored.
    fn parse(mut raw: impl Iterator<Item = String>) -> Result<Self> {
        let mut args = Self {
            seconds: 10,
            connections: 64,
            backend: BackendChoice::All,
        };
        while let Some(arg) = raw.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            if !matches!(flag.as_str(), "--seconds" | "--connections" | "--backend") {
                continue;
            }
            let value = match inline.or_else(|| raw.next()) {
                Some(value) => value,
                None => return Err(format!("{flag} needs a value").into()),
            };
            match flag.as_str() {
                "--seconds" => args.seconds = parse_positive(&flag, &value)?,
                "--connections" => args.connections = parse_positive(&flag, &value)?,
                _ => {
                    args.backend = match value.as_str() {
                        "sqlite" => BackendChoice::Sqlite,
                        "postgres" => BackendChoice::Postgres,
                        "all" => BackendChoice::All,
                        other => return Err(format!("unknown backend {other:?}").into()),
                    }
                }
            }
        }
        Ok(args)
    }
}

fn parse_positive<T>(flag: &str, value: &str) -> Result<T>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    match value.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("{flag} expects a positive integer, got {value:?}").into()),
    }
}

// ---------------------------------------------------------------------------
// Backend preparation and server lifecycle
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

fn bench_backend(
    runtime: &Runtime,
    args: &Args,
    backend: Backend,
    postgres_base_url: Option<&str>,
) -> Result<Vec<ScenarioResult>> {
    // Guards are declared in this order so that the server is stopped before
    // its data dir and database are removed.
    let database = postgres_base_url
        .map(PostgresDatabase::create)
        .transpose()?;
    let data_dir = TempDir::create()?;
    let env = ServerEnv {
        data_dir: &data_dir.0,
        database_url: database.as_ref().map(|db| db.url.as_str()),
        listen: free_port()?,
    };

    eprintln!(
        "{}: preparing data in {}",
        backend.name(),
        env.data_dir.display()
    );
    env.run(&["migrate"])?;
    env.run(&["domain", "add", DOMAIN])?;
    let account = format!("{USERNAME}@{DOMAIN}");
    env.run(&["account", "add", &account, "--password", PASSWORD])?;

    let mut server = env.spawn_server()?;
    wait_healthy(runtime, env.listen, &mut server.0)?;

    let mut results = Vec::new();
    for scenario in [Scenario::Bare, Scenario::Digest] {
        eprintln!(
            "{}: {}: warm-up {} s, then {} s with {} connections",
            backend.name(),
            scenario.name(),
            WARM_UP.as_secs(),
            args.seconds,
            args.connections
        );
        let result = runtime.block_on(run_scenario(
            env.listen,
            scenario,
            args.connections,
            Duration::from_secs(args.seconds),
        ));
        // A crashed server is the likely cause; say so rather than just "connection refused".
        let result = result.map_err(|e| match server.0.try_wait() {
            Ok(Some(status)) => format!("{e} (server exited: {status})").into(),
            _ => e,
        })?;
        results.push(result);
    }
    Ok(results)
}

/// Environment shared by every `sipsettings` invocation for one backend.
struct ServerEnv<'a> {
    data_dir: &'a Path,
    /// `None` selects the default SQLite file inside the data dir.
    database_url: Option<&'a str>,
    listen: SocketAddr,
}

impl ServerEnv<'_> {
    fn command(&self) -> Command {
        let mut cmd = Command::new(SERVER_BIN);
        cmd.env("SIPSETTINGS_DATA_DIR", self.data_dir)
            .env("SIPSETTINGS_LISTEN", self.listen.to_string())
            .env("SIPSETTINGS_TLS_LISTEN", "")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        match self.database_url {
            Some(url) => cmd.env("SIPSETTINGS_DATABASE_URL", url),
            // A value inherited from the caller's shell would hijack the SQLite run.
            None => cmd.env_remove("SIPSETTINGS_DATABASE_URL"),
        };
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        let output = self
            .command()
            .args(args)
            .output()
            .with_context(|| format!("cannot run {SERVER_BIN}"))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "`sipsettings {}` failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }

    fn spawn_server(&self) -> Result<ServerProcess> {
        let child = self
            .command()
            .arg("serve")
            // Server logs go to stderr so stdout carries only the results table.
            .stdout(Stdio::from(std::io::stderr()))
            .spawn()
            .with_context(|| format!("cannot start {SERVER_BIN} serve"))?;
        Ok(ServerProcess(child))
    }
}

/// Kills the server on drop, including on early returns.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_healthy(runtime: &Runtime, addr: SocketAddr, server: &mut Child) -> Result<()> {
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    loop {
        if let Some(status) = server.try_wait()? {
            return Err(format!("server exited ({status}) before becoming healthy").into());
        }
        let probe = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), probe_status(addr, "/health")).await
        });
        if let Ok(Ok(StatusCode::OK)) = probe {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let last = match probe {
                Ok(Ok(status)) => format!("status {status}"),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "request timed out".to_owned(),
            };
            return Err(format!(
                "server on {addr} not healthy after {} s (last: {last})",
                HEALTH_TIMEOUT.as_secs()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn probe_status(addr: SocketAddr, path: &str) -> Result<StatusCode> {
    let mut conn = Connection::open(addr).await?;
    let request = conn.request(path).body(Empty::new())?;
    let (status, _) = conn.send(request).await?;
    Ok(status)
}

/// Reserves a port the server can listen on; a small race is acceptable here.
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a free port")?;
    Ok(listener.local_addr()?)
}

/// A data directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<Self> {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sipsettings-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throw-away PostgreSQL database, dropped on drop.
struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    fn create(admin_url: &str) -> Result<Self> {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let name = format!("sipsettings_bench_{}_{n}", std::process::id());
        // Build the URL first so a malformed one cannot leak a created database.
        let url = with_database(admin_url, &name)?;
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!("warning: could not drop database {}: {e}", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql")?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "psql `{sql}` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )
    .into())
}

/// Replaces the database (path) part of a `postgres://` URL, keeping any query.
fn with_database(url: &str, database: &str) -> Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{POSTGRES_URL_ENV} is not a URL: {url:?}").into());
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location
        .split_once('/')
        .map_or(location, |(authority, _)| authority);
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// HTTP client plumbing
// ---------------------------------------------------------------------------

/// One keep-alive HTTP/1.1 client connection.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        // Requests are tiny; Nagle would only add latency.
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    fn request(&self, path: &str) -> hyper::http::request::Builder {
        Request::get(path).header(HOST, self.host.clone())
    }

    /// Sends a request and reads the whole body, as a real client would.
    /// Bounded by `REQUEST_TIMEOUT` so a hung server cannot stall the bench.
    async fn send(&mut self, request: Request<Empty<Bytes>>) -> Result<(StatusCode, HeaderMap)> {
        let exchange = async {
            let (parts, body) = self.sender.send_request(request).await?.into_parts();
            body.collect().await?;
            Ok::<_, hyper::Error>((parts.status, parts.headers))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(format!("no response within {} s", REQUEST_TIMEOUT.as_secs()).into()),
        }
    }
}

// ---------------------------------------------------------------------------
// Digest authentication (RFC 7616, MD5, qop=auth)
// ---------------------------------------------------------------------------

fn md5_hex(data: &str) -> String {
    hex::encode(Md5::digest(data.as_bytes()))
}

/// A server challenge being reused for successive requests on one connection.
struct DigestSession {
    ha1: String,
    ha2: String,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    nc: u32,
}

impl DigestSession {
    /// Picks the MD5 challenge among the `WWW-Authenticate` headers.
    fn from_challenge(headers: &HeaderMap) -> Option<Self> {
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(parse_digest_challenge)
            .find_map(|params| {
                let get = |key: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v.as_str())
                };
                // RFC 7616: a missing algorithm means MD5.
                let md5 = get("algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5"));
                let auth = get("qop").is_some_and(|q| q.split(',').any(|q| q.trim() == "auth"));
                if !(md5 && auth) {
                    return None;
                }
                let realm = get("realm")?.to_owned();
                Some(Self {
                    ha1: md5_hex(&format!("{USERNAME}:{realm}:{PASSWORD}")),
                    ha2: md5_hex(&format!("GET:{SETTINGS_URI}")),
                    realm,
                    nonce: get("nonce")?.to_owned(),
                    opaque: get("opaque").map(str::to_owned),
                    nc: 0,
                })
            })
    }

    /// Builds the next `Authorization` value, advancing the nonce count.
    fn next_authorization(&mut self) -> String {
        self.nc += 1;
        let nc = format!("{:08x}", self.nc);
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let response = md5_hex(&format!(
            "{}:{}:{nc}:{cnonce}:auth:{}",
            self.ha1, self.nonce, self.ha2
        ));
        let mut header = format!(
            "Digest username=\"{USERNAME}\", realm={}, nonce={}, uri=\"{SETTINGS_URI}\", \
             algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\"",
            quote(&self.realm),
            quote(&self.nonce)
        );
        if let Some(opaque) = &self.opaque {
            header.push_str(", opaque=");
            header.push_str(&quote(opaque));
        }
        header
    }
}

/// Renders a quoted-string, undoing the unescaping done while parsing.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Parses `Digest k=v, k="quoted", ...` into its parameters.
fn parse_digest_challenge(value: &str) -> Option<Vec<(String, String)>> {
    let (scheme, mut rest) = value.trim_start().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return Some(params);
        }
        let (key, after_key) = rest.split_once('=')?;
        let after_key = after_key.trim_start();
        let (value, remaining) = if let Some(quoted) = after_key.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            };
            (value, &quoted[end + 1..])
        } else {
            let end = after_key.find(',').unwrap_or(after_key.len());
            (after_key[..end].trim().to_owned(), &after_key[end..])
        };
        params.push((key.trim().to_owned(), value));
        rest = remaining;
    }
}

// ---------------------------------------------------------------------------
// Load generation
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Bare,
    Digest,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Digest => "digest",
        }
    }
}

/// Shared timeline: requests started in `[measure_from, end)` are counted.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

#[derive(Default)]
struct ConnStats {
    latencies_us: Vec<u64>,
    errors: u64,
}

struct ScenarioResult {
    scenario: Scenario,
    /// Successful (200) requests in the measurement window.
    requests: usize,
    requests_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    errors: u64,
}

async fn run_scenario(
    addr: SocketAddr,
    scenario: Scenario,
    connections: usize,
    duration: Duration,
) -> Result<ScenarioResult> {
    let start = Instant::now();
    let window = Window {
        measure_from: start + WARM_UP,
        end: start + WARM_UP + duration,
    };
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(drive_connection(addr, scenario, window)))
        .collect();

    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let stats = task.await??;
        latencies.extend(stats.latencies_us);
        errors += stats.errors;
    }
    latencies.sort_unstable();
    Ok(ScenarioResult {
        scenario,
        requests: latencies.len(),
        requests_per_sec: latencies.len() as f64 / duration.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        errors,
    })
}

/// Issues requests back to back on one connection until the window closes.
async fn drive_connection(
    addr: SocketAddr,
    scenario: Scenario,
    window: Window,
) -> Result<ConnStats> {
    let mut stats = ConnStats::default();
    let mut conn = Connection::open(addr).await?;
    let mut digest: Option<DigestSession> = None;
    let path = match scenario {
        Scenario::Bare => "/health",
        Scenario::Digest => SETTINGS_URI,
    };

    while Instant::now() < window.end {
        // The server may close a keep-alive connection; that is not a request error.
        if conn.sender.ready().await.is_err() {
            conn = Connection::open(addr).await?;
            digest = None;
        }
        if scenario == Scenario::Digest && digest.is_none() {
            digest = Some(challenge(&mut conn).await?);
        }

        let mut request = conn.request(path);
        if let Some(session) = &mut digest {
            request = request.header(AUTHORIZATION, session.next_authorization());
        }
        let request = request.body(Empty::new())?;

        let started = Instant::now();
        let result = conn.send(request).await;
        let elapsed = started.elapsed();
        let counted = started >= window.measure_from && started < window.end;

        match result {
            Ok((StatusCode::OK, _)) => {
                if counted {
                    stats.latencies_us.push(elapsed.as_micros() as u64);
                }
            }
            Ok((StatusCode::UNAUTHORIZED, _)) if scenario == Scenario::Digest => {
                // A rejected first use of a fresh nonce means the credentials
                // are wrong, not that the nonce went stale.
                if digest.as_ref().is_some_and(|s| s.nc == 1) && counted {
                    stats.errors += 1;
                }
                digest = None;
            }
            Ok(_) => {
                if counted {
                    stats.errors += 1;
                }
            }
            Err(_) => {
                if counted {
                    stats.errors += 1;
                }
                conn = Connection::open(addr).await?;
                digest = None;
            }
        }
    }
    Ok(stats)
}

/// Sends an unauthenticated request to obtain a fresh nonce.
async fn challenge(conn: &mut Connection) -> Result<DigestSession> {
    let request = conn.request(SETTINGS_URI).body(Empty::new())?;
    match conn.send(request).await? {
        (StatusCode::UNAUTHORIZED, headers) => DigestSession::from_challenge(&headers)
            .ok_or_else(|| "401 without a usable Digest MD5 qop=auth challenge".into()),
        (status, _) => {
            Err(format!("expected 401 challenge for {SETTINGS_URI}, got {status}").into())
        }
    }
}

/// Nearest-rank percentile of sorted microsecond samples, in milliseconds.
fn percentile_ms(sorted_us: &[u64], pct: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = (pct / 100.0 * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    Some(sorted_us[index] as f64 / 1000.0)
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

fn print_table(backend: Backend, connections: usize, results: &[ScenarioResult]) {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "{:<10}{:<10}{:<7}{:<10}{:<8}{:<8}errors",
        "backend", "scenario", "conns", "req/s", "p50_ms", "p99_ms"
    );
    for r in results {
        println!(
            "{:<10}{:<10}{:<7}{:<10}{:<8}{:<8}{}",
            backend.name(),
            r.scenario.name(),
            connections,
            format!("{:.0}", r.requests_per_sec),
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.errors
        );
    }
    let rps = |scenario| {
        results
            .iter()
            .find(|r| r.scenario == scenario)
            .map(|r| r.requests_per_sec)
    };
    match (rps(Scenario::Digest), rps(Scenario::Bare)) {
        (Some(digest), Some(bare)) if bare > 0.0 => {
            println!(
                "{:<10}ratio digest/bare = {:.2}",
                backend.name(),
                digest / bare
            );
        }
        _ => println!("{:<10}ratio digest/bare = n/a", backend.name()),
    }
}

// ---------------------------------------------------------------------------
// Small error helper
// ---------------------------------------------------------------------------

/// Adds a human-readable prefix to errors, like `anyhow::Context`.
trait Context<T> {
    fn context(self, what: &str) -> Result<T>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}").into())
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| format!("{}: {e}", what()).into())
    }
}
