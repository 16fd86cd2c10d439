//! `entitled`: payment-provider webhooks in, entitlements out.
//!
//! The layers, from the centre out: [`domain`] (pure state machines and the
//! access decision), [`providers`] (wire payloads to domain events), [`store`]
//! (the only SQL), [`ingest`] (one delivery's path) and [`http`] (thin handlers).
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod outbound;
pub mod providers;
pub mod rebuild;
pub mod secret;
pub mod server;
pub mod store;
pub mod time_fmt;
pub mod wire;
pub mod workers;

pub use http::{AppState, Settings, app};

use config::{DatabaseArgs, LogFormat, ServeArgs};
use store::Store;
use workers::Workers;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    App(#[from] app::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("rebuild: {0}")]
    Rebuild(#[from] rebuild::RebuildError),
    #[error(
        "interrupted: the difference is written in one transaction, so all of it or none was written"
    )]
    Interrupted,
}

/// Sets up tracing: `RUST_LOG` filters (default `info`), `format` shapes lines.
/// Lines go to stderr through a non-blocking writer (a dedicated thread), so
/// a request never waits on the terminal or the log collector; keep the guard
/// until exit, which flushes what is buffered. When more than
/// [`LOG_BUFFER_LINES`] lines wait, new ones are dropped rather than slowing
/// requests down.
pub fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(true)
        .thread_name("entitled-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, not in files or collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.init(),
    }
    guard
}

/// Log lines buffered before new ones are dropped.
pub const LOG_BUFFER_LINES: usize = 128_000;

/// `entitled migrate`.
pub async fn migrate(args: DatabaseArgs) -> Result<(), Error> {
    let (store, background) = Store::connect_without_migrating(&args.database_url).await?;
    let workers = Workers::of_store(background);
    let applied = store.migrate().await?;
    tracing::info!(applied, "migrations up to date");
    store.close().await;
    workers.stop();
    Ok(())
}

/// `entitled rebuild [--dry-run] [--json]`: progress on stderr, the report
/// on stdout.
pub async fn rebuild(args: config::RebuildArgs) -> Result<(), Error> {
    use std::io::Write;
    let (store, background) = Store::connect_without_migrating(&args.database.database_url).await?;
    let workers = Workers::of_store(background);
    store.migrate().await?;
    let last = std::sync::Mutex::new((rebuild::Phase::Done, 0u64));
    let progress = |p: rebuild::Progress| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        // A line per phase, per 10,000 inputs or sources, and at the end of
        // the deliveries.
        let same_bucket = p.done / 10_000 == last.1 / 10_000 && p.done != p.total;
        if last.0 == p.phase && (same_bucket || p.done == last.1) {
            return;
        }
        *last = (p.phase, p.done);
        let line = match p.phase {
            rebuild::Phase::Deriving => {
                format!("rebuild: deriving, {} of {} deliveries", p.done, p.total)
            }
            rebuild::Phase::Comparing => {
                format!("rebuild: comparing, {} of {} sources", p.done, p.total)
            }
            rebuild::Phase::Applying => format!("rebuild: writing {} sources", p.total),
            rebuild::Phase::Done => "rebuild: done".to_owned(),
        };
        eprintln!("{line}");
    };
    // Ctrl-C or SIGTERM stops it: nothing is written (the difference is
    // written in one transaction, at the end) and the scratch file goes.
    let report = tokio::select! {
        report = rebuild::rebuild(&store, args.dry_run, &progress) => Some(report),
        () = shutdown_signal() => None,
    };
    store.close().await;
    workers.stop();
    let report = report.ok_or(Error::Interrupted)??;
    let out = if args.json {
        let view = http::rebuild::RebuildView::from(report);
        let mut json = serde_json::to_string_pretty(&view).unwrap_or_default();
        json.push('\n');
        json
    } else {
        rebuild::summary(&report)
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(())
}

/// `entitled rotate-signing-key`: adds a new signing key, retires the rest.
pub async fn rotate_signing_key(args: config::DatabaseArgs) -> Result<(), Error> {
    let (store, background) = Store::connect_without_migrating(&args.database_url).await?;
    let workers = Workers::of_store(background);
    store.migrate().await?;
    let rotation = app::signing_keys::rotate(&store, time_fmt::now()).await;
    store.close().await;
    workers.stop();
    let rotation = rotation?;
    let seconds = |at: domain::Instant| time_fmt::rfc3339(at.replace_nanosecond(0).unwrap_or(at));
    let switch_at = seconds(rotation.switch_at);
    println!(
        "Added signing key {}: in /.well-known/jwks.json now, signing tokens from {switch_at}.",
        rotation.added
    );
    for kid in &rotation.retired {
        println!(
            "Retiring {kid}: it signs until {switch_at}, then its private half is deleted; \
             it stays in /.well-known/jwks.json until {}.",
            seconds(rotation.published_until)
        );
    }
    Ok(())
}

/// `entitled serve`: migrate, make sure an admin token exists, serve until
/// SIGTERM or Ctrl-C, then let in-flight requests finish.
pub async fn serve(args: ServeArgs) -> Result<(), Error> {
    let (store, mut workers) = workers::connect(&args.database.database_url).await?;
    if let Some(token) = store
        .bootstrap_admin_token(args.admin_token.as_ref(), time_fmt::now())
        .await?
    {
        // Shown once, on stderr, never logged: only its hash is stored.
        eprintln!(
            "\nGenerated the bootstrap admin token (shown only this once; store it safely):\n\n    {}\n",
            token.expose()
        );
    }
    let state = AppState::new(
        store.clone(),
        Settings {
            max_body_bytes: args.max_body_bytes,
            retry_schedule: args.outbound_retry_schedule.clone(),
            public_url: args.public_url.clone(),
            issuer: args
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", args.listen)),
        },
    );
    workers.run("outbound sender", state.sender.clone().run());
    workers.run(
        "clock",
        workers::clock(
            store.clone(),
            std::time::Duration::from_secs(u64::from(args.clock_interval_seconds)),
            workers::Retention {
                changes: time::Duration::days(i64::from(args.change_retention_days)),
                delivery_bodies: time::Duration::days(i64::from(args.delivery_retention_days)),
            },
        ),
    );
    tracing::debug!(tasks = ?workers.names(), "background work running");
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(%addr, engine = ?store.engine(), "entitled listening");
    let limits = server::Limits {
        max_connections: args.max_connections as usize,
        ..server::Limits::default()
    };
    let streams = state.clone();
    let shutdown = async move {
        shutdown_signal().await;
        streams.stop_streams();
    };
    server::serve(listener, app(state), limits, shutdown)
        .await
        .map_err(Error::Serve)?;
    workers.stop();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
