/**
 * Request decoding with the semantics of Go's `encoding/json`
 * `Decoder` + `DisallowUnknownFields()` + one `Decode` into a struct
 * (auth-service.md §1.1). `JSON.parse` and `Schema` cannot express these
 * rules, hence the small hand-written scanner:
 *
 * - only the first JSON value is read; bytes after it are never looked at;
 * - empty input, a syntax error anywhere in that value, an unknown key at any
 *   depth, or a JSON type that does not fit the field ⇒ failure;
 * - object keys match field names exactly or else case-insensitively (Go's
 *   fold: simple upper(lower(c)) per code point), and the last duplicate wins;
 *   a repeated struct-valued key merges into the struct decoded so far;
 * - `null` for any field (or the whole body) is a no-op: the field keeps its
 *   current (zero) value;
 * - integers accept only integer literals within int64 (`8000.5`, `8e3`,
 *   `"8000"` all fail).
 */
import { Either } from "effect"

// ---------------------------------------------------------------------------
// Scanner: first JSON value only, Go's grammar

type Value =
  | { readonly _tag: "object"; readonly entries: ReadonlyArray<readonly [string, Value]> }
  | { readonly _tag: "array"; readonly items: ReadonlyArray<Value> }
  | { readonly _tag: "string"; readonly value: string }
  | { readonly _tag: "number"; readonly literal: string }
  | { readonly _tag: "bool"; readonly value: boolean }
  | { readonly _tag: "null" }

class JsonFailure {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}

const maxDepth = 10000
const numberPattern = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y
const hexPattern = /^[0-9a-fA-F]{4}$/
const simpleEscapes: Readonly<Record<string, string>> = {
  "\"": "\"",
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t"
}

const parseFirstValue = (text: string): Value => {
  let pos = 0
  const fail = (what: string): never => {
    throw new JsonFailure(`${what} at offset ${pos}`)
  }
  const skipSpace = () => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos)
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) pos++
      else break
    }
  }
  const literal = (word: string) => {
    if (text.startsWith(word, pos)) pos += word.length
    else fail("invalid literal")
  }
  const parseString = (): string => {
    pos++ // opening quote
    let out = ""
    for (;;) {
      if (pos >= text.length) return fail("unexpected end of string")
      const c = text.charCodeAt(pos)
      if (c === 0x22) {
        pos++
        return out
      }
      if (c < 0x20) return fail("control character in string")
      if (c !== 0x5c) {
        out += text[pos]
        pos++
        continue
      }
      const e = text[pos + 1]
      pos += 2
      const simple = e === undefined ? undefined : simpleEscapes[e]
      if (simple !== undefined) {
        out += simple
        continue
      }
      if (e !== "u") return fail("invalid escape")
      const hex = text.slice(pos, pos + 4)
      if (!hexPattern.test(hex)) return fail("invalid \\u escape")
      pos += 4
      const unit = parseInt(hex, 16)
      if (unit >= 0xd800 && unit < 0xdc00) {
        // Go pairs a high surrogate with a following \u low surrogate, else U+FFFD
        const next = text.slice(pos, pos + 6)
        const low = next.startsWith("\\u") && hexPattern.test(next.slice(2)) ? parseInt(next.slice(2), 16) : -1
        if (low >= 0xdc00 && low < 0xe000) {
          pos += 6
          out += String.fromCharCode(unit, low)
          continue
        }
      }
      out += unit >= 0xd800 && unit < 0xe000 ? "\uFFFD" : String.fromCharCode(unit)
    }
  }
  /** The items of an object or array, from its opening bracket to `close`. */
  const parseSequence = <A>(close: "}" | "]", item: () => A): Array<A> => {
    pos++
    const items: Array<A> = []
    skipSpace()
    if (text[pos] === close) {
      pos++
      return items
    }
    for (;;) {
      items.push(item())
      skipSpace()
      if (text[pos] === ",") {
        pos++
        continue
      }
      if (text[pos] === close) {
        pos++
        return items
      }
      return fail(`expected ',' or '${close}'`)
    }
  }
  const parseValue = (depth: number): Value => {
    if (depth > maxDepth) return fail("exceeded max depth")
    skipSpace()
    if (pos >= text.length) return fail("unexpected end of JSON input")
    const c = text[pos]
    switch (c) {
      case "{":
        return {
          _tag: "object",
          entries: parseSequence("}", () => {
            skipSpace()
            if (text[pos] !== "\"") return fail("expected object key")
            const key = parseString()
            skipSpace()
            if (text[pos] !== ":") return fail("expected ':'")
            pos++
            return [key, parseValue(depth + 1)] as const
          })
        }
      case "[":
        return { _tag: "array", items: parseSequence("]", () => parseValue(depth + 1)) }
      case "\"":
        return { _tag: "string", value: parseString() }
      case "t":
        literal("true")
        return { _tag: "bool", value: true }
      case "f":
        literal("false")
        return { _tag: "bool", value: false }
      case "n":
        literal("null")
        return { _tag: "null" }
      default: {
        numberPattern.lastIndex = pos
        const m = numberPattern.exec(text)
        if (m === null || m[0] === "" || m[0] === "-") return fail("invalid character")
        pos += m[0].length
        // Go's scanner: a number ending in '.', 'e', '+' or '-' followed by garbage is a syntax error
        const next = text[pos]
        if (next === "." || next === "e" || next === "E" || next === "+" || next === "-") {
          if (depth > 0) return fail("invalid number")
        }
        return { _tag: "number", literal: m[0] }
      }
    }
  }
  return parseValue(0)
}

