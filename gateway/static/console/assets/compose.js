// Compose: the live preview (the server renders the Liquid as the chosen person, the web SDK's
// own renderer draws the card) and the audience count before a broadcast.
(function () {
  'use strict';
  const form = document.getElementById('compose-form');
  const stage = document.getElementById('preview-stage');
  const note = document.getElementById('preview-note');
  const who = document.getElementById('preview-as');
  const count = document.getElementById('audience-count');

  function content() {
    const f = new FormData(form);
    const c = { layout: f.get('layout') || 'modal' };
    ['title', 'body', 'image_url', 'element_id'].forEach((k) => { if (f.get(k)) c[k] = f.get(k); });
    const actions = [];
    for (let i = 0; i < 3; i++) {
      const label = f.get('action_label_' + i);
      if (!label) continue;
      const a = { name: f.get('action_name_' + i) || 'action_' + (i + 1), label };
      if (f.get('action_url_' + i)) a.url = f.get('action_url_' + i);
      actions.push(a);
    }
    if (actions.length) c.actions = actions;
    if (c.layout === 'inline' && !c.element_id) c.element_id = 'preview';
    return c;
  }

  // One pending call per function: typing in the audience must not cancel a pending preview.
  const timers = new Map();
  let seq = 0;
  function schedule(fn) { clearTimeout(timers.get(fn)); timers.set(fn, setTimeout(fn, 250)); }

  function drawPreview() {
    const mine = ++seq;
    const c = content();
    if (!c.title && !c.body) {
      stage.textContent = '';
      note.textContent = 'Type a title or a body to see the preview.';
      return;
    }
    window.consoleFetch('/console/api/preview', { content: c, person: who.value }).then((r) => {
      if (mine !== seq) return;
      stage.textContent = '';
      if (!r.ok) { note.textContent = r.data.error ? r.data.error.message : 'cannot preview'; return; }
      note.textContent = who.value ? 'As ' + who.value + ', drawn by the web SDK.' : 'Drawn by the web SDK, as a device shows it.';
      stage.className = 'preview-stage ' + r.data.content.layout;
      stage.appendChild(window.mailslot.preview(r.data.content));
    });
  }

  function countAudience() {
    const f = new FormData(form);
    if (f.get('audience') !== 'all' && !String(f.get('audience_value') || '').trim()) {
      count.textContent = 'Audience: type the ' + (f.get('audience') === 'filter' ? 'filter' : f.get('audience')) + ' to count it';
      return;
    }
    window.consoleFetch('/console/api/audience', { audience: f.get('audience'), value: f.get('audience_value') })
      .then((r) => {
        count.textContent = r.ok ? 'Audience: ' + r.data.count + (r.data.count === 1 ? ' person' : ' people')
          : 'Audience: ' + (r.data.error ? r.data.error.message : 'unknown');
      });
  }

  form.addEventListener('input', (e) => {
    if (e.target.name === 'audience' || e.target.name === 'audience_value') schedule(countAudience);
    else schedule(drawPreview);
  });
  form.addEventListener('change', (e) => { if (e.target.name === 'audience') countAudience(); });
  who.addEventListener('input', () => schedule(drawPreview));
  const load = document.querySelector('[data-load-template]');
  if (load) load.addEventListener('change', () => { if (load.value) location.assign('/console/compose?template=' + load.value); });
  drawPreview();
  countAudience();
})();
