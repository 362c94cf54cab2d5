use std::sync::Arc;

use entity::integration;
use sea_orm::ActiveValue::Set;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::mapping::{self, Mapping};
use super::{Vault, VaultError};
use crate::domain::{FirstSync, IntegrationStatus, Invalid, Module, SyncType};
use crate::salesforce::{ClientConfig, Credentials, OnRotation, SalesforceClient, SalesforceError};
use crate::store::{Checked, NewIntegration, RoundLock, Store, StoreError};

/// How an administrator signs Tandem in to Salesforce.
pub enum ConnectAuth {
    Password {
        username: String,
        password: SecretString,
        client_id: String,
        client_secret: SecretString,
    },
    JwtBearer {
        username: String,
        client_id: String,
        private_key_pem: SecretString,
    },
    RefreshToken {
        refresh_token: SecretString,
        client_id: String,
        client_secret: SecretString,
    },
}

pub struct Connect {
    pub login_url: String,
    pub auth: ConnectAuth,
    /// `None`: the sync type the same org had, or two-way for a new connection.
    pub sync_type: Option<SyncType>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    Refused(String),
    #[error("Salesforce is not connected; run connectSalesforce first")]
    NotConnected,
    #[error("{0}")]
    WrongState(String),
    /// A field a module's mappings name that Salesforce no longer shows the integration
    /// user: that module stops until it is back or mapped elsewhere; the other goes on.
    #[error("{0}")]
    FieldGone(String),
    /// A round ended early, without failing: the sync was paused or retyped, or its
    /// connection replaced or removed, while it ran.
    #[error(
        "the sync was paused, or its Salesforce connection replaced or removed, during the round"
    )]
    Stopped,
    /// The connection holding the database's round lock went away during the round, so
    /// another process may have started one beside it.
    #[error(
        "the database connection holding the sync round lock closed during the round (a database restart or failover, or an idle_in_transaction_session_timeout shorter than a round); the round stopped where it was, so that no other process's round runs beside it, and the next round carries on"
    )]
    LockLost,
    #[error(transparent)]
    Upstream(#[from] SalesforceError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// An error with what else a person must know of it: it answers as the error does, with
    /// the note after its message.
    #[error("{error}. {note}")]
    Noted {
        error: Box<SyncError>,
        note: &'static str,
    },
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        match e {
            // Deleted, by this process or another, since it was last read: as it is to anyone
            // asking now.
            StoreError::NotFound(what) if what == crate::store::INTEGRATION => {
                SyncError::NotConnected
            }
            e => SyncError::Store(e),
        }
    }
}

/// The Salesforce connection: saved encrypted, verified before saving, one client shared.
pub struct Integrations {
    store: Store,
    vault: Vault,
    api_version: String,
    client: Arc<RwLock<Option<CachedClient>>>,
    clients_made: std::sync::atomic::AtomicU64,
    view: RwLock<KeptView>,
    /// Held by a sync round for its whole run, and by connect and delete while they replace
    /// the connection: what a round read from the old connection is written before the new
    /// one is saved, or not at all. The store's round lock does the same across processes.
    rounds: tokio::sync::Mutex<()>,
    /// Bumped when the connection is replaced or removed, so that a running round stops at
    /// its next page instead of keeping the replacement waiting.
    generation: std::sync::atomic::AtomicU64,
    /// Set when this process begins to stop: no round starts here after.
    closing: std::sync::atomic::AtomicBool,
}

/// A client, with the sealed credentials it was made from: another process that connects
/// seals new ones (every seal has a fresh nonce), which tells this one to make a new client.
struct CachedClient {
    sealed: Vec<u8>,
    /// Which connection the client signs in to, the refresh token aside (see [`basis`]).
    basis: u64,
    /// Tells this client's rotations from another's.
    id: u64,
    checked: std::time::Instant,
    /// Whose eyes the client reads through ([`OrgView::connection`]).
    connection: String,
    client: Arc<SalesforceClient>,
}

/// In a connection's sealed secrets, set once the refresh token saved is one Salesforce
/// rotated in, which deleting the connection voids, rather than the one a person gave.
const ISSUED: &str = "refreshTokenIssued";

/// A fingerprint of a saved connection without its refresh token: when only the token
/// differs from the client's, another process saved one Salesforce rotated in, and the client
/// takes it instead of signing in again — which would rotate it once more, and void the one
/// the other process holds.
fn basis(model: &integration::Model, secrets: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut rest = secrets.clone();
    if let Some(map) = rest.as_object_mut() {
        map.remove("refreshToken");
        map.remove(ISSUED);
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &model.login_url,
        &model.auth_kind,
        &model.username,
        &model.client_id,
        &model.org_id,
        rest.to_string(),
    )
        .hash(&mut h);
    h.finish()
}

/// Takes into `secrets` the refresh token `client` holds, when Salesforce rotated in another
/// for the one they name: `true` when it did.
async fn take_rotated(client: &SalesforceClient, secrets: &mut Value) -> bool {
    if let Some(named) = secrets.get("refreshToken").and_then(Value::as_str)
        && let Some(now) = client.refresh_token().await
        && now.expose_secret() != named
    {
        secrets["refreshToken"] = Value::String(now.expose_secret().to_owned());
        secrets[ISSUED] = Value::Bool(true);
        return true;
    }
    false
}

