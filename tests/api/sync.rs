//! The sync engine against the simulator: each rule of the product page as a test.

use salesforce_sim::{SimConfig, SimHandle};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, without_desk_id_fields, writes_since};
use crate::integration::connect;

/// A desk and an org, connected, with the first sync started but not yet run.
async fn connected() -> (TestApp, SimHandle) {
    crate::integration::started(|_| {}).await
}

async fn contacts(app: &TestApp) -> Vec<Value> {
    let data = app
        .gql_ok("{ contacts(first: 100) { nodes { id firstName lastName email title account { name } } } }", json!({}))
        .await;
    data["contacts"]["nodes"].as_array().unwrap().clone()
}

fn by_last_name<'a>(list: &'a [Value], last: &str) -> Vec<&'a Value> {
    list.iter().filter(|c| c["lastName"] == last).collect()
}

/// The org's contacts, each as `(LastName, Email, Title)`.
fn org_contacts(sim: &SimHandle, app_ids: &[String]) -> Vec<Value> {
    app_ids
        .iter()
        .filter_map(|id| sim.get("Contact", id))
        .collect()
}

/// Moves a desk contact to the recycle bin.
async fn bin_contact(app: &TestApp, id: &Value) {
    app.gql_ok(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
}

/// The desk contact `id`, as these `fields` of it read.
async fn desk_contact(app: &TestApp, id: &Value, fields: &str) -> Value {
    let read = format!("query($id: ID!) {{ contact(id: $id) {{ {fields} }} }}");
    app.gql_ok(&read, json!({ "id": id })).await["contact"].clone()
}

async fn update_contact(app: &TestApp, id: &Value, patch: Value) {
    app.gql_ok(
        "mutation($id: ID!, $p: ContactPatchInput!) { updateContact(id: $id, patch: $p) { id } }",
        json!({ "id": id, "p": patch }),
    )
    .await;
}

/// The Salesforce id the sync linked a desk contact to.
async fn salesforce_id_of(app: &TestApp, desk_id: &Value) -> String {
    let id: i64 = desk_id.as_str().unwrap().parse().unwrap();
    let links = app
        .store
        .links_by_desk(tandem::domain::Module::Contacts, &[id])
        .await
        .unwrap();
    links
        .get(&id)
        .expect("the contact is linked")
        .salesforce_id
        .clone()
}

#[tokio::test]
async fn a_contact_met_by_email_keeps_the_desk_account_salesforce_gives_it_none_of() {
    let (app, sim) = connected().await;
    let desk_acme = app.create_account("Acme").await;
    let desk_ada = app
        .create_contact(
            json!({ "lastName": "Lovelace", "email": "ada@example.com", "accountId": desk_acme["id"] }),
        )
        .await;
    // Salesforce has both, Ada in no account, and changed them last.
    sim.advance_clock(60);
    let sf_acme = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    let sf_ada = sim
        .insert(
            "Contact",
            json!({ "LastName": "Lovelace", "Email": "ada@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    assert_eq!(salesforce_id_of(&app, &desk_ada["id"]).await, sf_ada);
    let ada = by_last_name(&contacts(&app).await, "Lovelace")[0].clone();
    assert_eq!(
        ada["account"]["name"], "Acme",
        "no account is no edit: the desk's stays: {ada}"
    );
    app.sync_now().await;
    assert_eq!(
        sim.get("Contact", &sf_ada).unwrap()["AccountId"],
        json!(sf_acme),
        "and Salesforce's contact joins it"
    );
    // A later desk edit leaves her there.
    update_contact(
        &app,
        &desk_ada["id"],
        json!({ "phone": "+44 20 7946 0000" }),
    )
    .await;
    app.sync_now().await;
    let sf = sim.get("Contact", &sf_ada).unwrap();
    assert_eq!(
        (&sf["AccountId"], &sf["Phone"]),
        (&json!(sf_acme), &json!("+44 20 7946 0000")),
        "{sf}"
    );
}

#[tokio::test]
async fn the_first_sync_imports_exports_and_matches_by_email_and_name() {
    let (app, sim) = connected().await;
    let desk_acme = app.create_account("ACME").await;
    app.create_contact(json!({ "lastName": "Lovelace", "email": " ADA@example.com " }))
        .await;
    app.create_contact(
        json!({ "lastName": "Hopper", "email": "grace@example.com", "accountId": desk_acme["id"] }),
    )
    .await;
    app.create_contact(json!({ "lastName": "NoMail" })).await;
    sim.advance_clock(60);
    let acme = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    sim.insert("Contact", json!({ "FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com", "AccountId": acme })).unwrap();
    sim.insert(
        "Contact",
        json!({ "LastName": "Babbage", "Email": "charles@example.com" }),
    )
    .unwrap();
    sim.insert("Contact", json!({ "LastName": "NoMail" }))
        .unwrap();

    let report = app.sync_now().await;
    assert_eq!(report.idle, None);

    let desk = contacts(&app).await;
    assert_eq!(
        desk.len(),
        5,
        "Babbage and the org's NoMail came in; Ada matched: {desk:#?}"
    );
    assert_eq!(
        by_last_name(&desk, "Lovelace").len(),
        1,
        "matched by email, not duplicated"
    );
    assert_eq!(
        by_last_name(&desk, "NoMail").len(),
        2,
        "contacts without email are never matched"
    );
    let ada = by_last_name(&desk, "Lovelace")[0];
    assert_eq!(
        ada["firstName"], "Ada",
        "Salesforce changed last, so its values won"
    );
    assert_eq!(
        ada["account"]["name"], "Acme",
        "the account link came along, with Salesforce's newer name"
    );
    assert_eq!(
        sim.count("Contact"),
        5,
        "Hopper and the desk's NoMail went out"
    );
    assert_eq!(sim.count("Account"), 1, "accounts matched by name");
    let state = app
        .gql_ok("{ integration { firstSync lastSyncAt } }", json!({}))
        .await;
    assert_eq!(state["integration"]["firstSync"], "DONE");

    let hopper = by_last_name(&desk, "Hopper")[0];
    let sf = sim
        .get("Contact", &salesforce_id_of(&app, &hopper["id"]).await)
        .unwrap();
    assert_eq!(sf["Email"], "grace@example.com");
    assert_eq!(
        sf["AccountId"], acme,
        "exported contacts point at the linked account"
    );
}

#[tokio::test]
async fn after_quiescence_a_round_writes_nothing_on_either_side() {
    let (app, sim) = connected().await;
    for n in 0..5 {
        sim.insert(
            "Contact",
            json!({ "LastName": format!("Org{n}"), "Email": format!("org{n}@example.com") }),
        )
        .unwrap();
        app.create_contact(
            json!({ "lastName": format!("Desk{n}"), "email": format!("desk{n}@example.com") }),
        )
        .await;
    }
    app.sync_now().await;
    app.sync_now().await;
    let mark = sim.request_count();
    let mut desk_events = app.store.subscribe();
    let report = app.sync_now().await;
    assert_eq!(
        writes_since(&sim, mark),
        Vec::<String>::new(),
        "no Salesforce writes"
    );
    assert!(desk_events.try_recv().is_err(), "no desk writes");
    assert_eq!(
        (
            report.pulled.added,
            report.pulled.updated,
            report.pushed.added,
            report.pushed.updated
        ),
        (0, 0, 0, 0)
    );
}

#[tokio::test]
async fn an_address_salesforce_keeps_in_lower_case_is_no_edit_on_either_side() {
    let (app, sim) = connected().await;
    let contact = app
        .create_contact(json!({ "lastName": "Lovelace", "email": "Ada.Lovelace@Example.COM" }))
        .await;
    app.sync_now().await;
    let sf_id = salesforce_id_of(&app, &contact["id"]).await;
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Email"],
        "ada.lovelace@example.com",
        "Salesforce keeps it in lower case"
    );

    let mark = sim.request_count();
    let mut desk_events = app.store.subscribe();
    let report = app.sync_now().await;
    assert!(
        desk_events.try_recv().is_err(),
        "no desk writes: {report:?}"
    );
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
    assert_eq!(
        by_last_name(&contacts(&app).await, "Lovelace")[0]["email"],
        "Ada.Lovelace@Example.COM",
        "the desk keeps the address as typed"
    );

    // Typed again in another case, it has nothing new to send.
    update_contact(
        &app,
        &contact["id"],
        json!({ "email": "ada.lovelace@EXAMPLE.com" }),
    )
    .await;
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());

    // A Salesforce edit of another field brings that field, and leaves the address as the
    // desk spells it.
    sim.update("Contact", &sf_id, json!({ "Title": "Countess" }))
        .unwrap();
    app.sync_now().await;
    let read = by_last_name(&contacts(&app).await, "Lovelace")[0].clone();
    assert_eq!(
        (&read["title"], &read["email"]),
        (&json!("Countess"), &json!("ada.lovelace@EXAMPLE.com"))
    );
    // A new address in Salesforce is one.
    sim.update("Contact", &sf_id, json!({ "Email": "ada@example.org" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Lovelace")[0]["email"],
        "ada@example.org"
    );
}

#[tokio::test]
async fn once_its_overlap_has_passed_a_quiet_poll_reads_nothing_again() {
    use tandem::domain::Module;
    let (app, sim) = crate::integration::started(|s| s.sync.poll_overlap_secs = 1).await;
    // A burst of changes within the overlap, more than a query page of them.
    for n in 0..2_100 {
        sim.insert("Contact", json!({ "LastName": format!("Burst{n}") }))
            .unwrap();
    }
    app.sync_now().await;
    assert_eq!(app.store.link_count(Module::Contacts).await.unwrap(), 2_100);
    // Past the second the burst was stamped in, which the first query began in too: the
    // next poll's cursor moves to the burst's last record.
    sim.advance_clock(2);
    let next_pages = || {
        sim.requests()
            .iter()
            .filter(|r| r.path.contains("/query/"))
            .count()
    };
    let before = next_pages();
    app.sync_now().await;
    assert!(
        next_pages() > before,
        "within the overlap a poll reads the burst again, for commits that come late"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    // Read once more, an overlap after it was seen: nothing stamped within it can still come.
    app.sync_now().await;
    let settled = next_pages();
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(next_pages(), settled, "quiet polls read nothing again");

    sim.insert("Contact", json!({ "LastName": "Later" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        app.store.link_count(Module::Contacts).await.unwrap(),
        2_101,
        "what changes later still arrives"
    );
}

#[tokio::test]
async fn changes_flow_both_ways_after_the_first_sync() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Turing", "Email": "alan@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Turing")[0]["id"].clone();

    update_contact(&app, &desk_id, json!({ "title": "Cryptanalyst" })).await;
    app.sync_now().await;
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Cryptanalyst",
        "desk → Salesforce"
    );

    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "Mathematician" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Turing")[0]["title"],
        "Mathematician",
        "Salesforce → desk"
    );
}

#[tokio::test]
async fn a_salesforce_edit_within_the_second_of_the_one_read_before_is_still_an_edit() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com", "Title": "Rear Admiral" }),
        )
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Hopper")[0]["title"],
        "Rear Admiral"
    );
    // Saved again within the same second, the record keeps its SystemModstamp; the next
    // poll reads it in the overlap window.
    sim.update_within_the_same_second("Contact", &sf_id, json!({ "Title": null }))
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pulled.updated, 1, "{report:?}");
    assert!(
        by_last_name(&contacts(&app).await, "Hopper")[0]["title"].is_null(),
        "the title Salesforce cleared is cleared in the desk"
    );
    assert!(
        sim.get("Contact", &sf_id).unwrap()["Title"].is_null(),
        "and not sent back"
    );
}

#[tokio::test]
async fn a_mass_update_goes_out_in_one_collection_call() {
    let (app, sim) = connected().await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(
            app.create_contact(json!({ "lastName": format!("Mass{n}") }))
                .await["id"]
                .clone(),
        );
    }
    app.sync_now().await;
    let mark = sim.request_count();
    app.gql_ok(
        "mutation($ids: [ID!]!) { massUpdateContacts(ids: $ids, patch: { title: \"VIP\" }) { id } }",
        json!({ "ids": ids }),
    )
    .await;
    app.sync_now().await;
    let writes = writes_since(&sim, mark);
    assert_eq!(writes.len(), 1, "{writes:?}");
    let linked: Vec<String> =
        futures_util::future::join_all(ids.iter().map(|id| salesforce_id_of(&app, id))).await;
    assert!(
        org_contacts(&sim, &linked)
            .iter()
            .all(|c| c["Title"] == "VIP")
    );
}

#[tokio::test]
async fn in_one_way_mode_salesforce_wins_and_desk_edits_stay_in_the_desk() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Knuth", "Title": "Professor" }),
        )
        .unwrap();
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Knuth")[0]["id"].clone();
    app.create_contact(json!({ "lastName": "DeskOnly" })).await;

    update_contact(&app, &desk_id, json!({ "title": "Emeritus" })).await;
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(
        writes_since(&sim, mark),
        Vec::<String>::new(),
        "nothing is pushed"
    );
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Professor");
    assert_eq!(
        sim.count("Contact"),
        1,
        "desk-only records stay in the desk"
    );

    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "Author" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Knuth")[0]["title"],
        "Author"
    );
}

#[tokio::test]
async fn desk_edits_made_one_way_wait_and_go_out_when_the_sync_turns_two_way() {
    let (app, sim) = connected().await;
    let knuth = sim
        .insert(
            "Contact",
            json!({ "LastName": "Knuth", "Title": "Professor" }),
        )
        .unwrap();
    let hoare = sim
        .insert("Contact", json!({ "LastName": "Hoare", "Title": "Sir" }))
        .unwrap();
    app.sync_now().await;
    let desk = contacts(&app).await;
    let (knuth_desk, hoare_desk) = (
        by_last_name(&desk, "Knuth")[0]["id"].clone(),
        by_last_name(&desk, "Hoare")[0]["id"].clone(),
    );
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    for title in ["Reader", "Emeritus reader", "Emeritus"] {
        update_contact(&app, &knuth_desk, json!({ "title": title })).await;
    }
    update_contact(&app, &hoare_desk, json!({ "title": "Turing Award" })).await;
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "one way");
    assert_eq!(
        app.store.outbox_len().await.unwrap(),
        2,
        "each record waits once, however often it was edited"
    );
    // Salesforce changes Hoare after the desk did: it wins, one way as two.
    sim.advance_clock(5);
    sim.update("Contact", &hoare, json!({ "Title": "Professor Emeritus" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Hoare")[0]["title"],
        "Professor Emeritus"
    );
    // A new mapping reads every record again: no Salesforce update, so Knuth's local edit
    // stays, and still waits.
    app.map_field("CONTACTS", "mailingCity", "Department").await;
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Knuth")[0]["title"],
        "Emeritus"
    );
    assert_eq!(app.store.outbox_len().await.unwrap(), 1);

    app.set_sync_type("TWO_WAY").await;
    app.sync_now().await;
    assert_eq!(
        sim.get("Contact", &knuth).unwrap()["Title"],
        "Emeritus",
        "the desk's edit was the newest"
    );
    assert_eq!(
        sim.get("Contact", &hoare).unwrap()["Title"],
        "Professor Emeritus",
        "Salesforce's was"
    );
    assert_eq!(app.store.outbox_len().await.unwrap(), 0);
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
}

/// Liskov, synced; then edited in the desk ("Desk first"), and a minute later in Salesforce
/// (`later`). Its Salesforce id.
async fn edited_in_the_desk_then_in_salesforce(
    app: &TestApp,
    sim: &SimHandle,
    later: Value,
) -> String {
    let sf_id = sim
        .insert("Contact", json!({ "LastName": "Liskov", "Title": "Start" }))
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(app).await, "Liskov")[0]["id"].clone();
    update_contact(app, &desk_id, json!({ "title": "Desk first" })).await;
    sim.advance_clock(60);
    sim.update("Contact", &sf_id, later).unwrap();
    sf_id
}

#[tokio::test]
async fn desk_edits_made_before_the_first_sync_start_no_round_until_it_does() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sim, "tandem").await;
    app.create_contact(json!({ "lastName": "Early" })).await;
    assert!(
        !app.engine.has_changes_to_send().await,
        "connected, not started: a desk edit wakes nothing"
    );
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    assert!(app.engine.has_changes_to_send().await);
    app.sync_now().await;
    assert_eq!(sim.records("Contact")[0]["LastName"], "Early");
}

#[tokio::test]
async fn in_two_way_mode_the_most_recent_change_wins() {
    let (app, sim) = connected().await;
    let sf_id =
        edited_in_the_desk_then_in_salesforce(&app, &sim, json!({ "Title": "Salesforce later" }))
            .await;
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Liskov")[0]["title"],
        "Salesforce later"
    );
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Salesforce later",
        "the older desk edit is not pushed"
    );
}

#[tokio::test]
async fn a_newer_salesforce_edit_the_desk_cannot_take_yet_is_not_written_over_by_an_older_desk_edit()
 {
    let (app, sim) = connected().await;
    // The desk refuses this account (a negative head count), so it is never linked.
    let refused = sim
        .insert(
            "Account",
            json!({ "Name": "Refused", "NumberOfEmployees": -5 }),
        )
        .unwrap();
    // Later, in Salesforce: a new title, and an account the contact must wait for.
    let sf_id = edited_in_the_desk_then_in_salesforce(
        &app,
        &sim,
        json!({ "Title": "Salesforce later", "AccountId": refused }),
    )
    .await;
    app.sync_now().await;
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Salesforce later",
        "the older desk edit is not pushed over it"
    );
    let waiting = app
        .gql_ok(
            "{ syncFailures(reason: ACCOUNT_NOT_SYNCED) { nodes { salesforceId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        waiting["syncFailures"]["nodes"][0]["salesforceId"],
        sf_id.as_str()
    );
    // Held, the edit neither starts rounds nor spends the pull's retries: another round
    // sends nothing and leaves the failure at its first attempt.
    assert!(!app.engine.has_changes_to_send().await);
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
    let attempts = app
        .gql_ok(
            "{ syncFailures(reason: ACCOUNT_NOT_SYNCED) { nodes { attempts } } }",
            json!({}),
        )
        .await;
    assert_eq!(attempts["syncFailures"]["nodes"][0]["attempts"], 1);

    // The account fixed in Salesforce, the contact comes with it, its newer title too.
    sim.advance_clock(5);
    sim.update("Account", &refused, json!({ "NumberOfEmployees": 5 }))
        .unwrap();
    app.sync_now().await;
    app.sync_now().await;
    let desk = by_last_name(&contacts(&app).await, "Liskov")[0].clone();
    assert_eq!(desk["title"], "Salesforce later", "{desk}");
    assert_eq!(desk["account"]["name"], "Refused", "{desk}");
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Salesforce later"
    );
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(
        writes_since(&sim, mark),
        Vec::<String>::new(),
        "settled, nothing more goes"
    );
}

#[tokio::test]
async fn a_first_meeting_won_by_the_desk_is_counted_once_as_the_update_sent() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com", "Title": "Older" }),
        )
        .unwrap();
    // Salesforce stamps whole seconds: the desk record is made a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    app.create_contact(
        json!({ "lastName": "Hopper", "email": "grace@example.com", "title": "Newer" }),
    )
    .await;
    let report = app.sync_now().await;
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Newer");
    assert_eq!(
        (report.pulled.updated, report.pushed.updated),
        (0, 1),
        "the desk changed nothing but Salesforce's record: {report:?}"
    );
}

#[tokio::test]
async fn a_first_meeting_won_by_the_desk_blanks_nothing_salesforce_holds() {
    let (app, sim) = connected().await;
    let acme = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    app.sync_now().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com", "Title": "Rear Admiral", "Phone": "+1 555 0100", "AccountId": acme }),
        )
        .unwrap();
    // A contact a ticket made, later: a name, an email and a mobile number.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    app.create_contact(
        json!({ "lastName": "Hopper", "email": "GRACE@example.com", "mobile": "+1 555 0199" }),
    )
    .await;
    app.sync_now().await;

    let sf = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(
        (&sf["Title"], &sf["Phone"], &sf["AccountId"]),
        (&json!("Rear Admiral"), &json!("+1 555 0100"), &json!(acme)),
        "what the desk left blank stays: {sf}"
    );
    assert_eq!(sf["MobilePhone"], "+1 555 0199", "what it holds goes out");
    let desk = contacts(&app).await;
    let hopper = by_last_name(&desk, "Hopper");
    assert_eq!(hopper.len(), 1, "{desk:#?}");
    assert_eq!(hopper[0]["title"], "Rear Admiral", "and the desk takes it");
    assert_eq!(hopper[0]["account"]["name"], "Acme");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
}

/// A desk contact made with a title, a phone and an account meets a Salesforce twin saved
/// later, with another title, no phone and no account.
async fn a_first_meeting_won_by_salesforce(sync_type: &str) -> (TestApp, SimHandle, String) {
    let (app, sim) = connected().await;
    app.set_sync_type(sync_type).await;
    let acme = app.create_account("Acme").await;
    app.create_contact(json!({ "lastName": "Hopper", "email": "grace@example.com", "title": "Commodore", "phone": "+1 555 0100", "accountId": acme["id"] }))
        .await;
    sim.advance_clock(60);
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com", "Title": "Rear Admiral" }),
        )
        .unwrap();
    app.sync_now().await;
    (app, sim, sf_id)
}

async fn hopper_in_the_desk(app: &TestApp) -> Value {
    let data = app
        .gql_ok(
            r#"{ contacts(filter: { email: "grace@example.com" }) { nodes { title phone account { name } } } }"#,
            json!({}),
        )
        .await;
    let nodes = data["contacts"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 1, "{nodes:#?}");
    nodes[0].clone()
}

#[tokio::test]
async fn a_first_meeting_won_by_salesforce_blanks_nothing_the_desk_holds() {
    let (app, sim, sf_id) = a_first_meeting_won_by_salesforce("TWO_WAY").await;
    let desk = hopper_in_the_desk(&app).await;
    assert_eq!(
        desk["title"], "Rear Admiral",
        "Salesforce's newer value wins"
    );
    assert_eq!(
        (&desk["phone"], &desk["account"]["name"]),
        (&json!("+1 555 0100"), &json!("Acme")),
        "what Salesforce left blank stays: {desk}"
    );
    app.sync_now().await;
    let sf = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(
        (&sf["Title"], &sf["Phone"]),
        (&json!("Rear Admiral"), &json!("+1 555 0100")),
        "and goes out: {sf}"
    );
    let accounts = sim.records("Account");
    assert_eq!(accounts.len(), 1, "{accounts:#?}");
    assert_eq!(sf["AccountId"], accounts[0]["Id"], "{sf}");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
    assert_eq!(hopper_in_the_desk(&app).await, desk);
}

#[tokio::test]
async fn one_way_a_first_meeting_keeps_what_the_desk_holds_and_sends_nothing() {
    let (app, sim, sf_id) = a_first_meeting_won_by_salesforce("SALESFORCE_TO_DESK").await;
    let desk = hopper_in_the_desk(&app).await;
    assert_eq!(
        (&desk["title"], &desk["phone"], &desk["account"]["name"]),
        (
            &json!("Rear Admiral"),
            &json!("+1 555 0100"),
            &json!("Acme")
        ),
        "{desk}"
    );
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
    let sf = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(
        (&sf["Phone"], &sf["AccountId"]),
        (&Value::Null, &Value::Null),
        "{sf}"
    );

    // Turned two-way, they go out as the desk edits made meanwhile do.
    app.set_sync_type("TWO_WAY").await;
    app.sync_now().await;
    app.sync_now().await;
    let sf = sim.get("Contact", &sf_id).unwrap();
    let accounts = sim.records("Account");
    assert_eq!(accounts.len(), 1, "{accounts:#?}");
    assert_eq!(
        (&sf["Title"], &sf["Phone"], &sf["AccountId"]),
        (
            &json!("Rear Admiral"),
            &json!("+1 555 0100"),
            &accounts[0]["Id"]
        ),
        "{sf}"
    );
}

#[tokio::test]
async fn a_twin_the_desk_cannot_take_in_keeps_what_the_desk_leaves_blank() {
    let (app, sim) = connected().await;
    app.map_field("CONTACTS", "mailingCity", "Department").await;
    app.create_contact(
        json!({ "lastName": "Hopper", "email": "grace@example.com", "title": "Commodore" }),
    )
    .await;
    // Newer, with a Department longer than the desk field it is mapped to.
    sim.advance_clock(60);
    let department = "Research and Development, Southern Hemisphere Operations";
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com", "Phone": "+1 555 0100", "Department": department }),
        )
        .unwrap();
    app.sync_now().await;
    let sf = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(sim.count("Contact"), 1);
    assert_eq!(
        (&sf["Title"], &sf["Phone"], &sf["Department"]),
        (
            &json!("Commodore"),
            &json!("+1 555 0100"),
            &json!(department)
        ),
        "the desk's values go out, its blanks do not: {sf}"
    );
}

