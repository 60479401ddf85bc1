// The in-memory auth service hashes synchronously (testing/Sha256.ts) but must name rooms and
// participants by LiveKitNaming's recipes, as the real service does: a recipe changed in one place
// only would make the tests' SFU names drift from the real ones unnoticed.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { AuthService } from "../src/AuthService.ts"
import * as LiveKitNaming from "../src/LiveKitNaming.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as Testing from "../src/testing/index.ts"

const vectors = [
  { roomId: "!room:example.org", slotId: LiveKitNaming.legacySlotId, memberId: "m-1" },
  { roomId: "!roomid:example.com", slotId: "slot1234", memberId: "memberABC" },
  { roomId: "!é:例え.org", slotId: "m.call#", memberId: "<&>\u2028🎉" }
]

describe("TestAuthService's names are LiveKitNaming's", () => {
  it.effect("room names and identities, legacy and sticky, for a few rooms, slots and members", () =>
    Effect.gen(function*() {
      const mx = yield* MatrixClient
      const auth = yield* AuthService
      const url = (yield* Testing.TestAuthService.TestAuthService).url
      const session = Option.getOrThrow(yield* mx.session)
      for (const { memberId, roomId, slotId } of vectors) {
        const legacy = yield* auth.sfuGet(url, { roomId, deviceId: session.deviceId, openIdToken: yield* mx.requestOpenIdToken })
        assert.strictEqual(legacy.claims.room, yield* LiveKitNaming.liveKitRoomName(roomId, LiveKitNaming.legacySlotId))
        assert.strictEqual(legacy.claims.identity, yield* LiveKitNaming.liveKitIdentityLegacy(session.userId, session.deviceId))

        const sticky = yield* auth.getToken(url, {
          roomId,
          slotId,
          openIdToken: yield* mx.requestOpenIdToken,
          member: { id: memberId, claimedUserId: session.userId, claimedDeviceId: session.deviceId }
        })
        assert.strictEqual(sticky.claims.room, yield* LiveKitNaming.liveKitRoomName(roomId, slotId), roomId)
        assert.strictEqual(
          sticky.claims.identity,
          yield* LiveKitNaming.liveKitIdentityHashed(session.userId, session.deviceId, memberId),
          memberId
        )
      }
    }).pipe(Effect.provide(Testing.layer())))
})
