import { assert, describe, it } from "@effect/vitest"
import { Option } from "effect"
import { MatrixError } from "../src/MatrixClient.ts"
import * as MatrixErrors from "../src/MatrixErrors.ts"

const http = (status: number, body: Record<string, unknown>, extra: { retryAfterMs?: number } = {}) =>
  new MatrixError({
    reason: "Http",
    status,
    errcode: typeof body["errcode"] === "string" ? body["errcode"] : undefined,
    error: typeof body["error"] === "string" ? body["error"] : undefined,
    body,
    ...extra
  })

/** Some(the server maximum, if named) when `e` is a max-delay error. */
const maxDelay = (e: MatrixError) => {
  const kind = MatrixErrors.classify(e)
  return kind._tag === "MaxDelayExceeded" ? Option.some(Option.getOrUndefined(kind.maxDelayMs)) : Option.none()
}
const waitMs = (e: MatrixError) => {
  const kind = MatrixErrors.classify(e)
  return kind._tag === "RateLimited" ? kind.waitMs : undefined
}

describe("MatrixErrors: max delay exceeded (every variant, §3.1)", () => {
  for (const status of [400, 403]) {
    it(`JS-SDK shape (M_UNKNOWN + org.matrix.msc4140.errcode), ${status}`, () => {
      const e = http(status, {
        errcode: "M_UNKNOWN",
        "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
        "org.matrix.msc4140.max_delay": 5000
      })
      assert.deepStrictEqual(maxDelay(e), Option.some(5000))
      assert.deepStrictEqual(MatrixErrors.classify(e), MatrixErrors.MatrixErrorKind.MaxDelayExceeded({ maxDelayMs: Option.some(5000) }))
    })

    it(`unstable MSC shape, ${status}`, () => {
      const e = http(status, { errcode: "ORG.MATRIX.MSC4140_MAX_DELAY_EXCEEDED", "org.matrix.msc4140.max_delay": 7000 })
      assert.deepStrictEqual(maxDelay(e), Option.some(7000))
      assert.strictEqual(MatrixErrors.classify(e)._tag, "MaxDelayExceeded")
    })

    it(`stable MSC shape, ${status}`, () => {
      const e = http(status, { errcode: "M_MAX_DELAY_EXCEEDED", max_delay: 9000 })
      assert.deepStrictEqual(maxDelay(e), Option.some(9000))
      assert.strictEqual(MatrixErrors.classify(e)._tag, "MaxDelayExceeded")
    })
  }

  it("errcode only in the body, or no max given", () => {
    const bodyOnly = new MatrixError({ reason: "Http", status: 400, body: { errcode: "M_MAX_DELAY_EXCEEDED", max_delay: 1 } })
    assert.deepStrictEqual(maxDelay(bodyOnly), Option.some(1))
    assert.deepStrictEqual(maxDelay(http(400, { errcode: "M_MAX_DELAY_EXCEEDED" })), Option.some(undefined))
    assert.deepStrictEqual(maxDelay(http(400, { errcode: "M_MAX_DELAY_EXCEEDED", max_delay: "5000" })), Option.some(undefined))
  })

  it("plain M_UNKNOWN / M_FORBIDDEN are not max-delay errors", () => {
    assert.isTrue(Option.isNone(maxDelay(http(400, { errcode: "M_UNKNOWN" }))))
    assert.isTrue(Option.isNone(maxDelay(http(403, { errcode: "M_FORBIDDEN" }))))
  })
})

describe("MatrixErrors: rate limits", () => {
  it("waits retryAfterMs, else retry_after_ms, else 5000", () => {
    assert.strictEqual(waitMs(http(429, { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 2000 }, { retryAfterMs: 3000 })), 3000)
    assert.strictEqual(waitMs(http(429, { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 2000 })), 2000)
    assert.strictEqual(waitMs(http(429, { errcode: "M_LIMIT_EXCEEDED" })), 5000)
    assert.strictEqual(waitMs(http(429, { retry_after_ms: "soon" })), 5000)
    assert.deepStrictEqual(
      MatrixErrors.classify(http(400, { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 10 })),
      MatrixErrors.MatrixErrorKind.RateLimited({ waitMs: 10 })
    )
    assert.deepStrictEqual(MatrixErrors.classify(http(429, {})), MatrixErrors.MatrixErrorKind.RateLimited({ waitMs: 5000 }))
  })
})

describe("MatrixErrors: classify", () => {
  const tag = (e: MatrixError) => MatrixErrors.classify(e)._tag
  it("not found, forbidden, unknown token, unsupported, transient, other", () => {
    assert.strictEqual(tag(http(404, { errcode: "M_NOT_FOUND" })), "NotFound")
    assert.strictEqual(tag(http(400, { errcode: "M_NOT_FOUND" })), "NotFound")
    assert.strictEqual(tag(http(404, {})), "NotFound")
    assert.strictEqual(tag(http(403, { errcode: "M_FORBIDDEN" })), "Forbidden")
    assert.strictEqual(tag(http(401, { errcode: "M_UNKNOWN_TOKEN" })), "UnknownToken")
    assert.strictEqual(tag(http(401, { errcode: "M_MISSING_TOKEN" })), "UnknownToken")
    assert.strictEqual(tag(http(404, { errcode: "M_UNRECOGNIZED" })), "Unsupported")
    assert.strictEqual(tag(new MatrixError({ reason: "Unsupported" })), "Unsupported")
    assert.strictEqual(tag(new MatrixError({ reason: "Transport" })), "Transient")
    assert.strictEqual(tag(new MatrixError({ reason: "Timeout" })), "Transient")
    assert.strictEqual(tag(http(502, {})), "Transient")
    assert.strictEqual(tag(http(500, { errcode: "M_UNKNOWN" })), "Transient")
    assert.strictEqual(tag(http(400, { errcode: "M_BAD_JSON" })), "Other")
    assert.strictEqual(tag(http(503, {})), "Transient")
  })
})
