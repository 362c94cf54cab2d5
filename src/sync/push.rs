//! Desk → Salesforce: queued desk changes (and, on the first sync, every unlinked desk
//! record) sent in collections of up to 200, with links and the outbox updated together.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::SyncError;
use super::desk::{self, DeskRecord};
use super::engine::{Counts, Round, SyncEngine, statistics_due};
use super::pull::FailedVersions;
use super::records::{
    AccountLinks, account_field, blank, changed_since, hash, to_salesforce, unlinked_account,
    with_sent,
};
use crate::domain::{Direction, FailureReason, Module, SalesforceId};
use crate::salesforce::{Describe, FieldDescribe, Record, RecordResult, Rows};
use crate::store::{NewFailure, SyncBatch};

/// The external id field that makes creates idempotent: it names the desk record, as
/// `desk_ref` writes it.
pub const DESK_ID_FIELD: &str = "Helpdesk_Id__c";

/// How long a read of Salesforce's records stands for a push over them.
const READ_BEFORE_PUSH: Duration = Duration::from_secs(1);

/// How `Helpdesk_Id__c` names desk record `id` of the desk tagged `tag`: `<tag>-<id>`.
pub fn desk_ref(tag: &str, id: i64) -> String {
    format!("{tag}-{id}")
}

/// `Helpdesk_Id__c` as the org has it, when it can hold what [`desk_ref`] writes: a text field
/// long enough for the tag, a dash and any desk id. One made a number, or too short a text,
/// would have every create naming it refused: the org is taken to be without it.
pub(super) fn desk_id_field<'d>(describe: &'d Describe, tag: &str) -> Option<&'d FieldDescribe> {
    const DESK_ID_DIGITS: usize = 19;
    describe.field(DESK_ID_FIELD).filter(|f| {
        f.kind == "string" && f.length as usize >= tag.chars().count() + 1 + DESK_ID_DIGITS
    })
}

/// What Salesforce could not be asked about a refused record, for its failure's message.
const WHICH_UNASKED: &str =
    "whether that is this record or one it names could not be asked of Salesforce";
const MERGE_UNASKED: &str = "whether a merge deleted it could not be asked of Salesforce";
const BIN_UNASKED: &str =
    "whether the record holding it is in Salesforce's recycle bin could not be asked";

/// The desk record a `Helpdesk_Id__c` value names, when it names one of this desk's; a value
/// another desk wrote (another tag, or none) names nothing here.
pub fn read_desk_ref(tag: &str, value: &Value) -> Option<i64> {
    let id = value
        .as_str()?
        .trim()
        .strip_prefix(tag)?
        .strip_prefix('-')?;
    id.parse().ok().filter(|id: &i64| *id > 0)
}

/// Of these `Helpdesk_Id__c` values, those a record in Salesforce's recycle bin holds (in
/// lower case: the field's values are unique whatever their case). One held by a live record
/// (an upsert of it an earlier round sent, answered late) is not: its next upsert meets that
/// record. When Salesforce could not be asked, why.
async fn held_in_the_recycle_bin(
    round: &Round,
    object: &str,
    keys: &[String],
) -> Result<HashSet<String>, FailureReason> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = round
        .by_field(object, DESK_ID_FIELD, &[DESK_ID_FIELD], keys, Rows::All)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| row.get(DESK_ID_FIELD)?.as_str())
        .map(str::to_lowercase)
        .collect())
}

/// Whether Salesforce refused an upsert because another record holds its `Helpdesk_Id__c`:
/// one no upsert can match, a deleted record in the recycle bin, or a live one an upsert
/// still running is making.
fn key_held_elsewhere(result: &RecordResult) -> bool {
    !result.success
        && result.errors.iter().any(|(code, message, fields)| {
            code == "DUPLICATE_VALUE"
                && (fields.iter().any(|f| f.eq_ignore_ascii_case(DESK_ID_FIELD))
                    || message.contains(DESK_ID_FIELD))
        })
}

/// What to do with one desk record.
enum Plan {
    /// Nothing to send: deleted, or Salesforce already has these values.
    Skip,
    Update {
        salesforce_id: String,
        /// What is sent: the fields Salesforce's record, as last read, does not already hold.
        values: Record,
        /// Every mapped field, for re-creating the record should Salesforce have deleted it.
        all: Record,
        hash: String,
    },
    /// Salesforce's record, as last read, holds the desk's values already: linked at them
    /// without a call.
    Settle {
        salesforce_id: String,
        hash: String,
    },
    Create {
        values: Record,
        hash: String,
    },
    /// A create sent before whose answer was lost, which Salesforce may still be making
    /// (`find_lost_creates`): not sent again until it is found or past doubt.
    Wait,
    Fail(FailureReason, String),
}

impl SyncEngine {
    /// Pushes the module's queued desk changes, Salesforce's records having been read at
    /// `read_at`.
    pub(super) async fn push(
        &self,
        round: &Round,
        module: Module,
        read_at: Instant,
    ) -> Result<Counts, SyncError> {
        let mut total = Counts::default();
        // Each page after the last: a change left queued (its record failing for a passing
        // reason, and due at once as it was edited meanwhile) waits for the next round
        // rather than standing before the rest of the queue.
        let mut after = 0;
        loop {
            let rows = self
                .store
                .outbox(module, after, self.settings.batch as u64)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let ids = crate::store::distinct(&rows.iter().map(|r| r.desk_id).collect::<Vec<_>>());
            // A push sends what changed in the desk since Salesforce's record was read. Read
            // a while ago (a first sync's export, or this push's pages before, came between),
            // the page's records are read again first: a Salesforce edit made meanwhile,
            // newer than the desk's, wins rather than being overwritten. Each page's: the
            // pages before read only their own.
            if read_at.elapsed() > READ_BEFORE_PUSH {
                let twins: Vec<String> = self
                    .store
                    .links_by_desk(module, &ids)
                    .await?
                    .into_values()
                    .map(|link| link.salesforce_id)
                    .collect();
                if !twins.is_empty() {
                    // A twin whose very version failed to pull waits for its own retry.
                    self.read_again(round, module, &twins, FailedVersions::Skip)
                        .await?;
                }
            }
            // One whose twin, read since the queue was, holds a newer version the desk could
            // not take waits queued for it, as the queue leaves out those it knew of.
            let behind = self.store.behind_salesforce(module, &ids).await?;
            let ids: Vec<i64> = ids.into_iter().filter(|id| !behind.contains(id)).collect();
            // Every change of these records queued so far, this page's and any past it: the
            // values read next carry them all.
            let read = self.store.outbox_waiting(module, &ids).await?;
            let counts = self.send(round, module, &ids, &read, None).await?;
            total = Counts {
                added: total.added + counts.added,
                updated: total.updated + counts.updated,
                failed: total.failed + counts.failed,
            };
            if rows.len() < self.settings.batch {
                break;
            }
        }
        Ok(total)
    }

