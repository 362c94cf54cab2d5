//! Creates whose answer was lost. Without an external id (`Helpdesk_Id__c`) a create cannot
//! be repeated safely, so each is noted before it is sent; when its answer never arrives (the
//! process died, the connection dropped after Salesforce saved it), the next round looks for
//! what it made before the record is read or sent again: a Salesforce record the integration
//! user created since, linked to nothing, that names the desk record in a plain
//! `Helpdesk_Id__c` or, sent without its value (no such field, a unique one, one the integration
//! user cannot write, or a record made again beside a deleted one holding it), holds every value sent (or, beyond doubt, holds
//! them as the org's automation may have saved them: see `pair`). Found, it is linked as the
//! answer would have linked it. Not found, it is in doubt while Salesforce may still be
//! making it (a call runs up to ten minutes, past a connection cut or a process killed), and
//! the record waits; after that the create never happened and the record is sent again.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::SyncError;
use super::engine::{Counts, Round, SyncEngine, url_sized};
use super::pull::{Incoming, READ_BY_ID, read_ids};
use super::push::{desk_id_field, desk_ref};
use super::records::{SalesforceValues, changed_since, hash};
use crate::domain::{Direction, Module};
use crate::salesforce::soql::{Condition, Ident, Literal, Select};

/// How far behind ours the org's clock may be: a create is looked for among records created
/// up to this long before it was sent.
const CLOCK_SKEW: Duration = Duration::minutes(15);

impl SyncEngine {
    /// Settles the module's creates that were sent without their answer recorded: links each
    /// to the record it made, or forgets it when it made none. Costs nothing when there are
    /// none, which is always but after a crash or a lost answer.
    pub(super) async fn find_lost_creates(
        &self,
        round: &Round,
        module: Module,
    ) -> Result<Counts, SyncError> {
        let mut pending = self.store.pending_creates(module).await?;
        if pending.is_empty() {
            return Ok(Counts::default());
        }
        // Taken before Salesforce is asked: a note whose window ends during the lookup is
        // looked for once more rather than given up unseen. By the clock the notes were
        // stamped with, which the process that sent them (dead now, perhaps) shares.
        let made_by = self.store.shared_now().await? - self.settings.unanswered_create;
        // A record linked meanwhile (a pull met the create's record by email or name) is
        // settled: looking on could only pair it with another record.
        let linked_already = self
            .store
            .salesforce_ids_by_desk(
                module,
                &pending.iter().map(|p| p.desk_id).collect::<Vec<_>>(),
            )
            .await?;
        if !linked_already.is_empty() {
            let settled: Vec<i64> = linked_already.keys().copied().collect();
            let mut batch = self.store.begin_sync().await?;
            batch.settle_pending_creates(module, &settled).await?;
            batch.commit().await?;
            pending.retain(|p| !linked_already.contains_key(&p.desk_id));
        }
        let Some(first) = pending.iter().map(|p| p.sent_at).min() else {
            return Ok(Counts::default());
        };
        let sent: Vec<(i64, SalesforceValues)> = pending
            .iter()
            .map(|p| (p.desk_id, serde_json::from_str(&p.sent).unwrap_or_default()))
            .collect();
        let created = self
            .created_since(round, module, first - CLOCK_SKEW, &sent)
            .await?;
        let linked = self.store.desk_ids_by_salesforce(module, &created).await?;
        let unlinked: Vec<String> = created
            .into_iter()
            .filter(|id| !linked.contains_key(id))
            .collect();
        let mut found: Vec<Incoming> = Vec::new();
        for chunk in unlinked.chunks(READ_BY_ID) {
            found.extend(read_ids(round, module, chunk).await?);
        }

        round.still_current(&self.integrations).await?;
        let mut batch = self.store.begin_sync().await?;
        let mut counts = Counts::default();
        let mut linked_now = std::collections::HashSet::new();
        let read: Vec<(Option<i64>, &str)> = found
            .iter()
            .map(|record| (record.desk_ref, record.profile.as_str()))
            .collect();
        // An upsert's record names its desk record: only that one is its answer.
        let named_only: Vec<bool> = pending.iter().map(|p| p.upsert).collect();
        for (note, at) in pair(&sent, &read, true, &named_only) {
            let (desk_id, values) = &sent[note];
            // Linked at what was sent, as the answer would have linked it: an edit made in
            // Salesforce since is news the next pull brings, not the state of the link.
            let record = &found[at];
            linked_now.insert(*desk_id);
            batch
                .link(module, *desk_id, &record.id, &hash(values), None, None)
                .await?;
            batch
                .resolve(module, Some(*desk_id), Some(&record.id))
                .await?;
            counts.added += 1;
        }
        // Found ones are settled by their link; of the others, those whose every sending
        // (an upsert may have gone more than once) was long enough ago were never made, and
        // the rest stay in doubt.
        let mut last_sent: std::collections::HashMap<i64, DateTime<Utc>> = Default::default();
        for p in &pending {
            let at = last_sent.entry(p.desk_id).or_insert(p.sent_at);
            *at = (*at).max(p.sent_at);
        }
        let desk_ids: Vec<i64> = last_sent
            .into_iter()
            .filter(|(desk_id, at)| *at <= made_by || linked_now.contains(desk_id))
            .map(|(desk_id, _)| desk_id)
            .collect();
        batch.settle_pending_creates(module, &desk_ids).await?;
        let settled = pending
            .iter()
            .filter(|p| desk_ids.contains(&p.desk_id))
            .count();
        tracing::info!(
            %module,
            pending = sent.len(),
            found = counts.added,
            in_doubt = sent.len() - settled,
            "creates whose answer was lost were looked for in Salesforce"
        );
        self.finish(batch, Direction::DeskToSalesforce, module, counts)
            .await
    }

