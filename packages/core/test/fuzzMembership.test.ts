/**
 * Parser fuzzing for call-membership events (all three dialects).
 *
 * Two properties over arbitrary JSON and over mutations of valid events:
 *   1. `decode` is total: it never throws, whatever the input;
 *   2. it accepts exactly the events that a small, independent oracle (written here
 *      from the wire tables of matrixrtc-protocol.md §1.3–1.6, not from the parser)
 *      calls valid — so a required field mutated to a wrong type is always rejected.
 *
 * The total number of generated inputs is printed at the end (target ≥ 10 000 together
 * with fuzzAuthService.test.ts).
 */
import * as fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { decode, SessionEventType, StickyEventType } from "../src/Membership.ts"
import type { RawCallEvent } from "../src/MatrixClient.ts"

let inputs = 0
afterAll(() => {
  console.log(`[fuzz] membership parser: ${inputs} generated/mutated inputs, no throw, no invalid member accepted`)
})

// ---------------------------------------------------------------------------
// The oracle: validity defined independently of the parser.
// ---------------------------------------------------------------------------

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [k: string]: Json }
type Obj = { readonly [k: string]: Json }

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)
const isStr = (v: unknown): v is string => typeof v === "string"
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)
const has = (o: Obj, k: string) => Object.prototype.hasOwnProperty.call(o, k)
const optional = (o: Obj, k: string, ok: (v: unknown) => boolean) => !has(o, k) || ok(o[k])
const typedObject = (v: unknown) => isObj(v) && isStr(v["type"])

type Verdict = "member" | "left" | "legacy" | "rejected"

/** JS-SDK's quick filter (§1.6 step 2), shared by both dialects; js-sdk 43 leaves carry `slot_id` too. */
const quickFilter = (content: Obj, isState: boolean): Verdict | undefined => {
  if (Object.keys(content).every((k) => k === "msc4354_sticky_key" || k === "slot_id")) return "left"
  const keys = Object.keys(content).filter((k) => k !== "msc4354_sticky_key")
  if (keys.length === 1 && keys[0] === "memberships") return isState && Array.isArray(content["memberships"]) ? "legacy" : "rejected"
  if (!has(content, "application") || keys.length < 2) return "rejected"
  return undefined
}

/** Format B (§1.3 table). JS-SDK type-checks neither `expires` nor `membershipID`: a wrong type reads as absent. */
const sessionValid = (c: Obj): boolean =>
  isStr(c["application"]) &&
  isStr(c["call_id"]) &&
  isStr(c["device_id"]) &&
  typedObject(c["focus_active"]) &&
  optional(c, "foci_preferred", (v) => Array.isArray(v) && v.every(typedObject)) &&
  optional(c, "created_ts", isNum) &&
  optional(c, "scope", isStr) &&
  optional(c, "m.call.intent", isStr)

/** js-sdk 43: `transports: {published: [{type}], can_subscribe: [string]}`. */
const transports43Valid = (v: unknown): boolean =>
  isObj(v) && Array.isArray(v["published"]) && v["published"].every(typedObject) &&
  Array.isArray(v["can_subscribe"]) && v["can_subscribe"].every(isStr)

/** js-sdk 42: `rtc_transports: [{type}]`. */
const transports42Valid = (v: unknown): boolean => Array.isArray(v) && v.every(typedObject)

/** Format C (§1.4 table): a member if js-sdk 42 or js-sdk 43 accepts it (they differ only in the transports). */
const stickyValid = (c: Obj, sender: string): boolean => {
  const app = c["application"]
  const member = c["member"]
  const slot = c["slot_id"]
  if (!isObj(app) || !isStr(app["type"]) || app["type"].includes("#")) return false
  if (!isStr(slot) || !slot.startsWith(`${app["type"]}#`) || slot.split("#").length !== 2) return false
  if (!isObj(member) || member["user_id"] !== sender || !isStr(member["device_id"]) || !isStr(member["id"])) return false
  if (!transports43Valid(c["transports"]) && !transports42Valid(c["rtc_transports"])) return false
  if (!Array.isArray(c["versions"]) || !c["versions"].every(isStr)) return false
  const a = c["msc4354_sticky_key"]
  const b = c["sticky_key"]
  if (!optional(c, "msc4354_sticky_key", isStr) || !optional(c, "sticky_key", isStr)) return false
  if (a === undefined && b === undefined) return false
  if (a !== undefined && b !== undefined && a !== b) return false
  return optional(c, "m.relates_to", (r) => isObj(r) && r["rel_type"] === "m.reference" && isStr(r["event_id"]))
}

