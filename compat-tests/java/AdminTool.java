// kafka-topics / kafka-configs / kafka-delete-records style flows through the Java Admin
// client. With a command on the command line: runs it, prints one JSON object (or
// {"error": "..."} and exits 2). With only the bootstrap address: one Admin client serves
// commands read from stdin, one a line (tab-separated words), answering one JSON line each.
//
//   java AdminTool B create-topic T partitions rf [k=v ...]
//   java AdminTool B delete-topic T
//   java AdminTool B list-topics
//   java AdminTool B describe-topic T
//   java AdminTool B describe-topic-id TOPIC_ID          (Metadata by topic id)
//   java AdminTool B describe-configs (topic|broker) NAME
//   java AdminTool B alter-config T k=v            (incrementalAlterConfigs SET)
//   java AdminTool B create-partitions T total
//   java AdminTool B delete-records T partition beforeOffset
//   java AdminTool B list-offsets T (earliest|latest|max-timestamp|earliest-local|latest-tiered|ts:MS)
//   java AdminTool B describe-cluster

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;

public class AdminTool {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "admin-tool");
        try (Admin admin = Admin.create(props)) {
            if (args.length > 1) {
                String out = runOrError(admin, args);
                System.out.println(out);
                System.exit(out.startsWith("{\"error\"") ? 2 : 0);
            }
            java.io.BufferedReader in = new java.io.BufferedReader(
                    new java.io.InputStreamReader(System.in, java.nio.charset.StandardCharsets.UTF_8));
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isEmpty()) continue;
                String[] words = line.split("\t");
                String[] full = new String[words.length + 1];
                full[0] = args[0];
                System.arraycopy(words, 0, full, 1, words.length);
                System.out.println(runOrError(admin, full));
                System.out.flush();
            }
        }
    }

    static String runOrError(Admin admin, String[] args) throws Exception {
        try {
            return run(admin, args[1], args);
        } catch (ExecutionException e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            return "{\"error\": " + Lines.q(c.getClass().getSimpleName() + ": " + c.getMessage()) + "}";
        }
    }

    static String nodes(Collection<Node> ns) {
        return "[" + ns.stream().map(n -> String.valueOf(n.id())).collect(Collectors.joining(",")) + "]";
    }

    static String run(Admin admin, String cmd, String[] a) throws Exception {
        switch (cmd) {
            case "create-topic": {
                Map<String, String> configs = new HashMap<>();
                for (int i = 5; i < a.length; i++) {
                    String[] kv = a[i].split("=", 2);
                    configs.put(kv[0], kv[1]);
                }
                NewTopic t = new NewTopic(a[2], Integer.parseInt(a[3]), Short.parseShort(a[4])).configs(configs);
                var r = admin.createTopics(List.of(t));
                r.all().get();
                return "{\"topicId\": " + Lines.q(r.topicId(a[2]).get().toString()) + ", \"partitions\": "
                        + r.numPartitions(a[2]).get() + ", \"replicationFactor\": " + r.replicationFactor(a[2]).get() + "}";
            }
            case "delete-topic":
                admin.deleteTopics(List.of(a[2])).all().get();
                return "{\"deleted\": " + Lines.q(a[2]) + "}";
            case "list-topics":
                return "{\"topics\": [" + admin.listTopics().names().get().stream().sorted().map(Lines::q)
                        .collect(Collectors.joining(", ")) + "]}";
            case "describe-topic": {
                TopicDescription d = admin.describeTopics(List.of(a[2])).allTopicNames().get().get(a[2]);
                List<String> parts = new ArrayList<>();
                for (TopicPartitionInfo p : d.partitions()) {
                    parts.add("{\"partition\": " + p.partition() + ", \"leader\": " + (p.leader() == null ? -1 : p.leader().id())
                            + ", \"replicas\": " + nodes(p.replicas()) + ", \"isr\": " + nodes(p.isr()) + "}");
                }
                return "{\"name\": " + Lines.q(d.name()) + ", \"topicId\": " + Lines.q(d.topicId().toString())
                        + ", \"internal\": " + d.isInternal() + ", \"partitions\": [" + String.join(", ", parts) + "]}";
            }
            case "describe-topic-id": {
                org.apache.kafka.common.Uuid id = org.apache.kafka.common.Uuid.fromString(a[2]);
                TopicDescription d = admin.describeTopics(org.apache.kafka.common.TopicCollection.ofTopicIds(List.of(id)))
                        .allTopicIds().get().get(id);
                return "{\"name\": " + Lines.q(d.name()) + ", \"topicId\": " + Lines.q(d.topicId().toString())
                        + ", \"partitions\": " + d.partitions().size() + "}";
            }
            case "describe-configs": {
                ConfigResource.Type type = a[2].equals("broker") ? ConfigResource.Type.BROKER : ConfigResource.Type.TOPIC;
                ConfigResource res = new ConfigResource(type, a[3]);
                Config c = admin.describeConfigs(List.of(res),
                        new DescribeConfigsOptions().includeSynonyms(true).includeDocumentation(true)).all().get().get(res);
                List<String> entries = new ArrayList<>();
                for (ConfigEntry e : c.entries()) {
                    String syn = e.synonyms().stream().map(s -> "{\"name\": " + Lines.q(s.name()) + ", \"value\": "
                            + Lines.q(s.value()) + ", \"source\": " + Lines.q(s.source().name()) + "}").collect(Collectors.joining(", "));
                    entries.add("{\"name\": " + Lines.q(e.name()) + ", \"value\": " + Lines.q(e.value())
                            + ", \"source\": " + Lines.q(e.source().name()) + ", \"isDefault\": " + e.isDefault()
                            + ", \"readOnly\": " + e.isReadOnly() + ", \"sensitive\": " + e.isSensitive()
                            + ", \"type\": " + Lines.q(e.type().name()) + ", \"documentation\": " + Lines.q(e.documentation())
                            + ", \"synonyms\": [" + syn + "]}");
                }
                return "{\"configs\": [" + String.join(", ", entries) + "]}";
            }
            case "alter-config": {
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, a[2]);
                List<AlterConfigOp> ops = new ArrayList<>();
                for (int i = 3; i < a.length; i++) {
                    String[] kv = a[i].split("=", 2);
                    ops.add(kv.length == 2 ? new AlterConfigOp(new ConfigEntry(kv[0], kv[1]), AlterConfigOp.OpType.SET)
                            : new AlterConfigOp(new ConfigEntry(kv[0], ""), AlterConfigOp.OpType.DELETE));
                }
                admin.incrementalAlterConfigs(Map.of(res, ops)).all().get();
                return "{\"altered\": " + Lines.q(a[2]) + "}";
            }
            case "create-partitions":
                admin.createPartitions(Map.of(a[2], NewPartitions.increaseTo(Integer.parseInt(a[3])))).all().get();
                return "{\"partitions\": " + a[3] + "}";
            case "delete-records": {
                TopicPartition tp = new TopicPartition(a[2], Integer.parseInt(a[3]));
                long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(Long.parseLong(a[4]))))
                        .lowWatermarks().get(tp).get().lowWatermark();
                return "{\"lowWatermark\": " + low + "}";
            }
            case "list-offsets": {
                String spec = a[3];
                OffsetSpec os;
                if (spec.equals("earliest")) os = OffsetSpec.earliest();
                else if (spec.equals("latest")) os = OffsetSpec.latest();
                else if (spec.equals("max-timestamp")) os = OffsetSpec.maxTimestamp();
                else if (spec.equals("earliest-local")) os = OffsetSpec.earliestLocal();
                else if (spec.equals("latest-tiered")) os = OffsetSpec.latestTiered();
                else os = OffsetSpec.forTimestamp(Long.parseLong(spec.substring(3)));
                TopicDescription d = admin.describeTopics(List.of(a[2])).allTopicNames().get().get(a[2]);
                Map<TopicPartition, OffsetSpec> req = new HashMap<>();
                for (TopicPartitionInfo p : d.partitions()) req.put(new TopicPartition(a[2], p.partition()), os);
                Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> r = admin.listOffsets(req).all().get();
                List<String> parts = new ArrayList<>();
                for (TopicPartitionInfo p : d.partitions()) {
                    var info = r.get(new TopicPartition(a[2], p.partition()));
                    parts.add("{\"partition\": " + p.partition() + ", \"offset\": " + info.offset() + ", \"timestamp\": "
                            + info.timestamp() + ", \"leaderEpoch\": " + info.leaderEpoch().orElse(-1) + "}");
                }
                return "{\"offsets\": [" + String.join(", ", parts) + "]}";
            }
            case "describe-cluster": {
                DescribeClusterResult r = admin.describeCluster();
                List<String> ns = new ArrayList<>();
                for (Node n : r.nodes().get()) {
                    ns.add("{\"id\": " + n.id() + ", \"host\": " + Lines.q(n.host()) + ", \"port\": " + n.port() + "}");
                }
                Node ctl = r.controller().get();
                return "{\"clusterId\": " + Lines.q(r.clusterId().get()) + ", \"controller\": " + (ctl == null ? -1 : ctl.id())
                        + ", \"nodes\": [" + String.join(", ", ns) + "]}";
            }
            default:
                throw new IllegalArgumentException("unknown command " + cmd);
        }
    }
}
