//! Ingestion feeds (operator API §2): batch services and `sipsettings import`, checked through
//! the end-user views over HTTP (settings API §4.3–4.5), on both backends.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sipsettings::service::{
    BalanceRecord, CdrRecord, IngestError, IngestReport, MAX_BATCH, RegistrationRecord, parse_batch,
};
use sipsettings::util::now;

use crate::harness::{CAROL_PW, Client, TestServer, backends};

const BIN: &str = env!("CARGO_BIN_EXE_sipsettings");

/// Records as the wire sends them (so the field names are tested too).
fn recs<T: DeserializeOwned>(v: Value) -> Vec<T> {
    serde_json::from_value(v).expect("records")
}

fn report(accepted: usize, duplicates: usize) -> IngestReport {
    IngestReport {
        accepted,
        duplicates,
    }
}

async fn devices(c: &Client) -> Vec<Value> {
    let r = c.get("action=get_devices").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json().as_array().expect("device list").clone()
}

fn contacts(devs: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = devs
        .iter()
        .map(|d| d["contact"].as_str().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

/// Balance in ten-thousandths, from the wire's number.
async fn balance(c: &Client) -> i64 {
    let p = c.get("action=get_prepaid").await.json();
    (p["balance"].as_f64().expect("balance") * 10_000.0).round() as i64
}

fn bad_index(e: IngestError) -> (usize, String) {
    match e {
        IngestError::Record { index, reason } => (index, reason),
        other => panic!("expected a record error, got {other:?}"),
    }
}

#[tokio::test]
async fn registrations_upsert_and_expiry() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let s = &ts.services;
        let alice = ts.alice();
        let seeded = contacts(&devices(&alice).await);
        assert_eq!(seeded, ["10.0.0.7:5062", "192.168.1.10:5060"], "{b}");
        let t = now();
        let r = s
            .ingest_registrations(&recs(json!([
                {"account": "alice@example.com", "contact": "10.1.1.1:5060", "expires": 600,
                 "public_contact": "80.9.9.9:4000", "user_agent": "Phone 1", "transport": "TLS",
                 "instance_id": "urn:uuid:1"},
                {"account": "Alice@Example.com", "contact": "192.168.1.10:5060",
                 "expires_at": t + 1200, "user_agent": "Blink 6.1"},
                {"account": "alice@example.com", "contact": "10.2.2.2:5060", "expires_at": t - 5},
                {"account": "alice@example.com", "contact": "10.3.3.3:5060", "expires": 1},
                {"account": "bob@example.com", "contact": "10.4.4.4:5060", "expires": 300},
            ])))
            .await
            .unwrap();
        assert_eq!(r, report(5, 0), "{b}");
        let devs = devices(&alice).await;
        assert_eq!(
            contacts(&devs),
            [
                "10.0.0.7:5062",
                "10.1.1.1:5060",
                "10.3.3.3:5060",
                "192.168.1.10:5060"
            ],
            "{b}: an expires_at in the past is never shown"
        );
        let new = devs
            .iter()
            .find(|d| d["contact"] == "10.1.1.1:5060")
            .unwrap();
        assert_eq!(new["publicContact"], "80.9.9.9:4000");
        assert_eq!(new["user_agent"], "Phone 1");
        assert_eq!(new["transport"], "tls");
        assert!((598..=600).contains(&new["expires"].as_i64().unwrap()));
        let upd = devs
            .iter()
            .find(|d| d["contact"] == "192.168.1.10:5060")
            .unwrap();
        assert_eq!(upd["user_agent"], "Blink 6.1", "{b}: upserted by contact");
        assert!(upd["expires"].as_i64().unwrap() > 1100);
        assert_eq!(contacts(&devices(&ts.bob()).await).len(), 3, "{b}");
        // Expiry needs no cleanup job: the 1-second registration is gone by itself.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(
            !contacts(&devices(&alice).await).contains(&"10.3.3.3:5060".to_owned()),
            "{b}"
        );
        // expires 0 and an expires_at in the past remove existing registrations.
        let r = s
            .ingest_registrations(&recs(json!([
                {"account": "alice@example.com", "contact": "10.1.1.1:5060", "expires": 0},
                {"account": "alice@example.com", "contact": "192.168.1.10:5060",
                 "expires_at": now() - 1},
            ])))
            .await
            .unwrap();
        assert_eq!(r.accepted, 2);
        assert_eq!(contacts(&devices(&alice).await), ["10.0.0.7:5062"], "{b}");
        // Invalid records name their index; nothing of the batch is stored.
        for (bad, want) in [
            (
                json!({"account": "alice@example.com", "contact": "x", "expires": 604_801}),
                "expires",
            ),
            (
                json!({"account": "alice@example.com", "contact": "x"}),
                "expires",
            ),
            (
                json!({"account": "alice@example.com", "contact": "x", "expires": 5, "expires_at": t + 9}),
                "not both",
            ),
            (
                json!({"account": "alice@example.com", "contact": "x", "expires": 5, "transport": "sctp"}),
                "transport",
            ),
            (
                json!({"account": "alice@example.com", "contact": "", "expires": 5}),
                "contact",
            ),
            (
                json!({"account": "nobody@example.com", "contact": "x", "expires": 5}),
                "does not exist",
            ),
        ] {
            let batch: Vec<RegistrationRecord> = recs(json!([
                {"account": "alice@example.com", "contact": "10.9.9.9:1", "expires": 60},
                bad,
            ]));
            let (i, reason) = bad_index(s.ingest_registrations(&batch).await.unwrap_err());
            assert_eq!(i, 1, "{b}: {reason}");
            assert!(reason.contains(want), "{b}: {reason}");
        }
        assert_eq!(contacts(&devices(&alice).await), ["10.0.0.7:5062"], "{b}");
        ts.stop().await;
    }
}

