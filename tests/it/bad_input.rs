//! Bad input (spec / issue: missing, empty, oversized, wrong type, non-UTF-8, injection-like):
//! always the JSON error shape, never a 500, and nothing stored changes.

use crate::harness::{Body, TestServer, backends, read, snapshot};

/// Parameters of every action that takes any.
const PARAMS: &[(&str, &[&str])] = &[
    ("add_alias", &["username"]),
    ("delete_alias", &["username"]),
    (
        "set_call_forwarding",
        &["FUNC", "FNOL", "FBUS", "FNOA", "FUNV"],
    ),
    ("set_accept_rules", &["rules"]),
    ("set_reject_rules", &["rules"]),
    ("set_dnd_on", &["duration"]),
    ("get_balance_history", &["csv"]),
    ("get_identity", &["account", "export"]),
    ("put_journal_entries", &["uuid", "data"]),
    (
        "get_journal_entries",
        &[
            "except_uuid",
            "after_id",
            "after_timestamp",
            "limit",
            "summary",
        ],
    ),
    ("delete_journal_entries", &["data", "journal_id"]),
];

/// Raw (already URL-encoded) bad values.
fn bad_values() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("blank", "%20%20".into()),
        ("oversized", "a".repeat(1_000_000)),
        ("wrong_type_json", "%7B%22x%22%3A%5B1%2C2%5D%7D".into()),
        ("wrong_type_number", "-999999999999999999999".into()),
        ("non_utf8", "%ff%fe%fd".into()),
        ("nul", "a%00b".into()),
        (
            "sql",
            "%27%20OR%201%3D1%3B%20DROP%20TABLE%20accounts%3B%20--".into(),
        ),
        ("html", "%3Cscript%3Ealert(1)%3C%2Fscript%3E".into()),
        ("path", "..%2F..%2Fetc%2Fpasswd".into()),
        ("crlf", "x%0d%0aSet-Cookie%3A%20a%3Db".into()),
        ("unicode", "%E2%80%AE%F0%9F%98%80".into()),
    ]
}

fn assert_json_answer(r: &crate::harness::Resp, what: &str) {
    assert_ne!(r.status, 500, "{what}: {}", r.text);
    assert!(
        [200, 403, 413].contains(&r.status),
        "{what}: unexpected status {} {}",
        r.status,
        r.text
    );
    assert!(
        r.content_type().starts_with("application/json"),
        "{what}: {}",
        r.content_type()
    );
    // Setters answer {success, error_message}; getters their object or list.
    let v = r.json();
    assert!(
        v.get("success").is_some() || what.starts_with("get_"),
        "{what}: {}",
        r.text
    );
}

