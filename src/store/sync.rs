//! What the sync engine reads and writes. Every batch is one transaction: desk changes,
//! links, cursor, failures and the history entry commit together or not at all.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use entity::{
    account, contact, integration, outbox, pending_create, record_link, sync_cursor, sync_failure,
    sync_history,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::contacts::{check_account, check_account_change};
use super::events::SyncEventKind;
use super::{BIND_PART, Store, StoreResult, WriteTxn, one_of};
use crate::domain::{
    AccountFields, AccountId, ContactFields, ContactId, DeskAction, DeskEntity, Direction,
    FailureReason, Invalid, Module, RetryPolicy,
};

/// The newest outbox row of each of these desk records that has one.
async fn outbox_waiting(
    db: &impl ConnectionTrait,
    backend: sea_orm::DbBackend,
    module: Module,
    ids: &[i64],
) -> StoreResult<HashMap<i64, Vec<i64>>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::DeskId)
        .column(outbox::Column::Id)
        .filter(outbox::Column::Module.eq(module.as_str()))
        .filter(one_of(backend, outbox::Column::DeskId, ids.to_vec()))
        .into_tuple::<(i64, i64)>()
        .all(db)
        .await?;
    let mut waiting: HashMap<i64, Vec<i64>> = HashMap::new();
    for (desk_id, row) in rows {
        waiting.entry(desk_id).or_default().push(row);
    }
    Ok(waiting)
}

/// `key → value` for the links of a module whose `key` is one of `keys`.
async fn link_pairs<K, V>(
    db: &impl ConnectionTrait,
    backend: sea_orm::DbBackend,
    module: Module,
    (key, value): (record_link::Column, record_link::Column),
    keys: &[K],
) -> StoreResult<HashMap<K, V>>
where
    (K, V): sea_orm::TryGetableMany,
    K: Eq + std::hash::Hash + Clone + Into<sea_orm::Value>,
    Vec<K>: Into<sea_orm::Value>,
{
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = record_link::Entity::find()
        .select_only()
        .column(key)
        .column(value)
        .filter(record_link::Column::Module.eq(module.as_str()))
        .filter(one_of(backend, key, keys.to_vec()))
        .into_tuple::<(K, V)>()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Failures of one module and direction that are still open.
/// Which of these desk records have an open failure of going out to Salesforce.
async fn refused_pushes(
    db: &impl ConnectionTrait,
    backend: sea_orm::DbBackend,
    module: Module,
    ids: &[i64],
) -> StoreResult<std::collections::HashSet<i64>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = sync_failure::Entity::find()
        .select_only()
        .column(sync_failure::Column::DeskId)
        .filter(open_failures(module, Direction::DeskToSalesforce))
        .filter(one_of(backend, sync_failure::Column::DeskId, ids.to_vec()))
        .into_tuple::<Option<i64>>()
        .all(db)
        .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// The desk records of `module` edited before a version of their Salesforce twin that
/// failed to pull and still waits (for its account, or for a person): that version is the
/// newer, and wins once the desk can take it. Pushed now, the older desk edit would be
/// written over it. A desk edit made after it goes out as any other.
fn behind_salesforce(module: Module) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Condition, IntoIden, SelectStatement};
    fn desk_edited_before<C: ColumnTrait>(
        query: &mut SelectStatement,
        table: impl IntoIden + Copy + 'static,
        id: C,
        updated_at: C,
    ) {
        query
            .inner_join(
                table,
                Expr::col((table, id)).equals((record_link::Entity, record_link::Column::DeskId)),
            )
            .and_where(
                Expr::col((
                    sync_failure::Entity,
                    sync_failure::Column::SalesforceModstamp,
                ))
                .gt(Expr::col((table, updated_at))),
            );
    }
    let mut query = Query::select();
    query
        .column((record_link::Entity, record_link::Column::DeskId))
        .from(sync_failure::Entity)
        .inner_join(
            record_link::Entity,
            Condition::all()
                .add(
                    Expr::col((record_link::Entity, record_link::Column::SalesforceId))
                        .equals((sync_failure::Entity, sync_failure::Column::SalesforceId)),
                )
                .add(
                    Expr::col((record_link::Entity, record_link::Column::Module))
                        .equals((sync_failure::Entity, sync_failure::Column::Module)),
                ),
        )
        .cond_where(open_failures(module, Direction::SalesforceToDesk))
        // A version the link has taken already (all but a value the desk cannot hold, or
        // met by a newer desk edit) holds nothing back.
        .cond_where(
            Condition::any()
                .add(
                    Expr::col((record_link::Entity, record_link::Column::SalesforceModstamp))
                        .is_null(),
                )
                .add(
                    Expr::col((
                        sync_failure::Entity,
                        sync_failure::Column::SalesforceModstamp,
                    ))
                    .gt(Expr::col((
                        record_link::Entity,
                        record_link::Column::SalesforceModstamp,
                    ))),
                ),
        );
    match module {
        Module::Contacts => desk_edited_before(
            &mut query,
            contact::Entity,
            contact::Column::Id,
            contact::Column::UpdatedAt,
        ),
        Module::Accounts => desk_edited_before(
            &mut query,
            account::Entity,
            account::Column::Id,
            account::Column::UpdatedAt,
        ),
    }
    query
}

fn open_failures(module: Module, direction: Direction) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(sync_failure::Column::Module.eq(module.as_str()))
        .add(sync_failure::Column::Direction.eq(direction.as_str()))
        .add(sync_failure::Column::ResolvedAt.is_null())
}

