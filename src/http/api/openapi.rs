//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations and the
//! wire types, served at `/api/v1/openapi.json` and kept in the repo as `openapi/openapi.json`.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::model::{
    BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed, Problem, TooManyRequests,
    Unauthorized, Unavailable, Unprocessable,
};
use super::{ApiError, accounts, feeds, tenancy};
use crate::http::AppState;
use crate::http::jsonapi;
use crate::http::jsonapi::error::{
    JaBadRequest, JaConflict, JaForbidden, JaNotAcceptable, JaNotFound, JaPayloadTooLarge,
    JaTooManyRequests, JaUnauthorized, JaUnavailable, JaUnprocessable, JaUnsupportedMediaType,
    JaUriTooLong, JsonApiErrors,
};

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sipsettings operator API",
        description = "The native operator API of sipsettings: resellers, customers, operators and \
                       their tokens, SIP domains, SIP accounts and their settings. JSON bodies; \
                       errors are RFC 9457 problem documents (`application/problem+json`); \
                       lists are paginated with `offset`/`limit` and carry a `total`; updates \
                       take `If-Match` where the representation has an `ETag`. Times are unix \
                       seconds.",
    ),
    paths(
        openapi_document,
        tenancy::me,
        tenancy::list_resellers,
        tenancy::create_reseller,
        tenancy::get_reseller,
        tenancy::patch_reseller,
        tenancy::delete_reseller,
        tenancy::list_customers,
        tenancy::create_customer,
        tenancy::get_customer,
        tenancy::patch_customer,
        tenancy::delete_customer,
        tenancy::list_operators,
        tenancy::create_operator,
        tenancy::get_operator,
        tenancy::delete_operator,
        tenancy::set_operator_password,
        tenancy::list_tokens,
        tenancy::create_token,
        tenancy::revoke_token,
        tenancy::list_domains,
        tenancy::create_domain,
        tenancy::delete_domain,
        feeds::ingest,
        accounts::list_accounts,
        accounts::create_account,
        accounts::get_account,
        accounts::patch_account,
        accounts::delete_account,
        accounts::get_password,
        accounts::set_password,
        accounts::reset_password,
        accounts::list_aliases,
        accounts::add_alias,
        accounts::delete_alias,
        accounts::list_enum,
        accounts::add_enum,
        accounts::delete_enum,
        accounts::get_voicemail,
        accounts::put_voicemail,
        accounts::delete_voicemail,
        accounts::get_forwarding,
        accounts::patch_forwarding,
        accounts::get_accept,
        accounts::put_accept,
        accounts::get_reject,
        accounts::put_reject,
        jsonapi::list,
        jsonapi::show,
        jsonapi::update,
        crate::http::telecomx::list_sip,
    ),
    components(
        schemas(Problem, feeds::FeedKind, JsonApiErrors),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PreconditionFailed,
            Unprocessable,
            TooManyRequests,
            Unavailable,
            JaBadRequest,
            JaUnauthorized,
            JaForbidden,
            JaNotFound,
            JaNotAcceptable,
            JaConflict,
            JaPayloadTooLarge,
            JaUriTooLong,
            JaUnsupportedMediaType,
            JaUnprocessable,
            JaTooManyRequests,
            JaUnavailable
        )
    ),
    modifiers(&Security),
    tags(
        (name = "meta", description = "This document."),
        (name = "operators", description = "Operator users and their API tokens."),
        (name = "resellers", description = "Resellers: a tree that owns customers."),
        (name = "customers", description = "Customers: they own SIP accounts."),
        (name = "domains", description = "The SIP domains (digest realms) served."),
        (name = "accounts", description = "SIP accounts and their settings."),
        (name = "feeds", description = "Batches from the SIP platform: registrations, call detail records, balance changes."),
        (name = "sip_device_routes", description = "The telecom.center-compatible JSON:API view of SIP accounts \
            (`/api/rest/public/operator/sip_device_routes`): media type `application/vnd.api+json` \
            (415 for a `Content-Type` of that type with parameters, and for a PATCH of any other \
            type; 406 when `Accept` names it only with parameters); errors are JSON:API error \
            documents (`{\"errors\": [{\"status\", \"title\", \"detail\", \"source\"}]}`), not problem \
            documents. Same operators, roles and scope as `/api/v1`."),
        (name = "telecomx", description = "The telecomx-compatible SIP account listing `GET /sip`: the vendor's query parameters, objects and `{\"error\", \"message\"}` errors."),
    )
)]
pub struct ApiDoc;

/// HTTP Basic (operator name and password) or a Bearer API token on every operation but
/// this document's.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("An operator's name and password."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sst_…")
                    .description(Some(
                        "An API token (`POST /api/v1/operators/{id}/tokens`, or \
                         `sipsettings operator token create NAME`).",
                    ))
                    .build(),
            ),
        );
        let required = || {
            vec![
                SecurityRequirement::new("basic", Vec::<String>::new()),
                SecurityRequirement::new("bearer", Vec::<String>::new()),
            ]
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = path == OPENAPI_PATH;
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(if open { Vec::new() } else { required() });
            }
        }
    }
}

/// The document, pretty-printed, as committed in `openapi/openapi.json` (with a final newline).
pub fn openapi_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json().map(|mut s| {
        s.push('\n');
        s
    })
}

pub fn routes() -> Router<AppState> {
    Router::new().route(OPENAPI_PATH, get(openapi_document))
}

/// This OpenAPI document (no authentication).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", body = Object),
        (status = 503, response = Unavailable),
    ))]
async fn openapi_document() -> Response {
    static DOC: OnceLock<Option<String>> = OnceLock::new();
    let doc = DOC.get_or_init(|| match openapi_json() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("cannot render the OpenAPI document: {e}");
            None
        }
    });
    match doc {
        Some(s) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            s.clone(),
        )
            .into_response(),
        None => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    }
}
