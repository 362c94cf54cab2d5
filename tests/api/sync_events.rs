//! `syncEvents` over both WebSocket protocols: replay after an id, then live, with no gap and
//! no repeat, within what the subscriber's profile may see.

use salesforce_sim::SimHandle;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::integration::started;
use crate::ws::{LEGACY, TRANSPORT, Ws};

const EVENTS: &str = "subscription($after: ID, $modules: [SyncModule!], $kinds: [SyncEventType!]) { syncEvents(afterId: $after, modules: $modules, kinds: $kinds) { id at kind module status statusReason history { direction module added } failure { reason resolvedAt } } }";

/// A connected, synced desk: the log holds the connect, one contact history entry and one
/// account history entry.
async fn synced() -> (TestApp, SimHandle) {
    let (app, sim) = started(|_| {}).await;
    sim.insert("Account", json!({ "Name": "Logged Ltd" }))
        .unwrap();
    sim.insert("Contact", json!({ "LastName": "Logged" }))
        .unwrap();
    app.sync_now().await;
    (app, sim)
}

/// A desk contact Salesforce refuses (`STRING_TOO_LONG`) as a round sends it: one open
/// failure.
async fn refused_push(app: &TestApp, sim: &SimHandle) {
    app.create_contact(json!({ "lastName": "Refused" })).await;
    sim.reject_next_records(&[("STRING_TOO_LONG", "Title: data value too large")]);
    app.sync_now().await;
}

/// Every id in the log, oldest first.
async fn logged_ids(app: &TestApp) -> Vec<String> {
    app.store
        .sync_events_after(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.to_string())
        .collect()
}

/// An administrator's subscription seen to follow live: from the newest id (one from now
/// on could miss what comes while the server is still setting it up, and nothing says when
/// it is done), then past a pause this process makes.
async fn following(app: &TestApp) -> Ws {
    let newest = logged_ids(app).await.last().unwrap().clone();
    let mut live = subscribe(app, "Administrator", json!({ "after": newest })).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    assert_eq!(next_event(&mut live).await["status"], "PAUSED");
    live
}

async fn subscribe(app: &TestApp, profile: &str, variables: Value) -> Ws {
    subscribe_with(app, profile, EVENTS, variables).await
}

/// [`subscribe`] with a query of its own.
async fn subscribe_with(app: &TestApp, profile: &str, query: &str, variables: Value) -> Ws {
    let mut ws = Ws::connect(app, Some(TRANSPORT)).await;
    ws.init(app, profile).await;
    ws.send(json!({ "id": "s", "type": "subscribe", "payload": { "query": query, "variables": variables } }))
        .await;
    ws
}

async fn next_event(ws: &mut Ws) -> Value {
    let message = ws.recv().await;
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["syncEvents"].clone()
}

#[tokio::test]
async fn a_subscriber_replays_the_log_after_an_id_then_follows_live_without_gap_or_repeat() {
    let (app, _sim) = synced().await;
    let logged = logged_ids(&app).await;
    assert!(logged.len() >= 3, "{logged:?}");

    let mut all = subscribe(&app, "Administrator", json!({ "after": "0" })).await;
    let mut replayed = Vec::new();
    for _ in &logged {
        replayed.push(next_event(&mut all).await);
    }
    let ids: Vec<&str> = replayed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, logged, "the whole log, in order");
    assert_eq!(replayed[0]["kind"], "STATUS");
    assert_eq!(replayed[0]["status"], "ACTIVE", "connecting is logged");
    assert!(
        replayed.iter().any(|e| e["history"]
            == json!({ "direction": "SALESFORCE_TO_DESK", "module": "CONTACTS", "added": 1 })),
        "{replayed:?}"
    );

    // A second subscriber resumes after the first event, while changes keep coming.
    let mut resumed = subscribe(&app, "Administrator", json!({ "after": logged[0] })).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    let now = logged_ids(&app).await;
    assert_eq!(now.len(), logged.len() + 2);

    let mut seen = Vec::new();
    for _ in 1..now.len() {
        seen.push(next_event(&mut resumed).await);
    }
    let ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, now[1..], "everything after the given id, once each");
    let statuses: Vec<&Value> = seen.iter().rev().take(2).map(|e| &e["status"]).collect();
    assert_eq!(statuses, [&json!("ACTIVE"), &json!("PAUSED")]);

    // The first subscriber, already live, gets the two changes exactly once.
    let live = [next_event(&mut all).await, next_event(&mut all).await];
    assert_eq!(live[0]["id"].as_str().unwrap(), now[now.len() - 2]);
    assert_eq!(live[1]["id"].as_str().unwrap(), now[now.len() - 1]);
}

#[tokio::test]
async fn a_dashboard_follows_on_from_the_integration_it_read_without_a_gap() {
    let (app, _sim) = synced().await;
    let read = app
        .gql_ok("{ integration { status lastEventId } }", json!({}))
        .await;
    assert_eq!(read["integration"]["status"], "ACTIVE");
    let newest = logged_ids(&app).await.last().unwrap().clone();
    assert_eq!(read["integration"]["lastEventId"], newest.as_str());

    // Paused after the dashboard read it, before it subscribed: the pause still reaches it.
    let paused = app
        .gql_ok("mutation { pauseSync { status lastEventId } }", json!({}))
        .await;
    let mut dashboard = subscribe(
        &app,
        "Administrator",
        json!({ "after": read["integration"]["lastEventId"] }),
    )
    .await;
    assert_eq!(next_event(&mut dashboard).await["status"], "PAUSED");
    // A mutation's answer was read after the events before it: following on from it may
    // repeat the change it made, and misses nothing.
    assert_eq!(paused["pauseSync"]["lastEventId"], newest.as_str());
}

