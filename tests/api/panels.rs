//! The Salesforce panels beside desk contacts and accounts, and the profile permissions that
//! guard them, whichever way a query reaches them.

use std::time::{Duration, Instant};

use salesforce_sim::{SimConfig, SimHandle};
use serde_json::{Value, json};

use crate::helpers::{TestApp, codes};
use crate::integration::connect;

/// A desk with one contact (and its account) linked to the org, and one contact that is not.
pub(crate) async fn linked() -> (TestApp, SimHandle, String) {
    linked_with(|_| {}).await
}

/// `linked`, with the app's settings changed by `adjust`.
pub(crate) async fn linked_with(
    adjust: impl FnOnce(&mut tandem::config::Settings),
) -> (TestApp, SimHandle, String) {
    let app = crate::helpers::spawn_app_with(adjust).await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let body = connect(&app, &sim, "tandem").await;
    assert!(body.get("errors").is_none(), "{body}");
    app.gql_ok(
        "mutation { setSyncType(syncType: SALESFORCE_TO_DESK) { syncType } startSync { firstSync } }",
        json!({}),
    )
    .await;
    let account = sim
        .insert(
            "Account",
            json!({ "Name": "Panel Corp", "Industry": "Energy" }),
        )
        .unwrap();
    let contact = sim
        .insert(
            "Contact",
            json!({ "LastName": "Paneled", "Email": "paneled@example.com", "AccountId": account }),
        )
        .unwrap();
    app.sync_now().await;
    app.create_contact(json!({ "lastName": "Unlinked" })).await;
    for profile in [
        ("Information Off", "information: false"),
        ("Accounts Only", "panel: ACCOUNTS"),
        ("Hidden", "visible: false"),
    ] {
        app.gql_ok(
            &format!("mutation {{ createProfile(input: {{ name: \"{}\", permissions: {{ {} }} }}) {{ id }} }}", profile.0, profile.1),
            json!({}),
        )
        .await;
    }
    (app, sim, contact)
}

pub(crate) const PANELS: &str = "{ contacts(first: 10) { nodes { lastName salesforce { id viewInSalesforceUrl fetchedAt stale fields account { id fields } } } } }";

pub(crate) fn by_name<'a>(data: &'a Value, last: &str) -> &'a Value {
    data["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["lastName"] == last)
        .unwrap()
}

/// The desk id of the contact with this last name.
async fn desk_id_of(app: &TestApp, last: &str) -> Value {
    let contacts = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { id lastName } } }",
            json!({}),
        )
        .await;
    by_name(&contacts, last)["id"].clone()
}

#[tokio::test]
async fn a_linked_contact_shows_its_salesforce_twin_and_an_unlinked_one_null() {
    let (app, sim, contact) = linked().await;
    let body = app.gql(PANELS, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let panel = &by_name(&body["data"], "Paneled")["salesforce"];
    assert_eq!(panel["id"], contact.as_str());
    assert_eq!(
        panel["viewInSalesforceUrl"],
        format!("{}/{contact}", sim.base_url().trim_end_matches('/'))
    );
    assert_eq!(panel["stale"], false);
    assert!(panel["fetchedAt"].is_string());
    assert_eq!(panel["fields"]["LastName"], "Paneled");
    assert_eq!(panel["fields"]["Email"], "paneled@example.com");
    assert_eq!(panel["account"]["fields"]["Name"], "Panel Corp");
    assert_eq!(panel["account"]["fields"]["Industry"], "Energy");
    assert_eq!(
        panel["fields"]["AccountId"], panel["account"]["id"],
        "the contact's account is its Salesforce account"
    );
    assert_eq!(
        by_name(&body["data"], "Unlinked")["salesforce"],
        Value::Null,
        "no link, no panel, no error"
    );
}

#[tokio::test]
async fn a_contacts_salesforce_account_is_the_one_salesforce_holds_it_in() {
    // One-way from Salesforce: a desk move of the contact stays in the desk.
    let (app, sim, _) = linked().await;
    sim.insert("Account", json!({ "Name": "Elsewhere Ltd" }))
        .unwrap();
    app.sync_now().await;
    let desk = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { id lastName } } accounts(first: 10) { nodes { id name } } }",
            json!({}),
        )
        .await;
    let elsewhere = desk["accounts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Elsewhere Ltd")
        .unwrap()["id"]
        .clone();
    app.gql_ok(
        "mutation($id: ID!, $a: ID!) { updateContact(id: $id, patch: { accountId: $a }) { id } }",
        json!({ "id": by_name(&desk, "Paneled")["id"], "a": elsewhere }),
    )
    .await;

    let body = app.gql_ok(PANELS, json!({})).await;
    let panel = &by_name(&body, "Paneled")["salesforce"];
    assert_eq!(panel["account"]["fields"]["Name"], "Panel Corp", "{panel}");
    assert_eq!(panel["fields"]["AccountId"], panel["account"]["id"]);
}

#[tokio::test]
async fn a_panel_shows_unmapped_and_custom_fields_and_keeps_up_with_salesforce() {
    let (app, sim, contact) = linked().await;
    let account = sim.get("Contact", &contact).unwrap()["AccountId"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.update("Contact", &contact, json!({ "Department": "Procurement" }))
        .unwrap();
    sim.update(
        "Account",
        &account,
        json!({ "Subscription_Type__c": "Premium" }),
    )
    .unwrap();
    app.sync_now().await;
    let body = app.gql_ok(PANELS, json!({})).await;
    let panel = &by_name(&body, "Paneled")["salesforce"];
    assert_eq!(
        panel["fields"]["Department"], "Procurement",
        "a standard field no mapping uses: {panel}"
    );
    assert_eq!(
        panel["account"]["fields"]["Subscription_Type__c"], "Premium",
        "a custom field: {panel}"
    );
    assert_eq!(panel["fields"]["Name"], "Paneled", "a read-only field");
    assert!(
        panel["fields"].get("SystemModstamp").is_none(),
        "the sync's bookkeeping is not the customer's profile"
    );

    // Salesforce is master here: a desk edit stays in the desk, and the panel says what
    // Salesforce holds.
    let id = desk_id_of(&app, "Paneled").await;
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Desk-only title\" }) { id } }",
        json!({ "id": id }),
    )
    .await;
    sim.update("Contact", &contact, json!({ "Title": "Buyer" }))
        .unwrap();
    app.sync_now().await;
    sim.update("Contact", &contact, json!({ "Department": "Finance" }))
        .unwrap();
    app.sync_now().await;
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Desk-only title\" }) { id } }",
        json!({ "id": id }),
    )
    .await;
    let body = app.gql_ok(PANELS, json!({})).await;
    let fields = &by_name(&body, "Paneled")["salesforce"]["fields"];
    assert_eq!(
        fields["Department"], "Finance",
        "an unmapped change alone is read: {fields}"
    );
    assert_eq!(
        fields["Title"], "Buyer",
        "one-way, Salesforce's value stands: {fields}"
    );
}

/// Makes every link look as if it was made before records were kept.
async fn forget_read_records(app: &TestApp) {
    use sea_orm::{EntityTrait, sea_query::Expr};
    entity::record_link::Entity::update_many()
        .col_expr(
            entity::record_link::Column::SalesforceFields,
            Expr::value(Option::<String>::None),
        )
        .exec(app.store.connection())
        .await
        .unwrap();
}

#[tokio::test]
async fn links_made_before_records_were_kept_are_read_once() {
    let (app, sim, contact) = linked().await;
    let gone = sim
        .insert(
            "Contact",
            json!({ "LastName": "Gone", "Email": "gone@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    sim.delete("Contact", &gone).unwrap();
    forget_read_records(&app).await;
    let before = app.gql_ok(PANELS, json!({})).await;
    assert!(
        by_name(&before, "Paneled")["salesforce"]["fields"]
            .get("OwnerId")
            .is_none(),
        "nothing read yet: mapped fields only"
    );

    let asked_for_gone = |sim: &SimHandle, from: usize| {
        sim.requests()[from..]
            .iter()
            .filter(|r| r.query.contains(gone.as_str()))
            .count()
    };
    let start = sim.requests().len();
    app.sync_now().await;
    assert_eq!(
        asked_for_gone(&sim, start),
        1,
        "each unread link is asked for once"
    );
    let after = app.gql_ok(PANELS, json!({})).await;
    let panel = &by_name(&after, "Paneled")["salesforce"];
    assert_eq!(panel["id"], contact.as_str());
    assert!(panel["fields"]["OwnerId"].is_string(), "read: {panel}");
    assert!(panel["account"]["fields"]["OwnerId"].is_string(), "{panel}");

    // A record Salesforce no longer has is not asked for round after round.
    let start = sim.requests().len();
    app.sync_now().await;
    assert_eq!(asked_for_gone(&sim, start), 0);
}

#[tokio::test]
async fn a_denied_field_is_null_with_forbidden_at_its_path_however_it_is_reached() {
    let (app, _sim, _) = linked().await;
    let listed = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { id lastName } } }",
            json!({}),
        )
        .await;
    app.gql_ok(
        "mutation($c: ID!) { createTicket(input: { subject: \"Help\", contactId: $c }) { id } }",
        json!({ "c": by_name(&listed, "Paneled")["id"] }),
    )
    .await;
    let queries = [
        "{ contacts(first: 10) { nodes { salesforce { id fields } } } }",
        "{ contacts(first: 10) { nodes { sf: salesforce { id f: fields } } } }",
        "{ contacts(first: 10) { nodes { ...Panel } } } fragment Panel on Contact { salesforce { id ... on SalesforceContact { fields } } }",
        "{ tickets(first: 10) { nodes { contact { salesforce { id fields account { id } } } } } }",
        "{ contacts(first: 10) { nodes { account { salesforce { id fields } } } } }",
        "query($first: Int) { contacts(first: $first) { nodes { salesforce { id fields } } } }",
    ];
    for query in queries {
        let body = app
            .gql_as("Information Off", query, json!({ "first": 10 }))
            .await;
        let text = body["data"].to_string();
        assert!(
            !text.contains("Paneled") && !text.contains("Panel Corp") && !text.contains("paneled@"),
            "nothing guarded leaks: {query} → {body}"
        );
        assert!(
            text.contains("\"id\":\"003") || text.contains("\"id\":\"001"),
            "the unguarded id still answers: {query} → {body}"
        );
        let errors = body["errors"].as_array().unwrap();
        assert!(!errors.is_empty(), "{query}");
        for error in errors {
            assert_eq!(error["extensions"]["code"], "FORBIDDEN", "{query} → {body}");
            let path = error["path"].as_array().unwrap();
            let (last, parents) = path.split_last().unwrap();
            let mut at = &body["data"];
            for step in parents {
                at = match step {
                    Value::String(key) => &at[key.as_str()],
                    Value::Number(i) => &at[i.as_u64().unwrap() as usize],
                    _ => unreachable!(),
                };
            }
            let field = at.as_object().unwrap().get(last.as_str().unwrap());
            assert_eq!(
                field,
                Some(&Value::Null),
                "an explicit null at {path:?}: {body}"
            );
        }
    }

    // A batch of operations is checked operation by operation.
    let batch = app
        .gql_batch(
            "Information Off",
            &[
                json!({ "query": queries[0] }),
                json!({ "query": queries[3] }),
            ],
        )
        .await;
    for body in &batch {
        assert!(!body["data"].to_string().contains("Paneled"), "{body}");
        let codes = codes(body);
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c == "FORBIDDEN"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_hidden_or_switched_off_panel_is_null_with_forbidden() {
    let (app, _sim, _) = linked().await;
    for profile in ["Hidden", "Accounts Only"] {
        let body = app
            .gql_as(
                profile,
                "{ contacts(first: 10) { nodes { lastName salesforce { id } } } }",
                json!({}),
            )
            .await;
        let nodes = body["data"]["contacts"]["nodes"].as_array().unwrap();
        assert!(nodes.iter().all(|n| n["salesforce"].is_null()), "{body}");
        assert!(
            nodes.iter().any(|n| n["lastName"] == "Paneled"),
            "the desk data stands"
        );
        let codes = codes(&body);
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c == "FORBIDDEN"),
            "{profile}: {body}"
        );
    }
    let accounts = app
        .gql_as(
            "Accounts Only",
            "{ accounts(first: 5) { nodes { salesforce { fields } } } }",
            json!({}),
        )
        .await;
    assert!(accounts.get("errors").is_none(), "{accounts}");
    assert_eq!(
        accounts["data"]["accounts"]["nodes"][0]["salesforce"]["fields"]["Name"],
        "Panel Corp"
    );
}

