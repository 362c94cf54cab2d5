//! Parsed query documents, kept by their text. Clients send the same few operations over and
//! over with different variables; parsing one (a PEG parser over the whole text) cost a
//! ticket with its panels a tenth of the server's time, copying a kept parse costs a fraction
//! of that. Only the parse is kept: validation and execution run for every request, since
//! they depend on the variables, the viewer and the data.
//!
//! Two generations bound the memory: lookups read the current one, then the previous one
//! (moving a hit into the current one); when the current one holds `GENERATION_BYTES` of
//! query text it becomes the previous one and the oldest generation is dropped. An operation
//! in use stays; one not asked for during two generations goes.

use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

/// Query text one generation holds, at most (a document takes a few times its text).
const GENERATION_BYTES: usize = 1024 * 1024;

#[derive(Default)]
struct Generations {
    current: HashMap<String, ExecutableDocument>,
    current_bytes: usize,
    previous: HashMap<String, ExecutableDocument>,
}

#[derive(Default)]
pub struct Documents {
    generations: Mutex<Generations>,
}

impl Documents {
    /// Gives the request its parsed document, from the cache when its text was parsed
    /// before; `None` when the text does not parse. Such a text is not kept, and the request
    /// keeps no parse either, so execution reports the syntax error as usual.
    pub fn fill<'r>(&self, request: &'r mut Request) -> Option<&'r ExecutableDocument> {
        if let Some(doc) = self.get(&request.query) {
            request.set_parsed_query(doc);
        } else {
            let query = request.query.clone();
            let doc = request.parsed_query().ok()?.clone();
            self.put(query, doc);
        }
        request.parsed_query().ok()
    }

    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        let mut generations = self.lock();
        if let Some(doc) = generations.current.get(query) {
            return Some(doc.clone());
        }
        let (query, doc) = generations.previous.remove_entry(query)?;
        let copy = doc.clone();
        generations.insert(query, doc);
        Some(copy)
    }

    fn put(&self, query: String, doc: ExecutableDocument) {
        self.lock().insert(query, doc);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Generations {
    fn insert(&mut self, query: String, doc: ExecutableDocument) {
        if self.current_bytes + query.len() > GENERATION_BYTES {
            self.previous = std::mem::take(&mut self.current);
            self.current_bytes = 0;
        }
        self.current_bytes += query.len();
        self.current.insert(query, doc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation_names(request: &mut Request) -> Vec<String> {
        let mut names: Vec<String> = request
            .parsed_query()
            .expect("parsed")
            .operations
            .iter()
            .map(|(name, _)| name.map_or_else(String::new, |n| n.to_string()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_text_parsed_once_is_given_to_the_next_request_with_that_text() {
        let documents = Documents::default();
        let text = "query A { __typename } query B { __typename }";
        let mut first = Request::new(text);
        documents.fill(&mut first);
        assert_eq!(operation_names(&mut first), ["A", "B"]);
        assert_eq!(documents.lock().current.len(), 1);
        let mut second = Request::new(text);
        documents.fill(&mut second);
        assert_eq!(operation_names(&mut second), ["A", "B"]);
        assert_eq!(documents.lock().current.len(), 1, "a hit adds nothing");
        let mut other = Request::new("query C { __typename }");
        documents.fill(&mut other);
        assert_eq!(operation_names(&mut other), ["C"]);
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
    fn texts_not_asked_for_during_two_generations_are_dropped_and_those_in_use_stay() {
        let documents = Documents::default();
        // Each text is padded to a sixteenth of a generation.
        let text = |i: usize| {
            let head = format!("query Q{i} {{ __typename }}");
            format!("{head}{}", " ".repeat(GENERATION_BYTES / 16 - head.len()))
        };
        let fill = |i: usize| {
            documents.fill(&mut Request::new(text(i)));
        };
        fill(0);
        for i in 1..16 {
            fill(i);
        }
        // The 17th text starts a generation; 0 to 15 are the previous one.
        fill(16);
        fill(0); // in use: moved into the current generation
        for i in 17..31 {
            fill(i);
        }
        // A full generation again: the next text starts another, and 1 to 15, never asked
        // for since, go with the oldest.
        fill(31);
        let generations = documents.lock();
        let kept = |i: usize| {
            generations.current.contains_key(&text(i))
                || generations.previous.contains_key(&text(i))
        };
        assert!(kept(0), "a text in use stays");
        assert!((1..16).all(|i| !kept(i)), "texts left unused are dropped");
        assert!((16..32).all(kept));
        assert!(generations.current_bytes <= GENERATION_BYTES);
    }
}
