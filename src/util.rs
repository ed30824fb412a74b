//! Small helpers shared by several layers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Current unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Money is kept as integer ten-thousandths (the wire shows 4 decimals), so sums never drift.
pub const MONEY_SCALE: i64 = 10_000;

pub fn money_to_f64(units: i64) -> f64 {
    units as f64 / MONEY_SCALE as f64
}

/// `1234` → `"0.1234"`, `-200` → `"-0.0200"`.
pub fn money_to_string(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    format!(
        "{sign}{}.{:04}",
        abs / MONEY_SCALE as u64,
        abs % MONEY_SCALE as u64
    )
}

/// Parses a decimal amount such as `"12.5"` or `"-0.0200"` into units; at most 4 decimals.
pub fn parse_money(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 4 || int.len() > 12 {
        return None;
    }
    let int_v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_v: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..4 {
        frac_v *= 10;
    }
    let v = int_v.checked_mul(MONEY_SCALE)?.checked_add(frac_v)?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_round_trip() {
        assert_eq!(money_to_string(400), "0.0400");
        assert_eq!(money_to_string(-200), "-0.0200");
        assert_eq!(money_to_string(123_456), "12.3456");
        assert_eq!(parse_money("12.3456"), Some(123_456));
        assert_eq!(parse_money("-0.02"), Some(-200));
        assert_eq!(parse_money("5"), Some(50_000));
        assert_eq!(parse_money("1.23456"), None);
        assert_eq!(parse_money("abc"), None);
        assert_eq!(parse_money(""), None);
    }
}
