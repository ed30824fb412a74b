//! Operations, on the real binary: the metrics listener, logs without secrets and with
//! request ids, graceful shutdown under writes, and a PostgreSQL outage behind a TCP proxy.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{Served, free_port, run, serve};
use crate::harness::{Backing, Client, backends, init_crypto, postgres_url, read};

/// The server's answer to an unauthenticated request, turned into an `Authorization: Digest`
/// value for `method uri` (what a digest client would send next).
async fn digest_authorization(
    base: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    sha256: bool,
) -> String {
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}{uri}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let want = if sha256 {
        "algorithm=SHA-256"
    } else {
        "algorithm=MD5"
    };
    let challenge = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains(want))
        .unwrap()
        .to_owned();
    let mut prompt = digest_auth::parse(&challenge).unwrap();
    let m = if method == "POST" {
        digest_auth::HttpMethod::POST
    } else {
        digest_auth::HttpMethod::GET
    };
    let ctx = digest_auth::AuthContext::new_with_method(user, password, uri, None::<&[u8]>, m);
    prompt.respond(&ctx).unwrap().to_header_string()
}

/// `name{labels}` → value of every sample in a text exposition.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn sample(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:#?}", m.keys().collect::<Vec<_>>()))
}

/// Migrates the store and adds the operator `admin` (ADMIN, password `admin-pw`) with the CLI.
fn migrate_with_admin(bk: &Backing) {
    assert!(run(bk, &["migrate"], None).0);
    let args = [
        "operator",
        "add",
        "admin",
        "--role",
        "ADMIN",
        "--password",
        "admin-pw",
    ];
    let (ok, _, err) = run(bk, &args, None);
    assert!(ok, "{err}");
}

fn bearer_token(bk: &Backing, operator: &str) -> String {
    let (ok, out, err) = run(bk, &["operator", "token", "create", operator], None);
    assert!(ok, "{err}");
    out.trim().to_owned()
}

