use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::{SECRET, spawn_app, spawn_app_with};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/fixtures")
        .join(name)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(extra: Value) -> Value {
    let mut base =
        json!({ "sub": "1", "profile": "Administrator", "iat": now(), "exp": now() + 600 });
    base.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    base
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// Sends `{ me { agentId } }` with the given Authorization header value.
async fn ask(app: &crate::helpers::TestApp, authorization: Option<String>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": "{ me { agentId } }" }));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

async fn assert_rejected(app: &crate::helpers::TestApp, authorization: Option<String>, why: &str) {
    let response = ask(app, authorization).await;
    assert_eq!(response.status(), 401, "{why}");
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
        "{why}: a 401 names the scheme"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{why}"
    );
    assert!(body.get("data").is_none(), "{why}");
}

#[tokio::test]
async fn two_authorization_headers_are_refused_whoever_they_name() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.graphql_url())
        .header("authorization", format!("Bearer {}", app.token("Agent")))
        .header(
            "authorization",
            format!("Bearer {}", app.token("Administrator")),
        )
        .json(&json!({ "query": "{ me { agentId } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(body.get("data").is_none(), "{body}");
}

#[tokio::test]
async fn a_valid_token_is_accepted() {
    let app = spawn_app().await;
    let response = ask(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&claims(json!({})), SECRET.as_bytes())
        )),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["me"]["agentId"], "1");
}

#[tokio::test]
async fn requests_without_a_usable_token_are_rejected() {
    let app = spawn_app().await;
    let good = hs256(&claims(json!({})), SECRET.as_bytes());
    assert_rejected(&app, None, "no header").await;
    assert_rejected(&app, Some("Basic dXNlcjpwYXNz".into()), "another scheme").await;
    assert_rejected(&app, Some("Bearer".into()), "no token").await;
    assert_rejected(&app, Some("Bearer not.a.jwt".into()), "garbage").await;
    assert_rejected(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&claims(json!({})), b"some-other-secret-some-other-secret!!")
        )),
        "wrong key",
    )
    .await;
    assert_rejected(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&claims(json!({ "exp": now() - 120 })), SECRET.as_bytes())
        )),
        "expired",
    )
    .await;
    assert_rejected(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&claims(json!({ "profile": "Nobody" })), SECRET.as_bytes())
        )),
        "unknown profile",
    )
    .await;
    assert_rejected(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&claims(json!({ "sub": "not-a-number" })), SECRET.as_bytes())
        )),
        "subject",
    )
    .await;

    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut forged: Value = serde_json::from_slice(&base64_url_decode(payload)).unwrap();
    forged["sub"] = json!("2");
    let tampered = format!(
        "{head}.{}.{signature}",
        base64_url_encode(forged.to_string().as_bytes())
    );
    assert_rejected(&app, Some(format!("Bearer {tampered}")), "tampered payload").await;

    let none_header = base64_url_encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{payload}.");
    assert_rejected(&app, Some(format!("Bearer {unsigned}")), "alg none").await;
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let app = spawn_app_with(|s| {
        s.auth.issuer = Some("https://desk.example".into());
        s.auth.audience = Some("tandem".into());
    })
    .await;
    let token = |iss: &str, aud: &str| {
        format!(
            "Bearer {}",
            hs256(
                &claims(json!({ "iss": iss, "aud": aud })),
                SECRET.as_bytes()
            )
        )
    };
    assert_eq!(
        ask(&app, Some(token("https://desk.example", "tandem")))
            .await
            .status(),
        200
    );
    assert_rejected(
        &app,
        Some(token("https://evil.example", "tandem")),
        "wrong issuer",
    )
    .await;
    assert_rejected(
        &app,
        Some(token("https://desk.example", "other")),
        "wrong audience",
    )
    .await;
    assert_rejected(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&claims(json!({})), SECRET.as_bytes())
        )),
        "no issuer",
    )
    .await;
}

