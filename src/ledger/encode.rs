//! The one place that knows bincode: canonical bytes for hashing and signing, and capped decoding.
//!
//! Configuration: bincode 2, fixed-width integers, little endian. A `Vec` is a u64 length followed
//! by its elements, an enum a u32 variant index followed by its fields, a fixed array its bytes.
//! Every decode of bytes from outside goes through [`decode`], which refuses input over a size
//! cap and input with trailing bytes, so one encoding maps to one value and back.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

/// The largest input [`decode`] ever accepts, whatever cap the caller asks for.
pub const MAX_DECODE_BYTES: usize = 16 * 1024 * 1024;

type Canonical = Configuration<LittleEndian, Fixint, Limit<MAX_DECODE_BYTES>>;

const CONFIG: Canonical = bincode::config::standard()
    .with_fixed_int_encoding()
    .with_little_endian()
    .with_limit::<MAX_DECODE_BYTES>();

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

/// Decodes exactly one `T` from `bytes`, refusing more than `max` bytes or any trailing byte.
///
/// # Errors
/// [`DecodeError`] naming what was wrong with the input.
pub fn decode<T: Decode<()>>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    let max = max.min(MAX_DECODE_BYTES);
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    let (value, used) = bincode::decode_from_slice::<T, _>(bytes, CONFIG)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Err(DecodeError::Malformed(_))
        ));
    }
}
