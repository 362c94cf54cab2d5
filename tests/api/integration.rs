use salesforce_sim::{SimConfig, SimHandle};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::{TestApp, codes, spawn_app};

const INTEGRATION: &str = "status statusReason syncType loginUrl instanceUrl connectedUser firstSync apiUsage { used max }";

pub async fn connect(app: &TestApp, sim: &SimHandle, password: &str) -> Value {
    let config = sim.config();
    app.gql(
        &format!("mutation($i: ConnectSalesforceInput!) {{ connectSalesforce(input: $i) {{ {INTEGRATION} }} }}"),
        json!({ "i": {
            "loginUrl": sim.base_url(),
            "username": config.username,
            "password": password,
            "clientId": config.client_id,
            "clientSecret": config.client_secret,
        }}),
    )
    .await
}

/// Connects with the refresh-token grant, this token and the org's connected app; the whole
/// answer.
pub async fn connect_with_refresh_token(app: &TestApp, sim: &SimHandle, token: &str) -> Value {
    let config = sim.config();
    app.gql(
        "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status } }",
        json!({ "i": { "loginUrl": sim.base_url(), "auth": "REFRESH_TOKEN", "refreshToken": token,
                       "clientId": config.client_id, "clientSecret": config.client_secret } }),
    )
    .await
}

/// Connects this org again, asking for a two-way sync; the whole answer.
async fn connect_two_way(app: &TestApp, sim: &SimHandle) -> Value {
    let config = sim.config();
    app.gql(
        "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { syncType } }",
        json!({ "i": {
            "loginUrl": sim.base_url(),
            "username": config.username,
            "password": "tandem",
            "clientId": config.client_id,
            "clientSecret": config.client_secret,
            "syncType": "TWO_WAY",
        }}),
    )
    .await
}

/// A desk and a fresh org, connected with the given settings, the first sync started but not
/// yet run.
pub async fn started(adjust: impl FnOnce(&mut tandem::config::Settings)) -> (TestApp, SimHandle) {
    let app = crate::helpers::spawn_app_with(adjust).await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let body = connect(&app, &sim, "tandem").await;
    assert!(body.get("errors").is_none(), "{body}");
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    (app, sim)
}

async fn integration(app: &TestApp) -> Value {
    app.gql_ok(&format!("{{ integration {{ {INTEGRATION} }} }}"), json!({}))
        .await["integration"]
        .clone()
}

#[tokio::test]
async fn a_login_url_that_is_not_salesforces_is_not_taken_for_refused_credentials() {
    let app = spawn_app().await;
    // The gateway itself answers at this address: a page, no OAuth error.
    let body = app
        .gql(
            "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status } }",
            json!({ "i": {
                "loginUrl": app.address,
                "username": "integration@example.com",
                "password": "secret",
                "clientId": "client",
                "clientSecret": "client-secret",
            }}),
        )
        .await;
    assert_eq!(codes(&body), ["UPSTREAM_UNAVAILABLE"], "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("without an OAuth error") && message.contains("login URL"),
        "{message}"
    );
    assert!(!message.contains("refused the credentials"), "{message}");
}

#[tokio::test]
async fn connecting_verifies_the_credentials_before_saving_them() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    assert_eq!(integration(&app).await["status"], "NOT_CONNECTED");

    let refused = connect(&app, &sim, "wrong-password").await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"]);
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("authentication failure"),
        "{refused}"
    );
    assert_eq!(
        integration(&app).await["status"],
        "NOT_CONNECTED",
        "nothing saved"
    );

    // Signed in, but without the REST API the sync could make no call.
    sim.disable_api(true);
    let refused = connect(&app, &sim, "tandem").await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"]);
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("API_DISABLED_FOR_ORG") && message.contains("API Enabled"),
        "{refused}"
    );
    assert_eq!(integration(&app).await["status"], "NOT_CONNECTED");
    sim.disable_api(false);

    // Signed in through a connected app not granted the API: its session calls nothing.
    sim.withhold_api_scope(true);
    let refused = connect(&app, &sim, "tandem").await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"]);
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("INVALID_SESSION_ID") && message.contains("Manage user data via APIs"),
        "{refused}"
    );
    assert_eq!(integration(&app).await["status"], "NOT_CONNECTED");
    sim.withhold_api_scope(false);

    let connected = connect(&app, &sim, "tandem").await;
    let state = &connected["data"]["connectSalesforce"];
    assert_eq!(state["status"], "ACTIVE", "{connected}");
    assert_eq!(state["syncType"], "TWO_WAY");
    assert_eq!(state["firstSync"], "NOT_STARTED");
    assert_eq!(state["connectedUser"], "integration@tandem.test");
    assert_eq!(state["instanceUrl"], sim.base_url());
    // The org's API budget, as connecting's own calls were told it.
    let usage = &state["apiUsage"];
    assert!(usage["used"].as_i64().is_some_and(|n| n >= 1), "{usage}");
    assert!(usage["max"].as_i64().is_some_and(|n| n > 1), "{usage}");
}

#[tokio::test]
async fn connecting_refuses_an_api_version_the_org_does_not_serve() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.sync.api_version = tandem::config::ApiVersion::parse("70.0").unwrap();
    })
    .await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let refused = connect(&app, &sim, "tandem").await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("version 70.0")
            && message.contains("the newest it serves is 68.0")
            && message.contains("sync.api_version"),
        "{refused}"
    );
    assert_eq!(integration(&app).await["status"], "NOT_CONNECTED");
}

#[tokio::test]
async fn a_jwt_bearer_connection_signs_in_syncs_and_signs_in_again_when_its_session_expires() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig {
        jwt_public_key_pem: Some(
            include_str!("../salesforce-sim/tests/fixtures/jwt-public.pem").into(),
        ),
        ..SimConfig::default()
    })
    .await;
    let config = sim.config();
    let connect = |key: &'static str| {
        app.gql(
            "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status connectedUser } }",
            json!({ "i": {
                "loginUrl": sim.base_url(),
                "auth": "JWT_BEARER",
                "username": config.username,
                "clientId": config.client_id,
                "privateKey": key,
            }}),
        )
    };
    // A key the org does not know the certificate of is refused before anything is saved.
    let refused = connect(include_str!("fixtures/unknown-rsa.pem")).await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    assert_eq!(integration(&app).await["status"], "NOT_CONNECTED");

    let connected = connect(include_str!(
        "../salesforce-sim/tests/fixtures/jwt-private.pem"
    ))
    .await;
    assert_eq!(
        connected["data"]["connectSalesforce"]["status"], "ACTIVE",
        "{connected}"
    );
    app.gql_ok("mutation { startSync { status } }", json!({}))
        .await;
    sim.insert(
        "Contact",
        json!({ "LastName": "Bearer", "Email": "bearer@example.com" }),
    )
    .unwrap();
    app.sync_now().await;
    sim.expire_tokens();
    sim.insert(
        "Contact",
        json!({ "LastName": "Renewed", "Email": "renewed@example.com" }),
    )
    .unwrap();
    app.sync_now().await;
    let names = app
        .gql_ok("{ contacts(first: 10) { nodes { lastName } } }", json!({}))
        .await;
    let names: Vec<&str> = names["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["lastName"].as_str())
        .collect();
    assert!(
        names.contains(&"Bearer") && names.contains(&"Renewed"),
        "{names:?}"
    );
    assert_eq!(integration(&app).await["status"], "ACTIVE");
}

