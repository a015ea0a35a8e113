//! The gossipchain node binary: parse flags, start the node, run the console until `quit`,
//! SIGINT or SIGTERM. End of stdin closes the console only; the node keeps running.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use gossipchain::cli::Cli;
use gossipchain::console::{self, Output};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
    let data_dir = config.data_dir.clone();
    let (node, handle) = Node::start(config)
        .with_context(|| format!("cannot start the node in {}", data_dir.display()))?;
    let output = Output::new(cli.json);
    let console = tokio::spawn(console::run(handle.clone(), handle.subscribe(), output));
    if let Err(error) = node.run(shutdown_signal()).await {
        // Let the console print the `node_halted` event it ends on before the process exits.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), console).await;
        return Err(error).context("the node halted so as not to announce what it could not store");
    }
    Ok(())
}
