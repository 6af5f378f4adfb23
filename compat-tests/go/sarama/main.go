// sarama (Debian golang-github-shopify-sarama-dev 1.22.1) driver for gregor's compat
// tests. Speaks the suite's line protocol (compat-tests/checks.py). sarama does not
// negotiate versions: config.Version is set explicitly (2.1.0, the newest that still
// behaves like the 2.x clients in the field; see -version).
//
//	sarama-driver produce  -brokers B -topic T [-codec C] [-partition P] [-idempotent]
//	sarama-driver consume  -brokers B -topic T -offset oldest|newest [-count N] [-idle-ms M]
//	sarama-driver offsets  -brokers B -topic T -time -1|-2|<ms>
//	sarama-driver metadata -brokers B [-topic T]
//	sarama-driver admin    -brokers B <create-topic T n rf [k=v..] | delete-topic T |
//	                       describe-topic T | create-partitions T n | delete-records T p off |
//	                       alter-config T k=v.. | describe-config T | list-topics>
//
// Every command also takes -tls-ca, -sasl-mechanism, -sasl-user, -sasl-password
// (security.go).
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

func b64(b []byte) string {
	if b == nil {
		return "-"
	}
	return base64.StdEncoding.EncodeToString(b)
}

func unb64(s string) []byte {
	if s == "-" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		fail("bad base64 %q: %v", s, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

var out = bufio.NewWriterSize(os.Stdout, 1<<20)
var outMu sync.Mutex

func emit(line string) {
	outMu.Lock()
	defer outMu.Unlock()
	out.WriteString(line + "\n")
	out.Flush()
}

func config(version string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "sarama-compat-" + version
	v, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		fail("version: %v", err)
	}
	c.Version = v
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.MaxMessageBytes = 2000000
	c.Consumer.Return.Errors = true
	c.Consumer.Fetch.Default = 2 << 20
	c.Admin.Timeout = 30 * time.Second
	return c
}

var codecs = map[string]sarama.CompressionCodec{
	"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: sarama-driver produce|consume|offsets|metadata|admin ...")
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap brokers")
	topic := fs.String("topic", "", "topic")
	codec := fs.String("codec", "none", "compression codec")
	partition := fs.Int("partition", -1, "explicit partition")
	idempotent := fs.Bool("idempotent", false, "idempotent producer")
	offset := fs.String("offset", "oldest", "oldest|newest")
	count := fs.Int("count", -1, "records to consume")
	idleMs := fs.Int("idle-ms", 10000, "consumer idle timeout")
	when := fs.Int64("time", -1, "ListOffsets time")
	version := fs.String("version", "2.1.0", "sarama config.Version")
	security := addSecurityFlags(fs)
	fs.Parse(os.Args[2:])
	conf := config(*version)
	security.apply(conf)
	addrs := strings.Split(*brokers, ",")
	switch cmd {
	case "produce":
		produce(conf, addrs, *topic, *codec, *partition, *idempotent)
	case "consume":
		consume(conf, addrs, *topic, *offset, *count, *idleMs)
	case "offsets":
		offsets(conf, addrs, *topic, *when)
	case "metadata":
		metadata(conf, addrs, *topic)
	case "admin":
		admin(conf, addrs, fs.Args())
	default:
		fail("unknown command %s", cmd)
	}
	out.Flush()
}

