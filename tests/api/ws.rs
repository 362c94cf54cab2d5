use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

pub struct Ws(WebSocketStream<MaybeTlsStream<TcpStream>>);

pub const TRANSPORT: &str = "graphql-transport-ws";
pub const LEGACY: &str = "graphql-ws";

impl Ws {
    pub async fn connect(app: &TestApp, protocol: Option<&str>) -> Self {
        Self::connect_authorized(app, protocol, None).await
    }

    /// [`Self::connect`], the upgrade request carrying this `Authorization` header.
    pub async fn connect_authorized(
        app: &TestApp,
        protocol: Option<&str>,
        authorization: Option<&str>,
    ) -> Self {
        let mut request = app.ws_url().into_client_request().unwrap();
        if let Some(authorization) = authorization {
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(authorization).unwrap(),
            );
        }
        if let Some(protocol) = protocol {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(protocol).unwrap(),
            );
        }
        let (stream, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        if let Some(protocol) = protocol {
            assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        }
        Self(stream)
    }

    pub async fn send(&mut self, message: Value) {
        self.0
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next protocol message, skipping keep-alives.
    pub async fn recv(&mut self) -> Value {
        self.next()
            .await
            .unwrap_or_else(|code| panic!("closed unexpectedly: {code}"))
    }

    /// The next message other than a keep-alive, or the code the server closed with.
    pub async fn next(&mut self) -> Result<Value, u16> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.0.next())
                .await
                .expect("a message within 5 s")
                .expect("the socket is open")
                .unwrap();
            if let Message::Text(text) = frame {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] != "ka" {
                    return Ok(value);
                }
            } else if let Message::Close(frame) = frame {
                return Err(frame.map_or(1005, |f| u16::from(f.code)));
            }
        }
    }

    /// Waits for the server's close frame and returns its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.0.next())
                .await
                .expect("a close within 5 s");
            match frame {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error: {e}"),
            }
        }
    }

    pub async fn init(&mut self, app: &TestApp, profile: &str) {
        self.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", app.token(profile)) } }))
            .await;
        assert_eq!(self.recv().await["type"], "connection_ack");
    }
}

async fn create_contact_over_http(app: &TestApp, last_name: &str) -> String {
    app.create_contact(json!({ "lastName": last_name })).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_subscriber_receives_desk_changes_over_graphql_transport_ws() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Agent").await;
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.recv().await["type"], "pong");
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { deskChanges(entities: [CONTACT]) { entity action recordId } }" } }))
        .await;
    // The server sets the subscription up on a task of its own, and nothing tells the client
    // when it is live: the changes are made again until one arrives.
    let mut created = Vec::new();
    let next = loop {
        app.create_account("Not a contact").await;
        created.push(create_contact_over_http(&app, "Live").await);
        if let Ok(next) = tokio::time::timeout(Duration::from_secs(1), ws.recv()).await {
            break next;
        }
        assert!(created.len() < 10, "no change arrived");
    };
    let id = next["payload"]["data"]["deskChanges"]["recordId"].clone();
    assert!(created.iter().any(|c| id == c.as_str()), "{next}");
    assert_eq!(next["type"], "next");
    assert_eq!(next["id"], "1");
    assert_eq!(
        next["payload"]["data"]["deskChanges"],
        json!({ "entity": "CONTACT", "action": "CREATED", "recordId": id })
    );

    ws.send(json!({ "id": "1", "type": "complete" })).await;
    ws.send(
        json!({ "id": "2", "type": "subscribe", "payload": { "query": "{ me { agentId } }" } }),
    )
    .await;
    // A change made again while the first was on its way may still be ahead of the answer.
    let answer = loop {
        let message = ws.recv().await;
        if message["id"] != "1" {
            break message;
        }
    };
    assert_eq!(
        answer["payload"]["data"]["me"]["agentId"], "1",
        "queries work over the socket too"
    );
    assert_eq!(ws.recv().await, json!({ "type": "complete", "id": "2" }));
}

/// The first message after `change`, made again each second until one comes: a subscription
/// is set up on a task of its own, live at no moment the client is told of.
async fn first_after(ws: &mut Ws, mut change: impl AsyncFnMut()) -> Value {
    for _ in 0..10 {
        change().await;
        if let Ok(message) = tokio::time::timeout(Duration::from_secs(1), ws.recv()).await {
            return message;
        }
    }
    panic!("no change arrived");
}

