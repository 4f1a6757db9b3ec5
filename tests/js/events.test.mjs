// Event reports (POST /v1/events): batched for 250 ms, at most 100 a request, one identity a
// request, always keepalive, everything at once when the page goes away, retried on failure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { banner, createPage, settle } from './harness.mjs';

// A page identified as `user` whose first poll brings `messages` (later polls bring nothing).
// `events(request)` answers the event reports. Returns once the messages are on screen.
async function pageShowing(messages, { events = () => ({ body: { rejected: [] } }), user = 'u1' } = {}) {
  const polled = new Set();
  const page = createPage({
    random: () => 0.5,
    answer: (r) => {
      if (r.path === '/v1/events') return events(r);
      const first = !polled.has(r.body.user);
      polled.add(r.body.user);
      const forUser = typeof messages === 'function' ? messages(r.body.user) : messages;
      return { body: { messages: first ? forUser : [], next_poll_s: 600 } };
    },
  });
  page.loadSnippet();
  page.mailslot.identify(user);
  page.loadSdk();
  await settle();
  return page;
}

const reported = (request) => request.body.events.map((e) => [e.message_id, e.type, e.action ?? null]);

test('reports wait 250 ms and go out together in one keepalive request', async () => {
  const page = await pageShowing([banner('m1'), banner('m2'), banner('m3')]);
  assert.equal(page.cards().length, 3);
  await page.advance(249);
  assert.equal(page.sent('/v1/events').length, 0, 'nothing before the batching delay');
  await page.advance(1);
  const [request] = page.sent('/v1/events');
  assert.equal(page.sent('/v1/events').length, 1);
  assert.deepEqual(reported(request), [['m1', 'shown', null], ['m2', 'shown', null], ['m3', 'shown', null]]);
  assert.equal(request.keepalive, true);
  assert.equal(request.body.platform, 'web');
  assert.equal(request.body.user, 'u1');
  assert.match(request.body.device_id, /^web-[0-9a-f]{32}$/);
});

test('a request carries at most 100 reports; the rest follow, in order, none twice', async () => {
  const ids = Array.from({ length: 250 }, (_, i) => 'm' + i);
  const page = await pageShowing(ids.map((id) => banner(id)));
  await page.advance(250);
  const requests = page.sent('/v1/events');
  assert.deepEqual(requests.map((r) => r.body.events.length), [100, 100, 50]);
  assert.deepEqual(requests.flatMap((r) => r.body.events.map((e) => e.message_id)), ids);
});

test('one request waits for the previous one to be answered', async () => {
  let release;
  const page = await pageShowing(Array.from({ length: 150 }, (_, i) => banner('m' + i)), {
    events: () => new Promise((resolve) => { release = () => resolve({ body: { rejected: [] } }); }),
  });
  await page.advance(250);
  assert.equal(page.sent('/v1/events').length, 1);
  release();
  await settle();
  assert.equal(page.sent('/v1/events').length, 2);
});

test('on pagehide everything pending goes out at once, all batches, keepalive', async () => {
  const page = await pageShowing(Array.from({ length: 150 }, (_, i) => banner('m' + i)), {
    events: () => new Promise(() => {}), // never answered: the page is gone
  });
  page.fireWindow('pagehide');
  const requests = page.sent('/v1/events');
  assert.deepEqual(requests.map((r) => r.body.events.length), [100, 50]);
  assert.ok(requests.every((r) => r.keepalive));
  assert.deepEqual(page.pendingDelays().filter((ms) => ms === 250), [], 'the batching timer is gone');
});

test('a hidden tab sends what is pending at once and stops polling', async () => {
  const page = await pageShowing([banner('m1')]);
  const polls = page.sent('/v1/poll').length;
  page.document.visibilityState = 'hidden';
  page.document.dispatch('visibilitychange');
  assert.deepEqual(page.sent('/v1/events').map(reported), [[['m1', 'shown', null]]]);
  await page.advance(30 * 60_000);
  assert.equal(page.sent('/v1/poll').length, polls);
});

test('an action goes out after `shown`, which is sent again until the gateway has confirmed it', async () => {
  const actions = [{ name: 'tour', label: 'Take the tour' }];
  const page = await pageShowing([banner('m1', { actions }), banner('m2', { actions })]);
  page.card('m1').querySelector('.mailslot-button').click(); // before `shown` went out
  await page.advance(250);
  page.card('m2').querySelector('.mailslot-button').click(); // after the gateway took `shown`
  await page.advance(250);
  assert.deepEqual(page.sent('/v1/events').map(reported), [
    [['m1', 'shown', null], ['m2', 'shown', null], ['m1', 'shown', null], ['m1', 'action', 'tour']],
    [['m2', 'action', 'tour']],
  ]);
  assert.equal(page.cards().length, 0, 'an action closes its message');
});

test('an action with a URL sends its report before the page navigates', async () => {
  const page = await pageShowing([banner('m1', { actions: [{ name: 'go', url: '/thanks' }] })]);
  let sentBefore = null;
  page.window.location.assign = (url) => { sentBefore = page.sent('/v1/events').map(reported); page.navigations.push(url); };
  page.card('m1').querySelector('.mailslot-button').click();
  assert.deepEqual(page.navigations, ['https://app.example.com/thanks']);
  assert.deepEqual(sentBefore, [[['m1', 'shown', null], ['m1', 'shown', null], ['m1', 'action', 'go']]]);
});

test('dismissing sends `dismissed`; a message is never reported twice by one page', async () => {
  const page = await pageShowing([banner('m1')]);
  page.card('m1').querySelector('.mailslot-close').click();
  page.mailslot.identify('u1'); // same person: polls again, the gateway may offer m1 again
  await page.advance(250);
  assert.deepEqual(page.sent('/v1/events').map(reported), [[['m1', 'shown', null], ['m1', 'dismissed', null]]]);
});

test('reports of two identities go in separate requests, each as its own person', async () => {
  const page = await pageShowing((user) => [banner(user === 'ada' ? 'm-ada' : 'm-grace')], { user: 'ada' });
  page.mailslot.identify('grace'); // before ada's `shown` went out
  await settle();
  await page.advance(250);
  assert.deepEqual(page.sent('/v1/events').map((r) => [r.body.user, reported(r)]), [
    ['ada', [['m-ada', 'shown', null]]],
    ['grace', [['m-grace', 'shown', null]]],
  ]);
});

test('a failed send is retried with backoff, the same reports, until it is taken', async () => {
  let attempts = 0;
  const page = await pageShowing([banner('m1'), banner('m2')], {
    events: () => (++attempts <= 2 ? { status: 503 } : { body: { rejected: [] } }),
  });
  await page.advance(60_000);
  const requests = page.sent('/v1/events');
  assert.equal(requests.length, 3);
  assert.ok(requests.every((r) => JSON.stringify(r.body) === JSON.stringify(requests[0].body)));
  assert.deepEqual(requests.slice(1).map((r, i) => r.at - requests[i].at), [750, 1500]);
});

test('a batch the gateway refuses for good is dropped and reported, not retried', async () => {
  const errors = [];
  const page = await pageShowing([banner('m1')], {
    events: () => ({ status: 400, body: { error: { code: 'invalid_request', message: 'bad' } } }),
  });
  page.mailslot.on('error', (e) => errors.push([e.code, e.status]));
  await page.advance(10 * 60_000);
  assert.equal(page.sent('/v1/events').length, 1);
  assert.deepEqual(errors, [['invalid_request', 400]]);
});
