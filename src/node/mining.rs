//! Mining: what the node wants mined, the attempt running, and what to do with a found block.
//!
//! Rules it keeps: mining runs on miner threads (see [`crate::ledger::pow`]) and reports back
//! over a channel tagged with the attempt's generation; any tip change, or nobody wanting
//! blocks any more, cancels a stale attempt and starts one on the new tip; a `mine` command is
//! answered once its count of blocks joined the main chain; at most [`MAX_MINE_REQUESTS`]
//! commands wait at once; found blocks that only extend the main chain are stored together
//! (see `unstored`): nothing is published, reported or counted before its commit.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tracing::warn;

use super::command::{CommandError, Reply};
use super::event::MineView;
use super::state::{now_ms, NodeState};
use super::unstored::Origin;
use crate::ledger::pow::{self, MiningHandle, MiningOutcome};
use crate::ledger::BlockHash;

/// Most `mine` commands waiting at once.
const MAX_MINE_REQUESTS: usize = 16;
/// Bytes a block template leaves for the header and the coinbase.
const TEMPLATE_HEADROOM: usize = 1024;
/// A `mine` command being carried out.
struct MineRequest {
    count: u64,
    mined: u64,
    reply: Reply<MineView>,
}

/// The attempt running on the miner threads.
struct Job {
    handle: MiningHandle,
    parent: BlockHash,
    generation: u64,
}

/// The miner's side of the node: what is wanted, and the attempt running.
pub(super) struct Miner {
    threads: usize,
    /// Whether to mine continuously.
    pub(super) automine: bool,
    requests: VecDeque<MineRequest>,
    job: Option<Job>,
    generation: u64,
    outcomes: mpsc::Sender<(u64, MiningOutcome)>,
}

impl Miner {
    /// An idle miner on `threads` threads (at least one) reporting to `outcomes`.
    pub(super) fn new(threads: usize, outcomes: mpsc::Sender<(u64, MiningOutcome)>) -> Self {
        Self {
            threads: threads.max(1),
            automine: false,
            requests: VecDeque::new(),
            job: None,
            generation: 0,
            outcomes,
        }
    }

    /// Whether another block is wanted: the `unstored` blocks found but not stored yet count
    /// toward the `mine` commands waiting.
    fn wanted(&self, unstored: usize) -> bool {
        let waiting: u64 = self
            .requests
            .iter()
            .map(|r| r.count.saturating_sub(r.mined))
            .sum();
        self.automine || waiting > unstored as u64
    }

    /// Queues a `mine` command for `count` blocks (at least one).
    pub(super) fn request(&mut self, count: u64, reply: Reply<MineView>) {
        if self.requests.len() >= MAX_MINE_REQUESTS {
            let _ = reply.send(Err(CommandError::MinerBusy));
        } else {
            self.requests.push_back(MineRequest {
                count: count.max(1),
                mined: 0,
                reply,
            });
        }
    }
}

/// Hands a mining outcome to the event loop from a miner thread. It waits for room rather than
/// drop anything: a lost `Found` would leave a `mine` command unanswered for good. The loop drains
/// the channel continuously and never waits for the miner, so the wait is short; it ends at once
/// if the node has stopped.
fn report(outcomes: &mpsc::Sender<(u64, MiningOutcome)>, generation: u64, outcome: MiningOutcome) {
    let _ = outcomes.blocking_send((generation, outcome));
}

impl NodeState {
    /// Cancels an attempt on a stale tip or one nobody wants, and starts one when wanted.
    pub(super) fn update_mining(&mut self) {
        let tip = self.chain.tip();
        if let Some(job) = &self.miner.job {
            if job.parent == tip && self.miner.wanted(self.unstored.mined()) {
                return;
            }
            job.handle.cancel();
            self.miner.job = None;
        }
        if !self.miner.wanted(self.unstored.mined()) {
            return;
        }
        let txs = self.mempool.template(
            self.params.max_block_txs.saturating_sub(1),
            self.params
                .max_block_bytes
                .saturating_sub(TEMPLATE_HEADROOM),
        );
        let block = self.chain.block_template(self.address, txs, now_ms());
        self.miner.generation += 1;
        let generation = self.miner.generation;
        let outcomes = self.miner.outcomes.clone();
        let handle = pow::start_mining(block, self.miner.threads, move |outcome| {
            report(&outcomes, generation, outcome);
        });
        self.miner.job = Some(Job {
            handle,
            parent: tip,
            generation,
        });
    }

