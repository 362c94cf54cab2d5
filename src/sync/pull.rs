//! Salesforce → desk: changed records found by SystemModstamp, applied page by page with the
//! cursor advanced in the same transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::record_link;
use futures_util::TryStreamExt;
use serde_json::{Map, Value};

use super::SyncError;
use super::desk::{self, DeskRecord};
use super::engine::{Counts, Round, SyncEngine, statistics_due};
use super::mapping::Mapping;
use super::push::{DESK_ID_FIELD, read_desk_ref};
use super::records::{
    AccountLinks, NewRecord, SalesforceValues, apply_to_desk, blank, field, from_salesforce, hash,
    mapped_desk_value, reason_for, salesforce_account, to_salesforce, unknown_account,
};
use crate::domain::{ContactId, Direction, FailureReason, Invalid, Module, SyncType};
use crate::salesforce::soql::{Condition, Ident, Literal, Select};
use crate::salesforce::{Record, SalesforceError};
use crate::store::{NewFailure, NewLink, SyncBatch};

/// One changed Salesforce record.
pub(super) struct Incoming {
    pub(super) id: String,
    modstamp: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    values: SalesforceValues,
    hash: String,
    /// Every field read, as the link keeps them.
    pub(super) profile: String,
    /// What it is matched on the first time it meets the desk.
    key: Option<String>,
    /// The desk record a push created it from (`Helpdesk_Id__c`), when it says.
    pub(super) desk_ref: Option<i64>,
    /// The desk record it makes if it is new, or why the desk refuses it; taken by the create.
    new: Option<Result<NewRecord, Invalid>>,
}

impl Incoming {
    /// What a page of Salesforce records says, in the mapped desk fields' terms. Pure work on
    /// the records, done as pages arrive, beside the writing of the page before.
    fn read(
        module: Module,
        mappings: &[Mapping],
        desk_tag: &str,
        records: Vec<Record>,
    ) -> Result<Vec<Incoming>, SyncError> {
        records
            .into_iter()
            .map(|r| {
                let values = from_salesforce(mappings, module, &r);
                Ok(Incoming {
                    new: Some(NewRecord::read(mappings, module, &values)),
                    key: mapped_desk_value(mappings, module, &values, desk::match_field(module))
                        .as_ref()
                        .and_then(desk::key_of),
                    id: r
                        .get("Id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    modstamp: datetime(&r, "SystemModstamp")?,
                    last_modified: datetime(&r, "LastModifiedDate")?,
                    hash: hash(&values),
                    values,
                    desk_ref: field(&r, DESK_ID_FIELD).and_then(|v| read_desk_ref(desk_tag, v)),
                    profile: profile(r),
                })
            })
            .collect()
    }

    /// Links the desk record to this Salesforce record as read, and resolves their failures.
    async fn link(
        &self,
        batch: &mut SyncBatch<'_>,
        module: Module,
        desk_id: i64,
    ) -> Result<(), SyncError> {
        self.link_as(batch, module, desk_id, None).await
    }

    /// [`Self::link`]; where the desk took this version only in `part`, the link holds what
    /// the two sides agree on, and the failure of the read stays open (`Partial::log`).
    async fn link_as(
        &self,
        batch: &mut SyncBatch<'_>,
        module: Module,
        desk_id: i64,
        part: Option<&Partial>,
    ) -> Result<(), SyncError> {
        let (hash, profile) = part.map_or((&self.hash, &self.profile), |p| (&p.hash, &p.profile));
        batch
            .link(
                module,
                desk_id,
                &self.id,
                hash,
                Some(self.modstamp),
                Some(profile),
            )
            .await?;
        match part {
            None => batch.resolve(module, Some(desk_id), Some(&self.id)).await?,
            // The desk record holds what it took: its failures of going out are over.
            Some(_) => batch.resolve_push(module, desk_id).await?,
        }
        Ok(())
    }
}

/// A Salesforce version the desk took only in part: what a link to it holds (the desk's own
/// values in place of those it could not take, so that no push sends them over
/// Salesforce's, and a read of the same version again is no agreement), and why the rest
/// waits in the failure log, as a pull the desk refused does, until Salesforce's value
/// changes or the mapping does.
struct Partial {
    hash: String,
    profile: String,
    failure: NewFailure,
}

impl Partial {
    /// The part of `inc` the desk record `desk_id` took, `own` holding the values it kept
    /// where it could not take Salesforce's (`untaken`); `None` when it took all.
    fn of(
        round: &Round,
        (module, inc): (Module, &Incoming),
        (desk_id, own): (i64, &Map<String, Value>),
        untaken: &[Invalid],
    ) -> Option<Partial> {
        if untaken.is_empty() {
            return None;
        }
        let mut profile: Map<String, Value> =
            serde_json::from_str(&inc.profile).unwrap_or_default();
        let mut agreed = inc.values.clone();
        let ours = to_salesforce(
            round.mappings(module),
            module,
            own,
            &AccountLinks::default(),
            None,
        );
        let mut fields = Vec::new();
        for mapping in round.mappings(module) {
            if untaken.iter().any(|i| i.field == mapping.desk_field) {
                let kept = ours
                    .get(&mapping.salesforce_field)
                    .cloned()
                    .unwrap_or(Value::Null);
                profile.insert(mapping.salesforce_field.clone(), kept.clone());
                agreed.insert(mapping.salesforce_field.clone(), kept);
                fields.push(mapping.salesforce_field.as_str());
            }
        }
        let why: Vec<String> = untaken.iter().map(ToString::to_string).collect();
        Some(Partial {
            hash: hash(&agreed),
            profile: Value::Object(profile).to_string(),
            failure: NewFailure {
                direction: Direction::SalesforceToDesk,
                module,
                desk_id: Some(desk_id),
                salesforce_id: Some(inc.id.clone()),
                reason: reason_for(&untaken[0]),
                message: format!(
                    "Salesforce {} {} is linked to desk record {desk_id}, but the desk cannot hold its {} ({}); the desk keeps its own value and Salesforce its, until the value is changed in Salesforce to one the desk can hold or the field is mapped to a desk field that can",
                    module.salesforce_object(),
                    inc.id,
                    fields.join(", "),
                    why.join("; "),
                ),
                modstamp: Some(inc.modstamp),
                match_key: None,
            },
        })
    }
}

/// A desk record as a batch read it, with its changes waiting then.
struct Held {
    record: DeskRecord,
    waiting: Vec<i64>,
    /// In the recycle bin since before Salesforce last saved its twin: written, it stays
    /// there.
    stays_binned: bool,
}

fn ident(name: &str) -> Result<Ident, SyncError> {
    Ok(Ident::parse(name)?)
}

/// Expired query locators one pull reads on past before it gives up: a locator goes after
/// about fifteen minutes unused, so more than this is a round that keeps stalling.
const LOCATORS_LOST: u32 = 3;

/// Fields that change without the record changing (so without a new `SystemModstamp`): kept,
/// they would make every poll that re-reads a record write its link again.
const VOLATILE: [&str; 2] = ["LastViewedDate", "LastReferencedDate"];

/// How long the field list of a pull may grow, in bytes of URL: the query travels in one,
/// which Salesforce caps at 16,384 bytes, and `pull_ids` adds its ids.
const FIELD_LIST_BUDGET: usize = 8_000;

/// What a field costs of [`FIELD_LIST_BUDGET`]: its name, and the `, ` after it as a URL
/// carries it at its longest (`%2C%20`).
fn listed(name: &str) -> usize {
    name.len() + 6
}

/// What a read does with a record whose very version failed to apply and still waits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FailedVersions {
    /// Leaves it to its failure's retry: a poll, or a push reading the twins it sends over.
    Skip,
    /// Applies it again: the record's retry, asked for or due.
    TryAgain,
}

/// `SELECT Id, SystemModstamp, LastModifiedDate, <mapped fields>, <other fields> FROM
/// <object>`: the mapped fields feed the desk, and the whole record is the profile a panel
/// shows. Compound fields (addresses, geolocations) repeat their parts, binary ones are not
/// read, and neither are calculated or volatile ones; past the budget, other fields are left
/// out rather than the query refused.
async fn select_all(round: &Round, module: Module) -> Result<Select, SyncError> {
    let describe = round.client.describe(module.salesforce_object()).await?;
    // Who made it and when, for a record that may be a create whose answer was lost.
    let mut fields = vec![
        "Id",
        "SystemModstamp",
        "LastModifiedDate",
        "CreatedById",
        "CreatedDate",
        // Who saved it last: a record the sync pushed is told from one a person changed since.
        "LastModifiedById",
    ];
    if describe.field(DESK_ID_FIELD).is_some() {
        fields.push(DESK_ID_FIELD);
    }
    for m in round.mappings(module) {
        if !fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case(&m.salesforce_field))
        {
            fields.push(&m.salesforce_field);
        }
    }
    let mut length: usize = fields.iter().map(|f| listed(f)).sum();
    let others = describe.fields.iter().filter(|f| {
        !f.calculated
            && !matches!(&*f.kind, "address" | "location" | "base64" | "complexvalue")
            && !VOLATILE.contains(&&*f.name)
    });
    for field in others {
        if length + listed(&field.name) > FIELD_LIST_BUDGET {
            break;
        }
        if !fields.iter().any(|f| f.eq_ignore_ascii_case(&field.name)) {
            length += listed(&field.name);
            fields.push(&field.name);
        }
    }
    Ok(Select::new(module.salesforce_object(), &fields)?)
}

