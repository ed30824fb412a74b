//! Every action of spec §3 with the exact keys and types of spec §4.

use serde_json::{Value, json};

use crate::harness::{Body, TestServer, backends, snapshot};

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn identity_and_lists() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        let r = c.get("action=get_identity").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type(), "application/json; charset=utf-8");
        let v = r.json();
        assert_eq!(
            keys(&v),
            [
                "sip_address",
                "email",
                "first",
                "lastname",
                "pstn_caller_id",
                "mobile_number",
                "timezone",
                "no_answer_timeout",
                "quick_dial"
            ]
        );
        assert_eq!(v["sip_address"], "alice@example.com");
        assert_eq!(v["timezone"], "Europe/Amsterdam");
        assert_eq!(v["no_answer_timeout"], 35);
        assert_eq!(v["quick_dial"], Value::Null);

        let aliases = c.get("action=get_aliases").await.json();
        assert_eq!(
            aliases,
            json!(["alice.smith@example.com", "alice1@example.com"])
        );
        let numbers = c.get("action=get_enum").await.json();
        let numbers = numbers.as_array().unwrap();
        assert_eq!(numbers.len(), 2);
        assert!(numbers.iter().all(|n| n.as_str().unwrap().starts_with('+')));
        ts.stop().await;
    }
}

#[tokio::test]
async fn history_devices_prepaid_usage() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        let h = c.get("action=get_history").await.json();
        let placed = h["placed"].as_array().unwrap();
        let received = h["received"].as_array().unwrap();
        // The in-progress call is left out.
        assert_eq!(placed.len(), 3);
        assert_eq!(received.len(), 2);
        let call = &placed[0];
        assert_eq!(
            keys(call),
            [
                "remoteParty",
                "displayName",
                "startTime",
                "stopTime",
                "timezone",
                "duration",
                "status",
                "price",
                "sessionId",
                "fromTag",
                "toTag",
                "proxyIP",
                "media"
            ]
        );
        assert!(call["duration"].is_i64());
        assert!(call["status"].is_string());
        assert_eq!(call["price"], "0.0400");
        assert_eq!(call["media"], json!(["audio"]));
        assert_eq!(call["displayName"], "");
        assert!(received[0].get("price").is_none());
        assert_eq!(received[0]["displayName"], "Carol");
        // Newest first and formatted as local time.
        let t0 = placed[0]["startTime"].as_str().unwrap();
        let t1 = placed[1]["startTime"].as_str().unwrap();
        assert!(t0 > t1);
        assert!(chrono::NaiveDateTime::parse_from_str(t0, "%Y-%m-%d %H:%M:%S").is_ok());

        let d = c.get("action=get_devices").await.json();
        let d = d.as_array().unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            keys(&d[0]),
            [
                "contact",
                "publicContact",
                "expires",
                "user_agent",
                "transport"
            ]
        );
        assert!(d[0]["expires"].as_i64().unwrap() > 3000);
        // Without a public address, publicContact equals contact.
        assert_eq!(d[1]["publicContact"], d[1]["contact"]);

        let p = c.get("action=get_prepaid").await.json();
        assert_eq!(keys(&p), ["balance", "active_calls"]);
        assert_eq!(p["balance"], json!(9.9476));
        assert_eq!(p["active_calls"].as_array().unwrap().len(), 1);
        assert_eq!(
            keys(&p["active_calls"][0]),
            ["sessionId", "remoteParty", "startTime"]
        );

        let bh = c.get("action=get_balance_history").await.json();
        let bh = bh.as_array().unwrap();
        assert_eq!(bh.len(), 3);
        assert_eq!(
            keys(&bh[0]),
            [
                "date",
                "action",
                "description",
                "value",
                "balance",
                "session"
            ]
        );
        assert_eq!(bh[0]["value"], json!(-0.04));
        // The running balance is the one after each move was applied (feeds may arrive late).
        assert!(bh[0]["balance"].is_f64());
        assert_eq!(bh[2]["action"], "Credit balance");

        let csv = c.get("action=get_balance_history&csv=1").await;
        assert_eq!(csv.status, 200);
        assert!(csv.content_type().starts_with("text/csv"));
        assert_eq!(
            csv.headers["content-disposition"],
            "inline; filename=alice@example.com-prepaid-history.csv"
        );
        let mut lines = csv.text.lines();
        assert_eq!(
            lines.next(),
            Some("Id,Account,Date,Action,Description,Value,Final Balance")
        );
        assert_eq!(lines.count(), 3);

        let u = c.get("action=get_monthly_usage").await.json();
        assert_eq!(keys(&u), ["calls", "duration", "price"]);
        assert!(u["calls"].as_i64().unwrap() >= 1);
        ts.stop().await;
    }
}

