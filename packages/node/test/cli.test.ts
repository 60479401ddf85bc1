// The CLI without a stack: usage errors and their exit code, the output format
// (one JSON object per line with "event"), redaction of secrets, the member
// diff/table, and doctor's verdicts against a fake deployment on loopback.
import { assert, describe, it } from "@effect/vitest"
import { FetchHttpClient } from "@effect/platform"
import { JwtFetchFailed, NotAuthenticated } from "@matrixrtc-effect/core"
import type { CallMember } from "@matrixrtc-effect/core"
import { Console, Effect, Option, Redacted, Ref } from "effect"
import { exitCodeOf, HomeserverUnreachable, main, NotJoined } from "../src/cli/Cli.ts"
import * as Doctor from "../src/cli/Doctor.ts"
import { endFailure, RemovedFromRoom } from "../src/cli/Join.ts"
import { ExitCode } from "../src/cli/Main.ts"
import * as Output from "../src/cli/Output.ts"
import * as Render from "../src/cli/Render.ts"
import { fakeServer, json } from "./support/loopback.ts"

/** Runs `effect` with a console that records what it prints. */
const capture = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const base = yield* Effect.console
    const recording: Console.Console = {
      ...base,
      log: (...args) => Effect.sync(() => void out.push(args.join(" "))),
      error: (...args) => Effect.sync(() => void err.push(args.join(" ")))
    }
    const result = yield* Effect.withConsole(effect, recording)
    return { result, out, err }
  })

const argv = (...args: Array<string>) => ["node", "matrixrtc", ...args]

describe("matrixrtc usage errors (exit 2)", () => {
  it.effect("no credentials", () =>
    Effect.gen(function*() {
      const { result, err } = yield* capture(main(argv("join", "--homeserver", "http://127.0.0.1:9", "--room", "!a:b")))
      assert.strictEqual(result, ExitCode.Usage)
      assert.deepStrictEqual(err, ["error: give --access-token (or env MATRIXRTC_ACCESS_TOKEN), or --user with --password"])
    }))

  it.effect("--user without a password, with --json: the error is also one JSON line", () =>
    Effect.gen(function*() {
      const { result, out } = yield* capture(
        main(argv("watch", "--homeserver", "http://127.0.0.1:9", "--room", "!a:b", "--user", "bob", "--json"))
      )
      assert.strictEqual(result, ExitCode.Usage)
      assert.strictEqual(out.length, 1)
      const line = JSON.parse(out[0]!)
      assert.strictEqual(line.event, "error")
      assert.strictEqual(line.error._tag, "UsageError")
    }))

  it.effect("--tone with --play", () =>
    Effect.gen(function*() {
      const { result } = yield* capture(
        main(argv("join", "--homeserver", "http://h", "--access-token", "tok123456", "--room", "!a:b", "--tone", "440", "--play", "package.json"))
      )
      assert.strictEqual(result, ExitCode.Usage)
    }))

  it.effect("a missing required option and an unknown command", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* capture(main(argv("join", "--room", "!a:b")))).result, ExitCode.Usage)
      assert.strictEqual((yield* capture(main(argv("bogus")))).result, ExitCode.Usage)
    }))

  it.effect("an invalid room id is a usage error and is checked before logging in", () =>
    Effect.gen(function*() {
      const { result, err } = yield* capture(
        main(argv("watch", "--homeserver", "http://127.0.0.1:9", "--access-token", "tok123456", "--room", "not-a-room"))
      )
      assert.strictEqual(result, ExitCode.Usage)
      assert.match(err[0]!, /^error: invalid RoomId/)
    }))
})

