//! The HTTP front: one catch-all service that logs, injects faults, authorizes and routes.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use serde_json::{Value as Json, json};

use crate::error::ApiError;
use crate::rest::{self, Ctx, Reply};
use crate::state::{LoggedRequest, Sim, lock};
use crate::{identity, oauth};

/// Answers a request, its `Date` the org's clock as the answer leaves, as an org's is: a
/// client reads the org's time from it (moved by `SimHandle::advance_clock` with the rest).
pub async fn dispatch(
    req: HttpRequest,
    body: web::Bytes,
    sim: web::Data<Arc<Sim>>,
) -> HttpResponse {
    let mut response = answer(req, body, sim.get_ref()).await;
    let now = lock(&sim.store).clock.now();
    if let Some(now) = chrono::DateTime::from_timestamp(now, 0)
        && let Ok(date) = actix_web::http::header::HeaderValue::from_str(
            &now.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        )
    {
        response
            .headers_mut()
            .insert(actix_web::http::header::DATE, date);
    }
    response
}

async fn answer(req: HttpRequest, body: web::Bytes, sim: &Sim) -> HttpResponse {
    let latency = lock(&sim.faults).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let method = match params.iter().find(|(k, _)| k == "_HttpMethod") {
        Some((_, m)) if req.method() == Method::POST => {
            Method::from_bytes(m.as_bytes()).unwrap_or(Method::POST)
        }
        _ => req.method().clone(),
    };
    let held = |answered| {
        let mut faults = lock(&sim.faults);
        if faults.holds.is_empty() {
            None
        } else {
            let target = params.iter().fold(req.path().to_owned(), |target, (k, v)| {
                format!("{target} {k}={v}")
            });
            faults.hold(method.as_str(), &target, answered)
        }
    };
    if let Some(gate) = held(false) {
        gate.pass().await;
    }
    let rest = req.path().starts_with("/services/data/v");
    let log = |status| LoggedRequest {
        method: method.to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        status,
    };
    if rest && lock(&sim.faults).dropped() {
        sim.record(log(0));
        return cut_off();
    }
    let response = route(sim, &req, &method, &params, &body);
    if let Some(gate) = held(true) {
        gate.pass().await;
    }
    if rest && lock(&sim.faults).answer_lost() {
        // Done, but the client never hears so.
        sim.record(log(0));
        return cut_off();
    }
    sim.record(log(response.status().as_u16()));
    response
}

/// Headers, then a body that fails: the connection closes before the answer is complete.
fn cut_off() -> HttpResponse {
    struct Broken;
    impl futures_core::Stream for Broken {
        type Item = Result<web::Bytes, std::io::Error>;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection dropped by fault injection",
            ))))
        }
    }
    HttpResponse::Ok()
        .content_type("application/json;charset=UTF-8")
        .streaming(Broken)
}

fn json_response(status: u16, body: Option<&Json>) -> HttpResponse {
    reply_response(status, body.map(|b| b.to_string().into_bytes()), None)
}

/// A response whose body is JSON text already written.
fn reply_response(status: u16, body: Option<Vec<u8>>, kind: Option<&str>) -> HttpResponse {
    let mut builder = HttpResponse::build(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    match body {
        Some(body) => builder
            .content_type(kind.unwrap_or("application/json;charset=UTF-8"))
            .body(body),
        None => builder.finish(),
    }
}

fn route(
    sim: &Sim,
    req: &HttpRequest,
    method: &Method,
    params: &[(String, String)],
    body: &[u8],
) -> HttpResponse {
    let path = req.path();
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    match trimmed {
        "/services/oauth2/token" if method == Method::POST => {
            {
                let mut faults = lock(&sim.faults);
                if faults.throttled_sign_ins > 0 {
                    faults.throttled_sign_ins -= 1;
                    return reply_response(
                        429,
                        Some(b"<html><body>Too Many Requests</body></html>".to_vec()),
                        Some("text/html"),
                    );
                }
                if faults.contended_sign_ins > 0 {
                    faults.contended_sign_ins -= 1;
                    let body = serde_json::json!({
                        "error": "invalid_grant",
                        "error_description": "token request is already being processed",
                    });
                    return json_response(400, Some(&body));
                }
            }
            let mut form: HashMap<String, String> = params.iter().cloned().collect();
            form.extend(form_urlencoded::parse(body).into_owned());
            let (status, body) = oauth::token(sim, &form, basic_auth(req));
            json_response(status, Some(&body))
        }
        "/services/oauth2/revoke" if method == Method::POST => {
            let form: HashMap<String, String> = form_urlencoded::parse(body)
                .into_owned()
                .chain(params.iter().cloned())
                .collect();
            let revoked = form
                .get("token")
                .is_some_and(|t| lock(&sim.sessions).revoke(t));
            if revoked {
                json_response(200, None)
            } else {
                json_response(
                    400,
                    Some(
                        &json!({"error": "unsupported_token_type", "error_description": "this token type is not supported"}),
                    ),
                )
            }
        }
        "/services/data" => json_response(200, Some(&versions())),
        _ if path.starts_with("/id/") => {
            let token = params
                .iter()
                .find(|(k, _)| k == "oauth_token")
                .map(|(_, v)| v.as_str());
            let bearer = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match identity::identity(sim, trimmed, bearer, token) {
                Ok(body) => json_response(200, Some(&body)),
                Err(err) => json_response(err.status, Some(&err.body())),
            }
        }
        _ => match path.strip_prefix("/services/data/v") {
            Some(rest) => data(sim, req, method, rest, params, body),
            None => json_response(404, Some(&ApiError::not_found().body())),
        },
    }
}

fn basic_auth(req: &HttpRequest) -> Option<(String, String)> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let decoded = STANDARD.decode(header.strip_prefix("Basic ")?).ok()?;
    let (id, secret) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(a, b)| (a.to_string(), b.to_string()))?;
    Some((id, secret))
}