#[tokio::test]
async fn without_an_integration_the_panel_says_so() {
    let (app, _sim, _) = linked().await;
    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    let body = app
        .gql(
            "{ contacts(first: 10) { nodes { lastName salesforce { id } } } }",
            json!({}),
        )
        .await;
    let codes = codes(&body);
    assert!(!codes.is_empty());
    assert!(
        codes.iter().all(|c| c == "INTEGRATION_UNAVAILABLE"),
        "{body}"
    );
    assert_eq!(
        body["data"]["contacts"]["nodes"].as_array().unwrap().len(),
        2
    );
}

/// An org whose contact has an account, two opportunities (one open, one closed, both with a
/// role for the contact), a note, an event and a task; synced into the desk.
pub(crate) async fn with_activity(
    adjust: impl FnOnce(&mut tandem::config::Settings),
) -> (TestApp, SimHandle, String) {
    let app = crate::helpers::spawn_app_with(adjust).await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sim, "tandem").await;
    app.gql_ok(
        "mutation { setSyncType(syncType: SALESFORCE_TO_DESK) { syncType } startSync { firstSync } }",
        json!({}),
    )
    .await;
    let account = sim
        .insert("Account", json!({ "Name": "Busy Corp" }))
        .unwrap();
    let contact = sim
        .insert(
            "Contact",
            json!({ "LastName": "Busy", "AccountId": account }),
        )
        .unwrap();
    for (name, stage) in [("Renewal", "Prospecting"), ("Pilot", "Closed Won")] {
        let opp = sim
            .insert(
                "Opportunity",
                json!({ "Name": name, "StageName": stage, "CloseDate": "2026-12-31", "AccountId": account, "Amount": 1200.5 }),
            )
            .unwrap();
        sim.insert(
            "OpportunityContactRole",
            json!({ "OpportunityId": opp, "ContactId": contact, "Role": "Decision Maker" }),
        )
        .unwrap();
    }
    // An enhanced note, as Lightning takes them, on the contact and its account, an hour
    // older than the classic one. Its content is written base64-encoded:
    // "<p>Met the <b>whole</b> team.</p>".
    let enhanced = sim
        .insert(
            "ContentNote",
            json!({ "Title": "Kickoff", "Content": "PHA+TWV0IHRoZSA8Yj53aG9sZTwvYj4gdGVhbS48L3A+" }),
        )
        .unwrap();
    for record in [&contact, &account] {
        sim.insert(
            "ContentDocumentLink",
            json!({ "ContentDocumentId": enhanced, "LinkedEntityId": record }),
        )
        .unwrap();
    }
    sim.advance_clock(3_600);
    sim.insert(
        "Note",
        json!({ "Title": "Prefers email", "Body": "Never call before 10.", "ParentId": contact }),
    )
    .unwrap();
    sim.insert(
        "Event",
        json!({ "Subject": "Quarterly review", "StartDateTime": "2026-12-01T10:00:00.000+0000", "EndDateTime": "2026-12-01T11:00:00.000+0000", "WhoId": contact, "Description": "Bring the usage report." }),
    )
    .unwrap();
    sim.insert(
        "Task",
        json!({ "Subject": "Send the quote", "Status": "Not Started", "Priority": "High", "ActivityDate": "2026-12-05", "WhoId": contact, "Description": "Three seats, annual." }),
    )
    .unwrap();
    app.sync_now().await;
    (app, sim, contact)
}

/// The id of the opportunity of this name (`with_activity` makes Renewal and Pilot).
fn opportunity_named(sim: &SimHandle, name: &str) -> String {
    let opportunities = sim.records("Opportunity");
    let named = opportunities.iter().find(|o| o["Name"] == name);
    named.expect("the opportunity is there")["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) const ACTIVITY: &str = "{ contacts(first: 5) { nodes { salesforce { id stale
    open: opportunities { name stage amount closed role viewInSalesforceUrl }
    all: opportunities(status: ALL) { name closed won }
    notes { title body } events { subject start } tasks { subject status priority dueDate }
    account { opportunities(status: CLOSED) { name won } } } } } }";

#[tokio::test]
async fn a_contact_panel_lists_its_opportunities_notes_events_and_tasks() {
    let (app, sim, contact) = with_activity(|_| {}).await;
    let body = app.gql(ACTIVITY, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let panel = &body["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["id"], contact.as_str());
    assert_eq!(panel["stale"], false);
    let open = panel["open"].as_array().unwrap();
    assert_eq!(open.len(), 1, "open ones by default: {panel}");
    assert_eq!(open[0]["name"], "Renewal");
    assert_eq!(open[0]["role"], "Decision Maker");
    assert_eq!(open[0]["amount"], 1200.5);
    assert!(
        open[0]["viewInSalesforceUrl"]
            .as_str()
            .unwrap()
            .starts_with(sim.base_url().trim_end_matches('/'))
    );
    assert_eq!(panel["all"].as_array().unwrap().len(), 2);
    assert_eq!(
        panel["notes"],
        json!([
            { "title": "Prefers email", "body": "Never call before 10." },
            { "title": "Kickoff", "body": "Met the whole team." },
        ]),
        "classic and enhanced notes, newest first; an enhanced note's body is its text"
    );
    assert_eq!(panel["events"][0]["subject"], "Quarterly review");
    assert_eq!(
        panel["tasks"],
        json!([{ "subject": "Send the quote", "status": "Not Started", "priority": "High", "dueDate": "2026-12-05" }])
    );
    assert_eq!(
        panel["account"]["opportunities"],
        json!([{ "name": "Pilot", "won": true }]),
        "an account's opportunities come by account"
    );
    // Who wrote a note, whose an activity is, and what it is about.
    let who = app
        .gql_ok(
            "{ contacts(first: 5) { nodes { salesforce { notes { author } events { description owner } tasks { description owner } } } } }",
            json!({}),
        )
        .await;
    let panel = &who["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(
        panel["notes"][0]["author"], "Sales Rep",
        "made in Salesforce by a person"
    );
    assert_eq!(
        panel["events"],
        json!([{ "description": "Bring the usage report.", "owner": "Integration User" }])
    );
    assert_eq!(
        panel["tasks"],
        json!([{ "description": "Three seats, annual.", "owner": "Integration User" }])
    );

    let light = app.gql_as("Light Agent", ACTIVITY, json!({})).await;
    let panel = &light["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["open"], Value::Null);
    assert_eq!(panel["all"], Value::Null);
    assert_eq!(panel["account"]["opportunities"], Value::Null);
    assert_eq!(
        panel["notes"][0]["title"], "Prefers email",
        "the rest stands"
    );
    assert!(
        codes(&light).iter().all(|c| c == "FORBIDDEN") && codes(&light).len() == 3,
        "{light}"
    );
}

#[tokio::test]
async fn an_account_panel_shows_the_activities_of_its_contacts_and_opportunities_too() {
    let (app, sim, _) = with_activity(|_| {}).await;
    let renewal = opportunity_named(&sim, "Renewal");
    sim.insert(
        "Task",
        json!({ "Subject": "Price the renewal", "Status": "Not Started", "ActivityDate": "2026-12-04", "WhatId": renewal }),
    )
    .unwrap();
    // Another account's contact's meeting stays off this account's panel.
    let other = sim
        .insert("Account", json!({ "Name": "Other Corp" }))
        .unwrap();
    let stranger = sim
        .insert(
            "Contact",
            json!({ "LastName": "Stranger", "AccountId": other }),
        )
        .unwrap();
    sim.insert(
        "Event",
        json!({ "Subject": "Someone else's lunch", "StartDateTime": "2026-12-02T12:00:00.000+0000", "EndDateTime": "2026-12-02T13:00:00.000+0000", "WhoId": stranger }),
    )
    .unwrap();
    let shown = app
        .gql_ok(
            "{ contacts(first: 5) { nodes { salesforce { account { events { subject } tasks { subject } } } } } }",
            json!({}),
        )
        .await;
    let account = &shown["contacts"]["nodes"][0]["salesforce"]["account"];
    // As Salesforce's own account page lists them: logged against the account, one of its
    // opportunities, or one of its contacts.
    assert_eq!(
        account["events"],
        json!([{ "subject": "Quarterly review" }]),
        "{shown}"
    );
    assert_eq!(
        account["tasks"],
        json!([{ "subject": "Send the quote" }, { "subject": "Price the renewal" }]),
        "{shown}"
    );
}

#[tokio::test]
async fn a_meeting_with_invitees_shows_once() {
    let (app, sim, _) = with_activity(|_| {}).await;
    let meeting = sim
        .records("Event")
        .into_iter()
        .find(|event| event["Subject"] == "Quarterly review")
        .unwrap();
    let meeting = meeting["Id"].as_str().unwrap();
    for _ in 0..2 {
        sim.invite(meeting).unwrap();
    }
    assert_eq!(
        sim.records("Event").len(),
        3,
        "the meeting and its invitees' copies"
    );
    let shown = app
        .gql_ok(
            "{ contacts(first: 5) { nodes { salesforce { events { id subject } } } } }",
            json!({}),
        )
        .await;
    let panel = &shown["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(
        panel["events"],
        json!([{ "id": meeting, "subject": "Quarterly review" }]),
        "{shown}"
    );
}

#[tokio::test]
async fn activities_salesforce_archived_stay_in_the_panel_and_deleted_ones_do_not() {
    let (app, sim, contact) = with_activity(|_| {}).await;
    // Salesforce archives an event due more than a year ago, and a task closed that was; a
    // plain query no longer finds them.
    sim.insert(
        "Event",
        json!({ "Subject": "Kickoff visit", "StartDateTime": "2024-03-01T10:00:00.000+0000", "EndDateTime": "2024-03-01T11:00:00.000+0000", "WhoId": contact }),
    )
    .unwrap();
    sim.insert(
        "Task",
        json!({ "Subject": "Signed the first order", "Status": "Completed", "ActivityDate": "2024-03-04", "WhoId": contact }),
    )
    .unwrap();
    let binned = sim
        .insert(
            "Task",
            json!({ "Subject": "Entered by mistake", "Status": "Not Started", "WhoId": contact }),
        )
        .unwrap();
    sim.delete("Task", &binned).unwrap();

    let body = app
        .gql_ok(
            "{ contacts(first: 5) { nodes { salesforce { events { subject } tasks { subject } } } } }",
            json!({}),
        )
        .await;
    let panel = &body["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(
        panel["events"],
        json!([{ "subject": "Quarterly review" }, { "subject": "Kickoff visit" }]),
        "newest first, the archived one after"
    );
    assert_eq!(
        panel["tasks"],
        json!([{ "subject": "Send the quote" }, { "subject": "Signed the first order" }])
    );
}

#[tokio::test]
async fn what_salesforce_keeps_private_to_its_owner_is_shown_to_no_profile() {
    let (app, sim, contact) = with_activity(|_| {}).await;
    let account = sim
        .records("Contact")
        .iter()
        .find(|c| c["Id"] == contact.as_str())
        .unwrap()["AccountId"]
        .clone();
    let deal = sim
        .insert(
            "Opportunity",
            json!({ "Name": "Secret merger", "StageName": "Prospecting", "CloseDate": "2026-12-31", "AccountId": account, "IsPrivate": true }),
        )
        .unwrap();
    sim.insert(
        "OpportunityContactRole",
        json!({ "OpportunityId": deal, "ContactId": contact, "Role": "Decision Maker" }),
    )
    .unwrap();
    sim.insert(
        "Note",
        json!({ "Title": "Private", "Body": "Only for me.", "ParentId": contact, "IsPrivate": true }),
    )
    .unwrap();
    sim.insert(
        "Event",
        json!({ "Subject": "Dentist", "StartDateTime": "2026-12-02T10:00:00.000+0000", "EndDateTime": "2026-12-02T11:00:00.000+0000", "WhoId": contact, "IsPrivate": true }),
    )
    .unwrap();
    // A private opportunity's activities are its owner's too, though they name the contact.
    sim.insert(
        "Event",
        json!({ "Subject": "Merger talks", "StartDateTime": "2026-12-03T10:00:00.000+0000", "EndDateTime": "2026-12-03T11:00:00.000+0000", "WhoId": contact, "WhatId": deal }),
    )
    .unwrap();
    sim.insert(
        "Task",
        json!({ "Subject": "Draft the merger terms", "Status": "Not Started", "ActivityDate": "2026-12-06", "WhoId": contact, "WhatId": deal }),
    )
    .unwrap();
    // An enhanced note "Private on Records".
    let note = sim
        .insert(
            "ContentNote",
            json!({ "Title": "Private enhanced", "Content": "PHA+T25seSBmb3IgbWUuPC9wPg==", "SharingPrivacy": "P" }),
        )
        .unwrap();
    sim.insert(
        "ContentDocumentLink",
        json!({ "ContentDocumentId": note, "LinkedEntityId": contact }),
    )
    .unwrap();
    let query = "{ contacts(first: 5) { nodes { salesforce {
        opportunities(status: ALL) { name } notes { title } events { subject } tasks { subject }
        account { opportunities(status: ALL) { name } notes { title } events { subject }
        tasks { subject } } } } } }";
    for profile in ["Administrator", "Agent"] {
        let body = app.gql_as(profile, query, json!({})).await;
        assert!(body.get("errors").is_none(), "{body}");
        let panel = &body["data"]["contacts"]["nodes"][0]["salesforce"];
        let names = |list: &Value, field: &str| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|r| r[field].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            names(&panel["opportunities"], "name"),
            ["Pilot", "Renewal"],
            "{profile}"
        );
        assert_eq!(
            names(&panel["notes"], "title"),
            ["Prefers email", "Kickoff"],
            "{profile}"
        );
        assert_eq!(
            names(&panel["account"]["opportunities"], "name"),
            ["Pilot", "Renewal"],
            "{profile}"
        );
        for panel in [panel, &panel["account"]] {
            assert_eq!(
                names(&panel["events"], "subject"),
                ["Quarterly review"],
                "{profile}"
            );
            assert_eq!(
                names(&panel["tasks"], "subject"),
                ["Send the quote"],
                "{profile}"
            );
        }
    }
}

