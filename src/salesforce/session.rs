//! The one owner of the access token: logs in, renews once for all concurrent callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::SalesforceError;

/// How Tandem signs in to the org.
#[derive(Clone)]
pub enum Credentials {
    /// OAuth username-password grant (the password includes the security token if needed).
    Password {
        username: String,
        password: SecretString,
        client_id: String,
        client_secret: SecretString,
    },
    /// OAuth refresh-token grant.
    RefreshToken {
        refresh_token: SecretString,
        client_id: String,
        client_secret: SecretString,
    },
    /// OAuth JWT-bearer grant: an assertion signed with the connected app's RSA key.
    JwtBearer {
        username: String,
        client_id: String,
        private_key_pem: SecretString,
        /// `https://login.salesforce.com`, `https://test.salesforce.com`, or the login URL.
        audience: String,
    },
    /// An access token obtained elsewhere; it cannot be renewed.
    AccessToken {
        access_token: SecretString,
        instance_url: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Credentials::Password { username, .. } => format!("Password({username})"),
            Credentials::RefreshToken { client_id, .. } => format!("RefreshToken({client_id})"),
            Credentials::JwtBearer { username, .. } => format!("JwtBearer({username})"),
            Credentials::AccessToken { instance_url, .. } => format!("AccessToken({instance_url})"),
        };
        f.write_str(&kind)
    }
}

/// Told of each refresh token Salesforce rotates in, as `(old, new)`, before the new one is
/// used: with rotation on, the old one stops working at once, so whoever keeps the
/// credentials must keep the new one.
#[derive(Clone)]
pub struct OnRotation(
    pub Arc<dyn Fn(SecretString, SecretString) -> BoxFuture<'static, ()> + Send + Sync>,
);

impl std::fmt::Debug for OnRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnRotation")
    }
}

pub(super) struct Session {
    pub access_token: SecretString,
    pub instance_url: String,
    /// Identity URL; its last two segments are the org and user ids.
    pub identity: Option<String>,
    pub generation: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenError {
    /// Whether the error says nothing of the credentials and passes: OAuth's own transient
    /// codes, Salesforce's "retry your request", its limit on sign-ins, and a refresh token
    /// already being used to sign in elsewhere (two processes renewing at once).
    fn passing(&self) -> bool {
        matches!(
            self.error.as_str(),
            "server_error" | "temporarily_unavailable" | "unknown_error" | "rate_limit_exceeded"
        ) || self
            .error_description
            .to_ascii_lowercase()
            .contains("already being processed")
    }
}

struct State {
    session: Option<Arc<Session>>,
    refresh_token: Option<SecretString>,
    generation: u64,
    /// Why Salesforce refused the credentials, once it has: they are not offered again. Each
    /// refused password counts toward the org's lockout of the integration user, which
    /// would then refuse the right password too; a reconnect makes a client of its own.
    refused: Option<SalesforceError>,
    /// Why the last sign-in could not be made now (the token endpoint down, slow or
    /// throttling), until one is.
    failed: Option<SalesforceError>,
}

pub(super) struct SessionOwner {
    http: reqwest::Client,
    login_url: String,
    credentials: Credentials,
    on_rotation: Option<OnRotation>,
    /// The refresh token of the credentials was rotated in, not given (see `revoke`).
    given_was_issued: bool,
    state: Mutex<State>,
    /// Sign-ins finished, whatever their end (read without waiting for one under way).
    attempts: AtomicU64,
}

impl SessionOwner {
    pub fn new(
        http: reqwest::Client,
        login_url: String,
        credentials: Credentials,
        on_rotation: Option<OnRotation>,
        given_was_issued: bool,
    ) -> Self {
        let refresh_token = match &credentials {
            Credentials::RefreshToken { refresh_token, .. } => Some(refresh_token.clone()),
            _ => None,
        };
        Self {
            http,
            login_url: login_url.trim_end_matches('/').to_owned(),
            credentials,
            on_rotation,
            given_was_issued,
            state: Mutex::new(State {
                session: None,
                refresh_token,
                generation: 0,
                refused: None,
                failed: None,
            }),
            attempts: AtomicU64::new(0),
        }
    }

