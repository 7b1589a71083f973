'use strict'
// CURVE keys from the per-spawn secret (docs/protocol.md 3.3): HMAC, then X25519, then Z85.

const crypto = require('node:crypto')
const { hmac } = require('./protocol')

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'

function z85encode (data) {
  if (data.length % 4 !== 0) throw new TypeError('z85 needs a multiple of 4 bytes')
  let out = ''
  for (let i = 0; i < data.length; i += 4) {
    let v = data.readUInt32BE(i)
    const chunk = new Array(5)
    for (let j = 4; j >= 0; j--) { chunk[j] = Z85[v % 85]; v = Math.floor(v / 85) }
    out += chunk.join('')
  }
  return out
}

function z85decode (text) {
  if (text.length % 5 !== 0) throw new TypeError('z85 text must be a multiple of 5 characters')
  const out = Buffer.alloc((text.length / 5) * 4)
  for (let i = 0; i < text.length; i += 5) {
    let v = 0
    for (let j = 0; j < 5; j++) {
      const d = Z85.indexOf(text[i + j])
      if (d < 0) throw new TypeError('not z85')
      v = v * 85 + d
    }
    out.writeUInt32BE(v, (i / 5) * 4)
  }
  return out
}

function x25519Public (secretRaw) {
  const key = crypto.createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: secretRaw.toString('base64url'), x: '' },
    format: 'jwk'
  })
  return Buffer.from(crypto.createPublicKey(key).export({ format: 'jwk' }).x, 'base64url')
}

/** Both CURVE key pairs of a channel, raw (32 bytes) and z85 (40 characters). */
function deriveKeys (secret) {
  const serverSecret = hmac(secret, Buffer.from('shutdownbus/1 curve-server'))
  const clientSecret = hmac(secret, Buffer.from('shutdownbus/1 curve-client'))
  const serverPublic = x25519Public(serverSecret)
  const clientPublic = x25519Public(clientSecret)
  return {
    serverSecretRaw: serverSecret,
    serverPublicRaw: serverPublic,
    clientSecretRaw: clientSecret,
    clientPublicRaw: clientPublic,
    serverSecret: z85encode(serverSecret),
    serverPublic: z85encode(serverPublic),
    clientSecret: z85encode(clientSecret),
    clientPublic: z85encode(clientPublic),
    wipe () {
      serverSecret.fill(0)
      clientSecret.fill(0)
      this.serverSecret = this.clientSecret = ''
    },
    [Symbol.for('nodejs.util.inspect.custom')] () { return '<ChannelKeys>' },
    toJSON () { return '<ChannelKeys>' }
  }
}

module.exports = { deriveKeys, z85encode, z85decode, x25519Public }
