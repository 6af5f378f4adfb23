// kafkajs 2.2.4 driver for gregor's compat tests: the suite's line protocol
// (compat-tests/checks.py) for produce / consume, one JSON object for the rest.
//
//   node driver.js produce  --brokers B --topic T [--codec C] [--idempotent] [--partition P]
//   node driver.js consume  --brokers B --topic T --from beginning|end [--count N] [--idle-ms M]
//   node driver.js group    --brokers B --topic T --group G [--count N] [--idle-ms M]
//   node driver.js admin    --brokers B <create-topic T n [k=v..] | delete-topic T | list-topics |
//                           describe-topic T | describe-cluster | describe-configs T |
//                           alter-config T k=v | create-partitions T n | delete-records T p off |
//                           offsets T | offsets-by-time T ms>
//
// Every command also takes --tls-ca FILE (TLS with this CA) and --sasl-mechanism
// plain|scram-sha-256|scram-sha-512 --sasl-user U --sasl-password P (kafkajs's own names).
// `group` is kafkajs's consumer-group consumer (subscribe, eachMessage, offsets committed
// by kafkajs, leaves the group on disconnect): REC lines, then DONE n.
//
// kafkajs has no manual partition assignment: its consumer only runs inside a consumer
// group. `consume` therefore drives kafkajs's own fetch path without the group layer:
// kafkajs's Cluster resolves leaders and start offsets (ListOffsets), Broker.fetch sends
// Fetch requests and decodes/decompresses record batches, and Batch filters records before
// the fetch offset, exactly as its group consumer does.
'use strict'

const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, Partitioners, logLevel } = require('kafkajs')
const Cluster = require('kafkajs/src/cluster')
const Batch = require('kafkajs/src/consumer/batch')
const { createLogger } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const socketFactory = require('kafkajs/src/network/socketFactory')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
const readline = require('readline')
const fs = require('fs')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

function parseArgs(argv) {
  const opts = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) {
      const name = argv[i].slice(2)
      opts[name] = i + 1 < argv.length && !argv[i + 1].startsWith('--') ? argv[++i] : true
    } else {
      opts._.push(argv[i])
    }
  }
  return opts
}

const b64 = b => (b == null ? '-' : Buffer.from(b).toString('base64'))
const unb64 = s => (s === '-' ? null : Buffer.from(s, 'base64'))
const out = line => process.stdout.write(line + '\n')

// kafkajs's `ssl` and `sasl` options from --tls-ca / --sasl-* (absent: plaintext).
function security(opts) {
  const out = {}
  if (opts['tls-ca']) out.ssl = { ca: [fs.readFileSync(opts['tls-ca'], 'utf8')] }
  if (opts['sasl-mechanism']) {
    out.sasl = { mechanism: opts['sasl-mechanism'], username: opts['sasl-user'], password: opts['sasl-password'] }
  }
  return out
}

function kafkaFor(opts) {
  return new Kafka({
    clientId: 'kafkajs-compat',
    brokers: opts.brokers.split(','),
    logLevel: logLevel.ERROR,
    retry: { retries: 5, initialRetryTime: 100 },
    ...security(opts),
  })
}

async function readRecords() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  const recs = []
  for await (const line of rl) {
    if (!line) continue
    const [ts, key, value, headers, partition] = line.split('\t')
    const hs = {}
    if (headers) {
      for (const pair of headers.split(',')) {
        const [k, v] = pair.split(':')
        hs[unb64(k).toString()] = unb64(v)
      }
    }
    const m = { key: unb64(key), value: unb64(value), headers: hs }
    if (ts !== '-') m.timestamp = ts
    if (partition !== undefined && partition !== '') m.partition = Number(partition)
    recs.push(m)
  }
  return recs
}

