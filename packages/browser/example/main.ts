/**
 * Example web app: log in, pick a room, join/leave the call, see members and
 * audio/video tiles, and read typed errors as sentences.
 *
 * This file is the app's edge: DOM handlers run effects through one
 * `ManagedRuntime` built from `BrowserCall.layer` at login. Everything below the
 * edge is the library.
 */
import { Cause, Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted, Scope, Stream } from "effect"
import { Call, Ids } from "@matrixrtc-effect/core"
import type { CallMember } from "@matrixrtc-effect/core"
import { MatrixSdkClient } from "@matrixrtc-effect/matrix-js-sdk"
import { BrowserCall, BrowserLiveKit, leaveOnPageHide } from "../src/index.ts"
import type { MediaTrack } from "../src/index.ts"

// ---------------------------------------------------------------------------------------
// Config: /config.json (served by `serveExample`) overridden by URL parameters.

interface Config {
  homeserverUrl: string
  user: string
  password: string
  roomId: string
  autoJoin: boolean
}

const loadConfig = async (): Promise<Config> => {
  const served: Partial<Record<keyof Config, unknown>> = await fetch("./config.json")
    .then((r) => (r.ok ? r.json() : {}))
    .catch(() => ({}))
  const params = new URLSearchParams(location.search)
  const pick = (key: keyof Config, ...aliases: Array<string>): string | undefined => {
    for (const k of [key, ...aliases]) {
      const v = params.get(k)
      if (v !== null) return v
    }
    const v = served[key]
    return typeof v === "string" ? v : typeof v === "boolean" ? String(v) : undefined
  }
  return {
    homeserverUrl: pick("homeserverUrl", "hs") ?? "http://127.0.0.1:8008",
    user: pick("user") ?? "",
    password: pick("password") ?? "",
    roomId: pick("roomId", "room") ?? "",
    autoJoin: ["1", "true"].includes(pick("autoJoin") ?? "")
  }
}

// ---------------------------------------------------------------------------------------
// DOM helpers

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`#${id} missing from index.html`)
  return el as T
}

type View = "login" | "rooms" | "call" | "error"
type State = "starting" | "login" | "logging-in" | "rooms" | "joining" | "in-call" | "leaving" | "error"

const setState = (state: State, status: string) => {
  document.body.dataset["state"] = state
  $("status").textContent = status
}

const show = (view: View) => {
  for (const v of ["login", "room", "call", "error"]) $(`${v}-view`).hidden = true
  $(view === "rooms" ? "room-view" : `${view}-view`).hidden = false
}

/** A typed library error as a sentence; anything else (a defect) as Effect prints it. */
const describeCause = (cause: Cause.Cause<unknown>): { tag: string; message: string } => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value as { _tag?: unknown; reason?: unknown; message?: unknown }
    const tag = [e._tag, e.reason].filter((x) => typeof x === "string").join(" / ")
    return { tag: tag || "Error", message: typeof e.message === "string" ? e.message : String(e) }
  }
  return { tag: "Defect", message: Cause.pretty(cause) }
}

const showError = (cause: Cause.Cause<unknown>, back: View) => {
  const { tag, message } = describeCause(cause)
  $("error-message").textContent = message
  $("error-tag").textContent = tag
  $("error-view").dataset["tag"] = tag
  $("error-back").onclick = () => {
    show(back)
    setState(back === "login" ? "login" : "rooms", back === "login" ? "logged out" : "ready")
  }
  show("error")
  setState("error", "error")
}

// ---------------------------------------------------------------------------------------
// Runtime (built at login)

type Runtime = ManagedRuntime.ManagedRuntime<BrowserCall.Services, unknown>
let runtime: Runtime | undefined

const logLayer = Logger.minimumLogLevel(LogLevel.Info)

