//! Checks a parsed query against the schema: object, field paths and literal types.

use super::parser::{Cond, Lit, Path, Query};
use crate::error::ApiError;
use crate::ids;
use crate::schema::{Field, Kind, ObjIdx, Schema};

/// A field path resolved against the schema; `names` are canonical API names.
#[derive(Debug, Clone)]
pub struct Bound {
    pub names: Vec<&'static str>,
    /// The object and position of the field the path ends at.
    pub field: (ObjIdx, usize),
    pub kind: Kind,
    /// Whether a WHERE clause may name the field: long text areas may not.
    pub filterable: bool,
}

pub fn object(query: &str, q: &Query) -> Result<ObjIdx, ApiError> {
    Schema::get().index(&q.object).ok_or_else(|| {
        let msg = format!(
            "\n{query}\n{}^\nERROR at Row:1:Column:{}\nsObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
            " ".repeat(q.object_col - 1),
            q.object_col,
            q.object
        );
        ApiError::bad_request("INVALID_TYPE", msg)
    })
}

pub fn path(query: &str, obj: ObjIdx, path: &Path) -> Result<Bound, ApiError> {
    let schema = Schema::get();
    let root = schema.object(obj);
    let mut targets = vec![obj];
    let mut names = Vec::new();
    let (last, hops) = path
        .parts
        .split_last()
        .expect("a path has at least one part");
    let mut hops = hops.iter();
    if path.parts.len() > 1 && path.parts[0].eq_ignore_ascii_case(root.name) {
        hops.next();
    }
    for hop in hops {
        let rel = targets
            .iter()
            .find_map(|&t| schema.object(t).relationship(hop));
        let Some(rel) = rel else {
            return Err(no_column(query, path, hop, root.name));
        };
        names.push(rel.relationship.unwrap_or(rel.name));
        targets = rel
            .reference_to
            .iter()
            .filter_map(|n| schema.index(n))
            .collect();
    }
    let found = targets
        .iter()
        .find_map(|&t| Some((t, schema.object(t).field_index(last)?)));
    let Some((target, index)) = found else {
        return Err(no_column(query, path, last, root.name));
    };
    let field: &Field = &schema.object(target).fields[index];
    names.push(field.name);
    Ok(Bound {
        names,
        field: (target, index),
        kind: field.kind,
        filterable: field.filterable(),
    })
}

