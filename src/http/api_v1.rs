//! `/api/v1`: everything the console can do, as JSON, plus the node's events as Server-Sent
//! Events and the OpenAPI document that describes these routes.
//!
//! Rules it keeps: the answers are the console's `--json` objects (same views, same field
//! names); chain pages and mining counts have the bounds [`NodeHandle`](crate::node::NodeHandle)
//! enforces; each event stream holds one of [`MAX_EVENT_STREAMS`] permits while it is open.

use std::convert::Infallible;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use libp2p::Multiaddr;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::errors::ApiError;
use super::request::{
    clip, next_page, parse_address, parse_block_id, parse_page, JsonBody, OptionalJsonBody,
};
use super::{timed, AppState, MAX_EVENT_STREAMS, MINE_TIMEOUT, REQUEST_TIMEOUT};
use crate::node::event::{BalanceView, BlockView, MineView, StatusView};
use crate::node::explore::TreeView;

/// The OpenAPI 3 document of these routes, kept by hand next to them.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every `/api/v1` route as (method, path), read routes first; the OpenAPI document must
/// describe each (a test checks both this list against the router and the document against it).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/peers"),
    ("GET", "/api/v1/blocks/{id}"),
    ("GET", "/api/v1/chain"),
    ("GET", "/api/v1/account"),
    ("GET", "/api/v1/accounts/{address}"),
    ("GET", "/api/v1/mempool"),
    ("GET", "/api/v1/tree"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/transactions"),
    ("POST", "/api/v1/mine"),
    ("POST", "/api/v1/automine"),
    ("POST", "/api/v1/dial"),
];

/// The `/api/v1` routes: (read routes, control routes).
pub fn routes() -> (Router<AppState>, Router<AppState>) {
    let read = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/peers", get(peers))
        .route("/api/v1/blocks/{id}", get(block))
        .route("/api/v1/chain", get(chain))
        .route("/api/v1/account", get(own_account))
        .route("/api/v1/accounts/{address}", get(account))
        .route("/api/v1/mempool", get(mempool))
        .route("/api/v1/tree", get(tree))
        .route("/api/v1/events", get(events))
        .route("/api/v1/openapi.json", get(openapi));
    let control = Router::new()
        .route("/api/v1/transactions", post(send))
        .route("/api/v1/automine", post(automine))
        .route("/api/v1/dial", post(dial));
    let mine = Router::new().route("/api/v1/mine", post(mine));
    (
        timed(read, REQUEST_TIMEOUT),
        timed(control, REQUEST_TIMEOUT).merge(timed(mine, MINE_TIMEOUT)),
    )
}

async fn status(State(state): State<AppState>) -> Result<Json<StatusView>, ApiError> {
    Ok(Json(state.handle.status().await?))
}

async fn peers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let peers = state.handle.peers().await?;
    Ok(Json(json!({ "count": peers.len(), "peers": peers })))
}

async fn block(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BlockView>, ApiError> {
    let query = parse_block_id(&id)?;
    Ok(Json(state.handle.block(query).await?))
}

async fn chain(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let page = parse_page(query.as_deref())?;
    let found = state.handle.chain_range(page.from, page.limit).await?;
    Ok(Json(json!({
        "blocks": found.blocks,
        "length": found.length,
        "from": page.from,
        "limit": page.limit,
        "next": next_page(page, found.blocks.len(), found.length),
    })))
}

async fn own_account(State(state): State<AppState>) -> Result<Json<BalanceView>, ApiError> {
    Ok(Json(state.handle.balance(None).await?))
}

async fn account(
    State(state): State<AppState>,
    Path(address): Path<String>,
) -> Result<Json<BalanceView>, ApiError> {
    let address = parse_address(&address, "address")?;
    Ok(Json(state.handle.balance(Some(address)).await?))
}

async fn mempool(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let txs = state.handle.mempool().await?;
    Ok(Json(json!({ "count": txs.len(), "transactions": txs })))
}

/// How deep `/api/v1/tree` reaches below the tip when not told.
pub const DEFAULT_TREE_DEPTH: u64 = 32;

async fn tree(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<TreeView>, ApiError> {
    let depth = parse_depth(query.as_deref())?;
    Ok(Json(state.handle.tree(depth).await?))
}

/// The `depth` of a tree query (the only parameter), [`DEFAULT_TREE_DEPTH`] if absent.
fn parse_depth(query: Option<&str>) -> Result<u64, ApiError> {
    let mut depth = DEFAULT_TREE_DEPTH;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("depth", value)) => {
                depth = value.parse().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "depth must be a whole number, got '{}'",
                        clip(value)
                    ))
                })?;
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter '{}' (expected depth)",
                    clip(pair)
                )))
            }
        }
    }
    Ok(depth)
}