fn bob_cdrs(t: i64) -> Value {
    json!([
        {"account": "bob@example.com", "direction": "placed", "remoteParty": "sip:carol@other.org",
         "startTime": t - 120, "stopTime": t - 60, "status": "200", "price": "0.0400",
         "sessionId": "feed-1@host", "fromTag": "f1", "toTag": "t1", "proxyIP": "10.0.0.2",
         "media": ["audio", "video"]},
        {"account": "bob@example.com", "direction": "placed", "remoteParty": "sip:+31201111111@example.com",
         "startTime": chrono::DateTime::from_timestamp(t - 100, 0).unwrap().to_rfc3339(),
         "stopTime": t - 40, "duration": 55, "status": 486, "price": 0.25,
         "sessionId": "feed-2@host", "fromTag": "f2", "media": "audio"},
        {"account": "bob@example.com", "direction": "received", "remoteParty": "sip:alice@example.com",
         "displayName": "Alice", "startTime": t - 90, "stopTime": t - 30, "status": "200",
         "sessionId": "feed-1@host", "fromTag": "f1"},
    ])
}

#[tokio::test]
async fn cdrs_are_idempotent_and_debit_once() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let s = &ts.services;
        let bob = ts.bob();
        let before_balance = balance(&bob).await;
        let before_usage = bob.get("action=get_monthly_usage").await.json();
        let before_history = bob.get("action=get_balance_history").await.json();
        let t = now();
        let batch: Vec<CdrRecord> = recs(bob_cdrs(t));
        assert_eq!(s.ingest_cdrs(&batch).await.unwrap(), report(3, 0), "{b}");
        assert_eq!(s.ingest_cdrs(&batch).await.unwrap(), report(3, 3), "{b}");
        // A batch mixing a repeat and a new call.
        let more: Vec<CdrRecord> = recs(json!([
            bob_cdrs(t)[0].clone(),
            {"account": "bob@example.com", "direction": "received", "remoteParty": "sip:x@example.com",
             "startTime": t - 20, "stopTime": t - 10, "status": "487", "sessionId": "feed-3@host",
             "fromTag": "f3"},
        ]));
        assert_eq!(s.ingest_cdrs(&more).await.unwrap(), report(2, 1), "{b}");

        let h = bob.get("action=get_history").await.json();
        let placed = h["placed"].as_array().unwrap();
        let received = h["received"].as_array().unwrap();
        let count =
            |list: &[Value], sid: &str| list.iter().filter(|c| c["sessionId"] == sid).count();
        assert_eq!(count(placed, "feed-1@host"), 1, "{b}");
        assert_eq!(count(placed, "feed-2@host"), 1, "{b}");
        assert_eq!(count(received, "feed-1@host"), 1, "{b}");
        assert_eq!(count(received, "feed-3@host"), 1, "{b}");
        let c1 = placed
            .iter()
            .find(|c| c["sessionId"] == "feed-1@host")
            .unwrap();
        assert_eq!(c1["price"], "0.0400");
        assert_eq!(c1["duration"], 60, "duration defaults to stop − start");
        assert_eq!(c1["media"], json!(["audio", "video"]));
        assert_eq!(c1["proxyIP"], "10.0.0.2");
        assert_eq!(c1["toTag"], "t1");
        assert_eq!(c1["timezone"], "Europe/Amsterdam");
        let c2 = placed
            .iter()
            .find(|c| c["sessionId"] == "feed-2@host")
            .unwrap();
        assert_eq!(c2["price"], "0.2500");
        assert_eq!(c2["status"], "486");
        assert_eq!(c2["duration"], 55);
        let r1 = received
            .iter()
            .find(|c| c["sessionId"] == "feed-1@host")
            .unwrap();
        assert_eq!(r1["displayName"], "Alice");
        assert!(r1.get("price").is_none());

        // Debited once per priced placed call, whatever the repeats.
        assert_eq!(balance(&bob).await, before_balance - 400 - 2500, "{b}");
        let bh = bob.get("action=get_balance_history").await.json();
        let bh = bh.as_array().unwrap();
        assert_eq!(
            bh.len(),
            before_history.as_array().unwrap().len() + 2,
            "{b}"
        );
        for (sid, value) in [("feed-1@host", -0.04), ("feed-2@host", -0.25)] {
            let rows: Vec<&Value> = bh.iter().filter(|e| e["session"] == sid).collect();
            assert_eq!(rows.len(), 1, "{b}: {sid}");
            assert_eq!(rows[0]["action"], "Debit balance");
            assert_eq!(rows[0]["description"], format!("Session {sid}"));
            assert_eq!(rows[0]["value"], value);
        }
        let u = bob.get("action=get_monthly_usage").await.json();
        assert_eq!(
            u["calls"],
            before_usage["calls"].as_i64().unwrap() + 2,
            "{b}"
        );
        assert_eq!(
            u["duration"],
            before_usage["duration"].as_i64().unwrap() + 60 + 55,
            "{b}"
        );
        let price = (u["price"].as_f64().unwrap() * 10_000.0).round() as i64;
        let before_price = (before_usage["price"].as_f64().unwrap() * 10_000.0).round() as i64;
        assert_eq!(price, before_price + 2900, "{b}");
        ts.stop().await;
    }
}

