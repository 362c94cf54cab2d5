//! Request-size limits: query bytes, aliases, depth and complexity. Operations that only
//! introspect the schema are exempt from depth and complexity, so GraphiQL always works.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, ServerError, ServerResult, ValidationResult, Variables};

use crate::config::GraphqlSettings;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_query_bytes: usize,
}

impl From<&GraphqlSettings> for Limits {
    fn from(s: &GraphqlSettings) -> Self {
        Self {
            max_depth: s.max_depth,
            max_complexity: s.max_complexity,
            max_aliases: s.max_aliases,
            max_query_bytes: s.max_query_bytes,
        }
    }
}

pub fn limit_error(limit: &str, max: usize, actual: usize, what: &str) -> ServerError {
    async_graphql::Error::new(format!(
        "{what} is {actual}, over the limit of {max} ({limit})"
    ))
    .extend_with(|_, ext| {
        ext.set("code", "BAD_USER_INPUT");
        ext.set("limit", limit);
        ext.set("max", max);
        ext.set("actual", actual);
    })
    .into_server_error(Default::default())
}

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitCheck {
            limits: *self,
            introspection_only: AtomicBool::new(false),
        })
    }
}

struct LimitCheck {
    limits: Limits,
    introspection_only: AtomicBool,
}

#[async_trait::async_trait]
impl Extension for LimitCheck {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > self.limits.max_query_bytes {
            return Err(limit_error(
                "maxQueryBytes",
                self.limits.max_query_bytes,
                query.len(),
                "query size in bytes",
            ));
        }
        let doc = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&doc);
        if aliases > self.limits.max_aliases {
            return Err(limit_error(
                "maxAliases",
                self.limits.max_aliases,
                aliases,
                "alias count",
            ));
        }
        self.introspection_only
            .store(is_introspection_only(&doc), Ordering::Relaxed);
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if self.introspection_only.load(Ordering::Relaxed) {
            return Ok(result);
        }
        if result.depth > self.limits.max_depth {
            return Err(vec![limit_error(
                "maxDepth",
                self.limits.max_depth,
                result.depth,
                "query depth",
            )]);
        }
        if result.complexity > self.limits.max_complexity {
            return Err(vec![limit_error(
                "maxComplexity",
                self.limits.max_complexity,
                result.complexity,
                "query complexity",
            )]);
        }
        Ok(result)
    }
}

fn count_aliases(doc: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + walk(&f.node.selection_set.node)
                }
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    doc.operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node))
        .sum::<usize>()
        + doc
            .fragments
            .values()
            .map(|f| walk(&f.node.selection_set.node))
            .sum::<usize>()
}

fn is_introspection_only(doc: &ExecutableDocument) -> bool {
    // `hops` bounds the walk, since fragment cycles are only refused later, by validation.
    fn only_meta(set: &SelectionSet, doc: &ExecutableDocument, hops: usize) -> bool {
        hops < 32
            && set.items.iter().all(|item| match &item.node {
                Selection::Field(f) => f.node.name.node.starts_with("__"),
                Selection::InlineFragment(f) => {
                    only_meta(&f.node.selection_set.node, doc, hops + 1)
                }
                Selection::FragmentSpread(s) => doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .is_some_and(|f| only_meta(&f.node.selection_set.node, doc, hops + 1)),
            })
    }
    doc.operations
        .iter()
        .all(|(_, op)| only_meta(&op.node.selection_set.node, doc, 0))
}