#[tokio::test]
async fn a_private_flag_the_org_hides_from_the_integration_user_refuses_the_list_not_shows_it() {
    let (app, sim, contact) = with_activity(|s| s.graphql.panel_cache_secs = 0).await;
    sim.insert(
        "Event",
        json!({ "Subject": "Dentist", "StartDateTime": "2026-12-02T10:00:00.000+0000", "EndDateTime": "2026-12-02T11:00:00.000+0000", "WhoId": contact, "IsPrivate": true }),
    )
    .unwrap();
    sim.hide_field("Event", "IsPrivate").unwrap();
    let body = app
        .gql(
            "{ contacts(first: 5) { nodes { salesforce { events { subject } tasks { subject } } } } }",
            json!({}),
        )
        .await;
    let panel = &body["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(
        panel["events"],
        Value::Null,
        "nothing that may be private: {body}"
    );
    assert_eq!(
        panel["tasks"][0]["subject"], "Send the quote",
        "the rest stands"
    );
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        codes(&body) == ["UPSTREAM_UNAVAILABLE"] && message.contains("IsPrivate"),
        "{body}"
    );
}

/// The activity panels' contact with a second task, on its Renewal opportunity; lists kept
/// no longer than a request.
async fn with_a_task_on_the_renewal() -> (TestApp, SimHandle) {
    let (app, sim, contact) = with_activity(|s| s.graphql.panel_cache_secs = 0).await;
    let renewal = opportunity_named(&sim, "Renewal");
    sim.insert(
        "Task",
        json!({ "Subject": "Price the renewal", "Status": "Not Started", "ActivityDate": "2026-12-04", "WhoId": contact, "WhatId": renewal }),
    )
    .unwrap();
    (app, sim)
}

/// The contact's tasks as [`with_a_task_on_the_renewal`] leaves them.
fn both_tasks() -> Value {
    json!([{ "subject": "Send the quote" }, { "subject": "Price the renewal" }])
}

#[tokio::test]
async fn an_opportunitys_private_flag_hidden_leaves_its_activities_out_and_shows_the_rest() {
    let (app, sim) = with_a_task_on_the_renewal().await;
    let query = "{ contacts(first: 5) { nodes { salesforce { tasks { subject } } } } }";
    let shown = app.gql_ok(query, json!({})).await;
    assert_eq!(
        shown["contacts"]["nodes"][0]["salesforce"]["tasks"],
        both_tasks()
    );
    // Whether the opportunity is private cannot be read: its task is left out as if it
    // were; the rest of the list stands.
    sim.hide_field("Opportunity", "IsPrivate").unwrap();
    let shown = app.gql_ok(query, json!({})).await;
    assert_eq!(
        shown["contacts"]["nodes"][0]["salesforce"]["tasks"],
        json!([{ "subject": "Send the quote" }])
    );
}