/// The node's events, one SSE `data:` line each, the very JSON objects `--json` prints.
async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let permit = state
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams(MAX_EVENT_STREAMS))?;
    let receiver = state.handle.subscribe();
    let stream = futures::stream::unfold((receiver, permit), |(mut receiver, permit)| async move {
        let item = match receiver.recv().await {
            Ok(event) => SseEvent::default().data(serde_json::to_string(&event).ok()?),
            Err(RecvError::Lagged(missed)) => {
                SseEvent::default().comment(format!("missed {missed} events"))
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(item), (receiver, permit)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// `POST /api/v1/transactions` body.
#[derive(Debug, Deserialize)]
struct Send {
    to: String,
    amount: u64,
    #[serde(default)]
    fee: u64,
    /// Up to 256 bytes of text signed with the transfer; left out for none.
    #[serde(default)]
    memo: Option<String>,
}

async fn send(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Send>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let to = parse_address(&body.to, "to")?;
    let txid = state
        .handle
        .submit_transfer_with_memo(to, body.amount, body.fee, body.memo.unwrap_or_default())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "txid": txid }))))
}

/// `POST /api/v1/mine` body (optional).
#[derive(Debug, Deserialize)]
struct Mine {
    count: u64,
}

impl Default for Mine {
    fn default() -> Self {
        Self { count: 1 }
    }
}

async fn mine(
    State(state): State<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<Mine>,
) -> Result<Json<MineView>, ApiError> {
    Ok(Json(state.handle.mine(body.count).await?))
}

/// `POST /api/v1/automine` body.
#[derive(Debug, Deserialize)]
struct Automine {
    on: bool,
}

async fn automine(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Automine>,
) -> Result<Json<Value>, ApiError> {
    let on = state.handle.set_automine(body.on).await?;
    Ok(Json(json!({ "automine": on })))
}

/// `POST /api/v1/dial` body.
#[derive(Debug, Deserialize)]
struct Dial {
    address: String,
}

async fn dial(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Dial>,
) -> Result<Json<Value>, ApiError> {
    let addr = body.address.parse::<Multiaddr>().map_err(|e| {
        ApiError::BadRequest(format!("bad multiaddr '{}': {e}", clip(&body.address)))
    })?;
    state.handle.dial(addr.clone()).await?;
    Ok(Json(json!({ "address": addr.to_string() })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::access::Policy;
    use crate::http::tests::{call, stopped_node_router};

    fn documented() -> Value {
        serde_json::from_str(OPENAPI).expect("the OpenAPI document is JSON")
    }

    #[tokio::test]
    async fn every_listed_route_is_served_by_the_router() {
        for (method, path) in ROUTES {
            let concrete = path
                .replace("{id}", "0")
                .replace("{address}", &"00".repeat(20));
            let app =
                stopped_node_router("127.0.0.1:5000", Policy::new([127, 0, 0, 1].into(), None));
            let (status, answer) = call(app, method, &concrete, "").await;
            let message = answer["error"].as_str().unwrap_or_default();
            assert!(
                !message.starts_with("no route") && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status} {answer}"
            );
        }
    }

    #[test]
    fn the_openapi_document_describes_every_route_and_no_other() {
        let doc = documented();
        assert!(doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."));
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            let operation = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not documented"))[method.to_lowercase()];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        let operations: usize = paths
            .values()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum();
        assert_eq!(
            operations,
            ROUTES.len(),
            "the document has routes the router has not"
        );
    }

    #[test]
    fn a_tree_depth_is_a_whole_number_and_the_only_parameter() {
        assert_eq!(parse_depth(None).ok(), Some(DEFAULT_TREE_DEPTH));
        assert_eq!(parse_depth(Some("depth=5")).ok(), Some(5));
        for bad in ["depth=-1", "depth=x", "deep=3", "depth"] {
            assert!(
                matches!(parse_depth(Some(bad)), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_tree_deeper_than_the_bound_is_a_400_naming_it() {
        let app = stopped_node_router("127.0.0.1:5000", Policy::new([127, 0, 0, 1].into(), None));
        let (status, answer) = call(app, "GET", "/api/v1/tree?depth=100000", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"], "depth must be 0 to 512");
    }

    #[test]
    fn every_schema_the_document_refers_to_exists() {
        let doc = documented();
        let text = OPENAPI;
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "schema {name} is missing"
            );
        }
    }
}
