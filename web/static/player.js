/* The IKS session player: live view and replay of a recorded terminal.
 *
 * The server runs the terminal emulator and sends frames: {t, k?, w, h, l: [[row, html]], c}
 * (seconds, keyframe, columns, rows, changed rows as escaped HTML with the classes of
 * player.css, cursor [row, col] or null). The player only swaps rows in a grid, so it needs
 * no terminal emulator and no dependencies.
 *
 *   IksPlayer.replay(el, url)  url answers JSON {cols, rows, duration, frames, input, next};
 *                              when `next` is set, url?from=<next> holds the rest.
 *   IksPlayer.live(el, url)    url is a server-sent event stream: `frame`, then `end`
 *                              (or `failed` when the recording cannot be read).
 * Or markup alone: <div data-iks-player="replay" data-src="…"></div> (or "live").
 * Labels come from data-label-* attributes on the element, so the page translates them:
 * play, pause, speed, input, live, ended, loading, failed, seek.
 * Replay starts at #t=<seconds> when the page URL has it (what search results link to).
 */
(function () {
  'use strict';

  var LABELS = {
    play: 'Play', pause: 'Pause', speed: 'Speed', input: 'Keystrokes', live: 'live',
    ended: 'ended', loading: 'loading…', failed: 'cannot load the recording', seek: 'Position',
  };
  var SPEEDS = [0.5, 1, 2, 4, 8];
  // Bounded: a recording is fetched in at most this many parts.
  var MAX_PARTS = 1000;

  function label(el, name) {
    return el.getAttribute('data-label-' + name) || LABELS[name];
  }

  function make(tag, cls, parent) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }

  function clock(s) {
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = (h ? String(m).padStart(2, '0') : String(m)) + ':' + String(sec).padStart(2, '0');
    return h ? h + ':' + mm : mm;
  }

  /* The terminal grid. */
  function Term(parent) {
    this.box = make('div', 'iks-screen', parent);
    this.pre = make('pre', 'iks-term', this.box);
    this.rows = [];
    this.cols = 0;
  }

  Term.prototype.apply = function (f) {
    if (f.k || f.h !== this.rows.length || f.w !== this.cols) {
      this.pre.textContent = '';
      this.rows = [];
      for (var i = 0; i < f.h; i++) this.rows.push(make('div', 'iks-row', this.pre));
      this.cols = f.w;
      this.pre.style.width = f.w + 'ch';
    }
    for (var j = 0; j < f.l.length; j++) {
      var row = this.rows[f.l[j][0]];
      // The server escaped the text; the markup is spans with palette classes only.
      if (row) row.innerHTML = f.l[j][1];
    }
  };

  function Status(parent) {
    this.el = make('span', 'iks-status', parent);
  }
  Status.prototype.set = function (text, kind) {
    this.el.textContent = text;
    this.el.className = 'iks-status' + (kind ? ' iks-' + kind : '');
  };

  function start(el) {
    el.classList.add('iks-player');
    el.textContent = '';
    var main = make('div', 'iks-main', el);
    return { main: main, term: new Term(main), bar: make('div', 'iks-bar', main) };
  }

  /* ----- replay ----- */

  function replay(el, url) {
    var ui = start(el);
    var play = make('button', 'iks-play', ui.bar);
    play.type = 'button';
    play.textContent = label(el, 'play');
    play.disabled = true;
    var seek = make('input', 'iks-seek', ui.bar);
    seek.type = 'range';
    seek.min = '0';
    seek.step = '0.1';
    seek.value = '0';
    seek.setAttribute('aria-label', label(el, 'seek'));
    var time = make('span', 'iks-time', ui.bar);
    var speed = make('select', 'iks-speed', ui.bar);
    speed.setAttribute('aria-label', label(el, 'speed'));
    SPEEDS.forEach(function (s) {
      var o = make('option', null, speed);
      o.value = String(s);
      o.textContent = s + '×';
      if (s === 1) o.selected = true;
    });
    var status = new Status(ui.bar);
    status.set(label(el, 'loading'));
    var pane = make('div', 'iks-input', el);
    make('h3', null, pane).textContent = label(el, 'input');
    var list = make('ol', null, pane);

    var frames = [], keys = [], duration = 0;
    var t = 0, shown = -1, playing = false, last = 0;

    function render() {
      seek.value = String(t);
      time.textContent = clock(t) + ' / ' + clock(duration);
      var latest = null;
      for (var i = 0; i < keys.length; i++) {
        var visible = keys[i].t <= t;
        keys[i].li.hidden = !visible;
        if (visible) latest = keys[i].li;
      }
      if (latest && playing) list.scrollTop = list.scrollHeight;
    }

    // The index of the last frame at or before time s.
    function frameAt(s) {
      var lo = 0, hi = frames.length - 1, found = -1;
      while (lo <= hi) {
        var mid = (lo + hi) >> 1;
        if (frames[mid].t <= s) { found = mid; lo = mid + 1; } else hi = mid - 1;
      }
      return found;
    }

    function goTo(s) {
      t = Math.max(0, Math.min(s, duration));
      var target = frameAt(t);
      if (target < 0) { render(); return; }
      // From the keyframe before the target when going back or when one lies ahead,
      // otherwise on from the frame shown.
      var key = target;
      while (key > 0 && !frames[key].k) key--;
      var from = target < shown || key > shown ? key : shown + 1;
      for (var i = from; i <= target; i++) ui.term.apply(frames[i]);
      shown = target;
      render();
    }

    function tick(now) {
      if (!playing) return;
      t += ((now - last) / 1000) * Number(speed.value);
      last = now;
      if (t >= duration) {
        goTo(duration);
        pause();
        return;
      }
      goTo(t);
      requestAnimationFrame(tick);
    }

    function resume() {
      if (t >= duration) goTo(0);
      playing = true;
      play.textContent = label(el, 'pause');
      last = performance.now();
      requestAnimationFrame(tick);
    }

    function pause() {
      playing = false;
      play.textContent = label(el, 'play');
    }

    play.addEventListener('click', function () { if (playing) pause(); else resume(); });
    seek.addEventListener('input', function () { goTo(Number(seek.value)); });

    function addKeys(input) {
      input.forEach(function (k) {
        var li = make('li', null, list);
        var b = make('button', null, li);
        b.type = 'button';
        make('span', 'iks-at', b).textContent = clock(k.t);
        b.appendChild(document.createTextNode(k.text));
        b.addEventListener('click', function () { goTo(k.t); });
        li.hidden = true;
        keys.push({ t: k.t, li: li });
      });
    }

    function partUrl(from) {
      return url + (url.indexOf('?') < 0 ? '?' : '&') + 'from=' + encodeURIComponent(from);
    }

    function load(u, part) {
      return fetch(u, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) {
          if (!r.ok) throw new Error(r.status);
          return r.json();
        })
        .then(function (data) {
          // Each part starts with a keyframe at its `from`, so parts simply follow each other.
          frames = frames.concat(data.frames);
          addKeys(data.input);
          // The last frame may come a frame interval after the last event.
          duration = Math.max(data.duration, frames.length ? frames[frames.length - 1].t : 0);
          seek.max = String(duration);
          if (part === 0) {
            var m = /(?:^|[#&])t=([0-9.]+)/.exec(location.hash);
            play.disabled = false;
            status.set('');
            goTo(m ? Number(m[1]) : 0);
          } else goTo(t); // a moment asked for may lie in this part
          if (data.next !== null && data.next !== undefined && part + 1 < MAX_PARTS) {
            return load(partUrl(data.next), part + 1);
          }
        });
    }
    load(url, 0).catch(function () { status.set(label(el, 'failed'), 'error'); });

    return { play: resume, pause: pause, seek: goTo };
  }

  /* ----- live ----- */

  function live(el, url) {
    var ui = start(el);
    var status = new Status(ui.bar);
    status.set(label(el, 'loading'));
    var es = new EventSource(url, { withCredentials: true });
    es.addEventListener('frame', function (e) {
      ui.term.apply(JSON.parse(e.data));
      status.set(label(el, 'live'), 'live');
    });
    es.addEventListener('end', function () {
      es.close();
      status.set(label(el, 'ended'), 'ended');
    });
    es.addEventListener('failed', function () {
      es.close();
      status.set(label(el, 'failed'), 'error');
    });
    // A dropped connection reconnects by itself and starts again from a keyframe.
    return { close: function () { es.close(); } };
  }

  function auto() {
    var els = document.querySelectorAll('[data-iks-player]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i], src = el.getAttribute('data-src');
      if (!src) continue;
      if (el.getAttribute('data-iks-player') === 'live') live(el, src);
      else replay(el, src);
    }
  }

  window.IksPlayer = { replay: replay, live: live };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', auto);
  else auto();
})();
