use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use secrecy::SecretString;
use serde_json::{Value, json};
use tandem::auth::{Authenticator, VerifyingKey};
use tandem::config::{DatabaseUrl, LogSettings, Settings};
use tandem::domain::AgentId;
use tandem::startup::Application;
use tandem::store::Store;
use tandem::sync::{RoundReport, SyncEngine};

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub store: Store,
    pub engine: std::sync::Arc<SyncEngine>,
    pub integrations: std::sync::Arc<tandem::sync::Integrations>,
    pub client: reqwest::Client,
    /// The database and data dir, for running the `tandem` binary against the same desk.
    pub database_url: String,
    pub data_dir: std::path::PathBuf,
    minter: Authenticator,
    _db: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app with test settings, after `adjust` has changed them.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        tandem::telemetry::init(&LogSettings::default());
    }
    let db = TestDatabase::create().await;
    let mut settings = Settings {
        data_dir: db.dir.path().to_owned(),
        database_url: Some(db.url.clone()),
        ..Default::default()
    };
    settings.http.port = 0;
    settings.http.workers = Some(1);
    settings.auth.jwt_secret = Some(SecretString::from(SECRET));
    settings.sync.worker = false;
    // A create whose answer was lost is settled at the next round, found or not: the tests
    // of the window in which Salesforce may still make it set one.
    settings.sync.unanswered_create_secs = 0;
    adjust(&mut settings);
    let app = Application::build(&settings)
        .await
        .expect("the application builds");
    let port = app.port();
    let store = app.store().clone();
    let engine = app.engine();
    let integrations = app.integrations();
    tokio::spawn(app.run_until_stopped());
    let minter = Authenticator::new(
        VerifyingKey::Hs256(SecretString::from(SECRET)),
        settings.auth.issuer.clone(),
        settings.auth.audience.clone(),
    )
    .unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        store,
        engine,
        integrations,
        client: reqwest::Client::new(),
        database_url: settings.database_url().expose().to_owned(),
        data_dir: settings.data_dir.clone(),
        minter,
        _db: db,
    }
}

impl TestApp {
    /// Maps a desk field of the module (`CONTACTS` or `ACCOUNTS`) to this Salesforce field,
    /// the module's other mappings as they are.
    pub async fn map_field(&self, module: &str, desk_field: &str, salesforce_field: &str) {
        let body = self
            .try_map_field(module, desk_field, salesforce_field)
            .await;
        assert!(body.get("errors").is_none(), "{body}");
    }

