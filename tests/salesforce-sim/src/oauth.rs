//! The OAuth token endpoint (password, refresh, JWT-bearer, client-credentials) and session checks.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};

use crate::error::ApiError;
use crate::ids;
use crate::state::{Sim, lock};

struct Session {
    issued: i64,
    uses: u64,
}

pub struct Sessions {
    org: String,
    rng: StdRng,
    access: HashMap<String, Session>,
    refresh: HashSet<String>,
}

/// The org's id: orgs seeded differently are different orgs.
pub fn org_id(seed: u64) -> String {
    ids::make("00D", seed)
}

pub fn user_id() -> String {
    ids::make("005", 1)
}

impl Sessions {
    pub fn new(seed: u64) -> Self {
        Sessions {
            org: org_id(seed),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            access: HashMap::new(),
            refresh: HashSet::new(),
        }
    }

    fn random(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
        (0..len)
            .map(|_| char::from(CHARS[self.rng.gen_range(0..CHARS.len())]))
            .collect()
    }

    pub fn issue_access(&mut self, now: i64) -> String {
        let secret = self.random(96);
        let token = format!("{}!AQ{secret}", &self.org[..15]);
        self.access.insert(
            token.clone(),
            Session {
                issued: now,
                uses: 0,
            },
        );
        token
    }

    pub fn issue_refresh(&mut self) -> String {
        let token = format!("5Aep861{}", self.random(80));
        self.refresh.insert(token.clone());
        token
    }

    /// Counts one use of `token`, failing when it is unknown or expired.
    pub fn check(
        &mut self,
        token: &str,
        now: i64,
        ttl: Option<i64>,
        max_uses: Option<u64>,
    ) -> Result<(), ApiError> {
        let session = self.access.get_mut(token).ok_or_else(ApiError::session)?;
        let aged = ttl.is_some_and(|ttl| now - session.issued >= ttl);
        let used_up = max_uses.is_some_and(|max| session.uses >= max);
        if aged || used_up {
            self.access.remove(token);
            return Err(ApiError::session());
        }
        session.uses += 1;
        Ok(())
    }

    pub fn expire_all(&mut self) {
        self.access.clear();
    }

    pub fn live_access(&self) -> usize {
        self.access.len()
    }

    pub fn live_refresh(&self) -> usize {
        self.refresh.len()
    }

    pub fn honours_refresh(&self, token: &str) -> bool {
        self.refresh.contains(token)
    }

    pub fn revoke(&mut self, token: &str) -> bool {
        self.access.remove(token).is_some() | self.refresh.remove(token)
    }
}

fn oauth_error(error: &str, description: &str) -> (u16, Json) {
    (
        400,
        json!({ "error": error, "error_description": description }),
    )
}

type Outcome = Result<Json, (u16, Json)>;

/// Answers `POST /services/oauth2/token` with a status and JSON body.
pub fn token(
    sim: &Sim,
    form: &HashMap<String, String>,
    basic: Option<(String, String)>,
) -> (u16, Json) {
    let param = |k: &str| form.get(k).map(String::as_str);
    let outcome = match param("grant_type") {
        None => Err(oauth_error("invalid_request", "grant type is missing")),
        Some("password") => password(sim, form),
        Some("refresh_token") => refresh(sim, form),
        Some("client_credentials") => client_credentials(sim, form, basic),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            crate::jwt::bearer(sim, param("assertion").unwrap_or_default())
        }
        Some(_) => Err(oauth_error(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    };
    match outcome {
        Ok(body) => (200, body),
        Err(err) => err,
    }
}

/// Checks the connected app's credentials: its id, and its secret, which a flow that must
/// have it (`required`), or an app that requires it, is refused without.
fn client(
    sim: &Sim,
    id: Option<&str>,
    secret: Option<&str>,
    required: bool,
) -> Result<(), (u16, Json)> {
    if id != Some(sim.config.client_id.as_str()) {
        return Err(oauth_error(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    let required = required || !sim.config.secret_optional;
    let secret = if required {
        Some(secret.unwrap_or_default())
    } else {
        secret
    };
    if secret.is_some_and(|s| s != sim.config.client_secret) {
        return Err(oauth_error("invalid_client", "invalid client credentials"));
    }
    Ok(())
}

fn password(sim: &Sim, form: &HashMap<String, String>) -> Outcome {
    let param = |k: &str| form.get(k).map(String::as_str);
    client(sim, param("client_id"), param("client_secret"), false)?;
    let user_ok = param("username").is_some_and(|u| u.eq_ignore_ascii_case(&sim.config.username));
    if !user_ok || param("password") != Some(sim.config.password.as_str()) {
        return Err(oauth_error("invalid_grant", "authentication failure"));
    }
    Ok(success(sim, None, None))
}

fn refresh(sim: &Sim, form: &HashMap<String, String>) -> Outcome {
    let param = |k: &str| form.get(k).map(String::as_str);
    client(sim, param("client_id"), param("client_secret"), false)?;
    let mut sessions = lock(&sim.sessions);
    let Some(used) = param("refresh_token").filter(|t| sessions.refresh.contains(*t)) else {
        return Err(oauth_error("invalid_grant", "expired access/refresh token"));
    };
    let rotated = sim.config.rotate_refresh_tokens.then(|| {
        sessions.refresh.remove(used);
        sessions.issue_refresh()
    });
    drop(sessions);
    Ok(success(sim, Some("api refresh_token"), rotated))
}

fn client_credentials(
    sim: &Sim,
    form: &HashMap<String, String>,
    basic: Option<(String, String)>,
) -> Outcome {
    let (id, secret) = match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    };
    client(sim, id.as_deref(), secret.as_deref(), true)?;
    Ok(success(sim, Some("api"), None))
}

/// A token response; `refresh_token` is included only when given.
pub fn success(sim: &Sim, scope: Option<&str>, refresh_token: Option<String>) -> Json {
    let now = lock(&sim.store).clock.now();
    let access = lock(&sim.sessions).issue_access(now);
    let id = format!(
        "{}/id/{}/{}",
        sim.base_url,
        org_id(sim.config.seed),
        user_id()
    );
    let issued_at = (now * 1000).to_string();
    let instance_url = lock(&sim.faults)
        .instance_url
        .clone()
        .unwrap_or_else(|| sim.base_url.clone());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, sim.config.client_secret.as_bytes());
    let signature =
        STANDARD.encode(ring::hmac::sign(&key, format!("{id}{issued_at}").as_bytes()).as_ref());
    let mut body = json!({
        "access_token": access,
        "instance_url": instance_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature,
    });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    if let Some(refresh) = refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    body
}

/// Checks `Authorization: Bearer <token>` (or `OAuth <token>`) for a REST call.
pub fn authorize(sim: &Sim, header: Option<&str>) -> Result<(), ApiError> {
    let token = header
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("OAuth "))
        })
        .ok_or_else(ApiError::session)?;
    let now = lock(&sim.store).clock.now();
    let (ttl, max) = {
        let faults = lock(&sim.faults);
        (faults.token_ttl_secs, faults.token_max_requests)
    };
    lock(&sim.sessions).check(token.trim(), now, ttl, max)
}
