use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{Stream, TryStreamExt};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::SalesforceError;
use super::error::from_response;
use super::session::{Credentials, OnRotation, Session, SessionOwner};
use super::types::{
    ApiUsage, Deleted, DeletedRecord, Describe, Record, RecordResult, Updated, UpsertResult,
    parse_datetime,
};
use crate::domain::SalesforceId;

/// Where the org is and how to reach it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://login.salesforce.com`, `https://test.salesforce.com`, or a simulator's URL.
    pub login_url: String,
    /// Such as `62.0`.
    pub api_version: String,
    pub credentials: Credentials,
    /// Where refresh tokens Salesforce rotates in are kept.
    pub on_rotation: Option<OnRotation>,
    /// The refresh token in the credentials is one Salesforce rotated in for the connection,
    /// not one a person gave: [`SalesforceClient::revoke`] voids it too.
    pub refresh_token_issued: bool,
    /// How long the answer to a quick call may take: signing in, a describe, one record.
    pub timeout: Duration,
    /// How long the answer to a slow call may take: a query, which Salesforce runs for up to
    /// two minutes before it gives up with `QUERY_TIMEOUT`, or a collection of 200 writes,
    /// each running the org's triggers and flows. Cutting one off sooner would only send it
    /// again, to be cut off again, or leave unknown whether its writes were made.
    pub slow_timeout: Duration,
    /// How long the answer to a create may take: as long as Salesforce runs a call (ten
    /// minutes). A create cut off sooner may still be made after; the next round, looking for
    /// it too early, would not find it and send it again.
    pub once_timeout: Duration,
    /// Attempts for a call that is safe to repeat, the first included.
    pub max_attempts: u32,
    /// No retry starts once this much time has passed since the first attempt.
    pub retry_budget: Duration,
    pub backoff_base: Duration,
}

impl ClientConfig {
    pub fn new(login_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            login_url: login_url.into(),
            api_version: "62.0".into(),
            credentials,
            on_rotation: None,
            refresh_token_issued: false,
            timeout: Duration::from_secs(30),
            slow_timeout: Duration::from_secs(150),
            once_timeout: Duration::from_secs(600),
            max_attempts: 4,
            retry_budget: Duration::from_secs(30),
            backoff_base: Duration::from_millis(200),
        }
    }
}

/// Collections take at most this many records per call.
pub const COLLECTION_LIMIT: usize = 200;

/// How far the org's clock, as its answers' `Date` tells it, may be from this host's before it
/// is taken for no clock at all.
pub const ORG_CLOCK_SKEW: chrono::Duration = chrono::Duration::hours(1);

pub struct SalesforceClient {
    http: reqwest::Client,
    config: ClientConfig,
    session: Arc<SessionOwner>,
    describes: Mutex<HashMap<String, Arc<Describe>>>,
    usage: (AtomicU64, AtomicU64),
    calls: AtomicU64,
    /// The generation of the last session whose instance URL was asked for as new
    /// (`newly_signed_in_instance_url`); `u64::MAX` before any.
    instance_noted: AtomicU64,
    /// The org's time by the `Date` of the last answer, and when that answer arrived.
    org_clock: Mutex<Option<(DateTime<Utc>, Instant)>>,
    /// The same for the last answer's `Date` however far from this host's clock.
    any_clock: Mutex<Option<(DateTime<Utc>, Instant)>>,
}

