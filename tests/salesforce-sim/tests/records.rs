#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::json;
use support::org;

#[tokio::test]
async fn contact_create_read_update_delete() {
    let org = org().await;
    let (status, created) = org
        .json(
            Method::POST,
            "sobjects/Contact/",
            Some(json!({ "LastName": "O'Brien", "Email": "ob@example.com" })),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["success"], true);
    assert_eq!(created["errors"], json!([]));
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("003"));

    let (status, record) = org
        .json(Method::GET, &format!("sobjects/Contact/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["attributes"]["type"], "Contact");
    assert_eq!(record["LastName"], "O'Brien");
    assert_eq!(record["FirstName"], json!(null));
    assert_eq!(record["IsDeleted"], false);
    let created_at = record["SystemModstamp"].as_str().unwrap().to_string();
    assert!(created_at.ends_with(".000+0000"));

    let resp = org
        .call(
            Method::PATCH,
            &format!("sobjects/Contact/{id}"),
            Some(json!({ "FirstName": "Nora" })),
        )
        .await;
    assert_eq!(resp.status(), 204);
    let (_, record) = org
        .json(
            Method::GET,
            &format!("sobjects/Contact/{id}?fields=FirstName,SystemModstamp"),
            None,
        )
        .await;
    assert_eq!(record["FirstName"], "Nora");
    assert!(record.get("LastName").is_none());
    assert!(record["SystemModstamp"].as_str().unwrap() > created_at.as_str());

    assert_eq!(
        org.call(Method::DELETE, &format!("sobjects/Contact/{id}"), None)
            .await
            .status(),
        204
    );
    let (status, body) = org
        .json(Method::DELETE, &format!("sobjects/Contact/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body[0]["errorCode"], "ENTITY_IS_DELETED");
    assert_eq!(org.sim.get("Contact", &id).unwrap()["IsDeleted"], true);
}

#[tokio::test]
async fn create_answers_with_location_and_accepts_method_override() {
    let org = org().await;
    let resp = org
        .call(
            Method::POST,
            "sobjects/Account",
            Some(json!({ "Name": "Acme" })),
        )
        .await;
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "/services/data/v62.0/sobjects/Account/{}",
            body["id"].as_str().unwrap()
        )
    );
    let id = body["id"].as_str().unwrap();
    let resp = org
        .call(
            Method::POST,
            &format!("sobjects/Account/{id}?_HttpMethod=PATCH"),
            Some(json!({ "Phone": "1" })),
        )
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(org.sim.get("Account", id).unwrap()["Phone"], "1");
}

#[tokio::test]
async fn validation_errors_use_salesforce_codes() {
    let org = org().await;
    let cases = [
        (json!({ "FirstName": "A" }), "REQUIRED_FIELD_MISSING"),
        (json!({ "LastName": "x".repeat(81) }), "STRING_TOO_LONG"),
        (
            json!({ "LastName": "A", "IsDeleted": true }),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (json!({ "LastName": "A", "Foo__c": 1 }), "INVALID_FIELD"),
        (
            json!({ "LastName": "A", "Birthdate": "yesterday" }),
            "JSON_PARSER_ERROR",
        ),
        (
            json!({ "LastName": "A", "AccountId": "garbage" }),
            "MALFORMED_ID",
        ),
        (
            json!({ "LastName": "A", "Email": "nope" }),
            "INVALID_EMAIL_ADDRESS",
        ),
    ];
    for (body, code) in cases {
        let (status, errors) = org.json(Method::POST, "sobjects/Contact", Some(body)).await;
        assert_eq!(
            (status, errors[0]["errorCode"].as_str().unwrap()),
            (400, code)
        );
    }
    let (status, errors) = org.json(Method::POST, "sobjects/Contact", None).await;
    assert_eq!(
        (status, errors[0]["errorCode"].as_str().unwrap()),
        (400, "JSON_PARSER_ERROR")
    );
    let (_, errors) = org
        .json(Method::POST, "sobjects/Contact", Some(json!({})))
        .await;
    assert_eq!(errors[0]["fields"], json!(["LastName"]));
    // A number with more digits than its field holds: NumberOfEmployees holds 8, as its
    // describe says.
    let (status, errors) = org
        .json(
            Method::POST,
            "sobjects/Account",
            Some(json!({ "Name": "Big", "NumberOfEmployees": 123_456_789 })),
        )
        .await;
    assert_eq!(
        (status, errors[0]["errorCode"].as_str().unwrap()),
        (400, "NUMBER_OUTSIDE_VALID_RANGE")
    );
    assert_eq!(errors[0]["fields"], json!(["NumberOfEmployees"]));
    let (status, _) = org
        .json(
            Method::POST,
            "sobjects/Account",
            Some(json!({ "Name": "Big", "NumberOfEmployees": 99_999_999, "AnnualRevenue": 999_999_999_999_999_000u64 })),
        )
        .await;
    assert_eq!(status, 201);
    let (_, account) = org
        .json(Method::GET, "sobjects/Account/describe", None)
        .await;
    let employees = account["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "NumberOfEmployees")
        .unwrap();
    assert_eq!(employees["digits"], 8);
}

#[tokio::test]
async fn missing_records_and_unknown_objects_are_not_found() {
    let org = org().await;
    let (status, body) = org
        .json(Method::GET, "sobjects/Contact/0035g0000000099AAA", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
    assert_eq!(
        org.json(Method::GET, "sobjects/Widget/describe", None)
            .await
            .0,
        404
    );
    assert_eq!(org.json(Method::GET, "nothing/here", None).await.0, 404);
    let resp = org
        .http
        .get(format!("{}/services/data/v25.0/limits", org.sim.base_url()))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 410);
}

#[tokio::test]
async fn id_named_as_the_key_creates_and_reaches_a_record_by_its_id() {
    let org = org().await;
    let (status, created) = org
        .json(
            Method::POST,
            "sobjects/Contact/Id",
            Some(json!({ "LastName": "Keyed" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, updated) = org
        .json(
            Method::PATCH,
            &format!("sobjects/Contact/Id/{id}"),
            Some(json!({ "Title": "Engineer" })),
        )
        .await;
    assert_eq!(status, 200, "an upsert's answer");
    assert_eq!(
        updated,
        json!({ "id": id, "success": true, "errors": [], "created": false })
    );
    let (status, fetched) = org
        .json(Method::GET, &format!("sobjects/Contact/Id/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched["Title"], "Engineer");
}

#[tokio::test]
async fn upsert_by_external_id_creates_then_updates_then_reports_ambiguity() {
    let org = org().await;
    let (status, body) = org
        .json(
            Method::PATCH,
            "sobjects/Contact/Helpdesk_Id__c/HD-1",
            Some(json!({ "LastName": "Ng" })),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["created"], true);
    let (status, again) = org
        .json(
            Method::PATCH,
            "sobjects/Contact/Helpdesk_Id__c/HD-1",
            Some(json!({ "LastName": "Ngo" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        again,
        json!({ "id": body["id"], "success": true, "errors": [], "created": false })
    );
    let (_, fetched) = org
        .json(Method::GET, "sobjects/Contact/Helpdesk_Id__c/HD-1", None)
        .await;
    assert_eq!(fetched["LastName"], "Ngo");

    org.sim
        .insert(
            "Contact",
            json!({ "LastName": "Twin", "Helpdesk_Id__c": "HD-2" }),
        )
        .unwrap();
    let duplicate = org
        .sim
        .insert(
            "Contact",
            json!({ "LastName": "Twin", "Helpdesk_Id__c": "hd-2" }),
        )
        .unwrap_err();
    assert_eq!(duplicate.code, "DUPLICATE_VALUE");
    // An org whose field is not unique lets records share it, and an upsert by it is
    // ambiguous.
    org.sim.share_field("Contact", "Helpdesk_Id__c").unwrap();
    org.sim
        .insert(
            "Contact",
            json!({ "LastName": "Twin", "Helpdesk_Id__c": "HD-2" }),
        )
        .unwrap();
    let (status, urls) = org
        .json(
            Method::PATCH,
            "sobjects/Contact/Helpdesk_Id__c/HD-2",
            Some(json!({ "LastName": "X" })),
        )
        .await;
    assert_eq!(status, 300);
    assert_eq!(urls.as_array().unwrap().len(), 2);
    let (status, _) = org
        .json(
            Method::PATCH,
            "sobjects/Contact/LastName/Ng",
            Some(json!({ "FirstName": "X" })),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn describe_lists_fields_with_flags() {
    let org = org().await;
    let (status, global) = org.json(Method::GET, "sobjects/", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for expected in [
        "Account",
        "Contact",
        "Opportunity",
        "OpportunityContactRole",
        "Note",
        "Task",
        "Event",
        "User",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    let (_, contact) = org
        .json(Method::GET, "sobjects/contact/describe", None)
        .await;
    let field = |name: &str| {
        contact["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(field("LastName")["length"], 80);
    assert_eq!(field("LastName")["nillable"], false);
    assert_eq!(field("Helpdesk_Id__c")["externalId"], true);
    assert_eq!(field("Helpdesk_Id__c")["custom"], true);
    assert_eq!(field("AccountId")["referenceTo"], json!(["Account"]));
    assert_eq!(field("SystemModstamp")["updateable"], false);
    let (_, account) = org
        .json(Method::GET, "sobjects/Account/describe", None)
        .await;
    assert!(
        account["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Subscription_Type__c")
    );
}

#[tokio::test]
async fn updated_and_deleted_windows_list_changes() {
    let org = org().await;
    let kept = org
        .sim
        .insert("Contact", json!({ "LastName": "Kept" }))
        .unwrap();
    let gone = org
        .sim
        .insert("Contact", json!({ "LastName": "Gone" }))
        .unwrap();
    org.sim.delete("Contact", &gone).unwrap();
    org.sim.advance_clock(120);
    let now = chrono::Utc::now() + chrono::Duration::seconds(120);
    let start = (now - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let end = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let resp = org
        .http
        .get(org.url("sobjects/Contact/updated/"))
        .query(&[("start", &start), ("end", &end)])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let updated: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(updated["ids"], json!([kept]));
    assert!(
        updated["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    let resp = org
        .http
        .get(org.url("sobjects/Contact/deleted"))
        .query(&[("start", &start), ("end", &end)])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let deleted: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(deleted["deletedRecords"][0]["id"], json!(gone));
    let resp = org
        .http
        .get(org.url("sobjects/Contact/deleted"))
        .query(&[("start", &end), ("end", &start)])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn a_restricted_picklist_says_so_and_takes_only_its_values() {
    let org = org().await;
    let (status, _) = org
        .json(
            Method::POST,
            "sobjects/Account",
            Some(json!({ "Name": "Before", "Industry": "Widgets" })),
        )
        .await;
    assert_eq!(status, 201, "an unrestricted picklist takes any value");
    org.sim.restrict_picklist("Account", "Industry").unwrap();
    let (_, describe) = org
        .json(Method::GET, "sobjects/Account/describe", None)
        .await;
    let field = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Industry")
        .unwrap();
    assert_eq!(field["restrictedPicklist"], true);
    assert_eq!(field["picklistValues"][0]["value"], "Agriculture");
    let (status, error) = org
        .json(
            Method::POST,
            "sobjects/Account",
            Some(json!({ "Name": "After", "Industry": "Widgets" })),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        error[0]["errorCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(
        error[0]["message"],
        "Industry: bad value for restricted picklist field: Widgets"
    );
    assert_eq!(error[0]["fields"], json!(["Industry"]));
    let (status, _) = org
        .json(
            Method::POST,
            "sobjects/Account",
            Some(json!({ "Name": "After", "Industry": "Banking" })),
        )
        .await;
    assert_eq!(status, 201);
    assert!(
        org.sim.restrict_picklist("Account", "Name").is_err(),
        "not a picklist"
    );
}

#[tokio::test]
async fn a_helpdesk_id_field_without_the_external_id_flag_cannot_be_upserted_by() {
    let org = org().await;
    org.sim
        .make_plain_field("Contact", "Helpdesk_Id__c")
        .unwrap();
    let (_, describe) = org
        .json(Method::GET, "sobjects/Contact/describe", None)
        .await;
    let field = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Helpdesk_Id__c")
        .unwrap();
    assert_eq!(field["externalId"], false);
    assert_eq!(field["createable"], true, "still a field a create can fill");
    let (status, error) = org
        .json(
            Method::PATCH,
            "sobjects/Contact/Helpdesk_Id__c/HD-1",
            Some(json!({ "LastName": "Ng" })),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(error[0]["errorCode"], "NOT_FOUND");
    let (status, error) = org
        .json(
            Method::PATCH,
            "composite/sobjects/Contact/Helpdesk_Id__c",
            Some(json!({ "allOrNone": false, "records": [
                { "attributes": { "type": "Contact" }, "LastName": "Ng", "Helpdesk_Id__c": "HD-1" }
            ] })),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(error[0]["errorCode"], "NOT_FOUND");
    assert_eq!(org.sim.count("Contact"), 0, "nothing was written");
}

#[tokio::test]
async fn enhanced_notes_are_linked_to_records_and_read_through_their_links() {
    let org = org().await;
    let (_, contact) = org
        .json(
            Method::POST,
            "sobjects/Contact/",
            Some(json!({ "LastName": "Okafor" })),
        )
        .await;
    let contact = contact["id"].as_str().unwrap().to_owned();
    // Content is written base64-encoded, as Salesforce requires.
    let (status, refused) = org
        .json(
            Method::POST,
            "sobjects/ContentNote/",
            Some(json!({ "Title": "Raw", "Content": "not base64!" })),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused[0]["errorCode"], "JSON_PARSER_ERROR");
    use base64::Engine;
    let content = base64::engine::general_purpose::STANDARD
        .encode("<p>Wants the <b>premium</b> plan.</p><p>Call back Monday.</p>");
    let (status, note) = org
        .json(
            Method::POST,
            "sobjects/ContentNote/",
            Some(json!({ "Title": "Upgrade", "Content": content })),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    let note = note["id"].as_str().unwrap().to_owned();
    assert!(note.starts_with("069"));
    let (status, link) = org
        .json(
            Method::POST,
            "sobjects/ContentDocumentLink/",
            Some(json!({ "ContentDocumentId": note, "LinkedEntityId": contact })),
        )
        .await;
    assert_eq!(status, 201, "{link}");

    let (status, links) = org
        .query(&format!(
            "SELECT ContentDocumentId, LinkedEntityId, ShareType FROM ContentDocumentLink WHERE LinkedEntityId IN ('{contact}') AND ContentDocument.FileType = 'SNOTE'"
        ))
        .await;
    assert_eq!(status, 200, "{links}");
    assert_eq!(links["records"][0]["ContentDocumentId"], note);
    assert_eq!(links["records"][0]["ShareType"], "V");
    let (_, notes) = org
        .query(&format!(
            "SELECT Id, Title, TextPreview, FileType, Content FROM ContentNote WHERE Id = '{note}'"
        ))
        .await;
    let read = &notes["records"][0];
    assert_eq!(
        read["TextPreview"],
        "Wants the premium plan. Call back Monday."
    );
    assert_eq!(read["FileType"], "SNOTE");
    assert_eq!(
        read["Content"],
        format!("/services/data/v62.0/sobjects/ContentNote/{note}/Content"),
        "a file's body is read as its blob's URL"
    );

    // Links are read only by the documents or the records they link.
    let (status, unfiltered) = org.query("SELECT Id FROM ContentDocumentLink").await;
    assert_eq!(status, 400);
    assert_eq!(unfiltered[0]["errorCode"], "MALFORMED_QUERY");
    let (status, _) = org
        .query(&format!(
            "SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId != '{contact}'"
        ))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_org_without_a_custom_field_does_not_know_it() {
    let org = org().await;
    org.sim.remove_field("Contact", "Helpdesk_Id__c").unwrap();
    assert!(
        org.sim.remove_field("Contact", "LastName").is_err(),
        "only custom fields can be missing"
    );
    let (_, describe) = org
        .json(Method::GET, "sobjects/Contact/describe", None)
        .await;
    assert!(
        !describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Helpdesk_Id__c")
    );
    let (status, refused) = org
        .json(
            Method::POST,
            "sobjects/Contact/",
            Some(json!({ "LastName": "Ng", "Helpdesk_Id__c": "7" })),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused[0]["errorCode"], "INVALID_FIELD");
    let (status, created) = org
        .json(
            Method::POST,
            "sobjects/Contact/",
            Some(json!({ "LastName": "Ng" })),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap();
    let (_, record) = org
        .json(Method::GET, &format!("sobjects/Contact/{id}"), None)
        .await;
    assert!(record.get("Helpdesk_Id__c").is_none(), "{record}");
    let (status, refused) = org
        .query("SELECT Id FROM Contact WHERE Helpdesk_Id__c = '7'")
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused[0]["errorCode"], "INVALID_FIELD");
    let (status, _) = org.query("SELECT Id, Helpdesk_Id__c FROM Contact").await;
    assert_eq!(status, 400);
}

/// The ids of a query's records.
fn ids(body: &serde_json::Value) -> Vec<&str> {
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn deleting_an_opportunity_sends_its_contact_roles_to_the_recycle_bin() {
    let org = org().await;
    let contact = org.put("Contact", json!({ "LastName": "Lindqvist" }));
    let opportunity = |name: &str| {
        org.put(
            "Opportunity",
            json!({ "Name": name, "StageName": "Prospecting", "CloseDate": "2030-01-31" }),
        )
    };
    let (lost, kept) = (opportunity("Renewal"), opportunity("Upsell"));
    let role = |opp: &str| {
        org.put(
            "OpportunityContactRole",
            json!({ "OpportunityId": opp, "ContactId": contact, "Role": "Decision Maker" }),
        )
    };
    let (gone, stays) = (role(&lost), role(&kept));

    let resp = org
        .call(
            Method::DELETE,
            &format!("sobjects/Opportunity/{lost}"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 204);

    let soql = format!(
        "SELECT Id, IsDeleted FROM OpportunityContactRole WHERE ContactId = '{contact}' ORDER BY Id"
    );
    let (status, live) = org.query(&soql).await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(ids(&live), [stays.as_str()]);
    let (_, all) = org.query_all(&soql).await;
    assert_eq!(ids(&all), [gone.as_str(), stays.as_str()]);
    assert_eq!(all["records"][0]["IsDeleted"], true);
    assert_eq!(org.sim.count("Contact"), 1);
}

#[tokio::test]
async fn deleting_a_contact_keeps_only_the_activities_that_name_a_live_record() {
    let org = org().await;
    let account = org.put("Account", json!({ "Name": "Acme" }));
    let contact = org.put(
        "Contact",
        json!({ "LastName": "Ndiaye", "AccountId": account }),
    );
    let related = org.put(
        "Task",
        json!({ "Subject": "Renewal call", "WhoId": contact, "WhatId": account }),
    );
    let own = org.put("Task", json!({ "Subject": "Follow up", "WhoId": contact }));
    let note = org.put(
        "Note",
        json!({ "Title": "Prefers email", "ParentId": contact }),
    );

    org.sim.delete("Contact", &contact).unwrap();

    let tasks = format!("SELECT Id FROM Task WHERE Id IN ('{related}', '{own}') ORDER BY Id");
    assert_eq!(ids(&org.query(&tasks).await.1), [related.as_str()]);
    assert_eq!(
        ids(&org.query_all(&tasks).await.1),
        [related.as_str(), own.as_str()]
    );
    assert_eq!(org.sim.get("Note", &note).unwrap()["IsDeleted"], true);

    // With its account gone too, the remaining task has no live record left.
    org.sim.delete("Account", &account).unwrap();
    assert_eq!(org.query(&tasks).await.1["totalSize"], 0);
    assert_eq!(org.sim.get("Task", &related).unwrap()["IsDeleted"], true);
}

#[tokio::test]
async fn deleting_an_account_takes_its_records_and_theirs() {
    let org = org().await;
    let account = org.put("Account", json!({ "Name": "Acme" }));
    let contact = org.put(
        "Contact",
        json!({ "LastName": "Haddad", "AccountId": account }),
    );
    let opportunity = org.put("Opportunity",
            json!({ "Name": "Pilot", "StageName": "Prospecting", "CloseDate": "2030-01-31", "AccountId": account }),);
    org.put(
        "OpportunityContactRole",
        json!({ "OpportunityId": opportunity, "ContactId": contact }),
    );
    org.put(
        "Note",
        json!({ "Title": "Budget", "ParentId": opportunity }),
    );
    org.put("Event",
            json!({ "Subject": "Demo", "WhoId": contact, "WhatId": opportunity,
                    "StartDateTime": "2030-01-10T10:00:00Z", "EndDateTime": "2030-01-10T11:00:00Z" }),);
    let document = org.put("ContentNote", json!({ "Title": "Minutes" }));
    org.put(
        "ContentDocumentLink",
        json!({ "ContentDocumentId": document, "LinkedEntityId": contact }),
    );

    org.sim.delete("Account", &account).unwrap();

    for object in [
        "Account",
        "Contact",
        "Opportunity",
        "OpportunityContactRole",
        "Note",
        "Event",
        "ContentDocumentLink",
    ] {
        assert_eq!(org.sim.count(object), 0, "{object}");
    }
    assert_eq!(org.sim.count("ContentNote"), 1);
}

#[tokio::test]
async fn a_record_fifteen_days_in_the_recycle_bin_is_gone_for_good() {
    let mut org = org().await;
    let contact = org.put("Contact", json!({ "LastName": "Binned" }));
    org.sim.delete("Contact", &contact).unwrap();
    let soql = format!("SELECT Id FROM Contact WHERE Id = '{contact}'");
    assert_eq!(ids(&org.query_all(&soql).await.1), [contact.as_str()]);
    let path = format!("sobjects/Contact/{contact}");
    let (status, body) = org.json(Method::GET, &path, None).await;
    assert_eq!(
        (status, &body[0]["errorCode"]),
        (404, &json!("ENTITY_IS_DELETED"))
    );

    org.sim.advance_clock(16 * 86_400);
    // Sessions end long before that: sign in again.
    org.token = org.sim.access_token();
    let (status, body) = org.query_all(&soql).await;
    assert_eq!(body["totalSize"], 0, "{status} {body}");
    let (status, body) = org.json(Method::GET, &path, None).await;
    assert_eq!((status, &body[0]["errorCode"]), (404, &json!("NOT_FOUND")));
}

#[tokio::test]
async fn a_relationship_into_the_recycle_bin_reads_null() {
    let org = org().await;
    let account = org.put("Account", json!({ "Name": "Acme" }));
    let contact = org.put("Contact", json!({ "LastName": "Moreau" }));
    let task = org.put(
        "Task",
        json!({ "Subject": "Quote", "WhoId": contact, "WhatId": account }),
    );

    org.sim.delete("Contact", &contact).unwrap();

    let (status, body) = org
        .query(&format!(
            "SELECT Id, Who.Name, What.Name FROM Task WHERE Id = '{task}'"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"][0]["Who"], json!(null));
    assert_eq!(body["records"][0]["What"]["Name"], "Acme");
    let (_, body) = org
        .query("SELECT Id FROM Task WHERE Who.LastName = 'Moreau'")
        .await;
    assert_eq!(body["totalSize"], 0);
}

#[tokio::test]
async fn a_record_made_through_the_api_is_the_integration_users_and_one_made_by_hand_a_persons() {
    let org = org().await;
    let (_, created) = org
        .json(
            Method::POST,
            "sobjects/Contact/",
            Some(json!({ "LastName": "Api" })),
        )
        .await;
    let by_api = org
        .sim
        .get("Contact", created["id"].as_str().unwrap())
        .unwrap();
    let by_hand = org
        .sim
        .insert("Contact", json!({ "LastName": "Hand" }))
        .unwrap();
    let by_hand = org.sim.get("Contact", &by_hand).unwrap();
    let integration = by_api["CreatedById"].as_str().unwrap();
    assert_eq!(by_api["LastModifiedById"], integration);
    assert!(integration.starts_with("005"));
    let person = by_hand["CreatedById"].as_str().unwrap();
    assert!(person.starts_with("005"));
    assert_ne!(person, integration);
    assert_eq!(by_hand["LastModifiedById"], person);
}
