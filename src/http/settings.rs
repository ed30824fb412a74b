//! The `settings.phtml` dialect: parameters in, one JSON value out.
//! Thin: authenticate, pick the action, call a service, render the original's JSON.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};

use crate::http::guard::Peer;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};

use super::AppState;
use super::metrics::ActionLabel;
use super::params::Params;
use crate::auth::client_cert::{self, CertSource};
use crate::auth::digest::{self, Algorithm, NonceCheck};
use crate::auth::throttle::Verdict;
use crate::domain::{Account, Forwarding};
use crate::error::ServiceError;
use crate::metrics::AuthFailure;
use crate::service::journal::{MAX_GET_LIMIT, journal_id_of};
use crate::service::{CallView, CertAuthError, VoicemailView};
use crate::store::JournalQuery;
use crate::util::{money_to_f64, money_to_string, now};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings.phtml", any(handle))
        .route("/sip_settings_digest.phtml", any(handle))
        .route("/sip_settings.phtml", any(handle))
}

/// Every action, with the older names that behave identically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Identity,
    Aliases,
    AddAlias,
    DeleteAlias,
    Enum,
    History,
    Devices,
    Prepaid,
    BalanceHistory,
    MonthlyUsage,
    GetForwarding,
    SetForwarding,
    GetAcceptRules,
    SetAcceptRules,
    GetRejectRules,
    SetRejectRules,
    Voicemail,
    DndOn,
    DndOff,
    PrivacyOn,
    PrivacyOff,
    JournalGet,
    JournalPut,
    JournalDelete,
    GetCrt,
    GetP12,
}

impl Action {
    /// The canonical name (the first of `from_name`'s names for this action).
    pub fn name(self) -> &'static str {
        use Action::*;
        match self {
            Identity => "get_identity",
            Aliases => "get_aliases",
            AddAlias => "add_alias",
            DeleteAlias => "delete_alias",
            Enum => "get_enum",
            History => "get_history",
            Devices => "get_devices",
            Prepaid => "get_prepaid",
            BalanceHistory => "get_balance_history",
            MonthlyUsage => "get_monthly_usage",
            GetForwarding => "get_call_forwarding",
            SetForwarding => "set_call_forwarding",
            GetAcceptRules => "get_accept_rules",
            SetAcceptRules => "set_accept_rules",
            GetRejectRules => "get_reject_rules",
            SetRejectRules => "set_reject_rules",
            Voicemail => "get_voicemail",
            DndOn => "set_dnd_on",
            DndOff => "set_dnd_off",
            PrivacyOn => "set_privacy_on",
            PrivacyOff => "set_privacy_off",
            JournalGet => "get_journal_entries",
            JournalPut => "put_journal_entries",
            JournalDelete => "delete_journal_entries",
            GetCrt => "get_crt",
            GetP12 => "get_p12",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        use Action::*;
        Some(match name {
            "get_identity" | "account" | "get_account" => Identity,
            "get_aliases" | "aliases" => Aliases,
            "add_alias" => AddAlias,
            "delete_alias" => DeleteAlias,
            "get_enum" | "enum" => Enum,
            "get_history" | "calls" | "get_calls" => History,
            "get_devices" | "devices" => Devices,
            "get_prepaid" | "prepaid" => Prepaid,
            "get_balance_history" | "balance_history" => BalanceHistory,
            "get_monthly_usage" | "monthly_usage" => MonthlyUsage,
            "get_call_forwarding" | "diversions" | "get_diversions" => GetForwarding,
            "set_call_forwarding" => SetForwarding,
            "get_accept_rules" | "rules" | "accept" | "get_accept" => GetAcceptRules,
            "set_accept_rules" => SetAcceptRules,
            "get_reject_rules" | "reject" | "get_reject" => GetRejectRules,
            "set_reject_rules" => SetRejectRules,
            "get_voicemail" | "voicemail" => Voicemail,
            "set_dnd_on" | "dnd_on" => DndOn,
            "set_dnd_off" | "dnd_off" => DndOff,
            "set_privacy_on" | "privacy_on" => PrivacyOn,
            "set_privacy_off" | "privacy_off" => PrivacyOff,
            "get_journal_entries" => JournalGet,
            "put_journal_entries" => JournalPut,
            "delete_journal_entries" => JournalDelete,
            "get_crt" | "crt" => GetCrt,
            "get_p12" | "p12" => GetP12,
            _ => return None,
        })
    }
}

