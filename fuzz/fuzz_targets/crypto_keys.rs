//! Arbitrary bytes as encryption keys: PEM text, DER in PEM armour, `data:` URLs of a
//! `DefaultCryptoKeyReader`, a key pair to round-trip a message through, and the encryption
//! fields of a message for the decryptor (the first byte picks which). No panic, errors that say
//! something, and whatever decrypts is the plaintext (`pulsar_wire::protocol::fuzz::crypto_keys`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pulsar_wire::protocol::fuzz::crypto_keys(data);
});
