//! Operator attributes of a SIP account (the fields the operator surfaces show: /api/v1, the
//! telecom.center JSON:API and the telecomx `/sip` listing), and the typed queries over accounts
//! those surfaces make. Filters and sorts are values of these types, never SQL text.

use super::{Account, Registration};

/// The operator attributes stored with an account (migration 0005). Flags are 0/1.
#[derive(Clone, Debug, Default, PartialEq, sqlx::FromRow)]
pub struct AccountAttrs {
    /// The account's id on the operator surfaces (a UUID string).
    pub public_id: String,
    /// The SIP password sealed with `crypto::Keys::seal`; `None` when it is not recoverable
    /// (accounts created before it was kept, until the next password change).
    pub password_sealed: Option<String>,
    pub caller_id_name: Option<String>,
    pub internal_caller_id: Option<i64>,
    pub external_caller_id: Option<i64>,
    pub allow_external_calls: i64,
    pub use_allowed_ips: i64,
    /// Normalised CIDR list, comma-separated (`127.0.0.1/32,10.0.0.0/8`), or empty.
    pub allowed_ips: String,
    pub incoming_internal: i64,
    pub incoming_external: i64,
    pub outgoing_internal: i64,
    pub outgoing_external: i64,
    pub on_demand: i64,
    pub name: Option<String>,
    pub rate_plan: Option<String>,
    pub rate_plan_name: Option<String>,
    pub new_rate_plan: Option<String>,
    /// `IP_AUTH`, `IP_AUTH_REG`, `IP` or `COUNTRY_AUTH_REG`.
    pub connection: Option<String>,
    pub ip_address: Option<String>,
    pub port: Option<i64>,
    /// Comma list of ISO 3166 alpha-2 codes.
    pub countries: Option<String>,
    pub failover: Option<String>,
    pub always_failover: i64,
    pub usage_block: i64,
    pub pbx: Option<i64>,
    pub high_rate: i64,
    pub international: i64,
    pub address: Option<String>,
    /// The public id of another account.
    pub parent_sip_account: Option<String>,
    pub notes: Option<String>,
    /// A JSON value of at most 4 KiB, as text.
    pub custom: Option<String>,
    pub sip_server: Option<String>,
    pub clip_sa: i64,
    pub strip_dk_country_code: i64,
    pub prefix_mobile_originated: i64,
    /// Unix seconds.
    pub invoiced_until: Option<i64>,
    pub default_number: Option<String>,
    pub always_default_number: i64,
    pub always_secret_number: i64,
    pub billing_customer: Option<i64>,
}

impl AccountAttrs {
    /// The stored value of one attribute.
    pub fn get(&self, attr: Attr) -> AttrValue {
        match attr {
            Attr::CallerIdName => AttrValue::Text(self.caller_id_name.clone()),
            Attr::InternalCallerId => AttrValue::Int(self.internal_caller_id),
            Attr::ExternalCallerId => AttrValue::Int(self.external_caller_id),
            Attr::AllowExternalCalls => AttrValue::Flag(self.allow_external_calls != 0),
            Attr::UseAllowedIps => AttrValue::Flag(self.use_allowed_ips != 0),
            Attr::AllowedIps => AttrValue::Text(Some(self.allowed_ips.clone())),
            Attr::IncomingInternal => AttrValue::Flag(self.incoming_internal != 0),
            Attr::IncomingExternal => AttrValue::Flag(self.incoming_external != 0),
            Attr::OutgoingInternal => AttrValue::Flag(self.outgoing_internal != 0),
            Attr::OutgoingExternal => AttrValue::Flag(self.outgoing_external != 0),
            Attr::OnDemand => AttrValue::Flag(self.on_demand != 0),
            Attr::Name => AttrValue::Text(self.name.clone()),
            Attr::RatePlan => AttrValue::Text(self.rate_plan.clone()),
            Attr::RatePlanName => AttrValue::Text(self.rate_plan_name.clone()),
            Attr::NewRatePlan => AttrValue::Text(self.new_rate_plan.clone()),
            Attr::Connection => AttrValue::Text(self.connection.clone()),
            Attr::IpAddress => AttrValue::Text(self.ip_address.clone()),
            Attr::Port => AttrValue::Int(self.port),
            Attr::Countries => AttrValue::Text(self.countries.clone()),
            Attr::Failover => AttrValue::Text(self.failover.clone()),
            Attr::AlwaysFailover => AttrValue::Flag(self.always_failover != 0),
            Attr::UsageBlock => AttrValue::Flag(self.usage_block != 0),
            Attr::Pbx => AttrValue::Int(self.pbx),
            Attr::HighRate => AttrValue::Flag(self.high_rate != 0),
            Attr::International => AttrValue::Flag(self.international != 0),
            Attr::Address => AttrValue::Text(self.address.clone()),
            Attr::ParentSipAccount => AttrValue::Text(self.parent_sip_account.clone()),
            Attr::Notes => AttrValue::Text(self.notes.clone()),
            Attr::Custom => AttrValue::Text(self.custom.clone()),
            Attr::SipServer => AttrValue::Text(self.sip_server.clone()),
            Attr::ClipSa => AttrValue::Flag(self.clip_sa != 0),
            Attr::StripDkCountryCode => AttrValue::Flag(self.strip_dk_country_code != 0),
            Attr::PrefixMobileOriginated => AttrValue::Flag(self.prefix_mobile_originated != 0),
            Attr::InvoicedUntil => AttrValue::Int(self.invoiced_until),
            Attr::DefaultNumber => AttrValue::Text(self.default_number.clone()),
            Attr::AlwaysDefaultNumber => AttrValue::Flag(self.always_default_number != 0),
            Attr::AlwaysSecretNumber => AttrValue::Flag(self.always_secret_number != 0),
            Attr::BillingCustomer => AttrValue::Int(self.billing_customer),
        }
    }
}

