//! Resellers, customers, operator users and API tokens.

use super::{Store, WriteTx};
use crate::domain::{ApiToken, Customer, OperatorRow, Reseller};

/// Which accounts a listing may show (already resolved from the caller's scope).
#[derive(Clone, Debug)]
pub enum CustomerFilter {
    All,
    /// Customers whose reseller is one of these.
    Resellers(Vec<i64>),
    Customer(i64),
}

impl Store {
    // ---- resellers ----

    pub async fn insert_reseller(
        &self,
        tx: &mut WriteTx,
        name: &str,
        parent: Option<i64>,
        now: i64,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO resellers (name, parent_id, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
        )
        .bind(name)
        .bind(parent)
        .bind(now)
        .fetch_one(tx.conn())
        .await
    }

    pub async fn list_resellers(&self) -> sqlx::Result<Vec<Reseller>> {
        sqlx::query_as(
            "SELECT id, name, parent_id, created_at, updated_at FROM resellers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
    }

    pub async fn reseller(&self, id: i64) -> sqlx::Result<Option<Reseller>> {
        sqlx::query_as(
            "SELECT id, name, parent_id, created_at, updated_at FROM resellers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn update_reseller(
        &self,
        tx: &mut WriteTx,
        id: i64,
        name: &str,
        now: i64,
    ) -> sqlx::Result<u64> {
        Ok(
            sqlx::query("UPDATE resellers SET name = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(name)
                .bind(now)
                .execute(tx.conn())
                .await?
                .rows_affected(),
        )
    }

    /// Children (resellers and customers) and operators of a reseller, to refuse deleting it.
    pub async fn reseller_dependents(&self, tx: &mut WriteTx, id: i64) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM resellers WHERE parent_id = $1) \
             + (SELECT COUNT(*) FROM customers WHERE reseller_id = $1) \
             + (SELECT COUNT(*) FROM operators WHERE reseller_id = $1)",
        )
        .bind(id)
        .fetch_one(tx.conn())
        .await
    }

