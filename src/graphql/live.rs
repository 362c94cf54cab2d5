//! Opportunities, notes, events and tasks, read live from Salesforce for the panels: one SOQL
//! query per kind per request, whatever the number of panels, sent five to a composite call,
//! behind a short cache kept per profile. Enhanced notes take one more query, for the notes
//! their links name, events and tasks one more, for which of the opportunities they are
//! related to are private, and a note's whole content one call of its own, asked for only by
//! a reader who opens it. When Salesforce cannot answer, what the cache holds is served marked
//! stale.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::dataloader::Loader;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, future, stream};
use serde_json::Value;

use crate::domain::SalesforceId;
use crate::salesforce::soql::{Condition, Ident, Literal, Select};
use crate::salesforce::{Record, Rows, SalesforceClient};
use crate::sync::{Integrations, SyncError};

/// What a panel reads live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Live {
    /// Opportunities a contact has a role in.
    ContactOpportunities,
    /// Opportunities of an account.
    AccountOpportunities,
    /// Classic notes (`Note`).
    Notes,
    /// Enhanced notes (`ContentNote`, as Lightning takes them), read through the links that
    /// attach them to records.
    ContentNotes,
    Events,
    Tasks,
    /// The whole content of an enhanced note, by the note's id: a blob, read one call a note.
    NoteContent,
}

/// Ids per query: short enough for a GET request line.
const IDS_PER_QUERY: usize = 200;

/// The most records a list shows of one parent: its newest.
pub const PER_PARENT: usize = 100;

/// The most records one query of many parents' lists reads: one page, never more. When it
/// is full, a parent with fewer than `PER_PARENT` in it may have more, older ones, and is
/// read again with as many others as a page holds the lists of (or, from a page of no more
/// than that, on its own).
const ROWS_PER_QUERY: u32 = 2000;

impl Live {
    fn select(
        self,
    ) -> (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    ) {
        match self {
            Live::ContactOpportunities => (
                "OpportunityContactRole",
                &[
                    "Id",
                    "ContactId",
                    "Role",
                    "OpportunityId",
                    "Opportunity.Name",
                    "Opportunity.StageName",
                    "Opportunity.Amount",
                    "Opportunity.CloseDate",
                    "Opportunity.IsClosed",
                    "Opportunity.IsWon",
                ],
                &["ContactId"],
            ),
            Live::AccountOpportunities => (
                "Opportunity",
                &[
                    "Id",
                    "Name",
                    "StageName",
                    "Amount",
                    "CloseDate",
                    "IsClosed",
                    "IsWon",
                    "AccountId",
                ],
                &["AccountId"],
            ),
            Live::Notes => (
                "Note",
                &[
                    "Id",
                    "Title",
                    "Body",
                    "ParentId",
                    "CreatedDate",
                    "CreatedBy.Name",
                ],
                &["ParentId"],
            ),
            Live::ContentNotes => (
                "ContentDocumentLink",
                &["ContentDocumentId", "LinkedEntityId"],
                &["LinkedEntityId"],
            ),
            Live::Events => (
                "Event",
                &[
                    "Id",
                    "Subject",
                    "StartDateTime",
                    "EndDateTime",
                    "Location",
                    "Description",
                    "Owner.Name",
                    "WhoId",
                    "WhatId",
                    "AccountId",
                ],
                &["WhoId", "AccountId"],
            ),
            Live::Tasks => (
                "Task",
                &[
                    "Id",
                    "Subject",
                    "Status",
                    "Priority",
                    "ActivityDate",
                    "Description",
                    "Owner.Name",
                    "WhoId",
                    "WhatId",
                    "AccountId",
                ],
                &["WhoId", "AccountId"],
            ),
            // Not a query: the blob of each note named (see `note_content`).
            Live::NoteContent => ("ContentNote", &["Id", "Content"], &["Id"]),
        }
    }

