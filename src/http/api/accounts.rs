//! `/api/v1/accounts` and their settings: the same services as `settings.phtml`, in scope.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::model::{
    AcceptRulesOut, AccountCreated, AccountOut, AliasCreated, AttrsPatch, BadRequest, Changed,
    Conflict, DELETED, Deleted, EnumCreated, Forbidden, ForwardingOut, NotFound, Paged,
    PasswordOut, PreconditionFailed, StoredPasswordOut, TooManyRequests, Unauthorized, Unavailable,
    Unprocessable, VoicemailOut,
};
use super::tenancy::id;
use super::{
    ApiError, ApiResult, Caller, JsonBody, Page, check_if_match, json_ok, query, with_etag,
};
use crate::crypto::random_password;
use crate::domain::{Account, AccountFilter, AccountQuery, AccountSort, Forwarding, NewAccount};
use crate::http::AppState;
use crate::service::NewVoicemail;
use crate::service::tenancy::Operator;
use crate::store::AccountUpdate;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts", get(list_accounts).post(create_account))
        .route(
            "/api/v1/accounts/{id}",
            get(get_account).patch(patch_account).delete(delete_account),
        )
        .route(
            "/api/v1/accounts/{id}/password",
            get(get_password).put(set_password),
        )
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

/// The SIP accounts in the caller's scope, a page at a time.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    params(Page),
    responses(
        (status = 200, description = "A page of accounts.", body = Paged<AccountOut>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn list_accounts(
    State(st): State<AppState>,
    Caller(op): Caller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let page: Page = query(q.as_deref())?;
    let (offset, limit) = page.bounds()?;
    let mut filters = Vec::new();
    if let Some(c) = page.customer_id {
        st.services.get_customer(&op, c).await?;
        filters.push(AccountFilter::Customers(vec![c]));
    }
    let (total, rows) = st
        .services
        .search_accounts(
            &op,
            &AccountQuery {
                filters,
                sort: vec![(AccountSort::Domain, false), (AccountSort::Username, false)],
                offset,
                limit,
            },
        )
        .await?;
    Ok(json_ok(
        StatusCode::OK,
        &Paged {
            items: rows.iter().map(AccountOut::from).collect(),
            total,
            offset,
            limit,
        },
    ))
}

/// A new SIP account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountIn {
    /// The user part of the SIP address (stored in lower case).
    #[schema(pattern = r"^[A-Za-z0-9._+~*!-]{1,64}$")]
    username: String,
    /// A domain this server serves.
    domain: String,
    /// Without one a password is generated and shown once in the answer.
    password: Option<String>,
    /// The owning customer (default: the caller's, or the default customer for ADMIN).
    #[serde(default, deserialize_with = "super::int::opt")]
    customer_id: Option<i64>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    /// An IANA time zone name, e.g. `Europe/Amsterdam`.
    timezone: Option<String>,
    mobile_number: Option<String>,
    pstn_caller_id: Option<String>,
}

/// Create a SIP account.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts",
    request_body = AccountIn,
    responses(
        (status = 201, description = "Created.", body = AccountCreated,
            headers(("ETag" = String, description = "The version of the representation."))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn create_account(
    State(st): State<AppState>,
    Caller(op): Caller,
    body: Bytes,
) -> ApiResult {
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
    with_etag(
        StatusCode::CREATED,
        &AccountCreated {
            account: AccountOut::from(&st.services.account_view(a).await?),
            password: generated.then_some(password),
        },
    )
}

/// One SIP account.
#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account.", body = AccountOut,
            headers(("ETag" = String, description = "The version, for `If-Match`."))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_account(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    with_etag(
        StatusCode::OK,
        &AccountOut::from(&st.services.account_view(a).await?),
    )
}

fn opt_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

/// Changes to an account; absent keys keep their value, `null` clears a text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountPatch {
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    mobile_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    pstn_caller_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    quick_dial: Option<Option<String>>,
    /// Seconds.
    #[serde(default, deserialize_with = "super::int::opt")]
    no_answer_timeout: Option<i64>,
    blocked: Option<bool>,
    privacy: Option<bool>,
    /// Operator attributes to change (any subset).
    #[schema(inline)]
    attributes: Option<AttrsPatch>,
}

/// Change a SIP account.
#[utoipa::path(patch, path = "/api/v1/accounts/{id}", tag = "accounts",
    params(
        ("id" = i64, Path, description = "Account id"),
        ("If-Match" = Option<String>, Header, description = "Only if the account is still at this version (`ETag`)."),
    ),
    request_body = AccountPatch,
    responses(
        (status = 200, description = "The changed account.", body = AccountOut,
            headers(("ETag" = String, description = "The new version."))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn patch_account(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let s = &st.services;
    check_if_match(
        &headers,
        &AccountOut::from(&s.account_view(a.clone()).await?),
    )?;
    let JsonBody(b) = JsonBody::<AccountPatch>::parse(&body)?;
    let v = s
        .patch_account(
            &op,
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
                blocked: b.blocked,
                privacy: b.privacy,
            },
            b.attributes.map(|p| p.0).unwrap_or_default(),
        )
        .await?;
    with_etag(StatusCode::OK, &AccountOut::from(&v))
}

/// Delete a SIP account and everything it has.
#[utoipa::path(delete, path = "/api/v1/accounts/{id}", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn delete_account(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    st.services.remove_account(&a).await?;
    Ok(json_ok(StatusCode::OK, &DELETED))
}

/// A new SIP password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountPasswordIn {
    password: String,
}

/// A SIP account's password in clear, for roles that may change the account. `null` when it
/// is not recoverable (set before passwords were kept sealed; any change makes it recoverable).
#[utoipa::path(get, path = "/api/v1/accounts/{id}/password", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The password.", body = StoredPasswordOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_password(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let v = st.services.account_view(a).await?;
    Ok(json_ok(
        StatusCode::OK,
        &StoredPasswordOut {
            password: st.services.sip_password(&op, &v),
        },
    ))
}

