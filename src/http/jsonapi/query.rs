//! The query string of the JSON:API surface: `filter[…]`, `sort`, `page[number]`/`page[size]`,
//! `fields[…]` and `include`, parsed by hand into the domain's filter and sort types (never into
//! SQL). Anything else, a malformed bracket, a repeated parameter, or a value that does not
//! parse is a 400 naming the parameter (`source.parameter`).

use percent_encoding::percent_decode;

use super::error::JaError;
use crate::domain::{AccountFilter, AccountSort, Attr};
use crate::service::MAX_PAGE;

/// `page[size]` when the request names none.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Longer query strings are refused with 414 before they are parsed.
pub const MAX_QUERY_BYTES: usize = 32 * 1024;
/// Most comma-separated values one filter may list.
pub const MAX_FILTER_VALUES: usize = 500;

/// The attributes of a `sip_device_routes` resource, in the order the resource shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Username,
    Password,
    IncomingInternal,
    IncomingExternal,
    OutgoingInternal,
    OutgoingExternal,
    OnDemand,
    CallerIdName,
    InternalCallerId,
    ExternalCallerId,
    AllowExternalCalls,
    IsOnline,
    UserAgent,
    UseAllowedIps,
    AllowedIps,
}

impl Field {
    pub const ALL: [Field; 15] = [
        Field::Username,
        Field::Password,
        Field::IncomingInternal,
        Field::IncomingExternal,
        Field::OutgoingInternal,
        Field::OutgoingExternal,
        Field::OnDemand,
        Field::CallerIdName,
        Field::InternalCallerId,
        Field::ExternalCallerId,
        Field::AllowExternalCalls,
        Field::IsOnline,
        Field::UserAgent,
        Field::UseAllowedIps,
        Field::AllowedIps,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Username => "username",
            Field::Password => "password",
            Field::IncomingInternal => "incoming_internal",
            Field::IncomingExternal => "incoming_external",
            Field::OutgoingInternal => "outgoing_internal",
            Field::OutgoingExternal => "outgoing_external",
            Field::OnDemand => "on_demand",
            Field::CallerIdName => "caller_id_name",
            Field::InternalCallerId => "internal_caller_id",
            Field::ExternalCallerId => "external_caller_id",
            Field::AllowExternalCalls => "allow_external_calls",
            Field::IsOnline => "is_online",
            Field::UserAgent => "user_agent",
            Field::UseAllowedIps => "use_allowed_ips",
            Field::AllowedIps => "allowed_ips",
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The domain sort key; `None` for `password`, which is stored sealed (encrypted with a
    /// random nonce), so the store cannot order by it.
    fn sort_key(self) -> Option<AccountSort> {
        Some(match self {
            Field::Username => AccountSort::Username,
            Field::Password => return None,
            Field::IncomingInternal => AccountSort::Attr(Attr::IncomingInternal),
            Field::IncomingExternal => AccountSort::Attr(Attr::IncomingExternal),
            Field::OutgoingInternal => AccountSort::Attr(Attr::OutgoingInternal),
            Field::OutgoingExternal => AccountSort::Attr(Attr::OutgoingExternal),
            Field::OnDemand => AccountSort::Attr(Attr::OnDemand),
            Field::CallerIdName => AccountSort::Attr(Attr::CallerIdName),
            Field::InternalCallerId => AccountSort::Attr(Attr::InternalCallerId),
            Field::ExternalCallerId => AccountSort::Attr(Attr::ExternalCallerId),
            Field::AllowExternalCalls => AccountSort::Attr(Attr::AllowExternalCalls),
            Field::IsOnline => AccountSort::Online,
            Field::UserAgent => AccountSort::UserAgent,
            Field::UseAllowedIps => AccountSort::Attr(Attr::UseAllowedIps),
            Field::AllowedIps => AccountSort::Attr(Attr::AllowedIps),
        })
    }
}

/// The attributes of an included `customers` resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerField {
    Name,
    SipAccountLimit,
}

impl CustomerField {
    pub const ALL: [CustomerField; 2] = [CustomerField::Name, CustomerField::SipAccountLimit];

