//! Journal replication: devices of one account exchange opaque entries (spec §5).

use serde_json::Value;
use serde_json::value::RawValue;

use super::Services;
use crate::config::JournalConfig;
use crate::domain::Account;
use crate::error::{ServiceError, ServiceResult};
use crate::store::{JournalQuery, NewJournalEntry};

pub const MAX_GET_LIMIT: i64 = 5000;
pub const MAX_UUID: usize = 256;
/// Most ids one `delete_journal_entries` call may name.
pub const MAX_DELETE_IDS: usize = 5000;

/// What `put_journal_entries` answers per stored row.
#[derive(Clone, Debug)]
pub struct PutResult {
    pub client_id: Option<String>,
    pub journal_id: Option<i64>,
    /// An `add` row (else a `remove`, which deleted `journal_id` when it is set).
    pub added: bool,
}

#[derive(Clone, Debug)]
pub struct JournalEntry {
    pub id: i64,
    pub timestamp: i64,
    pub uuid: String,
    pub ip_address: String,
    /// The row's data as stored (JSON text, returned unparsed).
    pub data: Box<RawValue>,
}

#[derive(Clone, Debug)]
pub struct JournalPage {
    pub entries: Vec<JournalEntry>,
    /// `(journal_id, timestamp)` of every entry, or `None` when it could not be complete.
    pub summary: Option<Vec<(i64, i64)>>,
}

enum RowOp {
    Add {
        client_id: Option<String>,
        data: String,
    },
    Remove {
        client_id: Option<String>,
        journal_id: Option<i64>,
    },
}

fn id_string(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

pub fn journal_id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_rows(data: &str, cfg: &JournalConfig) -> ServiceResult<Vec<RowOp>> {
    if data.len() > cfg.max_call_bytes {
        return Err(ServiceError::invalid(format!(
            "Error: data is larger than {} bytes",
            cfg.max_call_bytes
        )));
    }
    let v: Value =
        serde_json::from_str(data).map_err(|_| ServiceError::invalid("Json decode error"))?;
    let rows: Vec<Value> = match v {
        Value::Array(a) => a,
        Value::Object(o) => o.into_iter().map(|(_, v)| v).collect(),
        _ => {
            return Err(ServiceError::invalid(
                "Json decode error: data must be an array or an object of rows",
            ));
        }
    };
    if rows.len() > cfg.max_rows_per_call {
        return Err(ServiceError::invalid(format!(
            "Error: at most {} rows per call",
            cfg.max_rows_per_call
        )));
    }
    let mut ops = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let Value::Object(mut obj) = row else {
            return Err(ServiceError::invalid(format!(
                "Json decode error: row {i} is not an object"
            )));
        };
        let client_id = id_string(obj.get("id"));
        let action = obj.get("action").and_then(Value::as_str).unwrap_or("add");
        match action {
            "add" => {
                // Rows without data are skipped, as the original does.
                let Some(data) = obj.remove("data") else {
                    continue;
                };
                let text = serde_json::to_string(&data)
                    .map_err(|_| ServiceError::invalid("Json decode error"))?;
                if text.len() > cfg.max_row_bytes {
                    return Err(ServiceError::invalid(format!(
                        "Error: row {i} data is larger than {} bytes",
                        cfg.max_row_bytes
                    )));
                }
                ops.push(RowOp::Add {
                    client_id,
                    data: text,
                });
            }
            "remove" => ops.push(RowOp::Remove {
                client_id,
                journal_id: obj.get("journal_id").and_then(journal_id_of),
            }),
            _ => {
                return Err(ServiceError::invalid(format!(
                    "Error: row {i} has unknown action (use add or remove)"
                )));
            }
        }
    }
    Ok(ops)
}

impl Services {
    pub fn journal_config(&self) -> &JournalConfig {
        &self.journal
    }

