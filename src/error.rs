//! Domain errors: what a service can answer instead of a result. Each wire surface maps these
//! to its own format in one place (`http::settings::error_response`).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    /// The request is wrong (bad value, limit reached); the message is for the user.
    #[error("{0}")]
    Invalid(String),
    /// The object does not exist (or is outside the caller's scope).
    #[error("{0}")]
    NotFound(String),
    /// The request collides with existing data.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The store cannot be reached right now; retrying later may work.
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A bug or an unexpected store answer. Logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            sqlx::Error::Database(ref db) if is_unavailable_code(db.code().as_deref()) => {
                Self::Unavailable(e)
            }
            // PostgreSQL class 22 (data exception), e.g. a NUL byte in text.
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| c.starts_with("22")) => {
                Self::Invalid("Error: the request contains characters that cannot be stored".into())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

/// SQLite busy/locked, PostgreSQL shutdown / connection / deadlock classes: transient.
fn is_unavailable_code(code: Option<&str>) -> bool {
    match code {
        Some(c) => {
            c == "5"
                || c == "6"
                || c == "517"
                || c == "261"
                || c.starts_with("08")
                || c.starts_with("57P")
                || c == "53300"
                // Deadlock / serialization failure: the transaction was rolled back whole,
                // so the client may simply retry.
                || c == "40P01"
                || c == "40001"
        }
        None => false,
    }
}

/// True when a database error is a unique-constraint violation (SQLite 2067/1555, PostgreSQL 23505).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                Some("23505") | Some("2067") | Some("1555")
            )
        }
        _ => false,
    }
}

impl From<anyhow::Error> for ServiceError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::is_unavailable_code;

    #[test]
    fn transient_codes() {
        for c in ["5", "08006", "57P01", "53300", "40P01", "40001"] {
            assert!(is_unavailable_code(Some(c)), "{c}");
        }
        for c in ["23505", "22021", "42601"] {
            assert!(!is_unavailable_code(Some(c)), "{c}");
        }
        assert!(!is_unavailable_code(None));
    }
}