describe("matrixrtc argument checks", () => {
  it.scopedLive("a --homeserver that is not an http(s) URL is a usage error, before any request", () =>
    Effect.gen(function*() {
      for (const bad of ["notaurl", "ftp://matrix.example.org"]) {
        const { result, err, out } = yield* capture(
          main(argv("watch", "--homeserver", bad, "--access-token", "tok123456", "--room", "!a:b", "--json"))
        )
        assert.strictEqual(result, ExitCode.Usage, err.join("\n"))
        assert.match(err[0]!, /^error: --homeserver must be an http or https URL/)
        assert.strictEqual(JSON.parse(out[0]!).error._tag, "UsageError")
      }
      const doctor = yield* capture(main(argv("doctor", "--homeserver", "notaurl")))
      assert.strictEqual(doctor.result, ExitCode.Usage)
    }))

  it.effect("an argument error with --json ends with a JSON error line naming the option", () =>
    Effect.gen(function*() {
      const bad = yield* capture(
        main(argv("join", "--homeserver", "http://h", "--access-token", "tok123456", "--room", "!a:b", "--tone", "5", "--json"))
      )
      assert.strictEqual(bad.result, ExitCode.Usage)
      assert.strictEqual(bad.out.length, 1, bad.out.join("\n"))
      const line = JSON.parse(bad.out[0]!)
      assert.strictEqual(line.event, "error")
      assert.include(line.error, { _tag: "ValidationError", type: "InvalidValue" })
      assert.match(line.error.message, /--tone/)

      const missing = yield* capture(main(argv("watch", "--access-token", "tok123456", "--room", "!a:b", "--json")))
      assert.strictEqual(missing.result, ExitCode.Usage)
      assert.match(JSON.parse(missing.out[0]!).error.message, /--homeserver/)
      // Without --json, stdout stays empty.
      const human = yield* capture(main(argv("watch", "--access-token", "tok123456", "--room", "!a:b")))
      assert.deepStrictEqual(human.out, [])
    }))

  it.effect("an argument error that echoes a secret given as --access-token=… redacts it", () =>
    Effect.gen(function*() {
      const bad = yield* capture(
        main(argv("join", "--homeserver", "http://h", "--access-token=SECRETTOK", "--room", "!a:b", "--tone=SECRETTOK", "--json"))
      )
      assert.strictEqual(bad.result, ExitCode.Usage)
      assert.strictEqual(bad.out.length, 1, bad.out.join("\n"))
      assert.notInclude(bad.out[0]!, "SECRETTOK")
      assert.include(bad.out[0]!, "ValidationError")
    }))

  it.scopedLive("--log-level works after the command's own options too", () =>
    Effect.gen(function*() {
      const gone = yield* fakeServer((_req, res) => json(res, 500, {}))
      gone.close()
      const { result, err } = yield* capture(
        main(argv("watch", "--homeserver", gone.url, "--access-token", "tok123456", "--room", "!a:b", "--log-level", "debug"))
      )
      // Past the parsing: the homeserver is unreachable.
      assert.strictEqual(result, ExitCode.Failure, err.join("\n"))
    }))

  it.scopedLive("--play with a file that is not WAV fails before logging in (nobody sees us join)", () =>
    Effect.gen(function*() {
      const requests = yield* Ref.make(0)
      const hs = yield* fakeServer((_req, res) => {
        Effect.runSync(Ref.update(requests, (n) => n + 1))
        json(res, 500, {})
      })
      const { result, err } = yield* capture(
        main(argv("join", "--homeserver", hs.url, "--access-token", "tok123456", "--room", "!a:b", "--play", "package.json"))
      )
      assert.strictEqual(result, ExitCode.Failure)
      assert.match(err[0]!, /^error: not a RIFF\/WAVE file/)
      assert.strictEqual(yield* Ref.get(requests), 0)
    }))
})

describe("an unreachable homeserver", () => {
  it.scopedLive("is named with its URL and the network's reason", () =>
    Effect.gen(function*() {
      const gone = yield* fakeServer((_req, res) => json(res, 500, {}))
      gone.close()
      for (const command of ["watch", "join"]) {
        const { result, err, out } = yield* capture(
          main(argv(command, "--homeserver", gone.url, "--access-token", "tok123456", "--room", "!a:b", "--json"))
        )
        assert.strictEqual(result, ExitCode.Failure)
        assert.deepStrictEqual(err, [`error: cannot reach the homeserver at ${gone.url} (ECONNREFUSED)`])
        assert.include(JSON.parse(out[0]!).error, { _tag: "HomeserverUnreachable", url: gone.url, reason: "ECONNREFUSED" })
      }
    }))
})

