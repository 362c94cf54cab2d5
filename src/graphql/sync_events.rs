//! `syncEvents`: the sync engine's history entries, failures and status changes, replayed
//! from the event log after a given id and then followed live, with no gap and no repeat.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Enum, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use super::integration::{IntegrationStatus, SyncModule};
use super::paging::parse_id;
use super::sync_log::{SyncFailure, SyncHistoryEntry};
use super::{ApiError, ApiResult, Code, ContextExt, Scope};
use crate::auth::Viewer;
use crate::domain::Module;
use crate::store::{Store, StoreError, SyncEvent, SyncEventKind};

/// Events read from the log per query while catching up.
const REPLAY_PAGE: u64 = 200;

/// The wait before reading the log (or the subscriber's profile) again after a read failed,
/// doubled each time it fails again, up to `RETRY_LONGEST`.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_LONGEST: Duration = Duration::from_secs(8);

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SyncEventType {
    /// A batch moved records: its sync history entry.
    History,
    /// A record failed, or a failure was resolved (`resolvedAt` set): its failure log entry.
    Failure,
    /// The integration was connected, paused, resumed, stopped by an error, or deleted; or
    /// the reason shown with its status changed (rounds failing and retried, and the round
    /// that gets through again).
    Status,
}

/// One entry of the sync event log.
#[derive(SimpleObject)]
pub struct SyncEventNode {
    /// Increases with every event; pass the last one seen as `afterId` to resume.
    pub id: ID,
    pub at: DateTime<Utc>,
    pub kind: SyncEventType,
    /// The module of a history entry or failure.
    pub module: Option<SyncModule>,
    pub history: Option<SyncHistoryEntry>,
    pub failure: Option<SyncFailure>,
    /// The integration's status, for a `STATUS` event.
    pub status: Option<IntegrationStatus>,
    /// The reason shown with it (`integration.statusReason`): why it stopped, or why its
    /// rounds are failing; `null` when there is none, and for any but an administrator,
    /// as `integration` itself is theirs alone.
    pub status_reason: Option<String>,
}

impl TryFrom<SyncEvent> for SyncEventNode {
    type Error = ApiError;

    fn try_from(event: SyncEvent) -> ApiResult<Self> {
        let module = event.kind.module().map(Into::into);
        let mut node = SyncEventNode {
            id: ID(event.id.to_string()),
            at: event.at,
            kind: SyncEventType::Status,
            module,
            history: None,
            failure: None,
            status: None,
            status_reason: None,
        };
        match event.kind {
            SyncEventKind::History(h) => {
                node.kind = SyncEventType::History;
                node.history = Some(h.try_into()?);
            }
            SyncEventKind::Failure(f) => {
                node.kind = SyncEventType::Failure;
                node.failure = Some(f.try_into()?);
            }
            SyncEventKind::Status { status, reason } => {
                node.status = Some(status.into());
                node.status_reason = reason;
            }
        }
        Ok(node)
    }
}

/// The modules whose events a profile may follow, of those `wanted` (all when `None`). A
/// module asked for that the profile's panel does not show is refused, rather than followed
/// in silence.
fn allowed_modules(
    profile: &entity::profile::Model,
    wanted: Option<&[Module]>,
) -> Result<Vec<Module>, ApiError> {
    let mut allowed = vec![Module::Contacts, Module::Accounts];
    if !profile.is_admin {
        let permissions = crate::store::permissions_of(profile);
        if !permissions.visible || !permissions.information {
            return Err(ApiError::forbidden(format!(
                "the profile '{}' may not see Salesforce information",
                profile.name
            )));
        }
        allowed.retain(|m| match m {
            Module::Contacts => permissions.panel.shows_contacts(),
            Module::Accounts => permissions.panel.shows_accounts(),
        });
    }
    if let Some(wanted) = wanted {
        if let Some(hidden) = wanted.iter().find(|m| !allowed.contains(m)) {
            return Err(ApiError::forbidden(format!(
                "the profile '{}' shows no {} panel, so it may not follow {} events",
                profile.name,
                hidden.salesforce_object(),
                hidden.as_str(),
            )));
        }
        allowed.retain(|m| wanted.contains(m));
    }
    Ok(allowed)
}

