#!/usr/bin/env node
'use strict'
// The Node.js member program of the conformance contract (docs/conformance.md): join; with
// SHUTDOWNBUS_CONFORMANCE_CHILD=N (N > 0) spawn one child of itself, which gets N - 1; ready; on the stop log
// "PID stop BUDGET REASON", clean up, log "PID cleanup", exit 0.
// With --child CMD ARGS..., the child is CMD ARGS instead of this program (mixed trees in the tests).
// Ctrl-C (SIGINT) logs "PID interrupted", then the cleanup, and exits 0.

const fs = require('node:fs')
const shutdownbus = require('..')

function log (line) {
  const file = process.env.SHUTDOWNBUS_CONFORMANCE_EVENTS
  if (!file) return
  const fd = fs.openSync(file, 'a', 0o600)
  try { fs.writeSync(fd, `${process.pid} ${line}\n`) } finally { fs.closeSync(fd) }
}

async function main () {
  let member
  try {
    member = await shutdownbus.join({ name: 'conformance-member' })
  } catch (err) {
    console.error(`conformance member: ${err.message}`)
    process.exit(2)
  }
  if (member === null) {
    console.error('conformance member: not started on a channel (run it under python -m shutdownbus.conformance)')
    process.exit(2)
  }
  let cleaned = false
  const cleanup = () => {
    if (cleaned) return
    cleaned = true
    log('cleanup')
    member.exit(0)
  }
  process.on('SIGINT', () => { // Ctrl-C in a terminal: it reaches every process natively
    log('interrupted')
    cleanup()
  })
  member.on('stop', ({ reason, budget }) => {
    log(`stop ${budget.toFixed(3)} ${reason}`)
    cleanup()
  })
  const depth = Number(process.env.SHUTDOWNBUS_CONFORMANCE_CHILD || '0')
  if (Number.isInteger(depth) && depth > 0) {
    const i = process.argv.indexOf('--child')
    const [cmd, ...args] = i >= 0 ? process.argv.slice(i + 1) : [process.execPath, __filename]
    const env = { ...process.env, SHUTDOWNBUS_CONFORMANCE_CHILD: String(depth - 1) }
    const child = await shutdownbus.spawn(cmd, args, { env, name: 'conformance-child' })
    await child.ready
    log(`spawned ${child.pid}`)
  }
  member.ready()
}

main().catch((err) => {
  console.error(`conformance member: ${err.message}`)
  process.exit(1)
})
