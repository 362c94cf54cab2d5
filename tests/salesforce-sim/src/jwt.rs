//! The JWT-bearer grant: an RS256 assertion checked against the configured public key.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value as Json, json};

use crate::oauth::success;
use crate::state::Sim;

/// Seconds an assertion's `exp` may run past the three-minute bound.
const CLOCK_SKEW: i64 = 5;

fn invalid(description: &str) -> (u16, Json) {
    (
        400,
        json!({ "error": "invalid_grant", "error_description": description }),
    )
}

pub fn bearer(sim: &Sim, assertion: &str) -> Result<Json, (u16, Json)> {
    let pem = sim
        .config
        .jwt_public_key_pem
        .as_deref()
        .ok_or_else(|| invalid("invalid assertion"))?;
    let key =
        DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| invalid("invalid assertion"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let claims = decode::<Json>(assertion, &key, &validation)
        .map_err(|_| invalid("invalid assertion"))?
        .claims;
    if claims["iss"].as_str() != Some(sim.config.client_id.as_str()) {
        return Err((
            400,
            json!({ "error": "invalid_client_id", "error_description": "client identifier invalid" }),
        ));
    }
    let allowed = [
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        sim.base_url.as_str(),
    ];
    let audience_ok = match &claims["aud"] {
        Json::String(a) => allowed.contains(&a.trim_end_matches('/')),
        Json::Array(list) => list
            .iter()
            .filter_map(Json::as_str)
            .any(|a| allowed.contains(&a.trim_end_matches('/'))),
        _ => false,
    };
    if !audience_ok {
        return Err(invalid("audience is invalid"));
    }
    let exp = match &claims["exp"] {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    };
    let now = chrono::Utc::now().timestamp();
    match exp {
        None => return Err(invalid("invalid assertion")),
        Some(exp) if exp <= now => return Err(invalid("expired authorization code")),
        // An assertion is good for at most three minutes, give or take the
        // few seconds of clock skew an org forgives: simple-salesforce rounds
        // its `now + 3 minutes` to the nearest second, so it can ask for 181.
        Some(exp) if exp > now + 180 + CLOCK_SKEW => {
            return Err(invalid("invalid assertion expiry"));
        }
        Some(_) => {}
    }
    let subject_ok = claims["sub"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case(&sim.config.username));
    if !subject_ok {
        return Err(invalid("user hasn't approved this consumer"));
    }
    Ok(success(sim, Some("api"), None))
}
