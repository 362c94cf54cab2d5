//! The Salesforce client against the simulator: every call, and every fault it must survive.

use std::time::Duration;

use futures_util::TryStreamExt;
use rand::{Rng, SeedableRng};
use salesforce_sim::{SimConfig, SimHandle};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use tandem::domain::SalesforceId;
use tandem::salesforce::soql::{Condition, Ident, Select, quote};
use tandem::salesforce::{ClientConfig, Credentials, SalesforceClient, SalesforceError};

async fn org() -> SimHandle {
    salesforce_sim::start(SimConfig::default()).await
}

fn password(sim: &SimHandle, password: &str) -> Credentials {
    let config = sim.config();
    Credentials::Password {
        username: config.username.clone(),
        password: SecretString::from(password.to_owned()),
        client_id: config.client_id.clone(),
        client_secret: SecretString::from(config.client_secret.clone()),
    }
}

fn client_with(sim: &SimHandle, credentials: Credentials) -> SalesforceClient {
    let mut config = ClientConfig::new(sim.base_url(), credentials);
    config.backoff_base = Duration::from_millis(2);
    SalesforceClient::new(config).unwrap()
}

/// The org's refresh token, with its connected app.
fn refresh_token(sim: &SimHandle) -> Credentials {
    let config = sim.config();
    Credentials::RefreshToken {
        refresh_token: SecretString::from(sim.refresh_token()),
        client_id: config.client_id.clone(),
        client_secret: SecretString::from(config.client_secret.clone()),
    }
}

fn client(sim: &SimHandle) -> SalesforceClient {
    client_with(sim, password(sim, &sim.config().password.clone()))
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// How many requests the simulator saw whose path contains `needle`.
fn requests_to(sim: &SimHandle, needle: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.contains(needle))
        .count()
}

#[tokio::test]
async fn bad_credentials_are_refused_with_the_oauth_error() {
    let sim = org().await;
    let err = client_with(&sim, password(&sim, "wrong"))
        .verify()
        .await
        .unwrap_err();
    match err {
        SalesforceError::AuthFailed { error, description } => {
            assert_eq!(error, "invalid_grant");
            assert_eq!(description, "authentication failure");
        }
        other => panic!("expected AuthFailed, got {other:?}"),
    }
    client(&sim).verify().await.unwrap();
}

#[tokio::test]
async fn refused_credentials_are_not_offered_again_by_the_same_client() {
    let sim = org().await;
    let sf = client_with(&sim, password(&sim, "wrong"));
    for _ in 0..3 {
        let err = sf.verify().await.unwrap_err();
        assert!(matches!(err, SalesforceError::AuthFailed { .. }), "{err:?}");
    }
    // Each refused password counts toward locking the integration user out.
    assert_eq!(requests_to(&sim, "oauth2/token"), 1);
}

#[tokio::test]
async fn a_sign_in_another_process_holds_the_token_for_is_not_taken_for_refused_credentials() {
    let sim = org().await;
    let sf = client(&sim);
    sim.contend_sign_ins(1);
    let err = sf.verify().await.unwrap_err();
    match &err {
        SalesforceError::Api {
            error_code,
            message,
            ..
        } => {
            assert_eq!(error_code, "SIGN_IN_BUSY");
            assert!(message.contains("already being processed"), "{message}");
        }
        other => panic!("expected a passing error, got {other:?}"),
    }
    assert!(err.is_transient(), "{err:?}");
    sf.verify().await.unwrap();
}

