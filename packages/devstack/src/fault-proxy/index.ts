/**
 * Fault-injection proxy for tests and benchmarks: plain `startFaultProxy` /
 * `proxy.close()`, or `faultProxy(options)` as a scoped Effect resource; and
 * `startProxiedStack`, the whole stack behind such proxies.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { type FaultProxy, type FaultProxyOptions, startFaultProxy } from "./FaultProxy.ts"

export * from "./FaultProxy.ts"
export * from "./ProxiedStack.ts"

/** Starts a fault proxy; it is closed when the scope closes. */
export const faultProxy = (options: FaultProxyOptions): Effect.Effect<FaultProxy, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.promise(() => startFaultProxy(options)), (proxy) => Effect.promise(() => proxy.close()))
