//! The HTTP API of a real node, driven over real HTTP: the seeds' curl workflows as their
//! READMEs show them, `/api/v1` against the console, bad requests of every kind, the event
//! stream, and the token rule.

mod common;
#[path = "common/http_client.rs"]
mod http_client;

use std::time::Duration;

use common::{eventually, unique_network, NodeOptions, TestNode};
use http_client::{get, post_json, send_raw, EventStream, HTTP_TIMEOUT};
use serde_json::Value;

/// An address nobody holds the key of.
const STRANGER: &str = "0badc0ffee0badc0ffee0badc0ffee0badc0ffee";

/// The seed README's sender, which is no gossipchain address.
const SEED_SENDER: &str = "d4ee26eee15148ee92c6cd394edd974e";

fn start(label: &str, network: &str) -> (TestNode, String) {
    let mut node = TestNode::start(label, NodeOptions::loopback(network));
    let url = node.http_url();
    (node, url)
}

/// Fails with the node's output unless `response` has `status`.
#[track_caller]
fn expect(node: &TestNode, what: &str, response: &http_client::Response, status: u16) -> Value {
    if response.status != status {
        node.fail(&format!(
            "{what}: expected {status}, got {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        ));
    }
    response.json()
}

#[track_caller]
fn assert_stdout_is_json_only(node: &mut TestNode) {
    node.drain();
    assert!(
        node.non_json_lines().is_empty(),
        "{}: stdout lines that are not JSON: {:?}",
        node.label,
        node.non_json_lines()
    );
}

#[test]
fn the_first_seeds_curl_workflow_runs_against_a_node() {
    let network = unique_network("http-seed");
    let (mut node, url) = start("seed", &network);
    let ours = node.address();

    // GET /chain: the seed's {chain, length}, starting at the genesis block.
    let chain = expect(&node, "GET /chain", &get(&url, "/chain"), 200);
    assert_eq!(chain["length"], 1);
    assert_eq!(chain["chain"][0]["index"], 0);

    // The seed README's transaction names a sender that is not this node: refused, clearly.
    let seed_tx = format!(
        r#"{{"sender": "{SEED_SENDER}", "recipient": "someone-other-address", "amount": 5}}"#
    );
    let refused = post_json(&url, "/transactions/new", &seed_tx);
    let error = expect(&node, "foreign sender", &refused, 400)["error"].to_string();
    assert!(
        error.contains(&ours) && error.contains(SEED_SENDER),
        "{error}"
    );

    // GET /mine: "New Block Forged", with the seed's fields.
    let mined = expect(&node, "GET /mine", &get(&url, "/mine"), 200);
    assert_eq!(mined["message"], "New Block Forged");
    assert_eq!(mined["index"], 1);
    assert_eq!(mined["previous_hash"], chain["chain"][0]["hash"]);
    assert!(mined["proof"].is_u64());
    assert_eq!(mined["transactions"][0]["recipient"], ours.as_str());
    assert!(
        mined["transactions"][0]["sender"].is_null(),
        "the reward has no sender"
    );

    // POST /transactions/new from this node's account (sender given or left out).
    let body = format!(r#"{{"sender": "{ours}", "recipient": "{STRANGER}", "amount": 5}}"#);
    let added = expect(
        &node,
        "POST /transactions/new",
        &post_json(&url, "/transactions/new", &body),
        201,
    );
    assert_eq!(added["message"], "Transaction will be added to Block 2");
    let txid = added["txid"].as_str().unwrap_or_default().to_string();
    let body = format!(r#"{{"recipient": "{STRANGER}", "amount": 3, "fee": 1}}"#);
    let second = expect(
        &node,
        "no sender",
        &post_json(&url, "/transactions/new", &body),
        201,
    );

    // The second tutorial's GET /pending_tx lists both.
    let pending = expect(&node, "GET /pending_tx", &get(&url, "/pending_tx"), 200);
    let pending_ids: Vec<&str> = pending
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["txid"].as_str()).collect())
        .unwrap_or_default();
    assert!(pending_ids.contains(&txid.as_str()), "{pending}");
    assert!(pending_ids.contains(&second["txid"].as_str().unwrap_or_default()));

    let mined = expect(&node, "GET /mine", &get(&url, "/mine"), 200);
    assert_eq!(mined["index"], 2);
    let in_block: Vec<&str> = mined["transactions"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["txid"].as_str()).collect())
        .unwrap_or_default();
    assert!(in_block.contains(&txid.as_str()), "{mined}");

    // GET /chain: three blocks linked by previous_hash; and a page of it.
    let chain = expect(&node, "GET /chain", &get(&url, "/chain"), 200);
    assert_eq!(chain["length"], 3);
    assert!(chain["next"].is_null());
    for i in 1..3 {
        assert_eq!(
            chain["chain"][i]["previous_hash"],
            chain["chain"][i - 1]["hash"]
        );
    }
    let page = expect(&node, "a page", &get(&url, "/chain?from=1&limit=1"), 200);
    assert_eq!(page["length"], 3);
    assert_eq!(page["chain"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["chain"][0]["index"], 1);
    assert_eq!(page["next"], 2);
    let past = expect(&node, "past the tip", &get(&url, "/chain?from=9"), 200);
    assert_eq!(past["chain"].as_array().map(Vec::len), Some(0));

    // The console sees what HTTP did.
    assert_eq!(node.balance_of(STRANGER), 8);
    assert_eq!(node.height(), 2);
    assert_stdout_is_json_only(&mut node);
}

#[test]
fn two_nodes_registered_through_the_seeds_routes_agree_after_resolve() {
    let network = unique_network("http-register");
    let (mut a, a_url) = start("a", &network);
    let (mut b, b_url) = start("b", &network);
    let (mut c, c_url) = start("c", &network);
    a.mine(3);
    b.mine(1);
    let a_tip = a.tip();
    let a_peer = a.peer_id();

    // POST /nodes/register with the other node's URL, as the seed README does.
    let body = format!(r#"{{"nodes": ["{a_url}/"]}}"#);
    let added = expect(
        &b,
        "register",
        &post_json(&b_url, "/nodes/register", &body),
        201,
    );
    assert_eq!(added["message"], "New nodes have been added");
    let dialed = added["total_nodes"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(dialed.starts_with("/ip4/127.0.0.1/tcp/"), "{added}");
    assert!(dialed.ends_with(&format!("/p2p/{a_peer}")), "{added}");

    // GET /nodes/resolve until B reports A's chain; then both agree.
    let resolved = eventually("b resolves to a's chain", Duration::from_secs(30), || {
        let r = get(&b_url, "/nodes/resolve");
        let v = r.json();
        (r.status == 200 && v["tip"] == a_tip.as_str()).then_some(v)
    });
    assert_eq!(resolved["peers_asked"], 1, "{resolved}");
    assert_eq!(resolved["length"], 4);
    let key = if resolved["replaced"] == true {
        "new_chain"
    } else {
        "chain"
    };
    assert!(
        ["Our chain was replaced", "Our chain is authoritative"]
            .contains(&resolved["message"].as_str().unwrap_or_default()),
        "{resolved}"
    );
    assert_eq!(resolved[key][3]["hash"], a_tip.as_str());
    let again = expect(&b, "resolve again", &get(&b_url, "/nodes/resolve"), 200);
    assert_eq!(again["message"], "Our chain is authoritative");
    assert_eq!(again["replaced"], false);
    assert_eq!(b.tip(), a_tip);

    // The second tutorial's POST /register_with, by URL, reaches the same chain.
    let body = format!(r#"{{"node_address": "{a_url}"}}"#);
    let registered = expect(
        &c,
        "register_with",
        &post_json(&c_url, "/register_with", &body),
        200,
    );
    assert_eq!(registered["message"], "Registration successful");
    c.wait_until(|s| s["tip"] == a_tip.as_str(), Duration::from_secs(30));

    // A multiaddr works as a node too.
    let body = format!(r#"{{"nodes": ["{}"]}}"#, c.dial_addr());
    expect(
        &b,
        "register a multiaddr",
        &post_json(&b_url, "/nodes/register", &body),
        201,
    );
    b.wait_until(|s| s["peers"].as_u64() >= Some(2), Duration::from_secs(30));
    for node in [&mut a, &mut b, &mut c] {
        assert_stdout_is_json_only(node);
    }
}

/// The txids of a list of seed-shaped transactions.
fn txids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|txs| {
            txs.iter()
                .filter_map(|t| t["txid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_second_tutorials_posts_are_recorded_mined_shown_and_gossiped_to_a_second_node() {
    let network = unique_network("http-posts");
    let (mut a, a_url) = start("a", &network);
    let (mut b, b_url) = start("b", &network);
    let ours = a.address();
    let body = format!(r#"{{"node_address": "{a_url}"}}"#);
    expect(
        &b,
        "register_with",
        &post_json(&b_url, "/register_with", &body),
        200,
    );
    a.wait_until(|s| s["peers"].as_u64() >= Some(1), Duration::from_secs(30));
    b.wait_until(|s| s["peers"].as_u64() >= Some(1), Duration::from_secs(30));

    // POST /new_transaction {author, content}, as the tutorial's app does: a post from this
    // node's account, though it holds no coins (a post moves none and this one pays fee 0).
    let posted = expect(
        &a,
        "POST /new_transaction",
        &post_json(
            &a_url,
            "/new_transaction",
            r#"{"author": "ada", "content": "hello, \"chain\" é"}"#,
        ),
        201,
    );
    assert_eq!(posted["message"], "Success");
    assert_eq!(posted["author"], "ada");
    let txid = posted["txid"].as_str().unwrap_or_default().to_string();
    let stamped = posted["timestamp"].as_u64().unwrap_or_default();
    assert!(stamped > 1_767_225_600_000, "{posted}");

    // GET /pending_tx shows it the way the tutorial stores it: author, content, timestamp.
    let pending = expect(&a, "GET /pending_tx", &get(&a_url, "/pending_tx"), 200);
    assert_eq!(txids(&pending), vec![txid.clone()], "{pending}");
    let post = &pending[0];
    assert_eq!(post["author"], "ada");
    assert_eq!(post["content"], "hello, \"chain\" é");
    assert_eq!(post["timestamp"], stamped);
    assert_eq!(post["amount"], 0);
    assert_eq!(
        (post["sender"].as_str(), post["recipient"].as_str()),
        (Some(ours.as_str()), Some(ours.as_str()))
    );

    // The post reaches the second node by gossip: its mempool takes it.
    let theirs = eventually(
        "b's mempool holds the post",
        Duration::from_secs(30),
        || {
            let v = get(&b_url, "/pending_tx").json();
            txids(&v).contains(&txid).then_some(v)
        },
    );
    assert_eq!(theirs[0]["content"], "hello, \"chain\" é");

    // GET /mine puts it in a block; GET /chain shows it there and /pending_tx is empty.
    let mined = expect(&a, "GET /mine", &get(&a_url, "/mine"), 200);
    assert_eq!(mined["transactions"][1]["txid"], txid.as_str(), "{mined}");
    let chain = expect(&a, "GET /chain", &get(&a_url, "/chain"), 200);
    let in_block = &chain["chain"][1]["transactions"][1];
    assert_eq!(in_block["author"], "ada", "{chain}");
    assert_eq!(in_block["content"], "hello, \"chain\" é");
    assert_eq!(in_block["timestamp"], stamped);
    let pending = expect(&a, "GET /pending_tx", &get(&a_url, "/pending_tx"), 200);
    assert!(txids(&pending).is_empty(), "{pending}");

    // The second node takes the block, and shows the post in its chain too.
    let tip = a.tip();
    b.wait_until(|s| s["tip"] == tip.as_str(), Duration::from_secs(30));
    let chain = expect(&b, "b's GET /chain", &get(&b_url, "/chain"), 200);
    assert_eq!(
        chain["chain"][1]["transactions"][1]["author"], "ada",
        "{chain}"
    );

    // Bad posts: empty fields, a missing field, and a post over the memo cap, each a 400.
    for (body, says) in [
        (r#"{"author": "", "content": "x"}"#, "author"),
        (r#"{"author": "ada", "content": "  "}"#, "content"),
        (r#"{"author": "ada"}"#, "content"),
    ] {
        let refused = post_json(&a_url, "/new_transaction", body);
        let error = expect(&a, body, &refused, 400)["error"].to_string();
        assert!(error.contains(says), "{body}: {error}");
    }
    let long = format!(r#"{{"author": "ada", "content": "{}"}}"#, "x".repeat(250));
    let refused = post_json(&a_url, "/new_transaction", &long);
    let error = expect(&a, "a long post", &refused, 400)["error"].to_string();
    assert!(error.contains("256"), "{error}");

    // /api/v1/transactions takes a memo too; zero coins without one is refused by its rule.
    let sent = post_json(
        &a_url,
        "/api/v1/transactions",
        &format!(r#"{{"to": "{STRANGER}", "amount": 0, "memo": "just a note"}}"#),
    );
    let sent = expect(&a, "a memo through /api/v1", &sent, 201);
    let pool = expect(
        &a,
        "GET /api/v1/mempool",
        &get(&a_url, "/api/v1/mempool"),
        200,
    );
    assert_eq!(pool["transactions"][0]["txid"], sent["txid"], "{pool}");
    assert_eq!(pool["transactions"][0]["memo"], "just a note");
    let nothing = post_json(
        &a_url,
        "/api/v1/transactions",
        &format!(r#"{{"to": "{STRANGER}", "amount": 0}}"#),
    );
    let error = expect(&a, "zero coins, no memo", &nothing, 400)["error"].to_string();
    assert!(error.contains("memo"), "{error}");

    // The console's `post` records the same kind of post, shown the same way.
    let reply = a.ok("post bob second   post");
    assert_eq!(reply["content"], "second post", "{reply}");
    let pending = expect(&a, "GET /pending_tx", &get(&a_url, "/pending_tx"), 200);
    let by_bob = pending
        .as_array()
        .and_then(|txs| txs.iter().find(|t| t["txid"] == reply["txid"]))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (by_bob["author"].as_str(), by_bob["content"].as_str()),
        (Some("bob"), Some("second post")),
        "{pending}"
    );
    for node in [&mut a, &mut b] {
        assert_stdout_is_json_only(node);
    }
}

#[test]
fn the_v1_api_does_what_the_console_does() {
    let network = unique_network("http-v1");
    let (mut node, url) = start("v1", &network);
    let (mut other, _) = start("other", &network);

    let status = expect(&node, "status", &get(&url, "/api/v1/status"), 200);
    assert_eq!(
        status,
        node.status()
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("reply");
                o.remove("ok");
                Value::Object(o)
            })
            .unwrap_or_default()
    );

    let mined = expect(
        &node,
        "mine 2",
        &post_json(&url, "/api/v1/mine", r#"{"count": 2}"#),
        200,
    );
    assert_eq!(mined["mined"], 2);
    assert_eq!(mined["height"], 2);
    let one = expect(
        &node,
        "mine, no body",
        &send_raw(&url, "POST", "/api/v1/mine", &[], b"", HTTP_TIMEOUT),
        200,
    );
    assert_eq!(one["height"], 3);
    let tip = one["hash"].as_str().unwrap_or_default().to_string();

    let by_height = expect(&node, "block 3", &get(&url, "/api/v1/blocks/3"), 200);
    assert_eq!(by_height["hash"], tip.as_str());
    let by_hash = expect(
        &node,
        "block by hash",
        &get(&url, &format!("/api/v1/blocks/{tip}")),
        200,
    );
    assert_eq!(by_hash, by_height);
    let console_block = node.ok("block 3");
    assert_eq!(console_block["block"], by_height);

    let chain = expect(&node, "chain", &get(&url, "/api/v1/chain?limit=2"), 200);
    assert_eq!(chain["length"], 4);
    assert_eq!(chain["blocks"].as_array().map(Vec::len), Some(2));
    assert_eq!(chain["next"], 2);
    let rest = expect(
        &node,
        "chain page 2",
        &get(&url, "/api/v1/chain?from=2&limit=2"),
        200,
    );
    assert_eq!(rest["blocks"][1]["hash"], tip.as_str());
    assert!(rest["next"].is_null());

    let sent = expect(
        &node,
        "send",
        &post_json(
            &url,
            "/api/v1/transactions",
            &format!(r#"{{"to": "{STRANGER}", "amount": 7, "fee": 1}}"#),
        ),
        201,
    );
    let txid = sent["txid"].as_str().unwrap_or_default().to_string();
    let mempool = expect(&node, "mempool", &get(&url, "/api/v1/mempool"), 200);
    assert_eq!(mempool["count"], 1);
    assert_eq!(mempool["transactions"][0]["txid"], txid.as_str());
    assert_eq!(node.mempool_txids(), vec![txid.clone()]);
    expect(&node, "mine", &post_json(&url, "/api/v1/mine", "{}"), 400);
    expect(
        &node,
        "mine",
        &post_json(&url, "/api/v1/mine", r#"{"count": 1}"#),
        200,
    );

    let account = expect(
        &node,
        "account",
        &get(&url, &format!("/api/v1/accounts/{STRANGER}")),
        200,
    );
    assert_eq!(account["balance"], 7);
    assert_eq!(account["balance"], node.balance_of(STRANGER));
    let own = expect(&node, "own account", &get(&url, "/api/v1/account"), 200);
    assert_eq!(own["address"], node.address().as_str());
    assert_eq!(own["nonce"], 1);

    let on = expect(
        &node,
        "automine on",
        &post_json(&url, "/api/v1/automine", r#"{"on": true}"#),
        200,
    );
    assert_eq!(on["automine"], true);
    assert_eq!(node.status()["automine"], true);
    let off = expect(
        &node,
        "automine off",
        &post_json(&url, "/api/v1/automine", r#"{"on": false}"#),
        200,
    );
    assert_eq!(off["automine"], false);

    let dial = format!(r#"{{"address": "{}"}}"#, other.dial_addr());
    expect(&node, "dial", &post_json(&url, "/api/v1/dial", &dial), 200);
    let peers = eventually("the dialed peer is listed", Duration::from_secs(20), || {
        let v = get(&url, "/api/v1/peers").json();
        (v["count"] == 1).then_some(v)
    });
    assert_eq!(peers["peers"][0]["peer_id"], other.peer_id().as_str());

    let doc = expect(&node, "openapi", &get(&url, "/api/v1/openapi.json"), 200);
    assert!(doc["paths"]["/api/v1/chain"]["get"].is_object());
    assert_stdout_is_json_only(&mut node);
}

#[test]
fn every_kind_of_bad_request_gets_its_status_and_message_and_the_node_keeps_working() {
    let network = unique_network("http-bad");
    let (mut node, url) = start("bad", &network);
    let ours = node.address();
    let huge = format!(r#"{{"recipient": "{}"}}"#, "a".repeat(70 * 1024));
    let cases: Vec<(&str, &str, String, u16, String)> = vec![
        (
            "POST",
            "/transactions/new",
            "{\"recipient\": ".into(),
            400,
            "bad JSON body".into(),
        ),
        (
            "POST",
            "/transactions/new",
            "".into(),
            400,
            "expected a JSON body".into(),
        ),
        (
            "POST",
            "/transactions/new",
            r#"{"amount": 5}"#.into(),
            400,
            "missing field `recipient`".into(),
        ),
        (
            "POST",
            "/transactions/new",
            format!(r#"{{"recipient": "{STRANGER}", "amount": "five"}}"#),
            400,
            "invalid type".into(),
        ),
        (
            "POST",
            "/transactions/new",
            format!(r#"{{"recipient": "{STRANGER}", "amount": -5}}"#),
            400,
            "invalid value".into(),
        ),
        (
            "POST",
            "/transactions/new",
            r#"{"recipient": "someone-other-address", "amount": 5}"#.into(),
            400,
            "recipient must be an address".into(),
        ),
        (
            "POST",
            "/transactions/new",
            format!(r#"{{"sender": "{STRANGER}", "recipient": "{STRANGER}", "amount": 5}}"#),
            400,
            format!("sender must be this node's address {ours}"),
        ),
        (
            "POST",
            "/transactions/new",
            format!(r#"{{"recipient": "{STRANGER}", "amount": 5}}"#),
            400,
            "insufficient".into(),
        ),
        (
            "POST",
            "/transactions/new",
            huge,
            413,
            "larger than 65536 bytes".into(),
        ),
        (
            "POST",
            "/nodes/register",
            r#"{"nodes": []}"#.into(),
            400,
            "Please supply a valid list of nodes".into(),
        ),
        (
            "POST",
            "/nodes/register",
            r#"{"nodes": "http://127.0.0.1:1"}"#.into(),
            400,
            "invalid type".into(),
        ),
        (
            "POST",
            "/nodes/register",
            r#"{"nodes": ["192.168.0.5:5000"]}"#.into(),
            400,
            "neither a multiaddr".into(),
        ),
        (
            "POST",
            "/nodes/register",
            r#"{"nodes": ["http://127.0.0.1:1"]}"#.into(),
            502,
            "cannot reach".into(),
        ),
        (
            "POST",
            "/register_with",
            "{}".into(),
            400,
            "missing field `node_address`".into(),
        ),
        (
            "GET",
            "/chain?limit=0",
            String::new(),
            400,
            "limit must be 1 to 100".into(),
        ),
        (
            "GET",
            "/chain?from=x",
            String::new(),
            400,
            "from must be a whole number".into(),
        ),
        (
            "GET",
            "/chain?page=2",
            String::new(),
            400,
            "unknown query parameter 'page'".into(),
        ),
        (
            "GET",
            "/api/v1/blocks/99",
            String::new(),
            404,
            "no block at height 99".into(),
        ),
        (
            "GET",
            &*Box::leak(format!("/api/v1/blocks/{}", "ab".repeat(32)).into_boxed_str()),
            String::new(),
            404,
            "no block with hash".into(),
        ),
        (
            "GET",
            "/api/v1/blocks/tip",
            String::new(),
            400,
            "height or a 64-digit block hash".into(),
        ),
        (
            "GET",
            "/api/v1/accounts/xyz",
            String::new(),
            400,
            "address must be an address".into(),
        ),
        (
            "POST",
            "/api/v1/mine",
            r#"{"count": 0}"#.into(),
            400,
            "count must be 1 to 100000".into(),
        ),
        (
            "POST",
            "/api/v1/mine",
            r#"{"count": 100001}"#.into(),
            400,
            "count must be 1 to 100000".into(),
        ),
        (
            "POST",
            "/api/v1/automine",
            r#"{"on": "yes"}"#.into(),
            400,
            "invalid type".into(),
        ),
        (
            "POST",
            "/api/v1/dial",
            r#"{"address": "nowhere"}"#.into(),
            400,
            "bad multiaddr".into(),
        ),
        (
            "GET",
            "/nowhere",
            String::new(),
            404,
            "no route for GET /nowhere".into(),
        ),
        (
            "DELETE",
            "/chain",
            String::new(),
            405,
            "method DELETE is not allowed".into(),
        ),
    ];
    for (method, path, body, status, needle) in &cases {
        let response = send_raw(
            &url,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            HTTP_TIMEOUT,
        );
        let what = format!("{method} {path} {}", &body[..body.len().min(60)]);
        expect(&node, &what, &response, *status);
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{what}: {:?}",
            response.headers
        );
        let error = response.error();
        assert!(
            error.contains(needle.as_str()),
            "{what}: {error:?} lacks {needle:?}"
        );
    }

    // Still working: mines, and answers the seeds' routes.
    let mined = expect(&node, "mine after", &get(&url, "/mine"), 200);
    assert_eq!(mined["index"], 1);
    assert_eq!(node.height(), 1);
    assert_stdout_is_json_only(&mut node);
}

#[test]
fn the_event_stream_delivers_a_block_accepted_after_a_mine() {
    let network = unique_network("http-sse");
    let (mut node, url) = start("sse", &network);
    let mut stream = EventStream::open(&url, "/api/v1/events");
    assert_eq!(stream.status, 200);
    assert!(
        stream.content_type.starts_with("text/event-stream"),
        "{}",
        stream.content_type
    );
    let mined = expect(&node, "mine", &get(&url, "/mine"), 200);
    let event = stream
        .wait_for(|e| e["event"] == "block_accepted", Duration::from_secs(20))
        .unwrap_or_else(|| node.fail("no block_accepted on the event stream"));
    assert_eq!(event["height"], 1);
    assert_eq!(event["hash"], mined["hash"]);
    assert_eq!(event["source"], "mined");
    // The very object the console printed.
    let printed = node.wait_event(|e| e["event"] == "block_accepted", Duration::from_secs(5));
    assert_eq!(printed, event);
    assert_stdout_is_json_only(&mut node);
}

#[test]
fn with_a_token_control_routes_need_the_bearer_token_and_read_routes_do_not() {
    let network = unique_network("http-token");
    let mut opts = NodeOptions::loopback(&network);
    opts.extra = vec!["--http-token".into(), "s3cret".into()];
    let mut node = TestNode::start("token", opts);
    let url = node.http_url();
    let listening = node.wait_event(|e| e["event"] == "http_listening", Duration::from_secs(5));
    assert_eq!(listening["read_only"], false);

    let none = get(&url, "/mine");
    expect(&node, "no token", &none, 401);
    assert!(none.error().contains("Bearer"), "{}", none.error());
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let wrong = send_raw(
        &url,
        "GET",
        "/mine",
        &[("Authorization", "Bearer nope")],
        b"",
        HTTP_TIMEOUT,
    );
    expect(&node, "wrong token", &wrong, 401);
    assert_eq!(wrong.error(), "the bearer token is wrong");
    let body = format!(r#"{{"to": "{STRANGER}", "amount": 1}}"#);
    let unsigned = post_json(&url, "/api/v1/transactions", &body);
    expect(&node, "send without token", &unsigned, 401);
    assert_eq!(node.height(), 0, "nothing was mined");

    let right = send_raw(
        &url,
        "GET",
        "/mine",
        &[("Authorization", "Bearer s3cret")],
        b"",
        HTTP_TIMEOUT,
    );
    expect(&node, "right token", &right, 200);
    expect(&node, "read without token", &get(&url, "/chain"), 200);
    assert_eq!(node.height(), 1);
}

#[test]
fn a_non_loopback_address_without_a_token_serves_read_routes_only() {
    let network = unique_network("http-ro");
    let mut opts = NodeOptions::loopback(&network);
    opts.http = Some("0.0.0.0:0".to_string());
    let mut node = TestNode::start("read-only", opts);
    let listening = node.wait_event(|e| e["event"] == "http_listening", Duration::from_secs(5));
    assert_eq!(listening["read_only"], true);
    let port = listening["url"]
        .as_str()
        .and_then(|u| u.rsplit(':').next())
        .unwrap_or_default()
        .to_string();
    let url = format!("http://127.0.0.1:{port}");
    let refused = get(&url, "/mine");
    expect(&node, "mine on a read-only node", &refused, 403);
    assert!(refused.error().contains("read-only"), "{}", refused.error());
    expect(
        &node,
        "chain on a read-only node",
        &get(&url, "/chain"),
        200,
    );
    assert_eq!(node.height(), 0);
}

/// Starts the binary with `args` (plus a temp data dir, loopback, no mDNS) and returns the
/// first stdout line and the stderr lines up to the one containing "HTTP API on"; the process
/// is killed by its PID before returning.
fn first_lines(args: &[&str]) -> (String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(common::binary())
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--network", &unique_network("http-start")])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the node");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out_tx = tx.clone();
    std::thread::spawn(move || {
        if let Some(Ok(line)) = BufReader::new(stdout).lines().next() {
            let _ = out_tx.send((true, line));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let done = line.contains("HTTP API on");
            let _ = tx.send((false, line));
            if done {
                break;
            }
        }
    });
    let mut first = None;
    let mut errors = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while first.is_none() || !errors.iter().any(|l: &String| l.contains("HTTP API on")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, line)) => first = Some(line),
            Ok((false, line)) => errors.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    (first.unwrap_or_default(), errors)
}

#[test]
fn without_json_the_url_is_printed_as_a_line_for_people_and_on_stderr() {
    let (first, errors) = first_lines(&["--http", "127.0.0.1:0"]);
    assert!(
        first.starts_with("* http api on http://127.0.0.1:"),
        "{first:?}"
    );
    let url = first.trim_start_matches("* http api on ");
    assert!(
        errors.iter().any(|l| l == &format!("HTTP API on {url}")),
        "{errors:?}"
    );
}

#[test]
fn a_taken_default_port_is_reported_and_a_free_one_used() {
    // Hold the default port if it is free; if something else holds it, the node falls back too.
    let _held = std::net::TcpListener::bind("127.0.0.1:8645");
    let (first, errors) = first_lines(&["--json"]);
    let event: Value = serde_json::from_str(&first).unwrap_or(Value::Null);
    assert_eq!(event["event"], "http_listening", "{first:?}");
    let url = event["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":8645"),
        "{url}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("HTTP port 127.0.0.1:8645 is taken")),
        "{errors:?}"
    );
}

#[test]
fn with_no_http_there_is_no_api_and_no_url() {
    let network = unique_network("http-off");
    let mut opts = NodeOptions::loopback(&network);
    opts.http = None;
    let mut node = TestNode::start("no-http", opts);
    node.status();
    node.drain();
    assert!(
        !node.events().iter().any(|e| e["event"] == "http_listening"),
        "{:?}",
        node.events()
    );
}
