//! Parsed query documents, kept by their text. Clients send the same few operations over and
//! over with different variables; parsing one (a PEG parser over the whole text) cost a
//! ticket with its panels a tenth of the server's time, copying a kept parse costs a fraction
//! of that. Only the parse is kept: validation and execution run for every request, since
//! they depend on the variables, the viewer and the data.
//!
//! Two generations bound the memory: lookups read the current one, then the previous one
//! (moving a hit into the current one); when the current one holds `GENERATION_BYTES` it
//! becomes the previous one and the oldest generation is dropped. An operation in use stays;
//! one not asked for during two generations goes. A document is kept only once the request
//! limits admit it, and is charged by its size, estimated from its text and its nodes (a
//! short field name in the text is a few hundred bytes of parse).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

/// What one generation holds, at most, in estimated bytes.
const GENERATION_BYTES: usize = 4 * 1024 * 1024;

/// The estimated size of one node of a parse (a field with its name, alias, arguments,
/// directives and selection set).
const NODE_BYTES: usize = 256;

struct Kept {
    doc: Arc<ExecutableDocument>,
    bytes: usize,
}

type Generation = HashMap<String, Kept>;

#[derive(Default)]
struct Generations {
    current: Generation,
    current_bytes: usize,
    previous: Generation,
}

#[derive(Default)]
pub struct Documents {
    generations: Mutex<Generations>,
}

/// A request's parsed document, and whether it was parsed afresh (and may be kept).
pub struct Parsed<'r> {
    pub doc: &'r ExecutableDocument,
    fresh: Option<String>,
    documents: &'r Documents,
}

impl Parsed<'_> {
    /// Keeps a freshly parsed document for the next request with the same text.
    pub fn keep(self) {
        if let Some(query) = self.fresh {
            let bytes = query.len() + NODE_BYTES * nodes(self.doc);
            let doc = Arc::new(self.doc.clone());
            let dropped = self.documents.lock().insert(query, Kept { doc, bytes });
            drop(dropped); // outside the lock
        }
    }
}

impl Documents {
    /// Gives the request its parsed document: a copy of the kept one when its text was
    /// parsed and admitted before, else its own parse. `None` when the text does not parse;
    /// the request keeps no parse then, so execution reports the syntax error as usual.
    pub fn fill<'r>(&'r self, request: &'r mut Request) -> Option<Parsed<'r>> {
        let fresh = match self.get(&request.query) {
            // The copy is made outside the lock.
            Some(kept) => {
                request.set_parsed_query(ExecutableDocument::clone(&kept));
                None
            }
            None => Some(request.query.clone()),
        };
        Some(Parsed {
            doc: request.parsed_query().ok()?,
            fresh,
            documents: self,
        })
    }

    /// The kept parse of this text, if it was admitted.
    pub fn kept(&self, query: &str) -> Option<Arc<ExecutableDocument>> {
        self.get(query)
    }