    pub fn name(self) -> &'static str {
        match self {
            CustomerField::Name => "name",
            CustomerField::SipAccountLimit => "sip_account_limit",
        }
    }
}

/// Which members a response shows (`fields[…]`); `None` = the default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fieldsets {
    /// `fields[sip_device_routes]`: the attributes, and whether `customer` was named.
    pub routes: Option<(Vec<Field>, bool)>,
    /// `fields[customers]`.
    pub customers: Option<Vec<CustomerField>>,
}

impl Fieldsets {
    pub fn shows(&self, f: Field) -> bool {
        self.routes.as_ref().is_none_or(|(v, _)| v.contains(&f))
    }
    pub fn shows_customer_field(&self, f: CustomerField) -> bool {
        self.customers.as_ref().is_none_or(|v| v.contains(&f))
    }
}

/// Everything a request's query says, typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    pub filters: Vec<AccountFilter>,
    pub sort: Vec<(AccountSort, bool)>,
    pub page_number: i64,
    pub page_size: i64,
    pub fields: Fieldsets,
    pub include_customer: bool,
    /// The decoded `filter`, `sort`, `fields` and `include` parameters, to build links from.
    pub echo: Vec<(String, String)>,
}

/// Where the query is used: a list takes every parameter, one resource only `fields` and
/// `include`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    List,
    One,
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
fn decode(s: &str) -> Result<String, String> {
    let bytes: Vec<u8> = percent_decode(s.replace('+', " ").as_bytes()).collect();
    String::from_utf8(bytes).map_err(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A parameter name `family[member]`: `Ok(Some((family, member)))`, `Ok(None)` for a name
/// without brackets, `Err(())` when the brackets are malformed.
fn split_name(name: &str) -> Result<Option<(&str, &str)>, ()> {
    let Some(open) = name.find('[') else {
        return if name.contains(']') {
            Err(())
        } else {
            Ok(None)
        };
    };
    let family = name.get(..open).ok_or(())?;
    let member = name
        .get(open + 1..)
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or(())?;
    if family.is_empty() || member.is_empty() || member.contains(['[', ']']) {
        return Err(());
    }
    Ok(Some((family, member)))
}

/// The items of a comma list (each trimmed); an empty item is refused.
fn items<'a>(param: &str, value: &'a str) -> Result<Vec<&'a str>, JaError> {
    let v: Vec<&str> = value.split(',').map(str::trim).collect();
    if v.iter()
        .any(|s| s.is_empty() || s.chars().any(char::is_control))
    {
        return Err(JaError::param(
            param,
            "Invalid filter value",
            format!(
                "{param} needs a value (a comma-separated list without empty items or control \
                 characters)."
            ),
        ));
    }
    if v.len() > MAX_FILTER_VALUES {
        return Err(JaError::param(
            param,
            "Invalid filter value",
            format!("{param} lists more than {MAX_FILTER_VALUES} values."),
        ));
    }
    Ok(v)
}

fn bad_filter_value(param: &str, value: &str) -> JaError {
    JaError::param(
        param,
        "Invalid filter value",
        format!("{} is not a valid value for {param}.", shorten(value)),
    )
}

/// At most 60 characters of a value, for error details.
pub fn shorten(s: &str) -> String {
    crate::domain::validate::truncate(s, 60)
}

fn ints(param: &str, value: &str) -> Result<Vec<i64>, JaError> {
    items(param, value)?
        .into_iter()
        .map(|s| s.parse::<i64>().map_err(|_| bad_filter_value(param, s)))
        .collect()
}

/// A UUID in its canonical 8-4-4-4-12 hex form (normalised to lower case).
fn uuid(s: &str) -> Option<String> {
    let ok = s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    ok.then(|| s.to_ascii_lowercase())
}

