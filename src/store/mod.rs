//! Storage: SeaORM queries behind typed methods. Each write runs in one transaction and
//! publishes its [`DeskEvent`]s once its commit is sent (and may have landed).

mod accounts;
mod agents;
mod contacts;
mod create_keys;
mod events;
mod history;
mod integration;
mod locks;
mod page;
mod peers;
mod profiles;
mod sync;
mod tickets;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, TransactionTrait,
};
use tokio::sync::{Mutex, MutexGuard, broadcast, watch};

use crate::config::DatabaseUrl;
use crate::domain::{DeskAction, DeskEntity, DeskEvent, Invalid};

pub use accounts::AccountFilter;
pub use accounts::account_input;
pub use contacts::{ContactFilter, MASS_UPDATE_LIMIT, contact_input};
pub use create_keys::CreateKey;
pub use events::{SyncEvent, SyncEventKind};
pub use history::{FailureFilter, HistoryFilter};
pub use integration::{Checked, INTEGRATION, MappingRow, NewIntegration, PULL_CURSORS, same_org};
pub use locks::{RoundLock, WorkerLease};
pub use page::{Page, PageRequest};
pub use profiles::{NewProfile, default_profiles, permissions_of};
pub use sync::{NewFailure, NewLink, SyncBatch};
pub use tickets::TicketFilter;

/// Values a statement given a list of any length binds at a time, a part per statement:
/// SQLite refuses a statement binding more than 32,766.
pub const BIND_PART: usize = 1000;

/// `column IN (values)` for the key lookups of a batch. On PostgreSQL it is
/// `column = ANY($1)` with the values as one array: one statement text for any number of
/// values, prepared once per connection instead of once per list length. With a list of a
/// thousand constants the planner priced each index probe as a random read from disk and
/// scanned the table instead: the import's email lookups grew with it, to 15 ms a batch at
/// 100,000 contacts; with the array they take about 2 ms.
pub(crate) fn one_of<C, V>(
    backend: DbBackend,
    column: C,
    values: impl IntoIterator<Item = V>,
) -> sea_orm::sea_query::Expr
where
    C: ColumnTrait,
    V: Into<sea_orm::Value>,
    Vec<V>: Into<sea_orm::Value>,
{
    use sea_orm::sea_query::{Expr, ExprTrait, PgFunc};
    match backend {
        DbBackend::Postgres => Expr::col(column.as_column_ref()).eq(PgFunc::any(Expr::val(
            values.into_iter().collect::<Vec<V>>(),
        ))),
        _ => column.is_in(values),
    }
}

/// A desk list's rows: live ones, or those in the recycle bin (`binned`), and with `since`
/// only those changed since. Moving to the recycle bin changes a record too; a live one was
/// changed only by edits, which its own index finds.
pub(crate) fn desk_rows<C: ColumnTrait>(
    (updated_at, deleted_at): (C, C),
    binned: bool,
    since: Option<chrono::DateTime<Utc>>,
) -> sea_orm::Condition {
    let mut rows = sea_orm::Condition::all().add(if binned {
        deleted_at.is_not_null()
    } else {
        deleted_at.is_null()
    });
    if let Some(since) = since {
        rows = rows.add(if binned {
            sea_orm::Condition::any()
                .add(updated_at.gte(since))
                .add(deleted_at.gte(since))
        } else {
            sea_orm::Condition::all().add(updated_at.gte(since))
        });
    }
    rows
}

/// The ids, each once, in the order first given: a mass update naming a record twice
/// changes it once.
pub(crate) fn distinct<T: Copy + Eq + std::hash::Hash>(ids: &[T]) -> Vec<T> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// Refuses a write to a record someone changed since the writer read it: `expected` is the
/// `updatedAt` the writer read, `updated_at` the locked row's. Compared to the millisecond,
/// the most a client's date type may keep (JavaScript's `Date`).
pub(crate) fn unchanged_since(
    record: std::fmt::Arguments<'_>,
    updated_at: chrono::DateTime<Utc>,
    expected: Option<chrono::DateTime<Utc>>,
) -> StoreResult<()> {
    match expected {
        Some(read) if read.timestamp_millis() != updated_at.timestamp_millis() => {
            Err(StoreError::Conflict(format!(
                "{record} was changed at {} since it was read (updatedAt {}); read it again and make the change to what it holds now",
                updated_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                read.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            )))
        }
        _ => Ok(()),
    }
}

