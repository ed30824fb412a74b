//! The native operator API, `/api/v1`: JSON bodies, RFC 9457 problem details, offset
//! pagination with a total, `ETag`/`If-Match` on updates. Thin: scope and rules live in services.

mod accounts;
mod feeds;
pub mod model;
mod openapi;
mod tenancy;

pub use openapi::{ApiDoc, openapi_json};

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::AppState;
use crate::auth::throttle::Verdict;
use crate::error::ServiceError;
use crate::metrics::AuthFailure;
use crate::service::tenancy::Operator;
use crate::util::now;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(tenancy::routes())
        .merge(accounts::routes())
        .merge(openapi::routes())
        .merge(feeds::routes())
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }
    fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = model::Problem {
            kind: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        let mut r = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
        for (k, v) in self.headers {
            r.headers_mut().insert(k, v);
        }
        r
    }
}

/// The one mapping from domain errors to HTTP statuses for this surface.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            ServiceError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            ServiceError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            ServiceError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            ServiceError::Unavailable(cause) => {
                tracing::error!("store unavailable: {cause}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store temporarily unavailable",
                )
                .with_header(header::RETRY_AFTER, "5")
            }
            ServiceError::Internal(m) => {
                tracing::error!("internal error: {m}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

/// A JSON body parsed by hand, so malformed input gets a problem document (400), not a text error.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> JsonBody<T> {
    pub fn parse(bytes: &Bytes) -> ApiResult<Self> {
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
    }
}

/// The JSON text of a response body.
fn to_json<T: Serialize>(v: &T) -> ApiResult<String> {
    serde_json::to_string(v).map_err(|e| {
        tracing::error!("cannot serialize a response: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })
}

/// A JSON response (a 500 problem in the unlikely case that `v` does not serialize).
pub fn json_ok<T: Serialize>(status: StatusCode, v: &T) -> Response {
    match to_json(v) {
        Ok(text) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `?offset=&limit=`: limit 1..500 (default 50).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Items to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Most items to return, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Only this customer's accounts.
    pub customer_id: Option<i64>,
}

impl Page {
    pub fn bounds(&self) -> ApiResult<(i64, i64)> {
        let offset = self.offset.unwrap_or(0);
        let limit = self.limit.unwrap_or(50);
        if offset < 0 || !(1..=500).contains(&limit) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "offset must be ≥ 0 and limit 1 to 500",
            ));
        }
        Ok((offset, limit))
    }
}

/// Query strings that do not parse get a problem document.
pub fn query<T: DeserializeOwned>(parts_query: Option<&str>) -> ApiResult<T> {
    Query::<T>::try_from_uri(
        &format!("/?{}", parts_query.unwrap_or(""))
            .parse()
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid query string"))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
}

/// `"<sha256 prefix>"` of the representation.
pub fn etag_of<T: Serialize>(v: &T) -> ApiResult<String> {
    let text = to_json(v)?;
    let hex = crate::crypto::sha256_hex(text.as_bytes());
    Ok(format!("\"{}\"", hex.get(..16).unwrap_or(&hex)))
}

/// 412 when `If-Match` is present and names another version.
pub fn check_if_match<T: Serialize>(headers: &HeaderMap, current: &T) -> ApiResult<()> {
    let Some(want) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let want = want.to_str().unwrap_or("");
    let tag = etag_of(current)?;
    if want.trim() == "*"
        || want
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/") == tag)
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "the resource was changed since you read it (If-Match)",
        ))
    }
}

pub fn with_etag<T: Serialize>(status: StatusCode, v: &T) -> ApiResult {
    let mut r = json_ok(status, v);
    if let Ok(h) = HeaderValue::from_str(&etag_of(v)?) {
        r.headers_mut().insert(header::ETAG, h);
    }
    Ok(r)
}

/// The authenticated operator (HTTP Basic or Bearer token).
pub struct Caller(pub Operator);

/// Why operator authentication failed; each surface renders it in its own error format.
#[derive(Debug)]
pub enum OperatorAuthError {
    /// 401 with `WWW-Authenticate` ([`OPERATOR_CHALLENGE`]).
    Unauthorized(&'static str),
    /// 429 with `Retry-After: 60`.
    Throttled,
    /// The store failed while checking the credentials.
    Service(crate::error::ServiceError),
}

/// The `WWW-Authenticate` value of the operator surfaces.
pub const OPERATOR_CHALLENGE: &str = "Basic realm=\"sipsettings operators\", Bearer";

impl From<OperatorAuthError> for ApiError {
    fn from(e: OperatorAuthError) -> Self {
        match e {
            OperatorAuthError::Unauthorized(detail) => {
                ApiError::new(StatusCode::UNAUTHORIZED, detail.to_owned())
                    .with_header(header::WWW_AUTHENTICATE, OPERATOR_CHALLENGE)
            }
            OperatorAuthError::Throttled => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentication attempts, try again later",
            )
            .with_header(header::RETRY_AFTER, "60"),
            OperatorAuthError::Service(e) => e.into(),
        }
    }
}