#[tokio::test]
async fn activities_whose_opportunities_go_unasked_for_the_budget_are_served_stale_not_cut() {
    let (app, sim) = with_a_task_on_the_renewal().await;
    let query = "{ contacts(first: 5) { nodes { salesforce { stale tasks { subject } } } } }";
    let both = both_tasks();
    let fresh = app.gql_ok(query, json!({})).await;
    assert_eq!(fresh["contacts"]["nodes"][0]["salesforce"]["tasks"], both);
    // The budget holds one more call: the tasks are read, whether the opportunity is private
    // is not. The list read is not shown cut short as fresh; the one kept is shown, stale.
    sim.set_daily_api_limit(sim.api_usage() + 1);
    let body = app.gql(query, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let panel = &body["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["tasks"], both, "{body}");
    assert_eq!(panel["stale"], true, "{body}");
}

#[tokio::test]
async fn reconnected_to_another_org_a_panel_lists_nothing_read_from_the_first() {
    reconnected_to_a_copy_of_production(Reconnected::ToAnotherOrg).await;
}

#[tokio::test]
async fn a_sandbox_refreshed_at_the_same_address_lists_nothing_read_before_the_refresh() {
    reconnected_to_a_copy_of_production(Reconnected::ToARefreshedSandbox).await;
}

#[tokio::test]
async fn reconnected_as_another_salesforce_user_a_panel_lists_nothing_the_first_one_read() {
    reconnected_to_a_copy_of_production(Reconnected::AsAnotherUser).await;
}

enum Reconnected {
    ToAnotherOrg,
    /// The same address, another org id.
    ToARefreshedSandbox,
    /// The same org at the same address, signed in as a user who sees other records.
    AsAnotherUser,
}

/// Panels read from production, then the desk reconnected to a sandbox copied from it: its
/// record ids are production's, its org id its own, its address another or (refreshed in
/// place) the same; or reconnected to production as another user, who sees other records.
/// Only what the new connection sees is listed.
async fn reconnected_to_a_copy_of_production(how: Reconnected) {
    let (app, production, contact) = linked().await;
    production
        .insert(
            "Task",
            json!({ "Subject": "Production task", "WhoId": contact }),
        )
        .unwrap();
    const TASKS: &str =
        "{ contacts(first: 10) { nodes { lastName salesforce { id tasks { subject } } } } }";
    let before = app.gql_ok(TASKS, json!({})).await;
    assert_eq!(
        by_name(&before, "Paneled")["salesforce"]["tasks"],
        json!([{ "subject": "Production task" }])
    );

    let port = if !matches!(how, Reconnected::ToAnotherOrg) {
        let port = production.port();
        production.stop().await;
        port
    } else {
        0
    };
    let sandbox = salesforce_sim::start(match how {
        Reconnected::AsAnotherUser => SimConfig {
            port,
            username: "reader@tandem.test".into(),
            ..SimConfig::default()
        },
        _ => SimConfig {
            port,
            seed: 2,
            ..SimConfig::default()
        },
    })
    .await;
    let account = sandbox
        .insert(
            "Account",
            json!({ "Name": "Panel Corp", "Industry": "Energy" }),
        )
        .unwrap();
    let copy = sandbox
        .insert(
            "Contact",
            json!({ "LastName": "Paneled", "Email": "paneled@example.com", "AccountId": account }),
        )
        .unwrap();
    assert_eq!(copy, contact, "the copy has production's id");
    sandbox
        .insert("Task", json!({ "Subject": "Sandbox task", "WhoId": copy }))
        .unwrap();
    let body = connect(&app, &sandbox, "tandem").await;
    assert!(body.get("errors").is_none(), "{body}");
    app.gql("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    let after = app.gql_ok(TASKS, json!({})).await;
    let panel = &by_name(&after, "Paneled")["salesforce"];
    assert_eq!(panel["id"], copy.as_str());
    assert_eq!(
        panel["tasks"],
        json!([{ "subject": "Sandbox task" }]),
        "{after}"
    );
}

/// Requests to the org's REST API (not its token endpoint).
fn api_calls(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.contains("/services/data/"))
        .count()
}

#[tokio::test]
async fn fifty_tickets_with_every_contact_and_account_panel_cost_two_calls_cold_and_none_warm() {
    let (app, sim, _) = with_activity(|_| {}).await;
    let mut last_names = Vec::new();
    for n in 0..49 {
        let name = format!("Requester{n}");
        sim.insert("Contact", json!({ "LastName": name })).unwrap();
        last_names.push(name);
    }
    app.sync_now().await;
    let contacts = app
        .gql_ok("{ contacts(first: 100) { nodes { id } } }", json!({}))
        .await;
    for contact in contacts["contacts"]["nodes"].as_array().unwrap() {
        app.gql_ok(
            "mutation($c: ID!) { createTicket(input: { subject: \"Help\", contactId: $c }) { id } }",
            json!({ "c": contact["id"] }),
        )
        .await;
    }
    // Activities related to opportunities, each asked about: still no more calls.
    for (subject, opportunity) in [("Price the renewal", "Renewal"), ("Pilot review", "Pilot")] {
        let opportunity = opportunity_named(&sim, opportunity);
        sim.insert(
            "Task",
            json!({ "Subject": subject, "Status": "Not Started", "ActivityDate": "2026-12-04", "WhatId": opportunity }),
        )
        .unwrap();
        sim.insert(
            "Event",
            json!({ "Subject": subject, "StartDateTime": "2026-12-04T10:00:00.000+0000", "EndDateTime": "2026-12-04T11:00:00.000+0000", "WhatId": opportunity }),
        )
        .unwrap();
    }
    let lists = "opportunities { name } notes { title } events { subject } tasks { subject }";
    let query = format!(
        "{{ tickets(first: 50) {{ nodes {{ contact {{ salesforce {{ fetchedAt stale {lists} }} }} account {{ salesforce {{ {lists} }} }} }} }} }}"
    );
    let query = query.as_str();

    let before = api_calls(&sim);
    let cold = app.gql(query, json!({})).await;
    assert!(cold.get("errors").is_none(), "{cold}");
    let nodes = cold["data"]["tickets"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 50);
    assert!(nodes.iter().all(|n| n["contact"]["salesforce"].is_object()));
    assert!(
        nodes
            .iter()
            .any(|n| n["contact"]["salesforce"]["notes"][0]["title"] == "Prefers email"),
        "{cold}"
    );
    assert!(
        nodes
            .iter()
            .any(|n| n["account"]["salesforce"]["opportunities"][0]["name"] == "Renewal"),
        "an account panel is read too: {cold}"
    );
    assert!(
        nodes
            .iter()
            .any(|n| n["account"]["salesforce"]["notes"][0]["title"] == "Kickoff"),
        "an enhanced note shows on each record it is linked to: {cold}"
    );
    assert!(
        nodes.iter().any(|n| n["account"]["salesforce"]["tasks"]
            .as_array()
            .is_some_and(|tasks| tasks.iter().any(|t| t["subject"] == "Price the renewal"))),
        "an account lists its opportunities' tasks: {cold}"
    );
    let cold_calls = api_calls(&sim) - before;
    assert_eq!(
        cold_calls, 2,
        "one query per kind for all hundred panels, five to a composite call: the links of \
         enhanced notes and the activities in the first, the notes and opportunities they \
         name in the second with the rest"
    );

    let before = api_calls(&sim);
    let warm = app.gql(query, json!({})).await;
    assert_eq!(warm["data"], cold["data"]);
    // Computed afresh, not the kept answer: the panels' lists come from their own cache.
    let computed = app.gql_fresh("Administrator", query, json!({})).await;
    assert_eq!(computed["data"], cold["data"]);
    assert_eq!(api_calls(&sim) - before, 0, "served from the cache");
}

#[tokio::test]
async fn without_salesforce_cached_lists_are_served_stale_and_only_to_the_same_profile() {
    let (app, sim, _) = with_activity(|s| s.graphql.panel_cache_secs = 0).await;
    let query = "{ contacts(first: 5) { nodes { salesforce { stale notes { title } } } } }";
    let fresh = app.gql(query, json!({})).await;
    assert_eq!(
        fresh["data"]["contacts"]["nodes"][0]["salesforce"]["stale"], false,
        "{fresh}"
    );

    sim.set_daily_api_limit(sim.api_usage());
    let stale = app.gql(query, json!({})).await;
    assert!(stale.get("errors").is_none(), "{stale}");
    let panel = &stale["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["stale"], true);
    assert_eq!(panel["notes"][0]["title"], "Prefers email");

    let other = app.gql_as("Agent", query, json!({})).await;
    let panel = &other["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(
        panel["notes"],
        Value::Null,
        "another profile's cache is not served"
    );
    assert!(
        codes(&other).contains(&"UPSTREAM_UNAVAILABLE".to_owned()),
        "{other}"
    );
}

#[tokio::test]
async fn a_list_salesforce_refuses_to_read_takes_the_kept_answers_holding_it_with_it() {
    let (app, sim, _) = with_activity(|s| s.graphql.response_cache_ms = 60_000).await;
    let query = "{ contacts(first: 5) { nodes { salesforce { tasks { subject } } } } }";
    let kept = app.gql_ok(query, json!({})).await;
    assert_eq!(
        kept["contacts"]["nodes"][0]["salesforce"]["tasks"][0]["subject"],
        "Send the quote"
    );
    // An admin of the org hides a field of Task from the integration user, and another
    // profile's read, kept apart, meets the refusal.
    sim.hide_field("Task", "Priority").unwrap();
    let agent = app.gql_as("Agent", query, json!({})).await;
    assert_eq!(
        agent["data"]["contacts"]["nodes"][0]["salesforce"]["tasks"],
        Value::Null,
        "{agent}"
    );
    let again = app.gql(query, json!({})).await;
    assert_eq!(
        again["data"]["contacts"]["nodes"][0]["salesforce"]["tasks"],
        Value::Null,
        "what the integration user may no longer read is not shown again: {again}"
    );
}

#[tokio::test]
async fn a_list_salesforce_refuses_to_read_is_not_served_from_the_cache() {
    let (app, sim, _) = with_activity(|s| s.graphql.panel_cache_secs = 0).await;
    let query = "{ contacts(first: 5) { nodes { salesforce { stale notes { title } tasks { subject } } } } }";
    let fresh = app.gql_ok(query, json!({})).await;
    assert_eq!(
        fresh["contacts"]["nodes"][0]["salesforce"]["tasks"][0]["subject"],
        "Send the quote"
    );
    // Another profile's lists, kept apart, are read by the same integration user.
    let agent = app.gql_as("Agent", query, json!({})).await;
    assert_eq!(
        agent["data"]["contacts"]["nodes"][0]["salesforce"]["tasks"][0]["subject"],
        "Send the quote",
        "{agent}"
    );

    // An admin of the org hides a field of Task from the integration user.
    sim.hide_field("Task", "Priority").unwrap();
    let refused = app.gql(query, json!({})).await;
    let panel = &refused["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(
        panel["tasks"],
        Value::Null,
        "what the user may no longer read is not shown: {refused}"
    );
    assert_eq!(
        panel["notes"][0]["title"], "Prefers email",
        "the other lists are read as before"
    );
    assert_eq!(panel["stale"], true, "one list is not read live");
    let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        codes(&refused) == ["UPSTREAM_UNAVAILABLE"]
            && message.contains("Salesforce refused to read it")
            && message.contains("INVALID_FIELD"),
        "{refused}"
    );

    // Out of budget now, the refused list has nothing kept to serve stale.
    sim.set_daily_api_limit(sim.api_usage());
    let limited = app.gql(query, json!({})).await;
    let panel = &limited["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["stale"], true, "{limited}");
    assert_eq!(panel["notes"][0]["title"], "Prefers email");
    assert_eq!(panel["tasks"], Value::Null, "{limited}");
    // Nor has any other profile: the refusal was the integration user's.
    let agent = app.gql_as("Agent", query, json!({})).await;
    let panel = &agent["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["notes"][0]["title"], "Prefers email", "{agent}");
    assert_eq!(panel["tasks"], Value::Null, "{agent}");
}

#[tokio::test]
async fn a_field_the_org_hides_from_the_integration_user_is_left_out_of_its_lists() {
    let (app, sim, _) = with_activity(|s| s.graphql.panel_cache_secs = 0).await;
    let query = "{ contacts(first: 5) { nodes { salesforce { stale
        opportunities { name amount role } notes { title }
        events { subject description } tasks { subject priority description }
        account { opportunities(status: ALL) { name amount } } } } } }";
    let before = sim.api_usage();
    let shown = app.gql_ok(query, json!({})).await;
    let calls = sim.api_usage() - before;
    let panel = &shown["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["tasks"][0]["description"], "Three seats, annual.");
    assert_eq!(panel["opportunities"][0]["amount"], 1200.5);

    // An admin of the org hides optional fields from the integration user: the lists are
    // shown without them, not refused whole.
    for (object, field) in [
        ("Task", "Description"),
        ("Event", "Description"),
        ("Opportunity", "Amount"),
    ] {
        sim.hide_field(object, field).unwrap();
    }
    let body = app.gql(query, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let panel = &body["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["stale"], false);
    assert_eq!(
        panel["tasks"],
        json!([{ "subject": "Send the quote", "priority": "High", "description": null }])
    );
    assert_eq!(
        panel["events"],
        json!([{ "subject": "Quarterly review", "description": null }])
    );
    assert_eq!(
        panel["opportunities"],
        json!([{ "name": "Renewal", "amount": null, "role": "Decision Maker" }])
    );
    let of_account = panel["account"]["opportunities"].as_array().unwrap();
    assert_eq!(of_account.len(), 2, "{panel}");
    assert!(of_account.iter().all(|o| o["amount"].is_null()), "{panel}");
    assert_eq!(panel["notes"][0]["title"], "Prefers email");

    // What was learnt is kept: the next read asks for what may be read at once.
    let before = sim.api_usage();
    let again = app.gql_ok(query, json!({})).await;
    assert_eq!(again["contacts"], body["data"]["contacts"]);
    assert_eq!(
        sim.api_usage() - before,
        calls,
        "as many calls as before the fields were hidden"
    );
}

#[tokio::test]
async fn a_panel_shown_for_its_fields_reads_no_list_and_its_freshness_speaks_of_what_is_shown() {
    let (app, sim, _) = with_activity(|s| s.graphql.panel_cache_secs = 0).await;
    let card = "{ contacts(first: 5) { nodes { salesforce { fields fetchedAt stale } } } }";
    let before = api_calls(&sim);
    let shown = app.gql_ok(card, json!({})).await;
    assert_eq!(
        api_calls(&sim) - before,
        0,
        "a panel's fields and freshness come from the sync: {shown}"
    );
    assert_eq!(shown["contacts"]["nodes"][0]["salesforce"]["stale"], false);
    // A list the request leaves out (`@include`, `@skip`) is not shown, so not read.
    let folded = app
        .gql_ok(
            "query($open: Boolean!) { contacts(first: 5) { nodes { salesforce { fields stale \
             notes @include(if: $open) { title } tasks @skip(if: true) { subject } } } } }",
            json!({ "open": false }),
        )
        .await;
    assert_eq!(api_calls(&sim) - before, 0, "{folded}");
    assert_eq!(
        folded["contacts"]["nodes"][0]["salesforce"]["notes"],
        Value::Null
    );

    // Out of budget, a list selected through a fragment cannot be read live: the panel
    // showing it is stale; the card showing none is not.
    sim.set_daily_api_limit(sim.api_usage());
    let with_notes = app
        .gql(
            "query { contacts(first: 5) { nodes { salesforce { ...Notes stale } } } } \
             fragment Notes on SalesforceContact { notes { title } }",
            json!({}),
        )
        .await;
    assert_eq!(
        with_notes["data"]["contacts"]["nodes"][0]["salesforce"]["stale"], true,
        "{with_notes}"
    );
    // Selected twice, one fragment a component's header and one its notes, the panel is one
    // answer: its header says the notes beside it are stale.
    let in_parts = app
        .gql(
            "query { contacts(first: 5) { nodes { ...Header ...Notes } } } \
             fragment Header on Contact { salesforce { stale } } \
             fragment Notes on Contact { salesforce { notes { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        in_parts["data"]["contacts"]["nodes"][0]["salesforce"]["stale"], true,
        "{in_parts}"
    );
    let card = app.gql(card, json!({})).await;
    assert!(card.get("errors").is_none(), "{card}");
    assert_eq!(
        card["data"]["contacts"]["nodes"][0]["salesforce"]["stale"],
        false
    );
}

#[tokio::test]
async fn a_salesforce_that_is_slow_to_answer_costs_a_panel_only_its_patience() {
    let (app, sim, _) = with_activity(|s| {
        s.graphql.panel_cache_secs = 0;
        s.graphql.panel_timeout_ms = 1000;
    })
    .await;
    let query = "{ contacts(first: 5) { nodes { salesforce { stale notes { title } } } } }";
    app.gql_ok(query, json!({})).await;

    sim.set_latency(Duration::from_secs(20));
    let asked = Instant::now();
    let slow = app.gql(query, json!({})).await;
    let waited = asked.elapsed();
    assert!(slow.get("errors").is_none(), "{slow}");
    let panel = &slow["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["stale"], true, "{slow}");
    assert_eq!(panel["notes"][0]["title"], "Prefers email");
    let other = app.gql_as("Agent", query, json!({})).await;
    assert_eq!(
        other["data"]["contacts"]["nodes"][0]["salesforce"]["notes"],
        Value::Null
    );
    let message = other["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        codes(&other).contains(&"UPSTREAM_UNAVAILABLE".to_owned())
            && message.contains("did not answer within 1s"),
        "{other}"
    );
    // Its lists, and `stale` asking after them again, wait for Salesforce once, together.
    assert!(
        waited < Duration::from_secs(3),
        "the request waited {waited:?}, not its patience"
    );

    sim.set_latency(Duration::ZERO);
    let back = app.gql_ok(query, json!({})).await;
    assert_eq!(back["contacts"]["nodes"][0]["salesforce"]["stale"], false);
}

/// Lightning's note editor writes a paragraph a line, `<p><br></p>` for an empty one.
const LONG_NOTE: &str = "<p>Renewal call with the <b>whole</b> buying committee &amp; legal.</p><p><br></p><ul><li>Wants SSO before signing</li><li>Budget moves to Q3</li></ul><p>";

#[tokio::test]
async fn enhanced_notes_salesforce_refuses_leave_the_classic_ones_shown() {
    let (app, sim, _) = with_activity(|_| {}).await;
    // The org's admin hides the links of files and notes from the integration user.
    sim.hide_field("ContentDocumentLink", "LinkedEntityId")
        .unwrap();
    let body = app
        .gql(
            "{ contacts(first: 5) { nodes { salesforce { notes { title } tasks { subject } } } } }",
            json!({}),
        )
        .await;
    let panel = &body["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(
        panel["notes"],
        json!([{ "title": "Prefers email" }]),
        "the classic notes stand: {body}"
    );
    assert_eq!(panel["tasks"][0]["subject"], "Send the quote");
    assert_eq!(codes(&body), ["UPSTREAM_UNAVAILABLE"], "{body}");
    let error = &body["errors"][0];
    assert_eq!(
        error["path"],
        json!(["contacts", "nodes", 0, "salesforce", "notes"]),
        "{body}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("enhanced notes are not shown: Salesforce refused to read it"),
        "{body}"
    );
}

#[tokio::test]
async fn classic_notes_salesforce_refuses_leave_the_enhanced_ones_shown() {
    let (app, sim, _) = with_activity(|_| {}).await;
    sim.hide_field("Note", "Body").unwrap();
    let body = app
        .gql(
            "{ contacts(first: 5) { nodes { salesforce { notes { title } } } } }",
            json!({}),
        )
        .await;
    let panel = &body["data"]["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["notes"], json!([{ "title": "Kickoff" }]), "{body}");
    assert_eq!(codes(&body), ["UPSTREAM_UNAVAILABLE"], "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("classic notes are not shown: Salesforce refused to read it"),
        "{body}"
    );
}

#[tokio::test]
async fn a_note_whose_content_salesforce_does_not_give_leaves_the_others_whole() {
    let (app, sim, contact) = with_activity(|_| {}).await;
    // "<p>Pilot agreed.</p>", base64-encoded, beside the org's "Kickoff" note.
    let pilot = sim
        .insert(
            "ContentNote",
            json!({ "Title": "Pilot", "Content": "PHA+UGlsb3QgYWdyZWVkLjwvcD4=" }),
        )
        .unwrap();
    sim.insert(
        "ContentDocumentLink",
        json!({ "ContentDocumentId": pilot, "LinkedEntityId": contact }),
    )
    .unwrap();
    let list = "{ contacts(first: 5) { nodes { salesforce { notes { id title } } } } }";
    let listed = app.gql_ok(list, json!({})).await;
    let ids: Vec<Value> = listed["contacts"]["nodes"][0]["salesforce"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["title"] == "Pilot" || n["title"] == "Kickoff")
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");

    // The lists are cached; of the two contents, the first asked for is refused.
    sim.fail_next(&[403]);
    let open = "query($ids: [ID!]) { contacts(first: 5) { nodes { salesforce {
        notes(ids: $ids) { title content } } } } }";
    let body = app.gql(open, json!({ "ids": ids })).await;
    let notes = body["data"]["contacts"]["nodes"][0]["salesforce"]["notes"]
        .as_array()
        .unwrap_or_else(|| panic!("the notes stand: {body}"));
    let read: Vec<&Value> = notes.iter().filter(|n| !n["content"].is_null()).collect();
    assert_eq!(read.len(), 1, "one note's content is read: {body}");
    let expected = if read[0]["title"] == "Pilot" {
        "Pilot agreed."
    } else {
        "Met the whole team."
    };
    assert_eq!(read[0]["content"], expected, "{body}");
    assert_eq!(codes(&body), ["UPSTREAM_UNAVAILABLE"], "{body}");
    assert_eq!(
        body["errors"][0]["path"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "content",
        "{body}"
    );
}

#[tokio::test]
async fn an_enhanced_note_is_read_whole_only_for_the_notes_asked_for() {
    use base64::Engine;

    let (app, sim, contact) = with_activity(|_| {}).await;
    let tail = "Next step: a pilot for the support team. ".repeat(8);
    let html = format!("{LONG_NOTE}{}</p>", tail.trim_end());
    sim.advance_clock(60);
    let long = sim
        .insert(
            "ContentNote",
            json!({ "Title": "Renewal", "Content": base64::engine::general_purpose::STANDARD.encode(&html) }),
        )
        .unwrap();
    sim.insert(
        "ContentDocumentLink",
        json!({ "ContentDocumentId": long, "LinkedEntityId": contact }),
    )
    .unwrap();
    let list =
        "{ contacts(first: 5) { nodes { salesforce { notes { id title body truncated } } } } }";
    let listed = app.gql_ok(list, json!({})).await;
    let notes = listed["contacts"]["nodes"][0]["salesforce"]["notes"]
        .as_array()
        .unwrap()
        .clone();
    let renewal = notes.iter().find(|n| n["title"] == "Renewal").unwrap();
    let preview = renewal["body"].as_str().unwrap();
    assert_eq!(preview.chars().count(), 255, "a preview: {preview}");
    assert!(preview.starts_with("Renewal call with the whole buying committee & legal. Wants SSO"));
    assert_eq!(renewal["truncated"], true);
    for short in notes.iter().filter(|n| n["title"] != "Renewal") {
        assert_eq!(short["truncated"], false, "{short}");
    }

    let open = "query($ids: [ID!]) { contacts(first: 5) { nodes { salesforce {
        notes(ids: $ids) { id title body content } } } } }";
    let before = api_calls(&sim);
    let opened = app.gql_ok(open, json!({ "ids": [renewal["id"]] })).await;
    assert_eq!(
        api_calls(&sim) - before,
        1,
        "the lists come from the cache; the one note asked for is a call"
    );
    let expected = format!(
        "Renewal call with the whole buying committee & legal.\n\nWants SSO before signing\nBudget moves to Q3\n{}",
        tail.trim_end()
    );
    assert_eq!(
        opened["contacts"]["nodes"][0]["salesforce"]["notes"],
        json!([{ "id": renewal["id"], "title": "Renewal", "body": preview, "content": expected }]),
        "only the note asked for, with its whole text, a paragraph a line"
    );
    let too_many: Vec<String> = (0..101).map(|n| format!("069{n:015}")).collect();
    let refused = app.gql(open, json!({ "ids": too_many })).await;
    let error = &refused["errors"][0];
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
    assert_eq!(error["extensions"]["field"], "ids", "{refused}");

    let before = api_calls(&sim);
    let every = app
        .gql_fresh(
            "Administrator",
            "{ contacts(first: 5) { nodes { salesforce { notes { title content } } } } }",
            json!({}),
        )
        .await;
    assert!(every.get("errors").is_none(), "{every}");
    assert_eq!(
        api_calls(&sim) - before,
        1,
        "the note read before is cached; the other enhanced note is a call, a classic one none"
    );
    assert_eq!(
        every["data"]["contacts"]["nodes"][0]["salesforce"]["notes"],
        json!([
            { "title": "Renewal", "content": expected },
            { "title": "Prefers email", "content": "Never call before 10." },
            { "title": "Kickoff", "content": "Met the whole team." },
        ])
    );

    // Salesforce out of budget: what was read is served, what was not is null with a code.
    sim.set_daily_api_limit(sim.api_usage());
    let agent = app
        .gql_as("Agent", open, json!({ "ids": [renewal["id"]] }))
        .await;
    let note = &agent["data"]["contacts"]["nodes"][0]["salesforce"]["notes"];
    assert_eq!(
        note,
        &Value::Null,
        "the Agent profile has no cached lists: {agent}"
    );
    assert!(
        codes(&agent).contains(&"UPSTREAM_UNAVAILABLE".to_owned()),
        "{agent}"
    );
    let admin = app
        .gql_fresh("Administrator", open, json!({ "ids": [renewal["id"]] }))
        .await;
    assert_eq!(
        admin["data"]["contacts"]["nodes"][0]["salesforce"]["notes"][0]["content"], expected,
        "{admin}"
    );
}

