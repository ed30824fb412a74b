//! The telecom.center-compatible JSON:API surface (`/api/rest/public/operator/sip_device_routes`):
//! golden responses for a fixed fixture (every filter, sort direction, page edge, fieldset and
//! include combination, every error), the vendor's seed examples field for field (also with
//! the real curl binary), scope per role, hostile input, and HTTPS links.
//!
//! Golden files live in `tests/golden/jsonapi/NAME.json`; `UPDATE_GOLDEN=1` rewrites them
//! (from the SQLite run; PostgreSQL is still compared). Public ids become `<username>`,
//! customer ids in resource identifiers `<customer NAME>`, `http://127.0.0.1:PORT` becomes
//! `http://HOST`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::harness::{TestServer, backends, init_crypto, read};
use sipsettings::domain::{Attr, AttrValue, NewAccount, Registration, Role};
use sipsettings::service::Services;
use sipsettings::service::tenancy::NewOperator;

const BASE: &str = "/api/rest/public/operator/sip_device_routes";
const JA: &str = "application/vnd.api+json";
const OP_PW: &str = "operator-secret";
const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/jsonapi");

/// One account of the fixture.
struct Spec {
    user: &'static str,
    customer: &'static str,
    caller_id_name: Option<&'static str>,
    internal: Option<i64>,
    external: Option<i64>,
    allow_external: bool,
    use_ips: bool,
    ips: &'static str,
    /// incoming_internal, incoming_external, outgoing_internal, outgoing_external, on_demand
    flags: [bool; 5],
    /// User agents of live registrations, oldest first.
    agents: &'static [&'static str],
}

const SPECS: &[Spec] = &[
    Spec {
        user: "alice",
        customer: "Acme",
        caller_id_name: Some("Alice Anders"),
        internal: Some(101),
        external: Some(31_201_000_101),
        allow_external: true,
        use_ips: true,
        ips: "10.0.0.1, 192.168.0.0/24",
        flags: [true, false, true, false, false],
        agents: &["Linphone/5.2"],
    },
    Spec {
        user: "bob",
        customer: "Acme",
        caller_id_name: Some("Bob Brown"),
        internal: Some(102),
        external: None,
        allow_external: true,
        use_ips: false,
        ips: "",
        flags: [false, true, false, true, false],
        agents: &[],
    },
    Spec {
        user: "carol",
        customer: "Beta",
        caller_id_name: None,
        internal: None,
        external: Some(31_201_000_103),
        allow_external: false,
        use_ips: true,
        ips: "2001:db8::1",
        flags: [false, false, false, false, true],
        agents: &["Zoiper rv2.10"],
    },
    Spec {
        user: "dave",
        customer: "Beta",
        caller_id_name: Some("Helo bye"),
        internal: Some(104),
        external: Some(31_201_000_104),
        allow_external: false,
        use_ips: false,
        ips: "",
        flags: [true, true, true, true, true],
        agents: &[],
    },
    Spec {
        user: "erin",
        customer: "Gamma",
        caller_id_name: Some("Erin Evans"),
        internal: Some(105),
        external: None,
        allow_external: true,
        use_ips: false,
        ips: "",
        flags: [false, false, false, false, false],
        agents: &["Old Phone 1.0", "Bria 6"],
    },
    Spec {
        user: "frank",
        customer: "default",
        caller_id_name: Some("frank"),
        internal: None,
        external: None,
        allow_external: false,
        use_ips: false,
        ips: "",
        flags: [false, false, false, false, false],
        agents: &[],
    },
];

pub struct World {
    pub ts: TestServer,
    /// public id → username
    ids: Vec<(String, String)>,
    /// username → public id
    by_name: HashMap<String, String>,
    /// customer name → id
    customers: Vec<(String, i64)>,
    /// operator name → bearer token
    tokens: HashMap<String, String>,
}

async fn create_operator(
    s: &Services,
    name: &str,
    role: Role,
    customer: Option<i64>,
    reseller: Option<i64>,
) -> String {
    let row = s
        .create_operator(
            &Services::cli_admin(),
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
    // Bearer tokens: argon2 per Basic request would make the case tables slow in debug builds.
    let (_, token) = s
        .create_token(&Services::cli_admin(), row.id, "t", None)
        .await
        .unwrap();
    token
}

pub async fn world(b: &'static str) -> World {
    let ts = TestServer::start(b).await;
    let s = &ts.services;
    let admin = Services::cli_admin();
    s.add_domain("example.com").await.unwrap();
    let r1 = s.create_reseller(&admin, "R1", None).await.unwrap();
    let acme = s
        .create_customer(&admin, "Acme", Some(r1.id), Some(10))
        .await
        .unwrap();
    let beta = s
        .create_customer(&admin, "Beta", Some(r1.id), None)
        .await
        .unwrap();
    let gamma = s
        .create_customer(&admin, "Gamma", None, Some(5))
        .await
        .unwrap();
    let customers = vec![
        ("default".to_owned(), 1),
        ("Acme".to_owned(), acme.id),
        ("Beta".to_owned(), beta.id),
        ("Gamma".to_owned(), gamma.id),
    ];
    let cid = |n: &str| customers.iter().find(|(c, _)| c == n).unwrap().1;
    let mut ids = Vec::new();
    let mut by_name = HashMap::new();
    for spec in SPECS {
        let a = s
            .add_account(
                NewAccount {
                    username: spec.user.into(),
                    domain: "example.com".into(),
                    customer_id: Some(cid(spec.customer)),
                    ..Default::default()
                },
                &format!("{}-pw", spec.user),
            )
            .await
            .unwrap();
        let mut changes = vec![
            (
                Attr::CallerIdName,
                AttrValue::Text(spec.caller_id_name.map(str::to_owned)),
            ),
            (Attr::InternalCallerId, AttrValue::Int(spec.internal)),
            (Attr::ExternalCallerId, AttrValue::Int(spec.external)),
            (
                Attr::AllowExternalCalls,
                AttrValue::Flag(spec.allow_external),
            ),
            (Attr::UseAllowedIps, AttrValue::Flag(spec.use_ips)),
            (Attr::AllowedIps, AttrValue::Text(Some(spec.ips.to_owned()))),
        ];
        for (attr, on) in [
            Attr::IncomingInternal,
            Attr::IncomingExternal,
            Attr::OutgoingInternal,
            Attr::OutgoingExternal,
            Attr::OnDemand,
        ]
        .into_iter()
        .zip(spec.flags)
        {
            changes.push((attr, AttrValue::Flag(on)));
        }
        let view = s.update_attrs(&admin, &a, changes).await.unwrap();
        for (i, ua) in spec.agents.iter().enumerate() {
            s.upsert_registration(
                &a,
                &Registration {
                    contact: format!("sip:{}@192.0.2.{}:5060", spec.user, i + 1),
                    public_contact: None,
                    expires_at: sipsettings::util::now() + 3600,
                    user_agent: Some((*ua).to_owned()),
                    transport: Some("udp".into()),
                    instance_id: None,
                },
            )
            .await
            .unwrap();
        }
        ids.push((view.attrs.public_id.clone(), spec.user.to_owned()));
        by_name.insert(spec.user.to_owned(), view.attrs.public_id.clone());
    }
    // frank's password predates recoverable storage: shown as null even to ADMIN.
    sqlx::query("UPDATE accounts SET password_sealed = NULL WHERE username = 'frank'")
        .execute(s.store.pool())
        .await
        .unwrap();
    let mut tokens = HashMap::new();
    for (name, role, customer, reseller) in [
        ("admin", Role::Admin, None, None),
        ("res1", Role::Reseller, None, Some(r1.id)),
        ("owner_acme", Role::Owner, Some(acme.id), None),
        ("viewer_acme", Role::Viewer, Some(acme.id), None),
        ("manager_beta", Role::Manager, Some(beta.id), None),
    ] {
        tokens.insert(
            name.to_owned(),
            create_operator(s, name, role, customer, reseller).await,
        );
    }
    World {
        ts,
        ids,
        by_name,
        customers,
        tokens,
    }
}

fn basic(name: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{pw}"))
    )
}

