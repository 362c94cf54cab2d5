//! sObject Collections: create, update, upsert, delete and retrieve up to 200 records with allOrNone.

use actix_web::http::Method;
use serde_json::{Map, Value as Json, json};

use super::sobjects::{existing, no_external_field, saved};
use super::{Ctx, Reply, method_not_allowed, parse_json, sobject};
use crate::error::ApiError;
use crate::record::{Write, field_list, parse_body, render};
use crate::schema::{ObjIdx, Schema};
use crate::state::{Sim, lock};
use crate::store::{Change, Store};

const MAX_RECORDS: usize = 200;

enum Op {
    Insert(ObjIdx, Vec<Change>),
    Update(ObjIdx, usize, Vec<Change>),
    Delete(ObjIdx, usize),
}

type Prepared = Result<Op, (Option<String>, ApiError)>;

pub fn handle(
    sim: &Sim,
    ctx: &Ctx,
    method: &Method,
    rest: &[&str],
    body: &[u8],
) -> Result<Reply, ApiError> {
    match (method.as_str(), rest) {
        ("POST", []) => write(sim, body, None, prepare_create),
        ("PATCH", []) => write(sim, body, None, prepare_update),
        ("DELETE", []) => delete(sim, ctx),
        ("PATCH", [object, field]) => {
            let obj = sobject(object)?;
            let object = Schema::get().object(obj);
            let index = object
                .field_index(field)
                .filter(|&i| lock(&sim.store).external_id(obj, i))
                .map(|i| object.fields[i].name);
            let index = index.ok_or_else(|| no_external_field(field))?;
            write(sim, body, Some((obj, index)), prepare_create)
        }
        ("GET", [object]) => retrieve(
            sim,
            ctx,
            sobject(object)?,
            ctx.param("ids")
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect(),
            ctx.param("fields"),
        ),
        ("POST", [object]) => {
            let body = parse_json(body)?;
            let ids = body["ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Json::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let fields = body["fields"].as_array().map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            });
            retrieve(sim, ctx, sobject(object)?, ids, fields.as_deref())
        }
        _ => Err(method_not_allowed(method)),
    }
}

fn too_many() -> ApiError {
    ApiError::bad_request(
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

fn write(
    sim: &Sim,
    body: &[u8],
    upsert: Option<(ObjIdx, &'static str)>,
    prepare: fn(&Store, &Map<String, Json>) -> Prepared,
) -> Result<Reply, ApiError> {
    let body = parse_json(body)?;
    let all_or_none = body["allOrNone"].as_bool().unwrap_or(false);
    let records = body["records"].as_array().cloned().unwrap_or_default();
    if records.len() > MAX_RECORDS {
        return Err(too_many());
    }
    let mut rejections: Vec<ApiError> = {
        let mut faults = lock(&sim.faults);
        let n = faults.rejections.len().min(records.len());
        faults.rejections.drain(..n).rev().collect()
    };
    let mut store = lock(&sim.store);
    let prepared: Vec<(Prepared, bool)> = records
        .iter()
        .map(|r| {
            let Json::Object(map) = r else {
                return (
                    Err((
                        None,
                        ApiError::bad_request("JSON_PARSER_ERROR", "records must be objects"),
                    )),
                    false,
                );
            };
            let (prepared, created) = match upsert {
                Some((obj, field)) => prepare_upsert(&store, obj, field, map),
                None => (prepare(&store, map), false),
            };
            match (prepared, rejections.pop()) {
                (Ok(_), Some(injected)) => (Err((None, injected)), created),
                (prepared, unused) => {
                    rejections.extend(unused);
                    (prepared, created)
                }
            }
        })
        .collect();
    Ok(Reply::ok(commit(
        &mut store,
        prepared,
        all_or_none,
        upsert.is_some(),
    )))
}

fn commit(
    store: &mut Store,
    prepared: Vec<(Prepared, bool)>,
    all_or_none: bool,
    upsert: bool,
) -> Json {
    let rolled_back = || {
        let rolled = ApiError::bad_request(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
        );
        json!({ "id": Json::Null, "success": false, "errors": [rolled.record_error()] })
    };
    let failed = prepared.iter().any(|(p, _)| p.is_err());
    // All or nothing, a record refused only as it is written (a duplicate value, say) undoes
    // those written before it.
    let before = (all_or_none && !failed).then(|| store.snapshot());
    let results: Vec<Json> = prepared
        .into_iter()
        .map(|(p, created)| {
            let mut result = match p {
                Err((id, err)) => {
                    json!({ "id": id, "success": false, "errors": [err.record_error()] })
                }
                Ok(_) if all_or_none && failed => rolled_back(),
                Ok(op) => apply(store, op),
            };
            if upsert && result["success"] == json!(true) {
                result["created"] = json!(created);
            }
            result
        })
        .collect();
    let succeeded = |r: &Json| r["success"] == json!(true);
    match before {
        Some(before) if !results.iter().all(succeeded) => {
            store.restore(before);
            let undone = results
                .into_iter()
                .map(|r| if succeeded(&r) { rolled_back() } else { r });
            Json::Array(undone.collect())
        }
        _ => Json::Array(results),
    }
}

fn apply(store: &mut Store, op: Op) -> Json {
    let outcome = match op {
        Op::Insert(obj, changes) => store.create(obj, changes).map(|row| (obj, row)),
        Op::Update(obj, row, changes) => store.update(obj, row, changes).map(|()| (obj, row)),
        Op::Delete(obj, row) => store.delete(obj, row).map(|()| (obj, row)),
    };
    match outcome {
        Ok((obj, row)) => saved(&Store::id_of(obj, row)),
        Err(err) => json!({ "id": Json::Null, "success": false, "errors": [err.record_error()] }),
    }
}

fn record_type(
    store: &Store,
    map: &Map<String, Json>,
    id: Option<&str>,
) -> Result<ObjIdx, ApiError> {
    match map.get("attributes").and_then(|a| a["type"].as_str()) {
        Some(name) => Schema::get().index(name).ok_or_else(|| unsupported(name)),
        None => id
            .and_then(|id| store.locate_any(id))
            .map(|(obj, _)| obj)
            .ok_or_else(|| {
                ApiError::bad_request("INVALID_TYPE", "Must send a concrete entity type.")
            }),
    }
}

fn unsupported(name: &str) -> ApiError {
    ApiError::bad_request(
        "INVALID_TYPE",
        format!("sObject type '{name}' is not supported."),
    )
}

fn prepare_create(store: &Store, map: &Map<String, Json>) -> Prepared {
    let obj = record_type(store, map, None).map_err(|e| (None, e))?;
    Ok(Op::Insert(
        obj,
        parse_body(store, obj, map, Write::Create).map_err(|e| (None, e))?,
    ))
}

fn prepare_update(store: &Store, map: &Map<String, Json>) -> Prepared {
    let id = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("id"))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string);
    let Some(id) = id else {
        return Err((
            None,
            ApiError::bad_request("MISSING_ARGUMENT", "Id not specified in an update call"),
        ));
    };
    let fail = |e: ApiError| (Some(id.clone()), e);
    let obj = record_type(store, map, Some(&id)).map_err(fail)?;
    let row = locate(store, obj, &id).map_err(fail)?;
    Ok(Op::Update(
        obj,
        row,
        parse_body(store, obj, map, Write::Update).map_err(fail)?,
    ))
}

fn prepare_upsert(
    store: &Store,
    obj: ObjIdx,
    field: &str,
    map: &Map<String, Json>,
) -> (Prepared, bool) {
    let index = Schema::get()
        .object(obj)
        .field_index(field)
        .expect("external id field was resolved from the schema");
    let value = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field))
        .and_then(|(_, v)| v.as_str());
    let Some(value) = value else {
        return (
            Err((
                None,
                ApiError::bad_request("MISSING_ARGUMENT", format!("{field} not specified")),
            )),
            false,
        );
    };
    let fail = |e: ApiError| (None, e);
    // Upserted records carry their external id, never an `Id`: refused whether or not the
    // value matches a record, as for a single upsert.
    if let Some(key) = map.keys().find(|k| k.eq_ignore_ascii_case("id")) {
        let msg = format!(
            "Unable to create/update fields: {key}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
        );
        return (
            Err(fail(
                ApiError::bad_request("INVALID_FIELD_FOR_INSERT_UPDATE", msg).on(key),
            )),
            false,
        );
    }
    match store.find_by(obj, index, value).as_slice() {
        [] => (
            parse_body(store, obj, map, Write::Create)
                .map(|c| Op::Insert(obj, c))
                .map_err(fail),
            true,
        ),
        [row] => (
            parse_body(store, obj, map, Write::Update)
                .map(|c| Op::Update(obj, *row, c))
                .map_err(fail),
            false,
        ),
        _ => {
            let msg = format!("Foreign key external ID: {value} matched more than one record");
            (
                Err((None, ApiError::new(300, "DUPLICATE_EXTERNAL_ID", msg))),
                false,
            )
        }
    }
}

