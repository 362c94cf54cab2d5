//! Replicas on one PostgreSQL hear each other. Each process announces the desk changes and
//! sync events it commits with `NOTIFY`, and publishes what the others announce to its own
//! subscribers: the sync worker wakes for a desk edit made through any replica, or a sync
//! started, resumed or retried through any, and
//! `deskChanges` and `syncEvents` subscribers see every replica's changes live.
//!
//! A notice sent after the commit can be lost with its sender (a crash in between) or with a
//! dropped listener connection. Nothing depends on it for correctness: the outbox waits for
//! the next poll, each replica reads the sync event log every second for events nobody told
//! it of (`events::watch_log`), and a listener that loses its connection, once listening
//! again, has every open subscription read its profile again, since a change to it may have
//! gone unheard.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, PgPool, postgres::PgListener};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};

use super::events::{PassedOn, SyncEvent, sync_events_by_ids};
use crate::domain::DeskEvent;

const CHANNEL: &str = "tandem_events";

/// How long a refused `NOTIFY` waits before each new try.
const NOTIFY_RETRIES: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// PostgreSQL refuses a payload of 8,000 bytes or more; notices are packed below that.
const PAYLOAD_BUDGET: usize = 7_000;

/// What one process tells the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Notice {
    Desk(DeskEvent),
    /// A sync event, by its id in the log.
    Sync(i64),
    /// A profile's permissions changed.
    Profiles,
    /// The saved connection, its sync type or its mappings changed.
    Integration,
    /// A round is asked for now (a sync started, resumed or retried): the replica that runs
    /// the worker runs one.
    Round,
    /// A transaction committed: what was read before it may have changed. Sent only in a
    /// batch of notices that holds nothing else, since hearing any notice says as much.
    Changed,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The announcing process, which skips its own notices.
    origin: String,
    notices: Vec<Notice>,
}

/// What this process's store follows: its broadcasts and counts, moved on by what it hears.
#[derive(Clone)]
pub(crate) struct Followers {
    pub desk: broadcast::Sender<DeskEvent>,
    pub sync: broadcast::Sender<SyncEvent>,
    pub profiles: Arc<watch::Sender<u64>>,
    /// Moved on when desk changes other replicas announced may have gone unheard.
    pub desk_gaps: Arc<watch::Sender<u64>>,
    pub newest_event: Arc<AtomicI64>,
    pub passed_on: Arc<PassedOn>,
    /// The store's change count, moved on for each envelope heard from another replica.
    pub changes: Arc<AtomicU64>,
    /// The integration's version, moved on when another replica changed it.
    pub integration: Arc<AtomicU64>,
    /// Woken when another replica asks for a round.
    pub round_asked: Arc<tokio::sync::Notify>,
}

/// What is queued for the bridge to send.
enum Outgoing {
    Notice(Notice),
    /// Answered once everything queued before it is sent.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// This process's side of the conversation: where its notices go out.
#[derive(Clone)]
pub(crate) struct Peers {
    outgoing: mpsc::UnboundedSender<Outgoing>,
}

impl Peers {
    /// Starts announcing and listening on the database's pool.
    pub(crate) fn start(db: DatabaseConnection, followers: Followers) -> Self {
        let (outgoing, queued) = mpsc::unbounded_channel();
        let bridge = Bridge {
            origin: uuid::Uuid::new_v4().simple().to_string(),
            pool: db.get_postgres_connection_pool().clone(),
            db,
            followers,
        };
        tokio::spawn(bridge.run(queued));
        Self { outgoing }
    }

    pub(crate) fn announce(&self, notice: Notice) {
        // The bridge ends only with the last store, so there is always a receiver.
        let _ = self.outgoing.send(Outgoing::Notice(notice));
    }