/// How many ids one read by id names: they travel in the query's URL beside the field list,
/// and 200 keep it well inside Salesforce's limit.
pub(super) const READ_BY_ID: usize = 200;

/// Reads whole records by id (at most [`READ_BY_ID`]), in id order; deleted ones are missing.
pub(super) async fn read_ids(
    round: &Round,
    module: Module,
    ids: &[String],
) -> Result<Vec<Incoming>, SyncError> {
    let id = ident("Id")?;
    let soql = select_all(round, module)
        .await?
        .filter(Condition::in_list(
            &id,
            ids.iter().map(|i| Literal::Text(i.clone())),
        ))
        .order_by(&id, true)
        .build();
    let records: Vec<Record> = round.client.query(&soql).try_collect().await?;
    Incoming::read(module, round.mappings(module), &round.desk_tag, records)
}

/// Fills the blank fields of `values` (null or empty) with what `from` holds there; the
/// fields filled.
fn fill_blanks(values: &mut Map<String, Value>, from: Map<String, Value>) -> HashSet<String> {
    let mut filled = HashSet::new();
    for (field, value) in from {
        if !blank(&value) && values.get(&field).is_none_or(blank) {
            values.insert(field.clone(), value);
            filled.insert(field);
        }
    }
    filled
}

/// Fills the blank fields of a linked desk record (`held`: it, and whether it stays in the
/// recycle bin) that were mapped since its link was last agreed, with Salesforce's values
/// (`inc`): a field mapped since holds no desk edit, and a blank there would go out over
/// Salesforce's value. What the desk cannot hold stays Salesforce's, and comes back as the
/// part taken, whose profile holds the desk's blank there, so that no push sends it.
async fn fill_newly_mapped(
    batch: &mut SyncBatch<'_>,
    round: &Round,
    (module, inc): (Module, &Incoming),
    link: &record_link::Model,
    (record, stays_binned): (DeskRecord, bool),
    accounts: &AccountLinks,
) -> Result<Option<Partial>, SyncError> {
    let own = record.values();
    let mut values = own.clone();
    let mut theirs = own.clone();
    apply_to_desk(
        round.mappings(module),
        module,
        &inc.values,
        &mut theirs,
        accounts,
    );
    let newly = round.mapped_after(module, link.updated_at);
    theirs.retain(|field, _| newly.contains(field));
    let mut filled = fill_blanks(&mut values, theirs);
    let mut untaken = keep_own_where_taken_cannot_be_held(module, &mut values, &own, &mut filled);
    if !filled.is_empty()
        && let Err(invalid) = desk::save(batch, module, Some(record), values, stays_binned).await?
    {
        untaken.push(invalid);
    }
    Ok(Partial::of(
        round,
        (module, inc),
        (link.desk_id, &own),
        &untaken,
    ))
}

/// The fields whose value `values` takes over the desk record's `own`.
fn taken_over(values: &Map<String, Value>, own: &Map<String, Value>) -> HashSet<String> {
    values
        .iter()
        .filter(|(field, value)| own.get(*field) != Some(*value))
        .map(|(field, _)| field.clone())
        .collect()
}

/// Puts the desk's `own` value back in each field `taken` from Salesforce that the desk
/// cannot hold (longer than its field, a negative revenue), rather than failing the meeting;
/// those fields leave `taken`, and come back with why.
fn keep_own_where_taken_cannot_be_held(
    module: Module,
    values: &mut Map<String, Value>,
    own: &Map<String, Value>,
    taken: &mut HashSet<String>,
) -> Vec<Invalid> {
    let mut untaken = Vec::new();
    while let Err(invalid) = desk::valid(module, values) {
        if !taken.remove(&invalid.field) {
            break;
        }
        let kept = own.get(&invalid.field).cloned().unwrap_or(Value::Null);
        values.insert(invalid.field.clone(), kept);
        untaken.push(invalid);
    }
    untaken
}

/// The fields a panel shows of a record: all that were read but the sync's own bookkeeping,
/// which changes with every write and says nothing about the customer.
fn profile(mut record: Record) -> String {
    for bookkeeping in ["attributes", "SystemModstamp", "LastModifiedDate"] {
        record.remove(bookkeeping);
    }
    // Straight into bytes: `Display` would pass every piece through a formatter. A map of
    // JSON values always serializes.
    serde_json::to_string(&record).unwrap_or_else(|_| Value::Object(record).to_string())
}

/// Whether a record read as `profile` holds every value a create sent (`sent`, as noted).
fn holds_what_was_sent(sent: &str, profile: &str) -> bool {
    serde_json::from_str::<SalesforceValues>(sent)
        .is_ok_and(|sent| super::records::changed_since(&sent, Some(profile)).is_empty())
}

/// Whether someone saved a linked record in Salesforce since the sync last read or wrote it:
/// saved after the read, by its `LastModifiedDate` (`SystemModstamp` moves also when the
/// org's automation touches the record, a roll-up summary recalculated, which no one
/// saved). A push leaves the stamp of the version it made unknown. Then the record's last
/// modifier says: anyone but the integration user (`ours.0`) changed it since. Without one
/// to go by, the link holds the record as the push left it, and another value read now in a
/// field a person may edit (`ours.1`) is Salesforce's change; the rest change with the push
/// itself (a name made of the names sent, formulas).
fn changed_since_read(
    link: &entity::record_link::Model,
    (saved, profile): (DateTime<Utc>, &str),
    ours: (Option<&str>, &HashSet<String>),
) -> bool {
    if let Some(read) = link.salesforce_modstamp {
        return saved > read;
    }
    let Some(left) = link.salesforce_fields.as_deref() else {
        return false;
    };
    let (user, editable) = ours;
    match by_another(user, profile) {
        Some(another) => another,
        None => !same_values_in(left, profile, editable),
    }
}

/// Whether someone other than the integration `user` last modified the record read as
/// `profile` (its `LastModifiedById`); `None` when either is unknown.
fn by_another(user: Option<&str>, profile: &str) -> Option<bool> {
    let user = user?;
    let now = serde_json::from_str::<Map<String, Value>>(profile).ok()?;
    let by = now.get("LastModifiedById")?.as_str()?;
    // Ids of 15 and 18 characters name one user by their first 15.
    Some(by.get(..15) != user.get(..15))
}

/// Whether every field of `editable` held in `left` holds the same value in `profile`
/// (numbers compared as numbers: `5000000` sent is `5000000.0` read).
fn same_values_in(left: &str, profile: &str, editable: &HashSet<String>) -> bool {
    let (Ok(Value::Object(left)), Ok(Value::Object(now))) = (
        serde_json::from_str::<Value>(left),
        serde_json::from_str::<Value>(profile),
    ) else {
        return false;
    };
    left.iter()
        .filter(|(field, _)| editable.contains(field.as_str()))
        .all(|(field, value)| match (now.get(field), value) {
            (None, _) => true,
            (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Some(now), value) => now == value,
        })
}

/// The fields of a module's Salesforce object a person may edit, as its describe says.
async fn editable_fields(round: &Round, module: Module) -> Result<HashSet<String>, SyncError> {
    let describe = round.client.describe(module.salesforce_object()).await?;
    Ok(describe
        .fields
        .iter()
        .filter(|f| f.updateable && !f.calculated)
        .map(|f| f.name.clone())
        .collect())
}

/// Whether a record read now (`profile`, as [`profile`] makes it) is the version read before
/// (`read`): its stamp alone cannot tell, as Salesforce stamps to the second and two saves
/// within one second share it. Every field read before holds the same value; a field the org
/// has gained since (made to be mapped, say) is no edit.
///
/// A version the desk took only in part is linked holding the desk's own values in place of
/// those it could not take (see [`Partial`]): those fields (`untaken`, as Salesforce names
/// them) say nothing of the version.
fn same_version(read: &str, profile: &str, untaken: &[String]) -> bool {
    let (Ok(Value::Object(read)), Ok(Value::Object(now))) = (
        serde_json::from_str::<Value>(read),
        serde_json::from_str::<Value>(profile),
    ) else {
        return false;
    };
    read.iter().all(|(field, value)| {
        now.get(field).is_none_or(|v| v == value) || untaken.iter().any(|u| u == field)
    })
}

/// Why the desk record holding `own` cannot take each of the fields of `inc` it cannot, as
/// a read of it finds them (see [`keep_own_where_taken_cannot_be_held`]).
fn untaken(
    mappings: &[Mapping],
    (module, inc): (Module, &Incoming),
    own: &Map<String, Value>,
    accounts: &AccountLinks,
) -> Vec<Invalid> {
    let mut values = own.clone();
    apply_to_desk(mappings, module, &inc.values, &mut values, accounts);
    let mut taken = taken_over(&values, own);
    keep_own_where_taken_cannot_be_held(module, &mut values, own, &mut taken)
}

