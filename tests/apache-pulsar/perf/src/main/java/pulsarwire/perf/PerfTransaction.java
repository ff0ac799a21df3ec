package pulsarwire.perf;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.MessageId;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.api.SubscriptionType;
import org.apache.pulsar.client.api.transaction.Transaction;

/**
 * The Java client's side of `pulsar-wire perf transaction`, for scripts/pulsar-perf.sh when
 * pulsar-perf itself (org.apache.pulsar:pulsar-testclient) cannot be resolved. It takes
 * pulsar-perf transaction's options (-u, --topics-c, --topics-p, -ss, -nmc, -nmp, -ntxn, -time,
 * -tto, -threads, -abort, -q) and runs the same loop as pulsar-wire: each thread, with its own
 * consumer (Shared, from the earliest message) and producer, opens a transaction, receives -nmc
 * messages and acknowledges them in it (asynchronously, all at once), sends -nmp messages of
 * 1024 bytes in it, flushes and awaits the receipts, then commits it (or aborts with -abort)
 * and waits for that. Latency: open to end done, and the open, acknowledgements, sends and end
 * apart (HdrHistogram, microseconds, 3 significant digits). Prints a summary on stderr and one
 * JSON line on stdout with the keys of pulsar-wire's ("client":"java").
 */
public final class PerfTransaction {
    private static final long MAX_US = TimeUnit.HOURS.toMicros(1);

    private String url = "pulsar://localhost:6650";
    private String consumeTopic = "test-consume";
    private String produceTopic = "test-produce";
    private String subscription = "sub";
    private int nmc = 1;
    private int nmp = 1;
    private long ntxn = 0;
    private long seconds = 0;
    private long txnTimeoutSecs = 5;
    private int threads = 1;
    private boolean abort = false;
    private int receiverQueue = 1000;

    private final AtomicLong started = new AtomicLong();
    private long endNanos;

    /** What one thread measured. */
    private static final class Stats {
        long txns;
        long errors;
        long consumed;
        long produced;
        long firstStart = Long.MAX_VALUE;
        long lastDone = Long.MIN_VALUE;
        String firstError;
        final Histogram total = new Histogram(MAX_US, 3);
        final Histogram open = new Histogram(MAX_US, 3);
        final Histogram ack = new Histogram(MAX_US, 3);
        final Histogram send = new Histogram(MAX_US, 3);
        final Histogram end = new Histogram(MAX_US, 3);

        void fail(String what) {
            errors++;
            if (firstError == null) {
                firstError = what;
            }
        }

        void merge(Stats o) {
            txns += o.txns;
            errors += o.errors;
            consumed += o.consumed;
            produced += o.produced;
            firstStart = Math.min(firstStart, o.firstStart);
            lastDone = Math.max(lastDone, o.lastDone);
            if (firstError == null) {
                firstError = o.firstError;
            }
            total.add(o.total);
            open.add(o.open);
            ack.add(o.ack);
            send.add(o.send);
            end.add(o.end);
        }

        double secs() {
            return lastDone > firstStart ? (lastDone - firstStart) / 1e9 : 0.0;
        }
    }

    private static void record(Histogram h, long nanos) {
        h.recordValue(Math.max(1, Math.min(MAX_US, TimeUnit.NANOSECONDS.toMicros(nanos))));
    }

