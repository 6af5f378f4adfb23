// The operations tools' Admin calls (kafka-reassign-partitions, kafka-leader-election,
// kafka-log-dirs, kafka-transactions describe-producers, kafka-consumer-groups
// --reset-offsets / --delete-offsets) through the Java Admin client 3.9. One Admin client
// serves commands read from stdin, one a line (tab-separated words), one JSON line each
// ({"error": "ExceptionClass: message"} on failure).
//
//   reassign T P B1,B2,..      alterPartitionReassignments (target replicas)
//   create-topic-assigned T B1,B2,..   one partition on these replicas
//   cancel-reassign T P        alterPartitionReassignments (Optional.empty())
//   list-reassignments         listPartitionReassignments
//   elect (preferred|unclean) (all|T P)
//   log-dirs B1,B2,..          describeLogDirs
//   describe-producers T P     describeProducers
//   describe-topic T           partitions: leader, replicas, isr
//   reset-offsets G T P OFFSET alterConsumerGroupOffsets
//   delete-offsets G T P       deleteConsumerGroupOffsets
//   group-offsets G            listConsumerGroupOffsets

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;

public class OpsTool {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "ops-tool");
        try (Admin admin = Admin.create(props)) {
            java.io.BufferedReader in = new java.io.BufferedReader(
                    new java.io.InputStreamReader(System.in, java.nio.charset.StandardCharsets.UTF_8));
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isEmpty()) continue;
                String out;
                try {
                    out = run(admin, line.split("\t"));
                } catch (ExecutionException e) {
                    Throwable c = e.getCause();
                    out = "{\"error\": " + q(c.getClass().getSimpleName() + ": " + c.getMessage()) + "}";
                } catch (Exception e) {
                    out = "{\"error\": " + q(e.getClass().getSimpleName() + ": " + e.getMessage()) + "}";
                }
                System.out.println(out);
                System.out.flush();
            }
        }
    }

    static String q(String s) {
        if (s == null) return "null";
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
    }

    static List<Integer> ids(String csv) {
        return Arrays.stream(csv.split(",")).map(Integer::parseInt).collect(Collectors.toList());
    }

    static String run(Admin admin, String[] a) throws Exception {
        switch (a[0]) {
            case "reassign": {
                TopicPartition tp = new TopicPartition(a[1], Integer.parseInt(a[2]));
                admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(ids(a[3]))))).all().get();
                return "{\"ok\": true}";
            }
            case "create-topic-assigned": {
                Map<Integer, List<Integer>> assignment = Map.of(0, ids(a[2]));
                admin.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(a[1], assignment))).all().get();
                return "{\"ok\": true}";
            }
            case "cancel-reassign": {
                TopicPartition tp = new TopicPartition(a[1], Integer.parseInt(a[2]));
                Map<TopicPartition, Optional<NewPartitionReassignment>> m = new HashMap<>();
                m.put(tp, Optional.empty());
                admin.alterPartitionReassignments(m).all().get();
                return "{\"ok\": true}";
            }
            case "list-reassignments": {
                Map<TopicPartition, PartitionReassignment> r = admin.listPartitionReassignments().reassignments().get();
                List<String> parts = new ArrayList<>();
                for (Map.Entry<TopicPartition, PartitionReassignment> e : r.entrySet()) {
                    parts.add("{\"topic\": " + q(e.getKey().topic()) + ", \"partition\": " + e.getKey().partition()
                            + ", \"replicas\": " + e.getValue().replicas() + ", \"adding\": " + e.getValue().addingReplicas()
                            + ", \"removing\": " + e.getValue().removingReplicas() + "}");
                }
                return "{\"reassignments\": [" + String.join(", ", parts) + "]}";
            }
            case "elect": {
                ElectionType type = a[1].equals("preferred") ? ElectionType.PREFERRED : ElectionType.UNCLEAN;
                Set<TopicPartition> tps = a[2].equals("all") ? null
                        : Collections.singleton(new TopicPartition(a[2], Integer.parseInt(a[3])));
                Map<TopicPartition, Optional<Throwable>> r = admin.electLeaders(type, tps).partitions().get();
                List<String> parts = new ArrayList<>();
                for (Map.Entry<TopicPartition, Optional<Throwable>> e : r.entrySet()) {
                    String err = e.getValue().map(t -> t.getClass().getSimpleName()).orElse(null);
                    parts.add(q(e.getKey().toString()) + ": " + q(err));
                }
                return "{\"partitions\": {" + String.join(", ", parts) + "}}";
            }
            case "log-dirs": {
                Map<Integer, Map<String, LogDirDescription>> r = admin.describeLogDirs(ids(a[1])).allDescriptions().get();
                List<String> brokers = new ArrayList<>();
                for (Map.Entry<Integer, Map<String, LogDirDescription>> b : r.entrySet()) {
                    List<String> dirs = new ArrayList<>();
                    for (Map.Entry<String, LogDirDescription> d : b.getValue().entrySet()) {
                        List<String> reps = new ArrayList<>();
                        for (Map.Entry<TopicPartition, ReplicaInfo> ri : d.getValue().replicaInfos().entrySet()) {
                            reps.add(q(ri.getKey().toString()) + ": {\"size\": " + ri.getValue().size() + ", \"offsetLag\": " + ri.getValue().offsetLag() + "}");
                        }
                        String err = d.getValue().error() == null ? null : d.getValue().error().getClass().getSimpleName();
                        dirs.add(q(d.getKey()) + ": {\"error\": " + q(err) + ", \"total\": " + d.getValue().totalBytes().orElse(-1L)
                                + ", \"usable\": " + d.getValue().usableBytes().orElse(-1L) + ", \"replicas\": {" + String.join(", ", reps) + "}}");
                    }
                    brokers.add(q(String.valueOf(b.getKey())) + ": {" + String.join(", ", dirs) + "}");
                }
                return "{\"brokers\": {" + String.join(", ", brokers) + "}}";
            }
            case "describe-producers": {
                TopicPartition tp = new TopicPartition(a[1], Integer.parseInt(a[2]));
                List<ProducerState> ps = admin.describeProducers(List.of(tp)).partitionResult(tp).get().activeProducers();
                List<String> parts = new ArrayList<>();
                for (ProducerState p : ps) {
                    parts.add("{\"producerId\": " + p.producerId() + ", \"epoch\": " + p.producerEpoch() + ", \"lastSequence\": "
                            + p.lastSequence() + ", \"lastTimestamp\": " + p.lastTimestamp() + ", \"txnStart\": "
                            + p.currentTransactionStartOffset().orElse(-1L) + "}");
                }
                return "{\"producers\": [" + String.join(", ", parts) + "]}";
            }
            case "describe-topic": {
                TopicDescription d = admin.describeTopics(List.of(a[1])).allTopicNames().get().get(a[1]);
                List<String> parts = new ArrayList<>();
                for (TopicPartitionInfo p : d.partitions()) {
                    parts.add("{\"partition\": " + p.partition() + ", \"leader\": " + (p.leader() == null ? -1 : p.leader().id())
                            + ", \"replicas\": " + p.replicas().stream().map(n -> n.id()).collect(Collectors.toList())
                            + ", \"isr\": " + p.isr().stream().map(n -> n.id()).collect(Collectors.toList()) + "}");
                }
                return "{\"partitions\": [" + String.join(", ", parts) + "]}";
            }
            case "reset-offsets": {
                TopicPartition tp = new TopicPartition(a[2], Integer.parseInt(a[3]));
                admin.alterConsumerGroupOffsets(a[1], Map.of(tp, new OffsetAndMetadata(Long.parseLong(a[4])))).all().get();
                return "{\"ok\": true}";
            }
            case "delete-offsets": {
                TopicPartition tp = new TopicPartition(a[2], Integer.parseInt(a[3]));
                admin.deleteConsumerGroupOffsets(a[1], Set.of(tp)).all().get();
                return "{\"ok\": true}";
            }
            case "group-offsets": {
                Map<TopicPartition, OffsetAndMetadata> r = admin.listConsumerGroupOffsets(a[1]).partitionsToOffsetAndMetadata().get();
                List<String> parts = new ArrayList<>();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : r.entrySet()) {
                    parts.add(q(e.getKey().toString()) + ": " + (e.getValue() == null ? -1 : e.getValue().offset()));
                }
                return "{\"offsets\": {" + String.join(", ", parts) + "}}";
            }
            case "alter-broker-config": {
                // a[1]: broker id, or "default" for every broker; a[2] SET|DELETE; a[3] key; a[4] value
                org.apache.kafka.common.config.ConfigResource r = new org.apache.kafka.common.config.ConfigResource(
                        org.apache.kafka.common.config.ConfigResource.Type.BROKER, a[1].equals("default") ? "" : a[1]);
                org.apache.kafka.clients.admin.AlterConfigOp.OpType op = org.apache.kafka.clients.admin.AlterConfigOp.OpType.valueOf(a[2]);
                org.apache.kafka.clients.admin.AlterConfigOp change = new org.apache.kafka.clients.admin.AlterConfigOp(
                        new org.apache.kafka.clients.admin.ConfigEntry(a[3], a.length > 4 ? a[4] : null), op);
                admin.incrementalAlterConfigs(Map.of(r, List.of(change))).all().get();
                return "{\"ok\": true}";
            }
            case "describe-broker-config": {
                // a[1]: broker id; a[2]: key
                org.apache.kafka.common.config.ConfigResource r = new org.apache.kafka.common.config.ConfigResource(
                        org.apache.kafka.common.config.ConfigResource.Type.BROKER, a[1]);
                org.apache.kafka.clients.admin.ConfigEntry e = admin.describeConfigs(List.of(r),
                        new org.apache.kafka.clients.admin.DescribeConfigsOptions().includeSynonyms(true)).all().get().get(r).get(a[2]);
                if (e == null) return "{\"missing\": true}";
                StringBuilder synonyms = new StringBuilder();
                for (org.apache.kafka.clients.admin.ConfigEntry.ConfigSynonym y : e.synonyms()) {
                    if (synonyms.length() > 0) synonyms.append(", ");
                    synonyms.append(q(y.source().name() + ":" + y.name() + "=" + y.value()));
                }
                return "{\"value\": " + q(e.value()) + ", \"source\": " + q(e.source().name()) + ", \"read_only\": " + e.isReadOnly()
                        + ", \"synonyms\": [" + synonyms + "]}";
            }
            default:
                return "{\"error\": " + q("unknown command " + a[0]) + "}";
        }
    }
}