    /// The fields a list shows when the integration user may read them, and goes without
    /// when it may not: field-level security can hide each of these from it, and a query
    /// naming a hidden field is refused whole (`INVALID_FIELD`). The rest are required of
    /// every record (or name it), and cannot be hidden; the private flag a list is filtered
    /// on (`private_field`) least of all, for without it no record could be told private.
    fn optional(self) -> &'static [&'static str] {
        match self {
            Live::ContactOpportunities => &["Role", "Opportunity.Amount"],
            Live::AccountOpportunities => &["Amount"],
            Live::Events => &["Location", "Description"],
            Live::Tasks => &["Description"],
            Live::Notes | Live::ContentNotes | Live::NoteContent => &[],
        }
    }

    /// The optional field a refusal says the integration user may not read (`No such column
    /// 'Amount' on entity 'Opportunity'`), unless `without` leaves it out already.
    fn hidden_by(
        self,
        error: &crate::salesforce::SalesforceError,
        without: &[&str],
    ) -> Option<&'static str> {
        let crate::salesforce::SalesforceError::Api {
            error_code,
            message,
            ..
        } = error
        else {
            return None;
        };
        if error_code != "INVALID_FIELD" {
            return None;
        }
        let column = message
            .split("No such column '")
            .nth(1)?
            .split('\'')
            .next()?;
        self.optional().iter().copied().find(|field| {
            let name = field.rsplit('.').next().unwrap_or(field);
            name.eq_ignore_ascii_case(column) && !without.contains(field)
        })
    }

    /// The field a kind's lists are ordered by, newest first, a hundred at most; `None` for
    /// notes, which a reader opens by id (`notes(ids:)`) however old, and the links of
    /// enhanced notes, which hold no date.
    fn newest(self) -> Option<&'static str> {
        match self {
            Live::ContactOpportunities => Some("Opportunity.CloseDate"),
            Live::AccountOpportunities => Some("CloseDate"),
            Live::Events => Some("StartDateTime"),
            Live::Tasks => Some("ActivityDate"),
            Live::Notes | Live::ContentNotes | Live::NoteContent => None,
        }
    }

    /// The field telling a closed opportunity from an open one, for the kinds whose lists
    /// keep their newest hundred of each: a parent with a hundred open opportunities closing
    /// later than its closed ones still shows those.
    fn closed_field(self) -> Option<&'static str> {
        match self {
            Live::ContactOpportunities => Some("Opportunity.IsClosed"),
            Live::AccountOpportunities => Some("IsClosed"),
            _ => None,
        }
    }

    /// The field marking a record private: kept to its owner (and those above them) in
    /// Salesforce, and so never shown in a panel, though the integration user may read it.
    /// Field-level security hiding the flag from that user refuses the list rather than
    /// show what may be private.
    fn private_field(self) -> Option<&'static str> {
        match self {
            Live::ContactOpportunities => Some("Opportunity.IsPrivate"),
            Live::AccountOpportunities | Live::Notes | Live::Events => Some("IsPrivate"),
            Live::ContentNotes | Live::Tasks | Live::NoteContent => None,
        }
    }

    /// Whether a kind's records may be related to an opportunity (`WhatId`): a task or event
    /// on one Salesforce keeps private to its owner is kept to them too, whoever else it
    /// names, and is left out of every list.
    fn names_opportunities(self) -> bool {
        matches!(self, Live::Events | Live::Tasks)
    }

    /// Whether a kind's answers ask more (the notes links name, which opportunities are
    /// private): its queries go first, so that what they ask joins the rest's.
    fn reads_on(self) -> bool {
        self == Live::ContentNotes || self.names_opportunities()
    }

    /// The rows a kind's lists read: Salesforce archives activities closed more than a year
    /// ago, which only `queryAll` finds, and a customer's older history is still theirs to
    /// see; in the recycle bin it is not.
    fn rows(self) -> Rows {
        match self {
            Live::Events | Live::Tasks => Rows::All,
            _ => Rows::Live,
        }
    }

    /// The rows a parent's list (one group of it, when `group`) read on its own asks for: a
    /// hundred records of each group, or, of a contact's opportunities, a page's worth, for a
    /// contact in several roles on an opportunity has a row for each.
    fn rows_alone(self, group: bool) -> u32 {
        if self.identity() != "Id" {
            return ROWS_PER_QUERY;
        }
        let groups = if group { 1 } else { self.groups().len() };
        (PER_PARENT * groups) as u32
    }

    /// Which of a kind's groups a record is in: open or closed for opportunities; one group
    /// for every other kind.
    fn group_of(self, record: &Record) -> Option<bool> {
        let field = self.closed_field()?;
        Some(
            value_at(record, field)
                .and_then(Value::as_bool)
                .unwrap_or(false),
        )
    }

    /// The groups a parent's list keeps a hundred of each.
    fn groups(self) -> &'static [Option<bool>] {
        if self.closed_field().is_some() {
            &[Some(false), Some(true)]
        } else {
            &[None]
        }
    }

    /// The groups of which `page` holds fewer than a hundred of `parent`'s records.
    fn short_groups(self, page: &[Record], parent: &str) -> Vec<Option<bool>> {
        self.groups()
            .iter()
            .copied()
            .filter(|&group| {
                // Counted by what is listed: a contact in two roles on an opportunity has
                // two rows of it.
                let held: std::collections::HashSet<&str> = page
                    .iter()
                    .filter(|r| self.parents(r).any(|p| p == parent))
                    .filter(|r| self.group_of(r) == group)
                    .filter_map(|r| value_at(r, self.identity())?.as_str())
                    .collect();
                held.len() < PER_PARENT
            })
            .collect()
    }

    /// A record's value of the field its kind is ordered by (a path such as
    /// `Opportunity.CloseDate` reaches into the related record).
    fn date_of(self, record: &Record) -> Option<&str> {
        value_at(record, self.newest()?)?.as_str()
    }

    /// `SELECT … FROM … WHERE <parent field> IN (ids) [OR …]`, newest first, at most `rows`;
    /// of one group only when `group` names one; without the fields `hidden` names.
    fn soql(
        self,
        ids: &[String],
        rows: u32,
        group: Option<bool>,
        hidden: &[&str],
    ) -> Result<String, crate::domain::Invalid> {
        let (object, fields, parents) = self.select();
        let fields: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|field| !hidden.contains(field))
            .collect();
        let literals = || ids.iter().map(|id| Literal::Text(id.clone()));
        let mut conditions = Vec::new();
        for parent in parents {
            conditions.push(Condition::in_list(&Ident::parse(parent)?, literals()));
        }
        let condition = if conditions.len() == 1 {
            conditions.remove(0)
        } else {
            Condition::Or(conditions)
        };
        let mut select = Select::new(object, &fields)?.filter(condition);
        if let (Some(field), Some(closed)) = (self.closed_field(), group) {
            select = select.filter(Condition::eq(&Ident::parse(field)?, Literal::Bool(closed)));
        }
        if let Some(field) = self.private_field() {
            select = select.filter(Condition::eq(&Ident::parse(field)?, Literal::Bool(false)));
        }
        if self == Live::Events {
            // Each invitee's copy of a meeting on their own calendar (a child event) names
            // its contact and account too: the meeting shows once.
            select = select.filter(Condition::eq(
                &Ident::parse("IsChild")?,
                Literal::Bool(false),
            ));
        }
        if self.rows() == Rows::All {
            select = select.filter(Condition::eq(
                &Ident::parse("IsDeleted")?,
                Literal::Bool(false),
            ));
        }
        if self == Live::ContentNotes {
            // Links attach files of every kind; notes are the documents of type SNOTE, and
            // one "Private on Records" is its owner's alone, as a private record is (a
            // refusal to read the flag refuses the list).
            select = select
                .filter(Condition::eq(
                    &Ident::parse("ContentDocument.FileType")?,
                    "SNOTE",
                ))
                .filter(Condition::ne(
                    &Ident::parse("ContentDocument.SharingPrivacy")?,
                    "P",
                ));
        }
        if let Some(field) = self.newest() {
            select = select
                .newest_first(&Ident::parse(field)?)
                .newest_first(&Ident::parse("Id")?)
                .limit(rows);
        }
        Ok(select.build())
    }

    /// The field naming what a record lists: the opportunity, for a contact's roles in
    /// opportunities; the record itself for the rest.
    fn identity(self) -> &'static str {
        match self {
            Live::ContactOpportunities => "OpportunityId",
            _ => "Id",
        }
    }

    /// The requested parents a record belongs to.
    fn parents(self, record: &Record) -> impl Iterator<Item = &str> {
        self.select()
            .2
            .iter()
            .filter_map(|field| record.get(*field).and_then(Value::as_str))
    }
}

/// Adds the role `other` gives a contact in an opportunity to those `kept` lists
/// (`Decision Maker, Influencer`), unless it names it already.
fn add_role(kept: &mut Record, other: &Record) {
    let Some(role) = other
        .get("Role")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    else {
        return;
    };
    let roles = kept.get("Role").and_then(Value::as_str).unwrap_or_default();
    if roles.split(", ").any(|r| r == role) {
        return;
    }
    let joined = if roles.is_empty() {
        role.to_owned()
    } else {
        format!("{roles}, {role}")
    };
    kept.insert("Role".into(), Value::String(joined));
}

/// The value at a path such as `Opportunity.CloseDate`, reaching into related records.
fn value_at<'r>(record: &'r Record, path: &str) -> Option<&'r Value> {
    let mut steps = path.split('.');
    let mut value = record.get(steps.next()?)?;
    for step in steps {
        value = value.get(step)?;
    }
    Some(value)
}

/// A live list for one parent record.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub records: Arc<Vec<Record>>,
    pub fetched_at: DateTime<Utc>,
    /// Served from the cache because Salesforce could not answer.
    pub stale: bool,
}

impl Unread {
    /// What an error Salesforce answered a list's query with means for the list: that the
    /// integration user may no longer read the object or a field of it (an admin of the org
    /// took it away), or that no answer came (a query that timed out, a locator let go, an
    /// outage), when what the cache holds is served.
    fn of(error: &crate::salesforce::SalesforceError) -> Self {
        let refused = error.code().is_some_and(|code| {
            matches!(code, "INVALID_FIELD" | "INVALID_TYPE")
                || code.starts_with("INSUFFICIENT_ACCESS")
        });
        if refused {
            Unread::Refused(error.to_string().into())
        } else {
            Unread::Upstream(error.to_string().into())
        }
    }
}

/// The outcome for one parent: its records, or why there are none to show.
pub type Outcome = Result<Fetched, Unread>;