#[tokio::test]
async fn a_dashboard_follows_on_from_the_sync_log_lists_it_read() {
    let (app, sim) = synced().await;
    let read = app
        .gql_ok(
            "{ syncHistory(first: 50) { lastEventId totalCount } syncFailures { lastEventId totalCount } }",
            json!({}),
        )
        .await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    assert_eq!(
        read["syncHistory"]["lastEventId"],
        newest.as_str(),
        "{read}"
    );
    assert_eq!(
        read["syncFailures"]["lastEventId"],
        newest.as_str(),
        "{read}"
    );
    assert_eq!(read["syncFailures"]["totalCount"], 0);

    // A failure logged after the lists were read reaches the dashboard following on.
    refused_push(&app, &sim).await;
    let mut dashboard = subscribe(
        &app,
        "Administrator",
        json!({ "after": read["syncFailures"]["lastEventId"], "kinds": ["FAILURE"] }),
    )
    .await;
    assert_eq!(
        next_event(&mut dashboard).await["failure"]["reason"],
        "STRING_TOO_LONG"
    );
}

#[tokio::test]
async fn failures_and_filters_reach_subscribers_over_the_legacy_protocol_too() {
    let (app, sim) = synced().await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    let mut ws = Ws::connect(&app, Some(LEGACY)).await;
    ws.init(&app, "Administrator").await;
    ws.send(json!({ "id": "f", "type": "start", "payload": { "query": EVENTS, "variables": { "after": newest, "kinds": ["FAILURE"] } } }))
        .await;
    refused_push(&app, &sim).await;

    let message = ws.recv().await;
    assert_eq!(message["type"], "data", "{message}");
    let event = &message["payload"]["data"]["syncEvents"];
    assert_eq!(event["kind"], "FAILURE");
    assert_eq!(event["module"], "CONTACTS");
    assert_eq!(event["failure"]["reason"], "STRING_TOO_LONG");
}

#[tokio::test]
async fn a_deleted_integration_replays_none_of_its_failures() {
    let (app, sim) = synced().await;
    refused_push(&app, &sim).await;
    let failed = app
        .gql_ok("{ syncFailures { totalCount } }", json!({}))
        .await;
    assert_eq!(
        failed["syncFailures"]["totalCount"], 1,
        "one failure to forget"
    );
    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    let mut ws = subscribe(&app, "Administrator", json!({ "after": "0" })).await;
    let mut kinds = Vec::new();
    loop {
        let event = next_event(&mut ws).await;
        kinds.push(event["kind"].as_str().unwrap().to_owned());
        if event["status"] == "NOT_CONNECTED" {
            break;
        }
    }
    assert!(kinds.contains(&"HISTORY".to_owned()), "{kinds:?}");
    assert!(
        !kinds.contains(&"FAILURE".to_owned()),
        "the org's failures went with it: {kinds:?}"
    );
}

#[tokio::test]
async fn connecting_another_org_ends_the_former_connection_and_its_failures_on_the_stream() {
    let (app, sim) = synced().await;
    let before = logged_ids(&app).await.last().unwrap().clone();
    refused_push(&app, &sim).await;
    let mut live = following(&app).await;

    let other = salesforce_sim::start(salesforce_sim::SimConfig {
        seed: 2,
        ..salesforce_sim::SimConfig::default()
    })
    .await;
    let switched = crate::integration::connect(&app, &other, "tandem").await;
    assert!(switched.get("errors").is_none(), "{switched}");
    let failures = app
        .gql_ok("{ syncFailures { totalCount } }", json!({}))
        .await;
    assert_eq!(failures["syncFailures"]["totalCount"], 0, "forgotten");

    // A dashboard that kept the open failure from the stream is told it is gone, live and
    // replaying alike, as when an integration is deleted.
    let ended = next_event(&mut live).await;
    assert_eq!(ended["status"], "NOT_CONNECTED", "{ended}");
    assert!(
        ended["statusReason"]
            .as_str()
            .is_some_and(|r| r.contains("another Salesforce org")),
        "{ended}"
    );
    let now = next_event(&mut live).await;
    assert_eq!(now["kind"], "STATUS");
    assert_ne!(now["status"], "NOT_CONNECTED", "{now}");
    let mut replay = subscribe(&app, "Administrator", json!({ "after": before })).await;
    let mut kinds = Vec::new();
    loop {
        let event = next_event(&mut replay).await;
        if event["status"] == "NOT_CONNECTED" {
            break;
        }
        kinds.push(event["kind"].as_str().unwrap().to_owned());
    }
    assert!(
        !kinds.contains(&"FAILURE".to_owned()),
        "the former org's failures went with it: {kinds:?}"
    );
}

