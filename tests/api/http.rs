use serde_json::{Value, json};

use crate::helpers::{TestApp, codes, spawn_app, spawn_app_with};

async fn post(
    app: &TestApp,
    accept: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.graphql_url())
        .bearer_auth(app.token("Agent"))
        .body(body.to_owned());
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    request.send().await.unwrap()
}

const GQL: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[tokio::test]
async fn the_response_media_type_follows_accept() {
    let app = spawn_app().await;
    let query = r#"{"query":"{ __typename }"}"#;
    for (accept, expected) in [
        (Some(GQL), GQL),
        (Some(JSON), JSON),
        (Some("*/*"), JSON),
        (None, JSON),
        // A parameter without a value is ignored, not a reason to refuse.
        (Some("application/json;"), JSON),
        (
            Some("application/graphql-response+json; charset=utf-8;"),
            GQL,
        ),
    ] {
        let response = post(&app, accept, Some(JSON), query).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            format!("{expected}; charset=utf-8"),
            "{accept:?}"
        );
    }
    let refused = post(&app, Some("text/plain"), Some(JSON), query).await;
    assert_eq!(refused.status(), 406);
}

#[tokio::test]
async fn answers_are_marked_for_no_cache_between_to_keep_or_share() {
    let app = spawn_app().await;
    let posted = post(&app, None, Some(JSON), r#"{"query":"{ __typename }"}"#).await;
    let got = app
        .client
        .get(format!("{}?query=%7B__typename%7D", app.graphql_url()))
        .bearer_auth(app.token("Agent"))
        .send()
        .await
        .unwrap();
    let page = app
        .client
        .get(app.graphql_url())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    for response in [posted, got, page] {
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "private, no-store", "{headers:?}");
        assert_eq!(headers["vary"], "Accept, Authorization", "{headers:?}");
    }
}

