// kafka-console-consumer's equivalent with explicit assignment: assigns every partition of
// the topic (or --partition p), seeks to the beginning (--from-beginning) or the end
// (--offset latest), resolves positions, prints READY, then prints each record until
// --max-messages arrived or nothing came for --timeout-ms.
//
//   java ConsoleConsumer --bootstrap-server B --topic T (--from-beginning | --offset latest)
//        [--partition p] [--max-messages N] [--timeout-ms 10000] [--consumer-property k=v]...
// stdout: READY, then REC partition offset ts ts_type key value headers, then DONE count.

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ConsoleConsumer {
    public static void main(String[] args) {
        Map<String, List<String>> o = Lines.options(args, 0);
        String topic = Lines.opt(o, "topic", null);
        boolean fromBeginning = o.containsKey("from-beginning");
        String offset = Lines.opt(o, "offset", fromBeginning ? "earliest" : "latest");
        long max = Long.parseLong(Lines.opt(o, "max-messages", "-1"));
        long idleMs = Long.parseLong(Lines.opt(o, "timeout-ms", "10000"));
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Lines.opt(o, "bootstrap-server", null));
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "console-consumer");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        for (String kv : o.getOrDefault("consumer-property", List.of())) {
            String[] p = kv.split("=", 2);
            props.put(p[0], p[1]);
        }
        long count = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> tps = new ArrayList<>();
            if (o.containsKey("partition")) {
                tps.add(new TopicPartition(topic, Integer.parseInt(Lines.opt(o, "partition", "0"))));
            } else {
                for (PartitionInfo pi : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                    tps.add(new TopicPartition(topic, pi.partition()));
                }
            }
            consumer.assign(tps);
            if (offset.equals("earliest")) consumer.seekToBeginning(tps);
            else if (offset.equals("latest")) consumer.seekToEnd(tps);
            else for (TopicPartition tp : tps) consumer.seek(tp, Long.parseLong(offset));
            StringBuilder ready = new StringBuilder("READY");
            for (TopicPartition tp : tps) {
                ready.append('\t').append(tp.partition()).append(':').append(consumer.position(tp, Duration.ofSeconds(30)));
            }
            System.out.println(ready);
            System.out.flush();
            long lastData = System.currentTimeMillis();
            while ((max < 0 || count < max) && System.currentTimeMillis() - lastData < idleMs) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    lastData = System.currentTimeMillis();
                    int tsType = r.timestampType() == TimestampType.LOG_APPEND_TIME ? 1 : 0;
                    System.out.println("REC\t" + r.partition() + "\t" + r.offset() + "\t" + r.timestamp() + "\t" + tsType
                            + "\t" + Lines.b64(r.key()) + "\t" + Lines.b64(r.value()) + "\t" + Lines.headers(r.headers()));
                    count++;
                }
                System.out.flush();
            }
        }
        System.out.println("DONE\t" + count);
        System.out.flush();
    }
}