    /// The refresh token in use: the one given, or the one Salesforce last rotated in.
    pub async fn refresh_token(&self) -> Option<SecretString> {
        self.state.lock().await.refresh_token.clone()
    }

    /// Takes up a refresh token another process was given, and offers it even if the one
    /// before was refused.
    pub async fn adopt_refresh_token(&self, token: SecretString) {
        let mut state = self.state.lock().await;
        state.refresh_token = Some(token);
        state.refused = None;
    }

    /// Asks Salesforce to void the session signed in here (its access token) and a refresh
    /// token it issued (rotated in for the one given, here or, as the credentials say, before
    /// they were saved), and signs in no more. The refresh token a person gave is left to
    /// them, who may give it again, and an access token given as the credentials, obtained
    /// elsewhere, is left alone too. A token Salesforce no longer knows is void already.
    pub async fn revoke(&self) -> Result<(), SalesforceError> {
        let (session, refresh) = {
            let mut state = self.state.lock().await;
            state.refused = Some(SalesforceError::AuthFailed {
                error: "invalid_grant".into(),
                description: "the connection was deleted".into(),
            });
            (state.session.take(), state.refresh_token.take())
        };
        let given = match &self.credentials {
            Credentials::RefreshToken { refresh_token, .. } if !self.given_was_issued => {
                Some(refresh_token.expose_secret())
            }
            _ => None,
        };
        let access = session
            .filter(|_| !matches!(self.credentials, Credentials::AccessToken { .. }))
            .map(|s| s.access_token.clone());
        let issued = refresh.filter(|r| Some(r.expose_secret()) != given);
        let mut outcome = Ok(());
        for token in access.iter().chain(issued.iter()) {
            if let Err(e) = self.revoke_one(token).await {
                outcome = Err(e);
            }
        }
        outcome
    }

    async fn revoke_one(&self, token: &SecretString) -> Result<(), SalesforceError> {
        let response = self
            .http
            .post(format!("{}/services/oauth2/revoke", self.login_url))
            .form(&[("token", token.expose_secret())])
            .send()
            .await
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        // 400 names a token Salesforce does not know: revoked or expired already.
        if response.status().is_success() || status == 400 {
            return Ok(());
        }
        Err(SalesforceError::Api {
            status,
            error_code: format!("HTTP_{status}"),
            message: "the revoke endpoint could not void the token now".into(),
            fields: Vec::new(),
        })
    }

    /// The current session, if signed in; signs in for none.
    pub async fn signed_in(&self) -> Option<Arc<Session>> {
        self.state.lock().await.session.clone()
    }

    /// The current session, signing in first if there is none.
    pub async fn current(self: &Arc<Self>) -> Result<Arc<Session>, SalesforceError> {
        // Read before waiting for a sign-in under way, whose failure is then this one's too.
        let asked_after = self.attempts.load(Ordering::Acquire);
        if let Some(session) = &self.state.lock().await.session {
            return Ok(session.clone());
        }
        self.sign_in_detached(None, asked_after).await
    }

    /// Replaces a session Salesforce refused. Callers that saw the same stale session share
    /// one renewal: whoever comes second gets the fresh session without another login.
    pub async fn renew(self: &Arc<Self>, stale: u64) -> Result<Arc<Session>, SalesforceError> {
        let asked_after = self.attempts.load(Ordering::Acquire);
        self.sign_in_detached(Some(stale), asked_after).await
    }