/// A desk record that can be in the recycle bin.
pub(crate) trait Binnable {
    fn key(&self) -> i64;
    fn binned(&self) -> bool;
}

/// These records of one kind (`noun`), in the order named, locked for the write; the first
/// one missing or in the recycle bin is an error. On PostgreSQL they are locked in id order,
/// the order a sync batch locks them in, so that a mass update and a sync batch never wait
/// for each other in a cycle. (SQLite has one writer at a time, and nothing to lock.)
pub(crate) async fn live_records<E>(
    db: &impl ConnectionTrait,
    id: E::Column,
    ids: &[i64],
    noun: &str,
) -> StoreResult<Vec<E::Model>>
where
    E: EntityTrait,
    E::Model: Binnable,
{
    let mut found: HashMap<i64, E::Model> = E::find()
        .filter(one_of(db.get_database_backend(), id, ids.iter().copied()))
        .order_by_asc(id)
        .lock_exclusive()
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.key(), m))
        .collect();
    ids.iter()
        .map(|id| {
            let model = found
                .remove(id)
                .ok_or_else(|| StoreError::NotFound(format!("{noun} {id}")))?;
            if model.binned() {
                return Err(StoreError::Conflict(format!(
                    "{noun} {id} is in the recycle bin; restore it first"
                )));
            }
            Ok(model)
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether the database undid the transaction for another running at the same moment
    /// (a deadlock, or a serialization failure, on PostgreSQL), or could not begin it while
    /// another process wrote for longer than the busy timeout (SQLite's BUSY and LOCKED):
    /// sent again, it goes through.
    pub fn is_contention(&self) -> bool {
        let StoreError::Db(
            DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
            | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)),
        ) = self
        else {
            return false;
        };
        let sqlite_busy = |code: &str| {
            // SQLite's extended codes keep the primary one in their low byte.
            code.parse::<i32>()
                .is_ok_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
        };
        const SQLITE_BUSY: i32 = 5;
        const SQLITE_LOCKED: i32 = 6;
        e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "40P01" || code == "40001" || sqlite_busy(&code))
    }
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite allows one writer; taking this before `BEGIN` keeps a deferred transaction
    /// from failing with SQLITE_BUSY when it upgrades to a write lock.
    write_lock: Option<Arc<Mutex<()>>>,
    /// Where the locks shared with other processes on this database live.
    locks: locks::LockSpace,
    /// The other replicas on this PostgreSQL database, told of this one's changes.
    peers: Option<peers::Peers>,
    events: broadcast::Sender<DeskEvent>,
    sync_events: broadcast::Sender<SyncEvent>,
    /// The sync events this process logged itself, without those heard from others.
    own_sync_events: broadcast::Sender<SyncEvent>,
    /// Moves on whenever a profile's permissions change, here or on another replica: what a
    /// long-lived subscription checks before it hands out the next event.
    profiles: Arc<watch::Sender<u64>>,
    /// Moves on when desk changes announced by other replicas may have gone unheard (the
    /// listening connection dropped): `deskChanges` subscribers are told they fell behind.
    desk_gaps: Arc<watch::Sender<u64>>,
    /// Profiles read for requests, by name (see `Store::viewer_profile`).
    profile_cache: profiles::ProfileCache,
    /// The newest sync event id this process has published or heard of; -1 until the log
    /// is first read. Never ahead of the log, so following from it misses nothing.
    newest_event: Arc<std::sync::atomic::AtomicI64>,
    /// The sync events this process has broadcast to its subscribers lately.
    passed_on: Arc<events::PassedOn>,
    /// Whether a refresh of the planner's statistics is running.
    analysing: Arc<std::sync::atomic::AtomicBool>,
    /// Counts the write transactions this process commits and the changes it hears of from
    /// other processes (see `Store::changes`).
    changes: Arc<AtomicU64>,
    /// Counts the changes to the saved connection, its sync type and its mappings, here and
    /// on the other replicas (see `Store::integration_version`).
    integration_version: Arc<AtomicU64>,
    /// This desk's tag in `Helpdesk_Id__c` (see `Store::desk_tag`), read once.
    desk_tag: Arc<tokio::sync::OnceCell<Arc<str>>>,
    /// Wakes this process's sync worker for a round asked for here or on another replica
    /// (see `Store::ask_for_round`).
    round_asked: Arc<tokio::sync::Notify>,
}