#[tokio::test]
async fn links_follow_the_org_to_the_instance_a_renewed_session_names() {
    let (app, sim) = started(|_| {}).await;
    let id = sim
        .insert(
            "Contact",
            json!({ "LastName": "Moved", "Email": "moved@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    // The same server under another name: the org's new instance.
    let moved = sim.base_url().replace("127.0.0.1", "localhost");
    sim.move_instance(&moved);
    sim.expire_tokens();
    // A panel's read signs in again first; the round after it notes what that session names.
    let read = app
        .gql_fresh(
            "Administrator",
            "{ contacts(first: 1) { nodes { salesforce { tasks { subject } } } } }",
            json!({}),
        )
        .await;
    assert!(read.get("errors").is_none(), "{read}");
    app.sync_now().await;
    assert_eq!(integration(&app).await["instanceUrl"], moved.as_str());
    let panel = app
        .gql_ok(
            "{ contacts(first: 1) { nodes { salesforce { viewInSalesforceUrl } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        panel["contacts"]["nodes"][0]["salesforce"]["viewInSalesforceUrl"],
        format!("{moved}/{id}").as_str()
    );
}

#[tokio::test]
async fn a_sign_in_again_that_cannot_say_who_it_is_keeps_the_user_and_the_place_it_read_to() {
    use sea_orm::EntityTrait;
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let token = sim.refresh_token();
    let connected = connect_with_refresh_token(&app, &sim, &token).await;
    assert!(connected.get("errors").is_none(), "{connected}");
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    sim.insert("Contact", json!({ "LastName": "Read" }))
        .unwrap();
    // Read a minute later: the cursor moves past it.
    sim.advance_clock(60);
    app.sync_now().await;
    let cursors = || async {
        entity::sync_cursor::Entity::find()
            .all(app.store.connection())
            .await
            .unwrap()
    };
    let read_to = cursors().await;
    assert!(!read_to.is_empty());

    // Signed in again, its identity unreadable for a moment (a 503 from the identity URL).
    let resources = sim.hold_answer_next("GET", "/services/data/v");
    let (again, ()) = tokio::join!(connect_with_refresh_token(&app, &sim, &token), async {
        resources.arrived().await;
        sim.fail_next(&[503]);
        resources.release();
    });
    assert!(again.get("errors").is_none(), "{again}");
    assert_eq!(
        integration(&app).await["connectedUser"],
        "integration@tandem.test",
        "taken for the user before, not for another"
    );
    assert_eq!(cursors().await, read_to, "nothing to read again");
}

#[tokio::test]
async fn a_round_whose_renewed_session_rotated_the_token_still_notes_the_instance_it_names() {
    let (app, sim) = (spawn_app().await, rotating_org().await);
    let connected = connect_with_refresh_token(&app, &sim, &sim.refresh_token()).await;
    assert!(connected.get("errors").is_none(), "{connected}");
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    let moved = sim.base_url().replace("127.0.0.1", "localhost");
    sim.move_instance(&moved);
    sim.expire_tokens();
    // The round signs in again itself: Salesforce names the new instance and rotates the
    // refresh token, which is saved before the round ends.
    let report = app.sync_now().await;
    assert!(report.idle.is_none(), "{report:?}");
    assert_eq!(integration(&app).await["instanceUrl"], moved.as_str());
}

/// An org that rotates the refresh token at each sign-in with one.
async fn rotating_org() -> SimHandle {
    salesforce_sim::start(SimConfig {
        rotate_refresh_tokens: true,
        ..SimConfig::default()
    })
    .await
}

#[tokio::test]
async fn credentials_are_encrypted_at_rest() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sim, "tandem").await;
    let row = entity::integration::Entity::find_by_id(1)
        .one(app.store.connection())
        .await
        .unwrap()
        .unwrap();
    let sealed = row.secrets.unwrap();
    for plaintext in ["tandem-sim-secret", "\"password\""] {
        assert!(
            !sealed
                .windows(plaintext.len())
                .any(|w| w == plaintext.as_bytes()),
            "{plaintext} is in the clear"
        );
    }
}

#[tokio::test]
async fn bad_login_urls_and_missing_secrets_are_refused_by_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({ "loginUrl": "http://login.salesforce.com", "username": "u", "password": "p", "clientId": "c", "clientSecret": "s" }),
            "loginUrl",
        ),
        (
            json!({ "loginUrl": "https://admin:hunter2@login.salesforce.com", "username": "u", "password": "p", "clientId": "c", "clientSecret": "s" }),
            "loginUrl",
        ),
        (
            json!({ "loginUrl": "https://login.salesforce.com/services/oauth2/token", "username": "u", "password": "p", "clientId": "c", "clientSecret": "s" }),
            "loginUrl",
        ),
        (
            json!({ "loginUrl": "https://login.salesforce.com", "username": "u", "clientId": "c", "clientSecret": "s" }),
            "password",
        ),
        (
            json!({ "loginUrl": "https://login.salesforce.com", "auth": "JWT_BEARER", "username": "u", "clientId": "c" }),
            "privateKey",
        ),
    ];
    for (input, field) in cases {
        let body = app
            .gql(
                "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }
}

/// Runs `request`, which describes `first`, the org connected, while another admin connects
/// `second` in its place (the describe held until they have): the request's answer.
async fn while_another_org_connects(
    app: &TestApp,
    (first, second): (&SimHandle, &SimHandle),
    request: impl std::future::Future<Output = Value>,
) -> Value {
    let describe = first.hold_next("GET", "/describe");
    let reconnecting = async {
        describe.arrived().await;
        let body = connect(app, second, "tandem").await;
        describe.release();
        body
    };
    let (answer, reconnected) = tokio::join!(request, reconnecting);
    assert_eq!(reconnected["errors"], Value::Null, "{reconnected}");
    answer
}

#[tokio::test]
async fn a_start_whose_org_was_replaced_while_its_mappings_were_checked_starts_nothing() {
    let app = spawn_app().await;
    let first = salesforce_sim::start(SimConfig::default()).await;
    let second = salesforce_sim::start(SimConfig::default()).await;
    app.create_contact(json!({ "lastName": "Local" })).await;
    connect(&app, &first, "tandem").await;
    // The other admin means to map the second org before starting it.
    let starting = app.gql("mutation { startSync { firstSync } }", json!({}));
    let started = while_another_org_connects(&app, (&first, &second), starting).await;
    assert_eq!(codes(&started), ["CONFLICT"], "{started}");
    assert_eq!(integration(&app).await["firstSync"], "NOT_STARTED");
    app.sync_now().await;
    assert_eq!(
        second.count("Contact"),
        0,
        "nothing sent to the org nobody started"
    );
}

#[tokio::test]
async fn a_sync_type_checked_against_an_org_replaced_meanwhile_is_not_saved_for_the_new_one() {
    let app = spawn_app().await;
    let first = salesforce_sim::start(SimConfig::default()).await;
    let second = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &first, "tandem").await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    // The second org, connected without a sync type, stays one-way.
    let turning = app.gql(
        "mutation { setSyncType(syncType: TWO_WAY) { syncType } }",
        json!({}),
    );
    let turned = while_another_org_connects(&app, (&first, &second), turning).await;
    assert_eq!(codes(&turned), ["CONFLICT"], "{turned}");
    assert_eq!(integration(&app).await["syncType"], "SALESFORCE_TO_DESK");
}

#[tokio::test]
async fn mappings_checked_against_an_org_replaced_meanwhile_are_not_saved_for_the_new_one() {
    let app = spawn_app().await;
    let first = salesforce_sim::start(SimConfig::default()).await;
    let second = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &first, "tandem").await;
    // A field the first org shows the integration user and the second does not.
    second.hide_field("Contact", "Department").unwrap();
    let mapping = app.try_map_field("CONTACTS", "mailingCountry", "Department");
    let mapped = while_another_org_connects(&app, (&first, &second), mapping).await;
    assert_eq!(codes(&mapped), ["CONFLICT"], "{mapped}");
    let saved = app
        .gql_ok(
            "{ fieldMappings(module: CONTACTS) { deskField salesforceField } }",
            json!({}),
        )
        .await;
    assert!(
        !saved.to_string().contains("Department"),
        "the second org shows no such field: {saved}"
    );
}

#[tokio::test]
async fn a_one_way_sync_maps_read_only_fields_which_must_be_writable_before_it_goes_two_way() {
    let (app, sim) = started(|_| {}).await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    // Salesforce's own full name, which it makes and nobody writes, shown as the title.
    app.map_field("CONTACTS", "title", "Name").await;
    sim.insert(
        "Contact",
        json!({ "FirstName": "Grace", "LastName": "Hopper", "Email": "grace@example.com" }),
    )
    .unwrap();
    app.sync_now().await;
    let title = app
        .gql_ok(
            "{ contacts(filter: { name: \"Hopper\" }) { nodes { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(title["contacts"]["nodes"][0]["title"], "Grace Hopper");

    let refused = app
        .gql(
            "mutation { setSyncType(syncType: TWO_WAY) { syncType } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    let error = &refused["errors"][0];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Contact.Name cannot be written"),
        "{error}"
    );
    assert!(
        error["extensions"]["field"]
            .as_str()
            .unwrap()
            .starts_with("fieldMappings(CONTACTS).mappings["),
        "{error}"
    );
    assert_eq!(integration(&app).await["syncType"], "SALESFORCE_TO_DESK");

    // Nor by connecting the same org again, two-way.
    let again = connect_two_way(&app, &sim).await;
    assert_eq!(codes(&again), ["BAD_USER_INPUT"], "{again}");
    assert_eq!(integration(&app).await["syncType"], "SALESFORCE_TO_DESK");
}

