'use strict'
// The Node member's protocol code against the language-neutral test vectors of the Python reference
// (tests/vectors/protocol-v1.json): every value, every frame, every refusal.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const protocol = require('../lib/protocol')
const curve = require('../lib/curve')
const msgpack = require('../lib/msgpack')

const V = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'tests', 'vectors', 'protocol-v1.json'), 'utf8'))
const hex = (s) => Buffer.from(s, 'hex')
const hs = V.handshake
const SECRET = hex(hs.secret)
const NC = hex(hs.child_nonce)
const NP = hex(hs.parent_nonce)

function frameOf (step) {
  if (step.frame !== undefined) return hex(step.frame)
  const r = step.frame_repeat
  return Buffer.concat([hex(r.head), Buffer.alloc(r.count, hex(r.byte)[0]), hex(r.tail)])
}

function child () {
  return new protocol.Channel('child', SECRET, { pid: hs.child_pid, name: hs.child_name, randomBytes: (n) => NC.subarray(0, n) })
}
function parent () {
  return new protocol.Channel('parent', SECRET, { randomBytes: (n) => NP.subarray(0, n) })
}
const frames = Object.fromEntries(Object.entries(hs.frames).map(([k, v]) => [k, hex(v.frame)]))

function receiver (side, start) {
  if (side === 'parent') {
    const p = parent()
    if (start === 'await-hello') return p
    p.receive(frames.hello)
    if (start === 'await-proof') return p
    p.receive(frames.proof)
    assert.equal(start, 'established')
    return p
  }
  const c = child()
  c.start()
  if (start === 'await-challenge') return c
  c.receive(frames.challenge)
  if (start === 'await-accept') return c
  c.receive(frames.accept)
  assert.equal(start, 'established')
  return c
}

test('constants', () => {
  const c = V.constants
  assert.equal(V.protocol_version, protocol.PROTOCOL_VERSION)
  assert.equal(c.max_frame_size, protocol.MAX_FRAME_SIZE)
  assert.equal(c.max_text_length, protocol.MAX_TEXT_LENGTH)
  assert.equal(c.max_budget, protocol.MAX_BUDGET)
  assert.equal(c.escalation_margin, protocol.ESCALATION_MARGIN)
  assert.equal(c.level_share, protocol.LEVEL_SHARE)
  assert.deepEqual(c.outcomes, protocol.OUTCOMES)
  assert.deepEqual(c.entry_fields, protocol.ENTRY_FIELDS)
  assert.deepEqual(c.optional_entry_fields, protocol.OPTIONAL_ENTRY_FIELDS)
  assert.equal(c.max_request_length, protocol.MAX_REQUEST_LENGTH)
  assert.equal(c.knock, protocol.knock().toString('hex'))
})

test('CURVE keys from the secret', () => {
  const k = curve.deriveKeys(hex(V.curve.secret))
  assert.equal(k.serverSecretRaw.toString('hex'), V.curve.server_secret_raw)
  assert.equal(k.serverPublicRaw.toString('hex'), V.curve.server_public_raw)
  assert.equal(k.clientSecretRaw.toString('hex'), V.curve.client_secret_raw)
  assert.equal(k.clientPublicRaw.toString('hex'), V.curve.client_public_raw)
  assert.equal(k.serverPublic, V.curve.server_public_z85)
  assert.equal(k.clientPublic, V.curve.client_public_z85)
  assert.equal(k.serverSecret, V.curve.server_secret_z85)
  assert.equal(k.clientSecret, V.curve.client_secret_z85)
  assert.deepEqual(curve.z85decode(k.serverPublic), k.serverPublicRaw)
})

test('the handshake, byte for byte, both sides', () => {
  const c = child()
  const p = parent()
  const hello = c.start()
  assert.equal(hello.toString('hex'), hs.frames.hello.frame)
  const r1 = p.receive(hello)
  assert.equal(r1.reply.toString('hex'), hs.frames.challenge.frame)
  const r2 = c.receive(r1.reply)
  assert.equal(r2.reply.toString('hex'), hs.frames.proof.frame)
  assert.equal(c.state, 'await-accept')
  const r3 = p.receive(r2.reply)
  assert.deepEqual(r3.event, { kind: 'established', peerPid: hs.child_pid, peerName: hs.child_name })
  assert.equal(r3.reply.toString('hex'), hs.frames.accept.frame)
  const r4 = c.receive(r3.reply)
  assert.equal(r4.event.kind, 'established')
  assert.ok(c.established && p.established)
})

