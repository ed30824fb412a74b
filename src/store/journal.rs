//! The replication journal. Per account, writers are serialised by a lock on the account row
//! (PostgreSQL) or by the single SQLite writer, so ids become visible in id order; readers take
//! the same lock, and hand out only entries stamped before the current second of the store's
//! clock, so a client polling with `after_id` or `after_timestamp` never skips an entry.

use sqlx::Row;

use super::{Backend, Store, WriteTx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JournalRow {
    pub id: i64,
    pub timestamp: i64,
    pub uuid: String,
    pub ip_address: String,
    pub data: String,
}

pub struct NewJournalEntry<'a> {
    pub account_id: i64,
    pub timestamp: i64,
    pub uuid: &'a str,
    pub ip: &'a str,
    pub client_id: Option<&'a str>,
    pub data: &'a str,
}

/// Filters of `get_journal_entries`.
#[derive(Clone, Debug, Default)]
pub struct JournalQuery<'a> {
    pub except_uuid: Option<&'a str>,
    pub after_id: i64,
    pub after_timestamp: i64,
    pub limit: i64,
}

impl Store {
    /// Locks the account's journal for writing; returns the entry count and the store's clock.
    pub async fn journal_lock_write(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
    ) -> sqlx::Result<(i64, i64)> {
        let count: i64 = sqlx::query_scalar(
            "UPDATE accounts SET journal_count = journal_count WHERE id = $1 RETURNING journal_count",
        )
        .bind(account_id)
        .fetch_one(tx.conn())
        .await?;
        Ok((count, self.store_clock(tx).await?))
    }

    /// Waits for in-flight writers of the account; returns the store's clock.
    pub async fn journal_lock_read(&self, tx: &mut WriteTx, account_id: i64) -> sqlx::Result<i64> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR SHARE")
                .bind(account_id)
                .fetch_optional(tx.conn())
                .await?;
        }
        self.store_clock(tx).await
    }

    /// One clock for all replicas: the database's (SQLite: this single process's).
    async fn store_clock(&self, tx: &mut WriteTx) -> sqlx::Result<i64> {
        match self.backend {
            Backend::Postgres => {
                sqlx::query_scalar(
                    "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)",
                )
                .fetch_one(tx.conn())
                .await
            }
            Backend::Sqlite => Ok(crate::util::now()),
        }
    }

    pub async fn journal_insert(
        &self,
        tx: &mut WriteTx,
        e: &NewJournalEntry<'_>,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO journal_entries (account_id, timestamp, uuid, ip_address, client_id, data) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(e.account_id)
        .bind(e.timestamp)
        .bind(e.uuid)
        .bind(e.ip)
        .bind(e.client_id)
        .bind(e.data)
        .fetch_one(tx.conn())
        .await
    }

    pub async fn journal_adjust_count(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        delta: i64,
    ) -> sqlx::Result<()> {
        sqlx::query("UPDATE accounts SET journal_count = journal_count + $2 WHERE id = $1")
            .bind(account_id)
            .bind(delta)
            .execute(tx.conn())
            .await?;
        Ok(())
    }

    /// Entries after the filters, stamped before `before`, in id order.
    pub async fn journal_entries(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        q: &JournalQuery<'_>,
        before: i64,
    ) -> sqlx::Result<Vec<JournalRow>> {
        // Two statements, so each keeps a plan on its own index: Blink polls by timestamp
        // (account_id, timestamp), other clients by id (account_id, id).
        let sql = if q.after_timestamp > 0 {
            "SELECT id, timestamp, uuid, ip_address, data FROM journal_entries \
             WHERE account_id = $1 AND timestamp > $3 AND timestamp < $4 AND id > $2 \
             AND ($5 = '' OR uuid <> $5) ORDER BY id LIMIT $6"
        } else {
            "SELECT id, timestamp, uuid, ip_address, data FROM journal_entries \
             WHERE account_id = $1 AND id > $2 AND timestamp < $4 AND $3 >= 0 \
             AND ($5 = '' OR uuid <> $5) ORDER BY id LIMIT $6"
        };
        sqlx::query_as(sql)
            .bind(account_id)
            .bind(q.after_id)
            .bind(q.after_timestamp)
            .bind(before)
            .bind(q.except_uuid.unwrap_or(""))
            .bind(q.limit)
            .fetch_all(tx.conn())
            .await
    }

    /// (id, timestamp) of every entry (except one device's), at most `limit`.
    pub async fn journal_summary(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        except_uuid: Option<&str>,
        before: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT id, timestamp FROM journal_entries WHERE account_id = $1 AND timestamp < $2 \
             AND ($3 = '' OR uuid <> $3) ORDER BY id LIMIT $4",
        )
        .bind(account_id)
        .bind(before)
        .bind(except_uuid.unwrap_or(""))
        .bind(limit)
        .fetch_all(tx.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Deletes the account's entries among `ids`; returns how many went.
    pub async fn journal_delete(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        ids: &[i64],
    ) -> sqlx::Result<u64> {
        let mut deleted = 0;
        for id in ids {
            deleted += sqlx::query("DELETE FROM journal_entries WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(*id)
                .execute(tx.conn())
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// One batch of retention: deletes up to `batch` entries older than `cutoff`.
    /// Returns how many were deleted (0 = done).
    pub async fn journal_prune_batch(
        &self,
        cutoff: i64,
        account_id: Option<i64>,
        batch: i64,
    ) -> sqlx::Result<u64> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            // Old entries have the lowest ids: walking the primary key stops early.
            "SELECT id, account_id FROM journal_entries WHERE timestamp < $1 \
             AND ($2 = 0 OR account_id = $2) ORDER BY id LIMIT $3",
        )
        .bind(cutoff)
        .bind(account_id.unwrap_or(0))
        .bind(batch)
        .fetch_all(tx.conn())
        .await?;
        let mut per_account: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let acct: i64 = r.try_get(1)?;
            per_account.entry(acct).or_default().push(id);
        }
        let mut total = 0;
        for (acct, ids) in per_account {
            // Same lock order as writers: account row first.
            self.journal_lock_write(&mut tx, acct).await?;
            let n = self.journal_delete(&mut tx, acct, &ids).await?;
            self.journal_adjust_count(&mut tx, acct, -(n as i64))
                .await?;
            total += n;
        }
        tx.commit().await?;
        Ok(total)
    }
}
