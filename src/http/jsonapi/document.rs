//! The documents this surface sends, as types: serialized into responses and described in the
//! OpenAPI document. Members a sparse fieldset leaves out are `None` (omitted); attributes
//! without a value are `Some(None)` (`null`).

use serde::Serialize;
use utoipa::ToSchema;

use super::query::{CustomerField, Field, Fieldsets};
use crate::domain::{AccountView, Customer};

/// The resource type of SIP accounts.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub enum RouteType {
    #[serde(rename = "sip_device_routes")]
    SipDeviceRoutes,
}

/// The resource type of customers.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub enum CustomerType {
    #[serde(rename = "customers")]
    Customers,
}

/// `{"self": URL}`
#[derive(Debug, Serialize, ToSchema)]
pub struct SelfLink {
    /// The resource's own URL.
    #[serde(rename = "self")]
    pub self_: String,
}

/// The attributes of a SIP account. Every member may be left out by
/// `fields[sip_device_routes]`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct RouteAttributes {
    /// The SIP user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The SIP password in clear for ADMIN, RESELLER, OWNER and MANAGER operators; `null` for
    /// VIEWER operators and for passwords set before they were kept recoverable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incoming_internal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incoming_external: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_internal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing_external: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub caller_id_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub internal_caller_id: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub external_caller_id: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_external_calls: Option<bool>,
    /// Whether the account has a live registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_online: Option<bool>,
    /// The user agent of the newest live registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub user_agent: Option<Option<String>>,
    /// Whether registration is allowed only from `allowed_ips`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_allowed_ips: Option<bool>,
    /// The allowed addresses as a comma-separated CIDR list (`127.0.0.1/32,2001:db8::/32`);
    /// empty when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<String>,
}

/// `{"type": "customers", "id": "7"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerIdentifier {
    #[serde(rename = "type")]
    pub kind: CustomerType,
    /// The customer id (an integer, as a string).
    pub id: String,
}

/// A to-one relationship.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerLinkage {
    pub data: CustomerIdentifier,
}

/// Shown when `include=customer` or `fields[sip_device_routes]` names `customer`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteRelationships {
    /// The customer that owns the account (not updatable).
    pub customer: CustomerLinkage,
}

/// A SIP account (`sip_device_routes`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SipDeviceRoute {
    /// The account's public id (a UUID).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: RouteType,
    pub links: SelfLink,
    /// Left out when `fields[sip_device_routes]` names no attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<RouteAttributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationships: Option<RouteRelationships>,
}

/// The attributes of an included customer; `fields[customers]` may leave any out.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct CustomerAttributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Most SIP accounts the customer may have; `null` for no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub sip_account_limit: Option<Option<i64>>,
}

/// An included customer (`include=customer`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: CustomerType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<CustomerAttributes>,
}

/// `{"record_count": N}`: the number of accounts the filters select, on all pages.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordCount {
    pub record_count: i64,
}

/// Pagination links, built from the request's own query; `prev` and `next` only when those
/// pages exist (`prev` also beyond the last page).
#[derive(Debug, Serialize, ToSchema)]
pub struct PageLinks {
    pub first: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub last: String,
}

/// A page of SIP accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteList {
    pub data: Vec<SipDeviceRoute>,
    /// The customers of the page's accounts, once each (`include=customer`; left out when empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub included: Option<Vec<CustomerResource>>,
    pub meta: RecordCount,
    pub links: PageLinks,
}

/// One SIP account.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteDocument {
    pub data: SipDeviceRoute,
    /// The account's customer (`include=customer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub included: Option<Vec<CustomerResource>>,
}

/// The strings `"true"` and `"false"`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub enum TrueFalse {
    #[serde(rename = "true")]
    True,
    #[serde(rename = "false")]
    False,
}

/// `true`/`false`, or the strings `"true"`/`"false"`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum BoolOrString {
    Bool(bool),
    Text(TrueFalse),
}

/// The changeable attributes; absent ones keep their value.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RoutePatchAttributes {
    /// Registration only from `allowed_ips`.
    use_allowed_ips: Option<BoolOrString>,
    /// IPv4/IPv6 addresses or CIDRs separated by commas or spaces (`/32` or `/128` is added
    /// to a bare address); `null` or `""` clears the list.
    allowed_ips: Option<String>,
}

/// The `data` of a PATCH.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RoutePatchData {
    /// Must be the id in the URL (else 409).
    id: String,
    /// Must be `sip_device_routes` (else 409).
    #[schema(rename = "type")]
    kind: RouteType,
    attributes: Option<RoutePatchAttributes>,
}

/// A PATCH request document (`Content-Type: application/vnd.api+json`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RoutePatch {
    data: RoutePatchData,
}

/// The resource of one account as `op` may see it (`password` is already decided by the
/// services: clear for writers, `None` otherwise).
pub fn route(
    v: &AccountView,
    password: Option<String>,
    fields: &Fieldsets,
    customer_relationship: bool,
    base: &str,
) -> SipDeviceRoute {
    let a = &v.attrs;
    let pick = |f: Field| fields.shows(f);
    let flag = |f: Field, x: i64| pick(f).then_some(x != 0);
    let attrs = RouteAttributes {
        username: pick(Field::Username).then(|| v.account.username.clone()),
        password: pick(Field::Password).then_some(password),
        incoming_internal: flag(Field::IncomingInternal, a.incoming_internal),
        incoming_external: flag(Field::IncomingExternal, a.incoming_external),
        outgoing_internal: flag(Field::OutgoingInternal, a.outgoing_internal),
        outgoing_external: flag(Field::OutgoingExternal, a.outgoing_external),
        on_demand: flag(Field::OnDemand, a.on_demand),
        caller_id_name: pick(Field::CallerIdName).then(|| a.caller_id_name.clone()),
        internal_caller_id: pick(Field::InternalCallerId).then_some(a.internal_caller_id),
        external_caller_id: pick(Field::ExternalCallerId).then_some(a.external_caller_id),
        allow_external_calls: flag(Field::AllowExternalCalls, a.allow_external_calls),
        is_online: pick(Field::IsOnline).then(|| v.is_online()),
        user_agent: pick(Field::UserAgent)
            .then(|| v.live.as_ref().and_then(|r| r.user_agent.clone())),
        use_allowed_ips: flag(Field::UseAllowedIps, a.use_allowed_ips),
        allowed_ips: pick(Field::AllowedIps).then(|| a.allowed_ips.clone()),
    };
    let any_attr = Field::ALL.into_iter().any(pick);
    SipDeviceRoute {
        id: a.public_id.clone(),
        kind: RouteType::SipDeviceRoutes,
        links: SelfLink {
            self_: format!("{base}/{}", a.public_id),
        },
        attributes: any_attr.then_some(attrs),
        relationships: customer_relationship.then(|| RouteRelationships {
            customer: CustomerLinkage {
                data: CustomerIdentifier {
                    kind: CustomerType::Customers,
                    id: v.account.customer_id.to_string(),
                },
            },
        }),
    }
}

pub fn customer(c: &Customer, fields: &Fieldsets) -> CustomerResource {
    let pick = |f: CustomerField| fields.shows_customer_field(f);
    let any = CustomerField::ALL.into_iter().any(pick);
    CustomerResource {
        id: c.id.to_string(),
        kind: CustomerType::Customers,
        attributes: any.then(|| CustomerAttributes {
            name: pick(CustomerField::Name).then(|| c.name.clone()),
            sip_account_limit: pick(CustomerField::SipAccountLimit).then_some(c.sip_account_limit),
        }),
    }
}
