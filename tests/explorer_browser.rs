//! The explorer in a real headless Chromium, driven over WebDriver: a block mined through the
//! API appears without a reload, a transfer sent through the form shows in the mempool and then
//! in a block, and two nodes that mined apart show the side branch and the reorg in the tree.
//!
//! Skips (saying so) when Chromium is not installed, unless `CI` is set: then it fails.

mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use common::{unique_network, NodeOptions, TestNode};
use http_client::post_json;
use serde_json::{json, Value};
use webdriver::Browser;

/// An address nobody holds the key of.
const STRANGER: &str = "0badc0ffee0badc0ffee0badc0ffee0badc0ffee";

/// Longest any one thing may take to show in the page.
const SHOW: Duration = Duration::from_secs(20);

#[test]
fn the_explorer_shows_blocks_transfers_and_a_reorg_live() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let network = unique_network("explorer");
    let mut a = TestNode::start("a", NodeOptions::loopback(&network));
    let url = a.http_url();
    browser.open(&format!("{url}/"));
    browser.wait_for(
        "the page goes live",
        "return document.getElementById('live').textContent === 'live' && document.getElementById('height').textContent === '0'",
        Value::Null,
        SHOW,
    );
    // A mark on the window: it is lost if the page reloads.
    browser.run("window.notReloaded = true; return true", Value::Null);

    // A block mined through the API appears without a reload.
    let mined = post_json(&url, "/api/v1/mine", r#"{"count":2}"#).json();
    let tip = mined["hash"].as_str().expect("a mined hash").to_string();
    browser.wait_for(
        "the mined block in the latest blocks",
        "return window.notReloaded && !!document.querySelector(`#blocks tr[data-hash='${arguments[0]}']`)",
        json!([tip]),
        SHOW,
    );
    browser.wait_for(
        "the mined block in the tree",
        "return !!document.querySelector(`#tree g.main[data-hash='${arguments[0]}'][data-source='mined']`)",
        json!([tip]),
        SHOW,
    );

    // A transfer sent through the form: in the mempool, then in a block.
    browser.run(
        "document.getElementById('send-to').value = arguments[0];
         document.getElementById('send-amount').value = '5';
         document.querySelector('#send-form button').click(); return true",
        json!([STRANGER]),
    );
    let message = browser.wait_for(
        "the form's answer",
        "const m = document.getElementById('message').textContent; return m.startsWith('sent ') ? m : null",
        Value::Null,
        SHOW,
    );
    let txid = message.as_str().unwrap_or_default()["sent ".len()..].to_string();
    browser.wait_for(
        "the transfer in the mempool",
        "return !!document.querySelector(`#mempool tr[data-txid='${arguments[0]}']`)",
        json!([txid]),
        SHOW,
    );
    browser.run(
        "document.querySelector('#mine-form button').click(); return true",
        Value::Null,
    );
    browser.wait_for(
        "the mempool empties once the transfer is mined",
        "return window.notReloaded && document.getElementById('mempool-count').textContent === '0' && document.getElementById('height').textContent === '3'",
        Value::Null,
        SHOW,
    );
    browser.run("location.hash = '#/block/3'; return true", Value::Null);
    browser.wait_for(
        "the transfer on its block's page",
        "return !!document.querySelector(`#page tr[data-txid='${arguments[0]}']`)",
        json!([txid]),
        SHOW,
    );
    browser.run(
        "location.hash = '#/address/' + arguments[0]; return true",
        json!([STRANGER]),
    );
    browser.wait_for(
        "the receiver's balance on its address page",
        "const b = document.getElementById('address-balance'); return b && b.textContent === '5'",
        Value::Null,
        SHOW,
    );
    browser.run("location.hash = '#/'; return true", Value::Null);

    // A node that mined more apart: once connected, our three blocks lose.
    let mut b = TestNode::start("b", NodeOptions::loopback(&network));
    b.ok_within("mine 5", Duration::from_secs(60));
    let b_addr = b.dial_addr();
    a.dial(&b_addr);
    browser.wait_for(
        "the losing branch kept, crossed out, and the reorg marked",
        "return window.notReloaded
            && document.getElementById('height').textContent === '5'
            && document.querySelectorAll('#tree g.side.reorged').length === 3
            && document.querySelectorAll('#tree g.main').length === 6
            && !!document.querySelector('#tree .reorg-label')",
        Value::Null,
        SHOW,
    );
    let label = browser.run(
        "return document.querySelector('#tree .reorg-label').textContent",
        Value::Null,
    );
    assert!(
        label.as_str().unwrap_or_default().contains("reorg −3"),
        "{label}"
    );
    if let Some(to) = std::env::var_os("EXPLORER_SCREENSHOT") {
        browser.screenshot(std::path::Path::new(&to));
    }
}
