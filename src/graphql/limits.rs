//! Request-size limits: query bytes, aliases, fields, depth and complexity. Operations that
//! only introspect the schema are exempt from depth and complexity, so GraphiQL always
//! works; their lists may nest three deep (`types`, `fields`, `args`), which is all it asks.
//! Bytes, aliases and fields are checked here before execution, on both schemas; depth and
//! complexity of the operation run, by async-graphql's validation, whose refusals `explain` names.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Request, Response, ServerError};

use super::documents::Documents;
use crate::config::GraphqlSettings;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_fields: usize,
    pub max_query_bytes: usize,
}

impl From<&GraphqlSettings> for Limits {
    fn from(s: &GraphqlSettings) -> Self {
        Self {
            max_depth: s.max_depth,
            max_complexity: s.max_complexity,
            max_aliases: s.max_aliases,
            max_fields: s.max_fields,
            max_query_bytes: s.max_query_bytes,
        }
    }
}

/// A refusal naming the limit, its maximum and, where known, what the request came to.
pub fn limit_error(limit: &str, max: usize, actual: Option<usize>, what: &str) -> ServerError {
    let message = match actual {
        Some(actual) => format!("{what} is {actual}, over the limit of {max} ({limit})"),
        None => format!("{what} is over the limit of {max} ({limit})"),
    };
    async_graphql::Error::new(message)
        .extend_with(|_, ext| {
            ext.set("code", "BAD_USER_INPUT");
            ext.set("limit", limit);
            ext.set("max", max);
            if let Some(actual) = actual {
                ext.set("actual", actual);
            }
        })
        .into_server_error(Default::default())
}

/// Which of the two schemas an admitted operation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Depth and complexity limited.
    Limited,
    /// Only introspection: no depth or complexity limit.
    Introspection,
}

impl Limits {
    /// Whether the query's text is within `maxQueryBytes`; one that is not is not parsed.
    pub fn fits(&self, request: &Request) -> bool {
        request.query.len() <= self.max_query_bytes
    }

    /// Checks the query's size, then parses it (the parse is kept for execution, and once
    /// admitted in `documents` for the next request with the same text) and counts its
    /// aliases. A query that does not parse is left to the schema, which reports where.
    pub fn admit(
        &self,
        request: &mut Request,
        documents: &Documents,
    ) -> Result<Admitted, ServerError> {
        if !self.fits(request) {
            return Err(limit_error(
                "maxQueryBytes",
                self.max_query_bytes,
                Some(request.query.len()),
                "query size in bytes",
            ));
        }
        let operation = request.operation_name.clone();
        let Some(parsed) = documents.fill(request) else {
            return Ok(Admitted::Limited);
        };
        // First: the walks below follow fragment spreads, and a chain of thousands would
        // take them deeper than a thread's stack goes.
        if nested_past(parsed.doc, RECURSION_DEPTH) {
            let max = self.max_depth.min(RECURSION_DEPTH);
            return Err(limit_error("maxDepth", max, None, "query depth"));
        }
        // A fragment spread within itself is refused by validation, which async-graphql runs
        // only after a walk such a cycle sends 32 levels deep: said so here, not as depth.
        if let Some(name) = fragment_in_a_cycle(parsed.doc) {
            return Err(async_graphql::Error::new(format!(
                "fragment \"{name}\" is spread within itself (fragments must not form cycles)"
            ))
            .extend_with(|_, ext| ext.set("code", "BAD_USER_INPUT"))
            .into_server_error(Default::default()));
        }
        let (aliases, fields) = count_selections(parsed.doc, operation.as_deref());
        if aliases > self.max_aliases {
            return Err(limit_error(
                "maxAliases",
                self.max_aliases,
                Some(aliases),
                "alias count",
            ));
        }
        // Before depth and complexity, which async-graphql works out by walking every
        // fragment at every spread: fragments spreading others twice would make that walk
        // (and the execution after it) exponential in a document of a few hundred bytes.
        if fields > self.max_fields {
            return Err(limit_error(
                "maxFields",
                self.max_fields,
                Some(fields),
                "selection count (fields, fragments and spreads, a fragment's counted at each spread)",
            ));
        }
        // Each alias of an introspection field reads the schema again: within the lists'
        // nesting one reading is some thousand values, which thirty aliases and a batch would
        // multiply by hundreds. GraphiQL's query aliases none; a front end reading a few
        // enums' values by `__type` a few.
        let aliased = introspection_aliases(parsed.doc, operation.as_deref());
        if aliased > INTROSPECTION_ALIASES {
            return Err(limit_error(
                "introspectionAliases",
                INTROSPECTION_ALIASES,
                Some(aliased),
                "aliased or repeated fields within introspection (`__schema`, `__type`)",
            ));
        }
        if let Some(why) = subscription_refused(parsed.doc, operation.as_deref()) {
            return Err(async_graphql::Error::new(why)
                .extend_with(|_, ext| ext.set("code", "BAD_USER_INPUT"))
                .into_server_error(Default::default()));
        }
        // In every operation, not only one made of introspection alone: a field of the
        // schema beside it would otherwise let the deep nesting through.
        let lists = introspection_list_depth(parsed.doc);
        if lists > INTROSPECTION_LISTS {
            return Err(limit_error(
                "introspectionLists",
                INTROSPECTION_LISTS,
                Some(lists),
                "introspection lists nested in one another",
            ));
        }
        parsed.keep();
        run_alone(request);
        let only_introspection = request.parsed_query().is_ok_and(is_introspection_only);
        Ok(if only_introspection {
            Admitted::Introspection
        } else {
            Admitted::Limited
        })
    }

