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

use std::error::Error;
use std::fmt::Display;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const SERVER_BIN: &str = env!("CARGO_BIN_EXE_sipsettings");
const POSTGRES_URL_ENV: &str = "SIPSETTINGS_TEST_POSTGRES_URL";

const DOMAIN: &str = "example.com";
const PASSWORD: &str = "benchpass";
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
                "usage: journal [--seconds N] [--connections N] [--backend sqlite|postgres|all]"
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
                for r in results.iter().filter(|r| r.calls == 0) {
                    eprintln!(
                        "error: {}: {}: no successful requests ({} errors)",
                        backend.name(),
                        r.label,
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
            connections: 8,
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
    let sql = match &database {
        Some(db) => SqlShell::Postgres(db.url.clone()),
        None => SqlShell::Sqlite(data_dir.0.join("sipsettings.db")),
    };

    eprintln!(
        "{}: preparing data in {}",
        backend.name(),
        env.data_dir.display()
    );
    env.run(&["migrate"])?;
    env.run(&["domain", "add", DOMAIN])?;
    for user in [PUT_USER, SMALL_USER, BIG_USER] {
        let account = format!("{user}@{DOMAIN}");
        env.run(&["account", "add", &account, "--password", PASSWORD])?;
    }
    let small_last = fill_journal(&sql, backend, SMALL_USER, SMALL_ENTRIES)?;
    let big_last = fill_journal(&sql, backend, BIG_USER, BIG_ENTRIES)?;
    if backend == Backend::Postgres {
        // What autovacuum would soon do after such a bulk load; without it the
        // planner would guess from an empty table and the figures would drift
        // when autovacuum kicks in mid-run.
        sql.query("ANALYZE journal_entries; ANALYZE accounts")?;
    }

    let mut server = env.spawn_server()?;
    wait_healthy(runtime, env.listen, &mut server.0)?;

    let scenarios = [
        Scenario::get("get 1k", SMALL_USER, small_last),
        Scenario::get("get 1M", BIG_USER, big_last),
        Scenario::put("put", PUT_USER),
    ];
    let mut results = Vec::new();
    for scenario in scenarios {
        eprintln!(
            "{}: {}: warm-up {} s, then {} s with {} connections",
            backend.name(),
            scenario.label,
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
        if let Some(e) = &result.first_error {
            eprintln!(
                "{}: {}: {} errors, first: {e}",
                backend.name(),
                result.label,
                result.errors
            );
        }
        results.push(result);
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
            .env(
                "SIPSETTINGS_JOURNAL__MAX_ENTRIES_PER_ACCOUNT",
                MAX_ENTRIES_PER_ACCOUNT,
            )
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
    let request = conn.request(Method::GET, path).body(Full::default())?;
    let response = conn.send(request).await?;
    Ok(response.status)
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
        let path = std::env::temp_dir().join(format!(
            "sipsettings-bench-journal-{}-{n}",
            std::process::id()
        ));
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
        let name = format!("sipsettings_bench_journal_{}_{n}", std::process::id());
        // Build the URL first so a malformed one cannot leak a created database.
        let url = with_database(admin_url, &name)?;
        SqlShell::Postgres(admin_url.to_owned()).query(&format!("CREATE DATABASE {name}"))?;
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
        if let Err(e) = SqlShell::Postgres(self.admin_url.clone()).query(&sql) {
            eprintln!("warning: could not drop database {}: {e}", self.name);
        }
    }
}

/// Direct database access through the command-line clients.
enum SqlShell {
    Sqlite(PathBuf),
    Postgres(String),
}

impl SqlShell {
    /// Runs `sql` (possibly several statements) and returns its trimmed output:
    /// unaligned, without headers, so a single value comes back bare.
    fn query(&self, sql: &str) -> Result<String> {
        let (tool, mut cmd) = match self {
            Self::Sqlite(path) => {
                let mut cmd = Command::new("sqlite3");
                cmd.args(["-batch", "-bail", "-noheader", "-list"])
                    .arg(path)
                    .arg(sql);
                ("sqlite3", cmd)
            }
            Self::Postgres(url) => {
                let mut cmd = Command::new("psql");
                cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url])
                    .args(["-c", sql]);
                ("psql", cmd)
            }
        };
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {tool}"))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned());
        }
        Err(format!(
            "{tool} `{}` failed ({}): {}",
            abbreviate(sql),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into())
    }
}

