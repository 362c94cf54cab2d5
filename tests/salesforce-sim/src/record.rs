//! Converting records between Salesforce's JSON and stored values, with field validation.

use chrono::{DateTime, Datelike as _, NaiveDate, Timelike as _};
use serde_json::{Map, Value as Json, json};

use crate::error::ApiError;
use crate::ids;
use crate::schema::{Field, Kind, ObjIdx, Schema};
use crate::store::{Change, Store, Value};

/// Salesforce's datetime form, `yyyy-MM-ddTHH:mm:ss.000+0000` (written by parts: a query
/// page holds thousands).
pub fn format_datetime(secs: i64) -> String {
    let at = DateTime::from_timestamp(secs, 0).unwrap_or_default();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000+0000",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Accepts `yyyy-MM-ddTHH:mm:ss(.SSS)?(Z|±HH:mm|±HHmm)`.
pub fn parse_datetime(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.timestamp())
}

/// Writes a value as `to_json` renders it, straight into a JSON text: text and scalars
/// directly, values that become text (dates, ids) through `to_json`.
pub fn write_json(out: &mut Vec<u8>, value: &Value) {
    use std::io::Write as _;
    // Writing to a Vec<u8> cannot fail.
    let _ = match value {
        Value::Null => out.write_all(b"null"),
        Value::Bool(b) => out.write_all(if *b { b"true" } else { b"false" }),
        Value::Int(i) => write!(out, "{i}"),
        Value::Str(s) => serde_json::to_writer(&mut *out, s).map_err(std::io::Error::other),
        other => serde_json::to_writer(&mut *out, &to_json(other)).map_err(std::io::Error::other),
    };
}

pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Num(n) => json!(n),
        Value::Date(d) => json!(d.format("%Y-%m-%d").to_string()),
        Value::DateTime(t) => json!(format_datetime(*t)),
        Value::Ref(..) => json!(value.id()),
        Value::Str(s) => json!(s),
    }
}

pub fn attributes(obj: ObjIdx, row: usize, version: &str) -> Json {
    let name = Schema::get().object(obj).name;
    json!({ "type": name, "url": format!("/services/data/v{version}/sobjects/{name}/{}", Store::id_of(obj, row)) })
}

/// A record with the given fields (all describe fields when `fields` is `None`).
pub fn render(
    store: &Store,
    obj: ObjIdx,
    row: usize,
    fields: Option<&[usize]>,
    version: &str,
) -> Json {
    let object = Schema::get().object(obj);
    let all: Vec<usize> = (0..object.fields.len())
        .filter(|&i| store.has_field(obj, i))
        .collect();
    let mut map = Map::new();
    map.insert("attributes".into(), attributes(obj, row, version));
    for &field in fields.unwrap_or(&all) {
        map.insert(
            object.fields[field].name.into(),
            to_json(&store.value(obj, row, field)),
        );
    }
    Json::Object(map)
}

/// Parses `?fields=A,B` against the object's describe.
pub fn field_list(store: &Store, obj: ObjIdx, list: &str) -> Result<Vec<usize>, ApiError> {
    let object = Schema::get().object(obj);
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            object
                .field_index(n)
                .filter(|&i| store.has_field(obj, i))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "INVALID_FIELD",
                        format!("No such column '{n}' on entity '{}'.", object.name),
                    )
                })
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Create,
    Update,
}

/// Validates a JSON body into changes; `Id`, `id` and `attributes` keys are skipped.
pub fn parse_body(
    store: &Store,
    obj: ObjIdx,
    body: &Map<String, Json>,
    mode: Write,
) -> Result<Vec<Change>, ApiError> {
    let object = Schema::get().object(obj);
    let mut changes = Vec::new();
    for (key, json) in body {
        if key == "attributes" || (mode == Write::Update && key.eq_ignore_ascii_case("id")) {
            continue;
        }
        let Some(index) = object.field_index(key).filter(|&i| store.has_field(obj, i)) else {
            let msg = format!("No such column '{key}' on sobject of type {}", object.name);
            return Err(ApiError::bad_request("INVALID_FIELD", msg));
        };
        let field = &store.field(obj, index);
        let writable = if mode == Write::Create {
            field.createable
        } else {
            field.updateable
        };
        if !writable {
            let msg = format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                field.name
            );
            return Err(
                ApiError::bad_request("INVALID_FIELD_FOR_INSERT_UPDATE", msg).on(field.name),
            );
        }
        let value = parse_value(store, field, json)?;
        if value == Value::Null && !field.nillable {
            return Err(missing(&[field.name]));
        }
        changes.push((index, value));
    }
    if mode == Write::Create {
        let absent: Vec<&str> = object
            .fields
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                store.has_field(obj, *i)
                    && store.field(obj, *i).is_required()
                    && !changes.iter().any(|(c, _)| c == i)
            })
            .map(|(_, f)| f.name)
            .collect();
        if !absent.is_empty() {
            return Err(missing(&absent));
        }
    }
    Ok(changes)
}

fn missing(fields: &[&str]) -> ApiError {
    let mut err = ApiError::bad_request(
        "REQUIRED_FIELD_MISSING",
        format!("Required fields are missing: [{}]", fields.join(", ")),
    );
    err.fields = fields.iter().map(|f| f.to_string()).collect();
    err
}

fn type_error(kind: &str, json: &Json) -> ApiError {
    let shown = match json {
        Json::String(s) => format!("VALUE_STRING value {s}"),
        Json::Bool(b) => format!("VALUE_{} value {b}", if *b { "TRUE" } else { "FALSE" }),
        other => format!("value {other}"),
    };
    ApiError::bad_request(
        "JSON_PARSER_ERROR",
        format!(
            "Cannot deserialize instance of {kind} from {shown} or request may be missing a required field at [line:1, column:1]"
        ),
    )
}

