//! The crate's serde codec: values travel as postcard bytes. Shared by every
//! primitive's typed `send`/`recv` and `put`/`get`, so a value put in one
//! primitive decodes the same in another.

use crate::error::{Error, Result};

/// Encodes `value` with postcard. A failure is [`Error::Codec`] and nothing
/// has been sent.
pub fn encode_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|source| Error::Codec {
        action: "encode",
        source,
    })
}

/// Decodes a value from postcard bytes.
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|source| Error::Codec {
        action: "decode",
        source,
    })
}
