//! The sync state machine, driven without sockets: a real [`Chain`] stands for ours, peers
//! are ids, and their answers are built from mined blocks.

use super::*;
use crate::ledger::block::validate_batch;
use crate::ledger::{Address, Block, Chain, NetworkParams};
use crate::node::state::fixtures::mined_child;

const NOW_MS: u64 = u64::MAX / 4;

fn params() -> NetworkParams {
    NetworkParams::for_tests("sync-machine", 0)
}

/// `n` blocks on `parent`, paid to `to` (different `to`, different branches).
fn branch(params: &NetworkParams, parent: &Block, to: u8, n: usize) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for _ in 0..n {
        let p = out.last().unwrap_or(parent);
        out.push(mined_child(params, p, Address([to; 20]), params.reward));
    }
    out
}

fn headers(blocks: &[Block]) -> Vec<BlockHeader> {
    blocks.iter().map(|b| b.header.clone()).collect()
}

fn claim(chain: &Chain, extra: u64) -> PeerTip {
    PeerTip {
        height: chain.height() + extra,
        work: chain.total_work() + u128::from(extra),
    }
}

fn headers_request(actions: &[SyncAction], of: PeerId) -> Option<Ticket> {
    actions.iter().find_map(|a| match a {
        SyncAction::RequestHeaders { peer, ticket, .. } if *peer == of => Some(*ticket),
        _ => None,
    })
}

fn block_requests(actions: &[SyncAction]) -> Vec<(PeerId, Ticket, Vec<BlockHash>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            SyncAction::RequestBlocks {
                peer,
                ticket,
                hashes,
            } => Some((*peer, *ticket, hashes.clone())),
            _ => None,
        })
        .collect()
}

fn penalties(actions: &[SyncAction]) -> Vec<(PeerId, Offence)> {
    actions
        .iter()
        .filter_map(|a| match a {
            SyncAction::Penalise { peer, offence } => Some((*peer, *offence)),
            _ => None,
        })
        .collect()
}

/// Carries out `Connect` actions on `chain` as the node would; returns every action seen.
fn run(sync: &mut SyncManager, chain: &mut Chain, actions: Vec<SyncAction>) -> Vec<SyncAction> {
    let mut seen = Vec::new();
    let mut queue = actions;
    while !queue.is_empty() {
        let mut next = Vec::new();
        for action in queue {
            if let SyncAction::Check {
                peer,
                ticket,
                blocks,
            } = &action
            {
                let (checked, failed) = validate_batch(blocks.clone(), chain.params());
                let failed = failed.is_some();
                next.extend(sync.checked(*peer, *ticket, checked, failed, chain, Instant::now()));
            }
            if let SyncAction::Connect { blocks } = &action {
                let batch = chain.accept_checked(blocks.clone(), NOW_MS);
                let outcome = Connected {
                    refused: batch.refused.map(|(hash, _)| Refused {
                        hash,
                        kind: if chain.is_known_invalid(&hash) {
                            RefusedKind::Chain
                        } else {
                            RefusedKind::Body
                        },
                    }),
                    invalid: batch.accepted.invalid.iter().map(|(h, _)| *h).collect(),
                };
                next.extend(sync.connected(outcome, chain, Instant::now()));
            }
            seen.push(action);
        }
        queue = next;
    }
    seen
}

/// Answers every block request in `actions` from `source`, as an honest peer would.
fn serve(
    sync: &mut SyncManager,
    chain: &mut Chain,
    source: &[Block],
    actions: Vec<SyncAction>,
) -> Vec<SyncAction> {
    let mut all = run(sync, chain, actions);
    let mut seen = all.clone();
    for _ in 0..100 {
        let requests = block_requests(&all);
        if requests.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for (peer, ticket, hashes) in requests {
            let blocks: Vec<Block> = hashes
                .iter()
                .filter_map(|h| source.iter().find(|b| b.block_hash() == *h).cloned())
                .collect();
            next.extend(sync.blocks(peer, ticket, blocks, chain, Instant::now()));
        }
        all = run(sync, chain, next);
        seen.extend(all.iter().cloned());
    }
    seen
}

#[test]
fn a_peer_claiming_more_work_is_asked_for_headers_and_one_claiming_less_is_not() {
    let p = params();
    let chain = Chain::new(p.clone());
    let mut sync = SyncManager::new(p);
    let now = Instant::now();
    let (weak, strong) = (PeerId::random(), PeerId::random());
    let less = PeerTip {
        height: 0,
        work: chain.total_work(),
    };
    assert!(sync.peer_status(weak, less, &chain, now).is_empty());
    let actions = sync.peer_status(strong, claim(&chain, 5), &chain, now);
    assert!(headers_request(&actions, strong).is_some(), "{actions:?}");
    assert!(sync.active_peer().is_none(), "no download before headers");
}

