//! The failure log: every reason a record can fail for, what the entry says, and how it is
//! retried — by itself with backoff for transient reasons, by a person for the rest.

use salesforce_sim::SimHandle;
use serde_json::{Value, json};
use tandem::config::Settings;

use crate::helpers::{TestApp, codes};
use crate::integration::started;

const FAILURES: &str = "query($r: FailureReason) { syncFailures(reason: $r) { nodes { id reason direction module deskId salesforceId message attempts nextAttemptAt resolvedAt } } }";
const RETRY: &str =
    "mutation($id: ID!) { retrySyncFailure(id: $id) { reason attempts nextAttemptAt resolvedAt } }";

/// A connected desk and org after the first sync, with the given retry settings.
async fn synced(adjust: impl FnOnce(&mut Settings)) -> (TestApp, SimHandle) {
    let (app, sim) = started(adjust).await;
    app.sync_now().await;
    (app, sim)
}

async fn open_failures(app: &TestApp, reason: Option<&str>) -> Vec<Value> {
    app.gql_ok(FAILURES, json!({ "r": reason })).await["syncFailures"]["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

async fn retry(app: &TestApp, id: &Value) -> Value {
    app.gql_ok(RETRY, json!({ "id": id })).await["retrySyncFailure"].clone()
}

/// A Salesforce contact with this name and title, synced: its Salesforce and desk ids.
async fn synced_contact(
    app: &TestApp,
    sim: &SimHandle,
    name: &str,
    title: &str,
) -> (String, Value) {
    let sf_id = sim
        .insert("Contact", json!({ "LastName": name, "Title": title }))
        .unwrap();
    app.sync_now().await;
    let desk = app
        .gql_ok(
            "{ contacts(first: 100) { nodes { id lastName } } }",
            json!({}),
        )
        .await;
    let desk_id = desk["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["lastName"] == name)
        .unwrap()["id"]
        .clone();
    (sf_id, desk_id)
}

/// Contacts in the org with this last name.
fn in_org(sim: &SimHandle, last_name: &str) -> usize {
    contacts_in_org(sim, last_name).len()
}

/// The org's contacts with this last name.
fn contacts_in_org(sim: &SimHandle, last_name: &str) -> Vec<Value> {
    sim.records("Contact")
        .into_iter()
        .filter(|c| c["LastName"] == last_name)
        .collect()
}

#[tokio::test]
async fn each_salesforce_refusal_is_logged_under_its_reason_and_waits_for_a_retry() {
    let (app, sim) = synced(|_| {}).await;
    let cases = [
        (
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName]",
            "MANDATORY_FIELD_MISSING",
        ),
        (
            "MISSING_ARGUMENT",
            "Id not specified in an update call",
            "MISSING_PARAMETER",
        ),
        (
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "Unable to create/update fields: Title. Please check the security settings of this field.",
            "INVALID_PARAMETER",
        ),
        (
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "Phone: value not of required type: (555)",
            "TYPE_MISMATCH",
        ),
        (
            "DUPLICATE_VALUE",
            "duplicate value found: Badge_Number__c duplicates value on record with id: 003000000000001AAA",
            "DUPLICATE_VALUE",
        ),
        (
            "STRING_TOO_LONG",
            "Title: data value too large (max length=128)",
            "STRING_TOO_LONG",
        ),
    ];
    for (code, message, reason) in cases {
        let contact = app
            .create_contact(json!({ "lastName": code, "email": format!("{}@example.com", code.to_lowercase()) }))
            .await;
        sim.reject_next_records(&[(code, message)]);
        let report = app.sync_now().await;
        assert_eq!(report.pushed.failed, 1, "{code}");

        let open = open_failures(&app, Some(reason)).await;
        assert_eq!(open.len(), 1, "{code}: {open:?}");
        let failure = &open[0];
        assert_eq!(failure["direction"], "DESK_TO_SALESFORCE");
        assert_eq!(failure["module"], "CONTACTS");
        assert_eq!(failure["deskId"], contact["id"]);
        assert_eq!(
            failure["salesforceId"],
            Value::Null,
            "a create has no Salesforce record yet"
        );
        assert_eq!(failure["attempts"], 1);
        assert_eq!(
            failure["nextAttemptAt"],
            Value::Null,
            "{code} is permanent: it waits for a person"
        );
        let text = failure["message"].as_str().unwrap();
        assert!(
            text.contains(code) && text.contains(message),
            "the entry says what Salesforce said: {text}"
        );
        assert_eq!(in_org(&sim, code), 0, "{code}: nothing was created");
        assert_eq!(app.store.outbox_len().await.unwrap(), 0);

        app.sync_now().await;
        assert_eq!(in_org(&sim, code), 0, "{code}: not retried by itself");
        assert_eq!(open_failures(&app, Some(reason)).await[0]["attempts"], 1);

        let retried = retry(&app, &failure["id"]).await;
        assert!(retried["resolvedAt"].is_string(), "{code}: {retried}");
        assert_eq!(in_org(&sim, code), 1, "{code}: created once on retry");
    }
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());

    // A refused update names the Salesforce record it was sent to.
    let linked = app
        .gql_ok(
            "{ contacts(filter: { email: \"string_too_long@example.com\" }) { nodes { id } } }",
            json!({}),
        )
        .await["contacts"]["nodes"][0]["id"]
        .clone();
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Far too long\" }) { id } }",
        json!({ "id": linked }),
    )
    .await;
    sim.reject_next_records(&[("STRING_TOO_LONG", "Title: data value too large")]);
    app.sync_now().await;
    let open = open_failures(&app, Some("STRING_TOO_LONG")).await;
    let twin = sim
        .records("Contact")
        .into_iter()
        .find(|c| c["LastName"] == "STRING_TOO_LONG")
        .unwrap()["Id"]
        .clone();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["deskId"], linked);
    assert_eq!(open[0]["salesforceId"], twin);

    // The failure log names the records as a person looks them up.
    let named = app
        .gql_ok(
            "{ syncFailures(reason: STRING_TOO_LONG) { nodes { contact { id lastName } account { id } viewInSalesforceUrl } } }",
            json!({}),
        )
        .await["syncFailures"]["nodes"][0]
        .clone();
    assert_eq!(
        named,
        json!({
            "contact": { "id": linked, "lastName": "STRING_TOO_LONG" },
            "account": null,
            "viewInSalesforceUrl": format!("{}/{}", sim.base_url(), twin.as_str().unwrap()),
        })
    );
}