test('every established-phase message, byte for byte', () => {
  const c = receiver('child', 'established')
  const p = receiver('parent', 'established')
  const byName = Object.fromEntries(V.messages.map((m) => [m.name, m]))
  const ready = c.send({ kind: 'ready' })
  assert.equal(ready.toString('hex'), byName.ready.frame)
  assert.equal(p.receive(ready).event.kind, 'ready')
  const stop = p.send({ kind: 'stop', reason: 'deploy', budget: 5 })
  assert.equal(stop.toString('hex'), byName.stop.frame)
  assert.deepEqual(c.receive(stop).event, { kind: 'stop', reason: 'deploy', budget: 5 })
  const entry = byName.report.value[2].entries[0]
  const report = c.send({ kind: 'report', entries: [entry] })
  assert.equal(report.toString('hex'), byName.report.frame)
  assert.deepEqual(p.receive(report).event, { kind: 'report', entries: [entry] })
  const ack = p.send({ kind: 'ack' })
  assert.equal(ack.toString('hex'), byName.ack.frame)
  assert.equal(c.receive(ack).event.kind, 'ack')
  const empty = c.send({ kind: 'report', entries: [] })
  assert.equal(empty.toString('hex'), byName['report-empty'].frame)
  assert.deepEqual(p.receive(empty).event, { kind: 'report', entries: [] })
  assert.equal(p.send({ kind: 'ack' }).toString('hex'), byName['ack-2'].frame)
  const withRequest = byName['report-with-request'].value[2].entries[0]
  const report2 = c.send({ kind: 'report', entries: [withRequest] })
  assert.equal(report2.toString('hex'), byName['report-with-request'].frame)
  assert.deepEqual(p.receive(report2).event, { kind: 'report', entries: [withRequest] })
  assert.equal(p.send({ kind: 'ack' }).toString('hex'), byName['ack-3'].frame)
  const farewell = c.send({ kind: 'farewell' })
  assert.equal(farewell.toString('hex'), byName.farewell.frame)
  assert.deepEqual(p.receive(farewell).event, { kind: 'farewell' })
})

for (const edge of V.accepted_entries) {
  test(`accepted entry: ${edge.name}`, () => {
    const p = receiver(edge.receiver, edge.start)
    const { event } = p.receive(hex(edge.frame))
    assert.equal(event.kind, 'report')
    assert.deepEqual(event.entries, edge.entries)
  })
}

test("the children's budgets and the escalation's end", () => {
  for (const { budget, children_budget: want } of V.children_budgets) {
    assert.ok(Math.abs(protocol.childrenDeadline(budget, 0) - want) < 1e-9, `${budget}`)
  }
  for (const { deadline, own_deadline: own, escalation_end: want } of V.escalation_ends) {
    assert.ok(Math.abs(protocol.escalationEnd(deadline, own) - want) < 1e-9, `${deadline} ${own}`)
  }
})

for (const edge of V.accepted_edges) {
  test(`accepted at the edge: ${edge.name}`, () => {
    const c = receiver(edge.receiver, edge.start)
    const { event } = c.receive(hex(edge.frame))
    assert.equal(event.kind, 'stop')
    assert.equal(event.reason, edge.fields.reason)
    assert.equal(event.budget, edge.fields.budget)
  })
}

for (const rcase of V.refusals) {
  test(`refused: ${rcase.name} (${rcase.rule}: ${rcase.why})`, () => {
    const ch = receiver(rcase.receiver, rcase.start)
    for (const step of rcase.steps) {
      const frame = frameOf(step)
      if (step.result === 'refused') {
        assert.throws(() => ch.receive(frame), (e) => e instanceof protocol.ProtocolError && (step.error !== 'AuthenticationError' || e instanceof protocol.AuthenticationError), `${step.role} must be refused`)
      } else {
        const { event, reply } = ch.receive(frame)
        assert.equal(event === null ? null : event.kind, step.event, `${step.role}: event`)
        if (step.reply !== undefined) assert.equal(reply && reply.toString('hex'), step.reply)
      }
      assert.equal(ch.state, step.state, `${step.role}: state after`)
    }
  })
}

test('the msgpack codec refuses what the spec refuses', () => {
  for (const bad of ['', 'c1', '93', '9301', 'dd ffffffff', '81 01 02', '81 c0 02', 'a2 fffe', '9301a3616263 80 c0']) {
    assert.throws(() => msgpack.decode(hex(bad.replace(/ /g, ''))), msgpack.DecodeError, bad)
  }
  assert.throws(() => msgpack.decode(Buffer.concat([Buffer.alloc(60000, 0x91), Buffer.from([0xc0])])), msgpack.DecodeError)
})

test('no secret in an inspection or JSON of a channel', () => {
  const c = receiver('child', 'established')
  const util = require('node:util')
  for (const text of [util.inspect(c, { showHidden: true, depth: 9 }), JSON.stringify(c)]) {
    for (const s of [hs.secret, hs.kpc, hs.kcp]) assert.ok(!text.includes(s) && !text.includes(hex(s).toString('base64')), text)
  }
})
