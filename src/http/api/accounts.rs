//! `/api/v1/accounts` and their settings: the same services as `settings.phtml`, in scope.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::tenancy::id;
use super::{
    ApiError, ApiResult, Caller, JsonBody, Page, check_if_match, json_ok, paged, query, with_etag,
};
use crate::crypto::random_password;
use crate::domain::{Account, Forwarding, NewAccount};
use crate::http::AppState;
use crate::service::NewVoicemail;
use crate::service::tenancy::Operator;
use crate::store::AccountUpdate;
use crate::util::money_to_string;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts", get(list_accounts).post(create_account))
        .route(
            "/api/v1/accounts/{id}",
            get(get_account).patch(patch_account).delete(delete_account),
        )
        .route("/api/v1/accounts/{id}/password", put(set_password))
        .route("/api/v1/accounts/{id}/password/reset", post(reset_password))
        .route(
            "/api/v1/accounts/{id}/aliases",
            get(list_aliases).post(add_alias),
        )
        .route("/api/v1/accounts/{id}/aliases/{name}", delete(delete_alias))
        .route(
            "/api/v1/accounts/{id}/enum_numbers",
            get(list_enum).post(add_enum),
        )
        .route(
            "/api/v1/accounts/{id}/enum_numbers/{number}",
            delete(delete_enum),
        )
        .route(
            "/api/v1/accounts/{id}/voicemail",
            get(get_voicemail)
                .put(put_voicemail)
                .delete(delete_voicemail),
        )
        .route(
            "/api/v1/accounts/{id}/call_forwarding",
            get(get_forwarding).patch(patch_forwarding),
        )
        .route(
            "/api/v1/accounts/{id}/accept_rules",
            get(get_accept).put(put_accept),
        )
        .route(
            "/api/v1/accounts/{id}/reject_rules",
            get(get_reject).put(put_reject),
        )
}

pub fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id,
        "username": a.username,
        "domain": a.domain,
        "sip_address": a.address(),
        "customer_id": a.customer_id,
        "first_name": a.first_name,
        "last_name": a.last_name,
        "email": a.email,
        "timezone": a.timezone,
        "mobile_number": a.mobile_number,
        "pstn_caller_id": a.pstn_caller_id,
        "no_answer_timeout": crate::service::effective_no_answer_timeout(a.no_answer_timeout),
        "quick_dial": a.quick_dial,
        "blocked": a.is_blocked(),
        "privacy": a.privacy != 0,
        "balance": money_to_string(a.balance),
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    })
}

/// The account if the caller may see it; writes also need a writing role.
async fn scoped(st: &AppState, op: &Operator, raw: &str, write: bool) -> ApiResult<Account> {
    let a = st.services.account_in_scope(op, id(raw)?).await?;
    if write && !op.can_write_accounts() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "your role may only read",
        ));
    }
    Ok(a)
}

async fn list_accounts(
    State(st): State<AppState>,
    Caller(op): Caller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let page: Page = query(q.as_deref())?;
    let (offset, limit) = page.bounds()?;
    let (rows, total) = st
        .services
        .list_accounts_scoped(&op, page.customer_id, offset, limit)
        .await?;
    Ok(paged(
        rows.iter().map(account_json).collect(),
        total,
        offset,
        limit,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountIn {
    username: String,
    domain: String,
    password: Option<String>,
    customer_id: Option<i64>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    timezone: Option<String>,
    mobile_number: Option<String>,
    pstn_caller_id: Option<String>,
}

async fn create_account(State(st): State<AppState>, Caller(op): Caller, body: Bytes) -> ApiResult {
    let JsonBody(b) = JsonBody::<AccountIn>::parse(&body)?;
    if !op.can_write_accounts() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "your role may only read",
        ));
    }
    let customer = match b.customer_id.or(op.customer_id) {
        Some(c) => c,
        None if op.is_admin() => crate::service::tenancy::DEFAULT_CUSTOMER,
        None => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "customer_id is required",
            ));
        }
    };
    st.services.get_customer(&op, customer).await?;
    // Without a password one is generated and shown once.
    let (password, generated) = match b.password {
        Some(p) => (p, false),
        None => (random_password(), true),
    };
    let a = st
        .services
        .add_account(
            NewAccount {
                username: b.username,
                domain: b.domain,
                first_name: b.first_name,
                last_name: b.last_name,
                email: b.email,
                timezone: b.timezone,
                mobile_number: b.mobile_number,
                pstn_caller_id: b.pstn_caller_id,
                customer_id: Some(customer),
            },
            &password,
        )
        .await?;
    let mut v = account_json(&a);
    if generated && let Some(o) = v.as_object_mut() {
        o.insert("password".into(), Value::String(password));
    }
    Ok(with_etag(StatusCode::CREATED, &v))
}

async fn get_account(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    Ok(with_etag(StatusCode::OK, &account_json(&a)))
}

fn opt_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountPatch {
    #[serde(default, deserialize_with = "opt_string")]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    mobile_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    pstn_caller_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    quick_dial: Option<Option<String>>,
    no_answer_timeout: Option<i64>,
    blocked: Option<bool>,
    privacy: Option<bool>,
}

async fn patch_account(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    check_if_match(&headers, &account_json(&a))?;
    let JsonBody(b) = JsonBody::<AccountPatch>::parse(&body)?;
    let s = &st.services;
    let mut a = s
        .update_account(
            &a,
            AccountUpdate {
                first_name: b.first_name,
                last_name: b.last_name,
                email: b.email,
                timezone: b.timezone,
                mobile_number: b.mobile_number,
                pstn_caller_id: b.pstn_caller_id,
                quick_dial: b.quick_dial,
                no_answer_timeout: b.no_answer_timeout,
            },
        )
        .await?;
    if let Some(blocked) = b.blocked {
        s.set_blocked(&a, blocked).await?;
    }
    if let Some(p) = b.privacy {
        s.set_privacy(&a, p).await?;
    }
    if b.blocked.is_some() || b.privacy.is_some() {
        a = s.account_in_scope(&op, a.id).await?;
    }
    Ok(with_etag(StatusCode::OK, &account_json(&a)))
}

