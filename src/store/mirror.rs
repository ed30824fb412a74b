//! An in-memory copy of the search text of large customers' accounts (PostgreSQL only), so that
//! the exact `total` of a substring search is counted in memory.
//!
//! Why: the `/sip` listing answers a `total` with every page. A substring matches no index
//! entry as a whole, so counting its matches in SQL visits every account of the scope
//! (~15–20 ms for 100 000 accounts on PostgreSQL, more than a page's whole budget), while the
//! same count over the lowercased texts in memory takes a few milliseconds. The page itself
//! still comes from SQL (it stops after its rows).
//!
//! Consistency: every transaction that adds or removes an account, or changes an account's
//! search text, notes or customer, bumps the customer's row in `search_versions` (triggers,
//! migration 0009), whatever process wrote. A copy remembers the version it was read with (in
//! the same statement as the texts), and a search uses it only while the store still holds that
//! version: one indexed read per search, so a change is counted by the next search on every
//! replica. A stale or missing copy is (re)loaded in the background; meanwhile, searches count
//! in SQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A customer's copy is reloaded at most this often: while its accounts keep changing, its
/// listings run in SQL instead of reading the whole customer again after every change.
pub const RELOAD_AFTER: Duration = Duration::from_secs(1);

/// A copy no listing has used for this long is dropped (its memory with it).
pub const IDLE_AFTER: Duration = Duration::from_secs(600);

/// The lowercased search texts (or notes) of a customer's accounts, one after another with a
/// NUL between two (PostgreSQL text holds no NUL, so no match spans two accounts): one
/// contiguous buffer that a SIMD substring search crosses in one pass.
#[derive(Default)]
pub struct Blob {
    bytes: Vec<u8>,
    /// Where each account's text ends (its NUL).
    ends: Vec<usize>,
}

impl Blob {
    pub fn push(&mut self, text: &str) {
        self.bytes.extend_from_slice(text.as_bytes());
        self.ends.push(self.bytes.len());
        self.bytes.push(0);
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Sets `hits[i]` for every account whose text contains the needle.
    fn mark(&self, finder: &memchr::memmem::Finder<'_>, hits: &mut [bool]) {
        let mut pos = 0;
        let mut entry = 0;
        while let Some(at) = self.bytes.get(pos..).and_then(|rest| finder.find(rest)) {
            let at = pos + at;
            // The account the match lies in: matches come in order, so the cursor only moves on.
            while self.ends.get(entry).is_some_and(|&end| end <= at) {
                entry += 1;
            }
            let Some(&end) = self.ends.get(entry) else {
                break;
            };
            if let Some(h) = hits.get_mut(entry) {
                *h = true;
            }
            // The rest of this account cannot count it twice.
            pos = end + 1;
        }
    }
}

/// One customer's accounts in the listing's order (user name in byte order, then id): ids,
/// search texts, and notes (empty for an account without).
#[derive(Default)]
pub struct Texts {
    pub ids: Vec<i64>,
    pub text: Blob,
    pub notes: Blob,
}

impl Texts {
    pub fn push(&mut self, id: i64, text: &str, notes: &str) {
        self.ids.push(id);
        self.text.push(text);
        self.notes.push(notes);
    }
}

/// What the copy answers for a search: the total, and the page's ids when asked for.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub total: i64,
    pub page: Option<Vec<i64>>,
}

enum Copy {
    /// A load is running (started by the first search that missed).
    Loading,
    /// Too few accounts at this version to be worth the memory: SQL counts them fast.
    Small(i64, Instant),
    Ready(i64, Arc<Texts>, Instant),
}

/// What a search may use for one customer at the store's current version.
pub enum Lookup {
    Ready(Arc<Texts>),
    /// No copy of this version: the caller should load one (it is now marked as loading)
    /// and count in SQL.
    Load,
    /// Count in SQL (a small customer, or a load under way).
    Sql,
}

pub struct SearchMirror {
    min_accounts: usize,
    reload_after: Duration,
    idle_after: Duration,
    customers: Mutex<Customers>,
}

struct Customers {
    copies: HashMap<i64, Copy>,
    /// When a listing last asked for each customer's copy.
    used: HashMap<i64, Instant>,
    swept: Instant,
}

