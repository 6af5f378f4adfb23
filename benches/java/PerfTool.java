import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

/**
 * Load generator for gregor's benchmarks, on the official Java client (what Kafka's own
 * kafka-producer-perf-test / kafka-consumer-perf-test / EndToEndLatency use).
 *
 *   produce BOOTSTRAP TOPIC RECORDS RECORD_BYTES ACKS  -> records/s, MB/s, latency p50/p99
 *   consume BOOTSTRAP TOPIC RECORDS                    -> records/s, MB/s (assign all partitions, from the beginning)
 *   e2e     BOOTSTRAP TOPIC RECORDS                    -> produce one record, consume it: p50/p99 ms
 *
 * Output is one line of key=value pairs, parsed by benches/kafka_bench.py. With
 * PERF_CLIENT_CONFIG=FILE the client properties in FILE (security.protocol, ssl.*, sasl.*)
 * are added to every producer and consumer.
 */
public class PerfTool {
    public static void main(String[] a) throws Exception {
        switch (a[0]) {
            case "produce" -> produce(a[1], a[2], Long.parseLong(a[3]), Integer.parseInt(a[4]), a[5]);
            case "consume" -> consume(a[1], a[2], Long.parseLong(a[3]));
            case "e2e" -> e2e(a[1], a[2], Integer.parseInt(a[3]));
            default -> throw new IllegalArgumentException(a[0]);
        }
    }

    /** The PERF_CLIENT_CONFIG properties file, or nothing. */
    static Properties clientConfig() {
        Properties p = new Properties();
        String path = System.getenv("PERF_CLIENT_CONFIG");
        if (path != null && !path.isEmpty()) {
            try (java.io.Reader r = java.nio.file.Files.newBufferedReader(java.nio.file.Path.of(path))) {
                p.load(r);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
        return p;
    }

    static Properties producerProps(String bootstrap, String acks) {
        Properties p = clientConfig();
        p.put("bootstrap.servers", bootstrap);
        p.put("acks", acks);
        p.put("linger.ms", "5");
        p.put("batch.size", "65536");
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        return p;
    }

    static void produce(String bootstrap, String topic, long n, int size, String acks) throws Exception {
        byte[] value = new byte[size];
        new Random(1).nextBytes(value);
        long[] lat = new long[(int) Math.min(n, 2_000_000)];
        AtomicLong errors = new AtomicLong();
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(bootstrap, acks))) {
            long start = System.nanoTime();
            for (long i = 0; i < n; i++) {
                final long sent = System.nanoTime();
                final int slot = (int) (i % lat.length);
                p.send(new ProducerRecord<>(topic, null, value), (md, e) -> {
                    if (e != null) errors.incrementAndGet();
                    lat[slot] = System.nanoTime() - sent;
                });
            }
            p.flush();
            double secs = (System.nanoTime() - start) / 1e9;
            long[] sorted = lat.clone();
            Arrays.sort(sorted);
            System.out.printf(Locale.ROOT, "records=%d seconds=%.3f records_per_s=%.0f mb_per_s=%.2f p50_ms=%.2f p99_ms=%.2f errors=%d%n",
                n, secs, n / secs, n * (double) size / secs / 1e6, sorted[sorted.length / 2] / 1e6, sorted[(int) (sorted.length * 0.99)] / 1e6, errors.get());
        }
    }

    static KafkaConsumer<byte[], byte[]> consumer(String bootstrap) {
        Properties c = clientConfig();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", "perf-" + UUID.randomUUID());
        c.put("enable.auto.commit", "false");
        c.put("fetch.max.bytes", "52428800");
        c.put("max.partition.fetch.bytes", "10485760");
        c.put("key.deserializer", ByteArrayDeserializer.class.getName());
        c.put("value.deserializer", ByteArrayDeserializer.class.getName());
        return new KafkaConsumer<>(c);
    }

    static void consume(String bootstrap, String topic, long n) {
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
            List<TopicPartition> tps = new ArrayList<>();
            c.partitionsFor(topic).forEach(pi -> tps.add(new TopicPartition(topic, pi.partition())));
            c.assign(tps);
            c.seekToBeginning(tps);
            long count = 0, bytes = 0;
            long start = System.nanoTime();
            long deadline = start + Duration.ofMinutes(5).toNanos();
            while (count < n && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    count++;
                    bytes += r.value() == null ? 0 : r.value().length;
                }
            }
            double secs = (System.nanoTime() - start) / 1e9;
            System.out.printf(Locale.ROOT, "records=%d seconds=%.3f records_per_s=%.0f mb_per_s=%.2f%n", count, secs, count / secs, bytes / secs / 1e6);
        }
    }

    static void e2e(String bootstrap, String topic, int n) throws Exception {
        Properties pp = producerProps(bootstrap, "1");
        pp.put("linger.ms", "0");
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp);
             KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToEnd(List.of(tp));
            c.position(tp);
            long[] lat = new long[n];
            byte[] value = new byte[100];
            // Warm-up round trips (JIT, connections) are not measured.
            for (int i = -200; i < n; i++) {
                long t0 = System.nanoTime();
                p.send(new ProducerRecord<>(topic, 0, null, value)).get();
                boolean got = false;
                while (!got) {
                    got = !c.poll(Duration.ofMillis(1000)).isEmpty();
                }
                if (i >= 0) lat[i] = System.nanoTime() - t0;
            }
            Arrays.sort(lat);
            System.out.printf(Locale.ROOT, "records=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f%n", n, lat[n / 2] / 1e6, lat[(int) (n * 0.99)] / 1e6, lat[n - 1] / 1e6);
        }
    }
}
