//! Two real `serve` processes on one PostgreSQL database and one shared data directory (the
//! compose example's shared volume: secret key and CA), behind a real nginx running
//! `deploy/nginx.conf` itself (only addresses, ports and paths rewritten).
//!
//! Through the proxy, round-robin over both replicas: reads right after writes, digest nonces
//! from one replica accepted by the other, concurrent journal traffic, client certificates
//! (TLS ends at nginx, header mode with `trusted_proxies`) and their revocation, and SIGKILL
//! of one replica in the middle of the traffic: no acknowledged write lost, no read going
//! backwards. Skipped (with a message) without nginx or without PostgreSQL.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{Served, serve};
use crate::harness::{
    ALICE_PW, BOB_PW, Backing, Body, Client, Resp, backends, init_crypto, postgres_url, read,
};
use crate::journal::{blink_rows, urlencode, writers_and_readers};

/// `database.account_cache_ms` of the replicas, as in docker-compose.yml: with the cache, a
/// replica serves an account row changed through the other one until the change's NOTIFY
/// reaches it, which may be after the client's next request.
const CACHE_MS: &str = "0";

fn nginx_binary() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).collect())
        .unwrap_or_default();
    candidates.push("/usr/sbin/nginx".into());
    candidates.push("/usr/local/sbin/nginx".into());
    candidates.into_iter().find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx (master + workers) running `deploy/nginx.conf` in the foreground; stopped on drop.
struct Nginx {
    child: Child,
    /// Configuration, logs and temporary files; removed after nginx has stopped.
    #[allow(dead_code)]
    dir: tempfile::TempDir,
    http: u16,
    https: u16,
}

