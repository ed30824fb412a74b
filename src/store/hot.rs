//! Connections kept out of the pool for the one read made on every certificate-authenticated
//! request (the serial check).
//!
//! Why: sqlx pings every connection it takes back into the pool; on SQLite that is a second
//! round trip to the connection's worker thread (two more context switches per request on a
//! busy machine), on PostgreSQL a second network round trip. A connection owned here answers
//! the query and nothing else. A connection that fails is dropped and replaced on next use,
//! so a store outage heals the same way as for pooled connections.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{Mutex, MutexGuard};

/// A few dedicated connections (taken from the pool once, then detached from it).
pub struct HotReaders {
    slots: Vec<Mutex<Option<AnyConnection>>>,
    next: AtomicUsize,
}

impl HotReaders {
    pub fn new(count: usize) -> Self {
        Self {
            slots: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A free slot if there is one, else the next one in turn.
    async fn slot(&self) -> MutexGuard<'_, Option<AnyConnection>> {
        for s in &self.slots {
            if let Ok(g) = s.try_lock() {
                return g;
            }
        }
        // In range: `slots` is never empty (see `new`).
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].lock().await
    }

    /// Runs `f` on a dedicated connection (opened from `pool`'s options on first use);
    /// the connection is dropped when `f` fails, so the next call opens a fresh one.
    pub async fn run<T, F>(&self, pool: &AnyPool, f: F) -> sqlx::Result<T>
    where
        F: for<'c> AsyncFnOnce(&'c mut AnyConnection) -> sqlx::Result<T>,
    {
        let mut slot = self.slot().await;
        let conn = match &mut *slot {
            Some(c) => c,
            empty => empty.insert(pool.acquire().await?.detach()),
        };
        let result = f(conn).await;
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Closes the dedicated connections (with the pool, at shutdown).
    pub async fn close(&self) {
        for s in &self.slots {
            let conn = s.lock().await.take();
            if let Some(c) = conn {
                let _ = sqlx::Connection::close(c).await;
            }
        }
    }
}