    /// Names the limit in async-graphql's own depth and complexity refusals.
    pub fn explain(&self, mut response: Response) -> Response {
        for error in &mut response.errors {
            let message = error.message.as_str();
            let (limit, max, what) = match message {
                "Query is nested too deep." => ("maxDepth", self.max_depth, "query depth"),
                // Nesting past what async-graphql (32 levels) or its parser (64) will walk
                // at all: deeper than any depth limit.
                _ if message.starts_with("The recursion depth of the query cannot be greater")
                    || message.starts_with("recursion limit exceeded") =>
                {
                    (
                        "maxDepth",
                        self.max_depth.min(RECURSION_DEPTH),
                        "query depth",
                    )
                }
                "Query is too complex." => {
                    ("maxComplexity", self.max_complexity, "query complexity")
                }
                _ => continue,
            };
            if error.path.is_empty() {
                *error = limit_error(limit, max, None, what);
            }
        }
        response
    }
}

/// How deep async-graphql lets selection sets nest before it refuses a document (its
/// default, which the schemas keep), counting fields, inline fragments and spreads alike.
pub(super) const RECURSION_DEPTH: usize = 32;

/// Whether a selection set in some operation sits more than `bound` levels below the
/// operation's, each field with a selection, inline fragment and fragment spread a level, as
/// async-graphql measures before it runs a document. Each fragment's nesting is worked out
/// once, and the walk goes no deeper than `bound`, so a chain of fragments of any length
/// is measured in a few frames of the stack.
fn nested_past(doc: &ExecutableDocument, bound: usize) -> bool {
    /// The levels below `set`, at `depth`; `None` past `bound`.
    fn below<'d>(
        set: &'d SelectionSet,
        doc: &'d ExecutableDocument,
        depth: usize,
        bound: usize,
        known: &mut HashMap<&'d str, usize>,
        open: &mut Vec<&'d str>,
    ) -> Option<usize> {
        if depth > bound {
            return None;
        }
        let mut deepest = 0;
        for item in &set.items {
            let nested = match &item.node {
                Selection::Field(f) => &f.node.selection_set.node,
                Selection::InlineFragment(f) => &f.node.selection_set.node,
                Selection::FragmentSpread(_) => set,
            };
            let levels = match &item.node {
                Selection::Field(_) if nested.items.is_empty() => 0,
                Selection::Field(_) | Selection::InlineFragment(_) => {
                    1 + below(nested, doc, depth + 1, bound, known, open)?
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let levels = match (known.get(name), doc.fragments.get(name)) {
                        (Some(&levels), _) => levels,
                        // Spread within itself: refused as a cycle.
                        _ if open.contains(&name) => 0,
                        (None, Some(fragment)) => {
                            open.push(name);
                            let levels = below(
                                &fragment.node.selection_set.node,
                                doc,
                                depth + 1,
                                bound,
                                known,
                                open,
                            )?;
                            open.pop();
                            known.insert(name, levels);
                            levels
                        }
                        // Unknown: refused by validation.
                        (None, None) => continue,
                    };
                    if depth + 1 + levels > bound {
                        return None;
                    }
                    1 + levels
                }
            };
            deepest = deepest.max(levels);
        }
        Some(deepest)
    }
    let mut known = HashMap::new();
    let operation_past = doc.operations.iter().any(|(_, op)| {
        below(
            &op.node.selection_set.node,
            doc,
            0,
            bound,
            &mut known,
            &mut Vec::new(),
        )
        .is_none()
    });
    // Fragments no operation spreads are walked too, by the checks after this one and by
    // validation: one heading a long chain is measured here first, from its own level.
    operation_past
        || doc.fragments.iter().any(|(name, fragment)| {
            !known.contains_key(name.as_str())
                && below(
                    &fragment.node.selection_set.node,
                    doc,
                    0,
                    bound,
                    &mut known,
                    &mut vec![name.as_str()],
                )
                .is_none()
        })
}

