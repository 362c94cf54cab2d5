//! Several processes on one database — `serve` replicas on one PostgreSQL, or `serve` beside
//! `tandem sync --once` on one SQLite file — run one sync round at a time, let one worker
//! run, and follow each other's connection changes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use salesforce_sim::{Gate, SimConfig, SimHandle};
use secrecy::SecretString;
use serde_json::json;
use tandem::config::{DatabaseUrl, Settings};
use tandem::domain::{DeskAction, DeskEntity, Module, SyncType};
use tandem::startup::Services;
use tandem::sync::{Connect, ConnectAuth, RoundReport, SyncError};
use tokio::io::AsyncBufReadExt;

use crate::helpers::{TestApp, spawn_app};
use crate::integration::started;

/// Another process's services on the app's database and data dir.
pub(crate) async fn second_process(app: &TestApp) -> Services {
    let mut settings = Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    settings.sync.worker = false;
    Services::open(&settings).await.unwrap()
}

#[tokio::test]
async fn processes_starting_together_after_an_upgrade_apply_its_migration_once() {
    let app = spawn_app().await;
    app.store.migrate_down(1).await.unwrap();
    assert_eq!(app.store.pending_migrations().await.unwrap().len(), 1);
    let mut settings = Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    settings.sync.worker = false;
    let (one, two, three) = tokio::join!(
        Services::open(&settings),
        Services::open(&settings),
        Services::open(&settings)
    );
    for opened in [one, two, three] {
        opened.expect("each process comes up");
    }
    assert_eq!(
        app.store.pending_migrations().await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn processes_starting_together_on_a_fresh_database_make_the_default_profiles_once() {
    use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
    let app = spawn_app().await;
    app.store
        .connection()
        .execute_unprepared("DELETE FROM profile")
        .await
        .unwrap();
    let mut settings = Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    settings.sync.worker = false;
    // One process is making the default profiles, not yet committed, as another starts.
    let making = crate::helpers::other_process_writing(&app).await;
    for name in ["Administrator", "Agent", "Light Agent"] {
        entity::profile::ActiveModel {
            name: Set(name.into()),
            is_admin: Set(name == "Administrator"),
            salesforce_visible: Set(true),
            show_contacts: Set(true),
            show_accounts: Set(true),
            grant_information: Set(true),
            grant_opportunities: Set(true),
            grant_notes: Set(true),
            grant_events: Set(true),
            grant_tasks: Set(true),
            created_at: Set(chrono::Utc::now()),
            updated_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(&making)
        .await
        .unwrap();
    }
    let (second, ()) = tokio::join!(Services::open(&settings), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        making.commit().await.unwrap();
    });
    second.expect("the second process comes up");
    let names: Vec<String> = app
        .store
        .profiles()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["Administrator", "Agent", "Light Agent"]);
}

#[tokio::test]
async fn a_process_holding_another_encryption_key_says_why_it_cannot_sync() {
    let (app, _sim) = started(|_| {}).await;
    let mut settings = Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    settings.sync.worker = false;
    settings.sync.encryption_key = Some(SecretString::from("ab".repeat(32)));
    let other = Services::open(&settings).await.unwrap();
    assert!(other.engine.run_once().await.is_err());
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    let reason = state["integration"]["statusReason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("sync.encryption_key"), "{state}");
    assert_eq!(state["integration"]["status"], "ACTIVE", "{state}");

    // The process holding the right key gets through, and the reason goes.
    app.sync_now().await;
    let state = app
        .gql_ok("{ integration { statusReason } }", json!({}))
        .await;
    assert_eq!(
        state["integration"]["statusReason"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn a_process_on_a_data_dir_without_the_key_says_it_generated_one_and_where() {
    let (app, _sim) = started(|_| {}).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: elsewhere.path().to_path_buf(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    settings.sync.worker = false;
    let other = Services::open(&settings).await.unwrap();
    let error = other.engine.run_once().await.unwrap_err().to_string();
    let key_file = elsewhere.path().join("encryption-key");
    assert!(
        error.contains("generated into") && error.contains(&*key_file.to_string_lossy()),
        "{error}"
    );
    assert!(error.contains("sync.encryption_key"), "{error}");
}

/// An org of `records` contacts, connected from the app and synced once.
async fn synced_org(app: &TestApp, records: usize) -> SimHandle {
    let sim = salesforce_sim::start(SimConfig {
        records,
        ..SimConfig::default()
    })
    .await;
    crate::integration::connect(app, &sim, "tandem").await;
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    sim
}

#[tokio::test]
async fn a_round_waits_while_another_process_runs_one() {
    let (app, sim) = started(|_| {}).await;
    app.sync_now().await;
    let other = second_process(&app).await;
    for n in 0..30 {
        app.create_contact(json!({
            "firstName": "Twin",
            "lastName": format!("Replica{n}"),
            "email": format!("replica{n}@example.com"),
        }))
        .await;
    }
    let writes = || {
        sim.requests()
            .iter()
            .filter(|r| r.path.contains("composite/sobjects"))
            .count()
    };
    let writes_before = writes();
    // A round under way in this process...
    let running = app.store.lock_rounds().await.unwrap();
    let engine = other.engine.clone();
    let waiting = tokio::spawn(async move { engine.run_once().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...keeps the other process's round from starting, so they cannot both send the same
    // queued changes.
    assert!(!waiting.is_finished(), "the second round waits");
    assert_eq!(writes(), writes_before);
    drop(running);
    waiting.await.unwrap().unwrap();
    app.sync_now().await;
    assert_eq!(
        writes() - writes_before,
        1,
        "one collection of 30 creates, sent once"
    );
    assert_eq!(
        app.store.link_count(Module::Contacts).await.unwrap(),
        30,
        "each new desk contact is linked once"
    );
}

#[tokio::test]
async fn a_process_waiting_for_another_to_finish_its_round_can_still_stop() {
    let app = spawn_app().await;
    let running = app.store.lock_rounds().await.unwrap();
    let settings = Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    let (stopped, told) = std::sync::mpsc::channel();
    // The other process, on a runtime of its own: it waits for the round lock, is told to
    // stop, and its runtime shuts down.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let waited = runtime.block_on(async {
            let services = Services::open(&settings).await.unwrap();
            tokio::time::timeout(Duration::from_millis(300), services.store.lock_rounds())
                .await
                .is_err()
        });
        drop(runtime);
        stopped.send(waited).unwrap();
    });
    let waited = told
        .recv_timeout(Duration::from_secs(20))
        .expect("the process stops while another holds the lock");
    assert!(waited, "it waited for the lock");
    drop(running);
}

#[tokio::test]
async fn an_edit_waits_for_another_process_writing_the_same_sqlite_file() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    if !app.database_url.starts_with("sqlite") {
        return;
    }
    let id = app.create_contact(json!({ "lastName": "Noether" })).await["id"].clone();
    // Another process (`tandem sync --once`, say) is in the middle of a write.
    let writing = crate::helpers::other_process_writing(&app).await;
    writing
        .execute_unprepared("UPDATE contact SET first_name = 'Emmy'")
        .await
        .unwrap();
    let (edited, ()) = tokio::join!(
        app.gql(
            "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Professor\" }) { title firstName } }",
            json!({ "id": id }),
        ),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            writing.commit().await.unwrap();
        }
    );
    assert!(edited.get("errors").is_none(), "{edited}");
    assert_eq!(
        edited["data"]["updateContact"],
        json!({ "title": "Professor", "firstName": "Emmy" })
    );
}

#[tokio::test]
async fn one_process_at_a_time_runs_the_sync_worker_and_another_takes_over() {
    let app = spawn_app().await;
    let other = second_process(&app).await;
    let mut lease = app
        .store
        .try_worker_lease()
        .await
        .unwrap()
        .expect("nobody holds the lease yet");
    assert!(lease.held().await);
    assert!(
        other.store.try_worker_lease().await.unwrap().is_none(),
        "the lease is taken"
    );
    drop(lease);
    // The holder is gone (on PostgreSQL, its session closes): the other process takes over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if other.store.try_worker_lease().await.unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the lease was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect_from(services: &Services, sim: &SimHandle) {
    let config = sim.config();
    services
        .integrations
        .connect(Connect {
            login_url: sim.base_url().to_owned(),
            auth: ConnectAuth::Password {
                username: config.username.clone(),
                password: SecretString::from("tandem"),
                client_id: config.client_id.clone(),
                client_secret: SecretString::from(config.client_secret.clone()),
            },
            sync_type: Some(SyncType::TwoWay),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_connection_made_by_another_process_is_the_one_the_next_round_uses() {
    let app = spawn_app().await;
    let first_org = synced_org(&app, 20).await;
    let other = second_process(&app).await;
    let second_org = salesforce_sim::start(SimConfig {
        seed: 2,
        records: 20,
        ..SimConfig::default()
    })
    .await;
    connect_from(&other, &second_org).await;
    other.integrations.start_sync().await.unwrap();

    let calls_before = first_org.request_count();
    app.sync_now().await;
    assert_eq!(
        first_org.request_count(),
        calls_before,
        "the replaced org is not asked again"
    );
    let links = app
        .store
        .links_by_desk(Module::Contacts, &(1..=5_000).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(
        links.len(),
        20 + 20,
        "the second org's contacts, and the first's exported"
    );
    // Simulated orgs number their records alike: the record a link names must be the one
    // holding its desk contact's name, live.
    for (desk_id, link) in &links {
        let desk = app
            .store
            .contact(tandem::domain::ContactId(*desk_id))
            .await
            .unwrap()
            .unwrap();
        let twin = second_org.get("Contact", &link.salesforce_id).unwrap();
        assert_eq!(twin["LastName"], desk.last_name.as_str(), "{twin}");
        assert_eq!(twin["IsDeleted"], false, "{twin}");
    }
}

#[tokio::test]
async fn mappings_are_offered_from_the_org_another_process_connected_a_moment_ago() {
    const MAPPABLE: &str =
        "query { mappableFields(module: CONTACTS) { deskField choices { name } } }";
    let offered = |fields: &serde_json::Value| -> Vec<String> {
        let first_name = fields["mappableFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["deskField"] == "firstName")
            .unwrap();
        first_name["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let app = spawn_app().await;
    let first_org = synced_org(&app, 2).await;
    let second_org = salesforce_sim::start(SimConfig {
        seed: 2,
        records: 2,
        ..SimConfig::default()
    })
    .await;
    // Only the second org lets the integration user see Department.
    first_org.hide_field("Contact", "Department").unwrap();
    let before = app.gql_ok(MAPPABLE, json!({})).await;
    assert!(!offered(&before).contains(&"Department".to_owned()));

    let other = second_process(&app).await;
    connect_from(&other, &second_org).await;
    let after = app.gql_ok(MAPPABLE, json!({})).await;
    assert!(
        offered(&after).contains(&"Department".to_owned()),
        "the org connected now is described: {after}"
    );
}

#[tokio::test]
async fn panels_read_through_the_connection_their_view_names_though_another_process_reconnected() {
    let app = spawn_app().await;
    let first_org = synced_org(&app, 5).await;
    let view = || async {
        let view = app.integrations.org_view().await.unwrap().unwrap();
        view.connection.clone()
    };
    let first = view().await;
    let client = app.integrations.client_reading_as(&first).await.unwrap();
    client
        .expect("the saved connection")
        .instance_url()
        .await
        .unwrap();

    // Another process connects another org; this one still holds the first org's client.
    let other = second_process(&app).await;
    let second_org = salesforce_sim::start(SimConfig {
        seed: 2,
        records: 5,
        ..SimConfig::default()
    })
    .await;
    connect_from(&other, &second_org).await;
    let second = other
        .integrations
        .org_view()
        .await
        .unwrap()
        .unwrap()
        .connection
        .clone();
    assert_ne!(first, second);

    // A view read since names the second org, and is read there.
    let (first_calls, second_calls) = (first_org.request_count(), second_org.request_count());
    let client = app.integrations.client_reading_as(&second).await.unwrap();
    client
        .expect("the saved connection")
        .instance_url()
        .await
        .unwrap();
    assert_eq!(first_org.request_count(), first_calls);
    assert!(second_org.request_count() > second_calls);
    // A view read before names the first: nothing is read for it, from either org, and the
    // view is read again. (On SQLite this process keeps its view a while; on PostgreSQL
    // the reconnect is announced, and the view is read again as soon as it is heard.)
    if !app.database_url.starts_with("postgres") {
        assert_eq!(view().await, first, "this process's view, kept a while");
    }
    assert!(
        app.integrations
            .client_reading_as(&first)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(view().await, second);
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn replicas_on_one_postgresql_hear_each_others_changes() {
    let app = spawn_app().await;
    // One SQLite file serves one `serve` process; its replicas need PostgreSQL.
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let other = second_process(&app).await;
    let mut desk = other.store.subscribe();
    let mut sync = other.store.subscribe_sync();
    // The listener connects in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let contact = app
        .create_contact(json!({ "lastName": "Heard", "email": "heard@example.com" }))
        .await;
    let event = tokio::time::timeout(Duration::from_secs(5), desk.recv())
        .await
        .expect("the other replica hears the desk change")
        .unwrap();
    assert_eq!(event.record_id.to_string(), contact["id"].as_str().unwrap());

    let sim = salesforce_sim::start(SimConfig::default()).await;
    crate::integration::connect(&app, &sim, "tandem").await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let logged = app.store.sync_events_after(0, 100).await.unwrap();
    let paused = logged.last().expect("the pause is logged");
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = sync.recv().await.unwrap();
            if event.id == paused.id {
                return event;
            }
        }
    })
    .await
    .expect("the other replica hears the sync event");
    assert_eq!(&heard, paused);
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn a_sync_started_through_a_standby_replica_runs_at_once_on_the_one_with_the_worker() {
    let app = spawn_app().await;
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let sim = salesforce_sim::start(SimConfig::default()).await;
    crate::integration::connect(&app, &sim, "tandem").await;
    // An hour between polls: only the start can bring the first round.
    let worker = tandem::sync::worker::spawn(app.engine.clone(), app.store.clone(), 3600);
    let other = second_process(&app).await;
    // The listener connects in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;

    other.integrations.start_sync().await.unwrap();
    let since = Instant::now();
    while app.store.integration().await.unwrap().unwrap().first_sync != "DONE" {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "the first sync waits for the worker's next poll"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.abort();
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn a_replica_hears_of_a_commit_that_changes_no_desk_record() {
    let app = spawn_app().await;
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let sim = salesforce_sim::start(SimConfig::default()).await;
    crate::integration::connect(&app, &sim, "tandem").await;
    let other = second_process(&app).await;
    // The listener connects in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A sync type change logs no event and changes no desk record, yet answers kept by this
    // replica (a panel's fields follow the sync type) must not outlive it.
    let before = app.store.changes();
    other
        .store
        .set_sync_type(SyncType::SalesforceToDesk, None)
        .await
        .unwrap();
    let since = Instant::now();
    while app.store.changes() == before {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "this replica never heard of the commit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn panels_of_a_replica_see_another_replica_delete_the_integration_at_once() {
    let (app, _sim, _) = crate::panels::linked().await;
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let other = second_process(&app).await;
    // The listener connects in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let query = "{ contacts(first: 10) { nodes { salesforce { id } } } }";
    let before = app.gql(query, json!({})).await;
    assert!(before.get("errors").is_none(), "{before}");

    other.integrations.delete().await.unwrap();
    // Well within the half minute this replica would otherwise trust its view of the org.
    let since = Instant::now();
    loop {
        let body = app.gql(query, json!({})).await;
        let codes = crate::helpers::codes(&body);
        if !codes.is_empty() {
            assert!(
                codes.iter().all(|c| c == "INTEGRATION_UNAVAILABLE"),
                "{body}"
            );
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the panel still reads as if linked: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn a_replica_hears_every_contact_a_first_sync_creates_in_order() {
    let app = spawn_app().await;
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let other = second_process(&app).await;
    let mut desk = other.store.subscribe();
    // The listener connects in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A page of the import announces hundreds of new contacts at once: more than one
    // notice's payload holds.
    let _sim = synced_org(&app, 600).await;
    let imported = app.store.link_count(Module::Contacts).await.unwrap() as usize;
    assert!(imported >= 600, "{imported} contacts imported");

    let mut heard = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while heard.len() < imported {
            let event = desk.recv().await.expect("no notice is lost or lagged");
            if event.entity == DeskEntity::Contact && event.action == DeskAction::Created {
                heard.push(event.record_id);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("heard {} of {imported} new contacts", heard.len()));
    assert!(
        heard.windows(2).all(|w| w[0] < w[1]),
        "the new contacts arrive in the order they were created"
    );
}

#[tokio::test]
async fn a_token_salesforce_rotates_again_while_connecting_is_the_one_saved() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig {
        rotate_refresh_tokens: true,
        ..SimConfig::default()
    })
    .await;
    // Signed in (the token given rotated once), the session expires at the connection's
    // first call to the API: renewed, the token rotates again.
    let given = sim.refresh_token();
    let first_call = sim.hold_next("GET", "/services/data/v");
    let (connected, ()) = tokio::join!(
        crate::integration::connect_with_refresh_token(&app, &sim, &given),
        async {
            first_call.arrived().await;
            sim.expire_tokens();
            first_call.release();
        }
    );
    assert_eq!(
        connected["data"]["connectSalesforce"]["status"], "ACTIVE",
        "{connected}"
    );
    let renewals = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("oauth2/token"))
        .count();
    assert_eq!(renewals, 2, "signed in, then renewed");

    // Another process, or this one restarted, signs in with what was saved.
    let other = second_process(&app).await;
    sim.insert("Contact", json!({ "LastName": "Restarted" }))
        .unwrap();
    other.integrations.start_sync().await.unwrap();
    let report = other.engine.run_once().await.unwrap();
    assert_eq!(report.pulled.added, 1, "{report:?}");
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(state["integration"]["status"], "ACTIVE", "{state}");
}

#[tokio::test]
async fn a_refresh_token_salesforce_rotates_is_saved_for_every_process() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig {
        rotate_refresh_tokens: true,
        ..SimConfig::default()
    })
    .await;
    let given = sim.refresh_token();
    let connected = crate::integration::connect_with_refresh_token(&app, &sim, &given).await;
    assert_eq!(
        connected["data"]["connectSalesforce"]["status"], "ACTIVE",
        "{connected}"
    );
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    let sign_ins = || {
        sim.requests()
            .iter()
            .filter(|r| r.path.contains("oauth2/token"))
            .count()
    };
    // The session expires: this process renews it, and Salesforce rotates the token again.
    sim.expire_tokens();
    sim.insert("Contact", json!({ "LastName": "Rotated" }))
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pulled.added, 1, "{report:?}");
    assert_eq!(
        sign_ins(),
        2,
        "connecting and the renewal each refreshed once"
    );

    // Another process, or this one restarted, signs in with what was saved: the token the
    // last rotation answered, every earlier one being void. Its sign-in rotates it again.
    let other = second_process(&app).await;
    sim.insert("Contact", json!({ "LastName": "Restarted" }))
        .unwrap();
    let report = other.engine.run_once().await.unwrap();
    assert_eq!(report.pulled.added, 1, "{report:?}");
    assert_eq!(sign_ins(), 3);

    // The first process takes the token the other saved without signing in again (which
    // would void the other's), and renews with it once its session expires.
    let report = app.sync_now().await;
    assert!(report.idle.is_none(), "{report:?}");
    assert_eq!(sign_ins(), 3, "the session in use goes on");
    sim.expire_tokens();
    sim.insert("Contact", json!({ "LastName": "Renewed" }))
        .unwrap();
    let report = app.sync_now().await;
    assert_eq!(report.pulled.added, 1, "{report:?}");
    assert_eq!(sign_ins(), 4);
    // And so does the other, with the token this renewal saved.
    sim.expire_tokens();
    let report = other.engine.run_once().await.unwrap();
    assert!(report.idle.is_none(), "{report:?}");
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(state["integration"]["status"], "ACTIVE", "{state}");
    assert!(state["integration"]["statusReason"].is_null(), "{state}");
}

/// A round in this process exporting three contacts one a batch, its first batch held on its
/// way to Salesforce; and another process on the same database.
async fn export_under_way() -> (
    TestApp,
    SimHandle,
    Services,
    Gate,
    tokio::task::JoinHandle<Result<RoundReport, SyncError>>,
) {
    let (app, sim) = started(|s| s.sync.batch_size = 1).await;
    for name in ["Noether", "Curie", "Meitner"] {
        app.create_contact(json!({ "lastName": name })).await;
    }
    let other = second_process(&app).await;
    let first = sim.hold_next("PATCH", "/composite/sobjects/Contact");
    let round = app.round_in_background();
    first.arrived().await;
    (app, sim, other, first, round)
}

#[tokio::test]
async fn a_pause_made_in_another_process_stops_a_running_round_at_its_next_batch() {
    let (app, sim, other, first, round) = export_under_way().await;
    let pausing = tokio::spawn({
        let integrations = other.integrations.clone();
        async move { integrations.pause().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pausing.is_finished(),
        "the pause waits for the round it interrupts"
    );
    first.release();
    let paused = pausing.await.unwrap().unwrap();
    assert_eq!(paused.status, "PAUSED");
    assert!(
        round
            .await
            .unwrap()
            .expect("a paused round is not a failure")
            .idle
            .is_some(),
        "the round stopped early"
    );
    assert_eq!(
        sim.count("Contact"),
        1,
        "the batch in flight lands, no other"
    );
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(state["integration"]["status"], "PAUSED");
    assert!(state["integration"]["statusReason"].is_null(), "{state}");

    other.integrations.resume().await.unwrap();
    app.sync_now().await;
    assert_eq!(
        sim.count("Contact"),
        3,
        "the export resumes where it stopped"
    );
}

/// `tandem sync --once` exporting three desk contacts a batch at a time, its first batch
/// held by `hold` (`SimHandle::hold_next`: before Salesforce makes it; `hold_answer_next`:
/// made, its answer held).
async fn sync_once_exporting(
    hold: fn(&SimHandle, &str, &str) -> Gate,
) -> (
    TestApp,
    SimHandle,
    Gate,
    tokio::task::JoinHandle<std::io::Result<std::process::Output>>,
) {
    let (app, sim) = started(|_| {}).await;
    for name in ["Noether", "Curie", "Meitner"] {
        app.create_contact(json!({ "lastName": name })).await;
    }
    let first = hold(&sim, "PATCH", "/composite/sobjects/Contact");
    let run = app
        .tandem(&["sync", "--once"])
        .env("TANDEM_SYNC__BATCH_SIZE", "1")
        .output();
    let run = tokio::spawn(run);
    first.arrived().await;
    (app, sim, first, run)
}

#[tokio::test]
async fn sync_once_paused_midway_says_what_it_sent_before_it_stopped() {
    let (app, sim, first, run) = sync_once_exporting(SimHandle::hold_next).await;
    // The pause waits for the batch in flight.
    let (paused, ()) = tokio::join!(
        app.gql_ok("mutation { pauseSync { status } }", json!({})),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            first.release();
        }
    );
    assert_eq!(paused["pauseSync"]["status"], "PAUSED");
    let output = run.await.unwrap().unwrap();
    let (stdout, stderr) = failed(&output);
    assert!(
        stdout.contains("desk → Salesforce: 1 added, 0 updated, 0 failed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("the round stopped before it was done"),
        "{stderr}"
    );
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn sync_once_failing_midway_says_what_it_sent_before_it_failed() {
    let (_app, sim, first, run) = sync_once_exporting(SimHandle::hold_answer_next).await;
    // The first batch is made; the org turns its API off before the next.
    sim.disable_api(true);
    first.release();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("it ends")
        .unwrap()
        .unwrap();
    let (stdout, stderr) = failed(&output);
    assert!(
        stdout.contains("desk → Salesforce: 1 added, 0 updated, 0 failed"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("the round failed after the batches counted above")
            && stderr.contains("API_DISABLED_FOR_ORG"),
        "{stderr}"
    );
    assert!(
        stderr.starts_with("syncing the database at "),
        "it says which database: {stderr}"
    );
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn sync_once_names_the_sqlite_file_it_opens_by_its_whole_path() {
    // Run by a scheduler from another directory than `serve`, the default file is another
    // one: the path it names must show that.
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["sync", "--once"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    let (_, stderr) = failed(&output);
    let file = dir.path().canonicalize().unwrap().join(".tandem/tandem.db");
    let said = format!("syncing the database at {}", file.display());
    assert!(stderr.lines().any(|line| line == said), "{stderr}");
    assert!(stderr.contains("not connected"), "{stderr}");
}

#[tokio::test]
async fn sync_once_behind_another_processs_round_says_what_it_waits_for() {
    let (app, sim) = started(|_| {}).await;
    app.create_contact(json!({ "lastName": "Franklin" })).await;
    let running = app.store.lock_rounds().await.unwrap();
    let (mut run, mut lines, mut said) = sync_once_waiting(&app).await;
    let stderr = said.join("\n");
    assert!(stderr.contains("starts when it is done"), "{stderr}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        run.try_wait().unwrap().is_none(),
        "it waits for the round under way"
    );
    assert_eq!(sim.count("Contact"), 0);
    drop(running);
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push(line);
        }
        run.wait().await.unwrap()
    })
    .await
    .expect("it runs once the other round is done");
    assert!(ended.success(), "{}", said.join("\n"));
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_round_told_to_stop_while_it_waits_for_another_ends_at_once_and_keeps_the_reason_shown() {
    let (app, _sim) = started(|_| {}).await;
    let shown = "the last sync round stopped: Salesforce was unavailable".to_owned();
    app.integrations.explain(Some(shown.clone())).await.unwrap();
    let running = app.store.lock_rounds().await.unwrap();
    let waiting = app.round_in_background();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "it waits for the round under way");
    app.integrations.stop_here();
    let report = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the wait ends when the round is stopped, not when the other round does")
        .unwrap()
        .unwrap();
    assert!(report.idle.is_some(), "{report:?}");
    let reason = app
        .integrations
        .current()
        .await
        .unwrap()
        .unwrap()
        .status_reason;
    assert_eq!(reason, Some(shown), "nothing got through: the reason stays");
    drop(running);
}

/// What a `tandem sync --once` that exited non-zero wrote: its stdout and its stderr.
fn failed(output: &std::process::Output) -> (String, String) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(!output.status.success(), "{stdout}{stderr}");
    (stdout, stderr)
}

#[tokio::test]
async fn sync_once_leaving_records_in_the_failure_log_exits_non_zero() {
    let (app, sim) = started(|_| {}).await;
    app.sync_now().await;
    app.create_contact(json!({ "lastName": "Refused" })).await;
    sim.reject_next_records(&[(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Every contact needs a title",
    )]);
    let output = app.tandem(&["sync", "--once"]).output().await.unwrap();
    let (stdout, stderr) = failed(&output);
    assert!(
        stdout.contains("desk → Salesforce: 0 added, 0 updated, 1 failed"),
        "{stdout}"
    );
    assert!(stderr.contains("1 record failed"), "{stderr}");
}

#[tokio::test]
async fn sync_once_with_a_module_stopped_says_which_and_exits_non_zero() {
    let (app, sim) = started(|_| {}).await;
    app.sync_now().await;
    sim.hide_field("Account", "Industry").unwrap();
    sim.insert(
        "Contact",
        json!({ "LastName": "Onward", "Email": "onward@example.com" }),
    )
    .unwrap();
    let output = app.tandem(&["sync", "--once"]).output().await.unwrap();
    let (stdout, stderr) = failed(&output);
    assert!(
        stdout.contains("Salesforce → desk: 1 added, 0 updated, 0 failed"),
        "the contact came: {stdout}"
    );
    assert!(
        stderr.contains("Accounts did not sync: Account.Industry, mapped from the desk's industry, is not a field the integration user can see")
            && stderr.contains("the rest synced"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sync_once_interrupted_while_it_waits_for_another_round_stops_at_once_and_syncs_nothing() {
    sync_once_stopped_while_it_waits("-INT").await;
}

#[tokio::test]
async fn sync_once_terminated_while_it_waits_for_another_round_stops_the_same_way() {
    sync_once_stopped_while_it_waits("-TERM").await;
}

#[tokio::test]
async fn a_process_told_to_stop_before_its_round_asked_for_its_turn_does_not_wait_for_another() {
    let (app, _sim) = started(|_| {}).await;
    let other = second_process(&app).await;
    let running = app.store.lock_rounds().await.unwrap();
    // The signal comes as the round is being started: before it asks for its turn.
    other.integrations.close_here();
    let report = tokio::time::timeout(Duration::from_secs(10), other.engine.run_once())
        .await
        .expect("it ends without waiting for the other round");
    assert!(
        report.as_ref().is_ok_and(|r| r.idle.is_some()) || report.is_err(),
        "{report:?}"
    );
    drop(running);
}

/// `tandem sync --once`, waiting for another process's round, sent `signal`.
/// `tandem sync --once` started behind a round another process holds, once it has said it
/// waits for that one (however long it took to start): the process, the rest of what it
/// writes to stderr, and what it wrote so far.
async fn sync_once_waiting(
    app: &TestApp,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    Vec<String>,
) {
    let mut run = app
        .tandem(&["sync", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(run.stderr.take().unwrap()).lines();
    let mut said = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let waits = line.contains("another process");
            said.push(line);
            if waits {
                break;
            }
        }
    })
    .await
    .expect("it says it waits for another process");
    (run, lines, said)
}

async fn sync_once_stopped_while_it_waits(signal: &str) {
    let (app, sim) = started(|_| {}).await;
    app.create_contact(json!({ "lastName": "Hodgkin" })).await;
    let running = app.store.lock_rounds().await.unwrap();
    // Told it waits, it is waiting (and listens for Ctrl-C a moment later).
    let (mut run, mut lines, mut said) = sync_once_waiting(&app).await;
    assert!(
        said.last().is_some_and(|l| l.contains("another process")),
        "{said:?}"
    );
    send(&run, signal);
    // The other round still runs: the wait for it ends, not the round.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push(line);
        }
        run.wait().await.unwrap()
    })
    .await
    .expect("Ctrl-C ends the wait while the other round runs");
    drop(running);
    let stderr = said.join("\n");
    assert!(!ended.success(), "{stderr}");
    assert!(
        stderr.contains("interrupted: the round stopped"),
        "{stderr}"
    );
    assert_eq!(
        sim.count("Contact"),
        0,
        "the round asked to stop never began"
    );
}

#[tokio::test]
async fn serve_interrupted_answers_the_request_in_flight_before_it_exits() {
    let (app, sim) = started(|_| {}).await;
    app.create_contact(json!({ "lastName": "Lamarr", "email": "hedy@example.com" }))
        .await;
    app.sync_now().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = app
        .tandem(&["serve"])
        .env("TANDEM_AUTH__JWT_SECRET", crate::helpers::SECRET)
        .env("TANDEM_HTTP__PORT", port.to_string())
        .env("TANDEM_SYNC__WORKER", "false")
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{address}/readyz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "`tandem serve` comes up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The panel's lists are read in one composite call of queries.
    let read = sim.hold_next("POST", "/composite");
    let mut asked = tokio::spawn(async move {
        let answer = client
            .post(format!("{address}/graphql"))
            .bearer_auth(app.token("Agent"))
            .json(&json!({
                "query": "{ contacts(first: 10) { nodes { salesforce { tasks { subject } } } } }"
            }))
            .send()
            .await?;
        Ok::<_, reqwest::Error>((answer.status(), answer.json::<serde_json::Value>().await?))
    });
    tokio::select! {
        () = read.arrived() => {}
        answer = &mut asked => panic!("answered without asking Salesforce: {answer:?}"),
    }
    interrupt(&serve);
    tokio::time::sleep(Duration::from_millis(500)).await;
    read.release();
    let (status, body) = asked
        .await
        .unwrap()
        .expect("the request in flight is answered, not cut off");
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    assert!(
        body["data"]["contacts"]["nodes"][0]["salesforce"]["tasks"].is_array(),
        "{body}"
    );
    let exited = tokio::time::timeout(Duration::from_secs(30), serve.wait())
        .await
        .expect("`tandem serve` exits once its requests are answered")
        .unwrap();
    assert!(exited.success(), "{exited:?}");
}

/// Sends SIGINT to `child`, as Ctrl-C in its terminal does.
pub fn interrupt(child: &tokio::process::Child) {
    send(child, "-INT");
}

/// Sends `child` a signal, as `kill` names it (`-INT`, `-TERM`).
fn send(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("the child is running").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn a_round_refused_in_another_process_after_a_pause_leaves_the_integration_paused() {
    let (app, _sim) = started(|_| {}).await;
    app.sync_now().await;
    let other = second_process(&app).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    // The other replica's round, under way before the pause, meets revoked credentials.
    other
        .integrations
        .fail("Salesforce refused the saved credentials (invalid_grant: expired access/refresh token); reconnect to resume")
        .await
        .unwrap();
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(state["integration"]["status"], "PAUSED", "{state}");
    assert!(
        state["integration"]["statusReason"]
            .as_str()
            .is_some_and(|r| r.contains("invalid_grant")),
        "the reason is kept: {state}"
    );
}

#[tokio::test]
async fn two_deletes_racing_from_two_processes_disconnect_once_and_say_so_once() {
    let (app, _sim, other, first, round) = export_under_way().await;
    let delete = |integrations: std::sync::Arc<tandem::sync::Integrations>| {
        tokio::spawn(async move { integrations.delete().await })
    };
    let third = second_process(&app).await;
    let ours = delete(third.integrations.clone());
    let theirs = delete(other.integrations.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.release();
    let mut outcomes = Vec::new();
    for deleting in [ours, theirs] {
        outcomes.push(
            tokio::time::timeout(Duration::from_secs(10), deleting)
                .await
                .expect("a delete waits for the round's batch, no longer")
                .unwrap(),
        );
    }
    let _ = round.await.unwrap();
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(SyncError::NotConnected))),
        "{outcomes:?}"
    );
    let disconnected = app
        .store
        .sync_events_after(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            matches!(
                e.kind,
                tandem::store::SyncEventKind::Status {
                    status: tandem::domain::IntegrationStatus::NotConnected,
                    ..
                }
            )
        })
        .count();
    assert_eq!(disconnected, 1, "one disconnection, one event");
}

#[tokio::test]
async fn a_delete_or_remapping_in_another_process_stops_a_running_round_at_its_next_batch() {
    for change in ["remap", "delete"] {
        let (_app, sim, other, first, round) = export_under_way().await;
        let changing = tokio::spawn({
            let integrations = other.integrations.clone();
            async move {
                if change == "delete" {
                    integrations.delete().await
                } else {
                    let mut mappings = integrations.mappings(Module::Contacts).await?;
                    mappings.retain(|m| m.desk_field != "title");
                    integrations
                        .update_mappings(Module::Contacts, mappings)
                        .await
                        .map(drop)
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!changing.is_finished(), "{change}: it waits for the round");
        first.release();
        tokio::time::timeout(Duration::from_secs(10), changing)
            .await
            .expect("the change does not wait for the whole round")
            .unwrap()
            .unwrap();
        assert!(
            round.await.unwrap().unwrap().idle.is_some(),
            "{change}: the round stopped early"
        );
        assert_eq!(
            sim.count("Contact"),
            1,
            "{change}: the batch in flight lands, no other"
        );
    }
}

/// A round that takes the lock after a remapping told rounds to stop (the next one of the
/// process that let go) reads the word as its own starting point and would run whole; while
/// the remapping waits, the word goes out again, and such a round stops at its next batch.
#[tokio::test]
async fn a_remapping_waiting_for_the_round_lock_tells_rounds_to_stop_again_and_again() {
    let (app, _sim) = started(|_| {}).await;
    let other = second_process(&app).await;
    // Another process's round holds the lock.
    let held = other.store.try_lock_rounds().await.unwrap().unwrap();
    let changing = tokio::spawn({
        let integrations = app.integrations.clone();
        async move {
            let mut mappings = integrations.mappings(Module::Contacts).await?;
            mappings.retain(|m| m.desk_field != "title");
            integrations
                .update_mappings(Module::Contacts, mappings)
                .await
                .map(drop)
        }
    });
    let epoch = || async { app.store.integration().await.unwrap().unwrap().epoch };
    let before = epoch().await;
    let changed_from = |from: i64| async move {
        loop {
            let now = epoch().await;
            if now > from {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // The first word, which a round beginning now would read as its own.
    let told = tokio::time::timeout(Duration::from_secs(10), changed_from(before))
        .await
        .expect("the remapping tells rounds to stop");
    tokio::time::timeout(Duration::from_secs(15), changed_from(told))
        .await
        .expect("a round that began under the first word is told again");
    assert!(!changing.is_finished(), "it waits for the round");
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), changing)
        .await
        .expect("the remapping goes ahead once the lock is let go")
        .unwrap()
        .unwrap();
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn a_round_whose_database_lock_is_lost_stops_before_another_can_run_beside_it() {
    let (app, sim, other, first, round) = export_under_way().await;
    // A lock on a file holds for as long as the process keeps the file open.
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    // The server ends the connection holding the round lock, as a restart, a failover or an
    // idle_in_transaction_session_timeout would.
    let admin = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .unwrap();
    let ended = sea_orm::ConnectionTrait::query_all_raw(
        &admin,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            // The round lock's key, 0x7461_6e64_656d_0001, in its two halves.
            "SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid = 1952542308 AND objid = 1701642241",
        ),
    )
    .await
    .unwrap();
    assert_eq!(ended.len(), 1, "one connection held the round lock");
    // Another process may now run a round; this one must not go on beside it.
    let taken = tokio::time::timeout(Duration::from_secs(5), other.store.lock_rounds())
        .await
        .expect("the lock is free once its connection is gone")
        .unwrap();
    drop(taken);
    first.release();
    let stopped = round.await.unwrap();
    assert!(
        matches!(stopped, Err(SyncError::LockLost)),
        "the round stops: {stopped:?}"
    );
    assert_eq!(
        sim.count("Contact"),
        1,
        "the batch in flight lands, no other"
    );
    let state = app
        .gql_ok("{ integration { status statusReason } }", json!({}))
        .await;
    assert_eq!(state["integration"]["status"], "ACTIVE", "{state}");
    assert!(
        state["integration"]["statusReason"]
            .as_str()
            .is_some_and(|r| r.contains("round lock")),
        "{state}"
    );

    let report = app.sync_now().await;
    assert_eq!(report.pushed.added, 2, "{report:?}");
    assert_eq!(sim.count("Contact"), 3, "each contact once");
    assert!(
        app.gql_ok("{ integration { statusReason } }", json!({}))
            .await["integration"]["statusReason"]
            .is_null(),
        "a round that gets through clears the reason"
    );
}

#[tokio::test]
async fn an_event_another_process_logs_just_before_one_of_this_ones_reaches_every_listener() {
    let (app, _sim) = started(|_| {}).await;
    let other = second_process(&app).await;
    let mut heard = app.store.subscribe_sync();
    // The log has been looked at once (it is, every second).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Between two looks at the log: the other process's event, then this one's.
    other.integrations.pause().await.unwrap();
    app.gql_ok("mutation { resumeSync { status } }", json!({}))
        .await;
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .unwrap_or_else(|_| panic!("both events arrive; heard {statuses:?}"))
            .unwrap();
        if let tandem::sync::SyncEventKind::Status { status, .. } = event.kind {
            statuses.push((event.id, status));
        }
    }
    statuses.sort_by_key(|(id, _)| *id);
    assert_eq!(
        statuses.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [
            tandem::domain::IntegrationStatus::Paused,
            tandem::domain::IntegrationStatus::Active
        ]
    );
}

#[tokio::test]
async fn a_server_told_to_stop_lets_its_round_finish_the_batch_in_flight_and_starts_no_other() {
    let (app, sim) = started(|s| s.sync.batch_size = 1).await;
    for name in ["Noether", "Curie", "Meitner"] {
        app.create_contact(json!({ "lastName": name })).await;
    }
    // A second gateway on the same database, whose worker runs the rounds.
    let mut settings = Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    settings.http.port = 0;
    settings.http.workers = Some(1);
    settings.sync.batch_size = 1;
    settings.sync.poll_interval_secs = 1;
    let first = sim.hold_next("PATCH", "/composite/sobjects/Contact");
    let gateway = tandem::startup::Application::build(&settings)
        .await
        .unwrap();
    let handle = gateway.handle();
    let serving = tokio::spawn(gateway.run_until_stopped());
    first.arrived().await;

    // Told to stop (as by SIGTERM) while its batch is with Salesforce.
    let stopping = tokio::spawn(handle.stop(true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !serving.is_finished(),
        "the server waits for the batch in flight"
    );
    first.release();
    tokio::time::timeout(Duration::from_secs(20), serving)
        .await
        .expect("the server stops once the batch is done")
        .unwrap()
        .unwrap();
    stopping.await.unwrap();
    assert_eq!(
        sim.count("Contact"),
        1,
        "the batch in flight lands, no other"
    );
    // Its answer was kept: the next round sends the rest, and that one not again.
    app.sync_now().await;
    assert_eq!(sim.count("Contact"), 3);
}

#[tokio::test]
async fn a_gateway_that_cannot_listen_says_how_to_choose_a_port_and_runs_no_round() {
    let (app, sim) = started(|_| {}).await;
    app.create_contact(json!({ "lastName": "Waiting" })).await;
    let asked = sim.requests().len();
    // A second gateway, with a worker, on the same database and the port the first holds.
    let mut settings = Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    settings.http.port = app.port;
    settings.sync.poll_interval_secs = 1;
    let Err(e) = tandem::startup::Application::build(&settings).await else {
        panic!("a port another process holds cannot be listened on");
    };
    let message = format!("{e:#}");
    assert!(
        message.contains(&format!("cannot listen on 127.0.0.1:{}", app.port))
            && message.contains("TANDEM_HTTP__PORT"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sim.count("Contact"), 0, "no round ran");
    assert_eq!(sim.requests().len(), asked, "nothing asked of Salesforce");
}

#[tokio::test]
async fn a_gateway_refused_for_its_port_or_its_key_applies_no_migration() {
    let app = spawn_app().await;
    app.store.migrate_down(1).await.unwrap();
    let settings = || Settings {
        data_dir: app.data_dir.clone(),
        database_url: Some(DatabaseUrl::new(app.database_url.clone())),
        ..Default::default()
    };
    let mut taken = settings();
    taken.http.port = app.port;
    let mut keyless = settings();
    keyless.http.port = 0;
    keyless.auth.public_key_file = Some(app.data_dir.join("no-such-key.pem"));
    for refused in [taken, keyless] {
        assert!(tandem::startup::Application::build(&refused).await.is_err());
        assert_eq!(
            app.store.pending_migrations().await.unwrap().len(),
            1,
            "the migration waits for a gateway that can serve"
        );
    }
    app.store.migrate_up().await.unwrap();
}

#[tokio::test]
async fn a_wait_for_the_round_lock_given_up_leaves_nothing_waiting() {
    let app = spawn_app().await;
    let elsewhere = app.store.lock_rounds().await.unwrap();
    // A connect or delete whose client went away, dropped while it waits.
    let gave_up = tokio::time::timeout(Duration::from_millis(300), app.store.lock_rounds()).await;
    assert!(gave_up.is_err(), "another process holds it");
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(waiting) = app.sessions_waiting_for_a_lock().await {
        assert_eq!(waiting, 0);
    }
    app.let_go_and_find_the_round_lock_free(elsewhere).await;
}

#[tokio::test]
async fn a_process_that_began_to_stop_starts_no_round() {
    let (app, sim) = started(|_| {}).await;
    app.create_contact(json!({ "lastName": "Late" })).await;
    let asked = sim.requests().len();
    app.integrations.close_here();
    app.engine.run_once().await.unwrap();
    assert_eq!(sim.count("Contact"), 0, "no round ran");
    assert_eq!(sim.requests().len(), asked, "nothing asked of Salesforce");
}

#[tokio::test]
async fn desk_changes_another_process_makes_reach_subscribers_or_they_are_told_they_missed_some() {
    use crate::ws::{TRANSPORT, Ws};
    let (app, sim) = started(|_| {}).await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Administrator").await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { deskChanges(entities: [CONTACT]) { action recordId } }" } }))
        .await;
    // Live once a change of this process's own arrives.
    let mut made = 0;
    while tokio::time::timeout(Duration::from_secs(1), ws.recv())
        .await
        .is_err()
    {
        app.create_contact(json!({ "lastName": format!("Here{made}") }))
            .await;
        made += 1;
        assert!(made < 10, "no change arrived");
    }
    // Drain what the other tries brought.
    while tokio::time::timeout(Duration::from_millis(300), ws.recv())
        .await
        .is_ok()
    {}
    // `tandem sync --once` beside `serve` (or another replica) pulls a contact in.
    sim.insert("Contact", json!({ "LastName": "Pulled" }))
        .unwrap();
    let other = second_process(&app).await;
    other.engine.run_once().await.unwrap();
    // A dashboard reads where the log stands before this process looks at it, and this
    // process logs an event of its own after the other's.
    app.gql_ok("{ integration { lastEventId } }", json!({}))
        .await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    let pulled = app
        .gql_ok(
            "{ contacts(filter: { name: \"Pulled\" }) { nodes { id } } }",
            json!({}),
        )
        .await["contacts"]["nodes"][0]["id"]
        .clone();
    let message = tokio::time::timeout(Duration::from_secs(5), ws.recv())
        .await
        .expect("the subscriber hears of it within seconds");
    if app.database_url.starts_with("postgres") {
        // Replicas tell each other of every change.
        assert_eq!(
            message["payload"]["data"]["deskChanges"],
            json!({ "action": "CREATED", "recordId": pulled }),
            "{message}"
        );
    } else {
        // Processes on one SQLite file cannot: the subscriber learns it may have missed some.
        assert_eq!(
            message["payload"]["errors"][0]["extensions"]["code"], "FELL_BEHIND",
            "{message}"
        );
    }
}
