use chrono::{DateTime, Utc};
use entity::account::{self, Column, Entity as Accounts};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect,
};

use super::contacts::{check_mass_update, like_pattern, name_key};
use super::create_keys::{self, CreateKey};
use super::page::{into_page, paginate};
use super::sync::{enqueue, enqueue_all, settle_pushes};
use super::{Page, PageRequest, Store, StoreError, StoreResult};
use crate::domain::{
    AccountFields, AccountId, AccountInput, AccountPatch, DeskAction, DeskEntity, Module,
};

#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// Substring of the account name, ignoring case.
    pub name: Option<String>,
    pub updated_since: Option<DateTime<Utc>>,
    /// `true` lists the recycle bin instead of live records.
    pub deleted: bool,
}

pub fn account_input(model: &account::Model) -> AccountInput {
    AccountInput {
        name: Some(model.name.clone()),
        website: model.website.clone(),
        phone: model.phone.clone(),
        industry: model.industry.clone(),
        account_type: model.account_type.clone(),
        employees: model.employees.map(i64::from),
        annual_revenue: model.annual_revenue,
        billing_street: model.billing_street.clone(),
        billing_city: model.billing_city.clone(),
        billing_state: model.billing_state.clone(),
        billing_postal_code: model.billing_postal_code.clone(),
        billing_country: model.billing_country.clone(),
        description: model.description.clone(),
    }
}

pub(crate) fn set_fields(active: &mut account::ActiveModel, f: AccountFields) {
    active.name_key = Set(Some(name_key(&f.name)));
    active.name = Set(f.name);
    active.website = Set(f.website);
    active.phone = Set(f.phone);
    active.industry = Set(f.industry);
    active.account_type = Set(f.account_type);
    active.employees = Set(f.employees);
    active.annual_revenue = Set(f.annual_revenue);
    active.billing_street = Set(f.billing_street);
    active.billing_city = Set(f.billing_city);
    active.billing_state = Set(f.billing_state);
    active.billing_postal_code = Set(f.billing_postal_code);
    active.billing_country = Set(f.billing_country);
    active.description = Set(f.description);
}

impl Store {
    pub async fn account(&self, id: AccountId) -> StoreResult<Option<account::Model>> {
        Ok(Accounts::find_by_id(id).one(self.connection()).await?)
    }

