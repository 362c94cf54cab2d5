//! The `tandem` command line.

mod bench;
mod bench_graphql;
mod sync;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::domain::AgentId;
use crate::startup::{Application, authenticator};

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "A GraphQL gateway that keeps a help desk and Salesforce CRM in step."
)]
pub struct Cli {
    /// TOML settings file; TANDEM_* environment variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API (applies pending migrations first).
    Serve,
    /// Serve on a database of its own (SQLite `demo.db` in the data dir, whatever database is
    /// configured, made afresh at each start) with sample desk data and a simulated org, and
    /// print the GraphiQL URL and ready-to-paste tokens.
    Demo {
        /// Port to listen on (default: the configured port).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Apply, revert or list database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the GraphQL schema as SDL, or write it to a file.
    ExportSchema {
        /// Write here instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Run sync rounds from the command line, with progress per phase.
    Sync {
        /// Run exactly one full round (the first sync while it is pending), then exit.
        #[arg(long)]
        once: bool,
    },
    /// Measure Tandem: `tandem bench sync` times the first sync of a seeded simulator org;
    /// `tandem bench graphql` loads a gateway it starts, seeded, beside its own simulator.
    Bench {
        #[command(subcommand)]
        what: BenchTarget,
    },
    /// Mint a development token signed with the configured HS256 secret.
    Token {
        /// The agent's id (the token's subject).
        #[arg(long)]
        agent: i64,
        /// The agent's profile name, e.g. "Administrator" or "Light Agent".
        #[arg(long)]
        profile: String,
        /// A display name to carry in the token.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime such as 3600, 90m, 12h or 7d (default: auth.token_ttl_secs).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        /// For the `tandem demo` of this data dir: signed with the demo's own secret
        /// (`<data_dir>/demo-jwt-secret`), as the tokens it prints are.
        #[arg(long)]
        demo: bool,
    },
}

#[derive(Subcommand)]
enum BenchTarget {
    /// First sync of a seeded org (contacts, a tenth as many accounts) into an empty desk:
    /// records/s per phase, API calls beside the minimum, raw insert rate, desk → Salesforce
    /// latency through the worker, and peak RSS.
    Sync {
        #[arg(long, default_value_t = 100_000)]
        contacts: usize,
        /// Benchmark on PostgreSQL: an admin URL such as postgres://postgres@127.0.0.1/postgres.
        #[arg(long)]
        database_url: Option<String>,
        /// Use a simulator that is already running instead of starting one.
        #[arg(long)]
        sim_url: Option<String>,
        #[arg(long, default_value_t = 100)]
        latency_samples: usize,
    },
    /// A gateway (its own process) with a synced org and a warm panel cache: throughput and
    /// p50/p99 of a ticket with every panel beside `{ __typename }` from the same load loop,
    /// then one sync event fanned out to many `syncEvents` subscribers (arrival times and
    /// server RSS per subscriber), and a mass update of 500 contacts. Needs the release
    /// `salesforce-sim` beside `tandem`.
    Graphql {
        /// Seconds of load per query.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent request loops.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// WebSocket subscribers for the fan-out (each holds two file descriptors here).
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the most recent migrations.
    Down {
        /// How many to revert.
        #[arg(short, long, default_value_t = 1)]
        steps: u32,
    },
    /// List applied and pending migrations.
    Status,
}

fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration like 3600, 90m, 12h or 7d"))?;
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit '{unit}' in '{raw}'; use s, m, h or d"
            ));
        }
    };
    let seconds = n.saturating_mul(unit_secs);
    if seconds == 0 {
        return Err("the lifetime must be positive".into());
    }
    if seconds > crate::config::MAX_TOKEN_TTL_SECS {
        return Err(format!("'{raw}' is longer than ten years"));
    }
    Ok(Duration::from_secs(seconds))
}

