// Checks Tandem's WebSocket transport with the graphql-ws client and raw sockets.
// Usage: TANDEM_URL=http://127.0.0.1:PORT/graphql TANDEM_TOKEN=... TANDEM_SIM_URL=http://127.0.0.1:PORT node ws.mjs
// The server must run with TANDEM_WEBSOCKET__INIT_TIMEOUT_SECS=2; TANDEM_SIM_URL is a
// salesforce-sim with its default credentials, which the sync-event check connects to.
import assert from 'node:assert/strict';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.env.TANDEM_URL;
const token = process.env.TANDEM_TOKEN;
const simUrl = process.env.TANDEM_SIM_URL;
const wsUrl = url.replace(/^http/, 'ws');
let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name}: ${error.message}`);
  }
}

function gql(query, variables = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  }).then((r) => r.json());
}

/** Opens a raw graphql-transport-ws socket, sends `messages` in order, resolves with the close. */
function closeOf(messages, { protocol = 'graphql-transport-ws', gapMs = 50 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, protocol);
    const timer = setTimeout(() => reject(new Error('no close within 8 s')), 8000);
    socket.on('open', async () => {
      for (const message of messages) {
        socket.send(typeof message === 'string' ? message : JSON.stringify(message));
        await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    socket.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
    socket.on('error', reject);
  });
}

const init = { type: 'connection_init', payload: { Authorization: `Bearer ${token}` } };
const subscribe = (id) => ({ id, type: 'subscribe', payload: { query: 'subscription { deskChanges { action } }' } });

await check('graphql-ws client receives a desk change', async () => {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { Authorization: `Bearer ${token}` }, lazy: false, retryAttempts: 0 });
  const received = new Promise((resolve, reject) => {
    const dispose = client.subscribe(
      { query: 'subscription { deskChanges(entities: [ACCOUNT]) { entity action recordId } }' },
      { next: (value) => { dispose(); resolve(value); }, error: reject, complete: () => {} },
    );
  });
  await new Promise((r) => setTimeout(r, 300));
  const created = await gql('mutation { createAccount(input: { name: "Conformance" }) { id } }');
  const event = await Promise.race([
    received,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no desk change within 20 s')), 20000)),
  ]);
  assert.deepEqual(event.data.deskChanges, { entity: 'ACCOUNT', action: 'CREATED', recordId: created.data.createAccount.id });
  await client.dispose();
});

/** Subscribes with the graphql-ws client and resolves with the first event, or fails after `ms`. */
function firstEvent(query, ms = 20000) {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { Authorization: `Bearer ${token}` }, lazy: false, retryAttempts: 0 });
  const event = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), ms);
    const dispose = client.subscribe(
      { query },
      { next: (value) => { clearTimeout(timer); dispose(); resolve(value); }, error: reject, complete: () => {} },
    );
  });
  return event.finally(() => client.dispose());
}

const HISTORY = 'id kind module history { direction module added updated failed }';

await check('syncEvents delivers the history entry of a real sync, then replays it after afterId', async () => {
  const connected = await gql(
    'mutation($i: ConnectSalesforceInput!) { connectSalesforce(input: $i) { status } }',
    { i: { loginUrl: simUrl, username: 'integration@tandem.test', password: 'tandem', clientId: 'tandem-sim', clientSecret: 'tandem-sim-secret' } },
  );
  assert.equal(connected.data?.connectSalesforce?.status, 'ACTIVE', JSON.stringify(connected));
  const live = firstEvent(`subscription { syncEvents(kinds: [HISTORY]) { ${HISTORY} } }`);
  await new Promise((r) => setTimeout(r, 300));
  const started = await gql('mutation { startSync { firstSync } }');
  assert.ok(['RUNNING', 'DONE'].includes(started.data?.startSync?.firstSync), JSON.stringify(started));
  const event = (await live).data.syncEvents;
  assert.equal(event.kind, 'HISTORY');
  assert.equal(event.history.direction, 'SALESFORCE_TO_DESK', JSON.stringify(event));
  assert.ok(event.history.added > 0, `records came in: ${JSON.stringify(event)}`);
  const replayed = (await firstEvent(`subscription { syncEvents(afterId: "${Number(event.id) - 1}", kinds: [HISTORY]) { ${HISTORY} } }`)).data.syncEvents;
  assert.deepEqual(replayed, event, 'the log replays the same event');
});

await check('graphql-ws client sees 4403 for a bad token', async () => {
  const closed = new Promise((resolve) => {
    const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { Authorization: 'Bearer nope' }, lazy: false, retryAttempts: 0, onNonLazyError: () => {}, on: { closed: (event) => resolve(event.code) } });
    client.on('error', () => {});
  });
  assert.equal(await closed, 4403);
});

await check('4400 on an invalid message', async () => assert.equal((await closeOf(['{nope'])).code, 4400));
await check('4401 on subscribe before ack', async () => assert.equal((await closeOf([subscribe('1')])).code, 4401));
await check('4408 on init timeout', async () => assert.equal((await closeOf([])).code, 4408));
await check('4409 on a duplicate id', async () => assert.equal((await closeOf([init, subscribe('x'), subscribe('x')])).code, 4409));
await check('4429 on a second init', async () => assert.equal((await closeOf([init, init])).code, 4429));
await check('close reasons fit in 123 bytes', async () => {
  const { reason } = await closeOf([init, subscribe('y'.repeat(300)), subscribe('y'.repeat(300))]);
  assert.ok(Buffer.byteLength(reason) <= 123, `reason is ${Buffer.byteLength(reason)} bytes`);
});
await check('legacy graphql-ws: connection_error then 4403 for a bad token', async () =>
  assert.equal((await closeOf([{ type: 'connection_init', payload: { authToken: 'bad' } }], { protocol: 'graphql-ws' })).code, 4403));

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