#[tokio::test]
async fn records_are_created_read_updated_and_deleted() {
    let sim = org().await;
    let sf = client(&sim);
    // The API's resources, which any user it lets in may read.
    let resources = sf.resources().await.unwrap();
    assert!(resources["sobjects"].is_string(), "{resources}");
    let id = sf
        .create(
            "Contact",
            &fields(
                json!({ "FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com" }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(id.key_prefix(), "003");
    let read = sf
        .get("Contact", &id, Some(&["LastName", "Email"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read["LastName"], "Lovelace");
    assert!(
        read.get("FirstName").is_none(),
        "?fields= limits the answer"
    );

    sf.update("Contact", &id, &fields(json!({ "Title": "Countess" })))
        .await
        .unwrap();
    assert_eq!(
        sim.get("Contact", id.as_str()).unwrap()["Title"],
        "Countess"
    );

    sf.delete("Contact", &id).await.unwrap();
    assert!(sf.get("Contact", &id, None).await.unwrap().is_none());

    let missing = sf
        .create("Contact", &fields(json!({ "FirstName": "No last name" })))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("REQUIRED_FIELD_MISSING"));
}

#[tokio::test]
async fn callers_waiting_on_a_sign_in_that_fails_share_its_failure() {
    let sim = org().await;
    let sf = std::sync::Arc::new(client(&sim));
    // The token endpoint answers slowly, then throttles every sign-in; callers come before
    // the first sign-in is sent, and while it waits.
    let first = sim.hold_next("POST", "/services/oauth2/token");
    let caller = || {
        let sf = sf.clone();
        tokio::spawn(async move { sf.instance_url().await })
    };
    let mut callers = vec![caller(), caller()];
    first.arrived().await;
    callers.extend([caller(), caller()]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    sim.throttle_sign_ins(100);
    first.release();
    for caller in callers {
        let err = caller.await.unwrap().unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
    assert_eq!(
        requests_to(&sim, "/services/oauth2/token"),
        1,
        "one sign-in for the four who waited on it, not one after another"
    );
}

#[tokio::test]
async fn a_sign_in_the_token_endpoint_could_not_make_now_is_asked_for_again() {
    let sim = org().await;
    let sf = client(&sim);
    let id = sf
        .create("Account", &fields(json!({ "Name": "Patient" })))
        .await
        .unwrap();
    sim.expire_tokens();
    sim.throttle_sign_ins(2);
    assert_eq!(
        sf.get("Account", &id, None).await.unwrap().unwrap()["Name"],
        "Patient"
    );
}

#[tokio::test]
async fn an_upsert_is_sent_again_only_once_its_first_attempt_has_ended() {
    let sim = org().await;
    let sf = client(&sim);
    let upsert = |value: &'static str| {
        let sf = &sf;
        async move {
            sf.upsert(
                "Contact",
                "Helpdesk_Id__c",
                value,
                &fields(json!({ "LastName": "Hopper" })),
            )
            .await
        }
    };
    // Turned away before it ran: sent again.
    let before = requests_to(&sim, "Helpdesk_Id__c");
    sim.fail_next(&[503]);
    assert!(upsert("desk/1").await.unwrap().created);
    assert_eq!(requests_to(&sim, "Helpdesk_Id__c") - before, 2);
    // An edge that gave up waiting leaves it running in the org: a second attempt then
    // could make the record beside it.
    for status in [502, 504] {
        let before = requests_to(&sim, "Helpdesk_Id__c");
        sim.fail_next(&[status]);
        let err = upsert("desk/2").await.unwrap_err();
        assert!(err.is_transient(), "{status}: {err:?}");
        assert_eq!(
            requests_to(&sim, "Helpdesk_Id__c") - before,
            1,
            "{status}: not sent again"
        );
    }
}

#[tokio::test]
async fn an_upsert_by_external_id_creates_then_updates() {
    let sim = org().await;
    let sf = client(&sim);
    let first = sf
        .upsert(
            "Contact",
            "Helpdesk_Id__c",
            "desk/42",
            &fields(json!({ "LastName": "Hopper" })),
        )
        .await
        .unwrap();
    assert!(first.created);
    let second = sf
        .upsert(
            "Contact",
            "Helpdesk_Id__c",
            "desk/42",
            &fields(json!({ "LastName": "Hopper", "Title": "RADM" })),
        )
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(first.id, second.id);
    assert_eq!(
        sim.get("Contact", first.id.as_str()).unwrap()["Title"],
        "RADM"
    );
}

#[tokio::test]
async fn an_external_id_another_record_holds_is_refused_as_a_duplicate_until_it_is_purged() {
    let sim = org().await;
    let sf = client(&sim);
    let first = sf
        .create(
            "Contact",
            &fields(json!({ "LastName": "Hopper", "Helpdesk_Id__c": "desk-7" })),
        )
        .await
        .unwrap();
    let results = sf
        .create_many(
            "Contact",
            &[
                fields(json!({ "LastName": "Twin", "Helpdesk_Id__c": "DESK-7" })),
                fields(json!({ "LastName": "Other", "Helpdesk_Id__c": "desk-8" })),
            ],
            false,
        )
        .await
        .unwrap();
    let (code, message, named) = &results[0].errors[0];
    assert_eq!(code, "DUPLICATE_VALUE");
    assert!(message.contains(first.as_str()), "{message}");
    assert_eq!(named, &["Helpdesk_Id__c"]);
    assert!(results[1].success, "{results:?}");
    let other = results[1].id.clone().unwrap();
    // The other record asks for the first one's key.
    let key = fields(json!({ "Helpdesk_Id__c": "desk-7" }));
    let take_the_key = || sf.update("Contact", &other, &key);
    let moved = take_the_key().await.unwrap_err();
    assert_eq!(moved.code(), Some("DUPLICATE_VALUE"));
    // A record in the recycle bin still holds its value, until it is purged.
    sf.delete("Contact", &first).await.unwrap();
    let binned = take_the_key().await.unwrap_err();
    assert_eq!(binned.code(), Some("DUPLICATE_VALUE"));
    assert!(binned.to_string().contains(first.as_str()), "{binned}");
    sim.advance_clock(16 * 24 * 3600);
    take_the_key().await.unwrap();
}

#[tokio::test]
async fn a_query_streams_every_page_and_query_all_sees_the_recycle_bin() {
    let sim = org().await;
    for n in 0..4_100 {
        sim.insert("Contact", json!({ "LastName": format!("Bulk{n:05}") }))
            .unwrap();
    }
    let sf = client(&sim);
    let before = requests_to(&sim, "/query");
    let records: Vec<_> = sf
        .query("SELECT Id, LastName FROM Contact ORDER BY LastName")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records.len(), 4_100);
    assert_eq!(records[4_099]["LastName"], "Bulk04099");
    assert_eq!(
        requests_to(&sim, "/query") - before,
        3,
        "2,000-record pages"
    );

    let gone = SalesforceId::parse(records[0]["Id"].as_str().unwrap()).unwrap();
    sf.delete("Contact", &gone).await.unwrap();
    let soql = format!(
        "SELECT Id, IsDeleted FROM Contact WHERE Id = {}",
        quote(gone.as_str())
    );
    let live: Vec<_> = sf.query(&soql).try_collect().await.unwrap();
    assert!(live.is_empty());
    let all: Vec<_> = sf.query_all(&soql).try_collect().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["IsDeleted"], true);
}

#[tokio::test]
async fn queries_go_five_to_a_composite_call_and_each_keeps_its_own_answer() {
    let sim = org().await;
    for n in 0..2_500 {
        sim.insert("Contact", json!({ "LastName": format!("Bulk{n:05}") }))
            .unwrap();
    }
    sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    let sf = client(&sim);
    let mut soqls: Vec<String> = (0..6)
        .map(|n| format!("SELECT LastName FROM Contact WHERE LastName = 'Bulk{n:05}'"))
        .collect();
    soqls.insert(1, "SELECT Nope FROM Contact".into());
    soqls.push("SELECT Id, LastName FROM Contact ORDER BY LastName".into());
    soqls.push("SELECT Name FROM Account".into());
    let (composite, pages) = (requests_to(&sim, "/composite"), requests_to(&sim, "/query"));

    let answers = sf.queries(&soqls).await;
    assert_eq!(answers.len(), 9);
    for (n, at) in [(0, 0), (1, 2), (5, 6)] {
        let records = answers[at].as_ref().unwrap();
        assert_eq!(records.len(), 1, "{answers:?}");
        assert_eq!(records[0]["LastName"], format!("Bulk{n:05}"), "in order");
    }
    assert_eq!(
        answers[1].as_ref().unwrap_err().code(),
        Some("INVALID_FIELD"),
        "only the bad query fails"
    );
    let all = answers[7].as_ref().unwrap();
    assert_eq!(all.len(), 2_500, "a query's further pages are fetched");
    assert_eq!(all[2_499]["LastName"], "Bulk02499");
    assert_eq!(answers[8].as_ref().unwrap()[0]["Name"], "Acme");
    assert_eq!(
        requests_to(&sim, "/composite") - composite,
        2,
        "nine queries in calls of five"
    );
    assert_eq!(
        requests_to(&sim, "/query") - pages,
        1,
        "one follow-up page of the long query"
    );
}

#[tokio::test]
async fn a_collection_holds_up_to_200_records_and_honours_all_or_none() {
    let sim = org().await;
    let sf = client(&sim);
    let records: Vec<_> = (0..450)
        .map(|n| fields(json!({ "LastName": format!("C{n}") })))
        .collect();
    let before = requests_to(&sim, "composite/sobjects");
    let refused = sf
        .create_many("Contact", &records, false)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("EXCEEDED_ID_LIMIT"), "{refused}");
    assert!(refused.to_string().contains("450 given"), "{refused}");
    assert_eq!(
        requests_to(&sim, "composite/sobjects"),
        before,
        "nothing sent"
    );
    assert_eq!(sim.count("Contact"), 0);

    let mut results = Vec::new();
    for chunk in records.chunks(200) {
        results.extend(sf.create_many("Contact", chunk, false).await.unwrap());
    }
    assert_eq!(requests_to(&sim, "composite/sobjects") - before, 3);
    assert!(results.iter().all(|r| r.success && r.id.is_some()));
    assert_eq!(sim.count("Contact"), 450);

    let mixed = vec![
        fields(json!({ "LastName": "Fine" })),
        fields(json!({ "FirstName": "NoLast" })),
    ];
    let rolled_back = sf.create_many("Contact", &mixed, true).await.unwrap();
    assert!(rolled_back.iter().all(|r| !r.success));
    assert_eq!(
        rolled_back[0].errors[0].0,
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(rolled_back[1].errors[0].0, "REQUIRED_FIELD_MISSING");
    assert_eq!(sim.count("Contact"), 450, "nothing committed");

    let partial = sf.create_many("Contact", &mixed, false).await.unwrap();
    assert!(partial[0].success && !partial[1].success);
    assert_eq!(sim.count("Contact"), 451);

    let ids: Vec<_> = results
        .iter()
        .take(3)
        .map(|r| r.id.clone().unwrap())
        .collect();
    let updates: Vec<_> = ids
        .iter()
        .map(|id| (id.clone(), fields(json!({ "Title": "Bulk" }))))
        .collect();
    assert!(
        sf.update_many("Contact", &updates, true)
            .await
            .unwrap()
            .iter()
            .all(|r| r.success)
    );
    assert_eq!(
        sim.get("Contact", ids[0].as_str()).unwrap()["Title"],
        "Bulk"
    );
    assert!(
        sf.delete_many(&ids, false)
            .await
            .unwrap()
            .iter()
            .all(|r| r.success)
    );
    assert_eq!(sim.count("Contact"), 448);
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_for_concurrent_callers() {
    let sim = org().await;
    let sf = client(&sim);
    let id = sf
        .create("Account", &fields(json!({ "Name": "Acme" })))
        .await
        .unwrap();
    let logins_before = requests_to(&sim, "/services/oauth2/token");
    sim.expire_tokens();
    let reads = (0..8).map(|_| sf.get("Account", &id, None));
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.unwrap().unwrap()["Name"], "Acme");
    }
    assert_eq!(
        requests_to(&sim, "/services/oauth2/token") - logins_before,
        1,
        "one renewal for all"
    );
}

#[tokio::test]
async fn a_direct_access_token_works_until_it_expires() {
    let sim = org().await;
    let sf = client_with(
        &sim,
        Credentials::AccessToken {
            access_token: SecretString::from(sim.access_token()),
            instance_url: sim.base_url().to_owned(),
        },
    );
    sf.limits().await.unwrap();
    sim.expire_tokens();
    assert!(matches!(
        sf.limits().await.unwrap_err(),
        SalesforceError::AuthFailed { .. }
    ));
}

#[tokio::test]
async fn the_refresh_token_grant_signs_in() {
    let sim = org().await;
    let sf = client_with(&sim, refresh_token(&sim));
    sf.limits().await.unwrap();
}

#[tokio::test]
async fn transient_failures_are_retried_only_where_repeating_is_safe() {
    let sim = org().await;
    let sf = client(&sim);
    let id = sf
        .create("Account", &fields(json!({ "Name": "Retry" })))
        .await
        .unwrap();
    sim.fail_next(&[503, 500]);
    assert_eq!(
        sf.get("Account", &id, None).await.unwrap().unwrap()["Name"],
        "Retry"
    );

    let before = requests_to(&sim, "sobjects/Account");
    sim.fail_next(&[503]);
    let err = sf
        .create("Account", &fields(json!({ "Name": "Once" })))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(
        requests_to(&sim, "sobjects/Account") - before,
        1,
        "a create is never repeated"
    );

    sim.fail_next(&[503, 503, 503, 503, 503]);
    assert!(
        sf.get("Account", &id, None)
            .await
            .unwrap_err()
            .is_transient(),
        "retries are bounded"
    );
}

#[tokio::test]
async fn an_exhausted_api_budget_is_reported_as_rate_limited() {
    let sim = org().await;
    let sf = client(&sim);
    sf.limits().await.unwrap();
    let usage = sf.api_usage().unwrap();
    assert!(
        usage.used >= 1 && usage.max == sim.config().daily_api_limit,
        "{usage:?}"
    );
    sim.set_daily_api_limit(usage.used + 1);
    sf.limits().await.unwrap();
    let err = sf.limits().await.unwrap_err();
    assert!(matches!(err, SalesforceError::RateLimited(_)), "{err:?}");
}

#[tokio::test]
async fn describe_is_fetched_once_and_knows_required_fields() {
    let sim = org().await;
    let sf = client(&sim);
    let contact = sf.describe("Contact").await.unwrap();
    sf.describe("contact").await.unwrap();
    assert_eq!(requests_to(&sim, "/describe"), 1);
    assert!(contact.field("LastName").unwrap().required_on_create());
    assert!(!contact.field("Email").unwrap().required_on_create());
    assert!(contact.field("Helpdesk_Id__c").unwrap().external_id);
}

#[tokio::test]
async fn updated_and_deleted_windows_list_changes() {
    let sim = org().await;
    let sf = client(&sim);
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let kept = sf
        .create("Contact", &fields(json!({ "LastName": "Kept" })))
        .await
        .unwrap();
    let dropped = sf
        .create("Contact", &fields(json!({ "LastName": "Dropped" })))
        .await
        .unwrap();
    sf.delete("Contact", &dropped).await.unwrap();
    let end = chrono::Utc::now() + chrono::Duration::minutes(5);
    let updated = sf.updated("Contact", start, end).await.unwrap();
    assert!(updated.ids.contains(&kept));
    let deleted = sf.deleted("Contact", start, end).await.unwrap();
    assert_eq!(
        deleted
            .records
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        vec![dropped]
    );
}

/// Strings a naive builder would break on: quotes, backslashes, controls, wildcards, unicode.
fn nasty(rng: &mut rand::rngs::StdRng) -> String {
    const PIECES: &[&str] = &[
        "'", "\\", "\"", "\n", "\r", "\t", "%", "_", "ü", "漢", "😀", "a", "Z", " ", "\\'", "''",
        "OR", "--",
    ];
    let len = rng.gen_range(1..12);
    (0..len)
        .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
        .collect()
}

#[tokio::test]
async fn the_soql_builder_finds_exactly_the_stored_record_for_any_string() {
    let sim = org().await;
    let sf = client(&sim);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let names: Vec<String> = (0..60).map(|_| nasty(&mut rng)).collect();
    let mut ids = Vec::new();
    for name in &names {
        ids.push(sim.insert("Contact", json!({ "LastName": name })).unwrap());
    }
    let last_name = Ident::parse("LastName").unwrap();
    for (name, id) in names.iter().zip(&ids) {
        let soql = Select::new("Contact", &["Id", "LastName"])
            .unwrap()
            .filter(Condition::eq(&last_name, name.as_str()))
            .build();
        let found: Vec<_> = sf.query(&soql).try_collect().await.unwrap();
        let expected: Vec<&String> = ids
            .iter()
            .zip(&names)
            .filter(|(_, n)| n.to_lowercase() == name.to_lowercase())
            .map(|(i, _)| i)
            .collect();
        let found_ids: Vec<&str> = found.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        assert!(
            found_ids.contains(&id.as_str()),
            "{name:?} not found by {soql}"
        );
        assert_eq!(
            found_ids.len(),
            expected.len(),
            "{name:?} matched more than itself: {soql}"
        );

        let like = Select::new("Contact", &["Id"])
            .unwrap()
            .filter(Condition::contains(&last_name, name))
            .build();
        let matched: Vec<_> = sf.query(&like).try_collect().await.unwrap();
        let expected_like = names
            .iter()
            .filter(|n| n.to_lowercase().contains(&name.to_lowercase()))
            .count();
        assert_eq!(matched.len(), expected_like, "LIKE {name:?}: {like}");
    }
}

#[tokio::test]
async fn a_dropped_connection_is_retried_only_where_repeating_is_safe() {
    let sim = org().await;
    let sf = client(&sim);
    let id = sf
        .create("Account", &fields(json!({ "Name": "Dropped" })))
        .await
        .unwrap();
    sim.drop_next(2);
    assert_eq!(
        sf.get("Account", &id, None).await.unwrap().unwrap()["Name"],
        "Dropped"
    );

    let before = requests_to(&sim, "sobjects/Account");
    sim.drop_next(1);
    let err = sf
        .create("Account", &fields(json!({ "Name": "Maybe" })))
        .await
        .unwrap_err();
    assert!(matches!(err, SalesforceError::Transport(_)), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(
        requests_to(&sim, "sobjects/Account") - before,
        1,
        "a create is never repeated"
    );
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried_within_bounds() {
    let sim = org().await;
    let mut config = ClientConfig::new(sim.base_url(), password(&sim, "tandem"));
    config.timeout = Duration::from_millis(150);
    config.backoff_base = Duration::from_millis(2);
    let sf = SalesforceClient::new(config).unwrap();
    sf.verify().await.unwrap();
    let before = sf.calls_made();
    sim.set_latency(Duration::from_millis(400));
    let err = sf.limits().await.unwrap_err();
    assert!(matches!(err, SalesforceError::Transport(_)), "{err:?}");
    assert_eq!(
        sf.calls_made() - before,
        4,
        "tried again, up to the bound of four attempts"
    );
    sim.set_latency(Duration::ZERO);
    sf.limits().await.unwrap();
}

#[tokio::test]
async fn queries_and_collections_are_given_the_time_salesforce_may_take() {
    let sim = org().await;
    sim.insert("Account", json!({ "Name": "Acme" })).unwrap();
    let mut config = ClientConfig::new(sim.base_url(), password(&sim, "tandem"));
    config.timeout = Duration::from_millis(150);
    config.slow_timeout = Duration::from_secs(5);
    config.max_attempts = 1;
    let sf = SalesforceClient::new(config).unwrap();
    sf.verify().await.unwrap();
    sim.set_latency(Duration::from_millis(400));

    let err = sf.limits().await.unwrap_err();
    assert!(matches!(err, SalesforceError::Transport(_)), "{err:?}");
    let found: Vec<_> = sf
        .query("SELECT Id, Name FROM Account")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let answers = sf.queries(&["SELECT Id FROM Account".to_owned()]).await;
    assert_eq!(answers[0].as_ref().unwrap().len(), 1);
    let made = sf
        .create_many("Account", &[fields(json!({ "Name": "Globex" }))], false)
        .await
        .unwrap();
    assert!(made[0].success, "{made:?}");
    assert_eq!(
        requests_to(&sim, "composite/sobjects"),
        1,
        "a slow create is waited for, never sent again"
    );
}

#[tokio::test]
async fn creates_and_upserts_are_waited_for_as_long_as_salesforce_may_run_them() {
    let sim = org().await;
    let mut config = ClientConfig::new(sim.base_url(), password(&sim, "tandem"));
    config.timeout = Duration::from_millis(150);
    config.slow_timeout = Duration::from_millis(200);
    config.max_attempts = 1;
    let sf = SalesforceClient::new(config).unwrap();
    sf.verify().await.unwrap();
    sim.set_latency(Duration::from_millis(400));

    // A query may be sent again, so it is cut off; a create cut off might still be made.
    let err = sf.queries(&["SELECT Id FROM Account".to_owned()]).await;
    assert!(
        matches!(err[0], Err(SalesforceError::Transport(_))),
        "{err:?}"
    );
    let made = sf
        .create_many("Account", &[fields(json!({ "Name": "Initech" }))], false)
        .await
        .unwrap();
    assert!(made[0].success, "{made:?}");
    // An upsert may create too: an attempt sent while the first still ran would not see it.
    let upserted = sf
        .upsert_many(
            "Account",
            "Helpdesk_Id__c",
            &[fields(json!({ "Name": "Umbrella", "Helpdesk_Id__c": "7" }))],
            false,
        )
        .await
        .unwrap();
    assert!(upserted[0].success, "{upserted:?}");
}

#[tokio::test]
async fn a_sign_in_its_caller_gave_up_on_still_keeps_the_token_salesforce_rotated_in() {
    let sim = salesforce_sim::start(SimConfig {
        rotate_refresh_tokens: true,
        ..SimConfig::default()
    })
    .await;
    let sf = client_with(&sim, refresh_token(&sim));
    sf.limits().await.unwrap();
    // The session expires; the renewal reaches Salesforce, which rotates the refresh token,
    // but its answer comes after the caller (a panel out of patience, say) has given up.
    sim.expire_tokens();
    let answer = sim.hold_answer_next("POST", "oauth2/token");
    let gave_up = tokio::time::timeout(Duration::from_millis(300), sf.limits()).await;
    assert!(gave_up.is_err(), "the caller gave up");
    answer.release();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sf.limits()
        .await
        .expect("the next call uses the session and token that sign-in brought");
}

#[tokio::test]
async fn a_call_cut_off_past_the_retry_budget_is_not_sent_again() {
    let sim = org().await;
    let mut config = ClientConfig::new(sim.base_url(), password(&sim, "tandem"));
    config.timeout = Duration::from_millis(300);
    config.retry_budget = Duration::from_millis(100);
    config.backoff_base = Duration::from_millis(2);
    let sf = SalesforceClient::new(config).unwrap();
    sf.limits().await.unwrap();
    let before = sf.calls_made();
    sim.set_latency(Duration::from_secs(1));
    let err = sf.limits().await.unwrap_err();
    assert!(matches!(err, SalesforceError::Transport(_)), "{err:?}");
    assert_eq!(sf.calls_made() - before, 1, "sent once");
}

#[tokio::test]
async fn a_401_that_is_no_expired_session_does_not_sign_in_again() {
    let sim = org().await;
    let sf = client(&sim);
    sf.limits().await.unwrap();
    let sign_ins = requests_to(&sim, "oauth2/token");
    // Not Salesforce's INVALID_SESSION_ID: a page from something between here and there.
    sim.fail_next(&[401]);
    let err = sf.limits().await.unwrap_err();
    assert!(
        matches!(err, SalesforceError::Api { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(requests_to(&sim, "oauth2/token"), sign_ins);
    // An expired session is renewed, as ever.
    sim.expire_tokens();
    sf.limits().await.unwrap();
    assert_eq!(requests_to(&sim, "oauth2/token"), sign_ins + 1);
}
