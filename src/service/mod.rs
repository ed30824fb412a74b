//! Services: every business rule, once. Wire adapters call these; these call the store.

mod accounts;
pub mod attrs;
mod certs;
mod feeds;
mod history;
pub mod ingest;
pub mod journal;
mod settings;
pub mod tenancy;

use std::sync::{Arc, Mutex};

use chrono_tz::Tz;

use crate::config::Config;
use crate::crypto::Keys;
use crate::domain::Account;
use crate::store::Store;
use crate::tls::Ca;

pub use accounts::{Identity, effective_no_answer_timeout, split_address};
pub use attrs::{MAX_PAGE, MonthUsage, normalize_attr, search_filter};
pub use certs::{CertAuthError, P12_PASSWORD_ERROR};
pub use feeds::{CallOutcome, NewVoicemail, TRANSPORTS};
pub use history::{ActiveCall, BalanceMove, CallHistory, CallView, Device, MonthlyUsage, Prepaid};
pub use ingest::{
    BalanceRecord, CdrRecord, FeedBatch, FeedKind, IngestError, IngestReport, MAX_BATCH,
    RegistrationRecord, parse_batch,
};
pub use settings::{AcceptRulesView, PersistentRule, Temporary, VoicemailView};

/// Limits from the original service (spec §3/§4).
pub const MAX_ALIASES: i64 = 20;
pub const MAX_ENUM: i64 = 10;
pub const HISTORY_DAYS: i64 = 14;
pub const HISTORY_PER_DIRECTION: i64 = 50;
pub const BALANCE_HISTORY: i64 = 200;
pub const MAX_REJECT_RULES: usize = 100;
pub const MAX_DND_MINUTES: i64 = 525_600;

#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub keys: Arc<Keys>,
    default_tz: Tz,
    journal: crate::config::JournalConfig,
    ca: Arc<CaSlot>,
    parsed_certs: Arc<certs::ParsedCerts>,
}

/// The built-in CA, loaded (or created) on first use.
struct CaSlot {
    cfg: Config,
    ca: Mutex<Option<Arc<Ca>>>,
}

impl Services {
    pub fn new(store: Store, keys: Keys, cfg: &Config) -> Self {
        Self {
            store,
            keys: Arc::new(keys),
            default_tz: cfg.default_timezone.parse().unwrap_or(Tz::UTC),
            journal: cfg.journal.clone(),
            ca: Arc::new(CaSlot {
                cfg: cfg.clone(),
                ca: Mutex::new(None),
            }),
            parsed_certs: Arc::default(),
        }
    }

    /// The built-in CA (created in the data dir at first use unless configured).
    pub fn ca(&self) -> anyhow::Result<Arc<Ca>> {
        let mut slot = match self.ca.ca.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(ca) = slot.as_ref() {
            return Ok(ca.clone());
        }
        let ca = Arc::new(Ca::load_or_create(&self.ca.cfg)?);
        *slot = Some(ca.clone());
        Ok(ca)
    }

    /// Days a newly issued client certificate is valid.
    pub fn client_cert_days(&self) -> u32 {
        self.ca.cfg.tls.client_cert_days.max(1)
    }

    /// The account's timezone, or the configured default when unset or unknown.
    pub fn tz(&self, a: &Account) -> Tz {
        a.timezone
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(self.default_tz)
    }
}

/// Formats unix seconds as local `%Y-%m-%d %H:%M:%S` in `tz`.
pub fn local_time(ts: i64, tz: Tz) -> String {
    match chrono::DateTime::from_timestamp(ts, 0) {
        Some(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        None => String::new(),
    }
}
