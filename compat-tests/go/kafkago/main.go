// kafka-go (Debian golang-github-segmentio-kafka-go-dev 0.2.1) driver for gregor's compat
// tests. kafka-go 0.2.1 speaks Metadata v1, ListOffsets v1, DeleteTopics v1 — served by
// gregor — and Produce v2 / Fetch v2 (message format v1) and CreateTopics v0, which
// Kafka 4 removed (KIP-896) and gregor, whose floor is Kafka 4's, refuses the same way.
//
//	kafkago-driver metadata -brokers B -topic T
//	kafkago-driver offsets  -brokers B -topic T -partition P -time first|last|<ms>
//	kafkago-driver delete-topic -brokers B -topic T
//	kafkago-driver create-topic -brokers B -topic T -partitions N
//	kafkago-driver produce  -brokers B -topic T -partition P      (key<TAB>value lines)
//	kafkago-driver consume  -brokers B -topic T -partition P
//
// Prints one JSON object; {"error": "..."} and exit code 2 when the client reports an error.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

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
		n, err := conn.WriteMessages(msgs...)
		check(err)
		emit(map[string]int{"written": n})
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
