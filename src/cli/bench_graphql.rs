//! `tandem bench graphql`: a running gateway with a synced org and a warm panel cache, loaded
//! by one Rust load loop: a ticket with every panel beside `{ __typename }`, then one sync event
//! fanned out to thousands of `syncEvents` subscribers.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::bench::{percentile, start_simulator, status_mb, tempfile_dir};

pub struct GraphqlBenchOptions {
    pub seconds: u64,
    pub concurrency: usize,
    pub subscribers: usize,
}

const TICKET: &str = "query($id: ID!) { ticket(id: $id) { subject status contact { name email
  salesforce { id viewInSalesforceUrl fetchedAt stale fields
    opportunities(status: ALL) { name stage amount closeDate role }
    notes { title body } events { subject start } tasks { subject status dueDate }
    account { id fields opportunities { name stage } notes { title } events { subject } tasks { subject } } } } } }";

/// A child command that reads none of the caller's settings: what is measured is the
/// gateway as it ships, on the settings the bench gives it.
fn own_settings(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            // Read in any case, as the settings read them.
            .is_some_and(|n| {
                n.get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case("TANDEM_"))
                    || n.eq_ignore_ascii_case("DATABASE_URL")
            })
        {
            command.env_remove(name);
        }
    }
    command
}

/// `tandem serve` on its own port and data dir, as a child process.
struct Server {
    child: Child,
    url: String,
    env: Vec<(String, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_server(dir: &std::path::Path, sockets: usize) -> anyhow::Result<Server> {
    let port = free_port()?;
    let env = vec![
        ("TANDEM_DATA_DIR".to_owned(), dir.display().to_string()),
        ("TANDEM_HTTP__PORT".to_owned(), port.to_string()),
        ("TANDEM_SYNC__POLL_INTERVAL_SECS".to_owned(), "1".to_owned()),
        (
            "TANDEM_WEBSOCKET__MAX_SUBSCRIPTIONS".to_owned(),
            "10".to_owned(),
        ),
        (
            "TANDEM_WEBSOCKET__MAX_CONNECTIONS".to_owned(),
            sockets.to_string(),
        ),
        ("TANDEM_LOG__FILTER".to_owned(), "warn".to_owned()),
    ];
    let child = own_settings(Command::new(std::env::current_exe()?).arg("serve"))
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start `tandem serve`")?;
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        env,
    };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the gateway did not become ready")
}

fn token(server: &Server) -> anyhow::Result<String> {
    let out = own_settings(Command::new(std::env::current_exe()?).args([
        "token",
        "--agent",
        "1",
        "--profile",
        "Administrator",
    ]))
    .envs(server.env.iter().cloned())
    .stderr(Stdio::null())
    .output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn gql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body: Value = self
            .http
            .post(format!("{}/graphql", self.url))
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await?;
        if let Some(errors) = body.get("errors") {
            bail!("{query}: {errors}");
        }
        Ok(body["data"].clone())
    }
}

/// Whether a load takes answers the gateway kept, or asks for each to be computed afresh.
#[derive(Clone, Copy, PartialEq)]
enum Answers {
    Kept,
    Computed,
}