/// Saves the refresh token client `id` was given in rotation (`new`) in place of the one it
/// replaces, the saved connection still being the one that used `old`; that client, already
/// using `new`, stays cached.
async fn keep_rotated(
    store: &Store,
    vault: &Vault,
    cache: &RwLock<Option<CachedClient>>,
    id: u64,
    old: &SecretString,
    new: &SecretString,
) -> Result<(), SyncError> {
    let Some(sealed) = store.integration().await?.and_then(|m| m.secrets) else {
        return Ok(());
    };
    let mut secrets: Value = vault.open_json(&sealed)?;
    if secrets["refreshToken"].as_str() != Some(old.expose_secret()) {
        return Ok(());
    }
    secrets["refreshToken"] = Value::String(new.expose_secret().to_owned());
    secrets[ISSUED] = Value::Bool(true);
    let resealed = vault.seal(secrets.to_string().as_bytes());
    // The client runs this holding its session, which `client_of` may be waiting for with
    // the cache locked: when the cache is busy, the next look at it adopts `new` instead.
    if store.replace_secrets(&sealed, resealed.clone()).await?
        && let Ok(mut cache) = cache.try_write()
        && let Some(cached) = cache.as_mut()
        && cached.id == id
    {
        cached.sealed = resealed;
    }
    Ok(())
}

/// A sync round's hold on the connection, in this process and in every other one on the
/// database; dropping it lets the next round (or a replacement of the connection) go ahead.
pub struct RoundGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    shared: RoundLock,
}

impl RoundGuard<'_> {
    /// The hold across processes, for the round to ask whether it still has it.
    pub fn shared(&self) -> RoundLock {
        self.shared.clone()
    }
}

/// What the panels need of the connection: where the org is, which side is master, and the
/// mappings.
#[derive(Debug, Clone)]
pub struct OrgView {
    /// Whose eyes Salesforce is read through: the org's id (`00D…`, where the sign-in named
    /// it), its instance URL and the user signed in. A sandbox copied from production keeps
    /// the records' ids; refreshed, it keeps its URL too, but never its org id. Another user
    /// of the same org may see other records.
    pub connection: String,
    pub instance_url: String,
    pub sync_type: SyncType,
    pub contacts: Vec<Mapping>,
    pub accounts: Vec<Mapping>,
}

/// The [`OrgView`] this process read last, with when and at which of the store's
/// integration versions; and how many times it was forgotten, so that a view read from the
/// database before a change is not kept after it.
#[derive(Default)]
struct KeptView {
    view: Option<(std::time::Instant, u64, Arc<OrgView>)>,
    forgotten: u64,
}

/// A saved connection's [`OrgView::connection`]: its org, instance and user.
fn connection_of(model: &integration::Model) -> String {
    format!(
        "{} {} {}",
        model.org_id.as_deref().unwrap_or_default(),
        model.instance_url.as_deref().unwrap_or(&model.login_url),
        model.username.as_deref().unwrap_or_default()
    )
}

/// How long this process trusts its [`OrgView`]; changes made here, and those another
/// replica on PostgreSQL announces, forget it at once; this bounds how long another
/// process's changes take to show where none is announced (SQLite, a notice lost).
const VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a deleted connection waits for Salesforce to void its session.
const REVOKE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

fn kind(auth: &ConnectAuth) -> &'static str {
    match auth {
        ConnectAuth::Password { .. } => "PASSWORD",
        ConnectAuth::JwtBearer { .. } => "JWT_BEARER",
        ConnectAuth::RefreshToken { .. } => "REFRESH_TOKEN",
    }
}

/// Why `action` cannot be done while the integration is `status`, and what would let it.
pub(crate) fn wrong_state(action: &str, status: &str) -> String {
    let way = match (status.parse(), action) {
        (Ok(IntegrationStatus::Error), _) => {
            ": connect it again with connectSalesforce (its statusReason says what stopped it)"
        }
        (Ok(IntegrationStatus::Paused), "pause") => ": it is paused already",
        (Ok(IntegrationStatus::Paused), _) => ": resume it with resumeSync first",
        (Ok(IntegrationStatus::Active), "resume") => ": it is not paused",
        _ => "",
    };
    format!("cannot {action} while the integration is {status}{way}")
}

/// The org an identity URL (`…/id/00D…/005…`) names, and the user when it names one.
fn ids_of(identity: &str) -> Option<(String, Option<String>)> {
    let mut parts = identity.trim_end_matches('/').rsplit('/');
    let user = parts.next()?;
    let org = parts.next()?;
    (org.starts_with("00D") && parts.next() == Some("id")).then(|| {
        (
            org.to_owned(),
            user.starts_with("005").then(|| user.to_owned()),
        )
    })
}

