'use strict'
// shutdownbus for Node.js: a member of a shutdownbus tree (docs/protocol.md), and a parent of its own children.
//
//   const shutdownbus = require('shutdownbus')
//   const member = await shutdownbus.join({ name: 'web' })   // null when not spawned on a channel
//   member.on('stop', async ({ reason, budget }) => { await cleanup(); member.exit(0) })
//   // or: member.signal (an AbortSignal, aborted on the stop), or await member.stopped
//   const child = await shutdownbus.spawn('python3', ['worker.py'])  // joins this process's bus in turn
//   await child.ready
//   member.ready()
//
// Rules of this module:
// * One member per process (`join` a second time returns the same one); one link per spawned child.
// * A stop is acted on once: forwarded to every child at once, keeping a share of the time (7.1), then the
//   'stop' event and the AbortSignal. With no 'stop' listener the member runs its exit path and exits 0.
// * The parent's end closing (a monitor event) is a stop with reason 'parent-lost' (7.6).
// * A bad frame is dropped with one warning per kind of error; it never ends a channel.
// * Secrets stay in the channel objects: never in an error, a log line, or an inspection.

const childProcess = require('node:child_process')
const { EventEmitter } = require('node:events')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const zmq = require('zeromq')
const protocol = require('./protocol')
const { deriveKeys } = require('./curve')

const ENV_ENDPOINT = 'SHUTDOWNBUS_ENDPOINT'
const ENV_SECRET = 'SHUTDOWNBUS_SECRET'
const ENV_STOP_TIMEOUT = 'SHUTDOWNBUS_STOP_TIMEOUT'
// Set by join to the endpoint it joined, so what the member starts by other
// means carries it (protocol 2.6); a spawn removes it from its child's env.
const ENV_BELOW = 'SHUTDOWNBUS_BELOW'
const ENV_TRANSPORT = 'SHUTDOWNBUS_TRANSPORT'
const ENV_RUNTIME_DIR = 'SHUTDOWNBUS_RUNTIME_DIR'
const DEFAULT_STOP_TIMEOUT = 10.0
const ACK_WAIT = 1.0
const JOIN_GRACE = process.platform === 'win32' ? 3.0 : 1.0
const HANDSHAKE_IVL_MS = 1000
const CURVE_OVERHEAD = 64
const REPORT_CHUNK = 48
const MAX_REPORTED = 20000
const ZAP_ENDPOINT = 'inproc://zeromq.zap.01'
// How long a SIGTERM waits to tell the parent-death signal from a polite request (well within TERM_GRACE).
const PARENT_DEATH_WINDOW_MS = 50

class ShutdownbusError extends Error {
  constructor (message) { super(message); this.name = 'ShutdownbusError' }
}

const now = () => performance.now() / 1000
const warned = new Set()
function warnOnce (key, message) {
  if (warned.has(key)) return
  warned.add(key)
  process.emitWarning(message, { code: 'SHUTDOWNBUS' })
}

/** Sends one frame at a time (zeromq.js allows one send in flight); a frame no peer takes is dropped (3.6). */
function sender (sock) {
  let chain = Promise.resolve()
  return (frame) => {
    const sent = chain.then(() => sock.send(frame)).then(() => true, (err) => {
      if (err && err.code !== 'EAGAIN' && !sock.closed) warnOnce(`send:${err.code}`, `shutdownbus: could not send a control message (${err.message})`)
      return false
    })
    chain = sent
    return sent
  }
}

async function receiveLoop (sock, onFrame) {
  try {
    for await (const [frame] of sock) onFrame(frame)
  } catch (err) {
    if (!sock.closed) warnOnce(`recv:${err.code}`, `shutdownbus: the channel failed (${err.message})`)
  }
}

// -- the parent side: this process's children ------------------------------------------------

class Bus {
  constructor () {
    this.zap = new zmq.Reply({ linger: 0 })
    this.allowed = new Map()
    this.domains = 0
    this.runtime = null
    this.count = 0
    this.links = new Set()
    // Bound before the first CURVE server socket, or libzmq would admit every client.
    this.bound = this.zap.bind(ZAP_ENDPOINT).then(() => { this.serveZap() })
  }

