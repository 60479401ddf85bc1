import { assert, describe, it } from "@effect/vitest"
import { ConnectionError, ConnectionState, DisconnectReason } from "livekit-client"
import { connectFailedOf, connectionStateOf, disconnectReasonOf } from "../src/internal/livekitMapping.ts"
import { mediaFailedOf } from "../src/MediaFailed.ts"

const url = "ws://127.0.0.1:7880"

describe("BrowserLiveKit: livekit-client errors → ConnectFailed", () => {
  it("404 from the join validation is RoomNotFound (auth service did not create the room)", () => {
    const e = connectFailedOf(url, ConnectionError.notAllowed("requested room does not exist", 404))
    assert.strictEqual(e.reason, "RoomNotFound")
    assert.strictEqual(e.status, 404)
    assert.strictEqual(e.url, url)
  })

  it("other NotAllowed statuses (401 bad token, 403) are Rejected with the status", () => {
    const e = connectFailedOf(url, ConnectionError.notAllowed("invalid token", 401))
    assert.strictEqual(e.reason, "Rejected")
    assert.strictEqual(e.status, 401)
    assert.include(e.message, "HTTP 401")
  })

  it("timeouts, cancellations, unreachable servers and websocket failures", () => {
    assert.strictEqual(connectFailedOf(url, ConnectionError.timeout("room connection has timed out (signal)")).reason, "Timeout")
    assert.strictEqual(connectFailedOf(url, ConnectionError.cancelled("Client initiated disconnect")).reason, "Disconnected")
    assert.strictEqual(connectFailedOf(url, ConnectionError.serverUnreachable("could not establish signal connection")).reason, "Transport")
    assert.strictEqual(connectFailedOf(url, ConnectionError.websocket("WS closed unexpectedly with code 1006")).reason, "Transport")
    assert.strictEqual(connectFailedOf(url, ConnectionError.internal("could not establish pc connection")).reason, "Transport")
  })

  it("anything else is Transport and keeps the message and cause", () => {
    const cause = new TypeError("boom")
    const e = connectFailedOf(url, cause)
    assert.strictEqual(e.reason, "Transport")
    assert.strictEqual(e.error, "boom")
    assert.strictEqual(e.cause, cause)
  })
})

describe("BrowserLiveKit: states, disconnect reasons, media errors", () => {
  it("signal reconnecting counts as reconnecting", () => {
    assert.strictEqual(connectionStateOf(ConnectionState.SignalReconnecting), "reconnecting")
    assert.strictEqual(connectionStateOf(ConnectionState.Reconnecting), "reconnecting")
    assert.strictEqual(connectionStateOf(ConnectionState.Connected), "connected")
  })

  it("maps the SDK's disconnect reasons, unknown ones to Unknown", () => {
    assert.strictEqual(disconnectReasonOf(DisconnectReason.CLIENT_INITIATED), "ClientInitiated")
    assert.strictEqual(disconnectReasonOf(DisconnectReason.DUPLICATE_IDENTITY), "DuplicateIdentity")
    assert.strictEqual(disconnectReasonOf(DisconnectReason.ROOM_CLOSED), "RoomDeleted")
    assert.strictEqual(disconnectReasonOf(DisconnectReason.MIGRATION), "Unknown")
    assert.strictEqual(disconnectReasonOf(undefined), "Unknown")
  })

  it("getUserMedia's DOMException names become readable media failures", () => {
    const denied = mediaFailedOf("camera", Object.assign(new Error("denied"), { name: "NotAllowedError" }))
    assert.strictEqual(denied.reason, "PermissionDenied")
    assert.strictEqual(denied.message, "the browser did not allow access to the camera")
    assert.strictEqual(mediaFailedOf("microphone", Object.assign(new Error("x"), { name: "NotFoundError" })).reason, "DeviceNotFound")
    assert.strictEqual(mediaFailedOf("microphone", new Error("x")).reason, "Publish")
  })
})
