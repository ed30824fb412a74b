//! `migrate-store`: copies every table of one store into another (SQLite ↔ PostgreSQL).
//!
//! Nothing here names a table or a column: tables, columns, primary keys and foreign keys are
//! read from both schemas at run time, so later migrations are copied without changes here.
//! The source is read inside one snapshot transaction (consistent even if a server still
//! writes to it); the target is written in transactions of `BATCH_ROWS` rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow, AnyTypeInfoKind};
use sqlx::query::Query;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor, Row, ValueRef};

use super::{Backend, POSTGRES_MIGRATOR, SQLITE_MIGRATOR};
use crate::config::redact_url;

/// Rows read, and written in one target transaction, at a time.
pub const BATCH_ROWS: usize = 1000;
/// Bound parameters per INSERT statement: below SQLite's 32 766 and PostgreSQL's 65 535.
const MAX_PARAMS: usize = 30_000;

/// One value as stored. SQLite values keep their storage class (`typeof`), not the
/// declared column type.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

impl Val {
    fn kind_name(&self) -> &'static str {
        match self {
            Val::Null => "NULL",
            Val::Int(_) => "an integer",
            Val::Real(_) => "a real",
            Val::Text(_) => "text",
            Val::Blob(_) => "a blob",
            Val::Bool(_) => "a boolean",
        }
    }
}

/// What a column stores, from its declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Real,
    Text,
    Blob,
    Bool,
    /// SQLite NUMERIC/BLOB affinity or no declared type: values are stored as they come.
    Untyped,
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    kind: Kind,
    /// PostgreSQL: the declared type (`format_type`), used to cast bound parameters.
    sql_type: String,
    /// PostgreSQL: a type the `Any` driver cannot decode (uuid, numeric, json…): read as text.
    as_text: bool,
}

#[derive(Clone, Debug)]
struct Table {
    name: String,
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// Tables this one refers to (other than itself).
    parents: BTreeSet<String>,
    /// `(column, referenced column)` of foreign keys into the same table.
    self_refs: Vec<(String, String)>,
    /// SQLite `AUTOINCREMENT`: the high-water mark lives in `sqlite_sequence`.
    autoincrement: bool,
}

impl Table {
    fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// `"name"` with embedded quotes doubled: valid on both backends.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A store endpoint given on the command line.
struct Endpoint {
    backend: Backend,
    pool: AnyPool,
}

/// The path and query of a `sqlite:` URL (`sqlite://rel.db`, `sqlite:///abs.db`, `sqlite:x.db`).
pub(crate) fn sqlite_parts(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    Some((path.to_owned(), query.to_owned()))
}

/// The URL to connect with: `mode` added unless the caller chose one.
pub(crate) fn sqlite_url(path: &str, query: &str, mode: &str) -> String {
    if query.split('&').any(|kv| kv.starts_with("mode=")) {
        format!("sqlite://{path}?{query}")
    } else if query.is_empty() {
        format!("sqlite://{path}?mode={mode}")
    } else {
        format!("sqlite://{path}?{query}&mode={mode}")
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

async fn open(url: &str, target: bool) -> anyhow::Result<Endpoint> {
    sqlx::any::install_default_drivers();
    let shown = redact_url(url);
    let (backend, connect_url) = if is_postgres_url(url) {
        (Backend::Postgres, url.to_owned())
    } else if let Some((path, query)) = sqlite_parts(url) {
        if path.is_empty() || path.starts_with(":memory:") {
            anyhow::bail!("{shown}: a SQLite store must be a file");
        }
        let p = Path::new(&path);
        if target {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            }
        } else if !p.is_file() {
            anyhow::bail!("{shown}: no such SQLite file");
        }
        // The source is only read, but WAL readers need write access to the -shm file.
        let mode = if target { "rwc" } else { "rw" };
        (Backend::Sqlite, sqlite_url(&path, &query, mode))
    } else {
        anyhow::bail!("unsupported store URL {shown}: use sqlite://PATH or postgres://…");
    };
    let opts = AnyConnectOptions::from_str(&connect_url)
        .map_err(|e| anyhow::anyhow!("invalid store URL {shown}: {e}"))?;
    // One connection: the source's holds the snapshot, the target is written in order.
    let mut pool_opts = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30));
    if backend == Backend::Sqlite {
        pool_opts = pool_opts.after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                    .await?;
                Ok(())
            })
        });
    }
    let pool = pool_opts
        .connect_with(opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {shown}: {e}"))?;
    Ok(Endpoint { backend, pool })
}

fn migrator(backend: Backend) -> &'static sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    }
}