// ---------------------------------------------------------------------------
// Field decoders (Go struct semantics)

/** Decodes one JSON value into a Go-typed field, given the value decoded so far. */
export interface Field<A> {
  readonly zero: () => A
  readonly decode: (value: Value, current: A) => A
}

export type FieldType<F> = F extends Field<infer A> ? A : never

const typeError = (expected: string, got: Value): never => {
  throw new JsonFailure(`cannot unmarshal ${got._tag} into ${expected}`)
}

/** Go `string`. */
export const string: Field<string> = {
  zero: () => "",
  decode: (value, current) => {
    if (value._tag === "null") return current
    if (value._tag !== "string") return typeError("string", value)
    return value.value
  }
}

const int64Min = -(2n ** 63n)
const int64Max = 2n ** 63n - 1n
const integerLiteral = /^-?(?:0|[1-9][0-9]*)$/

/** Go `int` (64-bit). Values beyond ±2^53 lose precision in the JS number. */
export const int: Field<number> = {
  zero: () => 0,
  decode: (value, current) => {
    if (value._tag === "null") return current
    if (value._tag !== "number" || !integerLiteral.test(value.literal)) return typeError("int", value)
    const n = BigInt(value.literal)
    if (n < int64Min || n > int64Max) return typeError("int", value)
    return Number(n)
  }
}

/** Go's case folding of field names: per code point, upper(lower(c)) when that stays one code point. */
const foldKey = (s: string): string => {
  let out = ""
  for (const ch of s) {
    const lower = ch.toLowerCase()
    const folded = [...lower].length === 1 ? lower.toUpperCase() : ch.toUpperCase()
    out += [...folded].length === 1 ? folded : ch
  }
  return out
}

/** Go struct with `json:"name"` tags, decoded with `DisallowUnknownFields`. */
export const struct = <Fields extends Record<string, Field<any>>>(
  fields: Fields
): Field<{ -readonly [K in keyof Fields]: FieldType<Fields[K]> }> => {
  type Out = { -readonly [K in keyof Fields]: FieldType<Fields[K]> }
  const names = Object.keys(fields)
  const folded = names.map(foldKey)
  const lookup = (key: string): string | undefined => {
    if (Object.hasOwn(fields, key)) return key
    const k = foldKey(key)
    const i = folded.indexOf(k)
    return i === -1 ? undefined : names[i]
  }
  const zero = (): Out => {
    const out: Record<string, unknown> = {}
    for (const name of names) out[name] = fields[name]!.zero()
    return out as Out
  }
  return {
    zero,
    decode: (value, current) => {
      if (value._tag === "null") return current
      if (value._tag !== "object") return typeError("struct", value)
      const out: Record<string, unknown> = { ...current }
      for (const [key, v] of value.entries) {
        const name = lookup(key)
        if (name === undefined) throw new JsonFailure(`unknown field ${JSON.stringify(key)}`)
        out[name] = fields[name]!.decode(v, out[name])
      }
      return out as Out
    }
  }
}

/** Decode the first JSON value of `text` into the struct, or fail with a reason (for logs). */
export const decode = <A>(field: Field<A>, text: string): Either.Either<A, string> => {
  try {
    return Either.right(field.decode(parseFirstValue(text), field.zero()))
  } catch (e) {
    if (e instanceof JsonFailure) return Either.left(e.reason)
    // e.g. a RangeError from absurd nesting: Go fails those too
    return Either.left("undecodable input")
  }
}

const bodyDecoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** Bytes to text like Go sees them: invalid UTF-8 becomes U+FFFD, a BOM is kept (and is then a syntax error). */
export const decodeBytes = <A>(field: Field<A>, bytes: Uint8Array): Either.Either<A, string> =>
  decode(field, bodyDecoder.decode(bytes))

const htmlUnsafe = /[<>&\u2028\u2029]/g

/** `JSON.stringify` plus Go's `json.Marshal` HTML-safe escaping of `<`, `>`, `&`, U+2028, U+2029. */
export const goStringify = (value: unknown): string =>
  JSON.stringify(value).replace(htmlUnsafe, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
