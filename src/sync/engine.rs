//! The sync engine: one round pulls Salesforce changes into the desk, then pushes desk
//! changes to Salesforce. `run_once` is the unit the worker repeats and tests drive.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::integration;
use sea_orm::ActiveValue::Set;
use tokio::sync::broadcast;

use serde_json::Value;

use super::desk;
use super::mapping::Mapping;
use super::pull::FailedVersions;
use super::{Integrations, SyncError};
use crate::domain::{
    Direction, FailureReason, FirstSync, IntegrationStatus, Module, RetryPolicy, SyncType,
};
use crate::salesforce::soql::{Condition, Ident, Literal, Select};
use crate::salesforce::{Rows, SalesforceClient, SalesforceError};
use crate::store::{BIND_PART, RoundLock, Store, SyncEvent};

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Desk changes read from the outbox and sent per Salesforce collection call (at most
    /// 200).
    pub batch: usize,
    /// Salesforce records applied per desk transaction when pulling.
    pub pull_batch: usize,
    /// Sync history older than this is pruned.
    pub history_retention: chrono::Duration,
    /// How far back each incremental pull re-reads, for transactions that commit late, until
    /// the window has had that long to settle.
    pub overlap: Duration,
    /// When records that failed for a transient reason are tried again.
    pub retry: RetryPolicy,
    /// How long after a create whose answer was lost Salesforce may still be making it.
    pub unanswered_create: chrono::Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            batch: 200,
            pull_batch: 1000,
            history_retention: chrono::Duration::days(7),
            overlap: Duration::from_secs(600),
            retry: RetryPolicy::default(),
            unanswered_create: chrono::Duration::minutes(13),
        }
    }
}

/// How long a retry a person asked for waits for a sync round already running.
pub const RETRY_PATIENCE: Duration = Duration::from_secs(3);

/// Records moved in one direction and module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: i32,
    pub updated: i32,
    pub failed: i32,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.updated == 0 && self.failed == 0
    }

    pub fn add(&mut self, other: Counts) {
        self.added += other.added;
        self.updated += other.updated;
        self.failed += other.failed;
    }
}

/// What one round did.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    /// Why nothing ran: not connected, paused, first sync not started.
    pub idle: Option<String>,
    pub pulled: Counts,
    pub pushed: Counts,
    /// The modules that stopped, each with why: the round did the rest.
    pub stopped: Vec<(Module, String)>,
}

impl RoundReport {
    /// What the integration's status says of the modules that stopped, if any did.
    pub fn stopped_reason(&self) -> Option<String> {
        if self.stopped.is_empty() {
            return None;
        }
        let each: Vec<String> = self
            .stopped
            .iter()
            .map(|(module, why)| format!("{}s did not sync: {why}", module.salesforce_object()))
            .collect();
        Some(each.join("; "))
    }
}

pub struct SyncEngine {
    pub(super) store: Store,
    pub(super) integrations: Arc<Integrations>,
    pub(super) settings: EngineSettings,
    pub(super) settled: super::pull::Settled,
}

/// The state one round works with.
pub(super) struct Round {
    pub client: Arc<SalesforceClient>,
    /// The connection generation the round started under.
    pub generation: u64,
    /// The saved connection's epoch the round started under.
    pub epoch: i64,
    /// The round lock across processes, asked before each step whether it still holds.
    pub lock: RoundLock,
    pub sync_type: SyncType,
    pub first_sync: bool,
    pub contacts: Vec<Mapping>,
    pub accounts: Vec<Mapping>,
    /// Mappings made after the integration was: module, desk field, when.
    remapped: Vec<(String, String, DateTime<Utc>)>,
    /// This desk's tag in `Helpdesk_Id__c` (`Store::desk_tag`).
    pub desk_tag: Arc<str>,
    /// Salesforce records the push read and applied, meeting desk records for the first time.
    pub pulled_by_push: std::sync::Mutex<Counts>,
    /// Records desk creates in doubt made, which a pull met and linked.
    pub pushed_by_pull: std::sync::Mutex<Counts>,
    /// Whether a deleted integration left pairs (`Store::former_links`) not met again yet.
    pub former_links: bool,
}