#[tokio::test]
async fn a_first_meeting_is_not_failed_by_a_value_the_desk_cannot_hold() {
    let (app, sim) = connected().await;
    app.map_field("CONTACTS", "mailingCity", "Department").await;
    app.sync_now().await;
    // Department holds 80 characters; the desk field it is mapped to, 40.
    let department = "Research and Development, Southern Hemisphere Operations";
    sim.insert(
        "Contact",
        json!({ "LastName": "Hopper", "Email": "grace@example.com", "Title": "Rear Admiral", "Department": department }),
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    app.create_contact(json!({ "lastName": "Hopper", "email": "grace@example.com" }))
        .await;
    app.sync_now().await;
    let desk = contacts(&app).await;
    let hopper = by_last_name(&desk, "Hopper");
    assert_eq!(hopper.len(), 1, "{desk:#?}");
    assert_eq!(
        hopper[0]["title"], "Rear Admiral",
        "the rest is taken, the meeting not failed"
    );
    // The value the desk could not take waits in the log, as a pull the desk refuses does.
    let waiting = || async {
        app.gql_ok(
            "{ syncFailures { nodes { reason direction salesforceId message } } }",
            json!({}),
        )
        .await["syncFailures"]["nodes"]
            .clone()
    };
    let failures = waiting().await;
    assert_eq!(failures.as_array().unwrap().len(), 1, "{failures}");
    assert_eq!(failures[0]["reason"], "STRING_TOO_LONG", "{failures}");
    assert_eq!(failures[0]["direction"], "SALESFORCE_TO_DESK");
    let message = failures[0]["message"].as_str().unwrap();
    assert!(
        message.contains("the desk cannot hold its Department") && message.contains("mailingCity"),
        "{message}"
    );
    // The desk's record, the newer, goes out without blanking what it could not take; after
    // that, the two agree.
    app.sync_now().await;
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
    let in_org = &sim.records("Contact")[0];
    assert_eq!(
        in_org["Department"], department,
        "Salesforce keeps its value"
    );
    // A later desk edit does not send the blank either.
    let desk_id = by_last_name(&contacts(&app).await, "Hopper")[0]["id"].clone();
    update_contact(&app, &desk_id, json!({ "title": "Commodore" })).await;
    app.sync_now().await;
    let in_org = &sim.records("Contact")[0];
    assert_eq!(in_org["Title"], "Commodore");
    assert_eq!(in_org["Department"], department, "{in_org}");
    let mark = sim.request_count();
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
    // Salesforce's value still waits for the desk to hold it.
    let failures = waiting().await;
    assert_eq!(failures.as_array().unwrap().len(), 1, "{failures}");
    assert_eq!(failures[0]["reason"], "STRING_TOO_LONG", "{failures}");
}

#[tokio::test]
async fn a_desk_record_that_won_its_first_meeting_goes_out_though_salesforce_stamped_its_twin_since()
 {
    let (app, sim) = connected().await;
    app.map_field("CONTACTS", "mailingCity", "Department").await;
    app.sync_now().await;
    // A value the desk cannot hold (80 characters into 40) leaves the meeting's version
    // waiting in the log, though the link takes the rest of it.
    let department = "Research and Development, Southern Hemisphere Operations";
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com", "Department": department }),
        )
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    app.create_contact(
        json!({ "lastName": "Hopper", "email": "grace@example.com", "title": "Rear Admiral" }),
    )
    .await;
    // Salesforce's automation stamps the record after the desk's edit, editing nothing.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    sim.touch_by_the_system("Contact", &sf_id).unwrap();
    app.sync_now().await;
    app.sync_now().await;
    let in_org = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(
        in_org["Title"], "Rear Admiral",
        "the desk's newer edit goes out: {in_org}"
    );
    assert_eq!(in_org["Department"], department, "{in_org}");
    assert!(!app.engine.has_changes_to_send().await);
}

#[tokio::test]
async fn a_newer_salesforce_record_the_desk_cannot_wholly_hold_still_wins_what_it_can() {
    let (app, sim) = connected().await;
    app.sync_now().await;
    // A week-old desk account, then a newer Salesforce one of the same name whose revenue
    // (negative, as a currency field may be) the desk cannot hold.
    let desk = app
        .gql_ok(
            "mutation { createAccount(input: { name: \"Acme\", phone: \"+1 555 9999\", annualRevenue: 5000 }) { id } }",
            json!({}),
        )
        .await["createAccount"]["id"]
        .clone();
    sim.advance_clock(5);
    let sf_id = sim
        .insert(
            "Account",
            json!({ "Name": "Acme", "Phone": "+1 555 0100", "Industry": "Energy", "AnnualRevenue": -1 }),
        )
        .unwrap();
    app.sync_now().await;
    let read = "query($id: ID!) { account(id: $id) { phone industry annualRevenue } }";
    let met = app.gql_ok(read, json!({ "id": desk })).await;
    assert_eq!(
        met["account"],
        json!({ "phone": "+1 555 0100", "industry": "Energy", "annualRevenue": 5000.0 }),
        "the newer side's values win where the desk can hold them: {met}"
    );
    let in_org = sim.get("Account", &sf_id).unwrap();
    assert_eq!(
        (&in_org["Phone"], &in_org["AnnualRevenue"]),
        (&json!("+1 555 0100"), &json!(-1.0)),
        "the older desk values are not sent over Salesforce's: {in_org}"
    );
    let failures = app
        .gql_ok("{ syncFailures { nodes { reason message } } }", json!({}))
        .await;
    let message = failures["syncFailures"]["nodes"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("the desk cannot hold its AnnualRevenue"),
        "{failures}"
    );

    sends_its_website_and_not_the_revenue_it_kept(&app, &sim, &desk, &sf_id).await;
}

/// An account "Acme" made in Salesforce with these fields too, and synced: its Salesforce
/// and desk ids.
async fn acme_synced(app: &TestApp, sim: &SimHandle, fields: Value) -> (String, Value) {
    let mut fields = fields;
    fields["Name"] = json!("Acme");
    let sf_id = sim.insert("Account", fields).unwrap();
    app.sync_now().await;
    let desk = app.gql_ok("{ accounts { nodes { id } } }", json!({})).await["accounts"]["nodes"][0]
        ["id"]
        .clone();
    (sf_id, desk)
}

/// How many failures are open.
async fn open_failure_count(app: &TestApp) -> u64 {
    app.gql_ok("{ syncFailures { totalCount } }", json!({}))
        .await["syncFailures"]["totalCount"]
        .as_u64()
        .unwrap()
}

/// A desk edit of an account whose Salesforce revenue (-1) the desk could not take, and
/// Salesforce's industry Energy: the website goes out, the revenue the desk kept does not,
/// and nothing echoes; the account in Salesforce after.
async fn sends_its_website_and_not_the_revenue_it_kept(
    app: &TestApp,
    sim: &SimHandle,
    desk: &Value,
    sf_id: &str,
) -> Value {
    app.gql_ok(
        "mutation($id: ID!) { updateAccount(id: $id, patch: { website: \"acme.example\" }) { id } }",
        json!({ "id": desk }),
    )
    .await;
    app.sync_now().await;
    let in_org = sim.get("Account", sf_id).unwrap();
    assert_eq!(in_org["Website"], "acme.example");
    assert_eq!(in_org["AnnualRevenue"], json!(-1.0), "{in_org}");
    assert_eq!(in_org["Industry"], "Energy");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(sim, mark), Vec::<String>::new(), "no echo");
    in_org
}

#[tokio::test]
async fn a_salesforce_save_the_desk_cannot_wholly_hold_still_brings_what_it_can() {
    let (app, sim) = connected().await;
    let (sf_id, desk) = acme_synced(
        &app,
        &sim,
        json!({ "Phone": "+1 555 9999", "AnnualRevenue": 5000 }),
    )
    .await;
    // One save in Salesforce: a new phone, and a revenue (negative, as a currency field may
    // be) the desk cannot hold.
    sim.update(
        "Account",
        &sf_id,
        json!({ "Phone": "+1 555 0100", "AnnualRevenue": -1 }),
    )
    .unwrap();
    app.sync_now().await;
    let read = "query($id: ID!) { account(id: $id) { phone annualRevenue } }";
    assert_eq!(
        app.gql_ok(read, json!({ "id": desk })).await["account"],
        json!({ "phone": "+1 555 0100", "annualRevenue": 5000.0 }),
        "the phone comes; the desk keeps its revenue"
    );
    let failures = app
        .gql_ok(
            "{ syncFailures { nodes { id reason message } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        failures["syncFailures"]["nodes"][0]["reason"], "INVALID_PARAMETER",
        "{failures}"
    );
    assert!(
        failures["syncFailures"]["nodes"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the desk cannot hold its AnnualRevenue"),
        "{failures}"
    );
    // Tried again with nothing changed, it is still refused: the entry stays open.
    let id = failures["syncFailures"]["nodes"][0]["id"].clone();
    let retried = app
        .gql_ok(
            "mutation($id: ID!) { retrySyncFailure(id: $id) { id resolvedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        retried["retrySyncFailure"],
        json!({ "id": id, "resolvedAt": null })
    );
    // Another Salesforce save leaves it open too, the one entry.
    sim.update("Account", &sf_id, json!({ "Industry": "Energy" }))
        .unwrap();
    app.sync_now().await;
    let open = app
        .gql_ok("{ syncFailures { nodes { id } } }", json!({}))
        .await;
    assert_eq!(open["syncFailures"]["nodes"], json!([{ "id": id }]));

    // A later desk edit sends what it changed, not the revenue the desk kept.
    past_its_last_save(&sim, "Account", &sf_id).await;
    let in_org = sends_its_website_and_not_the_revenue_it_kept(&app, &sim, &desk, &sf_id).await;
    assert_eq!(in_org["Phone"], "+1 555 0100");

    let open = app
        .gql_ok("{ syncFailures { nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        open["syncFailures"]["nodes"],
        json!([{ "id": id }]),
        "the desk's push settles none of Salesforce's revenue"
    );

    // Salesforce's revenue made one the desk can hold, it comes, and the failure settles.
    sim.update("Account", &sf_id, json!({ "AnnualRevenue": 7000 }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        app.gql_ok(read, json!({ "id": desk })).await["account"]["annualRevenue"],
        7000.0
    );
    assert_eq!(open_failure_count(&app).await, 0);
}

#[tokio::test]
async fn a_salesforce_save_taken_in_part_ends_the_desk_records_refused_push() {
    let (app, sim) = connected().await;
    let (sf_id, desk) = acme_synced(&app, &sim, json!({ "AnnualRevenue": 5000 })).await;
    // A desk edit Salesforce refuses, waiting for a person...
    past_its_last_save(&sim, "Account", &sf_id).await;
    app.gql_ok(
        "mutation($id: ID!) { updateAccount(id: $id, patch: { phone: \"+1 555 9999\" }) { id } }",
        json!({ "id": desk }),
    )
    .await;
    sim.reject_next_records(&[(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Phone numbers are checked by the sales team",
    )]);
    app.sync_now().await;
    let reasons = "{ syncFailures { nodes { direction reason } } }";
    assert_eq!(
        app.gql_ok(reasons, json!({})).await["syncFailures"]["nodes"],
        json!([{ "direction": "DESK_TO_SALESFORCE", "reason": "REJECTED" }])
    );

    // ...then a newer Salesforce save, taken but for a revenue the desk cannot hold: the
    // desk holds Salesforce's phone now, and its refused edit is over.
    sim.advance_clock(5);
    sim.update(
        "Account",
        &sf_id,
        json!({ "Phone": "+1 555 0100", "AnnualRevenue": -1 }),
    )
    .unwrap();
    app.sync_now().await;
    assert_eq!(
        app.gql_ok(reasons, json!({})).await["syncFailures"]["nodes"],
        json!([{ "direction": "SALESFORCE_TO_DESK", "reason": "INVALID_PARAMETER" }])
    );
}

#[tokio::test]
async fn a_record_made_again_in_salesforce_leaves_nothing_waiting_on_its_deleted_twin() {
    let (app, sim) = connected().await;
    let (sf_id, desk) = acme_synced(&app, &sim, json!({ "AnnualRevenue": 5000 })).await;
    sim.update("Account", &sf_id, json!({ "AnnualRevenue": -1 }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(open_failure_count(&app).await, 1);

    // Deleted in Salesforce, edited in the desk: made there again, the old twin's failure
    // is over.
    past_its_last_save(&sim, "Account", &sf_id).await;
    sim.delete("Account", &sf_id).unwrap();
    app.gql_ok(
        "mutation($id: ID!) { updateAccount(id: $id, patch: { phone: \"+1 555 0100\" }) { id } }",
        json!({ "id": desk }),
    )
    .await;
    app.sync_now().await;
    let made = sim.records("Account");
    assert_eq!(made.len(), 1, "{made:?}");
    assert_ne!(made[0]["Id"], sf_id.as_str());
    assert_eq!(open_failure_count(&app).await, 0);
}

#[tokio::test]
async fn a_desk_edit_of_a_record_merged_away_in_salesforce_does_not_undo_the_merge() {
    let (app, sim) = connected().await;
    let kept = sim
        .insert(
            "Contact",
            json!({ "LastName": "Lovelace", "Email": "ada@example.com" }),
        )
        .unwrap();
    let merged = sim
        .insert(
            "Contact",
            json!({ "LastName": "King", "Email": "ada.king@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    let kept_desk = by_last_name(&contacts(&app).await, "Lovelace")[0]["id"].clone();
    let merged_desk = by_last_name(&contacts(&app).await, "King")[0]["id"].clone();

    // One person twice: a rep merges the two in Salesforce, then an agent edits the twin
    // of the one merged away.
    sim.merge("Contact", &kept, &merged).unwrap();
    update_contact(&app, &merged_desk, json!({ "title": "Countess" })).await;
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 1, "not made again");
    let nodes = open_failures(&app).await;
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes[0]["reason"], "CRM_ID_ALREADY_MAPPED");
    assert_eq!(nodes[0]["deskId"], merged_desk);
    let message = nodes[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "was merged into Contact {kept}, the twin of desk Contact {}",
            kept_desk.as_str().unwrap()
        )),
        "{message}"
    );

    // Tried again, it stays as it is; the duplicate moved to the recycle bin settles it.
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 1);
    app.gql_ok(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": merged_desk }),
    )
    .await;
    app.sync_now().await;
    assert_eq!(open_failure_count(&app).await, 0);
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_desk_contact_of_an_account_merged_away_in_salesforce_does_not_bring_it_back() {
    let (app, sim) = connected().await;
    let kept = sim
        .insert("Account", json!({ "Name": "Acme Corp" }))
        .unwrap();
    let merged = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    app.sync_now().await;
    let desks = app
        .gql_ok("{ accounts(first: 10) { nodes { id name } } }", json!({}))
        .await;
    let desk = |name: &str| {
        desks["accounts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()["id"]
            .clone()
    };
    let (kept_desk, merged_desk) = (desk("Acme Corp"), desk("Acme"));

    sim.merge("Account", &kept, &merged).unwrap();
    let contact = app
        .create_contact(json!({ "lastName": "Lovelace", "accountId": merged_desk }))
        .await;
    app.sync_now().await;
    assert_eq!(sim.count("Account"), 1, "not made again");
    assert_eq!(sim.count("Contact"), 0);
    let nodes = open_failures(&app).await;
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes[0]["reason"], "ACCOUNT_NOT_SYNCED");
    assert_eq!(nodes[0]["deskId"], contact["id"]);
    let message = nodes[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "was merged into Account {kept}, the twin of desk account {}",
            kept_desk.as_str().unwrap()
        )),
        "{message}"
    );

    // Moved to the account it was merged into, the contact goes out there.
    update_contact(&app, &contact["id"], json!({ "accountId": kept_desk })).await;
    app.sync_now().await;
    let made = sim.records("Contact");
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["AccountId"], kept.as_str());
    assert_eq!(sim.count("Account"), 1);
    assert_eq!(open_failure_count(&app).await, 0);
}

/// Salesforce makes `record` (an object and its fields), newer than its desk twin and holding
/// its values already; asserts the next round links them and changes nothing on either side
/// (`updated_at` reads the desk twin's `updatedAt`). The Salesforce record's id.
async fn a_newer_twin_alike_changes_nothing(
    app: &TestApp,
    sim: &SimHandle,
    (object, fields): (&str, Value),
    updated_at: impl AsyncFn() -> Value,
) -> String {
    let before = updated_at().await;
    // Salesforce's is the newer: its values win, and they are the desk's already.
    sim.advance_clock(60);
    let sf_id = sim.insert(object, fields).unwrap();
    let mark = sim.request_count();
    let report = app.sync_now().await;
    assert_eq!(
        (report.pulled.added, report.pulled.updated),
        (0, 0),
        "a link, no update: {report:?}"
    );
    assert_eq!(updated_at().await, before, "not stamped changed");
    assert_eq!(writes_since(sim, mark), Vec::<String>::new());
    sf_id
}

#[tokio::test]
async fn a_first_meeting_of_records_already_alike_changes_nothing_in_the_desk() {
    let (app, sim) = connected().await;
    let desk = app
        .create_contact(json!({ "lastName": "Same", "email": "same@example.com", "title": "Twin" }))
        .await;
    let salesforce = json!({ "LastName": "Same", "Email": "SAME@example.com", "Title": "Twin" });
    let sf_id =
        a_newer_twin_alike_changes_nothing(&app, &sim, ("Contact", salesforce), async || {
            desk_contact(&app, &desk["id"], "updatedAt").await
        })
        .await;
    assert_eq!(salesforce_id_of(&app, &desk["id"]).await, sf_id);
}

#[tokio::test]
async fn a_first_meeting_of_accounts_already_alike_changes_nothing_whole_revenue_included() {
    let (app, sim) = connected().await;
    let made = app
        .gql_ok(
            "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id } }",
            json!({ "input": { "name": "Same Co", "employees": 12, "annualRevenue": 5000 } }),
        )
        .await;
    let id = made["createAccount"]["id"].clone();
    let read = async |field: &str| {
        app.gql_ok(
            "query($id: ID!) { account(id: $id) { updatedAt salesforce { id } } }",
            json!({ "id": id }),
        )
        .await["account"][field]
            .clone()
    };
    let salesforce = json!({ "Name": "Same Co", "NumberOfEmployees": 12, "AnnualRevenue": 5000.0 });
    let sf_id =
        a_newer_twin_alike_changes_nothing(&app, &sim, ("Account", salesforce), async || {
            read("updatedAt").await
        })
        .await;
    assert_eq!(read("salesforce").await["id"], sf_id.as_str());
}

#[tokio::test]
async fn a_desk_edit_made_after_the_salesforce_edit_wins() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Goldberg", "Title": "Start" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Goldberg")[0]["id"].clone();
    sim.update("Contact", &sf_id, json!({ "Title": "Salesforce first" }))
        .unwrap();
    // Salesforce stamps whole seconds, and the simulator's stamps for one record strictly
    // increase, so its edit may carry the next second: the desk edit must come after that.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    update_contact(&app, &desk_id, json!({ "title": "Desk later" })).await;
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Goldberg")[0]["title"],
        "Desk later"
    );
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Desk later");
}

#[tokio::test]
async fn a_later_desk_save_that_changes_nothing_synced_leaves_the_salesforce_edit_standing() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert("Contact", json!({ "LastName": "Hopper", "Title": "Start" }))
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Hopper")[0]["id"].clone();
    sim.update("Contact", &sf_id, json!({ "Title": "Salesforce edit" }))
        .unwrap();
    // After Salesforce's edit (whole seconds, see above), an agent changes the title and
    // takes the change back before it goes out: an edit by its time, none by its content.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    update_contact(&app, &desk_id, json!({ "title": "Typo" })).await;
    update_contact(&app, &desk_id, json!({ "title": "Start" })).await;
    // A later Salesforce edit carries the cursor past the polling window's overlap, so a
    // round reads this version of the contact once.
    sim.advance_clock(600);
    sim.insert("Contact", json!({ "LastName": "Later" }))
        .unwrap();
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Hopper")[0]["title"],
        "Salesforce edit"
    );
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Salesforce edit",
        "the desk's unchanged values did not go out over it"
    );
}

#[tokio::test]
async fn a_desk_edit_made_while_the_first_export_is_in_flight_is_pushed_after_it() {
    let (app, sim) = connected().await;
    let desk_id = app
        .create_contact(
            json!({ "lastName": "Hopper", "email": "grace@example.com", "title": "Captain" }),
        )
        .await["id"]
        .clone();
    // The export has read the contact and waits for Salesforce when the agent edits it.
    let export = sim.hold_next("PATCH", "/composite/sobjects/Contact");
    let round = app.round_in_background();
    export.arrived().await;
    update_contact(&app, &desk_id, json!({ "title": "Rear Admiral" })).await;
    export.release();
    round.await.unwrap().expect("the first sync succeeds");

    app.sync_now().await;
    let sf_id = salesforce_id_of(&app, &desk_id).await;
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Rear Admiral",
        "the edit the export did not carry is pushed after it"
    );
}

/// A desk edit of a contact in its own transaction, holding the desk (the write lock on
/// SQLite, the row on PostgreSQL) while a round reads the page and waits to write it; then
/// the round, done.
async fn edit_while_a_round_waits(
    app: &TestApp,
    desk_id: i64,
    change: impl FnOnce(&mut tandem::domain::ContactInput),
) {
    let mut edit = app.store.begin_sync().await.unwrap();
    let current = app
        .store
        .contacts_by_ids(&[tandem::domain::ContactId(desk_id)])
        .await
        .unwrap()
        .remove(0);
    let mut input = tandem::store::contact_input(&current);
    change(&mut input);
    edit.write_contact(current, input.validate().unwrap(), false)
        .await
        .unwrap();
    edit.enqueue(tandem::domain::Module::Contacts, desk_id)
        .await
        .unwrap();
    let round = app.round_in_background();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    edit.commit().await.unwrap();
    round.await.unwrap().expect("the round succeeds");
}

#[tokio::test]
async fn a_desk_edit_committed_while_a_pull_waits_to_write_is_not_overwritten() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Lovelace", "Title": "Start" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id: i64 = by_last_name(&contacts(&app).await, "Lovelace")[0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    sim.update("Contact", &sf_id, json!({ "Title": "Salesforce" }))
        .unwrap();
    // Salesforce stamps whole seconds: the desk edit comes after Salesforce's.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;

    edit_while_a_round_waits(&app, desk_id, |c| c.title = Some("Desk".into())).await;

    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Lovelace")[0]["title"],
        "Desk",
        "the later desk edit stands"
    );
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Desk");
}

#[tokio::test]
async fn a_desk_id_another_desk_wrote_in_salesforce_names_nothing_here() {
    let (app, sim) = connected().await;
    // A staging desk on a sandbox copied from production, or a desk started afresh on the
    // same org: Salesforce records name desk ids this desk gave to other people.
    let bob = app
        .create_contact(json!({ "lastName": "Bob", "email": "bob@example.com" }))
        .await;
    let bob_id: i64 = bob["id"].as_str().unwrap().parse().unwrap();
    let mut others = Vec::new();
    for (last, written) in [
        ("Alice", format!("0badc0de-{bob_id}")),
        ("Carol", bob_id.to_string()),
    ] {
        let email = format!("{}@example.com", last.to_lowercase());
        others.push(
            sim.insert(
                "Contact",
                json!({ "LastName": last, "Email": email, "Helpdesk_Id__c": written }),
            )
            .unwrap(),
        );
    }
    app.sync_now().await;
    app.sync_now().await;

    let desk = contacts(&app).await;
    for last in ["Alice", "Bob", "Carol"] {
        assert_eq!(by_last_name(&desk, last).len(), 1, "{last}: {desk:?}");
    }
    let bobs_twin = salesforce_id_of(&app, &bob["id"]).await;
    assert!(
        !others.contains(&bobs_twin),
        "Bob went out as his own record"
    );
    for id in &others {
        let record = sim.get("Contact", id).unwrap();
        assert_ne!(record["LastName"], "Bob", "{record}");
    }
    assert_eq!(sim.get("Contact", &bobs_twin).unwrap()["LastName"], "Bob");
}

#[tokio::test]
async fn a_salesforce_record_a_push_created_before_a_crash_meets_its_desk_record_again() {
    let (app, sim) = connected().await;
    // No email to match on: only the desk id the push wrote says whose record it is.
    let desk_id = app.create_contact(json!({ "lastName": "Hamilton" })).await["id"].clone();
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hamilton", "Helpdesk_Id__c": app.desk_ref(&desk_id).await }),
        )
        .unwrap();
    app.sync_now().await;
    app.sync_now().await;

    assert_eq!(
        by_last_name(&contacts(&app).await, "Hamilton").len(),
        1,
        "no second desk contact"
    );
    assert_eq!(sim.count("Contact"), 1, "no second Salesforce contact");
    assert_eq!(salesforce_id_of(&app, &desk_id).await, sf_id);
}

/// A first sync (retries due at once) in which an account appears in Salesforce after the
/// accounts were read, and a contact of it before the contacts are: the org, the account's
/// and the contact's Salesforce ids, and the round's report.
async fn late_account(
    account: &str,
    contact: &str,
) -> (
    TestApp,
    SimHandle,
    String,
    String,
    tandem::sync::RoundReport,
) {
    let (app, sim) = crate::integration::started(|s| s.sync.retry_backoff_secs = 0).await;
    let contacts_read = sim.hold_next("GET", "FROM Contact");
    let round = app.round_in_background();
    contacts_read.arrived().await;
    let account = sim.insert("Account", json!({ "Name": account })).unwrap();
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": contact, "AccountId": account }),
        )
        .unwrap();
    contacts_read.release();
    let report = round.await.unwrap().expect("the first sync succeeds");
    (app, sim, account, sf_id, report)
}

