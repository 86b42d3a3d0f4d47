//! Signed checkpoints: the writer's ed25519 signature over (ledger id, seq,
//! head hash), kept in the log as a record of its own (`crate::checkpoint`
//! signs and checks them). Pure: the bytes signed are fixed here.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::{hash_from_hex, to_hex, Digest};

/// Domain separation: a checkpoint signature signs nothing else.
const SIGNED_PREFIX: &[u8] = b"parley checkpoint v1\0";

/// Fixed-size bytes written as lower-case hex in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

/// An ed25519 public key.
pub type PublicKey = HexBytes<32>;
/// An ed25519 signature.
pub type Signature = HexBytes<64>;

impl<const N: usize> HexBytes<N> {
    /// Parses exactly `2 * N` hex digits (either case).
    pub fn from_hex(text: &str) -> Option<HexBytes<N>> {
        let text = text.trim();
        if text.len() != 2 * N || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(HexBytes(out))
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<HexBytes<N>, D::Error> {
        let text = String::deserialize(d)?;
        HexBytes::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("expected {} hex digits", 2 * N)))
    }
}

impl<const N: usize> schemars::JsonSchema for HexBytes<N> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Hex{N}").into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": format!("{N} bytes as {} hex digits.", 2 * N),
            "type": "string",
            "pattern": format!("^[0-9a-fA-F]{{{}}}$", 2 * N)
        })
    }
}

/// The writer's signature over the log's head at `seq`.
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Checkpoint {
    /// The ledger's id (its genesis record's).
    pub ledger_id: String,
    /// The seq signed: the record just before this one.
    pub seq: u64,
    /// The hash of the record at `seq`.
    pub head_hash: Digest,
    /// The key that signed.
    pub public_key: PublicKey,
    pub signature: Signature,
}

impl Checkpoint {
    /// The bytes the signature covers.
    pub fn signed_bytes(ledger_id: &str, seq: u64, head_hash: &Digest) -> Vec<u8> {
        let id = ledger_id.as_bytes();
        let mut out = Vec::with_capacity(SIGNED_PREFIX.len() + 8 + id.len() + 8 + 32);
        out.extend_from_slice(SIGNED_PREFIX);
        out.extend_from_slice(&(id.len() as u64).to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&head_hash.0);
        out
    }

    /// The head hash as hex.
    pub fn head_hex(&self) -> String {
        to_hex(&self.head_hash.0)
    }
}

/// Parses a head hash given as hex.
pub fn head_from_hex(text: &str) -> Option<Digest> {
    hash_from_hex(text.trim()).map(Digest)
}
