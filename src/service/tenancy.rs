//! Tenancy and operators: who may see and change what (operator-api §1), in one place.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use tokio::sync::Semaphore;

use super::Services;
use crate::crypto::sha256_hex;
use crate::domain::{Account, ApiToken, Customer, OperatorRow, Reseller, Role};
use crate::error::{ServiceError, ServiceResult, is_unique_violation};
use crate::store::CustomerFilter;
use crate::util::now;

/// The default customer that owns accounts made before tenancy and by the CLI.
pub const DEFAULT_CUSTOMER: i64 = 1;

/// An authenticated operator with its resolved scope.
#[derive(Clone, Debug)]
pub struct Operator {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub customer_id: Option<i64>,
    pub reseller_id: Option<i64>,
    /// The operator's reseller and all its descendants (RESELLER role).
    pub resellers: Vec<i64>,
}

impl Operator {
    pub fn filter(&self) -> CustomerFilter {
        match self.role {
            Role::Admin => CustomerFilter::All,
            Role::Reseller => CustomerFilter::Resellers(self.resellers.clone()),
            _ => CustomerFilter::Customer(self.customer_id.unwrap_or(-1)),
        }
    }

    pub fn sees_customer(&self, c: &Customer) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Reseller => c.reseller_id.is_some_and(|r| self.resellers.contains(&r)),
            _ => self.customer_id == Some(c.id),
        }
    }

    pub fn sees_reseller(&self, id: i64) -> bool {
        self.role == Role::Admin || (self.role == Role::Reseller && self.resellers.contains(&id))
    }

    pub fn can_write_accounts(&self) -> bool {
        self.role != Role::Viewer
    }

    pub fn can_manage_customers(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Reseller)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn forbidden() -> ServiceError {
    ServiceError::Forbidden("your role does not allow this".into())
}

fn not_found(what: &str) -> ServiceError {
    ServiceError::NotFound(format!("{what} not found"))
}

/// Argon2 work is CPU-heavy: run it off the async runtime, a few at a time.
fn argon2_permits() -> Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS
        .get_or_init(|| {
            let n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            Arc::new(Semaphore::new(n))
        })
        .clone()
}

pub async fn hash_password(password: &str) -> ServiceResult<String> {
    let permits = argon2_permits();
    let _permit = permits
        .acquire_owned()
        .await
        .map_err(|_| ServiceError::Internal("argon2 pool closed".into()))?;
    let pw = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(pw.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("argon2 task: {e}")))?
}

/// Verifies in constant time (argon2's own comparison); a missing hash still costs one run.
pub async fn verify_password(password: &str, hash: Option<&str>) -> bool {
    // A fixed valid hash of a random password, so unknown users take as long as known ones.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6k3uPnH8Bv3QKRCj0nF3mT2eD+5a0Qe3bO8tZxIYxLc";
    let permits = argon2_permits();
    let Ok(_permit) = permits.acquire_owned().await else {
        return false;
    };
    let pw = password.to_owned();
    let (hash, real) = match hash {
        Some(h) => (h.to_owned(), true),
        None => (DUMMY.to_owned(), false),
    };
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok()
            && real
    })
    .await
    .unwrap_or(false)
}

/// API tokens: `sst_` + 43 characters of base64url randomness; only a SHA-256 is stored.
pub fn new_token_secret() -> String {
    use base64::Engine;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    format!(
        "sst_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

fn check_name(name: &str, what: &str) -> ServiceResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(ServiceError::invalid(format!(
            "{what} name must be 1 to 100 printable characters"
        )));
    }
    Ok(n.to_owned())
}

/// Fields of a new operator user.
#[derive(Clone, Debug)]
pub struct NewOperator {
    pub name: String,
    pub role: Role,
    pub customer_id: Option<i64>,
    pub reseller_id: Option<i64>,
    pub password: Option<String>,
}

impl Services {
    async fn resolve_operator(&self, row: OperatorRow) -> ServiceResult<Operator> {
        let role = Role::parse(&row.role).ok_or_else(|| {
            ServiceError::Internal(format!("operator {} has role {}", row.id, row.role))
        })?;
        let resellers = match (role, row.reseller_id) {
            (Role::Reseller, Some(root)) => self.reseller_subtree(root).await?,
            _ => Vec::new(),
        };
        Ok(Operator {
            id: row.id,
            name: row.name,
            role,
            customer_id: row.customer_id,
            reseller_id: row.reseller_id,
            resellers,
        })
    }

