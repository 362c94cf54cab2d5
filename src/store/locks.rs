//! Locks shared by every process on one database: `tandem serve` replicas on one PostgreSQL,
//! or `serve` and `tandem sync --once` on one SQLite file. PostgreSQL holds them as advisory
//! locks, SQLite as locks on files beside the database; the operating system or the server
//! lets go of them when their holder dies, so a crashed process never leaves one taken.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::sqlx::{self, Postgres, Row};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::{Store, StoreError, StoreResult};

/// Advisory lock keys; arbitrary, but fixed for the life of the schema.
const ROUND_KEY: i64 = 0x7461_6e64_656d_0001;
const WORKER_KEY: i64 = 0x7461_6e64_656d_0002;
const LOG_KEY: i64 = 0x7461_6e64_656d_0003;
const MIGRATION_KEY: i64 = 0x7461_6e64_656d_0004;
const PROFILE_NAMES_KEY: i64 = 0x7461_6e64_656d_0005;

/// Where a database keeps its cross-process locks.
#[derive(Clone, Debug)]
pub(crate) enum LockSpace {
    Postgres,
    /// The SQLite database file; its locks are files beside it.
    File(PathBuf),
    /// An in-memory SQLite database lives in one process, which its mutexes already cover.
    Process,
}

impl LockSpace {
    /// Asks SQLite where its main database lives.
    pub(crate) async fn of_sqlite(db: &impl ConnectionTrait) -> Result<Self, DbErr> {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "PRAGMA database_list",
            ))
            .await?;
        for row in rows {
            let name: String = row.try_get("", "name")?;
            let file: String = row.try_get("", "file")?;
            if name == "main" && !file.is_empty() {
                return Ok(Self::File(PathBuf::from(file)));
            }
        }
        Ok(Self::Process)
    }
}

fn lock_file(database: &Path, suffix: &str) -> std::io::Result<File> {
    let mut name = database.as_os_str().to_owned();
    name.push(suffix);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(name)
}

/// How soon a lock another process holds is tried again, the wait doubling up to
/// [`LOCK_POLL_MAX`].
const LOCK_POLL_FIRST: Duration = Duration::from_millis(10);
const LOCK_POLL_MAX: Duration = Duration::from_millis(200);

/// Takes the file's exclusive lock if no other process holds it; `false` when one does.
fn try_lock(file: &File) -> StoreResult<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Db(DbErr::Custom(format!("lock file: {e}")))
}

/// Held while a sync round runs in any process on this database; dropping the last clone
/// lets the next one start. The round keeps a clone to ask, before each step, whether it
/// still holds the lock.
#[must_use]
#[derive(Clone)]
pub struct RoundLock {
    held: std::sync::Arc<tokio::sync::Mutex<Held>>,
}

/// Held while a process applies migrations: replicas starting together after an upgrade
/// apply them one after the other, the later finding nothing left to do.
#[must_use]
pub struct MigrationLock {
    _held: Held,
}

/// Held by the one process whose worker runs the rounds; the others stand by.
#[must_use]
pub struct WorkerLease {
    held: Held,
}

enum Held {
    /// A transaction holding `pg_advisory_xact_lock`: rolled back (and the lock released)
    /// when dropped.
    Transaction(sqlx::Transaction<'static, Postgres>),
    /// A connection of its own holding a session advisory lock, closed when dropped.
    Session(sqlx::PgConnection),
    /// An open file holding an exclusive lock, released when closed.
    File(#[allow(dead_code)] File),
    Nothing,
}

/// Makes sync event ids commit in the order they are drawn, from here to the end of the
/// caller's transaction. On PostgreSQL an id is drawn from the sequence at insert but seen
/// only at commit, so without this a later id could commit first, and a follower reading the
/// log then would step past the earlier one for good. SQLite's single writer already orders
/// them.
pub(super) async fn order_event_log(db: &impl ConnectionTrait) -> StoreResult<()> {
    hold_until_commit(db, LOG_KEY).await
}

/// Lets one transaction at a time judge whether a profile name is taken, from here to its
/// end: the names it reads are then all the names there are until it commits. SQLite's
/// single writer already does.
pub(super) async fn judge_profile_names_alone(db: &impl ConnectionTrait) -> StoreResult<()> {
    hold_until_commit(db, PROFILE_NAMES_KEY).await
}

/// On PostgreSQL, takes advisory lock `key` until the caller's transaction ends.
async fn hold_until_commit(db: &impl ConnectionTrait, key: i64) -> StoreResult<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({key})"))
            .await?;
    }
    Ok(())
}

impl Store {
    /// Waits until no other process on this database runs a sync round, and keeps others
    /// from starting one until the lock is dropped.
    pub async fn lock_rounds(&self) -> StoreResult<RoundLock> {
        Ok(RoundLock {
            held: std::sync::Arc::new(tokio::sync::Mutex::new(
                self.exclusive(ROUND_KEY, ".rounds.lock").await?,
            )),
        })
    }

