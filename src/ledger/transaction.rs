//! Transactions: account transfers signed with ed25519, and the one coinbase per block.
//!
//! A transfer's txid is the SHA-256 of the canonical encoding of its [`TxBody`] (memo
//! included). Its signature is over those same bytes prefixed with [`TRANSFER_DOMAIN`] and the
//! network's genesis hash ([`NetworkId`]), so a transfer signed for one network never verifies
//! on another; the txid does not include the network, which every transaction of a chain
//! shares. The coinbase is unsigned; it carries its block's height so that two coinbases never
//! share an id.
//!
//! Rules kept: one signature rule, ZIP-215 (as implemented by `ed25519-zebra`), for a
//! transfer checked alone ([`Transaction::verify_signature`], the mempool) and for a block's
//! transfers checked as a batch ([`verify_batch`]): both accept exactly the same signatures,
//! so a transfer the mempool takes is never refused in a block, and the reverse. Signing uses
//! `ed25519-dalek`: signatures are standard RFC 8032 ones, which ZIP-215 accepts. The rules a
//! transfer keeps on its own (its memo, a zero amount only with a memo) are
//! [`Transfer::check_form`], which the state's one transfer rule calls first.

use bincode::{Decode, Encode};
use ed25519_dalek::{Signer, SigningKey};
use ed25519_zebra::{batch, VerificationKey, VerificationKeyBytes};

use super::encode::{encode, encoded_size};
use super::hash::{sha256, Address, NetworkId, TxId};

/// Longest memo a transfer may carry, in bytes of UTF-8 (a consensus rule).
pub const MAX_MEMO_BYTES: usize = 256;

/// The bytes every transfer signature starts with, before the genesis hash: they keep a
/// transfer signature from ever being taken for anything else the same key signs.
pub const TRANSFER_DOMAIN: &[u8; 20] = b"gossipchain transfer";

/// An ed25519 public key: who sends a transfer and who must have signed it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The address coins sent to this key's owner are credited to.
    pub fn address(&self) -> Address {
        let digest = sha256(&self.0);
        let mut a = [0u8; 20];
        a.copy_from_slice(&digest[..20]);
        Address(a)
    }

    /// The key as the ZIP-215 rule reads it, if the bytes decode to a curve point (a
    /// non-canonical encoding is accepted, as ZIP-215 says).
    fn verification_key(&self) -> Option<VerificationKey> {
        VerificationKey::try_from(self.0).ok()
    }

    /// Lowercase hex, as shown to users.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(&self.0[..4]))
    }
}

/// An ed25519 signature over a transfer's signed message ([`Transfer::signing_message`]).
#[derive(Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Signature(pub [u8; 64]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..4]))
    }
}

/// The signed part of a transfer: everything but the signature.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Transfer {
    /// The sender, whose account pays `amount + fee` and whose key signs.
    pub from: PublicKey,
    /// The receiver's address.
    pub to: Address,
    /// Coins moved to `to`.
    pub amount: u64,
    /// Coins paid to the miner of the block that includes this transfer.
    pub fee: u64,
    /// The sender's count of earlier transfers: orders them and makes replays invalid.
    pub nonce: u64,
    /// Up to [`MAX_MEMO_BYTES`] of UTF-8 the sender signs with the transfer (a post, a note);
    /// empty for none.
    pub memo: Vec<u8>,
}

impl Transfer {
    /// What the sender's key signs: [`TRANSFER_DOMAIN`] ‖ the network's genesis hash ‖
    /// `encode(TxBody::Transfer(self))`.
    pub fn signing_message(&self, network: &NetworkId) -> Vec<u8> {
        let body = encode(&TxBody::Transfer(self.clone()));
        let mut message = Vec::with_capacity(TRANSFER_DOMAIN.len() + 32 + body.len());
        message.extend_from_slice(TRANSFER_DOMAIN);
        message.extend_from_slice(network.0.as_bytes());
        message.extend_from_slice(&body);
        message
    }

    /// The memo as text, if it has one (it is UTF-8 in every valid transfer).
    pub fn memo_text(&self) -> Option<&str> {
        if self.memo.is_empty() {
            None
        } else {
            std::str::from_utf8(&self.memo).ok()
        }
    }

