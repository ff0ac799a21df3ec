//! End-to-end message encryption (feature `encryption`), interoperable with the Java and C++
//! clients: the broker stores and forwards only ciphertext.
//!
//! A producer with encryption keys makes a random 256-bit data key, encrypts it for each key
//! name with that name's public key (RSA-OAEP with SHA-1, as the official clients), and sends
//! every message's payload, after compression (a batch as a whole, a chunked message chunk by
//! chunk), encrypted with AES-256-GCM under a fresh 12-byte IV. The metadata carries what a
//! consumer needs, exactly as the Java and C++ clients write it: `encryption_keys` (each key
//! name with the data key encrypted for it and the key's metadata) and `encryption_param` (the
//! IV); `encryption_algo` is left unset, as they leave it. A new data key is made every 4 hours
//! (the Java client's period).
//!
//! A consumer or reader with a [`CryptoKeyReader`] decrypts the data key with the private key
//! of one of the names (cached, so RSA runs once per data key), then the payload, before
//! decompression, chunk reassembly and batch parsing. A message it cannot decrypt goes the way
//! its [`ConsumerCryptoFailureAction`](crate::ConsumerCryptoFailureAction) says.
//!
//! Keys come from a [`CryptoKeyReader`], asked by name (with the metadata the producer's reader
//! attached, for the consumer's); [`DefaultCryptoKeyReader`] reads PEM files or inline PEM.

pub(crate) mod ecies;
pub(crate) mod keys;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use bytes::Bytes;

use crate::compression::Compression;
use crate::wire::proto;
use keys::{PrivateKey, PublicKey};

/// The length of the IV of AES-GCM, in bytes (`encryption_param`).
pub const IV_LEN: usize = 12;
/// The length of the GCM tag appended to every encrypted payload, in bytes.
pub const TAG_LEN: usize = 16;
/// How often a producer makes a new data key: every 4 hours, as the Java client.
pub const DATA_KEY_ROTATION: Duration = Duration::from_secs(4 * 3600);
/// How long a consumer keeps a decrypted data key it has not used: 4 hours, as the Java client.
pub const DATA_KEY_CACHE_TTL: Duration = Duration::from_secs(4 * 3600);
/// The most data keys a consumer keeps: each new one costs an RSA decryption, so a stream of
/// messages each with a new key cannot grow memory.
const DATA_KEY_CACHE_MAX: usize = 256;

/// Why a message could not be encrypted or decrypted, or a key could not be had. The message
/// says what to check; it never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key reader has no key of this name, or could not read it.
    #[error("{kind} key {name:?}: {reason}")]
    KeyUnavailable {
        /// `public` or `private`.
        kind: &'static str,
        /// The key name.
        name: String,
        /// The reader's reason.
        reason: String,
    },
    /// The key is not one this client can use (not PEM, not RSA, a private key given as the
    /// public one, ...).
    #[error("{kind} key {name:?} cannot be used: {reason}")]
    InvalidKey {
        /// `public` or `private`.
        kind: &'static str,
        /// The key name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Encrypting failed.
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// The message cannot be decrypted: no key for any of its names, a wrong key, or a payload
    /// that is not what it says.
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
}

/// A key and its metadata, as a [`CryptoKeyReader`] gives it (the Java `EncryptionKeyInfo`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncryptionKeyInfo {
    /// The key in PEM form.
    pub key: Bytes,
    /// Metadata to send with the data key encrypted for it (producer side), or that came with
    /// it (consumer side): a key version, say, for the reader to pick the right private key.
    pub metadata: BTreeMap<String, String>,
}