fn no_column(query: &str, path: &Path, name: &str, object: &str) -> ApiError {
    invalid_field(
        query,
        path,
        format!(
            "No such column '{name}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

/// The field a condition names, if a WHERE clause may name it.
fn filtered(query: &str, obj: ObjIdx, path: &Path) -> Result<Bound, ApiError> {
    searchable(query, obj, path, "filtered in query call")
}

/// The field an ORDER BY names, if it may be sorted on: the fields that cannot be filtered
/// (long text areas, blobs) cannot be sorted either, as describe says.
pub fn sorted(query: &str, obj: ObjIdx, path: &Path) -> Result<Bound, ApiError> {
    searchable(query, obj, path, "sorted in a query call")
}

fn searchable(query: &str, obj: ObjIdx, path: &Path, how: &str) -> Result<Bound, ApiError> {
    let bound = self::path(query, obj, path)?;
    if bound.filterable {
        return Ok(bound);
    }
    let name = bound.names.last().copied().unwrap_or_default();
    Err(invalid_field(
        query,
        path,
        format!("field '{name}' can not be {how}"),
    ))
}

fn invalid_field(query: &str, path: &Path, why: String) -> ApiError {
    let msg = format!(
        "\n{query}\n{}^\nERROR at Row:1:Column:{}\n{why}",
        " ".repeat(path.col - 1),
        path.col
    );
    ApiError::bad_request("INVALID_FIELD", msg)
}

impl BCond {
    /// Every field the condition names.
    pub fn fields(&self) -> Vec<&Bound> {
        match self {
            BCond::All(cs) | BCond::Any(cs) => cs.iter().flat_map(BCond::fields).collect(),
            BCond::Not(c) => c.fields(),
            BCond::Cmp(b, _, _) | BCond::In(b, _, _) | BCond::Like(b, _) => vec![b],
        }
    }
}

/// A bound condition; string literals against id fields are already in 18-character form.
#[derive(Debug, Clone)]
pub enum BCond {
    All(Vec<BCond>),
    Any(Vec<BCond>),
    Not(Box<BCond>),
    Cmp(Bound, super::parser::Op, Lit),
    In(Bound, bool, Vec<Lit>),
    Like(Bound, String),
}

pub fn condition(query: &str, obj: ObjIdx, cond: &Cond, now: i64) -> Result<BCond, ApiError> {
    let all = |cs: &[Cond]| {
        cs.iter()
            .map(|c| condition(query, obj, c, now))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match cond {
        Cond::All(cs) => BCond::All(all(cs)?),
        Cond::Any(cs) => BCond::Any(all(cs)?),
        Cond::Not(c) => BCond::Not(Box::new(condition(query, obj, c, now)?)),
        Cond::Cmp(p, op, lit) => {
            let b = filtered(query, obj, p)?;
            let lit = literal(&b, lit, now)?;
            BCond::Cmp(b, *op, lit)
        }
        Cond::In(p, neg, lits) => {
            let b = filtered(query, obj, p)?;
            let lits = lits
                .iter()
                .map(|l| literal(&b, l, now))
                .collect::<Result<_, _>>()?;
            BCond::In(b, *neg, lits)
        }
        Cond::Like(p, pattern) => BCond::Like(filtered(query, obj, p)?, pattern.to_lowercase()),
    })
}

fn literal(field: &Bound, lit: &Lit, now: i64) -> Result<Lit, ApiError> {
    let name = field.names.last().copied().unwrap_or_default();
    let wrong = |ty: &str| {
        ApiError::bad_request(
            "INVALID_QUERY_FILTER_OPERATOR",
            format!(
                "value of filter criterion for field '{name}' must be of type {ty} and should not be enclosed in quotes"
            ),
        )
    };
    Ok(match (field.kind, lit) {
        (_, Lit::Null) => Lit::Null,
        (Kind::Id | Kind::Reference, Lit::Str(s)) => match ids::normalize(s) {
            Some(id15) => Lit::Str(ids::to18(&id15)),
            None => {
                return Err(ApiError::bad_request(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!("invalid ID field: {s}"),
                ));
            }
        },
        (Kind::Date, Lit::Date(_)) | (Kind::DateTime, Lit::DateTime(_)) => lit.clone(),
        (Kind::Date | Kind::DateTime, Lit::Relative(name, n)) => range(name, *n, now),
        (Kind::Date, _) => return Err(wrong("date")),
        (Kind::DateTime, _) => return Err(wrong("dateTime")),
        (Kind::Boolean, Lit::Bool(_)) => lit.clone(),
        (Kind::Boolean, _) => return Err(wrong("boolean")),
        (Kind::Int | Kind::Double | Kind::Currency | Kind::Percent, Lit::Num(_)) => lit.clone(),
        (Kind::Int | Kind::Double | Kind::Currency | Kind::Percent, _) => {
            return Err(wrong("double"));
        }
        (_, Lit::Str(s)) => Lit::Str(s.to_lowercase()),
        (_, Lit::Num(n)) => Lit::Str(n.to_string()),
        (_, Lit::Bool(b)) => Lit::Str(b.to_string()),
        (_, _) => return Err(wrong("string")),
    })
}

fn range(name: &str, n: i64, now: i64) -> Lit {
    const DAY: i64 = 86_400;
    let today = now - now.rem_euclid(DAY);
    match name {
        "YESTERDAY" => Lit::Range(today - DAY, today),
        "TOMORROW" => Lit::Range(today + DAY, today + 2 * DAY),
        "LAST_N_DAYS" => Lit::Range(today - n * DAY, today + DAY),
        "NEXT_N_DAYS" => Lit::Range(today + DAY, today + (n + 1) * DAY),
        _ => Lit::Range(today, today + DAY),
    }
}
