//! `tandem sync --once`: one full sync round from the command line, with live progress.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::config::Settings;
use crate::domain::Direction;
use crate::startup::Services;
use crate::store::SyncEvent;
use crate::sync::{Counts, SyncEventKind};

pub async fn once(settings: &Settings) -> anyhow::Result<()> {
    // Which one, where a scheduler runs it from another directory than `serve` runs in: an
    // SQLite file by its whole path, since a relative one names another file elsewhere.
    let url = settings.database_url();
    match url.sqlite_path() {
        Some(file) => eprintln!(
            "syncing the database at {}",
            crate::startup::absolute(&file).display()
        ),
        None => eprintln!("syncing the database at {}", url.redacted()),
    }
    let services = Services::open(settings).await?;
    // The gateway's worker says so where admins look; this process, run with another key
    // (another data dir, another sync.encryption_key), says so to whoever ran it, and
    // leaves the integration's status alone.
    if let Some(e) = &services.sealed_away {
        bail!("{e}");
    }
    // Listening from here on: a Ctrl-C (or a SIGTERM, from a scheduler or `timeout`) sent
    // while the loop below handles an event (or before it first waits) is kept for it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupts = signal(SignalKind::interrupt())?;
    let mut terminations = signal(SignalKind::terminate())?;
    // This round's batches only: a worker syncing the same database logs its own.
    let mut events = services.store.subscribe_own_sync();
    if services.store.round_running().await? {
        eprintln!(
            "another process (`tandem serve`'s worker, or another `tandem sync --once`) is running a sync round on this database; this one starts when it is done"
        );
    }
    let engine = services.engine.clone();
    let mut round = tokio::spawn(async move { engine.run_once().await });
    let mut progress = Progress::new()?;
    let started = Instant::now();
    let mut interrupted = false;
    let outcome = loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Ok(event) => progress.saw(event),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break (&mut round).await,
            },
            done = &mut round => break done,
            // Ctrl-C: the round stops at its next batch, the one in flight committed whole.
            // The exit status of a second is the shell's for the signal: 128 and its number.
            Some((exit, again)) = async {
                tokio::select! {
                    got = interrupts.recv() => got.map(|()| (130, "Ctrl-C")),
                    got = terminations.recv() => got.map(|()| (143, "SIGTERM")),
                }
            } => {
                if interrupted {
                    std::process::exit(exit);
                }
                interrupted = true;
                eprintln!("interrupted: the round stops after the batch in flight ({again} again to quit at once)");
                // Closing, not only stopping: a round that had yet to ask for its turn when
                // the signal came does not then wait for one.
                services.integrations.close_here();
            }
        }
    };
    // Batches committed as the round ended are still queued.
    loop {
        match events.try_recv() {
            Ok(event) => progress.saw(event),
            Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    progress.finish();
    // Replicas serving on the database hear of what the round wrote before this one exits,
    // even when it panicked after some batches.
    services.store.flush_announcements().await;
    let outcome = outcome.context("the sync round stopped on an internal error")?;
    let summary = |pulled: &Counts, pushed: &Counts| {
        println!(
            "Salesforce → desk: {} added, {} updated, {} failed; desk → Salesforce: {} added, {} updated, {} failed ({:.1} s)",
            pulled.added,
            pulled.updated,
            pulled.failed,
            pushed.added,
            pushed.updated,
            pushed.failed,
            started.elapsed().as_secs_f64()
        );
    };
    let report = match outcome {
        Ok(report) => report,
        // What its batches committed before it failed stays: they say what it was.
        Err(e) => {
            let (pulled, pushed) = (&progress.pulled, &progress.pushed);
            if !(pulled.is_empty() && pushed.is_empty()) {
                summary(pulled, pushed);
                bail!(
                    "the round failed after the batches counted above, which stay; the next round does the rest: {e}"
                );
            }
            return Err(e.into());
        }
    };
    let stopped = report.stopped_reason().map(|why| {
        let rest = if report.stopped.len() > 1 {
            "nothing else synced"
        } else {
            "the rest synced"
        };
        format!("{why}; {rest}")
    });
    // A round stopped midway (paused, reconnected) keeps what it wrote: its batches say what.
    let (pulled, pushed) = match report.idle {
        None => (report.pulled, report.pushed),
        Some(_) => (progress.pulled, progress.pushed),
    };
    let did_something = !(pulled.is_empty() && pushed.is_empty());
    if report.idle.is_none() || did_something {
        summary(&pulled, &pushed);
    }
    match report.idle {
        Some(_) if interrupted => bail!(
            "interrupted: the round stopped before it was done; what it committed stays, and the next round does the rest"
        ),
        Some(why) if did_something => bail!("the round stopped before it was done: {why}"),
        Some(why) => bail!("nothing synced: {why}"),
        None => {}
    }
    // A script running the round learns that a module did not sync, or that records wait
    // in the failure log.
    if let Some(why) = stopped {
        bail!("{why}");
    }
    let failed = pulled.failed + pushed.failed;
    if failed > 0 {
        let records = if failed == 1 { "record" } else { "records" };
        bail!(
            "{failed} {records} failed; the failure log (`syncFailures`) says why, and `retrySyncFailure(s)` tries again"
        )
    }
    Ok(())
}

/// A bar for each module and direction, and the batches' counts by direction.
struct Progress {
    bars: MultiProgress,
    style: ProgressStyle,
    phases: HashMap<String, ProgressBar>,
    pulled: Counts,
    pushed: Counts,
}

impl Progress {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            bars: MultiProgress::new(),
            style: ProgressStyle::with_template(
                "{prefix:>34} {pos:>9} records  {per_sec:>14}  {elapsed}",
            )?,
            phases: HashMap::new(),
            pulled: Counts::default(),
            pushed: Counts::default(),
        })
    }

    fn saw(&mut self, event: SyncEvent) {
        let SyncEventKind::History(entry) = event.kind else {
            return;
        };
        let counts = Counts {
            added: entry.added,
            updated: entry.updated,
            failed: entry.failed,
        };
        match entry.direction.parse() {
            Ok(Direction::SalesforceToDesk) => self.pulled.add(counts),
            Ok(Direction::DeskToSalesforce) => self.pushed.add(counts),
            Err(_) => {}
        }
        let phase = format!("{} {}", entry.module, entry.direction);
        let bar = self.phases.entry(phase.clone()).or_insert_with(|| {
            let bar = self
                .bars
                .add(ProgressBar::new_spinner().with_style(self.style.clone()));
            bar.set_prefix(phase);
            bar
        });
        bar.inc((entry.added + entry.updated + entry.failed) as u64);
    }

    fn finish(&self) {
        for bar in self.phases.values() {
            bar.finish();
        }
    }
}
