/**
 * `node bench/trace.ts`: one join of each path with the homeserver and the auth service
 * behind fault proxies (no faults), printing when each request reached the proxy,
 * relative to the start of the join. Shows where a join spends its time.
 */
process.env["NODE_ENV"] ??= "production"
const { loginNewDevice, logoutDevice: logout, readStack } = await import("@matrixrtc-effect/devstack")
const { captureConsole, say } = await import("./lib/log.ts")
const { startSyncedClient } = await import("@matrixrtc-effect/devstack/observers")
const { startOurs } = await import("./lib/ours.ts")
const { referenceJoin } = await import("./lib/reference.ts")
const { startProxiedStack } = await import("@matrixrtc-effect/devstack/fault-proxy")
const { dispose } = await import("@livekit/rtc-node")

captureConsole(new URL("./.logs/trace.log", import.meta.url).pathname)
const stack = readStack()
const [alice, bob] = stack.users
if (alice === undefined || bob === undefined) throw new Error("need two users")

const proxies = () => startProxiedStack(stack)
type Proxies = Awaited<ReturnType<typeof proxies>>

const timeline = (label: string, t0: number, p: Proxies, tEnd: number) => {
  say(`${label} (join took ${(tEnd - t0).toFixed(0)} ms)`)
  const rows = [
    ...p.hs.requests().map((r) => ({ ...r, who: "hs" })),
    ...p.auth.requests().map((r) => ({ ...r, who: "auth" })),
    ...p.lk.requests().map((r) => ({ ...r, who: "sfu" }))
  ]
    .filter((r) => r.receivedAt >= t0 && !r.path.endsWith("/sync"))
    .sort((a, b) => a.receivedAt - b.receivedAt)
  for (const r of rows) say(`  +${String(r.receivedAt - t0).padStart(5)} ms  ${r.who.padEnd(4)} ${r.method} ${r.path.replace(/!.*?\//, "!room/").slice(0, 110)}`)
}

// The reference first: closing our layer disposes rtc-node's native runtime for the process.
{
  const creds = await loginNewDevice(stack.homeserverUrl, bob.userId, bob.password, "trace-ref")
  const p = await proxies()
  const client = await startSyncedClient(p.hs.url, creds)
  await referenceJoin(client, stack.roomId).then((c) => c.leave()) // warm-up
  const t0 = Date.now()
  const call = await referenceJoin(client, stack.roomId)
  const tLk = Date.now()
  // the membership goes out after joinRTCSession returned: wait for its PUT
  await p.hs.waitForRequest({ method: "PUT", path: /call\.member\/[^?]*$/ }, { since: p.hs.requests().findIndex((r) => r.receivedAt >= t0), timeoutMs: 10_000 })
  timeline("reference", t0, p, tLk)
  await call.leave()
  client.stopClient()
  await p.close()
  await logout(stack.homeserverUrl, creds.accessToken)
}
{
  const creds = await loginNewDevice(stack.homeserverUrl, alice.userId, alice.password, "trace-ours")
  const p = await proxies()
  const ours = await startOurs(p.hs.url, creds)
  await ours.join(stack.roomId).then((c) => c.leave()) // warm-up
  for (const fresh of [true, false]) {
    const t0 = Date.now()
    const call = await ours.join(stack.roomId, {}, fresh)
    timeline(fresh ? "ours, on an empty JoinCache (as a session's first join)" : "ours, a later join (JoinCache warm)", t0, p, Date.now())
    await call.leave()
  }
  await ours.dispose()
  await p.close()
  await logout(stack.homeserverUrl, creds.accessToken)
}
await dispose()
process.exit(0)
