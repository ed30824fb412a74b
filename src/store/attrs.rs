//! Operator attributes of accounts and the typed account search of the operator surfaces.
//!
//! The search assembles its SQL from fixed fragments chosen by the variants of
//! [`AccountFilter`] / [`AccountSort`]; every value from a request is a bound parameter.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::query::QueryAs;

use super::mirror::{self, Lookup};
use super::{Backend, CustomerFilter, Store, WriteTx};
use crate::domain::{
    Account, AccountAttrs, AccountFilter, AccountQuery, AccountSort, Attr, AttrValue, Registration,
};

macro_rules! attrs_columns {
    () => {
        "a.public_id, a.password_sealed, a.caller_id_name, a.internal_caller_id, \
         a.external_caller_id, a.allow_external_calls, a.use_allowed_ips, a.allowed_ips, \
         a.incoming_internal, a.incoming_external, a.outgoing_internal, a.outgoing_external, \
         a.on_demand, a.name, a.rate_plan, a.rate_plan_name, a.new_rate_plan, a.connection, \
         a.ip_address, a.port, a.countries, a.failover, a.always_failover, a.usage_block, a.pbx, \
         a.high_rate, a.international, a.address, a.parent_sip_account, a.notes, a.custom, \
         a.sip_server, a.clip_sa, a.strip_dk_country_code, a.prefix_mobile_originated, \
         a.invoiced_until, a.default_number, a.always_default_number, a.always_secret_number, \
         a.billing_customer"
    };
}

/// An account row with its operator attributes.
#[derive(sqlx::FromRow)]
struct FullRow {
    #[sqlx(flatten)]
    account: Account,
    #[sqlx(flatten)]
    attrs: AccountAttrs,
}

/// One bound value of an assembled statement.
#[derive(Clone, Debug)]
enum Bind {
    Int(i64),
    Text(String),
}

/// SQL text under assembly with its bound values, numbered in order.
#[derive(Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
    /// Appends a marker for `b` and returns it.
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
    fn bind_ints(&mut self, v: &[i64]) -> String {
        let m: Vec<String> = v.iter().map(|i| self.bind(Bind::Int(*i))).collect();
        m.join(", ")
    }
    fn bind_texts(&mut self, v: &[String]) -> String {
        let m: Vec<String> = v.iter().map(|t| self.bind(Bind::Text(t.clone()))).collect();
        m.join(", ")
    }
}

fn apply<'q, O>(
    mut q: QueryAs<'q, sqlx::Any, O, AnyArguments>,
    binds: &[Bind],
) -> QueryAs<'q, sqlx::Any, O, AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Int(i) => q.bind(*i),
            Bind::Text(t) => q.bind(t.clone()),
        };
    }
    q
}

/// Where a condition on a flag column goes in the WHERE text. The count keeps it plain, so the
/// flag's index counts; on SQLite the page query turns it into a unary plus (`+a.flag = $n`,
/// SQLite's documented way to keep a term from choosing an index): a flag matches about half
/// of the accounts, and choosing its index there means sorting all of them, where walking the
/// sort column's index and checking the flag stops after one page. (On PostgreSQL the plus
/// would only spoil the row estimate; its planner chooses well with the plain column.)
const FLAG_HINT: &str = "/*flag*/";
/// Substring searches matching at most this many accounts bind their ids (see `search_clause`).
const SEARCH_IDS_MAX: usize = 1_000;

/// The most ids of substring matches a customer's copy in memory hands to SQLite for a search
/// with `up` (read by id, they cost less than a walk of the whole scope up to about this many).
const MIRROR_IDS_MAX: usize = 10_000;

/// What a customer's copy in memory answers for a listing (see `mirrored_search`).
enum Mirrored {
    Answer(mirror::Answer),
    Ids(Vec<i64>),
}

