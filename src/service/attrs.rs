//! Operator attributes of accounts and the account search of the operator surfaces: one set of
//! rules for /api/v1, the JSON:API `sip_device_routes` and the telecomx `/sip` listing.

use std::collections::HashMap;

use chrono::{Datelike, TimeZone, Utc};

use super::Services;
use super::tenancy::Operator;
use crate::domain::validate;
use crate::domain::{
    Account, AccountFilter, AccountQuery, AccountView, Attr, AttrKind, AttrValue, CONNECTIONS, Role,
};
use crate::error::{ServiceError, ServiceResult};
use crate::util::now;

/// The most a page of the operator surfaces may hold.
pub const MAX_PAGE: i64 = 500;
/// `custom` holds at most this many bytes of JSON.
pub const MAX_CUSTOM_BYTES: usize = 4096;
const MAX_NOTES: usize = 4096;
const MAX_TEXT: usize = 255;

/// One month of `voiceUsage`: its first day (`YYYY-MM-01`) and the seconds of placed calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthUsage {
    pub date: String,
    pub seconds: i64,
}

fn printable(attr: Attr, v: &str, max: usize) -> ServiceResult<()> {
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "{} must be at most {max} printable characters",
            attr.column()
        )));
    }
    Ok(())
}

fn invalid(attr: Attr, msg: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid(format!("{}: {msg}", attr.column()))
}

/// Checks and normalises one value, without looking at other data (see `update_attrs`).
pub fn normalize_attr(attr: Attr, value: AttrValue) -> ServiceResult<AttrValue> {
    match (attr.kind(), value) {
        (AttrKind::Flag, AttrValue::Flag(b)) => Ok(AttrValue::Flag(b)),
        (AttrKind::Int, AttrValue::Int(None)) => Ok(AttrValue::Int(None)),
        (AttrKind::Int, AttrValue::Int(Some(i))) => {
            let ok = match attr {
                Attr::Port => (1..=65_535).contains(&i),
                Attr::InternalCallerId | Attr::ExternalCallerId => {
                    (0..=999_999_999_999_999).contains(&i)
                }
                Attr::Pbx | Attr::InvoicedUntil | Attr::BillingCustomer => i >= 0,
                _ => true,
            };
            if !ok {
                return Err(invalid(attr, format!("{i} is out of range")));
            }
            Ok(AttrValue::Int(Some(i)))
        }
        (AttrKind::Text, AttrValue::Text(t)) => {
            let t = t.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
            let Some(t) = t else {
                // The allowed-IP list is a (possibly empty) list, never NULL.
                return Ok(AttrValue::Text(
                    (attr == Attr::AllowedIps).then(String::new),
                ));
            };
            let t = match attr {
                Attr::AllowedIps => validate::cidr_list(&t).map_err(|e| invalid(attr, e))?,
                Attr::IpAddress | Attr::SipServer => {
                    validate::ip(&t).map_err(|e| invalid(attr, e))?.to_string()
                }
                Attr::Countries => validate::countries(&t).map_err(|e| invalid(attr, e))?,
                Attr::Failover => {
                    validate::failover(&t).map_err(|e| invalid(attr, e))?;
                    t
                }
                Attr::DefaultNumber => {
                    validate::e164(&t).map_err(|e| invalid(attr, e))?;
                    t
                }
                Attr::Connection => {
                    let up = t.to_ascii_uppercase();
                    if !CONNECTIONS.contains(&up.as_str()) {
                        return Err(invalid(
                            attr,
                            format!("use one of {}", CONNECTIONS.join(", ")),
                        ));
                    }
                    up
                }
                Attr::Custom => {
                    if t.len() > MAX_CUSTOM_BYTES {
                        return Err(invalid(attr, "at most 4 KiB of JSON"));
                    }
                    let v: serde_json::Value =
                        serde_json::from_str(&t).map_err(|_| invalid(attr, "not valid JSON"))?;
                    if v.is_null() {
                        return Ok(AttrValue::Text(None));
                    }
                    v.to_string()
                }
                Attr::Notes => {
                    if t.chars().count() > MAX_NOTES
                        || t.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
                    {
                        return Err(invalid(attr, "at most 4096 characters"));
                    }
                    t
                }
                _ => {
                    printable(attr, &t, MAX_TEXT)?;
                    t
                }
            };
            Ok(AttrValue::Text(Some(t)))
        }
        (kind, _) => Err(invalid(
            attr,
            format!("expected a {kind:?} value").to_lowercase(),
        )),
    }
}

impl Services {
    /// The account with this public id, if the operator's scope holds it (else not found).
    pub async fn account_by_public_id(
        &self,
        op: &Operator,
        public_id: &str,
    ) -> ServiceResult<Account> {
        let id = self
            .store
            .account_id_by_public_id(public_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("account not found".into()))?;
        self.account_in_scope(op, id).await
    }

    /// The operator view of one account (attributes, numbers, newest live registration).
    pub async fn account_view(&self, a: Account) -> ServiceResult<AccountView> {
        let attrs = self
            .store
            .account_attrs(a.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("account not found".into()))?;
        let mut views = self.complete_views(vec![(a, attrs)]).await?;
        views
            .pop()
            .ok_or_else(|| ServiceError::Internal("account view vanished".into()))
    }

