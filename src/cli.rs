//! Command-line flags and how they become a [`NodeConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use libp2p::Multiaddr;

use crate::http::{HttpConfig, DEFAULT_HTTP_ADDR};
use crate::ledger::params::{ParamsError, DEFAULT_DIFFICULTY};
use crate::ledger::pow;
use crate::ledger::NetworkParams;
use crate::node::NodeConfig;

/// A gossipchain node: finds peers on the LAN by mDNS, gossips transactions and blocks, syncs
/// the chain with the most work, and takes commands on stdin (type `help`).
#[derive(Debug, Clone, Parser)]
#[command(name = "gossipchain", version)]
pub struct Cli {
    /// Directory for the chain database and the node key
    /// [default: <user data dir>/gossipchain/<network>]
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Address to listen on; repeat for several
    #[arg(
        long = "listen",
        value_name = "MULTIADDR",
        default_value = "/ip4/0.0.0.0/tcp/0"
    )]
    pub listen: Vec<Multiaddr>,

    /// Peer to dial at start and re-dial when lost (with or without /p2p/<id>); repeat for several
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<Multiaddr>,

    /// Do not discover peers by mDNS
    #[arg(long)]
    pub no_mdns: bool,

    /// Network name; nodes only talk to nodes of the same network (name and difficulty)
    #[arg(long, value_name = "NAME", default_value = "devnet", global = true)]
    pub network: String,

    /// Proof-of-work difficulty in leading zero bits (part of the network's identity)
    #[arg(long, value_name = "BITS", default_value_t = DEFAULT_DIFFICULTY, global = true)]
    pub difficulty: u32,

    /// Print one JSON object per stdout line (replies and events); logs go to stderr
    #[arg(long)]
    pub json: bool,

    /// Log filter for stderr: error, warn, info, debug, trace, or directives such as
    /// "gossipchain=debug" [default: RUST_LOG, else warn]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,

    /// Threads the miner uses [default: all cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub mine_threads: Option<u16>,

    /// Address of the HTTP API [default: 127.0.0.1:8645, or a free port if that one is taken].
    /// A non-loopback address without --http-token serves read-only routes only
    #[arg(long, value_name = "ADDR", conflicts_with = "no_http")]
    pub http: Option<SocketAddr>,

    /// Do not serve the HTTP API
    #[arg(long)]
    pub no_http: bool,

    /// Least fee a transfer must pay to enter the mempool and be relayed (this node's own
    /// transfers excepted) [default: 0 on devnet, 1 on any other network]
    #[arg(long, value_name = "COINS")]
    pub min_relay_fee: Option<u64>,

    /// Bearer token that routes spending coins, mining or dialing require from every client
    /// (without one they are served to loopback clients only)
    #[arg(long, value_name = "TOKEN", value_parser = parse_token)]
    pub http_token: Option<String>,

    /// A maintenance command on the data directory, run instead of the node
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Maintenance of a data directory, run instead of the node (which must not be running: the
/// store is locked by one process at a time).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Replay the stored main chain from genesis and check that the stored account state, undo
    /// data, index and tip agree with it; exit status 1 with the first mismatch
    Verify,
    /// Rebuild the account state and undo data from the stored blocks: upgrades a data
    /// directory of the old format, or repairs a damaged state
    Reindex,
}

/// A token must be non-empty visible ASCII, as a header value needs.
fn parse_token(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_string())
    } else {
        Err("the token must be non-empty printable ASCII without spaces".into())
    }
}

/// Why the flags do not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The network name or difficulty is not allowed.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// No data directory was given and the user has none.
    #[error("no user data directory on this system: pass --data-dir")]
    NoDataDir,
}

impl Cli {
    /// The node configuration these flags describe.
    ///
    /// # Errors
    /// [`CliError`] for a bad network name or difficulty, or no data directory.
    pub fn to_config(&self) -> Result<NodeConfig, CliError> {
        let params = NetworkParams::new(&self.network, self.difficulty)?;
        let data_dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => dirs::data_dir()
                .ok_or(CliError::NoDataDir)?
                .join("gossipchain")
                .join(&self.network),
        };
        Ok(NodeConfig {
            data_dir,
            params,
            listen: self.listen.clone(),
            peers: self.peers.clone(),
            mdns: !self.no_mdns,
            mine_threads: self
                .mine_threads
                .map_or_else(pow::default_threads, usize::from),
            min_relay_fee: self.min_relay_fee,
        })
    }
}

