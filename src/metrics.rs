//! Prometheus metrics. Each server owns one registry (held in `AppState`, no global state), so
//! several servers in one process (the tests) never mix their counts. The registry is served
//! only on the opt-in `metrics_listen` listener (`http::metrics`).
//!
//! Every label has a bounded set of values: surfaces are fixed, actions are known action names
//! or matched route templates (never raw paths or ids), methods are the standard ones.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The Prometheus text format (0.0.4) content type.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Which wire surface a request path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    Settings,
    Api,
    JsonApi,
    Sip,
    Health,
    Other,
}

impl Surface {
    pub fn of_path(path: &str) -> Surface {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        match path {
            "/settings.phtml" | "/sip_settings.phtml" | "/sip_settings_digest.phtml" => {
                Surface::Settings
            }
            "/health" | "/ready" => Surface::Health,
            _ if under("/api/v1") => Surface::Api,
            _ if path.starts_with("/api/rest/public/operator/") => Surface::JsonApi,
            _ if under("/sip") => Surface::Sip,
            _ => Surface::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Settings => "settings",
            Surface::Api => "api",
            Surface::JsonApi => "jsonapi",
            Surface::Sip => "sip",
            Surface::Health => "health",
            Surface::Other => "other",
        }
    }
}

/// The standard methods by name; anything else is `OTHER` (methods are client-chosen tokens).
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Why an authentication failed (the `kind` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// Digest response did not match (wrong password).
    DigestBadResponse,
    DigestUnknownUser,
    /// Expired nonce with an otherwise right response: the client retries silently.
    DigestStaleNonce,
    /// `nc` not above the last one seen for the nonce.
    DigestReplay,
    /// A nonce this server did not issue.
    DigestBadNonce,
    /// A malformed or unacceptable `Authorization: Digest` header.
    DigestMalformed,
    /// Right credentials, blocked account.
    AccountBlocked,
    /// Refused by the failed-attempt throttle (429).
    Throttled,
    CertRefused,
    OperatorBasic,
    OperatorBearer,
    /// No or an unknown `Authorization` scheme on the operator API.
    OperatorMalformed,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 12] = [
        AuthFailure::DigestBadResponse,
        AuthFailure::DigestUnknownUser,
        AuthFailure::DigestStaleNonce,
        AuthFailure::DigestReplay,
        AuthFailure::DigestBadNonce,
        AuthFailure::DigestMalformed,
        AuthFailure::AccountBlocked,
        AuthFailure::Throttled,
        AuthFailure::CertRefused,
        AuthFailure::OperatorBasic,
        AuthFailure::OperatorBearer,
        AuthFailure::OperatorMalformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::DigestBadResponse => "digest_bad_response",
            AuthFailure::DigestUnknownUser => "digest_unknown_user",
            AuthFailure::DigestStaleNonce => "digest_stale_nonce",
            AuthFailure::DigestReplay => "digest_replay",
            AuthFailure::DigestBadNonce => "digest_bad_nonce",
            AuthFailure::DigestMalformed => "digest_malformed",
            AuthFailure::AccountBlocked => "account_blocked",
            AuthFailure::Throttled => "throttled",
            AuthFailure::CertRefused => "cert_refused",
            AuthFailure::OperatorBasic => "operator_basic",
            AuthFailure::OperatorBearer => "operator_bearer",
            AuthFailure::OperatorMalformed => "operator_malformed",
        }
    }

    /// The kind of a digest failure from its fail2ban `reason=`.
    pub fn of_digest_reason(reason: &str) -> AuthFailure {
        match reason {
            "bad_password" => AuthFailure::DigestBadResponse,
            "unknown_user" => AuthFailure::DigestUnknownUser,
            "replay" => AuthFailure::DigestReplay,
            "bad_nonce" => AuthFailure::DigestBadNonce,
            _ => AuthFailure::DigestMalformed,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    surface: &'static str,
    action: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SurfaceLabels {
    surface: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<SurfaceLabels, Histogram, fn() -> Histogram>,
    auth_failures: Family<KindLabels, Counter>,
    journal_written: Counter,
    journal_deleted: Counter,
    pool_size: Gauge,
    pool_idle: Gauge,
}

impl Metrics {
    pub fn new(pool_max: u32) -> Metrics {
        let mut registry = Registry::with_prefix("sipsettings");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by surface, action (settings action name or route template), method and status",
            requests.clone(),
        );
        let latency = Family::<SurfaceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time until the response head was ready, by surface",
            Unit::Seconds,
            latency.clone(),
        );
        let auth_failures = Family::<KindLabels, Counter>::default();
        // Present from the start, so alerts on rate() see a zero rather than no series.
        for k in AuthFailure::ALL {
            let _ = auth_failures.get_or_create(&KindLabels { kind: k.as_str() });
        }
        registry.register(
            "auth_failures",
            "Failed authentications, by kind",
            auth_failures.clone(),
        );
        let journal_written = Counter::default();
        registry.register(
            "journal_entries_written",
            "Journal entries stored by put_journal_entries",
            journal_written.clone(),
        );
        let journal_deleted = Counter::default();
        registry.register(
            "journal_entries_deleted",
            "Journal entries deleted by put_journal_entries and delete_journal_entries",
            journal_deleted.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "store_pool_connections",
            "Open database connections (in use and idle)",
            pool_size.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "store_pool_idle_connections",
            "Idle database connections",
            pool_idle.clone(),
        );
        let max: Gauge = Gauge::default();
        max.set(i64::from(pool_max));
        registry.register(
            "store_pool_max_connections",
            "Configured largest number of database connections",
            max.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            auth_failures,
            journal_written,
            journal_deleted,
            pool_size,
            pool_idle,
        }
    }

    /// Counts one answered request.
    pub fn request(
        &self,
        surface: Surface,
        action: &str,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        let surface = surface.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                surface,
                action: action.to_owned(),
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&SurfaceLabels { surface })
            .observe(seconds);
    }

    pub fn auth_failure(&self, kind: AuthFailure) {
        self.auth_failures
            .get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .inc();
    }

    pub fn journal_written(&self, n: u64) {
        self.journal_written.inc_by(n);
    }

    pub fn journal_deleted(&self, n: u64) {
        self.journal_deleted.inc_by(n);
    }

    /// The text exposition, with the pool gauges as read by the caller at scrape time.
    pub fn render(&self, pool_size: u32, pool_idle: usize) -> Result<String, std::fmt::Error> {
        self.pool_size.set(i64::from(pool_size));
        self.pool_idle
            .set(i64::try_from(pool_idle).unwrap_or(i64::MAX));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surfaces() {
        for (p, s) in [
            ("/settings.phtml", Surface::Settings),
            ("/sip_settings.phtml", Surface::Settings),
            ("/sip_settings_digest.phtml", Surface::Settings),
            ("/api/v1/accounts/7", Surface::Api),
            ("/api/v1", Surface::Api),
            ("/api/v10", Surface::Other),
            ("/api/rest/public/operator/accounts", Surface::JsonApi),
            ("/sip", Surface::Sip),
            ("/sip/accounts", Surface::Sip),
            ("/sipx", Surface::Other),
            ("/health", Surface::Health),
            ("/ready", Surface::Health),
            ("/metrics", Surface::Other),
            ("/", Surface::Other),
        ] {
            assert_eq!(Surface::of_path(p), s, "{p}");
        }
    }

    #[test]
    fn renders_text_format() {
        let m = Metrics::new(4);
        m.request(Surface::Api, "/api/v1/accounts/{id}", "GET", 200, 0.003);
        m.auth_failure(AuthFailure::DigestReplay);
        m.journal_written(3);
        let text = m.render(2, 1).unwrap();
        assert!(text.contains(
            "sipsettings_http_requests_total{surface=\"api\",action=\"/api/v1/accounts/{id}\",method=\"GET\",status=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("sipsettings_auth_failures_total{kind=\"digest_replay\"} 1"));
        assert!(text.contains("sipsettings_auth_failures_total{kind=\"throttled\"} 0"));
        assert!(text.contains("sipsettings_journal_entries_written_total 3"));
        assert!(text.contains("sipsettings_store_pool_max_connections 4"));
        assert!(text.contains("sipsettings_store_pool_connections 2"));
        assert!(text.contains("sipsettings_store_pool_idle_connections 1"));
        assert!(
            text.contains(
                "sipsettings_http_request_duration_seconds_bucket{le=\"0.005\",surface=\"api\"} 1"
            ) || text.contains(
                "sipsettings_http_request_duration_seconds_bucket{surface=\"api\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
    }
}