/// The next message that is not another change's event: what a stop or complete answers.
async fn past_events(ws: &mut Ws) -> Value {
    loop {
        let message = ws.recv().await;
        if !matches!(message["type"].as_str(), Some("data" | "next")) {
            return message;
        }
    }
}

/// A socket subscribed to `deskChanges` as the Agent, once a change of this replica's own
/// has come through it.
async fn live_desk_changes(app: &TestApp) -> Ws {
    let mut ws = Ws::connect(app, Some(TRANSPORT)).await;
    ws.init(app, "Agent").await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { deskChanges { entity action } }" } }))
        .await;
    loop {
        create_contact_over_http(app, "Live").await;
        if let Ok(next) = tokio::time::timeout(Duration::from_secs(1), ws.recv()).await {
            assert_eq!(next["type"], "next", "{next}");
            return ws;
        }
    }
}

/// Cuts the connection on which this replica hears the others.
async fn cut_the_listener(app: &TestApp) {
    use sea_orm::ConnectionTrait;
    app.store
        .connection()
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .await
        .unwrap();
}

/// Asserts the subscription is told, within 10 s, that it fell behind, and ends.
async fn falls_behind(ws: &mut Ws) {
    let told = loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.recv())
            .await
            .expect("told within 10 s");
        if message["payload"]["data"]["deskChanges"]["entity"] == "CONTACT" {
            continue;
        }
        break message;
    };
    assert_eq!(
        told["payload"]["errors"][0]["extensions"]["code"], "FELL_BEHIND",
        "{told}"
    );
    assert_eq!(ws.recv().await["type"], "complete");
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn a_desk_change_subscriber_is_told_when_other_replicas_may_have_gone_unheard() {
    let app = spawn_app().await;
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let mut ws = live_desk_changes(&app).await;
    // What the others announced while the connection was down is gone, and the subscriber
    // is told so once this replica listens again.
    cut_the_listener(&app).await;
    falls_behind(&mut ws).await;
}

#[ignore = "PostgreSQL only: run with TANDEM_TEST_DATABASE_URL set and -- --include-ignored"]
#[tokio::test]
async fn a_desk_change_subscriber_is_told_of_a_gap_however_long_the_database_refused_connections() {
    use sea_orm::sqlx::Connection;
    let app = spawn_app().await;
    assert!(app.database_url.starts_with("postgres"), "PostgreSQL only");
    let mut ws = live_desk_changes(&app).await;
    // A failover: the database takes no new connection for a while, so the listener cannot
    // connect again at once, whichever way it tries. Refused from another database: none
    // may refuse connections to the one it is on.
    let name = crate::helpers::database_of(&app.database_url);
    let allow = |allowed: bool| {
        sea_orm::sqlx::AssertSqlSafe(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed}"))
    };
    let server = crate::helpers::on_database(&app.database_url, "postgres");
    let mut admin = sea_orm::sqlx::PgConnection::connect(&server).await.unwrap();
    sea_orm::sqlx::raw_sql(allow(false))
        .execute(&mut admin)
        .await
        .unwrap();
    cut_the_listener(&app).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    sea_orm::sqlx::raw_sql(allow(true))
        .execute(&mut admin)
        .await
        .unwrap();
    falls_behind(&mut ws).await;
}

#[tokio::test]
async fn an_invalid_operation_gets_an_error_message_not_a_close() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Agent").await;
    ws.send(json!({ "id": "a", "type": "subscribe", "payload": { "query": "subscription { nothingHere }" } })).await;
    let error = ws.recv().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_missing_or_bad_token_closes_with_4403() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(ws.closed().await.0, 4403);

    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.send(
        json!({ "type": "connection_init", "payload": { "Authorization": "Bearer nonsense" } }),
    )
    .await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4403);
    assert!(reason.len() <= 123);
}

#[tokio::test]
async fn a_credential_in_connection_init_is_the_one_used_even_beside_a_good_header() {
    let app = spawn_app().await;
    let header = format!("Bearer {}", app.token("Administrator"));
    // With nothing named in the payload (or a blank, signed out), the upgrade request's
    // token signs the socket in.
    for payload in [json!({}), json!({ "Authorization": "" })] {
        let mut ws = Ws::connect_authorized(&app, Some(TRANSPORT), Some(&header)).await;
        ws.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        assert_eq!(ws.recv().await["type"], "connection_ack", "{payload}");
    }

    // A payload naming something that is no bearer token is refused, not passed over.
    let mut ws = Ws::connect_authorized(&app, Some(TRANSPORT), Some(&header)).await;
    ws.send(json!({ "type": "connection_init", "payload": { "Authorization": "Token abc" } }))
        .await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4403);
    assert!(reason.contains("Bearer <token>"), "{reason}");
}

