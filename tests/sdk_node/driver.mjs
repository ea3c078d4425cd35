// Runs PostHog's Node SDK (posthog-node, pinned in package-lock.json) for the pytest harness in conftest.py.
//
// One JSON request per stdin line, one JSON answer per stdout line:
//   {"id": 1, "op": "client", "name": "remote", "token": "phc_…", "options": {…}}  → {"id": 1, "ok": true, "result": …}
// Ops: client, call, calls, snapshot, shutdown, problems (see the handlers below). JavaScript's
// `undefined` (a getter's "no result", an omitted argument) travels as {"$undefined": true} both ways, so
// it stays distinct from null.
// stdout carries only answers: everything the SDK logs is recorded and handed over by `problems`.

import readline from 'node:readline'
import { format } from 'node:util'

const logged = []
for (const level of ['log', 'info', 'debug', 'warn', 'error']) {
  console[level] = (...args) => logged.push({ level, message: format(...args) })
}
const emittedErrors = []

// Imported after console is replaced: the SDK binds console's methods when a client is created.
const { PostHog } = await import('posthog-node')

const clients = new Map()

function clientNamed(name) {
  const client = clients.get(name)
  if (!client) throw new Error(`no client named ${name}`)
  return client
}

async function createClient({ name, host, token, options }) {
  const client = new PostHog(token, { host, ...options })
  client.on('error', (error) => emittedErrors.push({ client: name, message: format(error) }))
  clients.set(name, client)
  if (!(options.secretKey || options.personalApiKey)) return null
  // Joins the load the constructor started (or polls once more): resolves when it succeeded or failed.
  await client.reloadFeatureFlags()
  // The definitions as the SDK holds them (its poller is internal), so tests can see what loaded.
  return (client.featureFlagsPoller?.featureFlags ?? []).map((flag) => flag.key)
}

async function snapshot({ client, distinctId, options, keys }) {
  const flags = await clientNamed(client).evaluateFlags(distinctId, options)
  const values = {}
  for (const key of keys) {
    values[key] = { value: flags.getFlag(key), payload: flags.getFlagPayload(key) }
  }
  return { keys: flags.keys, values }
}

const handlers = {
  client: createClient,
  // One SDK method call: {"client", "method", "args": [...]}.
  call: ({ client, method, args }) => clientNamed(client)[method](...args),
  // The same method for many argument lists, in order, in one round trip: {"client", "method", "argsList"}.
  calls: async ({ client, method, argsList }) => {
    const sdk = clientNamed(client)
    const results = []
    for (const args of argsList) results.push(await sdk[method](...args))
    return results
  },
  snapshot,
  shutdown: async ({ client }) => {
    await clientNamed(client).shutdown()
    clients.delete(client)
    return null
  },
  // What the SDK logged and emitted as errors since the last call.
  problems: () => ({ logged: logged.splice(0), errors: emittedErrors.splice(0) }),
}

const UNDEFINED = { $undefined: true }
const isUndefinedMarker = (value) =>
  value !== null && typeof value === 'object' && Object.keys(value).length === 1 && value.$undefined === true

function answer(message) {
  const line = JSON.stringify(message, (_key, value) => (value === undefined ? UNDEFINED : value))
  process.stdout.write(`${line}\n`)
}

const lines = readline.createInterface({ input: process.stdin })
for await (const line of lines) {
  const request = JSON.parse(line, (_key, value) => (isUndefinedMarker(value) ? undefined : value))
  try {
    answer({ id: request.id, ok: true, result: await handlers[request.op](request) })
  } catch (error) {
    answer({ id: request.id, ok: false, error: format(error) })
  }
}
for (const client of clients.values()) await client.shutdown()
// Idle keep-alive sockets to the test server would hold the process open for seconds otherwise.
process.exit(0)
