//! Call history, devices, prepaid balance and usage: read views over the platform feeds.

use chrono::{Datelike, TimeZone};

use super::{BALANCE_HISTORY, HISTORY_DAYS, HISTORY_PER_DIRECTION, Services, local_time};
use crate::domain::{Account, CallRecord};
use crate::error::ServiceResult;
use crate::util::now;

#[derive(Clone, Debug)]
pub struct CallView {
    pub remote_party: String,
    pub display_name: String,
    pub start_time: String,
    pub stop_time: String,
    pub timezone: String,
    pub duration: i64,
    pub status: String,
    /// Placed calls only.
    pub price: Option<i64>,
    pub session_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub proxy_ip: String,
    pub media: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct CallHistory {
    pub placed: Vec<CallView>,
    pub received: Vec<CallView>,
}

#[derive(Clone, Debug)]
pub struct Device {
    pub contact: String,
    pub public_contact: String,
    pub expires: i64,
    pub user_agent: String,
    pub transport: String,
}

#[derive(Clone, Debug)]
pub struct ActiveCall {
    pub session_id: String,
    pub remote_party: String,
    pub start_time: String,
}

#[derive(Clone, Debug)]
pub struct Prepaid {
    pub balance: i64,
    pub active_calls: Vec<ActiveCall>,
}

#[derive(Clone, Debug)]
pub struct BalanceMove {
    pub id: i64,
    pub date: String,
    pub action: String,
    pub description: String,
    pub value: i64,
    pub balance: i64,
    pub session: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct MonthlyUsage {
    pub calls: i64,
    pub duration: i64,
    pub price: i64,
}

impl Services {
    fn call_view(&self, c: CallRecord, tz: chrono_tz::Tz) -> CallView {
        let placed = c.direction == "placed";
        CallView {
            remote_party: c.remote_party,
            display_name: if placed {
                String::new()
            } else {
                c.display_name
            },
            start_time: local_time(c.start_time, tz),
            stop_time: local_time(c.stop_time.unwrap_or(c.start_time), tz),
            timezone: tz.name().to_owned(),
            duration: c.duration,
            status: c.status,
            price: placed.then_some(c.price.unwrap_or(0)),
            session_id: c.session_id,
            from_tag: c.from_tag,
            to_tag: c.to_tag,
            proxy_ip: c.proxy_ip,
            media: c.media.split(',').map(|m| m.trim().to_owned()).collect(),
        }
    }

    /// Last 14 days, newest first, at most 50 per direction, finished calls only.
    pub async fn history(&self, a: &Account) -> ServiceResult<CallHistory> {
        let tz = self.tz(a);
        let since = now() - HISTORY_DAYS * 86_400;
        let placed = self
            .store
            .finished_calls(a.id, "placed", since, HISTORY_PER_DIRECTION)
            .await?;
        let received = self
            .store
            .finished_calls(a.id, "received", since, HISTORY_PER_DIRECTION)
            .await?;
        Ok(CallHistory {
            placed: placed.into_iter().map(|c| self.call_view(c, tz)).collect(),
            received: received
                .into_iter()
                .map(|c| self.call_view(c, tz))
                .collect(),
        })
    }

    /// Current, unexpired registrations; expiry is computed at read time, so no cleanup job.
    pub async fn devices(&self, a: &Account) -> ServiceResult<Vec<Device>> {
        let now = now();
        let regs = self.store.live_registrations(a.id, now).await?;
        Ok(regs
            .into_iter()
            .map(|r| Device {
                public_contact: r.public_contact.unwrap_or_else(|| r.contact.clone()),
                contact: r.contact,
                expires: r.expires_at - now,
                user_agent: r.user_agent.unwrap_or_default(),
                transport: r.transport.unwrap_or_else(|| "udp".into()),
            })
            .collect())
    }

    pub async fn prepaid(&self, a: &Account) -> ServiceResult<Prepaid> {
        let tz = self.tz(a);
        let active = self.store.active_calls(a.id).await?;
        Ok(Prepaid {
            balance: a.balance,
            active_calls: active
                .into_iter()
                .map(|c| ActiveCall {
                    session_id: c.session_id,
                    remote_party: c.remote_party,
                    start_time: local_time(c.start_time, tz),
                })
                .collect(),
        })
    }

    /// Newest first, at most 200.
    pub async fn balance_history(&self, a: &Account) -> ServiceResult<Vec<BalanceMove>> {
        let tz = self.tz(a);
        let rows = self.store.balance_history(a.id, BALANCE_HISTORY).await?;
        Ok(rows
            .into_iter()
            .map(|e| BalanceMove {
                id: e.id,
                date: local_time(e.created_at, tz),
                action: e.action,
                description: e.description,
                value: e.value,
                balance: e.balance,
                session: e.session,
            })
            .collect())
    }

    /// Placed calls of the current calendar month in the account's timezone.
    pub async fn monthly_usage(&self, a: &Account) -> ServiceResult<MonthlyUsage> {
        let tz = self.tz(a);
        let now_local = chrono::Utc::now().with_timezone(&tz);
        let since = tz
            .with_ymd_and_hms(now_local.year(), now_local.month(), 1, 0, 0, 0)
            .earliest()
            .map(|t| t.timestamp())
            .unwrap_or_else(|| now() - 31 * 86_400);
        let u = self.store.placed_usage(a.id, since).await?;
        Ok(MonthlyUsage {
            calls: u.calls,
            duration: u.duration,
            price: u.price,
        })
    }
}
