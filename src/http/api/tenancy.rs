//! `/api/v1` resellers, customers, operators, tokens and domains.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;
use utoipa::ToSchema;

use super::model::{
    BadRequest, Changed, Conflict, CustomerOut, DELETED, Deleted, DomainOut, Forbidden, MeOut,
    NotFound, OperatorOut, Paged, ResellerOut, Revoked, TokenCreated, TokenOut, TooManyRequests,
    Unauthorized, Unavailable, Unprocessable,
};
use super::{ApiError, ApiResult, Caller, JsonBody, json_ok};
use crate::domain::Role;
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

/// A whole list as one page.
fn list<'a, T, S: 'a>(rows: &'a [S]) -> ApiResult
where
    T: ToSchema + serde::Serialize + From<&'a S>,
{
    Ok(json_ok(
        StatusCode::OK,
        &Paged::<T>::all(rows.iter().map(T::from).collect()),
    ))
}

/// The authenticated operator.
#[utoipa::path(get, path = "/api/v1/me", tag = "operators",
    responses(
        (status = 200, description = "The caller.", body = MeOut),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn me(Caller(op): Caller) -> ApiResult {
    Ok(json_ok(StatusCode::OK, &MeOut::from(&op)))
}

// ---- resellers ----

/// A new reseller.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResellerIn {
    name: String,
    /// The parent reseller (default: none, a top-level reseller; a RESELLER's own by default).
    #[serde(default, deserialize_with = "super::int::opt")]
    parent_id: Option<i64>,
}

/// The resellers in the caller's scope.
#[utoipa::path(get, path = "/api/v1/resellers", tag = "resellers",
    responses(
        (status = 200, description = "All resellers in scope.", body = Paged<ResellerOut>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn list_resellers(State(st): State<AppState>, Caller(op): Caller) -> ApiResult {
    let rs = st.services.list_resellers(&op).await?;
    list::<ResellerOut, _>(&rs)
}

/// Create a reseller.
#[utoipa::path(post, path = "/api/v1/resellers", tag = "resellers",
    request_body = ResellerIn,
    responses(
        (status = 201, description = "Created.", body = ResellerOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn create_reseller(
    State(st): State<AppState>,
    Caller(op): Caller,
    body: Bytes,
) -> ApiResult {
    let JsonBody(b) = JsonBody::<ResellerIn>::parse(&body)?;
    let r = st
        .services
        .create_reseller(&op, &b.name, b.parent_id)
        .await?;
    Ok(json_ok(StatusCode::CREATED, &ResellerOut::from(&r)))
}

/// One reseller.
#[utoipa::path(get, path = "/api/v1/resellers/{id}", tag = "resellers",
    params(("id" = i64, Path, description = "Reseller id")),
    responses(
        (status = 200, description = "The reseller.", body = ResellerOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_reseller(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(rid): Path<String>,
) -> ApiResult {
    let r = st.services.get_reseller(&op, id(&rid)?).await?;
    Ok(json_ok(StatusCode::OK, &ResellerOut::from(&r)))
}

/// A reseller's new name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResellerPatch {
    name: String,
}

/// Rename a reseller.
#[utoipa::path(patch, path = "/api/v1/resellers/{id}", tag = "resellers",
    params(("id" = i64, Path, description = "Reseller id")),
    request_body = ResellerPatch,
    responses(
        (status = 200, description = "Renamed.", body = ResellerOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn patch_reseller(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(rid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let JsonBody(b) = JsonBody::<ResellerPatch>::parse(&body)?;
    let r = st.services.rename_reseller(&op, id(&rid)?, &b.name).await?;
    Ok(json_ok(StatusCode::OK, &ResellerOut::from(&r)))
}

/// Delete a reseller without customers or sub-resellers.
#[utoipa::path(delete, path = "/api/v1/resellers/{id}", tag = "resellers",
    params(("id" = i64, Path, description = "Reseller id")),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn delete_reseller(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(rid): Path<String>,
) -> ApiResult {
    st.services.delete_reseller(&op, id(&rid)?).await?;
    Ok(json_ok(StatusCode::OK, &DELETED))
}

// ---- customers ----

/// A new customer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomerIn {
    name: String,
    /// The owning reseller (a RESELLER's own by default).
    #[serde(default, deserialize_with = "super::int::opt")]
    reseller_id: Option<i64>,
    /// Most SIP accounts the customer may have (default: no limit).
    #[serde(default, deserialize_with = "super::int::opt")]
    sip_account_limit: Option<i64>,
}

/// The customers in the caller's scope.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers",
    responses(
        (status = 200, description = "All customers in scope.", body = Paged<CustomerOut>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn list_customers(State(st): State<AppState>, Caller(op): Caller) -> ApiResult {
    let cs = st.services.list_customers(&op).await?;
    list::<CustomerOut, _>(&cs)
}

/// Create a customer.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers",
    request_body = CustomerIn,
    responses(
        (status = 201, description = "Created.", body = CustomerOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn create_customer(
    State(st): State<AppState>,
    Caller(op): Caller,
    body: Bytes,
) -> ApiResult {
    let JsonBody(b) = JsonBody::<CustomerIn>::parse(&body)?;
    let c = st
        .services
        .create_customer(&op, &b.name, b.reseller_id, b.sip_account_limit)
        .await?;
    Ok(json_ok(StatusCode::CREATED, &CustomerOut::from(&c)))
}

/// One customer.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers",
    params(("id" = i64, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The customer.", body = CustomerOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_customer(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(cid): Path<String>,
) -> ApiResult {
    let c = st.services.get_customer(&op, id(&cid)?).await?;
    Ok(json_ok(StatusCode::OK, &CustomerOut::from(&c)))
}

/// Changes to a customer; absent keys keep their value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomerPatch {
    name: Option<String>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "super::int::double_opt")]
    #[schema(value_type = Option<i64>)]
    sip_account_limit: Option<Option<i64>>,
}

/// Rename a customer or change its account limit.
#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "customers",
    params(("id" = i64, Path, description = "Customer id")),
    request_body = CustomerPatch,
    responses(
        (status = 200, description = "Changed.", body = CustomerOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn patch_customer(
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
    Ok(json_ok(StatusCode::OK, &CustomerOut::from(&c)))
}

/// Delete a customer without accounts or operators.
#[utoipa::path(delete, path = "/api/v1/customers/{id}", tag = "customers",
    params(("id" = i64, Path, description = "Customer id")),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn delete_customer(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(cid): Path<String>,
) -> ApiResult {
    st.services.delete_customer(&op, id(&cid)?).await?;
    Ok(json_ok(StatusCode::OK, &DELETED))
}

// ---- operators and tokens ----

/// A new operator.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OperatorIn {
    name: String,
    /// ADMIN, RESELLER, OWNER, MANAGER or VIEWER (any case).
    #[schema(value_type = Role)]
    role: String,
    /// Required for OWNER, MANAGER and VIEWER.
    #[serde(default, deserialize_with = "super::int::opt")]
    customer_id: Option<i64>,
    /// Required for RESELLER.
    #[serde(default, deserialize_with = "super::int::opt")]
    reseller_id: Option<i64>,
    /// Without one the operator can only use tokens.
    password: Option<String>,
}

/// The operators in the caller's scope.
#[utoipa::path(get, path = "/api/v1/operators", tag = "operators",
    responses(
        (status = 200, description = "All operators in scope.", body = Paged<OperatorOut>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn list_operators(State(st): State<AppState>, Caller(op): Caller) -> ApiResult {
    let os = st.services.list_operators(&op).await?;
    list::<OperatorOut, _>(&os)
}

/// Create an operator.
#[utoipa::path(post, path = "/api/v1/operators", tag = "operators",
    request_body = OperatorIn,
    responses(
        (status = 201, description = "Created.", body = OperatorOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn create_operator(
    State(st): State<AppState>,
    Caller(op): Caller,
    body: Bytes,
) -> ApiResult {
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
    Ok(json_ok(StatusCode::CREATED, &OperatorOut::from(&o)))
}

/// One operator.
#[utoipa::path(get, path = "/api/v1/operators/{id}", tag = "operators",
    params(("id" = i64, Path, description = "Operator id")),
    responses(
        (status = 200, description = "The operator.", body = OperatorOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_operator(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
) -> ApiResult {
    let o = st.services.get_operator(&op, id(&oid)?).await?;
    Ok(json_ok(StatusCode::OK, &OperatorOut::from(&o)))
}

/// Delete an operator (not yourself).
#[utoipa::path(delete, path = "/api/v1/operators/{id}", tag = "operators",
    params(("id" = i64, Path, description = "Operator id")),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn delete_operator(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
) -> ApiResult {
    st.services.delete_operator(&op, id(&oid)?).await?;
    Ok(json_ok(StatusCode::OK, &DELETED))
}

/// A new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OperatorPasswordIn {
    /// 1 to 1024 bytes.
    password: String,
}

/// Set an operator's password.
#[utoipa::path(put, path = "/api/v1/operators/{id}/password", tag = "operators",
    params(("id" = i64, Path, description = "Operator id")),
    request_body = OperatorPasswordIn,
    responses(
        (status = 200, description = "Changed.", body = Changed),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn set_operator_password(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let JsonBody(b) = JsonBody::<OperatorPasswordIn>::parse(&body)?;
    st.services
        .set_operator_password(&op, id(&oid)?, &b.password)
        .await?;
    Ok(json_ok(StatusCode::OK, &Changed { changed: true }))
}

/// A new API token; an empty body takes the defaults.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenIn {
    /// Default `api`.
    name: Option<String>,
    /// 1 to 3650 days (default: never expires).
    #[serde(default, deserialize_with = "super::int::opt")]
    expires_days: Option<i64>,
}

/// Create an API token for an operator; its secret is shown only in this answer.
#[utoipa::path(post, path = "/api/v1/operators/{id}/tokens", tag = "operators",
    params(("id" = i64, Path, description = "Operator id")),
    request_body(content = Option<TokenIn>, description = "Optional: no body, or `null`, takes the defaults."),
    responses(
        (status = 201, description = "Created.", body = TokenCreated),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn create_token(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
    body: Bytes,
) -> ApiResult {
    // No body, or `null`: the defaults.
    let b = if body.is_empty() {
        None
    } else {
        JsonBody::<Option<TokenIn>>::parse(&body)?.0
    }
    .unwrap_or(TokenIn {
        name: None,
        expires_days: None,
    });
    let (t, secret) = st
        .services
        .create_token(
            &op,
            id(&oid)?,
            b.name.as_deref().unwrap_or("api"),
            b.expires_days,
        )
        .await?;
    Ok(json_ok(
        StatusCode::CREATED,
        &TokenCreated {
            token_info: TokenOut::from(&t),
            // Shown once; only its hash is stored.
            token: secret,
        },
    ))
}

/// An operator's API tokens (without their secrets).
#[utoipa::path(get, path = "/api/v1/operators/{id}/tokens", tag = "operators",
    params(("id" = i64, Path, description = "Operator id")),
    responses(
        (status = 200, description = "The operator's tokens.", body = Paged<TokenOut>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn list_tokens(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(oid): Path<String>,
) -> ApiResult {
    let ts = st.services.list_tokens(&op, id(&oid)?).await?;
    list::<TokenOut, _>(&ts)
}

/// Revoke an API token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "operators",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked.", body = Revoked),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn revoke_token(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(tid): Path<String>,
) -> ApiResult {
    st.services.revoke_token(&op, id(&tid)?).await?;
    Ok(json_ok(StatusCode::OK, &Revoked { revoked: true }))
}

// ---- domains ----

/// A new SIP domain.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DomainIn {
    /// A DNS name, e.g. `example.com` (stored in lower case).
    #[schema(
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
        max_length = 253
    )]
    name: String,
}

/// The SIP domains served.
#[utoipa::path(get, path = "/api/v1/domains", tag = "domains",
    responses(
        (status = 200, description = "All domains.", body = Paged<DomainOut>),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn list_domains(State(st): State<AppState>, Caller(_op): Caller) -> ApiResult {
    let ds = st.services.list_domains().await?;
    list::<DomainOut, _>(&ds)
}

/// Add a SIP domain (ADMIN).
#[utoipa::path(post, path = "/api/v1/domains", tag = "domains",
    request_body = DomainIn,
    responses(
        (status = 201, description = "Created.", body = DomainOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn create_domain(
    State(st): State<AppState>,
    Caller(op): Caller,
    body: Bytes,
) -> ApiResult {
    forbid_unless(op.is_admin())?;
    let JsonBody(b) = JsonBody::<DomainIn>::parse(&body)?;
    let d = st.services.add_domain(&b.name).await?;
    Ok(json_ok(StatusCode::CREATED, &DomainOut::from(&d)))
}

/// Remove a SIP domain without accounts (ADMIN).
#[utoipa::path(delete, path = "/api/v1/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "Domain name")),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn delete_domain(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(name): Path<String>,
) -> ApiResult {
    forbid_unless(op.is_admin())?;
    st.services.remove_domain(&name).await?;
    Ok(json_ok(StatusCode::OK, &DELETED))
}