#[tokio::test]
async fn monthly_usage_uses_account_timezone() {
    use sipsettings::domain::CallRecord;
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let s = &ts.services;
        let carol = s.find_account("carol@other.org").await.unwrap();
        let tz: chrono_tz::Tz = "Europe/Amsterdam".parse().unwrap();
        use chrono::{Datelike, TimeZone};
        let now = chrono::Utc::now().with_timezone(&tz);
        let month_start = tz
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .earliest()
            .unwrap()
            .timestamp();
        let before = s.monthly_usage(&carol).await.unwrap();
        // One call 30 minutes after local midnight of the 1st (counts), one 30 minutes before (doesn't).
        for (i, t) in [month_start + 1800, month_start - 1800]
            .into_iter()
            .enumerate()
        {
            s.record_call(
                &carol,
                CallRecord {
                    id: 0,
                    account_id: carol.id,
                    direction: "placed".into(),
                    remote_party: "sip:x@example.com".into(),
                    display_name: String::new(),
                    start_time: t,
                    stop_time: Some(t + 10),
                    duration: 10,
                    status: "200".into(),
                    price: Some(100),
                    session_id: format!("tz-{i}"),
                    from_tag: "f".into(),
                    to_tag: "t".into(),
                    proxy_ip: String::new(),
                    media: "audio".into(),
                },
            )
            .await
            .unwrap();
        }
        let after = s.monthly_usage(&carol).await.unwrap();
        assert_eq!(after.calls, before.calls + 1);
        assert_eq!(after.duration, before.duration + 10);
        assert_eq!(after.price, before.price + 100);
        let c = ts.client("carol", crate::harness::CAROL_PW, "other.org");
        let u = c.get("action=get_monthly_usage").await.json();
        assert_eq!(u["calls"], after.calls);
        ts.stop().await;
    }
}

#[tokio::test]
async fn aliases_add_delete_and_limits() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        let r = c.get("action=add_alias&username=%20Bob.Work%20").await;
        assert_eq!(
            r.json(),
            json!({"success": true, "error_message": "Added alias bob.work"})
        );
        let aliases = c.get("action=get_aliases").await.json();
        assert!(
            aliases
                .as_array()
                .unwrap()
                .contains(&json!("bob.work@example.com"))
        );
        // Missing / empty.
        for q in [
            "action=add_alias",
            "action=add_alias&username=",
            "action=add_alias&username=%20",
        ] {
            let r = c.get(q).await;
            assert_eq!(
                r.json(),
                json!({"success": false, "error_message": "Error: missing username"})
            );
        }
        // Collisions with an account and with an alias in the domain.
        let r = c.get("action=add_alias&username=bob").await;
        assert_eq!(r.success(), Some(false));
        assert!(r.message().contains("account"), "{}", r.message());
        let r = c.get("action=add_alias&username=bob.smith").await;
        assert_eq!(r.success(), Some(false));
        assert!(r.message().contains("alias"), "{}", r.message());
        let r = c.get("action=add_alias&username=bad%20name").await;
        assert_eq!(r.success(), Some(false));
        assert!(r.message().contains("invalid username"));
        // Up to 20.
        for i in 0..17 {
            let r = c.get(&format!("action=add_alias&username=a{i}")).await;
            assert_eq!(r.success(), Some(true), "{}", r.text);
        }
        let r = c.get("action=add_alias&username=toomany").await;
        assert_eq!(r.success(), Some(false));
        assert!(r.message().contains("20"));
        assert_eq!(
            c.get("action=get_aliases")
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            20
        );
        // Delete.
        let r = c.get("action=delete_alias&username=bob.work").await;
        assert_eq!(
            r.json(),
            json!({"success": true, "error_message": "Deleted alias bob.work"})
        );
        let r = c.get("action=delete_alias&username=bob.work").await;
        assert_eq!(r.success(), Some(false));
        let r = c.get("action=delete_alias&username=a0%40example.com").await;
        assert_eq!(r.success(), Some(true));
        let r = c.get("action=delete_alias").await;
        assert_eq!(r.message(), "Error: missing username");
        ts.stop().await;
    }
}

