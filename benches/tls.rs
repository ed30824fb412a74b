//! HTTPS benchmark for the `sipsettings` server (SQLite store).
//!
//! Prepares a data dir with the CLI (domain, account, `cert issue`), starts `sipsettings serve`
//! with its HTTPS listener and measures, in the same run, with the same blocking rustls (ring)
//! client threads:
//!
//! 1. `handshake/mtls`: a new connection per request — full TLS handshake (no session
//!    resumption) with the client certificate, then one `get_identity`;
//! 2. `handshake/plain`: the same without a client certificate (`get_identity` authenticated
//!    with digest: one pre-fetched nonce per thread, increasing `nc`);
//! 3. `keepalive/mtls`: one connection per thread, `get_identity` repeatedly (certificate);
//! 4. `keepalive/digest`: the same over TLS without a certificate, with digest.
//!
//! Each pair (1 and 2, 3 and 4) is measured in alternating slices (`--rounds`), and the
//! CPU time of the server and of the client process per request is reported next to the
//! rates: on a shared machine the CPU ratio is the steadier figure.
//!
//! Run with `cargo bench --bench tls -- [--seconds N] [--threads N] [--rounds N]`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use common::{DOMAIN, DigestSession, PASSWORD, Result, ServerEnv, TempDir, free_port};

const USERNAME: &str = "alice";
const ACCOUNT: &str = "alice@example.com";
const CERT_URI: &str = "/settings.phtml?action=get_identity";
const DIGEST_URI: &str = "/settings.phtml?action=get_identity&realm=example.com";

