/*! mailslot web SDK v1 (1.0.0): in-app messages from a mailslot gateway.
 * Plain modern JavaScript, no dependencies, no build step. Size budget: 44 KB, 14 KB gzipped (tests/js).
 * Usage and behaviour: docs/sdk.md. The snippet defines window.mailslot as a stub whose `q`
 * holds [method, args] pairs; this file replaces the stub and replays them in order.
 */
(function (window, document) {
  'use strict';
  const stub = window.mailslot;
  if (stub && stub.__loaded) return; // the script was included twice

  const VERSION = '1.0.0';
  const WAIT_S = 60;            // how long the server may hold a poll open (its maximum)
  const EVENT_DELAY_MS = 250;   // events are batched for this long before being sent
  const MAX_BATCH = 100;        // the server takes at most 100 events per request
  const DEVICE_KEY = 'mailslot.device_id';
  const ANON_KEY = 'mailslot.anonymous_id';
  const BUS_KEY = 'mailslot.bus';  // localStorage key of the tabs' messages where BroadcastChannel is missing
  const LAYOUTS = ['modal', 'banner_top', 'banner_bottom', 'inline'];
  const EVENTS = ['shown', 'action', 'dismissed', 'error'];
  const MAX_TRACKED = 100;      // track() calls kept while the SDK cannot send them yet
  const MIN_LEASE_S = 3;        // an offer with less lease left is not shown (it may go to another device)
  const SHOWN_WAIT_MS = 2000;   // after new offers, the next poll waits at most this long for their `shown`
  const script = document.currentScript;

  // ---- state -------------------------------------------------------------------------------
  const cfg = { siteId: null, endpoint: '', anon: true };
  let user = null;
  let anonId = null;                          // the visitor id (anonymous_id) before identify()
  let pendingAnon = null;                     // a visitor to merge, waiting for load()
  let userHash = null;
  let userToken = null;                       // a signed user token (JWT), sent as user_token
  let tokenFn = null;                         // async () => fresh token, asked on identity_token_expired
  let refreshing = null;                      // that question in flight, shared by every request
  let identifyGen = 0;                        // identify() calls waiting for a token drop when outrun
  let identifying = false;                    // an identify() waits for its first token: no visitor polls
  let deviceId = null;
  let pendingAttrs = null;                    // identify() attributes waiting for load()
  const listeners = { shown: [], action: [], dismissed: [], error: [] };
  const tracked = [];                         // track() calls waiting for load() and identify()
  const poll = { timer: 0, due: 0, ctl: null, failures: 0, gen: 0, sync: true, awaiting: new Set(), carry: [] };
  const offered = new Set();                  // offer ids this page has had in an answer
  const outbox = [];                          // [{a: identity, e: event}] waiting to be sent
  const ev = { timer: 0, inflight: 0, failures: 0, sent: Promise.resolve() };
  const ackedShown = new Set();               // message ids whose `shown` the server accepted
  const live = new Map();                     // message id -> {m, node, remove} on screen now
  const done = new Set();                     // message ids acted on or dismissed on this page
  let modal = null;                           // {id, overlay, card, prevFocus}
  let modalQueue = [];                        // modals waiting for the open one to close
  // Tabs of one origin elect one poller (docs/sdk.md, "One poll per browser").
  const TAB = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const tabs = { on: false, leader: false, lock: null, release: null, states: new Map(), last: null, shown: new Set(), bc: null };

  // ---- small helpers -----------------------------------------------------------------------
  function emit(type, detail) {
    for (const fn of listeners[type].slice()) {
      try { fn(detail); } catch (e) { setTimeout(() => { throw e; }); } // report, don't break us
    }
  }

  function fail(code, message, extra) {
    if (!listeners.error.length) console.warn('[mailslot] ' + code + ': ' + message);
    emit('error', Object.assign({ code, message }, extra));
  }

  // An id kept in localStorage (in memory where storage is blocked).
  function stored(key, prefix, valid, create) {
    let v = null;
    try { v = window.localStorage.getItem(key); } catch (e) { /* storage blocked */ }
    if ((!v || !valid.test(v)) && create) {
      const bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes); // works on plain http too, unlike randomUUID()
      v = prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
      try { window.localStorage.setItem(key, v); } catch (e) { /* memory only */ }
    }
    return v && valid.test(v) ? v : null;
  }

  function getDeviceId() {
    return deviceId || (deviceId = stored(DEVICE_KEY, 'web-', /^[A-Za-z0-9._:-]{1,128}$/, true));
  }

  // Before identify() the browser polls as an anonymous visitor of the site (docs/sdk.md).
  function getAnonId(create) {
    return anonId || (anonId = stored(ANON_KEY, 'anon_', /^anon_[A-Za-z0-9_-]{16,64}$/, create));
  }

  function forgetAnonId() {
    anonId = null;
    try { window.localStorage.removeItem(ANON_KEY); } catch (e) { /* storage blocked */ }
  }

  // Whom the tabs poll for: the person, else (unless load() said anonymous: false) the visitor,
  // whose id its first request makes: a page that identifies at once makes none.
  function who() { return user || (cfg.anon ? '\u0000' : null); }

  // Who is asking: sent with every device request.
  function identity() {
    const a = { site_id: cfg.siteId, device_id: getDeviceId() };
    if (!user) { a.anonymous_id = getAnonId(true); return a; }
    a.user = user;
    if (userHash) a.user_hash = userHash;
    if (userToken) a.user_token = userToken;
    return a;
  }

  // The gateway said the token expired: ask the page for a fresh one (once for all requests).
  function refreshToken() {
    if (!tokenFn) return Promise.resolve(false);
    if (!refreshing) {
      const forUser = user;
      refreshing = Promise.resolve().then(tokenFn).then((t) => {
        if (user !== forUser || typeof t !== 'string' || !t) return false;
        userToken = t;
        return true;
      }, (e) => {
        fail('token_refresh_failed', 'onTokenExpired failed: ' + String((e && e.message) || e));
        return false;
      }).finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // After a refresh: a request of the person identified now carries the fresh token.
  function retoken(body) {
    if (body.user === user && userToken) body.user_token = userToken;
    return body;
  }

  function post(path, body, opts) {
    return fetch(cfg.endpoint + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      keepalive: !!(opts && opts.keepalive),
      signal: opts && opts.signal,
    });
  }

  async function errorOf(res) {
    try {
      const body = await res.json();
      if (body && body.error) return { code: body.error.code, message: body.error.message };
    } catch (e) { /* not JSON */ }
    return { code: 'http_' + res.status, message: 'the gateway answered ' + res.status };
  }

  function retryable(status) { return status >= 500 || status === 429 || status === 408; }

  function retryAfterMs(res) {
    const v = res && res.headers.get('Retry-After');
    if (!v) return 0;
    const s = Number(v);
    if (Number.isFinite(s)) return Math.max(0, s * 1000);
    const t = Date.parse(v);
    return Number.isFinite(t) ? Math.max(0, t - Date.now()) : 0;
  }

  // Exponential backoff (1 s doubling to 60 s) with jitter; never sooner than Retry-After.
  function backoffMs(failures, res) {
    const cap = Math.min(60000, 1000 * 2 ** Math.min(failures - 1, 6));
    return Math.max(cap / 2 + Math.random() * cap / 2, retryAfterMs(res) * (1 + Math.random() * 0.1));
  }

  function safeUrl(u) {
    if (typeof u !== 'string' || !u) return null;
    try {
      const url = new URL(u, window.location.href);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null; // no javascript:
    } catch (e) { return null; }
  }

  function whenReady(fn) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', fn, { once: true });
    else fn();
  }

  const hidden = () => document.visibilityState === 'hidden';

  // ---- polling -----------------------------------------------------------------------------
  // One poll in flight at most. The first poll after load, identify or the tab becoming visible
  // is a quick one (wait 0: the server holds a poll while it has nothing new, persistent messages
  // included, and this page wants those now); a long poll follows it at once. A long poll held
  // for its full wait with nothing new is followed by another at once. An answer with new offers
  // is followed by a long poll carrying their `shown` as soon as it is ready (at most SHOWN_WAIT_MS
  // later): without it the held poll would be answered at once with the same offers. Any other
  // answer (offers this page already had, a poll the server would not hold) is followed by one
  // after the server's next_poll_s: that interval is for clients whose polls are not held.
  function stopPolling() {
    clearTimeout(poll.timer);
    poll.timer = 0;
    poll.gen++; // answers to older polls are ignored
    if (poll.ctl) { poll.ctl.abort(); poll.ctl = null; }
  }

  function startPolling() {
    stopPolling();
    poll.sync = true;
    if (canPoll()) doPoll();
  }

  // This tab polls when it is the browser's poller (or tabs cannot coordinate) and a tab shows.
  function canPoll() {
    if (!cfg.siteId || !who()) return false;
    if (!coordinated()) return !hidden();
    return tabs.leader && (!hidden() || Array.from(tabs.states.values()).some((t) => t.v));
  }

  function schedulePoll(ms) {
    clearTimeout(poll.timer);
    poll.due = Date.now() + ms;
    poll.timer = setTimeout(doPoll, ms);
  }

  function nextPollMs(data, res) {
    let s = Number(data && data.next_poll_s);
    if (!(s > 0)) s = Number(res.headers.get('X-Mailslot-Next-Poll'));
    if (!(s > 0)) s = 60;
    return Math.min(Math.max(s, 1), 3600) * 1000;
  }

  async function doPoll() {
    poll.timer = 0;
    if (!canPoll() || poll.ctl) return; // hidden: visibilitychange resumes
    const ctl = new AbortController();
    const gen = poll.gen;
    poll.ctl = ctl;
    const started = Date.now();
    const wait = poll.sync ? 0 : WAIT_S;
    const guard = setTimeout(() => ctl.abort(), (wait + 15) * 1000); // a proxy ate the answer
    let delay;
    // carried `shown`: others' and any not taken go to /v1/events
    const me = JSON.stringify(identity());
    let carried = poll.carry.splice(0).filter((x) => JSON.stringify(x.a) === me || later(outbox.push(x)));
    try {
      const res = await post('/v1/poll', Object.assign(identity(), { wait },
        carried.length ? { events: carried.map((x) => x.e) } : {}), { signal: ctl.signal });
      if (res.ok) {
        const data = await res.json();
        if (carried.length && data.events) { took(carried, data.events); carried = []; }
        poll.failures = 0;
        const messages = Array.isArray(data.messages) ? data.messages : [];
        const leases = data.lease_s && typeof data.lease_s === 'object' ? data.lease_s : {};
        if (gen !== poll.gen) return;
        dispatch(messages, leases);
        // New offers, as opposed to those this page already had (not shown here: an inline
        // message without its element) that the gateway hands out again while their lease lasts.
        const fresh = messages.filter((m) => leaseLeft(m, leases) < Infinity && !offered.has(m.id));
        for (const m of fresh) offered.add(m.id);
        poll.awaiting = new Set(fresh.filter((m) => leaseLeft(m, leases) >= MIN_LEASE_S).map((m) => m.id));
        for (let i = outbox.length; i--;) {
          const e = outbox[i].e;
          if (e.type === 'shown' && poll.awaiting.delete(e.message_id)) poll.carry.unshift(...outbox.splice(i, 1));
        }
        const heldFull = wait > 0 && !fresh.length && Date.now() - started >= (wait - 1) * 1000;
        if (poll.awaiting.size) delay = SHOWN_WAIT_MS; // or at once when their `shown` is in (acked)
        else if (poll.sync || heldFull || poll.carry.length) delay = 0;
        else delay = nextPollMs(data, res);
        // An offer skipped for its short lease is claimable again once that lease runs out.
        for (const m of messages) {
          const left = leaseLeft(m, leases);
          if (left < MIN_LEASE_S) delay = Math.min(delay, (Math.max(left, 0) + 1) * 1000);
        }
        poll.sync = false;
      } else {
        poll.failures++;
        if (retryable(res.status)) {
          if (poll.failures === 1) fail('unavailable', 'the gateway answered ' + res.status + '; retrying', { status: res.status });
          delay = backoffMs(poll.failures, res);
        } else { // a configuration problem (bad site id, identity proof, …): retry rarely
          const err = await errorOf(res);
          if (err.code === 'identity_token_expired' && poll.failures <= 2 && await refreshToken()) {
            delay = 0; // at once, with the fresh token
          } else {
            fail(err.code, err.message, { status: res.status });
            delay = Math.max(300000, retryAfterMs(res));
          }
        }
      }
    } catch (e) {
      if (gen !== poll.gen) return; // aborted by reset(), identify() or the tab being hidden
      poll.failures++;
      if (poll.failures === 1) fail('network_error', String((e && e.message) || e));
      delay = backoffMs(poll.failures);
    } finally {
      clearTimeout(guard);
      if (poll.ctl === ctl) poll.ctl = null;
      if (carried.length) { outbox.unshift(...carried); later(); }
    }
    if (gen === poll.gen) schedulePoll(delay);
  }

  // The gateway has these messages' `shown`: a held poll will no longer be answered with them.
  function acked(ids) {
    for (const id of ids) poll.awaiting.delete(id);
    if (!poll.awaiting.size && poll.timer) schedulePoll(0);
  }

  // ---- tabs: one poller per browser --------------------------------------------------------
  // The tab holding a Web Lock polls for all tabs of the origin and hands every answer to them
  // (BroadcastChannel, else storage events). Each offer goes to one tab: the focused visible one,
  // else the visible one that showed last; none visible, it waits for the next tab to show. When
  // the poller closes its lock passes to a waiting tab, which asks the others how they stand.
  function coordinated() { return tabs.on; }

  function bus(msg) {
    if (!coordinated()) return;
    msg.tab = TAB;
    msg.site = cfg.siteId;
    msg.user = who();
    try {
      if (tabs.bc) tabs.bc.postMessage(msg);
      else window.localStorage.setItem(BUS_KEY, JSON.stringify(Object.assign({ n: Math.random() }, msg)));
    } catch (e) { /* nothing to tell them with: each tab then acts alone */ }
  }

  function onBus(msg) {
    if (!msg || msg.tab === TAB || msg.site !== cfg.siteId || !who() || msg.user !== who()) return;
    if (msg.t === 'hi') announce();
    else if (msg.t === 'shown') tabs.shown.add(msg.id);
    else if (msg.t === 'ans' && !tabs.leader) receive(msg.messages, msg.leases, msg.at, msg.to);
    else if (!tabs.leader) return;
    else if (msg.t === 'ack') acked(msg.ids);
    else if (msg.t === 'bye') { tabs.states.delete(msg.tab); onTabs(); }
    else if (msg.t === 'st') { tabs.states.set(msg.tab, msg); onTabs(); }
  }

  function tabState() {
    return { t: 'st', tab: TAB, v: !hidden(), f: document.hasFocus(), p: window.location.pathname, at: Date.now() };
  }

  function announce() {
    if (tabs.leader) onTabs(); else bus(tabState());
  }

  // The poller: a tab came, went or changed; poll while one shows and hand the last answer round.
  function onTabs() {
    if (!canPoll()) stopPolling();
    else if (!poll.ctl && !poll.timer) startPolling();
    else redispatch();
  }

  // Becomes a candidate for poller under this identity (and gives up being one for the last).
  function elect() {
    resign();
    if (!coordinated()) { startPolling(); return; }
    if (!cfg.siteId || !who()) return;
    const ctl = new AbortController();
    tabs.lock = ctl;
    const name = 'mailslot.poll ' + cfg.endpoint + ' ' + cfg.siteId + ' ' + who();
    window.navigator.locks.request(name, { signal: ctl.signal }, () => new Promise((release) => {
      if (tabs.lock !== ctl) { release(); return; }
      tabs.release = release;
      tabs.leader = true;
      tabs.states.clear();
      bus({ t: 'hi' });
      startPolling();
    })).catch(() => { /* aborted: this tab gave up waiting */ });
    announce();
  }

  function resign() {
    if (tabs.lock) tabs.lock.abort();
    if (tabs.release) tabs.release();
    if (tabs.leader) { stopPolling(); bus({ t: 'bye' }); }
    tabs.lock = tabs.release = tabs.last = null;
    tabs.leader = false;
    tabs.states.clear();
  }

  // Which tab shows an offer: among the visible tabs on a page the message's rule allows, the
  // focused one, else the one that changed last.
  function target(m) {
    let best = null;
    for (const t of [tabState()].concat(Array.from(tabs.states.values()))) {
      if (t.v && onPage(m, t.p) && (!best || (t.f && !best.f) || (t.f === best.f && t.at > best.at))) best = t;
    }
    return best && best.tab;
  }

  // A message's page rule (content.page: {glob} or {pattern}) against a path; no rule: any page.
  // A glob's `*` stays within a path segment, `**` crosses them, `?` is one character.
  function onPage(m, path) {
    const rule = m.content && m.content.page;
    if (!rule || typeof rule !== 'object') return true;
    try {
      if (typeof rule.pattern === 'string') return new RegExp(rule.pattern).test(path);
      if (typeof rule.glob === 'string') {
        const re = rule.glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*|\*|\?/g,
          (g) => (g === '**' ? '.*' : g === '*' ? '[^/]*' : '[^/]'));
        return new RegExp('^' + re + '$').test(path);
      }
    } catch (e) { /* a rule this browser cannot read: not here */ }
    return false;
  }

  // The poller hands an answer to every tab, itself included, naming which tab shows each offer.
  function dispatch(messages, leases) {
    tabs.last = { t: 'ans', messages, leases, at: Date.now() };
    redispatch();
  }

  function redispatch() {
    const a = tabs.last;
    if (!a) return;
    if (!coordinated()) { receive(a.messages, a.leases, a.at, null); return; }
    const to = {};
    for (const m of a.messages) if (m && typeof m.id === 'string') to[m.id] = target(m);
    a.to = to;
    bus(Object.assign({}, a));
    receive(a.messages, a.leases, a.at, to);
  }

  // ---- rendering ---------------------------------------------------------------------------
  // Seconds of lease an offer has left as the answer arrived (Infinity: not leased, e.g. a shown
  // persistent message, or a gateway that does not say).
  function leaseLeft(m, leases) {
    if (!m || !Object.prototype.hasOwnProperty.call(leases, m.id)) return Infinity;
    const left = Number(leases[m.id]);
    return Number.isFinite(left) ? left : 0;
  }

  // Shows what this page has not shown yet; returns how many such messages the poll brought.
  // An offer whose lease is nearly gone is not shown: its lease may run out on the server before
  // `shown` arrives, and another device of the person would then show it too.
  // Offers only in the tab the poller names (`to`, when tabs coordinate), and never twice across
  // tabs; shown persistent messages in every visible tab, as a page load would.
  function receive(messages, leases, received, to) {
    const mine = (m) => onPage(m, window.location.pathname) &&
      (leaseLeft(m, leases) === Infinity || !to || (to[m.id] === TAB && !tabs.shown.has(m.id)));
    const fresh = messages.filter((m) => m && typeof m.id === 'string' && !live.has(m.id) && mine(m) &&
      !done.has(m.id) && !modalQueue.some((q) => q.id === m.id) && leaseLeft(m, leases) >= MIN_LEASE_S);
    whenReady(() => {
      // Offered messages stay leased to this device, so anything skipped now comes back later.
      if (hidden()) return;
      const waited = (Date.now() - received) / 1000;
      for (const m of fresh) {
        if (leaseLeft(m, leases) - waited < MIN_LEASE_S) continue;
        if (!live.has(m.id) && !done.has(m.id) && mine(m)) show(m);
      }
    });
    return fresh.length;
  }

  function show(m) {
    const c = m.content || {};
    const layout = LAYOUTS.includes(c.layout) ? c.layout : 'modal';
    if (layout === 'modal' && modal) { modalQueue.push(m); return; }
    let host = null;
    if (layout === 'inline') {
      host = c.element_id ? document.getElementById(String(c.element_id)) : null;
      if (!host) return; // not on this page: not shown; the next poll or page tries again
    }
    injectStyles();
    const card = buildCard(m, layout);
    let node = card;
    if (layout === 'modal') node = openModal(m, card);
    else if (layout === 'inline') host.appendChild(card);
    else bannerBox(layout === 'banner_top' ? 'top' : 'bottom').appendChild(card);
    live.set(m.id, { m, node });
    bus({ t: 'shown', id: m.id });
    if (layout === 'modal') focusModal();
    queueEvent(m.id, 'shown');
    emit('shown', { message: m });
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null && text !== '') e.textContent = String(text); // text, never HTML
    return e;
  }

  function buildCard(m, layout) {
    const c = m.content || {};
    const card = el('div', 'mailslot-card mailslot-' + layout.replace('_', '-'));
    card.setAttribute('data-mailslot-id', m.id);
    const imageUrl = safeUrl(c.image_url);
    if (imageUrl) {
      const img = el('img', 'mailslot-image');
      img.alt = '';
      img.addEventListener('error', () => img.remove());
      img.src = imageUrl;
      card.appendChild(img);
      card.classList.add('mailslot-has-image');
    }
    const text = el('div', 'mailslot-text');
    if (c.title != null && c.title !== '') {
      const title = el('div', 'mailslot-title', c.title);
      title.id = 'mailslot-title-' + m.id.replace(/[^A-Za-z0-9_-]/g, '');
      card.setAttribute('aria-labelledby', title.id);
      text.appendChild(title);
    } else {
      card.setAttribute('aria-label', 'Message');
    }
    if (c.body != null && c.body !== '') text.appendChild(el('div', 'mailslot-body', c.body));
    const actions = Array.isArray(c.actions) ? c.actions.filter((a) => a && a.name) : [];
    if (actions.length) {
      const row = el('div', 'mailslot-actions');
      actions.forEach((a, i) => {
        const b = el('button', 'mailslot-button' + (i === 0 ? ' mailslot-primary' : ''), a.label || a.name);
        b.type = 'button';
        b.setAttribute('data-action', String(a.name));
        b.addEventListener('click', () => onAction(m, a));
        row.appendChild(b);
      });
      text.appendChild(row);
    }
    card.appendChild(text);
    const close = el('button', 'mailslot-close', '\u00d7');
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss');
    close.addEventListener('click', () => finish(m.id, 'dismissed'));
    card.appendChild(close);
    if (layout !== 'modal') card.setAttribute('role', 'region');
    return card;
  }

  function onAction(m, a) {
    finish(m.id, 'action', String(a.name));
    const url = safeUrl(a.url);
    if (url) {
      flushEvents(true); // keepalive: the request survives the navigation
      window.location.assign(url);
    }
  }

  // The person acted on or dismissed a message: record it and take it off the screen.
  function finish(id, type, action) {
    const item = live.get(id);
    if (!item) return;
    removeLive(id);
    done.add(id);
    queueEvent(id, type, action);
    emit(type, type === 'action' ? { message: item.m, action } : { message: item.m });
  }

  function removeLive(id) {
    const item = live.get(id);
    if (!item) return;
    live.delete(id);
    item.node.remove();
    if (modal && modal.id === id) closeModal();
  }

  function bannerBox(where) {
    const cls = 'mailslot-banners mailslot-banners-' + where;
    let box = document.querySelector('.mailslot-banners-' + where);
    if (!box) {
      box = el('div', cls);
      document.body.appendChild(box);
    }
    return box;
  }

  function openModal(m, card) {
    const overlay = el('div', 'mailslot-overlay');
    card.setAttribute('role', 'dialog');
    card.setAttribute('aria-modal', 'true');
    card.tabIndex = -1;
    overlay.appendChild(card);
    overlay.addEventListener('click', (e) => { if (e.target === overlay) finish(m.id, 'dismissed'); });
    document.body.appendChild(overlay);
    modal = { id: m.id, overlay, card, prevFocus: document.activeElement };
    return overlay;
  }

  function focusModal() {
    const target = modal.card.querySelector('.mailslot-button') || modal.card.querySelector('.mailslot-close');
    (target || modal.card).focus();
  }

  function closeModal() {
    const prev = modal.prevFocus;
    modal = null;
    if (prev && prev.focus && document.contains(prev)) prev.focus();
    const next = modalQueue.shift();
    if (next) show(next);
  }

  // Escape dismisses the open modal; Tab stays inside it.
  document.addEventListener('keydown', (e) => {
    if (!modal) return;
    if (e.key === 'Escape') { e.preventDefault(); finish(modal.id, 'dismissed'); return; }
    if (e.key !== 'Tab') return;
    const buttons = modal.card.querySelectorAll('button');
    const first = buttons[0];
    const last = buttons[buttons.length - 1];
    if (!modal.card.contains(document.activeElement)) { e.preventDefault(); first.focus(); }
    else if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
  }, true);

  // Take every message off the screen without recording anything (logout, another person).
  function clearScreen() {
    modalQueue = [];
    for (const id of Array.from(live.keys())) removeLive(id);
  }

  // ---- events ------------------------------------------------------------------------------
  function queueEvent(id, type, action) {
    const a = identity();
    const e = { message_id: id, type };
    // `shown` rides on a poll that waits for it or is due within 1 s
    if (type === 'shown' && poll.timer && (poll.awaiting.delete(id) || poll.due - Date.now() < 1001)) {
      poll.carry.push({ a, e });
      if (!poll.awaiting.size) schedulePoll(0);
      return;
    }
    // Reports are idempotent, so resend `shown` ahead of an action until the server has it:
    // an action is only accepted on a shown message.
    if (type === 'action' && !ackedShown.has(id)) outbox.push({ a, e: { message_id: id, type: 'shown' } });
    if (action) e.action = action;
    outbox.push({ a, e });
    later();
  }

  function later() {
    if (!ev.timer) ev.timer = setTimeout(() => { ev.timer = 0; flushEvents(false); }, EVENT_DELAY_MS);
  }

  // One request carries one identity: take the leading run of events with the same one.
  function takeBatch() {
    const key = JSON.stringify(outbox[0].a);
    let n = 1;
    while (n < outbox.length && n < MAX_BATCH && JSON.stringify(outbox[n].a) === key) n++;
    return outbox.splice(0, n);
  }

  // now=true sends everything at once (unload, navigation); otherwise one batch at a time.
  function flushEvents(now) {
    if (now) {
      clearTimeout(ev.timer);
      ev.timer = 0;
      outbox.push(...poll.carry.splice(0));
      while (outbox.length) sendBatch(takeBatch());
    } else if (!ev.inflight && outbox.length) {
      sendBatch(takeBatch());
    }
  }

  function took(batch, data) {
    const rejected = Array.isArray(data.rejected) ? data.rejected : [];
    const no = new Set(rejected.map((r) => r.message_id + ' ' + r.type));
    const ids = batch.filter((x) => x.e.type === 'shown' && !no.has(x.e.message_id + ' shown')).map((x) => x.e.message_id);
    for (const id of ids) ackedShown.add(id);
    acked(ids);
    bus({ t: 'ack', ids });
    if (rejected.length) fail('events_rejected', 'the gateway rejected ' + rejected.length + ' event(s)', { rejected });
  }

  // ev.sent: every batch sent so far has settled.
  function sendBatch(batch) {
    const p = sendBatchNow(batch);
    ev.sent = Promise.all([ev.sent, p.catch(() => {})]);
    return p;
  }

  async function sendBatchNow(batch) {
    ev.inflight++;
    let res = null;
    let retry = false;
    try {
      // keepalive always: an action with a URL navigates right after, and pages close.
      // platform: the gateway records it with the workspace's first `shown` (setup status).
      const body = Object.assign({}, batch[0].a, { platform: 'web', events: batch.map((x) => x.e) });
      res = await post('/v1/events', body, { keepalive: true });
      if (res.ok) {
        ev.failures = 0;
        took(batch, await res.json().catch(() => ({})));
      } else if (retryable(res.status)) {
        retry = true;
      } else { // the server will never take this batch: drop it (unless a fresh token helps)
        const err = await errorOf(res);
        if (err.code === 'identity_token_expired' && ev.failures < 2 && await refreshToken()) {
          for (const x of batch) retoken(x.a);
          retry = true;
        } else {
          fail(err.code, err.message, { status: res.status });
        }
      }
    } catch (e) {
      retry = true;
    } finally {
      ev.inflight--;
    }
    if (retry) {
      outbox.unshift(...batch);
      clearTimeout(ev.timer);
      ev.timer = setTimeout(() => { ev.timer = 0; flushEvents(false); }, backoffMs(++ev.failures, res));
    } else if (outbox.length && !ev.timer) {
      flushEvents(false);
    }
  }

  // ---- identify ----------------------------------------------------------------------------
  async function sendIdentify(body, tries) {
    let res = null;
    try {
      res = await post('/v1/identify', body);
      if (res.ok) return;
      if (!retryable(res.status)) {
        const err = await errorOf(res);
        if (err.code === 'identity_token_expired' && tries < 2 && await refreshToken()) {
          sendIdentify(retoken(body), tries + 1);
          return;
        }
        fail(err.code, err.message, { status: res.status });
        return;
      }
    } catch (e) { /* network: retry below */ }
    if (tries < 5) setTimeout(() => sendIdentify(body, tries + 1), backoffMs(tries + 1, res));
    else fail('identify_failed', 'could not record the attributes; giving up');
  }

  // ---- track -------------------------------------------------------------------------------
  // Each event is its own request (the gateway fires triggers per event), retried like identify.
  async function sendTrack(body, tries) {
    let res = null;
    try {
      // keepalive: a page often tracks something and navigates away at once.
      res = await post('/v1/track', body, { keepalive: true });
      if (res.ok) return;
      if (!retryable(res.status)) { // wrong site id, identity proof, bad name or data: never taken
        const err = await errorOf(res);
        if (err.code === 'identity_token_expired' && tries < 2 && await refreshToken()) {
          sendTrack(retoken(body), tries + 1);
          return;
        }
        fail(err.code, err.message, { status: res.status, event: body.name });
        return;
      }
    } catch (e) { /* network: retry below */ }
    if (tries < 5) setTimeout(() => sendTrack(body, tries + 1), backoffMs(tries + 1, res));
    else fail('track_failed', 'could not record the event ' + body.name + '; giving up', { event: body.name });
  }

  // Sends what was tracked before load() and identify(); an event tracked while someone was
  // identified goes out as that person, one tracked before anyone was, as the person identified now.
  function flushTracked() {
    if (!cfg.siteId || !user) return;
    for (const t of tracked.splice(0)) {
      const body = Object.assign(identity(), { name: t.name, data: t.data });
      if (t.user !== null && t.user !== user) {
        body.user = t.user;
        if (t.userHash) body.user_hash = t.userHash; else delete body.user_hash;
        if (t.userToken) body.user_token = t.userToken; else delete body.user_token;
      }
      sendTrack(body, 0);
    }
  }

  // ---- public API --------------------------------------------------------------------------
  function load(options) {
    const o = options || {};
    if (!o.siteId) { fail('invalid_config', 'mailslot.load() needs {siteId, endpoint}'); return; }
    let endpoint = o.endpoint;
    if (endpoint == null) endpoint = script && script.src ? new URL(script.src).origin : '';
    cfg.siteId = String(o.siteId);
    cfg.endpoint = String(endpoint).replace(/\/+$/, '');
    cfg.anon = o.anonymous !== false;
    if (pendingAttrs && user) {
      const body = Object.assign(identity(), { attributes: pendingAttrs });
      if (pendingAnon) body.anonymous_id = pendingAnon;
      pendingAttrs = pendingAnon = null;
      sendIdentify(body, 0);
    }
    flushTracked();
    if (user) elect(); else electVisitor();
  }

  // After load() or reset(), the visitor polls unless an identify() follows in the same task.
  function electVisitor() {
    Promise.resolve().then(() => { if (!user && !identifying && cfg.siteId) elect(); });
  }

  // options: userHash (static proof), userToken (a signed token, or an async function returning
  // one), onTokenExpired (an async function returning a fresh token; default: userToken's function).
  function identify(id, attributes, options) {
    if (id == null || id === '') { fail('invalid_user', 'mailslot.identify() needs the user id or email'); return; }
    id = String(id);
    const o = options || {};
    const gen = ++identifyGen;
    identifying = typeof o.userToken === 'function';
    if (identifying) { // fetch the first token, then identify with it
      Promise.resolve().then(o.userToken).then((t) => {
        if (gen === identifyGen) identify(id, attributes, Object.assign({}, o, { userToken: t, onTokenExpired: o.onTokenExpired || o.userToken }));
      }, (e) => fail('token_refresh_failed', 'userToken failed: ' + String((e && e.message) || e)));
      return;
    }
    const hash = o.userHash ? String(o.userHash) : null;
    const token = o.userToken ? String(o.userToken) : null;
    const changed = id !== user || hash !== userHash || token !== userToken;
    // A visitor becoming a person keeps its screen; the gateway merges it in after its reports.
    const visitor = user ? null : getAnonId(false);
    if (visitor) forgetAnonId();
    if (user && id !== user) { clearScreen(); pendingAttrs = null; }
    user = id;
    userHash = hash;
    userToken = token;
    tokenFn = typeof o.onTokenExpired === 'function' ? o.onTokenExpired : null;
    const attrs = attributes && typeof attributes === 'object' && Object.keys(attributes).length ? attributes : null;
    if (!cfg.siteId) {
      if (attrs || visitor) pendingAttrs = Object.assign(pendingAttrs || {}, attrs);
      pendingAnon = visitor || pendingAnon;
    } else if (visitor) {
      const body = Object.assign(identity(), { attributes: attrs || {}, anonymous_id: visitor });
      flushEvents(true);
      ev.sent.then(() => sendIdentify(body, 0));
    } else if (attrs) sendIdentify(Object.assign(identity(), { attributes: attrs }), 0);
    flushTracked();
    if (changed && cfg.siteId) elect();
  }

  function reset() {
    flushEvents(true); // what the person did still counts, under the old identity
    resign();
    stopPolling();
    clearScreen();
    user = null;
    userHash = null;
    userToken = null;
    tokenFn = null;
    identifyGen++;
    identifying = false;
    pendingAttrs = pendingAnon = null;
    tracked.length = 0;
    forgetAnonId(); // a new visitor from now on, as after a sign-out
    electVisitor();
  }

  function on(event, fn) {
    if (!EVENTS.includes(event) || typeof fn !== 'function') {
      fail('invalid_listener', 'mailslot.on() takes one of ' + EVENTS.join(', ') + ' and a function');
      return () => {};
    }
    listeners[event].push(fn);
    return () => { const i = listeners[event].indexOf(fn); if (i >= 0) listeners[event].splice(i, 1); };
  }

  // An event the person did, for the workspace's triggers (POST /v1/track). Before load() and
  // identify() it waits in memory (the last 100), then goes out.
  function track(name, data) {
    if (typeof name !== 'string' || name.length < 1 || name.length > 64) {
      fail('invalid_event', 'mailslot.track() needs an event name of 1 to 64 characters');
      return;
    }
    if (data != null && (typeof data !== 'object' || Array.isArray(data))) {
      fail('invalid_event', 'mailslot.track() takes its data as an object');
      return;
    }
    if (cfg.siteId && user) {
      sendTrack(Object.assign(identity(), { name, data: data || {} }), 0);
      return;
    }
    tracked.push({ name, data: data || {}, user, userHash, userToken });
    if (tracked.length > MAX_TRACKED) tracked.shift();
  }

  // The page changed: checks page rules against the path now. The History API is watched without
  // it; this is for routers the SDK cannot see (one that kept the original pushState) and plugins.
  function page() { onRoute(); }

  // ---- lifecycle ---------------------------------------------------------------------------
  if (typeof window.BroadcastChannel === 'function') {
    tabs.bc = new window.BroadcastChannel('mailslot');
    tabs.bc.onmessage = (e) => onBus(e.data);
  } else {
    window.addEventListener('storage', (e) => {
      if (e.key !== BUS_KEY || !e.newValue) return;
      try { onBus(JSON.parse(e.newValue)); } catch (x) { /* not ours */ }
    });
  }
  try { tabs.on = !!(window.navigator && window.navigator.locks && (tabs.bc || window.localStorage)); } catch (e) { /* storage blocked */ }

  document.addEventListener('visibilitychange', () => {
    if (hidden()) flushEvents(true);
    if (!coordinated()) { if (hidden()) stopPolling(); else startPolling(); } // no polling while hidden
    else if (tabs.leader && !hidden()) startPolling(); // one poll on becoming visible
    else announce();                                   // the poller polls while any tab shows
  });
  // A single-page app changes its path with the History API: a message may now belong here.
  const onRoute = () => { if (coordinated()) announce(); else redispatch(); };
  for (const k of ['pushState', 'replaceState']) {
    const orig = window.history && window.history[k];
    if (typeof orig === 'function') {
      window.history[k] = function () { const r = orig.apply(this, arguments); onRoute(); return r; };
    }
  }
  window.addEventListener('popstate', onRoute);
  window.addEventListener('focus', () => announce());
  window.addEventListener('blur', () => announce());
  window.addEventListener('pagehide', () => { flushEvents(true); bus({ t: 'bye' }); });
  window.addEventListener('online', () => { if (poll.failures) startPolling(); });

  // ---- styles (injected once, on first render) ----------------------------------------------
  let styled = false;
  function injectStyles() {
    if (styled) return;
    styled = true;
    const style = el('style', 'mailslot-styles');
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  const CSS = `
.mailslot-card{box-sizing:border-box;position:relative;text-align:left;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#344054;background:#fff;border-radius:14px;box-shadow:0 16px 40px -8px rgba(16,24,40,.22),0 4px 10px -4px rgba(16,24,40,.1);-webkit-font-smoothing:antialiased;letter-spacing:normal;text-transform:none}
.mailslot-card *{box-sizing:border-box}
.mailslot-title{margin:0 28px 4px 0;font-size:17px;font-weight:650;line-height:1.35;color:#101828;overflow-wrap:anywhere}
.mailslot-body{margin:0;white-space:pre-line;overflow-wrap:anywhere}
.mailslot-actions{display:flex;flex-wrap:wrap;gap:8px;margin-top:16px}
.mailslot-button{margin:0;padding:9px 16px;font:inherit;font-weight:600;line-height:1.2;color:#344054;background:#fff;border:1px solid #d0d5dd;border-radius:9px;cursor:pointer;box-shadow:0 1px 2px rgba(16,24,40,.05);transition:background .15s,border-color .15s}
.mailslot-button:hover{background:#f9fafb;border-color:#98a2b3}
.mailslot-button.mailslot-primary{color:#fff;background:#4f46e5;border-color:#4f46e5}
.mailslot-button.mailslot-primary:hover{background:#4338ca;border-color:#4338ca}
.mailslot-button:focus-visible,.mailslot-close:focus-visible{outline:3px solid rgba(79,70,229,.4);outline-offset:2px}
.mailslot-close{position:absolute;top:10px;right:10px;width:30px;height:30px;margin:0;padding:0;border:0;border-radius:50%;font:22px/30px system-ui,sans-serif;text-align:center;color:#667085;background:transparent;cursor:pointer}
.mailslot-close:hover{color:#101828;background:rgba(16,24,40,.07)}
.mailslot-has-image.mailslot-modal>.mailslot-close{background:rgba(255,255,255,.9)}
.mailslot-image{display:block}
.mailslot-overlay{position:fixed;inset:0;z-index:2147483001;display:flex;align-items:center;justify-content:center;padding:24px;background:rgba(16,24,40,.5);-webkit-backdrop-filter:blur(3px);backdrop-filter:blur(3px);animation:mailslot-fade .18s ease-out}
.mailslot-modal{width:100%;max-width:440px;max-height:calc(100vh - 48px);overflow:auto;outline:none;animation:mailslot-pop .22s cubic-bezier(.2,.9,.3,1.2)}
.mailslot-modal .mailslot-image{width:100%;max-height:220px;object-fit:cover;border-radius:14px 14px 0 0}
.mailslot-modal .mailslot-text{padding:24px}
.mailslot-modal .mailslot-title{font-size:20px;margin-bottom:8px}
.mailslot-modal .mailslot-actions{margin-top:20px}
.mailslot-banners{position:fixed;left:0;right:0;z-index:2147483000;display:flex;flex-direction:column;align-items:center;gap:8px;padding:12px;pointer-events:none}
.mailslot-banners-top{top:0}
.mailslot-banners-bottom{bottom:0}
.mailslot-banner-top,.mailslot-banner-bottom{pointer-events:auto;display:flex;align-items:center;gap:14px;width:100%;max-width:780px;padding:12px 48px 12px 16px;border-left:4px solid #4f46e5;animation:mailslot-slide .22s ease-out}
.mailslot-banner-bottom{animation-name:mailslot-rise}
.mailslot-banner-top .mailslot-text,.mailslot-banner-bottom .mailslot-text,.mailslot-inline .mailslot-text{flex:1;min-width:0}
.mailslot-banner-top .mailslot-title,.mailslot-banner-bottom .mailslot-title{font-size:15px;margin-bottom:0}
.mailslot-banner-top .mailslot-title,.mailslot-banner-bottom .mailslot-title,.mailslot-banner-top .mailslot-body,.mailslot-banner-bottom .mailslot-body{grid-column:1}
.mailslot-banner-top .mailslot-text,.mailslot-banner-bottom .mailslot-text{display:grid;grid-template-columns:minmax(0,1fr) auto;column-gap:20px;align-items:center}
.mailslot-banner-top .mailslot-actions,.mailslot-banner-bottom .mailslot-actions{grid-column:2;grid-row:1/span 2;margin:0;flex-wrap:nowrap}
.mailslot-banner-top .mailslot-close,.mailslot-banner-bottom .mailslot-close{top:50%;margin-top:-15px}
.mailslot-banner-top .mailslot-image,.mailslot-banner-bottom .mailslot-image{flex:none;width:44px;height:44px;border-radius:10px;object-fit:cover}
.mailslot-inline{display:flex;gap:16px;align-items:flex-start;margin:0 0 12px;padding:18px 48px 18px 18px;border:1px solid #eaecf0;box-shadow:0 1px 3px rgba(16,24,40,.08)}
.mailslot-inline .mailslot-image{flex:none;width:64px;height:64px;border-radius:10px;object-fit:cover}
@keyframes mailslot-fade{from{opacity:0}}
@keyframes mailslot-pop{from{opacity:0;transform:translateY(10px) scale(.97)}}
@keyframes mailslot-slide{from{opacity:0;transform:translateY(-8px)}}
@keyframes mailslot-rise{from{opacity:0;transform:translateY(8px)}}
@media (prefers-reduced-motion:reduce){.mailslot-overlay,.mailslot-card{animation:none}}
@media (max-width:600px){.mailslot-banner-top .mailslot-text,.mailslot-banner-bottom .mailslot-text{display:block}.mailslot-banner-top .mailslot-actions,.mailslot-banner-bottom .mailslot-actions{margin-top:10px;flex-wrap:wrap}.mailslot-modal .mailslot-text{padding:20px}}
`;

  // A message's card as show() draws it, detached and inert: no poll, no event (the console's preview).
  function preview(content) {
    injectStyles();
    const c = content || {};
    const card = buildCard({ id: 'preview', content: c }, LAYOUTS.includes(c.layout) ? c.layout : 'modal');
    card.inert = true;
    return card;
  }

  // ---- install and replay what the snippet queued ------------------------------------------
  const api = {
    load, identify, reset, on, track, page, preview,
    version: VERSION,
    __loaded: true,
    get deviceId() { return getDeviceId(); },
  };
  window.mailslot = api;
  const queued = stub && Array.isArray(stub.q) ? stub.q : [];
  for (const item of queued) {
    const name = item && item[0];
    if (typeof api[name] !== 'function') continue;
    try { api[name](...Array.from(item[1] || [])); } catch (e) { setTimeout(() => { throw e; }); }
  }
})(window, document);
