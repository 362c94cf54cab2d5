#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::json;
use support::{V, org};

#[tokio::test]
async fn password_grant_returns_a_token_that_works_for_rest() {
    let org = org().await;
    let (status, body) = org
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", "tandem-sim"),
            ("client_secret", "tandem-sim-secret"),
            ("username", "integration@tandem.test"),
            ("password", "tandem"),
        ])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["instance_url"], json!(org.sim.base_url()));
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["issued_at"].as_str().unwrap().parse::<u64>().is_ok());
    assert!(
        body["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/id/00D", org.sim.base_url()))
    );
    assert!(body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let resp = org
        .http
        .get(format!("{}{V}/limits", org.sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["sforce-limit-info"]
            .to_str()
            .unwrap()
            .starts_with("api-usage=")
    );
}

#[tokio::test]
async fn token_errors_match_salesforce() {
    let org = org().await;
    let cases = [
        (
            vec![("grant_type", "password"), ("client_id", "nope")],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", "tandem-sim"),
                ("client_secret", "wrong"),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", "tandem-sim"),
                ("client_secret", "tandem-sim-secret"),
                ("username", "integration@tandem.test"),
                ("password", "bad"),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            vec![("grant_type", "magic")],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", "tandem-sim"),
                ("client_secret", "tandem-sim-secret"),
                ("refresh_token", "stale"),
            ],
            "invalid_grant",
            "expired access/refresh token",
        ),
        // The app requires its secret: a sign-in without one is refused as with a wrong one.
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", "tandem-sim"),
                ("refresh_token", "stale"),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
    ];
    for (form, error, description) in cases {
        let (status, body) = org.token_request(&form).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({ "error": error, "error_description": description })
        );
    }
}

#[tokio::test]
async fn refresh_grant_issues_a_new_access_token() {
    let org = org().await;
    let refresh = org.sim.refresh_token();
    let (status, body) = org
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "tandem-sim"),
            ("client_secret", "tandem-sim-secret"),
        ])
        .await;
    assert_eq!(status, 200);
    assert_ne!(body["access_token"], json!(org.token));
    assert!(body["signature"].as_str().is_some());
}

#[tokio::test]
async fn expired_tokens_get_invalid_session_id() {
    let org = org().await;
    assert_eq!(org.json(Method::GET, "limits", None).await.0, 200);
    org.sim.advance_clock(7200);
    let (status, body) = org.json(Method::GET, "limits", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );
}

#[tokio::test]
async fn tokens_can_expire_after_a_number_of_requests() {
    let org = org().await;
    org.sim.expire_tokens_after_requests(Some(2));
    assert_eq!(org.json(Method::GET, "limits", None).await.0, 200);
    assert_eq!(org.json(Method::GET, "limits", None).await.0, 200);
    assert_eq!(org.json(Method::GET, "limits", None).await.0, 401);
}

#[tokio::test]
async fn missing_bearer_is_rejected_but_versions_list_is_open() {
    let org = org().await;
    let resp = org
        .http
        .get(format!("{}{V}/sobjects", org.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = org
        .http
        .get(format!("{}/services/data/", org.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let versions: serde_json::Value = resp.json().await.unwrap();
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == "68.0")
    );
}

#[tokio::test]
async fn identity_url_describes_the_integration_user() {
    let org = org().await;
    let (_, login) = org
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", "tandem-sim"),
            ("client_secret", "tandem-sim-secret"),
            ("username", "integration@tandem.test"),
            ("password", "tandem"),
        ])
        .await;
    let id_url = login["id"].as_str().unwrap();
    let token = login["access_token"].as_str().unwrap();
    let resp = org
        .http
        .get(id_url)
        .query(&[("format", "json"), ("oauth_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let identity: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(identity["username"], "integration@tandem.test");
    assert!(id_url.ends_with(identity["user_id"].as_str().unwrap()));
    let user = identity["user_id"].as_str().unwrap();
    let (status, record) = org
        .json(Method::GET, &format!("sobjects/User/{user}"), None)
        .await;
    assert_eq!(
        (status, record["Username"].as_str().unwrap()),
        (200, "integration@tandem.test")
    );
}
