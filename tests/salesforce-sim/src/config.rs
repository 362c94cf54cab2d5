//! Simulator settings: credentials, token lifetime, API budget and sample data size.

/// How the fake org starts; every field can be overridden by the binary's flags.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub port: u16,
    pub seed: u64,
    pub records: usize,
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
    /// Access tokens expire this many seconds (of org clock) after issue.
    pub token_ttl_secs: Option<i64>,
    /// Access tokens expire after this many REST requests.
    pub token_max_requests: Option<u64>,
    pub daily_api_limit: u64,
    /// PEM public key (or certificate's key) that JWT-bearer assertions must be signed with.
    pub jwt_public_key_pem: Option<String>,
    pub error_rate: f64,
    /// This fraction of REST calls has its connection dropped mid-answer.
    pub drop_rate: f64,
    pub latency_ms: u64,
    /// Refresh-token rotation, as a connected app may enable it: each refresh answers a new
    /// refresh token and the one used stops working.
    pub rotate_refresh_tokens: bool,
    /// The connected app does not require its secret for the password and refresh-token
    /// flows: a sign-in without one is let in (a wrong one is still refused).
    pub secret_optional: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            seed: 1,
            records: 0,
            username: "integration@tandem.test".into(),
            password: "tandem".into(),
            client_id: "tandem-sim".into(),
            client_secret: "tandem-sim-secret".into(),
            token_ttl_secs: Some(7200),
            token_max_requests: None,
            daily_api_limit: 100_000,
            jwt_public_key_pem: None,
            error_rate: 0.0,
            drop_rate: 0.0,
            latency_ms: 0,
            rotate_refresh_tokens: false,
            secret_optional: false,
        }
    }
}