fn filter(member: &str, param: &str, value: &str) -> Result<Option<AccountFilter>, JaError> {
    let texts = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
    Ok(Some(match member {
        "id" => AccountFilter::PublicIds(
            items(param, value)?
                .into_iter()
                .map(|s| uuid(s).ok_or_else(|| bad_filter_value(param, s)))
                .collect::<Result<_, _>>()?,
        ),
        "customer.id" => AccountFilter::Customers(ints(param, value)?),
        "username" => AccountFilter::Usernames(texts(items(param, value)?)),
        "caller_id_name" => AccountFilter::CallerIdNames(texts(items(param, value)?)),
        "allow_external_calls" => {
            let mut want = (false, false);
            for s in items(param, value)? {
                match s {
                    "true" => want.0 = true,
                    "false" => want.1 = true,
                    _ => return Err(bad_filter_value(param, s)),
                }
            }
            match want {
                (true, false) => AccountFilter::AllowExternalCalls(true),
                (false, true) => AccountFilter::AllowExternalCalls(false),
                // Both: every account matches.
                _ => return Ok(None),
            }
        }
        "internal_caller_id" => AccountFilter::InternalCallerIds(ints(param, value)?),
        "external_caller_id" => AccountFilter::ExternalCallerIds(ints(param, value)?),
        _ => {
            return Err(JaError::param(
                param,
                "Filter not allowed",
                format!("{} is not allowed.", shorten(member)),
            ));
        }
    }))
}

fn sort(value: &str) -> Result<Vec<(AccountSort, bool)>, JaError> {
    let mut out: Vec<(AccountSort, bool)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for item in value.split(',') {
        let (name, desc) = match item.strip_prefix('-') {
            Some(n) => (n, true),
            None => (item, false),
        };
        let invalid = |detail: String| JaError::param("sort", "Invalid sort criteria", detail);
        if seen.contains(&name) {
            return Err(invalid(format!(
                "{} is named more than once.",
                shorten(name)
            )));
        }
        seen.push(name);
        let key = match name {
            "id" => AccountSort::PublicId,
            _ => match Field::parse(name) {
                Some(f) => f.sort_key().ok_or_else(|| {
                    invalid(
                        "password is not a valid sort criteria: passwords are stored \
                         encrypted, so the server cannot order by them."
                            .to_owned(),
                    )
                })?,
                None => {
                    return Err(invalid(format!(
                        "{} is not a valid sort criteria for sip_device_routes.",
                        shorten(item)
                    )));
                }
            },
        };
        out.push((key, desc));
    }
    Ok(out)
}

fn page_value(param: &str, member: &str, value: &str) -> Result<i64, JaError> {
    let invalid = |detail: String| JaError::param(param, "Invalid page value", detail);
    let n: i64 = value.trim().parse().map_err(|_| {
        invalid(format!(
            "{} is not a valid value for {member} page parameter.",
            shorten(value)
        ))
    })?;
    if n < 1 {
        return Err(invalid(format!(
            "{n} is not a valid value for {member} page parameter."
        )));
    }
    if member == "size" && n > MAX_PAGE {
        return Err(invalid(format!(
            "size exceeds maximum page size of {MAX_PAGE}."
        )));
    }
    Ok(n)
}

fn route_fields(param: &str, value: &str) -> Result<(Vec<Field>, bool), JaError> {
    let mut attrs = Vec::new();
    let mut customer = false;
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "customer" => customer = true,
            // Always present; naming it is harmless.
            "id" | "type" => {}
            _ => match Field::parse(name) {
                Some(f) => {
                    if !attrs.contains(&f) {
                        attrs.push(f);
                    }
                }
                None => {
                    return Err(JaError::param(
                        param,
                        "Invalid field",
                        format!(
                            "{} is not a valid field for sip_device_routes.",
                            shorten(name)
                        ),
                    ));
                }
            },
        }
    }
    Ok((attrs, customer))
}