/// The source must be at exactly the migrations this binary knows, so that both schemas match.
async fn check_source_version(conn: &mut AnyConnection, backend: Backend) -> anyhow::Result<()> {
    let exists_sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname = '_sqlx_migrations'"
        }
    };
    let exists: i64 = sqlx::query_scalar(exists_sql).fetch_one(&mut *conn).await?;
    if exists == 0 {
        anyhow::bail!("the source is not a sipsettings store (it has no _sqlx_migrations table)");
    }
    let applied: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await?;
    let known: BTreeSet<i64> = migrator(backend)
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let applied: BTreeSet<i64> = applied.into_iter().collect();
    let unknown: Vec<i64> = applied.difference(&known).copied().collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "the source has migrations this sipsettings does not know ({unknown:?}): \
             run migrate-store with the sipsettings version that wrote it"
        );
    }
    let missing: Vec<i64> = known.difference(&applied).copied().collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the source lacks migrations {missing:?}: run `sipsettings migrate` against it \
             (or start the server on it once), then try again"
        );
    }
    Ok(())
}

fn sqlite_kind(declared: &str) -> Kind {
    // SQLite's affinity rules (datatype3.html §3.1), plus BOOL for symmetry with PostgreSQL.
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Kind::Int
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Kind::Text
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Kind::Real
    } else if t.contains("BOOL") {
        Kind::Bool
    } else {
        Kind::Untyped
    }
}

/// `(kind, read as text)` of a PostgreSQL type name (`pg_type.typname`).
fn postgres_kind(typname: &str) -> (Kind, bool) {
    match typname {
        "int2" | "int4" | "int8" => (Kind::Int, false),
        "bool" => (Kind::Bool, false),
        "bytea" => (Kind::Blob, false),
        "float4" | "float8" => (Kind::Real, false),
        "text" | "varchar" | "bpchar" => (Kind::Text, false),
        _ => (Kind::Text, true),
    }
}

async fn sqlite_schema(conn: &mut AnyConnection) -> anyhow::Result<Vec<Table>> {
    let names: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite!_%' ESCAPE '!' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for (name, sql) in names {
        let cols: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid")
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
        let mut pk: Vec<(i64, String)> = cols
            .iter()
            .filter(|c| c.2 > 0)
            .map(|c| (c.2, c.0.clone()))
            .collect();
        pk.sort();
        let primary_key: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        let fks: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list($1) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
        let mut parents = BTreeSet::new();
        let mut self_refs = Vec::new();
        for (parent, from, to) in fks {
            if parent.eq_ignore_ascii_case(&name) {
                // `to` is NULL when the key names the parent's primary key implicitly.
                let to = to
                    .or_else(|| primary_key.first().cloned())
                    .unwrap_or_default();
                self_refs.push((from, to));
            } else {
                parents.insert(parent);
            }
        }
        tables.push(Table {
            columns: cols
                .into_iter()
                .map(|(n, t, _)| Column {
                    kind: sqlite_kind(&t),
                    name: n,
                    sql_type: t,
                    as_text: false,
                })
                .collect(),
            primary_key,
            parents,
            self_refs,
            autoincrement: sql.to_ascii_uppercase().contains("AUTOINCREMENT"),
            name,
        });
    }
    Ok(tables)
}

async fn postgres_schema(conn: &mut AnyConnection) -> anyhow::Result<Vec<Table>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind = 'r' \
         AND c.relname <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        // Generated columns are computed by the target itself.
        let cols: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid \
             WHERE n.nspname = current_schema() AND c.relname = $1 AND a.attnum > 0 \
             AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
        let primary_key: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE n.nspname = current_schema() AND c.relname = $1 AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
        let fks: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT p.relname::text, \
               (SELECT a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1]), \
               (SELECT a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = k.confrelid AND a.attnum = k.confkey[1]), \
               cardinality(k.conkey)::bigint \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class p ON p.oid = k.confrelid \
             WHERE k.contype = 'f' AND n.nspname = current_schema() AND c.relname = $1 \
             ORDER BY k.conname",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
        let mut parents = BTreeSet::new();
        let mut self_refs = Vec::new();
        for (parent, from, to, width) in fks {
            if parent == name {
                if width != 1 {
                    anyhow::bail!(
                        "table {name} has a multi-column foreign key into itself: not supported"
                    );
                }
                self_refs.push((from, to));
            } else {
                parents.insert(parent);
            }
        }
        tables.push(Table {
            columns: cols
                .into_iter()
                .map(|(n, sql_type, typname)| {
                    let (kind, as_text) = postgres_kind(&typname);
                    Column {
                        name: n,
                        kind,
                        sql_type,
                        as_text,
                    }
                })
                .collect(),
            primary_key,
            parents,
            self_refs,
            autoincrement: false,
            name,
        });
    }
    Ok(tables)
}

