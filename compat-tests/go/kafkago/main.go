// kafka-go (Debian golang-github-segmentio-kafka-go-dev 0.2.1) driver for gregor's compat
// tests. kafka-go 0.2.1 predates message format v2: it produces with Produce v2 (message
// format v1, compressed as one wrapper), fetches with Fetch v2, creates topics with
// CreateTopics v0, and its group Reader uses JoinGroup v1, SyncGroup v0, Heartbeat v0,
// OffsetCommit v2, OffsetFetch v1 — all served by Kafka 3.9 and gregor.
//
//	kafkago-driver metadata -brokers B -topic T
//	kafkago-driver offsets  -brokers B -topic T -partition P -time first|last|<ms>
//	kafkago-driver delete-topic -brokers B -topic T
//	kafkago-driver create-topic -brokers B -topic T -partitions N
//	kafkago-driver produce  -brokers B -topic T -partition P [-codec none|gzip|snappy|lz4]
//	                        (key<TAB>value lines on stdin, one Produce request)
//	kafkago-driver consume  -brokers B -topic T -partition P
//	kafkago-driver read     -brokers B -topic T -partition P -from first|last|<offset> [-count N] [-idle-ms M]
//	kafkago-driver group    -brokers B -topic T -group G [-count N] [-idle-ms M]
//
// Prints one JSON object; {"error": "..."} and exit code 2 when the client reports an error.
// read and group print one JSON object per record ({"partition","offset","key","value","ts"}),
// then {"done": n}. group commits each record (synchronously) before printing it, so what
// it printed is exactly what the group has committed; its idle timer starts after the
// first record (joining may wait for a previous member's session to expire).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	kafka "github.com/segmentio/kafka-go"
	kgzip "github.com/segmentio/kafka-go/gzip"
	klz4 "github.com/segmentio/kafka-go/lz4"
	ksnappy "github.com/segmentio/kafka-go/snappy"
)

func record(m kafka.Message) map[string]interface{} {
	return map[string]interface{}{"partition": m.Partition, "offset": m.Offset, "key": string(m.Key),
		"value": string(m.Value), "ts": m.Time.UnixNano() / int64(time.Millisecond)}
}

var codecs = map[string]kafka.CompressionCodec{"none": nil, "gzip": kgzip.NewCompressionCodec(),
	"snappy": ksnappy.NewCompressionCodec(), "lz4": klz4.NewCompressionCodec()}

func emit(v interface{}) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func check(err error) {
	if err != nil {
		emit(map[string]string{"error": err.Error()})
		os.Exit(2)
	}
}

