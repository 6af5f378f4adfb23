// A producer that keeps writing while the cluster fails under it: the Java client on its
// DEFAULT configuration (acks=all, idempotence on, retries until delivery.timeout.ms), as
// an application would run it. Sends value "<prefix>-<n>" (n = 0, 1, ...) every
// --interval-ms until a line "stop" arrives on stdin, then flushes and exits.
//
//   java SteadyProducer --bootstrap-server B --topic T --prefix P [--interval-ms 5]
//        [--producer-property k=v]...
// stdout: ACK value partition offset | ERR value exception (a failed delivery: the
// application would see it) ; exit code 1 if any delivery failed.

import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

public class SteadyProducer {
    public static void main(String[] args) throws Exception {
        Map<String, List<String>> o = Lines.options(args, 0);
        String topic = Lines.opt(o, "topic", null);
        String prefix = Lines.opt(o, "prefix", "v");
        long intervalMs = Long.parseLong(Lines.opt(o, "interval-ms", "5"));
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Lines.opt(o, "bootstrap-server", null));
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "steady-producer");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        for (String kv : o.getOrDefault("producer-property", List.of())) {
            String[] p = kv.split("=", 2);
            props.put(p[0], p[1]);
        }

        AtomicBoolean stop = Lines.stopOnStdin();

        AtomicInteger failed = new AtomicInteger();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (long n = 0; !stop.get(); n++) {
                final String value = prefix + "-" + n;
                producer.send(new ProducerRecord<>(topic, value), (md, err) -> {
                    synchronized (System.out) {
                        if (err != null) {
                            failed.incrementAndGet();
                            System.out.println("ERR\t" + value + "\t" + err);
                        } else {
                            System.out.println("ACK\t" + value + "\t" + md.partition() + "\t" + md.offset());
                        }
                        System.out.flush();
                    }
                });
                Thread.sleep(intervalMs);
            }
            producer.flush();
        }
        System.out.println("DONE");
        System.out.flush();
        System.exit(failed.get() == 0 ? 0 : 1);
    }
}
