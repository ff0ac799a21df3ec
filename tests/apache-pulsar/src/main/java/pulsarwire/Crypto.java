package pulsarwire;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.apache.pulsar.client.api.ConsumerBuilder;
import org.apache.pulsar.client.api.ConsumerCryptoFailureAction;
import org.apache.pulsar.client.api.CryptoKeyReader;
import org.apache.pulsar.client.api.EncryptionKeyInfo;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.ProducerBuilder;
import org.apache.pulsar.client.api.ProducerCryptoFailureAction;
import org.apache.pulsar.common.api.EncryptionContext;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;

/**
 * End-to-end encryption for {@link JavaPeer}.
 *
 * <p>{@code produce}: {@code encryption_keys} (key names), {@code public_keys} ({@code {name:
 * PEM file}}) and {@code default_public_key} (a PEM file for the other names), {@code
 * key_metadata} ({@code {key: value}} sent with every encrypted data key), {@code
 * producer_crypto_failure_action} (FAIL, SEND).
 *
 * <p>{@code consume}: {@code private_keys} ({@code {name: PEM file}}) and {@code
 * default_private_key} (without either the consumer has no key reader), {@code
 * crypto_failure_action} (FAIL, DISCARD, CONSUME). Every message line then carries {@code
 * encrypted}: whether it came undecrypted (its payload still the ciphertext: the peer checks it
 * with AES-GCM under the data key its keys open, or no key of it opens the data key), and,
 * when the message had encryption keys, {@code encryption_ctx}: {@code keys} ({@code name},
 * {@code value_hex}, {@code metadata}), {@code param_hex}, {@code algorithm}, {@code
 * compression}, {@code uncompressed_size}, {@code batch_size}.
 *
 * <p>The keys are files read with {@link Files#readAllBytes}, handed to the client as they are:
 * the client's own PEM parsing decides what it accepts.
 */
final class Crypto {
    /** A {@link CryptoKeyReader} of PEM files by name, with a default. */
    static final class Keys implements CryptoKeyReader {
        private static final long serialVersionUID = 1L;
        private final Map<String, String> byName = new TreeMap<>();
        private String fallback;
        private final Map<String, String> metadata = new TreeMap<>();

        /** The keys of {@code byName} ({@code {name: file}}) and {@code fallback}; null if none. */
        static Keys of(JsonNode byName, JsonNode fallback, JsonNode metadata) {
            if ((byName == null || byName.isEmpty()) && (fallback == null || fallback.isNull())) {
                return null;
            }
            Keys k = new Keys();
            if (byName != null) {
                byName.fields().forEachRemaining(e -> k.byName.put(e.getKey(), e.getValue().asText()));
            }
            if (fallback != null && !fallback.isNull()) {
                k.fallback = fallback.asText();
            }
            if (metadata != null) {
                metadata.fields().forEachRemaining(e -> k.metadata.put(e.getKey(), e.getValue().asText()));
            }
            return k;
        }

        byte[] read(String name) {
            String file = byName.getOrDefault(name, fallback);
            if (file == null) {
                return null;
            }
            try {
                return Files.readAllBytes(Path.of(file));
            } catch (IOException e) {
                // A missing file is a missing key: the client decides what follows.
                System.err.println("JavaPeer: cannot read key " + name + " from " + file + ": " + e);
                return null;
            }
        }

        private EncryptionKeyInfo info(String name, Map<String, String> md) {
            byte[] key = read(name);
            // No key of that name: an empty one, which the client cannot load (and then fails
            // or goes on as told); a null one would make it throw.
            return new EncryptionKeyInfo(key == null ? new byte[0] : key, md);
        }

        @Override
        public EncryptionKeyInfo getPublicKey(String name, Map<String, String> md) {
            return info(name, new TreeMap<>(metadata));
        }

        @Override
        public EncryptionKeyInfo getPrivateKey(String name, Map<String, String> md) {
            return info(name, md);
        }
    }

    /** Sets the spec's encryption keys on a producer. */
    static <T> void producer(ProducerBuilder<T> builder, JsonNode spec) {
        if (!spec.has("encryption_keys")) {
            return;
        }
        Keys keys = Keys.of(spec.get("public_keys"), spec.get("default_public_key"), spec.get("key_metadata"));
        if (keys != null) {
            builder.cryptoKeyReader(keys);
        }
        spec.get("encryption_keys").forEach(n -> builder.addEncryptionKey(n.asText()));
        if (spec.has("producer_crypto_failure_action")) {
            builder.cryptoFailureAction(ProducerCryptoFailureAction.valueOf(
                    spec.get("producer_crypto_failure_action").asText()));
        }
    }

