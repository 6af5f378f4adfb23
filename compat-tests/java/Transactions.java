// Transactional producer scenarios with the Java client (what Kafka Streams'
// exactly_once_v2 and every read-process-write service do), for test_transactions.py.
//
//   java Transactions cac   --bootstrap-server B --topic T --txn-id ID --tag TAG
//        commit 3 records (partitions 0,1,0), abort 3 (sent before the abort), commit 3.
//   java Transactions ctp   --bootstrap-server B --input IN --output OUT --group G
//        --txn-id ID --count N --commit true|false
//        consume N records of IN in group G (read_committed), produce their values
//        upper-cased to OUT and commit the consumer's offsets in the same transaction
//        (sendOffsetsToTransaction with the group's metadata: KIP-447), then commit or abort.
//   java Transactions fence --bootstrap-server B --topic T --txn-id ID --tag TAG
//        producer A opens a transaction and writes; producer B with the same
//        transactional.id initializes (aborting A's transaction) and commits its own;
//        A's next commit must fail fenced.
// stdout: OK ... on success, FENCED <exception> for the fenced producer, ERROR ... else.

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Transactions {
    static KafkaProducer<String, String> producer(String bs, String txnId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bs);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
        return new KafkaProducer<>(p);
    }

    static void send3(KafkaProducer<String, String> p, String topic, String prefix) throws Exception {
        for (int i = 0; i < 3; i++) {
            p.send(new ProducerRecord<>(topic, i % 2, null, prefix + "-" + i)).get();
        }
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        Map<String, List<String>> o = Lines.options(args, 1);
        String bs = Lines.opt(o, "bootstrap-server", null);
        String txnId = Lines.opt(o, "txn-id", null);
        try {
            switch (mode) {
                case "cac": cac(bs, txnId, Lines.opt(o, "topic", null), Lines.opt(o, "tag", "java")); break;
                case "ctp": ctp(bs, txnId, o); break;
                case "fence": fence(bs, txnId, Lines.opt(o, "topic", null), Lines.opt(o, "tag", "java")); break;
                default: throw new IllegalArgumentException("unknown mode " + mode);
            }
        } catch (Exception e) {
            System.out.println("ERROR " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.out.flush();
    }

    static void cac(String bs, String txnId, String topic, String tag) throws Exception {
        try (KafkaProducer<String, String> p = producer(bs, txnId)) {
            p.initTransactions();
            p.beginTransaction();
            send3(p, topic, tag + "-c1");
            p.commitTransaction();
            p.beginTransaction();
            send3(p, topic, tag + "-a");
            p.abortTransaction();
            p.beginTransaction();
            send3(p, topic, tag + "-c2");
            p.commitTransaction();
        }
        System.out.println("OK cac");
    }

    static void ctp(String bs, String txnId, Map<String, List<String>> o) throws Exception {
        String input = Lines.opt(o, "input", null);
        String output = Lines.opt(o, "output", null);
        int count = Integer.parseInt(Lines.opt(o, "count", "6"));
        boolean commit = Boolean.parseBoolean(Lines.opt(o, "commit", "true"));
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bs);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, Lines.opt(o, "group", null));
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, String.valueOf(count));
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c);
             KafkaProducer<String, String> p = producer(bs, txnId)) {
            p.initTransactions();
            consumer.subscribe(List.of(input));
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 60_000;
            while (got.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    if (got.size() < count) got.add(r);
                }
            }
            if (got.size() < count) throw new IllegalStateException("consumed " + got.size() + " of " + count);
            p.beginTransaction();
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            for (ConsumerRecord<String, String> r : got) {
                p.send(new ProducerRecord<>(output, r.partition(), null, r.value().toUpperCase())).get();
                offsets.merge(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1),
                    (a, b) -> a.offset() > b.offset() ? a : b);
            }
            p.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
            if (commit) p.commitTransaction(); else p.abortTransaction();
            StringBuilder sb = new StringBuilder("OK ctp");
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
                sb.append(' ').append(e.getKey().partition()).append(':').append(e.getValue().offset());
            }
            System.out.println(sb);
        }
    }

    static void fence(String bs, String txnId, String topic, String tag) throws Exception {
        KafkaProducer<String, String> a = producer(bs, txnId);
        a.initTransactions();
        a.beginTransaction();
        send3(a, topic, tag + "-zombie");
        try (KafkaProducer<String, String> b = producer(bs, txnId)) {
            b.initTransactions();
            b.beginTransaction();
            send3(b, topic, tag + "-winner");
            b.commitTransaction();
        }
        try {
            a.commitTransaction();
            System.out.println("ERROR the zombie committed");
        } catch (ProducerFencedException e) {
            System.out.println("FENCED " + e.getClass().getSimpleName());
        } finally {
            a.close(Duration.ZERO);
        }
        System.out.println("OK fence");
    }
}
