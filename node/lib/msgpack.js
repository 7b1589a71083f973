'use strict'
// A strict MessagePack codec, just what shutdownbus protocol v1 needs (docs/protocol.md section 4).
//
// Decoding is strict: one value, no trailing bytes, str must be valid UTF-8, map keys must be str or
// bin, no reserved byte, lengths never beyond the input. Floats decode to `Float` objects so that a
// receiver can tell 1.0 from 1 (a version must be an integer). Integers beyond 2^53 decode to BigInt.

class Float {
  constructor (value) { this.value = value }
}

class Ext {
  constructor (type, data) { this.type = type; this.data = data }
}

/** A map key that was msgpack bin: it never matches a field name. */
class BinKey {
  constructor (bytes) { this.bytes = bytes }
}

class DecodeError extends Error {}

const MAX_DEPTH = 512
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function decode (buf) {
  if (!(buf instanceof Uint8Array)) throw new DecodeError('not bytes')
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let pos = 0
  const need = (n) => {
    if (n > buf.length - pos) throw new DecodeError('truncated')
  }
  const u8 = () => { need(1); return buf[pos++] }
  const u16 = () => { need(2); const v = view.getUint16(pos); pos += 2; return v }
  const u32 = () => { need(4); const v = view.getUint32(pos); pos += 4; return v }
  const bytes = (n) => { need(n); const b = Buffer.from(buf.subarray(pos, pos + n)); pos += n; return b }
  const int64 = (signed) => {
    need(8)
    const v = signed ? view.getBigInt64(pos) : view.getBigUint64(pos)
    pos += 8
    return (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) ? Number(v) : v
  }
  const str = (n) => {
    need(n)
    let s
    try { s = utf8.decode(buf.subarray(pos, pos + n)) } catch { throw new DecodeError('invalid UTF-8') }
    pos += n
    return s
  }
  const array = (n, depth) => {
    if (n > buf.length - pos) throw new DecodeError('array longer than the input')
    const out = new Array(n)
    for (let i = 0; i < n; i++) out[i] = value(depth + 1)
    return out
  }
  const map = (n, depth) => {
    if (n > (buf.length - pos) / 2) throw new DecodeError('map longer than the input')
    const out = new Map()
    for (let i = 0; i < n; i++) {
      const k = value(depth + 1)
      let key
      if (typeof k === 'string') key = k
      else if (Buffer.isBuffer(k)) key = new BinKey(k)
      else throw new DecodeError('map key neither str nor bin')
      out.set(key, value(depth + 1))
    }
    return out
  }
  const value = (depth) => {
    if (depth > MAX_DEPTH) throw new DecodeError('nested too deep')
    const b = u8()
    if (b <= 0x7f) return b
    if (b >= 0xe0) return b - 0x100
    if ((b & 0xf0) === 0x80) return map(b & 0x0f, depth)
    if ((b & 0xf0) === 0x90) return array(b & 0x0f, depth)
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f)
    switch (b) {
      case 0xc0: return null
      case 0xc2: return false
      case 0xc3: return true
      case 0xc4: return bytes(u8())
      case 0xc5: return bytes(u16())
      case 0xc6: return bytes(u32())
      case 0xc7: { const n = u8(); const t = view.getInt8((need(1), pos++)); return new Ext(t, bytes(n)) }
      case 0xc8: { const n = u16(); const t = view.getInt8((need(1), pos++)); return new Ext(t, bytes(n)) }
      case 0xc9: { const n = u32(); const t = view.getInt8((need(1), pos++)); return new Ext(t, bytes(n)) }
      case 0xca: { need(4); const v = view.getFloat32(pos); pos += 4; return new Float(v) }
      case 0xcb: { need(8); const v = view.getFloat64(pos); pos += 8; return new Float(v) }
      case 0xcc: return u8()
      case 0xcd: return u16()
      case 0xce: return u32()
      case 0xcf: return int64(false)
      case 0xd0: { need(1); const v = view.getInt8(pos); pos += 1; return v }
      case 0xd1: { need(2); const v = view.getInt16(pos); pos += 2; return v }
      case 0xd2: { need(4); const v = view.getInt32(pos); pos += 4; return v }
      case 0xd3: return int64(true)
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
        const n = 1 << (b - 0xd4); need(1); const t = view.getInt8(pos); pos += 1; return new Ext(t, bytes(n))
      }
      case 0xd9: return str(u8())
      case 0xda: return str(u16())
      case 0xdb: return str(u32())
      case 0xdc: return array(u16(), depth)
      case 0xdd: return array(u32(), depth)
      case 0xde: return map(u16(), depth)
      case 0xdf: return map(u32(), depth)
      default: throw new DecodeError(`reserved byte 0x${b.toString(16)}`)
    }
  }
  const out = value(0)
  if (pos !== buf.length) throw new DecodeError('trailing bytes')
  return out
}

