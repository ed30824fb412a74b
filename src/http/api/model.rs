//! What `/api/v1` sends: these types are both serialized into responses and described in the
//! OpenAPI document, so the two cannot drift apart.

use serde::Serialize;
use serde::ser::SerializeMap;
use utoipa::ToSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, Ref, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, RefOr};

use crate::domain::{
    AccountAttrs, AccountView, ApiToken, Attr, AttrKind, AttrValue, Customer, Domain, OperatorRow,
    Reseller, Role,
};
use crate::service::tenancy::Operator;
use crate::service::{AcceptRulesView, VoicemailView};
use crate::util::money_to_string;

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what went wrong.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
}

/// A list: `items` from `offset`, `limit` at most, of `total`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T: ToSchema> {
    pub items: Vec<T>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

impl<T: ToSchema> Paged<T> {
    /// A whole, unpaginated list.
    pub fn all(items: Vec<T>) -> Self {
        let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
        Self {
            items,
            total,
            offset: 0,
            limit: total,
        }
    }
}

/// `{"deleted": true}`
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

pub const DELETED: Deleted = Deleted { deleted: true };

/// `{"changed": true}`
#[derive(Debug, Serialize, ToSchema)]
pub struct Changed {
    pub changed: bool,
}

/// `{"revoked": true}`
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: bool,
}

/// The authenticated operator.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    pub id: i64,
    pub name: String,
    pub role: Role,
    #[schema(required = true)]
    pub customer_id: Option<i64>,
    #[schema(required = true)]
    pub reseller_id: Option<i64>,
}

impl From<&Operator> for MeOut {
    fn from(o: &Operator) -> Self {
        Self {
            id: o.id,
            name: o.name.clone(),
            role: o.role,
            customer_id: o.customer_id,
            reseller_id: o.reseller_id,
        }
    }
}