/// Why the operation run, when it is a subscription, is not one its events can be
/// resolved for: the spec allows one root field, and each event is resolved for the first
/// field written at the root alone (a second would miss what it asks; one spread from a
/// fragment there is not resolved at all, and the stream ends at once).
fn subscription_refused(doc: &ExecutableDocument, operation: Option<&str>) -> Option<String> {
    use async_graphql::parser::types::OperationType;
    let run = super::order::operation(doc, operation)?;
    if run.ty != OperationType::Subscription {
        return None;
    }
    let items = &run.selection_set.node.items;
    if items
        .iter()
        .any(|item| !matches!(item.node, Selection::Field(_)))
    {
        return Some(
            "a subscription selects its root field directly, not through a fragment".into(),
        );
    }
    (items.len() != 1).then(|| {
        format!(
            "a subscription selects exactly one root field (this one selects {}); subscribe once for each",
            items.len()
        )
    })
}

/// Aliases as the chosen operation runs them (every operation's, when none is chosen), and
/// selections (fields, fragment spreads and inline fragments) in the whole document: every
/// operation, chosen or not, and every fragment, spread or not, all of which the checks here
/// walk before anything runs. Both counts take a fragment's for every place it is spread, so fragments spread
/// many times cannot multiply the walk past the limits unseen; a spread counts itself too, so
/// neither can spreads of fragments that select nothing or do not exist. Each fragment is
/// measured once.
fn count_selections(doc: &ExecutableDocument, operation: Option<&str>) -> (usize, usize) {
    #[derive(Clone, Copy, Default)]
    struct Counts(usize, usize);
    impl Counts {
        fn plus(self, other: Counts) -> Counts {
            Counts(
                self.0.saturating_add(other.0),
                self.1.saturating_add(other.1),
            )
        }
    }
    fn in_set<'d>(
        set: &'d SelectionSet,
        doc: &'d ExecutableDocument,
        known: &mut HashMap<&'d str, Counts>,
        open: &mut Vec<&'d str>,
    ) -> Counts {
        set.items.iter().fold(Counts::default(), |sum, item| {
            let here =
                match &item.node {
                    Selection::Field(f) => Counts(usize::from(f.node.alias.is_some()), 1)
                        .plus(in_set(&f.node.selection_set.node, doc, known, open)),
                    Selection::InlineFragment(f) => {
                        Counts(0, 1).plus(in_set(&f.node.selection_set.node, doc, known, open))
                    }
                    Selection::FragmentSpread(spread) => Counts(0, 1).plus(fragment(
                        spread.node.fragment_name.node.as_str(),
                        doc,
                        known,
                        open,
                        in_set,
                    )),
                };
            sum.plus(here)
        })
    }
    let mut known = HashMap::new();
    let (mut aliases, mut fields) = (0usize, 0usize);
    for (name, op) in doc.operations.iter() {
        let counts = in_set(
            &op.node.selection_set.node,
            doc,
            &mut known,
            &mut Vec::new(),
        );
        if chosen(name, operation) {
            aliases = aliases.saturating_add(counts.0);
        }
        fields = fields.saturating_add(counts.1);
    }
    // Fragments no operation spreads: validation walks them too before refusing them.
    for name in doc.fragments.keys() {
        if !known.contains_key(name.as_str()) {
            let counts = fragment(name.as_str(), doc, &mut known, &mut Vec::new(), in_set);
            fields = fields.saturating_add(counts.1);
        }
    }
    (aliases, fields)
}

/// Whether the operation named `name` is the one run: the one `operation` names, or every
/// one when it names none.
fn chosen(name: Option<&async_graphql::Name>, operation: Option<&str>) -> bool {
    operation.is_none_or(|wanted| name.is_some_and(|n| n.as_str() == wanted))
}

/// Readings of the schema an operation may repeat: aliases within introspection
/// (`__schema` and `__type` included), and fields selected again under the same name.
const INTROSPECTION_ALIASES: usize = 5;

