//! When to ask a peer for its pending transactions. It does no I/O.
//!
//! Gossip reaches only the peers subscribed when a transaction is published, so a node that
//! connects later asks each new peer for its mempool. Rules it keeps: a peer is asked at most
//! once per connection (so at most one such request per peer is ever outstanding), and only
//! after its status was accepted and our chain has at least the work the peer claims, so that
//! its transactions are checked against a state as recent as the one they were made for (asked
//! earlier, a node still syncing would drop them all as overspends).

use std::collections::HashMap;

use libp2p::PeerId;

/// Where one connected peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// Connected; its status has not come yet (`None`), or it claims this much work.
    Waiting(Option<u128>),
    /// Asked on this connection.
    Asked,
}

/// The connected peers whose mempool is still to be asked for.
#[derive(Debug, Default)]
pub struct MempoolFetches {
    peers: HashMap<PeerId, Fetch>,
}

impl MempoolFetches {
    /// No peers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A first connection to `peer` opened: it is to be asked once its status is in.
    pub fn connected(&mut self, peer: PeerId) {
        self.peers.insert(peer, Fetch::Waiting(None));
    }

    /// The last connection to `peer` closed; the next connection asks again.
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// `peer`'s status, claiming `work`, was accepted; `local_work` is our chain's. True if
    /// the peer is to be asked now (it then counts as asked).
    pub fn status(&mut self, peer: PeerId, work: u128, local_work: u128) -> bool {
        let Some(fetch) = self.peers.get_mut(&peer) else {
            return false;
        };
        if *fetch == Fetch::Asked {
            return false;
        }
        if work <= local_work {
            *fetch = Fetch::Asked;
            true
        } else {
            *fetch = Fetch::Waiting(Some(work));
            false
        }
    }

    /// The peers to ask now that our chain has `local_work` (each then counts as asked).
    pub fn due(&mut self, local_work: u128) -> Vec<PeerId> {
        let mut due = Vec::new();
        for (peer, fetch) in &mut self.peers {
            if matches!(*fetch, Fetch::Waiting(Some(work)) if work <= local_work) {
                *fetch = Fetch::Asked;
                due.push(*peer);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_with_no_more_work_is_asked_once_per_connection() {
        let mut fetches = MempoolFetches::new();
        let peer = PeerId::random();
        fetches.connected(peer);
        assert!(fetches.status(peer, 10, 10));
        assert!(
            !fetches.status(peer, 10, 10),
            "a status poll does not ask again"
        );
        assert!(fetches.due(100).is_empty());
        fetches.disconnected(&peer);
        assert!(!fetches.status(peer, 10, 10), "not connected, not asked");
        fetches.connected(peer);
        assert!(fetches.status(peer, 5, 10), "a new connection asks again");
    }

    #[test]
    fn a_peer_with_more_work_is_asked_once_we_have_caught_up() {
        let mut fetches = MempoolFetches::new();
        let peer = PeerId::random();
        fetches.connected(peer);
        assert!(!fetches.status(peer, 50, 10));
        assert!(fetches.due(49).is_empty());
        assert_eq!(fetches.due(50), vec![peer]);
        assert!(fetches.due(50).is_empty(), "asked only once");
    }

    #[test]
    fn a_newer_status_replaces_the_claimed_work() {
        let mut fetches = MempoolFetches::new();
        let peer = PeerId::random();
        fetches.connected(peer);
        assert!(!fetches.status(peer, 50, 10));
        assert!(
            fetches.status(peer, 20, 20),
            "it claims less now and we have that much"
        );
    }

    #[test]
    fn a_peer_whose_status_never_came_is_not_asked() {
        let mut fetches = MempoolFetches::new();
        let peer = PeerId::random();
        fetches.connected(peer);
        assert!(fetches.due(u128::MAX).is_empty());
    }
}