#[tokio::test]
async fn subscribing_before_the_ack_closes_with_4401() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ __typename }" } }))
        .await;
    assert_eq!(ws.closed().await, (4401, "Unauthorized".into()));
}

#[tokio::test]
async fn a_silent_client_is_closed_with_4408() {
    let app = spawn_app_with(|s| s.websocket.init_timeout_secs = 1).await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    assert_eq!(
        ws.closed().await,
        (4408, "Connection initialisation timeout".into())
    );
}

#[tokio::test]
async fn a_reused_subscription_id_closes_with_4409() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Agent").await;
    let subscribe = json!({ "id": "dup", "type": "subscribe", "payload": { "query": "subscription { deskChanges { action } }" } });
    ws.send(subscribe.clone()).await;
    ws.send(subscribe).await;
    assert_eq!(
        ws.closed().await,
        (4409, "Subscriber for dup already exists".into())
    );
}

#[tokio::test]
async fn an_id_is_free_again_as_soon_as_its_error_is_read() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Agent").await;
    let subscribe =
        |query: &str| json!({ "id": "again", "type": "subscribe", "payload": { "query": query } });
    // Refused at once, the id reused the moment the error comes: each time a new operation,
    // never a 4409.
    for _ in 0..30 {
        ws.send(subscribe("subscription { noSuchField }")).await;
        let refused = ws.recv().await;
        assert_eq!(refused["type"], "error", "{refused}");
    }
    ws.send(subscribe("subscription { deskChanges { entity } }"))
        .await;
    let next = first_after(&mut ws, async || {
        app.create_account("Reused").await;
    })
    .await;
    assert_eq!(
        (
            &next["id"],
            &next["payload"]["data"]["deskChanges"]["entity"]
        ),
        (&json!("again"), &json!("ACCOUNT")),
        "{next}"
    );
}

#[tokio::test]
async fn a_client_closing_the_socket_is_answered_with_its_own_code() {
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Agent").await;
    ws.0.close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: "done".into(),
    }))
    .await
    .unwrap();
    assert_eq!(ws.closed().await.0, 4000);
}

#[tokio::test]
async fn a_second_init_closes_with_4429() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Agent").await;
    ws.send(json!({ "type": "connection_init" })).await;
    assert_eq!(
        ws.closed().await,
        (4429, "Too many initialisation requests".into())
    );
}

#[tokio::test]
async fn malformed_messages_close_with_4400() {
    let app = spawn_app().await;
    for bad in [
        "not json",
        r#"{"type":"what"}"#,
        r#"{"type":"connection_init","payload":"Bearer x"}"#,
        r#"{"type":"subscribe","id":"1"}"#,
        r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { syncEvents { id } }","variables":"{\"afterId\":\"4\"}"}}"#,
        r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { syncEvents { id } }","operationName":7}}"#,
        r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { syncEvents { id } }","extensions":[]}}"#,
    ] {
        let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
        if bad.contains("subscribe") {
            ws.init(&app, "Agent").await;
        }
        ws.0.send(Message::text(bad)).await.unwrap();
        assert_eq!(ws.closed().await.0, 4400, "{bad}");
    }
}

#[tokio::test]
async fn a_message_past_the_size_limit_closes_with_1009_naming_it() {
    let app = spawn_app().await;
    let limit = 32 * 1024 + 64 * 1024;
    let padding = "x".repeat(limit);
    let huge = json!({ "type": "subscribe", "id": "1", "payload": {
        "query": "subscription { syncEvents { id } }", "variables": { "padding": padding } } });
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Administrator").await;
    ws.0.send(Message::text(huge.to_string())).await.unwrap();
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1009, "{reason}");
    assert!(
        reason.contains(&format!("at most {limit} bytes")),
        "{reason}"
    );
}

