//! Call forwarding, accept/reject rules, do-not-disturb, privacy and voicemail.

use serde_json::Value;

use super::{MAX_DND_MINUTES, MAX_REJECT_RULES, Services};
use crate::domain::validate;
use crate::domain::{AcceptRule, Account, Forwarding, MOBILE_NUMBER, VOICE_MAILBOX};
use crate::error::{ServiceError, ServiceResult};
use crate::util::now;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistentRule {
    pub days: i64,
    pub start: String,
    pub stop: String,
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Temporary {
    pub groups: Vec<String>,
    /// Remaining minutes; 0 = inactive, or indefinite for `["nobody"]`.
    pub duration: i64,
}

#[derive(Clone, Debug)]
pub struct AcceptRulesView {
    pub persistent: Vec<PersistentRule>,
    pub temporary: Temporary,
    pub groups: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct VoicemailView {
    pub mailbox: String,
    pub password: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub info: Option<String>,
    pub delete: bool,
    pub account: String,
}

const NOBODY: &str = "nobody";
const EVERYBODY: &str = "everybody";
const MAX_GROUPS_PER_RULE: usize = 20;

fn inactive() -> Temporary {
    Temporary {
        groups: vec![EVERYBODY.into()],
        duration: 0,
    }
}

/// The temporary rule as of `now`: expired rules read as inactive, so DND ends by itself.
pub fn temporary_at(a: &Account, now: i64) -> Temporary {
    let groups: Vec<String> = match a
        .temp_groups
        .as_deref()
        .and_then(|g| serde_json::from_str(g).ok())
    {
        Some(g) => g,
        None => return inactive(),
    };
    match a.temp_expires_at {
        None => Temporary {
            groups,
            duration: 0,
        },
        Some(t) if t > now => Temporary {
            groups,
            // Round up: one second left still shows as one minute.
            duration: (t - now + 59) / 60,
        },
        Some(_) => inactive(),
    }
}

fn parse_groups(v: Option<&Value>, what: &str) -> ServiceResult<Vec<String>> {
    let arr = v
        .and_then(Value::as_array)
        .ok_or_else(|| ServiceError::invalid(format!("Error: {what} needs a list of groups")))?;
    if arr.is_empty() || arr.len() > MAX_GROUPS_PER_RULE {
        return Err(ServiceError::invalid(format!(
            "Error: {what} needs 1 to {MAX_GROUPS_PER_RULE} groups"
        )));
    }
    let mut out = Vec::with_capacity(arr.len());
    for g in arr {
        let g = g.as_str().ok_or_else(|| {
            ServiceError::invalid(format!("Error: {what}: groups must be strings"))
        })?;
        validate::group_name(g).map_err(ServiceError::Invalid)?;
        if !out.iter().any(|x: &String| x == g) {
            out.push(g.to_owned());
        }
    }
    Ok(out)
}

fn parse_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_persistent_rule(days: i64, rule: &Value) -> ServiceResult<PersistentRule> {
    if !(1..=127).contains(&days) {
        return Err(ServiceError::invalid(format!(
            "Error: invalid day mask {days}: use 1 (Mon) … 64 (Sun) added up, 1 to 127"
        )));
    }
    let obj = rule
        .as_object()
        .ok_or_else(|| ServiceError::invalid("Error: each persistent rule must be an object"))?;
    let time = |k: &str| -> ServiceResult<String> {
        let s = obj.get(k).and_then(Value::as_str).ok_or_else(|| {
            ServiceError::invalid(format!("Error: persistent rule {days} needs {k}"))
        })?;
        validate::hh_mm(s).map_err(ServiceError::Invalid)?;
        Ok(s.to_owned())
    };
    let start = time("start")?;
    let stop = time("stop")?;
    if start >= stop {
        return Err(ServiceError::invalid(format!(
            "Error: persistent rule {days}: start must be before stop"
        )));
    }
    let groups = parse_groups(obj.get("groups"), &format!("persistent rule {days}"))?;
    Ok(PersistentRule {
        days,
        start,
        stop,
        groups,
    })
}

/// Persistent rules, and the temporary rule as (groups, minutes).
type ParsedRules = (Vec<PersistentRule>, Option<(Vec<String>, i64)>);

/// Parses the `get_accept_rules` shape (also the list form `[{days,start,stop,groups}]`).
fn parse_accept_rules(v: &Value) -> ServiceResult<ParsedRules> {
    let obj = v
        .as_object()
        .ok_or_else(|| ServiceError::invalid("Error: rules must be a JSON object"))?;
    // A typo must not silently clear every rule.
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "persistent" | "temporary" | "groups"))
    {
        return Err(ServiceError::invalid(format!(
            "Error: unknown key {:?} in rules (use persistent, temporary)",
            validate::truncate(k, 40)
        )));
    }
    let mut persistent: Vec<PersistentRule> = Vec::new();
    match obj.get("persistent") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, rule) in map {
                let days = k.trim().parse::<i64>().map_err(|_| {
                    ServiceError::invalid(format!(
                        "Error: invalid day mask {:?}",
                        validate::truncate(k, 20)
                    ))
                })?;
                persistent.push(parse_persistent_rule(days, rule)?);
            }
        }
        Some(Value::Array(list)) => {
            for rule in list {
                let days = rule.get("days").and_then(parse_int).ok_or_else(|| {
                    ServiceError::invalid("Error: each persistent rule needs days")
                })?;
                persistent.push(parse_persistent_rule(days, rule)?);
            }
        }
        Some(_) => return Err(ServiceError::invalid("Error: persistent must be an object")),
    }
    persistent.sort_by_key(|r| r.days);
    if persistent
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.days == b.days))
    {
        return Err(ServiceError::invalid(
            "Error: one persistent rule per day mask",
        ));
    }
    let temporary = match obj.get("temporary") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => {
            let groups = parse_groups(t.get("groups"), "temporary rule")?;
            let duration = match t.get("duration") {
                None | Some(Value::Null) => 0,
                Some(d) => parse_int(d).ok_or_else(|| {
                    ServiceError::invalid("Error: temporary duration must be whole minutes")
                })?,
            };
            if !(0..=MAX_DND_MINUTES).contains(&duration) {
                return Err(ServiceError::invalid(format!(
                    "Error: temporary duration must be 0 to {MAX_DND_MINUTES} minutes"
                )));
            }
            Some((groups, duration))
        }
        Some(_) => return Err(ServiceError::invalid("Error: temporary must be an object")),
    };
    Ok((persistent, temporary))
}