/// The metrics label of an `action` value: its canonical name, or `unknown` (bounded).
pub fn action_label(name: Option<impl AsRef<str>>) -> &'static str {
    name.and_then(|n| Action::from_name(n.as_ref()))
        .map(Action::name)
        .unwrap_or("unknown")
}

const JSON_TYPE: &str = "application/json; charset=utf-8";

fn json_response(status: StatusCode, body: &Value) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "null".into());
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE))],
        text,
    )
        .into_response()
}

pub fn json_error(status: StatusCode, msg: &str) -> Response {
    json_response(status, &json!({"success": false, "error_message": msg}))
}

fn ok(v: Value) -> Response {
    json_response(StatusCode::OK, &v)
}

fn success(msg: impl Into<String>) -> Response {
    ok(json!({"success": true, "error_message": msg.into()}))
}

/// Application errors are HTTP 200 with `success: false` (clients branch on `success`).
pub fn error_response(e: ServiceError) -> Response {
    match e {
        ServiceError::Invalid(m) | ServiceError::NotFound(m) | ServiceError::Conflict(m) => {
            json_error(StatusCode::OK, &m)
        }
        ServiceError::Forbidden(m) => json_error(StatusCode::FORBIDDEN, &m),
        ServiceError::Unavailable(cause) => {
            tracing::error!("store unavailable: {cause}");
            let mut r = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable, please retry",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        ServiceError::Internal(m) => {
            tracing::error!("internal error: {m}");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
    }
}

/// Reads query and body parameters (body wins), or answers the error.
async fn read_params(
    st: &AppState,
    req: Request,
) -> Result<(Params, axum::http::request::Parts), Response> {
    let (parts, body) = req.into_parts();
    let mut params = Params::default();
    if let Some(q) = parts.uri.query() {
        params.add_urlencoded(q.as_bytes());
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let req = Request::from_parts(parts.clone(), body);
        let mut mp = Multipart::from_request(req, st)
            .await
            .map_err(|e| json_error(e.status(), "Error: malformed multipart body"))?;
        loop {
            match mp.next_field().await {
                Ok(Some(field)) => {
                    let Some(name) = field.name().map(str::to_owned) else {
                        continue;
                    };
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| json_error(e.status(), "Error: malformed multipart body"))?;
                    params.add(name, String::from_utf8(bytes.to_vec()).ok());
                }
                Ok(None) => break,
                Err(e) => return Err(json_error(e.status(), "Error: malformed multipart body")),
            }
        }
    } else {
        let bytes = axum::body::to_bytes(body, st.cfg.max_body_bytes)
            .await
            .map_err(|_| {
                json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Error: request body too large",
                )
            })?;
        if !bytes.is_empty() {
            params.add_urlencoded(&bytes);
        }
    }
    Ok((params, parts))
}

