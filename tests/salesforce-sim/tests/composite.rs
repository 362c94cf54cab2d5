#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::json;
use support::org;

#[tokio::test]
async fn all_or_none_rolls_back_every_record() {
    let org = org().await;
    let body = json!({ "allOrNone": true, "records": [
        { "attributes": { "type": "Contact" }, "LastName": "Fine" },
        { "attributes": { "type": "Contact" }, "FirstName": "NoLast" },
    ]});
    let (status, results) = org
        .json(Method::POST, "composite/sobjects", Some(body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(results[1]["errors"][0]["fields"], json!(["LastName"]));
    assert_eq!(org.sim.count("Contact"), 0);
}

#[tokio::test]
async fn partial_success_without_all_or_none() {
    let org = org().await;
    let body = json!({ "allOrNone": false, "records": [
        { "attributes": { "type": "Contact" }, "LastName": "Fine" },
        { "attributes": { "type": "Account" }, "Name": "Acme" },
        { "attributes": { "type": "Contact" }, "FirstName": "NoLast" },
    ]});
    let (_, results) = org
        .json(Method::POST, "composite/sobjects", Some(body))
        .await;
    assert_eq!(results[0]["success"], true);
    assert!(results[1]["id"].as_str().unwrap().starts_with("001"));
    assert_eq!(results[2]["success"], false);
    assert_eq!(org.sim.count("Contact"), 1);

    let contact = results[0]["id"].as_str().unwrap();
    let update = json!({ "records": [{ "attributes": { "type": "Contact" }, "id": contact, "Title": "CTO" }] });
    let (_, updated) = org
        .json(Method::PATCH, "composite/sobjects", Some(update))
        .await;
    assert_eq!(updated[0]["success"], true);
    let (_, fetched) = org
        .json(
            Method::GET,
            &format!("composite/sobjects/Contact?ids={contact},0035g0000000099AAA&fields=Title"),
            None,
        )
        .await;
    assert_eq!(fetched[0]["Title"], "CTO");
    assert_eq!(fetched[1], serde_json::Value::Null);

    let (_, deleted) = org
        .json(
            Method::DELETE,
            &format!("composite/sobjects?ids={contact}&allOrNone=true"),
            None,
        )
        .await;
    assert_eq!(
        deleted[0],
        json!({ "id": contact, "success": true, "errors": [] })
    );
    assert_eq!(org.sim.count("Contact"), 0);
}

#[tokio::test]
async fn collection_upsert_reports_created() {
    let org = org().await;
    let body = json!({ "allOrNone": false, "records": [
        { "attributes": { "type": "Contact" }, "Helpdesk_Id__c": "A", "LastName": "One" },
    ]});
    let (_, first) = org
        .json(
            Method::PATCH,
            "composite/sobjects/Contact/Helpdesk_Id__c",
            Some(body.clone()),
        )
        .await;
    assert_eq!(first[0]["created"], true);
    let (_, second) = org
        .json(
            Method::PATCH,
            "composite/sobjects/Contact/Helpdesk_Id__c",
            Some(body),
        )
        .await;
    assert_eq!(second[0]["created"], false);
    assert_eq!(second[0]["id"], first[0]["id"]);
}

#[tokio::test]
async fn more_than_two_hundred_records_is_refused() {
    let org = org().await;
    let records: Vec<_> = (0..201)
        .map(|i| json!({ "attributes": { "type": "Contact" }, "LastName": format!("C{i}") }))
        .collect();
    let (status, body) = org
        .json(
            Method::POST,
            "composite/sobjects",
            Some(json!({ "records": records })),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "EXCEEDED_ID_LIMIT");
}