const login = async (config: Config): Promise<boolean> => {
  setState("logging-in", `logging in to ${config.homeserverUrl}…`)
  const rt: Runtime = ManagedRuntime.make(
    BrowserCall.layer({
      matrix: {
        homeserverUrl: config.homeserverUrl,
        user: config.user,
        password: Redacted.make(config.password),
        initialDeviceDisplayName: "matrixrtc-effect example"
      },
      liveKit: { publishOnConnect: { microphone: true, camera: true } }
    }).pipe(Layer.provide(logLayer))
  )
  const exit = await rt.runPromiseExit(MatrixSdkClient)
  if (Exit.isFailure(exit)) {
    await rt.dispose()
    showError(exit.cause, "login")
    return false
  }
  runtime = rt
  const client = exit.value
  $("whoami").textContent = `Logged in as ${client.getUserId()} (device ${client.getDeviceId()})`
  document.body.dataset["userId"] = client.getUserId() ?? ""
  document.body.dataset["deviceId"] = client.getDeviceId() ?? ""
  const select = $<HTMLSelectElement>("room-select")
  select.replaceChildren(
    ...client
      .getRooms()
      .filter((r) => r.getMyMembership() === "join")
      .map((r) => {
        const option = document.createElement("option")
        option.value = r.roomId
        option.textContent = `${r.name} (${r.roomId})`
        return option
      })
  )
  if (config.roomId !== "") {
    if ([...select.options].some((o) => o.value === config.roomId)) select.value = config.roomId
    else $<HTMLInputElement>("room-form").querySelector<HTMLInputElement>("[name=roomIdText]")!.value = config.roomId
  }
  show("rooms")
  setState("rooms", "ready")
  prepareLobby(selectedRoom())
  return true
}

// ---------------------------------------------------------------------------------------
// The lobby: while the room list is shown, the join of the selected room is made ready
// (`Call.prepare`: auth service, OpenID token, LiveKit JWT; nothing visible to anyone yet),
// so that "Join" only has to publish the membership and connect. A failed or stale preparation
// costs nothing: the join then does every step itself and reports the typed error.

let lobby: { readonly roomIdText: string; readonly prepared: Promise<Option.Option<Call.PreparedJoin>> } | undefined

const prepareLobby = (roomIdText: string) => {
  const rt = runtime
  if (rt === undefined || roomIdText === "" || lobby?.roomIdText === roomIdText) return
  const prepared = rt
    .runPromise(Ids.roomId(roomIdText).pipe(Effect.flatMap((roomId) => Call.prepare(roomId)), Effect.option))
    .catch(() => Option.none<Call.PreparedJoin>())
  lobby = { roomIdText, prepared }
}

/** The lobby's preparation for `roomIdText`, if there is one (waiting for it if it is still under way). */
const takePrepared = async (roomIdText: string): Promise<Call.PreparedJoin | undefined> => {
  const l = lobby
  lobby = undefined
  return l?.roomIdText === roomIdText ? Option.getOrUndefined(await l.prepared) : undefined
}

const selectedRoom = () => {
  const typed = $<HTMLFormElement>("room-form").querySelector<HTMLInputElement>("[name=roomIdText]")!.value.trim()
  return typed !== "" ? typed : $<HTMLSelectElement>("room-select").value
}

const logout = async () => {
  lobby = undefined
  await runtime?.dispose()
  runtime = undefined
  show("login")
  setState("login", "logged out")
}

// ---------------------------------------------------------------------------------------
// The call

interface InCall {
  readonly call: Call.Call
  readonly scope: Scope.CloseableScope
}
let inCall: InCall | undefined

const shortName = (identity: string) => identity.replace(/^@/, "").split(":")[0] ?? identity

const renderMembers = (members: ReadonlyArray<CallMember>) => {
  $("members").replaceChildren(
    ...members.map((m) => {
      const li = document.createElement("li")
      li.className = "member"
      li.dataset["userId"] = m.userId
      li.dataset["deviceId"] = m.deviceId
      li.textContent = `${m.userId} · ${m.deviceId}`
      return li
    })
  )
}

/**
 * One tile per participant (us first), with its video, and hidden audio
 * elements for remote audio. Elements are kept per track sid so a re-render
 * does not re-attach media that is already playing.
 */
