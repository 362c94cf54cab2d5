//! The Salesforce panels beside desk contacts and accounts, and the profile permissions that
//! guard them, whichever way a query reaches them.

use salesforce_sim::{SimConfig, SimHandle};
use serde_json::{Value, json};

use crate::helpers::{TestApp, codes, spawn_app};
use crate::integration::connect;

/// A desk with one contact (and its account) linked to the org, and one contact that is not.
async fn linked() -> (TestApp, SimHandle, String) {
    let app = spawn_app().await;
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

const PANELS: &str = "{ contacts(first: 10) { nodes { lastName salesforce { id viewInSalesforceUrl fetchedAt stale fields account { id fields } } } } }";

fn by_name<'a>(data: &'a Value, last: &str) -> &'a Value {
    data["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["lastName"] == last)
        .unwrap()
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
        .client
        .post(app.graphql_url())
        .bearer_auth(app.token("Information Off"))
        .json(&json!([{ "query": queries[0] }, { "query": queries[3] }]))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    for body in batch.as_array().unwrap() {
        assert!(!body["data"].to_string().contains("Paneled"), "{body}");
        assert!(codes(body).iter().all(|c| c == "FORBIDDEN"), "{body}");
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
        assert!(
            codes(&body).iter().all(|c| c == "FORBIDDEN"),
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
