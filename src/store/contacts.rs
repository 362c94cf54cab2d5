use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::contact::{self, Column, Entity as Contacts};
use sea_orm::sea_query::LikeExpr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::create_keys::{self, CreateKey};
use super::page::{into_page, paginate};
use super::sync::{enqueue, enqueue_all, settle_pushes};
use super::{Page, PageRequest, Store, StoreError, StoreResult};
use crate::domain::{
    AccountId, ContactFields, ContactId, ContactInput, ContactPatch, DeskAction, DeskEntity,
    Invalid, Module,
};

#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Exact match, ignoring case and surrounding spaces.
    pub email: Option<String>,
    /// Substring of the first or last name, ignoring case.
    pub name: Option<String>,
    pub account_id: Option<AccountId>,
    pub updated_since: Option<DateTime<Utc>>,
    /// `true` lists the recycle bin instead of live records.
    pub deleted: bool,
}

/// The largest number of records one mass update may touch.
pub const MASS_UPDATE_LIMIT: usize = 500;

/// A mass update names at least one record and at most [`MASS_UPDATE_LIMIT`].
pub(crate) fn check_mass_update(count: usize) -> StoreResult<()> {
    if count == 0 {
        return Err(Invalid::new("ids", "name at least one record to update").into());
    }
    if count > MASS_UPDATE_LIMIT {
        return Err(Invalid::new(
            "ids",
            format!("at most {MASS_UPDATE_LIMIT} records per mass update (got {count})"),
        )
        .into());
    }
    Ok(())
}

