use serde_json::json;

use crate::helpers::{codes, spawn_app};

#[tokio::test]
async fn accounts_are_created_updated_and_validated() {
    let app = spawn_app().await;
    let created = app
        .gql_ok(
            "mutation { createAccount(input: { name: \"Acme\", employees: 40, annualRevenue: 1.5e6, website: \"https://acme.example\" }) { id name employees annualRevenue } }",
            json!({}),
        )
        .await;
    let id = created["createAccount"]["id"].clone();
    assert_eq!(created["createAccount"]["employees"], 40);

    let updated = app
        .gql_ok("mutation($id: ID!) { updateAccount(id: $id, patch: { industry: \"Retail\", employees: null }) { industry employees name } }", json!({ "id": id }))
        .await;
    assert_eq!(
        updated["updateAccount"],
        json!({ "industry": "Retail", "employees": null, "name": "Acme" })
    );

    let negative = app
        .gql(
            "mutation { createAccount(input: { name: \"Bad\", employees: -1 }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&negative), ["BAD_USER_INPUT"]);
    assert_eq!(negative["errors"][0]["extensions"]["field"], "employees");
    for (input, field) in [
        (
            json!({ "name": "Big", "employees": 100_000_000 }),
            "employees",
        ),
        (
            json!({ "name": "Rich", "annualRevenue": 1e18 }),
            "annualRevenue",
        ),
    ] {
        let refused = app
            .gql(
                "mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
        assert_eq!(refused["errors"][0]["extensions"]["field"], field);
    }

    let long = app
        .gql(
            "mutation($n: String!) { createAccount(input: { name: $n }) { id } }",
            json!({ "n": "x".repeat(256) }),
        )
        .await;
    assert_eq!(long["errors"][0]["extensions"]["field"], "name");
}

#[tokio::test]
async fn an_account_lists_its_contacts_and_survives_the_recycle_bin() {
    let app = spawn_app().await;
    let account = app.create_account("Globex").await;
    for name in ["One", "Two"] {
        app.create_contact(json!({ "lastName": name, "accountId": account["id"] }))
            .await;
    }
    let data = app
        .gql_ok(
            "query($id: ID!) { account(id: $id) { contacts { nodes { lastName } } } }",
            json!({ "id": account["id"] }),
        )
        .await;
    assert_eq!(
        data["account"]["contacts"]["nodes"],
        json!([{ "lastName": "One" }, { "lastName": "Two" }])
    );

    app.gql_ok(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": account["id"] }),
    )
    .await;
    let link = app
        .gql("mutation($a: ID!) { createContact(input: { lastName: \"Three\", accountId: $a }) { id } }", json!({ "a": account["id"] }))
        .await;
    assert_eq!(
        codes(&link),
        ["BAD_USER_INPUT"],
        "a binned account takes no new contacts"
    );
    let listed = app.gql_ok("{ accounts { nodes { id } } }", json!({})).await;
    assert_eq!(listed["accounts"]["nodes"], json!([]));
    app.gql_ok(
        "mutation($id: ID!) { restoreAccount(id: $id) { id } }",
        json!({ "id": account["id"] }),
    )
    .await;
    let named = app
        .gql_ok(
            "{ accounts(filter: { name: \"glob\" }) { nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(named["accounts"]["nodes"], json!([{ "name": "Globex" }]));
    // A whole name as long as a name may be, pasted with a line break after it.
    let long = "G".repeat(255);
    app.create_account(&long).await;
    let pasted = app
        .gql_ok(
            "query($n: String!) { accounts(filter: { name: $n }) { nodes { name } } }",
            json!({ "n": format!("{long}\n") }),
        )
        .await;
    assert_eq!(pasted["accounts"]["nodes"], json!([{ "name": long }]));
}

#[tokio::test]
async fn purging_an_account_unlinks_its_contacts() {
    let app = spawn_app().await;
    let account = app.create_account("Initech").await;
    let contact = app
        .create_contact(json!({ "lastName": "Lumbergh", "accountId": account["id"] }))
        .await;
    app.gql_ok(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": account["id"] }),
    )
    .await;
    app.gql_ok(
        "mutation($id: ID!) { purgeAccount(id: $id) }",
        json!({ "id": account["id"] }),
    )
    .await;
    let data = app
        .gql_ok(
            "query($id: ID!) { contact(id: $id) { lastName account { id } } }",
            json!({ "id": contact["id"] }),
        )
        .await;
    assert_eq!(
        data["contact"],
        json!({ "lastName": "Lumbergh", "account": null })
    );
}

#[tokio::test]
async fn mass_updating_accounts_validates_every_record() {
    let app = spawn_app().await;
    let a = app.create_account("A").await;
    let b = app.create_account("B").await;
    let data = app
        .gql_ok(
            "mutation($ids: [ID!]!) { massUpdateAccounts(ids: $ids, patch: { accountType: \"Customer\" }) { accountType } }",
            json!({ "ids": [a["id"], b["id"]] }),
        )
        .await;
    assert_eq!(
        data["massUpdateAccounts"],
        json!([{ "accountType": "Customer" }, { "accountType": "Customer" }])
    );
    let bad = app
        .gql("mutation($ids: [ID!]!) { massUpdateAccounts(ids: $ids, patch: { name: \"\" }) { id } }", json!({ "ids": [a["id"], b["id"]] }))
        .await;
    assert_eq!(codes(&bad), ["BAD_USER_INPUT"]);
    let message = bad["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("account {}", a["id"].as_str().unwrap())),
        "the record that fails is named: {message}"
    );
}

#[tokio::test]
async fn a_list_of_accounts_pages_each_ones_contacts_on_its_own() {
    let app = spawn_app().await;
    let acme = app.create_account("Acme").await;
    let zylker = app.create_account("Zylker").await;
    app.create_account("Empty").await;
    let mut acme_contacts = Vec::new();
    for name in ["Ada", "Binned", "Cleo", "Dora"] {
        acme_contacts.push(
            app.create_contact(json!({ "lastName": name, "accountId": acme["id"] }))
                .await["id"]
                .clone(),
        );
    }
    app.gql_ok(
        "mutation($id: ID!) { deleteContact(id: $id) { id } }",
        json!({ "id": acme_contacts[1] }),
    )
    .await;
    app.create_contact(json!({ "lastName": "Zed", "accountId": zylker["id"] }))
        .await;
    app.create_contact(json!({ "lastName": "Loner" })).await;

    let page = |after: Option<&str>| {
        let after = after.map_or("null".to_owned(), |a| format!("\"{a}\""));
        format!(
            "{{ accounts {{ nodes {{ name contacts(first: 2, after: {after}) {{ nodes {{ lastName }} pageInfo {{ hasNextPage endCursor }} }} }} }} }}"
        )
    };
    let first = app.gql_ok(&page(None), json!({})).await;
    let lists: Vec<(String, Vec<String>, bool)> = first["accounts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let names = a["contacts"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["lastName"].as_str().unwrap().to_owned())
                .collect();
            (
                a["name"].as_str().unwrap().to_owned(),
                names,
                a["contacts"]["pageInfo"]["hasNextPage"].as_bool().unwrap(),
            )
        })
        .collect();
    let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        lists,
        [
            ("Acme".to_owned(), owned(&["Ada", "Cleo"]), true),
            ("Zylker".to_owned(), owned(&["Zed"]), false),
            ("Empty".to_owned(), owned(&[]), false),
        ]
    );
    let cursor = first["accounts"]["nodes"][0]["contacts"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let next = app.gql_ok(&page(Some(&cursor)), json!({})).await;
    assert_eq!(
        next["accounts"]["nodes"][0]["contacts"]["nodes"],
        json!([{ "lastName": "Dora" }])
    );
    assert_eq!(
        next["accounts"]["nodes"][0]["contacts"]["pageInfo"]["hasNextPage"],
        false
    );
}

#[tokio::test]
async fn a_contact_made_while_its_account_goes_to_the_recycle_bin_is_refused() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let account = app.create_account("Initech").await;
    // Another replica is binning the account, and has not committed yet.
    let binning = crate::helpers::other_process_writing(&app).await;
    binning
        .execute_unprepared(&format!(
            "UPDATE account SET deleted_at = CURRENT_TIMESTAMP WHERE id = {}",
            account["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    let (made, ()) = tokio::join!(
        app.gql(
            "mutation($a: ID!) { createContact(input: { lastName: \"Gibbons\", accountId: $a }) { id } }",
            json!({ "a": account["id"] }),
        ),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            binning.commit().await.unwrap();
        }
    );
    assert_eq!(codes(&made), ["BAD_USER_INPUT"], "{made}");
    assert!(
        made["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("recycle bin"),
        "{made}"
    );
}

/// A ticket being written for a contact (its row locked, its account read next) and the
/// purge of that contact's binned account take their locks in the same order, so neither
/// waits for the other in a circle (PostgreSQL would end one as a deadlock).
#[tokio::test]
async fn purging_an_account_waits_for_a_ticket_being_written_for_its_contact() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let account = app.create_account("Ghost Co").await;
    let contact = app
        .create_contact(json!({ "lastName": "Wraith", "accountId": account["id"] }))
        .await;
    app.gql_ok(
        "mutation($id: ID!) { deleteAccount(id: $id) { id } }",
        json!({ "id": account["id"] }),
    )
    .await;
    let postgres = app.database_url.starts_with("postgres");
    let lock = |sql: &str| {
        if postgres {
            sql.to_owned()
        } else {
            // SQLite has no row locks: its writer takes the whole database.
            sql.split(" FOR ").next().unwrap().to_owned()
        }
    };

    let ticket = crate::helpers::other_process_writing(&app).await;
    let contact_id = contact["id"].as_str().unwrap();
    let account_id = account["id"].as_str().unwrap();
    ticket
        .execute_unprepared(&lock(&format!(
            "SELECT id FROM contact WHERE id = {contact_id} FOR UPDATE"
        )))
        .await
        .unwrap();
    let purge = app.gql(
        "mutation($id: ID!) { purgeAccount(id: $id) }",
        json!({ "id": account["id"] }),
    );
    let meanwhile = async {
        // The purge is under way, waiting for a lock the ticket holds.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        ticket
            .execute_unprepared(&lock(&format!(
                "SELECT id FROM account WHERE id = {account_id} FOR SHARE"
            )))
            .await
            .expect("the ticket reads its contact's account without a deadlock");
        ticket.commit().await.unwrap();
    };
    let (purged, ()) = tokio::join!(purge, meanwhile);
    assert!(purged.get("errors").is_none(), "{purged}");
    let left = app
        .gql_ok(
            "query($id: ID!) { contact(id: $id) { account { id } } }",
            json!({ "id": contact["id"] }),
        )
        .await;
    assert!(left["contact"]["account"].is_null(), "{left}");
}