  async serveZap () {
    try {
      for await (const request of this.zap) {
        const ok = request.length === 7 && request[0].toString() === '1.0' && request[5].toString() === 'CURVE' &&
          this.allowed.has(request[2].toString('latin1')) &&
          request[6].length === 32 && require('node:crypto').timingSafeEqual(this.allowed.get(request[2].toString('latin1')), request[6])
        const status = ok ? ['200', 'OK'] : ['400', 'not the spawned child']
        await this.zap.send(['1.0', request[1] || '', ...status, '', ''])
      }
    } catch (err) {
      if (!this.zap.closed) warnOnce('zap', `shutdownbus: the ZAP handler failed (${err.message})`)
    }
  }

  useTcp () {
    const choice = (process.env[ENV_TRANSPORT] || '').trim().toLowerCase()
    if (!['', 'ipc', 'tcp'].includes(choice)) throw new ShutdownbusError(`${ENV_TRANSPORT} must be 'ipc' or 'tcp', not ${JSON.stringify(choice)}`)
    return choice === 'tcp' || process.platform === 'win32' || !zmq.capability.ipc
  }

  nextEndpoint () {
    const base = process.env[ENV_RUNTIME_DIR] || process.env.XDG_RUNTIME_DIR || os.tmpdir()
    if (this.runtime === null || this.runtimeBase !== base || !fs.existsSync(this.runtime)) {
      try {
        this.runtime = fs.mkdtempSync(path.join(base, 'sb-'))
      } catch (err) {
        throw new ShutdownbusError(`cannot create a runtime directory under ${JSON.stringify(base)} (${err.code}); set ${ENV_RUNTIME_DIR} to a writable directory`)
      }
      fs.chmodSync(this.runtime, 0o700)
      this.runtimeBase = base
    }
    const p = path.join(this.runtime, String(++this.count))
    if (Buffer.byteLength(p) > 100) throw new ShutdownbusError(`the ipc socket path ${JSON.stringify(p)} is too long; set ${ENV_RUNTIME_DIR} to a shorter directory or ${ENV_TRANSPORT}=tcp`)
    return 'ipc://' + p
  }

  close () {
    for (const link of this.links) link.close()
    this.zap.close()
    if (this.runtime) fs.rmSync(this.runtime, { recursive: true, force: true })
  }
}

let theBus = null
function bus () {
  if (theBus === null) theBus = new Bus()
  return theBus
}

/**
 * A child started with `spawn`, on its own channel.
 * Properties: pid, name, process (the ChildProcess), joined, ready (a Promise), exited (a Promise of
 * {code, signal}), entries (what its reports said, with its own entry first once its stop is done).
 */
class Child extends EventEmitter {
  constructor (command, args, options) {
    super()
    const b = bus()
    const secret = require('node:crypto').randomBytes(protocol.SECRET_SIZE)
    this.keys = deriveKeys(secret)
    this.domain = `sb${++b.domains}`
    this.stopTimeout = options.stopTimeout ?? DEFAULT_STOP_TIMEOUT
    this.sock = new zmq.Pair({
      linger: 0,
      maxMessageSize: protocol.MAX_FRAME_SIZE + CURVE_OVERHEAD,
      handshakeInterval: HANDSHAKE_IVL_MS,
      curveServer: true,
      curveSecretKey: this.keys.serverSecret,
      curvePublicKey: this.keys.serverPublic,
      zapDomain: this.domain,
      sendTimeout: 0
    })
    b.allowed.set(this.domain, this.keys.clientPublicRaw)
    b.links.add(this)
    this.endpoint = b.useTcp() ? 'tcp://127.0.0.1:*' : b.nextEndpoint()
    this.channel = new protocol.Channel('parent', secret)
    this.send = sender(this.sock)
    this.joined = false
    this.entries = []
    this.stopReason = null
    this.stopDeadline = null
    this.stopRequestedAt = null
    this.stopSentAt = null
    this.escalated = null
    this.request = null // how we asked it to go (6.5), and when
    this.requestedAt = null
    this.outcome = null
    this.closed = false
    let readyResolve, readyReject
    this.ready = new Promise((resolve, reject) => { readyResolve = resolve; readyReject = reject })
    this.ready.catch(() => {})
    this.readyResolve = readyResolve
    this.readyReject = readyReject
    this.started = this._start(command, args, options, secret)
  }