impl EncryptionKeyInfo {
    /// A key without metadata.
    pub fn new(key: impl Into<Bytes>) -> Self {
        EncryptionKeyInfo {
            key: key.into(),
            metadata: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for EncryptionKeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeyInfo")
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Where keys come from, by name (the Java `CryptoKeyReader`). Producers ask for public keys
/// (when created, and at every data key rotation), consumers for private keys (once per data
/// key). The calls run on the producer's or consumer's task: keep them quick (read a file,
/// look up a map), and load slow stores ahead.
pub trait CryptoKeyReader: Send + Sync + fmt::Debug {
    /// The public key named `name`; `metadata` is empty (the producer's side has none yet).
    fn public_key(
        &self,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<EncryptionKeyInfo, String>;

    /// The private key named `name`; `metadata` is what the producer's reader attached to the
    /// public key of that name.
    fn private_key(
        &self,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<EncryptionKeyInfo, String>;
}

/// Where [`DefaultCryptoKeyReader`] finds one key.
#[derive(Clone, PartialEq, Eq)]
enum KeySource {
    File(PathBuf),
    Inline(Bytes),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Inline(b) => write!(f, "Inline(<{} bytes>)", b.len()),
        }
    }
}

impl KeySource {
    /// A file path, `file:///path`, or `data:...;base64,...` (the Java `DefaultCryptoKeyReader`
    /// forms), or inline PEM text.
    fn parse(value: &str) -> Result<KeySource, String> {
        if let Some(path) = value.strip_prefix("file://") {
            return Ok(KeySource::File(PathBuf::from(path)));
        }
        if let Some(data) = value.strip_prefix("data:") {
            let (meta, payload) = data
                .split_once(',')
                .ok_or("a data: URL has no ',' before its data")?;
            let bytes = if meta.ends_with(";base64") {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(payload.trim())
                    .map_err(|e| format!("the data: URL's base64 is invalid: {e}"))?
            } else {
                payload.as_bytes().to_vec()
            };
            return Ok(KeySource::Inline(Bytes::from(bytes)));
        }
        if value.contains("-----BEGIN ") {
            return Ok(KeySource::Inline(Bytes::copy_from_slice(value.as_bytes())));
        }
        Ok(KeySource::File(PathBuf::from(value)))
    }

    fn read(&self) -> Result<Bytes, String> {
        match self {
            KeySource::Inline(b) => Ok(b.clone()),
            KeySource::File(path) => std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// A [`CryptoKeyReader`] of PEM files or inline PEM, by name with a default (the Java
/// `DefaultCryptoKeyReader`). Each key is a path, `file:///path`, `data:...;base64,...`, or the
/// PEM text itself; files are read on every use, so a key replaced on disk is picked up at the
/// next data key rotation.
///
/// ```
/// use pulsar_wire::DefaultCryptoKeyReader;
/// let producer_keys = DefaultCryptoKeyReader::new().default_public_key("keys/public.pem");
/// let consumer_keys = DefaultCryptoKeyReader::new()
///     .private_key("orders-v2", "keys/orders-v2.key.pem")
///     .default_private_key("keys/private.pem");
/// # let _ = (producer_keys, consumer_keys);
/// ```
#[derive(Debug, Clone, Default)]
pub struct DefaultCryptoKeyReader {
    default_public: Option<Result<KeySource, String>>,
    default_private: Option<Result<KeySource, String>>,
    public: HashMap<String, Result<KeySource, String>>,
    private: HashMap<String, Result<KeySource, String>>,
    metadata: BTreeMap<String, String>,
}

impl DefaultCryptoKeyReader {
    /// A reader with no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// The public key of every name without one of its own.
    pub fn default_public_key(mut self, key: impl AsRef<str>) -> Self {
        self.default_public = Some(KeySource::parse(key.as_ref()));
        self
    }

    /// The private key of every name without one of its own.
    pub fn default_private_key(mut self, key: impl AsRef<str>) -> Self {
        self.default_private = Some(KeySource::parse(key.as_ref()));
        self
    }

    /// The public key of `name`.
    pub fn public_key(mut self, name: impl Into<String>, key: impl AsRef<str>) -> Self {
        self.public
            .insert(name.into(), KeySource::parse(key.as_ref()));
        self
    }

    /// The private key of `name`.
    pub fn private_key(mut self, name: impl Into<String>, key: impl AsRef<str>) -> Self {
        self.private
            .insert(name.into(), KeySource::parse(key.as_ref()));
        self
    }

    /// Metadata sent with every data key encrypted with this reader's public keys.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    fn read(
        own: Option<&Result<KeySource, String>>,
        default: Option<&Result<KeySource, String>>,
        kind: &str,
    ) -> Result<Bytes, String> {
        match own.or(default) {
            Some(Ok(source)) => source.read(),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!(
                "the key reader has no {kind} key of that name and no default"
            )),
        }
    }
}

impl CryptoKeyReader for DefaultCryptoKeyReader {
    fn public_key(
        &self,
        name: &str,
        _metadata: &BTreeMap<String, String>,
    ) -> Result<EncryptionKeyInfo, String> {
        let key = Self::read(
            self.public.get(name),
            self.default_public.as_ref(),
            "public",
        )?;
        Ok(EncryptionKeyInfo {
            key,
            metadata: self.metadata.clone(),
        })
    }

    fn private_key(
        &self,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<EncryptionKeyInfo, String> {
        let key = Self::read(
            self.private.get(name),
            self.default_private.as_ref(),
            "private",
        )?;
        Ok(EncryptionKeyInfo {
            key,
            metadata: metadata.clone(),
        })
    }
}

/// What a producer does when a message cannot be encrypted (the Java
/// `ProducerCryptoFailureAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProducerCryptoFailureAction {
    /// The send fails with [`Error::Crypto`](crate::Error::Crypto) (the default).
    #[default]
    Fail,
    /// The message is sent unencrypted (keys that cannot be read still fail the producer's
    /// creation, as in the Java client).
    Send,
}

/// How a message was encrypted, for a consumer that receives it undecrypted (crypto failure
/// action Consume) and decrypts it itself (the Java `EncryptionContext`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionContext {
    /// The key names, each with the data key encrypted for it and the key's metadata.
    pub keys: Vec<EncryptedDataKey>,
    /// The AES-GCM IV (`encryption_param`).
    pub param: Bytes,
    /// `encryption_algo`, if the producer set one (the official clients do not).
    pub algorithm: Option<String>,
    /// The compression applied before encryption (decompress after decrypting).
    pub compression: Compression,
    /// The payload's size before compression.
    pub uncompressed_size: u32,
    /// For a batch: how many messages it holds (parse it after decrypting and decompressing).
    pub batch_size: Option<i32>,
}

/// One key name of an encrypted message and the data key encrypted for it.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedDataKey {
    /// The key name.
    pub name: String,
    /// The data key, encrypted with the public key of that name.
    pub value: Bytes,
    /// The key's metadata.
    pub metadata: BTreeMap<String, String>,
}

impl fmt::Debug for EncryptedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedDataKey")
            .field("name", &self.name)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl EncryptionContext {
    /// The encryption context of a message's metadata, if it is encrypted.
    pub(crate) fn from_metadata(md: &proto::MessageMetadata) -> Option<Self> {
        if md.encryption_keys.is_empty() {
            return None;
        }
        Some(EncryptionContext {
            keys: md
                .encryption_keys
                .iter()
                .map(|k| EncryptedDataKey {
                    name: k.key.clone(),
                    value: k.value.clone(),
                    metadata: k
                        .metadata
                        .iter()
                        .map(|kv| (kv.key.clone(), kv.value.clone()))
                        .collect(),
                })
                .collect(),
            param: md.encryption_param.clone().unwrap_or_default(),
            algorithm: md.encryption_algo.clone(),
            compression: md
                .compression
                .and_then(Compression::from_wire)
                .unwrap_or(Compression::None),
            uncompressed_size: md.uncompressed_size.unwrap_or(0),
            batch_size: md.num_messages_in_batch,
        })
    }
}

/// The encryption settings of a producer.
#[derive(Debug, Clone)]
pub(crate) struct ProducerEncryption {
    pub reader: Arc<dyn CryptoKeyReader>,
    pub key_names: Vec<String>,
    pub failure_action: ProducerCryptoFailureAction,
}

/// One data key with the copies of it encrypted for each key name.
#[cfg_attr(any(test, feature = "unstable"), derive(Clone))]
struct DataKey {
    cipher: Aes256Gcm,
    encrypted: Vec<proto::EncryptionKeys>,
    made: Instant,
}

/// A producer's encryption: its data key, rotated every [`DATA_KEY_ROTATION`], and the
/// per-message AES-GCM sealing. Time is an input. Cloned only by the fuzz drivers (making one
/// costs a public-key encryption).
#[cfg_attr(any(test, feature = "unstable"), derive(Clone))]
pub(crate) struct MessageEncryptor {
    settings: ProducerEncryption,
    key: DataKey,
    /// When a failed rotation is tried again.
    retry_at: Option<Instant>,
}

impl fmt::Debug for MessageEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageEncryptor")
            .field("key_names", &self.settings.key_names)
            .field("data_key_made", &self.key.made)
            .finish_non_exhaustive()
    }
}