/// A request of a case. `target` may hold `{user}` (a public id) and `{C:name}` (a customer id).
#[derive(Clone)]
pub struct Req {
    pub op: &'static str,
    pub method: &'static str,
    pub target: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

impl Req {
    pub fn get(op: &'static str, target: impl Into<String>) -> Req {
        Req {
            op,
            method: "GET",
            target: target.into(),
            headers: Vec::new(),
            body: None,
        }
    }
    pub fn patch(op: &'static str, target: impl Into<String>, body: impl Into<String>) -> Req {
        Req {
            op,
            method: "PATCH",
            target: target.into(),
            headers: vec![("content-type", JA.to_owned())],
            body: Some(body.into()),
        }
    }
    pub fn header(mut self, k: &'static str, v: &str) -> Req {
        self.headers.retain(|(n, _)| *n != k);
        self.headers.push((k, v.to_owned()));
        self
    }
    pub fn without_header(mut self, k: &'static str) -> Req {
        self.headers.retain(|(n, _)| *n != k);
        self
    }
}

/// An answer, read fully.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_owned())
    }
}

impl World {
    pub fn fill(&self, s: &str) -> String {
        let mut t = s.to_owned();
        for (pid, user) in &self.ids {
            t = t.replace(&format!("{{{user}}}"), pid);
        }
        for (name, id) in &self.customers {
            t = t.replace(&format!("{{C:{name}}}"), &id.to_string());
        }
        t
    }

    pub fn id(&self, user: &str) -> String {
        self.by_name[user].clone()
    }

    pub async fn send(&self, r: &Req) -> Answer {
        init_crypto();
        let http = reqwest::Client::new();
        let url = format!("{}{}", self.ts.base, self.fill(&r.target));
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        let mut rb = http.request(method, url);
        match r.op {
            "none" => {}
            "badpw" => rb = rb.header("authorization", basic("admin", "wrong")),
            op if op.starts_with("basic:") => {
                rb = rb.header("authorization", basic(&op["basic:".len()..], OP_PW))
            }
            op => rb = rb.header("authorization", format!("Bearer {}", self.tokens[op])),
        }
        for (k, v) in &r.headers {
            rb = rb.header(*k, self.fill(v));
        }
        if let Some(b) = &r.body {
            rb = rb.body(self.fill(b));
        }
        let resp = read(rb.send().await.unwrap()).await;
        Answer {
            status: resp.status,
            headers: resp.headers,
            text: resp.text,
        }
    }

    /// Ids, customer ids and the host made stable.
    pub fn normalise(&self, text: &str) -> Value {
        let host = self.ts.base.trim_start_matches("http://");
        let mut t = text.replace(host, "HOST");
        for (pid, user) in &self.ids {
            t = t.replace(pid, &format!("<{user}>"));
        }
        let mut v: Value = serde_json::from_str(&t).unwrap_or(Value::String(t));
        self.customer_ids(&mut v);
        v
    }

    fn customer_ids(&self, v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.get("type") == Some(&json!("customers"))
                    && let Some(Value::String(id)) = o.get("id")
                {
                    let name = self
                        .customers
                        .iter()
                        .find(|(_, c)| c.to_string() == *id)
                        .map(|(n, _)| n.clone())
                        .unwrap_or_else(|| format!("unknown {id}"));
                    o.insert("id".into(), json!(format!("<customer {name}>")));
                }
                for x in o.values_mut() {
                    self.customer_ids(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.customer_ids(x)),
            _ => {}
        }
    }

    /// What a golden file holds for an answer.
    pub fn record(&self, r: &Req, a: &Answer) -> Value {
        let mut headers = Map::new();
        for name in ["allow", "retry-after", "www-authenticate"] {
            if let Some(v) = a.header(name) {
                headers.insert(name.into(), json!(v));
            }
        }
        let mut sent = Map::new();
        for (k, v) in &r.headers {
            sent.insert((*k).into(), json!(v));
        }
        let body_shown = r.body.as_ref().map(|b| {
            if b.len() > 300 {
                json!(format!("<{} bytes>", b.len()))
            } else {
                serde_json::from_str::<Value>(b).unwrap_or_else(|_| json!(b))
            }
        });
        let target = if r.target.len() > 300 {
            format!("{}… ({} bytes)", &r.target[..100], r.target.len())
        } else {
            r.target.clone()
        };
        json!({
            "request": {
                "as": r.op,
                "method": r.method,
                "target": target,
                "headers": sent,
                "body": body_shown,
            },
            "status": a.status,
            "content_type": a.header("content-type"),
            "headers": headers,
            "body": self.normalise(&a.text),
        })
    }
}

/// Compares (or, with `UPDATE_GOLDEN=1` on SQLite, writes) `tests/golden/jsonapi/NAME.json`.
pub fn golden(backend: &str, name: &str, got: &Value) {
    let path = format!("{GOLDEN_DIR}/{name}.json");
    let text = serde_json::to_string_pretty(got).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") && backend == "sqlite" {
        std::fs::create_dir_all(GOLDEN_DIR).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{path} is missing (UPDATE_GOLDEN=1 writes it)")),
    )
    .unwrap();
    assert!(
        &want == got,
        "{backend}: {name} differs from {path}:\n--- got ---\n{text}"
    );
}

