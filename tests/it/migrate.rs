//! Backups and store migration through the real binary: `migrate-store` SQLite → PostgreSQL →
//! SQLite keeps every answer byte for byte, and `backup` copies a SQLite store that a server is
//! writing to.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sipsettings::config::Secret;
use sipsettings::domain::{Attr, AttrValue, NewAccount, Role};
use sipsettings::service::Services;
use sipsettings::service::tenancy::NewOperator;
use sipsettings::store::transfer;

use crate::cli::{run, serve};
use crate::harness::{
    ALICE_PW, BOB_PW, Backing, CAROL_PW, Client, READ_ACTIONS, TestServer, backends, init_crypto,
    postgres_url, read,
};

/// One secret key for every server: sealed passwords and keys must open on each copy.
const KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const DAVE_PW: &str = "dave-secret";
const MALLORY_PW: &str = "mallory-secret";
const OP_PW: &str = "operator-secret";

fn basic(name: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{OP_PW}"))
    )
}

/// (status, ETag, body) of an operator API call.
async fn api(
    base: &str,
    auth: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String, String) {
    let http = reqwest::Client::new();
    let url = format!("{base}{path}");
    let mut rb = match method {
        "POST" => http.post(url),
        "PUT" => http.put(url),
        "DELETE" => http.delete(url),
        _ => http.get(url),
    }
    .header("authorization", auth);
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = read(rb.send().await.unwrap()).await;
    let etag = r
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (r.status, etag, r.text)
}

