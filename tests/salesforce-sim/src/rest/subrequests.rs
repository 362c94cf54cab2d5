//! `POST /composite`: up to 25 REST requests in one call, which counts as one against the
//! daily budget. A subrequest may use an earlier one's answer through `@{referenceId.path}`;
//! one that refers to a failed subrequest is not run.

use actix_web::http::Method;
use serde_json::{Map, Value as Json, json};

use super::{Ctx, Reply, method_not_allowed, parse_json};
use crate::error::ApiError;
use crate::server::data_path;
use crate::state::Sim;

const MAX_SUBREQUESTS: usize = 25;
/// Of those, queries (first pages and further pages) and collections.
const MAX_QUERIES: usize = 5;

pub fn handle(sim: &Sim, ctx: &Ctx, method: &Method, body: &[u8]) -> Result<Reply, ApiError> {
    if method != Method::POST {
        return Err(method_not_allowed(method));
    }
    let body = parse_json(body)?;
    let requests = body["compositeRequest"].as_array().ok_or_else(|| {
        ApiError::bad_request(
            "INVALID_API_INPUT",
            "compositeRequest: a list of subrequests is required",
        )
    })?;
    let all_or_none = body["allOrNone"].as_bool().unwrap_or(false);
    let parsed = requests
        .iter()
        .map(Subrequest::parse)
        .collect::<Result<Vec<_>, _>>()?;
    check(&parsed, all_or_none)?;

    let mut answers: Vec<(String, Option<Json>)> = Vec::new();
    let mut out = Vec::with_capacity(parsed.len());
    for sub in &parsed {
        let (status, headers, body) = match sub.resolve(&answers) {
            Ok((url, body)) => run(sim, ctx, &sub.method, &url, body.as_ref()),
            Err(e) => (e.status, Map::new(), e.body()),
        };
        let ok = (200..300).contains(&status);
        answers.push((sub.reference.clone(), ok.then(|| body.clone())));
        out.push(json!({
            "body": body,
            "httpHeaders": headers,
            "httpStatusCode": status,
            "referenceId": sub.reference,
        }));
    }
    Ok(Reply::ok(json!({ "compositeResponse": out })))
}

struct Subrequest {
    method: Method,
    url: String,
    reference: String,
    body: Option<Json>,
}

impl Subrequest {
    fn parse(raw: &Json) -> Result<Self, ApiError> {
        let text = |name: &str| {
            raw[name].as_str().map(str::to_owned).ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_API_INPUT",
                    format!("compositeRequest: every subrequest needs '{name}'"),
                )
            })
        };
        let reference = text("referenceId")?;
        let named_well = reference.starts_with(|c: char| c.is_ascii_alphabetic())
            && reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !named_well {
            return Err(ApiError::bad_request(
                "INVALID_API_INPUT",
                format!(
                    "referenceId '{reference}': must start with a letter and hold only letters, numbers and underscores"
                ),
            ));
        }
        let method = text("method")?;
        let method = match method.as_str() {
            "GET" | "POST" | "PATCH" | "DELETE" => {
                Method::from_bytes(method.as_bytes()).expect("the four methods are valid")
            }
            _ => {
                return Err(ApiError::bad_request(
                    "INVALID_API_INPUT",
                    format!("method '{method}': expected GET, POST, PATCH or DELETE"),
                ));
            }
        };
        Ok(Subrequest {
            method,
            url: text("url")?,
            reference,
            body: raw.get("body").cloned(),
        })
    }

    /// Whether it reads query results or writes a collection, of which a call takes five.
    fn is_query(&self) -> bool {
        let path = self.url.split('?').next().unwrap_or_default();
        let mut segments = path.trim_start_matches('/').split('/').skip(3);
        matches!(
            (segments.next(), segments.next()),
            (Some("query" | "queryAll"), _) | (Some("composite"), Some("sobjects"))
        )
    }

    /// Its URL and body with every `@{reference.path}` replaced by the value it names.
    fn resolve(
        &self,
        answers: &[(String, Option<Json>)],
    ) -> Result<(String, Option<Json>), ApiError> {
        let url = substitute(&self.url, answers)?
            .as_str()
            .map(str::to_owned)
            .unwrap_or_default();
        let body = self
            .body
            .as_ref()
            .map(|body| resolve_json(body, answers))
            .transpose()?;
        Ok((url, body))
    }
}

