//! Gives every error an `extensions.code`: errors raised before execution (syntax,
//! validation) and arguments a scalar cannot parse are the client's to fix; any other
//! uncoded error during execution is internal. A
//! nullable field whose resolver failed answers `null` at the error's path, as the spec asks,
//! rather than being left out of `data`.

use std::collections::HashSet;

use async_graphql::{PathSegment, Response, ServerError, Value};

pub fn code_of(error: &ServerError) -> Option<String> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code.clone()),
        _ => None,
    }
}

/// An argument that passed validation but not its scalar's parser (a `DateTime` that is not
/// RFC 3339, say): async-graphql reports it at the field's path, in the words of its
/// `InputValueError`, which are the client's to act on.
fn is_input_value_error(error: &ServerError) -> bool {
    error.message.starts_with("Failed to parse \"")
        || error.message.starts_with("Expected input type \"")
}

/// The root fields (`Query.integration`, `Mutation.startSync`, …) whose type is nullable,
/// read from the schema once.
#[derive(Default)]
pub struct NullableRoots(HashSet<String>);

impl NullableRoots {
    pub fn of(sdl: &str) -> Self {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
        let mut roots = HashSet::new();
        let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
            return Self(roots);
        };
        for definition in document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let name = ty.node.name.node.as_str();
            if !matches!(name, "Query" | "Mutation" | "Subscription") {
                continue;
            }
            if let TypeKind::Object(object) = &ty.node.kind {
                for field in &object.fields {
                    if field.node.ty.node.nullable {
                        roots.insert(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
        }
        Self(roots)
    }
}

/// Gives each error of a response its code, and `null` at its path. async-graphql leaves a
/// root field whose resolver failed out of `data`, and `data` null when every one did;
/// when the operation ran and each failed root field is nullable (`root` names the
/// operation's type, `fields` gives a response key's field name), they answer `null`
/// beside the rest, as the spec asks; when one is not, `data` is null.
pub fn tag(
    mut response: Response,
    roots: &NullableRoots,
    root: &str,
    fields: impl Fn(&str) -> Option<String>,
) -> Response {
    // Whether the root field a response key names is nullable; `None` for no root field.
    let nullable_root =
        |key: &str| fields(key).map(|field| roots.0.contains(&format!("{root}.{field}")));
    let ran = !response.errors.is_empty() && response.errors.iter().all(|e| !e.path.is_empty());
    if ran && response.data == Value::Null {
        let nullable = response.errors.iter().all(|e| match e.path.first() {
            Some(PathSegment::Field(key)) => nullable_root(key) == Some(true),
            _ => false,
        });
        if nullable {
            response.data = Value::Object(Default::default());
        }
    }
    // A non-null root field left out for its failure cannot answer null: its null reaches
    // `data` itself.
    let failed_non_null = |data: &Value| {
        response
            .errors
            .iter()
            .any(|e| match (e.path.first(), data) {
                (Some(PathSegment::Field(key)), Value::Object(map)) => {
                    !map.contains_key(key.as_str()) && nullable_root(key) == Some(false)
                }
                _ => false,
            })
    };
    if failed_non_null(&response.data) {
        response.data = Value::Null;
    }
    for error in &response.errors {
        null_at(&mut response.data, &error.path);
    }
    for error in &mut response.errors {
        if code_of(error).is_none() {
            let code = if error.path.is_empty() || is_input_value_error(error) {
                "BAD_USER_INPUT"
            } else {
                "INTERNAL"
            };
            if code == "INTERNAL" {
                tracing::error!(message = %error.message, path = ?error.path, "uncoded resolver error");
                error.message = "internal error; the server log has details".into();
            }
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
    }
    response
}

/// Puts `null` at `path` when the field there is missing and its parent was answered.
fn null_at(data: &mut Value, path: &[PathSegment]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = data;
    for segment in parents {
        here = match (segment, here) {
            (PathSegment::Field(name), Value::Object(map)) => match map.get_mut(name.as_str()) {
                Some(next) => next,
                None => return,
            },
            (PathSegment::Index(i), Value::List(items)) => match items.get_mut(*i) {
                Some(next) => next,
                None => return,
            },
            _ => return,
        };
    }
    if let (PathSegment::Field(name), Value::Object(map)) = (last, here) {
        map.entry(async_graphql::Name::new(name))
            .or_insert(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::value;

    #[test]
    fn a_failed_nullable_field_answers_null_where_its_parent_stands() {
        let mut data = value!({ "contacts": [{ "id": "1" }, { "id": "2" }] });
        let path = |i| {
            vec![
                PathSegment::Field("contacts".into()),
                PathSegment::Index(i),
                PathSegment::Field("salesforce".into()),
            ]
        };
        null_at(&mut data, &path(1));
        assert_eq!(
            data,
            value!({ "contacts": [{ "id": "1" }, { "id": "2", "salesforce": null }] })
        );
        let mut gone = value!({ "contacts": null });
        null_at(&mut gone, &path(0));
        assert_eq!(
            gone,
            value!({ "contacts": null }),
            "a nulled parent stays null"
        );
        let mut root = Value::Null;
        null_at(&mut root, &[PathSegment::Field("me".into())]);
        assert_eq!(root, Value::Null);
    }
}