#[tokio::test]
async fn subprotocols_offered_over_several_header_lines_are_one_list() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    // By hand: client libraries send one line.
    let mut socket = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let handshake = format!(
        "GET /graphql HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: {TRANSPORT}\r\n\r\n",
        app.port
    );
    socket.write_all(handshake.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        answer.push(byte[0]);
    }
    let answer = String::from_utf8(answer).unwrap().to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(
        answer.contains(&format!("sec-websocket-protocol: {TRANSPORT}\r\n")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_socket_without_a_graphql_subprotocol_closes_with_4406() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, None).await;
    assert_eq!(
        ws.closed().await,
        (4406, "Subprotocol not acceptable".into())
    );
}

#[tokio::test]
async fn the_socket_closes_with_4403_when_the_token_expires() {
    let app = spawn_app().await;
    let short = token_expiring_in("Agent", 3);
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {short}") } })).await;
    assert_eq!(ws.recv().await["type"], "connection_ack");
    // Within the leeway HTTP grants too, the socket still serves.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ws.send(
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ me { agentId } }" } }),
    )
    .await;
    let answer = ws.recv().await;
    assert_eq!(answer["payload"]["data"]["me"]["agentId"], "1", "{answer}");
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4403);
    assert!(reason.contains("expired"), "{reason}");
}

#[tokio::test]
async fn a_socket_serves_through_the_last_second_http_accepts_its_token_in() {
    let app = spawn_app().await;
    let me = "{ me { agentId } }";
    // A loaded machine may take more than a second for a try now and then.
    for _ in 0..20 {
        // Early in a second, so that what follows can run inside it.
        while chrono::Utc::now().timestamp_subsec_millis() > 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let second = chrono::Utc::now().timestamp();
        // Its expiry and the leeway end with the second now running.
        let last = token_expiring_in("Agent", 0);
        let over_http = app.gql_with(&last, None, me, json!({})).await;
        let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
        ws.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {last}") } })).await;
        let mut answer = ws.next().await;
        if answer.as_ref().is_ok_and(|m| m["type"] == "connection_ack") {
            ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": me } }))
                .await;
            answer = ws.next().await;
        }
        if chrono::Utc::now().timestamp() != second {
            continue; // the second ended on the way: too late to tell
        }
        assert_eq!(over_http["data"]["me"]["agentId"], "1", "{over_http}");
        let answer = answer.expect("the socket open while HTTP accepts its token");
        assert_eq!(answer["payload"]["data"]["me"]["agentId"], "1", "{answer}");
        assert_eq!(ws.closed().await.0, 4403);
        return;
    }
    panic!("no try ran inside one second");
}

fn token_expiring_in(profile: &str, seconds: i64) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let now = chrono::Utc::now().timestamp();
    // The server allows 30 s of clock skew, so the token is issued already 30 s old.
    let claims = json!({ "sub": "1", "profile": profile, "iat": now, "exp": now + seconds - 30 });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(crate::helpers::SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works_too() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(LEGACY)).await;
    ws.send(
        json!({ "type": "connection_init", "payload": { "authToken": app.token("Light Agent") } }),
    )
    .await;
    assert_eq!(ws.recv().await["type"], "connection_ack");
    ws.send(json!({ "id": "7", "type": "start", "payload": { "query": "subscription { deskChanges { entity action } }" } })).await;
    let data = first_after(&mut ws, async || {
        app.create_account("Legacy").await;
    })
    .await;
    assert_eq!(data["type"], "data");
    assert_eq!(
        data["payload"]["data"]["deskChanges"],
        json!({ "entity": "ACCOUNT", "action": "CREATED" })
    );
    ws.send(json!({ "id": "7", "type": "stop" })).await;
    assert_eq!(
        past_events(&mut ws).await,
        json!({ "type": "complete", "id": "7" })
    );
    ws.send(json!({ "type": "connection_terminate" })).await;
    assert_eq!(ws.closed().await.0, 1000);
}

#[tokio::test]
async fn a_legacy_client_told_of_a_message_it_got_wrong_keeps_its_socket() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(LEGACY)).await;
    ws.init(&app, "Agent").await;
    ws.0.send(Message::text("not json")).await.unwrap();
    let said = ws.recv().await;
    assert_eq!(said["type"], "connection_error", "{said}");
    ws.send(json!({ "id": "9", "type": "what" })).await;
    assert_eq!(
        ws.recv().await,
        json!({ "type": "error", "id": "9", "payload": { "message": "Invalid message type!" } })
    );
    ws.send(json!({ "type": "connection_init" })).await;
    let said = ws.recv().await;
    assert_eq!(said["type"], "connection_error", "{said}");

    ws.send(json!({ "id": "1", "type": "start", "payload": { "query": "subscription { deskChanges { entity } }" } }))
        .await;
    let data = first_after(&mut ws, async || {
        app.create_account("Still here").await;
    })
    .await;
    assert_eq!(data["payload"]["data"]["deskChanges"]["entity"], "ACCOUNT");
}