    /// Sends every live desk record that has no Salesforce twin yet, resuming after a crash
    /// from the last desk id it committed.
    pub(super) async fn export(&self, round: &Round, module: Module) -> Result<Counts, SyncError> {
        let cursor_name = format!("export:{module}");
        let mut batches = 0u32;
        let mut after = self
            .store
            .cursor(&cursor_name)
            .await?
            .and_then(|c| c.desk_id)
            .unwrap_or(0);
        let mut total = Counts::default();
        loop {
            let ids = self
                .store
                .unlinked(module, after, self.settings.batch as u64)
                .await?;
            let Some(&last) = ids.last() else { break };
            // Sent before and failed (a page sent again after its call was refused whole):
            // each is its retry's, not logged and counted once more.
            let ids: Vec<i64> = if self.store.has_open_failures(module).await? {
                let failing = self.store.failing_pushes(module, &ids).await?;
                ids.into_iter().filter(|id| !failing.contains(id)).collect()
            } else {
                ids
            };
            batches += 1;
            if statistics_due(batches) {
                self.store.refresh_statistics();
            }
            // Read before the records are: an edit queued after that is not in what is sent,
            // and waits for the next push.
            let waiting = self.store.outbox_waiting(module, &ids).await?;
            let counts = self
                .send(round, module, &ids, &waiting, Some((&cursor_name, last)))
                .await?;
            total = Counts {
                added: total.added + counts.added,
                updated: total.updated + counts.updated,
                failed: total.failed + counts.failed,
            };
            after = last;
        }
        Ok(total)
    }

