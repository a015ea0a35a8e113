//! The gossipchain node binary: parse flags, start the node, run the console until `quit`,
//! SIGINT or SIGTERM. End of stdin closes the console only; the node keeps running.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::Parser;
use gossipchain::cli::{Cli, Command};
use gossipchain::console::{self, Output};
use gossipchain::http::HttpServer;
use gossipchain::ledger::Store;
use gossipchain::node::Node;
use tracing_subscriber::EnvFilter;

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

/// Says where the HTTP API is: on stderr, and on stdout as an event line that keeps the
/// `--json` contract (`{"event":"http_listening",...}`) or as a `* http api on URL` line.
fn announce_http(server: &HttpServer, json: bool) {
    if let Some(taken) = server.fell_back_from {
        eprintln!("HTTP port {taken} is taken; using {} instead", server.addr);
    }
    eprintln!("HTTP API on {}", server.url);
    if server.read_only {
        eprintln!(
            "HTTP API is read-only: {} is not a loopback address and no --http-token was given, so routes that spend, mine or dial are refused",
            server.addr
        );
    }
    let line = if json {
        serde_json::json!({
            "event": "http_listening",
            "url": server.url,
            "read_only": server.read_only,
        })
        .to_string()
    } else if server.read_only {
        format!("* http api on {} (read-only)", server.url)
    } else {
        format!("* http api on {}", server.url)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the node; any error ends the process with one line on stderr (the error and its causes,
/// joined by colons) and exit status 1.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a maintenance command on the data directory and prints its one-line result.
fn maintain(
    command: &Command,
    config: &gossipchain::node::NodeConfig,
    json: bool,
) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    let (verb, verified) = match command {
        Command::Verify => {
            let store = Store::open_to_verify(dir, &config.params)
                .with_context(|| format!("cannot open the store in {}", dir.display()))?;
            let verified = store.verify().context("verify failed")?;
            ("verified", verified)
        }
        Command::Reindex => {
            let mut store = Store::open_for_reindex(dir, &config.params)
                .with_context(|| format!("cannot open the store in {}", dir.display()))?;
            let verified = store.reindex().context("reindex failed")?;
            ("reindexed", verified)
        }
    };
    let line = if json {
        serde_json::json!({
            "ok": true,
            "result": verb,
            "height": verified.height,
            "tip": verified.tip,
            "accounts": verified.accounts,
        })
        .to_string()
    } else {
        format!(
            "{verb}: main chain of height {} (tip {}) agrees with the stored state ({} accounts)",
            verified.height, verified.tip, verified.accounts
        )
    };
    println!("{line}");
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = match &cli.log {
        Some(level) => EnvFilter::try_new(level).context("bad --log filter")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = cli.to_config().context("bad configuration")?;
    if let Some(command) = &cli.command {
        return maintain(command, &config, cli.json);
    }
    let data_dir = config.data_dir.clone();
    let (node, handle) = Node::start(config)
        .with_context(|| format!("cannot start the node in {}", data_dir.display()))?;
    let output = Output::new(cli.json);
    let events = handle.subscribe();
    if let Some(http) = cli.http_config() {
        let server = gossipchain::http::start(http, handle.clone())
            .await
            .context("cannot start the HTTP API (--http ADDR chooses another address, --no-http turns it off)")?;
        announce_http(&server, cli.json);
    }
    let console = tokio::spawn(console::run(handle.clone(), events, output));
    if let Err(error) = node.run(shutdown_signal()).await {
        // Let the console print the `node_halted` event it ends on before the process exits.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), console).await;
        return Err(error).context("the node halted so as not to announce what it could not store");
    }
    Ok(())
}
