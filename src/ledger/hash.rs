//! Hash newtypes, one per role a 32-byte digest plays, and the SHA-256 helper.
//!
//! Keeping block hashes, transaction ids and addresses apart in the type system means a txid can
//! never be looked up as a block, and every digest prints the same way: lowercase hex.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use sha2::{Digest, Sha256};

/// SHA-256 of `data`, the one hash function of the protocol.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Why a hex string could not become a hash or an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseHexError {
    /// The text is not hexadecimal.
    #[error("not a hex string")]
    NotHex,
    /// The text decodes to the wrong number of bytes.
    #[error("expected {expected} hex digits, got {got}")]
    WrongLength {
        /// Hex digits required.
        expected: usize,
        /// Hex digits given.
        got: usize,
    },
}

fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], ParseHexError> {
    if s.len() != 2 * N {
        return Err(ParseHexError::WrongLength {
            expected: 2 * N,
            got: s.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| ParseHexError::NotHex)?;
    Ok(out)
}

macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The all-zero value, used where there is nothing to point at (genesis parent).
            pub const ZERO: Self = Self([0u8; $len]);

            /// The raw bytes, for encoding and comparison.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, the form shown to users and written in JSON.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, for compact human output.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>(s.trim()).map(Self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_newtype!(
    /// The SHA-256 of a block header's canonical encoding: a block's identity and its proof of work.
    BlockHash,
    32
);
digest_newtype!(
    /// The SHA-256 of a transaction's signed body: its identity in blocks, the mempool and gossip.
    TxId,
    32
);
digest_newtype!(
    /// A Merkle root over txids, committing a header to its transactions.
    TxRoot,
    32
);
digest_newtype!(
    /// Where coins can be sent: the first 20 bytes of the SHA-256 of an ed25519 public key.
    Address,
    20
);

/// A network's identity as transfer signatures commit to it: its genesis block's hash, so a
/// transfer signed for one network never verifies on another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NetworkId(pub BlockHash);

impl From<BlockHash> for NetworkId {
    fn from(genesis: BlockHash) -> Self {
        Self(genesis)
    }
}

impl BlockHash {
    /// Leading zero bits, the measure proof of work is judged by.
    pub fn leading_zero_bits(&self) -> u32 {
        leading_zero_bits(&self.0)
    }
}

/// Leading zero bits of a big-endian byte string.
pub fn leading_zero_bits(bytes: &[u8]) -> u32 {
    let mut bits = 0;
    for b in bytes {
        if *b == 0 {
            bits += 8;
        } else {
            bits += b.leading_zeros();
            break;
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = BlockHash(sha256(b"x"));
        assert_eq!(h.to_hex().parse::<BlockHash>(), Ok(h));
        let a = Address([7u8; 20]);
        assert_eq!(a.to_string().parse::<Address>(), Ok(a));
    }

    #[test]
    fn bad_hex_is_rejected_with_a_reason() {
        assert_eq!(
            "abc".parse::<BlockHash>(),
            Err(ParseHexError::WrongLength {
                expected: 64,
                got: 3
            })
        );
        assert_eq!(
            "zz".repeat(32).parse::<BlockHash>(),
            Err(ParseHexError::NotHex)
        );
    }

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x10, 0xff]), 19);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }
}