/** Format A entry (§1.2): read-only, but still only well-formed entries may come out. */
const legacyEntryValid = (e: unknown): boolean =>
  isObj(e) &&
  ["application", "call_id", "scope", "device_id", "membershipID"].every((k) => isStr(e[k])) &&
  optional(e, "expires", isNum) &&
  optional(e, "expires_ts", isNum) &&
  optional(e, "created_ts", isNum) &&
  (has(e, "expires") || has(e, "expires_ts")) &&
  optional(e, "foci_active", (v) => Array.isArray(v) && v.every(typedObject))

const oracle = (event: RawCallEvent): Verdict => {
  const isState = event.stateKey !== undefined
  if (event.type !== (isState ? SessionEventType : StickyEventType)) return "rejected"
  if (!isObj(event.content)) return "rejected"
  const quick = quickFilter(event.content, isState)
  if (quick !== undefined) return quick
  return (isState ? sessionValid(event.content) : stickyValid(event.content, event.sender)) ? "member" : "rejected"
}

// ---------------------------------------------------------------------------
// Checking one input
// ---------------------------------------------------------------------------

const SENDER = "@alice:localhost"

const check = (event: RawCallEvent): void => {
  inputs++
  const expected = oracle(event)
  let result: ReturnType<typeof decode>
  try {
    result = decode(event, 1_000_000)
  } catch (e) {
    throw new Error(`decode threw on ${JSON.stringify(event)}: ${String(e)}`)
  }
  const got: Verdict =
    result._tag === "Member" ? "member" : result._tag === "Left" ? "left" : result._tag === "Legacy" ? "legacy" : "rejected"
  if (got !== expected) {
    throw new Error(`decode said ${got}, the oracle ${expected}, for ${JSON.stringify(event)}`)
  }
  if (result._tag === "Member") {
    // What comes out must be what the event said, and must be the sender's.
    const m = result.member
    expect(m.userId).toBe(event.sender)
    if (isObj(event.content) && event.stateKey !== undefined) expect(m.deviceId).toBe(event.content["device_id"])
    expect(Number.isFinite(m.createdTs)).toBe(true)
    expect(typeof m.memberId).toBe("string")
    for (const at of m.expiresAt._tag === "Some" ? [m.expiresAt.value] : []) expect(Number.isFinite(at)).toBe(true)
  }
  if (result._tag === "Legacy") {
    const entries = (event.content as Obj)["memberships"] as ReadonlyArray<Json>
    expect(result.members.length).toBe(entries.filter(legacyEntryValid).length)
    for (const m of result.members) expect(m.userId).toBe(event.sender)
  }
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

const json: fc.Arbitrary<Json> = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>
const shortStr = fc.string({ maxLength: 12 })
const typed = fc.record({ type: shortStr }, { requiredKeys: ["type"] }).chain((t) =>
  fc.dictionary(shortStr, json, { maxKeys: 2 }).map((extra) => ({ ...extra, ...t }))
)

const validSession: fc.Arbitrary<Obj> = fc
  .record(
    {
      application: fc.constantFrom("m.call", "io.example.app", ""),
      call_id: fc.constantFrom("", "custom", "x#y"),
      device_id: fc.stringMatching(/^[A-Z]{4,10}$/),
      focus_active: fc.oneof(
        fc.constant({ type: "livekit", focus_selection: "multi_sfu" }),
        fc.constant({ type: "livekit", focus_selection: "oldest_membership" }),
        typed
      ),
      foci_preferred: fc.array(typed, { maxLength: 3 }),
      created_ts: fc.integer({ min: 0, max: 2 ** 42 }),
      expires: fc.integer({ min: 0, max: 10 ** 9 }),
      scope: fc.constantFrom("m.room", "m.user"),
      "m.call.intent": fc.constantFrom("audio", "video"),
      membershipID: shortStr
    },
    { requiredKeys: ["application", "call_id", "device_id", "focus_active"] }
  )
  .map((o) => o as Obj)

const validSticky: fc.Arbitrary<Obj> = fc
  .record({
    app: fc.constantFrom("m.call", "io.example"),
    slot: fc.constantFrom("ROOM", "custom", ""),
    deviceId: fc.stringMatching(/^[A-Z]{4,10}$/),
    memberId: fc.uuid(),
    transports: fc.array(typed, { maxLength: 3 }),
    // js-sdk 43's shape, js-sdk 42's, or both (what we write)
    shape: fc.constantFrom("43", "42", "both"),
    versions: fc.array(shortStr, { maxLength: 2 }),
    keys: fc.constantFrom("msc4354", "plain", "both"),
    intent: fc.option(fc.constantFrom("audio", "video"), { nil: undefined }),
    relates: fc.boolean()
  })
  .map(({ app, slot, deviceId, memberId, transports, shape, versions, keys, intent, relates }) => ({
    application: { type: app, ...(intent === undefined ? {} : { "m.call.intent": intent }) },
    slot_id: `${app}#${slot}`,
    ...(shape !== "42" ? { transports: { published: transports, can_subscribe: ["livekit"] } } : {}),
    ...(shape !== "43" ? { rtc_transports: transports } : {}),
    member: { device_id: deviceId, user_id: SENDER, id: memberId },
    versions,
    ...(keys !== "plain" ? { msc4354_sticky_key: memberId } : {}),
    ...(keys !== "msc4354" ? { sticky_key: memberId } : {}),
    ...(relates ? { "m.relates_to": { rel_type: "m.reference", event_id: "$prev" } } : {})
  }))

const validLegacyEntry = fc
  .record(
    {
      application: fc.constant("m.call"),
      call_id: fc.constant(""),
      scope: fc.constant("m.room"),
      device_id: fc.stringMatching(/^[A-Z]{4,10}$/),
      membershipID: shortStr,
      expires: fc.integer({ min: 0, max: 10 ** 8 }),
      expires_ts: fc.integer({ min: 0, max: 2 ** 42 }),
      created_ts: fc.integer({ min: 0, max: 2 ** 42 }),
      foci_active: fc.array(typed, { maxLength: 2 })
    },
    { requiredKeys: ["application", "call_id", "scope", "device_id", "membershipID"] }
  )
  .map((o) => o as Obj)

/** A value of a JSON type other than the one the field should have. */
const wrongTypeFor = (v: Json): fc.Arbitrary<Json> => {
  const all: Array<fc.Arbitrary<Json>> = [
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    shortStr,
    fc.array(shortStr, { maxLength: 2 }),
    fc.dictionary(shortStr, shortStr, { maxKeys: 2 })
  ]
  const kind = (x: Json) => (x === null ? "null" : Array.isArray(x) ? "array" : typeof x)
  return fc.oneof(...all).filter((w) => kind(w) !== kind(v))
}

type Mutation = (o: Obj) => fc.Arbitrary<Obj>

const setPath = (o: Obj, path: ReadonlyArray<string>, value: Json | undefined): Obj => {
  const [head, ...rest] = path
  if (head === undefined) return o
  const copy: Record<string, Json> = { ...o }
  if (rest.length === 0) {
    if (value === undefined) delete copy[head]
    else copy[head] = value
  } else {
    const inner = copy[head]
    copy[head] = setPath(isObj(inner) ? inner : {}, rest, value)
  }
  return copy
}

const getPath = (o: Obj, path: ReadonlyArray<string>): Json | undefined =>
  path.reduce<Json | undefined>((acc, k) => (isObj(acc) ? acc[k] : undefined), o)

/** Every leaf path and every object/array path of a JSON object. */
const pathsOf = (o: Obj, prefix: ReadonlyArray<string> = []): Array<ReadonlyArray<string>> =>
  Object.entries(o).flatMap(([k, v]) => [[...prefix, k], ...(isObj(v) ? pathsOf(v, [...prefix, k]) : [])])

const mutations: Array<Mutation> = [
  // a field (top level or nested) to a value of another type
  (o) => {
    const paths = pathsOf(o)
    return paths.length === 0
      ? fc.constant(o)
      : fc.constantFrom(...paths).chain((p) => wrongTypeFor(getPath(o, p) ?? null).map((w) => setPath(o, p, w)))
  },
  // a field removed
  (o) => {
    const paths = pathsOf(o)
    return paths.length === 0 ? fc.constant(o) : fc.constantFrom(...paths).map((p) => setPath(o, p, undefined))
  },
  // a field replaced by arbitrary JSON
  (o) => {
    const paths = pathsOf(o)
    return paths.length === 0 ? fc.constant(o) : fc.tuple(fc.constantFrom(...paths), json).map(([p, v]) => setPath(o, p, v))
  },
  // unknown extra keys (must not change the verdict)
  (o) => fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).map((k) => `x.${k}`), json, { maxKeys: 3 }).map((extra) => ({ ...o, ...extra })),
  // an array element (transports/foci/versions) to another type
  (o) => {
    const arrays = pathsOf(o).filter((p) => Array.isArray(getPath(o, p)))
    if (arrays.length === 0) return fc.constant(o)
    return fc.constantFrom(...arrays).chain((p) => {
      const arr = getPath(o, p) as ReadonlyArray<Json>
      return fc.tuple(fc.nat({ max: arr.length }), json).map(([i, v]) => {
        const next = [...arr]
        next[i] = v
        return setPath(o, p, next)
      })
    })
  },
  // sticky-specific semantics: another sender, clashing keys, slot/application with extra '#'
  (o) =>
    fc.oneof(
      fc.constantFrom("@mallory:localhost", "alice", "", "@alice:localhost ").map((u) => setPath(o, ["member", "user_id"], u)),
      fc.constant(setPath(o, ["sticky_key"], "other-key")),
      fc.constant(setPath(o, ["slot_id"], `${JSON.stringify(getPath(o, ["slot_id"]) ?? null)}#more`)),
      fc.constant(setPath(o, ["slot_id"], "ROOM")),
      fc.constant(setPath(o, ["application", "type"], "m.call#x")),
      fc.constant(setPath(o, ["m.relates_to"], { rel_type: "m.annotation", event_id: "$x" }))
    )
]

