// scepter console: a little progressive enhancement. Every page works
// without it; this file is the only script (the Content-Security-Policy
// allows no inline script).
(function () {
  'use strict';
  document.documentElement.classList.add('js');

  function ready(fn) {
    if (document.readyState !== 'loading') {
      fn();
    } else {
      document.addEventListener('DOMContentLoaded', fn);
    }
  }

  // Copy buttons: <button data-copy="ID"> copies the text of #ID. They are
  // hidden until this script shows them.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var ta = document.createElement('textarea');
      ta.value = text;
      ta.setAttribute('readonly', '');
      ta.className = 'sr-only';
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      document.body.removeChild(ta);
      if (ok) { resolve(); } else { reject(new Error('copy refused')); }
    });
  }

  function setupCopy() {
    document.querySelectorAll('button[data-copy]').forEach(function (btn) {
      var target = document.getElementById(btn.getAttribute('data-copy'));
      if (!target) { return; }
      btn.hidden = false;
      var status = btn.parentNode.querySelector('.copy-status');
      btn.addEventListener('click', function () {
        copyText(target.textContent.trim()).then(function () {
          if (status) { status.textContent = 'Copied.'; }
        }, function () {
          // Select it, so Ctrl+C works.
          var range = document.createRange();
          range.selectNodeContents(target);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          if (status) { status.textContent = 'Selected: press Ctrl+C to copy.'; }
        });
      });
    });
  }

  // Selects marked data-autosubmit send their form when changed.
  function setupAutosubmit() {
    document.querySelectorAll('select[data-autosubmit]').forEach(function (sel) {
      sel.addEventListener('change', function () {
        if (sel.form) { sel.form.requestSubmit ? sel.form.requestSubmit() : sel.form.submit(); }
      });
    });
  }

  // A POST form's submit button is disabled once sent, so a double click
  // sends it once.
  function setupOnce() {
    document.querySelectorAll('form[method="post"]').forEach(function (form) {
      form.addEventListener('submit', function (ev) {
        if (form.dataset.sent === '1') {
          ev.preventDefault();
          return;
        }
        form.dataset.sent = '1';
        var btn = ev.submitter || form.querySelector('button[type="submit"]');
        if (btn) {
          window.setTimeout(function () { btn.disabled = true; }, 0);
        }
      });
    });
    // Coming back with the Back button shows the page from the cache:
    // let its forms be sent again.
    window.addEventListener('pageshow', function (ev) {
      if (!ev.persisted) { return; }
      document.querySelectorAll('form[data-sent]').forEach(function (form) {
        delete form.dataset.sent;
        form.querySelectorAll('button[disabled]').forEach(function (b) { b.disabled = false; });
      });
    });
  }

  ready(function () {
    setupCopy();
    setupAutosubmit();
    setupOnce();
  });
})();
