// The loader snippet (gateway/static/sdk/v1/snippet.js, as pasted in pages) and the SDK's replay of
// the calls a page made on the snippet's stub before the SDK arrived.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENDPOINT, SITE_ID, createPage, settle } from './harness.mjs';

// Values made in the page's realm compare by content (deepEqual also compares prototypes).
const plain = (value) => JSON.parse(JSON.stringify(value));

test('the snippet installs a stub that records calls and loads the SDK asynchronously', () => {
  const page = createPage();
  page.loadSnippet();
  const [script] = page.document.head.querySelectorAll('script');
  assert.equal(script.src, ENDPOINT + '/sdk/v1/mailslot.js');
  assert.ok(script.async);
  page.mailslot.identify('u1', { plan_name: 'pro' });
  page.mailslot.track('signup');
  assert.deepEqual(plain(page.mailslot.q), [
    ['load', [{ siteId: SITE_ID, endpoint: ENDPOINT }]],
    ['identify', ['u1', { plan_name: 'pro' }]],
    ['track', ['signup']],
  ]);
  assert.deepEqual(page.requests, [], 'the stub sends nothing itself');
});

test('a second copy of the snippet keeps the first stub and its queue', () => {
  const page = createPage();
  page.loadSnippet();
  page.mailslot.identify('u1');
  page.loadSnippet(ENDPOINT, 'site_other');
  assert.equal(page.mailslot.q.length, 2);
  assert.equal(page.document.head.querySelectorAll('script').length, 1);
});

test('the SDK replays the queued calls in the order the page made them', async () => {
  const page = createPage();
  page.loadSnippet();
  page.mailslot.identify('u1', { plan_name: 'pro' });
  page.mailslot.track('signup', { step: 1 });
  page.mailslot.track('paid');
  page.loadSdk();
  await settle();
  assert.deepEqual(page.requests.map((r) => [r.path, r.body.name ?? null]), [
    ['/v1/identify', null],
    ['/v1/poll', null],
    ['/v1/track', 'signup'],
    ['/v1/track', 'paid'],
  ]);
  const [identify, poll, signup] = page.requests;
  assert.equal(identify.url, ENDPOINT + '/v1/identify');
  assert.deepEqual(plain(identify.body.attributes), { plan_name: 'pro' });
  assert.deepEqual(plain(signup.body.data), { step: 1 });
  for (const r of page.requests) {
    assert.equal(r.body.site_id, SITE_ID);
    assert.equal(r.body.user, 'u1');
    assert.match(r.body.device_id, /^web-[0-9a-f]{32}$/);
  }
  assert.equal(poll.body.wait, 0, 'the first poll is a quick one');
  assert.equal(page.mailslot.__loaded, true);
  assert.equal(page.mailslot.version, '1.0.0');
});

test('order matters: the last identify wins, and an event tracked before anyone was goes out as the next', async () => {
  const page = createPage();
  page.loadSnippet();
  page.mailslot.track('early');
  page.mailslot.identify('ada');
  page.mailslot.identify('grace');
  page.loadSdk();
  await settle();
  assert.deepEqual(page.sent('/v1/track').map((r) => [r.body.name, r.body.user]), [['early', 'ada']]);
  const polls = page.sent('/v1/poll');
  assert.equal(polls.at(-1).body.user, 'grace');
  assert.ok(polls.slice(0, -1).every((r) => r.signal.aborted), 'earlier polls are cancelled');
  assert.ok(polls.at(-1).signal && !polls.at(-1).signal.aborted, 'the poll as grace is the live one');
});

test('a listener queued through the stub hears what later queued calls do, not earlier ones', async () => {
  const page = createPage();
  const heard = [];
  page.loadSnippet();
  page.mailslot.identify(''); // before on(): nobody listens yet, so the SDK warns on the console
  page.mailslot.on('error', (e) => heard.push(e.code));
  page.mailslot.track('');
  page.loadSdk();
  await settle();
  assert.deepEqual(heard, ['invalid_event']);
  assert.deepEqual(page.warnings, ['[mailslot] invalid_user: mailslot.identify() needs the user id or email']);
});

test('unknown or malformed queue entries are skipped and the rest still run', async () => {
  const page = createPage();
  page.loadSnippet();
  page.mailslot.q.push(['nosuchmethod', []], null, ['identify']);
  page.mailslot.identify('u1');
  page.loadSdk();
  await settle();
  assert.equal(page.sent('/v1/poll').length, 1);
  assert.equal(page.sent('/v1/poll')[0].body.user, 'u1');
});

test('a second copy of the SDK leaves the first one in charge', async () => {
  const page = createPage();
  page.loadSnippet();
  page.mailslot.identify('u1');
  page.loadSdk();
  const first = page.mailslot;
  await settle();
  page.loadSdk();
  await settle();
  assert.equal(page.mailslot, first);
  assert.equal(page.sent('/v1/poll').length, 1);
});

test('the SDK also works without the snippet, called directly', async () => {
  const page = createPage();
  page.loadSdk();
  page.mailslot.load({ siteId: SITE_ID, endpoint: ENDPOINT + '/' });
  page.mailslot.identify('u1');
  await settle();
  assert.deepEqual(page.requests.map((r) => r.url), [ENDPOINT + '/v1/poll'], 'a trailing slash is dropped');
});