#[tokio::test]
async fn a_desk_record_salesforce_refused_goes_again_once_the_mappings_change() {
    let (app, sim) = synced(|_| {}).await;
    app.create_contact(json!({ "lastName": "Refused", "title": "Head of Things" }))
        .await;
    sim.reject_next_records(&[(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Title: pick one of the titles the org uses",
    )]);
    app.sync_now().await;
    assert_eq!(open_failures(&app, Some("REJECTED")).await.len(), 1);
    // The admin stops sending the title: the refused record is tried again without it.
    let maps = app
        .gql_ok(
            "{ fieldMappings(module: CONTACTS) { deskField salesforceField } }",
            json!({}),
        )
        .await["fieldMappings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["deskField"] != "title")
        .cloned()
        .collect::<Vec<_>>();
    app.gql_ok(
        "mutation($maps: [FieldMappingInput!]!) { updateFieldMappings(module: CONTACTS, mappings: $maps) { deskField } }",
        json!({ "maps": maps }),
    )
    .await;
    app.sync_now().await;
    assert!(open_failures(&app, None).await.is_empty());
    let twin = sim
        .records("Contact")
        .into_iter()
        .find(|c| c["LastName"] == "Refused")
        .expect("sent again, and made");
    assert_eq!(twin["Title"], Value::Null);
}

#[tokio::test]
async fn transient_refusals_are_retried_by_the_sync_itself() {
    let (app, sim) = synced(|s| s.sync.retry_backoff_secs = 0).await;
    app.create_contact(json!({ "lastName": "Locked" })).await;

    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    app.sync_now().await;
    let open = open_failures(&app, Some("UPSTREAM_UNAVAILABLE")).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0]["nextAttemptAt"].is_string(), "{open:?}");
    assert_eq!(
        app.store.outbox_len().await.unwrap(),
        1,
        "the change stays queued"
    );

    sim.reject_next_records(&[("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")]);
    app.sync_now().await;
    let open = open_failures(&app, None).await;
    assert_eq!(open.len(), 1, "one entry per record: {open:?}");
    assert_eq!(open[0]["reason"], "RATE_LIMITED");
    assert_eq!(open[0]["attempts"], 2);

    let mut live = app.store.subscribe_sync();
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
    assert_eq!(in_org(&sim, "Locked"), 1, "created exactly once");
    // Dashboards following syncEvents see the failure close as they saw it open.
    let closed = std::iter::from_fn(|| live.try_recv().ok())
        .find_map(|event| match event.kind {
            tandem::store::SyncEventKind::Failure(failure) => Some(failure),
            _ => None,
        })
        .expect("the resolution is announced");
    assert_eq!(closed.id.to_string(), open[0]["id"].as_str().unwrap());
    assert!(closed.resolved_at.is_some(), "{closed:?}");
    let logged = app.store.sync_events_after(0, 1000).await.unwrap();
    assert_eq!(
        logged
            .iter()
            .filter(|e| matches!(&e.kind, tandem::store::SyncEventKind::Failure(f) if f.resolved_at.is_some()))
            .count(),
        1,
        "and the log keeps it for subscribers replaying it"
    );
    let all = app
        .gql_ok(
            "{ syncFailures(includeResolved: true) { nodes { resolvedAt attempts } } }",
            json!({}),
        )
        .await;
    assert!(all["syncFailures"]["nodes"][0]["resolvedAt"].is_string());
}

#[tokio::test]
async fn a_desk_edit_to_a_record_waiting_to_be_retried_goes_out_at_once() {
    let (app, sim) = synced(|s| s.sync.retry_backoff_secs = 3600).await;
    let contact = app.create_contact(json!({ "lastName": "Busy" })).await;
    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await.len(), 1);

    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Fixed\" }) { id } }",
        json!({ "id": contact["id"] }),
    )
    .await;
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
    let sent: Vec<Value> = contacts_in_org(&sim, "Busy");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["Title"], "Fixed");
}

/// Runs a round whose push of desk contact `id` (the first record it sends) meets a locked
/// row, the contact's title edited to "Fixed" while the push is on its way.
async fn edited_while_its_push_meets_a_locked_row(app: &TestApp, sim: &SimHandle, id: &Value) {
    let locked = (
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    );
    refused_with_this_meanwhile(app, sim, locked, async {
        app.gql_ok(
            "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Fixed\" }) { id } }",
            json!({ "id": id }),
        )
        .await;
    })
    .await;
}

/// Runs a round whose update of the first record it sends Salesforce refuses (`refusal`:
/// code and message), `meanwhile` done while the call is on its way: the round's report.
async fn refused_with_this_meanwhile(
    app: &TestApp,
    sim: &SimHandle,
    refusal: (&'static str, &str),
    meanwhile: impl std::future::Future<Output = ()>,
) -> tandem::sync::RoundReport {
    sim.reject_next_records(&[refusal]);
    let push = sim.hold_next("PATCH", "/composite/sobjects");
    let round = app.round_in_background();
    push.arrived().await;
    meanwhile.await;
    push.release();
    round.await.unwrap().unwrap()
}

#[tokio::test]
async fn a_desk_edit_made_while_its_failing_push_is_on_its_way_goes_out_at_once() {
    let (app, sim) = synced(|s| s.sync.retry_backoff_secs = 3600).await;
    let contact = app.create_contact(json!({ "lastName": "Busy" })).await;
    edited_while_its_push_meets_a_locked_row(&app, &sim, &contact["id"]).await;
    assert_eq!(open_failures(&app, None).await.len(), 1);

    // Not an hour later: the edit came after what was sent.
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
    let sent: Vec<Value> = contacts_in_org(&sim, "Busy");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["Title"], "Fixed");
}

#[tokio::test]
async fn a_contact_binned_while_its_refused_edit_is_on_its_way_leaves_no_failure_open() {
    let (app, sim) = synced(|_| {}).await;
    let (_, desk_id) = synced_contact(&app, &sim, "Franklin", "Chemist").await;
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"X-ray pioneer\" }) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    let too_long = (
        "STRING_TOO_LONG",
        "Title: data value too large (max length=8)",
    );
    let report = refused_with_this_meanwhile(&app, &sim, too_long, async {
        app.gql_ok(
            "mutation($id: ID!) { deleteContact(id: $id) { id } }",
            json!({ "id": desk_id }),
        )
        .await;
    })
    .await;
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    assert_eq!(
        open_failures(&app, None).await,
        Vec::<Value>::new(),
        "a contact in the recycle bin is not sent, and waits for nobody"
    );
}

/// A desk contact "Busy" whose push met a locked row, its next attempt an hour away: the
/// app, its org and the failure.
async fn busy_contact_waiting_an_hour() -> (TestApp, SimHandle, Value) {
    let (app, sim) = synced(|s| s.sync.retry_backoff_secs = 3600).await;
    app.create_contact(json!({ "lastName": "Busy" })).await;
    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    app.sync_now().await;
    let failure = open_failures(&app, None).await[0].clone();
    (app, sim, failure)
}

#[tokio::test]
async fn a_retry_asked_for_while_a_round_runs_is_left_to_that_round_and_answered_at_once() {
    let (app, sim, failure) = busy_contact_waiting_an_hour().await;

    // A round stuck on Salesforce, as a first sync of an hour is busy.
    let read = sim.hold_next("GET", "query");
    let round = app.round_in_background();
    read.arrived().await;
    let queued = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        retry(&app, &failure["id"]),
    )
    .await
    .expect("the retry answers without waiting for the round");
    assert_eq!(queued["resolvedAt"], Value::Null, "{queued}");
    let due: chrono::DateTime<chrono::Utc> =
        queued["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    assert!(
        due <= chrono::Utc::now(),
        "due at once, not in an hour: {due}"
    );
    assert_eq!(in_org(&sim, "Busy"), 0);

    read.release();
    round.await.unwrap().unwrap();
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
    assert_eq!(in_org(&sim, "Busy"), 1);
}

#[tokio::test]
async fn retries_asked_for_while_another_process_runs_a_round_leave_no_session_waiting_for_it() {
    let (app, sim, failure) = busy_contact_waiting_an_hour().await;

    // Another process's round holds the database's round lock.
    let elsewhere = app.store.lock_rounds().await.unwrap();
    // More retries at once than the pool has connections: each gives up on the round
    // without leaving a connection waiting for it.
    let retries = (0..20).map(|_| retry(&app, &failure["id"]));
    for queued in futures_util::future::join_all(retries).await {
        assert_eq!(queued["resolvedAt"], Value::Null, "{queued}");
    }
    if let Some(waiting) = app.sessions_waiting_for_a_lock().await {
        assert_eq!(waiting, 0, "none left waiting for the round lock");
    }
    let started = std::time::Instant::now();
    app.create_contact(json!({ "lastName": "Meanwhile" })).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the desk still writes: {:?}",
        started.elapsed()
    );
    app.let_go_and_find_the_round_lock_free(elsewhere).await;
    app.sync_now().await;
    assert_eq!(in_org(&sim, "Busy"), 1);
}

