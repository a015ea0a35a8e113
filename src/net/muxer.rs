//! A stream muxer whose orderly close gives up after [`CLOSE_TIMEOUT`].
//!
//! libp2p closes a connection by closing its muxer, and waits for that without a limit. Yamux's
//! close flushes what is queued for the peer; when the peer is gone (a cable pulled, a host cut
//! off the LAN) the flush waits on TCP's retransmissions for many minutes, the connection stays
//! established in the swarm's eyes, and the node neither reports the peer gone nor re-dials it.
//! Bounding the close lets a dead connection end within a second of the node deciding so.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent, StreamMuxerExt};

/// How long an orderly close may take before the connection is dropped as it is.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Wraps a muxer so that [`StreamMuxer::poll_close`] ends after [`CLOSE_TIMEOUT`] at most.
#[derive(Debug)]
pub struct CloseBounded<M> {
    inner: M,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<M> CloseBounded<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            deadline: None,
        }
    }
}

impl<M: StreamMuxer + Unpin> StreamMuxer for CloseBounded<M> {
    type Substream = M::Substream;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.get_mut().inner.poll_inbound_unpin(cx)
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.get_mut().inner.poll_outbound_unpin(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if let Poll::Ready(outcome) = this.inner.poll_close_unpin(cx) {
            return Poll::Ready(outcome);
        }
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_TIMEOUT)));
        // Past the deadline the muxer is dropped with the connection, which closes the socket.
        deadline.as_mut().poll(cx).map(Ok)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        self.get_mut().inner.poll_unpin(cx)
    }
}