    private static String next(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    private void parse(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "transaction" -> { }
                case "-u", "--service-url" -> url = next(args, ++i);
                case "--topics-c" -> consumeTopic = next(args, ++i);
                case "--topics-p" -> produceTopic = next(args, ++i);
                case "-ss", "--subscriptions" -> subscription = next(args, ++i);
                case "-nmc", "--numMessage-perTransaction-consume" -> nmc = Integer.parseInt(next(args, ++i));
                case "-nmp", "--numMessage-perTransaction-produce" -> nmp = Integer.parseInt(next(args, ++i));
                case "-ntxn", "--number-txn" -> ntxn = Long.parseLong(next(args, ++i));
                case "-time", "--test-duration" -> seconds = Long.parseLong(next(args, ++i));
                case "-tto", "--txn-timeout" -> txnTimeoutSecs = Long.parseLong(next(args, ++i));
                case "-threads", "--num-test-threads" -> threads = Integer.parseInt(next(args, ++i));
                case "-abort" -> abort = true;
                case "-q", "--receiver-queue-size" -> receiverQueue = Integer.parseInt(next(args, ++i));
                default -> throw new IllegalArgumentException("unknown option " + a);
            }
        }
        if (ntxn <= 0 && seconds <= 0) {
            throw new IllegalArgumentException("give -ntxn N or -time SECS");
        }
        if (threads < 1) {
            throw new IllegalArgumentException("-threads must be at least 1");
        }
    }

    private boolean mayStart() {
        return System.nanoTime() < endNanos && (ntxn <= 0 || started.getAndIncrement() < ntxn);
    }

    private Stats worker(PulsarClient client, byte[] payload) throws Exception {
        Stats s = new Stats();
        try (Consumer<byte[]> consumer = client.newConsumer()
                .topic(consumeTopic)
                .subscriptionName(subscription)
                .subscriptionType(SubscriptionType.Shared)
                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest)
                .receiverQueueSize(receiverQueue)
                .subscribe();
             Producer<byte[]> producer = client.newProducer()
                .topic(produceTopic)
                .sendTimeout(0, TimeUnit.SECONDS)
                .blockIfQueueFull(true)
                .create()) {
            loop:
            while (mayStart()) {
                long t0 = System.nanoTime();
                s.firstStart = Math.min(s.firstStart, t0);
                Transaction txn;
                try {
                    txn = client.newTransaction()
                            .withTransactionTimeout(txnTimeoutSecs, TimeUnit.SECONDS)
                            .build().get();
                } catch (Exception e) {
                    s.fail("opening a transaction failed: " + e);
                    continue;
                }
                record(s.open, System.nanoTime() - t0);
                try {
                    List<Message<byte[]>> msgs = new ArrayList<>(nmc);
                    for (int j = 0; j < nmc; j++) {
                        long left = endNanos - System.nanoTime();
                        Message<byte[]> m = left > 0 ? consumer.receive((int) Math.max(1,
                                TimeUnit.NANOSECONDS.toMillis(left)), TimeUnit.MILLISECONDS) : null;
                        if (m == null) {
                            // Past the end while waiting: the run is over. Before it: no input.
                            if (System.nanoTime() < endNanos) {
                                System.err.println("warning: the input topic ran dry (prefill it)");
                            }
                            txn.abort().get();
                            break loop;
                        }
                        msgs.add(m);
                    }
                    if (!msgs.isEmpty()) {
                        long ta = System.nanoTime();
                        List<CompletableFuture<Void>> acks = new ArrayList<>(nmc);
                        for (Message<byte[]> m : msgs) {
                            acks.add(consumer.acknowledgeAsync(m.getMessageId(), txn));
                        }
                        CompletableFuture.allOf(acks.toArray(new CompletableFuture<?>[0])).get();
                        record(s.ack, System.nanoTime() - ta);
                        s.consumed += msgs.size();
                    }
                    if (nmp > 0) {
                        long ts = System.nanoTime();
                        List<CompletableFuture<MessageId>> sends = new ArrayList<>(nmp);
                        for (int j = 0; j < nmp; j++) {
                            sends.add(producer.newMessage(txn).value(payload).sendAsync());
                        }
                        producer.flushAsync();
                        CompletableFuture.allOf(sends.toArray(new CompletableFuture<?>[0])).get();
                        record(s.send, System.nanoTime() - ts);
                        s.produced += nmp;
                    }
                } catch (Exception e) {
                    s.fail("transaction " + txn.getTxnID() + ": " + e);
                    try {
                        txn.abort().get();
                    } catch (Exception ignored) {
                        // Already failed; the broker aborts it at its timeout.
                    }
                    continue;
                }
                long te = System.nanoTime();
                try {
                    if (abort) {
                        txn.abort().get();
                    } else {
                        txn.commit().get();
                    }
                } catch (Exception e) {
                    s.fail((abort ? "abort" : "commit") + " of " + txn.getTxnID() + " failed: " + e);
                    continue;
                }
                long done = System.nanoTime();
                record(s.end, done - te);
                record(s.total, done - t0);
                s.txns++;
                s.lastDone = Math.max(s.lastDone, done);
            }
        }
        return s;
    }

    private static String ms(long us) {
        double ms = us / 1000.0;
        return ms >= 10 ? String.format(Locale.ROOT, "%.1f ms", ms) : String.format(Locale.ROOT, "%.2f ms", ms);
    }

    private static long q(Histogram h, double p) {
        return h.getTotalCount() == 0 ? 0 : h.getValueAtPercentile(p);
    }

    private int run(String[] args) throws Exception {
        parse(args);
        byte[] payload = new byte[1024];
        for (int i = 0; i < payload.length; i++) {
            payload[i] = (byte) ('A' + i % 26);
        }
        try (PulsarClient client = PulsarClient.builder()
                .serviceUrl(url)
                .enableTransaction(true)
                .build()) {
            // The first transaction finds the coordinators: not measured.
            client.newTransaction().withTransactionTimeout(txnTimeoutSecs, TimeUnit.SECONDS)
                    .build().get().abort().get();
            endNanos = System.nanoTime() + (seconds > 0 ? TimeUnit.SECONDS.toNanos(seconds) : Long.MAX_VALUE / 4);
            List<CompletableFuture<Stats>> workers = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                CompletableFuture<Stats> f = new CompletableFuture<>();
                Thread t = new Thread(() -> {
                    try {
                        f.complete(worker(client, payload));
                    } catch (Throwable e) {
                        f.completeExceptionally(e);
                    }
                }, "perf-txn-" + i);
                t.start();
                workers.add(f);
            }
            Stats all = new Stats();
            for (CompletableFuture<Stats> f : workers) {
                all.merge(f.get());
            }
            double secs = all.secs();
            double rate = secs > 0 ? all.txns / secs : 0.0;
            String end = abort ? "abort" : "commit";
            System.err.printf(Locale.ROOT,
                    "transaction: %d txns (%d consumed + %d produced each, %s) in %.3f s: %.0f txns/s, errors %d,"
                            + " threads %d%nlatency (open to %s done): p50 %s, p99 %s, p99.9 %s, max %s%n"
                            + "  of which: open p50 %s p99 %s; acks p50 %s p99 %s; sends p50 %s p99 %s; %s p50 %s p99 %s%n",
                    all.txns, nmc, nmp, abort ? "aborted" : "committed", secs, rate, all.errors, threads, end,
                    ms(q(all.total, 50)), ms(q(all.total, 99)), ms(q(all.total, 99.9)), ms(all.total.getMaxValue()),
                    ms(q(all.open, 50)), ms(q(all.open, 99)), ms(q(all.ack, 50)), ms(q(all.ack, 99)),
                    ms(q(all.send, 50)), ms(q(all.send, 99)), end, ms(q(all.end, 50)), ms(q(all.end, 99)));
            StringBuilder json = new StringBuilder();
            json.append(String.format(Locale.ROOT,
                    "{\"client\":\"java\",\"op\":\"transaction\",\"txns\":%d,\"secs\":%.3f,\"txns_per_sec\":%.1f,"
                            + "\"p50_us\":%d,\"p99_us\":%d,\"p999_us\":%d,\"max_us\":%d",
                    all.txns, secs, rate, q(all.total, 50), q(all.total, 99), q(all.total, 99.9),
                    all.total.getMaxValue()));
            String[] names = {"open", "ack", "send", "end"};
            Histogram[] hs = {all.open, all.ack, all.send, all.end};
            for (int i = 0; i < names.length; i++) {
                json.append(String.format(Locale.ROOT, ",\"%s_p50_us\":%d,\"%s_p99_us\":%d,\"%s_max_us\":%d",
                        names[i], q(hs[i], 50), names[i], q(hs[i], 99), names[i], hs[i].getMaxValue()));
            }
            json.append(String.format(Locale.ROOT,
                    ",\"consumed\":%d,\"produced\":%d,\"errors\":%d,\"messages_per_txn_consume\":%d,"
                            + "\"messages_per_txn_produce\":%d,\"concurrency\":%d,\"abort\":%b}",
                    all.consumed, all.produced, all.errors, nmc, nmp, threads, abort));
            System.out.println(json);
            if (all.firstError != null) {
                System.err.println("error: " + all.errors + " transactions failed (first: " + all.firstError + ")");
                return 1;
            }
            return 0;
        }
    }

    public static void main(String[] args) {
        int rc;
        try {
            rc = new PerfTransaction().run(args);
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
