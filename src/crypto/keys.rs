//! The asymmetric keys of end-to-end encryption, from the PEM forms the official clients read:
//! RSA public keys as SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`, what `openssl rsa -pubout`
//! writes and the C++ client reads) or PKCS#1 (`BEGIN RSA PUBLIC KEY`); RSA private keys as
//! PKCS#1 (`BEGIN RSA PRIVATE KEY`, the one form older Java clients read) or PKCS#8 (`BEGIN PRIVATE
//! KEY`); EC keys on P-256, P-384 and P-521 (named curves) as SubjectPublicKeyInfo, SEC1
//! (`BEGIN EC PRIVATE KEY`, with or without a `BEGIN EC PARAMETERS` block before it) or PKCS#8.
//! The data key is encrypted with RSA-OAEP, SHA-1 and MGF1-SHA-1, as the Java
//! (`RSA/NONE/OAEPWithSHA1AndMGF1Padding`) and C++ (`RSA_PKCS1_OAEP_PADDING`) clients do, or
//! for an EC key with the Java client's ECIES (see `ecies`).

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};

use super::ecies::{EcPrivate, EcPublic};

/// A public key that can encrypt a data key.
#[derive(Debug, Clone)]
pub(crate) enum PublicKey {
    Rsa(RsaPublicKey),
    Ec(EcPublic),
}

/// A private key that can decrypt a data key.
#[derive(Debug, Clone)]
pub(crate) enum PrivateKey {
    Rsa(Box<RsaPrivateKey>),
    Ec(EcPrivate),
}

const EC_CURVES: &str = "EC keys must be on P-256 (prime256v1), P-384 (secp384r1) or P-521 \
                         (secp521r1), by name or by explicit parameters";

/// The body of a PEM block, base64-decoded.
fn pem_der(block: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body: String = block
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// A minimal DER reader: one tag-length-value at a time, for the few structures of explicit
/// EC parameters the RustCrypto parsers do not take. It never panics on bad input.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element's tag and contents.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        let (value, after) = rest.split_at(len);
        self.0 = after;
        Some((tag, value))
    }

    /// The next element, which must have this tag.
    fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, value) if t == tag => Some(value),
            _ => None,
        }
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

/// The base point of explicit EC parameters (`SpecifiedECDomain`): its uncompressed encoding.
fn explicit_base(domain: &[u8]) -> Option<&[u8]> {
    let mut d = Der(domain);
    d.take(INTEGER)?; // version
    d.take(SEQUENCE)?; // fieldID
    d.take(SEQUENCE)?; // curve: a, b, seed
    d.take(OCTET_STRING) // base
}

/// Which supported curve has this base point.
fn curve_of(base: &[u8]) -> Option<&'static str> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    if base
        == p256::AffinePoint::GENERATOR
            .to_encoded_point(false)
            .as_bytes()
    {
        Some("P-256")
    } else if base
        == p384::AffinePoint::GENERATOR
            .to_encoded_point(false)
            .as_bytes()
    {
        Some("P-384")
    } else if base
        == p521::AffinePoint::GENERATOR
            .to_encoded_point(false)
            .as_bytes()
    {
        Some("P-521")
    } else {
        None
    }
}

/// An EC public key with explicit parameters (SubjectPublicKeyInfo), on a supported curve.
fn explicit_ec_public(block: &str) -> Option<EcPublic> {
    let der = pem_der(block)?;
    let mut top = Der(&der);
    let mut spki = Der(top.take(SEQUENCE)?);
    let mut alg = Der(spki.take(SEQUENCE)?);
    alg.take(OID)?;
    let base = explicit_base(alg.take(SEQUENCE)?)?;
    let point = spki.take(BIT_STRING)?.strip_prefix(&[0])?;
    match curve_of(base)? {
        "P-256" => p256::PublicKey::from_sec1_bytes(point)
            .ok()
            .map(EcPublic::P256),
        "P-384" => p384::PublicKey::from_sec1_bytes(point)
            .ok()
            .map(EcPublic::P384),
        _ => p521::PublicKey::from_sec1_bytes(point)
            .ok()
            .map(EcPublic::P521),
    }
}

/// An EC private key with explicit parameters (SEC1), on a supported curve.
fn explicit_ec_private(block: &str) -> Option<EcPrivate> {
    let der = pem_der(block)?;
    let mut top = Der(&der);
    let mut key = Der(top.take(SEQUENCE)?);
    key.take(INTEGER)?; // version 1
    let secret = key.take(OCTET_STRING)?;
    let base = explicit_base(Der(key.take(0xa0)?).take(SEQUENCE)?)?;
    match curve_of(base)? {
        "P-256" => p256::SecretKey::from_slice(secret)
            .ok()
            .map(EcPrivate::P256),
        "P-384" => p384::SecretKey::from_slice(secret)
            .ok()
            .map(EcPrivate::P384),
        _ => p521::SecretKey::from_slice(secret)
            .ok()
            .map(EcPrivate::P521),
    }
}

/// An EC public key of SubjectPublicKeyInfo PEM, on the first supported curve it fits.
fn ec_public(block: &str) -> Option<EcPublic> {
    p256::PublicKey::from_public_key_pem(block)
        .map(EcPublic::P256)
        .or_else(|_| p384::PublicKey::from_public_key_pem(block).map(EcPublic::P384))
        .or_else(|_| p521::PublicKey::from_public_key_pem(block).map(EcPublic::P521))
        .ok()
        .or_else(|| explicit_ec_public(block))
}