describe("exit codes of the call errors", () => {
  it("map one to one", () => {
    assert.strictEqual(exitCodeOf(new NotAuthenticated({ reason: "TokenRejected" })), 3)
    assert.strictEqual(exitCodeOf(new JwtFetchFailed({ reason: "Unreachable" })), 4)
    assert.strictEqual(exitCodeOf({ _tag: "ConnectFailed" }), 5)
    assert.strictEqual(exitCodeOf({ _tag: "MembershipFailed" }), 6)
    assert.strictEqual(exitCodeOf(new RemovedFromRoom({ roomId: "!a:b" })), 7)
    assert.strictEqual(exitCodeOf(new NotJoined({ roomId: "!a:b" })), 7)
    assert.strictEqual(exitCodeOf(new HomeserverUnreachable({ url: "http://h", reason: "ECONNREFUSED" })), 1)
    assert.strictEqual(exitCodeOf(new Error("boom")), 1)
  })

  it("a call that ended without us fails `join` with the code of its end", () => {
    const codes = (["Left", "SfuDisconnected", "TokenRejected", "RemovedFromRoom", "MembershipRejected"] as const).map((end) =>
      [end, Option.match(endFailure("!a:b", end), { onNone: () => ExitCode.Ok, onSome: exitCodeOf })]
    )
    assert.deepStrictEqual(Object.fromEntries(codes), {
      Left: 0,
      SfuDisconnected: 5,
      TokenRejected: 3,
      RemovedFromRoom: 7,
      MembershipRejected: 6
    })
    assert.match(Option.getOrThrow(endFailure("!a:b", "RemovedFromRoom")).message, /^removed from the room !a:b/)
  })
})

describe("Output", () => {
  it.effect("never prints a known secret, in human or JSON mode", () =>
    Effect.gen(function*() {
      const secret = "syt_very_secret_token"
      const leaky = new JwtFetchFailed({ reason: "Rejected", error: `bad token ${secret}`, cause: new Error(`url?access_token=${secret}`) })
      for (const json of [false, true]) {
        const out = Output.make({ json, secrets: [Redacted.make(secret)] })
        const printed = yield* capture(Effect.zipRight(out.event("x", { token: secret }, `human ${secret}`), out.error(leaky)))
        const all = [...printed.out, ...printed.err].join("\n")
        assert.notInclude(all, secret)
        assert.include(all, "<redacted>")
      }
    }))

  it.effect("JSON mode: one object per line, each with an event field; the error keeps its fields and message", () =>
    Effect.gen(function*() {
      const out = Output.make({ json: true, secrets: [] })
      const { out: lines, err } = yield* capture(
        Effect.all([out.event("joined", { a: 1 }, "human text"), out.info("only for humans"), out.error(new NotAuthenticated({ reason: "TokenRejected", status: 401, errcode: "M_UNKNOWN_TOKEN" }))])
      )
      assert.strictEqual(lines.length, 2)
      const parsed = lines.map((l) => JSON.parse(l))
      assert.deepStrictEqual(parsed[0], { event: "joined", a: 1 })
      assert.strictEqual(parsed[1].event, "error")
      assert.include(parsed[1].error, { _tag: "NotAuthenticated", status: 401, errcode: "M_UNKNOWN_TOKEN" })
      assert.match(parsed[1].error.message, /rejected the access token/)
      // The human line goes to stderr, also in JSON mode, and has no stack trace.
      assert.deepStrictEqual(err, [`error: ${parsed[1].error.message}`])
    }))
})

const member = (userId: string, deviceId: string): CallMember => ({
  dialect: "session",
  userId,
  deviceId,
  memberId: `${userId}:${deviceId}`,
  slotId: "m.call#ROOM",
  application: "m.call",
  scope: Option.some("m.room"),
  callIntent: Option.none(),
  focusSelection: Option.some("multi_sfu"),
  transports: [{ type: "livekit", livekitServiceUrl: "http://127.0.0.1:8080", raw: {} }],
  createdTs: 1,
  expiresAt: Option.some(2),
  rtcBackendIdentity: `${userId}:${deviceId}`,
  eventId: `$${deviceId}`,
  stateKey: `_${userId}_${deviceId}_m.call`
})

