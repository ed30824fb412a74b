//! Helpers shared by the benchmark programs in `benches/`: command line, data
//! sets and databases that clean up after themselves, the `sipsettings`
//! server process, a keep-alive HTTP/1.1 client with Digest authentication and
//! a closed-loop load driver.
//!
//! Each bench includes this file with `mod common;`; cargo does not build a
//! subdirectory's `mod.rs` as a bench target of its own.

// Every bench is compiled as a crate of its own and uses a different subset of
// these helpers, so what one bench leaves unused is not dead code.
#![allow(dead_code)]

use std::error::Error;
use std::fmt::Display;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

pub type BoxError = Box<dyn Error + Send + Sync>;
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_sipsettings");
pub const POSTGRES_URL_ENV: &str = "SIPSETTINGS_TEST_POSTGRES_URL";

/// The domain `Fixture` creates, and the password of the bench accounts.
pub const DOMAIN: &str = "example.com";
pub const PASSWORD: &str = "benchpass";

/// Requests started this long after a load run begins are the first counted.
pub const WARM_UP: Duration = Duration::from_secs(2);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Distinguishes the temp dirs / databases of one bench process.
static UNIQUE: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    All,
}

impl BackendChoice {
    /// The value of `--backend`.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" => Ok(Self::Postgres),
            "all" => Ok(Self::All),
            other => Err(format!("unknown backend {other:?}").into()),
        }
    }

    pub fn includes(self, backend: Backend) -> bool {
        matches!(
            (self, backend),
            (Self::All, _) | (Self::Sqlite, Backend::Sqlite) | (Self::Postgres, Backend::Postgres)
        )
    }
}

/// The flags of the load benches (`settings`, `journal`).
#[derive(Debug)]
pub struct Args {
    pub seconds: u64,
    pub connections: usize,
    pub backend: BackendChoice,
}

impl Args {
    /// Hand-rolled so that the flags cargo adds (e.g. `--bench`) are ignored.
    pub fn parse(
        mut raw: impl Iterator<Item = String>,
        default_connections: usize,
    ) -> Result<Self> {
        let mut args = Self {
            seconds: 10,
            connections: default_connections,
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
                _ => args.backend = BackendChoice::parse(&value)?,
            }
        }
        Ok(args)
    }
}

pub fn parse_positive<T>(flag: &str, value: &str) -> Result<T>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    match value.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("{flag} expects a positive integer, got {value:?}").into()),
    }
}

/// The parsed arguments, or `None` after printing the error and `usage`.
pub fn parse_or_usage<T>(parsed: Result<T>, usage: &str) -> Option<T> {
    match parsed {
        Ok(args) => Some(args),
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("usage: {usage}");
            None
        }
    }
}

/// A multi-threaded tokio runtime, or `None` after printing why not.
pub fn runtime() -> Option<Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start tokio runtime: {e}");
            None
        }
    }
}

