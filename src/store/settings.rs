//! Call forwarding, accept/reject rules, DND, phonebook groups and voicemail.

use super::{Store, WriteTx};
use crate::domain::{AcceptRule, VoicemailBox};

impl Store {
    /// Writes all five forwarding targets (the service merges changes first).
    pub async fn set_forwarding(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        targets: &[Option<String>; 5],
        now: i64,
    ) -> sqlx::Result<u64> {
        tx.touch(account_id);
        let [func, fnol, fbus, fnoa, funv] = targets;
        Ok(sqlx::query(
            "UPDATE accounts SET fwd_func = $2, fwd_fnol = $3, fwd_fbus = $4, fwd_fnoa = $5, \
             fwd_funv = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(account_id)
        .bind(func.as_deref())
        .bind(fnol.as_deref())
        .bind(fbus.as_deref())
        .bind(fnoa.as_deref())
        .bind(funv.as_deref())
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected())
    }

    pub async fn accept_rules(&self, account_id: i64) -> sqlx::Result<Vec<AcceptRule>> {
        sqlx::query_as(
            "SELECT days, start_time, stop_time, groups FROM accept_rules \
             WHERE account_id = $1 ORDER BY days",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn replace_accept_rules(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        rules: &[AcceptRule],
    ) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM accept_rules WHERE account_id = $1")
            .bind(account_id)
            .execute(tx.conn())
            .await?;
        for r in rules {
            sqlx::query(
                "INSERT INTO accept_rules (account_id, days, start_time, stop_time, groups) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(account_id)
            .bind(r.days)
            .bind(&r.start_time)
            .bind(&r.stop_time)
            .bind(&r.groups)
            .execute(tx.conn())
            .await?;
        }
        Ok(())
    }

    /// The temporary rule (DND when the groups are `["nobody"]`); `None` groups clear it.
    pub async fn set_temporary_rule(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        groups_json: Option<&str>,
        expires_at: Option<i64>,
        now: i64,
    ) -> sqlx::Result<u64> {
        tx.touch(account_id);
        Ok(sqlx::query(
            "UPDATE accounts SET temp_groups = $2, temp_expires_at = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(account_id)
        .bind(groups_json)
        .bind(expires_at)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected())
    }

    pub async fn reject_rules(&self, account_id: i64) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar("SELECT uri FROM reject_rules WHERE account_id = $1 ORDER BY id")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
    }

    pub async fn replace_reject_rules(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        uris: &[String],
    ) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM reject_rules WHERE account_id = $1")
            .bind(account_id)
            .execute(tx.conn())
            .await?;
        for uri in uris {
            sqlx::query("INSERT INTO reject_rules (account_id, uri) VALUES ($1, $2)")
                .bind(account_id)
                .bind(uri)
                .execute(tx.conn())
                .await?;
        }
        Ok(())
    }

    /// Phonebook groups that have at least one member.
    pub async fn phonebook_groups(&self, account_id: i64) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT group_name FROM phonebook_entries WHERE account_id = $1 ORDER BY group_name",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn insert_phonebook_entry(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        uri: &str,
        name: &str,
        group: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO phonebook_entries (account_id, uri, name, group_name) VALUES ($1, $2, $3, $4)",
        )
        .bind(account_id)
        .bind(uri)
        .bind(name)
        .bind(group)
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    pub async fn voicemail(&self, account_id: i64) -> sqlx::Result<Option<VoicemailBox>> {
        sqlx::query_as(
            "SELECT mailbox, password_sealed, name, email, info, delete_after_email, vm_account \
             FROM voicemail_boxes WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn upsert_voicemail(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        vm: &VoicemailBox,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO voicemail_boxes (account_id, mailbox, password_sealed, name, email, info, \
             delete_after_email, vm_account) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (account_id) DO UPDATE SET mailbox = excluded.mailbox, \
             password_sealed = excluded.password_sealed, name = excluded.name, \
             email = excluded.email, info = excluded.info, \
             delete_after_email = excluded.delete_after_email, vm_account = excluded.vm_account",
        )
        .bind(account_id)
        .bind(&vm.mailbox)
        .bind(&vm.password_sealed)
        .bind(vm.name.as_deref())
        .bind(vm.email.as_deref())
        .bind(vm.info.as_deref())
        .bind(vm.delete_after_email)
        .bind(&vm.vm_account)
        .execute(tx.conn())
        .await?;
        Ok(())
    }
}