impl Cli {
    /// How to serve the HTTP API, or `None` with `--no-http`. Only the default address falls
    /// back to a free port when taken: an address given with `--http` is used or fails.
    pub fn http_config(&self) -> Option<HttpConfig> {
        if self.no_http {
            return None;
        }
        Some(HttpConfig {
            addr: self.http.unwrap_or(DEFAULT_HTTP_ADDR),
            fallback: self.http.is_none(),
            token: self.http_token.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_everywhere_with_mdns_on_devnet() {
        let cli = Cli::try_parse_from(["gossipchain", "--data-dir", "/tmp/x"]).unwrap();
        let config = cli.to_config().unwrap();
        assert_eq!(config.listen, vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()]);
        assert!(config.mdns);
        assert_eq!(config.params, NetworkParams::devnet());
        assert!(config.mine_threads >= 1);
        assert_eq!(config.min_relay_fee, None, "the network's default");
    }

    #[test]
    fn the_minimum_relay_fee_can_be_set() {
        let cli = Cli::try_parse_from(["gossipchain", "--data-dir", "/x", "--min-relay-fee", "7"])
            .unwrap();
        assert_eq!(cli.to_config().unwrap().min_relay_fee, Some(7));
        assert!(Cli::try_parse_from(["gossipchain", "--min-relay-fee", "-1"]).is_err());
    }

    #[test]
    fn repeated_flags_collect_and_options_apply() {
        let cli = Cli::try_parse_from([
            "gossipchain",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--listen",
            "/ip4/127.0.0.1/tcp/5000",
            "--peer",
            "/ip4/127.0.0.1/tcp/4001",
            "--no-mdns",
            "--network",
            "lab",
            "--difficulty",
            "8",
            "--json",
            "--mine-threads",
            "1",
        ])
        .unwrap();
        let config = cli.to_config().unwrap();
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.peers.len(), 1);
        assert!(!config.mdns);
        assert_eq!(config.params.name, "lab");
        assert_eq!(config.params.difficulty, 8);
        assert_eq!(config.mine_threads, 1);
        assert!(config.data_dir.ends_with("lab"));
    }

    #[test]
    fn the_http_api_is_on_by_default_on_loopback_and_flags_choose_or_disable_it() {
        let cli = Cli::try_parse_from(["gossipchain"]).unwrap();
        let http = cli.http_config().unwrap();
        assert_eq!(http.addr, DEFAULT_HTTP_ADDR);
        assert!(http.addr.ip().is_loopback());
        assert!(http.fallback);
        assert_eq!(http.token, None);
        let cli = Cli::try_parse_from([
            "gossipchain",
            "--http",
            "0.0.0.0:9000",
            "--http-token",
            "s3cret",
        ])
        .unwrap();
        let http = cli.http_config().unwrap();
        assert_eq!(http.addr, "0.0.0.0:9000".parse().unwrap());
        assert!(!http.fallback);
        assert_eq!(http.token.as_deref(), Some("s3cret"));
        let cli = Cli::try_parse_from(["gossipchain", "--no-http"]).unwrap();
        assert_eq!(cli.http_config(), None);
    }

    #[test]
    fn bad_http_flags_are_refused() {
        assert!(Cli::try_parse_from(["gossipchain", "--http", "localhost"]).is_err());
        assert!(Cli::try_parse_from(["gossipchain", "--http", "1.2.3.4:1", "--no-http"]).is_err());
        assert!(Cli::try_parse_from(["gossipchain", "--http-token", ""]).is_err());
        assert!(Cli::try_parse_from(["gossipchain", "--http-token", "a b"]).is_err());
    }

    #[test]
    fn maintenance_subcommands_take_the_directory_and_network_flags_on_either_side() {
        let cli = Cli::try_parse_from(["gossipchain", "--data-dir", "/tmp/x", "verify"]).unwrap();
        assert_eq!(cli.command, Some(Command::Verify));
        let cli = Cli::try_parse_from([
            "gossipchain",
            "reindex",
            "--data-dir",
            "/tmp/y",
            "--network",
            "lab",
            "--difficulty",
            "8",
        ])
        .unwrap();
        assert_eq!(cli.command, Some(Command::Reindex));
        let config = cli.to_config().unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(config.params.difficulty, 8);
        assert_eq!(Cli::try_parse_from(["gossipchain"]).unwrap().command, None);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Cli::try_parse_from(["gossipchain", "--listen", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["gossipchain", "--mine-threads", "0"]).is_err());
        let cli = Cli::try_parse_from(["gossipchain", "--difficulty", "99"]).unwrap();
        assert!(matches!(cli.to_config(), Err(CliError::Params(_))));
    }
}