pub(crate) fn like_pattern(needle: &str) -> LikeExpr {
    let escaped = crate::domain::fold(needle)
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// An email as contacts are found by it: what the desk stores as its key.
pub(crate) fn email_key(email: &str) -> String {
    crate::domain::fold(email)
}

/// A name as searches compare it. Keys are made here rather than by the database's `lower()`,
/// which SQLite applies to ASCII letters only.
pub(crate) fn name_key(name: &str) -> String {
    crate::domain::fold(name)
}

pub fn contact_input(model: &contact::Model) -> ContactInput {
    ContactInput {
        first_name: model.first_name.clone(),
        last_name: Some(model.last_name.clone()),
        email: model.email.clone(),
        phone: model.phone.clone(),
        mobile: model.mobile.clone(),
        title: model.title.clone(),
        account_id: model.account_id,
        mailing_street: model.mailing_street.clone(),
        mailing_city: model.mailing_city.clone(),
        mailing_state: model.mailing_state.clone(),
        mailing_postal_code: model.mailing_postal_code.clone(),
        mailing_country: model.mailing_country.clone(),
        description: model.description.clone(),
    }
}

pub(crate) fn set_fields(active: &mut contact::ActiveModel, f: ContactFields) {
    active.name_key = Set(Some(name_key(&format!(
        "{} {}",
        f.first_name.as_deref().unwrap_or_default(),
        f.last_name
    ))));
    active.first_name = Set(f.first_name);
    active.last_name = Set(f.last_name);
    active.email_key = Set(f.email.as_ref().map(|e| e.normalized()));
    active.email = Set(f.email.map(|e| e.into_inner()));
    active.phone = Set(f.phone);
    active.mobile = Set(f.mobile);
    active.title = Set(f.title);
    active.account_id = Set(f.account_id);
    active.mailing_street = Set(f.mailing_street);
    active.mailing_city = Set(f.mailing_city);
    active.mailing_state = Set(f.mailing_state);
    active.mailing_postal_code = Set(f.mailing_postal_code);
    active.mailing_country = Set(f.mailing_country);
    active.description = Set(f.description);
}

impl Store {
    pub async fn contact(&self, id: ContactId) -> StoreResult<Option<contact::Model>> {
        Ok(Contacts::find_by_id(id).one(self.connection()).await?)
    }

    pub async fn contacts_by_ids(&self, ids: &[ContactId]) -> StoreResult<Vec<contact::Model>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(Contacts::find()
            .filter(super::one_of(
                self.backend(),
                Column::Id,
                ids.iter().map(|id| id.0),
            ))
            .all(self.connection())
            .await?)
    }

    pub async fn contacts(
        &self,
        filter: &ContactFilter,
        page: PageRequest,
    ) -> StoreResult<Page<contact::Model>> {
        let items = paginate(contacts_matching(filter), Column::Id, page)
            .all(self.connection())
            .await?;
        Ok(into_page(items, page))
    }

    /// How many contacts `filter` lists, on every page.
    pub async fn count_contacts(&self, filter: &ContactFilter) -> StoreResult<u64> {
        Ok(sea_orm::PaginatorTrait::count(contacts_matching(filter), self.connection()).await?)
    }

    /// How many live contacts each of these accounts has (none: left out).
    pub async fn contact_counts_of_accounts(
        &self,
        accounts: &[AccountId],
    ) -> StoreResult<HashMap<AccountId, u64>> {
        use sea_orm::sea_query::{Expr, ExprTrait};
        if accounts.is_empty() {
            return Ok(HashMap::new());
        }
        let counts: Vec<(i64, i64)> = Contacts::find()
            .select_only()
            .column(Column::AccountId)
            .expr(Expr::col(Column::Id).count())
            .filter(Column::DeletedAt.is_null())
            .filter(super::one_of(
                self.backend(),
                Column::AccountId,
                accounts.iter().map(|a| a.0),
            ))
            .group_by(Column::AccountId)
            .into_tuple()
            .all(self.connection())
            .await?;
        Ok(counts
            .into_iter()
            .map(|(account, n)| (AccountId(account), u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// The same page of live contacts of each of these accounts, in one query however many
    /// accounts: what a list of accounts showing their contacts asks for.
    pub async fn contacts_of_accounts(
        &self,
        accounts: &[AccountId],
        page: PageRequest,
    ) -> StoreResult<HashMap<AccountId, Page<contact::Model>>> {
        use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Order, Query};
        use sea_orm::{FromQueryResult, Iterable};
        if accounts.is_empty() {
            return Ok(HashMap::new());
        }
        let rank = Alias::new("rank_in_account");
        let mut ranked = Query::select();
        ranked
            .columns(Column::iter())
            .expr_as(
                Expr::cust("ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY id)"),
                rank.clone(),
            )
            .from(Contacts)
            .and_where(Column::DeletedAt.is_null())
            .and_where(super::one_of(
                self.backend(),
                Column::AccountId,
                accounts.iter().map(|a| a.0),
            ));
        if let Some(after) = page.after {
            ranked.and_where(Column::Id.gt(after));
        }
        // One more than the page, to tell whether there is a next.
        let select = Query::select()
            .column(Asterisk)
            .from_subquery(ranked.to_owned(), Alias::new("ranked"))
            .and_where(Expr::col(rank).lte(page.first as i64 + 1))
            .order_by(Column::Id, Order::Asc)
            .to_owned();
        let rows = contact::Model::find_by_statement(self.backend().build(&select))
            .all(self.connection())
            .await?;
        let mut by_account: HashMap<AccountId, Vec<contact::Model>> = accounts
            .iter()
            .map(|&account| (account, Vec::new()))
            .collect();
        for row in rows {
            if let Some(list) = row.account_id.and_then(|a| by_account.get_mut(&a)) {
                list.push(row);
            }
        }
        Ok(by_account
            .into_iter()
            .map(|(account, items)| (account, into_page(items, page)))
            .collect())
    }

    /// Makes a contact; under a `key` a create made already, the contact it made.
    pub async fn create_contact(
        &self,
        input: &ContactInput,
        key: Option<&CreateKey>,
    ) -> StoreResult<contact::Model> {
        let fields = input.validate()?;
        let mut txn = self.write().await?;
        if let Some(made) =
            create_keys::made_before::<Contacts>(&*txn, key, "contact", ContactId).await?
        {
            return Ok(made);
        }
        check_account(&*txn, fields.account_id).await?;
        let now = Utc::now();
        let mut active = contact::ActiveModel {
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            ..Default::default()
        };
        set_fields(&mut active, fields);
        let model = active.insert(&*txn).await?;
        if let Some(key) = key {
            create_keys::remember(&*txn, key, "contact", model.id.0).await?;
        }
        enqueue(&*txn, Module::Contacts, model.id.0).await?;
        txn.tells(DeskEntity::Contact, DeskAction::Created, model.id.0);
        txn.commit().await?;
        Ok(model)
    }

    /// Applies a patch to one contact; with `expected` (the `updatedAt` the caller read),
    /// only if no one changed it since.
    pub async fn update_contact(
        &self,
        id: ContactId,
        patch: &ContactPatch,
        expected: Option<DateTime<Utc>>,
    ) -> StoreResult<contact::Model> {
        let mut updated = self.update_contacts(&[id], patch, expected).await?;
        Ok(updated.remove(0))
    }

    /// Applies one patch to many contacts, all or nothing.
    pub async fn mass_update_contacts(
        &self,
        ids: &[ContactId],
        patch: &ContactPatch,
    ) -> StoreResult<Vec<contact::Model>> {
        self.update_contacts(ids, patch, None).await
    }

    async fn update_contacts(
        &self,
        ids: &[ContactId],
        patch: &ContactPatch,
        expected: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<contact::Model>> {
        // A record named twice is one record to update.
        let ids = &super::distinct(ids)[..];
        check_mass_update(ids.len())?;
        let mut txn = self.write().await?;
        let contacts = live_contacts(&*txn, ids).await?;
        // Stamped once the records are locked: an edit that waited for another writer is not
        // stamped as older than what that writer wrote.
        let now = Utc::now();
        let mut out = Vec::with_capacity(ids.len());
        let mut left_keys = Vec::new();
        let mut changed = Vec::new();
        let (mut moved, mut accounts_checked) = (Vec::new(), Vec::new());
        // Told to have no account, a contact showing none already may still stay in the
        // Salesforce account of a purged desk account: then it leaves that one.
        let kept = if patch.account_id == Some(None) {
            super::sync::with_kept_accounts(&*txn, ids).await?
        } else {
            Default::default()
        };
        for current in contacts {
            let id = current.id;
            super::unchanged_since(format_args!("contact {id}"), current.updated_at, expected)?;
            let before = contact_input(&current);
            let fields = patch.apply(before.clone()).validate().map_err(|e| {
                if ids.len() > 1 {
                    e.about(format_args!("contact {id}"))
                } else {
                    e
                }
            })?;
            // A save that changes nothing writes nothing: no newer stamp to win a conflict
            // with, nothing for the sync to send, no change to announce.
            if !kept.contains(&id) && before.validate().as_ref() == Ok(&fields) {
                out.push(current);
                continue;
            }
            if current.account_id != fields.account_id
                && !accounts_checked.contains(&fields.account_id)
            {
                check_account(&*txn, fields.account_id).await?;
                accounts_checked.push(fields.account_id);
            }
            if current.account_id != fields.account_id || kept.contains(&id) {
                moved.push(id);
            }
            let key = current.email_key.clone();
            let mut active: contact::ActiveModel = current.into();
            set_fields(&mut active, fields);
            active.updated_at = Set(now);
            let model = active.update(&*txn).await?;
            changed.push(model.id.0);
            left_keys.extend(key.filter(|key| model.email_key.as_ref() != Some(key)));
            out.push(model);
        }
        super::sync::forget_kept_accounts(&*txn, &moved).await?;
        enqueue_all(&*txn, Module::Contacts, &changed).await?;
        super::sync::wake_pushes(&*txn, Module::Contacts, changed.iter().copied()).await?;
        super::sync::wake_pulls_keyed(&*txn, Module::Contacts, left_keys).await?;
        txn.tells_all(DeskEntity::Contact, DeskAction::Updated, changed);
        txn.commit().await?;
        Ok(out)
    }

    /// Moves a contact to the recycle bin.
    pub async fn delete_contact(&self, id: ContactId) -> StoreResult<contact::Model> {
        let mut txn = self.write().await?;
        let current = find(&*txn, id).await?;
        if current.deleted_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "contact {id} is in the recycle bin already; purgeContact removes it for good"
            )));
        }
        let key = current.email_key.clone();
        let mut active: contact::ActiveModel = current.into();
        active.deleted_at = Set(Some(Utc::now()));
        let model = active.update(&*txn).await?;
        let resolved = settle_pushes(&*txn, Module::Contacts, id.0).await?;
        super::sync::wake_pulls_keyed(&*txn, Module::Contacts, key.into_iter().collect()).await?;
        txn.tells(DeskEntity::Contact, DeskAction::Deleted, id.0);
        txn.commit_publishing(self, resolved).await?;
        Ok(model)
    }

    pub async fn restore_contact(&self, id: ContactId) -> StoreResult<contact::Model> {
        let mut txn = self.write().await?;
        let current = binned_contact(&*txn, id).await?;
        let mut active: contact::ActiveModel = current.into();
        active.deleted_at = Set(None);
        active.updated_at = Set(Utc::now());
        let model = active.update(&*txn).await?;
        enqueue(&*txn, Module::Contacts, model.id.0).await?;
        // A failed push logged as it was binned goes out now, as an edit's would; and a
        // Salesforce contact that met it among others in the bin may meet it alone now.
        super::sync::wake_pushes(&*txn, Module::Contacts, [model.id.0]).await?;
        let key = model.email_key.clone();
        super::sync::wake_pulls_keyed(&*txn, Module::Contacts, key.into_iter().collect()).await?;
        txn.tells(DeskEntity::Contact, DeskAction::Restored, id.0);
        txn.commit().await?;
        Ok(model)
    }

    /// Removes a contact from the recycle bin for good; its tickets keep their history.
    pub async fn purge_contact(&self, id: ContactId) -> StoreResult<()> {
        let mut txn = self.write().await?;
        let binned = binned_contact(&*txn, id).await?;
        if let Some(deleted_at) = binned.deleted_at {
            super::sync::note_purge(&*txn, Module::Contacts, id.0, deleted_at).await?;
        }
        let tickets =
            super::tickets::unlink_tickets(&*txn, entity::ticket::Column::ContactId, id.0).await?;
        Contacts::delete_by_id(id).exec(&*txn).await?;
        // A Salesforce contact that met it among others in the bin may meet one alone now.
        super::sync::wake_pulls_keyed(
            &*txn,
            Module::Contacts,
            binned.email_key.into_iter().collect(),
        )
        .await?;
        txn.tells(DeskEntity::Contact, DeskAction::Purged, id.0);
        txn.tells_all(DeskEntity::Ticket, DeskAction::Updated, tickets);
        txn.commit().await?;
        Ok(())
    }
}

