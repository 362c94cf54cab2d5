//! A stateful fake Salesforce org that speaks the REST API over HTTP, for tests and demos.
#![recursion_limit = "256"]

mod config;
mod error;
mod faults;
mod identity;
mod ids;
mod jwt;
mod oauth;
mod objects;
mod record;
mod rest;
mod schema;
mod seed;
mod server;
mod soql;
mod state;
mod store;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use serde_json::Value as Json;
use tokio::task::JoinHandle;

pub use config::SimConfig;
pub use error::ApiError;
pub use faults::Gate;
use faults::Hold;
pub use state::LoggedRequest;

use record::{Write, parse_body, render};
use schema::Schema;
use state::{Sim, lock};
use store::Store;

const MAX_BODY: usize = 32 * 1024 * 1024;

/// A running simulator; dropping it leaves the server running until the runtime ends.
pub struct SimHandle {
    sim: Arc<Sim>,
    server: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

/// Binds 127.0.0.1 on `config.port` (0 for any), seeds the org and starts serving.
pub async fn start(config: SimConfig) -> SimHandle {
    let listener =
        TcpListener::bind(("127.0.0.1", config.port)).expect("the simulator needs a loopback port");
    let port = listener
        .local_addr()
        .expect("a bound listener has an address")
        .port();
    let mut store = Store::new();
    seed::integration_user(&mut store, &config);
    seed::generate(&mut store, config.seed, config.records);
    let sim = Arc::new(Sim::new(config, format!("http://127.0.0.1:{port}"), store));
    let data = web::Data::new(sim.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .default_service(web::to(server::dispatch))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .expect("actix accepts a bound listener")
    .run();
    let handle = server.handle();
    SimHandle {
        sim,
        server: handle,
        task: tokio::spawn(server),
    }
}

impl SimHandle {
    pub fn base_url(&self) -> &str {
        &self.sim.base_url
    }

    /// The port it listens on: another simulator started on it takes its address.
    pub fn port(&self) -> u16 {
        self.sim
            .base_url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_default()
    }

    pub fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.sim.base_url)
    }

    pub fn config(&self) -> &SimConfig {
        &self.sim.config
    }

