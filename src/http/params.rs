//! Lenient request parameters for `settings.phtml`: query string plus form or multipart body,
//! body values winning. Clients send some queries unencoded (raw `=` and `/` in values), so a
//! pair splits at its first `=` only. Values that are not UTF-8 are kept as an error marker.

use percent_encoding::percent_decode;

/// Most parameters we keep from one request; more is an attack or a bug.
const MAX_PARAMS: usize = 256;

#[derive(Debug, Default, Clone)]
pub struct Params {
    /// Later entries win.
    pairs: Vec<(String, Option<String>)>,
}

impl Params {
    /// Parses `a=1&b=2` (application/x-www-form-urlencoded, leniently).
    pub fn add_urlencoded(&mut self, raw: &[u8]) {
        for part in raw.split(|b| *b == b'&') {
            if part.is_empty() || self.pairs.len() >= MAX_PARAMS {
                continue;
            }
            let (k, v) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (
                    part.get(..i).unwrap_or(&[]),
                    part.get(i + 1..).unwrap_or(&[]),
                ),
                None => (part, &[][..]),
            };
            let Some(key) = decode(k) else { continue };
            self.pairs.push((key, decode(v)));
        }
    }

    pub fn add(&mut self, key: String, value: Option<String>) {
        if self.pairs.len() < MAX_PARAMS {
            self.pairs.push((key, value));
        }
    }

    /// The last value of `key`: `Ok(None)` when absent, `Err` when it is not valid UTF-8.
    pub fn get(&self, key: &str) -> Result<Option<&str>, String> {
        match self.pairs.iter().rev().find(|(k, _)| k == key) {
            None => Ok(None),
            Some((_, Some(v))) => Ok(Some(v.as_str())),
            Some((_, None)) => Err(format!("Error: parameter {key} is not valid UTF-8")),
        }
    }

    /// Like `get`, with empty or all-blank values treated as absent.
    pub fn get_nonempty(&self, key: &str) -> Result<Option<&str>, String> {
        Ok(self.get(key)?.filter(|v| !v.trim().is_empty()))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }
}

/// `+` is a space, `%XX` a byte; `None` when the result is not UTF-8.
fn decode(raw: &[u8]) -> Option<String> {
    let plus: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&plus).collect();
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lenient() {
        let mut p = Params::default();
        p.add_urlencoded(
            b"action=get_journal_entries&except_uuid=a=b/c&after_timestamp=0&x=%41+b&bad=%ff&flag",
        );
        assert_eq!(p.get("action").unwrap(), Some("get_journal_entries"));
        assert_eq!(p.get("except_uuid").unwrap(), Some("a=b/c"));
        assert_eq!(p.get("x").unwrap(), Some("A b"));
        assert!(p.get("bad").is_err());
        assert_eq!(p.get("flag").unwrap(), Some(""));
        assert_eq!(p.get("missing").unwrap(), None);
        p.add_urlencoded(b"action=other");
        assert_eq!(p.get("action").unwrap(), Some("other"));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut p = Params::default();
            p.add_urlencoded(&bytes);
            let _ = p.get("action");
        }
    }
}
