//! HTTP: the router, shared state, client addresses, and the server loop.

pub mod api;
pub mod guard;
pub mod jsonapi;
pub mod metrics;
pub mod params;
pub mod settings;
pub mod telecomx;

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::digest::NonceManager;
use crate::auth::throttle::Throttle;
use crate::config::{Config, canonical_ip};
use crate::metrics::Metrics;
use crate::service::Services;
use crate::util::now;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub nonces: Arc<NonceManager>,
    pub throttle: Arc<Throttle>,
    pub cfg: Arc<Config>,
    /// This server's own registry (several servers may share a process).
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(cfg: Config, services: Services) -> Self {
        let nonces = NonceManager::new(services.keys.nonce, cfg.digest.nonce_lifetime_secs);
        Self {
            throttle: Arc::new(Throttle::new(cfg.throttle.clone())),
            nonces: Arc::new(nonces),
            metrics: Arc::new(Metrics::new(cfg.database.max_connections.max(1))),
            services,
            cfg: Arc::new(cfg),
        }
    }

    /// The client's address: the TCP peer, or the last untrusted `X-Forwarded-For` hop
    /// when the peer is a trusted proxy.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer_ip = canonical_ip(peer.ip());
        let trusted = |ip: IpAddr| self.cfg.trusted_proxies.iter().any(|c| c.contains(ip));
        if !trusted(peer_ip) {
            return peer_ip;
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for v in headers.get_all("x-forwarded-for") {
            let Ok(s) = v.to_str() else { return peer_ip };
            for part in s.split(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) => hops.push(canonical_ip(ip)),
                    Err(_) => return peer_ip,
                }
            }
        }
        hops.into_iter()
            .rev()
            .find(|ip| !trusted(*ip))
            .unwrap_or(peer_ip)
    }
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let body_limit = state.cfg.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(settings::routes())
        .merge(api::routes())
        .merge(jsonapi::routes())
        .merge(telecomx::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        // A stuck store must not hold connections forever; clients retry on 503.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(state.cfg.request_timeout_secs.max(1)),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            settings::json_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }))
        // Every error under /api/v1/ is a problem document, also those made above.
        .layer(axum::middleware::from_fn(api::problems_only))
        // And every error under the JSON:API prefix is a JSON:API error document.
        .layer(axum::middleware::from_fn(jsonapi::errors_only))
                .layer(axum::middleware::from_fn(telecomx::own_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        // Every line logged while a request is handled carries its `request_id` (the
        // client's `X-Request-Id`, or a generated UUID). Headers and query strings are not
        // logged: they carry credentials (Authorization, get_p12's password).
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id: String = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .chars()
                    .take(128)
                    .collect();
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .with_state(state)
}

/// Hyper's own refusals (see `guard`), in the error format of the surface `path` names.
pub fn rejection_response(path: &str, status: StatusCode) -> Response {
    let detail = match status {
        StatusCode::URI_TOO_LONG => "the request line is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request headers are too large",
        _ => "the request line or a header could not be read (malformed or not UTF-8)",
    };
    if path == jsonapi::PREFIX || path.starts_with(&format!("{}/", jsonapi::PREFIX)) {
        let e = match status {
            StatusCode::URI_TOO_LONG => jsonapi::error::JaError::uri_too_long(),
            _ => jsonapi::error::JaError::generic(status, detail),
        };
        e.into_response()
    } else if path == telecomx::PATH {
        telecomx::rejected(status, detail)
    } else if path.starts_with("/api/") {
        api::ApiError::new(status, detail).into_response()
    } else {
        settings::json_error(status, &format!("Error: {detail}"))
    }
}

/// Unknown paths: a problem document under `/api/`, the settings JSON error elsewhere.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        api::ApiError::new(StatusCode::NOT_FOUND, "no such endpoint").into_response()
    } else {
        settings::json_error(StatusCode::NOT_FOUND, "Not found")
    }
}

async fn health() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "{\"status\":\"ok\"}",
    )
        .into_response()
}

async fn ready(State(st): State<AppState>) -> Response {
    if st.services.store.ready().await {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            "{\"status\":\"ready\"}",
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::RETRY_AFTER, HeaderValue::from_static("5")),
            ],
            "{\"status\":\"unavailable\"}",
        )
            .into_response()
    }
}

/// A server bound to a socket and running in the background (used by `serve` and tests).
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The HTTPS listener, when `tls_listen` is set.
    pub tls_addr: Option<SocketAddr>,
    /// The Prometheus listener, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (at most `shutdown_timeout_secs`),
    /// and waits.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let bound = self.state.shutdown_timeout() + Duration::from_secs(5);
        let _ = tokio::time::timeout(bound, &mut self.task).await;
    }

    pub async fn wait(self) -> anyhow::Result<()> {
        match self.task.await {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("server error: {e}")),
            Err(e) => Err(anyhow::anyhow!("server task failed: {e}")),
        }
    }

    pub fn shutdown_handle(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

impl AppState {
    /// How long a shutdown waits for in-flight requests.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.shutdown_timeout_secs)
    }
}

/// The HTTPS listener: bound, configured, and its CRL refresher running.
struct TlsListener {
    addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    refresher: tokio::task::JoinHandle<()>,
}

