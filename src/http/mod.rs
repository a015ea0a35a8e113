//! The HTTP front end: the seeds' routes, a versioned REST API with an event stream, and its
//! OpenAPI document, served by axum on the node's runtime and talking to the node only
//! through [`NodeHandle`], as the console does.
//!
//! Rules it keeps: bodies are capped at [`MAX_BODY_BYTES`]; every request is answered within
//! its route's timeout ([`REQUEST_TIMEOUT`], or [`MINE_TIMEOUT`] for mining); every error is
//! JSON `{"error": message}` with its status; routes that spend, mine or dial pass the
//! [`access`] rule first; event streams are capped at [`MAX_EVENT_STREAMS`] and connections at
//! [`listener::MAX_CONNECTIONS`].
//!
//! Layout:
//! - [`seeds`]: the Flask teaching chains' routes (`/transactions/new`, `/mine`, `/chain`, ...)
//! - [`api_v1`]: `/api/v1`, everything the console can do, the event stream, the OpenAPI document
//! - [`explorer`]: the live explorer page at `/` (embedded assets) and `/metrics`
//! - [`request`]: bodies, queries and ids parsed into typed values
//! - [`errors`]: the error type and its status codes
//! - [`access`]: who may use the control routes
//! - [`remote`]: another node's multiaddr from the URL of its API
//! - [`listener`]: the TCP listener with a cap on open connections

pub mod access;
pub mod api_v1;
pub mod errors;
pub mod explorer;
pub mod listener;
pub mod remote;
pub mod request;
pub mod seeds;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::node::NodeHandle;
use access::Policy;
use errors::ApiError;
use listener::{BoundedListener, MAX_CONNECTIONS};
use request::clip;

/// Where the API listens unless told otherwise: loopback, so only this machine can reach it.
pub const DEFAULT_HTTP_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8645);

/// Largest request body; a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest an ordinary request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a mining request may take (the blocks mined meanwhile stay mined).
pub const MINE_TIMEOUT: Duration = Duration::from_secs(600);

/// Most event streams open at once.
pub const MAX_EVENT_STREAMS: usize = 32;

/// How the API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Whether to take a free port on the same IP when `addr`'s port is taken.
    pub fallback: bool,
    /// Bearer token for the control routes.
    pub token: Option<String>,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listening socket could not be opened.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
}

/// A running API, as [`start`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its base URL.
    pub url: String,
    /// True when control routes are not served (non-loopback address, no token).
    pub read_only: bool,
    /// The address asked for, when it was taken and a free port was used instead.
    pub fell_back_from: Option<SocketAddr>,
}

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The node.
    pub handle: NodeHandle,
    /// Permits for open event streams.
    pub streams: Arc<Semaphore>,
}

/// Listens on `config.addr` (or a free port, see [`HttpConfig::fallback`]) and serves the API
/// on the current runtime until the process ends.
///
/// # Errors
/// [`HttpError::Bind`] when no socket could be opened.
pub async fn start(config: HttpConfig, handle: NodeHandle) -> Result<HttpServer, HttpError> {
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })
    };
    let (listener, fell_back_from) = match bind(config.addr).await {
        Ok(listener) => (listener, None),
        Err(HttpError::Bind { source, .. })
            if config.fallback && source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            let any_port = SocketAddr::new(config.addr.ip(), 0);
            (bind(any_port).await?, Some(config.addr))
        }
        Err(e) => return Err(e),
    };
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: config.addr,
        source,
    })?;
    let policy = Policy::new(addr.ip(), config.token);
    let read_only = policy.read_only;
    let app = router(handle, policy).into_make_service_with_connect_info::<SocketAddr>();
    // Small JSON answers should not wait for Nagle's algorithm.
    let listener = BoundedListener::new(listener, MAX_CONNECTIONS).tap_io(|io| {
        let _ = io.stream.set_nodelay(true);
    });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            warn!(%error, "HTTP API stopped");
        }
    });
    Ok(HttpServer {
        addr,
        url: format!("http://{addr}"),
        read_only,
        fell_back_from,
    })
}