struct Args {
    seconds: u64,
    threads: usize,
    /// Each pair of scenarios is measured in this many alternating slices (mTLS, plain,
    /// mTLS, plain, …), so that a noisy moment on a shared machine hits both sides.
    rounds: u64,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        seconds: 5,
        threads: 8,
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--seconds" => a.seconds = it.next().ok_or("--seconds N")?.parse()?,
            "--threads" => a.threads = it.next().ok_or("--threads N")?.parse()?,
            "--rounds" => a.rounds = it.next().ok_or("--rounds N")?.parse::<u64>()?.max(1),
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let data_dir = TempDir::create("tls")?;
    let certs = data_dir.0.join("certs");
    let https = free_port()?;
    let env = ServerEnv {
        data_dir: data_dir.0.clone(),
        database_url: None,
        listen: free_port()?,
        extra_env: vec![
            ("SIPSETTINGS_CONFIG", None),
            ("SIPSETTINGS_TLS_LISTEN", Some(https.to_string())),
            // The bench is one client IP: never slow it down.
            ("SIPSETTINGS_THROTTLE__SLOW_AFTER", Some("1000000".into())),
            ("SIPSETTINGS_THROTTLE__MAX_FAILURES", Some("1000000".into())),
        ],
    };
    env.run(&["domain", "add", DOMAIN])?;
    env.run(&["account", "add", ACCOUNT, "--password", PASSWORD])?;
    let out = certs.display().to_string();
    env.run(&[
        "cert",
        "issue",
        ACCOUNT,
        "--out",
        &out,
        "--p12-password",
        "x",
    ])?;
    // Declared after the data dir so that it is stopped before the dir is removed.
    let mut server = env.spawn_server()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(https).is_err() {
        if let Ok(Some(s)) = server.0.try_wait() {
            return Err(format!("server exited: {s}").into());
        }
        if Instant::now() > deadline {
            return Err("server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let plain = Arc::new(client_config(&data_dir.0, None)?);
    let mtls = Arc::new(client_config(
        &data_dir.0,
        Some(&certs.join(format!("{ACCOUNT}.crt"))),
    )?);
    println!(
        "sipsettings HTTPS benchmark: SQLite, {} client threads, {} s per scenario in {} \
         alternating slices per pair, rustls/ring client, TLS 1.3, no session resumption",
        args.threads, args.seconds, args.rounds
    );
    println!(
        "{:<20} {:>10} {:>9} {:>9} {:>7} {:>14} {:>14}",
        "scenario", "req/s", "p50 ms", "p99 ms", "errors", "server CPU µs", "client CPU µs"
    );
    let server_pid = server.0.id();
    let mut rates = Vec::new();
    for pair in [
        [
            ("handshake/mtls", &mtls, true, false),
            ("handshake/plain", &plain, false, false),
        ],
        [
            ("keepalive/mtls", &mtls, true, true),
            ("keepalive/digest", &plain, false, true),
        ],
    ] {
        let mut totals = [Totals::default(), Totals::default()];
        let slice = Duration::from_secs_f64(args.seconds as f64 / args.rounds as f64);
        for _ in 0..args.rounds {
            for ((_, cfg, cert, keepalive), t) in pair.iter().zip(totals.iter_mut()) {
                let before = Cpu::read(server_pid);
                let r = scenario(https, (*cfg).clone(), *cert, *keepalive, &args, slice)?;
                t.add(r, before.since(server_pid));
            }
        }
        for ((name, ..), t) in pair.iter().zip(totals.iter_mut()) {
            let r = t.outcome();
            let per_req = |ticks: u64| -> String {
                match t.requests {
                    0 => "-".into(),
                    n => format!("{:.0}", ticks as f64 * 1e6 / CLOCK_TICKS as f64 / n as f64),
                }
            };
            println!(
                "{name:<20} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>14} {:>14}",
                r.rate,
                r.p50,
                r.p99,
                r.errors,
                per_req(t.cpu.server),
                per_req(t.cpu.client)
            );
            if r.ok == 0 {
                return Err(format!("{name}: no successful request").into());
            }
            rates.push((r.rate, t.cpu_per_request()));
        }
    }
    if let [(hm, hm_cpu), (hp, hp_cpu), (km, _), (kd, _)] = rates[..] {
        println!(
            "ratio handshake mTLS / plain TLS: {:.2} (target >= 0.8); by CPU per request \
             (server + client): {:.2}",
            hm / hp,
            hp_cpu / hm_cpu
        );
        println!("ratio keep-alive mTLS / digest:   {:.2}", km / kd);
    }
    Ok(())
}

/// Clock ticks per second of `/proc/*/stat` (USER_HZ: 100 on every Linux port in use).
const CLOCK_TICKS: u64 = 100;

/// CPU time (user + system, clock ticks) of the server process and of this client process.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: u64,
    client: u64,
}

impl Cpu {
    fn ticks(pid: &str) -> u64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0;
        };
        // Fields after the parenthesised command name; utime and stime are fields 14, 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    }

    fn read(server: u32) -> Cpu {
        Cpu {
            server: Self::ticks(&server.to_string()),
            client: Self::ticks("self"),
        }
    }

    fn since(self, server: u32) -> Cpu {
        let now = Self::read(server);
        Cpu {
            server: now.server.saturating_sub(self.server),
            client: now.client.saturating_sub(self.client),
        }
    }
}

/// One scenario's slices added up.
#[derive(Default)]
struct Totals {
    lat: Vec<u64>,
    errors: usize,
    elapsed: f64,
    /// CPU of the whole slices (warm-up included), divided by the requests of all of it.
    cpu: Cpu,
    requests: usize,
}

impl Totals {
    fn add(&mut self, s: Slice, cpu: Cpu) {
        self.lat.extend(s.lat);
        self.errors += s.errors;
        self.elapsed += s.elapsed;
        self.cpu.server += cpu.server;
        self.cpu.client += cpu.client;
        self.requests += s.requests;
    }

    fn cpu_per_request(&self) -> f64 {
        (self.cpu.server + self.cpu.client) as f64 / self.requests.max(1) as f64
    }