/// Whether a URL names this host: `localhost` or a loopback address.
fn on_this_host(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
#[test]
fn an_org_on_this_host_is_told_from_one_out_there() {
    for here in [
        "http://127.0.0.1:8081",
        "http://localhost:9000/",
        "http://[::1]:8081",
        "http://127.0.0.2",
    ] {
        assert!(on_this_host(here), "{here}");
    }
    for there in [
        "https://login.salesforce.com",
        "https://acme.my.salesforce.com",
        "http://10.0.0.1",
        "not a url",
    ] {
        assert!(!on_this_host(there), "{there}");
    }
}

/// The time a clock read at one instant shows at `at`.
fn time_at(clock: &Mutex<Option<(DateTime<Utc>, Instant)>>, at: Instant) -> Option<DateTime<Utc>> {
    let (date, arrived) = (*clock.lock().unwrap_or_else(|p| p.into_inner()))?;
    let since = chrono::Duration::from_std(at.saturating_duration_since(arrived)).ok()?;
    let before = chrono::Duration::from_std(arrived.saturating_duration_since(at)).ok()?;
    Some(date + since - before)
}

/// How a call is sent.
#[derive(Clone, Copy)]
struct Call {
    /// Whether a failed call may be sent again: only when repeating it cannot apply it twice.
    repeat: Repeat,
    /// How long Salesforce is given to answer.
    wait: Wait,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Never,
    Always,
    /// Only once the failed attempt is known to have ended in Salesforce: it never arrived,
    /// was turned away, failed there, or was answered. Not after a connection cut mid-call or
    /// an edge that gave up waiting (502, 504), which leave it running.
    Ended,
}

#[derive(Clone, Copy)]
enum Wait {
    /// [`ClientConfig::timeout`].
    Quick,
    /// [`ClientConfig::slow_timeout`].
    Slow,
    /// [`ClientConfig::once_timeout`]: as long as Salesforce runs a call, for one that may
    /// create records. Cut off sooner, it may go on and create them after the answer was
    /// given up on, and an attempt sent meanwhile would not see them.
    Whole,
}

impl Call {
    /// A quick call that may be repeated: a describe, a read, an update by id.
    const QUICK: Self = Self {
        repeat: Repeat::Always,
        wait: Wait::Quick,
    };
    /// A create, which repeating would make twice.
    const ONCE: Self = Self {
        repeat: Repeat::Never,
        wait: Wait::Whole,
    };
    /// A query, a page of one, or a collection of updates or deletes.
    const SLOW: Self = Self {
        repeat: Repeat::Always,
        wait: Wait::Slow,
    };
    /// A collection of creates.
    const SLOW_ONCE: Self = Self {
        repeat: Repeat::Never,
        wait: Wait::Whole,
    };
    /// An upsert by external id: repeating one that was answered makes nothing twice, but
    /// one sent while an earlier attempt still runs may create what that one creates.
    const UPSERT: Self = Self {
        repeat: Repeat::Ended,
        wait: Wait::Whole,
    };
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    #[serde(default)]
    done: bool,
    #[serde(default)]
    next_records_url: Option<String>,
    #[serde(default)]
    records: Vec<Record>,
}

impl QueryPage {
    /// Where the next page is, if there is one.
    fn next(&self) -> Result<Next, SalesforceError> {
        if self.done {
            return Ok(Next::Done);
        }
        let url = self.next_records_url.clone().ok_or_else(|| {
            SalesforceError::Decode("a query page is not done but has no nextRecordsUrl".into())
        })?;
        Ok(Next::Url(url))
    }
}

/// The page a query stream reads next.
enum Next {
    /// The query resource's path and the SOQL.
    First(String, String),
    /// A `nextRecordsUrl`.
    Url(String),
    Done,
}

/// Query subrequests Salesforce takes in one `POST /composite`.
pub const COMPOSITE_QUERIES: usize = 5;

/// The rows a query reads: the live ones (`query`), or those in the recycle bin and
/// activities Salesforce archived (closed, and due more than a year ago) too (`queryAll`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    Live,
    All,
}