    fn get(&self, query: &str) -> Option<Arc<ExecutableDocument>> {
        let mut generations = self.lock();
        if let Some(kept) = generations.current.get(query) {
            return Some(kept.doc.clone());
        }
        let (query, kept) = generations.previous.remove_entry(query)?;
        let doc = kept.doc.clone();
        let dropped = generations.insert(query, kept);
        drop(generations);
        drop(dropped);
        Some(doc)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Generations {
    /// Adds a document, starting a generation when the current one is full; gives back the
    /// generation that ends, for the caller to drop once it lets go of the lock.
    fn insert(&mut self, query: String, kept: Kept) -> Option<Generation> {
        let mut dropped = None;
        if self.current_bytes + kept.bytes > GENERATION_BYTES {
            dropped = Some(std::mem::replace(
                &mut self.previous,
                std::mem::take(&mut self.current),
            ));
            self.current_bytes = 0;
        }
        self.current_bytes += kept.bytes;
        // Requests that parsed one new text together each keep it: it is charged once.
        if let Some(replaced) = self.current.insert(query, kept) {
            self.current_bytes -= replaced.bytes;
        }
        dropped
    }
}

/// Every node of a parsed document: each selection (field, fragment spread, inline
/// fragment), directive, variable definition, and each value of their arguments and
/// defaults, every item of a literal list and field of a literal object counted. What is
/// left out could be written many times over at no charge.
fn nodes(doc: &ExecutableDocument) -> usize {
    use async_graphql::Positioned;
    use async_graphql::parser::types::{Directive, Selection, SelectionSet};
    use async_graphql_value::{ConstValue, Value};
    fn value(v: &Value) -> usize {
        1 + match v {
            Value::List(items) => items.iter().map(value).sum(),
            Value::Object(fields) => fields.values().map(value).sum(),
            _ => 0,
        }
    }
    fn constant(v: &ConstValue) -> usize {
        1 + match v {
            ConstValue::List(items) => items.iter().map(constant).sum(),
            ConstValue::Object(fields) => fields.values().map(constant).sum(),
            _ => 0,
        }
    }
    fn arguments<N>(arguments: &[(N, Positioned<Value>)]) -> usize {
        arguments.iter().map(|(_, v)| value(&v.node)).sum()
    }
    fn directives(directives: &[Positioned<Directive>]) -> usize {
        directives
            .iter()
            .map(|d| 1 + arguments(&d.node.arguments))
            .sum()
    }
    fn set(selections: &SelectionSet) -> usize {
        selections
            .items
            .iter()
            .map(|item| {
                1 + match &item.node {
                    Selection::Field(f) => {
                        arguments(&f.node.arguments)
                            + directives(&f.node.directives)
                            + set(&f.node.selection_set.node)
                    }
                    Selection::InlineFragment(f) => {
                        directives(&f.node.directives) + set(&f.node.selection_set.node)
                    }
                    Selection::FragmentSpread(f) => directives(&f.node.directives),
                }
            })
            .sum()
    }
    let operations: usize = doc
        .operations
        .iter()
        .map(|(_, op)| {
            let variables: usize = op
                .node
                .variable_definitions
                .iter()
                .map(|v| {
                    1 + directives(&v.node.directives)
                        + v.node
                            .default_value
                            .as_ref()
                            .map_or(0, |d| constant(&d.node))
                })
                .sum();
            1 + variables + directives(&op.node.directives) + set(&op.node.selection_set.node)
        })
        .sum();
    let fragments: usize = doc
        .fragments
        .values()
        .map(|f| 1 + directives(&f.node.directives) + set(&f.node.selection_set.node))
        .sum();
    operations + fragments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::Limits;

    fn operation_names(doc: &ExecutableDocument) -> Vec<String> {
        let mut names: Vec<String> = doc
            .operations
            .iter()
            .map(|(name, _)| name.map_or_else(String::new, |n| n.to_string()))
            .collect();
        names.sort();
        names
    }

    fn fill_and_keep(documents: &Documents, text: &str) -> Vec<String> {
        let mut request = Request::new(text);
        let parsed = documents.fill(&mut request).expect("parses");
        let names = operation_names(parsed.doc);
        parsed.keep();
        names
    }

    #[test]
    fn a_kept_document_is_given_to_the_next_request_with_that_text() {
        let documents = Documents::default();
        let text = "query A { __typename } query B { __typename }";
        assert_eq!(fill_and_keep(&documents, text), ["A", "B"]);
        assert_eq!(fill_and_keep(&documents, "query C { __typename }"), ["C"]);
        assert_eq!(documents.lock().current.len(), 2);
        // What is kept under the text is what the next request gets, unparsed.
        let mut other = Request::new("query Other { __typename }");
        let doc = Arc::new(other.parsed_query().unwrap().clone());
        let kept = Kept { doc, bytes: 1 };
        documents.lock().insert(text.to_owned(), kept);
        let mut request = Request::new(text);
        let parsed = documents.fill(&mut request).unwrap();
        assert_eq!(operation_names(parsed.doc), ["Other"]);
        assert!(parsed.fresh.is_none(), "a hit is not kept again");
    }

    #[test]
    fn a_text_that_does_not_parse_is_not_kept() {
        let documents = Documents::default();
        let mut request = Request::new("{ ticket(");
        assert!(documents.fill(&mut request).is_none());
        assert!(request.parsed_query().is_err());
        assert!(documents.lock().current.is_empty());
    }

    #[test]
    fn a_document_the_limits_refuse_is_not_kept() {
        let limits = Limits {
            max_depth: 10,
            max_complexity: 100,
            max_aliases: 1,
            max_fields: 100,
            max_query_bytes: 1024,
        };
        let documents = Documents::default();
        let aliased = "{ a: __typename b: __typename }";
        assert!(
            limits
                .admit(&mut Request::new(aliased), &documents)
                .is_err()
        );
        let oversized = format!("{{ __typename }}{}", " ".repeat(1024));
        assert!(
            limits
                .admit(&mut Request::new(oversized), &documents)
                .is_err()
        );
        assert!(documents.lock().current.is_empty());
        assert!(
            limits
                .admit(&mut Request::new("{ a: __typename }"), &documents)
                .is_ok()
        );
        assert_eq!(documents.lock().current.len(), 1);
    }

    #[test]
    fn a_document_is_charged_by_its_nodes_not_only_its_text() {
        let documents = Documents::default();
        fill_and_keep(&documents, "{ a b c d(x: 1, y: 2) }");
        let generations = documents.lock();
        // The operation, four fields and two arguments.
        assert_eq!(generations.current_bytes, 23 + 7 * NODE_BYTES);
    }

    #[test]
    fn a_text_parsed_by_requests_together_is_charged_once() {
        let documents = Documents::default();
        let text = "{ a b }";
        let (mut first, mut second) = (Request::new(text), Request::new(text));
        let (one, two) = (
            documents.fill(&mut first).unwrap(),
            documents.fill(&mut second).unwrap(),
        );
        one.keep();
        two.keep();
        assert_eq!(documents.lock().current_bytes, 7 + 3 * NODE_BYTES);
    }

    #[test]
    fn literal_lists_and_objects_are_charged_by_their_items() {
        let documents = Documents::default();
        let text = "{ a(ids: [1, 2, 3], where: { x: 1 }) }";
        fill_and_keep(&documents, text);
        let generations = documents.lock();
        // The operation and one field; a list and its three items; an object and its field.
        assert_eq!(generations.current_bytes, text.len() + 8 * NODE_BYTES);
    }

    #[test]
    fn directives_defaults_spreads_and_fragments_are_charged_too() {
        let documents = Documents::default();
        let text = "query($v: [Int] = [1, 2]) @o { a @d(x: [3, 4, 5]) ...F ... @i { b } } fragment F on Query { c }";
        fill_and_keep(&documents, text);
        let generations = documents.lock();
        // Operation 1, the variable 1 and its default list 3, directive `o` 1. Field `a` 1,
        // its directive 1 with a list of three 4. The spread 1; the inline fragment 1, its
        // directive 1 and `b` 1. The fragment 1 and `c` 1.
        assert_eq!(generations.current_bytes, text.len() + 18 * NODE_BYTES);
    }

    #[test]
    fn documents_not_asked_for_during_two_generations_are_dropped_and_those_in_use_stay() {
        let documents = Documents::default();
        // Each text, its operation and its one field come to a sixteenth of a generation.
        let text = |i: usize| {
            let head = format!("query Q{i} {{ __typename }}");
            let pad = GENERATION_BYTES / 16 - 2 * NODE_BYTES - head.len();
            format!("{head}{}", " ".repeat(pad))
        };
        let fill = |i: usize| {
            fill_and_keep(&documents, &text(i));
        };
        for i in 0..16 {
            fill(i);
        }
        // The 17th document starts a generation; 0 to 15 are the previous one.
        fill(16);
        fill(0); // in use: moved into the current generation
        for i in 17..31 {
            fill(i);
        }
        // A full generation again: the next document starts another, and 1 to 15, never
        // asked for since, go with the oldest.
        fill(31);
        let generations = documents.lock();
        let kept = |i: usize| {
            generations.current.contains_key(&text(i))
                || generations.previous.contains_key(&text(i))
        };
        assert!(kept(0), "a document in use stays");
        assert!(
            (1..16).all(|i| !kept(i)),
            "documents left unused are dropped"
        );
        assert!((16..32).all(kept));
        assert!(generations.current_bytes <= GENERATION_BYTES);
    }
}
