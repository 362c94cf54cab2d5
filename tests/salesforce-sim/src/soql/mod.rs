//! SOQL: lexer, parser, binder and evaluator, plus query cursors for `nextRecordsUrl` paging.

mod bind;
mod eval;
mod lexer;
mod parser;

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::json;

use crate::error::ApiError;
use crate::ids;
use crate::schema::{ObjIdx, Schema};
use crate::store::{Store, Value};

pub use parser::parse;

/// Open query locators kept per org (its one integration user); the oldest is dropped
/// first, as Salesforce does past about ten a user.
const MAX_OPEN_CURSORS: usize = 10;

/// Seconds of org clock a query locator lives unused: Salesforce lets one go after about
/// fifteen minutes of inactivity, and its `nextRecordsUrl` then answers
/// `INVALID_QUERY_LOCATOR`.
const CURSOR_IDLE_SECS: i64 = 15 * 60;

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
    children: Arc<Vec<Child>>,
    /// When a page of it was last read, by the org clock.
    used_at: i64,
}

/// A query's select list, filter and order, bound to the object it reads.
struct Selection {
    fields: Vec<bind::Bound>,
    filter: Option<bind::BCond>,
    order: Vec<(bind::Bound, bool, bool)>,
}

/// A child-relationship subquery, bound to the child object.
struct Child {
    /// The relationship as Salesforce spells it: the key its records go under.
    name: &'static str,
    obj: ObjIdx,
    /// The child's field pointing at the parent.
    field: usize,
    selection: Selection,
    limit: Option<usize>,
}

fn select(
    store: &Store,
    soql: &str,
    obj: ObjIdx,
    q: &parser::Query,
) -> Result<Selection, ApiError> {
    let fields: Vec<bind::Bound> = q
        .fields
        .iter()
        .map(|p| bind::path(soql, obj, p))
        .collect::<Result<_, _>>()?;
    // A field selected twice, however spelt, is refused as Salesforce refuses it.
    for (i, bound) in fields.iter().enumerate() {
        if fields[..i].iter().any(|b| b.names == bound.names) {
            return Err(ApiError::bad_request(
                "MALFORMED_QUERY",
                format!("duplicate field selected: {}", bound.names.join(".")),
            ));
        }
    }
    let filter = q
        .filter
        .as_ref()
        .map(|c| bind::condition(soql, obj, c, store.clock.now()))
        .transpose()?;
    let order: Vec<(bind::Bound, bool, bool)> = q
        .order
        .iter()
        .map(|o| Ok((bind::sorted(soql, obj, &o.path)?, o.desc, o.nulls_last)))
        .collect::<Result<_, ApiError>>()?;
    let named = fields
        .iter()
        .chain(order.iter().map(|(b, _, _)| b))
        .chain(filter.iter().flat_map(bind::BCond::fields));
    for bound in named {
        if !store.has_field(bound.field.0, bound.field.1) {
            let name = bound.names.last().copied().unwrap_or_default();
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!(
                    "No such column '{name}' on entity '{}'.",
                    Schema::get().object(bound.field.0).name
                ),
            ));
        }
    }
    Ok(Selection {
        fields,
        filter,
        order,
    })
}

/// The records of each parent of `rows` that a subquery selects, by parent row: one pass
/// over the child table for the page.
fn children_of(
    store: &Store,
    parent: ObjIdx,
    rows: &[u32],
    child: &Child,
) -> std::collections::HashMap<u32, Vec<u32>> {
    let wanted: std::collections::HashSet<u32> = rows.iter().copied().collect();
    let mut found: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for r in 0..store.table(child.obj).len() {
        if store.record(child.obj, r).deleted.is_some() {
            continue;
        }
        let Value::Ref(o, c) = *store.value(child.obj, r, child.field) else {
            continue;
        };
        let of = c - 1;
        if usize::from(o) == parent
            && wanted.contains(&of)
            && child
                .selection
                .filter
                .as_ref()
                .is_none_or(|f| eval::matches(store, child.obj, r, f))
        {
            found.entry(of).or_default().push(r as u32);
        }
    }
    for rows in found.values_mut() {
        if !child.selection.order.is_empty() {
            sort(store, child.obj, rows, &child.selection.order);
        }
        if let Some(limit) = child.limit {
            rows.truncate(limit);
        }
    }
    found
}

