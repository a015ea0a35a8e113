//! The routes of the two Flask teaching chains gossipchain grew out of, with their request and
//! response shapes where they make sense for a signed, account-based chain.
//!
//! Rules it keeps: a transfer is always signed by this node's account, so a `sender` other than
//! its address is refused; a post (`/new_transaction`) is a zero-amount transfer from this
//! node's account to itself whose memo is the post's compact JSON ([`Post`]), and every
//! transaction whose memo is a post shows the post's `author`, `content` and `timestamp` the
//! way the second tutorial's app reads them; chains are answered in pages of at most
//! [`MAX_CHAIN_PAGE`] blocks; node URLs are resolved through the other node's API before any
//! dial starts, and a bad entry refuses the whole list.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::join_all;
use libp2p::Multiaddr;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::remote::{resolve_node_url, RemoteError};
use super::request::{clip, next_page, parse_address, parse_page, JsonBody};
use super::{timed, AppState, MINE_TIMEOUT, REQUEST_TIMEOUT};
use crate::ledger::Address;
use crate::node::command::MAX_CHAIN_PAGE;
use crate::node::event::{BlockView, Post, TxView};
use crate::node::BlockQuery;

/// How long `/nodes/resolve` waits for the peers' answers and the sync they start.
pub const RESOLVE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Most nodes one `/nodes/register` may name.
pub const MAX_REGISTER_NODES: usize = 16;

/// The seeds' routes: (read routes, control routes).
pub fn routes() -> (Router<AppState>, Router<AppState>) {
    let read = Router::new()
        .route("/chain", get(chain))
        .route("/nodes/resolve", get(resolve))
        .route("/pending_tx", get(pending_tx));
    let control = Router::new()
        .route("/transactions/new", post(new_transaction))
        .route("/new_transaction", post(new_post))
        .route("/nodes/register", post(register))
        .route("/register_with", post(register_with));
    let mine = Router::new().route("/mine", get(mine));
    (
        timed(read, REQUEST_TIMEOUT),
        timed(control, REQUEST_TIMEOUT).merge(timed(mine, MINE_TIMEOUT)),
    )
}

/// A transaction in the seeds' shape: `sender` (`null` for a block reward), `recipient`,
/// `amount`, plus what a signed transfer adds: its `memo` when it has one, and when the memo is
/// a [`Post`], the post's `author`, `content` and `timestamp` as the second tutorial stores them.
pub fn seed_tx(tx: &TxView) -> Value {
    let mut value = json!({
        "sender": tx.from,
        "recipient": tx.to,
        "amount": tx.amount,
        "fee": tx.fee,
        "nonce": tx.nonce,
        "txid": tx.txid,
        "coinbase": tx.coinbase,
    });
    if let (Some(memo), Value::Object(fields)) = (&tx.memo, &mut value) {
        fields.insert("memo".into(), json!(memo));
        if let Some(post) = Post::from_memo(memo) {
            fields.insert("author".into(), json!(post.author));
            fields.insert("content".into(), json!(post.content));
            fields.insert("timestamp".into(), json!(post.timestamp));
        }
    }
    value
}

/// A block in the seeds' shape: `index`, `timestamp` (milliseconds), `transactions`, `proof`
/// (the proof-of-work nonce), `previous_hash`, plus its own `hash` and `difficulty`.
pub fn seed_block(block: &BlockView) -> Value {
    json!({
        "index": block.height,
        "timestamp": block.timestamp,
        "transactions": block.transactions.iter().map(seed_tx).collect::<Vec<_>>(),
        "proof": block.nonce,
        "previous_hash": block.prev_hash,
        "hash": block.hash,
        "difficulty": block.difficulty,
    })
}

/// `POST /transactions/new` body.
#[derive(Debug, Deserialize)]
struct NewTransaction {
    /// This node's address, or left out.
    #[serde(default)]
    sender: Option<String>,
    recipient: String,
    amount: u64,
    #[serde(default)]
    fee: u64,
}

/// Whether `sender` names this node's account (`None` means it does).
fn check_sender(sender: Option<&str>, ours: Address) -> Result<(), ApiError> {
    match sender {
        None => Ok(()),
        Some(s) if s.parse::<Address>().is_ok_and(|a| a == ours) => Ok(()),
        Some(s) => Err(ApiError::BadRequest(format!(
            "sender must be this node's address {ours} or left out (a node signs transfers from its own account only), got '{}'",
            clip(s)
        ))),
    }
}

