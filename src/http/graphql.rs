//! GraphQL over HTTP (POST and GET), with our own negotiation of media type and status.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Request, Response, Variables};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::negotiate::{ResponseType, accepts_json, is_json_body, response_type, wants_html};
use super::{AppState, graphiql, ws};
use crate::auth::{AuthError, Viewer, bearer};
use crate::graphql::{Freshness, KeptResponse, ResponseKey, code_of, is_request_error, prepare};

fn header(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `Accept` header with all its field lines, joined as one (RFC 9110 §5.3: a list may
/// come in several).
fn accept(req: &HttpRequest) -> Option<String> {
    let lines: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// A response that carries only errors, each with a code.
fn errors(status: StatusCode, kind: ResponseType, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(kind.content_type())
        .json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }))
}

fn bad_request(kind: ResponseType, message: &str) -> HttpResponse {
    errors(StatusCode::BAD_REQUEST, kind, "BAD_USER_INPUT", message)
}

fn unauthenticated(kind: ResponseType, err: &AuthError) -> HttpResponse {
    let (status, code) = match err {
        AuthError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "INTERNAL"),
        _ => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
    };
    let mut response = errors(status, kind, code, &err.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    }
    if status == StatusCode::UNAUTHORIZED {
        let challenge = match err {
            AuthError::Missing => "Bearer".to_owned(),
            _ => "Bearer error=\"invalid_token\"".to_owned(),
        };
        if let Ok(value) = header::HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// Negotiates the response type and authenticates, in that order.
async fn admit(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(ResponseType, Viewer), HttpResponse> {
    let kind = response_type(accept(req).as_deref()).ok_or_else(|| {
        HttpResponse::NotAcceptable().content_type("application/json; charset=utf-8").json(json!({
            "errors": [{ "message": "accept application/graphql-response+json or application/json",
                         "extensions": { "code": "BAD_USER_INPUT" } }]
        }))
    })?;
    // RFC 9110 §5.3: Authorization is no list; two would leave unclear who asks.
    if req.headers().get_all(header::AUTHORIZATION).count() > 1 {
        return Err(bad_request(
            kind,
            "send one Authorization header: this request has several",
        ));
    }
    let token =
        bearer(header(req, header::AUTHORIZATION)).map_err(|e| unauthenticated(kind, &e))?;
    let viewer = state
        .viewer(token)
        .await
        .map_err(|e| unauthenticated(kind, &e))?;
    Ok((kind, viewer))
}

/// Checks one request's parameters as the GraphQL-over-HTTP spec defines them.
pub(super) fn request_from_params(params: &Map<String, Value>) -> Result<Request, String> {
    let query = match params.get("query") {
        Some(Value::String(q)) => q.clone(),
        Some(_) => return Err("'query' must be a string".into()),
        None => return Err("'query' is required".into()),
    };
    let mut request = Request::new(query);
    match params.get("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name.clone()),
        Some(_) => return Err("'operationName' must be a string or null".into()),
    }
    match params.get("variables") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => request = request.variables(Variables::from_json(v.clone())),
        Some(_) => return Err("'variables' must be an object or null".into()),
    }
    match params.get("extensions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let value =
                    async_graphql::Value::from_json(v.clone()).map_err(|e| e.to_string())?;
                request.extensions.insert(k.clone(), value);
            }
        }
        Some(_) => return Err("'extensions' must be an object or null".into()),
    }
    Ok(request)
}

