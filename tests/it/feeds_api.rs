//! The feeds over HTTP (`/api/v1/feeds/*`): what the platform pushes shows in the end-user views.

use serde_json::{Value, json};

use crate::harness::{TestServer, backends, read};
use sipsettings::domain::Role;
use sipsettings::service::Services;
use sipsettings::service::tenancy::NewOperator;

async fn post(base: &str, auth: &str, kind: &str, body: &Value) -> (u16, Value) {
    let r = read(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/feeds/{kind}"))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    (
        r.status,
        serde_json::from_str(&r.text).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn platform_feeds_make_the_views_true() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let admin = Services::cli_admin();
        for (name, role, customer) in [
            ("platform", Role::Admin, None),
            ("owner", Role::Owner, Some(1)),
        ] {
            ts.services
                .create_operator(
                    &admin,
                    NewOperator {
                        name: name.into(),
                        role,
                        customer_id: customer,
                        reseller_id: None,
                        password: None,
                    },
                )
                .await
                .unwrap();
        }
        let token = |name: &str| {
            let s = ts.services.clone();
            let name = name.to_owned();
            async move {
                let row = s.store.operator_by_name(&name).await.unwrap().unwrap();
                format!(
                    "Bearer {}",
                    s.create_token(&Services::cli_admin(), row.id, "t", None)
                        .await
                        .unwrap()
                        .1
                )
            }
        };
        let platform = token("platform").await;
        let owner = token("owner").await;
        let now = sipsettings::util::now();
        let regs = json!([{"account": "bob@example.com", "contact": "10.1.1.1:5060", "expires": 600,
                           "user_agent": "Feed UA", "transport": "tcp"}]);
        assert_eq!(post(&ts.base, &owner, "registrations", &regs).await.0, 403);
        let (st, v) = post(&ts.base, &platform, "registrations", &regs).await;
        assert_eq!((st, v["accepted"].clone()), (200, json!(1)), "{v}");
        let cdrs = json!([{"account": "bob@example.com", "direction": "placed", "remoteParty": "sip:zed@example.com",
                           "startTime": now - 100, "stopTime": now - 40, "duration": 60, "status": "200",
                           "price": "0.1000", "sessionId": "feed-1", "fromTag": "f1", "toTag": "t1",
                           "proxyIP": "10.0.0.9", "media": ["audio"]}]);
        let (st, v) = post(&ts.base, &platform, "cdrs", &cdrs).await;
        assert_eq!((st, v["duplicates"].clone()), (200, json!(0)), "{v}");
        let (st, v) = post(&ts.base, &platform, "cdrs", &cdrs).await;
        assert_eq!((st, v["duplicates"].clone()), (200, json!(1)), "{v}");
        let (st, _) = post(
            &ts.base,
            &platform,
            "balance",
            &json!([{"account": "bob@example.com", "value": "5", "description": "top-up"}]),
        )
        .await;
        assert_eq!(st, 200);
        // A bad record rejects the whole batch and names its index.
        let bad = json!([{"account": "bob@example.com", "value": "1", "description": "ok"},
                         {"account": "nobody@example.com", "value": "1", "description": "x"}]);
        let (st, v) = post(&ts.base, &platform, "balance", &bad).await;
        assert_eq!(st, 422, "{v}");
        assert!(v["detail"].as_str().unwrap().starts_with("record 1"), "{v}");
        for body in [json!({"not": "a list"}), json!("x")] {
            assert_eq!(post(&ts.base, &platform, "cdrs", &body).await.0, 422);
        }
        assert_eq!(
            post(&ts.base, &platform, "nothing", &json!([])).await.0,
            404
        );
        // The end-user views.
        let bob = ts.bob();
        let devices = bob.get("action=get_devices").await.json();
        assert!(
            devices
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["user_agent"] == "Feed UA"),
            "{devices}"
        );
        let h = bob.get("action=get_history").await.json();
        assert!(
            h["placed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["sessionId"] == "feed-1" && c["price"] == "0.1000")
        );
        let p = bob.get("action=get_prepaid").await.json();
        // Fixture balance 9.9476, minus 0.1000 once, plus 5.
        assert_eq!(p["balance"], json!(14.8476));
        ts.stop().await;
    }
}