    /// The ids of the module's records created since `since` by the signed-in user (when the
    /// sign-in says who that is), narrowed to those whose `Helpdesk_Id__c` names one of the
    /// desk records, or whose first mandatory field holds a value one of the creates sent: a
    /// few queries, five to a call, however many records the sync created meanwhile.
    async fn created_since(
        &self,
        round: &Round,
        module: Module,
        since: DateTime<Utc>,
        sent: &[(i64, SalesforceValues)],
    ) -> Result<Vec<String>, SyncError> {
        let object = module.salesforce_object();
        let mut base = Select::new(object, &["Id"])?
            .filter(Condition::gte(&Ident::parse("CreatedDate")?, since));
        if let Some(user) = round
            .client
            .identity_url()
            .await?
            .as_deref()
            .and_then(user_of)
        {
            base = base.filter(Condition::eq(
                &Ident::parse("CreatedById")?,
                Literal::Text(user.to_owned()),
            ));
        }
        let describe = round.client.describe(object).await?;
        let mandatory = describe
            .fields
            .iter()
            .filter(|f| f.required_on_create() && f.filterable)
            .find_map(|f| {
                let values: Vec<String> = sent
                    .iter()
                    .map(|(_, v)| {
                        v.iter()
                            .find(|(name, _)| name.eq_ignore_ascii_case(&f.name))
                            .and_then(|(_, value)| value.as_str())
                            .map(str::to_owned)
                    })
                    .collect::<Option<_>>()?;
                Some((Ident::parse(&f.name).ok()?, values))
            });
        // A plain Helpdesk_Id__c finds a record whatever was edited since, its mandatory field
        // included; the mandatory field finds it where there is none.
        let by_desk_id = desk_id_field(&describe, &round.desk_tag)
            .filter(|f| f.filterable)
            .and_then(|f| Ident::parse(&f.name).ok())
            .map(|field| {
                let refs = sent.iter().map(|(id, _)| desk_ref(&round.desk_tag, *id));
                (field, refs.collect())
            });
        let narrowings: Vec<(Ident, Vec<String>)> =
            by_desk_id.into_iter().chain(mandatory).collect();
        let id = Ident::parse("Id")?;
        let mut soqls = Vec::new();
        for (field, mut values) in narrowings.iter().cloned() {
            values.sort();
            values.dedup();
            soqls.extend(url_sized(&values).map(|chunk| {
                base.clone()
                    .filter(Condition::in_list(
                        &field,
                        chunk.iter().map(|v| Literal::Text(v.clone())),
                    ))
                    .order_by(&id, true)
                    .build()
            }));
        }
        if narrowings.is_empty() {
            soqls.push(base.order_by(&id, true).build());
        }
        let mut ids = Vec::new();
        for rows in round.client.queries(&soqls).await {
            ids.extend(
                rows?
                    .iter()
                    .filter_map(|row| row.get("Id").and_then(Value::as_str))
                    .map(str::to_owned),
            );
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// Of the records a pull is about to make in the desk (`creates`, indices into `incoming`),
/// those a create in doubt made, each with the desk record it was sent from: created by the
/// signed-in user since it was sent (less the clock's skew), holding every value it sent,
/// paired in the order they were sent as [`SyncEngine::find_lost_creates`] pairs them. A
/// create Salesforce commits after the round looked for it comes to the pull first.
///
/// Called inside the pull's batch, it asks Salesforce nothing: the signed-in `user` was
/// read before the batch, for a sign-in that call may need saves a rotated token through the
/// desk's writer, which the batch holds.
pub(super) fn made_by_creates_in_doubt(
    user: Option<&str>,
    pending: &[entity::pending_create::Model],
    incoming: &[Incoming],
    creates: &[usize],
) -> Vec<(usize, i64)> {
    // An upsert's record names its desk record: it is no unnamed record's create.
    let pending: Vec<&entity::pending_create::Model> =
        pending.iter().filter(|p| !p.upsert).collect();
    let Some(first) = pending.iter().map(|p| p.sent_at).min() else {
        return Vec::new();
    };
    let since = first - CLOCK_SKEW;
    let candidates: Vec<(usize, &Incoming)> = creates
        .iter()
        .map(|&idx| (idx, &incoming[idx]))
        .filter(|(_, record)| record.desk_ref.is_none())
        .filter(|(_, record)| {
            let Ok(read) = serde_json::from_str::<serde_json::Map<String, Value>>(&record.profile)
            else {
                return false;
            };
            let by_us = match (user, read.get("CreatedById").and_then(Value::as_str)) {
                (Some(user), Some(by)) => by.get(..15) == user.get(..15),
                (None, _) => true,
                (Some(_), None) => false,
            };
            let made = read
                .get("CreatedDate")
                .and_then(Value::as_str)
                .and_then(|at| DateTime::parse_from_rfc3339(&at.replace("+0000", "+00:00")).ok());
            by_us && made.is_some_and(|at| at >= since)
        })
        .collect();
    let sent: Vec<(i64, SalesforceValues)> = pending
        .iter()
        .map(|p| (p.desk_id, serde_json::from_str(&p.sent).unwrap_or_default()))
        .collect();
    // Named records are not candidates: each waits for the note that named it.
    let read: Vec<(Option<i64>, &str)> = candidates
        .iter()
        .map(|(_, record)| (None, record.profile.as_str()))
        .collect();
    // Exactly only: linked here at what Salesforce holds, a record taken as saved would have
    // the desk's queued values sent back over what the org's automation saved.
    pair(&sent, &read, false, &[])
        .into_iter()
        .map(|(note, at)| (candidates[at].0, sent[note].0))
        .collect()
}

/// A record a create in doubt may have made: the desk record it names, if any, and every
/// field read.
type Read<'a> = (Option<i64>, &'a str);

/// Pairs creates in doubt (each desk id with the values sent, in the order sent) with the
/// records they may have made (each with the desk record it names, if any, and every field
/// read): index pairs into the two. In the order sent, each takes the record that names it (a
/// plain `Helpdesk_Id__c` holds the desk id; of several sendings of one desk record, the one
/// whose values it holds), else the first, in the order Salesforce made
/// them, that holds all it sent, so that twins sent with the same values pair up in turn.
/// With `as_saved`, those left then take a record that holds what they sent as the org's
/// automation may have saved it (`holds_as_saved`: a trigger that tidied a name must not
/// make it twice), where that is beyond doubt: the one record it holds so, held so by no
/// other create left. A note `named_only` marks (an upsert's) takes only a record naming it.
fn pair(
    sent: &[(i64, SalesforceValues)],
    found: &[Read<'_>],
    as_saved: bool,
    named_only: &[bool],
) -> Vec<(usize, usize)> {
    let named_only = |note: usize| named_only.get(note).copied().unwrap_or(false);
    let mut taken = vec![false; found.len()];
    let mut pairs = Vec::new();
    let mut left = Vec::new();
    let free = |taken: &[bool], test: &dyn Fn(&Read<'_>) -> bool| {
        (0..found.len()).find(|&at| !taken[at] && test(&found[at]))
    };
    // A record naming its desk record is the sending's whose values it holds, the latest
    // such; holding none's (edited in Salesforce since), the latest sending's. An upsert may
    // have gone more than once, a later one refused while the first still ran, and a
    // record linked at values it never held would have them taken for Salesforce's.
    let mut named = vec![None; sent.len()];
    for holding in [true, false] {
        for (note, (desk_id, values)) in sent.iter().enumerate().rev() {
            if named[note].is_some() {
                continue;
            }
            let found = free(&taken, &|(names, read)| {
                *names == Some(*desk_id)
                    && (!holding || changed_since(values, Some(read)).is_empty())
            });
            if let Some(at) = found {
                taken[at] = true;
                named[note] = Some(at);
            }
        }
    }
    for (note, (_, values)) in sent.iter().enumerate() {
        let at = named[note].or_else(|| {
            free(&taken, &|(names, read)| {
                names.is_none()
                    && !named_only(note)
                    && !values.is_empty()
                    && changed_since(values, Some(read)).is_empty()
            })
        });
        match at {
            Some(at) => {
                taken[at] = true;
                pairs.push((note, at));
            }
            None => left.push(note),
        }
    }
    if !as_saved {
        return pairs;
    }
    let holds = |note: usize, at: usize| {
        !taken[at] && found[at].0.is_none() && holds_as_saved(found[at].1, &sent[note].1)
    };
    for &note in left.iter().filter(|&&note| !named_only(note)) {
        let mut held = (0..found.len()).filter(|&at| holds(note, at));
        if let (Some(at), None) = (held.next(), held.next())
            && left
                .iter()
                .filter(|&&other| !named_only(other) && holds(other, at))
                .count()
                == 1
        {
            pairs.push((note, at));
        }
    }
    pairs
}

/// Whether a record read (`read`, every field) holds the values a create sent as the org's
/// automation may have saved them: text in another case, a number rounded to a whole one,
/// a default filled where nothing was sent. At least one value must have been sent.
fn holds_as_saved(read: &str, values: &SalesforceValues) -> bool {
    let Ok(read) = serde_json::from_str::<serde_json::Map<String, Value>>(read) else {
        return false;
    };
    let mut sent = values
        .iter()
        .filter(|(_, value)| !value.is_null())
        .peekable();
    sent.peek().is_some()
        && sent.all(|(field, value)| {
            let saved = read
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(field))
                .map(|(_, saved)| saved);
            match (value, saved) {
                (Value::String(sent), Some(Value::String(saved))) => {
                    sent.trim().to_lowercase() == saved.trim().to_lowercase()
                }
                (Value::Number(sent), Some(Value::Number(saved))) => sent
                    .as_f64()
                    .zip(saved.as_f64())
                    .is_some_and(|(sent, saved)| (sent - saved).abs() <= 0.5),
                (sent, Some(saved)) => sent == saved,
                (_, None) => false,
            }
        })
}

/// The user id an identity URL ends with (`…/id/{org}/{user}`).
pub(super) fn user_of(identity: &str) -> Option<&str> {
    let user = identity.trim_end_matches('/').rsplit('/').next()?;
    (user.len() >= 15 && user.starts_with("005")).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, Value)]) -> SalesforceValues {
        pairs
            .iter()
            .map(|(field, value)| ((*field).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn creates_pair_with_what_they_made_exactly_first_then_as_automation_saved_it() {
        use serde_json::json;
        let sent = vec![
            (
                1,
                values(&[("LastName", json!("smith")), ("Title", Value::Null)]),
            ),
            (
                2,
                values(&[("LastName", json!("Smith")), ("Title", json!("CFO"))]),
            ),
            (
                3,
                values(&[
                    ("LastName", json!("o'brien")),
                    ("AnnualRevenue", json!(10.5)),
                ]),
            ),
        ];
        let read = [
            // A trigger capitalised the name and filled the title with its default.
            r#"{"Id":"003A","LastName":"Smith","Title":"Customer"}"#,
            r#"{"Id":"003B","LastName":"Smith","Title":"CFO"}"#,
            r#"{"Id":"003C","LastName":"O'Brien","AnnualRevenue":11}"#,
        ];
        let found: Vec<(Option<i64>, &str)> = read.iter().map(|r| (None, *r)).collect();
        let mut pairs = pair(&sent, &found, true, &[]);
        pairs.sort();
        // The exact pairing goes first, so the second create keeps its own record even
        // though the first, read as saved, would hold it too.
        assert_eq!(pairs, [(0, 0), (1, 1), (2, 2)]);
        assert_eq!(pair(&sent, &found, false, &[]), [(1, 1)], "exactly only");

        // One record two creates left would both hold as saved is neither's.
        let twins = vec![
            (
                1,
                values(&[("LastName", json!("smith")), ("Title", Value::Null)]),
            ),
            (
                2,
                values(&[("LastName", json!("smith")), ("Phone", json!("111"))]),
            ),
        ];
        let one = [(None, r#"{"Id":"003B","LastName":"Smith","Phone":"111"}"#)];
        assert_eq!(pair(&twins, &one, true, &[]), []);
        // But an upsert's note takes only a record naming its desk record: it is no rival
        // for one that names none, nor does it take one.
        assert_eq!(pair(&twins, &one, true, &[true, false]), [(1, 0)]);
        assert_eq!(pair(&twins[..1], &one, true, &[true]), []);

        // A record that names another desk record, or holds another value, is no one's.
        let found = [
            (Some(9), read[1]),
            (None, r#"{"Id":"003D","LastName":"Jones"}"#),
        ];
        assert_eq!(pair(&sent[1..2], &found, true, &[]), []);
        // Nothing sent but blanks pairs with nothing.
        assert!(!holds_as_saved(read[0], &values(&[("Title", Value::Null)])));
        // A number is held as saved rounded to a whole one, not further.
        let saved = r#"{"Id":"003E","LastName":"Ng","AnnualRevenue":1.1}"#;
        assert!(!holds_as_saved(
            saved,
            &values(&[("AnnualRevenue", json!(0.2))])
        ));
    }

    #[test]
    fn a_record_naming_its_desk_record_is_the_sending_s_whose_values_it_holds() {
        use serde_json::json;
        let sendings = vec![
            (
                7,
                values(&[("LastName", json!("Hypatia")), ("Title", json!("Teacher"))]),
            ),
            (
                7,
                values(&[
                    ("LastName", json!("Hypatia")),
                    ("Title", json!("Philosopher")),
                ]),
            ),
        ];
        let upserts = [true, true];
        // The first made it; the second, refused while the first still ran, did not.
        let first = [(
            Some(7),
            r#"{"Id":"003A","LastName":"Hypatia","Title":"Teacher"}"#,
        )];
        assert_eq!(pair(&sendings, &first, true, &upserts), [(0, 0)]);
        let second = [(
            Some(7),
            r#"{"Id":"003A","LastName":"Hypatia","Title":"Philosopher"}"#,
        )];
        assert_eq!(pair(&sendings, &second, true, &upserts), [(1, 0)]);
        // Edited in Salesforce since, it holds neither's: the latest sending's.
        let edited = [(
            Some(7),
            r#"{"Id":"003A","LastName":"Hypatia","Title":"Sage"}"#,
        )];
        assert_eq!(pair(&sendings, &edited, true, &upserts), [(1, 0)]);
    }

    #[test]
    fn the_user_is_the_identity_urls_last_part() {
        assert_eq!(
            user_of("https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA"),
            Some("005000000000001AAA")
        );
        assert_eq!(
            user_of("https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA/"),
            Some("005000000000001AAA")
        );
        assert_eq!(user_of("https://login.salesforce.com/id/"), None);
    }
}
