//! Proof of work: the multi-threaded miner.
//!
//! SKELETON: signatures agreed between modules; bodies are being written.

use super::block::Block;

/// How a mining attempt ended.
#[derive(Debug)]
pub enum MiningOutcome {
    /// A nonce was found: the block is valid proof of work.
    Found(Block),
    /// Cancelled before a nonce was found.
    Cancelled,
}

/// A running mining attempt; dropping it does not stop it, `cancel` does.
#[derive(Debug)]
pub struct MiningHandle {}

impl MiningHandle {
    /// Stops the attempt within milliseconds; `on_done` then receives `Cancelled`.
    pub fn cancel(&self) {
        todo!()
    }
}

/// Starts mining `block` on `threads` threads and returns at once; `on_done` runs on a miner
/// thread with the outcome.
pub fn start_mining(
    block: Block,
    threads: usize,
    on_done: impl FnOnce(MiningOutcome) + Send + 'static,
) -> MiningHandle {
    let _ = (block, threads, on_done);
    todo!()
}
