//! Batch ingestion ("feeds", operator API §2): registrations from the registrar, call detail
//! records and balance moves, as JSON records.
//!
//! Each batch is one transaction: a bad record rejects the whole batch (with its index and
//! the reason) and nothing of it is stored. The rules are those of the single-record
//! services in `feeds.rs` (`check_*` / `store_*`), shared, not repeated. A wire adapter
//! deserializes records (`parse_batch` gives per-record errors for a JSON array) and calls
//! `ingest_registrations`, `ingest_cdrs` or `ingest_balance`.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::Services;
use super::accounts::split_address;
use super::feeds::{CallOutcome, check_balance, check_call, check_registration};
use crate::domain::{CallRecord, Registration};
use crate::error::ServiceError;
use crate::store::WriteTx;
use crate::util::{MONEY_SCALE, now, parse_money};

/// The most records one batch (one transaction) may hold.
pub const MAX_BATCH: usize = 10_000;
/// The longest registration accepted, in seconds (a week).
pub const MAX_EXPIRES: i64 = 604_800;
/// Unix seconds accepted as times: after 1970 and before the year 10000.
const MAX_TIME: i64 = 253_402_300_799;

/// What a batch did. `accepted` counts every record of the batch; `duplicates` the call
/// records among them that were already stored and changed nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
}

/// Why a batch was rejected; nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Record `index` (0-based) of the batch is wrong.
    #[error("record {index}: {reason}")]
    Record { index: usize, reason: String },
    /// The store failed (unavailable, or a bug): the batch may be retried as a whole.
    #[error(transparent)]
    Store(#[from] ServiceError),
}

