//! JSON:API error documents: `{"errors":[{"status":"404","title":"Record not found",
//! "detail":"…","source":{…}}]}`, the one format of every error this surface answers.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;

use super::MEDIA_TYPE;
use crate::error::ServiceError;
use crate::http::api::{OPERATOR_CHALLENGE, OperatorAuthError};

/// A JSON:API error document.
#[derive(Debug, Serialize, ToSchema)]
pub struct JsonApiErrors {
    pub errors: Vec<JsonApiError>,
}

/// One error object.
#[derive(Debug, Serialize, ToSchema)]
pub struct JsonApiError {
    /// The HTTP status code, as a string.
    #[schema(example = "404")]
    pub status: String,
    /// A short summary of the kind of problem.
    #[schema(example = "Record not found")]
    pub title: String,
    /// What went wrong here, for a person.
    pub detail: String,
    /// What in the request caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
}

/// The part of the request an error is about.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorSource {
    /// A JSON Pointer into the request document, e.g. `/data/attributes/allowed_ips`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The query parameter, e.g. `filter[foo]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// The request header, e.g. `Content-Type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// An error answer of this surface.
#[derive(Debug)]
pub struct JaError {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
    /// Boxed: errors travel in every `Result` of the parser and should stay small.
    pub source: Option<Box<ErrorSource>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl JaError {
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title: title.to_owned(),
            detail: detail.into(),
            source: None,
            headers: Vec::new(),
        }
    }

    /// A 400 about a query parameter.
    pub fn param(parameter: &str, title: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, title, detail);
        e.source = Some(Box::new(ErrorSource {
            pointer: None,
            // A name as long as the query itself would only be echoed back.
            parameter: Some(crate::domain::validate::truncate(parameter, 100)),
            header: None,
        }));
        e
    }

    /// An error about a member of the request document.
    pub fn pointer(
        status: StatusCode,
        pointer: &str,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(status, title, detail);
        e.source = Some(Box::new(ErrorSource {
            pointer: Some(pointer.to_owned()),
            parameter: None,
            header: None,
        }));
        e
    }

    /// An error about a request header.
    pub fn header(status: StatusCode, name: &str, title: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(status, title, detail);
        e.source = Some(Box::new(ErrorSource {
            pointer: None,
            parameter: None,
            header: Some(name.to_owned()),
        }));
        e
    }

    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    pub fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Record not found",
            format!(
                "The record identified by {} could not be found.",
                super::query::shorten(id)
            ),
        )
    }

    pub fn uri_too_long() -> Self {
        Self::new(
            StatusCode::URI_TOO_LONG,
            "URI too long",
            format!(
                "The query string is longer than {} bytes.",
                super::query::MAX_QUERY_BYTES
            ),
        )
    }

    /// The title of a status this surface answers without a more specific one.
    pub fn generic(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = match status.as_u16() {
            400 => "Bad request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not found",
            405 => "Method not allowed",
            406 => "Not acceptable",
            408 => "Request timeout",
            409 => "Conflict",
            413 => "Payload too large",
            414 => "URI too long",
            415 => "Unsupported media type",
            422 => "Unprocessable entity",
            429 => "Too many requests",
            503 => "Service unavailable",
            _ => "Internal server error",
        };
        Self::new(status, title, detail)
    }
}

impl IntoResponse for JaError {
    fn into_response(self) -> Response {
        let doc = JsonApiErrors {
            errors: vec![JsonApiError {
                status: self.status.as_u16().to_string(),
                title: self.title,
                detail: self.detail,
                source: self.source.map(|b| *b),
            }],
        };
        let body = serde_json::to_string(&doc).unwrap_or_else(|_| {
            "{\"errors\":[{\"status\":\"500\",\"title\":\"Internal server error\",\"detail\":\"internal error\"}]}".to_owned()
        });
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))],
            body,
        )
            .into_response();
        for (k, v) in self.headers {
            r.headers_mut().insert(k, v);
        }
        r
    }
}

