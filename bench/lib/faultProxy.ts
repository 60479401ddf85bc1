/**
 * The fault proxy lives in @matrixrtc-effect/devstack (src/fault-proxy), which does not
 * export it as a subpath yet. A static relative import across the two TS projects
 * cannot be rewritten (TS2878), so the types are imported type-only through the `.js`
 * specifier (nothing to rewrite) and the module is loaded at run time by URL.
 */
import type * as FaultProxyModule from "../../packages/devstack/src/fault-proxy/index.js"

export type { FaultProxy, ProxiedStack, RequestMatcher } from "../../packages/devstack/src/fault-proxy/index.js"

const mod = (await import(new URL("../../packages/devstack/src/fault-proxy/index.ts", import.meta.url).href)) as typeof FaultProxyModule

export const startFaultProxy: typeof FaultProxyModule.startFaultProxy = mod.startFaultProxy
export const startProxiedStack: typeof FaultProxyModule.startProxiedStack = mod.startProxiedStack
