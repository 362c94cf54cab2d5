//! Wiring: one `Application::build` used by `main`, the CLI and the tests alike.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::{Authenticator, VerifyingKey};
use crate::config::Settings;
use crate::domain::RetryPolicy;
use crate::graphql::Gateway;
use crate::http::{AppState, metrics::Metrics, observe, routes};
use crate::store::Store;
use crate::sync::{EngineSettings, Integrations, SyncEngine, Vault, worker};

pub struct Application {
    port: u16,
    store: Store,
    integrations: Arc<Integrations>,
    engine: Arc<SyncEngine>,
    server: Server,
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// How long a stopping server waits, once its requests are done (5 s at most), for the sync
/// round running in it to finish its batch: told to at the signal, it has 25 to 30 s.
const ROUND_GRACE: std::time::Duration = std::time::Duration::from_secs(25);

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        // What cannot serve is found before the database is touched: a gateway refused for
        // its key or its port applies no migration under replicas still running.
        let auth = Arc::new(authenticator(settings)?);
        let listener = listen(&settings.http.host, settings.http.port).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another process holds the port: choose another with `demo --port`, \
                     http.port or TANDEM_HTTP__PORT)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!(
                "cannot listen on {}:{}{hint}",
                settings.http.host, settings.http.port
            ))
        })?;
        let Services {
            store,
            integrations,
            engine,
            ..
        } = Services::open(settings).await?;
        let state = AppState {
            schema: Gateway::new(
                store.clone(),
                integrations.clone(),
                engine.clone(),
                &settings.graphql,
            ),
            store: store.clone(),
            auth,
            metrics: Arc::new(Metrics::default()),
            graphql: settings.graphql.clone(),
            websocket: settings.websocket.clone(),
            body_limit: settings.http.body_limit,
            body_timeout: Duration::from_secs(settings.http.body_timeout_secs),
            sockets: Arc::default(),
        };
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state);
        let origins: Arc<[String]> = settings.http.allowed_origins.clone().into();
        let mut server = HttpServer::new(move || {
            let origins = origins.clone();
            App::new()
                .app_data(data.clone())
                .wrap(from_fn(observe))
                .configure(move |cfg| routes(cfg, &origins))
        })
        .shutdown_timeout(5)
        // SIGINT and SIGTERM alike stop it gracefully (`run_until_signalled`); actix's own
        // handling would drop requests in flight on SIGINT.
        .disable_signals();
        if let Some(workers) = settings.http.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        // Once the server listens: a gateway that cannot runs no round.
        let worker = settings.sync.worker.then(|| {
            worker::spawn(
                engine.clone(),
                store.clone(),
                settings.sync.poll_interval_secs,
            )
        });
        Ok(Self {
            port,
            store,
            integrations,
            engine,
            server,
            worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn engine(&self) -> Arc<SyncEngine> {
        self.engine.clone()
    }

    pub fn integrations(&self) -> Arc<Integrations> {
        self.integrations.clone()
    }

    /// Stops the server from outside, as a signal does.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, as [`Application::run_until_stopped`]: requests in flight
    /// have 5 s to finish, a sync round its batch. Asked a second time, the process quits at
    /// once, with 128 and the signal's number (130 for SIGINT, 143 for SIGTERM).
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let integrations = self.integrations.clone();
        let _signals = AbortOnDrop(tokio::spawn(async move {
            stop_signal().await;
            tracing::info!(
                "stopping: requests in flight have 5 s to finish, a sync round its batch (signal again to quit at once)"
            );
            // At once, not after the requests: the round (the worker's, or a retry a request
            // runs) ends at its batch while they finish, and none starts meanwhile.
            integrations.close_here();
            tokio::spawn(handle.stop(true));
            let again = stop_signal().await;
            std::process::exit(128 + again);
        }));
        self.run_until_stopped().await
    }

    /// Serves until `handle().stop`, then lets the sync round running here finish its batch
    /// before the worker goes.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(worker) = self.worker {
            let quiet = self.integrations.wind_down(ROUND_GRACE).await;
            if quiet.is_none() {
                tracing::warn!(
                    "the sync round running here did not finish its batch within {ROUND_GRACE:?}; it ends with the process, and the next start carries on from its last commit"
                );
            }
            worker.abort();
            let _ = worker.await;
        }
        self.store.flush_announcements().await;
        served
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves at the next SIGTERM or SIGINT.
/// Waits for SIGTERM or SIGINT, and says which: its number.
async fn stop_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => 15,
                _ = interrupt.recv() => 2,
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(
                "cannot listen for SIGTERM and SIGINT ({e}); stop the process another way"
            );
            std::future::pending::<i32>().await
        }
    }
}

/// The storage and sync services, wired the same way for the server and the CLI.
pub struct Services {
    pub store: Store,
    pub integrations: Arc<Integrations>,
    pub engine: Arc<SyncEngine>,
    /// Why the saved Salesforce credentials cannot be opened with this process's key, when
    /// they cannot.
    pub sealed_away: Option<String>,
}