async function produce(opts) {
  const kafka = kafkaFor(opts)
  const messages = await readRecords()
  // Predict each keyed message's partition with the producer's own partitioner, so acks
  // can name (partition, offset) per message: kafkajs returns one base offset a partition.
  const admin = kafka.admin()
  await admin.connect()
  const meta = await admin.fetchTopicMetadata({ topics: [opts.topic] })
  await admin.disconnect()
  const partitionMetadata = meta.topics[0].partitions
  const partitioner = Partitioners.DefaultPartitioner()
  const predicted = messages.map(m =>
    m.partition != null ? m.partition : partitioner({ topic: opts.topic, partitionMetadata, message: m })
  )
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: !!opts.idempotent,
    maxInFlightRequests: opts.idempotent ? 1 : undefined,
  })
  await producer.connect()
  try {
    const res = await producer.send({
      topic: opts.topic,
      acks: -1,
      compression: CODECS[opts.codec || 'none'],
      // partitions left to kafkajs; a wrong prediction shows as an ack/consume mismatch
      messages,
    })
    const base = {}
    for (const r of res) {
      if (r.errorCode !== 0) throw new Error(`partition ${r.partition}: error ${r.errorCode}`)
      base[r.partition] = BigInt(r.baseOffset)
    }
    const seen = {}
    predicted.forEach((p, i) => {
      const n = seen[p] || 0n
      seen[p] = n + 1n
      out(`ACK\t${i}\t${p}\t${base[p] + n}`)
    })
  } catch (e) {
    out(`ERR\t-1\t${e.message}`)
    process.exitCode = 1
  } finally {
    await producer.disconnect()
  }
}

async function consume(opts) {
  const cluster = new Cluster({
    logger: createLogger({ level: logLevel.ERROR, logCreator: LoggerConsole }),
    socketFactory: socketFactory(),
    brokers: opts.brokers.split(','),
    clientId: 'kafkajs-compat-consumer',
    connectionTimeout: 3000,
    requestTimeout: 30000,
    enforceRequestTimeout: true,
    metadataMaxAge: 300000,
    allowAutoTopicCreation: false,
    isolationLevel: 1,
    retry: { retries: 5, initialRetryTime: 100 },
    offsets: new Map(),
    ...security(opts),
  })
  await cluster.connect()
  await cluster.addTargetTopic(opts.topic)
  const partitions = cluster.findTopicPartitionMetadata(opts.topic).map(p => p.partitionId).sort((a, b) => a - b)
  const [resolved] = await cluster.fetchTopicsOffset([
    { topic: opts.topic, partitions: partitions.map(partition => ({ partition })), fromBeginning: opts.from !== 'end' },
  ])
  const position = {}
  for (const { partition, offset } of resolved.partitions) position[partition] = offset
  out('READY' + partitions.map(p => `\t${p}:${position[p]}`).join(''))
  const count = opts.count ? Number(opts.count) : Infinity
  const idleMs = Number(opts['idle-ms'] || 10000)
  let n = 0
  let lastData = Date.now()
  while (n < count && Date.now() - lastData < idleMs) {
    const leaders = cluster.findLeaderForPartitions(opts.topic, partitions)
    for (const nodeId of Object.keys(leaders)) {
      const broker = await cluster.findBroker({ nodeId })
      const { responses } = await broker.fetch({
        replicaId: -1,
        isolationLevel: 1,
        maxWaitTime: 200,
        minBytes: 1,
        maxBytes: 10 << 20,
        topics: [
          {
            topic: opts.topic,
            partitions: leaders[nodeId].map(partition => ({
              partition,
              fetchOffset: String(position[partition]),
              maxBytes: 2 << 20,
            })),
          },
        ],
      })
      for (const { partitions: datas } of responses) {
        for (const data of datas) {
          if (data.errorCode) throw new Error(`fetch partition ${data.partition}: error ${data.errorCode}`)
          const batch = new Batch(opts.topic, position[data.partition], data)
          for (const m of batch.messages) {
            const hs = Object.entries(m.headers || {}).map(([k, v]) => `${b64(Buffer.from(k))}:${b64(v)}`)
            out(`REC\t${data.partition}\t${m.offset}\t${m.timestamp}\t0\t${b64(m.key)}\t${b64(m.value)}\t${hs.join(',')}`)
            n++
            lastData = Date.now()
          }
          if (!batch.isEmptyIncludingFiltered()) position[data.partition] = String(BigInt(batch.lastOffset()) + 1n)
        }
      }
    }
  }
  out(`DONE\t${n}`)
  await cluster.disconnect()
}