/// Why a live list has nothing to show.
#[derive(Debug, Clone)]
pub enum Unread {
    /// Salesforce did not answer: the message says how. What the cache holds is served.
    Upstream(Arc<str>),
    /// Salesforce refused the query (the integration user may no longer read the object or
    /// a field of it): nothing is served, not even what was read before.
    Refused(Arc<str>),
    /// The gateway could not open its connection to Salesforce (its database or its key
    /// failed); the server log has the details, which are not for the viewer.
    Internal,
    /// Salesforce was connected again (to another org, or as another user), or the
    /// integration deleted, after the request looked: nothing read through the connection it
    /// looked at is served, fresh or stale.
    Reconnected(Arc<str>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveKey(pub Live, pub String);

/// Whose lists an entry holds: what one profile may read, in one org, as one Salesforce user.
/// Reconnected to another org (a sandbox copied from production has its record ids, and a
/// refreshed sandbox its URL too), or as another user (who may not see what the first did),
/// nothing read before is served, fresh or stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reader {
    profile: i64,
    connection: u64,
}

impl Reader {
    /// `connection` as [`crate::sync::OrgView::connection`] names it.
    pub fn new(profile: i64, connection: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        connection.hash(&mut hasher);
        Self {
            profile,
            connection: hasher.finish(),
        }
    }
}

type CacheKey = (Reader, Live, String);
/// A list and when its read ended.
type Entry = (DateTime<Utc>, Arc<Vec<Record>>);

/// A list kept, with when its read began: of two reads of one list under way at once, the
/// one begun later says what Salesforce held later, however late its answer came.
struct Kept {
    began: DateTime<Utc>,
    at: DateTime<Utc>,
    records: Arc<Vec<Record>>,
    /// About what it holds in memory ([`weight`]).
    bytes: usize,
}

/// The lists kept, and about how many bytes they hold.
#[derive(Default)]
struct KeptLists {
    kept: HashMap<CacheKey, Kept>,
    bytes: usize,
    /// When Salesforce last refused to read a kind, by connection: a list of it read
    /// before then is not kept, for any profile.
    refused: HashMap<(u64, Live), DateTime<Utc>>,
}

impl KeptLists {
    /// Keeps only the lists `keep` says to, counting the bytes again.
    fn retain(&mut self, keep: impl Fn(&Kept) -> bool) {
        self.kept.retain(|_, kept| keep(kept));
        self.bytes = self.kept.values().map(|kept| kept.bytes).sum();
    }