impl Nginx {
    /// `deploy/nginx.conf` with the compose names, ports and volume replaced by local ones.
    fn start(bin: &Path, upstreams: [u16; 2], shared: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let (http, https) = (free_port(), free_port());
        let mut conf = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf"),
        )
        .unwrap();
        let http_block = format!(
            "http {{\n    \
             # Added by the test: logs and temporary files in its directory, and which\n    \
             # replica answered (to check that both were used).\n    \
             access_log {d}/access.log;\n    \
             client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
             fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
             scgi_temp_path {d}/scgi;\n    \
             add_header X-Upstream $upstream_addr always;\n"
        );
        for (from, to) in [
            (
                "server app1:8080",
                format!("server 127.0.0.1:{}", upstreams[0]),
            ),
            (
                "server app2:8080",
                format!("server 127.0.0.1:{}", upstreams[1]),
            ),
            ("listen 80;", format!("listen 127.0.0.1:{http};")),
            ("listen 443 ssl;", format!("listen 127.0.0.1:{https} ssl;")),
            ("/sipsettings/", format!("{}/", shared.display())),
            ("http {\n", http_block),
        ] {
            assert!(
                conf.contains(from),
                "deploy/nginx.conf no longer contains {from:?}: update tests/it/replicas.rs"
            );
            conf = conf.replace(from, &to);
        }
        // As root, workers would run as nobody and could not use the private temp directory.
        let as_root = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| m.uid() == 0)
                .unwrap_or(false)
        };
        let head = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n{}",
            if as_root { "user root;\n" } else { "" }
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, format!("{head}{conf}")).unwrap();
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited: {status}\n{err}\n{log}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", https)).is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            dir,
            http,
            https,
        }
    }

    fn http_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn https_base(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master: it stops its workers (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The proxy, the replicas, and their shared store and data directory (dropped in this order:
/// fields drop in declaration order).
struct Cluster {
    nginx: Nginx,
    replicas: Vec<Served>,
    bk: Backing,
}

fn cli(bk: &Backing, args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sipsettings"));
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("SIPSETTINGS_CONFIG");
    for (k, v) in bk.env() {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

impl Cluster {
    /// `None` (after saying why) when nginx or PostgreSQL is missing.
    async fn start(test: &str) -> Option<Cluster> {
        if postgres_url().is_none() || !backends().contains(&"postgres") {
            eprintln!("{test}: skipped (SIPSETTINGS_TEST_POSTGRES_URL unset)");
            return None;
        }
        let Some(bin) = nginx_binary() else {
            eprintln!("{test}: skipped (nginx not installed; apt-get install nginx)");
            return None;
        };
        let bk = Backing::new("postgres").await;
        cli(&bk, &["domain", "add", "example.com"]);
        for (user, pw) in [("alice", ALICE_PW), ("bob", BOB_PW)] {
            cli(
                &bk,
                &[
                    "account",
                    "add",
                    &format!("{user}@example.com"),
                    "--password",
                    pw,
                ],
            );
        }
        // The compose settings: nginx (127.0.0.1 here) is the trusted proxy and forwards
        // client certificates in X-SSL-Client-Cert; round-robin needs account rows read from
        // the store (CACHE_MS). Refused certificates are expected below: no throttling of the
        // proxy's address.
        let env = [
            ("SIPSETTINGS_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("SIPSETTINGS_CLIENT_CERT__HEADER", "X-SSL-Client-Cert"),
            ("SIPSETTINGS_THROTTLE__SLOW_AFTER", "100000"),
            ("SIPSETTINGS_THROTTLE__MAX_FAILURES", "100000"),
            ("SIPSETTINGS_DATABASE__ACCOUNT_CACHE_MS", CACHE_MS),
        ];
        // One after the other, like the compose file (app2 waits for app1).
        let r1 = serve(&bk, &[], &env);
        let r2 = serve(&bk, &[], &env);
        let nginx = Nginx::start(&bin, [r1.port, r2.port], bk.dir.path());
        Some(Cluster {
            nginx,
            replicas: vec![r1, r2],
            bk,
        })
    }

    fn upstream(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.replicas[i].port)
    }
}

fn upstream_of(r: &Resp) -> String {
    r.headers
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The `FUNC` forwarding target's sequence number (`seq<N>@example.com`).
fn forwarding_seq(r: &Resp) -> Option<u64> {
    let v = r.json();
    let func = v.get("FUNC")?.as_str()?;
    func.strip_prefix("seq")?.split('@').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_behind_nginx_settings_nonces_journal_certificates() {
    let Some(cl) = Cluster::start("replicas_behind_nginx").await else {
        return;
    };
    init_crypto();
    let direct: Vec<String> = cl
        .replicas
        .iter()
        .map(|r| format!("http://127.0.0.1:{}", r.port))
        .collect();

    // A nonce issued by one replica is accepted by the other (the shared secret key).
    let http = reqwest::Client::new();
    let target = "/settings.phtml?action=get_identity&realm=example.com";
    let r = http
        .get(format!("{}{target}", direct[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("algorithm=MD5"))
        .unwrap()
        .to_owned();
    let mut prompt = digest_auth::parse(&challenge).unwrap();
    for base in [&direct[1], &direct[0]] {
        let ctx = digest_auth::AuthContext::new("alice", ALICE_PW, target);
        let auth = prompt.respond(&ctx).unwrap().to_header_string();
        let r = read(
            http.get(format!("{base}{target}"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "nonce of replica 1 at {base}: {}", r.text);
        assert_eq!(r.json()["sip_address"], "alice@example.com");
    }

    // Settings through the proxy: every read right after a write sees it, whichever replica
    // took the write and whichever serves the read.
    let c = Client::new(&cl.nginx.http_base(), "alice", ALICE_PW, "example.com");
    let mut crossings = BTreeSet::new();
    for k in 0..30u64 {
        let w = c
            .get(&format!("action=set_call_forwarding&FUNC=seq{k}"))
            .await;
        assert_eq!(w.status, 200, "{}", w.text);
        assert_eq!(w.success(), Some(true), "{}", w.text);
        let r = c.get("action=get_call_forwarding").await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            forwarding_seq(&r),
            Some(k),
            "stale read: write on {}, read on {}: {}",
            upstream_of(&w),
            upstream_of(&r),
            r.text
        );
        let rules = format!("[\"sip:seq{k}@example.com\"]");
        let w2 = c
            .send(
                "POST",
                &c.target("action=set_reject_rules"),
                Body::Form(&[("rules", &rules)]),
            )
            .await;
        assert_eq!(w2.success(), Some(true), "{}", w2.text);
        let r2 = c.get("action=get_reject_rules").await;
        assert_eq!(
            r2.json(),
            serde_json::json!([format!("sip:seq{k}@example.com")]),
            "stale read: write on {}, read on {}",
            upstream_of(&w2),
            upstream_of(&r2)
        );
        crossings.insert((upstream_of(&w), upstream_of(&r)));
        crossings.insert((upstream_of(&w2), upstream_of(&r2)));
        if k % 3 == 0 {
            // Shifts the round-robin phase, so both directions are covered.
            c.get("action=get_identity").await;
        }
    }
    let (u1, u2) = (cl.upstream(0), cl.upstream(1));
    assert!(
        crossings.contains(&(u1.clone(), u2.clone()))
            && crossings.contains(&(u2.clone(), u1.clone())),
        "the proxy did not alternate between the replicas: {crossings:?}"
    );

    // Journal: concurrent writers and readers, all through the proxy: nothing lost,
    // doubled or out of order.
    writers_and_readers(vec![cl.nginx.http_base()], 4, 10).await;

    // Client certificates: TLS ends at nginx, which forwards the certificate.
    let out = tempfile::tempdir().unwrap();
    let issued = cli(
        &cl.bk,
        &[
            "cert",
            "issue",
            "bob@example.com",
            "--out",
            &out.path().display().to_string(),
            "--p12-password",
            "p12",
        ],
    );
    let serial = issued.split_whitespace().nth(2).unwrap().to_owned();
    let bundle = std::fs::read_to_string(out.path().join("bob@example.com.crt")).unwrap();
    let ca = std::fs::read(cl.bk.dir.path().join("ca.crt")).unwrap();
    let tls = |identity: Option<&str>| {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .pool_max_idle_per_host(0);
        if let Some(id) = identity {
            b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
        }
        b.build().unwrap()
    };
    let with_cert = tls(Some(&bundle));
    let via_tls = format!(
        "{}/settings.phtml?action=get_identity",
        cl.nginx.https_base()
    );
    let mut served_by = BTreeSet::new();
    for _ in 0..4 {
        let r = read(with_cert.get(&via_tls).send().await.unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["sip_address"], "bob@example.com");
        served_by.insert(upstream_of(&r));
    }
    assert_eq!(served_by.len(), 2, "{served_by:?}");
    // Without a certificate: digest over the proxy's TLS.
    let r = read(tls(None).get(&via_tls).send().await.unwrap()).await;
    assert_eq!(r.status, 401);
    // A client cannot smuggle the header in: nginx replaces it (plain HTTP: not sent).
    let escaped =
        percent_encoding::utf8_percent_encode(&bundle, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    for _ in 0..2 {
        let r = read(
            http.get(format!(
                "{}/settings.phtml?action=get_identity&realm=example.com",
                cl.nginx.http_base()
            ))
            .header("X-SSL-Client-Cert", &escaped)
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401, "forged header accepted: {}", r.text);
    }
    // Revocation through the CLI: the very next request is refused, on either replica.
    let revoked = cli(&cl.bk, &["cert", "revoke", &serial]);
    assert!(revoked.contains(&serial), "{revoked}");
    let mut refused_by = BTreeSet::new();
    for _ in 0..4 {
        let r = read(with_cert.get(&via_tls).send().await.unwrap()).await;
        assert_eq!(r.status, 401, "revoked certificate accepted: {}", r.text);
        refused_by.insert(upstream_of(&r));
    }
    assert_eq!(refused_by.len(), 2, "{refused_by:?}");
    // And directly on each replica's own HTTPS listener: refused in the handshake once the
    // CRL is refreshed, by the per-request serial check before that.
    for r in &cl.replicas {
        let url = format!(
            "https://127.0.0.1:{}/settings.phtml?action=get_identity",
            r.tls_port
        );
        if let Ok(resp) = with_cert.get(&url).send().await {
            assert_eq!(resp.status(), 401);
        }
    }
}

/// One journal put of `rows` rows: the ids when acknowledged.
async fn try_put(c: &Client, uuid: &str, rows: &Value) -> Option<Vec<i64>> {
    let form = format!("uuid={uuid}&data={}", urlencode(&rows.to_string()));
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        c.try_send(
            "POST",
            &c.target("action=put_journal_entries"),
            Body::Raw("application/x-www-form-urlencoded", form.into_bytes()),
        ),
    )
    .await
    .ok()??;
    if r.status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&r.text).ok()?;
    if v["success"] != true {
        return None;
    }
    v["results"]
        .as_array()?
        .iter()
        .map(|r| r["journal_id"].as_str()?.parse().ok())
        .collect()
}

/// All journal entry ids of alice, in the order returned.
async fn all_ids(c: &Client) -> Vec<i64> {
    let r = c.get("action=get_journal_entries&limit=5000").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_one_replica_behind_nginx_loses_nothing() {
    let Some(mut cl) = Cluster::start("sigkill_of_one_replica_behind_nginx").await else {
        return;
    };
    let base = cl.nginx.http_base();
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    const ROWS: usize = 3;

    // Journal writers: every acknowledged id, and how many were acknowledged after the kill.
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let acked_after_kill = Arc::new(Mutex::new(0usize));
    let unanswered = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for w in 0..3 {
        let c = Client::new(&base, "alice", ALICE_PW, "example.com");
        let (stop, killed, acked, after, unanswered) = (
            stop.clone(),
            killed.clone(),
            acked.clone(),
            acked_after_kill.clone(),
            unanswered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut k = 0;
            while !stop.load(Ordering::SeqCst) {
                let was_killed = killed.load(Ordering::SeqCst);
                if let Some(ids) = try_put(
                    &c,
                    &format!("writer-{w}"),
                    &blink_rows(&format!("w{w}k{k}"), ROWS),
                )
                .await
                {
                    assert_eq!(ids.len(), ROWS);
                    acked.lock().unwrap().extend(ids);
                    if was_killed {
                        *after.lock().unwrap() += 1;
                    }
                } else {
                    *unanswered.lock().unwrap() += 1;
                }
                k += 1;
            }
        }));
    }

    // A settings writer that reads back after every write: a read never shows a value older
    // than the last acknowledged write (nor one never written).
    let settings = {
        let c = Client::new(&base, "bob", BOB_PW, "example.com");
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut last_acked: Option<u64> = None;
            let mut attempted = 0u64;
            let mut reads = 0usize;
            while !stop.load(Ordering::SeqCst) {
                attempted += 1;
                let q = format!("action=set_call_forwarding&FUNC=seq{attempted}");
                if let Some(w) = c.try_send("GET", &c.target(&q), Body::None).await
                    && w.status == 200
                    && w.success() == Some(true)
                {
                    last_acked = Some(attempted);
                }
                if let Some(r) = c
                    .try_send("GET", &c.target("action=get_call_forwarding"), Body::None)
                    .await
                    && r.status == 200
                {
                    let seen = forwarding_seq(&r);
                    assert!(
                        seen >= last_acked && seen.is_some_and(|s| s <= attempted),
                        "read {seen:?} after acknowledged write {last_acked:?} \
                         (attempted up to {attempted}) from {}",
                        upstream_of(&r)
                    );
                    reads += 1;
                }
            }
            (last_acked, attempted, reads)
        })
    };

    // A reader polling like Blink: ids only ever grow, never repeat.
    let reader = {
        let c = Client::new(&base, "alice", ALICE_PW, "example.com");
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen: Vec<i64> = Vec::new();
            let mut after = 0i64;
            // Keeps polling a little after the writers stop, to catch up.
            let mut quiet_since: Option<Instant> = None;
            loop {
                if stop.load(Ordering::SeqCst) {
                    let t = *quiet_since.get_or_insert_with(Instant::now);
                    if t.elapsed() > Duration::from_millis(2500) {
                        break;
                    }
                }
                let q = format!("action=get_journal_entries&after_id={after}&limit=5000");
                if let Some(r) = c.try_send("GET", &c.target(&q), Body::None).await
                    && r.status == 200
                {
                    for e in r.json()["results"].as_array().unwrap() {
                        let id: i64 = e["id"].as_str().unwrap().parse().unwrap();
                        assert!(id > after, "id {id} after {after}: went backwards");
                        after = id;
                        seen.push(id);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = acked.lock().unwrap().len();
    assert!(
        before_kill >= 10 * ROWS,
        "too few writes before the kill: {before_kill}"
    );
    let victim = &mut cl.replicas[0];
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    killed.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let (last_acked, attempted, reads) = settings.await.unwrap();
    let seen = reader.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let after_kill = *acked_after_kill.lock().unwrap();
    assert!(
        after_kill >= 5,
        "the surviving replica took only {after_kill} writes after the kill"
    );
    assert!(reads >= 10, "only {reads} settings reads");

    // Every acknowledged entry is stored; calls are stored whole; the reader saw exactly
    // what is stored, in order.
    let c = Client::new(&base, "alice", ALICE_PW, "example.com");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stored = all_ids(&c).await;
    let stored_set: BTreeSet<i64> = stored.iter().copied().collect();
    assert_eq!(stored_set.len(), stored.len(), "duplicate ids");
    for id in &acked {
        assert!(stored_set.contains(id), "acknowledged entry {id} lost");
    }
    assert_eq!(stored.len() % ROWS, 0, "a put was stored in part");
    assert_eq!(
        seen, stored,
        "the polling reader missed or invented entries"
    );

    // The last acknowledged setting (or a later attempt whose answer was lost) is stored.
    let bob = Client::new(&base, "bob", BOB_PW, "example.com");
    let r = bob.get("action=get_call_forwarding").await;
    let now = forwarding_seq(&r);
    assert!(
        now >= last_acked && now.is_some_and(|s| s <= attempted),
        "stored {now:?}, last acknowledged {last_acked:?}, attempted {attempted}"
    );
    eprintln!(
        "sigkill behind nginx: {} journal rows acknowledged ({before_kill} before the kill, \
         {after_kill} puts after), {} puts not acknowledged, {} rows stored; settings: \
         {attempted} writes, last acknowledged {last_acked:?}, {reads} reads",
        acked.len(),
        unanswered.lock().unwrap(),
        stored.len()
    );
}
