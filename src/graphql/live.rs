//! Opportunities, notes, events and tasks, read live from Salesforce for the panels: one SOQL
//! query per kind per request, whatever the number of panels, sent five to a composite call,
//! behind a short cache kept per profile. Enhanced notes take a second query, for the notes
//! their links name. When Salesforce cannot answer, what the cache holds is served marked
//! stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::dataloader::Loader;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::salesforce::soql::{Condition, Ident, Literal, Select};
use crate::salesforce::{Record, SalesforceClient};
use crate::sync::Integrations;

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
}

/// Ids per query: short enough for a GET request line.
const IDS_PER_QUERY: usize = 200;

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
                &["Id", "Title", "Body", "ParentId", "CreatedDate"],
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
                    "WhoId",
                    "WhatId",
                ],
                &["WhoId", "WhatId"],
            ),
            Live::Tasks => (
                "Task",
                &[
                    "Id",
                    "Subject",
                    "Status",
                    "Priority",
                    "ActivityDate",
                    "WhoId",
                    "WhatId",
                ],
                &["WhoId", "WhatId"],
            ),
        }
    }

    /// `SELECT … FROM … WHERE <parent field> IN (ids) [OR …]`.
    fn soql(self, ids: &[String]) -> Result<String, crate::domain::Invalid> {
        let (object, fields, parents) = self.select();
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
        let mut select = Select::new(object, fields)?.filter(condition);
        if self == Live::ContentNotes {
            // Links attach files of every kind; notes are the documents of type SNOTE.
            select = select.filter(Condition::eq(
                &Ident::parse("ContentDocument.FileType")?,
                "SNOTE",
            ));
        }
        Ok(select.build())
    }

    /// The requested parents a record belongs to.
    fn parents(self, record: &Record) -> impl Iterator<Item = &str> {
        self.select()
            .2
            .iter()
            .filter_map(|field| record.get(*field).and_then(Value::as_str))
    }
}

/// A live list for one parent record.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub records: Arc<Vec<Record>>,
    pub fetched_at: DateTime<Utc>,
    /// Served from the cache because Salesforce could not answer.
    pub stale: bool,
}

/// The outcome for one parent: its records, or why there are none to show.
pub type Outcome = Result<Fetched, Arc<str>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveKey(pub Live, pub String);

type CacheKey = (i64, Live, String);
type Entry = (DateTime<Utc>, Arc<Vec<Record>>);

/// Live lists by profile, kind and parent, fresh for `ttl`; older entries are kept to be
/// served stale while Salesforce is unreachable.
pub struct LiveCache {
    ttl: Duration,
    entries: Mutex<HashMap<CacheKey, Entry>>,
}

/// Entries kept at most; beyond it, those older than a day go first, then all but the fresh.
const CACHE_ENTRIES: usize = 100_000;

impl LiveCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    fn get(&self, key: &CacheKey) -> Option<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: CacheKey, at: DateTime<Utc>, records: Arc<Vec<Record>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            // Keep what may still be served stale; past a day nobody wants it.
            let day_ago = Utc::now() - chrono::Duration::days(1);
            entries.retain(|_, (at, _)| *at > day_ago);
        }
        if entries.len() >= CACHE_ENTRIES {
            let fresh_since = Utc::now() - chrono::Duration::from_std(self.ttl).unwrap_or_default();
            entries.retain(|_, (at, _)| *at > fresh_since);
        }
        entries.insert(key, (at, records));
    }

    fn fresh(&self, at: DateTime<Utc>) -> bool {
        (Utc::now() - at).to_std().is_ok_and(|age| age < self.ttl)
    }

    /// A cached list still within its time to live.
    pub fn fresh_entry(&self, profile: i64, key: &LiveKey) -> Option<Fetched> {
        let (at, records) = self.get(&(profile, key.0, key.1.clone()))?;
        self.fresh(at).then_some(Fetched {
            records,
            fetched_at: at,
            stale: false,
        })
    }
}

/// Per request: batches the live lists a request asks for into one query per kind.
pub struct LiveLoader {
    pub integrations: Arc<Integrations>,
    pub cache: Arc<LiveCache>,
    pub profile: i64,
}