async fn start_tls(state: &AppState, app: Router) -> anyhow::Result<Option<TlsListener>> {
    let listen = state.cfg.tls_listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    let services = state.services.clone();
    let ca = services
        .ca()
        .map_err(|e| anyhow::anyhow!("built-in CA: {e}"))?;
    let ident = Arc::new(crate::tls::ServerIdentity::load_or_issue(&state.cfg, &ca)?);
    let mut revoked = services
        .revoked_client_certs()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read revoked certificates: {e}"))?;
    let (crl, _) = services
        .crl_of(&revoked)
        .map_err(|e| anyhow::anyhow!("cannot build the CRL: {e}"))?;
    let server_cfg = crate::tls::server_config(&ident, &ca, crl)?;
    let rustls_cfg = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(server_cfg));
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::<SocketAddr>::new();
    let server = axum_server::from_tcp_rustls(listener, rustls_cfg.clone())?
        .map(guard::GuardAcceptor)
        .handle(handle.clone());
    let task = tokio::spawn(async move {
        server
            .serve(app.into_make_service_with_connect_info::<guard::Peer>())
            .await
    });
    // Revocations reach the handshake within `crl_refresh_secs` on every replica (the
    // per-request serial check in the store is immediate).
    let every = Duration::from_secs(state.cfg.tls.crl_refresh_secs.max(1));
    let refresher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            // Rebuild only when the revoked set changed: the verifier remembers verified
            // chains for as long as it lives.
            let now_revoked = match services.revoked_client_certs().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("CRL refresh failed, keeping the previous one: {e}");
                    continue;
                }
            };
            if now_revoked == revoked {
                continue;
            }
            let crl = match services.crl_of(&now_revoked) {
                Ok((der, _)) => der,
                Err(e) => {
                    tracing::warn!("CRL refresh failed, keeping the previous one: {e}");
                    continue;
                }
            };
            match crate::tls::server_config(&ident, &ca, crl) {
                Ok(c) => {
                    rustls_cfg.reload_from_config(Arc::new(c));
                    revoked = now_revoked;
                }
                Err(e) => tracing::warn!("TLS reload failed, keeping the previous one: {e}"),
            }
        }
    });
    Ok(Some(TlsListener {
        addr,
        handle,
        task,
        refresher,
    }))
}

/// The `/metrics` listener, when configured: its own socket and router, so the public
/// listeners never serve metrics.
async fn start_metrics(
    state: &AppState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)>> {
    let listen = state.cfg.metrics_listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (metrics): {e}"))?;
    let addr = listener.local_addr()?;
    let app = metrics::router(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop))
            .await
    });
    Ok(Some((addr, task)))
}

/// Resolves once the shutdown flag is raised (or its sender is gone).
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Binds the listeners (HTTP, HTTPS and metrics when configured) and starts serving.
///
/// Shutdown: the listeners stop accepting, idle connections close, requests in flight are
/// answered; after `shutdown_timeout_secs` the remaining ones are abandoned (their
/// transactions either committed before the answer or roll back with the connection).
pub async fn start(state: AppState) -> anyhow::Result<RunningServer> {
    let listener = TcpListener::bind(&state.cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", state.cfg.listen))?;
    let addr = listener.local_addr()?;
    let app = router(state.clone());
    let tls = start_tls(&state, app.clone()).await?;
    let tls_addr = tls.as_ref().map(|t| t.addr);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = start_metrics(&state, stop_rx.clone()).await?;
    let metrics_addr = metrics.as_ref().map(|m| m.0);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let nonces = state.nonces.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            nonces.sweep(now());
        }
    });
    // One signal for every listener.
    tokio::spawn(async move {
        let _ = rx.await;
        let _ = stop_tx.send(true);
    });
    let grace = state.shutdown_timeout();
    let tls_handle = tls.as_ref().map(|t| t.handle.clone());
    let http_stop = stop_rx.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(
            guard::GuardedListener(listener),
            app.into_make_service_with_connect_info::<guard::Peer>(),
        )
        .with_graceful_shutdown(async move {
            stopped(http_stop).await;
            if let Some(h) = tls_handle {
                h.graceful_shutdown(Some(grace));
            }
        })
        .into_future();
        // axum waits for every connection to finish; bound that by the grace period.
        let result = tokio::select! {
            r = serve => r,
            () = async {
                stopped(stop_rx).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(
                    "shutdown: requests still in flight after {} s are abandoned",
                    grace.as_secs()
                );
                Ok(())
            }
        };
        if let Some(t) = tls {
            t.handle.graceful_shutdown(Some(grace));
            t.refresher.abort();
            match tokio::time::timeout(grace + Duration::from_secs(1), t.task).await {
                Ok(Ok(Err(e))) => tracing::warn!("HTTPS listener error: {e}"),
                Ok(Err(e)) => tracing::warn!("HTTPS listener task failed: {e}"),
                Ok(Ok(Ok(()))) | Err(_) => {}
            }
        }
        if let Some((_, m)) = metrics {
            // Scrapes are quick; do not let a stuck scraper hold the exit.
            let _ = tokio::time::timeout(Duration::from_secs(1), m).await;
        }
        result
    });
    Ok(RunningServer {
        addr,
        tls_addr,
        metrics_addr,
        state,
        shutdown: Some(tx),
        task,
    })
}
