//! Hostile peers at a small scale, for CI (the figures at full scale come from
//! `tests/bench_hostile.rs`): a flood of early blocks and one of side-branch blocks full of
//! validly signed transfers nobody could pay for leave the flooding peer unblamed, keep
//! side-branch bodies only within the side-branch caps, and let honest blocks through; a peer
//! that never reads its block answers does not stop an honest peer from syncing; throwaway
//! identities do not keep a `--peer` peer or a new one from connecting and syncing.

#[path = "common/attacks.rs"]
mod attacks;
mod common;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use attacks::{FloodKind, FloodSize};

const SMALL: FloodSize = FloodSize {
    secs: 3,
    per_second: 10,
    transfers: 200,
    pool: 1_000,
};

#[test]
fn a_flood_of_early_blocks_costs_the_sender_nothing_and_lets_honest_blocks_through() {
    let r = attacks::flood_blocks(FloodKind::Early, SMALL);
    assert_eq!(r.published, 30);
    assert!(r.flooder_connected, "{r:?}");
    assert!(r.height >= 4, "honest blocks on top of the three: {r:?}");
}

#[test]
fn a_flood_of_light_side_blocks_costs_the_sender_nothing_and_lets_honest_blocks_through() {
    let r = attacks::flood_blocks(FloodKind::Side, SMALL);
    assert_eq!(r.published, 30);
    assert!(r.flooder_connected, "{r:?}");
    // Light side blocks are checked (signatures too) and kept within the side-branch caps;
    // their transfers are not checked against any state until the branch is the heaviest.
    assert!(
        r.side_blocks <= gossipchain::ledger::chain::MAX_SIDE_BLOCKS as u64,
        "{r:?}"
    );
    assert!(r.height >= 4, "{r:?}");
}

#[test]
fn a_peer_that_never_reads_its_block_answers_does_not_stop_an_honest_sync() {
    let r = attacks::unread_block_requests(4, 6, 500, 40);
    assert!(r.honest_sync_s.is_finite(), "{r:?}");
}

#[test]
fn throwaway_identities_leave_room_for_a_configured_peer_and_a_new_one() {
    let r = attacks::throwaway_identities(120, 8);
    assert!(r.connected > 100, "{r:?}");
}
