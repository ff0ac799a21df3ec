package pulsarwire;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pulsar.client.api.CompressionType;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.ConsumerBuilder;
import org.apache.pulsar.client.api.DeadLetterPolicy;
import org.apache.pulsar.client.api.HashingScheme;
import org.apache.pulsar.client.api.KeySharedPolicy;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.MessageId;
import org.apache.pulsar.client.api.MessageIdAdv;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.ProducerBuilder;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.Range;
import org.apache.pulsar.client.api.Schema;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.api.SubscriptionType;
import org.apache.pulsar.client.api.TypedMessageBuilder;
import org.apache.pulsar.client.api.schema.GenericObject;
import org.apache.pulsar.client.api.transaction.Transaction;
import org.apache.pulsar.client.impl.MessageIdImpl;
import org.apache.pulsar.client.impl.PulsarClientImpl;
import org.apache.pulsar.common.schema.SchemaInfo;

/**
 * The official Java client as a peer of pulsar-wire's interop tests (tests/interop_java.rs,
 * tests/interop_txn.rs).
 *
 * <pre>
 *   java pulsarwire.JavaPeer produce|consume|schema_info &lt; SPEC
 *   java pulsarwire.JavaPeer session &lt; SPEC_LINE COMMAND_LINE...
 * </pre>
 *
 * <p>SPEC is one JSON object on stdin (read to its end). Every field but {@code url} and
 * {@code topic} is optional.
 *
 * <p>{@code produce}: {@code compression} (NONE, LZ4, ZLIB, ZSTD, SNAPPY), {@code batching}
 * with {@code batch_max_messages} (batches close on that count or on the final flush, never on
 * time), {@code chunking} with {@code chunk_max_size}, {@code hashing} (JavaStringHash,
 * Murmur3_32Hash; else the client's default), {@code schema} (default bytes; every schema and
 * the JSON form of its values is in {@link Schemas}), and {@code messages}: a list of {@code
 * {payload_hex | value, properties, key, ordering_key_hex, event_time, deliver_after_ms}}
 * ({@code payload_hex} for bytes, else {@code value}). Prints one {@code sent} line per message
 * in order (its id), then {@code done} with the producer name and the producer's schema: {@code
 * schema_type}, {@code schema_definition} (text) and {@code schema_definition_hex}, {@code
 * schema_properties}, and for KeyValue {@code kv_encoding}, {@code key_schema}, {@code
 * value_schema}.
 *
 * <p>{@code consume}: {@code subscription}, {@code subscription_type} (default Shared; always
 * from Earliest), {@code count}: the messages to finish, {@code nack_below}: a delivery whose
 * redelivery count is below it is nacked (after {@code nack_delay_ms}), any other is acked
 * (unless {@code ack} is false, or its batch index is in {@code keep_batch_indexes}) and
 * finished; {@code batch_index_ack}; {@code priority_level}; {@code sticky_ranges}: Key_Shared
 * with these hash ranges, {@code [[start, end], ...]} (both ends included); {@code dead_letter}:
 * {@code {max_redeliver_count, topic (default: the client's), watch_topic}}; {@code
 * watch_dead_letters}: subscribe to {@code watch_topic} first (subscription java-dlq-watch, never acked) and wait until that many dead letters
 * came; {@code quiet_ms}: then go on receiving that long, for messages that should not come
 * (printed with {@code "extra": true}); {@code timeout_ms} for all that (default 60000).
 * Prints {@code subscribed} once subscribed, one {@code message} line per delivery ({@code
 * dead_letter} for the watcher's), then {@code done}. The consumer has the spec's {@code
 * schema} as produce has (plus {@code auto_consume}); every message line carries {@code
 * payload_hex}, {@code schema_version} (the 8-byte version as a long, null without one) and
 * {@code schema_version_hex}, {@code key_b64_encoded} and {@code key_bytes_hex}, and, but for
 * bytes, {@code value} (or {@code value_error} when the client could not decode it); with
 * auto_consume also {@code value_schema_type} and {@code reader_schema} (the writer's schema
 * the client fetched for that version).
 *
 * <p>{@code schema_info}: {@code topic}, {@code version} (optional, a long): one {@code schema}
 * line with {@code found} and the schema the broker serves over the binary protocol
 * (GET_SCHEMA), in the fields of produce's {@code done}; then {@code done}.
 *
 * <p>Transactions ({@code "transaction": "commit"} or {@code "abort"}, with {@code
 * transaction_timeout_ms}, default 60000): {@code produce} sends every message in one
 * transaction (its producer has no send timeout, as the client requires), {@code consume} acks
 * every finished message in one; the transaction opens before the first send or receive
 * ({@code txn} line: its id) and ends after the last ({@code txn_end} line: the action, {@code
 * ok} and, when it failed, the exception's {@code error_class} and {@code error}).
 *
 * <p>{@code session}: the first stdin line is the spec ({@code url}), every next line one
 * command, answered by one {@code result} line ({@code op}, {@code ok}; a failed operation is a
 * result with {@code error_class} and {@code error}, not the end of the session), so that a test
 * can interleave the Java client's transactions with its own. Commands ({@code op}): {@code
 * new_txn {name, timeout_ms}} (answers {@code txn_id}, {@code most_bits}, {@code least_bits});
 * {@code subscribe {consumer, topic, subscription, subscription_type}} (Shared, from Earliest);
 * {@code receive {consumer, count}} ({@code messages}: payload text and id; each kept by its
 * text for {@code ack}); {@code send {topic, txn?, payloads}} (text payloads, unbatched, one at
 * a time; answers their {@code ids}; with {@code txn}, in that transaction); {@code ack
 * {consumer, txn, payloads | ids}} (in the transaction, one at a time: answers {@code acks},
 * each {@code ok} or failed; {@code ids} are {@code {ledger_id, entry_id, partition}} of any
 * message of the subscription, delivered to this consumer or not); {@code end {txn, action}}
 * (commit or abort; answers {@code state} after it); {@code close}. At {@code close} or the
 * end of stdin: {@code done}.
 *
 * <p>End-to-end encryption ({@code produce}: {@code encryption_keys}, {@code public_keys},
 * {@code default_public_key}, {@code key_metadata}, {@code producer_crypto_failure_action};
 * {@code consume}: {@code private_keys}, {@code default_private_key}, {@code
 * crypto_failure_action}; message lines: {@code encrypted}, {@code encryption_ctx}) is in
 * {@link Crypto}.
 *
 * <p>Stdout carries only JSON lines; the client's log goes to stderr. On any failure: an {@code
 * error} line, exit status 1.
 */