/// The contacts `filter` lists, in no order.
fn contacts_matching(filter: &ContactFilter) -> sea_orm::Select<Contacts> {
    let mut select = Contacts::find().filter(super::desk_rows(
        (Column::UpdatedAt, Column::DeletedAt),
        filter.deleted,
        filter.updated_since,
    ));
    if let Some(email) = &filter.email {
        select = select.filter(Column::EmailKey.eq(email_key(email)));
    }
    if let Some(name) = &filter.name {
        select = select.filter(Column::NameKey.like(like_pattern(name)));
    }
    if let Some(account) = filter.account_id {
        select = select.filter(Column::AccountId.eq(account));
    }
    select
}

/// Reads a contact to change it: on PostgreSQL its row stays locked until the transaction
/// ends, so a sync batch writing the same contact waits for this one, or this for it.
async fn find(db: &impl ConnectionTrait, id: ContactId) -> StoreResult<contact::Model> {
    Contacts::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))
}

pub(crate) async fn live_contact(
    db: &impl ConnectionTrait,
    id: ContactId,
) -> StoreResult<contact::Model> {
    let mut found = live_contacts(db, &[id]).await?;
    found
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))
}

/// These contacts, in the order named, locked for the write (see [`super::live_records`]).
async fn live_contacts(
    db: &impl ConnectionTrait,
    ids: &[ContactId],
) -> StoreResult<Vec<contact::Model>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    super::live_records::<Contacts>(db, Column::Id, &ids, "contact").await
}

