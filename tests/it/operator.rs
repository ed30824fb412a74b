//! The native operator API: roles and scope (operator-api §1), tokens, problem details, ETags.

use serde_json::{Value, json};

use crate::harness::{TestServer, backends, read};
use sipsettings::domain::{NewAccount, Role};
use sipsettings::service::Services;
use sipsettings::service::tenancy::NewOperator;

const PW: &str = "operator-secret";

struct Op<'a> {
    base: &'a str,
    auth: String,
}

impl Op<'_> {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let http = reqwest::Client::new();
        let url = format!("{}{path}", self.base);
        let mut rb = match method {
            "GET" => http.get(url),
            "POST" => http.post(url),
            "PATCH" => http.patch(url),
            "PUT" => http.put(url),
            "DELETE" => http.delete(url),
            _ => unreachable!(),
        };
        rb = rb.header("authorization", &self.auth);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = read(rb.send().await.unwrap()).await;
        let v = serde_json::from_str(&r.text).unwrap_or(Value::Null);
        if r.status >= 400 {
            assert_eq!(
                r.content_type(),
                "application/problem+json",
                "{path}: {}",
                r.text
            );
            assert_eq!(v["status"], r.status, "{}", r.text);
        }
        (r.status, v, r.headers)
    }
}

/// An operator client with a fresh Bearer token of the operator `name`.
async fn bearer_op<'a>(ts: &'a TestServer, name: &str) -> Op<'a> {
    let row = ts
        .services
        .store
        .operator_by_name(name)
        .await
        .unwrap()
        .unwrap();
    let (_, token) = ts
        .services
        .create_token(&Services::cli_admin(), row.id, "t", None)
        .await
        .unwrap();
    Op {
        base: &ts.base,
        auth: format!("Bearer {token}"),
    }
}

fn basic(name: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{PW}"))
    )
}

