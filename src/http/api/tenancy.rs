//! `/api/v1` resellers, customers, operators, tokens and domains.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, Caller, JsonBody, json_ok};
use crate::domain::{ApiToken, Customer, Domain, OperatorRow, Reseller, Role};
use crate::http::AppState;
use crate::service::tenancy::NewOperator;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route(
            "/api/v1/resellers",
            get(list_resellers).post(create_reseller),
        )
        .route(
            "/api/v1/resellers/{id}",
            get(get_reseller)
                .patch(patch_reseller)
                .delete(delete_reseller),
        )
        .route(
            "/api/v1/customers",
            get(list_customers).post(create_customer),
        )
        .route(
            "/api/v1/customers/{id}",
            get(get_customer)
                .patch(patch_customer)
                .delete(delete_customer),
        )
        .route(
            "/api/v1/operators",
            get(list_operators).post(create_operator),
        )
        .route(
            "/api/v1/operators/{id}",
            get(get_operator).delete(delete_operator),
        )
        .route(
            "/api/v1/operators/{id}/password",
            axum::routing::put(set_operator_password),
        )
        .route(
            "/api/v1/operators/{id}/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/domains", get(list_domains).post(create_domain))
        .route("/api/v1/domains/{name}", delete(delete_domain))
}

/// Ids in paths: a bad one is a 404 problem, like any id we do not know.
pub fn id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not found"))
}

fn forbid_unless(ok: bool) -> ApiResult<()> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "your role does not allow this",
        ))
    }
}

pub fn reseller_json(r: &Reseller) -> Value {
    json!({"id": r.id, "name": r.name, "parent_id": r.parent_id, "created_at": r.created_at, "updated_at": r.updated_at})
}

pub fn customer_json(c: &Customer) -> Value {
    json!({"id": c.id, "name": c.name, "reseller_id": c.reseller_id,
           "sip_account_limit": c.sip_account_limit, "created_at": c.created_at, "updated_at": c.updated_at})
}

fn operator_json(o: &OperatorRow) -> Value {
    json!({"id": o.id, "name": o.name, "role": o.role, "customer_id": o.customer_id,
           "reseller_id": o.reseller_id, "created_at": o.created_at})
}

fn token_json(t: &ApiToken) -> Value {
    json!({"id": t.id, "operator_id": t.operator_id, "name": t.name, "expires_at": t.expires_at,
           "revoked_at": t.revoked_at, "created_at": t.created_at})
}

fn domain_json(d: &Domain) -> Value {
    json!({"id": d.id, "name": d.name, "created_at": d.created_at})
}

fn list(items: Vec<Value>) -> Response {
    let total = items.len();
    json_ok(
        StatusCode::OK,
        &json!({"items": items, "total": total, "offset": 0, "limit": total}),
    )
}

async fn me(Caller(op): Caller) -> Response {
    json_ok(
        StatusCode::OK,
        &json!({"id": op.id, "name": op.name, "role": op.role.as_str(),
                "customer_id": op.customer_id, "reseller_id": op.reseller_id}),
    )
}

// ---- resellers ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResellerIn {
    name: String,
    parent_id: Option<i64>,
}

async fn list_resellers(State(st): State<AppState>, Caller(op): Caller) -> ApiResult {
    let rs = st.services.list_resellers(&op).await?;
    Ok(list(rs.iter().map(reseller_json).collect()))
}

async fn create_reseller(State(st): State<AppState>, Caller(op): Caller, body: Bytes) -> ApiResult {
    let JsonBody(b) = JsonBody::<ResellerIn>::parse(&body)?;
    let r = st
        .services
        .create_reseller(&op, &b.name, b.parent_id)
        .await?;
    Ok(json_ok(StatusCode::CREATED, &reseller_json(&r)))
}

