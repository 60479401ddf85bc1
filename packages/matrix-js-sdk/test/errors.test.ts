import { describe, it } from "@effect/vitest"
import { assert } from "@effect/vitest"
import { MatrixError as SdkMatrixError, ConnectionError } from "matrix-js-sdk"
import { MatrixErrors } from "@matrixrtc-effect/core"
import { toMatrixError } from "../src/errors.ts"

describe("toMatrixError", () => {
  it("keeps status, errcode, error and the whole body of an SDK MatrixError", () => {
    const body = {
      errcode: "M_UNKNOWN",
      error: "delay too long",
      "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
      "org.matrix.msc4140.max_delay": 5000
    }
    const e = toMatrixError(new SdkMatrixError(body, 400, "http://127.0.0.1:8008/x?access_token=secret123"))
    assert.strictEqual(e.reason, "Http")
    assert.strictEqual(e.status, 400)
    assert.strictEqual(e.errcode, "M_UNKNOWN")
    assert.strictEqual(e.error, "delay too long")
    assert.deepStrictEqual(e.body, body)
    assert.notInclude(String(e.cause), "secret123")
    assert.notInclude(JSON.stringify(e), "secret123")
  })

  it("reads retry_after_ms from the body and Retry-After from the headers", () => {
    const fromBody = toMatrixError(new SdkMatrixError({ errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 1500 }, 429))
    assert.strictEqual(fromBody.retryAfterMs, 1500)
    const fromHeader = toMatrixError(
      new SdkMatrixError({ errcode: "M_LIMIT_EXCEEDED" }, 429, undefined, undefined, new Headers({ "Retry-After": "3" }))
    )
    assert.strictEqual(fromHeader.retryAfterMs, 3000)
  })

  it("reports a huge Retry-After as asked, so core's retry can refuse to wait instead of waiting a shorter while", () => {
    const days30 = 30 * 24 * 3600
    const e = toMatrixError(
      new SdkMatrixError({ errcode: "M_LIMIT_EXCEEDED" }, 429, undefined, undefined, new Headers({ "Retry-After": String(days30) }))
    )
    assert.deepStrictEqual(MatrixErrors.classify(e), MatrixErrors.MatrixErrorKind.RateLimited({ waitMs: days30 * 1000 }))
  })

  it("maps connection failures and unsupported endpoints", () => {
    assert.strictEqual(toMatrixError(new ConnectionError("fetch failed", new Error("ECONNREFUSED"))).reason, "Transport")
    const unsupported = new Error("Server does not support the delayed events API")
    unsupported.name = "UnsupportedDelayedEventsEndpointError"
    assert.strictEqual(toMatrixError(unsupported).reason, "Unsupported")
  })
})