#[tokio::test]
async fn a_resolved_failure_says_when_as_the_failure_log_does() {
    let (app, sim) = synced().await;
    refused_push(&app, &sim).await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    let mut ws = subscribe(
        &app,
        "Administrator",
        json!({ "after": newest, "kinds": ["FAILURE"] }),
    )
    .await;
    let failures = "{ syncFailures(includeResolved: true) { nodes { id resolvedAt } } }";
    let id = app.gql_ok(failures, json!({})).await["syncFailures"]["nodes"][0]["id"].clone();
    app.gql_ok(
        "mutation($id: ID!) { retrySyncFailure(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    app.sync_now().await;
    let logged = app.gql_ok(failures, json!({})).await;
    let resolved = &logged["syncFailures"]["nodes"][0]["resolvedAt"];
    assert!(resolved.is_string(), "{logged}");
    // To the digit the database keeps (PostgreSQL, microseconds).
    assert_eq!(
        next_event(&mut ws).await["failure"]["resolvedAt"],
        *resolved
    );
}

#[tokio::test]
async fn an_event_read_live_and_replayed_says_the_same_time() {
    let (app, _sim) = synced().await;
    let mut live = following(&app).await;
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    let resumed = next_event(&mut live).await;
    assert_eq!(resumed["status"], "ACTIVE", "{resumed}");
    let before: i64 = resumed["id"].as_str().unwrap().parse::<i64>().unwrap() - 1;
    let mut replay = subscribe(
        &app,
        "Administrator",
        json!({ "after": before.to_string() }),
    )
    .await;
    assert_eq!(next_event(&mut replay).await, resumed);
}

#[tokio::test]
async fn agents_see_only_the_modules_their_profile_shows() {
    let (app, _sim) = synced().await;
    app.gql_ok(
        "mutation { createProfile(input: { name: \"Contacts Desk\", permissions: { panel: CONTACTS } }) { id } }",
        json!({}),
    )
    .await;
    app.gql_ok(
        "mutation { createProfile(input: { name: \"No Salesforce\", permissions: { information: false } }) { id } }",
        json!({}),
    )
    .await;
    let logged = app.store.sync_events_after(0, 1000).await.unwrap();
    let visible = logged
        .iter()
        .filter(|e| {
            e.kind
                .module()
                .is_none_or(|m| m == tandem::domain::Module::Contacts)
        })
        .count();
    assert!(visible < logged.len(), "the log has account events too");

    let mut ws = subscribe(&app, "Contacts Desk", json!({ "after": "0" })).await;
    let mut seen = Vec::new();
    for _ in 0..visible {
        seen.push(next_event(&mut ws).await);
    }
    assert!(
        seen.iter().all(|e| e["module"] != "ACCOUNTS"),
        "no account events: {seen:?}"
    );
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    assert_eq!(
        next_event(&mut ws).await["status"],
        "PAUSED",
        "the next thing it sees is the live status change, not an account event"
    );

    let mut refused = subscribe(&app, "No Salesforce", json!({})).await;
    let message = refused.recv().await;
    assert_eq!(message["payload"]["data"], Value::Null, "{message}");
    assert_eq!(
        message["payload"]["errors"][0]["extensions"]["code"],
        "FORBIDDEN"
    );
    assert_eq!(refused.recv().await["type"], "complete");

    // Asking for the module its panel does not show, it is told so, not left waiting.
    let mut asked = subscribe(
        &app,
        "Contacts Desk",
        json!({ "modules": ["ACCOUNTS"], "kinds": ["FAILURE"] }),
    )
    .await;
    let (code, message) = refusal(&mut asked).await;
    assert_eq!(code, "FORBIDDEN", "{message}");
    assert!(message.contains("ACCOUNTS"), "{message}");
    // An empty list asks for nothing.
    for empty in [json!({ "modules": [] }), json!({ "kinds": [] })] {
        let mut asked = subscribe(&app, "Administrator", empty.clone()).await;
        let (code, message) = refusal(&mut asked).await;
        assert_eq!(code, "BAD_USER_INPUT", "{empty}: {message}");
    }
}

#[tokio::test]
async fn event_ids_follow_the_order_their_transactions_commit_in() {
    use tandem::domain::{Direction, Module};
    let app = crate::helpers::spawn_app().await;
    let mut first = app.store.begin_sync().await.unwrap();
    first
        .history(Direction::SalesforceToDesk, Module::Contacts, (1, 0, 0))
        .await
        .unwrap();
    let store = app.store.clone();
    let second = tokio::spawn(async move {
        let mut batch = store.begin_sync().await.unwrap();
        batch
            .history(Direction::SalesforceToDesk, Module::Accounts, (2, 0, 0))
            .await
            .unwrap();
        batch.commit().await.unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // PostgreSQL runs the two at once, and the second commits first; SQLite's one writer
    // holds the second back until the first commits.
    let second_first = second.is_finished();
    // An event is in the log once its transaction commits, not before: a follower reading it
    // now finds no later id while an earlier one is still to come.
    let early: Vec<_> = app.store.sync_events_after(0, 10).await.unwrap();
    let modules = |log: &[tandem::store::SyncEvent]| -> Vec<_> {
        log.iter().map(|e| e.kind.module()).collect()
    };
    let expected = if second_first {
        vec![Some(Module::Accounts), Some(Module::Contacts)]
    } else {
        vec![Some(Module::Contacts), Some(Module::Accounts)]
    };
    assert_eq!(modules(&early), expected[..usize::from(second_first)]);
    first.commit().await.unwrap();
    second.await.unwrap();
    let log = app.store.sync_events_after(0, 10).await.unwrap();
    assert_eq!(modules(&log), expected);
}

/// A sync batch that has logged a failure goes on to one a desk delete holds, while the
/// delete, holding it, logs that it resolved it: neither waits on the other for good (on
/// PostgreSQL, where the two run at once, one was aborted as a deadlock).
#[tokio::test]
async fn a_batch_that_logged_an_event_and_a_desk_delete_logging_one_both_commit() {
    use tandem::domain::{ContactInput, Direction, FailureReason, Module, RetryPolicy};
    use tandem::store::NewFailure;
    let app = crate::helpers::spawn_app().await;
    let contact = |name: &str| ContactInput {
        last_name: Some(name.into()),
        ..Default::default()
    };
    let kept = app
        .store
        .create_contact(&contact("Kept"), None)
        .await
        .unwrap();
    let binned = app
        .store
        .create_contact(&contact("Binned"), None)
        .await
        .unwrap();
    let refused = |desk_id: i64| NewFailure {
        direction: Direction::DeskToSalesforce,
        module: Module::Contacts,
        desk_id: Some(desk_id),
        salesforce_id: None,
        reason: FailureReason::InvalidParameter,
        message: "refused".into(),
        modstamp: None,
        match_key: None,
    };
    let retry = RetryPolicy::default();
    let mut batch = app.store.begin_sync().await.unwrap();
    batch.fail(refused(binned.id.0), &retry).await.unwrap();
    batch.commit().await.unwrap();

    let mut batch = app.store.begin_sync().await.unwrap();
    batch.fail(refused(kept.id.0), &retry).await.unwrap();
    let store = app.store.clone();
    let delete = tokio::spawn(async move { store.delete_contact(binned.id).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    batch.fail(refused(binned.id.0), &retry).await.unwrap();
    batch.commit().await.unwrap();
    delete.await.unwrap().unwrap();

    let log = app.store.sync_events_after(0, 100).await.unwrap();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test]
async fn a_permission_revoked_while_a_socket_is_open_holds_for_its_streams_and_operations() {
    let (app, _sim) = synced().await;
    let profile = app
        .gql_ok(
            "mutation { createProfile(input: { name: \"Night Desk\", permissions: {} }) { id } }",
            json!({}),
        )
        .await["createProfile"]["id"]
        .clone();
    // From the newest event on, whenever the server gets to the subscription.
    let newest = logged_ids(&app).await.pop().unwrap();
    let mut ws = subscribe(&app, "Night Desk", json!({ "after": newest })).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    assert_eq!(
        next_event(&mut ws).await["status"],
        "PAUSED",
        "following live"
    );

    app.gql_ok(
        "mutation($id: ID!) { updateProfilePermissions(id: $id, permissions: { information: false }) { id } }",
        json!({ "id": profile }),
    )
    .await;
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    let message = ws.recv().await;
    assert_eq!(message["payload"]["data"], Value::Null, "{message}");
    assert_eq!(
        message["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "the open stream stops at its next event: {message}"
    );
    assert_eq!(ws.recv().await["type"], "complete");

    ws.send(json!({ "id": "again", "type": "subscribe", "payload": { "query": EVENTS } }))
        .await;
    let again = ws.recv().await;
    assert_eq!(
        again["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "a new operation on the same socket reads the profile as it is now: {again}"
    );
}

#[tokio::test]
async fn an_after_id_beyond_the_log_is_refused() {
    let (app, _sim) = synced().await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    let beyond: i64 = newest.parse::<i64>().unwrap() + 1000;
    let mut ws = subscribe(
        &app,
        "Administrator",
        json!({ "after": beyond.to_string() }),
    )
    .await;
    let (code, message) = refusal(&mut ws).await;
    assert_eq!(code, "BAD_USER_INPUT", "{message}");
    assert!(
        message.contains(&newest),
        "names the newest event: {message}"
    );
}

#[tokio::test]
async fn events_another_process_logs_reach_this_ones_subscribers() {
    let (app, _sim) = synced().await;
    let mut live = following(&app).await;
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    assert_eq!(next_event(&mut live).await["status"], "ACTIVE");
    // Another process on the same database (`tandem sync --once` beside `serve` on one
    // SQLite file, or another replica) pauses the sync.
    let other = crate::replicas::second_process(&app).await;
    other.integrations.pause().await.unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), next_event(&mut live))
        .await
        .expect("the other process's event arrives within seconds");
    assert_eq!(event["kind"], "STATUS");
    assert_eq!(event["status"], "PAUSED");
}

#[tokio::test]
async fn an_event_logged_without_a_word_to_anyone_still_reaches_subscribers() {
    use sea_orm::ConnectionTrait;
    let (app, _sim) = synced().await;
    let mut live = following(&app).await;
    // A process that commits an event and dies before telling anyone (or whose notice the
    // listening connection, reconnecting, never hears): the log holds it, nobody said so.
    let db = app.store.connection();
    db.execute_unprepared(
        "INSERT INTO sync_event (at, kind, module, payload) \
         SELECT at, kind, module, replace(payload, 'PAUSED', 'ACTIVE') FROM sync_event \
         WHERE id = (SELECT max(id) FROM sync_event)",
    )
    .await
    .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), next_event(&mut live))
        .await
        .expect("the log is read again within seconds");
    assert_eq!(event["kind"], "STATUS");
    assert_eq!(event["status"], "ACTIVE");
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn a_permission_changed_while_the_replica_was_not_listening_holds_once_it_listens_again() {
    use sea_orm::ConnectionTrait;
    let (app, _sim) = synced().await;
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let mut ws = night_desk_following(&app).await;
    // Another replica revokes the profile's information, and its notice is lost: written
    // straight to the database, while this replica's listening connection is cut.
    let db = app.store.connection();
    db.execute_unprepared("UPDATE profile SET grant_information = false WHERE name = 'Night Desk'")
        .await
        .unwrap();
    db.execute_unprepared(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .await
    .unwrap();
    // Events go on; once the replica listens again, the open stream reads its profile anew
    // and stops at its next event.
    stops_forbidden(&app, &mut ws).await;
}

/// Pauses and resumes (the stream was last told PAUSED) until the stream stops with
/// `FORBIDDEN`, for at most 10 s.
async fn stops_forbidden(app: &TestApp, ws: &mut Ws) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut paused = true;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the open stream still hands out events its profile no longer allows"
        );
        paused = !paused;
        let status = if paused { "pauseSync" } else { "resumeSync" };
        app.gql_ok(&format!("mutation {{ {status} {{ status }} }}"), json!({}))
            .await;
        let message = ws.recv().await;
        if message["type"] == "next" && message["payload"]["data"] != Value::Null {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(
            message["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{message}"
        );
        break;
    }
    assert_eq!(ws.recv().await["type"], "complete");
}

#[tokio::test]
async fn a_permission_changed_without_a_word_to_anyone_holds_for_open_streams() {
    use sea_orm::ConnectionTrait;
    let (app, _sim) = synced().await;
    let mut ws = night_desk_following(&app).await;
    // Another process revokes the profile's information and its notice never comes: it
    // stopped between its commit and the notice, or shares this SQLite file.
    app.store
        .connection()
        .execute_unprepared(
            "UPDATE profile SET grant_information = false WHERE name = 'Night Desk'",
        )
        .await
        .unwrap();
    stops_forbidden(&app, &mut ws).await;
}

#[tokio::test]
async fn a_logged_event_this_version_cannot_read_is_passed_over() {
    use sea_orm::ConnectionTrait;
    let (app, _sim) = synced().await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    // A newer replica logs a kind of event this one does not know.
    app.store
        .connection()
        .execute_unprepared(
            "INSERT INTO sync_event (at, kind, module, payload) \
             SELECT at, 'FORECAST', NULL, '{\"Forecast\":{}}' FROM sync_event \
             WHERE id = (SELECT max(id) FROM sync_event)",
        )
        .await
        .unwrap();
    let mut live = subscribe(&app, "Administrator", json!({ "after": newest })).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), next_event(&mut live))
        .await
        .expect("the stream goes on past the row it cannot read");
    assert_eq!(event["status"], "PAUSED");
}

#[tokio::test]
async fn a_page_of_events_this_version_cannot_read_holds_up_none_logged_after_it() {
    use sea_orm::ConnectionTrait;
    let (app, _sim) = synced().await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    let mut live = following(&app).await;
    // A newer replica logs more events of a kind this one does not know than the log is read
    // a page at a time, then one it knows.
    let db = app.store.connection();
    db.execute_unprepared(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1001) \
         INSERT INTO sync_event (at, kind, module, payload) \
         SELECT e.at, 'FORECAST', NULL, '{{\"Forecast\":{{}}}}' FROM n, sync_event e \
         WHERE e.id = {newest}"
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO sync_event (at, kind, module, payload) \
         SELECT at, kind, module, payload FROM sync_event WHERE id = {newest}"
    ))
    .await
    .unwrap();
    let known: i64 = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT max(id) AS id FROM sync_event",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap();
    let known = known.to_string();
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), next_event(&mut live))
        .await
        .expect("the event after the unreadable ones arrives");
    assert_eq!(event["id"], known.as_str());
}

