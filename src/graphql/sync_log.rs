//! Sync history and the failure log, with retries. Administrators only.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{sync_failure, sync_history};

use super::desk::{Account, Contact, load_account};
use super::integration::SyncModule;
use super::paging::{IdCursor, List, Total, connection_complexity, page_request, parse_id};
use super::{ApiError, ApiResult, Code, ContextExt};
use crate::domain::{AccountId, ContactId, Direction, SyncType};
use crate::store::{FailureFilter, HistoryFilter, Page};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::Direction")]
pub enum SyncDirection {
    DeskToSalesforce,
    SalesforceToDesk,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::FailureReason")]
pub enum FailureReason {
    /// The Salesforce record is already linked to another desk record.
    CrmIdAlreadyMapped,
    /// A value has the wrong type for its field.
    TypeMismatch,
    /// A field the other side requires has no value.
    MandatoryFieldMissing,
    MissingParameter,
    /// A value the other side refuses (bad email, unknown reference, …).
    InvalidParameter,
    /// A unique field already holds this value.
    DuplicateValue,
    /// A value is longer than the field allows.
    StringTooLong,
    /// Several records match on email or name; nothing was guessed.
    MultipleMatches,
    /// The contact's account has not reached the other side yet (the desk, or Salesforce);
    /// the contact waits for it and is retried automatically.
    AccountNotSynced,
    /// Salesforce could not be reached; retried automatically.
    UpstreamUnavailable,
    /// The org's API allowance ran out; retried automatically.
    RateLimited,
    /// Any other refusal; the message has Salesforce's own code.
    Rejected,
}

/// One batch of one sync direction and module.
#[derive(SimpleObject)]
pub struct SyncHistoryEntry {
    pub id: ID,
    pub at: DateTime<Utc>,
    pub direction: SyncDirection,
    pub module: SyncModule,
    pub added: i32,
    pub updated: i32,
    pub failed: i32,
}

/// A record that did not sync, and why.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SyncFailure {
    pub id: ID,
    /// When the record last failed: a record failing again keeps its entry (and its place
    /// in the list), its attempts counted.
    pub at: DateTime<Utc>,
    pub direction: SyncDirection,
    pub module: SyncModule,
    pub desk_id: Option<ID>,
    pub salesforce_id: Option<String>,
    pub reason: FailureReason,
    pub message: String,
    pub attempts: i32,
    /// When the sync tries the record again by itself (transient reasons only); empty when
    /// it waits for a retry.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the record finally synced.
    pub resolved_at: Option<DateTime<Utc>>,
}

#[async_graphql::ComplexObject]
impl SyncFailure {
    /// The desk contact that did not sync (in the recycle bin or not), while the desk has it.
    async fn contact(&self, ctx: &Context<'_>) -> ApiResult<Option<Contact>> {
        let Some(id) = self.desk_record(SyncModule::Contacts) else {
            return Ok(None);
        };
        Ok(ctx
            .loader()
            .load_one(ContactId(id))
            .await?
            .map(Contact::from))
    }

    /// The desk account that did not sync (in the recycle bin or not), while the desk has it.
    async fn account(&self, ctx: &Context<'_>) -> ApiResult<Option<Account>> {
        load_account(ctx, self.desk_record(SyncModule::Accounts).map(AccountId)).await
    }

    /// The Salesforce record in Salesforce's own UI, when the failure names one.
    async fn view_in_salesforce_url(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        let Some(salesforce_id) = &self.salesforce_id else {
            return Ok(None);
        };
        let org = ctx.integrations().org_view().await?;
        Ok(org.map(|org| format!("{}/{salesforce_id}", org.instance_url.trim_end_matches('/'))))
    }
}

impl SyncFailure {
    /// The desk record's id, when the failure is of `module` and names one.
    fn desk_record(&self, module: SyncModule) -> Option<i64> {
        (self.module == module)
            .then(|| self.desk_id.as_ref()?.parse().ok())
            .flatten()
    }
}

fn parse<T: std::str::FromStr<Err = String>>(what: &str, raw: &str) -> ApiResult<T> {
    raw.parse()
        .map_err(|e: String| ApiError::internal(&format!("stored {what}: {e}")))
}

impl TryFrom<sync_history::Model> for SyncHistoryEntry {
    type Error = ApiError;

    fn try_from(m: sync_history::Model) -> ApiResult<Self> {
        Ok(Self {
            id: ID(m.id.to_string()),
            at: m.at,
            direction: parse::<crate::domain::Direction>("direction", &m.direction)?.into(),
            module: parse::<crate::domain::Module>("module", &m.module)?.into(),
            added: m.added,
            updated: m.updated,
            failed: m.failed,
        })
    }
}

impl TryFrom<sync_failure::Model> for SyncFailure {
    type Error = ApiError;

    fn try_from(m: sync_failure::Model) -> ApiResult<Self> {
        Ok(Self {
            id: ID(m.id.to_string()),
            at: m.at,
            direction: parse::<crate::domain::Direction>("direction", &m.direction)?.into(),
            module: parse::<crate::domain::Module>("module", &m.module)?.into(),
            desk_id: m.desk_id.map(|id| ID(id.to_string())),
            salesforce_id: m.salesforce_id,
            reason: parse::<crate::domain::FailureReason>("reason", &m.reason)?.into(),
            message: m.message,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            resolved_at: m.resolved_at,
        })
    }
}

/// A page of the sync history or the failure log.
pub type Logged<N> = Connection<IdCursor, N, LogTotal>;

