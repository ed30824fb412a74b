//! Records as the services see them. Times are unix seconds; money is in ten-thousandths.

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Account {
    pub id: i64,
    pub domain_id: i64,
    pub username: String,
    pub domain: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub ha1_md5_full: String,
    pub ha1_sha256_full: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub timezone: Option<String>,
    pub mobile_number: Option<String>,
    pub pstn_caller_id: Option<String>,
    pub no_answer_timeout: i64,
    pub quick_dial: Option<String>,
    pub blocked: i64,
    pub privacy: i64,
    pub balance: i64,
    pub fwd_func: Option<String>,
    pub fwd_fnol: Option<String>,
    pub fwd_fbus: Option<String>,
    pub fwd_fnoa: Option<String>,
    pub fwd_funv: Option<String>,
    pub temp_groups: Option<String>,
    pub temp_expires_at: Option<i64>,
    pub created_at: i64,
    pub customer_id: i64,
    pub updated_at: i64,
}

impl Account {
    /// `user@domain`
    pub fn address(&self) -> String {
        format!("{}@{}", self.username, self.domain)
    }
    pub fn is_blocked(&self) -> bool {
        self.blocked != 0
    }
}

/// Fields for a new account; the password is hashed before it reaches the store.
#[derive(Clone, Debug, Default)]
pub struct NewAccount {
    pub username: String,
    pub domain: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub timezone: Option<String>,
    pub mobile_number: Option<String>,
    pub pstn_caller_id: Option<String>,
    /// `None`: the default customer (id 1).
    pub customer_id: Option<i64>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Domain {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CallRecord {
    pub id: i64,
    pub account_id: i64,
    pub direction: String,
    pub remote_party: String,
    pub display_name: String,
    pub start_time: i64,
    pub stop_time: Option<i64>,
    pub duration: i64,
    pub status: String,
    pub price: Option<i64>,
    pub session_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub proxy_ip: String,
    pub media: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Registration {
    pub contact: String,
    pub public_contact: Option<String>,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub transport: Option<String>,
    pub instance_id: Option<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct BalanceEntry {
    pub id: i64,
    pub created_at: i64,
    pub action: String,
    pub description: String,
    pub value: i64,
    pub balance: i64,
    pub session: Option<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AcceptRule {
    pub days: i64,
    pub start_time: String,
    pub stop_time: String,
    /// JSON array of group names.
    pub groups: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct VoicemailBox {
    pub mailbox: String,
    /// Sealed with `crypto::Keys::seal`.
    pub password_sealed: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub info: Option<String>,
    pub delete_after_email: i64,
    pub vm_account: String,
}

/// The five forwarding conditions, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarding {
    Func,
    Fnol,
    Fbus,
    Fnoa,
    Funv,
}

impl Forwarding {
    pub const ALL: [Forwarding; 5] = [
        Forwarding::Func,
        Forwarding::Fnol,
        Forwarding::Fbus,
        Forwarding::Fnoa,
        Forwarding::Funv,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Forwarding::Func => "FUNC",
            Forwarding::Fnol => "FNOL",
            Forwarding::Fbus => "FBUS",
            Forwarding::Fnoa => "FNOA",
            Forwarding::Funv => "FUNV",
        }
    }

    pub fn column(self) -> &'static str {
        match self {
            Forwarding::Func => "fwd_func",
            Forwarding::Fnol => "fwd_fnol",
            Forwarding::Fbus => "fwd_fbus",
            Forwarding::Fnoa => "fwd_fnoa",
            Forwarding::Funv => "fwd_funv",
        }
    }

    pub fn get(self, a: &Account) -> Option<&str> {
        match self {
            Forwarding::Func => a.fwd_func.as_deref(),
            Forwarding::Fnol => a.fwd_fnol.as_deref(),
            Forwarding::Fbus => a.fwd_fbus.as_deref(),
            Forwarding::Fnoa => a.fwd_fnoa.as_deref(),
            Forwarding::Funv => a.fwd_funv.as_deref(),
        }
    }
}

pub const VOICE_MAILBOX: &str = "<voice-mailbox>";
pub const MOBILE_NUMBER: &str = "<mobile-number>";

/// Operator roles (spec operator-api §1).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Admin,
    Reseller,
    Owner,
    Manager,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Reseller => "RESELLER",
            Role::Owner => "OWNER",
            Role::Manager => "MANAGER",
            Role::Viewer => "VIEWER",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "ADMIN" => Role::Admin,
            "RESELLER" => Role::Reseller,
            "OWNER" => Role::Owner,
            "MANAGER" => Role::Manager,
            "VIEWER" => Role::Viewer,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Reseller {
    pub id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub reseller_id: Option<i64>,
    pub sip_account_limit: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OperatorRow {
    pub id: i64,
    pub name: String,
    pub password_hash: Option<String>,
    pub role: String,
    pub customer_id: Option<i64>,
    pub reseller_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub operator_id: i64,
    pub name: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}
