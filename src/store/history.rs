use chrono::{DateTime, Utc};
use entity::{sync_failure, sync_history};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Page, PageRequest, Store, StoreResult};
use crate::domain::{Direction, FailureReason, Module};

#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub since: Option<DateTime<Utc>>,
    pub module: Option<Module>,
    pub direction: Option<Direction>,
}

#[derive(Debug, Clone, Default)]
pub struct FailureFilter {
    pub reason: Option<FailureReason>,
    pub module: Option<Module>,
    /// Include failures that have since synced.
    pub resolved: bool,
}

/// Newest first: `after` is the id of the last entry of the previous page.
fn newest_first<T>(mut items: Vec<T>, page: PageRequest) -> Page<T> {
    let has_next = items.len() > page.first;
    items.truncate(page.first);
    Page {
        items,
        has_next,
        has_previous: page.after.is_some(),
    }
}

impl Store {
    pub async fn sync_history(
        &self,
        filter: &HistoryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<sync_history::Model>> {
        let mut select = history_matching(filter);
        if let Some(after) = page.after {
            select = select.filter(sync_history::Column::Id.lt(after));
        }
        let items = select
            .order_by_desc(sync_history::Column::Id)
            .limit(page.first as u64 + 1)
            .all(self.connection())
            .await?;
        Ok(newest_first(items, page))
    }

    /// How many history entries `filter` lists, on every page.
    pub async fn count_sync_history(&self, filter: &HistoryFilter) -> StoreResult<u64> {
        Ok(sea_orm::PaginatorTrait::count(history_matching(filter), self.connection()).await?)
    }

    pub async fn sync_failures(
        &self,
        filter: &FailureFilter,
        page: PageRequest,
    ) -> StoreResult<Page<sync_failure::Model>> {
        let mut select = failures_matching(filter);
        if let Some(after) = page.after {
            select = select.filter(sync_failure::Column::Id.lt(after));
        }
        let items = select
            .order_by_desc(sync_failure::Column::Id)
            .limit(page.first as u64 + 1)
            .all(self.connection())
            .await?;
        Ok(newest_first(items, page))
    }

    /// How many failures `filter` lists, on every page.
    pub async fn count_sync_failures(&self, filter: &FailureFilter) -> StoreResult<u64> {
        Ok(sea_orm::PaginatorTrait::count(failures_matching(filter), self.connection()).await?)
    }

    pub async fn sync_failure(&self, id: i64) -> StoreResult<Option<sync_failure::Model>> {
        Ok(sync_failure::Entity::find_by_id(id)
            .one(self.connection())
            .await?)
    }

    /// Unresolved failures with this reason, oldest first.
    pub async fn open_failures(
        &self,
        reason: FailureReason,
    ) -> StoreResult<Vec<sync_failure::Model>> {
        Ok(sync_failure::Entity::find()
            .filter(sync_failure::Column::Reason.eq(reason.as_str()))
            .filter(sync_failure::Column::ResolvedAt.is_null())
            .order_by_asc(sync_failure::Column::Id)
            .all(self.connection())
            .await?)
    }

    /// How many of these failures are still open, whatever their reason is now (a record
    /// tried again may fail for another one).
    pub async fn still_open(&self, ids: &[i64]) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        let mut open = 0;
        for part in ids.chunks(super::BIND_PART) {
            open += sync_failure::Entity::find()
                .filter(super::one_of(
                    self.backend(),
                    sync_failure::Column::Id,
                    part.to_vec(),
                ))
                .filter(sync_failure::Column::ResolvedAt.is_null())
                .count(self.connection())
                .await?;
        }
        Ok(open)
    }

    /// Deletes history entries, failures resolved and logged sync events older than
    /// `before`; returns how many history entries went. Events go from the oldest up to the first stamped at or after
    /// `before`: each process stamps them by its own clock, and going by stamp alone would
    /// leave holes in the log that a subscriber resuming after a kept id would pass unawares,
    /// or take events still inside the window along with one a lagging clock stamped. How
    /// far the log has gone is kept, so that a subscriber resuming from before it is told.
    pub async fn prune_history(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        use entity::sync_event;
        let txn = self.write().await?;
        let result = sync_history::Entity::delete_many()
            .filter(sync_history::Column::At.lt(before))
            .exec(&*txn)
            .await?;
        // A failure resolved as long ago is history too; open ones stay, however old.
        sync_failure::Entity::delete_many()
            .filter(sync_failure::Column::ResolvedAt.lt(before))
            .exec(&*txn)
            .await?;
        // The keys desk creates were sent with, past their day.
        super::create_keys::prune(&*txn).await?;
        // No event commits while the log is measured and cut: one committing between the
        // two reads below would go with the old ones. Taken after the deletes above, so the
        // log waits on the cut alone.
        super::locks::order_event_log(&*txn).await?;
        let first_kept: Option<i64> = sync_event::Entity::find()
            .select_only()
            .column_as(sync_event::Column::Id.min(), "first")
            .filter(sync_event::Column::At.gte(before))
            .into_tuple()
            .one(&*txn)
            .await?
            .flatten();
        // The newest event that goes, not the id before the first kept: ids a rolled-back
        // transaction drew (or a restart skipped) were never events, and a subscriber that
        // saw the last one before them has missed nothing.
        let mut going = sync_event::Entity::find()
            .select_only()
            .column_as(sync_event::Column::Id.max(), "through");
        if let Some(first) = first_kept {
            going = going.filter(sync_event::Column::Id.lt(first));
        }
        let through: Option<i64> = going.into_tuple().one(&*txn).await?.flatten();
        if let Some(through) = through
            && through > pruned_events_through(&*txn).await?
        {
            // How far each kind and module goes, for subscribers following only some.
            let going: Vec<(String, Option<String>, i64)> = sync_event::Entity::find()
                .select_only()
                .column(sync_event::Column::Kind)
                .column(sync_event::Column::Module)
                .column_as(sync_event::Column::Id.max(), "through")
                .filter(sync_event::Column::Id.lte(through))
                .group_by(sync_event::Column::Kind)
                .group_by(sync_event::Column::Module)
                .into_tuple()
                .all(&*txn)
                .await?;
            for (kind, module, through) in going {
                let [kind_col, module_col, through_col] =
                    ["kind", "module", "through"].map(Alias::new);
                let mark = Query::insert()
                    .into_table(Alias::new(PRUNED_KIND))
                    .columns([kind_col.clone(), module_col.clone(), through_col.clone()])
                    .values([
                        kind.into(),
                        module.unwrap_or_default().into(),
                        through.into(),
                    ])
                    .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?
                    // Ids only grow: what goes now is past what went before.
                    .on_conflict(
                        OnConflict::columns([kind_col, module_col])
                            .update_column(through_col)
                            .to_owned(),
                    )
                    .to_owned();
                txn.execute(&mark).await?;
            }
            sync_event::Entity::delete_many()
                .filter(sync_event::Column::Id.lte(through))
                .exec(&*txn)
                .await?;
            let mark = Query::update()
                .table(PRUNED)
                .value(Alias::new("through"), through)
                .and_where(Expr::col(Alias::new("through")).lt(through))
                .to_owned();
            txn.execute(&mark).await?;
        }
        txn.commit().await?;
        Ok(result.rows_affected)
    }
}

