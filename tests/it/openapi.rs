//! The OpenAPI document of `/api/v1`: the committed copy is the generated one, it is served
//! without authentication, and errors the router makes itself are problem documents too.

use serde_json::Value;

use crate::harness::{TestServer, read};
use sipsettings::domain::Role;
use sipsettings::service::Services;
use sipsettings::service::tenancy::NewOperator;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

fn generated() -> String {
    sipsettings::http::api::openapi_json().expect("render the OpenAPI document")
}

#[test]
fn committed_document_is_the_generated_one() {
    let doc = generated();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, &doc).expect("write openapi/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == doc,
        "openapi/openapi.json differs from the document the code generates.\n\
         Regenerate it with `cargo run -- openapi > openapi/openapi.json` \
         (or `UPDATE_OPENAPI=1 cargo test --test it openapi`) and commit it."
    );
}

#[test]
fn document_describes_every_operation() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "sipsettings operator API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        assert!(
            path.starts_with("/api/v1/")
                || path.starts_with("/api/rest/public/operator/")
                || path == "/sip",
            "{path}"
        );
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success response"
            );
            if path == "/api/v1/openapi.json" {
                assert_eq!(op["security"], serde_json::json!([]));
                continue;
            }
            for status in ["401", "429", "503"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
            if path.contains('{') || op.get("requestBody").is_some() {
                assert!(responses.contains_key("400"), "{method} {path}: 400");
            }
            if path.contains("{id}") {
                assert!(responses.contains_key("404"), "{method} {path}: 404");
            }
        }
    }
    assert_eq!(operations, 51);
}

#[tokio::test]
async fn served_without_authentication() {
    let ts = TestServer::start("sqlite").await;
    let r = read(
        reqwest::get(format!("{}/api/v1/openapi.json", ts.base))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(r.text, generated());
    ts.stop().await;
}

#[tokio::test]
async fn router_errors_are_problem_documents() {
    let ts = TestServer::start("sqlite").await;
    let http = reqwest::Client::new();
    // A method the resource does not have: 405 with Allow, as a problem document.
    let r = read(
        http.put(format!("{}/api/v1/accounts", ts.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(r.json()["status"], 405);
    let allow = r.headers["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    // With an ADMIN's token: a body over the limit is a 413 problem.
    let admin = ts
        .services
        .create_operator(
            &Services::cli_admin(),
            NewOperator {
                name: "admin".into(),
                role: Role::Admin,
                customer_id: None,
                reseller_id: None,
                password: None,
            },
        )
        .await
        .unwrap();
    let (_, token) = ts
        .services
        .create_token(&Services::cli_admin(), admin.id, "t", None)
        .await
        .unwrap();
    let post = |path: &str, body: Vec<u8>| {
        http.post(format!("{}{path}", ts.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = read(
        post("/api/v1/domains", vec![b' '; 3 * 1024 * 1024])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(r.json()["status"], 413);
    // JSON Schema integers include 3.0 (schemathesis sends them); 3.5 is no integer.
    let body = |limit: &str| format!("{{\"name\": \"c{limit}\", \"sip_account_limit\": {limit}}}");
    let r = read(post("/api/v1/customers", body("3.0").into()).await.unwrap()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["sip_account_limit"], 3);
    let r = read(post("/api/v1/customers", body("3.5").into()).await.unwrap()).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = read(
        post("/api/v1/customers", body("1e300").into())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Outside /api/v1 nothing changes.
    let r = read(
        http.put(format!("{}/health", ts.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_ne!(r.content_type(), "application/problem+json");
    ts.stop().await;
}