    fn outcome(&mut self) -> Outcome {
        self.lat.sort_unstable();
        let all = &self.lat;
        let pct = |p: f64| common::percentile_ms(all, p).unwrap_or(0.0);
        Outcome {
            rate: all.len() as f64 / self.elapsed.max(1e-9),
            p50: pct(50.0),
            p99: pct(99.0),
            ok: all.len(),
            errors: self.errors,
        }
    }
}

fn client_config(data_dir: &Path, identity: Option<&PathBuf>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(data_dir.join("ca.crt"))?)?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some(path) => {
            let pem = std::fs::read(path)?;
            let leaf = CertificateDer::pem_slice_iter(&pem)
                .next()
                .ok_or("no certificate in bundle")??;
            let key = PrivateKeyDer::from_pem_slice(&pem)?;
            builder.with_client_auth_cert(vec![leaf], key)?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.resumption = Resumption::disabled();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> Result<BufReader<Tls>> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    let conn = ClientConnection::new(cfg.clone(), ServerName::try_from("127.0.0.1")?.to_owned())?;
    let mut s = StreamOwned::new(conn, tcp);
    // Complete the handshake before the request (as a real client would).
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(BufReader::new(s))
}

/// Sends one GET and reads the response; returns (status, WWW-Authenticate challenges).
fn request(
    s: &mut BufReader<Tls>,
    uri: &str,
    auth: Option<&str>,
    close: bool,
) -> Result<(u16, Vec<String>)> {
    let mut req = format!("GET {uri} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    if close {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    s.get_mut().write_all(req.as_bytes())?;
    s.get_mut().flush()?;
    let mut line = String::new();
    s.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .ok_or("no status line")?
        .parse()?;
    let mut len = 0usize;
    let mut challenges = Vec::new();
    loop {
        line.clear();
        s.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse()?;
            } else if k.eq_ignore_ascii_case("www-authenticate") {
                challenges.push(v.trim().to_owned());
            }
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((status, challenges))
}

/// Digest state of one client thread: its own nonce (fetched on a connection of its own),
/// increasing nc.
fn fetch_digest(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> Result<DigestSession> {
    let mut s = connect(addr, cfg)?;
    let (_, challenges) = request(&mut s, DIGEST_URI, None, true)?;
    let challenges = challenges.iter().map(String::as_str);
    DigestSession::from_challenges(challenges, USERNAME, PASSWORD, &Method::GET, DIGEST_URI)
        .ok_or_else(|| "no MD5 challenge".into())
}

struct Outcome {
    rate: f64,
    p50: f64,
    p99: f64,
    ok: usize,
    errors: usize,
}

/// One measured slice of a scenario.
struct Slice {
    lat: Vec<u64>,
    errors: usize,
    elapsed: f64,
    /// Every request of the slice, warm-up included (for CPU per request).
    requests: usize,
}

fn scenario(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    cert: bool,
    keepalive: bool,
    args: &Args,
    measure: Duration,
) -> Result<Slice> {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..args.threads {
        let cfg = cfg.clone();
        let stop = stop.clone();
        let measuring = measuring.clone();
        handles.push(std::thread::spawn(
            move || -> Result<(Vec<u64>, usize, usize)> {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                let mut requests = 0usize;
                let mut digest = if cert {
                    None
                } else {
                    Some(fetch_digest(addr, &cfg)?)
                };
                let mut conn: Option<BufReader<Tls>> = None;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let result = (|| -> Result<u16> {
                        let mut s = match conn.take() {
                            Some(s) => s,
                            None => connect(addr, &cfg)?,
                        };
                        let auth = digest.as_mut().map(DigestSession::next_authorization);
                        let uri = if cert { CERT_URI } else { DIGEST_URI };
                        let (status, _) = request(&mut s, uri, auth.as_deref(), !keepalive)?;
                        if keepalive {
                            conn = Some(s);
                        }
                        Ok(status)
                    })();
                    let ok = matches!(result, Ok(200));
                    requests += 1;
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            lat.push(t.elapsed().as_micros() as u64);
                        } else {
                            errors += 1;
                        }
                    }
                    if !ok {
                        conn = None;
                    }
                }
                Ok((lat, errors, requests))
            },
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(measure);
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut out = Slice {
        lat: Vec::new(),
        errors: 0,
        elapsed,
        requests: 0,
    };
    for h in handles {
        let (lat, e, n) = h.join().map_err(|_| "client thread panicked")??;
        out.lat.extend(lat);
        out.errors += e;
        out.requests += n;
    }
    Ok(out)
}