/// The one-row table saying through which id the event log has been pruned.
const PRUNED: &str = "sync_event_pruned";

/// Through which id the event log has been pruned of each kind of event and module (`''`
/// for none); `('*', '*')` for what went before these were kept.
const PRUNED_KIND: &str = "sync_event_pruned_kind";

/// The id through which the event log has been pruned (0 when nothing has been).
pub(super) async fn pruned_events_through(db: &impl ConnectionTrait) -> StoreResult<i64> {
    let read = Query::select()
        .column(Alias::new("through"))
        .from(PRUNED)
        .to_owned();
    Ok(match db.query_one(&read).await? {
        Some(row) => row.try_get("", "through")?,
        None => 0,
    })
}

impl Store {
    /// The id through which the event log has been pruned (0 when nothing has been).
    pub async fn sync_events_pruned_through(&self) -> StoreResult<i64> {
        pruned_events_through(self.connection()).await
    }

    /// The id through which the event log has been pruned of the events a subscriber
    /// following these kinds (every kind, when `None`) and modules is given: status changes,
    /// which belong to no module, whichever modules (0 when none has gone).
    pub async fn sync_events_pruned_through_of(
        &self,
        kinds: Option<&[&str]>,
        modules: &[Module],
    ) -> StoreResult<i64> {
        let (kind, module) = (Alias::new("kind"), Alias::new("module"));
        let mut followed = Condition::all().add(
            Condition::any()
                .add(Expr::col(module.clone()).eq(""))
                .add(Expr::col(module).is_in(modules.iter().map(|m| m.as_str()))),
        );
        if let Some(kinds) = kinds {
            followed = followed.add(Expr::col(kind.clone()).is_in(kinds.iter().copied()));
        }
        let through = Alias::new("through");
        let read = Query::select()
            .expr_as(Expr::col(through.clone()).max(), Alias::new("followed"))
            .from(Alias::new(PRUNED_KIND))
            .cond_where(Condition::any().add(followed).add(Expr::col(kind).eq("*")))
            .to_owned();
        let every = Query::select()
            .expr_as(Expr::col(through).max(), Alias::new("every"))
            .from(Alias::new(PRUNED_KIND))
            .to_owned();
        let db = self.connection();
        let max = |row: Option<sea_orm::QueryResult>, column: &str| -> StoreResult<i64> {
            Ok(match row {
                Some(row) => row.try_get::<Option<i64>>("", column)?.unwrap_or(0),
                None => 0,
            })
        };
        let followed = max(db.query_one(&read).await?, "followed")?;
        let every = max(db.query_one(&every).await?, "every")?;
        // Each prune marks, beside the log's own mark, how far each kind went, the newest of
        // those being the log's: a log's mark past them all was made by a build that kept no
        // marks of kinds (a replica not yet upgraded), and stands for every kind.
        let all = pruned_events_through(db).await?;
        Ok(if all > every { all } else { followed })
    }
}

/// The rows `filter` lists, in no order.
fn history_matching(filter: &HistoryFilter) -> sea_orm::Select<sync_history::Entity> {
    let mut select = sync_history::Entity::find();
    if let Some(since) = filter.since {
        select = select.filter(sync_history::Column::At.gte(since));
    }
    if let Some(module) = filter.module {
        select = select.filter(sync_history::Column::Module.eq(module.as_str()));
    }
    if let Some(direction) = filter.direction {
        select = select.filter(sync_history::Column::Direction.eq(direction.as_str()));
    }
    select
}

/// The rows `filter` lists, in no order.
fn failures_matching(filter: &FailureFilter) -> sea_orm::Select<sync_failure::Entity> {
    let mut select = sync_failure::Entity::find();
    if let Some(reason) = filter.reason {
        select = select.filter(sync_failure::Column::Reason.eq(reason.as_str()));
    }
    if let Some(module) = filter.module {
        select = select.filter(sync_failure::Column::Module.eq(module.as_str()));
    }
    if !filter.resolved {
        select = select.filter(sync_failure::Column::ResolvedAt.is_null());
    }
    select
}
