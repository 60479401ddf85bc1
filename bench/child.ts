/**
 * A call in its own process, for the crash benchmark: joins (our path or the
 * reference path), prints `JOINED <identity> <roomName>` and then just stays in
 * the call until the parent SIGKILLs it.
 *
 * Input (env BENCH_CHILD, JSON): { path: "ours" | "reference", homeserverUrl, roomId, creds }.
 */
import { captureConsole } from "./lib/log.ts" // NODE_ENV=production comes from the parent (run.ts)
import type { Credentials } from "@matrixrtc-effect/devstack"
import { startSyncedClient } from "@matrixrtc-effect/devstack/observers"
import { startOurs } from "./lib/ours.ts"
import { referenceJoin } from "./lib/reference.ts"

interface ChildInput {
  readonly path: "ours" | "reference"
  readonly homeserverUrl: string
  readonly roomId: string
  readonly creds: Credentials
  readonly logPath: string
}

const input = JSON.parse(process.env["BENCH_CHILD"] ?? "{}") as ChildInput
captureConsole(input.logPath)

const joined = (identity: string, roomName: string) => {
  process.stdout.write(`JOINED ${identity} ${roomName}\n`)
}

try {
  if (input.path === "ours") {
    const ours = await startOurs(input.homeserverUrl, input.creds)
    const call = await ours.join(input.roomId)
    joined(call.identity, call.roomName)
  } else {
    const client = await startSyncedClient(input.homeserverUrl, input.creds)
    const call = await referenceJoin(client, input.roomId)
    joined(call.identity, call.roomName)
  }
} catch (e) {
  process.stdout.write(`FAILED ${String(e)}\n`)
  process.exit(1)
}
// Stay in the call; the parent ends this process with SIGKILL (or SIGTERM if it gives up).
setInterval(() => undefined, 60_000)
