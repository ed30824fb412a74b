//! `backup`: a consistent copy of a SQLite store taken while the server keeps running, and the
//! `pg_dump` advice for PostgreSQL (whose own tools do this better than we could).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use super::transfer::{sqlite_parts, sqlite_url};
use crate::config::redact_url;

/// What `backup_sqlite` wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
}

async fn pool(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let opts = AnyConnectOptions::from_str(url)
        .map_err(|e| anyhow::anyhow!("invalid database URL {}: {e}", redact_url(url)))?;
    AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // The server may hold the write lock for a moment.
                conn.execute("PRAGMA busy_timeout = 10000;").await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", redact_url(url)))
}

/// `PRAGMA integrity_check` of a SQLite file: `Ok` when it answers exactly `ok`.
pub async fn integrity_check(path: &Path) -> anyhow::Result<()> {
    let p = pool(&sqlite_url(&path.display().to_string(), "", "ro")).await?;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&p)
        .await?;
    p.close().await;
    if rows != ["ok"] {
        anyhow::bail!(
            "integrity check of {} failed: {}",
            path.display(),
            rows.join("; ")
        );
    }
    Ok(())
}

/// Writes a consistent snapshot of the SQLite store at `url` to `out` with `VACUUM INTO`
/// (a read transaction: the server keeps reading and writing meanwhile). The copy is made
/// beside `out` under a temporary name, checked with `PRAGMA integrity_check`, made private
/// (0600: it holds password hashes and sealed keys) and only then renamed to `out`, so `out`
/// is never a half-written file.
pub async fn backup_sqlite(url: &str, out: &Path, force: bool) -> anyhow::Result<BackupReport> {
    let Some((db_path, query)) = sqlite_parts(url) else {
        anyhow::bail!("{} is not a SQLite store", redact_url(url));
    };
    if !Path::new(&db_path).is_file() {
        anyhow::bail!("no SQLite store at {db_path}: nothing to back up");
    }
    if out.exists() && !force {
        anyhow::bail!(
            "{} already exists: choose another name or add --force to replace it",
            out.display()
        );
    }
    let file_name = out
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{} is not a file name", out.display()))?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        anyhow::bail!("directory {} does not exist", dir.display());
    }
    let tmp = dir.join(format!(
        ".{}.partial-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let tmp_text = tmp
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not valid UTF-8", tmp.display()))?
        .to_owned();
    let result = async {
        // A pool of its own rather than `Store::connect`: that one would create a missing file
        // (`mode=rwc`) and switch journal modes; a backup only reads.
        let p = pool(&sqlite_url(&db_path, &query, "rw")).await?;
        let vacuum = sqlx::query("VACUUM INTO $1")
            .bind(&tmp_text)
            .execute(&p)
            .await;
        p.close().await;
        vacuum.map_err(|e| anyhow::anyhow!("VACUUM INTO {}: {e}", tmp.display()))?;
        integrity_check(&tmp).await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        if force {
            std::fs::rename(&tmp, out)?;
        } else {
            // A hard link fails if `out` appeared meanwhile: never replace without --force.
            std::fs::hard_link(&tmp, out)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
            std::fs::remove_file(&tmp)?;
        }
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        path: out.to_path_buf(),
        bytes,
    })
}

/// The URL without its password (user info and `password=` query parameter), for commands
/// printed to be copied: tools take the password from `PGPASSWORD` or `~/.pgpass`.
pub fn url_without_password(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let scheme = base.get(..s + 3).unwrap_or("");
            let creds = base.get(s + 3..at).unwrap_or("");
            let host = base.get(at + 1..).unwrap_or("");
            match creds.split(':').next().unwrap_or("") {
                "" => format!("{scheme}{host}"),
                user => format!("{scheme}{user}@{host}"),
            }
        }
        _ => base.to_owned(),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.to_ascii_lowercase().starts_with("password="))
        .collect();
    if kept.is_empty() {
        base
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// `'text'` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What to run instead of `backup` on a PostgreSQL store.
pub fn pg_dump_advice(url: &str, out: &Path) -> String {
    let url = shell_quote(&url_without_password(url));
    let out = shell_quote(&out.display().to_string());
    format!(
        "The store is PostgreSQL: back it up with pg_dump (consistent while the server runs):\n  \
         pg_dump --format=custom --file={out} {url}\n\
         Restore into a new, empty database with:\n  \
         pg_restore --no-owner --dbname=<new database URL> {out}\n\
         The password is not shown: pg_dump reads it from PGPASSWORD or ~/.pgpass.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_removed_from_urls() {
        assert_eq!(
            url_without_password("postgres://u:hunter2@db:5432/x?sslmode=require&password=p"),
            "postgres://u@db:5432/x?sslmode=require"
        );
        assert_eq!(
            url_without_password("postgres://:pw@db/x"),
            "postgres://db/x"
        );
        assert_eq!(url_without_password("postgres://db/x"), "postgres://db/x");
        let advice = pg_dump_advice("postgres://u:hunter2@db/x", Path::new("it's.dump"));
        assert!(!advice.contains("hunter2"));
        assert!(
            advice.contains("pg_dump --format=custom --file='it'\\''s.dump' 'postgres://u@db/x'")
        );
    }
}