/// A reseller; resellers form a tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResellerOut {
    pub id: i64,
    pub name: String,
    /// The parent reseller, `null` at the top.
    #[schema(required = true)]
    pub parent_id: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl From<&Reseller> for ResellerOut {
    fn from(r: &Reseller) -> Self {
        Self {
            id: r.id,
            name: r.name.clone(),
            parent_id: r.parent_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A customer; customers own SIP accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerOut {
    pub id: i64,
    pub name: String,
    #[schema(required = true)]
    pub reseller_id: Option<i64>,
    /// Most SIP accounts the customer may have; `null` for no limit.
    #[schema(required = true)]
    pub sip_account_limit: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Customer> for CustomerOut {
    fn from(c: &Customer) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            reseller_id: c.reseller_id,
            sip_account_limit: c.sip_account_limit,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// An operator user of the operator APIs.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorOut {
    pub id: i64,
    pub name: String,
    #[schema(value_type = Role)]
    pub role: String,
    #[schema(required = true)]
    pub customer_id: Option<i64>,
    #[schema(required = true)]
    pub reseller_id: Option<i64>,
    pub created_at: i64,
}

impl From<&OperatorRow> for OperatorOut {
    fn from(o: &OperatorRow) -> Self {
        Self {
            id: o.id,
            name: o.name.clone(),
            role: o.role.clone(),
            customer_id: o.customer_id,
            reseller_id: o.reseller_id,
            created_at: o.created_at,
        }
    }
}

/// An API token (its secret is shown only when it is created).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    pub id: i64,
    pub operator_id: i64,
    pub name: String,
    /// Unix seconds; `null` for never.
    #[schema(required = true)]
    pub expires_at: Option<i64>,
    #[schema(required = true)]
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

impl From<&ApiToken> for TokenOut {
    fn from(t: &ApiToken) -> Self {
        Self {
            id: t.id,
            operator_id: t.operator_id,
            name: t.name.clone(),
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            created_at: t.created_at,
        }
    }
}

/// A new token with its secret, shown this once (only a hash is stored).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub token_info: TokenOut,
    /// Use as `Authorization: Bearer <token>`.
    pub token: String,
}

/// A SIP domain (digest realm) served.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainOut {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

impl From<&Domain> for DomainOut {
    fn from(d: &Domain) -> Self {
        Self {
            id: d.id,
            name: d.name.clone(),
            created_at: d.created_at,
        }
    }
}

/// A SIP account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOut {
    pub id: i64,
    /// The account's id on the JSON:API and `/sip` surfaces (a UUID).
    pub public_id: String,
    pub username: String,
    pub domain: String,
    /// `username@domain`
    pub sip_address: String,
    pub customer_id: i64,
    #[schema(required = true)]
    pub first_name: Option<String>,
    #[schema(required = true)]
    pub last_name: Option<String>,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub timezone: Option<String>,
    #[schema(required = true)]
    pub mobile_number: Option<String>,
    #[schema(required = true)]
    pub pstn_caller_id: Option<String>,
    /// Seconds before an unanswered call is forwarded (FNOA).
    pub no_answer_timeout: i64,
    #[schema(required = true)]
    pub quick_dial: Option<String>,
    pub blocked: bool,
    pub privacy: bool,
    /// Prepaid balance, a decimal string.
    pub balance: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The operator attributes (shown by the JSON:API and `/sip` surfaces too).
    #[schema(inline)]
    pub attributes: AttrsOut,
}

impl From<&AccountView> for AccountOut {
    fn from(v: &AccountView) -> Self {
        let a = &v.account;
        Self {
            id: a.id,
            public_id: v.attrs.public_id.clone(),
            username: a.username.clone(),
            domain: a.domain.clone(),
            sip_address: a.address(),
            customer_id: a.customer_id,
            first_name: a.first_name.clone(),
            last_name: a.last_name.clone(),
            email: a.email.clone(),
            timezone: a.timezone.clone(),
            mobile_number: a.mobile_number.clone(),
            pstn_caller_id: a.pstn_caller_id.clone(),
            no_answer_timeout: crate::service::effective_no_answer_timeout(a.no_answer_timeout),
            quick_dial: a.quick_dial.clone(),
            blocked: a.is_blocked(),
            privacy: a.privacy != 0,
            balance: money_to_string(a.balance),
            created_at: a.created_at,
            updated_at: a.updated_at,
            attributes: AttrsOut(v.attrs.clone()),
        }
    }
}

/// The operator attributes of an account, one property per attribute (named by
/// `Attr::column`); serialized and described from the one list `Attr::ALL`.
#[derive(Debug)]
pub struct AttrsOut(pub AccountAttrs);

impl Serialize for AttrsOut {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(Attr::ALL.len()))?;
        for attr in Attr::ALL {
            match self.0.get(attr) {
                AttrValue::Flag(b) => m.serialize_entry(attr.column(), &b)?,
                AttrValue::Int(i) => m.serialize_entry(attr.column(), &i)?,
                // `custom` is JSON: shown as the value, not as a string of it.
                AttrValue::Text(Some(t)) if attr == Attr::Custom => {
                    let v: serde_json::Value =
                        serde_json::from_str(&t).unwrap_or(serde_json::Value::Null);
                    m.serialize_entry(attr.column(), &v)?
                }
                AttrValue::Text(t) => m.serialize_entry(attr.column(), &t)?,
            }
        }
        m.end()
    }
}

/// The schema of one attribute's value; `nullable` adds `null` to the types.
fn attr_schema(attr: Attr, nullable: bool) -> RefOr<Schema> {
    let base = match attr.kind() {
        AttrKind::Flag => Type::Boolean,
        AttrKind::Int => Type::Integer,
        AttrKind::Text => Type::String,
    };
    let types = if nullable && attr.kind() != AttrKind::Flag && attr != Attr::AllowedIps {
        SchemaType::from_iter([base, Type::Null])
    } else {
        SchemaType::new(base)
    };
    let mut b = ObjectBuilder::new()
        .schema_type(types)
        .description(Some(attr_doc(attr)));
    if attr.kind() == AttrKind::Int {
        b = b.format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)));
    }
    if attr == Attr::Custom {
        // Any JSON value of at most 4 KiB.
        return ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some(attr_doc(attr)))
            .into();
    }
    b.into()
}