    /// Takes the round lock if no process on this database holds it, without waiting.
    pub async fn try_lock_rounds(&self) -> StoreResult<Option<RoundLock>> {
        Ok(self
            .try_exclusive(ROUND_KEY, ".rounds.lock")
            .await?
            .map(|held| RoundLock {
                held: std::sync::Arc::new(tokio::sync::Mutex::new(held)),
            }))
    }

    /// Whether a sync round holds the round lock now, in any process on this database: a
    /// glance, for saying why a round is about to wait; one may start or end the moment after.
    pub async fn round_running(&self) -> StoreResult<bool> {
        // Taken and let go at once when free.
        Ok(self.try_lock_rounds().await?.is_none())
    }

    /// Waits until no other process on this database applies migrations, and keeps others
    /// from starting until the lock is dropped.
    pub async fn lock_migrations(&self) -> StoreResult<MigrationLock> {
        Ok(MigrationLock {
            _held: self.exclusive(MIGRATION_KEY, ".migrations.lock").await?,
        })
    }

    /// Waits for the lock named by `key` (PostgreSQL) or `suffix` (the file beside an SQLite
    /// database), and holds it until dropped. It is tried again and again rather than waited
    /// for: a caller that gives up (a request whose client went away, a wait past its
    /// patience) leaves nothing waiting behind it, where a `pg_advisory_xact_lock` cut off
    /// would keep its session waiting until the lock came, and a blocking thread would hold
    /// the runtime's shutdown.
    async fn exclusive(&self, key: i64, suffix: &str) -> StoreResult<Held> {
        let mut pause = LOCK_POLL_FIRST;
        loop {
            if let Some(held) = self.try_exclusive(key, suffix).await? {
                return Ok(held);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
    }

    /// The lock named by `key` or `suffix` if no other process holds it.
    async fn try_exclusive(&self, key: i64, suffix: &str) -> StoreResult<Option<Held>> {
        Ok(match &self.locks {
            LockSpace::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                // Taken with the transaction; let go when it is dropped (rolled back).
                let mut txn = pool.begin().await.map_err(sqlx_error)?;
                let taken: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(key)
                    .fetch_one(&mut *txn)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(sqlx_error)?;
                taken.then_some(Held::Transaction(txn))
            }
            LockSpace::File(database) => {
                let file = lock_file(database, suffix).map_err(io)?;
                try_lock(&file)?.then_some(Held::File(file))
            }
            LockSpace::Process => Some(Held::Nothing),
        })
    }

    /// Takes the worker lease if no other process holds it.
    pub async fn try_worker_lease(&self) -> StoreResult<Option<WorkerLease>> {
        let held = match &self.locks {
            LockSpace::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                let mut conn = pool.acquire().await.map_err(sqlx_error)?;
                let taken: Result<bool, _> = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(WORKER_KEY)
                    .fetch_one(&mut *conn)
                    .await
                    .and_then(|row| row.try_get(0));
                match taken {
                    // Out of the pool for as long as it holds the lease.
                    Ok(true) => Held::Session(conn.detach()),
                    // Back to the pool holding nothing: a standby asks every few seconds.
                    Ok(false) => return Ok(None),
                    // Whether it took the lock is not known: closed, not pooled.
                    Err(e) => {
                        drop(conn.detach());
                        return Err(sqlx_error(e));
                    }
                }
            }
            LockSpace::File(database) => {
                let file = lock_file(database, ".worker.lock").map_err(io)?;
                if !try_lock(&file)? {
                    return Ok(None);
                }
                Held::File(file)
            }
            LockSpace::Process => Held::Nothing,
        };
        Ok(Some(WorkerLease { held }))
    }
}

impl Held {
    /// Whether the lock still stands: a PostgreSQL connection that has gone away (the server
    /// restarted or failed over, or ended a transaction idle for longer than
    /// `idle_in_transaction_session_timeout`) took its lock with it, and another process may
    /// hold it now. A file lock stands as long as the file is open.
    async fn stands(&mut self) -> bool {
        match self {
            Held::Session(conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
            Held::Transaction(txn) => sqlx::query("SELECT 1").execute(&mut **txn).await.is_ok(),
            Held::File(_) | Held::Nothing => true,
        }
    }
}

impl WorkerLease {
    /// Whether the lease still stands (see [`Held::stands`]).
    pub async fn held(&mut self) -> bool {
        self.held.stands().await
    }
}

impl RoundLock {
    /// Whether the lock still stands (see [`Held::stands`]): a round that lost it stops, as
    /// another process may be running one beside it.
    pub async fn held(&self) -> bool {
        self.held.lock().await.stands().await
    }
}

fn sqlx_error(e: sqlx::Error) -> StoreError {
    StoreError::Db(DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))
}