impl Services {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        // Before the database is migrated: a process that cannot have its key changes
        // nothing others share.
        let vault = vault(settings)?;
        let store = open_store(settings).await?;
        let sealed_away = match store.integration().await?.and_then(|m| m.secrets) {
            Some(sealed) => vault.open(&sealed).err().map(|e| e.to_string()),
            None => None,
        };
        // Said at the start, where whoever runs the process looks, not first at a round.
        if let Some(e) = &sealed_away {
            tracing::warn!("{e}; until then nothing syncs");
        }
        let integrations = Arc::new(Integrations::new(
            store.clone(),
            vault,
            settings.sync.api_version.as_str().to_owned(),
        ));
        let engine = Arc::new(SyncEngine::new(
            store.clone(),
            integrations.clone(),
            EngineSettings {
                batch: settings.sync.batch_size,
                history_retention: chrono::Duration::days(i64::from(settings.sync.history_days)),
                overlap: Duration::from_secs(settings.sync.poll_overlap_secs),
                retry: RetryPolicy {
                    backoff: Duration::from_secs(settings.sync.retry_backoff_secs),
                    max_attempts: settings.sync.retry_max_attempts.max(1),
                },
                unanswered_create: chrono::Duration::seconds(
                    settings.sync.unanswered_create_secs as i64,
                ),
                ..Default::default()
            },
        ));
        Ok(Self {
            store,
            integrations,
            engine,
            sealed_away,
        })
    }
}

/// Connects to the configured database, making the data dir for an SQLite file.
pub async fn connect_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = settings.database_url();
    if url.is_sqlite() {
        make_data_dir(&settings.data_dir)?;
        // A file elsewhere (`sqlite://var/desk.db`) gets its directory too.
        if let Some(dir) = url.sqlite_dir() {
            make_private_dir(&dir).with_context(|| {
                format!(
                    "cannot create the database's directory {}",
                    absolute(&dir).display()
                )
            })?;
        }
    }
    // sea-orm's own message may quote the whole URL: it is shown redacted.
    Store::connect(&url).await.map_err(|e| {
        let reason = e.to_string().replace(url.expose(), &url.redacted());
        let missing = url.sqlite_path().is_some_and(|file| !file.exists());
        let hint = if missing && !url.expose().contains("mode=") {
            " (an SQLite file is made only when the URL asks for it: add ?mode=rwc)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot open database {}: {reason}{hint}", url.redacted())
    })
}

/// Connects, migrates, and makes sure the default profiles exist.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = connect_store(settings).await?;
    store.migrate_up().await.context("migrating the database")?;
    store
        .ensure_default_profiles()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(store)
}

/// The token verifier the settings call for: an RS256 public key, an HS256 secret, or the
/// secret generated once and kept in the data dir.
pub fn authenticator(settings: &Settings) -> anyhow::Result<Authenticator> {
    let auth = &settings.auth;
    let (key, source) = if let Some(path) = &auth.public_key_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read auth.public_key_file {}", path.display()))?;
        let source = format!("auth.public_key_file {}", path.display());
        (VerifyingKey::Rs256(pem), source)
    } else if let Some(secret) = &auth.jwt_secret {
        (
            VerifyingKey::Hs256(secret.clone()),
            "auth.jwt_secret".into(),
        )
    } else {
        let kept = generated_secret(&settings.data_dir, "jwt-secret")?;
        let path = settings.data_dir.join("jwt-secret");
        (VerifyingKey::Hs256(kept), path.display().to_string())
    };
    Authenticator::new(key, auth.issuer.clone(), auth.audience.clone())
        .map_err(|e| anyhow::anyhow!("{source}: {e}"))
}

/// Makes the data dir where it is not there yet, readable by its owner alone: it holds the
/// desk's data (an SQLite file), the keys and the credentials they seal. A path relative to
/// the working directory is named in full, as a service manager runs from elsewhere.
pub fn make_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    make_private_dir(data_dir).with_context(|| {
        format!(
            "cannot create data dir {} (data_dir is relative to the working directory)",
            absolute(data_dir).display()
        )
    })
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// `path` in full, or as given where the working directory cannot be read.
pub fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The key that seals Salesforce credentials: configured, or generated once into the data dir.
pub fn vault(settings: &Settings) -> anyhow::Result<Vault> {
    let (key, from, source) = match &settings.sync.encryption_key {
        Some(key) => (
            key.clone(),
            "sync.encryption_key".to_owned(),
            "the key set in sync.encryption_key".to_owned(),
        ),
        None => {
            let path = absolute(&settings.data_dir.join("encryption-key"));
            let (key, made) = secret_kept_or_made(&settings.data_dir, "encryption-key")?;
            let source = if made {
                format!(
                    "the key generated into {} as this process started ({}; sync.encryption_key is not set, and the data dir held no key file)",
                    path.display(),
                    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
                )
            } else {
                format!("the key in {}", path.display())
            };
            (key, path.display().to_string(), source)
        }
    };
    Ok(Vault::from_hex(key.expose_secret())
        .with_context(|| from)?
        .from_source(&source))
}

