//! Every root field not meant for all agents is for administrators only. The list of root
//! fields comes from the running schema, so a new admin field is covered the day it is added,
//! and a new field meant for everyone must be named here on purpose.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::helpers::{TestApp, codes, spawn_app};

/// Root fields any signed-in agent may use.
const FOR_EVERY_AGENT: &[&str] = &[
    "me",
    "contact",
    "contacts",
    "account",
    "accounts",
    "ticket",
    "tickets",
    "createContact",
    "updateContact",
    "massUpdateContacts",
    "deleteContact",
    "restoreContact",
    "purgeContact",
    "createAccount",
    "updateAccount",
    "massUpdateAccounts",
    "deleteAccount",
    "restoreAccount",
    "purgeAccount",
    "createTicket",
    "updateTicket",
    "deskChanges",
    // Filtered by the profile's permissions rather than refused.
    "syncEvents",
];

const TYPE_REF: &str = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";

struct Introspected {
    roots: Vec<(&'static str, Vec<Value>)>,
    types: HashMap<String, Value>,
}

async fn introspect(app: &TestApp) -> Introspected {
    let field =
        format!("name args {{ name defaultValue type {{ {TYPE_REF} }} }} type {{ {TYPE_REF} }}");
    let query = format!(
        "{{ __schema {{ queryType {{ fields {{ {field} }} }} mutationType {{ fields {{ {field} }} }} subscriptionType {{ fields {{ {field} }} }} types {{ name kind enumValues {{ name }} inputFields {{ name defaultValue type {{ {TYPE_REF} }} }} }} }} }}"
    );
    let data = app.gql_ok(&query, json!({})).await;
    let schema = &data["__schema"];
    let fields = |root: &str| schema[root]["fields"].as_array().unwrap().clone();
    Introspected {
        roots: vec![
            ("query", fields("queryType")),
            ("mutation", fields("mutationType")),
            ("subscription", fields("subscriptionType")),
        ],
        types: schema["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
            .collect(),
    }
}

impl Introspected {
    /// A literal of this type: the smallest valid value, with required input fields only.
    fn literal(&self, ty: &Value) -> String {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => self.literal(&ty["ofType"]),
            "LIST" => format!("[{}]", self.literal(&ty["ofType"])),
            "ENUM" => self.types[ty["name"].as_str().unwrap()]["enumValues"][0]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
            "INPUT_OBJECT" => {
                let input = &self.types[ty["name"].as_str().unwrap()];
                let fields: Vec<String> = input["inputFields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["type"]["kind"] == "NON_NULL" && f["defaultValue"].is_null())
                    .map(|f| {
                        format!(
                            "{}: {}",
                            f["name"].as_str().unwrap(),
                            self.literal(&f["type"])
                        )
                    })
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }
            _ => match ty["name"].as_str().unwrap() {
                "Int" => "1".into(),
                "Float" => "1.5".into(),
                "Boolean" => "true".into(),
                "DateTime" => "\"2026-01-01T00:00:00Z\"".into(),
                "ID" => "\"1\"".into(),
                _ => "\"x\"".into(),
            },
        }
    }

    /// `kind name(required args) { __typename }` for one root field.
    fn operation(&self, kind: &str, field: &Value) -> String {
        let args: Vec<String> = field["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"]["kind"] == "NON_NULL" && a["defaultValue"].is_null())
            .map(|a| {
                format!(
                    "{}: {}",
                    a["name"].as_str().unwrap(),
                    self.literal(&a["type"])
                )
            })
            .collect();
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        let mut ty = &field["type"];
        while !ty["ofType"].is_null() {
            ty = &ty["ofType"];
        }
        let selection = match ty["kind"].as_str().unwrap() {
            "OBJECT" | "INTERFACE" | "UNION" => " { __typename }",
            _ => "",
        };
        format!(
            "{kind} {{ {}{args}{selection} }}",
            field["name"].as_str().unwrap()
        )
    }
}

#[tokio::test]
async fn every_admin_field_and_mutation_refuses_other_profiles() {
    let app = spawn_app().await;
    let schema = introspect(&app).await;
    let mut checked = 0;
    for (kind, fields) in &schema.roots {
        for field in fields {
            let name = field["name"].as_str().unwrap();
            if FOR_EVERY_AGENT.contains(&name) {
                continue;
            }
            assert_ne!(
                *kind, "subscription",
                "subscription {name} is not for every agent: check its profile rules over WebSocket here"
            );
            let operation = schema.operation(kind, field);
            for profile in ["Agent", "Light Agent"] {
                let body = app.gql_as(profile, &operation, json!({})).await;
                assert_eq!(
                    codes(&body),
                    ["FORBIDDEN"],
                    "{profile} ran `{operation}`: {body}"
                );
                // Null at its own path: whatever else the request asked for stands.
                assert!(
                    body["data"].is_object() && body["data"][name].is_null(),
                    "nothing of {name} reaches {profile}, and only it is null: {body}"
                );
            }
            let as_admin = app.gql(&operation, json!({})).await;
            assert!(
                !codes(&as_admin).contains(&"FORBIDDEN".to_owned())
                    && !codes(&as_admin).contains(&"GRAPHQL_VALIDATION_FAILED".to_owned()),
                "`{operation}` is a valid operation an administrator may run: {as_admin}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 16, "admin fields checked: {checked}");
    let still = app.gql_ok("{ integration { status } }", json!({})).await;
    assert_eq!(
        still["integration"]["status"], "NOT_CONNECTED",
        "nothing an agent tried took effect"
    );
}

#[tokio::test]
async fn fields_for_every_agent_still_exist() {
    let app = spawn_app().await;
    let schema = introspect(&app).await;
    let names: Vec<&str> = schema
        .roots
        .iter()
        .flat_map(|(_, fields)| fields.iter().map(|f| f["name"].as_str().unwrap()))
        .collect();
    for name in FOR_EVERY_AGENT {
        assert!(
            names.contains(name),
            "{name} is listed but not in the schema"
        );
    }
}

#[tokio::test]
async fn an_admin_field_refused_beside_others_leaves_their_answers_standing() {
    let app = spawn_app().await;
    let body = app
        .gql_as(
            "Agent",
            "mutation { createContact(input: { lastName: \"Kept\" }) { id } startSync { firstSync } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
    assert!(body["data"]["startSync"].is_null(), "{body}");
    let id = body["data"]["createContact"]["id"]
        .as_str()
        .expect("the contact made first is answered");
    let listed = app.gql_ok("{ contacts { nodes { id } } }", json!({})).await;
    assert_eq!(listed["contacts"]["nodes"], json!([{ "id": id }]));
}