describe("Render", () => {
  const a = member("@a:x", "A")
  const b = member("@b:x", "B")
  const c = member("@c:x", "C")

  it("diff names arrivals and departures", () => {
    const d = Render.diff([a, b], [b, c])
    assert.deepStrictEqual(d.joined.map((m) => m.deviceId), ["C"])
    assert.deepStrictEqual(d.left.map((m) => m.deviceId), ["A"])
    assert.deepStrictEqual(Render.diffLines(d), ["+ @c:x (C) joined the call", "- @a:x (A) left the call"])
  })

  it("the table matches members to LiveKit participants by identity and flags participants without a membership", () => {
    const text = Render.table({
      members: [a, b],
      participants: [{ identity: "@b:x:B", tracks: ["audio"] }, { identity: "@ghost:x:G", tracks: [] }],
      selfIdentity: "@a:x:A",
      levels: new Map([["@b:x:B", 0.2]])
    })
    assert.match(text, /@a:x\s+A\s+you/)
    assert.match(text, /@b:x\s+B\s+on the SFU \(audio\), audio level 0\.20/)
    assert.match(text, /@ghost:x:G\s+on the SFU without a call membership/)
  })
})

describe("human output: strings from outside cannot drive the terminal", () => {
  // ESC/CSI (clear screen, recolour), CR/LF (a forged line), C1 CSI, DEL, a right-to-left override (reorders).
  const hostile = "DEV\u001b[2J\r\n+ @admin:x (ADMIN) joined the call\u009b31m\u007f\u202e"
  const controls = /[\u0000-\u001f\u007f-\u009f\u202e]/
  const noControlsBut = (text: string, lines: number) => {
    const split = text.split("\n")
    assert.strictEqual(split.length, lines, text)
    for (const line of split) assert.notMatch(line, controls, JSON.stringify(line))
  }
  const evil = member("@eve:x", hostile)

  it("member lines, the summary and the table escape members' ids", () => {
    const lines = Render.memberChange([], [evil]).lines
    assert.deepStrictEqual(lines, ["+ @eve:x (DEV\\u001b[2J\\u000d\\u000a+ @admin:x (ADMIN) joined the call\\u009b31m\\u007f\\u202e) joined the call"])
    noControlsBut(Render.memberSummary([evil]), 1)
    const text = Render.table({
      members: [evil],
      participants: [{ identity: `@mallory:x\u001b]0;title\u0007`, tracks: ["audio"] }],
      selfIdentity: "@a:x:A"
    })
    noControlsBut(text, 4) // heading, column titles, the member, the stray participant
  })

  it.effect("error messages on stderr are escaped, in human and JSON mode", () =>
    Effect.gen(function*() {
      for (const json of [false, true]) {
        const out = Output.make({ json, secrets: [] })
        const { err } = yield* capture(out.error(new JwtFetchFailed({ reason: "Rejected", status: 403, error: hostile })))
        assert.strictEqual(err.length, 1)
        noControlsBut(err[0]!, 1)
      }
    }))

  it.scopedLive("doctor's lines escape what servers answer", () =>
    Effect.gen(function*() {
      const hs = yield* fakeServer((_req, res) => json(res, 404, { errcode: "M_NOT_FOUND", error: hostile }))
      const { out: printed } = yield* capture(
        Doctor.run({ homeserver: hs.url, accessToken: Option.none(), roomId: Option.none() }, Output.make({ json: false, secrets: [] })).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
      )
      assert.strictEqual(printed.length, 1)
      noControlsBut(printed[0]!, 2) // the check and its fix
      assert.include(printed[0]!, "\\u001b[2J")
    }))
})

// --- doctor against a fake deployment on loopback ------------------------------------