impl Round {
    /// Stops the round when the sync was paused or retyped — in this process or another on
    /// the database — or the connection it started under was replaced, removed or remapped,
    /// or is about to be; and when it lost the round lock, which lets another process's round
    /// begin beside it.
    pub async fn still_current(&self, integrations: &Integrations) -> Result<(), SyncError> {
        if integrations.generation() != self.generation {
            return Err(SyncError::Stopped);
        }
        if !self.lock.held().await {
            return Err(SyncError::LockLost);
        }
        let saved = integrations.current().await?;
        match saved {
            Some(m)
                if m.status == IntegrationStatus::Active.as_str()
                    && m.sync_type == self.sync_type.as_str()
                    && m.epoch == self.epoch =>
            {
                Ok(())
            }
            _ => Err(SyncError::Stopped),
        }
    }

    pub fn mappings(&self, module: Module) -> &[Mapping] {
        match module {
            Module::Contacts => &self.contacts,
            Module::Accounts => &self.accounts,
        }
    }

    /// The desk fields of `module` mapped to the Salesforce field they now are after `at`:
    /// a link last agreed at `at` never agreed on them.
    pub fn mapped_after(&self, module: Module, at: DateTime<Utc>) -> HashSet<String> {
        self.remapped
            .iter()
            .filter(|(m, _, mapped)| m == module.as_str() && *mapped > at)
            .map(|(_, desk, _)| desk.clone())
            .collect()
    }

    /// Of these ids of `object`, those Salesforce holds no live record of (deleted, or never
    /// there), asked in as few queries as the URLs allow; when Salesforce could not be asked,
    /// why, as the reason of the failures left in doubt. Salesforce's answer that a write met
    /// a deleted record does not always say which: the record written, or one a field of it
    /// names.
    pub async fn missing(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, FailureReason> {
        let mut missing: HashSet<String> = ids.iter().cloned().collect();
        if missing.is_empty() {
            return Ok(missing);
        }
        for row in self
            .by_field(object, "Id", &["Id"], ids, Rows::Live)
            .await?
        {
            if let Some(id) = row.get("Id").and_then(Value::as_str) {
                // Answered with 18 characters, asked with 18 or 15.
                missing.retain(|m| !id.starts_with(m.as_str()));
            }
        }
        Ok(missing)
    }

    /// Of these ids of `object`, records Salesforce holds no live record of, those a merge
    /// deleted, each with the record it was merged into (`MasterRecordId`, which Salesforce
    /// keeps on the records a merge left in the recycle bin); when Salesforce could not be
    /// asked, why.
    pub async fn merged_into(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, FailureReason> {
        let mut merged = HashMap::new();
        if ids.is_empty() {
            return Ok(merged);
        }
        let fields = ["Id", "MasterRecordId"];
        for row in self.by_field(object, "Id", &fields, ids, Rows::All).await? {
            let id = row.get("Id").and_then(Value::as_str);
            let master = row.get("MasterRecordId").and_then(Value::as_str);
            if let (Some(id), Some(master)) = (id, master) {
                // Answered with 18 characters, asked with 18 or 15.
                for asked in ids.iter().filter(|asked| id.starts_with(asked.as_str())) {
                    merged.insert(asked.clone(), master.to_owned());
                }
            }
        }
        Ok(merged)
    }

    /// The `fields` of the records of `object` whose `key` holds one of `values` (whose `Id`
    /// is one of these ids, say): the live ones, or (`Rows::All`) the deleted ones, in the
    /// recycle bin; asked in as few queries as the URLs allow. When Salesforce could not be
    /// asked, why, as the reason of the failures left in doubt.
    pub(super) async fn by_field(
        &self,
        object: &str,
        key: &str,
        fields: &[&str],
        values: &[String],
        rows: Rows,
    ) -> Result<Vec<crate::salesforce::Record>, FailureReason> {
        let soqls = Ident::parse(key).and_then(|key| {
            url_sized(values)
                .map(|chunk| {
                    let values = chunk.iter().map(|i| Literal::Text(i.clone()));
                    let mut select =
                        Select::new(object, fields)?.filter(Condition::in_list(&key, values));
                    if rows == Rows::All {
                        select = select.filter(Condition::eq(
                            &Ident::parse("IsDeleted")?,
                            Literal::Bool(true),
                        ));
                    }
                    Ok(select.build())
                })
                .collect::<Result<Vec<_>, crate::domain::Invalid>>()
        });
        let unasked = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, object, key, "cannot ask Salesforce for records by a field");
        };
        let soqls = soqls.map_err(|e| {
            unasked(&e);
            FailureReason::UpstreamUnavailable
        })?;
        let asked: Vec<(Rows, &str)> = soqls.iter().map(|s| (rows, s.as_str())).collect();
        let mut records = Vec::new();
        for answer in self.client.queries_reading(&asked).await {
            records.extend(answer.map_err(|e| {
                unasked(&e);
                // Out of budget, or throttled at the edge: as a write refused so is.
                let limited = e.code().is_some_and(|code| {
                    FailureReason::from_salesforce(code, "") == FailureReason::RateLimited
                });
                if limited {
                    FailureReason::RateLimited
                } else {
                    FailureReason::UpstreamUnavailable
                }
            })?);
        }
        Ok(records)
    }