#[tokio::test]
async fn a_subscription_sent_over_http_is_pointed_to_the_websocket() {
    let app = spawn_app().await;
    let subscribe = |accept: &'static str| {
        app.client
            .get(format!(
                "{}?query=subscription%7BsyncEvents%7Bid%7D%7D",
                app.graphql_url()
            ))
            .bearer_auth(app.token("Administrator"))
            .header("accept", accept)
            .send()
    };
    let response = subscribe(GQL).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket"),
        "{body}"
    );
    // Under plain JSON a request error is answered 200, as every other is.
    assert_eq!(subscribe(JSON).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_store_that_cannot_check_the_token_says_when_to_try_again() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    // The profiles cannot be read, as with the database down.
    app.store
        .connection()
        .execute_unprepared("ALTER TABLE profile RENAME TO profile_away")
        .await
        .unwrap();
    let response = post(&app, None, Some(JSON), r#"{"query":"{ __typename }"}"#).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.http.body_timeout_secs = 1).await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"query\":",
        app.token("Agent")
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The rest never comes.
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("an answer, not a wait for the rest")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("http.body_timeout_secs"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

#[tokio::test]
async fn a_response_keeps_the_order_of_its_selection() {
    let app = spawn_app().await;
    let query =
        r#"{"query":"{ zeta: __typename me { profile { name } agentId } alpha: __typename }"}"#;
    let response = post(&app, Some(JSON), Some(JSON), query).await;
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"data":{"zeta":"Query","me":{"profile":{"name":"Agent"},"agentId":"1"},"alpha":"Query"}}"#
    );
    let batch = post(
        &app,
        Some(JSON),
        Some(JSON),
        r#"[{"query":"{ b: __typename a: __typename }"},{"query":"{ nope }"}]"#,
    )
    .await;
    let text = batch.text().await.unwrap();
    assert!(
        text.starts_with(r#"[{"data":{"b":"Query","a":"Query"}},{"errors":[{"message":"#),
        "a request error has no data and its message comes first: {text}"
    );
    // As deep in fragments as a document may go.
    let chain: String = (0..24)
        .map(|n| format!("fragment f{n} on Query {{ ...f{} }} ", n + 1))
        .collect();
    let query = format!(
        "{{ z: __typename ...f0 }} {chain} fragment f24 on Query {{ b: contacts(first: 1) {{ totalCount }} a: __typename }}"
    );
    let deep = post(
        &app,
        Some(JSON),
        Some(JSON),
        &json!({ "query": query }).to_string(),
    )
    .await;
    assert_eq!(
        deep.text().await.unwrap(),
        r#"{"data":{"z":"Query","b":{"totalCount":0},"a":"Query"}}"#
    );
}

#[tokio::test]
async fn request_errors_are_400_for_graphql_response_json_and_200_for_json() {
    let app = spawn_app().await;
    let invalid = r#"{"query":"{ notAField }"}"#;
    let strict = post(&app, Some(GQL), Some(JSON), invalid).await;
    assert_eq!(strict.status(), 400);
    let body: Value = strict.json().await.unwrap();
    assert!(
        body.get("data").is_none(),
        "a request error has no data entry"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let legacy = post(&app, Some(JSON), Some(JSON), invalid).await;
    assert_eq!(legacy.status(), 200);

    let field_error = post(
        &app,
        Some(GQL),
        Some(JSON),
        r#"{"query":"{ me { agentId } contact(id: \"x\") { id } }"}"#,
    )
    .await;
    assert_eq!(
        field_error.status(),
        200,
        "an error during execution still has data"
    );
    let body: Value = field_error.json().await.unwrap();
    assert_eq!(body["data"]["me"], json!({ "agentId": "1" }));
    assert_eq!(body["errors"][0]["path"], json!(["contact"]));
}

#[tokio::test]
async fn malformed_requests_are_refused_before_execution() {
    let app = spawn_app().await;
    let cases = [
        ("{not json", 400),
        (r#"{"variables":{}}"#, 400),
        (r#"{"query":42}"#, 400),
        (r#"{"query":"{ __typename }","variables":"x"}"#, 400),
        (r#"{"query":"{ __typename }","operationName":7}"#, 400),
        (r#"{"query":"{ __typename }","extensions":[]}"#, 400),
        (r#""just a string""#, 400),
        ("[]", 400),
    ];
    for (body, status) in cases {
        assert_eq!(
            post(&app, Some(GQL), Some(JSON), body).await.status(),
            status,
            "{body}"
        );
    }
    assert_eq!(
        post(
            &app,
            Some(GQL),
            Some("text/plain"),
            r#"{"query":"{ __typename }"}"#
        )
        .await
        .status(),
        415
    );
    assert_eq!(
        post(&app, Some(GQL), None, r#"{"query":"{ __typename }"}"#)
            .await
            .status(),
        415
    );
    let nulls =
        r#"{"query":"{ __typename }","variables":null,"operationName":null,"extensions":null}"#;
    assert_eq!(
        post(
            &app,
            Some(GQL),
            Some("application/json; charset=utf-8"),
            nulls
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn queries_run_over_get_but_mutations_do_not() {
    let app = spawn_app().await;
    let token = app.token("Agent");
    let ok = app
        .client
        .get(app.graphql_url())
        .query(&[
            (
                "query",
                "query Q($n: Int) { contacts(first: $n) { nodes { id } } }",
            ),
            ("variables", r#"{"n":1}"#),
            ("operationName", "Q"),
        ])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap(),
        json!({ "data": { "contacts": { "nodes": [] } } })
    );

    let mutation = app
        .client
        .get(app.graphql_url())
        .query(&[(
            "query",
            "mutation { createAccount(input: { name: \"x\" }) { id } }",
        )])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);
    assert_eq!(mutation.headers()["allow"], "POST");
    let none = app.gql_ok("{ accounts { nodes { id } } }", json!({})).await;
    assert_eq!(
        none["accounts"]["nodes"],
        json!([]),
        "the GET mutation wrote nothing"
    );
}

/// The gateway keeps parsed documents by their text; each request still runs the operation
/// it names, with its own variables, and GET still refuses a document's mutation.
#[tokio::test]
async fn requests_sharing_a_document_each_run_the_operation_they_name() {
    let app = spawn_app().await;
    let text = "query Mine { me { agentId } } query Kind { __typename } \
                mutation Make($name: String!) { createAccount(input: { name: $name }) { name } }";
    let batch = json!([
        { "query": text, "operationName": "Mine" },
        { "query": text, "operationName": "Kind" },
        { "query": text, "operationName": "Make", "variables": { "name": "First" } },
        { "query": text, "operationName": "Make", "variables": { "name": "Second" } },
        { "query": text },
    ]);
    let body: Value = post(&app, Some(JSON), Some(JSON), &batch.to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body[0], json!({ "data": { "me": { "agentId": "1" } } }));
    assert_eq!(body[1], json!({ "data": { "__typename": "Query" } }));
    assert_eq!(body[2]["data"]["createAccount"]["name"], "First");
    assert_eq!(body[3]["data"]["createAccount"]["name"], "Second");
    assert_eq!(
        body[4]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "several operations and no name: {body}"
    );
    let get = |operation: &'static str| {
        app.client
            .get(app.graphql_url())
            .query(&[
                ("query", text),
                ("operationName", operation),
                ("variables", r#"{"name":"Third"}"#),
            ])
            .bearer_auth(app.token("Agent"))
            .send()
    };
    let kind = get("Kind").await.unwrap();
    assert_eq!(kind.status(), 200);
    assert_eq!(
        kind.json::<Value>().await.unwrap(),
        json!({ "data": { "__typename": "Query" } })
    );
    assert_eq!(get("Make").await.unwrap().status(), 405);
    let unnamed = app
        .client
        .get(app.graphql_url())
        .query(&[("query", text)])
        .bearer_auth(app.token("Agent"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unnamed.status(),
        200,
        "several operations and no name: asked to name one, whichever comes first"
    );
    let unnamed: Value = unnamed.json().await.unwrap();
    assert_eq!(
        unnamed["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{unnamed}"
    );
    let names = app
        .gql_ok("{ accounts { nodes { name } } }", json!({}))
        .await;
    assert_eq!(
        names["accounts"]["nodes"],
        json!([{ "name": "First" }, { "name": "Second" }])
    );
}

#[tokio::test]
async fn a_batch_runs_each_operation_and_is_bounded() {
    let app = spawn_app_with(|s| s.graphql.max_batch = 3).await;
    let batch =
        r#"[{"query":"{ __typename }"},{"query":"{ me { agentId } }"},{"query":"{ nope }"}]"#;
    // An array of responses is no GraphQL response: it comes as application/json, and a
    // client that takes nothing else is told so.
    let refused = post(&app, Some(GQL), Some(JSON), batch).await;
    assert_eq!(refused.status(), 406);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    let response = post(
        &app,
        Some("application/graphql-response+json, application/json;q=0.9"),
        Some(JSON),
        batch,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body[0]["data"]["__typename"], "Query");
    assert_eq!(body[1]["data"]["me"]["agentId"], "1");
    assert_eq!(body[2]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let too_many = format!("[{}]", [r#"{"query":"{ __typename }"}"#; 4].join(","));
    let refused = post(&app, Some(GQL), Some(JSON), &too_many).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxBatch",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["max"], 3);
    assert_eq!(body["errors"][0]["extensions"]["actual"], 4);
    // Counted, not built: a body's worth of tiny items is refused as over the limit.
    let text = format!("[{}]", ["0"; 200_000].join(","));
    let refused = post(&app, Some(GQL), Some(JSON), &text).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxBatch",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["actual"], 200_000);
    // None is refused for being empty, not as over the limit.
    let refused = post(&app, Some(GQL), Some(JSON), " [ ] ").await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["extensions"].get("limit").is_none(),
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("the batch is empty"),
        "{body}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app_with(|s| s.http.body_limit = 4096).await;
    let big =
        json!({ "query": "{ __typename }", "variables": { "pad": "x".repeat(8192) } }).to_string();
    let refused = post(&app, Some(GQL), Some(JSON), &big).await;
    assert_eq!(refused.status(), 413);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("4096 bytes (http.body_limit)"),
        "{body}"
    );
    let small = json!({ "query": "{ __typename }", "variables": { "pad": "x".repeat(3000) } });
    assert_eq!(
        post(&app, Some(GQL), Some(JSON), &small.to_string())
            .await
            .status(),
        200,
        "a body within the limit is read whole"
    );
}

#[tokio::test]
async fn browsers_get_graphiql() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.graphql_url())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = page.text().await.unwrap();
    assert!(page.contains("GraphiQL"));
    // Scripts that see tokens come pinned, and only as published.
    let fetched = page.matches("https://").count();
    assert_eq!(fetched, 4, "{page}");
    assert_eq!(
        page.matches("integrity=\"sha384-").count(),
        fetched,
        "{page}"
    );
    assert!(!page.contains("@3/") && !page.contains("@18/"), "{page}");
}

#[tokio::test]
async fn only_a_websocket_upgrade_leaves_http() {
    let app = spawn_app().await;
    let answer = app
        .client
        .get(app.graphql_url())
        .query(&[("query", "{ __typename }")])
        .header("connection", "upgrade")
        .header("upgrade", "h2c")
        .bearer_auth(app.token("Agent"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({ "data": { "__typename": "Query" } })
    );
}

#[tokio::test]
async fn a_method_a_path_does_not_take_is_405_naming_those_it_does() {
    let app = spawn_app().await;
    let ask = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, format!("{}{path}", app.address))
            .send()
    };
    let put = ask(reqwest::Method::PUT, "/graphql").await.unwrap();
    assert_eq!(put.status(), 405);
    let allow = put.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let delete = ask(reqwest::Method::DELETE, "/healthz").await.unwrap();
    assert_eq!(delete.status(), 405);
    // Monitors may ask with HEAD.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let head = ask(reqwest::Method::HEAD, path).await.unwrap();
        assert_eq!(head.status(), 200, "{path}");
    }
    assert_eq!(
        ask(reqwest::Method::GET, "/nowhere")
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn an_accept_header_sent_as_several_lines_is_read_as_one_list() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}?query=%7B__typename%7D", app.graphql_url()))
        .bearer_auth(app.token("Agent"))
        .header("accept", "text/html")
        .header("accept", GQL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/graphql-response+json; charset=utf-8"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query");
}

#[tokio::test]
async fn a_compressed_body_is_refused_as_an_unsupported_encoding() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.graphql_url())
        .bearer_auth(app.token("Agent"))
        .header("content-type", JSON)
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(response.headers()["accept-encoding"], "identity");
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("uncompressed"),
        "{body}"
    );

    let plain = app
        .client
        .post(app.graphql_url())
        .bearer_auth(app.token("Agent"))
        .header("content-type", JSON)
        .header("content-encoding", "identity")
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
}

/// A browser's preflight of a POST from a page of `origin`.
async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.graphql_url())
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, cache-control, x-request-id",
        )
        .send()
        .await
        .unwrap()
}

/// A POST from a page of `origin`, as a browser sends it after the preflight.
async fn posted_from(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .post(app.graphql_url())
        .bearer_auth(app.token("Agent"))
        .header("origin", origin)
        .header("content-type", JSON)
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_of_an_allowed_origin_may_call_the_api_from_a_browser_and_others_may_not() {
    let desk = "https://desk.example.com";
    let app = spawn_app_with(|s| s.http.allowed_origins = vec![desk.to_owned()]).await;
    let allowed = preflight(&app, desk).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], desk, "{headers:?}");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let asked = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for header in [
        "authorization",
        "content-type",
        "cache-control",
        "x-request-id",
    ] {
        assert!(asked.contains(header), "{header}: {asked}");
    }
    assert!(
        headers.get("access-control-allow-credentials").is_none(),
        "a bearer token, not a cookie: {headers:?}"
    );

    let answered = posted_from(&app, desk).await;
    assert_eq!(answered.status(), 200);
    let headers = answered.headers();
    assert_eq!(headers["access-control-allow-origin"], desk, "{headers:?}");
    let exposed = headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("age"),
        "a page may read them: {exposed}"
    );
    let vary = headers["vary"].to_str().unwrap();
    assert!(
        vary.contains("Accept, Authorization") && vary.contains("Origin"),
        "an answer for one origin is not kept for another: {vary}"
    );

    let stranger = "https://elsewhere.example.com";
    let refused = preflight(&app, stranger).await;
    assert!(!refused.status().is_success(), "{}", refused.status());
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let unmarked = posted_from(&app, stranger).await;
    assert!(
        unmarked
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "the browser keeps the answer from the page"
    );
}

#[tokio::test]
async fn without_allowed_origins_only_the_gateways_own_pages_may_call_it() {
    let app = spawn_app().await;
    assert_eq!(
        preflight(&app, "https://desk.example.com").await.status(),
        405
    );
    // A same-origin POST carries an Origin too, and is answered as any other.
    let answered = posted_from(&app, &app.address).await;
    assert_eq!(answered.status(), 200);
    assert!(
        answered
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
