/**
 * The room's call-membership events as a Stream: what the client already holds
 * first, then each new one; with them the current `m.room.member` events of their
 * senders and every later change of anyone's room membership, so the fold can drop
 * members who are no longer joined, as MatrixRTCSession does.
 *
 * Bridges matrix-js-sdk emitters (effect-style.md §6): listeners go on before the
 * current state is read, so nothing falls in between, and an event id seen twice
 * is emitted once. Listeners come off when the stream's scope closes.
 */
import type { Ids, RawCallEvent } from "@matrixrtc-effect/core"
import { Effect, Stream } from "effect"
import * as sdk from "matrix-js-sdk"
import { RoomStickyEventsEvent } from "matrix-js-sdk/lib/models/room-sticky-events.js"
import type { StickyMatrixEvent } from "matrix-js-sdk/lib/models/room-sticky-events.js"

export const CALL_MEMBER_STATE_TYPE = "org.matrix.msc3401.call.member"
export const RTC_MEMBER_STICKY_TYPE = "org.matrix.msc4143.rtc.member"
const ROOM_MEMBER_TYPE = "m.room.member"

/**
 * None for local echoes: they have no server event id yet and come back from sync anyway. A sticky event
 * carries the SDK's own expiry, fixed when the event arrived: the fold may read it much later (an event
 * already in the room's sticky map when we subscribe).
 */
const toRaw = (event: sdk.MatrixEvent): RawCallEvent | undefined => {
  const eventId = event.getId()
  const sender = event.getSender()
  if (eventId === undefined || eventId.startsWith("~") || sender === undefined) return undefined
  const sticky = event.unstableStickyInfo
  return {
    type: event.getType(),
    stateKey: event.getStateKey(),
    sender,
    eventId,
    originServerTs: event.getTs(),
    content: event.getContent(),
    ...(sticky !== undefined ? { stickyDurationMs: sticky.duration_ttl_ms ?? sticky.duration_ms } : {}),
    ...(event.unstableStickyExpiresAt !== undefined ? { stickyExpiresAt: event.unstableStickyExpiresAt } : {})
  }
}

export const callMemberEvents = (client: sdk.MatrixClient, roomId: Ids.RoomId): Stream.Stream<RawCallEvent> =>
  Stream.asyncScoped<RawCallEvent>(
    (emit) =>
      Effect.gen(function* () {
        const seen = new Set<string>()
        // The room membership last passed on per user; a user not in here counts as joined, as in the fold.
        const membershipOf = new Map<string, string>()
        const push = (event: sdk.MatrixEvent) => {
          const raw = toRaw(event)
          if (raw === undefined || seen.has(raw.eventId)) return
          if (raw.type === ROOM_MEMBER_TYPE && raw.stateKey !== undefined) {
            // Only a change of what the fold knows is news (not a display name or avatar change, which a
            // gappy sync can deliver as the only event after a leave and a re-join).
            const membership = String(event.getContent()["membership"] ?? "")
            if (membership === (membershipOf.get(raw.stateKey) ?? "join")) return
            if (membership === "join") membershipOf.delete(raw.stateKey)
            else membershipOf.set(raw.stateKey, membership)
          }
          seen.add(raw.eventId)
          void emit.single(raw)
        }

        const onState = (event: sdk.MatrixEvent, state: sdk.RoomState) => {
          const type = event.getType()
          if (event.getRoomId() !== roomId || (type !== CALL_MEMBER_STATE_TYPE && type !== ROOM_MEMBER_TYPE)) return
          // Back-pagination replays old state into `oldState`; only the live state counts.
          const room = client.getRoom(roomId)
          if (room !== null && state !== room.currentState) return
          push(event)
        }

        /**
         * The SDK dropped the event from its sticky map: it expired, or is being redacted. Passed on again (past
         * the id check) with its stickiness ending now at the latest, so the fold lets it go too. The content is
         * copied: the SDK empties the very object right after this, when it redacts the event, and the fold
         * still needs the sticky key to find the entry.
         */
        const ended = (event: StickyMatrixEvent) => {
          const raw = toRaw(event)
          if (raw === undefined) return
          seen.add(raw.eventId)
          void emit.single({
            ...raw,
            content: { ...event.getContent() },
            stickyExpiresAt: Math.min(event.unstableStickyExpiresAt, Date.now())
          })
        }

        const onSticky = (
          added: ReadonlyArray<StickyMatrixEvent>,
          updated: ReadonlyArray<{ readonly current: StickyMatrixEvent; readonly previous: StickyMatrixEvent }>,
          removed: ReadonlyArray<StickyMatrixEvent>
        ) => {
          const ours = (e: StickyMatrixEvent) => e.getType() === RTC_MEMBER_STICKY_TYPE
          for (const e of added) if (ours(e)) push(e)
          for (const { current, previous } of updated) {
            if (!ours(current)) continue
            // A redaction puts the previous, older event back in place. The fold, where the later expiry
            // wins, has to hear that the one being redacted ended. The older one goes first, again: the fold
            // may not have it (the room's sticky map only hands out current events), and it then takes over
            // without the list going empty in between.
            if (previous.unstableStickyExpiresAt >= current.unstableStickyExpiresAt) {
              seen.delete(current.getId() ?? "")
              push(current)
              ended(previous)
            } else push(current)
          }
          for (const e of removed) if (ours(e)) ended(e)
        }

        // The client does not re-emit sticky updates, so they are heard on the Room, once it exists.
        let attached: sdk.Room | undefined
        const attach = (room: sdk.Room) => {
          if (attached !== undefined || room.roomId !== roomId) return
          attached = room
          room.on(RoomStickyEventsEvent.Update, onSticky)
          const calls = [
            ...room.currentState.getStateEvents(CALL_MEMBER_STATE_TYPE),
            ...[...room._unstable_getStickyEvents()].filter((e) => e.getType() === RTC_MEMBER_STICKY_TYPE)
          ]
          // Their senders' room membership first, so no list shows a member who has left the room.
          for (const sender of new Set(calls.map((e) => e.getSender()))) {
            const member = sender === undefined ? null : room.currentState.getStateEvents(ROOM_MEMBER_TYPE, sender)
            if (member !== null) push(member)
          }
          for (const e of calls) push(e)
        }

        const onSync = (state: sdk.SyncState) => {
          if (state === sdk.SyncState.Stopped) void emit.end()
        }

        yield* Effect.acquireRelease(
          Effect.sync(() => {
            client.on(sdk.RoomStateEvent.Events, onState)
            client.on(sdk.ClientEvent.Room, attach)
            client.on(sdk.ClientEvent.Sync, onSync)
          }),
          () =>
            Effect.sync(() => {
              client.off(sdk.RoomStateEvent.Events, onState)
              client.off(sdk.ClientEvent.Room, attach)
              client.off(sdk.ClientEvent.Sync, onSync)
              attached?.off(RoomStickyEventsEvent.Update, onSticky)
            })
        )
        const room = client.getRoom(roomId)
        if (room !== null) attach(room)
      }),
    "unbounded"
  ).pipe(Stream.withSpan("MatrixClient.callMemberEvents", { attributes: { roomId } }))