#[tokio::test]
async fn metrics_listener_counts_requests() {
    init_crypto();
    for b in backends() {
        let bk = Backing::new(b).await;
        migrate_with_admin(&bk);
        let mport = free_port();
        let srv = serve(
            &bk,
            &["--demo"],
            &[("SIPSETTINGS_METRICS_LISTEN", &format!("127.0.0.1:{mport}"))],
        );
        let pw = srv.demo_password();
        let base = format!("http://127.0.0.1:{}", srv.port);
        let http = reqwest::Client::new();

        // Settings: a login, a journal put of two rows, a failed login, an unknown action.
        let alice = Client::new(&base, "alice", &pw, "example.com");
        assert_eq!(alice.get("action=get_identity").await.status, 200);
        let r = alice
            .post(
                "action=put_journal_entries",
                &[
                    ("uuid", "dev-1"),
                    (
                        "data",
                        r#"[{"id":"a","data":{"x":1}},{"id":"b","data":{"x":2}}]"#,
                    ),
                ],
            )
            .await;
        assert_eq!(r.json()["success"], true, "{}", r.text);
        let wrong = Client::new(&base, "alice", "not-the-password", "example.com");
        assert_eq!(wrong.get("action=get_identity").await.status, 401);
        assert_eq!(alice.get("action=no_such_thing").await.status, 200);
        // The action may be in the body: still its canonical name, never the raw value.
        assert_eq!(
            alice.post("x=1", &[("action", "calls")]).await.json()["placed"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );

        // Operator API: Basic and Bearer, right and wrong.
        let me = http
            .get(format!("{base}/api/v1/accounts?limit=5"))
            .basic_auth("admin", Some("admin-pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let id = read(me).await.json()["items"][0]["id"].clone();
        let id = id
            .as_i64()
            .map(|i| i.to_string())
            .unwrap_or_else(|| id.as_str().unwrap().to_owned());
        let one = http
            .get(format!("{base}/api/v1/accounts/{id}"))
            .basic_auth("admin", Some("admin-pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(one.status(), 200);
        let bad_basic = http
            .get(format!("{base}/api/v1/me"))
            .basic_auth("admin", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_basic.status(), 401);
        let bad_bearer = http
            .get(format!("{base}/api/v1/me"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(bad_bearer.status(), 401);
        assert_eq!(
            http.get(format!("{base}/health"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // The public listener never serves metrics.
        let public = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(public.status(), 404);
        assert!(!read(public).await.text.contains("sipsettings_"));

        // The metrics listener serves only /metrics.
        let mbase = format!("http://127.0.0.1:{mport}");
        for path in [
            "/health",
            "/settings.phtml?action=get_identity",
            "/api/v1/me",
        ] {
            let r = http.get(format!("{mbase}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 404, "{path}");
        }
        let r = http.get(format!("{mbase}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = read(r).await;
        assert!(
            r.content_type().starts_with("text/plain; version=0.0.4"),
            "{}",
            r.content_type()
        );
        let m = samples(&r.text);
        let req = |surface: &str, action: &str, method: &str, status: u16| {
            format!(
                "sipsettings_http_requests_total{{surface=\"{surface}\",action=\"{action}\",method=\"{method}\",status=\"{status}\"}}"
            )
        };
        // First try of each client is the 401 challenge.
        assert_eq!(
            sample(&m, &req("settings", "get_identity", "GET", 200)),
            1.0
        );
        assert_eq!(
            sample(&m, &req("settings", "get_identity", "GET", 401)),
            3.0
        );
        assert_eq!(
            sample(&m, &req("settings", "put_journal_entries", "POST", 200)),
            1.0
        );
        assert_eq!(sample(&m, &req("settings", "unknown", "GET", 200)), 1.0);
        assert_eq!(
            sample(&m, &req("settings", "get_history", "POST", 200)),
            1.0
        );
        assert_eq!(sample(&m, &req("api", "/api/v1/accounts", "GET", 200)), 1.0);
        assert_eq!(
            sample(&m, &req("api", "/api/v1/accounts/{id}", "GET", 200)),
            1.0
        );
        assert_eq!(sample(&m, &req("api", "/api/v1/me", "GET", 401)), 2.0);
        assert_eq!(sample(&m, &req("health", "/health", "GET", 200)), 1.0);
        assert_eq!(sample(&m, &req("other", "unmatched", "GET", 404)), 1.0);
        // No raw paths or ids as labels.
        assert!(
            !r.text.contains(&format!("/api/v1/accounts/{id}\"")) || id == "{id}",
            "{}",
            r.text
        );
        for (kind, n) in [
            ("digest_bad_response", 1.0),
            ("operator_basic", 1.0),
            ("operator_bearer", 1.0),
            ("digest_replay", 0.0),
            ("throttled", 0.0),
        ] {
            assert_eq!(
                sample(
                    &m,
                    &format!("sipsettings_auth_failures_total{{kind=\"{kind}\"}}")
                ),
                n,
                "{kind}"
            );
        }
        assert_eq!(sample(&m, "sipsettings_journal_entries_written_total"), 2.0);
        // Latency histograms per surface: every settings request observed once.
        let settings_count = sample(
            &m,
            "sipsettings_http_request_duration_seconds_count{surface=\"settings\"}",
        );
        assert_eq!(settings_count, 7.0);
        assert_eq!(
            sample(
                &m,
                "sipsettings_http_request_duration_seconds_bucket{surface=\"settings\",le=\"+Inf\"}"
            ),
            7.0
        );
        assert!(
            sample(
                &m,
                "sipsettings_http_request_duration_seconds_sum{surface=\"api\"}"
            ) > 0.0
        );
        // Pool gauges are read at scrape time.
        assert_eq!(sample(&m, "sipsettings_store_pool_max_connections"), 16.0);
        let open = sample(&m, "sipsettings_store_pool_connections");
        let idle = sample(&m, "sipsettings_store_pool_idle_connections");
        assert!(open >= 1.0 && idle <= open, "{open} {idle}");

        // A scrape does not count itself as a request.
        let again = samples(
            &read(http.get(format!("{mbase}/metrics")).send().await.unwrap())
                .await
                .text,
        );
        assert_eq!(
            again
                .iter()
                .filter(|(k, _)| k.starts_with("sipsettings_http_requests_total"))
                .map(|(_, v)| v)
                .sum::<f64>(),
            m.iter()
                .filter(|(k, _)| k.starts_with("sipsettings_http_requests_total"))
                .map(|(_, v)| v)
                .sum::<f64>()
        );
        let logs = srv.stderr.lock().unwrap().clone();
        assert!(
            logs.contains(&format!("metrics on http://127.0.0.1:{mport}/metrics")),
            "{logs}"
        );
        drop(srv);

        // Default: no metrics listener.
        assert!(sipsettings::Config::default().metrics_listen.is_empty());
        let srv = serve(&bk, &[], &[]);
        let logs = srv.stderr.lock().unwrap().clone();
        assert!(!logs.contains("metrics on"), "{logs}");
    }
}

#[tokio::test]
async fn debug_logs_hold_no_secrets_and_carry_request_ids() {
    init_crypto();
    for b in backends() {
        let bk = Backing::new(b).await;
        assert!(run(&bk, &["migrate"], None).0);
        let op_pw = "Operator-Pw-4711";
        let (ok, _, err) = run(
            &bk,
            &[
                "operator",
                "add",
                "admin",
                "--role",
                "ADMIN",
                "--password",
                op_pw,
            ],
            None,
        );
        assert!(ok, "{err}");
        let token = bearer_token(&bk, "admin");
        let srv = serve(
            &bk,
            &["--demo"],
            &[
                ("SIPSETTINGS_LOG_FORMAT", "json"),
                ("SIPSETTINGS_LOG", "trace"),
            ],
        );
        let pw = srv.demo_password();
        let base = format!("http://127.0.0.1:{}", srv.port);
        let http = reqwest::Client::new();
        let mut secrets: Vec<String> = vec![pw.clone(), op_pw.into(), token.clone()];

        // Digest logins, right and wrong, MD5 and SHA-256, each with its header remembered.
        let uri = "/settings.phtml?action=get_identity&realm=example.com";
        for (password, sha256, want) in [
            (pw.as_str(), false, 200),
            (pw.as_str(), true, 200),
            ("Wrong-Pw-0815", false, 401),
        ] {
            let h = digest_authorization(&base, "GET", uri, "alice", password, sha256).await;
            let r = http
                .get(format!("{base}{uri}"))
                .header("authorization", &h)
                .header("x-request-id", format!("ops-req-{want}-{sha256}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), want);
            let response = h
                .split("response=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap()
                .to_owned();
            secrets.push(h.clone());
            secrets.push(response);
        }
        secrets.push("Wrong-Pw-0815".into());
        for (user, realm) in [
            ("alice", "example.com"),
            ("alice@example.com", "example.com"),
        ] {
            let input = format!("{user}:{realm}:{pw}");
            secrets.push(sipsettings::crypto::md5_hex(input.as_bytes()));
            secrets.push(sipsettings::crypto::sha256_hex(input.as_bytes()));
        }

        // Operator Basic and Bearer; account creation with a password; a password change.
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{op_pw}"))
        );
        secrets.push(basic.clone());
        let r = http
            .post(format!("{base}/api/v1/accounts"))
            .header("authorization", &basic)
            .json(&serde_json::json!({"username": "dave", "domain": "example.com", "password": "Dave-Pw-1234"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        secrets.push("Dave-Pw-1234".into());
        let id = read(r).await.json()["id"].clone();
        let id = id
            .as_i64()
            .map(|i| i.to_string())
            .unwrap_or_else(|| id.as_str().unwrap().to_owned());
        let r = http
            .put(format!("{base}/api/v1/accounts/{id}/password"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"password": "Dave-Pw-5678"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        secrets.push("Dave-Pw-5678".into());
        let r = http
            .get(format!("{base}/api/v1/me"))
            .header("authorization", "Bearer Wrong-Token-999")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        secrets.push("Wrong-Token-999".into());
        let r = http
            .get(format!("{base}/api/v1/me"))
            .basic_auth("admin", Some("Wrong-Op-Pw-42"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        secrets.push("Wrong-Op-Pw-42".into());

        // get_p12 (its password is the SIP password) and a journal put.
        let alice = Client::new(&base, "alice", &pw, "example.com");
        let r = alice
            .get(&format!("action=get_p12&password={}", urlencode(&pw)))
            .await;
        assert_eq!(r.status, 200);
        let r = alice
            .post(
                "action=put_journal_entries",
                &[
                    ("uuid", "dev-1"),
                    ("data", r#"[{"id":"a","data":{"note":"x"}}]"#),
                ],
            )
            .await;
        assert_eq!(r.json()["success"], true);

        tokio::time::sleep(Duration::from_millis(300)).await;
        let logs = format!(
            "{}\n{}",
            srv.stdout.lock().unwrap(),
            srv.stderr.lock().unwrap()
        );
        // Trace level really was on (or this test would prove nothing).
        assert!(logs.contains("\"level\":\"TRACE\""), "no trace lines");
        assert!(logs.lines().count() > 50);
        for s in &secrets {
            assert!(!s.is_empty());
            // The demo banner prints the demo password on stdout once, by design.
            let haystack = if *s == pw {
                logs.replacen(&format!("password:    {pw}"), "", 1)
                    .replace(&format!("'alice:{pw}'"), "")
            } else {
                logs.clone()
            };
            assert!(!haystack.contains(s.as_str()), "secret {s:?} in the logs");
        }

        // The request id is on every line logged while that request was handled.
        let json_lines: Vec<Value> = srv
            .stderr
            .lock()
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let failure = json_lines
            .iter()
            .find(|v| {
                v["fields"]["message"].as_str().is_some_and(|m| {
                    m.contains("auth failure") && m.contains("reason=bad_password")
                })
            })
            .expect("auth failure line");
        assert_eq!(
            failure["span"]["request_id"], "ops-req-401-false",
            "{failure}"
        );
        let in_request: Vec<&Value> = json_lines
            .iter()
            .filter(|v| {
                v["target"].as_str().is_some_and(|t| {
                    t.starts_with("tower_http::trace") || t.starts_with("sipsettings::http")
                })
            })
            .collect();
        assert!(in_request.len() > 10);
        for v in in_request {
            assert!(
                v["span"]["request_id"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "line without request id: {v}"
            );
        }
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn log_filter_from_sipsettings_log_or_rust_log() {
    let bk = Backing::new("sqlite").await;
    // SIPSETTINGS_LOG wins over RUST_LOG; a bad filter is reported, not fatal.
    let srv = serve(
        &bk,
        &[],
        &[("SIPSETTINGS_LOG", "warn"), ("RUST_LOG", "debug")],
    );
    let base = format!("http://127.0.0.1:{}", srv.port);
    reqwest::get(format!("{base}/health")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = srv.stderr.lock().unwrap().clone();
    assert!(!logs.contains("listening on"), "{logs}");
    assert!(!logs.contains("DEBUG"), "{logs}");
    drop(srv);
    let srv = serve(&bk, &[], &[("RUST_LOG", "sipsettings=debug")]);
    reqwest::get(format!(
        "http://127.0.0.1:{}/settings.phtml?action=get_identity&realm=example.com",
        srv.port
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = srv.stderr.lock().unwrap().clone();
    assert!(logs.contains("listening on"), "{logs}");
    drop(srv);
    let srv = serve(&bk, &[], &[("SIPSETTINGS_LOG", "sipsettings=nonsense[")]);
    let logs = srv.stderr.lock().unwrap().clone();
    assert!(
        logs.contains("invalid log filter in SIPSETTINGS_LOG"),
        "{logs}"
    );
    assert!(logs.contains("listening on"), "{logs}");
}

/// Sends SIGTERM to a child process.
fn sigterm(srv: &Served) {
    // The shell's builtin: no dependence on a `kill` binary being installed.
    let ok = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", srv.child.id())])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Waits (bounded) for the child to exit and returns its status and how long it took.
fn wait_exit(srv: &mut Served, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            return (st, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "serve did not exit within {limit:?}: {}",
            srv.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A POST whose headers and first half of the body are sent now, the rest later.
struct SlowPost {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowPost {
    async fn start(port: u16, uri: &str, authorization: &str, body: &str) -> SlowPost {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let head = format!(
            "POST {uri} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {authorization}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let (first, rest) = body.as_bytes().split_at(body.len() / 2);
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(first).await.unwrap();
        stream.flush().await.unwrap();
        SlowPost {
            stream,
            rest: rest.to_vec(),
        }
    }

    /// Sends the rest and reads the whole answer (the server closes after it on shutdown).
    async fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut buf = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_to_end(&mut buf)).await;
        String::from_utf8_lossy(&buf).into_owned()
    }
}

fn journal_body(uuid: &str, marker: &str) -> Vec<(String, String)> {
    vec![
        ("uuid".into(), uuid.into()),
        (
            "data".into(),
            format!(r#"[{{"id":"{marker}","data":{{"m":"{marker}"}}}}]"#),
        ),
    ]
}

#[tokio::test]
async fn sigterm_during_writes_loses_no_answered_write() {
    init_crypto();
    for b in backends() {
        let bk = Backing::new(b).await;
        let mut srv = serve(&bk, &["--demo"], &[]);
        let pw = srv.demo_password();
        let port = srv.port;
        let base = format!("http://127.0.0.1:{port}");

        // A request in flight when the signal arrives: headers read, body half sent.
        let uri = "/settings.phtml?action=put_journal_entries&realm=example.com";
        let auth = digest_authorization(&base, "POST", uri, "alice", &pw, false).await;
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(journal_body("slow-dev", "slow-1"))
            .finish();
        let slow = SlowPost::start(port, uri, &auth, &body).await;

        // A stream of concurrent writers, each remembering what was acknowledged.
        let acked = Arc::new(Mutex::new(BTreeSet::<String>::new()));
        let mut writers = Vec::new();
        for w in 0..6 {
            let c = Client::new(&base, "alice", &pw, "example.com");
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut n = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let marker = format!("w{w}-{n}");
                    let form = journal_body(&format!("dev-{w}"), &marker);
                    let form: Vec<(&str, &str)> =
                        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let target = c.target("action=put_journal_entries");
                    let Some(r) = c
                        .try_send("POST", &target, crate::harness::Body::Form(&form))
                        .await
                    else {
                        break;
                    };
                    // An answered write is a stored write: never an error answer.
                    assert_eq!(r.status, 200, "{}", r.text);
                    assert_eq!(r.json()["success"], true, "{}", r.text);
                    acked.lock().unwrap().insert(marker);
                }
                n
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = acked.lock().unwrap().len();
        assert!(before > 0, "no write acknowledged before the signal");
        sigterm(&srv);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The in-flight request still completes and is answered.
        let answer = slow.finish().await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"success\":true"), "{answer}");
        acked.lock().unwrap().insert("slow-1".into());
        let (status, took) = wait_exit(&mut srv, Duration::from_secs(15));
        assert!(
            status.success(),
            "{status:?}: {}",
            srv.stderr.lock().unwrap()
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
        for w in writers {
            w.await.unwrap();
        }
        let logs = srv.stderr.lock().unwrap().clone();
        assert!(logs.contains("shutting down"), "{logs}");
        assert!(logs.contains("shutdown complete"), "{logs}");
        drop(srv);

        // A new server over the same store has every acknowledged write.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let srv = serve(&bk, &[], &[]);
        let c = Client::new(
            &format!("http://127.0.0.1:{}", srv.port),
            "alice",
            &pw,
            "example.com",
        );
        let r = c.get("action=get_journal_entries&limit=5000").await;
        let stored: BTreeSet<String> = r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["data"]["m"].as_str().map(str::to_owned))
            .collect();
        let acked = acked.lock().unwrap().clone();
        let missing: Vec<&String> = acked.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "{b}: acknowledged but lost: {missing:?}"
        );
        assert!(acked.len() > before, "{b}");
    }
}

#[tokio::test]
async fn shutdown_timeout_bounds_a_stuck_request() {
    let bk = Backing::new("sqlite").await;
    let mut srv = serve(
        &bk,
        &["--demo"],
        &[("SIPSETTINGS_SHUTDOWN_TIMEOUT_SECS", "2")],
    );
    let pw = srv.demo_password();
    let base = format!("http://127.0.0.1:{}", srv.port);
    let uri = "/settings.phtml?action=put_journal_entries&realm=example.com";
    let auth = digest_authorization(&base, "POST", uri, "alice", &pw, false).await;
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(journal_body("stuck", "stuck-1"))
        .finish();
    // Its body never completes.
    let _stuck = SlowPost::start(srv.port, uri, &auth, &body).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&srv);
    let (status, took) = wait_exit(&mut srv, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let logs = srv.stderr.lock().unwrap().clone();
    assert!(logs.contains("abandoned"), "{logs}");
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy {
            addr: listener.local_addr().unwrap(),
            upstream: upstream.to_owned(),
            accept: Mutex::new(None),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream.clone();
        let conns = self.conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                conns.lock().unwrap().push(h.abort_handle());
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    /// Closes the listening socket (new connections are refused) and every open connection.
    async fn cut(&self) {
        if let Some(t) = self.accept.lock().unwrap().take() {
            t.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            tokio::net::TcpStream::connect(self.addr).await.is_err(),
            "proxy still accepts"
        );
    }

    fn restore(&self) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.bind(self.addr).unwrap();
        self.serve(sock.listen(128).unwrap());
    }
}

/// `scheme://user@host:port/db?q` with `host:port` replaced.
fn with_host_port(url: &str, host_port: &str) -> (String, String) {
    let scheme_end = url.find("://").unwrap() + 3;
    let rest = &url[scheme_end..];
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let (creds, hp) = match rest[..auth_end].rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..auth_end]),
        None => ("", &rest[..auth_end]),
    };
    let old = if hp.contains(':') {
        hp.to_owned()
    } else {
        format!("{hp}:5432")
    };
    (
        format!(
            "{}{creds}{host_port}{}",
            &url[..scheme_end],
            &rest[auth_end..]
        ),
        old,
    )
}

// The proxy runs on the test's runtime while `serve()` blocks its thread: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_recovers() {
    if postgres_url().is_none() {
        eprintln!(
            "postgres_outage_answers_503_and_recovers: skipped (SIPSETTINGS_TEST_POSTGRES_URL unset)"
        );
        return;
    }
    init_crypto();
    let bk = Backing::new("postgres").await;
    let direct = bk.pg.as_ref().unwrap().url.clone();
    let (_, upstream) = with_host_port(&direct, "x");
    let proxy = Proxy::start(&upstream).await;
    let (via_proxy, _) = with_host_port(&direct, &proxy.addr.to_string());
    migrate_with_admin(&bk);
    let mut srv = serve(
        &bk,
        &["--demo"],
        &[
            ("SIPSETTINGS_DATABASE_URL", &via_proxy),
            ("SIPSETTINGS_DATABASE__ACQUIRE_TIMEOUT_SECS", "1"),
        ],
    );
    let pw = srv.demo_password();
    let base = format!("http://127.0.0.1:{}", srv.port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let alice = Client::new(&base, "alice", &pw, "example.com");
    // Certificate authentication reads the serial on a connection of its own (outside the
    // pool): it must fail the same way and heal the same way.
    let crt = alice.get("action=get_crt").await;
    assert_eq!(crt.status, 200, "{}", crt.text);
    let ca = std::fs::read(bk.dir.path().join("ca.crt")).unwrap();
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .identity(reqwest::Identity::from_pem(crt.text.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let by_cert = format!(
        "https://127.0.0.1:{}/settings.phtml?action=get_identity",
        srv.tls_port
    );
    let all_ok = || async {
        let a = alice.get("action=get_aliases").await.status;
        let c = https.get(&by_cert).send().await.unwrap().status().as_u16();
        let api = http
            .get(format!("{base}/api/v1/me"))
            .basic_auth("admin", Some("admin-pw"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let ready = http
            .get(format!("{base}/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (a, c, api, ready)
    };
    assert_eq!(all_ok().await, (200, 200, 200, 200));

    for round in 0..2 {
        proxy.cut().await;
        // Give the account cache time to expire (its listener is cut too).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let t = Instant::now();
        let r = alice.get("action=get_aliases").await;
        assert_eq!(r.status, 503, "round {round}: {}", r.text);
        assert_eq!(r.headers["retry-after"], "5");
        assert_eq!(r.json()["success"], false);
        let r = read(https.get(&by_cert).send().await.unwrap()).await;
        assert_eq!(r.status, 503, "round {round}: {}", r.text);
        assert_eq!(r.json()["success"], false);
        // Unauthenticated (the realm lookup needs the store too).
        let r = read(
            http.get(format!(
                "{base}/settings.phtml?action=get_identity&realm=example.com"
            ))
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(r.headers.contains_key("retry-after"));
        assert!(r.content_type().starts_with("application/json"));
        let r = read(
            http.get(format!("{base}/api/v1/me"))
                .basic_auth("admin", Some("admin-pw"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(r.content_type(), "application/problem+json");
        assert_eq!(r.json()["status"], 503);
        assert!(r.headers.contains_key("retry-after"));
        let r = read(http.get(format!("{base}/ready")).send().await.unwrap()).await;
        assert_eq!(r.status, 503);
        assert!(r.headers.contains_key("retry-after"));
        // Liveness does not depend on the store.
        let r = read(http.get(format!("{base}/health")).send().await.unwrap()).await;
        assert_eq!(r.status, 200);
        // Bounded by the acquire timeout, not hanging.
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(srv.child.try_wait().unwrap().is_none(), "serve died");

        proxy.restore();
        let t = Instant::now();
        loop {
            let got = all_ok().await;
            if got == (200, 200, 200, 200) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "round {round}: not recovered: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Writes work again.
        let r = alice.get("action=set_dnd_on&duration=5").await;
        assert_eq!(r.json()["success"], true, "{}", r.text);
    }
    let logs = srv.stderr.lock().unwrap().clone();
    assert!(logs.contains("store unavailable"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test]
async fn sqlite_locked_database_answers_503_then_recovers() {
    use sqlx::Connection;
    let ts = crate::harness::TestServer::start_with("sqlite", |c| c.request_timeout_secs = 2).await;
    ts.fixture().await;
    let alice = ts.alice();
    assert_eq!(
        alice.get("action=set_dnd_on&duration=5").await.json()["success"],
        true
    );
    // Another process holds the write lock (a backup, a stuck CLI).
    let db = ts.backing.dir.path().join("sipsettings.db");
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let t = Instant::now();
    let r = alice.get("action=set_dnd_off").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.headers["retry-after"], "5");
    assert_eq!(r.json()["success"], false);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Reads go on (WAL).
    assert_eq!(alice.get("action=get_aliases").await.status, 200);
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    let t = Instant::now();
    loop {
        let r = alice.get("action=set_dnd_off").await;
        if r.status == 200 {
            assert_eq!(r.json()["success"], true, "{}", r.text);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "not recovered: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ts.stop().await;
}

#[tokio::test]
async fn auth_failure_kinds_are_counted() {
    for b in backends() {
        let ts = crate::harness::TestServer::start_with(b, |c| {
            c.digest.nonce_lifetime_secs = 1;
            c.throttle.max_failures = 3;
        })
        .await;
        ts.fixture().await;
        let http = reqwest::Client::new();
        let uri = "/settings.phtml?action=get_identity&realm=example.com";
        let send = |h: String| {
            let http = http.clone();
            let url = format!("{}{uri}", ts.base);
            async move {
                http.get(url)
                    .header("authorization", h)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        // The same header twice: the second is a replay.
        let h = digest_authorization(
            &ts.base,
            "GET",
            uri,
            "alice",
            crate::harness::ALICE_PW,
            false,
        )
        .await;
        assert_eq!(send(h.clone()).await, 200);
        assert_eq!(send(h).await, 401);
        // A right answer to an expired nonce: stale.
        let h = digest_authorization(
            &ts.base,
            "GET",
            uri,
            "alice",
            crate::harness::ALICE_PW,
            true,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(send(h).await, 401);
        // Unknown user, wrong password, then the IP is refused.
        let h = digest_authorization(&ts.base, "GET", uri, "nobody", "x", false).await;
        assert_eq!(send(h).await, 401);
        let h = digest_authorization(&ts.base, "GET", uri, "alice", "wrong", false).await;
        assert_eq!(send(h).await, 401);
        assert_eq!(send("Digest nonsense".into()).await, 429);
        let m = ts
            .server
            .as_ref()
            .unwrap()
            .state
            .metrics
            .render(1, 1)
            .unwrap();
        let m = samples(&m);
        for (kind, n) in [
            ("digest_replay", 1.0),
            ("digest_stale_nonce", 1.0),
            ("digest_unknown_user", 1.0),
            ("digest_bad_response", 1.0),
            ("throttled", 1.0),
        ] {
            assert_eq!(
                sample(
                    &m,
                    &format!("sipsettings_auth_failures_total{{kind=\"{kind}\"}}")
                ),
                n,
                "{b} {kind}"
            );
        }
        assert_eq!(
            sample(
                &m,
                "sipsettings_http_requests_total{surface=\"settings\",action=\"get_identity\",method=\"GET\",status=\"429\"}"
            ),
            1.0
        );
        ts.stop().await;
    }
}
