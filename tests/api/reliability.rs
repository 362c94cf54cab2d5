//! Sync under crashes, faults and concurrent edits: nothing lost, nothing duplicated.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use salesforce_sim::{SimConfig, SimHandle};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with, without_desk_id_fields, writes_since};
use crate::integration::connect;

const ORG_CONTACTS: usize = 1_200;
const DESK_CONTACTS: usize = 300;

/// An org and a desk that each hold records the other lacks, connected, first sync started.
async fn two_populated_sides(sim: SimHandle) -> (TestApp, SimHandle) {
    two_populated_sides_with(sim, |_| {}).await
}

async fn two_populated_sides_with(
    sim: SimHandle,
    adjust: impl FnOnce(&mut tandem::config::Settings),
) -> (TestApp, SimHandle) {
    for n in 0..ORG_CONTACTS / 10 {
        sim.insert("Account", json!({ "Name": format!("OrgAccount{n}") }))
            .unwrap();
    }
    for n in 0..ORG_CONTACTS {
        sim.insert(
            "Contact",
            // A third have no email: they are created, never matched.
            if n % 3 == 0 {
                json!({ "LastName": format!("Org{n}") })
            } else {
                json!({ "LastName": format!("Org{n}"), "Email": format!("org{n}@example.com") })
            },
        )
        .unwrap();
    }
    let app = spawn_app_with(adjust).await;
    for n in 0..DESK_CONTACTS / 10 {
        app.store
            .create_account(
                &tandem::domain::AccountInput {
                    name: Some(format!("DeskAccount{n}")),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
    }
    for n in 0..DESK_CONTACTS {
        // A third have no email: after a crash only the desk id the push wrote into
        // Salesforce tells their twins apart from new records.
        let email = (n % 3 != 0).then(|| format!("desk{n}@example.com"));
        app.store_contact(format!("Desk{n}"), email).await;
    }
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    (app, sim)
}

/// Every name appears exactly once on each side, both sides hold the same names (those
/// `two_populated_sides` made, and `later` desk contacts added since), and every record is
/// linked to its twin of the same name.
async fn assert_exactly_once(app: &TestApp, sim: &SimHandle, later: usize) {
    use sea_orm::EntityTrait;
    let expected_contacts = ORG_CONTACTS + DESK_CONTACTS + later;
    let expected_accounts = (ORG_CONTACTS + DESK_CONTACTS) / 10;
    let (desk_contacts, desk_accounts) = desk_names(app).await;
    assert_eq!(desk_contacts.len(), expected_contacts, "desk contacts");
    assert!(
        desk_contacts.values().all(|ids| ids.len() == 1),
        "no desk contact twice"
    );
    assert_eq!(desk_accounts.len(), expected_accounts, "desk accounts");
    assert!(
        desk_accounts.values().all(|ids| ids.len() == 1),
        "no desk account twice"
    );
    let org_contacts = org_names(sim, "Contact", "LastName");
    let org_accounts = org_names(sim, "Account", "Name");
    fn names(side: &HashMap<String, Vec<String>>) -> Vec<&String> {
        let mut names: Vec<&String> = side.keys().collect();
        names.sort();
        names
    }
    assert_eq!(
        names(&org_contacts),
        names(&desk_contacts),
        "Salesforce holds the desk's contacts"
    );
    assert!(
        org_contacts.values().all(|ids| ids.len() == 1),
        "no Salesforce contact twice"
    );
    assert_eq!(
        names(&org_accounts),
        names(&desk_accounts),
        "Salesforce holds the desk's accounts"
    );
    assert!(
        org_accounts.values().all(|ids| ids.len() == 1),
        "no Salesforce account twice"
    );
    // Each link joins the two records of one name, and every record has one.
    let links = entity::record_link::Entity::find()
        .all(app.store.connection())
        .await
        .unwrap();
    for (module, desk, org) in [
        ("CONTACTS", &desk_contacts, &org_contacts),
        ("ACCOUNTS", &desk_accounts, &org_accounts),
    ] {
        let desk_name: HashMap<&str, &str> = desk
            .iter()
            .map(|(name, ids)| (ids[0].as_str(), name.as_str()))
            .collect();
        let org_name: HashMap<&str, &str> = org
            .iter()
            .map(|(name, ids)| (ids[0].as_str(), name.as_str()))
            .collect();
        let mut linked = 0;
        for link in links.iter().filter(|l| l.module == module) {
            let desk_id = link.desk_id.to_string();
            let joined = desk_name.get(desk_id.as_str());
            assert!(
                joined.is_some(),
                "{module} link of a desk record {desk_id} not there"
            );
            assert_eq!(
                joined,
                org_name.get(link.salesforce_id.as_str()),
                "{module} link {desk_id} ↔ {} joins twins",
                link.salesforce_id
            );
            linked += 1;
        }
        assert_eq!(linked, desk.len(), "every {module} record linked once");
    }
}

/// The desk's contacts by last name and accounts by name: the ids holding each.
async fn desk_names(app: &TestApp) -> (HashMap<String, Vec<String>>, HashMap<String, Vec<String>>) {
    use sea_orm::EntityTrait;
    let mut contacts: HashMap<String, Vec<String>> = HashMap::new();
    for c in entity::contact::Entity::find()
        .all(app.store.connection())
        .await
        .unwrap()
    {
        contacts
            .entry(c.last_name)
            .or_default()
            .push(c.id.0.to_string());
    }
    let mut accounts: HashMap<String, Vec<String>> = HashMap::new();
    for a in entity::account::Entity::find()
        .all(app.store.connection())
        .await
        .unwrap()
    {
        accounts.entry(a.name).or_default().push(a.id.0.to_string());
    }
    (contacts, accounts)
}

/// The org's records of an object by the value of `field`: the ids holding each.
fn org_names(sim: &SimHandle, object: &str, field: &str) -> HashMap<String, Vec<String>> {
    let mut names: HashMap<String, Vec<String>> = HashMap::new();
    for record in sim.records(object) {
        names
            .entry(record[field].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(record["Id"].as_str().unwrap_or_default().to_owned());
    }
    names
}

/// `tandem sync --once` in a child process on the test app's database.
fn sync_process(app: &TestApp) -> tokio::process::Child {
    app.tandem(&["sync", "--once"])
        .env("TANDEM_SYNC__WORKER", "false")
        .env("TANDEM_SYNC__UNANSWERED_CREATE_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Desk contacts `killed_at_several_points` adds, without email, between its kills.
const LATER_CONTACTS: usize = 20;

/// Runs the first sync in a child process killed at five times, then adds desk contacts
/// without email and kills the next run the moment Salesforce has carried out their create
/// call (`create`: its method and a part of its path), before the answer reaches it: the org
/// holds records the desk has not linked. Then a run to the end.
async fn killed_at_several_points(app: &TestApp, sim: &SimHandle, create: (&str, &str)) {
    // Killed mid-way: a while after the run first called Salesforce, before it finished.
    let mut killed = 0;
    for ms in [0, 80, 200, 360, 560] {
        let calls = sim.api_usage();
        let mut child = sync_process(app);
        let called = async {
            while sim.api_usage() == calls {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            () = called => {}
            _ = child.wait() => continue,
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.start_kill().unwrap();
        if !child.wait().await.unwrap().success() {
            killed += 1;
        }
    }
    assert!(
        killed >= 3,
        "the sync was killed mid-way at least three times ({killed})"
    );

    for n in 0..LATER_CONTACTS {
        app.store_contact(format!("Later{n}"), None).await;
    }
    let made = sim.hold_answer_next(create.0, create.1);
    let mut child = sync_process(app);
    tokio::select! {
        () = made.arrived() => {}
        status = child.wait() => panic!("the sync ended ({status:?}) before creating anything"),
    }
    child.start_kill().unwrap();
    assert!(!child.wait().await.unwrap().success());
    made.release();

    assert!(
        sync_process(app).wait().await.unwrap().success(),
        "a run to the end finishes the first sync"
    );
    app.sync_now().await;
    let state = app.gql_ok("{ integration { firstSync } }", json!({})).await;
    assert_eq!(state["integration"]["firstSync"], "DONE");
}

/// An org answering each call after 40 ms, so that kills land inside calls too.
async fn slow_org() -> SimHandle {
    salesforce_sim::start(SimConfig {
        latency_ms: 40,
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_first_sync_killed_at_several_points_resumes_with_everything_exactly_once() {
    let (app, sim) = two_populated_sides(slow_org().await).await;
    killed_at_several_points(&app, &sim, ("PATCH", "Helpdesk_Id__c")).await;
    assert_exactly_once(&app, &sim, LATER_CONTACTS).await;
}

#[tokio::test]
async fn killed_in_an_org_without_an_external_id_the_first_sync_still_makes_each_record_once() {
    // Creates are plain creates there: a kill after Salesforce saved a batch and before the
    // links were committed leaves records only the pending-create notes can find again.
    let sim = slow_org().await;
    without_desk_id_fields(&sim);
    let (app, sim) = two_populated_sides(sim).await;
    killed_at_several_points(&app, &sim, ("POST", "/composite/sobjects")).await;
    assert_exactly_once(&app, &sim, LATER_CONTACTS).await;
}

/// Runs rounds until the first sync is done and nothing waits, through the faults the org is
/// set to inject, one token expiry and one spent budget; then, faults off, one more round.
async fn converges_under_faults(app: &TestApp, sim: &SimHandle) {
    let mut rounds = 0;
    let mut budget_spent = false;
    loop {
        rounds += 1;
        assert!(rounds <= 60, "the sync did not converge in 60 rounds");
        if rounds == 2 {
            sim.expire_tokens();
        }
        if rounds == 3 && !budget_spent {
            sim.set_daily_api_limit(sim.api_usage());
            budget_spent = true;
        }
        if rounds == 4 {
            sim.set_daily_api_limit(10_000_000);
        }
        let ok = app.engine.run_once().await.is_ok();
        let done = app.gql_ok("{ integration { firstSync } }", json!({})).await["integration"]["firstSync"]
            == "DONE";
        if ok && done && app.store.outbox_len().await.unwrap() == 0 {
            break;
        }
    }
    sim.set_error_rate(0.0);
    sim.set_drop_rate(0.0);
    sim.set_lost_answer_rate(0.0);
    app.sync_now().await;
}

#[tokio::test]
async fn with_a_tenth_of_calls_failing_the_sync_converges_without_loss() {
    let (app, sim) = two_populated_sides(salesforce_sim::start(SimConfig::default()).await).await;
    sim.set_error_rate(0.07);
    sim.set_drop_rate(0.03);
    converges_under_faults(&app, &sim).await;
    assert_exactly_once(&app, &sim, 0).await;
}

#[tokio::test]
async fn with_answers_lost_after_the_writes_the_sync_still_makes_each_record_once() {
    // An org without an external id, where a create is a plain insert: a quarter of the calls
    // fail, most of them after Salesforce carried them out.
    let sim = salesforce_sim::start(SimConfig::default()).await;
    without_desk_id_fields(&sim);
    // Small batches: many create calls for the faults to fall on.
    let (app, sim) = two_populated_sides_with(sim, |s| s.sync.batch_size = 10).await;
    sim.set_error_rate(0.03);
    sim.set_drop_rate(0.02);
    sim.set_lost_answer_rate(0.2);
    converges_under_faults(&app, &sim).await;
    assert_exactly_once(&app, &sim, 0).await;
}

#[tokio::test]
async fn concurrent_edits_on_both_sides_converge() {
    let (app, sim) = two_populated_sides(salesforce_sim::start(SimConfig::default()).await).await;
    app.sync_now().await;
    let links = {
        use sea_orm::EntityTrait;
        entity::record_link::Entity::find()
            .all(app.store.connection())
            .await
            .unwrap()
    };
    let contacts: Vec<_> = links
        .iter()
        .filter(|l| l.module == "CONTACTS")
        .take(40)
        .collect();
    for round in 0..6 {
        for (i, link) in contacts.iter().enumerate() {
            let title = format!("r{round}-{i}");
            if (i + round) % 3 == 0 {
                sim.update(
                    "Contact",
                    &link.salesforce_id,
                    json!({ "Title": format!("sf-{title}") }),
                )
                .unwrap();
            }
            if (i + round) % 2 == 0 {
                let patch = tandem::domain::ContactPatch {
                    title: Some(Some(format!("desk-{title}"))),
                    ..Default::default()
                };
                app.store
                    .update_contact(tandem::domain::ContactId(link.desk_id), &patch, None)
                    .await
                    .unwrap();
            }
        }
        app.sync_now().await;
    }
    app.sync_now().await;
    for link in contacts {
        let desk = app
            .store
            .contact(tandem::domain::ContactId(link.desk_id))
            .await
            .unwrap()
            .unwrap();
        let org = sim.get("Contact", &link.salesforce_id).unwrap();
        assert_eq!(
            org["Title"].as_str(),
            desk.title.as_deref(),
            "both sides agree on {}",
            link.salesforce_id
        );
    }
    let mark = sim.request_count();
    app.sync_now().await;
    assert_eq!(
        writes_since(&sim, mark),
        Vec::<String>::new(),
        "converged: the next round writes nothing"
    );
}
