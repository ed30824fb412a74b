//! Data the SIP platform (and operators) feed in: calls, registrations, balance moves,
//! ENUM numbers, voicemail boxes and phonebook entries.

use super::{MAX_ENUM, Services};
use crate::domain::validate;
use crate::domain::{Account, CallRecord, Registration, VoicemailBox};
use crate::error::{ServiceError, ServiceResult, is_unique_violation};
use crate::store::BalanceChange;
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

impl Services {
    /// Stores a call record once; a repeat of (session, from tag, direction) is ignored.
    /// A placed call with a price debits the prepaid balance in the same transaction.
    pub async fn record_call(&self, a: &Account, mut c: CallRecord) -> ServiceResult<bool> {
        if c.direction != "placed" && c.direction != "received" {
            return Err(ServiceError::invalid(
                "direction must be placed or received",
            ));
        }
        if c.session_id.is_empty() || c.session_id.len() > 255 || c.from_tag.len() > 255 {
            return Err(ServiceError::invalid(
                "sessionId must be 1 to 255 characters",
            ));
        }
        if c.duration < 0 || c.stop_time.is_some_and(|s| s < c.start_time) {
            return Err(ServiceError::invalid("stop time before start time"));
        }
        c.account_id = a.id;
        let mut tx = self.store.begin_write().await?;
        let inserted = self.store.insert_call(&mut tx, &c).await?;
        if inserted
            && c.direction == "placed"
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
            self.store.apply_balance(&mut tx, a.id, &change).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    pub async fn upsert_registration(&self, a: &Account, r: &Registration) -> ServiceResult<()> {
        if r.contact.is_empty() || r.contact.len() > 512 {
            return Err(ServiceError::invalid("contact must be 1 to 512 characters"));
        }
        let mut tx = self.store.begin_write().await?;
        self.store
            .upsert_registration(&mut tx, a.id, r, now())
            .await?;
        tx.commit().await?;
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
        let action = if value >= 0 {
            "Credit balance"
        } else {
            "Debit balance"
        };
        let mut tx = self.store.begin_write().await?;
        let b = self
            .store
            .apply_balance(
                &mut tx,
                a.id,
                &BalanceChange {
                    value,
                    action,
                    description,
                    session,
                    at: at.unwrap_or_else(now),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(b)
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
