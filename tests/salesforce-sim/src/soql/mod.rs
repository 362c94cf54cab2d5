//! SOQL: lexer, parser, binder and evaluator, plus query cursors for `nextRecordsUrl` paging.

mod bind;
mod eval;
mod lexer;
mod parser;

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::error::ApiError;
use crate::ids;
use crate::schema::ObjIdx;
use crate::store::{Store, Value};

pub use parser::parse;

/// Open query locators kept per org; the oldest is dropped first, as Salesforce does.
const MAX_OPEN_CURSORS: usize = 50;

pub fn malformed(query: &str, col: usize, token: &str) -> ApiError {
    let caret = " ".repeat(col.saturating_sub(1));
    ApiError::bad_request(
        "MALFORMED_QUERY",
        format!("\n{query}\n{caret}^\nERROR at Row:1:Column:{col}\nunexpected token: {token}"),
    )
}

/// The rows of a query not yet handed out, kept for `query/<locator>`.
pub struct Cursor {
    obj: ObjIdx,
    rows: Vec<u32>,
    fields: Arc<Vec<bind::Bound>>,
}

pub fn run(
    store: &mut Store,
    soql: &str,
    include_deleted: bool,
    batch: usize,
    version: &str,
) -> Result<Json, ApiError> {
    let q = parse(soql)?;
    let obj = bind::object(soql, &q)?;
    let fields: Vec<bind::Bound> = q
        .fields
        .iter()
        .map(|p| bind::path(soql, obj, p))
        .collect::<Result<_, _>>()?;
    let filter = q
        .filter
        .as_ref()
        .map(|c| bind::condition(soql, obj, c, store.clock.now()))
        .transpose()?;
    let order: Vec<(bind::Bound, bool, bool)> = q
        .order
        .iter()
        .map(|o| Ok((bind::path(soql, obj, &o.path)?, o.desc, o.nulls_last)))
        .collect::<Result<_, ApiError>>()?;
    if q.offset.is_some_and(|o| o > 2000) {
        return Err(ApiError::bad_request(
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ));
    }
    let mut rows: Vec<u32> = (0..store.table(obj).len())
        .filter(|&r| include_deleted || store.record(obj, r).deleted.is_none())
        .filter(|&r| {
            filter
                .as_ref()
                .is_none_or(|c| eval::matches(store, obj, r, c))
        })
        .map(|r| r as u32)
        .collect();
    if !order.is_empty() {
        sort(store, obj, &mut rows, &order);
    }
    let offset = q.offset.unwrap_or(0).min(rows.len());
    rows.drain(..offset);
    if let Some(limit) = q.limit {
        rows.truncate(limit);
    }
    if q.count {
        return Ok(json!({ "totalSize": rows.len(), "done": true, "records": [] }));
    }
    let cursor = Cursor {
        obj,
        rows,
        fields: Arc::new(fields),
    };
    store.next_cursor += 1;
    let key = store.next_cursor;
    Ok(page(store, key, cursor, 0, batch, version))
}

pub fn more(
    store: &mut Store,
    locator: &str,
    batch: usize,
    version: &str,
) -> Result<Json, ApiError> {
    let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (id, offset) = locator.split_once('-').ok_or_else(invalid)?;
    let (prefix, key) = ids::decode(id).ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    if prefix != "01g" {
        return Err(invalid());
    }
    let cursor = store.cursors.remove(&key).ok_or_else(invalid)?;
    if offset > cursor.rows.len() {
        return Err(invalid());
    }
    Ok(page(store, key, cursor, offset, batch, version))
}

fn page(
    store: &mut Store,
    key: u64,
    cursor: Cursor,
    offset: usize,
    batch: usize,
    version: &str,
) -> Json {
    let end = (offset + batch).min(cursor.rows.len());
    let records: Vec<Json> = cursor.rows[offset..end]
        .iter()
        .map(|&r| eval::project(store, cursor.obj, r as usize, &cursor.fields, version))
        .collect();
    let mut body = json!({ "totalSize": cursor.rows.len(), "done": end == cursor.rows.len(), "records": records });
    if end < cursor.rows.len() {
        body["nextRecordsUrl"] = json!(format!(
            "/services/data/v{version}/query/{}-{end}",
            ids::make("01g", key)
        ));
        if store.cursors.len() >= MAX_OPEN_CURSORS {
            let oldest = store.cursors.keys().min().copied();
            oldest.map(|k| store.cursors.remove(&k));
        }
        store.cursors.insert(key, cursor);
    }
    body
}

fn sort(store: &Store, obj: ObjIdx, rows: &mut [u32], order: &[(bind::Bound, bool, bool)]) {
    let mut keyed: Vec<(Vec<Value>, u32)> = rows
        .iter()
        .map(|&r| {
            (
                order
                    .iter()
                    .map(|(b, ..)| eval::resolve(store, obj, r as usize, &b.names).into_owned())
                    .collect(),
                r,
            )
        })
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        for (i, (_, desc, nulls_last)) in order.iter().enumerate() {
            let o = match (&a[i], &b[i]) {
                (Value::Null, Value::Null) => Ordering::Equal,
                (Value::Null, _) => {
                    if *nulls_last {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (_, Value::Null) => {
                    if *nulls_last {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (x, y) if *desc => eval::order(y, x),
                (x, y) => eval::order(x, y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    for (slot, (_, r)) in rows.iter_mut().zip(keyed) {
        *slot = r;
    }
}