/// Requests per second and sorted latencies of `concurrency` loops sending `make(i)` for `secs`.
async fn load(
    api: &Api,
    secs: u64,
    concurrency: usize,
    answers: Answers,
    make: impl Fn(usize) -> Value + Sync,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let workers = (0..concurrency).map(|w| {
        let make = &make;
        async move {
            let mut latencies = Vec::new();
            let mut n = w;
            while Instant::now() < until {
                let at = Instant::now();
                let mut request = api
                    .http
                    .post(format!("{}/graphql", api.url))
                    .bearer_auth(&api.token);
                if answers == Answers::Computed {
                    request = request.header("cache-control", "no-cache");
                }
                let response = request.json(&make(n)).send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                // A field error answers 200 with data beside it: a failure all the same.
                if !status.is_success() || carries_errors(&body) {
                    bail!(
                        "a request failed ({status}): {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                latencies.push(at.elapsed());
                n += concurrency;
            }
            Ok::<_, anyhow::Error>(latencies)
        }
    });
    let mut all = Vec::new();
    for latencies in futures_util::future::join_all(workers).await {
        all.extend(latencies?);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    Ok((rate, all))
}

/// Whether a GraphQL answer carries errors (at its top level, or a field's).
fn carries_errors(body: &[u8]) -> bool {
    body.windows(b"\"errors\"".len())
        .any(|w| w == b"\"errors\"")
}

/// `load`, with the CPU time the server spent per request: steadier than the rate on a
/// machine whose two cores the load loop shares.
async fn measure(
    api: &Api,
    server: &Server,
    name: &str,
    options: &GraphqlBenchOptions,
    answers: Answers,
    make: impl Fn(usize) -> Value + Sync,
) -> anyhow::Result<f64> {
    let cpu = CpuSince::now(&server.child.id().to_string());
    let (rate, latencies) = load(api, options.seconds, options.concurrency, answers, make).await?;
    println!(
        "  {name}: {rate:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms; server CPU {} per request",
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        cpu.show(|ms| format!("{:.0} µs", ms as f64 * 1e3 / latencies.len().max(1) as f64))
    );
    Ok(rate)
}

pub async fn graphql(options: GraphqlBenchOptions) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    // Cleaned up however the run ends, as `bench sync` is.
    let measured = measure_graphql(&options, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

async fn measure_graphql(
    options: &GraphqlBenchOptions,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let sim = start_simulator(2_000)?;
    let server = start_server(dir, options.subscribers.max(1)).await?;
    let api = Api {
        http: reqwest::Client::new(),
        url: server.url.clone(),
        token: token(&server)?,
    };
    api.gql(
        "mutation($input: ConnectSalesforceInput!) { connectSalesforce(input: $input) { status } }",
        json!({ "input": {
            "loginUrl": sim.url, "username": "integration@tandem.test", "password": "tandem",
            "clientId": "tandem-sim", "clientSecret": "tandem-sim-secret" } }),
    )
    .await?;
    api.gql("mutation { startSync { firstSync } }", json!({}))
        .await?;
    let synced = Instant::now();
    loop {
        let state = api.gql("{ integration { firstSync } }", json!({})).await?;
        if state["integration"]["firstSync"] == "DONE" {
            break;
        }
        if synced.elapsed() > Duration::from_secs(120) {
            bail!("the first sync did not finish within two minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let contacts = api
        .gql(
            "{ contacts(first: 100) { nodes { id account { id } } } }",
            json!({}),
        )
        .await?;
    let mut tickets = Vec::new();
    for contact in contacts["contacts"]["nodes"]
        .as_array()
        .ok_or_else(|| anyhow!("no contacts were synced"))?
        .iter()
        .filter(|c| !c["account"].is_null())
        .take(50)
    {
        let created = api
            .gql(
                "mutation($c: ID!, $a: ID) { createTicket(input: { subject: \"Bench\", contactId: $c, accountId: $a }) { id } }",
                json!({ "c": contact["id"], "a": contact["account"]["id"] }),
            )
            .await?;
        tickets.push(created["createTicket"]["id"].clone());
    }
    if tickets.is_empty() {
        bail!("no synced contact has an account");
    }
    for id in &tickets {
        api.gql(TICKET, json!({ "id": id })).await?;
    }
    println!(
        "gateway with {} tickets whose contacts and accounts are linked; panel cache warm; {} concurrent loops, {} s each",
        tickets.len(),
        options.concurrency,
        options.seconds
    );
    let base_rate = measure(
        &api,
        &server,
        "{ __typename }",
        options,
        Answers::Kept,
        |_| json!({ "query": "{ __typename }" }),
    )
    .await?;
    let ticket =
        |n: usize| json!({ "query": TICKET, "variables": { "id": tickets[n % tickets.len()] } });
    let rate = measure(
        &api,
        &server,
        "ticket with every panel, answers kept for a second",
        options,
        Answers::Kept,
        ticket,
    )
    .await?;
    println!("  ratio: {:.2}", rate / base_rate);
    let computed = measure(
        &api,
        &server,
        "ticket with every panel, each computed (Cache-Control: no-cache)",
        options,
        Answers::Computed,
        ticket,
    )
    .await?;
    println!("  ratio computed: {:.2}", computed / base_rate);

    fan_out(&api, &server, options.subscribers).await?;
    mass_update(&api).await?;
    Ok(())
}

/// The most records one mass update takes.
const MASS: usize = 500;

/// Times `massUpdateContacts` of 500 synced contacts, five times, each change queued for the
/// sync in the same transaction (the worker pushes them meanwhile, as it would).
async fn mass_update(api: &Api) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    let mut after = Value::Null;
    while ids.len() < MASS {
        let page = api
            .gql(
                "query($after: String) { contacts(first: 100, after: $after) { nodes { id } pageInfo { endCursor hasNextPage } } }",
                json!({ "after": after }),
            )
            .await?;
        let page = &page["contacts"];
        ids.extend(
            page["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|node| node["id"].clone()),
        );
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    ids.truncate(MASS);
    let mut times = Vec::new();
    for round in 0..5 {
        let at = Instant::now();
        api.gql(
            "mutation($ids: [ID!]!, $t: String) { massUpdateContacts(ids: $ids, patch: { title: $t }) { id } }",
            json!({ "ids": ids, "t": format!("Bench {round}") }),
        )
        .await?;
        times.push(at.elapsed());
    }
    times.sort();
    println!(
        "  a mass update of {} contacts (5 runs): median {:.1} ms, best {:.1} ms",
        ids.len(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    Ok(())
}

/// Status changes the fan-out causes, one after another (pause, resume, …; an even number
/// leaves the sync running): each is timed until the last subscriber has it.
const FAN_OUT_EVENTS: usize = 20;

/// How long an event may take to reach every subscriber before the bench gives up on it.
const ARRIVAL_PATIENCE: Duration = Duration::from_secs(30);

/// Connects `n` subscribers to `syncEvents`, causes [`FAN_OUT_EVENTS`] status changes one at
/// a time, and times each one's arrival at every subscriber.
async fn fan_out(api: &Api, server: &Server, n: usize) -> anyhow::Result<()> {
    use std::sync::{Arc, OnceLock};
    let pid = server.child.id().to_string();
    let before = status_mb(&pid, "VmRSS:").unwrap_or_default();
    let ws_url = api.url.replacen("http", "ws", 1) + "/graphql";
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
    let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Duration)>();
    // Each set just before its event is caused; each subscriber times its arrival from it.
    // The subscribers wait on their sockets alone, so nothing but an event wakes them.
    let sent: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..FAN_OUT_EVENTS).map(|_| OnceLock::new()).collect());
    let connect = |ready: tokio::sync::mpsc::Sender<()>,
                   arrived: tokio::sync::mpsc::UnboundedSender<(usize, Duration)>,
                   sent: Arc<Vec<OnceLock<Instant>>>| {
        let url = ws_url.clone();
        let token = api.token.clone();
        async move {
            // A server out of file descriptors never answers the handshake: not waited for.
            let mut ws = tokio::time::timeout(ARRIVAL_PATIENCE, async {
                let mut request = url.into_client_request()?;
                request.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_static("graphql-transport-ws"),
                );
                let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
                ws.send(Message::text(
                    json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }).to_string(),
                ))
                .await?;
                ws.next()
                    .await
                    .ok_or_else(|| anyhow!("closed before the ack"))??;
                ws.send(Message::text(
                    json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { syncEvents(kinds: [STATUS]) { id status } }" } }).to_string(),
                ))
                .await?;
                Ok::<_, anyhow::Error>(ws)
            })
            .await
            .map_err(|_| {
                anyhow!(
                    "the server did not take a subscriber within {} s",
                    ARRIVAL_PATIENCE.as_secs()
                )
            })??;
            let _ = ready.send(()).await;
            // Let go at once: with every subscriber connected or failed, the count is known.
            drop(ready);
            let mut event = 0;
            while event < sent.len() {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) if text.contains("\"next\"") => {
                        let at = sent[event]
                            .get()
                            .ok_or_else(|| anyhow!("an event came unasked"))?;
                        let _ = arrived.send((event, at.elapsed()));
                        event += 1;
                    }
                    Some(Ok(_)) => continue,
                    _ => bail!("a subscriber's socket closed"),
                }
            }
            // The socket is handed back and stays open until every subscriber has every
            // event: a dashboard does not hang up, and closing early would load the server
            // during the measurement.
            Ok::<_, anyhow::Error>(ws)
        }
    };
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(tokio::spawn(connect(
            ready_tx.clone(),
            arrived_tx.clone(),
            sent.clone(),
        )));
        if i % 200 == 199 {
            // Let the server accept in steps rather than all at once.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(ready_tx);
    drop(arrived_tx);
    let mut ready = 0;
    while ready < n && ready_rx.recv().await.is_some() {
        ready += 1;
    }
    if ready < n {
        // A task lets go of its sender a moment before it counts as finished.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut why = String::from("no reason given");
        for task in &mut tasks {
            if task.is_finished()
                && let Ok(Err(e)) = task.await
            {
                why = e.to_string();
                break;
            }
        }
        bail!(
            "only {ready} of {n} subscribers connected ({why}); each holds a socket, so the open-file limit (ulimit -n) must be above {n} by a few hundred"
        );
    }
    // The server registers a subscription just after reading its message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = CpuSince::now(&pid);
    let mut arrivals = Vec::with_capacity(n * FAN_OUT_EVENTS);
    // For each event, when the last subscriber had it.
    let mut lasts = Vec::with_capacity(FAN_OUT_EVENTS);
    for (event, at) in sent.iter().enumerate() {
        let _ = at.set(Instant::now());
        let change = if event % 2 == 0 {
            "pauseSync"
        } else {
            "resumeSync"
        };
        api.gql(&format!("mutation {{ {change} {{ status }} }}"), json!({}))
            .await?;
        let mut last = Duration::ZERO;
        for _ in 0..n {
            let (of, took) = tokio::time::timeout(ARRIVAL_PATIENCE, arrived_rx.recv())
                .await
                .map_err(|_| {
                    anyhow!(
                        "event {event} did not reach every subscriber within {} s (a socket closed?)",
                        ARRIVAL_PATIENCE.as_secs()
                    )
                })?
                .ok_or_else(|| anyhow!("a subscriber stopped before event {event}"))?;
            anyhow::ensure!(of == event, "event {of} came while {event} was awaited");
            last = last.max(took);
            arrivals.push(took);
        }
        lasts.push(last);
    }
    // Read with every socket open and every event delivered.
    let after = status_mb(&pid, "VmRSS:").unwrap_or_default();
    let server_cpu = cpu.show(|ms| (ms / FAN_OUT_EVENTS as u64).to_string());
    let mut sockets = Vec::with_capacity(n);
    for task in tasks {
        sockets.push(task.await??);
    }
    drop(sockets);
    arrivals.sort();
    lasts.sort();
    println!(
        "  {n} syncEvents subscribers, {FAN_OUT_EVENTS} status changes one at a time: until the last subscriber has one, median {:.0} ms, p99 {:.0} ms, most {:.0} ms; every arrival p50 {:.0} ms, p99 {:.0} ms; server CPU {} ms an event; server RSS {before:.0} → {after:.0} MB ({:.1} KB per subscriber)",
        percentile(&lasts, 50.0).as_secs_f64() * 1e3,
        percentile(&lasts, 99.0).as_secs_f64() * 1e3,
        lasts.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        percentile(&arrivals, 50.0).as_secs_f64() * 1e3,
        percentile(&arrivals, 99.0).as_secs_f64() * 1e3,
        server_cpu,
        (after - before) * 1024.0 / n.max(1) as f64
    );
    Ok(())
}

/// The CPU time a process has used since a moment.
struct CpuSince {
    pid: String,
    at: Option<u64>,
}

impl CpuSince {
    fn now(pid: &str) -> Self {
        Self {
            pid: pid.to_owned(),
            at: cpu_ms(pid),
        }
    }

    /// The time used since, in ms, as `show` writes it; "unknown" when /proc cannot tell.
    fn show(&self, show: impl FnOnce(u64) -> String) -> String {
        cpu_ms(&self.pid)
            .zip(self.at)
            .map_or_else(|| "unknown".to_owned(), |(now, at)| show(now - at))
    }
}

/// CPU time (user and system) a process has used, in ms, from /proc; Linux counts it in
/// ticks of 10 ms.
fn cpu_ms(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10)
}