async fn handle(
    State(st): State<AppState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    req: Request<Body>,
) -> Response {
    let ip = st.client_ip(peer, req.headers());
    if let Verdict::Banned(secs) = st.throttle.check(ip, now()) {
        st.metrics.auth_failure(AuthFailure::Throttled);
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed authentication attempts, try again later",
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let (params, parts) = match read_params(&st, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let label = action_label(params.get("action").ok().flatten());
    let mut r = handle_params(&st, peer, ip, &params, &parts).await;
    r.extensions_mut().insert(ActionLabel(label));
    r
}

async fn handle_params(
    st: &AppState,
    peer: SocketAddr,
    ip: IpAddr,
    params: &Params,
    parts: &axum::http::request::Parts,
) -> Response {
    // A client certificate (TLS, or a trusted proxy's header) identifies the caller;
    // without one the request falls back to digest.
    let account = match client_cert::presented(parts, peer, &st.cfg) {
        Ok(Some(cert)) => authenticate_cert(st, &cert.der, cert.source, ip).await,
        Ok(None) => authenticate(st, parts, params, ip).await,
        Err(reason) => Err(cert_failure(st, ip, "-", reason).await),
    };
    let account = match account {
        Ok(a) => a,
        Err(r) => return r,
    };
    match params.get("account") {
        Ok(Some(requested)) if !requested.trim().eq_ignore_ascii_case(&account.address()) => {
            return json_error(
                StatusCode::FORBIDDEN,
                "Error: you may not act on this account",
            );
        }
        Err(m) => return json_error(StatusCode::OK, &m),
        _ => {}
    }
    let name = match params.get("action") {
        Ok(Some(n)) if !n.is_empty() => n,
        Ok(_) => return json_error(StatusCode::OK, "Error: missing action"),
        Err(_) => return json_error(StatusCode::OK, "Error: invalid action"),
    };
    let Some(action) = Action::from_name(name) else {
        return json_error(StatusCode::OK, "Error: invalid action");
    };
    if matches!(action, Action::GetCrt | Action::GetP12)
        && !client_cert::confidential(parts, peer, &st.cfg)
    {
        // The answer carries the private key: never in clear over a network.
        return json_error(
            StatusCode::FORBIDDEN,
            "Error: certificates are only served over HTTPS",
        );
    }
    tracing::debug!(action = name, account = %account.address(), "settings action");
    match run(st, action, &account, params, ip).await {
        Ok(r) => r,
        // put_journal_entries errors carry an empty result list, as the original's.
        Err(ServiceError::Invalid(m)) if action == Action::JournalPut => ok(json!({
            "results": [], "success": false, "error_message": m
        })),
        Err(e) => error_response(e),
    }
}

/// Removes what could forge log lines or flood them.
fn log_safe(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .take(64)
        .collect()
}

fn challenge(st: &AppState, realm: &str, stale: bool, msg: &str) -> Response {
    let mut r = json_error(StatusCode::UNAUTHORIZED, msg);
    for c in st.nonces.challenges(realm, now(), stale) {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    r
}

/// Records a failed authentication (fail2ban line, throttle) and answers with a new challenge.
async fn auth_failure(
    st: &AppState,
    ip: IpAddr,
    user: &str,
    realm: &str,
    reason: &str,
) -> Response {
    tracing::warn!(
        "auth failure ip={ip} user={}@{} reason={reason}",
        log_safe(user),
        log_safe(realm)
    );
    st.metrics
        .auth_failure(AuthFailure::of_digest_reason(reason));
    let delay = st.throttle.fail(ip, now());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    challenge(st, realm, false, "Authentication required")
}

/// A refused client certificate: fail2ban line, throttle, 401 (no digest fallback).
async fn cert_failure(st: &AppState, ip: IpAddr, address: &str, reason: &str) -> Response {
    tracing::warn!(
        "auth failure ip={ip} user={} reason={reason}",
        log_safe(address)
    );
    st.metrics.auth_failure(AuthFailure::CertRefused);
    let delay = st.throttle.fail(ip, now());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    json_error(
        StatusCode::UNAUTHORIZED,
        "Authentication failed: the client certificate is not valid",
    )
}

async fn authenticate_cert(
    st: &AppState,
    der: &[u8],
    source: CertSource,
    ip: IpAddr,
) -> Result<Account, Response> {
    match st
        .services
        .account_for_client_cert(der, source == CertSource::Header)
        .await
    {
        Ok(a) => {
            st.throttle.succeed(ip);
            Ok(a)
        }
        Err(CertAuthError::Refused { reason, address }) => {
            Err(cert_failure(st, ip, address.as_deref().unwrap_or("-"), reason).await)
        }
        Err(CertAuthError::Blocked(a)) => {
            tracing::warn!(
                "auth failure ip={ip} user={} reason=blocked",
                log_safe(&a.address())
            );
            st.metrics.auth_failure(AuthFailure::AccountBlocked);
            Err(json_error(
                StatusCode::FORBIDDEN,
                &format!("Error: account {} is blocked", a.address()),
            ))
        }
        Err(CertAuthError::Service(e)) => Err(error_response(e)),
    }
}

async fn authenticate(
    st: &AppState,
    parts: &axum::http::request::Parts,
    params: &Params,
    ip: IpAddr,
) -> Result<Account, Response> {
    let realm = match params.get("realm") {
        Ok(Some(r)) => {
            let r = r.trim();
            r.rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or(r)
                .to_ascii_lowercase()
        }
        Ok(None) => String::new(),
        Err(_) => String::new(),
    };
    if realm.is_empty() || crate::domain::validate::domain_name(&realm).is_err() {
        return Err(challenge(
            st,
            "sipsettings",
            false,
            "Authentication required: add realm=<your SIP domain> to the request",
        ));
    }
    let Some(header_value) = parts.headers.get(header::AUTHORIZATION) else {
        // Only the first, unauthenticated request pays for this lookup; with credentials
        // the account lookup below proves the realm is served.
        let served = match st.services.serves_domain(&realm).await {
            Ok(b) => b,
            Err(e) => return Err(error_response(e)),
        };
        let msg = if served {
            "Authentication required"
        } else {
            "Authentication required: unknown realm"
        };
        return Err(challenge(st, &realm, false, msg));
    };
    let creds = match digest::parse_authorization(header_value.as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            return Err(auth_failure(st, ip, "-", &realm, &format!("{e}").replace(' ', "_")).await);
        }
    };
    let user_field = creds.username.as_str();
    if !creds.realm.eq_ignore_ascii_case(&realm) {
        return Err(auth_failure(st, ip, user_field, &realm, "realm_mismatch").await);
    }
    if creds.userhash {
        return Err(auth_failure(st, ip, user_field, &realm, "userhash_unsupported").await);
    }
    let Some(alg) = digest::parse_algorithm(creds.algorithm.as_deref()) else {
        return Err(auth_failure(st, ip, user_field, &realm, "unsupported_algorithm").await);
    };
    let (Some(qop), Some(nc_hex), Some(cnonce)) = (&creds.qop, &creds.nc, &creds.cnonce) else {
        return Err(auth_failure(st, ip, user_field, &realm, "qop_required").await);
    };
    if qop != "auth" {
        return Err(auth_failure(st, ip, user_field, &realm, "qop_required").await);
    }
    let Some(nc) = digest::parse_nc(nc_hex) else {
        return Err(auth_failure(st, ip, user_field, &realm, "bad_nc").await);
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if creds.uri != target {
        return Err(auth_failure(st, ip, user_field, &realm, "uri_mismatch").await);
    }
    // `alice` or `alice@<realm>`; the account is always user@realm.
    let user = match creds.username.rsplit_once('@') {
        Some((u, d)) if d.eq_ignore_ascii_case(&realm) => u,
        Some(_) => return Err(auth_failure(st, ip, user_field, &realm, "domain_mismatch").await),
        None => creds.username.as_str(),
    };
    let user = user.to_ascii_lowercase();
    let now = now();
    let nonce_state = st.nonces.check(&creds.nonce, &realm, now);
    if nonce_state == NonceCheck::Invalid {
        return Err(auth_failure(st, ip, &user, &realm, "bad_nonce").await);
    }
    let account = match st.services.store.account_for_auth(&user, &realm).await {
        Ok(a) => a,
        Err(e) => return Err(error_response(e.into())),
    };
    let Some(account) = account else {
        return Err(auth_failure(st, ip, &user, &realm, "unknown_user").await);
    };
    // HA1 covers the username exactly as the client sent it (`alice` or `alice@domain`).
    let full = creds.username.contains('@');
    let ha1 = match (alg, full) {
        (Algorithm::Md5, false) => &account.ha1_md5,
        (Algorithm::Sha256, false) => &account.ha1_sha256,
        (Algorithm::Md5, true) => &account.ha1_md5_full,
        (Algorithm::Sha256, true) => &account.ha1_sha256_full,
    };
    // The method as sent: HEAD/GET/POST all sign with their own name.
    let expected = digest::expected_response(
        alg,
        ha1,
        &creds.nonce,
        nc_hex,
        cnonce,
        qop,
        parts.method.as_str(),
        &creds.uri,
    );
    if !digest::ct_eq_hex(&expected, &creds.response) {
        return Err(auth_failure(st, ip, &user, &realm, "bad_password").await);
    }
    if nonce_state == NonceCheck::Stale {
        st.metrics.auth_failure(AuthFailure::DigestStaleNonce);
        return Err(challenge(
            st,
            &realm,
            true,
            "Authentication required: nonce expired",
        ));
    }
    if !st.nonces.accept_nc(&creds.nonce, nc, now) {
        return Err(auth_failure(st, ip, &user, &realm, "replay").await);
    }
    if account.is_blocked() {
        tracing::warn!(
            "auth failure ip={ip} user={}@{} reason=blocked",
            log_safe(&user),
            log_safe(&realm)
        );
        st.metrics.auth_failure(AuthFailure::AccountBlocked);
        return Err(json_error(
            StatusCode::FORBIDDEN,
            &format!("Error: account {} is blocked", account.address()),
        ));
    }
    st.throttle.succeed(ip);
    Ok(account)
}

fn call_json(c: CallView) -> Value {
    let mut m = Map::new();
    m.insert("remoteParty".into(), c.remote_party.into());
    m.insert("displayName".into(), c.display_name.into());
    m.insert("startTime".into(), c.start_time.into());
    m.insert("stopTime".into(), c.stop_time.into());
    m.insert("timezone".into(), c.timezone.into());
    m.insert("duration".into(), c.duration.into());
    m.insert("status".into(), c.status.into());
    if let Some(p) = c.price {
        m.insert("price".into(), money_to_string(p).into());
    }
    m.insert("sessionId".into(), c.session_id.into());
    m.insert("fromTag".into(), c.from_tag.into());
    m.insert("toTag".into(), c.to_tag.into());
    m.insert("proxyIP".into(), c.proxy_ip.into());
    m.insert("media".into(), c.media.into());
    Value::Object(m)
}

fn voicemail_json(v: VoicemailView) -> Value {
    json!({
        "Mailbox": v.mailbox,
        "Password": v.password,
        "Name": v.name,
        "Email": v.email,
        "Info": v.info,
        "Options": {"delete": v.delete},
        "Account": v.account,
    })
}

/// Money as a JSON number with at most 4 decimals.
fn money_json(units: i64) -> Value {
    json!(money_to_f64(units))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A file download (`get_crt`, `get_p12`).
fn download(content_type: &'static str, filename: &str, body: Vec<u8>) -> Response {
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={filename}")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A JSON parameter (`rules`): missing, empty and malformed values get their own message.
fn json_param(params: &Params, key: &str) -> Result<Value, ServiceError> {
    let raw = params
        .get_nonempty(key)
        .map_err(ServiceError::Invalid)?
        .ok_or_else(|| ServiceError::invalid(format!("Error: missing {key}")))?;
    serde_json::from_str(raw)
        .map_err(|_| ServiceError::invalid(format!("Error: {key} is not valid JSON")))
}

/// An optional whole-number parameter; `0`/empty mean "not given".
fn int_param(params: &Params, key: &str) -> Result<Option<i64>, ServiceError> {
    match params.get_nonempty(key).map_err(ServiceError::Invalid)? {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ServiceError::invalid(format!("Error: {key} must be a whole number"))),
    }
}

async fn run(
    st: &AppState,
    action: Action,
    a: &Account,
    params: &Params,
    ip: IpAddr,
) -> Result<Response, ServiceError> {
    let s = &st.services;
    Ok(match action {
        Action::Identity => {
            let i = s.identity(a);
            ok(json!({
                "sip_address": i.sip_address,
                "email": i.email,
                "first": i.first,
                "lastname": i.lastname,
                "pstn_caller_id": i.pstn_caller_id,
                "mobile_number": i.mobile_number,
                "timezone": i.timezone,
                "no_answer_timeout": i.no_answer_timeout,
                "quick_dial": i.quick_dial,
            }))
        }
        Action::Aliases => ok(json!(s.aliases(a).await?)),
        Action::AddAlias => {
            let user = params.get("username").map_err(ServiceError::Invalid)?;
            let name = s.add_alias(a, user).await?;
            success(format!("Added alias {name}"))
        }
        Action::DeleteAlias => {
            let user = params.get("username").map_err(ServiceError::Invalid)?;
            let name = s.delete_alias(a, user).await?;
            success(format!("Deleted alias {name}"))
        }
        Action::Enum => ok(json!(s.enum_numbers(a).await?)),
        Action::History => {
            let h = s.history(a).await?;
            ok(json!({
                "placed": h.placed.into_iter().map(call_json).collect::<Vec<_>>(),
                "received": h.received.into_iter().map(call_json).collect::<Vec<_>>(),
            }))
        }
        Action::Devices => {
            let d = s.devices(a).await?;
            ok(Value::Array(
                d.into_iter()
                    .map(|d| {
                        json!({
                            "contact": d.contact,
                            "publicContact": d.public_contact,
                            "expires": d.expires,
                            "user_agent": d.user_agent,
                            "transport": d.transport,
                        })
                    })
                    .collect(),
            ))
        }
        Action::Prepaid => {
            let p = s.prepaid(a).await?;
            ok(json!({
                "balance": money_json(p.balance),
                "active_calls": p.active_calls.into_iter().map(|c| json!({
                    "sessionId": c.session_id,
                    "remoteParty": c.remote_party,
                    "startTime": c.start_time,
                })).collect::<Vec<_>>(),
            }))
        }
        Action::BalanceHistory => {
            let rows = s.balance_history(a).await?;
            let csv = params.get("csv").map_err(ServiceError::Invalid)?;
            if csv.is_some_and(|v| v.trim() == "1") {
                let mut out =
                    String::from("Id,Account,Date,Action,Description,Value,Final Balance\n");
                let account = a.address();
                // As the original: zero-value per-call rows are noise in a statement.
                for r in rows
                    .iter()
                    .filter(|r| !(r.value == 0 && r.description.starts_with("Session")))
                {
                    out.push_str(&format!(
                        "{},{},{},{},{},{},{}\n",
                        r.id,
                        csv_field(&account),
                        csv_field(&r.date),
                        csv_field(&r.action),
                        csv_field(&r.description),
                        money_to_string(r.value),
                        money_to_string(r.balance)
                    ));
                }
                let disposition = format!("inline; filename={account}-prepaid-history.csv");
                let mut resp = (
                    StatusCode::OK,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    )],
                    out,
                )
                    .into_response();
                if let Ok(v) = HeaderValue::from_str(&disposition) {
                    resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
                }
                resp
            } else {
                ok(Value::Array(
                    rows.into_iter()
                        .map(|r| {
                            json!({
                                "date": r.date,
                                "action": r.action,
                                "description": r.description,
                                "value": money_json(r.value),
                                "balance": money_json(r.balance),
                                "session": r.session,
                            })
                        })
                        .collect(),
                ))
            }
        }
        Action::MonthlyUsage => {
            let u = s.monthly_usage(a).await?;
            ok(json!({"calls": u.calls, "duration": u.duration, "price": money_json(u.price)}))
        }
        Action::GetForwarding => {
            let mut m = Map::new();
            for (f, v) in s.call_forwarding(a) {
                m.insert(f.key().into(), json!(v));
            }
            ok(Value::Object(m))
        }
        Action::SetForwarding => {
            let mut changes = Vec::new();
            for f in Forwarding::ALL {
                if let Some(v) = params.get(f.key()).map_err(ServiceError::Invalid)? {
                    changes.push((f, v.to_owned()));
                }
            }
            success(s.set_call_forwarding(a, &changes).await?)
        }
        Action::GetAcceptRules => {
            let r = s.accept_rules(a).await?;
            let mut persistent = Map::new();
            for p in r.persistent {
                persistent.insert(
                    p.days.to_string(),
                    json!({"start": p.start, "stop": p.stop, "groups": p.groups}),
                );
            }
            ok(json!({
                "persistent": persistent,
                "temporary": {"groups": r.temporary.groups, "duration": r.temporary.duration},
                "groups": r.groups,
            }))
        }
        Action::SetAcceptRules => {
            let rules = json_param(params, "rules")?;
            success(s.set_accept_rules(a, &rules).await?)
        }
        Action::GetRejectRules => ok(json!(s.reject_rules(a).await?)),
        Action::SetRejectRules => {
            let rules = json_param(params, "rules")?;
            success(s.set_reject_rules(a, &rules).await?)
        }
        Action::Voicemail => ok(s
            .voicemail(a)
            .await?
            .map(voicemail_json)
            .unwrap_or(Value::Null)),
        Action::DndOn => {
            let minutes = match params
                .get_nonempty("duration")
                .map_err(ServiceError::Invalid)?
            {
                None => 0,
                Some(d) => d.trim().parse::<i64>().map_err(|_| {
                    ServiceError::invalid("Error: duration must be a whole number of minutes")
                })?,
            };
            success(s.set_dnd_on(a, minutes).await?)
        }
        Action::DndOff => success(s.set_dnd_off(a).await?),
        Action::PrivacyOn => success(s.set_privacy(a, true).await?),
        Action::PrivacyOff => success(s.set_privacy(a, false).await?),
        Action::JournalPut => {
            let uuid = params.get("uuid").map_err(ServiceError::Invalid)?;
            let data = params.get("data").map_err(ServiceError::Invalid)?;
            let results = s.journal_put(a, uuid, data, &ip.to_string()).await?;
            let added = results.iter().filter(|r| r.added).count();
            let removed = results
                .iter()
                .filter(|r| !r.added && r.journal_id.is_some())
                .count();
            st.metrics.journal_written(added as u64);
            st.metrics.journal_deleted(removed as u64);
            ok(json!({
                "success": true,
                "results": results.into_iter().map(|r| json!({
                    "id": r.client_id,
                    "journal_id": r.journal_id.map(|i| i.to_string()),
                    "source": "default",
                })).collect::<Vec<_>>(),
            }))
        }
        Action::JournalGet => {
            let except = params
                .get_nonempty("except_uuid")
                .map_err(ServiceError::Invalid)?;
            let q = JournalQuery {
                except_uuid: except,
                after_id: int_param(params, "after_id")?.unwrap_or(0),
                after_timestamp: int_param(params, "after_timestamp")?.unwrap_or(0),
                limit: int_param(params, "limit")?.unwrap_or(MAX_GET_LIMIT),
            };
            let summary = params
                .get("summary")
                .map_err(ServiceError::Invalid)?
                .is_some_and(|v| v.trim() == "1" || v.trim().eq_ignore_ascii_case("true"));
            let page = s.journal_get(a, &q, summary).await?;
            let account = a.address();
            let results: Vec<Value> = page
                .entries
                .into_iter()
                .map(|e| {
                    json!({
                        "id": e.id.to_string(),
                        "source": "default",
                        "timestamp": e.timestamp,
                        "account": account,
                        "uuid": e.uuid,
                        "ip_address": e.ip_address,
                        "data": e.data,
                    })
                })
                .collect();
            let mut body = json!({
                "success": true,
                "error_message": null,
                "rows": results.len(),
                "results": results,
            });
            if let (Some(list), Some(obj)) = (page.summary, body.as_object_mut()) {
                obj.insert(
                    "summary".into(),
                    Value::Array(
                        list.into_iter()
                            .map(|(id, ts)| json!({"journal_id": id.to_string(), "timestamp": ts}))
                            .collect(),
                    ),
                );
            }
            ok(body)
        }
        Action::JournalDelete => {
            let ids: Vec<i64> = match params.get_nonempty("data").map_err(ServiceError::Invalid)? {
                Some(raw) => {
                    let v: Value = serde_json::from_str(raw)
                        .map_err(|_| ServiceError::invalid("Json decode error"))?;
                    match v {
                        Value::Array(items) => items.iter().filter_map(journal_id_of).collect(),
                        other => match journal_id_of(&other) {
                            Some(id) => vec![id],
                            None => {
                                return Err(ServiceError::invalid(
                                    "Json decode error: data must be an array of journal ids",
                                ));
                            }
                        },
                    }
                }
                None => match params
                    .get_nonempty("journal_id")
                    .map_err(ServiceError::Invalid)?
                {
                    Some(id) => id
                        .trim()
                        .parse::<i64>()
                        .map(|i| vec![i])
                        .unwrap_or_default(),
                    None => return Err(ServiceError::invalid("Missing data")),
                },
            };
            let n = s.journal_delete(a, &ids).await?;
            st.metrics.journal_deleted(n);
            ok(json!({"success": true, "deleted": n}))
        }
        Action::GetCrt => {
            let pem = s.client_cert_bundle(a).await?;
            download(
                "application/x-pem-file",
                &format!("{}.crt", a.address()),
                pem.into_bytes(),
            )
        }
        Action::GetP12 => {
            let password = params.get("password").map_err(ServiceError::Invalid)?;
            let modern = params
                .get("p12")
                .map_err(ServiceError::Invalid)?
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("modern"));
            let p12 = s.client_cert_p12(a, password, modern).await?;
            download("application/x-pkcs12", &format!("{}.p12", a.address()), p12)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_map() {
        assert_eq!(Action::from_name("calls"), Some(Action::History));
        assert_eq!(Action::from_name("get_calls"), Some(Action::History));
        assert_eq!(Action::from_name("account"), Some(Action::Identity));
        assert_eq!(Action::from_name("rules"), Some(Action::GetAcceptRules));
        assert_eq!(Action::from_name("diversions"), Some(Action::GetForwarding));
        assert_eq!(Action::from_name("nope"), None);
        assert_eq!(Action::from_name("GET_IDENTITY"), None);
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