/// Of the desk fields `untaken`, those whose value the link holds in Salesforce's place as
/// the desk holds it now (`own`): unchanged since the version was taken in part.
fn unchanged_since_kept(
    mappings: &[Mapping],
    (module, own, accounts): (Module, &Map<String, Value>, &AccountLinks),
    link: &record_link::Model,
    untaken: Vec<Invalid>,
) -> Vec<Invalid> {
    let held: Map<String, Value> = link
        .salesforce_fields
        .as_deref()
        .and_then(|read| serde_json::from_str(read).ok())
        .unwrap_or_default();
    let ours = to_salesforce(
        mappings,
        module,
        own,
        accounts,
        link.kept_account_id.as_deref(),
    );
    untaken
        .into_iter()
        .filter(|invalid| {
            mappings
                .iter()
                .filter(|m| m.desk_field == invalid.field)
                .all(|m| {
                    let ours = ours.get(&m.salesforce_field).unwrap_or(&Value::Null);
                    held.get(&m.salesforce_field).unwrap_or(&Value::Null) == ours
                })
        })
        .collect()
}

/// The Salesforce fields mapped to the desk fields `untaken` names.
fn salesforce_fields_of(mappings: &[Mapping], untaken: &[Invalid]) -> Vec<String> {
    mappings
        .iter()
        .filter(|m| untaken.iter().any(|i| i.field == m.desk_field))
        .map(|m| m.salesforce_field.clone())
        .collect()
}

/// Where each module's pull stands against late commits, in this process. A transaction may
/// commit up to the overlap after the `SystemModstamp` it gives its records, so each poll reads
/// again a window before the cursor. Once a pull begun an overlap after the cursor was reached
/// has read that window, nothing stamped at or before the cursor can still appear, and polls
/// read only what is newer: a quiet org costs one query a poll, however many records the last
/// burst of changes stamped within the overlap.
#[derive(Default)]
pub(super) struct Settled(std::sync::Mutex<HashMap<Module, Settling>>);

struct Settling {
    /// The cursor's `SystemModstamp`.
    at: DateTime<Utc>,
    /// When a pull of this process first ended with the cursor there.
    reached: std::time::Instant,
    /// Whether a pull begun an overlap after `reached` has read the window again.
    settled: bool,
}

impl Settled {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Module, Settling>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether nothing stamped at or before `at` can still appear.
    fn settled(&self, module: Module, at: DateTime<Utc>) -> bool {
        self.lock()
            .get(&module)
            .is_some_and(|s| s.at == at && s.settled)
    }

    /// A pull begun at `began` ended with the cursor at `at`.
    fn pulled(
        &self,
        module: Module,
        at: Option<DateTime<Utc>>,
        began: std::time::Instant,
        overlap: std::time::Duration,
    ) {
        let mut modules = self.lock();
        let Some(at) = at else {
            modules.remove(&module);
            return;
        };
        match modules.get_mut(&module) {
            Some(settling) if settling.at == at => {
                settling.settled |= settling
                    .reached
                    .checked_add(overlap)
                    .is_some_and(|settles| began >= settles);
            }
            _ => {
                modules.insert(
                    module,
                    Settling {
                        at,
                        reached: std::time::Instant::now(),
                        settled: false,
                    },
                );
            }
        }
    }
}

/// Account links a pull keeps between pages at most (a few megabytes); past that it starts
/// again, looking up what the next pages name.
const ACCOUNT_LINKS_KEPT: usize = 50_000;

/// The name of the cursor a module's pull keeps: the `SystemModstamp` (and id) read up to.
pub(super) fn cursor_of(module: Module) -> String {
    format!("{}{module}", crate::store::PULL_CURSORS)
}

fn datetime(record: &Record, field: &str) -> Result<DateTime<Utc>, SyncError> {
    record
        .get(field)
        .and_then(Value::as_str)
        .and_then(crate::salesforce::parse_datetime)
        .ok_or_else(|| SalesforceError::Decode(format!("a record has no {field}")).into())
}

impl SyncEngine {
    pub(super) async fn pull(&self, round: &Round, module: Module) -> Result<Counts, SyncError> {
        let began = std::time::Instant::now();
        let mut total = Counts::default();
        let mut expired = 0;
        loop {
            let (written, fetched) = self.pull_query(round, module).await?;
            total = add(total, written);
            match fetched {
                // A locator Salesforce let go (left unused for about fifteen minutes while
                // the round waited) loses nothing: the pages written moved the cursor, and a
                // query of its own reads on from there.
                Err(SyncError::Upstream(SalesforceError::Api { error_code, .. }))
                    if error_code == "INVALID_QUERY_LOCATOR" && expired < LOCATORS_LOST =>
                {
                    expired += 1;
                    tracing::info!(
                        ?module,
                        "a query locator expired; reading on from the cursor"
                    );
                }
                fetched => {
                    fetched?;
                    break;
                }
            }
        }
        let reached = self.store.cursor(&cursor_of(module)).await?;
        self.settled.pulled(
            module,
            reached.and_then(|c| c.modstamp),
            began,
            self.settings.overlap,
        );
        Ok(total)
    }

