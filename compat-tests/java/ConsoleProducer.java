// kafka-console-producer's equivalent: reads records from stdin (driver line protocol) and
// sends them with a KafkaProducer on its DEFAULT configuration (acks=all, idempotence on),
// as kafka-console-producer does; only bootstrap.servers, the serializers and the options
// given (--compression-codec, --producer-property k=v) are set.
//
//   java ConsoleProducer --bootstrap-server B --topic T [--compression-codec gzip]
//        [--producer.config FILE] [--producer-property k=v]...
// As in the console tool, the --producer.config file is read first, --producer-property
// overrides it and --bootstrap-server overrides both.
// stdout: CONFIG acks=.. enable.idempotence=.. then ACK idx partition offset per record
// (ERR idx message on failure; exit code 1 if any failed).

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class ConsoleProducer {
    public static void main(String[] args) throws Exception {
        Map<String, List<String>> o = Lines.options(args, 0);
        String topic = Lines.opt(o, "topic", null);
        Properties props = Lines.configFile(o, "producer.config");
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "console-producer");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        String codec = Lines.opt(o, "compression-codec", null);
        if (codec != null) props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        for (String kv : o.getOrDefault("producer-property", List.of())) {
            String[] p = kv.split("=", 2);
            props.put(p[0], p[1]);
        }
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Lines.opt(o, "bootstrap-server", null));
        ProducerConfig effective = new ProducerConfig(props);
        System.out.println("CONFIG\tacks=" + effective.getString(ProducerConfig.ACKS_CONFIG)
                + "\tenable.idempotence=" + effective.getBoolean(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG)
                + "\tcompression.type=" + effective.getString(ProducerConfig.COMPRESSION_TYPE_CONFIG));
        System.out.flush();

        AtomicInteger failed = new AtomicInteger();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
             BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 20)) {
            String line;
            int idx = 0;
            while ((line = in.readLine()) != null) {
                if (line.isEmpty()) continue;
                String[] f = line.split("\t", -1);
                Long ts = f[0].equals("-") ? null : Long.parseLong(f[0]);
                Integer partition = f.length > 4 && !f[4].isEmpty() ? Integer.parseInt(f[4]) : null;
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(
                        topic, partition, ts, Lines.unb64(f[1]), Lines.unb64(f[2]), Lines.headers(f[3]));
                final int i = idx++;
                producer.send(rec, (md, err) -> {
                    synchronized (System.out) {
                        if (err != null) {
                            failed.incrementAndGet();
                            System.out.println("ERR\t" + i + "\t" + err);
                        } else {
                            System.out.println("ACK\t" + i + "\t" + md.partition() + "\t" + md.offset() + "\t" + md.timestamp());
                        }
                    }
                });
            }
            producer.flush();
        }
        System.out.flush();
        System.exit(failed.get() == 0 ? 0 : 1);
    }
}
