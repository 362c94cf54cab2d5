//! `tandem bench sync`: the first sync of a seeded org into an empty desk, measured.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;
use entity::contact;
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
use secrecy::SecretString;

use crate::config::{DatabaseUrl, Settings};
use crate::domain::{ContactId, ContactPatch, Module, SyncType};
use crate::startup::{Services, open_store};
use crate::store::PageRequest;
use crate::sync::{Connect, ConnectAuth, SyncEventKind, worker};

/// Records one phase (direction and module) moved, and when its first and last batch ended.
struct Phase {
    name: String,
    first: Instant,
    last: Instant,
    records: u64,
}

pub struct BenchOptions {
    pub contacts: usize,
    pub database_url: Option<String>,
    pub sim_url: Option<String>,
    pub latency_samples: usize,
}

/// The simulator, run as its own process so its memory is not counted as ours.
pub(super) struct Simulator {
    child: Option<Child>,
    pub(super) url: String,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(super) fn start_simulator(contacts: usize) -> anyhow::Result<Simulator> {
    let exe = std::env::current_exe()?;
    let binary = exe.with_file_name("salesforce-sim");
    if !binary.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p salesforce-sim` (or pass --sim-url)",
            binary.display()
        );
    }
    let mut child = Command::new(&binary)
        .args([
            "--port",
            "0",
            "--seed",
            "1",
            "--records",
            &contacts.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("the simulator has no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        if let Some(url) = line?.strip_prefix("salesforce-sim listening on ") {
            // Keep reading: a closed pipe would end the simulator at its next line of output.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(Simulator {
                child: Some(child),
                url: url.trim().to_owned(),
            });
        }
    }
    bail!("the simulator exited before it was listening")
}

fn peak_rss_mb() -> Option<f64> {
    status_mb("self", "VmHWM:")
}

/// A memory figure of a process (`self` or a pid) from /proc, in MB.
pub(super) fn status_mb(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn settings_for(dir: &std::path::Path, url: DatabaseUrl) -> Settings {
    let mut settings = Settings {
        data_dir: dir.to_owned(),
        database_url: Some(url),
        ..Default::default()
    };
    settings.sync.worker = false;
    settings
}

/// A database of the requested kind that nobody else uses.
async fn fresh_database(
    base: &Option<String>,
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<DatabaseUrl> {
    use sea_orm::ConnectionTrait;
    match base {
        Some(url) if url.starts_with("postgres") => {
            let db_name = format!("tandem_bench_{}_{name}", run_id(dir));
            let admin = sea_orm::Database::connect(url.as_str()).await?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {db_name}"))
                .await?;
            // The database named in its place; the parameters (`?sslmode=…`) kept.
            let (address, parameters) = match url.split_once('?') {
                Some((address, parameters)) => (address, format!("?{parameters}")),
                None => (url.as_str(), String::new()),
            };
            // What comes before the path: `postgres://user@host:port`, with a database named
            // or not.
            let authority = address.find("://").map_or(0, |at| at + 3);
            let prefix = match address[authority..].find('/') {
                Some(path) => &address[..authority + path],
                None => address,
            };
            Ok(DatabaseUrl::new(format!("{prefix}/{db_name}{parameters}")))
        }
        _ => Ok(DatabaseUrl::new(format!(
            "sqlite://{}?mode=rwc",
            dir.join(format!("{name}.db")).display()
        ))),
    }
}

pub async fn sync(options: BenchOptions) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    // Cleaned up however the run ends: a failed run leaves no database of its own behind.
    let measured = measure_sync(&options, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let dropped = drop_databases(&options.database_url, &run_id(&dir)).await;
    measured.and(dropped)
}