#[test]
fn headers_with_more_work_start_a_download_that_connects_as_one_batch() {
    let p = params();
    let mut chain = Chain::new(p.clone());
    let theirs = branch(&p, &p.genesis(), 1, 300);
    let mut sync = SyncManager::new(p);
    let peer = PeerId::random();
    let now = Instant::now();
    let asked = sync.peer_status(peer, claim(&chain, 300), &chain, now);
    let ticket = headers_request(&asked, peer).expect("headers asked");
    let actions = sync.headers(peer, ticket, headers(&theirs), &chain, NOW_MS, now);
    assert!(matches!(
        actions[0],
        SyncAction::Started { to_height: 300, .. }
    ));
    let requests = block_requests(&actions);
    assert_eq!(
        requests.iter().map(|r| r.2.len()).collect::<Vec<_>>(),
        vec![128, 128, 44],
        "three chunks in flight at once"
    );
    let seen = serve(&mut sync, &mut chain, &theirs, actions);
    assert_eq!(chain.tip(), theirs[299].block_hash());
    assert!(seen
        .iter()
        .any(|a| matches!(a, SyncAction::Finished { .. })));
    assert!(sync.active_peer().is_none());
}

#[test]
fn a_fork_deeper_than_the_prune_depth_is_downloaded_whole_and_wins() {
    let p = params();
    let mut chain = Chain::new(p.clone());
    let ours = branch(&p, &p.genesis(), 1, 1_500);
    let batch = chain.accept_blocks(ours.clone(), NOW_MS);
    assert!(batch.refused.is_none());
    let theirs = branch(&p, &p.genesis(), 2, 1_600);
    let mut sync = SyncManager::new(p);
    let peer = PeerId::random();
    let now = Instant::now();
    let tip = PeerTip {
        height: 1_600,
        work: 1_601,
    };
    let asked = sync.peer_status(peer, tip, &chain, now);
    let ticket = headers_request(&asked, peer).expect("headers asked");
    let actions = sync.headers(peer, ticket, headers(&theirs), &chain, NOW_MS, now);
    serve(&mut sync, &mut chain, &theirs, actions);
    assert_eq!(chain.tip(), theirs[1_599].block_hash());
    assert!(!chain.is_on_main_chain(&ours[0].block_hash()));
}

#[test]
fn a_peer_whose_headers_fall_short_of_its_claim_is_a_false_status() {
    let p = params();
    let chain = Chain::new(p.clone());
    let theirs = branch(&p, &p.genesis(), 1, 3);
    let mut sync = SyncManager::new(p);
    let peer = PeerId::random();
    let now = Instant::now();
    let asked = sync.peer_status(peer, claim(&chain, 1_000), &chain, now);
    let ticket = headers_request(&asked, peer).expect("headers asked");
    let actions = sync.headers(peer, ticket, headers(&theirs), &chain, NOW_MS, now);
    assert_eq!(penalties(&actions), vec![(peer, Offence::FalseStatus)]);
    assert!(block_requests(&actions).is_empty());
}

#[test]
fn a_stale_orphan_claims_nothing_and_one_above_our_tip_claims_only_its_height() {
    let p = params();
    let mut chain = Chain::new(p.clone());
    for block in branch(&p, &p.genesis(), 1, 5) {
        chain.accept_block(block, NOW_MS).unwrap();
    }
    // The peer is on a branch we lack, 3 blocks high: a block of it replayed to us (gossip
    // does that for a new peer) is an orphan at or below our height and shows no more work.
    let theirs = branch(&p, &p.genesis(), 2, 8);
    let mut sync = SyncManager::new(p);
    let peer = PeerId::random();
    let now = Instant::now();
    assert!(sync.orphan_from(peer, 3, &chain, now).is_empty());
    assert!(sync.orphan_from(peer, 5, &chain, now).is_empty());
    // One above our tip is evidence: headers are asked, and a run ending at its height (no
    // more than it showed) is no false status.
    let asked = sync.orphan_from(peer, 7, &chain, now);
    let ticket = headers_request(&asked, peer).expect("headers asked");
    let actions = sync.headers(peer, ticket, headers(&theirs[..7]), &chain, NOW_MS, now);
    assert!(penalties(&actions).is_empty(), "{actions:?}");
    assert!(
        !block_requests(&actions).is_empty(),
        "its branch is downloaded"
    );
}

#[test]
fn an_empty_headers_answer_to_a_big_claim_is_a_false_status_and_the_peer_cools_down() {
    let p = params();
    let chain = Chain::new(p.clone());
    let mut sync = SyncManager::new(p);
    let peer = PeerId::random();
    let now = Instant::now();
    let asked = sync.peer_status(peer, claim(&chain, u64::MAX / 2), &chain, now);
    let ticket = headers_request(&asked, peer).expect("headers asked");
    let actions = sync.headers(peer, ticket, Vec::new(), &chain, NOW_MS, now);
    assert_eq!(penalties(&actions), vec![(peer, Offence::FalseStatus)]);
    let again = sync.peer_status(peer, claim(&chain, u64::MAX / 2), &chain, now);
    assert!(headers_request(&again, peer).is_none(), "cooling down");
}

