//! The telecomx-compatible SIP account listing, `GET /sip` (operator-api §4, the vendor's
//! "API : SIP Account List" page). A thin view over the operator core: the query string is read
//! into an [`AccountQuery`], scope and rules are the services', and the answer is rendered in
//! the vendor's shapes, errors included (`{"error": code, "message": text}`).
//!
//! Choices the vendor's page leaves open (documented in the README):
//! - Accounts are listed by user name, then by internal id (stable across pages).
//! - Properties without a value are left out (never `null`): attributes that are not set,
//!   `name` and `defaultNumber` when there is nothing to fall back to, `userAgent` and
//!   `contact` when there is no live registration, `password` when the caller may not see it
//!   or it is not recoverable. `numbers` and `voiceUsage` are always there (maybe empty).
//! - `voiceUsage`: the last 12 months (oldest first, this month last), each dated by its
//!   first day at midnight UTC in the form of `invoicedUntil`; every placed call counts as
//!   "homeland" (call records carry no region).
//! - `reseller` lists the accounts of the customers of that reseller and of all its
//!   sub-resellers. With `customer` as well, both must hold.
//! - Errors: `error` is the name of the parameter at fault (`customer`, `reseller` when its
//!   value names nothing the caller may see is `access_denied`), `query` for a query string
//!   that cannot be read, plus `unauthorized`, `too_many_requests`, `method_not_allowed`,
//!   `unavailable` and `internal`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{TimeZone, Utc};
use percent_encoding::percent_decode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::api::{OPERATOR_CHALLENGE, OperatorAuthError, authenticate_operator};
use crate::domain::{AccountFilter, AccountQuery, AccountSort, AccountView, Role};
use crate::error::ServiceError;
use crate::service::tenancy::Operator;
use crate::service::{MAX_PAGE, MonthUsage, Services, search_filter};
use crate::store::CustomerFilter;

pub const PATH: &str = "/sip";
/// The default page size of the vendor's API.
const DEFAULT_LIMIT: i64 = 100;
/// A legitimate query is a few hundred bytes; anything longer is refused before parsing.
pub const MAX_QUERY_BYTES: usize = 4096;

pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(list_sip).fallback(method_not_allowed))
}

// ---- wire types ----

/// `GET /sip`: one page of SIP accounts.
#[derive(Serialize, ToSchema)]
pub struct SipListing {
    /// Index of the first SIP account returned.
    offset: i64,
    /// The page size asked for (the page may hold fewer).
    limit: i64,
    /// SIP accounts matching the query, regardless of `offset` and `limit`.
    total: i64,
    #[serde(rename = "sipAccounts")]
    #[schema(rename = "sipAccounts")]
    sip_accounts: Vec<SipAccount>,
}

/// One month of voice usage.
#[derive(Serialize, ToSchema)]
pub struct VoiceUsage {
    /// The first day of the month, midnight UTC (`2026-01-01T00:00:00.000Z`).
    date: String,
    /// Seconds of placed calls in that month (all placed calls count as homeland).
    #[serde(rename = "secsOutHomeland")]
    #[schema(rename = "secsOutHomeland")]
    secs_out_homeland: i64,
}