async fn new_transaction(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewTransaction>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let status = state.handle.status().await?;
    check_sender(body.sender.as_deref(), status.address)?;
    let recipient = parse_address(&body.recipient, "recipient")?;
    let txid = state
        .handle
        .submit_transfer(recipient, body.amount, body.fee)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": format!("Transaction will be added to Block {}", status.height + 1),
            "txid": txid,
            "sender": status.address,
            "recipient": recipient,
            "amount": body.amount,
            "fee": body.fee,
        })),
    ))
}

/// `POST /new_transaction` body: the second tutorial's post, plus an optional fee.
#[derive(Debug, Deserialize)]
struct NewPost {
    author: String,
    content: String,
    #[serde(default)]
    fee: u64,
}

async fn new_post(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewPost>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (txid, post) = state
        .handle
        .post(&body.author, &body.content, body.fee)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": "Success",
            "txid": txid,
            "author": post.author,
            "content": post.content,
            "timestamp": post.timestamp,
            "fee": body.fee,
        })),
    ))
}

async fn mine(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mined = state.handle.mine(1).await?;
    let block = state.handle.block(BlockQuery::Hash(mined.hash)).await?;
    let mut answer = serde_json::Map::new();
    answer.insert("message".into(), json!("New Block Forged"));
    if let Value::Object(fields) = seed_block(&block) {
        answer.extend(fields);
    }
    Ok(Json(Value::Object(answer)))
}

async fn chain(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let page = parse_page(query.as_deref())?;
    let found = state.handle.chain_range(page.from, page.limit).await?;
    Ok(Json(json!({
        "chain": found.blocks.iter().map(seed_block).collect::<Vec<_>>(),
        "length": found.length,
        "from": page.from,
        "limit": page.limit,
        "next": next_page(page, found.blocks.len(), found.length),
    })))
}

async fn pending_tx(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let txs = state.handle.mempool().await?;
    Ok(Json(Value::Array(txs.iter().map(seed_tx).collect())))
}

/// The seeds' resolve message.
fn resolve_message(replaced: bool) -> &'static str {
    if replaced {
        "Our chain was replaced"
    } else {
        "Our chain is authoritative"
    }
}

async fn resolve(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let round = state.handle.resolve_peers(RESOLVE_WAIT).await?;
    let length = round.height + 1;
    let from = length.saturating_sub(MAX_CHAIN_PAGE);
    let page = state.handle.chain_range(from, MAX_CHAIN_PAGE).await?;
    let blocks: Vec<Value> = page.blocks.iter().map(seed_block).collect();
    let key = if round.replaced { "new_chain" } else { "chain" };
    let mut answer = serde_json::Map::new();
    answer.insert("message".into(), json!(resolve_message(round.replaced)));
    answer.insert(key.into(), Value::Array(blocks));
    if let Value::Object(fields) = json!({
        "length": page.length,
        "from": from,
        "replaced": round.replaced,
        "old_tip": round.old_tip,
        "tip": round.tip,
        "peers_asked": round.asked,
        "peers_answered": round.answered,
        "syncing": round.syncing,
    }) {
        answer.extend(fields);
    }
    Ok(Json(Value::Object(answer)))
}

/// A node as `/nodes/register` and `/register_with` accept it: a multiaddr, or the
/// `http://host:port` URL of another gossipchain node's API.
async fn node_to_multiaddr(node: &str) -> Result<Multiaddr, ApiError> {
    if node.starts_with("http://") {
        return resolve_node_url(node).await.map_err(|e| match e {
            RemoteError::BadUrl(_) => ApiError::BadRequest(e.to_string()),
            _ => ApiError::Upstream(e.to_string()),
        });
    }
    if node.starts_with('/') {
        return node
            .parse::<Multiaddr>()
            .map_err(|e| ApiError::BadRequest(format!("bad multiaddr '{}': {e}", clip(node))));
    }
    Err(ApiError::BadRequest(format!(
        "'{}' is neither a multiaddr (/ip4/.../tcp/...) nor an http://host:port URL",
        clip(node)
    )))
}

/// `POST /nodes/register` body.
#[derive(Debug, Deserialize)]
struct Register {
    nodes: Vec<String>,
}

async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Register>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if body.nodes.is_empty() {
        return Err(ApiError::BadRequest(
            "Error: Please supply a valid list of nodes".into(),
        ));
    }
    if body.nodes.len() > MAX_REGISTER_NODES {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_REGISTER_NODES} nodes at a time"
        )));
    }
    let resolved = join_all(body.nodes.iter().map(|n| node_to_multiaddr(n))).await;
    let addrs = resolved.into_iter().collect::<Result<Vec<_>, _>>()?;
    for addr in &addrs {
        state.handle.dial(addr.clone()).await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": "New nodes have been added",
            "total_nodes": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })),
    ))
}