public final class JavaPeer {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static PrintStream out;
    /** The consume command's private keys, to tell whether a message came decrypted. */
    private static Crypto.Keys consumerKeys;

    public static void main(String[] args) {
        // The JSON lines get the real stdout; anything else printed (the client's log) goes to
        // stderr. Before the client loads its logger, which binds System.out.
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        int status = 0;
        try {
            if (args.length != 1) {
                throw new IllegalArgumentException("usage: JavaPeer produce|consume|session|schema_info < SPEC_JSON");
            }
            boolean session = args[0].equals("session");
            BufferedReader input = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            JsonNode spec = session ? JSON.readTree(input.readLine()) : JSON.readTree(input);
            try (PulsarClient client = PulsarClient.builder()
                    .serviceUrl(spec.get("url").asText())
                    .operationTimeout(15, TimeUnit.SECONDS)
                    .enableTransaction(session || spec.has("transaction"))
                    .build()) {
                switch (args[0]) {
                    case "produce" -> produce(client, spec);
                    case "consume" -> consume(client, spec);
                    case "session" -> session(client, input);
                    case "schema_info" -> schemaInfo(client, spec);
                    default -> throw new IllegalArgumentException("unknown command " + args[0]);
                }
            }
        } catch (Throwable e) {
            ObjectNode line = event("error");
            line.put("message", e.toString());
            emit(line);
            e.printStackTrace();
            status = 1;
        }
        out.flush();
        System.exit(status);
    }

    // --- produce -------------------------------------------------------------------------------

