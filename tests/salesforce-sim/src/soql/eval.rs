//! Evaluates bound conditions, sort keys and projections against stored records.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value as Json};

use super::bind::{BCond, Bound};
use super::lexer::{LITERAL_PERCENT, LITERAL_UNDERSCORE};
use super::parser::{Lit, Op};
use crate::record::{attributes, to_json, write_json};
use crate::schema::{ObjIdx, Schema};
use crate::store::{Store, Value};

/// Follows a path from a record; null when a relationship on the way is empty or leads into
/// the recycle bin.
pub fn resolve<'s>(store: &'s Store, obj: ObjIdx, row: usize, names: &[&str]) -> Cow<'s, Value> {
    let object = Schema::get().object(obj);
    match names {
        [] => Cow::Owned(Value::Null),
        [field] => object
            .field_index(field)
            .map_or(Cow::Owned(Value::Null), |i| store.value(obj, row, i)),
        [rel, rest @ ..] => {
            let Some(index) = object
                .relationship(rel)
                .and_then(|f| object.field_index(f.name))
            else {
                return Cow::Owned(Value::Null);
            };
            match store.follow(obj, row, index) {
                Some((o, r)) => resolve(store, o, r, rest),
                None => Cow::Owned(Value::Null),
            }
        }
    }
}

pub fn matches(store: &Store, obj: ObjIdx, row: usize, cond: &BCond) -> bool {
    match cond {
        BCond::All(cs) => cs.iter().all(|c| matches(store, obj, row, c)),
        BCond::Any(cs) => cs.iter().any(|c| matches(store, obj, row, c)),
        BCond::Not(c) => !matches(store, obj, row, c),
        BCond::Cmp(b, op, lit) => compare(&resolve(store, obj, row, &b.names), *op, lit),
        BCond::In(b, negated, lits) => {
            let value = resolve(store, obj, row, &b.names);
            lits.iter().any(|l| compare(&value, Op::Eq, l)) != *negated
        }
        BCond::Like(b, pattern) => match &*resolve(store, obj, row, &b.names) {
            Value::Str(s) => like(&s.to_lowercase(), pattern),
            _ => false,
        },
    }
}

fn compare(value: &Value, op: Op, lit: &Lit) -> bool {
    if let Lit::Range(start, end) = *lit {
        return within(value, op, start, end);
    }
    let ordering = match (value, lit) {
        (Value::Null, Lit::Null) => Some(Ordering::Equal),
        (_, Lit::Null) | (Value::Null, _) => {
            return op == Op::Ne && !(value == &Value::Null && lit == &Lit::Null);
        }
        (Value::Str(s), Lit::Str(l)) => Some(s.chars().flat_map(char::to_lowercase).cmp(l.chars())),
        (Value::Ref(..), Lit::Str(l)) => value.id().map(|id| id.as_str().cmp(l.as_str())),
        (Value::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Value::Int(i), Lit::Num(n)) => (*i as f64).partial_cmp(n),
        (Value::Num(v), Lit::Num(n)) => v.partial_cmp(n),
        (Value::Date(d), Lit::Date(l)) => Some(d.cmp(l)),
        (Value::DateTime(t), Lit::DateTime(l)) => Some(t.cmp(l)),
        _ => None,
    };
    let Some(ordering) = ordering else {
        return op == Op::Ne;
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
    }
}

fn within(value: &Value, op: Op, start: i64, end: i64) -> bool {
    let at = match value {
        Value::DateTime(t) => *t,
        Value::Date(d) => d
            .and_hms_opt(0, 0, 0)
            .map_or(0, |d| d.and_utc().timestamp()),
        _ => return op == Op::Ne,
    };
    let inside = start <= at && at < end;
    match op {
        Op::Eq => inside,
        Op::Ne => !inside,
        Op::Lt => at < start,
        Op::Le => at < end,
        Op::Gt => at >= end,
        Op::Ge => at >= start,
    }
}

