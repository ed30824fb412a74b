//! `/api/v1/feeds/*`: batches from the SIP platform (ADMIN only). Each batch is one
//! transaction; a bad record rejects it whole with the record's index.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;

use super::{ApiError, ApiResult, Caller, json_ok};
use crate::http::AppState;
use crate::service::ingest::{FeedBatch, IngestError, parse_batch};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/feeds/{kind}", post(ingest))
}

async fn ingest(
    State(st): State<AppState>,
    Caller(op): Caller,
    Path(kind): Path<String>,
    body: Bytes,
) -> ApiResult {
    if !op.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "feeds need an ADMIN operator",
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?;
    let batch = match kind.as_str() {
        "registrations" => parse_batch(text).map(FeedBatch::Registrations),
        "cdrs" => parse_batch(text).map(FeedBatch::Cdrs),
        "balance" => parse_batch(text).map(FeedBatch::Balance),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "feeds are registrations, cdrs and balance",
            ));
        }
    };
    let result = match batch {
        Ok(b) => st.services.ingest(&b).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(report) => Ok(json_ok(
            StatusCode::OK,
            &json!({"accepted": report.accepted, "duplicates": report.duplicates}),
        )),
        Err(IngestError::Record { index, reason }) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("record {index}: {reason}"),
        )),
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}