describe("doctor", () => {
  it.scopedLive("reports a homeserver without MSC4140 and an auth service without CORS, with fixes", () =>
    Effect.gen(function*() {
      // An auth service that answers POST but forgets CORS and answers 404 on /sfu/get.
      const auth = yield* fakeServer((req, res) => (req.method === "OPTIONS" ? json(res, 200, {}) : json(res, 404, {})))
      const hs = yield* fakeServer((req, res) => {
        if (req.url === "/_matrix/client/versions") return json(res, 200, { versions: ["v1.11"], unstable_features: {} })
        if (req.url === "/.well-known/matrix/client") {
          return json(res, 200, { "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: auth.url }] })
        }
        return json(res, 404, { errcode: "M_UNRECOGNIZED" })
      })
      const out = Output.make({ json: true, secrets: [] })
      const { result, out: lines } = yield* capture(
        Doctor.run({ homeserver: hs.url, accessToken: Option.none(), roomId: Option.none() }, out).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
      )
      const byName = new Map(result.map((r) => [r.check, r]))
      assert.strictEqual(byName.get("homeserver")?.status, "pass")
      assert.strictEqual(byName.get(".well-known rtc_foci")?.status, "pass")
      assert.strictEqual(byName.get("rtc transports endpoint")?.status, "skip")
      assert.strictEqual(byName.get("auth service CORS")?.status, "fail")
      assert.match(byName.get("auth service CORS")!.detail, /Access-Control-Allow-Origin/)
      assert.strictEqual(byName.get("auth service /sfu/get")?.status, "fail")
      assert.match(byName.get("auth service /sfu/get")!.fix!, /route/)
      assert.strictEqual(byName.get("delayed events (MSC4140)")?.status, "fail")
      assert.match(byName.get("delayed events (MSC4140)")!.fix!, /max_event_delay_duration/)
      // One JSON line per check.
      assert.strictEqual(lines.length, result.length)
      assert.isTrue(lines.every((l) => JSON.parse(l).event === "check"))
    }))

  /** A homeserver with a valid token that names `authUrl` on /rtc/transports; counts OpenID token requests. */
  const deployment = (authUrl: string, openIdRequests: Ref.Ref<number>) =>
    fakeServer((req, res) => {
      if (req.url === "/_matrix/client/versions") return json(res, 200, { versions: ["v1.11"], unstable_features: { "org.matrix.msc4140": true } })
      if (req.url === "/_matrix/client/v3/account/whoami") return json(res, 200, { user_id: "@doc:example.org" })
      if (req.url === "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports") {
        return json(res, 200, { rtc_transports: [{ type: "livekit", livekit_service_url: authUrl }] })
      }
      if (req.url?.endsWith("/openid/request_token")) {
        Effect.runSync(Ref.update(openIdRequests, (n) => n + 1))
        return json(res, 200, { access_token: "openid_secret_token", token_type: "Bearer", matrix_server_name: "example.org", expires_in: 3600 })
      }
      return json(res, 404, { errcode: "M_UNRECOGNIZED" })
    })

  const runDoctor = (homeserver: string) =>
    capture(
      Doctor.run(
        { homeserver, accessToken: Option.some(Redacted.make("syt_doctor_access")), roomId: Option.none() },
        Output.make({ json: true, secrets: [] })
      ).pipe(Effect.provide(FetchHttpClient.layer))
    ).pipe(Effect.map(({ result }) => new Map(result.map((r) => [r.check, r]))))

  it.scopedLive("an auth service URL that is not https or loopback fails, and no OpenID token is requested or sent", () =>
    Effect.gen(function*() {
      const posted = yield* Ref.make<ReadonlyArray<string>>([])
      const auth = yield* fakeServer((req, res) => {
        let body = ""
        req.on("data", (chunk) => (body += chunk))
        req.on("end", () => {
          Effect.runSync(Ref.update(posted, (all) => [...all, body]))
          json(res, 400, { errcode: "M_NOT_JSON" }, { "access-control-allow-origin": "*" })
        })
      })
      // 0.0.0.0 reaches the loopback server on Linux, but is not a loopback address to isTokenSafeUrl.
      const insecure = auth.url.replace("127.0.0.1", "0.0.0.0")
      const openIdRequests = yield* Ref.make(0)
      const hs = yield* deployment(insecure, openIdRequests)
      const byName = yield* runDoctor(hs.url)
      assert.strictEqual(byName.get("auth service URL")?.status, "fail")
      assert.match(byName.get("auth service URL")!.detail, /not https or loopback; clients refuse it/)
      assert.strictEqual(byName.get("LiveKit SFU")?.status, "skip")
      assert.strictEqual(yield* Ref.get(openIdRequests), 0)
      assert.isFalse((yield* Ref.get(posted)).some((body) => body.includes("openid")))
    }))

  it.scopedLive("the auth service's redirects are not followed: the OpenID token stays with the URL that was checked", () =>
    Effect.gen(function*() {
      const reached = yield* Ref.make(0)
      const elsewhere = yield* fakeServer((_req, res) => {
        Effect.runSync(Ref.update(reached, (n) => n + 1))
        json(res, 500, {})
      })
      const auth = yield* fakeServer((req, res) => {
        if (req.method === "OPTIONS") return json(res, 204, {})
        res.writeHead(307, { location: `${elsewhere.url}/sfu/get` })
        res.end()
      })
      const openIdRequests = yield* Ref.make(0)
      const hs = yield* deployment(auth.url, openIdRequests)
      const byName = yield* runDoctor(hs.url)
      assert.isUndefined(byName.get("auth service URL"))
      assert.strictEqual(yield* Ref.get(openIdRequests), 1)
      assert.strictEqual(byName.get("LiveKit SFU")?.status, "fail")
      assert.match(byName.get("LiveKit SFU")!.detail, /HTTP 307, a redirect to .* \(not followed\)/)
      assert.strictEqual(yield* Ref.get(reached), 0)
    }))

  /** A homeserver where the token is valid and the room's state says `membership` for us; logs the paths asked for. */
  const roomDeployment = (membership: string, asked: Array<string>) =>
    fakeServer((req, res) => {
      const path = decodeURIComponent(req.url ?? "")
      asked.push(path)
      if (path === "/_matrix/client/versions") return json(res, 200, { versions: ["v1.11"], unstable_features: {} })
      if (path === "/_matrix/client/v3/account/whoami") return json(res, 200, { user_id: "@doc:example.org" })
      if (path === "/_matrix/client/v3/rooms/!room:example.org/state/m.room.member/@doc:example.org") {
        return json(res, 200, { membership })
      }
      // Synapse answers a room we left with its state as it was then.
      if (path === "/_matrix/client/v3/rooms/!room:example.org/state/m.room.power_levels/") {
        return json(res, 200, { users: { "@doc:example.org": 100 }, events: {} })
      }
      return json(res, 404, { errcode: "M_NOT_FOUND" })
    })

  const roomCheck = (homeserver: string, room: string) =>
    capture(
      Doctor.run(
        { homeserver, accessToken: Option.some(Redacted.make("syt_doctor_access")), roomId: Option.some(room) },
        Output.make({ json: true, secrets: [] })
      ).pipe(Effect.provide(FetchHttpClient.layer))
    ).pipe(Effect.map(({ result }) => result.find((r) => r.check === "call.member power level")!))

  it.scopedLive("--room: an alias is refused as such, without asking the homeserver", () =>
    Effect.gen(function*() {
      const asked: Array<string> = []
      const hs = yield* roomDeployment("join", asked)
      const check = yield* roomCheck(hs.url, "#call:example.org")
      assert.strictEqual(check.status, "fail")
      assert.match(check.fix!, /aliases are not accepted: pass the room id/)
      assert.isFalse(asked.some((p) => p.includes("/rooms/")))
    }))

  it.scopedLive("--room: a room we left fails although its state is readable; a joined one passes", () =>
    Effect.gen(function*() {
      const asked: Array<string> = []
      const left = yield* roomCheck((yield* roomDeployment("leave", asked)).url, "!room:example.org")
      assert.strictEqual(left.status, "fail")
      assert.match(left.detail, /@doc:example.org is not joined to !room:example.org \(membership: leave\)/)
      assert.match(left.fix!, /^join !room:example.org first/)
      const joined = yield* roomCheck((yield* roomDeployment("join", asked)).url, "!room:example.org")
      assert.strictEqual(joined.status, "pass", joined.detail)
    }))

  it.scopedLive("an unreachable homeserver is one failing line", () =>
    Effect.gen(function*() {
      const gone = yield* fakeServer((_req, res) => json(res, 500, {}))
      gone.close()
      const out = Output.make({ json: false, secrets: [] })
      const { result } = yield* capture(
        Doctor.run({ homeserver: gone.url, accessToken: Option.none(), roomId: Option.none() }, out).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
      )
      assert.strictEqual(result.length, 1)
      assert.strictEqual(result[0]!.status, "fail")
      assert.match(result[0]!.detail, /unreachable/)
    }))
})