/// Who to ask what, after the store is built.
struct World {
    /// (user, domain, password, has a client certificate)
    sip: Vec<(&'static str, &'static str, &'static str, bool)>,
    /// (label, Authorization header, paths to GET)
    operators: Vec<(&'static str, String, Vec<String>)>,
    /// alice's certificate bundle (PEM: certificate, key, CA) and bob's revoked one.
    alice_crt: String,
    bob_revoked_crt: String,
}

/// A store with something in every table, made through the services and over HTTP.
async fn build(ts: &TestServer) -> World {
    ts.fixture().await;
    let s = &ts.services;
    let admin = Services::cli_admin();
    let r1 = s.create_reseller(&admin, "R1", None).await.unwrap();
    let r1a = s.create_reseller(&admin, "R1a", Some(r1.id)).await.unwrap();
    let c1 = s
        .create_customer(&admin, "C1", Some(r1.id), Some(5))
        .await
        .unwrap();
    let c2 = s
        .create_customer(&admin, "C2", Some(r1a.id), None)
        .await
        .unwrap();
    let mut op_ids = Vec::new();
    for (name, role, customer, reseller, pw) in [
        ("root", Role::Admin, None, None, Some(OP_PW)),
        ("res1", Role::Reseller, None, Some(r1.id), None),
        ("viewer1", Role::Viewer, Some(c1.id), None, Some(OP_PW)),
    ] {
        let o = s
            .create_operator(
                &admin,
                NewOperator {
                    name: name.into(),
                    role,
                    customer_id: customer,
                    reseller_id: reseller,
                    password: pw.map(str::to_owned),
                },
            )
            .await
            .unwrap();
        op_ids.push(o.id);
    }
    let root_token = format!(
        "Bearer {}",
        s.create_token(&admin, op_ids[0], "platform", None)
            .await
            .unwrap()
            .1
    );
    let res1_token = format!(
        "Bearer {}",
        s.create_token(&admin, op_ids[1], "portal", Some(30))
            .await
            .unwrap()
            .1
    );
    let (old, old_secret) = s
        .create_token(&admin, op_ids[0], "old", None)
        .await
        .unwrap();
    let revoked_token = format!("Bearer {old_secret}");
    let base = ts.base.clone();
    let root = basic("root");
    let (st, _, body) = api(
        &base,
        &root,
        "DELETE",
        &format!("/api/v1/tokens/{}", old.id),
        None,
    )
    .await;
    assert!(st < 300, "{body}");

    // dave: made over the API in customer C1, with voicemail, a number and attributes.
    let (st, _, body) = api(
        &base,
        &root_token,
        "POST",
        "/api/v1/accounts",
        Some(
            json!({"username": "dave", "domain": "example.com", "password": DAVE_PW,
                    "customer_id": c1.id, "first_name": "Dave", "timezone": "America/New_York"}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let dave_id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    for (method, path, b) in [
        ("POST", "enum_numbers", json!({"number": "+12125550100"})),
        ("POST", "aliases", json!({"username": "david"})),
        (
            "PUT",
            "voicemail",
            json!({"mailbox": "2001", "password": "4321", "name": "Dave", "email": "dave@mail.example",
                   "info": "desk", "delete_after_email": false, "account": "2001@vm.example.com"}),
        ),
        (
            "PUT",
            "accept_rules",
            json!({"persistent": {"127": {"start": "08:00", "stop": "20:00", "groups": ["everybody"]}}}),
        ),
        (
            "PUT",
            "reject_rules",
            json!(["sip:telemarketer@example.net"]),
        ),
    ] {
        let (st, _, body) = api(
            &base,
            &root_token,
            method,
            &format!("/api/v1/accounts/{dave_id}/{path}"),
            Some(b),
        )
        .await;
        assert!(st < 300, "{path}: {body}");
    }
    let dave = s.find_account("dave@example.com").await.unwrap();
    s.update_attrs(
        &admin,
        &dave,
        vec![
            (Attr::CallerIdName, AttrValue::Text(Some("Dave D".into()))),
            (Attr::AllowExternalCalls, AttrValue::Flag(true)),
            (Attr::Port, AttrValue::Int(Some(5070))),
            (Attr::Notes, AttrValue::Text(Some("moved twice".into()))),
        ],
    )
    .await
    .unwrap();

    // mallory: blocked, in customer C2.
    let mallory = s
        .add_account(
            NewAccount {
                username: "mallory".into(),
                domain: "other.org".into(),
                customer_id: Some(c2.id),
                ..Default::default()
            },
            MALLORY_PW,
        )
        .await
        .unwrap();
    s.set_blocked(&mallory, true).await.unwrap();

    // Feeds pushed by the platform.
    let now = sipsettings::util::now();
    for (kind, records) in [
        (
            "registrations",
            json!([{"account": "dave@example.com", "contact": "10.1.1.1:5060", "expires": 3600,
                    "user_agent": "Feed UA", "transport": "tcp"}]),
        ),
        (
            "cdrs",
            json!([{"account": "dave@example.com", "direction": "placed", "remoteParty": "sip:zed@example.com",
                    "startTime": now - 500, "stopTime": now - 440, "duration": 60, "status": "200",
                    "price": "0.1234", "sessionId": "feed-1", "fromTag": "f1", "toTag": "t1",
                    "proxyIP": "10.0.0.9", "media": ["audio", "video"]},
                   {"account": "dave@example.com", "direction": "received", "remoteParty": "sip:amy@example.org",
                    "startTime": now - 300, "stopTime": now - 290, "duration": 10, "status": "200",
                    "sessionId": "feed-2", "fromTag": "f2"}]),
        ),
        (
            "balance",
            json!([{"account": "dave@example.com", "value": "12.50", "description": "top-up"},
                   {"account": "alice@example.com", "value": "-0.25", "description": "fee"}]),
        ),
    ] {
        let (st, _, body) = api(
            &base,
            &root_token,
            "POST",
            &format!("/api/v1/feeds/{kind}"),
            Some(records),
        )
        .await;
        assert_eq!(st, 200, "{kind}: {body}");
    }

    // Volume: more rows than one copy batch (calls, balance history) and more accounts than
    // one INSERT statement holds (a wide table), so batching and chunking are exercised.
    let cdrs: Vec<Value> = (0..2500)
        .map(|i| {
            let mut r = json!({"account": "dave@example.com", "direction": if i % 3 == 0 { "received" } else { "placed" },
                   "remoteParty": format!("sip:+3120{i:07}@example.com"), "startTime": now - 86_400 - i,
                   "stopTime": now - 86_400 - i + 30, "duration": 30, "status": "200",
                   "sessionId": format!("bulk-{i}"), "fromTag": "bf"});
            if i % 3 != 0 {
                r["price"] = json!("0.0010");
            }
            r
        })
        .collect();
    let (st, _, body) = api(
        &base,
        &root_token,
        "POST",
        "/api/v1/feeds/cdrs",
        Some(Value::Array(cdrs)),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let bulk = s.create_customer(&admin, "Bulk", None, None).await.unwrap();
    for i in 0..450 {
        s.add_account(
            NewAccount {
                username: format!("bulk{i:03}"),
                domain: "other.org".into(),
                customer_id: Some(bulk.id),
                ..Default::default()
            },
            "bulk-secret",
        )
        .await
        .unwrap();
    }

    // End-user settings over settings.phtml.
    let alice = ts.alice();
    let bob = ts.bob();
    for (c, q, form) in [
        (&alice, "action=set_dnd_on", vec![]),
        (&alice, "action=set_privacy_on", vec![]),
        (&alice, "action=add_alias&username=ally", vec![]),
        (
            &alice,
            "action=set_call_forwarding",
            vec![("FUNC", "sip:bob@example.com"), ("FNOA", "<voice-mailbox>")],
        ),
        (&bob, "action=delete_alias&username=bob1", vec![]),
        (
            &bob,
            "action=set_accept_rules",
            vec![(
                "rules",
                r#"{"persistent":{"31":{"start":"07:30","stop":"18:00","groups":["vip"]}},"temporary":{"groups":["family"],"duration":0}}"#,
            )],
        ),
        (
            &bob,
            "action=set_reject_rules",
            vec![("rules", r#"["sip:ex@example.com","sip:%@spam.example"]"#)],
        ),
    ] {
        let r = c.post(q, &form).await;
        assert_eq!(
            (r.status, r.success()),
            (200, Some(true)),
            "{q}: {}",
            r.text
        );
    }
    // Journal: entries for alice and bob; bob's newest is deleted again, so the id counter is
    // ahead of the largest id (a copy must not hand that id out again).
    let mut last = String::new();
    for (c, uuid, n) in [(&alice, "u-alice", 3), (&bob, "u-bob", 2)] {
        let mut rows = serde_json::Map::new();
        for i in 0..n {
            let id = format!("{uuid}-{i}");
            rows.insert(
                id.clone(),
                json!({"id": id, "data": format!("cipher-{id}")}),
            );
        }
        let r = c
            .post(
                "action=put_journal_entries",
                &[("uuid", uuid), ("data", &Value::Object(rows).to_string())],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for res in r.json()["results"].as_array().unwrap() {
            last = res["journal_id"].as_str().unwrap().to_owned();
        }
    }
    let r = bob
        .post("action=delete_journal_entries", &[("journal_id", &last)])
        .await;
    assert_eq!(r.json()["deleted"], 1, "{}", r.text);

    // Certificates: alice has one; bob's first is revoked and a second issued.
    let alice_crt = alice.get("action=get_crt").await.text;
    let bob_revoked_crt = bob.get("action=get_crt").await.text;
    assert!(
        alice_crt.contains("BEGIN PRIVATE KEY") && bob_revoked_crt.contains("BEGIN PRIVATE KEY")
    );
    assert_eq!(
        s.revoke_client_certs("bob@example.com")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_ne!(bob.get("action=get_crt").await.text, bob_revoked_crt);

    // What each operator reads.
    let mut everything: Vec<String> = [
        "/api/v1/me",
        "/api/v1/accounts?limit=500",
        "/api/v1/accounts?limit=2&offset=1",
        "/api/v1/resellers",
        "/api/v1/customers",
        "/api/v1/operators",
        "/api/v1/domains",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    everything.push(format!("/api/v1/accounts?customer_id={}", c1.id));
    for a in s
        .list_accounts(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| !a.username.starts_with("bulk"))
    {
        everything.push(format!("/api/v1/accounts/{}", a.id));
        for sub in [
            "aliases",
            "enum_numbers",
            "voicemail",
            "call_forwarding",
            "accept_rules",
            "reject_rules",
        ] {
            everything.push(format!("/api/v1/accounts/{}/{sub}", a.id));
        }
    }
    for id in [r1.id, r1a.id] {
        everything.push(format!("/api/v1/resellers/{id}"));
    }
    for id in [1, c1.id, c2.id] {
        everything.push(format!("/api/v1/customers/{id}"));
    }
    for id in &op_ids {
        everything.push(format!("/api/v1/operators/{id}"));
        everything.push(format!("/api/v1/operators/{id}/tokens"));
    }
    let listings: Vec<String> = everything.iter().take(8).cloned().collect();
    World {
        sip: vec![
            ("alice", "example.com", ALICE_PW, true),
            ("bob", "example.com", BOB_PW, true),
            ("carol", "other.org", CAROL_PW, false),
            ("dave", "example.com", DAVE_PW, false),
            ("mallory", "other.org", MALLORY_PW, false),
        ],
        operators: vec![
            ("root token", root_token, everything.clone()),
            ("res1 token", res1_token, everything.clone()),
            // Argon2 per request: the listings only.
            ("root password", root, listings.clone()),
            ("viewer1 password", basic("viewer1"), listings),
            ("revoked token", revoked_token, vec!["/api/v1/me".into()]),
        ],
        alice_crt,
        bob_revoked_crt,
    }
}

/// `get_devices` answers seconds until expiry, which moves with the clock: the one field
/// blanked (the stored `expires_at` is compared exactly by `same_rows`).
fn blank_expires(body: &str) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    for d in v.as_array_mut().unwrap() {
        d["expires"] = json!(0);
    }
    v.to_string()
}

/// Every read answer of settings.phtml and /api/v1 this world offers, by who asked what.
async fn capture(port: u16, w: &World) -> BTreeMap<String, String> {
    let base = format!("http://127.0.0.1:{port}");
    let mut out = BTreeMap::new();
    for (user, domain, pw, has_cert) in &w.sip {
        let c = Client::new(&base, user, pw, domain);
        let mut queries: Vec<String> = READ_ACTIONS.iter().map(|a| format!("action={a}")).collect();
        queries.extend(
            [
                "action=get_balance_history&csv=1",
                "action=get_journal_entries&summary=1",
                "action=get_journal_entries&after_id=2&limit=1",
                "action=calls",
            ]
            .map(str::to_owned),
        );
        if *has_cert {
            // Served again from the store (the sealed key opens with the same secret key).
            queries.push("action=get_crt".into());
        }
        for q in queries {
            let r = c.get(&q).await;
            let body = if q == "action=get_devices" && r.status == 200 {
                blank_expires(&r.text)
            } else {
                r.text.clone()
            };
            out.insert(
                format!("{user}@{domain} {q}"),
                format!("{} {}\n{body}", r.status, r.content_type()),
            );
        }
    }
    for (label, auth, paths) in &w.operators {
        for p in paths {
            let (st, etag, body) = api(&base, auth, "GET", p, None).await;
            out.insert(format!("{label} GET {p}"), format!("{st} {etag}\n{body}"));
        }
    }
    out
}

fn same_answers(want: &BTreeMap<String, String>, got: &BTreeMap<String, String>, what: &str) {
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "{what}: other questions"
    );
    let mut differ = Vec::new();
    for (k, v) in want {
        if got.get(k) != Some(v) {
            differ.push(format!("{k}:\n  before: {v}\n  after:  {}", got[k]));
        }
    }
    assert!(
        differ.is_empty(),
        "{what}: {} answers differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// Every row of every table equal, value by value.
async fn same_rows(a: &str, b: &str, what: &str) {
    let (x, y) = (
        transfer::dump(a).await.unwrap(),
        transfer::dump(b).await.unwrap(),
    );
    assert_eq!(
        x.keys().collect::<Vec<_>>(),
        y.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (table, rows) in &x {
        assert_eq!(rows.len(), y[table].len(), "{what}: {table}");
        for (r, s) in rows.iter().zip(&y[table]) {
            assert_eq!(r, s, "{what}: a row of {table} differs");
        }
    }
}

/// A reqwest client presenting a certificate bundle (PEM), trusting the CA.
fn tls_client(ca: &str, identity: &str) -> reqwest::Client {
    init_crypto();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Certificates keep working on a copy: alice's authenticates, bob's revoked one does not.
async fn certificates_work(tls_port: u16, ca: &str, w: &World, what: &str) {
    let url = format!("https://localhost:{tls_port}/settings.phtml?action=get_identity");
    let r = tls_client(ca, &w.alice_crt).get(&url).send().await;
    let r = read(r.unwrap_or_else(|e| panic!("{what}: alice's certificate refused: {e:?}"))).await;
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    assert_eq!(r.json()["sip_address"], "alice@example.com");
    match tls_client(ca, &w.bob_revoked_crt).get(&url).send().await {
        Err(_) => {}
        Ok(r) => assert_eq!(
            read(r).await.status,
            401,
            "{what}: a revoked certificate worked"
        ),
    }
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("sipsettings.db").display())
}

/// Runs `migrate-store`, checks it reports every table equal, and returns its stdout.
fn migrate_store(bk: &Backing, from: &str, to: &str) -> String {
    let (ok, out, err) = run(bk, &["migrate-store", "--from", from, "--to", to], None);
    assert!(ok, "migrate-store {from} → {to}: {err}\n{out}");
    assert!(out.contains("every count matches"), "{out}");
    assert!(!out.contains("MISMATCH"), "{out}");
    // stderr is not a terminal here: one progress line per table.
    assert!(err.contains("copied journal_entries: 4 rows"), "{err}");
    out
}

/// `table → rows` from the comparison migrate-store prints (source and target are equal).
fn table_counts(out: &str) -> BTreeMap<String, i64> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [t, a, b] if a == b => Some(((*t).to_owned(), a.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// The next journal id a server hands out (one entry put for `who`).
async fn next_journal_id(port: u16, who: (&str, &str, &str)) -> i64 {
    let c = Client::new(&format!("http://127.0.0.1:{port}"), who.0, who.1, who.2);
    let r = c
        .post(
            "action=put_journal_entries",
            &[
                ("uuid", "u-next"),
                ("data", r#"{"n":{"id":"n","data":"x"}}"#),
            ],
        )
        .await;
    r.json()["results"][0]["journal_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn migrate_store_round_trip_keeps_every_answer() {
    // The source: SQLite, built in process through the real services and HTTP.
    let mut ts = TestServer::start_with("sqlite", |c| c.secret_key = Secret::new(KEY)).await;
    let world = build(&ts).await;
    // get_journal_entries holds back entries of the current second: let it pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ca = ts.services.ca().unwrap().cert_pem.clone();
    ts.server.take().unwrap().stop().await;
    ts.services.store.close().await;
    let src_dir = ts.backing.dir.path().to_path_buf();
    let ca_cert = src_dir.join("ca.crt").display().to_string();
    let ca_key = src_dir.join("ca.key").display().to_string();
    // Every server: the same secret key and CA, each its own store.
    let env = [
        ("SIPSETTINGS_SECRET_KEY", KEY),
        ("SIPSETTINGS_TLS__CA_CERT_FILE", ca_cert.as_str()),
        ("SIPSETTINGS_TLS__CA_KEY_FILE", ca_key.as_str()),
    ];
    let source = sqlite_url(&src_dir);
    let srv = serve(&ts.backing, &[], &env);
    let want = capture(srv.port, &world).await;
    certificates_work(srv.tls_port, &ca, &world, "source").await;
    drop(srv);
    assert!(want.len() > 200, "{}", want.len());
    // The answers say something: real data, the refusals that must survive too.
    for (key, start) in [
        ("alice@example.com action=get_identity", "200 "),
        ("mallory@other.org action=get_identity", "403 "),
        ("revoked token GET /api/v1/me", "401 "),
        ("viewer1 password GET /api/v1/me", "200 "),
    ] {
        assert!(want[key].starts_with(start), "{key}: {}", want[key]);
    }
    for (key, needle) in [
        ("root token GET /api/v1/accounts?limit=500", "\"dave\""),
        ("dave@example.com action=get_history", "feed-1"),
        ("dave@example.com action=get_prepaid", "10.7106"),
        (
            "alice@example.com action=get_journal_entries",
            "cipher-u-alice-2",
        ),
        ("alice@example.com action=get_accept_rules", "nobody"),
        ("alice@example.com action=get_crt", "BEGIN CERTIFICATE"),
        ("res1 token GET /api/v1/customers", "C2"),
    ] {
        assert!(want[key].contains(needle), "{key}: {}", want[key]);
    }
    // journal_entries ids 1..5 were used, 5 deleted: the next one is 6 everywhere.
    let next = 6;

    // A non-empty target is refused (here: the source itself as a target of another copy).
    let (ok, _, err) = run(
        &ts.backing,
        &["migrate-store", "--from", &source, "--to", &source],
        None,
    );
    assert!(!ok && err.contains("same store"), "{err}");

    let mut from = source.clone();
    let mut keep = Vec::new();
    if postgres_url().is_some() {
        let pg = Backing::new("postgres").await;
        let url = pg.pg.as_ref().unwrap().url.clone();
        let out = migrate_store(&ts.backing, &from, &url);
        // Several batches, and several INSERT statements per batch for the wide accounts table.
        let counts = table_counts(&out);
        assert!(counts["calls"] > 2 * transfer::BATCH_ROWS as i64, "{out}");
        assert!(
            counts["accounts"] > 450 && counts["balance_history"] > 1000,
            "{out}"
        );
        same_rows(&source, &url, "SQLite → PostgreSQL").await;
        let srv = serve(&pg, &[], &env);
        same_answers(&want, &capture(srv.port, &world).await, "PostgreSQL copy");
        certificates_work(srv.tls_port, &ca, &world, "PostgreSQL copy").await;
        drop(srv);
        // A second copy into the same, now used, database is refused without --force.
        let (ok, _, err) = run(
            &ts.backing,
            &["migrate-store", "--from", &source, "--to", &url],
            None,
        );
        assert!(
            !ok && err.contains("not empty") && err.contains("accounts"),
            "{err}"
        );
        from = url;
        keep.push(pg);
    } else {
        eprintln!("migrate-store: PostgreSQL leg skipped (SIPSETTINGS_TEST_POSTGRES_URL unset)");
    }
    let lite = Backing::new("sqlite").await;
    let target = sqlite_url(lite.dir.path());
    let out = migrate_store(&ts.backing, &from, &target);
    assert!(
        table_counts(&out)["calls"] > 2 * transfer::BATCH_ROWS as i64,
        "{out}"
    );
    same_rows(&source, &target, "back to SQLite").await;
    let srv = serve(&lite, &[], &env);
    same_answers(&want, &capture(srv.port, &world).await, "SQLite copy");
    certificates_work(srv.tls_port, &ca, &world, "SQLite copy").await;
    // Id generators continue past the source's, deleted rows included.
    assert_eq!(
        next_journal_id(srv.port, ("bob", BOB_PW, "example.com")).await,
        next
    );
    let (st, _, body) = api(
        &format!("http://127.0.0.1:{}", srv.port),
        &basic("root"),
        "POST",
        "/api/v1/domains",
        Some(json!({"name": "new.example"})),
    )
    .await;
    assert!(st < 300, "{body}");
    drop(srv);
    if let Some(pg) = keep.first() {
        let srv = serve(pg, &[], &env);
        assert_eq!(
            next_journal_id(srv.port, ("bob", BOB_PW, "example.com")).await,
            next
        );
        let (st, _, body) = api(
            &format!("http://127.0.0.1:{}", srv.port),
            &basic("root"),
            "POST",
            "/api/v1/domains",
            Some(json!({"name": "new.example"})),
        )
        .await;
        assert!(st < 300, "{body}");
    }

    // --force empties a used target first; the copy is complete again.
    let (ok, out, err) = run(
        &ts.backing,
        &[
            "migrate-store",
            "--from",
            &source,
            "--to",
            &target,
            "--force",
        ],
        None,
    );
    assert!(ok && out.contains("every count matches"), "{err}\n{out}");
    same_rows(&source, &target, "forced copy").await;
}

#[tokio::test]
async fn migrate_store_refuses_bad_sources() {
    let bk = Backing::new("sqlite").await;
    let dir = bk.dir.path();
    let missing = format!("sqlite://{}", dir.join("nope.db").display());
    let to = format!("sqlite://{}", dir.join("to.db").display());
    let (ok, _, err) = run(
        &bk,
        &["migrate-store", "--from", &missing, "--to", &to],
        None,
    );
    assert!(!ok && err.contains("no such SQLite file"), "{err}");
    let (ok, _, err) = run(
        &bk,
        &["migrate-store", "--from", "mysql://x/y", "--to", &to],
        None,
    );
    assert!(!ok && err.contains("unsupported store URL"), "{err}");
    // A SQLite file that is not a sipsettings store.
    let other = dir.join("other.db");
    std::fs::write(&other, b"").unwrap();
    let (ok, _, err) = run(
        &bk,
        &[
            "migrate-store",
            "--from",
            &format!("sqlite://{}", other.display()),
            "--to",
            &to,
        ],
        None,
    );
    assert!(!ok && err.contains("not a sipsettings store"), "{err}");
    // An empty target that only ran migrations is fine; a password never shows.
    assert!(run(&bk, &["migrate"], None).0);
    let (ok, out, err) = run(
        &bk,
        &["migrate-store", "--from", &sqlite_url(dir), "--to", &to],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("customers") && out.contains("every count matches"),
        "{out}"
    );
    let (ok, _, err) = run(
        &bk,
        &[
            "migrate-store",
            "--from",
            &sqlite_url(dir),
            "--to",
            "postgres://u:hunter2@127.0.0.1:1/x",
        ],
        None,
    );
    assert!(
        !ok && !err.contains("hunter2") && err.contains("u:***@"),
        "{err}"
    );
}

/// The files a backup of the store needs beside it (see the README).
fn copy_keys(from: &Path, to: &Path) {
    for f in ["secret.key", "ca.crt", "ca.key"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// `backup` while a server keeps writing: a consistent, restorable copy; an existing file is
/// only replaced with --force; for PostgreSQL the pg_dump advice (which really works).
#[tokio::test]
async fn backup_while_a_server_writes() {
    for b in backends() {
        let bk = Backing::new(b).await;
        assert!(run(&bk, &["domain", "add", "example.com"], None).0);
        assert!(
            run(
                &bk,
                &[
                    "account",
                    "add",
                    "alice@example.com",
                    "--password",
                    ALICE_PW
                ],
                None
            )
            .0
        );
        let srv = serve(&bk, &[], &[]);
        let base = format!("http://127.0.0.1:{}", srv.port);
        let out = bk.dir.path().join("backup.db");
        let out_s = out.display().to_string();
        if b == "postgres" {
            let (ok, text, err) = run(&bk, &["backup", &out_s], None);
            assert!(ok, "{err}");
            assert!(!out.exists(), "nothing is written for PostgreSQL");
            let url = bk.pg.as_ref().unwrap().url.clone();
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("pg_dump "))
                .unwrap_or_else(|| panic!("{text}"));
            assert!(line.contains(&format!("'{url}'")), "{line}");
            // A password in the configured URL is left out of the advice.
            let with_pw = url.replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1);
            let (ok, text, _) = {
                let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sipsettings"));
                c.args(["backup", &out_s])
                    .env("SIPSETTINGS_DATA_DIR", bk.dir.path())
                    .env("SIPSETTINGS_DATABASE_URL", &with_pw);
                let o = c.output().unwrap();
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    (),
                )
            };
            assert!(
                ok && !text.contains("hunter2") && text.contains("pg_dump"),
                "{text}"
            );
            // The advised command works: dump, restore into a new database, serve it.
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(line)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{line}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let restored = Backing::new("postgres").await;
            copy_keys(bk.dir.path(), restored.dir.path());
            let restore = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("pg_restore "))
                .unwrap()
                .replace(
                    "<new database URL>",
                    &format!("'{}'", restored.pg.as_ref().unwrap().url),
                );
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(&restore)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{restore}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let srv2 = serve(&restored, &[], &[]);
            let c = Client::new(
                &format!("http://127.0.0.1:{}", srv2.port),
                "alice",
                ALICE_PW,
                "example.com",
            );
            assert_eq!(c.get("action=get_identity").await.status, 200);
            continue;
        }
        // A writer: journal entries, one transaction each, until told to stop.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let c = Client::new(&base, "alice", ALICE_PW, "example.com");
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 20 {
                    let data = format!(r#"{{"m{n}":{{"id":"m{n}","data":"x{n}"}}}}"#);
                    let r = c
                        .post(
                            "action=put_journal_entries",
                            &[("uuid", "w"), ("data", &data)],
                        )
                        .await;
                    assert_eq!(r.status, 200, "{}", r.text);
                    n += 1;
                }
                n
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let backup = |args: Vec<String>| {
            let bk_env = bk.env();
            tokio::task::spawn_blocking(move || {
                let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sipsettings"));
                c.args(&args).env_remove("SIPSETTINGS_CONFIG");
                for (k, v) in bk_env {
                    c.env(k, v);
                }
                let o = c.output().unwrap();
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                )
            })
        };
        let (ok, text, err) = backup(vec!["backup".into(), out_s.clone()]).await.unwrap();
        assert!(ok, "{err}");
        assert!(text.contains("integrity check ok"), "{text}");
        assert!(
            err.contains("secret.key") && err.contains("ca.key"),
            "{err}"
        );
        // Refused without --force, replaced with it, while the writer goes on.
        let (ok, _, err) = backup(vec!["backup".into(), out_s.clone()]).await.unwrap();
        assert!(
            !ok && err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        let first_len = std::fs::metadata(&out).unwrap().len();
        let (ok, _, err) = backup(vec!["backup".into(), out_s.clone(), "--force".into()])
            .await
            .unwrap();
        assert!(ok, "{err}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.await.unwrap();
        assert!(written >= 20 && first_len > 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(bk.dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
            .collect();
        assert!(leftovers.is_empty());
        drop(srv);
        // The copy is consistent: the per-account counter matches the rows it counts.
        sipsettings::store::backup::integrity_check(&out)
            .await
            .unwrap();
        let dump = transfer::dump(&format!("sqlite://{out_s}")).await.unwrap();
        let entries = dump["journal_entries"].len() as i64;
        assert!(
            entries > 0 && entries <= i64::from(written),
            "{entries} of {written}"
        );
        assert_eq!(
            dump["accounts"][0]["journal_count"],
            transfer::Val::Int(entries),
            "a torn snapshot"
        );
        // Restore as the README says: the file as the store of a data dir, with the key files.
        let restored = Backing::new("sqlite").await;
        std::fs::copy(&out, restored.dir.path().join("sipsettings.db")).unwrap();
        copy_keys(bk.dir.path(), restored.dir.path());
        let srv = serve(&restored, &[], &[]);
        let c = Client::new(
            &format!("http://127.0.0.1:{}", srv.port),
            "alice",
            ALICE_PW,
            "example.com",
        );
        // Entries of the current second are held back by get_journal_entries.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = c.get("action=get_journal_entries").await;
        assert_eq!(r.json()["rows"], entries, "{}", r.text);
        // Bad destinations are clear errors.
        let (ok, _, err) = run(&bk, &["backup", "/nonexistent-dir/x.db"], None);
        assert!(!ok && err.contains("does not exist"), "{err}");
    }
}

/// The README's backup and migration commands work as written (in a directory holding ./data,
/// with the test database in place of `postgres://sipsettings@localhost/sipsettings`).
#[tokio::test]
async fn readme_backup_examples_work() {
    let lines =
        crate::readme::readme_script("<!-- backup-examples", "<!-- end backup-examples -->");
    assert!(lines.len() >= 5, "{lines:?}");
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_sipsettings");
    let sh = |script: &str, env: &[(&str, &str)]| {
        let mut c = std::process::Command::new("bash");
        c.arg("-ec")
            .arg(script)
            .current_dir(dir.path())
            .env_remove("SIPSETTINGS_CONFIG")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{script}: {}\n{out}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    sh(
        &format!(
            "{bin} domain add example.com && {bin} account add alice@example.com --password pw"
        ),
        &[],
    );
    let pg = match postgres_url() {
        Some(_) => Some(crate::harness::PgDb::create().await),
        None => {
            eprintln!(
                "README backup examples: PostgreSQL lines skipped (SIPSETTINGS_TEST_POSTGRES_URL unset)"
            );
            None
        }
    };
    let mut script = Vec::new();
    for line in &lines {
        // The harness made the database already.
        if line.starts_with("createdb ") {
            continue;
        }
        let line = match &pg {
            Some(db) => line.replace("postgres://sipsettings@localhost/sipsettings", &db.url),
            None if line.contains("postgres://") => continue,
            None => line.clone(),
        };
        let words: Vec<&str> = line
            .split(' ')
            .map(|w| if w == "sipsettings" { bin } else { w })
            .collect();
        script.push(words.join(" "));
    }
    let out = sh(&script.join("\n"), &[]);
    let backups: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(backups.len(), 1);
    sipsettings::store::backup::integrity_check(&backups[0].path())
        .await
        .unwrap();
    if pg.is_some() {
        assert!(out.contains("alice@example.com"), "{out}");
        let back = sh(
            &format!("{bin} account list"),
            &[("SIPSETTINGS_DATABASE_URL", "sqlite://data/back.db")],
        );
        assert_eq!(back, "alice@example.com\n");
    }
}