/// Production and sandbox logins must use HTTPS; plain HTTP is allowed only on loopback,
/// where the simulator runs.
fn check_login_url(raw: &str) -> Result<String, Invalid> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| Invalid::new("loginUrl", format!("'{raw}' is not a URL: {e}")))?;
    // The URL is kept and shown as given: credentials in it would be neither sealed nor
    // hidden, and a path or query would make the token endpoint's address wrong.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            "loginUrl",
            "give the login URL without a user name or password in it; credentials go in their own fields",
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(Invalid::new(
            "loginUrl",
            format!(
                "give the login URL alone, such as https://login.salesforce.com or https://mydomain.my.salesforce.com, without a path, query or fragment (got '{}')",
                raw.trim()
            ),
        ));
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(Invalid::new(
                "loginUrl",
                "use https:// (such as https://login.salesforce.com or https://test.salesforce.com)",
            ));
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The `aud` Salesforce expects in a JWT-bearer assertion for this login URL: the test
/// login for a sandbox or scratch org (`test.salesforce.com`, a My Domain with a `sandbox`
/// or `scratch` label or a `--` before its sandbox's name, an instance such as `cs42`), the
/// production login for any other Salesforce host, and the URL itself for an Experience
/// Cloud site (`*.my.site.com`, `*.force.com`) or another server.
fn jwt_audience(login_url: &str) -> String {
    let host = reqwest::Url::parse(login_url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let salesforce = host == "salesforce.com" || host.ends_with(".salesforce.com");
    let sandbox = host == "test.salesforce.com"
        // A sandbox's My Domain, before enhanced domains: `acme--uat.my.salesforce.com`.
        || host.contains("--")
        || host.split('.').any(|label| {
            // `acme--uat.sandbox.my…`, `acme--uat.cs42.my…`, `cs42.salesforce.com`
            matches!(label, "sandbox" | "scratch")
                || label
                    .strip_prefix("cs")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    match (salesforce, sandbox) {
        (true, true) => "https://test.salesforce.com".into(),
        (true, false) => "https://login.salesforce.com".into(),
        _ => login_url.to_owned(),
    }
}

fn required(field: &str, value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Invalid::new(field, "is required for this kind of login"));
    }
    Ok(value.to_owned())
}

impl Integrations {
    pub fn new(store: Store, vault: Vault, api_version: String) -> Self {
        Self {
            store,
            vault,
            api_version,
            client: Arc::new(RwLock::new(None)),
            clients_made: std::sync::atomic::AtomicU64::new(0),
            view: RwLock::new(KeptView::default()),
            rounds: tokio::sync::Mutex::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Wakes the worker for a round now: the one in this process, or the one another
    /// replica runs.
    pub fn wake(&self) {
        self.store.ask_for_round();
    }

    /// Resolves once a round is asked for: a sync started, resumed or retried here or on
    /// another replica (at once if one was since the last wait).
    pub async fn woken(&self) {
        self.store.round_asked().await;
    }

    /// Waits for the running sync round, if any, and keeps others from starting until the
    /// guard is dropped; with the connection generation the round runs under. That is the
    /// generation of the moment it was asked for: a stop, pause or reconnect while it waited
    /// stops it before its first step, as it would have stopped the round it waited behind.
    /// The wait itself ends at such a stop (Ctrl-C, a shutdown): a round another process
    /// runs can take an hour. A process closing (even before it asked) runs none.
    pub async fn round(&self) -> Result<(RoundGuard<'_>, u64), SyncError> {
        let generation = self.generation();
        let guard = tokio::select! {
            held = self.hold_rounds() => held?,
            () = self.stopped_since(generation) => return Err(SyncError::Stopped),
        };
        if self.closing() || self.generation() != generation {
            return Err(SyncError::Stopped);
        }
        Ok((guard, generation))
    }

    /// Resolves once the generation is no longer `generation`, or the process is closing.
    async fn stopped_since(&self, generation: u64) {
        while self.generation() == generation && !self.closing() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// As [`Self::round`], but `None` once `patience` has passed with a round running here
    /// or in another process. The locks are tried, never waited on: a wait cut off on the
    /// database's lock would keep its pooled connection until that round ended.
    pub async fn try_round(
        &self,
        patience: std::time::Duration,
    ) -> Result<Option<(RoundGuard<'_>, u64)>, SyncError> {
        let generation = self.generation();
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            if let Some(guard) = self.try_hold_rounds().await? {
                if self.closing() {
                    return Err(SyncError::Stopped);
                }
                return Ok(Some((guard, generation)));
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(500));
        }
    }

    /// The round locks, here and on the database, if no round holds them now.
    async fn try_hold_rounds(&self) -> Result<Option<RoundGuard<'_>>, SyncError> {
        let Ok(local) = self.rounds.try_lock() else {
            return Ok(None);
        };
        Ok(self
            .store
            .try_lock_rounds()
            .await?
            .map(|shared| RoundGuard {
                _local: local,
                shared,
            }))
    }

    /// Whether this process is stopping ([`Self::close_here`]).
    pub fn closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// For a process beginning to stop: the round running here stops at its next batch
    /// (each commits whole), and none starts here after. Rounds in other processes go on.
    pub fn close_here(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.stop_here();
    }

    async fn hold_rounds(&self) -> Result<RoundGuard<'_>, SyncError> {
        let local = self.rounds.lock().await;
        Ok(RoundGuard {
            _local: local,
            shared: self.store.lock_rounds().await?,
        })
    }

    /// For a process shutting down: a round running here stops at its next batch (each
    /// batch commits whole), and none starts here while the guard is held. `None` when the
    /// round did not stop within `within`.
    pub async fn wind_down(
        &self,
        within: std::time::Duration,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.close_here();
        tokio::time::timeout(within, self.rounds.lock()).await.ok()
    }

    /// Tells a round running in this process to stop at its next batch; rounds in other
    /// processes go on.
    pub fn stop_here(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The connection's generation: it changes when the connection is replaced or removed,
    /// and when the sync is paused.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Tells a running round to stop, here or in another process on the database, then waits
    /// until it has. A round that begins after the word went out (the worker's next, as the
    /// one told lets go) runs under it, so the word goes out again every few seconds of the
    /// wait: such a round stops at its first batch too.
    async fn replacing(&self) -> Result<RoundGuard<'_>, SyncError> {
        const TELL_AGAIN: std::time::Duration = std::time::Duration::from_secs(5);
        self.stop_here();
        self.store.announce_integration_change().await?;
        // Rounds and changes of this process take their turns in the order they asked.
        let local = self.rounds.lock().await;
        loop {
            let told = tokio::time::Instant::now();
            let mut pause = std::time::Duration::from_millis(20);
            while told.elapsed() < TELL_AGAIN {
                if let Some(shared) = self.store.try_lock_rounds().await? {
                    return Ok(RoundGuard {
                        _local: local,
                        shared,
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(500));
            }
            self.stop_here();
            self.store.announce_integration_change().await?;
        }
    }

    /// The connected org as panels see it, or `None` when Salesforce is not connected.
    pub async fn org_view(&self) -> Result<Option<Arc<OrgView>>, SyncError> {
        // Read before the row: a change committed meanwhile moves it past the view's.
        let version = self.store.integration_version();
        let forgotten = {
            let kept = self.view.read().await;
            if let Some((at, read_at, view)) = &kept.view
                && at.elapsed() < VIEW_TTL
                && *read_at == version
            {
                return Ok(Some(view.clone()));
            }
            kept.forgotten
        };
        let Some(current) = self.current().await? else {
            return Ok(None);
        };
        let view = Arc::new(OrgView {
            connection: connection_of(&current),
            sync_type: current.sync_type.parse().unwrap_or(SyncType::TwoWay),
            instance_url: current.instance_url.unwrap_or(current.login_url),
            contacts: self.mappings(Module::Contacts).await?,
            accounts: self.mappings(Module::Accounts).await?,
        });
        let mut kept = self.view.write().await;
        // A change forgot the view while this one was read: it may be older than the change.
        if kept.forgotten == forgotten {
            kept.view = Some((std::time::Instant::now(), version, view.clone()));
        }
        Ok(Some(view))
    }

    async fn forget_view(&self) {
        let mut kept = self.view.write().await;
        kept.view = None;
        kept.forgotten += 1;
        drop(kept);
        // Answers kept from the old view go with it.
        self.forget_answers();
    }

    /// What was answered before now may not be answered again: something those answers
    /// hold, kept outside the database, has gone (the org's view, a list Salesforce now
    /// refuses to read).
    pub fn forget_answers(&self) {
        self.store.touch();
    }

    /// A client for these credentials, with its id.
    /// A client of `credentials`, whose refresh token Salesforce `issued` (rotated in) rather
    /// than a person giving it.
    fn client_for(
        &self,
        login_url: &str,
        credentials: Credentials,
        issued: bool,
    ) -> Result<(u64, SalesforceClient), SyncError> {
        let id = self
            .clients_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rotates = matches!(credentials, Credentials::RefreshToken { .. });
        let mut config = ClientConfig::new(login_url, credentials);
        config.api_version = self.api_version.clone();
        config.refresh_token_issued = issued;
        if rotates {
            let (store, vault, cache) =
                (self.store.clone(), self.vault.clone(), self.client.clone());
            config.on_rotation = Some(OnRotation(Arc::new(move |old, new| {
                let (store, vault, cache) = (store.clone(), vault.clone(), cache.clone());
                Box::pin(async move {
                    if let Err(e) = keep_rotated(&store, &vault, &cache, id, &old, &new).await {
                        tracing::warn!(error = %e, "could not save the refresh token Salesforce rotated in; after a restart the integration needs reconnecting");
                    }
                })
            })));
        }
        Ok((id, SalesforceClient::new(config)?))
    }

    /// Verifies the credentials against the org, then saves them encrypted.
    pub async fn connect(&self, request: Connect) -> Result<integration::Model, SyncError> {
        let login_url = check_login_url(&request.login_url)?;
        let auth_kind = kind(&request.auth);
        let (username, client_id, mut secrets, credentials) = match request.auth {
            ConnectAuth::Password {
                username,
                password,
                client_id,
                client_secret,
            } => {
                let username = required("username", &username)?;
                let client_id = required("clientId", &client_id)?;
                required("password", password.expose_secret())?;
                let secrets = json!({ "password": password.expose_secret(), "clientSecret": client_secret.expose_secret() });
                let credentials = Credentials::Password {
                    username: username.clone(),
                    password,
                    client_id: client_id.clone(),
                    client_secret,
                };
                (Some(username), client_id, secrets, credentials)
            }
            ConnectAuth::JwtBearer {
                username,
                client_id,
                private_key_pem,
            } => {
                let username = required("username", &username)?;
                let client_id = required("clientId", &client_id)?;
                required("privateKey", private_key_pem.expose_secret())?;
                let secrets = json!({ "privateKey": private_key_pem.expose_secret() });
                let credentials = Credentials::JwtBearer {
                    username: username.clone(),
                    client_id: client_id.clone(),
                    private_key_pem,
                    audience: jwt_audience(&login_url),
                };
                (Some(username), client_id, secrets, credentials)
            }
            ConnectAuth::RefreshToken {
                refresh_token,
                client_id,
                client_secret,
            } => {
                let client_id = required("clientId", &client_id)?;
                required("refreshToken", refresh_token.expose_secret())?;
                let secrets = json!({ "refreshToken": refresh_token.expose_secret(), "clientSecret": client_secret.expose_secret() });
                let credentials = Credentials::RefreshToken {
                    refresh_token,
                    client_id: client_id.clone(),
                    client_secret,
                };
                (None, client_id, secrets, credentials)
            }
        };
        let (id, client) = self.client_for(&login_url, credentials, false)?;
        match client.verify().await {
            Ok(()) => {}
            Err(SalesforceError::AuthFailed { error, description }) => {
                return Err(SyncError::Refused(format!(
                    "Salesforce refused the credentials: {error}: {description}"
                )));
            }
            Err(other) => return Err(other.into()),
        }
        // Signing in may have rotated the token given; only the new one works now.
        let mut rotated = take_rotated(&client, &mut secrets).await;
        let connected = async {
            // Signed in is not yet let in: an org without the REST API (an edition without it, or
            // a user whose profile lacks "API Enabled") would refuse every call the sync makes.
            // Anything else the question meets is for the sync to meet, not a reason to refuse.
            match client.resources().await {
                Err(SalesforceError::Api {
                    error_code,
                    message,
                    ..
                }) if matches!(
                    error_code.as_str(),
                    "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED"
                ) =>
                {
                    return Err(SyncError::Refused(format!(
                        "Salesforce signed the user in but refuses it the REST API ({error_code}: {message}): the org must be on Enterprise, Unlimited, Performance or Developer edition, or Professional with API access, and the integration user's profile must have \"API Enabled\""
                    )));
                }
                // A session the connected app was not granted the API for: no renewal helps.
                Err(SalesforceError::Api {
                    status: 401,
                    error_code,
                    message,
                    ..
                }) if error_code == "INVALID_SESSION_ID"
                    && message.contains("not valid for use with the REST API") =>
                {
                    return Err(SyncError::Refused(format!(
                        "Salesforce signed the user in but its session cannot call the REST API ({error_code}: {message}): give the connected app the OAuth scope \"Manage user data via APIs (api)\" (and \"Perform requests at any time (refresh_token, offline_access)\" for refresh tokens), then connect again"
                    )));
                }
                // Every call the sync makes names the version.
                Err(SalesforceError::Api {
                    status: 404 | 410,
                    error_code,
                    ..
                }) => {
                    let version = client.api_version();
                    let newest = match client.newest_version().await {
                        Ok(Some(newest)) => format!("; the newest it serves is {newest}"),
                        _ => String::new(),
                    };
                    return Err(SyncError::Refused(format!(
                        "Salesforce does not serve REST API version {version} (GET /services/data/v{version} answers {error_code}){newest}: set sync.api_version to a version the org serves, then connect again"
                    )));
                }
                Ok(_) | Err(_) => {}
            }
            let username = match username {
                Some(username) => Some(username),
                // A refresh-token login names no user: ask Salesforce who it is, for the status
                // page. Not knowing does not stop the connection.
                None => client.username().await.unwrap_or_else(|e| {
                    tracing::info!(error = %e, "the identity URL did not say who signed in");
                    None
                }),
            };
            let instance_url = client.instance_url().await?;
            let ids = client.identity_url().await?.as_deref().and_then(ids_of);
            let (org_id, user_id) = ids.map_or((None, None), |(org, user)| (Some(org), user));
            // Made two-way over a one-way sync of the same org, whose mappings it keeps: they must
            // be writable first, as `setSyncType(TWO_WAY)` checks; and still those checked when
            // the connection is saved.
            let mut checked_mappings = None;
            if request.sync_type == Some(SyncType::TwoWay)
                && let Some(current) = self.current().await?
                && current.sync_type != SyncType::TwoWay.as_str()
                && crate::store::same_org(&current, org_id.as_deref(), &instance_url)
            {
                let rows = self.store.mapping_rows().await?;
                self.check_mappings_with(&client, true, "then connect with syncType TWO_WAY")
                    .await?;
                checked_mappings = Some(rows);
            }
            // A session renewed since signing in may have rotated it again; nothing else uses
            // this client until it is cached, after the save, for its rotations to be saved.
            rotated |= take_rotated(&client, &mut secrets).await;
            let sealed = self.vault.seal(secrets.to_string().as_bytes());
            let _replacing = self.replacing().await?;
            let model = self
                .store
                .save_integration(NewIntegration {
                    login_url,
                    auth_kind: auth_kind.into(),
                    username,
                    client_id: Some(client_id),
                    sealed_secrets: sealed.clone(),
                    instance_url,
                    org_id,
                    user_id,
                    sync_type: request.sync_type,
                    checked_mappings,
                    api_usage: client
                        .api_usage()
                        .map(|usage| (usage.used as i64, usage.max as i64)),
                })
                .await?;
            *self.client.write().await = Some(CachedClient {
                sealed,
                basis: basis(&model, &secrets),
                id,
                checked: std::time::Instant::now(),
                connection: connection_of(&model),
                client: Arc::new(client),
            });
            self.forget_view().await;
            self.wake();
            Ok(model)
        }
        .await;
        // Failing now, the connection keeps the token Salesforce rotated in to itself: the
        // one given works no more, and an admin trying it again would only hear so. The error
        // stays what it is (a conflict, an outage, a field refused), with that said after it.
        connected.map_err(|error| {
            if rotated {
                SyncError::Noted {
                    error: Box::new(error),
                    note: "Signing in, Salesforce rotated the refresh token given, which no longer works: authorize the connected app again for a new one, then connect with it",
                }
            } else {
                error
            }
        })
    }

    pub async fn current(&self) -> Result<Option<integration::Model>, SyncError> {
        Ok(self.store.integration().await?)
    }

    async fn connected(&self) -> Result<integration::Model, SyncError> {
        self.store
            .integration()
            .await?
            .ok_or(SyncError::NotConnected)
    }

    /// The client of the saved connection as it is now, read from the database: a connect
    /// another process made a moment ago is the one an admin's next request checks its
    /// mappings against, not the org it replaced.
    pub async fn client(&self) -> Result<Arc<SalesforceClient>, SyncError> {
        let model = self.connected().await?;
        self.client_of(&model).await
    }

    /// The client that reads through `connection`'s eyes ([`OrgView::connection`]), so that
    /// what it reads is kept under the view that asked; `None` when the saved connection is
    /// another by now (the view is older than a reconnect). A client kept from another
    /// connection, as another process's reconnect leaves one for a while, is made anew.
    pub async fn client_reading_as(
        &self,
        connection: &str,
    ) -> Result<Option<Arc<SalesforceClient>>, SyncError> {
        if let Some(cached) = self.client.read().await.as_ref()
            && cached.checked.elapsed() < VIEW_TTL
            && cached.connection == connection
        {
            return Ok(Some(cached.client.clone()));
        }
        let model = self.connected().await?;
        if connection_of(&model) != connection {
            // The view that named it is older than a reconnect (another process's, or it
            // would have been forgotten then): the next request reads the current one.
            self.forget_view().await;
            return Ok(None);
        }
        let client = self.client_of(&model).await?;
        Ok(Some(client))
    }

    /// The client for this saved connection, made anew if the one at hand was made from other
    /// credentials.
    pub async fn client_of(
        &self,
        model: &integration::Model,
    ) -> Result<Arc<SalesforceClient>, SyncError> {
        let sealed = model.secrets.as_deref().ok_or(SyncError::NotConnected)?;
        // Held throughout, so that callers missing the cache together make one client.
        let mut cache = self.client.write().await;
        if let Some(cached) = cache.as_mut()
            && cached.sealed == sealed
        {
            cached.checked = std::time::Instant::now();
            cached.connection = connection_of(model);
            return Ok(cached.client.clone());
        }
        let secrets: Value = self.vault.open_json(sealed)?;
        let basis = basis(model, &secrets);
        // Only a token Salesforce rotated in: one a person gave (a reconnect with the same
        // app) makes a client of its own, which leaves it to them when deleted.
        if let Some(cached) = cache.as_mut()
            && cached.basis == basis
            && secrets[ISSUED] == Value::Bool(true)
            && let Some(token) = secrets["refreshToken"].as_str()
        {
            cached
                .client
                .adopt_refresh_token(SecretString::from(token.to_owned()))
                .await;
            cached.sealed = sealed.to_vec();
            cached.checked = std::time::Instant::now();
            cached.connection = connection_of(model);
            return Ok(cached.client.clone());
        }
        let secret =
            |key: &str| SecretString::from(secrets[key].as_str().unwrap_or_default().to_owned());
        let username = model.username.clone().unwrap_or_default();
        let client_id = model.client_id.clone().unwrap_or_default();
        let credentials = match model.auth_kind.as_str() {
            "JWT_BEARER" => Credentials::JwtBearer {
                username,
                client_id,
                private_key_pem: secret("privateKey"),
                audience: jwt_audience(&model.login_url),
            },
            "REFRESH_TOKEN" => Credentials::RefreshToken {
                refresh_token: secret("refreshToken"),
                client_id,
                client_secret: secret("clientSecret"),
            },
            _ => Credentials::Password {
                username,
                password: secret("password"),
                client_id,
                client_secret: secret("clientSecret"),
            },
        };
        let issued = secrets[ISSUED] == Value::Bool(true);
        let (id, client) = self.client_for(&model.login_url, credentials, issued)?;
        let client = Arc::new(client);
        *cache = Some(CachedClient {
            sealed: sealed.to_vec(),
            basis,
            id,
            checked: std::time::Instant::now(),
            connection: connection_of(model),
            client: client.clone(),
        });
        Ok(client)
    }

    pub async fn set_sync_type(
        &self,
        sync_type: SyncType,
    ) -> Result<integration::Model, SyncError> {
        let current = self.connected().await?;
        // The type it has already: nothing changes, and a running round goes on.
        if current.sync_type == sync_type.as_str() {
            return Ok(current);
        }
        // Syncing both ways writes every mapped field: one mapped while the sync was one-way
        // (a formula, say) must be writable first; and the mappings checked must be the
        // ones in force when the type is saved.
        let checked =
            if sync_type == SyncType::TwoWay && current.sync_type != SyncType::TwoWay.as_str() {
                let rows = self.store.mapping_rows().await?;
                self.check_mappings(true, "then set the sync type to TWO_WAY")
                    .await?;
                let checked = Checked {
                    connected_at: current.created_at,
                    writes: true,
                };
                Some((checked, rows))
            } else {
                None
            };
        // As a pause does: a round running anywhere stops at its next batch, and the next
        // one runs with the new direction.
        let saved = self
            .store
            .set_sync_type(
                sync_type,
                checked.as_ref().map(|(c, rows)| (*c, rows.as_slice())),
            )
            .await?;
        self.forget_view().await;
        self.stop_rounds().await?;
        // The next round runs now, in the new direction, not at the next poll.
        self.wake();
        Ok(saved)
    }

    /// Moves between states, refusing moves that make no sense from the current one.
    async fn transition(
        &self,
        allowed: &[IntegrationStatus],
        to: IntegrationStatus,
        action: &str,
    ) -> Result<integration::Model, SyncError> {
        let current = self.connected().await?;
        let status: IntegrationStatus = current
            .status
            .parse()
            .map_err(|e: String| SyncError::WrongState(e))?;
        if !allowed.contains(&status) {
            return Err(SyncError::WrongState(wrong_state(action, status.as_str())));
        }
        // Judged again under the row's lock: a change made since the read above (an error a
        // round met, a pause from another replica) is not overwritten.
        Ok(self
            .store
            .update_integration_with(|now, m| {
                if !allowed.iter().any(|s| s.as_str() == now.status) {
                    return Err(StoreError::Conflict(wrong_state(action, &now.status)));
                }
                // What stops the rounds of an active sync stays shown when it is started
                // again; it goes once a round gets through.
                if now.status != to.as_str() {
                    m.status = Set(to.as_str().into());
                    m.status_reason = Set(None);
                }
                Ok(())
            })
            .await?)
    }

    /// Pauses the sync. A round running in this process or another on the database stops at
    /// its next batch, and the pause waits for it: once paused, nothing more crosses.
    pub async fn pause(&self) -> Result<integration::Model, SyncError> {
        let paused = self
            .transition(
                &[IntegrationStatus::Active],
                IntegrationStatus::Paused,
                "pause",
            )
            .await?;
        self.stop_rounds().await?;
        Ok(paused)
    }

    /// Waits until no round runs, here or in another process on the database: each sees the
    /// change just saved at its next batch and stops there.
    async fn stop_rounds(&self) -> Result<(), SyncError> {
        self.stop_here();
        drop(self.hold_rounds().await?);
        Ok(())
    }

    pub async fn resume(&self) -> Result<integration::Model, SyncError> {
        let resumed = self
            .transition(
                &[IntegrationStatus::Paused],
                IntegrationStatus::Active,
                "resume",
            )
            .await?;
        self.wake();
        Ok(resumed)
    }

    /// Asks the engine to run the first sync (or another round, once it has run).
    pub async fn start_sync(&self) -> Result<integration::Model, SyncError> {
        let current = self
            .transition(
                &[IntegrationStatus::Active],
                IntegrationStatus::Active,
                "start syncing",
            )
            .await?;
        let started = if current.first_sync == FirstSync::NotStarted.as_str() {
            let writes = current.sync_type == SyncType::TwoWay.as_str();
            self.check_mappings(writes, "then start the sync").await?;
            // Only on the connection checked, still waiting and active: a reconnect (to
            // another org, which an admin may mean to map first) or a pause while the
            // describes ran is not started behind its back.
            self.store
                .update_integration_with(|now, m| {
                    let same = now.epoch == current.epoch
                        && now.first_sync == FirstSync::NotStarted.as_str()
                        && now.status == IntegrationStatus::Active.as_str();
                    if !same {
                        return Err(StoreError::Conflict(
                            "the integration changed while its mappings were checked (reconnected, paused or started); read it again and start it if still wanted".into(),
                        ));
                    }
                    m.first_sync = Set(FirstSync::Running.as_str().into());
                    Ok(())
                })
                .await?
        } else {
            current
        };
        self.wake();
        Ok(started)
    }

    /// Checks the mappings in effect, the pre-mapped ones included, against the org's
    /// describe, as `updateFieldMappings` checks those it is given: a field the org requires,
    /// left unmapped, would otherwise refuse every record of the first sync.
    async fn check_mappings(&self, writes: bool, then: &str) -> Result<(), SyncError> {
        let client = self.client().await?;
        self.check_mappings_with(&client, writes, then).await
    }

    /// [`Self::check_mappings`] against the org `client` signs in to.
    async fn check_mappings_with(
        &self,
        client: &SalesforceClient,
        writes: bool,
        then: &str,
    ) -> Result<(), SyncError> {
        for module in [Module::Accounts, Module::Contacts] {
            // Read afresh (an admin of the org may have changed a field since it was last
            // described), and kept for the round that follows: one describe serves both.
            client.forget_describe(module.salesforce_object());
            let describe = client.describe(module.salesforce_object()).await?;
            mapping::validate(module, &self.mappings(module).await?, &describe, writes).map_err(
                |e| {
                    Invalid::new(
                        format!("fieldMappings({module}).{}", e.field),
                        format!(
                            "{}; the {module} field mappings do not fit this org: change them with updateFieldMappings, {then}",
                            e.message
                        ),
                    )
                },
            )?;
        }
        Ok(())
    }

    /// Records why the integration stopped; the worker stays idle until it is reconnected. A
    /// paused integration stays paused, the reason noted (its resume meets the error again);
    /// a deleted one stays deleted.
    pub async fn fail(&self, reason: &str) -> Result<integration::Model, SyncError> {
        let reason = reason.to_owned();
        Ok(self
            .store
            .update_integration_with(|now, m| {
                if now.status == IntegrationStatus::NotConnected.as_str() {
                    return Ok(());
                }
                if now.status != IntegrationStatus::Paused.as_str() {
                    m.status = Set(IntegrationStatus::Error.as_str().into());
                }
                m.status_reason = Set(Some(reason));
                Ok(())
            })
            .await?)
    }

    /// Says why the active integration's rounds are failing (`None` once one succeeds). One
    /// paused or stopped meanwhile keeps what it says: its rounds are not retried.
    pub async fn explain(&self, reason: Option<String>) -> Result<(), SyncError> {
        match self
            .store
            .update_integration_with(|now, m| {
                if now.status == IntegrationStatus::Active.as_str() {
                    m.status_reason = Set(reason);
                }
                Ok(())
            })
            .await
        {
            // Deleted meanwhile: there is nothing left to explain.
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Disconnects: no further sync, credentials erased, desk records kept, and the session
    /// this process signed in voided at Salesforce. Salesforce not answering the revoke
    /// does not keep the connection: it is logged, and the session, erased here, expires
    /// there in time.
    pub async fn delete(&self) -> Result<(), SyncError> {
        self.connected().await?;
        let _replacing = self.replacing().await?;
        // Credentials that cannot be opened (the key changed) are erased all the same.
        let client = self.client_of(&self.connected().await?).await.ok();
        if !self.store.delete_integration().await? {
            return Err(SyncError::NotConnected);
        }
        *self.client.write().await = None;
        self.forget_view().await;
        let Some(client) = client else { return Ok(()) };
        match tokio::time::timeout(REVOKE_PATIENCE, client.revoke()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Salesforce did not void the deleted connection's session");
            }
            Err(_) => tracing::warn!(
                "Salesforce did not void the deleted connection's session within {}s",
                REVOKE_PATIENCE.as_secs()
            ),
        }
        Ok(())
    }

    /// The module's mappings: the saved ones, or the standard ones.
    pub async fn mappings(&self, module: Module) -> Result<Vec<Mapping>, SyncError> {
        let saved = self.store.field_mappings(module).await?;
        if saved.is_empty() {
            return Ok(mapping::default_mappings(module));
        }
        Ok(saved
            .into_iter()
            .map(|m| Mapping::new(&m.desk_field, &m.salesforce_field))
            .collect())
    }

    /// The org's fields each desk field of `module` may be mapped to now (the sync type
    /// decides whether they must be writable), read from a describe made afresh: an admin
    /// may have added one in Salesforce since the last.
    pub async fn mapping_choices(&self, module: Module) -> Result<Choices, SyncError> {
        let client = self.client().await?;
        client.forget_describe(module.salesforce_object());
        let describe = client.describe(module.salesforce_object()).await?;
        let writes = self.connected().await?.sync_type == SyncType::TwoWay.as_str();
        Ok(mapping::choices(module, &describe, writes)
            .into_iter()
            .map(|(desk, fitting)| (desk, fitting.into_iter().cloned().collect()))
            .collect())
    }

    /// Validates a module's mappings against the org's describe, then replaces them. When
    /// they change, the module's pull starts over: the next round reads every Salesforce
    /// record of it again and applies it under the new mappings (records whose mapped values
    /// did not change are left as they are), so no linked record stays mapped the old way
    /// until it happens to change; failed records of the module are tried again with it. A
    /// running round is stopped first, and the change waits for one in another process, so
    /// nothing read under the old mappings lands after.
    pub async fn update_mappings(
        &self,
        module: Module,
        mappings: Vec<Mapping>,
    ) -> Result<Vec<Mapping>, SyncError> {
        let current = self.connected().await?;
        let client = self.client().await?;
        // Read afresh: an admin may have added the field, or made one mandatory or read-only,
        // since the org was last described.
        client.forget_describe(module.salesforce_object());
        let describe = client.describe(module.salesforce_object()).await?;
        let writes = current.sync_type == SyncType::TwoWay.as_str();
        let checked = mapping::validate(module, &mappings, &describe, writes)?;
        let same = |before: &[Mapping]| {
            before.len() == checked.len() && before.iter().all(|m| checked.contains(m))
        };
        if same(&self.mappings(module).await?) {
            return Ok(checked);
        }
        let _stopped = self.replacing().await?;
        let pairs: Vec<(String, String)> = checked
            .iter()
            .map(|m| (m.desk_field.clone(), m.salesforce_field.clone()))
            .collect();
        let standard: Vec<(String, String)> = mapping::default_mappings(module)
            .into_iter()
            .map(|m| (m.desk_field, m.salesforce_field))
            .collect();
        self.store
            .replace_field_mappings(
                module,
                &pairs,
                &standard,
                &super::pull::cursor_of(module),
                Checked {
                    connected_at: current.created_at,
                    writes,
                },
            )
            .await?;
        self.forget_view().await;
        // The module is read again under the new mappings now, not at the next poll.
        self.wake();
        Ok(checked)
    }
}

/// Each desk field of a module with the org's fields `updateFieldMappings` would accept for
/// it, as [`Integrations::mapping_choices`] read them.
pub type Choices = Vec<(
    &'static mapping::DeskField,
    Vec<crate::salesforce::FieldDescribe>,
)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_urls_must_be_https_except_on_loopback() {
        assert_eq!(
            check_login_url("https://login.salesforce.com/").unwrap(),
            "https://login.salesforce.com"
        );
        assert!(check_login_url("http://127.0.0.1:9999").is_ok());
        assert!(check_login_url("http://login.salesforce.com").is_err());
        assert!(check_login_url("ftp://x").is_err());
        assert!(check_login_url("not a url").is_err());
    }

    #[test]
    fn jwt_audiences_follow_the_login_host() {
        assert_eq!(
            jwt_audience("https://test.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            jwt_audience("https://acme.my.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(jwt_audience("http://127.0.0.1:9"), "http://127.0.0.1:9");
        for sandbox in [
            "https://acme--uat.sandbox.my.salesforce.com",
            "https://acme--uat.my.salesforce.com",
            "https://acme--uat.cs42.my.salesforce.com",
            "https://cs42.salesforce.com",
            "https://power-dream-1234-dev-ed.scratch.my.salesforce.com",
        ] {
            assert_eq!(
                jwt_audience(sandbox),
                "https://test.salesforce.com",
                "{sandbox}"
            );
        }
        // A production host that names a sandbox nowhere but in its path.
        assert_eq!(
            jwt_audience("https://acme.my.salesforce.com/sandbox"),
            "https://login.salesforce.com"
        );
        // An Experience Cloud site signs its users in itself.
        for site in ["https://acme.my.site.com", "https://acme.force.com"] {
            assert_eq!(jwt_audience(site), site);
        }
    }
}