    /// Whether a list of `bytes` more fits within `share` tenths of the cache's room.
    fn fits(&self, bytes: usize, share: usize, budget: usize) -> bool {
        self.kept.len() < CACHE_ENTRIES * share / 10 && self.bytes + bytes <= budget * share / 10
    }
}

/// About how many bytes a list holds in memory: its text, and a little for each value.
fn weight(records: &[Record]) -> usize {
    fn of(value: &Value) -> usize {
        16 + match value {
            Value::String(s) => s.len(),
            Value::Array(items) => items.iter().map(of).sum(),
            Value::Object(fields) => fields.iter().map(|(k, v)| k.len() + of(v)).sum(),
            _ => 0,
        }
    }
    records
        .iter()
        .map(|record| 64 + record.iter().map(|(k, v)| k.len() + of(v)).sum::<usize>())
        .sum()
}

/// Live lists by reader, kind and parent, fresh for `ttl`; older entries are kept to be
/// served stale while Salesforce is unreachable. A list being read is not asked for again
/// while the read is younger than a request's patience: requests wanting it meanwhile wait
/// for that read (`reading`). A slow Salesforce is asked for a list at most once per
/// patience, and one that has recovered is asked again within it.
pub struct LiveCache {
    ttl: Duration,
    /// What the lists may hold in memory, in bytes ([`weight`]).
    budget: usize,
    entries: Mutex<KeptLists>,
    reading: Mutex<Reads>,
    /// The optional fields each org hides from its integration user, by kind, and since
    /// when: lists are read without them, and with them again once `HIDDEN_FOR` has passed,
    /// in case access was granted meanwhile.
    hidden: Mutex<HashMap<(u64, Live), Hidden>>,
}

/// The optional fields of a kind an org hides, and since when.
type Hidden = (Vec<&'static str>, std::time::Instant);

/// How long a field the org hid from the integration user is left out of the lists before
/// they ask for it again.
const HIDDEN_FOR: Duration = Duration::from_secs(10 * 60);

/// The reads under way: which lists each is reading, and a way to hear it end.
#[derive(Default)]
struct Reads {
    started: u64,
    lists: HashMap<CacheKey, (u64, std::time::Instant, Heard)>,
}

/// How a read under way ends, heard by those waiting for it: the channel closes, having said
/// why Salesforce gave none or not all of the lists, if it did not.
type Heard = tokio::sync::watch::Receiver<Failures>;

/// Why a read did not give lists: all of them (it could not begin), or those of some kinds,
/// each for its own reason (a refusal of one kind's query is not an outage of another's).
#[derive(Debug, Clone, Default)]
struct Failures {
    all: Option<Unread>,
    kinds: HashMap<Live, Unread>,
}

impl Failures {
    /// Why the read did not give the lists of `kind`, if it did not.
    fn of(&self, kind: Live) -> Option<Unread> {
        self.kinds.get(&kind).or(self.all.as_ref()).cloned()
    }
}

/// One read under way, holding its lists in [`LiveCache::reading`] until it ends, however it
/// ends: those waiting for it then look in the cache.
struct Reading {
    cache: Arc<LiveCache>,
    id: u64,
    lists: Vec<CacheKey>,
    done: tokio::sync::watch::Sender<Failures>,
}

impl Reading {
    /// Tells those waiting why Salesforce did not give the lists of `kind`, or any when
    /// `kind` is `None`.
    fn failed(&self, kind: Option<Live>, why: &Unread) {
        self.done.send_modify(|failures| match kind {
            Some(kind) => {
                failures.kinds.insert(kind, why.clone());
            }
            None => failures.all = Some(why.clone()),
        });
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut reads = self.cache.reading.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.lists {
            if reads.lists.get(key).is_some_and(|(id, ..)| *id == self.id) {
                reads.lists.remove(key);
            }
        }
    }
}

/// Entries kept at most; beyond it (or beyond the bytes they may hold), those too old to be
/// served stale go first, then the oldest until a tenth of the room is free.
const CACHE_ENTRIES: usize = 100_000;

/// What the cached lists may hold in memory: long note bodies read for many parents and
/// profiles fill it before the count of entries does.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The oldest list served stale while Salesforce cannot answer: past a day, a panel says it
/// cannot be read rather than show what may long since have changed.
const STALE_AT_MOST: chrono::TimeDelta = chrono::TimeDelta::days(1);

impl LiveCache {
    pub fn new(ttl: Duration) -> Self {
        Self::within(ttl, CACHE_BYTES)
    }

    /// A cache whose lists hold at most `budget` bytes.
    fn within(ttl: Duration, budget: usize) -> Self {
        Self {
            ttl,
            budget,
            entries: Mutex::default(),
            reading: Mutex::default(),
            hidden: Mutex::default(),
        }
    }

    /// The optional fields of `kind` the org `reader` reads hides from its integration user.
    fn hidden(&self, reader: Reader, kind: Live) -> Vec<&'static str> {
        let mut hidden = self.hidden.lock().unwrap_or_else(|p| p.into_inner());
        let key = (reader.connection, kind);
        match hidden.get(&key) {
            Some((fields, since)) if since.elapsed() < HIDDEN_FOR => fields.clone(),
            Some(_) => {
                hidden.remove(&key);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Notes that the org `reader` reads hides `field` of `kind` from its integration user.
    fn hide(&self, reader: Reader, kind: Live, field: &'static str) {
        let mut hidden = self.hidden.lock().unwrap_or_else(|p| p.into_inner());
        let (fields, since) = hidden
            .entry((reader.connection, kind))
            .or_insert_with(|| (Vec::new(), std::time::Instant::now()));
        if !fields.contains(&field) {
            fields.push(field);
            *since = std::time::Instant::now();
        }
    }

    /// Of the lists wanted, those another read started less than `join_within` ago is
    /// reading, each with a way to hear it end; the rest are this read's from now on, until
    /// the `Reading` returned is dropped.
    fn start_reading(
        self: &Arc<Self>,
        wanted: Vec<CacheKey>,
        join_within: Duration,
    ) -> (Vec<(CacheKey, Heard)>, Reading) {
        let (done, heard) = tokio::sync::watch::channel(Failures::default());
        let mut reads = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        reads.started += 1;
        let id = reads.started;
        let (mut joined, mut lists) = (Vec::new(), Vec::new());
        let now = std::time::Instant::now();
        for key in wanted {
            match reads.lists.get(&key) {
                Some((_, started, other)) if now.duration_since(*started) < join_within => {
                    joined.push((key, other.clone()));
                }
                _ => {
                    reads.lists.insert(key.clone(), (id, now, heard.clone()));
                    lists.push(key);
                }
            }
        }
        let reading = Reading {
            cache: self.clone(),
            id,
            lists,
            done,
        };
        (joined, reading)
    }

    fn get(&self, key: &CacheKey) -> Option<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kept
            .get(key)
            .map(|kept| (kept.at, kept.records.clone()))
    }

    /// Keeps a list read from `began` to `at`, unless a read begun later kept it already.
    fn put(
        &self,
        key: CacheKey,
        (began, at): (DateTime<Utc>, DateTime<Utc>),
        records: Arc<Vec<Record>>,
    ) {
        let bytes = weight(&records) + key.2.len();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries
            .kept
            .get(&key)
            .is_some_and(|kept| kept.began > began)
            || entries
                .refused
                .get(&(key.0.connection, key.1))
                .is_some_and(|refused| began < *refused)
        {
            return;
        }
        if let Some(old) = entries.kept.remove(&key) {
            entries.bytes -= old.bytes;
        }
        if !entries.fits(bytes, 10, self.budget) {
            // Keep what may still be served stale; past that nobody wants it.
            let served_until = Utc::now() - STALE_AT_MOST;
            entries.retain(|kept| kept.at > served_until);
        }
        if !entries.fits(bytes, 10, self.budget) {
            // More read than the cache holds: the oldest go, until a tenth of the room is
            // free (all of them, for a list bigger than that alone).
            let mut ages: Vec<(DateTime<Utc>, usize)> = entries
                .kept
                .values()
                .map(|kept| (kept.at, kept.bytes))
                .collect();
            ages.sort_unstable();
            let (mut count, mut held) = (entries.kept.len(), entries.bytes);
            let mut cutoff = None;
            for (at, size) in ages {
                if count < CACHE_ENTRIES * 9 / 10 && held + bytes <= self.budget * 9 / 10 {
                    break;
                }
                count -= 1;
                held -= size;
                cutoff = Some(at);
            }
            if let Some(cutoff) = cutoff {
                entries.retain(|kept| kept.at > cutoff);
            }
        }
        entries.bytes += bytes;
        entries.kept.insert(
            key,
            Kept {
                began,
                at,
                records,
                bytes,
            },
        );
    }

    /// Drops every list of a kind Salesforce refused to read, for every profile reading
    /// through that connection (the refusal is the integration user's), and any such list
    /// a read begun before now would keep: none is served stale. A note's content is read on
    /// its own, and refused on its own: only those of `parents` go.
    fn forget(&self, reader: Reader, kind: Live, parents: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let same = |other: &Reader, of: &Live| other.connection == reader.connection && *of == kind;
        if kind == Live::NoteContent {
            entries
                .kept
                .retain(|(other, of, parent), _| !(same(other, of) && parents.contains(parent)));
        } else {
            entries
                .refused
                .insert((reader.connection, kind), Utc::now());
            entries.kept.retain(|(other, of, _), _| !same(other, of));
        }
        entries.bytes = entries.kept.values().map(|kept| kept.bytes).sum();
    }

    fn fresh(&self, at: DateTime<Utc>) -> bool {
        (Utc::now() - at).to_std().is_ok_and(|age| age < self.ttl)
    }

    /// A cached list still within its time to live.
    pub fn fresh_entry(&self, reader: Reader, key: &LiveKey) -> Option<Fetched> {
        let (at, records) = self.get(&(reader, key.0, key.1.clone()))?;
        self.fresh(at).then_some(Fetched {
            records,
            fetched_at: at,
            stale: false,
        })
    }
}

/// How long a request waits for Salesforce to answer its panels' live lists before it serves
/// what the cache holds (`graphql.panel_timeout_ms`).
#[derive(Clone, Copy)]
pub struct Patience(pub Duration);

/// Per request: batches the live lists a request asks for into one query per kind.
pub struct LiveLoader {
    pub integrations: Arc<Integrations>,
    pub cache: Arc<LiveCache>,
    pub reader: Reader,
    /// The connection `reader` names ([`crate::sync::OrgView::connection`]): what is read
    /// is read through it, or not at all.
    pub connection: Arc<str>,
    pub patience: Patience,
}

/// Each parent's list of one kind, as read at one moment.
type Lists = (DateTime<Utc>, HashMap<String, Arc<Vec<Record>>>);

impl LiveLoader {
    /// The lists of each kind for its parents, with one SOQL query per kind (per 200
    /// parents), sent five to a call, beside the contents of the notes asked for; an error
    /// for each when Salesforce has not answered within the request's patience. The read
    /// goes on past that on a task of its own and keeps what Salesforce answers: a slow list
    /// is read once for the requests after, not given up on and asked for again by each.
    async fn fetch(
        &self,
        wanted: &[(Live, Vec<String>)],
        reading: Reading,
    ) -> Vec<Result<Lists, Unread>> {
        if wanted.is_empty() {
            // All of it was cached, or is being read: no client is needed.
            return Vec::new();
        }
        let Patience(wait) = self.patience;
        let each = |error: Unread| wanted.iter().map(|_| Err(error.clone())).collect();
        let reading = tokio::spawn(read_and_keep(
            self.integrations.clone(),
            reading,
            (self.reader, self.connection.clone()),
            wanted.to_vec(),
        ));
        match tokio::time::timeout(wait, reading).await {
            Ok(Ok(Ok(lists))) => lists,
            Ok(Ok(Err(unread))) => each(unread),
            Ok(Err(error)) => {
                tracing::error!(%error, "a panel's read of Salesforce ended abruptly");
                each(Unread::Internal)
            }
            Err(_) => each(Unread::Upstream(
                format!("Salesforce did not answer within {wait:?}").into(),
            )),
        }
    }
}

/// Reads the lists wanted and keeps each parent's in the cache; those waiting for this read
/// hear it end once they are kept (or it failed).
async fn read_and_keep(
    integrations: Arc<Integrations>,
    reading: Reading,
    (reader, connection): (Reader, Arc<str>),
    wanted: Vec<(Live, Vec<String>)>,
) -> Result<Vec<Result<Lists, Unread>>, Unread> {
    let cache = reading.cache.clone();
    let began = Utc::now();
    let results = match read(&integrations, (&cache, reader, &connection), &wanted).await {
        Ok(results) => results,
        Err(unread) => {
            reading.failed(None, &unread);
            return Err(unread);
        }
    };
    let now = Utc::now();
    Ok(wanted
        .iter()
        .zip(results)
        .map(|((kind, parents), records)| {
            let records = records.inspect_err(|unread| {
                if let Unread::Refused(_) = unread {
                    cache.forget(reader, *kind, parents);
                    integrations.forget_answers();
                }
                reading.failed(Some(*kind), unread);
            })?;
            let lists = by_parent(*kind, parents, &records)
                .into_iter()
                .map(|(parent, list)| {
                    let list = Arc::new(list);
                    cache.put(
                        (reader, *kind, parent.to_owned()),
                        (began, now),
                        list.clone(),
                    );
                    (parent.to_owned(), list)
                })
                .collect();
            Ok((now, lists))
        })
        .collect())
}

async fn read(
    integrations: &Integrations,
    (cache, reader, connection): (&LiveCache, Reader, &str),
    wanted: &[(Live, Vec<String>)],
) -> Result<Vec<Result<Vec<Record>, Unread>>, Unread> {
    let client = match integrations.client_reading_as(connection).await {
        Ok(Some(client)) => client,
        // Reconnected since the request looked: the new org's lists are not the old one's.
        Ok(None) => {
            return Err(Unread::Reconnected(
                "the Salesforce connection changed as this was read; ask again".into(),
            ));
        }
        Err(e @ SyncError::NotConnected) => {
            return Err(Unread::Reconnected(e.to_string().into()));
        }
        Err(e @ SyncError::Upstream(_)) => {
            return Err(Unread::Upstream(e.to_string().into()));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open the Salesforce connection for panels");
            return Err(Unread::Internal);
        }
    };
    let mut results: Vec<Result<Vec<Record>, Unread>> = vec![Ok(Vec::new()); wanted.len()];
    let contents: Vec<_> = wanted
        .iter()
        .enumerate()
        .filter(|(_, (kind, _))| *kind == Live::NoteContent)
        // One note each (`Loader::load` asks each on its own).
        .filter_map(|(i, (_, ids))| Some(note_content(&client, i, ids.first()?)))
        .collect();
    let contents = stream::iter(contents)
        .buffer_unordered(CONTENTS_AT_ONCE)
        .collect::<Vec<_>>();
    let (read, ()) = tokio::join!(
        contents,
        lists(&client, (cache, reader), wanted, &mut results)
    );
    for (i, read) in read {
        results[i] = read;
    }
    Ok(results)
}

/// Each list kind's records, one SOQL query per kind (per 200 parents), sent five to a call.
/// The links of enhanced notes go first, and the notes they name join the queue behind the
/// rest: six kinds and their notes are two calls. So do events and tasks, and the question
/// which opportunities they are related to are private (those activities are left out). A query refused for naming an optional
/// field the org hides from the integration user is asked again without it, and the lists
/// of that org go without it from then on (`LiveCache::hide`).
async fn lists(
    client: &SalesforceClient,
    (cache, reader): (&LiveCache, Reader),
    wanted: &[(Live, Vec<String>)],
    results: &mut [Result<Vec<Record>, Unread>],
) {
    // Of enhanced notes, by kind: the links read, and the notes they name.
    let mut links: HashMap<usize, Vec<Record>> = HashMap::new();
    let mut notes: HashMap<String, Record> = HashMap::new();
    // Of events and tasks, by kind: the opportunities they are related to, asked about; and
    // of all those, the private ones.
    let mut related: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut private: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<Asked> = VecDeque::new();
    let ask = |queue: &mut VecDeque<Asked>,
               results: &mut [Result<Vec<Record>, Unread>],
               (i, step): (usize, Step)| {
        let kind = wanted[i].0;
        let without = cache.hidden(reader, kind);
        match step.soql(kind, &without) {
            Ok(soql) => queue.push_back(Asked {
                i,
                step,
                soql,
                without,
            }),
            Err(e) => results[i] = Err(Unread::Upstream(e.to_string().into())),
        }
    };
    let mut order: Vec<usize> = (0..wanted.len())
        .filter(|&i| wanted[i].0 != Live::NoteContent)
        .collect();
    order.sort_by_key(|&i| !wanted[i].0.reads_on());
    for i in order {
        for chunk in wanted[i].1.chunks(IDS_PER_QUERY) {
            ask(&mut queue, results, (i, Step::List(chunk.to_vec())));
        }
    }
    while !queue.is_empty() {
        // The full calls the queue holds go together, a few at once (a page another parent
        // filled sends a query for each parent it holds few records of); what is left over
        // waits to share a call with the queries their answers add.
        let per_call = crate::salesforce::COMPOSITE_QUERIES;
        let full = (queue.len() / per_call).min(CALLS_AT_ONCE);
        let take = if full == 0 {
            queue.len()
        } else {
            full * per_call
        };
        let asked: Vec<Asked> = queue.drain(..take).collect();
        let calls: Vec<Vec<(Rows, &str)>> = asked
            .chunks(per_call)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|a| (a.step.rows(wanted[a.i].0), a.soql.as_str()))
                    .collect()
            })
            .collect();
        let answers: Vec<_> =
            future::join_all(calls.iter().map(|soqls| client.queries_reading(soqls)))
                .await
                .into_iter()
                .flatten()
                .collect();
        for (
            Asked {
                i, step, without, ..
            },
            answer,
        ) in asked.into_iter().zip(answers)
        {
            let kind = wanted[i].0;
            if results[i].is_err() {
                continue;
            }
            if let (Ok(page), Step::List(_) | Step::Parent(_) | Step::Group(..)) = (&answer, &step)
                && kind.names_opportunities()
            {
                // Each asked about once (a list a kind's records are read again for names
                // them again), and by each kind itself: a kind's list is shown only when
                // every answer about its opportunities came.
                let asked = related.entry(i).or_default();
                let new: Vec<String> = opportunities_of(page)
                    .filter(|id| asked.insert(id.clone()))
                    .collect();
                for ids in new.chunks(IDS_PER_QUERY) {
                    ask(&mut queue, results, (i, Step::Private(ids.to_vec())));
                }
            }
            match (answer, step) {
                // An org without enhanced notes (or a user who may not read them) has no
                // such object: there are none to show.
                (Err(e), Step::List(_))
                    if kind == Live::ContentNotes && e.code() == Some("INVALID_TYPE") => {}
                // Refused the answer (the integration user may not read the opportunities or
                // their flag), their activities are left out as if they were private, and the
                // rest of the list stands. Unanswered, the list is not read: what the cache
                // holds of it is served, stale, rather than a fresh one cut short.
                (Err(e), Step::Private(ids)) => match Unread::of(&e) {
                    Unread::Refused(_) => {
                        tracing::warn!(
                            ?kind,
                            error = %e,
                            "Salesforce would not say which opportunities are private; the \
                             activities related to them are left out of the panels"
                        );
                        private.extend(ids);
                    }
                    unread => results[i] = Err(unread),
                },
                (Err(e), step) => match kind.hidden_by(&e, &without) {
                    Some(field) => {
                        if cache.hidden(reader, kind).is_empty() {
                            tracing::warn!(
                                ?kind,
                                field,
                                "Salesforce hides a field of a panel's list from the \
                                 integration user; the list is shown without it"
                            );
                        }
                        cache.hide(reader, kind, field);
                        ask(&mut queue, results, (i, step));
                    }
                    None => results[i] = Err(Unread::of(&e)),
                },
                (Ok(page), Step::List(_)) if kind == Live::ContentNotes => {
                    for ids in linked_notes(&page).chunks(IDS_PER_QUERY) {
                        ask(&mut queue, results, (i, Step::Notes(ids.to_vec())));
                    }
                    links.entry(i).or_default().extend(page);
                }
                (Ok(page), Step::Private(_)) => {
                    private.extend(
                        page.iter()
                            .filter_map(|o| o.get("Id").and_then(Value::as_str))
                            .map(str::to_owned),
                    );
                }
                (Ok(page), Step::Notes(_)) => {
                    for note in page {
                        if let Some(id) = note.get("Id").and_then(Value::as_str) {
                            notes.insert(id.to_owned(), note.clone());
                        }
                    }
                }
                (Ok(page), Step::List(parents)) => {
                    // A full page may have left out older records of the parents it holds
                    // few of (another filled it): those are read again, as many together as
                    // a page holds the lists of, or, from a page of no more than that, each
                    // on its own. (Only lists cut to their newest fill a page that is not
                    // the whole answer: the others are read to their last page.)
                    if kind.newest().is_some() && page.len() >= ROWS_PER_QUERY as usize {
                        let together = ROWS_PER_QUERY as usize / (PER_PARENT * kind.groups().len());
                        let short: Vec<String> = parents
                            .iter()
                            .filter(|parent| !kind.short_groups(&page, parent).is_empty())
                            .cloned()
                            .collect();
                        for chunk in short.chunks(together) {
                            if parents.len() > together && chunk.len() > 1 {
                                ask(&mut queue, results, (i, Step::List(chunk.to_vec())));
                            } else {
                                for parent in chunk {
                                    ask(&mut queue, results, (i, Step::Parent(parent.clone())));
                                }
                            }
                        }
                    }
                    if let Ok(records) = &mut results[i] {
                        records.extend(page);
                    }
                }
                // A parent's list, read on its own, that filled its page with one group's
                // records (its open opportunities, say, hiding the closed): the group it holds
                // few of is read on its own.
                (Ok(page), Step::Parent(parent))
                    if kind.groups().len() > 1 && page.len() >= kind.rows_alone(false) as usize =>
                {
                    for group in kind.short_groups(&page, &parent) {
                        ask(&mut queue, results, (i, Step::Group(parent.clone(), group)));
                    }
                    if let Ok(records) = &mut results[i] {
                        records.extend(page);
                    }
                }
                (Ok(page), Step::Parent(_) | Step::Group(..)) => {
                    if let Ok(records) = &mut results[i] {
                        records.extend(page);
                    }
                }
            }
        }
    }
    for (i, links) in links {
        if let Ok(records) = &mut results[i] {
            records.extend(noted(&links, &notes));
        }
    }
    for i in related.into_keys() {
        if let Ok(records) = &mut results[i] {
            records.retain(|record| {
                let what = record.get("WhatId").and_then(Value::as_str);
                !what.is_some_and(|id| private.contains(id))
            });
        }
    }
}

