//! Bearer tokens: JWT validation into a [`Viewer`], and minting for development.

use chrono::{DateTime, Utc};
use entity::profile;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::{AgentId, Permissions};
use crate::store::{Store, permissions_of};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The agent's id.
    pub sub: String,
    /// The name of the agent's desk profile.
    pub profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// RFC 7519's NumericDate may have a fraction, rounded as the validation rounds it, so
    /// that a socket closes as HTTP stops taking the token.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    /// When it was issued; tokens from identity providers that leave it out (or give it as
    /// `null`) are accepted.
    #[serde(default, deserialize_with = "zero_if_null")]
    pub iat: i64,
    /// Not good before; checked by the validation (with the leeway), and read here so that
    /// a value that is not a date refuses the token rather than being passed over. `null`
    /// is none, as the validation takes it.
    #[serde(
        default,
        deserialize_with = "optional_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// One audience, or several (RFC 7519 allows either; `auth.audience` must be among them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// A NumericDate (seconds since the epoch, perhaps with a fraction), as whole seconds.
fn numeric_date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    whole_seconds(seconds)
}

fn whole_seconds<E: serde::de::Error>(seconds: f64) -> Result<i64, E> {
    if !seconds.is_finite() || seconds.abs() > 1e15 {
        return Err(E::custom("a NumericDate out of range"));
    }
    Ok(seconds.round() as i64)
}

fn optional_numeric_date<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    Option::<f64>::deserialize(deserializer)?
        .map(whole_seconds)
        .transpose()
}

fn zero_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    optional_numeric_date(deserializer).map(Option::unwrap_or_default)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Who is asking: the agent named by a valid token, with its profile as stored now.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub agent_id: AgentId,
    pub name: Option<String>,
    pub profile: profile::Model,
    /// The store's profile-change count when `profile` was read: a later count means it may
    /// be out of date.
    pub profile_version: u64,
    pub expires_at: DateTime<Utc>,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.profile.is_admin
    }

    /// The viewer with its profile as stored now, read again only when a profile changed
    /// since it was read.
    pub async fn read_again(mut self, store: &Store) -> Result<Viewer, AuthError> {
        let version = store.profile_version();
        if version == self.profile_version {
            return Ok(self);
        }
        self.profile = store
            .viewer_profile(&self.profile.name)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "profile lookup failed reading it again");
                AuthError::Unavailable
            })?
            .ok_or_else(|| AuthError::UnknownProfile(self.profile.name.clone()))?;
        self.profile_version = version;
        Ok(self)
    }

    pub fn permissions(&self) -> Permissions {
        permissions_of(&self.profile)
    }

    /// The first instant a request with this token is refused. The check compares whole
    /// seconds, `exp + leeway` against the clock's second, so that second is accepted to its
    /// last instant.
    pub fn refused_from(&self) -> DateTime<Utc> {
        let accepted = chrono::Duration::seconds(LEEWAY_SECS as i64 + 1);
        self.expires_at
            .checked_add_signed(accepted)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key tokens are checked or signed with cannot serve.
    #[error("{0}")]
    Key(String),
    #[error("token names profile '{0}', which does not exist")]
    UnknownProfile(String),
    #[error("cannot check the token's profile right now")]
    Unavailable,
}

/// The key a token is checked against.
pub enum VerifyingKey {
    Hs256(SecretString),
    /// PEM-encoded RSA public key.
    Rs256(Vec<u8>),
}

/// The modulus size of a PEM RSA public key (`PUBLIC KEY` or `RSA PUBLIC KEY`). Any other
/// key, a private one included, is refused here rather than failing every token later.
fn rsa_public_key_bits(key: &[u8]) -> Result<u64, String> {
    use simple_asn1::{ASN1Block, from_der};
    let pem = pem::parse(key).map_err(|e| format!("not a PEM key: {e}"))?;
    let blocks = |der: &[u8]| from_der(der).map_err(|e| format!("not an RSA public key: {e}"));
    let pkcs1 = match pem.tag() {
        "RSA PUBLIC KEY" => pem.contents().to_vec(),
        // SubjectPublicKeyInfo: the algorithm, then the PKCS#1 key as a bit string.
        "PUBLIC KEY" => match blocks(pem.contents())?.as_slice() {
            [ASN1Block::Sequence(_, parts)] => match parts.as_slice() {
                [_, ASN1Block::BitString(_, _, key)] => key.clone(),
                _ => return Err("not an RSA public key".into()),
            },
            _ => return Err("not an RSA public key".into()),
        },
        tag => {
            return Err(format!(
                "the file holds a {tag}, not a PUBLIC KEY: give the public half of the pair"
            ));
        }
    };
    match blocks(&pkcs1)?.as_slice() {
        [ASN1Block::Sequence(_, parts)] => match parts.as_slice() {
            [ASN1Block::Integer(_, modulus), ASN1Block::Integer(_, _)] => Ok(modulus.bits()),
            _ => Err("not an RSA public key (an EC or other key?)".into()),
        },
        _ => Err("not an RSA public key".into()),
    }
}