    /// Signs in on a task of its own (unless a session newer than `stale`, or any session
    /// when `stale` is `None`, is there by then), so that a caller that gives up halfway (a
    /// panel past its patience, a request whose client went away) does not stop it halfway:
    /// a refresh token Salesforce rotated in is kept, and saved, not lost with the caller
    /// while Salesforce has voided the one before.
    ///
    /// Callers that waited while a sign-in failed for a passing reason share its failure
    /// rather than each trying again in turn: behind a token endpoint that hangs, the last
    /// of them would wait for all the others' attempts, and one that throttles would be
    /// asked again at once by each.
    /// `asked_after`: the sign-ins finished when the caller asked.
    async fn sign_in_detached(
        self: &Arc<Self>,
        stale: Option<u64>,
        asked_after: u64,
    ) -> Result<Arc<Session>, SalesforceError> {
        let owner = self.clone();
        tokio::spawn(async move {
            let mut state = owner.state.lock().await;
            if let Some(session) = &state.session
                && stale.is_none_or(|stale| session.generation != stale)
            {
                return Ok(session.clone());
            }
            if let Some(refused) = &state.refused {
                return Err(refused.clone());
            }
            // A sign-in that ended since this was asked for failed: its answer is this one's.
            if let Some(failed) = &state.failed
                && owner.attempts.load(Ordering::Acquire) > asked_after
            {
                return Err(failed.clone());
            }
            state.session = None;
            let signed_in = owner.sign_in(&mut state).await;
            owner.attempts.fetch_add(1, Ordering::AcqRel);
            state.failed = None;
            match &signed_in {
                Err(refused @ SalesforceError::AuthFailed { .. }) => {
                    state.refused = Some(refused.clone());
                }
                Err(passing) => state.failed = Some(passing.clone()),
                Ok(_) => {}
            }
            signed_in
        })
        .await
        .map_err(|e| SalesforceError::Transport(format!("signing in to Salesforce stopped: {e}")))?
    }

    async fn sign_in(&self, state: &mut State) -> Result<Arc<Session>, SalesforceError> {
        let token = match (&self.credentials, state.refresh_token.clone()) {
            (
                Credentials::AccessToken {
                    access_token,
                    instance_url,
                },
                _,
            ) if state.generation == 0 => TokenResponse {
                access_token: access_token.expose_secret().to_owned(),
                instance_url: instance_url.clone(),
                id: None,
                refresh_token: None,
            },
            (Credentials::AccessToken { .. }, _) => {
                return Err(SalesforceError::AuthFailed {
                    error: "INVALID_SESSION_ID".into(),
                    description:
                        "the access token expired and there are no credentials to renew it".into(),
                });
            }
            (_, Some(refresh)) => match self.refresh(&refresh).await {
                Ok(token) => token,
                Err(err @ SalesforceError::AuthFailed { .. })
                    if matches!(self.credentials, Credentials::RefreshToken { .. }) =>
                {
                    return Err(err);
                }
                Err(SalesforceError::AuthFailed { .. }) => self.grant().await?,
                Err(other) => return Err(other),
            },
            (_, None) => self.grant().await?,
        };
        if let Some(refresh) = token.refresh_token {
            let new = SecretString::from(refresh);
            let old = state.refresh_token.replace(new.clone());
            if let (Some(old), Some(on_rotation)) = (old, &self.on_rotation)
                && old.expose_secret() != new.expose_secret()
            {
                (on_rotation.0)(old, new).await;
            }
        }
        state.generation += 1;
        let session = Arc::new(Session {
            access_token: SecretString::from(token.access_token),
            instance_url: token.instance_url.trim_end_matches('/').to_owned(),
            identity: token.id,
            generation: state.generation,
        });
        state.session = Some(session.clone());
        Ok(session)
    }