/// A write transaction, holding the SQLite writer slot while it lives.
pub(crate) struct WriteTxn<'a> {
    txn: DatabaseTransaction,
    _slot: Option<MutexGuard<'a, ()>>,
    moved: Moved<'a>,
}

impl std::ops::Deref for WriteTxn<'_> {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

impl<'a> WriteTxn<'a> {
    /// Marks the transaction as one that changes a profile's permissions: once it commits
    /// (or may have), open subscriptions and cached profiles here and on the other replicas
    /// read them again.
    pub(crate) fn changes_profiles(&mut self, store: &'a Store) {
        self.moved.profiles = Some(&store.profiles);
    }

    /// Marks the transaction as one that changes what panels see of the org (the saved
    /// connection, the sync type, the mappings): once it commits (or may have), the view
    /// kept of it here and on the other replicas is read again.
    pub(crate) fn changes_integration(&mut self, store: &'a Store) {
        self.moved.integration = Some(&store.integration_version);
    }

    /// Tells `deskChanges` subscribers, here and on the other replicas, of a change the
    /// transaction makes to a desk record, once it commits (or may have): a mutation whose
    /// caller goes away as it commits still tells of what it did.
    pub(crate) fn tells(&mut self, entity: DeskEntity, action: DeskAction, id: i64) {
        self.moved.desk.push((entity, action, id));
    }

    /// [`Self::tells`] of each of `ids`.
    pub(crate) fn tells_all(
        &mut self,
        entity: DeskEntity,
        action: DeskAction,
        ids: impl IntoIterator<Item = i64>,
    ) {
        self.moved
            .desk
            .extend(ids.into_iter().map(|id| (entity, action, id)));
    }

    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        let WriteTxn { txn, mut moved, .. } = self;
        moved.committing = true;
        txn.commit().await
    }

    /// Logs the sync events the transaction tells of and commits, then broadcasts them
    /// before giving up the writer slot, so that on SQLite they go out in the order of their
    /// ids.
    pub(crate) async fn commit_publishing(
        self,
        store: &Store,
        events: Vec<SyncEventKind>,
    ) -> StoreResult<()> {
        let WriteTxn {
            txn,
            _slot: slot,
            mut moved,
        } = self;
        let events = events::log(&txn, events).await?;
        moved.committing = true;
        {
            let _moved = moved;
            txn.commit().await?;
        }
        store.publish_sync(events);
        drop(slot);
        Ok(())
    }
}

/// Moves the store's change count on, and tells the other replicas, when dropped: after a
/// commit returns, and also when it fails or its future is dropped midway, since the commit
/// may have landed either way. A transaction dropped without a commit rolls back, and moves
/// nothing.
struct Moved<'a> {
    changes: &'a AtomicU64,
    peers: Option<&'a peers::Peers>,
    /// Set when the transaction changes permissions: their version moves on too.
    profiles: Option<&'a watch::Sender<u64>>,
    /// Set when the transaction changes the connection, its sync type or its mappings:
    /// their version moves on too.
    integration: Option<&'a AtomicU64>,
    /// Where changes to desk records are told, and those the transaction makes.
    events: &'a broadcast::Sender<DeskEvent>,
    desk: Vec<(DeskEntity, DeskAction, i64)>,
    committing: bool,
}