    /// The rules a transfer keeps on its own, in order: a memo of at most
    /// [`MAX_MEMO_BYTES`], valid UTF-8, and a positive amount unless the memo is non-empty.
    ///
    /// # Errors
    /// [`TxError::MemoTooLong`], [`TxError::MemoNotUtf8`] or [`TxError::ZeroAmount`].
    pub fn check_form(&self) -> Result<(), TxError> {
        if self.memo.len() > MAX_MEMO_BYTES {
            return Err(TxError::MemoTooLong {
                len: self.memo.len(),
                max: MAX_MEMO_BYTES,
            });
        }
        if std::str::from_utf8(&self.memo).is_err() {
            return Err(TxError::MemoNotUtf8);
        }
        if self.amount == 0 && self.memo.is_empty() {
            return Err(TxError::ZeroAmount);
        }
        Ok(())
    }
}

/// The block reward, paid by the first transaction of each block.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Coinbase {
    /// Height of the block it pays for; keeps every coinbase's txid unique.
    pub height: u64,
    /// The miner's address.
    pub to: Address,
    /// Network reward plus the fees of the block's transfers.
    pub amount: u64,
}

/// What a txid hashes (and, after the domain and the network, a signature signs): the
/// transaction without its signature.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum TxBody {
    /// Variant index 0.
    Coinbase(Coinbase),
    /// Variant index 1.
    Transfer(Transfer),
}

/// A transaction as carried in blocks, the mempool and gossip.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Transaction {
    /// The block reward; only valid as the first transaction of a block.
    Coinbase(Coinbase),
    /// A signed transfer between accounts.
    Transfer {
        /// What was signed.
        body: Transfer,
        /// The sender's signature over [`Transfer::signing_message`] on its network.
        signature: Signature,
    },
}

impl Transaction {
    /// Signs a transfer without a memo for `network`, the way user code makes a valid
    /// transfer.
    pub fn sign_transfer(
        key: &SigningKey,
        network: &NetworkId,
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
    ) -> Self {
        Self::sign_transfer_with_memo(key, network, to, amount, fee, nonce, Vec::new())
    }

    /// Signs a transfer carrying `memo` for `network` (the memo rules are checked by the
    /// mempool and blocks, not here).
    pub fn sign_transfer_with_memo(
        key: &SigningKey,
        network: &NetworkId,
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
        memo: Vec<u8>,
    ) -> Self {
        let body = Transfer {
            from: PublicKey(key.verifying_key().to_bytes()),
            to,
            amount,
            fee,
            nonce,
            memo,
        };
        let signature = Signature(key.sign(&body.signing_message(network)).to_bytes());
        Transaction::Transfer { body, signature }
    }

    /// The coinbase paying `amount` to `to` at `height`.
    pub fn coinbase(height: u64, to: Address, amount: u64) -> Self {
        Transaction::Coinbase(Coinbase { height, to, amount })
    }

    /// The unsigned body, as hashed and signed.
    pub fn body(&self) -> TxBody {
        match self {
            Transaction::Coinbase(c) => TxBody::Coinbase(c.clone()),
            Transaction::Transfer { body, .. } => TxBody::Transfer(body.clone()),
        }
    }

    /// SHA-256 of `encode(TxBody)` (memo included, network not): the transaction's identity.
    pub fn compute_txid(&self) -> TxId {
        TxId(sha256(&encode(&self.body())))
    }

    /// True for the block reward transaction.
    pub fn is_coinbase(&self) -> bool {
        matches!(self, Transaction::Coinbase(_))
    }

    /// The transfer's body, or `None` for a coinbase.
    pub fn transfer(&self) -> Option<&Transfer> {
        match self {
            Transaction::Transfer { body, .. } => Some(body),
            Transaction::Coinbase(_) => None,
        }
    }

    /// The fee paid to the miner (zero for a coinbase).
    pub fn fee(&self) -> u64 {
        self.transfer().map_or(0, |t| t.fee)
    }

    /// Coins credited to the receiver.
    pub fn amount(&self) -> u64 {
        match self {
            Transaction::Coinbase(c) => c.amount,
            Transaction::Transfer { body, .. } => body.amount,
        }
    }

