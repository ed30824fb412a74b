//! Client certificates issued by the built-in CA (`client_certs`).

use super::{Store, WriteTx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClientCertRow {
    pub id: i64,
    pub serial: String,
    pub account_id: i64,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub cert_pem: String,
    /// Sealed private key; never logged.
    pub key_sealed: String,
    pub created_at: i64,
}

/// One line of `cert list`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClientCertListing {
    pub serial: String,
    pub username: String,
    pub domain: String,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

/// A new row; `key_sealed` is already sealed.
pub struct NewClientCert<'a> {
    pub serial: &'a str,
    pub account_id: i64,
    pub not_before: i64,
    pub not_after: i64,
    pub cert_pem: &'a str,
    pub key_sealed: &'a str,
}

macro_rules! cert_select {
    () => {
        "SELECT id, serial, account_id, not_before, not_after, revoked_at, cert_pem, \
         key_sealed, created_at FROM client_certs "
    };
}

macro_rules! listing_select {
    () => {
        "SELECT c.serial, a.username, d.name AS domain, c.not_before, c.not_after, \
         c.revoked_at, c.created_at FROM client_certs c \
         JOIN accounts a ON a.id = c.account_id JOIN domains d ON d.id = a.domain_id "
    };
}

impl Store {
    pub async fn insert_client_cert(
        &self,
        tx: &mut WriteTx,
        c: &NewClientCert<'_>,
        now: i64,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO client_certs (serial, account_id, not_before, not_after, cert_pem, \
             key_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(c.serial)
        .bind(c.account_id)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(c.cert_pem)
        .bind(c.key_sealed)
        .bind(now)
        .fetch_one(tx.conn())
        .await
    }

    pub async fn client_cert_by_serial(&self, serial: &str) -> sqlx::Result<Option<ClientCertRow>> {
        sqlx::query_as(concat!(cert_select!(), "WHERE serial = $1"))
            .bind(serial)
            .fetch_optional(&self.pool)
            .await
    }

    /// The account id of a certificate that is known, not revoked and valid at `now`: the
    /// per-request check of certificate authentication, so one indexed row of one table.
    pub async fn valid_client_cert_account(
        &self,
        serial: &str,
        now: i64,
    ) -> sqlx::Result<Option<i64>> {
        const SQL: &str = "SELECT account_id FROM client_certs \
                           WHERE serial = $1 AND revoked_at IS NULL AND not_after >= $2";
        // Off the pool: see `hot` (this read is on every certificate-authenticated request).
        if let Some(direct) = &self.direct {
            use rusqlite::OptionalExtension;
            let found = direct.try_run(|c| {
                c.prepare_cached(SQL)?
                    .query_row((serial, now), |r| r.get::<_, i64>(0))
                    .optional()
            });
            if let Some(found) = found {
                return Ok(found);
            }
        }
        self.hot
            .run(&self.pool, async |conn| {
                sqlx::query_scalar(SQL)
                    .bind(serial)
                    .bind(now)
                    .fetch_optional(conn)
                    .await
            })
            .await
    }

    /// The newest certificate of the account that is not revoked and valid after `until`.
    pub async fn active_client_cert(
        &self,
        account_id: i64,
        until: i64,
    ) -> sqlx::Result<Option<ClientCertRow>> {
        sqlx::query_as(concat!(
            cert_select!(),
            "WHERE account_id = $1 AND revoked_at IS NULL AND not_after > $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(account_id)
        .bind(until)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn list_client_certs(
        &self,
        account_id: Option<i64>,
    ) -> sqlx::Result<Vec<ClientCertListing>> {
        match account_id {
            Some(id) => {
                sqlx::query_as(concat!(
                    listing_select!(),
                    "WHERE c.account_id = $1 ORDER BY c.created_at, c.id"
                ))
                .bind(id)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query_as(concat!(
                    listing_select!(),
                    "ORDER BY d.name, a.username, c.created_at, c.id"
                ))
                .fetch_all(&self.pool)
                .await
            }
        }
    }

    /// Revokes one serial (if not revoked yet); returns the account id when it changed.
    pub async fn revoke_client_cert(
        &self,
        tx: &mut WriteTx,
        serial: &str,
        now: i64,
    ) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar(
            "UPDATE client_certs SET revoked_at = $1 WHERE serial = $2 AND revoked_at IS NULL \
             RETURNING account_id",
        )
        .bind(now)
        .bind(serial)
        .fetch_optional(tx.conn())
        .await
    }

    /// Revokes every certificate of an account; returns the serials revoked now.
    pub async fn revoke_account_client_certs(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        now: i64,
    ) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar(
            "UPDATE client_certs SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL \
             RETURNING serial",
        )
        .bind(now)
        .bind(account_id)
        .fetch_all(tx.conn())
        .await
    }

    /// (serial, revoked_at) of revoked certificates that have not expired yet (the CRL).
    pub async fn revoked_client_certs(&self, now: i64) -> sqlx::Result<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT serial, revoked_at FROM client_certs \
             WHERE revoked_at IS NOT NULL AND not_after > $1 ORDER BY revoked_at, id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }
}