#[tokio::test]
async fn a_one_way_sync_shows_dates_and_checkboxes_in_desk_text_fields() {
    let (app, sim) = started(|_| {}).await;
    // Two-way, the desk's text would be sent back into a date field.
    let refused = app.try_map_field("CONTACTS", "title", "Birthdate").await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Birthdate is a date field"), "{message}");
    assert!(message.contains("a one-way sync"), "{message}");

    app.set_sync_type("SALESFORCE_TO_DESK").await;
    app.map_field("CONTACTS", "title", "Birthdate").await;
    app.map_field("CONTACTS", "description", "DoNotCall").await;
    // The account's match key stays of a text kind: it is looked up as Salesforce holds it.
    let key = app
        .try_map_field("ACCOUNTS", "name", "NumberOfEmployees")
        .await;
    assert_eq!(codes(&key), ["BAD_USER_INPUT"], "{key}");
    sim.insert(
        "Contact",
        json!({ "LastName": "Hopper", "Email": "grace@example.com",
                "Birthdate": "1906-12-09", "DoNotCall": true }),
    )
    .unwrap();
    app.sync_now().await;
    let shown = app
        .gql_ok(
            "{ contacts(filter: { name: \"Hopper\" }) { nodes { title description } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        shown["contacts"]["nodes"][0],
        json!({ "title": "1906-12-09", "description": "true" }),
        "{shown}"
    );
    let failures = app
        .gql_ok("{ syncFailures { totalCount } }", json!({}))
        .await;
    assert_eq!(failures["syncFailures"]["totalCount"], 0, "{failures}");

    // Turning two-way would send the text back: refused, the mapping named.
    let two_way = app
        .gql(
            "mutation { setSyncType(syncType: TWO_WAY) { syncType } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&two_way), ["BAD_USER_INPUT"], "{two_way}");
    assert_eq!(integration(&app).await["syncType"], "SALESFORCE_TO_DESK");
}

#[tokio::test]
async fn connecting_two_way_checks_the_one_way_mappings_of_a_connection_saved_without_its_org() {
    use sea_orm::ConnectionTrait;
    let (app, sim) = started(|_| {}).await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    app.map_field("CONTACTS", "title", "Birthdate").await;
    // Saved before orgs were recorded: only its instance says which org it is.
    app.store
        .connection()
        .execute_unprepared("UPDATE integration SET org_id = NULL")
        .await
        .unwrap();
    let again = connect_two_way(&app, &sim).await;
    assert_eq!(codes(&again), ["BAD_USER_INPUT"], "{again}");
    assert!(
        again["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Birthdate is a date field"),
        "{again}"
    );
    assert_eq!(integration(&app).await["syncType"], "SALESFORCE_TO_DESK");
}

#[tokio::test]
async fn mappings_checked_for_a_one_way_sync_are_not_saved_once_it_turned_two_way() {
    let (app, _sim, query, round) = one_way_round_reading().await;
    // One admin maps Salesforce's read-only full name, fine for a one-way sync, and the
    // change waits for the round (having told it to stop)...
    let before = epoch(&app).await;
    let mapping = app.try_map_field("CONTACTS", "title", "Name");
    // ...while another turns the sync two-way, its mappings all writable so far; that too
    // is saved, then waits for the round.
    let turning = async {
        until(|| async { epoch(&app).await > before }).await;
        app.gql(
            "mutation { setSyncType(syncType: TWO_WAY) { syncType } }",
            json!({}),
        )
        .await
    };
    let releasing = async {
        until(|| async { integration(&app).await["syncType"] == "TWO_WAY" }).await;
        query.release();
    };
    let (mapped, turned, ()) = tokio::join!(mapping, turning, releasing);
    let _ = round.await;
    assert_eq!(turned["errors"], Value::Null, "{turned}");
    assert_eq!(codes(&mapped), ["CONFLICT"], "{mapped}");
    assert_eq!(integration(&app).await["syncType"], "TWO_WAY");
    let saved = app
        .gql_ok(
            "{ fieldMappings(module: CONTACTS) { deskField salesforceField } }",
            json!({}),
        )
        .await;
    assert!(
        !saved.to_string().contains("\"Name\""),
        "a field Salesforce will not let the sync write is not mapped two-way: {saved}"
    );
}

#[tokio::test]
async fn connecting_two_way_keeps_no_mapping_saved_for_one_way_while_it_waited() {
    let (app, sim, query, round) = one_way_round_reading().await;
    // One admin maps Salesforce's read-only full name, fine for the one-way sync in force;
    // the change waits for the round (having told it to stop)...
    let before = epoch(&app).await;
    let mapping = app.try_map_field("CONTACTS", "title", "Name");
    // ...while another connects the same org again, two-way, its mappings (not yet holding
    // that one) checked for writing, and waits too.
    let connecting = async {
        until(|| async { epoch(&app).await > before }).await;
        connect_two_way(&app, &sim).await
    };
    let releasing = async {
        until(|| async { epoch(&app).await > before + 1 }).await;
        query.release();
    };
    let (mapped, connected, ()) = tokio::join!(mapping, connecting, releasing);
    let _ = round.await;
    assert_eq!(mapped["errors"], Value::Null, "{mapped}");
    assert_eq!(codes(&connected), ["CONFLICT"], "{connected}");
    assert_eq!(integration(&app).await["syncType"], "SALESFORCE_TO_DESK");
}

#[tokio::test]
async fn a_sync_type_checked_against_mappings_changed_meanwhile_is_not_set() {
    let (app, _sim) = started(|_| {}).await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    // The mappings as a turn to two-way checked them, before another admin mapped a field
    // only a one-way sync may.
    let checked = app.store.mapping_rows().await.unwrap();
    let connection = tandem::store::Checked {
        connected_at: app.store.integration().await.unwrap().unwrap().created_at,
        writes: true,
    };
    app.map_field("CONTACTS", "title", "Name").await;
    let turned = app
        .store
        .set_sync_type(
            tandem::domain::SyncType::TwoWay,
            Some((connection, &checked)),
        )
        .await;
    assert!(
        matches!(turned, Err(tandem::store::StoreError::Conflict(_))),
        "{turned:?}"
    );
    assert_eq!(integration(&app).await["syncType"], "SALESFORCE_TO_DESK");
}

/// A one-way sync with a round held reading Salesforce: a change that stops the rounds
/// (a mapping change, a reconnect) waits for it until the query is released.
async fn one_way_round_reading() -> (
    TestApp,
    SimHandle,
    salesforce_sim::Gate,
    tokio::task::JoinHandle<Result<tandem::sync::RoundReport, tandem::sync::SyncError>>,
) {
    let (app, sim) = started(|_| {}).await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    sim.insert("Contact", json!({ "LastName": "Reading" }))
        .unwrap();
    let query = sim.hold_next("GET", "/query");
    let round = app.round_in_background();
    query.arrived().await;
    (app, sim, query, round)
}

/// The saved connection's epoch: moved on by every change that stops the rounds.
async fn epoch(app: &TestApp) -> i64 {
    app.store.integration().await.unwrap().unwrap().epoch
}

/// Waits until `done` says so, for ten seconds at most.
async fn until<F: std::future::Future<Output = bool>>(done: impl Fn() -> F) {
    let since = std::time::Instant::now();
    while !done().await {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(10),
            "waited ten seconds"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The desk's contacts' last names, in id order.
async fn desk_contacts(app: &TestApp) -> Vec<String> {
    let body = app
        .gql_ok("{ contacts(first: 100) { nodes { lastName } } }", json!({}))
        .await;
    let mut names: Vec<String> = body["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lastName"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Deletes the integration, then connects this org and runs its first sync.
async fn reconnect(app: &TestApp, sim: &SimHandle) {
    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    reconnect_and_start(app, sim).await;
}

/// The desk's one contact's id.
async fn the_contact(app: &TestApp) -> Value {
    app.gql_ok("{ contacts(first: 1) { nodes { id } } }", json!({}))
        .await["contacts"]["nodes"][0]["id"]
        .clone()
}

/// An agent's edit of a desk contact's title.
async fn retitle(app: &TestApp, id: &Value, title: &str) {
    app.gql_ok(
        "mutation($id: ID!, $t: String) { updateContact(id: $id, patch: { title: $t }) { id } }",
        json!({ "id": id, "t": title }),
    )
    .await;
}

/// Connects this org again and runs its first sync.
async fn reconnect_and_start(app: &TestApp, sim: &SimHandle) {
    let body = connect(app, sim, "tandem").await;
    assert_eq!(body["errors"], Value::Null, "{body}");
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
}

#[tokio::test]
async fn reconnected_to_the_org_it_was_deleted_from_the_sync_meets_its_pairs_again() {
    let (app, sim) = started(|_| {}).await;
    // Nothing to match them by: no email, and Salesforce's names no desk record.
    sim.insert("Contact", json!({ "LastName": "Unmailed" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(desk_contacts(&app).await, ["Unmailed"]);

    reconnect(&app, &sim).await;
    assert_eq!(desk_contacts(&app).await, ["Unmailed"], "not made again");
    assert_eq!(sim.count("Contact"), 1, "not sent back as a new one");
    // And linked again: an edit in Salesforce reaches the same desk record.
    let id = sim.records("Contact")[0]["Id"].as_str().unwrap().to_owned();
    sim.update("Contact", &id, json!({ "LastName": "Mailed" }))
        .unwrap();
    app.sync_now().await;
    assert_eq!(desk_contacts(&app).await, ["Mailed"]);
}

#[tokio::test]
async fn a_former_pair_whose_salesforce_record_fails_to_come_waits_for_it_rather_than_going_twice()
{
    let (app, sim) = started(|_| {}).await;
    app.map_field("CONTACTS", "mailingPostalCode", "Department")
        .await;
    let id = sim
        .insert("Contact", json!({ "LastName": "Unmailed" }))
        .unwrap();
    app.sync_now().await;

    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    // Meanwhile a value the desk cannot hold is entered in Salesforce.
    sim.update(
        "Contact",
        &id,
        json!({ "Department": "Research and Development" }),
    )
    .unwrap();
    connect(&app, &sim, "tandem").await;
    app.map_field("CONTACTS", "mailingPostalCode", "Department")
        .await;
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    let failed = app
        .gql_ok("{ syncFailures { nodes { reason } } }", json!({}))
        .await;
    assert_eq!(
        failed["syncFailures"]["nodes"],
        json!([{ "reason": "STRING_TOO_LONG" }])
    );
    assert_eq!(
        sim.count("Contact"),
        1,
        "the desk record is not sent as a new one"
    );

    sim.update("Contact", &id, json!({ "Department": "R&D" }))
        .unwrap();
    app.sync_now().await;
    met_once(&app, &sim).await;
}

/// The former pair "Unmailed" met again: one record on each side, not made again.
async fn met_once(app: &TestApp, sim: &SimHandle) {
    assert_eq!(
        desk_contacts(app).await,
        ["Unmailed"],
        "met, not made again"
    );
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_desk_edit_of_a_former_pair_whose_twin_cannot_come_yet_waits_for_it_rather_than_going_twice()
 {
    let (app, sim) = started(|_| {}).await;
    let twin = sim
        .insert("Contact", json!({ "LastName": "Unmailed" }))
        .unwrap();
    app.sync_now().await;
    let contact = the_contact(&app).await;

    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    // Meanwhile the twin moves to a new account the desk cannot take (a negative revenue):
    // it waits for that account, and the pair is not met yet.
    let account = sim
        .insert("Account", json!({ "Name": "Acme", "AnnualRevenue": -5 }))
        .unwrap();
    sim.update("Contact", &twin, json!({ "AccountId": account }))
        .unwrap();
    reconnect_and_start(&app, &sim).await;
    let failed = app
        .gql_ok("{ syncFailures { nodes { module reason } } }", json!({}))
        .await;
    assert_eq!(
        failed["syncFailures"]["nodes"],
        json!([
            { "module": "CONTACTS", "reason": "ACCOUNT_NOT_SYNCED" },
            { "module": "ACCOUNTS", "reason": "INVALID_PARAMETER" },
        ])
    );
    // An agent's edit of the desk record is not sent as a new one.
    retitle(&app, &contact, "Curator").await;
    app.sync_now().await;
    app.sync_now().await;
    assert_eq!(
        sim.count("Contact"),
        1,
        "the edit waits for the pair to meet"
    );

    // The account fixed, it comes, and the contact waiting for it meets its pair.
    sim.advance_clock(60);
    sim.update("Account", &account, json!({ "AnnualRevenue": 5 }))
        .unwrap();
    app.sync_now().await;
    app.sync_now().await;
    met_once(&app, &sim).await;
}

#[tokio::test]
async fn a_former_pair_deleted_in_salesforce_meanwhile_is_made_again_by_the_desk_records_next_edit()
{
    let (app, sim) = started(|_| {}).await;
    let id = sim
        .insert("Contact", json!({ "LastName": "Unmailed" }))
        .unwrap();
    app.sync_now().await;
    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    sim.delete("Contact", &id).unwrap();
    reconnect_and_start(&app, &sim).await;
    app.sync_now().await;
    assert_eq!(
        sim.count("Contact"),
        0,
        "a delete is not undone by the desk"
    );

    let desk_id = the_contact(&app).await;
    retitle(&app, &desk_id, "Curator").await;
    app.sync_now().await;
    let made = sim.records("Contact");
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["Title"], "Curator");
    assert_ne!(made[0]["Id"], id.as_str());
    app.sync_now().await;
    assert_eq!(desk_contacts(&app).await, ["Unmailed"]);
    assert_eq!(sim.count("Contact"), 1);
}

#[tokio::test]
async fn a_former_pair_whose_account_salesforce_deleted_meanwhile_goes_out_with_its_contacts_edit()
{
    let (app, sim) = started(|_| {}).await;
    let acme = sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    sim.insert("Contact", json!({ "LastName": "Buyer", "AccountId": acme }))
        .unwrap();
    app.sync_now().await;
    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    // The account goes, and its contact with it.
    sim.delete("Account", &acme).unwrap();
    reconnect_and_start(&app, &sim).await;
    app.sync_now().await;
    assert_eq!((sim.count("Account"), sim.count("Contact")), (0, 0));

    let contact = the_contact(&app).await;
    retitle(&app, &contact, "Curator").await;
    // The contact waits for its account, which nothing else would send: it goes, and the
    // contact follows.
    app.sync_now().await;
    app.sync_now().await;
    let accounts = sim.records("Account");
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(accounts[0]["Name"], "Acme");
    let contacts = sim.records("Contact");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["Title"], "Curator");
    assert_eq!(contacts[0]["AccountId"], accounts[0]["Id"]);
    let failed = app
        .gql_ok("{ syncFailures { nodes { reason } } }", json!({}))
        .await;
    assert_eq!(failed["syncFailures"]["nodes"], json!([]), "{failed}");
}

#[tokio::test]
async fn pairs_of_a_deleted_integration_are_not_met_in_another_org() {
    let (app, first) = started(|_| {}).await;
    first
        .insert("Contact", json!({ "LastName": "First" }))
        .unwrap();
    app.sync_now().await;

    // Another org, whose first contact has the id the first org gave its own.
    let second = salesforce_sim::start(SimConfig {
        seed: SimConfig::default().seed + 1,
        ..SimConfig::default()
    })
    .await;
    let twin = second
        .insert("Contact", json!({ "LastName": "Second" }))
        .unwrap();
    assert_eq!(twin, first.records("Contact")[0]["Id"].as_str().unwrap());
    reconnect(&app, &second).await;
    assert_eq!(desk_contacts(&app).await, ["First", "Second"]);
    assert_eq!(
        second.count("Contact"),
        2,
        "the first org's contact went out as new"
    );
}

#[tokio::test]
async fn sync_can_be_paused_resumed_retyped_and_deleted() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let early = app
        .gql("mutation { pauseSync { status } }", json!({}))
        .await;
    assert_eq!(
        codes(&early),
        ["CONFLICT"],
        "nothing to pause before connecting"
    );
    connect(&app, &sim, "tandem").await;

    assert_eq!(
        app.gql_ok("mutation { pauseSync { status } }", json!({}))
            .await["pauseSync"]["status"],
        "PAUSED"
    );
    let again = app
        .gql("mutation { pauseSync { status } }", json!({}))
        .await;
    assert_eq!(codes(&again), ["CONFLICT"]);
    assert!(
        again["errors"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("it is paused already"),
        "{again}"
    );
    assert_eq!(
        app.gql_ok("mutation { resumeSync { status } }", json!({}))
            .await["resumeSync"]["status"],
        "ACTIVE"
    );

    let retyped = app
        .gql_ok(
            "mutation { setSyncType(syncType: SALESFORCE_TO_DESK) { syncType } }",
            json!({}),
        )
        .await;
    assert_eq!(retyped["setSyncType"]["syncType"], "SALESFORCE_TO_DESK");
    let started = app
        .gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    assert_eq!(started["startSync"]["firstSync"], "RUNNING");

    let deleted = app
        .gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    assert_eq!(deleted["deleteIntegration"]["status"], "NOT_CONNECTED");
    assert_eq!(integration(&app).await["status"], "NOT_CONNECTED");
    assert!(
        entity::integration::Entity::find_by_id(1)
            .one(app.store.connection())
            .await
            .unwrap()
            .is_none(),
        "credentials erased"
    );
}

#[tokio::test]
async fn a_connection_refused_after_salesforce_rotated_the_token_says_the_token_is_spent() {
    let (app, sim) = (spawn_app().await, rotating_org().await);
    const CONNECT: &str =
        "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status } }";
    let input = json!({ "i": { "loginUrl": sim.base_url(), "auth": "REFRESH_TOKEN",
                               "refreshToken": sim.refresh_token(), "clientId": sim.config().client_id,
                               "clientSecret": sim.config().client_secret } });
    sim.disable_api(true);
    let refused = app.gql(CONNECT, input.clone()).await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"]);
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("API_DISABLED_FOR_ORG")
            && message.contains("rotated the refresh token given"),
        "{refused}"
    );
    // As it said: the token given works no more.
    sim.disable_api(false);
    let again = app.gql(CONNECT, input).await;
    assert_eq!(codes(&again), ["BAD_USER_INPUT"], "{again}");
    assert_eq!(integration(&app).await["status"], "NOT_CONNECTED");
}

#[tokio::test]
async fn a_connection_refused_after_salesforce_rotated_the_token_keeps_the_refusals_code_and_field()
{
    let (app, sim) = (spawn_app().await, rotating_org().await);
    let body = connect_with_refresh_token(&app, &sim, &sim.refresh_token()).await;
    assert!(body.get("errors").is_none(), "{body}");
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    // Salesforce's own full name, which nobody writes, shown as the title.
    app.map_field("CONTACTS", "title", "Name").await;
    let config = sim.config();
    let refused = app
        .gql(
            "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status } }",
            json!({ "i": { "loginUrl": sim.base_url(), "auth": "REFRESH_TOKEN",
                           "refreshToken": sim.refresh_token(), "clientId": config.client_id,
                           "clientSecret": config.client_secret, "syncType": "TWO_WAY" } }),
        )
        .await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    let error = &refused["errors"][0];
    assert!(
        error["extensions"]["field"]
            .as_str()
            .is_some_and(|field| field.starts_with("fieldMappings(CONTACTS).mappings[")),
        "the mapping refused is named as without a rotation: {error}"
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("Contact.Name cannot be written")
            && message.contains("rotated the refresh token given"),
        "{error}"
    );
    assert_eq!(integration(&app).await["syncType"], "SALESFORCE_TO_DESK");
}

#[tokio::test]
async fn a_refresh_token_connects_without_a_client_secret_the_app_does_not_require() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig {
        secret_optional: true,
        ..SimConfig::default()
    })
    .await;
    const CONNECT: &str =
        "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status } }";
    let input = |secret: Option<&str>| {
        let mut i = json!({ "loginUrl": sim.base_url(), "auth": "REFRESH_TOKEN",
                            "refreshToken": sim.refresh_token(), "clientId": sim.config().client_id });
        if let Some(secret) = secret {
            i["clientSecret"] = json!(secret);
        }
        json!({ "i": i })
    };
    let wrong = app.gql(CONNECT, input(Some("not-the-secret"))).await;
    assert_eq!(
        codes(&wrong),
        ["BAD_USER_INPUT"],
        "a secret given is checked: {wrong}"
    );

    let connected = app.gql(CONNECT, input(None)).await;
    assert_eq!(
        connected["data"]["connectSalesforce"]["status"], "ACTIVE",
        "{connected}"
    );
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    // The session is renewed with the refresh token alone.
    sim.expire_tokens();
    let id = sim
        .insert("Contact", json!({ "LastName": "Secretless" }))
        .unwrap();
    app.sync_now().await;
    let found = app
        .gql_ok(
            "{ contacts(filter: { name: \"Secretless\" }) { nodes { salesforce { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        found["contacts"]["nodes"][0]["salesforce"]["id"],
        id.as_str()
    );
}

#[tokio::test]
async fn a_password_connects_without_a_client_secret_only_where_the_app_does_not_require_one() {
    let app = spawn_app().await;
    const CONNECT: &str =
        "mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status } }";
    let input = |sim: &SimHandle| {
        let config = sim.config();
        json!({ "i": { "loginUrl": sim.base_url(), "username": config.username,
                       "password": config.password, "clientId": config.client_id } })
    };
    let requiring = salesforce_sim::start(SimConfig::default()).await;
    let refused = app.gql(CONNECT, input(&requiring)).await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{refused}"
    );

    let not_requiring = salesforce_sim::start(SimConfig {
        secret_optional: true,
        ..SimConfig::default()
    })
    .await;
    let connected = app.gql(CONNECT, input(&not_requiring)).await;
    assert_eq!(
        connected["data"]["connectSalesforce"]["status"], "ACTIVE",
        "{connected}"
    );
}

#[tokio::test]
async fn deleting_the_integration_voids_its_session_at_salesforce() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let given = sim.refresh_token();
    let connected = connect_with_refresh_token(&app, &sim, &given).await;
    assert!(connected.get("errors").is_none(), "{connected}");
    assert_eq!(sim.live_access_tokens(), 1, "connecting signed in once");

    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    assert_eq!(
        sim.live_access_tokens(),
        0,
        "the session signed in is revoked"
    );
    assert!(
        sim.honours_refresh_token(&given),
        "the refresh token is its giver's, who may connect with it again"
    );
    let connected = connect_with_refresh_token(&app, &sim, &given).await;
    assert!(connected.get("errors").is_none(), "{connected}");
}

#[tokio::test]
async fn deleting_the_integration_voids_a_refresh_token_salesforce_rotated_in() {
    let (app, sim) = (spawn_app().await, rotating_org().await);
    let given = sim.refresh_token();
    let connected = connect_with_refresh_token(&app, &sim, &given).await;
    assert!(connected.get("errors").is_none(), "{connected}");
    assert!(!sim.honours_refresh_token(&given), "rotated out");
    assert_eq!(
        sim.live_refresh_tokens(),
        1,
        "the one issued to the connection"
    );

    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    assert_eq!(
        sim.live_refresh_tokens(),
        0,
        "issued to the connection alone, it goes with it"
    );
    assert_eq!(sim.live_access_tokens(), 0);
}

#[tokio::test]
async fn a_refresh_token_salesforce_rotated_in_is_voided_by_whichever_process_deletes_the_integration()
 {
    let (app, sim) = (spawn_app().await, rotating_org().await);
    let connected = connect_with_refresh_token(&app, &sim, &sim.refresh_token()).await;
    assert!(connected.get("errors").is_none(), "{connected}");
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    // A round signs in again and Salesforce rotates once more: the token saved is still
    // one Salesforce issued.
    sim.expire_tokens();
    app.sync_now().await;
    assert_eq!(sim.live_refresh_tokens(), 1);

    // Another process (a replica, or this one restarted) deletes it, knowing the token only
    // from what was saved.
    let other = crate::replicas::second_process(&app).await;
    other.integrations.delete().await.unwrap();
    assert_eq!(
        sim.live_refresh_tokens(),
        0,
        "issued to the connection alone, it goes with it"
    );
}

#[tokio::test]
async fn a_change_meeting_an_integration_deleted_meanwhile_says_it_is_not_connected() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sim, "tandem").await;
    // Deleted by another process between a change's first read and its locked write: the
    // write finds no row, and says what anyone asking now would hear.
    assert!(app.store.delete_integration().await.unwrap());
    let failed = app.integrations.fail("the credentials were refused").await;
    assert!(
        matches!(failed, Err(tandem::sync::SyncError::NotConnected)),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_connection_made_after_a_delete_is_never_taken_for_the_one_deleted() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sim, "tandem").await;
    let first = app.store.integration().await.unwrap().unwrap().epoch;
    app.gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    connect(&app, &sim, "tandem").await;
    let second = app.store.integration().await.unwrap().unwrap().epoch;
    // A round or a session of the first, still under way somewhere, stops at its next
    // check of the epoch.
    assert_ne!(first, second);
}