/// A number as a field of `scale` decimal places saves it: rounded half away from zero, as
/// Salesforce rounds (5000000.5 in a currency field of no decimals is 5000001).
fn to_scale(n: f64, scale: u32) -> f64 {
    // A double keeps what its binary value holds.
    if scale >= 15 {
        return n;
    }
    let places = 10f64.powi(scale as i32);
    (n * places).round() / places
}

/// Refuses a number with more digits before the point than the field holds: its `digits`
/// (an int's), or its precision less its scale.
fn in_range(field: &Field, magnitude: f64, json: &Json) -> Result<(), ApiError> {
    let whole = field.digits.saturating_sub(field.scale);
    if field.digits == 0 || magnitude < 10f64.powi(whole as i32) {
        return Ok(());
    }
    let msg = format!(
        "{}: value outside of valid range on numeric field: {json}",
        field.label
    );
    Err(ApiError::bad_request("NUMBER_OUTSIDE_VALID_RANGE", msg).on(field.name))
}

pub fn parse_value(store: &Store, field: &Field, json: &Json) -> Result<Value, ApiError> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let value = match (field.kind, json) {
        (Kind::Boolean, Json::Bool(b)) => Value::Bool(*b),
        (Kind::Boolean, _) => return Err(type_error("boolean", json)),
        (Kind::Int, Json::Number(n)) => {
            let n = n.as_i64().ok_or_else(|| type_error("int", json))?;
            in_range(field, n.unsigned_abs() as f64, json)?;
            Value::Int(n)
        }
        (Kind::Int, _) => return Err(type_error("int", json)),
        (Kind::Double | Kind::Currency | Kind::Percent, Json::Number(n)) => {
            let n = to_scale(n.as_f64().unwrap_or_default(), field.scale);
            in_range(field, n.abs(), json)?;
            Value::Num(n)
        }
        (Kind::Double | Kind::Currency | Kind::Percent, _) => {
            return Err(type_error("double", json));
        }
        (Kind::Date, Json::String(s)) => Value::Date(
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| type_error("date", json))?,
        ),
        (Kind::Date, _) => return Err(type_error("date", json)),
        (Kind::DateTime, Json::String(s)) => {
            Value::DateTime(parse_datetime(s).ok_or_else(|| type_error("datetime", json))?)
        }
        (Kind::DateTime, _) => return Err(type_error("datetime", json)),
        (Kind::Reference | Kind::Id, Json::String(s)) => parse_reference(store, field, s)?,
        (Kind::Reference | Kind::Id, _) => return Err(type_error("reference", json)),
        (Kind::Base64, Json::String(s)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| type_error("base64", json))?;
            return Ok(Value::str(s.as_str()));
        }
        (Kind::Base64, _) => return Err(type_error("base64", json)),
        (_, Json::String(s)) => Value::str(s.as_str()),
        (_, Json::Number(n)) => Value::str(n.to_string()),
        (_, Json::Bool(b)) => Value::str(b.to_string()),
        (_, _) => return Err(type_error("string", json)),
    };
    if let Value::Str(s) = &value {
        check_text(field, s)?;
        if field.restricted && !field.picklist.contains(&s.as_ref()) {
            let msg = format!(
                "{}: bad value for restricted picklist field: {s}",
                field.label
            );
            return Err(
                ApiError::bad_request("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", msg)
                    .on(field.name),
            );
        }
        // Email fields keep their addresses in lower case, whatever case was sent.
        if field.kind == Kind::Email && s.chars().any(char::is_uppercase) {
            return Ok(Value::str(s.to_lowercase().as_str()));
        }
    }
    Ok(value)
}

fn check_text(field: &Field, s: &str) -> Result<(), ApiError> {
    // Salesforce counts text in UTF-16 units: an emoji takes two.
    if s.encode_utf16().count() > field.length as usize {
        let msg = format!(
            "{}: data value too large: {s} (max length={})",
            field.label, field.length
        );
        return Err(ApiError::bad_request("STRING_TOO_LONG", msg).on(field.name));
    }
    if field.kind == Kind::Email && !valid_email(s) {
        let msg = format!("{}: invalid email address: {s}", field.label);
        return Err(ApiError::bad_request("INVALID_EMAIL_ADDRESS", msg).on(field.name));
    }
    Ok(())
}

/// An address as an org without Email Address Internationalization takes: ASCII letters,
/// digits and the usual specials before the `@`, and a domain of letters, digits and hyphens
/// in dotted labels.
fn valid_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            local.split('.').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c))
            }) && domain.contains('.')
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        }
        None => false,
    }
}

fn parse_reference(store: &Store, field: &Field, s: &str) -> Result<Value, ApiError> {
    let schema = Schema::get();
    let bad = || ApiError::malformed_id(field.label, s).on(field.name);
    let prefix = ids::normalize(s).ok_or_else(bad)?[..3].to_string();
    let obj = schema
        .by_prefix(&prefix)
        .filter(|&o| field.reference_to.contains(&schema.object(o).name))
        .ok_or_else(bad)?;
    // As Salesforce often answers a lookup to a record that is not there, naming no field:
    // whether the record written or the one it names is gone, the answer does not say.
    let row = store
        .locate(obj, s)
        .ok_or_else(|| {
            ApiError::bad_request("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        })
        .and_then(|r| {
            store.live(obj, r).map(|_| r).map_err(|e| match e.code {
                "ENTITY_IS_DELETED" => ApiError::bad_request(e.code, e.message),
                _ => ApiError::bad_request(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                ),
            })
        })?;
    Ok(Value::Ref(obj as u8, row as u32 + 1))
}