async fn bench(what: BenchTarget) -> anyhow::Result<()> {
    match what {
        BenchTarget::Sync {
            contacts,
            database_url,
            sim_url,
            latency_samples,
        } => {
            bench::sync(bench::BenchOptions {
                contacts,
                database_url,
                sim_url,
                latency_samples,
            })
            .await
        }
        BenchTarget::Graphql {
            seconds,
            concurrency,
            subscribers,
        } => {
            bench_graphql::graphql(bench_graphql::GraphqlBenchOptions {
                seconds,
                concurrency,
                subscribers,
            })
            .await
        }
    }
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The benches measure with settings of their own: no file or variable changes them.
    let (settings, unknown) = match cli.command {
        Command::Bench { .. } => (Settings::default(), Vec::new()),
        _ => Settings::load(cli.config.as_deref())?,
    };
    crate::telemetry::init(&settings.log);
    for var in unknown {
        tracing::warn!(variable = %var, "environment variable names no Tandem setting; ignored");
    }
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Demo { port } => {
            let mut settings = settings;
            if let Some(port) = port {
                settings.http.port = port;
            }
            // The demo connects its own simulated org, which would replace the connection
            // (and forget the sync state) of any desk it ran on: it keeps a database of its own.
            if let Some(configured) = settings.database_url.take() {
                tracing::warn!(database = %configured.redacted(), "the demo does not use the configured database");
            }
            // One demo to a data dir: a second would remove the first one's database under it.
            let _running = crate::demo::hold_data_dir(&settings.data_dir)?;
            let database = settings.data_dir.join("demo.db");
            crate::demo::forget_database(&database)?;
            settings.database_url = Some(crate::config::DatabaseUrl::sqlite_file(&database));
            // Its tokens, printed for anyone to copy, are signed with a secret of its own: they
            // must not open a gateway that shares its configuration or its data dir.
            let auth = &mut settings.auth;
            if auth.jwt_secret.is_some() || auth.public_key_file.is_some() {
                tracing::warn!(
                    "the demo signs its tokens with a secret of its own, not the configured one"
                );
            }
            auth.jwt_secret = Some(crate::startup::generated_secret(
                &settings.data_dir,
                "demo-jwt-secret",
            )?);
            (auth.public_key_file, auth.issuer, auth.audience) = (None, None, None);
            crate::demo::run(settings).await
        }
        Command::Migrate { action } => migrate(&settings, action).await,
        Command::Bench { what } => bench(what).await,
        Command::Sync { once } => {
            if !once {
                bail!(
                    "`tandem serve` runs the sync continuously; use `tandem sync --once` for one round"
                );
            }
            sync::once(&settings).await
        }
        Command::ExportSchema { output } => {
            let sdl = crate::graphql::sdl();
            match output {
                Some(path) => std::fs::write(&path, sdl)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{sdl}"),
            }
            Ok(())
        }
        Command::Token {
            agent,
            profile,
            name,
            ttl,
            demo,
        } => {
            let mut settings = settings;
            if demo {
                // The demo's tokens are signed with a secret of its own (see `Demo` above).
                if !settings.data_dir.join("demo-jwt-secret").exists() {
                    let dir = std::path::absolute(&settings.data_dir)
                        .unwrap_or_else(|_| settings.data_dir.clone());
                    bail!(
                        "no `tandem demo` has run with the data dir {} (it keeps no demo-jwt-secret); run this where the demo runs, or set TANDEM_DATA_DIR to its data dir",
                        dir.display()
                    );
                }
                let auth = &mut settings.auth;
                auth.jwt_secret = Some(crate::startup::generated_secret(
                    &settings.data_dir,
                    "demo-jwt-secret",
                )?);
                (auth.public_key_file, auth.issuer, auth.audience) = (None, None, None);
            } else {
                let kept = settings.data_dir.join("jwt-secret");
                let signs_with_kept =
                    settings.auth.public_key_file.is_none() && settings.auth.jwt_secret.is_none();
                if signs_with_kept && settings.data_dir.join("demo-jwt-secret").exists() {
                    // The demo signs with a secret of its own: this token is for a gateway
                    // started with `tandem serve` on the data dir, which the demo is not.
                    eprintln!(
                        "`tandem demo` has run with this data dir, and its gateway accepts only tokens made with --demo; this one is for `tandem serve`."
                    );
                }
                if signs_with_kept && !kept.exists() {
                    // A gateway started elsewhere keeps its secret in its own data dir: this
                    // token would be refused there.
                    let dir = std::path::absolute(&settings.data_dir)
                        .unwrap_or_else(|_| settings.data_dir.clone());
                    eprintln!(
                        "No token secret was kept in {} yet: one is made there now, and the token is accepted only by a gateway using that data dir (set data_dir, or run this where the gateway runs).",
                        dir.display()
                    );
                }
            }
            let auth = authenticator(&settings)?;
            let ttl = ttl.unwrap_or(Duration::from_secs(settings.auth.token_ttl_secs));
            let token = auth
                .mint(AgentId(agent), &profile, name.as_deref(), ttl)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Said before anything is written to it: its migrations run next.
    tracing::info!(database = %settings.database_url().redacted(), "opening the database");
    let app = Application::build(&settings).await?;
    tracing::info!(
        url = %format!("{}/graphql", settings.base_url(app.port())),
        "serving"
    );
    app.run_until_signalled().await?;
    Ok(())
}

async fn migrate(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    use migration::{Migrator, MigratorTrait};
    let store = crate::startup::connect_store(settings).await?;
    let db = store.connection();
    match action {
        MigrateAction::Up => {
            store.migrate_up().await?;
            println!("all migrations applied");
        }
        MigrateAction::Down { steps } => {
            if steps == 0 {
                bail!("--steps must be at least 1");
            }
            store.migrate_down(steps).await?;
            println!("reverted {steps} migration(s)");
        }
        MigrateAction::Status => {
            for m in Migrator::get_applied_migrations(db).await? {
                println!("applied  {}", m.name());
            }
            for m in Migrator::get_pending_migrations(db).await? {
                println!("pending  {}", m.name());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;
    use std::time::Duration;

    #[test]
    fn lifetimes_take_a_unit() {
        assert_eq!(parse_ttl("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ttl("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_ttl("12x").is_err());
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("3651d").is_err(), "over ten years");
        assert!(parse_ttl("999999999999999999d").is_err(), "no wrap-around");
    }
}