impl LiveLoader {
    /// The records of each kind for its parents, with one SOQL query per kind (per 200
    /// parents), all of them sent together: five queries are one call to Salesforce.
    async fn fetch(&self, wanted: &[(Live, Vec<String>)]) -> Vec<Result<Vec<Record>, String>> {
        if wanted.is_empty() {
            // All of it was cached: no client is needed.
            return Vec::new();
        }
        let client = match self.integrations.client().await {
            Ok(client) => client,
            Err(e) => return wanted.iter().map(|_| Err(e.to_string())).collect(),
        };
        let built: Vec<Result<Vec<String>, String>> = wanted
            .iter()
            .map(|(kind, parents)| {
                parents
                    .chunks(IDS_PER_QUERY)
                    .map(|chunk| kind.soql(chunk).map_err(|e| e.to_string()))
                    .collect()
            })
            .collect();
        let soqls: Vec<String> = built.iter().flatten().flatten().cloned().collect();
        let mut answers = client.queries(&soqls).await.into_iter();
        let mut results: Vec<Result<Vec<Record>, String>> = built
            .into_iter()
            .zip(wanted)
            .map(|(queries, (kind, _))| {
                // All of a kind's answers are taken, whatever they hold, so that the next
                // kind starts at its own.
                let mine: Vec<_> = answers.by_ref().take(queries?.len()).collect();
                let mut records = Vec::new();
                for answer in mine {
                    match answer {
                        Ok(page) => records.extend(page),
                        // An org without enhanced notes (or a user who may not read them)
                        // has no such object: there are none to show.
                        Err(e)
                            if *kind == Live::ContentNotes && e.code() == Some("INVALID_TYPE") => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(records)
            })
            .collect();
        for ((kind, _), result) in wanted.iter().zip(&mut results) {
            if *kind == Live::ContentNotes
                && let Ok(links) = result
            {
                *result = content_notes(&client, std::mem::take(links)).await;
            }
        }
        results
    }
}

/// The enhanced notes a page of ContentDocumentLinks names, each with the record it is
/// linked to (`LinkedEntityId`), so that a note on two records is listed on both.
async fn content_notes(
    client: &SalesforceClient,
    links: Vec<Record>,
) -> Result<Vec<Record>, String> {
    let mut ids: Vec<String> = links
        .iter()
        .filter_map(|link| link.get("ContentDocumentId").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let id = Ident::parse("Id").map_err(|e| e.to_string())?;
    let soqls: Vec<String> = ids
        .chunks(IDS_PER_QUERY)
        .map(|chunk| {
            Ok(Select::new(
                "ContentNote",
                &["Id", "Title", "TextPreview", "CreatedDate"],
            )?
            .filter(Condition::in_list(
                &id,
                chunk.iter().map(|i| Literal::Text(i.clone())),
            ))
            .build())
        })
        .collect::<Result<_, crate::domain::Invalid>>()
        .map_err(|e| e.to_string())?;
    let mut notes: HashMap<String, Record> = HashMap::new();
    for answer in client.queries(&soqls).await {
        for note in answer.map_err(|e| e.to_string())? {
            if let Some(id) = note.get("Id").and_then(Value::as_str) {
                notes.insert(id.to_owned(), note.clone());
            }
        }
    }
    Ok(links
        .iter()
        .filter_map(|link| {
            let mut note = notes.get(link.get("ContentDocumentId")?.as_str()?)?.clone();
            note.insert("LinkedEntityId".into(), link.get("LinkedEntityId")?.clone());
            Some(note)
        })
        .collect())
}

impl Loader<LiveKey> for LiveLoader {
    type Value = Outcome;
    type Error = std::convert::Infallible;

    async fn load(&self, keys: &[LiveKey]) -> Result<HashMap<LiveKey, Outcome>, Self::Error> {
        let mut out = HashMap::new();
        let mut wanted: HashMap<Live, Vec<String>> = HashMap::new();
        for LiveKey(kind, parent) in keys {
            let cached = self.cache.get(&(self.profile, *kind, parent.clone()));
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
                _ => wanted.entry(*kind).or_default().push(parent.clone()),
            }
        }
        let wanted: Vec<(Live, Vec<String>)> = wanted.into_iter().collect();
        let answers = self.fetch(&wanted).await;
        for ((kind, parents), answer) in wanted.into_iter().zip(answers) {
            let now = Utc::now();
            match answer {
                Ok(records) => {
                    let mut by_parent: HashMap<&str, Vec<Record>> =
                        parents.iter().map(|p| (p.as_str(), Vec::new())).collect();
                    for record in &records {
                        for parent in kind.parents(record) {
                            if let Some(list) = by_parent.get_mut(parent) {
                                list.push(record.clone());
                            }
                        }
                    }
                    for (parent, list) in by_parent {
                        let list = Arc::new(list);
                        self.cache
                            .put((self.profile, kind, parent.to_owned()), now, list.clone());
                        out.insert(
                            LiveKey(kind, parent.to_owned()),
                            Ok(Fetched {
                                records: list,
                                fetched_at: now,
                                stale: false,
                            }),
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, ?kind, "Salesforce could not answer a panel query");
                    for parent in parents {
                        let key = (self.profile, kind, parent.clone());
                        let outcome = match self.cache.get(&key) {
                            Some((at, records)) => Ok(Fetched {
                                records,
                                fetched_at: at,
                                stale: true,
                            }),
                            None => Err(Arc::from(format!(
                                "Salesforce could not answer and nothing is cached: {error}"
                            ))),
                        };
                        out.insert(LiveKey(kind, parent), outcome);
                    }
                }
            }
        }
        Ok(out)
    }
}