async fn measure_sync(options: &BenchOptions, dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = dir.to_path_buf();
    let sim = match &options.sim_url {
        Some(url) => Simulator {
            child: None,
            url: url.clone(),
        },
        None => start_simulator(options.contacts)?,
    };
    let url = fresh_database(&options.database_url, &dir, "sync").await?;
    let backend = if url.is_sqlite() {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let settings = settings_for(&dir, url);
    let services = Services::open(&settings).await?;
    services
        .integrations
        .connect(Connect {
            login_url: sim.url.clone(),
            auth: ConnectAuth::Password {
                username: "integration@tandem.test".into(),
                password: SecretString::from("tandem"),
                client_id: "tandem-sim".into(),
                client_secret: SecretString::from("tandem-sim-secret"),
            },
            sync_type: Some(SyncType::TwoWay),
        })
        .await?;
    // Connecting asks the REST API once: not the import's.
    let connecting = services.integrations.client().await?.calls_made();
    services.integrations.start_sync().await?;

    let mut events = services.engine.subscribe();
    let phases: Arc<Mutex<Vec<Phase>>> = Arc::default();
    let seen = phases.clone();
    tokio::spawn(async move {
        // A phase begins where the one before it ended (the first at the start of the
        // round), not at its own first batch, whose records it counts.
        let mut previous = Instant::now();
        while let Ok(event) = events.recv().await {
            if let SyncEventKind::History(h) = event.kind {
                let name = format!("{} {}", h.module, h.direction);
                let n = (h.added + h.updated + h.failed) as u64;
                let now = Instant::now();
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                match seen.iter_mut().find(|p| p.name == name) {
                    Some(phase) => {
                        phase.last = now;
                        phase.records += n;
                    }
                    None => seen.push(Phase {
                        name,
                        first: previous,
                        last: now,
                        records: n,
                    }),
                }
                previous = now;
            }
        }
    });
    let started = Instant::now();
    let report = services.engine.run_once().await?;
    let import = started.elapsed();
    let first_sync_phases = std::mem::take(&mut *phases.lock().unwrap_or_else(|p| p.into_inner()));
    let imported = (report.pulled.added + report.pulled.updated) as f64;
    let client = services.integrations.client().await?;
    let calls = client.calls_made() - connecting;
    let accounts = services.store.link_count(Module::Accounts).await?;
    let contacts = services.store.link_count(Module::Contacts).await?;
    // Query pages of 2,000, and one describe per object for the fields the profile reads.
    let minimum = accounts.div_ceil(2000) + contacts.div_ceil(2000) + 2;

    println!("first sync of {contacts} contacts and {accounts} accounts into {backend}");
    println!(
        "  import: {:.2} s, {:.0} records/s",
        import.as_secs_f64(),
        imported / import.as_secs_f64()
    );
    println!(
        "  Salesforce API calls: {calls} (minimum {minimum}: query pages of 2,000 and two describes; nothing to export)"
    );

    let worker = worker::spawn(services.engine.clone(), services.store.clone(), 3600);
    let mut samples = Vec::with_capacity(options.latency_samples);
    let page = services
        .store
        .contacts(
            &Default::default(),
            PageRequest {
                after: None,
                first: 1,
            },
        )
        .await?;
    let desk = page
        .items
        .first()
        .ok_or_else(|| anyhow!("no contact was imported"))?;
    let link = services
        .store
        .links_by_desk(Module::Contacts, &[desk.id.0])
        .await?;
    let sf_id = crate::domain::SalesforceId::parse(&link[&desk.id.0].salesforce_id)?;
    for n in 0..options.latency_samples {
        let title = format!("bench-{n}");
        let patch = ContactPatch {
            title: Some(Some(title.clone())),
            ..Default::default()
        };
        let at = Instant::now();
        services
            .store
            .update_contact(ContactId(desk.id.0), &patch, None)
            .await?;
        loop {
            let record = client.get("Contact", &sf_id, Some(&["Title"])).await?;
            if record
                .as_ref()
                .and_then(|r| r.get("Title"))
                .and_then(|v| v.as_str())
                == Some(title.as_str())
            {
                break;
            }
            if at.elapsed() > Duration::from_secs(10) {
                bail!("a desk change did not reach Salesforce within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        samples.push(at.elapsed());
    }
    samples.sort();
    println!(
        "  desk change → Salesforce (worker, {} samples): p50 {:.0} ms, p99 {:.0} ms",
        samples.len(),
        percentile(&samples, 50.0).as_secs_f64() * 1e3,
        percentile(&samples, 99.0).as_secs_f64() * 1e3
    );
    for phase in &first_sync_phases {
        let secs = phase
            .last
            .duration_since(phase.first)
            .as_secs_f64()
            .max(1e-3);
        println!(
            "  phase {}: {} records, {:.0} records/s",
            phase.name,
            phase.records,
            phase.records as f64 / secs
        );
    }
    match peak_rss_mb() {
        Some(mb) => println!("  peak RSS: {mb:.0} MB"),
        None => println!("  peak RSS: unavailable on this platform"),
    }

    // After the peak is read: the databases measured here have page caches of their own.
    // SQLite's memory limit is the process's, so the import's connections close first (the
    // event watcher lets go of its own at its next tick), and the synced rows are read back
    // through a plain connection with a small cache: the raw inserts get what the import had.
    worker.abort();
    let _ = worker.await;
    drop(services);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rate = imported / import.as_secs_f64();
    let raw = raw_insert_rate(&options.database_url, &dir, contacts as usize).await?;
    println!(
        "  raw batched insert of bare contact rows (three short fields) into a fresh database of the same kind: {raw:.0} rows/s; sync import / raw = {:.2}",
        rate / raw
    );
    let source = sea_orm::Database::connect(settings.database_url().expose()).await?;
    let same = same_rows_rate(&source, &options.database_url, &dir).await?;
    println!(
        "  raw batched insert of the rows this import wrote (records and their links) into a fresh database of the same kind: {same:.0} records/s; sync import / raw = {:.2}",
        rate / same
    );
    source.close().await?;
    Ok(())
}

/// Drops the PostgreSQL databases this run created.
async fn drop_databases(base: &Option<String>, run: &str) -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, Statement};
    let Some(url) = base.as_ref().filter(|u| u.starts_with("postgres")) else {
        return Ok(());
    };
    let admin = sea_orm::Database::connect(url.as_str()).await?;
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT datname FROM pg_database WHERE datname LIKE 'tandem_bench_{run}_%'"),
        ))
        .await?;
    for row in rows {
        let name: String = row.try_get("", "datname")?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
    }
    Ok(())
}