/// Fields within `__schema` or `__type` (those two included) that read the schema again,
/// in the operation run (every operation, when none is chosen): each aliased one, and each
/// selected again under a name its selection set already answers (async-graphql resolves
/// every such selection, then merges the answers), a fragment's counted at each spread.
/// `__typename` reads nothing and is not counted. Walked after the document is known to
/// hold no fragment cycle and at most `maxFields` selections counted that way.
fn introspection_aliases(doc: &ExecutableDocument, operation: Option<&str>) -> usize {
    /// The fields of a selection set, those of its fragments included, in order.
    fn fields<'d>(set: &'d SelectionSet, doc: &'d ExecutableDocument, out: &mut Vec<&'d Field>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => out.push(&f.node),
                Selection::InlineFragment(f) => fields(&f.node.selection_set.node, doc, out),
                Selection::FragmentSpread(spread) => {
                    if let Some(f) = doc.fragments.get(&spread.node.fragment_name.node) {
                        fields(&f.node.selection_set.node, doc, out);
                    }
                }
            }
        }
    }
    fn walk(set: &SelectionSet, doc: &ExecutableDocument, inside: bool) -> usize {
        let mut found = Vec::new();
        fields(set, doc, &mut found);
        let mut answered = std::collections::HashSet::new();
        found
            .into_iter()
            .map(|f| {
                let name = f.name.node.as_str();
                let inside = inside || matches!(name, "__schema" | "__type");
                let key = f.alias.as_ref().map_or(name, |a| a.node.as_str());
                let again = !answered.insert(key);
                let reads = inside && name != "__typename" && (f.alias.is_some() || again);
                usize::from(reads) + walk(&f.selection_set.node, doc, inside)
            })
            .sum()
    }
    doc.operations
        .iter()
        .filter(|(name, _)| chosen(*name, operation))
        .map(|(_, op)| walk(&op.node.selection_set.node, doc, false))
        .sum()
}

/// The fragments `set` spreads, directly (not those they spread).
fn spreads<'d>(set: &'d SelectionSet, out: &mut Vec<&'d str>) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => spreads(&f.node.selection_set.node, out),
            Selection::InlineFragment(f) => spreads(&f.node.selection_set.node, out),
            Selection::FragmentSpread(s) => out.push(s.node.fragment_name.node.as_str()),
        }
    }
}

/// Leaves the request's document the operation it names and the fragments that operation
/// reaches, when it holds others: async-graphql judges depth and complexity over every
/// operation in a document (and works out each one's page sizes from the variables, which
/// name only the run one's), so a query refused or failed for what an operation it does not
/// run asks. The parse kept for the next request with the same text stays whole.
fn run_alone(request: &mut Request) {
    use async_graphql::parser::types::DocumentOperations;
    let Some(name) = request.operation_name.clone() else {
        return;
    };
    let Ok(doc) = request.parsed_query() else {
        return;
    };
    let DocumentOperations::Multiple(operations) = &doc.operations else {
        return;
    };
    let Some(run) = operations.get(name.as_str()) else {
        return;
    };
    if operations.len() < 2 {
        return;
    }
    let mut reached = std::collections::HashSet::new();
    let mut next = Vec::new();
    spreads(&run.node.selection_set.node, &mut next);
    while let Some(fragment) = next.pop() {
        if reached.insert(fragment)
            && let Some(definition) = doc.fragments.get(fragment)
        {
            spreads(&definition.node.selection_set.node, &mut next);
        }
    }
    let alone = ExecutableDocument {
        operations: DocumentOperations::Multiple(
            [(async_graphql::Name::new(&name), run.clone())].into(),
        ),
        fragments: doc
            .fragments
            .iter()
            .filter(|(fragment, _)| reached.contains(fragment.as_str()))
            .map(|(fragment, definition)| (fragment.clone(), definition.clone()))
            .collect(),
    };
    request.set_parsed_query(alone);
}

/// A fragment that spreads itself, directly or through others.
fn fragment_in_a_cycle(doc: &ExecutableDocument) -> Option<String> {
    /// Whether `name` reaches a fragment on `path`; `done` holds those that reach none.
    fn cycles<'d>(
        name: &'d str,
        doc: &'d ExecutableDocument,
        path: &mut Vec<&'d str>,
        done: &mut std::collections::HashSet<&'d str>,
    ) -> Option<&'d str> {
        if path.contains(&name) {
            return Some(name);
        }
        if done.contains(name) {
            return None;
        }
        let fragment = doc.fragments.get(name)?;
        let mut next = Vec::new();
        spreads(&fragment.node.selection_set.node, &mut next);
        path.push(name);
        let found = next.into_iter().find_map(|n| cycles(n, doc, path, done));
        path.pop();
        if found.is_none() {
            done.insert(name);
        }
        found
    }
    let mut done = std::collections::HashSet::new();
    doc.fragments
        .keys()
        .find_map(|name| cycles(name.as_str(), doc, &mut Vec::new(), &mut done))
        .map(str::to_owned)
}