fn locate(store: &Store, obj: ObjIdx, id: &str) -> Result<usize, ApiError> {
    if crate::ids::normalize(id).is_none() {
        return Err(ApiError::malformed_id("Record ID", id));
    }
    existing(store, obj, id).map_err(|e| match e.code {
        "NOT_FOUND" => {
            ApiError::bad_request("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        }
        _ => ApiError::bad_request(e.code, e.message),
    })
}

fn delete(sim: &Sim, ctx: &Ctx) -> Result<Reply, ApiError> {
    let ids: Vec<&str> = ctx
        .param("ids")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    if ids.len() > MAX_RECORDS {
        return Err(too_many());
    }
    let all_or_none = ctx.param("allOrNone") == Some("true");
    let mut store = lock(&sim.store);
    let prepared = ids
        .iter()
        .map(|id| {
            let fail = |e: ApiError| (Some(id.to_string()), e);
            let found = store
                .locate_any(id)
                .ok_or_else(|| fail(ApiError::malformed_id("Record ID", id)));
            let op = found.and_then(|(obj, _)| {
                locate(&store, obj, id)
                    .map(|row| Op::Delete(obj, row))
                    .map_err(fail)
            });
            (op, false)
        })
        .collect();
    Ok(Reply::ok(commit(&mut store, prepared, all_or_none, false)))
}

fn retrieve(
    sim: &Sim,
    ctx: &Ctx,
    obj: ObjIdx,
    ids: Vec<String>,
    fields: Option<&str>,
) -> Result<Reply, ApiError> {
    let store = lock(&sim.store);
    let fields = field_list(&store, obj, fields.unwrap_or("Id"))?;
    let records = ids
        .iter()
        .map(|id| match store.locate(obj, id) {
            Some(row) if store.record(obj, row).deleted.is_none() => {
                render(&store, obj, row, Some(&fields), &ctx.version)
            }
            _ => Json::Null,
        })
        .collect();
    Ok(Reply::ok(Json::Array(records)))
}
