import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import jsforce from 'jsforce';

const BASE = requiredEnv('SIM_URL');
const EXPIRY_BASE = requiredEnv('EXPIRY_SIM_URL');
const EXPIRY_REFRESH_TOKEN = requiredEnv('EXPIRY_REFRESH_TOKEN');
const JWT_KEY = readFileSync(requiredEnv('JWT_PRIVATE_KEY'), 'utf8');
const USERNAME = process.env.SIM_USERNAME ?? 'integration@tandem.test';
const PASSWORD = process.env.SIM_PASSWORD ?? 'tandem';
const CLIENT_ID = process.env.SIM_CLIENT_ID ?? 'tandem-sim';
const CLIENT_SECRET = process.env.SIM_CLIENT_SECRET ?? 'tandem-sim-secret';
const VERSION = '62.0';
const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TAG = `Fjs${Date.now().toString(36)}`;
const ID_18 = /^[a-zA-Z0-9]{15}[A-Z0-5]{3}$/;
const SF_DATETIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$/;

const tally = { passed: 0, failed: 0 };

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.log(`FAIL setup: environment variable ${name} is not set`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  return value;
}

async function check(name, body) {
  try {
    await body();
    tally.passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    tally.failed += 1;
    const reason = `${err?.name ?? 'Error'}: ${err?.message ?? err}`.replace(/\s+/g, ' ');
    console.log(`FAIL ${name}: ${reason}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
  }
  return value;
}

function equal(actual, expected, what) {
  const [a, e] = [JSON.stringify(canonical(actual)), JSON.stringify(canonical(expected))];
  assert(a === e, `${what}: expected ${e}, got ${a}`);
}

function isId(value, prefix, what) {
  assert(typeof value === 'string' && ID_18.test(value), `${what}: ${JSON.stringify(value)} is not an 18-char id`);
  assert(value.startsWith(prefix), `${what}: ${value} does not start with ${prefix}`);
}

async function rejectsWith(promise, names, what) {
  let error;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  assert(error, `${what}: expected an error, the call succeeded`);
  assert(names.includes(error.name), `${what}: expected ${names.join('|')}, got ${error.name}: ${error.message}`);
  return error;
}

function oauthConnection(base) {
  return new jsforce.Connection({
    loginUrl: base,
    version: VERSION,
    oauth2: { loginUrl: base, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
  });
}

function base64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

function signJwt(claims, privateKey) {
  const unsigned = `${base64url({ alg: 'RS256' })}.${base64url(claims)}`;
  const signature = crypto.sign('RSA-SHA256', Buffer.from(unsigned), privateKey).toString('base64url');
  return `${unsigned}.${signature}`;
}

function jwtClaims() {
  return {
    iss: CLIENT_ID,
    sub: USERNAME,
    aud: 'https://login.salesforce.com',
    exp: Math.floor(Date.now() / 1000) + 180,
  };
}

async function count(conn, soql, scanAll = false) {
  const result = await conn.query(soql, { scanAll });
  return result.totalSize;
}

function checkUserInfo(conn, userInfo) {
  equal(conn.instanceUrl, BASE, 'instanceUrl');
  assert(/^00D[a-zA-Z0-9]{12}!/.test(conn.accessToken), `access token ${conn.accessToken} is not session-id shaped`);
  isId(userInfo.id, '005', 'user id');
  isId(userInfo.organizationId, '00D', 'org id');
}

async function checkIdentity(conn) {
  const identity = await conn.identity();
  equal(identity.username, USERNAME, 'identity username');
  isId(identity.user_id, '005', 'identity user_id');
  isId(identity.organization_id, '00D', 'identity organization_id');
}

async function crud(conn, type, prefix, fields, changes) {
  const sobject = conn.sobject(type);
  const created = await sobject.create(fields);
  equal(created.success, true, 'create success');
  isId(created.id, prefix, 'created id');
  const fetched = await sobject.retrieve(created.id);
  equal(fetched.attributes.type, type, 'attributes.type');
  equal(fetched.Id, created.id, 'retrieved Id');
  for (const [field, value] of Object.entries(fields)) equal(fetched[field], value, `retrieved ${field}`);
  assert(SF_DATETIME.test(fetched.CreatedDate), `CreatedDate ${fetched.CreatedDate} is not Salesforce-formatted`);
  const updated = await sobject.update({ Id: created.id, ...changes });
  equal(updated.success, true, 'update success');
  equal(updated.id, created.id, 'update id');
  const refetched = await sobject.retrieve(created.id, { fields: Object.keys(changes) });
  for (const [field, value] of Object.entries(changes)) equal(refetched[field], value, `updated ${field}`);
  const destroyed = await sobject.destroy(created.id);
  equal(destroyed.success, true, 'delete success');
  await rejectsWith(sobject.retrieve(created.id), ['NOT_FOUND', 'ENTITY_IS_DELETED'], 'retrieve after delete');
}

async function collectionCreate(conn, allOrNone, suffix) {
  const names = [`${TAG}${suffix}a`, null, `${TAG}${suffix}c`];
  const records = names.map((name) => (name ? { LastName: name } : { FirstName: 'NoLastName' }));
  const results = await conn.sobject('Contact').create(records, { allOrNone });
  equal(results.length, 3, 'result count');
  const stored = await count(conn, `SELECT COUNT() FROM Contact WHERE LastName LIKE '${TAG}${suffix}%'`);
  return { results, stored };
}

function errorCode(result) {
  return result.errors?.[0]?.statusCode;
}

async function pageThroughQueryMore(conn) {
  const expected = await count(conn, 'SELECT COUNT() FROM Contact');
  assert(expected > 2000, `only ${expected} contacts; the simulator should have been seeded with 2,500`);
  const raw = await conn.request(`/services/data/v${VERSION}/query?q=${encodeURIComponent('SELECT Id FROM Contact')}`);
  assert(/^\/services\/data\/v62\.0\/query\/[^/]+-2000$/.test(raw.nextRecordsUrl), `raw nextRecordsUrl ${raw.nextRecordsUrl}`);
  let page = await conn.query('SELECT Id FROM Contact');
  equal(page.totalSize, expected, 'totalSize');
  equal(page.done, false, 'first page done');
  equal(page.records.length, 2000, 'first page size');
  const ids = page.records.map((r) => r.Id);
  let pages = 1;
  while (!page.done) {
    page = await conn.queryMore(page.nextRecordsUrl);
    ids.push(...page.records.map((r) => r.Id));
    pages += 1;
  }
  assert(pages >= 2, `fetched ${pages} page(s)`);
  equal(ids.length, expected, 'records fetched');
  equal(new Set(ids).size, expected, 'distinct ids');
}

async function autoFetchAll(conn) {
  const expected = await count(conn, 'SELECT COUNT() FROM Contact');
  const query = conn.query('SELECT Id FROM Contact');
  let fetches = 0;
  query.on('fetch', () => {
    fetches += 1;
  });
  const result = await query.run({ autoFetch: true, maxFetch: 1_000_000 });
  equal(result.records.length, expected, 'autoFetch records');
  equal(result.done, true, 'autoFetch done');
  assert(fetches >= 2, `autoFetch made ${fetches} fetch(es)`);
}

function minutes(date, delta) {
  return new Date(new Date(date).getTime() + delta * 60_000);
}

function sfDate(text) {
  return new Date(text.replace(/\+0000$/, 'Z'));
}

async function versionsList() {
  const response = await fetch(`${BASE}/services/data`);
  equal(response.status, 200, 'status');
  assert(/^application\/json(;|$)/.test(response.headers.get('content-type') ?? ''), 'content type');
  assert(!response.headers.has('sforce-limit-info'), 'the versions list must not count against limits');
  const versions = await response.json();
  const entry = (v) => versions.find((e) => e.version === v);
  equal(entry(VERSION)?.url, `/services/data/v${VERSION}`, `${VERSION} url`);
  equal(entry('59.0')?.label, "Winter '24", '59.0 label');
  assert(versions.every((e) => /^(Spring|Summer|Winter) '\d\d$/.test(e.label)), 'labels are release names');
}

async function forcedExpiry() {
  const seed = oauthConnection(EXPIRY_BASE);
  await seed.login(USERNAME, PASSWORD);
  const original = seed.accessToken;
  const conn = new jsforce.Connection({
    oauth2: { loginUrl: EXPIRY_BASE, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
    instanceUrl: EXPIRY_BASE,
    accessToken: original,
    refreshToken: EXPIRY_REFRESH_TOKEN,
    version: VERSION,
  });
  let refreshes = 0;
  conn.on('refresh', () => {
    refreshes += 1;
  });
  for (let i = 0; i < 8; i += 1) {
    const users = await count(conn, `SELECT COUNT() FROM User WHERE Username = '${USERNAME}'`);
    equal(users, 1, `query ${i} after expiry`);
  }
  assert(refreshes >= 2, `expected at least 2 refreshes, saw ${refreshes}`);
  assert(conn.accessToken !== original, 'access token was not replaced');
  const stale = await fetch(`${EXPIRY_BASE}/services/data/v${VERSION}/limits`, {
    headers: { Authorization: `Bearer ${original}` },
  });
  equal(stale.status, 401, 'stale token status');
  assert(/^application\/json(;|$)/.test(stale.headers.get('content-type') ?? ''), '401 content type');
  const body = await stale.json();
  equal(body, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }], '401 body');
}

async function main() {
  const conn = oauthConnection(BASE);

  await check('versions list', versionsList);

  await check('oauth password login', async () => {
    const userInfo = await conn.login(USERNAME, PASSWORD);
    checkUserInfo(conn, userInfo);
    assert(!conn.refreshToken, 'password grant must not issue a refresh token');
    await checkIdentity(conn);
  });

  await check('oauth password login rejects a wrong password', async () => {
    const err = await rejectsWith(oauthConnection(BASE).login(USERNAME, 'wrong'), ['invalid_grant'], 'login');
    equal(err.message, 'authentication failure', 'error_description');
  });

  await check('jwt bearer login', async () => {
    const jwtConn = new jsforce.Connection({ loginUrl: BASE, version: VERSION, oauth2: { loginUrl: BASE } });
    const userInfo = await jwtConn.authorize({ grant_type: JWT_GRANT, assertion: signJwt(jwtClaims(), JWT_KEY) });
    checkUserInfo(jwtConn, userInfo);
    equal(await count(jwtConn, `SELECT COUNT() FROM User WHERE Username = '${USERNAME}'`), 1, 'user count');
  });

  await check('jwt bearer login rejects a foreign key', async () => {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwtConn = new jsforce.Connection({ loginUrl: BASE, version: VERSION, oauth2: { loginUrl: BASE } });
    const assertion = signJwt(jwtClaims(), privateKey);
    await rejectsWith(jwtConn.authorize({ grant_type: JWT_GRANT, assertion }), ['invalid_grant'], 'authorize');
  });

  await check('direct access token', async () => {
    const direct = new jsforce.Connection({ instanceUrl: BASE, accessToken: conn.accessToken, version: VERSION });
    await checkIdentity(direct);
    assert((await count(direct, 'SELECT COUNT() FROM Account')) > 0, 'no accounts visible');
  });

  await check('contact create/read/update/delete', () =>
    crud(conn, 'Contact', '003', { FirstName: 'Ada', LastName: `${TAG}crud`, Email: 'ada@example.com' }, { Title: 'CTO', Email: 'ada@example.org' }));

  await check('account create/read/update/delete', () =>
    crud(conn, 'Account', '001', { Name: `${TAG} Holdings`, BillingCity: 'Lisbon' }, { Name: `${TAG} Group`, Phone: '+351 555 0100' }));

  await check('upsert by external id (created, then updated)', async () => {
    const key = `${TAG}-HD-1`;
    const contacts = conn.sobject('Contact');
    const first = await contacts.upsert({ Helpdesk_Id__c: key, LastName: `${TAG}up1` }, 'Helpdesk_Id__c');
    equal([first.success, first.created], [true, true], 'first upsert success/created');
    isId(first.id, '003', 'first upsert id');
    const second = await contacts.upsert({ Helpdesk_Id__c: key, LastName: `${TAG}up2` }, 'Helpdesk_Id__c');
    equal([second.success, second.created, second.id], [true, false, first.id], 'second upsert success/created/id');
    const stored = await contacts.retrieve(first.id);
    equal([stored.LastName, stored.Helpdesk_Id__c], [`${TAG}up2`, key], 'stored values');
  });

  await check('collection create allOrNone=true rolls back', async () => {
    const { results, stored } = await collectionCreate(conn, true, 'aon');
    equal(results.map((r) => r.success), [false, false, false], 'success flags');
    equal(results.map((r) => r.id ?? null), [null, null, null], 'ids');
    equal(results.map(errorCode), ['ALL_OR_NONE_OPERATION_ROLLED_BACK', 'REQUIRED_FIELD_MISSING', 'ALL_OR_NONE_OPERATION_ROLLED_BACK'], 'status codes');
    equal(results[1].errors[0].fields, ['LastName'], 'error fields');
    equal(stored, 0, 'records committed');
  });

  await check('collection create allOrNone=false commits partially', async () => {
    const { results, stored } = await collectionCreate(conn, false, 'part');
    equal(results.map((r) => r.success), [true, false, true], 'success flags');
    isId(results[0].id, '003', 'first id');
    isId(results[2].id, '003', 'third id');
    equal(errorCode(results[1]), 'REQUIRED_FIELD_MISSING', 'failed record status code');
    equal(stored, 2, 'records committed');
  });

  await check('composite: a create, a dependent create and a query in one call', async () => {
    const base = `/services/data/v${VERSION}`;
    const before = (await conn.limits()).DailyApiRequests.Remaining;
    const soql = encodeURIComponent(`SELECT LastName FROM Contact WHERE LastName = '${TAG}cmp'`);
    const answer = await conn.requestPost(`${base}/composite`, {
      allOrNone: false,
      compositeRequest: [
        { method: 'POST', url: `${base}/sobjects/Account`, referenceId: 'acct', body: { Name: `${TAG}cmp` } },
        { method: 'POST', url: `${base}/sobjects/Contact`, referenceId: 'ada', body: { LastName: `${TAG}cmp`, AccountId: '@{acct.id}' } },
        { method: 'GET', url: `${base}/query?q=${soql}`, referenceId: 'found' },
      ],
    });
    const after = (await conn.limits()).DailyApiRequests.Remaining;
    equal(before - after, 2, 'the composite and the second limits call count one each');
    const [acct, ada, found] = answer.compositeResponse;
    equal([acct.httpStatusCode, ada.httpStatusCode, found.httpStatusCode], [201, 201, 200], 'statuses');
    isId(acct.body.id, '001', 'account id');
    const contact = await conn.sobject('Contact').retrieve(ada.body.id);
    equal(contact.AccountId, acct.body.id, 'the reference was resolved');
    equal(found.body.records.map((r) => r.LastName), [`${TAG}cmp`], 'the query sees the earlier create');
  });

  await check('query over 2,000 rows pages through queryMore', () => pageThroughQueryMore(conn));

  await check('query autoFetch reads every page', () => autoFetchAll(conn));

  await check('queryAll after a delete shows IsDeleted', async () => {
    const { id } = await conn.sobject('Contact').create({ LastName: `${TAG}gone` });
    await conn.sobject('Contact').destroy(id);
    const soql = `SELECT Id, IsDeleted FROM Contact WHERE Id = '${id}'`;
    equal((await conn.query(soql)).totalSize, 0, 'query after delete');
    const all = await conn.query(soql).scanAll(true);
    equal(all.records.map((r) => [r.Id, r.IsDeleted]), [[id, true]], 'queryAll records');
  });

  await check('child relationship subquery through include()', async () => {
    const { id } = await conn.sobject('Account').create({ Name: `${TAG}parent` });
    for (const last of ['Zed', 'Xu']) {
      await conn.sobject('Contact').create({ LastName: `${TAG}${last}`, AccountId: id });
    }
    const accounts = await conn.sobject('Account')
      .select('Id, Name')
      .where({ Id: id })
      .include('Contacts')
        .select('Id, LastName')
        .sort('LastName')
      .end();
    equal(accounts.length, 1, 'accounts');
    const contacts = accounts[0].Contacts;
    equal(contacts.totalSize, 2, 'Contacts.totalSize');
    equal(contacts.records.map((c) => c.LastName), [`${TAG}Xu`, `${TAG}Zed`], 'Contacts.records');
  });

  await check('updated and deleted windows', async () => {
    const contacts = conn.sobject('Contact');
    const kept = await contacts.create({ LastName: `${TAG}kept` });
    await contacts.update({ Id: kept.id, Title: 'Changed' });
    const gone = await contacts.create({ LastName: `${TAG}win` });
    await contacts.destroy(gone.id);
    const { SystemModstamp } = await contacts.retrieve(kept.id, { fields: ['SystemModstamp'] });
    const [start, end] = [minutes(SystemModstamp, -5), minutes(SystemModstamp, 2)];
    const updated = await contacts.updated(start, end);
    assert(updated.ids.includes(kept.id), `updated ids lack ${kept.id}`);
    assert(!updated.ids.includes(gone.id), 'updated ids include a deleted record');
    assert(SF_DATETIME.test(updated.latestDateCovered), `latestDateCovered ${updated.latestDateCovered}`);
    const deleted = await contacts.deleted(start, end);
    const entry = deleted.deletedRecords.find((r) => r.id === gone.id);
    assert(entry, `deletedRecords lack ${gone.id}`);
    assert(SF_DATETIME.test(entry.deletedDate), `deletedDate ${entry.deletedDate}`);
    assert(sfDate(deleted.earliestDateAvailable) <= start, `earliestDateAvailable ${deleted.earliestDateAvailable}`);
    assert(!deleted.deletedRecords.some((r) => r.id === kept.id), 'deletedRecords include a live record');
  });

  await check('describe Contact', async () => {
    const describe = await conn.sobject('Contact').describe();
    equal([describe.name, describe.keyPrefix], ['Contact', '003'], 'name/keyPrefix');
    const field = (name) => describe.fields.find((f) => f.name === name);
    const last = field('LastName');
    equal([last?.type, last?.nillable, last?.createable, last?.length], ['string', false, true, 80], 'LastName type/nillable/createable/length');
    const ext = field('Helpdesk_Id__c');
    equal([ext?.externalId, ext?.custom], [true, true], 'Helpdesk_Id__c externalId/custom');
    const global = await conn.describeGlobal();
    assert(global.sobjects.some((s) => s.name === 'Account' && s.keyPrefix === '001'), 'global describe lacks Account');
  });

  await check('an enhanced note\'s content read as a blob', async () => {
    const html = '<p>Met the <b>whole</b> team &amp; legal.</p>';
    const { id } = await conn.sobject('ContentNote').create({
      Title: `${TAG}note`,
      Content: Buffer.from(html).toString('base64'),
    });
    isId(id, '069', 'ContentNote id');
    const [note] = (await conn.query(`SELECT Content, TextPreview FROM ContentNote WHERE Id = '${id}'`)).records;
    assert(typeof note.Content === 'string' && note.Content.endsWith(`/sobjects/ContentNote/${id}/Content`), `Content reads as its blob URL: ${note.Content}`);
    equal(note.TextPreview, 'Met the whole team & legal.', 'TextPreview');
    const chunks = [];
    for await (const chunk of conn.sobject('ContentNote').record(id).blob('Content')) chunks.push(Buffer.from(chunk));
    equal(Buffer.concat(chunks).toString('utf8'), html, 'the blob is the content as written');
  });

  await check('limits', async () => {
    const limits = await conn.limits();
    const daily = limits.DailyApiRequests;
    assert(Number.isInteger(daily?.Max) && Number.isInteger(daily?.Remaining), `DailyApiRequests ${JSON.stringify(daily)}`);
    assert(daily.Remaining < daily.Max, 'Remaining does not reflect the calls made');
    const usage = conn.limitInfo.apiUsage;
    equal(usage?.limit, daily.Max, 'Sforce-Limit-Info limit');
    assert(usage.used >= daily.Max - daily.Remaining, `Sforce-Limit-Info used ${usage.used}`);
  });

  await check('forced token expiry is recovered by refresh', forcedExpiry);

  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exitCode = tally.failed === 0 ? 0 : 1;
}

await main();