async fn delete_account(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    st.services.remove_account(&a).await?;
    Ok(json_ok(StatusCode::OK, &json!({"deleted": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordIn {
    password: String,
}

async fn set_password(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<PasswordIn>::parse(&body)?;
    st.services.set_password(&a, &b.password).await?;
    Ok(json_ok(StatusCode::OK, &json!({"changed": true})))
}

async fn reset_password(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let pw = random_password();
    st.services.set_password(&a, &pw).await?;
    Ok(json_ok(StatusCode::OK, &json!({"password": pw})))
}

// ---- aliases and ENUM numbers ----

async fn list_aliases(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    Ok(json_ok(
        StatusCode::OK,
        &json!(st.services.aliases(&a).await?),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasIn {
    username: String,
}

async fn add_alias(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<AliasIn>::parse(&body)?;
    let name = st.services.add_alias(&a, Some(&b.username)).await?;
    Ok(json_ok(
        StatusCode::CREATED,
        &json!({"alias": format!("{name}@{}", a.domain)}),
    ))
}

async fn delete_alias(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path((aid, name)): Path<(String, String)>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    st.services.delete_alias(&a, Some(&name)).await?;
    Ok(json_ok(StatusCode::OK, &json!({"deleted": true})))
}

async fn list_enum(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    Ok(json_ok(
        StatusCode::OK,
        &json!(st.services.enum_numbers(&a).await?),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnumIn {
    number: String,
}

async fn add_enum(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<EnumIn>::parse(&body)?;
    st.services.add_enum_number(&a, &b.number).await?;
    Ok(json_ok(StatusCode::CREATED, &json!({"number": b.number})))
}

async fn delete_enum(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path((aid, number)): Path<(String, String)>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    st.services.remove_enum_number(&a, &number).await?;
    Ok(json_ok(StatusCode::OK, &json!({"deleted": true})))
}

// ---- voicemail ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoicemailIn {
    mailbox: String,
    password: String,
    name: Option<String>,
    email: Option<String>,
    info: Option<String>,
    #[serde(default)]
    delete_after_email: bool,
    account: String,
}

async fn get_voicemail(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    let vm =
        st.services.voicemail(&a).await?.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "the account has no voicemail box")
        })?;
    Ok(json_ok(
        StatusCode::OK,
        &json!({"mailbox": vm.mailbox, "password": vm.password, "name": vm.name, "email": vm.email,
                "info": vm.info, "delete_after_email": vm.delete, "account": vm.account}),
    ))
}

async fn put_voicemail(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<VoicemailIn>::parse(&body)?;
    st.services
        .set_voicemail(
            &a,
            NewVoicemail {
                mailbox: b.mailbox,
                password: b.password,
                name: b.name,
                email: b.email,
                info: b.info,
                delete_after_email: b.delete_after_email,
                vm_account: b.account,
            },
        )
        .await?;
    get_voicemail(State(st), Caller(op), Path(aid)).await
}

async fn delete_voicemail(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    st.services.remove_voicemail(&a).await?;
    Ok(json_ok(StatusCode::OK, &json!({"deleted": true})))
}

// ---- forwarding and rules ----

fn forwarding_json(st: &AppState, a: &Account) -> Value {
    let mut m = Map::new();
    for (f, v) in st.services.call_forwarding(a) {
        m.insert(f.key().into(), json!(v));
    }
    Value::Object(m)
}

async fn get_forwarding(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    Ok(with_etag(StatusCode::OK, &forwarding_json(&st, &a)))
}

async fn patch_forwarding(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    check_if_match(&headers, &forwarding_json(&st, &a))?;
    let JsonBody(b) = JsonBody::<Map<String, Value>>::parse(&body)?;
    let mut changes = Vec::new();
    for (k, v) in b {
        let f = Forwarding::ALL
            .into_iter()
            .find(|f| f.key() == k)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("unknown key {k}: use FUNC, FNOL, FBUS, FNOA, FUNV"),
                )
            })?;
        let value = match v {
            Value::Null => String::new(),
            Value::String(s) => s,
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{k} must be a string or null"),
                ));
            }
        };
        changes.push((f, value));
    }
    st.services.set_call_forwarding(&a, &changes).await?;
    let a = st.services.account_in_scope(&op, a.id).await?;
    Ok(with_etag(StatusCode::OK, &forwarding_json(&st, &a)))
}

async fn get_accept(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    let r = st.services.accept_rules(&a).await?;
    let mut persistent = Map::new();
    for p in r.persistent {
        persistent.insert(
            p.days.to_string(),
            json!({"start": p.start, "stop": p.stop, "groups": p.groups}),
        );
    }
    Ok(json_ok(
        StatusCode::OK,
        &json!({"persistent": persistent,
                "temporary": {"groups": r.temporary.groups, "duration": r.temporary.duration},
                "groups": r.groups}),
    ))
}

async fn put_accept(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<Value>::parse(&body)?;
    st.services.set_accept_rules(&a, &b).await?;
    get_accept(State(st), Caller(op), Path(aid)).await
}

async fn get_reject(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    Ok(json_ok(
        StatusCode::OK,
        &json!(st.services.reject_rules(&a).await?),
    ))
}

async fn put_reject(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<Value>::parse(&body)?;
    st.services.set_reject_rules(&a, &b).await?;
    get_reject(State(st), Caller(op), Path(aid)).await
}