pub fn run(
    store: &mut Store,
    soql: &str,
    include_deleted: bool,
    batch: usize,
    version: &str,
) -> Result<String, ApiError> {
    let q = parse(soql)?;
    let obj = bind::object(soql, &q)?;
    if Schema::get().object(obj).name == "ContentDocumentLink" && !filters_one_side(&q) {
        return Err(ApiError::bad_request(
            "MALFORMED_QUERY",
            "Implementation restriction: ContentDocumentLink requires a filter by a single Id on ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN operator.",
        ));
    }
    let Selection {
        fields,
        filter,
        order,
    } = select(store, soql, obj, &q)?;
    let children: Vec<Child> = q
        .children
        .iter()
        .map(|child| {
            let Some((child_obj, field, name)) =
                Schema::get().child_relationship(obj, &child.object)
            else {
                let col = child.object_col;
                return Err(ApiError::bad_request(
                    "INVALID_TYPE",
                    format!(
                        "\n{soql}\n{}^\nERROR at Row:1:Column:{col}\nDidn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                        " ".repeat(col.saturating_sub(1)),
                        child.object
                    ),
                ));
            };
            Ok(Child {
                name,
                obj: child_obj,
                field,
                selection: select(store, soql, child_obj, child)?,
                limit: child.limit,
            })
        })
        .collect::<Result<_, _>>()?;
    if q.offset.is_some_and(|o| o > 2000) {
        return Err(ApiError::bad_request(
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ));
    }
    // Archived activities are read through `queryAll` alone, as deleted records are.
    let archived = Schema::get().object(obj).field_index("IsArchived");
    let mut rows: Vec<u32> = (0..store.table(obj).len())
        .filter(|&r| match store.record(obj, r).deleted {
            None => true,
            Some(at) => include_deleted && !store.purged(at),
        })
        .filter(|&r| {
            include_deleted || archived.is_none_or(|f| *store.value(obj, r, f) != Value::Bool(true))
        })
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
        return Ok(json!({ "totalSize": rows.len(), "done": true, "records": [] }).to_string());
    }
    let cursor = Cursor {
        obj,
        rows,
        fields: Arc::new(fields),
        children: Arc::new(children),
        used_at: 0,
    };
    store.next_cursor += 1;
    let key = store.next_cursor;
    Ok(page(store, key, cursor, 0, batch, version))
}

/// Whether a ContentDocumentLink query names the documents or the records it links, with
/// `=` or `IN`, in a condition the whole filter requires.
fn filters_one_side(q: &parser::Query) -> bool {
    use parser::{Cond, Op};
    let side = |path: &parser::Path| {
        matches!(path.parts.as_slice(), [name] if name.eq_ignore_ascii_case("ContentDocumentId")
            || name.eq_ignore_ascii_case("LinkedEntityId"))
    };
    let names = |cond: &Cond| match cond {
        Cond::Cmp(path, Op::Eq, _) => side(path),
        Cond::In(path, false, _) => side(path),
        _ => false,
    };
    match &q.filter {
        Some(Cond::All(conds)) => conds.iter().any(names),
        Some(cond) => names(cond),
        None => false,
    }
}

pub fn more(
    store: &mut Store,
    locator: &str,
    batch: usize,
    version: &str,
) -> Result<String, ApiError> {
    let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (id, offset) = locator.split_once('-').ok_or_else(invalid)?;
    let (prefix, key) = ids::decode(id).ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    if prefix != "01g" {
        return Err(invalid());
    }
    let cursor = store.cursors.remove(&key).ok_or_else(invalid)?;
    if offset > cursor.rows.len() || store.clock.now() - cursor.used_at > CURSOR_IDLE_SECS {
        return Err(invalid());
    }
    Ok(page(store, key, cursor, offset, batch, version))
}

