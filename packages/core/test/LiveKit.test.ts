import { assert, describe, it } from "@effect/vitest"
import { disconnectReasonFromProtocolName } from "../src/index.ts"

describe("disconnectReasonFromProtocolName", () => {
  it("maps the LiveKit protocol enum names both SDKs share", () => {
    assert.strictEqual(disconnectReasonFromProtocolName("CLIENT_INITIATED"), "ClientInitiated")
    assert.strictEqual(disconnectReasonFromProtocolName("ROOM_CLOSED"), "RoomDeleted")
    assert.strictEqual(disconnectReasonFromProtocolName("ROOM_DELETED"), "RoomDeleted")
    assert.strictEqual(disconnectReasonFromProtocolName("SIGNAL_CLOSE"), "SignalClosed")
  })
  it("anything else, or nothing, is Unknown", () => {
    assert.strictEqual(disconnectReasonFromProtocolName("MIGRATION"), "Unknown")
    assert.strictEqual(disconnectReasonFromProtocolName(undefined), "Unknown")
  })
})
