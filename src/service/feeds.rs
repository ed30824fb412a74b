//! Data the SIP platform (and operators) feed in: calls, registrations, balance moves,
//! ENUM numbers, voicemail boxes and phonebook entries.

use super::{MAX_ENUM, Services};
use crate::domain::validate;
use crate::domain::{Account, CallRecord, Registration, VoicemailBox};
use crate::error::{ServiceError, ServiceResult, is_unique_violation};
use crate::store::{BalanceChange, WriteTx};
use crate::util::now;

/// A voicemail box as an operator sets it (the PIN is sealed before storing).
#[derive(Clone, Debug)]
pub struct NewVoicemail {
    pub mailbox: String,
    pub password: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub info: Option<String>,
    pub delete_after_email: bool,
    pub vm_account: String,
}

/// What storing a call record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// A new call, or the final record of a call stored while in progress.
    Stored,
    /// Already stored (same account, session, from tag and direction): nothing changed.
    Duplicate,
}

/// Text that must fit a column and contain no control characters.
pub(super) fn check_text(field: &str, v: &str, max: usize) -> Result<(), String> {
    if v.len() > max {
        return Err(format!("{field} must be at most {max} bytes"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

/// The rules every call record follows, whoever feeds it.
pub(super) fn check_call(c: &CallRecord) -> Result<(), String> {
    if c.direction != "placed" && c.direction != "received" {
        return Err("direction must be placed or received".into());
    }
    if c.session_id.is_empty() || c.session_id.len() > 255 || c.from_tag.len() > 255 {
        return Err("sessionId must be 1 to 255 characters".into());
    }
    if c.duration < 0 {
        return Err("duration must not be negative".into());
    }
    if c.stop_time.is_some_and(|s| s < c.start_time) {
        return Err("stop time before start time".into());
    }
    if let Some(p) = c.price {
        if c.direction != "placed" {
            return Err("price is only allowed on placed calls".into());
        }
        if p < 0 {
            return Err("price must not be negative".into());
        }
        if c.stop_time.is_none() {
            return Err("a call in progress (no stop time) has no price yet".into());
        }
    }
    for (field, v, max) in [
        ("sessionId", &c.session_id, 255),
        ("fromTag", &c.from_tag, 255),
        ("toTag", &c.to_tag, 255),
        ("remoteParty", &c.remote_party, 512),
        ("displayName", &c.display_name, 255),
        ("status", &c.status, 64),
        ("proxyIP", &c.proxy_ip, 64),
        ("media", &c.media, 255),
    ] {
        check_text(field, v, max)?;
    }
    if c.remote_party.is_empty() {
        return Err("remoteParty must not be empty".into());
    }
    if c.status.is_empty() {
        return Err("status must not be empty".into());
    }
    Ok(())
}

/// The rules every registration follows, whoever feeds it.
pub(super) fn check_registration(r: &Registration) -> Result<(), String> {
    if r.contact.is_empty() || r.contact.len() > 512 {
        return Err("contact must be 1 to 512 characters".into());
    }
    check_text("contact", &r.contact, 512)?;
    for (field, v, max) in [
        ("public_contact", &r.public_contact, 512),
        ("user_agent", &r.user_agent, 255),
        ("instance_id", &r.instance_id, 255),
    ] {
        if let Some(v) = v {
            check_text(field, v, max)?;
        }
    }
    if let Some(t) = &r.transport
        && !TRANSPORTS.contains(&t.as_str())
    {
        return Err(format!(
            "transport must be one of {}, got {:?}",
            TRANSPORTS.join(", "),
            validate::truncate(t, 20)
        ));
    }
    Ok(())
}

pub const TRANSPORTS: [&str; 5] = ["udp", "tcp", "tls", "ws", "wss"];

/// The rules every balance move follows, whoever feeds it.
pub(super) fn check_balance(
    value: i64,
    description: &str,
    session: Option<&str>,
) -> Result<(), String> {
    if value == 0 {
        return Err("value must not be 0".into());
    }
    if description.trim().is_empty() {
        return Err("description must not be empty".into());
    }
    check_text("description", description, 255)?;
    if let Some(s) = session {
        check_text("session", s, 255)?;
    }
    Ok(())
}

impl Services {
    /// Stores a call record once; a repeat of (session, from tag, direction) is ignored.
    /// A placed call with a price debits the prepaid balance in the same transaction.
    /// Returns `false` for a repeat.
    pub async fn record_call(&self, a: &Account, mut c: CallRecord) -> ServiceResult<bool> {
        c.account_id = a.id;
        check_call(&c).map_err(ServiceError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        let outcome = self.store_call(&mut tx, &c).await?;
        tx.commit().await?;
        Ok(outcome != CallOutcome::Duplicate)
    }

    /// Stores a checked call (`check_call`) for `c.account_id` inside `tx`. A repeat of a
    /// finished call changes nothing; the final record of a call stored while in progress
    /// completes it. The price of a placed call is debited once: when its finished record is
    /// first stored.
    pub(super) async fn store_call(
        &self,
        tx: &mut WriteTx,
        c: &CallRecord,
    ) -> ServiceResult<CallOutcome> {
        if !self.store.insert_call(tx, c).await? {
            return Ok(CallOutcome::Duplicate);
        }
        if c.direction == "placed"
            && let Some(price) = c.price.filter(|p| *p != 0)
        {
            let description = format!("Session {}", c.session_id);
            let change = BalanceChange {
                value: -price,
                action: "Debit balance",
                description: &description,
                session: Some(&c.session_id),
                at: c.stop_time.unwrap_or(c.start_time),
            };
            self.store.apply_balance(tx, c.account_id, &change).await?;
        }
        Ok(CallOutcome::Stored)
    }

    pub async fn upsert_registration(&self, a: &Account, r: &Registration) -> ServiceResult<()> {
        check_registration(r).map_err(ServiceError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        self.store_registration(&mut tx, a.id, r, now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a checked registration (`check_registration`) inside `tx`; one that has
    /// expired by `now` removes the stored one of the same contact.
    pub(super) async fn store_registration(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        r: &Registration,
        now: i64,
    ) -> ServiceResult<()> {
        if r.expires_at <= now {
            self.store
                .delete_registration(tx, account_id, &r.contact)
                .await?;
        } else {
            self.store
                .upsert_registration(tx, account_id, r, now)
                .await?;
        }
        Ok(())
    }

    /// Credits (positive) or debits (negative) the balance; returns the new balance.
    pub async fn apply_balance(
        &self,
        a: &Account,
        value: i64,
        description: &str,
        session: Option<&str>,
        at: Option<i64>,
    ) -> ServiceResult<i64> {
        check_balance(value, description, session).map_err(ServiceError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        let b = self
            .store_balance(
                &mut tx,
                a.id,
                value,
                description,
                session,
                at.unwrap_or_else(now),
            )
            .await?;
        tx.commit().await?;
        Ok(b)
    }

    /// Applies a checked balance move (`check_balance`) inside `tx`; returns the new balance.
    /// The store adds atomically, so concurrent moves never lose an update.
    pub(super) async fn store_balance(
        &self,
        tx: &mut WriteTx,
        account_id: i64,
        value: i64,
        description: &str,
        session: Option<&str>,
        at: i64,
    ) -> ServiceResult<i64> {
        let action = if value >= 0 {
            "Credit balance"
        } else {
            "Debit balance"
        };
        let change = BalanceChange {
            value,
            action,
            description,
            session,
            at,
        };
        Ok(self.store.apply_balance(tx, account_id, &change).await?)
    }

    pub async fn add_enum_number(&self, a: &Account, number: &str) -> ServiceResult<()> {
        validate::e164(number).map_err(ServiceError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        if self.store.list_enum(a.id, MAX_ENUM).await?.len() as i64 >= MAX_ENUM {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_ENUM} ENUM numbers per account"
            )));
        }
        match self.store.insert_enum(&mut tx, a.id, number, now()).await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(format!(
                    "{number} is already mapped"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_enum_number(&self, a: &Account, number: &str) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        if self.store.delete_enum(&mut tx, a.id, number).await? == 0 {
            return Err(ServiceError::NotFound(format!(
                "{} is not mapped to this account",
                validate::truncate(number, 40)
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_voicemail(&self, a: &Account) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        if self.store.delete_voicemail(&mut tx, a.id).await? == 0 {
            return Err(ServiceError::NotFound(
                "the account has no voicemail box".into(),
            ));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_voicemail(&self, a: &Account, vm: NewVoicemail) -> ServiceResult<()> {
        if vm.mailbox.is_empty() || vm.mailbox.len() > 64 || vm.password.len() > 64 {
            return Err(ServiceError::invalid(
                "mailbox and password must be 1 to 64 characters",
            ));
        }
        let sealed = self.keys.seal(&vm.password)?;
        let row = VoicemailBox {
            mailbox: vm.mailbox,
            password_sealed: sealed,
            name: vm.name,
            email: vm.email,
            info: vm.info,
            delete_after_email: i64::from(vm.delete_after_email),
            vm_account: vm.vm_account,
        };
        let mut tx = self.store.begin_write().await?;
        self.store.upsert_voicemail(&mut tx, a.id, &row).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_phonebook_entry(
        &self,
        a: &Account,
        uri: &str,
        name: &str,
        group: &str,
    ) -> ServiceResult<()> {
        validate::group_name(group).map_err(ServiceError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        self.store
            .insert_phonebook_entry(&mut tx, a.id, uri, name, group)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