#[tokio::test]
async fn call_forwarding() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        let v = c.get("action=get_call_forwarding").await.json();
        assert_eq!(keys(&v), ["FUNC", "FNOL", "FBUS", "FNOA", "FUNV"]);
        assert_eq!(v["FNOL"], "<voice-mailbox>");
        assert_eq!(v["FBUS"], "+31612345678@example.com");
        assert_eq!(v["FUNC"], Value::Null);

        let r = c
            .get("action=set_call_forwarding&FUNC=bob&FNOA=sip:carol@other.org&Unknown=x")
            .await;
        assert_eq!(
            r.json(),
            json!({"success": true, "error_message": "Changed diversions FUNC=sip:bob@example.com FNOA=sip:carol@other.org "})
        );
        let v = c.get("action=get_call_forwarding").await.json();
        assert_eq!(v["FUNC"], "bob@example.com");
        assert_eq!(v["FNOA"], "carol@other.org");
        assert_eq!(v["FNOL"], "<voice-mailbox>");

        let r = c.get("action=set_call_forwarding&FUNC=bob").await;
        assert_eq!(
            r.json(),
            json!({"success": true, "error_message": "Diversions remained the same"})
        );
        let r = c.get("action=set_call_forwarding&FUNC=").await;
        assert_eq!(r.message(), "Changed diversions FUNC= ");
        assert_eq!(
            c.get("action=get_call_forwarding").await.json()["FUNC"],
            Value::Null
        );
        let r = c
            .get("action=set_call_forwarding&FUNV=%3Cmobile-number%3E")
            .await;
        assert_eq!(r.success(), Some(true));
        assert_eq!(
            c.get("action=get_call_forwarding").await.json()["FUNV"],
            "+31612345678@example.com"
        );
        // An invalid target changes nothing, even with a valid key beside it.
        let before = c.get("action=get_call_forwarding").await.json();
        let r = c
            .get("action=set_call_forwarding&FUNC=dave&FBUS=bad%20target@x")
            .await;
        assert_eq!(r.success(), Some(false));
        assert!(r.message().contains("FBUS"), "{}", r.message());
        assert_eq!(c.get("action=get_call_forwarding").await.json(), before);
        // <mobile-number> without a mobile number is an error.
        ts.services
            .patch_account(
                &sipsettings::service::Services::cli_admin(),
                &ts.services.find_account("bob@example.com").await.unwrap(),
                sipsettings::store::AccountUpdate {
                    mobile_number: Some(None),
                    ..Default::default()
                },
                vec![],
            )
            .await
            .unwrap();
        let r = ts
            .bob()
            .get("action=set_call_forwarding&FUNC=%3Cmobile-number%3E")
            .await;
        assert_eq!(r.success(), Some(false));
        assert!(r.message().contains("mobile"));
        ts.stop().await;
    }
}