#[tokio::test]
async fn a_contact_whose_account_is_not_in_the_desk_yet_waits_for_it() {
    let (app, sim, account, sf_id, report) = late_account("Late Ltd", "Early").await;
    assert!(report.pulled.failed >= 1, "{report:?}");
    assert!(by_last_name(&contacts(&app).await, "Early").is_empty());
    let failures = app
        .gql_ok(
            "{ syncFailures(reason: ACCOUNT_NOT_SYNCED) { nodes { salesforceId resolvedAt message } } }",
            json!({}),
        )
        .await;
    let failure = &failures["syncFailures"]["nodes"][0];
    assert_eq!(failure["salesforceId"], sf_id.as_str());
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains(account.as_str()),
        "{failure}"
    );

    // The next round brings the account, then the contact with it.
    app.sync_now().await;
    let early = by_last_name(&contacts(&app).await, "Early")[0].clone();
    assert_eq!(early["account"]["name"], "Late Ltd");
    let open = app
        .gql_ok(
            "{ syncFailures(reason: ACCOUNT_NOT_SYNCED, includeResolved: true) { nodes { resolvedAt } } }",
            json!({}),
        )
        .await;
    assert!(
        open["syncFailures"]["nodes"][0]["resolvedAt"].is_string(),
        "{open}"
    );

    // A desk edit keeps the contact's account in Salesforce.
    update_contact(&app, &early["id"], json!({ "title": "Keeps the account" })).await;
    app.sync_now().await;
    let in_org = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(in_org["Title"], "Keeps the account");
    assert_eq!(in_org["AccountId"], account.as_str());
}

#[tokio::test]
async fn a_desk_contact_whose_salesforce_twin_waits_for_its_account_waits_with_it() {
    let (app, sim) = crate::integration::started(|s| s.sync.retry_backoff_secs = 0).await;
    let desk_id = app
        .create_contact(json!({ "lastName": "Lovelace", "email": "ada@example.com" }))
        .await["id"]
        .clone();
    // The account comes after the round has read accounts, its contact before it reads
    // contacts: the contact waits for the account, and the desk contact meets it on export.
    let contacts_read = sim.hold_next("GET", "FROM Contact");
    let round = app.round_in_background();
    contacts_read.arrived().await;
    // Salesforce's side is the newer when the two meet.
    sim.advance_clock(60);
    let account = sim
        .insert("Account", json!({ "Name": "Analytical Engines" }))
        .unwrap();
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Lovelace", "Email": "ada@example.com", "Phone": "+44 20 7946 0000", "AccountId": account }),
        )
        .unwrap();
    contacts_read.release();
    round.await.unwrap().expect("the first sync succeeds");
    let in_org = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(in_org["AccountId"], account.as_str(), "its account is kept");
    assert_eq!(in_org["Phone"], "+44 20 7946 0000");
    assert_eq!(sim.count("Contact"), 1, "and no twin is made");

    // The next round brings the account, then the two meet.
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(salesforce_id_of(&app, &desk_id).await, sf_id);
    let in_org = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(in_org["AccountId"], account.as_str());
    let desk = by_last_name(&contacts(&app).await, "Lovelace")[0].clone();
    assert_eq!(desk["account"]["name"], "Analytical Engines");
    assert_eq!(sim.count("Contact"), 1);
    let open = app
        .gql_ok("{ syncFailures { nodes { reason message } } }", json!({}))
        .await;
    assert_eq!(open["syncFailures"]["nodes"], json!([]), "{open}");
}

#[tokio::test]
async fn a_salesforce_twin_made_after_the_pull_read_meets_its_desk_record_by_time() {
    let (app, sim) = connected().await;
    app.sync_now().await;
    let desk_id = app
        .create_contact(
            json!({ "lastName": "Hopper", "email": "grace@example.com", "title": "Desk title" }),
        )
        .await["id"]
        .clone();
    // Made in Salesforce after the desk record, once the round's pull has read contacts.
    sim.advance_clock(60);
    let contacts_read = sim.hold_answer_next("GET", "FROM Contact");
    let round = app.round_in_background();
    contacts_read.arrived().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com", "Title": "Salesforce title" }),
        )
        .unwrap();
    contacts_read.release();
    let report = round.await.unwrap().expect("the round succeeds");
    assert_eq!(
        (report.pulled.updated, report.pushed.updated),
        (1, 0),
        "the round counts what the meeting brought in: {report:?}"
    );

    assert_eq!(salesforce_id_of(&app, &desk_id).await, sf_id);
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Salesforce title",
        "the newer side wins"
    );
    assert_eq!(
        by_last_name(&contacts(&app).await, "Hopper")[0]["title"],
        "Salesforce title"
    );
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn each_page_of_a_push_reads_its_own_twins_again_once_the_pull_read_them_a_while_ago() {
    let (app, sim) = crate::integration::started(|s| s.sync.batch_size = 1).await;
    let ada = sim
        .insert("Contact", json!({ "LastName": "Ada", "Title": "Old" }))
        .unwrap();
    let bob = sim
        .insert("Contact", json!({ "LastName": "Bob", "Title": "Old" }))
        .unwrap();
    app.sync_now().await;
    let list = contacts(&app).await;
    for (name, title) in [("Ada", "Desk A"), ("Bob", "Desk B")] {
        let id = by_last_name(&list, name)[0]["id"].clone();
        update_contact(&app, &id, json!({ "title": title })).await;
    }
    // Bob is edited in Salesforce after the desk's edits, and after the round's pull read
    // him; the pull then takes over a second, so the push reads its pages again first.
    sim.advance_clock(60);
    let contacts_read = sim.hold_answer_next("GET", "FROM Contact");
    let round = app.round_in_background();
    contacts_read.arrived().await;
    sim.update("Contact", &bob, json!({ "Title": "Salesforce B" }))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    contacts_read.release();
    round.await.unwrap().expect("the round succeeds");

    assert_eq!(sim.get("Contact", &ada).unwrap()["Title"], "Desk A");
    assert_eq!(
        sim.get("Contact", &bob).unwrap()["Title"],
        "Salesforce B",
        "the second page's twin was read again too: the newer Salesforce edit wins"
    );
    assert_eq!(
        by_last_name(&contacts(&app).await, "Bob")[0]["title"],
        "Salesforce B"
    );
}

#[tokio::test]
async fn a_new_desk_contact_takes_an_email_its_linked_holder_is_giving_up_in_the_same_push() {
    let (app, sim) = connected().await;
    let shared = sim
        .insert(
            "Contact",
            json!({ "LastName": "Ada", "Email": "desk@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    let ada = by_last_name(&contacts(&app).await, "Ada")[0]["id"].clone();
    // Ada hands the shared mailbox on to a new colleague, in one go.
    update_contact(&app, &ada, json!({ "email": "ada@example.com" })).await;
    let bob = app
        .create_contact(json!({ "lastName": "Bob", "email": "desk@example.com" }))
        .await["id"]
        .clone();
    app.sync_now().await;

    let open = app
        .gql_ok("{ syncFailures { nodes { reason message } } }", json!({}))
        .await;
    assert_eq!(open["syncFailures"]["nodes"], json!([]), "{open}");
    assert_eq!(
        sim.get("Contact", &shared).unwrap()["Email"],
        "ada@example.com"
    );
    let bobs_twin = salesforce_id_of(&app, &bob).await;
    assert_ne!(bobs_twin, shared);
    assert_eq!(
        sim.get("Contact", &bobs_twin).unwrap()["Email"],
        "desk@example.com"
    );
    assert_eq!(sim.count("Contact"), 2);
    let report = app.sync_now().await;
    assert_eq!((report.pulled, report.pushed), Default::default());
}

/// A desk contact linked to a Salesforce contact, binned and purged: the link stays for the
/// contact to come back to.
async fn purged_twin() -> (TestApp, SimHandle, String) {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Curie", "Email": "marie@example.com", "Title": "Physicist" }),
        )
        .unwrap();
    app.sync_now().await;
    let old = by_last_name(&contacts(&app).await, "Curie")[0]["id"].clone();
    app.bin_and_purge("Contact", &old).await;
    (app, sim, sf_id)
}

async fn open_failures(app: &TestApp) -> Value {
    app.gql_ok(
        "{ syncFailures { nodes { reason deskId message } } }",
        json!({}),
    )
    .await["syncFailures"]["nodes"]
        .clone()
}

#[tokio::test]
async fn a_desk_contact_made_again_after_its_twin_was_purged_takes_over_the_salesforce_one() {
    let (app, sim, sf_id) = purged_twin().await;
    let again = app
        .create_contact(
            json!({ "lastName": "Curie", "email": "marie@example.com", "title": "Chemist" }),
        )
        .await["id"]
        .clone();
    app.sync_now().await;
    assert_eq!(open_failures(&app).await, json!([]));
    assert_eq!(salesforce_id_of(&app, &again).await, sf_id);
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Chemist");

    // A later Salesforce edit comes to it, not to a contact made beside it.
    sim.advance_clock(60);
    sim.update("Contact", &sf_id, json!({ "Title": "Nobel laureate" }))
        .unwrap();
    app.sync_now().await;
    let curies = contacts(&app).await;
    let curies = by_last_name(&curies, "Curie");
    assert_eq!(curies.len(), 1, "{curies:?}");
    assert_eq!(curies[0]["title"], "Nobel laureate");
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_desk_contact_made_again_after_its_twin_was_purged_blanks_nothing_salesforce_holds() {
    let (app, sim) = connected().await;
    let acme = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Curie", "Email": "marie@example.com", "Phone": "+33 1 00 00 00 00", "AccountId": acme }),
        )
        .unwrap();
    app.sync_now().await;
    let old = by_last_name(&contacts(&app).await, "Curie")[0]["id"].clone();
    app.bin_and_purge("Contact", &old).await;
    let again = app
        .create_contact(
            json!({ "lastName": "Curie", "email": "marie@example.com", "title": "Chemist" }),
        )
        .await["id"]
        .clone();
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(open_failures(&app).await, json!([]));
    assert_eq!(salesforce_id_of(&app, &again).await, sf_id);
    let sf = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(
        (&sf["Title"], &sf["Phone"], &sf["AccountId"]),
        (&json!("Chemist"), &json!("+33 1 00 00 00 00"), &json!(acme)),
        "the newer desk record wins what it holds, and blanks nothing: {sf}"
    );
    let curies = contacts(&app).await;
    let curies = by_last_name(&curies, "Curie");
    assert_eq!(curies.len(), 1, "{curies:?}");
    assert_eq!(curies[0]["account"]["name"], "Acme", "{curies:?}");
}

#[tokio::test]
async fn a_salesforce_edit_to_a_purged_twin_meets_the_desk_contact_made_again() {
    let (app, sim, sf_id) = purged_twin().await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let again = app
        .create_contact(json!({ "lastName": "Curie", "email": "marie@example.com" }))
        .await["id"]
        .clone();
    sim.advance_clock(60);
    sim.update("Contact", &sf_id, json!({ "Title": "Nobel laureate" }))
        .unwrap();
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    app.sync_now().await;
    assert_eq!(open_failures(&app).await, json!([]));
    assert_eq!(salesforce_id_of(&app, &again).await, sf_id);
    let curies = contacts(&app).await;
    let curies = by_last_name(&curies, "Curie");
    assert_eq!(curies.len(), 1, "{curies:?}");
    assert_eq!(curies[0]["title"], "Nobel laureate", "the newer side wins");
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_desk_id_field_too_short_for_desk_ids_is_left_alone() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    sim.resize_field("Contact", tandem::sync::DESK_ID_FIELD, 9)
        .unwrap();
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    let desk_id = app
        .create_contact(json!({ "lastName": "Noether", "email": "emmy@example.com" }))
        .await["id"]
        .clone();
    app.sync_now().await;
    assert_eq!(open_failures(&app).await, json!([]));
    let sf_id = salesforce_id_of(&app, &desk_id).await;
    let made = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(made["LastName"], "Noether");
    assert_eq!(made[tandem::sync::DESK_ID_FIELD], Value::Null);
}

#[tokio::test]
async fn a_link_never_read_is_read_even_when_its_first_read_is_cut_short() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let (app, sim) = crate::integration::started(|s| s.sync.poll_overlap_secs = 0).await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com" }),
        )
        .unwrap();
    sim.advance_clock(60);
    sim.insert("Contact", json!({ "LastName": "Later" }))
        .unwrap();
    app.sync_now().await;
    // Past the second the first query began in: the cursor moves to the last record.
    sim.advance_clock(5);
    app.sync_now().await;
    // A link kept from before links kept the record they were read at.
    entity::record_link::Entity::update_many()
        .col_expr(
            entity::record_link::Column::SalesforceFields,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .filter(entity::record_link::Column::SalesforceId.eq(sf_id.as_str()))
        .exec(app.store.connection())
        .await
        .unwrap();

    // The next round's read of it is cut short by a pause.
    let read = sim.hold_next("GET", "Id IN (");
    let round = app.round_in_background();
    tokio::time::timeout(std::time::Duration::from_secs(10), read.arrived())
        .await
        .expect("the round reads the link's record");
    let (paused, ()) = tokio::join!(
        app.gql_ok("mutation { pauseSync { status } }", json!({})),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            read.release();
        }
    );
    assert_eq!(paused["pauseSync"]["status"], "PAUSED");
    round.await.unwrap().unwrap();

    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    app.sync_now().await;
    let panel = app
        .gql_ok(
            "{ contacts(first: 5, filter: { name: \"Hopper\" }) { nodes { salesforce { fields } } } }",
            json!({}),
        )
        .await;
    assert!(
        panel["contacts"]["nodes"][0]["salesforce"]["fields"]["OwnerId"].is_string(),
        "read once the sync goes on: {panel}"
    );
}

#[tokio::test]
async fn a_waiting_record_deleted_in_salesforce_stops_being_retried() {
    let (app, sim, _, sf_id, _) = late_account("Short Lived", "Gone Soon").await;
    sim.delete("Contact", &sf_id).unwrap();

    app.sync_now().await;
    let open = app
        .gql_ok(
            "{ syncFailures(reason: ACCOUNT_NOT_SYNCED) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        open["syncFailures"]["nodes"],
        json!([]),
        "nothing is left to wait for"
    );
    assert!(by_last_name(&contacts(&app).await, "Gone Soon").is_empty());
}

#[tokio::test]
async fn a_contact_waiting_for_an_account_it_no_longer_names_stops_waiting() {
    let (app, sim) = crate::integration::started(|s| s.sync.retry_backoff_secs = 0).await;
    let kept = sim.insert("Account", json!({ "Name": "Kept" })).unwrap();
    // The desk refuses this account (a negative head count), so it is never linked.
    let refused = sim
        .insert(
            "Account",
            json!({ "Name": "Refused", "NumberOfEmployees": -5 }),
        )
        .unwrap();
    let sf_id = sim
        .insert("Contact", json!({ "LastName": "Waits", "AccountId": kept }))
        .unwrap();
    app.sync_now().await;
    let waiting = "{ syncFailures(reason: ACCOUNT_NOT_SYNCED) { nodes { salesforceId } } }";

    sim.update("Contact", &sf_id, json!({ "AccountId": refused }))
        .unwrap();
    app.sync_now().await;
    let open = app.gql_ok(waiting, json!({})).await;
    assert_eq!(
        open["syncFailures"]["nodes"][0]["salesforceId"],
        sf_id.as_str()
    );
    assert_eq!(
        by_last_name(&contacts(&app).await, "Waits")[0]["account"]["name"],
        "Kept",
        "the desk keeps what it had"
    );

    // Back to the account the desk has: nothing is left to wait for.
    sim.update("Contact", &sf_id, json!({ "AccountId": kept }))
        .unwrap();
    app.sync_now().await;
    let open = app.gql_ok(waiting, json!({})).await;
    assert_eq!(open["syncFailures"]["nodes"], json!([]), "{open}");
}

#[tokio::test]
async fn a_desk_record_named_by_one_salesforce_record_is_not_matched_to_another_by_email() {
    let (app, sim) = connected().await;
    let desk_id = app
        .create_contact(json!({ "lastName": "Twin", "email": "twin@example.com" }))
        .await["id"]
        .clone();
    let other = sim
        .insert(
            "Contact",
            json!({ "LastName": "Namesake", "Email": "twin@example.com" }),
        )
        .unwrap();
    let own = sim
        .insert(
            "Contact",
            json!({ "LastName": "Twin", "Email": "twin@example.com", "Helpdesk_Id__c": app.desk_ref(&desk_id).await }),
        )
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pulled.failed, 0, "{report:?}");
    assert_eq!(salesforce_id_of(&app, &desk_id).await, own);
    let namesake = by_last_name(&contacts(&app).await, "Namesake")[0]["id"].clone();
    assert_ne!(namesake, desk_id);
    assert_eq!(salesforce_id_of(&app, &namesake).await, other);
}

#[tokio::test]
async fn deletes_are_not_propagated_but_later_updates_bring_records_back() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hamilton", "Email": "margaret@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Hamilton")[0]["id"].clone();

    bin_contact(&app, &desk_id).await;
    app.sync_now().await;
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["IsDeleted"],
        false,
        "a desk delete stays in the desk"
    );
    assert_eq!(sim.count("Contact"), 1);

    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "Director" }))
        .unwrap();
    app.sync_now().await;
    let all = contacts(&app).await;
    let back = by_last_name(&all, "Hamilton");
    assert_eq!(
        back.len(),
        1,
        "the Salesforce update restored the desk record"
    );
    assert_eq!(back[0]["title"], "Director");
    assert_eq!(back[0]["id"], desk_id, "restored, not duplicated");

    sim.delete("Contact", &sf_id).unwrap();
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Hamilton").len(),
        1,
        "a Salesforce delete stays in Salesforce"
    );

    update_contact(&app, &desk_id, json!({ "title": "Back" })).await;
    app.sync_now().await;
    let relinked = salesforce_id_of(&app, &desk_id).await;
    assert_ne!(relinked, sf_id, "re-created under a new id");
    assert_eq!(sim.get("Contact", &relinked).unwrap()["Title"], "Back");
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_desk_edit_of_a_contact_whose_account_salesforce_deleted_brings_both_back() {
    let (app, sim) = connected().await;
    let account = sim
        .insert("Account", json!({ "Name": "Wayne Enterprises" }))
        .unwrap();
    let contact = sim
        .insert(
            "Contact",
            json!({ "LastName": "Fox", "Email": "lucius@example.com", "AccountId": account }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Fox")[0]["id"].clone();

    // Deleted in Salesforce, the account takes its contact with it.
    sim.delete("Account", &account).unwrap();
    assert!(sim.get("Contact", &contact).unwrap()["IsDeleted"] == true);
    app.sync_now().await;

    update_contact(&app, &desk_id, json!({ "title": "CEO" })).await;
    let first = app.sync_now().await;
    assert_eq!(first.pushed.failed, 1, "{first:?}");
    let waiting = open_failures(&app).await;
    assert_eq!(waiting[0]["reason"], "ACCOUNT_NOT_SYNCED", "{waiting}");
    // The next round makes the account again, then the contact in it.
    let second = app.sync_now().await;
    assert_eq!(second.pushed.added, 2, "{second:?}");
    let relinked = salesforce_id_of(&app, &desk_id).await;
    assert_ne!(relinked, contact);
    let made = sim.get("Contact", &relinked).unwrap();
    assert_eq!(made["Title"], "CEO");
    let new_account = made["AccountId"].as_str().unwrap().to_owned();
    assert_ne!(new_account, account);
    assert_eq!(
        sim.get("Account", &new_account).unwrap()["Name"],
        "Wayne Enterprises"
    );
    assert!(open_failures(&app).await.as_array().unwrap().is_empty());
}

/// A synced contact that the desk moves into an account Salesforce has just deleted, the
/// update not yet pushed: the Salesforce ids of the contact and of the deleted account, and
/// the contact's desk id.
async fn contact_moved_into_a_deleted_account(
    app: &TestApp,
    sim: &SimHandle,
) -> (String, String, Value) {
    let contact = sim
        .insert("Contact", json!({ "LastName": "Kent" }))
        .unwrap();
    let planet = sim
        .insert("Account", json!({ "Name": "Daily Planet" }))
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(app).await, "Kent")[0]["id"].clone();
    let desk_planet = app
        .gql_ok("{ accounts(first: 10) { nodes { id name } } }", json!({}))
        .await["accounts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Daily Planet")
        .unwrap()["id"]
        .clone();
    // The account goes in Salesforce (no contact of its own goes with it), and the desk
    // moves the contact there before the next round.
    sim.delete("Account", &planet).unwrap();
    update_contact(app, &desk_id, json!({ "accountId": desk_planet })).await;
    (contact, planet, desk_id)
}

/// The contact Salesforce holds is the one the desk updated, now in the desk account sent
/// again in place of the deleted one, and nothing waits for a person.
async fn assert_moved_into_the_account_sent_again(
    app: &TestApp,
    sim: &SimHandle,
    (contact, planet, desk_id): (&str, &str, &Value),
) {
    assert_eq!(
        salesforce_id_of(app, desk_id).await,
        contact,
        "the contact Salesforce holds is the one updated, not made again"
    );
    assert_eq!(sim.count("Contact"), 1);
    let moved = sim.get("Contact", contact).unwrap();
    let account = moved["AccountId"].as_str().expect("moved into an account");
    assert_ne!(account, planet);
    assert_eq!(
        sim.get("Account", account).unwrap()["Name"],
        "Daily Planet",
        "the desk account went out again"
    );
    assert!(open_failures(app).await.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_contact_moved_to_an_account_salesforce_deleted_stays_one_record_there() {
    let (app, sim) = connected().await;
    let (contact, planet, desk_id) = contact_moved_into_a_deleted_account(&app, &sim).await;
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(
        writes_since(&sim, mark),
        vec!["PATCH /services/data/v62.0/composite/sobjects".to_owned()],
        "the refused update alone: the contact is not made again in its place"
    );
    app.sync_now().await;
    assert_moved_into_the_account_sent_again(&app, &sim, (&contact, &planet, &desk_id)).await;
}

#[tokio::test]
async fn a_refusal_naming_no_deleted_record_that_cannot_be_looked_into_is_retried() {
    let (app, sim) = crate::integration::started(|s| s.sync.retry_backoff_secs = 0).await;
    let (contact, planet, desk_id) = contact_moved_into_a_deleted_account(&app, &sim).await;
    // Salesforce refuses the update for meeting a deleted record it does not name; asking
    // which records are gone, the call after it, then fails on every attempt.
    let update = sim.hold_answer_next("PATCH", "/composite/sobjects");
    let round = app.round_in_background();
    update.arrived().await;
    sim.fail_next(&[503; 4]);
    update.release();
    round.await.unwrap().expect("the round ends");
    let open = open_failures(&app).await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(
        open[0]["reason"], "UPSTREAM_UNAVAILABLE",
        "retried by itself, not left for a person: {open}"
    );
    assert_eq!(sim.count("Contact"), 1, "nothing made again while in doubt");

    app.sync_now().await;
    app.sync_now().await;
    assert_moved_into_the_account_sent_again(&app, &sim, (&contact, &planet, &desk_id)).await;
}

#[tokio::test]
async fn a_salesforce_edit_saved_before_the_desk_deleted_its_twin_leaves_it_in_the_bin() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hamilton", "Email": "margaret@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Hamilton")[0]["id"].clone();
    // Edited in Salesforce, then deleted in the desk before any round read the edit.
    sim.update("Contact", &sf_id, json!({ "Title": "Director" }))
        .unwrap();
    past_its_last_save(&sim, "Contact", &sf_id).await;
    bin_contact(&app, &desk_id).await;
    app.sync_now().await;
    assert!(
        by_last_name(&contacts(&app).await, "Hamilton").is_empty(),
        "no Salesforce update came after the delete"
    );
    let binned = app
        .gql_ok(
            "{ contacts(filter: { deleted: true }) { nodes { id title } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        binned["contacts"]["nodes"],
        json!([{ "id": desk_id, "title": "Director" }]),
        "in the bin, it holds what Salesforce held when it was deleted"
    );

    // Restored by an agent, it holds what Salesforce holds: nothing goes back over it.
    app.gql_ok(
        "mutation($id: ID!) { restoreContact(id: $id) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Director");

    // Deleted again, a Salesforce update saved after the delete brings it back.
    bin_contact(&app, &desk_id).await;
    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "Chief" }))
        .unwrap();
    app.sync_now().await;
    let back = contacts(&app).await;
    let back = by_last_name(&back, "Hamilton");
    assert_eq!(back.len(), 1);
    assert_eq!(
        (&back[0]["id"], &back[0]["title"]),
        (&desk_id, &json!("Chief"))
    );
}

/// Waits until the clock is past the second of the record's `LastModifiedDate`, which the
/// org stamps in whole seconds, each save at least a second after the one before: a desk
/// change made then is known to come after the save.
async fn past_its_last_save(sim: &SimHandle, object: &str, id: &str) {
    let saved = sim.get(object, id).unwrap()["LastModifiedDate"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = chrono::DateTime::parse_from_str(&saved, "%Y-%m-%dT%H:%M:%S%.3f%z").unwrap();
    while chrono::Utc::now() <= saved + chrono::Duration::seconds(1) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_desk_edit_newer_than_the_salesforce_save_before_its_delete_survives_in_the_bin() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hamilton", "Email": "margaret@example.com", "Title": "Engineer" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Hamilton")[0]["id"].clone();
    // Saved in Salesforce, then edited in the desk, then deleted there, before any round.
    sim.update("Contact", &sf_id, json!({ "Phone": "+1 617 555 0100" }))
        .unwrap();
    past_its_last_save(&sim, "Contact", &sf_id).await;
    update_contact(&app, &desk_id, json!({ "title": "Director" })).await;
    bin_contact(&app, &desk_id).await;
    app.sync_now().await;
    let binned = app
        .gql_ok(
            "{ contacts(filter: { deleted: true }) { nodes { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        binned["contacts"]["nodes"],
        json!([{ "title": "Director" }]),
        "the newer desk edit stands in the bin"
    );
    // Restored, the edit goes out: the newer side wins the record, as for one never deleted.
    app.gql_ok(
        "mutation($id: ID!) { restoreContact(id: $id) { id } }",
        json!({ "id": desk_id }),
    )
    .await;
    app.sync_now().await;
    let in_org = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(in_org["Title"], "Director", "{in_org}");
}