/// A random 32-byte secret, hex-encoded, kept in `<data_dir>/<name>` and reused from there.
/// Processes starting together on a new data dir all end up with the one secret kept.
pub fn generated_secret(data_dir: &Path, name: &str) -> anyhow::Result<SecretString> {
    Ok(secret_kept_or_made(data_dir, name)?.0)
}

/// [`generated_secret`], and whether this process made it.
fn secret_kept_or_made(data_dir: &Path, name: &str) -> anyhow::Result<(SecretString, bool)> {
    let path = data_dir.join(name);
    if let Some(kept) = kept_secret(&path)? {
        return Ok((kept, false));
    }
    make_data_dir(data_dir)?;
    let made = keep_new(&path, &Vault::generate_key())?;
    if made {
        tracing::info!(path = %path.display(), "generated a secret");
    }
    // This process's secret or another's, written whole either way.
    let kept = kept_secret(&path)?
        .with_context(|| format!("{} went away as it was made", path.display()))?;
    Ok((kept, made))
}

/// The secret kept at `path`, or `None` when there is no such file.
fn kept_secret(path: &Path) -> anyhow::Result<Option<SecretString>> {
    match std::fs::read_to_string(path) {
        Ok(kept) => {
            let kept = kept.trim();
            anyhow::ensure!(
                !kept.is_empty(),
                "{} is empty; remove it to have a new secret generated",
                path.display()
            );
            Ok(Some(SecretString::from(kept.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", absolute(path).display())),
    }
}

/// Writes `contents` to `path` unless a file is there already, and says whether it did. The
/// contents go whole into a draft only the owner may read, which is then linked into place:
/// no reader ever sees the file half written, and of processes racing, one wins.
fn keep_new(path: &Path, contents: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut draft = path.as_os_str().to_owned();
    draft.push(format!(
        ".{}-{:08x}.draft",
        std::process::id(),
        rand::random::<u32>()
    ));
    let draft = std::path::PathBuf::from(draft);
    let write_new = |at: &Path| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(at).and_then(|mut file| {
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        })
    };
    let written = write_new(&draft);
    let linked = written.and_then(|()| std::fs::hard_link(&draft, path));
    let _ = std::fs::remove_file(&draft);
    // A file system without hard links (some network shares): written in place, in one
    // write; of processes racing, still one wins.
    let linked = match linked {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            write_new(path)
        }
        linked => linked,
    };
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot write {}", absolute(path).display())),
    }
}

/// How many connections wait to be accepted, as actix's own listeners allow: thousands of
/// dashboards reconnecting at once (after a restart) would overflow the 128 `std` asks for,
/// and their connections be dropped until they try again.
const BACKLOG: i32 = 2048;

/// A listening socket on the first address `host` resolves to that takes one, as
/// `TcpListener::bind` chooses, with a backlog of [`BACKLOG`].
fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::ToSocketAddrs;
    let mut last = None;
    for address in (host, port).to_socket_addrs()? {
        let opened = Socket::new(
            Domain::for_address(address),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .and_then(|socket| {
            // As `std` does: a restarted gateway takes its port back at once.
            #[cfg(unix)]
            socket.set_reuse_address(true)?;
            socket.bind(&address.into())?;
            socket.listen(BACKLOG)?;
            Ok(socket)
        });
        match opened {
            Ok(socket) => return Ok(socket.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the host resolves to no address",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_data_dir_made_here_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a").join(".tandem");
        make_data_dir(&dir).unwrap();
        for made in [&dir, &parent.path().join("a")] {
            let mode = std::fs::metadata(made).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", made.display());
        }
    }

    #[test]
    fn processes_starting_together_on_a_new_data_dir_keep_one_secret() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let secrets: Vec<String> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| generated_secret(dir.path(), "encryption-key")))
                    .collect();
                racers
                    .into_iter()
                    .map(|racer| racer.join().unwrap().unwrap().expose_secret().to_owned())
                    .collect()
            });
            assert_eq!(secrets[0].len(), 64);
            assert!(secrets.iter().all(|s| *s == secrets[0]), "{secrets:?}");
            let kept = std::fs::read_to_string(dir.path().join("encryption-key")).unwrap();
            assert_eq!(kept, secrets[0]);
            let files = std::fs::read_dir(dir.path()).unwrap().count();
            assert_eq!(files, 1, "no drafts are left behind");
        }
    }

    #[test]
    fn an_empty_secret_file_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwt-secret"), "\n").unwrap();
        let message = generated_secret(dir.path(), "jwt-secret")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("jwt-secret is empty; remove it"),
            "{message}"
        );
    }
}