fn customer_fields(param: &str, value: &str) -> Result<Vec<CustomerField>, JaError> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match CustomerField::ALL.into_iter().find(|f| f.name() == name) {
            Some(f) => {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
            None if name == "id" || name == "type" => {}
            None => {
                return Err(JaError::param(
                    param,
                    "Invalid field",
                    format!("{} is not a valid field for customers.", shorten(name)),
                ));
            }
        }
    }
    Ok(out)
}

fn include(value: &str) -> Result<bool, JaError> {
    let mut customer = false;
    for path in value.split(',').map(str::trim) {
        if path == "customer" {
            customer = true;
        } else {
            return Err(JaError::param(
                "include",
                "Invalid include",
                format!(
                    "{} is not a valid includable relationship of sip_device_routes.",
                    shorten(path)
                ),
            ));
        }
    }
    Ok(customer)
}

/// Parses a raw (still percent-encoded) query string.
pub fn parse(raw: Option<&str>, target: Target) -> Result<Params, JaError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_BYTES {
        return Err(JaError::uri_too_long());
    }
    let mut p = Params {
        page_number: 1,
        page_size: DEFAULT_PAGE_SIZE,
        ..Params::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for pair in raw.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k).map_err(|lossy| {
            JaError::param(
                &lossy,
                "Invalid parameter",
                "The parameter name is not valid UTF-8.",
            )
        })?;
        let value = decode(v).map_err(|_| {
            JaError::param(
                &key,
                "Invalid parameter",
                format!("The value of {} is not valid UTF-8.", shorten(&key)),
            )
        })?;
        if seen.contains(&key) {
            let hint = if key.starts_with("filter[") {
                "; list several values separated by commas instead"
            } else {
                ""
            };
            return Err(JaError::param(
                &key,
                "Repeated parameter",
                format!("{} is given more than once{hint}.", shorten(&key)),
            ));
        }
        seen.push(key.clone());
        let not_here = || {
            JaError::param(
                &key,
                "Param not allowed",
                format!("{} is not allowed on a single resource.", shorten(&key)),
            )
        };
        let name = split_name(&key).map_err(|()| {
            JaError::param(
                &key,
                "Invalid parameter",
                format!(
                    "{} is not a valid parameter name: use family[member], e.g. filter[username].",
                    shorten(&key)
                ),
            )
        })?;
        match name {
            None if key == "sort" => {
                if target == Target::One {
                    return Err(not_here());
                }
                p.sort = sort(&value)?;
                p.echo.push((key, value));
            }
            None if key == "include" => {
                p.include_customer = include(&value)?;
                p.echo.push((key, value));
            }
            Some(("filter", member)) => {
                if target == Target::One {
                    return Err(not_here());
                }
                if let Some(f) = filter(member, &key, &value)? {
                    p.filters.push(f);
                }
                p.echo.push((key, value));
            }
            Some(("page", member)) => {
                if target == Target::One {
                    return Err(not_here());
                }
                match member {
                    "number" => p.page_number = page_value(&key, member, &value)?,
                    "size" => p.page_size = page_value(&key, member, &value)?,
                    _ => {
                        return Err(JaError::param(
                            &key,
                            "Page parameter not allowed",
                            format!(
                                "{} is not an allowed page parameter: use page[number] and page[size].",
                                shorten(member)
                            ),
                        ));
                    }
                }
            }
            Some(("fields", "sip_device_routes")) => {
                p.fields.routes = Some(route_fields(&key, &value)?);
                p.echo.push((key, value));
            }
            Some(("fields", "customers")) => {
                p.fields.customers = Some(customer_fields(&key, &value)?);
                p.echo.push((key, value));
            }
            Some(("fields", other)) => {
                return Err(JaError::param(
                    &key,
                    "Invalid resource",
                    format!("{} is not a valid resource.", shorten(other)),
                ));
            }
            _ => {
                return Err(JaError::param(
                    &key,
                    "Param not allowed",
                    format!("{} is not allowed.", shorten(&key)),
                ));
            }
        }
    }
    Ok(p)
}

