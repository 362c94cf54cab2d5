//! Whole answers to read-only queries of desk records and their panels, kept for a moment
//! (`graphql.response_cache_ms`, a second by default) and served again to any viewer of the
//! same profile who sends the same operation with the same variables.
//!
//! An answer is kept with the store's change count read before it was computed, and served
//! only while the count has not moved: a write this process commits is seen by the very next
//! request, as without the cache; a change another process makes, as soon as it is heard of
//! (see `Store::changes`), and in any case once the moment is over. A panel's live lists
//! bound it too: an answer goes when the oldest list in it would have been read again from
//! Salesforce. Answers with errors other than `FORBIDDEN`, or with a list served stale, are
//! not kept; a client that sends `Cache-Control: no-cache` gets a freshly computed answer.
//!
//! What is kept depends on the profile's permissions alone, never on the agent: the
//! operations kept ask only for `contact(s)`, `account(s)` and `ticket(s)`, whose answers
//! (panels included) are the same for every agent of a profile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::live::Fetched;
use crate::domain::Permissions;

/// Root fields whose answers depend on the stored data and the viewer's profile only.
const SHAREABLE_ROOTS: &[&str] = &[
    "__typename",
    "contact",
    "contacts",
    "account",
    "accounts",
    "ticket",
    "tickets",
];

/// What all kept answers may hold, in bytes: bodies, keys, and `ENTRY_BYTES` each.
const BUDGET_BYTES: usize = 32 * 1024 * 1024;

/// What an entry costs beyond its texts: the map's slot, the key and entry, allocations.
const ENTRY_BYTES: usize = 256;

/// The longest moment an answer is kept, whatever the setting.
const LONGEST: Duration = Duration::from_millis(crate::config::MAX_RESPONSE_CACHE_MS);

/// One operation as a viewer of a profile sends it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub profile: i64,
    /// The permissions the answer was read under: once they change, it is not the answer.
    pub permissions: Permissions,
    pub query: String,
    pub operation: Option<String>,
    /// The variables as sent, in JSON.
    pub variables: String,
}

/// A kept answer: its body as sent, and the error codes it carries (for the metrics).
#[derive(Clone)]
pub struct Kept {
    pub body: Bytes,
    pub codes: Arc<[String]>,
}

struct Entry {
    changes: u64,
    /// When the store was read for it: its age runs from then.
    read_at: Instant,
    expires: Instant,
    kept: Kept,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    bytes: usize,
}

pub struct Responses {
    ttl: Duration,
    /// How long a panel's live list is fresh: no answer outlives the lists in it.
    live_ttl: Duration,
    entries: Mutex<Entries>,
}