#[tokio::test]
async fn call_in_progress_is_completed_by_its_final_record() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let s = &ts.services;
        let bob = ts.bob();
        let before = balance(&bob).await;
        let t = now();
        let start = json!({"account": "bob@example.com", "direction": "placed",
            "remoteParty": "sip:carol@other.org", "startTime": t - 30, "status": "200",
            "sessionId": "live@host", "fromTag": "fl"});
        let mut done = start.clone();
        done["stopTime"] = json!(t - 5);
        done["price"] = json!("0.0150");
        assert_eq!(
            s.ingest_cdrs(&recs(json!([start.clone()]))).await.unwrap(),
            report(1, 0)
        );
        let p = bob.get("action=get_prepaid").await.json();
        assert!(
            p["active_calls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["sessionId"] == "live@host"),
            "{b}: {p}"
        );
        let h = bob.get("action=get_history").await.json();
        assert!(!h.to_string().contains("live@host"), "{b}");
        // The final record completes it (not a duplicate) and debits once.
        let batch: Vec<CdrRecord> = recs(json!([done.clone(), done, start]));
        assert_eq!(s.ingest_cdrs(&batch).await.unwrap(), report(3, 2), "{b}");
        let h = bob.get("action=get_history").await.json();
        let placed = h["placed"].as_array().unwrap();
        let c = placed
            .iter()
            .find(|c| c["sessionId"] == "live@host")
            .unwrap();
        assert_eq!(c["price"], "0.0150");
        assert_eq!(c["duration"], 25);
        assert_eq!(balance(&bob).await, before - 150, "{b}");
        // A price on a call in progress is refused (it would be charged before the call ends).
        let mut priced_start = json!({"account": "bob@example.com", "direction": "placed",
            "remoteParty": "sip:x@example.com", "startTime": t, "status": "100",
            "sessionId": "live2@host", "fromTag": "f", "price": "0.01"});
        let (i, reason) = bad_index(
            s.ingest_cdrs(&recs(json!([priced_start.clone()])))
                .await
                .unwrap_err(),
        );
        assert_eq!((i, reason.contains("price")), (0, true), "{b}: {reason}");
        priced_start["price"] = Value::Null;
        assert_eq!(
            s.ingest_cdrs(&recs(json!([priced_start]))).await.unwrap(),
            report(1, 0)
        );
        ts.stop().await;
    }
}