func produce(conf *sarama.Config, addrs []string, topic, codec string, partition int, idempotent bool) {
	c, ok := codecs[codec]
	if !ok {
		fail("unknown codec %s", codec)
	}
	conf.Producer.Compression = c
	if partition >= 0 {
		conf.Producer.Partitioner = sarama.NewManualPartitioner
	}
	if idempotent {
		conf.Producer.Idempotent = true
		conf.Net.MaxOpenRequests = 1
	}
	p, err := sarama.NewSyncProducer(addrs, conf)
	if err != nil {
		fail("producer: %v", err)
	}
	var msgs []*sarama.ProducerMessage
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 4<<20), 4<<20)
	for in.Scan() {
		f := strings.Split(in.Text(), "\t")
		if len(f) < 4 {
			continue
		}
		m := &sarama.ProducerMessage{Topic: topic, Partition: int32(partition)}
		if f[0] != "-" {
			ms, _ := strconv.ParseInt(f[0], 10, 64)
			m.Timestamp = time.Unix(0, ms*int64(time.Millisecond))
		}
		if k := unb64(f[1]); k != nil {
			m.Key = sarama.ByteEncoder(k)
		}
		if v := unb64(f[2]); v != nil {
			m.Value = sarama.ByteEncoder(v)
		}
		if f[3] != "" {
			for _, pair := range strings.Split(f[3], ",") {
				kv := strings.SplitN(pair, ":", 2)
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: unb64(kv[0]), Value: unb64(kv[1])})
			}
		}
		if len(f) > 4 && f[4] != "" {
			pi, _ := strconv.Atoi(f[4])
			m.Partition = int32(pi)
		}
		msgs = append(msgs, m)
	}
	err = p.SendMessages(msgs)
	bad := map[*sarama.ProducerMessage]error{}
	if errs, ok := err.(sarama.ProducerErrors); ok {
		for _, e := range errs {
			bad[e.Msg] = e.Err
		}
	} else if err != nil {
		fail("send: %v", err)
	}
	for i, m := range msgs {
		if e, ok := bad[m]; ok {
			emit(fmt.Sprintf("ERR\t%d\t%v", i, e))
		} else {
			emit(fmt.Sprintf("ACK\t%d\t%d\t%d", i, m.Partition, m.Offset))
		}
	}
	p.Close()
	if len(bad) > 0 {
		out.Flush()
		os.Exit(1)
	}
}

func consume(conf *sarama.Config, addrs []string, topic, offset string, count, idleMs int) {
	client, err := sarama.NewClient(addrs, conf)
	if err != nil {
		fail("client: %v", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		fail("consumer: %v", err)
	}
	parts, err := consumer.Partitions(topic)
	if err != nil {
		fail("partitions: %v", err)
	}
	start := sarama.OffsetOldest
	if offset == "newest" {
		start = sarama.OffsetNewest
	}
	recs := make(chan *sarama.ConsumerMessage, 1024)
	errs := make(chan *sarama.ConsumerError, 16)
	ready := "READY"
	for _, p := range parts {
		pos, err := client.GetOffset(topic, p, start)
		if err != nil {
			fail("offset %d: %v", p, err)
		}
		// ConsumePartition resolves OffsetOldest/OffsetNewest (ListOffsets) before returning.
		pc, err := consumer.ConsumePartition(topic, p, start)
		if err != nil {
			fail("consume %d: %v", p, err)
		}
		ready += fmt.Sprintf("\t%d:%d", p, pos)
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				recs <- m
			}
		}(pc)
		go func(pc sarama.PartitionConsumer) {
			for e := range pc.Errors() {
				errs <- e
			}
		}(pc)
	}
	emit(ready)
	n := 0
	for count < 0 || n < count {
		select {
		case m := <-recs:
			var hs []string
			for _, h := range m.Headers {
				hs = append(hs, b64(h.Key)+":"+b64(h.Value))
			}
			emit(fmt.Sprintf("REC\t%d\t%d\t%d\t0\t%s\t%s\t%s", m.Partition, m.Offset, m.Timestamp.UnixNano()/int64(time.Millisecond),
				b64(m.Key), b64(m.Value), strings.Join(hs, ",")))
			n++
		case e := <-errs:
			emit(fmt.Sprintf("ERR\t%d\t%v", e.Partition, e.Err))
			fmt.Fprintf(os.Stderr, "consumer error on partition %d: %v\n", e.Partition, e.Err)
			out.Flush()
			os.Exit(1)
		case <-time.After(time.Duration(idleMs) * time.Millisecond):
			emit(fmt.Sprintf("DONE\t%d", n))
			return
		}
	}
	emit(fmt.Sprintf("DONE\t%d", n))
}

func offsets(conf *sarama.Config, addrs []string, topic string, when int64) {
	client, err := sarama.NewClient(addrs, conf)
	if err != nil {
		fail("client: %v", err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		fail("partitions: %v", err)
	}
	res := map[string]int64{}
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, when)
		if err != nil {
			fail("offset %d: %v", p, err)
		}
		res[strconv.Itoa(int(p))] = off
	}
	printJSON(res)
}

func printJSON(v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		fail("json: %v", err)
	}
	emit(string(b))
}

