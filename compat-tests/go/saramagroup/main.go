// A sarama (Debian golang-github-shopify-sarama-dev 1.22.1) consumer-group member for
// gregor's compat tests, written the way sarama's ConsumerGroup is meant to be used:
// Consume(ctx, topics, handler) in a loop (it returns at every rebalance), a handler whose
// ConsumeClaim prints each record and marks it (MarkMessage), sarama's offset manager
// committing what was marked every Consumer.Offsets.CommitInterval and when a session
// ends (rebalance or close). Close() leaves the group.
//
// sarama 1.22 commits with OffsetCommit v1 (per-partition commit timestamps) unless
// Consumer.Offsets.Retention is set (-retention-ms N: v2 with that retention). Kafka 3.9
// and gregor serve both. config.Version defaults to 2.1.0 as in the sarama driver
// (consumer groups need >= 0.10.2); -version picks the protocol set.
//
//	saramagroup -brokers B -group G -topic T [-count N] [-idle-ms 10000] [-client-id ID]
//	            [-session-ms 10000] [-heartbeat-ms 3000] [-commit-ms 1000]
//	            [-tls-ca FILE] [-sasl-mechanism M -sasl-user U -sasl-password P]
//
// It stops after printing -count records (records beyond are neither printed nor marked),
// when nothing came for -idle-ms, or on SIGTERM; then it ends the session (final commit)
// and closes the group (LeaveGroup). stdout, one line each, flushed at once:
//
//	SETUP ms generation member partitions     a session began with these claims
//	CLEANUP ms generation partitions          the session ended (claims released)
//	REC partition offset ts -1 key value headers
//	ERR message                               from the group's error channel
//	CLOSED count                              Close() returned
//
// ms is the Unix time in milliseconds (one clock for all members of a test).
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Shopify/sarama"
)

var out = bufio.NewWriter(os.Stdout)
var outMu sync.Mutex

func emit(format string, args ...interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(out, format+"\n", args...)
	out.Flush()
}

func b64(b []byte) string {
	if b == nil {
		return "-"
	}
	return base64.StdEncoding.EncodeToString(b)
}

func nowMs() int64 { return time.Now().UnixNano() / int64(time.Millisecond) }

func parts(claims map[string][]int32, topic string) string {
	ps := append([]int32(nil), claims[topic]...)
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

type handler struct {
	topic    string
	max      int
	mu       sync.Mutex
	count    int
	lastData time.Time
	stop     context.CancelFunc
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	emit("SETUP\t%d\t%d\t%s\t%s", nowMs(), s.GenerationID(), s.MemberID(), parts(s.Claims(), h.topic))
	return nil
}

func (h *handler) Cleanup(s sarama.ConsumerGroupSession) error {
	emit("CLEANUP\t%d\t%d\t%s", nowMs(), s.GenerationID(), parts(s.Claims(), h.topic))
	return nil
}

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.mu.Lock()
		if h.max >= 0 && h.count >= h.max {
			h.mu.Unlock()
			h.stop()
			continue // neither printed nor marked: not committed
		}
		var hs []string
		for _, rh := range msg.Headers {
			hs = append(hs, b64(rh.Key)+":"+b64(rh.Value))
		}
		emit("REC\t%d\t%d\t%d\t-1\t%s\t%s\t%s", msg.Partition, msg.Offset,
			msg.Timestamp.UnixNano()/int64(time.Millisecond), b64(msg.Key), b64(msg.Value), strings.Join(hs, ","))
		s.MarkMessage(msg, "")
		h.count++
		h.lastData = time.Now()
		if h.max >= 0 && h.count >= h.max {
			h.stop()
		}
		h.mu.Unlock()
	}
	return nil
}

func main() {
	brokers := flag.String("brokers", "", "bootstrap brokers")
	group := flag.String("group", "", "group id")
	topic := flag.String("topic", "", "topic")
	count := flag.Int("count", -1, "stop after this many records")
	idleMs := flag.Int("idle-ms", 10000, "stop when nothing came for this long")
	clientID := flag.String("client-id", "sarama-group", "client id")
	sessionMs := flag.Int("session-ms", 10000, "Consumer.Group.Session.Timeout")
	heartbeatMs := flag.Int("heartbeat-ms", 3000, "Consumer.Group.Heartbeat.Interval")
	commitMs := flag.Int("commit-ms", 1000, "Consumer.Offsets.CommitInterval")
	retentionMs := flag.Int("retention-ms", 0, "Consumer.Offsets.Retention (0: OffsetCommit v1)")
	version := flag.String("version", "2.1.0", "sarama config.Version")
	security := addSecurityFlags(flag.CommandLine)
	flag.Parse()

	c := sarama.NewConfig()
	v, err := sarama.ParseKafkaVersion(*version)
	if err != nil {
		fmt.Fprintf(os.Stderr, "version: %v\n", err)
		os.Exit(2)
	}
	c.Version = v
	c.ClientID = *clientID
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.CommitInterval = time.Duration(*commitMs) * time.Millisecond
	c.Consumer.Offsets.Retention = time.Duration(*retentionMs) * time.Millisecond
	c.Consumer.Group.Session.Timeout = time.Duration(*sessionMs) * time.Millisecond
	c.Consumer.Group.Heartbeat.Interval = time.Duration(*heartbeatMs) * time.Millisecond
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	security.apply(c)

	g, err := sarama.NewConsumerGroup(strings.Split(*brokers, ","), *group, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "consumer group: %v\n", err)
		os.Exit(1)
	}
	go func() {
		for err := range g.Errors() {
			emit("ERR\t%v", err)
		}
	}()

	ctx, stop := context.WithCancel(context.Background())
	h := &handler{topic: *topic, max: *count, lastData: time.Now(), stop: stop}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		stop()
	}()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				h.mu.Lock()
				idle := time.Since(h.lastData)
				h.mu.Unlock()
				if idle > time.Duration(*idleMs)*time.Millisecond {
					stop()
				}
			}
		}
	}()

	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for ctx.Err() == nil {
			// Returns when a rebalance ends the session (or ctx is done); then rejoin.
			if err := g.Consume(ctx, []string{*topic}, h); err != nil {
				emit("ERR\tconsume: %v", err)
				time.Sleep(500 * time.Millisecond)
			}
		}
	}()
	<-ctx.Done()
	<-consumed
	rc := 0
	if err := g.Close(); err != nil {
		emit("ERR\tclose: %v", err)
		rc = 1
	}
	h.mu.Lock()
	emit("CLOSED\t%d", h.count)
	h.mu.Unlock()
	os.Exit(rc)
}