    private static void produce(PulsarClient client, JsonNode spec) throws Exception {
        produce(client, spec, Schemas.codec(spec));
    }

    private static <T> void produce(PulsarClient client, JsonNode spec, Schemas.Codec<T> codec)
            throws Exception {
        Schema<T> schema = codec.schema();
        Function<JsonNode, T> value = codec.in();
        List<JsonNode> messages = new ArrayList<>();
        spec.path("messages").forEach(messages::add);
        boolean batching = spec.path("batching").asBoolean(false);
        Transaction txn = openTransaction(client, spec);
        ProducerBuilder<T> builder = client.newProducer(schema)
                .topic(spec.get("topic").asText())
                .compressionType(CompressionType.valueOf(spec.path("compression").asText("NONE")))
                .enableBatching(batching)
                .batchingMaxMessages(spec.path("batch_max_messages").asInt(1000))
                .batchingMaxPublishDelay(60, TimeUnit.SECONDS)
                .batchingMaxBytes(64 * 1024 * 1024)
                .enableChunking(spec.path("chunking").asBoolean(false))
                .blockIfQueueFull(true)
                // The client allows transactional sends only on producers without a send timeout.
                .sendTimeout(txn == null ? 60 : 0, TimeUnit.SECONDS)
                .maxPendingMessages(Math.max(1000, messages.size()));
        if (spec.has("chunk_max_size")) {
            builder.chunkMaxMessageSize(spec.get("chunk_max_size").asInt());
        }
        if (spec.has("hashing")) {
            builder.hashingScheme(HashingScheme.valueOf(spec.get("hashing").asText()));
        }
        Crypto.producer(builder, spec);
        try (Producer<T> producer = builder.create()) {
            List<CompletableFuture<MessageId>> ids = new ArrayList<>();
            for (JsonNode m : messages) {
                TypedMessageBuilder<T> msg =
                        (txn == null ? producer.newMessage() : producer.newMessage(txn)).value(value.apply(m));
                Map<String, String> properties = new TreeMap<>();
                m.path("properties").fields().forEachRemaining(e -> properties.put(e.getKey(), e.getValue().asText()));
                if (!properties.isEmpty()) {
                    msg.properties(properties);
                }
                if (m.hasNonNull("key")) {
                    msg.key(m.get("key").asText());
                }
                if (m.hasNonNull("ordering_key_hex")) {
                    msg.orderingKey(unhex(m.get("ordering_key_hex").asText()));
                }
                if (m.hasNonNull("event_time")) {
                    msg.eventTime(m.get("event_time").asLong());
                }
                if (m.hasNonNull("deliver_after_ms")) {
                    msg.deliverAfter(m.get("deliver_after_ms").asLong(), TimeUnit.MILLISECONDS);
                }
                // Unbatched: one at a time, each stored before the next is sent.
                ids.add(batching ? msg.sendAsync() : CompletableFuture.completedFuture(msg.send()));
            }
            producer.flush();
            for (int i = 0; i < ids.size(); i++) {
                ObjectNode line = event("sent");
                line.put("index", i);
                putId(line, ids.get(i).get(60, TimeUnit.SECONDS));
                emit(line);
            }
            endTransaction(txn, spec);
            ObjectNode done = event("done");
            done.put("sent", messages.size());
            done.put("producer_name", producer.getProducerName());
            done.setAll(Schemas.describe(schema.getSchemaInfo()));
            emit(done);
        }
    }

    // --- consume -------------------------------------------------------------------------------

    private static void consume(PulsarClient client, JsonNode spec) throws Exception {
        consume(client, spec, Schemas.codec(spec));
    }