/// An EC private key of PKCS#8 PEM, on the first supported curve it fits.
fn ec_pkcs8(block: &str) -> Option<EcPrivate> {
    p256::SecretKey::from_pkcs8_pem(block)
        .map(EcPrivate::P256)
        .or_else(|_| p384::SecretKey::from_pkcs8_pem(block).map(EcPrivate::P384))
        .or_else(|_| p521::SecretKey::from_pkcs8_pem(block).map(EcPrivate::P521))
        .ok()
}

/// An EC private key of SEC1 PEM, on the first supported curve it fits.
fn ec_sec1(block: &str) -> Option<EcPrivate> {
    p256::SecretKey::from_sec1_pem(block)
        .map(EcPrivate::P256)
        .or_else(|_| p384::SecretKey::from_sec1_pem(block).map(EcPrivate::P384))
        .or_else(|_| p521::SecretKey::from_sec1_pem(block).map(EcPrivate::P521))
        .ok()
        .or_else(|| explicit_ec_private(block))
}

/// The label of the first PEM block, if the text has one.
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    let end = rest.find("-----")?;
    Some(&rest[..end])
}

/// The text of the PEM block labelled `label` (from its BEGIN line to its END line), if any:
/// a file may hold EC parameters or several objects before the key.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

fn utf8(pem: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(pem).map_err(|_| "the key is not PEM text".to_owned())
}

impl PublicKey {
    /// Reads a PEM public key.
    pub(crate) fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let text = utf8(pem)?;
        if let Some(block) = pem_block(text, "PUBLIC KEY") {
            if let Ok(key) = RsaPublicKey::from_public_key_pem(block) {
                return Ok(PublicKey::Rsa(key));
            }
            return ec_public(block).map(PublicKey::Ec).ok_or_else(|| {
                format!(
                    "a SubjectPublicKeyInfo that is neither RSA nor EC on a supported curve \
                     ({EC_CURVES})"
                )
            });
        }
        if let Some(block) = pem_block(text, "RSA PUBLIC KEY") {
            return RsaPublicKey::from_pkcs1_pem(block)
                .map(PublicKey::Rsa)
                .map_err(|e| format!("not a PKCS#1 RSA public key: {e}"));
        }
        Err(match pem_label(text) {
            Some(label) if label.contains("PRIVATE") => {
                format!("a private key ({label}) was given where the public key is needed")
            }
            Some(label) => format!(
                "a PEM {label} is not a public key: give BEGIN PUBLIC KEY (openssl rsa -pubout, \
                 openssl ec -pubout) or BEGIN RSA PUBLIC KEY"
            ),
            None => "no PEM block: give BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY".to_owned(),
        })
    }

    /// Encrypts a data key for this public key.
    pub(crate) fn encrypt(&self, data_key: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            PublicKey::Rsa(key) => key
                .encrypt(
                    &mut aes_gcm::aead::OsRng,
                    Oaep::new::<sha1::Sha1>(),
                    data_key,
                )
                .map_err(|e| format!("RSA-OAEP encryption of the data key failed: {e}")),
            PublicKey::Ec(key) => key
                .encrypt(data_key)
                .map_err(|e| format!("ECIES encryption of the data key failed: {e}")),
        }
    }
}

impl PrivateKey {
    /// Reads a PEM private key.
    pub(crate) fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let text = utf8(pem)?;
        if let Some(block) = pem_block(text, "RSA PRIVATE KEY") {
            return RsaPrivateKey::from_pkcs1_pem(block)
                .map(|k| PrivateKey::Rsa(Box::new(k)))
                .map_err(|e| format!("not a PKCS#1 RSA private key: {e}"));
        }
        if let Some(block) = pem_block(text, "EC PRIVATE KEY") {
            return ec_sec1(block).map(PrivateKey::Ec).ok_or_else(|| {
                format!("an EC private key (SEC1) the client cannot read ({EC_CURVES})")
            });
        }
        if let Some(block) = pem_block(text, "PRIVATE KEY") {
            if let Ok(key) = RsaPrivateKey::from_pkcs8_pem(block) {
                return Ok(PrivateKey::Rsa(Box::new(key)));
            }
            return ec_pkcs8(block).map(PrivateKey::Ec).ok_or_else(|| {
                format!(
                    "a PKCS#8 private key that is neither RSA nor EC on a supported curve \
                     ({EC_CURVES})"
                )
            });
        }
        Err(match pem_label(text) {
            Some("ENCRYPTED PRIVATE KEY") => {
                "the private key is password-protected (ENCRYPTED PRIVATE KEY): decrypt it \
                 first (openssl pkcs8 -in KEY -out PLAIN)"
                    .to_owned()
            }
            Some(label) if label.contains("PUBLIC") => {
                format!("a public key ({label}) was given where the private key is needed")
            }
            Some(label) => format!(
                "a PEM {label} is not a private key: give BEGIN RSA PRIVATE KEY, BEGIN EC \
                 PRIVATE KEY or BEGIN PRIVATE KEY"
            ),
            None => "no PEM block: give BEGIN RSA PRIVATE KEY, BEGIN EC PRIVATE KEY or BEGIN \
                     PRIVATE KEY"
                .to_owned(),
        })
    }

    /// Decrypts a data key encrypted for this key's public half.
    pub(crate) fn decrypt(&self, encrypted: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            PrivateKey::Rsa(key) => {
                key.decrypt(Oaep::new::<sha1::Sha1>(), encrypted)
                    .map_err(|_| {
                        "the data key does not decrypt with this private key (RSA-OAEP): the \
                     message was encrypted for another key"
                            .to_owned()
                    })
            }
            PrivateKey::Ec(key) => key.decrypt(encrypted),
        }
    }
}