const makeTileRenderer = (runSync: <A>(e: Effect.Effect<A>) => A) => {
  const elements = new Map<string, { track: MediaTrack; element: HTMLMediaElement }>()
  let local: ReadonlyArray<MediaTrack> = []
  let remote: ReadonlyArray<MediaTrack> = []
  let participants: ReadonlyArray<string> = []
  let self = ""

  const elementFor = (t: MediaTrack): HTMLMediaElement => {
    const known = elements.get(t.sid)
    if (known !== undefined && known.track.mediaStreamTrack === t.mediaStreamTrack) return known.element
    if (known !== undefined) runSync(known.track.detach(known.element))
    const element = runSync(t.attach())
    if (element instanceof HTMLVideoElement) {
      element.muted = true
      element.playsInline = true
    }
    element.dataset["sid"] = t.sid
    elements.set(t.sid, { track: t, element })
    return element
  }

  const render = () => {
    const all = [...local, ...remote]
    for (const [sid, { track, element }] of elements) {
      if (!all.some((t) => t.sid === sid)) {
        runSync(track.detach(element))
        elements.delete(sid)
      }
    }
    const ids = [self, ...participants.filter((p) => p !== self)]
    $("tiles").replaceChildren(
      ...ids.map((identity) => {
        const tile = document.createElement("div")
        tile.className = "tile"
        tile.dataset["identity"] = identity
        tile.dataset["local"] = String(identity === self)
        const tracks = all.filter((t) => t.participant === identity)
        const video = tracks.find((t) => t.kind === "video" && !t.muted)
        if (video !== undefined) tile.append(elementFor(video))
        else {
          const placeholder = document.createElement("div")
          placeholder.className = "no-video"
          placeholder.textContent = shortName(identity).slice(0, 1).toUpperCase()
          tile.append(placeholder)
        }
        // Our own audio is never played back (echo); remote audio plays through hidden elements.
        for (const audio of tracks.filter((t) => t.kind === "audio" && !t.local)) {
          const el = elementFor(audio)
          el.hidden = true
          tile.append(el)
        }
        const label = document.createElement("span")
        label.className = "label"
        label.textContent = identity === self ? `${identity} (you)` : identity
        tile.append(label)
        if (tracks.some((t) => t.kind === "audio" && !t.muted)) {
          const badge = document.createElement("span")
          badge.className = "audio-badge"
          badge.textContent = "mic on"
          tile.append(badge)
        }
        return tile
      })
    )
  }

  return {
    setSelf: (identity: string) => ((self = identity), render()),
    setLocal: (t: ReadonlyArray<MediaTrack>) => ((local = t), render()),
    setRemote: (t: ReadonlyArray<MediaTrack>) => ((remote = t), render()),
    setParticipants: (p: ReadonlyArray<string>) => ((participants = p), render()),
    clear: () => {
      for (const { track, element } of elements.values()) runSync(track.detach(element))
      elements.clear()
      $("tiles").replaceChildren()
    }
  }
}

const joinCall = async (roomIdText: string) => {
  const rt = runtime
  if (rt === undefined) return
  setState("joining", `joining ${roomIdText}…`)
  $("join-button").setAttribute("disabled", "")
  const prepared = await takePrepared(roomIdText)
  document.body.dataset["joinPrepared"] = prepared === undefined ? "no" : "yes"
  const scope = await rt.runPromise(Scope.make())
  const exit = await rt.runPromiseExit(
    Effect.gen(function*() {
      // Closing the tab closes the call's scope: the same leave as the Leave button. Registered
      // before the join, so that a tab closed during a slow join leaves too; the delayed leave
      // covers what the page cannot finish.
      yield* leaveOnPageHide(Scope.close(scope, Exit.void)).pipe(Scope.extend(scope))
      const roomId = yield* Ids.roomId(roomIdText)
      const call = yield* Call.join(roomId, { callIntent: "video", prepared }).pipe(Scope.extend(scope))

      const runSync = <A>(e: Effect.Effect<A>) => Effect.runSync(e)
      const tiles = makeTileRenderer(runSync)
      yield* Scope.addFinalizer(scope, Effect.sync(tiles.clear))
      const ui = <A, E>(stream: Stream.Stream<A, E>, f: (a: A) => void) =>
        stream.pipe(Stream.runForEach((a) => Effect.sync(() => f(a))), Effect.forkIn(scope))

      yield* ui(call.members, renderMembers)
      // The SFU connection's health, as livekit-client reports it while it reconnects on its own.
      yield* ui(call.connection.connectionStates, (state) => {
        if (inCall?.call !== call) return
        if (state === "connected") setState("in-call", `in call as ${call.connection.identity}`)
        else $("status").textContent = state === "reconnecting" ? "connection lost, reconnecting…" : state
      })
      tiles.setSelf(call.connection.identity)
      yield* ui(call.connection.remoteParticipantsChanges, (ps) => tiles.setParticipants(ps.map((p) => p.identity)))
      const media = BrowserLiveKit.browserConnection(call.connection)
      if (Option.isSome(media)) {
        yield* ui(media.value.localTracksChanges, tiles.setLocal)
        yield* ui(media.value.remoteTracksChanges, tiles.setRemote)
        yield* ui(media.value.mediaErrors, (e) => ($("status").textContent = e.message))
        // Joined without a click (autoJoin): the browser may block playback until the user interacts.
        if (!(yield* media.value.canPlaybackAudio)) {
          const button = $("audio-button")
          button.hidden = false
          button.onclick = () => {
            button.hidden = true
            void runtime?.runPromise(media.value.startAudio)
          }
          yield* Scope.addFinalizer(scope, Effect.sync(() => (button.hidden = true)))
        }
      }
      return call
    })
  )
  $("join-button").removeAttribute("disabled")
  if (Exit.isFailure(exit)) {
    // join registered its cleanup in `scope`: closing it leaves no membership behind.
    await rt.runPromise(Scope.close(scope, exit))
    showError(exit.cause, "rooms")
    return
  }
  inCall = { call: exit.value, scope }
  delete document.body.dataset["callEnded"]
  void watchEnd(rt, inCall)
  $("call-title").textContent = `Call in ${exit.value.roomId}`
  show("call")
  setState("in-call", `in call as ${exit.value.connection.identity}`)
}

