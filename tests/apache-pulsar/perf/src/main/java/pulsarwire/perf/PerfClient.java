package pulsarwire.perf;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.ProducerBuilder;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.api.SubscriptionType;

/**
 * The Java client's side of `pulsar-perf produce` and `pulsar-perf consume`, for
 * scripts/pulsar-perf.sh when pulsar-perf itself (org.apache.pulsar:pulsar-testclient) cannot be
 * resolved. It takes the options of pulsar-perf that scripts/bench-peers.sh passes and prints
 * pulsar-perf's two final lines ("Aggregated throughput stats --- N records sent|received ---
 * R msg/s --- T Mbit/s" and "Aggregated latency stats --- Latency: mean: ... ms - med: ... -
 * 95pct: ... - 99pct: ... - 99.9pct: ... - 99.99pct: ... - 99.999pct: ... - Max: ..."), so that
 * one parser reads both.
 *
 * <p>produce: -u URL, -r msgs/s across topics (0: no limit), -s bytes, -o max pending per
 * producer, -p max pending across partitions, -n producers per topic, -t topics (named
 * TOPIC-0..N-1 when more than one), -time secs, -m messages, -db, -bm, -bb, -b ms. One thread
 * sends to the producers in turn with sendAsync (blockIfQueueFull), the latency running from
 * before the call (so it includes a wait for a free slot) to the receipt; at the end the pending
 * sends are awaited. Elapsed time: the first send to the last receipt (pulsar-perf counts from
 * its start, producer creation included).
 *
 * <p>consume: -u URL, -t topics, -ss subscription, -st type, -sp Earliest|Latest, -q receiver
 * queue, -time secs, -m messages. One thread receives and acknowledges every message; latency
 * is receive time minus publish time (milliseconds precision). Elapsed: subscribed to the last
 * message.
 */
public final class PerfClient {
    private static final long MAX_US = TimeUnit.HOURS.toMicros(1);

    private String op;
    private String url = "pulsar://localhost:6650";
    private final List<String> topicArgs = new ArrayList<>();
    private double rate = 100;
    private int size = 1024;
    private int maxPending = 1000;
    private int maxPendingAcross = 50000;
    private int producersPerTopic = 1;
    private int numTopics = 1;
    private long seconds = 0;
    private long numMessages = 0;
    private boolean batching = true;
    private int batchMaxMessages = 1000;
    private int batchMaxBytes = 4 * 1024 * 1024;
    private double batchMillis = 1.0;
    private String subscription = "sub";
    private SubscriptionType subType = SubscriptionType.Exclusive;
    private SubscriptionInitialPosition position = SubscriptionInitialPosition.Latest;
    private int receiverQueue = 1000;

