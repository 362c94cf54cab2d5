use serde_json::json;

use crate::helpers::{codes, spawn_app};

#[tokio::test]
async fn a_fresh_install_has_the_three_default_profiles() {
    let app = spawn_app().await;
    let data = app
        .gql_ok("{ profiles { name isAdmin permissions { visible panel opportunities notes accessLevel } } }", json!({}))
        .await;
    assert_eq!(
        data["profiles"],
        json!([
            { "name": "Administrator", "isAdmin": true, "permissions": { "visible": true, "panel": "BOTH", "opportunities": true, "notes": true, "accessLevel": "FULL" } },
            { "name": "Agent", "isAdmin": false, "permissions": { "visible": true, "panel": "BOTH", "opportunities": true, "notes": true, "accessLevel": "FULL" } },
            { "name": "Light Agent", "isAdmin": false, "permissions": { "visible": true, "panel": "BOTH", "opportunities": false, "notes": true, "accessLevel": "RESTRICTED" } },
        ])
    );
}

#[tokio::test]
async fn me_tells_the_ui_what_the_viewer_may_see() {
    let app = spawn_app().await;
    let body = app
        .gql_as("Light Agent", "{ me { agentId name profile { name } permissions { opportunities tasks accessLevel } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["me"],
        json!({ "agentId": "1", "name": "Test Agent", "profile": { "name": "Light Agent" },
                "permissions": { "opportunities": false, "tasks": true, "accessLevel": "RESTRICTED" } })
    );
}

