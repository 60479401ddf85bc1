/**
 * Go `encoding/json` decoding rules of the auth service (GoJson), and its
 * configuration from the environment.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import * as GoJson from "../src/auth-service/GoJson.ts"
import * as Settings from "../src/auth-service/Settings.ts"

const S = GoJson.struct({
  name: GoJson.string,
  n: GoJson.int,
  inner: GoJson.struct({ a: GoJson.string })
})
const ok = (text: string) => {
  const r = GoJson.decode(S, text)
  if (Either.isLeft(r)) assert.fail(`expected success for ${text}: ${r.left}`)
  return r.right
}
const bad = (text: string) => assert.isTrue(Either.isLeft(GoJson.decode(S, text)), text)

describe("GoJson", () => {
  it("zero values, nulls and merges", () => {
    assert.deepStrictEqual(ok("{}"), { name: "", n: 0, inner: { a: "" } })
    assert.deepStrictEqual(ok("null"), { name: "", n: 0, inner: { a: "" } })
    assert.deepStrictEqual(ok("null garbage"), { name: "", n: 0, inner: { a: "" } })
    assert.deepStrictEqual(ok("{\"name\":\"x\",\"name\":null}"), { name: "x", n: 0, inner: { a: "" } })
    assert.deepStrictEqual(ok("{\"inner\":{\"a\":\"1\"},\"inner\":{}}").inner, { a: "1" })
    assert.deepStrictEqual(ok("{\"inner\":{\"a\":\"1\"},\"inner\":null}").inner, { a: "1" })
  })

  it("case-insensitive keys with Go's folding (incl. Kelvin sign and long s)", () => {
    assert.strictEqual(ok("{\"NAME\":\"x\"}").name, "x")
    assert.strictEqual(ok("{\"Name\":\"x\",\"name\":\"y\"}").name, "y")
    const K = GoJson.struct({ k: GoJson.string, s: GoJson.string })
    const r = GoJson.decode(K, "{\"\u212A\":\"kelvin\",\"\u017F\":\"long s\"}")
    assert.deepStrictEqual(Either.getOrThrow(r), { k: "kelvin", s: "long s" })
    bad("{\"nam\":\"x\"}")
    bad("{\"name \":\"x\"}")
  })

  it("integers: only int64 literals", () => {
    assert.strictEqual(ok("{\"n\":-0}").n, 0)
    assert.strictEqual(ok("{\"n\":9223372036854775807}").n, 9223372036854775807)
    assert.strictEqual(ok("{\"n\":-9223372036854775808}").n, -9223372036854775808)
    bad("{\"n\":9223372036854775808}")
    bad("{\"n\":1.0}")
    bad("{\"n\":1e2}")
    bad("{\"n\":\"1\"}")
    bad("{\"n\":true}")
    bad("{\"n\":[]}")
  })

  it("syntax per Go's scanner", () => {
    bad("")
    bad("   ")
    bad("{\"name\":\"x\"")
    bad("{\"name\":'x'}")
    bad("{name:\"x\"}")
    bad("{\"n\":01}")
    bad("{\"n\":+1}")
    bad("{\"n\":.5}")
    bad("{\"n\":1.}")
    bad("{\"n\":-}")
    bad("{\"name\":\"tab\there\"}")
    bad("{\"name\":\"\\u12\"}")
    bad("{\"name\":\"x\",}")
    bad("\uFEFF{}")
    bad("[" .repeat(20000))
    // syntax errors inside an unknown or ignored value still fail
    bad("{\"name\":\"x\",\"other\":[1,}")
  })

  it("strings: escapes, surrogates (lone ones become U+FFFD), non-ASCII", () => {
    assert.strictEqual(ok("{\"name\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}").name, "a\"b\\c/d\b\f\n\r\t")
    assert.strictEqual(ok("{\"name\":\"\\ud83d\\ude00\"}").name, "😀")
    assert.strictEqual(ok("{\"name\":\"\\ud83d\"}").name, "\uFFFD")
    assert.strictEqual(ok("{\"name\":\"\\ude00x\"}").name, "\uFFFDx")
    assert.strictEqual(ok("{\"name\":\"ü😀\"}").name, "ü😀")
  })

  it("bytes: invalid UTF-8 becomes U+FFFD inside strings", () => {
    const bytes = new Uint8Array([...Buffer.from("{\"name\":\""), 0xff, ...Buffer.from("\"}")])
    assert.strictEqual(Either.getOrThrow(GoJson.decodeBytes(S, bytes)).name, "\uFFFD")
  })

  it("goStringify escapes like json.Marshal", () => {
    assert.strictEqual(GoJson.goStringify({ a: "<&>\u2028\u2029" }), "{\"a\":\"\\u003c\\u0026\\u003e\\u2028\\u2029\"}")
  })
})

describe("auth service settings from the environment", () => {
  const load = (env: Record<string, string>) =>
    Effect.either(Effect.withConfigProvider(Settings.config, ConfigProvider.fromMap(new Map(Object.entries(env)))))
  const required = {
    LIVEKIT_URL: "ws://127.0.0.1:7880",
    LIVEKIT_KEY: "devkey",
    LIVEKIT_SECRET: "s3cret",
    LIVEKIT_FULL_ACCESS_HOMESERVERS: "*"
  }

  it.effect("defaults and parsing", () =>
    Effect.gen(function*() {
      const s = Either.getOrThrow(yield* load(required))
      assert.strictEqual(s.bindHost, "127.0.0.1")
      assert.strictEqual(s.bindPort, 8080)
      assert.deepStrictEqual(s.fullAccessHomeservers, ["*"])
      assert.strictEqual(Redacted.value(s.apiSecret), "s3cret")
      assert.strictEqual(String(s.apiSecret), "<redacted>")
      assert.strictEqual(s.sanityCheckIntervalSeconds, 0)

      const t = Either.getOrThrow(
        yield* load({
          ...required,
          LIVEKIT_JWT_BIND: "127.0.0.1:18080",
          LIVEKIT_FULL_ACCESS_HOMESERVERS: " localhost, example.com  other ",
          LIVEKIT_CS_API_URL_OVERRIDES: "localhost=http://127.0.0.1:8008, example.com=https://matrix.example.com",
          MATRIXRTC_USERINFO_URLS: "localhost=http://127.0.0.1:8008"
        })
      )
      assert.strictEqual(t.bindPort, 18080)
      assert.deepStrictEqual(t.fullAccessHomeservers, ["localhost", "example.com", "other"])
      assert.deepStrictEqual([...t.csApiUrlOverrides], [
        ["localhost", "http://127.0.0.1:8008"],
        ["example.com", "https://matrix.example.com"]
      ])
      assert.deepStrictEqual([...t.userInfoBaseUrls], [["localhost", "http://127.0.0.1:8008"]])
      assert.isTrue(Settings.isFullAccess(t, "example.com"))
      assert.isFalse(Settings.isFullAccess(t, "example.com:443"))
      assert.isTrue(Settings.isFullAccess(s, "anything"))

      assert.strictEqual(Either.getOrThrow(yield* load({ ...required, LIVEKIT_JWT_PORT: "9000" })).bindPort, 9000)
      assert.strictEqual(Either.getOrThrow(yield* load({ ...required, LIVEKIT_JWT_BIND: "[::1]:9001" })).bindHost, "::1")
    }))

  it.effect("missing or invalid settings fail", () =>
    Effect.gen(function*() {
      assert.isTrue(Either.isLeft(yield* load({ LIVEKIT_KEY: "k", LIVEKIT_SECRET: "s" })))
      // required since lk-jwt-service v0.5.0: unset or empty is an error, not "everyone"
      const { LIVEKIT_FULL_ACCESS_HOMESERVERS: _, ...withoutFullAccess } = required
      assert.isTrue(Either.isLeft(yield* load(withoutFullAccess)))
      assert.isTrue(Either.isLeft(yield* load({ ...required, LIVEKIT_FULL_ACCESS_HOMESERVERS: " , " })))
      assert.isTrue(Either.isLeft(yield* load({ ...required, LIVEKIT_JWT_BIND: "8080" })))
      assert.isTrue(Either.isLeft(yield* load({ ...required, LIVEKIT_JWT_BIND: ":1", LIVEKIT_JWT_PORT: "2" })))
      assert.isTrue(Either.isLeft(yield* load({ ...required, MATRIXRTC_USERINFO_URLS: "localhost" })))
    }))
})