    /// The receiving address.
    pub fn to(&self) -> Address {
        match self {
            Transaction::Coinbase(c) => c.to,
            Transaction::Transfer { body, .. } => body.to,
        }
    }

    /// The sender's address, or `None` for a coinbase.
    pub fn sender(&self) -> Option<Address> {
        self.transfer().map(|t| t.from.address())
    }

    /// The transfer's memo as text, or `None` for a coinbase or an empty memo.
    pub fn memo_text(&self) -> Option<&str> {
        self.transfer().and_then(Transfer::memo_text)
    }

    /// Checks one transfer's signature for `network` on its own under the ZIP-215 rule (the
    /// mempool path; blocks verify in batches, under the same rule).
    ///
    /// # Errors
    /// [`SignatureError`] when the key is not a valid point or the signature does not verify
    /// (as when the transfer was signed for another network).
    pub fn verify_signature(&self, network: &NetworkId) -> Result<(), SignatureError> {
        match self {
            Transaction::Coinbase(_) => Err(SignatureError::Coinbase),
            Transaction::Transfer { body, signature } => {
                let key = body.from.verification_key().ok_or(SignatureError::BadKey)?;
                let sig = ed25519_zebra::Signature::from(signature.0);
                key.verify(&sig, &body.signing_message(network))
                    .map_err(|_| SignatureError::Invalid)
            }
        }
    }

    /// Size of the canonical encoding in bytes, for size caps.
    pub fn encoded_len(&self) -> usize {
        encoded_size(self)
    }
}

/// Verifies the signatures of many transfers for `network` at once, under the same ZIP-215
/// rule as [`Transaction::verify_signature`] and accepting exactly the same signatures, faster
/// than one by one.
///
/// # Errors
/// [`SignatureError`] if any transfer's key or signature is bad; then the caller can check one
/// by one to find which.
pub fn verify_batch(txs: &[&Transaction], network: &NetworkId) -> Result<(), SignatureError> {
    let mut verifier = batch::Verifier::new();
    for tx in txs {
        match tx {
            Transaction::Coinbase(_) => return Err(SignatureError::Coinbase),
            Transaction::Transfer { body, signature } => {
                let message = body.signing_message(network);
                verifier.queue((
                    VerificationKeyBytes::from(body.from.0),
                    ed25519_zebra::Signature::from(signature.0),
                    &message,
                ));
            }
        }
    }
    if txs.is_empty() {
        return Ok(());
    }
    verifier.verify(rand::thread_rng()).map_err(|_| {
        // Only on failure: tell a key that is not a point from a signature that does not verify.
        let bad_key = txs
            .iter()
            .filter_map(|tx| tx.transfer())
            .any(|t| t.from.verification_key().is_none());
        if bad_key {
            SignatureError::BadKey
        } else {
            SignatureError::Invalid
        }
    })
}

/// Why a transaction breaks a rule: its signature, or its nonce and funds against a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The signature does not verify against the sender's key.
    #[error("bad signature")]
    BadSignature,
    /// The nonce is not the sender's next one.
    #[error("nonce {got} is not the sender's next nonce {expected}")]
    BadNonce {
        /// The sender's next nonce.
        expected: u64,
        /// The transfer's.
        got: u64,
    },
    /// The sender cannot pay amount plus fee.
    #[error("insufficient funds: balance {balance}, needed {needed}")]
    InsufficientFunds {
        /// The sender's balance.
        balance: u64,
        /// Amount plus fee.
        needed: u64,
    },
    /// A transfer of zero coins without a memo (a zero amount is allowed only with one).
    #[error("amount must be positive unless the transfer carries a memo")]
    ZeroAmount,
    /// A memo over [`MAX_MEMO_BYTES`].
    #[error("memo of {len} bytes is over the cap of {max}")]
    MemoTooLong {
        /// The memo's length in bytes.
        len: usize,
        /// [`MAX_MEMO_BYTES`].
        max: usize,
    },
    /// A memo that is not valid UTF-8.
    #[error("memo is not valid UTF-8")]
    MemoNotUtf8,
    /// Amount plus fee, or the receiver's new balance, does not fit in 64 bits.
    #[error("amount overflows")]
    Overflow,
    /// A coinbase outside the first position of a block.
    #[error("a coinbase is only valid as a block's first transaction")]
    UnexpectedCoinbase,
}

