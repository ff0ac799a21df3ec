//! EC data keys as the Java client encrypts them: BouncyCastle's `ECIES` cipher with its
//! default parameters (no derivation or encoding vector, a 128-bit MAC key, no block cipher).
//! The C++ client has no EC keys.
//!
//! To encrypt `M` for the public key `Q`: an ephemeral key pair `(r, V = rG)`; the shared
//! secret `Z`, the x-coordinate of `rQ` padded to the field size; `K = KDF2-SHA1(V || Z)` of
//! `16 + |M|` bytes, its first 16 bytes the MAC key `K2` and the rest the stream `K1`;
//! `C = M xor K1`; `T = HMAC-SHA1(K2, C || L2)` with `L2` eight zero bytes (the bit length of
//! the absent encoding vector). The output is `V || C || T`, `V` an uncompressed point.

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

/// The MAC key's length (BouncyCastle's default `macKeySize` of 128 bits).
const MAC_KEY_LEN: usize = 16;
/// HMAC-SHA1's output.
const TAG_LEN: usize = 20;
/// The length tag of the absent encoding vector: its bit length, 0, on 8 bytes.
const L2: [u8; 8] = [0; 8];

/// An EC public key on a supported curve.
#[derive(Debug, Clone)]
pub(crate) enum EcPublic {
    P256(p256::PublicKey),
    P384(p384::PublicKey),
    P521(p521::PublicKey),
}

/// An EC private key on a supported curve.
#[derive(Clone)]
pub(crate) enum EcPrivate {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
}

impl std::fmt::Debug for EcPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EcPrivate::P256(_) => "EcPrivate::P256(..)",
            EcPrivate::P384(_) => "EcPrivate::P384(..)",
            EcPrivate::P521(_) => "EcPrivate::P521(..)",
        })
    }
}

/// KDF2 with SHA-1 (ISO 18033-2; a 32-bit big-endian counter from 1 after the secret).
fn kdf2_sha1(secret: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 20);
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut h = Sha1::new();
        h.update(secret);
        h.update(counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

fn mac(key: &[u8], c: &[u8]) -> Result<Hmac<Sha1>, String> {
    let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).map_err(|e| e.to_string())?;
    m.update(c);
    m.update(&L2);
    Ok(m)
}

/// The ciphertext from the ephemeral public key `v` and the shared secret `z`.
fn seal(v: &[u8], z: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
    let vz = zeroize::Zeroizing::new([v, z].concat());
    let k = zeroize::Zeroizing::new(kdf2_sha1(&vz, MAC_KEY_LEN + message.len()));
    let (k2, k1) = k.split_at(MAC_KEY_LEN);
    let c: Vec<u8> = message.iter().zip(k1).map(|(m, k)| m ^ k).collect();
    let t = mac(k2, &c)?.finalize().into_bytes();
    Ok([v, &c, &t].concat())
}

/// The message from `c` and `t`, with the ephemeral public key `v` and the shared secret `z`.
fn open(v: &[u8], z: &[u8], c: &[u8], t: &[u8]) -> Result<Vec<u8>, String> {
    let vz = zeroize::Zeroizing::new([v, z].concat());
    let k = zeroize::Zeroizing::new(kdf2_sha1(&vz, MAC_KEY_LEN + c.len()));
    let (k2, k1) = k.split_at(MAC_KEY_LEN);
    mac(k2, c)?.verify_slice(t).map_err(|_| {
        "the ECIES MAC does not match: the data key was encrypted for another key".to_owned()
    })?;
    Ok(c.iter().zip(k1).map(|(c, k)| c ^ k).collect())
}

macro_rules! encrypt_with {
    ($curve:ident, $public:expr, $message:expr) => {{
        use $curve::elliptic_curve::sec1::ToEncodedPoint;
        let ephemeral = $curve::ecdh::EphemeralSecret::random(&mut aes_gcm::aead::OsRng);
        let v = ephemeral.public_key().to_encoded_point(false);
        let shared = ephemeral.diffie_hellman($public);
        seal(v.as_bytes(), shared.raw_secret_bytes().as_slice(), $message)
    }};
}