/// `CGI.escape` as Ruby (and so jsonapi-resources' links) does it: letters, digits and `_.-~`
/// stay, a space becomes `+`, every other byte `%XX`.
pub fn cgi_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query of a pagination link: the request's own parameters with this page, each pair
/// escaped and the pairs sorted (Rails' `Hash#to_query`, which the vendor's links show).
pub fn link_query(echo: &[(String, String)], number: i64, size: i64) -> String {
    let mut pairs: Vec<String> = echo
        .iter()
        .map(|(k, v)| format!("{}={}", cgi_escape(k), cgi_escape(v)))
        .collect();
    pairs.push(format!("{}={number}", cgi_escape("page[number]")));
    pairs.push(format!("{}={size}", cgi_escape("page[size]")));
    pairs.sort();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status(r: Result<Params, JaError>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn seed_link_shape() {
        assert_eq!(
            link_query(&[], 1, 50),
            "page%5Bnumber%5D=1&page%5Bsize%5D=50"
        );
        let echo = vec![
            ("sort".to_owned(), "username,-caller_id_name".to_owned()),
            ("filter[customer.id]".to_owned(), "3".to_owned()),
        ];
        assert_eq!(
            link_query(&echo, 2, 10),
            "filter%5Bcustomer.id%5D=3&page%5Bnumber%5D=2&page%5Bsize%5D=10&sort=username%2C-caller_id_name"
        );
    }

    #[test]
    fn parses_everything() {
        let p = parse(
            Some("filter%5Busername%5D=a,b&filter[allow_external_calls]=true&sort=-caller_id_name,id&page[number]=3&page[size]=7&fields[sip_device_routes]=username,customer&include=customer&fields[customers]=name"),
            Target::List,
        )
        .unwrap();
        assert_eq!(
            p.filters,
            vec![
                AccountFilter::Usernames(vec!["a".into(), "b".into()]),
                AccountFilter::AllowExternalCalls(true)
            ]
        );
        assert_eq!(
            p.sort,
            vec![
                (AccountSort::Attr(Attr::CallerIdName), true),
                (AccountSort::PublicId, false)
            ]
        );
        assert_eq!((p.page_number, p.page_size), (3, 7));
        assert_eq!(p.fields.routes, Some((vec![Field::Username], true)));
        assert_eq!(p.fields.customers, Some(vec![CustomerField::Name]));
        assert!(p.include_customer);
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for q in [
            "filter[id",
            "filter]",
            "filter[a][b]=1",
            "page[]=1",
            "[x]=1",
            "filter=1",
            "foo=1",
            "filter[foo]=1",
            "filter[id]=not-a-uuid",
            "filter[customer.id]=x",
            "filter[allow_external_calls]=yes",
            "filter[username]=",
            "filter[username]=a,,b",
            "sort=password",
            "sort=nope",
            "sort=username,username",
            "sort=",
            "page[number]=0",
            "page[number]=-1",
            "page[number]=99999999999999999999",
            "page[size]=501",
            "page[offset]=1",
            "fields[nope]=a",
            "fields[sip_device_routes]=nope",
            "fields[customers]=nope",
            "include=nope",
            "include=customer.x",
            "page[size]=1&page[size]=2",
            "filter[id]=%FF",
            "%FF=1",
        ] {
            assert_eq!(status(parse(Some(q), Target::List)), 400, "{q}");
        }
        for q in ["sort=username", "filter[username]=a", "page[size]=1"] {
            assert_eq!(status(parse(Some(q), Target::One)), 400, "{q}");
        }
        assert_eq!(
            status(parse(Some(&"a".repeat(MAX_QUERY_BYTES + 1)), Target::List)),
            414
        );
    }

    proptest! {
        #[test]
        fn never_panics(q in ".{0,200}") {
            let _ = parse(Some(&q), Target::List);
            let _ = parse(Some(&q), Target::One);
        }

        #[test]
        fn bracket_soup_never_panics(q in "[\\[\\]=&%a-z,.0-9+-]{0,80}") {
            let _ = parse(Some(&q), Target::List);
        }
    }
}