#[tokio::test]
async fn a_salesforce_edit_saved_before_the_desk_deleted_and_purged_its_twin_brings_nothing_back() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert("Account", json!({ "Name": "Analytical Engines" }))
        .unwrap();
    app.sync_now().await;
    let accounts = app
        .gql_ok("{ accounts { nodes { id name } } }", json!({}))
        .await;
    let desk_id = accounts["accounts"]["nodes"][0]["id"].clone();
    sim.update("Account", &sf_id, json!({ "Industry": "Engineering" }))
        .unwrap();
    past_its_last_save(&sim, "Account", &sf_id).await;
    app.bin_and_purge("Account", &desk_id).await;
    app.sync_now().await;
    let none = app.gql_ok("{ accounts { totalCount } }", json!({})).await;
    assert_eq!(none["accounts"]["totalCount"], 0, "{none}");

    sim.advance_clock(5);
    sim.update("Account", &sf_id, json!({ "Phone": "+44 20 7946 0000" }))
        .unwrap();
    app.sync_now().await;
    let back = app
        .gql_ok("{ accounts { nodes { name industry phone } } }", json!({}))
        .await;
    assert_eq!(
        back["accounts"]["nodes"],
        json!([{ "name": "Analytical Engines", "industry": "Engineering", "phone": "+44 20 7946 0000" }]),
        "a Salesforce update after the purge brings it back whole"
    );
}

#[tokio::test]
async fn a_purged_desk_record_is_recreated_by_a_salesforce_update() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert("Contact", json!({ "LastName": "Gone" }))
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Gone")[0]["id"].clone();
    app.bin_and_purge("Contact", &desk_id).await;
    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "Returned" }))
        .unwrap();
    app.sync_now().await;
    let all = contacts(&app).await;
    let back = by_last_name(&all, "Gone");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["title"], "Returned");
}

#[tokio::test]
async fn while_paused_nothing_crosses_and_on_resume_everything_arrives() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert("Contact", json!({ "LastName": "Paused" }))
        .unwrap();
    app.sync_now().await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;

    let desk_new = app
        .create_contact(json!({ "lastName": "WaitsInOutbox" }))
        .await;
    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "WaitsBehindCursor" }))
        .unwrap();
    let mark = sim.request_count();
    let report = app.sync_now().await;
    assert!(report.idle.is_some());
    assert_eq!(sim.request_count(), mark, "no call at all while paused");
    assert_eq!(sim.count("Contact"), 1);

    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 2, "the desk change went out");
    assert_eq!(
        by_last_name(&contacts(&app).await, "Paused")[0]["title"],
        "WaitsBehindCursor"
    );
    assert!(!salesforce_id_of(&app, &desk_new["id"]).await.is_empty());
}

#[tokio::test]
async fn a_pause_stops_a_running_first_sync_at_its_next_batch() {
    let (app, sim) = crate::integration::started(|s| s.sync.batch_size = 1).await;
    for name in ["Noether", "Curie", "Meitner"] {
        app.create_contact(json!({ "lastName": name })).await;
    }
    // The export's first batch is on its way to Salesforce when the admin pauses.
    let first = sim.hold_next("PATCH", "/composite/sobjects/Contact");
    let round = app.round_in_background();
    first.arrived().await;
    // The pause returns once the round has stopped, which needs the held batch answered.
    let (paused, ()) = tokio::join!(
        app.gql_ok("mutation { pauseSync { status } }", json!({})),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            first.release();
        }
    );
    assert_eq!(paused["pauseSync"]["status"], "PAUSED");
    let report = round
        .await
        .unwrap()
        .expect("a paused round is not a failure");
    assert!(report.idle.is_some(), "{report:?}");
    assert_eq!(
        sim.count("Contact"),
        1,
        "the batch in flight lands, no other"
    );

    let before = sim.request_count();
    app.sync_now().await;
    assert!(
        writes_since(&sim, before).is_empty(),
        "nothing crosses while paused"
    );

    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    app.sync_now().await;
    assert_eq!(
        sim.count("Contact"),
        3,
        "the first sync resumes where it stopped"
    );
}

#[tokio::test]
async fn a_first_sync_resumed_after_a_stop_reads_what_committed_late_before_its_cursor() {
    let (app, sim) = connected().await;
    for n in 0..2_100 {
        sim.insert("Contact", json!({ "LastName": format!("Early{n}") }))
            .unwrap();
    }
    // The import writes its first page of 2,000; every attempt at the next is cut off, and
    // the first sync stops there.
    let next_page = sim.hold_next("GET", "-2000");
    let round = app.round_in_background();
    next_page.arrived().await;
    sim.drop_next(4);
    next_page.release();
    assert!(
        round.await.unwrap().is_err(),
        "the round reports the lost page"
    );
    assert_eq!(
        app.store
            .link_count(tandem::domain::Module::Contacts)
            .await
            .unwrap(),
        2_000
    );
    // A Salesforce transaction stamped before the last record read commits only now, and
    // later records follow well past the window each poll reads again.
    sim.insert_committed_late("Contact", json!({ "LastName": "Late" }), 30)
        .unwrap();
    sim.advance_clock(300);
    sim.insert("Contact", json!({ "LastName": "After" }))
        .unwrap();
    app.sync_now().await;
    app.sync_now().await;
    let desk = contacts_named(&app, &["Late", "After", "Early2099"]).await;
    assert_eq!(desk, ["After", "Early2099", "Late"]);
    assert_eq!(
        app.store
            .link_count(tandem::domain::Module::Contacts)
            .await
            .unwrap(),
        2_102
    );
}

