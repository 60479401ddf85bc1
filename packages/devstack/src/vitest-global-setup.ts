// Vitest global setup for the integration projects (root vitest.config.ts): one real stack
// for the whole run. It is stopped afterwards only if this run started it; a stack that was
// already up (`npm run stack:up`) is left running.
import { down, up } from "./stack.ts"
import { formatMs } from "./util.ts"

const log = (message: string): void => {
  process.stderr.write(`[devstack] ${message}\n`)
}

export default async function setup(): Promise<() => Promise<void>> {
  const r = await up({ log })
  log(
    r.fresh
      ? `stack started for this test run in ${formatMs(r.ms)}`
      : `using the already running stack (re-verified in ${formatMs(r.ms)})`
  )
  return async () => {
    if (r.fresh) await down({ log })
  }
}