impl Drop for Moved<'_> {
    fn drop(&mut self) {
        if !self.committing {
            return;
        }
        // Before the change count: an answer read from the old view until now is not kept
        // under the new count.
        if let Some(integration) = self.integration {
            if let Some(peers) = self.peers {
                peers.announce(peers::Notice::Integration);
            }
            integration.fetch_add(1, Ordering::SeqCst);
        }
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Some(profiles) = self.profiles {
            if let Some(peers) = self.peers {
                peers.announce(peers::Notice::Profiles);
            }
            profiles.send_modify(|version| *version += 1);
        }
        if let Some(peers) = self.peers {
            peers.announce(peers::Notice::Changed);
        }
        let at = Utc::now();
        for (entity, action, record_id) in self.desk.drain(..) {
            let event = DeskEvent {
                entity,
                action,
                record_id,
                at,
            };
            if let Some(peers) = self.peers {
                peers.announce(peers::Notice::Desk(event.clone()));
            }
            // No subscriber is not an error.
            let _ = self.events.send(event);
        }
    }
}

/// SQLite page cache per connection, in KiB.
const SQLITE_CACHE_KIB: u32 = 16 * 1024;

/// What all SQLite connections of the process may hold in all, in bytes: near it, a page
/// cache recycles its own pages instead of growing. Without it eight connections' caches
/// of 16 MiB, each on a thread with its own malloc arena, took a million-contact import to
/// a peak RSS of 330 MB.
const SQLITE_SOFT_HEAP_LIMIT: u64 = 64 * 1024 * 1024;