#[tokio::test]
async fn accept_reject_rules_and_dnd() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        let v = c.get("action=get_accept_rules").await.json();
        assert_eq!(keys(&v), ["persistent", "temporary", "groups"]);
        assert_eq!(
            v["persistent"]["31"],
            json!({"start": "09:00", "stop": "17:00", "groups": ["everybody"]})
        );
        assert_eq!(
            v["temporary"],
            json!({"groups": ["everybody"], "duration": 0})
        );
        assert_eq!(v["groups"], json!(["family", "vip"]));

        let r = c.get("action=set_dnd_on&duration=30").await;
        assert_eq!(
            r.json(),
            json!({"success": true, "error_message": "Do not disturb has been enabled for 30 minutes"})
        );
        let v = c.get("action=get_accept_rules").await.json();
        assert_eq!(
            v["temporary"],
            json!({"groups": ["nobody"], "duration": 30})
        );
        let r = c.get("action=dnd_on").await;
        assert_eq!(r.message(), "Do not disturb has been enabled");
        let v = c.get("action=get_accept_rules").await.json();
        assert_eq!(v["temporary"], json!({"groups": ["nobody"], "duration": 0}));
        let r = c.get("action=set_dnd_off").await;
        assert_eq!(r.message(), "Do not disturb has been disabled");
        assert_eq!(
            c.get("action=get_accept_rules").await.json()["temporary"],
            json!({"groups": ["everybody"], "duration": 0})
        );
        // DND ends by itself: an expiry in the past reads as inactive.
        c.get("action=set_dnd_on&duration=5").await;
        let alice = ts.services.find_account("alice@example.com").await.unwrap();
        let mut tx = ts.services.store.begin_write().await.unwrap();
        ts.services
            .store
            .set_temporary_rule(
                &mut tx,
                alice.id,
                Some("[\"nobody\"]"),
                Some(sipsettings::util::now() - 1),
                0,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            c.get("action=get_accept_rules").await.json()["temporary"],
            json!({"groups": ["everybody"], "duration": 0})
        );

        // set_accept_rules round trip (POST form, JSON value).
        let rules = json!({"persistent": {"127": {"start": "08:00", "stop": "20:00", "groups": ["vip"]}},
                           "temporary": {"groups": ["nobody"], "duration": 45}});
        let r = c
            .post("action=set_accept_rules", &[("rules", &rules.to_string())])
            .await;
        assert_eq!(r.success(), Some(true), "{}", r.text);
        let v = c.get("action=get_accept_rules").await.json();
        assert_eq!(v["persistent"], rules["persistent"]);
        assert_eq!(
            v["temporary"],
            json!({"groups": ["nobody"], "duration": 45})
        );
        for bad in [
            "{\"persistent\":{\"0\":{\"start\":\"08:00\",\"stop\":\"09:00\",\"groups\":[\"vip\"]}}}",
            "{\"persistent\":{\"1\":{\"start\":\"25:00\",\"stop\":\"26:00\",\"groups\":[\"vip\"]}}}",
            "{\"persistent\":{\"1\":{\"start\":\"08:00\",\"stop\":\"09:00\",\"groups\":[]}}}",
            "{\"temporary\":{\"groups\":[\"nobody\"],\"duration\":-5}}",
            "[1,2,3]",
            "not json",
        ] {
            let r = c.post("action=set_accept_rules", &[("rules", bad)]).await;
            assert_eq!(r.success(), Some(false), "{bad}");
            assert_eq!(c.get("action=get_accept_rules").await.json(), v, "{bad}");
        }

        let r = c.get("action=get_reject_rules").await.json();
        assert_eq!(r, json!(["sip:spam@example.com", "sip:%0900@%"]));
        let r = c
            .post(
                "action=set_reject_rules",
                &[("rules", "[\"sip:a@b.com\", \"%0800@%\", \"sip:a@b.com\"]")],
            )
            .await;
        assert_eq!(r.success(), Some(true), "{}", r.text);
        assert_eq!(
            c.get("action=get_reject_rules").await.json(),
            json!(["sip:a@b.com", "sip:%0800@%"])
        );
        let r = c
            .post("action=set_reject_rules", &[("rules", "[\"no host\"]")])
            .await;
        assert_eq!(r.success(), Some(false));
        let r = c.post("action=set_reject_rules", &[("rules", "{}")]).await;
        assert_eq!(r.success(), Some(false));
        ts.stop().await;
    }
}

#[tokio::test]
async fn privacy_voicemail() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        assert_eq!(
            c.get("action=set_privacy_on").await.json(),
            json!({"success": true, "error_message": "Caller-ID is now hidden for outgoing calls"})
        );
        assert!(
            ts.services
                .find_account("alice@example.com")
                .await
                .unwrap()
                .privacy
                == 1
        );
        assert_eq!(
            c.get("action=privacy_off").await.message(),
            "Caller-ID is now visible for outgoing calls"
        );
        let v = c.get("action=get_voicemail").await.json();
        assert_eq!(
            keys(&v),
            [
                "Mailbox", "Password", "Name", "Email", "Info", "Options", "Account"
            ]
        );
        assert_eq!(v["Password"], "9876");
        assert_eq!(v["Options"], json!({"delete": true}));
        // The PIN is not stored in plaintext.
        let raw: String =
            sqlx::query_scalar::<_, String>("SELECT password_sealed FROM voicemail_boxes")
                .fetch_all(ts.services.store.pool())
                .await
                .unwrap()
                .join(",");
        assert!(!raw.contains("9876"));
        // No mailbox → null.
        let carol = ts.client("carol", crate::harness::CAROL_PW, "other.org");
        let mut tx = ts.services.store.begin_write().await.unwrap();
        let id = ts
            .services
            .find_account("carol@other.org")
            .await
            .unwrap()
            .id;
        sqlx::query("DELETE FROM voicemail_boxes WHERE account_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let r = carol.get("action=get_voicemail").await;
        assert_eq!(r.text, "null");
        ts.stop().await;
    }
}