fn attr_doc(attr: Attr) -> &'static str {
    match attr {
        Attr::AllowedIps => "IPs or CIDRs, comma-separated; a bare address gets /32 or /128.",
        Attr::Connection => "IP_AUTH, IP_AUTH_REG, IP or COUNTRY_AUTH_REG.",
        Attr::Countries => "Comma list of ISO 3166 alpha-2 codes.",
        Attr::Failover => "An E.164 number, an IP address, or number@IP.",
        Attr::InvoicedUntil => "Unix seconds.",
        Attr::ParentSipAccount => "The public id of another account in scope.",
        Attr::BillingCustomer => "The id of a customer in scope.",
        Attr::DefaultNumber => "One of the account's ENUM numbers.",
        Attr::Custom => "Any JSON value of at most 4 KiB.",
        Attr::UsageBlock => "Only RESELLER or ADMIN users may lift a usage block.",
        Attr::IpAddress | Attr::SipServer => "An IPv4 or IPv6 address.",
        Attr::Port => "1 to 65535.",
        _ => "An operator attribute.",
    }
}

impl utoipa::PartialSchema for AttrsOut {
    fn schema() -> RefOr<Schema> {
        let mut o = ObjectBuilder::new();
        for attr in Attr::ALL {
            o = o
                .property(attr.column(), attr_schema(attr, true))
                .required(attr.column());
        }
        o.into()
    }
}

impl ToSchema for AttrsOut {}

/// Changes to operator attributes: any subset of the properties of [`AttrsOut`]; `null` clears
/// a value (flags cannot be cleared). Parsed by name through `Attr::parse`.
#[derive(Debug, Default)]
pub struct AttrsPatch(pub Vec<(Attr, AttrValue)>);

impl<'de> serde::Deserialize<'de> for AttrsPatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            let attr = Attr::parse(&k)
                .ok_or_else(|| D::Error::custom(format!("unknown attribute `{k}`")))?;
            let bad = || D::Error::custom(format!("attribute `{k}`: wrong type"));
            let value = match (attr.kind(), v) {
                (AttrKind::Flag, serde_json::Value::Bool(b)) => AttrValue::Flag(b),
                (AttrKind::Int, serde_json::Value::Null) => AttrValue::Int(None),
                (AttrKind::Int, serde_json::Value::Number(n)) => {
                    AttrValue::Int(Some(n.as_i64().ok_or_else(bad)?))
                }
                (AttrKind::Text, serde_json::Value::Null) => AttrValue::Text(None),
                (AttrKind::Text, serde_json::Value::String(t)) if attr != Attr::Custom => {
                    AttrValue::Text(Some(t))
                }
                (AttrKind::Text, other) if attr == Attr::Custom => {
                    AttrValue::Text(Some(other.to_string()))
                }
                _ => return Err(bad()),
            };
            out.push((attr, value));
        }
        Ok(AttrsPatch(out))
    }
}

impl utoipa::PartialSchema for AttrsPatch {
    fn schema() -> RefOr<Schema> {
        let mut o =
            ObjectBuilder::new().additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for attr in Attr::ALL {
            o = o.property(attr.column(), attr_schema(attr, true));
        }
        o.into()
    }
}

impl ToSchema for AttrsPatch {}

/// A new SIP account; `password` is there, once, when it was generated.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountCreated {
    #[serde(flatten)]
    pub account: AccountOut,
    /// The generated SIP password (only when none was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub password: Option<String>,
}

/// `{"password": "…"}`: a new SIP password, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordOut {
    pub password: String,
}

/// `{"password": "…"}` or `{"password": null}` when the password is not recoverable.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredPasswordOut {
    #[schema(required = true)]
    pub password: Option<String>,
}

/// `{"alias": "user@domain"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasCreated {
    pub alias: String,
}

/// `{"number": "…"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct EnumCreated {
    pub number: String,
}

/// A voicemail box.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoicemailOut {
    pub mailbox: String,
    pub password: String,
    #[schema(required = true)]
    pub name: Option<String>,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub info: Option<String>,
    pub delete_after_email: bool,
    /// The voicemail server account, `user@domain`.
    pub account: String,
}

impl From<VoicemailView> for VoicemailOut {
    fn from(vm: VoicemailView) -> Self {
        Self {
            mailbox: vm.mailbox,
            password: vm.password,
            name: vm.name,
            email: vm.email,
            info: vm.info,
            delete_after_email: vm.delete,
            account: vm.account,
        }
    }
}