/// One page of a cursor as Salesforce writes it: `totalSize`, `done`, `nextRecordsUrl` while
/// rows remain, then the records, each written straight into the text.
fn page(
    store: &mut Store,
    key: u64,
    mut cursor: Cursor,
    offset: usize,
    batch: usize,
    version: &str,
) -> String {
    use std::io::Write as _;
    let end = (offset + batch).min(cursor.rows.len());
    let mut out = Vec::with_capacity(64 + (end - offset) * 1024);
    // Writing to a Vec<u8> cannot fail.
    let _ = write!(
        out,
        "{{\"totalSize\":{},\"done\":{}",
        cursor.rows.len(),
        end == cursor.rows.len()
    );
    if end < cursor.rows.len() {
        let _ = write!(
            out,
            ",\"nextRecordsUrl\":\"/services/data/v{version}/query/{}-{end}\"",
            ids::make("01g", key)
        );
    }
    out.extend_from_slice(b",\"records\":[");
    let rows = &cursor.rows[offset..end];
    let flat = eval::Flat::of(cursor.obj, &cursor.fields).filter(|_| cursor.children.is_empty());
    let children: Vec<_> = cursor
        .children
        .iter()
        .map(|child| children_of(store, cursor.obj, rows, child))
        .collect();
    for (n, &row) in rows.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        match &flat {
            Some(flat) => flat.write(store, row as usize, version, &mut out),
            None => {
                let mut record =
                    eval::project(store, cursor.obj, row as usize, &cursor.fields, version);
                // A subquery's records nest as a query result of their own, `null` if none.
                for (child, found) in cursor.children.iter().zip(&children) {
                    let nested = found.get(&row).map_or(serde_json::Value::Null, |rows| {
                        let records: Vec<serde_json::Value> = rows
                            .iter()
                            .map(|&r| {
                                eval::project(
                                    store,
                                    child.obj,
                                    r as usize,
                                    &child.selection.fields,
                                    version,
                                )
                            })
                            .collect();
                        json!({ "totalSize": records.len(), "done": true, "records": records })
                    });
                    record[child.name] = nested;
                }
                let _ = serde_json::to_writer(&mut out, &record);
            }
        }
    }
    out.extend_from_slice(b"]}");
    if end < cursor.rows.len() {
        if store.cursors.len() >= MAX_OPEN_CURSORS {
            let oldest = store.cursors.keys().min().copied();
            oldest.map(|k| store.cursors.remove(&k));
        }
        cursor.used_at = store.clock.now();
        store.cursors.insert(key, cursor);
    }
    String::from_utf8(out).expect("JSON written from strings is UTF-8")
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

#[cfg(test)]
mod tests {
    use serde_json::Value as Json;

    use super::{bind, eval, parse, run};
    use crate::config::SimConfig;
    use crate::store::Store;

    /// A page written field by field says what the record-by-record projection says, for
    /// every kind of value: text, dates, datetimes, numbers, booleans, references, nulls.
    #[test]
    fn a_page_written_field_by_field_holds_the_projected_records() {
        let mut store = Store::new();
        crate::seed::integration_user(&mut store, &SimConfig::default());
        crate::seed::generate(&mut store, 7, 40);
        for soql in [
            "SELECT Id, Name, FirstName, LastName, Email, Phone, AccountId, Birthdate, \
             HasOptedOutOfEmail, OwnerId, CreatedById, SystemModstamp, Description \
             FROM Contact ORDER BY SystemModstamp, Id",
            "SELECT Id, Name, AnnualRevenue, NumberOfEmployees, Website, LastModifiedDate \
             FROM Account ORDER BY Id",
        ] {
            let q = parse(soql).expect("the query parses");
            let obj = bind::object(soql, &q).expect("a known object");
            let fields: Vec<bind::Bound> = q
                .fields
                .iter()
                .map(|p| bind::path(soql, obj, p).expect("known fields"))
                .collect();
            let mut page: Json =
                serde_json::from_str(&run(&mut store, soql, false, 7, "66.0").expect("it runs"))
                    .expect("the page is JSON");
            let mut seen = 0;
            loop {
                let records = page["records"].as_array().expect("records").clone();
                assert!(!records.is_empty());
                for record in &records {
                    let id = record["Id"].as_str().expect("an Id");
                    let row = store.locate(obj, id).expect("a stored record");
                    assert_eq!(*record, eval::project(&store, obj, row, &fields, "66.0"));
                }
                seen += records.len();
                let Some(next) = page["nextRecordsUrl"].as_str() else {
                    break;
                };
                let locator = next.rsplit('/').next().expect("a locator");
                page = serde_json::from_str(
                    &super::more(&mut store, locator, 7, "66.0").expect("the next page"),
                )
                .expect("the page is JSON");
            }
            assert_eq!(page["done"], true);
            assert_eq!(page["totalSize"], seen);
        }
    }
}
