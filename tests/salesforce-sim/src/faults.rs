//! Injected failures: random 500/503 answers, queued failures, latency and the daily API budget.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::SimConfig;
use crate::error::ApiError;

pub struct Faults {
    rng: StdRng,
    pub error_rate: f64,
    pub drop_rate: f64,
    /// The next this many REST calls have their connection dropped.
    pub drops: u32,
    /// The next this many REST calls are carried out, then their connection is dropped
    /// before the answer arrives.
    pub lost_answers: u32,
    /// This fraction of REST calls is carried out and then loses its answer so.
    pub lost_answer_rate: f64,
    pub latency: Duration,
    pub queued: VecDeque<u16>,
    /// Errors for the next records written through sObject Collections, one each.
    pub rejections: VecDeque<ApiError>,
    pub daily_limit: u64,
    pub api_used: u64,
    pub token_max_requests: Option<u64>,
    pub token_ttl_secs: Option<i64>,
    /// The next this many sign-ins are turned away by the edge with 429, before Salesforce
    /// reads them.
    pub throttled_sign_ins: u32,
    /// Sign-ins answered as Salesforce answers a refresh token already signing in elsewhere.
    pub contended_sign_ins: u32,
    /// Requests to stop before they are answered, until a test lets them go.
    pub holds: Vec<Hold>,
    /// The org's REST API is off for the integration user (an edition without it, or a
    /// profile without "API Enabled"): every REST call is refused.
    pub api_disabled: bool,
    /// Sign-ins give sessions without the `api` OAuth scope (a connected app not granted
    /// "Manage user data via APIs"): every REST call is refused as such a session is.
    pub api_scope_withheld: bool,
    /// The instance URL sign-ins name, when the org has moved from the one it was made on.
    pub instance_url: Option<String>,
}

/// One request to hold: the first whose method and path match.
pub struct Hold {
    pub method: String,
    pub path_contains: String,
    /// Held once carried out, before its answer goes; otherwise before it is carried out.
    pub answered: bool,
    pub gate: Gate,
}

/// Both sides of a held request: it signals its arrival, and waits for its release.
#[derive(Clone)]
pub struct Gate {
    arrived: Arc<Semaphore>,
    released: Arc<Semaphore>,
}

impl Gate {
    pub fn new() -> Self {
        Gate {
            arrived: Arc::new(Semaphore::new(0)),
            released: Arc::new(Semaphore::new(0)),
        }
    }

    /// Waits until the held request has come in.
    pub async fn arrived(&self) {
        let _ = self.arrived.acquire().await.map(|p| p.forget());
    }

    /// Lets the held request be answered.
    pub fn release(&self) {
        self.released.add_permits(1);
    }

    /// On the request's side: tell of the arrival, then wait for the release.
    pub async fn pass(&self) {
        self.arrived.add_permits(1);
        let _ = self.released.acquire().await.map(|p| p.forget());
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    pub fn new(config: &SimConfig) -> Self {
        Faults {
            rng: StdRng::seed_from_u64(config.seed),
            error_rate: config.error_rate,
            drop_rate: config.drop_rate,
            drops: 0,
            lost_answers: 0,
            lost_answer_rate: 0.0,
            latency: Duration::from_millis(config.latency_ms),
            queued: VecDeque::new(),
            rejections: VecDeque::new(),
            daily_limit: config.daily_api_limit,
            api_used: 0,
            token_max_requests: config.token_max_requests,
            throttled_sign_ins: 0,
            contended_sign_ins: 0,
            token_ttl_secs: config.token_ttl_secs,
            holds: Vec::new(),
            api_disabled: false,
            api_scope_withheld: false,
            instance_url: None,
        }
    }

    /// The gate this request must pass, if a hold matches it (`target`: the path, then each
    /// decoded query parameter) at this point (`answered`: carried out, its answer not sent);
    /// the hold is used up.
    pub fn hold(&mut self, method: &str, target: &str, answered: bool) -> Option<Gate> {
        let at = self.holds.iter().position(|h| {
            h.method == method && h.answered == answered && target.contains(&h.path_contains)
        })?;
        Some(self.holds.remove(at).gate)
    }

    /// The failure this request should get instead of its answer, if any.
    pub fn injected(&mut self) -> Option<ApiError> {
        if let Some(status) = self.queued.pop_front() {
            return Some(error_for(status));
        }
        if self.error_rate > 0.0 && self.rng.gen_bool(self.error_rate.clamp(0.0, 1.0)) {
            let status = if self.rng.gen_bool(0.5) { 500 } else { 503 };
            return Some(error_for(status));
        }
        None
    }

    /// Whether this request's connection should be cut before its answer is complete.
    pub fn dropped(&mut self) -> bool {
        if self.drops > 0 {
            self.drops -= 1;
            return true;
        }
        self.drop_rate > 0.0 && self.rng.gen_bool(self.drop_rate.clamp(0.0, 1.0))
    }

    /// Whether this request, already carried out, should lose its answer.
    pub fn answer_lost(&mut self) -> bool {
        if self.lost_answers > 0 {
            self.lost_answers -= 1;
            return true;
        }
        self.lost_answer_rate > 0.0 && self.rng.gen_bool(self.lost_answer_rate.clamp(0.0, 1.0))
    }

    /// Counts one API request, or refuses it when the daily budget is spent.
    pub fn spend(&mut self) -> Result<(), ApiError> {
        if self.api_used >= self.daily_limit {
            return Err(ApiError::new(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            ));
        }
        self.api_used += 1;
        Ok(())
    }

    pub fn limit_info(&self) -> String {
        format!("api-usage={}/{}", self.api_used, self.daily_limit)
    }
}

pub fn error_for(status: u16) -> ApiError {
    match status {
        503 => ApiError::new(
            503,
            "SERVER_UNAVAILABLE",
            "Server unavailable, please try again later",
        ),
        400 => ApiError::bad_request(
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record",
        ),
        403 => ApiError::new(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        ),
        status => ApiError::new(
            status,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
        ),
    }
}
