export * as BrowserLiveKit from "./BrowserLiveKit.ts"