impl Services {
    // ---- call forwarding ----

    /// Targets in wire order: without `sip:`/`sips:`, or `<voice-mailbox>`.
    pub fn call_forwarding(&self, a: &Account) -> Vec<(Forwarding, Option<String>)> {
        Forwarding::ALL
            .iter()
            .map(|f| {
                let v = f.get(a).map(|t| {
                    t.strip_prefix("sip:")
                        .or_else(|| t.strip_prefix("sips:"))
                        .unwrap_or(t)
                        .to_owned()
                });
                (*f, v)
            })
            .collect()
    }

    /// Applies the present keys; returns the original's message. Nothing changes on any error.
    pub async fn set_call_forwarding(
        &self,
        a: &Account,
        changes: &[(Forwarding, String)],
    ) -> ServiceResult<String> {
        // Validate and normalise first, so nothing changes when any value is bad.
        let mut wanted: Vec<(Forwarding, Option<String>)> = Vec::with_capacity(changes.len());
        for (f, raw) in changes {
            let raw = raw.trim();
            let new = if raw.is_empty() {
                None
            } else if raw.eq_ignore_ascii_case(VOICE_MAILBOX)
                || raw.eq_ignore_ascii_case("voice-mailbox")
            {
                Some(VOICE_MAILBOX.to_owned())
            } else {
                let mut t = if raw.eq_ignore_ascii_case(MOBILE_NUMBER) {
                    a.mobile_number.clone().ok_or_else(|| {
                        ServiceError::invalid("Error: the account has no mobile number")
                    })?
                } else {
                    raw.strip_prefix("sip:")
                        .or_else(|| raw.strip_prefix("sips:"))
                        .unwrap_or(raw)
                        .to_owned()
                };
                if !t.contains('@') {
                    t = format!("{t}@{}", a.domain);
                }
                validate::sip_target(&t)
                    .map_err(|m| ServiceError::invalid(format!("{m} for {}", f.key())))?;
                Some(format!("sip:{t}"))
            };
            wanted.push((*f, new));
        }
        // Merge with the current values read inside the transaction, so concurrent changes
        // of other keys are not lost.
        let mut tx = self.store.begin_write().await?;
        let current = self
            .store
            .account_by_id_tx(&mut tx, a.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("account does not exist".into()))?;
        let mut targets: [Option<String>; 5] =
            Forwarding::ALL.map(|f| f.get(&current).map(str::to_owned));
        let mut changed = String::new();
        for (f, new) in wanted {
            let idx = Forwarding::ALL.iter().position(|x| *x == f).unwrap_or(0);
            if let Some(slot) = targets.get_mut(idx)
                && *slot != new
            {
                changed.push_str(&format!("{}={} ", f.key(), new.as_deref().unwrap_or("")));
                *slot = new;
            }
        }
        if changed.is_empty() {
            return Ok("Diversions remained the same".into());
        }
        self.store
            .set_forwarding(&mut tx, a.id, &targets, now())
            .await?;
        tx.commit().await?;
        Ok(format!("Changed diversions {changed}"))
    }

