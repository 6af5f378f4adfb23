// A group consumer that keeps reading while the cluster fails under it: subscribe with a
// group id, auto commit, from the earliest offset, the Java client's default assignors.
// Prints every record until a line "stop" arrives on stdin, then closes (committing).
//
//   java SteadyGroupConsumer --bootstrap-server B --topic T --group G
// stdout: REC partition offset value ; ASSIGNED p,p,.. on every assignment change.

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class SteadyGroupConsumer {
    public static void main(String[] args) throws Exception {
        Map<String, List<String>> o = Lines.options(args, 0);
        String topic = Lines.opt(o, "topic", null);
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Lines.opt(o, "bootstrap-server", null));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, Lines.opt(o, "group", null));
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "steady-consumer");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());

        AtomicBoolean stop = Lines.stopOnStdin();

        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            TreeSet<Integer> owned = new TreeSet<>();
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                    ps.forEach(p -> owned.remove(p.partition()));
                    report(owned);
                }
                @Override public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                    ps.forEach(p -> owned.add(p.partition()));
                    report(owned);
                }
                @Override public void onPartitionsLost(Collection<TopicPartition> ps) {
                    onPartitionsRevoked(ps);
                }
            });
            while (!stop.get()) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    System.out.println("REC\t" + r.partition() + "\t" + r.offset() + "\t" + r.value());
                }
                System.out.flush();
            }
        }
        System.out.println("DONE");
        System.out.flush();
    }

    private static void report(TreeSet<Integer> owned) {
        StringBuilder sb = new StringBuilder("ASSIGNED\t");
        for (int p : owned) sb.append(p).append(',');
        System.out.println(sb);
        System.out.flush();
    }
}