#[tokio::test]
async fn transient_retries_back_off_and_stop_at_the_bound() {
    let (app, sim) = synced(|s| {
        s.sync.retry_backoff_secs = 3600;
        s.sync.retry_max_attempts = 2;
    })
    .await;
    app.create_contact(json!({ "lastName": "Busy" })).await;
    let lock = (
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    );

    sim.reject_next_records(&[lock]);
    app.sync_now().await;
    let failure = open_failures(&app, None).await[0].clone();
    let next: chrono::DateTime<chrono::Utc> =
        failure["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    let wait = next - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::minutes(59) && wait <= chrono::Duration::minutes(60),
        "the first wait is the configured backoff: {wait}"
    );

    let log = sim.requests().len();
    app.sync_now().await;
    assert!(
        sim.requests()[log..]
            .iter()
            .all(|r| !r.path.contains("composite")),
        "nothing is sent before the next attempt is due"
    );
    assert_eq!(app.store.outbox_len().await.unwrap(), 1);

    sim.reject_next_records(&[lock]);
    let exhausted = retry(&app, &failure["id"]).await;
    assert_eq!(exhausted["attempts"], 2);
    assert_eq!(
        exhausted["nextAttemptAt"],
        Value::Null,
        "attempts used up: the record waits for a person"
    );
    assert_eq!(exhausted["resolvedAt"], Value::Null);
    assert_eq!(app.store.outbox_len().await.unwrap(), 0);

    // Retried by a person once they ran out, and refused again for a passing reason, it has
    // its automatic retries afresh.
    sim.reject_next_records(&[lock]);
    let afresh = retry(&app, &failure["id"]).await;
    assert_eq!(afresh["attempts"], 1, "{afresh}");
    assert!(afresh["nextAttemptAt"].is_string(), "{afresh}");

    app.sync_now().await;
    assert_eq!(in_org(&sim, "Busy"), 0);
    let fixed = retry(&app, &failure["id"]).await;
    assert!(fixed["resolvedAt"].is_string(), "{fixed}");
    assert_eq!(in_org(&sim, "Busy"), 1);
}

#[tokio::test]
async fn a_retry_cut_short_by_salesforce_leaves_a_passing_failure_retrying_by_itself() {
    let (app, sim) = synced(|s| s.sync.retry_backoff_secs = 3600).await;
    let (_, desk_id) = synced_contact(&app, &sim, "Busy", "Clerk").await;
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Head clerk\" }) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    app.sync_now().await;
    let failure = open_failures(&app, None).await[0].clone();
    assert!(failure["nextAttemptAt"].is_string(), "{failure}");

    // Retried by a person, it meets Salesforce down as its twin is read.
    let read = sim.hold_next("GET", "/query");
    let (answer, ()) = tokio::join!(app.gql(RETRY, json!({ "id": failure["id"] })), async {
        read.arrived().await;
        sim.fail_next(&[503; 10]);
        read.release();
    });
    assert_eq!(codes(&answer), ["UPSTREAM_UNAVAILABLE"], "{answer}");
    let after = open_failures(&app, None).await[0].clone();
    assert!(
        after["nextAttemptAt"].is_string(),
        "still retried by itself: {after}"
    );
}

#[tokio::test]
async fn a_salesforce_twin_the_desk_refused_is_met_by_a_push_not_made_again() {
    let (app, sim) = synced(|_| {}).await;
    app.map_field("CONTACTS", "mailingPostalCode", "Department")
        .await;
    // A Salesforce contact the desk cannot take in stays unlinked...
    sim.insert(
        "Contact",
        json!({ "LastName": "Verbose", "Email": "same@example.com", "Department": "Customer Success and Renewals EMEA" }),
    )
    .unwrap();
    app.sync_now().await;
    assert_eq!(open_failures(&app, Some("STRING_TOO_LONG")).await.len(), 1);

    // ...and a desk contact of its email meets it when pushed, not made a second time.
    app.create_contact(json!({ "lastName": "Verbose", "email": "same@example.com" }))
        .await;
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 1, "no second Salesforce contact");
}

#[tokio::test]
async fn a_desk_duplicate_of_a_linked_contact_is_not_sent_as_a_second_one() {
    let (app, sim) = synced(|_| {}).await;
    let original = app
        .create_contact(json!({ "lastName": "Original", "email": "same@example.com" }))
        .await;
    app.sync_now().await;
    let copy = app
        .create_contact(json!({ "lastName": "Copy", "email": "Same@Example.com " }))
        .await;
    app.sync_now().await;

    let open = open_failures(&app, Some("CRM_ID_ALREADY_MAPPED")).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["deskId"], copy["id"]);
    let text = open[0]["message"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "already linked to desk Contact {}",
            original["id"].as_str().unwrap()
        )),
        "{text}"
    );
    assert_eq!(sim.count("Contact"), 1, "no second Salesforce contact");

    let again = retry(&app, &open[0]["id"]).await;
    assert_eq!(again["resolvedAt"], Value::Null, "still a duplicate");
    assert_eq!(again["attempts"], 2);

    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { email: \"copy@example.com\" }) { id } }",
        json!({ "id": copy["id"] }),
    )
    .await;
    let fixed = retry(&app, &open[0]["id"]).await;
    assert!(fixed["resolvedAt"].is_string(), "{fixed}");
    assert_eq!(sim.count("Contact"), 2);
}

#[tokio::test]
async fn a_salesforce_value_too_long_for_the_desk_is_logged_and_retried_once_fixed() {
    let (app, sim) = synced(|_| {}).await;
    app.map_field("CONTACTS", "mailingPostalCode", "Department")
        .await;
    let id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Verbose", "Department": "Customer Success and Renewals EMEA" }),
        )
        .unwrap();
    app.sync_now().await;

    let open = open_failures(&app, Some("STRING_TOO_LONG")).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["direction"], "SALESFORCE_TO_DESK");
    let counted = app
        .gql_ok(
            "{ syncFailures(first: 0, reason: STRING_TOO_LONG) { totalCount } other: syncFailures(reason: DUPLICATE_VALUE) { totalCount } syncHistory(first: 0, direction: SALESFORCE_TO_DESK) { totalCount } listed: syncHistory(first: 100, direction: SALESFORCE_TO_DESK) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(counted["syncFailures"]["totalCount"], 1, "{counted}");
    assert_eq!(counted["other"]["totalCount"], 0, "{counted}");
    let listed = counted["listed"]["nodes"].as_array().unwrap().len();
    assert!(listed >= 1, "{counted}");
    assert_eq!(counted["syncHistory"]["totalCount"], listed, "{counted}");
    assert_eq!(open[0]["salesforceId"], id.as_str());
    assert_eq!(open[0]["deskId"], Value::Null);
    let text = open[0]["message"].as_str().unwrap();
    assert!(
        text.contains("mailingPostalCode") && text.contains("20"),
        "names the desk field and its limit: {text}"
    );

    sim.update("Contact", &id, json!({ "Department": "CS EMEA" }))
        .unwrap();
    let fixed = retry(&app, &open[0]["id"]).await;
    assert!(fixed["resolvedAt"].is_string(), "{fixed}");
    let desk = app
        .gql_ok(
            "{ contacts(filter: { name: \"Verbose\" }) { nodes { mailingPostalCode } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        desk["contacts"]["nodes"],
        json!([{ "mailingPostalCode": "CS EMEA" }])
    );
}

#[tokio::test]
async fn a_pull_failure_logged_again_once_its_record_met_a_desk_twin_names_that_twin() {
    let (app, sim) = synced(|_| {}).await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    app.map_field("CONTACTS", "mailingPostalCode", "Department")
        .await;
    let id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Verbose", "Email": "verbose@example.com",
                    "Department": "Customer Success and Renewals EMEA" }),
        )
        .unwrap();
    app.sync_now().await;
    let open = open_failures(&app, Some("STRING_TOO_LONG")).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        open[0]["deskId"],
        Value::Null,
        "nothing in the desk to name"
    );

    // An agent makes the contact in the desk; then it changes in Salesforce, and the pull
    // meets the desk contact by its email, taking in all it can.
    let desk = app
        .create_contact(json!({ "lastName": "Verbose", "email": "verbose@example.com" }))
        .await;
    sim.advance_clock(5);
    sim.update("Contact", &id, json!({ "Title": "Renewals" }))
        .unwrap();
    app.sync_now().await;
    let open = open_failures(&app, Some("STRING_TOO_LONG")).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["deskId"], desk["id"], "{open:?}");
    assert!(
        open[0]["message"]
            .as_str()
            .unwrap()
            .contains("is linked to desk record"),
        "{open:?}"
    );
}

