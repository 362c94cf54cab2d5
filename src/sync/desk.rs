//! Desk records as the engine sees them: one shape for contacts and accounts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{account, contact};
use serde_json::{Map, Value};

use super::SyncError;
use super::records::{account_fields, contact_fields, desk_values};
use crate::domain::{AccountId, ContactId, Invalid, Module};
use crate::store::{Store, StoreError, SyncBatch, account_input, contact_input};

pub(super) enum DeskRecord {
    Contact(contact::Model),
    Account(account::Model),
}

impl DeskRecord {
    pub fn id(&self) -> i64 {
        match self {
            DeskRecord::Contact(m) => m.id.0,
            DeskRecord::Account(m) => m.id.0,
        }
    }

    pub fn values(&self) -> Map<String, Value> {
        match self {
            DeskRecord::Contact(m) => desk_values(&contact_input(m)),
            DeskRecord::Account(m) => desk_values(&account_input(m)),
        }
    }

    pub fn deleted(&self) -> bool {
        self.deleted_at().is_some()
    }

    /// When it went to the recycle bin, while it is there.
    pub fn deleted_at(&self) -> Option<DateTime<Utc>> {
        match self {
            DeskRecord::Contact(m) => m.deleted_at,
            DeskRecord::Account(m) => m.deleted_at,
        }
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        match self {
            DeskRecord::Contact(m) => m.updated_at,
            DeskRecord::Account(m) => m.updated_at,
        }
    }

    /// The value records are matched on the first time: a contact's email, an account's name.
    pub fn match_key(module: Module, values: &Map<String, Value>) -> Option<String> {
        values.get(match_field(module)).and_then(key_of)
    }
}

/// The desk field records are matched on the first time.
pub(super) fn match_field(module: Module) -> &'static str {
    match module {
        Module::Contacts => "email",
        Module::Accounts => "name",
    }
}

/// A match field's value as a key: as the desk keys it ([`crate::domain::fold`]), never
/// empty.
pub(super) fn key_of(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(crate::domain::fold)
        .filter(|v| !v.is_empty())
}

/// Desk records by id, recycle bin included.
pub(super) async fn load(
    store: &Store,
    module: Module,
    ids: &[i64],
) -> Result<HashMap<i64, DeskRecord>, SyncError> {
    Ok(match module {
        Module::Contacts => contacts(store.contacts_by_ids(&contact_ids(ids)).await?),
        Module::Accounts => accounts(store.accounts_by_ids(&account_ids(ids)).await?),
    })
}

/// Desk records by id, recycle bin included, as the batch's transaction sees them and locked
/// for it to write (see `SyncBatch::contacts_for_update`).
pub(super) async fn load_for_update(
    batch: &SyncBatch<'_>,
    module: Module,
    ids: &[i64],
) -> Result<HashMap<i64, DeskRecord>, SyncError> {
    Ok(match module {
        Module::Contacts => contacts(batch.contacts_for_update(&contact_ids(ids)).await?),
        Module::Accounts => accounts(batch.accounts_for_update(&account_ids(ids)).await?),
    })
}

fn contact_ids(ids: &[i64]) -> Vec<ContactId> {
    ids.iter().map(|id| ContactId(*id)).collect()
}

fn account_ids(ids: &[i64]) -> Vec<AccountId> {
    ids.iter().map(|id| AccountId(*id)).collect()
}

fn contacts(models: Vec<contact::Model>) -> HashMap<i64, DeskRecord> {
    models
        .into_iter()
        .map(|m| (m.id.0, DeskRecord::Contact(m)))
        .collect()
}

fn accounts(models: Vec<account::Model>) -> HashMap<i64, DeskRecord> {
    models
        .into_iter()
        .map(|m| (m.id.0, DeskRecord::Account(m)))
        .collect()
}

