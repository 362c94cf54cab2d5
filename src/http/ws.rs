//! GraphQL over WebSocket: `graphql-transport-ws` and the legacy `graphql-ws`, with the close
//! codes the protocol defines (4400 bad message, 4401 subscribe before ack, 4403 refused or
//! expired token, 4406 unknown subprotocol, 4408 init timeout, 4409 duplicate id, 4429 second
//! init; the legacy protocol answers most faults instead), and 1013 (try again later) for a client that stopped reading or a store that failed.
//!
//! Every message waits at most `websocket.send_timeout_secs` for the client to take it, and
//! never past the token's expiry: a client that stops reading holds neither the connection
//! nor anything said after its token expired.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::AppState;
use crate::auth::{AuthError, Viewer, bearer};
use crate::graphql::{is_request_error, prepare};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws`, the current protocol.
    Transport,
    /// `graphql-ws`, as spoken by subscriptions-transport-ws.
    Legacy,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Transport => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }

    /// The first protocol the client offers that is spoken here, across every
    /// `Sec-WebSocket-Protocol` line it sent (RFC 6455 §11.3.4: several lines are one list).
    fn requested(req: &HttpRequest) -> Option<Self> {
        req.headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .filter_map(|line| line.to_str().ok())
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .find_map(|p| match p {
                "graphql-transport-ws" => Some(Protocol::Transport),
                "graphql-ws" => Some(Protocol::Legacy),
                _ => None,
            })
    }
}

/// Why the server ends a connection.
struct Close(u16, String);

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self(code, reason.into())
    }

    fn bad_message(why: &str) -> Self {
        Self::new(4400, why)
    }

    /// A frame the stream refused: past the size a message may have (1009, Message Too Big,
    /// naming the limit), or one the protocol does not allow (4400).
    fn refused_frame(error: &actix_ws::ProtocolError, max_message: usize) -> Self {
        let too_big = match error {
            actix_ws::ProtocolError::Overflow => true,
            // A message in several frames past the limit, as the stream words it.
            actix_ws::ProtocolError::Io(e) => e.to_string().contains("continuation size"),
            _ => false,
        };
        if too_big {
            Self::new(
                1009,
                format!(
                    "Message too big: at most {max_message} bytes (graphql.max_query_bytes and 64 KiB for variables)"
                ),
            )
        } else {
            Self::bad_message(&format!("Invalid frame: {error}"))
        }
    }
}

/// A subscription's `next` (or legacy `data`) message.
#[derive(serde::Serialize)]
struct Data<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    payload: &'a async_graphql::Response,
}

enum Outgoing {
    /// A subscription's task ended, with its last word (the error that ended it) when the
    /// task could not say it itself: the id is free again once that is sent. `task` tells it
    /// from a later subscription that reused its id after a `complete`.
    Finished {
        id: String,
        task: u64,
        last: Option<Value>,
        send_complete: bool,
    },
    /// A subscription's event waited for the client longer than the send timeout.
    Stalled,
}

/// Hands a message to the socket, unless the client takes nothing until `until`.
async fn deliver(
    session: &mut Session,
    text: String,
    until: tokio::time::Instant,
) -> Result<(), actix_ws::Closed> {
    // A send with room to go would be taken before its deadline is looked at: past it (the
    // token expired while nothing woke the connection), nothing more is said.
    if tokio::time::Instant::now() >= until {
        return Err(actix_ws::Closed);
    }
    tokio::time::timeout_at(until, session.text(text))
        .await
        .unwrap_or(Err(actix_ws::Closed))
}

/// How long a message may wait: the send timeout, or less when the token expires first.
fn deadline(timeout: Duration, expires: Option<tokio::time::Instant>) -> tokio::time::Instant {
    let by = tokio::time::Instant::now() + timeout;
    expires.map_or(by, |at| at.min(by))
}

/// The longest a socket waits for its token to expire.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

fn expired() -> Close {
    Close::new(4403, "Forbidden: the token has expired")
}

/// The stalled-client close: a client that reads again may come back.
fn too_slow(timeout: Duration) -> Close {
    try_again_later(&format!(
        "Too slow: the client read nothing for {} s",
        timeout.as_secs()
    ))
}

/// 1013, Try Again Later: the trouble is the server's or the moment's, and clients such as
/// graphql-ws reconnect (they give up on other 1xxx codes).
fn try_again_later(why: &str) -> Close {
    Close::new(1013, why)
}

/// One of the `websocket.max_connections` sockets, given back when the connection ends.
struct Slot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Slot {
    fn take(state: &AppState) -> Option<Slot> {
        use std::sync::atomic::Ordering;
        let open = state.sockets.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(state.sockets.clone());
        (open < state.websocket.max_connections).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(slot) = Slot::take(&state) else {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .body(format!(
                "this gateway holds {} WebSocket connections already (websocket.max_connections); try again shortly",
                state.websocket.max_connections
            ));
    };
    let protocol = Protocol::requested(&req);
    let (mut response, session, stream) = match actix_ws::handle(&req, payload) {
        Ok(parts) => parts,
        Err(e) => return e.error_response(),
    };
    if let Some(protocol) = protocol {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            header::HeaderValue::from_static(protocol.name()),
        );
    }
    // Several Authorization headers name nobody: `connection_init` has to.
    let mut authorizations = req.headers().get_all(header::AUTHORIZATION);
    let header_token = authorizations
        .next()
        .filter(|_| authorizations.next().is_none())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| bearer(Some(v)).ok())
        .map(str::to_owned);
    let max_frame = state.graphql.max_query_bytes + 64 * 1024;
    let stream = stream
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let profiles = state.store.profile_changes();
    let send_timeout = Duration::from_secs(state.websocket.send_timeout_secs.max(1));
    let connection = Connection {
        send_timeout,
        max_message: max_frame,
        expires: None,
        state: state.into_inner().as_ref().clone(),
        session: session.clone(),
        header_token,
        viewer: None,
        profiles,
        initialised: false,
        subscriptions: HashMap::new(),
        tasks: 0,
        outgoing: mpsc::unbounded_channel(),
    };
    actix_web::rt::spawn(async move {
        let _slot = slot;
        let close = match protocol {
            Some(protocol) => connection.run(protocol, stream).await,
            None => Some(Close::new(4406, "Subprotocol not acceptable")),
        };
        if let Some(Close(code, mut reason)) = close {
            // A close frame's reason may hold at most 123 bytes.
            while reason.len() > 123 {
                reason.pop();
            }
            let close = session.close(Some(CloseReason {
                code: CloseCode::Other(code),
                description: Some(reason),
            }));
            let _ = tokio::time::timeout(send_timeout, close).await;
        }
    });
    response
}

struct Connection {
    state: AppState,
    session: Session,
    send_timeout: Duration,
    /// The most bytes a message may have.
    max_message: usize,
    /// When the token expires (its leeway included), once `connection_init` accepted it.
    expires: Option<tokio::time::Instant>,
    header_token: Option<String>,
    viewer: Option<Viewer>,
    /// Moves when any profile's permissions change: the viewer's is read again before the
    /// next operation starts.
    profiles: watch::Receiver<u64>,
    initialised: bool,
    /// The running subscriptions by id, each with the number its task was started under.
    subscriptions: HashMap<String, (u64, JoinHandle<()>)>,
    tasks: u64,
    outgoing: (
        mpsc::UnboundedSender<Outgoing>,
        mpsc::UnboundedReceiver<Outgoing>,
    ),
}

impl Drop for Connection {
    fn drop(&mut self) {
        for (_, task) in self.subscriptions.values() {
            task.abort();
        }
    }
}

impl Connection {
    /// Serves the connection until either side ends it; returns the close to send, if any.
    async fn run(
        mut self,
        protocol: Protocol,
        mut stream: actix_ws::AggregatedMessageStream,
    ) -> Option<Close> {
        let init_deadline =
            tokio::time::sleep(Duration::from_secs(self.state.websocket.init_timeout_secs));
        tokio::pin!(init_deadline);
        let every = Duration::from_secs(self.state.websocket.keepalive_secs.max(1));
        // First a whole period after the connection opens, and never in a burst of ticks
        // missed while `connection_init` was awaited.
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Each tick pings the client, which answers (browsers and libraries do it by
        // themselves); a peer gone without a word (a laptop asleep, a dropped NAT mapping)
        // answers nothing, and is let go instead of holding its subscriptions until its token
        // expires.
        let quiet_for = every * 2 + self.send_timeout;
        let mut heard = tokio::time::Instant::now();
        let expiry = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(expiry);
        loop {
            // In order: what the connection owes the client (a finished subscription's last
            // message) goes before the next message is read, so a client that sends faster
            // than it is answered cannot pile answers up in memory; a message waiting is read
            // before the keepalive judges the client gone quiet.
            tokio::select! {
                biased;
                () = &mut init_deadline, if self.viewer.is_none() => {
                    return Some(Close::new(4408, "Connection initialisation timeout"));
                }
                () = &mut expiry, if self.viewer.is_some() => {
                    return Some(expired());
                }
                Some(out) = self.outgoing.1.recv() => match out {
                    Outgoing::Stalled => return Some(too_slow(self.send_timeout)),
                    Outgoing::Finished { id, task, last, send_complete } => {
                        let current = self.subscriptions.get(&id).is_some_and(|(t, _)| *t == task);
                        if current {
                            // Freed before its error goes: a client that reuses the id on
                            // reading it starts a new operation.
                            self.subscriptions.remove(&id);
                            if let Some(last) = last
                                && let Err(close) = self.send(last).await
                            {
                                return Some(close);
                            }
                            if send_complete
                                && let Err(close) = self.send(json!({ "type": "complete", "id": id })).await
                            {
                                return Some(close);
                            }
                        }
                    }
                },
                message = stream.next() => {
                    heard = tokio::time::Instant::now();
                    match message {
                        None => return None,
                        Some(Err(e)) => return Some(Close::refused_frame(&e, self.max_message)),
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            // Bounded as any message is: a client that pings but reads nothing
                            // is not waited on for good.
                            let until = deadline(self.send_timeout, self.expires);
                            let pong = tokio::time::timeout_at(until, self.session.pong(&bytes)).await;
                            match pong {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) => return None,
                                Err(_) => return Some(self.stalled()),
                            }
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => {}
                        // Answered with the code the client closed with, as RFC 6455 has it.
                        Some(Ok(AggregatedMessage::Close(reason))) => {
                            let code = reason.map_or(1000, |reason| u16::from(reason.code));
                            return Some(Close::new(code, ""));
                        }
                        Some(Ok(AggregatedMessage::Binary(_))) => {
                            return Some(Close::bad_message("Binary messages are not supported"));
                        }
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            let was_authenticated = self.viewer.is_some();
                            if let Err(close) = self.handle(protocol, &text).await {
                                return Some(close);
                            }
                            if !was_authenticated && let Some(viewer) = &self.viewer {
                                // As long as HTTP would accept the token; a token good for
                                // ages keeps its socket for a century at most.
                                let left = (viewer.refused_from() - chrono::Utc::now()).to_std().unwrap_or_default().min(CENTURY);
                                let at = tokio::time::Instant::now() + left;
                                self.expires = Some(at);
                                expiry.as_mut().reset(at);
                            }
                        }
                    }
                }
                _ = keepalive.tick(), if self.viewer.is_some() => {
                    if heard.elapsed() > quiet_for {
                        return Some(try_again_later(&format!(
                            "Gone quiet: nothing heard for {} s",
                            quiet_for.as_secs()
                        )));
                    }
                    if protocol == Protocol::Legacy
                        && let Err(close) = self.send(json!({ "type": "ka" })).await
                    {
                        return Some(close);
                    }
                    let until = deadline(self.send_timeout, self.expires);
                    match tokio::time::timeout_at(until, self.session.ping(b"")).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return None,
                        Err(_) => return Some(self.stalled()),
                    }
                }
            }
        }
    }

    /// Sends a message; when the client does not take it in time, the close that says why.
    async fn send(&mut self, message: Value) -> Result<(), Close> {
        let until = deadline(self.send_timeout, self.expires);
        deliver(&mut self.session, message.to_string(), until)
            .await
            .map_err(|_| self.stalled())
    }

    /// Why a message could not be handed over in time: the token expired, or the client
    /// reads nothing.
    fn stalled(&self) -> Close {
        match self.expires {
            Some(at) if tokio::time::Instant::now() >= at => expired(),
            _ => too_slow(self.send_timeout),
        }
    }

    async fn handle(&mut self, protocol: Protocol, text: &str) -> Result<(), Close> {
        // A frame read as the expiry fires (the loop picks either) runs nothing.
        if self
            .expires
            .is_some_and(|at| tokio::time::Instant::now() >= at)
        {
            return Err(expired());
        }
        let message: Value = match serde_json::from_str(text) {
            Ok(message) => message,
            // The legacy protocol says so and keeps the socket, as its own server does.
            Err(e) if protocol == Protocol::Legacy => {
                let message = format!("Message must be JSON-parseable: {e}");
                return self
                    .send(json!({ "type": "connection_error", "payload": { "message": message } }))
                    .await;
            }
            Err(_) => return Err(Close::bad_message("Invalid message received")),
        };
        let kind = message
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (protocol, kind) {
            (_, "connection_init") => self.init(protocol, message.get("payload")).await,
            (Protocol::Transport, "ping") => self.send(json!({ "type": "pong" })).await,
            (Protocol::Transport, "pong") => Ok(()),
            (Protocol::Transport, "subscribe") | (Protocol::Legacy, "start") => {
                self.subscribe(protocol, &message).await
            }
            (Protocol::Transport, "complete") | (Protocol::Legacy, "stop") => {
                let id = match message_id(&message) {
                    Ok(id) => id,
                    Err(close) => return self.refuse(protocol, &message, close).await,
                };
                if let Some((_, task)) = self.subscriptions.remove(id) {
                    task.abort();
                    if protocol == Protocol::Legacy {
                        self.send(json!({ "type": "complete", "id": id })).await?;
                    }
                }
                Ok(())
            }
            (Protocol::Legacy, "connection_terminate") => Err(Close::new(1000, "Normal Closure")),
            (Protocol::Legacy, _) => {
                let id = message.get("id").cloned().unwrap_or(Value::Null);
                self.send(json!({ "type": "error", "id": id, "payload": { "message": "Invalid message type!" } }))
                    .await
            }
            (Protocol::Transport, _) => Err(Close::bad_message("Invalid message received")),
        }
    }

    async fn init(&mut self, protocol: Protocol, payload: Option<&Value>) -> Result<(), Close> {
        if self.initialised {
            // The legacy protocol has no close code for it: its faults are answered, and the
            // socket stays open under the first init.
            if protocol == Protocol::Legacy {
                let error = json!({ "message": "Too many initialisation requests: the connection is initialised already" });
                return self
                    .send(json!({ "type": "connection_error", "payload": error }))
                    .await;
            }
            return Err(Close::new(4429, "Too many initialisation requests"));
        }
        if payload.is_some_and(|p| !matches!(p, Value::Object(_) | Value::Null)) {
            return Err(Close::bad_message(
                "Invalid message received: the connection_init payload must be an object or null",
            ));
        }
        self.initialised = true;
        let token = match payload.map(token_in).transpose() {
            Ok(named) => Ok(named.flatten().or(self.header_token.clone())),
            Err(refused) => Err(refused),
        };
        // Before the profile is read: a change after the read is then seen by the next one.
        self.profiles.mark_unchanged();
        let result = match token {
            // A payload naming a credential that is none is refused, not passed over for
            // the upgrade request's.
            Err(refused) => Err(Some(refused)),
            Ok(Some(token)) => self.state.viewer(&token).await.map_err(|e| match e {
                // The token may be good: the store could not say. Not a refusal.
                AuthError::Unavailable => None,
                refused => Some(refused.to_string()),
            }),
            Ok(None) => Err(Some("send a bearer token in the connection_init payload as {\"Authorization\": \"Bearer …\"}".into())),
        };
        match result {
            Ok(viewer) => {
                self.viewer = Some(viewer);
                self.send(json!({ "type": "connection_ack" })).await
            }
            Err(refused) => {
                let reason = refused.clone().unwrap_or_else(|| {
                    "the token cannot be checked right now; connect again shortly".into()
                });
                if protocol == Protocol::Legacy {
                    let _ = self
                        .send(
                            json!({ "type": "connection_error", "payload": { "message": reason } }),
                        )
                        .await;
                }
                Err(match refused {
                    Some(reason) => Close::new(4403, format!("Forbidden: {reason}")),
                    None => try_again_later(&format!("Try again later: {reason}")),
                })
            }
        }
    }

    async fn subscribe(&mut self, protocol: Protocol, message: &Value) -> Result<(), Close> {
        if self.viewer.is_some() {
            self.refresh_profile().await?;
        }
        let Some(viewer) = self.viewer.clone() else {
            return self
                .refuse(protocol, message, Close::new(4401, "Unauthorized"))
                .await;
        };
        let id = match message_id(message) {
            Ok(id) => id.to_owned(),
            Err(close) => return self.refuse(protocol, message, close).await,
        };
        if self.subscriptions.contains_key(&id) {
            if protocol == Protocol::Transport {
                return Err(Close::new(
                    4409,
                    format!("Subscriber for {id} already exists"),
                ));
            }
            // The legacy protocol has no such close: as its reference server does, the
            // operation under that id is stopped and the new one takes its place.
            if let Some((_, task)) = self.subscriptions.remove(&id) {
                task.abort();
            }
        }
        let request = match message.get("payload") {
            Some(Value::Object(payload)) => super::graphql::request_from_params(payload),
            _ => Err("the payload must be an object".into()),
        };
        let request = match request {
            Ok(request) => request,
            Err(why) => {
                let close = Close::bad_message(&format!("Invalid message received: {why}"));
                return self.refuse(protocol, message, close).await;
            }
        };
        if self.subscriptions.len() >= self.state.websocket.max_subscriptions {
            let error = json!([{ "message": format!("at most {} subscriptions per connection", self.state.websocket.max_subscriptions),
                                 "extensions": { "code": "BAD_USER_INPUT" } }]);
            self.send(error_message(protocol, &id, error)).await?;
            // The legacy protocol ends every refused operation with `complete`.
            if protocol == Protocol::Legacy {
                self.send(json!({ "type": "complete", "id": id })).await?;
            }
            return Ok(());
        }
        let request = prepare(request, viewer, &self.state.store);
        let mut responses = self.state.schema.execute_stream(request);
        let tx = self.outgoing.0.clone();
        let mut session = self.session.clone();
        let task_id = id.clone();
        let (send_timeout, expires) = (self.send_timeout, self.expires);
        self.tasks += 1;
        let task_number = self.tasks;
        let task = actix_web::rt::spawn(async move {
            let mut first = true;
            while let Some(response) = responses.next().await {
                if first && is_request_error(&response) {
                    let errors = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
                    let _ = tx.send(Outgoing::Finished {
                        last: Some(error_message(protocol, &task_id, errors)),
                        id: task_id,
                        task: task_number,
                        send_complete: protocol == Protocol::Legacy,
                    });
                    return;
                }
                first = false;
                // Written straight to the socket, serialised once: with thousands of
                // subscribers an event costs each of them one task wake-up, not two.
                let message = Data {
                    kind: if protocol == Protocol::Legacy {
                        "data"
                    } else {
                        "next"
                    },
                    id: &task_id,
                    payload: &response,
                };
                let text = match serde_json::to_string(&message) {
                    Ok(text) => text,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot serialize a subscription event");
                        break;
                    }
                };
                let until = deadline(send_timeout, expires);
                if deliver(&mut session, text, until).await.is_err() {
                    // At the token's expiry the connection closes with 4403 by itself.
                    if expires.is_none_or(|at| until < at) {
                        let _ = tx.send(Outgoing::Stalled);
                    }
                    return;
                }
            }
            let _ = tx.send(Outgoing::Finished {
                id: task_id,
                task: task_number,
                last: None,
                send_complete: true,
            });
        });
        self.subscriptions.insert(id, (task_number, task));
        Ok(())
    }
}

impl Connection {
    /// An operation message refused: graphql-transport-ws closes with `close`; the legacy
    /// protocol, which has no such closes, answers with an `error` to its id and keeps the
    /// socket, as its reference server does.
    async fn refuse(
        &mut self,
        protocol: Protocol,
        message: &Value,
        close: Close,
    ) -> Result<(), Close> {
        match protocol {
            Protocol::Transport => Err(close),
            Protocol::Legacy => {
                let id = message.get("id").cloned().unwrap_or(Value::Null);
                let Close(_, reason) = close;
                let reason = if self.viewer.is_none() {
                    format!("{reason}: send connection_init with a bearer token first")
                } else {
                    reason
                };
                self.send(json!({ "type": "error", "id": id, "payload": { "message": reason } }))
                    .await
            }
        }
    }

    /// Reads the viewer's profile again when some profile's permissions changed since it was
    /// read: each operation runs with the permissions as they are now, not as they were when
    /// the socket opened.
    async fn refresh_profile(&mut self) -> Result<(), Close> {
        if !self.profiles.has_changed().unwrap_or(false) {
            return Ok(());
        }
        self.profiles.mark_unchanged();
        let version = *self.profiles.borrow();
        let Some(viewer) = self.viewer.as_mut() else {
            return Ok(());
        };
        viewer.profile_version = version;
        // A read the store is slow to answer does not hold the socket past the token's expiry.
        let read = self.state.store.profile_by_name(&viewer.profile.name);
        let read = match self.expires {
            Some(at) => tokio::time::timeout_at(at, read)
                .await
                .map_err(|_| expired())?,
            None => read.await,
        };
        viewer.profile = match read {
            Ok(Some(profile)) => profile,
            Ok(None) => return Err(Close::new(4403, "Forbidden: the profile no longer exists")),
            Err(e) => {
                tracing::error!(error = %e, "profile lookup failed for a subscription");
                return Err(try_again_later("the profile cannot be read"));
            }
        };
        Ok(())
    }
}

fn message_id(message: &Value) -> Result<&str, Close> {
    message
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Close::bad_message("Invalid message received: a string 'id' is required"))
}

fn error_message(protocol: Protocol, id: &str, errors: Value) -> Value {
    match protocol {
        Protocol::Transport => json!({ "type": "error", "id": id, "payload": errors }),
        Protocol::Legacy => json!({ "type": "data", "id": id, "payload": { "errors": errors } }),
    }
}

/// Finds a bearer token in a `connection_init` payload: `Authorization`, `authorization`,
/// `token`, or the same inside `headers`; why not, where an `Authorization` there is no
/// bearer token.
fn token_in(payload: &Value) -> Result<Option<String>, String> {
    let from = |map: &Value| -> Result<Option<String>, String> {
        for key in ["Authorization", "authorization"] {
            // Null or blank names none (`token ? "Bearer …" : ""` signed out).
            let named = map
                .get(key)
                .filter(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()));
            if let Some(value) = named {
                return value
                    .as_str()
                    .and_then(|value| bearer(Some(value)).ok())
                    .map(|token| Some(token.to_owned()))
                    .ok_or_else(|| format!("the connection_init {key} is not \"Bearer <token>\""));
            }
        }
        Ok(["token", "authToken"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str))
            .map(str::to_owned))
    };
    match from(payload)? {
        Some(token) => Ok(Some(token)),
        None => payload.get("headers").map_or(Ok(None), from),
    }
}
