//! Per-IP failed-authentication counter: answers slow down, then the IP is refused (429).
//! Kept per process; with several replicas each one counts on its own (documented).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::ThrottleConfig;

#[derive(Debug)]
struct Entry {
    failures: u32,
    window_start: i64,
    banned_until: i64,
}

pub struct Throttle {
    cfg: ThrottleConfig,
    map: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused until the given number of seconds has passed.
    Banned(u64),
}

impl Throttle {
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, ip: IpAddr, now: i64) -> Verdict {
        let Ok(map) = self.map.lock() else {
            return Verdict::Allow;
        };
        match map.get(&ip) {
            Some(e) if e.banned_until > now => Verdict::Banned((e.banned_until - now) as u64),
            _ => Verdict::Allow,
        }
    }

    /// Records a failure; returns how long to hold the answer back.
    pub fn fail(&self, ip: IpAddr, now: i64) -> Duration {
        let Ok(mut map) = self.map.lock() else {
            return Duration::ZERO;
        };
        if map.len() > 100_000 {
            let window = self.cfg.window_secs as i64;
            map.retain(|_, e| e.banned_until > now || now - e.window_start < window);
        }
        let e = map.entry(ip).or_insert(Entry {
            failures: 0,
            window_start: now,
            banned_until: 0,
        });
        if now - e.window_start >= self.cfg.window_secs as i64 {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures = e.failures.saturating_add(1);
        if self.cfg.max_failures > 0 && e.failures >= self.cfg.max_failures {
            e.banned_until = now + self.cfg.ban_secs as i64;
            e.failures = 0;
            e.window_start = now;
        }
        if self.cfg.slow_after > 0 && e.failures > self.cfg.slow_after {
            let extra = u64::from(e.failures - self.cfg.slow_after);
            Duration::from_millis((extra * 250).min(2_000))
        } else {
            Duration::ZERO
        }
    }

    /// A successful login clears the failure count (not an active ban).
    pub fn succeed(&self, ip: IpAddr) {
        if let Ok(mut map) = self.map.lock()
            && map
                .get(&ip)
                .is_some_and(|e| e.failures > 0 && e.banned_until == 0)
        {
            map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_after_max_failures() {
        let t = Throttle::new(ThrottleConfig {
            slow_after: 2,
            max_failures: 4,
            window_secs: 60,
            ban_secs: 100,
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(t.check(ip, 0), Verdict::Allow);
        assert_eq!(t.fail(ip, 0), Duration::ZERO);
        assert_eq!(t.fail(ip, 0), Duration::ZERO);
        assert!(t.fail(ip, 0) > Duration::ZERO);
        t.fail(ip, 0);
        assert_eq!(t.check(ip, 1), Verdict::Banned(99));
        assert_eq!(t.check(ip, 100), Verdict::Allow);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(t.check(other, 1), Verdict::Allow);
    }
}