#[tokio::test]
async fn an_integration_is_deleted_when_salesforce_cannot_void_its_tokens() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect_two_way(&app, &sim).await;
    sim.stop().await;

    let deleted = app
        .gql_ok("mutation { deleteIntegration { status } }", json!({}))
        .await;
    assert_eq!(deleted["deleteIntegration"]["status"], "NOT_CONNECTED");
    assert_eq!(integration(&app).await["status"], "NOT_CONNECTED");
}

const UPDATE: &str = "mutation($m: SyncModule!, $maps: [FieldMappingInput!]!) { updateFieldMappings(module: $m, mappings: $maps) { deskField salesforceField } }";

fn pairs(list: &[(&str, &str)]) -> Value {
    Value::Array(
        list.iter()
            .map(|(d, s)| json!({ "deskField": d, "salesforceField": s }))
            .collect(),
    )
}

#[tokio::test]
async fn the_standard_mappings_hold_against_the_org() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sim, "tandem").await;
    for module in ["CONTACTS", "ACCOUNTS"] {
        let defaults = app
            .gql_ok("query($m: SyncModule!) { fieldMappings(module: $m) { deskField salesforceField } }", json!({ "m": module }))
            .await["fieldMappings"]
            .clone();
        assert!(defaults.as_array().unwrap().len() >= 13, "{defaults}");
        let saved = app
            .gql(UPDATE, json!({ "m": module, "maps": defaults }))
            .await;
        assert!(saved.get("errors").is_none(), "{module}: {saved}");
        assert_eq!(saved["data"]["updateFieldMappings"], defaults);
    }
}