/// A query of a list's, sent or waiting to be: for the list `i` of those wanted, at `step`,
/// leaving out the optional fields `without` names.
struct Asked {
    i: usize,
    step: Step,
    soql: String,
    without: Vec<&'static str>,
}

/// Enhanced notes read this many at a time: each is a call of its own.
const CONTENTS_AT_ONCE: usize = 4;

/// Composite calls of a request's list queries sent at once.
const CALLS_AT_ONCE: usize = 4;

/// One enhanced note's whole content, as text, with the place of its list among those
/// wanted: `{Id, Content}` for a note with content, nothing for one without or gone. Blobs
/// cannot be read in a composite call, so each note is a call, and fails on its own.
async fn note_content(
    client: &SalesforceClient,
    i: usize,
    id: &str,
) -> (usize, Result<Vec<Record>, Unread>) {
    let (object, fields, _) = Live::NoteContent.select();
    let field = fields[1];
    let read = async {
        let parsed = SalesforceId::parse(id).map_err(|e| Unread::Upstream(e.to_string().into()))?;
        let blob = client
            .blob(object, &parsed, field)
            .await
            .map_err(|e| Unread::of(&e))?;
        Ok(blob
            .map(|bytes| {
                let mut record = Record::new();
                record.insert("Id".into(), Value::String(id.to_owned()));
                record.insert(
                    field.into(),
                    Value::String(note_text(&String::from_utf8_lossy(&bytes))),
                );
                record
            })
            .into_iter()
            .collect())
    };
    (i, read.await)
}