#[tokio::test]
async fn a_legacy_start_refused_is_answered_with_an_error_and_the_socket_stays() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(LEGACY)).await;
    let query = json!({ "query": "subscription { deskChanges { entity } }" });
    ws.send(json!({ "id": "1", "type": "start", "payload": query }))
        .await;
    let early = ws.recv().await;
    assert_eq!(
        (&early["type"], &early["id"]),
        (&json!("error"), &json!("1"))
    );
    assert!(
        early["payload"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("send connection_init")),
        "{early}"
    );
    ws.init(&app, "Agent").await;
    ws.send(json!({ "type": "start", "payload": query })).await;
    let no_id = ws.recv().await;
    assert_eq!(no_id["type"], "error", "{no_id}");
    ws.send(
        json!({ "id": "2", "type": "start", "payload": "subscription { deskChanges { entity } }" }),
    )
    .await;
    let bad_payload = ws.recv().await;
    assert_eq!(
        (&bad_payload["type"], &bad_payload["id"]),
        (&json!("error"), &json!("2")),
        "{bad_payload}"
    );

    ws.send(json!({ "id": "3", "type": "start", "payload": query }))
        .await;
    let data = first_after(&mut ws, async || {
        app.create_account("Still open").await;
    })
    .await;
    assert_eq!(
        (
            &data["id"],
            &data["payload"]["data"]["deskChanges"]["entity"]
        ),
        (&json!("3"), &json!("ACCOUNT"))
    );
}

#[tokio::test]
async fn a_legacy_start_reusing_an_id_replaces_the_operation_under_it() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(LEGACY)).await;
    ws.init(&app, "Agent").await;
    let start = |query: &str| json!({ "id": "1", "type": "start", "payload": { "query": query } });
    ws.send(start("subscription { deskChanges { action } }"))
        .await;
    ws.send(start("subscription { deskChanges { entity } }"))
        .await;
    // The first may answer a change made before the server read the second start; once the
    // second answers, it alone does, and the socket stays open.
    let second = json!({ "id": "1", "type": "data", "payload": { "data": { "deskChanges": { "entity": "ACCOUNT" } } } });
    let mut data = Value::Null;
    for _ in 0..10 {
        data = first_after(&mut ws, async || {
            app.create_account("Replaced").await;
        })
        .await;
        if data == second {
            break;
        }
    }
    assert_eq!(data, second);
    app.create_account("Replaced again").await;
    assert_eq!(ws.recv().await, second, "only the second operation answers");
    ws.send(json!({ "id": "1", "type": "stop" })).await;
    assert_eq!(
        past_events(&mut ws).await,
        json!({ "type": "complete", "id": "1" })
    );
}

#[tokio::test]
async fn legacy_clients_with_a_bad_token_get_connection_error_then_4403() {
    let app = spawn_app().await;
    let mut ws = Ws::connect(&app, Some(LEGACY)).await;
    ws.send(json!({ "type": "connection_init", "payload": { "authToken": "bad" } }))
        .await;
    assert_eq!(ws.recv().await["type"], "connection_error");
    assert_eq!(ws.closed().await.0, 4403);
}