/// Set a SIP account's password.
#[utoipa::path(put, path = "/api/v1/accounts/{id}/password", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body = AccountPasswordIn,
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
pub(super) async fn set_password(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<AccountPasswordIn>::parse(&body)?;
    st.services.set_password(&a, &b.password).await?;
    Ok(json_ok(StatusCode::OK, &Changed { changed: true }))
}

/// Give a SIP account a new random password, shown once.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/password/reset", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The new password.", body = PasswordOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn reset_password(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let pw = random_password();
    st.services.set_password(&a, &pw).await?;
    Ok(json_ok(StatusCode::OK, &PasswordOut { password: pw }))
}

// ---- aliases and ENUM numbers ----

/// A SIP account's aliases, `user@domain`.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/aliases", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The aliases.", body = Vec<String>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn list_aliases(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    Ok(json_ok(StatusCode::OK, &st.services.aliases(&a).await?))
}

/// A new alias in the account's own domain.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AliasIn {
    /// The user part (stored in lower case).
    #[schema(pattern = r"^[A-Za-z0-9._+~*!-]{1,64}$")]
    username: String,
}

/// Add an alias.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/aliases", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body = AliasIn,
    responses(
        (status = 201, description = "Added.", body = AliasCreated),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn add_alias(
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
        &AliasCreated {
            alias: format!("{name}@{}", a.domain),
        },
    ))
}

/// Remove an alias.
#[utoipa::path(delete, path = "/api/v1/accounts/{id}/aliases/{name}", tag = "accounts",
    params(
        ("id" = i64, Path, description = "Account id"),
        ("name" = String, Path, description = "The alias, its user part or `user@domain`"),
    ),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn delete_alias(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path((aid, name)): Path<(String, String)>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    st.services.delete_alias(&a, Some(&name)).await?;
    Ok(json_ok(StatusCode::OK, &DELETED))
}

