//! The identity URL (`/id/{org}/{user}`) that jsforce's `identity()` reads.

use serde_json::{Value as Json, json};

use crate::error::ApiError;
use crate::oauth::{self, org_id, user_id};
use crate::state::Sim;

pub fn identity(
    sim: &Sim,
    path: &str,
    bearer: Option<&str>,
    oauth_token: Option<&str>,
) -> Result<Json, ApiError> {
    let org = org_id(sim.config.seed);
    let expected = format!("/id/{org}/{}", user_id());
    if !path.eq_ignore_ascii_case(&expected)
        && !path.eq_ignore_ascii_case(&format!("/id/{}/{}", &org[..15], &user_id()[..15]))
    {
        return Err(ApiError::not_found());
    }
    let header = oauth_token.map(|t| format!("Bearer {t}"));
    oauth::authorize(sim, header.as_deref().or(bearer))?;
    // An outage reaches the identity service as it does the REST API (no API call is spent).
    if let Some(err) = crate::state::lock(&sim.faults).injected() {
        return Err(err);
    }
    let base = &sim.base_url;
    let data = |p: &str| format!("{base}/services/data/v{{version}}/{p}");
    Ok(json!({
        "id": format!("{base}{expected}"),
        "asserted_user": true,
        "user_id": user_id(),
        "organization_id": org,
        "username": sim.config.username,
        "nick_name": "integration",
        "display_name": "Integration User",
        "email": sim.config.username,
        "email_verified": true,
        "first_name": "Integration",
        "last_name": "User",
        "timezone": "GMT",
        "active": true,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "last_modified_date": "2026-01-01T00:00:00.000+0000",
        "urls": {
            "rest": data(""),
            "sobjects": data("sobjects/"),
            "query": data("query/"),
            "limits": data("limits/"),
            "profile": format!("{base}/{}", user_id()),
        },
    }))
}
