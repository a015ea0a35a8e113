//! What goes over the wire: gossip topic names, the sync protocol's messages, the size caps, and
//! the request-response codec that frames them.
//!
//! Every message is the canonical bincode encoding of [`crate::ledger::encode`]; every decode is
//! capped before a byte is parsed and refuses trailing bytes. A request-response stream carries
//! exactly one message each way: the writer writes it whole and closes its side, the reader reads
//! to the end of the stream (at most the cap plus one byte) and decodes.

use std::io;
use std::sync::Arc;

use bincode::{Decode, Encode};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::gossipsub::IdentTopic;
use libp2p::StreamProtocol;

use crate::ledger::encode::{decode, encode, DecodeError};
use crate::ledger::params::{DEFAULT_MAX_BLOCK_BYTES, DEFAULT_MAX_BLOCK_TXS};
use crate::ledger::{Block, BlockHash, BlockHeader, NetworkParams, Transaction};

/// The sync protocol's name, negotiated by multistream-select.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/gossipchain/sync/2");

/// Identify's protocol version string: peers that speak another one are not ours.
pub const IDENTIFY_PROTOCOL: &str = "/gossipchain/1";

pub use crate::ledger::chain::MAX_LOCATOR_LEN;
pub use crate::ledger::mempool::MAX_TX_BYTES;

/// Cap on an encoded sync request: a locator of [`MAX_LOCATOR_LEN`] hashes, or
/// [`MAX_BLOCKS_PER_REQUEST`] hashes, fits with room.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Most hashes one `GetBlocks` may name, and so most blocks one `Blocks` answer may carry.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 128;

/// Most headers one `Headers` answer may carry (92 bytes each).
pub const MAX_HEADERS_PER_RESPONSE: u32 = 2_000;

/// Bytes of blocks a node puts in one `Blocks` answer (a single larger block still goes alone).
pub const RESPONSE_BLOCK_BYTES: usize = 2 * 1024 * 1024;

/// Most transactions one `GetMempool` may ask for and one `Mempool` answer may carry.
pub const MAX_TXS_PER_RESPONSE: u32 = 1024;

/// Bytes of transactions a node puts in one `Mempool` answer: with the count cap and
/// [`MAX_TX_BYTES`], an answer always fits the response cap.
pub const RESPONSE_TX_BYTES: usize = 512 * 1024;

/// Most memory decoding one request may claim: its input cap. Every list in a request holds
/// 32-byte hashes, which take in memory what they take on the wire, so no valid request claims
/// more than its bytes, and a length prefix promising more hashes than fit is refused unread.
pub const REQUEST_DECODE_LIMIT: usize = MAX_REQUEST_BYTES;

/// Most memory decoding one response may claim, derived from the caps of its largest kind
/// (`Blocks`): the bytes of a maximal answer under the default block cap, plus the room its
/// block list and one block's transaction list claim before their elements are read.
pub const RESPONSE_DECODE_LIMIT: usize = RESPONSE_BLOCK_BYTES
    + DEFAULT_MAX_BLOCK_BYTES
    + 1024
    + MAX_BLOCKS_PER_REQUEST as usize * size_of::<Block>()
    + DEFAULT_MAX_BLOCK_TXS * size_of::<Transaction>();

crate::decode_limit!(SyncRequest, REQUEST_DECODE_LIMIT);
crate::decode_limit!(SyncResponse, RESPONSE_DECODE_LIMIT);

/// Cap on an encoded sync response: the block budget plus one maximal block and framing.
pub fn max_response_bytes(params: &NetworkParams) -> usize {
    RESPONSE_BLOCK_BYTES + params.max_block_bytes + 1024
}

/// Gossipsub's `max_transmit_size`: well above the largest valid block plus signature and framing,
/// so that no valid block is ever dropped by a receiver.
pub fn max_gossip_bytes(params: &NetworkParams) -> usize {
    2 * params.max_block_bytes + 64 * 1024
}