const MAPPABLE: &str = "query($m: SyncModule!) { mappableFields(module: $m) { deskField kind maxLength required salesforceField choices { name label kind length required custom } } }";

/// The names of the org fields offered for a desk field.
fn offered(fields: &Value, desk: &str) -> Vec<String> {
    fields
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["deskField"] == desk)
        .unwrap_or_else(|| panic!("{desk} is offered: {fields}"))["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_mapping_screen_offers_each_desk_field_the_org_fields_it_may_take() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sim, "tandem").await;
    let fields = app.gql_ok(MAPPABLE, json!({ "m": "CONTACTS" })).await["mappableFields"].clone();
    let field = |desk: &str| {
        fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["deskField"] == desk)
            .unwrap()
            .clone()
    };
    assert_eq!(
        fields.as_array().unwrap().len(),
        13,
        "every desk field: {fields}"
    );
    let last_name = field("lastName");
    assert_eq!(
        (
            &last_name["kind"],
            &last_name["maxLength"],
            &last_name["required"]
        ),
        (&json!("TEXT"), &json!(80), &json!(true))
    );
    assert_eq!(last_name["salesforceField"], "LastName");
    let offered_last = last_name["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "LastName")
        .unwrap()
        .clone();
    assert_eq!(
        offered_last,
        json!({ "name": "LastName", "label": "Last Name", "kind": "string", "length": 80, "required": true, "custom": false })
    );
    assert_eq!(
        (&field("email")["kind"], &field("email")["required"]),
        (&json!("EMAIL"), &json!(true)),
        "contacts meet by email, so it must be mapped"
    );
    assert_eq!(offered(&fields, "accountId"), ["AccountId"]);
    let for_title = offered(&fields, "title");
    assert!(
        for_title.contains(&"Salutation".to_owned()),
        "{for_title:?}"
    );
    // Not text, shorter than the desk's title, not writable, or the sync's own.
    for never in [
        "Email",
        "Department",
        "CreatedDate",
        "Name",
        tandem::sync::DESK_ID_FIELD,
    ] {
        assert!(
            !for_title.contains(&never.to_owned()),
            "{never}: {for_title:?}"
        );
    }
    // Whatever is offered is taken.
    for choice in &for_title {
        let maps = [
            ("lastName", "LastName"),
            ("email", "Email"),
            ("title", choice),
        ];
        let saved = app
            .gql(UPDATE, json!({ "m": "CONTACTS", "maps": pairs(&maps) }))
            .await;
        assert!(saved.get("errors").is_none(), "{choice}: {saved}");
    }

    // The org as it is now: a field hidden from the integration user since is not offered.
    sim.hide_field("Contact", "Salutation").unwrap();
    let now = app.gql_ok(MAPPABLE, json!({ "m": "CONTACTS" })).await["mappableFields"].clone();
    assert!(!offered(&now, "title").contains(&"Salutation".to_owned()));
    // Syncing one way, nothing is written to Salesforce: a read-only field may be read.
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    let one_way = app.gql_ok(MAPPABLE, json!({ "m": "CONTACTS" })).await["mappableFields"].clone();
    assert!(offered(&one_way, "title").contains(&"Name".to_owned()));

    let accounts = app.gql_ok(MAPPABLE, json!({ "m": "ACCOUNTS" })).await["mappableFields"].clone();
    let industry = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["deskField"] == "industry")
        .unwrap();
    assert!(
        industry["choices"].as_array().unwrap().iter().any(|c| c
            == &json!({ "name": "Subscription_Type__c", "label": "Subscription Type", "kind": "picklist", "length": 255, "required": false, "custom": true })),
        "{industry}"
    );
}

