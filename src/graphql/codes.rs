//! Gives every error an `extensions.code`: errors raised before execution (syntax,
//! validation) and arguments a scalar cannot parse are the client's to fix; any other
//! uncoded error during execution is internal. A field whose resolver failed answers `null`
//! at the error's path, as the spec asks, rather than being left out of `data`; one whose type
//! may not be null takes its nearest parent that may be with it, or `data` itself.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, OperationDefinition, OperationType, Selection,
    SelectionSet, Type,
};
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

/// The type each field of the schema declares, by `Type.field` (`Query.integration`,
/// `Account.contacts`, …), read from the schema once: where a failed field's `null` goes.
#[derive(Default)]
pub struct FieldTypes(HashMap<String, Type>);

impl FieldTypes {
    pub fn of(sdl: &str) -> Self {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
        let mut types = HashMap::new();
        let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
            return Self(types);
        };
        for definition in document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let name = ty.node.name.node.as_str();
            let fields = match &ty.node.kind {
                TypeKind::Object(object) => &object.fields,
                TypeKind::Interface(interface) => &interface.fields,
                _ => continue,
            };
            for field in fields {
                types.insert(
                    format!("{name}.{}", field.node.name.node),
                    field.node.ty.node.clone(),
                );
            }
        }
        Self(types)
    }

    /// How far up the `null` of a field failed at `path` goes, as the spec has it: to the
    /// nearest place on the path that may be null, the field itself when it may. Gives the
    /// number of the path's segments that reach that place; `None` when nothing on the path
    /// may be null, and `data` itself is. A field the document or the schema does not tell
    /// of is taken for one that may be null.
    fn null_reaches(
        &self,
        doc: &ExecutableDocument,
        run: &OperationDefinition,
        root: &str,
        path: &[PathSegment],
    ) -> Option<usize> {
        match self.walk(doc, run, root, path) {
            Some((_, nullable)) => nullable.iter().rposition(|&may| may).map(|at| at + 1),
            None => Some(path.len()),
        }
    }

    /// The response keys the operation selects on the object at `path`; `None` where the
    /// document or the schema does not tell.
    fn keys_at<'d>(
        &self,
        doc: &'d ExecutableDocument,
        run: &'d OperationDefinition,
        root: &str,
        path: &[PathSegment],
    ) -> Option<Vec<&'d str>> {
        let (sets, _) = self.walk(doc, run, root, path)?;
        let mut keys = Vec::new();
        for (set, _) in sets {
            response_keys(doc, set, &mut keys, 0);
        }
        Some(keys)
    }

    /// Follows `path` through the operation: the selection sets answering at its end, each
    /// with the type it is selected on, and whether each place on it may be null; `None`
    /// where the document or the schema does not tell.
    fn walk<'d>(
        &self,
        doc: &'d ExecutableDocument,
        run: &'d OperationDefinition,
        root: &str,
        path: &[PathSegment],
    ) -> Option<(Sets<'d>, Vec<bool>)> {
        let mut sets = vec![(&run.selection_set.node, root.to_owned())];
        let mut ty: Option<&Type> = None;
        let mut nullable = Vec::with_capacity(path.len());
        for segment in path {
            let here = match segment {
                PathSegment::Field(key) => {
                    let mut found = Vec::new();
                    for (set, on) in &sets {
                        selected(doc, set, on, key, &mut found, 0);
                    }
                    let declared = found
                        .first()
                        .and_then(|(field, on)| self.0.get(&format!("{on}.{}", field.name.node)))?;
                    let named = named_type(declared).to_owned();
                    sets = found
                        .iter()
                        .map(|(field, _)| (&field.selection_set.node, named.clone()))
                        .collect();
                    ty = Some(declared);
                    declared.nullable
                }
                PathSegment::Index(_) => match ty.map(|t| &t.base) {
                    Some(BaseType::List(item)) => {
                        ty = Some(item);
                        item.nullable
                    }
                    _ => return None,
                },
            };
            nullable.push(here);
        }
        Some((sets, nullable))
    }
}

/// Selection sets answering at one place, each with the type it is selected on.
type Sets<'d> = Vec<(&'d SelectionSet, String)>;

/// The response keys `set` selects, through fragments.
fn response_keys<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    keys: &mut Vec<&'d str>,
    depth: usize,
) {
    // Fragments nest at most 32 deep (`limits`); the bound only keeps a cycle from recursing.
    if depth > 64 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.as_str();
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Selection::InlineFragment(inline) => {
                response_keys(doc, &inline.node.selection_set.node, keys, depth + 1)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    response_keys(doc, &fragment.node.selection_set.node, keys, depth + 1);
                }
            }
        }
    }
}

/// The name of the type a (list of, non-null) type holds.
fn named_type(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(item) => named_type(item),
    }
}