/// The gossip topic for blocks of the network with this genesis.
pub fn blocks_topic(genesis: &BlockHash) -> IdentTopic {
    IdentTopic::new(format!("gossipchain/{genesis}/blocks"))
}

/// The gossip topic for pending transactions of the network with this genesis.
pub fn txs_topic(genesis: &BlockHash) -> IdentTopic {
    IdentTopic::new(format!("gossipchain/{genesis}/txs"))
}

/// Decodes a block gossiped on the blocks topic.
///
/// # Errors
/// [`DecodeError`] for input over the network's block cap, malformed or with trailing bytes.
pub fn decode_gossip_block(data: &[u8], params: &NetworkParams) -> Result<Block, DecodeError> {
    decode(data, params.max_block_bytes)
}

/// Decodes a transaction gossiped on the transactions topic.
///
/// # Errors
/// [`DecodeError`] for input over [`MAX_TX_BYTES`], malformed or with trailing bytes.
pub fn decode_gossip_tx(data: &[u8]) -> Result<Transaction, DecodeError> {
    decode(data, MAX_TX_BYTES)
}

/// A node's view of its own chain, exchanged on every new connection and polled after.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Status {
    /// The network's identity: peers with another genesis are disconnected.
    pub genesis: BlockHash,
    /// Height of the sender's tip.
    pub height: u64,
    /// Hash of the sender's tip.
    pub tip: BlockHash,
    /// Cumulative work of the sender's main chain: the number the longest-chain rule compares.
    pub total_work: u128,
}

/// A request on the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SyncRequest {
    /// Variant 0: here is my status, send me yours.
    Status(Status),
    /// Variant 1: send the headers of your main chain after the first locator hash you have
    /// on your main chain (genesis if none), lowest first, at most
    /// min(`max_headers`, [`MAX_HEADERS_PER_RESPONSE`]) of them.
    GetHeaders {
        /// Block hashes, newest first (at most [`MAX_LOCATOR_LEN`]).
        locator: Vec<BlockHash>,
        /// How many headers the requester wants at most.
        max_headers: u32,
    },
    /// Variant 2: send me your pending transactions, at most `max_txs` of them.
    GetMempool {
        /// How many transactions the requester wants at most.
        max_txs: u32,
    },
    /// Variant 3: send the blocks with these hashes that you hold, in this order, stopping at
    /// the first you do not hold or at the byte budget (at most [`MAX_BLOCKS_PER_REQUEST`]).
    GetBlocks {
        /// The hashes wanted, lowest height first.
        hashes: Vec<BlockHash>,
    },
}

/// A response on the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SyncResponse {
    /// Variant 0: the answer to [`SyncRequest::Status`].
    Status(Status),
    /// Variant 1: the answer to [`SyncRequest::GetHeaders`], lowest height first, each the
    /// parent of the next; empty when the requester has our tip.
    Headers(Vec<BlockHeader>),
    /// Variant 2: the answer to [`SyncRequest::GetMempool`]: pending transactions in the order
    /// a block template takes them (highest fee first, each sender's nonces in order).
    Mempool(Vec<Transaction>),
    /// Variant 3: the answer to [`SyncRequest::GetBlocks`]: a prefix of the requested blocks.
    /// Shared with the chain that answers (an answer costs no copy of its blocks); encoded
    /// exactly as a `Vec<Block>`.
    Blocks(Vec<Arc<Block>>),
}

/// Why a sync message was refused before it reached the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A locator longer than [`MAX_LOCATOR_LEN`].
    #[error("locator of {0} hashes is over the cap of {MAX_LOCATOR_LEN}")]
    LocatorTooLong(usize),
    /// A `GetBlocks` request naming more than [`MAX_BLOCKS_PER_REQUEST`] hashes.
    #[error("request for {0} blocks is over the cap of {MAX_BLOCKS_PER_REQUEST}")]
    TooManyHashes(usize),
    /// A `Blocks` answer with more than [`MAX_BLOCKS_PER_REQUEST`] blocks.
    #[error("answer of {0} blocks is over the cap of {MAX_BLOCKS_PER_REQUEST}")]
    TooManyBlocks(usize),
    /// A `Headers` answer with more than [`MAX_HEADERS_PER_RESPONSE`] headers.
    #[error("answer of {0} headers is over the cap of {MAX_HEADERS_PER_RESPONSE}")]
    TooManyHeaders(usize),
    /// A `Mempool` answer with more than [`MAX_TXS_PER_RESPONSE`] transactions.
    #[error("answer of {0} transactions is over the cap of {MAX_TXS_PER_RESPONSE}")]
    TooManyTxs(usize),
}