/// A synced account, "Partial Co" (phone 111, revenue 5000), that Salesforce then saved with
/// a revenue the desk cannot hold: read in part, the rest of the save taken and the revenue
/// waiting in the failure log. The app, the org, the account's Salesforce id and the failure.
async fn read_in_part(one_way: bool) -> (TestApp, SimHandle, String, Value) {
    let (app, sim) = synced(|_| {}).await;
    if one_way {
        app.set_sync_type("SALESFORCE_TO_DESK").await;
    }
    let sf = sim
        .insert(
            "Account",
            json!({ "Name": "Partial Co", "Phone": "111", "AnnualRevenue": 5000 }),
        )
        .unwrap();
    app.sync_now().await;
    sim.update("Account", &sf, json!({ "AnnualRevenue": -1 }))
        .unwrap();
    app.sync_now().await;
    let open = open_failures(&app, None).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0]["deskId"].is_string(), "{open:?}");
    (app, sim, sf, open[0].clone())
}

/// An agent's edit of the desk account `failure` names, made after Salesforce's save.
async fn edit_read_in_part(app: &TestApp, failure: &Value, patch: Value) {
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    app.gql_ok(
        "mutation($id: ID!, $p: AccountPatchInput!) { updateAccount(id: $id, patch: $p) { id } }",
        json!({ "id": failure["deskId"], "p": patch }),
    )
    .await;
}

async fn desk_phone(app: &TestApp, failure: &Value) -> Value {
    app.gql_ok(
        "query($id: ID!) { account(id: $id) { phone } }",
        json!({ "id": failure["deskId"] }),
    )
    .await["account"]["phone"]
        .clone()
}

#[tokio::test]
async fn one_way_a_retried_partial_read_is_no_salesforce_update_over_a_desk_edit() {
    let (app, _sim, _, failure) = read_in_part(true).await;
    // The revenue the failure names included; one way, the edit stays in the desk.
    edit_read_in_part(
        &app,
        &failure,
        json!({ "phone": "222", "annualRevenue": 200 }),
    )
    .await;
    // Retried, the same Salesforce version is read again: no Salesforce update to win with.
    retry(&app, &failure["id"]).await;
    assert_eq!(
        desk_phone(&app, &failure).await,
        "222",
        "the desk's edit stays"
    );
}

#[tokio::test]
async fn a_retried_partial_read_with_a_newer_desk_edit_sends_the_edit_not_the_value_kept() {
    let (app, sim, sf, failure) = read_in_part(false).await;
    edit_read_in_part(&app, &failure, json!({ "phone": "222" })).await;
    // Read again before the edit goes out: the same version, the revenue still the desk's
    // own and Salesforce's its.
    retry(&app, &failure["id"]).await;
    app.sync_now().await;
    let account = sim.get("Account", &sf).unwrap();
    assert_eq!(account["Phone"], "222", "the desk's edit goes out");
    assert_eq!(
        account["AnnualRevenue"].as_f64(),
        Some(-1.0),
        "not the revenue the desk kept for its own"
    );
    assert_eq!(
        open_failures(&app, None).await.len(),
        1,
        "and the revenue still waits in the log"
    );
}

#[tokio::test]
async fn a_desk_edit_of_the_value_a_partial_read_left_it_goes_out_after_a_retry() {
    let (app, sim, sf, failure) = read_in_part(false).await;
    // Told the revenue waits, an agent sets it in the desk; the same version is read again
    // before the edit goes out.
    edit_read_in_part(&app, &failure, json!({ "annualRevenue": 6000 })).await;
    retry(&app, &failure["id"]).await;
    app.sync_now().await;
    assert_eq!(
        sim.get("Account", &sf).unwrap()["AnnualRevenue"].as_f64(),
        Some(6000.0),
        "the desk's edit goes out"
    );
}

#[tokio::test]
async fn a_second_save_in_the_second_of_a_partial_read_is_a_salesforce_update() {
    let (app, sim, sf, failure) = read_in_part(false).await;
    // Saved again within the same second: the stamp is the same, the version is not.
    sim.update_within_the_same_second("Account", &sf, json!({ "Phone": null }))
        .unwrap();
    retry(&app, &failure["id"]).await;
    assert_eq!(
        desk_phone(&app, &failure).await,
        Value::Null,
        "Salesforce's clearing is taken, not filled again from the desk"
    );
}

#[tokio::test]
async fn a_refused_desk_edit_is_not_undone_by_an_older_salesforce_record_read_again() {
    let (app, sim) = synced(|_| {}).await;
    let (sf_id, desk_id) = synced_contact(&app, &sim, "Franklin", "Chemist").await;
    sim.update("Contact", &sf_id, json!({ "Title": "Crystallographer" }))
        .unwrap();
    // Salesforce stamps whole seconds: the desk edit comes after Salesforce's.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"X-ray pioneer\" }) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    sim.reject_next_records(&[(
        "STRING_TOO_LONG",
        "Title: data value too large (max length=8)",
    )]);
    app.sync_now().await;
    assert_eq!(open_failures(&app, Some("STRING_TOO_LONG")).await.len(), 1);

    // The next poll reads Salesforce's (older) edit again, within its overlap window.
    app.sync_now().await;
    let contact = app
        .gql_ok(
            "query($id: ID!) { contact(id: $id) { title } }",
            json!({ "id": desk_id }),
        )
        .await;
    assert_eq!(
        contact["contact"]["title"], "X-ray pioneer",
        "the newer desk edit stands while it waits for a person"
    );
    assert_eq!(
        open_failures(&app, Some("STRING_TOO_LONG")).await.len(),
        1,
        "and its failure stays open"
    );
}

/// A desk edit of this contact's title, which Salesforce refuses as too long: its failure.
async fn title_edit_refused(app: &TestApp, sim: &SimHandle, desk_id: &Value) -> Vec<Value> {
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Fission pioneer\" }) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    sim.reject_next_records(&[(
        "STRING_TOO_LONG",
        "Title: data value too large (max length=8)",
    )]);
    app.sync_now().await;
    let refused = open_failures(app, Some("STRING_TOO_LONG")).await;
    assert_eq!(refused.len(), 1);
    refused
}

#[tokio::test]
async fn a_retried_desk_edit_does_not_overwrite_a_newer_salesforce_edit_not_read_yet() {
    let (app, sim) = synced(|_| {}).await;
    let (sf_id, desk_id) = synced_contact(&app, &sim, "Meitner", "Physicist").await;
    let refused = title_edit_refused(&app, &sim, &desk_id).await;

    // Later, someone changes the title in Salesforce; before any round reads it, the desk's
    // edit is retried.
    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "Professor" }))
        .unwrap();
    let retried = retry(&app, &refused[0]["id"]).await;
    assert!(retried["resolvedAt"].is_string(), "{retried}");
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Professor",
        "the newer Salesforce edit stands"
    );
    let contact = app
        .gql_ok(
            "query($id: ID!) { contact(id: $id) { title } }",
            json!({ "id": desk_id }),
        )
        .await;
    assert_eq!(
        contact["contact"]["title"], "Professor",
        "and reaches the desk"
    );
}

