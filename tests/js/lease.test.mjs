// Offers with too little lease left are not shown: the lease may run out on the gateway before
// `shown` arrives, and another device of the person would show the same message. The SDK polls
// again once such a lease has run out instead.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { banner, createPage, settle } from './harness.mjs';

// A page whose polls are answered by `answers` in turn (then empty polls, next_poll_s 600).
async function pageAnswered(answers) {
  let n = 0;
  const page = createPage({
    answer: (r) => {
      if (r.path !== '/v1/poll') return { body: { rejected: [] } };
      const body = answers[n++] || { messages: [], next_poll_s: 600 };
      // A gateway answers the `shown` reports a poll carries (acknowledge on the next poll).
      return { body: r.body.events ? { ...body, events: { accepted: r.body.events.length, rejected: [] } } : body };
    },
  });
  page.loadSnippet();
  page.mailslot.identify('u1');
  page.loadSdk();
  await settle();
  return page;
}

test('an offer with enough lease left is shown', async () => {
  const page = await pageAnswered([{ messages: [banner('m1')], lease_s: { m1: 300 }, next_poll_s: 10 }]);
  assert.ok(page.card('m1'), 'shown');
  await page.advance(250);
  const reported = [...page.sent('/v1/events'), ...page.sent('/v1/poll')].flatMap(
    (r) => (r.body.events || []).map((e) => [e.message_id, e.type]));
  assert.deepEqual(reported, [['m1', 'shown']]);
});

test('an offer whose lease is nearly gone is not shown, and the SDK polls again once it ran out', async () => {
  const page = await pageAnswered([
    { messages: [banner('m1'), banner('m2')], lease_s: { m1: 2, m2: 300 }, next_poll_s: 10 },
    { messages: [banner('m1')], lease_s: { m1: 300 }, next_poll_s: 10 },
  ]);
  assert.equal(page.card('m1'), null, 'not shown with 2 s of lease left');
  assert.ok(page.card('m2'), 'the other offer is shown');
  // The next poll carries the `shown` of what the first answer put on screen: m2 only.
  await page.advance(0);
  const [, second] = page.sent('/v1/poll');
  assert.deepEqual(second.body.events.map((e) => e.message_id), ['m2'], 'no `shown` for the skipped offer');

  // The first answer was a quick poll, so a long poll follows at once; its answer brings m1 again
  // under a fresh lease, and now it is shown.
  await page.advance(3000);
  assert.ok(page.sent('/v1/poll').length >= 2);
  assert.ok(page.card('m1'), 'shown once its lease is fresh');
});

test('after a skipped offer the next poll comes when its lease has run out, not at next_poll_s', async () => {
  const page = await pageAnswered([
    { messages: [], next_poll_s: 600 }, // the quick first poll
    { messages: [banner('m1')], lease_s: { m1: 1 }, next_poll_s: 600 },
  ]);
  await page.advance(0);
  await settle();
  assert.equal(page.sent('/v1/poll').length, 2);
  assert.equal(page.card('m1'), null);
  assert.deepEqual(page.pendingDelays(), [2000], 'polls again 1 s after the lease ends');
});

test('an offer with no lease given (a shown persistent message, an older gateway) is shown', async () => {
  const page = await pageAnswered([{ messages: [banner('m1')], next_poll_s: 10 }]);
  assert.ok(page.card('m1'));
});

test('a malformed lease is treated as gone', async () => {
  const page = await pageAnswered([{ messages: [banner('m1')], lease_s: { m1: 'soon' }, next_poll_s: 10 }]);
  assert.equal(page.card('m1'), null);
});
