//! REST resources under `/services/data/vNN.N/`.

mod composite;
mod describe;
mod replication;
mod sobjects;
mod subrequests;

use actix_web::http::Method;
use serde_json::{Value as Json, json};

use crate::error::ApiError;
use crate::schema::{ObjIdx, Schema};
use crate::soql;
use crate::state::{Sim, lock};

pub struct Ctx {
    pub version: String,
    pub batch: usize,
    pub params: Vec<(String, String)>,
}

impl Ctx {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: its status, its body (JSON text, or a blob's bytes), and where a created
/// record lives.
pub struct Reply {
    pub status: u16,
    pub body: Option<Vec<u8>>,
    /// Set for a blob; JSON otherwise.
    pub content_type: Option<&'static str>,
    pub location: Option<String>,
}

impl Reply {
    pub fn ok(body: Json) -> Self {
        Reply::with(200, body)
    }

    /// A 200 whose JSON is already written (a query page, written record by record).
    pub fn text(body: String) -> Self {
        Reply {
            status: 200,
            body: Some(body.into_bytes()),
            content_type: None,
            location: None,
        }
    }

    pub fn with(status: u16, body: Json) -> Self {
        Reply::text(body.to_string()).status(status)
    }

    /// A 200 whose body is a blob field's bytes, as sObject Blob Get sends them.
    pub fn blob(bytes: Vec<u8>) -> Self {
        Reply {
            content_type: Some("application/octetstream"),
            body: Some(bytes),
            ..Reply::empty().status(200)
        }
    }

    fn status(self, status: u16) -> Self {
        Reply { status, ..self }
    }

    /// A 201 with a `Location` header pointing at the new record.
    pub fn created(body: Json, ctx: &Ctx, object: &str) -> Self {
        let location = body["id"]
            .as_str()
            .map(|id| format!("/services/data/v{}/sobjects/{object}/{id}", ctx.version));
        Reply {
            location,
            ..Reply::with(201, body)
        }
    }

    pub fn empty() -> Self {
        Reply {
            status: 204,
            body: None,
            content_type: None,
            location: None,
        }
    }
}

pub fn handle(
    sim: &Sim,
    ctx: &Ctx,
    method: &Method,
    segments: &[String],
    body: &[u8],
) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = method == Method::GET;
    match segs.as_slice() {
        [] if get => Ok(Reply::ok(resources(sim, &ctx.version))),
        ["limits"] if get => Ok(Reply::ok(replication::limits(sim))),
        ["query" | "queryAll", rest @ ..] if get => query(sim, ctx, segs[0] == "queryAll", rest),
        ["sobjects"] if get => Ok(Reply::ok(describe::global(&ctx.version))),
        ["sobjects", object, rest @ ..] => {
            sobjects::handle(sim, ctx, method, sobject(object)?, rest, body)
        }
        ["composite", "sobjects", rest @ ..] => composite::handle(sim, ctx, method, rest, body),
        ["composite"] => subrequests::handle(sim, ctx, method, body),
        [] | ["limits" | "query" | "queryAll" | "sobjects", ..] => Err(method_not_allowed(method)),
        _ => Err(ApiError::not_found()),
    }
}

pub fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        405,
        "METHOD_NOT_ALLOWED",
        format!("HTTP Method '{method}' not allowed. Allowed are HEAD,GET,POST,PATCH,DELETE"),
    )
}

pub fn sobject(name: &str) -> Result<ObjIdx, ApiError> {
    Schema::get().index(name).ok_or_else(ApiError::not_found)
}

pub fn parse_json(body: &[u8]) -> Result<Json, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "JSON_PARSER_ERROR",
            format!(
                "Unexpected character: {e} at [line:{}, column:{}]",
                e.line(),
                e.column()
            ),
        )
    })
}

fn query(sim: &Sim, ctx: &Ctx, all: bool, rest: &[&str]) -> Result<Reply, ApiError> {
    let mut store = lock(&sim.store);
    let body = match rest {
        [] => match ctx.param("q") {
            Some(q) => soql::run(&mut store, q, all, ctx.batch, &ctx.version)?,
            None => {
                return Err(ApiError::bad_request(
                    "MALFORMED_QUERY",
                    "A query string has to be specified",
                ));
            }
        },
        [locator] => soql::more(&mut store, locator, ctx.batch, &ctx.version)?,
        _ => return Err(ApiError::not_found()),
    };
    Ok(Reply::text(body))
}

fn resources(sim: &Sim, version: &str) -> Json {
    let base = format!("/services/data/v{version}");
    json!({
        "sobjects": format!("{base}/sobjects"),
        "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"),
        "limits": format!("{base}/limits"),
        "composite": format!("{base}/composite"),
        "identity": format!("{}/id/{}/{}", sim.base_url, crate::oauth::org_id(sim.config.seed), crate::oauth::user_id()),
    })
}
