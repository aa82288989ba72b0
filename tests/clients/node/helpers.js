// The official Elasticsearch Node client's helpers through esgate (run by tests/it/node_client.rs):
// `helpers.search` (adds `filter_path=hits.hits._source`) and
// `helpers.scrollDocuments` / `helpers.scrollSearch` (add `filter_path` with `_scroll_id`, then
// scroll and clear the scroll), plus a plain search with `filter_path` and a point in time opened
// with `filter_path`. Prints one JSON line per operation: {"op", "docs": [{tenant, n}...]} or
// {"op", "unexpected", "status", "detail"}; exits 1 when anything was unexpected.
//
// Environment: ESGATE_URL, TOKEN_SECRET, INDEX, and NODE_PATH pointing at the pinned
// node_modules (scripts/install-test-clients.sh).
'use strict'

const { Client } = require('@elastic/elasticsearch')

function env (name) {
  const v = process.env[name]
  if (!v) {
    console.error(`missing environment variable ${name}`)
    process.exit(2)
  }
  return v
}

const client = new Client({
  node: env('ESGATE_URL'),
  auth: { bearer: env('TOKEN_SECRET') },
  maxRetries: 0,
  requestTimeout: 30000
})
const index = env('INDEX')
let failed = false

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function summary (docs) {
  return docs
    .map(d => ({ tenant: d.tenant ?? null, n: d.n ?? null, user: d.user ?? null }))
    .sort((a, b) => (a.n ?? 0) - (b.n ?? 0))
}

async function op (name, fn) {
  try {
    emit({ op: name, ...(await fn()) })
  } catch (e) {
    failed = true
    emit({
      op: name,
      unexpected: e.name,
      status: e.meta?.statusCode ?? null,
      detail: JSON.stringify(e.meta?.body ?? e.message).slice(0, 600)
    })
  }
}

async function main () {
  await op('helpers_search', async () => {
    const docs = await client.helpers.search({ index, size: 100, query: { match_all: {} } })
    return { docs: summary(docs) }
  })

  await op('helpers_scroll_documents', async () => {
    const docs = []
    for await (const doc of client.helpers.scrollDocuments({ index, size: 3, query: { match_all: {} } })) {
      docs.push(doc)
    }
    return { docs: summary(docs) }
  })

  await op('helpers_scroll_search', async () => {
    const docs = []
    const scrollIds = []
    for await (const page of client.helpers.scrollSearch({ index, size: 4, query: { match_all: {} } })) {
      if (page.body._scroll_id) scrollIds.push(page.body._scroll_id)
      for (const hit of page.documents) docs.push(hit)
    }
    return { docs: summary(docs), scroll_ids_sealed: scrollIds.length > 0 && scrollIds.every(i => i.startsWith('esgc1_')) }
  })

  await op('search_filter_path', async () => {
    const r = await client.search({
      index,
      size: 100,
      filter_path: 'hits.total,hits.hits._source.tenant,hits.hits._source.n,-hits.hits._source.user'
    })
    return { docs: summary(r.hits.hits.map(h => h._source)), total: r.hits.total, keys: Object.keys(r) }
  })
}

main().then(() => process.exit(failed ? 1 : 0), e => {
  console.error(e)
  process.exit(3)
})