    // ---- accept rules and DND ----

    pub async fn accept_rules(&self, a: &Account) -> ServiceResult<AcceptRulesView> {
        let rows = self.store.accept_rules(a.id).await?;
        let persistent = rows
            .into_iter()
            .map(|r| PersistentRule {
                days: r.days,
                start: r.start_time,
                stop: r.stop_time,
                groups: serde_json::from_str(&r.groups).unwrap_or_default(),
            })
            .collect();
        Ok(AcceptRulesView {
            persistent,
            temporary: temporary_at(a, now()),
            groups: self.store.phonebook_groups(a.id).await?,
        })
    }

    pub async fn set_accept_rules(&self, a: &Account, rules: &Value) -> ServiceResult<String> {
        let (persistent, temporary) = parse_accept_rules(rules)?;
        let rows: Vec<AcceptRule> = persistent
            .iter()
            .map(|r| AcceptRule {
                days: r.days,
                start_time: r.start.clone(),
                stop_time: r.stop.clone(),
                groups: serde_json::to_string(&r.groups).unwrap_or_else(|_| "[]".into()),
            })
            .collect();
        let now = now();
        let (temp_groups, temp_expires) = match temporary {
            Some((groups, duration)) if duration > 0 => (Some(groups), Some(now + duration * 60)),
            // Without a duration only DND (`nobody`) stays on until turned off.
            Some((groups, _)) if groups == [NOBODY] => (Some(groups), None),
            _ => (None, None),
        };
        let temp_json = temp_groups.map(|g| serde_json::to_string(&g).unwrap_or_default());
        let mut tx = self.store.begin_write().await?;
        self.store
            .replace_accept_rules(&mut tx, a.id, &rows)
            .await?;
        self.store
            .set_temporary_rule(&mut tx, a.id, temp_json.as_deref(), temp_expires, now)
            .await?;
        tx.commit().await?;
        Ok("Accept rules have been saved".into())
    }