impl Store {
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.expose().to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10));
        if url.is_sqlite() {
            // Every pooled connection gets these settings, not only the first: WAL with FULL
            // sync (a commit is on disk before it is answered, so an edit acknowledged, or a
            // create noted before it is sent, outlives a power cut as it does a killed
            // process: NORMAL would lose the last commits), and a page cache large enough
            // that index pages stay in memory.
            options
                .max_connections(8)
                .min_connections(1)
                // A connection to a file in this process cannot be dropped by a server, and
                // each check is a round trip to the connection's thread: one per statement.
                .test_before_acquire(false)
                .map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                        .busy_timeout(Duration::from_secs(10))
                        .pragma("cache_size", format!("-{}", SQLITE_CACHE_KIB))
                        .pragma("temp_store", "memory")
                        .pragma("soft_heap_limit", SQLITE_SOFT_HEAP_LIMIT.to_string())
                        .pragma("wal_autocheckpoint", "10000")
                });
        } else {
            options.max_connections(16);
        }
        let db = Database::connect(options).await?;
        let locks = if url.is_sqlite() {
            locks::LockSpace::of_sqlite(&db).await?
        } else {
            locks::LockSpace::Postgres
        };
        let (events, _) = broadcast::channel(1024);
        // Room for a few pages of failures at once (a page that meets a new validation rule
        // fails every record of it): a subscriber a batch or two behind takes them from here,
        // not from the log, where every subscriber at once would read them again.
        let (sync_events, _) = broadcast::channel(8192);
        let (own_sync_events, _) = broadcast::channel(1024);
        let profiles = Arc::new(watch::Sender::new(0));
        let desk_gaps = Arc::new(watch::Sender::new(0));
        let newest_event = Arc::new(std::sync::atomic::AtomicI64::new(-1));
        let passed_on = Arc::new(events::PassedOn::default());
        let changes = Arc::new(AtomicU64::new(0));
        let integration_version = Arc::new(AtomicU64::new(0));
        let round_asked = Arc::new(tokio::sync::Notify::new());
        let followers = peers::Followers {
            desk: events.clone(),
            sync: sync_events.clone(),
            profiles: profiles.clone(),
            desk_gaps: desk_gaps.clone(),
            newest_event: newest_event.clone(),
            passed_on: passed_on.clone(),
            changes: changes.clone(),
            integration: integration_version.clone(),
            round_asked: round_asked.clone(),
        };
        let write_lock = url.is_sqlite().then(|| Arc::new(Mutex::new(())));
        events::watch_log(db.clone(), write_lock.clone(), &followers);
        let peers = (!url.is_sqlite()).then(|| peers::Peers::start(db.clone(), followers));
        profiles::watch_profiles(db.clone(), &profiles);
        Ok(Self {
            db,
            write_lock,
            locks,
            peers,
            events,
            sync_events,
            own_sync_events,
            profiles,
            desk_gaps,
            profile_cache: profiles::ProfileCache::default(),
            newest_event,
            passed_on,
            analysing: Arc::default(),
            changes,
            integration_version,
            desk_tag: Arc::default(),
            round_asked,
        })
    }

    /// Asks the sync worker for a round now, not at its next poll: the one in this process,
    /// and the one another replica runs when this process only stands by.
    pub fn ask_for_round(&self) {
        self.round_asked.notify_one();
        if let Some(peers) = &self.peers {
            peers.announce(peers::Notice::Round);
        }
    }

    /// Sends the other replicas what this process has queued for them, waiting at most a few
    /// seconds: a process about to exit would otherwise drop the last changes it made
    /// unannounced.
    pub async fn flush_announcements(&self) {
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
        if let Some(peers) = &self.peers
            && tokio::time::timeout(PATIENCE, peers.flush()).await.is_err()
        {
            tracing::warn!("other replicas may not hear of the last changes made here");
        }
    }

    /// Resolves once a round is asked for (at once if one was since the last wait).
    pub async fn round_asked(&self) {
        self.round_asked.notified().await;
    }

    /// The tag drawn for this desk's database when it was made: the push writes it before
    /// the desk id in `Helpdesk_Id__c`, and a Salesforce record naming a desk record counts
    /// only with it, so another desk's ids (a sandbox copied from production, a desk started
    /// afresh on the same org) are never taken for this one's.
    pub async fn desk_tag(&self) -> StoreResult<Arc<str>> {
        let tag = self
            .desk_tag
            .get_or_try_init(|| async {
                let row = self
                    .db
                    .query_one_raw(Statement::from_string(
                        self.backend(),
                        "SELECT tag FROM desk_tag WHERE id = 1",
                    ))
                    .await?
                    .ok_or_else(|| DbErr::RecordNotFound("desk_tag".into()))?;
                Ok::<_, StoreError>(Arc::from(row.try_get::<String>("", "tag")?))
            })
            .await?;
        Ok(tag.clone())
    }

    /// Moves on after every write transaction this process commits, and whenever it hears
    /// of another process's changes: PostgreSQL replicas' notices at once, and on SQLite
    /// the sync events other processes log, within a second. What was read while it held
    /// one value may be served again while it still does.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Moves on with every change to the saved connection, its sync type or its mappings,
    /// committed here or announced by another replica (PostgreSQL): a view of the org read
    /// at another version may be out of date.
    pub fn integration_version(&self) -> u64 {
        self.integration_version.load(Ordering::SeqCst)
    }

    /// Moves the change count on for a change kept outside the database (the org's view,
    /// once it is forgotten): what was read before it may not be served again.
    pub fn touch(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes when any profile's permissions do, in this process or another replica.
    /// How many profile changes this process has heard of.
    pub fn profile_version(&self) -> u64 {
        *self.profiles.borrow()
    }

    pub fn profile_changes(&self) -> watch::Receiver<u64> {
        self.profiles.subscribe()
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// The time by the database's clock on PostgreSQL, which every replica shares, and by
    /// this host's on SQLite, whose processes are all on one host: what one process stamps
    /// and another measures a wait from must be read off one clock.
    pub async fn shared_now(&self) -> StoreResult<DateTime<Utc>> {
        if self.backend() != DbBackend::Postgres {
            return Ok(Utc::now());
        }
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.backend(),
                "SELECT clock_timestamp() AS now",
            ))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("clock_timestamp()".into()))?;
        Ok(row.try_get::<DateTime<Utc>>("", "now")?)
    }

    /// Applies pending migrations, one process at a time (see `lock_migrations`).
    pub async fn migrate_up(&self) -> Result<(), DbErr> {
        let _lock = self.migrations_to_self().await?;
        Migrator::up(&self.db, None).await
    }

    /// Reverts the last `steps` migrations, one process at a time.
    pub async fn migrate_down(&self, steps: u32) -> Result<(), DbErr> {
        let _lock = self.migrations_to_self().await?;
        Migrator::down(&self.db, Some(steps)).await
    }

    /// The migration lock, its failure said as migrations say theirs.
    async fn migrations_to_self(&self) -> Result<locks::MigrationLock, DbErr> {
        self.lock_migrations()
            .await
            .map_err(|e| DbErr::Custom(format!("waiting for another process's migrations: {e}")))
    }

    /// Names of this build's migrations not yet applied. Migrations a newer build applied
    /// (one replica upgraded before the others) are not this build's to know: they are left
    /// out, not an error, so a process running on goes on being ready.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbErr> {
        let applied: std::collections::HashSet<String> = Migrator::get_migration_models(&self.db)
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect();
        Ok(Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .filter(|name| !applied.contains(name))
            .collect())
    }

    /// Ready means the database answers and every migration has been applied. The reason
    /// is for anyone who asks; the database's own words (hosts, users) go to the log.
    pub async fn readiness(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|e| {
            tracing::warn!(error = %e, "the database does not answer");
            "database unreachable (the gateway's log says why)".to_owned()
        })?;
        let pending = self.pending_migrations().await.map_err(|e| {
            tracing::warn!(error = %e, "cannot read the migration state");
            "cannot read migration state (the gateway's log says why)".to_owned()
        })?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(format!("pending migrations: {}", pending.join(", ")))
        }
    }

    /// Brings the query planner's statistics up to date after bulk writes, on a task of its
    /// own so that the writes go on meanwhile; a refresh asked for while one runs is not
    /// started. PostgreSQL plans a freshly filled table as if it were still empty until it is
    /// analysed; SQLite needs nothing. Only the columns the sync looks records up by are
    /// sampled: the records the links keep are long, and sampling them made each refresh cost
    /// up to half a second at 100,000 links.
    pub fn refresh_statistics(&self) {
        use std::sync::atomic::Ordering;
        if self.write_lock.is_some() || self.analysing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (db, analysing) = (self.db.clone(), self.analysing.clone());
        tokio::spawn(async move {
            let analysed = db
                .execute_unprepared(
                    "ANALYZE record_link (module, desk_id, salesforce_id), \
                     contact (id, email_key, account_id), account (id, name_key), \
                     outbox (module, desk_id)",
                )
                .await;
            analysing.store(false, Ordering::Release);
            if let Err(error) = analysed {
                tracing::warn!(%error, "could not refresh the query planner's statistics");
            }
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DeskEvent> {
        self.events.subscribe()
    }

    /// Moves on whenever desk changes made through other replicas may have gone unheard
    /// since (see `desk_gaps`).
    pub fn desk_gaps(&self) -> watch::Receiver<u64> {
        self.desk_gaps.subscribe()
    }

    pub(crate) async fn write(&self) -> Result<WriteTxn<'_>, DbErr> {
        let slot = match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        // On SQLite, the write lock is taken at BEGIN, where the busy timeout waits for
        // another process's writer: a transaction begun as a reader and written later fails
        // at once once another process has committed since it began.
        let options = sea_orm::TransactionOptions {
            sqlite_transaction_mode: slot
                .is_some()
                .then_some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        Ok(WriteTxn {
            txn: self.db.begin_with_options(options).await?,
            _slot: slot,
            moved: Moved {
                changes: &self.changes,
                peers: self.peers.as_ref(),
                profiles: None,
                integration: None,
                events: &self.events,
                desk: Vec::new(),
                committing: false,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use entity::contact;
    use sea_orm::{DbBackend, EntityTrait, QueryFilter, QueryTrait};

    use super::one_of;

    fn lookup(backend: DbBackend, emails: &[&str]) -> String {
        contact::Entity::find()
            .filter(one_of(
                backend,
                contact::Column::EmailKey,
                emails.iter().map(|e| (*e).to_owned()),
            ))
            .build(backend)
            .sql
    }

    #[test]
    fn a_postgresql_lookup_is_one_statement_whatever_the_number_of_keys() {
        let one = lookup(DbBackend::Postgres, &["a@x.test"]);
        let three = lookup(DbBackend::Postgres, &["a@x.test", "b@x.test", "c@x.test"]);
        assert_eq!(one, three);
        assert!(
            one.ends_with(r#"WHERE "contact"."email_key" = ANY($1)"#),
            "{one}"
        );
        let sqlite = lookup(DbBackend::Sqlite, &["a@x.test", "b@x.test"]);
        assert!(
            sqlite.ends_with(r#"WHERE "contact"."email_key" IN (?, ?)"#),
            "{sqlite}"
        );
    }
}