#[tokio::test]
async fn a_log_that_cannot_be_read_is_reported_once_and_read_again_once_it_can() {
    use sea_orm::ConnectionTrait;
    let (app, _sim) = synced().await;
    let logged = logged_ids(&app).await;
    let db = app.store.connection();
    db.execute_unprepared("ALTER TABLE sync_event RENAME TO sync_event_away")
        .await
        .unwrap();
    let mut ws = subscribe(&app, "Administrator", json!({ "after": "0" })).await;
    let failed = ws.recv().await;
    assert_eq!(failed["type"], "next", "{failed}");
    assert_eq!(
        failed["payload"]["errors"][0]["extensions"]["code"], "INTERNAL",
        "{failed}"
    );
    let more = tokio::time::timeout(std::time::Duration::from_millis(1_500), ws.recv()).await;
    assert!(
        more.is_err(),
        "the failed read is said once, not again and again: {more:?}"
    );

    db.execute_unprepared("ALTER TABLE sync_event_away RENAME TO sync_event")
        .await
        .unwrap();
    let mut replayed = Vec::new();
    for _ in &logged {
        replayed.push(next_event(&mut ws).await["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(replayed, logged, "the whole log once it can be read");
}

#[tokio::test]
async fn a_profile_that_cannot_be_read_holds_events_back_until_it_can() {
    use sea_orm::ConnectionTrait;
    let (app, _sim) = synced().await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    let mut ws = subscribe(&app, "Administrator", json!({ "after": newest })).await;
    // A profile changes, so the subscriber's is read again before its next event; the
    // database cannot answer that read.
    let created = app
        .gql_ok(
            "mutation { createProfile(input: { name: \"Night Desk\", permissions: {} }) { id } }",
            json!({}),
        )
        .await;
    app.gql_ok(
        "mutation($id: ID!) { updateProfilePermissions(id: $id, permissions: { notes: false }) { id } }",
        json!({ "id": created["createProfile"]["id"] }),
    )
    .await;
    let other = crate::replicas::second_process(&app).await;
    let db = app.store.connection();
    db.execute_unprepared("ALTER TABLE profile RENAME TO profile_away")
        .await
        .unwrap();
    other.integrations.pause().await.unwrap();
    let failed = ws.recv().await;
    assert_eq!(
        failed["payload"]["errors"][0]["extensions"]["code"], "INTERNAL",
        "{failed}"
    );
    let more = tokio::time::timeout(std::time::Duration::from_millis(1_500), ws.recv()).await;
    assert!(more.is_err(), "said once, and nothing delivered: {more:?}");

    db.execute_unprepared("ALTER TABLE profile_away RENAME TO profile")
        .await
        .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), next_event(&mut ws))
        .await
        .expect("the stream goes on once the profile can be read");
    assert_eq!(event["status"], "PAUSED");
}

#[tokio::test]
async fn rounds_that_start_failing_and_get_through_again_are_status_events() {
    let (app, sim) = synced().await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    let mut ws = subscribe(
        &app,
        "Administrator",
        json!({ "after": newest, "kinds": ["STATUS"] }),
    )
    .await;
    let mut agent = subscribe(
        &app,
        "Agent",
        json!({ "after": newest, "kinds": ["STATUS"] }),
    )
    .await;
    let used = sim.api_usage();
    sim.set_daily_api_limit(used);
    assert!(app.engine.run_once().await.is_err());
    let failing = next_event(&mut ws).await;
    assert_eq!(failing["status"], "ACTIVE", "{failing}");
    assert!(
        failing["statusReason"]
            .as_str()
            .is_some_and(|r| r.contains("last sync round stopped")),
        "{failing}"
    );
    let told = next_event(&mut agent).await;
    assert_eq!(
        (&told["id"], &told["status"], &told["statusReason"]),
        (&failing["id"], &json!("ACTIVE"), &Value::Null),
        "an agent sees the status, and why is the administrators' to read: {told}"
    );

    sim.set_daily_api_limit(1_000_000);
    app.sync_now().await;
    let through = next_event(&mut ws).await;
    assert_eq!(through["status"], "ACTIVE", "{through}");
    assert!(through["statusReason"].is_null(), "{through}");
}

/// Stamps the logged events with these ids as a clock `days` behind would have.
async fn stamp_days_ago(app: &TestApp, ids: &[String], days: i64) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let ids: Vec<i64> = ids.iter().map(|id| id.parse().unwrap()).collect();
    entity::sync_event::Entity::update_many()
        .col_expr(
            entity::sync_event::Column::At,
            Expr::value(chrono::Utc::now() - chrono::Duration::days(days)),
        )
        .filter(entity::sync_event::Column::Id.is_in(ids))
        .exec(app.store.connection())
        .await
        .unwrap();
}

