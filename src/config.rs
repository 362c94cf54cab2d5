//! Settings, loaded once: built-in defaults, then an optional TOML file, then `TANDEM_*`
//! environment variables (`__` nests, e.g. `TANDEM_HTTP__PORT`). A bare `DATABASE_URL` works
//! too, below the file.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::salesforce::COLLECTION_LIMIT;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where generated secrets and the default SQLite database live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to an SQLite file in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub graphql: GraphqlSettings,
    pub websocket: WebSocketSettings,
    pub sync: SyncSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a request's body may take to arrive once its head has, in seconds.
    pub body_timeout_secs: u64,
    /// Worker threads; one per core when absent.
    pub workers: Option<usize>,
    /// Origins (`https://desk.example.com`) whose pages may call `/graphql` from a browser
    /// (CORS), or `*` for any; none by default, so only the gateway's own pages may. A list,
    /// or one text of them separated by commas (as an environment variable gives it).
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// HS256 secret. When neither this nor `public_key_file` is set, a random secret is
    /// generated once and kept in `<data_dir>/jwt-secret`.
    pub jwt_secret: Option<SecretString>,
    /// PEM file with an RS256 public key; when set, only RS256 tokens are accepted.
    pub public_key_file: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Lifetime of tokens minted by `tandem token` and `tandem demo`, in seconds.
    pub token_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlSettings {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    /// Fields an operation selects, each fragment's counted at every place it is spread.
    pub max_fields: usize,
    pub max_batch: usize,
    /// Largest query document, in bytes.
    pub max_query_bytes: usize,
    pub default_page_size: usize,
    pub max_page_size: usize,
    /// Seconds a Salesforce panel's live lists (opportunities, notes, events, tasks) are
    /// served from the cache before Salesforce is asked again.
    pub panel_cache_secs: u64,
    /// Milliseconds a request waits for Salesforce to answer its panels' live lists before it
    /// serves them from the cache, marked stale, or without them.
    pub panel_timeout_ms: u64,
    /// Milliseconds a whole answer to a query of desk records and their panels is served
    /// again to the same profile while nothing changes; 0 turns it off.
    pub response_cache_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketSettings {
    /// Seconds a client has to send `connection_init` before the socket closes with 4408.
    pub init_timeout_secs: u64,
    /// Seconds between pings on every socket (and `ka` messages on the legacy `graphql-ws`
    /// protocol).
    pub keepalive_secs: u64,
    pub max_subscriptions: usize,
    /// Sockets open at once; the next upgrade is answered 503 until one closes.
    pub max_connections: usize,
    /// Seconds a message may wait for a client that has stopped reading before the socket is
    /// dropped, with close code 1013 (try again later) when it can still be told.
    pub send_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// 64 hex characters: the AES-256-GCM key for Salesforce credentials at rest. When absent,
    /// one is generated once and kept in `<data_dir>/encryption-key`.
    pub encryption_key: Option<SecretString>,
    /// The Salesforce REST API version Tandem calls.
    pub api_version: ApiVersion,
    /// Run the sync worker in `serve` (tests drive rounds themselves).
    pub worker: bool,
    /// Seconds between polls of Salesforce; desk changes trigger a round sooner.
    pub poll_interval_secs: u64,
    /// Desk changes sent to Salesforce per collection call (1 to 200, Salesforce's most).
    pub batch_size: usize,
    /// Seconds a Salesforce transaction may commit after the `SystemModstamp` it stamps: each
    /// poll reads that far back before the newest change it has seen, until that long has
    /// passed since it saw it. Ten minutes by default: an Apex transaction (a trigger, a
    /// flow, a batch's chunk) may run that long, and its records carry the stamp of their
    /// write, not of the commit.
    pub poll_overlap_secs: u64,
    /// Seconds before a record that failed for a transient reason is tried again; the wait
    /// doubles with each attempt (up to an hour).
    pub retry_backoff_secs: u64,
    /// Attempts after which a record failing for a transient reason waits for a manual retry.
    pub retry_max_attempts: u32,
    /// Days the sync history is kept.
    pub history_days: u32,
    /// Seconds after a create whose answer was lost (without an external id to repeat it
    /// by) during which Salesforce may still be making it: until then a record not found is
    /// in doubt and waits, rather than being sent again and made twice. Ten minutes, the
    /// longest Salesforce runs a call and Tandem waits for a create; two for the sign-ins
    /// that may come between the note and Salesforce receiving it; and one to spare.
    pub unanswered_create_secs: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `tandem=debug,sqlx=warn`.
    pub filter: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".tandem"),
            database_url: None,
            http: HttpSettings::default(),
            auth: AuthSettings::default(),
            graphql: GraphqlSettings::default(),
            websocket: WebSocketSettings::default(),
            sync: SyncSettings::default(),
            log: LogSettings::default(),
        }
    }
}

/// A list of texts, given as a list or as one text of them separated by commas.
fn one_or_many<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Given::deserialize(from)? {
        Given::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect(),
        Given::Many(list) => list,
    })
}

/// Why a list of allowed origins cannot be taken, if it cannot: each must be an origin as a
/// browser sends it (`https://desk.example.com`, `http://localhost:3000`: scheme, host and
/// port only, in lower case), or `*` alone.
fn origins_refused(origins: &[String]) -> Option<String> {
    if origins.iter().any(|o| o == "*") {
        return (origins.len() > 1)
            .then(|| "`*` allows every origin: give it alone, or list the origins".to_owned());
    }
    origins.iter().find_map(|origin| {
        (!is_origin(origin)).then(|| {
            format!(
                "{origin:?} is not an origin as a browser sends it: give the scheme (http or https), host and port only (none for the scheme's own), in lower case, such as \"https://desk.example.com\""
            )
        })
    })
}