/// Why a signature check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The sender's public key is not a valid ed25519 point.
    #[error("sender key is not a valid ed25519 public key")]
    BadKey,
    /// The signature does not verify against the body and key.
    #[error("signature does not verify")]
    Invalid,
    /// A coinbase has no signature to check.
    #[error("a coinbase carries no signature")]
    Coinbase,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// The network the tests sign for: devnet.
    fn net() -> NetworkId {
        crate::ledger::params::NetworkParams::devnet().network_id()
    }

    #[test]
    fn a_signed_transfer_verifies() {
        let tx = Transaction::sign_transfer(&key(1), &net(), Address([2; 20]), 10, 1, 0);
        assert_eq!(tx.verify_signature(&net()), Ok(()));
        assert_eq!(verify_batch(&[&tx], &net()), Ok(()));
    }

    #[test]
    fn changing_any_signed_field_breaks_the_signature() {
        let tx = Transaction::sign_transfer(&key(1), &net(), Address([2; 20]), 10, 1, 0);
        let Transaction::Transfer { body, signature } = tx else {
            unreachable!()
        };
        let mutations: Vec<Transfer> = vec![
            Transfer {
                amount: 11,
                ..body.clone()
            },
            Transfer {
                fee: 2,
                ..body.clone()
            },
            Transfer {
                nonce: 1,
                ..body.clone()
            },
            Transfer {
                to: Address([3; 20]),
                ..body.clone()
            },
            Transfer {
                from: PublicKey(key(9).verifying_key().to_bytes()),
                ..body.clone()
            },
            Transfer {
                memo: b"hello".to_vec(),
                ..body.clone()
            },
        ];
        for m in mutations {
            let bad = Transaction::Transfer { body: m, signature };
            assert_eq!(bad.verify_signature(&net()), Err(SignatureError::Invalid));
            assert_eq!(verify_batch(&[&bad], &net()), Err(SignatureError::Invalid));
        }
    }

    #[test]
    fn txid_covers_the_body_but_not_the_signature() {
        let a = Transaction::sign_transfer(&key(1), &net(), Address([2; 20]), 10, 1, 0);
        let b = Transaction::sign_transfer(&key(1), &net(), Address([2; 20]), 10, 1, 1);
        assert_ne!(a.compute_txid(), b.compute_txid());
        let Transaction::Transfer { body, .. } = a.clone() else {
            unreachable!()
        };
        let resigned = Transaction::Transfer {
            body,
            signature: Signature([0; 64]),
        };
        assert_eq!(a.compute_txid(), resigned.compute_txid());
    }

    #[test]
    fn coinbases_at_different_heights_have_different_ids() {
        let a = Transaction::coinbase(1, Address([1; 20]), 50);
        let b = Transaction::coinbase(2, Address([1; 20]), 50);
        assert_ne!(a.compute_txid(), b.compute_txid());
    }

    #[test]
    fn transfer_encoding_matches_the_published_test_vector() {
        // proto-notes/encoding.md publishes these bytes; ed25519 signatures are deterministic.
        assert_eq!(
            net().0.to_hex(),
            "6dd33e00c087a2abafb9cdba467a29050e6a4ba9d4c9418de163d697ceb1b149",
            "the devnet genesis hash"
        );
        let tx = Transaction::sign_transfer(&key(1), &net(), Address([2; 20]), 10, 1, 0);
        let body = concat!(
            "01000000",
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
            "0202020202020202020202020202020202020202",
            "0a00000000000000",
            "0100000000000000",
            "0000000000000000",
            "0000000000000000",
        );
        assert_eq!(
            hex::encode(encode(&tx)),
            [
                body,
                "4da3ebc9e04bf84df093c1679685b43dc3ca548a87fcca412b802122d6ab1640",
                "64a96140a4f0c7ad8e4229f87adb04569fd89ea029f25627a9a63964bdc34a02",
            ]
            .concat()
        );
        assert_eq!(encode(&tx).len(), 152);
        assert_eq!(
            hex::encode(
                tx.transfer()
                    .map(|t| t.signing_message(&net()))
                    .unwrap_or_default()
            ),
            [
                "676f73736970636861696e207472616e73666572",
                "6dd33e00c087a2abafb9cdba467a29050e6a4ba9d4c9418de163d697ceb1b149",
                body,
            ]
            .concat()
        );
        assert_eq!(
            tx.compute_txid().to_hex(),
            "d0dec62f0c1b5ef5cb9f32b31db81da9ac1828500d074661685537306c61c517"
        );
        assert_eq!(
            PublicKey(key(1).verifying_key().to_bytes())
                .address()
                .to_hex(),
            "34750f98bd59fcfc946da45aaabe933be154a4b5"
        );
    }

    #[test]
    fn a_zero_amount_transfer_with_a_memo_matches_the_published_test_vector() {
        let tx = Transaction::sign_transfer_with_memo(
            &key(1),
            &net(),
            Address([2; 20]),
            0,
            1,
            1,
            b"hello".to_vec(),
        );
        assert_eq!(
            hex::encode(encode(&tx)),
            concat!(
                "01000000",
                "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
                "0202020202020202020202020202020202020202",
                "0000000000000000",
                "0100000000000000",
                "0100000000000000",
                "0500000000000000",
                "68656c6c6f",
                "0db3ec7975d005db401245adcf6117e928a907de714ff75eb79fb34b17e42d74",
                "576c3c9e7dff95552eb314437e67eed1aaaf6d04061b00389682a1304fa15000",
            )
        );
        assert_eq!(encode(&tx).len(), 152 + 5);
        assert_eq!(
            tx.compute_txid().to_hex(),
            "fca8e6ef978b234dc512fe5bf07db6830bc9854fdf68cc98c2dcb65b4cdb553d"
        );
        assert_eq!(tx.memo_text(), Some("hello"));
        assert_eq!(tx.transfer().map(Transfer::check_form), Some(Ok(())));
    }

    #[test]
    fn a_transfer_signed_for_one_network_is_a_bad_signature_on_another() {
        let testnet = crate::ledger::params::NetworkParams::for_tests("testnet", 20).network_id();
        assert_ne!(testnet, net());
        let tx = Transaction::sign_transfer(&key(1), &net(), Address([2; 20]), 10, 1, 0);
        assert_eq!(tx.verify_signature(&net()), Ok(()));
        assert_eq!(tx.verify_signature(&testnet), Err(SignatureError::Invalid));
        assert_eq!(verify_batch(&[&tx], &testnet), Err(SignatureError::Invalid));
        let there = Transaction::sign_transfer(&key(1), &testnet, Address([2; 20]), 10, 1, 0);
        assert_eq!(
            there.compute_txid(),
            tx.compute_txid(),
            "the txid is the body's, the same on every network"
        );
        assert_eq!(
            verify_batch(&[&there, &tx], &testnet),
            Err(SignatureError::Invalid)
        );
    }

    fn with_memo(amount: u64, memo: &[u8]) -> Transfer {
        Transfer {
            from: PublicKey(key(1).verifying_key().to_bytes()),
            to: Address([2; 20]),
            amount,
            fee: 1,
            nonce: 0,
            memo: memo.to_vec(),
        }
    }

    #[test]
    fn a_memo_of_up_to_the_cap_in_utf8_is_allowed_and_a_longer_one_is_memo_too_long() {
        assert_eq!(with_memo(1, &[]).check_form(), Ok(()));
        assert_eq!(
            with_memo(1, "é".repeat(128).as_bytes()).check_form(),
            Ok(())
        );
        assert_eq!(
            with_memo(1, &[b'a'; MAX_MEMO_BYTES + 1]).check_form(),
            Err(TxError::MemoTooLong {
                len: MAX_MEMO_BYTES + 1,
                max: MAX_MEMO_BYTES
            })
        );
    }

    #[test]
    fn a_memo_that_is_not_utf8_is_memo_not_utf8() {
        assert_eq!(
            with_memo(1, &[0xff, 0xfe]).check_form(),
            Err(TxError::MemoNotUtf8)
        );
        // A character cut in half at the end is not UTF-8 either.
        assert_eq!(
            with_memo(1, &"é".as_bytes()[..1]).check_form(),
            Err(TxError::MemoNotUtf8)
        );
        assert_eq!(with_memo(1, &[0xff]).memo_text(), None);
    }

    #[test]
    fn a_zero_amount_is_allowed_only_with_a_memo() {
        assert_eq!(with_memo(0, b"a post").check_form(), Ok(()));
        assert_eq!(with_memo(0, &[]).check_form(), Err(TxError::ZeroAmount));
        // The memo rules come first.
        assert_eq!(
            with_memo(0, &[0xff]).check_form(),
            Err(TxError::MemoNotUtf8)
        );
        assert!(matches!(
            with_memo(0, &[b'a'; 300]).check_form(),
            Err(TxError::MemoTooLong { .. })
        ));
    }

    #[test]
    fn a_signature_made_with_dalek_verifies_under_the_zip215_rule() {
        for seed in 1..=8 {
            let tx = Transaction::sign_transfer(&key(seed), &net(), Address([seed; 20]), 7, 2, 3);
            let Transaction::Transfer { body, signature } = &tx else {
                unreachable!()
            };
            // The same bytes pass dalek's own strict check: a standard signature.
            let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&body.from.0).unwrap();
            let message = body.signing_message(&net());
            let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
            assert!(dalek_key.verify_strict(&message, &sig).is_ok());
            assert_eq!(tx.verify_signature(&net()), Ok(()));
            assert_eq!(verify_batch(&[&tx], &net()), Ok(()));
        }
    }

    #[test]
    fn a_batch_with_one_bad_signature_fails_and_the_single_check_names_the_same_one() {
        let mut txs: Vec<Transaction> = (1..=6)
            .map(|n| Transaction::sign_transfer(&key(n), &net(), Address([2; 20]), 10, 1, 0))
            .collect();
        if let Transaction::Transfer { signature, .. } = &mut txs[3] {
            signature.0[40] ^= 0x10;
        }
        let refs: Vec<&Transaction> = txs.iter().collect();
        assert_eq!(verify_batch(&refs, &net()), Err(SignatureError::Invalid));
        let singles: Vec<bool> = txs
            .iter()
            .map(|t| t.verify_signature(&net()).is_ok())
            .collect();
        assert_eq!(singles, [true, true, true, false, true, true]);
        let without: Vec<&Transaction> = txs.iter().take(3).collect();
        assert_eq!(verify_batch(&without, &net()), Ok(()));
    }

    #[test]
    fn a_key_that_is_not_a_curve_point_is_a_bad_key_alone_and_in_a_batch() {
        let tx = Transaction::sign_transfer(&key(1), &net(), Address([2; 20]), 10, 1, 0);
        let Transaction::Transfer {
            mut body,
            signature,
        } = tx
        else {
            unreachable!()
        };
        // y = 2 is not the y coordinate of any point on the curve.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        body.from = PublicKey(bytes);
        let bad = Transaction::Transfer { body, signature };
        assert_eq!(bad.verify_signature(&net()), Err(SignatureError::BadKey));
        assert_eq!(verify_batch(&[&bad], &net()), Err(SignatureError::BadKey));
    }

    /// Signatures built by hand, to reach the edge cases where ed25519 verifiers differ.
    mod edge_cases {
        use super::*;
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
        use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
        use curve25519_dalek::traits::IsIdentity;
        use curve25519_dalek::Scalar;
        use sha2::{Digest, Sha512};

        /// The identity point encoded with y = p + 1 instead of y = 1: a non-canonical encoding.
        const NON_CANONICAL_IDENTITY: [u8; 32] = {
            let mut b = [0xff; 32];
            b[0] = 0xee;
            b[31] = 0x7f;
            b
        };

        /// The ed25519 challenge k = SHA-512(R || A || M) mod l.
        fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
            let mut h = Sha512::new();
            h.update(r);
            h.update(a);
            h.update(message);
            let mut wide = [0u8; 64];
            wide.copy_from_slice(&h.finalize());
            Scalar::from_bytes_mod_order_wide(&wide)
        }

        /// A transfer from the key encoded as `a_bytes` (secret scalar `a`), signed with nonce
        /// `r` whose point is sent as `r_bytes`: s = r + k a.
        fn hand_signed(a_bytes: [u8; 32], a: Scalar, r: Scalar, r_bytes: [u8; 32]) -> Transaction {
            let body = Transfer {
                from: PublicKey(a_bytes),
                to: Address([2; 20]),
                amount: 10,
                fee: 1,
                nonce: 0,
                memo: Vec::new(),
            };
            let k = challenge(&r_bytes, &a_bytes, &body.signing_message(&net()));
            let s = r + k * a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r_bytes);
            sig[32..].copy_from_slice(s.as_bytes());
            Transaction::Transfer {
                body,
                signature: Signature(sig),
            }
        }

        /// What ed25519-dalek 2, the verifier used before, said alone and in a batch.
        fn dalek_single_and_batch(tx: &Transaction) -> (bool, bool) {
            let Transaction::Transfer { body, signature } = tx else {
                unreachable!()
            };
            let key = ed25519_dalek::VerifyingKey::from_bytes(&body.from.0).unwrap();
            let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
            let message = body.signing_message(&net());
            let single = ed25519_dalek::Verifier::verify(&key, &message, &sig).is_ok();
            let batch = ed25519_dalek::verify_batch(&[&message], &[sig], &[key]).is_ok();
            (single, batch)
        }

        #[test]
        fn a_non_canonical_nonce_point_once_split_single_and_batch_and_now_both_accept_it() {
            let a = Scalar::from(123_456_789u64);
            let a_bytes = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
            // R is the identity (r = 0), sent in its non-canonical encoding.
            let tx = hand_signed(a_bytes, a, Scalar::ZERO, NON_CANONICAL_IDENTITY);
            assert_eq!(
                dalek_single_and_batch(&tx),
                (false, true),
                "the old single check refused what the old batch accepted"
            );
            assert_eq!(tx.verify_signature(&net()), Ok(()));
            assert_eq!(verify_batch(&[&tx], &net()), Ok(()));
        }

        #[test]
        fn a_key_with_a_small_order_component_is_judged_alike_alone_and_in_a_batch() {
            // T has order 4 (y = 0); the key is a B + T, so only the cofactored equation of
            // ZIP-215 holds when k T is not the identity.
            let t: EdwardsPoint = CompressedEdwardsY([0; 32]).decompress().unwrap();
            assert!(t.is_small_order() && !t.is_identity());
            let a = Scalar::from(987_654_321u64);
            let a_bytes = (ED25519_BASEPOINT_POINT * a + t).compress().to_bytes();
            let tx = (1u64..)
                .map(|r| {
                    let r = Scalar::from(r);
                    let r_bytes = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
                    hand_signed(a_bytes, a, r, r_bytes)
                })
                .find(|tx| !dalek_single_and_batch(tx).0)
                .unwrap();
            assert_eq!(tx.verify_signature(&net()), Ok(()));
            assert_eq!(verify_batch(&[&tx], &net()), Ok(()));
            let ordinary = Transaction::sign_transfer(&key(1), &net(), Address([2; 20]), 10, 1, 0);
            assert_eq!(verify_batch(&[&ordinary, &tx], &net()), Ok(()));
        }

        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

            #[test]
            fn single_and_batch_give_the_same_verdict_on_any_damaged_signature(
                which in 0usize..64,
                flip in 1u8..=255,
                edge in proptest::bool::ANY,
            ) {
                let mut tx = if edge {
                    let a = Scalar::from(42u64);
                    let a_bytes = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
                    hand_signed(a_bytes, a, Scalar::ZERO, NON_CANONICAL_IDENTITY)
                } else {
                    Transaction::sign_transfer(&key(5), &net(), Address([2; 20]), 10, 1, 0)
                };
                if let Transaction::Transfer { signature, .. } = &mut tx {
                    signature.0[which] ^= flip;
                }
                proptest::prop_assert_eq!(tx.verify_signature(&net()).is_ok(), verify_batch(&[&tx], &net()).is_ok());
            }
        }
    }
}
