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
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let Services {
            store,
            integrations,
            engine,
        } = Services::open(settings).await?;
        let auth = Arc::new(authenticator(settings)?);
        if settings.sync.worker {
            worker::spawn(
                engine.clone(),
                store.clone(),
                settings.sync.poll_interval_secs,
            );
        }
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
        };
        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    settings.http.host, settings.http.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(from_fn(observe))
                .configure(routes)
        })
        .shutdown_timeout(5);
        if let Some(workers) = settings.http.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            store,
            integrations,
            engine,
            server,
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

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The storage and sync services, wired the same way for the server and the CLI.
pub struct Services {
    pub store: Store,
    pub integrations: Arc<Integrations>,
    pub engine: Arc<SyncEngine>,
}

impl Services {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let store = open_store(settings).await?;
        let integrations = Arc::new(Integrations::new(
            store.clone(),
            vault(settings)?,
            settings.sync.api_version.as_str().to_owned(),
        ));
        let engine = Arc::new(SyncEngine::new(
            store.clone(),
            integrations.clone(),
            EngineSettings {
                batch: settings.sync.batch_size.clamp(1, 200),
                history_retention: chrono::Duration::days(i64::from(settings.sync.history_days)),
                retry: RetryPolicy {
                    backoff: Duration::from_secs(settings.sync.retry_backoff_secs),
                    max_attempts: settings.sync.retry_max_attempts.max(1),
                },
                ..Default::default()
            },
        ));
        Ok(Self {
            store,
            integrations,
            engine,
        })
    }
}

/// Connects to the configured database, making the data dir for an SQLite file.
pub async fn connect_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = settings.database_url();
    if url.is_sqlite() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data dir {}", settings.data_dir.display()))?;
    }
    // sea-orm's own message may quote the whole URL: it is shown redacted.
    Store::connect(&url).await.map_err(|e| {
        let reason = e.to_string().replace(url.expose(), &url.redacted());
        anyhow::anyhow!("cannot open database {}: {reason}", url.redacted())
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
    let key = if let Some(path) = &auth.public_key_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read auth.public_key_file {}", path.display()))?;
        VerifyingKey::Rs256(pem)
    } else if let Some(secret) = &auth.jwt_secret {
        VerifyingKey::Hs256(secret.clone())
    } else {
        VerifyingKey::Hs256(generated_secret(&settings.data_dir, "jwt-secret")?)
    };
    Authenticator::new(key, auth.issuer.clone(), auth.audience.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The key that seals Salesforce credentials: configured, or generated once into the data dir.
pub fn vault(settings: &Settings) -> anyhow::Result<Vault> {
    let key = match &settings.sync.encryption_key {
        Some(key) => key.clone(),
        None => generated_secret(&settings.data_dir, "encryption-key")?,
    };
    Vault::from_hex(key.expose_secret()).context("sync.encryption_key")
}

/// A random 32-byte secret, hex-encoded, kept in `<data_dir>/<name>` and reused from there.
fn generated_secret(data_dir: &Path, name: &str) -> anyhow::Result<SecretString> {
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(existing.trim().to_owned()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let secret = Vault::generate_key();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a secret");
    Ok(SecretString::from(secret))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