/// The request body, or a refusal in GraphQL's shape when it is over `http.body_limit`.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    (limit, within): (usize, std::time::Duration),
    kind: ResponseType,
) -> Result<web::Bytes, HttpResponse> {
    let too_large = || {
        errors(
            StatusCode::PAYLOAD_TOO_LARGE,
            kind,
            "BAD_USER_INPUT",
            &format!("the request body is over the limit of {limit} bytes (http.body_limit)"),
        )
    };
    let declared = header(req, header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    // A client that trickles its body holds neither the connection nor its buffer for long.
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, payload.next()).await else {
            return Err(errors(
                StatusCode::REQUEST_TIMEOUT,
                kind,
                "BAD_USER_INPUT",
                &format!(
                    "the request body did not arrive within {} s (http.body_timeout_secs)",
                    within.as_secs()
                ),
            ));
        };
        let Some(chunk) = next else { break };
        let chunk = chunk
            .map_err(|e| bad_request(kind, &format!("the request body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub async fn post(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (kind, viewer) = match admit(&req, &state).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    // The body is read as sent: a compressed one would be taken for JSON that does not parse.
    let encoded = req.headers().get_all(header::CONTENT_ENCODING).any(|v| {
        v.to_str().map_or(true, |v| {
            v.split(',')
                .any(|c| !c.trim().eq_ignore_ascii_case("identity"))
        })
    });
    if encoded {
        let mut response = errors(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind,
            "BAD_USER_INPUT",
            "send the request body uncompressed: this gateway takes no Content-Encoding",
        );
        response.headers_mut().insert(
            header::ACCEPT_ENCODING,
            header::HeaderValue::from_static("identity"),
        );
        return response;
    }
    let body = match read_body(&req, payload, (state.body_limit, state.body_timeout), kind).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if !is_json_body(header(&req, header::CONTENT_TYPE)) {
        return errors(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind,
            "BAD_USER_INPUT",
            "send the request body as application/json",
        );
    }
    // Counted before anything is built: a body of a megabyte of `[0,0,…]` would otherwise
    // become half a million values before its size is refused.
    if let Some(len) = batch_len(&body)
        && (len == 0 || len > state.graphql.max_batch)
    {
        return batch_refused(kind, state.graphql.max_batch, len);
    }
    let batch = match serde_json::from_slice::<Value>(&body) {
        Err(e) => return bad_request(kind, &format!("the body is not valid JSON: {e}")),
        Ok(Value::Object(params)) => match request_from_params(&params) {
            Ok(request) => {
                let key = share_key(&viewer, &request);
                return execute_one(&state, kind, viewer, request, key, caching(&req)).await;
            }
            Err(message) => return bad_request(kind, &message),
        },
        Ok(Value::Array(items)) => {
            if items.is_empty() || items.len() > state.graphql.max_batch {
                return batch_refused(kind, state.graphql.max_batch, items.len());
            }
            let mut requests = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let parsed = item
                    .as_object()
                    .ok_or_else(|| "must be an object".to_owned())
                    .and_then(request_from_params);
                match parsed {
                    Ok(request) => requests.push(request),
                    Err(message) => {
                        return bad_request(kind, &format!("batch item {i}: {message}"));
                    }
                }
            }
            if !accepts_json(accept(&req).as_deref()) {
                return errors(
                    StatusCode::NOT_ACCEPTABLE,
                    kind,
                    "BAD_USER_INPUT",
                    "a batch is answered as application/json (an array of responses), which this request's Accept does not admit",
                );
            }
            BatchRequest::Batch(requests)
        }
        Ok(_) => return bad_request(kind, "the body must be a JSON object (or an array of them)"),
    };
    execute(&state, kind, viewer, batch).await
}

pub async fn get(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    // Only a WebSocket upgrade leaves HTTP; any other (`h2c`) is ignored, as HTTP/1.1 allows.
    let websocket = req
        .headers()
        .get_all(header::UPGRADE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"));
    if websocket {
        return ws::upgrade(req, payload, state).await;
    }
    if req.query_string().is_empty() && wants_html(accept(&req).as_deref()) {
        return graphiql::page();
    }
    let (kind, viewer) = match admit(&req, &state).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let params = match web::Query::<HashMap<String, String>>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return bad_request(kind, &format!("the query string is malformed: {e}")),
    };
    let mut map = Map::new();
    for (key, raw) in params {
        let value = match key.as_str() {
            "variables" | "extensions" => match serde_json::from_str(&raw) {
                Ok(v) => v,
                Err(e) => return bad_request(kind, &format!("'{key}' is not valid JSON: {e}")),
            },
            _ => Value::String(raw),
        };
        map.insert(key, value);
    }
    let mut request = match request_from_params(&map) {
        Ok(r) => r,
        Err(message) => return bad_request(kind, &message),
    };
    let key = share_key(&viewer, &request);
    let operation_name = request.operation_name.clone();
    if let Some(doc) = state.schema.parsed(&mut request) {
        let operation = match &operation_name {
            Some(name) => doc
                .operations
                .iter()
                .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
                .map(|(_, op)| op),
            // Several operations and no name: none is chosen, and running it says so, the
            // same answer whichever way the document is read.
            None => {
                let mut operations = doc.operations.iter();
                operations
                    .next()
                    .filter(|_| operations.next().is_none())
                    .map(|(_, op)| op)
            }
        };
        if operation.is_some_and(|op| op.node.ty == OperationType::Subscription) {
            return errors(
                request_error_status(kind),
                kind,
                "BAD_USER_INPUT",
                "subscriptions are served over a WebSocket at this path (graphql-transport-ws or graphql-ws), not over HTTP",
            );
        }
        if operation.is_some_and(|op| op.node.ty != OperationType::Query) {
            return HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, "POST"))
                .content_type(kind.content_type())
                .json(
                    json!({ "errors": [{ "message": "only queries may be sent with GET; use POST",
                                           "extensions": { "code": "BAD_USER_INPUT" } }] }),
                );
        }
    }
    execute_one(&state, kind, viewer, request, key, caching(&req)).await
}

