//! The one place that knows bincode: canonical bytes for hashing and signing, and capped decoding.
//!
//! Configuration: bincode 2, fixed-width integers, little endian. A `Vec` is a u64 length followed
//! by its elements, an enum a u32 variant index followed by its fields, a fixed array its bytes.
//! Every decode of bytes from outside goes through [`decode`], which refuses input over a size
//! cap and input with trailing bytes, so one encoding maps to one value and back.
//!
//! Each type that comes from outside declares its own [`Decodable::DECODE_LIMIT`], derived from
//! the consensus and wire caps: the most memory bincode may claim while decoding one value (bytes
//! read, plus `len × size_of::<T>()` that a container claims before it reserves room for `len`
//! elements). A 16-byte request whose length prefix claims half a million hashes is refused
//! before anything is reserved.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

/// The largest decode limit any type may declare, and the limit [`encode`] works under.
pub const MAX_DECODE_BYTES: usize = 16 * 1024 * 1024;

/// The canonical configuration with a decode limit of `LIMIT` bytes.
pub type Canonical<const LIMIT: usize> = Configuration<LittleEndian, Fixint, Limit<LIMIT>>;

/// The canonical configuration with a decode limit of `LIMIT` bytes (at most
/// [`MAX_DECODE_BYTES`]).
pub const fn canonical<const LIMIT: usize>() -> Canonical<LIMIT> {
    const { assert!(LIMIT <= MAX_DECODE_BYTES) };
    bincode::config::standard()
        .with_fixed_int_encoding()
        .with_little_endian()
        .with_limit::<LIMIT>()
}

const CONFIG: Canonical<MAX_DECODE_BYTES> = canonical();

/// A type decoded from bytes that come from outside (a peer or a file), with its own limit.
///
/// Implement it with [`decode_limit!`](crate::decode_limit), which keeps the two items in step.
pub trait Decodable: Decode<()> {
    /// Most bytes decoding one value may claim (see the module documentation).
    const DECODE_LIMIT: usize;
    /// The canonical configuration with [`Self::DECODE_LIMIT`] as bincode's limit.
    type Config: bincode::config::Config;
    /// That configuration's value.
    const CONFIG: Self::Config;
}

/// Implements [`Decodable`] for a type with the given decode limit in bytes.
#[macro_export]
macro_rules! decode_limit {
    ($ty:ty, $limit:expr) => {
        impl $crate::ledger::encode::Decodable for $ty {
            const DECODE_LIMIT: usize = $limit;
            type Config = $crate::ledger::encode::Canonical<{ $limit }>;
            const CONFIG: Self::Config = $crate::ledger::encode::canonical();
        }
    };
}

/// Why bytes from outside did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is over the cap for this kind of message.
    #[error("message of {size} bytes is over the cap of {max}")]
    TooLarge {
        /// Bytes given.
        size: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// The encoding claims more memory than this kind of message may take, such as a length
    /// prefix promising far more elements than the message could hold.
    #[error("encoding claims more than the {limit} bytes this kind of message may take")]
    OverDecodeLimit {
        /// The kind's [`Decodable::DECODE_LIMIT`].
        limit: usize,
    },
    /// Bytes were left over after a complete value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// The canonical bytes of `value`, used for hashing, signing, storage and the wire.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec can only fail past the configured limit, which no value we build
    // reaches (blocks are capped far below it); an empty result would then fail every check.
    bincode::encode_to_vec(value, CONFIG).unwrap_or_default()
}

/// Length of the canonical encoding of `value`, counted without building it: size caps are
/// checked on every block that arrives, and a block can be a megabyte.
pub fn encoded_size<T: Encode>(value: &T) -> usize {
    let mut encoder =
        bincode::enc::EncoderImpl::new(bincode::enc::write::SizeWriter::default(), CONFIG);
    // Counting cannot fail except past the configured limit, like `encode`.
    match value.encode(&mut encoder) {
        Ok(()) => encoder.into_writer().bytes_written,
        Err(_) => usize::MAX,
    }
}

/// Decodes exactly one `T` from `bytes`, refusing more than `max` bytes (and more than
/// `T`'s decode limit), a claim over `T`'s decode limit, or any trailing byte.
///
/// # Errors
/// [`DecodeError`] naming what was wrong with the input.
pub fn decode<T: Decodable>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    let max = max.min(T::DECODE_LIMIT);
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    let (value, used) =
        bincode::decode_from_slice::<T, _>(bytes, T::CONFIG).map_err(|e| match e {
            bincode::error::DecodeError::LimitExceeded => DecodeError::OverDecodeLimit {
                limit: T::DECODE_LIMIT,
            },
            e => DecodeError::Malformed(e.to_string()),
        })?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    decode_limit!(u32, 100);
    decode_limit!(u64, 8);
    decode_limit!(Vec<u8>, 1024);
    decode_limit!(Vec<u64>, 100);

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode(&1u64), vec![1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(&vec![1u8, 2]), vec![2, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn encoded_size_counts_the_bytes_encode_writes() {
        let value = (7u32, vec![1u64, 2, 3], [9u8; 20]);
        assert_eq!(encoded_size(&value), encode(&value).len());
        assert_eq!(encoded_size(&value), 4 + 8 + 24 + 20);
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut bytes = encode(&5u32);
        bytes.push(0);
        assert_eq!(
            decode::<u32>(&bytes, 100),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn decode_rejects_oversized_input() {
        let bytes = encode(&vec![0u8; 100]);
        assert!(matches!(
            decode::<Vec<u8>>(&bytes, 50),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_huge_length_prefix_does_not_allocate() {
        let bytes = encode(&u64::MAX);
        assert!(matches!(
            decode::<Vec<u64>>(&bytes, 100),
            Err(DecodeError::OverDecodeLimit { limit: 100 })
        ));
    }

    #[test]
    fn a_length_prefix_over_the_types_limit_is_refused_before_reserving() {
        // The 8-byte length read, then 12 elements of 8 bytes: 104 bytes, over the 100 this type
        // may claim. bincode refuses at the claim, before `Vec::with_capacity`, whatever the
        // input cap.
        let bytes = encode(&12u64);
        assert_eq!(
            decode::<Vec<u64>>(&bytes, 1 << 20),
            Err(DecodeError::OverDecodeLimit { limit: 100 })
        );
        // 11 are within the limit (96 bytes): the decode only fails for want of the elements.
        let bytes = encode(&11u64);
        assert!(matches!(
            decode::<Vec<u64>>(&bytes, 1 << 20),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn the_input_cap_is_never_above_the_types_limit() {
        let bytes = encode(&vec![0u8; 1020]);
        assert!(matches!(
            decode::<Vec<u8>>(&bytes, usize::MAX),
            Err(DecodeError::TooLarge { max: 1024, .. })
        ));
    }
}