#[tokio::test]
async fn tokens_read_as_rfc_7519_writes_them() {
    let app = spawn_app_with(|s| s.auth.audience = Some("tandem".into())).await;
    let bearer = |claims: Value| format!("Bearer {}", hs256(&claims, SECRET.as_bytes()));
    assert_eq!(
        ask(
            &app,
            Some(bearer(claims(json!({ "aud": ["other", "tandem"] }))))
        )
        .await
        .status(),
        200,
        "several audiences, ours among them"
    );
    assert_rejected(
        &app,
        Some(bearer(claims(json!({ "aud": ["other", "another"] })))),
        "several audiences, ours not among them",
    )
    .await;
    let mut without_iat = claims(json!({ "aud": "tandem" }));
    without_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(
        ask(&app, Some(bearer(without_iat))).await.status(),
        200,
        "iat is optional"
    );
    assert_rejected(
        &app,
        Some(bearer(claims(
            json!({ "aud": "tandem", "nbf": now() + 3600 }),
        ))),
        "not yet valid",
    )
    .await;
}

#[tokio::test]
async fn an_rs256_deployment_accepts_its_key_and_refuses_algorithm_confusion() {
    let app = spawn_app_with(|s| s.auth.public_key_file = Some(fixture("rsa-public.pem"))).await;
    let private = std::fs::read(fixture("rsa-private.pem")).unwrap();
    let signed = encode(
        &Header::new(Algorithm::RS256),
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();
    assert_eq!(
        ask(&app, Some(format!("Bearer {signed}"))).await.status(),
        200
    );

    let public = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let confused = hs256(&claims(json!({})), &public);
    assert_rejected(
        &app,
        Some(format!("Bearer {confused}")),
        "HS256 signed with the public key",
    )
    .await;
    assert_rejected(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&claims(json!({})), SECRET.as_bytes())
        )),
        "HS256 token",
    )
    .await;
}

/// The verifier as `tandem serve` builds it from `auth.public_key_file`.
fn verifier_from(file: &str) -> Result<(), String> {
    let mut settings = tandem::config::Settings::default();
    settings.auth.public_key_file = Some(fixture(file));
    tandem::startup::authenticator(&settings)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn a_key_no_rs256_token_could_be_checked_with_is_refused_at_start() {
    assert_eq!(verifier_from("rsa-public.pem"), Ok(()));
    // Accepted, it would refuse every token later: RS256 is checked with 2048 bits or more.
    let short = verifier_from("rsa-1024-public.pem").unwrap_err();
    assert!(
        short.contains("1024 bits") && short.contains("2048"),
        "{short}"
    );
    let private = verifier_from("rsa-private.pem").unwrap_err();
    assert!(
        private.contains("PRIVATE KEY") && private.contains("public half"),
        "{private}"
    );
}

fn base64_url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let values: Vec<u32> = text
        .bytes()
        .map(|c| ALPHABET.iter().position(|a| *a == c).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in values.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[tokio::test]
async fn claims_are_held_to_rfc_7519_without_an_audience_configured() {
    let app = spawn_app().await;
    let bearer = |claims: Value| format!("Bearer {}", hs256(&claims, SECRET.as_bytes()));
    assert_rejected(
        &app,
        Some(bearer(claims(json!({ "aud": "billing-api" })))),
        "a token meant for another service",
    )
    .await;
    assert_rejected(
        &app,
        Some(bearer(claims(json!({ "nbf": "2999-01-01" })))),
        "a not-before that is not a date",
    )
    .await;
    assert_eq!(
        ask(
            &app,
            Some(bearer(claims(
                json!({ "iat": now() as f64 + 0.5, "nbf": now() as f64 - 0.5, "exp": now() as f64 + 600.5 })
            )))
        )
        .await
        .status(),
        200,
        "NumericDates with a fraction"
    );
    assert_eq!(
        ask(&app, Some(bearer(claims(json!({}))))).await.status(),
        200,
        "no audience at all"
    );
    assert_eq!(
        ask(
            &app,
            Some(bearer(claims(json!({ "iat": null, "nbf": null }))))
        )
        .await
        .status(),
        200,
        "dates given as null, as some identity providers write the ones they leave out"
    );
}
