// `npm run demo` entry (root script `demo:run`). The program is in program.ts.
//
// @livekit/rtc-node logs to stdout at debug level unless NODE_ENV is "production"
// (see src/bin.ts), so that is set before anything loads it; hence the dynamic import.
process.env["NODE_ENV"] = "production"
await import("./program.ts")