    /// Cancels the running attempt, if any (the node is stopping).
    pub(super) fn stop_mining(&mut self) {
        if let Some(job) = self.miner.job.take() {
            job.handle.cancel();
        }
    }

    /// An attempt ended: a found block is offered to the chain and, on the main chain,
    /// gossiped and counted for the oldest `mine` command.
    pub(super) fn on_mined(&mut self, generation: u64, outcome: MiningOutcome) {
        if self
            .miner
            .job
            .as_ref()
            .is_some_and(|j| j.generation == generation)
        {
            self.miner.job = None;
        }
        let MiningOutcome::Found(block) = outcome else {
            return;
        };
        if self.halted().is_some() {
            return;
        }
        // The chain takes it now, so the next attempt builds on it; the store takes it with
        // the blocks found after it, and only then is it published.
        let accepted = match self.chain.accept_unstored(block.clone(), now_ms()) {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "mined block refused");
                return;
            }
        };
        self.take_unstored(accepted, Origin::Mined(block));
    }

    /// Counts a mined block that is stored on the main chain for the oldest `mine` command.
    pub(super) fn count_mined(&mut self, height: u64, hash: BlockHash) {
        let Some(request) = self.miner.requests.front_mut() else {
            return;
        };
        request.mined += 1;
        if request.mined >= request.count {
            if let Some(done) = self.miner.requests.pop_front() {
                let _ = done.reply.send(Ok(MineView {
                    height,
                    hash,
                    mined: done.mined,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::super::event::Event;
    use super::super::state::fixtures::{mined_child, TestNode};
    use crate::ledger::pow::MiningOutcome;
    use crate::net::{NetCommand, Publication};

    #[test]
    fn a_mined_block_joins_the_chain_is_published_and_answers_the_mine_command() {
        let mut node = TestNode::new();
        let (reply, mut answer) = oneshot::channel();
        node.state.miner.request(1, reply);
        let params = node.state.params.clone();
        let address = node.state.address;
        let block = mined_child(&params, &params.genesis(), address, params.reward);
        let hash = block.block_hash();
        node.state.on_mined(0, MiningOutcome::Found(block.clone()));
        // On the chain, so the next attempt builds on it; but not announced before it is
        // stored.
        assert_eq!(node.state.chain.tip(), hash);
        assert!(node.commands().is_empty());
        assert!(node.emitted().is_empty());
        assert!(answer.try_recv().is_err());
        assert_eq!(node.state.store.tip().unwrap(), params.genesis_hash());
        assert!(node.state.store_pending_by().is_some());
        node.state.store_pending();
        assert_eq!(node.state.store.tip().unwrap(), hash);
        assert_eq!(node.state.store_pending_by(), None);
        assert_eq!(
            node.commands(),
            vec![NetCommand::Publish(Publication::Block(block))]
        );
        assert!(matches!(
            node.emitted()[..],
            [Event::BlockAccepted { height: 1, .. }]
        ));
        let view = answer.try_recv().expect("answered").expect("mined");
        assert_eq!((view.height, view.hash, view.mined), (1, hash, 1));
    }

    #[test]
    fn blocks_mined_in_a_row_are_stored_in_one_commit_then_announced_in_order() {
        let mut node = TestNode::new();
        let (reply, mut answer) = oneshot::channel();
        node.state.miner.request(3, reply);
        let params = node.state.params.clone();
        let address = node.state.address;
        let mut parent = params.genesis();
        let mut blocks = Vec::new();
        for _ in 0..3 {
            let block = mined_child(&params, &parent, address, params.reward);
            node.state.on_mined(0, MiningOutcome::Found(block.clone()));
            parent = block.clone();
            blocks.push(block);
        }
        assert_eq!(node.state.chain.height(), 3);
        assert_eq!(node.state.store.tip().unwrap(), params.genesis_hash());
        assert!(node.commands().is_empty());
        node.state.store_pending();
        assert_eq!(node.state.store.tip().unwrap(), parent.block_hash());
        node.state.store.verify().unwrap();
        let published: Vec<NetCommand> = blocks
            .into_iter()
            .map(|b| NetCommand::Publish(Publication::Block(b)))
            .collect();
        assert_eq!(node.commands(), published);
        let heights: Vec<u64> = node
            .emitted()
            .iter()
            .filter_map(|e| match e {
                Event::BlockAccepted { height, .. } => Some(*height),
                _ => None,
            })
            .collect();
        assert_eq!(heights, vec![1, 2, 3]);
        let view = answer.try_recv().expect("answered").expect("mined");
        assert_eq!((view.height, view.mined), (3, 3));
    }

    #[test]
    fn a_commit_on_the_writer_thread_announces_nothing_until_the_loop_takes_its_result() {
        let mut node = TestNode::new();
        let (reply, mut answer) = oneshot::channel();
        node.state.miner.request(2, reply);
        let params = node.state.params.clone();
        let address = node.state.address;
        let first = mined_child(&params, &params.genesis(), address, params.reward);
        node.state.on_mined(0, MiningOutcome::Found(first.clone()));
        node.state.start_commit();
        // While it runs, no new commit is due and the next block waits for the next one.
        assert_eq!(node.state.store_pending_by(), None);
        let second = mined_child(&params, &first, address, params.reward);
        node.state.on_mined(0, MiningOutcome::Found(second.clone()));
        let started = std::time::Instant::now();
        while node.state.store.tip().unwrap() != first.block_hash() {
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // Stored, but the loop has not taken the result: nothing is announced yet, and
        // both blocks still count as waiting for the `mine` command.
        assert!(node.commands().is_empty());
        assert!(node.emitted().is_empty());
        assert_eq!(node.state.unstored.mined(), 2);
        node.state.on_commit_finished();
        assert_eq!(
            node.commands(),
            vec![NetCommand::Publish(Publication::Block(first.clone()))]
        );
        assert!(matches!(
            node.emitted()[..],
            [Event::BlockAccepted { height: 1, .. }]
        ));
        assert!(
            answer.try_recv().is_err(),
            "the second block is not stored yet"
        );
        node.state.store_pending();
        assert_eq!(node.state.store.tip().unwrap(), second.block_hash());
        node.state.store.verify().unwrap();
        assert_eq!(
            node.commands(),
            vec![NetCommand::Publish(Publication::Block(second))]
        );
        let view = answer.try_recv().expect("answered").expect("mined");
        assert_eq!((view.height, view.mined), (2, 2));
    }

    #[test]
    fn a_found_block_reaches_the_loop_even_when_the_outcome_channel_is_full() {
        let (outcomes, mut loop_side) = tokio::sync::mpsc::channel(1);
        super::report(&outcomes, 1, MiningOutcome::Cancelled);
        let params = crate::ledger::NetworkParams::for_tests("mining-report", 1);
        let genesis = params.genesis();
        let block = mined_child(&params, &genesis, crate::ledger::Address([1; 20]), 0);
        let miner = std::thread::spawn(move || {
            super::report(&outcomes, 2, MiningOutcome::Found(block));
        });
        assert!(matches!(
            loop_side.blocking_recv(),
            Some((1, MiningOutcome::Cancelled))
        ));
        assert!(matches!(
            loop_side.blocking_recv(),
            Some((2, MiningOutcome::Found(_)))
        ));
        assert!(miner.join().is_ok());
    }

    #[test]
    fn a_seventeenth_waiting_mine_command_is_refused_as_busy() {
        let mut node = TestNode::new();
        let mut answers = Vec::new();
        for _ in 0..=super::MAX_MINE_REQUESTS {
            let (reply, answer) = oneshot::channel();
            node.state.miner.request(3, reply);
            answers.push(answer);
        }
        let last = answers.last_mut().expect("one answer").try_recv();
        assert_eq!(last, Ok(Err(super::CommandError::MinerBusy)));
        assert!(answers[0].try_recv().is_err(), "the first still waits");
    }
}