    private static String next(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    private void parse(String[] args) {
        if (args.length == 0 || !(args[0].equals("produce") || args[0].equals("consume"))) {
            throw new IllegalArgumentException("the first argument must be produce or consume");
        }
        op = args[0];
        boolean produce = op.equals("produce");
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "-u", "--service-url" -> url = next(args, ++i);
                case "-t", "--num-topics", "--num-topic" -> numTopics = Integer.parseInt(next(args, ++i));
                case "-time", "--test-duration" -> seconds = Long.parseLong(next(args, ++i));
                case "-m", "--num-messages" -> numMessages = Long.parseLong(next(args, ++i));
                case "-n", "--num-producers", "--num-consumers" -> producersPerTopic = Integer.parseInt(next(args, ++i));
                case "--warmup-time" -> next(args, ++i);
                default -> {
                    if (produce && parseProduce(args, i)) {
                        i++;
                    } else if (produce && a.equals("-db")) {
                        batching = false;
                    } else if (!produce && parseConsume(args, i)) {
                        i++;
                    } else if (a.startsWith("-")) {
                        throw new IllegalArgumentException("unknown option " + a + " for " + op);
                    } else {
                        topicArgs.add(a);
                    }
                }
            }
        }
        if (topicArgs.size() != 1) {
            throw new IllegalArgumentException("give one topic (and -t N for N topics named TOPIC-0..N-1)");
        }
        if (numTopics < 1 || producersPerTopic < 1) {
            throw new IllegalArgumentException("-t and -n must be at least 1");
        }
    }

    private boolean parseProduce(String[] args, int i) {
        switch (args[i]) {
            case "-r", "--rate" -> rate = Double.parseDouble(next(args, i + 1));
            case "-s", "--size" -> size = Integer.parseInt(next(args, i + 1));
            case "-o", "--max-outstanding" -> maxPending = Integer.parseInt(next(args, i + 1));
            case "-p", "--max-outstanding-across-partitions" -> maxPendingAcross = Integer.parseInt(next(args, i + 1));
            case "-bm", "--batch-max-messages" -> batchMaxMessages = Integer.parseInt(next(args, i + 1));
            case "-bb", "--batch-max-bytes" -> batchMaxBytes = Integer.parseInt(next(args, i + 1));
            case "-b", "--batch-time-window" -> batchMillis = Double.parseDouble(next(args, i + 1));
            default -> {
                return false;
            }
        }
        return true;
    }

    private boolean parseConsume(String[] args, int i) {
        switch (args[i]) {
            case "-ss", "--subscriptions" -> subscription = next(args, i + 1);
            case "-st", "--subscription-type" -> subType = SubscriptionType.valueOf(next(args, i + 1));
            case "-sp", "--subscription-position" -> position = SubscriptionInitialPosition.valueOf(next(args, i + 1));
            case "-q", "--receiver-queue-size" -> receiverQueue = Integer.parseInt(next(args, i + 1));
            default -> {
                return false;
            }
        }
        return true;
    }

    private List<String> topics() {
        String base = topicArgs.get(0);
        List<String> out = new ArrayList<>();
        if (numTopics == 1) {
            out.add(base);
        } else {
            for (int i = 0; i < numTopics; i++) {
                out.add(base + "-" + i);
            }
        }
        return out;
    }

    private static String dec(double v) {
        return String.format(Locale.ROOT, "%.3f", v);
    }

    private static void summary(String verb, long n, long bytes, double secs, Histogram h) {
        double r = secs > 0 ? n / secs : 0;
        double mbit = secs > 0 ? bytes / secs / 1024 / 1024 * 8 : 0;
        System.err.printf(Locale.ROOT, "Aggregated throughput stats --- %d records %s --- %s msg/s --- %s Mbit/s%n",
                n, verb, dec(r), dec(mbit));
        boolean e = h.getTotalCount() == 0;
        System.err.printf(Locale.ROOT, "Aggregated latency stats --- Latency: mean: %s ms - med: %s - 95pct: %s - "
                        + "99pct: %s - 99.9pct: %s - 99.99pct: %s - 99.999pct: %s - Max: %s%n",
                dec(e ? 0 : h.getMean() / 1000.0), q(h, 50), q(h, 95), q(h, 99), q(h, 99.9), q(h, 99.99),
                q(h, 99.999), dec(e ? 0 : h.getMaxValue() / 1000.0));
    }

    private static String q(Histogram h, double p) {
        return dec(h.getTotalCount() == 0 ? 0 : h.getValueAtPercentile(p) / 1000.0);
    }

    // maxPendingMessagesAcrossPartitions is deprecated (for memoryLimit) but is pulsar-perf's -p.
    @SuppressWarnings("deprecation")
    private int produce(PulsarClient client) throws Exception {
        byte[] payload = new byte[size];
        for (int i = 0; i < payload.length; i++) {
            payload[i] = (byte) ('A' + i % 26);
        }
        // Created all at once (as pulsar-perf does), then awaited.
        List<CompletableFuture<Producer<byte[]>>> creating = new ArrayList<>();
        for (String topic : topics()) {
            for (int j = 0; j < producersPerTopic; j++) {
                ProducerBuilder<byte[]> b = client.newProducer()
                        .topic(topic)
                        .sendTimeout(0, TimeUnit.SECONDS)
                        .blockIfQueueFull(true)
                        .maxPendingMessages(maxPending)
                        .maxPendingMessagesAcrossPartitions(maxPendingAcross)
                        .enableBatching(batching);
                if (batching) {
                    b.batchingMaxMessages(batchMaxMessages)
                            .batchingMaxBytes(batchMaxBytes)
                            .batchingMaxPublishDelay((long) (batchMillis * 1000), TimeUnit.MICROSECONDS);
                }
                creating.add(b.createAsync());
            }
        }
        List<Producer<byte[]>> producers = new ArrayList<>();
        for (CompletableFuture<Producer<byte[]>> f : creating) {
            producers.add(f.get());
        }
        Histogram hist = new Histogram(MAX_US, 3);
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicLong lastReceipt = new AtomicLong();
        // Bounds the sends awaiting a receipt in all, so that the end can await them.
        Semaphore inflight = new Semaphore(Integer.MAX_VALUE);
        long start = System.nanoTime();
        long end = seconds > 0 ? start + TimeUnit.SECONDS.toNanos(seconds) : Long.MAX_VALUE;
        long sent = 0;
        int n = producers.size();
        while (System.nanoTime() < end && (numMessages <= 0 || sent < numMessages)) {
            if (rate > 0) {
                long due = start + (long) (sent * 1e9 / rate);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    LockSupport.parkNanos(wait);
                }
            }
            Producer<byte[]> p = producers.get((int) (sent % n));
            final long t0 = System.nanoTime();
            inflight.acquireUninterruptibly();
            p.sendAsync(payload).whenComplete((id, err) -> {
                long now = System.nanoTime();
                if (err == null) {
                    synchronized (hist) {
                        hist.recordValue(Math.max(1, Math.min(MAX_US, (now - t0) / 1000)));
                    }
                    acked.incrementAndGet();
                    lastReceipt.accumulateAndGet(now, Math::max);
                } else {
                    failed.incrementAndGet();
                }
                inflight.release();
            });
            sent++;
        }
        for (Producer<byte[]> p : producers) {
            p.flushAsync();
        }
        inflight.acquireUninterruptibly(Integer.MAX_VALUE);
        double secs = Math.max(0, lastReceipt.get() - start) / 1e9;
        synchronized (hist) {
            summary("sent", acked.get(), acked.get() * size, secs, hist);
        }
        for (Producer<byte[]> p : producers) {
            p.closeAsync();
        }
        if (failed.get() > 0) {
            System.err.println("error: " + failed.get() + " sends failed");
            return 1;
        }
        return 0;
    }

    private int consume(PulsarClient client) throws Exception {
        try (Consumer<byte[]> consumer = client.newConsumer()
                .topics(topics())
                .subscriptionName(subscription)
                .subscriptionType(subType)
                .subscriptionInitialPosition(position)
                .receiverQueueSize(receiverQueue)
                .subscribe()) {
            Histogram hist = new Histogram(MAX_US, 3);
            long start = System.nanoTime();
            long end = seconds > 0 ? start + TimeUnit.SECONDS.toNanos(seconds) : Long.MAX_VALUE;
            long n = 0;
            long bytes = 0;
            long last = start;
            while (numMessages <= 0 || n < numMessages) {
                long left = end - System.nanoTime();
                if (left <= 0) {
                    break;
                }
                Message<byte[]> m = consumer.receive((int) Math.max(1, Math.min(1000,
                        TimeUnit.NANOSECONDS.toMillis(left))), TimeUnit.MILLISECONDS);
                if (m == null) {
                    continue;
                }
                last = System.nanoTime();
                long us = (System.currentTimeMillis() - m.getPublishTime()) * 1000;
                hist.recordValue(Math.max(1, Math.min(MAX_US, us)));
                n++;
                bytes += m.size();
                consumer.acknowledgeAsync(m.getMessageId());
            }
            summary("received", n, bytes, (last - start) / 1e9, hist);
        }
        return 0;
    }

    private int run(String[] args) throws Exception {
        parse(args);
        try (PulsarClient client = PulsarClient.builder()
                .serviceUrl(url)
                .connectionsPerBroker(1)
                .build()) {
            return op.equals("produce") ? produce(client) : consume(client);
        }
    }

    public static void main(String[] args) {
        int rc;
        try {
            rc = new PerfClient().run(args);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            rc = 2;
        } catch (Exception e) {
            System.err.println("error: " + e);
            rc = 1;
        }
        System.exit(rc);
    }
}