    /// The Salesforce records, linked or not, whose match field (the Salesforce field the
    /// desk's email or account name is mapped to) holds one of these keys, by key. Keys go
    /// out, each in every spelling Salesforce may hold it in (`desk::spellings`), in as many
    /// queries as keep each URL inside Salesforce's limit; nothing is asked when there are
    /// none, or when the match field is not mapped.
    pub async fn salesforce_by_key(
        &self,
        module: Module,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<String>>, SyncError> {
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        let Some(mapping) = self
            .mappings(module)
            .iter()
            .find(|m| m.desk_field == desk::match_field(module))
        else {
            return Ok(found);
        };
        let field = Ident::parse(&mapping.salesforce_field)?;
        let spelt: Vec<String> = keys.iter().flat_map(|k| desk::spellings(k)).collect();
        let soqls = url_sized(&spelt)
            .map(|chunk| {
                Ok(
                    Select::new(module.salesforce_object(), &["Id", field.as_str()])?
                        .filter(Condition::in_list(
                            &field,
                            chunk.iter().map(|k| Literal::Text(k.clone())),
                        ))
                        .build(),
                )
            })
            .collect::<Result<Vec<_>, crate::domain::Invalid>>()?;
        // Five lookups to a call: a page meeting many desk records costs one or two calls.
        for rows in self.client.queries(&soqls).await {
            for row in rows? {
                let id = row.get("Id").and_then(Value::as_str);
                let key =
                    super::records::field(&row, &mapping.salesforce_field).and_then(desk::key_of);
                if let (Some(id), Some(key)) = (id, key) {
                    found.entry(key).or_default().push(id.to_owned());
                }
            }
        }
        Ok(found)
    }
}

/// How many bytes of the URL one `salesforce_by_key` query gives its keys: the rest of the
/// query (object, fields, the API path) takes well under the remaining 4 KB of Salesforce's
/// 16,384.
const KEYS_PER_QUERY_BUDGET: usize = 12_000;

/// The keys in runs that each fit one query's URL, in order.
pub(super) fn url_sized(keys: &[String]) -> impl Iterator<Item = &[String]> {
    let mut rest = keys;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut length = 0;
        let take = rest
            .iter()
            .take_while(|k| {
                length += url_cost(k);
                length <= KEYS_PER_QUERY_BUDGET
            })
            .count()
            .max(1);
        let (chunk, next) = rest.split_at(take);
        rest = next;
        Some(chunk)
    })
}

/// What a key adds to the URL of an `IN (…)` list: itself, quoted, escaped and
/// percent-encoded, with the separator before the next.
fn url_cost(key: &str) -> usize {
    let encoded: usize = key
        .bytes()
        .map(|b| match b {
            b if b.is_ascii_alphanumeric() || b"-._".contains(&b) => 1,
            // Escaped with a backslash first.
            b'\'' | b'"' | b'\\' | b'\n' | b'\r' | b'\t' => 6,
            _ => 3,
        })
        .sum();
    // `'…', ` encoded: two quotes, a comma and a space.
    encoded + 3 + 3 + 3 + 1
}

impl SyncEngine {
    pub fn new(store: Store, integrations: Arc<Integrations>, settings: EngineSettings) -> Self {
        Self {
            store,
            integrations,
            settings,
            settled: Default::default(),
        }
    }

    /// Whether desk changes wait to go to Salesforce now: queued and due, with the sync
    /// active and two-way. When that cannot be read, a round finds out.
    pub async fn has_changes_to_send(&self) -> bool {
        let current = match self.integrations.current().await {
            Ok(Some(current)) => current,
            Ok(None) => return false,
            Err(_) => return true,
        };
        // Before `startSync` the queue fills, and nothing goes out until the first sync.
        if current.status != IntegrationStatus::Active.as_str()
            || current.sync_type != SyncType::TwoWay.as_str()
            || current.first_sync == FirstSync::NotStarted.as_str()
        {
            return false;
        }
        for module in [Module::Accounts, Module::Contacts] {
            match self.store.outbox(module, 0, 1).await {
                Ok(rows) if rows.is_empty() => {}
                _ => return true,
            }
        }
        false
    }