    pub async fn delete_reseller(&self, tx: &mut WriteTx, id: i64) -> sqlx::Result<u64> {
        Ok(sqlx::query("DELETE FROM resellers WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected())
    }

    // ---- customers ----

    pub async fn insert_customer(
        &self,
        tx: &mut WriteTx,
        name: &str,
        reseller: Option<i64>,
        limit: Option<i64>,
        now: i64,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO customers (name, reseller_id, sip_account_limit, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(name)
        .bind(reseller)
        .bind(limit)
        .bind(now)
        .fetch_one(tx.conn())
        .await
    }

    pub async fn customer(&self, id: i64) -> sqlx::Result<Option<Customer>> {
        sqlx::query_as(
            "SELECT id, name, reseller_id, sip_account_limit, created_at, updated_at FROM customers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn list_customers(&self) -> sqlx::Result<Vec<Customer>> {
        sqlx::query_as(
            "SELECT id, name, reseller_id, sip_account_limit, created_at, updated_at FROM customers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
    }

    pub async fn update_customer(
        &self,
        tx: &mut WriteTx,
        c: &Customer,
        now: i64,
    ) -> sqlx::Result<u64> {
        Ok(sqlx::query(
            "UPDATE customers SET name = $2, sip_account_limit = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(c.id)
        .bind(&c.name)
        .bind(c.sip_account_limit)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected())
    }

    /// Locks the customer row (serialises account creation against its limit) and counts its accounts.
    pub async fn lock_customer_count_accounts(
        &self,
        tx: &mut WriteTx,
        id: i64,
    ) -> sqlx::Result<Option<(Option<i64>, i64)>> {
        let limit: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE customers SET updated_at = updated_at WHERE id = $1 RETURNING sip_account_limit",
        )
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
        let Some(limit) = limit else { return Ok(None) };
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE customer_id = $1")
            .bind(id)
            .fetch_one(tx.conn())
            .await?;
        Ok(Some((limit, n)))
    }

    pub async fn customer_dependents(&self, tx: &mut WriteTx, id: i64) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM accounts WHERE customer_id = $1) \
             + (SELECT COUNT(*) FROM operators WHERE customer_id = $1)",
        )
        .bind(id)
        .fetch_one(tx.conn())
        .await
    }

    pub async fn delete_customer(&self, tx: &mut WriteTx, id: i64) -> sqlx::Result<u64> {
        Ok(sqlx::query("DELETE FROM customers WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected())
    }

    // ---- accounts by tenancy ----

    pub async fn set_account_customer(
        &self,
        tx: &mut WriteTx,
        id: i64,
        customer: i64,
        now: i64,
    ) -> sqlx::Result<u64> {
        tx.touch(id);
        Ok(
            sqlx::query("UPDATE accounts SET customer_id = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(customer)
                .bind(now)
                .execute(tx.conn())
                .await?
                .rows_affected(),
        )
    }

    // ---- operators ----

    pub async fn insert_operator(&self, tx: &mut WriteTx, o: &OperatorRow) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO operators (name, password_hash, role, customer_id, reseller_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(&o.name)
        .bind(o.password_hash.as_deref())
        .bind(&o.role)
        .bind(o.customer_id)
        .bind(o.reseller_id)
        .bind(o.created_at)
        .fetch_one(tx.conn())
        .await
    }

    pub async fn operator_by_name(&self, name: &str) -> sqlx::Result<Option<OperatorRow>> {
        sqlx::query_as(
            "SELECT id, name, password_hash, role, customer_id, reseller_id, created_at, updated_at \
             FROM operators WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn operator(&self, id: i64) -> sqlx::Result<Option<OperatorRow>> {
        sqlx::query_as(
            "SELECT id, name, password_hash, role, customer_id, reseller_id, created_at, updated_at \
             FROM operators WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn list_operators(&self) -> sqlx::Result<Vec<OperatorRow>> {
        sqlx::query_as(
            "SELECT id, name, password_hash, role, customer_id, reseller_id, created_at, updated_at \
             FROM operators ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
    }

    pub async fn set_operator_password(
        &self,
        tx: &mut WriteTx,
        id: i64,
        hash: &str,
        now: i64,
    ) -> sqlx::Result<u64> {
        Ok(
            sqlx::query("UPDATE operators SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(hash)
                .bind(now)
                .execute(tx.conn())
                .await?
                .rows_affected(),
        )
    }

    pub async fn delete_operator(&self, tx: &mut WriteTx, id: i64) -> sqlx::Result<u64> {
        Ok(sqlx::query("DELETE FROM operators WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected())
    }

    // ---- tokens ----

    pub async fn insert_token(
        &self,
        tx: &mut WriteTx,
        operator_id: i64,
        name: &str,
        hash: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO api_tokens (operator_id, name, token_hash, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(operator_id)
        .bind(name)
        .bind(hash)
        .bind(expires_at)
        .bind(now)
        .fetch_one(tx.conn())
        .await
    }

    /// The operator owning a live (unrevoked, unexpired) token with this hash.
    pub async fn operator_by_token(
        &self,
        hash: &str,
        now: i64,
    ) -> sqlx::Result<Option<OperatorRow>> {
        sqlx::query_as(
            "SELECT o.id, o.name, o.password_hash, o.role, o.customer_id, o.reseller_id, \
             o.created_at, o.updated_at FROM api_tokens t JOIN operators o ON o.id = t.operator_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn tokens_of(&self, operator_id: i64) -> sqlx::Result<Vec<ApiToken>> {
        sqlx::query_as(
            "SELECT id, operator_id, name, expires_at, revoked_at, created_at FROM api_tokens \
             WHERE operator_id = $1 ORDER BY id",
        )
        .bind(operator_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn token(&self, id: i64) -> sqlx::Result<Option<ApiToken>> {
        sqlx::query_as(
            "SELECT id, operator_id, name, expires_at, revoked_at, created_at FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn revoke_token(&self, tx: &mut WriteTx, id: i64, now: i64) -> sqlx::Result<u64> {
        Ok(sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected())
    }
}