/// A SIP account. The condensed form (default) has `_id`, `active`, `name`, `numbers`,
/// `ratePlan`, `ratePlanName`, `status`, `connection`, `username`, `ipAddress`, `failover`,
/// `alwaysFailover`, `usageBlock`, `defaultNumber`, `pbx` and `voiceUsage`; `full=true` adds
/// the others. Properties without a value are left out. PBX trunks (`pbx` > 0) leave out
/// `status`, `sipServer`, `userAgent`, `contact`, `connection`, `username`, `password`,
/// `ipAddress`, `port`, `countries`, `clipSA`, `stripDkCountryCode`, `prefixMobileOriginated`,
/// `failover`, `alwaysFailover` and `defaultNumber`.
#[derive(Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct SipAccount {
    /// The account's public id (a UUID), the same as on the other operator surfaces.
    #[serde(rename = "_id")]
    #[schema(rename = "_id")]
    id: String,
    /// Id of the customer owning the account (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    customer: Option<String>,
    /// True unless the account is blocked.
    active: bool,
    /// The stored name, else the person's first and last name, else the first number.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    name: Option<String>,
    /// Always `SIP` (full).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, rename = "type")]
    kind: Option<String>,
    /// The account's ENUM numbers (E.164), oldest first.
    numbers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    high_rate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    international: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    rate_plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    rate_plan_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    new_rate_plan: Option<String>,
    /// The public id of another account.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    parent_sip_account: Option<String>,
    /// Hosted PBX cluster; 0 or absent: not a PBX trunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pbx: Option<i64>,
    /// Only for RESELLER and ADMIN callers (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    notes: Option<String>,
    /// JSON stored by third parties, at most 4 KiB (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    custom: Option<Value>,
    /// `ON` with a live registration, else `OFF`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^(ON|OFF)$")]
    status: Option<String>,
    /// Only for ADMIN callers (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    sip_server: Option<String>,
    /// Of the newest live registration (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    user_agent: Option<String>,
    /// Contact of the newest live registration (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    contact: Option<String>,
    /// `IP_AUTH`, `IP_AUTH_REG`, `IP` or `COUNTRY_AUTH_REG`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        pattern = "^(IP_AUTH|IP_AUTH_REG|IP|COUNTRY_AUTH_REG)$"
    )]
    connection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    username: Option<String>,
    /// The SIP password, for callers whose role may change the account (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    port: Option<i64>,
    /// Comma list of ISO 3166 alpha-2 codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    countries: Option<String>,
    #[serde(rename = "clipSA", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, rename = "clipSA")]
    clip_sa: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    strip_dk_country_code: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    prefix_mobile_originated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    failover: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    always_failover: Option<bool>,
    /// `2014-01-01T00:00:00.000Z` (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    invoiced_until: Option<String>,
    usage_block: bool,
    /// The stored default number, else the first number.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    default_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    always_default_number: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    always_secret_number: Option<bool>,
    /// Id of the customer billed instead (full).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    billing_customer: Option<String>,
    /// The last 12 months, oldest first.
    voice_usage: Vec<VoiceUsage>,
}

/// An error in the vendor's shape.
#[derive(Serialize, ToSchema)]
pub struct TelecomxError {
    /// A short code: `customer`, `access_denied`, the name of the parameter at fault, `query`,
    /// `unauthorized`, `too_many_requests`, `method_not_allowed`, `unavailable`, `internal`.
    error: String,
    message: String,
}

/// Marks a response as already in this surface's error format (see [`own_errors`]).
#[derive(Clone, Copy)]
struct Rendered;

/// An error answer of this surface.
#[derive(Debug)]
pub struct SipError {
    status: StatusCode,
    error: &'static str,
    message: String,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl SipError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn bad(error: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, message)
    }

    /// The vendor's 403, for a customer or reseller the caller may not see (or that does
    /// not exist: the two are not told apart).
    fn access_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "Insufficient access level",
        )
    }

    fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

impl IntoResponse for SipError {
    fn into_response(self) -> Response {
        let body = TelecomxError {
            error: self.error.to_owned(),
            message: self.message,
        };
        let mut r = json(self.status, &body);
        for (k, v) in self.headers {
            r.headers_mut().insert(k, v);
        }
        r
    }
}

impl From<ServiceError> for SipError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => SipError::bad("invalid", m),
            // Scope lookups are mapped by the caller; anything else out of reach is a 403 too.
            ServiceError::NotFound(_) | ServiceError::Forbidden(_) => SipError::access_denied(),
            ServiceError::Conflict(m) => SipError::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::Unavailable(cause) => {
                tracing::error!("store unavailable: {cause}");
                unavailable("The store is temporarily unavailable, try again later")
            }
            ServiceError::Internal(m) => {
                tracing::error!("internal error: {m}");
                internal()
            }
        }
    }
}

