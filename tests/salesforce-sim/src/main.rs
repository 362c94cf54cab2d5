//! `salesforce-sim`: serve a seeded fake org on a local port until killed.

use clap::Parser;
use salesforce_sim::{SimConfig, start};

#[derive(Parser)]
#[command(about = "A stateful fake Salesforce org speaking the REST API")]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    records: usize,
    #[arg(long, default_value = "integration@tandem.test")]
    username: String,
    #[arg(long, default_value = "tandem")]
    password: String,
    #[arg(long, default_value = "tandem-sim")]
    client_id: String,
    #[arg(long, default_value = "tandem-sim-secret")]
    client_secret: String,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    token_ttl: i64,
    /// Access tokens expire after this many REST requests.
    #[arg(long)]
    token_max_requests: Option<u64>,
    #[arg(long, default_value_t = 100_000)]
    daily_api_limit: u64,
    /// PEM file with the RSA public key JWT-bearer assertions are verified against.
    #[arg(long)]
    jwt_public_key: Option<std::path::PathBuf>,
    /// Fraction (0..1) of REST calls answered with 500/503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Fraction of REST calls whose connection is dropped mid-answer.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Each refresh answers a new refresh token; the one used stops working.
    #[arg(long)]
    rotate_refresh_tokens: bool,
    /// The connected app does not require its secret: sign-ins without one are let in.
    #[arg(long)]
    secret_optional: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let jwt_public_key_pem = args
        .jwt_public_key
        .map(std::fs::read_to_string)
        .transpose()?;
    let config = SimConfig {
        port: args.port,
        seed: args.seed,
        records: args.records,
        username: args.username,
        password: args.password,
        client_id: args.client_id,
        client_secret: args.client_secret,
        token_ttl_secs: Some(args.token_ttl),
        token_max_requests: args.token_max_requests,
        daily_api_limit: args.daily_api_limit,
        jwt_public_key_pem,
        error_rate: args.error_rate,
        drop_rate: args.drop_rate,
        latency_ms: args.latency_ms,
        rotate_refresh_tokens: args.rotate_refresh_tokens,
        secret_optional: args.secret_optional,
    };
    let sim = start(config).await;
    let c = sim.config();
    println!("salesforce-sim listening on {}", sim.base_url());
    println!(
        "username={} password={} client_id={} client_secret={}",
        c.username, c.password, c.client_id, c.client_secret
    );
    println!("refresh_token={}", sim.refresh_token());
    sim.wait().await
}
