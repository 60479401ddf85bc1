// `npm test`: typecheck, then every vitest project (unit and real-stack),
// then one closing line `N passed, N failed` (after `N skipped` when tests were
// skipped or todo). Exit code is non-zero on any failure.
import { spawnSync } from "node:child_process"
import { mkdirSync, readFileSync, rmSync } from "node:fs"
import { join, relative } from "node:path"

const root = join(import.meta.dirname, "..")
const report = join(root, ".tools", "vitest-report.json")
mkdirSync(join(root, ".tools"), { recursive: true })
rmSync(report, { force: true })

let passed = 0
let failed = 0
let skipped = 0

const tsc = spawnSync("tsc", ["-b"], { cwd: root, stdio: "inherit" })
if (tsc.status === 0) passed++
else {
  failed++
  console.error("typecheck (tsc -b) failed")
}

const vitest = spawnSync(
  "vitest",
  ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit" }
)
try {
  const r = JSON.parse(readFileSync(report, "utf8"))
  passed += r.numPassedTests
  failed += r.numFailedTests
  // A suite that failed to load has no tests to count, so count it as one failure.
  failed += r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length
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
  failed++
  console.error("vitest produced no report")
}
if (vitest.status !== 0 && failed === 0) failed++

if (skipped > 0) console.log(`${skipped} skipped`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