impl From<WireError> for io::Error {
    fn from(e: WireError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Decodes a sync request and checks its caps.
///
/// # Errors
/// [`WireError`] naming the broken cap or the malformed encoding.
pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, WireError> {
    let request: SyncRequest = decode(bytes, MAX_REQUEST_BYTES)?;
    match &request {
        SyncRequest::GetHeaders { locator, .. } if locator.len() > MAX_LOCATOR_LEN => {
            Err(WireError::LocatorTooLong(locator.len()))
        }
        SyncRequest::GetBlocks { hashes } if hashes.len() > MAX_BLOCKS_PER_REQUEST as usize => {
            Err(WireError::TooManyHashes(hashes.len()))
        }
        _ => Ok(request),
    }
}

/// Decodes a sync response of at most `max_bytes` and checks its caps.
///
/// # Errors
/// [`WireError`] naming the broken cap or the malformed encoding.
pub fn decode_response(bytes: &[u8], max_bytes: usize) -> Result<SyncResponse, WireError> {
    let response: SyncResponse = decode(bytes, max_bytes)?;
    match &response {
        SyncResponse::Blocks(blocks) if blocks.len() > MAX_BLOCKS_PER_REQUEST as usize => {
            Err(WireError::TooManyBlocks(blocks.len()))
        }
        SyncResponse::Headers(headers) if headers.len() > MAX_HEADERS_PER_RESPONSE as usize => {
            Err(WireError::TooManyHeaders(headers.len()))
        }
        SyncResponse::Mempool(txs) if txs.len() > MAX_TXS_PER_RESPONSE as usize => {
            Err(WireError::TooManyTxs(txs.len()))
        }
        _ => Ok(response),
    }
}

/// A sync request as the codec frames it: the encoding going out, or the bytes that came in
/// (at most [`MAX_REQUEST_BYTES`] plus one). The codec does not decode requests: libp2p drops an
/// inbound request whose read fails without telling anyone, so the network decodes the bytes
/// itself with [`decode_request`] and reports a refused one as garbage from its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFrame(pub Vec<u8>);

impl RequestFrame {
    /// The frame that carries `request`.
    pub fn encode(request: &SyncRequest) -> Self {
        Self(encode(request))
    }
}

/// The request-response codec of the sync protocol: one bincode message each way, capped.
#[derive(Debug, Clone)]
pub struct SyncCodec {
    max_response_bytes: usize,
}

impl SyncCodec {
    /// A codec for the network `params` (its block cap sets the response cap).
    pub fn new(params: &NetworkParams) -> Self {
        Self {
            max_response_bytes: max_response_bytes(params),
        }
    }
}

/// Reads to the end of the stream, or one byte past `max` so that the decoder refuses it.
async fn read_capped<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = RequestFrame;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RequestFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(RequestFrame(read_capped(io, MAX_REQUEST_BYTES).await?))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_capped(io, self.max_response_bytes).await?;
        Ok(decode_response(&bytes, self.max_response_bytes)?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: RequestFrame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&request.0).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match &response {
            // Block by block: a peer that does not read makes us hold one block's encoding,
            // not the whole answer's.
            SyncResponse::Blocks(blocks) => {
                io.write_all(&blocks_answer_prefix(blocks.len())).await?;
                for block in blocks {
                    io.write_all(&encode(&**block)).await?;
                }
            }
            _ => io.write_all(&encode(&response)).await?,
        }
        io.close().await
    }
}