macro_rules! decrypt_with {
    ($curve:ident, $secret:expr, $data:expr, $field:expr) => {{
        let v_len = 1 + 2 * $field;
        if $data.len() < v_len + TAG_LEN {
            return Err(format!(
                "the ECIES data key has {} bytes, too short for this curve",
                $data.len()
            ));
        }
        let (v, rest) = $data.split_at(v_len);
        let (c, t) = rest.split_at(rest.len() - TAG_LEN);
        let ephemeral = $curve::PublicKey::from_sec1_bytes(v)
            .map_err(|_| "the ECIES ephemeral key is not a point of the curve".to_owned())?;
        let shared =
            $curve::ecdh::diffie_hellman($secret.to_nonzero_scalar(), ephemeral.as_affine());
        open(v, shared.raw_secret_bytes().as_slice(), c, t)
    }};
}

impl EcPublic {
    /// Encrypts `message` (a data key) for this key.
    pub(crate) fn encrypt(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            EcPublic::P256(k) => encrypt_with!(p256, k, message),
            EcPublic::P384(k) => encrypt_with!(p384, k, message),
            EcPublic::P521(k) => encrypt_with!(p521, k, message),
        }
    }
}

impl EcPrivate {
    /// Decrypts a data key encrypted for this key's public half.
    pub(crate) fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            EcPrivate::P256(k) => decrypt_with!(p256, k, data, 32),
            EcPrivate::P384(k) => decrypt_with!(p384, k, data, 48),
            EcPrivate::P521(k) => decrypt_with!(p521, k, data, 66),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::DecodePublicKey;

    const EC_PUB: &str = include_str!("../../tests/data/crypto/ec-a.pub.pem");
    const EC_SEC1: &str = include_str!("../../tests/data/crypto/ec-a.sec1.pem");
    /// The Java client's output (BouncyCastle 1.78.1 `Cipher.getInstance("ECIES", "BC")`,
    /// ENCRYPT_MODE with ec-a's public key) for the bytes 0x00..=0x1f.
    const JAVA_ECIES: &str = include_str!("../../tests/data/crypto/ec-a.java-ecies.hex");

    fn secret() -> p256::SecretKey {
        p256::SecretKey::from_sec1_pem(EC_SEC1).unwrap()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s = s.trim();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decrypts_what_the_java_client_encrypted() {
        let data = hex(JAVA_ECIES);
        assert_eq!(data.len(), 65 + 32 + 20, "V || C || T");
        let key = EcPrivate::P256(secret());
        let expected: Vec<u8> = (0u8..32).collect();
        assert_eq!(key.decrypt(&data).unwrap(), expected);
        let mut tampered = data.clone();
        tampered[70] ^= 1;
        assert!(key.decrypt(&tampered).unwrap_err().contains("MAC"));
        assert!(key.decrypt(&data[..50]).is_err());
    }

    #[test]
    fn decrypts_what_the_java_client_encrypted_for_an_explicit_parameters_key() {
        let key = super::super::keys::PrivateKey::from_pem(include_bytes!(
            "../../tests/data/crypto/ec-explicit.sec1.pem"
        ))
        .unwrap();
        let data = hex(include_str!(
            "../../tests/data/crypto/ec-explicit.java-ecies.hex"
        ));
        assert_eq!(data.len(), 133 + 32 + 20, "P-521: V || C || T");
        let expected: Vec<u8> = (0u8..32).collect();
        assert_eq!(key.decrypt(&data).unwrap(), expected);
    }

    #[test]
    fn what_it_encrypts_it_decrypts() {
        let public = EcPublic::P256(p256::PublicKey::from_public_key_pem(EC_PUB).unwrap());
        let message = [7u8; 32];
        let a = public.encrypt(&message).unwrap();
        let b = public.encrypt(&message).unwrap();
        assert_ne!(a, b, "a fresh ephemeral key each time");
        assert_eq!(a.len(), 117);
        assert_eq!(a[0], 4, "an uncompressed point first");
        assert_eq!(EcPrivate::P256(secret()).decrypt(&a).unwrap(), message);
    }

    #[test]
    fn kdf2_counts_from_one() {
        // SHA-1("" || 00000001) is the first block.
        let k = kdf2_sha1(b"", 20);
        let mut h = Sha1::new();
        h.update([0, 0, 0, 1]);
        assert_eq!(k, h.finalize().to_vec());
        assert_eq!(kdf2_sha1(b"x", 45).len(), 45);
    }
}
