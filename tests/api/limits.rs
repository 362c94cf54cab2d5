use serde_json::json;

use crate::helpers::{codes, spawn_app, spawn_app_with};

const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;

#[tokio::test]
async fn the_standard_introspection_query_is_always_admitted() {
    let app = spawn_app_with(|s| {
        s.graphql.max_depth = 5;
        s.graphql.max_complexity = 50;
    })
    .await;
    let data = app.gql_ok(INTROSPECTION, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn deep_queries_are_refused_naming_the_limit() {
    let app = spawn_app_with(|s| s.graphql.max_depth = 4).await;
    let body = app
        .gql(
            "{ tickets { nodes { contact { account { contacts { nodes { id } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert_eq!(body["errors"][0]["extensions"]["limit"], "maxDepth");
    assert_eq!(body["errors"][0]["extensions"]["max"], 4);
}

#[tokio::test]
async fn complexity_weighs_list_fields_by_their_page_size() {
    let app = spawn_app_with(|s| s.graphql.max_complexity = 500).await;
    let small = app
        .gql(
            "{ accounts(first: 5) { nodes { contacts(first: 5) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    assert!(small.get("errors").is_none(), "{small}");
    let big = app
        .gql(
            "{ accounts(first: 100) { nodes { contacts(first: 100) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        big["errors"][0]["extensions"]["limit"], "maxComplexity",
        "{big}"
    );
}

#[tokio::test]
async fn panel_lists_weigh_the_records_they_show() {
    let app = spawn_app_with(|s| s.graphql.max_complexity = 500).await;
    let lists = |first: &str| {
        format!(
            "{{ contacts(first: 5) {{ nodes {{ salesforce {{ opportunities{first} {{ name stage }} notes{first} {{ title body }} events{first} {{ subject start }} tasks{first} {{ subject status }} }} }} }} }}"
        )
    };
    // Five panels of four lists of two fields: 1 + 5 × (2 + 4 × (1 + shown × 2)).
    for (first, complexity) in [("(first: 2)", 111), ("", 431), ("(first: 100)", 4031)] {
        let body = app.gql(&lists(first), json!({})).await;
        let refused = body["errors"][0]["extensions"]["limit"] == "maxComplexity";
        assert_eq!(refused, complexity > 500, "{first}: {body}");
    }
    // A note's ids bound what it shows.
    let body = app
        .gql(
            "query($ids: [ID!]) { contacts(first: 5) { nodes { salesforce { notes(ids: $ids, first: 100) { title body } } } } }",
            json!({ "ids": ["0020000000000AAAAA"] }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn a_ticket_list_with_both_panels_fits_the_default_limits() {
    let app = spawn_app().await;
    let query = |first: &str| {
        let panel = format!(
            "viewInSalesforceUrl fetchedAt stale opportunities{first} {{ name stage amount closeDate }} \
             notes{first} {{ title body createdAt }} events{first} {{ subject start }} \
             tasks{first} {{ subject status dueDate }}"
        );
        format!(
            "{{ tickets(first: 50) {{ nodes {{ id subject status priority updatedAt \
               contact {{ name email salesforce {{ {panel} }} }} account {{ name salesforce {{ {panel} }} }} }} }} }}"
        )
    };
    let body = app.gql(&query(""), json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    // The same with every list at its fullest is past them.
    let body = app.gql(&query("(first: 100)"), json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxComplexity",
        "{body}"
    );
}

#[tokio::test]
async fn complexity_counts_the_pages_the_gateway_is_configured_to_return() {
    // Without `first`, each connection returns the default page, and is counted at it:
    // 1 + page × (1 + (1 + page × 2)).
    let query = "{ accounts { nodes { contacts { nodes { id } } } } }";
    let with_pages = |default: usize, max_complexity: usize| {
        spawn_app_with(move |s| {
            s.graphql.default_page_size = default;
            s.graphql.max_page_size = default.max(100);
            s.graphql.max_complexity = max_complexity;
        })
    };
    let small = with_pages(5, 100).await.gql(query, json!({})).await;
    assert!(small.get("errors").is_none(), "61 is within 100: {small}");
    let large = with_pages(50, 2_000).await.gql(query, json!({})).await;
    assert_eq!(
        large["errors"][0]["extensions"]["limit"], "maxComplexity",
        "{large}"
    );
    assert_eq!(large["errors"][0]["extensions"]["max"], 2_000);

    // A `first` beyond the largest page counts as the largest page, so its refusal names
    // `first` rather than the complexity it would have asked for.
    let app = spawn_app_with(|s| {
        s.graphql.max_page_size = 10;
        s.graphql.max_complexity = 100;
    })
    .await;
    let body = app
        .gql("{ accounts(first: 1000) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("between 0 and 10"), "{body}");
}

#[tokio::test]
async fn aliases_and_query_size_are_bounded() {
    let app = spawn_app_with(|s| {
        s.graphql.max_aliases = 3;
        s.graphql.max_query_bytes = 200;
    })
    .await;
    let aliases = app
        .gql(
            "{ a: __typename b: __typename c: __typename d: __typename }",
            json!({}),
        )
        .await;
    assert_eq!(aliases["errors"][0]["extensions"]["limit"], "maxAliases");
    let long = format!("{{ __typename {} }}", " ".repeat(300));
    let size = app.gql(&long, json!({})).await;
    assert_eq!(size["errors"][0]["extensions"]["limit"], "maxQueryBytes");
}

/// `operation` with fragments `F0` … `F<levels>` on `on`, each spreading the next one twice
/// and the last selecting `leaf`: expanded, `leaf` 2^levels times.
fn doubling_fragments(operation: &str, on: &str, levels: usize, leaf: &str) -> String {
    let mut document = operation.to_owned();
    for level in 0..levels {
        document.push_str(&format!(
            " fragment F{level} on {on} {{ ...F{next} ...F{next} }}",
            next = level + 1
        ));
    }
    document.push_str(&format!(" fragment F{levels} on {on} {{ {leaf} }}"));
    document
}

#[tokio::test]
async fn aliases_count_once_for_every_spread_of_their_fragment() {
    let app = spawn_app_with(|s| s.graphql.max_aliases = 10).await;
    // Four aliases written, 2 + 2 × 4 = 10 executed: at the limit.
    let within = "{ a: __typename b: __typename ...F ...F ...F ...F } fragment F on Query { c: __typename d: __typename }";
    assert!(app.gql(within, json!({})).await.get("errors").is_none());
    // One more spread: 12 executed, though still four written.
    let over = "{ a: __typename b: __typename ...F ...F ...F ...F ...F } fragment F on Query { c: __typename d: __typename }";
    let body = app.gql(over, json!({})).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert_eq!(body["errors"][0]["extensions"]["limit"], "maxAliases");
    assert_eq!(body["errors"][0]["extensions"]["actual"], 12);
    // Fragments spreading fragments multiply: one alias written, 2^20 executed.
    let chain = doubling_fragments("{ ...F0 }", "Query", 20, "x: __typename");
    let body = app.gql(&chain, json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxAliases",
        "{body}"
    );
}

#[tokio::test]
async fn introspection_lists_nest_no_deeper_than_graphiql_needs() {
    let app = spawn_app().await;
    let body = app
        .gql(
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["limit"],
        "introspectionLists"
    );
    assert_eq!(body["errors"][0]["extensions"]["actual"], 4);
    // Nor with a field of the schema beside it, or through a fragment, or as the one
    // operation of several a request names.
    let deep = "__schema { types { fields { type { fields { type { fields { name } } } } } } }";
    for query in [
        format!("{{ me {{ agentId }} {deep} }}"),
        format!("{{ me {{ agentId }} ...D }} fragment D on Query {{ {deep} }}"),
        format!("query A {{ me {{ agentId }} }} query B {{ {deep} }}"),
    ] {
        let mut operation = json!({ "query": query });
        if query.contains("query B") {
            operation["operationName"] = json!("B");
        }
        let body = app.gql_batch("Administrator", &[operation]).await.remove(0);
        assert_eq!(
            body["errors"][0]["extensions"]["limit"], "introspectionLists",
            "{query}: {body}"
        );
    }
    // Outside introspection nothing counts: not aliases named as its lists, four deep, nor
    // the schema's own `fields`.
    app.gql_ok(
        "{ types: contacts(first: 1) { fields: nodes { interfaces: account { args: name } salesforce { fields } } } \
           __schema { types { fields { args { name } } } } }",
        json!({}),
    )
    .await;
    // Fragments spreading fragments twice over are measured once each, not 2^40 times.
    let chain = doubling_fragments("{ __schema { ...F0 } }", "__Schema", 40, "types { name }");
    let started = std::time::Instant::now();
    app.gql(&chain, json!({})).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    // Three deep, as GraphiQL asks, is answered.
    app.gql_ok(
        "{ __schema { types { fields { args { name } } } } }",
        json!({}),
    )
    .await;
    app.gql_ok(INTROSPECTION, json!({})).await;
}

#[tokio::test]
async fn page_sizes_are_bounded() {
    let app = spawn_app().await;
    for first in [-1, 101] {
        let body = app
            .gql(
                "query($n: Int) { contacts(first: $n) { nodes { id } } }",
                json!({ "n": first }),
            )
            .await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "first: {first}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "first");
    }
}

#[tokio::test]
async fn fields_count_once_for_every_spread_of_their_fragment_on_either_schema() {
    let app = spawn_app_with(|s| s.graphql.max_fields = 100).await;
    // Ten fields written, 2^22 executed: refused before anything walks them.
    for (operation, on) in [
        ("{ ...F0 }", "Query"),
        ("{ me { agentId } ...F0 }", "Query"),
        ("{ __schema { ...F0 } }", "__Schema"),
    ] {
        let leaf = if on == "Query" {
            "__typename"
        } else {
            "description"
        };
        let chain = doubling_fragments(operation, on, 22, leaf);
        let started = std::time::Instant::now();
        let body = app.gql(&chain, json!({})).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "answered in {:?}",
            started.elapsed()
        );
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
        assert_eq!(body["errors"][0]["extensions"]["limit"], "maxFields");
        assert_eq!(body["errors"][0]["extensions"]["max"], 100);
    }
    // Copies of one introspection selection, with no fragment at all.
    let copies = format!(
        "{{ {} }}",
        "__schema { types { fields { args { name } } } } ".repeat(30)
    );
    let body = app.gql(&copies, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["limit"], "maxFields");
    assert_eq!(body["errors"][0]["extensions"]["actual"], 150);
    // GraphiQL's introspection query is well within the default.
    let app = spawn_app().await;
    app.gql_ok(INTROSPECTION, json!({})).await;
}

#[tokio::test]
async fn only_the_operation_chosen_counts_against_the_alias_limit() {
    let app = spawn_app_with(|s| s.graphql.max_aliases = 3).await;
    let document = "query A { a: __typename b: __typename c: __typename }
        query B { d: __typename e: __typename f: __typename }";
    let body = app.gql_named(document, "B").await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["f"], "Query");
}

#[tokio::test]
async fn depth_and_complexity_judge_the_operation_chosen_alone() {
    let app = spawn_app_with(|s| {
        s.graphql.max_complexity = 500;
        s.graphql.max_depth = 6;
    })
    .await;
    let document = "
        query Small { accounts(first: 5) { nodes { contacts(first: 5) { nodes { ...Named } } } } }
        query Large { accounts(first: 15) { nodes { contacts(first: 15) { nodes { id } } } } }
        query Deep { tickets(first: 1) { nodes { contact { account { contacts(first: 1) { nodes { id } } } } } } }
        query Paged($n: Int!) { contacts(first: $n) { nodes { id } } }
        fragment Named on Contact { id lastName }";
    // Each fits alone; together they are over both limits, and `Paged` needs a variable
    // the others are not sent.
    for operation in ["Small", "Large"] {
        let body = app.gql_named(document, operation).await;
        assert!(body.get("errors").is_none(), "{operation}: {body}");
        assert!(body["data"]["accounts"]["nodes"].is_array(), "{body}");
    }
    let body = app.gql_named(document, "Deep").await;
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxDepth",
        "{body}"
    );
}

#[tokio::test]
async fn fields_of_an_operation_not_chosen_count_too() {
    let app = spawn_app().await;
    // The chosen operation asks for one field; the other spreads 2^30 of them, which the
    // schema's checks would walk before running either.
    let document = doubling_fragments(
        "query A { __typename } query B { ...F0 }",
        "Query",
        30,
        "__typename",
    );
    let started = std::time::Instant::now();
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(app.token("Administrator"))
        .json(&json!({ "query": document, "operationName": "A" }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxFields",
        "{body}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn spreads_count_even_where_their_fragment_selects_nothing_or_is_missing() {
    let app = spawn_app().await;
    // No field anywhere: 2^30 spreads of a fragment that does not exist, which the schema's
    // checks would walk one by one before reporting it unknown.
    let missing = doubling_fragments("{ ...F0 }", "Query", 30, "...Missing");
    let started = std::time::Instant::now();
    let body = app.gql(&missing, json!({})).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused in {:?}",
        started.elapsed()
    );
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], "maxFields");
    // A fragment no operation spreads is still validated, so it counts as well.
    let unused = doubling_fragments("{ __typename }", "Query", 30, "__typename");
    let started = std::time::Instant::now();
    let body = app.gql(&unused, json!({})).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused in {:?}",
        started.elapsed()
    );
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxFields",
        "{body}"
    );
    // Within the limits, a spread of a missing fragment is the schema's to refuse.
    let body = app.gql("{ ...Missing }", json!({})).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Missing")),
        "{body}"
    );
}

#[tokio::test]
async fn a_long_list_of_note_ids_weighs_what_it_asks_for() {
    let app = spawn_app().await;
    let ids: Vec<String> = (0..40_000).map(|n| format!("069{n:015}")).collect();
    let aliased: String = (0..30)
        .map(|n| format!("n{n}: notes(ids: $ids) {{ id }} "))
        .collect();
    let query = format!(
        "query($ids: [ID!]) {{ contacts(first: 80) {{ nodes {{ salesforce {{ {aliased} }} }} }} }}"
    );
    let started = std::time::Instant::now();
    let body = app.gql(&query, json!({ "ids": ids })).await;
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxComplexity",
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn lists_of_lists_cannot_overflow_the_complexity() {
    let app = spawn_app_with(|s| s.graphql.max_depth = 40).await;
    // Ten pages of a hundred within one another: 100^10 nodes, past what a 64-bit count
    // holds, in 29 levels (within the 32 async-graphql walks).
    let mut inner = String::from("contacts(first: 100) { nodes { id } }");
    for _ in 0..8 {
        inner = format!("contacts(first: 100) {{ nodes {{ account {{ {inner} }} }} }}");
    }
    let query = format!("{{ accounts(first: 100) {{ nodes {{ {inner} }} }} }}");
    let body = app.gql(&query, json!({})).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxComplexity",
        "{body}"
    );
}

#[tokio::test]
async fn a_mass_update_weighs_what_it_returns_by_the_ids_it_names() {
    let app = spawn_app_with(|s| s.graphql.max_complexity = 500).await;
    let ids: Vec<String> = (1..=500).map(|n| n.to_string()).collect();
    let body = app
        .gql(
            "mutation($ids: [ID!]!) { massUpdateContacts(ids: $ids, patch: { title: \"x\" }) { account { contacts(first: 100) { nodes { id } } } } }",
            json!({ "ids": ids }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], "maxComplexity");
}

#[tokio::test]
async fn nesting_past_what_can_be_walked_is_refused_as_too_deep() {
    let app = spawn_app().await;
    let mut query = String::from("id");
    for _ in 0..12 {
        query = format!("contacts {{ nodes {{ account {{ {query} }} }} }}");
    }
    let body = app
        .gql(
            &format!("{{ accounts {{ nodes {{ {query} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "maxDepth",
        "{body}"
    );
}

#[tokio::test]
async fn a_fragment_spread_within_itself_is_refused_as_a_cycle_not_as_depth() {
    let app = spawn_app().await;
    for query in [
        "{ ...A } fragment A on Query { ...A }",
        "{ contacts { nodes { ...B } } } fragment B on Contact { id account { ...C } } fragment C on Account { contacts { nodes { ...B } } }",
    ] {
        let body = app.gql(query, json!({})).await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("is spread within itself") && message.contains("cycles"),
            "{body}"
        );
        assert!(
            body["errors"][0]["extensions"].get("limit").is_none(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn introspection_is_read_once_an_operation_not_once_an_alias() {
    let app = spawn_app().await;
    // `n` copies of a selection, each `#` numbered.
    let copies = |n: usize, each: &str| {
        (0..n)
            .map(|i| each.replace('#', &i.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for query in [
        format!("{{ {} }}", copies(6, "a#: __schema { types { name } }")),
        format!(
            "{{ __schema {{ {} }} }}",
            copies(6, "a#: types { fields { name } }")
        ),
        format!(
            "{{ ...S }} fragment S on Query {{ __schema {{ types {{ {} }} }} }}",
            copies(6, "n#: name")
        ),
        // Selected again under its own name (six times after the first), each is resolved
        // again before the answers are merged.
        format!(
            "{{ __schema {{ {} }} }}",
            copies(7, "types { fields { args { name } } }")
        ),
        "{ __schema { ...T ...T ...T ...T ...T ...T ...T } } fragment T on __Schema { types { name } }"
            .to_owned(),
    ] {
        let query = query.as_str();
        let body = app.gql(query, json!({})).await;
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{query}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["limit"], "introspectionAliases",
            "{body}"
        );
    }
    // `__typename` reads no schema, however often.
    app.gql_ok(
        &format!(
            "{{ __schema {{ types {{ {} name }} }} }}",
            copies(8, "__typename")
        ),
        json!({}),
    )
    .await;
    // Five are admitted, and only the operation run counts.
    app.gql_ok(
        &format!("{{ {} }}", copies(5, "a#: __schema { queryType { name } }")),
        json!({}),
    )
    .await;
    let document = format!(
        "query A {{ {} }} query B {{ __typename }}",
        copies(6, "a#: __schema { queryType { name } }")
    );
    let body = app.gql_named(&document, "B").await;
    assert!(body.get("errors").is_none(), "{body}");
    // A few are admitted: a front end reading enums' values to fill its lists.
    let body = app
        .gql_ok(
            "{ s: __type(name: \"TicketStatus\") { enumValues { name } } p: __type(name: \"TicketPriority\") { enumValues { name } } }",
            json!({}),
        )
        .await;
    assert!(
        body["s"]["enumValues"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "{body}"
    );
    // Aliases elsewhere, `__typename` among them, are the alias limit's.
    app.gql_ok(
        "{ a: __typename b: contacts(first: 1) { n: totalCount } __schema { queryType { name } } }",
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn deeply_nested_values_are_refused_not_a_crash() {
    let app = spawn_app().await;
    let deep = format!("{{ __typename(a: {}) }}", "[".repeat(30_000));
    let body = app.gql(&deep, json!({})).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    let chain: String = (0..1000)
        .map(|n| format!("fragment f{n} on Query{{...f{}}}", n + 1))
        .collect();
    let chain = format!("{{...f0}}{chain}fragment f1000 on Query{{__typename}}");
    let body = app.gql(&chain, json!({})).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
}

/// A document of `operation` and `length` fragments, each spreading the next, the last
/// selecting `__typename`.
fn fragment_chain(operation: &str, length: usize) -> String {
    let chain: String = (0..length)
        .map(|n| format!("fragment f{n} on Query{{...f{}}}", n + 1))
        .collect();
    format!("{operation}{chain}fragment f{length} on Query{{__typename}}")
}

#[tokio::test]
async fn a_long_chain_of_fragments_is_refused_whatever_the_limits_allow() {
    let app = spawn_app_with(|s| {
        s.graphql.max_fields = 1_000_000;
        s.graphql.max_query_bytes = 1_000_000;
    })
    .await;
    let body = app.gql(&fragment_chain("{...f0}", 20_000), json!({})).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], "maxDepth");
    // Thirty-one spreads deep is within what a document may nest.
    let data = app.gql_ok(&fragment_chain("{...f0}", 30), json!({})).await;
    assert_eq!(data["__typename"], "Query");
}

#[tokio::test]
async fn a_long_chain_of_fragments_no_operation_spreads_is_refused_not_a_crash() {
    let app = spawn_app_with(|s| {
        s.graphql.max_fields = 1_000_000;
        s.graphql.max_query_bytes = 1_000_000;
    })
    .await;
    let body = app
        .gql(&fragment_chain("{__typename}", 20_000), json!({}))
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], "maxDepth");
    let data = app.gql_ok("{ __typename }", json!({})).await;
    assert_eq!(data["__typename"], "Query", "the server still answers");
}