/// Enhanced notes `Call 0` … `Call {n-1}` on the contact, each a paragraph.
fn enhanced_calls(sim: &SimHandle, contact: &str, n: usize) {
    use base64::Engine;
    for n in 0..n {
        let content = base64::engine::general_purpose::STANDARD.encode(format!("<p>Call {n}</p>"));
        let note = sim
            .insert(
                "ContentNote",
                json!({ "Title": format!("Call {n}"), "Content": content }),
            )
            .unwrap();
        sim.insert(
            "ContentDocumentLink",
            json!({ "ContentDocumentId": note, "LinkedEntityId": contact }),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_request_reads_at_most_twenty_five_notes_whole() {
    let (app, sim, contact) = with_activity(|_| {}).await;
    enhanced_calls(&sim, &contact, 26);
    let query =
        "{ contacts(first: 5) { nodes { salesforce { notes(first: 100) { title content } } } } }";
    let before = api_calls(&sim);
    let body = app.gql(query, json!({})).await;
    let notes = body["data"]["contacts"]["nodes"][0]["salesforce"]["notes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(notes.len(), 28, "{body}");
    let read = notes.iter().filter(|n| n["content"].is_string()).count();
    assert_eq!(
        read,
        25 + 1,
        "twenty-five enhanced notes and the classic one: {body}"
    );
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"; 2], "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("notes(ids:"),
        "{body}"
    );
    assert_eq!(
        api_calls(&sim) - before,
        2 + 25,
        "the lists, then a call a note read"
    );

    // What was read is cached and not counted again: the next request reads the rest.
    let again = app.gql_fresh("Administrator", query, json!({})).await;
    assert!(again.get("errors").is_none(), "{again}");
}

#[tokio::test]
async fn a_note_read_whole_twice_in_one_request_counts_once_against_the_limit() {
    let (app, sim, contact) = with_activity(|_| {}).await;
    enhanced_calls(&sim, &contact, 20);
    let before = api_calls(&sim);
    let body = app
        .gql(
            "{ contacts(first: 5) { nodes { salesforce { notes(first: 100) { title text: content again: content } } } } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let notes = body["data"]["contacts"]["nodes"][0]["salesforce"]["notes"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        notes
            .iter()
            .all(|n| n["text"].is_string() && n["text"] == n["again"]),
        "{body}"
    );
    // The lists, then a call for each of the twenty-one enhanced notes (one was there).
    assert_eq!(
        api_calls(&sim) - before,
        2 + 21,
        "a call a note, however often shown"
    );
}

#[tokio::test]
async fn a_panel_answers_its_fields_in_the_order_they_were_asked_for() {
    let (app, _sim, _) = with_activity(|_| {}).await;
    // The live lists wait on Salesforce (or the cache) and `id` does not: resolved side by
    // side, they would land in the answer in the order they finish.
    let query = "{ contacts(first: 5) { nodes { salesforce { tasks { subject } stale id notes { title } fetchedAt } } } }";
    for cache_control in ["no-cache", "max-age=60"] {
        let body = app
            .gql_text(&app.token("Agent"), Some(cache_control), query, json!({}))
            .await;
        let at = |key: &str| {
            body.find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key} in {body}"))
        };
        let order = ["tasks", "stale", "id", "notes", "fetchedAt"].map(at);
        assert!(order.is_sorted(), "{body}");
    }
}

/// Ways of reaching a contact's and an account's opportunities: each shape a client could
/// try, with the variables it needs.
const OPPORTUNITY_SHAPES: [(&str, &str); 8] = [
    (
        "plain",
        "{ contacts(first: 5) { nodes { salesforce { opportunities(status: ALL) { name } } } } }",
    ),
    (
        "aliases",
        "{ c: contacts(first: 5) { n: nodes { s: salesforce { o: opportunities(status: ALL) { x: name } p: opportunities { y: name } } } } }",
    ),
    (
        "named fragments",
        "{ contacts(first: 5) { nodes { ...C } } } fragment C on Contact { salesforce { ...O } } fragment O on SalesforceContact { opportunities(status: ALL) { name } }",
    ),
    (
        "inline fragments",
        "{ contacts(first: 5) { nodes { ... on Contact { salesforce { ... on SalesforceContact { opportunities(status: ALL) { name } } } } } } }",
    ),
    (
        "through tickets",
        "{ tickets(first: 5) { nodes { contact { salesforce { opportunities(status: ALL) { name } account { opportunities(status: ALL) { name } } } } } } }",
    ),
    (
        "an account's panel",
        "{ accounts(first: 5) { nodes { salesforce { opportunities(status: ALL) { name } } } } }",
    ),
    (
        "variables",
        "query($status: OpportunityStatus!, $first: Int) { contacts(first: $first) { nodes { salesforce { opportunities(status: $status) { name } } } } }",
    ),
    (
        "a ticket's account",
        "{ tickets(first: 5) { nodes { account { salesforce { opportunities(status: ALL) { name } } } } } }",
    ),
];

/// What one answer shows of the opportunities: whether their names are in it, and its
/// error codes.
fn opportunities_shown(body: &Value) -> (bool, Vec<String>) {
    let text = body["data"].to_string();
    (
        text.contains("Pilot") || text.contains("Renewal"),
        codes(body),
    )
}

#[tokio::test]
async fn each_default_profile_reads_opportunities_exactly_as_far_as_it_is_granted() {
    let (app, _sim, _) = with_activity(|_| {}).await;
    let busy = app
        .gql_ok(
            "{ contacts(first: 5) { nodes { id account { id } } } }",
            json!({}),
        )
        .await["contacts"]["nodes"][0]
        .clone();
    app.gql_ok(
        "mutation($c: ID!, $a: ID) { createTicket(input: { subject: \"Renewal?\", contactId: $c, accountId: $a }) { id } }",
        json!({ "c": busy["id"], "a": busy["account"]["id"] }),
    )
    .await;
    let variables = json!({ "status": "ALL", "first": 5 });
    // Administrator and Agent hold every grant; Light Agent all but opportunities.
    for (profile, granted) in [
        ("Administrator", true),
        ("Agent", true),
        ("Light Agent", false),
    ] {
        let judge = |shape: &str, body: &Value| {
            let (shown, codes) = opportunities_shown(body);
            if granted {
                assert!(shown && codes.is_empty(), "{profile}, {shape}: {body}");
            } else {
                assert!(!shown, "{profile}, {shape}: nothing denied leaks: {body}");
                assert!(
                    !codes.is_empty() && codes.iter().all(|c| c == "FORBIDDEN"),
                    "{profile}, {shape}: {body}"
                );
                assert!(body["data"].is_object(), "the rest answers: {body}");
            }
        };
        for (shape, query) in OPPORTUNITY_SHAPES {
            let body = app.gql_as(profile, query, variables.clone()).await;
            judge(shape, &body);
        }

        // A batch is judged operation by operation.
        let batch: Vec<Value> = OPPORTUNITY_SHAPES
            .iter()
            .map(|(_, query)| json!({ "query": query, "variables": variables }))
            .collect();
        let answers = app.gql_batch(profile, &batch).await;
        for ((shape, _), body) in OPPORTUNITY_SHAPES.iter().zip(&answers) {
            judge(&format!("batched, {shape}"), body);
        }

        // So is a query sent over a WebSocket, in either protocol.
        for protocol in [crate::ws::TRANSPORT, crate::ws::LEGACY] {
            let mut ws = crate::ws::Ws::connect(&app, Some(protocol)).await;
            ws.init(&app, profile).await;
            let kind = if protocol == crate::ws::TRANSPORT {
                "subscribe"
            } else {
                "start"
            };
            ws.send(
                json!({ "id": "q", "type": kind, "payload": { "query": OPPORTUNITY_SHAPES[2].1 } }),
            )
            .await;
            let message = ws.recv().await;
            assert!(
                message["type"] == "next" || message["type"] == "data",
                "{message}"
            );
            judge(&format!("over {protocol}"), &message["payload"]);
        }
    }
}

#[tokio::test]
async fn a_gateway_that_cannot_open_the_connection_says_internal_and_keeps_the_detail_to_its_log() {
    let (app, sim, contact) = linked().await;
    sim.insert("Task", json!({ "Subject": "Call back", "WhoId": contact }))
        .unwrap();
    // A replica started with another sync.encryption_key than the one that sealed the
    // credentials, on the same database.
    let mut settings = tandem::config::Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(tandem::config::DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    settings.http.port = 0;
    settings.http.workers = Some(1);
    settings.auth.jwt_secret = Some(secrecy::SecretString::from(crate::helpers::SECRET));
    settings.sync.worker = false;
    settings.sync.encryption_key = Some(secrecy::SecretString::from("ab".repeat(32)));
    let replica = tandem::startup::Application::build(&settings)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", replica.port());
    tokio::spawn(replica.run_until_stopped());

    let body: Value = app
        .client
        .post(format!("{address}/graphql"))
        .bearer_auth(app.token("Agent"))
        .json(&json!({ "query": "{ contacts(first: 10) { nodes { lastName salesforce { id tasks { subject } } } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let panel = &by_name(&body["data"], "Paneled")["salesforce"];
    assert_eq!(
        panel["id"],
        contact.as_str(),
        "the link is the desk's: {body}"
    );
    assert_eq!(panel["tasks"], Value::Null, "{body}");
    assert_eq!(codes(&body), ["INTERNAL"], "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        !message.contains("decrypt") && !message.contains("key"),
        "the vault's detail stays in the server log: {message}"
    );
}

#[tokio::test]
async fn a_list_salesforce_is_slow_to_give_is_read_once_and_served_to_the_requests_after() {
    let (app, sim, _) = with_activity(|s| s.graphql.panel_timeout_ms = 300).await;
    let query = "{ contacts(first: 5) { nodes { salesforce { stale notes { title } } } } }";
    // Notes are two calls: their links, then the enhanced notes they name.
    sim.set_latency(Duration::from_millis(1000));
    let calls = api_calls(&sim);
    let impatient = app.gql(query, json!({})).await;
    assert!(
        codes(&impatient).contains(&"UPSTREAM_UNAVAILABLE".to_owned()),
        "{impatient}"
    );
    // Salesforce answers after the request gave up; what it answered is kept.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let read = api_calls(&sim) - calls;
    let after = app.gql_ok(query, json!({})).await;
    let panel = &after["contacts"]["nodes"][0]["salesforce"];
    assert_eq!(panel["stale"], false, "{after}");
    assert_eq!(panel["notes"][0]["title"], "Prefers email", "{after}");
    assert_eq!(api_calls(&sim) - calls, read, "nothing read again");
}

#[tokio::test]
async fn requests_wanting_a_list_being_read_wait_for_that_read_rather_than_ask_again() {
    let (app, sim, _) = with_activity(|s| s.graphql.panel_timeout_ms = 1000).await;
    let query = "{ contacts(first: 5) { nodes { salesforce { notes { title } } } } }";
    sim.set_latency(Duration::from_millis(1500));
    let calls = api_calls(&sim);
    // Three agents open the panel at once.
    let asked = (0..3).map(|_| app.gql(query, json!({})));
    for impatient in futures_util::future::join_all(asked).await {
        assert!(
            codes(&impatient).contains(&"UPSTREAM_UNAVAILABLE".to_owned()),
            "{impatient}"
        );
    }
    tokio::time::sleep(Duration::from_millis(5000)).await;
    assert_eq!(
        api_calls(&sim) - calls,
        2,
        "one read: the notes' links, then the notes they name"
    );
    let after = app.gql_ok(query, json!({})).await;
    let notes = &after["contacts"]["nodes"][0]["salesforce"]["notes"];
    assert_eq!(notes[0]["title"], "Prefers email", "{after}");
    assert_eq!(api_calls(&sim) - calls, 2, "what it read is kept");
}

#[tokio::test]
async fn requests_that_waited_for_another_ones_read_get_what_it_read_however_short_the_cache() {
    let (app, sim, _) = with_activity(|s| {
        s.graphql.panel_cache_secs = 0;
        s.graphql.panel_timeout_ms = 5000;
    })
    .await;
    let query = "{ contacts(first: 5) { nodes { salesforce { stale notes { title } } } } }";
    sim.set_latency(Duration::from_millis(500));
    let calls = api_calls(&sim);
    let asked = (0..3).map(|_| app.gql(query, json!({})));
    for answer in futures_util::future::join_all(asked).await {
        let panel = &answer["data"]["contacts"]["nodes"][0]["salesforce"];
        assert_eq!(panel["stale"], false, "{answer}");
        assert_eq!(panel["notes"][0]["title"], "Prefers email", "{answer}");
    }
    assert_eq!(api_calls(&sim) - calls, 2, "one read for the three");
}

#[tokio::test]
async fn a_list_shows_its_newest_hundred_however_many_salesforce_holds() {
    let (app, sim, contact) = linked().await;
    let account = sim.get("Contact", &contact).unwrap()["AccountId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The account's calls fill a page of the query both lists share; the contact's, older,
    // are not in it.
    let day = |n: usize| {
        (chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(n as u64))
            .to_string()
    };
    for n in 0..2_100 {
        sim.insert(
            "Task",
            json!({ "Subject": format!("Call {n}"), "ActivityDate": day(n), "WhatId": account }),
        )
        .unwrap();
    }
    for n in 0..3 {
        sim.insert(
            "Task",
            json!({ "Subject": format!("Old {n}"), "ActivityDate": format!("2020-01-0{}", n + 1), "WhoId": contact }),
        )
        .unwrap();
    }
    sim.insert("Task", json!({ "Subject": "Someday", "WhatId": account }))
        .unwrap();
    let calls = api_calls(&sim);
    let body = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { lastName salesforce { tasks { subject dueDate } account { tasks(first: 100) { subject dueDate } } } } } }",
            json!({}),
        )
        .await;
    let panel = &by_name(&body, "Paneled")["salesforce"];
    let subjects = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|t| t["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(subjects(&panel["tasks"]), ["Old 2", "Old 1", "Old 0"]);
    let account_tasks = subjects(&panel["account"]["tasks"]);
    assert_eq!(account_tasks.len(), 100, "the newest hundred");
    assert_eq!(account_tasks[0], "Call 2099");
    assert_eq!(account_tasks[99], "Call 2000");
    assert_eq!(
        api_calls(&sim) - calls,
        2,
        "the shared page, then the contact's own list"
    );
    // Unless told, a list shows its ten newest, from what was read: no call more.
    let calls = api_calls(&sim);
    let body = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { lastName salesforce { account { tasks { subject } } } } } }",
            json!({}),
        )
        .await;
    let shown = subjects(&by_name(&body, "Paneled")["salesforce"]["account"]["tasks"]);
    assert_eq!(shown.len(), 10);
    assert_eq!(shown[9], "Call 2090");
    assert_eq!(api_calls(&sim), calls);
    for first in [-1, 101] {
        let body = app
            .gql(
                "query($n: Int) { contacts(first: 10) { nodes { salesforce { account { tasks(first: $n) { subject } } } } } }",
                json!({ "n": first }),
            )
            .await;
        let errors = body["errors"].as_array().unwrap();
        assert!(!errors.is_empty(), "{body}");
        assert!(
            errors
                .iter()
                .all(|e| e["extensions"]["code"] == "BAD_USER_INPUT"
                    && e["extensions"]["field"] == "first"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_contact_with_several_roles_in_an_opportunity_sees_it_once_with_each_role() {
    let (app, sim, contact) = with_activity(|_| {}).await;
    let renewal = opportunity_named(&sim, "Renewal");
    for role in ["Influencer", "Decision Maker"] {
        sim.insert(
            "OpportunityContactRole",
            json!({ "OpportunityId": renewal, "ContactId": contact, "Role": role }),
        )
        .unwrap();
    }
    let body = app
        .gql_ok(
            "{ contacts(first: 5) { nodes { salesforce { opportunities(status: ALL) { id name role } } } } }",
            json!({}),
        )
        .await;
    let listed = &body["contacts"]["nodes"][0]["salesforce"]["opportunities"];
    assert_eq!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["name"].as_str().unwrap(), o["role"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        vec![
            ("Renewal", "Decision Maker, Influencer"),
            ("Pilot", "Decision Maker")
        ],
        "{listed}"
    );
}

/// A contact "Busy" with `rows` roles on one open opportunity, "Big", closing in 2027:
/// rows that fill the page of a query other contacts share. Its id.
fn busy_on_big(sim: &SimHandle, rows: usize) -> String {
    let busy = sim
        .insert(
            "Contact",
            json!({ "LastName": "Busy", "Email": "busy@example.com" }),
        )
        .unwrap();
    let big = sim
        .insert(
            "Opportunity",
            json!({ "Name": "Big", "StageName": "Prospecting", "CloseDate": "2027-06-01" }),
        )
        .unwrap();
    for _ in 0..rows {
        sim.insert(
            "OpportunityContactRole",
            json!({ "OpportunityId": big, "ContactId": busy }),
        )
        .unwrap();
    }
    busy
}

#[tokio::test]
async fn an_opportunity_read_again_after_a_full_page_is_listed_once() {
    let (app, sim, contact) = linked().await;
    // Another contact's roles, older than this one's open opportunity and newer than its
    // closed one, fill the page of the query both contacts share.
    let busy = busy_on_big(&sim, 2_000);
    for (name, stage, close, whose) in [
        ("Fresh", "Prospecting", "2030-01-01", &contact),
        ("Won", "Closed Won", "2019-01-01", &contact),
        ("Old win", "Closed Won", "2018-01-01", &busy),
    ] {
        let opp = sim
            .insert(
                "Opportunity",
                json!({ "Name": name, "StageName": stage, "CloseDate": close }),
            )
            .unwrap();
        sim.insert(
            "OpportunityContactRole",
            json!({ "OpportunityId": opp, "ContactId": whose }),
        )
        .unwrap();
    }
    app.sync_now().await;
    let calls = api_calls(&sim);
    let body = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { lastName salesforce { opportunities(status: ALL) { name } closed: opportunities(status: CLOSED) { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        by_name(&body, "Paneled")["salesforce"]["opportunities"],
        json!([{ "name": "Fresh" }, { "name": "Won" }]),
        "read in the full page and again on its own, each is listed once"
    );
    assert_eq!(
        by_name(&body, "Busy")["salesforce"]["closed"],
        json!([{ "name": "Old win" }]),
        "behind two hundred open ones, read on its own"
    );
    assert_eq!(
        by_name(&body, "Busy")["salesforce"]["opportunities"],
        json!([{ "name": "Big" }, { "name": "Old win" }]),
        "two thousand roles in one opportunity list it once"
    );
    assert_eq!(
        api_calls(&sim) - calls,
        3,
        "the shared page; each contact's list on its own; Busy's closed ones"
    );
}

#[tokio::test]
async fn a_contact_in_two_roles_on_each_opportunity_still_sees_its_older_ones() {
    let (app, sim, contact) = linked().await;
    // Another contact's roles, newer than all of this one's, fill most of the page the
    // contacts' query shares.
    busy_on_big(&sim, 1_760);
    // A hundred and twenty rows of this contact's open opportunities and as many of its
    // closed ones fill the rest: sixty of each, in two roles each. Its oldest open one is
    // left off the page.
    for n in 0..120 {
        let (stage, month) = if n < 60 {
            ("Prospecting", 1 + n / 28)
        } else {
            ("Closed Won", 7 + (n - 60) / 28)
        };
        let deal = sim
            .insert(
                "Opportunity",
                json!({ "Name": format!("Deal {n}"), "StageName": stage, "CloseDate": format!("2026-{month:02}-{:02}", 1 + n % 28) }),
            )
            .unwrap();
        for role in ["Influencer", "Decision Maker"] {
            sim.insert(
                "OpportunityContactRole",
                json!({ "OpportunityId": deal, "ContactId": contact, "Role": role }),
            )
            .unwrap();
        }
    }
    let small = sim
        .insert(
            "Opportunity",
            json!({ "Name": "Small", "StageName": "Prospecting", "CloseDate": "2025-01-01" }),
        )
        .unwrap();
    sim.insert(
        "OpportunityContactRole",
        json!({ "OpportunityId": small, "ContactId": contact }),
    )
    .unwrap();
    app.sync_now().await;
    let body = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { lastName salesforce { opportunities(first: 100) { name } } } } }",
            json!({}),
        )
        .await;
    // Open ones only, the newest first.
    let listed: Vec<&str> = by_name(&body, "Paneled")["salesforce"]["opportunities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 61, "{listed:?}");
    assert_eq!(listed.last(), Some(&"Small"), "{listed:?}");
}

#[tokio::test]
async fn a_panel_whose_every_field_asked_is_denied_stands_with_each_field_null() {
    let (app, _sim, _) = linked().await;
    // The only field asked of the panel is one Light Agent may not read: the panel is still
    // there (the contact has a twin), its field null with the refusal.
    let body = app
        .gql_as(
            "Light Agent",
            "{ contacts(first: 1) { nodes { lastName salesforce { opportunities(status: ALL) { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
    assert_eq!(
        body["data"]["contacts"]["nodes"][0],
        json!({ "lastName": "Paneled", "salesforce": { "opportunities": null } }),
        "{body}"
    );
    // Nothing but the panel asked of the contact: the contact stands too, in its non-null
    // place in the list.
    let body = app
        .gql_as(
            "Light Agent",
            "{ contacts(first: 1) { nodes { salesforce { opportunities(status: ALL) { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["contacts"]["nodes"][0],
        json!({ "salesforce": { "opportunities": null } }),
        "{body}"
    );
    // Asked for twice, once through a fragment with only the denied field: whatever stands
    // for the panel holds every field asked of it that may not be null.
    for query in [
        "{ contacts(first: 1) { nodes { ...Denied salesforce { id } } } } fragment Denied on Contact { salesforce { opportunities(status: ALL) { name } } }",
        "{ contacts(first: 1) { nodes { salesforce { id } ...Denied } } } fragment Denied on Contact { salesforce { opportunities(status: ALL) { name } } }",
    ] {
        let body = app.gql_as("Light Agent", query, json!({})).await;
        let panel = &body["data"]["contacts"]["nodes"][0]["salesforce"];
        assert!(panel.is_null() || panel["id"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn parents_a_full_page_left_short_are_read_again_together_in_few_queries() {
    let (app, sim, _) = linked_with(|s| s.graphql.panel_timeout_ms = 3_300).await;
    let busy = sim
        .insert(
            "Contact",
            json!({ "LastName": "Logger", "Email": "logger@example.com" }),
        )
        .unwrap();
    // Email logging gives one contact more tasks than a page holds, all newer than the
    // others' one each.
    for n in 0..2_100 {
        sim.insert(
            "Task",
            json!({ "Subject": format!("Logged {n}"), "ActivityDate": "2026-11-01", "WhoId": busy }),
        )
        .unwrap();
    }
    for n in 0..30 {
        let quiet = sim
            .insert(
                "Contact",
                json!({ "LastName": format!("Quiet {n:02}"), "Email": format!("quiet{n}@example.com") }),
            )
            .unwrap();
        sim.insert(
            "Task",
            json!({ "Subject": format!("Call {n}"), "ActivityDate": "2025-01-01", "WhoId": quiet }),
        )
        .unwrap();
    }
    app.sync_now().await;
    // The others are read again twenty to a query (a page holds a hundred tasks of each), in
    // one call beside the first: one by one, five to a call, they would take eight calls.
    sim.set_latency(std::time::Duration::from_millis(600));
    let before = api_calls(&sim);
    let body = app
        .gql(
            "{ contacts(first: 40) { nodes { lastName salesforce { tasks { subject } } } } }",
            json!({}),
        )
        .await;
    sim.set_latency(std::time::Duration::ZERO);
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(api_calls(&sim) - before, 2, "{body}");
    assert_eq!(
        by_name(&body["data"], "Quiet 07")["salesforce"]["tasks"],
        json!([{ "subject": "Call 7" }]),
        "{body}"
    );
    assert_eq!(
        by_name(&body["data"], "Logger")["salesforce"]["tasks"]
            .as_array()
            .map(Vec::len),
        Some(10),
        "its newest ten, as a list shows unless asked for more"
    );
}

#[tokio::test]
async fn notes_filling_a_page_are_read_whole_and_not_again() {
    let (app, sim, contact) = linked().await;
    let account = sim.get("Contact", &contact).unwrap()["AccountId"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..1_999 {
        sim.insert(
            "Note",
            json!({ "Title": format!("Account note {n}"), "ParentId": account }),
        )
        .unwrap();
    }
    sim.insert(
        "Note",
        json!({ "Title": "Contact note", "ParentId": contact }),
    )
    .unwrap();
    let calls = api_calls(&sim);
    let body = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { lastName salesforce { notes { title } account { notes(first: 100) { title } } } } } }",
            json!({}),
        )
        .await;
    let panel = &by_name(&body, "Paneled")["salesforce"];
    assert_eq!(panel["notes"], json!([{ "title": "Contact note" }]));
    assert_eq!(panel["account"]["notes"].as_array().unwrap().len(), 100);
    assert_eq!(
        api_calls(&sim) - calls,
        1,
        "a page of notes is the whole answer: no parent is read again"
    );
}

#[tokio::test]
async fn closed_opportunities_show_though_a_hundred_open_ones_close_later() {
    let (app, sim, contact) = linked().await;
    let account = sim.get("Contact", &contact).unwrap()["AccountId"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..120 {
        sim.insert(
            "Opportunity",
            json!({ "Name": format!("Open {n}"), "StageName": "Prospecting", "CloseDate": format!("2030-01-{:02}", n % 28 + 1), "AccountId": account }),
        )
        .unwrap();
    }
    for (name, close) in [("Won", "2020-03-01"), ("Lost", "2020-02-01")] {
        sim.insert(
            "Opportunity",
            json!({ "Name": name, "StageName": if name == "Won" { "Closed Won" } else { "Closed Lost" }, "CloseDate": close, "AccountId": account }),
        )
        .unwrap();
    }
    let body = app
        .gql_ok(
            "{ contacts(first: 10) { nodes { lastName salesforce { account { closed: opportunities(status: CLOSED) { name } open: opportunities(status: OPEN, first: 100) { name } all: opportunities(status: ALL, first: 100) { closed } } } } } }",
            json!({}),
        )
        .await;
    let account = &by_name(&body, "Paneled")["salesforce"]["account"];
    assert_eq!(
        account["closed"],
        json!([{ "name": "Won" }, { "name": "Lost" }])
    );
    assert_eq!(account["open"].as_array().unwrap().len(), 100);
    let all = account["all"].as_array().unwrap();
    assert_eq!(all.len(), 100, "the hundred latest of either status");
    assert!(all.iter().all(|o| o["closed"] == false), "{all:?}");
}

#[tokio::test]
async fn a_note_however_old_can_be_opened_by_its_id() {
    let (app, sim, contact) = linked().await;
    let oldest = sim
        .insert(
            "Note",
            json!({ "Title": "First call", "Body": "Long ago", "ParentId": contact }),
        )
        .unwrap();
    for n in 0..150 {
        sim.insert(
            "Note",
            json!({ "Title": format!("Call {n}"), "Body": "Later", "ParentId": contact }),
        )
        .unwrap();
    }
    let body = app
        .gql_ok(
            "query($ids: [ID!]) { contacts(first: 10) { nodes { lastName salesforce { notes(ids: $ids) { title body } } } } }",
            json!({ "ids": [oldest] }),
        )
        .await;
    assert_eq!(
        by_name(&body, "Paneled")["salesforce"]["notes"],
        json!([{ "title": "First call", "body": "Long ago" }])
    );
    // The 15-character id a Classic URL shows finds it too; what is no id is refused.
    let query = "query($ids: [ID!]) { contacts(first: 10) { nodes { lastName salesforce { notes(ids: $ids) { title } } } } }";
    let body = app
        .gql_ok(query, json!({ "ids": [&oldest.as_str()[..15]] }))
        .await;
    assert_eq!(
        by_name(&body, "Paneled")["salesforce"]["notes"],
        json!([{ "title": "First call" }])
    );
    let body = app
        .gql(query, json!({ "ids": [&oldest, "not-an-id"] }))
        .await;
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(error["extensions"]["field"], "ids[1]", "{body}");
}

#[tokio::test]
async fn a_two_way_panel_shows_what_salesforce_holds_not_a_desk_edit_it_has_not_taken() {
    let (app, sim) = crate::integration::started(|_| {}).await;
    let contact = sim
        .insert(
            "Contact",
            json!({ "LastName": "Paneled", "Email": "paneled@example.com", "Title": "Buyer" }),
        )
        .unwrap();
    app.sync_now().await;
    let id = desk_id_of(&app, "Paneled").await;
    let title = || async {
        let body = app.gql_fresh("Administrator", PANELS, json!({})).await;
        by_name(&body["data"], "Paneled")["salesforce"]["fields"]["Title"].clone()
    };
    let edit = |title: &'static str| {
        let (app, id) = (&app, id.clone());
        async move {
            app.gql_ok(
                "mutation($id: ID!, $t: String) { updateContact(id: $id, patch: { title: $t }) { id } }",
                json!({ "id": id, "t": title }),
            )
            .await;
        }
    };

    // Paused, the edit waits in the desk: Salesforce still says Buyer.
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    edit("Head Buyer").await;
    assert_eq!(title().await, "Buyer");
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    app.sync_now().await;
    assert_eq!(sim.get("Contact", &contact).unwrap()["Title"], "Head Buyer");
    assert_eq!(title().await, "Head Buyer", "sent: Salesforce has it now");

    // Refused by Salesforce, the edit is not what it holds.
    edit("Chief Buyer").await;
    sim.reject_next_records(&[("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Title: not allowed")]);
    app.sync_now().await;
    assert_eq!(sim.get("Contact", &contact).unwrap()["Title"], "Head Buyer");
    assert_eq!(title().await, "Head Buyer");
}
