// Alice is kicked from the room mid-call: her client sees her own m.room.member turn to `leave`, core ends the call
// (CallEnd "RemovedFromRoom": SFU first, then the membership attempt, refused now), and `matrixrtc join` exits with
// code 7 instead of staying on the SFU as an unseen listener. Afterwards neither LiveKit nor matrix-js-sdk shows
// anything of her device, and none of her delayed events is left scheduled.
//
// The stack's room was created by alice (power 100, and in room v12 creators cannot be kicked at all), so this
// test runs in a room of its own that bob creates: nothing the other tests rely on changes.
import { dispose } from "@livekit/rtc-node"
import { matrixRequest, type StackInfo, type StackUser } from "@matrixrtc-effect/devstack"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import {
  freshDeviceId,
  hasMember,
  legacyIdentity,
  listIdentities,
  livekitObserver,
  loginArgs,
  loginFresh,
  rtcObserver,
  spawnCli,
  stack,
  userAt
} from "./e2e-helpers.ts"

afterAll(() => dispose())

/** A client-server request as `user`; fails with the homeserver's error. */
const as = (s: StackInfo, user: StackUser, method: string, path: string, body?: unknown) =>
  Effect.tryPromise(() =>
    matrixRequest(method, path, { baseUrl: s.homeserverUrl, accessToken: user.accessToken, ...(method === "GET" ? {} : { body: body ?? {} }) })
  )

/**
 * A room `owner` creates with Element Call's rule that anyone may write call.member (power 0), and `guests` join.
 * Everyone leaves and forgets it when the scope closes: the stack lives on between runs, and the users' syncs
 * should not grow with every run.
 */
const ownRoom = (s: StackInfo, owner: StackUser, guests: ReadonlyArray<StackUser>) =>
  Effect.gen(function*() {
    const { room_id: roomId } = yield* Effect.tryPromise(() =>
      matrixRequest<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", {
        baseUrl: s.homeserverUrl,
        accessToken: owner.accessToken,
        body: {
          name: "e2e-removed",
          preset: "private_chat",
          invite: guests.map((g) => g.userId),
          power_level_content_override: { events: { "org.matrix.msc3401.call.member": 0 } }
        }
      })
    )
    const roomPath = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`
    yield* Effect.addFinalizer(() =>
      Effect.forEach([...guests, owner], (u) =>
        // A kicked guest cannot leave again, but can forget.
        Effect.all([Effect.ignore(as(s, u, "POST", `${roomPath}/leave`)), Effect.ignore(as(s, u, "POST", `${roomPath}/forget`))]), {
        discard: true
      }))
    for (const g of guests) yield* as(s, g, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`)
    return { roomId, roomPath }
  })

const DelayedEvents = Schema.Struct({
  delayed_events: Schema.Array(Schema.Struct({ delay_id: Schema.String, room_id: Schema.String }))
})

/** `user`'s delayed events in `roomId` (MSC4140 lists a user's, whichever device scheduled them). */
const delayedEventsIn = (s: StackInfo, user: StackUser, roomId: string) =>
  Effect.map(
    as(s, user, "GET", "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"),
    (body) => Schema.decodeUnknownSync(DelayedEvents)(body).delayed_events.filter((d) => d.room_id === roomId)
  )

describe("kicked from the room mid-call", () => {
  it.scopedLive("the CLI leaves the SFU, exits 7 (RemovedFromRoom); the membership is gone for peers, nothing left scheduled", () =>
    Effect.gen(function*() {
      const s = stack()
      const alice = userAt(s, 0)
      const bob = userAt(s, 1)
      const dave = userAt(s, 3)
      const { roomId, roomPath } = yield* ownRoom(s, bob, [alice, dave])
      const deviceId = freshDeviceId("removed")
      const identity = legacyIdentity(alice.userId, deviceId)
      // On a device of its own: an initial sync of dave's shared device may come from Synapse's sync cache, from
      // before he joined this room.
      const observer = yield* rtcObserver(s, yield* loginFresh(s, dave, "e2e-removed-observer"), roomId)
      const login = loginArgs(s, alice, deviceId)
      const proc = yield* spawnCli(["join", ...login.args, "--room", roomId, "--json"], login.env)
      const joined = yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")
      const livekitRoom = joined["livekitRoom"] as string
      const sfu = yield* livekitObserver(s, livekitRoom)
      yield* sfu.waitUntil((ids) => ids.has(identity), 15_000, "the LiveKit observer to see the participant")
      yield* observer.waitUntil(hasMember(alice.userId, deviceId), 20_000, "matrix-js-sdk to list the membership")
      assert.strictEqual((yield* delayedEventsIn(s, alice, roomId)).length, 1, "the delayed leave is scheduled")

      yield* as(s, bob, "POST", `${roomPath}/kick`, { user_id: alice.userId, reason: "e2e-removed" })

      const exit = yield* proc.waitExit(30_000)
      assert.strictEqual(exit.code, 7, proc.stderr())
      const events = yield* proc.events.get
      assert.deepStrictEqual(events.filter((e) => e.event === "left").map((e) => e["end"]), ["RemovedFromRoom"])
      const last = events.at(-1)
      assert.strictEqual(last?.event, "error", JSON.stringify(last))
      assert.strictEqual((last?.["error"] as Record<string, unknown> | undefined)?.["_tag"], "RemovedFromRoom", JSON.stringify(last))
      // It left the SFU itself (the process has exited; LiveKit has dropped it by now or within its signal timeout).
      yield* sfu.waitUntil((ids) => !ids.has(identity), 10_000, "the participant to leave the SFU")
      assert.notInclude(yield* listIdentities(s, livekitRoom), identity, "LiveKit's RoomService still lists alice")
      // matrix-js-sdk drops a member whose user is not joined, whatever her call.member state still says (her `{}`
      // was refused: she may no longer write to the room).
      yield* observer.waitUntil((ms) => !hasMember(alice.userId, deviceId)(ms), 20_000, "the membership to end for peers")
      // Synapse does not cancel a kicked user's delayed events (it cancels only other users' delayed state events
      // for the very state key written, here m.room.member/@alice). The leave's `send` of the delayed leave takes it
      // off the schedule all the same: Synapse deletes a delayed event once processed, even when sending it is
      // refused (403, not in the room). Had the send not reached Synapse, the leave's cancel would have.
      assert.deepStrictEqual(yield* delayedEventsIn(s, alice, roomId), [])
    }), { timeout: 120_000 })
})
