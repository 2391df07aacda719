/* ragd web UI. Plain JavaScript, no dependencies.
 *
 * Every piece of text that comes from the server is put into the page with
 * textContent / createTextNode (through el()), never as HTML.
 */
(function () {
  'use strict';

  var KEY_STORAGE = 'ragd.apiKey';
  var COLLECTION_STORAGE = 'ragd.collection';
  var DEFAULT_COLLECTION = 'default';
  var COLLECTION_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  var DOCUMENTS_PAGE = 100;
  var POLL_MIN_MS = 400;
  var POLL_MAX_MS = 2000;

  var state = {
    apiKey: '',
    collection: DEFAULT_COLLECTION,
    collections: [],          /* collection objects from the server */
    documentsOffset: 0,
    documentsSeq: 0,          /* guards against out-of-order list answers */
    searchSeq: 0
  };

  function $(id) { return document.getElementById(id); }

  /* el('li', {className: 'x', dataset: {id: 1}}, 'text', childNode, ...) */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    var k;
    if (attrs) {
      for (k in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, k)) continue;
        var v = attrs[k];
        if (v === undefined || v === null) continue;
        if (k === 'className') node.className = v;
        else if (k === 'text') node.textContent = String(v);
        else if (k === 'dataset') {
          for (var d in v) {
            if (Object.prototype.hasOwnProperty.call(v, d)) node.dataset[d] = String(v[d]);
          }
        } else if (k === 'onclick') node.addEventListener('click', v);
        else node.setAttribute(k, String(v));
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === undefined || c === null || c === false) continue;
      node.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function str(v, fallback) {
    if (v === undefined || v === null) return fallback === undefined ? '' : fallback;
    return String(v);
  }

  function formatBytes(n) {
    if (typeof n !== 'number' || !isFinite(n) || n < 0) return '';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
    if (n < 1024 * 1024 * 1024) return (n / (1024 * 1024)).toFixed(1) + ' MB';
    return (n / (1024 * 1024 * 1024)).toFixed(2) + ' GB';
  }

  function formatTime(secs) {
    if (typeof secs !== 'number' || !isFinite(secs) || secs <= 0) return '';
    var d = new Date(secs * 1000);
    return d.toLocaleString();
  }

  /* ---------- errors ---------- */

  function showError(message) {
    $('error-message').textContent = str(message, 'Something went wrong');
    $('error').hidden = false;
  }

  function hideError() {
    $('error').hidden = true;
    $('error-message').textContent = '';
  }

  function ApiError(status, message, type) {
    this.name = 'ApiError';
    this.status = status;
    this.type = type || '';
    this.message = message;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;

  /* Builds an ApiError from a status and the raw body of an error answer. */
  function errorFromResponse(status, statusText, bodyText) {
    var message = '';
    var type = '';
    if (bodyText) {
      try {
        var j = JSON.parse(bodyText);
        if (j && j.error) {
          if (typeof j.error === 'string') message = j.error;
          else {
            message = str(j.error.message);
            type = str(j.error.type);
          }
        } else if (j && typeof j.message === 'string') {
          message = j.message;
        }
      } catch (e) {
        message = bodyText.length > 300 ? bodyText.slice(0, 300) + '…' : bodyText;
      }
    }
    if (!message) message = statusText || ('HTTP ' + status);
    if (status === 401) message += ' — enter a valid API key above.';
    return new ApiError(status, message, type);
  }

  function describeError(err, what) {
    var prefix = what ? what + ': ' : '';
    if (err instanceof ApiError) {
      return prefix + err.message + (err.status ? ' (' + err.status + ')' : '');
    }
    return prefix + str(err && err.message, String(err));
  }

  function reportError(err, what) {
    showError(describeError(err, what));
    if (err instanceof ApiError && err.status === 401) $('api-key').focus();
  }

  /* ---------- API ---------- */

  function authHeaders(headers) {
    headers = headers || {};
    if (state.apiKey) headers['Authorization'] = 'Bearer ' + state.apiKey;
    return headers;
  }

  /* JSON request to the API. Resolves with the parsed body (or null when the
   * body is empty); rejects with an ApiError on any non-2xx answer. */
  function api(method, path, body) {
    var opts = { method: method, headers: authHeaders({ 'Accept': 'application/json' }) };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (res) {
      return res.text().then(function (text) {
        if (!res.ok) throw errorFromResponse(res.status, res.statusText, text);
        if (!text) return null;
        try {
          return JSON.parse(text);
        } catch (e) {
          throw new ApiError(res.status, 'The server sent an answer that is not JSON');
        }
      });
    }, function (e) {
      throw new ApiError(0, 'Cannot reach the server (' + str(e && e.message, 'network error') + ')');
    });
  }

  function listOf(body) {
    if (body && Array.isArray(body.data)) return body.data;
    if (Array.isArray(body)) return body;
    return [];
  }

  function enc(s) { return encodeURIComponent(s); }

  /* ---------- server status ---------- */

  function loadServerStatus() {
    checkReady();
    api('GET', '/v1/version').then(function (v) {
      if (v && v.version) $('server-version').textContent = 'v' + str(v.version);
    }, function () { /* version is cosmetic; auth errors surface elsewhere */ });
  }

  /* Shows readiness; keeps checking while the server is starting or unreachable. */
  var readyTimer = null;
  function checkReady() {
    if (readyTimer) { clearTimeout(readyTimer); readyTimer = null; }
    var badge = $('server-status');
    fetch('/v1/health/ready', { headers: { 'Accept': 'application/json' } }).then(function (res) {
      badge.textContent = res.ok ? 'ready' : 'not ready';
      badge.className = 'badge ' + (res.ok ? 'ok' : 'warn');
      if (!res.ok) readyTimer = setTimeout(checkReady, 3000);
    }, function () {
      badge.textContent = 'offline';
      badge.className = 'badge bad';
      readyTimer = setTimeout(checkReady, 5000);
    });
  }

  /* ---------- API key ---------- */

  function loadApiKey() {
    try { state.apiKey = window.localStorage.getItem(KEY_STORAGE) || ''; } catch (e) { state.apiKey = ''; }
    $('api-key').value = state.apiKey;
  }

  function saveApiKey(ev) {
    ev.preventDefault();
    state.apiKey = $('api-key').value.trim();
    try {
      if (state.apiKey) window.localStorage.setItem(KEY_STORAGE, state.apiKey);
      else window.localStorage.removeItem(KEY_STORAGE);
    } catch (e) { /* storage may be disabled; the key still works for this page */ }
    hideError();
    refreshAll();
  }

  /* ---------- collections ---------- */

  function rememberCollection(name) {
    state.collection = name;
    try { window.localStorage.setItem(COLLECTION_STORAGE, name); } catch (e) { /* ignore */ }
  }

  function renderCollections() {
    var select = $('collection');
    var names = {};
    clear(select);
    var list = state.collections.slice();
    list.forEach(function (c) { names[str(c.name)] = true; });
    /* 'default' and the current choice are always offered: uploading into
     * a collection that does not exist yet creates it. */
    if (!names[DEFAULT_COLLECTION]) list.unshift({ name: DEFAULT_COLLECTION, notYetCreated: true });
    if (!names[state.collection] && state.collection !== DEFAULT_COLLECTION) {
      list.push({ name: state.collection, notYetCreated: true });
    }
    list.forEach(function (c) {
      var name = str(c.name);
      if (!name) return;
      var label = name;
      if (c.notYetCreated) label += ' (empty)';
      else if (typeof c.documents === 'number') {
        label += ' (' + c.documents + (c.documents === 1 ? ' document' : ' documents') + ')';
      }
      var opt = el('option', { value: name }, label);
      if (name === state.collection) opt.selected = true;
      select.appendChild(opt);
    });
  }

  function loadCollections() {
    return api('GET', '/v1/collections').then(function (body) {
      state.collections = listOf(body).filter(function (c) { return c && typeof c.name === 'string'; });
      renderCollections();
    }, function (err) {
      renderCollections();
      reportError(err, 'Loading collections');
    });
  }

  function onCollectionChange() {
    rememberCollection($('collection').value || DEFAULT_COLLECTION);
    state.documentsOffset = 0;
    loadDocuments(false);
    clearResults('');
  }

  function createCollection(ev) {
    ev.preventDefault();
    var input = $('new-collection');
    var name = input.value.trim();
    if (!COLLECTION_RE.test(name)) {
      showError('Collection names are 1–64 characters of letters, digits, "_", "." and "-", starting with a letter or digit.');
      input.focus();
      return;
    }
    var button = $('create-collection');
    button.disabled = true;
    api('POST', '/v1/collections', { name: name }).then(function () {
      hideError();
      input.value = '';
      return name;
    }, function (err) {
      if (err instanceof ApiError && err.status === 409) {
        showError('Collection "' + name + '" already exists; it is now selected.');
        input.value = '';
        return name;
      }
      reportError(err, 'Creating collection');
      return null;
    }).then(function (selected) {
      button.disabled = false;
      if (!selected) return;
      rememberCollection(selected);
      state.documentsOffset = 0;
      loadCollections().then(function () { loadDocuments(false); });
      clearResults('');
    });
  }

  /* ---------- documents ---------- */

  function documentRow(doc) {
    var id = doc.id;
    var name = str(doc.name, '(unnamed)');
    var status = str(doc.status, 'unknown');
    var statusCell = el('td', null, el('span', { className: 'status status-' + status.replace(/[^a-z]/g, '') }, status));
    if (doc.error) {
      statusCell.appendChild(el('div', { className: 'doc-error small' }, str(doc.error)));
    }
    var del = el('button', {
      type: 'button',
      className: 'delete-document danger',
      'aria-label': 'Delete ' + name
    }, 'Delete');
    del.addEventListener('click', function () { onDeleteClick(del, id, name); });
    var nameCell = el('td', { className: 'doc-name' }, el('span', { className: 'name' }, name));
    if (doc.title && doc.title !== name) {
      nameCell.appendChild(el('div', { className: 'muted small' }, str(doc.title)));
    }
    return el('tr', { className: 'document', dataset: { documentId: str(id), name: name, status: status } },
      nameCell,
      statusCell,
      el('td', { className: 'num' }, str(doc.chunks, '')),
      el('td', { className: 'num' }, formatBytes(doc.bytes)),
      el('td', { className: 'small' }, formatTime(doc.updated_at || doc.created_at)),
      el('td', { className: 'actions' }, del));
  }

  /* Deleting takes two clicks: the first arms the button for a few seconds. */
  function onDeleteClick(button, id, name) {
    if (button.dataset.armed !== 'true') {
      button.dataset.armed = 'true';
      button.textContent = 'Confirm delete';
      button.setAttribute('aria-label', 'Confirm deleting ' + name);
      setTimeout(function () {
        if (!button.isConnected || button.disabled) return;
        button.dataset.armed = 'false';
        button.textContent = 'Delete';
        button.setAttribute('aria-label', 'Delete ' + name);
      }, 4000);
      return;
    }
    button.disabled = true;
    button.textContent = 'Deleting…';
    api('DELETE', '/v1/documents/' + enc(String(id))).then(function () {
      hideError();
      $('documents-status').textContent = 'Deleted ' + name + '.';
      var row = button.closest('tr');
      if (row && row.parentNode) row.parentNode.removeChild(row);
      markResultsOfDeleted(id);
      loadCollections();
      loadDocuments(false, true);
    }, function (err) {
      button.disabled = false;
      button.dataset.armed = 'false';
      button.textContent = 'Delete';
      reportError(err, 'Deleting ' + name);
      loadDocuments(false);
    });
  }

  /* loadDocuments(append): append=true fetches the next page.
   * keepStatus leaves the status line (e.g. "Deleted x.") as it is. */
  function loadDocuments(append, keepStatus) {
    var seq = ++state.documentsSeq;
    var collection = state.collection;
    var offset = append ? state.documentsOffset : 0;
    var tbody = $('documents-body');
    var status = $('documents-status');
    var more = $('documents-more');
    var url = '/v1/documents?collection=' + enc(collection) + '&limit=' + DOCUMENTS_PAGE + '&offset=' + offset;
    return api('GET', url).then(function (body) {
      if (seq !== state.documentsSeq) return;
      var docs = listOf(body);
      if (!append) clear(tbody);
      docs.forEach(function (d) { if (d) tbody.appendChild(documentRow(d)); });
      state.documentsOffset = offset + docs.length;
      more.hidden = docs.length < DOCUMENTS_PAGE;
      if (!keepStatus) {
        status.textContent = tbody.children.length === 0
          ? 'No documents in "' + collection + '" yet.'
          : tbody.children.length + (tbody.children.length === 1 ? ' document' : ' documents') + ' in "' + collection + '".';
      }
    }, function (err) {
      if (seq !== state.documentsSeq) return;
      if (err instanceof ApiError && err.status === 404 && !append) {
        /* The collection does not exist yet (e.g. a fresh 'default'). */
        clear(tbody);
        more.hidden = true;
        status.textContent = 'No documents in "' + collection + '" yet.';
        return;
      }
      reportError(err, 'Loading documents');
    });
  }

  /* ---------- uploads ---------- */

  function uploadItem(file, collection) {
    var progress = el('progress', { max: '100', value: '0', 'aria-label': 'Upload progress of ' + file.name });
    var stateLabel = el('span', { className: 'state' }, 'uploading');
    var detail = el('span', { className: 'detail muted small' }, '0%');
    var error = el('div', { className: 'upload-error small', hidden: 'hidden' });
    var li = el('li', { className: 'upload', dataset: { name: file.name, state: 'uploading', collection: collection } },
      el('div', { className: 'upload-head' },
        el('span', { className: 'upload-name' }, file.name),
        el('span', { className: 'muted small' }, formatBytes(file.size) + ' → ' + collection)),
      progress,
      el('div', { className: 'upload-status' }, stateLabel, ' ', detail),
      error);
    return {
      node: li,
      setState: function (s, text) {
        li.dataset.state = s;
        li.className = 'upload state-' + s.replace(/[^a-z]/g, '');
        stateLabel.textContent = s;
        detail.textContent = str(text);
      },
      setProgress: function (fraction) {
        if (fraction === null) { progress.removeAttribute('value'); return; }
        progress.value = Math.max(0, Math.min(100, Math.round(fraction * 100)));
      },
      setError: function (message) {
        error.textContent = str(message);
        error.hidden = !message;
      }
    };
  }

  function uploadFiles(fileList) {
    var files = Array.prototype.slice.call(fileList || []);
    if (!files.length) return;
    hideError();
    var collection = state.collection;
    files.forEach(function (f) { uploadFile(f, collection); });
  }

  var TYPE_BY_EXTENSION = {
    txt: 'text/plain', text: 'text/plain',
    md: 'text/markdown', markdown: 'text/markdown',
    html: 'text/html', htm: 'text/html', xhtml: 'application/xhtml+xml',
    xml: 'application/xml'
  };

  /* Browsers send an empty or generic type for files they do not know
   * (often .md); give such parts a type that matches their extension.
   * The server still checks the content itself. */
  function withKnownType(file) {
    if (file.type && file.type !== 'application/octet-stream') return file;
    var m = /\.([A-Za-z0-9]+)$/.exec(file.name || '');
    var type = m ? TYPE_BY_EXTENSION[m[1].toLowerCase()] : null;
    if (!type) return file;
    try {
      return new File([file], file.name, { type: type, lastModified: file.lastModified });
    } catch (e) {
      return file;
    }
  }

  function uploadFile(file, collection) {
    var item = uploadItem(file, collection);
    var list = $('uploads');
    list.insertBefore(item.node, list.firstChild);

    var form = new FormData();
    form.append('collection', collection);
    form.append('file', withKnownType(file), file.name);

    var xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/documents');
    xhr.setRequestHeader('Accept', 'application/json');
    if (state.apiKey) xhr.setRequestHeader('Authorization', 'Bearer ' + state.apiKey);
    xhr.upload.addEventListener('progress', function (ev) {
      if (ev.lengthComputable && ev.total > 0) {
        item.setProgress(ev.loaded / ev.total);
        item.setState('uploading', Math.round(100 * ev.loaded / ev.total) + '%');
      } else {
        item.setProgress(null);
      }
    });
    xhr.addEventListener('load', function () {
      if (xhr.status < 200 || xhr.status >= 300) {
        var err = errorFromResponse(xhr.status, xhr.statusText, xhr.responseText);
        item.setProgress(0);
        item.setState('failed', 'upload rejected (' + xhr.status + ')');
        item.setError(err.message);
        reportError(err, 'Uploading ' + file.name);
        return;
      }
      item.setProgress(1);
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      var tasks = listOf(body);
      var task = tasks.length ? tasks[0] : null;
      if (!task || task.id === undefined || task.id === null) {
        item.setState('failed', 'unexpected answer');
        item.setError('The server accepted the upload but returned no task.');
        return;
      }
      item.node.dataset.taskId = String(task.id);
      showTask(item, task);
      /* The upload may have created the collection. */
      loadCollections();
      if (!isFinal(task.state)) pollTask(item, task.id, POLL_MIN_MS);
      else onTaskFinished(item, task);
    });
    xhr.addEventListener('error', function () {
      item.setState('failed', 'network error');
      item.setError('The upload did not reach the server (connection closed; the file may be too large).');
    });
    xhr.addEventListener('abort', function () {
      item.setState('failed', 'aborted');
    });
    xhr.send(form);
  }

  function isFinal(s) { return s === 'done' || s === 'failed'; }

  function showTask(item, task) {
    var s = str(task.state, 'queued');
    var text = '';
    var p = task.progress;
    if (s === 'running' && p && typeof p.total === 'number' && p.total > 0) {
      text = (p.done || 0) + '/' + p.total;
      item.setProgress((p.done || 0) / p.total);
    } else if (s === 'done') {
      text = task.outcome ? str(task.outcome) : '';
      if (task.document_id !== undefined && task.document_id !== null) {
        text += (text ? ' · ' : '') + 'document #' + task.document_id;
      }
      item.setProgress(1);
    } else if (s === 'queued') {
      text = 'task #' + str(task.id);
    }
    if (task.outcome) item.node.dataset.outcome = str(task.outcome);
    item.setState(s, text);
    item.setError(s === 'failed' ? str(task.error, 'failed without a reason') : '');
  }

  function pollTask(item, id, delay) {
    setTimeout(function () {
      api('GET', '/v1/tasks/' + enc(String(id))).then(function (task) {
        if (!task) throw new ApiError(0, 'empty task answer');
        showTask(item, task);
        if (isFinal(task.state)) onTaskFinished(item, task);
        else pollTask(item, id, Math.min(POLL_MAX_MS, Math.round(delay * 1.5)));
      }, function (err) {
        if (err instanceof ApiError && (err.status === 0 || err.status >= 500 || err.status === 401)) {
          /* Transient: keep polling, but tell the user. */
          item.setError(describeError(err, 'Checking task'));
          pollTask(item, id, POLL_MAX_MS);
          return;
        }
        item.setState('failed', 'task lost');
        item.setError(describeError(err, 'Checking task'));
      });
    }, delay);
  }

  function onTaskFinished() {
    loadCollections();
    loadDocuments(false);
  }

  function setupDropZone() {
    var zone = $('drop-zone');
    var depth = 0;
    function hasFiles(ev) {
      var types = ev.dataTransfer && ev.dataTransfer.types;
      if (!types) return false;
      for (var i = 0; i < types.length; i++) if (types[i] === 'Files') return true;
      return false;
    }
    zone.addEventListener('dragenter', function (ev) {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      depth++;
      zone.classList.add('dragover');
    });
    zone.addEventListener('dragover', function (ev) {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'copy';
    });
    zone.addEventListener('dragleave', function () {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove('dragover');
    });
    zone.addEventListener('drop', function (ev) {
      ev.preventDefault();
      depth = 0;
      zone.classList.remove('dragover');
      if (ev.dataTransfer && ev.dataTransfer.files) uploadFiles(ev.dataTransfer.files);
    });
    /* A file dropped next to the zone must not navigate away from the page. */
    window.addEventListener('dragover', function (ev) { ev.preventDefault(); });
    window.addEventListener('drop', function (ev) { ev.preventDefault(); });

    var input = $('file-input');
    input.addEventListener('change', function () {
      uploadFiles(input.files);
      input.value = '';   /* lets the same file be chosen again */
    });
  }

  /* ---------- search ---------- */

  function clearResults(message) {
    clear($('results'));
    $('results').dataset.state = 'idle';
    $('search-status').textContent = str(message);
  }

  function markResultsOfDeleted(documentId) {
    var items = $('results').querySelectorAll('li.result');
    for (var i = 0; i < items.length; i++) {
      if (items[i].dataset.documentId === String(documentId)) {
        items[i].classList.add('deleted');
        var badge = items[i].querySelector('.result-deleted');
        if (badge) badge.hidden = false;
      }
    }
  }

  function resultItem(r, i, showCollection) {
    var rank = i + 1;
    var score = typeof r.score === 'number' && isFinite(r.score) ? r.score.toFixed(3) : str(r.score);
    var meta = el('div', { className: 'result-meta' },
      el('span', { className: 'result-rank', 'aria-label': 'Rank ' + rank }, '#' + rank),
      el('span', { className: 'result-document' }, str(r.document, 'document ' + str(r.document_id))),
      showCollection && r.collection ? el('span', { className: 'result-collection muted small' }, str(r.collection)) : null,
      el('span', { className: 'result-score', title: 'BM25 score (higher is better)' }, 'score ' + score),
      el('span', { className: 'result-deleted badge bad', hidden: 'hidden' }, 'deleted'));
    var heading = r.heading_path ? el('div', { className: 'result-heading small' }, str(r.heading_path)) : null;
    var extra = [];
    if (r.page !== undefined && r.page !== null) extra.push('page ' + str(r.page));
    if (r.offsets && typeof r.offsets.start === 'number') extra.push('chars ' + r.offsets.start + '–' + str(r.offsets.end));
    if (r.chunk_id !== undefined && r.chunk_id !== null) extra.push('chunk #' + r.chunk_id);
    return el('li', { className: 'result', dataset: { documentId: str(r.document_id), rank: rank } },
      meta,
      heading,
      el('p', { className: 'result-text' }, str(r.text)),
      extra.length ? el('div', { className: 'result-extra muted small' }, extra.join(' · ')) : null);
  }

  function search(ev) {
    if (ev) ev.preventDefault();
    var results = $('results');
    var status = $('search-status');
    var query = $('search-input').value.trim();
    var seq = ++state.searchSeq;
    results.dataset.seq = String(seq);
    if (!query) {
      clearResults('Type something to search for.');
      results.dataset.state = 'done';
      $('search-input').focus();
      return;
    }
    var topK = parseInt($('top-k').value, 10);
    if (!isFinite(topK) || topK < 1) topK = 5;
    if (topK > 100) topK = 100;
    var all = $('search-all').checked;
    var body = { query: query, top_k: topK };
    if (!all) body.collection = state.collection;

    results.dataset.state = 'loading';
    results.setAttribute('aria-busy', 'true');
    status.textContent = 'Searching…';
    $('search-button').disabled = true;

    api('POST', '/v1/retrieval', body).then(function (answer) {
      if (seq !== state.searchSeq) return;
      hideError();
      var data = listOf(answer);
      clear(results);
      data.forEach(function (r, i) { if (r) results.appendChild(resultItem(r, i, all)); });
      var mode = answer && answer.mode ? ' (' + str(answer.mode) + ')' : '';
      status.textContent = data.length === 0
        ? 'No results.'
        : data.length + (data.length === 1 ? ' result' : ' results') + mode + '.';
    }, function (err) {
      if (seq !== state.searchSeq) return;
      clear(results);
      if (err instanceof ApiError && err.status === 404 && !all) {
        status.textContent = 'No results: collection "' + state.collection + '" has no documents yet.';
        return;
      }
      status.textContent = 'Search failed.';
      reportError(err, 'Search');
    }).then(function () {
      if (seq !== state.searchSeq) return;
      results.dataset.state = 'done';
      results.removeAttribute('aria-busy');
      $('search-button').disabled = false;
    });
  }

  /* ---------- start ---------- */

  function refreshAll() {
    loadServerStatus();
    loadCollections().then(function () { loadDocuments(false); });
  }

  function init() {
    loadApiKey();
    try {
      var saved = window.localStorage.getItem(COLLECTION_STORAGE);
      if (saved && COLLECTION_RE.test(saved)) state.collection = saved;
    } catch (e) { /* ignore */ }
    renderCollections();

    $('api-key-form').addEventListener('submit', saveApiKey);
    $('error-dismiss').addEventListener('click', hideError);
    $('collection').addEventListener('change', onCollectionChange);
    $('refresh-collections').addEventListener('click', function () { hideError(); loadCollections(); });
    $('new-collection-form').addEventListener('submit', createCollection);
    $('refresh-documents').addEventListener('click', function () { hideError(); loadDocuments(false); });
    $('documents-more').addEventListener('click', function () { loadDocuments(true); });
    $('search-form').addEventListener('submit', search);
    setupDropZone();
    refreshAll();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
