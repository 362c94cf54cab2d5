//! The background loop: a round on every poll interval, and soon after any desk change.

use std::sync::Arc;
use std::time::Duration;

use super::{SyncEngine, SyncError};
use crate::salesforce::SalesforceError;
use crate::store::Store;

/// How long to wait after a desk change, so that a burst of edits goes out together.
const DEBOUNCE: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub fn spawn(engine: Arc<SyncEngine>, store: Store, poll_secs: u64) {
    tokio::spawn(async move {
        let poll = Duration::from_secs(poll_secs.max(1));
        let mut desk_changes = store.subscribe();
        let mut failures = 0u32;
        loop {
            let wait = if failures == 0 {
                poll
            } else {
                backoff(failures).min(MAX_BACKOFF)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                changed = desk_changes.recv(), if failures == 0 => {
                    if changed.is_err() {
                        desk_changes = store.subscribe();
                    }
                    tokio::time::sleep(DEBOUNCE).await;
                    while desk_changes.try_recv().is_ok() {}
                }
            }
            match engine.run_once().await {
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
    });
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.min(9))
}