/// The bytes of a `Blocks` answer of `count` blocks before its first block: the variant tag
/// and the list length.
fn blocks_answer_prefix(count: usize) -> Vec<u8> {
    let mut prefix = encode(&SyncResponse::Blocks(Vec::new()));
    let len_at = prefix.len() - 8;
    prefix[len_at..].copy_from_slice(&(count as u64).to_le_bytes());
    prefix
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use libp2p::request_response::Codec;

    use super::*;
    use crate::ledger::Address;

    fn status() -> Status {
        Status {
            genesis: BlockHash([1; 32]),
            height: 7,
            tip: BlockHash([2; 32]),
            total_work: 1 << 90,
        }
    }

    fn params() -> NetworkParams {
        NetworkParams::for_tests("wire", 0)
    }

    #[test]
    fn a_request_survives_the_codec_round_trip() {
        let request = SyncRequest::GetHeaders {
            locator: vec![BlockHash([3; 32]), BlockHash([4; 32])],
            max_headers: 16,
        };
        let mut codec = SyncCodec::new(&params());
        let mut wire = futures::io::Cursor::new(Vec::new());
        let frame = RequestFrame::encode(&request);
        block_on(codec.write_request(&SYNC_PROTOCOL, &mut wire, frame)).unwrap();
        let mut reader = futures::io::Cursor::new(wire.into_inner());
        let back = block_on(codec.read_request(&SYNC_PROTOCOL, &mut reader)).unwrap();
        assert_eq!(decode_request(&back.0), Ok(request));
    }

    #[test]
    fn a_blocks_answer_written_block_by_block_is_byte_for_byte_its_encoding() {
        let params = params();
        let genesis = Arc::new(params.genesis());
        for count in [0, 1, 3] {
            let response = SyncResponse::Blocks((0..count).map(|_| Arc::clone(&genesis)).collect());
            let mut codec = SyncCodec::new(&params);
            let mut wire = futures::io::Cursor::new(Vec::new());
            block_on(codec.write_response(&SYNC_PROTOCOL, &mut wire, response.clone())).unwrap();
            assert_eq!(wire.into_inner(), encode(&response), "{count} blocks");
        }
    }

    #[test]
    fn a_response_with_blocks_survives_the_codec_round_trip() {
        let response = SyncResponse::Blocks(vec![Arc::new(params().genesis())]);
        let mut codec = SyncCodec::new(&params());
        let mut wire = futures::io::Cursor::new(Vec::new());
        block_on(codec.write_response(&SYNC_PROTOCOL, &mut wire, response.clone())).unwrap();
        let mut reader = futures::io::Cursor::new(wire.into_inner());
        let back = block_on(codec.read_response(&SYNC_PROTOCOL, &mut reader)).unwrap();
        assert_eq!(back, response);
    }

    #[test]
    fn a_tiny_request_claiming_half_a_million_locator_hashes_is_refused_unread() {
        // Variant 1 (GetHeaders), then a locator length of 500,000: 12 bytes that would make a
        // 16 MiB limit reserve 16 MB for hashes that never come.
        let mut bytes = 1u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&500_000u64.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        assert_eq!(bytes.len(), 16);
        assert_eq!(
            decode_request(&bytes),
            Err(WireError::Decode(DecodeError::OverDecodeLimit {
                limit: REQUEST_DECODE_LIMIT
            }))
        );
    }

    #[test]
    fn a_tiny_response_claiming_a_million_headers_is_refused_unread() {
        let mut bytes = 1u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&1_000_000u64.to_le_bytes());
        assert_eq!(
            decode_response(&bytes, max_response_bytes(&params())),
            Err(WireError::Decode(DecodeError::OverDecodeLimit {
                limit: RESPONSE_DECODE_LIMIT
            }))
        );
    }

    #[test]
    fn a_tiny_gossip_block_claiming_a_million_transactions_is_refused_unread() {
        let mut bytes = encode(&params().genesis().header);
        bytes.extend_from_slice(&1_000_000u64.to_le_bytes());
        assert_eq!(
            decode_gossip_block(&bytes, &params()),
            Err(DecodeError::OverDecodeLimit {
                limit: crate::ledger::block::BLOCK_DECODE_LIMIT
            })
        );
    }

    #[test]
    fn the_largest_valid_messages_fit_their_decode_limits() {
        let p = NetworkParams::devnet();
        // A maximal request, and the response kinds other than Blocks, fit the limits.
        let locator =
            vec![BlockHash([9; 32]); MAX_LOCATOR_LEN.max(MAX_BLOCKS_PER_REQUEST as usize)];
        let request = SyncRequest::GetHeaders {
            locator,
            max_headers: 1,
        };
        assert!(decode_request(&encode(&request)).is_ok());
        let headers = 12 + MAX_HEADERS_PER_RESPONSE as usize * size_of::<BlockHeader>();
        let mempool = 12
            + RESPONSE_TX_BYTES
            + MAX_TX_BYTES
            + MAX_TXS_PER_RESPONSE as usize * size_of::<Transaction>();
        assert!(headers <= RESPONSE_DECODE_LIMIT && mempool <= RESPONSE_DECODE_LIMIT);
        assert!(max_response_bytes(&p) <= RESPONSE_DECODE_LIMIT);
        assert!(p.max_block_bytes <= crate::ledger::block::BLOCK_DECODE_LIMIT);
    }

    #[test]
    fn status_encoding_is_byte_exact() {
        let bytes = encode(&SyncRequest::Status(status()));
        // u32 variant, 32-byte genesis, u64 height, 32-byte tip, u128 work: all little endian.
        assert_eq!(bytes.len(), 4 + 32 + 8 + 32 + 16);
        assert_eq!(&bytes[..4], &[0, 0, 0, 0]);
        assert_eq!(&bytes[36..44], &7u64.to_le_bytes());
        assert_eq!(&bytes[76..], &(1u128 << 90).to_le_bytes());
    }

    #[test]
    fn garbage_is_refused_as_malformed() {
        let garbage = [0xffu8, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            decode_request(&garbage),
            Err(WireError::Decode(DecodeError::Malformed(_)))
        ));
        assert!(matches!(
            decode_response(&garbage, 1000),
            Err(WireError::Decode(DecodeError::Malformed(_)))
        ));
        assert!(decode_gossip_tx(&garbage).is_err());
        assert!(decode_gossip_block(&garbage, &params()).is_err());
        assert!(decode_request(&[]).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&SyncRequest::Status(status()));
        bytes.push(0);
        assert_eq!(
            decode_request(&bytes),
            Err(WireError::Decode(DecodeError::TrailingBytes(1)))
        );
    }

    #[test]
    fn an_oversized_request_is_refused_before_decoding() {
        let bytes = vec![0u8; MAX_REQUEST_BYTES + 1];
        assert!(matches!(
            decode_request(&bytes),
            Err(WireError::Decode(DecodeError::TooLarge { .. }))
        ));
    }

    #[test]
    fn an_oversized_stream_is_cut_at_the_cap_and_refused() {
        let mut codec = SyncCodec::new(&params());
        let mut reader = futures::io::Cursor::new(vec![0u8; 10 * MAX_REQUEST_BYTES]);
        let frame = block_on(codec.read_request(&SYNC_PROTOCOL, &mut reader)).unwrap();
        assert_eq!(reader.position(), MAX_REQUEST_BYTES as u64 + 1);
        assert!(matches!(
            decode_request(&frame.0),
            Err(WireError::Decode(DecodeError::TooLarge { .. }))
        ));
    }

    #[test]
    fn a_locator_over_the_cap_is_refused() {
        let request = SyncRequest::GetHeaders {
            locator: vec![BlockHash::ZERO; MAX_LOCATOR_LEN + 1],
            max_headers: 1,
        };
        assert_eq!(
            decode_request(&encode(&request)),
            Err(WireError::LocatorTooLong(MAX_LOCATOR_LEN + 1))
        );
    }

    #[test]
    fn an_answer_with_too_many_blocks_is_refused() {
        let genesis = params().genesis();
        let genesis = Arc::new(genesis);
        let blocks: Vec<_> = (0..=MAX_BLOCKS_PER_REQUEST)
            .map(|_| Arc::clone(&genesis))
            .collect();
        let bytes = encode(&SyncResponse::Blocks(blocks));
        assert_eq!(
            decode_response(&bytes, max_response_bytes(&params())),
            Err(WireError::TooManyBlocks(
                MAX_BLOCKS_PER_REQUEST as usize + 1
            ))
        );
    }

    #[test]
    fn requests_and_answers_over_the_header_and_hash_caps_are_refused() {
        let hashes = vec![BlockHash::ZERO; MAX_BLOCKS_PER_REQUEST as usize + 1];
        assert_eq!(
            decode_request(&encode(&SyncRequest::GetBlocks { hashes })),
            Err(WireError::TooManyHashes(
                MAX_BLOCKS_PER_REQUEST as usize + 1
            ))
        );
        let header = params().genesis().header;
        let headers = vec![header; MAX_HEADERS_PER_RESPONSE as usize + 1];
        assert_eq!(
            decode_response(
                &encode(&SyncResponse::Headers(headers)),
                max_response_bytes(&params())
            ),
            Err(WireError::TooManyHeaders(
                MAX_HEADERS_PER_RESPONSE as usize + 1
            ))
        );
    }

    #[test]
    fn header_and_block_messages_are_byte_exact() {
        let locator = vec![BlockHash([3; 32])];
        let bytes = encode(&SyncRequest::GetHeaders {
            locator,
            max_headers: 2_000,
        });
        // u32 variant 1, u64 count, 32-byte hash, u32 max.
        assert_eq!(&bytes[..4], &[1, 0, 0, 0]);
        assert_eq!(&bytes[4..12], &1u64.to_le_bytes());
        assert_eq!(&bytes[44..], &2_000u32.to_le_bytes());
        let bytes = encode(&SyncRequest::GetBlocks {
            hashes: vec![BlockHash([4; 32]); 2],
        });
        assert_eq!(bytes.len(), 4 + 8 + 64);
        assert_eq!(&bytes[..4], &[3, 0, 0, 0]);
        let header = params().genesis().header;
        let bytes = encode(&SyncResponse::Headers(vec![header.clone()]));
        assert_eq!(bytes.len(), 4 + 8 + BlockHeader::ENCODED_LEN);
        assert_eq!(&bytes[..4], &[1, 0, 0, 0]);
        assert_eq!(&bytes[12..], &header.encoded()[..]);
        assert_eq!(
            &encode(&SyncResponse::Blocks(Vec::new()))[..4],
            &[3, 0, 0, 0]
        );
    }

    fn transfers(count: usize) -> Vec<Transaction> {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        (0..count as u64)
            .map(|nonce| {
                Transaction::sign_transfer(
                    &key,
                    &crate::ledger::BlockHash::ZERO.into(),
                    Address([5; 20]),
                    10,
                    nonce % 7,
                    nonce,
                )
            })
            .collect()
    }

    #[test]
    fn a_mempool_request_and_its_answer_survive_the_codec_round_trip() {
        let mut codec = SyncCodec::new(&params());
        let request = SyncRequest::GetMempool { max_txs: 99 };
        let mut wire = futures::io::Cursor::new(Vec::new());
        let frame = RequestFrame::encode(&request);
        block_on(codec.write_request(&SYNC_PROTOCOL, &mut wire, frame)).unwrap();
        let mut reader = futures::io::Cursor::new(wire.into_inner());
        let back = block_on(codec.read_request(&SYNC_PROTOCOL, &mut reader)).unwrap();
        assert_eq!(decode_request(&back.0), Ok(request));

        let response = SyncResponse::Mempool(transfers(3));
        let mut wire = futures::io::Cursor::new(Vec::new());
        block_on(codec.write_response(&SYNC_PROTOCOL, &mut wire, response.clone())).unwrap();
        let mut reader = futures::io::Cursor::new(wire.into_inner());
        let back = block_on(codec.read_response(&SYNC_PROTOCOL, &mut reader)).unwrap();
        assert_eq!(back, response);
    }

    #[test]
    fn mempool_messages_are_appended_and_byte_exact() {
        let request = encode(&SyncRequest::GetMempool { max_txs: 0x0102 });
        assert_eq!(request, vec![2, 0, 0, 0, 2, 1, 0, 0]);
        let txs = transfers(2);
        let response = encode(&SyncResponse::Mempool(txs.clone()));
        assert_eq!(&response[..4], &[2, 0, 0, 0]);
        assert_eq!(&response[4..12], &2u64.to_le_bytes());
        // A transfer without a memo is 152 bytes (encoding.md).
        assert_eq!(response[12..].len(), 2 * 152);
        assert_eq!(&response[12..12 + 152], &encode(&txs[0])[..]);
        // The header variants carry tag 1.
        let get_headers = SyncRequest::GetHeaders {
            locator: Vec::new(),
            max_headers: 1,
        };
        assert_eq!(&encode(&get_headers)[..4], &[1, 0, 0, 0]);
        assert_eq!(
            &encode(&SyncResponse::Headers(Vec::new()))[..4],
            &[1, 0, 0, 0]
        );
    }

    #[test]
    fn a_mempool_answer_with_trailing_bytes_is_refused() {
        let mut bytes = encode(&SyncResponse::Mempool(transfers(1)));
        bytes.extend([0, 0]);
        assert_eq!(
            decode_response(&bytes, max_response_bytes(&params())),
            Err(WireError::Decode(DecodeError::TrailingBytes(2)))
        );
        let mut request = encode(&SyncRequest::GetMempool { max_txs: 1 });
        request.push(0);
        assert_eq!(
            decode_request(&request),
            Err(WireError::Decode(DecodeError::TrailingBytes(1)))
        );
    }

    #[test]
    fn an_answer_with_too_many_transactions_is_refused() {
        let txs = transfers(MAX_TXS_PER_RESPONSE as usize + 1);
        let bytes = encode(&SyncResponse::Mempool(txs));
        assert_eq!(
            decode_response(&bytes, max_response_bytes(&params())),
            Err(WireError::TooManyTxs(MAX_TXS_PER_RESPONSE as usize + 1))
        );
    }

    #[test]
    fn the_largest_mempool_answer_fits_the_response_cap() {
        // A responder puts at most the byte budget in an answer; with its framing that stays
        // under the block budget, which every network's response cap exceeds.
        let framing = 4 + 8;
        assert!(framing + RESPONSE_TX_BYTES <= RESPONSE_BLOCK_BYTES);
        assert!(framing + RESPONSE_TX_BYTES < max_response_bytes(&params()));
        // A full count of transfers is well inside the budget.
        let full = encode(&SyncResponse::Mempool(transfers(
            MAX_TXS_PER_RESPONSE as usize,
        )));
        assert!(full.len() <= framing + RESPONSE_TX_BYTES);
        let decoded = decode_response(&full, max_response_bytes(&params())).unwrap();
        assert!(
            matches!(decoded, SyncResponse::Mempool(t) if t.len() == MAX_TXS_PER_RESPONSE as usize)
        );
    }

    #[test]
    fn topics_carry_the_genesis_hash_and_differ_between_networks() {
        let a = NetworkParams::for_tests("a", 1).genesis_hash();
        let b = NetworkParams::for_tests("b", 1).genesis_hash();
        assert_eq!(
            blocks_topic(&a).to_string(),
            format!("gossipchain/{}/blocks", a.to_hex())
        );
        assert_ne!(blocks_topic(&a).hash(), blocks_topic(&b).hash());
        assert_ne!(blocks_topic(&a).hash(), txs_topic(&a).hash());
    }

    #[test]
    fn gossip_cap_is_well_above_the_largest_block() {
        let p = NetworkParams::devnet();
        assert!(max_gossip_bytes(&p) > p.max_block_bytes + 32 * 1024);
        assert!(max_response_bytes(&p) > p.max_block_bytes);
    }
}
