#![allow(clippy::unwrap_used)]

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use salesforce_sim::SimConfig;
use serde_json::{Value, json};
use support::org_with;

const PRIVATE: &str = include_str!("fixtures/jwt-private.pem");
const PUBLIC: &str = include_str!("fixtures/jwt-public.pem");

fn assertion(claims: Value) -> String {
    let key = EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

fn claims(aud: &str, exp: Value) -> Value {
    json!({ "iss": "tandem-sim", "sub": "integration@tandem.test", "aud": aud, "exp": exp })
}

#[tokio::test]
async fn jwt_bearer_grant_verifies_signature_and_claims() {
    let org = org_with(SimConfig {
        jwt_public_key_pem: Some(PUBLIC.into()),
        ..SimConfig::default()
    })
    .await;
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let soon = chrono::Utc::now().timestamp() + 180;

    // simple-salesforce's form: `exp` a string, its `now + 3 minutes` rounded
    // to the nearest second, so one second past the bound half the time.
    let string_exp = assertion(claims(
        "https://login.salesforce.com",
        json!((soon + 1).to_string()),
    ));
    let (status, body) = org
        .token_request(&[("grant_type", grant), ("assertion", &string_exp)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["instance_url"], json!(org.sim.base_url()));

    let cases = [
        (
            claims("https://evil.example", json!(soon)),
            "audience is invalid",
        ),
        (
            claims("https://test.salesforce.com", json!(soon - 3600)),
            "expired authorization code",
        ),
        (
            claims("https://login.salesforce.com", json!(soon + 3600)),
            "invalid assertion expiry",
        ),
        (
            claims("https://login.salesforce.com", json!(soon + 30)),
            "invalid assertion expiry",
        ),
        (
            json!({ "iss": "tandem-sim", "sub": "someone@else", "aud": "https://login.salesforce.com", "exp": soon }),
            "user hasn't approved this consumer",
        ),
    ];
    for (claims, description) in cases {
        let (status, body) = org
            .token_request(&[("grant_type", grant), ("assertion", &assertion(claims))])
            .await;
        assert_eq!(
            (status, body["error_description"].as_str().unwrap()),
            (400, description)
        );
    }
    let mut forged = string_exp.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let (status, body) = org
        .token_request(&[("grant_type", grant), ("assertion", &forged)])
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
}