impl SearchMirror {
    /// `min_accounts` = 0 disables the mirror.
    pub fn new(min_accounts: usize, reload_after: Duration, idle_after: Duration) -> Self {
        Self {
            min_accounts,
            reload_after,
            idle_after,
            customers: Mutex::new(Customers {
                copies: HashMap::new(),
                used: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.min_accounts > 0
    }

    /// Whether the customer was found too small for a copy within the last `reload_after`:
    /// its listings then go to SQL without reading its version (most customers are small).
    pub fn recently_small(&self, customer: i64) -> bool {
        self.customers.lock().is_ok_and(|m| {
            matches!(m.copies.get(&customer), Some(Copy::Small(_, at)) if at.elapsed() < self.reload_after)
        })
    }

    /// `version`: the customer's `search_versions` row as the store holds it now.
    pub fn lookup(&self, customer: i64, version: i64) -> Lookup {
        let Ok(mut guard) = self.customers.lock() else {
            return Lookup::Sql;
        };
        let Customers {
            copies: map,
            used,
            swept,
        } = &mut *guard;
        used.insert(customer, Instant::now());
        // Now and then, drop the copies nobody lists any more (a load under way stays).
        if swept.elapsed() >= self.idle_after / 4 {
            let idle = self.idle_after;
            used.retain(|_, at| at.elapsed() < idle);
            map.retain(|c, copy| matches!(copy, Copy::Loading) || used.contains_key(c));
            *swept = Instant::now();
        }
        match map.get_mut(&customer) {
            Some(Copy::Ready(v, rows, _)) if *v == version => Lookup::Ready(rows.clone()),
            Some(Copy::Small(v, at)) if *v == version => {
                *at = Instant::now();
                Lookup::Sql
            }
            Some(Copy::Loading) => Lookup::Sql,
            Some(Copy::Ready(_, _, at) | Copy::Small(_, at))
                if at.elapsed() < self.reload_after =>
            {
                Lookup::Sql
            }
            // Missing or older than the store: the old copy goes now (memory), a new one comes.
            _ => {
                map.insert(customer, Copy::Loading);
                Lookup::Load
            }
        }
    }

    /// Keeps what a load read (texts and the version they belong to); `None` = the load
    /// failed, a later search tries again.
    pub fn install(&self, customer: i64, loaded: Option<(i64, Texts)>) {
        let Ok(mut guard) = self.customers.lock() else {
            return;
        };
        let map = &mut guard.copies;
        match loaded {
            Some((version, rows)) if rows.text.len() >= self.min_accounts => {
                map.insert(
                    customer,
                    Copy::Ready(version, Arc::new(rows), Instant::now()),
                );
            }
            Some((version, _)) => {
                map.insert(customer, Copy::Small(version, Instant::now()));
            }
            None => {
                map.remove(&customer);
            }
        }
    }

    /// Whether a copy of this version is in memory (for tests and diagnostics).
    pub fn holds(&self, customer: i64, version: i64) -> bool {
        self.customers.lock().is_ok_and(
            |m| matches!(m.copies.get(&customer), Some(Copy::Ready(v, ..)) if *v == version),
        )
    }
}

/// The accounts whose text (or, with `notes`, whose notes) contain every needle: their number,
/// and with `page` = (offset, limit) the ids of that page in the listing's order. Needles are
/// lowercased; an empty needle matches every account (as `LIKE '%%'`). `None` for a needle
/// with a NUL (the separator; PostgreSQL text cannot hold one either).
pub fn search(
    rows: &Texts,
    needles: &[(String, bool)],
    page: Option<(usize, usize)>,
) -> Option<Answer> {
    let n = rows.text.len();
    let mut all = vec![true; n];
    let mut hits = vec![false; n];
    for (needle, notes) in needles {
        if needle.is_empty() {
            continue;
        }
        if needle.as_bytes().contains(&0) {
            return None;
        }
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        hits.fill(false);
        rows.text.mark(&finder, &mut hits);
        if *notes {
            rows.notes.mark(&finder, &mut hits);
        }
        for (a, h) in all.iter_mut().zip(&hits) {
            *a &= *h;
        }
    }
    let total = i64::try_from(all.iter().filter(|a| **a).count()).ok()?;
    let page = page.map(|(offset, limit)| {
        rows.ids
            .iter()
            .zip(&all)
            .filter(|(_, hit)| **hit)
            .skip(offset)
            .take(limit)
            .map(|(id, _)| *id)
            .collect()
    });
    Some(Answer { total, page })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(rows: &[(&str, Option<&str>)]) -> Texts {
        let mut t = Texts::default();
        for (i, (text, notes)) in rows.iter().enumerate() {
            t.push(i as i64 + 10, text, notes.unwrap_or(""));
        }
        t
    }

    #[test]
    fn counts_like_the_sql_search() {
        let rows = texts(&[
            ("aarhus trunk 1\nsip1\n+4570000001", None),
            ("odense trunk 2\nsip2", Some("vip customer")),
            ("odense office\nsip3", Some("old trunk")),
            ("trunk trunk trunk", None),
            ("", None),
            ("tru", Some("nk")),
        ]);
        let n = |s: &str, notes: bool| vec![(s.to_owned(), notes)];
        let c = |needles: Vec<(String, bool)>| search(&rows, &needles, None).map(|a| a.total);
        // An account counts once however often it matches; no match spans two accounts.
        assert_eq!(c(n("trunk", false)), Some(3));
        assert_eq!(c(n("trunk", true)), Some(4));
        assert_eq!(c(n("vip", false)), Some(0));
        assert_eq!(c(n("vip", true)), Some(1));
        assert_eq!(c(n("", false)), Some(6));
        assert_eq!(c(n("+4570", false)), Some(1));
        assert_eq!(c(n("nktru", true)), Some(0));
        assert_eq!(c(n("trunk tru", true)), Some(1));
        // A needle across the line between two fields matches, as in SQL.
        assert_eq!(c(n("1\nsip1", false)), Some(1));
        // Every needle must match.
        assert_eq!(
            c(vec![("odense".into(), false), ("trunk".into(), true)]),
            Some(2)
        );
        assert_eq!(c(n("a\0b", false)), None);
        // Pages in the copy's order, from any offset.
        let page = |needles: Vec<(String, bool)>, offset, limit| {
            search(&rows, &needles, Some((offset, limit))).unwrap()
        };
        let answer = |total, page: &[i64]| Answer {
            total,
            page: Some(page.to_vec()),
        };
        assert_eq!(page(n("trunk", true), 0, 2), answer(4, &[10, 11]));
        assert_eq!(page(n("trunk", true), 2, 5), answer(4, &[12, 13]));
        assert_eq!(page(n("trunk", true), 4, 5), answer(4, &[]));
        assert_eq!(page(vec![], 5, 5), answer(6, &[15]));
    }

    #[test]
    fn copies_are_used_at_their_version_only() {
        let hour = Duration::from_secs(3600);
        let m = SearchMirror::new(2, Duration::ZERO, hour);
        let two = || texts(&[("a", None), ("b", None)]);
        assert!(matches!(m.lookup(1, 0), Lookup::Load));
        // One load at a time.
        assert!(matches!(m.lookup(1, 0), Lookup::Sql));
        m.install(1, Some((0, two())));
        assert!(matches!(m.lookup(1, 0), Lookup::Ready(r) if r.text.len() == 2));
        assert!(m.holds(1, 0));
        // The store moved on: the copy is not used, and a new one is loaded.
        assert!(matches!(m.lookup(1, 1), Lookup::Load));
        assert!(!m.holds(1, 0));
        assert!(matches!(m.lookup(1, 1), Lookup::Sql));
        // A load may read a newer version than the search that started it saw.
        m.install(1, Some((2, two())));
        assert!(matches!(m.lookup(1, 2), Lookup::Ready(_)));
        // Another customer is independent; small customers stay in SQL until they change.
        assert!(matches!(m.lookup(3, 5), Lookup::Load));
        m.install(3, Some((5, texts(&[("a", None)]))));
        assert!(matches!(m.lookup(3, 5), Lookup::Sql));
        assert!(matches!(m.lookup(3, 6), Lookup::Load));
        // A failed load is retried by a later search.
        m.install(3, None);
        assert!(matches!(m.lookup(3, 6), Lookup::Load));
        assert!(matches!(m.lookup(1, 2), Lookup::Ready(_)));
        assert!(!SearchMirror::new(0, Duration::ZERO, hour).enabled());
        // Reloads are spaced out: a copy that just loaded is not reloaded at once.
        let m = SearchMirror::new(2, hour, hour);
        assert!(matches!(m.lookup(1, 0), Lookup::Load));
        m.install(1, Some((0, two())));
        assert!(matches!(m.lookup(1, 1), Lookup::Sql));
        assert!(matches!(m.lookup(1, 0), Lookup::Ready(_)));
        assert!(!m.recently_small(1));
        assert!(matches!(m.lookup(2, 0), Lookup::Load));
        m.install(2, Some((0, texts(&[("a", None)]))));
        assert!(m.recently_small(2));
    }

    #[test]
    fn idle_copies_are_dropped() {
        let idle = Duration::from_millis(200);
        let m = SearchMirror::new(1, Duration::ZERO, idle);
        for c in [1, 2] {
            assert!(matches!(m.lookup(c, 0), Lookup::Load));
            m.install(c, Some((0, texts(&[("a", None)]))));
        }
        // Customer 1 keeps being listed, customer 2 is not.
        let started = Instant::now();
        while started.elapsed() < idle * 2 {
            assert!(matches!(m.lookup(1, 0), Lookup::Ready(_)));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(m.holds(1, 0));
        assert!(!m.holds(2, 0));
        assert!(matches!(m.lookup(2, 0), Lookup::Load));
    }
}
