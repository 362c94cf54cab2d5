//! The response cache: a query of desk records and their panels answered again from what was
//! kept, to the same profile, only while nothing it read has changed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem::domain::{TicketId, TicketPatch};

use crate::helpers::{TestApp, codes, spawn_app, spawn_app_with};
use crate::panels::{ACTIVITY, PANELS, by_name, linked_with, with_activity};

/// Long enough that answers kept are not lost to a slow machine between two requests.
const A_MINUTE: u64 = 60_000;

async fn app_keeping_a_minute() -> TestApp {
    spawn_app_with(|s| s.graphql.response_cache_ms = A_MINUTE).await
}

const TICKET: &str = "query($id: ID!) { ticket(id: $id) { subject status contact { lastName } } }";

/// A ticket whose requester is a desk contact; its id.
async fn ticket(app: &TestApp) -> Value {
    let contact = app
        .create_contact(json!({ "lastName": "Asker", "email": "asker@example.com" }))
        .await;
    let created = app
        .gql_ok(
            "mutation($c: ID!) { createTicket(input: { subject: \"Printer on fire\", contactId: $c }) { id } }",
            json!({ "c": contact["id"] }),
        )
        .await;
    created["createTicket"]["id"].clone()
}

#[tokio::test]
async fn a_client_asking_for_an_answer_no_older_than_a_second_gets_none_older() {
    let app = app_keeping_a_minute().await;
    let id = ticket(&app).await;
    let token = app.token("Agent");
    let ask = |control: Option<&'static str>| {
        let (app, token, id) = (&app, &token, &id);
        async move {
            let mut request = app
                .client
                .post(app.graphql_url())
                .bearer_auth(token)
                .json(&json!({ "query": TICKET, "variables": { "id": id } }));
            if let Some(control) = control {
                request = request.header("cache-control", control);
            }
            let response = request.send().await.unwrap();
            let age = response
                .headers()
                .get("age")
                .map(|a| a.to_str().unwrap().parse::<u64>().unwrap());
            (app.response_cache().await.0, age)
        }
    };
    let (hits, age) = ask(None).await;
    assert_eq!(age, None, "computed: no age");
    let (kept, age) = ask(None).await;
    assert_eq!(kept, hits + 1, "kept");
    assert!(age.is_some_and(|secs| secs <= 1), "and said to be: {age:?}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (fresh, age) = ask(Some("max-age=2")).await;
    assert_eq!(
        (fresh, age),
        (kept, None),
        "older than two seconds: computed"
    );
    let (within, age) = ask(Some("max-age=60")).await;
    assert_eq!(within, kept + 1, "the new one is young enough");
    assert!(age.is_some_and(|secs| secs <= 1), "{age:?}");
}

#[tokio::test]
async fn a_repeated_query_is_answered_from_the_cache_until_the_desk_changes() {
    let app = app_keeping_a_minute().await;
    let id = ticket(&app).await;
    let vars = json!({ "id": id });

    let (hits, misses) = app.response_cache().await;
    let first = app.gql_as("Agent", TICKET, vars.clone()).await;
    let again = app.gql_as("Agent", TICKET, vars.clone()).await;
    assert_eq!(first["data"]["ticket"]["subject"], "Printer on fire");
    assert_eq!(again, first);
    assert_eq!(
        app.response_cache().await,
        (hits + 1, misses + 1),
        "computed once, then served as kept"
    );

    // A write is seen by the very next request.
    app.gql_ok(
        "mutation($id: ID!) { updateTicket(id: $id, patch: { subject: \"Printer fixed\" }) { id } }",
        vars.clone(),
    )
    .await;
    let after = app.gql_as("Agent", TICKET, vars.clone()).await;
    assert_eq!(after["data"]["ticket"]["subject"], "Printer fixed");
    assert_eq!(app.response_cache().await, (hits + 1, misses + 2));

    // Another agent of the same profile is served the same answer; other variables are
    // another answer.
    let other_agent = app
        .gql_with(&app.agent_token(2, "Agent"), None, TICKET, vars)
        .await;
    assert_eq!(other_agent, after);
    let missing = app.gql_as("Agent", TICKET, json!({ "id": "999" })).await;
    assert_eq!(missing["data"]["ticket"], Value::Null);
    assert_eq!(app.response_cache().await, (hits + 2, misses + 3));
}

#[tokio::test]
async fn no_cache_asks_for_an_answer_computed_afresh() {
    let app = app_keeping_a_minute().await;
    let id = ticket(&app).await;
    let vars = json!({ "id": id });
    app.gql_as("Agent", TICKET, vars.clone()).await;
    let (hits, misses) = app.response_cache().await;
    let fresh = app.gql_fresh("Agent", TICKET, vars.clone()).await;
    assert_eq!(fresh["data"]["ticket"]["subject"], "Printer on fire");
    assert_eq!(app.response_cache().await, (hits, misses + 1));
    // What it computed is kept for the next request.
    app.gql_as("Agent", TICKET, vars.clone()).await;
    assert_eq!(app.response_cache().await, (hits + 1, misses + 1));

    // `no-store`: computed, and not kept either.
    app.gql_ok(
        "mutation($id: ID!) { updateTicket(id: $id, patch: { subject: \"Toner low\" }) { id } }",
        vars.clone(),
    )
    .await;
    let unkept = app
        .gql_with(&app.token("Agent"), Some("no-store"), TICKET, vars.clone())
        .await;
    assert_eq!(unkept["data"]["ticket"]["subject"], "Toner low");
    app.gql_as("Agent", TICKET, vars).await;
    assert_eq!(app.response_cache().await, (hits + 1, misses + 3));
}