/// Which of these last names desk contacts have, sorted.
async fn contacts_named(app: &TestApp, names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for name in names {
        let data = app
            .gql_ok(
                "query($q: String!) { contacts(first: 5, filter: { name: $q }) { nodes { lastName } } }",
                json!({ "q": name }),
            )
            .await;
        for node in data["contacts"]["nodes"].as_array().unwrap() {
            if node["lastName"] == *name {
                found.push(name.to_string());
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn ambiguous_matches_are_logged_not_guessed() {
    let (app, sim) = connected().await;
    sim.insert(
        "Contact",
        json!({ "LastName": "Twin", "Email": "twin@example.com" }),
    )
    .unwrap();
    app.create_contact(json!({ "lastName": "TwinA", "email": "twin@example.com" }))
        .await;
    app.create_contact(json!({ "lastName": "TwinB", "email": "TWIN@example.com" }))
        .await;
    let report = app.sync_now().await;
    assert_eq!(
        report.pulled.failed, 1,
        "the Salesforce contact matches two desk contacts"
    );
    assert_eq!(
        report.pushed.failed, 2,
        "each desk contact matches the one Salesforce contact"
    );
    let failures = entity::sync_failure::Entity::find()
        .all(app.store.connection())
        .await
        .unwrap();
    assert!(failures.iter().all(|f| f.reason == "MULTIPLE_MATCHES"));
    assert!(
        failures
            .iter()
            .all(|f| f.message.contains("move all but one to the")),
        "{failures:?}"
    );
    assert_eq!(
        sim.count("Contact"),
        1,
        "nothing was created in Salesforce either"
    );
    assert_eq!(
        by_last_name(&contacts(&app).await, "Twin").len(),
        0,
        "no guess was made"
    );
}

#[tokio::test]
async fn a_salesforce_record_naming_its_desk_record_is_no_rival_for_another_of_the_same_email() {
    let (app, sim) = connected().await;
    // Two desk contacts of one address; in Salesforce, one record names the first (pushed from
    // it, its link lost), and another has the address alone.
    let first = app
        .create_contact(json!({ "lastName": "Named", "email": "pair@example.com" }))
        .await;
    let second = app
        .create_contact(json!({ "lastName": "Other", "email": "pair@example.com" }))
        .await;
    let named = sim
        .insert(
            "Contact",
            json!({ "LastName": "Named", "Email": "pair@example.com", "Helpdesk_Id__c": app.desk_ref(&first["id"]).await }),
        )
        .unwrap();
    let other = sim
        .insert(
            "Contact",
            json!({ "LastName": "Other", "Email": "pair@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    assert_eq!(waiting_on_a_match(&app).await, Vec::new());
    assert_eq!(salesforce_id_of(&app, &first["id"]).await, named);
    assert_eq!(salesforce_id_of(&app, &second["id"]).await, other);
    assert_eq!(sim.count("Contact"), 2, "nothing made twice");
}

/// The open `MULTIPLE_MATCHES` failures: (direction, desk id, Salesforce id).
async fn waiting_on_a_match(app: &TestApp) -> Vec<(String, Value, Value)> {
    let data = app
        .gql_ok(
            "{ syncFailures(reason: MULTIPLE_MATCHES) { nodes { direction deskId salesforceId } } }",
            json!({}),
        )
        .await;
    data["syncFailures"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["direction"].as_str().unwrap().to_owned(),
                f["deskId"].clone(),
                f["salesforceId"].clone(),
            )
        })
        .collect()
}

/// A desk contact and two Salesforce contacts of one email, after the round that found them
/// ambiguous: (desk contact, Ann, Bea).
async fn one_email_three_contacts(app: &TestApp, sim: &SimHandle) -> (Value, String, String) {
    let desk = app
        .create_contact(json!({ "lastName": "Desk", "email": "shared@example.com" }))
        .await;
    let ann = sim
        .insert(
            "Contact",
            json!({ "LastName": "Ann", "Email": "shared@example.com" }),
        )
        .unwrap();
    let bea = sim
        .insert(
            "Contact",
            json!({ "LastName": "Bea", "Email": "Shared@Example.com" }),
        )
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(
        (report.pulled.failed, report.pushed.failed),
        (2, 1),
        "both Salesforce contacts, and the desk contact they match, wait for a person"
    );
    sim.advance_clock(60);
    (desk, ann, bea)
}

#[tokio::test]
async fn a_desk_contact_that_several_salesforce_contacts_match_is_not_guessed_either() {
    let (app, sim) = connected().await;
    let (desk, ann, bea) = one_email_three_contacts(&app, &sim).await;
    async fn failures(app: &TestApp) -> Vec<Value> {
        app.gql_ok(
            "{ syncFailures(reason: MULTIPLE_MATCHES) { nodes { id direction salesforceId message } } }",
            json!({}),
        )
        .await["syncFailures"]["nodes"]
            .as_array()
            .unwrap()
            .clone()
    }
    let pulled: Vec<Value> = failures(&app)
        .await
        .into_iter()
        .filter(|f| f["direction"] == "SALESFORCE_TO_DESK")
        .collect();
    assert_eq!(pulled.len(), 2, "{pulled:?}");
    for failure in &pulled {
        let message = failure["message"].as_str().unwrap();
        assert!(
            message.contains(&ann) && message.contains(&bea),
            "names both: {message}"
        );
        assert!(message.contains(desk["id"].as_str().unwrap()), "{message}");
        assert!(
            message.contains("retrySyncFailures(reason: MULTIPLE_MATCHES)"),
            "says what settles a delete, which the sync cannot see: {message}"
        );
    }
    let list = contacts(&app).await;
    assert_eq!(list.len(), 1, "neither became a desk contact: {list:?}");
    assert_eq!(
        list[0]["lastName"], "Desk",
        "nor overwrote the one they match"
    );
    assert_eq!(sim.count("Contact"), 2, "nothing was created in Salesforce");

    // Retried alone, Ann still meets Bea in the org.
    let ann_failure = pulled
        .iter()
        .find(|f| f["salesforceId"] == ann.as_str())
        .unwrap();
    let retry = "mutation($id: ID!) { retrySyncFailure(id: $id) { resolvedAt attempts } }";
    let again = app.gql_ok(retry, json!({ "id": ann_failure["id"] })).await;
    assert!(again["retrySyncFailure"]["resolvedAt"].is_null(), "{again}");
    assert_eq!(contacts(&app).await[0]["lastName"], "Desk");

    // Merged in Salesforce, the one left meets the desk contact.
    sim.delete("Contact", &bea).unwrap();
    app.gql_ok(
        "mutation { retrySyncFailures(reason: MULTIPLE_MATCHES) }",
        json!({}),
    )
    .await;
    assert_eq!(salesforce_id_of(&app, &desk["id"]).await, ann);
    app.sync_now().await;
    let list = contacts(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        list[0]["lastName"],
        sim.get("Contact", &ann).unwrap()["LastName"],
        "the pair agrees, the newer side's name on both"
    );
    assert_eq!(failures(&app).await, Vec::<Value>::new(), "all settled");
}

#[tokio::test]
async fn a_merge_in_salesforce_settles_every_record_it_left_waiting() {
    let (app, sim) = connected().await;
    let (desk, ann, bea) = one_email_three_contacts(&app, &sim).await;

    // Merged in Salesforce: Bea is deleted into Ann, whose record changes.
    sim.delete("Contact", &bea).unwrap();
    sim.update("Contact", &ann, json!({ "Title": "Merged" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(salesforce_id_of(&app, &desk["id"]).await, ann);
    assert_eq!(
        waiting_on_a_match(&app).await,
        vec![],
        "Bea's failure, whose record is gone, settles with the rest and no retry by hand"
    );
    let list = contacts(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["title"], "Merged");
}

#[tokio::test]
async fn accounts_merged_in_salesforce_settle_the_same_way() {
    let (app, sim) = connected().await;
    let desk = app.create_account("Acme Rockets").await;
    let keep = sim
        .insert("Account", json!({ "Name": "Acme Rockets" }))
        .unwrap();
    let gone = sim
        .insert("Account", json!({ "Name": "ACME ROCKETS" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(
        waiting_on_a_match(&app).await.len(),
        3,
        "both accounts and the desk's wait"
    );

    sim.advance_clock(60);
    sim.delete("Account", &gone).unwrap();
    sim.update("Account", &keep, json!({ "Industry": "Aerospace" }))
        .unwrap();
    app.sync_now().await;
    let id: i64 = desk["id"].as_str().unwrap().parse().unwrap();
    let links = app
        .store
        .links_by_desk(tandem::domain::Module::Accounts, &[id])
        .await
        .unwrap();
    assert_eq!(links[&id].salesforce_id, keep);
    assert_eq!(waiting_on_a_match(&app).await, vec![]);
}

#[tokio::test]
async fn a_record_given_another_key_lets_the_one_left_meet_the_desk() {
    let (app, sim) = connected().await;
    let (desk, ann, bea) = one_email_three_contacts(&app, &sim).await;

    sim.update("Contact", &bea, json!({ "Email": "bea@example.com" }))
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pulled.failed, 0, "{report:?}");
    assert_eq!(
        salesforce_id_of(&app, &desk["id"]).await,
        ann,
        "Ann, unchanged, is read again and meets the desk contact"
    );
    let list = contacts(&app).await;
    let bea_in_desk = by_last_name(&list, "Bea");
    assert_eq!(bea_in_desk.len(), 1, "{list:?}");
    assert_eq!(bea_in_desk[0]["email"], "bea@example.com");
    assert_eq!(salesforce_id_of(&app, &bea_in_desk[0]["id"]).await, bea);
    assert_eq!(waiting_on_a_match(&app).await, vec![]);
    assert_eq!(sim.count("Contact"), 2, "nothing was created in Salesforce");

    let mark = sim.request_count();
    let quiet = app.sync_now().await;
    assert_eq!(
        (quiet.pulled, quiet.pushed),
        (Default::default(), Default::default()),
        "nothing is woken twice"
    );
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
}

/// A Salesforce contact and two desk contacts of one email, after the round that found them
/// ambiguous: (Salesforce contact, desk One, desk Two).
async fn two_desk_contacts_one_salesforce(
    app: &TestApp,
    sim: &SimHandle,
) -> (String, Value, Value) {
    let (sf, one, two) = sol_one_and_two(app, sim).await;
    app.sync_now().await;
    assert_eq!(
        waiting_on_a_match(app).await.len(),
        3,
        "Sol, One and Two wait"
    );
    (sf, one, two)
}

#[tokio::test]
async fn an_edit_to_one_of_two_desk_contacts_sharing_an_email_settles_nothing() {
    let (app, sim) = connected().await;
    let (sf, one, two) = two_desk_contacts_one_salesforce(&app, &sim).await;

    // One alone is queued; Two, sharing its email, is no less Sol's twin.
    update_contact(&app, &one["id"], json!({ "phone": "+1 555 0100" })).await;
    app.sync_now().await;
    app.sync_now().await;
    let contact = sim.get("Contact", &sf).unwrap();
    assert_eq!(
        contact["LastName"], "Sol",
        "Salesforce's record is not written over"
    );
    assert_eq!(sim.count("Contact"), 1);
    for desk in [&one, &two] {
        let id: i64 = desk["id"].as_str().unwrap().parse().unwrap();
        let links = app
            .store
            .links_by_desk(tandem::domain::Module::Contacts, &[id])
            .await
            .unwrap();
        assert!(links.is_empty(), "desk contact {id} is linked: {links:?}");
    }
    assert_eq!(
        waiting_on_a_match(&app).await.len(),
        3,
        "all three still wait"
    );
}

/// Salesforce contact Sol and desk contacts One and Two, all with one email, not synced yet.
async fn sol_one_and_two(app: &TestApp, sim: &SimHandle) -> (String, Value, Value) {
    let sf = sim
        .insert(
            "Contact",
            json!({ "LastName": "Sol", "Email": "pair@example.com" }),
        )
        .unwrap();
    let one = app
        .create_contact(json!({ "lastName": "One", "email": "pair@example.com" }))
        .await;
    let two = app
        .create_contact(json!({ "lastName": "Two", "email": "PAIR@example.com" }))
        .await;
    (sf, one, two)
}

#[tokio::test]
async fn a_desk_contact_moved_to_the_bin_leaves_the_match_to_the_other() {
    let (app, sim) = connected().await;
    let (sf, one, two) = two_desk_contacts_one_salesforce(&app, &sim).await;

    bin_contact(&app, &two["id"]).await;
    let settled = waiting_on_a_match(&app).await;
    assert_eq!(
        settled.len(),
        2,
        "the binned contact has nothing to send: {settled:?}"
    );
    app.sync_now().await;
    assert_eq!(salesforce_id_of(&app, &one["id"]).await, sf);
    assert_eq!(waiting_on_a_match(&app).await, vec![]);
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_salesforce_contact_whose_only_desk_match_is_in_the_bin_brings_it_back() {
    let (app, sim) = connected().await;
    let binned = app
        .create_contact(json!({ "lastName": "Lovelace", "email": "ada@example.com" }))
        .await;
    bin_contact(&app, &binned["id"]).await;
    app.sync_now().await;
    let sf = sim
        .insert(
            "Contact",
            json!({ "LastName": "Lovelace", "FirstName": "Ada", "Email": "ADA@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    let live = contacts(&app).await;
    let found = by_last_name(&live, "Lovelace");
    assert_eq!(found.len(), 1, "one desk contact, not a second: {live:?}");
    assert_eq!(found[0]["id"], binned["id"], "the binned one, restored");
    assert_eq!(found[0]["firstName"], "Ada");
    assert_eq!(salesforce_id_of(&app, &binned["id"]).await, sf);
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn one_way_a_desk_contact_moved_to_the_bin_leaves_the_match_to_the_other() {
    one_way_a_rival_leaves_the_key(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn one_way_a_desk_contact_given_another_email_leaves_the_match_to_the_other() {
    one_way_a_rival_leaves_the_key(
        "mutation($id: ID!, $p: ContactPatchInput!) { updateContact(id: $id, patch: $p) { id } }",
        json!({ "p": { "email": "two@example.com" } }),
    )
    .await;
}

/// One way, no desk change goes out, so no desk failure settles to wake Sol's: the desk
/// record leaving the key does, and the next round matches Sol without being asked.
async fn one_way_a_rival_leaves_the_key(leave: &str, mut variables: Value) {
    let (app, sim) = connected().await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    let (sf, one, two) = sol_one_and_two(&app, &sim).await;
    app.sync_now().await;
    assert_eq!(waiting_on_a_match(&app).await.len(), 1, "Sol waits");
    app.sync_now().await;
    assert_eq!(waiting_on_a_match(&app).await.len(), 1, "Sol still waits");

    variables["id"] = two["id"].clone();
    app.gql_ok(leave, variables).await;
    app.sync_now().await;
    assert_eq!(waiting_on_a_match(&app).await, vec![]);
    assert_eq!(salesforce_id_of(&app, &one["id"]).await, sf);
}

#[tokio::test]
async fn one_way_purging_one_of_two_binned_matches_leaves_the_match_to_the_other() {
    one_way_binned_rivals_settled_by("purgeContact(id: $id)", false).await;
}

#[tokio::test]
async fn one_way_restoring_one_of_two_binned_matches_leaves_the_match_to_it() {
    one_way_binned_rivals_settled_by("restoreContact(id: $id) { id }", true).await;
}

/// One and Two, both in the bin, are Sol's rival matches; `settle` (given Two, or One when
/// `restores`) leaves a single one, which the next round matches without being asked: the
/// bin cannot be edited, so this is the only way a person settles it in the desk.
async fn one_way_binned_rivals_settled_by(settle: &str, restores: bool) {
    let (app, sim) = connected().await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    let (sf, one, two) = sol_one_and_two(&app, &sim).await;
    bin_contact(&app, &one["id"]).await;
    bin_contact(&app, &two["id"]).await;
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(waiting_on_a_match(&app).await.len(), 1, "Sol waits");

    let settled = if restores { &one } else { &two };
    app.gql_ok(
        &format!("mutation($id: ID!) {{ {settle} }}"),
        json!({ "id": settled["id"] }),
    )
    .await;
    app.sync_now().await;
    assert_eq!(waiting_on_a_match(&app).await, vec![]);
    assert_eq!(salesforce_id_of(&app, &one["id"]).await, sf);
    let live = contacts(&app).await;
    assert!(
        live.iter().any(|c| c["id"] == one["id"]),
        "One is out of the bin: {live:?}"
    );
}

#[tokio::test]
async fn desk_contacts_told_apart_in_the_desk_meet_salesforce_on_their_own() {
    let (app, sim) = connected().await;
    let (sf, one, two) = two_desk_contacts_one_salesforce(&app, &sim).await;

    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { email: \"two@example.com\" }) { id } }",
        json!({ "id": two["id"] }),
    )
    .await;
    // Two, given its own email, goes out on its own; the round after, Sol and One meet.
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(waiting_on_a_match(&app).await, vec![]);
    assert_eq!(salesforce_id_of(&app, &one["id"]).await, sf);
    let two_sf = salesforce_id_of(&app, &two["id"]).await;
    assert_ne!(two_sf, sf);
    assert_eq!(
        sim.get("Contact", &two_sf).unwrap()["Email"],
        "two@example.com"
    );
    assert_eq!(sim.count("Contact"), 2);
    assert_eq!(contacts(&app).await.len(), 2);
}

#[tokio::test]
async fn a_salesforce_contact_meets_only_desk_contacts_not_linked_yet() {
    let (app, sim) = connected().await;
    let original = app
        .create_contact(json!({ "lastName": "Original", "email": "same@example.com" }))
        .await;
    app.sync_now().await;
    let original_sf = salesforce_id_of(&app, &original["id"]).await;
    // One more contact of the same email on each side.
    let copy = app
        .create_contact(json!({ "lastName": "Copy", "email": "SAME@example.com" }))
        .await;
    sim.advance_clock(60);
    let twin = sim
        .insert(
            "Contact",
            json!({ "LastName": "Twin", "Email": "same@example.com" }),
        )
        .unwrap();

    let report = app.sync_now().await;
    assert_eq!(
        report.pulled.failed, 0,
        "the linked contact is no candidate, so the match is not ambiguous"
    );
    assert_eq!(
        salesforce_id_of(&app, &copy["id"]).await,
        twin,
        "Twin met the one desk contact not linked yet"
    );
    assert_eq!(
        salesforce_id_of(&app, &original["id"]).await,
        original_sf,
        "the first link stands"
    );
    assert_eq!(contacts(&app).await.len(), 2, "nothing was duplicated");
    assert_eq!(sim.count("Contact"), 2);
}

#[tokio::test]
async fn a_new_salesforce_contact_of_an_account_in_the_recycle_bin_comes_once_it_is_restored() {
    a_contact_waiting_for_a_binned_account_comes_with_it(Restore::InTheDesk).await;
}

#[tokio::test]
async fn a_new_salesforce_contact_of_an_account_in_the_recycle_bin_comes_once_salesforce_updates_it()
 {
    a_contact_waiting_for_a_binned_account_comes_with_it(Restore::BySalesforceUpdate).await;
}

#[tokio::test]
async fn a_new_salesforce_contact_of_an_account_in_the_recycle_bin_comes_without_it_once_it_is_purged()
 {
    a_contact_waiting_for_a_binned_account_comes_with_it(Restore::Purged).await;
}

enum Restore {
    InTheDesk,
    /// A Salesforce update of the account brings it back.
    BySalesforceUpdate,
    /// Not restored: purged from the bin, and the contact comes without it.
    Purged,
}

async fn a_contact_waiting_for_a_binned_account_comes_with_it(restore: Restore) {
    let (app, sim) = connected().await;
    let acme = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    sim.insert(
        "Contact",
        json!({ "LastName": "Early", "Email": "early@example.com", "AccountId": acme }),
    )
    .unwrap();
    app.sync_now().await;
    let desk_acme = app
        .gql_ok("{ accounts(first: 10) { nodes { id name } } }", json!({}))
        .await["accounts"]["nodes"][0]["id"]
        .clone();
    app.gql_ok(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": desk_acme }),
    )
    .await;
    sim.advance_clock(60);
    sim.insert(
        "Contact",
        json!({ "LastName": "Late", "Email": "late@example.com", "AccountId": acme }),
    )
    .unwrap();

    let report = app.sync_now().await;
    assert_eq!(report.pulled.failed, 1, "{report:?}");
    assert!(by_last_name(&contacts(&app).await, "Late").is_empty());
    let failures = entity::sync_failure::Entity::find()
        .all(app.store.connection())
        .await
        .unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].message.contains("in the recycle bin"),
        "{}",
        failures[0].message
    );
    assert_eq!(
        failures[0].reason, "ACCOUNT_NOT_SYNCED",
        "it waits for the account"
    );

    // Restored, the account brings the contact that waited for it with the next round,
    // however long it waited.
    entity::sync_failure::Entity::update_many()
        .col_expr(
            entity::sync_failure::Column::NextAttemptAt,
            sea_orm::sea_query::Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .exec(app.store.connection())
        .await
        .unwrap();
    match restore {
        Restore::InTheDesk => {
            app.gql_ok(
                "mutation($id: ID!) { restoreAccount(id: $id) { id } }",
                json!({ "id": desk_acme }),
            )
            .await;
        }
        Restore::BySalesforceUpdate => {
            sim.advance_clock(60);
            sim.update("Account", &acme, json!({ "Phone": "+1 555 0100" }))
                .unwrap();
        }
        Restore::Purged => {
            app.gql_ok(
                "mutation($id: ID!) { purgeAccount(id: $id) }",
                json!({ "id": desk_acme }),
            )
            .await;
        }
    }
    app.sync_now().await;
    let late = contacts(&app).await;
    let late = by_last_name(&late, "Late");
    assert_eq!(late.len(), 1, "created once its account is back or gone");
    let account = match restore {
        Restore::Purged => Value::Null,
        _ => json!("Acme"),
    };
    assert_eq!(late[0]["account"]["name"], account, "{}", late[0]);
    assert_eq!(open_failure_count(&app).await, 0);
}

#[tokio::test]
async fn every_batch_is_in_the_sync_history() {
    let (app, sim) = connected().await;
    sim.insert("Contact", json!({ "LastName": "FromOrg" }))
        .unwrap();
    app.create_contact(json!({ "lastName": "FromDesk" })).await;
    app.sync_now().await;
    let all = app
        .gql_ok(
            "{ syncHistory(first: 100) { nodes { direction module added updated failed at } } }",
            json!({}),
        )
        .await;
    let entries = all["syncHistory"]["nodes"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["direction"] == "SALESFORCE_TO_DESK"
                && e["module"] == "CONTACTS"
                && e["added"] == 1),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["direction"] == "DESK_TO_SALESFORCE"
                && e["module"] == "CONTACTS"
                && e["added"] == 1),
        "{entries:?}"
    );
    let outbound = app
        .gql_ok(
            "{ syncHistory(direction: DESK_TO_SALESFORCE) { nodes { direction } } }",
            json!({}),
        )
        .await;
    let outbound = outbound["syncHistory"]["nodes"].as_array().unwrap();
    let listed = entries
        .iter()
        .filter(|e| e["direction"] == "DESK_TO_SALESFORCE")
        .count();
    assert!(listed > 0, "{entries:?}");
    assert_eq!(outbound.len(), listed, "{outbound:?}");
    assert!(
        outbound
            .iter()
            .all(|e| e["direction"] == "DESK_TO_SALESFORCE")
    );
}

#[tokio::test]
async fn history_older_than_the_retention_goes_even_while_the_sync_is_paused() {
    use sea_orm::{ColumnTrait, QueryFilter, sea_query::Expr};
    let (app, sim) = connected().await;
    sim.insert("Contact", json!({ "LastName": "Old" })).unwrap();
    app.sync_now().await;
    app.create_contact(json!({ "lastName": "Recent" })).await;
    app.sync_now().await;
    const HISTORY: &str = "{ syncHistory(first: 10) { nodes { direction module added } } }";
    let before = app.gql_ok(HISTORY, json!({})).await["syncHistory"]["nodes"].clone();
    assert_eq!(before.as_array().unwrap().len(), 2, "{before}");
    // The first round's entry is eight days old; the default keeps seven.
    entity::sync_history::Entity::update_many()
        .col_expr(
            entity::sync_history::Column::At,
            Expr::value(chrono::Utc::now() - chrono::Duration::days(8)),
        )
        .filter(entity::sync_history::Column::Direction.eq("SALESFORCE_TO_DESK"))
        .exec(app.store.connection())
        .await
        .unwrap();
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;

    let report = app.sync_now().await;
    assert!(report.idle.is_some(), "paused, the round does nothing else");
    let after = app.gql_ok(HISTORY, json!({})).await["syncHistory"]["nodes"].clone();
    assert_eq!(
        after,
        json!([{ "direction": "DESK_TO_SALESFORCE", "module": "CONTACTS", "added": 1 }]),
        "the week-old entry is gone, the recent one kept"
    );
}

#[tokio::test]
async fn a_mapping_change_reads_every_linked_record_again_under_the_new_mapping() {
    let (app, sim) = connected().await;
    let ada = sim
        .insert(
            "Contact",
            json!({ "LastName": "Ada", "Title": "Engineer", "Description": "Research" }),
        )
        .unwrap();
    let bob = sim
        .insert(
            "Contact",
            json!({ "LastName": "Bob", "Title": "Buyer", "Description": "Purchasing" }),
        )
        .unwrap();
    app.sync_now().await;
    // A contact made an hour later moves the cursor on: the window each poll reads again
    // no longer reaches Ada and Bob.
    sim.advance_clock(3600);
    sim.insert("Contact", json!({ "LastName": "Cy" })).unwrap();
    let dee = sim
        .insert("Contact", json!({ "LastName": "Dee", "Title": "Manager" }))
        .unwrap();
    app.sync_now().await;
    // Dee's new phone goes out from the desk, and the next round reads Dee back.
    let dee_in_desk = by_last_name(&contacts(&app).await, "Dee")[0]["id"].clone();
    update_contact(&app, &dee_in_desk, json!({ "phone": "+1 555 0199" })).await;
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(sim.get("Contact", &dee).unwrap()["Phone"], "+1 555 0199");
    // Cy goes to the desk's recycle bin; Salesforce keeps it.
    let cy = by_last_name(&contacts(&app).await, "Cy")[0]["id"].clone();
    bin_contact(&app, &cy).await;
    app.sync_now().await;
    const MAPPINGS: &str = "{ fieldMappings(module: CONTACTS) { deskField salesforceField } }";
    const SAVE: &str = "mutation($maps: [FieldMappingInput!]!) { updateFieldMappings(module: CONTACTS, mappings: $maps) { deskField } }";
    let mut maps = app.gql_ok(MAPPINGS, json!({})).await["fieldMappings"]
        .as_array()
        .unwrap()
        .clone();
    // Saved as they are, nothing is read again.
    app.gql_ok(SAVE, json!({ "maps": maps })).await;
    let report = app.sync_now().await;
    assert_eq!((report.pulled, report.pushed), Default::default());

    // The desk's title now comes from Description, in place of whatever came from it.
    maps.retain(|m| m["salesforceField"] != "Description");
    for map in &mut maps {
        if map["deskField"] == "title" {
            map["salesforceField"] = json!("Description");
        }
    }
    app.gql_ok(SAVE, json!({ "maps": maps })).await;
    let report = app.sync_now().await;
    assert_eq!(report.pulled.updated, 2, "Ada and Bob: {report:?}");
    assert_eq!(
        report.pushed.updated, 1,
        "Dee's title fills Description: {report:?}"
    );
    let list = contacts(&app).await;
    assert_eq!(by_last_name(&list, "Ada")[0]["title"], "Research");
    assert_eq!(by_last_name(&list, "Bob")[0]["title"], "Purchasing");
    assert_eq!(
        by_last_name(&list, "Dee")[0]["title"],
        "Manager",
        "an empty Salesforce field does not blank the desk's"
    );
    assert_eq!(sim.get("Contact", &dee).unwrap()["Description"], "Manager");
    assert!(
        by_last_name(&list, "Cy").is_empty(),
        "read again unchanged, a record the desk deleted stays deleted: {list:?}"
    );

    // From then on each side's edits cross through the new mapping, and nothing echoes.
    let bob_desk = by_last_name(&list, "Bob")[0]["id"].clone();
    update_contact(&app, &bob_desk, json!({ "title": "Head of Purchasing" })).await;
    sim.advance_clock(60);
    sim.update("Contact", &ada, json!({ "Description": "Compilers" }))
        .unwrap();
    app.sync_now().await;
    let org = sim.get("Contact", &bob).unwrap();
    assert_eq!(org["Description"], "Head of Purchasing");
    assert_eq!(org["Title"], "Buyer", "no longer mapped, left be");
    assert_eq!(
        by_last_name(&contacts(&app).await, "Ada")[0]["title"],
        "Compilers"
    );
    let report = app.sync_now().await;
    assert_eq!((report.pulled, report.pushed), Default::default());
}

#[tokio::test]
async fn a_desk_value_a_one_way_mapping_change_kept_goes_out_once_the_sync_turns_two_way() {
    let (app, sim) = connected().await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    let dee = sim
        .insert("Contact", json!({ "LastName": "Dee", "Title": "Manager" }))
        .unwrap();
    app.sync_now().await;
    // The desk's title now comes from Description, which Salesforce holds empty: the desk
    // keeps "Manager", and one-way sends nothing.
    let mut maps = app.field_mappings("CONTACTS").await;
    maps.retain(|m| m["salesforceField"] != "Description" && m["deskField"] != "title");
    maps.push(json!({ "deskField": "title", "salesforceField": "Description" }));
    app.gql_ok(
        "mutation($maps: [FieldMappingInput!]!) { updateFieldMappings(module: CONTACTS, mappings: $maps) { deskField } }",
        json!({ "maps": maps }),
    )
    .await;
    app.sync_now().await;
    let dee_in_desk = by_last_name(&contacts(&app).await, "Dee")[0]["id"].clone();
    assert_eq!(
        by_last_name(&contacts(&app).await, "Dee")[0]["title"],
        "Manager"
    );
    assert_eq!(
        sim.get("Contact", &dee).unwrap()["Description"],
        Value::Null
    );

    app.set_sync_type("TWO_WAY").await;
    app.sync_now().await;
    assert_eq!(
        sim.get("Contact", &dee).unwrap()["Description"],
        "Manager",
        "what the desk kept goes out once desk values may"
    );
    // A Salesforce edit made afterwards carries it back, rather than blanking the desk's.
    sim.advance_clock(60);
    sim.update("Contact", &dee, json!({ "Phone": "+1 555 0100" }))
        .unwrap();
    app.sync_now().await;
    let list = contacts(&app).await;
    let read = by_last_name(&list, "Dee");
    assert_eq!(read[0]["id"], dee_in_desk);
    assert_eq!(read[0]["title"], "Manager");
}

#[tokio::test]
async fn a_desk_edit_that_outlives_a_mapping_change_does_not_blank_the_newly_mapped_field() {
    let (app, sim) = connected().await;
    let ada = sim
        .insert(
            "Contact",
            json!({ "LastName": "Ada", "Department": "Research", "MailingCity": "Paris" }),
        )
        .unwrap();
    app.sync_now().await;
    let ada_in_desk = by_last_name(&contacts(&app).await, "Ada")[0]["id"].clone();
    // The desk's edit waits in the outbox as the desk's mailing state comes to be read from
    // Department: the round reads Ada again, the edit is newer, and the desk's record wins.
    update_contact(
        &app,
        &ada_in_desk,
        json!({ "phone": "+1 555 0100", "mailingCity": null }),
    )
    .await;
    app.map_field("CONTACTS", "mailingState", "Department")
        .await;
    app.sync_now().await;

    let org = sim.get("Contact", &ada).unwrap();
    assert_eq!(org["Phone"], "+1 555 0100");
    assert_eq!(
        org["MailingCity"],
        Value::Null,
        "the desk's own clearing goes out"
    );
    assert_eq!(
        org["Department"], "Research",
        "the desk never held a value there to send over Salesforce's"
    );
    let desk = desk_contact(&app, &ada_in_desk, "mailingState").await;
    assert_eq!(desk["mailingState"], "Research");
    let report = app.sync_now().await;
    assert_eq!((report.pulled, report.pushed), Default::default());
}

#[tokio::test]
async fn a_record_restored_after_a_mapping_change_keeps_salesforces_value_in_the_newly_mapped_field()
 {
    let (app, sim) = connected().await;
    let ada = sim
        .insert(
            "Contact",
            json!({ "LastName": "Ada", "Department": "Research" }),
        )
        .unwrap();
    app.sync_now().await;
    let ada_in_desk = by_last_name(&contacts(&app).await, "Ada")[0]["id"].clone();
    bin_contact(&app, &ada_in_desk).await;
    app.sync_now().await;
    // Read again under the new mapping while in the recycle bin, then brought back.
    app.map_field("CONTACTS", "mailingState", "Department")
        .await;
    app.sync_now().await;
    app.gql_ok(
        "mutation($id: ID!) { restoreContact(id: $id) { id } }",
        json!({ "id": ada_in_desk }),
    )
    .await;
    app.sync_now().await;

    assert_eq!(
        sim.get("Contact", &ada).unwrap()["Department"],
        "Research",
        "the restored record had no value there to send over Salesforce's"
    );
    let desk = desk_contact(&app, &ada_in_desk, "mailingState").await;
    assert_eq!(desk["mailingState"], "Research");
    let report = app.sync_now().await;
    assert_eq!((report.pulled, report.pushed), Default::default());
}

#[tokio::test]
async fn a_fixed_failure_resolves_on_retry() {
    let (app, sim) = connected().await;
    sim.insert(
        "Contact",
        json!({ "LastName": "Twin", "Email": "twin@example.com" }),
    )
    .unwrap();
    app.create_contact(json!({ "lastName": "TwinA", "email": "twin@example.com" }))
        .await;
    let b = app
        .create_contact(json!({ "lastName": "TwinB", "email": "twin@example.com" }))
        .await;
    app.sync_now().await;
    let open = app
        .gql_ok("{ syncFailures(reason: MULTIPLE_MATCHES) { nodes { id reason direction salesforceId message attempts } } }", json!({}))
        .await;
    let nodes = open["syncFailures"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 3);
    let failure = nodes
        .iter()
        .find(|f| f["direction"] == "SALESFORCE_TO_DESK")
        .unwrap()
        .clone();

    let still = app
        .gql_ok(
            "mutation($id: ID!) { retrySyncFailure(id: $id) { resolvedAt attempts } }",
            json!({ "id": failure["id"] }),
        )
        .await;
    assert_eq!(
        still["retrySyncFailure"]["resolvedAt"],
        Value::Null,
        "nothing changed, so it fails again"
    );
    assert_eq!(still["retrySyncFailure"]["attempts"], 2);

    update_contact(&app, &b["id"], json!({ "email": "twin.b@example.com" })).await;
    let fixed = app
        .gql_ok(
            "mutation($id: ID!) { retrySyncFailure(id: $id) { resolvedAt } }",
            json!({ "id": failure["id"] }),
        )
        .await;
    assert!(fixed["retrySyncFailure"]["resolvedAt"].is_string());
    let left = app
        .gql_ok(
            "mutation { retrySyncFailures(reason: MULTIPLE_MATCHES) }",
            json!({}),
        )
        .await;
    assert_eq!(
        left["retrySyncFailures"], 0,
        "TwinB, now with its own email, went out as a new contact"
    );
    assert_eq!(sim.count("Contact"), 2);
    let open = app
        .gql_ok("{ syncFailures { nodes { id } } }", json!({}))
        .await;
    assert_eq!(open["syncFailures"]["nodes"], json!([]));
    let all = app
        .gql_ok(
            "{ syncFailures(includeResolved: true) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(all["syncFailures"]["nodes"].as_array().unwrap().len(), 3);
    let again = app
        .gql(
            "mutation($id: ID!) { retrySyncFailure(id: $id) { id } }",
            json!({ "id": failure["id"] }),
        )
        .await;
    assert_eq!(crate::helpers::codes(&again), ["CONFLICT"]);
}

#[tokio::test]
async fn an_outage_or_an_exhausted_api_budget_loses_nothing() {
    let (app, sim) = connected().await;
    app.sync_now().await;
    app.create_contact(json!({ "lastName": "Patient" })).await;

    sim.fail_next(&[503; 4]);
    assert!(app.engine.run_once().await.is_err(), "the round stops");
    assert_eq!(
        app.store.outbox_len().await.unwrap(),
        1,
        "the change waits in the outbox"
    );

    let used = sim.api_usage();
    sim.set_daily_api_limit(used);
    let limited = app.engine.run_once().await.unwrap_err();
    assert!(limited.to_string().contains("limit"), "{limited}");
    assert_eq!(app.store.outbox_len().await.unwrap(), 1);
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(
        state["integration"]["status"], "ACTIVE",
        "a spent budget is not an error state"
    );
    let reason = state["integration"]["statusReason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("last sync round stopped") && reason.contains("limit"),
        "the admin sees why nothing crosses: {state}"
    );

    sim.set_daily_api_limit(1_000_000);
    sim.expire_tokens();
    app.sync_now().await;
    let state = app
        .gql_ok("{ integration { statusReason } }", json!({}))
        .await;
    assert_eq!(
        state["integration"]["statusReason"],
        Value::Null,
        "cleared once a round gets through"
    );
    assert_eq!(app.store.outbox_len().await.unwrap(), 0);
    assert_eq!(
        sim.count("Contact"),
        1,
        "pushed exactly once after the expired token was renewed"
    );
}

#[tokio::test]
async fn non_administrators_cannot_read_or_retry_the_sync_log() {
    let (app, _sim) = connected().await;
    for op in [
        "{ syncHistory { nodes { id } } }",
        "{ syncFailures { nodes { id } } }",
        "mutation { retrySyncFailure(id: \"1\") { id } }",
        "mutation { retrySyncFailures(reason: MULTIPLE_MATCHES) }",
    ] {
        let body = app.gql_as("Agent", op, json!({})).await;
        assert_eq!(crate::helpers::codes(&body), ["FORBIDDEN"], "{op}");
    }
}

#[tokio::test]
async fn history_failures_and_status_changes_are_published_as_they_happen() {
    use tandem::domain::IntegrationStatus;
    use tandem::sync::SyncEventKind;
    let (app, sim) = connected().await;
    let mut events = app.engine.subscribe();
    sim.insert("Contact", json!({ "LastName": "Announced" }))
        .unwrap();
    app.create_contact(json!({ "lastName": "Refused" })).await;
    sim.reject_next_records(&[("STRING_TOO_LONG", "Title: data value too large")]);
    app.sync_now().await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    let mut seen = Vec::new();
    let mut last_id = 0;
    while let Ok(event) = events.try_recv() {
        assert!(
            event.id > last_id,
            "ids increase: {} after {last_id}",
            event.id
        );
        last_id = event.id;
        seen.push(match event.kind {
            SyncEventKind::History(h) => {
                format!("history {} {} +{}", h.direction, h.module, h.added)
            }
            SyncEventKind::Failure(f) => format!("failure {}", f.reason),
            SyncEventKind::Status { status, .. } => format!("status {status}"),
        });
    }
    assert!(
        seen.contains(&"history SALESFORCE_TO_DESK CONTACTS +1".to_owned()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"failure STRING_TOO_LONG".to_owned()),
        "{seen:?}"
    );
    let statuses: Vec<&String> = seen.iter().filter(|e| e.starts_with("status")).collect();
    assert_eq!(
        statuses,
        [
            &format!("status {}", IntegrationStatus::Paused),
            &format!("status {}", IntegrationStatus::Active)
        ]
    );
}

#[tokio::test]
async fn revoked_credentials_put_the_integration_in_error_until_reconnected() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let refresh = sim.refresh_token();
    let connected = crate::integration::connect_with_refresh_token(&app, &sim, &refresh).await;
    assert_eq!(
        connected["data"]["connectSalesforce"]["status"], "ACTIVE",
        "{connected}"
    );
    let who = app
        .gql_ok("{ integration { connectedUser } }", json!({}))
        .await;
    assert_eq!(
        who["integration"]["connectedUser"],
        sim.config().username.as_str(),
        "the user the refresh token belongs to, as Salesforce names it"
    );
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;

    let revoked = reqwest::Client::new()
        .post(format!("{}/services/oauth2/revoke", sim.base_url()))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    sim.expire_tokens();
    assert!(app.engine.run_once().await.is_err());
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(state["integration"]["status"], "ERROR");
    assert!(
        state["integration"]["statusReason"]
            .as_str()
            .unwrap()
            .contains("reconnect"),
        "{state}"
    );
    // An admin's read of the org meets the same refusal: not an outage to wait out.
    let fields = app
        .gql(
            "{ mappableFields(module: CONTACTS) { deskField } }",
            json!({}),
        )
        .await;
    assert_eq!(
        fields["errors"][0]["extensions"]["code"], "CONFLICT",
        "{fields}"
    );
    assert!(
        fields["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("connectSalesforce"),
        "{fields}"
    );
    // Resuming or starting cannot get past it either, and each says what would.
    for mutation in [
        "mutation { resumeSync { status } }",
        "mutation { startSync { status } }",
    ] {
        let refused = app.gql(mutation, json!({})).await;
        assert_eq!(crate::helpers::codes(&refused), ["CONFLICT"], "{refused}");
        let message = refused["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("connectSalesforce"), "{refused}");
    }
    let mark = sim.request_count();
    assert!(
        app.sync_now().await.idle.is_some(),
        "the worker stays idle while in error"
    );
    assert_eq!(sim.request_count(), mark);

    let back = connect(&app, &sim, "tandem").await;
    assert_eq!(back["data"]["connectSalesforce"]["status"], "ACTIVE");
    // The same org again: the sync goes on from where it was, with no second first sync.
    let state = app.gql_ok("{ integration { firstSync } }", json!({})).await;
    assert_eq!(state["integration"]["firstSync"], "DONE", "{state}");
    let sf_id = sim
        .insert("Contact", json!({ "LastName": "Returning" }))
        .unwrap();
    let report = app.sync_now().await;
    assert!(report.idle.is_none(), "{report:?}");
    let returning = by_last_name(&contacts(&app).await, "Returning")[0]["id"].clone();
    assert_eq!(salesforce_id_of(&app, &returning).await, sf_id);
}

#[tokio::test]
async fn a_sign_in_the_edge_throttles_is_tried_again_not_taken_for_refused_credentials() {
    let (app, sim) = connected().await;
    sim.expire_tokens();
    // Each of the four attempts a call makes (one throttled sign-in alone is asked again).
    sim.throttle_sign_ins(4);
    let id = sim
        .insert("Contact", json!({ "LastName": "Patient" }))
        .unwrap();
    assert!(app.engine.run_once().await.is_err());
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(state["integration"]["status"], "ACTIVE", "{state}");
    assert!(
        state["integration"]["statusReason"]
            .as_str()
            .unwrap()
            .contains("retried"),
        "{state}"
    );

    let report = app.sync_now().await;
    assert!(report.idle.is_none(), "{report:?}");
    assert_eq!(by_last_name(&contacts(&app).await, "Patient").len(), 1);
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(state["integration"]["statusReason"], Value::Null, "{state}");
    let patient = by_last_name(&contacts(&app).await, "Patient")[0]["id"].clone();
    assert_eq!(salesforce_id_of(&app, &patient).await, id);
}

#[tokio::test]
async fn accounts_with_numbers_go_out_and_settle_on_what_salesforce_keeps() {
    let (app, sim) = connected().await;
    let account = app
        .gql_ok(
            "mutation { createAccount(input: { name: \"Counted\", employees: 1200, annualRevenue: 5000000.5 }) { id } }",
            json!({}),
        )
        .await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    let id: i64 = account["createAccount"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let links = app
        .store
        .links_by_desk(tandem::domain::Module::Accounts, &[id])
        .await
        .unwrap();
    let sf = sim.get("Account", &links[&id].salesforce_id).unwrap();
    assert_eq!(sf["NumberOfEmployees"], 1200);
    assert_eq!(
        sf["AnnualRevenue"], 5000001.0,
        "Salesforce keeps annual revenue in whole units, rounded"
    );

    // Read back, Salesforce's rounded value is the desk's too: both sides show one number.
    let log = sim.requests().len();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, log), Vec::<String>::new(), "no echo");
    let revenue = || async {
        app.gql_ok(
            &format!("{{ account(id: \"{id}\") {{ annualRevenue updatedAt }} }}"),
            json!({}),
        )
        .await["account"]
            .clone()
    };
    let desk = revenue().await;
    assert_eq!(desk["annualRevenue"], 5000001.0, "{desk}");
    let log = sim.requests().len();
    let report = app.sync_now().await;
    assert_eq!(writes_since(&sim, log), Vec::<String>::new(), "no echo");
    assert_eq!(
        (report.pulled.updated, report.pushed.updated),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(revenue().await, desk, "settled");
}

#[tokio::test]
async fn a_contact_waits_in_the_desk_while_salesforce_refuses_its_account() {
    let (app, sim) = connected().await;
    let account = app.create_account("Refused Ltd").await;
    let contact = app
        .create_contact(json!({ "lastName": "Kept", "accountId": account["id"] }))
        .await;
    sim.reject_next_records(&[("FIELD_INTEGRITY_EXCEPTION", "The account cannot be saved")]);
    app.sync_now().await;
    assert!(
        sim.records("Contact")
            .iter()
            .all(|c| c["LastName"] != "Kept"),
        "not sent without its account"
    );
    let kept = by_last_name(&contacts(&app).await, "Kept")[0].clone();
    assert_eq!(kept["account"]["name"], "Refused Ltd", "the desk keeps it");
    let failures = app
        .gql_ok(
            "{ syncFailures { nodes { id reason module deskId } } }",
            json!({}),
        )
        .await;
    let failures = failures["syncFailures"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    let failure_of = |module: &str, desk: &Value| {
        failures
            .iter()
            .find(|f| f["module"] == module && &f["deskId"] == desk)
            .cloned()
            .unwrap_or_else(|| panic!("no failure for {module} {desk}: {failures:?}"))
    };
    assert_eq!(
        failure_of("ACCOUNTS", &account["id"])["reason"],
        "INVALID_PARAMETER"
    );
    assert_eq!(
        failure_of("CONTACTS", &contact["id"])["reason"],
        "ACCOUNT_NOT_SYNCED"
    );

    // The administrator retries the account once its cause is fixed, then its contacts.
    let account_failure = failure_of("ACCOUNTS", &account["id"]);
    app.gql_ok(
        "mutation($id: ID!) { retrySyncFailure(id: $id) { resolvedAt } }",
        json!({ "id": account_failure["id"] }),
    )
    .await;
    let retried = app
        .gql_ok(
            "mutation { retrySyncFailures(reason: ACCOUNT_NOT_SYNCED) }",
            json!({}),
        )
        .await;
    assert_eq!(retried["retrySyncFailures"], 0, "none is left open");
    let sf = sim
        .get("Contact", &salesforce_id_of(&app, &contact["id"]).await)
        .unwrap();
    let sf_account = sim
        .records("Account")
        .into_iter()
        .find(|a| a["Name"] == "Refused Ltd")
        .unwrap();
    assert_eq!(
        sf["AccountId"], sf_account["Id"],
        "it arrives with its account"
    );
}

/// An org with Acme and its contact `last_name`, synced, then Acme purged from the desk.
/// Answers Acme's and the contact's Salesforce ids and the contact's desk id.
async fn purged_acme(app: &TestApp, sim: &SimHandle, last_name: &str) -> (String, String, Value) {
    let acme = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    let contact = sim
        .insert(
            "Contact",
            json!({ "LastName": last_name, "Email": format!("{last_name}@example.com"), "AccountId": acme }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_acme = app
        .gql_ok("{ accounts(first: 10) { nodes { id } } }", json!({}))
        .await["accounts"]["nodes"][0]["id"]
        .clone();
    app.bin_and_purge("Account", &desk_acme).await;
    let desk = by_last_name(&contacts(app).await, last_name)[0].clone();
    assert!(desk["account"].is_null(), "{desk}");
    (acme, contact, desk["id"].clone())
}

/// A contact the desk holds without the account it purged stays in it in Salesforce: a desk
/// edit goes out without taking it out, and the account, back from Salesforce, takes it in.
async fn stays_in_its_purged_account(
    app: &TestApp,
    sim: &SimHandle,
    (desk_id, salesforce_id, acme): (&Value, &str, &str),
    last_name: &str,
) {
    update_contact(app, desk_id, json!({ "phone": "+44 20 7946 0002" })).await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    let in_org = sim.get("Contact", salesforce_id).unwrap();
    assert_eq!(in_org["Phone"], "+44 20 7946 0002");
    assert_eq!(in_org["AccountId"], acme, "deletes do not cross");

    sim.advance_clock(5);
    sim.update("Account", acme, json!({ "Phone": "+44 20 7946 0001" }))
        .unwrap();
    app.sync_now().await;
    let back = by_last_name(&contacts(app).await, last_name)[0].clone();
    assert_eq!(back["account"]["name"], "Acme", "{back}");
}

#[tokio::test]
async fn purging_an_account_leaves_its_contacts_in_their_salesforce_account() {
    let (app, sim) = connected().await;
    let (acme, ada, desk_ada) = purged_acme(&app, &sim, "Lovelace").await;

    // A desk edit goes out without taking the contact out of its account.
    update_contact(&app, &desk_ada, json!({ "title": "Countess" })).await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    let in_org = sim.get("Contact", &ada).unwrap();
    assert_eq!(in_org["Title"], "Countess");
    assert_eq!(in_org["AccountId"], acme.as_str(), "deletes do not cross");

    // A Salesforce edit of the contact arrives; it does not wait for the purged account.
    sim.advance_clock(5);
    sim.update("Contact", &ada, json!({ "Phone": "+44 20 7946 0000" }))
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pulled.failed, 0, "{report:?}");
    let phone = desk_contact(&app, &desk_ada, "phone account { name }").await;
    assert_eq!(phone["phone"], "+44 20 7946 0000", "{phone}");
    assert!(phone["account"].is_null(), "{phone}");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");

    // A Salesforce update brings the account back, and its contact with it.
    sim.advance_clock(5);
    sim.update("Account", &acme, json!({ "Phone": "+44 20 7946 0001" }))
        .unwrap();
    app.sync_now().await;
    let back = by_last_name(&contacts(&app).await, "Lovelace")[0].clone();
    assert_eq!(back["account"]["name"], "Acme", "{back}");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
    assert_eq!(
        sim.get("Contact", &ada).unwrap()["AccountId"],
        acme.as_str()
    );
}

#[tokio::test]
async fn a_contact_salesforce_moves_out_of_a_purged_account_is_not_put_back() {
    let (app, sim) = connected().await;
    let (acme, byron, desk_byron) = purged_acme(&app, &sim, "Byron").await;

    sim.advance_clock(5);
    sim.update("Contact", &byron, json!({ "AccountId": null }))
        .unwrap();
    app.sync_now().await;
    update_contact(&app, &desk_byron, json!({ "title": "Poet" })).await;
    app.sync_now().await;
    let in_org = sim.get("Contact", &byron).unwrap();
    assert_eq!(in_org["Title"], "Poet");
    assert!(in_org["AccountId"].is_null(), "{in_org}");

    // Nor does the account take it back when it returns.
    sim.advance_clock(5);
    sim.update("Account", &acme, json!({ "Phone": "+1 555 0100" }))
        .unwrap();
    app.sync_now().await;
    let desk = by_last_name(&contacts(&app).await, "Byron")[0].clone();
    assert!(desk["account"].is_null(), "{desk}");
}

#[tokio::test]
async fn a_desk_edit_that_names_no_account_takes_the_contact_out_of_a_purged_one() {
    let (app, sim) = connected().await;
    let (acme, shelley, desk_shelley) = purged_acme(&app, &sim, "Shelley").await;

    // The desk shows no account already; saying so takes it out of Salesforce's too.
    update_contact(&app, &desk_shelley, json!({ "accountId": null })).await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    let in_org = sim.get("Contact", &shelley).unwrap();
    assert!(in_org["AccountId"].is_null(), "{in_org}");

    // Nor does the account take it back when it returns.
    sim.advance_clock(5);
    sim.update("Account", &acme, json!({ "Phone": "+1 555 0101" }))
        .unwrap();
    app.sync_now().await;
    let desk = by_last_name(&contacts(&app).await, "Shelley")[0].clone();
    assert!(desk["account"].is_null(), "{desk}");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
}

#[tokio::test]
async fn a_contact_the_desk_moves_out_of_a_purged_account_leaves_it_in_salesforce() {
    let (app, sim) = connected().await;
    let (_, shelley, desk_shelley) = purged_acme(&app, &sim, "Shelley").await;
    let other = app
        .gql_ok(
            r#"mutation { createAccount(input: { name: "Godwin & Co" }) { id } }"#,
            json!({}),
        )
        .await["createAccount"]["id"]
        .clone();
    update_contact(&app, &desk_shelley, json!({ "accountId": other })).await;
    update_contact(&app, &desk_shelley, json!({ "accountId": null })).await;
    app.sync_now().await;
    let in_org = sim.get("Contact", &shelley).unwrap();
    assert!(
        in_org["AccountId"].is_null(),
        "the desk's own choice crosses: {in_org}"
    );
}

#[tokio::test]
async fn a_contact_kept_in_a_purged_account_is_recreated_without_it_once_salesforce_deletes_both() {
    let (app, sim) = connected().await;
    let (acme, keats, desk_keats) = purged_acme(&app, &sim, "Keats").await;
    sim.delete("Contact", &keats).unwrap();
    sim.delete("Account", &acme).unwrap();

    update_contact(&app, &desk_keats, json!({ "title": "Poet" })).await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    let recreated = salesforce_id_of(&app, &desk_keats).await;
    assert_ne!(recreated, keats);
    let in_org = sim.get("Contact", &recreated).unwrap();
    assert_eq!(in_org["Title"], "Poet");
    assert!(in_org["AccountId"].is_null(), "{in_org}");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
}

#[tokio::test]
async fn a_contact_kept_in_a_purged_account_is_recreated_in_it_when_salesforce_deletes_only_the_contact()
 {
    let (app, sim) = connected().await;
    let (acme, keats, desk_keats) = purged_acme(&app, &sim, "Keats").await;
    sim.delete("Contact", &keats).unwrap();

    update_contact(&app, &desk_keats, json!({ "title": "Poet" })).await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    let recreated = salesforce_id_of(&app, &desk_keats).await;
    assert_ne!(recreated, keats);
    let in_org = sim.get("Contact", &recreated).unwrap();
    assert_eq!(in_org["Title"], "Poet");
    assert_eq!(
        in_org["AccountId"],
        acme.as_str(),
        "deleting a contact leaves its account"
    );
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
    // Still kept there: the next desk edit leaves it in, and the account, back from
    // Salesforce, takes it in.
    stays_in_its_purged_account(&app, &sim, (&desk_keats, &recreated, &acme), "Keats").await;
}

#[tokio::test]
async fn updates_sent_before_a_failed_create_are_recorded_and_not_read_back_as_news() {
    let (app, sim) = connected().await;
    let byron = app
        .create_contact(json!({ "lastName": "Byron", "email": "byron@example.com" }))
        .await;
    app.sync_now().await;
    update_contact(&app, &byron["id"], json!({ "title": "Poet" })).await;
    app.create_contact(json!({ "lastName": "Shelley", "email": "shelley@example.com" }))
        .await;

    // One batch: the update goes through, the create's call fails every attempt.
    let create = sim.hold_next("PATCH", "Helpdesk_Id__c");
    let round = app.round_in_background();
    create.arrived().await;
    sim.fail_next(&[503, 503, 503, 503]);
    create.release();
    assert!(
        round.await.unwrap().is_err(),
        "the round reports the outage"
    );
    let sf_byron = salesforce_id_of(&app, &byron["id"]).await;
    assert_eq!(sim.get("Contact", &sf_byron).unwrap()["Title"], "Poet");

    let mark = sim.request_count();
    let report = app.sync_now().await;
    assert_eq!(
        report.pulled.updated, 0,
        "our own update is no news: {report:?}"
    );
    assert_eq!(report.pushed.added, 1, "{report:?}");
    assert_eq!(
        writes_since(&sim, mark).len(),
        1,
        "only the create goes out again: {:?}",
        writes_since(&sim, mark)
    );
    assert_eq!(sim.count("Contact"), 2);
}

/// Byron, synced with the title "Lord", then made "Poet" in the desk, and a round whose
/// update of him fails every attempt: `made`, Salesforce makes it and each answer is lost;
/// otherwise each attempt is refused (503) before it is made. His desk and Salesforce ids.
async fn an_update_that_fails(app: &TestApp, sim: &SimHandle, made: bool) -> (Value, String) {
    let byron = app
        .create_contact(
            json!({ "lastName": "Byron", "email": "byron@example.com", "title": "Lord" }),
        )
        .await;
    app.sync_now().await;
    let sf_byron = salesforce_id_of(app, &byron["id"]).await;
    update_contact(app, &byron["id"], json!({ "title": "Poet" })).await;
    let update = if made {
        sim.hold_answer_next("PATCH", "composite/sobjects")
    } else {
        sim.hold_next("PATCH", "composite/sobjects")
    };
    let round = app.round_in_background();
    update.arrived().await;
    if made {
        sim.lose_next_answers(4);
    } else {
        sim.fail_next(&[503, 503, 503, 503]);
    }
    update.release();
    assert!(
        round.await.unwrap().is_err(),
        "the round reports the failure"
    );
    let title = if made { "Poet" } else { "Lord" };
    assert_eq!(sim.get("Contact", &sf_byron).unwrap()["Title"], title);
    (byron["id"].clone(), sf_byron)
}

#[tokio::test]
async fn our_own_update_read_back_after_a_person_saved_other_fields_is_still_ours() {
    let (app, sim) = connected().await;
    let (byron, sf_byron) = an_update_that_fails(&app, &sim, true).await;
    // The agent edits again; a person then saves the record in Salesforce, in a field not
    // mapped, before any round reads it back.
    update_contact(&app, &byron, json!({ "title": "Peer" })).await;
    sim.advance_clock(60);
    sim.update("Contact", &sf_byron, json!({ "Department": "Poetry" }))
        .unwrap();

    let report = app.sync_now().await;
    assert_eq!(
        report.pulled.updated, 0,
        "our own update is no news: {report:?}"
    );
    assert_eq!(sim.get("Contact", &sf_byron).unwrap()["Title"], "Peer");
    let desk = desk_contact(&app, &byron, "title").await;
    assert_eq!(desk["title"], "Peer", "the later desk edit stands");
}

#[tokio::test]
async fn an_update_that_never_went_out_does_not_hide_a_person_making_the_same_edit_later() {
    let (app, sim) = connected().await;
    let (byron, sf_byron) = an_update_that_fails(&app, &sim, false).await;
    // The agent takes the edit back: nothing is left to send.
    update_contact(&app, &byron, json!({ "title": "Lord" })).await;
    app.sync_now().await;

    // Days later a person in Salesforce makes the very edit that never went out.
    sim.advance_clock(3600);
    sim.update("Contact", &sf_byron, json!({ "Title": "Poet" }))
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pulled.updated, 1, "{report:?}");
    let desk = desk_contact(&app, &byron, "title").await;
    assert_eq!(desk["title"], "Poet");
}

/// Connected to an org without `Helpdesk_Id__c` (`prepare`: `without_desk_id_fields`), or
/// with it as a plain field, not an external id: creates cannot be upserts there.
async fn connected_without_external_id(prepare: impl FnOnce(&SimHandle)) -> (TestApp, SimHandle) {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    prepare(&sim);
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    (app, sim)
}

/// Runs a round whose create call meets `fault` (`SimHandle::lose_next_answers`: carried
/// out, its answer lost; `SimHandle::drop_next`: cut off before it is carried out).
async fn round_failing_its_create(app: &TestApp, sim: &SimHandle, fault: fn(&SimHandle, u32)) {
    let create = sim.hold_next("POST", "/composite/sobjects");
    let round = app.round_in_background();
    tokio::time::timeout(std::time::Duration::from_secs(30), create.arrived())
        .await
        .expect("the round sends a create");
    fault(sim, 1);
    create.release();
    assert!(
        round.await.unwrap().is_err(),
        "the round reports the failed call"
    );
}

#[tokio::test]
async fn a_create_salesforce_refused_whole_goes_out_with_the_next_round_not_in_doubt() {
    // Creates whose answer is lost are in doubt for ten minutes.
    let (app, sim) = synced_without_desk_ids(600).await;
    app.create_contact(json!({ "lastName": "Pollux" })).await;
    // The org's daily allocation runs out as the create is sent: refused, nothing made.
    round_failing_its_create(&app, &sim, |sim, _| {
        sim.set_daily_api_limit(sim.api_usage());
    })
    .await;
    assert_eq!(sim.count("Contact"), 0);

    sim.set_daily_api_limit(100_000);
    let report = app.sync_now().await;
    assert_eq!(report.pushed.added, 1, "{report:?}");
    assert_eq!(
        sim.count("Contact"),
        1,
        "sent at once, not held as in doubt"
    );
}

#[tokio::test]
async fn an_update_made_though_its_answer_was_lost_is_not_read_back_as_a_salesforce_edit() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Noether", "Title": "Lecturer" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Noether")[0]["id"].clone();
    // Salesforce's clock runs a minute ahead: what it stamps is later than the desk's edits.
    sim.advance_clock(60);
    update_contact(&app, &desk_id, json!({ "title": "Professor" })).await;
    let update = sim.hold_next("PATCH", "/composite/sobjects");
    let round = app.round_in_background();
    update.arrived().await;
    // The desk edits again while its first edit is on its way, whose answer is then lost.
    update_contact(&app, &desk_id, json!({ "title": "Chair" })).await;
    // Each of its four attempts is made, and each answer lost: the round gives up.
    sim.lose_next_answers(4);
    update.release();
    assert!(
        round.await.unwrap().is_err(),
        "the round reports the lost answers"
    );
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Professor");

    app.sync_now().await;
    let desk = contacts(&app).await;
    assert_eq!(
        by_last_name(&desk, "Noether")[0]["title"],
        "Chair",
        "the desk's later edit is not undone by the sync's own write read back"
    );
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Chair");
    let mark = sim.request_count();
    let report = app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
    assert_eq!((report.pulled, report.pushed), Default::default());
}

/// Hypatia, a desk contact, whose create (an upsert by desk id) is made in Salesforce while
/// the desk does `meanwhile`, and whose answer is then lost. Salesforce's clock runs a
/// minute ahead: what it stamps is later than the desk's edits.
async fn hypatia_upserted_her_answer_lost(
    meanwhile: impl AsyncFnOnce(&TestApp, &Value),
) -> (TestApp, SimHandle, Value) {
    let (app, sim) = connected().await;
    let desk = app
        .create_contact(json!({ "lastName": "Hypatia", "title": "Teacher" }))
        .await;
    sim.advance_clock(60);
    let create = sim.hold_next("PATCH", "/composite/sobjects");
    let round = app.round_in_background();
    create.arrived().await;
    meanwhile(&app, &desk).await;
    sim.lose_next_answers(1);
    create.release();
    assert!(
        round.await.unwrap().is_err(),
        "the round reports the lost answer"
    );
    (app, sim, desk)
}

#[tokio::test]
async fn a_desk_edit_made_while_its_upserted_create_is_on_its_way_outlives_the_lost_answer() {
    let (app, sim, desk) = hypatia_upserted_her_answer_lost(async |app, desk| {
        update_contact(app, &desk["id"], json!({ "title": "Philosopher" })).await;
    })
    .await;
    assert_eq!(sim.records("Contact")[0]["Title"], "Teacher");

    app.sync_now().await;
    assert_eq!(
        desk_contact(&app, &desk["id"], "title").await["title"],
        "Philosopher",
        "the desk's later edit is not undone by the sync's own create read back"
    );
    assert_eq!(sim.count("Contact"), 1, "made once");
    assert_eq!(sim.records("Contact")[0]["Title"], "Philosopher");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
}

#[tokio::test]
async fn a_desk_record_binned_while_its_upserted_create_is_on_its_way_stays_binned() {
    let (app, sim, desk) = hypatia_upserted_her_answer_lost(async |app, desk| {
        bin_contact(app, &desk["id"]).await;
    })
    .await;

    app.sync_now().await;
    assert_eq!(
        contacts(&app).await,
        Vec::<Value>::new(),
        "still in the bin"
    );
    let sf_id = sim.records("Contact")[0]["Id"].as_str().unwrap().to_owned();
    assert_eq!(salesforce_id_of(&app, &desk["id"]).await, sf_id, "linked");
}

#[tokio::test]
async fn an_upsert_sent_again_while_the_first_still_runs_waits_for_it_rather_than_failing() {
    an_upsert_in_doubt_outlives_a_later_sending(Later::RefusedForItsKey).await;
}

#[tokio::test]
async fn an_upsert_in_doubt_outlives_a_later_sending_refused_whole() {
    an_upsert_in_doubt_outlives_a_later_sending(Later::RefusedWhole).await;
}

/// What befalls the sending after the first, whose answer was lost.
enum Later {
    /// Refused: the first, still running, holds its key.
    RefusedForItsKey,
    /// Refused whole: the org's daily allocation ran out.
    RefusedWhole,
}

/// Desk contact Hypatia, a teacher (with this email, if any), whose upsert's connection is
/// cut while Salesforce goes on making it, edited since to a philosopher: the app, the org,
/// the desk contact and the key the upsert sent.
async fn hypatia_cut_off_then_edited(email: Option<&str>) -> (TestApp, SimHandle, Value, String) {
    let app = spawn_app_with(|s| s.sync.unanswered_create_secs = 600).await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    let desk = app
        .create_contact(json!({ "lastName": "Hypatia", "email": email, "title": "Teacher" }))
        .await;
    let key = app.desk_ref(&desk["id"]).await;
    let create = sim.hold_next("PATCH", "/composite/sobjects");
    let round = app.round_in_background();
    create.arrived().await;
    sim.drop_next(1);
    create.release();
    assert!(round.await.unwrap().is_err());
    update_contact(&app, &desk["id"], json!({ "title": "Philosopher" })).await;
    (app, sim, desk, key)
}

/// A desk contact's upsert whose connection is cut while Salesforce goes on making it, then
/// an edit of it, sent again and refused (`later`); the first commits at last. The desk's
/// edit stands and goes out, and nothing is made twice or left failed.
async fn an_upsert_in_doubt_outlives_a_later_sending(later: Later) {
    let (app, sim, desk, key) = hypatia_cut_off_then_edited(None).await;
    match later {
        Later::RefusedForItsKey => {
            sim.reject_next_records(&[(
                "DUPLICATE_VALUE",
                "duplicate value found: Helpdesk_Id__c duplicates value on record with id: 003000000000009AAA",
            )]);
            let report = app.sync_now().await;
            assert_eq!(report.pushed.failed, 0, "in doubt, not failed: {report:?}");
        }
        Later::RefusedWhole => {
            let again = sim.hold_next("PATCH", "/composite/sobjects");
            let round = app.round_in_background();
            again.arrived().await;
            sim.set_daily_api_limit(sim.api_usage());
            again.release();
            let _ = round.await.unwrap();
            sim.set_daily_api_limit(100_000);
        }
    }
    assert!(open_failures(&app).await.as_array().unwrap().is_empty());

    // The first commits at last, a minute on by Salesforce's clock, made by the integration
    // user as the sync's upserts are.
    sim.advance_clock(60);
    sim.insert_as_the_integration_user(
        "Contact",
        json!({ "LastName": "Hypatia", "Title": "Teacher", "Helpdesk_Id__c": key }),
    )
    .unwrap();
    app.sync_now().await;
    assert_eq!(
        desk_contact(&app, &desk["id"], "title").await["title"],
        "Philosopher",
        "the desk's edit is not undone by the first sending's record"
    );
    assert_eq!(sim.count("Contact"), 1);
    assert_eq!(sim.records("Contact")[0]["Title"], "Philosopher");
    assert!(open_failures(&app).await.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_desk_edit_behind_an_upsert_in_doubt_goes_out_when_the_push_meets_its_record() {
    let (app, sim, desk, key) = hypatia_cut_off_then_edited(Some("hypatia@example.com")).await;

    // The first sending commits as the next round's push looks for the contact by email,
    // after the pull looked for it in vain (each in one call of queries).
    let lookup = sim.hold_next("POST", "/composite");
    let matching = sim.hold_next("POST", "/composite");
    let round = app.round_in_background();
    lookup.arrived().await;
    lookup.release();
    matching.arrived().await;
    sim.advance_clock(60);
    sim.insert_as_the_integration_user(
        "Contact",
        json!({ "LastName": "Hypatia", "Email": "hypatia@example.com", "Title": "Teacher",
                "Helpdesk_Id__c": key }),
    )
    .unwrap();
    matching.release();
    let report = round.await.unwrap().unwrap();
    assert_eq!(
        report.pushed.added, 1,
        "the create found is the round's: {report:?}"
    );
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 1);
    assert_eq!(
        sim.records("Contact")[0]["Title"],
        "Philosopher",
        "the desk's edit goes out"
    );
    assert_eq!(
        desk_contact(&app, &desk["id"], "title").await["title"],
        "Philosopher"
    );
}

#[tokio::test]
async fn a_plain_create_in_doubt_waits_where_other_creates_go_by_upsert() {
    let app = spawn_app_with(|s| s.sync.unanswered_create_secs = 600).await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    let desk_id = deleted_there_and_edited_here(&app, &sim).await;
    // Made again beside its deleted twin, which holds its key: a plain insert, whose
    // connection is cut. Whether Salesforce is making it, nobody knows yet.
    round_failing_its_create(&app, &sim, SimHandle::drop_next).await;
    // Edited again, it still waits.
    update_contact(&app, &desk_id, json!({ "title": "Enchantress" })).await;
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(
        writes_since(&sim, mark),
        Vec::<String>::new(),
        "not sent again (by upsert or otherwise) while in doubt"
    );
    assert_eq!(sim.count("Contact"), 0);
}

#[tokio::test]
async fn creates_whose_answer_was_lost_are_found_in_salesforce_not_made_twice() {
    let (app, sim) = connected_without_external_id(without_desk_id_fields).await;
    app.sync_now().await;
    // No email to match on, and two alike in every field sent.
    let twin_a = app.create_contact(json!({ "lastName": "Castor" })).await;
    let twin_b = app.create_contact(json!({ "lastName": "Castor" })).await;
    let solo = app
        .create_contact(json!({ "lastName": "Pollux", "title": "Boxer" }))
        .await;

    round_failing_its_create(&app, &sim, SimHandle::lose_next_answers).await;
    assert_eq!(sim.count("Contact"), 3, "Salesforce made all three");

    let mark = sim.request_count();
    let report = app.sync_now().await;
    assert_eq!(report.pushed.added, 3, "{report:?}");
    assert_eq!(
        writes_since(&sim, mark),
        Vec::<String>::new(),
        "nothing is created again"
    );
    assert_eq!(sim.count("Contact"), 3);
    assert_eq!(contacts(&app).await.len(), 3, "nor imported back");
    let a = salesforce_id_of(&app, &twin_a["id"]).await;
    let b = salesforce_id_of(&app, &twin_b["id"]).await;
    assert_ne!(a, b, "each twin has its own record");
    let pollux = sim.get("Contact", &salesforce_id_of(&app, &solo["id"]).await);
    assert_eq!(pollux.unwrap()["Title"], "Boxer");

    // Linked as an answer would have linked them: edits flow, and quiet is quiet.
    update_contact(&app, &twin_b["id"], json!({ "title": "Rider" })).await;
    app.sync_now().await;
    assert_eq!(sim.get("Contact", &b).unwrap()["Title"], "Rider");
    assert!(sim.get("Contact", &a).unwrap()["Title"].is_null());
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
    let history = app
        .gql_ok(
            "{ syncHistory(first: 20) { nodes { direction module added } } }",
            json!({}),
        )
        .await;
    assert!(
        history["syncHistory"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["direction"] == "DESK_TO_SALESFORCE" && h["added"] == 3),
        "the lost batch is in the history once found: {history}"
    );
}

/// An org without `Helpdesk_Id__c`, where desk contact Pollux (no email to match on) was
/// sent as a plain insert whose call met `fault`: in doubt for ten minutes. The app, the org
/// and the desk contact.
async fn pollux_in_doubt(fault: fn(&SimHandle, u32)) -> (TestApp, SimHandle, Value) {
    let app = spawn_app_with(|s| s.sync.unanswered_create_secs = 600).await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    without_desk_id_fields(&sim);
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    let made = app
        .create_contact(json!({ "lastName": "Pollux", "title": "Boxer" }))
        .await;
    round_failing_its_create(&app, &sim, fault).await;
    (app, sim, made)
}

#[tokio::test]
async fn a_create_in_doubt_outlives_the_integration_deleted_and_connected_again() {
    let (app, sim, made) = pollux_in_doubt(SimHandle::lose_next_answers).await;
    assert_eq!(sim.count("Contact"), 1, "Salesforce made it");

    // An admin deletes the integration and connects the same org again at once.
    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 1, "not made twice");
    assert_eq!(contacts(&app).await.len(), 1, "nor imported back");
    let linked = salesforce_id_of(&app, &made["id"]).await;
    assert_eq!(sim.get("Contact", &linked).unwrap()["Title"], "Boxer");
}

#[tokio::test]
async fn a_create_in_doubt_noted_without_its_org_outlives_the_same_org_connected_again() {
    use sea_orm::ConnectionTrait;
    let (app, sim, made) = pollux_in_doubt(SimHandle::lose_next_answers).await;
    // Noted while the sign-in did not say which org it was (or by a version before notes
    // said it).
    app.store
        .connection()
        .execute_unprepared("UPDATE pending_create SET org_id = NULL")
        .await
        .unwrap();
    // The same org signed in to again, as an admin does after a token error.
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 1, "not made twice");
    let linked = salesforce_id_of(&app, &made["id"]).await;
    assert_eq!(sim.get("Contact", &linked).unwrap()["Title"], "Boxer");
}

#[tokio::test]
async fn a_create_in_doubt_in_one_org_holds_nothing_back_from_another_connected() {
    let (app, _sim, _) = pollux_in_doubt(SimHandle::drop_next).await;
    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    // Another org: what the first may have made is none of its business.
    let other = salesforce_sim::start(SimConfig {
        seed: 2,
        ..SimConfig::default()
    })
    .await;
    without_desk_id_fields(&other);
    let connected = connect(&app, &other, "tandem").await;
    assert!(connected.get("errors").is_none(), "{connected}");
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    assert_eq!(other.count("Contact"), 1, "sent at once, not held back");
}

#[tokio::test]
async fn a_contact_purged_while_its_create_was_in_doubt_comes_back_only_with_a_salesforce_update() {
    let (app, sim) = connected_without_external_id(without_desk_id_fields).await;
    app.sync_now().await;
    let made = app
        .create_contact(json!({ "lastName": "Pollux", "title": "Boxer" }))
        .await;
    round_failing_its_create(&app, &sim, SimHandle::lose_next_answers).await;
    assert_eq!(sim.count("Contact"), 1, "Salesforce made it");
    // Deleted and purged in the desk before the create's answer is found.
    for mutation in ["deleteContact(id: $id) { id }", "purgeContact(id: $id)"] {
        app.gql_ok(
            &format!("mutation($id: ID!) {{ {mutation} }}"),
            json!({ "id": made["id"] }),
        )
        .await;
    }
    sim.advance_clock(5);
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(
        contacts(&app).await,
        Vec::<Value>::new(),
        "not made again in the desk"
    );
    assert_eq!(sim.count("Contact"), 1, "nor in Salesforce");

    // Updated in Salesforce after the purge, it comes back, as any purged record does.
    let sf_id = sim.records("Contact")[0]["Id"].as_str().unwrap().to_owned();
    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Title": "Champion" }))
        .unwrap();
    app.sync_now().await;
    let desk = contacts(&app).await;
    let back = by_last_name(&desk, "Pollux");
    assert_eq!(back.len(), 1, "{desk:?}");
    assert_eq!(back[0]["title"], "Champion");
}

/// A synced contact deleted in Salesforce, then edited in the desk, which the next push
/// makes there again: its desk id.
async fn deleted_there_and_edited_here(app: &TestApp, sim: &SimHandle) -> Value {
    let deleted = sim
        .insert("Contact", json!({ "LastName": "Lovelace" }))
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(app).await, "Lovelace")[0]["id"].clone();
    sim.delete("Contact", &deleted).unwrap();
    update_contact(app, &desk_id, json!({ "title": "Countess" })).await;
    desk_id
}

/// After a round whose answer to making the record again was lost, and two more: the one
/// record Salesforce made is the desk record's twin, on each side once, and nothing waits.
async fn made_again_once(app: &TestApp, sim: &SimHandle, desk_id: &Value) {
    let made = sim.records("Contact");
    assert_eq!(made.len(), 1, "Salesforce made it again");
    let made = made[0]["Id"].as_str().unwrap().to_owned();
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 1, "not made a third time");
    assert_eq!(
        by_last_name(&contacts(app).await, "Lovelace").len(),
        1,
        "nor brought into the desk as another contact"
    );
    assert_eq!(salesforce_id_of(app, desk_id).await, made);
    assert_eq!(sim.get("Contact", &made).unwrap()["Title"], "Countess");
    assert!(open_failures(app).await.as_array().unwrap().is_empty());
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(sim, mark), Vec::<String>::new(), "no echo");
}

#[tokio::test]
async fn a_record_made_again_whose_answer_was_lost_is_found_not_made_twice() {
    let (app, sim) = connected_without_external_id(without_desk_id_fields).await;
    let desk_id = deleted_there_and_edited_here(&app, &sim).await;
    round_failing_its_create(&app, &sim, SimHandle::lose_next_answers).await;
    made_again_once(&app, &sim, &desk_id).await;
}

#[tokio::test]
async fn a_record_made_again_beside_its_binned_twin_goes_without_the_key_the_twin_keeps() {
    // The org has a unique Helpdesk_Id__c: the deleted twin keeps the desk record's value in
    // the recycle bin, where it still counts, so an upsert by it would be refused.
    let (app, sim) = connected().await;
    app.sync_now().await;
    let desk_id = app.create_contact(json!({ "lastName": "Lovelace" })).await["id"].clone();
    app.sync_now().await;
    let binned = salesforce_id_of(&app, &desk_id).await;
    let key = app.desk_ref(&desk_id).await;
    assert_eq!(
        sim.get("Contact", &binned).unwrap()["Helpdesk_Id__c"],
        key.as_str()
    );
    sim.delete("Contact", &binned).unwrap();
    update_contact(&app, &desk_id, json!({ "title": "Countess" })).await;
    // Made by a create noted first, every answer to it lost: the round gives up.
    let mark = sim.request_count();
    round_failing_its_create(&app, &sim, SimHandle::lose_next_answers).await;
    let upserts = sim.requests()[mark..]
        .iter()
        .filter(|r| r.path.contains(tandem::sync::DESK_ID_FIELD))
        .count();
    assert_eq!(upserts, 0);
    made_again_once(&app, &sim, &desk_id).await;
    assert_eq!(sim.records("Contact")[0]["Helpdesk_Id__c"], Value::Null);
    assert_eq!(
        sim.get("Contact", &binned).unwrap()["Helpdesk_Id__c"],
        key.as_str()
    );
}

#[tokio::test]
async fn a_record_whose_key_a_binned_record_holds_goes_again_without_it_after_a_first_try_failed() {
    let (app, sim) = connected().await;
    app.sync_now().await;
    let desk_id = app.create_contact(json!({ "lastName": "Lovelace" })).await["id"].clone();
    app.sync_now().await;
    let binned = salesforce_id_of(&app, &desk_id).await;
    sim.delete("Contact", &binned).unwrap();
    update_contact(&app, &desk_id, json!({ "title": "Countess" })).await;
    // Its first making again is refused whole (the org's daily allocation runs out): its
    // link to the deleted twin is gone, and the next try is a create like any other.
    round_failing_its_create(&app, &sim, |sim, _| {
        sim.set_daily_api_limit(sim.api_usage());
    })
    .await;
    assert_eq!(sim.count("Contact"), 0);
    sim.set_daily_api_limit(100_000);
    let report = app.sync_now().await;
    assert_eq!(
        (report.pushed.added, report.pushed.failed),
        (1, 0),
        "refused by key, sent again without it: {report:?}"
    );
    let made = sim.records("Contact");
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["Title"], "Countess");
    assert_eq!(made[0]["Helpdesk_Id__c"], Value::Null);
    assert_eq!(salesforce_id_of(&app, &desk_id).await, made[0]["Id"]);
    assert!(open_failures(&app).await.as_array().unwrap().is_empty());
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
}

/// A desk contact not sent yet, whose upsert Salesforce will refuse: another record holds
/// its `Helpdesk_Id__c`.
async fn a_desk_contact_whose_upsert_meets_its_key_held() -> (TestApp, SimHandle) {
    let (app, sim) = connected().await;
    app.sync_now().await;
    app.create_contact(json!({ "lastName": "Lovelace" })).await;
    sim.reject_next_records(&[(
        "DUPLICATE_VALUE",
        "duplicate value found: Helpdesk_Id__c duplicates value on record with id: 003000000000009AAA",
    )]);
    (app, sim)
}

#[tokio::test]
async fn a_key_no_deleted_record_holds_is_not_given_up_for_a_plain_insert() {
    // Refused for a record that holds the key and is not in the recycle bin: an upsert an
    // earlier round sent, still running, say. Inserted without the key, it would be made twice.
    let (app, sim) = a_desk_contact_whose_upsert_meets_its_key_held().await;
    let report = app.sync_now().await;
    assert_eq!((report.pushed.added, report.pushed.failed), (0, 1));
    assert_eq!(sim.count("Contact"), 0);
}

#[tokio::test]
async fn a_key_refusal_whose_recycle_bin_could_not_be_asked_is_tried_again_not_given_up() {
    let (app, sim) = a_desk_contact_whose_upsert_meets_its_key_held().await;
    // The budget runs out as the upsert is answered: whether the record holding the key is
    // in the recycle bin (and a plain insert would get past it) cannot be asked.
    let upsert = sim.hold_answer_next("PATCH", tandem::sync::DESK_ID_FIELD);
    let round = app.round_in_background();
    upsert.arrived().await;
    sim.set_daily_api_limit(sim.api_usage());
    upsert.release();
    let _ = round.await.unwrap();
    let failures = open_failures(&app).await;
    assert_eq!(failures[0]["reason"], "RATE_LIMITED", "{failures}");
    assert!(
        failures[0]["message"]
            .as_str()
            .unwrap()
            .contains("recycle bin could not be asked, so it is tried again"),
        "{failures}"
    );

    sim.set_daily_api_limit(100_000);
    app.gql_ok(
        "mutation { retrySyncFailures(reason: RATE_LIMITED) }",
        json!({}),
    )
    .await;
    assert_eq!(sim.count("Contact"), 1);
    assert!(open_failures(&app).await.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn records_upserted_beside_an_insert_that_fails_are_linked_in_the_same_round() {
    let (app, sim) = connected().await;
    app.sync_now().await;
    let again = app.create_contact(json!({ "lastName": "Lovelace" })).await["id"].clone();
    app.sync_now().await;
    let binned = salesforce_id_of(&app, &again).await;
    sim.delete("Contact", &binned).unwrap();
    update_contact(&app, &again, json!({ "title": "Countess" })).await;
    let fresh = app.create_contact(json!({ "lastName": "Babbage" })).await["id"].clone();
    // The new one goes by upsert, the one made again by an insert, which Salesforce fails.
    round_failing_its_create(&app, &sim, |sim, _| sim.fail_next(&[503])).await;
    let links = app
        .store
        .links_by_desk(
            tandem::domain::Module::Contacts,
            &[fresh.as_str().unwrap().parse().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(links.len(), 1, "the upserted record is linked at once");
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 2);
    assert!(open_failures(&app).await.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_external_id_not_marked_unique_is_written_by_a_create_noted_first_not_by_an_upsert() {
    let (app, sim) = connected_without_external_id(|sim| {
        for object in ["Contact", "Account"] {
            sim.share_field(object, tandem::sync::DESK_ID_FIELD)
                .unwrap();
        }
    })
    .await;
    app.sync_now().await;
    let curie = app.create_contact(json!({ "lastName": "Curie" })).await;
    // An upsert repeated while the first still runs could make two records by one value
    // such a field does not refuse; a create noted first is looked for before it is repeated.
    round_failing_its_create(&app, &sim, SimHandle::lose_next_answers).await;
    let upserts = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains(tandem::sync::DESK_ID_FIELD))
        .count();
    assert_eq!(upserts, 0);
    app.sync_now().await;
    let made = sim.records("Contact");
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["Helpdesk_Id__c"], app.desk_ref(&curie["id"]).await);
    assert_eq!(salesforce_id_of(&app, &curie["id"]).await, made[0]["Id"]);
}

#[tokio::test]
async fn a_plain_helpdesk_id_field_names_a_lost_creates_record_even_once_it_is_edited() {
    let (app, sim) = connected_without_external_id(|sim| {
        for object in ["Contact", "Account"] {
            sim.make_plain_field(object, tandem::sync::DESK_ID_FIELD)
                .unwrap();
        }
    })
    .await;
    app.sync_now().await;
    let curie = app
        .create_contact(json!({ "lastName": "Curie", "title": "Chemist" }))
        .await;
    round_failing_its_create(&app, &sim, SimHandle::lose_next_answers).await;
    let made = sim.records("Contact")[0].clone();
    assert_eq!(
        made["Helpdesk_Id__c"],
        app.desk_ref(&curie["id"]).await,
        "the create wrote the desk id"
    );
    // Edited before the next round, last name and all: it no longer holds what was sent, yet
    // names its desk record, so it is still the create's answer, and the edit comes to the
    // desk.
    let made = made["Id"].as_str().unwrap().to_owned();
    sim.advance_clock(1);
    sim.update(
        "Contact",
        &made,
        json!({ "LastName": "Skłodowska-Curie", "Title": "Physicist" }),
    )
    .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pushed.added, 1, "{report:?}");
    assert_eq!(sim.count("Contact"), 1, "not created again");
    assert_eq!(salesforce_id_of(&app, &curie["id"]).await, made);
    let desk: Vec<(Value, Value)> = contacts(&app)
        .await
        .iter()
        .map(|c| (c["lastName"].clone(), c["title"].clone()))
        .collect();
    assert_eq!(
        desk,
        [(json!("Skłodowska-Curie"), json!("Physicist"))],
        "one desk record, with the edit"
    );
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
}

#[tokio::test]
async fn an_external_id_the_integration_user_may_only_read_leaves_creates_to_the_plain_path() {
    let (app, sim) = connected_without_external_id(|sim| {
        for object in ["Contact", "Account"] {
            sim.make_read_only_field(object, tandem::sync::DESK_ID_FIELD)
                .unwrap();
        }
    })
    .await;
    app.sync_now().await;
    let desk = app
        .create_contact(json!({ "lastName": "Meitner", "title": "Physicist" }))
        .await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.added, 1, "{report:?}");
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    let made = sim
        .get("Contact", &salesforce_id_of(&app, &desk["id"]).await)
        .unwrap();
    assert_eq!(made["LastName"], "Meitner");
    assert!(made["Helpdesk_Id__c"].is_null(), "{made}");
}

#[tokio::test]
async fn a_create_not_found_while_salesforce_may_still_make_it_waits_rather_than_going_twice() {
    // Queued by a desk edit, and met by the first sync's export.
    for exported in [false, true] {
        let app = spawn_app_with(|s| s.sync.unanswered_create_secs = 600).await;
        if exported {
            // Made before the connection: no change of it is queued.
            app.store_contact("Lovelace".into(), None).await;
        }
        let sim = salesforce_sim::start(SimConfig::default()).await;
        without_desk_id_fields(&sim);
        assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
        app.gql_ok("mutation { startSync { firstSync } }", json!({}))
            .await;
        if !exported {
            app.sync_now().await;
            app.create_contact(json!({ "lastName": "Lovelace" })).await;
        }
        // The create's connection is cut: whether Salesforce is making it, nobody knows yet.
        round_failing_its_create(&app, &sim, SimHandle::drop_next).await;

        // It waits; the rest of the queue goes on.
        app.create_contact(json!({ "lastName": "Babbage" })).await;
        let report = app.sync_now().await;
        assert_eq!(report.pushed.added, 1, "{exported}: {report:?}");
        let in_org: Vec<Value> = sim.records("Contact");
        assert_eq!(in_org.len(), 1, "{exported}: not sent again in doubt");
        assert_eq!(in_org[0]["LastName"], "Babbage", "{exported}");
        assert_eq!(
            app.store.outbox_len().await.unwrap(),
            1,
            "{exported}: queued"
        );
        assert!(
            !app.engine.has_changes_to_send().await,
            "{exported}: a desk event does not start a round for it"
        );

        // Salesforce commits it late; the next round finds it rather than making a second.
        let made = sim
            .insert_as_the_integration_user("Contact", json!({ "LastName": "Lovelace" }))
            .unwrap();
        let report = app.sync_now().await;
        assert_eq!(report.pushed.added, 1, "{exported}: {report:?}");
        assert_eq!(sim.count("Contact"), 2, "{exported}");
        let desk = contacts(&app).await;
        assert_eq!(desk.len(), 2, "{exported}: {desk:?}");
        let lovelace = by_last_name(&desk, "Lovelace")[0].clone();
        assert_eq!(salesforce_id_of(&app, &lovelace["id"]).await, made);
        let mark = sim.request_count();
        app.sync_now().await;
        assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "{exported}");
    }
}

/// A desk synced with an org that has no `Helpdesk_Id__c` to repeat creates by, waiting
/// `unanswered_create_secs` for a create whose answer was lost.
async fn synced_without_desk_ids(unanswered_create_secs: u64) -> (TestApp, SimHandle) {
    let app = spawn_app_with(|s| s.sync.unanswered_create_secs = unanswered_create_secs).await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    without_desk_id_fields(&sim);
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    (app, sim)
}

#[tokio::test]
async fn a_create_salesforce_commits_just_after_the_round_looked_for_it_is_linked_not_made_again() {
    let (app, sim) = synced_without_desk_ids(600).await;
    // No email: nothing but the values sent can tell the record it made.
    app.create_contact(json!({ "lastName": "Lovelace", "title": "Analyst" }))
        .await;
    round_failing_its_create(&app, &sim, SimHandle::drop_next).await;

    // The next round looks for it and finds nothing; Salesforce commits it right after, so
    // the same round's pull is the first to read it.
    // (Looked for in a composite of queries, the first POST of the round.)
    let lookup = sim.hold_answer_next("POST", "/composite");
    let round = app.round_in_background();
    lookup.arrived().await;
    let made = sim
        .insert_as_the_integration_user(
            "Contact",
            json!({ "LastName": "Lovelace", "Title": "Analyst" }),
        )
        .unwrap();
    lookup.release();
    round.await.unwrap().unwrap();

    let desk = contacts(&app).await;
    assert_eq!(desk.len(), 1, "not made again in the desk: {desk:?}");
    assert_eq!(salesforce_id_of(&app, &desk[0]["id"]).await, made);
    assert_eq!(sim.count("Contact"), 1);
    let history = app
        .gql_ok(
            "{ syncHistory(first: 20) { nodes { direction module added } } }",
            json!({}),
        )
        .await;
    let added = |direction: &str| -> i64 {
        history["syncHistory"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["direction"] == direction && h["module"] == "CONTACTS")
            .map(|h| h["added"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(
        (added("DESK_TO_SALESFORCE"), added("SALESFORCE_TO_DESK")),
        (1, 0),
        "counted as the desk record it was made from: {history}"
    );
    // Settled: not sent again once its doubt has passed.
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
}

#[tokio::test]
async fn a_create_not_found_once_its_doubt_has_passed_is_sent_again_once() {
    let (app, sim) = synced_without_desk_ids(1).await;
    let desk = app.create_contact(json!({ "lastName": "Hopper" })).await;
    round_failing_its_create(&app, &sim, SimHandle::drop_next).await;
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 0, "in doubt");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.added, 1, "{report:?}");
    assert_eq!(sim.count("Contact"), 1);
    let made = sim
        .get("Contact", &salesforce_id_of(&app, &desk["id"]).await)
        .unwrap();
    assert_eq!(made["LastName"], "Hopper");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
}

#[tokio::test]
async fn a_create_that_never_reached_salesforce_is_sent_again() {
    let (app, sim) = connected_without_external_id(without_desk_id_fields).await;
    app.sync_now().await;
    let desk = app.create_contact(json!({ "lastName": "Lovelace" })).await;
    round_failing_its_create(&app, &sim, SimHandle::drop_next).await;
    assert_eq!(sim.count("Contact"), 0, "the create never arrived");

    let report = app.sync_now().await;
    assert_eq!(report.pushed.added, 1, "{report:?}");
    assert_eq!(sim.count("Contact"), 1);
    let sf_id = salesforce_id_of(&app, &desk["id"]).await;
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["LastName"], "Lovelace");
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn a_desk_edit_committing_while_its_record_is_pushed_goes_out_next_though_queued_earlier() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
    let (app, sim) = crate::integration::started(|s| s.sync.poll_overlap_secs = 0).await;
    // SQLite lets one writer at a time in: the edit cannot be open while others commit.
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let desk = app.create_contact(json!({ "lastName": "Hopper" })).await;
    app.sync_now().await;
    // Reads the record back, then polls past the window (and past the second it was
    // stamped in): the round below does not read it again, which would wait for the open
    // edit's row lock.
    sim.advance_clock(5);
    app.sync_now().await;
    app.sync_now().await;
    let sf_id = salesforce_id_of(&app, &desk["id"]).await;
    let id: i64 = desk["id"].as_str().unwrap().parse().unwrap();
    update_contact(&app, &desk["id"], json!({ "title": "Commander" })).await;

    // An edit (a mass update, say) has queued its change but not committed; something else
    // queues the record after it, and commits.
    let sql = |text: String| Statement::from_string(DbBackend::Postgres, text);
    let other = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .unwrap();
    let edit = other.begin().await.unwrap();
    edit.execute_raw(sql(format!(
        "UPDATE contact SET title = 'Rear Admiral' WHERE id = {id}"
    )))
    .await
    .unwrap();
    edit.execute_raw(sql(format!(
        "INSERT INTO outbox (module, desk_id, enqueued_at) VALUES ('CONTACTS', {id}, now())"
    )))
    .await
    .unwrap();
    let mut batch = app.store.begin_sync().await.unwrap();
    batch
        .enqueue(tandem::domain::Module::Contacts, id)
        .await
        .unwrap();
    batch.commit().await.unwrap();

    // The push reads the record before the edit commits, and settles after it has.
    let push = sim.hold_next("PATCH", "/composite/sobjects");
    let round = app.round_in_background();
    tokio::time::timeout(std::time::Duration::from_secs(30), push.arrived())
        .await
        .expect("the round pushes without reading the record again");
    edit.commit().await.unwrap();
    push.release();
    round.await.unwrap().unwrap();
    assert_eq!(sim.get("Contact", &sf_id).unwrap()["Title"], "Commander");

    app.sync_now().await;
    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Title"],
        "Rear Admiral",
        "the edit the push never read is still queued"
    );
}

#[tokio::test]
async fn a_push_sends_only_what_the_desk_changed_so_a_salesforce_edit_meanwhile_survives() {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Franklin", "Phone": "+44 20 7946 0100", "Title": "Chemist" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk = by_last_name(&contacts(&app).await, "Franklin")[0].clone();
    update_contact(&app, &desk["id"], json!({ "title": "Crystallographer" })).await;

    // The desk's change is on its way when someone edits another field in Salesforce.
    let push = sim.hold_next("PATCH", "/composite/sobjects");
    let round = app.round_in_background();
    push.arrived().await;
    sim.advance_clock(1);
    sim.update("Contact", &sf_id, json!({ "Phone": "+44 20 7946 0199" }))
        .unwrap();
    push.release();
    round.await.unwrap().unwrap();
    let in_org = sim.get("Contact", &sf_id).unwrap();
    assert_eq!(in_org["Title"], "Crystallographer");
    assert_eq!(
        in_org["Phone"], "+44 20 7946 0199",
        "not overwritten: {in_org}"
    );

    // The next round brings the Salesforce edit to the desk, and sends nothing back.
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new());
    assert_eq!(
        desk_contact(&app, &desk["id"], "phone title").await,
        json!({ "phone": "+44 20 7946 0199", "title": "Crystallographer" })
    );
}

#[tokio::test]
async fn a_salesforce_update_to_a_field_not_mapped_brings_a_deleted_desk_record_back_too() {
    deleted_in_the_desk_then_changed_in_salesforce(Sent::Nothing).await;
}

#[tokio::test]
async fn so_it_does_when_the_desk_was_the_last_to_send_the_record() {
    deleted_in_the_desk_then_changed_in_salesforce(Sent::ReadBack).await;
}

#[tokio::test]
async fn so_it_does_when_what_the_desk_sent_was_not_read_back_before_the_delete() {
    deleted_in_the_desk_then_changed_in_salesforce(Sent::NotReadBack).await;
}

#[tokio::test]
async fn so_it_does_when_salesforce_changed_what_the_desk_sent_before_it_was_read_back() {
    deleted_in_the_desk_then_changed_in_salesforce(Sent::ChangedBeforeReadBack).await;
}

/// What the desk sent of a record before deleting it.
#[derive(PartialEq)]
enum Sent {
    Nothing,
    /// An edit went out, and a round after read it back from Salesforce.
    ReadBack,
    /// An edit went out, and the record was deleted before any round read it back: the
    /// version in Salesforce is not known by its stamp.
    NotReadBack,
    /// As `NotReadBack`, and Salesforce changed the record before any round read it.
    ChangedBeforeReadBack,
}

/// A contact deleted in the desk, then changed in Salesforce in a field not mapped, comes
/// back, whatever the desk sent of it before the delete; read again unchanged, or touched
/// by Salesforce's automation alone, it does not.
async fn deleted_in_the_desk_then_changed_in_salesforce(sent: Sent) {
    let (app, sim) = connected().await;
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Department": "Navy" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Hopper")[0]["id"].clone();
    if sent != Sent::Nothing {
        sim.advance_clock(5);
        // The name sent changes the record's `Name` too, which no one edits.
        update_contact(
            &app,
            &desk_id,
            json!({ "firstName": "Grace", "title": "Rear Admiral" }),
        )
        .await;
        app.sync_now().await;
        let written = sim.get("Contact", &sf_id).unwrap();
        assert_eq!(
            (&written["Title"], &written["Name"]),
            (&json!("Rear Admiral"), &json!("Grace Hopper"))
        );
        if sent == Sent::ReadBack {
            app.sync_now().await;
        }
    }
    bin_contact(&app, &desk_id).await;
    if sent != Sent::ChangedBeforeReadBack {
        // Read again unchanged (the polling window, or what the desk sent read back), the
        // record stays deleted in the desk.
        app.sync_now().await;
        assert!(by_last_name(&contacts(&app).await, "Hopper").is_empty());
        // Nor does Salesforce's own touch (a roll-up recalculated) that no one saved.
        sim.advance_clock(5);
        sim.touch_by_the_system("Contact", &sf_id).unwrap();
        app.sync_now().await;
        assert!(
            by_last_name(&contacts(&app).await, "Hopper").is_empty(),
            "no one saved it"
        );
    }

    sim.advance_clock(5);
    sim.update("Contact", &sf_id, json!({ "Department": "Computing" }))
        .unwrap();
    app.sync_now().await;
    let back = contacts(&app).await;
    let back = by_last_name(&back, "Hopper");
    assert_eq!(back.len(), 1, "restored by the Salesforce update");
    assert_eq!(back[0]["id"], desk_id);
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
}

#[tokio::test]
async fn every_contact_of_a_first_sync_many_pages_long_joins_its_account() {
    use sea_orm::{ConnectionTrait, Statement};
    const FIRMS: usize = 40;
    const PEOPLE: usize = 2_500;
    let (app, sim) = connected().await;
    let firms: Vec<String> = (0..FIRMS)
        .map(|n| {
            sim.insert("Account", json!({ "Name": format!("Firm{n}") }))
                .unwrap()
        })
        .collect();
    // Three pages of contacts, each naming accounts the pages before named too.
    for n in 0..PEOPLE {
        sim.insert(
            "Contact",
            json!({ "LastName": format!("Person{n}"), "AccountId": firms[n % FIRMS] }),
        )
        .unwrap();
    }
    let report = app.sync_now().await;
    assert_eq!(report.pulled.failed, 0, "{report:?}");

    let db = app.store.connection();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT contact.last_name, account.name FROM contact \
             LEFT JOIN account ON account.id = contact.account_id",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), PEOPLE);
    for row in rows {
        let person: String = row.try_get("", "last_name").unwrap();
        let firm: Option<String> = row.try_get("", "name").unwrap();
        let n: usize = person["Person".len()..].parse().unwrap();
        assert_eq!(firm, Some(format!("Firm{}", n % FIRMS)), "{person}");
    }
}

#[tokio::test]
async fn a_first_sync_meeting_many_desk_contacts_looks_their_emails_up_five_queries_a_call() {
    const MET: usize = 800;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let app = spawn_app().await;
    for n in 0..MET {
        // 88 bytes a key in a lookup's URL: 136 keys to a query, six queries in all.
        let email = format!("{}{n:04}@example.com", "x".repeat(60));
        sim.insert(
            "Contact",
            json!({ "LastName": format!("Org{n}"), "Email": email }),
        )
        .unwrap();
        app.store_contact(format!("Desk{n}"), Some(email)).await;
    }
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    let mark = sim.request_count();
    let report = app.sync_now().await;
    assert_eq!(
        report.pushed.added, 0,
        "every desk contact met its twin: {report:?}"
    );
    assert_eq!(sim.count("Contact"), MET, "nothing created twice");

    let requests = &sim.requests()[mark..];
    let calls: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    // A query by email on its own; the re-read of the pairs linked, made before the push
    // goes over them, is by id.
    let lookups_alone = requests
        .iter()
        .filter(|r| r.path.ends_with("/query") && r.query.contains("WHERE+Email+IN+"))
        .count();
    let composite = requests
        .iter()
        .filter(|r| r.path.ends_with("/composite"))
        .count();
    assert_eq!(lookups_alone, 0, "each lookup alone is a call: {calls:?}");
    assert_eq!(composite, 2, "six lookups, five to a call: {calls:?}");
}

#[tokio::test]
async fn a_desk_edit_of_a_contact_purged_from_salesforces_recycle_bin_re_creates_it() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let (app, sim) = connected().await;
    sim.insert(
        "Contact",
        json!({ "LastName": "Noether", "Email": "emmy@example.com" }),
    )
    .unwrap();
    app.sync_now().await;
    let desk_id = by_last_name(&contacts(&app).await, "Noether")[0]["id"].clone();
    let linked = salesforce_id_of(&app, &desk_id).await;
    // Purged, the record's id is one the org no longer knows: another id of the same shape.
    let short = &linked[..15];
    let last = if short.ends_with('9') { '8' } else { '9' };
    let purged = tandem::domain::SalesforceId::parse(&format!("{}{last}", &short[..14]))
        .unwrap()
        .as_str()
        .to_owned();
    assert!(sim.get("Contact", &purged).is_none());
    entity::record_link::Entity::update_many()
        .col_expr(
            entity::record_link::Column::SalesforceId,
            Expr::value(purged.clone()),
        )
        .filter(entity::record_link::Column::SalesforceId.eq(linked.clone()))
        .exec(app.store.connection())
        .await
        .unwrap();
    sim.delete("Contact", &linked).unwrap();

    update_contact(&app, &desk_id, json!({ "title": "Professor" })).await;
    let report = app.sync_now().await;
    assert_eq!(report.pushed.failed, 0, "{report:?}");
    let relinked = salesforce_id_of(&app, &desk_id).await;
    assert_ne!(relinked, purged);
    assert_eq!(sim.get("Contact", &relinked).unwrap()["Title"], "Professor");
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_contact_of_a_purged_account_purged_too_and_brought_back_by_salesforce_stays_in_its_account()
 {
    let (app, sim) = connected().await;
    let (acme, byron, desk_byron) = purged_acme(&app, &sim, "Byron").await;
    app.bin_and_purge("Contact", &desk_byron).await;
    // A Salesforce edit brings the contact back into the desk, without the purged account.
    sim.advance_clock(5);
    sim.update("Contact", &byron, json!({ "Title": "Poet" }))
        .unwrap();
    app.sync_now().await;
    let back = by_last_name(&contacts(&app).await, "Byron")[0].clone();
    assert_ne!(back["id"], desk_byron);
    assert!(back["account"].is_null(), "{back}");
    stays_in_its_purged_account(&app, &sim, (&back["id"], &byron, &acme), "Byron").await;
}

#[tokio::test]
async fn a_contact_of_a_purged_account_made_again_in_the_desk_meets_its_twin_and_stays_in_the_account()
 {
    let (app, sim) = connected().await;
    let (acme, byron, desk_byron) = purged_acme(&app, &sim, "Byron").await;
    app.bin_and_purge("Contact", &desk_byron).await;
    let again = app
        .create_contact(
            json!({ "lastName": "Byron", "email": "Byron@example.com", "title": "Poet" }),
        )
        .await["id"]
        .clone();
    app.sync_now().await;
    let failures = app
        .gql_ok("{ syncFailures { nodes { reason message } } }", json!({}))
        .await;
    assert_eq!(failures["syncFailures"]["nodes"], json!([]), "{failures}");
    assert_eq!(salesforce_id_of(&app, &again).await, byron);
    let in_org = sim.get("Contact", &byron).unwrap();
    assert_eq!(
        (&in_org["Title"], &in_org["AccountId"]),
        (&json!("Poet"), &json!(acme)),
        "{in_org}"
    );
    stays_in_its_purged_account(&app, &sim, (&again, &byron, &acme), "Byron").await;
}

#[tokio::test]
async fn a_salesforce_contact_read_again_unchanged_leaves_its_binned_desk_match_in_the_bin() {
    let (app, _sim, _) = purged_twin().await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let binned = app
        .create_contact(json!({ "lastName": "Curie", "email": "marie@example.com" }))
        .await["id"]
        .clone();
    bin_contact(&app, &binned).await;
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    app.sync_now().await;
    // A new mapping reads every Salesforce contact again, this one unchanged.
    app.map_field("CONTACTS", "mailingCity", "Department").await;
    app.sync_now().await;
    assert!(
        by_last_name(&contacts(&app).await, "Curie").is_empty(),
        "no one updated it in Salesforce"
    );
}

#[tokio::test]
async fn a_new_salesforce_contact_of_a_purged_account_comes_in_without_it_and_stays_in_it() {
    let (app, sim) = connected().await;
    let (acme, _, _) = purged_acme(&app, &sim, "Byron").await;
    // Made in Salesforce in the account the desk purged, which nothing brings back.
    sim.advance_clock(5);
    let shelley = sim
        .insert(
            "Contact",
            json!({ "LastName": "Shelley", "Email": "mary@example.com", "AccountId": acme }),
        )
        .unwrap();
    app.sync_now().await;
    let failures = app
        .gql_ok("{ syncFailures { nodes { reason message } } }", json!({}))
        .await;
    assert_eq!(failures["syncFailures"]["nodes"], json!([]), "{failures}");
    let all = contacts(&app).await;
    let desk = by_last_name(&all, "Shelley");
    assert_eq!(desk.len(), 1, "it comes in at once");
    assert!(desk[0]["account"].is_null(), "{}", desk[0]);
    stays_in_its_purged_account(&app, &sim, (&desk[0]["id"], &shelley, &acme), "Shelley").await;
}

#[tokio::test]
async fn a_contact_purged_before_its_account_and_brought_back_by_salesforce_stays_in_the_account() {
    let (app, sim) = connected().await;
    let acme = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    let keats = sim
        .insert(
            "Contact",
            json!({ "LastName": "Keats", "Email": "keats@example.com", "AccountId": acme }),
        )
        .unwrap();
    app.sync_now().await;
    let desk_keats = by_last_name(&contacts(&app).await, "Keats")[0]["id"].clone();
    let desk_acme = app
        .gql_ok("{ accounts(first: 10) { nodes { id } } }", json!({}))
        .await["accounts"]["nodes"][0]["id"]
        .clone();
    // The contact goes for good first, then its account.
    for (mutation, id) in [
        (
            "mutation($id: ID!) { deleteContact(id: $id) { id } }",
            &desk_keats,
        ),
        ("mutation($id: ID!) { purgeContact(id: $id) }", &desk_keats),
        (
            "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
            &desk_acme,
        ),
        ("mutation($id: ID!) { purgeAccount(id: $id) }", &desk_acme),
    ] {
        app.gql_ok(mutation, json!({ "id": id })).await;
    }
    sim.advance_clock(5);
    sim.update("Contact", &keats, json!({ "Title": "Poet" }))
        .unwrap();
    app.sync_now().await;
    let failures = app
        .gql_ok("{ syncFailures { nodes { reason message } } }", json!({}))
        .await;
    assert_eq!(failures["syncFailures"]["nodes"], json!([]), "{failures}");
    let back = by_last_name(&contacts(&app).await, "Keats")[0].clone();
    assert!(back["account"].is_null(), "{back}");
    stays_in_its_purged_account(&app, &sim, (&back["id"], &keats, &acme), "Keats").await;
}

#[tokio::test]
async fn a_desk_contact_given_another_email_while_a_pull_waits_to_write_is_not_matched_on_the_old_one()
 {
    let (app, sim) = connected().await;
    app.sync_now().await;
    let desk = app
        .create_contact(json!({ "lastName": "Hopper", "email": "grace@example.com" }))
        .await;
    let desk_id: i64 = desk["id"].as_str().unwrap().parse().unwrap();
    let sf_id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Hopper", "Email": "grace@example.com" }),
        )
        .unwrap();

    // The desk contact takes another address while the round reads the page (and meets the
    // contact by its old address).
    edit_while_a_round_waits(&app, desk_id, |c| {
        c.email = Some("g.hopper@example.com".into());
    })
    .await;
    app.sync_now().await;

    assert_eq!(
        sim.get("Contact", &sf_id).unwrap()["Email"],
        "grace@example.com",
        "the Salesforce contact keeps its address"
    );
    let all = contacts(&app).await;
    let hoppers = by_last_name(&all, "Hopper");
    let mut emails: Vec<&str> = hoppers
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    emails.sort_unstable();
    assert_eq!(emails, ["g.hopper@example.com", "grace@example.com"]);
    assert_ne!(salesforce_id_of(&app, &desk["id"]).await, sf_id);
}

#[tokio::test]
async fn a_pull_whose_query_locator_expired_while_it_waited_reads_on_from_where_it_got_to() {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let (app, sim) = connected().await;
    app.sync_now().await;
    for n in 0..2_500 {
        sim.insert("Contact", json!({ "LastName": format!("Paged{n}") }))
            .unwrap();
    }
    // The second page of the poll is asked for only after the locator has gone: the round
    // waited on something for over fifteen minutes.
    let gate = sim.hold_next("GET", "/query/01g");
    let (report, ()) = tokio::join!(app.engine.run_once(), async {
        gate.arrived().await;
        sim.advance_clock(16 * 60);
        gate.release();
    });
    report.expect("the round reads the rest with a query of its own");
    let desk = entity::contact::Entity::find()
        .count(app.store.connection())
        .await
        .unwrap();
    assert_eq!(desk as usize, sim.count("Contact"), "every contact, once");
    let failures = app
        .gql_ok(
            "{ syncFailures(first: 10) { nodes { reason } } }",
            json!({}),
        )
        .await;
    assert_eq!(failures["syncFailures"]["nodes"], json!([]));
}

#[tokio::test]
async fn a_name_that_differs_only_by_what_shows_nothing_meets_its_twin() {
    let (app, sim) = connected().await;
    // Pasted from a spreadsheet that starts with a byte-order mark: the desk keeps the name
    // without it.
    let desk = app.create_account("\u{FEFF}Invisible Ltd").await;
    assert_eq!(desk["name"], "Invisible Ltd");
    sim.insert("Account", json!({ "Name": "Invisible Ltd\u{200B}" }))
        .unwrap();
    app.sync_now().await;
    let accounts = app
        .gql_ok("{ accounts(first: 10) { nodes { id name } } }", json!({}))
        .await;
    assert_eq!(
        accounts["accounts"]["nodes"],
        json!([{ "id": desk["id"], "name": "Invisible Ltd" }]),
        "met, not doubled"
    );
    assert_eq!(sim.count("Account"), 1);
    // The two names agree, as the desk keeps names: nothing is written back either way.
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(writes_since(&sim, mark), Vec::<String>::new(), "no echo");
    let all = sim.records("Account");
    assert_eq!(
        all[0]["Name"], "Invisible Ltd\u{200B}",
        "Salesforce's is its own"
    );
}

#[tokio::test]
async fn a_salesforce_edit_made_while_the_first_sync_exports_wins_over_an_older_desk_edit() {
    let (app, sim) = connected().await;
    let ada = app
        .create_contact(
            json!({ "lastName": "Lovelace", "email": "ada@example.com", "title": "Analyst" }),
        )
        .await;
    app.create_contact(json!({ "lastName": "Hopper" })).await;
    let sf_ada = sim
        .insert(
            "Contact",
            json!({ "LastName": "Lovelace", "Email": "ada@example.com", "Title": "Analyst" }),
        )
        .unwrap();
    // The first round reads Salesforce, links Ada, and stops at the export of Hopper.
    let export = sim.hold_next("PATCH", "/composite/sobjects");
    let round = app.round_in_background();
    export.arrived().await;
    // Ada is edited in the desk, then, later, in Salesforce, while the export goes on.
    update_contact(&app, &ada["id"], json!({ "title": "Desk title" })).await;
    sim.advance_clock(5);
    sim.update("Contact", &sf_ada, json!({ "Title": "Salesforce title" }))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    export.release();
    round.await.unwrap().unwrap();

    assert_eq!(
        sim.get("Contact", &sf_ada).unwrap()["Title"],
        "Salesforce title",
        "the newer edit stands in Salesforce"
    );
    app.sync_now().await;
    let desk = by_last_name(&contacts(&app).await, "Lovelace")[0].clone();
    assert_eq!(
        desk["title"], "Salesforce title",
        "and comes to the desk: {desk}"
    );
    assert_eq!(by_last_name(&contacts(&app).await, "Hopper").len(), 1);
}

#[tokio::test]
async fn a_lost_create_committed_as_the_pull_reads_is_the_creates_answer_not_a_newer_salesforce_edit()
 {
    // Edited in Salesforce after it committed, or not.
    for edited in [false, true] {
        // Creates whose answer is lost are in doubt for ten minutes.
        let app = spawn_app_with(|s| s.sync.unanswered_create_secs = 600).await;
        let sim = salesforce_sim::start(SimConfig::default()).await;
        for object in ["Contact", "Account"] {
            sim.make_plain_field(object, tandem::sync::DESK_ID_FIELD)
                .unwrap();
        }
        assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
        app.gql_ok("mutation { startSync { firstSync } }", json!({}))
            .await;
        app.sync_now().await;
        let curie = app
            .create_contact(json!({ "lastName": "Curie", "title": "Chemist" }))
            .await;
        // The create's connection is cut before Salesforce has it; then the desk edits it.
        round_failing_its_create(&app, &sim, SimHandle::drop_next).await;
        assert_eq!(sim.count("Contact"), 0);
        update_contact(&app, &curie["id"], json!({ "title": "Physicist" })).await;

        // Salesforce commits the create only after the round has looked for it, as the pull
        // reads: stamped later than the desk's edit.
        let pull = sim.hold_next("GET", "FROM Contact");
        let round = app.round_in_background();
        pull.arrived().await;
        sim.advance_clock(5);
        let made = sim
            .insert_as_the_integration_user(
                "Contact",
                json!({ "LastName": "Curie", "Title": "Chemist", "Helpdesk_Id__c": app.desk_ref(&curie["id"]).await }),
            )
            .unwrap();
        if edited {
            sim.advance_clock(5);
            sim.update("Contact", &made, json!({ "Title": "Laureate" }))
                .unwrap();
        }
        pull.release();
        round.await.unwrap().unwrap();
        app.sync_now().await;

        assert_eq!(sim.count("Contact"), 1, "{edited}: not made twice");
        assert_eq!(salesforce_id_of(&app, &curie["id"]).await, made);
        // The newer edit stands on both sides.
        let newer = if edited { "Laureate" } else { "Physicist" };
        let desk = by_last_name(&contacts(&app).await, "Curie")[0].clone();
        assert_eq!(desk["title"], newer, "{edited}: {desk}");
        assert_eq!(
            sim.get("Contact", &made).unwrap()["Title"],
            newer,
            "{edited}"
        );
    }
}

#[tokio::test]
async fn a_record_edited_after_its_page_was_read_is_read_again_however_late_the_query_ends() {
    a_record_edited_after_its_page_was_read_is_read_again(0).await;
}

#[tokio::test]
async fn a_record_edited_after_its_page_was_read_is_read_again_with_no_org_clock_to_go_by() {
    a_record_edited_after_its_page_was_read_is_read_again(2 * 3600).await;
}

/// `skew`: seconds the org's clock is from this host's from the start; two hours, and no
/// answer's `Date` is taken for the org's.
async fn a_record_edited_after_its_page_was_read_is_read_again(skew: i64) {
    let (app, sim) = if skew != 0 {
        let app = spawn_app().await;
        let sim = salesforce_sim::start(SimConfig::default()).await;
        sim.advance_clock(skew);
        connect(&app, &sim, "tandem").await;
        app.gql_ok("mutation { startSync { firstSync } }", json!({}))
            .await;
        (app, sim)
    } else {
        connected().await
    };
    app.sync_now().await;
    // Two pages of a poll: the second is read only once Salesforce lets it go.
    let ids: Vec<String> = (0..2_001)
        .map(|n| {
            sim.insert("Contact", json!({ "LastName": format!("Reader {n:04}") }))
                .unwrap()
        })
        .collect();
    let second = sim.hold_next("GET", "-2000");
    let round = app.round_in_background();
    tokio::time::timeout(std::time::Duration::from_secs(30), second.arrived())
        .await
        .expect("the round reads the second page");
    // The first page read, one of its records is edited; more than the polls' overlap later
    // (and before the query's locator expires), so is the record the second page ends with.
    sim.update("Contact", &ids[0], json!({ "Title": "Edited early" }))
        .unwrap();
    sim.advance_clock(700);
    sim.update("Contact", &ids[2_000], json!({ "Title": "Edited late" }))
        .unwrap();
    second.release();
    round.await.unwrap().unwrap();

    app.sync_now().await;
    let titles = app
        .gql_ok(
            "{ early: contacts(filter: { name: \"Reader 0000\" }) { nodes { title } } \
               late: contacts(filter: { name: \"Reader 2000\" }) { nodes { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        titles,
        json!({ "early": { "nodes": [{ "title": "Edited early" }] }, "late": { "nodes": [{ "title": "Edited late" }] } })
    );
}

#[tokio::test]
async fn a_salesforce_edit_made_while_a_long_pull_reads_on_wins_over_an_older_desk_edit() {
    salesforce_edit_made_while_a_long_pull_reads_on(false).await;
}

#[tokio::test]
async fn a_salesforce_edit_the_desk_cannot_take_yet_made_while_a_long_pull_reads_on_is_not_written_over()
 {
    salesforce_edit_made_while_a_long_pull_reads_on(true).await;
}

/// `moved`: the Salesforce edit also moves the contact to an account the round's pull of
/// accounts has passed, so that the desk cannot take it until the next round.
async fn salesforce_edit_made_while_a_long_pull_reads_on(moved: bool) {
    let (app, sim) = connected().await;
    let twin = sim
        .insert(
            "Contact",
            json!({ "LastName": "Curie", "Title": "Chemist" }),
        )
        .unwrap();
    app.sync_now().await;
    let desk = by_last_name(&contacts(&app).await, "Curie")[0]["id"].clone();
    // Touched in Salesforce first, so that the next poll reads it on its first page…
    sim.update("Contact", &twin, json!({ "Phone": "555-0100" }))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    // …then edited in the desk, later than that…
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Desk title\" }) { id } }",
        json!({ "id": desk }),
    )
    .await;
    // …and the poll is long: a second page of records stamped after both.
    for n in 0..2_000 {
        sim.insert("Contact", json!({ "LastName": format!("Filler {n:04}") }))
            .unwrap();
    }
    let second = sim.hold_next("GET", "-2000");
    let round = app.round_in_background();
    tokio::time::timeout(std::time::Duration::from_secs(30), second.arrived())
        .await
        .expect("the round reads the second page");
    // While it reads on, Salesforce's user edits the title, later than the desk did.
    sim.advance_clock(5);
    let mut edit = json!({ "Title": "Salesforce title" });
    if moved {
        edit["AccountId"] = json!(
            sim.insert("Account", json!({ "Name": "Sorbonne" }))
                .unwrap()
        );
    }
    sim.update("Contact", &twin, edit).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    second.release();
    round.await.unwrap().unwrap();

    assert_eq!(
        sim.get("Contact", &twin).unwrap()["Title"],
        "Salesforce title",
        "the newer Salesforce edit is not overwritten by the desk's older one"
    );
    app.sync_now().await;
    assert_eq!(
        by_last_name(&contacts(&app).await, "Curie")[0]["title"],
        "Salesforce title"
    );
}