/// An account as the operator surfaces show it: its row, its attributes, its ENUM numbers and
/// its newest live registration (if any).
#[derive(Clone, Debug)]
pub struct AccountView {
    pub account: Account,
    pub attrs: AccountAttrs,
    pub numbers: Vec<String>,
    pub live: Option<Registration>,
}

impl AccountView {
    pub fn is_online(&self) -> bool {
        self.live.is_some()
    }

    /// The descriptive name: the stored one, else the person's name, else the first number.
    pub fn display_name(&self) -> Option<String> {
        if let Some(n) = &self.attrs.name {
            return Some(n.clone());
        }
        let a = &self.account;
        let full = [a.first_name.as_deref(), a.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !full.is_empty() {
            return Some(full);
        }
        self.numbers.first().cloned()
    }

    /// The default number: the stored one, else the first number (telecomx "set automatically").
    pub fn default_number(&self) -> Option<String> {
        self.attrs
            .default_number
            .clone()
            .or_else(|| self.numbers.first().cloned())
    }
}

/// One changeable operator attribute. `column()` names its (fixed) column; values arrive as
/// [`AttrValue`] and are validated by the service before they reach the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attr {
    CallerIdName,
    InternalCallerId,
    ExternalCallerId,
    AllowExternalCalls,
    UseAllowedIps,
    AllowedIps,
    IncomingInternal,
    IncomingExternal,
    OutgoingInternal,
    OutgoingExternal,
    OnDemand,
    Name,
    RatePlan,
    RatePlanName,
    NewRatePlan,
    Connection,
    IpAddress,
    Port,
    Countries,
    Failover,
    AlwaysFailover,
    UsageBlock,
    Pbx,
    HighRate,
    International,
    Address,
    ParentSipAccount,
    Notes,
    Custom,
    SipServer,
    ClipSa,
    StripDkCountryCode,
    PrefixMobileOriginated,
    InvoicedUntil,
    DefaultNumber,
    AlwaysDefaultNumber,
    AlwaysSecretNumber,
    BillingCustomer,
}

/// What kind of value an attribute holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    Flag,
    Int,
    Text,
}

/// A new value for an attribute; `None` clears it (flags cannot be cleared).
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Flag(bool),
    Int(Option<i64>),
    Text(Option<String>),
}

impl Attr {
    pub const ALL: [Attr; 38] = [
        Attr::CallerIdName,
        Attr::InternalCallerId,
        Attr::ExternalCallerId,
        Attr::AllowExternalCalls,
        Attr::UseAllowedIps,
        Attr::AllowedIps,
        Attr::IncomingInternal,
        Attr::IncomingExternal,
        Attr::OutgoingInternal,
        Attr::OutgoingExternal,
        Attr::OnDemand,
        Attr::Name,
        Attr::RatePlan,
        Attr::RatePlanName,
        Attr::NewRatePlan,
        Attr::Connection,
        Attr::IpAddress,
        Attr::Port,
        Attr::Countries,
        Attr::Failover,
        Attr::AlwaysFailover,
        Attr::UsageBlock,
        Attr::Pbx,
        Attr::HighRate,
        Attr::International,
        Attr::Address,
        Attr::ParentSipAccount,
        Attr::Notes,
        Attr::Custom,
        Attr::SipServer,
        Attr::ClipSa,
        Attr::StripDkCountryCode,
        Attr::PrefixMobileOriginated,
        Attr::InvoicedUntil,
        Attr::DefaultNumber,
        Attr::AlwaysDefaultNumber,
        Attr::AlwaysSecretNumber,
        Attr::BillingCustomer,
    ];