const mutated = (base: fc.Arbitrary<Obj>): fc.Arbitrary<Obj> =>
  fc.tuple(base, fc.array(fc.nat({ max: mutations.length - 1 }), { minLength: 1, maxLength: 3 })).chain(([o, ms]) =>
    ms.reduce<fc.Arbitrary<Obj>>((acc, i) => acc.chain((x) => (mutations[i] as Mutation)(x)), fc.constant(o))
  )

/**
 * Contents reach the parser from `JSON.parse` of a sync response, so generated values
 * go through a JSON round trip: that keeps `__proto__` keys (as own properties) and
 * drops what JSON cannot carry (null-prototype objects, -0). The null-prototype case
 * is checked on its own below.
 */
const wire = (content: Json): Json => JSON.parse(JSON.stringify(content)) as Json

const stateEvent = (content: Json): RawCallEvent => ({
  type: SessionEventType,
  stateKey: `_${SENDER}_DEVICE_m.call`,
  sender: SENDER,
  eventId: "$e",
  originServerTs: 1_700_000_000_000,
  content: wire(content)
})

const stickyEvent = (content: Json, durationMs?: number): RawCallEvent => ({
  type: StickyEventType,
  stateKey: undefined,
  sender: SENDER,
  eventId: "$s",
  originServerTs: 1_700_000_000_000,
  content: wire(content),
  stickyDurationMs: durationMs
})

