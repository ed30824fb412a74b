//! Domains, accounts, identity, aliases and ENUM numbers.

use super::{MAX_ALIASES, MAX_ENUM, Services};
use crate::crypto::Ha1Set;
use crate::domain::validate;
use crate::domain::{Account, Domain, NewAccount};
use crate::error::{ServiceError, ServiceResult, is_unique_violation};
use crate::store::{AccountUpdate, NewAccountSecrets};
use crate::util::now;

/// The identity object's content.
#[derive(Clone, Debug)]
pub struct Identity {
    pub sip_address: String,
    pub email: Option<String>,
    pub first: Option<String>,
    pub lastname: Option<String>,
    pub pstn_caller_id: Option<String>,
    pub mobile_number: Option<String>,
    pub timezone: Option<String>,
    pub no_answer_timeout: i64,
    pub quick_dial: Option<String>,
}

/// `0`/unset means the default 35 s; anything else is clamped to 1..900 (spec §4.1).
pub fn effective_no_answer_timeout(v: i64) -> i64 {
    if v <= 0 { 35 } else { v.min(900) }
}

/// Splits `user@domain`, lower-casing both.
pub fn split_address(addr: &str) -> ServiceResult<(String, String)> {
    let (u, d) = addr
        .trim()
        .rsplit_once('@')
        .ok_or_else(|| ServiceError::invalid(format!("expected user@domain, got {addr:?}")))?;
    let (u, d) = (u.to_ascii_lowercase(), d.to_ascii_lowercase());
    validate::sip_user(&u).map_err(ServiceError::Invalid)?;
    validate::domain_name(&d).map_err(ServiceError::Invalid)?;
    Ok((u, d))
}