impl super::Binnable for contact::Model {
    fn key(&self) -> i64 {
        self.id.0
    }

    fn binned(&self) -> bool {
        self.deleted_at.is_some()
    }
}

async fn binned_contact(db: &impl ConnectionTrait, id: ContactId) -> StoreResult<contact::Model> {
    let model = find(db, id).await?;
    if model.deleted_at.is_none() {
        return Err(StoreError::Conflict(format!(
            "contact {id} is not in the recycle bin"
        )));
    }
    Ok(model)
}

pub(crate) async fn check_account(
    db: &impl ConnectionTrait,
    id: Option<AccountId>,
) -> StoreResult<()> {
    let Some(id) = id else { return Ok(()) };
    // Held until the write commits (on PostgreSQL): an account binned or purged meanwhile
    // waits for it, or is seen here as it ends up, never between the check and the write.
    match entity::account::Entity::find_by_id(id)
        .lock_shared()
        .one(db)
        .await?
    {
        Some(a) if a.deleted_at.is_none() => Ok(()),
        Some(_) => {
            Err(Invalid::new("accountId", format!("account {id} is in the recycle bin")).into())
        }
        None => Err(Invalid::new("accountId", format!("no account with id {id}")).into()),
    }
}

/// Checks the account a write moves a record to. A record keeps the account it has even
/// once that account is in the recycle bin, and can still be edited.
pub(crate) async fn check_account_change(
    db: &impl ConnectionTrait,
    before: Option<AccountId>,
    after: Option<AccountId>,
) -> StoreResult<()> {
    if before == after {
        return Ok(());
    }
    check_account(db, after).await
}

/// Locks the contacts of an account in id order, as every write of several contacts locks
/// them; returns their ids.
pub(crate) async fn lock_contacts_of(
    db: &impl ConnectionTrait,
    account: AccountId,
) -> StoreResult<Vec<i64>> {
    Ok(Contacts::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::AccountId.eq(account))
        .order_by_asc(Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(db)
        .await?)
}

/// Clears the account of every contact linked to an account about to be purged, stamping
/// them changed; returns the contacts changed (see `tickets::unlink_tickets`). Nothing goes
/// to Salesforce: the contacts' Salesforce account is kept (`sync::keep_salesforce_account`).
pub(crate) async fn unlink_contacts(
    db: &impl ConnectionTrait,
    account: AccountId,
) -> StoreResult<Vec<i64>> {
    use sea_orm::sea_query::Expr;
    let ids = lock_contacts_of(db, account).await?;
    if !ids.is_empty() {
        Contacts::update_many()
            .col_expr(Column::AccountId, Expr::value(Option::<i64>::None))
            .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(Column::AccountId.eq(account))
            .exec(db)
            .await?;
    }
    Ok(ids)
}
