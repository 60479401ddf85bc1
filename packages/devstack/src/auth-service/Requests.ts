/**
 * Request bodies of the lk-jwt-service API (auth-service.md §1.2–1.4) as Go
 * structs, and their `Validate()` steps with the exact error texts.
 */
import { Option } from "effect"
import * as GoJson from "./GoJson.ts"

const openIdToken = GoJson.struct({
  access_token: GoJson.string,
  token_type: GoJson.string,
  matrix_server_name: GoJson.string,
  expires_in: GoJson.int
})

/** `/get_token` and `/delegate_delayed_leave` (`SFURequest`, `DelegateDelayedLeaveRequest`). */
export const SfuRequest = GoJson.struct({
  room_id: GoJson.string,
  slot_id: GoJson.string,
  openid_token: openIdToken,
  member: GoJson.struct({
    id: GoJson.string,
    claimed_user_id: GoJson.string,
    claimed_device_id: GoJson.string
  }),
  delay_id: GoJson.string,
  delay_timeout: GoJson.int,
  delay_cs_api_url: GoJson.string
})
export type SfuRequest = GoJson.FieldType<typeof SfuRequest>

/** Legacy `/sfu/get` (`LegacySFURequest`). */
export const LegacySfuRequest = GoJson.struct({
  room: GoJson.string,
  openid_token: openIdToken,
  device_id: GoJson.string,
  delay_id: GoJson.string,
  delay_timeout: GoJson.int,
  delay_cs_api_url: GoJson.string
})
export type LegacySfuRequest = GoJson.FieldType<typeof LegacySfuRequest>

const missingDelay = "The request body is missing `delay_id` or `delay_timeout`"
const missingRoomSlot = "The request body is missing `room_id` or `slot_id`"

/** A half delay pair: exactly one of `delay_id` non-empty and `delay_timeout > 0`. */
const halfDelayPair = (r: { readonly delay_id: string; readonly delay_timeout: number }) =>
  (r.delay_id !== "") !== (r.delay_timeout > 0)

/**
 * The checks `/get_token` and delegate share. Their texts differ only in an "a":
 * "missing a \`id\`" on `/get_token`, "missing \`id\`" on delegate.
 */
const validateMember = (r: SfuRequest, a: "a " | ""): Option.Option<string> => {
  if (r.room_id === "" || r.slot_id === "") return Option.some(missingRoomSlot)
  if (r.member.id === "" || r.member.claimed_user_id === "" || r.member.claimed_device_id === "") {
    return Option.some(`The request body \`member\` is missing ${a}\`id\`, \`claimed_user_id\` or \`claimed_device_id\``)
  }
  if (r.openid_token.access_token === "" || r.openid_token.matrix_server_name === "") {
    return Option.some(`The request body \`openid_token\` is missing ${a}\`access_token\` or \`matrix_server_name\``)
  }
  return Option.none()
}

/** `/get_token` validation; `Some(message)` is a 400 `M_BAD_JSON`. */
export const validateGetToken = (r: SfuRequest): Option.Option<string> =>
  Option.orElse(validateMember(r, "a "), () => halfDelayPair(r) ? Option.some(missingDelay) : Option.none())

/** `/delegate_delayed_leave` validation: the delay pair is mandatory. */
export const validateDelegate = (r: SfuRequest): Option.Option<string> =>
  Option.orElse(
    validateMember(r, ""),
    () => r.delay_id === "" || r.delay_timeout <= 0 ? Option.some(missingDelay) : Option.none()
  )

/** Legacy `/sfu/get` validation; `device_id` is deliberately not checked. */
export const validateLegacy = (r: LegacySfuRequest): Option.Option<string> => {
  if (r.room === "") return Option.some("Missing room parameter")
  if (r.openid_token.access_token === "" || r.openid_token.matrix_server_name === "") {
    return Option.some("Missing OpenID token parameters")
  }
  if (halfDelayPair(r)) return Option.some(missingDelay)
  return Option.none()
}
