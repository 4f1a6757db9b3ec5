// After a poll that delivered a message, the next poll is held at once, carrying the message's
// `shown` (acknowledge on the next poll), not after the tier's next_poll_s: that interval is for
// clients that cannot hold a poll, and waiting it out made every message after the first take 10 s.
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
      if (n >= answers.length) return new Promise(() => {});
      const body = answers[n++];
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

const held = { messages: [], next_poll_s: 10 };

test('a poll that brought a message is followed at once by a held poll carrying its `shown`', async () => {
  const page = await pageAnswered([held, { messages: [banner('m1')], lease_s: { m1: 300 }, next_poll_s: 10 }]);
  await page.advance(0);
  assert.ok(page.card('m1'), 'shown');
  const polls = page.sent('/v1/poll');
  assert.equal(polls.length, 3, 'the quick poll, the long one that brought m1, the next long one');
  assert.deepEqual(polls[2].body.events, [{ message_id: 'm1', type: 'shown' }], 'acknowledged on the poll');
  assert.equal(polls[2].body.wait, 60, 'a held poll, for the gateway\'s maximum');
  assert.ok(polls[2].at - polls[1].at < 1000, 'not 10 s later');
  assert.equal(polls[1].body.events, undefined, 'a poll carries events only when it has some');
  await page.advance(1000);
  assert.equal(page.sent('/v1/events').length, 0, 'one request per delivered message, not two');
});

test('a `shown` the gateway does not take on the poll (an older gateway) goes to /v1/events', async () => {
  let n = 0;
  const page = createPage({
    answer: (r) => {
      if (r.path === '/v1/events') return { body: { accepted: 1, rejected: [] } };
      n++;
      if (n === 2) return { body: { messages: [banner('m1')], lease_s: { m1: 300 }, next_poll_s: 10 } };
      return n !== 4 ? { body: held } : new Promise(() => {}); // no `events` in any answer
    },
  });
  page.loadSnippet();
  page.mailslot.identify('u1');
  page.loadSdk();
  await settle();
  await page.advance(0);
  assert.deepEqual(page.sent('/v1/poll')[2].body.events, [{ message_id: 'm1', type: 'shown' }]);
  await page.advance(250);
  assert.deepEqual(page.sent('/v1/events').map((r) => r.body.events), [[{ message_id: 'm1', type: 'shown' }]]);
});

test('when the poll carrying `shown` fails, `shown` goes to /v1/events and polling backs off', async () => {
  let n = 0;
  const page = createPage({
    answer: (r) => {
      if (r.path === '/v1/events') return { body: { accepted: 1, rejected: [] } };
      n++;
      if (n === 1) return { body: held };
      if (n === 2) return { body: { messages: [banner('m1')], lease_s: { m1: 300 }, next_poll_s: 10 } };
      return n === 3 ? { status: 503, body: {} } : new Promise(() => {});
    },
  });
  page.loadSnippet();
  page.mailslot.identify('u1');
  page.loadSdk();
  await settle();
  await page.advance(0);
  assert.equal(page.sent('/v1/poll').length, 3);
  await page.advance(250);
  assert.deepEqual(page.sent('/v1/events').map((r) => r.body.events), [[{ message_id: 'm1', type: 'shown' }]]);
  assert.equal(page.sent('/v1/poll').slice(3).filter((r) => r.body.events).length, 0, 'sent once, not twice');
});

test('a `shown` that comes late (a modal behind another) rides on the poll that waits for it', async () => {
  const modal = (id) => ({ id, content: { layout: 'modal', title: 'T ' + id, body: 'B' } });
  const page = await pageAnswered([
    held, { messages: [modal('m1'), modal('m2')], lease_s: { m1: 300, m2: 300 }, next_poll_s: 10 },
    { messages: [], next_poll_s: 10 },
  ]);
  await page.advance(0);
  const polls = page.sent('/v1/poll');
  assert.equal(polls.length, 2, 'm2 is not on screen yet: the next poll waits for its `shown`');
  page.card('m1').querySelector('.mailslot-close').click(); // m1 dismissed: m2 opens
  await page.advance(0);
  assert.ok(page.card('m2'));
  const third = page.sent('/v1/poll')[2];
  assert.deepEqual(third.body.events, [{ message_id: 'm1', type: 'shown' }, { message_id: 'm2', type: 'shown' }]);
  await page.advance(250);
  assert.deepEqual(page.sent('/v1/events').map((r) => r.body.events.map((e) => [e.message_id, e.type])),
    [[['m1', 'dismissed']]], 'a dismissal does not wait for a poll');
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
