import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

/**
 * The Admin calls `kafka-acls --bootstrap-server` makes (AclCommand): createAcls,
 * describeAcls, deleteAcls. One command per invocation, one JSON line out:
 *
 *   AclTool BOOTSTRAP add PRINCIPAL OPERATION PERMISSION RESOURCE_TYPE NAME PATTERN
 *   AclTool BOOTSTRAP list [RESOURCE_TYPE NAME PATTERN]
 *   AclTool BOOTSTRAP remove PRINCIPAL OPERATION PERMISSION RESOURCE_TYPE NAME PATTERN
 */
public class AclTool {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "acl-tool");
        try (Admin admin = Admin.create(props)) {
            String out;
            try {
                out = run(admin, args);
            } catch (ExecutionException e) {
                Throwable c = e.getCause() == null ? e : e.getCause();
                out = "{\"error\": " + Lines.q(c.getClass().getSimpleName()) + "}";
            }
            System.out.println(out);
        }
    }

    static AclBinding binding(String[] a, int i) {
        return new AclBinding(
                new ResourcePattern(ResourceType.fromString(a[i + 3]), a[i + 4], PatternType.fromString(a[i + 5])),
                new AccessControlEntry(a[i], "*", AclOperation.fromString(a[i + 1]), AclPermissionType.fromString(a[i + 2])));
    }

    static String json(Collection<AclBinding> bindings) {
        List<String> rows = new ArrayList<>();
        for (AclBinding b : bindings) {
            rows.add("[" + Lines.q(b.pattern().resourceType().toString()) + "," + Lines.q(b.pattern().name()) + ","
                    + Lines.q(b.pattern().patternType().toString()) + "," + Lines.q(b.entry().principal()) + ","
                    + Lines.q(b.entry().host()) + "," + Lines.q(b.entry().operation().toString()) + ","
                    + Lines.q(b.entry().permissionType().toString()) + "]");
        }
        rows.sort(null);
        return "[" + String.join(",", rows) + "]";
    }

    static String run(Admin admin, String[] a) throws Exception {
        switch (a[1]) {
            case "add":
                admin.createAcls(List.of(binding(a, 2))).all().get();
                return "{\"ok\": true}";
            case "remove": {
                AclBindingFilter f = binding(a, 2).toFilter();
                Collection<AclBinding> gone = admin.deleteAcls(List.of(f)).all().get();
                return "{\"deleted\": " + json(gone) + "}";
            }
            case "list": {
                AclBindingFilter f = a.length > 2
                        ? new AclBindingFilter(
                                new ResourcePatternFilter(ResourceType.fromString(a[2]), a[3], PatternType.fromString(a[4])),
                                AccessControlEntryFilter.ANY)
                        : AclBindingFilter.ANY;
                return "{\"acls\": " + json(admin.describeAcls(f).values().get()) + "}";
            }
            default:
                throw new IllegalArgumentException(a[1]);
        }
    }
}
