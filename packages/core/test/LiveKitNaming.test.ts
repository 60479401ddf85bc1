import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { LiveKitNaming } from "../src/index.ts"

describe("LiveKitNaming (auth-service.md §2.3 vectors)", () => {
  it.effect("room names", () =>
    Effect.gen(function*() {
      assert.strictEqual(
        yield* LiveKitNaming.liveKitRoomName("!roomid:example.com", "slot1234"),
        "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc"
      )
      assert.strictEqual(
        yield* LiveKitNaming.liveKitRoomName("!room:example.com", "m.call#ROOM"),
        "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs"
      )
      assert.strictEqual(
        yield* LiveKitNaming.liveKitRoomName("!room:example.com", "m.call#"),
        "hrQ0l3fv1RI0sCBUn3Nu59Bu/b3f7hWXbMLLfFMLNOY"
      )
    }))

  it.effect("hashed identities", () =>
    Effect.gen(function*() {
      assert.strictEqual(
        yield* LiveKitNaming.liveKitIdentityHashed("@alice:example.com", "DEVICE123", "memberABC"),
        "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU"
      )
      assert.strictEqual(
        yield* LiveKitNaming.liveKitIdentityHashed("@alice:example.com", "DEVICE", "member-1"),
        "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU"
      )
    }))

  it.effect("legacy identity is plain user:device", () =>
    Effect.gen(function*() {
      assert.strictEqual(
        yield* LiveKitNaming.liveKitIdentityLegacy("@alice:example.com", "DEVICE"),
        "@alice:example.com:DEVICE"
      )
      assert.strictEqual(yield* LiveKitNaming.liveKitIdentityLegacy("@alice:example.com", ""), "@alice:example.com:")
    }))

  it("base64 has no padding and the standard alphabet", () => {
    assert.strictEqual(LiveKitNaming.base64StdNoPad(new Uint8Array([])), "")
    assert.strictEqual(LiveKitNaming.base64StdNoPad(new Uint8Array([0xfb])), "+w")
    assert.strictEqual(LiveKitNaming.base64StdNoPad(new Uint8Array([0xfb, 0xff])), "+/8")
    assert.strictEqual(LiveKitNaming.base64StdNoPad(new Uint8Array([0xfb, 0xff, 0xbf])), "+/+/")
  })
})