#[tokio::test]
async fn a_bad_record_rejects_the_whole_batch() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let s = &ts.services;
        let bob = ts.bob();
        let t = now();
        let history = bob.get("action=get_history").await.json();
        let bh = bob.get("action=get_balance_history").await.json();
        let bal = balance(&bob).await;
        let good = bob_cdrs(t);
        let ok3 = json!({"account": "bob@example.com", "direction": "placed",
            "remoteParty": "sip:y@example.com", "startTime": t - 10, "stopTime": t - 5,
            "status": "200", "price": "1.00", "sessionId": "feed-4@host", "fromTag": "f4"});
        let mut cases: Vec<(Value, &str)> = Vec::new();
        let with = |k: &str, v: Value| {
            let mut r = ok3.clone();
            r[k] = v;
            r
        };
        cases.push((with("price", json!("0.00001")), "price"));
        cases.push((with("price", json!(-1)), "negative"));
        cases.push((with("direction", json!("sideways")), "direction"));
        cases.push((with("startTime", json!("yesterday")), "startTime"));
        cases.push((
            with("stopTime", json!(t - 20)),
            "stop time before start time",
        ));
        cases.push((with("duration", json!(-1)), "duration"));
        cases.push((with("status", json!(42)), "status"));
        cases.push((with("sessionId", json!("")), "sessionId"));
        cases.push((with("remoteParty", json!("a\u{0}b")), "control"));
        cases.push((
            with("account", json!("nobody@example.com")),
            "does not exist",
        ));
        cases.push((with("account", json!("not an address")), "account"));
        let mut received_priced = ok3.clone();
        received_priced["direction"] = json!("received");
        cases.push((received_priced, "only allowed on placed calls"));
        for (bad, want) in cases {
            let batch = json!([good[0], good[1], good[2], bad, ok3]);
            let (i, reason) = bad_index(s.ingest_cdrs(&recs(batch)).await.unwrap_err());
            assert_eq!(i, 3, "{b}: {reason}");
            assert!(
                reason.contains(want),
                "{b}: {reason:?} should mention {want:?}"
            );
        }
        // A record that does not parse is named by parse_batch (what an HTTP handler uses).
        let text = json!([good[0], good[1], good[2], {"account": "bob@example.com", "oops": 1}])
            .to_string();
        let (i, reason) = bad_index(parse_batch::<CdrRecord>(&text).unwrap_err());
        assert_eq!(i, 3);
        assert!(reason.contains("unknown field `oops`"), "{reason}");
        assert_eq!(
            parse_batch::<CdrRecord>(&good.to_string()).unwrap().len(),
            3
        );
        // Too large a batch.
        let big: Vec<BalanceRecord> = (0..=MAX_BATCH)
            .map(|_| BalanceRecord {
                account: "bob@example.com".into(),
                value: "1".into(),
                description: "x".into(),
                session: None,
            })
            .collect();
        let (i, reason) = bad_index(s.ingest_balance(&big).await.unwrap_err());
        assert_eq!(i, MAX_BATCH, "{reason}");
        // Balance: a bad value at index 3 after good credits stores none of them.
        let credits = json!([
            {"account": "bob@example.com", "value": "5", "description": "top-up"},
            {"account": "bob@example.com", "value": 2.5, "description": "top-up"},
            {"account": "alice@example.com", "value": "-1.0000", "description": "fee", "session": "s"},
            {"account": "bob@example.com", "value": "1,5", "description": "top-up"},
        ]);
        let (i, reason) = bad_index(s.ingest_balance(&recs(credits)).await.unwrap_err());
        assert_eq!(i, 3, "{b}: {reason}");
        for (v, want) in [(json!(0), "0"), (json!(true), "")] {
            let r = serde_json::from_value::<BalanceRecord>(
                json!({"account": "bob@example.com", "value": v, "description": "d"}),
            );
            if let Ok(r) = r {
                let (i, reason) = bad_index(s.ingest_balance(&[r]).await.unwrap_err());
                assert_eq!(i, 0);
                assert!(reason.contains(want), "{reason}");
            }
        }
        // Nothing of any rejected batch is visible.
        assert_eq!(bob.get("action=get_history").await.json(), history, "{b}");
        assert_eq!(
            bob.get("action=get_balance_history").await.json(),
            bh,
            "{b}"
        );
        assert_eq!(balance(&bob).await, bal, "{b}");
        ts.stop().await;
    }
}