/// The one mapping from domain errors to this surface's statuses.
impl From<ServiceError> for JaError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => {
                // The services name the attribute at the start of the message.
                let attr = ["use_allowed_ips", "allowed_ips"]
                    .into_iter()
                    .find(|a| m.starts_with(&format!("{a}:")) || m.starts_with(&format!("{a} ")));
                match attr {
                    Some(a) => JaError::pointer(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &format!("/data/attributes/{a}"),
                        "Invalid attribute value",
                        m,
                    ),
                    None => JaError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid attribute value",
                        m,
                    ),
                }
            }
            ServiceError::NotFound(m) => JaError::new(StatusCode::NOT_FOUND, "Record not found", m),
            ServiceError::Conflict(m) => JaError::new(StatusCode::CONFLICT, "Conflict", m),
            ServiceError::Forbidden(m) => JaError::new(StatusCode::FORBIDDEN, "Forbidden", m),
            ServiceError::Unavailable(cause) => {
                tracing::error!("store unavailable: {cause}");
                JaError::generic(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The store is temporarily unavailable; try again later.",
                )
                .with_header(header::RETRY_AFTER, "5")
            }
            ServiceError::Internal(m) => {
                tracing::error!("internal error: {m}");
                JaError::generic(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<OperatorAuthError> for JaError {
    fn from(e: OperatorAuthError) -> Self {
        match e {
            OperatorAuthError::Unauthorized(detail) => {
                JaError::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
                    .with_header(header::WWW_AUTHENTICATE, OPERATOR_CHALLENGE)
            }
            OperatorAuthError::Throttled => JaError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "too many failed authentication attempts, try again later",
            )
            .with_header(header::RETRY_AFTER, "60"),
            OperatorAuthError::Service(e) => e.into(),
        }
    }
}

// ---- the error responses as the OpenAPI document describes them ----

macro_rules! error_responses {
    ($($name:ident: $desc:literal $([$h:literal = $hdesc:literal])?;)*) => {
        $(
            #[doc = $desc]
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                    (
                        stringify!($name),
                        crate::http::api::model::documented_error(
                            MEDIA_TYPE,
                            "JsonApiErrors",
                            $desc,
                            &[$(($h, $hdesc))?],
                        )
                        .into(),
                    )
                }
            }
        )*
    };
}

error_responses! {
    JaBadRequest: "JSON:API error: an unknown, malformed or repeated query parameter, a filter, sort, page, fields or include value that does not parse (`source.parameter`), or a request document of the wrong shape or with an attribute that cannot be changed (`source.pointer`).";
    JaUnauthorized: "JSON:API error: no or invalid credentials." ["WWW-Authenticate" = "The accepted schemes: Basic and Bearer."];
    JaForbidden: "JSON:API error: the caller's role (VIEWER) may only read.";
    JaNotFound: "JSON:API error: no such SIP account in the caller's scope (`Record not found`).";
    JaNotAcceptable: "JSON:API error: `Accept` names the JSON:API media type only with media type parameters.";
    JaConflict: "JSON:API error: `data.type` is not `sip_device_routes`, or `data.id` is not the id in the URL.";
    JaPayloadTooLarge: "JSON:API error: the request document is larger than 64 KiB.";
    JaUriTooLong: "JSON:API error: the query string is longer than 32 KiB.";
    JaUnsupportedMediaType: "JSON:API error: `Content-Type` is the JSON:API media type with media type parameters, or (PATCH) not the JSON:API media type.";
    JaUnprocessable: "JSON:API error: an attribute value is not acceptable (`source.pointer` names it).";
    JaTooManyRequests: "JSON:API error: too many failed authentications from this address." ["Retry-After" = "Seconds to wait."];
    JaUnavailable: "JSON:API error: the store is temporarily unavailable, or the request took too long." ["Retry-After" = "Seconds to wait."];
}