/// A SIP account's ENUM numbers.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/enum_numbers", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The numbers.", body = Vec<String>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn list_enum(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    Ok(json_ok(
        StatusCode::OK,
        &st.services.enum_numbers(&a).await?,
    ))
}

/// A new ENUM number.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EnumIn {
    /// E.164, e.g. `+31201234567`.
    #[schema(pattern = r"^\+[0-9]{7,15}$")]
    number: String,
}

/// Add an ENUM number.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/enum_numbers", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body = EnumIn,
    responses(
        (status = 201, description = "Added.", body = EnumCreated),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn add_enum(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<EnumIn>::parse(&body)?;
    st.services.add_enum_number(&a, &b.number).await?;
    Ok(json_ok(
        StatusCode::CREATED,
        &EnumCreated { number: b.number },
    ))
}

/// Remove an ENUM number.
#[utoipa::path(delete, path = "/api/v1/accounts/{id}/enum_numbers/{number}", tag = "accounts",
    params(
        ("id" = i64, Path, description = "Account id"),
        ("number" = String, Path, description = "The number"),
    ),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn delete_enum(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path((aid, number)): Path<(String, String)>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    st.services.remove_enum_number(&a, &number).await?;
    Ok(json_ok(StatusCode::OK, &DELETED))
}

// ---- voicemail ----

/// A voicemail box.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VoicemailIn {
    mailbox: String,
    password: String,
    name: Option<String>,
    email: Option<String>,
    info: Option<String>,
    /// Default false.
    #[serde(default)]
    delete_after_email: bool,
    /// The voicemail server account, `user@domain`.
    account: String,
}

/// A SIP account's voicemail box.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/voicemail", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The box.", body = VoicemailOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_voicemail(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    voicemail_of(&st, &a).await
}

async fn voicemail_of(st: &AppState, a: &Account) -> ApiResult {
    let vm =
        st.services.voicemail(a).await?.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "the account has no voicemail box")
        })?;
    Ok(json_ok(StatusCode::OK, &VoicemailOut::from(vm)))
}