/// What the client allows of kept answers: `Cache-Control: no-cache` (or `max-age=0`, or
/// `Pragma: no-cache`) asks for one computed afresh, `no-store` also that it not be kept;
/// `max-age=N` takes one at most N seconds old (a value that is no number, none at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caching {
    Allowed {
        max_age: Option<std::time::Duration>,
    },
    Fresh,
    NoStore,
}

fn caching(req: &HttpRequest) -> Caching {
    let directives = |name| {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|directive| directive.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let control = directives(header::CACHE_CONTROL);
    // The least of those given; one that is no number allows nothing kept.
    let max_age = control
        .iter()
        .filter_map(|d| d.strip_prefix("max-age="))
        .map(|secs| secs.trim_matches('"').parse::<u64>().unwrap_or(0))
        .min();
    if control.iter().any(|d| d == "no-store") {
        Caching::NoStore
    } else if control.iter().any(|d| d == "no-cache")
        || max_age == Some(0)
        || directives(header::PRAGMA).iter().any(|d| d == "no-cache")
    {
        Caching::Fresh
    } else {
        Caching::Allowed {
            max_age: max_age.map(std::time::Duration::from_secs),
        }
    }
}

/// The key an answer to this request is kept under; none when it carries `extensions`.
fn share_key(viewer: &Viewer, request: &Request) -> Option<ResponseKey> {
    if !request.extensions.is_empty() {
        return None;
    }
    Some(ResponseKey {
        profile: viewer.profile.id.0,
        permissions: viewer.permissions(),
        query: request.query.clone(),
        operation: request.operation_name.clone(),
        variables: serde_json::to_string(&request.variables).ok()?,
    })
}

/// One operation: its kept answer when there is one and the client takes it; else computed,
/// and kept when it may be shared (see `graphql::responses`).
async fn execute_one(
    state: &AppState,
    kind: ResponseType,
    viewer: Viewer,
    request: Request,
    key: Option<ResponseKey>,
    caching: Caching,
) -> HttpResponse {
    // Read before anything the answer holds is: a change committed meanwhile moves it on.
    let read = (state.store.changes(), std::time::Instant::now());
    // Only answers to shareable operations are kept: one found needs no further look.
    if let Some(key) = &key
        && let Caching::Allowed { max_age } = caching
        && let Some((kept, age)) = state.schema.kept(key, read.0, max_age)
    {
        for code in kept.codes.iter() {
            state.metrics.graphql_error(code);
        }
        state.metrics.response_cache(true);
        return HttpResponse::Ok()
            .content_type(kind.content_type())
            .insert_header((header::AGE, age.as_secs().to_string()))
            .body(kept.body);
    }
    let Some(key) = key.filter(|_| state.schema.keeps_answers()) else {
        return execute(state, kind, viewer, BatchRequest::Single(request)).await;
    };
    let freshness = Arc::new(Freshness::default());
    let (response, shareable) = state
        .schema
        .execute_shareable(prepare(request, viewer, &state.store).data(freshness.clone()))
        .await;
    if shareable {
        state.metrics.response_cache(false);
    }
    let status = status_of(kind, &response);
    let body = match serde_json::to_vec(&body_of(state, &response)) {
        Ok(body) => web::Bytes::from(body),
        Err(e) => {
            return errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                kind,
                "INTERNAL",
                &e.to_string(),
            );
        }
    };
    let codes: Vec<String> = response.errors.iter().filter_map(code_of).collect();
    let keep = shareable
        && status == StatusCode::OK
        && caching != Caching::NoStore
        && codes.len() == response.errors.len()
        && codes.iter().all(|c| c == "FORBIDDEN");
    if keep {
        let kept = KeptResponse {
            body: body.clone(),
            codes: codes.into(),
        };
        state.schema.keep(key, read, &freshness, kept);
    }
    HttpResponse::build(status)
        .content_type(kind.content_type())
        .body(body)
}

