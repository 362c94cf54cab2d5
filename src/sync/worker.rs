//! The background loop: a round on every poll interval, and soon after a desk change that
//! waits to go to Salesforce or a sync started, resumed or retried through any replica, in
//! the one process that holds the worker lease.

use std::sync::Arc;
use std::time::Duration;

use super::{SyncEngine, SyncError};
use crate::domain::DeskEntity;
use crate::salesforce::SalesforceError;
use crate::store::{Store, WorkerLease};

/// How long to wait after a desk change, so that a burst of edits goes out together.
const DEBOUNCE: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// After a failed round, how soon a desk change to send may bring the next one.
const DESK_RETRY: Duration = Duration::from_secs(15);

/// How often a process without the worker lease asks for it again.
const STANDBY: Duration = Duration::from_secs(5);

/// How long the lease's connection has to answer: one silent for longer (its path to the
/// server cut) is taken for lost, and does not hold up a round that is running.
const LEASE_PATIENCE: Duration = Duration::from_secs(5);

/// How often the lease's connection is used while the worker waits or a round runs: a
/// connection left idle for long (a first sync of an hour, a poll interval stretched to
/// hours) may be dropped by a firewall or load balancer on the way, unknown to PostgreSQL,
/// which would then keep the lease held for a process that no longer has it.
const LEASE_KEEPALIVE: Duration = Duration::from_secs(60);

/// Runs the worker in the background once this process holds the worker lease: among the
/// processes on one database, one runs the rounds and the others stand by, taking over when
/// it stops. Aborting the task stops the worker.
pub fn spawn(engine: Arc<SyncEngine>, store: Store, poll_secs: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let poll = Duration::from_secs(poll_secs.max(1));
        let mut standing_by = false;
        loop {
            match store.try_worker_lease().await {
                Ok(Some(lease)) => {
                    tracing::info!("this process runs the sync worker");
                    standing_by = false;
                    run(&engine, &store, poll, lease).await;
                    tracing::warn!("the sync worker lost its database lease; standing by");
                }
                Ok(None) if !standing_by => {
                    tracing::info!("another process runs the sync worker; standing by");
                    standing_by = true;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot ask for the sync worker lease"),
            }
            tokio::time::sleep(STANDBY).await;
        }
    })
}

/// Rounds on every poll interval and soon after desk changes to send, for as long as the lease
/// holds.
async fn run(engine: &SyncEngine, store: &Store, poll: Duration, mut lease: WorkerLease) {
    let mut desk_changes = store.subscribe();
    let mut desk_gaps = store.desk_gaps();
    let mut failures = 0u32;
    let mut stretched = 1;
    // Desk changes a restart, or the process that held the lease before, left unsent go at
    // once rather than after a whole poll interval.
    let mut owed = engine.has_changes_to_send().await;
    loop {
        let stretch = match engine.api_usage().await {
            Ok(usage) => stretch(usage),
            Err(_) => stretched,
        };
        if stretch != stretched {
            let state = if stretch > 1 {
                "runs low"
            } else {
                "is no longer low"
            };
            tracing::info!(
                "the org's daily API allocation {state}: Salesforce is polled every {:?}",
                poll * stretch
            );
            stretched = stretch;
        }
        let now = tokio::time::Instant::now();
        let wait = if failures == 0 {
            poll * stretch
        } else {
            backoff(failures)
        };
        // Fixed before the wait: desk changes that send nothing do not put the poll off.
        let mut due = now + wait;
        let desk_due = now + desk_wait(failures);
        if std::mem::take(&mut owed) {
            due = now;
        }
        let mut keepalive = tokio::time::interval(LEASE_KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.reset();
        loop {
            let heard = tokio::select! {
                biased;
                () = tokio::time::sleep_until(due) => break,
                () = engine.integrations.woken() => break,
                _ = keepalive.tick() => {
                    if !lease_stands(&mut lease).await {
                        return;
                    }
                    false
                }
                changed = desk_changes.recv() => match changed {
                    // Only contacts and accounts go to Salesforce: a ticket brings no round.
                    Ok(event) => matches!(event.entity, DeskEntity::Contact | DeskEntity::Account),
                    Err(_) => {
                        desk_changes = store.subscribe();
                        true
                    }
                },
                // Changes other replicas made while this one could not hear of them.
                Ok(()) = desk_gaps.changed() => true,
            };
            if !heard || due <= desk_due {
                continue;
            }
            tokio::time::sleep(DEBOUNCE).await;
            while desk_changes.try_recv().is_ok() {}
            // The sync's own writes, an edit in one-way mode: a round would only read
            // Salesforce again, at the cost of its API calls.
            if engine.has_changes_to_send().await {
                due = desk_due;
            }
        }
        if !lease_stands(&mut lease).await {
            return;
        }
        let running = unless_it_panics(engine.run_once());
        tokio::pin!(running);
        let outcome = loop {
            tokio::select! {
                outcome = &mut running => break outcome,
                // A lease lost meanwhile is seen once the round ends: the round has the
                // round lock to itself until then.
                _ = keepalive.tick() => {
                    lease_stands(&mut lease).await;
                }
            }
        };
        let round = match outcome {
            Ok(round) => round,
            Err(panic) => {
                // Its transaction rolled back and its locks went with it; the worker goes on.
                failures += 1;
                tracing::error!(
                    panic,
                    failures,
                    "sync round panicked; retrying with backoff"
                );
                engine.note_panic().await;
                continue;
            }
        };
        match round {
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                let level_is_warn = matches!(
                    e,
                    SyncError::Upstream(
                        SalesforceError::Transport(_) | SalesforceError::RateLimited(_)
                    )
                );
                if level_is_warn {
                    tracing::warn!(error = %e, failures, "sync round stopped; retrying with backoff");
                } else {
                    tracing::error!(error = %e, failures, "sync round failed");
                }
            }
        }
    }
}