/// Gives these failures, where a passing reason's automatic attempts ran out, their attempts
/// afresh: a person's retry counts as the first of a new run.
async fn restart_spent(db: &impl ConnectionTrait, failures: &[i64]) -> StoreResult<()> {
    for part in failures.chunks(BIND_PART) {
        sync_failure::Entity::update_many()
            .col_expr(sync_failure::Column::Attempts, Expr::value(0))
            .filter(sync_failure::Column::Id.is_in(part.iter().copied()))
            .filter(sync_failure::Column::ResolvedAt.is_null())
            .filter(sync_failure::Column::NextAttemptAt.is_null())
            .filter(
                sync_failure::Column::Reason
                    .is_in(FailureReason::PASSING.iter().map(|r| r.as_str())),
            )
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Records a desk change for the sync to push, when an integration exists.
pub(crate) async fn enqueue(
    db: &impl ConnectionTrait,
    module: Module,
    desk_id: i64,
) -> StoreResult<()> {
    enqueue_all(db, module, &[desk_id]).await
}

/// [`enqueue`] for many records, with one statement per thousand.
pub(crate) async fn enqueue_all(
    db: &impl ConnectionTrait,
    module: Module,
    desk_ids: &[i64],
) -> StoreResult<()> {
    if desk_ids.is_empty() || integration::Entity::find_by_id(1).one(db).await?.is_none() {
        return Ok(());
    }
    insert_outbox(db, module, desk_ids).await
}

/// Outbox rows for these desk records, a thousand to a statement.
async fn insert_outbox(
    db: &impl ConnectionTrait,
    module: Module,
    desk_ids: &[i64],
) -> StoreResult<()> {
    let now = Utc::now();
    for part in desk_ids.chunks(INSERT_ROWS) {
        outbox::Entity::insert_many(part.iter().map(|&desk_id| outbox::ActiveModel {
            module: Set(module.as_str().into()),
            desk_id: Set(desk_id),
            enqueued_at: Set(now),
            ..Default::default()
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// Makes the next attempt at sending these desk records due now, where one waits after a
/// transient failure: an edit may be what the record needed (a contact moved off an account
/// Salesforce does not have), and it goes out with the next push as every edit does.
pub(crate) async fn wake_pushes(
    db: &impl ConnectionTrait,
    module: Module,
    desk_ids: impl IntoIterator<Item = i64>,
) -> StoreResult<()> {
    let now = Utc::now();
    let desk_ids: Vec<i64> = desk_ids.into_iter().collect();
    sync_failure::Entity::update_many()
        .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(now))
        .filter(open_failures(module, Direction::DeskToSalesforce))
        .filter(sync_failure::Column::DeskId.is_in(desk_ids.iter().copied()))
        .filter(sync_failure::Column::NextAttemptAt.gt(now))
        .exec(db)
        .await?;
    // One whose automatic attempts ran out on a passing refusal (an outage) is given them
    // afresh, as one a person was asked to see to is when it next meets a passing one.
    sync_failure::Entity::update_many()
        .col_expr(sync_failure::Column::Attempts, Expr::value(0))
        .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(now))
        .filter(open_failures(module, Direction::DeskToSalesforce))
        .filter(sync_failure::Column::DeskId.is_in(desk_ids))
        .filter(attempts_ran_out())
        .exec(db)
        .await?;
    Ok(())
}

/// Makes due now the pushes of desk contacts of these desk accounts that wait for their
/// account to reach Salesforce (`ACCOUNT_NOT_SYNCED`): it just has, or it is being purged
/// and they go without it. One whose automatic attempts ran out (its queued change dropped)
/// is queued again.
pub(crate) async fn wake_contacts_of(
    db: &impl ConnectionTrait,
    accounts: &[i64],
) -> StoreResult<()> {
    if accounts.is_empty() {
        return Ok(());
    }
    let contacts = Query::select()
        .column(contact::Column::Id)
        .from(contact::Entity)
        .and_where(one_of(
            db.get_database_backend(),
            contact::Column::AccountId,
            accounts.iter().copied(),
        ))
        .to_owned();
    let waiting = || {
        sync_failure::Entity::find()
            .filter(open_failures(Module::Contacts, Direction::DeskToSalesforce))
            .filter(sync_failure::Column::Reason.eq(FailureReason::AccountNotSynced.as_str()))
            .filter(sync_failure::Column::DeskId.in_subquery(contacts.clone()))
    };
    let given_up: Vec<Option<i64>> = waiting()
        .filter(sync_failure::Column::NextAttemptAt.is_null())
        .select_only()
        .column(sync_failure::Column::DeskId)
        .into_tuple()
        .all(db)
        .await?;
    let given_up: Vec<i64> = given_up.into_iter().flatten().collect();
    insert_outbox(db, Module::Contacts, &given_up).await?;
    let now = Utc::now();
    // Woken, those are given their attempts afresh: one locked row on the way out would
    // otherwise leave them waiting for a person again.
    sync_failure::Entity::update_many()
        .col_expr(sync_failure::Column::Attempts, Expr::value(0))
        .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(now))
        .filter(open_failures(Module::Contacts, Direction::DeskToSalesforce))
        .filter(sync_failure::Column::Reason.eq(FailureReason::AccountNotSynced.as_str()))
        .filter(sync_failure::Column::DeskId.in_subquery(contacts.clone()))
        .filter(sync_failure::Column::NextAttemptAt.is_null())
        .exec(db)
        .await?;
    sync_failure::Entity::update_many()
        .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(now))
        .filter(open_failures(Module::Contacts, Direction::DeskToSalesforce))
        .filter(sync_failure::Column::Reason.eq(FailureReason::AccountNotSynced.as_str()))
        .filter(sync_failure::Column::DeskId.in_subquery(contacts))
        .exec(db)
        .await?;
    Ok(())
}

/// Makes due at once the Salesforce contacts that wait for these Salesforce accounts to
/// reach the desk, or to come out of its recycle bin (`ACCOUNT_NOT_SYNCED`), their automatic
/// retries spent or not: each is read again with the next due records, and follows its
/// account.
async fn wake_contacts_awaiting(db: &impl ConnectionTrait, accounts: &[String]) -> StoreResult<()> {
    let now = Utc::now();
    for part in accounts.chunks(BIND_PART) {
        sync_failure::Entity::update_many()
            .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(now))
            .filter(open_failures(Module::Contacts, Direction::SalesforceToDesk))
            .filter(sync_failure::Column::Reason.eq(FailureReason::AccountNotSynced.as_str()))
            .filter(sync_failure::Column::MatchKey.is_in(part.iter().cloned()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// [`wake_contacts_awaiting`] the Salesforce twin of this desk account, restored from the
/// recycle bin or purged from it: a contact of it comes in with it or without it.
pub(crate) async fn wake_contacts_awaiting_twin_of(
    db: &impl ConnectionTrait,
    account: AccountId,
) -> StoreResult<()> {
    let twin: Option<String> = record_link::Entity::find()
        .select_only()
        .column(record_link::Column::SalesforceId)
        .filter(record_link::Column::Module.eq(Module::Accounts.as_str()))
        .filter(record_link::Column::DeskId.eq(account.0))
        .into_tuple()
        .one(db)
        .await?;
    match twin {
        Some(twin) => wake_contacts_awaiting(db, &[twin]).await,
        None => Ok(()),
    }
}

/// A failure for a passing reason whose automatic attempts are used up.
fn attempts_ran_out() -> sea_orm::Condition {
    let passing = FailureReason::PASSING.map(FailureReason::as_str);
    sea_orm::Condition::all()
        .add(sync_failure::Column::NextAttemptAt.is_null())
        .add(sync_failure::Column::Reason.is_in(passing))
}

/// Makes due the Salesforce records waiting because several desk records share their key
/// (`MULTIPLE_MATCHES` on a pull) once one of those leaves `keys`: moved to the recycle bin
/// or given another. The next round reads them again, in either sync type.
pub(crate) async fn wake_pulls_keyed(
    db: &impl ConnectionTrait,
    module: Module,
    keys: Vec<String>,
) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sync_failure::Entity::update_many()
        .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(Utc::now()))
        .filter(open_failures(module, Direction::SalesforceToDesk))
        .filter(sync_failure::Column::Reason.eq(FailureReason::MultipleMatches.as_str()))
        .filter(sync_failure::Column::MatchKey.is_in(keys))
        .exec(db)
        .await?;
    Ok(())
}

/// Marks resolved the open failures of sending this desk record to Salesforce: it was sent,
/// or (moved to the recycle bin, until a restore queues it again) has nothing left to send.
/// Returns the events that tell of it, to log as the transaction commits.
pub(crate) async fn settle_pushes(
    db: &impl ConnectionTrait,
    module: Module,
    desk_id: i64,
) -> StoreResult<Vec<SyncEventKind>> {
    resolve_failures(
        db,
        open_failures(module, Direction::DeskToSalesforce)
            .add(sync_failure::Column::DeskId.eq(desk_id)),
    )
    .await
}

/// Marks resolved the open failures `which` selects, each logged as an event with its
/// `resolvedAt`: a dashboard following `syncEvents` sees a failure close as it saw it open.
/// Returns the events, to log as the transaction commits.
async fn resolve_failures(
    db: &impl ConnectionTrait,
    which: sea_orm::Condition,
) -> StoreResult<Vec<SyncEventKind>> {
    // Locked: of two transactions resolving one failure (a desk delete, a push), the second
    // finds it resolved, and it is announced once.
    let open = sync_failure::Entity::find()
        .filter(which)
        .filter(sync_failure::Column::ResolvedAt.is_null())
        .order_by_asc(sync_failure::Column::Id)
        .lock_exclusive()
        .all(db)
        .await?;
    if open.is_empty() {
        return Ok(Vec::new());
    }
    // As stored (PostgreSQL keeps microseconds): the events say what the log reads.
    let now = Utc::now().trunc_subsecs(6);
    let ids: Vec<i64> = open.iter().map(|f| f.id).collect();
    for part in ids.chunks(BIND_PART) {
        sync_failure::Entity::update_many()
            .col_expr(sync_failure::Column::ResolvedAt, Expr::value(now))
            .filter(sync_failure::Column::Id.is_in(part.iter().copied()))
            .filter(sync_failure::Column::ResolvedAt.is_null())
            .exec(db)
            .await?;
    }
    Ok(open
        .into_iter()
        .map(|mut failure| {
            failure.resolved_at = Some(now);
            SyncEventKind::Failure(failure)
        })
        .collect())
}

/// Notes on the link of a desk record about to be purged when it was deleted: a Salesforce
/// update saved before then brings it back no more than it would have from the recycle bin.
pub(crate) async fn note_purge(
    db: &impl ConnectionTrait,
    module: Module,
    desk_id: i64,
    deleted_at: DateTime<Utc>,
) -> StoreResult<()> {
    record_link::Entity::update_many()
        .col_expr(
            record_link::Column::DeskDeletedAt,
            Expr::value(Some(deleted_at)),
        )
        .filter(record_link::Column::Module.eq(module.as_str()))
        .filter(record_link::Column::DeskId.eq(desk_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes do not cross: the linked contacts of an account about to be purged from the desk
/// stay in its Salesforce account, which their pushes go on naming.
pub(crate) async fn keep_salesforce_account(
    db: &impl ConnectionTrait,
    account: AccountId,
) -> StoreResult<()> {
    use sea_orm::sea_query::Query;
    let Some(salesforce_id) = record_link::Entity::find()
        .select_only()
        .column(record_link::Column::SalesforceId)
        .filter(record_link::Column::Module.eq(Module::Accounts.as_str()))
        .filter(record_link::Column::DeskId.eq(account.0))
        .into_tuple::<String>()
        .one(db)
        .await?
    else {
        return Ok(());
    };
    record_link::Entity::update_many()
        .col_expr(
            record_link::Column::KeptAccountId,
            Expr::value(salesforce_id),
        )
        .filter(record_link::Column::Module.eq(Module::Contacts.as_str()))
        .filter(
            record_link::Column::DeskId.in_subquery(
                Query::select()
                    .column(contact::Column::Id)
                    .from(contact::Entity)
                    .and_where(contact::Column::AccountId.eq(account.0))
                    .to_owned(),
            ),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// A contact that moves to another account, or to none, leaves the Salesforce account it
/// stayed in after its desk account was purged.
pub(crate) async fn forget_kept_account(
    db: &impl ConnectionTrait,
    contact: ContactId,
) -> StoreResult<()> {
    forget_kept_accounts(db, &[contact]).await
}

/// [`forget_kept_account`] for many contacts, with one statement per thousand.
pub(crate) async fn forget_kept_accounts(
    db: &impl ConnectionTrait,
    contacts: &[ContactId],
) -> StoreResult<()> {
    for part in contacts.chunks(BIND_PART) {
        record_link::Entity::update_many()
            .col_expr(
                record_link::Column::KeptAccountId,
                Expr::value(Option::<String>::None),
            )
            .filter(record_link::Column::Module.eq(Module::Contacts.as_str()))
            .filter(record_link::Column::DeskId.is_in(part.iter().map(|c| c.0)))
            .filter(record_link::Column::KeptAccountId.is_not_null())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Which of `contacts` stay in the Salesforce account of a purged desk account.
pub(crate) async fn with_kept_accounts(
    db: &impl ConnectionTrait,
    contacts: &[ContactId],
) -> StoreResult<std::collections::HashSet<ContactId>> {
    let mut kept = std::collections::HashSet::new();
    for part in contacts.chunks(BIND_PART) {
        let ids: Vec<i64> = record_link::Entity::find()
            .select_only()
            .column(record_link::Column::DeskId)
            .filter(record_link::Column::Module.eq(Module::Contacts.as_str()))
            .filter(record_link::Column::DeskId.is_in(part.iter().map(|c| c.0)))
            .filter(record_link::Column::KeptAccountId.is_not_null())
            .into_tuple()
            .all(db)
            .await?;
        kept.extend(ids.into_iter().map(ContactId));
    }
    Ok(kept)
}

/// A desk record and its Salesforce twin, about to be linked.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub desk_id: i64,
    pub salesforce_id: String,
    pub hash: String,
    pub modstamp: Option<DateTime<Utc>>,
    /// The Salesforce record's fields as read, a JSON object.
    pub fields: Option<String>,
}

/// The primary key an entity's rows get on insert.
type Key<A> = <<<A as ActiveModelTrait>::Entity as EntityTrait>::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType;

/// Rows an insert statement carries: a page of the import in one statement, inside SQLite's
/// 32,766 parameters with desk rows of about 20 columns.
const INSERT_ROWS: usize = 1000;

/// Inserts rows with few statements and returns their new ids in the order given: ids are
/// assigned in statement order, so sorting them restores it whatever order RETURNING used.
async fn insert_ids<A>(db: &impl ConnectionTrait, rows: Vec<A>) -> StoreResult<Vec<Key<A>>>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
    Key<A>: Ord,
{
    let mut out = Vec::with_capacity(rows.len());
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(INSERT_ROWS).collect();
        let mut ids = <A::Entity as EntityTrait>::insert_many(chunk)
            .exec_with_returning_keys(db)
            .await?;
        ids.sort();
        out.extend(ids);
    }
    Ok(out)
}

/// `NOT EXISTS (a link of the module for this desk id)`: probes the link index for each row
/// the rest of the condition finds, where `NOT IN (links)` would read every link of the module.
pub(super) fn unlinked(module: Module, id: impl ColumnTrait) -> Expr {
    named_by_none(
        record_link::Entity,
        (record_link::Column::Module, record_link::Column::DeskId),
        module,
        id,
    )
}

/// `NOT EXISTS (a former link of the module for this desk id)` (`Store::former_links`).
pub(super) fn not_formerly_linked(module: Module, id: impl ColumnTrait) -> Expr {
    use entity::former_link;
    named_by_none(
        former_link::Entity,
        (former_link::Column::Module, former_link::Column::DeskId),
        module,
        id,
    )
}

/// `NOT EXISTS (a row of `table` whose `module` and `desk_id` columns name this record)`.
fn named_by_none<E: EntityTrait>(
    table: E,
    (module_column, desk_column): (E::Column, E::Column),
    module: Module,
    id: impl ColumnTrait,
) -> Expr {
    use sea_orm::sea_query::Query;
    Expr::not_exists(
        Query::select()
            .expr(Expr::val(1))
            .from(table)
            .and_where(Expr::col((table, module_column)).eq(module.as_str()))
            .and_where(Expr::col((table, desk_column)).equals(id.as_column_ref()))
            .to_owned(),
    )
}

#[derive(Debug, Clone)]
pub struct NewFailure {
    pub direction: Direction,
    pub module: Module,
    pub desk_id: Option<i64>,
    pub salesforce_id: Option<String>,
    pub reason: FailureReason,
    pub message: String,
    /// For a pull: the version of the Salesforce record that failed.
    pub modstamp: Option<DateTime<Utc>>,
    /// For `MULTIPLE_MATCHES`: the key the records share.
    pub match_key: Option<String>,
}

impl Store {
    pub async fn links_by_salesforce(
        &self,
        module: Module,
        ids: &[String],
    ) -> StoreResult<HashMap<String, record_link::Model>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = record_link::Entity::find()
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(one_of(
                self.backend(),
                record_link::Column::SalesforceId,
                ids.to_vec(),
            ))
            .all(self.connection())
            .await?;
        Ok(rows
            .into_iter()
            .map(|l| (l.salesforce_id.clone(), l))
            .collect())
    }

    pub async fn links_by_desk(
        &self,
        module: Module,
        ids: &[i64],
    ) -> StoreResult<HashMap<i64, record_link::Model>> {
        let links = self.links_of(ids.iter().map(|&id| (module, id))).await?;
        Ok(links
            .into_iter()
            .map(|((_, desk_id), link)| (desk_id, link))
            .collect())
    }

    /// The links of these desk records, of either module, in one statement.
    pub async fn links_of(
        &self,
        records: impl IntoIterator<Item = (Module, i64)>,
    ) -> StoreResult<HashMap<(Module, i64), record_link::Model>> {
        let mut ids: HashMap<Module, Vec<i64>> = HashMap::new();
        for (module, id) in records {
            ids.entry(module).or_default().push(id);
        }
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        const MODULES: [Module; 2] = [Module::Contacts, Module::Accounts];
        let mut any = sea_orm::Condition::any();
        // In a fixed order, so that the same modules make the same statement.
        for module in MODULES {
            if let Some(ids) = ids.remove(&module) {
                any = any.add(record_link::Column::Module.eq(module.as_str()).and(one_of(
                    self.backend(),
                    record_link::Column::DeskId,
                    ids,
                )));
            }
        }
        let rows = record_link::Entity::find()
            .filter(any)
            .all(self.connection())
            .await?;
        let mut links = HashMap::with_capacity(rows.len());
        for link in rows {
            // Every row matched one of the modules asked about.
            if let Some(module) = MODULES.into_iter().find(|m| m.as_str() == link.module) {
                links.insert((module, link.desk_id), link);
            }
        }
        Ok(links)
    }

    /// The desk ids linked to these Salesforce ids: the pairs alone, without the records the
    /// links keep (a kilobyte each), for lookups that only translate ids.
    pub async fn desk_ids_by_salesforce(
        &self,
        module: Module,
        ids: &[String],
    ) -> StoreResult<HashMap<String, i64>> {
        use record_link::Column::{DeskId, SalesforceId};
        link_pairs(
            self.connection(),
            self.backend(),
            module,
            (SalesforceId, DeskId),
            ids,
        )
        .await
    }

    /// The desk accounts, recycle bin included, linked to these Salesforce accounts. A purged
    /// account's link stays for the account to come back to, but names no desk account.
    pub async fn desk_accounts_by_salesforce(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, i64>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .account_links(ids, true)
            .column(record_link::Column::DeskId)
            .into_tuple::<(String, i64)>()
            .all(self.connection())
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The links of these Salesforce accounts whose desk account is there (`present`: in the
    /// desk or its recycle bin) or is not (purged), selecting their Salesforce ids.
    fn account_links(&self, ids: &[String], present: bool) -> sea_orm::Select<record_link::Entity> {
        use record_link::Column::{DeskId, Module as LinkModule, SalesforceId};
        use sea_orm::sea_query::Query;
        let there = Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(account::Entity)
                .and_where(
                    Expr::col((account::Entity, account::Column::Id))
                        .equals((record_link::Entity, DeskId)),
                )
                .to_owned(),
        );
        record_link::Entity::find()
            .select_only()
            .column(SalesforceId)
            .filter(LinkModule.eq(Module::Accounts.as_str()))
            .filter(one_of(self.backend(), SalesforceId, ids.to_vec()))
            .filter(if present { there } else { there.not() })
    }

    /// The Salesforce ids linked to these desk ids, without the records the links keep.
    pub async fn salesforce_ids_by_desk(
        &self,
        module: Module,
        ids: &[i64],
    ) -> StoreResult<HashMap<i64, String>> {
        use record_link::Column::{DeskId, SalesforceId};
        link_pairs(
            self.connection(),
            self.backend(),
            module,
            (DeskId, SalesforceId),
            ids,
        )
        .await
    }

    /// Salesforce ids of links that hold no read of their record (made before records were
    /// kept, or by a push not yet read back), oldest first.
    pub async fn links_without_fields(
        &self,
        module: Module,
        limit: u64,
    ) -> StoreResult<Vec<String>> {
        Ok(record_link::Entity::find()
            .select_only()
            .column(record_link::Column::SalesforceId)
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(record_link::Column::SalesforceFields.is_null())
            .order_by_asc(record_link::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.connection())
            .await?)
    }

    /// Marks read as empty the links of these Salesforce records that a read has just left
    /// without fields (Salesforce no longer has the record), so that they are not asked for
    /// again.
    pub async fn settle_unread_links(&self, module: Module, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let txn = self.write().await?;
        record_link::Entity::update_many()
            .col_expr(record_link::Column::SalesforceFields, Expr::value("{}"))
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(record_link::Column::SalesforceFields.is_null())
            .filter(one_of(
                self.backend(),
                record_link::Column::SalesforceId,
                ids.to_vec(),
            ))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn link_count(&self, module: Module) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        Ok(record_link::Entity::find()
            .filter(record_link::Column::Module.eq(module.as_str()))
            .count(self.connection())
            .await?)
    }

    pub async fn cursor(&self, name: &str) -> StoreResult<Option<sync_cursor::Model>> {
        Ok(sync_cursor::Entity::find_by_id(name.to_owned())
            .one(self.connection())
            .await?)
    }

    /// Queued desk changes after the row `after`, oldest first, leaving out records that
    /// wait: for the next attempt after a transient failure, on a create whose answer was
    /// lost and which Salesforce may still be making (the round's first step settles those
    /// once they are past doubt), behind a newer Salesforce version of their twin that
    /// the desk could not take yet ([`behind_salesforce`]), or for the Salesforce record a
    /// deleted integration linked them to (`Store::former_links`): sent before it is met,
    /// they would be made there a second time.
    pub async fn outbox(
        &self,
        module: Module,
        after: i64,
        limit: u64,
    ) -> StoreResult<Vec<outbox::Model>> {
        let waiting = sea_orm::sea_query::Query::select()
            .column(sync_failure::Column::DeskId)
            .from(sync_failure::Entity)
            .and_where(Expr::col(sync_failure::Column::Module).eq(module.as_str()))
            .and_where(
                Expr::col(sync_failure::Column::Direction).eq(Direction::DeskToSalesforce.as_str()),
            )
            .and_where(Expr::col(sync_failure::Column::ResolvedAt).is_null())
            .and_where(Expr::col(sync_failure::Column::DeskId).is_not_null())
            .and_where(Expr::col(sync_failure::Column::NextAttemptAt).gt(Utc::now()))
            .to_owned();
        // An upsert in doubt is sent again: made, it meets the record it made.
        let in_doubt = Query::select()
            .column(pending_create::Column::DeskId)
            .from(pending_create::Entity)
            .and_where(Expr::col(pending_create::Column::Module).eq(module.as_str()))
            .and_where(Expr::col(pending_create::Column::Upsert).eq(false))
            .to_owned();
        Ok(outbox::Entity::find()
            .filter(outbox::Column::Module.eq(module.as_str()))
            .filter(outbox::Column::Id.gt(after))
            .filter(outbox::Column::DeskId.not_in_subquery(waiting))
            .filter(outbox::Column::DeskId.not_in_subquery(in_doubt))
            .filter(outbox::Column::DeskId.not_in_subquery(behind_salesforce(module)))
            .filter(not_formerly_linked(module, outbox::Column::DeskId))
            .order_by_asc(outbox::Column::Id)
            .limit(limit)
            .all(self.connection())
            .await?)
    }

    /// Of these desk records, those behind a newer Salesforce version of their twin that the
    /// desk could not take yet ([`behind_salesforce`]): sent now, they would be written over it.
    pub async fn behind_salesforce(
        &self,
        module: Module,
        ids: &[i64],
    ) -> StoreResult<HashSet<i64>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let rows: Vec<i64> = record_link::Entity::find()
            .select_only()
            .column(record_link::Column::DeskId)
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(one_of(
                self.backend(),
                record_link::Column::DeskId,
                ids.to_vec(),
            ))
            .filter(record_link::Column::DeskId.in_subquery(behind_salesforce(module)))
            .into_tuple()
            .all(self.connection())
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The waiting changes (outbox rows) of each of these desk records that has some: the
    /// changes their values, read after this, carry to Salesforce.
    pub async fn outbox_waiting(
        &self,
        module: Module,
        ids: &[i64],
    ) -> StoreResult<HashMap<i64, Vec<i64>>> {
        outbox_waiting(self.connection(), self.backend(), module, ids).await
    }

    /// The versions of these Salesforce records that failed to pull and still wait, by id.
    pub async fn failed_versions(
        &self,
        module: Module,
        ids: &[String],
    ) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Option<String>, Option<DateTime<Utc>>)> = sync_failure::Entity::find()
            .select_only()
            .column(sync_failure::Column::SalesforceId)
            .column(sync_failure::Column::SalesforceModstamp)
            .filter(open_failures(module, Direction::SalesforceToDesk))
            .filter(one_of(
                self.backend(),
                sync_failure::Column::SalesforceId,
                ids.to_vec(),
            ))
            .into_tuple()
            .all(self.connection())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, at)| Some((id?, at?)))
            .collect())
    }

    /// Why reading this Salesforce record into the desk fails, while it does.
    pub async fn pull_failure(
        &self,
        module: Module,
        salesforce_id: &str,
    ) -> StoreResult<Option<FailureReason>> {
        let failure = sync_failure::Entity::find()
            .filter(open_failures(module, Direction::SalesforceToDesk))
            .filter(sync_failure::Column::SalesforceId.eq(salesforce_id))
            .order_by_desc(sync_failure::Column::Id)
            .one(self.connection())
            .await?;
        Ok(failure.and_then(|f| f.reason.parse().ok()))
    }

    /// Which of these desk records have an open failure of going out to Salesforce: each is
    /// tried again by its retry, or waits for a person.
    pub async fn failing_pushes(
        &self,
        module: Module,
        ids: &[i64],
    ) -> StoreResult<std::collections::HashSet<i64>> {
        refused_pushes(self.connection(), self.backend(), module, ids).await
    }

    /// Whether any failure of the module is still open; when none is, nothing needs resolving.
    pub async fn has_open_failures(&self, module: Module) -> StoreResult<bool> {
        Ok(sync_failure::Entity::find()
            .filter(sync_failure::Column::Module.eq(module.as_str()))
            .filter(sync_failure::Column::ResolvedAt.is_null())
            .one(self.connection())
            .await?
            .is_some())
    }

    /// Salesforce records whose pull failed for a transient reason and whose next attempt is
    /// due, oldest attempt first.
    pub async fn due_pull_retries(&self, module: Module, limit: u64) -> StoreResult<Vec<String>> {
        let ids = sync_failure::Entity::find()
            .select_only()
            .column(sync_failure::Column::SalesforceId)
            .filter(open_failures(module, Direction::SalesforceToDesk))
            .filter(sync_failure::Column::SalesforceId.is_not_null())
            .filter(sync_failure::Column::NextAttemptAt.lte(Utc::now()))
            .order_by_asc(sync_failure::Column::NextAttemptAt)
            .limit(limit)
            .into_tuple::<Option<String>>()
            .all(self.connection())
            .await?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// Resolves the open pull failures of these Salesforce records that no attempt since
    /// `since` renewed: read again, they had nothing left to wait for.
    pub async fn resolve_settled_pulls(
        &self,
        module: Module,
        salesforce_ids: &[String],
        since: DateTime<Utc>,
    ) -> StoreResult<()> {
        if salesforce_ids.is_empty() {
            return Ok(());
        }
        let txn = self.write().await?;
        let resolved = resolve_failures(
            &*txn,
            open_failures(module, Direction::SalesforceToDesk)
                .add(sync_failure::Column::At.lt(since))
                .add(one_of(
                    self.backend(),
                    sync_failure::Column::SalesforceId,
                    salesforce_ids.to_vec(),
                )),
        )
        .await?;
        txn.commit_publishing(self, resolved).await?;
        Ok(())
    }

    /// Notes, before an update goes out, the hash of the values it sends to each linked desk
    /// record's twin: should Salesforce make it and its answer be lost, the pull that reads it
    /// back knows it for the sync's own. The answer, or that read, clears it.
    pub async fn note_sent_updates(
        &self,
        module: Module,
        sent: &[(i64, String)],
    ) -> StoreResult<()> {
        let Some(((first, hash), rest)) = sent.split_first() else {
            return Ok(());
        };
        let desk_id = || Expr::col(record_link::Column::DeskId);
        let hashes = rest.iter().fold(
            Expr::case(desk_id().eq(*first), hash.clone()),
            |case, (id, hash)| case.case(desk_id().eq(*id), hash.clone()),
        );
        let txn = self.write().await?;
        record_link::Entity::update_many()
            .col_expr(record_link::Column::SentHash, hashes.into())
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(one_of(
                self.backend(),
                record_link::Column::DeskId,
                sent.iter().map(|(id, _)| *id),
            ))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Wakes the `MULTIPLE_MATCHES` failures whose ambiguity may have cleared: those sharing
    /// their key with another such failure that was resolved after they were last tried (one
    /// of the records was merged away, given another key, or linked). A waiting Salesforce
    /// record is made due for the next read of due records; a waiting desk record is queued
    /// for the next push when `push` (two-way), and left waiting otherwise. Each one woken is
    /// tried once: trying it again logs it anew or resolves it. Returns how many woke.
    pub async fn wake_rivals(&self, module: Module, push: bool) -> StoreResult<usize> {
        let multiple = FailureReason::MultipleMatches.as_str();
        let waiting = sync_failure::Entity::find()
            .filter(sync_failure::Column::Module.eq(module.as_str()))
            .filter(sync_failure::Column::Reason.eq(multiple))
            .filter(sync_failure::Column::ResolvedAt.is_null())
            .filter(sync_failure::Column::MatchKey.is_not_null())
            .all(self.connection())
            .await?;
        if waiting.is_empty() {
            return Ok(0);
        }
        // The keys by subquery: tens of thousands would bind more values than SQLite takes.
        let open_keys = Query::select()
            .column(sync_failure::Column::MatchKey)
            .from(sync_failure::Entity)
            .and_where(Expr::col(sync_failure::Column::Module).eq(module.as_str()))
            .and_where(Expr::col(sync_failure::Column::Reason).eq(multiple))
            .and_where(Expr::col(sync_failure::Column::ResolvedAt).is_null())
            .to_owned();
        let settled: Vec<(Option<String>, Option<DateTime<Utc>>)> = sync_failure::Entity::find()
            .select_only()
            .column(sync_failure::Column::MatchKey)
            .column_as(
                Expr::col(sync_failure::Column::ResolvedAt).max(),
                "resolved_at",
            )
            .filter(sync_failure::Column::Module.eq(module.as_str()))
            .filter(sync_failure::Column::Reason.eq(multiple))
            .filter(sync_failure::Column::ResolvedAt.is_not_null())
            .filter(sync_failure::Column::MatchKey.in_subquery(open_keys))
            .group_by(sync_failure::Column::MatchKey)
            .into_tuple()
            .all(self.connection())
            .await?;
        let settled: HashMap<String, DateTime<Utc>> = settled
            .into_iter()
            .filter_map(|(key, at)| Some((key?, at?)))
            .collect();
        let pull = Direction::SalesforceToDesk.as_str();
        let (mut due, mut queued) = (Vec::new(), Vec::new());
        for failure in waiting {
            let woke = failure
                .match_key
                .as_ref()
                .and_then(|k| settled.get(k))
                .is_some_and(|resolved| *resolved > failure.at);
            if !woke {
                continue;
            }
            if failure.direction == pull {
                due.push(failure.id);
            } else if let Some(desk_id) = failure.desk_id.filter(|_| push) {
                queued.push(desk_id);
            }
        }
        if due.is_empty() && queued.is_empty() {
            return Ok(0);
        }
        let txn = self.write().await?;
        for part in due.chunks(BIND_PART) {
            sync_failure::Entity::update_many()
                .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(Utc::now()))
                .filter(sync_failure::Column::Id.is_in(part.iter().copied()))
                .exec(&*txn)
                .await?;
        }
        enqueue_all(&*txn, module, &queued).await?;
        txn.commit().await?;
        Ok(due.len() + queued.len())
    }

    /// Whether a desk record of `module` waits in the outbox more than once.
    pub async fn outbox_repeats(&self, module: Module) -> StoreResult<bool> {
        let repeated: Option<i64> = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::DeskId)
            .filter(outbox::Column::Module.eq(module.as_str()))
            .group_by(outbox::Column::DeskId)
            .having(Expr::col(outbox::Column::Id).count().gt(1))
            .into_tuple()
            .one(self.connection())
            .await?;
        Ok(repeated.is_some())
    }

    pub async fn outbox_len(&self) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        Ok(outbox::Entity::find().count(self.connection()).await?)
    }

    /// Live desk records after `after` (by id) that have no Salesforce link yet, and no
    /// former link: the Salesforce record a deleted integration linked one to has not been
    /// read again yet (its pull failed, or it was deleted there, as a linked one would stay).
    pub async fn unlinked(&self, module: Module, after: i64, limit: u64) -> StoreResult<Vec<i64>> {
        let ids = match module {
            Module::Contacts => {
                contact::Entity::find()
                    .select_only()
                    .column(contact::Column::Id)
                    .filter(contact::Column::Id.gt(after))
                    .filter(contact::Column::DeletedAt.is_null())
                    .filter(unlinked(module, contact::Column::Id))
                    .filter(not_formerly_linked(module, contact::Column::Id))
                    .order_by_asc(contact::Column::Id)
                    .limit(limit)
                    .into_tuple::<i64>()
                    .all(self.connection())
                    .await?
            }
            Module::Accounts => {
                account::Entity::find()
                    .select_only()
                    .column(account::Column::Id)
                    .filter(account::Column::Id.gt(after))
                    .filter(account::Column::DeletedAt.is_null())
                    .filter(unlinked(module, account::Column::Id))
                    .filter(not_formerly_linked(module, account::Column::Id))
                    .order_by_asc(account::Column::Id)
                    .limit(limit)
                    .into_tuple::<i64>()
                    .all(self.connection())
                    .await?
            }
        };
        Ok(ids)
    }

    /// Desk contacts (recycle bin included) with no Salesforce link whose email matches one of
    /// these, ignoring case: the candidates a Salesforce contact may meet the first time.
    pub async fn unlinked_contacts_by_emails(
        &self,
        emails: &[String],
    ) -> StoreResult<Vec<contact::Model>> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        Ok(contact::Entity::find()
            .filter(one_of(
                self.backend(),
                contact::Column::EmailKey,
                emails.iter().map(|e| super::contacts::email_key(e)),
            ))
            .filter(unlinked(Module::Contacts, contact::Column::Id))
            .all(self.connection())
            .await?)
    }

    /// Desk accounts (recycle bin included) with no Salesforce link named one of these,
    /// ignoring case.
    pub async fn unlinked_accounts_by_names(
        &self,
        names: &[String],
    ) -> StoreResult<Vec<account::Model>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        Ok(account::Entity::find()
            .filter(one_of(
                self.backend(),
                account::Column::NameKey,
                names.iter().map(|n| super::contacts::name_key(n)),
            ))
            .filter(unlinked(Module::Accounts, account::Column::Id))
            .all(self.connection())
            .await?)
    }

    /// Notes, before they are sent, creates that cannot be repeated safely: each desk record
    /// with the values sent (a JSON object). Until their answer is recorded (or found again
    /// after it was lost), they stay here.
    ///
    /// A record made again in place of one Salesforce deleted loses its link to that one in
    /// the same transaction: still linked while its create is in doubt, it would pass for
    /// settled, and a pull meeting what the create made would take it for a new record.
    pub async fn note_pending_creates(
        &self,
        module: Module,
        creates: impl IntoIterator<Item = (i64, String)>,
        made_again: &[i64],
        upsert: bool,
    ) -> StoreResult<()> {
        // The replica that looks for them, should this one die, measures the wait from this.
        let now = self.shared_now().await?;
        let txn = self.write().await?;
        let org_id = integration::Entity::find_by_id(super::integration::ROW)
            .one(&*txn)
            .await?
            .and_then(|i| i.org_id);
        let rows: Vec<pending_create::ActiveModel> = creates
            .into_iter()
            .map(|(desk_id, sent)| pending_create::ActiveModel {
                module: Set(module.as_str().into()),
                desk_id: Set(desk_id),
                sent: Set(sent),
                sent_at: Set(now),
                upsert: Set(upsert),
                org_id: Set(org_id.clone()),
                ..Default::default()
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        pending_create::Entity::insert_many(rows)
            .exec(&*txn)
            .await?;
        forget_links_of(&*txn, module, made_again).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Creates of a module sent without their answer recorded, oldest first.
    pub async fn pending_creates(&self, module: Module) -> StoreResult<Vec<pending_create::Model>> {
        Ok(pending_create::Entity::find()
            .filter(pending_create::Column::Module.eq(module.as_str()))
            .order_by_asc(pending_create::Column::Id)
            .all(self.connection())
            .await?)
    }

    /// Opens a batch's transaction. On PostgreSQL its statements run on generic plans: they
    /// are key lookups and inserts of up to 1,000 rows, whose plans do not depend on the
    /// values bound. Planned for its values, an insert of 18,000 parameters took 5–20 ms to
    /// bind (its rows, 25 ms to write) the first five times on each pooled connection and
    /// again after each refresh of the statistics; on its generic plan, 1–2 ms.
    pub async fn begin_sync(&self) -> StoreResult<SyncBatch<'_>> {
        let txn = self.write().await?;
        if self.backend() == sea_orm::DbBackend::Postgres {
            txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
                .await?;
        }
        Ok(SyncBatch {
            store: self,
            txn,
            sync_events: Vec::new(),
            linked_accounts: Vec::new(),
        })
    }
}

impl Store {
    /// [`restart_spent`] for these failures, as a person's retry of them begins.
    pub async fn restart_spent(&self, failures: &[i64]) -> StoreResult<()> {
        restart_spent(self.connection(), failures).await
    }

    /// Makes these failed records due now, for the sync round running, or the next, to try:
    /// desk records are queued to be sent again (when `push`: the sync is two-way), and
    /// Salesforce records are read again.
    pub async fn queue_retries(
        &self,
        failures: &[sync_failure::Model],
        push: bool,
    ) -> StoreResult<()> {
        let mut batch = self.begin_sync().await?;
        for module in [Module::Accounts, Module::Contacts] {
            let (pushes, pulls): (Vec<_>, Vec<_>) = failures
                .iter()
                .filter(|f| f.module == module.as_str() && f.resolved_at.is_none())
                .partition(|f| f.direction == Direction::DeskToSalesforce.as_str());
            let pushes = if push { pushes } else { Vec::new() };
            let desk_ids: Vec<i64> = pushes.iter().filter_map(|f| f.desk_id).collect();
            for part in desk_ids.chunks(BIND_PART) {
                batch.enqueue_all(module, part).await?;
            }
            let due: Vec<i64> = pushes.iter().chain(&pulls).map(|f| f.id).collect();
            restart_spent(&*batch.txn, &due).await?;
            for part in due.chunks(BIND_PART) {
                sync_failure::Entity::update_many()
                    .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(Utc::now()))
                    .filter(sync_failure::Column::Id.is_in(part.iter().copied()))
                    .filter(sync_failure::Column::ResolvedAt.is_null())
                    .exec(&*batch.txn)
                    .await?;
            }
        }
        batch.commit().await
    }
}

/// One transaction of sync writes. Desk records written here are not queued for pushing:
/// they came from Salesforce.
pub struct SyncBatch<'a> {
    store: &'a Store,
    /// Tells of the desk records it writes as it commits.
    txn: WriteTxn<'a>,
    /// What the batch tells `syncEvents` of, logged as it commits.
    sync_events: Vec<SyncEventKind>,
    /// Desk accounts linked to a Salesforce one here, however (made there, matched, found
    /// after a lost answer): their contacts waiting to go out are woken when it commits.
    linked_accounts: Vec<i64>,
}

impl SyncBatch<'_> {
    /// The saved sync type as this transaction sees it, the integration row locked against a
    /// change of it until the batch ends (on PostgreSQL; SQLite runs one writer at a time).
    pub async fn sync_type(&self) -> StoreResult<Option<String>> {
        Ok(integration::Entity::find_by_id(1)
            .lock_shared()
            .one(&*self.txn)
            .await?
            .map(|m| m.sync_type))
    }

    /// Desk contacts by id, recycle bin included, as this transaction sees them. On
    /// PostgreSQL their rows stay locked until it ends: a desk edit of one waits for the
    /// batch, and the batch never writes over an edit it did not see.
    pub async fn contacts_for_update(&self, ids: &[ContactId]) -> StoreResult<Vec<contact::Model>> {
        self.rows_for_update::<contact::Entity>(contact::Column::Id, ids.iter().map(|id| id.0))
            .await
    }

    /// Desk accounts by id, recycle bin included, locked as `contacts_for_update` locks.
    pub async fn accounts_for_update(&self, ids: &[AccountId]) -> StoreResult<Vec<account::Model>> {
        self.rows_for_update::<account::Entity>(account::Column::Id, ids.iter().map(|id| id.0))
            .await
    }

    /// Rows by id, in id order (the order mass updates lock in too), locked on PostgreSQL.
    async fn rows_for_update<E: EntityTrait>(
        &self,
        id: E::Column,
        ids: impl IntoIterator<Item = i64>,
    ) -> StoreResult<Vec<E::Model>> {
        let ids: Vec<i64> = ids.into_iter().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(E::find()
            .filter(one_of(self.store.backend(), id, ids))
            .order_by_asc(id)
            .lock_exclusive()
            .all(&*self.txn)
            .await?)
    }

    /// Which of these desk records have a change Salesforce refused that is still open: a
    /// desk edit that has not gone out, though it no longer waits in the outbox.
    pub async fn refused_pushes(
        &self,
        module: Module,
        ids: &[i64],
    ) -> StoreResult<std::collections::HashSet<i64>> {
        refused_pushes(&*self.txn, self.store.backend(), module, ids).await
    }

    /// Of these Salesforce accounts, those whose desk account was purged, read in the batch
    /// (see [`Self::salesforce_ids_by_desk`]): their links stay for the account to come back
    /// to, and name no desk account.
    pub async fn purged_accounts(&self, ids: &[String]) -> StoreResult<HashSet<String>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let rows = self
            .store
            .account_links(ids, false)
            .into_tuple::<String>()
            .all(&*self.txn)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// `desk id → Salesforce id` for the linked ones of these desk records, read in the batch:
    /// a batch holding desk rows locked asks no other connection of the pool, which writers
    /// waiting on those rows may all hold.
    pub async fn salesforce_ids_by_desk(
        &self,
        module: Module,
        ids: &[i64],
    ) -> StoreResult<HashMap<i64, String>> {
        use record_link::Column::{DeskId, SalesforceId};
        link_pairs(
            &*self.txn,
            self.store.backend(),
            module,
            (DeskId, SalesforceId),
            ids,
        )
        .await
    }

    /// The waiting changes of each of these desk records, as this transaction sees them.
    pub async fn outbox_waiting(
        &self,
        module: Module,
        ids: &[i64],
    ) -> StoreResult<HashMap<i64, Vec<i64>>> {
        outbox_waiting(&*self.txn, self.store.backend(), module, ids).await
    }

    pub async fn create_contact(&mut self, fields: ContactFields) -> StoreResult<contact::Model> {
        check_account(&*self.txn, fields.account_id).await?;
        let now = Utc::now();
        let mut active = contact::ActiveModel {
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            ..Default::default()
        };
        super::contacts::set_fields(&mut active, fields);
        let model = active.insert(&*self.txn).await?;
        self.txn
            .tells(DeskEntity::Contact, DeskAction::Created, model.id.0);
        Ok(model)
    }

    /// Creates many desk contacts with one statement. Contacts whose account is missing or in
    /// the recycle bin are not created; their positions come back with the reason.
    pub async fn create_contacts(
        &mut self,
        all: Vec<ContactFields>,
    ) -> StoreResult<(Vec<(usize, ContactId)>, Vec<(usize, Invalid)>)> {
        let wanted: std::collections::BTreeSet<AccountId> =
            all.iter().filter_map(|f| f.account_id).collect();
        let live_accounts = || {
            account::Entity::find()
                .filter(one_of(
                    self.txn.get_database_backend(),
                    account::Column::Id,
                    wanted.iter().map(|id| id.0),
                ))
                .filter(account::Column::DeletedAt.is_null())
        };
        // Almost always every account is live: count them, and list them only when one is not.
        let all_live =
            wanted.is_empty() || live_accounts().count(&*self.txn).await? == wanted.len() as u64;
        let live: std::collections::HashSet<AccountId> = if all_live {
            wanted.iter().copied().collect()
        } else {
            live_accounts()
                .select_only()
                .column(account::Column::Id)
                .into_tuple::<AccountId>()
                .all(&*self.txn)
                .await?
                .into_iter()
                .collect()
        };
        let now = Utc::now();
        let mut rejected = Vec::new();
        let mut positions = Vec::with_capacity(all.len());
        let mut models = Vec::with_capacity(all.len());
        for (i, fields) in all.into_iter().enumerate() {
            if let Some(account) = fields.account_id.filter(|a| !live.contains(a)) {
                rejected.push((
                    i,
                    Invalid::new(
                        "accountId",
                        format!("account {account} is missing or in the recycle bin"),
                    ),
                ));
                continue;
            }
            let mut active = contact::ActiveModel {
                created_at: Set(now),
                updated_at: Set(now),
                deleted_at: Set(None),
                ..Default::default()
            };
            super::contacts::set_fields(&mut active, fields);
            positions.push(i);
            models.push(active);
        }
        let created = insert_ids(&*self.txn, models).await?;
        for id in &created {
            self.txn
                .tells(DeskEntity::Contact, DeskAction::Created, id.0);
        }
        Ok((positions.into_iter().zip(created).collect(), rejected))
    }

    /// Creates many desk accounts with one statement.
    pub async fn create_accounts(
        &mut self,
        all: Vec<AccountFields>,
    ) -> StoreResult<Vec<AccountId>> {
        let now = Utc::now();
        let models: Vec<account::ActiveModel> = all
            .into_iter()
            .map(|fields| {
                let mut active = account::ActiveModel {
                    created_at: Set(now),
                    updated_at: Set(now),
                    deleted_at: Set(None),
                    ..Default::default()
                };
                super::accounts::set_fields(&mut active, fields);
                active
            })
            .collect();
        let created = insert_ids(&*self.txn, models).await?;
        for id in &created {
            self.txn
                .tells(DeskEntity::Account, DeskAction::Created, id.0);
        }
        Ok(created)
    }

    /// Forgets the updates noted as sent to these desk records' twins, which Salesforce
    /// answered without making them (a made one's note goes with its new link).
    pub async fn clear_sent(&mut self, module: Module, desk_ids: &[i64]) -> StoreResult<()> {
        if desk_ids.is_empty() {
            return Ok(());
        }
        record_link::Entity::update_many()
            .col_expr(
                record_link::Column::SentHash,
                Expr::value(Option::<String>::None),
            )
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(record_link::Column::SentHash.is_not_null())
            .filter(one_of(
                self.txn.get_database_backend(),
                record_link::Column::DeskId,
                desk_ids.iter().copied(),
            ))
            .exec(&*self.txn)
            .await?;
        Ok(())
    }

    /// Links many pairs that have no link yet, with one statement.
    pub async fn link_new(&mut self, module: Module, pairs: Vec<NewLink>) -> StoreResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let (accounts, desk_ids): (Vec<String>, Vec<i64>) = match module {
            Module::Accounts => pairs
                .iter()
                .map(|l| (l.salesforce_id.clone(), l.desk_id))
                .unzip(),
            Module::Contacts => Default::default(),
        };
        let rows = pairs.into_iter().map(|l| record_link::ActiveModel {
            module: Set(module.as_str().into()),
            desk_id: Set(l.desk_id),
            salesforce_id: Set(l.salesforce_id),
            synced_hash: Set(l.hash),
            salesforce_modstamp: Set(l.modstamp),
            salesforce_fields: Set(l.fields),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(INSERT_ROWS).collect();
            record_link::Entity::insert_many(chunk)
                .exec_without_returning(&*self.txn)
                .await?;
        }
        if module == Module::Accounts {
            self.wake_contacts_awaiting(&accounts).await?;
            self.linked_accounts.extend(desk_ids);
        }
        Ok(())
    }

    /// See [`wake_contacts_awaiting`].
    async fn wake_contacts_awaiting(&mut self, accounts: &[String]) -> StoreResult<()> {
        wake_contacts_awaiting(&*self.txn, accounts).await
    }

    /// Writes Salesforce's values over a desk contact, bringing it back from the recycle bin
    /// unless it `stays_binned`.
    pub async fn write_contact(
        &mut self,
        current: contact::Model,
        fields: ContactFields,
        stays_binned: bool,
    ) -> StoreResult<contact::Model> {
        check_account_change(&*self.txn, current.account_id, fields.account_id).await?;
        let restored = current.deleted_at.is_some() && !stays_binned;
        let mut active: contact::ActiveModel = current.into();
        super::contacts::set_fields(&mut active, fields);
        if !stays_binned {
            active.deleted_at = Set(None);
        }
        active.updated_at = Set(Utc::now());
        let model = active.update(&*self.txn).await?;
        let action = if restored {
            DeskAction::Restored
        } else {
            DeskAction::Updated
        };
        self.txn.tells(DeskEntity::Contact, action, model.id.0);
        Ok(model)
    }

    pub async fn create_account(&mut self, fields: AccountFields) -> StoreResult<account::Model> {
        let now = Utc::now();
        let mut active = account::ActiveModel {
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            ..Default::default()
        };
        super::accounts::set_fields(&mut active, fields);
        let model = active.insert(&*self.txn).await?;
        self.txn
            .tells(DeskEntity::Account, DeskAction::Created, model.id.0);
        Ok(model)
    }

    /// Writes Salesforce's values over a desk account, bringing it back from the recycle bin
    /// unless it `stays_binned`.
    pub async fn write_account(
        &mut self,
        current: account::Model,
        fields: AccountFields,
        stays_binned: bool,
    ) -> StoreResult<account::Model> {
        let restored = current.deleted_at.is_some() && !stays_binned;
        let mut active: account::ActiveModel = current.into();
        super::accounts::set_fields(&mut active, fields);
        if !stays_binned {
            active.deleted_at = Set(None);
        }
        active.updated_at = Set(Utc::now());
        let model = active.update(&*self.txn).await?;
        let action = if restored {
            // Back from the bin, as `restoreAccount` brings it: the Salesforce contacts that
            // waited for it come with the next due records.
            wake_contacts_awaiting_twin_of(&*self.txn, model.id).await?;
            DeskAction::Restored
        } else {
            DeskAction::Updated
        };
        self.txn.tells(DeskEntity::Account, action, model.id.0);
        Ok(model)
    }

    /// Links a desk record to a Salesforce record at the values both now hold. `fields` is
    /// the Salesforce record as just read; `None` keeps what an existing link of the same pair
    /// holds. Any other link of either record is replaced.
    pub async fn link(
        &mut self,
        module: Module,
        desk_id: i64,
        salesforce_id: &str,
        hash: &str,
        modstamp: Option<DateTime<Utc>>,
        fields: Option<&str>,
    ) -> StoreResult<()> {
        let now = Utc::now();
        let mut update = record_link::Entity::update_many()
            .col_expr(record_link::Column::SyncedHash, Expr::value(hash))
            .col_expr(
                record_link::Column::SalesforceModstamp,
                Expr::value(modstamp),
            )
            .col_expr(
                record_link::Column::SentHash,
                Expr::value(Option::<String>::None),
            )
            .col_expr(record_link::Column::UpdatedAt, Expr::value(now));
        if let Some(fields) = fields {
            update = update.col_expr(record_link::Column::SalesforceFields, Expr::value(fields));
        }
        let same_pair = update
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(record_link::Column::DeskId.eq(desk_id))
            .filter(record_link::Column::SalesforceId.eq(salesforce_id))
            .exec(&*self.txn)
            .await?;
        if same_pair.rows_affected > 0 {
            return Ok(());
        }
        // A contact made again in the desk for a Salesforce one that stayed in the account a
        // purge kept it in (its desk record purged since) is still kept there, while
        // Salesforce still has it there.
        let kept_account_id = match module {
            Module::Contacts => record_link::Entity::find()
                .filter(record_link::Column::Module.eq(module.as_str()))
                .filter(record_link::Column::SalesforceId.eq(salesforce_id))
                .one(&*self.txn)
                .await?
                .and_then(|previous| previous.kept_account_id)
                .filter(|kept| {
                    fields.is_none_or(|fields| {
                        serde_json::from_str::<serde_json::Value>(fields)
                            .is_ok_and(|record| record["AccountId"] == kept.as_str())
                    })
                }),
            Module::Accounts => None,
        };
        record_link::Entity::delete_many()
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(
                record_link::Column::DeskId
                    .eq(desk_id)
                    .or(record_link::Column::SalesforceId.eq(salesforce_id)),
            )
            .exec(&*self.txn)
            .await?;
        record_link::ActiveModel {
            module: Set(module.as_str().into()),
            desk_id: Set(desk_id),
            salesforce_id: Set(salesforce_id.to_owned()),
            synced_hash: Set(hash.to_owned()),
            salesforce_modstamp: Set(modstamp),
            salesforce_fields: Set(fields.map(str::to_owned)),
            kept_account_id: Set(kept_account_id),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&*self.txn)
        .await?;
        if module == Module::Accounts {
            self.take_back_contacts(salesforce_id, desk_id).await?;
            self.wake_contacts_awaiting(&[salesforce_id.to_owned()])
                .await?;
            self.linked_accounts.push(desk_id);
        }
        Ok(())
    }

    /// A Salesforce account back in the desk takes back the contacts that stayed in it after
    /// its desk account was purged.
    async fn take_back_contacts(&mut self, salesforce_id: &str, account: i64) -> StoreResult<()> {
        let kept = || {
            sea_orm::Condition::all()
                .add(record_link::Column::Module.eq(Module::Contacts.as_str()))
                .add(record_link::Column::KeptAccountId.eq(salesforce_id))
        };
        let ids: Vec<i64> = record_link::Entity::find()
            .select_only()
            .column(record_link::Column::DeskId)
            .filter(kept())
            .into_tuple()
            .all(&*self.txn)
            .await?;
        if ids.is_empty() {
            return Ok(());
        }
        contact::Entity::update_many()
            .col_expr(contact::Column::AccountId, Expr::value(account))
            .col_expr(contact::Column::UpdatedAt, Expr::value(Utc::now()))
            // A subquery, not the ids: an account may hold more contacts than SQLite binds.
            .filter(
                contact::Column::Id.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(record_link::Column::DeskId)
                        .from(record_link::Entity)
                        .cond_where(kept())
                        .to_owned(),
                ),
            )
            .filter(contact::Column::AccountId.is_null())
            .exec(&*self.txn)
            .await?;
        record_link::Entity::update_many()
            .col_expr(
                record_link::Column::KeptAccountId,
                Expr::value(Option::<String>::None),
            )
            .filter(kept())
            .exec(&*self.txn)
            .await?;
        for id in ids {
            self.txn.tells(DeskEntity::Contact, DeskAction::Updated, id);
        }
        Ok(())
    }

    /// A contact Salesforce moved out of the account it was kept in follows it there.
    pub async fn forget_kept_account(&mut self, contact: ContactId) -> StoreResult<()> {
        forget_kept_account(&*self.txn, contact).await
    }

    /// Keeps each of these Salesforce contacts, by its link, in the Salesforce account it is
    /// in, whose desk account was purged: a desk edit does not take it out.
    pub async fn keep_accounts(&mut self, kept: &[(String, String)]) -> StoreResult<()> {
        let mut by_account: HashMap<&str, Vec<String>> = HashMap::new();
        for (contact, account) in kept {
            by_account.entry(account).or_default().push(contact.clone());
        }
        for (account, contacts) in by_account {
            for part in contacts.chunks(BIND_PART) {
                record_link::Entity::update_many()
                    .col_expr(record_link::Column::KeptAccountId, Expr::value(account))
                    .filter(record_link::Column::Module.eq(Module::Contacts.as_str()))
                    .filter(record_link::Column::SalesforceId.is_in(part.iter().cloned()))
                    .exec(&*self.txn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Replaces what the link of this Salesforce record keeps of it.
    pub async fn set_link_fields_of(
        &mut self,
        module: Module,
        salesforce_id: &str,
        fields: &str,
    ) -> StoreResult<()> {
        record_link::Entity::update_many()
            .col_expr(record_link::Column::SalesforceFields, Expr::value(fields))
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(record_link::Column::SalesforceId.eq(salesforce_id))
            .exec(&*self.txn)
            .await?;
        Ok(())
    }

    /// Keeps a newer read of a linked Salesforce record, and its version, where the mapped
    /// values did not change.
    pub async fn set_link_fields(
        &mut self,
        link_id: i64,
        fields: &str,
        modstamp: DateTime<Utc>,
    ) -> StoreResult<()> {
        record_link::Entity::update_many()
            .col_expr(record_link::Column::SalesforceFields, Expr::value(fields))
            .col_expr(
                record_link::Column::SalesforceModstamp,
                Expr::value(Some(modstamp)),
            )
            .filter(record_link::Column::Id.eq(link_id))
            .exec(&*self.txn)
            .await?;
        Ok(())
    }

    pub async fn unlink(&mut self, module: Module, desk_id: i64) -> StoreResult<()> {
        forget_links_of(&*self.txn, module, &[desk_id]).await
    }

    /// Keeps one outbox row per desk record of `module`, its oldest: while the sync is
    /// one-way, desk edits wait there for it to turn two-way, and a record edited a thousand
    /// times meanwhile waits once.
    pub async fn compact_outbox(&mut self, module: Module) -> StoreResult<()> {
        let oldest = Query::select()
            .expr(Expr::col(outbox::Column::Id).min())
            .from(outbox::Entity)
            .and_where(Expr::col(outbox::Column::Module).eq(module.as_str()))
            .group_by_col(outbox::Column::DeskId)
            .to_owned();
        outbox::Entity::delete_many()
            .filter(outbox::Column::Module.eq(module.as_str()))
            .filter(outbox::Column::Id.not_in_subquery(oldest))
            .exec(&*self.txn)
            .await?;
        Ok(())
    }

    /// Forgets these waiting changes (outbox rows) of a desk record: the ones its values
    /// were read after. Any other stays, to be pushed in turn: one queued later, and one a
    /// transaction still open then had queued with a lower id, unseen.
    pub async fn drop_outbox(
        &mut self,
        module: Module,
        desk_id: i64,
        rows: &[i64],
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        outbox::Entity::delete_many()
            .filter(outbox::Column::Module.eq(module.as_str()))
            .filter(outbox::Column::DeskId.eq(desk_id))
            .filter(outbox::Column::Id.is_in(rows.iter().copied()))
            .exec(&*self.txn)
            .await?;
        Ok(())
    }

    pub async fn enqueue(&mut self, module: Module, desk_id: i64) -> StoreResult<()> {
        enqueue(&*self.txn, module, desk_id).await
    }

    /// Queues these desk records for the sync to push, a thousand to a statement.
    pub async fn enqueue_all(&mut self, module: Module, desk_ids: &[i64]) -> StoreResult<()> {
        insert_outbox(&*self.txn, module, desk_ids).await
    }

    /// Queues those of these desk accounts that nothing would send: live, unlinked, not
    /// queued, not being made and not failing to go out (one a deleted integration linked
    /// whose twin Salesforce deleted meanwhile, say). A contact waiting for its account to
    /// reach Salesforce would otherwise wait for good.
    pub async fn queue_stranded_accounts(&mut self, accounts: &[i64]) -> StoreResult<()> {
        if accounts.is_empty() {
            return Ok(());
        }
        let module = Module::Accounts;
        let stranded: Vec<i64> = account::Entity::find()
            .select_only()
            .column(account::Column::Id)
            .filter(account::Column::Id.is_in(accounts.iter().copied()))
            .filter(account::Column::DeletedAt.is_null())
            .filter(unlinked(module, account::Column::Id))
            .filter(not_formerly_linked(module, account::Column::Id))
            .filter(named_by_none(
                outbox::Entity,
                (outbox::Column::Module, outbox::Column::DeskId),
                module,
                account::Column::Id,
            ))
            .filter(named_by_none(
                pending_create::Entity,
                (
                    pending_create::Column::Module,
                    pending_create::Column::DeskId,
                ),
                module,
                account::Column::Id,
            ))
            .filter(
                account::Column::Id.not_in_subquery(
                    Query::select()
                        .column(sync_failure::Column::DeskId)
                        .from(sync_failure::Entity)
                        .and_where(Expr::col(sync_failure::Column::Module).eq(module.as_str()))
                        .and_where(
                            Expr::col(sync_failure::Column::Direction)
                                .eq(Direction::DeskToSalesforce.as_str()),
                        )
                        .and_where(Expr::col(sync_failure::Column::ResolvedAt).is_null())
                        .and_where(Expr::col(sync_failure::Column::DeskId).is_not_null())
                        .to_owned(),
                ),
            )
            .into_tuple()
            .all(&*self.txn)
            .await?;
        insert_outbox(&*self.txn, module, &stranded).await
    }

    pub async fn set_cursor(
        &mut self,
        name: &str,
        modstamp: Option<DateTime<Utc>>,
        salesforce_id: Option<String>,
        desk_id: Option<i64>,
    ) -> StoreResult<()> {
        sync_cursor::Entity::delete_by_id(name.to_owned())
            .exec(&*self.txn)
            .await?;
        sync_cursor::ActiveModel {
            name: Set(name.to_owned()),
            modstamp: Set(modstamp),
            salesforce_id: Set(salesforce_id),
            desk_id: Set(desk_id),
            updated_at: Set(Utc::now()),
        }
        .insert(&*self.txn)
        .await?;
        Ok(())
    }

    /// Marks resolved the open failures of reading this Salesforce record into the desk.
    pub async fn resolve_pull(&mut self, module: Module, salesforce_id: &str) -> StoreResult<()> {
        let resolved = resolve_failures(
            &*self.txn,
            open_failures(module, Direction::SalesforceToDesk)
                .add(sync_failure::Column::SalesforceId.eq(salesforce_id)),
        )
        .await?;
        self.sync_events.extend(resolved);
        Ok(())
    }

    /// See [`wake_contacts_of`].
    async fn wake_contacts_of(&mut self, accounts: &[i64]) -> StoreResult<()> {
        wake_contacts_of(&*self.txn, accounts).await
    }

    /// Marks resolved the open failures of sending this desk record to Salesforce.
    pub async fn resolve_push(&mut self, module: Module, desk_id: i64) -> StoreResult<()> {
        let resolved = settle_pushes(&*self.txn, module, desk_id).await?;
        self.sync_events.extend(resolved);
        Ok(())
    }

    /// Logs a failed record; an open entry for the same record is updated instead. A transient
    /// reason schedules the next automatic attempt by `retry`; `next_attempt_at` stays empty
    /// when the record waits for a person.
    pub async fn fail(
        &mut self,
        new: NewFailure,
        retry: &RetryPolicy,
    ) -> StoreResult<sync_failure::Model> {
        let mut open =
            sync_failure::Entity::find().filter(open_failures(new.module, new.direction));
        // The record is known by the side it is read from: a Salesforce record failing to
        // come in by its id (a link made or lost since changes only its desk id), a desk
        // record failing to go out by its own.
        let key = match new.direction {
            Direction::SalesforceToDesk => new
                .salesforce_id
                .clone()
                .map(|sf| sync_failure::Column::SalesforceId.eq(sf))
                .or(new
                    .desk_id
                    .map(|desk| sync_failure::Column::DeskId.eq(desk))),
            Direction::DeskToSalesforce => new
                .desk_id
                .map(|desk| sync_failure::Column::DeskId.eq(desk))
                .or(new
                    .salesforce_id
                    .clone()
                    .map(|sf| sync_failure::Column::SalesforceId.eq(sf))),
        };
        open = open
            .filter(key.unwrap_or_else(|| sync_failure::Column::Id.eq(-1)))
            .order_by_desc(sync_failure::Column::Id);
        let now = Utc::now();
        if let Some(existing) = open.one(&*self.txn).await? {
            // The bound counts automatic attempts: a record refused for a reason that waits
            // for a person (a validation rule, eight edits running) and then met by a passing
            // one (a locked row) is retried as any other would be.
            let waited_for_a_person = existing
                .reason
                .parse::<FailureReason>()
                .is_ok_and(|reason| !reason.is_transient());
            let attempts = if waited_for_a_person && new.reason.is_transient() {
                1
            } else {
                existing.attempts + 1
            };
            let mut active: sync_failure::ActiveModel = existing.into();
            active.at = Set(now);
            active.reason = Set(new.reason.as_str().into());
            active.message = Set(new.message);
            active.attempts = Set(attempts);
            active.next_attempt_at =
                Set(retry.next_attempt(new.reason, u32::try_from(attempts).unwrap_or(1), now));
            active.desk_id = Set(new.desk_id);
            active.salesforce_id = Set(new.salesforce_id);
            active.salesforce_modstamp = Set(new.modstamp);
            active.match_key = Set(new.match_key);
            let model = active.update(&*self.txn).await?;
            return Ok(self.log_failure(model));
        }
        let model = sync_failure::ActiveModel {
            at: Set(now),
            direction: Set(new.direction.as_str().into()),
            module: Set(new.module.as_str().into()),
            desk_id: Set(new.desk_id),
            salesforce_id: Set(new.salesforce_id),
            reason: Set(new.reason.as_str().into()),
            message: Set(new.message),
            attempts: Set(1),
            next_attempt_at: Set(retry.next_attempt(new.reason, 1, now)),
            resolved_at: Set(None),
            salesforce_modstamp: Set(new.modstamp),
            match_key: Set(new.match_key),
            ..Default::default()
        }
        .insert(&*self.txn)
        .await?;
        Ok(self.log_failure(model))
    }

    fn log_failure(&mut self, model: sync_failure::Model) -> sync_failure::Model {
        self.sync_events.push(SyncEventKind::Failure(model.clone()));
        model
    }

    /// Forgets the pending creates of these desk records: their answer is recorded in this
    /// batch, or they were found never to have been made.
    pub async fn settle_pending_creates(
        &mut self,
        module: Module,
        desk_ids: &[i64],
    ) -> StoreResult<()> {
        if desk_ids.is_empty() {
            return Ok(());
        }
        pending_create::Entity::delete_many()
            .filter(pending_create::Column::Module.eq(module.as_str()))
            .filter(one_of(
                self.txn.get_database_backend(),
                pending_create::Column::DeskId,
                desk_ids.iter().copied(),
            ))
            .exec(&*self.txn)
            .await?;
        Ok(())
    }

    /// Makes a record's next push due now when a desk change it was not sent with waits in
    /// the outbox: an edit made while its failed attempt was on its way goes out at once, as
    /// an edit to a record already waiting does (`wake_pushes`).
    pub async fn wake_if_edited_since(
        &mut self,
        module: Module,
        desk_id: i64,
        sent: &[i64],
    ) -> StoreResult<()> {
        let edited = outbox::Entity::find()
            .filter(outbox::Column::Module.eq(module.as_str()))
            .filter(outbox::Column::DeskId.eq(desk_id))
            .filter(outbox::Column::Id.is_not_in(sent.iter().copied()))
            .one(&*self.txn)
            .await?
            .is_some();
        if edited {
            wake_pushes(&*self.txn, module, [desk_id]).await?;
        }
        Ok(())
    }

    /// Which of these desk records are out of the recycle bin, their rows held until the
    /// batch ends: a move to the bin committing meanwhile waits, and then settles what the
    /// batch logged. Held in id order, as every desk write to several records takes them, and
    /// before the batch takes anything else.
    pub async fn live_desk_records(
        &mut self,
        module: Module,
        desk_ids: &[i64],
    ) -> StoreResult<std::collections::HashSet<i64>> {
        if desk_ids.is_empty() {
            return Ok(Default::default());
        }
        let rows: Vec<(i64, Option<DateTime<Utc>>)> = match module {
            Module::Contacts => {
                contact::Entity::find()
                    .select_only()
                    .column(contact::Column::Id)
                    .column(contact::Column::DeletedAt)
                    .filter(contact::Column::Id.is_in(desk_ids.iter().copied()))
                    .order_by_asc(contact::Column::Id)
                    .lock_exclusive()
                    .into_tuple()
                    .all(&*self.txn)
                    .await?
            }
            Module::Accounts => {
                account::Entity::find()
                    .select_only()
                    .column(account::Column::Id)
                    .column(account::Column::DeletedAt)
                    .filter(account::Column::Id.is_in(desk_ids.iter().copied()))
                    .order_by_asc(account::Column::Id)
                    .lock_exclusive()
                    .into_tuple()
                    .all(&*self.txn)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .filter(|(_, deleted_at)| deleted_at.is_none())
            .map(|(id, _)| id)
            .collect())
    }

    /// Makes these desk records due now: a manual retry of their push does not wait for the
    /// backoff. A failure to pull their Salesforce twin keeps its own next attempt.
    pub async fn due_now(&mut self, module: Module, desk_ids: &[i64]) -> StoreResult<()> {
        // Due now rather than never: a retry cut short (Salesforce down as it read) leaves a
        // failure that retries by itself still doing so.
        let now = Utc::now();
        sync_failure::Entity::update_many()
            .col_expr(sync_failure::Column::NextAttemptAt, Expr::value(Some(now)))
            .filter(open_failures(module, Direction::DeskToSalesforce))
            .filter(sync_failure::Column::NextAttemptAt.gt(now))
            .filter(sync_failure::Column::DeskId.is_in(desk_ids.iter().copied()))
            .exec(&*self.txn)
            .await?;
        Ok(())
    }

    /// Marks the open failures of a record resolved: it has now synced.
    pub async fn resolve(
        &mut self,
        module: Module,
        desk_id: Option<i64>,
        salesforce_id: Option<&str>,
    ) -> StoreResult<()> {
        let record = match (desk_id, salesforce_id) {
            (Some(desk), Some(sf)) => sync_failure::Column::DeskId
                .eq(desk)
                .or(sync_failure::Column::SalesforceId.eq(sf)),
            (Some(desk), None) => sync_failure::Column::DeskId.eq(desk),
            (None, Some(sf)) => sync_failure::Column::SalesforceId.eq(sf),
            (None, None) => return Ok(()),
        };
        let resolved = resolve_failures(
            &*self.txn,
            sea_orm::Condition::all()
                .add(sync_failure::Column::Module.eq(module.as_str()))
                .add(record),
        )
        .await?;
        self.sync_events.extend(resolved);
        Ok(())
    }

    pub async fn history(
        &mut self,
        direction: Direction,
        module: Module,
        counts: (i32, i32, i32),
    ) -> StoreResult<sync_history::Model> {
        let model = sync_history::ActiveModel {
            at: Set(Utc::now()),
            direction: Set(direction.as_str().into()),
            module: Set(module.as_str().into()),
            added: Set(counts.0),
            updated: Set(counts.1),
            failed: Set(counts.2),
            ..Default::default()
        }
        .insert(&*self.txn)
        .await?;
        self.sync_events.push(SyncEventKind::History(model.clone()));
        Ok(model)
    }

    pub async fn commit(mut self) -> StoreResult<()> {
        let linked = std::mem::take(&mut self.linked_accounts);
        for part in linked.chunks(BIND_PART) {
            self.wake_contacts_of(part).await?;
        }
        self.txn
            .commit_publishing(self.store, self.sync_events)
            .await
    }
}

/// Deletes the links of these desk records.
async fn forget_links_of(
    db: &impl ConnectionTrait,
    module: Module,
    desk_ids: &[i64],
) -> StoreResult<()> {
    if desk_ids.is_empty() {
        return Ok(());
    }
    record_link::Entity::delete_many()
        .filter(record_link::Column::Module.eq(module.as_str()))
        .filter(record_link::Column::DeskId.is_in(desk_ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}
