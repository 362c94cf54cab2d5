//! Gives every error an `extensions.code`: errors raised before execution (syntax,
//! validation) and arguments a scalar cannot parse are the client's to fix; any other
//! uncoded error during execution is internal. A
//! nullable field whose resolver failed answers `null` at the error's path, as the spec asks,
//! rather than being left out of `data`.

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

/// Gives each error of a response its code, and `null` at its path.
pub fn tag(mut response: Response) -> Response {
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