    /// `minutes` 0 = until turned off.
    pub async fn set_dnd_on(&self, a: &Account, minutes: i64) -> ServiceResult<String> {
        if !(0..=MAX_DND_MINUTES).contains(&minutes) {
            return Err(ServiceError::invalid(format!(
                "Error: duration must be 0 to {MAX_DND_MINUTES} minutes"
            )));
        }
        let now = now();
        let expires = (minutes > 0).then(|| now + minutes * 60);
        let mut tx = self.store.begin_write().await?;
        self.store
            .set_temporary_rule(&mut tx, a.id, Some("[\"nobody\"]"), expires, now)
            .await?;
        tx.commit().await?;
        Ok(if minutes > 0 {
            format!("Do not disturb has been enabled for {minutes} minutes")
        } else {
            "Do not disturb has been enabled".into()
        })
    }

    pub async fn set_dnd_off(&self, a: &Account) -> ServiceResult<String> {
        let mut tx = self.store.begin_write().await?;
        self.store
            .set_temporary_rule(&mut tx, a.id, None, None, now())
            .await?;
        tx.commit().await?;
        Ok("Do not disturb has been disabled".into())
    }

    pub async fn reject_rules(&self, a: &Account) -> ServiceResult<Vec<String>> {
        Ok(self.store.reject_rules(a.id).await?)
    }

    pub async fn set_reject_rules(&self, a: &Account, rules: &Value) -> ServiceResult<String> {
        let list = rules.as_array().ok_or_else(|| {
            ServiceError::invalid("Error: rules must be a JSON array of SIP URIs")
        })?;
        if list.len() > MAX_REJECT_RULES {
            return Err(ServiceError::invalid(format!(
                "Error: at most {MAX_REJECT_RULES} reject rules"
            )));
        }
        let mut uris: Vec<String> = Vec::with_capacity(list.len());
        for v in list {
            let s = v
                .as_str()
                .ok_or_else(|| ServiceError::invalid("Error: each reject rule must be a string"))?;
            let uri = validate::reject_uri(s).map_err(ServiceError::Invalid)?;
            if !uris.contains(&uri) {
                uris.push(uri);
            }
        }
        let mut tx = self.store.begin_write().await?;
        self.store
            .replace_reject_rules(&mut tx, a.id, &uris)
            .await?;
        tx.commit().await?;
        Ok("Reject rules have been saved".into())
    }

    // ---- privacy ----

    pub async fn set_privacy(&self, a: &Account, on: bool) -> ServiceResult<String> {
        let mut tx = self.store.begin_write().await?;
        self.store.set_privacy(&mut tx, a.id, on, now()).await?;
        tx.commit().await?;
        Ok(if on {
            "Caller-ID is now hidden for outgoing calls".into()
        } else {
            "Caller-ID is now visible for outgoing calls".into()
        })
    }

    // ---- voicemail ----

    pub async fn voicemail(&self, a: &Account) -> ServiceResult<Option<VoicemailView>> {
        let Some(vm) = self.store.voicemail(a.id).await? else {
            return Ok(None);
        };
        let password = self.keys.open(&vm.password_sealed)?;
        Ok(Some(VoicemailView {
            mailbox: vm.mailbox,
            password,
            name: vm.name,
            email: vm.email,
            info: vm.info,
            delete: vm.delete_after_email != 0,
            account: vm.vm_account,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accept_rules_parse() {
        let (p, t) = parse_accept_rules(&json!({
            "persistent": {"31": {"start": "09:00", "stop": "17:00", "groups": ["everybody"]}},
            "temporary": {"groups": ["nobody"], "duration": 45}
        }))
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(t, Some((vec!["nobody".to_owned()], 45)));
        assert!(parse_accept_rules(&json!({"persistent": {"128": {}}})).is_err());
        assert!(parse_accept_rules(&json!({"persistent": {"1": {"start": "10:00", "stop": "09:00", "groups": ["vip"]}}})).is_err());
        assert!(parse_accept_rules(&json!([])).is_err());
        assert!(parse_accept_rules(&json!({"temporary": {"groups": [], "duration": 1}})).is_err());
    }
}
