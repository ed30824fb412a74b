//! The store: one API over SQLite and PostgreSQL through `sqlx::Any`.
//!
//! The SQL text is the same for both backends wherever it is portable (`$n` markers,
//! `ON CONFLICT`, `RETURNING`, integer times); every query runs in the test suite on both.

#[macro_use]
mod accounts;
mod attrs;
pub mod backup;
pub mod cache;
mod certs;
mod history;
mod hot;
mod journal;
pub mod mirror;
mod settings;
mod tenancy;
pub mod transfer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::{Config, redact_url};
use crate::domain::Account;
use cache::AccountCache;

pub use accounts::{AccountUpdate, NewAccountSecrets};
pub use certs::{ClientCertListing, ClientCertRow, NewClientCert};
pub use history::BalanceChange;
pub use journal::{JournalQuery, JournalRow, NewJournalEntry};
pub use tenancy::CustomerFilter;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer: queueing writers here is fairer and cheaper than
    /// letting them spin on `busy_timeout`. Unused on PostgreSQL.
    write_lock: Arc<Mutex<()>>,
    pub cache: Arc<AccountCache>,
    /// Dedicated connections for the per-request certificate serial check.
    hot: Arc<hot::HotReaders>,
    /// SQLite in a file: the same check on the calling thread (see `hot`).
    direct: Option<Arc<hot::SqliteDirect>>,
    /// Large customers' search texts in memory, for the totals of substring searches.
    mirror: Arc<mirror::SearchMirror>,
    listener: Option<Arc<tokio::task::JoinHandle<()>>>,
}

/// A write transaction; on SQLite it also holds the writer slot until it ends.
pub struct WriteTx {
    pub tx: Transaction<'static, sqlx::Any>,
    _slot: Option<OwnedMutexGuard<()>>,
    backend: Backend,
    cache: Arc<AccountCache>,
    /// Accounts whose row this transaction changed: evicted everywhere at commit.
    touched: Vec<i64>,
}

const NOTIFY_CHUNK: usize = 50;
static NOTIFY_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let calls: Vec<String> = (2..NOTIFY_CHUNK + 2)
        .map(|i| format!("pg_notify($1, ${i})"))
        .collect();
    format!("SELECT {}", calls.join(", "))
});

impl WriteTx {
    pub async fn commit(mut self) -> sqlx::Result<()> {
        if self.backend == Backend::Postgres {
            // Batches of NOTIFY_CHUNK per statement (one prepared statement: a short last
            // batch repeats its last id; PostgreSQL folds identical notifications).
            for chunk in self.touched.chunks(NOTIFY_CHUNK) {
                let mut q = sqlx::query(NOTIFY_SQL.as_str()).bind(cache::NOTIFY_CHANNEL);
                for i in 0..NOTIFY_CHUNK {
                    let id = chunk.get(i).or(chunk.last()).copied().unwrap_or_default();
                    q = q.bind(id.to_string());
                }
                q.execute(&mut *self.tx).await?;
            }
        }
        let touched = std::mem::take(&mut self.touched);
        let cache = self.cache.clone();
        let result = self.tx.commit().await;
        // Evict even when the commit failed: the outcome may be unknown.
        for id in touched {
            cache.evict_id(id);
        }
        result
    }
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
    /// Marks an account row as changed by this transaction.
    pub fn touch(&mut self, account_id: i64) {
        if !self.touched.contains(&account_id) {
            self.touched.push(account_id);
        }
    }
}

