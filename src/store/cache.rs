//! A short-lived cache of account rows for authentication, the hot path of every request.
//!
//! Consistency: writes through this process evict the account at commit; on PostgreSQL every
//! account write also sends `NOTIFY sipsettings_account` in its transaction, and each replica
//! evicts on receipt (while the listener is down the cache is bypassed). What remains is the
//! TTL bound for writes by other processes without notifications (the CLI on SQLite).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::domain::Account;

pub const NOTIFY_CHANNEL: &str = "sipsettings_account";

pub struct AccountCache {
    ttl: Duration,
    /// `user@domain` → (row, cached at)
    rows: Mutex<HashMap<String, (Account, Instant)>>,
    /// Whether invalidations from other replicas are arriving (always true on SQLite).
    pub trusted: AtomicBool,
    /// Bumped by every eviction: a row read before an eviction must not be cached after it.
    generation: AtomicU64,
}

impl AccountCache {
    pub fn new(ttl: Duration, trusted: bool) -> Self {
        Self {
            ttl,
            rows: Mutex::new(HashMap::new()),
            trusted: AtomicBool::new(trusted),
            generation: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.trusted.load(Ordering::Acquire)
    }

    pub fn get(&self, address: &str) -> Option<Account> {
        if !self.enabled() {
            return None;
        }
        let rows = self.rows.lock().ok()?;
        match rows.get(address) {
            Some((a, at)) if at.elapsed() < self.ttl => Some(a.clone()),
            _ => None,
        }
    }

    /// Take this before reading a row from the store, and pass it to `put`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches a row unless an eviction happened since `generation` was taken (the row may
    /// predate a write that committed meanwhile).
    pub fn put(&self, a: &Account, generation: u64) {
        if !self.enabled() {
            return;
        }
        if let Ok(mut rows) = self.rows.lock() {
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            if rows.len() > 100_000 {
                rows.clear();
            }
            rows.insert(a.address(), (a.clone(), Instant::now()));
        }
    }

    pub fn evict_id(&self, id: i64) {
        if let Ok(mut rows) = self.rows.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            rows.retain(|_, (a, _)| a.id != id);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut rows) = self.rows.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            rows.clear();
        }
    }

    pub fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::Release);
        if !trusted {
            self.clear();
        }
    }
}
