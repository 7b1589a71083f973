'use strict'
// The shutdownbus wire protocol, version 1: a sans-IO state machine (docs/protocol.md, sections 4 to 8).
//
// Frames (Buffers) go in, events come out; events go in, frames come out. No I/O here.
// Every check throws ProtocolError (or AuthenticationError); a refused frame changes no state,
// except that a frame with a good tag is counted, and a bad proof resets the parent (5.4).
// The secret never appears in an error message or an inspection of a Channel.

const crypto = require('node:crypto')
const msgpack = require('./msgpack')

const PROTOCOL_VERSION = 1
const MAX_FRAME_SIZE = 64 * 1024
const SECRET_SIZE = 32
const NONCE_SIZE = 32
const TAG_SIZE = 32
const MAX_TEXT_LENGTH = 256
const MAX_BUDGET = 7 * 24 * 3600
const TERM_GRACE = 0.2
const KILL_WAIT = 0.2
const ESCALATION_MARGIN = TERM_GRACE + KILL_WAIT
const LEVEL_SHARE = 0.02
const OUTCOMES = ['stopped', 'terminated', 'killed', 'exited', 'failed', 'lost', 'unchecked']
const ENTRY_FIELDS = ['pid', 'name', 'outcome', 'returncode', 'seconds', 'member']
const OPTIONAL_ENTRY_FIELDS = ['request', 'requested']
const MAX_REQUEST_LENGTH = 32
const LABEL = Buffer.from('shutdownbus/1 ')

class ProtocolError extends Error {
  constructor (message) { super(message); this.name = 'ProtocolError' }
}
class AuthenticationError extends ProtocolError {
  constructor (message) { super(message); this.name = 'AuthenticationError' }
}

const PARENT_SENDS = { accept: [], stop: ['reason', 'budget'], ack: [] }
const CHILD_SENDS = { ready: [], report: ['entries'], farewell: [] }

/** The deadline a member that must be gone by `ownDeadline` gives its children (7.1); times in seconds. */
function childrenDeadline (ownDeadline, now) {
  return ownDeadline - Math.min(ESCALATION_MARGIN, LEVEL_SHARE * Math.max(0, ownDeadline - now))
}

/** By when the escalation of a child whose deadline passed is over (7.4); ownDeadline null: not stopping itself. */
function escalationEnd (deadline, ownDeadline) {
  const end = deadline + ESCALATION_MARGIN
  return ownDeadline === null ? end : Math.max(deadline, Math.min(end, ownDeadline))
}

function hmac (key, ...parts) {
  const h = crypto.createHmac('sha256', key)
  for (const p of parts) h.update(p)
  return h.digest()
}

function equal (a, b) {
  return a.length === b.length && crypto.timingSafeEqual(a, b)
}

function short (value) {
  let text
  try { text = typeof value === 'string' ? JSON.stringify(value) : String(value) } catch { text = '?' }
  return text.length <= 40 ? text : text.slice(0, 37) + '...'
}

function codePoints (s) {
  let n = 0
  for (const _ of s) n++ // eslint-disable-line no-unused-vars
  return n
}

function cut (s) {
  return codePoints(s) <= MAX_TEXT_LENGTH ? s : Array.from(s).slice(0, MAX_TEXT_LENGTH).join('')
}

function isInt (v) {
  return (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint'
}

function numberOf (v) {
  // int or float (msgpack), as a JS number; undefined for anything else.
  if (v instanceof msgpack.Float) return v.value
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return Number(v)
  return undefined
}

function decodeBody (body) {
  let obj
  try { obj = msgpack.decode(body) } catch (e) { throw new ProtocolError(`frame is not valid msgpack (${e.message})`) }
  if (!Array.isArray(obj) || obj.length !== 3) throw new ProtocolError('frame must be a msgpack array [version, kind, fields]')
  const [version, kind, fields] = obj
  if (!isInt(version)) throw new ProtocolError('protocol version must be an integer')
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(`protocol version ${short(version)} is not supported (this side speaks ${PROTOCOL_VERSION}); run the same protocol version in parent and child`)
  }
  if (typeof kind !== 'string' || !(fields instanceof Map)) throw new ProtocolError('message kind must be a string and its fields a map')
  return [kind, fields]
}

