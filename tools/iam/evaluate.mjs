// Evaluates IAM requests with @cloud-copilot/iam-simulate (pinned in package.json / package-lock.json).
// stdin: JSON [{"id": "...", "simulation": <Simulation>}]; stdout: JSON [{"id", "result", "errors"}],
// result one of "Allowed", "ExplicitlyDenied", "ImplicitlyDenied", or "Error" with the engine's errors.
// Strict mode: the request is evaluated exactly as given (no guessing of missing context keys).
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const requests = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const out = []
for (const { id, simulation } of requests) {
  try {
    const response = await runSimulation(simulation, { simulationMode: 'Strict' })
    if (response.resultType === 'error') {
      out.push({ id, result: 'Error', errors: response.errors })
    } else {
      out.push({ id, result: response.overallResult, errors: null })
    }
  } catch (error) {
    out.push({ id, result: 'Error', errors: String(error) })
  }
}
process.stdout.write(JSON.stringify(out))