#[tokio::test]
async fn a_retried_desk_edit_waits_for_a_newer_salesforce_version_the_desk_cannot_take_yet() {
    let (app, sim) = synced(|_| {}).await;
    let (sf_id, desk_id) = synced_contact(&app, &sim, "Meitner", "Physicist").await;
    let refused = title_edit_refused(&app, &sim, &desk_id).await;

    // Later, Salesforce moves the contact to an account the desk has not read yet and gives
    // it a new title; before any round, the desk's edit is retried.
    sim.advance_clock(5);
    let institute = sim
        .insert("Account", json!({ "Name": "Kaiser Wilhelm Institute" }))
        .unwrap();
    sim.update(
        "Contact",
        &sf_id,
        json!({ "Title": "Professor", "AccountId": institute }),
    )
    .unwrap();
    let retried = retry(&app, &refused[0]["id"]).await;
    assert!(retried["resolvedAt"].is_null(), "it waits: {retried}");
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Professor",
        "the newer Salesforce edit is not written over"
    );
    assert!(
        !app.engine.has_changes_to_send().await,
        "and starts no round of its own"
    );
    // Retried again, it still waits; the contact read again as its twin is left to its own
    // failure's retry, not logged again.
    retry(&app, &refused[0]["id"]).await;
    let waiting = app
        .gql_ok(
            "{ syncFailures(reason: ACCOUNT_NOT_SYNCED) { nodes { attempts } } }",
            json!({}),
        )
        .await;
    assert_eq!(waiting["syncFailures"]["nodes"], json!([{ "attempts": 1 }]));

    // The next round brings the account, then the contact with its newer title.
    app.sync_now().await;
    let contact = app
        .gql_ok(
            "query($id: ID!) { contact(id: $id) { title account { name } } }",
            json!({ "id": desk_id }),
        )
        .await;
    assert_eq!(
        contact["contact"],
        json!({ "title": "Professor", "account": { "name": "Kaiser Wilhelm Institute" } })
    );
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Professor");
}

#[tokio::test]
async fn a_retry_sends_only_what_it_retries_not_desk_edits_whose_twins_it_did_not_read() {
    let (app, sim) = synced(|_| {}).await;
    let (_, refused_id) = synced_contact(&app, &sim, "Meitner", "Physicist").await;
    let (sf_id, desk_id) = synced_contact(&app, &sim, "Noether", "Mathematician").await;
    let refused = title_edit_refused(&app, &sim, &refused_id).await;

    // Another contact is edited in the desk, then in Salesforce; before any round reads
    // that, the first one's failure is retried.
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Algebraist\" }) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "Professor" }))
        .unwrap();
    let retried = retry(&app, &refused[0]["id"]).await;
    assert!(retried["resolvedAt"].is_string(), "{retried}");
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Professor",
        "the newer Salesforce edit of the other contact stands"
    );
    app.sync_now().await;
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Professor");
    let contact = app
        .gql_ok(
            "query($id: ID!) { contact(id: $id) { title } }",
            json!({ "id": desk_id }),
        )
        .await;
    assert_eq!(
        contact["contact"]["title"], "Professor",
        "and reaches the desk with the next round"
    );
}

#[tokio::test]
async fn a_contact_whose_account_salesforce_refused_waits_and_then_arrives_with_it() {
    let (app, sim) = synced(|s| s.sync.retry_backoff_secs = 0).await;
    let account = app.create_account("Locked Accounts Ltd").await;
    app.create_contact(json!({ "lastName": "Follower", "accountId": account["id"] }))
        .await;

    // Accounts go first: the refusal meets the account.
    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    app.sync_now().await;
    assert_eq!(in_org(&sim, "Follower"), 0, "not sent without its account");
    let waiting = open_failures(&app, Some("ACCOUNT_NOT_SYNCED")).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["direction"], "DESK_TO_SALESFORCE");
    assert!(waiting[0]["nextAttemptAt"].is_string(), "{waiting:?}");

    app.sync_now().await;
    let sf_account = sim
        .records("Account")
        .into_iter()
        .find(|a| a["Name"] == "Locked Accounts Ltd")
        .expect("the account arrived");
    let follower = sim
        .records("Contact")
        .into_iter()
        .find(|c| c["LastName"] == "Follower")
        .expect("the contact arrived");
    assert_eq!(follower["AccountId"], sf_account["Id"]);
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_record_the_first_export_could_not_send_for_a_while_is_sent_later() {
    let app = crate::helpers::spawn_app_with(|s| s.sync.retry_backoff_secs = 0).await;
    // Made before Salesforce was connected: no desk change is queued for it.
    app.create_contact(json!({ "lastName": "Early Bird" }))
        .await;
    let sim = salesforce_sim::start(salesforce_sim::SimConfig::default()).await;
    let body = crate::integration::connect(&app, &sim, "tandem").await;
    assert!(body.get("errors").is_none(), "{body}");
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;

    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    // The export's attempt fails; queued again, it is due at once and goes in the same
    // round's push.
    let report = app.sync_now().await;
    assert_eq!(report.pushed.failed, 1, "{report:?}");
    assert_eq!(in_org(&sim, "Early Bird"), 1, "retried by the sync itself");
    let settled = app
        .gql_ok(
            "{ syncFailures(includeResolved: true) { nodes { reason resolvedAt } } }",
            json!({}),
        )
        .await;
    let settled = &settled["syncFailures"]["nodes"];
    assert_eq!(settled.as_array().unwrap().len(), 1, "{settled}");
    assert_eq!(settled[0]["reason"], "UPSTREAM_UNAVAILABLE");
    assert!(settled[0]["resolvedAt"].is_string(), "{settled}");

    app.sync_now().await;
    assert_eq!(in_org(&sim, "Early Bird"), 1, "sent once");
}

#[tokio::test]
async fn a_refused_record_moved_to_the_bin_leaves_nothing_open_and_goes_out_once_restored() {
    let (app, sim) = synced(|_| {}).await;
    let contact = app.create_contact(json!({ "lastName": "Withdrawn" })).await;
    sim.reject_next_records(&[(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Contacts need a phone number",
    )]);
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await.len(), 1);

    app.gql_ok(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": contact["id"] }),
    )
    .await;
    assert_eq!(
        open_failures(&app, None).await,
        Vec::<Value>::new(),
        "nothing is left to send"
    );
    app.sync_now().await;
    assert_eq!(in_org(&sim, "Withdrawn"), 0);

    app.gql_ok(
        "mutation($id: ID!) { restoreContact(id: $id) { id } }",
        json!({ "id": contact["id"] }),
    )
    .await;
    app.sync_now().await;
    assert_eq!(in_org(&sim, "Withdrawn"), 1, "restored, it is sent again");
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_record_restored_while_its_failed_push_waits_to_be_tried_again_goes_out_at_once() {
    use sea_orm::ConnectionTrait;
    let (app, sim) = synced(|_| {}).await;
    let contact = app.create_contact(json!({ "lastName": "Returning" })).await;
    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    app.sync_now().await;
    let open = open_failures(&app, Some("UPSTREAM_UNAVAILABLE")).await;
    assert_eq!(open.len(), 1, "tried again in a while: {open:?}");
    // Binned by an agent while that push was with Salesforce: its failure was logged after
    // the delete had settled the record's pushes.
    let binning = crate::helpers::other_process_writing(&app).await;
    binning
        .execute_unprepared(&format!(
            "UPDATE contact SET deleted_at = CURRENT_TIMESTAMP WHERE id = {}",
            contact["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    binning.commit().await.unwrap();

    app.gql_ok(
        "mutation($id: ID!) { restoreContact(id: $id) { id } }",
        json!({ "id": contact["id"] }),
    )
    .await;
    app.sync_now().await;
    assert_eq!(
        in_org(&sim, "Returning"),
        1,
        "restored, it goes out at once"
    );
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_value_a_restricted_picklist_lacks_waits_with_the_values_it_takes_and_goes_once_changed()
{
    let (app, sim) = synced(|_| {}).await;
    // The org's admin restricts Industry to its values.
    sim.restrict_picklist("Account", "Industry").unwrap();
    let account = app
        .gql_ok(
            "mutation { createAccount(input: { name: \"Widget Works\", industry: \"Widgets\" }) { id } }",
            json!({}),
        )
        .await["createAccount"]
        .clone();
    app.sync_now().await;
    let open = open_failures(&app, None).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["reason"], "INVALID_PARAMETER");
    assert!(
        open[0]["nextAttemptAt"].is_null(),
        "it waits for a person: {open:?}"
    );
    let message = open[0]["message"].as_str().unwrap();
    assert!(
        message.contains("bad value for restricted picklist field: Widgets")
            && message.contains(
                "the desk's industry holds a value the restricted picklist Industry does not have"
            )
            && message.contains("it takes Agriculture, Banking, Education"),
        "{message}"
    );

    app.gql_ok(
        "mutation($id: ID!) { updateAccount(id: $id, patch: { industry: \"Technology\" }) { id } }",
        json!({ "id": account["id"] }),
    )
    .await;
    app.sync_now().await;
    let made: Vec<_> = sim
        .records("Account")
        .into_iter()
        .filter(|a| a["Name"] == "Widget Works")
        .collect();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["Industry"], "Technology");
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_refused_salesforce_record_read_again_unchanged_is_not_logged_again() {
    let (app, sim) = synced(|_| {}).await;
    let id = sim
        .insert(
            "Account",
            json!({ "Name": "Too Many Staff", "NumberOfEmployees": -5 }),
        )
        .unwrap();
    app.sync_now().await;
    let first = open_failures(&app, None).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["salesforceId"], id.as_str());

    // Quiet rounds read the record again (it is inside the cursor's overlap window), the
    // same version as failed: the failure stands as it was, and the history stays quiet.
    for _ in 0..3 {
        let report = app.sync_now().await;
        assert_eq!(report.pulled.failed, 0, "{report:?}");
    }
    let open = open_failures(&app, None).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["attempts"], 1, "{open:?}");
    let history = app
        .gql_ok(
            "{ syncHistory(first: 50) { nodes { module direction failed } } }",
            json!({}),
        )
        .await;
    let failed: i64 = history["syncHistory"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["failed"].as_i64().unwrap())
        .sum();
    assert_eq!(failed, 1, "{history}");

    // A new version of the record is read and judged again.
    sim.advance_clock(5);
    sim.update("Account", &id, json!({ "NumberOfEmployees": 5_000 }))
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pulled.added, 1, "{report:?}");
    assert!(open_failures(&app, None).await.is_empty());
}