/// Case-folded LIKE: `%` any run, `_` one char; escaped wildcards and backslashes are literal.
fn like(text: &str, pattern: &str) -> bool {
    #[derive(PartialEq)]
    enum P {
        Any,
        One,
        Char(char),
    }
    let mut parts = Vec::new();
    for c in pattern.chars() {
        parts.push(match c {
            '%' => P::Any,
            '_' => P::One,
            LITERAL_UNDERSCORE => P::Char('_'),
            LITERAL_PERCENT => P::Char('%'),
            c => P::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match parts.get(p) {
            Some(P::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(P::One) => {
                t += 1;
                p += 1;
            }
            Some(P::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    parts[p..].iter().all(|x| *x == P::Any)
}

/// Orders two non-null values; text compares case-insensitively.
pub fn order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x
            .chars()
            .flat_map(char::to_lowercase)
            .cmp(y.chars().flat_map(char::to_lowercase)),
        (Value::Int(x), Value::Num(y)) => (*x as f64).total_cmp(y),
        (Value::Num(x), Value::Int(y)) => x.total_cmp(&(*y as f64)),
        (Value::Num(x), Value::Num(y)) => x.total_cmp(y),
        (Value::Ref(..), Value::Ref(..)) => a.id().cmp(&b.id()),
        _ => a.partial_cmp_loose(b),
    }
}

impl Value {
    fn partial_cmp_loose(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            (Value::Date(x), Value::Date(y)) => x.cmp(y),
            (Value::DateTime(x), Value::DateTime(y)) => x.cmp(y),
            _ => Ordering::Equal,
        }
    }
}

/// A projection of the record's own fields only (no relationship paths), written straight
/// into JSON text: the shape of every page a sync reads.
pub struct Flat {
    obj: ObjIdx,
    fields: Vec<(&'static str, usize)>,
}

impl Flat {
    pub fn of(obj: ObjIdx, fields: &[Bound]) -> Option<Flat> {
        let object = Schema::get().object(obj);
        let mut flat = Flat {
            obj,
            fields: Vec::with_capacity(fields.len()),
        };
        for field in fields {
            let [name] = field.names[..] else {
                return None;
            };
            let index = object.field_index(name)?;
            if !flat.fields.iter().any(|(_, i)| *i == index) {
                flat.fields.push((name, index));
            }
        }
        Some(flat)
    }

    /// Writes the record as `project` would build it: attributes, then each field once.
    pub fn write(&self, store: &Store, row: usize, version: &str, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let name = Schema::get().object(self.obj).name;
        // Writing to a Vec<u8> cannot fail.
        let _ = write!(
            out,
            "{{\"attributes\":{{\"type\":\"{name}\",\"url\":\"/services/data/v{version}/sobjects/{name}/{}\"}}",
            Store::id_of(self.obj, row)
        );
        for &(field, index) in &self.fields {
            let _ = write!(out, ",\"{field}\":");
            write_json(out, &store.value(self.obj, row, index));
        }
        out.push(b'}');
    }
}

/// Writes the selected paths of one record, nesting parent relationships.
pub fn project(store: &Store, obj: ObjIdx, row: usize, fields: &[Bound], version: &str) -> Json {
    let mut map = Map::new();
    map.insert("attributes".into(), attributes(obj, row, version));
    for field in fields {
        put(store, obj, row, &field.names, &mut map, version);
    }
    Json::Object(map)
}

fn put(
    store: &Store,
    obj: ObjIdx,
    row: usize,
    names: &[&'static str],
    map: &mut Map<String, Json>,
    version: &str,
) {
    match names {
        [] => {}
        [field] => {
            map.insert((*field).into(), to_json(&resolve(store, obj, row, names)));
        }
        [rel, rest @ ..] => {
            let object = Schema::get().object(obj);
            let target = object
                .relationship(rel)
                .and_then(|f| object.field_index(f.name))
                .and_then(|i| store.follow(obj, row, i));
            match target {
                Some((o, r)) => {
                    let entry = map.entry(*rel).or_insert(Json::Null);
                    if !entry.is_object() {
                        let mut nested = Map::new();
                        nested.insert("attributes".into(), attributes(o, r, version));
                        *entry = Json::Object(nested);
                    }
                    if let Json::Object(nested) = entry {
                        put(store, o, r, rest, nested, version);
                    }
                }
                None => {
                    map.entry(*rel).or_insert(Json::Null);
                }
            }
        }
    }
}