/// Keeps error messages readable when they quote long SQL.
fn abbreviate(sql: &str) -> String {
    const MAX: usize = 120;
    match sql.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &sql[..end]),
        None => sql.to_owned(),
    }
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
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        // Requests are small; Nagle would only add latency.
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
    }

    /// Sends a request and reads the whole body, as a real client would.
    /// Bounded by `REQUEST_TIMEOUT` so a hung server cannot stall the bench.
    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Response> {
        let exchange = async {
            let (parts, body) = self.sender.send_request(request).await?.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
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

/// A server challenge being reused for successive requests on one connection,
/// all with the same user, method and URI.
struct DigestSession {
    username: &'static str,
    uri: String,
    ha1: String,
    ha2: String,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    nc: u32,
}

impl DigestSession {
    /// Picks the MD5 challenge among the `WWW-Authenticate` headers.
    fn from_challenge(headers: &HeaderMap, scenario: &Scenario) -> Option<Self> {
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
                    username: scenario.user,
                    uri: scenario.uri.clone(),
                    ha1: md5_hex(&format!("{}:{realm}:{PASSWORD}", scenario.user)),
                    ha2: md5_hex(&format!("{}:{}", scenario.method(), scenario.uri)),
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
            "Digest username={}, realm={}, nonce={}, uri={}, algorithm=MD5, qop=auth, \
             nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\"",
            quote(self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri)
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
enum Kind {
    /// `get_journal_entries`, expecting this many rows back.
    Get { rows: u64 },
    /// `put_journal_entries` with `ROWS_PER_PUT` rows per call.
    Put,
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

    fn method(&self) -> Method {
        match self.kind {
            Kind::Get { .. } => Method::GET,
            Kind::Put => Method::POST,
        }
    }

    /// Rows moved by one successful request.
    fn rows_per_call(&self) -> u64 {
        match self.kind {
            Kind::Get { rows } => rows,
            Kind::Put => ROWS_PER_PUT as u64,
        }
    }

    /// Builds an authenticated request; `seq` makes the client ids of puts unique per connection.
    fn request(
        &self,
        conn: &Connection,
        conn_index: usize,
        seq: u64,
        authorization: String,
    ) -> Result<Request<Full<Bytes>>> {
        let mut request = conn
            .request(self.method(), &self.uri)
            .header(AUTHORIZATION, authorization);
        let body = match self.kind {
            Kind::Get { .. } => Full::default(),
            Kind::Put => {
                request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                Full::new(Bytes::from(put_body(conn_index, seq)))
            }
        };
        Ok(request.body(body)?)
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
    first_error: Option<String>,
}

impl ConnStats {
    fn error(&mut self, counted: bool, what: impl FnOnce() -> String) {
        if counted {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = Some(what());
            }
        }
    }
}

struct ScenarioResult {
    label: &'static str,
    kind: Kind,
    /// Successful (200, checked) requests in the measurement window.
    calls: usize,
    calls_per_sec: f64,
    rows_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    errors: u64,
    first_error: Option<String>,
}

async fn run_scenario(
    addr: SocketAddr,
    scenario: Scenario,
    connections: usize,
    duration: Duration,
) -> Result<ScenarioResult> {
    let scenario = Arc::new(scenario);
    let start = Instant::now();
    let window = Window {
        measure_from: start + WARM_UP,
        end: start + WARM_UP + duration,
    };
    let tasks: Vec<_> = (0..connections)
        .map(|i| tokio::spawn(drive_connection(addr, Arc::clone(&scenario), i, window)))
        .collect();

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let stats = task.await??;
        latencies.extend(stats.latencies_us);
        errors += stats.errors;
        first_error = first_error.or(stats.first_error);
    }
    latencies.sort_unstable();
    let calls_per_sec = latencies.len() as f64 / duration.as_secs_f64();
    Ok(ScenarioResult {
        label: scenario.label,
        kind: scenario.kind,
        calls: latencies.len(),
        calls_per_sec,
        rows_per_sec: calls_per_sec * scenario.rows_per_call() as f64,
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        errors,
        first_error,
    })
}

/// Issues requests back to back on one connection until the window closes.
async fn drive_connection(
    addr: SocketAddr,
    scenario: Arc<Scenario>,
    conn_index: usize,
    window: Window,
) -> Result<ConnStats> {
    let mut stats = ConnStats::default();
    let mut conn = Connection::open(addr).await?;
    let mut digest: Option<DigestSession> = None;
    let mut seq = 0u64;

    while Instant::now() < window.end {
        // The server may close a keep-alive connection; that is not a request error.
        if conn.sender.ready().await.is_err() {
            conn = Connection::open(addr).await?;
            digest = None;
        }
        let mut session = match digest.take() {
            Some(session) => session,
            None => challenge(&mut conn, &scenario).await?,
        };
        let authorization = session.next_authorization();
        let first_use = session.nc == 1;
        digest = Some(session);
        seq += 1;
        let request = scenario.request(&conn, conn_index, seq, authorization)?;

        let started = Instant::now();
        let result = conn.send(request).await;
        let elapsed = started.elapsed();
        let counted = started >= window.measure_from && started < window.end;

        match result {
            Ok(response) if response.status == StatusCode::OK => {
                match scenario.check(&response.body) {
                    Ok(()) if counted => stats.latencies_us.push(elapsed.as_micros() as u64),
                    Ok(()) => {}
                    Err(e) => stats.error(counted, || e),
                }
            }
            Ok(response) if response.status == StatusCode::UNAUTHORIZED => {
                // A rejected first use of a fresh nonce means the credentials
                // are wrong, not that the nonce went stale.
                if first_use {
                    stats.error(counted, || "401 on the first use of a fresh nonce".into());
                }
                digest = None;
            }
            Ok(response) => stats.error(counted, || {
                format!(
                    "status {}: {}",
                    response.status,
                    abbreviate(&String::from_utf8_lossy(&response.body))
                )
            }),
            Err(e) => {
                stats.error(counted, || e.to_string());
                conn = Connection::open(addr).await?;
                digest = None;
            }
        }
    }
    Ok(stats)
}

/// Sends an unauthenticated request to obtain a fresh nonce.
async fn challenge(conn: &mut Connection, scenario: &Scenario) -> Result<DigestSession> {
    let request = conn
        .request(scenario.method(), &scenario.uri)
        .body(Full::default())?;
    let response = conn.send(request).await?;
    if response.status != StatusCode::UNAUTHORIZED {
        return Err(format!(
            "expected 401 challenge for {} {}, got {}",
            scenario.method(),
            scenario.uri,
            response.status
        )
        .into());
    }
    DigestSession::from_challenge(&response.headers, scenario)
        .ok_or_else(|| "401 without a usable Digest MD5 qop=auth challenge".into())
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
            connections,
            format!("{:.0}", r.calls_per_sec),
            format!("{:.0}", r.rows_per_sec),
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.errors
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
            .and_then(|r| r.p99_ms)
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
    if let Some(put) = results.iter().find(|r| r.kind == Kind::Put) {
        println!(
            "{:<10}put rows/s = {:.0} (target >= {PUT_TARGET_ROWS_PER_SEC:.0}{}): {}",
            backend.name(),
            put.rows_per_sec,
            if backend == Backend::Sqlite {
                ""
            } else {
                ", set for sqlite"
            },
            verdict(put.rows_per_sec >= PUT_TARGET_ROWS_PER_SEC)
        );
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