impl Rows {
    fn resource(self) -> &'static str {
        match self {
            Rows::Live => "query",
            Rows::All => "queryAll",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveResult {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<SaveError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveError {
    #[serde(alias = "errorCode")]
    status_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

impl SalesforceClient {
    pub fn new(config: ClientConfig) -> Result<Self, SalesforceError> {
        let mut http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10));
        // A proxy the environment names (`HTTPS_PROXY`) is the way out to Salesforce: an org
        // on this host, such as the built-in simulator, is reached directly.
        if on_this_host(&config.login_url) {
            http = http.no_proxy();
        }
        let http = http
            .build()
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        let session = Arc::new(SessionOwner::new(
            http.clone(),
            config.login_url.clone(),
            config.credentials.clone(),
            config.on_rotation.clone(),
            config.refresh_token_issued,
        ));
        Ok(Self {
            http,
            config,
            session,
            describes: Mutex::new(HashMap::new()),
            usage: (AtomicU64::new(0), AtomicU64::new(0)),
            calls: AtomicU64::new(0),
            instance_noted: AtomicU64::new(u64::MAX),
            org_clock: Mutex::new(None),
            any_clock: Mutex::new(None),
        })
    }

    /// The org's time at `at` at the latest, by the `Date` of the last answer: never later
    /// than the org's clock then (the date is cut to the second, and stamped before the
    /// answer left). `None` before an answer with a date.
    pub fn org_time_at(&self, at: Instant) -> Option<DateTime<Utc>> {
        time_at(&self.org_clock, at)
    }

    /// [`Self::org_time_at`] by the last answer's `Date` even when it is too far from this
    /// host's clock to be taken for the org's.
    pub fn stated_time_at(&self, at: Instant) -> Option<DateTime<Utc>> {
        time_at(&self.any_clock, at)
    }

    /// The refresh token to keep: the one given, or the one Salesforce last rotated in.
    pub async fn refresh_token(&self) -> Option<secrecy::SecretString> {
        self.session.refresh_token().await
    }

    /// Takes a refresh token another holder of the connection was given in rotation, for the
    /// next renewal; the session in use goes on.
    pub async fn adopt_refresh_token(&self, token: secrecy::SecretString) {
        self.session.adopt_refresh_token(token).await;
    }

    /// Voids the session this client signed in, at Salesforce, and signs in no more.
    pub async fn revoke(&self) -> Result<(), SalesforceError> {
        self.session.revoke().await
    }

    /// Signs in now, so bad credentials surface before anything is saved.
    pub async fn verify(&self) -> Result<(), SalesforceError> {
        self.session.current().await.map(|_| ())
    }

    /// The instance URL of the signed-in session, for links such as "view in Salesforce".
    pub async fn instance_url(&self) -> Result<String, SalesforceError> {
        Ok(self.session.current().await?.instance_url.clone())
    }

    /// The instance URL of the session signed in now, the first time it is asked of that
    /// session, whoever signed it in; `None` once asked, or with no session (signs in for
    /// none).
    pub async fn newly_signed_in_instance_url(&self) -> Option<String> {
        let session = self.session.signed_in().await?;
        let noted = self
            .instance_noted
            .swap(session.generation, Ordering::AcqRel);
        (noted != session.generation).then(|| session.instance_url.clone())
    }

    /// The identity URL of the signed-in user, when the token response carried one.
    pub async fn identity_url(&self) -> Result<Option<String>, SalesforceError> {
        Ok(self.session.current().await?.identity.clone())
    }

    /// The signed-in user's username, read from the identity URL (`None` when the sign-in
    /// named none).
    pub async fn username(&self) -> Result<Option<String>, SalesforceError> {
        #[derive(Deserialize)]
        struct Identity {
            username: Option<String>,
        }
        let session = self.session.current().await?;
        let Some(url) = session.identity.as_deref() else {
            return Ok(None);
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .get(url)
            .bearer_auth(session.access_token.expose_secret())
            .query(&[("format", "json")])
            .send()
            .await
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(from_response(status.as_u16(), &bytes));
        }
        let identity: Identity = bytes_body::Body(bytes).json()?;
        Ok(identity.username)
    }

    /// The daily API usage reported by the most recent response.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        let max = self.usage.1.load(Ordering::Relaxed);
        (max > 0).then(|| ApiUsage {
            used: self.usage.0.load(Ordering::Relaxed),
            max,
        })
    }

    /// REST calls sent so far, retries and renewals included.
    pub fn calls_made(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn data_path(&self, rest: &str) -> String {
        format!(
            "/services/data/v{}/{}",
            self.config.api_version,
            rest.trim_start_matches('/')
        )
    }

    /// Sends one REST call: renews the session once on 401, retries transient failures with
    /// exponential backoff and jitter when `call` allows, and decodes error bodies.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        call: Call,
    ) -> Result<(StatusCode, bytes_body::Body), SalesforceError> {
        let started = Instant::now();
        let mut attempt = 0;
        let mut session = self.signed_in(None, started, &mut attempt).await?;
        let mut renewed = false;
        loop {
            attempt += 1;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", session.instance_url))
                .bearer_auth(session.access_token.expose_secret())
                .query(query);
            request = request.timeout(match call.wait {
                Wait::Quick => self.config.timeout,
                Wait::Slow => self.config.slow_timeout,
                Wait::Whole => self.config.once_timeout,
            });
            if let Some(body) = body {
                request = request.json(body);
            }
            // Judged when the call has failed, not before it was sent: one that ran past the
            // budget (a slow call cut off at its timeout, say) is not sent again.
            let may_retry = |ended: bool| {
                let repeatable = match call.repeat {
                    Repeat::Never => false,
                    Repeat::Always => true,
                    Repeat::Ended => ended,
                };
                repeatable
                    && attempt < self.config.max_attempts
                    && started.elapsed() < self.config.retry_budget
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(e)
                    if (e.is_timeout() || e.is_connect() || e.is_request())
                        && may_retry(e.is_connect()) =>
                {
                    self.backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(SalesforceError::Transport(e.to_string())),
            };
            if let Some(usage) = response
                .headers()
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
                .and_then(ApiUsage::parse)
            {
                self.usage.0.store(usage.used, Ordering::Relaxed);
                self.usage.1.store(usage.max, Ordering::Relaxed);
            }
            // One far from this host's clock is no org's (a proxy's, say): not taken.
            if let Some(date) = response
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
                .map(|date| date.with_timezone(&Utc))
            {
                let read = Some((date, Instant::now()));
                *self.any_clock.lock().unwrap_or_else(|p| p.into_inner()) = read;
                if (date - Utc::now()).abs() <= ORG_CLOCK_SKEW {
                    *self.org_clock.lock().unwrap_or_else(|p| p.into_inner()) = read;
                }
            }
            let status = response.status();
            let bytes = match response.bytes().await {
                Ok(bytes) => bytes,
                // Answered, so ended: only the answer was cut off.
                Err(e) if may_retry(true) => {
                    tracing::debug!(error = %e, "Salesforce response cut off; retrying");
                    self.backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(SalesforceError::Transport(e.to_string())),
            };
            if status == StatusCode::UNAUTHORIZED && !renewed && session_expired(&bytes) {
                renewed = true;
                session = self
                    .signed_in(Some(session.generation), started, &mut attempt)
                    .await?;
                continue;
            }
            if super::error::busy(status.as_u16())
                && may_retry(!matches!(status.as_u16(), 502 | 504))
            {
                self.backoff(attempt).await;
                continue;
            }
            if status.is_client_error() || status.is_server_error() {
                return Err(from_response(status.as_u16(), &bytes));
            }
            return Ok((status, bytes_body::Body(bytes)));
        }
    }

    /// The session to call with: the current one (or, given the `stale` generation Salesforce
    /// refused, a renewed one). A sign-in the token endpoint could not make now is asked for
    /// again with backoff, as a busy call is, within the call's attempts and budget.
    async fn signed_in(
        &self,
        stale: Option<u64>,
        started: Instant,
        attempt: &mut u32,
    ) -> Result<Arc<Session>, SalesforceError> {
        loop {
            let signed_in = match stale {
                None => self.session.current().await,
                Some(stale) => self.session.renew(stale).await,
            };
            match signed_in {
                Err(e)
                    if !matches!(e, SalesforceError::AuthFailed { .. })
                        && *attempt + 1 < self.config.max_attempts
                        && started.elapsed() < self.config.retry_budget =>
                {
                    *attempt += 1;
                    tracing::debug!(error = %e, "Salesforce sign-in not made now; retrying");
                    self.backoff(*attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn backoff(&self, attempt: u32) {
        let exp = self.config.backoff_base.saturating_mul(1 << attempt.min(8));
        let capped = exp.min(Duration::from_secs(5));
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        tokio::time::sleep(capped.mul_f64(jitter)).await;
    }

    /// Describes an object, once per client.
    pub async fn describe(&self, object: &str) -> Result<Arc<Describe>, SalesforceError> {
        let key = object.to_ascii_lowercase();
        if let Some(cached) = self.describes_lock().get(&key) {
            return Ok(cached.clone());
        }
        let path = self.data_path(&format!("sobjects/{object}/describe"));
        let (_, body) = self
            .call(Method::GET, &path, &[], None, Call::QUICK)
            .await?;
        let describe: Arc<Describe> = Arc::new(body.json()?);
        self.describes_lock().insert(key, describe.clone());
        Ok(describe)
    }

    /// Forgets an object's describe, so that its next use reads the fields afresh.
    pub fn forget_describe(&self, object: &str) {
        self.describes_lock().remove(&object.to_ascii_lowercase());
    }

    fn describes_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Describe>>> {
        self.describes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One record, or `None` when it does not exist (or is in the recycle bin).
    pub async fn get(
        &self,
        object: &str,
        id: &SalesforceId,
        fields: Option<&[&str]>,
    ) -> Result<Option<Record>, SalesforceError> {
        let path = self.data_path(&format!("sobjects/{object}/{id}"));
        let joined = fields.map(|f| f.join(","));
        let query: Vec<(&str, &str)> = joined.iter().map(|f| ("fields", f.as_str())).collect();
        match self
            .call(Method::GET, &path, &query, None, Call::QUICK)
            .await
        {
            Ok((_, body)) => Ok(Some(body.json()?)),
            Err(SalesforceError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A base64 field's bytes (sObject Blob Get: a note's content, a file's body), or `None`
    /// when the record does not exist or the field holds nothing. Blobs cannot be read in a
    /// composite call, so each is a call of its own.
    pub async fn blob(
        &self,
        object: &str,
        id: &SalesforceId,
        field: &str,
    ) -> Result<Option<bytes::Bytes>, SalesforceError> {
        let path = self.data_path(&format!("sobjects/{object}/{id}/{}", url_segment(field)));
        match self.call(Method::GET, &path, &[], None, Call::QUICK).await {
            Ok((_, body)) => Ok(Some(body.0)),
            Err(SalesforceError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create(
        &self,
        object: &str,
        fields: &Record,
    ) -> Result<SalesforceId, SalesforceError> {
        let path = self.data_path(&format!("sobjects/{object}"));
        let (_, body) = self
            .call(
                Method::POST,
                &path,
                &[],
                Some(&Value::Object(fields.clone())),
                Call::ONCE,
            )
            .await?;
        let result: SaveResult = body.json()?;
        parse_id(result.id.as_deref())
    }

    pub async fn update(
        &self,
        object: &str,
        id: &SalesforceId,
        fields: &Record,
    ) -> Result<(), SalesforceError> {
        let path = self.data_path(&format!("sobjects/{object}/{id}"));
        self.call(
            Method::PATCH,
            &path,
            &[],
            Some(&Value::Object(fields.clone())),
            Call::QUICK,
        )
        .await?;
        Ok(())
    }

    /// Creates or updates the record whose external id field holds `value`.
    pub async fn upsert(
        &self,
        object: &str,
        field: &str,
        value: &str,
        fields: &Record,
    ) -> Result<UpsertResult, SalesforceError> {
        let encoded: String = url_segment(value);
        let path = self.data_path(&format!("sobjects/{object}/{field}/{encoded}"));
        let (status, body) = self
            .call(
                Method::PATCH,
                &path,
                &[],
                Some(&Value::Object(fields.clone())),
                Call::UPSERT,
            )
            .await?;
        if status == StatusCode::MULTIPLE_CHOICES {
            return Err(SalesforceError::Api {
                status: 300,
                error_code: "MULTIPLE_CHOICES".into(),
                message: format!("several {object} records have {field} = {value}"),
                fields: vec![field.to_owned()],
            });
        }
        let result: SaveResult = body.json()?;
        Ok(UpsertResult {
            id: parse_id(result.id.as_deref())?,
            created: result.created.unwrap_or(status == StatusCode::CREATED),
        })
    }

    pub async fn delete(&self, object: &str, id: &SalesforceId) -> Result<(), SalesforceError> {
        let path = self.data_path(&format!("sobjects/{object}/{id}"));
        self.call(Method::DELETE, &path, &[], None, Call::QUICK)
            .await?;
        Ok(())
    }

    /// Runs a query and yields its records, fetching the next page as the stream is read.
    pub fn query<'a>(
        &'a self,
        soql: &str,
    ) -> impl Stream<Item = Result<Record, SalesforceError>> + 'a {
        self.paged(Rows::Live.resource(), soql)
    }

    /// Like [`Self::query`], but includes records in the recycle bin and archived activities.
    pub fn query_all<'a>(
        &'a self,
        soql: &str,
    ) -> impl Stream<Item = Result<Record, SalesforceError>> + 'a {
        self.paged(Rows::All.resource(), soql)
    }

    fn paged<'a>(
        &'a self,
        resource: &str,
        soql: &str,
    ) -> impl Stream<Item = Result<Record, SalesforceError>> + 'a {
        self.pages(
            VecDeque::new(),
            Next::First(self.data_path(resource), soql.to_owned()),
        )
    }

    /// The records in `buffer`, then those of the pages from `next` on, each page fetched as
    /// the stream is read.
    fn pages(
        &self,
        buffer: VecDeque<Record>,
        next: Next,
    ) -> impl Stream<Item = Result<Record, SalesforceError>> + '_ {
        futures_util::stream::try_unfold((buffer, next), move |(mut buffer, mut next)| async move {
            loop {
                if let Some(record) = buffer.pop_front() {
                    return Ok(Some((record, (buffer, next))));
                }
                let (path, q) = match std::mem::replace(&mut next, Next::Done) {
                    Next::Done => return Ok(None),
                    Next::First(path, q) => (path, Some(q)),
                    Next::Url(url) => (url, None),
                };
                let query: Vec<(&str, &str)> = q.iter().map(|q| ("q", q.as_str())).collect();
                let (_, body) = self
                    .call(Method::GET, &path, &query, None, Call::SLOW)
                    .await?;
                let page: QueryPage = body.json()?;
                next = page.next()?;
                buffer.extend(page.records);
            }
        })
    }

    /// Runs several queries, up to five in each `POST /composite` call (which Salesforce
    /// counts as one call), and gives each query's records or error in the order asked. A
    /// query with more than one page has the rest fetched with the usual follow-up calls.
    pub async fn queries(&self, soqls: &[String]) -> Vec<Result<Vec<Record>, SalesforceError>> {
        let asked: Vec<(Rows, &str)> = soqls.iter().map(|s| (Rows::Live, s.as_str())).collect();
        self.queries_reading(&asked).await
    }

    /// [`Self::queries`], each query reading the rows it names.
    pub async fn queries_reading(
        &self,
        soqls: &[(Rows, &str)],
    ) -> Vec<Result<Vec<Record>, SalesforceError>> {
        let mut out = Vec::with_capacity(soqls.len());
        for chunk in soqls.chunks(COMPOSITE_QUERIES) {
            match self.composite_queries(chunk).await {
                Ok(answers) => {
                    for answer in answers {
                        out.push(match answer {
                            Ok((records, next)) => {
                                self.pages(records.into(), next).try_collect().await
                            }
                            Err(e) => Err(e),
                        });
                    }
                }
                Err(e) => out.extend(chunk.iter().map(|_| Err(e.clone()))),
            }
        }
        out
    }

    /// One `POST /composite` of query subrequests: each query's first page and where the
    /// rest is, or the error Salesforce gave for it.
    async fn composite_queries(
        &self,
        soqls: &[(Rows, &str)],
    ) -> Result<Vec<Result<(Vec<Record>, Next), SalesforceError>>, SalesforceError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            body: Value,
            http_status_code: u16,
            reference_id: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answers {
            composite_response: Vec<Answer>,
        }
        let subrequests = soqls
            .iter()
            .enumerate()
            .map(|(n, (rows, soql))| {
                json!({
                    "method": "GET",
                    "url": format!("{}?q={}", self.data_path(rows.resource()), url_segment(soql)),
                    "referenceId": format!("q{n}"),
                })
            })
            .collect();
        let body = json!({ "allOrNone": false, "compositeRequest": Value::Array(subrequests) });
        let path = self.data_path("composite");
        let (_, answers) = self
            .call(Method::POST, &path, &[], Some(&body), Call::SLOW)
            .await?;
        let mut answers: Answers = answers.json()?;
        (0..soqls.len())
            .map(|n| {
                let reference = format!("q{n}");
                let at = answers
                    .composite_response
                    .iter()
                    .position(|a| a.reference_id == reference)
                    .ok_or_else(|| {
                        SalesforceError::Decode(format!("a composite answer lacks {reference}"))
                    })?;
                let answer = answers.composite_response.swap_remove(at);
                Ok(if (200..300).contains(&answer.http_status_code) {
                    serde_json::from_value::<QueryPage>(answer.body)
                        .map_err(|e| SalesforceError::Decode(e.to_string()))
                        .and_then(|page| page.next().map(|next| (page.records, next)))
                } else {
                    let body = serde_json::to_vec(&answer.body).unwrap_or_default();
                    Err(from_response(answer.http_status_code, &body))
                })
            })
            .collect()
    }

    /// Sends one collection of up to 200 records and returns one result per record.
    async fn collections<'r>(
        &self,
        method: Method,
        path: &str,
        object: &str,
        records: impl ExactSizeIterator<Item = (Option<&'r SalesforceId>, &'r Record)>,
        all_or_none: bool,
        call: Call,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let count = records.len();
        one_collection(count)?;
        let body = collection_body(object, records, all_or_none);
        let (_, out) = self
            .call(method, &self.data_path(path), &[], Some(&body), call)
            .await?;
        decode_results(out, count)
    }

    /// Creates up to 200 records of one object in one collection, one result per record.
    pub async fn create_many(
        &self,
        object: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let records = records.iter().map(|r| (None, r));
        self.collections(
            Method::POST,
            "composite/sobjects",
            object,
            records,
            all_or_none,
            Call::SLOW_ONCE,
        )
        .await
    }

    /// Updates up to 200 records of one object by id in one collection.
    pub async fn update_many(
        &self,
        object: &str,
        records: &[(SalesforceId, Record)],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let records = records.iter().map(|(id, r)| (Some(id), r));
        self.collections(
            Method::PATCH,
            "composite/sobjects",
            object,
            records,
            all_or_none,
            Call::SLOW,
        )
        .await
    }

    /// Creates or updates up to 200 records of one object by an external id field, in one
    /// collection; each record carries its `field` value. Safe to repeat.
    pub async fn upsert_many(
        &self,
        object: &str,
        field: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let path = format!("composite/sobjects/{object}/{field}");
        let records = records.iter().map(|r| (None, r));
        self.collections(
            Method::PATCH,
            &path,
            object,
            records,
            all_or_none,
            Call::UPSERT,
        )
        .await
    }

    /// Deletes one collection of up to 200 records.
    pub async fn delete_many(
        &self,
        ids: &[SalesforceId],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        one_collection(ids.len())?;
        let joined: Vec<&str> = ids.iter().map(SalesforceId::as_str).collect();
        let joined = joined.join(",");
        let flag = if all_or_none { "true" } else { "false" };
        let path = self.data_path("composite/sobjects");
        let (_, out) = self
            .call(
                Method::DELETE,
                &path,
                &[("ids", &joined), ("allOrNone", flag)],
                None,
                Call::SLOW,
            )
            .await?;
        decode_results(out, ids.len())
    }

    /// Ids of records changed between `start` and `end` (Salesforce truncates to the minute).
    pub async fn updated(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Updated, SalesforceError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            ids: Vec<String>,
            latest_date_covered: String,
        }
        let raw: Raw = self.window(object, "updated", start, end).await?;
        Ok(Updated {
            ids: raw
                .ids
                .iter()
                .map(|id| parse_id(Some(id)))
                .collect::<Result<_, _>>()?,
            latest_date_covered: datetime(&raw.latest_date_covered)?,
        })
    }

    /// Records deleted between `start` and `end`.
    pub async fn deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Deleted, SalesforceError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RawRecord {
            id: String,
            deleted_date: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            deleted_records: Vec<RawRecord>,
            #[serde(default)]
            earliest_date_available: Option<String>,
            latest_date_covered: String,
        }
        let raw: Raw = self.window(object, "deleted", start, end).await?;
        Ok(Deleted {
            records: raw
                .deleted_records
                .iter()
                .map(|r| {
                    Ok(DeletedRecord {
                        id: parse_id(Some(&r.id))?,
                        deleted_date: datetime(&r.deleted_date)?,
                    })
                })
                .collect::<Result<_, SalesforceError>>()?,
            earliest_date_available: raw
                .earliest_date_available
                .as_deref()
                .map(datetime)
                .transpose()?,
            latest_date_covered: datetime(&raw.latest_date_covered)?,
        })
    }

    async fn window<T: for<'de> Deserialize<'de>>(
        &self,
        object: &str,
        kind: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<T, SalesforceError> {
        let path = self.data_path(&format!("sobjects/{object}/{kind}"));
        let start = start.to_rfc3339_opts(SecondsFormat::Secs, true);
        let end = end.to_rfc3339_opts(SecondsFormat::Secs, true);
        let (_, body) = self
            .call(
                Method::GET,
                &path,
                &[("start", &start), ("end", &end)],
                None,
                Call::QUICK,
            )
            .await?;
        body.json()
    }

    /// The API version this client calls.
    pub fn api_version(&self) -> &str {
        &self.config.api_version
    }

    /// The newest API version the org serves, from its list of versions
    /// (`GET /services/data/`).
    pub async fn newest_version(&self) -> Result<Option<String>, SalesforceError> {
        let (_, body) = self
            .call(Method::GET, "/services/data", &[], None, Call::QUICK)
            .await?;
        let versions: Vec<Value> = body.json()?;
        Ok(versions
            .iter()
            .filter_map(|v| v.get("version")?.as_str())
            .max_by(|a, b| {
                let number = |v: &str| {
                    v.split_once('.').and_then(|(major, minor)| {
                        Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
                    })
                };
                number(a).cmp(&number(b))
            })
            .map(str::to_owned))
    }

    /// The REST API's resources for the version in use (`GET /services/data/vXX.X`): any
    /// user the API lets in may ask, so it tells whether it does.
    pub async fn resources(&self) -> Result<Value, SalesforceError> {
        let path = self.data_path("");
        let (_, body) = self
            .call(
                Method::GET,
                path.trim_end_matches('/'),
                &[],
                None,
                Call::QUICK,
            )
            .await?;
        body.json()
    }

    /// The org's limits, as `/limits` reports them.
    pub async fn limits(&self) -> Result<Value, SalesforceError> {
        let path = self.data_path("limits");
        let (_, body) = self
            .call(Method::GET, &path, &[], None, Call::QUICK)
            .await?;
        body.json()
    }
}

/// Whether a 401's body says the session expired or was revoked (`INVALID_SESSION_ID`),
/// which signing in again mends; not a page from something between here and Salesforce, nor
/// an org whose user may not use the REST API, which it would not.
fn session_expired(body: &[u8]) -> bool {
    match from_response(401, body) {
        SalesforceError::Api {
            error_code,
            message,
            ..
        } => {
            error_code == "INVALID_SESSION_ID"
                && !message.contains("not valid for use with the REST API")
        }
        _ => false,
    }
}

fn collection_body<'a>(
    object: &str,
    records: impl Iterator<Item = (Option<&'a SalesforceId>, &'a Record)>,
    all_or_none: bool,
) -> Value {
    let records: Vec<Value> = records
        .map(|(id, fields)| {
            let mut record = fields.clone();
            record.insert("attributes".into(), json!({ "type": object }));
            if let Some(id) = id {
                record.insert("id".into(), Value::String(id.to_string()));
            }
            Value::Object(record)
        })
        .collect();
    json!({ "allOrNone": all_or_none, "records": records })
}

/// Refuses, as Salesforce would, a collection over 200 records before it is sent. Sent in
/// several calls, one that failed after another had been made would leave the made records'
/// answers with no one to take them: a caller sends each collection and keeps its answer.
fn one_collection(count: usize) -> Result<(), SalesforceError> {
    if count <= COLLECTION_LIMIT {
        return Ok(());
    }
    Err(SalesforceError::Api {
        status: 400,
        error_code: "EXCEEDED_ID_LIMIT".into(),
        message: format!(
            "record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this \
             call ({count} given: send them {COLLECTION_LIMIT} at a time)"
        ),
        fields: Vec::new(),
    })
}

fn decode_results(
    body: bytes_body::Body,
    expected: usize,
) -> Result<Vec<RecordResult>, SalesforceError> {
    let raw: Vec<SaveResult> = body.json()?;
    if raw.len() != expected {
        return Err(SalesforceError::Decode(format!(
            "a collection of {expected} records returned {} results",
            raw.len()
        )));
    }
    raw.into_iter()
        .map(|r| {
            Ok(RecordResult {
                id: r.id.as_deref().map(|id| parse_id(Some(id))).transpose()?,
                success: r.success,
                created: r.created,
                errors: r
                    .errors
                    .into_iter()
                    .map(|e| (e.status_code, e.message, e.fields))
                    .collect(),
            })
        })
        .collect()
}

fn parse_id(raw: Option<&str>) -> Result<SalesforceId, SalesforceError> {
    let raw = raw.ok_or_else(|| SalesforceError::Decode("a save result has no id".into()))?;
    SalesforceId::parse(raw).map_err(|e| SalesforceError::Decode(e.message))
}

fn datetime(raw: &str) -> Result<DateTime<Utc>, SalesforceError> {
    parse_datetime(raw)
        .ok_or_else(|| SalesforceError::Decode(format!("'{raw}' is not a Salesforce datetime")))
}

/// Percent-encodes a value for one URL path segment.
fn url_segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

mod bytes_body {
    use serde::Deserialize;

    use super::SalesforceError;

    /// A response body, decoded on demand.
    pub struct Body(pub bytes::Bytes);

    impl Body {
        pub fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, SalesforceError> {
            serde_json::from_slice(&self.0).map_err(|e| SalesforceError::Decode(e.to_string()))
        }
    }
}
