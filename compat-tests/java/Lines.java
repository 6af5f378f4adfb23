// The compat suite's driver line protocol (see compat-tests/checks.py): records as
// tab-separated fields with base64 bytes, "-" for null.

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;

final class Lines {
    private Lines() {}

    /** A flag set once stdin says "stop" (or closes): how the test drivers end a run. */
    static java.util.concurrent.atomic.AtomicBoolean stopOnStdin() {
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        Thread watcher = new Thread(() -> {
            try (java.io.BufferedReader in = new java.io.BufferedReader(
                    new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null && !line.trim().equals("stop")) { }
            } catch (java.io.IOException ignored) { }
            stop.set(true);
        });
        watcher.setDaemon(true);
        watcher.start();
        return stop;
    }

    static byte[] unb64(String s) {
        return s.equals("-") ? null : Base64.getDecoder().decode(s);
    }

    static String b64(byte[] b) {
        return b == null ? "-" : Base64.getEncoder().encodeToString(b);
    }

    static List<Header> headers(String field) {
        List<Header> out = new ArrayList<>();
        if (field == null || field.isEmpty()) return out;
        for (String pair : field.split(",")) {
            String[] kv = pair.split(":", 2);
            out.add(new RecordHeader(new String(unb64(kv[0]), StandardCharsets.UTF_8), unb64(kv[1])));
        }
        return out;
    }

    static String headers(Iterable<Header> hs) {
        StringBuilder sb = new StringBuilder();
        for (Header h : hs) {
            if (sb.length() > 0) sb.append(',');
            sb.append(b64(h.key().getBytes(StandardCharsets.UTF_8))).append(':').append(b64(h.value()));
        }
        return sb.toString();
    }

    /** Minimal JSON string escaping for the admin tool's output. */
    static String q(String s) {
        if (s == null) return "null";
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
            }
        }
        return sb.append('"').toString();
    }

    /** "--name value" style options; repeated options are collected. */
    static java.util.Map<String, List<String>> options(String[] args, int from) {
        java.util.Map<String, List<String>> out = new java.util.HashMap<>();
        for (int i = from; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a);
            String v = (i + 1 < args.length && !args[i + 1].startsWith("--")) ? args[++i] : "true";
            out.computeIfAbsent(a.substring(2), k -> new ArrayList<>()).add(v);
        }
        return out;
    }

    /** The properties file of a console tool's --producer.config / --consumer.config, if given. */
    static java.util.Properties configFile(java.util.Map<String, List<String>> o, String name) throws java.io.IOException {
        java.util.Properties props = new java.util.Properties();
        String path = opt(o, name, null);
        if (path != null) {
            try (java.io.Reader r = java.nio.file.Files.newBufferedReader(java.nio.file.Path.of(path))) {
                props.load(r);
            }
        }
        return props;
    }

    static String opt(java.util.Map<String, List<String>> o, String name, String dflt) {
        List<String> v = o.get(name);
        return v == null ? dflt : v.get(v.size() - 1);
    }
}