/// Rows per second for plain batched inserts of contacts (200 per statement, 1,000 a
/// transaction, as the import commits) into a fresh database of the same kind.
async fn raw_insert_rate(
    base: &Option<String>,
    dir: &std::path::Path,
    rows: usize,
) -> anyhow::Result<f64> {
    let url = fresh_database(base, dir, "raw").await?;
    let store = open_store(&settings_for(dir, url)).await?;
    let db = store.connection();
    let now = Utc::now();
    let started = Instant::now();
    for batch in (0..rows.max(1)).collect::<Vec<_>>().chunks(1000) {
        let txn = db.begin().await?;
        for chunk in batch.chunks(200) {
            let models = chunk.iter().map(|n| contact::ActiveModel {
                first_name: Set(Some("Bench".into())),
                last_name: Set(format!("Raw{n}")),
                email: Set(Some(format!("raw{n}@example.com"))),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            });
            contact::Entity::insert_many(models).exec(&txn).await?;
        }
        txn.commit().await?;
    }
    Ok(rows.max(1) as f64 / started.elapsed().as_secs_f64())
}

/// Records per second for inserting the very rows the first sync wrote — accounts, contacts
/// and the link of each, with the Salesforce record it keeps — into a fresh database of the
/// same kind, 1,000 records and their links a transaction as the import writes them. The
/// rows are read page by page from the synced database; only the inserts are timed.
async fn same_rows_rate(
    from: &sea_orm::DatabaseConnection,
    base: &Option<String>,
    dir: &std::path::Path,
) -> anyhow::Result<f64> {
    use entity::account;

    let url = fresh_database(base, dir, "same").await?;
    let target = open_store(&settings_for(dir, url)).await?;
    let to = target.connection();
    let mut copied = Copied::default();
    copy_module::<account::Entity, _>(
        from,
        to,
        Module::Accounts,
        account::Column::Id,
        |a: &account::Model| a.id.0,
        &mut copied,
    )
    .await?;
    copy_module::<contact::Entity, _>(
        from,
        to,
        Module::Contacts,
        contact::Column::Id,
        |c: &contact::Model| c.id.0,
        &mut copied,
    )
    .await?;
    Ok(copied.records.max(1) as f64 / copied.spent.as_secs_f64().max(1e-9))
}

/// Records copied, and the time their inserts took.
#[derive(Default)]
struct Copied {
    records: usize,
    spent: Duration,
}

/// Copies one module's desk records with their links, 1,000 records a transaction.
async fn copy_module<E, A>(
    from: &sea_orm::DatabaseConnection,
    to: &sea_orm::DatabaseConnection,
    module: Module,
    id: E::Column,
    id_of: impl Fn(&E::Model) -> i64,
    copied: &mut Copied,
) -> anyhow::Result<()>
where
    E: EntityTrait<ActiveModel = A>,
    E::Model: sea_orm::IntoActiveModel<A>,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
{
    use entity::record_link;
    use sea_orm::{
        ActiveModelTrait, ColumnTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    };

    let mut after = 0i64;
    loop {
        let page = E::find()
            .filter(id.gt(after))
            .order_by_asc(id)
            .limit(1000)
            .all(from)
            .await?;
        let Some(last) = page.last().map(&id_of) else {
            return Ok(());
        };
        let links = record_link::Entity::find()
            .filter(record_link::Column::Module.eq(module.as_str()))
            .filter(record_link::Column::DeskId.gt(after))
            .filter(record_link::Column::DeskId.lte(last))
            .all(from)
            .await?;
        let started = Instant::now();
        let txn = to.begin().await?;
        // On the generic plans the import's batches use (`Store::begin_sync`).
        if to.get_database_backend() == sea_orm::DbBackend::Postgres {
            sea_orm::ConnectionTrait::execute_unprepared(
                &txn,
                "SET LOCAL plan_cache_mode = force_generic_plan",
            )
            .await?;
        }
        copied.records += page.len();
        E::insert_many(page.into_iter().map(|r| r.into_active_model().reset_all()))
            .exec_without_returning(&txn)
            .await?;
        record_link::Entity::insert_many(
            links.into_iter().map(|l| l.into_active_model().reset_all()),
        )
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        copied.spent += started.elapsed();
        after = last;
    }
}

/// The run's id: the random part of its scratch directory's name.
fn run_id(dir: &std::path::Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("tandem-bench-"))
        .unwrap_or("run")
        .to_owned()
}

pub(super) fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tandem-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
