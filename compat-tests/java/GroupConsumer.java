// kafka-console-consumer's equivalent in a consumer group (subscribe, no explicit
// assignment), on the consumer's DEFAULT group settings as the console tool runs it:
// partition.assignment.strategy [range, cooperative-sticky], auto commit every 5 s and on
// close, session/heartbeat/rebalance timeouts at their defaults. Like the console tool
// (Kafka's tools ConsoleConsumerOptions):
//  - client.id is console-consumer unless a --consumer-property sets it;
//  - without --group the group id is console-consumer-NNNNN (random) and, unless a
//    --consumer-property says otherwise, auto commit is off (a throwaway group);
//  - --from-beginning sets auto.offset.reset=earliest (else latest);
//  - it stops after --max-messages records, or when nothing came for --timeout-ms, or on
//    SIGTERM (a shutdown hook wakes the consumer up), and closes the consumer, which
//    commits (auto commit) and leaves the group.
// One difference, so that "stopped after N" means exactly N: records a poll returned
// beyond --max-messages are not printed, and their partitions are seeked back to the first
// unprinted offset before close, so the commit on close covers exactly what was printed
// (the console tool would commit past them).
//
//   java GroupConsumer --bootstrap-server B --topic T [--group G] [--from-beginning]
//        [--max-messages N] [--timeout-ms 10000] [--consumer.config FILE] [--consumer-property k=v]...
// (the --consumer.config file first, then --consumer-property and the other options, as
// in the console tool)
// stdout: GROUP id autocommit=.. strategies=..; on every rebalance callback
// REVOKED|ASSIGNED|LOST ms partitions, then OWNS ms partitions (the member's whole
// assignment afterwards); REC partition offset ts ts_type key value headers per record;
// CLOSED count once close() returned. ms is System.currentTimeMillis() (one clock for all
// the members of a test, so ownership intervals can be compared).

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeSet;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class GroupConsumer {
    private static volatile boolean stopping = false;

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static String parts(Collection<TopicPartition> tps) {
        TreeSet<Integer> ps = new TreeSet<>();
        for (TopicPartition tp : tps) ps.add(tp.partition());
        StringBuilder sb = new StringBuilder();
        for (int p : ps) {
            if (sb.length() > 0) sb.append(',');
            sb.append(p);
        }
        return sb.toString();
    }

    public static void main(String[] args) throws Exception {
        Map<String, List<String>> o = Lines.options(args, 0);
        String topic = Lines.opt(o, "topic", null);
        long max = Long.parseLong(Lines.opt(o, "max-messages", "-1"));
        long idleMs = Long.parseLong(Lines.opt(o, "timeout-ms", "10000"));
        Properties props = Lines.configFile(o, "consumer.config");
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Lines.opt(o, "bootstrap-server", null));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, o.containsKey("from-beginning") ? "earliest" : "latest");
        for (String kv : o.getOrDefault("consumer-property", List.of())) {
            String[] p = kv.split("=", 2);
            props.put(p[0], p[1]);
        }
        props.putIfAbsent(ConsumerConfig.CLIENT_ID_CONFIG, "console-consumer");
        String group = Lines.opt(o, "group", null);
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        } else {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, "console-consumer-" + new Random().nextInt(100000));
            props.putIfAbsent(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        }
        ConsumerConfig effective = new ConsumerConfig(props);
        say("GROUP\t" + effective.getString(ConsumerConfig.GROUP_ID_CONFIG)
                + "\tautocommit=" + effective.getBoolean(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG)
                + "\tstrategies=" + assignorNames(effective));

        long count = 0;
        Thread main = Thread.currentThread();
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping = true;
            consumer.wakeup();
            try {
                main.join(60_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        TreeSet<Integer> owned = new TreeSet<>();
        consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            private void event(String what, Collection<TopicPartition> tps, boolean add) {
                long now = System.currentTimeMillis();
                for (TopicPartition tp : tps) {
                    if (add) owned.add(tp.partition());
                    else owned.remove(tp.partition());
                }
                say(what + "\t" + now + "\t" + parts(tps));
                say("OWNS\t" + now + "\t" + parts(toTps(topic, owned)));
            }

            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> tps) {
                event("REVOKED", tps, false);
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                event("ASSIGNED", tps, true);
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> tps) {
                event("LOST", tps, false);
            }
        });
        try {
            long lastData = System.currentTimeMillis();
            while (!stopping && (max < 0 || count < max) && System.currentTimeMillis() - lastData < idleMs) {
                ConsumerRecords<byte[], byte[]> recs = consumer.poll(Duration.ofMillis(200));
                Map<TopicPartition, Long> unprinted = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    lastData = System.currentTimeMillis();
                    if (max >= 0 && count >= max) {
                        unprinted.putIfAbsent(new TopicPartition(r.topic(), r.partition()), r.offset());
                        continue;
                    }
                    int tsType = r.timestampType() == TimestampType.LOG_APPEND_TIME ? 1 : 0;
                    say("REC\t" + r.partition() + "\t" + r.offset() + "\t" + r.timestamp() + "\t" + tsType
                            + "\t" + Lines.b64(r.key()) + "\t" + Lines.b64(r.value()) + "\t" + Lines.headers(r.headers()));
                    count++;
                }
                for (Map.Entry<TopicPartition, Long> e : unprinted.entrySet()) consumer.seek(e.getKey(), e.getValue());
            }
        } catch (WakeupException e) {
            // SIGTERM: fall through to close.
        } finally {
            consumer.close(Duration.ofSeconds(30));
        }
        say("CLOSED\t" + count);
    }

    /** The protocol names the member offers in JoinGroup, in preference order. */
    private static List<String> assignorNames(ConsumerConfig config) {
        List<String> names = new ArrayList<>();
        for (ConsumerPartitionAssignor a : config.getConfiguredInstances(
                ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, ConsumerPartitionAssignor.class)) {
            names.add(a.name());
        }
        return names;
    }

    private static List<TopicPartition> toTps(String topic, Collection<Integer> ps) {
        List<TopicPartition> out = new ArrayList<>();
        for (int p : ps) out.add(new TopicPartition(topic, p));
        return out;
    }
}