async fn get_reseller(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(rid): Path<String>,
) -> ApiResult {
    let r = st.services.get_reseller(&op, id(&rid)?).await?;
    Ok(json_ok(StatusCode::OK, &reseller_json(&r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResellerPatch {
    name: String,
}

async fn patch_reseller(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(rid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let JsonBody(b) = JsonBody::<ResellerPatch>::parse(&body)?;
    let r = st.services.rename_reseller(&op, id(&rid)?, &b.name).await?;
    Ok(json_ok(StatusCode::OK, &reseller_json(&r)))
}

async fn delete_reseller(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(rid): Path<String>,
) -> ApiResult {
    st.services.delete_reseller(&op, id(&rid)?).await?;
    Ok(json_ok(StatusCode::OK, &json!({"deleted": true})))
}

// ---- customers ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerIn {
    name: String,
    reseller_id: Option<i64>,
    sip_account_limit: Option<i64>,
}

async fn list_customers(State(st): State<AppState>, Caller(op): Caller) -> ApiResult {
    let cs = st.services.list_customers(&op).await?;
    Ok(list(cs.iter().map(customer_json).collect()))
}

async fn create_customer(State(st): State<AppState>, Caller(op): Caller, body: Bytes) -> ApiResult {
    let JsonBody(b) = JsonBody::<CustomerIn>::parse(&body)?;
    let c = st
        .services
        .create_customer(&op, &b.name, b.reseller_id, b.sip_account_limit)
        .await?;
    Ok(json_ok(StatusCode::CREATED, &customer_json(&c)))
}

async fn get_customer(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(cid): Path<String>,
) -> ApiResult {
    let c = st.services.get_customer(&op, id(&cid)?).await?;
    Ok(json_ok(StatusCode::OK, &customer_json(&c)))
}

/// `null` clears the limit; absent keeps it.
fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Ok(Some(Option::<i64>::deserialize(d)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    sip_account_limit: Option<Option<i64>>,
}

async fn patch_customer(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(cid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let JsonBody(b) = JsonBody::<CustomerPatch>::parse(&body)?;
    let c = st
        .services
        .update_customer(&op, id(&cid)?, b.name.as_deref(), b.sip_account_limit)
        .await?;
    Ok(json_ok(StatusCode::OK, &customer_json(&c)))
}

async fn delete_customer(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(cid): Path<String>,
) -> ApiResult {
    st.services.delete_customer(&op, id(&cid)?).await?;
    Ok(json_ok(StatusCode::OK, &json!({"deleted": true})))
}

// ---- operators and tokens ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorIn {
    name: String,
    role: String,
    customer_id: Option<i64>,
    reseller_id: Option<i64>,
    password: Option<String>,
}

async fn list_operators(State(st): State<AppState>, Caller(op): Caller) -> ApiResult {
    let os = st.services.list_operators(&op).await?;
    Ok(list(os.iter().map(operator_json).collect()))
}

async fn create_operator(State(st): State<AppState>, Caller(op): Caller, body: Bytes) -> ApiResult {
    let JsonBody(b) = JsonBody::<OperatorIn>::parse(&body)?;
    let role = Role::parse(&b.role).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "role must be ADMIN, RESELLER, OWNER, MANAGER or VIEWER",
        )
    })?;
    let o = st
        .services
        .create_operator(
            &op,
            NewOperator {
                name: b.name,
                role,
                customer_id: b.customer_id,
                reseller_id: b.reseller_id,
                password: b.password,
            },
        )
        .await?;
    Ok(json_ok(StatusCode::CREATED, &operator_json(&o)))
}

async fn get_operator(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
) -> ApiResult {
    let o = st.services.get_operator(&op, id(&oid)?).await?;
    Ok(json_ok(StatusCode::OK, &operator_json(&o)))
}

async fn delete_operator(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
) -> ApiResult {
    st.services.delete_operator(&op, id(&oid)?).await?;
    Ok(json_ok(StatusCode::OK, &json!({"deleted": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordIn {
    password: String,
}

async fn set_operator_password(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let JsonBody(b) = JsonBody::<PasswordIn>::parse(&body)?;
    st.services
        .set_operator_password(&op, id(&oid)?, &b.password)
        .await?;
    Ok(json_ok(StatusCode::OK, &json!({"changed": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenIn {
    name: Option<String>,
    expires_days: Option<i64>,
}

async fn create_token(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b = if body.is_empty() {
        TokenIn {
            name: None,
            expires_days: None,
        }
    } else {
        JsonBody::<TokenIn>::parse(&body)?.0
    };
    let (t, secret) = st
        .services
        .create_token(
            &op,
            id(&oid)?,
            b.name.as_deref().unwrap_or("api"),
            b.expires_days,
        )
        .await?;
    let mut v = token_json(&t);
    if let Some(o) = v.as_object_mut() {
        // Shown once; only its hash is stored.
        o.insert("token".into(), Value::String(secret));
    }
    Ok(json_ok(StatusCode::CREATED, &v))
}

async fn list_tokens(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
) -> ApiResult {
    let ts = st.services.list_tokens(&op, id(&oid)?).await?;
    Ok(list(ts.iter().map(token_json).collect()))
}

async fn revoke_token(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(tid): Path<String>,
) -> ApiResult {
    st.services.revoke_token(&op, id(&tid)?).await?;
    Ok(json_ok(StatusCode::OK, &json!({"revoked": true})))
}

// ---- domains ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainIn {
    name: String,
}

async fn list_domains(State(st): State<AppState>, Caller(_op): Caller) -> ApiResult {
    let ds = st.services.list_domains().await?;
    Ok(list(ds.iter().map(domain_json).collect()))
}

async fn create_domain(State(st): State<AppState>, Caller(op): Caller, body: Bytes) -> ApiResult {
    forbid_unless(op.is_admin())?;
    let JsonBody(b) = JsonBody::<DomainIn>::parse(&body)?;
    let d = st.services.add_domain(&b.name).await?;
    Ok(json_ok(StatusCode::CREATED, &domain_json(&d)))
}

async fn delete_domain(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(name): Path<String>,
) -> ApiResult {
    forbid_unless(op.is_admin())?;
    st.services.remove_domain(&name).await?;
    Ok(json_ok(StatusCode::OK, &json!({"deleted": true})))
}