#[tokio::test]
async fn empty_lists_are_arrays() {
    for b in backends() {
        let ts = TestServer::start(b).await;
        ts.services.add_domain("example.com").await.unwrap();
        ts.services
            .add_account(
                sipsettings::domain::NewAccount {
                    username: "empty".into(),
                    domain: "example.com".into(),
                    ..Default::default()
                },
                "pw",
            )
            .await
            .unwrap();
        let c = ts.client("empty", "pw", "example.com");
        for (a, want) in [
            ("get_aliases", json!([])),
            ("get_enum", json!([])),
            ("get_history", json!({"placed": [], "received": []})),
            ("get_devices", json!([])),
            ("get_prepaid", json!({"balance": 0.0, "active_calls": []})),
            ("get_balance_history", json!([])),
            (
                "get_monthly_usage",
                json!({"calls": 0, "duration": 0, "price": 0.0}),
            ),
            ("get_reject_rules", json!([])),
            ("get_voicemail", Value::Null),
            (
                "get_identity",
                json!({"sip_address": "empty@example.com", "email": null, "first": null, "lastname": null,
                       "pstn_caller_id": null, "mobile_number": null, "timezone": null,
                       "no_answer_timeout": 35, "quick_dial": null}),
            ),
            (
                "get_accept_rules",
                json!({"persistent": {}, "temporary": {"groups": ["everybody"], "duration": 0}, "groups": []}),
            ),
        ] {
            assert_eq!(c.get(&format!("action={a}")).await.json(), want, "{a}");
        }
        ts.stop().await;
    }
}

#[tokio::test]
async fn legacy_names_answer_identically() {
    let pairs = [
        ("get_identity", "account"),
        ("get_identity", "get_account"),
        ("get_aliases", "aliases"),
        ("get_enum", "enum"),
        ("get_history", "calls"),
        ("get_history", "get_calls"),
        ("get_devices", "devices"),
        ("get_prepaid", "prepaid"),
        ("get_balance_history", "balance_history"),
        ("get_monthly_usage", "monthly_usage"),
        ("get_call_forwarding", "diversions"),
        ("get_call_forwarding", "get_diversions"),
        ("get_accept_rules", "rules"),
        ("get_accept_rules", "accept"),
        ("get_accept_rules", "get_accept"),
        ("get_reject_rules", "reject"),
        ("get_reject_rules", "get_reject"),
        ("get_voicemail", "voicemail"),
    ];
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        for (new, old) in pairs {
            let mut a = c.get(&format!("action={new}")).await.json();
            let mut o = c.get(&format!("export=1&action={old}")).await.json();
            for v in [&mut a, &mut o] {
                if let Value::Array(items) = v {
                    for i in items {
                        if let Some(m) = i.as_object_mut() {
                            m.remove("expires");
                        }
                    }
                }
            }
            assert_eq!(a, o, "{new} vs {old}");
        }
        for (old, msg) in [
            ("dnd_on", "Do not disturb has been enabled"),
            ("dnd_off", "Do not disturb has been disabled"),
            ("privacy_on", "Caller-ID is now hidden for outgoing calls"),
            ("privacy_off", "Caller-ID is now visible for outgoing calls"),
        ] {
            assert_eq!(
                c.get(&format!("export=1&action={old}")).await.message(),
                msg
            );
        }
        ts.stop().await;
    }
}

#[tokio::test]
async fn transports_paths_and_unknown_actions() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let c = ts.alice();
        // The other two paths.
        for path in ["/sip_settings_digest.phtml", "/sip_settings.phtml"] {
            let r = c
                .send(
                    "GET",
                    &format!("{path}?action=get_identity&realm=example.com"),
                    Body::None,
                )
                .await;
            assert_eq!(r.json()["sip_address"], "alice@example.com", "{path}");
        }
        // POST form: body wins over query.
        let r = c
            .post(
                "action=get_identity",
                &[("action", "add_alias"), ("username", "posted")],
            )
            .await;
        assert_eq!(r.message(), "Added alias posted");
        // POST multipart.
        let boundary = "XyZ";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\nadd_alias\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nmulti\r\n--{boundary}--\r\n"
        );
        let r = c
            .send(
                "POST",
                &c.target("x=1"),
                Body::Raw("multipart/form-data; boundary=XyZ", body.into_bytes()),
            )
            .await;
        assert_eq!(r.message(), "Added alias multi");
        // Unknown and missing action, after authentication.
        let r = c.get("action=launch_rockets").await;
        assert_eq!(
            (r.status, r.json()),
            (
                200,
                json!({"success": false, "error_message": "Error: invalid action"})
            )
        );
        let r = c.get("export=1").await;
        assert_eq!(r.success(), Some(false));
        // A realm given as user@domain uses the domain part.
        let r = c.get("action=get_identity&realm=alice@example.com").await;
        assert_eq!(r.json()["sip_address"], "alice@example.com");
        // Unencoded values with raw = and / (as Blink sends).
        let r = c.get("action=add_alias&username=raw/=x").await;
        assert_eq!(r.success(), Some(false));
        assert!(r.message().contains("invalid username"));
        let snap = snapshot(&c).await;
        assert_eq!(snap.len(), 13);
        ts.stop().await;
    }
}