#[tokio::test]
async fn mappings_that_would_fail_in_salesforce_are_refused_up_front() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let before = app
        .gql(
            UPDATE,
            json!({ "m": "ACCOUNTS", "maps": pairs(&[("name", "Name")]) }),
        )
        .await;
    assert_eq!(
        codes(&before),
        ["CONFLICT"],
        "mappings are checked against a connected org"
    );
    connect(&app, &sim, "tandem").await;

    let cases = [
        (
            "ACCOUNTS",
            vec![("name", "Name"), ("industry", "NumberOfEmployees")],
            "mappings[1].salesforceField",
            "type mismatch",
        ),
        (
            "ACCOUNTS",
            vec![("name", "Name"), ("employees", "BillingLatitude")],
            "mappings[1].salesforceField",
            "with 15 decimal places",
        ),
        // Three digits before the point (a latitude): most revenues would be refused there.
        (
            "ACCOUNTS",
            vec![("name", "Name"), ("annualRevenue", "BillingLatitude")],
            "mappings[1].salesforceField",
            "at most 3 digits before the point and 'annualRevenue' needs 16",
        ),
        (
            "ACCOUNTS",
            vec![("name", "Name"), ("website", "NoSuchField__c")],
            "mappings[1].salesforceField",
            "has no field",
        ),
        (
            "ACCOUNTS",
            vec![("name", "Name"), ("nickname", "Site")],
            "mappings[1].deskField",
            "not a desk field",
        ),
        (
            "ACCOUNTS",
            vec![("name", "Name"), ("phone", "Phone"), ("website", "Phone")],
            "mappings[2].salesforceField",
            "mapped twice",
        ),
        (
            "CONTACTS",
            vec![("lastName", "LastName"), ("title", "CreatedDate")],
            "mappings[1].salesforceField",
            "cannot be written",
        ),
        (
            "CONTACTS",
            vec![("firstName", "FirstName")],
            "mappings",
            "mandatory",
        ),
        // Contacts meet by email: without it each would be created again on the other side.
        (
            "CONTACTS",
            vec![("lastName", "LastName"), ("firstName", "FirstName")],
            "mappings",
            "'email' must be mapped",
        ),
        // Salesforce checks what its email fields are given: only the desk's email goes there.
        (
            "CONTACTS",
            vec![
                ("lastName", "LastName"),
                ("title", "Email"),
                ("email", "Department"),
            ],
            "mappings[1].salesforceField",
            "type mismatch",
        ),
        // The field the sync writes the desk id to is its own.
        (
            "CONTACTS",
            vec![
                ("lastName", "LastName"),
                ("email", "Email"),
                ("title", "Helpdesk_Id__c"),
            ],
            "mappings[2].salesforceField",
            "the sync's own",
        ),
        // An address Salesforce's email field takes would not fit.
        (
            "CONTACTS",
            vec![("lastName", "LastName"), ("email", "MailingPostalCode")],
            "mappings[1].salesforceField",
            "holds at most 20 characters",
        ),
        // Accounts meet by name: a long text area cannot be looked up by it.
        (
            "ACCOUNTS",
            vec![("industry", "Name"), ("name", "Description")],
            "mappings[1].salesforceField",
            "cannot be filtered",
        ),
    ];
    for (module, maps, field, phrase) in cases {
        let body = app
            .gql(UPDATE, json!({ "m": module, "maps": pairs(&maps) }))
            .await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{maps:?}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(phrase),
            "{body}"
        );
    }
    let unchanged = app
        .gql_ok(
            "{ fieldMappings(module: ACCOUNTS) { deskField } }",
            json!({}),
        )
        .await;
    assert!(
        unchanged["fieldMappings"].as_array().unwrap().len() >= 13,
        "refused mappings change nothing"
    );
}

/// The accounts' mappings as they are, with the account type mapped to the custom
/// `Subscription_Type__c`.
async fn account_type_mapped_to_subscription(app: &TestApp) -> Vec<Value> {
    let mut maps = app.field_mappings("ACCOUNTS").await;
    for map in &mut maps {
        if map["deskField"] == "accountType" {
            map["salesforceField"] = json!("Subscription_Type__c");
        }
    }
    maps
}

/// A started sync whose accounts' type goes to `Subscription_Type__c`.
async fn started_with_account_type_mapped_to_subscription() -> (TestApp, SimHandle) {
    let (app, sim) = started(|_| {}).await;
    let maps = account_type_mapped_to_subscription(&app).await;
    app.gql_ok(UPDATE, json!({ "m": "ACCOUNTS", "maps": maps }))
        .await;
    (app, sim)
}

#[tokio::test]
async fn a_field_created_in_salesforce_after_connecting_can_be_mapped() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    sim.remove_field("Account", "Subscription_Type__c").unwrap();
    connect(&app, &sim, "tandem").await;
    let maps = account_type_mapped_to_subscription(&app).await;
    let missing = app
        .gql(UPDATE, json!({ "m": "ACCOUNTS", "maps": maps }))
        .await;
    assert_eq!(codes(&missing), ["BAD_USER_INPUT"], "{missing}");

    sim.create_field("Account", "Subscription_Type__c").unwrap();
    let saved = app
        .gql(UPDATE, json!({ "m": "ACCOUNTS", "maps": maps }))
        .await;
    assert!(saved.get("errors").is_none(), "{saved}");
    assert!(
        saved["data"]["updateFieldMappings"]
            .as_array()
            .unwrap()
            .contains(
                &json!({ "deskField": "accountType", "salesforceField": "Subscription_Type__c" })
            ),
        "{saved}"
    );
}

#[tokio::test]
async fn a_mapped_field_the_org_stops_showing_stops_its_module_and_is_named_until_it_is_back() {
    let (app, sim) = started_with_account_type_mapped_to_subscription().await;
    let steady = sim
        .insert(
            "Account",
            json!({ "Name": "Steady Co", "Industry": "Energy" }),
        )
        .unwrap();
    app.sync_now().await;
    async fn industry(app: &TestApp) -> Option<Value> {
        app.gql_ok(
            "{ accounts(first: 10) { nodes { name industry } } }",
            json!({}),
        )
        .await["accounts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "Steady Co")
            .map(|a| a["industry"].clone())
    }
    assert_eq!(industry(&app).await, Some(json!("Energy")));

    sim.remove_field("Account", "Subscription_Type__c").unwrap();
    sim.update("Account", &steady, json!({ "Industry": "Banking" }))
        .unwrap();
    sim.insert(
        "Contact",
        json!({ "LastName": "Onward", "Email": "onward@example.com" }),
    )
    .unwrap();
    // Accounts stop; contacts go on.
    let report = app.sync_now().await;
    assert_eq!(report.stopped.len(), 1, "{report:?}");
    assert!(
        linked_id(&app, "Onward").await.is_some(),
        "contacts still sync"
    );
    assert_eq!(industry(&app).await, Some(json!("Energy")), "accounts wait");
    let state = integration(&app).await;
    let reason = state["statusReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Accounts did not sync: Account.Subscription_Type__c, mapped from the desk's accountType, is not a field the integration user can see"),
        "{state}"
    );
    assert_eq!(state["status"], "ACTIVE", "{state}");
    app.sync_now().await;
    assert_eq!(
        integration(&app).await["statusReason"],
        state["statusReason"],
        "said the same way every round: one status change, not one a poll"
    );
    // Started again, or given the type it has, it still says what stops it.
    for mutation in [
        "mutation { startSync { status } }",
        "mutation { setSyncType(syncType: TWO_WAY) { status } }",
    ] {
        app.gql_ok(mutation, json!({})).await;
        assert_eq!(
            integration(&app).await["statusReason"],
            reason,
            "{mutation}"
        );
    }

    sim.create_field("Account", "Subscription_Type__c").unwrap();
    assert!(app.sync_now().await.stopped.is_empty());
    assert!(integration(&app).await["statusReason"].is_null());
    assert_eq!(
        industry(&app).await,
        Some(json!("Banking")),
        "what waited comes"
    );
}