    async fn complete_views(
        &self,
        rows: Vec<(Account, crate::domain::AccountAttrs)>,
    ) -> ServiceResult<Vec<AccountView>> {
        let ids: Vec<i64> = rows.iter().map(|(a, _)| a.id).collect();
        let mut numbers = self.store.numbers_of(&ids).await?;
        let mut live = self.store.newest_live_registrations(&ids, now()).await?;
        Ok(rows
            .into_iter()
            .map(|(account, attrs)| AccountView {
                numbers: numbers.remove(&account.id).unwrap_or_default(),
                live: live.remove(&account.id),
                account,
                attrs,
            })
            .collect())
    }

    /// A page of the accounts in the operator's scope that match `q`, and the total.
    pub async fn search_accounts(
        &self,
        op: &Operator,
        q: &AccountQuery,
    ) -> ServiceResult<(i64, Vec<AccountView>)> {
        if !(0..=MAX_PAGE).contains(&q.limit) || q.offset < 0 {
            return Err(ServiceError::invalid(format!(
                "the page must hold 0 to {MAX_PAGE} accounts from offset 0 on"
            )));
        }
        let (total, rows) = self.store.search_accounts(&op.filter(), q, now()).await?;
        Ok((total, self.complete_views(rows).await?))
    }

    /// Changes operator attributes in one transaction; answers the fresh view.
    pub async fn update_attrs(
        &self,
        op: &Operator,
        account: &Account,
        changes: Vec<(Attr, AttrValue)>,
    ) -> ServiceResult<AccountView> {
        if !op.can_write_accounts() {
            return Err(ServiceError::Forbidden("your role may only read".into()));
        }
        let mut clean = Vec::with_capacity(changes.len());
        for (attr, value) in changes {
            clean.push((attr, normalize_attr(attr, value)?));
        }
        let current = self
            .store
            .account_attrs(account.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("account not found".into()))?;
        for (attr, value) in &clean {
            match (attr, value) {
                // telecomx: a usage block is lifted only by RESELLER or ADMIN users.
                (Attr::UsageBlock, AttrValue::Flag(false))
                    if current.usage_block != 0
                        && !matches!(op.role, Role::Admin | Role::Reseller) =>
                {
                    return Err(ServiceError::Forbidden(
                        "only RESELLER or ADMIN users may lift a usage block".into(),
                    ));
                }
                (Attr::ParentSipAccount, AttrValue::Text(Some(p))) => {
                    let parent = self.account_by_public_id(op, p).await.map_err(|_| {
                        invalid(*attr, format!("no account {}", validate::truncate(p, 60)))
                    })?;
                    if parent.id == account.id {
                        return Err(invalid(*attr, "an account cannot be its own parent"));
                    }
                }
                (Attr::BillingCustomer, AttrValue::Int(Some(c))) => {
                    self.get_customer(op, *c)
                        .await
                        .map_err(|_| invalid(*attr, format!("no customer {c}")))?;
                }
                (Attr::DefaultNumber, AttrValue::Text(Some(n))) => {
                    let numbers = self.enum_numbers(account).await?;
                    if !numbers.contains(n) {
                        return Err(invalid(*attr, "must be one of the account's numbers"));
                    }
                }
                _ => {}
            }
        }
        let mut tx = self.store.begin_write().await?;
        if !clean.is_empty() {
            self.store
                .update_attrs(&mut tx, account.id, &clean, now())
                .await?;
        }
        tx.commit().await?;
        let fresh = self.account_in_scope(op, account.id).await?;
        self.account_view(fresh).await
    }

    /// The SIP password in clear for roles that may write the account; `None` for other roles
    /// and for passwords that are not recoverable.
    pub fn sip_password(&self, op: &Operator, v: &AccountView) -> Option<String> {
        if !op.can_write_accounts() {
            return None;
        }
        let sealed = v.attrs.password_sealed.as_deref()?;
        match self.keys.open(sealed) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(account = v.account.id, error = %e, "stored SIP password cannot be opened");
                None
            }
        }
    }

    /// Seconds of placed calls per month for the last 12 months (oldest first, this month last).
    pub async fn voice_usage(&self, ids: &[i64]) -> ServiceResult<HashMap<i64, Vec<MonthUsage>>> {
        let today = Utc::now().date_naive();
        let (mut y, mut m) = (today.year(), today.month());
        let mut starts = Vec::with_capacity(13);
        // Month starts from 11 months ago to next month (UTC).
        for _ in 0..11 {
            (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
        }
        for _ in 0..13 {
            starts.push((y, m));
            (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        }
        let bounds: Vec<i64> = starts
            .iter()
            .map(|(y, m)| {
                Utc.with_ymd_and_hms(*y, *m, 1, 0, 0, 0)
                    .single()
                    .map(|t| t.timestamp())
                    .unwrap_or(0)
            })
            .collect();
        let sums = self.store.placed_seconds(ids, &bounds).await?;
        Ok(ids
            .iter()
            .map(|id| {
                let secs = sums.get(id);
                let months = starts[..12]
                    .iter()
                    .enumerate()
                    .map(|(i, (y, m))| MonthUsage {
                        date: format!("{y:04}-{m:02}-01"),
                        seconds: secs.and_then(|s| s.get(i).copied()).unwrap_or(0),
                    })
                    .collect();
                (*id, months)
            })
            .collect())
    }
}

/// `AccountFilter::Search` input is bounded so a query string cannot make a huge pattern.
pub fn search_filter(s: &str) -> ServiceResult<Option<AccountFilter>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > 100 || s.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "the filter must be at most 100 printable characters",
        ));
    }
    Ok(Some(AccountFilter::Search(s.to_owned())))
}
