// Vitest global setup for the integration projects (root vitest.config.ts): one real stack
// for the whole run. Several runs on one checkout share it through leases; the last run out
// stops it, and only if a test run started it (a stack from `npm run stack:up` is left running).
import { acquireTestLease, releaseTestLease } from "./stack.ts"
import { formatMs } from "./util.ts"

const log = (message: string): void => {
  process.stderr.write(`[devstack] ${message}\n`)
}

export default async function setup(): Promise<() => Promise<void>> {
  const r = await acquireTestLease({ log })
  log(
    r.fresh
      ? `stack started for this test run in ${formatMs(r.ms)}`
      : `using the already running stack (re-verified in ${formatMs(r.ms)})`
  )
  return async () => {
    const outcome = await releaseTestLease({ log })
    if (outcome !== "stopped") log(`stack left running (${outcome})`)
  }
}