/// Every route, with the body cap, the timeouts, the access rule and JSON fallbacks.
pub fn router(handle: NodeHandle, policy: Policy) -> Router {
    let state = AppState {
        handle,
        streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
    };
    let (seed_read, seed_control) = seeds::routes();
    let (v1_read, v1_control) = api_v1::routes();
    let control = seed_control
        .merge(v1_control)
        .layer(middleware::from_fn_with_state(
            Arc::new(policy),
            access::guard,
        ));
    seed_read
        .merge(v1_read)
        .merge(timed(explorer::routes(), REQUEST_TIMEOUT))
        .merge(control)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `router` with every request bounded by `limit`.
pub(crate) fn timed(router: Router<AppState>, limit: Duration) -> Router<AppState> {
    router.layer(middleware::from_fn_with_state(limit, bounded))
}

async fn bounded(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", clip(uri.path())))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: clip(uri.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::StatusCode;
    use serde_json::Value;
    use tokio::sync::{broadcast, mpsc};
    use tower::ServiceExt;

    /// A router over a node that has stopped, for a client at `client`.
    pub(crate) fn stopped_node_router(client: &str, policy: Policy) -> Router {
        let (commands, queue) = mpsc::channel(1);
        drop(queue);
        let (events, _) = broadcast::channel(1);
        let client: SocketAddr = client.parse().expect("a socket address");
        router(NodeHandle::new(commands, events), policy).layer(MockConnectInfo(client))
    }

    /// Sends one request and returns the status and the JSON body (Null if none).
    pub(crate) async fn call(
        app: Router,
        method: &str,
        path: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(body.into())
            .expect("a request");
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn open() -> Policy {
        Policy::new(DEFAULT_HTTP_ADDR.ip(), None)
    }

    #[tokio::test]
    async fn an_unknown_route_is_a_json_404_naming_it() {
        let app = stopped_node_router("127.0.0.1:5000", open());
        let (status, body) = call(app, "GET", "/nowhere", Body::empty()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no route for GET /nowhere");
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_json_405() {
        let app = stopped_node_router("127.0.0.1:5000", open());
        let (status, body) = call(app, "GET", "/transactions/new", Body::empty()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body["error"].as_str().unwrap_or_default().contains("GET"));
    }

    #[tokio::test]
    async fn a_stopped_node_is_a_503_on_every_kind_of_route() {
        for (method, path, body) in [
            ("GET", "/api/v1/status", ""),
            ("GET", "/chain", ""),
            ("GET", "/mine", ""),
            ("POST", "/api/v1/mine", ""),
            (
                "POST",
                "/api/v1/transactions",
                r#"{"to":"0000000000000000000000000000000000000000","amount":1}"#,
            ),
        ] {
            let app = stopped_node_router("127.0.0.1:5000", open());
            let (status, answer) = call(app, method, path, body.to_string()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {path}");
            assert_eq!(answer["error"], "node has stopped", "{method} {path}");
        }
    }

    #[tokio::test]
    async fn bad_bodies_are_400_and_oversized_ones_413_before_the_node_is_asked() {
        for (body, needle) in [
            ("{", "bad JSON body"),
            ("", "expected a JSON body"),
            (r#"{"amount":1}"#, "missing field `to`"),
            (
                r#"{"to":"0000000000000000000000000000000000000000","amount":"1"}"#,
                "invalid type",
            ),
            (r#"{"to":"nobody","amount":1}"#, "to must be an address"),
        ] {
            let app = stopped_node_router("127.0.0.1:5000", open());
            let (status, answer) =
                call(app, "POST", "/api/v1/transactions", body.to_string()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let message = answer["error"].as_str().unwrap_or_default();
            assert!(message.contains(needle), "{body}: {message}");
        }
        let app = stopped_node_router("127.0.0.1:5000", open());
        let huge = format!(r#"{{"to":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        let (status, answer) = call(app, "POST", "/api/v1/transactions", huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer["error"], "request body is larger than 65536 bytes");
    }

    #[tokio::test]
    async fn control_routes_refuse_a_remote_client_and_read_routes_do_not() {
        let app = stopped_node_router("192.168.1.20:5000", open());
        let (status, answer) = call(app, "GET", "/mine", Body::empty()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("loopback"));
        let app = stopped_node_router("192.168.1.20:5000", open());
        let (status, _) = call(app, "GET", "/chain", Body::empty()).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "served, but the node stopped"
        );
    }

    #[tokio::test]
    async fn a_read_only_server_refuses_control_routes_even_to_loopback_clients() {
        let policy = Policy::new("0.0.0.0".parse().unwrap(), None);
        let app = stopped_node_router("127.0.0.1:5000", policy);
        let (status, answer) = call(app, "POST", "/api/v1/mine", Body::empty()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("read-only"));
    }

    #[tokio::test]
    async fn a_request_that_outlasts_its_timeout_is_answered_504_in_json() {
        let slow = Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let state = AppState {
            handle: NodeHandle::new(mpsc::channel(1).0, broadcast::channel(1).0),
            streams: Arc::new(Semaphore::new(1)),
        };
        let app = timed(slow, Duration::from_millis(50)).with_state(state);
        let (status, body) = call(app, "GET", "/slow", Body::empty()).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body["error"], "no answer within 50ms");
    }

    #[tokio::test]
    async fn event_streams_over_the_cap_are_answered_503_until_one_closes() {
        let app = stopped_node_router("127.0.0.1:5000", open());
        let mut open_streams = Vec::new();
        for _ in 0..MAX_EVENT_STREAMS {
            let request = axum::http::Request::builder()
                .uri("/api/v1/events")
                .body(Body::empty())
                .expect("a request");
            let response = app.clone().oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), StatusCode::OK);
            open_streams.push(response);
        }
        let (status, body) = call(app.clone(), "GET", "/api/v1/events", Body::empty()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body["error"],
            "too many event streams are open (at most 32)"
        );
        open_streams.pop();
        let request = axum::http::Request::builder()
            .uri("/api/v1/events")
            .body(Body::empty())
            .expect("a request");
        let response = app.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_taken_default_port_falls_back_to_a_free_one_and_an_explicit_one_fails() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let (commands, _queue) = mpsc::channel(1);
        let (events, _) = broadcast::channel(1);
        let handle = NodeHandle::new(commands, events);
        let config = HttpConfig {
            addr,
            fallback: true,
            token: None,
        };
        let server = start(config.clone(), handle.clone()).await.unwrap();
        assert_eq!(server.fell_back_from, Some(addr));
        assert_ne!(server.addr.port(), addr.port());
        assert_eq!(server.url, format!("http://{}", server.addr));
        assert!(!server.read_only);
        let strict = HttpConfig {
            fallback: false,
            ..config
        };
        assert!(matches!(
            start(strict, handle).await,
            Err(HttpError::Bind { .. })
        ));
    }
}