    /// One query of what changed after the cursor, its pages written as they come: what
    /// they counted, and how the reading ended.
    async fn pull_query(
        &self,
        round: &Round,
        module: Module,
    ) -> Result<(Counts, Result<(), SyncError>), SyncError> {
        let cursor_name = cursor_of(module);
        let cursor = self.store.cursor(&cursor_name).await?;
        let stamp = ident("SystemModstamp")?;
        let id = ident("Id")?;
        let mut select = select_all(round, module).await?;
        match cursor.as_ref().and_then(|c| c.modstamp) {
            Some(at) if self.settled.settled(module, at) => {
                // After the cursor's record, not only after its second: a read cut off
                // within a second's records (a re-read after the cursor was reset, say) ends
                // at a cursor whose second this process may have settled before.
                let after = match cursor.as_ref().and_then(|c| c.salesforce_id.clone()) {
                    Some(last) => Condition::Or(vec![
                        Condition::gt(&stamp, at),
                        Condition::And(vec![
                            Condition::eq(&stamp, at),
                            Condition::gt(&id, Literal::Text(last)),
                        ]),
                    ]),
                    None => Condition::gt(&stamp, at),
                };
                select = select.filter(after);
            }
            Some(at) => {
                // Polling, or resuming a first sync that stopped: a window before the cursor
                // is read again for transactions that committed after the last read yet were
                // stamped before its last record; hashes make the re-read records no-ops.
                let overlap = chrono::Duration::from_std(self.settings.overlap).unwrap_or_default();
                select = select.filter(Condition::gte(&stamp, at - overlap));
            }
            None => {}
        }
        let soql = select.order_by(&stamp, true).order_by(&id, true).build();
        // The next page is fetched and read on a task of its own while this one is written:
        // pages pass through a channel of one, so at most three pages are in memory.
        let batch = self.settings.pull_batch;
        // Before the query is sent: the org's clock then bounds what it stamped before the
        // query began (see `apply`).
        let asked = std::time::Instant::now();
        let asked_here = Utc::now();
        let (pages, mut arrived) = tokio::sync::mpsc::channel::<Vec<Incoming>>(1);
        let client = round.client.clone();
        let mappings = round.mappings(module).to_vec();
        let desk_tag = round.desk_tag.clone();
        let mut fetch = Task(tokio::spawn(async move {
            let mut records = std::pin::pin!(client.query(&soql));
            let mut chunk = Vec::with_capacity(batch);
            while let Some(record) = records.try_next().await? {
                chunk.push(record);
                if chunk.len() >= batch
                    && pages
                        .send(Incoming::read(
                            module,
                            &mappings,
                            &desk_tag,
                            std::mem::take(&mut chunk),
                        )?)
                        .await
                        .is_err()
                {
                    return Ok(());
                }
            }
            if !chunk.is_empty() {
                let _ = pages
                    .send(Incoming::read(module, &mappings, &desk_tag, chunk)?)
                    .await;
            }
            Ok::<(), SyncError>(())
        }));
        // Owning the receiver, a failed write drops it, and the fetch stops at its next send.
        let write = async move {
            let mut total = Counts::default();
            let mut batches = 0u32;
            // The account links the phase's pages found so far, up to a bound: an org of
            // a million contacts in as many accounts would otherwise hold them all.
            let mut known = HashMap::new();
            while let Some(chunk) = arrived.recv().await {
                if known.len() > ACCOUNT_LINKS_KEPT {
                    known.clear();
                }
                batches += 1;
                if statistics_due(batches) {
                    self.store.refresh_statistics();
                }
                // With no clock of the org's to go by (no answer gave a `Date` near this
                // host's), the earlier of this host's an hour back (as far behind as the
                // org's may be and still be taken) and the `Date` answers gave: records
                // stamped since are read again by the next poll, as no-ops.
                let floor = round.client.org_time_at(asked).unwrap_or_else(|| {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        tracing::warn!(
                            "Salesforce's answers give no time within an hour of this host's clock; polls read changes again from an hour or more back until they do (check the host's clock)"
                        );
                    });
                    let host = asked_here - crate::salesforce::ORG_CLOCK_SKEW;
                    round
                        .client
                        .stated_time_at(asked)
                        .map_or(host, |stated| stated.min(host))
                });
                let counts = self
                    .apply(
                        round,
                        module,
                        Some((&cursor_name, Some(floor))),
                        &mut known,
                        chunk,
                        FailedVersions::Skip,
                    )
                    .await;
                total = add(total, counts?);
            }
            Ok::<Counts, SyncError>(total)
        };
        let written = write.await;
        let fetched = match (&mut fetch.0).await {
            Ok(fetched) => fetched,
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            Err(_) => Err(SyncError::WrongState(
                "the sync round was stopped while reading Salesforce".into(),
            )),
        };
        if let Err(SyncError::Upstream(SalesforceError::Api { error_code, .. })) = &fetched
            && error_code == "INVALID_FIELD"
        {
            // A field went away (deleted, or hidden from the integration user) since the
            // describe was read: the next round reads it again and asks for what exists. A
            // mapped one is named.
            round.client.forget_describe(module.salesforce_object());
            super::engine::mapped_fields_seen(round, module).await?;
        }
        Ok((written?, fetched))
    }

    /// Fetches these Salesforce records again and applies them, as a retry does.
    pub(super) async fn pull_ids(
        &self,
        round: &Round,
        module: Module,
        ids: &[String],
        failed: FailedVersions,
    ) -> Result<Counts, SyncError> {
        let mut total = Counts::default();
        for chunk in ids.chunks(READ_BY_ID) {
            let incoming = read_ids(round, module, chunk).await?;
            let gone: Vec<&String> = chunk
                .iter()
                .filter(|id| !incoming.iter().any(|i| &i.id == *id))
                .collect();
            if !gone.is_empty() {
                // Deleted in Salesforce since it failed: there is nothing left to sync, and a
                // failure waiting for it would be read again every round.
                let mut batch = self.store.begin_sync().await?;
                for id in gone {
                    batch.resolve_pull(module, id).await?;
                }
                batch.commit().await?;
            }
            total = add(
                total,
                self.apply(round, module, None, &mut HashMap::new(), incoming, failed)
                    .await?,
            );
        }
        Ok(total)
    }

    /// Applies one page of Salesforce records in one desk transaction, moving the cursor
    /// (when given, with the org's time as the query began at the latest) to the page's last
    /// record in the query's order in the same transaction.
    async fn apply(
        &self,
        round: &Round,
        module: Module,
        cursor: Option<(&str, Option<DateTime<Utc>>)>,
        known: &mut HashMap<String, i64>,
        mut incoming: Vec<Incoming>,
        failed_versions: FailedVersions,
    ) -> Result<Counts, SyncError> {
        let mappings = round.mappings(module);
        let editable = editable_fields(round, module).await?;
        let identity = round.client.identity_url().await?;
        let user = identity.as_deref().and_then(super::lost::user_of);
        let ids: Vec<String> = incoming.iter().map(|i| i.id.clone()).collect();
        let keys: Vec<String> = incoming.iter().filter_map(|i| i.key.clone()).collect();
        // What the page needs to know, read side by side with whether the round may still
        // write: its links, the desk ids of the accounts it names, the unlinked desk records
        // it may meet for the first time.
        let ((), links, mut accounts, mut candidates, open_failures) = tokio::try_join!(
            round.still_current(&self.integrations),
            async { Ok::<_, SyncError>(self.store.links_by_salesforce(module, &ids).await?) },
            self.account_links_for(module, &incoming, known),
            desk::unlinked_by_match_key(&self.store, module, &keys),
            async { Ok(self.store.has_open_failures(module).await?) },
        )?;
        // Unlinked records a deleted integration had linked, in this org: each names the desk
        // record it was linked to, as one a push created names its own.
        if round.former_links {
            let unnamed: Vec<String> = incoming
                .iter()
                .filter(|i| i.desk_ref.is_none() && !links.contains_key(&i.id))
                .map(|i| i.id.clone())
                .collect();
            let former = self.store.former_links(module, &unnamed).await?;
            for inc in incoming.iter_mut().filter(|i| i.desk_ref.is_none()) {
                inc.desk_ref = former.get(&inc.id).copied();
            }
        }
        // Records that name the desk record a push created them from, yet have no link: the
        // push's link was lost (a crash between Salesforce's answer and the commit), or the
        // integration deleted (above). They meet that record, when it is still unlinked,
        // before anything is matched by key.
        let refs: Vec<i64> = incoming
            .iter()
            .filter(|i| !links.contains_key(&i.id))
            .filter_map(|i| i.desk_ref)
            .collect();
        let linked_refs = self.store.links_by_desk(module, &refs).await?;
        let refs: Vec<i64> = refs
            .into_iter()
            .filter(|r| !linked_refs.contains_key(r))
            .collect();
        if !refs.is_empty() {
            // A desk record a Salesforce record names as its own is no other's candidate.
            for found in candidates.values_mut() {
                found.retain(|d| !refs.contains(&d.id()));
            }
        }
        let contested = self
            .contested_keys(round, module, &incoming, &links, &refs, &candidates)
            .await?;
        for key in contested.keys() {
            candidates.remove(key);
        }

        // The versions that failed and still wait: the polling window reads recent records
        // again each round, and a push reads the twins it sends over, and such a version is
        // left to its failure's retry, not logged once more (`FailedVersions::Skip`); read
        // again, one taken in part is known by it. Read before the batch, as every read
        // outside it is: a batch holding desk rows locked waits for no connection of the pool.
        let failing = if open_failures {
            self.store.failed_versions(module, &ids).await?
        } else {
            HashMap::new()
        };
        // Creates sent whose answer never came, which a record of this page may be.
        let in_doubt = self.store.pending_creates(module).await?;
        let mut batch = self.store.begin_sync().await?;
        // The desk records the page may write over, read again inside the batch with their
        // waiting changes: a desk edit committed since the lookups above is seen and judged,
        // not overwritten, and on PostgreSQL none commits between this read and the write.
        let mut rewritten: Vec<i64> = links.values().map(|l| l.desk_id).collect();
        rewritten.extend(
            candidates
                .values()
                .filter(|found| found.len() == 1)
                .map(|found| found[0].id()),
        );
        rewritten.extend(&refs);
        let mut desk = desk::load_for_update(&batch, module, &rewritten).await?;
        let pending = batch.outbox_waiting(module, &rewritten).await?;
        // A desk edit Salesforce refused is still the desk's newer word, though it left the
        // outbox: re-reading an older Salesforce record must not undo it.
        let refused = if open_failures {
            batch.refused_pushes(module, &rewritten).await?
        } else {
            HashSet::new()
        };
        if module == Module::Contacts {
            // Which of these contacts' desk accounts Salesforce knows (linked ones and those
            // meeting their twin alike): one it does not know stays on the contact when
            // Salesforce shows no account.
            let desk_accounts: Vec<i64> = desk
                .values()
                .filter_map(|d| d.values().get("accountId").and_then(Value::as_i64))
                .collect();
            accounts.to_salesforce = batch
                .salesforce_ids_by_desk(Module::Accounts, &desk_accounts)
                .await?;
        }
        let mut own: HashMap<i64, DeskRecord> = refs
            .iter()
            .filter_map(|r| desk.remove(r).map(|d| (*r, d)))
            .collect();
        for (key, found) in &mut candidates {
            if found.len() == 1 {
                // Purged meanwhile, the candidate is gone; moved to the bin, or given
                // another key, it is no longer the one the lookup chose: the Salesforce
                // record is new. (One found in the bin, with no live record holding its
                // key, is brought back; restored meanwhile, it is met live.)
                let binned = found[0].deleted();
                *found = desk
                    .remove(&found[0].id())
                    .filter(|d| {
                        (!d.deleted() || binned)
                            && DeskRecord::match_key(module, &d.values()).as_ref() == Some(key)
                    })
                    .into_iter()
                    .collect();
            }
        }

        // Salesforce accounts named that the desk purged: a contact new to the desk in one
        // (or back, its desk record purged too) comes in without it and stays in it in
        // Salesforce (`kept`), as one linked before the purge does. One the desk has, moved
        // there in Salesforce, waits as for any account the desk lacks: its desk account
        // would say otherwise.
        let named: Vec<String> = incoming
            .iter()
            .filter_map(|inc| unknown_account(mappings, module, &inc.values, &accounts))
            .map(str::to_owned)
            .collect();
        let purged = batch.purged_accounts(&named).await?;
        let mut counts = Counts::default();
        let mut creates: Vec<usize> = Vec::new();
        // Records naming a desk record whose create is in doubt: that create's answer,
        // whenever Salesforce committed it.
        let mut named_in_doubt: Vec<(usize, i64)> = Vec::new();
        // Linked records whose desk twin was purged, brought back by this page.
        let mut returned: Vec<usize> = Vec::new();
        // Written without its account, a contact would lose it for good: its link would
        // hold Salesforce's values, and its next desk edit would clear the account in
        // Salesforce. It waits for the account instead.
        // A contact whose desk account was purged stays in its Salesforce account (`kept`)
        // without waiting for it, as does one `new` to the desk in a purged account.
        let waits_for_account = |inc: &Incoming, kept: Option<&str>, new: bool| {
            let account = unknown_account(mappings, module, &inc.values, &accounts)
                .filter(|a| Some(*a) != kept && !(new && purged.contains(*a)))?;
            Some((
                FailureReason::AccountNotSynced,
                format!(
                    "Salesforce Contact {} belongs to Account {account}, which is not in the desk yet; the contact follows once the account is synced (retried automatically for a while, then with retrySyncFailures once the account's own failure is fixed)",
                    inc.id
                ),
            ))
        };
        for (idx, inc) in incoming.iter().enumerate() {
            if failed_versions == FailedVersions::Skip
                && failing.get(&inc.id) == Some(&inc.modstamp)
            {
                continue;
            }
            // Its desk twin purged, the one desk record not linked yet that has its key meets
            // it: a live one, or one in the bin that an update brings back.
            let meets_anew = |link: &record_link::Model| {
                if desk.contains_key(&link.desk_id) {
                    return false;
                }
                match inc
                    .key
                    .as_ref()
                    .and_then(|k| candidates.get(k))
                    .map(Vec::as_slice)
                {
                    Some([only]) => {
                        !only.deleted()
                            || changed_since_read(
                                link,
                                (inc.last_modified, &inc.profile),
                                (user, &editable),
                            )
                    }
                    _ => false,
                }
            };
            let outcome = match links.get(&inc.id) {
                // Nothing mapped changed. Unless Salesforce changed the record since it was
                // last read (if only in fields not mapped) and the desk deleted its twin
                // meanwhile, which brings the twin back: an update is an update. Nor when a
                // desk record is to meet it in its purged twin's place.
                Some(link)
                    if link.synced_hash == inc.hash
                        && !meets_anew(link)
                        && !(desk.get(&link.desk_id).is_none_or(DeskRecord::deleted)
                            && changed_since_read(
                                link,
                                (inc.last_modified, &inc.profile),
                                (user, &editable),
                            )) =>
                {
                    // Back to what was last agreed (a refused edit undone, say): a failure
                    // its earlier version left has nothing left to wait for.
                    if open_failures {
                        batch.resolve_pull(module, &inc.id).await?;
                    }
                    // A push leaves the version it made unknown: read back, it is learnt, so
                    // that a later Salesforce change to fields not mapped shows.
                    if link.salesforce_fields.as_deref() != Some(&*inc.profile)
                        || link.salesforce_modstamp != Some(inc.modstamp)
                    {
                        batch
                            .set_link_fields(link.id, &inc.profile, inc.modstamp)
                            .await?;
                    }
                    continue;
                }
                // The sync's own update, made though its answer never came: linked at it.
                // Desk changes made since still wait in the outbox and go out next, even
                // when someone saved the record again since, in fields not mapped (the note
                // is forgotten once nothing is left to send, so that a person making the
                // very edit later is not taken for it).
                Some(link) if link.sent_hash.as_deref() == Some(inc.hash.as_str()) => {
                    inc.link(&mut batch, module, link.desk_id).await?;
                    continue;
                }
                None if inc.desk_ref.is_none_or(|r| !own.contains_key(&r))
                    && let Some((rivals, desk_id)) =
                        inc.key.as_ref().and_then(|k| contested.get(k)) =>
                {
                    Err((
                        FailureReason::MultipleMatches,
                        format!(
                            "Salesforce {object}s {} share the {key_name} of desk {object} {desk_id}, and none is linked yet, so which is its twin is not clear; merge them in Salesforce or change the {key_name} of all but one, and the next round tries the rest again (deleting all but one there, retry these failures: retrySyncFailures(reason: MULTIPLE_MATCHES))",
                            rivals.join(", "),
                            object = module.salesforce_object(),
                            key_name = desk::match_field(module),
                        ),
                    ))
                }
                // New to the desk: neither a record a push made nor one with its key.
                None if let Some(waiting) = waits_for_account(
                    inc,
                    None,
                    inc.desk_ref.is_none_or(|r| !own.contains_key(&r))
                        && inc
                            .key
                            .as_ref()
                            .and_then(|k| candidates.get(k))
                            .is_none_or(Vec::is_empty),
                ) =>
                {
                    Err(waiting)
                }
                // Its desk twin was purged, and a desk record not linked yet has its key: the
                // two meet as for the first time, rather than the twin coming back beside it.
                Some(link) if meets_anew(link) => {
                    let found = inc.key.as_ref().and_then(|k| candidates.remove(k));
                    let Some(only) = found.and_then(|found| found.into_iter().next()) else {
                        continue;
                    };
                    // The account a purge kept its twin in, it stays in; one the desk record
                    // has of its own is no account kept from the desk.
                    let kept = link
                        .kept_account_id
                        .as_deref()
                        .filter(|_| only.values().get("accountId").is_none_or(Value::is_null));
                    if let Some(waiting) = waits_for_account(inc, kept, false) {
                        Err(waiting)
                    } else {
                        let only = Held {
                            waiting: pending.get(&only.id()).cloned().unwrap_or_default(),
                            record: only,
                            stays_binned: false,
                        };
                        self.first_match(&mut batch, round, module, inc, only, &accounts)
                            .await?
                    }
                }
                Some(link) => {
                    let mut existing = desk.remove(&link.desk_id);
                    // Read again, not changed since it was last read: only the mappings
                    // changed. That is no Salesforce update, so a twin the desk deleted
                    // stays deleted, and below a value Salesforce lacks does not blank the
                    // desk's.
                    // A version the desk took in part still waits in the failure log, and
                    // its link holds the desk's own values where the desk could not take it.
                    let untaken_before = match &existing {
                        Some(d) if failing.get(&inc.id) == Some(&inc.modstamp) => {
                            untaken(mappings, (module, inc), &d.values(), &accounts)
                        }
                        _ => Vec::new(),
                    };
                    let set_aside = salesforce_fields_of(mappings, &untaken_before);
                    let reread = link
                        .salesforce_modstamp
                        .is_some_and(|read| inc.modstamp <= read)
                        && link
                            .salesforce_fields
                            .as_deref()
                            .is_some_and(|read| same_version(read, &inc.profile, &set_aside));
                    if reread && existing.as_ref().is_none_or(DeskRecord::deleted) {
                        // Restored later, a record in the recycle bin goes out as it is: it
                        // takes Salesforce's values in fields mapped since, as one not deleted
                        // would, rather than sending its blanks over them.
                        let part = match existing {
                            Some(record) => {
                                let held = (record, true);
                                fill_newly_mapped(
                                    &mut batch,
                                    round,
                                    (module, inc),
                                    link,
                                    held,
                                    &accounts,
                                )
                                .await?
                            }
                            None => None,
                        };
                        inc.link_as(&mut batch, module, link.desk_id, part.as_ref())
                            .await?;
                        self.log_partial(&mut batch, part).await?;
                        continue;
                    }
                    // Deleted in the desk after Salesforce last saved its twin: that save is
                    // no later update, and the record stays deleted. In the recycle bin it
                    // takes the values as it would have had the save been read before the
                    // delete (a newer desk edit winning over them); purged, or with nothing
                    // mapped changed, only the link learns them. Salesforce stamps whole
                    // seconds: a save in the second of the delete may have followed it, and
                    // brings the record back.
                    let deleted_at = match &existing {
                        Some(record) => record.deleted_at(),
                        None => link.desk_deleted_at,
                    };
                    let before_delete = deleted_at
                        .is_some_and(|at| inc.last_modified + chrono::Duration::seconds(1) <= at);
                    if before_delete && (existing.is_none() || link.synced_hash == inc.hash) {
                        inc.link(&mut batch, module, link.desk_id).await?;
                        continue;
                    }
                    // One way too, a re-read is no Salesforce update to win with: the
                    // desk's edit stays, and waits to go out.
                    let desk_newer = existing.as_ref().is_some_and(|d| {
                        (round.sync_type == SyncType::TwoWay || reread)
                            && (!d.deleted() || before_delete)
                            && (pending.contains_key(&d.id()) || refused.contains(&d.id()))
                            && d.updated_at() > inc.last_modified
                            // A save that changed nothing the sync carries (a restore, a
                            // value typed again) is no edit to win with: Salesforce's stands.
                            && hash(&to_salesforce(
                                mappings,
                                module,
                                &d.values(),
                                &accounts,
                                link.kept_account_id.as_deref(),
                            )) != link.synced_hash
                    });
                    if let Some(record) = existing.take_if(|_| desk_newer) {
                        // The desk's edit goes out and wins; Salesforce's profile is still news,
                        // and so are its values in fields mapped since.
                        let own = record.values();
                        let held = (record, before_delete);
                        let part = fill_newly_mapped(
                            &mut batch,
                            round,
                            (module, inc),
                            link,
                            held,
                            &accounts,
                        )
                        .await?;
                        // Read again, a version taken in part stays so: the link holds the
                        // desk's own values where it could not take Salesforce's, which the
                        // edit going out does not send over them, and the failure waits on.
                        // A field the desk has since changed itself is its edit to send.
                        let part = part.or_else(|| {
                            let still = unchanged_since_kept(
                                mappings,
                                (module, &own, &accounts),
                                link,
                                untaken_before,
                            );
                            (reread && !still.is_empty())
                                .then(|| {
                                    Partial::of(round, (module, inc), (link.desk_id, &own), &still)
                                })
                                .flatten()
                        });
                        let profile = part.as_ref().map_or(&inc.profile, |p| &p.profile);
                        if link.salesforce_fields.as_deref() != Some(profile.as_str()) {
                            batch
                                .set_link_fields(link.id, profile, inc.modstamp)
                                .await?;
                        }
                        self.log_partial(&mut batch, part).await?;
                        continue;
                    }
                    let kept = link.kept_account_id.as_deref();
                    // Its desk record purged, it comes back as new to the desk.
                    let back = existing.is_none();
                    if let Some(waiting) = waits_for_account(inc, kept, back) {
                        Err(waiting)
                    } else {
                        let added = back;
                        let before = existing.as_ref().map(DeskRecord::values);
                        let mut values = before.clone().unwrap_or_default();
                        apply_to_desk(mappings, module, &inc.values, &mut values, &accounts);
                        // Newly mapped, an empty Salesforce field takes nothing from the desk;
                        // the desk's value goes out to fill it (one-way, it waits in the
                        // outbox for the sync to turn two-way, as a first meeting's does).
                        let fills = reread
                            && before.as_ref().is_some_and(|before| {
                                !fill_blanks(&mut values, before.clone()).is_empty()
                            });
                        // A value the desk cannot hold (a negative revenue, a text longer
                        // than the desk's field) stays the desk's own and waits in the
                        // failure log, as at a first meeting; the rest of the save is taken.
                        let untaken = match &before {
                            Some(own) => {
                                let mut taken = taken_over(&values, own);
                                keep_own_where_taken_cannot_be_held(
                                    module,
                                    &mut values,
                                    own,
                                    &mut taken,
                                )
                            }
                            None => Vec::new(),
                        };
                        let part = before.as_ref().and_then(|own| {
                            Partial::of(round, (module, inc), (link.desk_id, own), &untaken)
                        });
                        // The desk holds these values already (the mappings changed, say, and
                        // the record is read again): only the link learns them.
                        let settled = kept.is_none()
                            && !pending.contains_key(&link.desk_id)
                            && existing.as_ref().is_some_and(|d| !d.deleted())
                            && before.as_ref() == Some(&values);
                        let goes_out = fills;
                        if settled {
                            inc.link_as(&mut batch, module, link.desk_id, part.as_ref())
                                .await?;
                            self.log_partial(&mut batch, part).await?;
                            if goes_out {
                                batch.enqueue(module, link.desk_id).await?;
                            }
                            continue;
                        }
                        let existing = existing.map(|record| Held {
                            waiting: pending.get(&record.id()).cloned().unwrap_or_default(),
                            record,
                            stays_binned: before_delete,
                        });
                        let written = self
                            .write(
                                &mut batch,
                                module,
                                (inc, part.as_ref()),
                                existing,
                                values,
                                added,
                            )
                            .await?;
                        if written.is_ok() {
                            self.log_partial(&mut batch, part).await?;
                        }
                        if goes_out && written.is_ok() {
                            batch.enqueue(module, link.desk_id).await?;
                        }
                        // Salesforce moved it out of the account it was kept in.
                        if written.is_ok()
                            && kept.is_some()
                            && salesforce_account(mappings, module, &inc.values) != kept
                        {
                            batch.forget_kept_account(ContactId(link.desk_id)).await?;
                        }
                        if written.is_ok() && back {
                            returned.push(idx);
                        }
                        written
                    }
                }
                None => {
                    // Naming a desk record whose create is in doubt, and holding what that
                    // create sent, it is the create's answer, committed late: linked, not
                    // met as a Salesforce edit newer than the desk's, and the desk's edits
                    // since go out. One changed since (by the org's automation, or a
                    // person) is met as any record naming its desk record is.
                    if let Some(desk_id) = inc.desk_ref.filter(|r| {
                        in_doubt
                            .iter()
                            .any(|p| p.desk_id == *r && holds_what_was_sent(&p.sent, &inc.profile))
                    }) && own.remove(&desk_id).is_some()
                    {
                        named_in_doubt.push((idx, desk_id));
                        continue;
                    }
                    let matches: Vec<DeskRecord> = match inc.desk_ref.and_then(|r| own.remove(&r)) {
                        Some(own) => vec![own],
                        None => inc
                            .key
                            .as_ref()
                            .and_then(|k| candidates.remove(k))
                            .unwrap_or_default(),
                    };
                    match matches.len() {
                        0 => {
                            creates.push(idx);
                            continue;
                        }
                        1 => {
                            let Some(only) = matches.into_iter().next() else {
                                continue;
                            };
                            let only = Held {
                                waiting: pending.get(&only.id()).cloned().unwrap_or_default(),
                                record: only,
                                stays_binned: false,
                            };
                            self.first_match(&mut batch, round, module, inc, only, &accounts)
                                .await?
                        }
                        _ => {
                            let ids: Vec<String> =
                                matches.iter().map(|d| d.id().to_string()).collect();
                            Err((
                                FailureReason::MultipleMatches,
                                format!(
                                    "Salesforce {} {} matches several desk records ({}); move all but one to the desk's recycle bin or make the {} unique, and the next round tries again",
                                    module.salesforce_object(),
                                    inc.id,
                                    ids.join(", "),
                                    if module == Module::Contacts {
                                        "email"
                                    } else {
                                        "name"
                                    },
                                ),
                            ))
                        }
                    }
                }
            };
            match outcome {
                Ok(Written::Added) => counts.added += 1,
                Ok(Written::Updated) => counts.updated += 1,
                Ok(Written::Linked) => {}
                Err((reason, message)) => {
                    counts.failed += 1;
                    batch
                        .fail(
                            NewFailure {
                                direction: Direction::SalesforceToDesk,
                                module,
                                desk_id: links.get(&inc.id).map(|l| l.desk_id),
                                salesforce_id: Some(inc.id.clone()),
                                match_key: match reason {
                                    FailureReason::MultipleMatches => inc.key.clone(),
                                    // The account waited for, whose link wakes it.
                                    FailureReason::AccountNotSynced => {
                                        salesforce_account(mappings, module, &inc.values)
                                            .map(str::to_owned)
                                    }
                                    _ => None,
                                },
                                reason,
                                message,
                                modstamp: Some(inc.modstamp),
                            },
                            &self.settings.retry,
                        )
                        .await?;
                }
            }
        }
        let mut made_from_desk = 0;
        if !named_in_doubt.is_empty() || (!in_doubt.is_empty() && !creates.is_empty()) {
            // Made by a create in doubt, committed since this round looked for it: linked to
            // the desk record it was made from, as the lookup would have, not made again in
            // the desk (and the desk record sent again once its create is given up).
            let named: Vec<usize> = named_in_doubt.iter().map(|(idx, _)| *idx).collect();
            let mut made = named_in_doubt;
            // The creates a named record answered are not looked for among the others.
            let unanswered: Vec<_> = in_doubt
                .into_iter()
                .filter(|p| !made.iter().any(|(_, desk_id)| *desk_id == p.desk_id))
                .collect();
            if !creates.is_empty() && !unanswered.is_empty() {
                made.extend(super::lost::made_by_creates_in_doubt(
                    user,
                    &unanswered,
                    &incoming,
                    &creates,
                ));
            }
            let desk_ids: Vec<i64> = made.iter().map(|(_, desk_id)| *desk_id).collect();
            let linked = batch.salesforce_ids_by_desk(module, &desk_ids).await?;
            let mut answered = Vec::new();
            for (idx, desk_id) in made {
                if linked.contains_key(&desk_id) {
                    // Linked meanwhile to another: a record new to the desk.
                    if named.contains(&idx) {
                        creates.push(idx);
                    }
                    continue;
                }
                let inc = &incoming[idx];
                inc.link(&mut batch, module, desk_id).await?;
                batch.resolve(module, Some(desk_id), Some(&inc.id)).await?;
                answered.push((idx, desk_id));
            }
            let settled: Vec<i64> = answered.iter().map(|(_, desk_id)| *desk_id).collect();
            batch.settle_pending_creates(module, &settled).await?;
            if !settled.is_empty() {
                // Made from the desk: counted as the lookup would have counted them.
                let made = i32::try_from(settled.len()).unwrap_or(i32::MAX);
                batch
                    .history(Direction::DeskToSalesforce, module, (made, 0, 0))
                    .await?;
                made_from_desk = made;
            }
            creates.retain(|idx| !answered.iter().any(|(taken, _)| taken == idx));
        }
        // Made new in the desk, or again: those in a purged account stay in it in Salesforce.
        let made: Vec<usize> = creates.iter().chain(&returned).copied().collect();
        let refused = self
            .create_in_bulk(
                &mut batch,
                (module, mappings, &accounts),
                &mut incoming,
                creates,
                open_failures,
                &mut counts,
            )
            .await?;
        for (idx, reason, message) in refused {
            counts.failed += 1;
            batch
                .fail(
                    NewFailure {
                        direction: Direction::SalesforceToDesk,
                        module,
                        desk_id: None,
                        salesforce_id: Some(incoming[idx].id.clone()),
                        // The account waited for, whose restore wakes it.
                        match_key: (reason == FailureReason::AccountNotSynced)
                            .then(|| salesforce_account(mappings, module, &incoming[idx].values))
                            .flatten()
                            .map(str::to_owned),
                        reason,
                        message,
                        modstamp: Some(incoming[idx].modstamp),
                    },
                    &self.settings.retry,
                )
                .await?;
        }
        if !purged.is_empty() {
            let kept: Vec<(String, String)> = made
                .iter()
                .map(|&idx| &incoming[idx])
                .filter_map(|inc| {
                    let account = salesforce_account(mappings, module, &inc.values)?;
                    purged
                        .contains(account)
                        .then(|| (inc.id.clone(), account.to_owned()))
                })
                .collect();
            batch.keep_accounts(&kept).await?;
        }
        // A query's pages keep the order its records had as it began, but hold them as they
        // are when read: one edited since is stamped after every record not read yet, and a
        // cursor moved to it would pass them by (a round stopped there, or the next poll
        // after a long first sync, would never read them). The cursor stops at the last
        // record stamped before the query began; those after it are read again, as no-ops.
        let last = cursor.and_then(|(name, began)| {
            let last = incoming
                .iter()
                .rev()
                // Stamps are cut to the second: one edited just after the query began may
                // bear the second it began in.
                .find(|i| {
                    began.is_none_or(|began| i.modstamp + chrono::Duration::seconds(1) <= began)
                })?;
            Some((name, last))
        });
        if let Some((cursor_name, last)) = last {
            batch
                .set_cursor(
                    cursor_name,
                    Some(last.modstamp),
                    Some(last.id.clone()),
                    None,
                )
                .await?;
        }
        let counts = self
            .finish(batch, Direction::SalesforceToDesk, module, counts)
            .await?;
        // Committed: the round reports them beside what its push made.
        round
            .pushed_by_pull
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .added += made_from_desk;
        Ok(counts)
    }

    /// Creates the page's new desk records with one insert and links them with another.
    /// Returns the records the desk refused, with the reason.
    async fn create_in_bulk(
        &self,
        batch: &mut SyncBatch<'_>,
        (module, mappings, accounts): (Module, &[Mapping], &AccountLinks),
        incoming: &mut [Incoming],
        creates: Vec<usize>,
        open_failures: bool,
        counts: &mut Counts,
    ) -> Result<Vec<(usize, FailureReason, String)>, SyncError> {
        let mut refused = Vec::new();
        let refuse = |idx: usize, id: &str, invalid: &Invalid| {
            (
                idx,
                reason_for(invalid),
                format!(
                    "Salesforce {} {id} cannot be saved in the desk: {invalid}",
                    module.salesforce_object(),
                ),
            )
        };
        // A page holds one module's records: `positions` numbers whichever list fills.
        let mut contacts = Vec::new();
        let mut accounts_new = Vec::new();
        let mut positions = Vec::new();
        for idx in creates {
            let inc = &mut incoming[idx];
            match inc.new.take() {
                Some(Ok(new)) => match new.with_account(mappings, &inc.values, accounts) {
                    NewRecord::Contact(fields) => contacts.push(fields),
                    NewRecord::Account(fields) => accounts_new.push(fields),
                },
                Some(Err(invalid)) => {
                    refused.push(refuse(idx, &inc.id, &invalid));
                    continue;
                }
                // Taken already: never, as a page lists each record once.
                None => continue,
            }
            positions.push(idx);
        }
        let mut created: Vec<(usize, i64)> = Vec::with_capacity(positions.len());
        if !contacts.is_empty() {
            let (made, rejected) = batch.create_contacts(contacts).await?;
            created.extend(made.into_iter().map(|(pos, id)| (positions[pos], id.0)));
            refused.extend(rejected.iter().map(|(pos, invalid)| {
                let idx = positions[*pos];
                refuse(idx, &incoming[idx].id, invalid)
            }));
        }
        if !accounts_new.is_empty() {
            let made = batch.create_accounts(accounts_new).await?;
            created.extend(positions.into_iter().zip(made.into_iter().map(|id| id.0)));
        }
        counts.added += created.len() as i32;
        let links: Vec<NewLink> = created
            .iter()
            .map(|&(idx, desk_id)| {
                let inc = &mut incoming[idx];
                NewLink {
                    desk_id,
                    salesforce_id: inc.id.clone(),
                    hash: std::mem::take(&mut inc.hash),
                    modstamp: Some(inc.modstamp),
                    fields: Some(std::mem::take(&mut inc.profile)),
                }
            })
            .collect();
        if open_failures {
            for link in &links {
                batch
                    .resolve(module, None, Some(&link.salesforce_id))
                    .await?;
            }
        }
        batch.link_new(module, links).await?;
        Ok(refused)
    }

    /// Writes Salesforce's values to the desk and links the pair at Salesforce's hash; the
    /// desk changes that were waiting when `existing` was read are overruled.
    async fn write(
        &self,
        batch: &mut SyncBatch<'_>,
        module: Module,
        (inc, part): (&Incoming, Option<&Partial>),
        existing: Option<Held>,
        values: Map<String, Value>,
        added: bool,
    ) -> Result<Result<Written, (FailureReason, String)>, SyncError> {
        let (existing, waiting, stays_binned) = existing
            .map_or((None, Vec::new(), false), |held| {
                (Some(held.record), held.waiting, held.stays_binned)
            });
        match desk::save(batch, module, existing, values, stays_binned).await? {
            Ok(desk_id) => {
                batch.drop_outbox(module, desk_id, &waiting).await?;
                inc.link_as(batch, module, desk_id, part).await?;
                Ok(Ok(if added {
                    Written::Added
                } else {
                    Written::Updated
                }))
            }
            Err(invalid) => Ok(Err((
                reason_for(&invalid),
                format!(
                    "Salesforce {} {} cannot be saved in the desk: {invalid}",
                    module.salesforce_object(),
                    inc.id
                ),
            ))),
        }
    }

    /// The first time a Salesforce record meets its desk twin: link them; the more recently
    /// changed side's values win (Salesforce's always, in one-way mode). A blank is no edit,
    /// so neither side's blanks win: a desk record newer than its twin (most often one a
    /// ticket made, holding a name and an email) takes Salesforce's values where it has
    /// none, and an older one keeps its values where Salesforce has none. Two-way, what the
    /// desk holds that Salesforce lacks goes out, so that both hold the same.
    async fn first_match(
        &self,
        batch: &mut SyncBatch<'_>,
        round: &Round,
        module: Module,
        inc: &Incoming,
        desk_record: Held,
        accounts: &AccountLinks,
    ) -> Result<Result<Written, (FailureReason, String)>, SyncError> {
        let record = &desk_record.record;
        if round.sync_type == SyncType::TwoWay
            && !record.deleted()
            && record.updated_at() > inc.last_modified
        {
            let desk_id = record.id();
            let own = record.values();
            let mut values = own.clone();
            let mut theirs = own.clone();
            apply_to_desk(
                round.mappings(module),
                module,
                &inc.values,
                &mut theirs,
                accounts,
            );
            let mut filled = fill_blanks(&mut values, theirs);
            let untaken =
                keep_own_where_taken_cannot_be_held(module, &mut values, &own, &mut filled);
            let part = Partial::of(round, (module, inc), (desk_id, &own), &untaken);
            let written = if !filled.is_empty() {
                self.write(
                    batch,
                    module,
                    (inc, part.as_ref()),
                    Some(desk_record),
                    values,
                    false,
                )
                .await?
            } else {
                inc.link_as(batch, module, desk_id, part.as_ref()).await?;
                Ok(Written::Linked)
            };
            if written.is_ok() {
                self.log_partial(batch, part).await?;
            }
            // What the desk holds that Salesforce does not goes out.
            if written.is_ok() {
                batch.enqueue(module, desk_id).await?;
            }
            return Ok(written);
        }
        let own = record.values();
        let mut values = own.clone();
        apply_to_desk(
            round.mappings(module),
            module,
            &inc.values,
            &mut values,
            accounts,
        );
        let mut taken = taken_over(&values, &own);
        let kept = !fill_blanks(&mut values, own.clone()).is_empty();
        let untaken = keep_own_where_taken_cannot_be_held(module, &mut values, &own, &mut taken);
        let desk_id = record.id();
        let part = Partial::of(round, (module, inc), (desk_id, &own), &untaken);
        // Alike already (a desk that mirrors the org): linked, the desk record neither stamped
        // changed nor told of, and counted as no update.
        let written = if !record.deleted() && values == own {
            batch
                .drop_outbox(module, desk_id, &desk_record.waiting)
                .await?;
            inc.link_as(batch, module, desk_id, part.as_ref()).await?;
            Ok(Written::Linked)
        } else {
            self.write(
                batch,
                module,
                (inc, part.as_ref()),
                Some(desk_record),
                values,
                false,
            )
            .await?
        };
        if written.is_ok() {
            self.log_partial(batch, part).await?;
        }
        // One-way, they wait in the outbox as desk edits do, until the sync turns two-way.
        if written.is_ok() && kept {
            batch.enqueue(module, desk_id).await?;
        }
        Ok(written)
    }

    /// Logs why the desk took a Salesforce version only in part, once linked to it.
    async fn log_partial(
        &self,
        batch: &mut SyncBatch<'_>,
        part: Option<Partial>,
    ) -> Result<(), SyncError> {
        if let Some(part) = part {
            batch.fail(part.failure, &self.settings.retry).await?;
        }
        Ok(())
    }

    /// The keys of this page on which a desk record would meet a Salesforce record for the
    /// first time, yet more than one Salesforce record not linked yet holds the key — in
    /// this page, or anywhere in the org: with each, the Salesforce ids sharing it (sorted)
    /// and the desk record's id. Matching either would be a guess. Salesforce is asked only
    /// when the page has such a meeting, so an import into an empty desk asks nothing more.
    async fn contested_keys(
        &self,
        round: &Round,
        module: Module,
        incoming: &[Incoming],
        links: &HashMap<String, record_link::Model>,
        claimed: &[i64],
        candidates: &HashMap<String, Vec<DeskRecord>>,
    ) -> Result<HashMap<String, (Vec<String>, i64)>, SyncError> {
        // A record that names the desk record it was pushed from meets that one, not a key.
        let meeting = || {
            incoming.iter().filter(|i| {
                !links.contains_key(&i.id) && i.desk_ref.is_none_or(|r| !claimed.contains(&r))
            })
        };
        let mut keys: Vec<String> = meeting()
            .filter_map(|i| i.key.clone())
            .filter(|k| candidates.get(k).is_some_and(|c| c.len() == 1))
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sharing = round.salesforce_by_key(module, &keys).await?;
        // The page's own records, as read: one may have moved off the key since.
        for inc in meeting() {
            if let Some(key) = inc.key.as_ref().filter(|k| keys.binary_search(k).is_ok()) {
                let ids = sharing.entry(key.clone()).or_default();
                if !ids.contains(&inc.id) {
                    ids.push(inc.id.clone());
                }
            }
        }
        let all: Vec<String> = sharing.values().flatten().cloned().collect();
        let linked = self.store.desk_ids_by_salesforce(module, &all).await?;
        Ok(sharing
            .into_iter()
            .filter_map(|(key, mut ids)| {
                ids.retain(|id| !linked.contains_key(id));
                ids.sort();
                let desk_id = candidates.get(&key)?.first()?.id();
                (ids.len() > 1).then_some((key, (ids, desk_id)))
            })
            .collect())
    }

    /// Account links for the `AccountId`s a page of contacts refers to. `known` holds the
    /// links earlier pages of the phase found: a link names the same desk account for as
    /// long as it lasts, so each is read once a phase. An account purged since is caught
    /// where the contact is written, which checks its account inside the transaction, as it
    /// would be had the purge come between this page's own read and its write.
    async fn account_links_for(
        &self,
        module: Module,
        incoming: &[Incoming],
        known: &mut HashMap<String, i64>,
    ) -> Result<AccountLinks, SyncError> {
        let mut links = AccountLinks::default();
        if module != Module::Contacts {
            return Ok(links);
        }
        let named: HashSet<&str> = incoming
            .iter()
            .flat_map(|inc| inc.values.values())
            .filter_map(Value::as_str)
            .filter(|v| v.len() == 18 && v.starts_with("001"))
            .collect();
        let unknown: Vec<String> = named
            .iter()
            .filter(|id| !known.contains_key(**id))
            .map(|id| (*id).to_owned())
            .collect();
        known.extend(self.store.desk_accounts_by_salesforce(&unknown).await?);
        links.to_desk = named
            .into_iter()
            .filter_map(|id| known.get_key_value(id))
            .map(|(id, desk)| (id.clone(), *desk))
            .collect();
        Ok(links)
    }
}