    pub async fn accounts_by_ids(&self, ids: &[AccountId]) -> StoreResult<Vec<account::Model>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(Accounts::find()
            .filter(super::one_of(
                self.backend(),
                Column::Id,
                ids.iter().map(|id| id.0),
            ))
            .all(self.connection())
            .await?)
    }

    pub async fn accounts(
        &self,
        filter: &AccountFilter,
        page: PageRequest,
    ) -> StoreResult<Page<account::Model>> {
        let select = accounts_matching(filter);
        let items = paginate(select, Column::Id, page)
            .all(self.connection())
            .await?;
        Ok(into_page(items, page))
    }

    /// How many accounts `filter` lists, on every page.
    pub async fn count_accounts(&self, filter: &AccountFilter) -> StoreResult<u64> {
        Ok(sea_orm::PaginatorTrait::count(accounts_matching(filter), self.connection()).await?)
    }

    /// Makes an account; under a `key` a create made already, the account it made.
    pub async fn create_account(
        &self,
        input: &AccountInput,
        key: Option<&CreateKey>,
    ) -> StoreResult<account::Model> {
        let fields = input.validate()?;
        let mut txn = self.write().await?;
        if let Some(made) =
            create_keys::made_before::<Accounts>(&*txn, key, "account", AccountId).await?
        {
            return Ok(made);
        }
        let now = Utc::now();
        let mut active = account::ActiveModel {
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            ..Default::default()
        };
        set_fields(&mut active, fields);
        let model = active.insert(&*txn).await?;
        if let Some(key) = key {
            create_keys::remember(&*txn, key, "account", model.id.0).await?;
        }
        enqueue(&*txn, Module::Accounts, model.id.0).await?;
        txn.tells(DeskEntity::Account, DeskAction::Created, model.id.0);
        txn.commit().await?;
        Ok(model)
    }

    /// Applies a patch to one account; with `expected` (the `updatedAt` the caller read),
    /// only if no one changed it since.
    pub async fn update_account(
        &self,
        id: AccountId,
        patch: &AccountPatch,
        expected: Option<DateTime<Utc>>,
    ) -> StoreResult<account::Model> {
        let mut updated = self.update_accounts(&[id], patch, expected).await?;
        Ok(updated.remove(0))
    }

    /// Applies one patch to many accounts, all or nothing.
    pub async fn mass_update_accounts(
        &self,
        ids: &[AccountId],
        patch: &AccountPatch,
    ) -> StoreResult<Vec<account::Model>> {
        self.update_accounts(ids, patch, None).await
    }

    async fn update_accounts(
        &self,
        ids: &[AccountId],
        patch: &AccountPatch,
        expected: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<account::Model>> {
        // A record named twice is one record to update.
        let ids = &super::distinct(ids)[..];
        check_mass_update(ids.len())?;
        let mut txn = self.write().await?;
        let accounts = live_accounts(&*txn, ids).await?;
        // Stamped once the records are locked: an edit that waited for another writer is not
        // stamped as older than what that writer wrote.
        let now = Utc::now();
        let mut out = Vec::with_capacity(ids.len());
        let mut left_keys = Vec::new();
        let mut changed = Vec::new();
        for current in accounts {
            let id = current.id;
            super::unchanged_since(format_args!("account {id}"), current.updated_at, expected)?;
            let before = account_input(&current);
            let fields = patch.apply(before.clone()).validate().map_err(|e| {
                if ids.len() > 1 {
                    e.about(format_args!("account {id}"))
                } else {
                    e
                }
            })?;
            // A save that changes nothing writes nothing: no newer stamp to win a conflict
            // with, nothing for the sync to send, no change to announce.
            if before.validate().as_ref() == Ok(&fields) {
                out.push(current);
                continue;
            }
            let key = current.name_key.clone();
            let mut active: account::ActiveModel = current.into();
            set_fields(&mut active, fields);
            active.updated_at = Set(now);
            let model = active.update(&*txn).await?;
            changed.push(model.id.0);
            left_keys.extend(key.filter(|key| model.name_key.as_ref() != Some(key)));
            out.push(model);
        }
        enqueue_all(&*txn, Module::Accounts, &changed).await?;
        super::sync::wake_pushes(&*txn, Module::Accounts, changed.iter().copied()).await?;
        super::sync::wake_pulls_keyed(&*txn, Module::Accounts, left_keys).await?;
        txn.tells_all(DeskEntity::Account, DeskAction::Updated, changed);
        txn.commit().await?;
        Ok(out)
    }

    /// Moves an account to the recycle bin. Its contacts stay, still linked to it.
    pub async fn delete_account(&self, id: AccountId) -> StoreResult<account::Model> {
        let mut txn = self.write().await?;
        let current = find(&*txn, id).await?;
        if current.deleted_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "account {id} is in the recycle bin already; purgeAccount removes it for good"
            )));
        }
        let key = current.name_key.clone();
        let mut active: account::ActiveModel = current.into();
        active.deleted_at = Set(Some(Utc::now()));
        let model = active.update(&*txn).await?;
        let resolved = settle_pushes(&*txn, Module::Accounts, id.0).await?;
        super::sync::wake_pulls_keyed(&*txn, Module::Accounts, key.into_iter().collect()).await?;
        txn.tells(DeskEntity::Account, DeskAction::Deleted, id.0);
        txn.commit_publishing(self, resolved).await?;
        Ok(model)
    }

    pub async fn restore_account(&self, id: AccountId) -> StoreResult<account::Model> {
        let mut txn = self.write().await?;
        let current = binned_account(&*txn, id).await?;
        let mut active: account::ActiveModel = current.into();
        active.deleted_at = Set(None);
        active.updated_at = Set(Utc::now());
        let model = active.update(&*txn).await?;
        enqueue(&*txn, Module::Accounts, model.id.0).await?;
        // A failed push logged as it was binned goes out now, as an edit's would, and the
        // Salesforce contacts that waited for it to come out of the bin come in.
        super::sync::wake_pushes(&*txn, Module::Accounts, [model.id.0]).await?;
        super::sync::wake_contacts_awaiting_twin_of(&*txn, id).await?;
        // A Salesforce account that met it among others in the bin may meet it alone now.
        let key = model.name_key.clone();
        super::sync::wake_pulls_keyed(&*txn, Module::Accounts, key.into_iter().collect()).await?;
        txn.tells(DeskEntity::Account, DeskAction::Restored, id.0);
        txn.commit().await?;
        Ok(model)
    }

    /// Removes an account from the recycle bin for good; its contacts and tickets are unlinked
    /// in the desk, and its contacts stay in its Salesforce account.
    pub async fn purge_account(&self, id: AccountId) -> StoreResult<()> {
        let mut txn = self.write().await?;
        // Its contacts are locked first, then the account, then their links: the order a
        // ticket written for a contact takes (the contact, then its account) and a sync batch
        // (a contact, then its link). Another would deadlock against one (PostgreSQL). A
        // contact cannot join a binned account meanwhile, so none escapes the lock.
        super::contacts::lock_contacts_of(&*txn, id).await?;
        let binned = binned_account(&*txn, id).await?;
        if let Some(deleted_at) = binned.deleted_at {
            super::sync::note_purge(&*txn, Module::Accounts, id.0, deleted_at).await?;
        }
        super::sync::keep_salesforce_account(&*txn, id).await?;
        // A contact whose push waited for this account goes out now without it, as it
        // would had a person moved it off the account; and a Salesforce contact that waited
        // for it in the bin comes in without it.
        super::sync::wake_contacts_of(&*txn, &[id.0]).await?;
        super::sync::wake_contacts_awaiting_twin_of(&*txn, id).await?;
        let contacts = super::contacts::unlink_contacts(&*txn, id).await?;
        let tickets =
            super::tickets::unlink_tickets(&*txn, entity::ticket::Column::AccountId, id.0).await?;
        Accounts::delete_by_id(id).exec(&*txn).await?;
        // A Salesforce account that met it among others in the bin may meet one alone now.
        super::sync::wake_pulls_keyed(
            &*txn,
            Module::Accounts,
            binned.name_key.into_iter().collect(),
        )
        .await?;
        txn.tells(DeskEntity::Account, DeskAction::Purged, id.0);
        txn.tells_all(DeskEntity::Contact, DeskAction::Updated, contacts);
        txn.tells_all(DeskEntity::Ticket, DeskAction::Updated, tickets);
        txn.commit().await?;
        Ok(())
    }
}