/// Whether `origin` is written as a browser sends it in `Origin`: `http` or `https`, a host
/// in lower case (an IPv6 address in brackets, in its shortest form), and a port only when
/// it is not the scheme's own.
fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let own_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return false,
    };
    let (host_ok, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let Some((address, after)) = bracketed.split_once(']') else {
                return false;
            };
            let shortest = address
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|parsed| parsed.to_string() == address);
            let port = match after {
                "" => None,
                after => match after.strip_prefix(':') {
                    Some(port) => Some(port),
                    None => return false,
                },
            };
            (shortest, port)
        }
        None => {
            let (host, port) = match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            let named = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c));
            (named, port)
        }
    };
    let port_ok = port.is_none_or(|port| {
        !port.starts_with('0') && port.parse::<u16>().is_ok_and(|n| n > 0) && port != own_port
    });
    host_ok && port_ok
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            body_limit: 1024 * 1024,
            body_timeout_secs: 30,
            workers: None,
            allowed_origins: Vec::new(),
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            public_key_file: None,
            issuer: None,
            audience: None,
            token_ttl_secs: 12 * 3600,
        }
    }
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 20_000,
            max_aliases: 30,
            max_fields: 1_000,
            max_batch: 10,
            max_query_bytes: 32 * 1024,
            default_page_size: 20,
            max_page_size: 100,
            panel_cache_secs: 60,
            panel_timeout_ms: 5_000,
            response_cache_ms: 1000,
        }
    }
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            init_timeout_secs: 10,
            keepalive_secs: 15,
            max_subscriptions: 100,
            max_connections: 10_000,
            send_timeout_secs: 10,
        }
    }
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            encryption_key: None,
            api_version: ApiVersion("62.0".into()),
            worker: true,
            poll_interval_secs: 10,
            poll_overlap_secs: 600,
            batch_size: 200,
            retry_backoff_secs: 30,
            retry_max_attempts: 8,
            history_days: 7,
            unanswered_create_secs: 780,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info,sqlx=warn,sea_orm=warn".into(),
        }
    }
}

/// The settings whose values are text, by their key path.
const TEXT_SETTINGS: &[&str] = &[
    "data_dir",
    "http.host",
    "auth.jwt_secret",
    "auth.public_key_file",
    "auth.issuer",
    "auth.audience",
    "sync.encryption_key",
    "log.filter",
];

/// Top-level keys accepted from the environment; other `TANDEM_*` variables are reported.
const ENV_SECTIONS: &[&str] = &[
    "data_dir",
    "database_url",
    "http",
    "auth",
    "graphql",
    "websocket",
    "sync",
    "log",
];

/// The longest a token `tandem token` or `tandem demo` makes may live: ten years.
pub const MAX_TOKEN_TTL_SECS: u64 = 10 * 365 * 86_400;

/// The longest `graphql.response_cache_ms` may keep an answer: an hour.
pub const MAX_RESPONSE_CACHE_MS: u64 = 3_600_000;

/// The longest sync history `sync.history_days` may keep.
const MAX_HISTORY_DAYS: u32 = 36_500;

/// The longest a Salesforce transaction may be taken to commit after it stamps its records.
const MAX_OVERLAP_SECS: u64 = 86_400;