#[tokio::test]
async fn a_subscription_over_the_limit_is_refused_and_the_others_go_on() {
    let app = spawn_app_with(|s| s.websocket.max_subscriptions = 1).await;
    let query = json!({ "query": "subscription { deskChanges { entity action } }" });
    for (protocol, start, refusal) in [(TRANSPORT, "subscribe", "error"), (LEGACY, "start", "data")]
    {
        let mut ws = Ws::connect(&app, Some(protocol)).await;
        ws.init(&app, "Agent").await;
        ws.send(json!({ "id": "1", "type": start, "payload": query }))
            .await;
        ws.send(json!({ "id": "2", "type": start, "payload": query }))
            .await;
        let refused = ws.recv().await;
        assert_eq!(refused["type"], refusal, "{protocol}: {refused}");
        assert_eq!(refused["id"], "2");
        let errors = if protocol == LEGACY {
            &refused["payload"]["errors"]
        } else {
            &refused["payload"]
        };
        assert_eq!(
            errors[0]["extensions"]["code"], "BAD_USER_INPUT",
            "{refused}"
        );
        if protocol == LEGACY {
            // The legacy protocol ends each operation with `complete`; an error does not.
            assert_eq!(ws.recv().await, json!({ "type": "complete", "id": "2" }));
        }

        app.create_account(protocol).await;
        let next = ws.recv().await;
        assert_eq!(next["id"], "1", "{protocol}: {next}");
        assert_eq!(
            next["payload"]["data"]["deskChanges"],
            json!({ "entity": "ACCOUNT", "action": "CREATED" })
        );
    }
}

/// A client with a small receive buffer that subscribes to a log of tens of megabytes of sync
/// events, reads nothing for 6 s (time for the server to fill the socket's buffers, even with
/// the whole suite running beside it, and to wait out its send timeout), then reads on: how
/// many events it got, of how many, and the close code if the socket ended (0 for an end
/// without a close frame).
async fn stalled_reader(app: &TestApp, protocol: &str, token: &str) -> (usize, usize, Option<u16>) {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.store.connection();
    let logged = || async {
        let count = Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM sync_event",
        );
        let row = db.query_one_raw(count).await.unwrap().unwrap();
        usize::try_from(row.try_get::<i64>("", "n").unwrap()).unwrap()
    };
    // The events of connecting, doubled until there are more than the sockets hold; each
    // status change carries a long reason, so that the server fills the sockets' buffers
    // within a few thousand events however slowly a loaded machine lets it write them.
    while logged().await < 20_000 {
        db.execute_unprepared(
            "INSERT INTO sync_event (at, kind, module, payload) SELECT at, kind, module, payload FROM sync_event",
        )
        .await
        .unwrap();
    }
    let reason = "r".repeat(2_000);
    db.execute_unprepared(&format!(
        "UPDATE sync_event SET payload = replace(payload, '\"reason\":null', '\"reason\":\"{reason}\"')"
    ))
    .await
    .unwrap();
    let long = Statement::from_string(
        db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM sync_event WHERE payload LIKE '%rrrrrrrrrr%'",
    );
    let long = db.query_one_raw(long).await.unwrap().unwrap();
    assert!(
        long.try_get::<i64>("", "n").unwrap() > 1_000,
        "status events carry the reason"
    );
    let total = logged().await;

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", app.port).parse().unwrap())
        .await
        .unwrap();
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(protocol).unwrap(),
    );
    let (stream, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    let mut ws = Ws(stream);
    ws.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
        .await;
    assert_eq!(ws.recv().await["type"], "connection_ack");
    let query = "subscription { syncEvents(afterId: \"0\") { id kind module status statusReason history { direction module added updated failed } } }";
    let start = if protocol == LEGACY {
        "start"
    } else {
        "subscribe"
    };
    ws.send(json!({ "id": "s", "type": start, "payload": { "query": query } }))
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let mut received = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.0.next()).await {
            Err(_) => break None,
            Ok(Some(Ok(Message::Text(text)))) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] != "ka" {
                    assert!(
                        ["next", "data"].contains(&message["type"].as_str().unwrap()),
                        "{message}"
                    );
                    received += 1;
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                break Some(frame.map_or(0, |f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            Ok(None | Some(Err(_))) => break Some(0),
        }
    };
    (received, total, end)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let (app, _sim) = crate::integration::started(|s| s.websocket.send_timeout_secs = 1).await;
    let token = app.token("Administrator");
    let (received, total, end) = stalled_reader(&app, TRANSPORT, &token).await;
    assert!(
        matches!(end, Some(0 | 1013)),
        "after {received} of {total} events: {end:?}"
    );
    assert!(received < total, "all {total} events arrived");
}

#[tokio::test]
async fn a_store_that_cannot_check_the_token_says_try_again_not_forbidden() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");
    // The profiles cannot be read, as with the database down.
    app.store
        .connection()
        .execute_unprepared(&rename("profile", "profile_away"))
        .await
        .unwrap();
    for protocol in [TRANSPORT, LEGACY] {
        let mut ws = Ws::connect(&app, Some(protocol)).await;
        ws.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", app.token("Agent")) } }))
            .await;
        let (code, reason) = ws.closed().await;
        assert_eq!(code, 1013, "{protocol}: {reason}");
        assert!(reason.contains("again"), "{reason}");
    }
    app.store
        .connection()
        .execute_unprepared(&rename("profile_away", "profile"))
        .await
        .unwrap();
    let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
    ws.init(&app, "Agent").await;
}