#[tokio::test]
async fn every_parameter_rejects_bad_values_without_changes() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        for (action, params) in PARAMS {
            for param in *params {
                // Missing parameter.
                let before = snapshot(&c).await;
                let r = c.get(&format!("action={action}")).await;
                // Getters and set_dnd_on work without their optional parameters.
                if !matches!(
                    *action,
                    "get_balance_history" | "get_identity" | "set_dnd_on" | "get_journal_entries"
                ) {
                    assert_eq!(
                        r.success(),
                        Some(action.starts_with("set_call")),
                        "{action} missing: {}",
                        r.text
                    );
                }
                if r.success() == Some(false) {
                    assert_eq!(snapshot(&c).await, before, "{action} missing {param}");
                }
                for (kind, value) in bad_values() {
                    let what = format!("{action} {param}={kind} ({b})");
                    let before = snapshot(&c).await;
                    // Oversized values go in the body; the rest both ways.
                    let form_body = format!("action={action}&{param}={value}");
                    let r = c
                        .send(
                            "POST",
                            &c.target("x=1"),
                            Body::Raw("application/x-www-form-urlencoded", form_body.into_bytes()),
                        )
                        .await;
                    if r.headers
                        .get("content-type")
                        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/csv"))
                    {
                        continue;
                    }
                    assert_json_answer(&r, &what);
                    let ok = r.success() == Some(true);
                    if !ok {
                        assert_eq!(snapshot(&c).await, before, "{what}: data changed on error");
                    } else {
                        // What a bad value may legitimately do: clear a forwarding, enable DND
                        // until turned off, be ignored (export, csv), or be a valid name.
                        let allowed: &[&str] = match *action {
                            "set_call_forwarding" => &["empty", "blank", "wrong_type_number"],
                            "set_dnd_on" => &["empty", "blank"],
                            "add_alias" | "delete_alias" => &["wrong_type_number"],
                            "get_balance_history" | "get_identity" => &[kind],
                            // Reading with an odd device id or summary flag is a valid read.
                            "get_journal_entries"
                                if matches!(*param, "except_uuid" | "summary") =>
                            {
                                &[kind]
                            }
                            "get_journal_entries" => &["empty", "blank"],
                            _ => &[],
                        };
                        assert!(
                            allowed.contains(&kind),
                            "{what}: unexpected success {}",
                            r.text
                        );
                    }
                    if value.len() < 10_000 {
                        let r = c.get(&format!("action={action}&{param}={value}")).await;
                        assert_json_answer(&r, &format!("{what} GET"));
                    }
                }
            }
        }
        // The account= parameter with garbage is a 403 for every action, and changes nothing.
        let before = snapshot(&c).await;
        let r = c
            .get("action=set_privacy_on&account=%27%20OR%201%3D1")
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(snapshot(&c).await, before);
        ts.stop().await;
    }
}

#[tokio::test]
async fn action_and_realm_garbage() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        for (_, v) in bad_values() {
            if v.len() > 10_000 {
                continue;
            }
            let r = c.get(&format!("action={v}")).await;
            assert_json_answer(&r, &format!("action={v}"));
            assert_eq!(r.success(), Some(false));
            let r = read(
                reqwest::get(format!(
                    "{}/settings.phtml?action=get_identity&realm={v}",
                    ts.base
                ))
                .await
                .unwrap(),
            )
            .await;
            assert_eq!(r.status, 401, "realm={v}");
            assert!(r.content_type().starts_with("application/json"));
        }
        let r = c.get("action=get_identity&action=launch").await;
        assert_eq!(r.message(), "Error: invalid action");
        ts.stop().await;
    }
}

#[tokio::test]
async fn oversized_requests() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        let before = snapshot(&c).await;
        // Over the configured 2 MiB body limit: 413 with the JSON error shape.
        let big = format!("action=add_alias&username={}", "a".repeat(3 * 1024 * 1024));
        let r = c
            .send(
                "POST",
                &c.target("x=1"),
                Body::Raw("application/x-www-form-urlencoded", big.into_bytes()),
            )
            .await;
        assert_eq!(r.status, 413, "{}", &r.text[..r.text.len().min(200)]);
        assert_eq!(r.success(), Some(false));
        let r = c
            .send(
                "POST",
                &c.target("x=1"),
                Body::Raw(
                    "multipart/form-data; boundary=B",
                    vec![b'x'; 3 * 1024 * 1024],
                ),
            )
            .await;
        assert!(r.status == 413 || r.status == 400, "{}", r.status);
        // A 1 MB query string: refused by the HTTP layer or answered, never a 500.
        let url = format!(
            "{}/settings.phtml?realm=example.com&action=add_alias&username={}",
            ts.base,
            "b".repeat(1_000_000)
        );
        if let Ok(resp) = reqwest::get(url).await {
            assert_ne!(resp.status().as_u16(), 500);
        }
        // Malformed multipart.
        let r = c
            .send(
                "POST",
                &c.target("x=1"),
                Body::Raw(
                    "multipart/form-data; boundary=B",
                    b"--B\r\ngarbage".to_vec(),
                ),
            )
            .await;
        assert_ne!(r.status, 500);
        assert_eq!(snapshot(&c).await, before);
        ts.stop().await;
    }
}

