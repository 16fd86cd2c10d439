//! The command line and the environment: what `entitled` is asked to do.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::secret::Secret;

/// Turns payment-provider webhooks into entitlements.
#[derive(Debug, Parser)]
#[command(name = "entitled", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Derive every subscription and order again from the stored deliveries
    /// and write the difference (see the README, "Rebuild").
    Rebuild(RebuildArgs),
    /// Add a new entitlement-token signing key; the current one is retired
    /// and stays published until every token it signed has expired.
    RotateSigningKey(DatabaseArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Show the difference only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON (what `POST /v1/admin/rebuild` answers).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// SQLite (created if missing) or PostgreSQL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://entitled.db",
        hide_env_values = true
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ENTITLED_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Largest webhook body accepted, in bytes; larger is 413.
    #[arg(long, env = "ENTITLED_MAX_BODY_BYTES", default_value_t = 262_144)]
    pub max_body_bytes: usize,

    /// How long a delivery's raw body is kept, in days (the row and its
    /// outcomes stay).
    #[arg(long, env = "ENTITLED_DELIVERY_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub delivery_retention_days: u32,

    /// How long the change log keeps a change, in days.
    #[arg(long, env = "ENTITLED_CHANGE_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub change_retention_days: u32,

    /// How often the clock looks for answers that time alone changed, in
    /// seconds: a change is appended within one interval of the instant.
    #[arg(long, env = "ENTITLED_CLOCK_INTERVAL_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub clock_interval_seconds: u32,

    /// Seconds to wait before each retry of an outbound webhook message,
    /// comma-separated; after the last, the message is `failed`.
    #[arg(long, env = "ENTITLED_OUTBOUND_RETRY_SCHEDULE", default_value = "5,300,1800,7200,18000,36000,36000", value_parser = crate::outbound::parse_schedule)]
    pub outbound_retry_schedule: RetrySchedule,

    /// The URL operators and providers reach this service at (default:
    /// `http://` and the request's host). The console's forms must come
    /// from its origin, and its cookie is `Secure` when it is https.
    #[arg(long, env = "ENTITLED_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Most connections open at once (lowered to fit the open-file limit). At
    /// the cap the longest-idle connection is closed to make room.
    #[arg(long, env = "ENTITLED_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Bootstrap admin token. Unset on a fresh database: one is generated,
    /// stored hashed and printed once to stderr.
    #[arg(long = "admin-token", env = "ENTITLED_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub admin_token: Option<Secret>,
}

/// The retry schedule, in seconds (a named type: clap reads a `Vec` as a
/// repeated flag).
pub type RetrySchedule = Vec<u32>;

fn parse_public_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim().trim_end_matches('/');
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or("ENTITLED_PUBLIC_URL must start with http:// or https://")?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err("ENTITLED_PUBLIC_URL must name a host".into());
    }
    Ok(raw.to_owned())
}

fn parse_secret(raw: &str) -> Result<Secret, String> {
    if raw.trim().len() < 16 {
        Err("the admin token must be at least 16 characters".into())
    } else {
        Ok(Secret::new(raw.trim()))
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogFormat {
    /// `ENTITLED_LOG_FORMAT`: `pretty` (default) or `json`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("ENTITLED_LOG_FORMAT") {
            Err(_) => Ok(Self::Pretty),
            Ok(raw) => Self::from_str(raw.trim(), true)
                .map_err(|_| format!("ENTITLED_LOG_FORMAT must be pretty or json, not {raw:?}")),
        }
    }
}