    /// History entries, failures and status changes, as they commit.
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.store.subscribe_sync()
    }

    /// Says where admins look that a round panicked (the panic's text stays in the log, as a
    /// database error's does): the worker retries it, as it retries any failed round.
    pub async fn note_panic(&self) {
        let reason = stopped("an internal error (the gateway's log says which)");
        if let Err(e) = self.integrations.explain(Some(reason)).await {
            tracing::warn!(error = %e, "cannot say that a sync round panicked");
        }
    }

    /// Runs one full round: the first sync while it is running, otherwise incremental.
    pub async fn run_once(&self) -> Result<RoundReport, SyncError> {
        let (held, generation) = match self.integrations.round().await {
            Err(SyncError::Stopped) if self.integrations.closing() => {
                return Ok(idle("the gateway is stopping"));
            }
            Err(SyncError::Stopped) => return Ok(idle(&SyncError::Stopped.to_string())),
            held => held?,
        };
        // History ages out whether or not the sync runs: paused, failed or deleted too.
        self.store
            .prune_history(Utc::now() - self.settings.history_retention)
            .await?;
        let Some(current) = self.integrations.current().await? else {
            return Ok(idle(
                "Salesforce is not connected (an administrator connects it with connectSalesforce)",
            ));
        };
        if current.status != IntegrationStatus::Active.as_str() {
            let paused = current.status == IntegrationStatus::Paused.as_str();
            let next = match current.status_reason.as_deref() {
                Some(reason) if paused => format!(
                    ": {reason} (resumeSync resumes it, and meets this again until it is fixed)"
                ),
                None if paused => " (resumeSync resumes it)".to_owned(),
                Some(reason) => format!(": {reason}"),
                None => String::new(),
            };
            return Ok(idle(&format!(
                "the integration is {}{next}",
                current.status
            )));
        }
        if current.first_sync == FirstSync::NotStarted.as_str() {
            return Ok(idle(
                "the first sync has not been started (an administrator starts it with startSync)",
            ));
        }
        let client = match self.integrations.client_of(&current).await {
            Err(e @ SyncError::Vault(_)) => {
                // Nothing can be sent or read; say why where the admin looks.
                let reason = e.to_string();
                self.integrations.explain(Some(reason)).await?;
                return Err(e);
            }
            client => client?,
        };
        let mut result = self
            .round(&current, &client, generation, held.shared())
            .await;
        if matches!(result, Err(SyncError::Stopped))
            || (result.is_err() && self.integrations.generation() != generation)
        {
            // What is written stays written; the rest waits for the next round.
            result = Ok(idle(&SyncError::Stopped.to_string()));
        }
        // Only a figure shown to admins: its write failing takes nothing from the round's
        // own outcome, which is judged below.
        if let Err(e) = self.record_usage(&client).await {
            tracing::warn!(error = %e, "cannot save the org's API usage");
        }
        // A session signed in since the last round (by it, or by a panel's read) may name
        // another instance (a My Domain renamed, the org moved): links follow it. One looked
        // at before tells nothing new, though it may name the old one for a while yet, after
        // another process saved the new.
        let named = client
            .newly_signed_in_instance_url()
            .await
            .filter(|url| current.instance_url.as_ref() != Some(url));
        if let (Some(sealed), Some(url)) = (&current.secrets, named)
            && let Err(e) = self
                .store
                .note_instance_url(sealed, current.epoch, &url)
                .await
        {
            tracing::warn!(error = %e, "cannot save the instance URL Salesforce names now");
        }
        match result {
            Err(SyncError::Upstream(SalesforceError::AuthFailed { error, description }))
                if self.integrations.current().await?.and_then(|m| m.secrets)
                    != current.secrets =>
            {
                // The saved credentials changed since the round began (a refresh token another
                // process rotated in, or a reconnect): the next round signs in with them.
                let reason = format!(
                    "Salesforce refused credentials replaced during the round ({error}: {description}); the next round uses the new ones"
                );
                self.integrations.explain(Some(reason)).await?;
                Err(SyncError::Refused(description))
            }
            Err(SyncError::Upstream(SalesforceError::AuthFailed { error, description })) => {
                let reason = format!(
                    "Salesforce refused the saved credentials ({error}: {description}); reconnect to resume"
                );
                self.integrations.fail(&reason).await?;
                Err(SyncError::Refused(description))
            }
            Err(e) => {
                // Still active, and retried with backoff; what stops it is shown until a
                // round gets through. A database error's text stays in the log, as it does
                // for any request (`INTERNAL`).
                let why = match &e {
                    SyncError::Store(_) => {
                        tracing::error!(error = %e, "a sync round stopped on a database error");
                        "a database error (the gateway's log says which)".to_owned()
                    }
                    e => e.to_string(),
                };
                self.integrations.explain(Some(stopped(&why))).await?;
                Err(e)
            }
            Ok(report) => {
                if let Some(why) = report.stopped_reason() {
                    // Said the same way every round while it lasts: one status change, not one
                    // a poll.
                    let rest = if report.stopped.len() > 1 {
                        "nothing else syncs"
                    } else {
                        "the rest syncs"
                    };
                    let reason = format!("{why}; {rest}, and it is tried again each round");
                    self.integrations.explain(Some(reason)).await?;
                } else if current.status_reason.is_some() && report.idle.is_none() {
                    // Only a round that got through clears what stopped the last one.
                    self.integrations.explain(None).await?;
                }
                Ok(report)
            }
        }
    }

    async fn prepare(
        &self,
        current: &integration::Model,
        client: &Arc<SalesforceClient>,
        generation: u64,
        lock: RoundLock,
    ) -> Result<Round, SyncError> {
        let round = Round {
            client: client.clone(),
            generation,
            epoch: current.epoch,
            lock,
            sync_type: current.sync_type.parse().map_err(SyncError::WrongState)?,
            first_sync: current.first_sync == FirstSync::Running.as_str(),
            contacts: self.integrations.mappings(Module::Contacts).await?,
            accounts: self.integrations.mappings(Module::Accounts).await?,
            remapped: self.store.remapped_fields().await?,
            desk_tag: self.store.desk_tag().await?,
            pulled_by_push: Default::default(),
            pushed_by_pull: Default::default(),
            former_links: self.store.has_former_links().await?,
        };
        Ok(round)
    }

    /// Tries failed records again now: desk records are pushed (their Salesforce twins read
    /// first), Salesforce records fetched and applied. A record that syncs has its failures
    /// marked resolved.
    ///
    /// A round already running (a first sync may run for an hour) is not waited for past
    /// [`RETRY_PATIENCE`]: the records are made due, for it or the next round to take, and
    /// their failures stay open meanwhile.
    pub async fn retry(&self, failures: &[entity::sync_failure::Model]) -> Result<(), SyncError> {
        let Some((held, generation)) = self.integrations.try_round(RETRY_PATIENCE).await? else {
            let current = self.retriable().await?;
            let push = current.sync_type == SyncType::TwoWay.as_str();
            self.store.queue_retries(failures, push).await?;
            self.integrations.wake();
            return Ok(());
        };
        let current = self.retriable().await?;
        let client = self.integrations.client_of(&current).await?;
        let round = self
            .prepare(&current, &client, generation, held.shared())
            .await?;
        // The modules of the failures, each while Salesforce shows its mapped fields: one
        // that stopped keeps its failures open, as rounds leave it, and says why when it is
        // all there was to retry.
        let mut modules = Vec::new();
        let mut gone = None;
        for module in [Module::Accounts, Module::Contacts] {
            if !failures.iter().any(|f| f.module == module.as_str()) {
                continue;
            }
            match mapped_fields_seen(&round, module).await {
                Ok(()) => modules.push(module),
                Err(e @ SyncError::FieldGone(_)) => gone = Some(e),
                Err(e) => return Err(e),
            }
        }
        if let (true, Some(gone)) = (modules.is_empty(), gone) {
            return Err(gone);
        }
        let ids: Vec<i64> = failures
            .iter()
            .filter(|f| modules.iter().any(|m| f.module == m.as_str()))
            .map(|f| f.id)
            .collect();
        self.store.restart_spent(&ids).await?;
        let mut sent = false;
        for module in modules {
            self.find_lost_creates(&round, module).await?;
            let open = failures
                .iter()
                .filter(|f| f.module == module.as_str() && f.resolved_at.is_none());
            let (push, pull): (Vec<_>, Vec<_>) =
                open.partition(|f| f.direction == Direction::DeskToSalesforce.as_str());
            let desk_ids: Vec<i64> = push.iter().filter_map(|f| f.desk_id).collect();
            if !desk_ids.is_empty() && round.sync_type == SyncType::TwoWay {
                sent = true;
                // A part at a time: tens of thousands of records (a validation rule that met
                // a whole first sync) would bind more values than a statement may hold.
                for part in desk_ids.chunks(BIND_PART) {
                    let mut batch = self.store.begin_sync().await?;
                    batch.enqueue_all(module, part).await?;
                    batch.due_now(module, part).await?;
                    batch.commit().await?;
                    for page in part.chunks(self.settings.batch) {
                        // Each page's twins are read just before it is sent, as a round reads
                        // before it sends: a Salesforce edit newer than the desk's wins, and
                        // is not written over while the pages before go out.
                        let twins: Vec<String> = self
                            .store
                            .links_by_desk(module, page)
                            .await?
                            .into_values()
                            .map(|link| link.salesforce_id)
                            .collect();
                        if !twins.is_empty() {
                            self.pull_ids(&round, module, &twins, FailedVersions::Skip)
                                .await?;
                        }
                        // One whose twin's newer version the desk could not take (its account
                        // is not in the desk yet) waits queued for it, as a round leaves it.
                        let behind = self.store.behind_salesforce(module, page).await?;
                        let page: Vec<i64> = page
                            .iter()
                            .copied()
                            .filter(|id| !behind.contains(id))
                            .collect();
                        // Only these go out: another queued record's twin was not read, and a
                        // newer Salesforce edit of it would be written over. It waits for a
                        // round, which reads before it sends.
                        let read = self.store.outbox_waiting(module, &page).await?;
                        self.send(&round, module, &page, &read, None).await?;
                    }
                }
            }
            let salesforce_ids: Vec<String> = pull
                .iter()
                .filter_map(|f| f.salesforce_id.clone())
                .collect();
            if !salesforce_ids.is_empty() {
                let asked = Utc::now();
                self.pull_ids(&round, module, &salesforce_ids, FailedVersions::TryAgain)
                    .await?;
                // As in a round: one read again that needed nothing is settled.
                for part in salesforce_ids.chunks(BIND_PART) {
                    self.store
                        .resolve_settled_pulls(module, part, asked)
                        .await?;
                }
            }
        }
        // What the retry made due and did not send (contacts that waited for an account it
        // linked, say) goes with a round, which reads before it sends: woken now.
        if sent {
            self.integrations.wake();
        }
        self.record_usage(&client).await
    }

    /// The integration, when records may be retried: connected and active.
    async fn retriable(&self) -> Result<integration::Model, SyncError> {
        let current = self
            .integrations
            .current()
            .await?
            .ok_or(SyncError::NotConnected)?;
        if current.status != IntegrationStatus::Active.as_str() {
            return Err(SyncError::WrongState(super::integration::wrong_state(
                "retry",
                &current.status,
            )));
        }
        Ok(current)
    }

    async fn round(
        &self,
        current: &integration::Model,
        client: &Arc<SalesforceClient>,
        generation: u64,
        lock: RoundLock,
    ) -> Result<RoundReport, SyncError> {
        let round = self.prepare(current, client, generation, lock).await?;
        let sync_type = round.sync_type;
        let mut report = RoundReport::default();
        let mut read_at = HashMap::new();
        // A module whose mapped field Salesforce no longer shows stops, and says why; the
        // other goes on (a contact whose account cannot come waits for it, as it would).
        let mut stopped: Vec<(Module, String)> = Vec::new();
        for module in [Module::Accounts, Module::Contacts] {
            match self
                .pull_module(&round, module, &mut report, &mut read_at)
                .await
            {
                Err(SyncError::FieldGone(why)) => {
                    tracing::warn!(%module, why, "a module stopped: a mapped field is gone");
                    stopped.push((module, why));
                }
                done => done?,
            }
        }
        for module in [Module::Accounts, Module::Contacts] {
            if stopped.iter().any(|(m, _)| *m == module) {
                continue;
            }
            if sync_type == SyncType::TwoWay {
                if round.first_sync {
                    report.pushed.add(self.export(&round, module).await?);
                }
                let read = read_at.get(&module).copied().unwrap_or_else(Instant::now);
                report.pushed.add(self.push(&round, module, read).await?);
            } else {
                self.compact_outbox(&round, module).await?;
            }
        }
        report.pulled.add(
            *round
                .pulled_by_push
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        report.pushed.add(
            *round
                .pushed_by_pull
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let now = Utc::now();
        // A module that stopped has its share of the first sync still to do.
        let first_done = round.first_sync && stopped.is_empty();
        self.store
            .update_integration_with(|current, m| {
                // A connection saved since (this process's round lock lost on the way) has
                // its own first sync to run: this round's end is none of its business.
                if current.epoch != round.epoch {
                    return Ok(());
                }
                m.last_sync_at = Set(Some(now));
                // Turned two-way while a one-way first sync ran, the first sync is not done:
                // the next round exports what stayed local.
                if first_done
                    && current.sync_type == sync_type.as_str()
                    && current.first_sync == FirstSync::Running.as_str()
                {
                    m.first_sync = Set(FirstSync::Done.as_str().into());
                }
                Ok(())
            })
            .await?;
        if round.former_links {
            self.store.forget_met_former_links().await?;
            // A round after the first sync, of both modules: every record Salesforce had
            // was read by then.
            if !round.first_sync && stopped.is_empty() {
                self.store.forget_unreached_former_links().await?;
            }
        }
        report.stopped = stopped;
        Ok(report)
    }

    /// One module's part of a round before anything is sent: lost creates found, Salesforce's
    /// changes read, and records waiting to be read again read.
    async fn pull_module(
        &self,
        round: &Round,
        module: Module,
        report: &mut RoundReport,
        read_at: &mut HashMap<Module, Instant>,
    ) -> Result<(), SyncError> {
        mapped_fields_seen(round, module).await?;
        // Before anything is read: a record a lost create made would otherwise come back as a
        // new Salesforce record.
        report
            .pushed
            .add(self.find_lost_creates(round, module).await?);
        // When the pull began: its first page was read then, however long the rest took.
        read_at.insert(module, Instant::now());
        report.pulled.add(self.pull(round, module).await?);
        // Records that could not be told apart (`MULTIPLE_MATCHES`) are tried again once one
        // of those sharing their key settles: merged away, re-keyed or linked.
        let woke = self
            .store
            .wake_rivals(module, round.sync_type == SyncType::TwoWay)
            .await?;
        if woke > 0 {
            tracing::info!(%module, woke, "records that shared a key with a settled one are tried again");
        }
        // Records that failed for a reason that clears up (a contact waiting for its account)
        // are read again once their next attempt is due.
        let due = self.store.due_pull_retries(module, 2_000).await?;
        if !due.is_empty() {
            let asked = Utc::now();
            report.pulled.add(
                self.pull_ids(round, module, &due, FailedVersions::TryAgain)
                    .await?,
            );
            // One read again that needed nothing (it agrees with the desk, or the desk's newer
            // edit stands) has nothing left to wait for.
            self.store
                .resolve_settled_pulls(module, &due, asked)
                .await?;
        }
        // Links whose record was never read (kept from before records were) are read a page
        // at a time, so that their panels show the whole record too.
        let unread = self.store.links_without_fields(module, 2_000).await?;
        if !unread.is_empty() {
            report.pulled.add(
                self.pull_ids(round, module, &unread, FailedVersions::TryAgain)
                    .await?,
            );
            // Marked only once read: a read cut short leaves them for the next round.
            self.store.settle_unread_links(module, &unread).await?;
        }
        Ok(())
    }

    /// Desk edits are not pushed one way: they wait for the sync to turn two-way, each
    /// record once however often it was edited.
    async fn compact_outbox(&self, round: &Round, module: Module) -> Result<(), SyncError> {
        if !self.store.outbox_repeats(module).await? {
            return Ok(());
        }
        round.still_current(&self.integrations).await?;
        let mut batch = self.store.begin_sync().await?;
        // Turned two-way since, a push may be reading the rows: they are its to settle.
        if batch.sync_type().await?.as_deref() != Some(SyncType::SalesforceToDesk.as_str()) {
            return Err(SyncError::Stopped);
        }
        batch.compact_outbox(module).await?;
        batch.commit().await?;
        Ok(())
    }

    /// The org's daily API allocation as the last round saw it: calls used and the most
    /// allowed, from the `Sforce-Limit-Info` header.
    pub async fn api_usage(&self) -> Result<Option<(i64, i64)>, SyncError> {
        Ok(self
            .integrations
            .current()
            .await?
            .and_then(|m| Some((m.api_used?, m.api_max?))))
    }

    async fn record_usage(&self, client: &SalesforceClient) -> Result<(), SyncError> {
        if let Some(usage) = client.api_usage() {
            let (used, max) = (usage.used as i64, usage.max as i64);
            self.store
                .update_integration(|m| {
                    m.api_used = Set(Some(used));
                    m.api_max = Set(Some(max));
                })
                .await?;
        }
        Ok(())
    }

    /// Ends a batch: its history entry (when it moved anything) commits with it; the entry
    /// and the batch's failures are broadcast once committed.
    pub(super) async fn finish(
        &self,
        mut batch: crate::store::SyncBatch<'_>,
        direction: Direction,
        module: Module,
        counts: Counts,
    ) -> Result<Counts, SyncError> {
        if !counts.is_empty() {
            batch
                .history(
                    direction,
                    module,
                    (counts.added, counts.updated, counts.failed),
                )
                .await?;
        }
        batch.commit().await?;
        Ok(counts)
    }
}

/// Whether the planner's statistics are due after this many batches of a bulk phase: after
/// 10, 20, 40, … — as often as the tables double.
pub(super) fn statistics_due(batches: u32) -> bool {
    batches.is_multiple_of(10) && (batches / 10).is_power_of_two()
}

/// Refuses, naming it, a mapped Salesforce field the org does not show the integration user
/// (hidden from it, or deleted): every query naming it would fail.
pub(super) async fn mapped_fields_seen(round: &Round, module: Module) -> Result<(), SyncError> {
    let object = module.salesforce_object();
    let describe = round.client.describe(object).await?;
    let Some(unseen) = round
        .mappings(module)
        .iter()
        .find(|m| describe.field(&m.salesforce_field).is_none())
    else {
        return Ok(());
    };
    // Read afresh next round: access may be granted meanwhile.
    round.client.forget_describe(object);
    Err(SyncError::FieldGone(format!(
        "{object}.{field}, mapped from the desk's {desk}, is not a field the integration user can see: give the user access to it in Salesforce, or map {desk} to another field (updateFieldMappings)",
        field = unseen.salesforce_field,
        desk = unseen.desk_field,
    )))
}

/// What the integration's status shows while rounds stop on `why` and are retried.
fn stopped(why: &str) -> String {
    format!(
        "the last sync round stopped at {}: {why}; it is retried",
        Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    )
}

fn idle(why: &str) -> RoundReport {
    RoundReport {
        idle: Some(why.to_owned()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of the URL a query travels in, with every byte that is not unreserved
    /// percent-encoded.
    fn url_length(soql: &str) -> usize {
        "https://acme.my.salesforce.com/services/data/v62.0/query?q=".len()
            + soql
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        1
                    } else {
                        3
                    }
                })
                .sum::<usize>()
    }

    fn queries(keys: &[String]) -> Vec<String> {
        let field = Ident::parse("Name").unwrap();
        url_sized(keys)
            .map(|chunk| {
                Select::new("Account", &["Id", "Name"])
                    .unwrap()
                    .filter(Condition::in_list(
                        &field,
                        chunk.iter().map(|k| Literal::Text(k.clone())),
                    ))
                    .build()
            })
            .collect()
    }

    #[test]
    fn keys_go_out_in_queries_whose_urls_salesforce_accepts() {
        // Account names of Salesforce's full 255 characters, quotes, spaces and accents
        // included: every byte of them needs encoding, some need escaping too.
        let long: Vec<String> = (0..300)
            .map(|n| format!("{n} O'Brien & Søn's — «{}»", "é".repeat(110)))
            .collect();
        let sent = queries(&long);
        assert!(sent.len() > 1);
        for soql in &sent {
            assert!(url_length(soql) < 16_384, "{}", url_length(soql));
        }
        let chunks: Vec<&[String]> = url_sized(&long).collect();
        assert_eq!(chunks.concat(), long, "every key, once, in order");

        // Emails go two or three hundred a query, not one each.
        let emails: Vec<String> = (0..1_000)
            .map(|n| format!("customer.{n}@example.com"))
            .collect();
        let sent = queries(&emails);
        assert!(sent.len() <= 4, "{} queries", sent.len());
        assert!(sent.iter().all(|soql| url_length(soql) < 16_384));
    }

    #[test]
    fn a_key_too_long_for_any_budget_still_goes_alone() {
        let huge = vec!["x".repeat(20_000), "y".into()];
        let chunks: Vec<&[String]> = url_sized(&huge).collect();
        assert_eq!(chunks.len(), 2);
    }
}
