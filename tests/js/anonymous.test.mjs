// Anonymous visitors (docs/sdk.md): before identify() the SDK polls as a visitor whose id it keeps
// in localStorage; identify() hands that id to the gateway, after the visitor's own reports, and
// polls as the person from then on; reset() makes a new visitor.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { banner, createPage, settle } from './harness.mjs';

const ANON_KEY = 'mailslot.anonymous_id';

// A page whose visitor's first poll brings `messages`; every other poll brings nothing. Event
// reports are answered by `events` (a promise: an answer that comes later).
function visitorPage(messages = [], events = () => ({ body: { rejected: [] } })) {
  let first = true;
  return createPage({
    answer: (r) => {
      if (r.path === '/v1/events') return events(r);
      if (r.path !== '/v1/poll') return { status: 200, body: {} };
      const give = first && r.body.anonymous_id ? messages : [];
      if (r.body.anonymous_id) first = false;
      return { body: { messages: give, next_poll_s: 600 } };
    },
  });
}

test('before identify, the page polls as a visitor with an id it keeps', async () => {
  const page = visitorPage();
  page.loadSnippet();
  page.loadSdk();
  await settle();
  const [poll] = page.sent('/v1/poll');
  assert.match(poll.body.anonymous_id, /^anon_[0-9a-f]{32}$/);
  assert.equal(poll.body.user, undefined);
  assert.equal(page.storage.get(ANON_KEY), poll.body.anonymous_id);

  // The next page of the same browser is the same visitor.
  const next = visitorPage();
  next.storage.set(ANON_KEY, poll.body.anonymous_id);
  next.loadSnippet();
  next.loadSdk();
  await settle();
  assert.equal(next.sent('/v1/poll')[0].body.anonymous_id, poll.body.anonymous_id);
});

test('a page that identifies at once never polls as a visitor, and merges no one', async () => {
  const page = visitorPage();
  page.loadSnippet();
  page.loadSdk();
  page.mailslot.identify('ada');
  await page.advance(0);
  const polls = page.sent('/v1/poll');
  assert.ok(polls.length >= 1 && polls.every((r) => r.body.user === 'ada' && !('anonymous_id' in r.body)));
  assert.equal(page.sent('/v1/identify').length, 0);
  assert.equal(page.storage.has(ANON_KEY), false);
});

test('identify merges the visitor after its reports, keeps its screen, and polls as the person', async () => {
  let answerEvents;
  const page = visitorPage([banner('welcome')], () => new Promise((resolve) => { answerEvents = resolve; }));
  page.loadSnippet();
  page.loadSdk();
  await settle();
  const visitor = page.sent('/v1/poll')[0].body.anonymous_id;
  assert.equal(page.cards().length, 1);
  page.mailslot.identify('ada', { plan: 'trial' });
  await settle();
  // The visitor's `shown` goes out at once, as the visitor, and the merge only once it is answered.
  const [events] = page.sent('/v1/events');
  assert.deepEqual([events.body.anonymous_id, events.body.events[0].type], [visitor, 'shown']);
  assert.equal(page.sent('/v1/identify').length, 0, 'no merge while the report is in flight');
  answerEvents({ body: { rejected: [] } });
  await settle();
  const [identify] = page.sent('/v1/identify');
  assert.deepEqual([identify.body.user, identify.body.anonymous_id, identify.body.attributes], ['ada', visitor, { plan: 'trial' }]);
  assert.ok(page.requests.indexOf(events) < page.requests.indexOf(identify), 'reports first, then the merge');
  assert.equal(page.cards().length, 1, 'what the visitor was shown stays on screen');
  assert.equal(page.storage.has(ANON_KEY), false, 'the visitor is the person now');
  assert.equal(page.sent('/v1/poll').at(-1).body.user, 'ada');
});

test('identify before load merges the visitor of an earlier page once load comes', async () => {
  const page = visitorPage();
  page.storage.set(ANON_KEY, 'anon_0123456789abcdef0123456789abcdef');
  page.loadSdk();
  page.mailslot.identify('ada');
  page.mailslot.load({ siteId: 'site_test', endpoint: 'https://gw.example.com' });
  await settle();
  const [identify] = page.sent('/v1/identify');
  assert.deepEqual([identify.body.user, identify.body.anonymous_id], ['ada', 'anon_0123456789abcdef0123456789abcdef']);
  assert.equal(page.sent('/v1/poll').every((r) => r.body.user === 'ada'), true);
});

test('load({anonymous: false}) waits for identify, as before', async () => {
  const page = visitorPage();
  page.loadSdk();
  page.mailslot.load({ siteId: 'site_test', endpoint: 'https://gw.example.com', anonymous: false });
  await page.advance(60_000);
  assert.equal(page.sent('/v1/poll').length, 0);
  page.mailslot.identify('ada');
  await settle();
  assert.equal(page.sent('/v1/poll')[0].body.user, 'ada');
});

test('reset makes a new visitor', async () => {
  const page = visitorPage();
  page.loadSnippet();
  page.loadSdk();
  page.mailslot.identify('ada');
  await settle();
  page.mailslot.reset();
  await settle();
  const after = page.sent('/v1/poll').at(-1).body;
  assert.equal(after.user, undefined);
  assert.match(after.anonymous_id, /^anon_[0-9a-f]{32}$/);
  page.mailslot.reset();
  await settle();
  assert.notEqual(page.sent('/v1/poll').at(-1).body.anonymous_id, after.anonymous_id);
});
