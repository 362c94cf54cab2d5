use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap(),
        json!({ "status": "ready" })
    );
}

#[tokio::test]
async fn readiness_fails_while_a_migration_is_pending() {
    let app = spawn_app().await;
    {
        use migration::{Migrator, MigratorTrait};
        Migrator::down(app.store.connection(), Some(1))
            .await
            .unwrap();
    }
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("pending migrations"),
        "{body}"
    );
}

#[tokio::test]
async fn a_process_stays_ready_once_a_newer_build_has_migrated_the_database() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    // A replica of the next version started and applied a migration this build has not.
    app.store
        .connection()
        .execute_unprepared(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000001_of_a_newer_build', 4102444800)",
        )
        .await
        .unwrap();
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
}

#[tokio::test]
async fn metrics_count_requests_latency_and_error_codes() {
    let app = spawn_app().await;
    app.gql_ok("{ me { agentId } }", json!({})).await;
    app.gql("{ contact(id: \"x\") { id } }", json!({})).await;
    let _ = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": "{ me { agentId } }" }))
        .send()
        .await
        .unwrap();

    let text = app.metrics().await;
    assert!(
        text.contains(
            "tandem_http_requests_total{method=\"POST\",route=\"/graphql\",status=\"200\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "tandem_http_requests_total{method=\"POST\",route=\"/graphql\",status=\"401\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("tandem_http_request_duration_seconds_count{route=\"/graphql\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("tandem_graphql_errors_total{code=\"BAD_USER_INPUT\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let given = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "abc-123");
    let made = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(made.headers()["x-request-id"].len(), 36);
}

#[tokio::test]
async fn metrics_count_methods_they_do_not_know_together() {
    let app = spawn_app().await;
    for method in ["BREW", "WHEN"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.client
            .request(method, format!("{}/anywhere", app.address))
            .send()
            .await
            .unwrap();
    }
    let text = app.metrics().await;
    assert!(!text.contains("BREW") && !text.contains("WHEN"), "{text}");
    assert!(
        text.contains(
            "tandem_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"404\"} 2"
        ),
        "{text}"
    );
}

/// On SQLite, where a migration's changes are not in one transaction unless it asks.
#[tokio::test]
async fn a_migration_that_fails_part_way_leaves_nothing_behind_and_runs_again() {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectOptions, ConnectionTrait, Database};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("desk.db").display());
    let db = Database::connect(ConnectOptions::new(url).max_connections(1).to_owned())
        .await
        .unwrap();
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let keys = names.iter().position(|n| n.contains("match_keys")).unwrap();
    Migrator::up(&db, Some(u32::try_from(keys).unwrap()))
        .await
        .unwrap();
    // The migration adds its columns, then meets an index by the name it gives its own.
    db.execute_unprepared("CREATE INDEX idx_account_name_key ON contact (last_name)")
        .await
        .unwrap();
    assert!(Migrator::up(&db, Some(1)).await.is_err());
    db.execute_unprepared("DROP INDEX idx_account_name_key")
        .await
        .unwrap();
    Migrator::up(&db, None)
        .await
        .expect("the failed migration runs again from the start");
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );
}
