//! `tandem sync --once`: one full sync round from the command line, with live progress.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::bail;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::config::Settings;
use crate::startup::Services;
use crate::sync::SyncEventKind;

pub async fn once(settings: &Settings) -> anyhow::Result<()> {
    let services = Services::open(settings).await?;
    let mut events = services.engine.subscribe();
    let engine = services.engine.clone();
    let mut round = tokio::spawn(async move { engine.run_once().await });
    let bars = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:>34} {pos:>9} records  {per_sec:>14}  {elapsed}")?;
    let mut phases: HashMap<String, ProgressBar> = HashMap::new();
    let started = Instant::now();
    let report = loop {
        tokio::select! {
            event = events.recv() => {
                if let Ok(SyncEventKind::History(entry)) = event.map(|e| e.kind) {
                    let phase = format!("{} {}", entry.module, entry.direction);
                    let bar = phases.entry(phase.clone()).or_insert_with(|| {
                        let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()));
                        bar.set_prefix(phase);
                        bar
                    });
                    bar.inc((entry.added + entry.updated + entry.failed) as u64);
                }
            }
            done = &mut round => break done??,
        }
    };
    for bar in phases.values() {
        bar.finish();
    }
    if let Some(why) = report.idle {
        bail!("nothing synced: {why}");
    }
    let (p, q) = (report.pulled, report.pushed);
    println!(
        "Salesforce → desk: {} added, {} updated, {} failed; desk → Salesforce: {} added, {} updated, {} failed ({:.1} s)",
        p.added,
        p.updated,
        p.failed,
        q.added,
        q.updated,
        q.failed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