#[tokio::test]
async fn administrators_create_profiles_and_change_permissions() {
    let app = spawn_app().await;
    let created = app
        .gql_ok(
            "mutation { createProfile(input: { name: \"Night Shift\", permissions: { panel: CONTACTS, notes: false } }) { id name isAdmin permissions { panel notes tasks accessLevel } } }",
            json!({}),
        )
        .await;
    let profile = &created["createProfile"];
    assert_eq!(
        profile["permissions"],
        json!({ "panel": "CONTACTS", "notes": false, "tasks": true, "accessLevel": "RESTRICTED" })
    );

    let duplicate = app
        .gql(
            "mutation { createProfile(input: { name: \"Night Shift\", permissions: {} }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&duplicate), ["CONFLICT"]);
    // Told apart by nothing a reader sees: case, spacing, an invisible character inside, a
    // letter composed otherwise.
    for twin in [
        "night shift",
        "Night  Shift",
        "NIGHT SHIFT ",
        "Night\u{00A0}Shift",
        "Nig\u{00AD}ht Shift",
        "Night Shi\u{200B}ft",
    ] {
        let refused = app
            .gql(
                "mutation($n: String!) { createProfile(input: { name: $n, permissions: {} }) { id } }",
                json!({ "n": twin }),
            )
            .await;
        assert_eq!(codes(&refused), ["CONFLICT"], "{twin}: {refused}");
        assert!(
            refused["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("'Night Shift' already exists"),
            "{refused}"
        );
    }

    app.gql_ok(
        "mutation { createProfile(input: { name: \"Équipe\", permissions: {} }) { id } }",
        json!({}),
    )
    .await;
    let decomposed = app
        .gql(
            "mutation($n: String!) { createProfile(input: { name: $n, permissions: {} }) { id } }",
            json!({ "n": "E\u{0301}quipe" }),
        )
        .await;
    assert_eq!(codes(&decomposed), ["CONFLICT"], "{decomposed}");

    // A change names what it changes: what it leaves out stays as it was, so hiding the
    // panel does not grant the notes the profile was refused.
    let updated = app
        .gql_ok(
            "mutation($id: ID!) { updateProfilePermissions(id: $id, permissions: { visible: false }) { permissions { visible panel notes accessLevel } } }",
            json!({ "id": profile["id"] }),
        )
        .await;
    assert_eq!(
        updated["updateProfilePermissions"]["permissions"],
        json!({ "visible": false, "panel": "CONTACTS", "notes": false, "accessLevel": "RESTRICTED" })
    );
    let granted = app
        .gql_ok(
            "mutation($id: ID!) { updateProfilePermissions(id: $id, permissions: { notes: true, panel: BOTH }) { permissions { visible panel notes accessLevel } } }",
            json!({ "id": profile["id"] }),
        )
        .await;
    assert_eq!(
        granted["updateProfilePermissions"]["permissions"],
        json!({ "visible": false, "panel": "BOTH", "notes": true, "accessLevel": "FULL" })
    );

    let token_body = app
        .gql_as(
            "Night Shift",
            "{ me { permissions { visible } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        token_body["data"]["me"]["permissions"]["visible"], false,
        "the token's profile is read as stored now"
    );
}

#[tokio::test]
async fn only_administrators_reach_admin_operations() {
    let app = spawn_app().await;
    let operations = [
        "{ profiles { id } }",
        "mutation { createProfile(input: { name: \"X\", permissions: {} }) { id } }",
        "mutation { updateProfilePermissions(id: \"1\", permissions: {}) { id } }",
        "{ integration { status } }",
        "{ fieldMappings(module: CONTACTS) { deskField } }",
        "mutation { connectSalesforce(input: { loginUrl: \"https://login.salesforce.com\", clientId: \"x\", username: \"u\", password: \"p\", clientSecret: \"s\" }) { status } }",
        "mutation { setSyncType(syncType: TWO_WAY) { status } }",
        "mutation { updateFieldMappings(module: CONTACTS, mappings: []) { deskField } }",
        "mutation { startSync { status } }",
        "mutation { pauseSync { status } }",
        "mutation { resumeSync { status } }",
        "mutation { deleteIntegration { status } }",
        "{ integration { status } }",
        "{ fieldMappings(module: CONTACTS) { deskField } }",
        "mutation { connectSalesforce(input: { loginUrl: \"https://login.salesforce.com\", clientId: \"x\", username: \"u\", password: \"p\", clientSecret: \"s\" }) { status } }",
        "mutation { setSyncType(syncType: TWO_WAY) { status } }",
        "mutation { updateFieldMappings(module: CONTACTS, mappings: []) { deskField } }",
        "mutation { startSync { status } }",
        "mutation { pauseSync { status } }",
        "mutation { resumeSync { status } }",
        "mutation { deleteIntegration { status } }",
    ];
    for profile in ["Agent", "Light Agent"] {
        for op in operations {
            let body = app.gql_as(profile, op, json!({})).await;
            assert_eq!(codes(&body), ["FORBIDDEN"], "{profile}: {op}: {body}");
        }
    }
    let profiles = app.gql_ok("{ profiles { name } }", json!({})).await;
    assert_eq!(
        profiles["profiles"].as_array().unwrap().len(),
        3,
        "nothing was created"
    );
}

#[tokio::test]
async fn a_permission_change_holds_from_the_very_next_request() {
    let app = spawn_app().await;
    let mine = "{ me { profile { id } permissions { opportunities } } }";
    let before = app.gql_as("Agent", mine, json!({})).await;
    assert_eq!(before["data"]["me"]["permissions"]["opportunities"], true);

    app.gql_ok(
        "mutation($id: ID!) { updateProfilePermissions(id: $id, permissions: { opportunities: false }) { id } }",
        json!({ "id": before["data"]["me"]["profile"]["id"] }),
    )
    .await;
    let after = app.gql_as("Agent", mine, json!({})).await;
    assert_eq!(
        after["data"]["me"]["permissions"]["opportunities"], false,
        "{after}"
    );
}

#[tokio::test]
async fn a_permission_change_holds_from_the_next_operation_of_the_same_batch() {
    let app = spawn_app().await;
    let mine = "{ me { profile { id } permissions { opportunities } } }";
    let id = app.gql_ok(mine, json!({})).await["me"]["profile"]["id"].clone();
    let answers = app
        .gql_batch(
            "Administrator",
            &[
                json!({ "query": mine }),
                json!({
                    "query": "mutation($id: ID!) { updateProfilePermissions(id: $id, permissions: { opportunities: false }) { id } }",
                    "variables": { "id": id },
                }),
                json!({ "query": mine }),
            ],
        )
        .await;
    assert_eq!(
        answers[0]["data"]["me"]["permissions"]["opportunities"],
        true
    );
    assert_eq!(
        answers[2]["data"]["me"]["permissions"]["opportunities"], false,
        "{answers:?}"
    );
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn names_told_apart_only_by_case_sent_at_once_make_one_profile() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
    let app = spawn_app().await;
    // SQLite lets one writer at a time in: the two cannot overlap.
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    // Holding back inserts (not reads) lets both administrators look before either writes.
    let other = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .unwrap();
    let hold = other.begin().await.unwrap();
    hold.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        "LOCK TABLE profile IN SHARE MODE",
    ))
    .await
    .unwrap();
    let create = |name: &'static str| {
        app.gql(
            "mutation($n: String!) { createProfile(input: { name: $n, permissions: {} }) { id } }",
            json!({ "n": name }),
        )
    };
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        hold.commit().await.unwrap();
    };
    let (first, second, ()) = tokio::join!(create("Night Shift"), create("NIGHT SHIFT"), release);
    let made = [&first, &second]
        .iter()
        .filter(|a| a.get("errors").is_none())
        .count();
    assert_eq!(made, 1, "{first}\n{second}");
    let refused = if first.get("errors").is_some() {
        &first
    } else {
        &second
    };
    assert_eq!(codes(refused), ["CONFLICT"], "{refused}");
}
