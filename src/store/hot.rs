//! Connections kept out of the pool for the one read made on every certificate-authenticated
//! request (the serial check).
//!
//! Why: sqlx pings every connection it takes back into the pool; on SQLite that is a second
//! round trip to the connection's worker thread (two more context switches per request on a
//! busy machine), on PostgreSQL a second network round trip. A connection owned here answers
//! the query and nothing else. A connection that fails is dropped and replaced on next use,
//! so a store outage heals the same way as for pooled connections.
//!
//! On SQLite even a dedicated sqlx connection costs two thread hand-offs per query (each
//! sqlx SQLite connection lives on a worker thread of its own): on a busy machine that was
//! a quarter of what a client certificate adds to a TLS handshake, for a query of ~1 µs.
//! [`SqliteDirect`] answers that one read on the calling thread instead, from connections
//! of its own to the same database file (WAL: readers never wait for the writer).

use std::path::PathBuf;
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

/// Synchronous read-only connections to a SQLite database file, for reads of one indexed row
/// short enough to run on an async worker thread (microseconds). Anything unusual — no free
/// connection, a busy or failing database — answers `None`, and the caller takes the pool.
pub struct SqliteDirect {
    path: PathBuf,
    slots: Vec<std::sync::Mutex<Option<rusqlite::Connection>>>,
}

impl SqliteDirect {
    pub fn new(path: PathBuf, count: usize) -> Self {
        Self {
            path,
            slots: (0..count.max(1))
                .map(|_| std::sync::Mutex::new(None))
                .collect(),
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        // Never creates the file: it is the store's, opened (and migrated) by the pool first.
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A reader that must wait gives up at once: the pool's path waits instead, off this
        // thread. query_only: this handle can never write, whatever it is given.
        conn.execute_batch(
            "PRAGMA busy_timeout = 0; PRAGMA query_only = ON; PRAGMA mmap_size = 268435456;",
        )?;
        Ok(conn)
    }

    /// Runs `f` on a free connection (opened on first use); `None` when every connection is
    /// in use or the read failed (the connection is then reopened on next use).
    pub fn try_run<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let mut slot = self.slots.iter().find_map(|s| s.try_lock().ok())?;
        let conn = match &mut *slot {
            Some(c) => c,
            empty => empty.insert(self.open().ok()?),
        };
        match f(conn) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!("direct SQLite read failed, using the pool: {e}");
                *slot = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SqliteDirect;

    #[test]
    fn direct_reads_answer_or_step_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        // No file: never created here, the caller is told to use the pool.
        let direct = SqliteDirect::new(path.clone(), 1);
        assert_eq!(
            direct.try_run(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))),
            None
        );
        assert!(!path.exists());
        let setup = rusqlite::Connection::open(&path).unwrap();
        setup
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);",
            )
            .unwrap();
        let read = |d: &SqliteDirect| {
            d.try_run(|c| c.query_row("SELECT v FROM t", [], |r| r.get::<_, i64>(0)))
        };
        assert_eq!(read(&direct), Some(7));
        // A committed write is seen by the next read (no stale snapshot is kept).
        setup.execute("UPDATE t SET v = 8", []).unwrap();
        assert_eq!(read(&direct), Some(8));
        // Read-only: a write is refused (and reported as "use the pool").
        assert_eq!(direct.try_run(|c| c.execute("DELETE FROM t", [])), None);
        assert_eq!(read(&direct), Some(8));
        // Every connection busy: step aside instead of waiting.
        let held = direct.slots[0].lock().unwrap();
        assert_eq!(read(&direct), None);
        drop(held);
        assert_eq!(read(&direct), Some(8));
    }
}