/// `%`, `_` and `\` taken literally in a LIKE pattern (with `ESCAPE '\'`).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// A text column compared and ordered by bytes on both backends.
    fn c_text(&self, col: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("{col} COLLATE \"C\""),
            Backend::Sqlite => col.to_owned(),
        }
    }

    pub async fn account_attrs(&self, id: i64) -> sqlx::Result<Option<AccountAttrs>> {
        sqlx::query_as(concat!(
            "SELECT ",
            attrs_columns!(),
            " FROM accounts a WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn account_attrs_tx(
        &self,
        tx: &mut WriteTx,
        id: i64,
    ) -> sqlx::Result<Option<AccountAttrs>> {
        sqlx::query_as(concat!(
            "SELECT ",
            attrs_columns!(),
            " FROM accounts a WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(tx.conn())
        .await
    }

    /// The account id of a public id.
    pub async fn account_id_by_public_id(&self, public_id: &str) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar("SELECT id FROM accounts WHERE public_id = $1")
            .bind(public_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Sets validated attribute values in one statement.
    pub async fn update_attrs(
        &self,
        tx: &mut WriteTx,
        id: i64,
        changes: &[(Attr, AttrValue)],
        now: i64,
    ) -> sqlx::Result<u64> {
        tx.touch(id);
        let mut sql = Sql::default();
        let id_marker = sql.bind(Bind::Int(id));
        let now_marker = sql.bind(Bind::Int(now));
        sql.push(&format!("UPDATE accounts SET updated_at = {now_marker}"));
        let mut nulls = Vec::new();
        for (attr, value) in changes {
            let marker = match value {
                AttrValue::Flag(b) => sql.bind(Bind::Int(i64::from(*b))),
                AttrValue::Int(Some(i)) => sql.bind(Bind::Int(*i)),
                AttrValue::Text(Some(t)) => sql.bind(Bind::Text(t.clone())),
                AttrValue::Int(None) | AttrValue::Text(None) => {
                    nulls.push(attr.column());
                    continue;
                }
            };
            sql.push(&format!(", {} = {marker}", attr.column()));
        }
        for col in nulls {
            sql.push(&format!(", {col} = NULL"));
        }
        sql.push(&format!(" WHERE id = {id_marker}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.text));
        for b in &sql.binds {
            q = match b {
                Bind::Int(i) => q.bind(*i),
                Bind::Text(t) => q.bind(t.clone()),
            };
        }
        Ok(q.execute(tx.conn()).await?.rows_affected())
    }

    /// A page of accounts in `scope` matching `q`, with their attributes, and the total.
    pub async fn search_accounts(
        &self,
        scope: &CustomerFilter,
        q: &AccountQuery,
        now: i64,
    ) -> sqlx::Result<(i64, Vec<(Account, AccountAttrs)>)> {
        let mut w = Sql::default();
        w.push("WHERE 1 = 1");
        // A search resolved to a short list of ids: the page is read by id, not by index.
        let mut by_ids = false;
        // One large customer's listing: answered from memory where it can (see `mirror`).
        let (mirrored, mut mirror_ids) = match self.mirrored_search(scope, q).await {
            // The copy knew the page too: no SQL but the page's rows.
            Some(Mirrored::Answer(mirror::Answer {
                total,
                page: Some(ids),
            })) => return Ok((total, self.rows_in_order(&ids).await?)),
            Some(Mirrored::Answer(a)) => (Some(a), None),
            Some(Mirrored::Ids(ids)) => (None, Some(ids)),
            None => (None, None),
        };
        let from_mirror = mirror_ids.is_some();
        match scope {
            CustomerFilter::All => {}
            CustomerFilter::Customer(c) => {
                let m = w.bind(Bind::Int(*c));
                w.push(&format!(" AND a.customer_id = {m}"));
            }
            CustomerFilter::Resellers(ids) => {
                let m = w.bind_ints(if ids.is_empty() { &[-1] } else { ids });
                w.push(&format!(
                    " AND a.customer_id IN (SELECT id FROM customers WHERE reseller_id IN ({m}))"
                ));
            }
        }
        // `accounts.live_until` is the newest registration expiry (kept by triggers,
        // migration 0006): an account is live when it lies after now.
        let live = |m: &str| format!("a.live_until > {m}");
        for f in &q.filters {
            match f {
                AccountFilter::Customers(ids) => {
                    let m = w.bind_ints(if ids.is_empty() { &[-1] } else { ids });
                    w.push(&format!(" AND a.customer_id IN ({m})"));
                }
                AccountFilter::Resellers(ids) => {
                    let m = w.bind_ints(if ids.is_empty() { &[-1] } else { ids });
                    w.push(&format!(
                        " AND a.customer_id IN (SELECT id FROM customers WHERE reseller_id IN ({m}))"
                    ));
                }
                AccountFilter::PublicIds(v) => text_any_of(&mut w, "a.public_id", v),
                // Byte comparison, like the sorts, so the "C"-collated indexes serve these on
                // PostgreSQL too (equality is the same under every deterministic collation).
                AccountFilter::Usernames(v) => text_any_of(&mut w, &self.c_text("a.username"), v),
                AccountFilter::CallerIdNames(v) => {
                    text_any_of(&mut w, &self.c_text("a.caller_id_name"), v)
                }
                AccountFilter::AllowExternalCalls(b) => {
                    let m = w.bind(Bind::Int(i64::from(*b)));
                    w.push(&format!(" AND {FLAG_HINT}a.allow_external_calls = {m}"));
                }
                AccountFilter::InternalCallerIds(v) => {
                    let m = w.bind_ints(if v.is_empty() { &[-1] } else { v });
                    w.push(&format!(" AND a.internal_caller_id IN ({m})"));
                }
                AccountFilter::ExternalCallerIds(v) => {
                    let m = w.bind_ints(if v.is_empty() { &[-1] } else { v });
                    w.push(&format!(" AND a.external_caller_id IN ({m})"));
                }
                // The copy's matches stand for every substring filter at once.
                AccountFilter::Search(_) | AccountFilter::SearchExceptNotes(_) if from_mirror => {
                    if let Some(ids) = mirror_ids.take() {
                        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                        ids_in_json(&mut w, format!("[{}]", list.join(",")));
                        by_ids = true;
                    }
                }
                AccountFilter::Search(s) => {
                    by_ids |= self.search_clause(&mut w, s, true).await?;
                }
                AccountFilter::SearchExceptNotes(s) => {
                    by_ids |= self.search_clause(&mut w, s, false).await?;
                }
                AccountFilter::Online(up) => {
                    let m = w.bind(Bind::Int(now));
                    let op = if *up { ">" } else { "<=" };
                    w.push(&format!(" AND a.live_until {op} {m}"));
                }
            }
        }
        let count_sql = format!(
            "SELECT COUNT(*) FROM accounts a {}",
            w.text.replace(FLAG_HINT, "")
        );
        // PostgreSQL plans a substring search for its pattern (an unnamed statement is planned
        // at bind time with the values): a cached generic plan, made for no pattern in
        // particular, would choose the same index for a needle that matches everything as
        // for one that matches one account.
        let persistent = !(self.backend == Backend::Postgres
            && q.filters.iter().any(|f| {
                matches!(
                    f,
                    AccountFilter::Search(_) | AccountFilter::SearchExceptNotes(_)
                )
            }));
        let mut cq =
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql)).persistent(persistent);
        for b in &w.binds {
            cq = match b {
                Bind::Int(i) => cq.bind(*i),
                Bind::Text(t) => cq.bind(t.clone()),
            };
        }
        // Run beside the page query below (another pooled connection): the two are independent.
        let total_fut = cq.fetch_one(&self.pool);

        // Two steps, because sorting whole rows is what costs (SQLite's sorter carries every
        // column of every matching row): first the page's ids, sorted on the sort keys alone
        // (indexes can serve them), then the full rows of those ids.
        let mut sql = w;
        let text_order = |col: &str, backend: Backend| match backend {
            // The same order on both backends: byte order, not the database's locale.
            Backend::Postgres => format!("{col} COLLATE \"C\""),
            Backend::Sqlite => col.to_owned(),
        };
        let mut order = Vec::new();
        let mut needs_domain = false;
        for (key, desc) in &q.sort {
            // Whether the expression can be NULL (NOT NULL columns need no NULL ordering term,
            // which keeps their indexes usable for the order).
            let (expr, nullable) = match key {
                AccountSort::Id => ("a.id".to_owned(), false),
                AccountSort::PublicId => (text_order("a.public_id", self.backend), false),
                AccountSort::CreatedAt => ("a.created_at".to_owned(), false),
                AccountSort::Username => (text_order("a.username", self.backend), false),
                AccountSort::Domain => {
                    needs_domain = true;
                    (text_order("d.name", self.backend), false)
                }
                AccountSort::Attr(attr) => match attr.kind() {
                    crate::domain::AttrKind::Text => (
                        text_order(&format!("a.{}", attr.column()), self.backend),
                        *attr != Attr::AllowedIps,
                    ),
                    crate::domain::AttrKind::Flag => (format!("a.{}", attr.column()), false),
                    crate::domain::AttrKind::Int => (format!("a.{}", attr.column()), true),
                },
                AccountSort::Online => {
                    let m = sql.bind(Bind::Int(now));
                    (format!("(CASE WHEN {} THEN 1 ELSE 0 END)", live(&m)), false)
                }
                AccountSort::UserAgent => {
                    let m = sql.bind(Bind::Int(now));
                    (
                        text_order(
                            &format!(
                                "(SELECT r.user_agent FROM registrations r WHERE r.account_id = a.id \
                                 AND r.expires_at > {m} ORDER BY r.updated_at DESC, r.id DESC LIMIT 1)"
                            ),
                            self.backend,
                        ),
                        true,
                    )
                }
            };
            // NULLs last ascending and first descending on both backends, spelled so that an
            // index on the column can still serve the order.
            order.push(match (*desc, nullable) {
                (false, false) => format!("{expr} ASC"),
                (true, false) => format!("{expr} DESC"),
                (false, true) => format!("{expr} ASC NULLS LAST"),
                (true, true) => format!("{expr} DESC NULLS FIRST"),
            });
        }
        order.push("a.id ASC".to_owned());
        let limit = sql.bind(Bind::Int(q.limit.max(0)));
        let offset = sql.bind(Bind::Int(q.offset.max(0)));
        // SQLite would walk the sort index probing the few ids of a selective substring
        // search; looking them up and sorting them is cheaper (`NOT INDEXED` still allows
        // lookups by id). PostgreSQL's planner sees the short list itself.
        let hint = if by_ids && self.backend == Backend::Sqlite {
            " NOT INDEXED"
        } else {
            ""
        };
        let ids_sql = format!(
            "SELECT a.id FROM accounts a{hint}{} {} ORDER BY {} LIMIT {limit} OFFSET {offset}",
            if needs_domain {
                " JOIN domains d ON d.id = a.domain_id"
            } else {
                ""
            },
            sql.text.replace(
                FLAG_HINT,
                // PostgreSQL's planner keeps its estimate only for the plain column.
                if self.backend == Backend::Sqlite {
                    "+"
                } else {
                    ""
                }
            ),
            order.join(", ")
        );
        let mut iq =
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(ids_sql)).persistent(persistent);
        for b in &sql.binds {
            iq = match b {
                Bind::Int(i) => iq.bind(*i),
                Bind::Text(t) => iq.bind(t.clone()),
            };
        }
        let (total, ids) = if let Some(mirror::Answer { total, .. }) = mirrored {
            drop(total_fut);
            if total <= q.offset.max(0) {
                return Ok((total, Vec::new()));
            }
            (total, iq.fetch_all(&self.pool).await?)
        } else if persistent {
            tokio::try_join!(total_fut, iq.fetch_all(&self.pool))?
        } else {
            // A PostgreSQL search counts first: the page walks the listing index until it has
            // its rows, and when the search's matches are unlike the rest of the scope (a
            // city whose accounts are all offline, with `up=true`) the walk would cross the
            // whole scope for nothing. After the count, a page that can hold nothing is known.
            let total = total_fut.await?;
            if total <= q.offset.max(0) {
                return Ok((total, Vec::new()));
            }
            (total, iq.fetch_all(&self.pool).await?)
        };
        Ok((total, self.rows_in_order(&ids).await?))
    }

    /// The full rows of a page's ids, in the page's order; a row deleted since the ids were
    /// read is left out.
    async fn rows_in_order(&self, ids: &[i64]) -> sqlx::Result<Vec<(Account, AccountAttrs)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut rq = Sql::default();
        let m = rq.bind_ints(ids);
        let rows_sql = format!(
            "{}, {} FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE a.id IN ({m})",
            account_columns!(),
            attrs_columns!(),
        );
        let mut rows: HashMap<i64, FullRow> =
            apply(sqlx::query_as(sqlx::AssertSqlSafe(rows_sql)), &rq.binds)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|r: FullRow| (r.account.id, r))
                .collect();
        Ok(ids
            .iter()
            .filter_map(|id| rows.remove(id))
            .map(|r| (r.account, r.attrs))
            .collect())
    }

    /// ENUM numbers of many accounts, in their order of creation.
    pub async fn numbers_of(&self, ids: &[i64]) -> sqlx::Result<HashMap<i64, Vec<String>>> {
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::default();
            let m = sql.bind_ints(chunk);
            let text = format!(
                "SELECT account_id, number FROM enum_numbers WHERE account_id IN ({m}) \
                 ORDER BY account_id, created_at, id"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
            for b in &sql.binds {
                if let Bind::Int(i) = b {
                    q = q.bind(*i);
                }
            }
            for row in q.fetch_all(&self.pool).await? {
                out.entry(row.try_get(0)?)
                    .or_default()
                    .push(row.try_get(1)?);
            }
        }
        Ok(out)
    }

    /// The newest live registration of each of many accounts.
    pub async fn newest_live_registrations(
        &self,
        ids: &[i64],
        now: i64,
    ) -> sqlx::Result<HashMap<i64, Registration>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            account_id: i64,
            #[sqlx(flatten)]
            reg: Registration,
        }
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::default();
            let now_m = sql.bind(Bind::Int(now));
            let m = sql.bind_ints(chunk);
            let text = format!(
                "SELECT account_id, contact, public_contact, expires_at, user_agent, transport, \
                 instance_id FROM registrations WHERE account_id IN ({m}) AND expires_at > {now_m} \
                 ORDER BY account_id, updated_at DESC, id DESC"
            );
            let rows: Vec<Row> = apply(sqlx::query_as(sqlx::AssertSqlSafe(text)), &sql.binds)
                .fetch_all(&self.pool)
                .await?;
            for r in rows {
                out.entry(r.account_id).or_insert(r.reg);
            }
        }
        Ok(out)
    }

    /// Seconds of placed calls per account in each `[bounds[i], bounds[i+1])` window.
    pub async fn placed_seconds(
        &self,
        ids: &[i64],
        bounds: &[i64],
    ) -> sqlx::Result<HashMap<i64, Vec<i64>>> {
        let mut out = HashMap::new();
        if bounds.len() < 2 {
            return Ok(out);
        }
        for chunk in ids.chunks(500) {
            let mut sql = Sql::default();
            let mut sums = Vec::new();
            for w in bounds.windows(2) {
                let lo = sql.bind(Bind::Int(w[0]));
                let hi = sql.bind(Bind::Int(w[1]));
                sums.push(format!(
                    "SUM(CASE WHEN start_time >= {lo} AND start_time < {hi} THEN duration ELSE 0 END)"
                ));
            }
            let lo = sql.bind(Bind::Int(bounds[0]));
            let hi = sql.bind(Bind::Int(bounds[bounds.len() - 1]));
            let m = sql.bind_ints(chunk);
            let text = format!(
                "SELECT account_id, {} FROM calls WHERE direction = 'placed' \
                 AND start_time >= {lo} AND start_time < {hi} AND account_id IN ({m}) \
                 GROUP BY account_id",
                sums.iter()
                    .map(|s| format!("CAST({s} AS BIGINT)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
            for b in &sql.binds {
                if let Bind::Int(i) = b {
                    q = q.bind(*i);
                }
            }
            for row in q.fetch_all(&self.pool).await? {
                let id: i64 = row.try_get(0)?;
                let mut v = Vec::with_capacity(bounds.len() - 1);
                for i in 0..bounds.len() - 1 {
                    v.push(row.try_get::<Option<i64>, _>(i + 1)?.unwrap_or(0));
                }
                out.insert(id, v);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// A listing of one customer's accounts answered from that customer's copy in memory, when
    /// the copy is current: with substring filters alone, the total and (sorted by user name)
    /// the page; on SQLite with `up` too, the substring matches' ids (the copy has no
    /// registrations). A miss starts loading the copy in the background (this listing runs
    /// in SQL).
    async fn mirrored_search(&self, scope: &CustomerFilter, q: &AccountQuery) -> Option<Mirrored> {
        if !self.mirror.enabled() {
            return None;
        }
        let mut customer = match scope {
            CustomerFilter::Customer(c) => Some(*c),
            CustomerFilter::All => None,
            CustomerFilter::Resellers(_) => return None,
        };
        let mut needles = Vec::new();
        let mut online = false;
        for f in &q.filters {
            match f {
                // Lowercased as `search_clause` does: the same needle against the same text.
                AccountFilter::Search(s) | AccountFilter::SearchExceptNotes(s)
                    // SQLite's lower() folds ASCII letters only, so its search text keeps
                    // other capitals: such a needle is left to its FTS5 table.
                    if self.backend == Backend::Sqlite && !s.is_ascii() =>
                {
                    return None;
                }
                AccountFilter::Search(s) => needles.push((s.to_lowercase(), true)),
                AccountFilter::SearchExceptNotes(s) => needles.push((s.to_lowercase(), false)),
                AccountFilter::Customers(ids) => match ids.as_slice() {
                    [id] if customer.is_none_or(|c| c == *id) => customer = Some(*id),
                    _ => return None,
                },
                // SQLite walks the whole scope for a broad search with `up`; PostgreSQL's
                // planner does better with the condition itself.
                AccountFilter::Online(_) if self.backend == Backend::Sqlite => online = true,
                _ => return None,
            }
        }
        let customer = customer?;
        if online && needles.is_empty() {
            return None;
        }
        // The copy is in the listing's default order (user name): it knows that order's pages.
        let page = if online {
            Some((0, usize::MAX))
        } else if q.sort == [(AccountSort::Username, false)] {
            usize::try_from(q.offset)
                .ok()
                .zip(usize::try_from(q.limit).ok())
        } else {
            None
        };
        if self.mirror.recently_small(customer) {
            return None;
        }
        let version = self.search_version(customer).await.ok()?;
        match self.mirror.lookup(customer, version) {
            // Milliseconds of CPU for a large customer: off the async workers.
            Lookup::Ready(rows) => {
                let answer =
                    tokio::task::spawn_blocking(move || mirror::search(&rows, &needles, page))
                        .await
                        .ok()
                        .flatten()?;
                if !online {
                    return Some(Mirrored::Answer(answer));
                }
                answer
                    .page
                    .filter(|ids| ids.len() <= MIRROR_IDS_MAX)
                    .map(Mirrored::Ids)
            }
            Lookup::Load => {
                let store = self.clone();
                tokio::spawn(async move {
                    let loaded = store.load_search_copy(customer).await;
                    if let Err(e) = &loaded {
                        tracing::warn!("cannot load the search texts of customer {customer}: {e}");
                    }
                    store.mirror.install(customer, loaded.ok());
                });
                None
            }
            Lookup::Sql => None,
        }
    }

    /// The customer's row in `search_versions` (0 before its first change).
    pub async fn search_version(&self, customer: i64) -> sqlx::Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT version FROM search_versions WHERE customer_id = $1",
        )
        .bind(customer)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0))
    }

    /// Whether this process holds the customer's search texts at the store's current version.
    pub async fn search_copy_current(&self, customer: i64) -> sqlx::Result<bool> {
        Ok(self
            .mirror
            .holds(customer, self.search_version(customer).await?))
    }

    /// The customer's search texts and the version they belong to, read by one statement
    /// (one snapshot: the texts are exactly those of that version).
    async fn load_search_copy(&self, customer: i64) -> sqlx::Result<(i64, mirror::Texts)> {
        // In the listing's order (`search_accounts` sorts by user name the same way: bytes).
        let order = match self.backend {
            Backend::Postgres => "a.username COLLATE \"C\", a.id",
            Backend::Sqlite => "a.username, a.id",
        };
        // version, then id, search text and lowered notes (NULL: no accounts).
        type CopyRow = (i64, Option<i64>, Option<String>, Option<String>);
        let rows: Vec<CopyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT v.version, a.id, a.search_text, lower(a.notes) FROM \
             (SELECT COALESCE(MAX(version), 0) AS version FROM search_versions \
              WHERE customer_id = $1) v \
             LEFT JOIN accounts a ON a.customer_id = $1 ORDER BY {order}"
        )))
        .bind(customer)
        .fetch_all(&self.pool)
        .await?;
        let version = rows.first().map_or(0, |r| r.0);
        let mut texts = mirror::Texts::default();
        // No text: the LEFT JOIN's one row of a customer without accounts.
        for (_, id, text, notes) in rows {
            if let (Some(id), Some(text)) = (id, text) {
                texts.push(id, &text, notes.as_deref().unwrap_or(""));
            }
        }
        Ok((version, texts))
    }

    /// `AND` the account matches the substring search `s` (case-insensitive): over the name,
    /// user name, IP address and ENUM numbers, and the notes when `notes`. The text searched
    /// is kept by triggers (migrations 0006, 0008) in `accounts.search_text`, which the
    /// listing's index (customer, user name) carries: a search matching many accounts counts
    /// and pages by walking that index alone (bounded by the accounts in scope), never the
    /// account rows. Few matches are found with a trigram index instead.
    ///
    /// PostgreSQL chooses between the two itself (`LIKE` is served by the pg_trgm index or
    /// checked during the walk, whichever its statistics make cheaper). SQLite first looks
    /// the matches up in its FTS5 `trigram` table, at most [`SEARCH_IDS_MAX`] + 1 of them: when
    /// there are no more than that, their ids are bound as one JSON array (returns `true`:
    /// the page is then read by id); otherwise, and for one or two characters (no trigram),
    /// the condition goes on the index walk.
    ///
    /// The notes are not in the index (up to 4 KiB each): they are searched apart, among the
    /// accounts that have notes, and the ids found are added to the walk's matches.
    async fn search_clause(&self, w: &mut Sql, s: &str, notes: bool) -> sqlx::Result<bool> {
        let needle = s.to_lowercase();
        let trigrams = needle.chars().count() >= 3;
        if self.backend == Backend::Postgres {
            // Backslash is PostgreSQL's default LIKE escape. A pattern of one or two characters
            // has no trigram: the planner then walks the listing index (its cost model knows
            // that the trigram index cannot narrow such a pattern down).
            let m = w.bind(Bind::Text(format!("%{}%", like_escape(&needle))));
            if notes {
                w.push(&format!(
                    " AND (a.search_text LIKE {m} OR a.id IN (SELECT n.id FROM accounts n \
                     WHERE n.notes IS NOT NULL AND lower(n.notes) LIKE {m}))"
                ));
            } else {
                w.push(&format!(" AND a.search_text LIKE {m}"));
            }
            return Ok(false);
        }
        // SQLite's lower() folds ASCII letters only, FTS5 every letter: the index walk
        // (`instr` over lower()ed text) agrees with the trigram table for ASCII needles.
        let walk = !trigrams || needle.is_ascii();
        // An FTS5 phrase: everything inside the quotes is literal but the quote itself.
        let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
        if trigrams {
            let cols = if notes { "{body notes}" } else { "body" };
            // One row, whatever the number of matches: far cheaper than a row each.
            let (count, list): (i64, String) = sqlx::query_as(
                "SELECT COUNT(*), json_group_array(id) FROM \
                 (SELECT rowid AS id FROM account_search WHERE account_search MATCH $1 LIMIT $2) m",
            )
            .bind(format!("{cols} : {phrase}"))
            .bind(SEARCH_IDS_MAX as i64 + 1)
            .fetch_one(&self.pool)
            .await?;
            if count == 0 {
                w.push(" AND 1 = 0");
                return Ok(true);
            }
            if count <= SEARCH_IDS_MAX as i64 {
                ids_in_json(w, list);
                return Ok(true);
            }
            if !walk {
                let m = w.bind(Bind::Text(format!("{cols} : {phrase}")));
                w.push(&format!(
                    " AND a.id IN (SELECT rowid FROM account_search WHERE account_search MATCH {m})"
                ));
                return Ok(false);
            }
        }
        let m = w.bind(Bind::Text(needle));
        let text = format!("instr(a.search_text, {m}) > 0");
        if notes {
            let in_notes = if trigrams {
                let p = w.bind(Bind::Text(format!("notes : {phrase}")));
                format!("account_search MATCH {p}")
            } else {
                format!("instr(lower(notes), {m}) > 0")
            };
            w.push(&format!(
                " AND ({text} OR a.id IN (SELECT rowid FROM account_search WHERE {in_notes}))"
            ));
        } else {
            w.push(&format!(" AND {text}"));
        }
        Ok(false)
    }
}

/// `AND` the account's id is in a JSON array of ids (SQLite): the same statement text for
/// any list.
fn ids_in_json(w: &mut Sql, json: String) {
    let m = w.bind(Bind::Text(json));
    w.push(&format!(" AND a.id IN (SELECT value FROM json_each({m}))"));
}

/// `AND col IN (…)` for a non-empty list; an empty list matches nothing.
fn text_any_of(w: &mut Sql, col: &str, v: &[String]) {
    if v.is_empty() {
        w.push(" AND 1 = 0");
        return;
    }
    let m = w.bind_texts(v);
    w.push(&format!(" AND {col} IN ({m})"));
}
