//! Gossip that could not be published yet because no peer was subscribed to its topic.
//!
//! Gossipsub refuses to publish on a topic nobody we know subscribes to. A node that mines or
//! takes a transaction before its first peer arrives keeps the encoded message here and
//! publishes it once a peer subscribes. Rules it keeps: at most [`MAX_UNANNOUNCED`] messages per
//! topic, the oldest dropped first (a peer that arrives later learns older blocks by sync and
//! older transactions by asking for our mempool).

use std::collections::VecDeque;

/// Most messages kept per topic for re-announcing once a peer subscribes.
pub const MAX_UNANNOUNCED: usize = 64;

/// Which of our two topics a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// Blocks.
    Blocks,
    /// Pending transactions.
    Txs,
}

/// The held-back messages of both topics, oldest first.
#[derive(Debug, Default)]
pub struct Unannounced {
    blocks: VecDeque<Vec<u8>>,
    txs: VecDeque<Vec<u8>>,
}

impl Unannounced {
    /// Nothing held back.
    pub fn new() -> Self {
        Self::default()
    }

    fn queue(&mut self, topic: TopicKind) -> &mut VecDeque<Vec<u8>> {
        match topic {
            TopicKind::Blocks => &mut self.blocks,
            TopicKind::Txs => &mut self.txs,
        }
    }

    /// Keeps a message that could not be published, dropping the topic's oldest when full.
    pub fn hold(&mut self, topic: TopicKind, data: Vec<u8>) {
        let queue = self.queue(topic);
        if queue.len() >= MAX_UNANNOUNCED {
            queue.pop_front();
        }
        queue.push_back(data);
    }

    /// Takes every message held for `topic`, oldest first (a peer just subscribed to it).
    pub fn take(&mut self, topic: TopicKind) -> Vec<Vec<u8>> {
        self.queue(topic).drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_messages_come_back_oldest_first_for_their_topic_only() {
        let mut held = Unannounced::new();
        held.hold(TopicKind::Blocks, vec![1]);
        held.hold(TopicKind::Txs, vec![2]);
        held.hold(TopicKind::Blocks, vec![3]);
        assert_eq!(held.take(TopicKind::Blocks), vec![vec![1], vec![3]]);
        assert!(held.take(TopicKind::Blocks).is_empty());
        assert_eq!(held.take(TopicKind::Txs), vec![vec![2]]);
    }

    #[test]
    fn a_full_topic_drops_its_oldest_message() {
        let mut held = Unannounced::new();
        for i in 0..=MAX_UNANNOUNCED {
            held.hold(TopicKind::Txs, vec![i as u8]);
        }
        let kept = held.take(TopicKind::Txs);
        assert_eq!(kept.len(), MAX_UNANNOUNCED);
        assert_eq!(kept[0], vec![1]);
    }
}