fn versions() -> Json {
    Json::Array(
        (31..=68)
            .map(|v| json!({ "label": release_name(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0") }))
            .collect(),
    )
}

/// The release that introduced API version `v` (31.0 = Summer '14; three releases a year).
fn release_name(v: u32) -> String {
    let step = v.saturating_sub(31);
    let season = ["Summer", "Winter", "Spring"][(step % 3) as usize];
    format!("{season} '{:02}", 14 + step.div_ceil(3))
}

fn data(
    sim: &Sim,
    req: &HttpRequest,
    method: &Method,
    rest: &str,
    params: &[(String, String)],
    body: &[u8],
) -> HttpResponse {
    let outcome = data_path(rest)
        .and_then(|(version, segments)| serve(sim, req, method, &version, &segments, params, body));
    let mut response = match outcome {
        Ok(Reply {
            status,
            body,
            content_type,
            location,
        }) => {
            let mut response = reply_response(status, body, content_type);
            if let Some(value) =
                location.and_then(|l| actix_web::http::header::HeaderValue::from_str(&l).ok())
            {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::LOCATION, value);
            }
            response
        }
        Err(err) => json_response(err.status, Some(&err.body())),
    };
    let info = lock(&sim.faults).limit_info();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&info) {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("sforce-limit-info"),
            value,
        );
    }
    response
}

/// The API version and the decoded segments of a path under `/services/data/v`, or the error
/// Salesforce gives for a version it does not serve.
pub fn data_path(rest: &str) -> Result<(String, Vec<String>), ApiError> {
    let mut segments: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let version = segments.remove(0);
    if segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    let number: f64 = version.parse().unwrap_or(0.0);
    if segments.iter().any(String::is_empty)
        || !(21.0..=68.0).contains(&number)
        || !version.contains('.')
    {
        Err(ApiError::not_found())
    } else if number < 31.0 {
        Err(ApiError::new(
            410,
            "GONE",
            "The requested resource is no longer available",
        ))
    } else {
        Ok((version, segments))
    }
}

fn serve(
    sim: &Sim,
    req: &HttpRequest,
    method: &Method,
    version: &str,
    segments: &[String],
    params: &[(String, String)],
    body: &[u8],
) -> Result<Reply, ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    oauth::authorize(sim, header("authorization"))?;
    {
        let mut faults = lock(&sim.faults);
        if faults.api_scope_withheld {
            return Err(ApiError::new(
                401,
                "INVALID_SESSION_ID",
                "This session is not valid for use with the REST API",
            ));
        }
        if faults.api_disabled {
            return Err(ApiError::new(
                403,
                "API_DISABLED_FOR_ORG",
                "The REST API is not enabled for this Organization.",
            ));
        }
        faults.spend()?;
        if let Some(err) = faults.injected() {
            return Err(err);
        }
    }
    let batch = header("sforce-query-options")
        .and_then(|h| {
            h.split(',').find_map(|p| {
                p.trim()
                    .strip_prefix("batchSize=")?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
        })
        .map_or(2000, |b| b.clamp(200, 2000));
    let ctx = Ctx {
        version: version.to_string(),
        batch,
        params: params.to_vec(),
    };
    rest::handle(sim, &ctx, method, segments, body)
}

#[cfg(test)]
mod tests {
    use super::release_name;

    #[test]
    fn versions_carry_release_names() {
        let names: Vec<(u32, String)> = [31, 59, 65, 66, 67, 68]
            .into_iter()
            .map(|v| (v, release_name(v)))
            .collect();
        let expected = [
            (31, "Summer '14"),
            (59, "Winter '24"),
            (65, "Winter '26"),
            (66, "Spring '26"),
            (67, "Summer '26"),
            (68, "Winter '27"),
        ];
        assert_eq!(
            names,
            expected.map(|(v, n)| (v, n.to_string())).to_vec(),
            "labels per the reference's version table"
        );
    }
}