/// `main` of a load bench (`name`: the usage line, temp dir and database
/// names): parses [`Args`] (`--connections` defaults to
/// `default_connections`), then for each selected backend (see
/// [`run_backends`]) prepares a [`Fixture`] whose server runs with
/// `server_env`, hands it to `bench` and reports what that measured with
/// `print` and [`all_succeeded`].
pub fn load_bench_main<S>(
    name: &str,
    default_connections: usize,
    server_env: &[(&'static str, &str)],
    mut bench: impl FnMut(&Runtime, &Args, Fixture) -> Result<Vec<Measured<S>>>,
    print: impl Fn(Backend, &Args, &[Measured<S>]),
) -> ExitCode {
    let usage = format!("{name} [--seconds N] [--connections N] [--backend sqlite|postgres|all]");
    let parsed = Args::parse(std::env::args().skip(1), default_connections);
    let Some(args) = parse_or_usage(parsed, &usage) else {
        return ExitCode::FAILURE;
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    run_backends(args.backend, |backend, base_url| {
        let fixture = Fixture::create(name, backend, base_url, server_env)?;
        let results = bench(&runtime, &args, fixture)?;
        print(backend, &args, &results);
        Ok(all_succeeded(backend, &results))
    })
}

/// Runs `bench` for each backend `choice` selects, with the PostgreSQL admin
/// URL from `POSTGRES_URL_ENV` for PostgreSQL (skipped when that is unset,
/// unless PostgreSQL alone was asked for). `bench` returns `Ok(false)` when it
/// has reported a failure itself; an `Err` is reported here.
pub fn run_backends(
    choice: BackendChoice,
    mut bench: impl FnMut(Backend, Option<&str>) -> Result<bool>,
) -> ExitCode {
    let mut failed = false;
    for backend in Backend::ALL {
        if !choice.includes(backend) {
            continue;
        }
        let base_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => match std::env::var(POSTGRES_URL_ENV) {
                Ok(url) if !url.is_empty() => Some(url),
                // An explicit request for postgres that cannot be honoured is an error.
                _ if choice == BackendChoice::Postgres => {
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
        match bench(backend, base_url.as_deref()) {
            Ok(ok) => failed |= !ok,
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
// Backend preparation and server lifecycle
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const ALL: [Self; 2] = [Self::Sqlite, Self::Postgres];

    /// Both backends when `POSTGRES_URL_ENV` is set, else SQLite alone.
    pub fn available() -> Vec<Self> {
        match std::env::var(POSTGRES_URL_ENV) {
            Ok(v) if !v.is_empty() => Self::ALL.to_vec(),
            _ => vec![Self::Sqlite],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A fresh data set for one backend: a data dir and, for PostgreSQL, a
/// database of its own, both migrated, with `DOMAIN` added; removed on drop.
pub struct Fixture {
    pub backend: Backend,
    pub env: ServerEnv,
    /// Direct access to the fixture's database.
    pub sql: SqlShell,
    // Fields drop in declaration order: the data dir before the database.
    // A server started from `env` must be dropped before the fixture.
    data_dir: TempDir,
    database: Option<PostgresDatabase>,
}

impl Fixture {
    /// `tag` names the bench in the temp dir and database names; `extra_env`
    /// is set for every `sipsettings` invocation.
    pub fn create(
        tag: &str,
        backend: Backend,
        postgres_base_url: Option<&str>,
        extra_env: &[(&'static str, &str)],
    ) -> Result<Self> {
        let database = postgres_base_url
            .map(|url| PostgresDatabase::create(url, tag))
            .transpose()?;
        let data_dir = TempDir::create(tag)?;
        let env = ServerEnv {
            data_dir: data_dir.0.clone(),
            database_url: database.as_ref().map(|db| db.url.clone()),
            listen: free_port()?,
            extra_env: extra_env
                .iter()
                .map(|&(key, value)| (key, Some(value.to_owned())))
                .collect(),
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
        Ok(Self {
            backend,
            env,
            sql,
            data_dir,
            database,
        })
    }

    /// Adds `user@DOMAIN` with `PASSWORD` for each user.
    pub fn add_accounts(&self, users: &[&str]) -> Result<()> {
        for user in users {
            let account = format!("{user}@{DOMAIN}");
            self.env
                .run(&["account", "add", &account, "--password", PASSWORD])?;
        }
        Ok(())
    }

    /// Starts `sipsettings serve` and waits until it answers `/health`.
    pub fn start_server(&self, runtime: &Runtime) -> Result<ServerProcess> {
        let mut server = self.env.spawn_server()?;
        wait_healthy(runtime, self.env.listen, &mut server.0)?;
        Ok(server)
    }

    /// Drives `workload` at `server` (started from this fixture) as `args`
    /// say, after announcing it as `label` on stderr.
    pub fn measure<W: Workload>(
        &self,
        runtime: &Runtime,
        server: &mut ServerProcess,
        args: &Args,
        label: &str,
        workload: W,
    ) -> Result<LoadResult> {
        eprintln!(
            "{}: {label}: warm-up {} s, then {} s with {} connections",
            self.backend.name(),
            WARM_UP.as_secs(),
            args.seconds,
            args.connections
        );
        let result = runtime.block_on(run_load(
            self.env.listen,
            Arc::new(workload),
            args.connections,
            Duration::from_secs(args.seconds),
        ));
        // A crashed server is the likely cause; say so rather than just "connection refused".
        result.map_err(|e| match server.0.try_wait() {
            Ok(Some(status)) => format!("{e} (server exited: {status})").into(),
            _ => e,
        })
    }
}

/// Environment shared by every `sipsettings` invocation for one data set.
pub struct ServerEnv {
    pub data_dir: PathBuf,
    /// `None` selects the default SQLite file inside the data dir.
    pub database_url: Option<String>,
    pub listen: SocketAddr,
    /// Further variables to set (`Some`) or remove (`None`).
    pub extra_env: Vec<(&'static str, Option<String>)>,
}

impl ServerEnv {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(SERVER_BIN);
        cmd.env("SIPSETTINGS_DATA_DIR", &self.data_dir)
            .env("SIPSETTINGS_LISTEN", self.listen.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        match &self.database_url {
            Some(url) => cmd.env("SIPSETTINGS_DATABASE_URL", url),
            // A value inherited from the caller's shell would hijack the SQLite run.
            None => cmd.env_remove("SIPSETTINGS_DATABASE_URL"),
        };
        for (key, value) in &self.extra_env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Result<()> {
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

    pub fn spawn_server(&self) -> Result<ServerProcess> {
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
pub struct ServerProcess(pub Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_healthy(runtime: &Runtime, addr: SocketAddr, server: &mut Child) -> Result<()> {
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

pub async fn probe_status(addr: SocketAddr, path: &str) -> Result<StatusCode> {
    let mut conn = Connection::open(addr).await?;
    let request = conn.request(Method::GET, path).body(Full::default())?;
    let response = conn.send(request).await?;
    Ok(response.status)
}

/// Reserves a port the server can listen on; a small race is acceptable here.
pub fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a free port")?;
    Ok(listener.local_addr()?)
}

/// A data directory `sipsettings-bench-<tag>-…` removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn create(tag: &str) -> Result<Self> {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "sipsettings-bench-{tag}-{}-{n}",
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

/// A throw-away PostgreSQL database `sipsettings_bench_<tag>_…`, dropped on drop.
pub struct PostgresDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PostgresDatabase {
    pub fn create(admin_url: &str, tag: &str) -> Result<Self> {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let name = format!("sipsettings_bench_{tag}_{}_{n}", std::process::id());
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
pub enum SqlShell {
    Sqlite(PathBuf),
    /// The database URL.
    Postgres(String),
}

impl SqlShell {
    /// Runs `sql` (possibly several statements) and returns its trimmed output:
    /// unaligned, without headers, so a single value comes back bare.
    pub fn query(&self, sql: &str) -> Result<String> {
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

/// Keeps error messages readable when they quote long SQL or bodies.
pub fn abbreviate(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Replaces the database (path) part of a `postgres://` URL, keeping any query.
pub fn with_database(url: &str, database: &str) -> Result<String> {
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
pub struct Connection {
    pub sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Result<Self> {
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

    pub fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
    }

    /// Sends a request and reads the whole body, as a real client would.
    /// Bounded by `REQUEST_TIMEOUT` so a hung server cannot stall the bench.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Response> {
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

pub fn md5_hex(data: &str) -> String {
    hex::encode(Md5::digest(data.as_bytes()))
}

/// A server challenge being reused for successive requests on one connection,
/// all with the same user, method and URI.
pub struct DigestSession {
    username: String,
    uri: String,
    ha1: String,
    ha2: String,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    /// Nonce count of the last `Authorization` built; 1 on the first use.
    pub nc: u32,
}

impl DigestSession {
    /// Picks the MD5 `qop=auth` challenge among `challenges` (values of
    /// `WWW-Authenticate`) to send `method uri` as `username`.
    pub fn from_challenges<'c>(
        challenges: impl IntoIterator<Item = &'c str>,
        username: &str,
        password: &str,
        method: &Method,
        uri: &str,
    ) -> Option<Self> {
        challenges
            .into_iter()
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
                    username: username.to_owned(),
                    uri: uri.to_owned(),
                    ha1: md5_hex(&format!("{username}:{realm}:{password}")),
                    ha2: md5_hex(&format!("{method}:{uri}")),
                    realm,
                    nonce: get("nonce")?.to_owned(),
                    opaque: get("opaque").map(str::to_owned),
                    nc: 0,
                })
            })
    }

    /// Builds the next `Authorization` value, advancing the nonce count.
    pub fn next_authorization(&mut self) -> String {
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
            quote(&self.username),
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
pub fn quote(value: &str) -> String {
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
pub fn parse_digest_challenge(value: &str) -> Option<Vec<(String, String)>> {
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

/// Sends an unauthenticated `method uri` to obtain a fresh nonce for `username`.
pub async fn challenge(
    conn: &mut Connection,
    username: &str,
    password: &str,
    method: &Method,
    uri: &str,
) -> Result<DigestSession> {
    let request = conn.request(method.clone(), uri).body(Full::default())?;
    let response = conn.send(request).await?;
    if response.status != StatusCode::UNAUTHORIZED {
        return Err(format!(
            "expected 401 challenge for {method} {uri}, got {}",
            response.status
        )
        .into());
    }
    let challenges = response
        .headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    DigestSession::from_challenges(challenges, username, password, method, uri)
        .ok_or_else(|| "401 without a usable Digest MD5 qop=auth challenge".into())
}

// ---------------------------------------------------------------------------
// Load generation
// ---------------------------------------------------------------------------

/// One kind of request, sent back to back on every connection by [`run_load`].
pub trait Workload: Send + Sync + 'static {
    fn method(&self) -> Method;

    fn uri(&self) -> &str;

    /// Username and password for Digest authentication; `None` sends the
    /// requests without.
    fn credentials(&self) -> Option<(&str, &str)>;

    /// Content type and body of request number `seq` (counting from 1) on
    /// connection `conn_index`; `None` for an empty body.
    fn body(&self, _conn_index: usize, _seq: u64) -> Option<(&'static str, Bytes)> {
        None
    }

    /// Checks that a 200 answer carries what was asked for.
    fn check(&self, _body: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Shared timeline: requests started in `[measure_from, end)` are counted.
#[derive(Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub end: Instant,
}

#[derive(Default)]
pub struct ConnStats {
    pub latencies_us: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl ConnStats {
    pub fn error(&mut self, counted: bool, what: impl FnOnce() -> String) {
        if counted {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = Some(what());
            }
        }
    }
}

/// The figures of one [`run_load`].
pub struct LoadResult {
    /// Successful (200, checked) requests in the measurement window.
    pub calls: usize,
    pub calls_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Drives `workload` with `connections` keep-alive connections for
/// `WARM_UP`, then measures it for `duration`.
pub async fn run_load<W: Workload>(
    addr: SocketAddr,
    workload: Arc<W>,
    connections: usize,
    duration: Duration,
) -> Result<LoadResult> {
    let start = Instant::now();
    let window = Window {
        measure_from: start + WARM_UP,
        end: start + WARM_UP + duration,
    };
    let tasks: Vec<_> = (0..connections)
        .map(|i| tokio::spawn(drive_connection(addr, Arc::clone(&workload), i, window)))
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
    Ok(LoadResult {
        calls: latencies.len(),
        calls_per_sec: latencies.len() as f64 / duration.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        errors,
        first_error,
    })
}

/// Issues requests back to back on one connection until the window closes.
async fn drive_connection<W: Workload>(
    addr: SocketAddr,
    workload: Arc<W>,
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
        let method = workload.method();
        let mut authorization = None;
        let mut first_use = false;
        if let Some((username, password)) = workload.credentials() {
            let mut session = match digest.take() {
                Some(session) => session,
                None => challenge(&mut conn, username, password, &method, workload.uri()).await?,
            };
            authorization = Some(session.next_authorization());
            first_use = session.nc == 1;
            digest = Some(session);
        }
        seq += 1;
        let mut request = conn.request(method, workload.uri());
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let body = match workload.body(conn_index, seq) {
            Some((content_type, body)) => {
                request = request.header(CONTENT_TYPE, content_type);
                Full::new(body)
            }
            None => Full::default(),
        };
        let request = request.body(body)?;

        let started = Instant::now();
        let result = conn.send(request).await;
        let elapsed = started.elapsed();
        let counted = started >= window.measure_from && started < window.end;

        match result {
            Ok(response) if response.status == StatusCode::OK => {
                match workload.check(&response.body) {
                    Ok(()) if counted => stats.latencies_us.push(elapsed.as_micros() as u64),
                    Ok(()) => {}
                    Err(e) => stats.error(counted, || e),
                }
            }
            Ok(response) if response.status == StatusCode::UNAUTHORIZED && digest.is_some() => {
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

/// Nearest-rank percentile of sorted microsecond samples, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], pct: f64) -> Option<f64> {
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

/// A latency for a results table: two decimals, `-` without samples.
pub fn fmt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// What one workload of a load bench measured; `scenario` is whatever the
/// bench needs besides `label` to report it.
pub struct Measured<S> {
    pub label: &'static str,
    pub scenario: S,
    pub load: LoadResult,
}

/// Reports each result without a single successful request (its figures are
/// meaningless); true when there is none.
pub fn all_succeeded<S>(backend: Backend, results: &[Measured<S>]) -> bool {
    let mut ok = true;
    for r in results.iter().filter(|r| r.load.calls == 0) {
        eprintln!(
            "error: {}: {}: no successful requests ({} errors)",
            backend.name(),
            r.label,
            r.load.errors
        );
        ok = false;
    }
    ok
}

// ---------------------------------------------------------------------------
// Small error helper
// ---------------------------------------------------------------------------

/// Adds a human-readable prefix to errors, like `anyhow::Context`.
pub trait Context<T> {
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

/// Runs `f` with an in-process server configuration over a fresh store of `backend`: a temp
/// data dir and, for PostgreSQL, a database of its own (both removed after `f` returns, so `f`
/// must close the store first).
pub fn with_fresh_store<T>(
    backend: Backend,
    tag: &str,
    f: impl FnOnce(&sipsettings::config::Config) -> Result<T>,
) -> Result<T> {
    let dir = tempfile::tempdir()?;
    let mut cfg = sipsettings::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..sipsettings::config::Config::default()
    };
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let admin = std::env::var(POSTGRES_URL_ENV)?;
            Some(PostgresDatabase::create(&admin, tag)?)
        }
    };
    if let Some(db) = &database {
        cfg.database_url = sipsettings::config::Secret::new(db.url.clone());
    }
    f(&cfg)
}