async fn refusal(ws: &mut Ws) -> (String, String) {
    let refused = ws.recv().await;
    assert_eq!(refused["payload"]["data"], Value::Null, "{refused}");
    let error = &refused["payload"]["errors"][0];
    (
        error["extensions"]["code"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn pruning_takes_the_oldest_events_only_whatever_the_clocks_stamped() {
    let (app, _sim) = synced().await;
    let logged = logged_ids(&app).await;
    assert!(logged.len() >= 3, "{logged:?}");
    // The second event was stamped by a replica whose clock was far behind: by its stamp it
    // is past the seven days kept, while the first is not. Neither goes.
    stamp_days_ago(&app, &logged[1..2], 8).await;
    app.sync_now().await;
    let kept = logged_ids(&app).await;
    assert_eq!(
        kept[..logged.len()],
        logged[..],
        "nothing inside the window goes"
    );

    // Once the first is past the window too, both go, and the rest stay.
    stamp_days_ago(&app, &logged[..1], 8).await;
    app.sync_now().await;
    let kept = logged_ids(&app).await;
    assert_eq!(kept[..logged.len() - 2], logged[2..]);
    // Resuming after the last event pruned misses nothing.
    let mut ws = subscribe(&app, "Administrator", json!({ "after": logged[1] })).await;
    for id in &kept {
        assert_eq!(next_event(&mut ws).await["id"].as_str(), Some(id.as_str()));
    }
    // From the start, it gets all the log keeps.
    let mut ws = subscribe(&app, "Administrator", json!({ "after": "0" })).await;
    assert_eq!(
        next_event(&mut ws).await["id"].as_str(),
        Some(kept[0].as_str())
    );
    // Resuming from before it would miss what was pruned: the subscriber is told, and an
    // administrator where else to read what happened.
    let mut ws = subscribe(&app, "Administrator", json!({ "after": logged[0] })).await;
    let (code, message) = refusal(&mut ws).await;
    assert_eq!(code, "FELL_BEHIND", "{message}");
    assert!(
        message.contains(&format!("after {} through {}", logged[0], logged[1]))
            && message.contains("syncHistory"),
        "{message}"
    );
    // An agent is not sent to queries it may not make.
    let mut ws = subscribe(&app, "Agent", json!({ "after": logged[0] })).await;
    let (code, message) = refusal(&mut ws).await;
    assert_eq!(code, "FELL_BEHIND", "{message}");
    assert!(
        !message.contains("syncHistory") && message.contains("without afterId"),
        "{message}"
    );
}

#[tokio::test]
async fn a_subscriber_following_some_kinds_resumes_past_others_pruned_without_falling_behind() {
    let (app, _sim) = synced().await;
    // A status widget's last event: the sync paused and resumed, then a week of batches.
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    let statuses = logged_ids(&app).await;
    let seen = statuses.last().unwrap().clone();
    let contact = app.create_contact(json!({ "lastName": "Later" })).await;
    assert!(contact["id"].is_string());
    app.sync_now().await;
    let logged = logged_ids(&app).await;
    let batches = &logged[statuses.len()..];
    assert!(!batches.is_empty(), "the push was logged: {logged:?}");
    // All of it ages out of the log.
    stamp_days_ago(&app, &logged, 8).await;
    app.store
        .prune_history(chrono::Utc::now() - chrono::Duration::days(7))
        .await
        .unwrap();
    assert!(logged_ids(&app).await.is_empty());

    // Following status changes only, it missed none: it resumes, and is given the next.
    let mut ws = subscribe_with(
        &app,
        "Administrator",
        "subscription($after: ID) { syncEvents(afterId: $after, kinds: [STATUS]) { id status } }",
        json!({ "after": seen }),
    )
    .await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let next = ws.recv().await;
    assert_eq!(
        next["payload"]["data"]["syncEvents"]["status"], "PAUSED",
        "{next}"
    );
    // Following history too, it missed the batches, and is told.
    let mut ws = subscribe_with(
        &app,
        "Administrator",
        "subscription($after: ID) { syncEvents(afterId: $after, kinds: [STATUS, HISTORY]) { id } }",
        json!({ "after": seen }),
    )
    .await;
    let (code, message) = refusal(&mut ws).await;
    assert_eq!(code, "FELL_BEHIND", "{message}");
    assert!(
        message.contains(&format!("after {seen} through {}", batches.last().unwrap())),
        "{message}"
    );
}

#[tokio::test]
async fn a_subscriber_reading_the_log_past_events_pruned_meanwhile_is_told() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let (app, _sim) = synced().await;
    let newest = logged_ids(&app).await.last().unwrap().clone();
    let mut ws = subscribe(&app, "Administrator", json!({ "after": newest })).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let paused = next_event(&mut ws).await;
    assert_eq!(paused["status"], "PAUSED");
    // While the subscriber waits, three hundred events are logged that nobody hears of (a
    // replica that died before its notices) and age out of the log together with all before
    // them, in one transaction, so that no reader of the log ever sees them; pruned by a
    // replica of the build before, which marks how far the log went, not each kind.
    let txn = app.store.connection().begin().await.unwrap();
    txn.execute_unprepared(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) \
         INSERT INTO sync_event (at, kind, module, payload) \
         SELECT e.at, e.kind, e.module, e.payload FROM sync_event e, n \
         WHERE e.id = (SELECT max(id) FROM sync_event) ORDER BY n.i",
    )
    .await
    .unwrap();
    let through: i64 = txn
        .query_one_raw(sea_orm::Statement::from_string(
            txn.get_database_backend(),
            "SELECT max(id) AS through FROM sync_event",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "through")
        .unwrap();
    txn.execute_unprepared(&format!("DELETE FROM sync_event WHERE id <= {through}"))
        .await
        .unwrap();
    txn.execute_unprepared(&format!("UPDATE sync_event_pruned SET through = {through}"))
        .await
        .unwrap();
    txn.commit().await.unwrap();
    // The next event shows the subscriber a gap; the log no longer holds what was in it.
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    let (code, message) = refusal(&mut ws).await;
    assert_eq!(code, "FELL_BEHIND", "{message}");
    assert!(
        message.contains(&format!(
            "after {} through {through}",
            paused["id"].as_str().unwrap()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_log_pruned_empty_still_refuses_an_after_id_it_never_gave_out() {
    let (app, _sim) = synced().await;
    let logged = logged_ids(&app).await;
    stamp_days_ago(&app, &logged, 8).await;
    app.store
        .prune_history(chrono::Utc::now() - chrono::Duration::days(7))
        .await
        .unwrap();
    assert!(logged_ids(&app).await.is_empty());
    let newest: i64 = logged.last().unwrap().parse().unwrap();
    let mut ws = subscribe(
        &app,
        "Administrator",
        json!({ "after": (newest + 1000).to_string() }),
    )
    .await;
    let (code, message) = refusal(&mut ws).await;
    assert_eq!(code, "BAD_USER_INPUT", "{message}");
    assert!(message.contains(&newest.to_string()), "{message}");
    // Resuming after the newest event, which has gone, is resuming at the head.
    let mut ws = subscribe(
        &app,
        "Administrator",
        json!({ "after": newest.to_string() }),
    )
    .await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    assert_eq!(next_event(&mut ws).await["status"], "PAUSED");
}

/// A new profile, "Night Desk", following the log live over a socket, which has just told
/// it the sync paused.
async fn night_desk_following(app: &TestApp) -> Ws {
    app.gql_ok(
        "mutation { createProfile(input: { name: \"Night Desk\", permissions: {} }) { id } }",
        json!({}),
    )
    .await;
    let newest = logged_ids(app).await.pop().unwrap();
    let mut ws = subscribe(app, "Night Desk", json!({ "after": newest })).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    assert_eq!(next_event(&mut ws).await["status"], "PAUSED");
    ws
}

#[tokio::test]
async fn the_pruned_mark_is_the_last_event_pruned_not_the_id_before_the_first_kept() {
    let (app, _sim) = synced().await;
    let logged = logged_ids(&app).await;
    assert!(logged.len() >= 3, "{logged:?}");
    // The second id was drawn by a transaction that rolled back: it never was an event.
    let missing: i64 = logged[1].parse().unwrap();
    use sea_orm::EntityTrait;
    entity::sync_event::Entity::delete_by_id(missing)
        .exec(app.store.connection())
        .await
        .unwrap();
    stamp_days_ago(&app, &logged[..1], 8).await;
    app.store
        .prune_history(chrono::Utc::now() - chrono::Duration::days(7))
        .await
        .unwrap();
    assert_eq!(logged_ids(&app).await[..], logged[2..]);

    // A subscriber that saw the first event missed only the ones kept.
    let mut ws = subscribe(&app, "Administrator", json!({ "after": logged[0] })).await;
    let first = ws.recv().await;
    assert_eq!(first["type"], "next", "{first}");
    assert_eq!(
        first["payload"]["data"]["syncEvents"]["id"].as_str(),
        Some(logged[2].as_str()),
        "{first}"
    );
}

/// A contact linked to its Salesforce twin, which has a role in one opportunity; its desk id.
async fn watched_contact(app: &TestApp, sim: &SimHandle) -> (Value, String, String) {
    let account = sim
        .insert("Account", json!({ "Name": "Watched Corp" }))
        .unwrap();
    let contact = sim
        .insert(
            "Contact",
            json!({ "LastName": "Watched", "AccountId": account }),
        )
        .unwrap();
    add_opportunity(sim, &account, &contact, "Renewal");
    app.sync_now().await;
    let found = app
        .gql_ok(
            "{ contacts(filter: { name: \"Watched\" }) { nodes { id } } }",
            json!({}),
        )
        .await;
    (
        found["contacts"]["nodes"][0]["id"].clone(),
        account,
        contact,
    )
}

fn add_opportunity(sim: &SimHandle, account: &str, contact: &str, name: &str) {
    let opportunity = sim
        .insert(
            "Opportunity",
            json!({ "Name": name, "StageName": "Prospecting", "CloseDate": "2026-12-31", "AccountId": account }),
        )
        .unwrap();
    sim.insert(
        "OpportunityContactRole",
        json!({ "OpportunityId": opportunity, "ContactId": contact, "Role": "Decision Maker" }),
    )
    .unwrap();
}

/// Refuses the next push of the contact: one failure event.
async fn fail_a_push(app: &TestApp, sim: &SimHandle, desk_id: &Value, title: &str) {
    app.gql_ok(
        "mutation($id: ID!, $title: String!) { updateContact(id: $id, patch: { title: $title }) { id } }",
        json!({ "id": desk_id, "title": title }),
    )
    .await;
    sim.reject_next_records(&[("STRING_TOO_LONG", "Title: data value too large")]);
    app.sync_now().await;
}

#[tokio::test]
async fn each_event_reads_salesforce_afresh_with_the_permissions_as_they_are_then() {
    let (app, sim) = started(|s| s.graphql.panel_cache_secs = 0).await;
    let (desk_id, account, contact) = watched_contact(&app, &sim).await;
    let profile = app
        .gql_ok(
            "mutation { createProfile(input: { name: \"Night Desk\", permissions: {} }) { id } }",
            json!({}),
        )
        .await["createProfile"]["id"]
        .clone();
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Night Desk").await;
    ws.send(json!({ "id": "s", "type": "subscribe", "payload": { "query":
        "subscription { syncEvents(kinds: [FAILURE]) { failure { reason contact { salesforce { opportunities { name } } } } } }" } }))
        .await;
    let opportunities = |message: &Value| {
        message["payload"]["data"]["syncEvents"]["failure"]["contact"]["salesforce"]
            ["opportunities"]
            .clone()
    };

    fail_a_push(&app, &sim, &desk_id, "First").await;
    let first = ws.recv().await;
    assert_eq!(
        opportunities(&first),
        json!([{ "name": "Renewal" }]),
        "{first}"
    );

    // A later event shows what Salesforce holds by then, not what the first one read.
    add_opportunity(&sim, &account, &contact, "Expansion");
    fail_a_push(&app, &sim, &desk_id, "Second").await;
    let second = ws.recv().await;
    let listed = opportunities(&second);
    let names: Vec<&str> = listed
        .as_array()
        .map(|o| o.iter().filter_map(|o| o["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names.len(), 2, "{second}");
    assert!(names.contains(&"Expansion"), "{second}");

    // Opportunities taken from the profile: the open stream's next event withholds them.
    app.gql_ok(
        "mutation($id: ID!) { updateProfilePermissions(id: $id, permissions: { opportunities: false }) { id } }",
        json!({ "id": profile }),
    )
    .await;
    fail_a_push(&app, &sim, &desk_id, "Third").await;
    let third = ws.recv().await;
    assert_eq!(third["type"], "next", "{third}");
    assert_eq!(
        third["payload"]["data"]["syncEvents"]["failure"]["reason"], "STRING_TOO_LONG",
        "{third}"
    );
    assert_eq!(opportunities(&third), Value::Null, "{third}");
    assert_eq!(
        third["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{third}"
    );
}

#[tokio::test]
async fn a_subscription_selects_one_root_field() {
    let (app, _sim) = synced().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Administrator").await;
    for (query, why) in [
        (
            "subscription { a: syncEvents { id } b: syncEvents(kinds: [STATUS]) { kind } }",
            "selects 2",
        ),
        // Not resolved at all when spread from a fragment: refused, not ended at once.
        (
            "subscription { ...Events } fragment Events on Subscription { syncEvents { id } }",
            "not through a fragment",
        ),
    ] {
        ws.send(json!({ "id": "s", "type": "subscribe", "payload": { "query": query } }))
            .await;
        let refused = ws.recv().await;
        assert_eq!(refused["type"], "error", "{refused}");
        let error = &refused["payload"][0];
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains(why)),
            "{refused}"
        );
    }
    ws.send(
        json!({ "id": "one", "type": "subscribe", "payload": { "query":
        "subscription { syncEvents { id kind } }" } }),
    )
    .await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let event = ws.recv().await;
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["payload"]["data"]["syncEvents"]["kind"], "STATUS");
}