#[tokio::test]
async fn a_retry_retries_the_modules_still_syncing_and_leaves_a_stopped_ones_failures_open() {
    let (app, sim) = started_with_account_type_mapped_to_subscription().await;
    app.sync_now().await;
    let refused = ("INVALID_EMAIL_ADDRESS", "Email: invalid email address");
    app.create_account("Refused Co").await;
    sim.reject_next_records(&[refused]);
    app.sync_now().await;
    sim.remove_field("Account", "Subscription_Type__c").unwrap();
    app.create_contact(json!({ "lastName": "Refused", "email": "refused@example.com" }))
        .await;
    sim.reject_next_records(&[refused]);
    app.sync_now().await;
    let open = "{ syncFailures(reason: INVALID_PARAMETER) { nodes { module } } }";
    assert_eq!(
        app.gql_ok(open, json!({})).await["syncFailures"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    app.gql_ok(
        "mutation { retrySyncFailures(reason: INVALID_PARAMETER) }",
        json!({}),
    )
    .await;
    assert!(
        sim.records("Contact")
            .iter()
            .any(|c| c["LastName"] == "Refused"),
        "the contact went"
    );
    assert_eq!(
        app.gql_ok(open, json!({})).await["syncFailures"]["nodes"],
        json!([{ "module": "ACCOUNTS" }]),
        "the account waits for its field"
    );
}

/// The desk contact with this last name, and its panel's Salesforce id.
async fn linked_id(app: &TestApp, last_name: &str) -> Option<String> {
    let data = app
        .gql_ok(
            "{ contacts(first: 50) { nodes { lastName salesforce { id } } } }",
            json!({}),
        )
        .await;
    let nodes = data["contacts"]["nodes"].as_array().unwrap().clone();
    let contact = nodes.iter().find(|c| c["lastName"] == last_name)?;
    contact["salesforce"]["id"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn connecting_to_another_org_starts_afresh_and_the_same_org_keeps_its_links() {
    let app = spawn_app().await;
    let first = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &first, "tandem").await;
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    // The first org's clock runs a day ahead, so its cursor is later than anything in the
    // second org.
    first.advance_clock(86_400);
    let in_first = first
        .insert(
            "Contact",
            json!({ "LastName": "First", "Email": "first@example.com" }),
        )
        .unwrap();
    app.sync_now().await;
    assert_eq!(linked_id(&app, "First").await, Some(in_first.clone()));

    // Signing in to the same org again (say, after a password change) keeps the links.
    let again = connect(&app, &first, "tandem").await;
    assert!(again.get("errors").is_none(), "{again}");
    assert_eq!(linked_id(&app, "First").await, Some(in_first.clone()));

    // Another org: nothing of the first org's carries over.
    let second = salesforce_sim::start(SimConfig {
        seed: 2,
        ..SimConfig::default()
    })
    .await;
    let in_second = second
        .insert(
            "Contact",
            json!({ "LastName": "Second", "Email": "second@example.com" }),
        )
        .unwrap();
    let switched = connect(&app, &second, "tandem").await;
    assert!(switched.get("errors").is_none(), "{switched}");
    assert_eq!(
        switched["data"]["connectSalesforce"]["firstSync"],
        "NOT_STARTED"
    );
    assert_eq!(
        linked_id(&app, "First").await,
        None,
        "no link into the other org"
    );
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    assert_eq!(
        linked_id(&app, "Second").await,
        Some(in_second),
        "the new org's records come in, however old"
    );
    let exported = linked_id(&app, "First")
        .await
        .expect("the desk contact went out");
    assert_ne!(exported, in_first);
    assert_eq!(
        second.get("Contact", &exported).unwrap()["Email"],
        "first@example.com",
        "two-way, the desk's contacts go out to the new org"
    );
}

#[tokio::test]
async fn another_org_connected_after_a_one_way_sync_is_followed_one_way_too() {
    let app = spawn_app().await;
    let sandbox = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sandbox, "tandem").await;
    app.gql_ok(
        "mutation { setSyncType(syncType: SALESFORCE_TO_DESK) { syncType } }",
        json!({}),
    )
    .await;
    app.create_contact(json!({ "lastName": "DeskOnly", "email": "desk@example.com" }))
        .await;
    let production = salesforce_sim::start(SimConfig {
        seed: 2,
        ..SimConfig::default()
    })
    .await;
    let before = production.count("Contact");
    let switched = connect(&app, &production, "tandem").await;
    assert!(switched.get("errors").is_none(), "{switched}");
    assert_eq!(
        integration(&app).await["syncType"],
        "SALESFORCE_TO_DESK",
        "the one-way choice stands"
    );
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    app.sync_now().await;
    assert_eq!(
        production.count("Contact"),
        before,
        "nothing of the desk's written into the new org"
    );
}

#[tokio::test]
async fn a_round_running_when_another_org_is_connected_stops_before_the_switch() {
    use tandem::domain::Module;
    let app = spawn_app().await;
    let slow = salesforce_sim::start(SimConfig {
        records: 4_000,
        latency_ms: 150,
        ..SimConfig::default()
    })
    .await;
    connect(&app, &slow, "tandem").await;
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    let running = app.round_in_background();
    let other = salesforce_sim::start(SimConfig {
        seed: 2,
        ..SimConfig::default()
    })
    .await;
    // Mid-way through the first org's first sync: its accounts are in, its contacts (two
    // pages of 2,000, each call taking 150 ms) are not...
    while app.store.link_count(Module::Accounts).await.unwrap() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(app.store.link_count(Module::Contacts).await.unwrap(), 0);
    let switched = connect(&app, &other, "tandem").await;
    assert!(switched.get("errors").is_none(), "{switched}");
    let stopped = running
        .await
        .unwrap()
        .expect("a round stopped early is not a failure");
    assert!(
        stopped.idle.is_some(),
        "the round stops at its next page: {stopped:?}"
    );
    // ...nothing of the first org is written after the switch.
    assert_eq!(app.store.link_count(Module::Contacts).await.unwrap(), 0);
    assert_eq!(app.store.link_count(Module::Accounts).await.unwrap(), 0);
    assert_eq!(integration(&app).await["firstSync"], "NOT_STARTED");
}

#[tokio::test]
async fn signing_in_to_the_same_org_again_keeps_the_pause_and_the_sync_type() {
    let (app, sim) = started(|_| {}).await;
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;

    // New credentials for the same org, with no sync type given.
    let body = connect(&app, &sim, "tandem").await;
    let again = &body["data"]["connectSalesforce"];
    assert_eq!(again["status"], "PAUSED", "{body}");
    assert_eq!(again["syncType"], "SALESFORCE_TO_DESK", "{body}");
    app.create_contact(json!({ "lastName": "Stays Local" }))
        .await;
    let report = app.sync_now().await;
    assert!(report.idle.is_some(), "still paused: {report:?}");

    let resumed = app
        .gql_ok("mutation { resumeSync { status syncType } }", json!({}))
        .await;
    assert_eq!(
        resumed["resumeSync"],
        json!({ "status": "ACTIVE", "syncType": "SALESFORCE_TO_DESK" })
    );
    app.sync_now().await;
    assert!(
        sim.records("Contact")
            .iter()
            .all(|c| c["LastName"] != "Stays Local"),
        "one-way: the desk contact stays in the desk"
    );
}

#[tokio::test]
async fn turning_two_way_after_a_one_way_first_sync_sends_what_stayed_local() {
    turned_two_way_sends_what_stayed_local(false).await;
}

#[tokio::test]
async fn reconnecting_two_way_after_a_one_way_first_sync_sends_what_stayed_local() {
    turned_two_way_sends_what_stayed_local(true).await;
}

/// A one-way first sync, desk records made meanwhile, then two-way: by `setSyncType`, or by
/// signing in again (new credentials) naming the sync type.
async fn turned_two_way_sends_what_stayed_local(reconnecting: bool) {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let body = connect(&app, &sim, "tandem").await;
    assert!(body.get("errors").is_none(), "{body}");
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    let account = app.create_account("Local Co").await;
    app.create_contact(json!({ "lastName": "Local Only", "accountId": account["id"] }))
        .await;
    app.sync_now().await;
    let named = |object: &str, field: &str, value: &str| {
        sim.records(object)
            .into_iter()
            .filter(|r| r[field] == value)
            .collect::<Vec<_>>()
    };
    assert!(named("Contact", "LastName", "Local Only").is_empty());
    let before = sim.count("Contact");

    if reconnecting {
        let connected = connect_two_way(&app, &sim).await;
        assert_eq!(connected["errors"], Value::Null, "{connected}");
    } else {
        app.set_sync_type("TWO_WAY").await;
    }
    app.sync_now().await;
    app.sync_now().await;
    let accounts = named("Account", "Name", "Local Co");
    let contacts = named("Contact", "LastName", "Local Only");
    assert_eq!((accounts.len(), contacts.len()), (1, 1), "sent once each");
    assert_eq!(contacts[0]["AccountId"], accounts[0]["Id"]);
    assert_eq!(
        sim.count("Contact"),
        before + 1,
        "nothing linked was sent again"
    );
}

/// Waits up to ten seconds for a Salesforce contact titled `title`: long before a worker
/// polling hourly would poll.
async fn reaches_salesforce(
    sim: &SimHandle,
    title: &str,
) -> Result<(), tokio::time::error::Elapsed> {
    let sent = async {
        while !sim.records("Contact").iter().any(|c| c["Title"] == title) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), sent).await
}

/// A started sync, its first round done, and a desk contact (Hopper) sent in the next.
async fn started_with_a_synced_contact() -> (TestApp, SimHandle, Value) {
    let (app, sim) = started(|_| {}).await;
    app.sync_now().await;
    let contact = app
        .create_contact(json!({ "lastName": "Hopper", "email": "grace@example.com" }))
        .await;
    app.sync_now().await;
    (app, sim, contact)
}

#[tokio::test]
async fn only_desk_changes_to_send_wake_the_worker() {
    let (app, sim, contact) = started_with_a_synced_contact().await;
    // The wakes of connecting and starting, taken here: no round is left owed.
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        app.integrations.woken(),
    )
    .await;
    // An hour between polls: only a desk change can bring a round.
    let worker = tandem::sync::worker::spawn(app.engine.clone(), app.store.clone(), 3600);
    let calls = || {
        sim.requests()
            .iter()
            .filter(|r| r.path.contains("/services/data/"))
            .count()
    };
    // Once the worker's first round is over, however slow the machine: no call for a while.
    let mut before = calls();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = calls();
        if now == before {
            break;
        }
        before = now;
    }
    for n in 0..5 {
        app.gql_ok(
            "mutation($c: ID!, $s: String!) { createTicket(input: { subject: $s, contactId: $c }) { id } }",
            json!({ "c": contact["id"], "s": format!("Question {n}") }),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    assert_eq!(
        calls(),
        before,
        "tickets stay in the desk: no round reads Salesforce"
    );

    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Rear Admiral\" }) { id } }",
        json!({ "id": contact["id"] }),
    )
    .await;
    reaches_salesforce(&sim, "Rear Admiral")
        .await
        .expect("a contact edit goes out long before the next poll");
    worker.abort();
}

#[tokio::test]
async fn a_desk_edit_left_unsent_goes_out_as_soon_as_the_worker_starts() {
    let (app, sim, contact) = started_with_a_synced_contact().await;
    // Made while no worker ran: a gateway stopped before it went, say.
    app.gql_ok(
        "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Rear Admiral\" }) { id } }",
        json!({ "id": contact["id"] }),
    )
    .await;
    // The wakes of connecting and starting, taken here: no round is left owed.
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        app.integrations.woken(),
    )
    .await;
    // An hour between polls, and the edit made before the worker listened for any.
    let worker = tandem::sync::worker::spawn(app.engine.clone(), app.store.clone(), 3600);
    reaches_salesforce(&sim, "Rear Admiral")
        .await
        .expect("the edit goes out with the worker's first round, not an hour later");
    worker.abort();
}

