//! Finding another gossipchain node from the URL of its HTTP API (`http://host:port`, as the
//! seeds register nodes): ask its `/api/v1/status` and pick a multiaddr we can dial.
//!
//! Rules it keeps: plain `http://` only; the connection, the request and the answer are each
//! bounded (time and bytes); the chosen multiaddr is on the host we reached when the node
//! listens there, so a node listening on every interface is dialed where we found it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::request::clip;

/// Longest the whole exchange with the other node may take.
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes read from the other node's answer.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Why a node URL could not be turned into a multiaddr.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Not an `http://host[:port]` URL.
    #[error("'{0}' is not an http://host:port URL")]
    BadUrl(String),
    /// The host name did not resolve.
    #[error("cannot resolve {0}")]
    Unresolved(String),
    /// Connecting, writing or reading failed.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("{0} did not answer within {secs} s", secs = REMOTE_TIMEOUT.as_secs())]
    Timeout(String),
    /// The answer was not a gossipchain status.
    #[error("{url} is not a gossipchain node API: {reason}")]
    NotANode {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// The `host:port` of an `http://` URL (a trailing path such as `/` is allowed and ignored).
///
/// # Errors
/// [`RemoteError::BadUrl`].
pub fn authority_of(url: &str) -> Result<String, RemoteError> {
    let bad = || RemoteError::BadUrl(clip(url));
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty()
        || authority.starts_with(':')
        || authority.contains('@')
        || authority.contains(char::is_whitespace)
    {
        return Err(bad());
    }
    let has_port = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => {
            port.parse::<u16>().map_err(|_| bad())?;
            true
        }
        _ => false,
    };
    Ok(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

/// The part of another node's status we need.
#[derive(Debug, Deserialize)]
struct RemoteStatus {
    peer_id: String,
    listen: Vec<String>,
}

/// The address to dial among `listen` (the other node's listen addresses): one on `reached`
/// (the IP we reached its API on), else an unspecified one with `reached` put in, else the
/// first; with `/p2p/<peer>` appended.
pub fn choose_dial_addr(listen: &[Multiaddr], reached: IpAddr, peer: PeerId) -> Option<Multiaddr> {
    let ip_of = |addr: &Multiaddr| match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => Some(IpAddr::V4(ip)),
        Some(Protocol::Ip6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    let same_host = listen.iter().find(|a| ip_of(a) == Some(reached)).cloned();
    let unspecified = || {
        listen
            .iter()
            .find(|a| ip_of(a).is_some_and(|ip| ip.is_unspecified()))
            .map(|a| {
                let host = match reached {
                    IpAddr::V4(ip) => Protocol::Ip4(ip),
                    IpAddr::V6(ip) => Protocol::Ip6(ip),
                };
                a.iter()
                    .skip(1)
                    .fold(Multiaddr::empty().with(host), |m, p| m.with(p))
            })
    };
    let chosen = same_host
        .or_else(unspecified)
        .or_else(|| listen.first().cloned())?;
    Some(chosen.with(Protocol::P2p(peer)))
}

/// Asks the gossipchain node whose API is at `url` for its status and returns a multiaddr to
/// dial it at.
///
/// # Errors
/// [`RemoteError`] naming what failed.
pub async fn resolve_node_url(url: &str) -> Result<Multiaddr, RemoteError> {
    tokio::time::timeout(REMOTE_TIMEOUT, fetch(url))
        .await
        .map_err(|_| RemoteError::Timeout(clip(url)))?
}

async fn fetch(url: &str) -> Result<Multiaddr, RemoteError> {
    let authority = authority_of(url)?;
    let target: SocketAddr = tokio::net::lookup_host(&authority)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| RemoteError::Unresolved(clip(&authority)))?;
    let unreachable = |e: std::io::Error| RemoteError::Unreachable {
        url: clip(url),
        reason: e.to_string(),
    };
    let mut stream = TcpStream::connect(target).await.map_err(unreachable)?;
    let request = format!(
        "GET /api/v1/status HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(unreachable)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
        .await
        .map_err(unreachable)?;
    let not_a_node = |reason: String| RemoteError::NotANode {
        url: clip(url),
        reason,
    };
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| not_a_node("no HTTP answer".into()))?;
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(not_a_node(format!("answered '{}'", clip(status_line))));
    }
    let status: RemoteStatus =
        serde_json::from_str(body).map_err(|e| not_a_node(format!("bad status: {e}")))?;
    let peer: PeerId = status
        .peer_id
        .parse()
        .map_err(|_| not_a_node("bad peer id".into()))?;
    let listen: Vec<Multiaddr> = status
        .listen
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    choose_dial_addr(&listen, target.ip(), peer)
        .ok_or_else(|| not_a_node("it listens on no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn node_urls_are_http_host_and_port_with_an_optional_path() {
        assert_eq!(
            authority_of("http://127.0.0.1:5001").unwrap(),
            "127.0.0.1:5001"
        );
        assert_eq!(
            authority_of("http://127.0.0.1:5001/").unwrap(),
            "127.0.0.1:5001"
        );
        assert_eq!(authority_of("http://[::1]:5001/x").unwrap(), "[::1]:5001");
        assert_eq!(authority_of("http://localhost").unwrap(), "localhost:80");
        for bad in [
            "127.0.0.1:5001",
            "https://127.0.0.1:5001",
            "http://",
            "http://:5001",
            "http://a:b",
            "http://u@h:1",
            "http://h:99999",
        ] {
            assert!(authority_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_dial_address_is_on_the_host_the_api_was_reached_on() {
        let peer = PeerId::random();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let listen = addrs(&["/ip4/10.0.0.5/tcp/4001", "/ip4/127.0.0.1/tcp/4001"]);
        assert_eq!(
            choose_dial_addr(&listen, loopback, peer).unwrap(),
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
                .parse()
                .unwrap()
        );
        let everywhere = addrs(&["/ip4/0.0.0.0/tcp/4002"]);
        assert_eq!(
            choose_dial_addr(&everywhere, loopback, peer).unwrap(),
            format!("/ip4/127.0.0.1/tcp/4002/p2p/{peer}")
                .parse()
                .unwrap()
        );
        let elsewhere = addrs(&["/ip4/10.0.0.5/tcp/4003"]);
        assert_eq!(
            choose_dial_addr(&elsewhere, loopback, peer).unwrap(),
            format!("/ip4/10.0.0.5/tcp/4003/p2p/{peer}")
                .parse()
                .unwrap()
        );
        assert_eq!(choose_dial_addr(&[], loopback, peer), None);
    }
}
