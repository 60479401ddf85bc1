// `npm test`: typecheck, then every vitest project (unit and real-stack),
// then one closing line `N passed, N failed` (after `N skipped` when tests were
// skipped or todo). Exit code is non-zero on any failure.
import { spawn, spawnSync } from "node:child_process"
import { mkdirSync, readFileSync, rmSync } from "node:fs"
import { join, relative } from "node:path"

const root = join(import.meta.dirname, "..")
const report = join(root, ".tools", "vitest-report.json")
mkdirSync(join(root, ".tools"), { recursive: true })
rmSync(report, { force: true })

let passed = 0
let failed = 0
let skipped = 0

// A hung run (a stuck stack start, a test that never settles) must still end with the
// closing line; vitest takes about 6 minutes of it on a clean clone (README).
const VITEST_TIMEOUT_MS = 60 * 60_000

const tsc = spawnSync("tsc", ["-b"], { cwd: root, stdio: "inherit" })
if (tsc.status === 0) passed++
else {
  failed++
  console.error(`typecheck (tsc -b) failed${tsc.error ? `: ${tsc.error.message}` : ""}`)
}

/** Runs vitest; SIGTERM at the deadline (its teardown stops the stack), SIGKILL if that does not end it. */
const runVitest = (args) =>
  new Promise((resolve) => {
    const child = spawn("vitest", args, { cwd: root, stdio: "inherit" })
    let timedOut = false
    const term = setTimeout(() => {
      timedOut = true
      console.error(`vitest did not finish within ${VITEST_TIMEOUT_MS / 60_000} min; stopping it`)
      child.kill("SIGTERM")
      setTimeout(() => child.kill("SIGKILL"), 60_000).unref()
    }, VITEST_TIMEOUT_MS)
    child.on("error", (error) => {
      clearTimeout(term)
      resolve({ status: null, error, timedOut })
    })
    child.on("exit", (status) => {
      clearTimeout(term)
      resolve({ status, error: undefined, timedOut })
    })
  })

const vitest = await runVitest(["run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)])
if (vitest.error) console.error(`could not run vitest: ${vitest.error.message}`)
if (vitest.timedOut) failed++
try {
  const r = JSON.parse(readFileSync(report, "utf8"))
  passed += r.numPassedTests
  failed += r.numFailedTests
  // A file that failed without a failing test (it did not load, or a beforeAll/afterAll
  // threw and its tests show as skipped) counts as one failure.
  for (const f of r.testResults) {
    if (f.status !== "failed" || f.assertionResults.some((a) => a.status === "failed")) continue
    failed++
    console.log(`failed outside its tests: ${relative(root, f.name)}: ${(f.message ?? "").split("\n")[0]}`)
  }
  // Skipped and todo tests count as neither, but a suite that skipped itself must not vanish silently.
  skipped = r.numPendingTests + r.numTodoTests
  for (const f of r.testResults) {
    const names = new Set(
      f.assertionResults
        .filter((a) => a.status !== "passed" && a.status !== "failed")
        .map((a) => a.ancestorTitles[0] ?? a.title)
    )
    if (names.size > 0) console.log(`skipped in ${relative(root, f.name)}: ${[...names].join("; ")}`)
  }
} catch {
  // A vitest stopped at the deadline writes no report; that is already counted.
  if (!vitest.timedOut) {
    failed++
    console.error("vitest produced no report")
  }
}
if (vitest.status !== 0 && failed === 0) failed++

if (skipped > 0) console.log(`${skipped} skipped`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