    private static <T> void consume(PulsarClient client, JsonNode spec, Schemas.Codec<T> codec)
            throws Exception {
        long deadline = System.currentTimeMillis() + spec.path("timeout_ms").asLong(60000);
        int count = spec.path("count").asInt(0);
        int nackBelow = spec.path("nack_below").asInt(0);
        boolean ack = spec.path("ack").asBoolean(true);
        Set<Integer> keep = new HashSet<>();
        spec.path("keep_batch_indexes").forEach(i -> keep.add(i.asInt()));
        int deadWanted = spec.path("watch_dead_letters").asInt(0);
        Transaction txn = openTransaction(client, spec);
        ConsumerBuilder<T> builder = client.newConsumer(codec.schema())
                .topic(spec.get("topic").asText())
                .subscriptionName(spec.path("subscription").asText("java-sub"))
                .subscriptionType(SubscriptionType.valueOf(spec.path("subscription_type").asText("Shared")))
                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                .negativeAckRedeliveryDelay(spec.path("nack_delay_ms").asLong(100), TimeUnit.MILLISECONDS)
                .enableBatchIndexAcknowledgment(spec.path("batch_index_ack").asBoolean(false))
                .priorityLevel(spec.path("priority_level").asInt(0));
        consumerKeys = Crypto.consumer(builder, spec);
        JsonNode sticky = spec.get("sticky_ranges");
        if (sticky != null) {
            // Key_Shared with fixed hash ranges: [[start, end], ...], both ends included.
            List<Range> ranges = new ArrayList<>();
            sticky.forEach(r -> ranges.add(Range.of(r.get(0).asInt(), r.get(1).asInt())));
            builder.keySharedPolicy(KeySharedPolicy.stickyHashRange().ranges(ranges));
        }
        JsonNode dl = spec.get("dead_letter");
        Consumer<byte[]> watcher = null;
        if (dl != null) {
            DeadLetterPolicy.DeadLetterPolicyBuilder policy = DeadLetterPolicy.builder()
                    .maxRedeliverCount(dl.get("max_redeliver_count").asInt());
            if (dl.hasNonNull("topic")) {
                policy.deadLetterTopic(dl.get("topic").asText());
            }
            builder.deadLetterPolicy(policy.build());
            if (deadWanted > 0) {
                watcher = client.newConsumer()
                        .topic(dl.get("watch_topic").asText())
                        .subscriptionName("java-dlq-watch")
                        .subscriptionType(SubscriptionType.Shared)
                        .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                        .subscribe();
            }
        }
        try (Consumer<T> consumer = builder.subscribe()) {
            emit(event("subscribed"));
            int finished = 0;
            int deliveries = 0;
            int dead = 0;
            while (finished < count || dead < deadWanted) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException(String.format(
                            "timed out: %d of %d messages finished, %d of %d dead letters",
                            finished, count, dead, deadWanted));
                }
                Message<T> m = consumer.receive(50, TimeUnit.MILLISECONDS);
                if (m != null) {
                    if (handle(consumer, codec, txn, m, deliveries++, nackBelow, ack, keep, false)) {
                        finished++;
                    }
                }
                Message<byte[]> d = watcher == null ? null : watcher.receive(50, TimeUnit.MILLISECONDS);
                if (d != null) {
                    dead++;
                    ObjectNode line = describe("dead_letter", d);
                    emit(line);
                }
            }
            long quietUntil = System.currentTimeMillis() + spec.path("quiet_ms").asLong(0);
            int extras = 0;
            while (System.currentTimeMillis() < quietUntil) {
                Message<T> m = consumer.receive(50, TimeUnit.MILLISECONDS);
                if (m != null) {
                    extras++;
                    handle(consumer, codec, txn, m, deliveries++, nackBelow, ack, keep, true);
                }
            }
            endTransaction(txn, spec);
            ObjectNode done = event("done");
            done.put("finished", finished);
            done.put("deliveries", deliveries);
            done.put("extras", extras);
            emit(done);
        } finally {
            if (watcher != null) {
                watcher.close();
            }
        }
    }

    /** Prints a delivery, then nacks, acks or keeps it; true when it is finished. */
    private static <T> boolean handle(Consumer<T> consumer, Schemas.Codec<T> codec, Transaction txn,
            Message<T> m, int delivery, int nackBelow, boolean ack, Set<Integer> keep, boolean extra)
            throws Exception {
        ObjectNode line = describe("message", m);
        putValue(line, codec, m);
        line.put("delivery", delivery);
        line.put("extra", extra);
        boolean nack = m.getRedeliveryCount() < nackBelow;
        ack = ack && !keep.contains(((MessageIdAdv) m.getMessageId()).getBatchIndex());
        line.put("action", nack ? "nack" : ack ? "ack" : "keep");
        emit(line);
        if (nack) {
            consumer.negativeAcknowledge(m);
            return false;
        }
        if (ack && txn != null) {
            consumer.acknowledgeAsync(m.getMessageId(), txn).get(60, TimeUnit.SECONDS);
        } else if (ack) {
            consumer.acknowledge(m);
        }
        return true;
    }

    /**
     * The message's value in its schema's JSON form ({@code value}; none for bytes), or
     * {@code value_error} when it cannot be decoded; with AUTO_CONSUME also {@code
     * value_schema_type} and the writer's schema as the client fetched it ({@code
     * reader_schema}: type, definition, properties).
     */
    private static <T> void putValue(ObjectNode line, Schemas.Codec<T> codec, Message<T> m) {
        try {
            T value = m.getValue();
            JsonNode json = codec.out().apply(value);
            if (json != null) {
                line.set("value", json);
            }
            if (value instanceof GenericObject g) {
                line.put("value_schema_type", g.getSchemaType() == null ? null : g.getSchemaType().name());
                m.getReaderSchema().ifPresent(s -> line.set("reader_schema", Schemas.describe(s.getSchemaInfo())));
            }
        } catch (Exception e) {
            line.put("value_error", e.toString());
        }
    }

    private static ObjectNode describe(String kind, Message<?> m) {
        ObjectNode line = event(kind);
        line.put("payload_hex", hex(m.getData()));
        byte[] version = m.getSchemaVersion();
        line.put("schema_version", Schemas.version(version));
        line.put("schema_version_hex", version == null ? null : hex(version));
        line.put("key_b64_encoded", m.hasBase64EncodedKey());
        line.put("key_bytes_hex", m.hasKey() ? hex(m.getKeyBytes()) : null);
        ObjectNode props = line.putObject("properties");
        new TreeMap<>(m.getProperties()).forEach(props::put);
        line.put("key", m.hasKey() ? m.getKey() : null);
        line.put("ordering_key_hex", m.hasOrderingKey() ? hex(m.getOrderingKey()) : null);
        line.put("event_time", m.getEventTime());
        line.put("publish_time", m.getPublishTime());
        line.put("received_at_ms", System.currentTimeMillis());
        line.put("redelivery_count", m.getRedeliveryCount());
        line.put("topic", m.getTopicName());
        line.put("producer_name", m.getProducerName());
        putId(line, m.getMessageId());
        Crypto.describe(line, m, consumerKeys);
        return line;
    }

    // --- schema_info ---------------------------------------------------------------------------

    /**
     * The topic's schema as the broker's binary protocol serves it (GET_SCHEMA, the lookup the
     * Java client does for a writer's version): the latest, or {@code version} (a long). Prints
     * {@code schema} with {@code found} and, when found, the fields of {@link Schemas#describe}.
     */
    private static void schemaInfo(PulsarClient client, JsonNode spec) throws Exception {
        String topic = spec.get("topic").asText();
        PulsarClientImpl impl = (PulsarClientImpl) client;
        java.util.Optional<SchemaInfo> info;
        if (spec.hasNonNull("version")) {
            byte[] version = java.nio.ByteBuffer.allocate(8).putLong(spec.get("version").asLong()).array();
            info = java.util.Optional.ofNullable(impl.getSchemaProviderLoadingCache().get(topic)
                    .getSchemaByVersion(version)
                    .get(60, TimeUnit.SECONDS));
        } else {
            info = impl.getSchema(topic).get(60, TimeUnit.SECONDS);
        }
        ObjectNode line = event("schema");
        line.put("found", info.isPresent());
        info.ifPresent(i -> line.setAll(Schemas.describe(i)));
        emit(line);
        emit(event("done"));
    }

    // --- transactions --------------------------------------------------------------------------

    /** The spec's transaction ({@code transaction} given), opened and printed; else null. */
    private static Transaction openTransaction(PulsarClient client, JsonNode spec) throws Exception {
        if (!spec.has("transaction")) {
            return null;
        }
        Transaction txn = newTransaction(client, spec.path("transaction_timeout_ms").asLong(60000));
        ObjectNode line = event("txn");
        putTxn(line, txn);
        emit(line);
        return txn;
    }

    private static Transaction newTransaction(PulsarClient client, long timeoutMs) throws Exception {
        return client.newTransaction()
                .withTransactionTimeout(timeoutMs, TimeUnit.MILLISECONDS)
                .build()
                .get(60, TimeUnit.SECONDS);
    }

    /** Commits or aborts as the spec says, printing a {@code txn_end} line. */
    private static void endTransaction(Transaction txn, JsonNode spec) {
        if (txn == null) {
            return;
        }
        String action = spec.get("transaction").asText();
        ObjectNode line = event("txn_end");
        line.put("action", action);
        putTxn(line, txn);
        outcome(line, () -> end(txn, action));
        line.put("state", txn.getState().toString());
        emit(line);
    }

    private static void end(Transaction txn, String action) throws Exception {
        switch (action) {
            case "commit" -> txn.commit().get(60, TimeUnit.SECONDS);
            case "abort" -> txn.abort().get(60, TimeUnit.SECONDS);
            default -> throw new IllegalArgumentException("unknown transaction action " + action);
        }
    }

    private static void putTxn(ObjectNode line, Transaction txn) {
        line.put("txn_id", txn.getTxnID().toString());
        line.put("most_bits", txn.getTxnID().getMostSigBits());
        line.put("least_bits", txn.getTxnID().getLeastSigBits());
    }

    private interface Action {
        void run() throws Exception;
    }

    /**
     * Runs {@code action}: {@code ok} true, or false with the (unwrapped) exception's class and
     * message.
     */
    private static void outcome(ObjectNode line, Action action) {
        try {
            action.run();
            line.put("ok", true);
        } catch (Exception e) {
            Throwable cause = e;
            while ((cause instanceof ExecutionException || cause instanceof CompletionException)
                    && cause.getCause() != null) {
                cause = cause.getCause();
            }
            line.put("ok", false);
            line.put("error_class", cause.getClass().getSimpleName());
            line.put("error", String.valueOf(cause.getMessage()));
        }
    }

    // --- session -------------------------------------------------------------------------------

    private static void session(PulsarClient client, BufferedReader input) throws Exception {
        Map<String, Transaction> txns = new HashMap<>();
        Map<String, Producer<byte[]>> producers = new HashMap<>();
        Map<String, Consumer<byte[]>> consumers = new HashMap<>();
        Map<String, Message<byte[]>> received = new HashMap<>();
        try {
            String text;
            while ((text = input.readLine()) != null) {
                if (text.isBlank()) {
                    continue;
                }
                JsonNode cmd = JSON.readTree(text);
                String op = cmd.get("op").asText();
                if (op.equals("close")) {
                    break;
                }
                ObjectNode line = event("result");
                line.put("op", op);
                switch (op) {
                    case "new_txn" -> {
                        Transaction txn = newTransaction(client, cmd.path("timeout_ms").asLong(60000));
                        txns.put(cmd.get("name").asText(), txn);
                        putTxn(line, txn);
                        line.put("ok", true);
                    }
                    case "subscribe" -> {
                        Consumer<byte[]> consumer = client.newConsumer()
                                .topic(cmd.get("topic").asText())
                                .subscriptionName(cmd.get("subscription").asText())
                                .subscriptionType(SubscriptionType.valueOf(
                                        cmd.path("subscription_type").asText("Shared")))
                                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                                .subscribe();
                        consumers.put(cmd.get("consumer").asText(), consumer);
                        line.put("ok", true);
                    }
                    case "receive" -> {
                        Consumer<byte[]> consumer = consumers.get(cmd.get("consumer").asText());
                        var list = line.putArray("messages");
                        for (int i = 0; i < cmd.get("count").asInt(); i++) {
                            Message<byte[]> m = consumer.receive(60, TimeUnit.SECONDS);
                            if (m == null) {
                                throw new IllegalStateException("no message within 60 s");
                            }
                            String payload = new String(m.getData(), StandardCharsets.UTF_8);
                            received.put(payload, m);
                            ObjectNode item = list.addObject();
                            item.put("payload", payload);
                            putId(item, m.getMessageId());
                        }
                        line.put("ok", true);
                    }
                    case "send" -> {
                        String topic = cmd.get("topic").asText();
                        Producer<byte[]> producer = producers.get(topic);
                        if (producer == null) {
                            producer = client.newProducer()
                                    .topic(topic)
                                    .enableBatching(false)
                                    .sendTimeout(0, TimeUnit.SECONDS)
                                    .create();
                            producers.put(topic, producer);
                        }
                        Transaction txn = cmd.hasNonNull("txn") ? txns.get(cmd.get("txn").asText()) : null;
                        var ids = line.putArray("ids");
                        for (JsonNode p : cmd.get("payloads")) {
                            byte[] data = p.asText().getBytes(StandardCharsets.UTF_8);
                            MessageId id = (txn == null ? producer.newMessage() : producer.newMessage(txn))
                                    .value(data)
                                    .send();
                            putId(ids.addObject(), id);
                        }
                        line.put("ok", true);
                    }
                    case "ack" -> {
                        Consumer<byte[]> consumer = consumers.get(cmd.get("consumer").asText());
                        Transaction txn = txns.get(cmd.get("txn").asText());
                        List<MessageId> targets = new ArrayList<>();
                        cmd.path("payloads").forEach(p -> {
                            Message<byte[]> m = received.get(p.asText());
                            if (m == null) {
                                throw new IllegalArgumentException("not received: " + p.asText());
                            }
                            targets.add(m.getMessageId());
                        });
                        cmd.path("ids").forEach(i -> targets.add(new MessageIdImpl(
                                i.get("ledger_id").asLong(), i.get("entry_id").asLong(), i.get("partition").asInt())));
                        var acks = line.putArray("acks");
                        boolean all = true;
                        for (MessageId id : targets) {
                            ObjectNode item = acks.addObject();
                            putId(item, id);
                            outcome(item, () -> consumer.acknowledgeAsync(id, txn).get(60, TimeUnit.SECONDS));
                            all &= item.get("ok").asBoolean();
                        }
                        line.put("ok", all);
                    }
                    case "end" -> {
                        Transaction txn = txns.get(cmd.get("txn").asText());
                        String action = cmd.get("action").asText();
                        putTxn(line, txn);
                        line.put("action", action);
                        outcome(line, () -> end(txn, action));
                        line.put("state", txn.getState().toString());
                    }
                    default -> throw new IllegalArgumentException("unknown op " + op);
                }
                emit(line);
            }
        } finally {
            for (Consumer<byte[]> c : consumers.values()) {
                c.close();
            }
            for (Producer<byte[]> p : producers.values()) {
                p.close();
            }
        }
        emit(event("done"));
    }

    // --- helpers -------------------------------------------------------------------------------

    /** The id's fields, its string form, and the first chunk of a chunked message. */
    private static void putId(ObjectNode line, MessageId id) {
        MessageIdAdv adv = (MessageIdAdv) id;
        line.put("message_id", id.toString());
        line.put("ledger_id", adv.getLedgerId());
        line.put("entry_id", adv.getEntryId());
        line.put("batch_index", adv.getBatchIndex());
        line.put("batch_size", adv.getBatchSize());
        line.put("partition", adv.getPartitionIndex());
        MessageIdAdv first = adv.getFirstChunkMessageId();
        if (first != null) {
            line.put("first_chunk_ledger_id", first.getLedgerId());
            line.put("first_chunk_entry_id", first.getEntryId());
        }
    }

    private static ObjectNode event(String name) {
        ObjectNode line = JSON.createObjectNode();
        line.put("event", name);
        return line;
    }

    private static synchronized void emit(ObjectNode line) {
        try {
            out.println(JSON.writeValueAsString(line));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static String hex(byte[] data) {
        return HexFormat.of().formatHex(data == null ? new byte[0] : data);
    }

    private static byte[] unhex(String text) {
        return HexFormat.of().parseHex(text);
    }

    private JavaPeer() {}
}
