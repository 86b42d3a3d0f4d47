//! A delivery's signature: base64 of HMAC-SHA256 over the raw body with the
//! secret the store's platform and parley share (Shopify's
//! `X-Shopify-Hmac-Sha256`, WooCommerce's `X-WC-Webhook-Signature`).
//! Compared in constant time; the secret is never printed.

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The longest signature header read (base64 of 32 bytes is 44).
const SIGNATURE_CHARS_MAX: usize = 128;

/// A shared secret. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Why a delivery's signature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the delivery carries no `{0}` header")]
    Missing(&'static str),
    #[error("the `{0}` header is not base64 of a 32-byte HMAC-SHA256")]
    Malformed(&'static str),
    #[error("the `{0}` header does not match the body signed with this store's secret")]
    Mismatch(&'static str),
}

impl Secret {
    /// A secret from its text (trailing new lines, as files end, dropped).
    /// `None` when it is empty.
    pub fn new(text: &str) -> Option<Secret> {
        let t = text.trim_end_matches(['\n', '\r']);
        (!t.is_empty()).then(|| Secret(t.as_bytes().to_vec()))
    }

    /// base64 of HMAC-SHA256(secret, body): what a platform sends.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Checks `header` (named `name`) against `body`, in constant time.
    pub fn verify(
        &self,
        name: &'static str,
        header: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing(name))?.trim();
        if header.len() > SIGNATURE_CHARS_MAX {
            return Err(SignatureError::Malformed(name));
        }
        let tag = base64::engine::general_purpose::STANDARD
            .decode(header)
            .ok()
            .filter(|t| t.len() == 32)
            .ok_or(SignatureError::Malformed(name))?;
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(&tag)
            .map_err(|_| SignatureError::Mismatch(name))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length: this cannot fail.
        HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC keys have any length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_does_not() {
        let s = Secret::new("hush\n").unwrap();
        // The value `openssl dgst -sha256 -hmac hush -binary | base64`
        // printed for the same body.
        let body = br#"{"id":1}"#;
        let sig = s.sign(body);
        assert_eq!(sig, "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=");
        assert_eq!(s.verify("X", Some(&sig), body), Ok(()));
        assert_eq!(
            s.verify("X", Some(&sig), br#"{"id":2}"#),
            Err(SignatureError::Mismatch("X"))
        );
        assert_eq!(s.verify("X", None, body), Err(SignatureError::Missing("X")));
        assert_eq!(
            s.verify("X", Some("not base64!"), body),
            Err(SignatureError::Malformed("X"))
        );
        assert_eq!(
            Secret::new("other").unwrap().verify("X", Some(&sig), body),
            Err(SignatureError::Mismatch("X"))
        );
        assert!(Secret::new("\n").is_none());
        assert_eq!(format!("{s:?}"), "Secret(…)");
    }
}