#[tokio::test]
async fn a_refused_salesforce_edit_undone_in_salesforce_leaves_nothing_open() {
    let (app, sim) = synced(|_| {}).await;
    let id = sim
        .insert(
            "Account",
            json!({ "Name": "Steady Staff", "NumberOfEmployees": 50 }),
        )
        .unwrap();
    app.sync_now().await;
    let refuse_then_undo = || async {
        sim.advance_clock(5);
        sim.update("Account", &id, json!({ "NumberOfEmployees": -5 }))
            .unwrap();
        app.sync_now().await;
        let open = open_failures(&app, None).await;
        assert_eq!(open.len(), 1, "{open:?}");
        sim.advance_clock(5);
        sim.update("Account", &id, json!({ "NumberOfEmployees": 50 }))
            .unwrap();
        open[0]["id"].clone()
    };

    // The next round reads the record back as last agreed.
    refuse_then_undo().await;
    app.sync_now().await;
    assert!(open_failures(&app, None).await.is_empty());

    // And so does a retry, before any round.
    let failure = refuse_then_undo().await;
    let retried = retry(&app, &failure).await;
    assert!(retried["resolvedAt"].is_string(), "{retried}");
    assert!(open_failures(&app, None).await.is_empty());
}

#[tokio::test]
async fn a_desk_change_cannot_be_retried_while_desk_changes_stay_local() {
    let (app, sim) = synced(|_| {}).await;
    app.create_contact(json!({ "lastName": "Refused", "email": "refused@example.com" }))
        .await;
    sim.reject_next_records(&[(
        "STRING_TOO_LONG",
        "Title: data value too large (max length=128)",
    )]);
    app.sync_now().await;
    let open = open_failures(&app, Some("STRING_TOO_LONG")).await;
    assert_eq!(open.len(), 1, "{open:?}");
    app.set_sync_type("SALESFORCE_TO_DESK").await;

    let refused = app.gql(RETRY, json!({ "id": open[0]["id"] })).await;
    assert_eq!(crate::helpers::codes(&refused), ["CONFLICT"], "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("TWO_WAY"),
        "{refused}"
    );
    assert_eq!(in_org(&sim, "Refused"), 0);

    app.set_sync_type("TWO_WAY").await;
    let retried = retry(&app, &open[0]["id"]).await;
    assert!(retried["resolvedAt"].is_string(), "{retried}");
    assert_eq!(in_org(&sim, "Refused"), 1);
}

#[tokio::test]
async fn an_employee_count_the_desk_cannot_hold_is_refused_naming_the_field_however_large() {
    let (app, sim) = synced(|_| {}).await;
    // Salesforce's NumberOfEmployees holds the desk's eight digits: a larger count comes from
    // a wider field mapped in its place (here AnnualRevenue, a whole-number currency).
    let mut maps = app.field_mappings("ACCOUNTS").await;
    maps.retain(|m| m["deskField"] != "employees" && m["deskField"] != "annualRevenue");
    maps.push(json!({ "deskField": "employees", "salesforceField": "AnnualRevenue" }));
    app.gql_ok(
        "mutation($maps: [FieldMappingInput!]!) { updateFieldMappings(module: ACCOUNTS, mappings: $maps) { deskField } }",
        json!({ "maps": maps }),
    )
    .await;
    for (name, count) in [
        ("Many Staff", 500_000_000_i64),
        ("Countless Staff", 3_000_000_000),
    ] {
        sim.insert("Account", json!({ "Name": name, "AnnualRevenue": count }))
            .unwrap();
    }
    app.sync_now().await;
    let mut failures = open_failures(&app, None).await;
    failures.sort_by_key(|f| f["message"].as_str().map(str::len));
    assert_eq!(failures.len(), 2, "{failures:?}");
    for (failure, count) in failures.iter().zip(["500000000", "3000000000"]) {
        assert_eq!(failure["reason"], "INVALID_PARAMETER", "{failure}");
        let message = failure["message"].as_str().unwrap();
        assert!(
            message.contains("employees") && message.contains(&format!("(got {count})")),
            "{message}"
        );
    }
}

#[tokio::test]
async fn failures_resolved_longer_ago_than_the_history_is_kept_are_pruned_open_ones_stay() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let (app, sim) = synced(|_| {}).await;
    let refusal = ("DUPLICATE_VALUE", "duplicate value found: Email");
    let mut desk_ids = Vec::new();
    for name in ["Kept", "Fixed"] {
        desk_ids.push(app.create_contact(json!({ "lastName": name })).await["id"].clone());
        sim.reject_next_records(&[refusal]);
        assert_eq!(app.sync_now().await.pushed.failed, 1);
    }
    let open = open_failures(&app, Some("DUPLICATE_VALUE")).await;
    assert_eq!(open.len(), 2, "{open:?}");
    let fixed = open.iter().find(|f| f["deskId"] == desk_ids[1]).unwrap();
    assert!(retry(&app, &fixed["id"]).await["resolvedAt"].is_string());

    // A week and a day later, by the log's stamps.
    let long_ago = chrono::Utc::now() - chrono::Duration::days(8);
    for column in [
        entity::sync_failure::Column::At,
        entity::sync_failure::Column::ResolvedAt,
    ] {
        entity::sync_failure::Entity::update_many()
            .col_expr(column, Expr::value(long_ago))
            .filter(column.is_not_null())
            .exec(app.store.connection())
            .await
            .unwrap();
    }
    app.sync_now().await;

    let all = app
        .gql_ok(
            "{ syncFailures(includeResolved: true) { nodes { deskId resolvedAt } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        all["syncFailures"]["nodes"],
        json!([{ "deskId": desk_ids[0], "resolvedAt": null }]),
        "the resolved failure went with the history; the open one waits however old"
    );
}

