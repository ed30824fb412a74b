//! Journal replication (spec §5): the contract, and that nothing acknowledged is ever lost,
//! duplicated or reordered — under concurrency, across two server processes, with cut
//! connections and after SIGKILL.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::serve;
use crate::harness::{ALICE_PW, Backing, Client, TestServer, backends};

async fn put(c: &Client, uuid: &str, rows: &Value) -> Value {
    let r = c
        .post(
            "action=put_journal_entries",
            &[("uuid", uuid), ("data", &rows.to_string())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

async fn get(c: &Client, query: &str) -> Value {
    let r = c.get(&format!("action=get_journal_entries&{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// Rows as Blink sends them: an object keyed by message id.
pub(crate) fn blink_rows(prefix: &str, n: usize) -> Value {
    let mut m = serde_json::Map::new();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        m.insert(
            id.clone(),
            json!({"id": id, "data": format!("cipher-{id}")}),
        );
    }
    Value::Object(m)
}

#[tokio::test]
async fn contract() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        let r = put(&c, "dev-a", &blink_rows("m", 2)).await;
        assert_eq!(r["success"], true);
        let results = r["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["id"], "m-0");
        assert_eq!(results[0]["source"], "default");
        let j0: i64 = results[0]["journal_id"].as_str().unwrap().parse().unwrap();
        let j1: i64 = results[1]["journal_id"].as_str().unwrap().parse().unwrap();
        assert!(j1 > j0);
        // Array form, any JSON as data, rows without data skipped.
        let r = put(
            &c,
            "dev-b",
            &json!([{"id": 7, "data": {"nested": [1, "x"]}}, {"id": "no-data"}]),
        )
        .await;
        assert_eq!(r["results"].as_array().unwrap().len(), 1);
        assert_eq!(r["results"][0]["id"], "7");
        // Entries of the current second are held back until it is over.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let v = get(&c, "").await;
        assert_eq!(v["success"], true);
        assert_eq!(v["error_message"], Value::Null);
        assert_eq!(v["rows"], 3);
        let e = &v["results"][0];
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "id",
                "source",
                "timestamp",
                "account",
                "uuid",
                "ip_address",
                "data"
            ]
        );
        assert_eq!(e["id"], j0.to_string());
        assert!(e["timestamp"].is_i64());
        assert_eq!(e["account"], "alice@example.com");
        assert_eq!(e["uuid"], "dev-a");
        assert_eq!(e["ip_address"], "127.0.0.1");
        assert_eq!(e["data"], "cipher-m-0");
        assert_eq!(v["results"][2]["data"], json!({"nested": [1, "x"]}));
        assert!(v.get("summary").is_none());
        // Filters, Blink-style unencoded query.
        let v = get(&c, "except_uuid=dev-a&after_timestamp=0").await;
        assert_eq!(v["rows"], 1);
        let v = get(&c, &format!("after_id={j0}")).await;
        assert_eq!(v["rows"], 2);
        let ts0 = v["results"][0]["timestamp"].as_i64().unwrap();
        assert_eq!(get(&c, &format!("after_timestamp={ts0}")).await["rows"], 0);
        assert_eq!(
            get(&c, &format!("after_timestamp={}", ts0 - 1)).await["rows"],
            3
        );
        assert_eq!(get(&c, "limit=1").await["rows"], 1);
        // Summary lists every entry (except except_uuid), ignoring after_*.
        let v = get(&c, &format!("summary=1&except_uuid=dev-b&after_id={j1}")).await;
        assert_eq!(v["rows"], 0);
        let summary = v["summary"].as_array().unwrap();
        assert_eq!(summary.len(), 2);
        assert_eq!(
            summary[0],
            json!({"journal_id": j0.to_string(), "timestamp": ts0})
        );
        // Bob sees none of it, and cannot delete alice's entries.
        let bob = ts.bob();
        assert_eq!(get(&bob, "summary=1").await["rows"], 0);
        let r = bob
            .post(
                "action=delete_journal_entries",
                &[("data", &format!("[\"{j0}\", {j1}]"))],
            )
            .await;
        assert_eq!(r.json(), json!({"success": true, "deleted": 0}));
        assert_eq!(get(&c, "").await["rows"], 3);
        // Alice deletes hers: strings and numbers, or journal_id.
        let r = c
            .post(
                "action=delete_journal_entries",
                &[("data", &format!("[\"{j0}\", {j1}, \"x\"]"))],
            )
            .await;
        assert_eq!(r.json(), json!({"success": true, "deleted": 2}));
        let last = get(&c, "").await["results"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = c
            .post("action=delete_journal_entries", &[("journal_id", &last)])
            .await;
        assert_eq!(r.json()["deleted"], 1);
        assert_eq!(get(&c, "").await["rows"], 0);
        let count = ts.services.find_account("alice@example.com").await.unwrap();
        let n: i64 =
            sqlx::query_scalar::<_, i64>("SELECT journal_count FROM accounts WHERE id = $1")
                .bind(count.id)
                .fetch_one(ts.services.store.pool())
                .await
                .unwrap();
        assert_eq!(n, 0);
        ts.stop().await;
    }
}

#[tokio::test]
async fn errors_and_limits() {
    for b in backends() {
        let ts = TestServer::start_with(b, |c| {
            c.journal.max_entries_per_account = 5;
            c.journal.max_rows_per_call = 4;
            c.journal.max_row_bytes = 100;
            c.journal.max_call_bytes = 1000;
        })
        .await;
        ts.fixture().await;
        let c = ts.alice();
        let err = |msg: &str| json!({"results": [], "success": false, "error_message": msg});
        let p = |form: Vec<(&'static str, String)>| {
            let c = &c;
            async move {
                let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                c.post("action=put_journal_entries", &pairs).await.json()
            }
        };
        assert_eq!(p(vec![("data", "[]".into())]).await, err("Missing uuid"));
        assert_eq!(p(vec![("uuid", "d".into())]).await, err("Missing data"));
        assert_eq!(
            p(vec![("uuid", "d".into()), ("data", "{not json".into())]).await,
            err("Json decode error")
        );
        for (what, form) in [
            (
                "wrong shape",
                vec![("uuid", "d".to_owned()), ("data", "\"str\"".to_owned())],
            ),
            (
                "row not object",
                vec![("uuid", "d".into()), ("data", "[1]".into())],
            ),
            (
                "uuid too long",
                vec![("uuid", "u".repeat(257)), ("data", "[]".into())],
            ),
            (
                "too many rows",
                vec![
                    ("uuid", "d".into()),
                    ("data", blink_rows("r", 5).to_string()),
                ],
            ),
            (
                "row too big",
                vec![
                    ("uuid", "d".into()),
                    (
                        "data",
                        json!([{"id": "a", "data": "x".repeat(200)}]).to_string(),
                    ),
                ],
            ),
            (
                "call too big",
                vec![
                    ("uuid", "d".into()),
                    ("data", format!("[{}]", vec!["{\"data\":1}"; 200].join(","))),
                ],
            ),
            (
                "bad action",
                vec![
                    ("uuid", "d".into()),
                    ("data", "[{\"data\":1,\"action\":\"zap\"}]".into()),
                ],
            ),
            (
                "non-utf8",
                vec![
                    ("uuid", "d".into()),
                    ("data", String::from_utf8_lossy(b"\xff").into_owned()),
                ],
            ),
        ] {
            let v = p(form).await;
            assert_eq!(v["success"], false, "{what}: {v}");
            assert_eq!(v["results"], json!([]), "{what}");
            assert!(!v["error_message"].as_str().unwrap().is_empty());
        }
        // Raw non-UTF-8 bytes in the body.
        let r = c
            .send(
                "POST",
                &c.target("action=put_journal_entries"),
                crate::harness::Body::Raw(
                    "application/x-www-form-urlencoded",
                    b"uuid=d&data=%ff%fe".to_vec(),
                ),
            )
            .await;
        assert_eq!(r.json()["success"], false);
        // Per-account limit: the call that would exceed it is refused whole.
        assert_eq!(put(&c, "d", &blink_rows("a", 4)).await["success"], true);
        let v = put(&c, "d", &blink_rows("b", 2)).await;
        assert_eq!(v["success"], false);
        assert!(v["error_message"].as_str().unwrap().contains("full"));
        assert_eq!(put(&c, "d", &blink_rows("c", 1)).await["success"], true);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(get(&c, "").await["rows"], 5);
        // get parameters.
        for q in [
            "limit=0",
            "limit=5001",
            "limit=abc",
            "after_id=x",
            "after_timestamp=1.5",
            "after_id=-1",
        ] {
            let r = c.get(&format!("action=get_journal_entries&{q}")).await;
            assert_eq!(r.success(), Some(false), "{q}");
        }
        assert_eq!(get(&c, "after_timestamp=&after_id=0").await["rows"], 5);
        // delete parameters.
        for (form, msg) in [
            (vec![], "Missing data"),
            (vec![("data", "[]")], "No journal entries provided"),
            (vec![("data", "{bad")], "Json decode error"),
        ] {
            let r = c.post("action=delete_journal_entries", &form).await;
            assert_eq!(r.json(), json!({"success": false, "error_message": msg}));
        }
        assert_eq!(get(&c, "").await["rows"], 5);
        ts.stop().await;
    }
}

/// Polls like Blink until it holds `want` entries or time runs out; returns ids in arrival order.
async fn poll_all(c: &Client, by_timestamp: bool, want: usize, deadline: Instant) -> Vec<i64> {
    let mut seen: Vec<i64> = Vec::new();
    let mut after_id = 0i64;
    let mut after_ts = 0i64;
    while seen.len() < want && Instant::now() < deadline {
        let q = if by_timestamp {
            format!("except_uuid=reader&after_timestamp={after_ts}")
        } else {
            format!("after_id={after_id}")
        };
        let v = get(c, &q).await;
        for e in v["results"].as_array().unwrap() {
            let id: i64 = e["id"].as_str().unwrap().parse().unwrap();
            seen.push(id);
            after_id = after_id.max(id);
            after_ts = after_ts.max(e["timestamp"].as_i64().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

fn assert_exact(seen: &[i64], acked: &[i64], what: &str) {
    let mut sorted = seen.to_vec();
    sorted.sort_unstable();
    assert_eq!(seen, sorted.as_slice(), "{what}: not in journal_id order");
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "{what}: duplicates");
    let mut want = acked.to_vec();
    want.sort_unstable();
    assert_eq!(sorted, want, "{what}: missing or extra entries");
}

pub(crate) async fn writers_and_readers(bases: Vec<String>, writers: usize, calls: usize) {
    // One client (device) per task: the spec refuses a non-increasing nc on one nonce, so
    // concurrent requests must not share a nonce.
    let client = |i: usize| {
        Arc::new(Client::new(
            &bases[i % bases.len()],
            "alice",
            ALICE_PW,
            "example.com",
        ))
    };
    let total = writers * calls * 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut readers = Vec::new();
    for (i, by_ts) in [(0usize, false), (1, true), (0, true), (1, false)] {
        let c = client(i);
        readers.push(tokio::spawn(async move {
            poll_all(&c, by_ts, total, deadline).await
        }));
    }
    let mut tasks = Vec::new();
    for w in 0..writers {
        let c = client(w);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for k in 0..calls {
                let v = put(
                    &c,
                    &format!("writer-{w}"),
                    &blink_rows(&format!("w{w}c{k}"), 2),
                )
                .await;
                assert_eq!(v["success"], true, "{v}");
                for r in v["results"].as_array().unwrap() {
                    ids.push(r["journal_id"].as_str().unwrap().parse::<i64>().unwrap());
                }
            }
            ids
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), total);
    for (i, r) in readers.into_iter().enumerate() {
        let seen = r.await.unwrap();
        assert_exact(&seen, &acked, &format!("reader {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_lose_entries() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        writers_and_readers(vec![ts.base.clone()], 6, 15).await;
        ts.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_processes_share_postgres() {
    if !backends().contains(&"postgres") {
        return;
    }
    let bk = Backing::new("postgres").await;
    let key = [(
        "SIPSETTINGS_SECRET_KEY",
        "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
    )];
    let prep = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sipsettings"));
        c.args(args).env("SIPSETTINGS_SECRET_KEY", key[0].1);
        for (k, v) in bk.env() {
            c.env(k, v);
        }
        assert!(c.output().unwrap().status.success(), "{args:?}");
    };
    prep(&["domain", "add", "example.com"]);
    prep(&[
        "account",
        "add",
        "alice@example.com",
        "--password",
        ALICE_PW,
    ]);
    let s1 = serve(&bk, &[], &key);
    let s2 = serve(&bk, &[], &key);
    let bases = vec![
        format!("http://127.0.0.1:{}", s1.port),
        format!("http://127.0.0.1:{}", s2.port),
    ];
    // A nonce from one replica is good on the other (shared secret).
    writers_and_readers(bases, 6, 15).await;
}

#[tokio::test]
async fn cut_connection_stores_all_or_nothing() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        let addr = ts.base.trim_start_matches("http://").to_owned();
        let target = "/settings.phtml?action=put_journal_entries&realm=example.com";
        // Get a valid Authorization header from a real challenge.
        let auth = {
            let r = reqwest::get(format!("{}{target}", ts.base)).await.unwrap();
            let ch = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
            let mut prompt = digest_auth::parse(&ch).unwrap();
            let ctx = digest_auth::AuthContext::new_post("alice", ALICE_PW, target, None::<&[u8]>);
            prompt.respond(&ctx).unwrap().to_header_string()
        };
        let rows = blink_rows("cut", 50).to_string();
        let body = format!("uuid=cutter&data={}", urlencode(&rows));
        let send = |full: bool| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            let head = format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            let part = if full { body.len() } else { body.len() / 2 };
            s.write_all(&body.as_bytes()[..part]).unwrap();
            // Drop the connection without reading the answer.
            s.shutdown(std::net::Shutdown::Both).ok();
        };
        send(false);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(get(&c, "").await["rows"], 0, "a half-sent call stored rows");
        send(true);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let n = get(&c, "").await["rows"].as_i64().unwrap();
        assert!(n == 0 || n == 50, "partial write: {n} rows");
        ts.stop().await;
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_entry() {
    for b in backends() {
        let bk = Backing::new(b).await;
        let run = |args: &[&str]| {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sipsettings"));
            c.args(args);
            for (k, v) in bk.env() {
                c.env(k, v);
            }
            assert!(c.output().unwrap().status.success(), "{args:?}");
        };
        run(&["domain", "add", "example.com"]);
        run(&[
            "account",
            "add",
            "alice@example.com",
            "--password",
            ALICE_PW,
        ]);
        let mut srv = serve(&bk, &[], &[]);
        let base = format!("http://127.0.0.1:{}", srv.port);
        let c = Arc::new(Client::new(&base, "alice", ALICE_PW, "example.com"));
        let acked = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
        let stream = {
            let c = c.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                for k in 0.. {
                    let rows = blink_rows(&format!("k{k}"), 5).to_string();
                    match try_put(&c, &rows).await {
                        Some(ids) => acked.lock().unwrap().extend(ids),
                        None => break,
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // SIGKILL in the middle of the stream.
        srv.child.kill().unwrap();
        srv.child.wait().unwrap();
        let _ = stream.await;
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() >= 10,
            "too few writes before the kill: {}",
            acked.len()
        );
        drop(srv);
        let srv = serve(&bk, &[], &[]);
        let c = Client::new(
            &format!("http://127.0.0.1:{}", srv.port),
            "alice",
            ALICE_PW,
            "example.com",
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let v = get(&c, "").await;
        let stored: Vec<i64> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().parse().unwrap())
            .collect();
        let stored_set: std::collections::BTreeSet<i64> = stored.iter().copied().collect();
        for id in &acked {
            assert!(
                stored_set.contains(id),
                "acknowledged entry {id} lost ({b})"
            );
        }
        // Whatever was stored came in whole calls of 5.
        assert_eq!(stored.len() % 5, 0, "a call was stored in part");
    }
}

/// One put; `None` when the server is gone or did not acknowledge.
async fn try_put(c: &Client, rows: &str) -> Option<Vec<i64>> {
    let form = format!("uuid=killer&data={}", urlencode(rows));
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        c.try_send(
            "POST",
            &c.target("action=put_journal_entries"),
            crate::harness::Body::Raw("application/x-www-form-urlencoded", form.into_bytes()),
        ),
    )
    .await
    .ok()??;
    let v: Value = serde_json::from_str(&r.text).ok()?;
    if v["success"] != true {
        return None;
    }
    Some(
        v["results"]
            .as_array()?
            .iter()
            .filter_map(|r| r["journal_id"].as_str()?.parse().ok())
            .collect(),
    )
}

#[tokio::test]
async fn prune_removes_old_entries_in_batches() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        put(&c, "d", &blink_rows("old", 30)).await;
        put(&c, "d", &blink_rows("new", 3)).await;
        let alice = ts.services.find_account("alice@example.com").await.unwrap();
        let mut tx = ts.services.store.begin_write().await.unwrap();
        sqlx::query("UPDATE journal_entries SET timestamp = timestamp - 40 * 86400 WHERE client_id LIKE 'old-%'")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let n = ts.services.journal_prune(30, Some(&alice)).await.unwrap();
        assert_eq!(n, 30);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(get(&c, "").await["rows"], 3);
        let count: i64 =
            sqlx::query_scalar::<_, i64>("SELECT journal_count FROM accounts WHERE id = $1")
                .bind(alice.id)
                .fetch_one(ts.services.store.pool())
                .await
                .unwrap();
        assert_eq!(count, 3);
        ts.stop().await;
    }
    // The CLI command.
    let bk = Backing::new("sqlite").await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sipsettings"));
    cmd.args(["journal", "prune", "--older-than", "30"]);
    for (k, v) in bk.env() {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("deleted 0 journal entries"));
}