    /// Returns once every notice queued before it is sent (or its sending given up).
    pub(crate) async fn flush(&self) {
        let (sent, flushed) = tokio::sync::oneshot::channel();
        if self.outgoing.send(Outgoing::Flush(sent)).is_ok() {
            let _ = flushed.await;
        }
    }
}

struct Bridge {
    origin: String,
    pool: PgPool,
    db: DatabaseConnection,
    followers: Followers,
}

impl Bridge {
    /// Announces what this process queues, and hears the others until the last store is
    /// gone. Hearing runs on its own task: a listener must not be interrupted mid-message.
    async fn run(self, mut queued: mpsc::UnboundedReceiver<Outgoing>) {
        let bridge = std::sync::Arc::new(self);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let hearing = bridge.clone();
        tokio::spawn(async move {
            let mut heard_before = false;
            loop {
                let Some(mut listener) = hearing.listen_until(&mut stopped).await else {
                    return;
                };
                // Listening afresh after a lost connection, it knows from when on it hears.
                if heard_before {
                    hearing.missed();
                }
                heard_before = true;
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        heard = listener.try_recv() => match heard {
                            Ok(Some(notification)) => hearing.heard(notification.payload()).await,
                            // The connection was lost, and a new one listens already.
                            Ok(None) => hearing.missed(),
                            // Lost, and not listening again yet. The listener is dropped, not
                            // asked again: it would reconnect by itself and say nothing of
                            // what was announced meanwhile.
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the connection that hears other replicas");
                                break;
                            }
                        },
                    }
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        while let Some(first) = queued.recv().await {
            let mut notices = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(outgoing) = next {
                match outgoing {
                    Outgoing::Notice(notice) => notices.push(notice),
                    Outgoing::Flush(done) => flushes.push(done),
                }
                next = queued.try_recv().ok();
            }
            if notices.is_empty() {
                for done in flushes {
                    let _ = done.send(());
                }
                continue;
            }
            notices.retain(|n| !matches!(n, Notice::Changed));
            // Each in an envelope of its own: a replica of an earlier version, which cannot
            // read one, drops only that envelope, not the desk changes beside it.
            let mut alone = false;
            for kind in [Notice::Integration, Notice::Round] {
                let kind_of =
                    |n: &Notice| std::mem::discriminant(n) == std::mem::discriminant(&kind);
                if notices.iter().any(kind_of) {
                    notices.retain(|n| !kind_of(n));
                    bridge.announce(vec![kind]).await;
                    alone = true;
                }
            }
            if notices.is_empty() && !alone {
                notices.push(Notice::Changed);
            }
            if !notices.is_empty() {
                bridge.announce(notices).await;
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
        let _ = stop.send(());
    }

    /// A listener, asked for once a second until one listens; `None` once `stopped`.
    async fn listen_until(
        &self,
        stopped: &mut tokio::sync::oneshot::Receiver<()>,
    ) -> Option<PgListener> {
        loop {
            tokio::select! {
                _ = &mut *stopped => return None,
                listening = self.listen() => match listening {
                    Ok(listener) => return Some(listener),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                    }
                },
            }
            tokio::select! {
                _ = &mut *stopped => return None,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    /// Sends notices in as few `NOTIFY`s as their size allows, all in one statement: a
    /// page of the first sync announces a thousand new contacts.
    async fn announce(&self, notices: Vec<Notice>) {
        let mut payloads: Vec<String> = Vec::new();
        let mut envelope = Envelope {
            origin: self.origin.clone(),
            notices: Vec::new(),
        };
        let mut size = 0;
        for notice in notices {
            let length = serde_json::to_string(&notice).map_or(0, |s| s.len() + 1);
            if size + length > PAYLOAD_BUDGET && !envelope.notices.is_empty() {
                payloads.extend(serde_json::to_string(&envelope));
                envelope.notices.clear();
                size = 0;
            }
            size += length;
            envelope.notices.push(notice);
        }
        if !envelope.notices.is_empty() {
            payloads.extend(serde_json::to_string(&envelope));
        }
        if payloads.is_empty() {
            return;
        }
        // A notice lost here goes unheard with nothing to tell of the gap (a listener knows
        // only of its own lost connection): one refused for a moment (the pool busy, a
        // connection dropped) is sent again, the notices queued behind it waiting.
        for wait in NOTIFY_RETRIES.iter().map(Some).chain([None]) {
            // `unnest` yields the payloads in order, and they are sent in that order.
            let sent =
                sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
                    .bind(CHANNEL)
                    .bind(&payloads)
                    .execute(&self.pool)
                    .await;
            match (sent, wait) {
                (Ok(_), _) => return,
                (Err(e), Some(wait)) => {
                    tracing::warn!(error = %e, "cannot tell other replicas of a change; trying again");
                    tokio::time::sleep(*wait).await;
                }
                (Err(e), None) => {
                    tracing::warn!(error = %e, "cannot tell other replicas of a change; their subscribers miss it");
                }
            }
        }
    }

    /// What was announced while no connection listened went unheard: answers read before may
    /// be out of date, and so may the profiles open subscriptions checked. The sync events
    /// among it come from the log (`events::watch_log`).
    fn missed(&self) {
        tracing::info!("listening for other replicas' changes again");
        self.followers.integration.fetch_add(1, Ordering::SeqCst);
        self.followers.changes.fetch_add(1, Ordering::SeqCst);
        self.followers.profiles.send_modify(|version| *version += 1);
        self.followers.desk_gaps.send_modify(|gaps| *gaps += 1);
    }

    async fn heard(&self, payload: &str) {
        // This process's own notices come back too; `origin` leads every envelope.
        if payload
            .strip_prefix("{\"origin\":\"")
            .is_some_and(|rest| rest.starts_with(&self.origin))
        {
            return;
        }
        let envelope: Envelope = match serde_json::from_str(payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable notice from another replica");
                return;
            }
        };
        if envelope.origin == self.origin {
            return;
        }
        // The view of the org first, then what another replica committed may change any
        // answer read before it.
        if envelope
            .notices
            .iter()
            .any(|n| matches!(n, Notice::Integration))
        {
            self.followers.integration.fetch_add(1, Ordering::SeqCst);
        }
        self.followers.changes.fetch_add(1, Ordering::SeqCst);
        let mut sync = Vec::new();
        for notice in envelope.notices {
            match notice {
                Notice::Desk(event) => {
                    let _ = self.followers.desk.send(event);
                }
                Notice::Profiles => self.followers.profiles.send_modify(|version| *version += 1),
                Notice::Round => self.followers.round_asked.notify_one(),
                // The counts have moved for them above.
                Notice::Changed | Notice::Integration => {}
                Notice::Sync(id) => sync.push(id),
            }
        }
        self.pass_on_sync(&sync).await;
    }

    /// Passes on the sync events another replica announced, read from the log together; with
    /// nobody here subscribed, only notes the newest, where subscribers coming later start.
    async fn pass_on_sync(&self, ids: &[i64]) {
        let Some(&newest) = ids.iter().max() else {
            return;
        };
        if self.followers.sync.receiver_count() == 0 {
            self.followers
                .newest_event
                .fetch_max(newest, Ordering::SeqCst);
            return;
        }
        match sync_events_by_ids(&self.db, ids).await {
            Ok(events) => {
                for event in events {
                    self.followers
                        .newest_event
                        .fetch_max(event.id, Ordering::SeqCst);
                    self.followers
                        .passed_on
                        .pass_on(&self.followers.sync, event);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, newest, "cannot read another replica's sync events")
            }
        }
    }
}
