//! The binary: configuration → app → serve → shutdown (or, with `token`, one access token
//! printed, see `cli`).

use std::process::ExitCode;

use clap::Parser;
use prolitemeet_server::cli::{Cli, Command};
use prolitemeet_server::{Config, Deployment, app, logging, serve};
use tokio::net::TcpListener;

/// Exit code for a bad configuration value, or a Redis that does not answer at start.
const EXIT_CONFIG: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("prolitemeet-server: cannot read .env: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Some(Command::Token(token)) = cli.command {
        return token.run(std::env::var("JWT_SECRET").ok().as_deref());
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("prolitemeet-server: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = logging::init(config.log_json) {
        eprintln!("prolitemeet-server: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let (router, server) = match app(config.clone()).await {
        Ok(built) => built,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("prolitemeet-server: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let listener = match TcpListener::bind((config.host, config.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {}:{}: {e}", config.host, config.port);
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().map_or_else(
        |_| format!("{}:{}", config.host, config.port),
        |a| a.to_string(),
    );
    let mode = match &config.deployment {
        Deployment::Memory => "single instance (rooms in memory)".to_owned(),
        Deployment::Redis { prefix, .. } => format!("cluster (redis, prefix {prefix})"),
    };
    tracing::info!(
        %address,
        allowed_origins = %config.allowed_origins,
        node_env = %config.node_env,
        instance = %server.app.state.instance_id,
        %mode,
        "ProLiteMeet server listening"
    );
    match serve(listener, router, server, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (how Render, Railway, Heroku and Docker stop a service) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