/// `POST /register_with` body.
#[derive(Debug, Deserialize)]
struct RegisterWith {
    node_address: String,
}

async fn register_with(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RegisterWith>,
) -> Result<Json<Value>, ApiError> {
    let addr = node_to_multiaddr(&body.node_address).await?;
    state.handle.dial(addr.clone()).await?;
    Ok(Json(json!({
        "message": "Registration successful",
        "address": addr.to_string(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_may_be_left_out_or_be_this_nodes_address_in_any_case() {
        let ours = Address([0xab; 20]);
        assert!(check_sender(None, ours).is_ok());
        assert!(check_sender(Some(&ours.to_string()), ours).is_ok());
        assert!(check_sender(Some(&ours.to_string().to_uppercase()), ours).is_ok());
    }

    #[test]
    fn another_sender_is_refused_naming_this_nodes_address() {
        let ours = Address([0xab; 20]);
        for other in [
            "d4ee26eee15148ee92c6cd394edd974e",
            &Address([1; 20]).to_string(),
        ] {
            let Err(ApiError::BadRequest(message)) = check_sender(Some(other), ours) else {
                panic!("{other} should be refused");
            };
            assert!(message.contains(&ours.to_string()), "{message}");
            assert!(message.contains(other), "{message}");
        }
    }

    #[test]
    fn resolve_says_whether_our_chain_was_replaced_in_the_seeds_words() {
        assert_eq!(resolve_message(true), "Our chain was replaced");
        assert_eq!(resolve_message(false), "Our chain is authoritative");
    }

    #[tokio::test]
    async fn nodes_are_multiaddrs_or_http_urls_and_anything_else_is_a_bad_request() {
        assert_eq!(
            node_to_multiaddr("/ip4/127.0.0.1/tcp/4001").await.unwrap(),
            "/ip4/127.0.0.1/tcp/4001".parse::<Multiaddr>().unwrap()
        );
        for bad in ["192.168.0.5:5000", "/ip4/nowhere", "http://:1", "ftp://x"] {
            assert!(
                matches!(node_to_multiaddr(bad).await, Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_transaction_whose_memo_is_a_post_shows_author_content_and_timestamp() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let net = crate::ledger::NetworkParams::devnet().network_id();
        let post = Post {
            author: "ada".into(),
            content: "first post".into(),
            timestamp: 1_767_225_600_123,
        };
        let own = crate::ledger::PublicKey(key.verifying_key().to_bytes()).address();
        let tx = crate::ledger::Transaction::sign_transfer_with_memo(
            &key,
            &net,
            own,
            0,
            1,
            0,
            post.to_memo().into_bytes(),
        );
        let v = seed_tx(&TxView::from(&tx));
        assert_eq!(v["author"], "ada");
        assert_eq!(v["content"], "first post");
        assert_eq!(v["timestamp"], 1_767_225_600_123u64);
        assert_eq!(v["memo"], post.to_memo());
        assert_eq!(v["amount"], 0);
        assert_eq!(v["sender"], v["recipient"]);

        let note = crate::ledger::Transaction::sign_transfer_with_memo(
            &key,
            &net,
            Address([2; 20]),
            3,
            1,
            1,
            b"rent".to_vec(),
        );
        let v = seed_tx(&TxView::from(&note));
        assert_eq!(v["memo"], "rent");
        assert!(v.get("author").is_none() && v.get("content").is_none());
        let plain =
            crate::ledger::Transaction::sign_transfer(&key, &net, Address([2; 20]), 3, 1, 2);
        assert!(seed_tx(&TxView::from(&plain)).get("memo").is_none());
    }

    #[test]
    fn a_seed_block_has_the_seeds_field_names() {
        let tx = crate::ledger::Transaction::coinbase(1, Address([1; 20]), 50);
        let block = BlockView {
            height: 1,
            hash: crate::ledger::BlockHash([2; 32]),
            prev_hash: crate::ledger::BlockHash([3; 32]),
            timestamp: 9,
            nonce: 42,
            difficulty: 10,
            transactions: vec![TxView::from(&tx)],
        };
        let v = seed_block(&block);
        assert_eq!(v["index"], 1);
        assert_eq!(v["proof"], 42);
        assert_eq!(v["previous_hash"], "03".repeat(32));
        assert!(v["transactions"][0]["sender"].is_null());
        assert_eq!(v["transactions"][0]["recipient"], "01".repeat(20));
        assert_eq!(v["transactions"][0]["amount"], 50);
    }
}