/// The longest any other wait (a timeout, an interval, a cache's life) may be set to: a day.
const MAX_WAIT_SECS: u64 = 86_400;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// The error, saying where and why a value was refused, without the value: it may be a
/// secret (an unquoted key, a password in a URL), and the error goes to logs and terminals.
fn unquoted(error: figment::Error) -> Box<figment::Error> {
    let text = error
        .into_iter()
        .map(|e| {
            let text = e.to_string();
            // The TOML parser quotes the line it stopped at: `4 | key = value`.
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| {
                    let numbered = line
                        .trim_start()
                        .trim_start_matches(|c: char| c.is_ascii_digit());
                    !numbered.trim_start().starts_with('|')
                })
                .collect();
            without_found_values(&kept.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("; ");
    Box::new(figment::Error::from(text))
}

/// `found string "…"` (serde's word for a value of the wrong type) without the value.
fn without_found_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("found ") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The value follows its kind, quoted or in backticks, before the comma that goes on
        // to what was expected: `found string "x", expected …`.
        let kind = after.find(',').unwrap_or(after.len());
        match after[..kind].find(['"', '`']) {
            Some(open) => {
                // The closing quote: not one escaped inside the value (`"a\"b"`).
                let quote = after.as_bytes()[open];
                let mut close = after.len();
                let mut escaped = false;
                for (i, byte) in after.bytes().enumerate().skip(open + 1) {
                    match byte {
                        _ if escaped => escaped = false,
                        // Only a string's `"` is escaped; a backtick-quoted value is not.
                        b'\\' if quote == b'"' => escaped = true,
                        b if b == quote => {
                            close = i + 1;
                            break;
                        }
                        _ => {}
                    }
                }
                out.push_str(after[..open].trim_end());
                rest = &after[close..];
            }
            None => {
                out.push_str(&after[..kind]);
                rest = &after[kind..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The most HTTP worker threads: each is an OS thread with its own runtime, and more than
/// this would meet a container's thread limit before any request.
const MAX_WORKERS: usize = 1024;

impl Settings {
    /// Loads settings from defaults, the optional file, and the process environment.
    /// Returns the `TANDEM_*` variables that name no setting, for the caller to report.
    pub fn load(file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        // A bare DATABASE_URL, as other tools read it, comes before the file: the file, or
        // TANDEM_DATABASE_URL, says which database is Tandem's.
        // Set but blank (a compose file's unset interpolation), it says nothing.
        let mut figment = Figment::new();
        if std::env::var("DATABASE_URL").is_ok_and(|url| !url.trim().is_empty()) {
            figment = figment.merge(Env::raw().only(&["DATABASE_URL"]));
        }
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Variables that are not Unicode name no setting (figment passes over them too).
        let tandem: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| {
                k.get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case("TANDEM_"))
            })
            .collect();
        let unknown: Vec<String> = tandem
            .iter()
            .filter_map(|(k, _)| {
                let key = k.get("TANDEM_".len()..)?.to_lowercase();
                let section = key.split("__").next().unwrap_or_default().to_owned();
                (!ENV_SECTIONS.contains(&section.as_str())).then(|| k.clone())
            })
            .collect();
        figment = figment.merge(Env::prefixed("TANDEM_").split("__").filter(|k| {
            let section = k.as_str().split('.').next().unwrap_or_default();
            ENV_SECTIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(section))
        }));
        // figment reads `1234` or `true` in a variable as a number or a flag; a setting that
        // is text takes the variable's text as it is (an audience that is a number, a
        // secret of digits with its leading zeros).
        for (k, v) in &tandem {
            let key = k["TANDEM_".len()..].to_lowercase().replace("__", ".");
            if TEXT_SETTINGS.contains(&key.as_str()) {
                figment = figment.merge(Serialized::default(&key, v));
            }
        }
        let settings: Self = figment.extract().map_err(unquoted)?;
        settings.check()?;
        Ok((settings, unknown))
    }

    /// Refuses, naming the key, values the types admit that would break later: a worker
    /// count of zero, a WebSocket that could never say hello, history kept past the calendar.
    fn check(&self) -> Result<(), ConfigError> {
        let refuse = |key: &str, why: &str| {
            Err(ConfigError(Box::new(figment::Error::from(format!(
                "{key}: {why}"
            )))))
        };
        if self
            .http
            .workers
            .is_some_and(|n| !(1..=MAX_WORKERS).contains(&n))
        {
            return refuse(
                "http.workers",
                &format!("must be from 1 to {MAX_WORKERS} (leave it out for one per core)"),
            );
        }
        if let Some(why) = origins_refused(&self.http.allowed_origins) {
            return refuse("http.allowed_origins", &why);
        }
        if self
            .database_url
            .as_ref()
            .is_some_and(|url| url.expose().trim().is_empty())
        {
            return refuse(
                "database_url",
                "is empty; leave it out for the SQLite file in data_dir, or name a database",
            );
        }
        // Set but blank, as a compose file's unset interpolation leaves a variable, a text
        // setting would be taken as given: the data dir the working directory, every
        // identity provider's token refused for its issuer or audience.
        let secret = self
            .auth
            .jwt_secret
            .as_ref()
            .map(secrecy::ExposeSecret::expose_secret);
        let texts = [
            ("data_dir", self.data_dir.to_str()),
            ("http.host", Some(self.http.host.as_str())),
            ("auth.jwt_secret", secret),
            (
                "auth.public_key_file",
                self.auth.public_key_file.as_ref().and_then(|f| f.to_str()),
            ),
            ("auth.issuer", self.auth.issuer.as_deref()),
            ("auth.audience", self.auth.audience.as_deref()),
            ("log.filter", Some(self.log.filter.as_str())),
        ];
        if let Some((key, _)) = texts
            .iter()
            .find(|(_, value)| value.is_some_and(|v| v.trim().is_empty()))
        {
            return refuse(
                key,
                "is empty; leave it out for its default, or give it a value",
            );
        }
        // A secret file's closing newline, kept, would sign and check tokens with a key
        // the identity provider does not use.
        if secret.is_some_and(|s| s.trim() != s) {
            return refuse(
                "auth.jwt_secret",
                "begins or ends with whitespace (a secret file's closing newline?); remove it",
            );
        }
        // Found wrong only once the database is open, it would stop a process that has
        // already migrated what others share.
        if self.sync.encryption_key.as_ref().is_some_and(|key| {
            crate::sync::Vault::from_hex(secrecy::ExposeSecret::expose_secret(key)).is_err()
        }) {
            return refuse(
                "sync.encryption_key",
                "must be 64 hex characters (32 bytes); leave it out to have one generated into the data dir",
            );
        }
        // Zero would be taken, and then refuse or stall everything that needs the setting.
        let at_least_one: [(&str, u64, &str); 16] = [
            (
                "http.body_limit",
                self.http.body_limit as u64,
                "every POST would be refused as too large",
            ),
            (
                "http.body_timeout_secs",
                self.http.body_timeout_secs,
                "a POST's body needs time to arrive",
            ),
            (
                "graphql.max_depth",
                self.graphql.max_depth as u64,
                "every query would be refused as too deep",
            ),
            (
                "graphql.max_complexity",
                self.graphql.max_complexity as u64,
                "every query would be refused as too complex",
            ),
            (
                "graphql.max_fields",
                self.graphql.max_fields as u64,
                "every query would be refused for its fields",
            ),
            (
                "graphql.max_batch",
                self.graphql.max_batch as u64,
                "every batch would be refused",
            ),
            (
                "graphql.max_query_bytes",
                self.graphql.max_query_bytes as u64,
                "every query would be refused as too long",
            ),
            (
                "graphql.panel_timeout_ms",
                self.graphql.panel_timeout_ms,
                "a panel needs time to hear from Salesforce",
            ),
            (
                "websocket.max_connections",
                self.websocket.max_connections as u64,
                "a gateway without sockets has no subscriptions",
            ),
            (
                "websocket.max_subscriptions",
                self.websocket.max_subscriptions as u64,
                "a socket that may not subscribe is of no use",
            ),
            (
                "websocket.init_timeout_secs",
                self.websocket.init_timeout_secs,
                "a client needs time to send connection_init",
            ),
            (
                "websocket.keepalive_secs",
                self.websocket.keepalive_secs,
                "a socket cannot be pinged continuously",
            ),
            (
                "websocket.send_timeout_secs",
                self.websocket.send_timeout_secs,
                "a message needs time to reach its client",
            ),
            (
                "sync.poll_interval_secs",
                self.sync.poll_interval_secs,
                "Salesforce cannot be polled continuously",
            ),
            (
                "sync.retry_max_attempts",
                u64::from(self.sync.retry_max_attempts),
                "a failed record is tried at least once",
            ),
            (
                "sync.retry_backoff_secs",
                self.sync.retry_backoff_secs,
                "a record Salesforce turned away for its load would be sent again at once, every round, until its attempts are spent",
            ),
        ];
        if let Some((key, _, why)) = at_least_one.iter().find(|(_, value, _)| *value == 0) {
            return refuse(key, &format!("must be at least 1: {why}"));
        }
        // Waits past a day mean nothing more, and one near the largest number overflows
        // the clock it is added to.
        let waits = [
            ("http.body_timeout_secs", self.http.body_timeout_secs),
            ("graphql.panel_cache_secs", self.graphql.panel_cache_secs),
            (
                "graphql.panel_timeout_ms",
                self.graphql.panel_timeout_ms.div_ceil(1000),
            ),
            (
                "websocket.init_timeout_secs",
                self.websocket.init_timeout_secs,
            ),
            ("websocket.keepalive_secs", self.websocket.keepalive_secs),
            (
                "websocket.send_timeout_secs",
                self.websocket.send_timeout_secs,
            ),
            ("sync.poll_interval_secs", self.sync.poll_interval_secs),
            ("sync.retry_backoff_secs", self.sync.retry_backoff_secs),
        ];
        if let Some((key, _)) = waits.iter().find(|(_, secs)| *secs > MAX_WAIT_SECS) {
            return refuse(key, "must be at most a day (86,400 seconds, 86,400,000 ms)");
        }
        let longest = crate::domain::RetryPolicy::MAX_WAIT.as_secs();
        if self.sync.retry_backoff_secs > longest {
            return refuse(
                "sync.retry_backoff_secs",
                &format!(
                    "must be at most {longest} (an hour): no automatic retry waits longer, however many attempts came before"
                ),
            );
        }
        if self.graphql.response_cache_ms > MAX_RESPONSE_CACHE_MS {
            return refuse(
                "graphql.response_cache_ms",
                &format!("must be at most {MAX_RESPONSE_CACHE_MS} (an hour); 0 turns it off"),
            );
        }
        if !(1..=COLLECTION_LIMIT).contains(&self.sync.batch_size) {
            return refuse(
                "sync.batch_size",
                &format!(
                    "must be from 1 to {COLLECTION_LIMIT}, the most records Salesforce takes in one collection call"
                ),
            );
        }
        if self.sync.unanswered_create_secs > MAX_OVERLAP_SECS {
            return refuse(
                "sync.unanswered_create_secs",
                &format!("must be at most {MAX_OVERLAP_SECS} (a day)"),
            );
        }
        if self.sync.poll_overlap_secs > MAX_OVERLAP_SECS {
            return refuse(
                "sync.poll_overlap_secs",
                &format!("must be at most {MAX_OVERLAP_SECS} (a day)"),
            );
        }
        if !(1..=MAX_HISTORY_DAYS).contains(&self.sync.history_days) {
            return refuse(
                "sync.history_days",
                &format!(
                    "must be from 1 to {MAX_HISTORY_DAYS} (a hundred years): every round prunes what is older, the event log with it"
                ),
            );
        }
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&self.auth.token_ttl_secs) {
            return refuse(
                "auth.token_ttl_secs",
                &format!("must be from 1 to {MAX_TOKEN_TTL_SECS} (ten years)"),
            );
        }
        let pages = &self.graphql;
        if pages.max_page_size == 0 || !(1..=pages.max_page_size).contains(&pages.default_page_size)
        {
            return refuse(
                "graphql.default_page_size",
                &format!(
                    "must be from 1 to graphql.max_page_size ({}), itself at least 1",
                    pages.max_page_size
                ),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return refuse(
                "log.filter",
                &format!("'{}' is not a filter: {e}", self.log.filter),
            );
        }
        Ok(())
    }

    pub fn database_url(&self) -> DatabaseUrl {
        self.database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::sqlite_file(&self.data_dir.join("tandem.db")))
    }

    /// The gateway's address on `port` as a browser on this machine opens it: a wildcard
    /// host (`0.0.0.0`, `::`) is reached as `localhost`, an IPv6 address in brackets.
    pub fn base_url(&self, port: u16) -> String {
        let host = self.http.host.as_str();
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() => format!("http://localhost:{port}"),
            Ok(std::net::IpAddr::V6(ip)) => format!("http://[{ip}]:{port}"),
            _ => format!("http://{host}:{port}"),
        }
    }
}