    /// The module's mappings as they are: `deskField` and `salesforceField` of each.
    pub async fn field_mappings(&self, module: &str) -> Vec<Value> {
        let read = format!("{{ fieldMappings(module: {module}) {{ deskField salesforceField }} }}");
        self.gql_ok(&read, json!({})).await["fieldMappings"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Maps one field beside the module's other mappings; the whole answer.
    pub async fn try_map_field(
        &self,
        module: &str,
        desk_field: &str,
        salesforce_field: &str,
    ) -> Value {
        let mut maps = self.field_mappings(module).await;
        maps.retain(|m| m["deskField"] != desk_field);
        maps.push(json!({ "deskField": desk_field, "salesforceField": salesforce_field }));
        let save = format!(
            "mutation($maps: [FieldMappingInput!]!) {{ updateFieldMappings(module: {module}, mappings: $maps) {{ deskField }} }}"
        );
        self.gql(&save, json!({ "maps": maps })).await
    }

    /// PostgreSQL sessions on this test's database waiting for an advisory lock; `None` on
    /// SQLite, which has no such sessions to count.
    pub async fn sessions_waiting_for_a_lock(&self) -> Option<i64> {
        use sea_orm::ConnectionTrait;
        if !self.database_url.starts_with("postgres") {
            return None;
        }
        let waiting = self
            .store
            .connection()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event = 'advisory'",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        Some(waiting)
    }

    /// Lets go of `held` (the round lock another process holds) and checks that nobody
    /// takes it after: no wait given up earlier is still trying for it, on any database.
    pub async fn let_go_and_find_the_round_lock_free(&self, held: tandem::store::RoundLock) {
        use std::time::Duration;
        drop(held);
        // On PostgreSQL the lock goes with a transaction rolled back once its connection is
        // back in the pool, a moment after the drop: it is free within a second.
        tokio::time::timeout(Duration::from_secs(5), async {
            while self.store.try_lock_rounds().await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the round lock is free once let go");
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let free = self.store.try_lock_rounds().await.unwrap();
            assert!(free.is_some(), "a wait given up still takes the round lock");
        }
    }

    /// A valid token for agent 1 with the named profile.
    pub fn token(&self, profile: &str) -> String {
        self.agent_token(1, profile)
    }

    /// A valid token for this agent with the named profile.
    pub fn agent_token(&self, agent: i64, profile: &str) -> String {
        self.minter
            .mint(
                AgentId(agent),
                profile,
                Some("Test Agent"),
                Duration::from_secs(600),
            )
            .unwrap()
    }

    /// The `tandem` binary with these arguments, on this app's database and data dir (its
    /// secrets), logging errors only; killed when dropped.
    pub fn tandem(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"));
        command
            .args(args)
            .env("TANDEM_DATA_DIR", &self.data_dir)
            .env("TANDEM_DATABASE_URL", &self.database_url)
            .env("TANDEM_LOG__FILTER", "error")
            .kill_on_drop(true);
        command
    }

    /// Starts one sync round on a task of its own, for a test to act while it runs (a
    /// request of it held by the simulator, say).
    pub fn round_in_background(
        &self,
    ) -> tokio::task::JoinHandle<Result<RoundReport, tandem::sync::SyncError>> {
        let engine = self.engine.clone();
        tokio::spawn(async move { engine.run_once().await })
    }

    /// Runs one sync round, as the worker would.
    pub async fn sync_now(&self) -> RoundReport {
        self.engine
            .run_once()
            .await
            .expect("the sync round succeeds")
    }

    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.address)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/graphql", self.port)
    }

    /// Posts a GraphQL operation as the given profile and returns the JSON body.
    pub async fn gql_as(&self, profile: &str, query: &str, variables: Value) -> Value {
        self.post_as(profile, json!({ "query": query, "variables": variables }))
            .await
    }

    /// Runs the operation `operation` names of a document holding several, as an
    /// administrator.
    pub async fn gql_named(&self, document: &str, operation: &str) -> Value {
        self.post_as(
            "Administrator",
            json!({ "query": document, "operationName": operation }),
        )
        .await
    }

    /// Posts a request body as the given profile and returns the JSON body.
    async fn post_as(&self, profile: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.graphql_url())
            .bearer_auth(self.token(profile))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "GraphQL over application/json answers 200"
        );
        response.json().await.unwrap()
    }

    /// Posts a batch (a JSON array of operations) as the given profile; one answer each.
    pub async fn gql_batch(&self, profile: &str, operations: &[Value]) -> Vec<Value> {
        let body: Value = self
            .client
            .post(self.graphql_url())
            .bearer_auth(self.token(profile))
            .json(operations)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let answers = body.as_array().unwrap_or_else(|| panic!("{body}")).clone();
        assert_eq!(answers.len(), operations.len(), "{body}");
        answers
    }

    /// Posts as the given profile asking for an answer computed afresh
    /// (`Cache-Control: no-cache`), not one the response cache kept.
    pub async fn gql_fresh(&self, profile: &str, query: &str, variables: Value) -> Value {
        let token = self.token(profile);
        self.gql_with(&token, Some("no-cache"), query, variables)
            .await
    }

    /// Posts with this token and, when given, this `Cache-Control`; returns the JSON body.
    pub async fn gql_with(
        &self,
        token: &str,
        cache_control: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Value {
        let body = self.gql_text(token, cache_control, query, variables).await;
        serde_json::from_str(&body).unwrap()
    }

    /// `gql_with`, the body as sent: its objects' fields in the order they came.
    pub async fn gql_text(
        &self,
        token: &str,
        cache_control: Option<&str>,
        query: &str,
        variables: Value,
    ) -> String {
        let mut request = self.client.post(self.graphql_url()).bearer_auth(token);
        if let Some(value) = cache_control {
            request = request.header("cache-control", value);
        }
        request
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The `/metrics` page as Prometheus text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Queries answered from the response cache so far, and queries whose answer could be
    /// kept but was computed, as `/metrics` counts them: `(hits, misses)`.
    pub async fn response_cache(&self) -> (u64, u64) {
        let metrics = self.metrics().await;
        let count = |result: &str| {
            let line = format!("tandem_graphql_response_cache_total{{result=\"{result}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .map_or(0, |n| n.parse().unwrap())
        };
        (count("hit"), count("miss"))
    }

    /// Posts as an administrator.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as("Administrator", query, variables).await
    }

    /// Posts as an administrator and fails the test on any error.
    pub async fn gql_ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Sets the sync type (`TWO_WAY` or `SALESFORCE_TO_DESK`), as an administrator.
    pub async fn set_sync_type(&self, sync_type: &str) {
        self.gql_ok(
            &format!("mutation {{ setSyncType(syncType: {sync_type}) {{ syncType }} }}"),
            json!({}),
        )
        .await;
    }

    /// Moves a desk record to the recycle bin, then purges it: `kind` is `Contact` or
    /// `Account`.
    pub async fn bin_and_purge(&self, kind: &str, id: &Value) {
        for mutation in [
            format!("mutation($id: ID!) {{ delete{kind}(id: $id) {{ id }} }}"),
            format!("mutation($id: ID!) {{ purge{kind}(id: $id) }}"),
        ] {
            self.gql_ok(&mutation, json!({ "id": id })).await;
        }
    }

    pub async fn create_contact(&self, input: Value) -> Value {
        let data = self
            .gql_ok(
                "mutation($input: CreateContactInput!) { createContact(input: $input) { id firstName lastName email updatedAt account { id name } } }",
                json!({ "input": input }),
            )
            .await;
        data["createContact"].clone()
    }

    /// How a push names this desk record (its GraphQL id) in `Helpdesk_Id__c`.
    pub async fn desk_ref(&self, desk_id: &Value) -> String {
        let id: i64 = desk_id.as_str().unwrap().parse().unwrap();
        tandem::sync::desk_ref(&self.store.desk_tag().await.unwrap(), id)
    }

    /// A desk contact written through the store (outbox row included), for tests that need
    /// many of them quickly.
    pub async fn store_contact(&self, last_name: String, email: Option<String>) {
        self.store
            .create_contact(
                &tandem::domain::ContactInput {
                    last_name: Some(last_name),
                    email,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
    }

    pub async fn create_account(&self, name: &str) -> Value {
        let data = self
            .gql_ok(
                "mutation($input: CreateAccountInput!) { createAccount(input: $input) { id name updatedAt } }",
                json!({ "input": { "name": name } }),
            )
            .await;
        data["createAccount"].clone()
    }
}

/// The error codes in a GraphQL body, in order.
pub fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A fresh database per test: an SQLite file in a temp dir, or a randomly named PostgreSQL
/// database that is dropped afterwards.
struct TestDatabase {
    url: DatabaseUrl,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

/// The PostgreSQL URL `url` with the database `name` in place of its own, keeping its
/// parameters (`?sslmode=require`).
pub fn on_database(url: &str, name: &str) -> String {
    let (path, query) = url.split_once('?').map_or((url, ""), |(p, q)| (p, q));
    let (server, _) = path
        .rsplit_once('/')
        .expect("a URL like postgres://host/db");
    match query {
        "" => format!("{server}/{name}"),
        query => format!("{server}/{name}?{query}"),
    }
}

/// The name of the database a PostgreSQL URL names.
pub fn database_of(url: &str) -> &str {
    let path = url.split_once('?').map_or(url, |(path, _)| path);
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

impl TestDatabase {
    async fn create() -> Self {
        let dir = tempfile::tempdir().unwrap();
        match std::env::var("TANDEM_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("tandem_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&admin_url)
                    .await
                    .expect("the PostgreSQL test server answers");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                admin.close().await.ok();
                Self {
                    url: DatabaseUrl::new(on_database(&admin_url, &name)),
                    dir,
                    postgres: Some((admin_url.clone(), name)),
                }
            }
            _ => Self {
                url: DatabaseUrl::new(format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("test.db").display()
                )),
                dir,
                postgres: None,
            },
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// Removes `Helpdesk_Id__c` from the org's contacts and accounts, as in an org whose admin
/// never created it: creates cannot be upserts there, so repeating one would make a second
/// record, and only its values tell what a create made.
pub fn without_desk_id_fields(sim: &salesforce_sim::SimHandle) {
    for object in ["Contact", "Account"] {
        sim.remove_field(object, tandem::sync::DESK_ID_FIELD)
            .unwrap();
    }
}

/// Requests that changed data in the org since `from` (the request log index). Tandem's
/// `POST /composite` calls carry queries only, so they are reads.
pub fn writes_since(sim: &salesforce_sim::SimHandle, from: usize) -> Vec<String> {
    sim.requests()[from..]
        .iter()
        .filter(|r| r.method != "GET" && !r.path.contains("oauth2"))
        .filter(|r| !(r.method == "POST" && r.path.ends_with("/composite")))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// A transaction of another process on the app's database, begun as a writer (SQLite's
/// write lock taken at once): what `tandem sync --once` or another replica holds mid-write.
pub async fn other_process_writing(app: &TestApp) -> sea_orm::DatabaseTransaction {
    use sea_orm::TransactionTrait;
    sea_orm::Database::connect(app.database_url.as_str())
        .await
        .unwrap()
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .unwrap()
}

#[test]
fn a_test_database_url_keeps_the_parameters_of_the_server_url() {
    assert_eq!(
        on_database("postgres://u:p@db:5432/postgres?sslmode=require", "t1"),
        "postgres://u:p@db:5432/t1?sslmode=require"
    );
    assert_eq!(
        on_database("postgres://db/postgres?sslrootcert=/etc/ssl/ca.pem", "t1"),
        "postgres://db/t1?sslrootcert=/etc/ssl/ca.pem"
    );
    assert_eq!(
        on_database("postgres://db/postgres", "t1"),
        "postgres://db/t1"
    );
    assert_eq!(database_of("postgres://db/t1?sslmode=require"), "t1");
}
