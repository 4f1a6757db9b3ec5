// After a poll that delivered a message, the next poll is held at once (as soon as the gateway has
// the message's `shown`), not after the tier's next_poll_s: that interval is for clients that
// cannot hold a poll, and waiting it out made every message after the first take 10 s.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { banner, createPage, settle } from './harness.mjs';

// A page whose polls get `answers` in turn (then answers that never come, like a held poll).
async function pageAnswered(answers, events = () => ({ body: { rejected: [] } })) {
  let n = 0;
  const page = createPage({
    answer: (r) => {
      if (r.path === '/v1/events') return events(r);
      if (r.path !== '/v1/poll') return { status: 202, body: {} };
      return n < answers.length ? { body: answers[n++] } : new Promise(() => {});
    },
  });
  page.loadSnippet();
  page.mailslot.identify('u1');
  page.loadSdk();
  await settle();
  return page;
}

const held = { messages: [], next_poll_s: 10 };

test('a poll that brought a message is followed by a held poll once `shown` is in', async () => {
  const page = await pageAnswered([held, { messages: [banner('m1')], lease_s: { m1: 300 }, next_poll_s: 10 }]);
  await page.advance(0);
  assert.equal(page.sent('/v1/poll').length, 2, 'the quick poll, then the long one');
  assert.ok(page.card('m1'), 'shown');
  await page.advance(300); // the events batch goes out after 250 ms and is accepted
  const polls = page.sent('/v1/poll');
  assert.equal(polls.length, 3, 'polls again right after `shown`, not 10 s later');
  assert.equal(polls[2].body.wait, 25, 'a held poll');
  assert.ok(polls[2].at - polls[1].at < 1000);
});

test('when `shown` does not get through, the next poll still comes within 2 s', async () => {
  const page = await pageAnswered(
    [held, { messages: [banner('m1')], lease_s: { m1: 300 }, next_poll_s: 10 }],
    () => ({ status: 503, body: {} }),
  );
  await page.advance(0);
  await page.advance(1900);
  assert.equal(page.sent('/v1/poll').length, 2);
  await page.advance(200);
  assert.equal(page.sent('/v1/poll').length, 3, 'polled 2 s after the answer');
});

test('offers this page already had (an inline message without its element) wait next_poll_s', async () => {
  const inline = banner('m1', { layout: 'inline', element_id: 'nowhere' });
  const answer = { messages: [inline], lease_s: { m1: 300 }, next_poll_s: 10 };
  const page = await pageAnswered([held, answer, answer]);
  await page.advance(0);
  await page.advance(2000); // a new offer, not shown: the next poll after 2 s, answered at once
  assert.equal(page.sent('/v1/poll').length, 3);
  assert.equal(page.card('m1'), null);
  await settle();
  assert.deepEqual(page.pendingDelays(), [10000], 'the same offer again: no tight loop');
});