#[tokio::test]
async fn a_token_good_until_the_end_of_time_keeps_its_socket() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let app = spawn_app().await;
    let last = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp();
    for exp in [last - 5, last + 1_000] {
        let claims = json!({ "sub": "1", "profile": "Agent", "exp": exp });
        let token = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(crate::helpers::SECRET.as_bytes()),
        )
        .unwrap();
        let mut ws = Ws::connect(&app, Some(TRANSPORT)).await;
        ws.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
            .await;
        assert_eq!(ws.recv().await["type"], "connection_ack", "exp {exp}");
        ws.send(
            json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ me { agentId } }" } }),
        )
        .await;
        let answer = ws.recv().await;
        assert_eq!(
            answer["payload"]["data"]["me"]["agentId"], "1",
            "exp {exp}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_client_gone_quiet_is_let_go_and_one_that_answers_pings_stays() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.websocket.keepalive_secs = 1;
        s.websocket.send_timeout_secs = 1;
    })
    .await;
    for protocol in [TRANSPORT, LEGACY] {
        // Reading, the client answers the server's pings (as browsers do by themselves).
        let mut live = Ws::connect(&app, Some(protocol)).await;
        live.init(&app, "Agent").await;
        // Gone without a word: it neither reads nor answers.
        let mut gone = Ws::connect(&app, Some(protocol)).await;
        gone.init(&app, "Agent").await;

        let listening = tokio::time::Instant::now() + Duration::from_secs(4);
        while let Ok(frame) = tokio::time::timeout_at(listening, live.0.next()).await {
            match frame {
                Some(Ok(Message::Close(frame))) => panic!("{protocol}: closed {frame:?}"),
                Some(Ok(_)) => {}
                other => panic!("{protocol}: {other:?}"),
            }
        }
        // Its first read answers the pings it held, onto a socket the server has closed: the
        // close frame is there, or the write before it fails.
        match until_closed(&mut gone).await {
            Ended::Closed(code, reason) => {
                assert_eq!(code, 1013, "{protocol}: {reason}");
                assert!(reason.contains("nothing heard"), "{reason}");
            }
            Ended::Dropped => {}
            Ended::StillOpen => panic!("{protocol}: the quiet client is still served"),
        }

        let (id, kind) = if protocol == TRANSPORT {
            ("1", "subscribe")
        } else {
            ("1", "start")
        };
        live.send(json!({ "id": id, "type": kind, "payload": { "query": "{ me { agentId } }" } }))
            .await;
        assert_eq!(live.recv().await["payload"]["data"]["me"]["agentId"], "1");
    }
}

enum Ended {
    Closed(u16, String),
    /// The socket failed or ended before a close frame could be read.
    Dropped,
    StillOpen,
}

/// How the socket ends within five seconds, if it does.
async fn until_closed(ws: &mut Ws) -> Ended {
    let by = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(by, ws.0.next()).await {
            Err(_) => return Ended::StillOpen,
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return Ended::Closed(u16::from(frame.code), frame.reason.to_string());
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return Ended::Dropped,
        }
    }
}

#[tokio::test]
async fn sockets_past_the_configured_number_are_turned_away_until_one_closes() {
    let app = spawn_app_with(|s| s.websocket.max_connections = 2).await;
    let mut first = Ws::connect(&app, Some(TRANSPORT)).await;
    first.init(&app, "Agent").await;
    let mut second = Ws::connect(&app, Some(TRANSPORT)).await;
    second.init(&app, "Agent").await;
    let refused = tokio_tungstenite::connect_async(app.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "5");
        }
        other => panic!("a third socket was not refused: {:?}", other.map(|_| ())),
    }
    // Those open go on.
    second.send(json!({ "type": "ping" })).await;
    assert_eq!(second.recv().await["type"], "pong");
    // Once one closes, a socket is taken again.
    drop(first);
    let started = std::time::Instant::now();
    loop {
        if tokio_tungstenite::connect_async(app.ws_url()).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the closed socket's place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
