//! HTTP Digest (RFC 7616 / 2617) for the server side: header parsing, stateless signed nonces,
//! response verification against stored HA1 values, and `nc` replay refusal.
//!
//! Parsers here see attacker-controlled bytes: they never index, never panic, and bound sizes.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::crypto::{hmac_sha256, md5_hex, sha256_hex};

/// Longest Authorization header we look at; real ones are a few hundred bytes.
const MAX_HEADER: usize = 8 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => md5_hex(data),
            Algorithm::Sha256 => sha256_hex(data),
        }
    }
}

/// The fields of an `Authorization: Digest …` header we need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub algorithm: Option<String>,
    pub userhash: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    NotDigest,
    Malformed(&'static str),
    Missing(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NotDigest => f.write_str("not a Digest authorization"),
            ParseError::Malformed(m) => write!(f, "malformed header: {m}"),
            ParseError::Missing(k) => write!(f, "missing {k}"),
        }
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses the auth-param list: `k=token` or `k="quoted \" string"`, comma-separated.
pub fn parse_params(input: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    let mut it = input.iter().copied().peekable();
    loop {
        // Skip separators and white space.
        while let Some(&b) = it.peek() {
            if b == b',' || b == b' ' || b == b'\t' {
                it.next();
            } else {
                break;
            }
        }
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = Vec::new();
        while let Some(&b) = it.peek() {
            if is_token_byte(b) {
                key.push(b.to_ascii_lowercase());
                it.next();
            } else {
                break;
            }
        }
        if key.is_empty() {
            return Err(ParseError::Malformed("expected a parameter name"));
        }
        while matches!(it.peek(), Some(b' ') | Some(b'\t')) {
            it.next();
        }
        if it.next() != Some(b'=') {
            return Err(ParseError::Malformed("expected ="));
        }
        while matches!(it.peek(), Some(b' ') | Some(b'\t')) {
            it.next();
        }
        let mut value = Vec::new();
        if it.peek() == Some(&b'"') {
            it.next();
            let mut closed = false;
            while let Some(b) = it.next() {
                match b {
                    b'\\' => match it.next() {
                        Some(esc) => value.push(esc),
                        None => return Err(ParseError::Malformed("unterminated escape")),
                    },
                    b'"' => {
                        closed = true;
                        break;
                    }
                    _ => value.push(b),
                }
            }
            if !closed {
                return Err(ParseError::Malformed("unterminated quoted string"));
            }
        } else {
            while let Some(&b) = it.peek() {
                if is_token_byte(b) || b == b'/' || b == b':' || b == b'=' || b == b'@' {
                    value.push(b);
                    it.next();
                } else {
                    break;
                }
            }
        }
        let key = String::from_utf8(key).map_err(|_| ParseError::Malformed("name not UTF-8"))?;
        let value =
            String::from_utf8(value).map_err(|_| ParseError::Malformed("value not UTF-8"))?;
        out.push((key, value));
        while matches!(it.peek(), Some(b' ') | Some(b'\t')) {
            it.next();
        }
        match it.peek() {
            None | Some(b',') => {}
            Some(_) => return Err(ParseError::Malformed("expected , between parameters")),
        }
        if out.len() > 32 {
            return Err(ParseError::Malformed("too many parameters"));
        }
    }
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(header: &[u8]) -> Result<Credentials, ParseError> {
    if header.len() > MAX_HEADER {
        return Err(ParseError::Malformed("header too long"));
    }
    let trimmed = header.trim_ascii_start();
    let scheme_len = trimmed.iter().take_while(|b| is_token_byte(**b)).count();
    let (scheme, rest) = trimmed.split_at(scheme_len);
    if !scheme.eq_ignore_ascii_case(b"digest") {
        return Err(ParseError::NotDigest);
    }
    let mut map: HashMap<String, String> = HashMap::new();
    for (k, v) in parse_params(rest)? {
        if map.insert(k, v).is_some() {
            return Err(ParseError::Malformed("repeated parameter"));
        }
    }
    let mut take = |k: &'static str| map.remove(k);
    let req = |v: Option<String>, k: &'static str| v.ok_or(ParseError::Missing(k));
    Ok(Credentials {
        username: req(take("username"), "username")?,
        realm: req(take("realm"), "realm")?,
        nonce: req(take("nonce"), "nonce")?,
        uri: req(take("uri"), "uri")?,
        response: req(take("response"), "response")?,
        qop: take("qop"),
        nc: take("nc"),
        cnonce: take("cnonce"),
        opaque: take("opaque"),
        algorithm: take("algorithm"),
        userhash: take("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")),
    })
}

/// `H(HA1:nonce:nc:cnonce:qop:H(method:uri))` for qop=auth.
#[allow(clippy::too_many_arguments)]
pub fn expected_response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = alg.hash_hex(format!("{method}:{uri}").as_bytes());
    alg.hash_hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes())
}