    /// Every request seen (the most recent 10,000).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.sim.log).iter().cloned().collect()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.sim.log).len()
    }

    /// REST calls counted against the daily API budget.
    pub fn api_usage(&self) -> u64 {
        lock(&self.sim.faults).api_used
    }

    /// A fresh access token, as if the integration user had logged in.
    pub fn access_token(&self) -> String {
        let now = lock(&self.sim.store).clock.now();
        lock(&self.sim.sessions).issue_access(now)
    }

    /// A refresh token usable with the `refresh_token` grant.
    pub fn refresh_token(&self) -> String {
        lock(&self.sim.sessions).issue_refresh()
    }

    /// Access tokens issued and not revoked (one past its lifetime counts until it is next
    /// offered).
    pub fn live_access_tokens(&self) -> usize {
        lock(&self.sim.sessions).live_access()
    }

    /// Refresh tokens the `refresh_token` grant would honour.
    pub fn live_refresh_tokens(&self) -> usize {
        lock(&self.sim.sessions).live_refresh()
    }

    /// Whether `token` is a refresh token the `refresh_token` grant would honour.
    pub fn honours_refresh_token(&self, token: &str) -> bool {
        lock(&self.sim.sessions).honours_refresh(token)
    }

    pub fn expire_tokens(&self) {
        lock(&self.sim.sessions).expire_all();
    }

    pub fn set_token_ttl(&self, secs: Option<i64>) {
        lock(&self.sim.faults).token_ttl_secs = secs;
    }

    pub fn expire_tokens_after_requests(&self, requests: Option<u64>) {
        lock(&self.sim.faults).token_max_requests = requests;
    }

    pub fn set_daily_api_limit(&self, limit: u64) {
        lock(&self.sim.faults).daily_limit = limit;
    }

    pub fn set_api_usage(&self, used: u64) {
        lock(&self.sim.faults).api_used = used;
    }

    /// Answers this fraction of REST calls with 500 or 503, drawn from the seeded generator.
    pub fn set_error_rate(&self, rate: f64) {
        lock(&self.sim.faults).error_rate = rate;
    }

    /// Cuts the connection of this fraction of REST calls mid-answer (seeded, like errors).
    pub fn set_drop_rate(&self, rate: f64) {
        lock(&self.sim.faults).drop_rate = rate;
    }

    /// Turns away the next `n` sign-ins at the token endpoint with 429 and an HTML page, as
    /// an edge throttling them does.
    pub fn throttle_sign_ins(&self, n: u32) {
        lock(&self.sim.faults).throttled_sign_ins += n;
    }

    /// Answers the next `n` sign-ins at the token endpoint as Salesforce answers one that
    /// sends a refresh token another sign-in is using at that moment: 400 `invalid_grant`,
    /// "token request is already being processed".
    pub fn contend_sign_ins(&self, n: u32) {
        lock(&self.sim.faults).contended_sign_ins += n;
    }

    /// Cuts the connection of the next `n` REST calls mid-answer.
    pub fn drop_next(&self, n: u32) {
        lock(&self.sim.faults).drops += n;
    }

    /// Carries out the next `n` REST calls, then cuts their connection before the answer is
    /// complete: the writes are made, and the client cannot know it.
    pub fn lose_next_answers(&self, n: u32) {
        lock(&self.sim.faults).lost_answers += n;
    }

    /// Carries out this fraction of REST calls and then cuts their connection before the
    /// answer is complete (seeded, like errors).
    pub fn set_lost_answer_rate(&self, rate: f64) {
        lock(&self.sim.faults).lost_answer_rate = rate;
    }

    /// Makes an external-id field (`Helpdesk_Id__c`) a plain field, as in an org whose admin
    /// created it without ticking "External ID": describe says `externalId: false`, and an
    /// upsert by it is refused with 404 `NOT_FOUND`.
    pub fn make_plain_field(&self, sobject: &str, field: &str) -> Result<(), ApiError> {
        let (obj, index) = custom_field(sobject, field)?;
        lock(&self.sim.store).make_plain(obj, index);
        Ok(())
    }

    /// Gives a custom text field (`Helpdesk_Id__c`) another length, as in an org whose admin
    /// created it shorter: describe says so, and longer values are refused with
    /// `STRING_TOO_LONG`.
    pub fn resize_field(&self, sobject: &str, field: &str, length: u32) -> Result<(), ApiError> {
        let (obj, index) = custom_field(sobject, field)?;
        lock(&self.sim.store).resize(obj, index, length);
        Ok(())
    }

    /// Lets several records share an external-id field's value (`Helpdesk_Id__c`), as in an
    /// org whose admin did not tick "Unique": describe says `unique: false`, and an upsert by
    /// a value several records hold answers 300 with their URLs.
    pub fn share_field(&self, sobject: &str, field: &str) -> Result<(), ApiError> {
        let (obj, index) = custom_field(sobject, field)?;
        lock(&self.sim.store).share(obj, index);
        Ok(())
    }

    /// Removes a custom field (`Helpdesk_Id__c`) from the org, as in one whose admin never
    /// created it: describe leaves it out, and writes and queries naming it are refused with
    /// `INVALID_FIELD`.
    pub fn remove_field(&self, sobject: &str, field: &str) -> Result<(), ApiError> {
        let (obj, index) = custom_field(sobject, field)?;
        lock(&self.sim.store).remove_field(obj, index);
        Ok(())
    }

    /// Hides a field, standard or custom, from the integration user, as field-level security
    /// may: describe leaves it out, and queries and writes naming it are refused with
    /// `INVALID_FIELD`, as for a field the org does not have.
    pub fn hide_field(&self, sobject: &str, field: &str) -> Result<(), ApiError> {
        let obj = rest_object(sobject)?;
        let index = Schema::get()
            .object(obj)
            .field_index(field)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{field}' on entity '{sobject}'"),
                )
            })?;
        lock(&self.sim.store).remove_field(obj, index);
        Ok(())
    }

    /// Restricts a picklist, standard or custom, to its values, as an admin may: describe says
    /// `restrictedPicklist: true`, and a write of any other value is refused with
    /// `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`.
    pub fn restrict_picklist(&self, sobject: &str, field: &str) -> Result<(), ApiError> {
        let obj = rest_object(sobject)?;
        let index = Schema::get()
            .object(obj)
            .field_index(field)
            .filter(|&i| Schema::get().object(obj).fields[i].kind == schema::Kind::Picklist)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_FIELD",
                    format!("No picklist '{field}' on entity '{sobject}'"),
                )
            })?;
        lock(&self.sim.store).restrict(obj, index);
        Ok(())
    }

    /// Makes a custom field required, as an admin may: describe says it is not nillable,
    /// and a create without it is refused with `REQUIRED_FIELD_MISSING`.
    pub fn require_field(&self, sobject: &str, field: &str) -> Result<(), ApiError> {
        let (obj, index) = custom_field(sobject, field)?;
        lock(&self.sim.store).require(obj, index);
        Ok(())
    }

    /// Makes a custom field read-only for the integration user, as field-level security may:
    /// describe says it is neither createable nor updateable, and a write naming it is
    /// refused with `INVALID_FIELD_FOR_INSERT_UPDATE`.
    pub fn make_read_only_field(&self, sobject: &str, field: &str) -> Result<(), ApiError> {
        let (obj, index) = custom_field(sobject, field)?;
        lock(&self.sim.store).make_read_only(obj, index);
        Ok(())
    }

    /// Creates a custom field removed with `remove_field`, as an admin adding it to the org
    /// after the integration connected.
    pub fn create_field(&self, sobject: &str, field: &str) -> Result<(), ApiError> {
        let (obj, index) = custom_field(sobject, field)?;
        lock(&self.sim.store).add_field(obj, index);
        Ok(())
    }

    /// Turns the org's REST API off (or on again) for the integration user, as an edition
    /// without it or a profile without "API Enabled" has it: sign-ins still work, and every
    /// REST call is refused with 403 `API_DISABLED_FOR_ORG`.
    pub fn disable_api(&self, disabled: bool) {
        lock(&self.sim.faults).api_disabled = disabled;
    }

    /// Gives sessions without the `api` OAuth scope (or with it again), as a connected app
    /// not granted "Manage user data via APIs" does: sign-ins still work, and every REST
    /// call is refused with 401 `INVALID_SESSION_ID`, "This session is not valid for use
    /// with the REST API".
    pub fn withhold_api_scope(&self, withheld: bool) {
        lock(&self.sim.faults).api_scope_withheld = withheld;
    }

    /// The org moves to another instance (its My Domain renamed, a migration): sign-ins from
    /// now on name `url` as the instance URL. Calls there reach this simulator only when
    /// `url` is another name for its address (`localhost` for `127.0.0.1`).
    pub fn move_instance(&self, url: &str) {
        lock(&self.sim.faults).instance_url = Some(url.trim_end_matches('/').to_owned());
    }

    /// The next REST calls fail with these statuses (500, 503, 400 row lock, 403 limit), in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        lock(&self.sim.faults).queued.extend(statuses);
    }

    /// The next records written through sObject Collections are refused, one per entry, with
    /// this error code and message; the other records of the call are saved.
    pub fn reject_next_records(&self, errors: &[(&'static str, &str)]) {
        lock(&self.sim.faults).rejections.extend(
            errors
                .iter()
                .map(|(code, message)| ApiError::bad_request(code, *message)),
        );
    }

    /// Stops the next request with this method whose path, or one of whose decoded query
    /// parameters (`q=SELECT …`), contains `path_contains`, before it is answered: the client
    /// waits while the test acts, until `Gate::release`.
    pub fn hold_next(&self, method: &str, path_contains: &str) -> Gate {
        self.hold(method, path_contains, false)
    }

    /// Like [`SimHandle::hold_next`], but the request is carried out first and only its
    /// answer waits: the org has changed, and the client does not know it yet.
    pub fn hold_answer_next(&self, method: &str, path_contains: &str) -> Gate {
        self.hold(method, path_contains, true)
    }

    fn hold(&self, method: &str, path_contains: &str, answered: bool) -> Gate {
        let gate = Gate::new();
        lock(&self.sim.faults).holds.push(Hold {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            answered,
            gate: gate.clone(),
        });
        gate
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.sim.faults).latency = latency;
    }

    /// Moves the org clock forward (timestamps and token ages).
    pub fn advance_clock(&self, secs: i64) {
        lock(&self.sim.store).clock.advance(secs);
    }

    /// Creates a record through the same validation as the REST API, as a person makes it in
    /// Salesforce's own UI (`CreatedById` and `LastModifiedById` name them, not the
    /// integration user); returns its 18-character id.
    pub fn insert(&self, sobject: &str, fields: Json) -> Result<String, ApiError> {
        self.insert_with(sobject, fields, |store, obj, changes| {
            let row = store.create(obj, changes)?;
            store.made_by_a_person(obj, row);
            Ok(row)
        })
    }

    /// Creates a record as the integration user's own call makes it: a create the sync sent
    /// that Salesforce commits only now, say.
    pub fn insert_as_the_integration_user(
        &self,
        sobject: &str,
        fields: Json,
    ) -> Result<String, ApiError> {
        self.insert_with(sobject, fields, |store, obj, changes| {
            store.create(obj, changes)
        })
    }

    /// Creates a record stamped `secs` before the org's clock: a transaction that began then
    /// and commits only now, which a reader following `SystemModstamp` may already be past.
    pub fn insert_committed_late(
        &self,
        sobject: &str,
        fields: Json,
        secs: i64,
    ) -> Result<String, ApiError> {
        self.insert_with(sobject, fields, |store, obj, changes| {
            let at = store.clock.now() - secs;
            let row = store.insert_at(obj, at, changes);
            store.made_by_a_person(obj, row);
            Ok(row)
        })
    }

    fn insert_with(
        &self,
        sobject: &str,
        fields: Json,
        insert: impl FnOnce(&mut Store, schema::ObjIdx, Vec<store::Change>) -> Result<usize, ApiError>,
    ) -> Result<String, ApiError> {
        let obj = rest_object(sobject)?;
        let Json::Object(map) = fields else {
            return Err(ApiError::bad_request(
                "JSON_PARSER_ERROR",
                "fields must be an object",
            ));
        };
        let mut store = lock(&self.sim.store);
        let changes = parse_body(&store, obj, &map, Write::Create)?;
        let row = insert(&mut store, obj, changes)?;
        Ok(Store::id_of(obj, row))
    }

    /// Invites a user to an event, as Salesforce does: the event is copied onto the invitee's
    /// calendar as a child event (`IsChild`), with its subject, times, who and what.
    pub fn invite(&self, event: &str) -> Result<String, ApiError> {
        let obj = rest_object("Event")?;
        let mut store = lock(&self.sim.store);
        let Some(row) = store.locate(obj, event) else {
            return Err(ApiError::bad_request(
                "INVALID_CROSS_REFERENCE_KEY",
                "no such event",
            ));
        };
        let object = Schema::get().object(obj);
        let child = object.field_index("IsChild").expect("events have IsChild");
        let mut changes: Vec<store::Change> = store
            .record(obj, row)
            .values()
            .filter(|(field, _)| *field != child)
            .map(|(field, value)| (field, value.clone()))
            .collect();
        changes.push((child, store::Value::Bool(true)));
        let copy = store.create(obj, changes)?;
        store.made_by_a_person(obj, copy);
        Ok(Store::id_of(obj, copy))
    }

    /// Updates a record as a person does in Salesforce's own UI: `LastModifiedById` names
    /// them, not the integration user.
    pub fn update(&self, sobject: &str, id: &str, fields: Json) -> Result<(), ApiError> {
        self.update_with(sobject, id, fields, Store::update)
    }

    /// Updates a record as a second save within the second of its last one: Salesforce
    /// stamps to the second, so the record keeps the `SystemModstamp` it had.
    pub fn update_within_the_same_second(
        &self,
        sobject: &str,
        id: &str,
        fields: Json,
    ) -> Result<(), ApiError> {
        self.update_with(sobject, id, fields, |store, obj, row, changes| {
            let at = store.live(obj, row)?.modstamp;
            store.update_at(obj, row, changes, at)
        })
    }

    fn update_with(
        &self,
        sobject: &str,
        id: &str,
        fields: Json,
        update: impl FnOnce(
            &mut Store,
            schema::ObjIdx,
            usize,
            Vec<store::Change>,
        ) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let obj = rest_object(sobject)?;
        let Json::Object(map) = fields else {
            return Err(ApiError::bad_request(
                "JSON_PARSER_ERROR",
                "fields must be an object",
            ));
        };
        let mut store = lock(&self.sim.store);
        let row = store.locate(obj, id).ok_or_else(ApiError::not_found)?;
        let changes = parse_body(&store, obj, &map, Write::Update)?;
        update(&mut store, obj, row, changes)?;
        // An edit made here stands for one a person makes in Salesforce.
        store.saved_by_a_person(obj, row);
        Ok(())
    }

    /// Moves a record's `SystemModstamp` on without anyone saving it, as a roll-up summary
    /// recalculated or other automation does: `LastModifiedDate` and the fields stay.
    pub fn touch_by_the_system(&self, sobject: &str, id: &str) -> Result<(), ApiError> {
        let obj = rest_object(sobject)?;
        let mut store = lock(&self.sim.store);
        let row = store.locate(obj, id).ok_or_else(ApiError::not_found)?;
        store.touch_by_the_system(obj, row)
    }

    /// Merges `loser` into `master` as a person does in Salesforce: the master is saved, and
    /// the loser goes to the recycle bin naming it in `MasterRecordId`.
    pub fn merge(&self, sobject: &str, master: &str, loser: &str) -> Result<(), ApiError> {
        let obj = rest_object(sobject)?;
        let mut store = lock(&self.sim.store);
        let kept = store.locate(obj, master).ok_or_else(ApiError::not_found)?;
        let gone = store.locate(obj, loser).ok_or_else(ApiError::not_found)?;
        let field = Schema::get()
            .object(obj)
            .field_index("MasterRecordId")
            .ok_or_else(|| {
                ApiError::bad_request("INVALID_TYPE", "records of this type do not merge")
            })?;
        let master_ref = store::Value::Ref(obj as u8, kept as u32 + 1);
        let at = store.live(obj, gone)?.modstamp;
        store.update_at(obj, gone, vec![(field, master_ref)], at)?;
        store.delete(obj, gone)?;
        store.update(obj, kept, Vec::new())?;
        store.saved_by_a_person(obj, kept);
        Ok(())
    }

    pub fn delete(&self, sobject: &str, id: &str) -> Result<(), ApiError> {
        let obj = rest_object(sobject)?;
        let mut store = lock(&self.sim.store);
        let row = store.locate(obj, id).ok_or_else(ApiError::not_found)?;
        store.delete(obj, row)
    }

    /// The record with all fields (including recycled ones), or `None`.
    pub fn get(&self, sobject: &str, id: &str) -> Option<Json> {
        let obj = rest_object(sobject).ok()?;
        let store = lock(&self.sim.store);
        let row = store.locate(obj, id)?;
        Some(render(&store, obj, row, None, "62.0"))
    }

    /// Live (not recycled) records of a type.
    pub fn count(&self, sobject: &str) -> usize {
        rest_object(sobject).map_or(0, |obj| {
            lock(&self.sim.store)
                .table(obj)
                .iter()
                .filter(|r| r.deleted.is_none())
                .count()
        })
    }

    /// Live (not recycled) records of a type, with all fields.
    pub fn records(&self, sobject: &str) -> Vec<Json> {
        let Ok(obj) = rest_object(sobject) else {
            return Vec::new();
        };
        let store = lock(&self.sim.store);
        (0..store.table(obj).len())
            .filter(|row| store.table(obj)[*row].deleted.is_none())
            .map(|row| render(&store, obj, row, None, "62.0"))
            .collect()
    }

    /// Stops accepting connections and waits for the server to finish.
    pub async fn stop(self) {
        self.server.stop(true).await;
        let _ = self.task.await;
    }

    /// Serves until the process is killed.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }
}

fn rest_object(sobject: &str) -> Result<schema::ObjIdx, ApiError> {
    rest::sobject(sobject)
}

/// The object and position of one of an object's custom fields (`…__c`).
fn custom_field(sobject: &str, field: &str) -> Result<(schema::ObjIdx, usize), ApiError> {
    let obj = rest_object(sobject)?;
    let index = Schema::get()
        .object(obj)
        .field_index(field)
        .filter(|_| field.ends_with("__c"))
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_FIELD",
                format!("No custom field '{field}' on entity '{sobject}'"),
            )
        })?;
    Ok((obj, index))
}