/// Which events a subscriber gets: what it asked for, within what its profile may see.
struct Admits {
    modules: Vec<Module>,
    kinds: Option<Vec<SyncEventType>>,
    /// Whether the subscriber administers the integration, and may read why its status is
    /// what it is.
    admin: bool,
}

impl Admits {
    /// Through which id the log has been pruned of events this subscriber would be given:
    /// one resuming after an id below it has missed some; above it, none, however far the
    /// log went of the kinds and modules it does not follow.
    async fn pruned_through(&self, store: &Store) -> Result<i64, crate::store::StoreError> {
        let kinds: Option<Vec<&str>> = self.kinds.as_ref().map(|kinds| {
            kinds
                .iter()
                .map(|kind| match kind {
                    SyncEventType::History => SyncEventKind::HISTORY,
                    SyncEventType::Failure => SyncEventKind::FAILURE,
                    SyncEventType::Status => SyncEventKind::STATUS,
                })
                .collect()
        });
        store
            .sync_events_pruned_through_of(kinds.as_deref(), &self.modules)
            .await
    }

    fn admits(&self, event: &SyncEvent) -> bool {
        let kind = match event.kind {
            SyncEventKind::History(_) => SyncEventType::History,
            SyncEventKind::Failure(_) => SyncEventType::Failure,
            SyncEventKind::Status { .. } => SyncEventType::Status,
        };
        self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
            && event
                .kind
                .module()
                .is_none_or(|m| self.modules.contains(&m))
    }
}

/// Replays the log after `last`, then follows the live broadcast. The broadcast is
/// subscribed before the replay starts, so nothing committed meanwhile is missed; an event
/// already replayed is skipped, and one that arrives ahead of an unseen id (or after the
/// subscriber fell behind) sends it back to the log, which has everything committed.
struct Follow {
    store: Store,
    live: broadcast::Receiver<SyncEvent>,
    last: Option<i64>,
    catching_up: bool,
    queue: VecDeque<SyncEvent>,
    admits: Admits,
    /// The subscriber's profile, read again when permissions change.
    profile: String,
    /// Who the events are resolved for: renewed before each, with the profile read again.
    scope: Arc<Scope>,
    profiles: watch::Receiver<u64>,
    wanted: Option<Vec<Module>>,
    /// Set once the profile may no longer follow: the stream ends after saying why.
    ended: bool,
    /// Reads of the log, or of the profile, that failed in a row.
    failed_reads: u32,
}

/// Why a subscriber's changed profile could not be applied.
enum Recheck {
    /// It may no longer follow: the stream ends.
    Denied(ApiError),
    /// The profile could not be read: events wait until it can.
    Unreadable(StoreError),
}

impl Follow {
    /// Applies a change of the subscriber's profile to what it is admitted to. Read through
    /// the store's cache, so that the subscribers of one profile read it once per change.
    async fn recheck_profile(&mut self) -> Result<(), Recheck> {
        self.profiles.mark_unchanged();
        let version = *self.profiles.borrow();
        let profile = match self.store.viewer_profile(&self.profile).await {
            Ok(Some(profile)) => profile,
            Ok(None) => {
                return Err(Recheck::Denied(ApiError::forbidden(format!(
                    "the profile '{}' no longer exists",
                    self.profile
                ))));
            }
            Err(e) => {
                self.profiles.mark_changed();
                return Err(Recheck::Unreadable(e));
            }
        };
        self.admits.modules =
            allowed_modules(&profile, self.wanted.as_deref()).map_err(Recheck::Denied)?;
        self.admits.admin = profile.is_admin;
        // The fields of the events from now on are guarded by the profile as it is now.
        let mut viewer = Viewer::clone(&self.scope.viewer());
        viewer.profile_version = version;
        viewer.profile = profile;
        self.scope.renew(Some(viewer));
        Ok(())
    }