#[tokio::test]
async fn concurrent_debits_never_lose_an_update() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let carol = ts.client("carol", CAROL_PW, "other.org");
        let before = balance(&carol).await;
        let rows_before = carol
            .get("action=get_balance_history")
            .await
            .json()
            .as_array()
            .unwrap()
            .len();
        let services = Arc::new(ts.services.clone());
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let s = services.clone();
                tokio::spawn(async move {
                    let r = BalanceRecord {
                        account: "carol@other.org".into(),
                        value: "-0.0100".into(),
                        description: format!("debit {i}"),
                        session: Some(format!("s{i}")),
                    };
                    s.ingest_balance(&[r]).await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), report(1, 0), "{b}");
        }
        assert_eq!(balance(&carol).await, before - 5_000, "{b}");
        let stored = ts.services.find_account("carol@other.org").await.unwrap();
        assert_eq!(stored.balance, before - 5_000, "{b}");
        let bh = carol.get("action=get_balance_history").await.json();
        let bh = bh.as_array().unwrap();
        assert_eq!(bh.len(), rows_before + 50, "{b}");
        // Every row's final balance is distinct: each debit saw the one before it.
        let mut finals: Vec<i64> = bh
            .iter()
            .filter(|e| e["description"].as_str().unwrap().starts_with("debit "))
            .map(|e| (e["balance"].as_f64().unwrap() * 10_000.0).round() as i64)
            .collect();
        finals.sort();
        finals.dedup();
        assert_eq!(finals.len(), 50, "{b}");
        assert_eq!(finals[0], before - 5_000, "{b}");
        ts.stop().await;
    }
}

#[tokio::test]
async fn concurrent_batches_in_opposite_orders_all_commit() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let s = Arc::new(ts.services.clone());
        let accounts = ["alice@example.com", "bob@example.com", "carol@other.org"];
        let mut before = Vec::new();
        for a in accounts {
            before.push(s.find_account(a).await.unwrap().balance);
        }
        let t = now();
        let rounds = 8;
        let per_round = 60;
        for round in 0..rounds {
            let mut batch: Vec<CdrRecord> = recs(Value::Array(
                (0..per_round)
                    .map(|i| {
                        json!({"account": accounts[i % 3], "direction": "placed",
                           "remoteParty": "sip:x@example.com", "startTime": t - 100,
                           "stopTime": t - 50, "status": "200", "price": "0.0001",
                           "sessionId": format!("race-{round}-{i}"), "fromTag": "f"})
                    })
                    .collect(),
            ));
            let forward = batch.clone();
            batch.reverse();
            let (s1, s2) = (s.clone(), s.clone());
            let a = tokio::spawn(async move { s1.ingest_cdrs(&forward).await });
            let r = tokio::spawn(async move { s2.ingest_cdrs(&batch).await });
            let (a, r) = (a.await.unwrap(), r.await.unwrap());
            let (a, r) = (
                a.unwrap_or_else(|e| panic!("{b}: {e}")),
                r.unwrap_or_else(|e| panic!("{b}: {e}")),
            );
            assert_eq!(
                a.duplicates + r.duplicates,
                per_round,
                "{b}: each call stored once"
            );
        }
        for (a, before) in accounts.into_iter().zip(before) {
            let after = s.find_account(a).await.unwrap().balance;
            assert_eq!(after, before - (rounds * per_round / 3) as i64, "{b}: {a}");
        }
        ts.stop().await;
    }
}