#[tokio::test]
async fn only_queries_of_desk_records_and_panels_are_kept() {
    let app = app_keeping_a_minute().await;
    let id = ticket(&app).await;
    let before = app.response_cache().await;
    for (query, vars) in [
        ("{ me { name permissions { accessLevel } } }", json!({})),
        ("{ integration { status } }", json!({})),
        (
            "query($id: ID!) { ticket(id: $id) { subject } me { name } }",
            json!({ "id": id }),
        ),
        (
            "query($id: ID!) { ...Both } fragment Both on Query { ticket(id: $id) { subject } profiles { name } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { updateTicket(id: $id, patch: { status: ON_HOLD }) { status } }",
            json!({ "id": id }),
        ),
    ] {
        for _ in 0..2 {
            app.gql(query, vars.clone()).await;
        }
    }
    assert_eq!(app.response_cache().await, before, "none of them is kept");

    // Named operations: the one asked for decides.
    let doc = "query Mine { me { name } } query Desk($id: ID!) { ticket(id: $id) { subject } }";
    let post = |operation: &'static str| {
        app.client
            .post(app.graphql_url())
            .bearer_auth(app.token("Agent"))
            .json(&json!({ "query": doc, "operationName": operation, "variables": { "id": id } }))
            .send()
    };
    for _ in 0..2 {
        post("Mine").await.unwrap();
    }
    assert_eq!(app.response_cache().await, before);
    let desk = post("Desk").await.unwrap().json::<Value>().await.unwrap();
    post("Desk").await.unwrap();
    assert_eq!(desk["data"]["ticket"]["subject"], "Printer on fire");
    assert_eq!(app.response_cache().await, (before.0 + 1, before.1 + 1));
}

#[tokio::test]
async fn answers_are_kept_per_profile_and_follow_a_permission_change_at_once() {
    let (app, _sim, _) = with_activity(|s| s.graphql.response_cache_ms = A_MINUTE).await;
    let agent = app.gql_as("Agent", ACTIVITY, json!({})).await;
    assert!(agent.get("errors").is_none(), "{agent}");
    let panel = &agent["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["open"][0]["name"], "Renewal");

    // Same query, a profile without opportunities: not the Agent's answer.
    for _ in 0..2 {
        let light = app.gql_as("Light Agent", ACTIVITY, json!({})).await;
        let panel = &light["data"]["contacts"]["nodes"][0]["salesforce"];
        assert_eq!(panel["open"], Value::Null, "{light}");
        assert_eq!(codes(&light), ["FORBIDDEN"; 3], "{light}");
        assert_eq!(panel["notes"][0]["title"], "Prefers email");
    }
    let (hits, _) = app.response_cache().await;
    let again = app.gql_as("Agent", ACTIVITY, json!({})).await;
    assert_eq!(again, agent);
    assert_eq!(app.response_cache().await.0, hits + 1);

    let profiles = app.gql_ok("{ profiles { id name } }", json!({})).await;
    let agent_profile = profiles["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Agent")
        .unwrap()["id"]
        .clone();
    app.gql_ok(
        "mutation($id: ID!) { updateProfilePermissions(id: $id, permissions: { opportunities: false }) { id } }",
        json!({ "id": agent_profile }),
    )
    .await;
    let revoked = app.gql_as("Agent", ACTIVITY, json!({})).await;
    let panel = &revoked["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["open"], Value::Null, "{revoked}");
    assert_eq!(codes(&revoked), ["FORBIDDEN"; 3], "{revoked}");
}

#[tokio::test]
async fn a_sync_round_shows_in_the_next_answer() {
    let (app, sim, contact) = linked_with(|s| s.graphql.response_cache_ms = A_MINUTE).await;
    let before = app.gql_ok(PANELS, json!({})).await;
    assert_eq!(
        by_name(&before, "Paneled")["salesforce"]["fields"]["Department"],
        Value::Null
    );
    let (hits, _) = app.response_cache().await;
    assert_eq!(app.gql_ok(PANELS, json!({})).await, before);
    assert_eq!(app.response_cache().await.0, hits + 1, "kept");
    sim.update("Contact", &contact, json!({ "Department": "Procurement" }))
        .unwrap();
    app.sync_now().await;
    let after = app.gql_ok(PANELS, json!({})).await;
    assert_eq!(
        by_name(&after, "Paneled")["salesforce"]["fields"]["Department"],
        "Procurement"
    );
}

#[tokio::test]
async fn another_process_s_change_shows_within_the_moment() {
    let app = spawn_app().await;
    let id = ticket(&app).await;
    let vars = json!({ "id": id });
    let other = crate::replicas::second_process(&app).await;
    app.gql_as("Agent", TICKET, vars.clone()).await;
    let ticket_id = TicketId(id.as_str().unwrap().parse().unwrap());
    other
        .store
        .update_ticket(
            ticket_id,
            &TicketPatch {
                subject: Some(Some("Changed elsewhere".into())),
                ..TicketPatch::default()
            },
            None,
        )
        .await
        .unwrap();
    let changed = Instant::now();
    // PostgreSQL replicas hear of it at once; on SQLite the moment (a second) runs out.
    loop {
        let body = app.gql_as("Agent", TICKET, vars.clone()).await;
        if body["data"]["ticket"]["subject"] == "Changed elsewhere" {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_millis(1500),
            "still the old answer after {:?}: {body}",
            changed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
