//! `tandem demo`, as the README's first command runs it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `tandem demo`, its first sync done, and its Agent's token.
struct Demo {
    process: tokio::process::Child,
    port: u16,
    agent: String,
}

impl Demo {
    /// What the demo answers its Agent's query.
    async fn ask(&self, query: &str) -> Value {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/graphql", self.port))
            .bearer_auth(&self.agent)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Starts `tandem demo` on `data_dir` and waits for its tokens and its first sync.
async fn start_demo(data_dir: &std::path::Path) -> Demo {
    start_demo_with(data_dir, &[]).await
}

/// [`start_demo`] with these environment variables set too.
async fn start_demo_with(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Demo {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["demo", "--port", &port.to_string()])
        .env("TANDEM_DATA_DIR", data_dir)
        .env("TANDEM_LOG__FILTER", "error")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
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
            if line.starts_with("First sync done") {
                // The sample org's 200 contacts and 20 accounts in; the desk's 4 accounts
                // and 8 contacts out, whichever round (the worker's or the demo's) ran it.
                assert_eq!(
                    line,
                    "First sync done: 220 records in from Salesforce, 12 out to it."
                );
                synced = true;
            }
        }
    })
    .await
    .expect("the demo prints its tokens and finishes its first sync");
    // Read on: a demo writing to a closed pipe would end.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo {
        process,
        port,
        agent: agent.unwrap(),
    }
}

#[tokio::test]
async fn the_demo_serves_sample_tickets_whose_customers_panels_show_deals_notes_events_and_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let Demo {
        process: _running,
        port,
        agent,
    } = start_demo(dir.path()).await;
    let client = reqwest::Client::new();
    let ask = |query: &str| {
        client
            .post(format!("http://127.0.0.1:{port}/graphql"))
            .bearer_auth(&agent)
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
    for (ticket, subject) in [
        ("7", "Renewal quote is wrong"),
        ("8", "Cannot sign in to the customer portal"),
    ] {
        let body: Value = ask(&format!(
            "{{ ticket(id: \"{ticket}\") {{ subject contact {{ salesforce {{
                opportunities(status: OPEN) {{ name role }} notes {{ title }}
                events {{ subject }} tasks {{ subject }} }} }} }} }}"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(body["data"]["ticket"]["subject"], subject, "{body}");
        let panel = &body["data"]["ticket"]["contact"]["salesforce"];
        let deals = panel["opportunities"].as_array().unwrap();
        assert!(deals.iter().all(|d| d["role"].is_string()), "{body}");
        for list in ["opportunities", "notes", "events", "tasks"] {
            assert!(
                !panel[list].as_array().unwrap().is_empty(),
                "ticket {ticket}'s {list}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn a_restarted_demo_begins_afresh_with_its_new_org() {
    let dir = tempfile::tempdir().unwrap();
    let named = |demo: &Demo| {
        let ask = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/graphql", demo.port))
            .bearer_auth(&demo.agent)
            .json(
                &json!({ "query": "{ contacts(filter: { name: \"Restart\" }) { nodes { id } } }" }),
            )
            .send();
        async move {
            let body: Value = ask.await.unwrap().json().await.unwrap();
            body["data"]["contacts"]["nodes"].as_array().unwrap().len()
        }
    };
    let mut first = start_demo(dir.path()).await;
    let made = first
        .ask("mutation { createContact(input: { lastName: \"Restart\" }) { id } }")
        .await;
    assert!(made.get("errors").is_none(), "{made}");
    assert_eq!(named(&first).await, 1);
    first.process.kill().await.unwrap();

    // The org the desk was in step with is gone; the desk starts over beside the new one,
    // rather than staying linked to records that no longer exist.
    let second = start_demo(dir.path()).await;
    assert_eq!(named(&second).await, 0);
}

#[tokio::test]
async fn a_second_demo_on_the_same_data_dir_is_refused_and_the_first_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_demo(dir.path()).await;
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["demo", "--port", "0"])
        .env("TANDEM_DATA_DIR", dir.path())
        .env("TANDEM_LOG__FILTER", "error")
        .output()
        .await
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("another `tandem demo` is running"), "{said}");

    let body = first.ask("{ tickets(first: 20) { nodes { id } } }").await;
    assert_eq!(
        body["data"]["tickets"]["nodes"].as_array().unwrap().len(),
        8,
        "the first demo's desk is where it was: {body}"
    );
}

#[tokio::test]
async fn the_demo_signs_its_tokens_with_a_secret_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let configured = (
        "TANDEM_AUTH__JWT_SECRET",
        "a-production-secret-of-at-least-32-bytes",
    );
    let demo = start_demo_with(dir.path(), &[configured]).await;
    let minted = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["token", "--agent", "2", "--profile", "Agent"])
        .env("TANDEM_DATA_DIR", dir.path())
        .env(configured.0, configured.1)
        .output()
        .await
        .unwrap();
    assert!(minted.status.success());
    let production = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let status = |token: String| {
        let port = demo.port;
        async move {
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": "{ me { agentId } }" }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(demo.agent.clone()).await, 200);
    assert_eq!(
        status(production).await,
        401,
        "a token of the configured secret does not open the demo, nor the demo's another gateway"
    );
    // `token --demo` mints one the demo takes, once its printed ones run out.
    let minted = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["token", "--demo", "--agent", "2", "--profile", "Agent"])
        .env("TANDEM_DATA_DIR", dir.path())
        .env(configured.0, configured.1)
        .output()
        .await
        .unwrap();
    assert!(minted.status.success(), "{minted:?}");
    let for_demo = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    assert_eq!(status(for_demo).await, 200);
    // Where no demo ran, it says so rather than mint a token nothing takes.
    let elsewhere = tempfile::tempdir().unwrap();
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["token", "--demo", "--agent", "2", "--profile", "Agent"])
        .env("TANDEM_DATA_DIR", elsewhere.path())
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("no `tandem demo` has run with the data dir"),
        "{said}"
    );
}

#[tokio::test]
async fn a_secret_too_short_to_sign_with_is_refused_naming_the_setting_not_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let minted = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["token", "--agent", "2", "--profile", "Agent"])
        .env("TANDEM_DATA_DIR", dir.path())
        .env("TANDEM_AUTH__JWT_SECRET", "hunter2-hunter2")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&minted.stderr);
    assert!(!minted.status.success(), "{stderr}");
    assert!(
        stderr.contains("auth.jwt_secret: the HS256 secret must be at least 32 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("invalid token"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the secret stays unsaid: {stderr}"
    );
}