/// Runs `sipsettings import …` against the test server's store.
fn import(ts: &TestServer, kind: &str, file: &str, stdin: Option<&str>) -> (bool, String, String) {
    let mut c = Command::new(BIN);
    c.args(["import", kind, file])
        .env_remove("RUST_LOG")
        .env_remove("SIPSETTINGS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in ts.backing.env() {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_file(dir: &std::path::Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn import_command() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let dir = tempfile::tempdir().unwrap();
        let alice = ts.alice();
        let reg = |contact: &str| {
            json!({"account": "alice@example.com", "contact": contact, "expires": 600,
                   "transport": "tcp", "user_agent": "imported"})
            .to_string()
        };
        // A bad line: error names the line, nothing of its batch is stored.
        let file = write_file(
            dir.path(),
            "bad.jsonl",
            &[
                reg("10.5.5.1:5060"),
                String::new(),
                reg("10.5.5.2:5060"),
                r#"{"account": "alice@example.com", "contact": "10.5.5.3:5060", "expires": "soon"}"#
                    .into(),
            ],
        );
        let (ok, out, err) = import(&ts, "registrations", &file, None);
        assert!(!ok, "{b}: {out}");
        assert!(err.contains("error: line 4: "), "{b}: {err}");
        assert_eq!(devices(&alice).await.len(), 2, "{b}");
        // A record the service rejects is reported with its line too.
        let file = write_file(
            dir.path(),
            "bad2.jsonl",
            &[
                reg("10.5.5.1:5060"),
                reg("10.5.5.2:5060").replace("alice", "nobody"),
            ],
        );
        let (ok, _, err) = import(&ts, "registrations", &file, None);
        assert!(!ok);
        assert!(
            err.contains("error: line 2: account nobody@example.com does not exist"),
            "{b}: {err}"
        );
        // Good files, and stdin.
        let file = write_file(
            dir.path(),
            "regs.jsonl",
            &[reg("10.5.5.1:5060"), String::new(), reg("10.5.5.2:5060")],
        );
        let (ok, out, err) = import(&ts, "registrations", &file, None);
        assert!(ok, "{b}: {err}");
        assert_eq!(out.trim(), "imported 2 records (0 duplicates)");
        let devs = devices(&alice).await;
        assert_eq!(devs.len(), 4, "{b}");
        assert!(devs.iter().any(|d| d["user_agent"] == "imported"));
        let t = now();
        let cdrs: Vec<String> = bob_cdrs(t)
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        let file = write_file(dir.path(), "cdrs.jsonl", &cdrs);
        let (ok, out, err) = import(&ts, "cdrs", &file, None);
        assert!(ok, "{b}: {err}");
        assert_eq!(out.trim(), "imported 3 records (0 duplicates)");
        let (ok, out, _) = import(&ts, "cdrs", "-", Some(&(cdrs.join("\n") + "\n")));
        assert!(ok);
        assert_eq!(out.trim(), "imported 3 records (3 duplicates)");
        let carol = ts.client("carol", CAROL_PW, "other.org");
        let before = balance(&carol).await;
        let line = r#"{"account": "carol@other.org", "value": "12.5", "description": "CC 7"}"#;
        let (ok, out, err) = import(&ts, "balance", "-", Some(line));
        assert!(ok, "{b}: {err}");
        assert_eq!(out.trim(), "imported 1 records (0 duplicates)");
        let stored = ts.services.find_account("carol@other.org").await.unwrap();
        assert_eq!(stored.balance, before + 125_000, "{b}");
        // More than one batch: the complete batches before a bad line stay committed.
        let mut lines: Vec<String> = (0..MAX_BATCH + 2)
            .map(|i| {
                json!({"account": "carol@other.org", "direction": "received",
                       "remoteParty": "sip:x@example.com", "startTime": t - 100, "stopTime": t,
                       "status": "200", "sessionId": format!("bulk-{i}"), "fromTag": "f"})
                .to_string()
            })
            .collect();
        lines.push("not json".into());
        let file = write_file(dir.path(), "bulk.jsonl", &lines);
        let (ok, _, err) = import(&ts, "cdrs", &file, None);
        assert!(!ok);
        assert!(
            err.contains(&format!("error: line {}: ", MAX_BATCH + 3)),
            "{b}: {err}"
        );
        assert!(err.contains(&format!("{MAX_BATCH} records")), "{b}: {err}");
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE session_id LIKE 'bulk-%'")
                .fetch_one(ts.services.store.pool())
                .await
                .unwrap();
        assert_eq!(n, MAX_BATCH as i64, "{b}");
        // The README's example lines import as documented.
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let block = readme
            .split("```jsonl\n")
            .nth(1)
            .and_then(|r| r.split("```").next())
            .expect("README has a jsonl block");
        let examples: Vec<&str> = block.lines().collect();
        assert_eq!(examples.len(), 3);
        for (kind, line) in ["registrations", "cdrs", "balance"]
            .into_iter()
            .zip(examples)
        {
            let (ok, out, err) = import(&ts, kind, "-", Some(line));
            assert!(ok, "{b}: {kind}: {err}");
            assert_eq!(out.trim(), "imported 1 records (0 duplicates)", "{kind}");
        }
        let (ok, _, err) = import(&ts, "cdrs", "/nonexistent/file.jsonl", None);
        assert!(!ok);
        assert!(err.contains("cannot read /nonexistent/file.jsonl"), "{err}");
        ts.stop().await;
    }
}
