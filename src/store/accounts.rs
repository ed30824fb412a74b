//! Domains, accounts, aliases and ENUM numbers.

use sqlx::Row;

use super::{Store, WriteTx};
use crate::crypto::Ha1Set;
use crate::domain::{Account, Domain, NewAccount};

macro_rules! account_columns {
    () => {
        "SELECT a.id, a.domain_id, a.username, d.name AS domain, a.ha1_md5, a.ha1_sha256, \
         a.ha1_md5_full, a.ha1_sha256_full, \
         a.first_name, a.last_name, a.email, a.timezone, a.mobile_number, a.pstn_caller_id, \
         a.no_answer_timeout, a.quick_dial, a.blocked, a.privacy, a.balance, a.fwd_func, \
         a.fwd_fnol, a.fwd_fbus, a.fwd_fnoa, a.fwd_funv, a.temp_groups, a.temp_expires_at, \
         a.created_at, a.customer_id, a.updated_at"
    };
}

macro_rules! account_select {
    () => {
        concat!(
            account_columns!(),
            " FROM accounts a JOIN domains d ON d.id = a.domain_id "
        )
    };
}

/// What an account is created with besides its fields: the public id of the operator
/// surfaces and the sealed SIP password.
pub struct NewAccountSecrets<'a> {
    pub public_id: &'a str,
    pub password_sealed: Option<&'a str>,
}

/// Identity fields an operator may change; `None` keeps the value, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct AccountUpdate {
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub timezone: Option<Option<String>>,
    pub mobile_number: Option<Option<String>>,
    pub pstn_caller_id: Option<Option<String>>,
    pub quick_dial: Option<Option<String>>,
    pub no_answer_timeout: Option<i64>,
    pub blocked: Option<bool>,
    pub privacy: Option<bool>,
}

impl AccountUpdate {
    /// Whether the identity columns change (`blocked`/`privacy` have their own statements).
    pub fn changes_identity(&self) -> bool {
        self.first_name.is_some()
            || self.last_name.is_some()
            || self.email.is_some()
            || self.timezone.is_some()
            || self.mobile_number.is_some()
            || self.pstn_caller_id.is_some()
            || self.quick_dial.is_some()
            || self.no_answer_timeout.is_some()
    }
}

impl Store {
    // ---- domains ----

