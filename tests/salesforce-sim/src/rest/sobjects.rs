//! Single-record resources: basic info, describe, CRUD, and upsert or lookup by external id.

use actix_web::http::Method;
use serde_json::{Map, Value as Json, json};

use super::{Ctx, Reply, describe, method_not_allowed, parse_json, replication};
use crate::error::ApiError;
use crate::ids;
use crate::record::{Write, field_list, parse_body, parse_value, render};
use crate::schema::{ObjIdx, Schema};
use crate::state::{Sim, lock};
use crate::store::Store;

pub fn handle(
    sim: &Sim,
    ctx: &Ctx,
    method: &Method,
    obj: ObjIdx,
    rest: &[&str],
    body: &[u8],
) -> Result<Reply, ApiError> {
    let object = Schema::get().object(obj);
    let get = method == Method::GET;
    match rest {
        [] if get => Ok(Reply::ok(describe::basic(object, &ctx.version))),
        [] if method == Method::POST => create(sim, ctx, obj, body),
        ["describe"] if get => Ok(Reply::ok(describe::object(
            obj,
            &lock(&sim.store),
            &ctx.version,
        ))),
        ["updated"] if get => replication::updated(sim, ctx, obj),
        ["deleted"] if get => replication::deleted(sim, ctx, obj),
        [id] if ids::normalize(id).is_some() => by_id(sim, ctx, method, obj, id, body),
        // `Id` named as the key (API 37.0 and later): a create, or the record by its id.
        ["Id"] if method == Method::POST => create(sim, ctx, obj, body),
        ["Id", id] if ids::normalize(id).is_some() => {
            let reply = by_id(sim, ctx, method, obj, id, body)?;
            // A PATCH there is an upsert, answered as one (API 46.0 and later).
            let version: f64 = ctx.version.parse().unwrap_or(0.0);
            if *method == Method::PATCH && version >= 46.0 {
                let mut body = saved(&ids::to18(&ids::normalize(id).unwrap_or_default()));
                body["created"] = json!(false);
                return Ok(Reply::ok(body));
            }
            Ok(reply)
        }
        [id, field] if get && ids::normalize(id).is_some() && object.is_blob(field) => {
            blob(sim, obj, id, field)
        }
        [field] => Err(no_external_field(field)),
        [field, value] if get || method == Method::PATCH => {
            by_external(sim, ctx, method, obj, field, value, body)
        }
        _ => Err(method_not_allowed(method)),
    }
}

pub fn no_external_field(field: &str) -> ApiError {
    ApiError::new(
        404,
        "NOT_FOUND",
        format!("Provided external ID field does not exist or is not accessible: {field}"),
    )
}

pub fn object_body(body: &[u8]) -> Result<Map<String, Json>, ApiError> {
    match parse_json(body)? {
        Json::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObject from START_ARRAY value at [line:1, column:1]",
        )),
    }
}

pub fn saved(id: &str) -> Json {
    json!({ "id": id, "success": true, "errors": [] })
}

fn create(sim: &Sim, ctx: &Ctx, obj: ObjIdx, body: &[u8]) -> Result<Reply, ApiError> {
    let map = object_body(body)?;
    let mut store = lock(&sim.store);
    let changes = parse_body(&store, obj, &map, Write::Create)?;
    let row = store.create(obj, changes)?;
    Ok(Reply::created(
        saved(&Store::id_of(obj, row)),
        ctx,
        Schema::get().object(obj).name,
    ))
}

/// The row for `id`, or the REST error for a missing or recycled record.
pub fn existing(store: &Store, obj: ObjIdx, id: &str) -> Result<usize, ApiError> {
    let row = store.locate(obj, id).ok_or_else(ApiError::not_found)?;
    store.live(obj, row)?;
    Ok(row)
}

fn by_id(
    sim: &Sim,
    ctx: &Ctx,
    method: &Method,
    obj: ObjIdx,
    id: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let mut store = lock(&sim.store);
    let row = existing(&store, obj, id)?;
    match *method {
        Method::GET => {
            let fields = ctx
                .param("fields")
                .map(|f| field_list(&store, obj, f))
                .transpose()?;
            Ok(Reply::ok(render(
                &store,
                obj,
                row,
                fields.as_deref(),
                &ctx.version,
            )))
        }
        Method::PATCH => {
            let changes = parse_body(&store, obj, &object_body(body)?, Write::Update)?;
            store.update(obj, row, changes)?;
            Ok(Reply::empty())
        }
        Method::DELETE => {
            store.delete(obj, row)?;
            Ok(Reply::empty())
        }
        _ => Err(method_not_allowed(method)),
    }
}

/// sObject Blob Get: a base64 field's bytes, as they were written.
fn blob(sim: &Sim, obj: ObjIdx, id: &str, field: &str) -> Result<Reply, ApiError> {
    use base64::Engine;

    let store = lock(&sim.store);
    let row = existing(&store, obj, id)?;
    let object = Schema::get().object(obj);
    let stored = object
        .field_index(field)
        .and_then(|i| store.record(obj, row).stored(i))
        .and_then(|v| v.as_str())
        .ok_or_else(ApiError::not_found)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .map_err(|_| ApiError::not_found())?;
    Ok(Reply::blob(bytes))
}

fn by_external(
    sim: &Sim,
    ctx: &Ctx,
    method: &Method,
    obj: ObjIdx,
    field: &str,
    value: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let object = Schema::get().object(obj);
    let mut store = lock(&sim.store);
    let index = object
        .field_index(field)
        .filter(|&i| store.external_id(obj, i))
        .ok_or_else(|| no_external_field(field))?;
    let matches = store.find_by(obj, index, value);
    if matches.len() > 1 {
        let urls: Vec<String> = matches
            .iter()
            .map(|&r| {
                format!(
                    "/services/data/v{}/sobjects/{}/{}",
                    ctx.version,
                    object.name,
                    Store::id_of(obj, r)
                )
            })
            .collect();
        return Ok(Reply::with(300, json!(urls)));
    }
    if *method == Method::GET {
        let row = matches.first().copied().ok_or_else(ApiError::not_found)?;
        return Ok(Reply::ok(render(&store, obj, row, None, &ctx.version)));
    }
    let map = object_body(body)?;
    if let Some(key) = map
        .keys()
        .find(|k| k.eq_ignore_ascii_case("id") || k.eq_ignore_ascii_case(field))
    {
        let msg = format!(
            "Unable to create/update fields: {key}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
        );
        return Err(ApiError::bad_request("INVALID_FIELD_FOR_INSERT_UPDATE", msg).on(key));
    }
    match matches.first() {
        Some(&row) => {
            let changes = parse_body(&store, obj, &map, Write::Update)?;
            store.update(obj, row, changes)?;
            let version: f64 = ctx.version.parse().unwrap_or(0.0);
            if version < 46.0 {
                return Ok(Reply::empty());
            }
            let mut body = saved(&Store::id_of(obj, row));
            body["created"] = json!(false);
            Ok(Reply::ok(body))
        }
        None if ctx.param("updateOnly") == Some("true") => Err(ApiError::not_found()),
        None => {
            let mut changes = parse_body(&store, obj, &map, Write::Create)?;
            changes.push((
                index,
                parse_value(&store, &object.fields[index], &json!(value))?,
            ));
            let row = store.create(obj, changes)?;
            let mut body = saved(&Store::id_of(obj, row));
            body["created"] = json!(true);
            Ok(Reply::created(body, ctx, object.name))
        }
    }
}