impl MessageEncryptor {
    /// Makes the first data key and encrypts it for every key name (reading their public
    /// keys): an unreadable or unusable key fails here, when the producer is created.
    pub(crate) fn new(settings: ProducerEncryption, now: Instant) -> Result<Self, CryptoError> {
        if settings.key_names.is_empty() {
            return Err(CryptoError::Encrypt("no encryption key name".into()));
        }
        let key = Self::make_key(&settings, now)?;
        Ok(MessageEncryptor {
            settings,
            key,
            retry_at: None,
        })
    }

    fn make_key(settings: &ProducerEncryption, now: Instant) -> Result<DataKey, CryptoError> {
        let mut raw = Aes256Gcm::generate_key(&mut OsRng);
        let data_key = zeroize::Zeroizing::new(raw.to_vec());
        zeroize::Zeroize::zeroize(raw.as_mut_slice());
        let mut encrypted = Vec::with_capacity(settings.key_names.len());
        for name in &settings.key_names {
            let info = settings
                .reader
                .public_key(name, &BTreeMap::new())
                .map_err(|reason| CryptoError::KeyUnavailable {
                    kind: "public",
                    name: name.clone(),
                    reason,
                })?;
            let public =
                PublicKey::from_pem(&info.key).map_err(|reason| CryptoError::InvalidKey {
                    kind: "public",
                    name: name.clone(),
                    reason,
                })?;
            let value = public.encrypt(&data_key).map_err(CryptoError::Encrypt)?;
            encrypted.push(proto::EncryptionKeys {
                key: name.clone(),
                value: Bytes::from(value),
                metadata: info
                    .metadata
                    .into_iter()
                    .map(|(key, value)| proto::KeyValue { key, value })
                    .collect(),
            });
        }
        Ok(DataKey {
            cipher: Aes256Gcm::new_from_slice(&data_key)
                .map_err(|_| CryptoError::Encrypt("the data key is not 32 bytes".into()))?,
            encrypted,
            made: now,
        })
    }