/// What an SQLite URL's file part escapes: sqlx reads it `%`-decoded and up to the first `?`.
const SQLITE_FILE_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');

/// A Salesforce REST API version Tandem can call: `NN.N`, no older than 46.0, the first
/// version with the collection upserts the sync sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion(String);

/// The oldest API version Tandem can use.
const OLDEST_API_VERSION: (u32, u32) = (46, 0);

impl ApiVersion {
    pub fn parse(text: &str) -> Result<Self, String> {
        // Digits only: `parse` alone would take a sign.
        let number = |part: &str| {
            Some(part)
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u32>().ok())
        };
        let version = text
            .split_once('.')
            .and_then(|(major, minor)| Some((number(major)?, number(minor)?)))
            .ok_or_else(|| format!("'{text}' is not a Salesforce API version such as 62.0"))?;
        if version < OLDEST_API_VERSION {
            let (major, minor) = OLDEST_API_VERSION;
            return Err(format!(
                "Salesforce API version {text} is older than {major}.{minor}, the first with the collection upserts the sync sends"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A number in TOML (`api_version = 62.0`) or an environment variable reads as a float.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Number(n) => format!("{n:.1}"),
        };
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A database URL whose password never reaches a log.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// An SQLite database in this file, made when it does not exist. The URL's file part is
    /// read `%`-decoded and ends at the first `?`: those and `#` are escaped.
    pub fn sqlite_file(path: &Path) -> Self {
        let file = path.display().to_string();
        let file = percent_encoding::utf8_percent_encode(&file, SQLITE_FILE_ESCAPES);
        Self(format!("sqlite://{file}?mode=rwc"))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }

    /// The file an SQLite URL names, when it names one (not `:memory:`).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.0.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let file = rest.split('?').next().unwrap_or_default();
        if file.is_empty() || file.starts_with(":memory:") {
            return None;
        }
        Some(PathBuf::from(
            &*percent_encoding::percent_decode_str(file).decode_utf8_lossy(),
        ))
    }

    /// The directory an SQLite URL's file is in, when it names one (not `:memory:`).
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        self.sqlite_path()?
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(Path::to_path_buf)
    }