fn clean_opt(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Services {
    // ---- domains ----

    pub async fn add_domain(&self, name: &str) -> ServiceResult<Domain> {
        let name = name.trim().to_ascii_lowercase();
        validate::domain_name(&name).map_err(ServiceError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        let now = now();
        let id = match self.store.insert_domain(&mut tx, &name, now).await {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(format!(
                    "domain {name} already exists"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        Ok(Domain {
            id,
            name,
            created_at: now,
        })
    }

    pub async fn list_domains(&self) -> ServiceResult<Vec<Domain>> {
        Ok(self.store.list_domains().await?)
    }

    pub async fn remove_domain(&self, name: &str) -> ServiceResult<()> {
        let name = name.trim().to_ascii_lowercase();
        let domain = self
            .store
            .domain_by_name(&name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("domain {name} does not exist")))?;
        let mut tx = self.store.begin_write().await?;
        let n = self.store.count_domain_accounts(&mut tx, domain.id).await?;
        if n > 0 {
            return Err(ServiceError::Conflict(format!(
                "domain {name} still has {n} account(s); remove them first"
            )));
        }
        self.store.delete_domain(&mut tx, domain.id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn serves_domain(&self, name: &str) -> ServiceResult<bool> {
        Ok(self.store.domain_exists(name).await?)
    }

    // ---- accounts ----

    fn validate_new(a: &mut NewAccount) -> ServiceResult<()> {
        a.username = a.username.trim().to_ascii_lowercase();
        a.domain = a.domain.trim().to_ascii_lowercase();
        validate::sip_user(&a.username).map_err(ServiceError::Invalid)?;
        validate::domain_name(&a.domain).map_err(ServiceError::Invalid)?;
        a.first_name = clean_opt(a.first_name.take());
        a.last_name = clean_opt(a.last_name.take());
        a.email = clean_opt(a.email.take());
        a.timezone = clean_opt(a.timezone.take());
        a.mobile_number = clean_opt(a.mobile_number.take());
        a.pstn_caller_id = clean_opt(a.pstn_caller_id.take());
        for v in [&a.first_name, &a.last_name].into_iter().flatten() {
            if v.chars().count() > 100 || v.chars().any(char::is_control) {
                return Err(ServiceError::invalid(
                    "names must be at most 100 printable characters",
                ));
            }
        }
        if let Some(e) = &a.email {
            validate::email(e).map_err(ServiceError::Invalid)?;
        }
        if let Some(tz) = &a.timezone {
            validate::timezone(tz).map_err(ServiceError::Invalid)?;
        }
        for n in [&a.mobile_number, &a.pstn_caller_id].into_iter().flatten() {
            validate::e164(n).map_err(ServiceError::Invalid)?;
        }
        Ok(())
    }

    /// The SIP password sealed for the operator surfaces that show it (never stored in clear).
    fn seal_password(&self, password: &str) -> ServiceResult<String> {
        self.keys
            .seal(password)
            .map_err(|e| ServiceError::Internal(format!("cannot seal the password: {e}")))
    }

    fn check_password(password: &str) -> ServiceResult<()> {
        if password.is_empty() {
            return Err(ServiceError::invalid("the password must not be empty"));
        }
        if password.len() > 256 || password.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "the password must be at most 256 printable characters",
            ));
        }
        Ok(())
    }

    pub async fn add_account(&self, mut a: NewAccount, password: &str) -> ServiceResult<Account> {
        Self::validate_new(&mut a)?;
        Self::check_password(password)?;
        let domain = self.store.domain_by_name(&a.domain).await?.ok_or_else(|| {
            ServiceError::NotFound(format!(
                "domain {} does not exist (add it with `sipsettings domain add {}`)",
                a.domain, a.domain
            ))
        })?;
        let ha1 = Ha1Set::new(&a.username, &a.domain, password);
        let sealed = self.seal_password(password)?;
        let public_id = crate::crypto::new_uuid();
        let mut tx = self.store.begin_write().await?;
        let customer = a.customer_id.unwrap_or(super::tenancy::DEFAULT_CUSTOMER);
        match self
            .store
            .lock_customer_count_accounts(&mut tx, customer)
            .await?
        {
            None => {
                return Err(ServiceError::NotFound(format!(
                    "customer {customer} does not exist"
                )));
            }
            Some((Some(limit), n)) if n >= limit => {
                return Err(ServiceError::Invalid(format!(
                    "the customer's limit of {limit} SIP accounts is reached"
                )));
            }
            Some(_) => {}
        }
        if let Some(kind) = self
            .store
            .name_taken(&mut tx, domain.id, &a.username)
            .await?
        {
            return Err(ServiceError::Conflict(format!(
                "{}@{} is already an {kind}",
                a.username, a.domain
            )));
        }
        let id = match self
            .store
            .insert_account(
                &mut tx,
                domain.id,
                &a,
                &ha1,
                &NewAccountSecrets {
                    public_id: &public_id,
                    password_sealed: Some(&sealed),
                },
                now(),
            )
            .await
        {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(format!(
                    "{}@{} already exists",
                    a.username, a.domain
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let account = self
            .store
            .account_by_id_tx(&mut tx, id)
            .await?
            .ok_or_else(|| ServiceError::Internal("account vanished after insert".into()))?;
        tx.commit().await?;
        Ok(account)
    }

    pub async fn find_account(&self, address: &str) -> ServiceResult<Account> {
        let (u, d) = split_address(address)?;
        self.store
            .account_by_address(&u, &d)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("account {u}@{d} does not exist")))
    }

    pub async fn list_accounts(&self, domain: Option<&str>) -> ServiceResult<Vec<Account>> {
        Ok(self.store.list_accounts(domain).await?)
    }

    pub async fn count_accounts(&self) -> ServiceResult<i64> {
        Ok(self.store.count_accounts().await?)
    }

    pub async fn set_password(&self, account: &Account, password: &str) -> ServiceResult<()> {
        Self::check_password(password)?;
        let ha1 = Ha1Set::new(&account.username, &account.domain, password);
        let sealed = self.seal_password(password)?;
        let mut tx = self.store.begin_write().await?;
        self.store
            .set_ha1(&mut tx, account.id, &ha1, Some(&sealed), now())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_blocked(&self, account: &Account, blocked: bool) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        self.store
            .set_blocked(&mut tx, account.id, blocked, now())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Trims and validates the identity part of an update (no I/O).
    pub(super) fn clean_identity(u: &mut AccountUpdate) -> ServiceResult<()> {
        for f in [
            &mut u.first_name,
            &mut u.last_name,
            &mut u.email,
            &mut u.timezone,
            &mut u.mobile_number,
            &mut u.pstn_caller_id,
            &mut u.quick_dial,
        ] {
            if let Some(v) = f.take() {
                *f = Some(clean_opt(v));
            }
        }
        for v in [&u.first_name, &u.last_name]
            .into_iter()
            .flatten()
            .flatten()
        {
            if v.chars().count() > 100 || v.chars().any(char::is_control) {
                return Err(ServiceError::invalid(
                    "names must be at most 100 printable characters",
                ));
            }
        }
        if let Some(Some(e)) = &u.email {
            validate::email(e).map_err(ServiceError::Invalid)?;
        }
        if let Some(Some(tz)) = &u.timezone {
            validate::timezone(tz).map_err(ServiceError::Invalid)?;
        }
        for n in [&u.mobile_number, &u.pstn_caller_id]
            .into_iter()
            .flatten()
            .flatten()
        {
            validate::e164(n).map_err(ServiceError::Invalid)?;
        }
        if let Some(t) = u.no_answer_timeout
            && !(1..=900).contains(&t)
        {
            return Err(ServiceError::invalid(
                "no_answer_timeout must be 1 to 900 seconds",
            ));
        }
        Ok(())
    }

    pub async fn remove_account(&self, account: &Account) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        self.store.delete_account(&mut tx, account.id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub fn identity(&self, a: &Account) -> Identity {
        Identity {
            sip_address: a.address(),
            email: a.email.clone(),
            first: a.first_name.clone(),
            lastname: a.last_name.clone(),
            pstn_caller_id: a.pstn_caller_id.clone(),
            mobile_number: a.mobile_number.clone(),
            timezone: a.timezone.clone(),
            no_answer_timeout: effective_no_answer_timeout(a.no_answer_timeout),
            quick_dial: a.quick_dial.clone(),
        }
    }

    // ---- aliases ----

    pub async fn aliases(&self, a: &Account) -> ServiceResult<Vec<String>> {
        Ok(self.store.list_aliases(a.id, MAX_ALIASES).await?)
    }

    /// Adds an alias in the account's own domain; returns the normalised user part.
    pub async fn add_alias(&self, a: &Account, username: Option<&str>) -> ServiceResult<String> {
        let name = username
            .map(|u| u.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if name.is_empty() {
            return Err(ServiceError::invalid("Error: missing username"));
        }
        validate::sip_user(&name).map_err(ServiceError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        if self.store.count_aliases(&mut tx, a.id).await? >= MAX_ALIASES {
            return Err(ServiceError::invalid(format!(
                "Error: the maximum of {MAX_ALIASES} aliases has been reached"
            )));
        }
        if let Some(kind) = self.store.name_taken(&mut tx, a.domain_id, &name).await? {
            return Err(ServiceError::invalid(format!(
                "Error: {name}@{} is already used by an {kind}",
                a.domain
            )));
        }
        match self
            .store
            .insert_alias(&mut tx, a.id, a.domain_id, &name, now())
            .await
        {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::invalid(format!(
                    "Error: {name}@{} is already used by an alias",
                    a.domain
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(name)
    }

    pub async fn delete_alias(&self, a: &Account, username: Option<&str>) -> ServiceResult<String> {
        let raw = username
            .map(|u| u.trim().to_ascii_lowercase())
            .unwrap_or_default();
        // Accept `bob` and `bob@<own domain>`.
        let name = match raw.rsplit_once('@') {
            Some((u, d)) if d == a.domain => u.to_owned(),
            Some(_) => {
                return Err(ServiceError::invalid(format!(
                    "Error: alias {} not found",
                    validate::truncate(&raw, 80)
                )));
            }
            None => raw,
        };
        if name.is_empty() {
            return Err(ServiceError::invalid("Error: missing username"));
        }
        validate::sip_user(&name).map_err(ServiceError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        if self.store.delete_alias(&mut tx, a.id, &name).await? == 0 {
            return Err(ServiceError::invalid(format!(
                "Error: alias {name}@{} not found",
                a.domain
            )));
        }
        tx.commit().await?;
        Ok(name)
    }

    // ---- ENUM ----

    pub async fn enum_numbers(&self, a: &Account) -> ServiceResult<Vec<String>> {
        Ok(self.store.list_enum(a.id, MAX_ENUM).await?)
    }
}