    /// What a producer does when encryption fails.
    pub(crate) fn failure_action(&self) -> ProducerCryptoFailureAction {
        self.settings.failure_action
    }

    /// Makes a new data key when the current one is [`DATA_KEY_ROTATION`] old. A rotation that
    /// fails (a public key unreadable now) keeps the current key and is tried again a minute
    /// later.
    fn rotate_if_due(&mut self, now: Instant) {
        if now.saturating_duration_since(self.key.made) < DATA_KEY_ROTATION
            || self.retry_at.is_some_and(|at| now < at)
        {
            return;
        }
        match Self::make_key(&self.settings, now) {
            Ok(key) => {
                self.key = key;
                self.retry_at = None;
                tracing::debug!(keys = ?self.settings.key_names, "new data key");
            }
            Err(e) => {
                tracing::warn!(error = %e, "data key rotation failed: the current key stays, retrying in a minute");
                self.retry_at = Some(now + Duration::from_secs(60));
            }
        }
    }

    /// Sets `metadata`'s encryption keys (making a new data key first if one is due).
    pub(crate) fn prepare(&mut self, metadata: &mut proto::MessageMetadata, now: Instant) {
        self.rotate_if_due(now);
        metadata.encryption_keys = self.key.encrypted.clone();
    }

    /// Encrypts `payload` under a fresh IV, which goes in `metadata.encryption_param`. Call
    /// [`prepare`](Self::prepare) on the metadata first.
    pub(crate) fn seal(
        &self,
        metadata: &mut proto::MessageMetadata,
        payload: &[u8],
    ) -> Result<Bytes, CryptoError> {
        let iv = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .key
            .cipher
            .encrypt(&iv, payload)
            .map_err(|_| CryptoError::Encrypt("AES-GCM refused the payload".into()))?;
        metadata.encryption_param = Some(Bytes::copy_from_slice(iv.as_slice()));
        Ok(Bytes::from(sealed))
    }
}

/// A consumer's decryption: the private keys through the reader, the data keys decrypted so
/// far (by their encrypted form), bounded in number and age. Time is an input.
pub(crate) struct MessageDecryptor {
    reader: Arc<dyn CryptoKeyReader>,
    keys: HashMap<Bytes, (Aes256Gcm, Instant)>,
}

impl fmt::Debug for MessageDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageDecryptor")
            .field("reader", &self.reader)
            .field("cached_data_keys", &self.keys.len())
            .finish()
    }
}

impl MessageDecryptor {
    pub(crate) fn new(reader: Arc<dyn CryptoKeyReader>) -> Self {
        MessageDecryptor {
            reader,
            keys: HashMap::new(),
        }
    }

    /// Decrypts an entry's payload with the data key of one of its key names.
    pub(crate) fn decrypt(
        &mut self,
        md: &proto::MessageMetadata,
        payload: &[u8],
        now: Instant,
    ) -> Result<Bytes, CryptoError> {
        let iv = md.encryption_param.as_deref().unwrap_or_default();
        if iv.len() != IV_LEN {
            return Err(CryptoError::Decrypt(format!(
                "the IV (encryption_param) has {} bytes, not {IV_LEN}",
                iv.len()
            )));
        }
        if payload.len() < TAG_LEN {
            return Err(CryptoError::Decrypt(format!(
                "the payload has {} bytes, shorter than the GCM tag",
                payload.len()
            )));
        }
        let nonce = Nonce::from_slice(iv);
        // A data key decrypted before.
        for k in &md.encryption_keys {
            if let Some((cipher, used)) = self.keys.get_mut(&k.value) {
                *used = now;
                return cipher
                    .decrypt(nonce, payload)
                    .map(Bytes::from)
                    .map_err(|_| {
                        CryptoError::Decrypt(
                            "the payload does not decrypt with its data key (AES-GCM tag \
                         mismatch: corrupted or tampered with)"
                                .into(),
                        )
                    });
            }
        }
        // Else the first name whose private key opens its data key.
        let mut reasons = Vec::new();
        for k in &md.encryption_keys {
            let metadata: BTreeMap<String, String> = k
                .metadata
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
            let info = match self.reader.private_key(&k.key, &metadata) {
                Ok(info) => info,
                Err(e) => {
                    reasons.push(format!("{:?}: {e}", k.key));
                    continue;
                }
            };
            let private = match PrivateKey::from_pem(&info.key) {
                Ok(p) => p,
                Err(e) => {
                    reasons.push(format!("{:?}: {e}", k.key));
                    continue;
                }
            };
            let data_key = match private.decrypt(&k.value) {
                Ok(d) => zeroize::Zeroizing::new(d),
                Err(e) => {
                    reasons.push(format!("{:?}: {e}", k.key));
                    continue;
                }
            };
            let Ok(cipher) = Aes256Gcm::new_from_slice(&data_key) else {
                reasons.push(format!(
                    "{:?}: the data key has {} bytes, not 32",
                    k.key,
                    data_key.len()
                ));
                continue;
            };
            let plain = cipher.decrypt(nonce, payload).map_err(|_| {
                CryptoError::Decrypt(
                    "the payload does not decrypt with its data key (AES-GCM tag mismatch: \
                     corrupted or tampered with)"
                        .into(),
                )
            })?;
            self.remember(k.value.clone(), cipher, now);
            return Ok(Bytes::from(plain));
        }
        Err(CryptoError::Decrypt(if reasons.is_empty() {
            "the message names no encryption key".into()
        } else {
            format!("no private key opens its data key ({})", reasons.join("; "))
        }))
    }