    /// Stores all rows of one call in one transaction, or none.
    pub async fn journal_put(
        &self,
        a: &Account,
        uuid: Option<&str>,
        data: Option<&str>,
        ip: &str,
    ) -> ServiceResult<Vec<PutResult>> {
        let uuid = uuid
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ServiceError::invalid("Missing uuid"))?;
        if uuid.chars().count() > MAX_UUID {
            return Err(ServiceError::invalid(format!(
                "Error: uuid is longer than {MAX_UUID} characters"
            )));
        }
        let data = data
            .filter(|d| !d.trim().is_empty())
            .ok_or_else(|| ServiceError::invalid("Missing data"))?;
        let ops = parse_rows(data, &self.journal)?;
        let adds = ops
            .iter()
            .filter(|o| matches!(o, RowOp::Add { .. }))
            .count() as i64;
        let mut tx = self.store.begin_write().await?;
        let (count, stamp) = self.store.journal_lock_write(&mut tx, a.id).await?;
        if count + adds > self.journal.max_entries_per_account {
            return Err(ServiceError::invalid(format!(
                "Error: the journal of this account is full ({} entries); delete old entries first",
                self.journal.max_entries_per_account
            )));
        }
        let mut results = Vec::with_capacity(ops.len());
        let mut delta = 0i64;
        for op in ops {
            match op {
                RowOp::Add { client_id, data } => {
                    let id = self
                        .store
                        .journal_insert(
                            &mut tx,
                            &NewJournalEntry {
                                account_id: a.id,
                                timestamp: stamp,
                                uuid,
                                ip,
                                client_id: client_id.as_deref(),
                                data: &data,
                            },
                        )
                        .await?;
                    delta += 1;
                    results.push(PutResult {
                        client_id,
                        journal_id: Some(id),
                        added: true,
                    });
                }
                RowOp::Remove {
                    client_id,
                    journal_id,
                } => {
                    let mut removed = None;
                    if let Some(id) = journal_id
                        && self.store.journal_delete(&mut tx, a.id, &[id]).await? > 0
                    {
                        delta -= 1;
                        removed = Some(id);
                    }
                    results.push(PutResult {
                        client_id,
                        journal_id: removed,
                        added: false,
                    });
                }
            }
        }
        self.store
            .journal_adjust_count(&mut tx, a.id, delta)
            .await?;
        tx.commit().await?;
        Ok(results)
    }

    pub async fn journal_get(
        &self,
        a: &Account,
        q: &JournalQuery<'_>,
        summary: bool,
    ) -> ServiceResult<JournalPage> {
        if !(1..=MAX_GET_LIMIT).contains(&q.limit) {
            return Err(ServiceError::invalid(format!(
                "Error: limit must be 1 to {MAX_GET_LIMIT}"
            )));
        }
        if q.after_id < 0 || q.after_timestamp < 0 {
            return Err(ServiceError::invalid(
                "Error: after_id and after_timestamp must not be negative",
            ));
        }
        // The read lock orders this read after every in-flight writer of the account; entries
        // of the current second are held back, since a writer may still stamp that second.
        let mut tx = self.store.begin_write().await?;
        let before = self.store.journal_lock_read(&mut tx, a.id).await?;
        let rows = self.store.journal_entries(&mut tx, a.id, q, before).await?;
        let summary = if summary {
            let cap = self.journal.max_entries_per_account.max(1);
            let list = self
                .store
                .journal_summary(&mut tx, a.id, q.except_uuid, before, cap + 1)
                .await?;
            // Clients delete local data missing from the summary: never send a partial one.
            (list.len() as i64 <= cap).then_some(list)
        } else {
            None
        };
        tx.commit().await?;
        let entries = rows
            .into_iter()
            .map(|r| {
                let data = RawValue::from_string(r.data).map_err(|_| {
                    ServiceError::Internal(format!("journal entry {} is not JSON", r.id))
                })?;
                Ok(JournalEntry {
                    id: r.id,
                    timestamp: r.timestamp,
                    uuid: r.uuid,
                    ip_address: r.ip_address,
                    data,
                })
            })
            .collect::<ServiceResult<Vec<_>>>()?;
        Ok(JournalPage { entries, summary })
    }

    /// Deletes the caller's entries among `ids`; ids of other accounts are silently ignored.
    pub async fn journal_delete(&self, a: &Account, ids: &[i64]) -> ServiceResult<u64> {
        if ids.is_empty() {
            return Err(ServiceError::invalid("No journal entries provided"));
        }
        if ids.len() > MAX_DELETE_IDS {
            return Err(ServiceError::invalid(format!(
                "Error: at most {MAX_DELETE_IDS} ids per call"
            )));
        }
        let mut tx = self.store.begin_write().await?;
        self.store.journal_lock_write(&mut tx, a.id).await?;
        let n = self.store.journal_delete(&mut tx, a.id, ids).await?;
        self.store
            .journal_adjust_count(&mut tx, a.id, -(n as i64))
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Deletes entries older than `days` in batches; returns how many.
    pub async fn journal_prune(&self, days: u64, account: Option<&Account>) -> ServiceResult<u64> {
        let cutoff = crate::util::now()
            - i64::try_from(days)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(86_400);
        let mut total = 0;
        loop {
            let n = self
                .store
                .journal_prune_batch(
                    cutoff,
                    account.map(|a| a.id),
                    self.journal.prune_batch.max(1),
                )
                .await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
            // Let live traffic in between batches.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_shapes() {
        let cfg = JournalConfig::default();
        let ops = parse_rows(r#"{"m1":{"id":"m1","data":"abc"},"m2":{"id":"m2"}}"#, &cfg).unwrap();
        assert_eq!(ops.len(), 1);
        let ops = parse_rows(
            r#"[{"id":1,"data":{"x":1}},{"id":"r","action":"remove","journal_id":"7"}]"#,
            &cfg,
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        assert!(parse_rows("nope", &cfg).is_err());
        assert!(parse_rows("42", &cfg).is_err());
        assert!(parse_rows("[1]", &cfg).is_err());
        assert!(parse_rows(r#"[{"data":1,"action":"explode"}]"#, &cfg).is_err());
        let big = format!(r#"[{{"data":"{}"}}]"#, "x".repeat(70_000));
        assert!(parse_rows(&big, &cfg).is_err());
    }
}