impl From<OperatorAuthError> for SipError {
    fn from(e: OperatorAuthError) -> Self {
        match e {
            OperatorAuthError::Unauthorized(detail) => {
                let message = match detail {
                    "authentication required" => "Authentication required",
                    _ => "Invalid credentials",
                };
                SipError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
                    .with_header(header::WWW_AUTHENTICATE, OPERATOR_CHALLENGE)
            }
            OperatorAuthError::Throttled => SipError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many failed authentication attempts, try again later",
            )
            .with_header(header::RETRY_AFTER, "60"),
            OperatorAuthError::Service(e) => e.into(),
        }
    }
}

fn unavailable(message: &str) -> SipError {
    SipError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        .with_header(header::RETRY_AFTER, "5")
}

fn internal() -> SipError {
    SipError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
    )
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    let (status, text) = match serde_json::to_string(v) {
        Ok(t) => (status, t),
        Err(e) => {
            tracing::error!("cannot serialize a response: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"internal","message":"Internal error"}"#.to_owned(),
            )
        }
    };
    let mut r = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response();
    r.extensions_mut().insert(Rendered);
    r
}

// ---- the query ----

/// The parameters of `GET /sip`, read and checked.
#[derive(Debug, Default, PartialEq)]
pub struct SipQuery {
    pub customer: Option<String>,
    pub reseller: Option<String>,
    pub offset: i64,
    pub limit: i64,
    pub filter: Option<AccountFilter>,
    pub full: bool,
    pub up: Option<bool>,
}

const PARAMS: [&str; 7] = [
    "customer", "reseller", "offset", "limit", "filter", "full", "up",
];

/// `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn boolean(name: &'static str, v: &str) -> Result<bool, SipError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SipError::bad(name, format!("{name} must be true or false"))),
    }
}

/// Reads the raw query string. Strict: unknown, repeated or unreadable parameters are refused
/// (400) rather than guessed at; an empty value is the same as leaving the parameter out.
pub fn parse_query(raw: Option<&str>) -> Result<SipQuery, SipError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_BYTES {
        return Err(SipError::new(
            StatusCode::URI_TOO_LONG,
            "query",
            format!("The query string is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let mut seen: HashMap<&'static str, String> = HashMap::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let (Some(key), Some(value)) = (decode(k), decode(v)) else {
            return Err(SipError::bad(
                "query",
                "The query string is not valid percent-encoded UTF-8",
            ));
        };
        let Some(name) = PARAMS.iter().copied().find(|p| *p == key) else {
            let shown: String = key.chars().filter(|c| !c.is_control()).take(40).collect();
            return Err(SipError::bad(
                "query",
                format!("Unknown parameter {shown:?}: use {}", PARAMS.join(", ")),
            ));
        };
        if seen.insert(name, value).is_some() {
            return Err(SipError::bad(
                name,
                format!("{name} must be given at most once"),
            ));
        }
    }
    let get = |name: &str| seen.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let mut q = SipQuery {
        customer: get("customer").map(str::to_owned),
        reseller: get("reseller").map(str::to_owned),
        offset: 0,
        limit: DEFAULT_LIMIT,
        ..SipQuery::default()
    };
    if let Some(v) = get("offset") {
        q.offset = v
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0 && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| SipError::bad("offset", "offset must be a whole number from 0 on"))?;
    }
    if let Some(v) = get("limit") {
        q.limit = v
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l) && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                SipError::bad(
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                )
            })?;
    }
    if let Some(v) = get("filter") {
        q.filter = search_filter(v).map_err(|e| match e {
            ServiceError::Invalid(m) => SipError::bad("filter", capitalised(&m)),
            other => other.into(),
        })?;
    }
    if let Some(v) = get("full") {
        q.full = boolean("full", v)?;
    }
    if let Some(v) = get("up") {
        q.up = Some(boolean("up", v)?);
    }
    Ok(q)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A customer or reseller id: our ids are positive integers; anything else names nothing.
fn id_of(v: &str) -> Option<i64> {
    v.parse::<i64>()
        .ok()
        .filter(|i| *i > 0 && v.bytes().all(|b| b.is_ascii_digit()))
}

