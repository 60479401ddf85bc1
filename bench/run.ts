// Entry of `npm run bench` (see main.ts). @livekit/rtc-node logs at debug level to fd 1
// unless NODE_ENV is "production"; that has to be set before the module loads.
process.env["NODE_ENV"] ??= "production"
await import("./main.ts")