    fn remember(&mut self, encrypted: Bytes, cipher: Aes256Gcm, now: Instant) {
        self.keys
            .retain(|_, (_, used)| now.saturating_duration_since(*used) < DATA_KEY_CACHE_TTL);
        if self.keys.len() >= DATA_KEY_CACHE_MAX {
            if let Some(oldest) = self
                .keys
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                self.keys.remove(&oldest);
            }
        }
        self.keys.insert(encrypted, (cipher, now));
    }

    /// How many data keys are cached (for tests).
    #[allow(dead_code)]
    pub(crate) fn cached(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_PUB: &str = include_str!("../../tests/data/crypto/rsa-a.pub.pem");
    const A_PUB_PKCS1: &str = include_str!("../../tests/data/crypto/rsa-a.pkcs1-pub.pem");
    const A_PKCS1: &str = include_str!("../../tests/data/crypto/rsa-a.pkcs1.pem");
    const A_PKCS8: &str = include_str!("../../tests/data/crypto/rsa-a.pkcs8.pem");
    const B_PUB: &str = include_str!("../../tests/data/crypto/rsa-b.pub.pem");
    const B_PKCS1: &str = include_str!("../../tests/data/crypto/rsa-b.pkcs1.pem");
    const EC_PUB: &str = include_str!("../../tests/data/crypto/ec-a.pub.pem");
    const EC_SEC1: &str = include_str!("../../tests/data/crypto/ec-a.sec1.pem");
    const EC_PKCS8: &str = include_str!("../../tests/data/crypto/ec-a.pkcs8.pem");
    const P521_PUB: &str = include_str!("../../tests/data/crypto/ec-p521.pub.pem");
    const P521_SEC1: &str = include_str!("../../tests/data/crypto/ec-p521.sec1.pem");
    const EXPLICIT_PUB: &str = include_str!("../../tests/data/crypto/ec-explicit.pub.pem");
    const EXPLICIT_SEC1: &str = include_str!("../../tests/data/crypto/ec-explicit.sec1.pem");

    fn encryptor(reader: DefaultCryptoKeyReader, names: &[&str], now: Instant) -> MessageEncryptor {
        MessageEncryptor::new(
            ProducerEncryption {
                reader: Arc::new(reader),
                key_names: names.iter().map(|n| n.to_string()).collect(),
                failure_action: ProducerCryptoFailureAction::Fail,
            },
            now,
        )
        .expect("encryptor")
    }

    fn seal(
        enc: &mut MessageEncryptor,
        payload: &[u8],
        now: Instant,
    ) -> (proto::MessageMetadata, Bytes) {
        let mut md = proto::MessageMetadata::default();
        enc.prepare(&mut md, now);
        let sealed = enc.seal(&mut md, payload).expect("seal");
        (md, sealed)
    }

    #[test]
    fn what_one_key_encrypts_its_private_key_decrypts_in_every_pem_form() {
        let now = Instant::now();
        for public in [A_PUB, A_PUB_PKCS1] {
            let mut enc = encryptor(
                DefaultCryptoKeyReader::new().default_public_key(public),
                &["a"],
                now,
            );
            let (md, sealed) = seal(&mut enc, b"secret payload", now);
            assert_eq!(md.encryption_keys.len(), 1);
            assert_eq!(md.encryption_keys[0].key, "a");
            assert_eq!(md.encryption_keys[0].value.len(), 256, "RSA-2048 output");
            assert_eq!(md.encryption_param.as_ref().map(|p| p.len()), Some(IV_LEN));
            assert_eq!(
                md.encryption_algo, None,
                "the official clients leave it unset"
            );
            assert_eq!(sealed.len(), b"secret payload".len() + TAG_LEN);
            assert!(!sealed.windows(6).any(|w| w == b"secret"), "ciphertext");
            for private in [A_PKCS1, A_PKCS8] {
                let mut dec = MessageDecryptor::new(Arc::new(
                    DefaultCryptoKeyReader::new().default_private_key(private),
                ));
                let plain = dec.decrypt(&md, &sealed, now).expect("decrypt");
                assert_eq!(&plain[..], b"secret payload");
            }
        }
    }

    #[test]
    fn ec_keys_named_or_explicit_encrypt_and_decrypt_data_keys() {
        let now = Instant::now();
        for (public, privates) in [
            (EC_PUB, vec![EC_SEC1, EC_PKCS8]),
            (P521_PUB, vec![P521_SEC1]),
            // Explicit curve parameters, as the Pulsar documentation makes keys.
            (EXPLICIT_PUB, vec![EXPLICIT_SEC1]),
        ] {
            let mut enc = encryptor(
                DefaultCryptoKeyReader::new().default_public_key(public),
                &["ec"],
                now,
            );
            let (md, sealed) = seal(&mut enc, b"over ECIES", now);
            for private in privates {
                let mut dec = MessageDecryptor::new(Arc::new(
                    DefaultCryptoKeyReader::new().default_private_key(private),
                ));
                assert_eq!(&dec.decrypt(&md, &sealed, now).unwrap()[..], b"over ECIES");
            }
            // An RSA key cannot open an EC-encrypted data key: an error, not a panic.
            let mut rsa = MessageDecryptor::new(Arc::new(
                DefaultCryptoKeyReader::new().default_private_key(A_PKCS1),
            ));
            assert!(rsa.decrypt(&md, &sealed, now).is_err());
        }
    }

    #[test]
    fn each_message_has_its_own_iv_and_the_data_key_is_decrypted_once() {
        let now = Instant::now();
        let mut enc = encryptor(
            DefaultCryptoKeyReader::new().default_public_key(A_PUB),
            &["a"],
            now,
        );
        let (md1, s1) = seal(&mut enc, b"one", now);
        let (md2, s2) = seal(&mut enc, b"one", now);
        assert_ne!(md1.encryption_param, md2.encryption_param);
        assert_ne!(s1, s2);
        assert_eq!(md1.encryption_keys, md2.encryption_keys, "one data key");
        let mut dec = MessageDecryptor::new(Arc::new(
            DefaultCryptoKeyReader::new().default_private_key(A_PKCS1),
        ));
        assert_eq!(&dec.decrypt(&md1, &s1, now).unwrap()[..], b"one");
        assert_eq!(&dec.decrypt(&md2, &s2, now).unwrap()[..], b"one");
        assert_eq!(dec.cached(), 1);
    }

    #[test]
    fn the_data_key_rotates_every_four_hours() {
        let t0 = Instant::now();
        let mut enc = encryptor(
            DefaultCryptoKeyReader::new().default_public_key(A_PUB),
            &["a"],
            t0,
        );
        let (before, _) = seal(
            &mut enc,
            b"x",
            t0 + DATA_KEY_ROTATION - Duration::from_secs(1),
        );
        let (after, sealed) = seal(&mut enc, b"x", t0 + DATA_KEY_ROTATION);
        assert_ne!(
            before.encryption_keys[0].value,
            after.encryption_keys[0].value
        );
        let (later, _) = seal(
            &mut enc,
            b"x",
            t0 + DATA_KEY_ROTATION + Duration::from_secs(60),
        );
        assert_eq!(
            after.encryption_keys, later.encryption_keys,
            "once per period"
        );
        let mut dec = MessageDecryptor::new(Arc::new(
            DefaultCryptoKeyReader::new().default_private_key(A_PKCS8),
        ));
        assert_eq!(&dec.decrypt(&after, &sealed, t0).unwrap()[..], b"x");
    }

    #[test]
    fn several_keys_each_open_the_message() {
        let now = Instant::now();
        let reader = DefaultCryptoKeyReader::new()
            .public_key("a", A_PUB)
            .public_key("b", B_PUB)
            .metadata("version", "7");
        let mut enc = encryptor(reader, &["a", "b"], now);
        let (md, sealed) = seal(&mut enc, b"for both", now);
        let names: Vec<_> = md.encryption_keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(md.encryption_keys[1].metadata[0].key, "version");
        // A consumer with only b's private key.
        let mut dec = MessageDecryptor::new(Arc::new(
            DefaultCryptoKeyReader::new().private_key("b", B_PKCS1),
        ));
        assert_eq!(&dec.decrypt(&md, &sealed, now).unwrap()[..], b"for both");
    }

    #[test]
    fn a_wrong_or_missing_private_key_is_a_decrypt_error_naming_the_key() {
        let now = Instant::now();
        let mut enc = encryptor(
            DefaultCryptoKeyReader::new().default_public_key(A_PUB),
            &["a"],
            now,
        );
        let (md, sealed) = seal(&mut enc, b"x", now);
        let mut wrong = MessageDecryptor::new(Arc::new(
            DefaultCryptoKeyReader::new().default_private_key(B_PKCS1),
        ));
        let e = wrong.decrypt(&md, &sealed, now).unwrap_err();
        assert!(matches!(e, CryptoError::Decrypt(_)));
        assert!(e.to_string().contains("\"a\""), "{e}");
        assert!(e.to_string().contains("another key"), "{e}");
        let mut none = MessageDecryptor::new(Arc::new(DefaultCryptoKeyReader::new()));
        let e = none.decrypt(&md, &sealed, now).unwrap_err();
        assert!(e.to_string().contains("no default"), "{e}");
    }

    #[test]
    fn tampering_and_bad_parameters_are_errors_not_panics() {
        let now = Instant::now();
        let mut enc = encryptor(
            DefaultCryptoKeyReader::new().default_public_key(A_PUB),
            &["a"],
            now,
        );
        let (md, sealed) = seal(&mut enc, b"payload", now);
        let mut dec = MessageDecryptor::new(Arc::new(
            DefaultCryptoKeyReader::new().default_private_key(A_PKCS1),
        ));
        let mut bad = sealed.to_vec();
        bad[0] ^= 1;
        assert!(dec
            .decrypt(&md, &bad, now)
            .unwrap_err()
            .to_string()
            .contains("tag"));
        let mut short_iv = md.clone();
        short_iv.encryption_param = Some(Bytes::from_static(b"short"));
        assert!(dec.decrypt(&short_iv, &sealed, now).is_err());
        assert!(dec.decrypt(&md, b"tiny", now).is_err());
        let mut garbage = md.clone();
        garbage.encryption_keys[0].value = Bytes::from_static(b"not an RSA block");
        let mut fresh = MessageDecryptor::new(Arc::new(
            DefaultCryptoKeyReader::new().default_private_key(A_PKCS1),
        ));
        assert!(fresh.decrypt(&garbage, &sealed, now).is_err());
    }

    #[test]
    fn unusable_public_keys_fail_the_producer_with_the_reason() {
        let now = Instant::now();
        let make = |reader: DefaultCryptoKeyReader| {
            MessageEncryptor::new(
                ProducerEncryption {
                    reader: Arc::new(reader),
                    key_names: vec!["k".into()],
                    failure_action: ProducerCryptoFailureAction::Fail,
                },
                now,
            )
            .unwrap_err()
        };
        let e = make(DefaultCryptoKeyReader::new().default_public_key(A_PKCS1));
        assert!(e.to_string().contains("private key"), "{e}");
        let e = make(
            DefaultCryptoKeyReader::new().default_public_key(include_str!(
                "../../tests/data/crypto/ec-unsupported.pub.pem"
            )),
        );
        assert!(e.to_string().contains("P-256"), "names the curves: {e}");
        let e = make(DefaultCryptoKeyReader::new().default_public_key("/no/such/file.pem"));
        assert!(matches!(e, CryptoError::KeyUnavailable { .. }), "{e}");
        assert!(e.to_string().contains("/no/such/file.pem"), "{e}");
        let e = make(DefaultCryptoKeyReader::new());
        assert!(e.to_string().contains("no public key"), "{e}");
    }

    #[test]
    fn key_sources_take_the_java_forms() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(A_PUB);
        for source in [
            format!("data:application/x-pem-file;base64,{b64}"),
            A_PUB.to_owned(),
        ] {
            let r = DefaultCryptoKeyReader::new().default_public_key(&source);
            let k = CryptoKeyReader::public_key(&r, "x", &BTreeMap::new()).unwrap();
            assert_eq!(&k.key[..], A_PUB.as_bytes());
        }
        assert_eq!(
            KeySource::parse("file:///etc/k.pem").unwrap(),
            KeySource::File("/etc/k.pem".into())
        );
        assert!(KeySource::parse("data:nocomma").is_err());
    }

    #[test]
    fn the_decryptor_cache_is_bounded() {
        let now = Instant::now();
        let mut dec = MessageDecryptor::new(Arc::new(DefaultCryptoKeyReader::new()));
        for i in 0..(DATA_KEY_CACHE_MAX + 10) {
            let cipher = Aes256Gcm::new(&Aes256Gcm::generate_key(&mut OsRng));
            dec.remember(
                Bytes::from(i.to_string()),
                cipher,
                now + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(dec.cached(), DATA_KEY_CACHE_MAX);
        let cipher = Aes256Gcm::new(&Aes256Gcm::generate_key(&mut OsRng));
        dec.remember(
            Bytes::from_static(b"late"),
            cipher,
            now + DATA_KEY_CACHE_TTL + Duration::from_secs(3600),
        );
        assert_eq!(dec.cached(), 1, "keys unused for the TTL go");
    }
}

#[cfg(test)]
mod hostile {
    //! Bounded, deterministic fuzzing of what comes from the network or a user here: the key
    //! parsers (mutated PEM, explicit EC parameters included) and the decryptor (arbitrary
    //! encryption keys, IVs and payloads). Nothing may panic.
    use super::keys::{PrivateKey, PublicKey};
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + rng.below(8) {
            match rng.below(4) {
                0 if !out.is_empty() => {
                    let i = rng.below(out.len());
                    out[i] = rng.next() as u8;
                }
                1 if !out.is_empty() => {
                    let i = rng.below(out.len());
                    out.truncate(i);
                }
                2 => {
                    let i = rng.below(out.len() + 1);
                    out.insert(i, rng.next() as u8);
                }
                _ if !out.is_empty() => {
                    let i = rng.below(out.len());
                    out.remove(i);
                }
                _ => {}
            }
        }
        out
    }

    /// A PEM block around `der`, base64 and all, for mutations below the text layer.
    fn pem(label: &str, der: &[u8]) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n").into_bytes()
    }

    fn der_of(pem_text: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    #[test]
    fn key_parsers_never_panic() {
        let keys: [(&str, &str); 6] = [
            (
                "PUBLIC KEY",
                include_str!("../../tests/data/crypto/rsa-a.pub.pem"),
            ),
            (
                "RSA PRIVATE KEY",
                include_str!("../../tests/data/crypto/rsa-a.pkcs1.pem"),
            ),
            (
                "PRIVATE KEY",
                include_str!("../../tests/data/crypto/ec-a.pkcs8.pem"),
            ),
            (
                "PUBLIC KEY",
                include_str!("../../tests/data/crypto/ec-explicit.pub.pem"),
            ),
            (
                "EC PRIVATE KEY",
                include_str!("../../tests/data/crypto/ec-a.sec1.pem"),
            ),
            (
                "PUBLIC KEY",
                include_str!("../../tests/data/crypto/ec-a.pub.pem"),
            ),
        ];
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for (label, text) in keys {
            let der = der_of(
                &text
                    .lines()
                    .skip_while(|l| !l.starts_with(&format!("-----BEGIN {label}")))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            for _ in 0..300 {
                let text_mutant = mutate(&mut rng, text.as_bytes());
                let _ = PublicKey::from_pem(&text_mutant);
                let _ = PrivateKey::from_pem(&text_mutant);
                let der_mutant = pem(label, &mutate(&mut rng, &der));
                let _ = PublicKey::from_pem(&der_mutant);
                let _ = PrivateKey::from_pem(&der_mutant);
            }
        }
    }

    #[test]
    fn the_decryptor_never_panics_on_hostile_metadata_or_payloads() {
        let now = Instant::now();
        let mut enc = MessageEncryptor::new(
            ProducerEncryption {
                reader: Arc::new(
                    DefaultCryptoKeyReader::new()
                        .default_public_key(include_str!("../../tests/data/crypto/ec-a.pub.pem")),
                ),
                key_names: vec!["k".into()],
                failure_action: ProducerCryptoFailureAction::Fail,
            },
            now,
        )
        .unwrap();
        let mut md = proto::MessageMetadata::default();
        enc.prepare(&mut md, now);
        let sealed = enc.seal(&mut md, b"a payload to mangle").unwrap();
        let mut dec = MessageDecryptor::new(Arc::new(
            DefaultCryptoKeyReader::new()
                .default_private_key(include_str!("../../tests/data/crypto/ec-a.sec1.pem")),
        ));
        let mut rng = Rng(0x0bad_cafe_f00d_0002);
        let mut opened = 0;
        for _ in 0..500 {
            let mut m = md.clone();
            match rng.below(3) {
                0 => {
                    m.encryption_keys[0].value =
                        Bytes::from(mutate(&mut rng, &md.encryption_keys[0].value))
                }
                1 => {
                    m.encryption_param = Some(Bytes::from(mutate(
                        &mut rng,
                        md.encryption_param.as_deref().unwrap_or_default(),
                    )))
                }
                _ => {}
            }
            let payload = if rng.below(2) == 0 {
                mutate(&mut rng, &sealed)
            } else {
                sealed.to_vec()
            };
            // A fresh decryptor sometimes, so that the RSA/ECIES path runs on mangled keys.
            if rng.below(4) == 0 {
                dec = MessageDecryptor::new(Arc::new(
                    DefaultCryptoKeyReader::new()
                        .default_private_key(include_str!("../../tests/data/crypto/ec-a.sec1.pem")),
                ));
            }
            if let Ok(plain) = dec.decrypt(&m, &payload, now) {
                assert_eq!(
                    &plain[..],
                    b"a payload to mangle",
                    "only the real payload opens"
                );
                opened += 1;
            }
        }
        assert!(opened > 0, "the unmangled cases decrypt");
    }
}