type partMeta struct {
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	Isr       []int32 `json:"isr"`
}

func metadata(conf *sarama.Config, addrs []string, topic string) {
	client, err := sarama.NewClient(addrs, conf)
	if err != nil {
		fail("client: %v", err)
	}
	defer client.Close()
	res := map[string]interface{}{}
	var brokers []map[string]interface{}
	for _, b := range client.Brokers() {
		brokers = append(brokers, map[string]interface{}{"id": b.ID(), "addr": b.Addr()})
	}
	sort.Slice(brokers, func(i, j int) bool { return brokers[i]["id"].(int32) < brokers[j]["id"].(int32) })
	res["brokers"] = brokers
	ctl, err := client.Controller()
	if err != nil {
		fail("controller: %v", err)
	}
	res["controller"] = ctl.ID()
	topics, err := client.Topics()
	if err != nil {
		fail("topics: %v", err)
	}
	res["topics"] = topics
	if topic != "" {
		parts, err := client.Partitions(topic)
		if err != nil {
			fail("partitions: %v", err)
		}
		var ps []partMeta
		for _, p := range parts {
			leader, err := client.Leader(topic, p)
			if err != nil {
				fail("leader: %v", err)
			}
			replicas, _ := client.Replicas(topic, p)
			isr, _ := client.InSyncReplicas(topic, p)
			ps = append(ps, partMeta{p, leader.ID(), replicas, isr})
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Partition < ps[j].Partition })
		res["partitions"] = ps
	}
	printJSON(res)
}

func admin(conf *sarama.Config, addrs []string, args []string) {
	a, err := sarama.NewClusterAdmin(addrs, conf)
	if err != nil {
		fail("admin: %v", err)
	}
	defer a.Close()
	result := func(err error, v interface{}) {
		if err != nil {
			printJSON(map[string]string{"error": err.Error()})
			out.Flush()
			os.Exit(2)
		}
		printJSON(v)
	}
	num := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	configs := func(kvs []string) map[string]*string {
		m := map[string]*string{}
		for _, kv := range kvs {
			p := strings.SplitN(kv, "=", 2)
			v := p[1]
			m[p[0]] = &v
		}
		return m
	}
	switch args[0] {
	case "create-topic":
		err := a.CreateTopic(args[1], &sarama.TopicDetail{NumPartitions: int32(num(args[2])), ReplicationFactor: int16(num(args[3])),
			ConfigEntries: configs(args[4:])}, false)
		result(err, map[string]string{"created": args[1]})
	case "delete-topic":
		result(a.DeleteTopic(args[1]), map[string]string{"deleted": args[1]})
	case "describe-topic":
		md, err := a.DescribeTopics([]string{args[1]})
		if err == nil && md[0].Err != sarama.ErrNoError {
			err = md[0].Err
		}
		var ps []partMeta
		if err == nil {
			for _, p := range md[0].Partitions {
				ps = append(ps, partMeta{p.ID, p.Leader, p.Replicas, p.Isr})
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i].Partition < ps[j].Partition })
		}
		result(err, map[string]interface{}{"partitions": ps})
	case "create-partitions":
		result(a.CreatePartitions(args[1], int32(num(args[2])), nil, false), map[string]string{"grown": args[1]})
	case "delete-records":
		result(a.DeleteRecords(args[1], map[int32]int64{int32(num(args[2])): num(args[3])}), map[string]string{"deleted": args[1]})
	case "alter-config":
		result(a.AlterConfig(sarama.TopicResource, args[1], configs(args[2:]), false), map[string]string{"altered": args[1]})
	case "describe-config":
		entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: args[1]})
		m := map[string]string{}
		for _, e := range entries {
			m[e.Name] = e.Value
		}
		result(err, m)
	case "list-topics":
		ts, err := a.ListTopics()
		var names []string
		retention := map[string]string{}
		for n, d := range ts {
			names = append(names, n)
			if v := d.ConfigEntries["retention.ms"]; v != nil {
				retention[n] = *v
			}
		}
		sort.Strings(names)
		// retention.ms as ListTopics read it from DescribeConfigs (v0 in sarama 1.22).
		result(err, map[string]interface{}{"topics": names, "retention.ms": retention})
	default:
		fail("unknown admin command %s", args[0])
	}
}