/// Whether the lease still stands, as its connection answers within [`LEASE_PATIENCE`].
async fn lease_stands(lease: &mut WorkerLease) -> bool {
    tokio::time::timeout(LEASE_PATIENCE, lease.held())
        .await
        .unwrap_or(false)
}

/// How many poll intervals apart polls go as the org's daily API allocation (`used`, `max`)
/// runs low: from 80 % used, twice the interval, doubling with every further 5 %, sixteen
/// times from 95 %. Idle polls cost two calls each; the calls left are kept for the changes
/// themselves and for the panels agents read.
fn stretch(usage: Option<(i64, i64)>) -> u32 {
    let Some((used, max)) = usage.filter(|(_, max)| *max > 0) else {
        return 1;
    };
    match used.saturating_mul(100) / max {
        ..80 => 1,
        80..85 => 2,
        85..90 => 4,
        90..95 => 8,
        _ => 16,
    }
}

/// Runs `work`, turning a panic into its message: a round that panics is a round that
/// failed, not the end of the worker.
async fn unless_it_panics<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned())
        })
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.min(9)).min(MAX_BACKOFF)
}

/// How soon after a round a desk change to send may bring the next: at once, or after a
/// failed one no sooner than `DESK_RETRY` (or its backoff, if shorter), so that edits made
/// while Salesforce is down do not each cost a round, and do not wait the whole backoff once
/// it is back.
fn desk_wait(failures: u32) -> Duration {
    if failures == 0 {
        Duration::ZERO
    } else {
        backoff(failures).min(DESK_RETRY)
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff, desk_wait, stretch, unless_it_panics};
    use std::time::Duration;

    #[test]
    fn after_failed_rounds_desk_changes_wait_less_than_the_backoff() {
        assert_eq!(desk_wait(0), Duration::ZERO, "no failure: at once");
        assert_eq!(desk_wait(1), backoff(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(desk_wait(3), Duration::from_secs(8));
        assert_eq!(backoff(9), Duration::from_secs(300), "five minutes at most");
        assert_eq!(backoff(40), Duration::from_secs(300));
        for failures in 4..40 {
            assert_eq!(desk_wait(failures), Duration::from_secs(15), "{failures}");
        }
    }

    #[tokio::test]
    async fn a_round_that_panics_is_a_failed_round() {
        assert_eq!(unless_it_panics(async { 7 }).await, Ok(7));
        let panicked = unless_it_panics(async {
            if std::hint::black_box(true) {
                panic!("a page of records the round could not read");
            }
        })
        .await;
        assert_eq!(
            panicked,
            Err("a page of records the round could not read".to_owned())
        );
        let formatted = unless_it_panics(async {
            let page = std::hint::black_box(3);
            if page > 0 {
                panic!("page {page} could not be read");
            }
        })
        .await;
        assert_eq!(formatted, Err("page 3 could not be read".to_owned()));
    }

    #[test]
    fn polls_spread_out_as_the_daily_api_allocation_runs_low() {
        assert_eq!(stretch(None), 1);
        assert_eq!(stretch(Some((5, 0))), 1);
        for (used, times) in [
            (0, 1),
            (11_999, 1),
            (12_000, 2),
            (12_749, 2),
            (12_750, 4),
            (13_500, 8),
            (14_250, 16),
            (15_000, 16),
            (20_000, 16),
        ] {
            assert_eq!(stretch(Some((used, 15_000))), times, "{used} of 15,000");
        }
    }
}