#[test]
fn a_silent_peer_times_out_and_another_serves_its_chunks() {
    let p = params();
    let mut chain = Chain::new(p.clone());
    let theirs = branch(&p, &p.genesis(), 1, 100);
    let mut sync = SyncManager::new(p);
    let (silent, honest) = (PeerId::random(), PeerId::random());
    let now = Instant::now();
    for peer in [silent, honest] {
        let asked = sync.peer_status(peer, claim(&chain, 100), &chain, now);
        let ticket = headers_request(&asked, peer).expect("headers asked");
        let actions = sync.headers(peer, ticket, headers(&theirs), &chain, NOW_MS, now);
        // The first peer's chunk goes to it; the honest one has nothing to do yet.
        if peer == silent {
            assert_eq!(block_requests(&actions)[0].0, silent);
        }
    }
    let later = now + REQUEST_TIMEOUT;
    let actions = sync.tick(&chain, later);
    assert_eq!(penalties(&actions), vec![(silent, Offence::Unresponsive)]);
    let requests = block_requests(&actions);
    assert_eq!(requests[0].0, honest, "{actions:?}");
    serve(&mut sync, &mut chain, &theirs, actions);
    assert_eq!(chain.tip(), theirs[99].block_hash());
}

#[test]
fn an_empty_blocks_answer_loses_the_slot_without_a_penalty() {
    let p = params();
    let chain = Chain::new(p.clone());
    let theirs = branch(&p, &p.genesis(), 1, 10);
    let mut sync = SyncManager::new(p);
    let peer = PeerId::random();
    let now = Instant::now();
    let asked = sync.peer_status(peer, claim(&chain, 10), &chain, now);
    let ticket = headers_request(&asked, peer).expect("headers asked");
    let actions = sync.headers(peer, ticket, headers(&theirs), &chain, NOW_MS, now);
    let (_, ticket, _) = block_requests(&actions)[0].clone();
    let actions = sync.blocks(peer, ticket, Vec::new(), &chain, now);
    assert!(penalties(&actions).is_empty());
    assert!(block_requests(&actions).is_empty());
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, SyncAction::Finished { .. })),
        "{actions:?}"
    );
}

#[test]
fn a_body_that_breaks_a_rule_costs_its_sender_and_is_fetched_from_another_peer() {
    let p = params();
    let mut chain = Chain::new(p.clone());
    let theirs = branch(&p, &p.genesis(), 1, 5);
    let mut sync = SyncManager::new(p);
    let (liar, honest) = (PeerId::random(), PeerId::random());
    let now = Instant::now();
    let mut first = Vec::new();
    for peer in [liar, honest] {
        let asked = sync.peer_status(peer, claim(&chain, 5), &chain, now);
        let ticket = headers_request(&asked, peer).expect("headers asked");
        first.extend(sync.headers(peer, ticket, headers(&theirs), &chain, NOW_MS, now));
    }
    let (peer, ticket, _) = block_requests(&first)[0].clone();
    assert_eq!(peer, liar);
    // Same headers, but one body with an extra coinbase: its header is valid, its body not.
    let mut wrong = theirs.clone();
    let extra = wrong[2].transactions[0].clone();
    wrong[2].transactions.push(extra);
    let actions = sync.blocks(liar, ticket, wrong, &chain, now);
    let all = run(&mut sync, &mut chain, actions);
    assert_eq!(penalties(&all), vec![(liar, Offence::InvalidBlock)]);
    let requests = block_requests(&all);
    assert!(requests.iter().all(|r| r.0 == honest), "{all:?}");
    serve(&mut sync, &mut chain, &theirs, all);
    assert_eq!(chain.tip(), theirs[4].block_hash());
}

#[test]
fn a_header_from_the_future_stops_the_run_without_a_penalty() {
    let p = params();
    let chain = Chain::new(p.clone());
    let theirs = branch(&p, &p.genesis(), 1, 3);
    let mut sync = SyncManager::new(p);
    let peer = PeerId::random();
    let now = Instant::now();
    let asked = sync.peer_status(peer, claim(&chain, 3), &chain, now);
    let ticket = headers_request(&asked, peer).expect("headers asked");
    let clock = theirs[1].header.timestamp - crate::ledger::chain::MAX_FUTURE_DRIFT_MS - 1;
    let actions = sync.headers(peer, ticket, headers(&theirs), &chain, clock, now);
    assert!(penalties(&actions).is_empty(), "{actions:?}");
}

#[test]
fn a_peer_that_leaves_mid_download_is_not_charged_and_its_chunks_move() {
    let p = params();
    let mut chain = Chain::new(p.clone());
    let theirs = branch(&p, &p.genesis(), 1, 50);
    let mut sync = SyncManager::new(p);
    let (leaver, stayer) = (PeerId::random(), PeerId::random());
    let now = Instant::now();
    for peer in [leaver, stayer] {
        let asked = sync.peer_status(peer, claim(&chain, 50), &chain, now);
        let ticket = headers_request(&asked, peer).expect("headers asked");
        sync.headers(peer, ticket, headers(&theirs), &chain, NOW_MS, now);
    }
    let actions = sync.peer_left(&leaver, &chain, now);
    assert!(penalties(&actions).is_empty());
    serve(&mut sync, &mut chain, &theirs, actions);
    assert_eq!(chain.tip(), theirs[49].block_hash());
}