/// Seconds a token is still accepted after its `exp`, for clocks that disagree a little.
pub const LEEWAY_SECS: u64 = 30;

pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    signing: Option<(EncodingKey, Algorithm)>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    pub fn new(
        key: VerifyingKey,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Self, AuthError> {
        let (algorithm, key, signing) = match key {
            VerifyingKey::Hs256(secret) => {
                let bytes = secret.expose_secret().as_bytes();
                if bytes.len() < 32 {
                    return Err(AuthError::Key(
                        "the HS256 secret must be at least 32 bytes".into(),
                    ));
                }
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(bytes),
                    Some((EncodingKey::from_secret(bytes), Algorithm::HS256)),
                )
            }
            VerifyingKey::Rs256(pem) => {
                rsa_public_key_bits(&pem)
                    .and_then(|bits| {
                        if (2048..=8192).contains(&bits) {
                            Ok(())
                        } else {
                            Err(format!(
                                "the key is {bits} bits; RS256 tokens are checked with keys of \
                                 2048 to 8192 bits"
                            ))
                        }
                    })
                    .map_err(|e| AuthError::Key(format!("RS256 public key: {e}")))?;
                (
                    Algorithm::RS256,
                    DecodingKey::from_rsa_pem(&pem)
                        .map_err(|e| AuthError::Key(format!("RS256 public key: {e}")))?,
                    None,
                )
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = LEEWAY_SECS;
        // A token is not good before its `nbf`, when it names one.
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            // RFC 7519: a token naming audiences this gateway is not configured as one
            // of is not meant for it. Tokens without `aud` are accepted.
            None => validation.aud = None,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            key,
            validation,
            signing,
            issuer,
            audience,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verifies a token and loads the viewer's profile.
    pub async fn viewer(&self, store: &Store, token: &str) -> Result<Viewer, AuthError> {
        let claims = self.verify(token)?;
        let agent_id = claims
            .sub
            .parse::<i64>()
            .map(AgentId)
            .map_err(|_| AuthError::Invalid("the token's subject is not an agent id".into()))?;
        let profile_version = store.profile_version();
        let profile = store
            .viewer_profile(&claims.profile)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "profile lookup failed during authentication");
                AuthError::Unavailable
            })?
            .ok_or_else(|| AuthError::UnknownProfile(claims.profile.clone()))?;
        Ok(Viewer {
            agent_id,
            name: claims.name,
            profile,
            profile_version,
            // An expiry past what a date can hold never comes.
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC),
        })
    }

    /// Mints a token for development; only possible with an HS256 secret.
    pub fn mint(
        &self,
        agent: AgentId,
        profile: &str,
        name: Option<&str>,
        ttl: std::time::Duration,
    ) -> Result<String, AuthError> {
        let (key, algorithm) = self.signing.as_ref().ok_or_else(|| {
            AuthError::Key(
                "only an HS256 secret can mint tokens; an RS256 public key (auth.public_key_file) cannot sign: mint them where the private key is".into(),
            )
        })?;
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: agent.to_string(),
            profile: profile.to_owned(),
            name: name.map(str::to_owned),
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
        };
        encode(&Header::new(*algorithm), &claims, key)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

/// Extracts the token from an `Authorization: Bearer …` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::Claims;

    fn claims(dates: serde_json::Value) -> Claims {
        let mut claims = serde_json::json!({ "sub": "1", "profile": "Agent" });
        claims
            .as_object_mut()
            .unwrap()
            .extend(dates.as_object().unwrap().clone());
        serde_json::from_value(claims).unwrap()
    }

    #[test]
    fn numeric_dates_are_rounded_as_the_validation_rounds_them() {
        // The validation takes 1000.5 for 1001: the socket's deadline must not fall a second
        // before HTTP stops taking the token.
        assert_eq!(claims(serde_json::json!({ "exp": 1000.5 })).exp, 1001);
        assert_eq!(claims(serde_json::json!({ "exp": 1000.4 })).exp, 1000);
        let nulls = claims(serde_json::json!({ "exp": 1000, "iat": null, "nbf": null }));
        assert_eq!((nulls.iat, nulls.nbf), (0, None));
        assert!(
            serde_json::from_value::<Claims>(
                serde_json::json!({ "sub": "1", "profile": "Agent", "exp": null })
            )
            .is_err(),
            "a token must say when it expires"
        );
    }
}