/// Call forwarding targets (without `sip:`), `<voice-mailbox>`, or `null` for none.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ForwardingOut {
    /// Unconditional.
    #[serde(rename = "FUNC")]
    #[schema(required = true)]
    pub func: Option<String>,
    /// When not online.
    #[serde(rename = "FNOL")]
    #[schema(required = true)]
    pub fnol: Option<String>,
    /// When busy.
    #[serde(rename = "FBUS")]
    #[schema(required = true)]
    pub fbus: Option<String>,
    /// When not answered.
    #[serde(rename = "FNOA")]
    #[schema(required = true)]
    pub fnoa: Option<String>,
    /// When unavailable.
    #[serde(rename = "FUNV")]
    #[schema(required = true)]
    pub funv: Option<String>,
}

/// A persistent accept rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersistentRuleOut {
    /// `HH:MM`
    pub start: String,
    /// `HH:MM`
    pub stop: String,
    pub groups: Vec<String>,
}

/// The temporary accept rule (do-not-disturb).
#[derive(Debug, Serialize, ToSchema)]
pub struct TemporaryOut {
    pub groups: Vec<String>,
    /// Remaining minutes; 0 = inactive, or indefinite for `["nobody"]`.
    pub duration: i64,
}

/// Persistent rules by day mask, in ascending order of the mask.
#[derive(Debug)]
pub struct DayRules(pub Vec<(i64, PersistentRuleOut)>);

impl Serialize for DayRules {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (days, rule) in &self.0 {
            m.serialize_entry(&days.to_string(), rule)?;
        }
        m.end()
    }
}

/// Accept rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptRulesOut {
    /// Keyed by day mask: 1 (Mon) … 64 (Sun) added up, 1 to 127.
    #[schema(value_type = std::collections::HashMap<String, PersistentRuleOut>)]
    pub persistent: DayRules,
    pub temporary: TemporaryOut,
    /// The groups rules may name.
    pub groups: Vec<String>,
}

impl From<AcceptRulesView> for AcceptRulesOut {
    fn from(r: AcceptRulesView) -> Self {
        Self {
            persistent: DayRules(
                r.persistent
                    .into_iter()
                    .map(|p| {
                        (
                            p.days,
                            PersistentRuleOut {
                                start: p.start,
                                stop: p.stop,
                                groups: p.groups,
                            },
                        )
                    })
                    .collect(),
            ),
            temporary: TemporaryOut {
                groups: r.temporary.groups,
                duration: r.temporary.duration,
            },
            groups: r.groups,
        }
    }
}

// ---- reusable error responses ----

/// An error response of an operator surface as the OpenAPI document describes it: a body of
/// `schema` in `media_type`, and the listed headers (name, description).
pub fn documented_error(
    media_type: &str,
    schema: &str,
    description: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut b = ResponseBuilder::new().description(description).content(
        media_type,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build(),
    );
    for (name, desc) in headers {
        b = b.header(
            *name,
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(*desc))
                .build(),
        );
    }
    b.build()
}

macro_rules! problem_responses {
    ($($name:ident: $desc:literal $([$h:literal = $hdesc:literal])?;)*) => {
        $(
            #[doc = $desc]
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), documented_error("application/problem+json", "Problem", $desc, &[$(($h, $hdesc))?]).into())
                }
            }
        )*
    };
}

problem_responses! {
    BadRequest: "Malformed request: the JSON body, query string or path does not parse, or has unknown fields.";
    Unauthorized: "No or invalid credentials." ["WWW-Authenticate" = "The accepted schemes: Basic and Bearer."];
    Forbidden: "The caller's role does not allow this.";
    NotFound: "No such resource in the caller's scope (ids that are not positive integers included).";
    Conflict: "The change conflicts with existing data (a duplicate name, or dependants).";
    PreconditionFailed: "`If-Match` names another version of the resource.";
    Unprocessable: "The request parses but a value is not acceptable.";
    TooManyRequests: "Too many failed authentications from this address." ["Retry-After" = "Seconds to wait."];
    Unavailable: "The store is temporarily unavailable, or the request took too long." ["Retry-After" = "Seconds to wait."];
}