/// A note's content as text. Enhanced notes are HTML (`<p>…</p>`, a paragraph a line): the
/// markup goes, each paragraph, list item and line break starts a line, character references
/// are decoded and runs of spaces fold into one. Content written as plain text stays as it is.
fn note_text(content: &str) -> String {
    let html = content.contains('<') && content.contains('>');
    if !html {
        return content.trim().to_owned();
    }
    let mut text = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(open) = rest.find('<') {
        text.push_str(&decode_references(&rest[..open]).replace(['\r', '\n'], " "));
        let Some(close) = rest[open..].find('>') else {
            rest = &rest[open..];
            break;
        };
        let tag = rest[open + 1..open + close]
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match tag.as_str() {
            "br" => text.push('\n'),
            "p" | "div" | "li" | "ul" | "ol" | "tr" | "blockquote" | "pre" | "h1" | "h2" | "h3"
            | "h4" | "h5" | "h6"
                if !text.is_empty() && !text.ends_with('\n') =>
            {
                text.push('\n');
            }
            _ => {}
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(&decode_references(rest).replace(['\r', '\n'], " "));
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in lines.iter().skip_while(|l| l.is_empty()) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#39;`, `&nbsp;` and numeric references as
/// the characters they stand for; anything else as written.
fn decode_references(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('&') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| name.strip_prefix('#').map(str::parse))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.into()
}

/// What a query the loader sends reads: a page of a kind's list, or the enhanced notes that
/// a page of links names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// The lists of these parents.
    List(Vec<String>),
    /// One parent's list, read again on its own.
    Parent(String),
    /// One group of one parent's list, read again on its own.
    Group(String, Option<bool>),
    /// These enhanced notes, named by links read.
    Notes(Vec<String>),
    /// Which of these opportunities, that events or tasks read are related to, are private.
    Private(Vec<String>),
}

impl Step {
    /// The query reading what this step reads of a `kind`'s lists, without the fields
    /// `hidden` names.
    fn soql(&self, kind: Live, hidden: &[&str]) -> Result<String, crate::domain::Invalid> {
        let one = std::slice::from_ref;
        match self {
            Step::List(parents) => kind.soql(parents, ROWS_PER_QUERY, None, hidden),
            Step::Parent(parent) => kind.soql(one(parent), kind.rows_alone(false), None, hidden),
            Step::Group(parent, group) => {
                kind.soql(one(parent), kind.rows_alone(true), *group, hidden)
            }
            Step::Notes(ids) => note_query(ids),
            Step::Private(ids) => Ok(Select::new("Opportunity", &["Id"])?
                .filter(Condition::in_list(
                    &Ident::parse("Id")?,
                    ids.iter().map(|i| Literal::Text(i.clone())),
                ))
                .filter(Condition::eq(
                    &Ident::parse("IsPrivate")?,
                    Literal::Bool(true),
                ))
                .build()),
        }
    }

    /// The rows this step reads: a kind's own, for its lists (archived activities too); the
    /// live records, for what its lists name.
    fn rows(&self, kind: Live) -> Rows {
        match self {
            Step::Notes(_) | Step::Private(_) => Rows::Live,
            Step::List(_) | Step::Parent(_) | Step::Group(..) => kind.rows(),
        }
    }
}

/// The opportunities a page of events or tasks is related to (by `WhatId`), each once.
fn opportunities_of(page: &[Record]) -> impl Iterator<Item = String> {
    let ids: std::collections::BTreeSet<&str> = page
        .iter()
        .filter_map(|record| record.get("WhatId")?.as_str())
        .filter(|id| SalesforceId::parse(id).is_ok_and(|id| id.key_prefix() == OPPORTUNITY))
        .collect();
    ids.into_iter().map(str::to_owned)
}

/// The key prefix of opportunity ids.
const OPPORTUNITY: &str = "006";

/// The enhanced notes a page of ContentDocumentLinks names, each once.
fn linked_notes(links: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = links
        .iter()
        .filter_map(|link| link.get("ContentDocumentId").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The query for these enhanced notes.
fn note_query(ids: &[String]) -> Result<String, crate::domain::Invalid> {
    Ok(Select::new(
        "ContentNote",
        &["Id", "Title", "TextPreview", "CreatedDate"],
    )?
    .filter(Condition::in_list(
        &Ident::parse("Id")?,
        ids.iter().map(|i| Literal::Text(i.clone())),
    ))
    .build())
}

/// Each link's note, with the record it is linked to (`LinkedEntityId`), so that a note on
/// two records is listed on both.
fn noted(links: &[Record], notes: &HashMap<String, Record>) -> Vec<Record> {
    links
        .iter()
        .filter_map(|link| {
            let mut note = notes.get(link.get("ContentDocumentId")?.as_str()?)?.clone();
            note.insert("LinkedEntityId".into(), link.get("LinkedEntityId")?.clone());
            Some(note)
        })
        .collect()
}

impl Loader<LiveKey> for LiveLoader {
    type Value = Outcome;
    type Error = std::convert::Infallible;

    async fn load(&self, keys: &[LiveKey]) -> Result<HashMap<LiveKey, Outcome>, Self::Error> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        for LiveKey(kind, parent) in keys {
            let cached = self.cache.get(&(self.reader, *kind, parent.clone()));
            match cached {
                Some((at, records)) if self.cache.fresh(at) => {
                    out.insert(
                        LiveKey(*kind, parent.clone()),
                        Ok(Fetched {
                            records,
                            fetched_at: at,
                            stale: false,
                        }),
                    );
                }
                _ => missing.push((self.reader, *kind, parent.clone())),
            }
        }
        let Patience(wait) = self.patience;
        let joined_at = Utc::now();
        let (joined, reading) = self.cache.start_reading(missing, wait);
        let mut wanted: HashMap<Live, Vec<String>> = HashMap::new();
        let mut contents = Vec::new();
        for (_, kind, parent) in &reading.lists {
            if *kind == Live::NoteContent {
                // Each note's content is a call of its own, and fails on its own.
                contents.push((*kind, vec![parent.clone()]));
            } else {
                wanted.entry(*kind).or_default().push(parent.clone());
            }
        }
        let wanted: Vec<(Live, Vec<String>)> = wanted.into_iter().chain(contents).collect();
        let waiting = async {
            let ends = joined.iter().map(|(_, heard)| {
                let mut heard = heard.clone();
                // Its sender dropped: the read ended.
                async move { while heard.changed().await.is_ok() {} }
            });
            tokio::time::timeout(wait, future::join_all(ends)).await
        };
        let (answers, waited) = tokio::join!(self.fetch(&wanted, reading), waiting);
        // Lists another request was reading: what it kept (read after this request looked,
        // however short the time to live), or what the cache held before.
        let late = Unread::Upstream(format!("Salesforce did not answer within {wait:?}").into());
        for ((_, kind, parent), heard) in joined {
            let outcome = match self.cache.get(&(self.reader, kind, parent.clone())) {
                Some((at, records)) if at >= joined_at || self.cache.fresh(at) => Ok(Fetched {
                    records,
                    fetched_at: at,
                    stale: false,
                }),
                _ if waited.is_err() => self.stale_or(kind, &parent, &late),
                _ => {
                    let why = heard.borrow().of(kind).unwrap_or_else(|| {
                        Unread::Upstream(
                            "the read another request made of it ended without it".into(),
                        )
                    });
                    self.stale_or(kind, &parent, &why)
                }
            };
            out.insert(LiveKey(kind, parent), outcome);
        }
        for ((kind, parents), answer) in wanted.into_iter().zip(answers) {
            match answer {
                Ok((at, lists)) => {
                    for (parent, list) in lists {
                        out.insert(
                            LiveKey(kind, parent),
                            Ok(Fetched {
                                records: list,
                                fetched_at: at,
                                stale: false,
                            }),
                        );
                    }
                }
                Err(error) => {
                    if let Unread::Upstream(error) | Unread::Refused(error) = &error {
                        tracing::warn!(%error, ?kind, "Salesforce did not answer a panel query");
                    }
                    for parent in parents {
                        let outcome = self.stale_or(kind, &parent, &error);
                        out.insert(LiveKey(kind, parent), outcome);
                    }
                }
            }
        }
        Ok(out)
    }
}

impl LiveLoader {
    /// What the cache holds of a list Salesforce did not give, marked stale; or why there is
    /// nothing to show.
    fn stale_or(&self, kind: Live, parent: &str, error: &Unread) -> Outcome {
        match error {
            Unread::Refused(error) => {
                return Err(Unread::Refused(Arc::from(format!(
                    "Salesforce refused to read it: {error}"
                ))));
            }
            Unread::Reconnected(_) => return Err(error.clone()),
            Unread::Upstream(_) | Unread::Internal => {}
        }
        match self.cache.get(&(self.reader, kind, parent.to_owned())) {
            Some((at, records)) if Utc::now() - at <= STALE_AT_MOST => Ok(Fetched {
                records,
                fetched_at: at,
                stale: true,
            }),
            _ => Err(match error {
                Unread::Upstream(error) | Unread::Refused(error) | Unread::Reconnected(error) => {
                    Unread::Upstream(Arc::from(format!(
                        "Salesforce could not answer and nothing recent is cached: {error}"
                    )))
                }
                Unread::Internal => Unread::Internal,
            }),
        }
    }
}

/// Each parent's records. An event or task names two parents (`WhoId`, `AccountId`), so with
/// the parents asked in several queries it may come back from two of them: it is listed once
/// for each. (An enhanced note comes once for each record it is linked to.) A contact with
/// several roles in one opportunity has it listed once, with all its roles.
fn by_parent<'p>(
    kind: Live,
    parents: &'p [String],
    records: &[Record],
) -> HashMap<&'p str, Vec<Record>> {
    let mut lists: HashMap<&str, Vec<Record>> =
        parents.iter().map(|p| (p.as_str(), Vec::new())).collect();
    // Where each parent's list holds each record it has.
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    for record in records {
        let id = record.get(kind.identity()).and_then(Value::as_str);
        for parent in kind.parents(record) {
            let Some(list) = lists.get_mut(parent) else {
                continue;
            };
            match id.map(|id| seen.get(&(parent, id))) {
                Some(Some(&at)) => {
                    if kind == Live::ContactOpportunities {
                        add_role(&mut list[at], record);
                    }
                }
                Some(None) | None => {
                    if let Some(id) = id {
                        seen.insert((parent, id), list.len());
                    }
                    list.push(record.clone());
                }
            }
        }
    }
    if kind.newest().is_some() {
        // Read in several queries, a parent's records come in more than one order. Each
        // keeps its newest hundred of each group.
        for list in lists.values_mut() {
            list.sort_by(|a, b| match (kind.date_of(a), kind.date_of(b)) {
                (Some(a), Some(b)) => b.cmp(a),
                (a, b) => b.is_some().cmp(&a.is_some()),
            });
            let mut kept: HashMap<Option<bool>, usize> = HashMap::new();
            list.retain(|record| {
                let n = kept.entry(kind.group_of(record)).or_default();
                *n += 1;
                *n <= PER_PARENT
            });
        }
    }
    lists
}