/// A spawned task, stopped when its handle is dropped (a round given up mid-page).
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Written {
    Added,
    Updated,
    /// Linked, the desk unchanged: the desk's newer values go out with the push, which counts
    /// them.
    Linked,
}

fn add(mut a: Counts, b: Counts) -> Counts {
    a.added += b.added;
    a.updated += b.updated;
    a.failed += b.failed;
    a
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::{Incoming, changed_since_read};
    use crate::domain::Module;

    #[test]
    fn the_desk_record_a_salesforce_record_names_is_read_whatever_the_org_calls_its_field() {
        let record = |field: &str| {
            json!({ "Id": "0035g0000000001AAA", "SystemModstamp": "2026-12-06T09:00:00.000+0000",
                    "LastModifiedDate": "2026-12-06T09:00:00.000+0000", "LastName": "Hopper",
                    field: "desk-7" })
            .as_object()
            .unwrap()
            .clone()
        };
        let mappings = crate::sync::mapping::default_mappings(Module::Contacts);
        for field in ["Helpdesk_Id__c", "HelpDesk_ID__c"] {
            let read =
                Incoming::read(Module::Contacts, &mappings, "desk", vec![record(field)]).unwrap();
            assert_eq!(read[0].desk_ref, Some(7), "{field}");
        }
    }

    /// A link to a record the sync pushed and has not read back since: its stamp unknown,
    /// its fields as the push left them.
    fn pushed(fields: serde_json::Value) -> entity::record_link::Model {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap();
        entity::record_link::Model {
            id: 1,
            module: "CONTACTS".into(),
            desk_id: 1,
            salesforce_id: "0035g0000000001AAA".into(),
            synced_hash: String::new(),
            sent_hash: None,
            salesforce_modstamp: None,
            salesforce_fields: Some(fields.to_string()),
            kept_account_id: None,
            desk_deleted_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_record_pushed_and_not_read_back_is_judged_by_its_last_modifier_or_its_editable_fields() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 5).unwrap();
        let link = pushed(
            json!({ "Id": "0035g0000000001AAA", "Name": "Hopper", "FirstName": null, "Department": "Navy", "AnnualCount__c": 5000000 }),
        );
        let editable: HashSet<String> = ["FirstName", "Department", "AnnualCount__c"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let read = |fields: serde_json::Value| fields.to_string();
        let ours = "0055g0000000001AAA";

        // Saved last by the integration user (an 18-character id against 15): the push
        // itself, whatever a trigger stamped with it.
        let by_us = read(
            json!({ "Id": "0035g0000000001AAA", "Name": "Grace Hopper", "Department": "Stamped", "LastModifiedById": ours }),
        );
        assert!(!changed_since_read(
            &link,
            (at, &by_us),
            (Some("0055g0000000001"), &editable)
        ));
        // Saved last by someone else: changed, whichever fields.
        let by_a_person = read(
            json!({ "Id": "0035g0000000001AAA", "Name": "Hopper", "Department": "Navy", "LastModifiedById": "0055g0000000002AAA" }),
        );
        assert!(changed_since_read(
            &link,
            (at, &by_a_person),
            (Some(ours), &editable)
        ));

        // With no modifier to go by, a field a person may edit says.
        let no_user = (None, &editable);
        let derived_only = read(
            json!({ "Id": "0035g0000000001AAA", "Name": "Grace Hopper", "FirstName": null, "Department": "Navy", "AnnualCount__c": 5000000.0 }),
        );
        assert!(
            !changed_since_read(&link, (at, &derived_only), no_user),
            "a name made of the names sent, and a number read back as a float, are no edit"
        );
        let edited = read(
            json!({ "Id": "0035g0000000001AAA", "Name": "Hopper", "FirstName": null, "Department": "Computing", "AnnualCount__c": 5000000 }),
        );
        assert!(changed_since_read(&link, (at, &edited), no_user));

        // A link that knows the stamp it read goes by the stamp.
        let mut read_back = link.clone();
        read_back.salesforce_modstamp = Some(at);
        assert!(!changed_since_read(&read_back, (at, &edited), no_user));
        assert!(changed_since_read(
            &read_back,
            (at + chrono::TimeDelta::seconds(1), &derived_only),
            no_user
        ));
    }
}