/// Columns that the target's triggers compute from other data (search indexes): never copied,
/// never compared, and free to exist on one backend only.
const DERIVED_COLUMNS: &[(&str, &str)] = &[("accounts", "search_text")];

/// Tables that the target's triggers fill from other data: never copied, never compared
/// (`search_versions` counts changes, so each store has its own numbers).
const DERIVED_TABLES: &[&str] = &["search_versions"];

async fn schema(conn: &mut AnyConnection, backend: Backend) -> anyhow::Result<Vec<Table>> {
    let mut tables = match backend {
        Backend::Sqlite => sqlite_schema(conn).await?,
        Backend::Postgres => postgres_schema(conn).await?,
    };
    if backend == Backend::Sqlite {
        // Full-text indexes (virtual tables and their shadow tables) are derived data that the
        // target's triggers rebuild; PostgreSQL keeps the same search in a derived column.
        let virtuals: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND UPPER(COALESCE(sql, '')) LIKE 'CREATE VIRTUAL TABLE%'",
        )
        .fetch_all(&mut *conn)
        .await?;
        tables.retain(|t| {
            !virtuals
                .iter()
                .any(|v| t.name == *v || t.name.starts_with(&format!("{v}_")))
        });
    }
    tables.retain(|t| !DERIVED_TABLES.contains(&t.name.as_str()));
    for t in &mut tables {
        t.columns
            .retain(|c| !DERIVED_COLUMNS.contains(&(t.name.as_str(), c.name.as_str())));
    }
    Ok(tables)
}

/// Tables ordered parents first, from the foreign keys of both schemas (SQLite cannot add a
/// foreign key with `ALTER TABLE`, so one side may know edges the other lacks).
fn copy_order(source: &[Table], target: &[Table]) -> anyhow::Result<Vec<String>> {
    let names: BTreeSet<&str> = source.iter().map(|t| t.name.as_str()).collect();
    let mut parents: BTreeMap<&str, BTreeSet<&str>> =
        names.iter().map(|n| (*n, BTreeSet::new())).collect();
    for t in source.iter().chain(target) {
        if let Some(set) = parents.get_mut(t.name.as_str()) {
            for p in &t.parents {
                if let Some(p) = names.get(p.as_str()) {
                    set.insert(p);
                }
            }
        }
    }
    let mut order = Vec::with_capacity(names.len());
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while order.len() < names.len() {
        // Alphabetical among the ready ones: the same store always copies in the same order.
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(n, ps)| !done.contains(*n) && ps.iter().all(|p| done.contains(p)))
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            let stuck: Vec<&str> = names
                .iter()
                .filter(|n| !done.contains(*n))
                .copied()
                .collect();
            anyhow::bail!(
                "the foreign keys of tables {} form a cycle: cannot order the copy",
                stuck.join(", ")
            );
        }
        for n in ready {
            done.insert(n);
            order.push(n.to_owned());
        }
    }
    Ok(order)
}

fn row_values(row: &AnyRow) -> anyhow::Result<Vec<Val>> {
    let mut out = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(Val::Null);
            continue;
        }
        let kind = raw.type_info().kind();
        out.push(match kind {
            AnyTypeInfoKind::Null => Val::Null,
            AnyTypeInfoKind::Bool => Val::Bool(row.try_get(i)?),
            AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
                Val::Int(row.try_get(i)?)
            }
            AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => Val::Real(row.try_get(i)?),
            AnyTypeInfoKind::Text => Val::Text(row.try_get(i)?),
            AnyTypeInfoKind::Blob => Val::Blob(row.try_get(i)?),
        });
    }
    Ok(out)
}

/// The value as the target column stores it; only lossless changes are made.
fn convert(v: Val, to: Kind, table: &str, column: &str) -> anyhow::Result<Val> {
    Ok(match (v, to) {
        (Val::Null, _) => Val::Null,
        (v, Kind::Untyped) => v,
        (Val::Int(i), Kind::Int) => Val::Int(i),
        (Val::Bool(b), Kind::Int) => Val::Int(i64::from(b)),
        (Val::Int(i), Kind::Bool) if i == 0 || i == 1 => Val::Bool(i == 1),
        (Val::Bool(b), Kind::Bool) => Val::Bool(b),
        (Val::Int(i), Kind::Real) => Val::Real(i as f64),
        (Val::Real(r), Kind::Real) => Val::Real(r),
        (Val::Text(t), Kind::Text) => Val::Text(t),
        (Val::Blob(b), Kind::Blob) => Val::Blob(b),
        (Val::Text(t), Kind::Blob) => Val::Blob(t.into_bytes()),
        (v, to) => anyhow::bail!(
            "{table}.{column}: cannot store {} ({v:?}) in a {to:?} column",
            v.kind_name()
        ),
    })
}