function encode (value) {
  const parts = []
  const push = (...b) => parts.push(Buffer.from(b))
  const head = (n, fix, fixMax, c8, c16, c32) => {
    if (n <= fixMax && fix !== null) push(fix | n)
    else if (n <= 0xff && c8 !== null) push(c8, n)
    else if (n <= 0xffff) { const b = Buffer.alloc(3); b[0] = c16; b.writeUInt16BE(n, 1); parts.push(b) } else { const b = Buffer.alloc(5); b[0] = c32; b.writeUInt32BE(n, 1); parts.push(b) }
  }
  const int = (v) => {
    if (typeof v === 'bigint') {
      const b = Buffer.alloc(9)
      if (v >= 0n) { b[0] = 0xcf; b.writeBigUInt64BE(v, 1) } else { b[0] = 0xd3; b.writeBigInt64BE(v, 1) }
      parts.push(b)
      return
    }
    if (v >= 0) {
      if (v <= 0x7f) push(v)
      else if (v <= 0xff) push(0xcc, v)
      else if (v <= 0xffff) { const b = Buffer.alloc(3); b[0] = 0xcd; b.writeUInt16BE(v, 1); parts.push(b) } else if (v <= 0xffffffff) { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(v, 1); parts.push(b) } else int(BigInt(v))
    } else {
      if (v >= -32) push(v & 0xff)
      else if (v >= -0x80) push(0xd0, v & 0xff)
      else if (v >= -0x8000) { const b = Buffer.alloc(3); b[0] = 0xd1; b.writeInt16BE(v, 1); parts.push(b) } else if (v >= -0x80000000) { const b = Buffer.alloc(5); b[0] = 0xd2; b.writeInt32BE(v, 1); parts.push(b) } else int(BigInt(v))
    }
  }
  const enc = (v) => {
    if (v === null || v === undefined) push(0xc0)
    else if (v === true) push(0xc3)
    else if (v === false) push(0xc2)
    else if (v instanceof Float) { const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(v.value, 1); parts.push(b) } else if (typeof v === 'bigint') int(v)
    else if (typeof v === 'number') {
      if (Number.isInteger(v)) int(v)
      else { const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(v, 1); parts.push(b) }
    } else if (typeof v === 'string') {
      const b = Buffer.from(v, 'utf8'); head(b.length, 0xa0, 31, 0xd9, 0xda, 0xdb); parts.push(b)
    } else if (v instanceof Uint8Array) {
      head(v.length, null, -1, 0xc4, 0xc5, 0xc6); parts.push(Buffer.from(v))
    } else if (Array.isArray(v)) {
      head(v.length, 0x90, 15, null, 0xdc, 0xdd); v.forEach(enc)
    } else if (v instanceof Map) {
      head(v.size, 0x80, 15, null, 0xde, 0xdf); for (const [k, x] of v) { enc(k); enc(x) }
    } else if (typeof v === 'object') {
      const keys = Object.keys(v); head(keys.length, 0x80, 15, null, 0xde, 0xdf); for (const k of keys) { enc(k); enc(v[k]) }
    } else throw new TypeError(`cannot encode ${typeof v}`)
  }
  enc(value)
  return Buffer.concat(parts)
}

module.exports = { encode, decode, Float, Ext, BinKey, DecodeError }
