//! `/api/v1/feeds/*`: batches from the SIP platform (ADMIN only). Each batch is one
//! transaction; a bad record rejects it whole with the record's index.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, Ref, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::model::{
    BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable, Unprocessable,
};
use super::{ApiError, ApiResult, Caller, json_ok};
use crate::http::AppState;
use crate::service::ingest::{
    BalanceRecord, CdrRecord, FeedBatch, IngestError, IngestReport, RegistrationRecord, parse_batch,
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/feeds/{kind}", post(ingest))
}

/// The feeds.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // The path is matched as text; this type documents it.
pub(super) enum FeedKind {
    Registrations,
    Cdrs,
    Balance,
}

/// A JSON array of records of the feed named in the path (documents the body, which is
/// parsed by the feed's record type).
pub(super) struct FeedBody;

impl PartialSchema for FeedBody {
    fn schema() -> RefOr<Schema> {
        let array = |name: &str| ArrayBuilder::new().items(Ref::from_schema_name(name));
        // anyOf: an empty array is a batch of every feed.
        AnyOfBuilder::new()
            .description(Some(
                "A JSON array of records of the feed named in the path.",
            ))
            .item(array("RegistrationRecord"))
            .item(array("CdrRecord"))
            .item(array("BalanceRecord"))
            .into()
    }
}

impl ToSchema for FeedBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            RegistrationRecord::name().into(),
            RegistrationRecord::schema(),
        ));
        <RegistrationRecord as ToSchema>::schemas(schemas);
        schemas.push((CdrRecord::name().into(), CdrRecord::schema()));
        <CdrRecord as ToSchema>::schemas(schemas);
        schemas.push((BalanceRecord::name().into(), BalanceRecord::schema()));
        <BalanceRecord as ToSchema>::schemas(schemas);
    }
}

/// Store a batch of one feed (ADMIN): all records or none.
///
/// `registrations` are upserted by (account, contact); `cdrs` are idempotent on
/// (sessionId, fromTag, direction); `balance` credits (positive) or debits (negative).
#[utoipa::path(post, path = "/api/v1/feeds/{kind}", tag = "feeds",
    params(("kind" = FeedKind, Path, description = "Which feed")),
    request_body = FeedBody,
    responses(
        (status = 200, description = "Stored.", body = IngestReport),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ))]
pub(super) async fn ingest(
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
        Ok(report) => Ok(json_ok::<IngestReport>(StatusCode::OK, &report)),
        Err(IngestError::Record { index, reason }) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("record {index}: {reason}"),
        )),
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}
