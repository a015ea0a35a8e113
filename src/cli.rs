//! Command-line flags and how they become a [`NodeConfig`].

use std::path::PathBuf;

use clap::Parser;
use libp2p::Multiaddr;

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
    #[arg(long, value_name = "DIR")]
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
    #[arg(long, value_name = "NAME", default_value = "devnet")]
    pub network: String,

    /// Proof-of-work difficulty in leading zero bits (part of the network's identity)
    #[arg(long, value_name = "BITS", default_value_t = DEFAULT_DIFFICULTY)]
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
    fn bad_values_are_refused() {
        assert!(Cli::try_parse_from(["gossipchain", "--listen", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["gossipchain", "--mine-threads", "0"]).is_err());
        let cli = Cli::try_parse_from(["gossipchain", "--difficulty", "99"]).unwrap();
        assert!(matches!(cli.to_config(), Err(CliError::Params(_))));
    }
}