/// The accounts the listing is about: the named customer, the named reseller's tree, or the
/// caller's own customer.
async fn scope_filters(
    services: &Services,
    op: &Operator,
    q: &SipQuery,
) -> Result<Vec<AccountFilter>, SipError> {
    let mut filters = Vec::new();
    let denied = |e: ServiceError| match e {
        ServiceError::NotFound(_) | ServiceError::Forbidden(_) => SipError::access_denied(),
        other => other.into(),
    };
    if let Some(c) = &q.customer {
        let id = id_of(c).ok_or_else(SipError::access_denied)?;
        services.get_customer(op, id).await.map_err(denied)?;
        filters.push(AccountFilter::Customers(vec![id]));
    }
    if let Some(r) = &q.reseller {
        let id = id_of(r).ok_or_else(SipError::access_denied)?;
        services.get_reseller(op, id).await.map_err(denied)?;
        let tree = services.reseller_subtree(id).await?;
        filters.push(AccountFilter::Resellers(tree));
    }
    if filters.is_empty() {
        let Some(own) = op.customer_id else {
            return Err(SipError::bad("customer", "Customer not found in arguments"));
        };
        services.get_customer(op, own).await.map_err(denied)?;
        filters.push(AccountFilter::Customers(vec![own]));
    }
    // A customer that already is the caller's whole scope (OWNER, MANAGER, VIEWER) needs no
    // second condition: the store would check it twice on every row.
    if let CustomerFilter::Customer(own) = op.filter() {
        filters.retain(|f| *f != AccountFilter::Customers(vec![own]));
    }
    Ok(filters)
}

// ---- the handler ----

/// List SIP accounts (telecomx-compatible).
///
/// The SIP accounts of a customer (`customer`, default: the caller's own) or of a reseller's
/// customers, recursively through its sub-resellers (`reseller`), in the vendor's shapes,
/// ordered by user name. Unknown or repeated parameters are refused (400); an empty value is
/// the same as an absent one. Errors are `{"error": code, "message": text}`.
#[utoipa::path(get, path = "/sip", tag = "telecomx",
    params(
        ("customer" = Option<String>, Query, pattern = "^[1-9][0-9]{0,17}$",
            description = "Id of the customer whose accounts to list; default: the caller's own customer. Other values name no customer (403)."),
        ("reseller" = Option<String>, Query, pattern = "^[1-9][0-9]{0,17}$",
            description = "Id of a reseller: list the accounts of its customers and of its sub-resellers' customers, recursively. Other values name no reseller (403)."),
        ("offset" = Option<i64>, Query, minimum = 0,
            description = "Index of the first account to return (default 0)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500,
            description = "Most accounts to return, 1 to 500 (default 100)."),
        ("filter" = Option<String>, Query, max_length = 100,
            description = "Case-insensitive substring of the name, a number, the IP address, the user name or the notes."),
        ("full" = Option<bool>, Query,
            description = "`true`: the complete account objects instead of the condensed ones."),
        ("up" = Option<bool>, Query,
            description = "`true`: only accounts with a live registration; `false`: only those without."),
    ),
    responses(
        (status = 200, description = "A page of SIP accounts.", body = SipListing),
        (status = 400, description = "A parameter is unknown, repeated or has a bad value; or neither the query nor the caller names a customer (`customer`).", body = TelecomxError),
        (status = 401, description = "No or invalid credentials.", body = TelecomxError,
            headers(("WWW-Authenticate" = String, description = "The accepted schemes: Basic and Bearer."))),
        (status = 403, description = "The customer or reseller is not one the caller may see, or does not exist (`access_denied`).", body = TelecomxError),
        (status = 414, description = "The query string is longer than 4096 bytes.", body = TelecomxError),
        (status = 429, description = "Too many failed authentications from this address.", body = TelecomxError,
            headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 503, description = "The store is temporarily unavailable, or the request took too long.", body = TelecomxError,
            headers(("Retry-After" = String, description = "Seconds to wait."))),
    ))]