  async _start (command, args, options, secret) {
    try {
      await bus().bound
      await this.sock.bind(this.endpoint)
    } catch (err) {
      this.close()
      secret.fill(0)
      throw new ShutdownbusError(`cannot bind a control channel (${err.message}); check ${ENV_RUNTIME_DIR} or try ${ENV_TRANSPORT}=tcp`)
    }
    if (this.endpoint.endsWith(':*')) this.endpoint = this.sock.lastEndpoint
    const env = { ...(options.env ?? process.env) }
    env[ENV_ENDPOINT] = this.endpoint
    env[ENV_SECRET] = secret.toString('hex')
    env[ENV_STOP_TIMEOUT] = String(Number(this.stopTimeout).toFixed(3))
    delete env[ENV_BELOW] // it carries its own endpoint
    secret.fill(0)
    const { stopTimeout, name, env: _e, ...spawnOptions } = options
    this.process = childProcess.spawn(command, args, { stdio: 'inherit', ...spawnOptions, env })
    this.pid = this.process.pid
    this.name = name || path.basename(String(command))
    this.spawnedAt = now()
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.exitedAt = now()
        this.exitStatus = { code, signal }
        resolve(this.exitStatus)
      })
      this.process.once('error', (err) => {
        this.exitedAt = now()
        this.exitStatus = { code: null, signal: null, error: err }
        resolve(this.exitStatus)
      })
    })
    this.exited.then(() => {
      this.readyReject(new ShutdownbusError(`${this.name} exited before it was ready`))
      this.close()
      this.emit('exit', this.exitStatus)
    })
    receiveLoop(this.sock, (frame) => this._onFrame(frame))
  }

  _onFrame (frame) {
    let result
    try {
      result = this.channel.receive(frame)
    } catch (err) {
      warnOnce(`child:${err.name}`, `shutdownbus: dropped a frame from the child: ${err.message}`)
      return
    }
    if (result.reply) this.send(result.reply)
    const event = result.event
    if (!event) return
    if (event.kind === 'established') {
      this.joined = true
      this.memberPid = event.peerPid
      this.memberName = event.peerName
      if (this.endpoint.startsWith('ipc://')) fs.rmSync(this.endpoint.slice(6), { force: true })
      if (this.stopDeadline !== null) this._sendStop()
    } else if (event.kind === 'ready') {
      this.readyResolve(this)
    } else if (event.kind === 'report') {
      if (this.stopRequestedAt === null || this.entries.length >= MAX_REPORTED) {
        warnOnce('report', 'shutdownbus: dropped a report a child sent unasked or past the limit')
      } else {
        const shift = this.stopSentAt !== null ? this.stopSentAt - this.stopRequestedAt : 0
        const ours = event.entries.filter((e) => this._mayBeIn(e.pid))
        if (ours.length < event.entries.length) warnOnce('outside', 'shutdownbus: dropped report entries for processes outside the child\'s subtree')
        for (const e of ours.slice(0, MAX_REPORTED - this.entries.length)) {
          const shifted = { ...e, seconds: e.seconds === null ? null : e.seconds + shift }
          if (typeof e.requested === 'number') shifted.requested = e.requested + shift
          this.entries.push(shifted)
        }
      }
      if (this.channel.established) this.send(this.channel.send({ kind: 'ack' }))
    }
  }

  /** Whether a reported pid may be of this child's subtree (6.5): seen in it, or gone; never one running elsewhere. */
  _mayBeIn (pid) {
    if (pid === this.pid || (this.subtree && this.subtree.has(pid))) return true
    if (pid === process.pid) return false
    try {
      process.kill(pid, 0)
      return false // it runs, and not in the subtree we saw
    } catch (err) {
      return err.code !== 'EPERM'
    }
  }

  _sendStop () {
    const budget = Math.min(protocol.MAX_BUDGET, Math.max(0, this.stopDeadline - now()))
    const sentAt = now()
    this.send(this.channel.send({ kind: 'stop', reason: this.stopReason, budget })).then((ok) => {
      if (ok) {
        this.stopSentAt = sentAt
        if (this.request === null) { this.request = 'stop'; this.requestedAt = sentAt }
      }
    })
  }

  /**
   * Stop this child's tree: the stop on the channel, then the OS at the deadline (7.4).
   * @param {{reason?: string, timeout?: number, deadline?: number}} [options] timeout in seconds
   * @returns {Promise<object[]>} report entries: this child's own first, then what it reported.
   */
  stop (options = {}) {
    const deadline = options.deadline ?? now() + (options.timeout ?? this.stopTimeout)
    if (this.stopDeadline !== null) {
      this.stopDeadline = Math.min(this.stopDeadline, deadline)
      return this.done
    }
    this.stopReason = options.reason ?? 'stop'
    this.stopDeadline = deadline
    this.stopRequestedAt = now()
    this.subtree = process.platform === 'win32' ? null : new Set(descendants(this.pid)) // what its reports may name
    this.done = this._stop()
    return this.done
  }

  async _stop () {
    await this.started
    const wasRunning = this.exitStatus === undefined
    if (wasRunning) {
      if (this.channel.established) this._sendStop()
      const graceEnd = Math.min(this.spawnedAt + JOIN_GRACE, this.stopRequestedAt + (this.stopDeadline - this.stopRequestedAt) / 2)
      let timer
      const joinedOrGrace = new Promise((resolve) => { timer = setTimeout(resolve, Math.max(0, graceEnd - now()) * 1000) })
      await Promise.race([this.exited, joinedOrGrace])
      clearTimeout(timer)
      if (this.exitStatus === undefined && !this.joined) { // not a member: the OS request (7.2)
        this.request = 'SIGTERM'
        this.requestedAt = now()
        this._kill('SIGTERM')
      }
      await this._until(this.stopDeadline)
      // Over by escalationEnd: no later than our own deadline when we stop too (graces cut in proportion, 7.4).
      const span = protocol.escalationEnd(this.stopDeadline, member && member.stopDeadline !== null ? member.stopDeadline : null) - this.stopDeadline
      if (this.exitStatus === undefined) {
        this.escalated = 'terminated'
        this._kill('SIGTERM')
        await this._until(now() + span * protocol.TERM_GRACE / protocol.ESCALATION_MARGIN)
      }
      if (this.exitStatus === undefined) {
        this.escalated = 'killed'
        this._kill('SIGKILL')
        await this._until(now() + span * protocol.KILL_WAIT / protocol.ESCALATION_MARGIN)
      }
    }
    await this.exited
    const { code, signal } = this.exitStatus
    const returncode = code !== null ? code : (signal ? -(os.constants.signals[signal] || 0) : null)
    let outcome
    if (!wasRunning) outcome = 'exited'
    else if (this.escalated) outcome = this.escalated
    else if (code === 0 || signal === 'SIGINT' || (signal === 'SIGTERM' && !this.joined)) outcome = 'stopped'
    else outcome = 'failed'
    const own = {
      pid: this.pid,
      name: protocol.checkEntry({ pid: 1, name: String(this.name).slice(0, 256), outcome: 'stopped', returncode: null, seconds: null, member: false }).name,
      outcome,
      returncode: returncode !== null && returncode >= -(2 ** 31) && returncode < 2 ** 32 ? returncode : null,
      seconds: wasRunning ? Math.max(0, this.exitedAt - this.stopRequestedAt) : null,
      member: this.joined
    }
    if (wasRunning && this.request !== null) {
      own.request = this.request
      own.requested = Math.max(0, this.requestedAt - this.stopRequestedAt)
    }
    return [own, ...this.entries]
  }

  _until (deadline) {
    if (this.exitStatus !== undefined) return Promise.resolve()
    let timer
    return Promise.race([
      this.exited,
      new Promise((resolve) => { timer = setTimeout(resolve, Math.max(0, deadline - now()) * 1000) })
    ]).finally(() => clearTimeout(timer))
  }

  _kill (sig) {
    // The child and its descendants, deepest first (7.4); Windows: taskkill's tree kill.
    if (process.platform === 'win32') {
      try { childProcess.execFileSync('taskkill', ['/T', '/F', '/PID', String(this.pid)], { stdio: 'ignore' }) } catch {}
      return
    }
    for (const pid of [...descendants(this.pid).reverse(), this.pid]) {
      try { process.kill(pid, sig) } catch {}
    }
  }

  close () {
    if (this.closed) return
    this.closed = true
    if (theBus) { theBus.allowed.delete(this.domain); theBus.links.delete(this) }
    this.sock.close()
    if (this.endpoint.startsWith('ipc://')) fs.rmSync(this.endpoint.slice(6), { force: true })
    this.channel.forget()
    this.keys.wipe()
  }

  [Symbol.for('nodejs.util.inspect.custom')] () { return `<Child ${this.name} pid=${this.pid} joined=${this.joined}>` }
}

