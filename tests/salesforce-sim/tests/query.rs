#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use salesforce_sim::SimConfig;
use serde_json::{Value, json};
use support::{org, org_with};

#[tokio::test]
async fn an_eleventh_open_query_drops_the_oldest_locator() {
    let org = org_with(SimConfig {
        records: 2_100,
        ..SimConfig::default()
    })
    .await;
    let mut next = Vec::new();
    for _ in 0..11 {
        let (_, page) = org.query("SELECT Id FROM Contact").await;
        next.push(page["nextRecordsUrl"].as_str().unwrap().to_owned());
    }
    let follow = |url: String| {
        let request = org
            .http
            .get(format!("{}{url}", org.sim.base_url()))
            .bearer_auth(&org.token);
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = follow(next[0].clone()).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_LOCATOR", "{body}");
    let (status, body) = follow(next[1].clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["done"], true);
}

#[tokio::test]
async fn pages_of_two_thousand_follow_next_records_url() {
    let org = org_with(SimConfig {
        records: 2_500,
        ..SimConfig::default()
    })
    .await;
    let (status, first) = org.query("SELECT Id, LastName FROM Contact").await;
    assert_eq!(status, 200);
    assert_eq!(first["totalSize"], 2_500);
    assert_eq!(first["done"], false);
    assert_eq!(first["records"].as_array().unwrap().len(), 2_000);
    let next = first["nextRecordsUrl"].as_str().unwrap();
    assert!(next.starts_with("/services/data/v62.0/query/01g"));
    let locator = next.rsplit('/').next().unwrap();
    assert!(!locator.contains('/'));
    let resp = org
        .http
        .get(format!("{}{next}", org.sim.base_url()))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let second: Value = resp.json().await.unwrap();
    assert_eq!(second["done"], true);
    assert_eq!(second["records"].as_array().unwrap().len(), 500);
    assert!(second.get("nextRecordsUrl").is_none());
}

#[tokio::test]
async fn where_order_limit_offset_and_parent_fields() {
    let org = org().await;
    let acme = org
        .sim
        .insert("Account", json!({ "Name": "Acme" }))
        .unwrap();
    for (first, last, email) in [
        ("Ann", "Zed", Value::Null),
        ("bob", "Young", json!("bob@x.io")),
        ("Cy", "Xu", json!("cy@x.io")),
    ] {
        org.sim
            .insert(
                "Contact",
                json!({ "FirstName": first, "LastName": last, "Email": email, "AccountId": acme }),
            )
            .unwrap();
    }
    org.sim
        .insert("Contact", json!({ "LastName": "Loner" }))
        .unwrap();
    let (_, r) = org
        .query("SELECT FirstName, Account.Name FROM Contact WHERE Account.Name = 'ACME' AND (Email = null OR FirstName LIKE 'b%') ORDER BY FirstName DESC")
        .await;
    let names: Vec<&str> = r["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["FirstName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "Ann"]);
    assert_eq!(r["records"][0]["Account"]["Name"], "Acme");
    assert_eq!(r["records"][0]["Account"]["attributes"]["type"], "Account");

    // Nulls come first unless told, descending as well as ascending.
    for direction in ["ASC", "DESC"] {
        let (_, r) = org
            .query(&format!(
                "SELECT Email FROM Contact ORDER BY Email {direction} LIMIT 1"
            ))
            .await;
        assert_eq!(r["records"][0]["Email"], Value::Null, "{direction}: {r}");
    }

    let (_, r) = org.query("SELECT LastName, Account.Name FROM Contact ORDER BY Email NULLS LAST, LastName LIMIT 2 OFFSET 1").await;
    let names: Vec<&str> = r["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["LastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Xu", "Loner"]);
    assert_eq!(r["records"][1]["Account"], Value::Null);

    let (_, r) = org
        .query("SELECT COUNT() FROM Contact WHERE NOT LastName IN ('Zed', 'Young')")
        .await;
    assert_eq!(r, json!({ "totalSize": 2, "done": true, "records": [] }));
    let (_, r) = org
        .query(&format!(
            "SELECT Id FROM Contact WHERE AccountId = '{}'",
            &acme[..15]
        ))
        .await;
    assert_eq!(r["totalSize"], 3);
}

#[tokio::test]
async fn escaped_strings_and_datetime_literals() {
    let org = org().await;
    let id = org
        .sim
        .insert("Contact", json!({ "LastName": "O'Brien \\ \"Jr\"\n" }))
        .unwrap();
    org.sim
        .insert("Contact", json!({ "LastName": "OBrien" }))
        .unwrap();
    let (status, r) = org
        .query(r#"SELECT Id FROM Contact WHERE LastName = 'O\'Brien \\ \"Jr\"\n'"#)
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["records"][0]["Id"], json!(id));
    assert_eq!(r["totalSize"], 1);
    let (_, r) = org.query("SELECT Id FROM Contact WHERE SystemModstamp > 2020-01-01T00:00:00Z AND CreatedDate < 2999-01-01T00:00:00.000+01:00").await;
    assert_eq!(r["totalSize"], 2);
    let (_, r) = org
        .query("SELECT Id FROM Contact WHERE LastName LIKE 'O\\_Brien'")
        .await;
    assert_eq!(r["totalSize"], 0);
}

#[tokio::test]
async fn soql_errors_match_the_real_api() {
    let org = org().await;
    let cases = [
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY"),
        ("SELECT Id Contact", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Contact WHERE A = 1 AND B = 2 OR C = 3",
            "MALFORMED_QUERY",
        ),
        (
            "SELECT Id FROM Contact WHERE LastName = 'bad\\q'",
            "MALFORMED_QUERY",
        ),
        ("SELECT Foo FROM Contact", "INVALID_FIELD"),
        ("SELECT Id, Name, id FROM Contact", "MALFORMED_QUERY"),
        (
            "SELECT Account.Name, Contact.account.name FROM Contact",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Widget", "INVALID_TYPE"),
        (
            "SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01T00:00:00Z'",
            "INVALID_QUERY_FILTER_OPERATOR",
        ),
        // A long text area may be read, never filtered on.
        (
            "SELECT Id FROM Account WHERE Description IN ('x')",
            "INVALID_FIELD",
        ),
    ];
    for (soql, code) in cases {
        let (status, body) = org.query(soql).await;
        assert_eq!(
            (status, body[0]["errorCode"].as_str().unwrap()),
            (400, code),
            "{soql}"
        );
    }
    let (_, body) = org.query("SELECT Foo FROM Contact").await;
    assert!(
        body[0]["message"]
            .as_str()
            .unwrap()
            .contains("No such column 'Foo' on entity 'Contact'")
    );
    assert!(
        body[0]["message"]
            .as_str()
            .unwrap()
            .contains("ERROR at Row:1:Column:8")
    );
    let (status, body) = org
        .query("SELECT Description FROM Account WHERE Description LIKE '%x%'")
        .await;
    assert_eq!(status, 400);
    let message = body[0]["message"].as_str().unwrap();
    assert!(
        message.contains("field 'Description' can not be filtered in query call")
            && message.contains("ERROR at Row:1:Column:39"),
        "{message}"
    );
    // Nor sorted on, as describe's `sortable` says.
    let (status, body) = org
        .query("SELECT Name FROM Account ORDER BY Description")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD");
    let message = body[0]["message"].as_str().unwrap();
    assert!(
        message.contains("field 'Description' can not be sorted in a query call"),
        "{message}"
    );
}

#[tokio::test]
async fn query_all_sees_the_recycle_bin() {
    let org = org().await;
    let id = org
        .sim
        .insert("Contact", json!({ "LastName": "Gone" }))
        .unwrap();
    assert_eq!(
        org.call(Method::DELETE, &format!("sobjects/Contact/{id}"), None)
            .await
            .status(),
        204
    );
    assert_eq!(org.query("SELECT Id FROM Contact").await.1["totalSize"], 0);
    let resp = org
        .http
        .get(org.url("queryAll/"))
        .query(&[(
            "q",
            "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true",
        )])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["records"][0]["IsDeleted"], true);
}

#[tokio::test]
async fn date_constants_follow_the_org_clock() {
    let org = org().await;
    org.sim
        .insert("Contact", json!({ "LastName": "Recent" }))
        .unwrap();
    let count = |soql: &'static str| {
        let org = &org;
        async move {
            let body = org.query(soql).await.1;
            body["totalSize"]
                .as_u64()
                .unwrap_or_else(|| panic!("{soql}: {body}"))
        }
    };
    assert_eq!(
        count("SELECT COUNT() FROM Contact WHERE CreatedDate = LAST_N_DAYS:1").await,
        1
    );
    assert_eq!(
        count("SELECT COUNT() FROM Contact WHERE CreatedDate = TOMORROW").await,
        0
    );
    org.sim.set_token_ttl(None);
    org.sim.advance_clock(5 * 86_400);
    assert_eq!(
        count("SELECT COUNT() FROM Contact WHERE CreatedDate = LAST_N_DAYS:1").await,
        0
    );
    assert_eq!(
        count("SELECT COUNT() FROM Contact WHERE CreatedDate < YESTERDAY").await,
        1
    );
    assert_eq!(
        org.query("SELECT Id FROM Contact WHERE CreatedDate = SOMEDAY")
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn child_relationship_subqueries_nest_each_parents_records() {
    let org = org().await;
    let acme = org
        .sim
        .insert("Account", json!({ "Name": "Acme Subquery" }))
        .unwrap();
    org.sim
        .insert("Account", json!({ "Name": "Empty Subquery" }))
        .unwrap();
    for last in ["Zed", "Young", "Xu"] {
        org.sim
            .insert("Contact", json!({ "LastName": last, "AccountId": acme }))
            .unwrap();
    }
    let (status, r) = org
        .query(
            "SELECT Name, (SELECT LastName FROM Contacts WHERE LastName != 'Young' ORDER BY LastName LIMIT 5) \
             FROM Account WHERE Name LIKE '%Subquery' ORDER BY Name",
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let acme = &r["records"][0];
    assert_eq!(acme["Name"], "Acme Subquery");
    assert_eq!(acme["Contacts"]["totalSize"], 2, "{r}");
    assert_eq!(acme["Contacts"]["done"], true);
    let names: Vec<&str> = acme["Contacts"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["LastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Xu", "Zed"]);
    assert_eq!(
        acme["Contacts"]["records"][0]["attributes"]["type"],
        "Contact"
    );
    assert_eq!(r["records"][1]["Contacts"], Value::Null, "none: null");

    // Describe names the relationship a subquery selects from.
    let (_, describe) = org
        .json(Method::GET, "sobjects/Account/describe", None)
        .await;
    assert!(
        describe["childRelationships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["childSObject"] == "Contact"
                && c["field"] == "AccountId"
                && c["relationshipName"] == "Contacts"),
        "{}",
        describe["childRelationships"]
    );

    let (status, body) = org
        .query("SELECT Name, (SELECT Id FROM Nonsense) FROM Account")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "INVALID_TYPE", "{body}");
    // One level deep only.
    let (status, body) = org
        .query("SELECT Name, (SELECT Id, (SELECT Id FROM Tasks) FROM Contacts) FROM Account")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY", "{body}");
}

#[tokio::test]
async fn a_query_locator_left_unused_for_fifteen_minutes_expires() {
    let org = org_with(SimConfig {
        records: 4_500,
        ..SimConfig::default()
    })
    .await;
    let (_, first) = org.query("SELECT Id FROM Contact").await;
    let next = |page: &Value| {
        page["nextRecordsUrl"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    // Fourteen minutes idle, then read: it lives on, and its clock starts again.
    org.sim.advance_clock(14 * 60);
    let (status, second) = org
        .json(Method::GET, &format!("query/{}", next(&first)), None)
        .await;
    assert_eq!(status, 200, "{second}");
    org.sim.advance_clock(16 * 60);
    let (status, body) = org
        .json(Method::GET, &format!("query/{}", next(&second)), None)
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_LOCATOR", "{body}");
}

#[tokio::test]
async fn archived_activities_are_read_through_query_all_alone() {
    let org = org().await;
    let who = org.put("Contact", json!({ "LastName": "Longstanding" }));
    org.put(
        "Event",
        json!({ "Subject": "Kickoff", "StartDateTime": "2024-03-01T10:00:00.000+0000", "EndDateTime": "2024-03-01T11:00:00.000+0000", "WhoId": who }),
    );
    org.put(
        "Task",
        json!({ "Subject": "Signed", "Status": "Completed", "ActivityDate": "2024-03-04", "WhoId": who }),
    );
    // An open task is never archived, however old.
    org.put(
        "Task",
        json!({ "Subject": "Still to do", "Status": "Not Started", "ActivityDate": "2024-03-04", "WhoId": who }),
    );
    let subjects = |page: &Value| -> Vec<String> {
        let mut subjects: Vec<String> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Subject"].as_str().unwrap().to_owned())
            .collect();
        subjects.sort();
        subjects
    };
    for object in ["Event", "Task"] {
        let soql = format!("SELECT Subject, IsArchived FROM {object}");
        let (_, live) = org.query(&soql).await;
        let (_, all) = org.query_all(&soql).await;
        match object {
            "Event" => {
                assert_eq!(subjects(&live), Vec::<String>::new());
                assert_eq!(subjects(&all), ["Kickoff"]);
                assert_eq!(all["records"][0]["IsArchived"], true);
            }
            _ => {
                assert_eq!(subjects(&live), ["Still to do"]);
                assert_eq!(subjects(&all), ["Signed", "Still to do"]);
            }
        }
    }
}