/// Reads a account to change it: on PostgreSQL its row stays locked until the transaction
/// ends, so a sync batch writing the same account waits for this one, or this for it.
async fn find(db: &impl ConnectionTrait, id: AccountId) -> StoreResult<account::Model> {
    Accounts::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("account {id}")))
}

/// These accounts, in the order named, locked for the write (see [`super::live_records`]).
async fn live_accounts(
    db: &impl ConnectionTrait,
    ids: &[AccountId],
) -> StoreResult<Vec<account::Model>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    super::live_records::<Accounts>(db, Column::Id, &ids, "account").await
}

impl super::Binnable for account::Model {
    fn key(&self) -> i64 {
        self.id.0
    }

    fn binned(&self) -> bool {
        self.deleted_at.is_some()
    }
}

async fn binned_account(db: &impl ConnectionTrait, id: AccountId) -> StoreResult<account::Model> {
    let model = find(db, id).await?;
    if model.deleted_at.is_none() {
        return Err(StoreError::Conflict(format!(
            "account {id} is not in the recycle bin"
        )));
    }
    Ok(model)
}

/// The rows `filter` lists, in no order.
fn accounts_matching(filter: &AccountFilter) -> sea_orm::Select<Accounts> {
    let mut select = Accounts::find().filter(super::desk_rows(
        (Column::UpdatedAt, Column::DeletedAt),
        filter.deleted,
        filter.updated_since,
    ));
    if let Some(name) = &filter.name {
        select = select.filter(Column::NameKey.like(like_pattern(name)));
    }
    select
}