    /// The URL with any password replaced by `***`: in its user part, or given as a
    /// `password=` parameter (`?password=…`, or a keyword connection string).
    pub fn redacted(&self) -> String {
        let mut text = self.user_part_redacted();
        let mut from = 0;
        while let Some(found) = text[from..].to_ascii_lowercase().find("password") {
            let after_key = from + found + "password".len();
            // `password=x`, or in a keyword string `password = x` and `password = 'x y'`.
            let rest = &text[after_key..];
            let Some(value) = rest.trim_start().strip_prefix('=') else {
                from = after_key;
                continue;
            };
            let start = text.len() - value.trim_start().len();
            let end = match text[start..].strip_prefix('\'') {
                Some(quoted) => quoted.find('\'').map_or(text.len(), |n| start + n + 2),
                None => text[start..]
                    .find(|c: char| c == '&' || c.is_whitespace())
                    .map_or(text.len(), |n| start + n),
            };
            text.replace_range(start..end, "***");
            from = start + 3;
        }
        text
    }

    fn user_part_redacted(&self) -> String {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let auth = &self.0[scheme + 3..at];
                match auth.split_once(':') {
                    Some((user, _)) => {
                        format!("{}{}:***{}", &self.0[..scheme + 3], user, &self.0[at..])
                    }
                    None => self.0.clone(),
                }
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_sqlite_file_in_a_directory_with_url_characters_is_the_file_opened() {
        use std::str::FromStr;
        let path = std::path::Path::new("/srv/data?old #2/100% sure/tandem.db");
        let url = super::DatabaseUrl::sqlite_file(path);
        let options = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url.expose()).unwrap();
        assert_eq!(options.get_filename(), path);
        assert_eq!(
            url.sqlite_dir().unwrap(),
            std::path::Path::new("/srv/data?old #2/100% sure")
        );
    }

