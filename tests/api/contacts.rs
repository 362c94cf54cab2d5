use serde_json::{Value, json};

use crate::helpers::{codes, spawn_app};

const CONTACT_FIELDS: &str =
    "id firstName lastName name email phone title deletedAt account { id name }";

#[tokio::test]
async fn a_created_contact_can_be_read_back() {
    let app = spawn_app().await;
    let account = app.create_account("Zylker").await;
    let created = app
        .create_contact(json!({
            "firstName": " Ada ",
            "lastName": "Lovelace",
            "email": "Ada@Example.com",
            "accountId": account["id"],
        }))
        .await;
    assert_eq!(created["firstName"], "Ada", "names are trimmed");
    assert_eq!(created["account"]["name"], "Zylker");

    let data = app
        .gql_ok(
            &format!("query($id: ID!) {{ contact(id: $id) {{ {CONTACT_FIELDS} }} }}"),
            json!({ "id": created["id"] }),
        )
        .await;
    assert_eq!(data["contact"]["name"], "Ada Lovelace");
    assert_eq!(data["contact"]["email"], "Ada@Example.com");
    assert_eq!(data["contact"]["deletedAt"], json!(null));
}

#[tokio::test]
async fn invalid_input_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "lastName": "X", "email": "not-an-email" }), "email"),
        (json!({ "lastName": "   " }), "lastName"),
        (
            json!({ "lastName": "X", "firstName": "a".repeat(41) }),
            "firstName",
        ),
        (json!({ "lastName": "X", "accountId": "999" }), "accountId"),
        (json!({ "lastName": "X", "accountId": "abc" }), "accountId"),
        // What Salesforce could not take is refused here, not by the sync later.
        (
            json!({ "lastName": "X", "email": format!("{}@example.com", "a".repeat(69)) }),
            "email",
        ),
        (json!({ "lastName": "nul\u{0}byte" }), "lastName"),
        // Nothing a reader could see: a zero-width space, a byte-order mark.
        (json!({ "lastName": "\u{200B}" }), "lastName"),
        (json!({ "lastName": "\u{FEFF} " }), "lastName"),
        // Marks that only set the direction of text, and the blank Braille pattern.
        (json!({ "lastName": "\u{2066}\u{2069}" }), "lastName"),
        (json!({ "lastName": "\u{202E}" }), "lastName"),
        (json!({ "lastName": "\u{2800}" }), "lastName"),
    ];
    for (input, field) in cases {
        let body = app
            .gql(
                "mutation($i: CreateContactInput!) { createContact(input: $i) { id } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{input}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    let listed = app
        .gql_ok("{ contacts { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(
        listed["contacts"]["edges"].as_array().unwrap().len(),
        0,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_timestamp_that_does_not_parse_is_the_clients_to_fix() {
    let app = spawn_app().await;
    for (query, variables) in [
        (
            r#"{ contacts(filter: { updatedSince: "yesterday" }) { nodes { id } } }"#,
            json!({}),
        ),
        (
            "query($t: DateTime) { contacts(filter: { updatedSince: $t }) { nodes { id } } }",
            json!({ "t": "2026-13-45" }),
        ),
    ] {
        let body = app.gql(query, variables).await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("DateTime"),
            "the message says what did not parse: {body}"
        );
    }
}

#[tokio::test]
async fn a_time_past_the_years_stored_is_refused_not_searched() {
    let app = spawn_app().await;
    app.create_contact(json!({ "lastName": "Kept" })).await;
    for list in ["contacts", "accounts", "tickets"] {
        for far in ["+10000-01-01T00:00:00Z", "-5000-01-01T00:00:00Z"] {
            let body = app
                .gql(
                    &format!(
                        "query($t: DateTime) {{ {list}(filter: {{ updatedSince: $t }}) {{ totalCount }} }}"
                    ),
                    json!({ "t": far }),
                )
                .await;
            // Five-digit years sort before every stored time as text: a filter that should
            // find nothing found everything on SQLite, and PostgreSQL failed on the other.
            assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{list} {far}: {body}");
            let error = &body["errors"][0];
            assert_eq!(error["extensions"]["field"], "filter.updatedSince");
            assert!(
                error["message"].as_str().unwrap().contains("1 to 9999"),
                "{body}"
            );
        }
    }
    let body = app
        .gql(
            "query($t: DateTime) { syncHistory(since: $t) { totalCount } }",
            json!({ "t": "+10000-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "since");
    // The edges of the range are times like any other.
    let body = app
        .gql_ok(
            "query($t: DateTime) { contacts(filter: { updatedSince: $t }) { totalCount } }",
            json!({ "t": "0001-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(body["contacts"]["totalCount"], 1);
}

#[tokio::test]
async fn a_non_null_root_field_that_fails_takes_the_whole_data_with_it() {
    let app = spawn_app().await;
    // `contacts` is non-null: failing, it cannot answer null beside `me`.
    let body = app
        .gql(
            r#"{ me { agentId } contacts(filter: { updatedSince: "yesterday" }) { nodes { id } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    // A nullable one does answer null beside the rest.
    let body = app
        .gql(
            r#"{ me { agentId } contact(id: "not-a-number") { id } }"#,
            json!({}),
        )
        .await;
    assert!(body["data"]["me"]["agentId"].is_string(), "{body}");
    assert_eq!(body["data"]["contact"], Value::Null, "{body}");
}

#[tokio::test]
async fn a_nested_non_null_field_that_fails_takes_its_nearest_nullable_parent_with_it() {
    let app = spawn_app().await;
    let account = app.create_account("Nested Ltd").await;
    let contact = app
        .create_contact(json!({ "lastName": "Nested", "accountId": account["id"] }))
        .await;
    app.gql_ok(
        "mutation($c: ID!, $a: ID!) { createTicket(input: { subject: \"Nested\", contactId: $c, accountId: $a }) { id } }",
        json!({ "c": contact["id"], "a": account["id"] }),
    )
    .await;
    // `Account.contacts` may not be null, nor may the account a page lists, nor the page:
    // the null reaches `data`.
    let body = app
        .gql(
            "{ accounts(first: 1) { nodes { id contacts(first: -1) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    // A ticket's account may be null: the null stops there, beside the rest, through a
    // fragment and an alias as well.
    let body = app
        .gql(
            "{ tickets(first: 1) { nodes { subject company: account { ...Broken } } } }
             fragment Broken on Account { name people: contacts(after: \"nope\") { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(
        body["data"]["tickets"]["nodes"],
        json!([{ "subject": "Nested", "company": null }]),
        "{body}"
    );
}

#[tokio::test]
async fn a_record_moved_to_the_bin_counts_as_changed_then() {
    let app = spawn_app().await;
    let binned = app.create_contact(json!({ "lastName": "Binned" })).await;
    let account = app.create_account("Binned Inc").await;
    app.create_contact(json!({ "lastName": "Kept" })).await;
    let since = chrono::Utc::now();
    app.gql_ok(
        "mutation($c: ID!, $a: ID!) { deleteContact(id: $c) { id } deleteAccount(id: $a) { id } }",
        json!({ "c": binned["id"], "a": account["id"] }),
    )
    .await;
    let changed = app
        .gql_ok(
            "query($t: DateTime) { contacts(filter: { deleted: true, updatedSince: $t }) { nodes { id } }
                                  accounts(filter: { deleted: true, updatedSince: $t }) { nodes { id } } }",
            json!({ "t": since.to_rfc3339() }),
        )
        .await;
    assert_eq!(
        changed["contacts"]["nodes"],
        json!([{ "id": binned["id"] }])
    );
    assert_eq!(
        changed["accounts"]["nodes"],
        json!([{ "id": account["id"] }])
    );
    let live = app
        .gql_ok(
            "query($t: DateTime) { contacts(filter: { updatedSince: $t }) { nodes { id } } }",
            json!({ "t": since.to_rfc3339() }),
        )
        .await;
    assert_eq!(live["contacts"]["nodes"], json!([]), "nothing live changed");
}

#[tokio::test]
async fn an_update_changes_only_the_fields_it_names() {
    let app = spawn_app().await;
    let c = app
        .create_contact(json!({ "firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com", "title": "RADM" }))
        .await;
    let data = app
        .gql_ok(
            &format!("mutation($id: ID!) {{ updateContact(id: $id, patch: {{ phone: \"+1 555\", title: null }}) {{ {CONTACT_FIELDS} }} }}"),
            json!({ "id": c["id"] }),
        )
        .await;
    let updated = &data["updateContact"];
    assert_eq!(updated["phone"], "+1 555");
    assert_eq!(updated["title"], json!(null), "null clears a field");
    assert_eq!(
        updated["email"], "grace@example.com",
        "absent fields keep their value"
    );

    let body = app
        .gql(
            "mutation($id: ID!) { updateContact(id: $id, patch: { lastName: null }) { id } }",
            json!({ "id": c["id"] }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert_eq!(body["errors"][0]["extensions"]["field"], "lastName");
}

#[tokio::test]
async fn an_update_made_on_a_stale_read_is_refused_when_it_says_what_it_read() {
    let app = spawn_app().await;
    let c = app
        .create_contact(json!({ "lastName": "Hopper", "phone": "+1 555 0100" }))
        .await;
    const READ: &str = "query($id: ID!) { contact(id: $id) { updatedAt phone title } }";
    const UPDATE: &str = "mutation($id: ID!, $p: ContactPatchInput!, $at: DateTime) { updateContact(id: $id, patch: $p, expectedUpdatedAt: $at) { updatedAt phone title } }";
    // Two agents open the contact; the first saves a new phone.
    let read = app.gql_ok(READ, json!({ "id": c["id"] })).await["contact"]["updatedAt"].clone();
    let first = app
        .gql_ok(
            UPDATE,
            json!({ "id": c["id"], "p": { "phone": "+1 555 0199" }, "at": read }),
        )
        .await;
    // The second saves its whole form, the old phone in it, on what it read.
    let stale = app
        .gql(
            UPDATE,
            json!({ "id": c["id"], "p": { "phone": "+1 555 0100", "title": "RADM" }, "at": read }),
        )
        .await;
    assert_eq!(codes(&stale), ["CONFLICT"], "{stale}");
    let message = stale["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("since it was read"), "{message}");
    let now = app.gql_ok(READ, json!({ "id": c["id"] })).await;
    assert_eq!(
        now["contact"]["phone"], "+1 555 0199",
        "the first save stands"
    );
    assert_eq!(now["contact"]["title"], Value::Null);
    // Read again, the change goes through, the stamp sent back as a client's date type keeps
    // it (JavaScript's to the millisecond); without a stamp, the last save wins as before.
    let at = first["updateContact"]["updatedAt"].clone();
    assert_eq!(now["contact"]["updatedAt"], at);
    let at = chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let saved = app
        .gql_ok(
            UPDATE,
            json!({ "id": c["id"], "p": { "title": "RADM" }, "at": at }),
        )
        .await;
    assert_eq!(saved["updateContact"]["title"], "RADM");
    let unchecked = app
        .gql_ok(
            UPDATE,
            json!({ "id": c["id"], "p": { "title": "Admiral" }, "at": null }),
        )
        .await;
    assert_eq!(unchecked["updateContact"]["title"], "Admiral");

    // Accounts and tickets alike.
    let account = app.create_account("Acme").await;
    let ticket = app
        .gql_ok(
            "mutation { createTicket(input: { subject: \"Printer\" }) { id updatedAt } }",
            json!({}),
        )
        .await["createTicket"]
        .clone();
    let earlier = "2020-01-01T00:00:00Z";
    let account_update = app
        .gql(
            "mutation($id: ID!, $at: DateTime) { updateAccount(id: $id, patch: { phone: \"1\" }, expectedUpdatedAt: $at) { id } }",
            json!({ "id": account["id"], "at": earlier }),
        )
        .await;
    assert_eq!(codes(&account_update), ["CONFLICT"], "{account_update}");
    let ticket_update = app
        .gql(
            "mutation($id: ID!, $at: DateTime) { updateTicket(id: $id, patch: { subject: \"Toner\" }, expectedUpdatedAt: $at) { subject } }",
            json!({ "id": ticket["id"], "at": earlier }),
        )
        .await;
    assert_eq!(codes(&ticket_update), ["CONFLICT"], "{ticket_update}");
    let ticket_update = app
        .gql_ok(
            "mutation($id: ID!, $at: DateTime) { updateTicket(id: $id, patch: { subject: \"Toner\" }, expectedUpdatedAt: $at) { subject } }",
            json!({ "id": ticket["id"], "at": ticket["updatedAt"] }),
        )
        .await;
    assert_eq!(ticket_update["updateTicket"]["subject"], "Toner");
}

#[tokio::test]
async fn a_create_sent_again_under_its_key_is_not_made_twice() {
    let app = spawn_app().await;
    const CREATE: &str = "mutation($input: CreateContactInput!, $key: String) { createContact(input: $input, idempotencyKey: $key) { id lastName } }";
    let input = json!({ "lastName": "Hopper", "email": "grace@example.com" });
    let key = "9b2f6a34-0d51-4c38-9a77-3c1f0e4e5a10";
    let first = app
        .gql_ok(CREATE, json!({ "input": input, "key": key }))
        .await;
    // Its answer lost, the client sends it again.
    let again = app
        .gql_ok(CREATE, json!({ "input": input, "key": key }))
        .await;
    assert_eq!(again, first);
    let listed = app
        .gql_ok("{ contacts(first: 10) { totalCount } }", json!({}))
        .await;
    assert_eq!(listed["contacts"]["totalCount"], 1, "{listed}");

    // The same key with another create is a mistake, said as one.
    let other = app
        .gql(
            CREATE,
            json!({ "input": { "lastName": "Lovelace" }, "key": key }),
        )
        .await;
    assert_eq!(codes(&other), ["CONFLICT"], "{other}");
    // Keys are each agent's own: another agent's equal key makes its own record.
    let body = app
        .client
        .post(app.graphql_url())
        .bearer_auth(app.agent_token(2, "Agent"))
        .json(&json!({ "query": CREATE, "variables": { "input": input, "key": key } }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_ne!(
        body["data"]["createContact"]["id"], first["createContact"]["id"],
        "{body}"
    );
    // Without a key, each create makes a record.
    app.gql_ok(CREATE, json!({ "input": input })).await;
    let listed = app
        .gql_ok("{ contacts(first: 10) { totalCount } }", json!({}))
        .await;
    assert_eq!(listed["contacts"]["totalCount"], 3, "{listed}");
    for bad in ["", &"k".repeat(256), "line\nbreak"] {
        let refused = app.gql(CREATE, json!({ "input": input, "key": bad })).await;
        assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    }

    // Accounts and tickets alike.
    for (create, entity) in [
        (
            "mutation($key: String) { createAccount(input: { name: \"Acme\" }, idempotencyKey: $key) { id } }",
            "createAccount",
        ),
        (
            "mutation($key: String) { createTicket(input: { subject: \"Printer\" }, idempotencyKey: $key) { id } }",
            "createTicket",
        ),
    ] {
        let (once, twice) = (format!("{entity} once"), format!("{entity} twice"));
        let first = app.gql_ok(create, json!({ "key": once })).await;
        let again = app.gql_ok(create, json!({ "key": once })).await;
        assert_eq!(again[entity]["id"], first[entity]["id"], "{entity}");
        let fresh = app.gql_ok(create, json!({ "key": twice })).await;
        assert_ne!(fresh[entity]["id"], first[entity]["id"], "{entity}");
    }
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let app = spawn_app().await;
    let body = app
        .gql(
            "mutation { updateContact(id: \"424242\", patch: { phone: \"1\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
    let read = app
        .gql_ok("{ contact(id: \"424242\") { id } }", json!({}))
        .await;
    assert_eq!(read["contact"], json!(null));
}

#[tokio::test]
async fn deleted_contacts_wait_in_the_recycle_bin_until_restored_or_purged() {
    let app = spawn_app().await;
    let keep = app.create_contact(json!({ "lastName": "Keep" })).await;
    let bin = app.create_contact(json!({ "lastName": "Bin" })).await;

    let deleted = app
        .gql_ok(
            "mutation($id: ID!) { deleteContact(id: $id) { id deletedAt } }",
            json!({ "id": bin["id"] }),
        )
        .await;
    assert!(deleted["deleteContact"]["deletedAt"].is_string());

    let live = app
        .gql_ok("{ contacts { nodes { lastName } } }", json!({}))
        .await;
    assert_eq!(live["contacts"]["nodes"], json!([{ "lastName": "Keep" }]));
    let binned = app
        .gql_ok(
            "{ contacts(filter: { deleted: true }) { nodes { lastName } } }",
            json!({}),
        )
        .await;
    assert_eq!(binned["contacts"]["nodes"], json!([{ "lastName": "Bin" }]));

    let edit = app
        .gql(
            "mutation($id: ID!) { updateContact(id: $id, patch: { phone: \"1\" }) { id } }",
            json!({ "id": bin["id"] }),
        )
        .await;
    assert_eq!(codes(&edit), ["CONFLICT"], "a binned record is not edited");
    let twice = app
        .gql(
            "mutation($id: ID!) { deleteContact(id: $id) { id } }",
            json!({ "id": bin["id"] }),
        )
        .await;
    assert_eq!(codes(&twice), ["CONFLICT"]);
    let message = twice["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("already") && message.contains("purgeContact"),
        "{message}"
    );

    let restored = app
        .gql_ok(
            "mutation($id: ID!) { restoreContact(id: $id) { deletedAt } }",
            json!({ "id": bin["id"] }),
        )
        .await;
    assert_eq!(restored["restoreContact"]["deletedAt"], json!(null));
    let again = app
        .gql(
            "mutation($id: ID!) { restoreContact(id: $id) { id } }",
            json!({ "id": bin["id"] }),
        )
        .await;
    assert_eq!(codes(&again), ["CONFLICT"]);

    let purge_live = app
        .gql(
            "mutation($id: ID!) { purgeContact(id: $id) }",
            json!({ "id": keep["id"] }),
        )
        .await;
    assert_eq!(
        codes(&purge_live),
        ["CONFLICT"],
        "only binned records can be purged"
    );
    app.gql_ok(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": keep["id"] }),
    )
    .await;
    // Written with a leading zero, it is answered as every other field gives it.
    let written = format!("0{}", keep["id"].as_str().unwrap());
    let purged = app
        .gql_ok(
            "mutation($id: ID!) { purgeContact(id: $id) }",
            json!({ "id": written }),
        )
        .await;
    assert_eq!(purged["purgeContact"], keep["id"]);
    let gone = app
        .gql_ok(
            "query($id: ID!) { contact(id: $id) { id } }",
            json!({ "id": keep["id"] }),
        )
        .await;
    assert_eq!(gone["contact"], json!(null));
}

#[tokio::test]
async fn a_mass_update_changes_all_records_or_none() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            app.create_contact(json!({ "lastName": format!("C{n}") }))
                .await["id"]
                .clone(),
        );
    }
    let updated = app
        .gql_ok(
            "mutation($ids: [ID!]!) { massUpdateContacts(ids: $ids, patch: { title: \"Customer\" }) { title } }",
            json!({ "ids": ids }),
        )
        .await;
    assert_eq!(updated["massUpdateContacts"].as_array().unwrap().len(), 5);

    let mut with_missing = ids.clone();
    with_missing.push(json!("999999"));
    let body = app
        .gql(
            "mutation($ids: [ID!]!) { massUpdateContacts(ids: $ids, patch: { title: \"Lead\" }) { id } }",
            json!({ "ids": with_missing }),
        )
        .await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
    // None named is a mistake too, said so rather than done.
    let none = app
        .gql(
            "mutation { massUpdateContacts(ids: [], patch: { title: \"Lead\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&none), ["BAD_USER_INPUT"], "{none}");
    assert!(
        none["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("name at least one record"),
        "{none}"
    );
    // Past the limit, however much each record asks for, the refusal names the limit.
    let many: Vec<String> = (1..=2_000).map(|n| n.to_string()).collect();
    let body = app
        .gql(
            "mutation($ids: [ID!]!) { massUpdateContacts(ids: $ids, patch: { title: \"Lead\" }) { id firstName lastName email phone mobile title updatedAt account { id name website phone industry } } }",
            json!({ "ids": many }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 500 records per mass update"),
        "{body}"
    );
    let titles = app
        .gql_ok("{ contacts { nodes { title } } }", json!({}))
        .await;
    for node in titles["contacts"]["nodes"].as_array().unwrap() {
        assert_eq!(
            node["title"], "Customer",
            "the failed mass update changed nothing"
        );
    }
}

#[tokio::test]
async fn a_list_says_how_many_it_holds_in_all_on_every_page_and_under_its_filter() {
    let app = spawn_app().await;
    let acme = app.create_account("Acme").await;
    app.create_account("Empty").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let account = if n < 3 {
            acme["id"].clone()
        } else {
            json!(null)
        };
        ids.push(
            app.create_contact(json!({ "lastName": format!("Person{n}"), "accountId": account }))
                .await["id"]
                .clone(),
        );
    }
    app.gql_ok(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": ids[0] }),
    )
    .await;
    let total = |query: &'static str, vars: Value| {
        let app = &app;
        async move { app.gql_fresh("Agent", query, vars).await }
    };
    // Page one and page two both count every live contact; the binned one is counted apart.
    let first = total(
        "{ contacts(first: 2) { totalCount nodes { lastName } pageInfo { endCursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(first["data"]["contacts"]["totalCount"], 4, "{first}");
    assert_eq!(
        first["data"]["contacts"]["nodes"].as_array().unwrap().len(),
        2
    );
    let after = first["data"]["contacts"]["pageInfo"]["endCursor"].clone();
    let second = total(
        "query($a: String) { contacts(first: 2, after: $a) { totalCount } }",
        json!({ "a": after }),
    )
    .await;
    assert_eq!(second["data"]["contacts"]["totalCount"], 4, "{second}");
    let filtered = total(
        "query($a: ID!) { contacts(filter: { accountId: $a }) { totalCount } binned: contacts(filter: { deleted: true }) { totalCount } }",
        json!({ "a": acme["id"] }),
    )
    .await;
    assert_eq!(filtered["data"]["contacts"]["totalCount"], 2, "{filtered}");
    assert_eq!(filtered["data"]["binned"]["totalCount"], 1, "{filtered}");
    // Each account's own live contacts, however many accounts are listed.
    let accounts = total(
        "{ accounts { totalCount nodes { name contacts(first: 1) { totalCount } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        accounts["data"]["accounts"],
        json!({
            "totalCount": 2,
            "nodes": [
                { "name": "Acme", "contacts": { "totalCount": 2 } },
                { "name": "Empty", "contacts": { "totalCount": 0 } },
            ],
        }),
        "{accounts}"
    );
    for subject in ["Help", "More help"] {
        app.gql_ok(
            "mutation($c: ID!, $s: String!) { createTicket(input: { subject: $s, contactId: $c }) { id } }",
            json!({ "c": ids[1], "s": subject }),
        )
        .await;
    }
    let tickets = total(
        "query($c: ID!) { tickets(first: 1, filter: { contactId: $c }) { totalCount } }",
        json!({ "c": ids[1] }),
    )
    .await;
    assert_eq!(tickets["data"]["tickets"]["totalCount"], 2, "{tickets}");
}

#[tokio::test]
async fn contacts_page_by_cursor_and_filter_by_email_name_and_account() {
    let app = spawn_app().await;
    let acme = app.create_account("Acme").await;
    for n in 0..7 {
        app.create_contact(json!({
            "firstName": if n % 2 == 0 { "Even" } else { "Odd" },
            "lastName": format!("Person{n}"),
            "email": format!("person{n}@example.com"),
            "accountId": if n < 3 { acme["id"].clone() } else { json!(null) },
        }))
        .await;
    }
    let query = "query($after: String) { contacts(first: 3, after: $after) { edges { cursor node { lastName } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = json!(null);
    loop {
        let data = app.gql_ok(query, json!({ "after": after })).await;
        let conn = &data["contacts"];
        for edge in conn["edges"].as_array().unwrap() {
            seen.push(edge["node"]["lastName"].as_str().unwrap().to_owned());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        seen,
        (0..7).map(|n| format!("Person{n}")).collect::<Vec<_>>()
    );
    // A cursor is its own list's: another list refuses it rather than start at its id.
    let contacts_cursor = app
        .gql_ok(
            "{ contacts(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await["contacts"]["pageInfo"]["endCursor"]
        .clone();
    for query in [
        "query($a: String) { accounts(after: $a) { nodes { name } } }",
        "query($a: String) { tickets(after: $a) { nodes { subject } } }",
        "query($a: String) { accounts { nodes { contacts(after: $a) { nodes { lastName } } } } }",
    ] {
        let refused = app.gql(query, json!({ "a": contacts_cursor })).await;
        let refusals = codes(&refused);
        assert!(
            !refusals.is_empty() && refusals.iter().all(|code| code == "BAD_USER_INPUT"),
            "{query}: {refused}"
        );
        let message = refused["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("is a cursor of contacts"), "{message}");
        assert_eq!(
            refused["errors"][0]["extensions"]["field"], "after",
            "{refused}"
        );
    }
    for forged in ["c_1", "ct_zz", "ct_", "1f"] {
        let refused = app
            .gql(
                "query($a: String) { contacts(after: $a) { nodes { lastName } } }",
                json!({ "a": forged }),
            )
            .await;
        assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{forged}: {refused}");
    }

    let by_email = app
        .gql_ok(
            "{ contacts(filter: { email: \"  PERSON3@example.COM \" }) { nodes { lastName } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        by_email["contacts"]["nodes"],
        json!([{ "lastName": "Person3" }])
    );
    let by_name = app
        .gql_ok(
            "{ contacts(filter: { name: \"odd\" }) { nodes { lastName } } }",
            json!({}),
        )
        .await;
    assert_eq!(by_name["contacts"]["nodes"].as_array().unwrap().len(), 3);
    let by_account = app
        .gql_ok(
            "query($a: ID!) { contacts(filter: { accountId: $a }) { nodes { lastName } } }",
            json!({ "a": acme["id"] }),
        )
        .await;
    assert_eq!(by_account["contacts"]["nodes"].as_array().unwrap().len(), 3);

    let wildcard = app
        .gql_ok(
            "{ contacts(filter: { name: \"%\" }) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        wildcard["contacts"]["nodes"],
        json!([]),
        "LIKE wildcards in input match literally"
    );

    let bad_cursor = app
        .gql("{ contacts(after: \"nope\") { nodes { id } } }", json!({}))
        .await;
    assert_eq!(codes(&bad_cursor), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn name_searches_ignore_case_in_every_script() {
    let app = spawn_app().await;
    app.create_contact(json!({ "firstName": "Иван", "lastName": "ПЕТРОВ" }))
        .await;
    app.create_contact(json!({ "firstName": "Łucja", "lastName": "Ødegård" }))
        .await;
    app.create_account("ÄRZTE Nord").await;
    app.create_contact(json!({ "lastName": "ΠΑΠΑΣΤΑΘΟΠΟΥΛΟΣ" }))
        .await;
    // Decomposed, as some systems store it: «u» and a combining diaeresis.
    app.create_account("Mu\u{0308}ller Bau").await;
    let found = |query: &'static str| {
        let app = &app;
        async move {
            // Computed each time: the second round asks again after the keys were remade.
            let body = app
                .gql_fresh(
                    "Administrator",
                    "query($n: String!) { contacts(filter: { name: $n }) { nodes { lastName } } accounts(filter: { name: $n }) { nodes { name } } }",
                    json!({ "n": query }),
                )
                .await;
            let data = &body["data"];
            let mut names: Vec<String> = data["contacts"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["lastName"].as_str().unwrap().to_owned())
                .chain(
                    data["accounts"]["nodes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a["name"].as_str().unwrap().to_owned()),
                )
                .collect();
            names.sort();
            names
        }
    };
    let check = || async {
        assert_eq!(found("петров").await, ["ПЕТРОВ"]);
        assert_eq!(
            found("иван петр").await,
            ["ПЕТРОВ"],
            "first and last name together"
        );
        assert_eq!(found("ŁUCJA").await, ["Ødegård"]);
        assert_eq!(found("ødegÅrd").await, ["Ødegård"]);
        assert_eq!(found("ärzte").await, ["ÄRZTE Nord"]);
        assert_eq!(
            found("ΠΑΠΑΣ").await,
            ["ΠΑΠΑΣΤΑΘΟΠΟΥΛΟΣ"],
            "a Greek name's first letters, ending in a sigma"
        );
        assert_eq!(found("παπασταθοπουλος").await, ["ΠΑΠΑΣΤΑΘΟΠΟΥΛΟΣ"]);
        assert_eq!(
            found("MÜLLER").await,
            ["Mu\u{0308}ller Bau"],
            "composed or not, one letter"
        );
    };
    check().await;

    // Rows written before the keys existed get them from the migration.
    use sea_orm::ConnectionTrait;
    let db = app.store.connection();
    db.execute_unprepared("UPDATE account SET name_key = 'stale'")
        .await
        .unwrap();
    migrate_again_from(db, "name_keys").await;
    check().await;
}

/// Rolls the database back to before the migration whose name holds `named`, and up again.
async fn migrate_again_from(db: &sea_orm::DatabaseConnection, named: &str) {
    use migration::{Migrator, MigratorTrait};
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let at = names.iter().position(|n| n.contains(named)).unwrap();
    let steps = u32::try_from(names.len() - at).unwrap();
    Migrator::down(db, Some(steps)).await.unwrap();
    Migrator::up(db, None).await.unwrap();
}

#[tokio::test]
async fn emails_kept_before_their_keys_were_made_by_the_gateway_are_keyed_again() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    app.create_contact(json!({ "lastName": "Arzt", "email": "ÄRZTE@Example.com" }))
        .await;
    app.create_contact(json!({ "lastName": "Nomail" })).await;
    let by_email = "{ contacts(filter: { email: \"ärzte@example.com\" }) { nodes { lastName } } }";
    // As the database's own `lower()` keyed it, folding ASCII letters only.
    app.store
        .connection()
        .execute_unprepared(
            "UPDATE contact SET email_key = 'Ärzte@example.com' WHERE email IS NOT NULL",
        )
        .await
        .unwrap();
    assert_eq!(
        app.gql_ok(by_email, json!({})).await["contacts"]["nodes"],
        json!([])
    );

    migrate_again_from(app.store.connection(), "folded_keys").await;
    // Asked anew: the answer above is kept for a second, and no desk change says it aged.
    let by_email = by_email.replace("lastName", "lastName email");
    assert_eq!(
        app.gql_ok(&by_email, json!({})).await["contacts"]["nodes"],
        json!([{ "lastName": "Arzt", "email": "ÄRZTE@Example.com" }])
    );
}

#[tokio::test]
async fn keys_failures_wait_under_are_made_again_and_salesforce_ids_are_not() {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let app = spawn_app().await;
    let logged = |reason: &str, key: &str| entity::sync_failure::ActiveModel {
        at: Set(chrono::Utc::now()),
        direction: Set("SALESFORCE_TO_DESK".into()),
        module: Set("ACCOUNTS".into()),
        reason: Set(reason.into()),
        message: Set("waiting".into()),
        attempts: Set(1),
        match_key: Set(Some(key.into())),
        ..Default::default()
    };
    let db = app.store.connection();
    // As lower-casing keyed a Greek name before: a final sigma, decomposed accents.
    let rivals = logged("MULTIPLE_MATCHES", "σοφοκλη\u{301}ς")
        .insert(db)
        .await
        .unwrap();
    let waiting = logged("ACCOUNT_NOT_SYNCED", "0015g000000000BAAQ")
        .insert(db)
        .await
        .unwrap();
    migrate_again_from(db, "folded_keys").await;
    let key = |id| async move {
        entity::sync_failure::Entity::find_by_id(id)
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .match_key
            .unwrap()
    };
    assert_eq!(key(rivals.id).await, "σοφοκλήσ");
    assert_eq!(key(waiting.id).await, "0015g000000000BAAQ");
}

#[tokio::test]
async fn a_search_term_no_stored_value_could_hold_is_refused_on_every_database() {
    let app = spawn_app().await;
    app.create_contact(json!({ "lastName": "Lovelace", "email": "ada@example.com" }))
        .await;
    for (query, field) in [
        (
            "query($t: String!) { contacts(filter: { name: $t }) { nodes { id } } }",
            "filter.name",
        ),
        (
            "query($t: String!) { contacts(filter: { email: $t }) { nodes { id } } }",
            "filter.email",
        ),
        (
            "query($t: String!) { accounts(filter: { name: $t }) { nodes { id } } }",
            "filter.name",
        ),
    ] {
        // A control character no stored value holds; a term of nothing but spaces, which
        // would match every record.
        for term in ["ada\u{0}", "  ", "\u{200B}"] {
            let body = app.gql(query, json!({ "t": term })).await;
            assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{term:?}: {body}");
            let message = body["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with(field), "{message}");
        }
    }
    // An address longer than a contact's email can be (80 characters) is no stored one.
    let long = format!("{}@example.com", "a".repeat(69));
    let body = app
        .gql(
            "query($t: String!) { contacts(filter: { email: $t }) { nodes { id } } }",
            json!({ "t": long }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    // An email filter finds the stored address however the search was pasted.
    let pasted = app
        .gql_ok(
            "query($t: String!) { contacts(filter: { email: $t }) { nodes { lastName } } }",
            json!({ "t": "\u{FEFF}ADA@example.com " }),
        )
        .await;
    assert_eq!(
        pasted["contacts"]["nodes"],
        json!([{ "lastName": "Lovelace" }])
    );
    let found = app
        .gql_ok(
            "{ contacts(filter: { name: \" Love\" }) { nodes { lastName } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        found["contacts"]["nodes"],
        json!([{ "lastName": "Lovelace" }])
    );
}

#[tokio::test]
async fn an_edit_that_waited_for_another_writer_is_stamped_after_it() {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let app = spawn_app().await;
    let id = app.create_contact(json!({ "lastName": "Noether" })).await["id"].clone();
    let desk_id: i64 = id.as_str().unwrap().parse().unwrap();
    // Another writer (a sync batch, say) holds the contact...
    let writing = crate::helpers::other_process_writing(&app).await;
    entity::contact::Entity::find_by_id(entity::ContactId(desk_id))
        .lock_exclusive()
        .one(&writing)
        .await
        .unwrap();
    let (edited, written) = tokio::join!(
        app.gql_ok(
            "mutation($id: ID!) { updateContact(id: $id, patch: { title: \"Professor\" }) { updatedAt } }",
            json!({ "id": id }),
        ),
        async {
            // ...and writes it while the agent's edit waits.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let at = chrono::Utc::now();
            entity::contact::Entity::update_many()
                .col_expr(entity::contact::Column::UpdatedAt, Expr::value(at))
                .filter(entity::contact::Column::Id.eq(entity::ContactId(desk_id)))
                .exec(&writing)
                .await
                .unwrap();
            writing.commit().await.unwrap();
            at
        }
    );
    let stamped: chrono::DateTime<chrono::Utc> = edited["updateContact"]["updatedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stamped > written,
        "the edit committed after the other write is stamped {stamped}, before its {written}"
    );
}

#[tokio::test]
async fn a_create_whose_caller_goes_away_as_it_commits_is_still_announced() {
    use std::future::{Future, poll_fn};
    use std::task::Poll;

    use tandem::domain::{ContactInput, DeskAction};
    use tandem::store::ContactFilter;

    let app = spawn_app().await;
    let mut announced = app.store.subscribe();
    let all = ContactFilter::default();
    // The create is polled step by step and dropped as soon as its row is seen committed,
    // before it returns: a mutation cancelled there (a socket closed, a request dropped).
    for attempt in 0..100 {
        let before = app.store.count_contacts(&all).await.unwrap();
        let input = ContactInput {
            last_name: Some(format!("Attempt {attempt}")),
            ..Default::default()
        };
        let mut create = Box::pin(app.store.create_contact(&input, None));
        loop {
            if poll_fn(|cx| Poll::Ready(create.as_mut().poll(cx).is_ready())).await {
                // Returned before it was caught: its announcement is not the one sought.
                announced
                    .try_recv()
                    .expect("a create returned is announced");
                break;
            }
            if app.store.count_contacts(&all).await.unwrap() > before {
                drop(create);
                let event = announced
                    .try_recv()
                    .expect("a create committed is announced though its caller went away");
                assert_eq!(event.action, DeskAction::Created);
                return;
            }
        }
    }
    panic!("no create was caught between its commit and its return");
}

#[tokio::test]
async fn a_save_that_changes_nothing_writes_nothing() {
    let app = spawn_app().await;
    let contact = app
        .create_contact(json!({ "lastName": "Hamilton", "title": "Director" }))
        .await;
    let account = app.create_account("Draper").await;
    // What deskChanges subscribers and the sync worker hear of.
    let mut announced = app.store.subscribe();
    let saved = app
        .gql_ok(
            "mutation($id: ID!, $a: ID!) { updateContact(id: $id, patch: { title: \"Director\", lastName: \"Hamilton\", accountId: null }) { updatedAt } updateAccount(id: $a, patch: { name: \"Draper\" }) { updatedAt } }",
            json!({ "id": contact["id"], "a": account["id"] }),
        )
        .await;
    assert_eq!(saved["updateContact"]["updatedAt"], contact["updatedAt"]);
    assert_eq!(saved["updateAccount"]["updatedAt"], account["updatedAt"]);
    assert!(announced.try_recv().is_err(), "no change is announced");
    let again = app
        .gql_ok(
            "mutation($ids: [ID!]!) { massUpdateContacts(ids: $ids, patch: { accountId: null }) { updatedAt } }",
            json!({ "ids": [contact["id"]] }),
        )
        .await;
    assert_eq!(
        again["massUpdateContacts"][0]["updatedAt"], contact["updatedAt"],
        "a form sending every field, an empty account among them, saves nothing new"
    );
    assert!(announced.try_recv().is_err(), "no change is announced");

    // Named 501 times, it is one record: within the limit.
    let repeated = app
        .gql_ok(
            "mutation($ids: [ID!]!) { massUpdateContacts(ids: $ids, patch: { title: \"Lead\" }) { id } }",
            json!({ "ids": vec![contact["id"].clone(); 501] }),
        )
        .await;
    assert_eq!(repeated["massUpdateContacts"].as_array().unwrap().len(), 1);
    while announced.try_recv().is_ok() {}

    // A record named twice in a mass update is changed, and returned, once.
    let twice = app
        .gql_ok(
            "mutation($ids: [ID!]!) { massUpdateContacts(ids: $ids, patch: { title: \"Chief\" }) { id title } }",
            json!({ "ids": [contact["id"], contact["id"]] }),
        )
        .await;
    assert_eq!(
        twice["massUpdateContacts"],
        json!([{ "id": contact["id"], "title": "Chief" }])
    );
    let heard = announced.try_recv().unwrap();
    assert_eq!(heard.record_id.to_string(), contact["id"].as_str().unwrap());
    assert!(announced.try_recv().is_err(), "one change is announced");
}