    /// `root` and all resellers below it.
    pub async fn reseller_subtree(&self, root: i64) -> ServiceResult<Vec<i64>> {
        let all = self.store.list_resellers().await?;
        let mut out = vec![root];
        let mut i = 0;
        while let Some(&cur) = out.get(i) {
            for r in &all {
                if r.parent_id == Some(cur) && !out.contains(&r.id) {
                    out.push(r.id);
                }
            }
            i += 1;
        }
        Ok(out)
    }

    pub async fn operator_by_password(
        &self,
        name: &str,
        password: &str,
    ) -> ServiceResult<Option<Operator>> {
        let row = self.store.operator_by_name(name).await?;
        let ok = verify_password(
            password,
            row.as_ref().and_then(|r| r.password_hash.as_deref()),
        )
        .await;
        match row {
            Some(row) if ok => Ok(Some(self.resolve_operator(row).await?)),
            _ => Ok(None),
        }
    }

    pub async fn operator_by_token(&self, token: &str) -> ServiceResult<Option<Operator>> {
        if !token.starts_with("sst_") || token.len() > 100 {
            return Ok(None);
        }
        match self
            .store
            .operator_by_token(&sha256_hex(token.as_bytes()), now())
            .await?
        {
            Some(row) => Ok(Some(self.resolve_operator(row).await?)),
            None => Ok(None),
        }
    }

    // ---- resellers ----

