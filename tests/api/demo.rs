//! `tandem demo`, as the README's first command runs it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn the_demo_serves_sample_tickets_whose_customers_panels_show_their_deals() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["demo", "--port", &port.to_string()])
        .env("TANDEM_DATA_DIR", dir.path())
        .env("TANDEM_LOG__FILTER", "error")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut agent = None;
    let mut synced = false;
    tokio::time::timeout(Duration::from_secs(60), async {
        while !(synced && agent.is_some()) {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the demo keeps running");
            if line.starts_with("Agent (") {
                let _open = lines.next_line().await.unwrap();
                let header = lines.next_line().await.unwrap().unwrap_or_default();
                agent = header.split("Bearer ").nth(1).map(str::to_owned);
            }
            synced |= line.starts_with("First sync done");
        }
    })
    .await
    .expect("the demo prints its tokens and finishes its first sync");
    let client = reqwest::Client::new();
    let ask = |query: &str| {
        client
            .post(format!("http://127.0.0.1:{port}/graphql"))
            .bearer_auth(agent.as_deref().unwrap())
            .json(&json!({ "query": query }))
            .send()
    };
    let body: Value = ask("{ tickets(first: 20) { nodes { id } } }")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"]["tickets"]["nodes"].as_array().unwrap().len(),
        8,
        "{body}"
    );
    let body: Value = ask(
        "{ ticket(id: \"7\") { subject contact { salesforce { opportunities(status: OPEN) { name role } } } } }",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["data"]["ticket"]["subject"], "Renewal quote is wrong",
        "{body}"
    );
    let deals = body["data"]["ticket"]["contact"]["salesforce"]["opportunities"]
        .as_array()
        .unwrap();
    assert!(!deals.is_empty(), "{body}");
    assert!(deals.iter().all(|d| d["role"].is_string()), "{body}");
}