/// Create or replace a SIP account's voicemail box.
#[utoipa::path(put, path = "/api/v1/accounts/{id}/voicemail", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body = VoicemailIn,
    responses(
        (status = 200, description = "The box.", body = VoicemailOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn put_voicemail(
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
    voicemail_of(&st, &a).await
}

/// Remove a SIP account's voicemail box.
#[utoipa::path(delete, path = "/api/v1/accounts/{id}/voicemail", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn delete_voicemail(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    st.services.remove_voicemail(&a).await?;
    Ok(json_ok(StatusCode::OK, &DELETED))
}

// ---- forwarding and rules ----

fn forwarding_of(st: &AppState, a: &Account) -> ForwardingOut {
    let mut out = ForwardingOut::default();
    for (f, v) in st.services.call_forwarding(a) {
        let slot = match f {
            Forwarding::Func => &mut out.func,
            Forwarding::Fnol => &mut out.fnol,
            Forwarding::Fbus => &mut out.fbus,
            Forwarding::Fnoa => &mut out.fnoa,
            Forwarding::Funv => &mut out.funv,
        };
        *slot = v;
    }
    out
}

/// A SIP account's call forwarding.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/call_forwarding", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The targets.", body = ForwardingOut,
            headers(("ETag" = String, description = "The version, for `If-Match`."))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_forwarding(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    with_etag(StatusCode::OK, &forwarding_of(&st, &a))
}

/// Changes to call forwarding: a target (`user`, `user@domain`, `<voice-mailbox>`,
/// `<mobile-number>`), or `null` or `""` for none; absent keys keep their value.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // The body is read key by key; this type documents it.
pub(super) struct ForwardingPatch {
    #[serde(rename = "FUNC")]
    func: Option<String>,
    #[serde(rename = "FNOL")]
    fnol: Option<String>,
    #[serde(rename = "FBUS")]
    fbus: Option<String>,
    #[serde(rename = "FNOA")]
    fnoa: Option<String>,
    #[serde(rename = "FUNV")]
    funv: Option<String>,
}

/// Change a SIP account's call forwarding.
#[utoipa::path(patch, path = "/api/v1/accounts/{id}/call_forwarding", tag = "accounts",
    params(
        ("id" = i64, Path, description = "Account id"),
        ("If-Match" = Option<String>, Header, description = "Only if forwarding is still at this version (`ETag`)."),
    ),
    request_body = ForwardingPatch,
    responses(
        (status = 200, description = "The targets.", body = ForwardingOut,
            headers(("ETag" = String, description = "The new version."))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn patch_forwarding(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    check_if_match(&headers, &forwarding_of(&st, &a))?;
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
    with_etag(StatusCode::OK, &forwarding_of(&st, &a))
}

/// A SIP account's accept rules.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/accept_rules", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The rules.", body = AcceptRulesOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_accept(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    accept_of(&st, &a).await
}

async fn accept_of(st: &AppState, a: &Account) -> ApiResult {
    let r = st.services.accept_rules(a).await?;
    Ok(json_ok(StatusCode::OK, &AcceptRulesOut::from(r)))
}

/// A persistent accept rule.
#[derive(ToSchema)]
#[allow(dead_code)] // Documents a body the service parses.
pub(super) struct PersistentRuleIn {
    /// `HH:MM`, before `stop`.
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    start: String,
    /// `HH:MM`
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    stop: String,
    /// 1 to 20 groups.
    groups: Vec<String>,
}

/// The temporary accept rule (do-not-disturb).
#[derive(ToSchema)]
#[allow(dead_code)] // Documents a body the service parses.
pub(super) struct TemporaryIn {
    /// 1 to 20 groups, e.g. `["nobody"]`.
    groups: Vec<String>,
    /// Minutes, 0 for indefinite.
    duration: Option<i64>,
}

/// Accept rules, as `GET` shows them; what is absent is cleared.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documents a body the service parses.
pub(super) struct AcceptRulesIn {
    /// Keyed by day mask: 1 (Mon) … 64 (Sun) added up, 1 to 127.
    persistent: Option<std::collections::HashMap<String, PersistentRuleIn>>,
    temporary: Option<TemporaryIn>,
    /// Ignored (what `GET` shows).
    groups: Option<Vec<String>>,
}

/// Replace a SIP account's accept rules.
#[utoipa::path(put, path = "/api/v1/accounts/{id}/accept_rules", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body = AcceptRulesIn,
    responses(
        (status = 200, description = "The rules.", body = AcceptRulesOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn put_accept(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<Value>::parse(&body)?;
    st.services.set_accept_rules(&a, &b).await?;
    accept_of(&st, &a).await
}

/// A SIP account's reject rules: SIP URIs (`%` and `_` match any characters).
#[utoipa::path(get, path = "/api/v1/accounts/{id}/reject_rules", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The rules.", body = Vec<String>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn get_reject(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, false).await?;
    Ok(json_ok(
        StatusCode::OK,
        &st.services.reject_rules(&a).await?,
    ))
}

/// Replace a SIP account's reject rules.
#[utoipa::path(put, path = "/api/v1/accounts/{id}/reject_rules", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body(content = Vec<String>, description = "SIP URIs, e.g. `sip:spam@example.com`."),
    responses(
        (status = 200, description = "The rules.", body = Vec<String>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn put_reject(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(aid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let a = scoped(&st, &op, &aid, true).await?;
    let JsonBody(b) = JsonBody::<Value>::parse(&body)?;
    st.services.set_reject_rules(&a, &b).await?;
    Ok(json_ok(
        StatusCode::OK,
        &st.services.reject_rules(&a).await?,
    ))
}