function checkFields (kind, fields, names) {
  const keys = [...fields.keys()]
  const ok = keys.length === names.length && keys.every((k) => typeof k === 'string' && names.includes(k))
  if (!ok) throw new ProtocolError(`${short(kind)} message: the fields must be exactly [${names.join(', ')}]`)
  return fields
}

function checkText (kind, name, value) {
  if (typeof value !== 'string' || codePoints(value) > MAX_TEXT_LENGTH) {
    throw new ProtocolError(`${short(kind)} message: '${name}' must be a string of at most ${MAX_TEXT_LENGTH} characters`)
  }
  return value
}

function checkBytes (kind, name, value, size) {
  if (!Buffer.isBuffer(value) || value.length !== size) throw new ProtocolError(`${short(kind)} message: '${name}' must be ${size} bytes`)
  return value
}

function checkPid (kind, value) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value >= 2 ** 32) {
    throw new ProtocolError(`${short(kind)} message: 'pid' must be a positive integer`)
  }
  return value
}

function checkBudget (value) {
  const n = numberOf(value)
  if (n === undefined || !Number.isFinite(n) || n < 0 || n > MAX_BUDGET) {
    throw new ProtocolError(`'stop' message: 'budget' must be a number of seconds in [0, ${MAX_BUDGET}]`)
  }
  return n
}

/** Validate one report entry (a Map from the wire, or a plain object to send); return it as a plain object. */
function checkEntry (entry) {
  const map = entry instanceof Map ? entry : (entry && typeof entry === 'object' ? new Map(Object.entries(entry)) : null)
  if (map === null) throw new ProtocolError("'report' message: each entry must be a map")
  const required = new Map([...map].filter(([k]) => !OPTIONAL_ENTRY_FIELDS.includes(k)))
  checkFields('report', required, ENTRY_FIELDS)
  const e = Object.fromEntries(map)
  const request = e.request === undefined ? null : e.request
  if (request !== null && (typeof request !== 'string' || codePoints(request) < 1 || codePoints(request) > MAX_REQUEST_LENGTH)) {
    throw new ProtocolError(`'report' message: 'request' must be a string of 1 to ${MAX_REQUEST_LENGTH} characters`)
  }
  const requested = e.requested === undefined || e.requested === null ? null : numberOf(e.requested)
  if (requested === undefined || (requested !== null && (!Number.isFinite(requested) || requested < 0))) {
    throw new ProtocolError("'report' message: 'requested' must be a non-negative number or nil")
  }
  checkPid('report', e.pid)
  checkText('report', 'name', e.name)
  if (!OUTCOMES.includes(e.outcome)) throw new ProtocolError(`'report' message: 'outcome' must be one of ${OUTCOMES.join(', ')}`)
  const rc = e.returncode
  if (rc !== null && (!isInt(rc) || rc < -(2 ** 31) || rc >= 2 ** 32)) throw new ProtocolError("'report' message: 'returncode' must be an integer or nil")
  const sec = e.seconds === null ? null : numberOf(e.seconds)
  if (e.seconds !== null && (sec === undefined || !Number.isFinite(sec) || sec < 0)) throw new ProtocolError("'report' message: 'seconds' must be a non-negative number or nil")
  if (typeof e.member !== 'boolean') throw new ProtocolError("'report' message: 'member' must be a boolean")
  const out = { pid: e.pid, name: e.name, outcome: e.outcome, returncode: rc, seconds: sec, member: e.member }
  if (map.has('request')) out.request = request
  if (map.has('requested')) out.requested = requested
  return out
}

function encode (kind, fields) {
  return msgpack.encode([PROTOCOL_VERSION, kind, fields])
}