#[cfg(test)]
mod tests {
    use super::{Live, by_parent, note_text};
    use crate::salesforce::Record;

    #[test]
    fn a_kind_salesforce_refuses_is_forgotten_for_every_profile_of_the_connection() {
        use super::{LiveCache, Reader};
        use chrono::Utc;
        use std::sync::Arc;
        let cache = LiveCache::new(std::time::Duration::from_secs(60));
        let (admin, agent) = (Reader::new(1, "org"), Reader::new(2, "org"));
        let elsewhere = Reader::new(1, "another org");
        let list = Arc::new(Vec::new());
        let began = Utc::now();
        for key in [
            (admin, Live::Tasks, "a".to_owned()),
            (elsewhere, Live::Tasks, "a".to_owned()),
            (admin, Live::Events, "a".to_owned()),
        ] {
            cache.put(key, (began, began), list.clone());
        }
        cache.forget(agent, Live::Tasks, &[]);
        assert!(cache.get(&(admin, Live::Tasks, "a".into())).is_none());
        assert!(cache.get(&(elsewhere, Live::Tasks, "a".into())).is_some());
        assert!(cache.get(&(admin, Live::Events, "a".into())).is_some());
        // A read begun before the refusal is not kept, though it ends after; one begun
        // after is.
        cache.put(
            (admin, Live::Tasks, "b".into()),
            (began, Utc::now()),
            list.clone(),
        );
        assert!(cache.get(&(admin, Live::Tasks, "b".into())).is_none());
        let later = Utc::now();
        cache.put(
            (admin, Live::Tasks, "b".into()),
            (later, later),
            list.clone(),
        );
        assert!(cache.get(&(admin, Live::Tasks, "b".into())).is_some());
        // A note's content refused is that note's alone.
        for note in ["n1", "n2"] {
            cache.put(
                (admin, Live::NoteContent, note.into()),
                (later, later),
                list.clone(),
            );
        }
        cache.forget(agent, Live::NoteContent, &["n1".to_owned()]);
        assert!(
            cache
                .get(&(admin, Live::NoteContent, "n1".into()))
                .is_none()
        );
        assert!(
            cache
                .get(&(admin, Live::NoteContent, "n2".into()))
                .is_some()
        );
        cache.put(
            (admin, Live::NoteContent, "n3".into()),
            (began, Utc::now()),
            list,
        );
        assert!(
            cache
                .get(&(admin, Live::NoteContent, "n3".into()))
                .is_some()
        );
    }