impl Store {
    /// Connects (creating the SQLite file and data dir when needed) without migrating.
    pub async fn connect(cfg: &Config) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let url = cfg.database_url();
        let backend = if cfg.is_postgres() {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
                anyhow::anyhow!("cannot create data dir {}: {e}", cfg.data_dir.display())
            })?;
            Backend::Sqlite
        } else {
            anyhow::bail!(
                "unsupported database URL {}: use sqlite://… or postgres://…",
                redact_url(&url)
            );
        };
        let opts = AnyConnectOptions::from_str(&url)
            .map_err(|e| anyhow::anyhow!("invalid database URL {}: {e}", redact_url(&url)))?;
        let mut pool_opts = AnyPoolOptions::new()
            .max_connections(cfg.database.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(
                cfg.database.acquire_timeout_secs.max(1),
            ))
            // A pooled SQLite connection is a local file handle that cannot go stale; the
            // ping before each checkout would double the round trips to its worker thread
            // (it was a third of the client-certificate check). PostgreSQL connections can
            // die with the server, so they keep it.
            .test_before_acquire(backend == Backend::Postgres);
        if backend == Backend::Sqlite {
            pool_opts = pool_opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        // mmap: reads of large tables (operator listings over many accounts)
                        // come from the shared page cache instead of a read() per page.
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                         PRAGMA mmap_size = 268435456;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool_opts
            .connect_with(opts)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", redact_url(&url)))?;
        let ttl = Duration::from_millis(cfg.database.account_cache_ms);
        let cache = Arc::new(AccountCache::new(ttl, backend == Backend::Sqlite));
        let direct = match backend {
            Backend::Sqlite => sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .ok()
                .map(|o| o.get_filename().to_path_buf())
                // An in-memory database is only reachable through the pool.
                .filter(|p| p.is_file())
                .map(|p| Arc::new(hot::SqliteDirect::new(p, 4))),
            Backend::Postgres => None,
        };
        let mirror = Arc::new(mirror::SearchMirror::new(
            cfg.database.search_mirror_min_accounts,
            mirror::RELOAD_AFTER,
            mirror::IDLE_AFTER,
        ));
        let listener = if backend == Backend::Postgres && !ttl.is_zero() {
            Some(Arc::new(tokio::spawn(listen_for_evictions(
                url,
                cache.clone(),
            ))))
        } else {
            None
        };
        Ok(Store {
            pool,
            backend,
            write_lock: Arc::new(Mutex::new(())),
            cache,
            hot: Arc::new(hot::HotReaders::new(2)),
            direct,
            mirror,
            listener,
        })
    }

    /// Connects and applies pending migrations.
    pub async fn open(cfg: &Config) -> anyhow::Result<Store> {
        let store = Self::connect(cfg).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// True when the store answers and every known migration is applied.
    pub async fn ready(&self) -> bool {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        let latest = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await;
        matches!(applied, Ok(Some(v)) if v >= latest)
    }

    pub async fn begin_write(&self) -> sqlx::Result<WriteTx> {
        match self.backend {
            Backend::Sqlite => {
                let slot = self.write_lock.clone().lock_owned().await;
                // IMMEDIATE takes the write lock up front, so a read-then-write transaction
                // never fails half-way on lock upgrade (other processes wait on busy_timeout).
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx {
                    tx,
                    _slot: Some(slot),
                    backend: self.backend,
                    cache: self.cache.clone(),
                    touched: Vec::new(),
                })
            }
            Backend::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await?,
                _slot: None,
                backend: self.backend,
                cache: self.cache.clone(),
                touched: Vec::new(),
            }),
        }
    }

    /// The account for authentication, from the cache when it can be trusted.
    pub async fn account_for_auth(
        &self,
        username: &str,
        domain: &str,
    ) -> sqlx::Result<Option<Account>> {
        let key = format!("{username}@{domain}");
        if let Some(a) = self.cache.get(&key) {
            return Ok(Some(a));
        }
        let generation = self.cache.generation();
        let a = self.account_by_address(username, domain).await?;
        if let Some(a) = &a {
            self.cache.put(a, generation);
        }
        Ok(a)
    }

    pub async fn close(&self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
        self.hot.close().await;
        self.pool.close().await;
    }
}

/// Evicts accounts changed by other replicas. While the listener is not connected the
/// cache is not trusted (every request reads the store).
async fn listen_for_evictions(url: String, cache: Arc<AccountCache>) {
    use sqlx::postgres::PgListener;
    loop {
        cache.set_trusted(false);
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("account cache listener cannot connect: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(cache::NOTIFY_CHANNEL).await {
            tracing::warn!("account cache listener cannot LISTEN: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        cache.set_trusted(true);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => match n.payload().parse::<i64>() {
                    Ok(id) => cache.evict_id(id),
                    Err(_) => cache.clear(),
                },
                // Connection lost: notifications may have been missed.
                Ok(None) => {
                    cache.set_trusted(false);
                }
                Err(_) => break,
            }
            if !cache.trusted.load(std::sync::atomic::Ordering::Acquire) {
                // try_recv reconnects on the next call; LISTEN again to be sure.
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