function knock () {
  return encode('knock', {})
}

const State = Object.freeze({
  AWAIT_HELLO: 'await-hello',
  AWAIT_CHALLENGE: 'await-challenge',
  AWAIT_PROOF: 'await-proof',
  AWAIT_ACCEPT: 'await-accept',
  ESTABLISHED: 'established',
  IDLE: 'idle'
})

const secrets = new WeakMap() // Channel -> its secret and keys: out of reach of inspection and JSON

/**
 * One end of a parent-child channel.
 * @param {'parent'|'child'} role
 * @param {Buffer} secret 32 bytes
 * @param {{pid?: number, name?: string, randomBytes?: (n: number) => Buffer}} [options]
 *   randomBytes: where nonces come from (tests only; default crypto.randomBytes).
 */
class Channel {
  constructor (role, secret, options = {}) {
    if (!Buffer.isBuffer(secret) || secret.length !== SECRET_SIZE) throw new TypeError(`the channel secret must be ${SECRET_SIZE} bytes`)
    if (role !== 'parent' && role !== 'child') throw new TypeError("role must be 'parent' or 'child'")
    const pid = options.pid ?? 0
    if (role === 'child' && !(Number.isInteger(pid) && pid > 0 && pid < 2 ** 32)) throw new TypeError("a child channel needs the child's pid")
    this.role = role
    this.pid = pid
    this.name = cut(options.name ?? '')
    this.state = role === 'parent' ? State.AWAIT_HELLO : State.IDLE
    this.peer = null
    secrets.set(this, {
      secret: Buffer.from(secret),
      random: options.randomBytes ?? crypto.randomBytes,
      nc: null,
      np: null,
      sendKey: null,
      recvKey: null,
      sendSeq: 0n,
      recvSeq: 0n
    })
  }

  get established () { return this.state === State.ESTABLISHED }

  toJSON () { return { role: this.role, state: this.state, pid: this.pid, name: this.name } }
  [Symbol.for('nodejs.util.inspect.custom')] () { return `<Channel ${this.role} ${this.state} pid=${this.pid}>` }

  /** Drop the secret and the keys: every frame fails from now on. */
  forget () {
    const s = secrets.get(this)
    s.secret.fill(0)
    for (const k of ['sendKey', 'recvKey']) if (s[k]) s[k].fill(0)
    s.sendKey = s.recvKey = s.nc = s.np = null
    this.state = State.IDLE
  }

  /** Child only: the hello frame. */
  start () {
    if (this.role !== 'child' || this.state !== State.IDLE) throw new ProtocolError('start() is for a child channel that has not started yet')
    const s = secrets.get(this)
    s.nc = Buffer.from(s.random(NONCE_SIZE))
    this.state = State.AWAIT_CHALLENGE
    return encode('hello', { nonce: s.nc, pid: this.pid, name: this.name })
  }

  /**
   * Encode an established-phase message: {kind:'stop', reason, budget} or {kind:'ack'} from a parent,
   * {kind:'ready'}, {kind:'report', entries} or {kind:'farewell'} from a child.
   */
  send (message) {
    if (!this.established) throw new ProtocolError('the channel is not established yet')
    const kind = message && message.kind
    if (this.role === 'parent' && kind === 'stop') {
      const reason = checkText('stop', 'reason', typeof message.reason === 'string' ? cut(message.reason) : null)
      return this._tagged('stop', { reason, budget: new msgpack.Float(checkBudget(new msgpack.Float(message.budget))) })
    }
    if (this.role === 'parent' && kind === 'ack') return this._tagged('ack', {})
    if (this.role === 'child' && kind === 'ready') return this._tagged('ready', {})
    if (this.role === 'child' && kind === 'farewell') return this._tagged('farewell', {})
    if (this.role === 'child' && kind === 'report') {
      const entries = (message.entries || []).map((e) => {
        const c = checkEntry(e.name && typeof e.name === 'string' ? { ...e, name: cut(e.name) } : e)
        const wire = { ...c, seconds: c.seconds === null ? null : new msgpack.Float(c.seconds) }
        if (typeof c.requested === 'number') wire.requested = new msgpack.Float(c.requested)
        return wire
      })
      return this._tagged('report', { entries })
    }
    throw new ProtocolError(`the ${this.role} side cannot send ${short(kind)}`)
  }