/// What a list of the sync log holds in all, and where in the event log it was read.
pub struct LogTotal {
    total: Total,
    last_event: i64,
}

#[Object]
impl LogTotal {
    /// How many the list holds in all, on every page: what "1–20 of 523" shows. Counted
    /// when asked for, so a list paged through as records change may hold more or fewer.
    async fn total_count(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        self.total.count(ctx).await
    }

    /// The id of the newest sync event logged before this list was read ("0" when none):
    /// `syncEvents(afterId:)` given it follows on from this page with no gap. An event after
    /// it may repeat what the page already shows; none it does not show is before. Read
    /// beside `integration` (fields of one query are read side by side), a dashboard follows
    /// on from the least of their ids.
    async fn last_event_id(&self) -> ID {
        ID(self.last_event.to_string())
    }
}

fn connection<M, N>(page: Page<M>, total: LogTotal, id: fn(&M) -> i64) -> ApiResult<Logged<N>>
where
    N: TryFrom<M, Error = ApiError> + async_graphql::OutputType,
{
    let list = total.total.list();
    let mut conn = Connection::with_additional_fields(page.has_previous, page.has_next, total);
    for model in page.items {
        let cursor = IdCursor(list, id(&model));
        conn.edges.push(Edge::new(cursor, N::try_from(model)?));
    }
    Ok(conn)
}

#[derive(Default)]
pub struct SyncLogQuery;

#[Object]
impl SyncLogQuery {
    /// Sync batches, newest first (kept 7 days by default). Administrators only.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn sync_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        since: Option<DateTime<Utc>>,
        module: Option<SyncModule>,
        direction: Option<SyncDirection>,
    ) -> ApiResult<Option<Logged<SyncHistoryEntry>>> {
        ctx.admin()?;
        let last_event = ctx.store().logged_sync_event_id().await?;
        let filter = HistoryFilter {
            since: crate::domain::since("since", since)?,
            module: module.map(Into::into),
            direction: direction.map(Into::into),
        };
        let page = ctx
            .store()
            .sync_history(
                &filter,
                page_request(ctx.page_sizes(), List::History, first, after)?,
            )
            .await?;
        let total = LogTotal {
            total: Total::History(filter),
            last_event,
        };
        connection(page, total, |m| m.id).map(Some)
    }

    /// Records that did not sync, the one that first failed last first (a record failing
    /// again keeps its place; `at` says when it last failed). Administrators only.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn sync_failures(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        reason: Option<FailureReason>,
        module: Option<SyncModule>,
        #[graphql(default)] include_resolved: bool,
    ) -> ApiResult<Option<Logged<SyncFailure>>> {
        ctx.admin()?;
        let last_event = ctx.store().logged_sync_event_id().await?;
        let filter = FailureFilter {
            reason: reason.map(Into::into),
            module: module.map(Into::into),
            resolved: include_resolved,
        };
        let page = ctx
            .store()
            .sync_failures(
                &filter,
                page_request(ctx.page_sizes(), List::Failures, first, after)?,
            )
            .await?;
        let total = LogTotal {
            total: Total::Failures(filter),
            last_event,
        };
        connection(page, total, |m| m.id).map(Some)
    }
}

#[derive(Default)]
pub struct SyncLogMutation;

#[Object]
impl SyncLogMutation {
    /// Tries one failed record again now; returns its failure entry, resolved if it synced.
    /// While a sync round runs (a first sync may take an hour), the record is left to it,
    /// due at once, and the entry comes back still open, `nextAttemptAt` now. Administrators
    /// only.
    async fn retry_sync_failure(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<SyncFailure>> {
        ctx.admin()?;
        let id = parse_id("id", &id, |n| n)?;
        let failure =
            ctx.store().sync_failure(id).await?.ok_or_else(|| {
                ApiError::new(Code::NotFound, format!("sync failure {id} not found"))
            })?;
        if failure.resolved_at.is_some() {
            return Err(ApiError::new(
                Code::Conflict,
                format!("sync failure {id} is already resolved"),
            ));
        }
        if failure.direction == Direction::DeskToSalesforce.as_str()
            && ctx
                .integrations()
                .current()
                .await?
                .is_some_and(|m| m.sync_type == SyncType::SalesforceToDesk.as_str())
        {
            return Err(ApiError::new(
                Code::Conflict,
                "desk changes stay in the desk while the sync is one-way (SALESFORCE_TO_DESK); set the sync type to TWO_WAY to send this record",
            ));
        }
        ctx.engine().retry(std::slice::from_ref(&failure)).await?;
        let after = ctx.store().sync_failure(id).await?.unwrap_or(failure);
        after.try_into().map(Some)
    }

    /// Tries every open failure with this reason again now; returns how many of them are
    /// still failing, for this reason or another (while a sync round runs, all of them: they
    /// are left to it, due at once). While the sync is one-way (SALESFORCE_TO_DESK), desk
    /// changes are not sent and their failures stay open among them. Administrators only.
    async fn retry_sync_failures(
        &self,
        ctx: &Context<'_>,
        reason: FailureReason,
    ) -> ApiResult<Option<i32>> {
        ctx.admin()?;
        let failures = ctx.store().open_failures(reason.into()).await?;
        // Nothing to try: no round, no Salesforce call, whatever state the sync is in.
        if failures.is_empty() {
            return Ok(Some(0));
        }
        ctx.engine().retry(&failures).await?;
        let ids: Vec<i64> = failures.iter().map(|f| f.id).collect();
        let left = ctx.store().still_open(&ids).await?;
        Ok(Some(i32::try_from(left).unwrap_or(i32::MAX)))
    }
}