/// Authenticates an operator (Basic or Bearer) with the per-IP throttle and the fail2ban line;
/// shared by every operator surface.
pub async fn authenticate_operator(
    parts: &Parts,
    st: &AppState,
) -> Result<Operator, OperatorAuthError> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<crate::http::guard::Peer>>()
        .map(|c| c.0.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let ip = st.client_ip(peer, &parts.headers);
    if let Verdict::Banned(_) = st.throttle.check(ip, now()) {
        st.metrics.auth_failure(AuthFailure::Throttled);
        return Err(OperatorAuthError::Throttled);
    }
    let Some(h) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(OperatorAuthError::Unauthorized("authentication required"));
    };
    let h = h.to_str().unwrap_or("");
    let mut kind = AuthFailure::OperatorMalformed;
    let (user, found) = if let Some(token) = h.strip_prefix("Bearer ") {
        kind = AuthFailure::OperatorBearer;
        (
            "token".to_owned(),
            st.services
                .operator_by_token(token.trim())
                .await
                .map_err(OperatorAuthError::Service)?,
        )
    } else if let Some(b64) = h.strip_prefix("Basic ") {
        kind = AuthFailure::OperatorBasic;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .unwrap_or_default();
        let (name, pw) = decoded.split_once(':').unwrap_or(("", ""));
        (
            name.to_owned(),
            st.services
                .operator_by_password(name, pw)
                .await
                .map_err(OperatorAuthError::Service)?,
        )
    } else {
        ("-".to_owned(), None)
    };
    match found {
        Some(op) => {
            st.throttle.succeed(ip);
            Ok(op)
        }
        None => {
            let safe: String = user
                .chars()
                .filter(|c| !c.is_control() && !c.is_whitespace())
                .take(64)
                .collect();
            tracing::warn!(
                "auth failure ip={ip} user={safe}@operator reason=bad_operator_credentials"
            );
            st.metrics.auth_failure(kind);
            let delay = st.throttle.fail(ip, now());
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Err(OperatorAuthError::Unauthorized("invalid credentials"))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Caller(authenticate_operator(parts, st).await?))
    }
}

/// Under `/api/v1/`, every error is a problem document: answers that axum or a layer made
/// without one (405 with its `Allow`, 413, a timeout's 503, a caught panic's 500) get one.
/// Elsewhere, every 503 says when to retry.
pub async fn problems_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/v1/");
    let r = next.run(req).await;
    let status = r.status();
    if !api {
        // Elsewhere a timeout's bare 503 gets the settings JSON error shape and Retry-After,
        // like the store's own 503.
        if status == StatusCode::SERVICE_UNAVAILABLE
            && !r.headers().contains_key(header::RETRY_AFTER)
        {
            let mut p = crate::http::settings::json_error(
                status,
                "Service temporarily unavailable, please retry",
            );
            p.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return p;
        }
        return r;
    }
    if status.as_u16() < 400 {
        return r;
    }
    let is_problem = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return r;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this resource does not allow that method (see Allow)",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::SERVICE_UNAVAILABLE => "the request took too long, try again later",
        StatusCode::INTERNAL_SERVER_ERROR => "internal error",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let mut p = ApiError::new(status, detail).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = r.headers().get(&name) {
            p.headers_mut().insert(name, v.clone());
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && !p.headers().contains_key(header::RETRY_AFTER) {
        p.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    p
}

/// Integers in request bodies. JSON Schema (so the OpenAPI document) counts `3.0` as the
/// integer 3; serde does not, so these accept integral numbers written with a fraction.
pub mod int {
    use serde::de::{Deserialize, Deserializer, Error};
    use serde_json::Number;

    fn to_i64<E: Error>(n: &Number) -> Result<i64, E> {
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        // i64::MIN is exactly representable; i64::MAX as f64 rounds up to 2^63.
        const MIN: f64 = -9_223_372_036_854_775_808.0;
        const MAX: f64 = 9_223_372_036_854_775_808.0;
        match n.as_f64() {
            #[allow(clippy::cast_possible_truncation)]
            Some(f) if f.fract() == 0.0 && (MIN..MAX).contains(&f) => Ok(f as i64),
            _ => Err(E::custom(format!(
                "invalid value: {n}, expected a 64-bit integer"
            ))),
        }
    }

    /// `Option<i64>`; use with `#[serde(default)]`.
    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<Number>::deserialize(d)?
            .as_ref()
            .map(to_i64)
            .transpose()
    }

    /// Present (`Some`) as a number or `null`; absent (`None`) with `#[serde(default)]`.
    pub fn double_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        opt(d).map(Some)
    }
}
