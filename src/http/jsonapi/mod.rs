//! The telecom.center-compatible JSON:API surface (operator-api §3):
//! `GET|PATCH /api/rest/public/operator/sip_device_routes[/{id}]`.
//!
//! A thin view over the operator core: the query is parsed into the domain's filter and sort
//! types (`query.rs`), the services apply scope and every rule, `document.rs` shapes the
//! answer. Every error, including those axum or a layer makes, is a JSON:API error document.
//!
//! Order of the checks: media types (415/406), authentication (401/429), query parameters
//! (400/414), the resource (404), for PATCH the caller's role (403), then the request
//! document (413/400/409) and the values (422).

pub mod document;
pub mod error;
pub mod query;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_server::tls::TlsInfo;
use serde::Serialize;
use serde_json::{Map, Value};

use self::document::{RouteDocument, RouteList};
use self::error::{
    JaBadRequest, JaConflict, JaError, JaForbidden, JaNotAcceptable, JaNotFound, JaPayloadTooLarge,
    JaTooManyRequests, JaUnauthorized, JaUnavailable, JaUnprocessable, JaUnsupportedMediaType,
    JaUriTooLong,
};
use self::query::{Field, Params, Target};
use super::AppState;
use super::api::authenticate_operator;
use crate::domain::{AccountQuery, AccountView, Attr, AttrValue};
use crate::error::ServiceError;
use crate::service::tenancy::Operator;

/// The JSON:API media type, sent without parameters.
pub const MEDIA_TYPE: &str = "application/vnd.api+json";
/// Everything under this path answers in this surface's error format.
pub const PREFIX: &str = "/api/rest/public/operator";
pub const COLLECTION: &str = "/api/rest/public/operator/sip_device_routes";
const RESOURCE: &str = "/api/rest/public/operator/sip_device_routes/{id}";
/// Larger PATCH documents get 413 (the two changeable attributes fit in far less).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(COLLECTION, get(list))
        .route(RESOURCE, get(show).patch(update))
}

// ---- media types ----

/// The media type's essence (lower case) and whether it carries media type parameters
/// (`q` and what follows it are accept parameters, not media type parameters).
fn media_range(s: &str) -> (String, bool) {
    let mut parts = s.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .take_while(|p| {
            !p.split('=')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("q"))
        })
        .count();
    (essence, params > 0)
}

/// 415 for a JSON:API `Content-Type` with parameters (and, for a document the server must
/// read, for any other type), 406 when `Accept` names the JSON:API type only with parameters
/// (JSON:API 1.0).
fn check_media_types(headers: &HeaderMap, needs_document: bool) -> Result<(), JaError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let unsupported = |given: &str| {
        JaError::header(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
            "Unsupported media type",
            format!(
                "Requests must use the '{MEDIA_TYPE}' Content-Type without media type \
                 parameters. This request specified '{}'.",
                query::shorten(given)
            ),
        )
    };
    match &ct {
        Some(ct) => {
            let (essence, params) = media_range(ct);
            if (essence == MEDIA_TYPE && params) || (needs_document && essence != MEDIA_TYPE) {
                return Err(unsupported(ct));
            }
        }
        None if needs_document => return Err(unsupported("")),
        None => {}
    }
    let mut jsonapi = 0;
    let mut plain = 0;
    for v in headers.get_all(header::ACCEPT) {
        for range in String::from_utf8_lossy(v.as_bytes()).split(',') {
            let (essence, params) = media_range(range);
            if essence == MEDIA_TYPE {
                jsonapi += 1;
                if !params {
                    plain += 1;
                }
            }
        }
    }
    if jsonapi > 0 && plain == 0 {
        return Err(JaError::header(
            StatusCode::NOT_ACCEPTABLE,
            "Accept",
            "Not acceptable",
            format!(
                "The '{MEDIA_TYPE}' media type is accepted only with media type parameters; \
                 accept it without them."
            ),
        ));
    }
    Ok(())
}

// ---- helpers ----