/// Refuses the whole call when it breaks one of the resource's limits.
fn check(subrequests: &[Subrequest], all_or_none: bool) -> Result<(), ApiError> {
    if subrequests.is_empty() || subrequests.len() > MAX_SUBREQUESTS {
        return Err(ApiError::bad_request(
            "INVALID_API_INPUT",
            format!(
                "compositeRequest: between 1 and {MAX_SUBREQUESTS} subrequests, not {}",
                subrequests.len()
            ),
        ));
    }
    let queries = subrequests.iter().filter(|s| s.is_query()).count();
    if queries > MAX_QUERIES {
        return Err(ApiError::bad_request(
            "INVALID_API_INPUT",
            format!(
                "compositeRequest: at most {MAX_QUERIES} query or collection subrequests, not {queries}"
            ),
        ));
    }
    for (n, sub) in subrequests.iter().enumerate() {
        if subrequests[..n]
            .iter()
            .any(|s| s.reference == sub.reference)
        {
            return Err(ApiError::bad_request(
                "INVALID_API_INPUT",
                format!("referenceId '{}' is used more than once", sub.reference),
            ));
        }
    }
    if all_or_none && subrequests.iter().any(|s| s.method != Method::GET) {
        // Rolling back would need the org's writes to be held apart from other clients'.
        return Err(ApiError::bad_request(
            "INVALID_API_INPUT",
            "allOrNone: the simulator does not roll back composite writes; send allOrNone false or use sObject Collections",
        ));
    }
    Ok(())
}

/// Runs one subrequest as the REST front would: its status, headers and body.
fn run(
    sim: &Sim,
    ctx: &Ctx,
    method: &Method,
    url: &str,
    body: Option<&Json>,
) -> (u16, Map<String, Json>, Json) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let outcome = path
        .strip_prefix("/services/data/v")
        .ok_or_else(ApiError::not_found)
        .and_then(data_path)
        .and_then(|(version, segments)| {
            let served = matches!(
                (
                    segments.first().map(String::as_str),
                    segments.get(1).map(String::as_str)
                ),
                (Some("sobjects" | "query" | "queryAll"), _)
                    | (Some("composite"), Some("sobjects"))
            );
            if !served {
                return Err(ApiError::bad_request(
                    "INVALID_API_INPUT",
                    format!("{path}: not a resource a composite subrequest can use"),
                ));
            }
            let ctx = Ctx {
                version,
                batch: ctx.batch,
                params: form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect(),
            };
            let body = body.map(Json::to_string).unwrap_or_default();
            super::handle(sim, &ctx, method, &segments, body.as_bytes())
        });
    match outcome {
        // sObject Blob Get answers bytes, which a composite answer cannot carry.
        Ok(reply) if reply.content_type.is_some() => (
            400,
            Map::new(),
            ApiError::bad_request(
                "INVALID_API_INPUT",
                format!("{path}: blob data cannot be read in a composite subrequest"),
            )
            .body(),
        ),
        Ok(reply) => {
            let mut headers = Map::new();
            if let Some(location) = reply.location {
                headers.insert("Location".into(), Json::String(location));
            }
            let body = reply
                .body
                .map(|bytes| {
                    serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                        Json::String(String::from_utf8_lossy(&bytes).into_owned())
                    })
                })
                .unwrap_or(Json::Null);
            (reply.status, headers, body)
        }
        Err(e) => (e.status, Map::new(), e.body()),
    }
}

fn resolve_json(value: &Json, answers: &[(String, Option<Json>)]) -> Result<Json, ApiError> {
    Ok(match value {
        Json::String(text) => substitute(text, answers)?,
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| resolve_json(item, answers))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), resolve_json(v, answers)?)))
                .collect::<Result<_, ApiError>>()?,
        ),
        other => other.clone(),
    })
}

/// `text` with its references replaced: the value itself when `text` is one reference, else
/// the text with each reference written in.
fn substitute(text: &str, answers: &[(String, Option<Json>)]) -> Result<Json, ApiError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let reference = &rest[start + 2..start + len];
        let value = lookup(reference, answers)?;
        if start == 0 && len + 1 == rest.len() && out.is_empty() {
            return Ok(value);
        }
        out.push_str(&rest[..start]);
        match value {
            Json::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(Json::String(out))
}

/// The value `name.field[0].field` names in an earlier answer.
fn lookup(reference: &str, answers: &[(String, Option<Json>)]) -> Result<Json, ApiError> {
    let halted = |why: String| {
        ApiError::bad_request(
            "PROCESSING_HALTED",
            format!("Invalid reference specified. {why}"),
        )
    };
    // `name[0].field[1][2]…`: a field (the first one names the answer), then indexes.
    let mut steps = reference.split('.').map(|step| {
        let mut parts = step.split('[');
        let field = parts.next().unwrap_or_default();
        let at: Vec<usize> = parts
            .filter_map(|part| part.strip_suffix(']')?.parse().ok())
            .collect();
        (field, at)
    });
    let (name, first) = steps.next().unwrap_or_default();
    let Some((_, answer)) = answers.iter().find(|(r, _)| r == name) else {
        return Err(halted(format!(
            "No subrequest before this one has the referenceId '{name}'"
        )));
    };
    let Some(mut value) = answer.clone() else {
        return Err(halted(format!(
            "No value for {reference} found in {name}: that subrequest failed"
        )));
    };
    let index = |value: Json, at: Vec<usize>| {
        at.into_iter()
            .fold(value, |v, i| v.get(i).cloned().unwrap_or(Json::Null))
    };
    value = index(value, first);
    for (field, at) in steps {
        value = index(value.get(field).cloned().unwrap_or(Json::Null), at);
    }
    if value.is_null() {
        return Err(halted(format!("No value for {reference} found in {name}")));
    }
    Ok(value)
}