    pub async fn create_reseller(
        &self,
        op: &Operator,
        name: &str,
        parent: Option<i64>,
    ) -> ServiceResult<Reseller> {
        let name = check_name(name, "reseller")?;
        let parent = match op.role {
            Role::Admin => parent,
            Role::Reseller => {
                let p = parent.or(op.reseller_id);
                if !p.is_some_and(|p| op.sees_reseller(p)) {
                    return Err(not_found("parent reseller"));
                }
                p
            }
            _ => return Err(forbidden()),
        };
        if let Some(p) = parent
            && self.store.reseller(p).await?.is_none()
        {
            return Err(not_found("parent reseller"));
        }
        let mut tx = self.store.begin_write().await?;
        let id = match self
            .store
            .insert_reseller(&mut tx, &name, parent, now())
            .await
        {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(format!(
                    "reseller {name} already exists"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        self.get_reseller(
            &Operator {
                role: Role::Admin,
                ..op.clone()
            },
            id,
        )
        .await
    }

    pub async fn list_resellers(&self, op: &Operator) -> ServiceResult<Vec<Reseller>> {
        Ok(self
            .store
            .list_resellers()
            .await?
            .into_iter()
            .filter(|r| op.sees_reseller(r.id))
            .collect())
    }

    pub async fn get_reseller(&self, op: &Operator, id: i64) -> ServiceResult<Reseller> {
        if !op.sees_reseller(id) {
            return Err(not_found("reseller"));
        }
        self.store
            .reseller(id)
            .await?
            .ok_or_else(|| not_found("reseller"))
    }

    pub async fn rename_reseller(
        &self,
        op: &Operator,
        id: i64,
        name: &str,
    ) -> ServiceResult<Reseller> {
        self.get_reseller(op, id).await?;
        let name = check_name(name, "reseller")?;
        let mut tx = self.store.begin_write().await?;
        match self.store.update_reseller(&mut tx, id, &name, now()).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(format!(
                    "reseller {name} already exists"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        self.get_reseller(op, id).await
    }

    pub async fn delete_reseller(&self, op: &Operator, id: i64) -> ServiceResult<()> {
        self.get_reseller(op, id).await?;
        if op.reseller_id == Some(id) {
            return Err(forbidden());
        }
        let mut tx = self.store.begin_write().await?;
        if self.store.reseller_dependents(&mut tx, id).await? > 0 {
            return Err(ServiceError::Conflict(
                "the reseller still has sub-resellers, customers or operators".into(),
            ));
        }
        self.store.delete_reseller(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- customers ----

    pub async fn create_customer(
        &self,
        op: &Operator,
        name: &str,
        reseller: Option<i64>,
        limit: Option<i64>,
    ) -> ServiceResult<Customer> {
        let name = check_name(name, "customer")?;
        if limit.is_some_and(|l| l < 0) {
            return Err(ServiceError::invalid(
                "sip_account_limit must not be negative",
            ));
        }
        let reseller = match op.role {
            Role::Admin => reseller,
            Role::Reseller => {
                let r = reseller.or(op.reseller_id);
                if !r.is_some_and(|r| op.sees_reseller(r)) {
                    return Err(not_found("reseller"));
                }
                r
            }
            _ => return Err(forbidden()),
        };
        if let Some(r) = reseller
            && self.store.reseller(r).await?.is_none()
        {
            return Err(not_found("reseller"));
        }
        let mut tx = self.store.begin_write().await?;
        let id = self
            .store
            .insert_customer(&mut tx, &name, reseller, limit, now())
            .await?;
        tx.commit().await?;
        self.store
            .customer(id)
            .await?
            .ok_or_else(|| not_found("customer"))
    }

    pub async fn list_customers(&self, op: &Operator) -> ServiceResult<Vec<Customer>> {
        Ok(self
            .store
            .list_customers()
            .await?
            .into_iter()
            .filter(|c| op.sees_customer(c))
            .collect())
    }

    pub async fn get_customer(&self, op: &Operator, id: i64) -> ServiceResult<Customer> {
        match self.store.customer(id).await? {
            Some(c) if op.sees_customer(&c) => Ok(c),
            _ => Err(not_found("customer")),
        }
    }

    pub async fn update_customer(
        &self,
        op: &Operator,
        id: i64,
        name: Option<&str>,
        limit: Option<Option<i64>>,
    ) -> ServiceResult<Customer> {
        let mut c = self.get_customer(op, id).await?;
        if !op.can_manage_customers() {
            return Err(forbidden());
        }
        if let Some(n) = name {
            c.name = check_name(n, "customer")?;
        }
        if let Some(l) = limit {
            if l.is_some_and(|l| l < 0) {
                return Err(ServiceError::invalid(
                    "sip_account_limit must not be negative",
                ));
            }
            c.sip_account_limit = l;
        }
        let mut tx = self.store.begin_write().await?;
        self.store.update_customer(&mut tx, &c, now()).await?;
        tx.commit().await?;
        self.get_customer(op, id).await
    }

    pub async fn delete_customer(&self, op: &Operator, id: i64) -> ServiceResult<()> {
        self.get_customer(op, id).await?;
        if !op.can_manage_customers() || id == DEFAULT_CUSTOMER {
            return Err(forbidden());
        }
        let mut tx = self.store.begin_write().await?;
        if self.store.customer_dependents(&mut tx, id).await? > 0 {
            return Err(ServiceError::Conflict(
                "the customer still has SIP accounts or operators".into(),
            ));
        }
        self.store.delete_customer(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- accounts in scope ----

    pub async fn account_in_scope(&self, op: &Operator, id: i64) -> ServiceResult<Account> {
        let a = self
            .store
            .account_by_id(id)
            .await?
            .ok_or_else(|| not_found("account"))?;
        let c = self.store.customer(a.customer_id).await?;
        match c {
            Some(c) if op.sees_customer(&c) => Ok(a),
            _ => Err(not_found("account")),
        }
    }

    // ---- operators ----

    fn may_manage_operator(
        &self,
        op: &Operator,
        role: Role,
        customer: Option<i64>,
        reseller: Option<i64>,
        customer_row: Option<&Customer>,
    ) -> bool {
        match op.role {
            Role::Admin => true,
            Role::Reseller => match role {
                Role::Admin => false,
                Role::Reseller => reseller.is_some_and(|r| op.sees_reseller(r)),
                _ => customer_row.is_some_and(|c| op.sees_customer(c)),
            },
            Role::Owner => {
                role != Role::Admin
                    && role != Role::Reseller
                    && customer.is_some()
                    && customer == op.customer_id
            }
            _ => false,
        }
    }

    pub async fn create_operator(
        &self,
        op: &Operator,
        n: NewOperator,
    ) -> ServiceResult<OperatorRow> {
        let name = n.name.trim().to_owned();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err(ServiceError::invalid(
                "operator name must be 1 to 64 of letters, digits and . _ - @",
            ));
        }
        let (customer, reseller) = match n.role {
            Role::Admin => (None, None),
            Role::Reseller => (
                None,
                Some(n.reseller_id.ok_or_else(|| {
                    ServiceError::invalid("a RESELLER operator needs a reseller")
                })?),
            ),
            _ => (
                Some(n.customer_id.ok_or_else(|| {
                    ServiceError::invalid("OWNER, MANAGER and VIEWER operators need a customer")
                })?),
                None,
            ),
        };
        let customer_row = match customer {
            Some(c) => Some(
                self.store
                    .customer(c)
                    .await?
                    .ok_or_else(|| not_found("customer"))?,
            ),
            None => None,
        };
        if let Some(r) = reseller
            && self.store.reseller(r).await?.is_none()
        {
            return Err(not_found("reseller"));
        }
        if !self.may_manage_operator(op, n.role, customer, reseller, customer_row.as_ref()) {
            return Err(
                if customer_row.as_ref().is_some_and(|c| !op.sees_customer(c)) {
                    not_found("customer")
                } else {
                    forbidden()
                },
            );
        }
        let hash = match &n.password {
            Some(p) if !p.is_empty() => {
                if p.len() > 1024 {
                    return Err(ServiceError::invalid("password too long"));
                }
                Some(hash_password(p).await?)
            }
            _ => None,
        };
        let now = now();
        let mut row = OperatorRow {
            id: 0,
            name,
            password_hash: hash,
            role: n.role.as_str().into(),
            customer_id: customer,
            reseller_id: reseller,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.begin_write().await?;
        row.id = match self.store.insert_operator(&mut tx, &row).await {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(format!(
                    "operator {} already exists",
                    row.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        Ok(row)
    }

    async fn operator_row_in_scope(&self, op: &Operator, id: i64) -> ServiceResult<OperatorRow> {
        let row = self
            .store
            .operator(id)
            .await?
            .ok_or_else(|| not_found("operator"))?;
        if row.id == op.id {
            return Ok(row);
        }
        let role = Role::parse(&row.role).unwrap_or(Role::Viewer);
        let customer_row = match row.customer_id {
            Some(c) => self.store.customer(c).await?,
            None => None,
        };
        if self.may_manage_operator(
            op,
            role,
            row.customer_id,
            row.reseller_id,
            customer_row.as_ref(),
        ) {
            Ok(row)
        } else {
            Err(not_found("operator"))
        }
    }

    pub async fn list_operators(&self, op: &Operator) -> ServiceResult<Vec<OperatorRow>> {
        let mut out = Vec::new();
        for row in self.store.list_operators().await? {
            if self.operator_row_in_scope(op, row.id).await.is_ok() {
                out.push(row);
            }
        }
        Ok(out)
    }

    pub async fn get_operator(&self, op: &Operator, id: i64) -> ServiceResult<OperatorRow> {
        self.operator_row_in_scope(op, id).await
    }

    pub async fn delete_operator(&self, op: &Operator, id: i64) -> ServiceResult<()> {
        self.operator_row_in_scope(op, id).await?;
        if id == op.id {
            return Err(ServiceError::Conflict("you cannot delete yourself".into()));
        }
        let mut tx = self.store.begin_write().await?;
        self.store.delete_operator(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_operator_password(
        &self,
        op: &Operator,
        id: i64,
        password: &str,
    ) -> ServiceResult<()> {
        self.operator_row_in_scope(op, id).await?;
        if password.is_empty() || password.len() > 1024 {
            return Err(ServiceError::invalid("password must be 1 to 1024 bytes"));
        }
        let hash = hash_password(password).await?;
        let mut tx = self.store.begin_write().await?;
        self.store
            .set_operator_password(&mut tx, id, &hash, now())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates a token for `operator_id`; the secret is returned once and never stored.
    pub async fn create_token(
        &self,
        op: &Operator,
        operator_id: i64,
        name: &str,
        expires_days: Option<i64>,
    ) -> ServiceResult<(ApiToken, String)> {
        self.operator_row_in_scope(op, operator_id).await?;
        let name = check_name(name, "token")?;
        if expires_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(ServiceError::invalid("expires must be 1 to 3650 days"));
        }
        let secret = new_token_secret();
        let now = now();
        let expires_at = expires_days.map(|d| now + d * 86_400);
        let mut tx = self.store.begin_write().await?;
        let id = self
            .store
            .insert_token(
                &mut tx,
                operator_id,
                &name,
                &sha256_hex(secret.as_bytes()),
                expires_at,
                now,
            )
            .await?;
        tx.commit().await?;
        let token = self
            .store
            .token(id)
            .await?
            .ok_or_else(|| not_found("token"))?;
        Ok((token, secret))
    }

    pub async fn list_tokens(
        &self,
        op: &Operator,
        operator_id: i64,
    ) -> ServiceResult<Vec<ApiToken>> {
        self.operator_row_in_scope(op, operator_id).await?;
        Ok(self.store.tokens_of(operator_id).await?)
    }

    pub async fn revoke_token(&self, op: &Operator, token_id: i64) -> ServiceResult<()> {
        let t = self
            .store
            .token(token_id)
            .await?
            .ok_or_else(|| not_found("token"))?;
        self.operator_row_in_scope(op, t.operator_id)
            .await
            .map_err(|_| not_found("token"))?;
        let mut tx = self.store.begin_write().await?;
        self.store.revoke_token(&mut tx, token_id, now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The built-in superuser for the CLI (operates with ADMIN powers).
    pub fn cli_admin() -> Operator {
        Operator {
            id: 0,
            name: "cli".into(),
            role: Role::Admin,
            customer_id: None,
            reseller_id: None,
            resellers: Vec::new(),
        }
    }
}