pub async fn list_sip(State(st): State<AppState>, req: Request) -> Response {
    match listing(&st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn listing(st: &AppState, req: Request) -> Result<Response, SipError> {
    let (parts, _body) = req.into_parts();
    let op = authenticate_operator(&parts, st).await?;
    let q = parse_query(parts.uri.query())?;
    let mut filters = scope_filters(&st.services, &op, &q).await?;
    filters.extend(q.filter.clone().map(|f| match f {
        // Notes are searched only for the roles that may read them.
        AccountFilter::Search(s) if !sees_notes(&op) => AccountFilter::SearchExceptNotes(s),
        other => other,
    }));
    if let Some(up) = q.up {
        filters.push(AccountFilter::Online(up));
    }
    let query = AccountQuery {
        filters,
        sort: vec![(AccountSort::Username, false)],
        offset: q.offset,
        limit: q.limit,
    };
    let (total, views) = st.services.search_accounts(&op, &query).await?;
    let ids: Vec<i64> = views.iter().map(|v| v.account.id).collect();
    let mut usage = if ids.is_empty() {
        HashMap::new()
    } else {
        st.services.voice_usage(&ids).await?
    };
    let sip_accounts = views
        .iter()
        .map(|v| {
            let months = usage.remove(&v.account.id).unwrap_or_default();
            sip_account(&st.services, &op, v, months, q.full)
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &SipListing {
            offset: q.offset,
            limit: q.limit,
            total,
            sip_accounts,
        },
    ))
}

/// `2014-01-01T00:00:00.000Z`
fn iso_time(ts: i64) -> Option<String> {
    Utc.timestamp_opt(ts, 0)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S.000Z").to_string())
}

/// The vendor shows notes to RESELLER and ADMIN users only.
fn sees_notes(op: &Operator) -> bool {
    matches!(op.role, Role::Reseller | Role::Admin)
}

fn flag(v: i64) -> bool {
    v != 0
}

/// One account in the vendor's shape for this caller.
fn sip_account(
    services: &Services,
    op: &Operator,
    v: &AccountView,
    months: Vec<MonthUsage>,
    full: bool,
) -> SipAccount {
    let a = &v.attrs;
    let trunk = a.pbx.is_some_and(|p| p > 0);
    // Left out of PBX trunks.
    let sip = |x: Option<String>| if trunk { None } else { x };
    let sip_flag = |x: i64| (!trunk).then_some(flag(x));
    let full_only = |x: Option<String>| if full { x } else { None };
    let full_flag = |x: i64| full.then_some(flag(x));
    SipAccount {
        id: a.public_id.clone(),
        customer: full.then(|| v.account.customer_id.to_string()),
        active: !v.account.is_blocked(),
        name: v.display_name(),
        kind: full.then(|| "SIP".to_owned()),
        numbers: v.numbers.clone(),
        high_rate: full_flag(a.high_rate),
        international: full_flag(a.international),
        address: full_only(a.address.clone()),
        rate_plan: a.rate_plan.clone(),
        rate_plan_name: a.rate_plan_name.clone(),
        new_rate_plan: full_only(a.new_rate_plan.clone()),
        parent_sip_account: full_only(a.parent_sip_account.clone()),
        pbx: a.pbx,
        notes: full_only(a.notes.clone()).filter(|_| sees_notes(op)),
        custom: full_only(a.custom.clone()).and_then(|c| serde_json::from_str(&c).ok()),
        status: sip(Some(if v.is_online() { "ON" } else { "OFF" }.to_owned())),
        sip_server: sip(full_only(a.sip_server.clone())).filter(|_| op.is_admin()),
        user_agent: sip(full_only(
            v.live.as_ref().and_then(|r| r.user_agent.clone()),
        )),
        contact: sip(full_only(v.live.as_ref().map(|r| r.contact.clone()))),
        connection: sip(a.connection.clone()),
        username: sip(Some(v.account.username.clone())),
        password: if full && !trunk {
            services.sip_password(op, v)
        } else {
            None
        },
        ip_address: sip(a.ip_address.clone()),
        port: if trunk || !full { None } else { a.port },
        countries: sip(full_only(a.countries.clone())),
        clip_sa: full.then(|| sip_flag(a.clip_sa)).flatten(),
        strip_dk_country_code: full.then(|| sip_flag(a.strip_dk_country_code)).flatten(),
        prefix_mobile_originated: full.then(|| sip_flag(a.prefix_mobile_originated)).flatten(),
        failover: sip(a.failover.clone()),
        always_failover: sip_flag(a.always_failover),
        invoiced_until: full_only(a.invoiced_until.and_then(iso_time)),
        usage_block: flag(a.usage_block),
        default_number: sip(v.default_number()),
        always_default_number: full_flag(a.always_default_number),
        always_secret_number: full_flag(a.always_secret_number),
        billing_customer: full_only(a.billing_customer.map(|c| c.to_string())),
        voice_usage: months
            .into_iter()
            .map(|m| VoiceUsage {
                date: format!("{}T00:00:00.000Z", m.date),
                secs_out_homeland: m.seconds,
            })
            .collect(),
    }
}

// ---- errors the router makes ----

/// A request hyper refused before routing (see `http::guard`), in this surface's format.
pub fn rejected(status: StatusCode, message: &str) -> Response {
    SipError::new(status, "query", message).into_response()
}

async fn method_not_allowed() -> Response {
    let mut r = SipError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Only GET is allowed here",
    )
    .with_header(header::ALLOW, "GET,HEAD")
    .into_response();
    r.extensions_mut().insert(Rendered);
    r
}

/// Errors made outside the handler for `/sip` (a timeout's 503, a caught panic's 500) get
/// this surface's error format too.
pub async fn own_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let ours = req.uri().path() == PATH;
    let r = next.run(req).await;
    let status = r.status();
    if !ours || status.as_u16() < 400 || r.extensions().get::<Rendered>().is_some() {
        return r;
    }
    let e = match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            unavailable("The request took too long, try again later")
        }
        StatusCode::INTERNAL_SERVER_ERROR => internal(),
        _ => SipError::new(
            status,
            "error",
            status.canonical_reason().unwrap_or("Error"),
        ),
    };
    let mut out = e.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = r.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> (u16, &'static str) {
        let e = parse_query(Some(raw)).unwrap_err();
        (e.status.as_u16(), e.error)
    }

    #[test]
    fn defaults_and_values() {
        let q = parse_query(None).unwrap();
        assert_eq!((q.offset, q.limit, q.full, q.up), (0, 100, false, None));
        let q = parse_query(Some(
            "customer=12&filter=%2B4580+80&offset=10&limit=25&full=true&up=false",
        ))
        .unwrap();
        assert_eq!(q.customer.as_deref(), Some("12"));
        assert_eq!(q.filter, Some(AccountFilter::Search("+4580 80".into())));
        assert_eq!(
            (q.offset, q.limit, q.full, q.up),
            (10, 25, true, Some(false))
        );
        // Empty values are absent ones.
        let q = parse_query(Some("customer=&limit=&up=&filter=")).unwrap();
        assert_eq!(q, parse_query(None).unwrap());
    }

    #[test]
    fn bad_values() {
        assert_eq!(err("limit=0"), (400, "limit"));
        assert_eq!(err("limit=501"), (400, "limit"));
        assert_eq!(err("limit=+5"), (400, "limit"));
        assert_eq!(err("limit=99999999999999999999"), (400, "limit"));
        assert_eq!(err("offset=-1"), (400, "offset"));
        assert_eq!(err("offset=1e3"), (400, "offset"));
        assert_eq!(err("full=1"), (400, "full"));
        assert_eq!(err("up=TRUE"), (400, "up"));
        assert_eq!(err("limit=5&limit=5"), (400, "limit"));
        assert_eq!(err("filter[name]=x"), (400, "query"));
        assert_eq!(err("customer%5B%5D=1"), (400, "query"));
        assert_eq!(err("filter=%FF"), (400, "query"));
        assert_eq!(err(&format!("filter={}", "a".repeat(101))), (400, "filter"));
        assert_eq!(err("filter=a%00b"), (400, "filter"));
        assert_eq!(err(&"x".repeat(MAX_QUERY_BYTES + 1)), (414, "query"));
    }

    #[test]
    fn ids() {
        assert_eq!(id_of("12"), Some(12));
        for bad in [
            "0",
            "-1",
            "+1",
            "1.0",
            "abc",
            "1234567890ABCDEF12345678",
            "",
        ] {
            assert_eq!(id_of(bad), None, "{bad}");
        }
    }
}
