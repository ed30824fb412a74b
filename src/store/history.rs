//! Calls, registrations and the prepaid balance: what the SIP platform feeds us.

use sqlx::Row;

use super::{Store, WriteTx};
use crate::domain::{BalanceEntry, CallRecord, Registration};

macro_rules! call_select {
    () => {
        "SELECT id, account_id, direction, remote_party, display_name, start_time, stop_time, \
         duration, status, price, session_id, from_tag, to_tag, proxy_ip, media FROM calls "
    };
}

/// One move of the prepaid balance.
#[derive(Clone, Copy, Debug)]
pub struct BalanceChange<'a> {
    /// Positive credits, negative debits (ten-thousandths).
    pub value: i64,
    pub action: &'a str,
    pub description: &'a str,
    pub session: Option<&'a str>,
    pub at: i64,
}

/// Totals of a period's placed calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub calls: i64,
    pub duration: i64,
    pub price: i64,
}

impl Store {
    /// Finished calls of one direction since `since`, newest first.
    pub async fn finished_calls(
        &self,
        account_id: i64,
        direction: &str,
        since: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<CallRecord>> {
        sqlx::query_as(concat!(
            call_select!(),
            "WHERE account_id = $1 AND direction = $2 AND start_time >= $3 \
             AND stop_time IS NOT NULL ORDER BY start_time DESC, id DESC LIMIT $4"
        ))
        .bind(account_id)
        .bind(direction)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn active_calls(&self, account_id: i64) -> sqlx::Result<Vec<CallRecord>> {
        sqlx::query_as(concat!(
            call_select!(),
            "WHERE account_id = $1 AND stop_time IS NULL ORDER BY start_time, id LIMIT 100"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn placed_usage(&self, account_id: i64, since: i64) -> sqlx::Result<Usage> {
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(duration), 0) AS BIGINT), \
             CAST(COALESCE(SUM(price), 0) AS BIGINT) FROM calls \
             WHERE account_id = $1 AND direction = 'placed' AND start_time >= $2 \
             AND stop_time IS NOT NULL",
        )
        .bind(account_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(Usage {
            calls: row.try_get(0)?,
            duration: row.try_get(1)?,
            price: row.try_get(2)?,
        })
    }

    /// Stores a call record in one statement; `true` when it was stored: a new call, or the
    /// final record (with a stop time) of a call stored while in progress. `false` when the
    /// same (session, from tag, direction) is already there and nothing changed.
    pub async fn insert_call(&self, tx: &mut WriteTx, c: &CallRecord) -> sqlx::Result<bool> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO calls (account_id, direction, remote_party, display_name, start_time, \
             stop_time, duration, status, price, session_id, from_tag, to_tag, proxy_ip, media) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (account_id, session_id, from_tag, direction) DO UPDATE SET \
             remote_party = excluded.remote_party, display_name = excluded.display_name, \
             start_time = excluded.start_time, stop_time = excluded.stop_time, \
             duration = excluded.duration, status = excluded.status, price = excluded.price, \
             to_tag = excluded.to_tag, proxy_ip = excluded.proxy_ip, media = excluded.media \
             WHERE calls.stop_time IS NULL AND excluded.stop_time IS NOT NULL RETURNING id",
        )
        .bind(c.account_id)
        .bind(&c.direction)
        .bind(&c.remote_party)
        .bind(&c.display_name)
        .bind(c.start_time)
        .bind(c.stop_time)
        .bind(c.duration)
        .bind(&c.status)
        .bind(c.price)
        .bind(&c.session_id)
        .bind(&c.from_tag)
        .bind(&c.to_tag)
        .bind(&c.proxy_ip)
        .bind(&c.media)
        .fetch_optional(tx.conn())
        .await?;
        Ok(id.is_some())
    }

    /// Removes one registration; `false` when there was none.
    pub async fn delete_registration(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        contact: &str,
    ) -> sqlx::Result<bool> {
        let n = sqlx::query("DELETE FROM registrations WHERE account_id = $1 AND contact = $2")
            .bind(account_id)
            .bind(contact)
            .execute(tx.conn())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    pub async fn live_registrations(
        &self,
        account_id: i64,
        now: i64,
    ) -> sqlx::Result<Vec<Registration>> {
        sqlx::query_as(
            "SELECT contact, public_contact, expires_at, user_agent, transport, instance_id \
             FROM registrations WHERE account_id = $1 AND expires_at > $2 ORDER BY expires_at DESC, id",
        )
        .bind(account_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn upsert_registration(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        r: &Registration,
        now: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO registrations (account_id, contact, public_contact, expires_at, user_agent, \
             transport, instance_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (account_id, contact) DO UPDATE SET public_contact = excluded.public_contact, \
             expires_at = excluded.expires_at, user_agent = excluded.user_agent, \
             transport = excluded.transport, instance_id = excluded.instance_id, \
             updated_at = excluded.updated_at",
        )
        .bind(account_id)
        .bind(&r.contact)
        .bind(r.public_contact.as_deref())
        .bind(r.expires_at)
        .bind(r.user_agent.as_deref())
        .bind(r.transport.as_deref())
        .bind(r.instance_id.as_deref())
        .bind(now)
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    pub async fn balance_history(
        &self,
        account_id: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<BalanceEntry>> {
        sqlx::query_as(
            "SELECT id, created_at, action, description, value, balance, session \
             FROM balance_history WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Adds `value` to the balance atomically and records the move; returns the new balance.
    pub async fn apply_balance(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        m: &BalanceChange<'_>,
    ) -> sqlx::Result<i64> {
        tx.touch(account_id);
        let BalanceChange {
            value,
            action,
            description,
            session,
            at: now,
        } = *m;
        // A single UPDATE … RETURNING keeps concurrent debits from losing updates.
        let balance: i64 = sqlx::query_scalar(
            "UPDATE accounts SET balance = balance + $2, updated_at = $3 WHERE id = $1 RETURNING balance",
        )
        .bind(account_id)
        .bind(value)
        .bind(now)
        .fetch_one(tx.conn())
        .await?;
        sqlx::query(
            "INSERT INTO balance_history (account_id, created_at, action, description, value, balance, session) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(account_id)
        .bind(now)
        .bind(action)
        .bind(description)
        .bind(value)
        .bind(balance)
        .bind(session)
        .execute(tx.conn())
        .await?;
        Ok(balance)
    }
}
