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
async fn all_or_none_undoes_records_written_before_one_refused_as_it_is_written() {
    let org = org().await;
    // Both are valid alone; the second repeats the first's unique external id.
    let body = json!({ "allOrNone": true, "records": [
        { "attributes": { "type": "Contact" }, "LastName": "First", "Helpdesk_Id__c": "dup" },
        { "attributes": { "type": "Contact" }, "LastName": "Second", "Helpdesk_Id__c": "dup" },
    ]});
    let (status, results) = org
        .json(Method::POST, "composite/sobjects", Some(body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        results[0]["errors"][0]["statusCode"], "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "{results}"
    );
    assert_eq!(
        results[1]["errors"][0]["statusCode"], "DUPLICATE_VALUE",
        "{results}"
    );
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

    // An `Id` beside the external id is refused, the record matched or not.
    for value in ["A", "B"] {
        let body = json!({ "allOrNone": false, "records": [
            { "attributes": { "type": "Contact" }, "Id": first[0]["id"], "Helpdesk_Id__c": value, "LastName": "Two" },
        ]});
        let (_, answer) = org
            .json(
                Method::PATCH,
                "composite/sobjects/Contact/Helpdesk_Id__c",
                Some(body),
            )
            .await;
        assert_eq!(answer[0]["success"], false, "{value}: {answer}");
        assert_eq!(
            answer[0]["errors"][0]["statusCode"], "INVALID_FIELD_FOR_INSERT_UPDATE",
            "{value}: {answer}"
        );
    }
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

/// A `POST /composite` subrequest for a query.
fn query(reference: &str, soql: &str) -> serde_json::Value {
    let q = percent_encoding::utf8_percent_encode(soql, percent_encoding::NON_ALPHANUMERIC);
    json!({ "method": "GET", "url": format!("{}/query?q={q}", support::V), "referenceId": reference })
}

#[tokio::test]
async fn composite_runs_several_queries_as_one_call_and_fails_only_the_bad_one() {
    let org = org().await;
    let account = org
        .sim
        .insert("Account", json!({ "Name": "Acme" }))
        .unwrap();
    org.sim
        .insert(
            "Contact",
            json!({ "LastName": "Ada", "AccountId": account }),
        )
        .unwrap();
    let used = org.sim.api_usage();
    let body = json!({ "compositeRequest": [
        query("contacts", "SELECT Id, LastName FROM Contact"),
        query("bad", "SELECT Nope FROM Contact"),
        query("accounts", &format!("SELECT Name FROM Account WHERE Id = '{account}'")),
    ]});
    let (status, answer) = org.json(Method::POST, "composite", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(org.sim.api_usage() - used, 1, "one call, whatever it holds");
    let answers = answer["compositeResponse"].as_array().unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["referenceId"], "contacts");
    assert_eq!(answers[0]["httpStatusCode"], 200);
    assert_eq!(answers[0]["body"]["records"][0]["LastName"], "Ada");
    assert_eq!(answers[1]["httpStatusCode"], 400);
    assert_eq!(answers[1]["body"][0]["errorCode"], "INVALID_FIELD");
    assert_eq!(answers[2]["body"]["totalSize"], 1, "{answer}");
    assert_eq!(answers[2]["body"]["records"][0]["Name"], "Acme");
}

#[tokio::test]
async fn composite_subrequests_use_earlier_answers_and_halt_on_failed_ones() {
    let org = org().await;
    let body = json!({ "compositeRequest": [
        { "method": "POST", "url": format!("{}/sobjects/Account", support::V),
          "referenceId": "acct", "body": { "Name": "Acme" } },
        { "method": "POST", "url": format!("{}/sobjects/Contact", support::V),
          "referenceId": "ada", "body": { "LastName": "Ada", "AccountId": "@{acct.id}" } },
        { "method": "GET", "url": format!("{}/sobjects/Account/@{{acct.id}}?fields=Name", support::V),
          "referenceId": "read" },
        { "method": "POST", "url": format!("{}/sobjects/Contact", support::V),
          "referenceId": "nameless", "body": { "FirstName": "No" } },
        { "method": "PATCH", "url": format!("{}/sobjects/Contact/@{{nameless.id}}", support::V),
          "referenceId": "after", "body": { "Title": "CTO" } },
    ]});
    let (status, answer) = org.json(Method::POST, "composite", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let answers = answer["compositeResponse"].as_array().unwrap();
    assert_eq!(answers[0]["httpStatusCode"], 201);
    let account = answers[0]["body"]["id"].as_str().unwrap();
    assert!(
        answers[0]["httpHeaders"]["Location"]
            .as_str()
            .unwrap()
            .ends_with(account)
    );
    assert_eq!(answers[1]["httpStatusCode"], 201, "{answer}");
    let (_, ada) = org
        .query("SELECT AccountId FROM Contact WHERE LastName = 'Ada'")
        .await;
    assert_eq!(ada["records"][0]["AccountId"], account);
    assert_eq!(answers[2]["body"]["Name"], "Acme");
    assert_eq!(answers[3]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(answers[4]["httpStatusCode"], 400);
    assert_eq!(answers[4]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(org.sim.count("Contact"), 1);
}

#[tokio::test]
async fn composite_refuses_calls_beyond_its_limits() {
    let org = org().await;
    let six: Vec<_> = (0..6)
        .map(|n| query(&format!("q{n}"), "SELECT Id FROM Contact"))
        .collect();
    let twenty_six: Vec<_> = (0..26)
        .map(|n| json!({ "method": "GET", "url": format!("{}/sobjects/Account", support::V), "referenceId": format!("a{n}") }))
        .collect();
    let twice = vec![
        query("same", "SELECT Id FROM Contact"),
        query("same", "SELECT Id FROM Account"),
    ];
    for (requests, says) in [
        (six, "at most 5 query"),
        (twenty_six, "between 1 and 25"),
        (twice, "used more than once"),
    ] {
        let body = json!({ "compositeRequest": requests });
        let (status, answer) = org.json(Method::POST, "composite", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer[0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
}
