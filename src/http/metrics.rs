//! Request metrics middleware and the separate `/metrics` listener's router.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::metrics::{Surface, method_label};

/// The settings action a response answered (its canonical name, or `unknown`): set by the
/// settings handler, which is the one that reads the body where `action` may be.
#[derive(Clone, Copy, Debug)]
pub struct ActionLabel(pub &'static str);

/// Counts every answered request with its surface, action, method, status and latency.
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let surface = Surface::of_path(req.uri().path());
    let method = method_label(req.method());
    let matched = req.extensions().get::<MatchedPath>().cloned();
    // Answers made before the handler read the body (throttle, timeout) carry no label:
    // fall back to the query string.
    let query_action = match surface {
        Surface::Settings => Some(super::settings::action_label(req.uri().query().and_then(
            |q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "action")
                    .map(|(_, v)| v.into_owned())
            },
        ))),
        _ => None,
    };
    let resp = next.run(req).await;
    let action = match surface {
        Surface::Settings => resp
            .extensions()
            .get::<ActionLabel>()
            .map(|a| a.0)
            .or(query_action)
            .unwrap_or("unknown"),
        _ => matched
            .as_ref()
            .map(MatchedPath::as_str)
            .unwrap_or("unmatched"),
    };
    st.metrics.request(
        surface,
        action,
        method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// Only `GET /metrics`: this router runs on its own listener, never on the public ones.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

async fn scrape(State(st): State<AppState>) -> Response {
    let pool = st.services.store.pool();
    match st.metrics.render(pool.size(), pool.num_idle()) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("cannot render metrics: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
