//! The store: one API over SQLite and PostgreSQL through `sqlx::Any`.
//!
//! The SQL text is the same for both backends wherever it is portable (`$n` markers,
//! `ON CONFLICT`, `RETURNING`, integer times); every query runs in the test suite on both.

mod accounts;
mod certs;
mod history;
mod settings;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::{Config, redact_url};

pub use accounts::AccountUpdate;
pub use certs::{ClientCertListing, ClientCertRow, NewClientCert};
pub use history::BalanceChange;

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
}

/// A write transaction; on SQLite it also holds the writer slot until it ends.
pub struct WriteTx {
    pub tx: Transaction<'static, sqlx::Any>,
    _slot: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
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
            ));
        if backend == Backend::Sqlite {
            pool_opts = pool_opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
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
        Ok(Store {
            pool,
            backend,
            write_lock: Arc::new(Mutex::new(())),
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
                })
            }
            Backend::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await?,
                _slot: None,
            }),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