/// 400 for a request error under the GraphQL media type, as its spec says; else 200.
fn status_of(kind: ResponseType, response: &Response) -> StatusCode {
    if is_request_error(response) {
        request_error_status(kind)
    } else {
        StatusCode::OK
    }
}

/// A request error's status: 400 under the GraphQL media type, 200 under plain JSON.
fn request_error_status(kind: ResponseType) -> StatusCode {
    match kind {
        ResponseType::GraphqlResponse => StatusCode::BAD_REQUEST,
        ResponseType::Json => StatusCode::OK,
    }
}

async fn execute(
    state: &AppState,
    kind: ResponseType,
    viewer: Viewer,
    batch: BatchRequest,
) -> HttpResponse {
    let run = |request| {
        state
            .schema
            .execute(prepare(request, viewer.clone(), &state.store))
    };
    let response = match batch {
        BatchRequest::Single(request) => BatchResponse::Single(run(request).await),
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            let mut viewer = Ok(viewer.clone());
            for request in requests {
                // A profile changed while the batch runs (by an operation of it, say) holds
                // from its next operation on, as it would for the next request.
                viewer = match viewer {
                    Ok(viewer) => viewer.read_again(&state.store).await,
                    gone => gone,
                };
                responses.push(match &viewer {
                    Ok(viewer) => {
                        let request = prepare(request, viewer.clone(), &state.store);
                        state.schema.execute(request).await
                    }
                    Err(e) => unanswered(e),
                });
            }
            BatchResponse::Batch(responses)
        }
    };
    match &response {
        BatchResponse::Single(r) => HttpResponse::build(status_of(kind, r))
            .content_type(kind.content_type())
            .json(body_of(state, r)),
        // An array of responses: application/json, whatever the request preferred, since the
        // GraphQL response type describes one (and its status, that one's outcome).
        BatchResponse::Batch(rs) => HttpResponse::Ok()
            .content_type(ResponseType::Json.content_type())
            .json(rs.iter().map(|r| body_of(state, r)).collect::<Vec<_>>()),
    }
}

/// An operation of a batch whose viewer could not be read again.
fn unanswered(err: &AuthError) -> Response {
    let code = match err {
        AuthError::Unavailable => "INTERNAL",
        _ => "UNAUTHENTICATED",
    };
    let mut error = async_graphql::ServerError::new(err.to_string(), None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    Response::from_errors(vec![error])
}

/// One response as sent, with `data` and every object in it in selection order (the spec's
/// "should"); a request error carries no `data` entry.
#[derive(serde::Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

/// The body of one response, its errors counted.
fn body_of<'a>(state: &AppState, response: &'a Response) -> Body<'a> {
    for error in &response.errors {
        state
            .metrics
            .graphql_error(code_of(error).as_deref().unwrap_or("INTERNAL"));
    }
    Body {
        data: (!is_request_error(response)).then_some(&response.data),
        errors: &response.errors,
        extensions: &response.extensions,
    }
}

/// How many items a body that is a JSON array holds, counted without building them; `None`
/// for any other body, or one that does not parse (the parse after says why).
fn batch_len(body: &[u8]) -> Option<usize> {
    use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut items = 0;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                items += 1;
            }
            Ok(items)
        }
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'[' {
        return None;
    }
    serde_json::Deserializer::from_slice(body)
        .deserialize_seq(Count)
        .ok()
}

/// A batch of no operations, or of more than `max_batch`.
fn batch_refused(kind: ResponseType, max_batch: usize, len: usize) -> HttpResponse {
    if len == 0 {
        return bad_request(
            kind,
            "the batch is empty: a batch (a JSON array) holds at least one operation",
        );
    }
    let limit =
        crate::graphql::limit_error("maxBatch", max_batch, Some(len), "operations in the batch");
    HttpResponse::BadRequest()
        .content_type(kind.content_type())
        .json(json!({ "errors": [limit] }))
}