/// Desk records with no Salesforce link whose match key is one of `keys`, by key. Those in
/// the recycle bin count only where no live record has the key: a binned duplicate leaves
/// the match to the others, and a Salesforce record that meets only a binned one brings it
/// back rather than arriving as a second record.
pub(super) async fn unlinked_by_match_key(
    store: &Store,
    module: Module,
    keys: &[String],
) -> Result<HashMap<String, Vec<DeskRecord>>, SyncError> {
    let records: Vec<DeskRecord> = match module {
        Module::Contacts => store
            .unlinked_contacts_by_emails(keys)
            .await?
            .into_iter()
            .map(DeskRecord::Contact)
            .collect(),
        Module::Accounts => store
            .unlinked_accounts_by_names(keys)
            .await?
            .into_iter()
            .map(DeskRecord::Account)
            .collect(),
    };
    let mut grouped: HashMap<String, Vec<DeskRecord>> = HashMap::new();
    for record in records {
        if let Some(key) = DeskRecord::match_key(module, &record.values()) {
            grouped.entry(key).or_default().push(record);
        }
    }
    for found in grouped.values_mut() {
        if found.iter().any(|r| !r.deleted()) {
            found.retain(|r| !r.deleted());
        }
    }
    Ok(grouped)
}

/// The ways Salesforce may hold a value whose key is `key`, for a lookup that sends keys to
/// it: Salesforce compares text ignoring case, but neither composes nor decomposes it, nor
/// takes σ and ς for one letter. The key, the key decomposed, and both with each σ that
/// ends a word written ς.
pub(super) fn spellings(key: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    if key.is_ascii() {
        return vec![key.to_owned()];
    }
    let chars: Vec<char> = key.chars().collect();
    let ending = |i: usize| {
        i > 0
            && chars[i - 1].is_alphabetic()
            && !chars.get(i + 1).is_some_and(|next| next.is_alphabetic())
    };
    let finals: String = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if c == 'σ' && ending(i) { 'ς' } else { c })
        .collect();
    let mut all = vec![
        key.nfd().collect::<String>(),
        finals.nfd().collect(),
        finals,
        key.to_owned(),
    ];
    all.sort();
    all.dedup();
    all
}

/// Whether the desk can hold these values of a record, as [`save`] would check them.
pub(super) fn valid(module: Module, values: &Map<String, Value>) -> Result<(), Invalid> {
    match module {
        Module::Contacts => contact_fields(values.clone()).map(drop),
        Module::Accounts => account_fields(values.clone()).map(drop),
    }
}

/// Creates or overwrites a desk record with these values, in the batch; one in the recycle
/// bin comes back from it unless it `stays_binned`. A value the desk refuses comes back as
/// `Err(Invalid)` for the failure log.
pub(super) async fn save(
    batch: &mut SyncBatch<'_>,
    module: Module,
    existing: Option<DeskRecord>,
    values: Map<String, Value>,
    stays_binned: bool,
) -> Result<Result<i64, Invalid>, SyncError> {
    let written = match (module, existing) {
        (Module::Contacts, existing) => {
            let fields = match contact_fields(values) {
                Ok(f) => f,
                Err(invalid) => return Ok(Err(invalid)),
            };
            match existing {
                Some(DeskRecord::Contact(m)) => batch
                    .write_contact(m, fields, stays_binned)
                    .await
                    .map(|m| m.id.0),
                _ => batch.create_contact(fields).await.map(|m| m.id.0),
            }
        }
        (Module::Accounts, existing) => {
            let fields = match account_fields(values) {
                Ok(f) => f,
                Err(invalid) => return Ok(Err(invalid)),
            };
            match existing {
                Some(DeskRecord::Account(m)) => batch
                    .write_account(m, fields, stays_binned)
                    .await
                    .map(|m| m.id.0),
                _ => batch.create_account(fields).await.map(|m| m.id.0),
            }
        }
    };
    match written {
        Ok(id) => Ok(Ok(id)),
        Err(StoreError::Invalid(invalid)) => Ok(Err(invalid)),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::spellings;

    #[test]
    fn a_key_goes_to_salesforce_in_every_spelling_it_may_hold() {
        assert_eq!(spellings("ada@example.com"), ["ada@example.com"]);
        let greek = spellings("σοφοκλήσ");
        for spelt in ["σοφοκλήσ", "σοφοκλής", "σοφοκλη\u{301}σ", "σοφοκλη\u{301}ς"]
        {
            assert!(greek.contains(&spelt.to_owned()), "{spelt} in {greek:?}");
        }
        assert_eq!(greek.len(), 4);
        assert_eq!(spellings("müller bau"), ["mu\u{308}ller bau", "müller bau"]);
    }
}