impl Responses {
    pub fn new(ttl: Duration, live_ttl: Duration) -> Self {
        Self {
            ttl: ttl.min(LONGEST),
            live_ttl,
            entries: Mutex::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer kept for this operation, with its age, if the store has not changed since
    /// it was read (`changes` is `Store::changes` now), its moment is not over, and it is no
    /// older than the client takes (`max_age`, a request's `Cache-Control: max-age`).
    pub fn get(
        &self,
        key: &Key,
        changes: u64,
        max_age: Option<Duration>,
    ) -> Option<(Kept, Duration)> {
        let entries = self.lock();
        let entry = entries.map.get(key)?;
        let age = entry.read_at.elapsed();
        (entry.changes == changes
            && entry.expires > Instant::now()
            && max_age.is_none_or(|most| age <= most))
        .then(|| (entry.kept.clone(), age))
    }

    /// Keeps an answer computed from what the store held at change count `changes`, read at
    /// `read_at` before anything else was, unless the request's live lists rule it out. Its
    /// moment runs from `read_at`: a change nobody hears of is served at most that long.
    pub fn put(
        &self,
        key: Key,
        (changes, read_at): (u64, Instant),
        freshness: &Freshness,
        kept: Kept,
    ) {
        if freshness.stale.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let mut expires = read_at + self.ttl;
        if let Some(oldest) = *freshness.lock() {
            let age = (Utc::now() - oldest).to_std().unwrap_or_default();
            match self.live_ttl.checked_sub(age) {
                Some(left) => expires = expires.min(now + left),
                None => return,
            }
        }
        let key_bytes = key_size(&key);
        let size = kept.body.len() + key_bytes;
        if size > BUDGET_BYTES / 64 || expires <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.bytes + size > BUDGET_BYTES {
            entries.map.retain(|_, e| e.expires > now);
            entries.bytes = entries
                .map
                .iter()
                .map(|(k, e)| e.kept.body.len() + key_size(k))
                .sum();
            if entries.bytes + size > BUDGET_BYTES {
                entries.map.clear();
                entries.bytes = 0;
            }
        }
        let entry = Entry {
            changes,
            read_at,
            expires,
            kept,
        };
        // An answer read before the one kept does not replace it.
        if entries.map.get(&key).is_some_and(|e| e.changes > changes) {
            return;
        }
        entries.bytes += size;
        if let Some(old) = entries.map.insert(key, entry) {
            entries.bytes -= old.kept.body.len() + key_bytes;
        }
    }
}

fn key_size(key: &Key) -> usize {
    ENTRY_BYTES
        + key.query.len()
        + key.variables.len()
        + key.operation.as_ref().map_or(0, String::len)
}

/// What a request's panels served from their live lists: the oldest list, and whether any
/// was served stale. Request data, read once the answer is complete.
#[derive(Default)]
pub struct Freshness {
    oldest: Mutex<Option<DateTime<Utc>>>,
    stale: AtomicBool,
}

impl Freshness {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<DateTime<Utc>>> {
        self.oldest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A list could not be read, and its panel says it is stale.
    pub fn failed(&self) {
        self.stale.store(true, Ordering::Release);
    }

    pub fn saw(&self, fetched: &Fetched) {
        if fetched.stale {
            self.stale.store(true, Ordering::Release);
        }
        let mut oldest = self.lock();
        if oldest.is_none_or(|at| fetched.fetched_at < at) {
            *oldest = Some(fetched.fetched_at);
        }
    }
}

/// Whether the document's operation is a query that asks for desk records and nothing but
/// shareable root fields (through fragments too).
pub fn shareable(doc: &ExecutableDocument, operation: Option<&str>) -> bool {
    let Some(operation) = super::order::operation(doc, operation) else {
        return false;
    };
    let mut roots = Vec::new();
    operation.ty == OperationType::Query
        && root_fields(doc, &operation.selection_set.node, 0, &mut roots)
        && roots.iter().all(|name| SHAREABLE_ROOTS.contains(name))
        && roots.iter().any(|name| *name != "__typename")
}

/// Adds the names of the root fields a selection asks for, through fragments; `false` when
/// a fragment is missing or spreads nest too deep.
fn root_fields<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    depth: usize,
    names: &mut Vec<&'d str>,
) -> bool {
    // Fragments spread in one another are refused by validation; the bound keeps a cycle
    // from recursing here before it is.
    depth < 16
        && set.items.iter().all(|item| match &item.node {
            Selection::Field(field) => {
                names.push(field.node.name.node.as_str());
                true
            }
            Selection::InlineFragment(inline) => {
                root_fields(doc, &inline.node.selection_set.node, depth + 1, names)
            }
            Selection::FragmentSpread(spread) => doc
                .fragments
                .get(&spread.node.fragment_name.node)
                .is_some_and(|f| root_fields(doc, &f.node.selection_set.node, depth + 1, names)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).unwrap()
    }

    #[test]
    fn only_queries_of_desk_roots_are_shareable() {
        let yes = [
            "{ ticket(id: 1) { subject } }",
            "query Q { a: tickets { nodes { id } } contact(id: 2) { name } __typename }",
            "{ ...F } fragment F on Query { accounts { nodes { id } } }",
            "{ ... on Query { contacts { nodes { id } } } }",
        ];
        for query in yes {
            assert!(shareable(&doc(query), None), "{query}");
        }
        let no = [
            "{ me { name } }",
            "{ ticket(id: 1) { subject } integration { status } }",
            "{ ...F } fragment F on Query { profiles { name } }",
            "{ ...Missing }",
            "mutation { startSync { firstSync } }",
            "subscription { syncEvents { id } }",
            "query A { ticket(id: 1) { id } } query B { me { name } }",
            "{ __typename }",
        ];
        for query in no {
            assert!(!shareable(&doc(query), None), "{query}");
        }
        let two = doc("query A { ticket(id: 1) { id } } query B { me { name } }");
        assert!(shareable(&two, Some("A")));
        assert!(!shareable(&two, Some("B")));
        assert!(!shareable(&two, Some("C")));
    }

    fn key(variables: &str) -> Key {
        Key {
            profile: 1,
            permissions: Permissions::FULL,
            query: "{ ticket(id: 1) { id } }".into(),
            operation: None,
            variables: variables.into(),
        }
    }

    fn kept(body: &'static str) -> Kept {
        Kept {
            body: Bytes::from_static(body.as_bytes()),
            codes: Arc::from([]),
        }
    }

    fn fetched(age_secs: i64, stale: bool) -> Fetched {
        Fetched {
            records: Arc::default(),
            fetched_at: Utc::now() - chrono::Duration::seconds(age_secs),
            stale,
        }
    }

    #[test]
    fn an_answer_is_served_only_while_nothing_changed_and_its_moment_lasts() {
        let responses = Responses::new(Duration::from_millis(200), Duration::from_secs(60));
        responses.put(
            key("a"),
            (7, Instant::now()),
            &Freshness::default(),
            kept("A"),
        );
        assert_eq!(responses.get(&key("a"), 7, None).unwrap().0.body, "A");
        assert!(
            responses.get(&key("a"), 8, None).is_none(),
            "the store changed"
        );
        assert!(
            responses.get(&key("b"), 7, None).is_none(),
            "other variables"
        );
        assert!(
            responses.get(&key("a"), 7, Some(Duration::ZERO)).is_none(),
            "older than the client takes"
        );
        let (_, age) = responses
            .get(&key("a"), 7, Some(Duration::from_secs(1)))
            .unwrap();
        assert!(age < Duration::from_millis(200), "{age:?}");
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            responses.get(&key("a"), 7, None).is_none(),
            "the moment is over"
        );

        // The moment runs from when the store was read, not from when the answer was ready.
        let read_at = Instant::now() - Duration::from_millis(100);
        responses.put(key("slow"), (7, read_at), &Freshness::default(), kept("S"));
        assert!(responses.get(&key("slow"), 7, None).is_some());
        std::thread::sleep(Duration::from_millis(150));
        assert!(responses.get(&key("slow"), 7, None).is_none());
        let read_at = Instant::now() - Duration::from_millis(300);
        responses.put(key("late"), (7, read_at), &Freshness::default(), kept("L"));
        assert!(
            responses.get(&key("late"), 7, None).is_none(),
            "over before it was ready"
        );
    }

    #[test]
    fn panels_lists_bound_what_is_kept() {
        let responses = Responses::new(Duration::from_secs(5), Duration::from_secs(60));
        let stale = Freshness::default();
        stale.saw(&fetched(1, false));
        stale.saw(&fetched(0, true));
        responses.put(key("stale"), (1, Instant::now()), &stale, kept("S"));
        let failed = Freshness::default();
        failed.saw(&fetched(0, false));
        failed.failed();
        responses.put(key("failed"), (1, Instant::now()), &failed, kept("F"));
        assert!(
            responses.get(&key("failed"), 1, None).is_none(),
            "a list failed"
        );
        assert!(
            responses.get(&key("stale"), 1, None).is_none(),
            "stale is not kept"
        );

        let old = Freshness::default();
        old.saw(&fetched(1, false));
        old.saw(&fetched(61, false));
        responses.put(key("old"), (1, Instant::now()), &old, kept("O"));
        assert!(
            responses.get(&key("old"), 1, None).is_none(),
            "past the lists' TTL"
        );

        let nearly = Freshness::default();
        nearly.saw(&fetched(0, false));
        let responses = Responses::new(Duration::from_secs(5), Duration::from_millis(1200));
        responses.put(key("nearly"), (1, Instant::now()), &nearly, kept("N"));
        assert!(responses.get(&key("nearly"), 1, None).is_some());
        std::thread::sleep(Duration::from_millis(1300));
        assert!(
            responses.get(&key("nearly"), 1, None).is_none(),
            "gone when its list would be read again"
        );
    }
}
