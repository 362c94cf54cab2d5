//! The sync event log: every history entry, failure and status change gets the next id in
//! one sequence, is written in the transaction that caused it, and is broadcast after that
//! transaction commits. Subscribers replay from the log what they missed, then follow live.

use chrono::{DateTime, Utc};
use entity::{sync_event, sync_failure, sync_history};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::locks;
use super::peers::Notice;
use super::{Store, StoreError, StoreResult};
use crate::domain::{IntegrationStatus, Module};

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncEventKind {
    History(sync_history::Model),
    Failure(sync_failure::Model),
    Status {
        status: IntegrationStatus,
        reason: Option<String>,
    },
}

impl SyncEventKind {
    /// The names each kind is logged under.
    pub const HISTORY: &'static str = "HISTORY";
    pub const FAILURE: &'static str = "FAILURE";
    pub const STATUS: &'static str = "STATUS";

    /// Whether the batch it tells of wrote desk records: a pull that added or updated some.
    pub fn changed_desk(&self) -> bool {
        matches!(self, SyncEventKind::History(h)
            if h.direction == crate::domain::Direction::SalesforceToDesk.as_str()
                && h.added + h.updated > 0)
    }

    pub fn name(&self) -> &'static str {
        match self {
            SyncEventKind::History(_) => Self::HISTORY,
            SyncEventKind::Failure(_) => Self::FAILURE,
            SyncEventKind::Status { .. } => Self::STATUS,
        }
    }

    /// The module a history entry or failure belongs to; status changes have none.
    pub fn module(&self) -> Option<Module> {
        let module = match self {
            SyncEventKind::History(h) => &h.module,
            SyncEventKind::Failure(f) => &f.module,
            SyncEventKind::Status { .. } => return None,
        };
        module.parse().ok()
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: SyncEventKind,
}

impl TryFrom<sync_event::Model> for SyncEvent {
    type Error = StoreError;

    fn try_from(m: sync_event::Model) -> StoreResult<Self> {
        let kind = serde_json::from_str(&m.payload).map_err(|e| {
            StoreError::Db(sea_orm::DbErr::Custom(format!(
                "sync event {} cannot be read: {e}",
                m.id
            )))
        })?;
        Ok(SyncEvent {
            id: m.id,
            at: m.at,
            kind,
        })
    }
}

/// Appends the events a transaction tells of to the log, as its last writes before it
/// commits. On PostgreSQL the log's order is taken here (`order_event_log`) and kept until
/// the commit right after: a transaction holding it has no row left to lock, so one waiting
/// on a row another holds never holds up the log, and none waits on the log holding a row.
pub(crate) async fn log(
    db: &impl ConnectionTrait,
    kinds: Vec<SyncEventKind>,
) -> StoreResult<Vec<SyncEvent>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    locks::order_event_log(db).await?;
    let mut logged = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let at = Utc::now();
        let payload = serde_json::to_string(&kind)
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        let model = sync_event::ActiveModel {
            at: Set(at),
            kind: Set(kind.name().into()),
            module: Set(kind.module().map(|m| m.as_str().to_owned())),
            payload: Set(payload),
            ..Default::default()
        }
        .insert(db)
        .await?;
        // As stored (PostgreSQL keeps microseconds): live and replayed, an event reads the same.
        logged.push(SyncEvent {
            id: model.id,
            at: model.at,
            kind,
        });
    }
    Ok(logged)
}