/** The children of ``pid`` from Linux's /proc (its threads' lists), or null where /proc does not list them. */
function childrenFromProc (pid) {
  try {
    const out = []
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      for (const word of fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(/\s+/)) {
        if (word) out.push(Number(word))
      }
    }
    return out
  } catch {
    return null
  }
}

/**
 * The descendants of ``pid``, parents before children: from /proc on Linux (starting no process: a ``ps`` of
 * our own would be a child of ours, and show up in our parent's report), else from ps.
 */
function descendants (pid) {
  if (childrenFromProc(process.pid) !== null) {
    const out = []
    const queue = [pid]
    while (queue.length) {
      for (const c of childrenFromProc(queue.shift()) || []) { out.push(c); queue.push(c) }
    }
    return out
  }
  let table
  try {
    table = childProcess.execFileSync('ps', ['-A', '-o', 'pid=,ppid='], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return []
  }
  const children = new Map()
  for (const line of table.split('\n')) {
    const [p, pp] = line.trim().split(/\s+/).map(Number)
    if (!Number.isInteger(p) || !Number.isInteger(pp)) continue
    if (!children.has(pp)) children.set(pp, [])
    children.get(pp).push(p)
  }
  const out = []
  const queue = [pid]
  while (queue.length) {
    for (const c of children.get(queue.shift()) || []) { out.push(c); queue.push(c) }
  }
  return out
}

/**
 * Start a child on this process's bus, as child_process.spawn does (same arguments), with the channel
 * in its environment (2.1). Its stdio is inherited unless options.stdio says otherwise.
 * Asynchronous because the channel's socket is bound first.
 * @param {string} command
 * @param {string[]} [args]
 * @param {object} [options] child_process.spawn options, plus stopTimeout (seconds) and name.
 * @returns {Promise<Child>}
 */
async function spawn (command, args = [], options = {}) {
  const child = new Child(command, args, options)
  await child.started
  if (member && member.stopDeadline !== null) {
    // Spawned while this process stops: its stop at once, queued until it joins (7.1).
    child.stop({ reason: member.stopReason, deadline: member.childrenDeadline })
  }
  return child
}

// -- the child side: this process's place in its parent's tree --------------------------------

let member = null

/**
 * This process's membership of its parent's tree. Events: 'stop' ({reason, budget, deadline}).
 * Properties: signal (an AbortSignal aborted by the stop; its reason is {reason, budget}),
 * stopped (a Promise of the same), stopReason, stopDeadline (performance.now() seconds), pid, name.
 */
class Member extends EventEmitter {
  constructor (name, stopTimeout) {
    super()
    this.name = name
    this.pid = process.pid
    this.stopTimeout = stopTimeout
    this.stopReason = null
    this.stopDeadline = null
    this.lost = false
    this.unacked = 0
    this.exiting = false
    this.controller = new AbortController()
    this.signal = this.controller.signal
    this.stopped = new Promise((resolve) => this.once('_stopped', resolve))
  }

  /** Tell the parent this process is ready (6.4). Returns false when it cannot be sent. */
  ready () {
    if (!this.channel.established || this.lost) return false
    this.send(this.channel.send({ kind: 'ready' }))
    return true
  }

  _onFrame (frame) {
    let result
    try {
      result = this.channel.receive(frame)
    } catch (err) {
      warnOnce(`parent:${err.name}`, `shutdownbus: dropped a frame from the parent: ${err.message}`)
      return
    }
    if (result.reply) this.send(result.reply)
    const event = result.event
    if (!event) return
    if (event.kind === 'established') this.emit('_joined')
    else if (event.kind === 'stop') this._onStop(event.reason, event.budget)
    else if (event.kind === 'ack') {
      this.unacked = Math.max(0, this.unacked - 1)
      if (this.unacked === 0) this.emit('_acked')
    }
  }

  _onParentLost () {
    if (this.lost) return
    this.lost = true
    this.emit('_acked')
    if (!this.channel.established) return
    warnOnce('lost', "shutdownbus: the parent is gone; stopping this process's tree (reason 'parent-lost')")
    this._onStop('parent-lost', this.stopTimeout)
  }

  _onStop (reason, budget) {
    if (this.stopReason !== null) return // the first stop only (7.3)
    const arrival = now()
    this.stopReason = reason
    this.stopDeadline = arrival + budget
    this.childrenDeadline = protocol.childrenDeadline(this.stopDeadline, arrival)
    const childDeadline = this.childrenDeadline
    const children = theBus ? [...theBus.links] : []
    const stops = children.map((c) => c.stop({ reason, deadline: childDeadline }))
    if (stops.length) {
      // One report for the children stopped together, as soon as they are done (7.5).
      this.reporting = Promise.all(stops).then((lists) => this._report(lists.flat()))
    }
    const info = { reason, budget, deadline: this.stopDeadline }
    this.controller.abort(info)
    this.emit('_stopped', info)
    if (this.listenerCount('stop') === 0) this.exit(0)
    else this.emit('stop', info)
  }

  _report (entries) {
    if (!this.channel.established || this.lost || entries.length === 0) return
    for (let i = 0; i < entries.length; i += REPORT_CHUNK) {
      let frame
      try {
        frame = this.channel.send({ kind: 'report', entries: entries.slice(i, i + REPORT_CHUNK) })
      } catch (err) {
        warnOnce('report-entry', `shutdownbus: could not send a report (${err.message})`)
        return
      }
      this.unacked++
      this.send(frame).then((ok) => {
        if (!ok) { this.unacked = Math.max(0, this.unacked - 1); if (this.unacked === 0) this.emit('_acked') }
      })
    }
  }

  /**
   * The exit path (7.5): stop the children still running, send what is left to report, wait (bounded)
   * for the parent's acks, close the channel, and exit with `code`.
   */
  async exit (code = 0) {
    if (this.exiting) return
    this.exiting = true
    const reason = this.stopReason ?? 'parent-exit'
    const running = theBus ? [...theBus.links].filter((c) => c.stopDeadline === null) : []
    const late = running.map((c) => c.stop({ reason, deadline: this.stopDeadline !== null ? this.childrenDeadline : undefined }))
    if (this.reporting) await this.reporting
    if (late.length) {
      const entries = (await Promise.all(late)).flat()
      if (this.stopReason !== null) this._report(entries)
    }
    if (this.stopDeadline !== null && this.unacked > 0 && !this.lost) {
      const left = this.stopDeadline - now()
      let timer
      await Promise.race([
        new Promise((resolve) => this.once('_acked', resolve)),
        new Promise((resolve) => { timer = setTimeout(resolve, Math.min(ACK_WAIT, Math.max(left, 0.1)) * 1000) })
      ])
      clearTimeout(timer)
    }
    this.close()
    if (theBus) theBus.close()
    process.exit(code)
  }

  close () {
    if (this.sock.closed) return
    this.sock.close()
    this.channel.forget()
    this.keys.wipe()
  }

  [Symbol.for('nodejs.util.inspect.custom')] () { return `<Member ${this.name} pid=${this.pid} stop=${this.stopReason}>` }
}

function parseTimeout (text) {
  const value = Number(text)
  return text && Number.isFinite(value) && value > 0 ? value : DEFAULT_STOP_TIMEOUT
}

/**
 * Join the channel of the parent that spawned this process (2.3, 5).
 * @param {{name?: string, timeout?: number}} [options] timeout: seconds to wait for the handshake (30).
 * @returns {Promise<Member|null>} null when this process was not spawned on a channel.
 * @throws {ShutdownbusError} spawned on a channel, but it cannot be joined.
 */
async function join (options = {}) {
  if (member) return member
  const env = process.env
  const endpoint = env[ENV_ENDPOINT]
  const encoded = env[ENV_SECRET]
  const stopTimeout = env[ENV_STOP_TIMEOUT]
  delete env[ENV_ENDPOINT]
  delete env[ENV_SECRET]
  delete env[ENV_STOP_TIMEOUT]
  if (endpoint === undefined && encoded === undefined) return null
  if (!endpoint || !encoded) throw new ShutdownbusError('only part of the shutdownbus variables are set; start this process with a shutdownbus spawn')
  const secret = /^[0-9a-fA-F]{64}$/.test(encoded) ? Buffer.from(encoded, 'hex') : null
  if (secret === null) throw new ShutdownbusError(`${ENV_SECRET} does not hold a valid secret; start this process with a shutdownbus spawn and do not set the variable by hand`)
  if (!endpoint.startsWith('ipc://') && !endpoint.startsWith('tcp://')) throw new ShutdownbusError(`${ENV_ENDPOINT} is not a shutdownbus endpoint; start this process with a shutdownbus spawn`)
  env[ENV_BELOW] = endpoint // what we start by other means is told by it, should we be killed
  const name = String(options.name ?? path.basename(process.argv[1] || process.argv0 || 'node')).slice(0, 256)
  const m = new Member(name, parseTimeout(stopTimeout))
  m.keys = deriveKeys(secret)
  m.channel = new protocol.Channel('child', secret, { pid: process.pid, name })
  secret.fill(0)
  m.sock = new zmq.Pair({
    linger: 0,
    maxMessageSize: protocol.MAX_FRAME_SIZE + CURVE_OVERHEAD,
    reconnectInterval: -1,
    curveServerKey: m.keys.serverPublic,
    curvePublicKey: m.keys.clientPublic,
    curveSecretKey: m.keys.clientSecret,
    sendTimeout: 0
  })
  m.send = sender(m.sock)
  let failure = null
  const failed = new Promise((resolve) => {
    const events = m.sock.events // attached before connecting: no event is missed
    events.on('disconnect', () => { failure = failure || "the parent's end of the channel closed"; m._onParentLost(); resolve() })
    events.on('close', () => { if (!m.sock.closed) { failure = failure || "the parent's end of the channel closed"; m._onParentLost(); resolve() } })
    for (const type of ['handshake:error:auth', 'handshake:error:protocol', 'handshake:error:other']) {
      events.on(type, () => { failure = "the parent refused this process's credentials"; resolve() })
    }
  })
  try {
    m.sock.connect(endpoint)
  } catch (err) {
    m.close()
    throw new ShutdownbusError(`cannot connect to the parent's channel (${err.message})`)
  }
  receiveLoop(m.sock, (frame) => m._onFrame(frame))
  m.send(m.channel.start())
  const timeout = (options.timeout ?? 30) * 1000
  let timer
  const joined = new Promise((resolve) => m.once('_joined', resolve))
  await Promise.race([joined, failed, new Promise((resolve) => { timer = setTimeout(resolve, timeout) })])
  clearTimeout(timer)
  if (!m.channel.established) {
    m.close()
    throw new ShutdownbusError(`could not join the parent's shutdownbus channel: ${failure || `no answer from the parent within ${timeout / 1000} s`}`)
  }
  watchParentDeathSignal(m)
  member = m
  return m
}

/**
 * A parent on Linux starts its children with a parent-death signal (PR_SET_PDEATHSIG, its polite request,
 * SIGTERM by default: protocol 2.5). A member must not die of it, and Node cannot clear it (no prctl): a
 * SIGTERM after which the parent is gone (the parent pid changes, or the channel closes, within
 * PARENT_DEATH_WINDOW_MS) is the loss of the parent (7.6). Any other SIGTERM keeps its default action (that
 * late), unless the program listens for SIGTERM itself.
 */
function watchParentDeathSignal (m) {
  if (process.platform !== 'linux') return
  const parent = process.ppid
  const onTerm = () => {
    // The kernel sends the signal when the thread that spawned us exits, which can be a moment before the rest
    // of a dying parent (our parent pid then changes only when its last thread is gone): look again for a while.
    const since = Date.now()
    const check = () => {
      if (m.lost || process.ppid !== parent) {
        m._onParentLost()
        return
      }
      if (Date.now() - since < PARENT_DEATH_WINDOW_MS) {
        setTimeout(check, 5)
        return
      }
      process.removeListener('SIGTERM', onTerm)
      if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM')
    }
    check()
  }
  process.on('SIGTERM', onTerm)
}

/**
 * Close this process's bus: its channels to its children (which then stop on their own, 'parent-lost') and the
 * ZAP handler, so that a process that is not a member can end when its work is done. A member calls exit() instead.
 */
function close () {
  if (theBus !== null) {
    theBus.close()
    theBus = null
  }
}

module.exports = { join, spawn, close, Member, Child, ShutdownbusError, protocol, DEFAULT_STOP_TIMEOUT }