/// The fields of `set` (selected on type `on`) answering under response key `key`, through
/// fragments, each with the type it is selected on.
fn selected<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    on: &str,
    key: &str,
    found: &mut Vec<(&'d Field, String)>,
    depth: usize,
) {
    // Fragments nest at most 32 deep (`limits`); the bound only keeps a cycle from recursing.
    if depth > 64 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) if field.node.response_key().node == key => {
                found.push((&field.node, on.to_owned()));
            }
            Selection::Field(_) => {}
            Selection::InlineFragment(inline) => {
                let on = inline
                    .node
                    .type_condition
                    .as_ref()
                    .map_or(on, |c| c.node.on.node.as_str());
                selected(
                    doc,
                    &inline.node.selection_set.node,
                    on,
                    key,
                    found,
                    depth + 1,
                );
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    selected(
                        doc,
                        &fragment.node.selection_set.node,
                        on,
                        key,
                        found,
                        depth + 1,
                    );
                }
            }
        }
    }
}

/// Gives each error of a response its code, and `null` where the spec puts it.
/// async-graphql leaves a field whose resolver failed out of its object (and `data` null
/// when every root field failed): when the operation `operation` names in `doc` ran, the
/// failed field answers `null` if its type may be null; if not, the null goes up to the
/// nearest field or list item that may be, and to `data` when none may.
pub fn tag(
    mut response: Response,
    types: &FieldTypes,
    doc: Option<&ExecutableDocument>,
    operation: Option<&str>,
) -> Response {
    let run = doc.zip(doc.and_then(|doc| super::order::operation(doc, operation)));
    let root = match run.map(|(_, op)| op.ty) {
        Some(OperationType::Mutation) => "Mutation",
        Some(OperationType::Subscription) => "Subscription",
        _ => "Query",
    };
    let ran = !response.errors.is_empty() && response.errors.iter().all(|e| !e.path.is_empty());
    if let Some((doc, run)) = run.filter(|_| ran) {
        // A field answered beside its error (a panel's list showing what it could read)
        // did not fail: its value stands.
        let failed: Vec<(&[PathSegment], Option<usize>)> = response
            .errors
            .iter()
            .filter(|e| value_at(&response.data, &e.path).is_none())
            .map(|e| (&e.path[..], types.null_reaches(doc, run, root, &e.path)))
            .collect();
        let mut data = std::mem::take(&mut response.data);
        // async-graphql answers an object every selected field of which failed as null (and
        // `data` so when every root field did): opened again, each of those fields answers
        // where it stands. An object its resolver gave as null has no failed field below it;
        // one selected twice (directly and through a fragment) may have been answered as
        // null for one selection and dropped the other's fields, and is left null.
        let all_failed = |at: &[PathSegment]| {
            types.keys_at(doc, run, root, at).is_some_and(|keys| {
                !keys.is_empty()
                    && keys.iter().all(|key| {
                        failed.iter().any(|(path, _)| {
                            path.len() == at.len() + 1
                                && path.starts_with(at)
                                && matches!(path.last(), Some(PathSegment::Field(k)) if k == key)
                        })
                    })
            })
        };
        for (path, _) in &failed {
            open_to(&mut data, path, &all_failed);
        }
        for (path, reach) in failed {
            match reach {
                Some(segments) => null_at(&mut data, &path[..segments]),
                None => data = Value::Null,
            }
        }
        response.data = data;
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

/// Makes each null on the way to `path`'s last field that `may_open` allows (given the path
/// to it) an empty object.
fn open_to(data: &mut Value, path: &[PathSegment], may_open: &impl Fn(&[PathSegment]) -> bool) {
    for (at, segment) in path.iter().enumerate() {
        if let Some(here) = value_at_mut(data, &path[..at])
            && *here == Value::Null
            && matches!(segment, PathSegment::Field(_))
            && may_open(&path[..at])
        {
            *here = Value::Object(Default::default());
        }
    }
}

/// The value at `path`, when the answer has one there.
fn value_at<'v>(data: &'v Value, path: &[PathSegment]) -> Option<&'v Value> {
    path.iter()
        .try_fold(data, |here, segment| match (segment, here) {
            (PathSegment::Field(name), Value::Object(map)) => map.get(name.as_str()),
            (PathSegment::Index(i), Value::List(items)) => items.get(*i),
            _ => None,
        })
}

/// [`value_at`], to change.
fn value_at_mut<'v>(data: &'v mut Value, path: &[PathSegment]) -> Option<&'v mut Value> {
    path.iter()
        .try_fold(data, |here, segment| match (segment, here) {
            (PathSegment::Field(name), Value::Object(map)) => map.get_mut(name.as_str()),
            (PathSegment::Index(i), Value::List(items)) => items.get_mut(*i),
            _ => None,
        })
}

/// Puts `null` at `path`, in place of what is there or where a failed field was left out,
/// when its parent was answered.
fn null_at(data: &mut Value, path: &[PathSegment]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    match (last, value_at_mut(data, parents)) {
        (PathSegment::Field(name), Some(Value::Object(map))) => {
            map.insert(async_graphql::Name::new(name), Value::Null);
        }
        (PathSegment::Index(i), Some(Value::List(items))) => {
            if let Some(item) = items.get_mut(*i) {
                *item = Value::Null;
            }
        }
        _ => {}
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