// ---------------------------------------------------------------------------

describe("membership parser fuzzing", () => {
  it("the oracle itself: valid events of each dialect are accepted", () => {
    fc.assert(fc.property(validSession, (c) => oracle(stateEvent(c)) === "member"), { numRuns: 200 })
    fc.assert(fc.property(validSticky, (c) => oracle(stickyEvent(c)) === "member"), { numRuns: 200 })
    inputs += 400
  })

  it("valid session and sticky events decode as members", () => {
    fc.assert(fc.property(validSession, (c) => check(stateEvent(c))), { numRuns: 1000 })
    fc.assert(fc.property(validSticky, (c) => check(stickyEvent(c))), { numRuns: 1000 })
  })

  it("arbitrary JSON contents, event types and state/sticky kinds: never throws, never a wrong member", () => {
    const anyEvent = fc.record({
      type: fc.constantFrom(SessionEventType, StickyEventType, "m.room.member", ""),
      stateKey: fc.option(shortStr, { nil: undefined }),
      sender: fc.constantFrom(SENDER, "@bob:localhost", "not-a-user"),
      content: fc.oneof(json, fc.dictionary(shortStr, json, { maxKeys: 6 }))
    })
    fc.assert(
      fc.property(anyEvent, fc.option(fc.double(), { nil: undefined }), (e, duration) =>
        check({ ...e, content: wire(e.content), eventId: "$a", originServerTs: 1_700_000_000_000, stickyDurationMs: duration })
      ),
      { numRuns: 3000 }
    )
  })

  it("mutated session events: accepted iff still valid (wrong-typed required fields are rejected)", () => {
    fc.assert(fc.property(mutated(validSession), (c) => check(stateEvent(c))), { numRuns: 2500 })
  })

  it("mutated sticky events: accepted iff still valid", () => {
    fc.assert(fc.property(mutated(validSticky), (c) => check(stickyEvent(c))), { numRuns: 2500 })
  })

  it("a required field set to a wrong type is always rejected (explicit)", () => {
    const required = ["application", "call_id", "device_id", "focus_active"] as const
    fc.assert(
      fc.property(validSession, fc.constantFrom(...required), (c, field) =>
        fc.assert(
          fc.property(wrongTypeFor(c[field] ?? null), (w) => {
            const event = stateEvent({ ...c, [field]: w })
            check(event)
            expect(decode(event)._tag).toBe("Rejected")
          }),
          { numRuns: 3 }
        )
      ),
      { numRuns: 300 }
    )
  })

  it("legacy memberships arrays: only well-formed entries come out, flagged as legacy", () => {
    const entries = fc.array(fc.oneof(validLegacyEntry, mutated(validLegacyEntry), json), { maxLength: 4 })
    fc.assert(fc.property(entries, (es) => check(stateEvent({ memberships: es }))), { numRuns: 1000 })
    // in a sticky event the array is not a membership
    fc.assert(fc.property(entries, (es) => check(stickyEvent({ memberships: es }))), { numRuns: 200 })
  })

  // Found by this fuzzer: an object without a prototype in a position the schema checks
  // against a literal (here `m.relates_to.rel_type`) made effect's union decoder throw
  // "Cannot convert object to primitive value". JSON.parse never builds such objects, but
  // anything that builds contents itself (Object.create(null), structuredClone of one) can;
  // so can a content with a throwing getter. Both are malformed contents, not crashes.
  it("objects JSON cannot produce (null prototype, throwing getter) are rejected as malformed, not thrown", () => {
    const valid = fc.sample(validSticky, { numRuns: 1, seed: 1 })[0] as Obj
    const sticky = (content: unknown): RawCallEvent =>
      ({ type: StickyEventType, stateKey: undefined, sender: SENDER, eventId: "$n", originServerTs: 1, content })
    const nullProto = sticky({ ...valid, "m.relates_to": { rel_type: Object.create(null), event_id: "$x" } })
    const getter = sticky(Object.defineProperty({ ...valid }, "versions", {
      enumerable: true,
      get: () => {
        throw new Error("boom")
      }
    }))
    for (const event of [nullProto, getter]) {
      const d = decode(event)
      expect(d._tag).toBe("Rejected")
      expect(d._tag === "Rejected" && d.reason).toBe("Malformed")
    }
    // The same content with a plain object in that place is a member: only the odd value made the difference.
    expect(decode(sticky({ ...valid, "m.relates_to": { rel_type: "m.reference", event_id: "$x" } }))._tag).toBe("Member")
  })

  it("left contents: {} and {msc4354_sticky_key} only, js-sdk 43's slot_id with them", () => {
    check(stateEvent({}))
    check(stickyEvent({ msc4354_sticky_key: "k" }))
    check(stickyEvent({ msc4354_sticky_key: 3 }))
    check(stickyEvent({ slot_id: "m.call#ROOM", msc4354_sticky_key: "k" }))
    expect(decode(stateEvent({}))._tag).toBe("Left")
    expect(decode(stickyEvent({ slot_id: "m.call#ROOM", msc4354_sticky_key: "k" }))._tag).toBe("Left")
  })

  // Found by this fuzzer (1 run in ~4): JSON.parse makes `__proto__` an own key, and reading the keys off a
  // decoded copy, where it had become the prototype, took `{"__proto__": {}}` for `{}`, a leave.
  it("a content whose only key is __proto__ is no leave", () => {
    for (const event of [stateEvent(JSON.parse('{"__proto__": {}}')), stickyEvent(JSON.parse('{"__proto__": {"a": 1}}'))]) {
      check(event)
      expect(decode(event)._tag).toBe("Rejected")
    }
  })
})