fn bind(
    q: Query<'_, sqlx::Any, AnyArguments>,
    v: Val,
    kind: Kind,
) -> Query<'_, sqlx::Any, AnyArguments> {
    match v {
        Val::Null => match kind {
            Kind::Int => q.bind(None::<i64>),
            Kind::Real => q.bind(None::<f64>),
            Kind::Bool => q.bind(None::<bool>),
            Kind::Blob => q.bind(None::<Vec<u8>>),
            Kind::Text | Kind::Untyped => q.bind(None::<String>),
        },
        Val::Int(i) => q.bind(i),
        Val::Real(r) => q.bind(r),
        Val::Text(t) => q.bind(t),
        Val::Blob(b) => q.bind(b),
        Val::Bool(b) => q.bind(b),
    }
}

/// The select list of a table (PostgreSQL types the driver cannot decode are read as text).
fn select_list(t: &Table) -> String {
    t.columns
        .iter()
        .map(|c| {
            if c.as_text {
                format!("CAST({} AS text)", ident(&c.name))
            } else {
                ident(&c.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn read_all(conn: &mut AnyConnection, t: &Table) -> anyhow::Result<Vec<Vec<Val>>> {
    let order = if t.primary_key.is_empty() {
        String::new()
    } else {
        let cols: Vec<String> = t.primary_key.iter().map(|c| ident(c)).collect();
        format!(" ORDER BY {}", cols.join(", "))
    };
    let sql = format!("SELECT {} FROM {}{order}", select_list(t), ident(&t.name));
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(row_values).collect()
}

async fn count(conn: &mut AnyConnection, table: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT COUNT(*) FROM {}", ident(table));
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await?)
}

/// Rows ordered so that a row comes after the row its self-reference names (resellers'
/// `parent_id`): a parent may have been re-pointed after its children were made.
fn parents_first(t: &Table, rows: Vec<Vec<Val>>) -> anyhow::Result<Vec<Vec<Val>>> {
    let mut refs = Vec::new();
    for (from, to) in &t.self_refs {
        match (t.position(from), t.position(to)) {
            (Some(f), Some(k)) => refs.push((f, k)),
            _ => anyhow::bail!("{}: self-reference {from} → {to} not in the schema", t.name),
        }
    }
    let key = |v: &Val| format!("{v:?}");
    // For each referenced column, the row holding each value.
    let mut holder: Vec<HashMap<String, usize>> = Vec::with_capacity(refs.len());
    for (_, k) in &refs {
        let mut m = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            if let Some(v) = r.get(*k).filter(|v| **v != Val::Null) {
                m.insert(key(v), i);
            }
        }
        holder.push(m);
    }
    let mut waiting = vec![0usize; rows.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    for (i, r) in rows.iter().enumerate() {
        for ((f, _), m) in refs.iter().zip(&holder) {
            let parent = r
                .get(*f)
                .filter(|v| **v != Val::Null)
                .and_then(|v| m.get(&key(v)));
            if let Some(&p) = parent.filter(|p| **p != i)
                && let (Some(w), Some(c)) = (waiting.get_mut(i), children.get_mut(p))
            {
                *w += 1;
                c.push(i);
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..rows.len())
        .filter(|i| waiting.get(*i) == Some(&0))
        .collect();
    let mut order = Vec::with_capacity(rows.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for c in children.get(i).cloned().unwrap_or_default() {
            if let Some(w) = waiting.get_mut(c) {
                *w -= 1;
                if *w == 0 {
                    ready.push_back(c);
                }
            }
        }
    }
    if order.len() != rows.len() {
        anyhow::bail!("rows of table {} refer to each other in a cycle", t.name);
    }
    let mut slots: Vec<Option<Vec<Val>>> = rows.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect())
}

/// Writes `rows` (in source column order) into the target in one transaction.
async fn write_batch(
    conn: &mut AnyConnection,
    backend: Backend,
    source: &Table,
    target: &Table,
    rows: Vec<Vec<Val>>,
) -> anyhow::Result<()> {
    let mut cols = Vec::with_capacity(source.columns.len());
    for c in &source.columns {
        let tc = target.column(&c.name).ok_or_else(|| {
            anyhow::anyhow!("column {}.{} is missing in the target", target.name, c.name)
        })?;
        cols.push(tc);
    }
    let per_stmt = (MAX_PARAMS / cols.len().max(1)).clamp(1, BATCH_ROWS);
    let col_list = cols
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tx = conn.begin().await?;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(per_stmt).collect();
        let mut sql = format!("INSERT INTO {} ({col_list}) VALUES ", ident(&target.name));
        let mut n = 0usize;
        for r in 0..chunk.len() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for (i, c) in cols.iter().enumerate() {
                n += 1;
                if i > 0 {
                    sql.push_str(", ");
                }
                match backend {
                    // Explicit casts: parameters arrive as int8/text/bool/bytea/float8.
                    Backend::Postgres => sql.push_str(&format!("CAST(${n} AS {})", c.sql_type)),
                    Backend::Sqlite => sql.push_str(&format!("${n}")),
                }
            }
            sql.push(')');
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            for (v, c) in row.into_iter().zip(&cols) {
                let v = convert(v, c.kind, &target.name, &c.name)?;
                q = bind(q, v, c.kind);
            }
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| anyhow::anyhow!("inserting into {}: {e}", target.name))?;
    }
    tx.commit().await?;
    Ok(())
}

/// Fresh-migration rows (e.g. the `default` customer) by table, with their column names: what
/// an empty target holds.
async fn baseline_rows() -> anyhow::Result<BTreeMap<String, (Vec<String>, Vec<Vec<Val>>)>> {
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    SQLITE_MIGRATOR.run(&pool).await?;
    let mut conn = pool.acquire().await?;
    let mut out = BTreeMap::new();
    for t in sqlite_schema(&mut conn).await? {
        let rows = read_all(&mut conn, &t).await?;
        let names = t.columns.iter().map(|c| c.name.clone()).collect();
        out.insert(t.name.clone(), (names, rows));
    }
    drop(conn);
    pool.close().await;
    Ok(out)
}

/// Refuses a target that holds anything besides what its migrations inserted.
async fn ensure_empty(conn: &mut AnyConnection, tables: &[Table]) -> anyhow::Result<()> {
    let baseline = baseline_rows().await?;
    let mut used = Vec::new();
    for t in tables {
        let n = count(conn, &t.name).await?;
        if n == 0 {
            continue;
        }
        let same = match baseline.get(&t.name) {
            Some((names, base)) if usize::try_from(n).ok() == Some(base.len()) => {
                let rows = read_all(conn, t).await?;
                let mut expected = Vec::with_capacity(base.len());
                for r in base {
                    // In the target's column order, as the target stores the values.
                    let mut row = Vec::with_capacity(t.columns.len());
                    for c in &t.columns {
                        let v = names
                            .iter()
                            .position(|n| *n == c.name)
                            .and_then(|i| r.get(i))
                            .cloned()
                            .unwrap_or(Val::Null);
                        row.push(convert(v, c.kind, &t.name, &c.name)?);
                    }
                    expected.push(row);
                }
                rows == expected
            }
            _ => false,
        };
        if !same {
            used.push(format!("{} ({n} rows)", t.name));
        }
    }
    if !used.is_empty() {
        anyhow::bail!(
            "the target store is not empty: {}. Copy into an empty store, or add --force to \
             DELETE everything in the target first",
            used.join(", ")
        );
    }
    Ok(())
}

/// High-water marks of id generators in the source, by `(table, column)`: a deleted newest
/// row (e.g. a journal entry) must not get its id reused on the target.
async fn source_counters(
    conn: &mut AnyConnection,
    backend: Backend,
    tables: &[Table],
) -> anyhow::Result<HashMap<(String, String), i64>> {
    let mut out = HashMap::new();
    match backend {
        Backend::Sqlite => {
            let has_seq: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
            )
            .fetch_one(&mut *conn)
            .await?;
            if has_seq > 0 {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT name, seq FROM sqlite_sequence")
                        .fetch_all(&mut *conn)
                        .await?;
                for (name, seq) in rows {
                    let pk = tables
                        .iter()
                        .find(|t| t.name == name)
                        .and_then(|t| t.primary_key.first());
                    if let Some(pk) = pk {
                        out.insert((name, pk.clone()), seq);
                    }
                }
            }
        }
        Backend::Postgres => {
            for t in tables {
                for c in t.columns.iter().filter(|c| c.kind == Kind::Int) {
                    if let Some(seq) = serial_sequence(conn, &t.name, &c.name).await? {
                        let (last, called): (i64, bool) = sqlx::query_as(AssertSqlSafe(format!(
                            "SELECT last_value, is_called FROM {seq}"
                        )))
                        .fetch_one(&mut *conn)
                        .await?;
                        out.insert(
                            (t.name.clone(), c.name.clone()),
                            if called { last } else { last - 1 },
                        );
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The sequence feeding a PostgreSQL column (serial or identity), already quoted.
async fn serial_sequence(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
        .bind(ident(table))
        .bind(column)
        .fetch_one(&mut *conn)
        .await?)
}

/// Sets every id generator of the target past both the copied ids and the source's mark.
async fn restore_counters(
    conn: &mut AnyConnection,
    backend: Backend,
    tables: &[Table],
    counters: &HashMap<(String, String), i64>,
) -> anyhow::Result<()> {
    for t in tables {
        let candidates: Vec<&Column> = match backend {
            Backend::Postgres => t.columns.iter().filter(|c| c.kind == Kind::Int).collect(),
            Backend::Sqlite if t.autoincrement => t
                .primary_key
                .first()
                .and_then(|pk| t.column(pk))
                .into_iter()
                .collect(),
            Backend::Sqlite => Vec::new(),
        };
        for c in candidates {
            let seq = match backend {
                Backend::Postgres => match serial_sequence(conn, &t.name, &c.name).await? {
                    Some(s) => Some(s),
                    None => continue,
                },
                Backend::Sqlite => None,
            };
            let max: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT MAX({}) FROM {}",
                ident(&c.name),
                ident(&t.name)
            )))
            .fetch_one(&mut *conn)
            .await?;
            let mark = counters
                .get(&(t.name.clone(), c.name.clone()))
                .copied()
                .unwrap_or(0)
                .max(max.unwrap_or(0));
            match seq {
                Some(seq) => {
                    // An empty table starts again at 1 (`is_called = false`).
                    sqlx::query("SELECT setval(CAST($1 AS regclass), $2, $3)")
                        .bind(seq)
                        .bind(mark.max(1))
                        .bind(mark > 0)
                        .execute(&mut *conn)
                        .await?;
                }
                None if mark > 0 => {
                    let mut tx = conn.begin().await?;
                    sqlx::query("DELETE FROM sqlite_sequence WHERE name = $1")
                        .bind(&t.name)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ($1, $2)")
                        .bind(&t.name)
                        .bind(mark)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// Rows of one table in source and target after the copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub source: i64,
    pub target: i64,
}

/// What `migrate_store` did.
#[derive(Debug)]
pub struct TransferReport {
    pub tables: Vec<TableCount>,
}

impl TransferReport {
    pub fn mismatches(&self) -> Vec<&TableCount> {
        self.tables
            .iter()
            .filter(|t| t.source != t.target)
            .collect()
    }
}

/// Progress of the copy: `(table, rows copied, rows in the table)`.
pub type ProgressFn<'a> = dyn FnMut(&str, u64, u64) + 'a;

/// Copies every table of the store at `from` into the store at `to` (migrated first).
/// Without `force` the target must be empty (only rows its migrations insert); with it,
/// everything in the target is deleted first.
pub async fn migrate_store(
    from: &str,
    to: &str,
    force: bool,
    progress: &mut ProgressFn<'_>,
) -> anyhow::Result<TransferReport> {
    if from.trim() == to.trim() {
        anyhow::bail!("--from and --to name the same store");
    }
    let src = open(from, false).await?;
    let dst = open(to, true).await?;
    if let (Some((a, _)), Some((b, _))) = (sqlite_parts(from), sqlite_parts(to)) {
        let (a, b) = (std::fs::canonicalize(&a), std::fs::canonicalize(&b));
        if let (Ok(a), Ok(b)) = (a, b)
            && a == b
        {
            anyhow::bail!("--from and --to name the same SQLite file");
        }
    }
    // One snapshot of the source for schema, counts and rows.
    let mut snap = match src.backend {
        Backend::Sqlite => src.pool.begin().await?,
        Backend::Postgres => {
            src.pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?
        }
    };
    check_source_version(&mut snap, src.backend).await?;
    migrator(dst.backend)
        .run(&dst.pool)
        .await
        .map_err(|e| anyhow::anyhow!("migrating the target: {e}"))?;
    let mut out = dst.pool.acquire().await?;
    let source_tables = schema(&mut snap, src.backend).await?;
    let target_tables = schema(&mut out, dst.backend).await?;
    check_same_schema(&source_tables, &target_tables)?;
    if !force {
        ensure_empty(&mut out, &target_tables).await?;
    }
    let order = copy_order(&source_tables, &target_tables)?;
    let by_name = |tables: &[Table], n: &str| -> anyhow::Result<Table> {
        tables
            .iter()
            .find(|t| t.name == n)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("table {n} vanished"))
    };
    let mut source_counts = BTreeMap::new();
    for t in &order {
        source_counts.insert(t.clone(), count(&mut snap, t).await?);
    }
    let counters = source_counters(&mut snap, src.backend, &source_tables).await?;

    // Children first, so no foreign key blocks a delete.
    let mut tx = out.begin().await?;
    for t in order.iter().rev() {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {}", ident(t))))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;

    for name in &order {
        let st = by_name(&source_tables, name)?;
        let tt = by_name(&target_tables, name)?;
        let total = u64::try_from(source_counts.get(name).copied().unwrap_or(0)).unwrap_or(0);
        let mut done = 0u64;
        progress(name, 0, total);
        let keyset = match st.primary_key.as_slice() {
            [pk] => st
                .column(pk)
                .filter(|c| matches!(c.kind, Kind::Int | Kind::Text) && !c.as_text)
                .and_then(|c| st.position(&c.name).map(|p| (c.name.clone(), p))),
            _ => None,
        };
        if !st.self_refs.is_empty() || keyset.is_none() {
            // Small tables (self-referencing trees) or odd keys: read whole, in one snapshot.
            let mut rows = read_all(&mut snap, &st).await?;
            if !st.self_refs.is_empty() {
                rows = parents_first(&st, rows)?;
            }
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let batch: Vec<Vec<Val>> = rows.by_ref().take(BATCH_ROWS).collect();
                done += batch.len() as u64;
                write_batch(&mut out, dst.backend, &st, &tt, batch).await?;
                progress(name, done, total);
            }
        } else if let Some((pk, pos)) = keyset {
            let select = format!("SELECT {} FROM {}", select_list(&st), ident(name));
            let mut last: Option<Val> = None;
            loop {
                let sql = match last {
                    None => format!("{select} ORDER BY {} LIMIT {BATCH_ROWS}", ident(&pk)),
                    Some(_) => format!(
                        "{select} WHERE {0} > $1 ORDER BY {0} LIMIT {BATCH_ROWS}",
                        ident(&pk)
                    ),
                };
                let mut q = sqlx::query(AssertSqlSafe(sql));
                if let Some(v) = last.take() {
                    let kind = st.column(&pk).map(|c| c.kind).unwrap_or(Kind::Int);
                    q = bind(q, v, kind);
                }
                let rows = q.fetch_all(&mut *snap).await?;
                let rows: Vec<Vec<Val>> = rows.iter().map(row_values).collect::<Result<_, _>>()?;
                let n = rows.len();
                if n == 0 {
                    break;
                }
                // A NULL key (SQLite allows one in a non-integer primary key) cannot page on.
                last = rows.last().and_then(|r| r.get(pos)).cloned();
                if n == BATCH_ROWS && matches!(last, None | Some(Val::Null)) {
                    anyhow::bail!("table {name}: a NULL primary key stops the copy");
                }
                done += n as u64;
                write_batch(&mut out, dst.backend, &st, &tt, rows).await?;
                progress(name, done, total);
                if n < BATCH_ROWS {
                    break;
                }
            }
        }
    }

    restore_counters(&mut out, dst.backend, &target_tables, &counters).await?;
    if dst.backend == Backend::Postgres {
        // Fresh statistics, so the first queries on the new store plan well.
        sqlx::query("ANALYZE").execute(&mut *out).await?;
    }
    let mut tables = Vec::with_capacity(order.len());
    for name in &order {
        tables.push(TableCount {
            table: name.clone(),
            source: source_counts.get(name).copied().unwrap_or(0),
            target: count(&mut out, name).await?,
        });
    }
    snap.rollback().await?;
    drop(out);
    src.pool.close().await;
    dst.pool.close().await;
    Ok(TransferReport { tables })
}

/// One row: column name → value.
pub type NamedRow = BTreeMap<String, Val>;

/// Every row of every table but `_sqlx_migrations`, ordered by primary key, as stored: lets
/// two stores be compared value by value (the test suite does, after `migrate_store`).
pub async fn dump(url: &str) -> anyhow::Result<BTreeMap<String, Vec<NamedRow>>> {
    let src = open(url, false).await?;
    let mut conn = src.pool.acquire().await?;
    let mut out = BTreeMap::new();
    for t in schema(&mut conn, src.backend).await? {
        let rows = read_all(&mut conn, &t)
            .await?
            .into_iter()
            .map(|r| {
                t.columns
                    .iter()
                    .map(|c| c.name.clone())
                    .zip(r)
                    .collect::<NamedRow>()
            })
            .collect();
        out.insert(t.name.clone(), rows);
    }
    drop(conn);
    src.pool.close().await;
    Ok(out)
}

/// Both stores ran the same migrations, so their tables and columns must match by name.
fn check_same_schema(source: &[Table], target: &[Table]) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for s in source {
        match target.iter().find(|t| t.name == s.name) {
            None => problems.push(format!("table {} is missing in the target", s.name)),
            Some(t) => {
                for c in &s.columns {
                    if t.column(&c.name).is_none() {
                        problems.push(format!(
                            "column {}.{} is missing in the target",
                            s.name, c.name
                        ));
                    }
                }
                for c in &t.columns {
                    if s.column(&c.name).is_none() {
                        problems.push(format!(
                            "column {}.{} is missing in the source",
                            s.name, c.name
                        ));
                    }
                }
            }
        }
    }
    for t in target {
        if !source.iter().any(|s| s.name == t.name) {
            problems.push(format!("table {} is missing in the source", t.name));
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("the two schemas differ: {}", problems.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: Vec::new(),
            primary_key: vec!["id".into()],
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            self_refs: Vec::new(),
            autoincrement: false,
        }
    }

    #[test]
    fn order_parents_first_with_edges_from_either_side() {
        let src = vec![
            table("accounts", &["domains"]),
            table("customers", &[]),
            table("domains", &[]),
        ];
        // Only the PostgreSQL schema knows accounts → customers.
        let dst = vec![table("accounts", &["domains", "customers"])];
        assert_eq!(
            copy_order(&src, &dst).unwrap(),
            vec!["customers", "domains", "accounts"]
        );
        let cyclic = vec![table("a", &["b"]), table("b", &["a"])];
        assert!(copy_order(&cyclic, &[]).is_err());
    }

    #[test]
    fn self_references_sorted_parents_first() {
        let mut t = table("resellers", &[]);
        t.columns = ["id", "parent_id"]
            .iter()
            .map(|n| Column {
                name: (*n).into(),
                kind: Kind::Int,
                sql_type: "INTEGER".into(),
                as_text: false,
            })
            .collect();
        t.self_refs = vec![("parent_id".into(), "id".into())];
        let rows = vec![
            vec![Val::Int(1), Val::Int(3)],
            vec![Val::Int(2), Val::Null],
            vec![Val::Int(3), Val::Int(2)],
        ];
        let sorted = parents_first(&t, rows).unwrap();
        let ids: Vec<Val> = sorted.iter().map(|r| r[0].clone()).collect();
        assert_eq!(ids, vec![Val::Int(2), Val::Int(3), Val::Int(1)]);
        let cycle = vec![
            vec![Val::Int(1), Val::Int(2)],
            vec![Val::Int(2), Val::Int(1)],
        ];
        assert!(parents_first(&t, cycle).is_err());
    }

    #[test]
    fn conversions_are_lossless_or_refused() {
        assert_eq!(
            convert(Val::Int(1), Kind::Bool, "t", "c").unwrap(),
            Val::Bool(true)
        );
        assert_eq!(
            convert(Val::Bool(false), Kind::Int, "t", "c").unwrap(),
            Val::Int(0)
        );
        assert!(convert(Val::Int(2), Kind::Bool, "t", "c").is_err());
        assert!(convert(Val::Text("x".into()), Kind::Int, "t", "c").is_err());
        assert_eq!(convert(Val::Null, Kind::Int, "t", "c").unwrap(), Val::Null);
        assert_eq!(sqlite_kind("BIGINT"), Kind::Int);
        assert_eq!(sqlite_kind("varchar(20)"), Kind::Text);
        assert_eq!(sqlite_kind(""), Kind::Untyped);
        assert_eq!(postgres_kind("uuid"), (Kind::Text, true));
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_parts("sqlite:///abs/x.db?mode=ro"),
            Some(("/abs/x.db".into(), "mode=ro".into()))
        );
        assert_eq!(
            sqlite_parts("sqlite:rel.db"),
            Some(("rel.db".into(), String::new()))
        );
        assert_eq!(sqlite_url("a.db", "", "rwc"), "sqlite://a.db?mode=rwc");
        assert_eq!(
            sqlite_url("a.db", "mode=ro", "rwc"),
            "sqlite://a.db?mode=ro"
        );
        assert_eq!(sqlite_parts("postgres://x"), None);
    }
}
