// kafkajs 2.2.4 transactional scenarios for test_transactions.py (the same as
// compat-tests/java/Transactions.java); prints one JSON object.
//
//   node txn.js cac   --brokers B --topic T --txn-id ID --tag TAG
//   node txn.js ctp   --brokers B --input IN --output OUT --group G --txn-id ID --count N --commit true|false
//   node txn.js fence --brokers B --topic T --txn-id ID --tag TAG
//   node txn.js read  --brokers B --topic T --group G --count N [--uncommitted]
'use strict'

const { Kafka, logLevel } = require('kafkajs')

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

const opts = parseArgs(process.argv.slice(2))
const kafka = new Kafka({
  clientId: 'gregor-txn',
  brokers: opts.brokers.split(','),
  logLevel: logLevel.WARN,
  retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 2000 },
})

const producer = id =>
  kafka.producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1 })

async function send3(txn, topic, prefix) {
  for (let i = 0; i < 3; i++) {
    await txn.send({ topic, messages: [{ value: `${prefix}-${i}`, partition: i % 2 }] })
  }
}

async function cac() {
  const p = producer(opts['txn-id'])
  await p.connect()
  let t = await p.transaction()
  await send3(t, opts.topic, `${opts.tag}-c1`)
  await t.commit()
  t = await p.transaction()
  await send3(t, opts.topic, `${opts.tag}-a`)
  await t.abort()
  t = await p.transaction()
  await send3(t, opts.topic, `${opts.tag}-c2`)
  await t.commit()
  await p.disconnect()
  return { ok: 'cac' }
}

async function consume(topic, group, count, readUncommitted, onRecord) {
  const consumer = kafka.consumer({ groupId: group, readUncommitted, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(), 30000)
    consumer
      .run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (got.length >= count) return
          got.push({ partition, offset: Number(message.offset), value: message.value.toString() })
          if (got.length >= count) {
            clearTimeout(timer)
            resolve()
          }
        },
      })
      .catch(reject)
  })
  if (onRecord) await onRecord(got)
  await consumer.disconnect()
  return got
}

async function ctp() {
  const count = Number(opts.count)
  const p = producer(opts['txn-id'])
  await p.connect()
  const got = await consume(opts.input, opts.group, count, false, async records => {
    const t = await p.transaction()
    const offsets = {}
    for (const r of records) {
      await t.send({ topic: opts.output, messages: [{ value: r.value.toUpperCase(), partition: r.partition }] })
      offsets[r.partition] = Math.max(offsets[r.partition] || 0, r.offset + 1)
    }
    await t.sendOffsets({
      consumerGroupId: opts.group,
      topics: [
        {
          topic: opts.input,
          partitions: Object.entries(offsets).map(([partition, offset]) => ({
            partition: Number(partition),
            offset: String(offset),
          })),
        },
      ],
    })
    if (opts.commit === 'true') await t.commit()
    else await t.abort()
  })
  await p.disconnect()
  return { ok: 'ctp', consumed: got.length }
}

async function fence() {
  const a = producer(opts['txn-id'])
  await a.connect()
  const ta = await a.transaction()
  await send3(ta, opts.topic, `${opts.tag}-zombie`)
  const b = producer(opts['txn-id'])
  await b.connect()
  const tb = await b.transaction()
  await send3(tb, opts.topic, `${opts.tag}-winner`)
  await tb.commit()
  await b.disconnect()
  let fenced = null
  try {
    await ta.commit()
  } catch (e) {
    fenced = e.type || e.name
  }
  await a.disconnect().catch(() => {})
  return { ok: 'fence', fenced }
}

async function read() {
  const got = await consume(opts.topic, opts.group, Number(opts.count), !!opts.uncommitted)
  return { records: got }
}

const modes = { cac, ctp, fence, read }
modes[opts._[0]]()
  .then(out => {
    console.log(JSON.stringify(out))
    process.exit(0)
  })
  .catch(e => {
    console.log(JSON.stringify({ error: String(e), type: e.type }))
    process.exit(2)
  })