    pub async fn insert_domain(&self, tx: &mut WriteTx, name: &str, now: i64) -> sqlx::Result<i64> {
        sqlx::query_scalar("INSERT INTO domains (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(now)
            .fetch_one(tx.conn())
            .await
    }

    pub async fn list_domains(&self) -> sqlx::Result<Vec<Domain>> {
        sqlx::query_as("SELECT id, name, created_at FROM domains ORDER BY name")
            .fetch_all(&self.pool)
            .await
    }

    pub async fn domain_by_name(&self, name: &str) -> sqlx::Result<Option<Domain>> {
        sqlx::query_as("SELECT id, name, created_at FROM domains WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn domain_exists(&self, name: &str) -> sqlx::Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    pub async fn count_domain_accounts(
        &self,
        tx: &mut WriteTx,
        domain_id: i64,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE domain_id = $1")
            .bind(domain_id)
            .fetch_one(tx.conn())
            .await
    }

    pub async fn delete_domain(&self, tx: &mut WriteTx, domain_id: i64) -> sqlx::Result<u64> {
        sqlx::query("DELETE FROM aliases WHERE domain_id = $1")
            .bind(domain_id)
            .execute(tx.conn())
            .await?;
        Ok(sqlx::query("DELETE FROM domains WHERE id = $1")
            .bind(domain_id)
            .execute(tx.conn())
            .await?
            .rows_affected())
    }

    // ---- accounts ----

    pub async fn account_by_address(
        &self,
        username: &str,
        domain: &str,
    ) -> sqlx::Result<Option<Account>> {
        sqlx::query_as(concat!(
            account_select!(),
            "WHERE a.username = $1 AND d.name = $2"
        ))
        .bind(username)
        .bind(domain)
        .fetch_optional(&self.pool)
        .await
    }

    /// Account ids of many `(user, domain)` addresses at once, read inside `tx`; addresses
    /// without an account are absent from the answer.
    pub async fn account_ids_by_address(
        &self,
        tx: &mut WriteTx,
        addresses: &[(String, String)],
    ) -> sqlx::Result<Vec<((String, String), i64)>> {
        // A fixed number of markers (the last user name repeated) keeps one prepared statement.
        const CHUNK: usize = 100;
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let markers: Vec<String> = (1..=CHUNK).map(|i| format!("${i}")).collect();
            format!(
                "SELECT a.id, a.username, d.name FROM accounts a \
                 JOIN domains d ON d.id = a.domain_id WHERE a.username IN ({})",
                markers.join(", ")
            )
        });
        let wanted: std::collections::HashSet<&(String, String)> = addresses.iter().collect();
        let mut users: Vec<&str> = addresses.iter().map(|(u, _)| u.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let mut out = Vec::new();
        for chunk in users.chunks(CHUNK) {
            let mut q = sqlx::query(SQL.as_str());
            for i in 0..CHUNK {
                q = q.bind(chunk.get(i).or(chunk.last()).copied().unwrap_or_default());
            }
            for row in q.fetch_all(tx.conn()).await? {
                let key: (String, String) = (row.try_get(1)?, row.try_get(2)?);
                if wanted.contains(&key) {
                    out.push((key, row.try_get(0)?));
                }
            }
        }
        Ok(out)
    }

    pub async fn account_by_id(&self, id: i64) -> sqlx::Result<Option<Account>> {
        sqlx::query_as(concat!(account_select!(), "WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn account_by_id_tx(
        &self,
        tx: &mut WriteTx,
        id: i64,
    ) -> sqlx::Result<Option<Account>> {
        sqlx::query_as(concat!(account_select!(), "WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(tx.conn())
            .await
    }

    pub async fn list_accounts(&self, domain: Option<&str>) -> sqlx::Result<Vec<Account>> {
        match domain {
            Some(d) => {
                sqlx::query_as(concat!(
                    account_select!(),
                    "WHERE d.name = $1 ORDER BY d.name, a.username"
                ))
                .bind(d)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query_as(concat!(account_select!(), "ORDER BY d.name, a.username"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
    }

    pub async fn count_accounts(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await
    }

    pub async fn insert_account(
        &self,
        tx: &mut WriteTx,
        domain_id: i64,
        a: &NewAccount,
        ha1: &Ha1Set,
        secrets: &NewAccountSecrets<'_>,
        now: i64,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO accounts (domain_id, username, ha1_md5, ha1_sha256, ha1_md5_full, \
             ha1_sha256_full, first_name, last_name, email, timezone, mobile_number, \
             pstn_caller_id, created_at, updated_at, customer_id, public_id, password_sealed) \
             VALUES ($1, $2, $3, $4, $12, $13, $5, $6, $7, $8, $9, $10, $11, $11, $14, $15, $16) \
             RETURNING id",
        )
        .bind(domain_id)
        .bind(&a.username)
        .bind(&ha1.md5)
        .bind(&ha1.sha256)
        .bind(a.first_name.as_deref())
        .bind(a.last_name.as_deref())
        .bind(a.email.as_deref())
        .bind(a.timezone.as_deref())
        .bind(a.mobile_number.as_deref())
        .bind(a.pstn_caller_id.as_deref())
        .bind(now)
        .bind(&ha1.md5_full)
        .bind(&ha1.sha256_full)
        .bind(a.customer_id.unwrap_or(1))
        .bind(secrets.public_id)
        .bind(secrets.password_sealed)
        .fetch_one(tx.conn())
        .await
    }

    pub async fn update_account(
        &self,
        tx: &mut WriteTx,
        id: i64,
        u: &AccountUpdate,
        now: i64,
    ) -> sqlx::Result<u64> {
        tx.touch(id);
        // Each optional field is passed as (present flag, value) so one static statement
        // serves every combination.
        fn flag<T>(o: &Option<T>) -> i64 {
            i64::from(o.is_some())
        }
        Ok(sqlx::query(
            "UPDATE accounts SET \
             first_name = CASE WHEN $2 = 1 THEN $3 ELSE first_name END, \
             last_name = CASE WHEN $4 = 1 THEN $5 ELSE last_name END, \
             email = CASE WHEN $6 = 1 THEN $7 ELSE email END, \
             timezone = CASE WHEN $8 = 1 THEN $9 ELSE timezone END, \
             mobile_number = CASE WHEN $10 = 1 THEN $11 ELSE mobile_number END, \
             pstn_caller_id = CASE WHEN $12 = 1 THEN $13 ELSE pstn_caller_id END, \
             quick_dial = CASE WHEN $14 = 1 THEN $15 ELSE quick_dial END, \
             no_answer_timeout = CASE WHEN $16 = 1 THEN $17 ELSE no_answer_timeout END, \
             updated_at = $18 WHERE id = $1",
        )
        .bind(id)
        .bind(flag(&u.first_name))
        .bind(u.first_name.clone().flatten())
        .bind(flag(&u.last_name))
        .bind(u.last_name.clone().flatten())
        .bind(flag(&u.email))
        .bind(u.email.clone().flatten())
        .bind(flag(&u.timezone))
        .bind(u.timezone.clone().flatten())
        .bind(flag(&u.mobile_number))
        .bind(u.mobile_number.clone().flatten())
        .bind(flag(&u.pstn_caller_id))
        .bind(u.pstn_caller_id.clone().flatten())
        .bind(flag(&u.quick_dial))
        .bind(u.quick_dial.clone().flatten())
        .bind(flag(&u.no_answer_timeout))
        .bind(u.no_answer_timeout.unwrap_or(0))
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected())
    }

    pub async fn set_ha1(
        &self,
        tx: &mut WriteTx,
        id: i64,
        ha1: &Ha1Set,
        password_sealed: Option<&str>,
        now: i64,
    ) -> sqlx::Result<u64> {
        tx.touch(id);
        Ok(sqlx::query(
            "UPDATE accounts SET ha1_md5 = $2, ha1_sha256 = $3, ha1_md5_full = $4, \
             ha1_sha256_full = $5, updated_at = $6, password_sealed = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(&ha1.md5)
        .bind(&ha1.sha256)
        .bind(&ha1.md5_full)
        .bind(&ha1.sha256_full)
        .bind(now)
        .bind(password_sealed)
        .execute(tx.conn())
        .await?
        .rows_affected())
    }

    pub async fn set_blocked(
        &self,
        tx: &mut WriteTx,
        id: i64,
        blocked: bool,
        now: i64,
    ) -> sqlx::Result<u64> {
        tx.touch(id);
        Ok(
            sqlx::query("UPDATE accounts SET blocked = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(i64::from(blocked))
                .bind(now)
                .execute(tx.conn())
                .await?
                .rows_affected(),
        )
    }

    pub async fn set_privacy(
        &self,
        tx: &mut WriteTx,
        id: i64,
        on: bool,
        now: i64,
    ) -> sqlx::Result<u64> {
        tx.touch(id);
        Ok(
            sqlx::query("UPDATE accounts SET privacy = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(i64::from(on))
                .bind(now)
                .execute(tx.conn())
                .await?
                .rows_affected(),
        )
    }

    pub async fn delete_account(&self, tx: &mut WriteTx, id: i64) -> sqlx::Result<u64> {
        tx.touch(id);
        Ok(sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected())
    }

    /// Whether `username` is taken in the domain by an account or an alias.
    pub async fn name_taken(
        &self,
        tx: &mut WriteTx,
        domain_id: i64,
        username: &str,
    ) -> sqlx::Result<Option<&'static str>> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM accounts WHERE domain_id = $1 AND username = $2), \
                    (SELECT COUNT(*) FROM aliases WHERE domain_id = $1 AND username = $2)",
        )
        .bind(domain_id)
        .bind(username)
        .fetch_one(tx.conn())
        .await?;
        let accounts: i64 = row.try_get(0)?;
        let aliases: i64 = row.try_get(1)?;
        Ok(if accounts > 0 {
            Some("account")
        } else if aliases > 0 {
            Some("alias")
        } else {
            None
        })
    }

    // ---- aliases ----

    pub async fn list_aliases(&self, account_id: i64, limit: i64) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT al.username || '@' || d.name FROM aliases al \
             JOIN domains d ON d.id = al.domain_id \
             WHERE al.account_id = $1 ORDER BY al.username LIMIT $2",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn count_aliases(&self, tx: &mut WriteTx, account_id: i64) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM aliases WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(tx.conn())
            .await
    }

    pub async fn insert_alias(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        domain_id: i64,
        username: &str,
        now: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO aliases (account_id, domain_id, username, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account_id)
        .bind(domain_id)
        .bind(username)
        .bind(now)
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    pub async fn delete_alias(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        username: &str,
    ) -> sqlx::Result<u64> {
        Ok(
            sqlx::query("DELETE FROM aliases WHERE account_id = $1 AND username = $2")
                .bind(account_id)
                .bind(username)
                .execute(tx.conn())
                .await?
                .rows_affected(),
        )
    }

    // ---- ENUM numbers ----

    pub async fn list_enum(&self, account_id: i64, limit: i64) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT number FROM enum_numbers WHERE account_id = $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn delete_enum(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        number: &str,
    ) -> sqlx::Result<u64> {
        Ok(
            sqlx::query("DELETE FROM enum_numbers WHERE account_id = $1 AND number = $2")
                .bind(account_id)
                .bind(number)
                .execute(tx.conn())
                .await?
                .rows_affected(),
        )
    }

    pub async fn delete_voicemail(&self, tx: &mut WriteTx, account_id: i64) -> sqlx::Result<u64> {
        Ok(
            sqlx::query("DELETE FROM voicemail_boxes WHERE account_id = $1")
                .bind(account_id)
                .execute(tx.conn())
                .await?
                .rows_affected(),
        )
    }

    pub async fn insert_enum(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        number: &str,
        now: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO enum_numbers (account_id, number, created_at) VALUES ($1, $2, $3)",
        )
        .bind(account_id)
        .bind(number)
        .bind(now)
        .execute(tx.conn())
        .await?;
        Ok(())
    }
}
