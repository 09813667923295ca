//! Byte strings on the wire: standard base64 with padding (docs/protocol.md "Transport").

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that travel as a base64 string. Invalid base64 is a decode error whose
/// text is the base64 decoder's (e.g. `Invalid symbol 33, offset 0.`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteChunk(pub Vec<u8>);

impl Serialize for ByteChunk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for ByteChunk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map(ByteChunk)
            .map_err(serde::de::Error::custom)
    }
}

/// Encode bytes as standard base64. Uses the SIMD encoder (AVX2/SSSE3 when the CPU
/// has them, picked at run time): the output is the same as the `base64` crate's,
/// at several times the speed, and encoding is the server's main per-byte cost.
pub fn encode(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

/// Encode bytes as standard base64 straight into a shared string (one allocation
/// and no copy: an output chunk is encoded once and then shared by retention and
/// the outbound queue).
pub fn encode_shared(bytes: &[u8]) -> std::sync::Arc<str> {
    let len = base64_simd::STANDARD.encoded_length(bytes.len());
    let mut buf = std::sync::Arc::<[u8]>::new_uninit_slice(len);
    let slot = std::sync::Arc::get_mut(&mut buf).expect("a new Arc is unique");
    let written = base64_simd::STANDARD
        .encode(bytes, base64_simd::Out::from_uninit_slice(slot))
        .len();
    assert_eq!(written, len, "base64 length");
    // SAFETY: the encoder initialised all `len` bytes.
    let buf = unsafe { buf.assume_init() };
    // SAFETY: base64 text is ASCII, hence UTF-8; `str` and `[u8]` have one layout.
    unsafe { std::sync::Arc::from_raw(std::sync::Arc::into_raw(buf) as *const str) }
}

/// Decode standard base64.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = ByteChunk(b"hi\n".to_vec());
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(s, "\"aGkK\"");
        assert_eq!(serde_json::from_str::<ByteChunk>(&s).unwrap(), c);
    }

    #[test]
    fn simd_encoding_matches_the_reference_encoder() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for n in [0, 1, 2, 3, 4, 31, 32, 33, 95, 96, 97, 4999, 5000] {
            assert_eq!(encode(&data[..n]), STANDARD.encode(&data[..n]), "{n} bytes");
            assert_eq!(
                &*encode_shared(&data[..n]),
                STANDARD.encode(&data[..n]),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn invalid_base64_reports_decoder_text() {
        let e = serde_json::from_value::<ByteChunk>(serde_json::json!("!!!!")).unwrap_err();
        assert_eq!(e.to_string(), "Invalid symbol 33, offset 0.");
    }
}
