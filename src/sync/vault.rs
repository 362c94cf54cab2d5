//! Secrets at rest: AES-256-GCM with a random nonce per message.

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the encryption key must be 64 hex characters (32 bytes)")]
    BadKey,
    #[error(
        "the saved Salesforce credentials cannot be decrypted with {0}: give this process the key they were saved with (sync.encryption_key, or the data dir's encryption-key file), or connect Salesforce again to save them under this one"
    )]
    Undecryptable(std::sync::Arc<str>),
}

#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
    /// Where the key came from, for a person told it is the wrong one.
    source: std::sync::Arc<str>,
}

impl Vault {
    pub fn from_hex(hex: &str) -> Result<Self, VaultError> {
        let hex = hex.trim();
        // Checked before slicing: a multi-byte character would split mid-character.
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(VaultError::BadKey);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| VaultError::BadKey)?;
        }
        Ok(Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
            source: "the configured key".into(),
        })
    }

    /// The vault, its key said to come from `source` ("the key in …").
    #[must_use]
    pub fn from_source(self, source: &str) -> Self {
        Self {
            source: source.into(),
            ..self
        }
    }

    /// A new random key, hex-encoded.
    pub fn generate_key() -> String {
        let key: [u8; 32] = rand::random();
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        // Encryption only fails for plaintexts beyond 64 GiB.
        out.extend(self.cipher.encrypt(&nonce, plaintext).unwrap_or_default());
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let undecryptable = || VaultError::Undecryptable(self.source.clone());
        if sealed.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| undecryptable())?;
        self.cipher
            .decrypt(&Nonce::from(nonce), body)
            .map_err(|_| undecryptable())
    }

    /// [`Self::open`], the plaintext read as JSON.
    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        sealed: &[u8],
    ) -> Result<T, VaultError> {
        serde_json::from_slice(&self.open(sealed)?)
            .map_err(|_| VaultError::Undecryptable(self.source.clone()))
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let vault = Vault::from_hex(&Vault::generate_key()).unwrap();
        let sealed = vault.seal(b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(vault.open(&sealed).unwrap(), b"hunter2");
        assert_ne!(vault.seal(b"hunter2"), sealed, "a fresh nonce each time");
        let other = Vault::from_hex(&Vault::generate_key()).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(Vault::from_hex("abc").is_err());
        assert!(
            Vault::from_hex(&"é".repeat(32)).is_err(),
            "64 bytes, not hex"
        );
    }
}