/// Every answer of this surface: a JSON:API document, errors with their status as a string.
fn check_shape(case: &str, a: &Answer) {
    assert_eq!(
        a.header("content-type").as_deref(),
        Some(JA),
        "{case}: {} {}",
        a.status,
        a.text
    );
    let v = a.json();
    if a.status >= 400 {
        let errors = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: {}", a.text));
        assert!(!errors.is_empty(), "{case}");
        assert_eq!(errors[0]["status"], json!(a.status.to_string()), "{case}");
        assert!(errors[0]["title"].is_string(), "{case}");
        assert!(v.get("data").is_none(), "{case}: data and errors");
    } else {
        assert!(v.get("data").is_some(), "{case}");
        assert!(v.get("errors").is_none(), "{case}");
    }
    assert_ne!(a.status, 500, "{case}");
}

fn q(s: &str) -> String {
    format!("{BASE}?{s}")
}

fn one(user: &str) -> String {
    format!("{BASE}/{{{user}}}")
}

fn patch_doc(user: &str, attrs: Value) -> String {
    json!({"data": {"id": format!("{{{user}}}"), "type": "sip_device_routes", "attributes": attrs}})
        .to_string()
}

/// The case table: name → request. Reads first, then errors, then the writes (in order).
fn cases() -> Vec<(&'static str, Req)> {
    fn g(op: &'static str, t: impl Into<String>) -> Req {
        Req::get(op, t)
    }
    let mut v: Vec<(&'static str, Req)> = vec![
        // Lists per role (scope, and the password per role).
        ("list_admin", g("admin", BASE)),
        ("list_reseller", g("res1", BASE)),
        ("list_owner", g("owner_acme", BASE)),
        ("list_viewer_password_null", g("viewer_acme", BASE)),
        ("list_manager", g("manager_beta", BASE)),
        // Filters.
        ("filter_id", g("admin", q("filter[id]={alice},{dave}"))),
        (
            "filter_id_unknown_uuid",
            g(
                "admin",
                q("filter[id]=00000000-0000-4000-8000-000000000000"),
            ),
        ),
        (
            "filter_id_out_of_scope",
            g("owner_acme", q("filter[id]={carol}")),
        ),
        (
            "filter_customer_id",
            g("admin", q("filter[customer.id]={C:Beta},{C:Gamma}")),
        ),
        (
            "filter_customer_id_out_of_scope",
            g("owner_acme", q("filter[customer.id]={C:Beta}")),
        ),
        (
            "filter_username",
            g("admin", q("filter[username]=bob,erin,nobody")),
        ),
        (
            "filter_caller_id_name",
            g("admin", q("filter[caller_id_name]=Helo%20bye,Bob+Brown")),
        ),
        (
            "filter_allow_external_calls_true",
            g("admin", q("filter[allow_external_calls]=true")),
        ),
        (
            "filter_allow_external_calls_false",
            g("admin", q("filter[allow_external_calls]=false")),
        ),
        (
            "filter_allow_external_calls_both",
            g(
                "admin",
                q("filter[allow_external_calls]=true,false&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "filter_internal_caller_id",
            g("admin", q("filter[internal_caller_id]=101,104,999")),
        ),
        (
            "filter_external_caller_id",
            g("admin", q("filter[external_caller_id]=31201000103")),
        ),
        (
            "filter_combined",
            g(
                "admin",
                q(
                    "filter[customer.id]={C:Acme},{C:Beta}&filter[allow_external_calls]=false&sort=-username",
                ),
            ),
        ),
        ("filter_no_match", g("admin", q("filter[username]=nobody"))),
        // Pages.
        (
            "page_first",
            g(
                "admin",
                q("page[number]=1&page[size]=2&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "page_middle",
            g(
                "admin",
                q("page[number]=2&page[size]=2&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "page_last",
            g(
                "admin",
                q("page[number]=3&page[size]=2&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "page_beyond_last",
            g(
                "admin",
                q("page[number]=4&page[size]=2&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "page_size_1",
            g(
                "admin",
                q("page[size]=1&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "page_size_max",
            g(
                "admin",
                q("page[size]=500&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "page_links_keep_the_query",
            g(
                "admin",
                q(
                    "sort=-internal_caller_id,username&filter[allow_external_calls]=true&page[size]=1&page[number]=2&fields[sip_device_routes]=username,internal_caller_id&include=customer&fields[customers]=name",
                ),
            ),
        ),
        (
            "page_size_only_number_defaults",
            g(
                "admin",
                q("page[number]=1&fields[sip_device_routes]=username"),
            ),
        ),
        // Sparse fieldsets and include.
        (
            "fields_two",
            g(
                "admin",
                q("fields[sip_device_routes]=username,caller_id_name"),
            ),
        ),
        (
            "fields_empty",
            g(
                "admin",
                q("fields[sip_device_routes]=&filter[username]=alice"),
            ),
        ),
        (
            "fields_customer_relationship_only",
            g(
                "admin",
                q("fields[sip_device_routes]=customer&filter[username]=alice,carol"),
            ),
        ),
        (
            "fields_id_type_ignored",
            g(
                "admin",
                q("fields[sip_device_routes]=id,type,is_online&filter[username]=alice"),
            ),
        ),
        ("include_customer", g("admin", q("include=customer"))),
        (
            "include_customer_fields_name",
            g(
                "admin",
                q("include=customer&fields[customers]=name&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "include_customer_fields_empty",
            g(
                "res1",
                q("include=customer&fields[customers]=&fields[sip_device_routes]=username"),
            ),
        ),
        (
            "include_customer_without_relationship_field",
            g(
                "admin",
                q(
                    "include=customer&fields[sip_device_routes]=username,user_agent&filter[username]=erin",
                ),
            ),
        ),
        (
            "fields_customers_without_include",
            g(
                "admin",
                q("fields[customers]=name&fields[sip_device_routes]=username&filter[username]=bob"),
            ),
        ),
        (
            "include_empty_page",
            g("admin", q("include=customer&filter[username]=nobody")),
        ),
        // One resource.
        ("show", g("admin", one("alice"))),
        (
            "show_include_customer",
            g("admin", format!("{}?include=customer", one("carol"))),
        ),
        (
            "show_fields",
            g(
                "admin",
                format!(
                    "{}?fields[sip_device_routes]=username,is_online,user_agent",
                    one("erin")
                ),
            ),
        ),
        ("show_viewer_password_null", g("viewer_acme", one("bob"))),
        ("show_password_not_recoverable", g("admin", one("frank"))),
        ("show_uppercase_id", g("admin", "{ALICE_UPPER}".to_owned())),
        (
            "show_seed_headers",
            g("admin", one("dave"))
                .header("content-type", JA)
                .header("accept", JA),
        ),
        // Errors of reads.
        ("error_unauthenticated", g("none", BASE)),
        ("error_bad_password", g("badpw", BASE)),
        (
            "error_bearer_unknown",
            g("none", BASE).header("authorization", "Bearer sst_nope"),
        ),
        (
            "error_content_type_with_parameters",
            g("admin", BASE).header("content-type", "application/vnd.api+json; charset=utf-8"),
        ),
        (
            "error_accept_only_with_parameters",
            g("admin", BASE).header("accept", "application/vnd.api+json; ext=\"bulk\""),
        ),
        (
            "accept_with_and_without_parameters",
            g(
                "admin",
                q("fields[sip_device_routes]=username&filter[username]=bob"),
            )
            .header(
                "accept",
                "application/vnd.api+json; ext=bulk, application/vnd.api+json",
            ),
        ),
        ("error_unknown_parameter", g("admin", q("foo=1"))),
        (
            "error_malformed_bracket",
            g("admin", q("filter[username=alice")),
        ),
        ("error_nested_bracket", g("admin", q("filter[a][b]=1"))),
        (
            "error_repeated_parameter",
            g("admin", q("page[size]=1&page[size]=2")),
        ),
        (
            "error_repeated_filter",
            g(
                "admin",
                q("filter[username]=alice&filter%5Busername%5D=bob"),
            ),
        ),
        ("error_unknown_filter", g("admin", q("filter[password]=x"))),
        ("error_filter_id_not_uuid", g("admin", q("filter[id]=42"))),
        (
            "error_filter_customer_not_integer",
            g("admin", q("filter[customer.id]=Acme")),
        ),
        (
            "error_filter_bool",
            g("admin", q("filter[allow_external_calls]=yes")),
        ),
        (
            "error_filter_int",
            g("admin", q("filter[internal_caller_id]=1.5")),
        ),
        ("error_filter_empty", g("admin", q("filter[username]="))),
        ("error_unknown_sort", g("admin", q("sort=email"))),
        ("error_sort_password", g("admin", q("sort=-password"))),
        ("error_sort_twice", g("admin", q("sort=username,-username"))),
        ("error_sort_relationship", g("admin", q("sort=customer"))),
        ("error_page_zero", g("admin", q("page[number]=0"))),
        ("error_page_negative", g("admin", q("page[number]=-3"))),
        (
            "error_page_huge",
            g("admin", q("page[number]=99999999999999999999")),
        ),
        (
            "error_page_overflow",
            g(
                "admin",
                q("page[number]=9223372036854775807&page[size]=500"),
            ),
        ),
        ("error_page_size_too_big", g("admin", q("page[size]=501"))),
        ("error_page_size_zero", g("admin", q("page[size]=0"))),
        ("error_page_not_a_number", g("admin", q("page[size]=ten"))),
        (
            "error_page_unknown_member",
            g("admin", q("page[offset]=10")),
        ),
        (
            "error_fields_unknown_type",
            g("admin", q("fields[accounts]=username")),
        ),
        (
            "error_fields_unknown_field",
            g("admin", q("fields[sip_device_routes]=username,email")),
        ),
        (
            "error_fields_customers_unknown_field",
            g("admin", q("fields[customers]=balance")),
        ),
        ("error_include_unknown", g("admin", q("include=owner"))),
        (
            "error_include_nested",
            g("admin", q("include=customer.reseller")),
        ),
        ("error_not_utf8", g("admin", q("filter[username]=%FF%FE"))),
        ("error_not_utf8_name", g("admin", q("filter[%FF]=1"))),
        (
            "error_filter_on_one",
            g("admin", format!("{}?filter[username]=alice", one("alice"))),
        ),
        (
            "error_page_on_one",
            g("admin", format!("{}?page[size]=1", one("alice"))),
        ),
        (
            "error_show_unknown",
            g(
                "admin",
                format!("{BASE}/00000000-0000-4000-8000-000000000000"),
            ),
        ),
        ("error_show_not_uuid", g("admin", format!("{BASE}/42"))),
        ("error_show_out_of_scope", g("owner_acme", one("carol"))),
        (
            "error_unknown_subpath",
            g("admin", format!("{}/customer", one("alice"))),
        ),
        (
            "error_unknown_endpoint",
            g("admin", "/api/rest/public/operator/customers".to_owned()),
        ),
        (
            "error_method_not_allowed",
            Req {
                method: "DELETE",
                ..g("admin", one("alice"))
            },
        ),
        (
            "error_post_collection",
            Req {
                method: "POST",
                ..g("admin", BASE)
            }
            .header("content-type", JA),
        ),
        (
            "error_query_too_long",
            g(
                "admin",
                q(&format!("filter[username]={}", "a".repeat(40_000))),
            ),
        ),
    ];
    // Sorting on every attribute, both directions (ties break on creation order).
    for (name, field) in SORTS {
        v.push((
            name,
            g(
                "admin",
                q(&format!(
                    "sort={field}&fields[sip_device_routes]=username,{}",
                    field.trim_start_matches('-')
                )),
            ),
        ));
    }
    v.push(("sort_multi", g("admin", q("sort=-allow_external_calls,caller_id_name&fields[sip_device_routes]=username,allow_external_calls,caller_id_name"))));
    // Writes, in order.
    fn p(op: &'static str, t: impl Into<String>, body: impl Into<String>) -> Req {
        Req::patch(op, t, body)
    }
    v.extend([
        ("patch_both", p("admin", one("erin"), patch_doc("erin", json!({"use_allowed_ips": "true", "allowed_ips": "127.0.0.1"})))),
        ("patch_booleans_and_ipv6", p("owner_acme", one("bob"), patch_doc("bob", json!({"use_allowed_ips": true, "allowed_ips": "2001:db8::1 10.1.0.0/16,10.1.0.0/16"})))),
        ("patch_clear_list", p("manager_beta", one("carol"), patch_doc("carol", json!({"use_allowed_ips": false, "allowed_ips": null})))),
        ("patch_no_attributes", p("admin", one("dave"), json!({"data": {"id": "{dave}", "type": "sip_device_routes"}}).to_string())),
        ("patch_with_include_and_fields", p("res1", format!("{}?include=customer&fields[sip_device_routes]=use_allowed_ips,allowed_ips,customer", one("alice")), patch_doc("alice", json!({"allowed_ips": "10.0.0.2"})))),
        ("patch_uppercase_id_in_body", p("admin", one("erin"), json!({"data": {"id": "{ERIN_UPPER}", "type": "sip_device_routes", "attributes": {"use_allowed_ips": "false"}}}).to_string())),
        ("patch_error_viewer", p("viewer_acme", one("bob"), patch_doc("bob", json!({"use_allowed_ips": false})))),
        ("patch_error_out_of_scope", p("owner_acme", one("carol"), patch_doc("carol", json!({"use_allowed_ips": false})))),
        ("patch_error_unknown_id", p("admin", format!("{BASE}/00000000-0000-4000-8000-000000000000"), json!({"data": {"id": "00000000-0000-4000-8000-000000000000", "type": "sip_device_routes"}}).to_string())),
        ("patch_error_bad_ip", p("admin", one("erin"), patch_doc("erin", json!({"allowed_ips": "10.0.0.300"})))),
        ("patch_error_bad_prefix", p("admin", one("erin"), patch_doc("erin", json!({"allowed_ips": "10.0.0.0/33"})))),
        ("patch_error_bool_value", p("admin", one("erin"), patch_doc("erin", json!({"use_allowed_ips": "yes"})))),
        ("patch_error_list_type", p("admin", one("erin"), patch_doc("erin", json!({"allowed_ips": ["10.0.0.1"]})))),
        ("patch_error_read_only_attribute", p("admin", one("erin"), patch_doc("erin", json!({"caller_id_name": "New"})))),
        ("patch_error_password", p("admin", one("erin"), patch_doc("erin", json!({"password": "new-secret"})))),
        ("patch_error_unknown_attribute", p("admin", one("erin"), patch_doc("erin", json!({"email": "x@example.com"})))),
        ("patch_error_relationship", p("admin", one("erin"), json!({"data": {"id": "{erin}", "type": "sip_device_routes", "relationships": {"customer": {"data": {"type": "customers", "id": "1"}}}}}).to_string())),
        ("patch_error_wrong_type", p("admin", one("erin"), json!({"data": {"id": "{erin}", "type": "customers"}}).to_string())),
        ("patch_error_id_mismatch", p("admin", one("erin"), json!({"data": {"id": "{alice}", "type": "sip_device_routes"}}).to_string())),
        ("patch_error_missing_type", p("admin", one("erin"), json!({"data": {"id": "{erin}"}}).to_string())),
        ("patch_error_missing_id", p("admin", one("erin"), json!({"data": {"type": "sip_device_routes"}}).to_string())),
        ("patch_error_missing_data", p("admin", one("erin"), "{}")),
        ("patch_error_data_array", p("admin", one("erin"), r#"{"data": []}"#)),
        ("patch_error_top_level_member", p("admin", one("erin"), json!({"data": {"id": "{erin}", "type": "sip_device_routes"}, "included": []}).to_string())),
        ("patch_error_attributes_not_object", p("admin", one("erin"), json!({"data": {"id": "{erin}", "type": "sip_device_routes", "attributes": "x"}}).to_string())),
        ("patch_error_not_json", p("admin", one("erin"), "{\"data\": ")),
        ("patch_error_json_content_type", p("admin", one("erin"), patch_doc("erin", json!({"use_allowed_ips": true}))).header("content-type", "application/json")),
        ("patch_error_content_type_parameters", p("admin", one("erin"), patch_doc("erin", json!({"use_allowed_ips": true}))).header("content-type", "application/vnd.api+json; charset=utf-8")),
        ("patch_error_no_content_type", p("admin", one("erin"), patch_doc("erin", json!({"use_allowed_ips": true}))).without_header("content-type")),
        ("patch_error_too_large", p("admin", one("erin"), patch_doc("erin", json!({"allowed_ips": "1".repeat(70_000)})))),
        ("patch_error_unauthenticated", p("none", one("erin"), patch_doc("erin", json!({"use_allowed_ips": true})))),
        ("after_patches", g("admin", q("fields[sip_device_routes]=username,use_allowed_ips,allowed_ips"))),
    ]);
    v
}

const SORTS: [(&str, &str); 30] = [
    ("sort_id_asc_is_public_id_order", "id"),
    ("sort_id_desc_is_public_id_order", "-id"),
    ("sort_username_asc", "username"),
    ("sort_username_desc", "-username"),
    ("sort_incoming_internal_asc", "incoming_internal"),
    ("sort_incoming_internal_desc", "-incoming_internal"),
    ("sort_incoming_external_asc", "incoming_external"),
    ("sort_incoming_external_desc", "-incoming_external"),
    ("sort_outgoing_internal_asc", "outgoing_internal"),
    ("sort_outgoing_internal_desc", "-outgoing_internal"),
    ("sort_outgoing_external_asc", "outgoing_external"),
    ("sort_outgoing_external_desc", "-outgoing_external"),
    ("sort_on_demand_asc", "on_demand"),
    ("sort_on_demand_desc", "-on_demand"),
    ("sort_caller_id_name_asc", "caller_id_name"),
    ("sort_caller_id_name_desc", "-caller_id_name"),
    ("sort_internal_caller_id_asc", "internal_caller_id"),
    ("sort_internal_caller_id_desc", "-internal_caller_id"),
    ("sort_external_caller_id_asc", "external_caller_id"),
    ("sort_external_caller_id_desc", "-external_caller_id"),
    ("sort_allow_external_calls_asc", "allow_external_calls"),
    ("sort_allow_external_calls_desc", "-allow_external_calls"),
    ("sort_is_online_asc", "is_online"),
    ("sort_is_online_desc", "-is_online"),
    ("sort_user_agent_asc", "user_agent"),
    ("sort_user_agent_desc", "-user_agent"),
    ("sort_use_allowed_ips_asc", "use_allowed_ips"),
    ("sort_use_allowed_ips_desc", "-use_allowed_ips"),
    ("sort_allowed_ips_asc", "allowed_ips"),
    ("sort_allowed_ips_desc", "-allowed_ips"),
];

impl World {
    /// Placeholders the generic `fill` does not know.
    fn fill_case(&self, mut r: Req) -> Req {
        let upper = |u: &str| self.id(u).to_ascii_uppercase();
        r.target = r
            .target
            .replace("{ALICE_UPPER}", &format!("{BASE}/{}", upper("alice")));
        r.body = r.body.map(|b| b.replace("{ERIN_UPPER}", &upper("erin")));
        r
    }
}

#[tokio::test]
async fn golden_responses() {
    for b in backends() {
        let w = world(b).await;
        for (name, template) in cases() {
            let req = w.fill_case(template.clone());
            let a = w.send(&req).await;
            check_shape(name, &a);
            // The template, not the filled request: ids are random.
            let mut rec = w.record(&template, &a);
            if name.starts_with("sort_id_") {
                // Public ids are random: check the order against them, keep the file stable.
                let data = a.json()["data"].as_array().unwrap().clone();
                let got: Vec<String> = data
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned())
                    .collect();
                let mut want = got.clone();
                want.sort();
                if name.contains("desc") {
                    want.reverse();
                }
                assert_eq!(got, want, "{b}: {name}");
                rec["body"]["data"] = json!(format!("{} resources in public id order", data.len()));
            }
            golden(b, name, &rec);
        }
        w.ts.stop().await;
    }
}

/// Each name in the case table is a file, and each file a case (no stale golden files).
#[test]
fn golden_files_match_the_cases() {
    let mut names: Vec<String> = cases().iter().map(|(n, _)| (*n).to_owned()).collect();
    names.push("error_throttled".into());
    let set: std::collections::BTreeSet<_> = names.iter().cloned().collect();
    assert_eq!(set.len(), names.len(), "duplicate case names");
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        return;
    }
    let files: std::collections::BTreeSet<String> = std::fs::read_dir(GOLDEN_DIR)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_owned()
        })
        .collect();
    assert_eq!(files, set);
}

#[tokio::test]
async fn throttled_operators_get_429_in_jsonapi_form() {
    for b in backends() {
        let ts = TestServer::start_with(b, |c| {
            c.throttle.max_failures = 2;
            c.throttle.slow_after = 100;
        })
        .await;
        let w = World {
            ts,
            ids: Vec::new(),
            by_name: HashMap::new(),
            customers: Vec::new(),
            tokens: HashMap::new(),
        };
        let bad = Req::get("badpw", BASE);
        for _ in 0..2 {
            assert_eq!(w.send(&bad).await.status, 401);
        }
        let a = w.send(&Req::get("badpw", BASE)).await;
        check_shape("throttled", &a);
        golden(b, "error_throttled", &w.record(&bad, &a));
        w.ts.stop().await;
    }
}

// ---- the vendor's seed examples ----

const SEED_ID: &str = "c1c798dc-ee42-462e-8fca-0fa96d6fe3c0";
const SEED_HOST: &str = "https://api.telecom.center";

/// The seed's list response body (reference/seeds/003), verbatim.
const SEED_LIST: &str = r#"{
"data": [
{
"id": "c1c798dc-ee42-462e-8fca-0fa96d6fe3c0",
"type": "sip_device_routes",
"links": {
"self": "https://api.telecom.center/api/rest/public/operator/sip_device_routes/c1c798dc-ee42-462e-8fca-0fa96d6fe3c0"
},
"attributes": {
"username": "z4wnypvker",
"password": "08hxobdp5z",
"incoming_internal": false,
"incoming_external": false,
"outgoing_internal": false,
"outgoing_external": false,
"on_demand": false,
"caller_id_name": "Helo bye",
"internal_caller_id": null,
"external_caller_id": null,
"allow_external_calls": false,
"is_online": false,
"user_agent": null,
"use_allowed_ips": true,
"allowed_ips": "127.0.0.1/32"
}
}
],
"meta": {
"record_count": 1
},
"links": {
"first": "https://api.telecom.center/api/rest/public/operator/sip_device_routes?page%5Bnumber%5D=1&page%5Bsize%5D=50",
"last": "https://api.telecom.center/api/rest/public/operator/sip_device_routes?page%5Bnumber%5D=1&page%5Bsize%5D=50"
}
}"#;

/// The seed's PATCH response body, verbatim.
const SEED_PATCHED: &str = r#"{
"data": {
"id": "c1c798dc-ee42-462e-8fca-0fa96d6fe3c0",
"type": "sip_device_routes",
"links": {
"self": "https://api.telecom.center/api/rest/public/operator/sip_device_routes/c1c798dc-ee42-462e-8fca-0fa96d6fe3c0"
},
"attributes": {
"username": "z4wnypvker",
"password": "08hxobdp5z",
"incoming_internal": false,
"incoming_external": false,
"outgoing_internal": false,
"outgoing_external": false,
"on_demand": false,
"caller_id_name": "Helo bye",
"internal_caller_id": null,
"external_caller_id": null,
"allow_external_calls": false,
"is_online": false,
"user_agent": null,
"use_allowed_ips": true,
"allowed_ips": "127.0.0.1/32"
}
}
}"#;

/// The seed's PATCH body (from its curl command), verbatim.
const SEED_PATCH_BODY: &str = r#"{"data": {"attributes": {"allowed_ips": "127.0.0.1", "use_allowed_ips": "true"}, "id": "c1c798dc-ee42-462e-8fca-0fa96d6fe3c0", "type": "sip_device_routes"}}"#;

/// The seed's account (z4wnypvker / 08hxobdp5z, "Helo bye", 127.0.0.1/32) alone in a customer
/// whose OWNER is `username:password`, as in the seed's `--user username:password`.
async fn seed_world(b: &'static str) -> (TestServer, String, sipsettings::domain::Account) {
    let ts = TestServer::start(b).await;
    let s = &ts.services;
    let admin = Services::cli_admin();
    s.add_domain("sip.telecom.example").await.unwrap();
    let c = s.create_customer(&admin, "Seed", None, None).await.unwrap();
    let a = s
        .add_account(
            NewAccount {
                username: "z4wnypvker".into(),
                domain: "sip.telecom.example".into(),
                customer_id: Some(c.id),
                ..Default::default()
            },
            "08hxobdp5z",
        )
        .await
        .unwrap();
    let v = s
        .update_attrs(
            &admin,
            &a,
            vec![
                (Attr::CallerIdName, AttrValue::Text(Some("Helo bye".into()))),
                (Attr::UseAllowedIps, AttrValue::Flag(true)),
                (
                    Attr::AllowedIps,
                    AttrValue::Text(Some("127.0.0.1/32".into())),
                ),
            ],
        )
        .await
        .unwrap();
    s.create_operator(
        &admin,
        NewOperator {
            name: "username".into(),
            role: Role::Owner,
            customer_id: Some(c.id),
            reseller_id: None,
            password: Some("password".into()),
        },
    )
    .await
    .unwrap();
    (ts, v.attrs.public_id, a)
}

/// The seed's text with its id and host replaced by ours.
fn seed_expected(text: &str, id: &str, base: &str) -> Value {
    serde_json::from_str(&text.replace(SEED_ID, id).replace(SEED_HOST, base)).unwrap()
}

/// `curl -i …`: (status line, headers lower-cased, body).
/// Runs off the test's runtime thread, which also serves the requests.
async fn curl_i(args: &[&str]) -> (String, BTreeMap<String, String>, String) {
    let o = tokio::process::Command::new("curl")
        .args(["-sS"])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[tokio::test]
async fn seed_examples_field_for_field() {
    for b in backends() {
        let (ts, id, account) = seed_world(b).await;
        let url = format!("{}{BASE}", ts.base);
        // The seed's HTTP example: Content-Type and `Authorization: Basic` for username:password.
        init_crypto();
        let r = read(
            reqwest::Client::new()
                .get(&url)
                .header("Content-Type", JA)
                .header("Authorization", "Basic dXNlcm5hbWU6cGFzc3dvcmQ=")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.content_type(), JA);
        assert_eq!(r.json(), seed_expected(SEED_LIST, &id, &ts.base), "{b}");
        // Key order too: the seed's text, with our id and host, is our text.
        let compact = |v: &Value| serde_json::to_string(v).unwrap();
        assert_eq!(r.text, compact(&seed_expected(SEED_LIST, &id, &ts.base)));

        // The seed's curl command shape, with the real curl binary.
        let (status, headers, body) = curl_i(&[
            "-i",
            &url,
            "-H",
            "Content-Type: application/vnd.api+json",
            "--user",
            "username:password",
        ])
        .await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert_eq!(headers["content-type"], JA);
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            got,
            seed_expected(SEED_LIST, &id, &ts.base),
            "{b}: curl list"
        );

        // Undo the seed's values so the PATCH really sets them.
        ts.services
            .update_attrs(
                &Services::cli_admin(),
                &account,
                vec![
                    (Attr::UseAllowedIps, AttrValue::Flag(false)),
                    (Attr::AllowedIps, AttrValue::Text(None)),
                ],
            )
            .await
            .unwrap();
        let (status, headers, body) = curl_i(&[
            "-i",
            "-X",
            "PATCH",
            &format!("{url}/{id}"),
            "-H",
            "Content-Type: application/vnd.api+json",
            "--data-raw",
            &SEED_PATCH_BODY.replace(SEED_ID, &id),
            "--user",
            "username:password",
        ])
        .await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
        assert_eq!(headers["content-type"], JA);
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            got,
            seed_expected(SEED_PATCHED, &id, &ts.base),
            "{b}: curl patch"
        );
        assert_eq!(body, compact(&seed_expected(SEED_PATCHED, &id, &ts.base)));
        // The change is in the store, for every surface.
        let v = ts.services.account_view(account.clone()).await.unwrap();
        assert_eq!(v.attrs.use_allowed_ips, 1);
        assert_eq!(v.attrs.allowed_ips, "127.0.0.1/32");

        // And the one-resource GET of the seed answers the same resource.
        let (status, _, body) = curl_i(&[
            "-i",
            &format!("{url}/{id}"),
            "-H",
            "Content-Type: application/vnd.api+json",
            "--user",
            "username:password",
        ])
        .await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            got,
            seed_expected(SEED_PATCHED, &id, &ts.base),
            "{b}: curl show"
        );
        ts.stop().await;
    }
}

// ---- hostile input ----

/// What every account looks like to ADMIN, and the fixture's operators still work.
async fn state(w: &World) -> Value {
    let a = w
        .send(&Req::get("admin", q("page[size]=500&include=customer")))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    w.normalise(&a.text)
}

#[tokio::test]
async fn bad_input_never_500_never_changes_anything() {
    for b in backends() {
        let w = world(b).await;
        let before = state(&w).await;
        let erin = one("erin");
        let mut reqs: Vec<Req> = Vec::new();
        for target in [
            "filter[",
            "filter]=1",
            "[]=1",
            "filter[[id]]=1",
            "filter[id]]=1",
            "filter[]=1",
            "fields[]=username",
            "page=1",
            "page[number]=1&page[number]=1",
            "sort=username&sort=username",
            "include=customer&include=customer",
            "filter[username]=alice&filter[username]=alice",
            "filter[foo]=1",
            "filter[customer]=1",
            "page[number]=-1",
            "page[number]=-9223372036854775808",
            "page[number]=18446744073709551616",
            "page[number]=1e3",
            "page[number]=+1x",
            "page[size]=99999999999",
            "page[size]=-50",
            "%FF",
            "%FF=%FE",
            "filter%5Busername%5D=%C3%28",
            "sort=%00",
            "filter[username]=%00",
            "fields[sip_device_routes]=username,,password%00",
            "include=%2C%2C",
            "sort=-",
            "sort=--username",
            "sort=,",
        ] {
            reqs.push(Req::get("admin", q(target)));
        }
        reqs.push(Req::get(
            "admin",
            q(&format!(
                "filter[id]={}",
                vec!["00000000-0000-4000-8000-000000000000"; 501].join(",")
            )),
        ));
        reqs.push(Req::get(
            "admin",
            q(&format!("filter[username]={}", "x".repeat(33 * 1024))),
        ));
        reqs.push(Req::get("admin", q(&"&".repeat(33 * 1024))));
        for body in [
            "".to_owned(),
            "null".to_owned(),
            "42".to_owned(),
            "\"data\"".to_owned(),
            "[{\"data\": {}}]".to_owned(),
            "{\"data\": \"{erin}\"}".to_owned(),
            "{\"data\": {\"id\": null, \"type\": null}}".to_owned(),
            "{\"data\": {\"id\": [\"{erin}\"], \"type\": \"sip_device_routes\"}}".to_owned(),
            "{\"data\": {\"id\": \"{erin}\", \"type\": [\"sip_device_routes\"]}}".to_owned(),
            "{\"data\": {\"id\": \"{erin}\", \"type\": \"sip_device_routes\", \"attributes\": {\"use_allowed_ips\": null}}}".to_owned(),
            "{\"data\": {\"id\": \"{erin}\", \"type\": \"sip_device_routes\", \"attributes\": {\"use_allowed_ips\": {}}}}".to_owned(),
            "{\"data\": {\"id\": \"{erin}\", \"type\": \"sip_device_routes\", \"attributes\": {\"allowed_ips\": {\"a\": 1}}}}".to_owned(),
            "{\"data\": {\"id\": \"{erin}\", \"type\": \"sip_device_routes\", \"attributes\": {\"allowed_ips\": \"10.0.0.1\", \"username\": \"x\"}}}".to_owned(),
            "{\"data\": {\"id\": \"{erin}\", \"type\": \"sip_device_routes\", \"attributes\": {\"use_allowed_ips\": true, \"allowed_ips\": \"not an ip\"}}}".to_owned(),
            "{\"data\": {\"id\": \"{erin}\", \"type\": \"sip_device_routes\", \"attributes\": {\"allowed_ips\": \"10.0.0.1\u{0}\"}}}".to_owned(),
            format!("{{\"data\": {{\"id\": \"{{erin}}\", \"type\": \"sip_device_routes\", \"attributes\": {{\"allowed_ips\": \"{}\"}}}}}}", (0..300).map(|i| format!("10.0.{}.{}", i / 250, i % 250)).collect::<Vec<_>>().join(",")),
            "{\"data\": {\"id\": \"{erin}\", \"type\": \"sip_device_routes\", \"relationships\": []}}".to_owned(),
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            "{\"data\": {\"id\": \"{alice}\", \"type\": \"sip_device_routes\", \"attributes\": {\"use_allowed_ips\": false}}}".to_owned(),
        ] {
            reqs.push(Req::patch("admin", erin.clone(), body));
        }
        reqs.push(Req::patch(
            "admin",
            erin.clone(),
            vec!["x"; 3 * 1024 * 1024].concat(),
        ));
        // A VIEWER's valid PATCH of its own customer's account changes nothing either.
        reqs.push(Req::patch(
            "viewer_acme",
            one("alice"),
            patch_doc("alice", json!({"use_allowed_ips": false})),
        ));
        reqs.push(Req::patch(
            "owner_acme",
            one("carol"),
            patch_doc("carol", json!({"use_allowed_ips": false})),
        ));
        for r in &reqs {
            let a = w.send(r).await;
            let label = format!("{b}: {} {}", r.method, short(&r.target));
            assert!(
                (400..500).contains(&a.status),
                "{label}: {} {}",
                a.status,
                a.text
            );
            check_shape(&label, &a);
        }
        // A 1 MB query string: refused before routing, as a 414 (its JSON:API error document
        // is checked in bad_input::refusals_before_routing_use_each_surface_format).
        let big = format!(
            "{}{}",
            w.ts.base,
            q(&format!("filter[username]={}", "b".repeat(1_000_000)))
        );
        if let Ok(resp) = reqwest::Client::new()
            .get(big)
            .header("authorization", format!("Bearer {}", w.tokens["admin"]))
            .send()
            .await
        {
            assert_eq!(resp.status().as_u16(), 414);
        }
        // Raw bytes that are not UTF-8 in the request line.
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let addr = w.ts.base.trim_start_matches("http://").to_owned();
            let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut req = b"GET /api/rest/public/operator/sip_device_routes?filter[username]=\xff\xfe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ".to_vec();
            req.extend_from_slice(w.tokens["admin"].as_bytes());
            req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
            sock.write_all(&req).await.unwrap();
            let mut out = Vec::new();
            let _ = sock.read_to_end(&mut out).await;
            let text = String::from_utf8_lossy(&out);
            let status: u16 = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            assert!((400..500).contains(&status), "{text}");
        }
        // Values are data, never SQL.
        let a = w
            .send(&Req::get(
                "admin",
                q("filter[caller_id_name]=%27%3B%20DROP%20TABLE%20accounts%3B--"),
            ))
            .await;
        assert_eq!(
            (a.status, a.json()["meta"]["record_count"].clone()),
            (200, json!(0))
        );
        assert_eq!(state(&w).await, before, "{b}: something changed");
        w.ts.stop().await;
    }
}

pub fn short(s: &str) -> String {
    if s.len() > 120 {
        format!("{}… ({} bytes)", &s[..120], s.len())
    } else {
        s.to_owned()
    }
}

// ---- links over HTTPS, Host ----

#[tokio::test]
async fn links_use_the_requests_scheme_and_host() {
    let w = world("sqlite").await;
    let ca = w.ts.services.ca().unwrap().cert_pem.clone();
    init_crypto();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let r = read(
        client
            .get(format!("{}{BASE}?page[size]=2", w.ts.tls_base))
            .header("authorization", format!("Bearer {}", w.tokens["admin"]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let first = v["links"]["first"].as_str().unwrap();
    assert_eq!(
        first,
        format!(
            "{}{BASE}?page%5Bnumber%5D=1&page%5Bsize%5D=2",
            w.ts.tls_base
        )
    );
    assert!(
        v["data"][0]["links"]["self"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    // Plain HTTP with another Host: that host (a reverse proxy passing Host through).
    let a = w
        .send(&Req::get("admin", q("page[size]=2")).header("host", "sip.example.net:8080"))
        .await;
    assert_eq!(
        a.json()["links"]["next"],
        json!(format!(
            "http://sip.example.net:8080{BASE}?page%5Bnumber%5D=2&page%5Bsize%5D=2"
        ))
    );
    // A Host that is not a host name is not echoed into links.
    let a = w
        .send(&Req::get("admin", q("page[size]=2")).header("host", "evil.example/<x>"))
        .await;
    assert!(
        a.json()["links"]["first"]
            .as_str()
            .unwrap()
            .starts_with("http://localhost/")
    );
    w.ts.stop().await;
}

/// A change through this surface is a change of the one store: the services (and so
/// settings.phtml and /api/v1) see it at once, and a change elsewhere shows here.
#[tokio::test]
async fn one_store_for_every_surface() {
    for b in backends() {
        let w = world(b).await;
        let a = w
            .send(&Req::patch(
                "owner_acme",
                one("bob"),
                patch_doc(
                    "bob",
                    json!({"use_allowed_ips": true, "allowed_ips": "198.51.100.7"}),
                ),
            ))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let bob = w.ts.services.find_account("bob@example.com").await.unwrap();
        let v = w.ts.services.account_view(bob.clone()).await.unwrap();
        assert_eq!(
            (v.attrs.use_allowed_ips, v.attrs.allowed_ips.as_str()),
            (1, "198.51.100.7/32")
        );
        w.ts.services
            .update_attrs(
                &Services::cli_admin(),
                &bob,
                vec![(Attr::CallerIdName, AttrValue::Text(Some("Robert".into())))],
            )
            .await
            .unwrap();
        let a = w.send(&Req::get("viewer_acme", one("bob"))).await;
        assert_eq!(
            a.json()["data"]["attributes"]["caller_id_name"],
            json!("Robert")
        );
        // A password change is visible to writers at once.
        w.ts.services
            .set_password(&bob, "new-bob-pw")
            .await
            .unwrap();
        let a = w.send(&Req::get("manager_beta", one("bob"))).await;
        assert_eq!(a.status, 404);
        let a = w.send(&Req::get("owner_acme", one("bob"))).await;
        assert_eq!(
            a.json()["data"]["attributes"]["password"],
            json!("new-bob-pw")
        );
        w.ts.stop().await;
    }
}

#[tokio::test]
async fn basic_authentication_like_the_seed() {
    let w = world("sqlite").await;
    let a = w
        .send(&Req::get(
            "basic:viewer_acme",
            q("fields[sip_device_routes]=username,password"),
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        w.normalise(&a.text)["data"],
        json!([
            {"id": "<alice>", "type": "sip_device_routes", "links": {"self": format!("http://HOST{BASE}/<alice>")}, "attributes": {"username": "alice", "password": null}},
            {"id": "<bob>", "type": "sip_device_routes", "links": {"self": format!("http://HOST{BASE}/<bob>")}, "attributes": {"username": "bob", "password": null}},
        ])
    );
    w.ts.stop().await;
}