/// One raw HTTP/1.1 exchange: the request is written by a task of its own while the answer
/// is read (the server may answer before it has read everything). Returns (status, lower-case
/// headers, body).
async fn raw_exchange(
    addr: &str,
    request: Vec<u8>,
) -> (u16, std::collections::HashMap<String, String>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = sock.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        let _ = wr.shutdown().await;
    });
    let mut out = Vec::new();
    let _ = rd.read_to_end(&mut out).await;
    let _ = writer.await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// Requests hyper refuses before routing (request line over 64 KiB, a 1 MB query, a head
/// over its buffer, raw non-UTF-8 bytes) are answered in the error format of the surface the
/// path names, with the right status, and the connection closes cleanly (the answer arrives).
#[tokio::test]
async fn refusals_before_routing_use_each_surface_format() {
    let ts = TestServer::start("sqlite").await;
    let addr = ts.base.trim_start_matches("http://").to_owned();
    type Shape = fn(&serde_json::Value, u16) -> bool;
    let surfaces: [(&str, &str, Shape); 4] = [
        (
            "/settings.phtml?action=get_identity&realm=example.com&x=",
            "application/json",
            |v, _| v["success"] == false && v["error_message"].as_str().is_some(),
        ),
        ("/api/v1/accounts?x=", "application/problem+json", |v, s| {
            v["status"] == s && v["title"].as_str().is_some()
        }),
        (
            "/api/rest/public/operator/sip_device_routes?filter[username]=",
            "application/vnd.api+json",
            |v, s| v["errors"][0]["status"].as_str() == Some(s.to_string().as_str()),
        ),
        ("/sip?filter=", "application/json", |v, _| {
            v["error"] == "query" && v["message"].as_str().is_some()
        }),
    ];
    let host = "\r\nHost: x\r\nConnection: close\r\n";
    for (target, ct, shape) in surfaces {
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            (
                "100 KB request line",
                format!("GET {target}{} HTTP/1.1{host}\r\n", "a".repeat(100_000)).into_bytes(),
                414,
            ),
            (
                "1 MB query",
                format!("GET {target}{} HTTP/1.1{host}\r\n", "b".repeat(1_000_000)).into_bytes(),
                414,
            ),
            (
                "600 KB header",
                format!(
                    "GET {target}1 HTTP/1.1{host}X-Big: {}\r\n\r\n",
                    "c".repeat(600_000)
                )
                .into_bytes(),
                431,
            ),
            (
                "raw non-UTF-8",
                [
                    b"GET ".as_slice(),
                    target.as_bytes(),
                    b"\xff\xfe HTTP/1.1",
                    host.as_bytes(),
                    b"\r\n",
                ]
                .concat(),
                400,
            ),
        ];
        for (label, req, want) in cases {
            let (status, headers, body) = raw_exchange(&addr, req).await;
            let label = format!("{target} {label}");
            assert_eq!(status, want, "{label}: {body}");
            assert!(
                headers
                    .get("content-type")
                    .is_some_and(|v| v.starts_with(ct)),
                "{label}: {headers:?}"
            );
            assert_eq!(
                headers.get("content-length"),
                Some(&body.len().to_string()),
                "{label}"
            );
            let v: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{label}: not JSON ({e}): {body}"));
            assert!(shape(&v, want), "{label}: {v}");
        }
    }
    // A normal request on a kept-alive connection after another one is not touched.
    let (status, _, body) = raw_exchange(
        &addr,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("{\"status\":\"ok\"}"), "{body}");
    // Over TLS the same (the HTTPS listener is wrapped the same way).
    let ca = ts.services.ca().unwrap().cert_pem.clone();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .http1_only()
        .build()
        .unwrap();
    let r = read(
        client
            .get(format!("{}/api/v1/accounts", ts.tls_base))
            .header("x-big", "c".repeat(600_000))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 431, "{}", r.text);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(r.json()["status"], 431);
}