    /// The attribute named by its column (the /api/v1 name).
    pub fn parse(name: &str) -> Option<Attr> {
        Attr::ALL.into_iter().find(|a| a.column() == name)
    }

    /// The column in `accounts`; also the attribute's name in /api/v1.
    pub fn column(self) -> &'static str {
        match self {
            Attr::CallerIdName => "caller_id_name",
            Attr::InternalCallerId => "internal_caller_id",
            Attr::ExternalCallerId => "external_caller_id",
            Attr::AllowExternalCalls => "allow_external_calls",
            Attr::UseAllowedIps => "use_allowed_ips",
            Attr::AllowedIps => "allowed_ips",
            Attr::IncomingInternal => "incoming_internal",
            Attr::IncomingExternal => "incoming_external",
            Attr::OutgoingInternal => "outgoing_internal",
            Attr::OutgoingExternal => "outgoing_external",
            Attr::OnDemand => "on_demand",
            Attr::Name => "name",
            Attr::RatePlan => "rate_plan",
            Attr::RatePlanName => "rate_plan_name",
            Attr::NewRatePlan => "new_rate_plan",
            Attr::Connection => "connection",
            Attr::IpAddress => "ip_address",
            Attr::Port => "port",
            Attr::Countries => "countries",
            Attr::Failover => "failover",
            Attr::AlwaysFailover => "always_failover",
            Attr::UsageBlock => "usage_block",
            Attr::Pbx => "pbx",
            Attr::HighRate => "high_rate",
            Attr::International => "international",
            Attr::Address => "address",
            Attr::ParentSipAccount => "parent_sip_account",
            Attr::Notes => "notes",
            Attr::Custom => "custom",
            Attr::SipServer => "sip_server",
            Attr::ClipSa => "clip_sa",
            Attr::StripDkCountryCode => "strip_dk_country_code",
            Attr::PrefixMobileOriginated => "prefix_mobile_originated",
            Attr::InvoicedUntil => "invoiced_until",
            Attr::DefaultNumber => "default_number",
            Attr::AlwaysDefaultNumber => "always_default_number",
            Attr::AlwaysSecretNumber => "always_secret_number",
            Attr::BillingCustomer => "billing_customer",
        }
    }

    pub fn kind(self) -> AttrKind {
        use Attr::*;
        match self {
            AllowExternalCalls
            | UseAllowedIps
            | IncomingInternal
            | IncomingExternal
            | OutgoingInternal
            | OutgoingExternal
            | OnDemand
            | AlwaysFailover
            | UsageBlock
            | HighRate
            | International
            | ClipSa
            | StripDkCountryCode
            | PrefixMobileOriginated
            | AlwaysDefaultNumber
            | AlwaysSecretNumber => AttrKind::Flag,
            InternalCallerId | ExternalCallerId | Port | Pbx | InvoicedUntil | BillingCustomer => {
                AttrKind::Int
            }
            CallerIdName | AllowedIps | Name | RatePlan | RatePlanName | NewRatePlan
            | Connection | IpAddress | Countries | Failover | Address | ParentSipAccount
            | Notes | Custom | SipServer | DefaultNumber => AttrKind::Text,
        }
    }
}

/// The values allowed for the `connection` attribute (telecomx).
pub const CONNECTIONS: [&str; 4] = ["IP_AUTH", "IP_AUTH_REG", "IP", "COUNTRY_AUTH_REG"];

/// A condition on accounts; a query's conditions all hold (AND), a list inside one is "any of".
#[derive(Clone, Debug, PartialEq)]
pub enum AccountFilter {
    Customers(Vec<i64>),
    /// Accounts of customers whose reseller is one of these.
    Resellers(Vec<i64>),
    PublicIds(Vec<String>),
    Usernames(Vec<String>),
    CallerIdNames(Vec<String>),
    AllowExternalCalls(bool),
    InternalCallerIds(Vec<i64>),
    ExternalCallerIds(Vec<i64>),
    /// Case-insensitive substring of the name, a number, the IP address, the user name or the
    /// notes (telecomx `filter`).
    Search(String),
    /// Like `Search`, without the notes (for callers that may not see them).
    SearchExceptNotes(String),
    /// With (`true`) or without (`false`) a live registration.
    Online(bool),
}

/// A sort key over accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountSort {
    Id,
    /// The public id (the id of the operator surfaces), as text.
    PublicId,
    Username,
    Domain,
    /// A stored attribute (its column).
    Attr(Attr),
    /// Whether a live registration exists.
    Online,
    /// The newest live registration's user agent.
    UserAgent,
    CreatedAt,
}

/// A page of accounts: conditions, sort keys (`true` = descending; the account id always breaks
/// ties), and the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountQuery {
    pub filters: Vec<AccountFilter>,
    pub sort: Vec<(AccountSort, bool)>,
    pub offset: i64,
    pub limit: i64,
}