    /// Waits before reading again what failed to read, longer the more it has failed.
    async fn pause_after_failures(&self) {
        if self.failed_reads > 0 {
            let wait = RETRY_FIRST * 2u32.pow(self.failed_reads.min(6) - 1);
            tokio::time::sleep(wait.min(RETRY_LONGEST)).await;
        }
    }

    async fn next(&mut self) -> Option<Result<SyncEventNode, ApiError>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(event) = self.queue.pop_front() {
                if self.last.is_some_and(|l| event.id <= l) {
                    continue;
                }
                if self.profiles.has_changed().unwrap_or(false) {
                    match self.recheck_profile().await {
                        Ok(()) => self.failed_reads = 0,
                        Err(Recheck::Denied(denied)) => {
                            self.ended = true;
                            return Some(Err(denied));
                        }
                        // Nothing is delivered under permissions that may have been taken
                        // away: the event waits, and the profile is read again, as a log that
                        // cannot be read is.
                        Err(Recheck::Unreadable(e)) => {
                            self.queue.push_front(event);
                            self.pause_after_failures().await;
                            self.failed_reads += 1;
                            if self.failed_reads == 1 {
                                return Some(Err(e.into()));
                            }
                            tracing::warn!(error = %e, "a sync-event subscriber's profile cannot be read; trying again");
                            continue;
                        }
                    }
                }
                self.last = Some(event.id);
                if self.admits.admits(&event) {
                    // Its fields read Salesforce afresh, not as an earlier event found it.
                    self.scope.renew(None);
                    let admin = self.admits.admin;
                    return Some(SyncEventNode::try_from(event).map(|mut node| {
                        if !admin {
                            node.status_reason = None;
                        }
                        node
                    }));
                }
                continue;
            }
            if self.catching_up {
                self.pause_after_failures().await;
                let after = self.last.unwrap_or(0);
                let read = self.store.sync_events_page(after, REPLAY_PAGE).await;
                // A hole after the last id seen is ids never committed, or events pruned
                // while this reader was away: those it is told of, as when it subscribed.
                // So may an end of the log: all after the last id seen may have been pruned.
                let hole = match &read {
                    Ok((page, Some(through))) => {
                        after > 0 && page.first().map_or(*through, |e| e.id) != after + 1
                    }
                    Ok((_, None)) => after > 0,
                    Err(_) => false,
                };
                if hole {
                    match self.admits.pruned_through(&self.store).await {
                        Ok(pruned) if after < pruned => {
                            self.ended = true;
                            return Some(Err(fell_behind(after, pruned, self.admits.admin)));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.failed_reads += 1;
                            if self.failed_reads == 1 {
                                return Some(Err(e.into()));
                            }
                            continue;
                        }
                    }
                }
                if read.is_ok() {
                    self.failed_reads = 0;
                }
                match read {
                    Ok((_, None)) => self.catching_up = false,
                    // Only rows it cannot read: past them.
                    Ok((page, Some(through))) if page.is_empty() => self.last = Some(through),
                    Ok((page, _)) => self.queue.extend(page),
                    Err(e) => {
                        // Said once, then tried again less and less often until the log
                        // can be read: a database that is down is not asked in a loop.
                        self.failed_reads += 1;
                        if self.failed_reads == 1 {
                            return Some(Err(e.into()));
                        }
                        tracing::warn!(error = %e, "the sync event log cannot be read; trying again");
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) => match self.last {
                    Some(last) if event.id <= last => {}
                    // An id was skipped: read the log from the last one seen; it holds this
                    // event too, since events are broadcast only once committed.
                    Some(last) if event.id > last + 1 => self.catching_up = true,
                    _ => self.queue.push_back(event),
                },
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "a sync-event subscriber fell behind; reading the log"
                    );
                    self.catching_up = self.last.is_some();
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// The refusal of a reader whose next events the log no longer keeps; an administrator is
/// told where else to read what happened meanwhile (the sync history and failure log are
/// theirs alone).
fn fell_behind(after: i64, pruned: i64, admin: bool) -> ApiError {
    let meanwhile = if admin {
        "read syncHistory and syncFailures for what happened meanwhile, then subscribe again without afterId"
    } else {
        "subscribe again without afterId to follow what happens from now on"
    };
    ApiError::new(
        Code::FellBehind,
        format!(
            "the events after {after} through {pruned} are no longer kept (the log keeps as many days as the sync history): {meanwhile}"
        ),
    )
}

#[derive(Default)]
pub struct SyncEventSubscription;

#[Subscription]
impl SyncEventSubscription {
    /// Sync history entries, failures and status changes as they commit. With `afterId`,
    /// first everything logged after that event, then live; the log keeps as many days as
    /// the sync history, and an `afterId` older than it is refused with `FELL_BEHIND` (`0`
    /// replays all it keeps). Administrators see every event; other profiles need Salesforce
    /// contact and account information granted, and see the modules their panels show (one
    /// asked for in `modules` that the panel does not show is refused with `FORBIDDEN`).
    async fn sync_events(
        &self,
        ctx: &Context<'_>,
        after_id: Option<ID>,
        modules: Option<Vec<SyncModule>>,
        kinds: Option<Vec<SyncEventType>>,
    ) -> Result<impl Stream<Item = Result<SyncEventNode, ApiError>> + use<>, ApiError> {
        let viewer = ctx.viewer()?;
        // An empty list would follow nothing: it is no way to ask for everything.
        if modules.as_ref().is_some_and(Vec::is_empty) {
            return Err(ApiError::bad_input(
                "modules",
                "name at least one module, or leave modules out to follow all you may see",
            ));
        }
        if kinds.as_ref().is_some_and(Vec::is_empty) {
            return Err(ApiError::bad_input(
                "kinds",
                "name at least one kind, or leave kinds out to follow all",
            ));
        }
        let wanted: Option<Vec<Module>> =
            modules.map(|wanted| wanted.into_iter().map(Into::into).collect());
        let allowed = allowed_modules(&viewer.profile, wanted.as_deref())?;
        // `0` replays the whole log.
        let last = after_id
            .map(|id| match id.as_str() {
                "0" => Ok(0),
                _ => parse_id("afterId", &id, |n| n),
            })
            .transpose()?;
        let store = ctx.store().clone();
        let admits = Admits {
            modules: allowed,
            kinds,
            admin: viewer.profile.is_admin,
        };
        if let Some(after) = last {
            let pruned = admits.pruned_through(&store).await?;
            // `0` has seen nothing, so it misses nothing: it gets all the log keeps.
            if after > 0 && after < pruned {
                return Err(fell_behind(after, pruned, viewer.profile.is_admin));
            }
            if after > store.last_sync_event_id().await? {
                // A log pruned empty after a quiet week still knows how far it went.
                let newest = store
                    .logged_sync_event_id()
                    .await?
                    .max(store.sync_events_pruned_through().await?);
                if after > newest {
                    return Err(ApiError::new(
                        Code::BadUserInput,
                        format!(
                            "afterId {after} is not an event yet (the newest is {newest}); pass the id of the last event received"
                        ),
                    ));
                }
            }
        }
        // A change since the viewer's profile was read is checked before the first event.
        let mut profiles = store.profile_changes();
        if *profiles.borrow() != viewer.profile_version {
            profiles.mark_changed();
        }
        let live = store.subscribe_sync();
        // Without `afterId`, it follows from the newest event logged now: an id skipped
        // later (events published out of order, or missed by a slow subscriber) is read
        // back from the log as it is with `afterId`.
        let (last, catching_up) = match last {
            Some(last) => (last, true),
            None => (store.last_sync_event_id().await?, false),
        };
        let follow = Follow {
            live,
            profiles,
            profile: viewer.profile.name.clone(),
            scope: ctx.data_unchecked::<Arc<Scope>>().clone(),
            wanted,
            ended: false,
            failed_reads: 0,
            store,
            last: Some(last),
            catching_up,
            queue: VecDeque::new(),
            admits,
        };
        Ok(futures_util::stream::unfold(
            follow,
            |mut follow| async move {
                let item = follow.next().await?;
                Some((item, follow))
            },
        ))
    }
}