    /// The grant the credentials name, from scratch.
    async fn grant(&self) -> Result<TokenResponse, SalesforceError> {
        match &self.credentials {
            Credentials::Password {
                username,
                password,
                client_id,
                client_secret,
            } => {
                let mut form = vec![
                    ("grant_type", "password"),
                    ("client_id", client_id),
                    ("username", username),
                    ("password", password.expose_secret()),
                ];
                // A connected app that does not require its secret for this flow is given
                // none: an empty one would be a wrong one.
                if !client_secret.expose_secret().is_empty() {
                    form.push(("client_secret", client_secret.expose_secret()));
                }
                self.token(&form).await
            }
            Credentials::RefreshToken {
                refresh_token,
                client_id,
                client_secret,
            } => {
                self.refresh_with(refresh_token, client_id, client_secret.expose_secret())
                    .await
            }
            Credentials::JwtBearer {
                username,
                client_id,
                private_key_pem,
                audience,
            } => {
                let assertion = jwt_assertion(username, client_id, private_key_pem, audience)?;
                self.token(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ])
                .await
            }
            Credentials::AccessToken { .. } => Err(SalesforceError::AuthFailed {
                error: "invalid_grant".into(),
                description: "an access token cannot be renewed".into(),
            }),
        }
    }

    async fn refresh(
        &self,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, SalesforceError> {
        let (client_id, client_secret) = match &self.credentials {
            Credentials::Password {
                client_id,
                client_secret,
                ..
            }
            | Credentials::RefreshToken {
                client_id,
                client_secret,
                ..
            } => (client_id.as_str(), client_secret.expose_secret()),
            _ => return self.grant().await,
        };
        self.refresh_with(refresh_token, client_id, client_secret)
            .await
    }

    async fn refresh_with(
        &self,
        refresh_token: &SecretString,
        client_id: &str,
        client_secret: &str,
    ) -> Result<TokenResponse, SalesforceError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", client_id),
        ];
        // A connected app that does not require its secret for this flow is given none.
        if !client_secret.is_empty() {
            form.push(("client_secret", client_secret));
        }
        self.token(&form).await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenResponse, SalesforceError> {
        let response = self
            .http
            .post(format!("{}/services/oauth2/token", self.login_url))
            .form(form)
            .send()
            .await
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| SalesforceError::Decode(format!("token response: {e}")));
        }
        if super::error::busy(status.as_u16()) {
            // Not a refusal of the credentials: a sign-in that waits a little succeeds.
            return Err(SalesforceError::Api {
                status: status.as_u16(),
                error_code: format!("HTTP_{}", status.as_u16()),
                message: "the token endpoint could not answer now".into(),
                fields: Vec::new(),
            });
        }
        match serde_json::from_slice::<TokenError>(&body) {
            // Salesforce busy, or signing in with the same refresh token for another
            // process at that moment: not the credentials' fault, and asked again later.
            Ok(e) if e.passing() => Err(SalesforceError::Api {
                status: status.as_u16(),
                error_code: super::error::SIGN_IN_BUSY.into(),
                message: format!(
                    "the token endpoint could not sign in now ({}: {})",
                    e.error, e.error_description
                ),
                fields: Vec::new(),
            }),
            Ok(e) => Err(SalesforceError::AuthFailed {
                error: e.error,
                description: e.error_description,
            }),
            // No OAuth error: not Salesforce refusing the credentials, but something else
            // answering (a proxy, a firewall, a login URL that is not Salesforce's), which
            // the credentials are not to be blamed, and voided, for.
            Err(_) => Err(SalesforceError::Api {
                status: status.as_u16(),
                error_code: format!("HTTP_{}", status.as_u16()),
                message: format!(
                    "the token endpoint at {} answered without an OAuth error (check the login URL, and any proxy between here and Salesforce): {}",
                    self.login_url,
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
                fields: Vec::new(),
            }),
        }
    }
}

fn jwt_assertion(
    username: &str,
    client_id: &str,
    pem: &SecretString,
    audience: &str,
) -> Result<String, SalesforceError> {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        sub: &'a str,
        aud: &'a str,
        exp: i64,
    }
    let key = EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).map_err(|e| {
        SalesforceError::AuthFailed {
            error: "invalid_client".into(),
            description: format!("the JWT-bearer private key cannot be read: {e}"),
        }
    })?;
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        // Salesforce takes an assertion good for at most three minutes; two leave a
        // minute for a clock ahead of Salesforce's.
        exp: Utc::now().timestamp() + 120,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| SalesforceError::Decode(format!("cannot sign the JWT assertion: {e}")))
}