/// The logged events of these ids still kept, oldest first; one this version cannot read is
/// passed over with a warning.
pub(crate) async fn sync_events_by_ids(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> StoreResult<Vec<SyncEvent>> {
    let mut events = Vec::with_capacity(ids.len());
    for part in ids.chunks(super::BIND_PART) {
        let rows = sync_event::Entity::find()
            .filter(sync_event::Column::Id.is_in(part.iter().copied()))
            .order_by_asc(sync_event::Column::Id)
            .all(db)
            .await?;
        events.extend(rows.into_iter().filter_map(|row| {
            SyncEvent::try_from(row)
                .inspect_err(|e| tracing::warn!(error = %e, "an unreadable logged sync event"))
                .ok()
        }));
    }
    Ok(events)
}

impl Store {
    /// Live sync events, from now on.
    pub fn subscribe_sync(&self) -> tokio::sync::broadcast::Receiver<SyncEvent> {
        self.sync_events.subscribe()
    }

    /// Live sync events this process logs itself, from now on: what a `tandem sync --once`
    /// shows as its own progress, whatever other processes are doing.
    pub fn subscribe_own_sync(&self) -> tokio::sync::broadcast::Receiver<SyncEvent> {
        self.own_sync_events.subscribe()
    }

    pub(crate) fn publish_sync(&self, events: impl IntoIterator<Item = SyncEvent>) {
        for event in events {
            if self.own_sync_events.receiver_count() > 0 {
                let _ = self.own_sync_events.send(event.clone());
            }
            if let Some(peers) = &self.peers {
                peers.announce(Notice::Sync(event.id));
            }
            self.newest_event
                .fetch_max(event.id, std::sync::atomic::Ordering::SeqCst);
            self.passed_on.pass_on(&self.sync_events, event);
        }
    }

    /// The id of the newest sync event this process has published or heard of, or 0 when
    /// the log is empty: read from the log once, then kept as events pass. It may trail
    /// another process's newest event by a notice (PostgreSQL), or by a second where no
    /// notice comes (SQLite; a notice lost), the log being read every second; it is never
    /// ahead of the log.
    pub async fn last_sync_event_id(&self) -> StoreResult<i64> {
        use std::sync::atomic::Ordering;
        let known = self.newest_event.load(Ordering::SeqCst);
        if known >= 0 {
            return Ok(known);
        }
        self.logged_sync_event_id().await
    }

    /// The id of the newest event in the log, read from it now (0 when it is empty), or the
    /// newest this process published, should that not be readable yet. What it reads stays
    /// out of [`Self::last_sync_event_id`]: the log's watcher tells what this process has
    /// published from what another logged by it, and finds, on SQLite, the desk changes
    /// another process made that `deskChanges` subscribers here missed.
    pub async fn logged_sync_event_id(&self) -> StoreResult<i64> {
        let logged = newest_logged(self.connection()).await?;
        Ok(self
            .newest_event
            .load(std::sync::atomic::Ordering::SeqCst)
            .max(logged))
    }

    /// Logged events after `after` (by id), oldest first, at most `limit`.
    pub async fn sync_events_after(&self, after: i64, limit: u64) -> StoreResult<Vec<SyncEvent>> {
        logged_after(self.connection(), after, limit)
            .await?
            .into_iter()
            .map(SyncEvent::try_from)
            .collect()
    }

    /// Up to `limit` rows of the log after `after`, oldest first: the events, and the id of
    /// the last row read (`None` when there was none). A row this version cannot read (a
    /// newer replica's, say) is passed over with a warning, so a reader catching up moves on.
    pub async fn sync_events_page(
        &self,
        after: i64,
        limit: u64,
    ) -> StoreResult<(Vec<SyncEvent>, Option<i64>)> {
        let rows = logged_after(self.connection(), after, limit).await?;
        let through = rows.last().map(|row| row.id);
        let events = rows
            .into_iter()
            .filter_map(|row| {
                SyncEvent::try_from(row)
                    .inspect_err(|e| tracing::warn!(error = %e, "an unreadable logged sync event"))
                    .ok()
            })
            .collect();
        Ok((events, through))
    }
}

/// The id of the newest event in the log (0 when it is empty).
async fn newest_logged(db: &impl ConnectionTrait) -> Result<i64, sea_orm::DbErr> {
    Ok(sync_event::Entity::find()
        .select_only()
        .column(sync_event::Column::Id)
        .order_by_desc(sync_event::Column::Id)
        .into_tuple::<i64>()
        .one(db)
        .await?
        .unwrap_or(0))
}

/// The log's rows after `after` (by id), oldest first, at most `limit`.
async fn logged_after(
    db: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<sync_event::Model>, sea_orm::DbErr> {
    sync_event::Entity::find()
        .filter(sync_event::Column::Id.gt(after))
        .order_by_asc(sync_event::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// How many ids `PassedOn` remembers: far more events than commit in a second.
const REMEMBERED: usize = 4096;

/// The sync events this process has broadcast lately, so that each goes out once however it
/// arrives: from this process's commit, from another replica's notice, or from the log.
#[derive(Default)]
pub(super) struct PassedOn(std::sync::Mutex<std::collections::BTreeSet<i64>>);

impl PassedOn {
    /// Broadcasts the event unless it has gone out already; says whether it went out now.
    pub(super) fn pass_on(
        &self,
        sync_events: &tokio::sync::broadcast::Sender<SyncEvent>,
        event: SyncEvent,
    ) -> bool {
        let first_time = {
            let mut ids = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let forgotten = ids.len() >= REMEMBERED && ids.first().is_some_and(|&o| event.id < o);
            let new = !forgotten && ids.insert(event.id);
            if ids.len() > REMEMBERED {
                ids.pop_first();
            }
            new
        };
        if first_time {
            // No subscriber is not an error.
            let _ = sync_events.send(event);
        }
        first_time
    }

    /// Whether the event has gone out: this process's own, or one passed on (older than
    /// all it remembers, it counts as gone out).
    fn has(&self, id: i64) -> bool {
        let ids = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ids.contains(&id) || (ids.len() >= REMEMBERED && ids.first().is_some_and(|&o| id < o))
    }
}

/// Whether the log holds, after `after`, a change to desk records this process has not
/// passed on (so made by another process); read a page at a time, and taken to hold one
/// past the pages a look may read (its writer slot held meanwhile, this process's writes
/// wait for it).
async fn desk_changed_by_another(
    db: &sea_orm::DatabaseConnection,
    mut after: i64,
    passed_on: &PassedOn,
) -> StoreResult<bool> {
    const PAGES: usize = 3;
    for _ in 0..PAGES {
        let rows = logged_after(db, after, 1000).await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(false);
        };
        let changed = rows.into_iter().any(|row| {
            !passed_on.has(row.id) && SyncEvent::try_from(row).is_ok_and(|e| e.kind.changed_desk())
        });
        if changed {
            return Ok(true);
        }
        after = last;
    }
    Ok(true)
}

/// Reads the log every second: on SQLite, where processes sharing the file cannot notify
/// each other, and on PostgreSQL, where a notice can be lost (its sender dies between its
/// commit and its `NOTIFY`; the listening connection drops and reconnects). While this process
/// has sync-event subscribers, it passes on what another process logged and nobody told it
/// of; while it has none, it only notes the newest id, where new subscribers start. Either
/// way the store's change count moves on when the log holds events from another process
/// that nobody told this one of. Ends once the store is gone.
///
/// On SQLite it reads the log holding the writer slot, which this process's transactions keep
/// from before their events are logged until after they are broadcast, so it never passes
/// on an event of this process ahead of the commit's own broadcast. It reads on from the last
/// id it read, not from the newest this process broadcast: another process's event may come
/// just before one of this process's. On PostgreSQL ids commit in the order they are drawn
/// (`order_event_log`), so the log after the last id read holds all it has not read. What it
/// reads that a notice or this process's commit has broadcast already, `PassedOn` keeps from
/// going out twice.
///
/// On SQLite, desk changes another process makes reach nobody here: while this process has
/// desk-change subscribers, a history entry another process logged of a pull that wrote
/// desk records (a `tandem sync --once` round, say) tells them they missed some
/// (`desk_gaps`).
pub(super) fn watch_log(
    db: sea_orm::DatabaseConnection,
    write_lock: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    followers: &super::peers::Followers,
) {
    use std::sync::atomic::Ordering;
    let weak = followers.sync.downgrade();
    let desk = followers.desk.downgrade();
    let desk_gaps = followers.desk_gaps.clone();
    let newest_event = followers.newest_event.clone();
    let passed_on = followers.passed_on.clone();
    let changes = followers.changes.clone();
    tokio::spawn(async move {
        let second = std::time::Duration::from_secs(1);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The newest event in the log or passed on: what is newer, subscribers have not had.
        let mut seen: Option<i64> = None;
        // The newest event looked at for desk changes another process made.
        let mut examined: Option<i64> = None;
        loop {
            tick.tick().await;
            let Some(sender) = weak.upgrade() else {
                return;
            };
            let subscribed = sender.receiver_count() > 0;
            // Only SQLite's processes cannot tell each other of desk changes.
            let desk_followed = write_lock.is_some()
                && desk.upgrade().is_some_and(|desk| desk.receiver_count() > 0);
            let _slot = match &write_lock {
                Some(slot) if subscribed || desk_followed => Some(slot.lock().await),
                _ => None,
            };
            // Holding the writer slot, every event this process logged has been published:
            // one newer than those is another process's.
            let desk_missed = || {
                if desk_followed {
                    desk_gaps.send_modify(|gaps| *gaps += 1);
                }
            };
            // Subscribers that came since the last look started from the newest id known.
            let known = newest_event.load(Ordering::SeqCst);
            let from = seen.or((known >= 0).then_some(known));
            let after = match from {
                Some(from) if subscribed => from,
                _ => {
                    match newest_logged(&db).await {
                        Ok(newest) => {
                            // Another process's sync may have changed what answers hold.
                            if seen.is_some_and(|seen| newest > seen) {
                                changes.fetch_add(1, Ordering::SeqCst);
                            }
                            newest_event.fetch_max(newest, Ordering::SeqCst);
                            // From the last id looked at, not the newest this process logged:
                            // its own may have come after another's.
                            if desk_followed
                                && let Some(from) = examined.filter(|&from| newest > from)
                            {
                                match desk_changed_by_another(&db, from, &passed_on).await {
                                    Ok(false) => {}
                                    // Unread, they may have: better told than not.
                                    Ok(true) | Err(_) => desk_missed(),
                                }
                            }
                            examined = Some(newest);
                            // A subscriber that came during the read may have started from
                            // the newest id known before it: what the read found, the next
                            // look passes on (once, whoever else has).
                            if sender.receiver_count() == 0 {
                                seen = Some(newest);
                            } else if seen.is_none() && known >= 0 {
                                seen = Some(known);
                            }
                        }
                        // The store opens before its migrations run: until the log has
                        // been read once, its table may not be there yet.
                        Err(e) if seen.is_none() => {
                            tracing::debug!(error = %e, "the sync event log is not readable yet")
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot read the sync event log"),
                    }
                    continue;
                }
            };
            match logged_after(&db, after, 1000).await {
                Ok(rows) => {
                    seen = Some(after);
                    // What another process logged (this one's own were passed on as they
                    // committed, and counted then).
                    let mut news = false;
                    let mut unheard = false;
                    for row in rows {
                        // Stepped past even when unreadable: it is read once, not every
                        // second, and a page of them holds up none of those after it.
                        seen = Some(row.id);
                        newest_event.fetch_max(row.id, Ordering::SeqCst);
                        match SyncEvent::try_from(row) {
                            Ok(event) => {
                                let changed_desk = event.kind.changed_desk();
                                let new = passed_on.pass_on(&sender, event);
                                news |= new;
                                unheard |= new && changed_desk;
                            }
                            Err(e) => {
                                news = true;
                                tracing::warn!(error = %e, "an unreadable logged sync event");
                            }
                        }
                    }
                    if news {
                        changes.fetch_add(1, Ordering::SeqCst);
                    }
                    if unheard {
                        desk_missed();
                    }
                    examined = seen;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the sync event log"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> SyncEvent {
        SyncEvent {
            id,
            at: Utc::now(),
            kind: SyncEventKind::Status {
                status: IntegrationStatus::Paused,
                reason: None,
            },
        }
    }

    #[test]
    fn each_event_goes_out_once_in_whatever_order_they_come() {
        let (sender, mut receiver) = tokio::sync::broadcast::channel(16);
        let passed = PassedOn::default();
        for id in [2, 1, 2, 3, 1] {
            passed.pass_on(&sender, event(id));
        }
        let mut out = Vec::new();
        while let Ok(e) = receiver.try_recv() {
            out.push(e.id);
        }
        assert_eq!(out, [2, 1, 3]);
    }

    #[test]
    fn an_event_older_than_all_it_remembers_counts_as_gone_out() {
        let (sender, _) = tokio::sync::broadcast::channel(16);
        let passed = PassedOn::default();
        for id in 0..=REMEMBERED as i64 {
            passed.pass_on(&sender, event(id + 100));
        }
        let mut receiver = sender.subscribe();
        passed.pass_on(&sender, event(50));
        assert!(receiver.try_recv().is_err(), "not sent again");
    }
}
