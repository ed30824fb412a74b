//! The native operator API, `/api/v1`: JSON bodies, RFC 9457 problem details, offset
//! pagination with a total, `ETag`/`If-Match` on updates. Thin: scope and rules live in services.

mod accounts;
mod feeds;
mod tenancy;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use crate::auth::throttle::Verdict;
use crate::error::ServiceError;
use crate::service::tenancy::Operator;
use crate::util::now;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(tenancy::routes())
        .merge(accounts::routes())
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
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut r = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body.to_string(),
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

pub fn json_ok(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

/// `?offset=&limit=`: limit 1..500 (default 50).
#[derive(Debug, Deserialize)]
pub struct Page {
    pub offset: Option<i64>,
    pub limit: Option<i64>,
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

pub fn paged(items: Vec<Value>, total: i64, offset: i64, limit: i64) -> Response {
    json_ok(
        StatusCode::OK,
        &json!({"items": items, "total": total, "offset": offset, "limit": limit}),
    )
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
pub fn etag_of(v: &Value) -> String {
    format!(
        "\"{}\"",
        &crate::crypto::sha256_hex(v.to_string().as_bytes())[..16]
    )
}

/// 412 when `If-Match` is present and names another version.
pub fn check_if_match(headers: &HeaderMap, current: &Value) -> ApiResult<()> {
    let Some(want) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let want = want.to_str().unwrap_or("");
    let tag = etag_of(current);
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

pub fn with_etag(status: StatusCode, v: &Value) -> Response {
    let mut r = json_ok(status, v);
    if let Ok(h) = HeaderValue::from_str(&etag_of(v)) {
        r.headers_mut().insert(header::ETAG, h);
    }
    r
}

/// The authenticated operator (HTTP Basic or Bearer token).
pub struct Caller(pub Operator);

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, detail.to_owned()).with_header(
        header::WWW_AUTHENTICATE,
        "Basic realm=\"sipsettings operators\", Bearer",
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let ip = st.client_ip(peer, &parts.headers);
        if let Verdict::Banned(_) = st.throttle.check(ip, now()) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentication attempts, try again later",
            )
            .with_header(header::RETRY_AFTER, "60"));
        }
        let Some(h) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("authentication required"));
        };
        let h = h.to_str().unwrap_or("");
        let (user, found) = if let Some(token) = h.strip_prefix("Bearer ") {
            (
                "token".to_owned(),
                st.services.operator_by_token(token.trim()).await?,
            )
        } else if let Some(b64) = h.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .unwrap_or_default();
            let (name, pw) = decoded.split_once(':').unwrap_or(("", ""));
            (
                name.to_owned(),
                st.services.operator_by_password(name, pw).await?,
            )
        } else {
            ("-".to_owned(), None)
        };
        match found {
            Some(op) => {
                st.throttle.succeed(ip);
                Ok(Caller(op))
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
                let delay = st.throttle.fail(ip, now());
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Err(unauthorized("invalid credentials"))
            }
        }
    }
}