impl IngestError {
    fn at(index: usize, reason: impl Into<String>) -> Self {
        Self::Record {
            index,
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A store error while writing record `index`: a value the store refuses names the record.
fn at_record(index: usize) -> impl Fn(ServiceError) -> IngestError {
    move |e| match e {
        ServiceError::Invalid(reason) => IngestError::Record { index, reason },
        other => IngestError::Store(other),
    }
}

// ---- wire values ----

/// A JSON number or string, kept as sent; the service interprets it (times, money, codes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumOrText {
    Int(i64),
    /// A non-integer number (or one too large for i64), as decimal text.
    Decimal(String),
    Text(String),
}

impl From<i64> for NumOrText {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<&str> for NumOrText {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl<'de> Deserialize<'de> for NumOrText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumOrText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumOrText, E> {
                Ok(NumOrText::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumOrText, E> {
                Ok(i64::try_from(v)
                    .map(NumOrText::Int)
                    .unwrap_or_else(|_| NumOrText::Decimal(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumOrText, E> {
                // Display of f64 is the shortest text that reads back the same, never exponential.
                Ok(NumOrText::Decimal(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumOrText, E> {
                Ok(NumOrText::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Media types: a JSON array of strings or one comma-separated string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media(pub Vec<String>);

impl<'de> Deserialize<'de> for Media {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Media;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of strings or a comma-separated string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Media, E> {
                Ok(Media(v.split(',').map(str::to_owned).collect()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Media, A::Error> {
                let mut out = Vec::new();
                while let Some(m) = seq.next_element::<String>()? {
                    out.push(m);
                }
                Ok(Media(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// OpenAPI schemas of the hand-written wire values.
fn one_of(
    description: &str,
    items: Vec<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let mut b = utoipa::openapi::schema::OneOfBuilder::new().description(Some(description));
    for i in items {
        b = b.item(i);
    }
    b.into()
}

fn of_type(
    t: utoipa::openapi::schema::Type,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(t)
        .into()
}

impl utoipa::PartialSchema for NumOrText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::Type;
        // anyOf: an integer is a number too.
        let mut any = utoipa::openapi::schema::AnyOfBuilder::new()
            .description(Some("A JSON number or a string."));
        for t in [Type::Number, Type::String] {
            any = any.item(of_type(t));
        }
        any.into()
    }
}

impl utoipa::ToSchema for NumOrText {}

impl utoipa::PartialSchema for Media {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, Type};
        one_of(
            "Media types: an array of strings or one comma-separated string.",
            vec![
                ArrayBuilder::new().items(of_type(Type::String)).into(),
                of_type(Type::String),
            ],
        )
    }
}

impl utoipa::ToSchema for Media {}

// ---- records ----

/// One registration from the registrar; upserted by (account, contact).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRecord {
    /// `user@domain` of an existing account.
    pub account: String,
    pub contact: String,
    pub public_contact: Option<String>,
    /// Seconds remaining, 0..=604800; 0 removes the registration.
    pub expires: Option<i64>,
    /// Unix seconds; in the past removes the registration. Exclusive with `expires`.
    pub expires_at: Option<i64>,
    pub user_agent: Option<String>,
    /// udp, tcp, tls, ws or wss.
    pub transport: Option<String>,
    pub instance_id: Option<String>,
}

/// One call detail record, with the field names the settings API shows (§4.3).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CdrRecord {
    pub account: String,
    /// placed or received.
    pub direction: String,
    pub remote_party: String,
    #[serde(default)]
    pub display_name: String,
    /// Unix seconds, or an RFC 3339 time.
    pub start_time: NumOrText,
    /// Missing for a call in progress.
    pub stop_time: Option<NumOrText>,
    /// Seconds; defaults to stopTime − startTime.
    pub duration: Option<i64>,
    /// SIP code, string or number.
    pub status: NumOrText,
    /// Decimal ("0.0400") or number, at most 4 decimals; placed calls only.
    pub price: Option<NumOrText>,
    pub session_id: String,
    pub from_tag: String,
    #[serde(default)]
    pub to_tag: String,
    #[serde(default, rename = "proxyIP")]
    pub proxy_ip: String,
    pub media: Option<Media>,
}

/// One credit (positive value) or debit (negative value) of the prepaid balance.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceRecord {
    pub account: String,
    /// Signed decimal string ("-0.0100") or number, at most 4 decimals.
    pub value: NumOrText,
    pub description: String,
    pub session: Option<String>,
}

/// The three feeds, for adapters that pick one at run time (the CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedKind {
    Registrations,
    Cdrs,
    Balance,
}

/// A batch of records of one feed.
#[derive(Clone, Debug)]
pub enum FeedBatch {
    Registrations(Vec<RegistrationRecord>),
    Cdrs(Vec<CdrRecord>),
    Balance(Vec<BalanceRecord>),
}

impl FeedBatch {
    pub fn new(kind: FeedKind) -> Self {
        match kind {
            FeedKind::Registrations => Self::Registrations(Vec::new()),
            FeedKind::Cdrs => Self::Cdrs(Vec::new()),
            FeedKind::Balance => Self::Balance(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Registrations(v) => v.len(),
            Self::Cdrs(v) => v.len(),
            Self::Balance(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        match self {
            Self::Registrations(v) => v.clear(),
            Self::Cdrs(v) => v.clear(),
            Self::Balance(v) => v.clear(),
        }
    }

    /// Parses one JSON record of this batch's kind and appends it; the error is the reason.
    pub fn push_json(&mut self, json: &str) -> Result<(), String> {
        fn parse<T: DeserializeOwned>(json: &str) -> Result<T, String> {
            serde_json::from_str(json).map_err(|e| e.to_string())
        }
        match self {
            Self::Registrations(v) => v.push(parse(json)?),
            Self::Cdrs(v) => v.push(parse(json)?),
            Self::Balance(v) => v.push(parse(json)?),
        }
        Ok(())
    }
}

/// Parses a JSON array of records, naming the index of the first one that does not parse.
pub fn parse_batch<T: DeserializeOwned>(json: &str) -> Result<Vec<T>, IngestError> {
    let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(json)
        .map_err(|e| IngestError::at(0, format!("expected a JSON array of records: {e}")))?;
    if raw.len() > MAX_BATCH {
        return Err(too_many(raw.len()));
    }
    raw.iter()
        .enumerate()
        .map(|(i, r)| serde_json::from_str(r.get()).map_err(|e| IngestError::at(i, e.to_string())))
        .collect()
}

fn too_many(n: usize) -> IngestError {
    IngestError::at(
        MAX_BATCH,
        format!("a batch holds at most {MAX_BATCH} records, got {n}"),
    )
}

fn check_len(n: usize) -> Result<(), IngestError> {
    if n > MAX_BATCH {
        return Err(too_many(n));
    }
    Ok(())
}

// ---- interpreting records ----

type Address = (String, String);

fn address(a: &str) -> Result<Address, String> {
    split_address(a).map_err(|e| format!("account: {e}"))
}

fn unix_time(field: &str, v: &NumOrText) -> Result<i64, String> {
    let t = match v {
        NumOrText::Int(t) => Some(*t),
        NumOrText::Decimal(_) => None,
        NumOrText::Text(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().ok()
            } else {
                chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| t.timestamp())
            }
        }
    };
    match t {
        Some(t) if (0..=MAX_TIME).contains(&t) => Ok(t),
        _ => Err(format!(
            "{field} must be unix seconds or an RFC 3339 time, got {}",
            show(v)
        )),
    }
}

fn money(field: &str, v: &NumOrText) -> Result<i64, String> {
    let m = match v {
        NumOrText::Int(n) => n
            .checked_mul(MONEY_SCALE)
            .filter(|m| m.abs() < 1_000_000_000_000_000),
        NumOrText::Decimal(s) | NumOrText::Text(s) => parse_money(s),
    };
    m.ok_or_else(|| {
        format!(
            "{field} must be a decimal amount with at most 4 decimals, got {}",
            show(v)
        )
    })
}

fn show(v: &NumOrText) -> String {
    match v {
        NumOrText::Int(n) => n.to_string(),
        NumOrText::Decimal(s) => s.clone(),
        NumOrText::Text(s) => format!("{:?}", crate::domain::validate::truncate(s, 40)),
    }
}

fn opt(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl RegistrationRecord {
    fn to_registration(&self, now: i64) -> Result<(Address, Registration), String> {
        let addr = address(&self.account)?;
        let expires_at = match (self.expires, self.expires_at) {
            (Some(_), Some(_)) => return Err("give expires or expires_at, not both".into()),
            (None, None) => return Err("expires or expires_at is required".into()),
            (Some(e), None) if (0..=MAX_EXPIRES).contains(&e) => now + e,
            (Some(e), None) => {
                return Err(format!(
                    "expires must be 0 to {MAX_EXPIRES} seconds, got {e}"
                ));
            }
            (None, Some(t)) if t <= now + MAX_EXPIRES => t,
            (None, Some(_)) => {
                return Err(format!(
                    "expires_at must be at most {MAX_EXPIRES} seconds from now"
                ));
            }
        };
        let r = Registration {
            contact: self.contact.trim().to_owned(),
            public_contact: opt(&self.public_contact),
            expires_at,
            user_agent: opt(&self.user_agent),
            transport: opt(&self.transport).map(|t| t.to_ascii_lowercase()),
            instance_id: opt(&self.instance_id),
        };
        check_registration(&r)?;
        Ok((addr, r))
    }
}

impl CdrRecord {
    fn to_call(&self) -> Result<(Address, CallRecord), String> {
        let addr = address(&self.account)?;
        let start_time = unix_time("startTime", &self.start_time)?;
        let stop_time = self
            .stop_time
            .as_ref()
            .map(|t| unix_time("stopTime", t))
            .transpose()?;
        let duration = match (self.duration, stop_time) {
            (Some(d), _) => d,
            (None, Some(stop)) => (stop - start_time).max(0),
            (None, None) => 0,
        };
        let status = match &self.status {
            NumOrText::Int(n) if (100..=699).contains(n) => n.to_string(),
            NumOrText::Text(s) if !s.trim().is_empty() => s.trim().to_owned(),
            other => {
                return Err(format!(
                    "status must be a SIP code (100 to 699), got {}",
                    show(other)
                ));
            }
        };
        let price = self.price.as_ref().map(|p| money("price", p)).transpose()?;
        let media = match &self.media {
            None => "audio".to_owned(),
            Some(Media(list)) => {
                let list: Vec<&str> = list.iter().map(|m| m.trim()).collect();
                if list.iter().any(|m| m.is_empty() || m.contains(',')) {
                    return Err("media must be non-empty names without commas".into());
                }
                list.join(",")
            }
        };
        let c = CallRecord {
            id: 0,
            account_id: 0,
            direction: self.direction.trim().to_ascii_lowercase(),
            remote_party: self.remote_party.trim().to_owned(),
            display_name: self.display_name.trim().to_owned(),
            start_time,
            stop_time,
            duration,
            status,
            price,
            session_id: self.session_id.clone(),
            from_tag: self.from_tag.clone(),
            to_tag: self.to_tag.clone(),
            proxy_ip: self.proxy_ip.trim().to_owned(),
            media,
        };
        check_call(&c)?;
        Ok((addr, c))
    }
}

struct BalanceMoveIn {
    value: i64,
    description: String,
    session: Option<String>,
}

impl BalanceRecord {
    fn to_move(&self) -> Result<(Address, BalanceMoveIn), String> {
        let addr = address(&self.account)?;
        let m = BalanceMoveIn {
            value: money("value", &self.value)?,
            description: self.description.trim().to_owned(),
            session: opt(&self.session),
        };
        check_balance(m.value, &m.description, m.session.as_deref())?;
        Ok((addr, m))
    }
}

/// The order to write a batch in: by account, then by `key` (the row's unique key), keeping
/// the batch's order among equal keys (a later record still wins). Every batch takes its row
/// locks in this one global order, so concurrent batches on PostgreSQL cannot deadlock.
fn lock_order<K: Ord>(ids: &[i64], key: impl Fn(usize) -> K) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| ids[a].cmp(&ids[b]).then_with(|| key(a).cmp(&key(b))));
    order
}

/// Checks every record before anything is written.
fn check_all<R, T>(
    records: &[R],
    f: impl Fn(&R) -> Result<(Address, T), String>,
) -> Result<Vec<(Address, T)>, IngestError> {
    check_len(records.len())?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| f(r).map_err(|reason| IngestError::at(i, reason)))
        .collect()
}

impl Services {
    /// Upserts registrations by (account, contact); one that has expired (`expires: 0`,
    /// `expires_at` in the past) removes the stored one. One transaction for the batch.
    pub async fn ingest_registrations(
        &self,
        records: &[RegistrationRecord],
    ) -> Result<IngestReport, IngestError> {
        let now = now();
        let checked = check_all(records, |r| r.to_registration(now))?;
        let mut tx = self.store.begin_write().await?;
        let ids = self.resolve_accounts(&mut tx, &checked).await?;
        for i in lock_order(&ids, |i| &checked[i].1.contact) {
            self.store_registration(&mut tx, ids[i], &checked[i].1, now)
                .await
                .map_err(at_record(i))?;
        }
        tx.commit().await?;
        Ok(IngestReport {
            accepted: records.len(),
            duplicates: 0,
        })
    }

    /// Stores call detail records, idempotent on (account, sessionId, fromTag, direction):
    /// a repeat changes nothing and counts as a duplicate; a placed call's price is debited
    /// once, when its finished record is first stored. One transaction for the batch.
    pub async fn ingest_cdrs(&self, records: &[CdrRecord]) -> Result<IngestReport, IngestError> {
        let checked = check_all(records, CdrRecord::to_call)?;
        let mut tx = self.store.begin_write().await?;
        let ids = self.resolve_accounts(&mut tx, &checked).await?;
        let calls: Vec<CallRecord> = checked
            .into_iter()
            .zip(&ids)
            .map(|((_, mut c), id)| {
                c.account_id = *id;
                c
            })
            .collect();
        let order = lock_order(&ids, |i| {
            (
                &calls[i].session_id,
                &calls[i].from_tag,
                &calls[i].direction,
            )
        });
        let mut duplicates = 0;
        for i in order {
            let outcome = self
                .store_call(&mut tx, &calls[i])
                .await
                .map_err(at_record(i))?;
            if outcome == CallOutcome::Duplicate {
                duplicates += 1;
            }
        }
        tx.commit().await?;
        Ok(IngestReport {
            accepted: records.len(),
            duplicates,
        })
    }

    /// Credits and debits in order, each added atomically to the stored balance (concurrent
    /// batches never lose an update) and recorded in the balance history. One transaction.
    pub async fn ingest_balance(
        &self,
        records: &[BalanceRecord],
    ) -> Result<IngestReport, IngestError> {
        let checked = check_all(records, BalanceRecord::to_move)?;
        let now = now();
        let mut tx = self.store.begin_write().await?;
        let ids = self.resolve_accounts(&mut tx, &checked).await?;
        for i in lock_order(&ids, |_| ()) {
            let m = &checked[i].1;
            self.store_balance(
                &mut tx,
                ids[i],
                m.value,
                &m.description,
                m.session.as_deref(),
                now,
            )
            .await
            .map_err(at_record(i))?;
        }
        tx.commit().await?;
        Ok(IngestReport {
            accepted: records.len(),
            duplicates: 0,
        })
    }

    /// Runs the batch's feed.
    pub async fn ingest(&self, batch: &FeedBatch) -> Result<IngestReport, IngestError> {
        match batch {
            FeedBatch::Registrations(v) => self.ingest_registrations(v).await,
            FeedBatch::Cdrs(v) => self.ingest_cdrs(v).await,
            FeedBatch::Balance(v) => self.ingest_balance(v).await,
        }
    }

    /// The account id of every record, each distinct address looked up once (inside `tx`, so
    /// an account removed meanwhile is not written to).
    async fn resolve_accounts<T>(
        &self,
        tx: &mut WriteTx,
        checked: &[(Address, T)],
    ) -> Result<Vec<i64>, IngestError> {
        let mut distinct: Vec<Address> = checked.iter().map(|(a, _)| a.clone()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let found: HashMap<Address, i64> = self
            .store
            .account_ids_by_address(tx, &distinct)
            .await?
            .into_iter()
            .collect();
        checked
            .iter()
            .enumerate()
            .map(|(i, ((u, d), _))| {
                found
                    .get(&(u.clone(), d.clone()))
                    .copied()
                    .ok_or_else(|| IngestError::at(i, format!("account {u}@{d} does not exist")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: serde_json::Value) -> NumOrText {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn money_from_strings_and_numbers() {
        use serde_json::json;
        assert_eq!(money("price", &n(json!("0.0400"))), Ok(400));
        assert_eq!(money("price", &n(json!(0.04))), Ok(400));
        assert_eq!(money("price", &n(json!(4e-2))), Ok(400));
        assert_eq!(money("value", &n(json!(-2))), Ok(-20_000));
        assert_eq!(money("value", &n(json!("-0.01"))), Ok(-100));
        assert!(money("price", &n(json!(0.00001))).is_err());
        assert!(money("price", &n(json!(0.1 + 0.2))).is_err());
        assert!(money("price", &n(json!(1e20))).is_err());
        assert!(money("price", &n(json!(u64::MAX))).is_err());
        assert!(money("price", &n(json!("1,5"))).is_err());
        assert!(serde_json::from_value::<NumOrText>(json!(true)).is_err());
        assert!(serde_json::from_value::<NumOrText>(json!(null)).is_err());
    }

    #[test]
    fn times() {
        use serde_json::json;
        assert_eq!(unix_time("t", &n(json!(1_767_261_600))), Ok(1_767_261_600));
        assert_eq!(unix_time("t", &n(json!("1767261600"))), Ok(1_767_261_600));
        assert_eq!(
            unix_time("t", &n(json!("2026-01-01T10:00:00Z"))),
            Ok(1_767_261_600)
        );
        assert_eq!(
            unix_time("t", &n(json!("2026-01-01T11:00:00+01:00"))),
            Ok(1_767_261_600)
        );
        assert!(unix_time("t", &n(json!(-1))).is_err());
        assert!(unix_time("t", &n(json!(1.5))).is_err());
        assert!(unix_time("t", &n(json!("2026-01-01 10:00:00"))).is_err());
    }

    #[test]
    fn records_use_the_wire_names() {
        let c: CdrRecord = serde_json::from_str(
            r#"{"account":"a@b.c","direction":"placed","remoteParty":"sip:x@y","startTime":1,
                "status":200,"sessionId":"s","fromTag":"f","proxyIP":"1.2.3.4","media":"audio, video"}"#,
        )
        .unwrap();
        let (_, call) = c.to_call().unwrap();
        assert_eq!(call.proxy_ip, "1.2.3.4");
        assert_eq!(call.media, "audio,video");
        assert_eq!(call.status, "200");
        assert!(
            serde_json::from_str::<CdrRecord>(
                r#"{"account":"a@b.c","direction":"placed","remoteParty":"x","startTime":1,
                    "status":200,"sessionId":"s","fromTag":"f","proxyIp":"1.2.3.4"}"#
            )
            .is_err()
        );
        let e = serde_json::from_str::<RegistrationRecord>(r#"{"account":"a@b.c","expires":5}"#)
            .unwrap_err();
        assert!(e.to_string().contains("missing field `contact`"), "{e}");
    }
}
