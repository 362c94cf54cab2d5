//! Answers in selection order. async-graphql resolves an object's fields side by side and
//! puts each into the answer as it completes, so a field that waits (a panel's live list, a
//! desk load) can land after one selected later. The spec says an answer's fields come in
//! the order the query selects them; this puts them back in that order.

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    Directive, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Value, Variables};

/// The operation a request runs: the one named, or the only one.
pub fn operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    let found = match name {
        Some(name) => doc
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => {
            let mut all = doc.operations.iter();
            match (all.next(), all.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    };
    found.map(|(_, operation)| &operation.node)
}

/// Orders every object in `data` as the operation's selections do, those `@skip` or
/// `@include` leaves out (given `variables`) left out.
pub fn in_selection_order(
    data: &mut Value,
    doc: &ExecutableDocument,
    name: Option<&str>,
    variables: &Variables,
) {
    if let Some(operation) = operation(doc, name) {
        let request = Request {
            doc,
            operation,
            variables,
        };
        order(data, &request, &[&operation.selection_set.node]);
    }
}

/// What the order of an answer depends on.
struct Request<'d> {
    doc: &'d ExecutableDocument,
    operation: &'d OperationDefinition,
    variables: &'d Variables,
}

impl Request<'_> {
    /// Whether a selection with these directives is executed: not skipped, and included.
    /// A condition that cannot be read (execution refuses it) leaves the selection in.
    fn executes(&self, directives: &[Positioned<Directive>]) -> bool {
        let condition = |name: &str| {
            let directive = directives.iter().find(|d| d.node.name.node == name)?;
            let value = directive.node.get_argument("if")?.node.clone();
            let value = value
                .into_const_with(|variable| {
                    self.variables
                        .get(&variable)
                        .cloned()
                        .or_else(|| {
                            self.operation
                                .variable_definitions
                                .iter()
                                .find(|d| d.node.name.node == variable)
                                .and_then(|d| d.node.default_value.as_ref())
                                .map(|default| default.node.clone())
                        })
                        .ok_or(())
                })
                .ok()?;
            match value {
                Value::Boolean(condition) => Some(condition),
                _ => None,
            }
        };
        condition("skip") != Some(true) && condition("include") != Some(false)
    }
}

/// Response keys in the order first selected, each with the selections under it.
type Keys<'d> = Vec<(&'d str, Vec<&'d SelectionSet>)>;

fn order(value: &mut Value, request: &Request<'_>, sets: &[&SelectionSet]) {
    match value {
        Value::List(items) => {
            for item in items {
                order(item, request, sets);
            }
        }
        Value::Object(map) => {
            let mut keys: Keys<'_> = Vec::new();
            for set in sets {
                collect(request, set, &mut keys, 0);
            }
            let rank = |key: &str| {
                keys.iter()
                    .position(|(k, _)| *k == key)
                    .unwrap_or(usize::MAX)
            };
            let ranks: Vec<usize> = map.keys().map(|k| rank(k.as_str())).collect();
            if ranks.windows(2).any(|pair| pair[0] > pair[1]) {
                map.sort_by(|a, _, b, _| rank(a.as_str()).cmp(&rank(b.as_str())));
            }
            for (key, below) in &keys {
                if !below.is_empty()
                    && let Some(field) = map.get_mut(*key)
                {
                    order(field, request, below);
                }
            }
        }
        _ => {}
    }
}

fn collect<'d>(request: &Request<'d>, set: &'d SelectionSet, keys: &mut Keys<'d>, depth: usize) {
    // Fragments that spread in one another are refused before execution; the bound only
    // keeps a cycle from recursing here, and lets through every nesting `limits` admits.
    if depth > super::limits::RECURSION_DEPTH {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) if request.executes(&field.node.directives) => {
                let field = &field.node;
                let key = field.alias.as_ref().unwrap_or(&field.name).node.as_str();
                let below = &field.selection_set.node;
                let at = match keys.iter().position(|(k, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        keys.push((key, Vec::new()));
                        keys.len() - 1
                    }
                };
                if !below.items.is_empty() {
                    keys[at].1.push(below);
                }
            }
            Selection::Field(_) => {}
            Selection::InlineFragment(inline) if request.executes(&inline.node.directives) => {
                collect(request, &inline.node.selection_set.node, keys, depth + 1)
            }
            Selection::FragmentSpread(spread) if request.executes(&spread.node.directives) => {
                if let Some(fragment) = request.doc.fragments.get(&spread.node.fragment_name.node) {
                    collect(request, &fragment.node.selection_set.node, keys, depth + 1);
                }
            }
            Selection::InlineFragment(_) | Selection::FragmentSpread(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::value;

    #[test]
    fn objects_follow_their_selections_through_aliases_fragments_and_lists() {
        let doc = async_graphql::parser::parse_query(
            "query Q { b a: x { ...F z } } fragment F on X { list { c d } ... on X { y } }",
        )
        .unwrap();
        let mut data = value!({
            "a": { "y": 1, "z": 2, "list": [{ "d": 1, "c": 2 }, { "c": 3, "d": 4 }] },
            "b": true,
        });
        in_selection_order(&mut data, &doc, Some("Q"), &Variables::default());
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"b":true,"a":{"list":[{"c":2,"d":1},{"c":3,"d":4}],"y":1,"z":2}}"#
        );
    }

    #[test]
    fn a_field_skipped_where_first_selected_comes_where_it_is_selected_again() {
        let doc = async_graphql::parser::parse_query(
            "query Q($no: Boolean = false, $yes: Boolean!) { \
             t @skip(if: true) a t @include(if: $no) ...F @skip(if: $yes) b t \
             ... @include(if: $no) { t } c } fragment F on X { t }",
        )
        .unwrap();
        let mut data = value!({ "t": 1, "c": 4, "b": 3, "a": 2 });
        let variables = Variables::from_json(serde_json::json!({ "yes": true }));
        in_selection_order(&mut data, &doc, Some("Q"), &variables);
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"a":2,"b":3,"t":1,"c":4}"#
        );
    }
}
