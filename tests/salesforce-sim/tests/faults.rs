#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use salesforce_sim::SimConfig;
use serde_json::json;
use support::{org, org_with};

#[tokio::test]
async fn daily_budget_ends_in_request_limit_exceeded() {
    let org = org().await;
    org.sim.set_daily_api_limit(3);
    for _ in 0..3 {
        assert_eq!(org.json(Method::GET, "limits", None).await.0, 200);
    }
    let resp = org.call(Method::GET, "limits", None).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["sforce-limit-info"], "api-usage=3/3");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!([{ "message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED" }])
    );
}

#[tokio::test]
async fn limits_reports_the_same_counter_as_the_header() {
    let org = org().await;
    org.sim.set_api_usage(41);
    let answer = org.call(Method::GET, "limits/", None).await;
    let header = answer.headers()["sforce-limit-info"]
        .to_str()
        .unwrap()
        .to_owned();
    let limits: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(header, "api-usage=42/100000");
    let daily = &limits["DailyApiRequests"];
    assert_eq!(daily, &json!({ "Max": 100_000, "Remaining": 100_000 - 42 }));
    let used = daily["Max"].as_i64().unwrap() - daily["Remaining"].as_i64().unwrap();
    assert_eq!(header, format!("api-usage={used}/{}", daily["Max"]));
}

#[tokio::test]
async fn queued_failures_come_first() {
    let org = org().await;
    org.sim.fail_next(&[503, 500]);
    let (status, body) = org.json(Method::GET, "limits", None).await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str().unwrap()),
        (503, "SERVER_UNAVAILABLE")
    );
    let (status, body) = org.json(Method::GET, "limits", None).await;
    assert_eq!(
        (status, body[0]["errorCode"].as_str().unwrap()),
        (500, "UNKNOWN_EXCEPTION")
    );
    assert_eq!(org.json(Method::GET, "limits", None).await.0, 200);
}

#[tokio::test]
async fn error_rate_is_deterministic_under_a_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let org = org_with(SimConfig {
            seed,
            error_rate: 0.5,
            ..SimConfig::default()
        })
        .await;
        let mut out = Vec::new();
        for _ in 0..20 {
            out.push(org.json(Method::GET, "limits", None).await.0);
        }
        out
    }
    let first = statuses(7).await;
    assert_eq!(first, statuses(7).await);
    assert!(first.iter().any(|s| *s >= 500) && first.contains(&200));
}

#[tokio::test]
async fn latency_is_added() {
    let org = org().await;
    org.sim.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    org.json(Method::GET, "limits", None).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        org.sim.requests().last().unwrap().path,
        "/services/data/v62.0/limits"
    );
}

#[tokio::test]
async fn seeded_data_is_linked_and_deterministic() {
    let a = org_with(SimConfig {
        records: 300,
        seed: 9,
        ..SimConfig::default()
    })
    .await;
    let b = org_with(SimConfig {
        records: 300,
        seed: 9,
        ..SimConfig::default()
    })
    .await;
    let soql =
        "SELECT Id, FirstName, LastName, Email, Account.Name FROM Contact ORDER BY Id LIMIT 50";
    assert_eq!(
        a.query(soql).await.1["records"],
        b.query(soql).await.1["records"]
    );
    assert_eq!(a.sim.count("Contact"), 300);
    let (_, no_email) = a
        .query("SELECT COUNT() FROM Contact WHERE Email = null")
        .await;
    assert!(no_email["totalSize"].as_u64().unwrap() > 0);
    let (_, tasks) = a
        .query("SELECT Who.Name, What.Name FROM Task WHERE WhoId != null LIMIT 1")
        .await;
    assert!(tasks["records"][0]["Who"]["Name"].is_string());
    let (_, closed) = a
        .query("SELECT COUNT() FROM Opportunity WHERE IsClosed = true")
        .await;
    assert!(closed["totalSize"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn dropped_connections_cut_the_answer_short() {
    let sim = salesforce_sim::start(salesforce_sim::SimConfig::default()).await;
    let token = sim.access_token();
    let url = format!("{}/services/data/v62.0/limits", sim.base_url());
    let http = reqwest::Client::new();
    sim.drop_next(1);
    let cut = http.get(&url).bearer_auth(&token).send().await;
    let failed = match cut {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(failed, "the first answer never completes");
    let whole = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(whole.status(), 200, "the next call is answered");
}

#[tokio::test]
async fn a_lost_answer_still_makes_the_write() {
    let org = org().await;
    org.sim.lose_next_answers(1);
    let cut = org
        .http
        .post(org.url("sobjects/Contact/"))
        .bearer_auth(&org.token)
        .json(&json!({ "LastName": "Unheard" }))
        .send()
        .await;
    let heard = match cut {
        Err(_) => false,
        Ok(response) => response.bytes().await.is_ok(),
    };
    assert!(!heard, "the client never hears of the create");
    let saved: Vec<_> = org
        .sim
        .records("Contact")
        .into_iter()
        .filter(|c| c["LastName"] == "Unheard")
        .collect();
    assert_eq!(saved.len(), 1, "yet Salesforce made it");
    let (status, _) = org.json(Method::GET, "limits", None).await;
    assert_eq!(status, 200, "the next call is answered");
}

#[tokio::test]
async fn a_held_request_waits_before_or_after_it_is_carried_out() {
    let org = org().await;
    let create = |name: &'static str| {
        let http = org.http.clone();
        let url = org.url("sobjects/Contact/");
        let token = org.token.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({ "LastName": name }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let named = |name: &str| {
        org.sim
            .records("Contact")
            .iter()
            .filter(|c| c["LastName"] == name)
            .count()
    };

    let before = org.sim.hold_next("POST", "/sobjects/Contact");
    let waiting = create("Before");
    before.arrived().await;
    assert_eq!(named("Before"), 0, "held before it is carried out");
    before.release();
    assert_eq!(waiting.await.unwrap(), 201);
    assert_eq!(named("Before"), 1);

    let after = org.sim.hold_answer_next("POST", "/sobjects/Contact");
    let waiting = create("After");
    after.arrived().await;
    assert_eq!(named("After"), 1, "carried out, its answer held");
    let mut waiting = waiting;
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "its answer waits for the release"
    );
    after.release();
    assert_eq!(waiting.await.unwrap(), 201);
}