    #[test]
    fn a_cache_filled_within_its_time_to_live_lets_its_oldest_go() {
        use super::{CACHE_ENTRIES, LiveCache, Reader};
        use chrono::{Duration, Utc};
        use std::sync::Arc;
        let cache = LiveCache::new(std::time::Duration::from_secs(60));
        let reader = Reader::new(1, "https://example.my.salesforce.com");
        let start = Utc::now();
        let list = Arc::new(Vec::new());
        for n in 0..CACHE_ENTRIES {
            let at = start + Duration::microseconds(n as i64);
            cache.put((reader, Live::Tasks, n.to_string()), (at, at), list.clone());
        }
        cache.put(
            (reader, Live::Tasks, "newest".into()),
            (start, Utc::now()),
            list,
        );
        let entries = &cache.entries.lock().unwrap().kept;
        assert!(
            entries.len() <= CACHE_ENTRIES * 9 / 10 + 1,
            "{}",
            entries.len()
        );
        assert!(entries.contains_key(&(reader, Live::Tasks, "newest".into())));
        assert!(!entries.contains_key(&(reader, Live::Tasks, "0".into())));
        assert!(entries.contains_key(&(reader, Live::Tasks, (CACHE_ENTRIES - 1).to_string())));
    }

    #[test]
    fn lists_beyond_the_bytes_the_cache_may_hold_let_the_oldest_go() {
        use super::{LiveCache, Reader};
        use chrono::{Duration, Utc};
        use std::sync::Arc;
        let note = |n: usize| -> Record {
            serde_json::from_value(
                serde_json::json!({ "Id": n.to_string(), "Body": "x".repeat(30_000) }),
            )
            .unwrap()
        };
        let budget = 8 * 1024 * 1024;
        let cache = LiveCache::within(std::time::Duration::from_secs(60), budget);
        let reader = Reader::new(1, "org");
        let start = Utc::now();
        // Sixteen notes a list, about 480 KB: 50 lists are three times the room.
        for n in 0..50 {
            let at = start + Duration::milliseconds(n as i64);
            let list = Arc::new((0..16).map(|i| note(n * 16 + i)).collect());
            cache.put((reader, Live::Notes, n.to_string()), (at, at), list);
        }
        let entries = cache.entries.lock().unwrap();
        assert!(entries.bytes <= budget, "{} bytes held", entries.bytes);
        assert_eq!(
            entries.bytes,
            entries.kept.values().map(|k| k.bytes).sum::<usize>()
        );
        assert!(
            entries
                .kept
                .contains_key(&(reader, Live::Notes, "49".into()))
        );
        assert!(
            !entries
                .kept
                .contains_key(&(reader, Live::Notes, "0".into()))
        );
        drop(entries);

        // A list bigger than the room is kept alone: those who asked for it are served it.
        let huge = Arc::new((0..300).map(note).collect());
        let now = Utc::now();
        cache.put((reader, Live::Notes, "huge".into()), (now, now), huge);
        let entries = cache.entries.lock().unwrap();
        assert_eq!(entries.kept.len(), 1);
        assert!(
            entries
                .kept
                .contains_key(&(reader, Live::Notes, "huge".into()))
        );
    }

    #[test]
    fn a_read_begun_earlier_and_answered_later_does_not_replace_a_later_one() {
        use super::{LiveCache, Reader};
        use chrono::{Duration, Utc};
        use std::sync::Arc;
        let cache = LiveCache::new(std::time::Duration::from_secs(60));
        let key = (Reader::new(1, "org"), Live::Tasks, "003A".to_owned());
        let first = Utc::now();
        let task: Record = serde_json::from_value(serde_json::json!({ "Id": "00T1" })).unwrap();
        // The second read sees the task deleted, and answers first.
        cache.put(
            key.clone(),
            (first + Duration::seconds(1), first + Duration::seconds(2)),
            Arc::new(Vec::new()),
        );
        cache.put(
            key.clone(),
            (first, first + Duration::seconds(3)),
            Arc::new(vec![task]),
        );
        let (at, records) = cache.get(&key).unwrap();
        assert!(records.is_empty(), "{records:?}");
        assert_eq!(at, first + Duration::seconds(2));
    }

    #[test]
    fn an_opportunity_a_contact_has_several_roles_in_is_listed_once_with_each_role() {
        let role = |id: &str, opp: &str, role: &str| -> Record {
            serde_json::from_value(serde_json::json!({
                "Id": id, "ContactId": "003C", "OpportunityId": opp, "Role": role,
                "Opportunity": { "CloseDate": "2026-12-31" }
            }))
            .unwrap()
        };
        let parents = vec!["003C".to_owned()];
        let lists = by_parent(
            Live::ContactOpportunities,
            &parents,
            &[
                role("00K3", "006A", "Influencer"),
                role("00K2", "006B", "Buyer"),
                role("00K1", "006A", "Decision Maker"),
                role("00K0", "006A", "Influencer"),
            ],
        );
        let listed: Vec<(&str, &str)> = lists["003C"]
            .iter()
            .map(|r| {
                (
                    r["OpportunityId"].as_str().unwrap(),
                    r["Role"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            vec![("006A", "Influencer, Decision Maker"), ("006B", "Buyer")]
        );
    }

    #[test]
    fn an_activity_read_back_by_both_its_parents_queries_is_listed_once_for_each() {
        let record = |id: &str, who: &str, what: &str| -> Record {
            serde_json::from_value(serde_json::json!({ "Id": id, "WhoId": who, "AccountId": what }))
                .unwrap()
        };
        let parents = vec!["003C".to_owned(), "001A".to_owned()];
        // The chunk holding the contact and the chunk holding the account each return it.
        let call = record("00U1", "003C", "001A");
        let lunch = record("00U2", "003C", "001Z");
        let lists = by_parent(
            Live::Events,
            &parents,
            &[call.clone(), lunch.clone(), call.clone()],
        );
        assert_eq!(lists["003C"], vec![call.clone(), lunch]);
        assert_eq!(lists["001A"], vec![call]);
    }

    #[test]
    fn a_note_reads_as_its_text_a_paragraph_a_line() {
        assert_eq!(
            note_text(
                "<p>Met the <b>whole</b>\n team.</p><p><br></p><p>Q&amp;A &lt;soon&gt; &#8212; &#x263A;</p>"
            ),
            "Met the whole team.\n\nQ&A <soon> \u{2014} \u{263A}"
        );
        assert_eq!(
            note_text("<ul><li>one</li><li>two</li></ul><div>three<br>four</div>"),
            "one\ntwo\nthree\nfour"
        );
        assert_eq!(
            note_text("  Plain text,\nas written.  "),
            "Plain text,\nas written.",
            "content without markup stays as it is"
        );
        assert_eq!(
            note_text("<p>AT&T &unknown; & more</p>"),
            "AT&T &unknown; & more",
            "an ampersand that starts no reference stays"
        );
    }
}
