//! The payload's serialization: the only place that knows about `bincode`.
//!
//! bincode 2 (pinned `=2.0.1`: 3.x does not build) through serde, standard config (varint
//! integers, little-endian), with a decode limit. Swapping the format means changing this
//! file and bumping [`super::frame::VERSION`]; nothing else sees the bytes.

use bincode::config::{Configuration, Limit};
use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The most bytes a payload decode may claim for its allocations. Real payloads are a few
/// KiB; a frame cannot carry more than its length cap anyway.
pub const DECODE_LIMIT: usize = 64 * 1024;

/// Why a payload could not be turned into bytes or back. Opaque on purpose: callers only
/// report it, so the format's own error types stay in this file.
pub type PayloadError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The most bytes a body payload decode may claim: bodies are capped far lower by the node's
/// configured size cap and the frame length cap; this only bounds what a lying length claims.
pub const BODY_DECODE_LIMIT: usize = 64 * 1024 * 1024;

fn config<const N: usize>(
) -> Configuration<bincode::config::LittleEndian, bincode::config::Varint, Limit<N>> {
    bincode::config::standard().with_limit::<N>()
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode<T: Serialize>(value: &T, out: &mut BytesMut) -> Result<(), PayloadError> {
    let mut writer = out.writer();
    bincode::serde::encode_into_std_write(value, &mut writer, config::<BODY_DECODE_LIMIT>())?;
    Ok(())
}

/// Outcome of [`decode`] beyond the codec's own errors.
#[derive(Debug)]
pub(crate) enum DecodeFailure {
    /// The bytes are not an encoding of `T` (or claim more than [`DECODE_LIMIT`]).
    Format(PayloadError),
    /// `T` decoded from a prefix, but `unused` bytes follow it.
    Trailing { unused: usize },
}

/// Decodes exactly one `T` from all of `bytes`, allocating at most [`DECODE_LIMIT`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeFailure> {
    decode_limited::<T, DECODE_LIMIT>(bytes)
}

/// Decodes exactly one `T` from all of `bytes`, allocating at most `N` bytes.
pub(crate) fn decode_limited<T: DeserializeOwned, const N: usize>(
    bytes: &[u8],
) -> Result<T, DecodeFailure> {
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(bytes, config::<N>())
        .map_err(|e| DecodeFailure::Format(Box::new(e)))?;
    match bytes.len().checked_sub(read) {
        Some(0) => Ok(value),
        Some(unused) => Err(DecodeFailure::Trailing { unused }),
        // bincode never reports reading more than it was given; treat it as garbage if so.
        None => Err(DecodeFailure::Format("decoder read past the payload".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beehive_replication::{Message, NextHop, Peer, Response};

    fn peer(n: u16) -> Peer {
        Peer::from_addr(([10, 0, 0, 1], n).into())
    }

    #[test]
    fn round_trips_and_refuses_trailing_bytes() {
        let msg = Message::Response {
            id: 3,
            body: Response::Next(NextHop::Closer(vec![peer(1), peer(2)])),
        };
        let mut out = BytesMut::new();
        encode(&msg, &mut out).unwrap();
        assert_eq!(decode::<Message>(&out).unwrap(), msg);
        out.put_u8(0);
        assert!(matches!(decode::<Message>(&out), Err(DecodeFailure::Trailing { unused: 1 })));
    }

    #[test]
    fn a_huge_claimed_list_is_refused() {
        // Response::Next(Closer(len = u64::MAX)) by hand: variant 1 (Response), id 0,
        // Response variant 3 (Next), NextHop variant 2 (Closer), then a varint u64::MAX.
        let bytes = [1u8, 0, 3, 2, 253, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(matches!(decode::<Message>(&bytes), Err(DecodeFailure::Format(_))));
    }
}