type broker struct {
	ID   int    `json:"id"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

type partition struct {
	ID       int   `json:"partition"`
	Leader   int   `json:"leader"`
	Replicas []int `json:"replicas"`
	Isr      []int `json:"isr"`
}

func ids(bs []kafka.Broker) []int {
	out := []int{}
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kafkago-driver metadata|offsets|delete-topic|create-topic|produce|consume ...")
		os.Exit(1)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap broker")
	topic := fs.String("topic", "", "topic")
	part := fs.Int("partition", 0, "partition")
	when := fs.String("time", "last", "first|last|<ms>")
	partitions := fs.Int("partitions", 1, "partitions for create-topic")
	codec := fs.String("codec", "none", "none|gzip|snappy|lz4")
	from := fs.String("from", "first", "first|last|<offset>")
	count := fs.Int("count", -1, "records to read")
	idleMs := fs.Int("idle-ms", 8000, "stop when nothing came for this long")
	group := fs.String("group", "", "consumer group")
	fs.Parse(os.Args[2:])
	addr := strings.Split(*brokers, ",")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	switch cmd {
	case "metadata":
		conn, err := kafka.DialContext(ctx, "tcp", addr)
		check(err)
		defer conn.Close()
		ps, err := conn.ReadPartitions(*topic)
		check(err)
		var out []partition
		brokerSet := map[int]broker{}
		for _, p := range ps {
			out = append(out, partition{p.ID, p.Leader.ID, ids(p.Replicas), ids(p.Isr)})
			brokerSet[p.Leader.ID] = broker{p.Leader.ID, p.Leader.Host, p.Leader.Port}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		var bl []broker
		for _, b := range brokerSet {
			bl = append(bl, b)
		}
		emit(map[string]interface{}{"partitions": out, "leaders": bl})
	case "offsets":
		conn, err := kafka.DialLeader(ctx, "tcp", addr, *topic, *part)
		check(err)
		defer conn.Close()
		var off int64
		switch *when {
		case "first":
			off, err = conn.ReadFirstOffset()
		case "last":
			off, err = conn.ReadLastOffset()
		default:
			ms, perr := strconv.ParseInt(*when, 10, 64)
			check(perr)
			off, err = conn.ReadOffset(time.Unix(0, ms*int64(time.Millisecond)))
		}
		check(err)
		emit(map[string]int64{"offset": off})
	case "delete-topic":
		conn, err := kafka.DialContext(ctx, "tcp", addr)
		check(err)
		defer conn.Close()
		check(conn.DeleteTopics(*topic))
		emit(map[string]string{"deleted": *topic})
	case "create-topic":
		conn, err := kafka.DialContext(ctx, "tcp", addr)
		check(err)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		check(conn.CreateTopics(kafka.TopicConfig{Topic: *topic, NumPartitions: *partitions, ReplicationFactor: 1}))
		emit(map[string]string{"created": *topic})
	case "produce":
		conn, err := kafka.DialLeader(ctx, "tcp", addr, *topic, *part)
		check(err)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		var msgs []kafka.Message
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			kv := strings.SplitN(in.Text(), "\t", 2)
			msgs = append(msgs, kafka.Message{Key: []byte(kv[0]), Value: []byte(kv[1])})
		}
		cc, ok := codecs[*codec]
		if !ok {
			check(fmt.Errorf("unknown codec %s", *codec))
		}
		n, err := conn.WriteCompressedMessages(cc, msgs...)
		check(err)
		emit(map[string]int{"written": n})
	case "read":
		conn, err := kafka.DialLeader(ctx, "tcp", addr, *topic, *part)
		check(err)
		defer conn.Close()
		switch *from {
		case "first":
			_, err = conn.Seek(0, kafka.SeekStart)
		case "last":
			_, err = conn.Seek(0, kafka.SeekEnd)
		default:
			o, perr := strconv.ParseInt(*from, 10, 64)
			check(perr)
			_, err = conn.Seek(o, kafka.SeekAbsolute)
		}
		check(err)
		fmt.Println(`{"ready": true}`)
		n := 0
		for *count < 0 || n < *count {
			conn.SetReadDeadline(time.Now().Add(time.Duration(*idleMs) * time.Millisecond))
			m, err := conn.ReadMessage(1 << 20)
			if err != nil {
				break
			}
			emit(record(m))
			n++
		}
		emit(map[string]int{"done": n})
	case "group":
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: *group, Topic: *topic,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond,
			HeartbeatInterval: 500 * time.Millisecond, CommitInterval: 0,
			// kafka-go 0.2.1's Close does not reach the coordinator to leave the group: a
			// closed member is noticed when its session times out (gregor's minimum, 6 s).
			SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second,
			Logger: log.New(os.Stderr, "kafka-go: ", log.LstdFlags), ErrorLogger: log.New(os.Stderr, "kafka-go error: ", log.LstdFlags)})
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		gctx, gcancel := context.WithCancel(context.Background())
		go func() { <-stop; gcancel() }()
		n := 0
		for *count < 0 || n < *count {
			wait := time.Duration(*idleMs) * time.Millisecond
			if n == 0 {
				wait += 30 * time.Second
			}
			fctx, fcancel := context.WithTimeout(gctx, wait)
			m, err := r.FetchMessage(fctx)
			fcancel()
			if err != nil {
				break
			}
			if err := r.CommitMessages(gctx, m); err != nil {
				continue // not ours any more (rebalanced): the new owner reads it
			}
			emit(record(m))
			n++
		}
		r.Close()
		emit(map[string]int{"done": n})
	case "consume":
		conn, err := kafka.DialLeader(ctx, "tcp", addr, *topic, *part)
		check(err)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = conn.Seek(0, kafka.SeekAbsolute)
		check(err)
		m, err := conn.ReadMessage(1 << 20)
		check(err)
		emit(map[string]interface{}{"offset": m.Offset, "key": string(m.Key), "value": string(m.Value)})
	default:
		fmt.Fprintln(os.Stderr, "unknown command", cmd)
		os.Exit(1)
	}
}
