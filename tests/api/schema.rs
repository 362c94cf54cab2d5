#[test]
fn the_committed_schema_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        committed == tandem::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -- export-schema -o schema.graphql`"
    );
}