  _tagged (kind, fields) {
    const s = secrets.get(this)
    const body = encode(kind, fields)
    const seq = Buffer.alloc(8)
    seq.writeBigUInt64BE(s.sendSeq)
    s.sendSeq += 1n
    return Buffer.concat([body, hmac(s.sendKey, seq, body)])
  }

  /**
   * Feed one frame from the peer.
   * @returns {{event: object|null, reply: Buffer|null}} event: {kind:'established', peerPid, peerName},
   *   {kind:'stop', reason, budget}, {kind:'ready'}, {kind:'report', entries}, {kind:'ack'}, {kind:'farewell'}.
   * @throws {ProtocolError}
   */
  receive (frame) {
    if (!Buffer.isBuffer(frame)) throw new ProtocolError('a frame must be bytes')
    if (frame.length > MAX_FRAME_SIZE) throw new ProtocolError(`frame of ${frame.length} bytes exceeds the ${MAX_FRAME_SIZE}-byte limit`)
    if (this.state === State.ESTABLISHED || this.state === State.AWAIT_ACCEPT) return { event: this._receiveTagged(frame), reply: null }
    if (this.state === State.IDLE) throw new ProtocolError('unexpected frame in state idle')
    const [kind, fields] = decodeBody(frame)
    if (kind === 'hello' && (this.state === State.AWAIT_HELLO || this.state === State.AWAIT_PROOF)) return this._onHello(fields)
    if (this.state === State.AWAIT_PROOF && kind === 'proof') return this._onProof(fields)
    if (this.state === State.AWAIT_CHALLENGE && kind === 'challenge') return this._onChallenge(fields)
    throw new ProtocolError(`unexpected ${short(kind)} message in state ${this.state}`)
  }

  _onHello (fields) {
    checkFields('hello', fields, ['nonce', 'pid', 'name'])
    const nonce = checkBytes('hello', 'nonce', fields.get('nonce'), NONCE_SIZE)
    const peer = { pid: checkPid('hello', fields.get('pid')), name: checkText('hello', 'name', fields.get('name')) }
    const s = secrets.get(this)
    s.nc = Buffer.from(nonce)
    s.np = Buffer.from(s.random(NONCE_SIZE))
    this.peer = peer
    const proof = hmac(s.secret, LABEL, Buffer.from('parent'), s.nc, s.np)
    this.state = State.AWAIT_PROOF
    return { event: null, reply: encode('challenge', { nonce: s.np, proof }) }
  }

  _onChallenge (fields) {
    checkFields('challenge', fields, ['nonce', 'proof'])
    const nonce = checkBytes('challenge', 'nonce', fields.get('nonce'), NONCE_SIZE)
    const proof = checkBytes('challenge', 'proof', fields.get('proof'), TAG_SIZE)
    const s = secrets.get(this)
    if (!equal(proof, hmac(s.secret, LABEL, Buffer.from('parent'), s.nc, nonce))) {
      throw new AuthenticationError("the parent's challenge failed authentication; ignored it")
    }
    s.np = Buffer.from(nonce)
    this._deriveKeys()
    this.state = State.AWAIT_ACCEPT
    return { event: null, reply: encode('proof', { proof: hmac(s.secret, LABEL, Buffer.from('child'), s.nc, s.np) }) }
  }