/// Constant-time equality of two hex strings (case-insensitive input is normalised first).
pub fn ct_eq_hex(a: &str, b: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Issues and checks stateless nonces: `b64url(issued_be8 || rand8 || HMAC(key, issued||rand||realm)[..16])`.
pub struct NonceManager {
    key: [u8; 32],
    lifetime: i64,
    /// Highest `nc` seen per nonce (one process; nonces expire, so entries age out).
    seen: Mutex<HashMap<String, (u32, i64)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    Stale,
    Invalid,
}

impl NonceManager {
    pub fn new(key: [u8; 32], lifetime_secs: u64) -> Self {
        Self {
            key,
            lifetime: i64::try_from(lifetime_secs).unwrap_or(300).max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, issued: &[u8], rnd: &[u8], realm: &str) -> [u8; 32] {
        let mut msg = Vec::with_capacity(16 + realm.len());
        msg.extend_from_slice(issued);
        msg.extend_from_slice(rnd);
        msg.extend_from_slice(realm.as_bytes());
        hmac_sha256(&self.key, &msg)
    }

    pub fn issue(&self, realm: &str, now: i64) -> String {
        let issued = now.to_be_bytes();
        let mut rnd = [0u8; 8];
        rand::rng().fill_bytes(&mut rnd);
        let tag = self.tag(&issued, &rnd, realm);
        let mut raw = Vec::with_capacity(32);
        raw.extend_from_slice(&issued);
        raw.extend_from_slice(&rnd);
        raw.extend_from_slice(tag.get(..16).unwrap_or(&tag));
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn check(&self, nonce: &str, realm: &str, now: i64) -> NonceCheck {
        if nonce.len() > 64 {
            return NonceCheck::Invalid;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return NonceCheck::Invalid;
        };
        if raw.len() != 32 {
            return NonceCheck::Invalid;
        }
        let (issued, rest) = raw.split_at(8);
        let (rnd, tag) = rest.split_at(8);
        let want = self.tag(issued, rnd, realm);
        let want = want.get(..16).unwrap_or(&want);
        if !bool::from(want.ct_eq(tag)) {
            return NonceCheck::Invalid;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(issued);
        let issued = i64::from_be_bytes(ts);
        if issued > now + 5 {
            return NonceCheck::Invalid;
        }
        if now - issued >= self.lifetime {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }

    /// Records `nc` for `nonce`; false when it is not larger than the last one seen (replay).
    pub fn accept_nc(&self, nonce: &str, nc: u32, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 100_000 {
            let cutoff = now - self.lifetime;
            seen.retain(|_, (_, first)| *first > cutoff);
        }
        match seen.get_mut(nonce) {
            Some((last, _)) if nc <= *last => false,
            Some((last, _)) => {
                *last = nc;
                true
            }
            None => {
                seen.insert(nonce.to_owned(), (nc, now));
                true
            }
        }
    }

    /// Drops entries of nonces that have expired anyway.
    pub fn sweep(&self, now: i64) {
        if let Ok(mut seen) = self.seen.lock() {
            let cutoff = now - self.lifetime;
            seen.retain(|_, (_, first)| *first > cutoff);
        }
    }

    /// The two challenge header values, MD5 first (older clients take the first one).
    pub fn challenges(&self, realm: &str, now: i64, stale: bool) -> [String; 2] {
        let nonce = self.issue(realm, now);
        let opaque = md5_hex(realm.as_bytes());
        let stale = if stale { ", stale=true" } else { "" };
        let realm_q = quote(realm);
        [Algorithm::Md5, Algorithm::Sha256].map(|alg| {
            format!(
                "Digest realm=\"{realm_q}\", qop=\"auth\", nonce=\"{nonce}\", opaque=\"{opaque}\", algorithm={}{stale}",
                alg.name()
            )
        })
    }
}

/// Escapes a value for a quoted-string.
fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

/// Parses `nc` (exactly 8 hex digits).
pub fn parse_nc(nc: &str) -> Option<u32> {
    if nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(nc, 16).ok()
    } else {
        None
    }
}

pub fn parse_algorithm(a: Option<&str>) -> Option<Algorithm> {
    match a {
        None => Some(Algorithm::Md5),
        Some(a) if a.eq_ignore_ascii_case("md5") => Some(Algorithm::Md5),
        Some(a) if a.eq_ignore_ascii_case("sha-256") => Some(Algorithm::Sha256),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ha1_pair;
    use proptest::prelude::*;

    /// RFC 7616 §3.9.1.
    #[test]
    fn rfc7616_vectors() {
        let (md5, sha) = ha1_pair("Mufasa", "http-auth@example.org", "Circle of Life");
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let uri = "/dir/index.html";
        assert_eq!(
            expected_response(
                Algorithm::Md5,
                &md5,
                nonce,
                "00000001",
                cnonce,
                "auth",
                "GET",
                uri
            ),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        assert_eq!(
            expected_response(
                Algorithm::Sha256,
                &sha,
                nonce,
                "00000001",
                cnonce,
                "auth",
                "GET",
                uri
            ),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn parses_rfc_header() {
        let h = br#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let c = parse_authorization(h).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.algorithm.as_deref(), Some("MD5"));
        assert_eq!(
            parse_authorization(b"Basic abc"),
            Err(ParseError::NotDigest)
        );
        assert!(parse_authorization(b"Digest username=\"a").is_err());
        assert!(parse_authorization(b"Digest username=\"a\", username=\"b\"").is_err());
        let esc = parse_params(br#"a="x\"y""#).unwrap();
        assert_eq!(esc, vec![("a".into(), "x\"y".into())]);
    }

    #[test]
    fn nonce_lifecycle() {
        let m = NonceManager::new([1; 32], 300);
        let n = m.issue("example.com", 1000);
        assert_eq!(m.check(&n, "example.com", 1000), NonceCheck::Valid);
        assert_eq!(m.check(&n, "example.com", 1299), NonceCheck::Valid);
        assert_eq!(m.check(&n, "example.com", 1300), NonceCheck::Stale);
        assert_eq!(m.check(&n, "other.com", 1000), NonceCheck::Invalid);
        let other = NonceManager::new([2; 32], 300);
        assert_eq!(other.check(&n, "example.com", 1000), NonceCheck::Invalid);
        assert_eq!(m.check("garbage", "example.com", 1000), NonceCheck::Invalid);
        assert!(m.accept_nc(&n, 1, 1000));
        assert!(m.accept_nc(&n, 2, 1000));
        assert!(!m.accept_nc(&n, 2, 1000));
        assert!(!m.accept_nc(&n, 1, 1000));
        assert_eq!(parse_nc("0000000a"), Some(10));
        assert_eq!(parse_nc("1"), None);
        assert_eq!(parse_nc("zzzzzzzz"), None);
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_authorization(&bytes);
            let mut prefixed = b"Digest ".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = parse_authorization(&prefixed);
        }

        #[test]
        fn parser_round_trips_quoted(user in "[ -~]{0,40}") {
            let esc: String = user.chars().flat_map(|c| if c == '"' || c == '\\' { vec!['\\', c] } else { vec![c] }).collect();
            let h = format!("Digest username=\"{esc}\", realm=\"r\", nonce=\"n\", uri=\"/\", response=\"x\"");
            let c = parse_authorization(h.as_bytes()).unwrap();
            prop_assert_eq!(c.username, user);
        }

        #[test]
        fn nonce_check_never_panics(s in ".{0,100}") {
            let m = NonceManager::new([3; 32], 300);
            let _ = m.check(&s, "example.com", 0);
        }
    }
}
