//! Validators for values that come from the wire. Each returns a clear message on failure.

use chrono::NaiveTime;

/// Characters allowed in a SIP user part we create (a conservative subset of RFC 3261's).
fn is_user_char(c: char) -> bool {
    c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || matches!(c, '.' | '_' | '-' | '+' | '~' | '*' | '!')
}

/// A user part for accounts and aliases: already trimmed and lower-cased by the caller.
pub fn sip_user(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("Error: missing username".into());
    }
    if s.len() > 64 {
        return Err("Error: username is longer than 64 characters".into());
    }
    if !s.chars().all(is_user_char) {
        return Err(format!(
            "Error: invalid username {:?}: use letters, digits and . _ - + ~ * ! only",
            truncate(s, 80)
        ));
    }
    Ok(())
}

/// A DNS domain name (lower-case).
pub fn domain_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("invalid domain {:?}", truncate(s, 80)))
    }
}

/// A host: domain name, IPv4 address or bracketed IPv6, with an optional port.
fn host_port(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, after)) => {
                if h.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, after.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    match host {
        None => true,
        Some(h) => {
            h.parse::<std::net::Ipv4Addr>().is_ok() || domain_name(&h.to_ascii_lowercase()).is_ok()
        }
    }
}

/// A forwarding target `user@host[:port]` (no scheme). Users may hold digits and `+`.
pub fn sip_target(s: &str) -> Result<(), String> {
    let bad = || format!("Error: invalid forwarding target {:?}", truncate(s, 80));
    if s.len() > 255 {
        return Err(bad());
    }
    let (user, host) = s.split_once('@').ok_or_else(bad)?;
    let user_ok = !user.is_empty()
        && user.len() <= 64
        && user.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '~' | '*' | '!')
        });
    if user_ok && host_port(host) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A reject rule `sip:user@host` where `%` is a wildcard in either part.
pub fn reject_uri(s: &str) -> Result<String, String> {
    let bad = || format!("Error: invalid reject rule {:?}", truncate(s, 80));
    let t = s.trim();
    let body = t
        .strip_prefix("sip:")
        .or_else(|| t.strip_prefix("sips:"))
        .unwrap_or(t);
    if body.is_empty() || body.len() > 255 {
        return Err(bad());
    }
    let (user, host) = body.split_once('@').ok_or_else(bad)?;
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '.' | '_' | '-' | '+' | '~' | '*' | '!' | '%')
            })
    };
    if part_ok(user) && part_ok(host) {
        Ok(format!("sip:{body}"))
    } else {
        Err(bad())
    }
}

/// `+` and 7 to 15 digits.
pub fn e164(s: &str) -> Result<(), String> {
    let digits = s.strip_prefix('+').unwrap_or("");
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "invalid E.164 number {:?}: use + and 7 to 15 digits",
            truncate(s, 40)
        ))
    }
}

pub fn timezone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("unknown timezone {:?}", truncate(s, 60)))
}

pub fn email(s: &str) -> Result<(), String> {
    let ok = s.len() <= 254
        && s.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty()
                && !d.is_empty()
                && d.contains('.')
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("invalid email address {:?}", truncate(s, 80)))
    }
}

/// `HH:MM`, 00:00 to 23:59.
pub fn hh_mm(s: &str) -> Result<(), String> {
    if s.len() == 5 && NaiveTime::parse_from_str(s, "%H:%M").is_ok() {
        Ok(())
    } else {
        Err(format!(
            "Error: invalid time {:?}: use HH:MM",
            truncate(s, 20)
        ))
    }
}

/// A phonebook group name or `everybody` / `nobody`.
pub fn group_name(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(())
    } else {
        Err(format!("Error: invalid group name {:?}", truncate(s, 40)))
    }
}

/// Cuts a string for messages, on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// One IPv4 or IPv6 address.
pub fn ip(s: &str) -> Result<std::net::IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("invalid IP address {:?}", truncate(s, 60)))
}

/// The most entries an allowed-IP list may hold.
pub const MAX_ALLOWED_IPS: usize = 100;

/// A list of IPs or CIDRs separated by commas or white space, normalised to
/// `address/prefix` (a bare address gets `/32` or `/128`), joined by commas.
pub fn cidr_list(s: &str) -> Result<String, String> {
    let mut out: Vec<String> = Vec::new();
    for item in s.split(|c: char| c == ',' || c.is_whitespace()) {
        if item.is_empty() {
            continue;
        }
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let bad = || format!("invalid IP address or CIDR {:?}", truncate(item, 60));
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        let v = format!("{addr}/{prefix}");
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.len() > MAX_ALLOWED_IPS {
        return Err(format!("at most {MAX_ALLOWED_IPS} addresses are allowed"));
    }
    Ok(out.join(","))
}

/// A comma list of ISO 3166 alpha-2 country codes, normalised to upper case.
pub fn countries(s: &str) -> Result<String, String> {
    let mut out: Vec<String> = Vec::new();
    for c in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "invalid country code {:?}: use ISO 3166 two-letter codes",
                truncate(c, 20)
            ));
        }
        let c = c.to_ascii_uppercase();
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.len() > 250 {
        return Err("too many country codes".into());
    }
    Ok(out.join(","))
}

/// A failover target: an E.164 number, an IP address, or `E.164@IP`.
pub fn failover(s: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "invalid failover {:?}: use an E.164 number, an IP address or number@IP",
            truncate(s, 60)
        )
    };
    match s.split_once('@') {
        Some((n, a)) => {
            e164(n).map_err(|_| bad())?;
            ip(a).map_err(|_| bad())?;
        }
        None if s.starts_with('+') => e164(s).map_err(|_| bad())?,
        None => {
            ip(s).map_err(|_| bad())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        assert!(sip_user("bob").is_ok());
        assert!(sip_user("bob.smith-1").is_ok());
        assert!(sip_user("").is_err());
        assert!(sip_user("bob smith").is_err());
        assert!(sip_user("' or 1=1 --").is_err());
        assert!(sip_user("a@b").is_err());
        assert!(sip_user(&"a".repeat(65)).is_err());
    }

    #[test]
    fn targets() {
        assert!(sip_target("bob@example.com").is_ok());
        assert!(sip_target("+31612345678@example.com").is_ok());
        assert!(sip_target("bob@10.0.0.1:5060").is_ok());
        assert!(sip_target("bob@[::1]:5060").is_ok());
        assert!(sip_target("bob").is_err());
        assert!(sip_target("bob@").is_err());
        assert!(sip_target("bob@exa mple.com").is_err());
        assert!(sip_target("<script>@x.com").is_err());
    }

    #[test]
    fn reject_rules() {
        assert_eq!(
            reject_uri("spam@example.com").unwrap(),
            "sip:spam@example.com"
        );
        assert_eq!(reject_uri("sip:%0900@%").unwrap(), "sip:%0900@%");
        assert!(reject_uri("nohost").is_err());
    }

    #[test]
    fn numbers_and_times() {
        assert!(e164("+31201234567").is_ok());
        assert!(e164("31201234567").is_err());
        assert!(hh_mm("09:00").is_ok());
        assert!(hh_mm("24:00").is_err());
        assert!(hh_mm("9:00").is_err());
        assert!(timezone("Europe/Amsterdam").is_ok());
        assert!(timezone("Mars/Base").is_err());
        assert!(domain_name("example.com").is_ok());
        assert!(domain_name("-bad.com").is_err());
    }
}