/** Closes the call's scope (the leave, if the call has not ended yet) and returns to the room list. */
const backToRooms = async (c: InCall, status: string) => {
  inCall = undefined
  await runtime?.runPromise(Scope.close(c.scope, Exit.void))
  $("members").replaceChildren()
  show("rooms")
  setState("rooms", status)
  prepareLobby(selectedRoom())
}

const leaveCall = async () => {
  const c = inCall
  if (runtime === undefined || c === undefined) return
  setState("leaving", "leaving…")
  await backToRooms(c, "left the call")
}

const endedStatus: Record<Call.CallEnd, string> = {
  Left: "left the call",
  SfuDisconnected: "the call ended: the connection to the media server was lost",
  TokenRejected: "the call ended: the homeserver no longer accepts this session; log in again",
  RemovedFromRoom: "the call ended: you are no longer in the room",
  MembershipRejected: "the call ended: the room no longer lets you take part in calls"
}

/**
 * However the call ended (the Leave button, the SFU gone, the session logged out, a leave on
 * pagehide in a page that then came back from the back/forward cache), the page shows it and,
 * unless the Leave button is already doing so, returns to the room list.
 */
const watchEnd = (rt: Runtime, c: InCall) =>
  rt.runPromise(c.call.ended).then(
    async (reason) => {
      document.body.dataset["callEnded"] = reason
      if (inCall === c) await backToRooms(c, endedStatus[reason])
    },
    // The runtime was disposed (logout): nothing to show.
    () => undefined
  )

// ---------------------------------------------------------------------------------------
// Test/debug hooks: read-only views used by the end-to-end tests.

const debug = {
  /** Sum of inbound-rtp audio bytes over the remote audio tracks (getStats). */
  inboundAudioBytes: async (): Promise<number> => {
    const rt = runtime
    const c = inCall
    if (rt === undefined || c === undefined) return 0
    const media = BrowserLiveKit.browserConnection(c.call.connection)
    if (Option.isNone(media)) return 0
    return rt.runPromise(
      Effect.gen(function*() {
        let bytes = 0
        for (const t of yield* media.value.remoteTracks) {
          if (t.kind !== "audio") continue
          const report = yield* t.stats
          if (Option.isNone(report)) continue
          report.value.forEach((s: { type?: string; kind?: string; bytesReceived?: number }) => {
            if (s.type === "inbound-rtp" && s.kind === "audio") bytes += s.bytesReceived ?? 0
          })
        }
        return bytes
      })
    )
  },
  leave: leaveCall,
  /** How the last call ended (`Call.CallEnd`), or "" while it has not. */
  ended: (): string => document.body.dataset["callEnded"] ?? ""
}
Object.assign(globalThis, { exampleDebug: debug })

// ---------------------------------------------------------------------------------------

const main = async () => {
  const config = await loadConfig()
  const form = $<HTMLFormElement>("login-form")
  for (const key of ["homeserverUrl", "user", "password"] as const) {
    form.querySelector<HTMLInputElement>(`[name=${key}]`)!.value = config[key]
  }
  form.onsubmit = (ev) => {
    ev.preventDefault()
    const data = new FormData(form)
    void login({
      ...config,
      homeserverUrl: String(data.get("homeserverUrl")),
      user: String(data.get("user")),
      password: String(data.get("password"))
    })
  }
  const roomForm = $<HTMLFormElement>("room-form")
  roomForm.onsubmit = (ev) => {
    ev.preventDefault()
    void joinCall(selectedRoom())
  }
  $<HTMLSelectElement>("room-select").onchange = () => prepareLobby(selectedRoom())
  roomForm.querySelector<HTMLInputElement>("[name=roomIdText]")!.onchange = () => prepareLobby(selectedRoom())
  $("logout-button").onclick = () => void logout()
  $("leave-button").onclick = () => void leaveCall()

  show("login")
  setState("login", "not logged in")
  if (config.autoJoin && config.user !== "" && config.password !== "") {
    if (await login(config)) {
      const select = $<HTMLSelectElement>("room-select")
      await joinCall(config.roomId !== "" ? config.roomId : select.value)
    }
  }
}

void main()