    #[test]
    fn the_address_printed_is_one_a_browser_opens() {
        let at = |host: &str| {
            let mut settings = super::Settings::default();
            settings.http.host = host.to_owned();
            settings.base_url(8080)
        };
        assert_eq!(at("127.0.0.1"), "http://127.0.0.1:8080");
        assert_eq!(at("0.0.0.0"), "http://localhost:8080");
        assert_eq!(at("::"), "http://localhost:8080");
        assert_eq!(at("::1"), "http://[::1]:8080");
        assert_eq!(at("tandem.internal"), "http://tandem.internal:8080");
    }

    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn database_url_hides_its_password() {
        let url = DatabaseUrl::new("postgres://tandem:hunter2@db:5432/tandem");
        assert_eq!(
            format!("{url:?}"),
            "DatabaseUrl(postgres://tandem:***@db:5432/tandem)"
        );
        assert!(!url.is_sqlite());
        for (given, shown) in [
            (
                "postgres://tandem@db/tandem?sslmode=require&password=hunter2",
                "postgres://tandem@db/tandem?sslmode=require&password=***",
            ),
            (
                "host=db user=tandem Password=hunter2 dbname=tandem",
                "host=db user=tandem Password=*** dbname=tandem",
            ),
            (
                "postgres://tandem:hunter2@db/t?password=hunter2",
                "postgres://tandem:***@db/t?password=***",
            ),
            (
                "host=db password = hunter2 dbname=tandem",
                "host=db password = *** dbname=tandem",
            ),
            (
                "host=db password='hunter 2' dbname=tandem",
                "host=db password=*** dbname=tandem",
            ),
            ("host=db passwordless=true", "host=db passwordless=true"),
        ] {
            assert_eq!(DatabaseUrl::new(given).redacted(), shown);
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn values_that_would_break_later_are_refused_at_load_naming_the_key() {
        figment::Jail::expect_with(|jail| {
            for (var, value, key) in [
                ("TANDEM_HTTP__WORKERS", "0", "http.workers"),
                ("TANDEM_HTTP__WORKERS", "5000", "http.workers"),
                ("TANDEM_DATABASE_URL", " ", "database_url"),
                (
                    "TANDEM_WEBSOCKET__INIT_TIMEOUT_SECS",
                    "0",
                    "websocket.init_timeout_secs",
                ),
                (
                    "TANDEM_WEBSOCKET__MAX_CONNECTIONS",
                    "0",
                    "websocket.max_connections",
                ),
                ("TANDEM_SYNC__BATCH_SIZE", "0", "sync.batch_size"),
                (
                    "TANDEM_SYNC__ENCRYPTION_KEY",
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
                    "sync.encryption_key",
                ),
                (
                    "TANDEM_SYNC__POLL_OVERLAP_SECS",
                    "86401",
                    "sync.poll_overlap_secs",
                ),
                ("TANDEM_SYNC__BATCH_SIZE", "201", "sync.batch_size"),
                (
                    "TANDEM_SYNC__UNANSWERED_CREATE_SECS",
                    "86401",
                    "sync.unanswered_create_secs",
                ),
                (
                    "TANDEM_GRAPHQL__PANEL_TIMEOUT_MS",
                    "0",
                    "graphql.panel_timeout_ms",
                ),
                (
                    "TANDEM_SYNC__HISTORY_DAYS",
                    "4294967295",
                    "sync.history_days",
                ),
                ("TANDEM_SYNC__HISTORY_DAYS", "0", "sync.history_days"),
                ("TANDEM_AUTH__TOKEN_TTL_SECS", "0", "auth.token_ttl_secs"),
                (
                    "TANDEM_AUTH__TOKEN_TTL_SECS",
                    "18446744073709551615",
                    "auth.token_ttl_secs",
                ),
                (
                    "TANDEM_GRAPHQL__DEFAULT_PAGE_SIZE",
                    "0",
                    "graphql.default_page_size",
                ),
                (
                    "TANDEM_GRAPHQL__DEFAULT_PAGE_SIZE",
                    "101",
                    "graphql.default_page_size",
                ),
                ("TANDEM_LOG__FILTER", "tandem=debg[", "log.filter"),
                ("TANDEM_HTTP__BODY_LIMIT", "0", "http.body_limit"),
                (
                    "TANDEM_HTTP__ALLOWED_ORIGINS",
                    "[\"https://desk.example.com/\"]",
                    "http.allowed_origins",
                ),
                (
                    "TANDEM_HTTP__ALLOWED_ORIGINS",
                    "[\"*\", \"https://desk.example.com\"]",
                    "http.allowed_origins",
                ),
                (
                    "TANDEM_HTTP__BODY_TIMEOUT_SECS",
                    "0",
                    "http.body_timeout_secs",
                ),
                ("TANDEM_GRAPHQL__MAX_DEPTH", "0", "graphql.max_depth"),
                (
                    "TANDEM_GRAPHQL__MAX_COMPLEXITY",
                    "0",
                    "graphql.max_complexity",
                ),
                ("TANDEM_GRAPHQL__MAX_FIELDS", "0", "graphql.max_fields"),
                ("TANDEM_GRAPHQL__MAX_BATCH", "0", "graphql.max_batch"),
                (
                    "TANDEM_SYNC__RETRY_BACKOFF_SECS",
                    "0",
                    "sync.retry_backoff_secs",
                ),
                (
                    "TANDEM_GRAPHQL__MAX_QUERY_BYTES",
                    "0",
                    "graphql.max_query_bytes",
                ),
                (
                    "TANDEM_GRAPHQL__RESPONSE_CACHE_MS",
                    "3600001",
                    "graphql.response_cache_ms",
                ),
                (
                    "TANDEM_WEBSOCKET__MAX_SUBSCRIPTIONS",
                    "0",
                    "websocket.max_subscriptions",
                ),
                (
                    "TANDEM_WEBSOCKET__KEEPALIVE_SECS",
                    "0",
                    "websocket.keepalive_secs",
                ),
                (
                    "TANDEM_WEBSOCKET__SEND_TIMEOUT_SECS",
                    "0",
                    "websocket.send_timeout_secs",
                ),
                (
                    "TANDEM_SYNC__POLL_INTERVAL_SECS",
                    "0",
                    "sync.poll_interval_secs",
                ),
                (
                    "TANDEM_SYNC__RETRY_MAX_ATTEMPTS",
                    "0",
                    "sync.retry_max_attempts",
                ),
                (
                    "TANDEM_SYNC__POLL_INTERVAL_SECS",
                    "18446744073709551615",
                    "sync.poll_interval_secs",
                ),
                (
                    "TANDEM_WEBSOCKET__KEEPALIVE_SECS",
                    "86401",
                    "websocket.keepalive_secs",
                ),
                (
                    "TANDEM_GRAPHQL__PANEL_TIMEOUT_MS",
                    "86400001",
                    "graphql.panel_timeout_ms",
                ),
                (
                    "TANDEM_SYNC__RETRY_BACKOFF_SECS",
                    "1000000",
                    "sync.retry_backoff_secs",
                ),
                (
                    "TANDEM_SYNC__RETRY_BACKOFF_SECS",
                    "3601",
                    "sync.retry_backoff_secs",
                ),
                ("TANDEM_DATA_DIR", "", "data_dir"),
                ("TANDEM_AUTH__AUDIENCE", "", "auth.audience"),
                ("TANDEM_AUTH__ISSUER", " ", "auth.issuer"),
                ("TANDEM_HTTP__HOST", "", "http.host"),
                ("TANDEM_LOG__FILTER", "", "log.filter"),
                (
                    "TANDEM_AUTH__JWT_SECRET",
                    "0123456789abcdef0123456789abcdef\n",
                    "auth.jwt_secret",
                ),
            ] {
                jail.set_env(var, value);
                let message = Settings::load(None).unwrap_err().to_string();
                assert!(message.contains(key), "{var}: {message}");
                jail.clear_env();
            }
            assert!(Settings::load(None).is_ok());
            Ok(())
        });
    }

    #[test]
    fn allowed_origins_are_origins_as_browsers_send_them() {
        let refused = |origins: &[&str]| {
            super::origins_refused(&origins.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        };
        for good in [
            &[][..],
            &["*"],
            &["https://desk.example.com", "http://localhost:3000"],
            &[
                "http://[::1]:8080",
                "https://127.0.0.1",
                "https://[2001:db8::1]",
            ],
        ] {
            assert_eq!(refused(good), None, "{good:?}");
        }
        for bad in [
            "https://desk.example.com/",
            "https://desk.example.com/app",
            "desk.example.com",
            "ftp://desk.example.com",
            "https://Desk.example.com",
            "https://",
            "https://desk.example.com?x",
            " https://desk.example.com",
            "https://a:b:c",
            "https://[::1",
            "https://[::1]x",
            "https://[0:0::1]",
            "https://desk.example.com:443",
            "http://desk.example.com:80",
            "https://desk.example.com:",
            "https://desk.example.com:65536",
            "https://desk.example.com:08080",
            "https://bücher.example",
        ] {
            let why = refused(&[bad]).unwrap_or_default();
            assert!(
                why.contains("not an origin as a browser sends it"),
                "{bad}: {why}"
            );
        }
        assert!(refused(&["*", "https://desk.example.com"]).is_some());
    }

    #[test]
    fn an_api_version_tandem_cannot_use_is_refused_with_the_reason() {
        assert_eq!(ApiVersion::parse("62.0").unwrap().as_str(), "62.0");
        assert_eq!(ApiVersion::parse("46.0").unwrap().as_str(), "46.0");
        let old = ApiVersion::parse("45.0").unwrap_err();
        assert!(old.contains("older than 46.0"), "{old}");
        for bad in ["v62.0", "62", "62.0.1", "sixty", "", ".5", "62.x"] {
            let refused = ApiVersion::parse(bad).unwrap_err();
            assert!(
                refused.contains("not a Salesforce API version"),
                "{bad}: {refused}"
            );
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn the_api_version_is_checked_where_it_is_set() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tandem.toml", "[sync]\napi_version = 63.0\n")?;
            let (settings, _) = Settings::load(Some(Path::new("tandem.toml"))).unwrap();
            assert_eq!(settings.sync.api_version.as_str(), "63.0");
            jail.set_env("TANDEM_SYNC__API_VERSION", "40.0");
            let error = Settings::load(Some(Path::new("tandem.toml"))).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("older than 46.0"), "{message}");
            assert!(
                message.to_lowercase().contains("sync.api_version"),
                "{message}"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn allowed_origins_come_as_a_list_or_as_one_text_of_them() {
        figment::Jail::expect_with(|jail| {
            let both = ["https://desk.example.com", "http://localhost:3000"];
            jail.create_file(
                "tandem.toml",
                "[http]\nallowed_origins = [\"https://desk.example.com\", \"http://localhost:3000\"]\n",
            )?;
            let (settings, _) = Settings::load(Some(Path::new("tandem.toml"))).unwrap();
            assert_eq!(settings.http.allowed_origins, both);
            jail.set_env(
                "TANDEM_HTTP__ALLOWED_ORIGINS",
                "https://desk.example.com, http://localhost:3000",
            );
            let (settings, _) = Settings::load(None).unwrap();
            assert_eq!(settings.http.allowed_origins, both);
            Ok(())
        });
    }

    #[test]
    fn an_sqlite_url_names_the_directory_its_file_is_made_in() {
        let dir = |url: &str| DatabaseUrl(url.into()).sqlite_dir();
        assert_eq!(
            dir("sqlite://var/desk.db?mode=rwc"),
            Some(PathBuf::from("var"))
        );
        assert_eq!(
            dir("sqlite:///opt/tandem/db/desk.db"),
            Some(PathBuf::from("/opt/tandem/db"))
        );
        assert_eq!(dir("sqlite:desk.db"), None);
        assert_eq!(dir("sqlite::memory:"), None);
        assert_eq!(dir("postgres://localhost/tandem"), None);
    }

    #[test]
    fn secrets_do_not_print_in_debug() {
        let mut settings = Settings::default();
        settings.auth.jwt_secret = Some(SecretString::from("very-secret-value"));
        assert!(!format!("{settings:?}").contains("very-secret-value"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn a_file_that_cannot_be_read_as_settings_does_not_print_its_secrets() {
        let secret = "3f9a0c1d2e3f40516273849a0b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4";
        let files = [
            format!("[http]\nport = 9000\n[sync]\nencryption_key = {secret}\n"),
            format!("[sync]\nencryption_key = \"{secret}\"\n[auth]\njwt_secret = 0{secret}\n"),
            format!("database_url = postgres://tandem:{secret}@db/tandem\n"),
            format!("[sync]\nencryption_key = [\"{secret}\"]\n"),
            format!("[auth]\njwt_secret = {{ value = \"{secret}\" }}\n"),
            format!("[http]\nport = \"{secret}\"\n"),
            format!("[http]\nport = \"ab\\\"{secret}\"\n"),
        ];
        for file in files {
            figment::Jail::expect_with(|jail| {
                jail.create_file("tandem.toml", &file)?;
                let error = Settings::load(Some(Path::new("tandem.toml")))
                    .unwrap_err()
                    .to_string();
                assert!(!error.contains(&secret[..16]), "{file}: {error}");
                assert!(error.contains("tandem.toml"), "{error}");
                Ok(())
            });
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn environment_variables_override_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tandem.toml", "[http]\nport = 9000\nhost = \"0.0.0.0\"\n")?;
            jail.set_env("TANDEM_HTTP__PORT", "9100");
            jail.set_env("TANDEM_DATA_DIR", "/var/lib/tandem");
            jail.set_env("DATABASE_URL", "postgres://u:p@db/tandem");
            jail.set_env("TANDEM_NOT_A_SETTING", "x");
            jail.set_env("tandem_htp__port", "9200");
            jail.set_env("TANDEM_AUTH__AUDIENCE", "1234567890");
            jail.set_env("tandem_auth__issuer", "true");
            jail.set_env(
                "TANDEM_AUTH__JWT_SECRET",
                "000123456789012345678901234567890123",
            );
            let (settings, unknown) = Settings::load(Some(Path::new("tandem.toml"))).unwrap();
            assert_eq!(settings.http.port, 9100);
            assert_eq!(settings.http.host, "0.0.0.0");
            assert_eq!(settings.data_dir, PathBuf::from("/var/lib/tandem"));
            assert_eq!(settings.database_url().expose(), "postgres://u:p@db/tandem");
            assert_eq!(settings.auth.audience.as_deref(), Some("1234567890"));
            assert_eq!(settings.auth.issuer.as_deref(), Some("true"));
            assert_eq!(
                settings.auth.jwt_secret.as_ref().map(|s| s.expose_secret()),
                Some("000123456789012345678901234567890123"),
                "a secret of digits keeps its leading zeros"
            );
            assert!(unknown.contains(&"TANDEM_NOT_A_SETTING".to_owned()));
            assert!(
                unknown.contains(&"tandem_htp__port".to_owned()),
                "a misspelt section is reported in any case: {unknown:?}"
            );
            assert!(
                !unknown
                    .iter()
                    .any(|k| k == "TANDEM_HTTP__PORT" || k == "TANDEM_DATA_DIR")
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn a_bare_database_url_gives_way_to_the_file_and_to_tandems_own_variable() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tandem.toml", "database_url = \"postgres://db/tandem\"\n")?;
            jail.set_env("DATABASE_URL", "postgres://db/another_app");
            let (settings, _) = Settings::load(Some(Path::new("tandem.toml"))).unwrap();
            assert_eq!(settings.database_url().expose(), "postgres://db/tandem");
            jail.set_env("TANDEM_DATABASE_URL", "postgres://db/tandem_staging");
            let (settings, _) = Settings::load(Some(Path::new("tandem.toml"))).unwrap();
            assert_eq!(
                settings.database_url().expose(),
                "postgres://db/tandem_staging"
            );
            // Blank, it says nothing, as if it were not set.
            jail.clear_env();
            jail.set_env("DATABASE_URL", "");
            let (settings, _) = Settings::load(None).unwrap();
            assert!(settings.database_url().is_sqlite());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn file_keys_override_defaults_and_unknown_keys_are_refused() {
        // Inside a Jail: the environment test beside this one sets TANDEM_* variables.
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "good.toml",
                "[http]\nport = 9999\n[graphql]\nmax_depth = 7\n",
            )?;
            let (settings, _) = Settings::load(Some(Path::new("good.toml"))).unwrap();
            assert_eq!(settings.http.port, 9999);
            assert_eq!(settings.graphql.max_depth, 7);

            jail.create_file("bad.toml", "[http]\nprot = 1\n")?;
            let err = Settings::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("prot"), "{err}");
            Ok(())
        });
    }
}