  _onProof (fields) {
    const s = secrets.get(this)
    let proof
    try {
      checkFields('proof', fields, ['proof'])
      proof = checkBytes('proof', 'proof', fields.get('proof'), TAG_SIZE)
    } catch (e) {
      this._reset()
      throw e
    }
    if (!equal(proof, hmac(s.secret, LABEL, Buffer.from('child'), s.nc, s.np))) {
      this._reset()
      throw new AuthenticationError('a peer failed to prove it is the spawned child; refused it')
    }
    this._deriveKeys()
    this.state = State.ESTABLISHED
    const peer = this.peer
    return { event: { kind: 'established', peerPid: peer.pid, peerName: peer.name }, reply: this._tagged('accept', {}) }
  }

  _reset () {
    const s = secrets.get(this)
    this.state = State.AWAIT_HELLO
    s.nc = s.np = null
    this.peer = null
  }

  _deriveKeys () {
    const s = secrets.get(this)
    const p2c = hmac(s.secret, LABEL, Buffer.from('p2c'), s.nc, s.np)
    const c2p = hmac(s.secret, LABEL, Buffer.from('c2p'), s.nc, s.np)
    if (this.role === 'parent') { s.sendKey = p2c; s.recvKey = c2p } else { s.sendKey = c2p; s.recvKey = p2c }
    s.sendSeq = s.recvSeq = 0n
  }

  _receiveTagged (frame) {
    if (frame.length <= TAG_SIZE) throw new ProtocolError('frame too short to carry a message and its tag')
    const s = secrets.get(this)
    const body = frame.subarray(0, frame.length - TAG_SIZE)
    const tag = frame.subarray(frame.length - TAG_SIZE)
    const seq = Buffer.alloc(8)
    seq.writeBigUInt64BE(s.recvSeq)
    if (!equal(tag, hmac(s.recvKey, seq, body))) {
      throw new AuthenticationError('a message failed its integrity tag (forged, replayed or reordered); dropped it')
    }
    s.recvSeq += 1n // the peer really sent it: counted even if its content is bad
    const [kind, fields] = decodeBody(body)
    const allowed = this.role === 'child' ? PARENT_SENDS : CHILD_SENDS
    if (!Object.prototype.hasOwnProperty.call(allowed, kind)) {
      throw new ProtocolError(`unexpected ${short(kind)} message from the ${this.role === 'child' ? 'parent' : 'child'}`)
    }
    checkFields(kind, fields, allowed[kind])
    if (this.state === State.AWAIT_ACCEPT) {
      if (kind !== 'accept') throw new ProtocolError(`expected 'accept', got ${short(kind)}`)
      this.state = State.ESTABLISHED
      return { kind: 'established', peerPid: null, peerName: null }
    }
    if (kind === 'stop') return { kind: 'stop', reason: checkText('stop', 'reason', fields.get('reason')), budget: checkBudget(fields.get('budget')) }
    if (kind === 'ack') return { kind: 'ack' }
    if (kind === 'ready') return { kind: 'ready' }
    if (kind === 'farewell') return { kind: 'farewell' }
    if (kind === 'report') {
      const entries = fields.get('entries')
      if (!Array.isArray(entries)) throw new ProtocolError("'report' message: 'entries' must be an array")
      return { kind: 'report', entries: entries.map(checkEntry) }
    }
    throw new ProtocolError(`unexpected ${short(kind)} message once established`)
  }
}

module.exports = {
  PROTOCOL_VERSION,
  MAX_FRAME_SIZE,
  SECRET_SIZE,
  NONCE_SIZE,
  TAG_SIZE,
  MAX_TEXT_LENGTH,
  MAX_BUDGET,
  TERM_GRACE,
  KILL_WAIT,
  ESCALATION_MARGIN,
  LEVEL_SHARE,
  OUTCOMES,
  ENTRY_FIELDS,
  OPTIONAL_ENTRY_FIELDS,
  MAX_REQUEST_LENGTH,
  State,
  Channel,
  ProtocolError,
  AuthenticationError,
  childrenDeadline,
  escalationEnd,
  checkEntry,
  knock,
  hmac
}