async function group(opts) {
  const kafka = kafkaFor(opts)
  const consumer = kafka.consumer({ groupId: opts.group, sessionTimeout: 10000, heartbeatInterval: 1000 })
  const count = opts.count ? Number(opts.count) : Infinity
  const idleMs = Number(opts['idle-ms'] || 15000)
  let n = 0
  let lastData = Date.now()
  await consumer.connect()
  await consumer.subscribe({ topics: [opts.topic], fromBeginning: true })
  let finish
  const finished = new Promise(resolve => (finish = resolve))
  await consumer.run({
    eachMessage: async ({ partition, message: m }) => {
      if (n >= count) return
      const hs = Object.entries(m.headers || {}).map(([k, v]) => `${b64(Buffer.from(k))}:${b64(v)}`)
      out(`REC\t${partition}\t${m.offset}\t${m.timestamp}\t0\t${b64(m.key)}\t${b64(m.value)}\t${hs.join(',')}`)
      n++
      lastData = Date.now()
      if (n >= count) finish()
    },
  })
  const idle = setInterval(() => Date.now() - lastData > idleMs && finish(), 200)
  await finished
  clearInterval(idle)
  // eachMessage resolved: kafkajs commits the resolved offsets on disconnect.
  await consumer.disconnect()
  out(`DONE\t${n}`)
}

async function admin(opts) {
  const kafka = kafkaFor(opts)
  const a = kafka.admin()
  await a.connect()
  const [cmd, topic, ...rest] = opts._
  const kv = list => list.map(s => s.split('=')).map(([name, value]) => ({ name, value }))
  try {
    let res
    switch (cmd) {
      case 'create-topic':
        res = {
          created: await a.createTopics({
            topics: [{ topic, numPartitions: Number(rest[0]), replicationFactor: 1, configEntries: kv(rest.slice(1)) }],
            waitForLeaders: true,
          }),
        }
        break
      case 'delete-topic':
        await a.deleteTopics({ topics: [topic] })
        res = { deleted: topic }
        break
      case 'list-topics':
        res = { topics: (await a.listTopics()).sort() }
        break
      case 'describe-topic':
        res = (await a.fetchTopicMetadata({ topics: [topic] })).topics[0]
        res.partitions.sort((x, y) => x.partitionId - y.partitionId)
        break
      case 'describe-cluster':
        res = await a.describeCluster()
        break
      case 'describe-configs':
        res = await a.describeConfigs({
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
          includeSynonyms: true,
        })
        break
      case 'alter-config':
        res = await a.alterConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: kv(rest) }] })
        break
      case 'create-partitions':
        res = { created: await a.createPartitions({ topicPartitions: [{ topic, count: Number(rest[0]) }] }) }
        break
      case 'delete-records':
        // kafkajs looks the leaders up in its metadata cache before loading it: load it first
        await a.fetchTopicOffsets(topic)
        await a.deleteTopicRecords({ topic, partitions: [{ partition: Number(rest[0]), offset: rest[1] }] })
        res = { deleted: topic }
        break
      case 'offsets':
        res = { offsets: (await a.fetchTopicOffsets(topic)).sort((x, y) => x.partition - y.partition) }
        break
      case 'offsets-by-time':
        res = { offsets: (await a.fetchTopicOffsetsByTimestamp(topic, Number(rest[0]))).sort((x, y) => x.partition - y.partition) }
        break
      default:
        throw new Error(`unknown admin command ${cmd}`)
    }
    out(JSON.stringify(res))
  } catch (e) {
    const cause = e.originalError || (e.errors && e.errors[0]) || {}
    out(JSON.stringify({ error: `${e.name}: ${e.message}`, type: e.type || cause.type || null }))
    process.exitCode = 2
  } finally {
    await a.disconnect()
  }
}

const opts = parseArgs(process.argv.slice(2))
const cmd = opts._.shift()
const run = { produce, consume, group, admin }[cmd]
if (!run) {
  console.error('usage: node driver.js produce|consume|group|admin ...')
  process.exit(1)
}
run(opts).catch(e => {
  console.error(e.stack || e)
  process.exit(3)
})
