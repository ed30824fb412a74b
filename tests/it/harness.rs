//! Test harness: servers per backend, a digest client, fixtures and snapshots.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use sipsettings::config::{Config, Secret, ThrottleConfig};
use sipsettings::crypto::Keys;
use sipsettings::domain::NewAccount;
use sipsettings::http::{AppState, RunningServer, start};
use sipsettings::service::Services;
use sipsettings::store::Store;

pub const ALICE_PW: &str = "alice-secret";
pub const BOB_PW: &str = "bob-secret";
pub const CAROL_PW: &str = "carol-secret";

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn postgres_url() -> Option<String> {
    std::env::var("SIPSETTINGS_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The backends to run on: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<&'static str> {
    if postgres_url().is_some() {
        vec!["sqlite", "postgres"]
    } else {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            eprintln!("postgres: skipped (SIPSETTINGS_TEST_POSTGRES_URL unset)");
        });
        vec!["sqlite"]
    }
}

/// A fresh PostgreSQL database, dropped when this value is dropped.
pub struct PgDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

fn with_db(url: &str, db: &str) -> String {
    // Replace the path component of the URL with `db`, keeping any query.
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

impl PgDb {
    pub async fn create() -> PgDb {
        use sqlx::Connection;
        let admin_url = postgres_url().expect("postgres url");
        let name = format!(
            "sipsettings_test_{}_{}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut conn)
        .await
        .expect("drop old db");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create db");
        let url = with_db(&admin_url, &name);
        PgDb {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside async context guarantees: use a private runtime on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// reqwest is built with `rustls-no-provider`: the one provider (ring) is installed here,
/// before any client is built.
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Where a test server keeps its data.
pub struct Backing {
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDb>,
}

impl Backing {
    pub async fn new(backend: &'static str) -> Backing {
        init_crypto();
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = if backend == "postgres" {
            Some(PgDb::create().await)
        } else {
            None
        };
        Backing { dir, pg }
    }

    pub fn config(&self) -> Config {
        Config {
            data_dir: self.dir.path().to_path_buf(),
            database_url: match &self.pg {
                Some(pg) => Secret::new(pg.url.clone()),
                None => Secret::default(),
            },
            listen: "127.0.0.1:0".into(),
            tls_listen: "127.0.0.1:0".into(),
            max_body_bytes: 2 * 1024 * 1024,
            throttle: ThrottleConfig {
                slow_after: 0,
                max_failures: 10_000,
                window_secs: 60,
                ban_secs: 60,
            },
            ..Config::default()
        }
    }

    /// Environment for running the binary against the same store.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![(
            "SIPSETTINGS_DATA_DIR".to_owned(),
            self.dir.path().display().to_string(),
        )];
        if let Some(pg) = &self.pg {
            v.push(("SIPSETTINGS_DATABASE_URL".into(), pg.url.clone()));
        }
        v
    }
}

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub base: String,
    /// `https://127.0.0.1:PORT` of the HTTPS listener.
    pub tls_base: String,
    pub services: Services,
    /// Keeps the data dir and database alive as long as the server.
    #[allow(dead_code)]
    pub backing: Backing,
}

impl TestServer {
    pub async fn start(backend: &'static str) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: &'static str, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let backing = Backing::new(backend).await;
        let mut cfg = backing.config();
        tweak(&mut cfg);
        let store = Store::open(&cfg).await.expect("open store");
        let keys = Keys::load(&cfg).expect("keys");
        let services = Services::new(store, keys, &cfg);
        let server = start(AppState::new(cfg, services.clone()))
            .await
            .expect("start server");
        let base = format!("http://{}", server.addr);
        let tls_base = server
            .tls_addr
            .map(|a| format!("https://{a}"))
            .unwrap_or_default();
        TestServer {
            server: Some(server),
            base,
            tls_base,
            services,
            backing,
        }
    }

    /// example.com with alice and bob (sample data each), other.org with carol.
    pub async fn with_fixture(backend: &'static str) -> TestServer {
        let ts = Self::start(backend).await;
        ts.fixture().await;
        ts
    }

    pub async fn fixture(&self) {
        let s = &self.services;
        s.add_domain("example.com").await.unwrap();
        s.add_domain("other.org").await.unwrap();
        for (user, domain, pw) in [
            ("alice", "example.com", ALICE_PW),
            ("bob", "example.com", BOB_PW),
            ("carol", "other.org", CAROL_PW),
        ] {
            let a = s
                .add_account(
                    NewAccount {
                        username: user.into(),
                        domain: domain.into(),
                        first_name: Some(user.to_uppercase()),
                        last_name: Some("Test".into()),
                        email: Some(format!("{user}@mail.example")),
                        timezone: Some("Europe/Amsterdam".into()),
                        mobile_number: Some("+31612345678".into()),
                        pstn_caller_id: Some("+31201234567".into()),
                        customer_id: None,
                    },
                    pw,
                )
                .await
                .unwrap();
            sipsettings::demo::seed_data(s, &a).await.unwrap();
        }
    }

    pub fn client(&self, user: &str, password: &str, realm: &str) -> Client {
        Client::new(&self.base, user, password, realm)
    }

    pub fn alice(&self) -> Client {
        self.client("alice", ALICE_PW, "example.com")
    }
    pub fn bob(&self) -> Client {
        self.client("bob", BOB_PW, "example.com")
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        self.services.store.close().await;
    }
}

/// A response, read fully.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
    pub fn content_type(&self) -> String {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
    pub fn success(&self) -> Option<bool> {
        self.json().get("success").and_then(Value::as_bool)
    }
    pub fn message(&self) -> String {
        self.json()
            .get("error_message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    }
}

pub async fn read(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    Resp {
        status,
        headers,
        text,
    }
}

/// A digest client that, like Blink, reuses its nonce with an increasing `nc`.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub user: String,
    pub password: String,
    pub realm: String,
    /// Prefer the SHA-256 challenge instead of MD5.
    pub sha256: bool,
    prompt: Mutex<Option<digest_auth::WwwAuthenticateHeader>>,
}

pub enum Body<'a> {
    None,
    Form(&'a [(&'a str, &'a str)]),
    Raw(&'a str, Vec<u8>),
}

impl Client {
    pub fn new(base: &str, user: &str, password: &str, realm: &str) -> Client {
        init_crypto();
        Client {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            realm: realm.to_owned(),
            sha256: false,
            prompt: Mutex::new(None),
        }
    }

    /// The request target for `query` (appends `realm` unless the query has one).
    pub fn target(&self, query: &str) -> String {
        if query.contains("realm=") {
            format!("/settings.phtml?{query}")
        } else {
            format!("/settings.phtml?{query}&realm={}", self.realm)
        }
    }

    pub async fn get(&self, query: &str) -> Resp {
        self.send("GET", &self.target(query), Body::None).await
    }

    pub async fn post(&self, query: &str, form: &[(&str, &str)]) -> Resp {
        self.send("POST", &self.target(query), Body::Form(form))
            .await
    }

    fn pick_challenge(&self, r: &reqwest::Response) -> Option<digest_auth::WwwAuthenticateHeader> {
        let want = if self.sha256 { "SHA-256" } else { "MD5" };
        r.headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.contains(&format!("algorithm={want}")))
            .and_then(|v| digest_auth::parse(v).ok())
    }

    fn build(&self, method: &str, uri: &str, body: &Body<'_>) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base, uri);
        let rb = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        match body {
            Body::None => rb,
            Body::Form(f) => rb.form(f),
            Body::Raw(ct, bytes) => rb.header("content-type", *ct).body(bytes.clone()),
        }
    }

    fn authorization(&self, method: &str, uri: &str) -> Option<String> {
        let mut guard = self.prompt.lock().unwrap();
        let prompt = guard.as_mut()?;
        let m = if method == "POST" {
            digest_auth::HttpMethod::POST
        } else {
            digest_auth::HttpMethod::GET
        };
        let ctx = digest_auth::AuthContext::new_with_method(
            self.user.as_str(),
            self.password.as_str(),
            uri,
            None::<&[u8]>,
            m,
        );
        prompt.respond(&ctx).ok().map(|h| h.to_header_string())
    }

    pub async fn send(&self, method: &str, uri: &str, body: Body<'_>) -> Resp {
        self.try_send(method, uri, body)
            .await
            .expect("request failed")
    }

    /// Like `send`, but `None` when the connection fails (a server being killed).
    pub async fn try_send(&self, method: &str, uri: &str, body: Body<'_>) -> Option<Resp> {
        for _ in 0..3 {
            let mut rb = self.build(method, uri, &body);
            if let Some(h) = self.authorization(method, uri) {
                rb = rb.header("authorization", h);
            }
            let r = rb.send().await.ok()?;
            if r.status() == 401 {
                if let Some(p) = self.pick_challenge(&r) {
                    let had = self.prompt.lock().unwrap().replace(p).is_some();
                    let stale = r
                        .headers()
                        .get_all("www-authenticate")
                        .iter()
                        .any(|v| v.to_str().unwrap_or("").contains("stale=true"));
                    if !had || stale {
                        continue;
                    }
                }
                return Some(read(r).await);
            }
            return Some(read(r).await);
        }
        panic!("authentication loop did not settle");
    }
}

/// Every read action: used to prove that nothing changed.
pub const READ_ACTIONS: &[&str] = &[
    "get_identity",
    "get_aliases",
    "get_enum",
    "get_history",
    "get_devices",
    "get_prepaid",
    "get_balance_history",
    "get_monthly_usage",
    "get_call_forwarding",
    "get_accept_rules",
    "get_reject_rules",
    "get_voicemail",
    "get_journal_entries",
];

/// Everything an account can read, with times that move (device expiry) blanked.
pub async fn snapshot(c: &Client) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for a in READ_ACTIONS {
        let r = c.get(&format!("action={a}")).await;
        assert_eq!(r.status, 200, "{a}: {}", r.text);
        let mut v = r.json();
        if let Value::Array(devs) = &mut v {
            for d in devs {
                if let Some(o) = d.as_object_mut() {
                    o.remove("expires");
                }
            }
        }
        out.insert((*a).to_owned(), v);
    }
    out
}