/// A desk account Salesforce refused (a duplicate name) and a contact "Patient" of it,
/// waiting for it after one round: the app and its org.
async fn waiting_for_a_refused_account(adjust: impl FnOnce(&mut Settings)) -> (TestApp, SimHandle) {
    let (app, sim) = synced(adjust).await;
    let account = app.create_account("Refused Ltd").await;
    app.create_contact(json!({ "lastName": "Patient", "accountId": account["id"] }))
        .await;
    sim.reject_next_records(&[("DUPLICATE_VALUE", "duplicate value found: Name")]);
    app.sync_now().await;
    (app, sim)
}

/// One contact waits for its account, and its automatic attempts are used up.
async fn waits_for_its_account_with_attempts_used_up(app: &TestApp) {
    let waiting = open_failures(app, Some("ACCOUNT_NOT_SYNCED")).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(
        waiting[0]["nextAttemptAt"],
        Value::Null,
        "its automatic attempts are used up"
    );
}

#[tokio::test]
async fn a_contact_that_waited_for_its_account_past_its_retries_goes_out_once_the_account_does() {
    let (app, sim) = waiting_for_a_refused_account(|s| s.sync.retry_max_attempts = 1).await;
    waits_for_its_account_with_attempts_used_up(&app).await;
    app.sync_now().await;
    assert_eq!(in_org(&sim, "Patient"), 0);

    // A person sees to the account; the contact waiting for it follows.
    let refused = open_failures(&app, Some("DUPLICATE_VALUE")).await;
    assert!(retry(&app, &refused[0]["id"]).await["resolvedAt"].is_string());
    app.sync_now().await;
    assert_eq!(in_org(&sim, "Patient"), 1);
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_contact_that_waited_for_its_account_goes_out_once_the_account_is_matched_in_salesforce()
{
    let (app, sim) = waiting_for_a_refused_account(|s| s.sync.retry_max_attempts = 1).await;
    waits_for_its_account_with_attempts_used_up(&app).await;

    // Someone makes the account in Salesforce: the pull meets the desk one by name and
    // links them, and the contact waiting for it follows, with no retry asked for.
    let twin = sim
        .insert("Account", json!({ "Name": "Refused Ltd" }))
        .unwrap();
    app.sync_now().await;
    app.sync_now().await;
    let patient = contacts_in_org(&sim, "Patient");
    assert_eq!(patient.len(), 1, "{patient:?}");
    assert_eq!(patient[0]["AccountId"], twin.as_str());
    assert_eq!(
        open_failures(&app, Some("ACCOUNT_NOT_SYNCED")).await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn a_contact_that_waited_for_its_account_past_its_retries_goes_out_once_the_account_is_purged()
 {
    let (app, sim) = waiting_for_a_refused_account(|s| s.sync.retry_max_attempts = 1).await;
    waits_for_its_account_with_attempts_used_up(&app).await;

    // As the failure says: the account goes, and the contact goes out without it.
    let account = app
        .gql_ok(
            "{ accounts(filter: { name: \"Refused Ltd\" }) { nodes { id } } }",
            json!({}),
        )
        .await["accounts"]["nodes"][0]["id"]
        .clone();
    for mutation in [
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        "mutation($id: ID!) { purgeAccount(id: $id) }",
    ] {
        app.gql_ok(mutation, json!({ "id": account })).await;
    }
    app.sync_now().await;
    let patient = contacts_in_org(&sim, "Patient");
    assert_eq!(patient.len(), 1, "{patient:?}");
    assert_eq!(patient[0]["AccountId"], Value::Null);
    assert_eq!(
        open_failures(&app, Some("ACCOUNT_NOT_SYNCED")).await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn a_woken_contact_that_meets_a_locked_row_is_retried_again_automatically() {
    let (app, sim) = waiting_for_a_refused_account(|s| {
        s.sync.retry_max_attempts = 2;
        s.sync.retry_backoff_secs = 0;
    })
    .await;
    app.sync_now().await;
    waits_for_its_account_with_attempts_used_up(&app).await;

    let refused = open_failures(&app, Some("DUPLICATE_VALUE")).await;
    assert!(retry(&app, &refused[0]["id"]).await["resolvedAt"].is_string());
    // Its first send after the wake meets a locked row: that passes, and is retried as any
    // first refusal would be, not taken for its attempts being used up again.
    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    app.sync_now().await;
    let open = open_failures(&app, None).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["reason"], "UPSTREAM_UNAVAILABLE", "{open:?}");
    assert_eq!(open[0]["attempts"], 1, "{open:?}");
    assert!(open[0]["nextAttemptAt"].is_string(), "{open:?}");
    app.sync_now().await;
    assert_eq!(in_org(&sim, "Patient"), 1);
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_salesforce_contact_that_waited_for_its_account_past_its_retries_comes_once_the_account_does()
 {
    let (app, sim) = synced(|s| s.sync.retry_max_attempts = 1).await;
    app.map_field("ACCOUNTS", "billingPostalCode", "Site").await;
    let account = sim
        .insert(
            "Account",
            json!({ "Name": "Sprawling Ltd", "Site": "Headquarters, Building 7 and the East Campus" }),
        )
        .unwrap();
    sim.insert(
        "Contact",
        json!({ "LastName": "Patient", "AccountId": account }),
    )
    .unwrap();
    app.sync_now().await;
    assert_eq!(open_failures(&app, Some("STRING_TOO_LONG")).await.len(), 1);
    waits_for_its_account_with_attempts_used_up(&app).await;
    let patient = "{ contacts(filter: { name: \"Patient\" }) { nodes { account { name } } } }";
    app.sync_now().await;
    assert_eq!(
        app.gql_ok(patient, json!({})).await["contacts"]["nodes"],
        json!([])
    );

    // A person shortens the site in Salesforce: the account comes, and the contact waiting
    // for it follows, with no retry asked for.
    sim.update("Account", &account, json!({ "Site": "HQ" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        app.gql_ok(patient, json!({})).await["contacts"]["nodes"],
        json!([{ "account": { "name": "Sprawling Ltd" } }])
    );
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_record_a_person_was_asked_to_see_to_is_retried_automatically_when_it_next_meets_a_passing_refusal()
 {
    let (app, sim) = synced(|s| {
        s.sync.retry_backoff_secs = 0;
        s.sync.retry_max_attempts = 2;
    })
    .await;
    let contact = app.create_contact(json!({ "lastName": "Ruled" })).await;
    let rule = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Title is required");
    for n in 0..3 {
        sim.reject_next_records(&[rule]);
        app.gql_ok(
            "mutation($id: ID!, $t: String!) { updateContact(id: $id, patch: { title: $t }) { id } }",
            json!({ "id": contact["id"], "t": format!("Try {n}") }),
        )
        .await;
        app.sync_now().await;
    }
    assert_eq!(open_failures(&app, None).await[0]["attempts"], 3);

    // Fixed at last, the edit then meets a locked row: that passes, and is retried.
    sim.reject_next_records(&[(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    )]);
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Engineer\" }) { id } }",
        json!({ "id": contact["id"] }),
    )
    .await;
    app.sync_now().await;
    let open = open_failures(&app, None).await;
    assert_eq!(open[0]["reason"], "UPSTREAM_UNAVAILABLE", "{open:?}");
    assert_eq!(open[0]["attempts"], 1, "{open:?}");
    assert!(open[0]["nextAttemptAt"].is_string(), "{open:?}");
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
    let sent: Vec<Value> = contacts_in_org(&sim, "Ruled");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["Title"], "Engineer");
}

#[tokio::test]
async fn a_desk_edit_that_beat_a_salesforce_one_and_was_then_undone_still_brings_both_sides_together()
 {
    // Past the overlap window at once: Salesforce's record is not read again by itself.
    let (app, sim) = synced(|s| s.sync.poll_overlap_secs = 0).await;
    let (sf_id, desk_id) = synced_contact(&app, &sim, "Curie", "Chemist").await;
    sim.update("Contact", &sf_id, json!({ "Phone": "+33 1 00 00 00 00" }))
        .unwrap();
    // Salesforce stamps whole seconds: the desk edit comes after Salesforce's, and wins.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let title = |title: &'static str| {
        app.gql_ok(
            "mutation($id: ID!, $t: String!) { updateContact(id: $id, patch: { title: $t }) { id } }",
            json!({ "id": desk_id, "t": title }),
        )
    };
    title("Physicist").await;
    sim.reject_next_records(&[("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Title is locked")]);
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await.len(), 1);

    // The agent undoes the edit: the desk holds what was last synced, Salesforce does not.
    title("Chemist").await;
    app.sync_now().await;
    app.sync_now().await;
    let desk = app
        .gql_ok(
            "query($id: ID!) { contact(id: $id) { title phone } }",
            json!({ "id": desk_id }),
        )
        .await;
    let in_org = sim.get("Contact", &sf_id).unwrap();
    // Undone, the desk edit is no edit: Salesforce's stands on both sides.
    assert_eq!(desk["contact"]["title"], "Chemist");
    assert_eq!(desk["contact"]["phone"], "+33 1 00 00 00 00", "{desk}");
    assert_eq!(in_org["Title"], "Chemist");
    assert_eq!(in_org["Phone"], "+33 1 00 00 00 00");
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn retrying_a_reason_counts_what_still_fails_for_another() {
    let (app, sim) = synced(|_| {}).await;
    let (_, desk_id) = synced_contact(&app, &sim, "Meitner", "Physicist").await;
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Fission pioneer\" }) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    sim.reject_next_records(&[("INVALID_EMAIL_ADDRESS", "Email: invalid email address")]);
    app.sync_now().await;
    assert_eq!(
        open_failures(&app, Some("INVALID_PARAMETER")).await.len(),
        1
    );

    // Fixed, then refused again for another reason.
    sim.reject_next_records(&[("DUPLICATE_VALUE", "duplicate value found: Title")]);
    let retried = app
        .gql_ok(
            "mutation { retrySyncFailures(reason: INVALID_PARAMETER) }",
            json!({}),
        )
        .await;
    assert_eq!(
        retried["retrySyncFailures"], 1,
        "still failing, as DUPLICATE_VALUE now: {retried}"
    );
    assert_eq!(open_failures(&app, Some("DUPLICATE_VALUE")).await.len(), 1);
}

#[tokio::test]
async fn retrying_more_failures_of_a_reason_than_a_statement_can_name_retries_them_all() {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let (app, _sim) = synced(|_| {}).await;
    if app.database_url.starts_with("postgres") {
        // Its limit is twice SQLite's (65,535), and the retry is made of the same parts.
        return;
    }
    // A validation rule that met a whole first sync: more records than SQLite binds values
    // in one statement (32,766). Desk records since purged: each retry settles at once.
    const REFUSED: i64 = 33_000;
    let now = chrono::Utc::now();
    for part in (1..=REFUSED).collect::<Vec<_>>().chunks(1000) {
        entity::sync_failure::Entity::insert_many(part.iter().map(|&desk_id| {
            entity::sync_failure::ActiveModel {
                at: Set(now),
                direction: Set("DESK_TO_SALESFORCE".into()),
                module: Set("CONTACTS".into()),
                desk_id: Set(Some(1_000_000 + desk_id)),
                reason: Set("INVALID_PARAMETER".into()),
                message: Set("Salesforce refused it: FIELD_CUSTOM_VALIDATION_EXCEPTION".into()),
                attempts: Set(1),
                ..Default::default()
            }
        }))
        .exec(app.store.connection())
        .await
        .unwrap();
    }
    let retried = app
        .gql_ok(
            "mutation { retrySyncFailures(reason: INVALID_PARAMETER) }",
            json!({}),
        )
        .await;
    assert_eq!(
        retried["retrySyncFailures"], 0,
        "none still failing: {retried}"
    );
    assert_eq!(
        open_failures(&app, Some("INVALID_PARAMETER")).await,
        Vec::<Value>::new()
    );
    assert_eq!(app.store.outbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn retrying_a_reason_nothing_failed_for_answers_none_left_whatever_the_sync_is_doing() {
    let (app, sim) = synced(|_| {}).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let mark = sim.request_count();
    let retried = app
        .gql_ok(
            "mutation { retrySyncFailures(reason: RATE_LIMITED) }",
            json!({}),
        )
        .await;
    assert_eq!(retried["retrySyncFailures"], 0, "{retried}");
    assert_eq!(sim.request_count(), mark, "nothing asked of Salesforce");
}

#[tokio::test]
async fn a_change_left_queued_at_the_head_of_the_queue_does_not_hold_back_the_rest_of_the_round() {
    let (app, sim) = synced(|s| s.sync.batch_size = 2).await;
    let first = app.create_contact(json!({ "lastName": "Busy" })).await;
    app.create_contact(json!({ "lastName": "Second" })).await;
    app.create_contact(json!({ "lastName": "Third" })).await;
    // The first page's first record meets a locked row, and is edited while it is on its
    // way: due again at once, its change stays at the head of the queue.
    edited_while_its_push_meets_a_locked_row(&app, &sim, &first["id"]).await;
    assert_eq!(
        contacts_in_org(&sim, "Third").len(),
        1,
        "the page after it went out in the same round"
    );
}

#[tokio::test]
async fn an_export_page_sent_again_after_its_call_was_refused_logs_no_failure_twice() {
    let (app, sim) = started(|s| s.sync.retry_backoff_secs = 3600).await;
    let refused = app.create_account("Refused Co").await;
    app.create_contact(json!({ "lastName": "Waiting", "accountId": refused["id"] }))
        .await;
    app.create_contact(json!({ "lastName": "Plain" })).await;
    // The account is refused for good, so its contact waits for it; the contacts' call then
    // meets an exhausted API budget, and nothing of it is made.
    sim.reject_next_records(&[("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Industry is required")]);
    let contacts = sim.hold_next("PATCH", "/composite/sobjects/Contact");
    let round = app.round_in_background();
    contacts.arrived().await;
    sim.set_daily_api_limit(sim.api_usage());
    contacts.release();
    assert!(round.await.unwrap().is_err());
    let waiting = open_failures(&app, Some("ACCOUNT_NOT_SYNCED")).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["attempts"], 1);
    assert!(contacts_in_org(&sim, "Plain").is_empty());

    // The budget back, the page goes out again: the contact still waiting is not logged
    // as failing once more.
    sim.set_daily_api_limit(1_000_000);
    app.sync_now().await;
    assert_eq!(contacts_in_org(&sim, "Plain").len(), 1);
    let waiting = open_failures(&app, Some("ACCOUNT_NOT_SYNCED")).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["attempts"], 1, "{waiting:?}");
}

#[tokio::test]
async fn a_refusal_left_in_doubt_by_a_spent_api_budget_is_logged_as_rate_limited_and_retried() {
    let (app, sim) = synced(|s| s.sync.retry_backoff_secs = 0).await;
    let (sf_id, desk_id) = synced_contact(&app, &sim, "Doubtful", "Clerk").await;
    // Salesforce answers that the update met a deleted record, naming none: the sync asks
    // which, and the budget is spent before it can.
    sim.reject_next_records(&[("ENTITY_IS_DELETED", "entity is deleted")]);
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Engineer\" }) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    let answered = sim.hold_answer_next("PATCH", "composite/sobjects");
    tokio::join!(app.sync_now(), async {
        answered.arrived().await;
        sim.set_daily_api_limit(0);
        answered.release();
    });
    let open = open_failures(&app, None).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["reason"], "RATE_LIMITED", "{open:?}");
    assert!(open[0]["nextAttemptAt"].is_string(), "{open:?}");

    // Retried by hand while paused, it says how to go on.
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let refused = app.gql(RETRY, json!({ "id": open[0]["id"] })).await;
    assert_eq!(crate::helpers::codes(&refused), ["CONFLICT"], "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("resumeSync"), "{refused}");
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;

    sim.set_daily_api_limit(1_000_000);
    app.sync_now().await;
    assert_eq!(open_failures(&app, None).await, Vec::<Value>::new());
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Engineer");
}