/// `scheme://host` + the collection path: the scheme of the listener the request came in on,
/// the host the client asked for (`Host`, or the HTTP/2 authority).
fn base_url(parts: &Parts) -> String {
    let scheme = if parts.extensions.get::<Arc<TlsInfo>>().is_some() {
        "https"
    } else {
        "http"
    };
    let valid = |h: &&str| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
            })
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(valid)
        .or_else(|| parts.uri.authority().map(|a| a.as_str()).filter(valid))
        .unwrap_or("localhost");
    format!("{scheme}://{host}{COLLECTION}")
}

fn document<T: Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(text) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("cannot serialize a response: {e}");
            JaError::generic(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn respond(r: Result<Response, JaError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The resources of `views` and, with `include=customer`, their customers once each.
async fn render(
    st: &AppState,
    op: &Operator,
    views: &[AccountView],
    p: &Params,
    base: &str,
) -> Result<
    (
        Vec<document::SipDeviceRoute>,
        Option<Vec<document::CustomerResource>>,
    ),
    JaError,
> {
    let shows_relationship = p.include_customer
        || p.fields
            .routes
            .as_ref()
            .is_some_and(|(_, customer)| *customer);
    let data = views
        .iter()
        .map(|v| {
            // Opened only when shown: it costs a decryption per account.
            let password = if p.fields.shows(Field::Password) {
                st.services.sip_password(op, v)
            } else {
                None
            };
            document::route(v, password, &p.fields, shows_relationship, base)
        })
        .collect();
    let included = if p.include_customer {
        let mut ids: Vec<i64> = Vec::new();
        for v in views {
            if !ids.contains(&v.account.customer_id) {
                ids.push(v.account.customer_id);
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match st.services.get_customer(op, id).await {
                Ok(c) => out.push(document::customer(&c, &p.fields)),
                // An account in scope has its customer in scope; skip rather than fail.
                Err(ServiceError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        (!out.is_empty()).then_some(out)
    } else {
        None
    };
    Ok((data, included))
}

/// The account behind a URL id, or 404 in this surface's words.
async fn account(
    st: &AppState,
    op: &Operator,
    id: &str,
) -> Result<crate::domain::Account, JaError> {
    match st
        .services
        .account_by_public_id(op, &id.to_ascii_lowercase())
        .await
    {
        Ok(a) => Ok(a),
        Err(ServiceError::NotFound(_)) => Err(JaError::not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// The id from the path; one that does not decode is an id no record has.
fn path_id(
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    parts: &Parts,
) -> Result<String, JaError> {
    p.map(|Path(id)| id).map_err(|_| {
        let raw = parts.uri.path().rsplit('/').next().unwrap_or("");
        JaError::not_found(raw)
    })
}

// ---- handlers ----

/// List SIP accounts.
///
/// Filters combine (AND); a comma list inside one filter means any of its values. Without
/// `sort` the oldest accounts come first; ties always break on creation order.
#[utoipa::path(get, path = "/api/rest/public/operator/sip_device_routes", tag = "sip_device_routes",
    params(
        ("filter[id]" = Option<String>, Query, description = "Account ids (UUIDs), comma-separated: any of."),
        ("filter[customer.id]" = Option<String>, Query, description = "Customer ids (integers), comma-separated: any of."),
        ("filter[username]" = Option<String>, Query, description = "User names, comma-separated: any of (exact)."),
        ("filter[caller_id_name]" = Option<String>, Query, description = "Caller ID names, comma-separated: any of (exact)."),
        ("filter[allow_external_calls]" = Option<String>, Query, description = "`true` or `false`."),
        ("filter[internal_caller_id]" = Option<String>, Query, description = "Integers, comma-separated: any of."),
        ("filter[external_caller_id]" = Option<String>, Query, description = "Integers, comma-separated: any of."),
        ("sort" = Option<String>, Query, description = "Comma-separated attributes (or `id`), `-` before one for descending, e.g. `username,-caller_id_name`. Every attribute but `password` (stored encrypted: 400)."),
        ("page[number]" = Option<i64>, Query, minimum = 1, description = "The page, from 1 (default 1)."),
        ("page[size]" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Accounts per page, 1 to 500 (default 50)."),
        ("fields[sip_device_routes]" = Option<String>, Query, description = "The attributes (and `customer`) to show, comma-separated."),
        ("fields[customers]" = Option<String>, Query, description = "The attributes of included customers to show: `name`, `sip_account_limit`."),
        ("include" = Option<String>, Query, description = "`customer`: the accounts' customers in `included`."),
    ),
    responses(
        (status = 200, description = "A page of SIP accounts.", body = RouteList, content_type = "application/vnd.api+json"),
        (status = 400, response = JaBadRequest),
        (status = 401, response = JaUnauthorized),
        (status = 406, response = JaNotAcceptable),
        (status = 414, response = JaUriTooLong),
        (status = 415, response = JaUnsupportedMediaType),
        (status = 429, response = JaTooManyRequests),
        (status = 503, response = JaUnavailable),
    ))]
pub async fn list(State(st): State<AppState>, req: Request) -> Response {
    respond(list_inner(&st, req).await)
}

async fn list_inner(st: &AppState, req: Request) -> Result<Response, JaError> {
    let (parts, _) = req.into_parts();
    check_media_types(&parts.headers, false)?;
    let op = authenticate_operator(&parts, st).await?;
    let p = query::parse(parts.uri.query(), Target::List)?;
    let offset = (p.page_number - 1)
        .checked_mul(p.page_size)
        .ok_or_else(|| {
            JaError::param(
                "page[number]",
                "Invalid page value",
                format!(
                    "{} is not a valid value for number page parameter.",
                    p.page_number
                ),
            )
        })?;
    let q = AccountQuery {
        filters: p.filters.clone(),
        sort: p.sort.clone(),
        offset,
        limit: p.page_size,
    };
    let (total, views) = st.services.search_accounts(&op, &q).await?;
    let base = base_url(&parts);
    let (data, included) = render(st, &op, &views, &p, &base).await?;
    let pages = (total + p.page_size - 1) / p.page_size;
    let link = |n: i64| format!("{base}?{}", query::link_query(&p.echo, n, p.page_size));
    let doc = RouteList {
        data,
        included,
        meta: document::RecordCount {
            record_count: total,
        },
        links: document::PageLinks {
            first: link(1),
            prev: (p.page_number > 1).then(|| link(p.page_number - 1)),
            next: (p.page_number < pages).then(|| link(p.page_number + 1)),
            last: link(pages.max(1)),
        },
    };
    Ok(document(StatusCode::OK, &doc))
}

/// Get one SIP account.
#[utoipa::path(get, path = "/api/rest/public/operator/sip_device_routes/{id}", tag = "sip_device_routes",
    params(
        ("id" = String, Path, description = "The account id (UUID)."),
        ("fields[sip_device_routes]" = Option<String>, Query, description = "The attributes (and `customer`) to show, comma-separated."),
        ("fields[customers]" = Option<String>, Query, description = "The attributes of the included customer to show."),
        ("include" = Option<String>, Query, description = "`customer`"),
    ),
    responses(
        (status = 200, description = "The SIP account.", body = RouteDocument, content_type = "application/vnd.api+json"),
        (status = 400, response = JaBadRequest),
        (status = 401, response = JaUnauthorized),
        (status = 404, response = JaNotFound),
        (status = 406, response = JaNotAcceptable),
        (status = 414, response = JaUriTooLong),
        (status = 415, response = JaUnsupportedMediaType),
        (status = 429, response = JaTooManyRequests),
        (status = 503, response = JaUnavailable),
    ))]
pub async fn show(
    State(st): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> Response {
    respond(show_inner(&st, id, req).await)
}

async fn show_inner(
    st: &AppState,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> Result<Response, JaError> {
    let (parts, _) = req.into_parts();
    check_media_types(&parts.headers, false)?;
    let op = authenticate_operator(&parts, st).await?;
    let p = query::parse(parts.uri.query(), Target::One)?;
    let id = path_id(id, &parts)?;
    let a = account(st, &op, &id).await?;
    let view = st.services.account_view(a).await?;
    let base = base_url(&parts);
    let (mut data, included) = render(st, &op, std::slice::from_ref(&view), &p, &base).await?;
    let Some(data) = data.pop() else {
        return Err(JaError::not_found(&id));
    };
    Ok(document(StatusCode::OK, &RouteDocument { data, included }))
}

/// Change a SIP account: `use_allowed_ips` and `allowed_ips`.
///
/// Only the attributes present change. Every other attribute, and the `customer`
/// relationship, cannot be changed (400). Answers the whole resource.
#[utoipa::path(patch, path = "/api/rest/public/operator/sip_device_routes/{id}", tag = "sip_device_routes",
    params(
        ("id" = String, Path, description = "The account id (UUID)."),
        ("fields[sip_device_routes]" = Option<String>, Query, description = "The attributes (and `customer`) to show, comma-separated."),
        ("fields[customers]" = Option<String>, Query, description = "The attributes of the included customer to show."),
        ("include" = Option<String>, Query, description = "`customer`"),
    ),
    request_body(content = document::RoutePatch, content_type = "application/vnd.api+json"),
    responses(
        (status = 200, description = "The changed SIP account.", body = RouteDocument, content_type = "application/vnd.api+json"),
        (status = 400, response = JaBadRequest),
        (status = 401, response = JaUnauthorized),
        (status = 403, response = JaForbidden),
        (status = 404, response = JaNotFound),
        (status = 406, response = JaNotAcceptable),
        (status = 409, response = JaConflict),
        (status = 413, response = JaPayloadTooLarge),
        (status = 414, response = JaUriTooLong),
        (status = 415, response = JaUnsupportedMediaType),
        (status = 422, response = JaUnprocessable),
        (status = 429, response = JaTooManyRequests),
        (status = 503, response = JaUnavailable),
    ))]
pub async fn update(
    State(st): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> Response {
    respond(update_inner(&st, id, req).await)
}

async fn update_inner(
    st: &AppState,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> Result<Response, JaError> {
    let (parts, body) = req.into_parts();
    check_media_types(&parts.headers, true)?;
    let op = authenticate_operator(&parts, st).await?;
    let p = query::parse(parts.uri.query(), Target::One)?;
    let id = path_id(id, &parts)?;
    let a = account(st, &op, &id).await?;
    // Checked before the document so a read-only caller always learns the same thing.
    if !op.can_write_accounts() {
        return Err(JaError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Your role may only read SIP accounts.",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            JaError::generic(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request document is larger than {MAX_BODY_BYTES} bytes."),
            )
        })?;
    let changes = patch_changes(&bytes, &id.to_ascii_lowercase())?;
    let view = st.services.update_attrs(&op, &a, changes).await?;
    let base = base_url(&parts);
    let (mut data, included) = render(st, &op, std::slice::from_ref(&view), &p, &base).await?;
    let Some(data) = data.pop() else {
        return Err(JaError::not_found(&id));
    };
    Ok(document(StatusCode::OK, &RouteDocument { data, included }))
}

/// A JSON Pointer token (RFC 6901), shortened for the answer.
fn pointer_token(key: &str) -> String {
    query::shorten(key).replace('~', "~0").replace('/', "~1")
}

fn bad_document(pointer: &str, title: &str, detail: impl Into<String>) -> JaError {
    JaError::pointer(StatusCode::BAD_REQUEST, pointer, title, detail)
}

fn missing(pointer: &str, name: &str) -> JaError {
    bad_document(
        pointer,
        "Missing parameter",
        format!("The required parameter, {name}, is missing."),
    )
}

/// The attribute changes of a PATCH document, checked for shape (400), type and id (409) and
/// value types (422); the values themselves are the services' to judge.
fn patch_changes(body: &[u8], url_id: &str) -> Result<Vec<(Attr, AttrValue)>, JaError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        JaError::generic(
            StatusCode::BAD_REQUEST,
            format!("The request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(top) = doc else {
        return Err(bad_document(
            "",
            "Invalid document",
            "The request document must be a JSON object with a data member.",
        ));
    };
    for k in top.keys() {
        if !matches!(k.as_str(), "data" | "meta" | "jsonapi") {
            return Err(bad_document(
                &format!("/{}", pointer_token(k)),
                "Param not allowed",
                format!("{} is not allowed.", query::shorten(k)),
            ));
        }
    }
    let data = match top.get("data") {
        None | Some(Value::Null) => return Err(missing("/data", "data")),
        Some(Value::Object(d)) => d,
        Some(_) => {
            return Err(bad_document(
                "/data",
                "Invalid document",
                "data must be a resource object.",
            ));
        }
    };
    for k in data.keys() {
        if !matches!(
            k.as_str(),
            "id" | "type" | "attributes" | "relationships" | "meta" | "links"
        ) {
            return Err(bad_document(
                &format!("/data/{}", pointer_token(k)),
                "Param not allowed",
                format!("{} is not allowed.", query::shorten(k)),
            ));
        }
    }
    let text = |name: &str| -> Result<&str, JaError> {
        match data.get(name) {
            None | Some(Value::Null) => Err(missing(&format!("/data/{name}"), name)),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(bad_document(
                &format!("/data/{name}"),
                "Invalid document",
                format!("{name} must be a string."),
            )),
        }
    };
    let kind = text("type")?;
    if kind != "sip_device_routes" {
        return Err(JaError::pointer(
            StatusCode::CONFLICT,
            "/data/type",
            "Type mismatch",
            format!(
                "{} is not a valid type for this resource: use sip_device_routes.",
                query::shorten(kind)
            ),
        ));
    }
    let body_id = text("id")?;
    if !body_id.eq_ignore_ascii_case(url_id) {
        return Err(JaError::pointer(
            StatusCode::CONFLICT,
            "/data/id",
            "Key mismatch",
            format!(
                "The id in the document ({}) is not the id in the URL ({}).",
                query::shorten(body_id),
                query::shorten(url_id)
            ),
        ));
    }
    match data.get("relationships") {
        None | Some(Value::Null) => {}
        Some(Value::Object(rels)) => {
            if let Some(k) = rels.keys().next() {
                return Err(bad_document(
                    &format!("/data/relationships/{}", pointer_token(k)),
                    "Param not allowed",
                    if k == "customer" {
                        "The customer relationship cannot be changed.".to_owned()
                    } else {
                        format!("{} is not allowed.", query::shorten(k))
                    },
                ));
            }
        }
        Some(_) => {
            return Err(bad_document(
                "/data/relationships",
                "Invalid document",
                "relationships must be an object.",
            ));
        }
    }
    let empty = Map::new();
    let attributes = match data.get("attributes") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => {
            return Err(bad_document(
                "/data/attributes",
                "Invalid document",
                "attributes must be an object.",
            ));
        }
    };
    let mut changes = Vec::new();
    for (k, v) in attributes {
        let pointer = format!("/data/attributes/{}", pointer_token(k));
        let unprocessable = |detail: &str| {
            JaError::pointer(
                StatusCode::UNPROCESSABLE_ENTITY,
                &pointer,
                "Invalid attribute value",
                detail.to_owned(),
            )
        };
        match k.as_str() {
            "use_allowed_ips" => {
                let b = match v {
                    Value::Bool(b) => *b,
                    Value::String(s) if s == "true" => true,
                    Value::String(s) if s == "false" => false,
                    _ => {
                        return Err(unprocessable(
                            "use_allowed_ips must be true or false (or the strings \"true\" and \"false\").",
                        ));
                    }
                };
                changes.push((Attr::UseAllowedIps, AttrValue::Flag(b)));
            }
            "allowed_ips" => {
                let t = match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    _ => {
                        return Err(unprocessable(
                            "allowed_ips must be a string of IP addresses or CIDRs separated by commas, or null.",
                        ));
                    }
                };
                changes.push((Attr::AllowedIps, AttrValue::Text(t)));
            }
            other => {
                let detail = if Field::parse(other).is_some() {
                    format!("{other} cannot be changed: only use_allowed_ips and allowed_ips can.")
                } else {
                    format!("{} is not allowed.", query::shorten(other))
                };
                return Err(bad_document(&pointer, "Param not allowed", detail));
            }
        }
    }
    Ok(changes)
}

// ---- errors made outside the handlers ----

/// Under [`PREFIX`], every error is a JSON:API error document: answers that axum or a layer
/// made in another format (404 of unknown paths, 405 with its `Allow`, a timeout's 503, a
/// caught panic's 500) are rewritten, keeping their status and headers that matter.
pub async fn errors_only(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let ours = path == PREFIX || path.starts_with(&format!("{PREFIX}/"));
    let r = next.run(req).await;
    let status = r.status();
    if !ours || status.as_u16() < 400 {
        return r;
    }
    let is_jsonapi = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == MEDIA_TYPE.as_bytes());
    if is_jsonapi {
        return r;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "There is no such endpoint.",
        StatusCode::METHOD_NOT_ALLOWED => "This resource does not allow that method (see Allow).",
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.",
        StatusCode::SERVICE_UNAVAILABLE => "The request took too long; try again later.",
        StatusCode::INTERNAL_SERVER_ERROR => "internal error",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let mut out = JaError::generic(status, detail).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = r.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && !out.headers().contains_key(header::RETRY_AFTER)
    {
        out.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ranges() {
        assert_eq!(
            media_range("application/vnd.api+json"),
            (MEDIA_TYPE.into(), false)
        );
        assert_eq!(
            media_range("Application/VND.API+JSON ;"),
            (MEDIA_TYPE.into(), false)
        );
        assert_eq!(
            media_range("application/vnd.api+json; q=0.5"),
            (MEDIA_TYPE.into(), false)
        );
        assert_eq!(
            media_range("application/vnd.api+json; charset=utf-8"),
            (MEDIA_TYPE.into(), true)
        );
    }

    #[test]
    fn accept_rules() {
        let h = |accept: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            check_media_types(&m, false).map_err(|e| e.status.as_u16())
        };
        assert_eq!(h("application/vnd.api+json"), Ok(()));
        assert_eq!(h("*/*"), Ok(()));
        assert_eq!(h("application/json"), Ok(()));
        assert_eq!(h("application/vnd.api+json; ext=x"), Err(406));
        assert_eq!(h("application/vnd.api+json; ext=x, */*"), Err(406));
        assert_eq!(
            h("application/vnd.api+json; ext=x, application/vnd.api+json"),
            Ok(())
        );
    }

    #[test]
    fn patch_document_shapes() {
        let id = "c1c798dc-ee42-462e-8fca-0fa96d6fe3c0";
        let st = |body: &str| patch_changes(body.as_bytes(), id).map_err(|e| e.status.as_u16());
        let ok = format!(
            r#"{{"data": {{"attributes": {{"allowed_ips": "127.0.0.1", "use_allowed_ips": "true"}}, "id": "{id}", "type": "sip_device_routes"}}}}"#
        );
        assert_eq!(
            st(&ok),
            Ok(vec![
                (Attr::AllowedIps, AttrValue::Text(Some("127.0.0.1".into()))),
                (Attr::UseAllowedIps, AttrValue::Flag(true)),
            ])
        );
        for (body, want) in [
            ("", 400),
            ("[]", 400),
            ("{}", 400),
            (r#"{"data": null}"#, 400),
            (r#"{"data": []}"#, 400),
            (r#"{"data": {"type": "sip_device_routes"}}"#, 400),
            (r#"{"data": {"id": 1, "type": "sip_device_routes"}}"#, 400),
            (r#"{"data": {"id": "x", "type": "customers"}}"#, 409),
            (r#"{"data": {"id": "x", "type": "sip_device_routes"}}"#, 409),
            (r#"{"foo": 1, "data": {}}"#, 400),
        ] {
            assert_eq!(st(body).err(), Some(want), "{body}");
        }
        let with = |attrs: &str| {
            st(&format!(
                r#"{{"data": {{"id": "{id}", "type": "sip_device_routes", "attributes": {attrs}}}}}"#
            ))
            .err()
        };
        assert_eq!(with(r#"{"username": "x"}"#), Some(400));
        assert_eq!(with(r#"{"nope": "x"}"#), Some(400));
        assert_eq!(with(r#"{"use_allowed_ips": "yes"}"#), Some(422));
        assert_eq!(with(r#"{"use_allowed_ips": 1}"#), Some(422));
        assert_eq!(with(r#"{"allowed_ips": 1}"#), Some(422));
        assert_eq!(with("[]"), Some(400));
        assert_eq!(with("{}"), None);
    }
}