    /// Sends one batch of desk records and records the outcome in one transaction. `read`
    /// holds, for each record, the outbox rows read before its values were: the changes the
    /// push settles.
    pub(super) async fn send(
        &self,
        round: &Round,
        module: Module,
        ids: &[i64],
        read: &HashMap<i64, Vec<i64>>,
        cursor: Option<(&str, i64)>,
    ) -> Result<Counts, SyncError> {
        round.still_current(&self.integrations).await?;
        let object = module.salesforce_object();
        let records = desk::load(&self.store, module, ids).await?;
        let links = self.store.links_by_desk(module, ids).await?;
        // Creates in doubt wait to be looked for, but an upsert's: sent again, it meets the
        // record it made, if it made one.
        let (upserts_in_doubt, in_doubt): (HashSet<i64>, HashSet<i64>) = {
            let notes = self.store.pending_creates(module).await?;
            let (upserts, plain): (Vec<_>, Vec<_>) = notes.into_iter().partition(|p| p.upsert);
            (
                upserts.into_iter().map(|p| p.desk_id).collect(),
                plain.into_iter().map(|p| p.desk_id).collect(),
            )
        };
        let accounts = self.desk_account_links(module, &records).await?;
        let mut plans: Vec<(i64, Plan)> = ids
            .iter()
            .map(|id| {
                let plan = match records.get(id) {
                    None => Plan::Skip,
                    Some(record) if record.deleted() => Plan::Skip,
                    Some(record) => {
                        let desk = record.values();
                        if let Some(account) =
                            unlinked_account(round.mappings(module), module, &desk, &accounts)
                        {
                            return (*id, Plan::Fail(
                                FailureReason::AccountNotSynced,
                                format!(
                                    "desk {object} {id} belongs to desk account {account}, which is not in Salesforce yet; the contact follows once the account is synced (retried automatically for a while, then with retrySyncFailures once the account's own failure is fixed). An account in the recycle bin is never synced: restore it, or give the contact another account or none, and the edit goes out at once"
                                ),
                            ));
                        }
                        let values = to_salesforce(
                            round.mappings(module),
                            module,
                            &desk,
                            &accounts,
                            links.get(id).and_then(|l| l.kept_account_id.as_deref()),
                        );
                        let h = hash(&values);
                        match links.get(id) {
                            Some(link) if link.synced_hash == h => Plan::Skip,
                            Some(link) => {
                                // Only what changed: an edit made in Salesforce since the last
                                // read, to another field, is not overwritten, and the next pull
                                // brings it to the desk.
                                let changed = changed_since(&values, link.salesforce_fields.as_deref());
                                let salesforce_id = link.salesforce_id.clone();
                                if changed.is_empty() {
                                    Plan::Settle { salesforce_id, hash: h }
                                } else {
                                    Plan::Update {
                                        salesforce_id,
                                        values: changed.into_iter().collect(),
                                        all: values.into_iter().collect(),
                                        hash: h,
                                    }
                                }
                            }
                            None if in_doubt.contains(id) => Plan::Wait,
                            None => Plan::Create {
                                values: values.into_iter().collect(),
                                hash: h,
                            },
                        }
                    }
                };
                (*id, plan)
            })
            .collect();
        self.match_in_salesforce(round, module, &records, &mut plans)
            .await?;

        // Each update, with the desk record and hash it is noted as sent under.
        let mut updates: Vec<(usize, SalesforceId, Record)> = Vec::new();
        let mut sent: Vec<(i64, String)> = Vec::new();
        for (i, (desk_id, plan)) in plans.iter().enumerate() {
            if let Plan::Update {
                salesforce_id,
                values,
                hash,
                ..
            } = plan
                && let Ok(id) = SalesforceId::parse(salesforce_id)
            {
                updates.push((i, id, values.clone()));
                sent.push((*desk_id, hash.clone()));
            }
        }
        let mut outcomes: HashMap<usize, RecordResult> = HashMap::new();
        // Updates refused (or re-created): their note goes now; a made one's goes with its link.
        let mut unmade: Vec<i64> = Vec::new();
        // Desk records whose refusal Salesforce could not be asked about (why, and what): they
        // are tried again, not left for a person — one refused for meeting a deleted record it
        // did not name ([`WHICH_UNASKED`]), one whose twin is gone ([`MERGE_UNASKED`]: not
        // made again either), a create refused for a key another record holds
        // ([`BIN_UNASKED`]).
        let mut unasked: HashMap<i64, (FailureReason, &str)> = HashMap::new();
        if !updates.is_empty() {
            let body: Vec<(SalesforceId, Record)> = updates
                .iter()
                .map(|(_, id, v)| (id.clone(), v.clone()))
                .collect();
            // Made but unanswered (every answer lost, or a crash), an update read back must
            // not pass for a Salesforce edit newer than the desk's: noted first.
            self.store.note_sent_updates(module, &sent).await?;
            let results = round.client.update_many(object, &body, false).await?;
            // Told that a deleted record was met, naming no field: the record updated, or
            // one a field of it names (an account deleted with its contacts)? Salesforce is
            // asked which of the records updated are gone.
            let doubtful: Vec<String> = updates
                .iter()
                .zip(&results)
                .filter(|(_, result)| met_deleted(result).is_some_and(|fields| fields.is_empty()))
                .map(|((_, id, _), _)| id.as_str().to_owned())
                .collect();
            let missing = round.missing(object, &doubtful).await;
            // Of those gone, the ones a merge deleted: made again, they would undo the merge.
            let gone: Vec<String> = doubtful
                .iter()
                .filter(|id| missing.as_ref().is_ok_and(|m| m.contains(id.as_str())))
                .cloned()
                .collect();
            let merged = round.merged_into(object, &gone).await;
            let masters: Vec<String> = merged
                .as_ref()
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            let masters = self.store.links_by_salesforce(module, &masters).await?;
            // The accounts a purge kept those gone in: a contact made again stays in one
            // Salesforce still has (deleting a contact leaves its account), and leaves one
            // deleted with it.
            let account = account_field(round.mappings(module), module);
            let kept: Vec<String> = updates
                .iter()
                .filter(|(_, id, _)| missing.as_ref().is_ok_and(|m| m.contains(id.as_str())))
                .filter_map(|(i, ..)| links.get(&plans[*i].0)?.kept_account_id.clone())
                .collect();
            let kept_gone = match account {
                Some(_) if !kept.is_empty() => {
                    round
                        .missing(Module::Accounts.salesforce_object(), &kept)
                        .await
                }
                _ => Ok(HashSet::new()),
            };
            for ((i, id, _), result) in updates.into_iter().zip(results) {
                if !result.success {
                    unmade.push(plans[i].0);
                }
                if let Err(why) = &missing
                    && doubtful.iter().any(|d| d == id.as_str())
                {
                    unasked.insert(plans[i].0, (*why, WHICH_UNASKED));
                }
                let gone = missing.as_ref().is_ok_and(|m| m.contains(id.as_str()));
                if gone && let Err(why) = &merged {
                    // Merged away or deleted: which, could not be asked. Tried again.
                    unasked.insert(plans[i].0, (*why, MERGE_UNASKED));
                    outcomes.insert(i, result);
                } else if gone
                    && let Ok(merged) = &merged
                    && let Some(master) = merged.get(id.as_str())
                {
                    // Merged into another record in Salesforce: the desk record is a
                    // duplicate now, for a person to see to (made again, it would undo the
                    // merge).
                    let linked = match masters.get(master) {
                        Some(link) => format!(", the twin of desk {object} {}", link.desk_id),
                        None => format!(", which no desk {object} is linked to yet"),
                    };
                    plans[i].1 = Plan::Fail(
                        FailureReason::CrmIdAlreadyMapped,
                        format!(
                            "Salesforce {object} {id}, the twin of desk {object} {desk_id}, was merged into {object} {master}{linked}; it is not made again, which would undo the merge: if the desk records are one, move this one to the recycle bin, which settles this",
                            id = id.as_str(),
                            desk_id = plans[i].0,
                        ),
                    );
                } else if gone {
                    // Deleted in Salesforce but changed in the desk: re-create it there, out
                    // of the account a purge kept it in if Salesforce deleted that too (or
                    // could not say).
                    let mut values = match &mut plans[i].1 {
                        Plan::Update { all, .. } => std::mem::take(all),
                        _ => Record::new(),
                    };
                    let kept = links
                        .get(&plans[i].0)
                        .and_then(|l| l.kept_account_id.as_deref());
                    if let Some(field) = account
                        && let Some(kept) = kept
                        && values.get(field).and_then(Value::as_str) == Some(kept)
                        && kept_gone.as_ref().map_or(true, |gone| gone.contains(kept))
                    {
                        values.insert(field.to_owned(), Value::Null);
                    }
                    let hash = hash(&values.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
                    plans[i].1 = Plan::Create { values, hash };
                } else {
                    outcomes.insert(i, result);
                }
            }
        }

        let creates: Vec<(usize, Record)> = plans
            .iter()
            .enumerate()
            .filter_map(|(i, (desk_id, plan))| match plan {
                Plan::Create { values, .. } => {
                    let mut values = values.clone();
                    values.insert(
                        DESK_ID_FIELD.into(),
                        Value::String(desk_ref(&round.desk_tag, *desk_id)),
                    );
                    Some((i, values))
                }
                _ => None,
            })
            .collect();
        // Updates already made are recorded even when the creates cannot be sent: read back
        // unrecorded, they would look like Salesforce edits newer than the desk's.
        let mut unsent = None;
        // Desk records whose create was noted as pending, to settle with their answers; and
        // of them, those of the call on its way when the sending stopped.
        let mut noted = Vec::new();
        let mut in_flight = Vec::new();
        // Upserts refused for a key a live record holds while an earlier upsert of theirs is
        // in doubt: that one, still running, is making the record. In doubt still.
        let mut still_running = Vec::new();
        if !creates.is_empty() {
            // Made again in place of records Salesforce deleted: their links to those go
            // before they are sent, so that what a create whose answer is lost made is
            // taken for theirs (by a lookup, or a pull meeting what it carries).
            let made_again: Vec<i64> = creates
                .iter()
                .map(|(i, _)| plans[*i].0)
                .filter(|desk_id| links.contains_key(desk_id))
                .collect();
            let sent = async {
                let describe = round.client.describe(object).await?;
                let desk_id_field = desk_id_field(&describe, &round.desk_tag);
                // A unique external id the integration user may write makes the create
                // repeatable; one it may only read would refuse every record. One that is not
                // unique would not keep an upsert repeated while the first still runs (after
                // a restart) from making a second record: it is written as a plain field.
                let repeatable = desk_id_field
                    .is_some_and(|f| f.external_id && f.unique && f.createable && f.updateable);
                // Made again in place of a record Salesforce deleted, a record cannot take a
                // unique key: the deleted one keeps it in the recycle bin (fifteen days), where
                // a unique field's values still count. It goes as a plain insert, without it;
                // so does one whose upsert was refused for a deleted record holding its key
                // (made again, its first attempt not through; or its twin deleted while the
                // integration was).
                let (keyed, mut plain): (Vec<usize>, Vec<usize>) = (0..creates.len())
                    .partition(|&k| repeatable && !made_again.contains(&plans[creates[k].0].0));
                let mut results: Vec<Option<RecordResult>> = vec![None; creates.len()];
                // What was sent, for a lost answer to be found again by.
                let sent_values = |k: usize| {
                    let mut sent = creates[k].1.clone();
                    sent.remove(DESK_ID_FIELD);
                    (plans[creates[k].0].0, Value::Object(sent).to_string())
                };
                if !keyed.is_empty() {
                    let body: Vec<Record> = keyed.iter().map(|&k| creates[k].1.clone()).collect();
                    // Noted too: a record one made, its answer lost, is the create's answer
                    // (linked at what was sent), not a Salesforce record newer than the desk's
                    // (which would undo a desk edit made meanwhile, or bring a desk record
                    // binned meanwhile back). Not waited on: it may be sent again.
                    let pending: Vec<(i64, String)> =
                        keyed.iter().map(|&k| sent_values(k)).collect();
                    in_flight = pending.iter().map(|(desk_id, _)| *desk_id).collect();
                    noted.extend(&in_flight);
                    self.store
                        .note_pending_creates(module, pending, &[], true)
                        .await?;
                    let made = round
                        .client
                        .upsert_many(object, DESK_ID_FIELD, &body, false)
                        .await?;
                    in_flight.clear();
                    let refused: Vec<String> = keyed
                        .iter()
                        .zip(&made)
                        .filter(|(_, result)| key_held_elsewhere(result))
                        .filter_map(|(&k, _)| creates[k].1.get(DESK_ID_FIELD)?.as_str())
                        .map(str::to_owned)
                        .collect();
                    let binned = held_in_the_recycle_bin(round, object, &refused).await;
                    for (&k, result) in keyed.iter().zip(made) {
                        let key = creates[k].1.get(DESK_ID_FIELD).and_then(Value::as_str);
                        let held = key_held_elsewhere(&result);
                        match &binned {
                            Ok(binned)
                                if held
                                    && key.is_some_and(|key| {
                                        binned.contains(&key.to_lowercase())
                                    }) =>
                            {
                                plain.push(k);
                                continue;
                            }
                            _ if held && upserts_in_doubt.contains(&plans[creates[k].0].0) => {
                                still_running.push(plans[creates[k].0].0);
                                continue;
                            }
                            // Whether a deleted record holds the key could not be asked: the
                            // refusal may be one a plain insert would get past.
                            Err(why) if held => {
                                unasked.insert(plans[creates[k].0].0, (*why, BIN_UNASKED));
                            }
                            _ => {}
                        }
                        results[k] = Some(result);
                    }
                }
                if !plain.is_empty() {
                    let mut body: Vec<Record> =
                        plain.iter().map(|&k| creates[k].1.clone()).collect();
                    // A plain Helpdesk_Id__c still carries the desk id, which tells a lost
                    // create's record apart from any other; without the field, the values do.
                    // A unique one is left out: a deleted record may hold the value.
                    if !desk_id_field.is_some_and(|f| f.createable && !f.unique) {
                        for record in &mut body {
                            record.remove(DESK_ID_FIELD);
                        }
                    }
                    // A create cannot be repeated safely: noted first, a create whose answer
                    // is lost is looked for in Salesforce before the record is sent again.
                    let pending: Vec<(i64, String)> =
                        plain.iter().map(|&k| sent_values(k)).collect();
                    in_flight = pending.iter().map(|(desk_id, _)| *desk_id).collect();
                    noted.extend(&in_flight);
                    // What the upserts made is recorded whatever befalls the inserts.
                    let made = async {
                        self.store
                            .note_pending_creates(module, pending, &made_again, false)
                            .await?;
                        Ok::<_, SyncError>(round.client.create_many(object, &body, false).await?)
                    };
                    match made.await {
                        Ok(made) => {
                            in_flight.clear();
                            for (&k, result) in plain.iter().zip(made) {
                                results[k] = Some(result);
                            }
                        }
                        Err(e) => return Ok((results, Some(e))),
                    }
                }
                Ok::<_, SyncError>((results, None))
            };
            let failed = match sent.await {
                Ok((results, failed)) => {
                    for ((i, _), result) in creates.into_iter().zip(results) {
                        if let Some(result) = result {
                            outcomes.insert(i, result);
                        }
                    }
                    failed
                }
                Err(e) => Some(e),
            };
            // The creates unanswered keep their queued changes (or, exporting, the cursor
            // stays before them) and go out with the next round; noted as pending, they are
            // looked for first, unless Salesforce refused the call whole: then nothing was
            // made, and the notes go with this batch, as those of a call answered do.
            if let Some(e) = failed {
                if !matches!(&e, SyncError::Upstream(refused) if refused.ran_nothing()) {
                    noted.retain(|desk_id| !in_flight.contains(desk_id));
                }
                unsent = Some(e);
            }
            // A sending that made or met the record settles every note of it; one that did
            // not (refused, or refused whole) leaves those of an earlier upsert, which may
            // still be making it.
            let made: HashSet<i64> = outcomes
                .iter()
                .filter(|(_, result)| result.success)
                .map(|(i, _)| plans[*i].0)
                .collect();
            noted.retain(|desk_id| made.contains(desk_id) || !upserts_in_doubt.contains(desk_id));
        }

        let missing_accounts = missing_accounts(
            round,
            module,
            outcomes.iter().map(|(i, result)| (plans[*i].0, result)),
            &records,
            &accounts,
        )
        .await
        .unwrap_or_else(|(asked_for, why)| {
            unasked.extend(
                asked_for
                    .into_iter()
                    .map(|desk_id| (desk_id, (why, WHICH_UNASKED))),
            );
            HashSet::new()
        });
        // Of the accounts gone that refused contacts name, those a merge deleted: sent again,
        // they would undo the merge.
        let mut gone: Vec<String> = outcomes
            .iter()
            .filter(|(_, result)| !result.success)
            .filter_map(|(i, result)| {
                let (code, _, fields) = result.errors.first()?;
                let record = records.get(&plans[*i].0);
                gone_account(
                    round,
                    module,
                    (fields, record),
                    code,
                    &accounts,
                    &missing_accounts,
                )
            })
            .map(|(_, salesforce)| salesforce)
            .collect();
        gone.sort();
        gone.dedup();
        let merged_accounts = round
            .merged_into(Module::Accounts.salesforce_object(), &gone)
            .await;
        let masters: Vec<String> = merged_accounts
            .as_ref()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let master_accounts = self
            .store
            .links_by_salesforce(Module::Accounts, &masters)
            .await?;
        // Read before the batch: only the worker logs push failures, one round at a time.
        let open_failures = self.store.has_open_failures(module).await?;
        // What a refused picklist takes, for the failure's message. Asked before the batch,
        // as every Salesforce call is: a sign-in it may need saves a rotated token through
        // the desk's writer, which the batch would be holding.
        let picklists = if outcomes.values().any(|result| {
            result
                .errors
                .iter()
                .any(|(code, ..)| code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
        }) {
            round.client.describe(object).await.ok()
        } else {
            None
        };
        let mut batch = self.store.begin_sync().await?;
        // The records that may log a failure, first: one moved to the recycle bin while it
        // was on its way is not logged after the move settled its failures.
        let failing: Vec<i64> = plans
            .iter()
            .enumerate()
            .filter(|(i, (_, plan))| {
                matches!(plan, Plan::Fail(..))
                    || outcomes
                        .get(i)
                        .is_some_and(|result| !(result.success && result.id.is_some()))
            })
            .map(|(_, (desk_id, _))| *desk_id)
            .collect();
        let live = batch.live_desk_records(module, &failing).await?;
        batch.settle_pending_creates(module, &noted).await?;
        // Nothing to send, an update noted as sent and never made is no longer coming.
        unmade.extend(plans.iter().filter_map(|(id, plan)| {
            let noted = links.get(id).is_some_and(|l| l.sent_hash.is_some());
            (matches!(plan, Plan::Skip) && noted).then_some(*id)
        }));
        batch.clear_sent(module, &unmade).await?;
        let mut counts = Counts::default();
        for (i, (desk_id, plan)) in plans.into_iter().enumerate() {
            let settles = read.get(&desk_id).map_or(&[][..], Vec::as_slice);
            let (hash, creating, read, kept) = match plan {
                Plan::Skip => {
                    // Nothing left to send: a failure to send it earlier is settled.
                    if open_failures {
                        batch.resolve_push(module, desk_id).await?;
                    }
                    batch.drop_outbox(module, desk_id, settles).await?;
                    continue;
                }
                Plan::Wait => {
                    // Its queued changes stay; exporting, it is queued, as the cursor
                    // passes it.
                    if cursor.is_some() && settles.is_empty() {
                        batch.enqueue(module, desk_id).await?;
                    }
                    continue;
                }
                Plan::Fail(reason, message) => {
                    // Its account is sent when nothing else would send it; the contact
                    // follows once it is linked.
                    if reason == FailureReason::AccountNotSynced
                        && let Some(account) = records.get(&desk_id).and_then(|r| {
                            unlinked_account(round.mappings(module), module, &r.values(), &accounts)
                        })
                    {
                        batch.queue_stranded_accounts(&[account]).await?;
                    }
                    let twin = links.get(&desk_id).map(|l| l.salesforce_id.clone());
                    let key = records
                        .get(&desk_id)
                        .and_then(|r| DeskRecord::match_key(module, &r.values()))
                        .filter(|_| reason == FailureReason::MultipleMatches);
                    let logged = self
                        .log_push_failure(
                            &mut batch,
                            (module, desk_id, twin, settles),
                            (reason, message),
                            key,
                            &live,
                        )
                        .await?;
                    counts.failed += i32::from(logged);
                    continue;
                }
                Plan::Settle {
                    salesforce_id,
                    hash,
                } => {
                    // Nothing was written: Salesforce's record is the one last read, when.
                    let read = links.get(&desk_id).and_then(|l| l.salesforce_modstamp);
                    batch
                        .link(module, desk_id, &salesforce_id, &hash, read, None)
                        .await?;
                    if open_failures {
                        batch.resolve_push(module, desk_id).await?;
                    }
                    batch.drop_outbox(module, desk_id, settles).await?;
                    continue;
                }
                Plan::Update { hash, values, .. } => {
                    // The record as Salesforce now holds it: the last read with what was sent,
                    // which the next push compares with (it may come before a pull reads it).
                    let read = links
                        .get(&desk_id)
                        .and_then(|l| with_sent(l.salesforce_fields.as_deref(), &values));
                    (hash, false, read, None)
                }
                Plan::Create { hash, values } => {
                    // Made again in the account a purge kept its twin in: kept there still.
                    let kept = links
                        .get(&desk_id)
                        .and_then(|l| l.kept_account_id.clone())
                        .filter(|kept| {
                            account_field(round.mappings(module), module).is_some_and(|field| {
                                values.get(field).and_then(Value::as_str) == Some(kept.as_str())
                            })
                        });
                    (hash, true, None, kept)
                }
            };
            let Some(result) = outcomes.remove(&i) else {
                // Still being made: its queued changes stay; exporting, it is queued, as the
                // cursor passes it.
                if creating
                    && still_running.contains(&desk_id)
                    && cursor.is_some()
                    && settles.is_empty()
                {
                    batch.enqueue(module, desk_id).await?;
                }
                continue;
            };
            match (result.success, result.id) {
                (true, Some(sf_id)) => {
                    batch
                        .link(
                            module,
                            desk_id,
                            sf_id.as_str(),
                            &hash,
                            None,
                            read.as_deref(),
                        )
                        .await?;
                    if let Some(kept) = kept {
                        batch
                            .keep_accounts(&[(sf_id.as_str().to_owned(), kept)])
                            .await?;
                    }
                    // Its failures of going out, not those of coming in: a Salesforce
                    // version the desk refused still is, until the next read of the record
                    // (this push's, which the pull learns) says otherwise.
                    batch.resolve_push(module, desk_id).await?;
                    // Made again in Salesforce, its twin there deleted: what reading that
                    // one left waiting is over, as it will not be read again.
                    if let Some(gone) = links
                        .get(&desk_id)
                        .map(|l| l.salesforce_id.as_str())
                        .filter(|old| *old != sf_id.as_str())
                    {
                        batch.resolve_pull(module, gone).await?;
                    }
                    batch.drop_outbox(module, desk_id, settles).await?;
                    if creating && result.created != Some(false) {
                        counts.added += 1;
                    } else {
                        counts.updated += 1;
                    }
                }
                _ => {
                    let (code, message, fields) =
                        result.errors.into_iter().next().unwrap_or_else(|| {
                            (
                                "UNKNOWN_EXCEPTION".into(),
                                "no detail given".into(),
                                Vec::new(),
                            )
                        });
                    let mut reason = FailureReason::from_salesforce(&code, &message);
                    let field_note = if fields.is_empty() {
                        String::new()
                    } else {
                        format!(" (fields: {})", fields.join(", "))
                    };
                    let mut message = format!(
                        "Salesforce refused desk {object} {desk_id}: {code}: {message}{field_note}"
                    );
                    if code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
                        && let Some(describe) = &picklists
                        && let Some(hint) = picklist_hint(describe, round.mappings(module), &fields)
                    {
                        message.push_str(&hint);
                    }
                    if let Some((account, salesforce_account)) = gone_account(
                        round,
                        module,
                        (&fields, records.get(&desk_id)),
                        &code,
                        &accounts,
                        &missing_accounts,
                    ) {
                        match merged_accounts.as_ref().map(|m| m.get(&salesforce_account)) {
                            // Merged into another: the desk account is a duplicate now (its
                            // own next push says so), and the contact waits for a person to
                            // move it.
                            Ok(Some(master)) => {
                                let linked = match master_accounts.get(master) {
                                    Some(link) => {
                                        format!(", the twin of desk account {}", link.desk_id)
                                    }
                                    None => ", which no desk account is linked to yet".to_owned(),
                                };
                                reason = FailureReason::AccountNotSynced;
                                message = format!(
                                    "desk {object} {desk_id} belongs to desk account {account}, whose Salesforce Account {salesforce_account} was merged into Account {master}{linked}; it is not made again, which would undo the merge: move the contact to the account it was merged into, and it goes out"
                                );
                            }
                            Err(why) => {
                                reason = *why;
                                message = format!(
                                    "{message}; whether a merge deleted its account, Salesforce Account {salesforce_account}, could not be asked, so it is tried again"
                                );
                            }
                            // Deleted in Salesforce (an account takes its contacts with it):
                            // the desk account goes out again, matched by name or made anew,
                            // and the contact follows it.
                            Ok(None) => {
                                batch.unlink(Module::Accounts, account).await?;
                                batch.enqueue(Module::Accounts, account).await?;
                                reason = FailureReason::AccountNotSynced;
                                message = format!(
                                    "desk {object} {desk_id} belongs to desk account {account}, whose Salesforce Account {salesforce_account} was deleted; the account goes to Salesforce again with the next round, and the contact follows it (retried automatically)"
                                );
                            }
                        }
                    }
                    if let Some((why, what)) = unasked.get(&desk_id) {
                        reason = *why;
                        message = format!("{message}; {what}, so it is tried again");
                    }
                    // Its linked twin; not a record it was only matched to by key, which
                    // could sync (and so settle this failure) without it.
                    let twin = links
                        .get(&desk_id)
                        .filter(|_| !creating)
                        .map(|l| l.salesforce_id.clone());
                    let logged = self
                        .log_push_failure(
                            &mut batch,
                            (module, desk_id, twin, settles),
                            (reason, message),
                            None,
                            &live,
                        )
                        .await?;
                    counts.failed += i32::from(logged);
                }
            }
        }
        if let Some((name, last)) = cursor
            && unsent.is_none()
        {
            batch.set_cursor(name, None, None, Some(last)).await?;
        }
        let finished = self
            .finish(batch, Direction::DeskToSalesforce, module, counts)
            .await;
        match unsent {
            Some(e) => finished.and(Err(e)),
            None => finished,
        }
    }

    /// Pulls these Salesforce records by id on the push's way, counted with the round's pulls.
    async fn read_again(
        &self,
        round: &Round,
        module: Module,
        salesforce_ids: &[String],
        failed: FailedVersions,
    ) -> Result<(), SyncError> {
        let pulled = self.pull_ids(round, module, salesforce_ids, failed).await?;
        round
            .pulled_by_push
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(pulled);
        Ok(())
    }

    /// Logs a record that could not be sent. A transient failure keeps the record queued for
    /// its next attempt: its waiting change stays, and a record that had none (the first
    /// sync's export sends records no desk change queued) is queued now. Any other failure
    /// waits in the log for a person, and its change leaves the queue. `match_key` is the key
    /// a `MULTIPLE_MATCHES` record shares with the records it could not be told apart from.
    ///
    /// A record moved to the recycle bin (or purged) while it was on its way, not among the
    /// `live` the batch holds, is not sent again, and its move settled the failures it found:
    /// nothing is logged after it, and `false` says so.
    async fn log_push_failure(
        &self,
        batch: &mut SyncBatch<'_>,
        (module, desk_id, twin, settles): (Module, i64, Option<String>, &[i64]),
        (reason, message): (FailureReason, String),
        match_key: Option<String>,
        live: &HashSet<i64>,
    ) -> Result<bool, SyncError> {
        if !live.contains(&desk_id) {
            batch.drop_outbox(module, desk_id, settles).await?;
            return Ok(false);
        }
        let failure = NewFailure {
            direction: Direction::DeskToSalesforce,
            module,
            desk_id: Some(desk_id),
            salesforce_id: twin,
            reason,
            message,
            modstamp: None,
            match_key,
        };
        let logged = batch.fail(failure, &self.settings.retry).await?;
        if logged.next_attempt_at.is_none() {
            batch.drop_outbox(module, desk_id, settles).await?;
            return Ok(true);
        }
        batch.wake_if_edited_since(module, desk_id, settles).await?;
        if settles.is_empty() {
            batch.enqueue(module, desk_id).await?;
        }
        Ok(true)
    }

    /// Before creating, looks for an unlinked Salesforce twin by email (contacts) or name
    /// (accounts). One that a pull has not met (made since the round's pull, or one that could
    /// not come into the desk) meets its desk twin as a pull meets it: linked, the more
    /// recently changed side's values winning. Several are a failure, not a guess.
    async fn match_in_salesforce(
        &self,
        round: &Round,
        module: Module,
        records: &HashMap<i64, DeskRecord>,
        plans: &mut [(i64, Plan)],
    ) -> Result<(), SyncError> {
        let mut keys: Vec<String> = plans
            .iter()
            .filter(|(_, p)| matches!(p, Plan::Create { .. }))
            .filter_map(|(id, _)| {
                records
                    .get(id)
                    .and_then(|r| DeskRecord::match_key(module, &r.values()))
            })
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(());
        }
        let found = round.salesforce_by_key(module, &keys).await?;
        let all: Vec<String> = found.values().flatten().cloned().collect();
        let mut taken = self.store.desk_ids_by_salesforce(module, &all).await?;
        // A link to a desk record since purged keeps its Salesforce record for the record's
        // return, yet leaves it free to meet a live desk record with its key.
        let holders: Vec<i64> = taken.values().copied().collect();
        let present = desk::load(&self.store, module, &holders).await?;
        taken.retain(|_, holder| present.contains_key(holder));
        let mut sharing: HashMap<String, Vec<i64>> = HashMap::new();
        for (desk_id, plan) in plans.iter() {
            if matches!(plan, Plan::Create { .. })
                && let Some(key) = records
                    .get(desk_id)
                    .and_then(|r| DeskRecord::match_key(module, &r.values()))
            {
                sharing.entry(key).or_default().push(*desk_id);
            }
        }
        // The desk records not in this batch that share a key Salesforce has are as much its
        // twins as those in it: an edit that queues one of them alone settles nothing. One
        // in the recycle bin has nothing to send and leaves the match to the others.
        let matched: Vec<String> = found.keys().cloned().collect();
        for (key, others) in desk::unlinked_by_match_key(&self.store, module, &matched).await? {
            let ids = sharing.entry(key).or_default();
            for other in others.iter().filter(|d| !d.deleted()) {
                if !ids.contains(&other.id()) {
                    ids.push(other.id());
                }
            }
        }
        // Desk records whose update goes out in this batch, before its creates.
        let updated: HashSet<i64> = plans
            .iter()
            .filter(|(_, plan)| matches!(plan, Plan::Update { .. }))
            .map(|(desk_id, _)| *desk_id)
            .collect();
        // Each desk record with one free Salesforce twin, by its place in `plans`.
        let mut meeting: Vec<(usize, String)> = Vec::new();
        for (i, (desk_id, plan)) in plans.iter_mut().enumerate() {
            let Plan::Create { .. } = plan else {
                continue;
            };
            let Some(key) = records
                .get(desk_id)
                .and_then(|r| DeskRecord::match_key(module, &r.values()))
            else {
                continue;
            };
            let free: Vec<&String> = found
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|id| !taken.contains_key(*id))
                .collect();
            // A holder whose key the desk has changed since, its update going out before this
            // create, is giving that key up: no duplicate of the record taking it over.
            let linked: Vec<(&String, i64)> = found
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|id| taken.get(id).map(|&desk| (id, desk)))
                .filter(|(_, other)| other != desk_id)
                .filter(|(_, other)| {
                    !updated.contains(other)
                        || present.get(other).is_none_or(|holder| {
                            DeskRecord::match_key(module, &holder.values()).as_ref() == Some(&key)
                        })
                })
                .collect();
            match free.as_slice() {
                [] if !linked.is_empty() => {
                    let (sf, other) = linked[0];
                    *plan = Plan::Fail(
                        FailureReason::CrmIdAlreadyMapped,
                        format!(
                            "desk {object} {desk_id} looks like a duplicate: Salesforce {object} {sf} has the same {key_name} and is already linked to desk {object} {other}; if the two are one, move this one to the recycle bin, else change its {key_name}; then retry",
                            object = module.salesforce_object(),
                            key_name = desk::match_field(module),
                        ),
                    );
                }
                [] => {}
                [one] if sharing.get(&key).is_some_and(|d| d.len() > 1) => {
                    let desks: Vec<String> = sharing[&key].iter().map(i64::to_string).collect();
                    *plan = Plan::Fail(
                        FailureReason::MultipleMatches,
                        format!(
                            "desk {} records {} all match Salesforce {one}; move all but one to the recycle bin or change their {key_name}, and the next round tries the rest again",
                            module.salesforce_object(),
                            desks.join(", "),
                            key_name = desk::match_field(module),
                        ),
                    );
                }
                [one] => meeting.push((i, (*one).clone())),
                many => {
                    let ids: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                    *plan = Plan::Fail(
                        FailureReason::MultipleMatches,
                        format!(
                            "desk {} {desk_id} matches several Salesforce records ({}); merge them in Salesforce, and the next round tries again",
                            module.salesforce_object(),
                            ids.join(", ")
                        ),
                    );
                }
            }
        }
        if meeting.is_empty() {
            return Ok(());
        }
        let twins: Vec<String> = meeting.iter().map(|(_, sf)| sf.clone()).collect();
        // Each meets its desk record now, whatever failed when it was read alone.
        self.read_again(round, module, &twins, FailedVersions::TryAgain)
            .await?;
        let desk_ids: Vec<i64> = meeting.iter().map(|(i, _)| plans[*i].0).collect();
        let met = self.store.links_by_desk(module, &desk_ids).await?;
        let object = module.salesforce_object();
        for (i, sf) in meeting {
            let (desk_id, plan) = &mut plans[i];
            if met.contains_key(desk_id) {
                // Linked, as the pull links a first meeting (a desk side that won is queued
                // again) or the record a create in doubt made (linked at what it holds, a desk
                // edit since still waiting): its queued changes stay, and the next push sends
                // what the link does not hold, or drops them when it holds all.
                *plan = Plan::Wait;
                continue;
            }
            match self.store.pull_failure(module, &sf).await? {
                Some(FailureReason::AccountNotSynced) => {
                    *plan = Plan::Fail(
                        FailureReason::AccountNotSynced,
                        format!(
                            "desk {object} {desk_id} has the {key_name} of Salesforce {object} {sf}, which waits for its account to come into the desk; the two are linked once it does (retried automatically)",
                            key_name = desk::match_field(module),
                        ),
                    );
                }
                // Salesforce's record cannot come into the desk: the desk's values go out
                // over it, and the two are linked. A blank is no edit: where the desk has
                // none, Salesforce keeps its value, and the desk takes it once it can.
                _ => {
                    if let Plan::Create { values, hash } = plan {
                        let all = values.clone();
                        values.retain(|_, v| !blank(v));
                        *plan = Plan::Update {
                            salesforce_id: sf,
                            all,
                            values: std::mem::take(values),
                            hash: std::mem::take(hash),
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// Salesforce ids of the accounts a batch of desk contacts links to.
    async fn desk_account_links(
        &self,
        module: Module,
        records: &HashMap<i64, DeskRecord>,
    ) -> Result<AccountLinks, SyncError> {
        let mut links = AccountLinks::default();
        if module != Module::Contacts {
            return Ok(links);
        }
        let ids: Vec<i64> = records
            .values()
            .filter_map(|r| r.values().get("accountId").and_then(Value::as_i64))
            .collect();
        links.to_salesforce = self
            .store
            .salesforce_ids_by_desk(Module::Accounts, &ids)
            .await?;
        Ok(links)
    }
}

/// The fields named by an answer saying a write met a deleted or unknown record (`[]` when
/// it names none), or `None` for any other answer.
fn met_deleted(result: &RecordResult) -> Option<&[String]> {
    result.errors.iter().find_map(|(code, _, fields)| {
        matches!(
            code.as_str(),
            "ENTITY_IS_DELETED" | "NOT_FOUND" | "INVALID_CROSS_REFERENCE_KEY"
        )
        .then_some(fields.as_slice())
    })
}

/// The desk account (and the Salesforce account it was linked to) of a desk contact that
/// Salesforce refused because that account no longer exists there: deleted, and the contact
/// with it. The answer names the account field, or names none and the account is among
/// those found `missing`.
fn gone_account(
    round: &Round,
    module: Module,
    (fields, record): (&[String], Option<&DeskRecord>),
    code: &str,
    accounts: &AccountLinks,
    missing: &HashSet<String>,
) -> Option<(i64, String)> {
    if module != Module::Contacts
        || !matches!(code, "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY")
    {
        return None;
    }
    let account = record?.values().get("accountId")?.as_i64()?;
    let salesforce = accounts.to_salesforce.get(&account)?;
    let field = account_field(round.mappings(module), module)?;
    let named = fields.iter().any(|f| f.eq_ignore_ascii_case(field));
    (named || (fields.is_empty() && missing.contains(salesforce)))
        .then(|| (account, salesforce.clone()))
}

/// The Salesforce accounts of the desk contacts Salesforce refused for meeting a deleted
/// record it did not name: which of them are gone, asked of Salesforce; or, when it could not
/// be asked, those contacts and why.
async fn missing_accounts(
    round: &Round,
    module: Module,
    refused: impl Iterator<Item = (i64, &RecordResult)>,
    records: &HashMap<i64, DeskRecord>,
    accounts: &AccountLinks,
) -> Result<HashSet<String>, (Vec<i64>, FailureReason)> {
    if module != Module::Contacts {
        return Ok(HashSet::new());
    }
    let (contacts, mut asked): (Vec<i64>, Vec<String>) = refused
        .filter(|(_, result)| met_deleted(result).is_some_and(|fields| fields.is_empty()))
        .filter_map(|(desk_id, _)| {
            let account = records.get(&desk_id)?.values().get("accountId")?.as_i64()?;
            Some((desk_id, accounts.to_salesforce.get(&account)?.clone()))
        })
        .unzip();
    asked.sort();
    asked.dedup();
    round
        .missing(Module::Accounts.salesforce_object(), &asked)
        .await
        .map_err(|why| (contacts, why))
}

/// What a person needs to fix a value a restricted picklist refused: the desk field it came
/// from, and the values the picklist takes.
fn picklist_hint(
    describe: &Describe,
    mappings: &[super::mapping::Mapping],
    fields: &[String],
) -> Option<String> {
    const SHOWN: usize = 25;
    let field = describe.field(fields.first()?)?;
    let desk = mappings
        .iter()
        .find(|m| m.salesforce_field.eq_ignore_ascii_case(&field.name))?;
    let values: Vec<&str> = field
        .picklist_values
        .iter()
        .filter(|v| v.active)
        .map(|v| v.value.as_str())
        .collect();
    let takes = match values.len() {
        0 => String::new(),
        n => format!(
            " (it takes {}{})",
            values[..n.min(SHOWN)].join(", "),
            if n > SHOWN { ", …" } else { "" }
        ),
    };
    Some(format!(
        "; the desk's {} holds a value the restricted picklist {} does not have{takes}: change the value in the desk (the edit goes out at once), or add it to the picklist in Salesforce and retry",
        desk.desk_field, field.name
    ))
}