/// Introspection lists nested in one another (`types`, then `fields`, then `args`): what
/// GraphiQL's introspection query needs. A deeper nesting (`fields { type { fields … } }`)
/// multiplies the answer by the schema's size at every level, with no alias needed.
const INTROSPECTION_LISTS: usize = 3;

/// How deep introspection lists nest under `__schema` or `__type` in the document's
/// operations. Each fragment is walked once, however often it is spread: its measure is
/// kept for both places it may be spread in, inside introspection and outside it.
fn introspection_list_depth(doc: &ExecutableDocument) -> usize {
    const LISTS: [&str; 8] = [
        "types",
        "directives",
        "fields",
        "interfaces",
        "possibleTypes",
        "enumValues",
        "inputFields",
        "args",
    ];
    /// (depth where the set is inside introspection, depth where it is not).
    type Depths = (usize, usize);
    fn deepest<'d>(
        set: &'d SelectionSet,
        doc: &'d ExecutableDocument,
        known: &mut HashMap<&'d str, Depths>,
        open: &mut Vec<&'d str>,
    ) -> Depths {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => {
                    let (inside, outside) = deepest(&f.node.selection_set.node, doc, known, open);
                    match f.node.name.node.as_str() {
                        "__schema" | "__type" => (inside, inside),
                        name if LISTS.contains(&name) => (inside + 1, outside),
                        _ => (inside, outside),
                    }
                }
                Selection::InlineFragment(f) => {
                    deepest(&f.node.selection_set.node, doc, known, open)
                }
                Selection::FragmentSpread(spread) => fragment(
                    spread.node.fragment_name.node.as_str(),
                    doc,
                    known,
                    open,
                    deepest,
                ),
            })
            .fold((0, 0), |(a, b), (c, d)| (a.max(c), b.max(d)))
    }
    let mut known = HashMap::new();
    doc.operations
        .iter()
        .map(|(_, op)| {
            deepest(
                &op.node.selection_set.node,
                doc,
                &mut known,
                &mut Vec::new(),
            )
            .1
        })
        .max()
        .unwrap_or(0)
}

/// A fragment's measure, worked out once and kept in `known`; a fragment spread inside
/// itself measures `T::default()` there (validation refuses the cycle later).
fn fragment<'d, T: Copy + Default>(
    name: &'d str,
    doc: &'d ExecutableDocument,
    known: &mut HashMap<&'d str, T>,
    open: &mut Vec<&'d str>,
    measure: fn(
        &'d SelectionSet,
        &'d ExecutableDocument,
        &mut HashMap<&'d str, T>,
        &mut Vec<&'d str>,
    ) -> T,
) -> T {
    if let Some(&value) = known.get(name) {
        return value;
    }
    if open.contains(&name) {
        return T::default();
    }
    open.push(name);
    let value = doc.fragments.get(name).map_or_else(T::default, |f| {
        measure(&f.node.selection_set.node, doc, known, open)
    });
    open.pop();
    known.insert(name, value);
    value
}

fn is_introspection_only(doc: &ExecutableDocument) -> bool {
    fn only_meta<'d>(
        set: &'d SelectionSet,
        doc: &'d ExecutableDocument,
        known: &mut HashMap<&'d str, bool>,
        open: &mut Vec<&'d str>,
    ) -> bool {
        set.items.iter().all(|item| match &item.node {
            Selection::Field(f) => f.node.name.node.starts_with("__"),
            Selection::InlineFragment(f) => only_meta(&f.node.selection_set.node, doc, known, open),
            // A missing or cyclic fragment is not introspection: validation refuses it.
            Selection::FragmentSpread(spread) => fragment(
                spread.node.fragment_name.node.as_str(),
                doc,
                known,
                open,
                only_meta,
            ),
        })
    }
    let mut known = HashMap::new();
    doc.operations.iter().all(|(_, op)| {
        only_meta(
            &op.node.selection_set.node,
            doc,
            &mut known,
            &mut Vec::new(),
        )
    })
}
