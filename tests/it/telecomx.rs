//! The telecomx-compatible listing `GET /sip` (operator-api §4): golden answers for a fixed
//! world on every backend (every parameter, role, page edge and error), bad input that never
//! changes anything nor answers 500, and the substring search following every change.
//!
//! Golden files: `tests/golden/sip/NAME.json` hold the request (with `{C1}`-style placeholders
//! for ids), the operator, the status, the interesting headers and the body, with public ids,
//! customer ids and voice-usage months normalised. `UPDATE_GOLDEN=1 cargo test --test it
//! telecomx` rewrites them from SQLite (every other backend is still compared).

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, TimeZone, Utc};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Resp, TestServer, backends, read};
use sipsettings::domain::{Account, Attr, AttrValue, CallRecord, NewAccount, Registration, Role};
use sipsettings::service::Services;
use sipsettings::service::tenancy::NewOperator;

const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/sip");
const OP_PW: &str = "operator-secret";
/// The SIP password of the accounts of the world (shown to roles that may write).
const SIP_PW: &str = "eh378gi2ufvhghug";

fn text(s: &str) -> AttrValue {
    AttrValue::Text(Some(s.into()))
}

fn basic(name: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{pw}"))
    )
}

/// Unix seconds of the first day of the month `back` months before this one (UTC).
fn month_start(back: u32) -> i64 {
    let today = Utc::now().date_naive();
    let (mut y, mut m) = (today.year(), today.month());
    for _ in 0..back {
        (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    }
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap()
        .timestamp()
}

struct World {
    /// `{C1}` → the id, for requests.
    vars: Vec<(String, String)>,
    /// Real value → placeholder, for answers: public ids, customer ids (in `customer` and
    /// `billingCustomer`), and voice-usage months.
    public_ids: HashMap<String, String>,
    customers: HashMap<String, String>,
    months: HashMap<String, String>,
    /// Operator name → `Authorization` value (Bearer tokens: no argon2 per request).
    auth: HashMap<&'static str, String>,
    accounts: HashMap<&'static str, Account>,
}

impl World {
    fn fill(&self, template: &str) -> String {
        let mut s = template.to_owned();
        for (k, v) in &self.vars {
            s = s.replace(k, v);
        }
        s
    }
}

/// Resellers R1 ⊃ R1a and R2; customers C1 (of R1), C1a (of R1a), C2 (of R2); six accounts in
/// C1 covering every kind of value, one in C1a, one in C2; operators of every role.
async fn world(s: &Services) -> World {
    let admin = Services::cli_admin();
    s.add_domain("example.com").await.unwrap();
    s.add_domain("other.org").await.unwrap();
    let r1 = s.create_reseller(&admin, "Acme", None).await.unwrap();
    let r1a = s
        .create_reseller(&admin, "Acme North", Some(r1.id))
        .await
        .unwrap();
    let r2 = s.create_reseller(&admin, "Globex", None).await.unwrap();
    let c1 = s
        .create_customer(&admin, "Example BV", Some(r1.id), None)
        .await
        .unwrap();
    let c1a = s
        .create_customer(&admin, "North BV", Some(r1a.id), None)
        .await
        .unwrap();
    let c2 = s
        .create_customer(&admin, "Globex Corp", Some(r2.id), None)
        .await
        .unwrap();

    let mut accounts = HashMap::new();
    let mut add = async |user: &'static str,
                         domain: &str,
                         customer: i64,
                         first: Option<&str>,
                         last: Option<&str>| {
        let a = s
            .add_account(
                NewAccount {
                    username: user.into(),
                    domain: domain.into(),
                    first_name: first.map(str::to_owned),
                    last_name: last.map(str::to_owned),
                    customer_id: Some(customer),
                    ..Default::default()
                },
                SIP_PW,
            )
            .await
            .unwrap();
        accounts.insert(user, a.clone());
        a
    };
    // The seed's full example, field for field.
    let trunk = add("trunk-cph", "example.com", c1.id, None, None).await;
    for n in ["+4570305050", "+4570305051", "+4570305052", "+4580808080"] {
        s.add_enum_number(&trunk, n).await.unwrap();
    }
    s.update_attrs(
        &admin,
        &trunk,
        vec![
            (Attr::Name, text("Primary trunk CPH")),
            (Attr::RatePlan, text("5f0c1a2b3c4d5e6f7a8b9c0d")),
            (Attr::RatePlanName, text("Standard SIP account")),
            (Attr::HighRate, AttrValue::Flag(true)),
            (Attr::International, AttrValue::Flag(true)),
            (Attr::Address, text("5f0c1a2b3c4d5e6f7a8b9c0e")),
            (Attr::Pbx, AttrValue::Int(Some(0))),
            (Attr::Notes, text("A note about the SIP account")),
            (Attr::Custom, text(r#"{"crm": "A-17", "tags": ["cph"]}"#)),
            (Attr::SipServer, text("1.2.3.4")),
            (Attr::Connection, text("IP_AUTH_REG")),
            (Attr::IpAddress, text("77.66.100.10")),
            (Attr::ClipSa, AttrValue::Flag(true)),
            (Attr::StripDkCountryCode, AttrValue::Flag(true)),
            (Attr::PrefixMobileOriginated, AttrValue::Flag(true)),
            (Attr::Failover, text("+4588888888@77.66.100.123")),
            (Attr::InvoicedUntil, AttrValue::Int(Some(1_388_534_400))),
            (Attr::DefaultNumber, text("+4580808080")),
            (Attr::BillingCustomer, AttrValue::Int(Some(c1a.id))),
        ],
    )
    .await
    .unwrap();
    // A hosted-PBX trunk: the listed properties are left out.
    let pbx = add("pbx-trunk", "example.com", c1.id, None, None).await;
    s.add_enum_number(&pbx, "+4570400000").await.unwrap();
    s.update_attrs(
        &admin,
        &pbx,
        vec![
            (Attr::Name, text("PBX cluster 2")),
            (Attr::Pbx, AttrValue::Int(Some(2))),
            (Attr::RatePlan, text("rp-pbx")),
            (Attr::Connection, text("IP")),
            (Attr::IpAddress, text("10.0.0.5")),
            (Attr::Port, AttrValue::Int(Some(5080))),
            (Attr::Countries, text("DK,SE")),
            (Attr::Failover, text("+4511111111")),
            (Attr::AlwaysFailover, AttrValue::Flag(true)),
            (Attr::SipServer, text("1.2.3.5")),
            (
                Attr::ParentSipAccount,
                text(&s.account_view(trunk.clone()).await.unwrap().attrs.public_id),
            ),
            (Attr::NewRatePlan, text("rp-pbx-2027")),
        ],
    )
    .await
    .unwrap();
    // Blocked, no attributes: the name falls back to first and last name.
    let alice = add("alice", "example.com", c1.id, Some("Alice"), Some("Jensen")).await;
    s.set_blocked(&alice, true).await.unwrap();
    // No name: the first number is the name and the default number; an expired registration.
    let bob = add("bob", "example.com", c1.id, None, None).await;
    s.add_enum_number(&bob, "+4533333333").await.unwrap();
    s.add_enum_number(&bob, "+4533333334").await.unwrap();
    s.update_attrs(
        &admin,
        &bob,
        vec![
            (Attr::Notes, text("VIP customer, call 80808080 first")),
            (Attr::UsageBlock, AttrValue::Flag(true)),
            (Attr::AlwaysDefaultNumber, AttrValue::Flag(true)),
            (Attr::AlwaysSecretNumber, AttrValue::Flag(true)),
            (Attr::Port, AttrValue::Int(Some(5060))),
        ],
    )
    .await
    .unwrap();
    let ip_only = add("ip_only", "example.com", c1.id, None, None).await;
    s.update_attrs(
        &admin,
        &ip_only,
        vec![
            (Attr::Connection, text("IP")),
            (Attr::IpAddress, text("192.0.2.80")),
        ],
    )
    .await
    .unwrap();
    // Same user name as in example.com, another domain: the id breaks the tie.
    let _ = add("alice", "other.org", c1.id, Some("Alice"), Some("Other")).await;
    let sub = add("north-1", "other.org", c1a.id, None, None).await;
    s.update_attrs(&admin, &sub, vec![(Attr::Name, text("North office"))])
        .await
        .unwrap();
    let glob = add("globex-1", "other.org", c2.id, None, None).await;
    s.update_attrs(&admin, &glob, vec![(Attr::Name, text("Globex HQ"))])
        .await
        .unwrap();

    // Live registrations (the newest is shown); an expired one does not count.
    let now = sipsettings::util::now();
    for (a, contact, ua, expires) in [
        (
            &trunk,
            "sip:trunk-cph@77.66.100.10:5060",
            "Asterisk 1.8.13",
            now + 3600,
        ),
        (
            &pbx,
            "sip:pbx-trunk@10.0.0.5:5080",
            "FreeSWITCH",
            now + 3600,
        ),
    ] {
        s.upsert_registration(
            a,
            &Registration {
                contact: contact.into(),
                public_contact: None,
                expires_at: expires,
                user_agent: Some(ua.into()),
                transport: Some("udp".into()),
                instance_id: None,
            },
        )
        .await
        .unwrap();
    }
    {
        let mut tx = s.store.begin_write().await.unwrap();
        s.store
            .upsert_registration(
                &mut tx,
                bob.id,
                &Registration {
                    contact: "sip:bob@192.0.2.9:5060".into(),
                    public_contact: None,
                    expires_at: now - 60,
                    user_agent: Some("Old phone".into()),
                    transport: None,
                    instance_id: None,
                },
                now - 3660,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // Calls: placed ones count in their month; received ones and those older than 12
    // months do not.
    let calls = [
        (&trunk, "placed", month_start(0) + 60, 120),
        (&trunk, "placed", month_start(0) + 120, 60),
        (&trunk, "received", month_start(0) + 180, 999),
        (&trunk, "placed", month_start(3) + 86_400, 300),
        (&trunk, "placed", month_start(11) + 10, 7),
        (&trunk, "placed", month_start(12) + 10, 5_000),
        (&bob, "placed", month_start(1) + 3600, 42),
    ];
    for (i, (a, dir, start, secs)) in calls.into_iter().enumerate() {
        s.record_call(
            a,
            CallRecord {
                id: 0,
                account_id: a.id,
                direction: dir.into(),
                remote_party: "+4512345678".into(),
                display_name: String::new(),
                start_time: start,
                stop_time: Some(start + secs),
                duration: secs,
                status: "200".into(),
                price: None,
                session_id: format!("call-{i}"),
                from_tag: format!("tag-{i}"),
                to_tag: String::new(),
                proxy_ip: String::new(),
                media: "audio".into(),
            },
        )
        .await
        .unwrap();
    }

    let mut auth = HashMap::new();
    for (name, role, customer, reseller) in [
        ("admin", Role::Admin, None, None),
        ("res1", Role::Reseller, None, Some(r1.id)),
        ("res1a", Role::Reseller, None, Some(r1a.id)),
        ("res2", Role::Reseller, None, Some(r2.id)),
        ("owner1", Role::Owner, Some(c1.id), None),
        ("manager1", Role::Manager, Some(c1.id), None),
        ("viewer1", Role::Viewer, Some(c1.id), None),
        ("owner2", Role::Owner, Some(c2.id), None),
    ] {
        let op = s
            .create_operator(
                &admin,
                NewOperator {
                    name: name.into(),
                    role,
                    customer_id: customer,
                    reseller_id: reseller,
                    password: Some(OP_PW.into()),
                },
            )
            .await
            .unwrap();
        let (_, token) = s.create_token(&admin, op.id, "t", None).await.unwrap();
        auth.insert(name, format!("Bearer {token}"));
    }
    auth.insert("basic-owner1", basic("owner1", OP_PW));
    auth.insert("wrong-password", basic("owner1", "not-the-password"));
    auth.insert("bad-token", "Bearer sst_not-a-token".into());

    let mut public_ids = HashMap::new();
    for a in s.list_accounts(None).await.unwrap() {
        let v = s.account_view(a.clone()).await.unwrap();
        public_ids.insert(
            v.attrs.public_id.clone(),
            format!("<account:{}@{}>", a.username, a.domain),
        );
    }
    let mut customers = HashMap::new();
    let mut vars = Vec::new();
    for (name, id) in [("C1", c1.id), ("C1a", c1a.id), ("C2", c2.id)] {
        customers.insert(id.to_string(), format!("<customer:{name}>"));
        vars.push((format!("{{{name}}}"), id.to_string()));
    }
    for (name, id) in [("R1", r1.id), ("R1a", r1a.id), ("R2", r2.id)] {
        vars.push((format!("{{{name}}}"), id.to_string()));
    }
    let mut months = HashMap::new();
    for back in 0..12u32 {
        let t = Utc.timestamp_opt(month_start(back), 0).single().unwrap();
        months.insert(
            t.format("%Y-%m-%dT00:00:00.000Z").to_string(),
            format!("<month-{back}>"),
        );
    }
    World {
        vars,
        public_ids,
        customers,
        months,
        auth,
        accounts,
    }
}

/// Public ids, customer ids and months replaced by their placeholders.
fn normalise(v: &mut Value, w: &World) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), &mut *x) {
                    ("customer" | "billingCustomer", Value::String(s)) => {
                        if let Some(n) = w.customers.get(s.as_str()) {
                            *s = n.clone();
                        }
                    }
                    ("date", Value::String(s)) => {
                        if let Some(n) = w.months.get(s.as_str()) {
                            *s = n.clone();
                        }
                    }
                    _ => normalise(x, w),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| normalise(x, w)),
        Value::String(s) => {
            if let Some(n) = w.public_ids.get(s.as_str()) {
                *s = n.clone();
            }
        }
        _ => {}
    }
}

async fn call(ts: &TestServer, w: &World, op: &str, method: &str, query: &str) -> Resp {
    let http = reqwest::Client::new();
    let q = w.fill(query);
    let url = if q.is_empty() {
        format!("{}/sip", ts.base)
    } else {
        format!("{}/sip?{q}", ts.base)
    };
    let mut rb = http.request(method.parse().unwrap(), url);
    if let Some(a) = w.auth.get(op) {
        rb = rb.header("authorization", a);
    }
    read(rb.send().await.unwrap()).await
}

/// One golden case: who asks what.
struct Case {
    name: &'static str,
    op: &'static str,
    method: &'static str,
    query: &'static str,
}

const fn get(name: &'static str, op: &'static str, query: &'static str) -> Case {
    Case {
        name,
        op,
        method: "GET",
        query,
    }
}

const CASES: &[Case] = &[
    // Shapes and roles.
    get("owner_condensed", "owner1", ""),
    get("owner_full", "owner1", "full=true"),
    get("manager_full", "manager1", "full=true"),
    get("viewer_full", "viewer1", "full=true"),
    get("reseller_full", "res1", "customer={C1}&full=true"),
    get("admin_full", "admin", "customer={C1}&full=true"),
    get("admin_condensed", "admin", "customer={C1}"),
    get("full_false", "owner1", "full=false&limit=1"),
    get("basic_auth", "basic-owner1", "limit=1"),
    get(
        "owner_own_customer_named",
        "owner1",
        "customer={C1}&limit=1",
    ),
    get(
        "empty_values_are_absent",
        "owner1",
        "customer=&filter=&up=&limit=&offset=&full=",
    ),
    // Scope.
    get("reseller_tree", "res1", "reseller={R1}"),
    get("reseller_sub", "res1", "reseller={R1a}"),
    get("sub_reseller_own", "res1a", "reseller={R1a}"),
    get(
        "reseller_and_customer",
        "admin",
        "reseller={R1}&customer={C1a}",
    ),
    get(
        "reseller_and_foreign_customer",
        "admin",
        "reseller={R2}&customer={C1}",
    ),
    get("admin_other_customer", "admin", "customer={C2}"),
    get("owner2_own", "owner2", "full=true"),
    // Filters.
    get("filter_name", "owner1", "filter=PRIMARY%20trunk"),
    get("filter_number", "owner1", "filter=80808080"),
    get(
        "filter_number_reseller",
        "res1",
        "customer={C1}&filter=80808080",
    ),
    get("filter_ip", "owner1", "filter=77.66.100"),
    get("filter_username", "owner1", "filter=ALI"),
    get("filter_notes_admin", "admin", "customer={C1}&filter=vip"),
    get("filter_notes_owner", "owner1", "filter=vip"),
    get("filter_one_char", "owner1", "filter=b"),
    get("filter_two_chars", "owner1", "filter=Cp"),
    get("filter_percent_literal", "owner1", "filter=%25"),
    get("filter_underscore_literal", "owner1", "filter=k_c"),
    get("filter_underscore_match", "owner1", "filter=p_o"),
    get("filter_quote", "owner1", "filter=a%22b%22c"),
    get("filter_plus_is_space", "owner1", "filter=trunk+cph"),
    get("filter_across_fields", "owner1", "filter=cph%20trunk"),
    get("filter_no_match", "owner1", "filter=zzzz"),
    get("filter_reseller_tree", "res1", "reseller={R1}&filter=north"),
    get("filter_and_up", "owner1", "filter=trunk&up=true"),
    // Up.
    get("up_true", "owner1", "up=true"),
    get("up_false", "owner1", "up=false"),
    get("up_true_full", "admin", "customer={C1}&up=true&full=true"),
    // Pages (C1 holds six accounts).
    get("page_first", "owner1", "limit=2"),
    get("page_second", "owner1", "offset=2&limit=2"),
    get("page_last", "owner1", "offset=4&limit=2"),
    get("page_partial_last", "owner1", "offset=5&limit=2"),
    get("page_beyond_last", "owner1", "offset=6&limit=2"),
    get("page_far_beyond", "owner1", "offset=9223372036854775807"),
    get("page_size_1", "owner1", "offset=3&limit=1"),
    get("page_size_max", "owner1", "limit=500"),
    // Errors.
    get("error_admin_no_customer", "admin", ""),
    get("error_reseller_no_customer", "res1", "full=true"),
    get("error_owner_other_customer", "owner1", "customer={C2}"),
    get("error_reseller_foreign_customer", "res2", "customer={C1}"),
    get("error_reseller_foreign_reseller", "res2", "reseller={R1}"),
    get("error_sub_reseller_parent", "res1a", "reseller={R1}"),
    get(
        "error_sub_reseller_parent_customer",
        "res1a",
        "customer={C1}",
    ),
    get("error_owner_reseller", "owner1", "reseller={R1}"),
    get("error_unknown_customer", "admin", "customer=999999"),
    get(
        "error_vendor_style_customer",
        "admin",
        "customer=1234567890ABCDEF12345678",
    ),
    get("error_unknown_reseller", "admin", "reseller=999999"),
    get("error_limit_zero", "owner1", "limit=0"),
    get("error_limit_too_big", "owner1", "limit=501"),
    get("error_limit_not_a_number", "owner1", "limit=ten"),
    get("error_limit_negative", "owner1", "limit=-5"),
    get("error_offset_negative", "owner1", "offset=-1"),
    get("error_offset_fraction", "owner1", "offset=1.5"),
    get("error_offset_huge", "owner1", "offset=99999999999999999999"),
    get("error_full_bad", "owner1", "full=yes"),
    get("error_up_bad", "owner1", "up=1"),
    get(
        "error_filter_too_long",
        "owner1",
        "filter=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ),
    get("error_filter_control", "owner1", "filter=a%09b"),
    get("error_repeated_parameter", "owner1", "limit=1&limit=2"),
    get("error_repeated_filter", "owner1", "filter=a&filter=b"),
    get("error_unknown_parameter", "owner1", "sort=name"),
    get("error_brackets", "owner1", "filter[name]=x"),
    get("error_malformed_brackets", "owner1", "filter%5B=x"),
    get("error_array_parameter", "owner1", "customer[]={C1}"),
    get("error_not_utf8", "owner1", "filter=%FF%FE"),
    get("error_no_credentials", "none", ""),
    get("error_wrong_password", "wrong-password", ""),
    get("error_bad_token", "bad-token", ""),
    Case {
        name: "error_method_post",
        op: "owner1",
        method: "POST",
        query: "",
    },
    Case {
        name: "error_method_delete",
        op: "admin",
        method: "DELETE",
        query: "customer={C1}",
    },
];

/// The golden form of an answer.
fn golden_of(case: &Case, r: &Resp, w: &World) -> Value {
    let mut headers = Map::new();
    for h in ["content-type", "www-authenticate", "allow", "retry-after"] {
        if let Some(v) = r.headers.get(h) {
            headers.insert(h.into(), Value::String(v.to_str().unwrap().to_owned()));
        }
    }
    let mut body = r.json();
    normalise(&mut body, w);
    let request = if case.query.is_empty() {
        format!("{} /sip", case.method)
    } else {
        format!("{} /sip?{}", case.method, case.query)
    };
    json!({
        "request": request,
        "operator": case.op,
        "status": r.status,
        "headers": headers,
        "body": body,
    })
}

#[tokio::test]
async fn golden_answers() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    std::fs::create_dir_all(GOLDEN_DIR).unwrap();
    for (i, b) in backends().into_iter().enumerate() {
        let ts = TestServer::start(b).await;
        let w = world(&ts.services).await;
        let mut failures = Vec::new();
        for case in CASES {
            let r = call(&ts, &w, case.op, case.method, case.query).await;
            assert_eq!(
                r.content_type(),
                "application/json",
                "{}: {}",
                case.name,
                r.text
            );
            let got = golden_of(case, &r, &w);
            let path = format!("{GOLDEN_DIR}/{}.json", case.name);
            if update && i == 0 {
                let mut text = serde_json::to_string_pretty(&got).unwrap();
                text.push('\n');
                std::fs::write(&path, text).unwrap();
                continue;
            }
            let want: Value = match std::fs::read_to_string(&path) {
                Ok(t) => serde_json::from_str(&t).unwrap(),
                Err(_) => Value::Null,
            };
            if want != got {
                failures.push(format!(
                    "{b}: {} differs from {path}\n--- got:\n{}",
                    case.name,
                    serde_json::to_string_pretty(&got).unwrap()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} golden mismatches (UPDATE_GOLDEN=1 rewrites them; review every change):\n{}",
            failures.len(),
            failures.join("\n")
        );
        ts.stop().await;
    }
    // No stale files: every golden file belongs to a case.
    let names: Vec<String> = CASES.iter().map(|c| format!("{}.json", c.name)).collect();
    for e in std::fs::read_dir(GOLDEN_DIR).unwrap() {
        let f = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(names.contains(&f), "{f} has no case in CASES");
    }
}

/// What an ADMIN sees of everything: used to prove that bad requests changed nothing.
async fn everything(ts: &TestServer, w: &World) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for c in ["{C1}", "{C1a}", "{C2}"] {
        let r = call(
            ts,
            w,
            "admin",
            "GET",
            &format!("customer={c}&full=true&limit=500"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        out.insert(c.to_owned(), r.json());
    }
    out
}

#[tokio::test]
async fn bad_input_changes_nothing_and_never_fails() {
    for b in backends() {
        let ts = TestServer::start(b).await;
        let w = world(&ts.services).await;
        let before = everything(&ts, &w).await;
        let mut queries: Vec<String> = [
            "filter=%",
            "filter=%%",
            "filter=%zz",
            "filter=%E2%82",
            "filter=%C0%AF",
            "filter=%00",
            "filter=*",
            "filter=\"",
            "filter='",
            "filter=\\",
            "filter=NEAR(a b)",
            "filter=a OR b",
            "filter=body:x",
            "filter={body}",
            "filter=^abc",
            "filter=a*",
            "filter='%20OR%201=1--",
            "filter=');DROP TABLE accounts;--",
            "&&&",
            "=",
            "==",
            "=x",
            "limit",
            "limit=",
            "offset",
            "[",
            "]",
            "%5B%5D=1",
            "a[b]c=1",
            "filter[=1",
            "filter]=1",
            "filter[[x]]=1",
            "limit=1e2",
            "limit= 5",
            "limit=5 ",
            "limit=0x10",
            "limit=١٢",
            "offset=-0",
            "offset=+1",
            "offset=18446744073709551616",
            "offset=9223372036854775808",
            "limit=-9223372036854775808",
            "full=TRUE",
            "full=true&full=true",
            "up=",
            "up=null",
            "customer=-1",
            "customer=0",
            "customer=1%00",
            "customer=%FF",
            "reseller=-1",
            "reseller=1e3",
            "customer={C1}&customer={C2}",
            "reseller={R1}&reseller={R1}",
            "customer=99999999999999999999999",
            "filter=\u{1F600}\u{1F600}\u{1F600}",
            "filter=%F0%9F%98%80",
            "filter=İ",
            "filter=ǅ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        queries.push(format!("filter={}", "x".repeat(100)));
        queries.push(format!("filter={}", "é".repeat(100)));
        queries.push(format!("{}=1", "k".repeat(3000)));
        queries.push("a=1&".repeat(1000));
        for q in &queries {
            for op in ["owner1", "admin", "viewer1"] {
                let r = call(&ts, &w, op, "GET", q).await;
                assert!(
                    [200, 400, 403, 414].contains(&r.status),
                    "{b} {op} {q:?}: {} {}",
                    r.status,
                    r.text
                );
                assert_eq!(r.content_type(), "application/json", "{q:?}");
                let v = r.json();
                if r.status != 200 {
                    assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
                }
            }
        }
        // Methods other than GET/HEAD, with and without bodies of every shape.
        let http = reqwest::Client::new();
        for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            for body in ["", "{}", "{\"sipAccounts\": []}", "not json", "[1,2]"] {
                let r = read(
                    http.request(method.parse().unwrap(), format!("{}/sip", ts.base))
                        .header("authorization", &w.auth["admin"])
                        .header("content-type", "application/json")
                        .body(body.to_owned())
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                assert_eq!(r.status, 405, "{method} {body}: {}", r.text);
                assert_eq!(r.json()["error"], "method_not_allowed");
                assert_eq!(r.headers["allow"], "GET,HEAD");
            }
        }
        // HEAD answers like GET without a body.
        let r = read(
            http.head(format!("{}/sip?limit=1", ts.base))
                .header("authorization", &w.auth["owner1"])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200);
        assert!(r.text.is_empty());
        // A 1 MB query string: refused before any work, never a 500.
        let huge = format!("filter={}", "a".repeat(1024 * 1024));
        let r = http
            .get(format!("{}/sip?{huge}", ts.base))
            .header("authorization", &w.auth["owner1"])
            .send()
            .await;
        if let Ok(r) = r {
            let r = read(r).await;
            assert!(
                [414, 431].contains(&r.status),
                "1 MB query: {} {}",
                r.status,
                r.text
            );
        }
        // 4 KiB + 1 byte reaches the handler: our own 414.
        let q = format!("filter={}", "a".repeat(4096 - 6));
        let r = call(&ts, &w, "owner1", "GET", &q).await;
        assert_eq!(r.status, 414, "{}", r.text);
        assert_eq!(r.json()["error"], "query");
        // Raw bytes that are not UTF-8 (not percent-encoded) in the request line.
        let addr = ts.server.as_ref().unwrap().addr;
        for target in [
            &b"/sip?filter=\xff\xfe"[..],
            b"/sip?filter=a\x80b",
            b"/sip?\xc3",
        ] {
            // Async: the server runs on this test's (single-threaded) runtime.
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut req = b"GET ".to_vec();
            req.extend_from_slice(target);
            req.extend_from_slice(
                format!(
                    " HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
                    w.auth["owner1"]
                )
                .as_bytes(),
            );
            s.write_all(&req).await.unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            let head = String::from_utf8_lossy(&out);
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            assert!(
                status == 400 || status == 200,
                "{target:?}: {}",
                head.lines().next().unwrap_or("")
            );
        }
        assert_eq!(
            before,
            everything(&ts, &w).await,
            "{b}: a bad request changed data"
        );
        ts.stop().await;
    }
}

/// The search text is kept by triggers: every change of a searched field (and of the ENUM
/// numbers) shows in the next search, deleted accounts disappear.
#[tokio::test]
async fn search_follows_every_change() {
    for b in backends() {
        let ts = TestServer::start(b).await;
        let w = world(&ts.services).await;
        let s = &ts.services;
        let admin = Services::cli_admin();
        let found = async |filter: &str| -> Vec<String> {
            let r = call(
                &ts,
                &w,
                "admin",
                "GET",
                &format!("customer={{C1}}&filter={filter}"),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let mut v = r.json()["sipAccounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["username"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>();
            v.sort();
            v
        };
        let ip_only = w.accounts["ip_only"].clone();
        assert_eq!(found("reception").await, Vec::<String>::new());
        s.update_attrs(&admin, &ip_only, vec![(Attr::Name, text("Reception Desk"))])
            .await
            .unwrap();
        assert_eq!(found("RECEPTION").await, ["ip_only"]);
        assert_eq!(found("re").await, ["ip_only"]);
        s.update_attrs(&admin, &ip_only, vec![(Attr::Name, AttrValue::Text(None))])
            .await
            .unwrap();
        assert_eq!(found("reception").await, Vec::<String>::new());
        // ENUM numbers: added, removed.
        assert_eq!(found("4599887766").await, Vec::<String>::new());
        s.add_enum_number(&ip_only, "+4599887766").await.unwrap();
        assert_eq!(found("4599887766").await, ["ip_only"]);
        assert_eq!(found("+45998").await, ["ip_only"]);
        s.remove_enum_number(&ip_only, "+4599887766").await.unwrap();
        assert_eq!(found("4599887766").await, Vec::<String>::new());
        // IP address and notes.
        s.update_attrs(
            &admin,
            &ip_only,
            vec![
                (Attr::IpAddress, text("203.0.113.7")),
                (Attr::Notes, text("Moved to the Aarhus office")),
            ],
        )
        .await
        .unwrap();
        assert_eq!(found("192.0.2.80").await, Vec::<String>::new());
        assert_eq!(found("203.0.113").await, ["ip_only"]);
        assert_eq!(found("aarhus").await, ["ip_only"]);
        // Through the end-user surface's store path too: the account goes, so do its rows.
        let bob = w.accounts["bob"].clone();
        assert_eq!(found("33333333").await, ["bob"]);
        s.remove_account(&bob).await.unwrap();
        assert_eq!(found("33333333").await, Vec::<String>::new());
        assert_eq!(found("vip").await, Vec::<String>::new());
        // A new account is searchable at once.
        let c1: i64 = w
            .vars
            .iter()
            .find(|(k, _)| k == "{C1}")
            .unwrap()
            .1
            .parse()
            .unwrap();
        s.add_account(
            NewAccount {
                username: "zed".into(),
                domain: "example.com".into(),
                customer_id: Some(c1),
                ..Default::default()
            },
            "pw-zed",
        )
        .await
        .unwrap();
        assert_eq!(found("zed").await, ["zed"]);
        ts.stop().await;
    }
}

/// Failed authentications are throttled like on every operator surface, in this format.
#[tokio::test]
async fn throttled_in_own_format() {
    let ts = TestServer::start_with("sqlite", |c| {
        c.throttle.max_failures = 2;
    })
    .await;
    let http = reqwest::Client::new();
    let mut last = None;
    for _ in 0..4 {
        let r = read(
            http.get(format!("{}/sip", ts.base))
                .header("authorization", "Bearer sst_nope")
                .send()
                .await
                .unwrap(),
        )
        .await;
        last = Some(r);
    }
    let r = last.unwrap();
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(r.json()["error"], "too_many_requests");
    assert_eq!(r.headers["retry-after"], "60");
    ts.stop().await;
}

/// `up=` follows registrations through every change (the newest expiry is kept by triggers):
/// registering, refreshing to a shorter expiry, expiring, removing one of two contacts,
/// removing the last, and the account going away.
#[tokio::test]
async fn up_follows_registrations() {
    for b in backends() {
        let ts = TestServer::start(b).await;
        let w = world(&ts.services).await;
        let s = &ts.services;
        let up = async |flag: bool| -> Vec<String> {
            let r = call(
                &ts,
                &w,
                "admin",
                "GET",
                &format!("customer={{C1}}&up={flag}"),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let body = r.json();
            let mut v: Vec<String> = body["sipAccounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["_id"].as_str().unwrap().to_owned())
                .map(|id| w.public_ids[&id].clone())
                .collect();
            v.sort();
            assert_eq!(body["total"], v.len(), "{body}");
            v
        };
        let ip = "<account:ip_only@example.com>".to_owned();
        let reg = |contact: &str, expires_at: i64| Registration {
            contact: contact.into(),
            public_contact: None,
            expires_at,
            user_agent: Some("Test".into()),
            transport: None,
            instance_id: None,
        };
        let store_reg = async |r: Registration| {
            let a = &w.accounts["ip_only"];
            let mut tx = s.store.begin_write().await.unwrap();
            s.store
                .upsert_registration(&mut tx, a.id, &r, sipsettings::util::now())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        };
        let now = sipsettings::util::now();
        assert!(!up(true).await.contains(&ip));
        assert!(up(false).await.contains(&ip));
        // Two contacts.
        store_reg(reg("sip:a@192.0.2.80", now + 600)).await;
        store_reg(reg("sip:b@192.0.2.80", now + 60)).await;
        assert!(up(true).await.contains(&ip));
        assert!(!up(false).await.contains(&ip));
        // The newer one refreshed to a shorter expiry, then removed: the other still holds.
        store_reg(reg("sip:a@192.0.2.80", now + 30)).await;
        assert!(up(true).await.contains(&ip));
        s.upsert_registration(&w.accounts["ip_only"], &reg("sip:a@192.0.2.80", now - 1))
            .await
            .unwrap();
        assert!(up(true).await.contains(&ip));
        // The last one's expiry moved into the past (kept, but not live): down.
        store_reg(reg("sip:b@192.0.2.80", now - 5)).await;
        assert!(!up(true).await.contains(&ip));
        assert!(up(false).await.contains(&ip));
        // Registered again, then the account removed.
        store_reg(reg("sip:c@192.0.2.80", now + 600)).await;
        assert!(up(true).await.contains(&ip));
        s.remove_account(&w.accounts["ip_only"]).await.unwrap();
        assert!(!up(true).await.contains(&ip));
        assert!(!up(false).await.contains(&ip));
        // Every live account in the world, through both halves.
        assert_eq!(
            up(true).await,
            [
                "<account:pbx-trunk@example.com>",
                "<account:trunk-cph@example.com>"
            ]
        );
        assert_eq!(up(false).await.len(), 3);
        ts.stop().await;
    }
}

/// The README's `/sip` examples run as written against `serve --demo`.
#[tokio::test]
async fn readme_sip_examples_work() {
    let script =
        crate::readme::readme_script("<!-- sip-examples", "<!-- end sip-examples -->").join("\n");
    assert!(script.matches("curl ").count() >= 4, "{script}");
    for b in backends() {
        let (out, demo_password) = crate::readme::run_against_demo(&script, b).await;
        // The CLI's lines first, then the four answers back to back.
        let first = out.find('{').expect("no JSON in the output");
        let answers: Vec<Value> = serde_json::Deserializer::from_str(&out[first..])
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(answers.len(), 4, "{out}");
        for a in &answers[..3] {
            assert_eq!(a["sipAccounts"][0]["username"], "alice", "{a}");
            assert_eq!(a["total"], 1, "{a}");
        }
        // full=true for an ADMIN: the SIP password (the demo prints it) and the customer.
        assert_eq!(answers[1]["sipAccounts"][0]["password"], demo_password);
        assert_eq!(answers[1]["sipAccounts"][0]["customer"], "1");
        assert_eq!(answers[2]["limit"], 10);
        assert_eq!(
            answers[3],
            json!({"error": "customer", "message": "Customer not found in arguments"})
        );
    }
}

/// Both ways a search runs (a bound list of the matching ids when there are few, the
/// condition itself when there are many) and the scan of one- and two-character filters give
/// the same totals and pages.
#[tokio::test]
async fn search_paths_agree_at_scale() {
    // Once in SQL alone, once with customers of 1 000 accounts or more kept in memory.
    for (b, min) in backends().into_iter().flat_map(|b| [(b, 0), (b, 1000)]) {
        let ts = TestServer::start_with(b, |c| c.database.search_mirror_min_accounts = min).await;
        let w = world(&ts.services).await;
        let s = &ts.services;
        let admin = Services::cli_admin();
        let c2: i64 = w
            .vars
            .iter()
            .find(|(k, _)| k == "{C2}")
            .unwrap()
            .1
            .parse()
            .unwrap();
        // 1 200 accounts in C2 (beside globex-1): "Branch 0000" … "Branch 1199".
        for i in 0..1200 {
            let a = s
                .add_account(
                    NewAccount {
                        username: format!("b{i:04}"),
                        domain: "example.com".into(),
                        customer_id: Some(c2),
                        ..Default::default()
                    },
                    "pw",
                )
                .await
                .unwrap();
            s.update_attrs(
                &admin,
                &a,
                vec![(Attr::Name, text(&format!("Branch {i:04}")))],
            )
            .await
            .unwrap();
        }
        let page = async |filter: &str, offset: usize, limit: usize| -> (i64, Vec<String>) {
            let r = call(
                &ts,
                &w,
                "admin",
                "GET",
                &format!("customer={{C2}}&filter={filter}&offset={offset}&limit={limit}"),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let v = r.json();
            let names = v["sipAccounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["username"].as_str().unwrap().to_owned())
                .collect();
            (v["total"].as_i64().unwrap(), names)
        };
        // Searches until the customer's in-memory copy is current (the first search after a
        // change runs in SQL and loads the copy in the background).
        let mirrored = async || {
            if min == 0 {
                return;
            }
            let started = std::time::Instant::now();
            while !s.store.search_copy_current(c2).await.unwrap() {
                assert!(started.elapsed().as_secs() < 20, "the copy never loaded");
                page("zzz", 0, 1).await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        let want = |range: std::ops::Range<usize>| -> Vec<String> {
            range.map(|i| format!("b{i:04}")).collect()
        };
        // Many matches: the condition itself (trigram index, then the short-pattern scan);
        // the totals and pages come from memory from here on.
        mirrored().await;
        for f in ["branch", "BRA", "br"] {
            assert_eq!(page(f, 0, 50).await, (1200, want(0..50)), "{b} {f}");
            assert_eq!(
                page(f, 1150, 100).await,
                (1200, want(1150..1200)),
                "{b} {f}"
            );
        }
        // With `up` (no account here has a registration; SQLite hands the copy's matches to
        // SQL for the registration check).
        for (up, total, first) in [("true", 0, None), ("false", 1200, Some("b1195"))] {
            let r = call(
                &ts,
                &w,
                "admin",
                "GET",
                &format!("customer={{C2}}&filter=branch&up={up}&offset=1195&limit=10"),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let v = r.json();
            assert_eq!(v["total"], total, "{b} {min} up={up}");
            let list = v["sipAccounts"].as_array().unwrap();
            assert_eq!(list.len(), if total > 0 { 5 } else { 0 }, "{b} {min}");
            assert_eq!(list.first().map(|a| a["username"].as_str().unwrap()), first);
        }
        // "b" also matches globex-1 ("Globex HQ"), which sorts last.
        let mut last = want(1190..1200);
        last.push("globex-1".into());
        assert_eq!(page("b", 1190, 50).await, (1201, last), "{b}");
        // Exactly the limit, and fewer: the bound list.
        assert_eq!(page("h%200", 990, 20).await, (1000, want(990..1000)), "{b}");
        assert_eq!(page("h%201", 0, 500).await, (200, want(1000..1200)), "{b}");
        assert_eq!(
            page("branch%2000", 0, 500).await,
            (100, want(0..100)),
            "{b}"
        );
        assert_eq!(
            page("branch%201199", 0, 5).await,
            (1, want(1199..1200)),
            "{b}"
        );
        // One more than the limit: the condition again.
        s.update_attrs(
            &admin,
            &s.find_account("b1000@example.com").await.unwrap(),
            vec![(Attr::Name, text("Branch 0999x"))],
        )
        .await
        .unwrap();
        let (total, names) = page("h%200", 1000, 5).await;
        assert_eq!((total, names), (1001, want(1000..1001)), "{b}");
        // Notes (searched by ADMIN) are not in the listing's index: a broad search still
        // finds an account by its notes alone, with and without trigrams.
        s.update_attrs(
            &admin,
            &s.find_account("globex-1@other.org").await.unwrap(),
            vec![(Attr::Notes, text("Old BRANCH office"))],
        )
        .await
        .unwrap();
        for round in 0..2 {
            // The first round right after the change (SQL), the second from memory.
            if round == 1 {
                mirrored().await;
            }
            for f in ["branch", "br", "BRANCH"] {
                let mut last = want(1195..1200);
                last.push("globex-1".into());
                assert_eq!(page(f, 1195, 50).await, (1201, last), "{b} {f}");
            }
        }
        {
            // Another process (its own pool, as another replica would) renames an account
            // and removes another: the very next search counts both changes.
            let other = sipsettings::store::Store::open(&ts.backing.config())
                .await
                .unwrap();
            let write = async |sql: &str| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(other.pool())
                    .await
                    .unwrap();
            };
            write("UPDATE accounts SET name = 'Moved away' WHERE username = 'b0005'").await;
            write("DELETE FROM accounts WHERE username = 'b0007'").await;
            let (total, names) = page("branch", 0, 5).await;
            assert_eq!(total, 1199, "{b}");
            assert_eq!(names, ["b0000", "b0001", "b0002", "b0003", "b0004"]);
            mirrored().await;
            let (total, names) = page("branch", 4, 4).await;
            assert_eq!(total, 1199, "{b}");
            assert_eq!(names, ["b0004", "b0006", "b0008", "b0009"]);
            // The listing without a filter (an empty `filter=` is none), and the order after
            // a user name changes only in case (the search text stays the same; the byte
            // order does not).
            write("UPDATE accounts SET username = 'B0009' WHERE username = 'b0009'").await;
            for round in 0..2 {
                if round == 1 {
                    mirrored().await;
                }
                let (total, names) = page("", 0, 3).await;
                assert_eq!(total, 1200, "{b} {round}");
                assert_eq!(names, ["B0009", "b0000", "b0001"], "{b} {round}");
            }
            other.close().await;
        }
        ts.stop().await;
    }
}