#[tokio::test]
async fn starting_the_sync_wakes_the_worker_without_waiting_for_its_interval() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    connect(&app, &sim, "tandem").await;
    // An hour between polls: only the start can bring the first round.
    tandem::sync::worker::spawn(app.engine.clone(), app.store.clone(), 3600);
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    let done = async {
        loop {
            if integration(&app).await["firstSync"] == "DONE" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), done)
        .await
        .expect("the first sync ran long before the next poll");
}

#[tokio::test]
async fn a_round_failing_as_the_sync_is_paused_does_not_say_it_is_retried() {
    let (app, _sim) = started(|_| {}).await;
    app.gql_ok("mutation { pauseSync { status } }", json!({}))
        .await;
    // A round that failed as the pause committed says why, too late.
    app.integrations
        .explain(Some("the last sync round stopped: …; it is retried".into()))
        .await
        .unwrap();
    let shown = integration(&app).await;
    assert_eq!(shown["status"], "PAUSED");
    assert_eq!(shown["statusReason"], Value::Null, "{shown}");
}

#[tokio::test]
async fn changing_the_mappings_or_the_sync_type_wakes_the_worker() {
    let (app, sim) = started(|_| {}).await;
    app.sync_now().await;
    // The wakes of connecting and starting, taken here: no round is left owed.
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        app.integrations.woken(),
    )
    .await;
    // An hour between polls: only the change can bring a round.
    let worker = tandem::sync::worker::spawn(app.engine.clone(), app.store.clone(), 3600);
    // Until the contact is in the desk showing `state`.
    let arrives = |last_name: &'static str, state: Value| {
        let app = &app;
        async move {
            let find = format!(
                "{{ contacts(filter: {{ email: \"{last_name}@example.com\" }}) {{ nodes {{ mailingState }} }} }}"
            );
            while app.gql_ok(&find, json!({})).await["contacts"]["nodes"]
                != json!([{ "mailingState": state }])
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    sim.insert(
        "Contact",
        json!({ "LastName": "Lovelace", "Email": "Lovelace@example.com", "Department": "Analysis" }),
    )
    .unwrap();
    app.map_field("CONTACTS", "mailingState", "Department")
        .await;
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        arrives("Lovelace", json!("Analysis")),
    )
    .await
    .expect("read under the new mappings long before the next poll");

    sim.insert(
        "Contact",
        json!({ "LastName": "Babbage", "Email": "Babbage@example.com" }),
    )
    .unwrap();
    app.set_sync_type("SALESFORCE_TO_DESK").await;
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        arrives("Babbage", Value::Null),
    )
    .await
    .expect("a round in the new direction long before the next poll");
    worker.abort();
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn turning_two_way_as_a_one_way_first_sync_ends_still_sends_what_stayed_local() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
    let app = spawn_app().await;
    // SQLite lets one writer at a time in: the two cannot overlap.
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let sim = salesforce_sim::start(SimConfig::default()).await;
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.gql_ok(
        "mutation { setSyncType(syncType: SALESFORCE_TO_DESK) { syncType } startSync { firstSync } }",
        json!({}),
    )
    .await;
    app.create_contact(json!({ "lastName": "Local Only" }))
        .await;
    app.sync_now().await;
    let sql = |text: &str| Statement::from_string(DbBackend::Postgres, text.to_owned());
    // A one-way first sync about to end: a round holds the integration row to mark it done.
    let other = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .unwrap();
    other
        .execute_raw(sql("UPDATE integration SET first_sync = 'RUNNING'"))
        .await
        .unwrap();
    let round = other.begin().await.unwrap();
    round
        .execute_raw(sql("SELECT id FROM integration FOR UPDATE"))
        .await
        .unwrap();
    let turning = app.gql(
        "mutation { setSyncType(syncType: TWO_WAY) { syncType } }",
        json!({}),
    );
    let ending = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        round
            .execute_raw(sql("UPDATE integration SET first_sync = 'DONE'"))
            .await
            .unwrap();
        round.commit().await.unwrap();
    };
    let (turned, ()) = tokio::join!(turning, ending);
    assert!(turned.get("errors").is_none(), "{turned}");

    app.sync_now().await;
    let sent = sim
        .records("Contact")
        .into_iter()
        .filter(|c| c["LastName"] == "Local Only")
        .count();
    assert_eq!(sent, 1, "the contact made while one-way goes out once");
}

#[tokio::test]
async fn starting_the_sync_checks_the_pre_mapped_fields_against_the_org_too() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    // The org's admin made a custom field of accounts required, which nothing maps.
    sim.require_field("Account", "Subscription_Type__c")
        .unwrap();
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    app.create_account("Local Co").await;
    let refused = app
        .gql("mutation { startSync { firstSync } }", json!({}))
        .await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("Subscription_Type__c") && message.contains("updateFieldMappings"),
        "{message}"
    );
    let state = app.gql_ok("{ integration { firstSync } }", json!({})).await;
    assert_eq!(state["integration"]["firstSync"], "NOT_STARTED");
    app.sync_now().await;
    assert_eq!(sim.count("Account"), 0, "nothing was sent to be refused");
}

#[tokio::test]
async fn starting_the_sync_reads_the_org_afresh_not_as_it_was_described_before() {
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    assert!(connect(&app, &sim, "tandem").await.get("errors").is_none());
    // The accounts' mappings saved as they are: the org is described now.
    app.map_field("ACCOUNTS", "name", "Name").await;
    // Then the org's admin makes a custom field of accounts required.
    sim.require_field("Account", "Subscription_Type__c")
        .unwrap();
    let refused = app
        .gql("mutation { startSync { firstSync } }", json!({}))
        .await;
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Subscription_Type__c"),
        "{refused}"
    );
}

#[tokio::test]
async fn reconnected_as_another_user_of_the_org_the_sync_reads_what_that_user_sees() {
    let app = spawn_app().await;
    let first = salesforce_sim::start(SimConfig::default()).await;
    assert!(
        connect(&app, &first, "tandem")
            .await
            .get("errors")
            .is_none()
    );
    app.gql_ok("mutation { startSync { firstSync } }", json!({}))
        .await;
    // The sync's cursor stands an hour after the contact the next user alone sees was last
    // changed.
    first.advance_clock(3600);
    first
        .insert("Contact", json!({ "LastName": "Seen" }))
        .unwrap();
    app.sync_now().await;

    // The same org at the same address, signed in as a user who sees a contact the first
    // could not.
    let port = first.port();
    first.stop().await;
    let second = salesforce_sim::start(SimConfig {
        port,
        username: "reader@tandem.test".into(),
        ..SimConfig::default()
    })
    .await;
    second
        .insert("Contact", json!({ "LastName": "Seen" }))
        .unwrap();
    second
        .insert("Contact", json!({ "LastName": "Hidden" }))
        .unwrap();
    second.advance_clock(3600);
    assert!(
        connect(&app, &second, "tandem")
            .await
            .get("errors")
            .is_none()
    );
    app.sync_now().await;

    let names: Vec<String> = app
        .gql_ok("{ contacts(first: 10) { nodes { lastName } } }", json!({}))
        .await["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lastName"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"Hidden".to_owned()), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "Seen").count(),
        1,
        "the one both see is the same record: {names:?}"
    );
}

#[tokio::test]
async fn a_round_stopped_by_a_database_error_says_so_and_leaves_the_details_to_the_log() {
    use sea_orm::ConnectionTrait;
    let (app, _sim) = started(|_| {}).await;
    app.store
        .connection()
        .execute_unprepared("DROP TABLE sync_cursor")
        .await
        .unwrap();
    assert!(app.engine.run_once().await.is_err());
    let reason = integration(&app).await["statusReason"].clone();
    let reason = reason.as_str().unwrap();
    assert!(reason.contains("a database error"), "{reason}");
    assert!(!reason.contains("sync_cursor"), "{reason}");
}

#[tokio::test]
async fn credentials_this_gateway_cannot_open_are_named_to_the_admin_not_hidden_as_internal() {
    use sea_orm::{EntityTrait, sea_query::Expr};
    let app = spawn_app().await;
    let sim = salesforce_sim::start(SimConfig::default()).await;
    let body = connect(&app, &sim, "tandem").await;
    assert!(body.get("errors").is_none(), "{body}");
    // Sealed by a replica with another key: these bytes open under no key this one has.
    entity::integration::Entity::update_many()
        .col_expr(
            entity::integration::Column::Secrets,
            Expr::value(Some(vec![7u8; 60])),
        )
        .exec(app.store.connection())
        .await
        .unwrap();
    let refused = app
        .gql("mutation { startSync { firstSync } }", json!({}))
        .await;
    assert_eq!(codes(&refused), ["CONFLICT"], "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("cannot be decrypted"), "{message}");
    assert!(message.contains("connect Salesforce again"), "{message}");
}

#[tokio::test]
async fn a_sync_run_with_another_key_than_the_gateways_says_so_and_leaves_the_status_alone() {
    let (app, sim) = started(|_| {}).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let calls = sim.api_usage();
    let out = app
        .tandem(&["sync", "--once"])
        .env("TANDEM_DATA_DIR", elsewhere.path())
        .env_remove("TANDEM_SYNC__ENCRYPTION_KEY")
        .env("TANDEM_SYNC__WORKER", "false")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("cannot be decrypted"), "{said}");
    assert!(
        said.contains(
            &*std::path::absolute(elsewhere.path())
                .unwrap()
                .to_string_lossy()
        ),
        "naming where its key came from, in full: {said}"
    );
    assert_eq!(sim.api_usage(), calls, "nothing asked of Salesforce");
    let state = integration(&app).await;
    assert_eq!(
        (&state["status"], &state["statusReason"]),
        (&json!("ACTIVE"), &Value::Null),
        "{state}"
    );
}