struct World {
    accounts: Vec<(&'static str, i64)>,
    customers: Vec<(&'static str, i64)>,
    resellers: Vec<(&'static str, i64)>,
}

async fn world(s: &Services) -> World {
    let admin = Services::cli_admin();
    s.add_domain("example.com").await.unwrap();
    let r1 = s.create_reseller(&admin, "R1", None).await.unwrap();
    let r1a = s.create_reseller(&admin, "R1a", Some(r1.id)).await.unwrap();
    let r2 = s.create_reseller(&admin, "R2", None).await.unwrap();
    let c1 = s
        .create_customer(&admin, "C1", Some(r1.id), Some(3))
        .await
        .unwrap();
    let c1a = s
        .create_customer(&admin, "C1a", Some(r1a.id), None)
        .await
        .unwrap();
    let c2 = s
        .create_customer(&admin, "C2", Some(r2.id), None)
        .await
        .unwrap();
    let mut accounts = Vec::new();
    for (user, c) in [("a1", c1.id), ("a1a", c1a.id), ("a2", c2.id), ("a0", 1)] {
        let a = s
            .add_account(
                NewAccount {
                    username: user.into(),
                    domain: "example.com".into(),
                    customer_id: Some(c),
                    ..Default::default()
                },
                "sip-pw",
            )
            .await
            .unwrap();
        accounts.push((user, a.id));
    }
    for (name, role, customer, reseller) in [
        ("admin", Role::Admin, None, None),
        ("res1", Role::Reseller, None, Some(r1.id)),
        ("res2", Role::Reseller, None, Some(r2.id)),
        ("owner1", Role::Owner, Some(c1.id), None),
        ("manager1", Role::Manager, Some(c1.id), None),
        ("viewer1", Role::Viewer, Some(c1.id), None),
    ] {
        s.create_operator(
            &admin,
            NewOperator {
                name: name.into(),
                role,
                customer_id: customer,
                reseller_id: reseller,
                password: Some(PW.into()),
            },
        )
        .await
        .unwrap();
    }
    World {
        accounts,
        customers: vec![
            ("C1", c1.id),
            ("C1a", c1a.id),
            ("C2", c2.id),
            ("default", 1),
        ],
        resellers: vec![("R1", r1.id), ("R1a", r1a.id), ("R2", r2.id)],
    }
}

/// Which accounts each operator may see (reads) — everything else looks like "not found".
fn visible(op: &str) -> &'static [&'static str] {
    match op {
        "admin" => &["a1", "a1a", "a2", "a0"],
        "res1" => &["a1", "a1a"],
        "res2" => &["a2"],
        _ => &["a1"],
    }
}

#[tokio::test]
async fn scope_table_every_endpoint_every_role() {
    for b in backends() {
        let ts = TestServer::start(b).await;
        let w = world(&ts.services).await;
        let ops = ["admin", "res1", "res2", "owner1", "manager1", "viewer1"];
        for opname in ops {
            // Bearer tokens here: argon2 per request would make this table slow in debug builds.
            let op = bearer_op(&ts, opname).await;
            let (st, list, _) = op.call("GET", "/api/v1/accounts?limit=500", None).await;
            assert_eq!(st, 200);
            let mut seen: Vec<String> = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["username"].as_str().unwrap().to_owned())
                .collect();
            seen.sort();
            let mut want: Vec<String> = visible(opname).iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(seen, want, "{opname} list");
            assert_eq!(list["total"], want.len());
            for (user, id) in &w.accounts {
                let in_scope = visible(opname).contains(user);
                let writer = opname != "viewer1";
                let read_status = if in_scope { 200 } else { 404 };
                let write_status = match (in_scope, writer) {
                    (false, _) => 404,
                    (true, false) => 403,
                    (true, true) => 200,
                };
                let create_status = match (in_scope, writer) {
                    (false, _) => 404,
                    (true, false) => 403,
                    (true, true) => 201,
                };
                let base = format!("/api/v1/accounts/{id}");
                for path in [
                    base.clone(),
                    format!("{base}/aliases"),
                    format!("{base}/enum_numbers"),
                    format!("{base}/call_forwarding"),
                    format!("{base}/accept_rules"),
                    format!("{base}/reject_rules"),
                ] {
                    let (st, _, _) = op.call("GET", &path, None).await;
                    assert_eq!(st, read_status, "{opname} GET {path} ({user})");
                }
                // The SIP password in clear: only for roles that may change the account.
                let (st, v, _) = op.call("GET", &format!("{base}/password"), None).await;
                assert_eq!(st, write_status, "{opname} GET password ({user}): {v}");
                // 404 out of scope, or while the account has no mailbox yet.
                let (st, v, _) = op.call("GET", &format!("{base}/voicemail"), None).await;
                assert!(
                    st == 404 || (in_scope && st == 200),
                    "{opname} voicemail {st} {v}"
                );
                for (method, path, body, ok) in [
                    (
                        "PATCH",
                        base.clone(),
                        json!({"first_name": format!("by {opname}")}),
                        write_status,
                    ),
                    (
                        "PATCH",
                        base.clone(),
                        json!({"attributes": {"caller_id_name": format!("by {opname}")}}),
                        write_status,
                    ),
                    (
                        "PUT",
                        format!("{base}/password"),
                        json!({"password": "x-new"}),
                        write_status,
                    ),
                    (
                        "POST",
                        format!("{base}/aliases"),
                        json!({"username": format!("{user}-{opname}")}),
                        create_status,
                    ),
                    (
                        "PATCH",
                        format!("{base}/call_forwarding"),
                        json!({"FUNC": "bob"}),
                        write_status,
                    ),
                    (
                        "PUT",
                        format!("{base}/reject_rules"),
                        json!(["sip:x@y.com"]),
                        write_status,
                    ),
                    (
                        "PUT",
                        format!("{base}/accept_rules"),
                        json!({"temporary": {"groups": ["nobody"], "duration": 5}}),
                        write_status,
                    ),
                    (
                        "PUT",
                        format!("{base}/voicemail"),
                        json!({"mailbox": "1", "password": "2", "account": "1@vm.example.com"}),
                        write_status,
                    ),
                ] {
                    let (st, v, _) = op.call(method, &path, Some(body)).await;
                    assert_eq!(st, ok, "{opname} {method} {path} ({user}): {v}");
                }
            }
            // Customers.
            for (cname, cid) in &w.customers {
                let sees = match opname {
                    "admin" => true,
                    "res1" => *cname == "C1" || *cname == "C1a",
                    "res2" => *cname == "C2",
                    _ => *cname == "C1",
                };
                let (st, _, _) = op
                    .call("GET", &format!("/api/v1/customers/{cid}"), None)
                    .await;
                assert_eq!(
                    st,
                    if sees { 200 } else { 404 },
                    "{opname} customer {cname}"
                );
                let (st, _, _) = op
                    .call("GET", &format!("/api/v1/accounts?customer_id={cid}"), None)
                    .await;
                assert_eq!(
                    st,
                    if sees { 200 } else { 404 },
                    "{opname} accounts of {cname}"
                );
            }
            let (_, cl, _) = op.call("GET", "/api/v1/customers", None).await;
            let n = cl["items"].as_array().unwrap().len();
            let want = match opname {
                "admin" => 4,
                "res1" => 2,
                _ => 1,
            };
            assert_eq!(n, want, "{opname} customers");
            // Resellers: the operator's own subtree (ADMIN: all).
            for (rname, rid) in &w.resellers {
                let sees = match opname {
                    "admin" => true,
                    "res1" => *rname == "R1" || *rname == "R1a",
                    "res2" => *rname == "R2",
                    _ => false,
                };
                let (st, _, _) = op
                    .call("GET", &format!("/api/v1/resellers/{rid}"), None)
                    .await;
                assert_eq!(
                    st,
                    if sees { 200 } else { 404 },
                    "{opname} reseller {rname}"
                );
            }
            // Operator users and their tokens: those the caller manages, and itself.
            for target in ops {
                let manages = match opname {
                    "admin" => true,
                    "res1" => target != "admin" && target != "res2",
                    "owner1" => ["owner1", "manager1", "viewer1"].contains(&target),
                    _ => target == opname,
                };
                let want = |ok: u16| if manages { ok } else { 404 };
                let tid = ts
                    .services
                    .store
                    .operator_by_name(target)
                    .await
                    .unwrap()
                    .unwrap()
                    .id;
                let opath = format!("/api/v1/operators/{tid}");
                for path in [opath.clone(), format!("{opath}/tokens")] {
                    let (st, _, _) = op.call("GET", &path, None).await;
                    assert_eq!(st, want(200), "{opname} GET {path} ({target})");
                }
                let (st, v, _) = op
                    .call(
                        "POST",
                        &format!("{opath}/tokens"),
                        Some(json!({"name": format!("by-{opname}")})),
                    )
                    .await;
                assert_eq!(st, want(201), "{opname} token for {target}: {v}");
                let (victim, _) = ts
                    .services
                    .create_token(&Services::cli_admin(), tid, "victim", None)
                    .await
                    .unwrap();
                let (st, v, _) = op
                    .call("DELETE", &format!("/api/v1/tokens/{}", victim.id), None)
                    .await;
                assert_eq!(st, want(200), "{opname} revoke token of {target}: {v}");
                if target != opname {
                    let (st, v, _) = op
                        .call(
                            "PUT",
                            &format!("{opath}/password"),
                            Some(json!({"password": PW})),
                        )
                        .await;
                    assert_eq!(st, want(200), "{opname} password of {target}: {v}");
                }
            }
        }
        ts.stop().await;
    }
}

#[tokio::test]
async fn operators_tokens_and_limits() {
    for b in backends() {
        let ts = TestServer::start(b).await;
        let w = world(&ts.services).await;
        let c1 = w.customers[0].1;
        let c2 = w.customers[2].1;
        let owner = Op {
            base: &ts.base,
            auth: basic("owner1"),
        };
        // An OWNER manages its own customer's operators only.
        let (st, v, _) = owner
            .call(
                "POST",
                "/api/v1/operators",
                Some(json!({"name": "m2", "role": "MANAGER", "customer_id": c1, "password": PW})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let (st, _, _) = owner
            .call(
                "POST",
                "/api/v1/operators",
                Some(json!({"name": "m3", "role": "MANAGER", "customer_id": c2, "password": PW})),
            )
            .await;
        assert_eq!(st, 404);
        let (st, _, _) = owner
            .call(
                "POST",
                "/api/v1/operators",
                Some(json!({"name": "a2", "role": "ADMIN", "password": PW})),
            )
            .await;
        assert_eq!(st, 403);
        let manager = Op {
            base: &ts.base,
            auth: basic("manager1"),
        };
        let (st, _, _) = manager
            .call(
                "POST",
                "/api/v1/operators",
                Some(json!({"name": "m4", "role": "VIEWER", "customer_id": c1})),
            )
            .await;
        assert_eq!(st, 403);
        // A RESELLER creates customers in its subtree only.
        let res1 = Op {
            base: &ts.base,
            auth: basic("res1"),
        };
        let (st, v, _) = res1
            .call("POST", "/api/v1/customers", Some(json!({"name": "new"})))
            .await;
        assert_eq!(st, 201, "{v}");
        let (_, rs, _) = res1.call("GET", "/api/v1/resellers", None).await;
        assert_eq!(rs["items"].as_array().unwrap().len(), 2);
        let (st, _, _) = res1
            .call(
                "POST",
                "/api/v1/customers",
                Some(json!({"name": "x", "reseller_id": 3})),
            )
            .await;
        assert_eq!(st, 404);
        // The customer limit: C1 allows 3 accounts and has 1.
        for (i, want) in [(0, 201), (1, 201), (2, 422)] {
            let (st, v, _) = owner
                .call(
                    "POST",
                    "/api/v1/accounts",
                    Some(json!({"username": format!("new{i}"), "domain": "example.com", "password": "pw"})),
                )
                .await;
            assert_eq!(st, want, "{v}");
            if want == 422 {
                assert!(v["detail"].as_str().unwrap().contains("limit"));
            }
        }
        // A generated password is shown once.
        let admin = Op {
            base: &ts.base,
            auth: basic("admin"),
        };
        let (st, v, _) = admin
            .call(
                "POST",
                "/api/v1/accounts",
                Some(json!({"username": "gen", "domain": "example.com", "customer_id": c2})),
            )
            .await;
        assert_eq!(st, 201);
        let generated = v["password"].as_str().unwrap().to_owned();
        let sip = crate::harness::Client::new(&ts.base, "gen", &generated, "example.com");
        assert_eq!(sip.get("action=get_identity").await.status, 200);
        // Tokens: shown once, work as Bearer, stop working when revoked.
        let (_, me, _) = owner.call("GET", "/api/v1/me", None).await;
        let (st, t, _) = owner
            .call(
                "POST",
                &format!("/api/v1/operators/{}/tokens", me["id"]),
                Some(json!({"name": "ci", "expires_days": 30})),
            )
            .await;
        assert_eq!(st, 201);
        let token = t["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("sst_"));
        let bearer = Op {
            base: &ts.base,
            auth: format!("Bearer {token}"),
        };
        let (st, me2, _) = bearer.call("GET", "/api/v1/me", None).await;
        assert_eq!((st, me2["name"].clone()), (200, json!("owner1")));
        let (_, list, _) = owner
            .call(
                "GET",
                &format!("/api/v1/operators/{}/tokens", me["id"]),
                None,
            )
            .await;
        assert!(list["items"][0].get("token").is_none());
        let stored: Vec<String> =
            sqlx::query_scalar::<_, String>("SELECT token_hash FROM api_tokens")
                .fetch_all(ts.services.store.pool())
                .await
                .unwrap();
        assert!(!stored.iter().any(|h| h.contains(&token)));
        let (st, _, _) = owner
            .call("DELETE", &format!("/api/v1/tokens/{}", t["id"]), None)
            .await;
        assert_eq!(st, 200);
        assert_eq!(bearer.call("GET", "/api/v1/me", None).await.0, 401);
        // Another customer's operator cannot revoke or list it.
        let res2 = Op {
            base: &ts.base,
            auth: basic("res2"),
        };
        assert_eq!(
            res2.call(
                "GET",
                &format!("/api/v1/operators/{}/tokens", me["id"]),
                None
            )
            .await
            .0,
            404
        );
        // Passwords are stored as argon2id.
        let hashes: Vec<String> =
            sqlx::query_scalar::<_, String>("SELECT password_hash FROM operators")
                .fetch_all(ts.services.store.pool())
                .await
                .unwrap();
        assert!(hashes.iter().all(|h| h.starts_with("$argon2id$")));
        ts.stop().await;
    }
}

#[tokio::test]
async fn problems_etags_and_auth_failures() {
    for b in backends() {
        let ts = TestServer::start_with(b, |c| {
            c.throttle.max_failures = 4;
            c.throttle.slow_after = 0;
        })
        .await;
        let w = world(&ts.services).await;
        let admin = Op {
            base: &ts.base,
            auth: basic("admin"),
        };
        let id = w.accounts[0].1;
        let (st, v, h) = admin
            .call("GET", &format!("/api/v1/accounts/{id}"), None)
            .await;
        assert_eq!(st, 200);
        let etag = h["etag"].to_str().unwrap().to_owned();
        // If-Match with the current tag works, a stale one gets 412.
        let http = reqwest::Client::new();
        let patch = |tag: &str| {
            http.patch(format!("{}/api/v1/accounts/{id}", ts.base))
                .header("authorization", basic("admin"))
                .header("if-match", tag)
                .header("content-type", "application/json")
                .body(json!({"email": "a1@mail.example", "no_answer_timeout": 60}).to_string())
                .send()
        };
        let r = read(patch(&etag).await.unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["email"], "a1@mail.example");
        assert_eq!(r.json()["no_answer_timeout"], 60);
        let r = read(patch(&etag).await.unwrap()).await;
        assert_eq!(r.status, 412);
        assert_eq!(r.content_type(), "application/problem+json");
        assert_ne!(v["email"], "a1@mail.example");
        // Bad bodies and ids.
        for (method, path, body, want) in [
            ("POST", "/api/v1/accounts", "{not json", 400),
            ("POST", "/api/v1/accounts", "{\"username\": 1}", 400),
            (
                "POST",
                "/api/v1/accounts",
                "{\"username\":\"x\",\"domain\":\"example.com\",\"bogus\":1}",
                400,
            ),
            ("PATCH", "/api/v1/accounts/abc", "{}", 404),
            ("PATCH", "/api/v1/accounts/999999", "{}", 404),
            ("GET", "/api/v1/accounts?limit=0", "", 400),
            ("GET", "/api/v1/accounts?limit=abc", "", 400),
            ("GET", "/api/v1/nothing", "", 404),
            (
                "POST",
                "/api/v1/accounts",
                "{\"username\":\"bad user\",\"domain\":\"example.com\"}",
                422,
            ),
        ] {
            let r = read(
                http.request(method.parse().unwrap(), format!("{}{path}", ts.base))
                    .header("authorization", basic("admin"))
                    .header("content-type", "application/json")
                    .body(body.to_owned())
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, want, "{method} {path}: {}", r.text);
            assert_eq!(r.content_type(), "application/problem+json", "{path}");
        }
        // Failed logins: 401 with a challenge, then 429 for the IP.
        let bad = Op {
            base: &ts.base,
            auth: "Basic YWRtaW46d3Jvbmc=".into(),
        };
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(bad.call("GET", "/api/v1/me", None).await.0);
        }
        assert_eq!(statuses, [401, 401, 401, 401, 429]);
        ts.stop().await;
    }
}

/// Operator attributes through /api/v1: defaults, normalisation, all-or-nothing PATCH, the rules
/// that depend on other data or on the role, and the recoverable (sealed) SIP password.
#[tokio::test]
async fn account_attributes_through_api_v1() {
    for b in backends() {
        let ts = TestServer::start(b).await;
        let w = world(&ts.services).await;
        let mut auth = std::collections::HashMap::new();
        for name in ["admin", "res1", "owner1", "manager1", "viewer1"] {
            auth.insert(name, bearer_op(&ts, name).await);
        }
        let id_of = |u: &str| w.accounts.iter().find(|(n, _)| *n == u).unwrap().1;
        let a1 = format!("/api/v1/accounts/{}", id_of("a1"));
        let a2 = format!("/api/v1/accounts/{}", id_of("a2"));

        // Defaults.
        let (st, v, _) = auth["viewer1"].call("GET", &a1, None).await;
        assert_eq!(st, 200);
        let public_id = v["public_id"].as_str().unwrap().to_owned();
        assert_eq!(public_id.len(), 36, "{public_id}");
        assert_eq!(&public_id[14..15], "4", "a version 4 UUID: {public_id}");
        let at = &v["attributes"];
        assert_eq!(at["allowed_ips"], "");
        assert_eq!(at["use_allowed_ips"], false);
        assert_eq!(at["caller_id_name"], Value::Null);
        assert_eq!(at["custom"], Value::Null);
        assert!(at.get("password_sealed").is_none(), "{at}");

        // The SIP password: recoverable for writers, never stored in clear.
        let (st, v, _) = auth["owner1"]
            .call("GET", &format!("{a1}/password"), None)
            .await;
        assert_eq!((st, v["password"].as_str()), (200, Some("sip-pw")));
        let (st, _, _) = auth["viewer1"]
            .call("GET", &format!("{a1}/password"), None)
            .await;
        assert_eq!(st, 403);
        let sealed = ts
            .services
            .store
            .account_attrs(id_of("a1"))
            .await
            .unwrap()
            .unwrap()
            .password_sealed
            .unwrap();
        assert!(!sealed.contains("sip-pw"), "{sealed}");
        let (st, _, _) = auth["manager1"]
            .call(
                "PUT",
                &format!("{a1}/password"),
                Some(json!({"password": "n3w-pw"})),
            )
            .await;
        assert_eq!(st, 200);
        let (_, v, _) = auth["manager1"]
            .call("GET", &format!("{a1}/password"), None)
            .await;
        assert_eq!(v["password"], "n3w-pw");

        // Values are normalised.
        let (st, v, _) = auth["manager1"]
            .call(
                "PATCH",
                &a1,
                Some(json!({
                    "first_name": "Ann",
                    "attributes": {
                        "caller_id_name": "Helo bye",
                        "allowed_ips": "127.0.0.1, 10.0.0.0/8 ::1",
                        "use_allowed_ips": true,
                        "connection": "ip_auth_reg",
                        "custom": {"k": [1, 2]},
                        "port": 5060,
                        "countries": "dk,se",
                        "failover": "+4588888888@77.66.100.123",
                        "invoiced_until": 1388534400,
                        "internal_caller_id": 101,
                        "notes": "line one\nline two"
                    }
                })),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let at = &v["attributes"];
        assert_eq!(v["first_name"], "Ann");
        assert_eq!(at["allowed_ips"], "127.0.0.1/32,10.0.0.0/8,::1/128");
        assert_eq!(at["use_allowed_ips"], true);
        assert_eq!(at["connection"], "IP_AUTH_REG");
        assert_eq!(at["custom"], json!({"k": [1, 2]}));
        assert_eq!(at["countries"], "DK,SE");
        assert_eq!(at["port"], 5060);
        assert_eq!(at["internal_caller_id"], 101);
        assert_eq!(at["notes"], "line one\nline two");

        // All or nothing: a bad attribute (422: bad value, 400: wrong shape) leaves the
        // identity change unapplied too.
        for (body, status) in [
            (
                json!({"first_name": "Changed", "attributes": {"port": 70000}}),
                422,
            ),
            (
                json!({"first_name": "Changed", "attributes": {"allowed_ips": "1.2.3.4/33"}}),
                422,
            ),
            (
                json!({"first_name": "Changed", "attributes": {"connection": "WIFI"}}),
                422,
            ),
            (
                json!({"first_name": "Changed", "attributes": {"custom": "x".repeat(5000)}}),
                422,
            ),
            (
                json!({"first_name": "Changed", "attributes": {"failover": "nope"}}),
                422,
            ),
            (
                json!({"first_name": "Changed", "attributes": {"default_number": "+4570305050"}}),
                422,
            ),
            (
                json!({"first_name": "Changed", "attributes": {"nope": 1}}),
                400,
            ),
            (
                json!({"first_name": "Changed", "attributes": {"port": "5060"}}),
                400,
            ),
            (
                json!({"first_name": "Changed", "attributes": {"use_allowed_ips": null}}),
                400,
            ),
        ] {
            let (st, v, _) = auth["admin"].call("PATCH", &a1, Some(body.clone())).await;
            assert_eq!(st, status, "{body}: {v}");
        }
        let (_, v, _) = auth["admin"].call("GET", &a1, None).await;
        assert_eq!(v["first_name"], "Ann");
        assert_eq!(v["attributes"]["port"], 5060);

        // Rules that look at other data.
        let (st, _, _) = auth["admin"]
            .call(
                "POST",
                &format!("{a1}/enum_numbers"),
                Some(json!({"number": "+4570305050"})),
            )
            .await;
        assert_eq!(st, 201);
        let (st, v, _) = auth["manager1"]
            .call(
                "PATCH",
                &a1,
                Some(json!({"attributes": {"default_number": "+4570305050"}})),
            )
            .await;
        assert_eq!(
            (st, &v["attributes"]["default_number"]),
            (200, &json!("+4570305050"))
        );
        let (_, other, _) = auth["admin"].call("GET", &a2, None).await;
        let other_public = other["public_id"].as_str().unwrap();
        let parent = json!({"attributes": {"parent_sip_account": other_public}});
        let (st, _, _) = auth["owner1"]
            .call("PATCH", &a1, Some(parent.clone()))
            .await;
        assert_eq!(
            st, 422,
            "an account outside the caller's scope is not a valid parent"
        );
        let (st, _, _) = auth["admin"].call("PATCH", &a1, Some(parent)).await;
        assert_eq!(st, 200);
        let own = json!({"attributes": {"parent_sip_account": public_id}});
        let (st, _, _) = auth["admin"].call("PATCH", &a1, Some(own)).await;
        assert_eq!(st, 422);
        let c2 = w.customers.iter().find(|(n, _)| *n == "C2").unwrap().1;
        let billing = json!({"attributes": {"billing_customer": c2}});
        let (st, _, _) = auth["owner1"]
            .call("PATCH", &a1, Some(billing.clone()))
            .await;
        assert_eq!(st, 422);
        let (st, _, _) = auth["admin"].call("PATCH", &a1, Some(billing)).await;
        assert_eq!(st, 200);

        // A usage block is lifted only by RESELLER or ADMIN users.
        let block = |on: bool| json!({"attributes": {"usage_block": on}});
        let (st, _, _) = auth["manager1"].call("PATCH", &a1, Some(block(true))).await;
        assert_eq!(st, 200);
        let (st, _, _) = auth["owner1"].call("PATCH", &a1, Some(block(false))).await;
        assert_eq!(st, 403);
        let (st, v, _) = auth["res1"].call("PATCH", &a1, Some(block(false))).await;
        assert_eq!((st, &v["attributes"]["usage_block"]), (200, &json!(false)));

        // VIEWER reads only; clearing works with null.
        let (st, _, _) = auth["viewer1"]
            .call("PATCH", &a1, Some(json!({"attributes": {"notes": null}})))
            .await;
        assert_eq!(st, 403);
        let (st, v, _) = auth["admin"]
            .call(
                "PATCH",
                &a1,
                Some(json!({"attributes": {"notes": null, "port": null}})),
            )
            .await;
        assert_eq!(st, 200);
        assert_eq!(v["attributes"]["notes"], Value::Null);
        assert_eq!(v["attributes"]["port"], Value::Null);
        ts.stop().await;
    }
}
