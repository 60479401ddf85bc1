/**
 * How call members and LiveKit participants look on screen and in JSON.
 * Shared by `join`, `watch` and the demo.
 */
import type { CallMember, RemoteParticipant } from "@matrixrtc-effect/core"
import { Option } from "effect"
import { printable } from "./Output.ts"

/** The JSON form of a member (no secrets: members are public room state). */
export const memberJson = (m: CallMember) => ({
  userId: m.userId,
  deviceId: m.deviceId,
  memberId: m.memberId,
  dialect: m.dialect,
  rtcBackendIdentity: m.rtcBackendIdentity,
  livekitServiceUrl: m.transports.find((t) => t.livekitServiceUrl !== undefined)?.livekitServiceUrl,
  focusSelection: Option.getOrUndefined(m.focusSelection),
  createdTs: m.createdTs,
  expiresAt: Option.getOrUndefined(m.expiresAt),
  stateKey: m.stateKey
})

const key = (m: CallMember) => `${m.userId}\u0000${m.deviceId}\u0000${m.memberId}`

/** Who came and who went between two member lists. */
export const diff = (before: ReadonlyArray<CallMember>, after: ReadonlyArray<CallMember>) => {
  const was = new Set(before.map(key))
  const is = new Set(after.map(key))
  return {
    joined: after.filter((m) => !was.has(key(m))),
    left: before.filter((m) => !is.has(key(m)))
  }
}

// Members write their own ids (room state): printable before they reach a terminal.
const who = (m: CallMember) => `${printable(m.userId)} (${printable(m.deviceId)})`

/** One human line per arrival/departure, e.g. `+ @bob:example.org (DEV) joined the call`. */
export const diffLines = (d: ReturnType<typeof diff>): ReadonlyArray<string> => [
  ...d.joined.map((m) => `+ ${who(m)} joined the call`),
  ...d.left.map((m) => `- ${who(m)} left the call`)
]

/** The `member` event of a change of the member list: its JSON fields and its human lines. */
export const memberChange = (before: ReadonlyArray<CallMember>, after: ReadonlyArray<CallMember>) => {
  const d = diff(before, after)
  return {
    fields: { members: after.map(memberJson), joined: d.joined.map(memberJson), left: d.left.map(memberJson) },
    lines: diffLines(d)
  }
}

/** `N in the call: @a (DEV), …`. */
export const memberSummary = (members: ReadonlyArray<CallMember>): string =>
  `${members.length} in the call${members.length > 0 ? `: ${members.map(who).join(", ")}` : ""}`

export interface TableRow {
  readonly member: CallMember
  readonly participant: RemoteParticipant | undefined
  readonly isSelf: boolean
}

/**
 * The live table: each member with whether the SFU shows it (matched by the
 * member's LiveKit identity) and what it publishes; then LiveKit participants
 * that have no membership (worth noticing: they are invisible to Matrix clients).
 */
export const table = (options: {
  readonly members: ReadonlyArray<CallMember>
  readonly participants: ReadonlyArray<RemoteParticipant>
  readonly selfIdentity: string
  readonly levels?: ReadonlyMap<string, number> | undefined
}): string => {
  const byIdentity = new Map(options.participants.map((p) => [p.identity, p]))
  const rows = options.members.map((m) => {
    const self = m.rtcBackendIdentity === options.selfIdentity
    const p = byIdentity.get(m.rtcBackendIdentity)
    const level = options.levels?.get(m.rtcBackendIdentity)
    const media = self
      ? "you"
      : p === undefined
      ? "not on the SFU"
      : `on the SFU${p.tracks.length > 0 ? ` (${p.tracks.join(", ")})` : ""}${level !== undefined ? `, audio level ${level.toFixed(2)}` : ""}`
    return [printable(m.userId), printable(m.deviceId), media]
  })
  const memberIds = new Set(options.members.map((m) => m.rtcBackendIdentity))
  const strays = options.participants
    .filter((p) => !memberIds.has(p.identity))
    .map((p) => [printable(p.identity), "", "on the SFU without a call membership"])
  const all = [["MEMBER", "DEVICE", "MEDIA"], ...rows, ...strays]
  const widths = [0, 1].map((i) => Math.max(...all.map((r) => r[i]!.length)))
  const lines = all.map((r) => `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]}`)
  return [`${options.members.length} call member(s); ${options.participants.length} other LiveKit participant(s)`, ...lines].join("\n")
}

export const participantJson = (p: RemoteParticipant) => ({ identity: p.identity, tracks: p.tracks })