    /** Sets the spec's private keys and crypto failure action on a consumer; its keys or null. */
    static <T> Keys consumer(ConsumerBuilder<T> builder, JsonNode spec) {
        Keys keys = Keys.of(spec.get("private_keys"), spec.get("default_private_key"), null);
        if (keys != null) {
            builder.cryptoKeyReader(keys);
        }
        if (spec.has("crypto_failure_action")) {
            builder.cryptoFailureAction(ConsumerCryptoFailureAction.valueOf(spec.get("crypto_failure_action").asText()));
        }
        return keys;
    }

    /** Adds {@code encrypted} and {@code encryption_ctx} to a message line. */
    static void describe(ObjectNode line, Message<?> m, Keys keys) {
        Optional<EncryptionContext> found = m.getEncryptionCtx();
        if (found.isEmpty()) {
            line.put("encrypted", false);
            return;
        }
        EncryptionContext ctx = found.get();
        ObjectNode c = line.putObject("encryption_ctx");
        var list = c.putArray("keys");
        new TreeMap<>(ctx.getKeys()).forEach((name, k) -> {
            ObjectNode item = list.addObject();
            item.put("name", name);
            item.put("value_hex", HexFormat.of().formatHex(k.getKeyValue()));
            ObjectNode md = item.putObject("metadata");
            if (k.getMetadata() != null) {
                new TreeMap<>(k.getMetadata()).forEach(md::put);
            }
        });
        c.put("param_hex", ctx.getParam() == null ? null : HexFormat.of().formatHex(ctx.getParam()));
        c.put("algorithm", ctx.getAlgorithm());
        c.put("compression", String.valueOf(ctx.getCompressionType()));
        c.put("uncompressed_size", ctx.getUncompressedMessageSize());
        if (ctx.getBatchSize().isPresent()) {
            c.put("batch_size", ctx.getBatchSize().get());
        } else {
            c.putNull("batch_size");
        }
        line.put("encrypted", stillCiphertext(ctx, m.getData(), keys));
    }

    /**
     * Whether {@code payload} is still the ciphertext: no key of {@code keys} opens a data key
     * of the message (then the client could not decrypt it either), or one does and the
     * payload opens under it with AES-GCM.
     */
    private static boolean stillCiphertext(EncryptionContext ctx, byte[] payload, Keys keys) {
        if (keys == null) {
            return true;
        }
        boolean opened = false;
        for (var e : ctx.getKeys().entrySet()) {
            byte[] dataKey = openDataKey(keys.read(e.getKey()), e.getValue().getKeyValue());
            if (dataKey == null) {
                continue;
            }
            opened = true;
            try {
                Cipher aes = Cipher.getInstance("AES/GCM/NoPadding");
                aes.init(Cipher.DECRYPT_MODE, new SecretKeySpec(dataKey, "AES"),
                        new GCMParameterSpec(128, ctx.getParam()));
                aes.doFinal(payload);
                return true;
            } catch (Exception notCiphertext) {
                // The payload is not this data key's ciphertext: it was decrypted.
            }
        }
        return !opened;
    }

    /** The data key, if {@code pem} is a private key (PKCS#1 or PKCS#8) that opens it. */
    private static byte[] openDataKey(byte[] pem, byte[] encrypted) {
        if (pem == null) {
            return null;
        }
        try (PEMParser parser = new PEMParser(new StringReader(new String(pem, StandardCharsets.US_ASCII)))) {
            Object o = parser.readObject();
            PrivateKeyInfo info = o instanceof PEMKeyPair pair ? pair.getPrivateKeyInfo()
                    : o instanceof PrivateKeyInfo p ? p : null;
            if (info == null) {
                return null;
            }
            PrivateKey key = new JcaPEMKeyConverter().getPrivateKey(info);
            Cipher rsa = Cipher.getInstance("RSA/NONE/OAEPWithSHA1AndMGF1Padding", BouncyCastleProvider.PROVIDER_NAME);
            rsa.init(Cipher.DECRYPT_MODE, key);
            return rsa.doFinal(encrypted);
        } catch (Exception e) {
            return null;
        }
    }

    private Crypto() {}
}
