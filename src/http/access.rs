//! Who may use the routes that spend the node's coins, mine or dial ("control" routes).
//!
//! Rules it keeps: read routes are open to whoever can reach the API; control routes need
//! `Authorization: Bearer TOKEN` when the node has a token, and otherwise a loopback client;
//! a node serving a non-loopback address without a token serves no control route at all.
//! [`decide`] is the whole rule, without I/O, so it can be tested with any address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;

/// What the access rule knows about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The bearer token control routes need, if the node was given one.
    pub token: Option<String>,
    /// True when control routes are not served at all.
    pub read_only: bool,
}

impl Policy {
    /// The rule for a server bound to `bind` with an optional token: read-only when the address
    /// is not loopback and there is no token.
    pub fn new(bind: IpAddr, token: Option<String>) -> Self {
        let read_only = token.is_none() && !is_loopback(bind);
        Self { token, read_only }
    }
}

/// Why a control route was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server runs read-only.
    #[error("this node serves read-only routes only: its HTTP address is not loopback and it has no --http-token")]
    ReadOnly,
    /// No token is configured and the client is not on this machine.
    #[error("this route is served to loopback clients only (start the node with --http-token to allow others)")]
    NotLoopback,
    /// The node has a token and the request carries none.
    #[error("this route needs an Authorization: Bearer token")]
    MissingToken,
    /// The request's token is not the node's.
    #[error("the bearer token is wrong")]
    BadToken,
}

impl Refusal {
    /// 401 when a token would help, 403 otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::MissingToken | Refusal::BadToken => StatusCode::UNAUTHORIZED,
            Refusal::ReadOnly | Refusal::NotLoopback => StatusCode::FORBIDDEN,
        }
    }
}

/// Loopback, counting IPv4 addresses mapped into IPv6.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Compares two byte strings in time that depends on their lengths only.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a control route may be served to `client`, which sent `authorization` (the
/// `Authorization` header's value, if any).
///
/// # Errors
/// The [`Refusal`] naming the rule that failed.
pub fn decide(policy: &Policy, client: IpAddr, authorization: Option<&str>) -> Result<(), Refusal> {
    if policy.read_only {
        return Err(Refusal::ReadOnly);
    }
    match &policy.token {
        Some(token) => {
            let presented = authorization
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or(Refusal::MissingToken)?;
            if same_secret(presented.trim().as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(Refusal::BadToken)
            }
        }
        None if is_loopback(client) => Ok(()),
        None => Err(Refusal::NotLoopback),
    }
}

/// Middleware in front of the control routes: applies [`decide`].
pub async fn guard(
    State(policy): State<Arc<Policy>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match decide(&policy, client.ip(), authorization) {
        Ok(()) => next.run(request).await,
        Err(refusal) => ApiError::from(refusal).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const LAN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 20));

    fn policy(bind: IpAddr, token: Option<&str>) -> Policy {
        Policy::new(bind, token.map(str::to_string))
    }

    #[test]
    fn without_a_token_a_loopback_server_serves_control_routes_to_loopback_clients_only() {
        let p = policy(LOOPBACK, None);
        assert!(!p.read_only);
        assert_eq!(decide(&p, LOOPBACK, None), Ok(()));
        assert_eq!(decide(&p, "::1".parse().unwrap(), None), Ok(()));
        assert_eq!(
            decide(&p, "::ffff:127.0.0.1".parse().unwrap(), None),
            Ok(())
        );
        assert_eq!(decide(&p, LAN, None), Err(Refusal::NotLoopback));
        assert_eq!(decide(&p, LAN, Some("Bearer x")), Err(Refusal::NotLoopback));
    }

    #[test]
    fn a_non_loopback_server_without_a_token_is_read_only_even_for_loopback_clients() {
        for bind in [LAN, "0.0.0.0".parse().unwrap(), "::".parse().unwrap()] {
            let p = policy(bind, None);
            assert!(p.read_only, "{bind}");
            assert_eq!(decide(&p, LOOPBACK, None), Err(Refusal::ReadOnly));
            assert_eq!(decide(&p, LAN, None), Err(Refusal::ReadOnly));
        }
    }

    #[test]
    fn with_a_token_every_client_needs_the_matching_bearer_token() {
        for bind in [LOOPBACK, LAN] {
            let p = policy(bind, Some("s3cret"));
            assert!(!p.read_only);
            for client in [LOOPBACK, LAN] {
                assert_eq!(decide(&p, client, Some("Bearer s3cret")), Ok(()));
                assert_eq!(decide(&p, client, None), Err(Refusal::MissingToken));
                assert_eq!(
                    decide(&p, client, Some("s3cret")),
                    Err(Refusal::MissingToken)
                );
                assert_eq!(
                    decide(&p, client, Some("Basic s3cret")),
                    Err(Refusal::MissingToken)
                );
                assert_eq!(
                    decide(&p, client, Some("Bearer s3cre")),
                    Err(Refusal::BadToken)
                );
                assert_eq!(
                    decide(&p, client, Some("Bearer s3cret2")),
                    Err(Refusal::BadToken)
                );
            }
        }
    }

    #[test]
    fn refusals_are_401_when_a_token_would_help_and_403_otherwise() {
        assert_eq!(Refusal::MissingToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Refusal::BadToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Refusal::NotLoopback.status(), StatusCode::FORBIDDEN);
        assert_eq!(Refusal::ReadOnly.status(), StatusCode::FORBIDDEN);
    }
}
