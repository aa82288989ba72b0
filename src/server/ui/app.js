"use strict";
// The esgate admin page: a client of the admin API on the same origin.
//
// Rules this file keeps (tests/it/admin_ui.rs checks them in a real browser):
// - The admin key lives in sessionStorage only (this tab); it is sent as a Bearer header with
//   each call and never put in a URL, localStorage or a cookie.
// - Everything that comes from the API or the user is rendered as text (textContent, text
//   nodes, input values), never parsed as HTML.
// - Every error the API answers is shown in words next to what caused it.

(function () {
  const KEY = "esgate.adminKey";
  const PAGE = 100;

  const state = {
    view: "tokens",
    from: 0,
    total: 0,
    name: "",
    seq: 0,
    filters: [],
    ipFilters: [],
    tokenNames: new Map(),
    editing: null,
    chosen: [],
    pairSeq: 0,
    confirmAction: null,
    filterEditing: null,
    ipEditing: null,
    linkToken: null,
    linkSeq: 0,
  };

  const $ = (id) => document.getElementById(id);

  // An element with properties and children; strings become text nodes.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k === "click") e.addEventListener("click", v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined && c !== false) e.append(c);
    }
    return e;
  }

  function show(node, on) {
    node.hidden = !on;
  }

  // === the admin API ===

  class ApiError extends Error {
    constructor(status, type, reason) {
      super(reason);
      this.status = status;
      this.type = type;
      this.reason = reason;
    }
  }

  const STATUS_WORDS = {
    0: "esgate did not answer",
    400: "Refused",
    401: "Wrong admin key",
    403: "Forbidden",
    404: "Not found",
    405: "Not supported by this esgate",
    409: "Not allowed",
    413: "Too large",
    429: "Too many attempts",
    500: "esgate could not save the change",
    503: "Unavailable",
  };

  // The words shown for an error: what kind, then the API's own reason.
  function describe(err) {
    if (!(err instanceof ApiError)) return "Unexpected error: " + String(err && err.message ? err.message : err);
    const head = STATUS_WORDS[err.status] || "Error " + err.status;
    const reason = err.reason ? err.reason : "";
    return err.status ? head + " (" + err.status + "): " + reason : head + (reason ? ": " + reason : "");
  }

  async function request(key, method, path, body) {
    const init = {
      method,
      headers: { Authorization: "Bearer " + key },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "network", String(e && e.message ? e.message : e));
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!res.ok) {
      const error = data && data.error ? data.error : {};
      let reason = typeof error.reason === "string" ? error.reason : res.statusText;
      const retry = res.headers.get("Retry-After");
      if (res.status === 429 && retry) reason += " (retry in " + retry + " s)";
      throw new ApiError(res.status, typeof error.type === "string" ? error.type : "", reason);
    }
    return data;
  }

  // A call with the stored key; a refused key ends the session.
  async function api(method, path, body) {
    const key = sessionStorage.getItem(KEY);
    if (!key) {
      signOut("Sign in with the admin key.");
      throw new ApiError(401, "security_exception", "not signed in");
    }
    try {
      return await request(key, method, path, body);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        signOut("esgate no longer accepts this admin key; sign in again.");
      }
      throw e;
    }
  }

  const enc = encodeURIComponent;

  // === messages ===

  function setMessage(id, text) {
    const p = $(id);
    p.textContent = text || "";
    show(p, Boolean(text));
  }

  function clearErrors(form) {
    for (const p of form.querySelectorAll(".error, .field-error")) setMessage(p.id, "");
    for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  }

  // Shows an API error next to the field it names (`field [indices[0]] ...`, `policy
  // require_expiry: ...`), or at the form's foot when it names none.
  function showFormError(err, fields, formErrorId) {
    const text = describe(err);
    const reason = err instanceof ApiError ? err.reason || "" : "";
    let key = null;
    const m = /field \[([A-Za-z_]+)/.exec(reason);
    if (m) key = m[1];
    else if (/require_expiry|max_lifetime|expir/i.test(reason)) key = "expires_in";
    else if (/require_ip_filter|ip filter/i.test(reason)) key = "ip_filter";
    else if (/require_filters|filter/i.test(reason)) key = "filters";
    else if (/permission/i.test(reason)) key = "permissions";
    const target = key && fields[key];
    if (target && !$(target.error).parentElement.closest("[hidden]")) {
      setMessage(target.error, text);
      if (target.input) $(target.input).setAttribute("aria-invalid", "true");
    } else {
      setMessage(formErrorId, text);
    }
  }

  // === time ===

  function absolute(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function relative(iso) {
    const ms = new Date(iso).getTime() - Date.now();
    const s = Math.abs(ms) / 1000;
    let amount;
    if (s < 60) return ms >= 0 ? "in under a minute" : "just now";
    if (s < 3600) amount = plural(Math.round(s / 60), "minute");
    else if (s < 172800) amount = plural(Math.round(s / 3600), "hour");
    else amount = plural(Math.round(s / 86400), "day");
    return ms >= 0 ? "in " + amount : amount + " ago";
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function timeNode(iso, withRelative) {
    const t = el("time", { datetime: iso, title: absolute(iso) });
    if (withRelative) {
      t.append(el("span", { text: relative(iso) }), el("br"), el("span", { class: "muted small", text: absolute(iso) }));
    } else {
      t.textContent = absolute(iso);
    }
    return t;
  }

  // === session ===

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    state.filters = [];
    state.ipFilters = [];
    state.tokenNames = new Map();
    for (const d of document.querySelectorAll("dialog[open]")) d.close();
    clearSecret();
    for (const tb of document.querySelectorAll("tbody")) tb.replaceChildren();
    show($("nav"), false);
    show($("sign-out"), false);
    for (const v of document.querySelectorAll(".view")) show(v, false);
    show($("sign-in-view"), true);
    setMessage("sign-in-error", message || "");
    $("admin-key").value = "";
    $("admin-key").focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    const key = $("admin-key").value;
    setMessage("sign-in-error", "");
    $("admin-key").removeAttribute("aria-invalid");
    if (!key) {
      setMessage("sign-in-error", "Type the admin key.");
      $("admin-key").setAttribute("aria-invalid", "true");
      return;
    }
    try {
      await request(key, "GET", "/tokens?size=1");
    } catch (e) {
      const text = e instanceof ApiError && e.status === 401
        ? "Wrong admin key: esgate refused it."
        : describe(e);
      setMessage("sign-in-error", text);
      $("admin-key").setAttribute("aria-invalid", "true");
      $("admin-key").focus();
      return;
    }
    sessionStorage.setItem(KEY, key);
    $("admin-key").value = "";
    enter();
  }

  function enter() {
    show($("sign-in-view"), false);
    show($("nav"), true);
    show($("sign-out"), true);
    showView("tokens");
  }

  // === views ===

  function showView(name) {
    state.view = name;
    for (const b of document.querySelectorAll("#nav .tab")) {
      if (b.dataset.view === name) b.setAttribute("aria-current", "page");
      else b.removeAttribute("aria-current");
    }
    show($("tokens-view"), name === "tokens");
    show($("filters-view"), name === "filters");
    show($("ip-filters-view"), name === "ip-filters");
    refresh();
  }

  async function refresh() {
    if (state.view === "tokens") {
      await loadLibrary("tokens-error");
      await loadTokens();
    } else if (state.view === "filters") {
      await loadLibrary("filters-error", true);
      renderFilters();
    } else {
      await loadLibrary("ip-filters-error", true);
      renderIpFilters();
    }
  }

  // The filter library and IP filters (the token list and forms show their names), and, for
  // the library views, every token's name (to say which tokens use what).
  async function loadLibrary(errorId, names) {
    try {
      const [f, i] = await Promise.all([api("GET", "/filters"), api("GET", "/ip-filters")]);
      state.filters = f.filters || [];
      state.ipFilters = i.ip_filters || [];
      if (names) {
        const t = await api("GET", "/tokens?size=10000");
        state.tokenNames = new Map((t.tokens || []).map((x) => [x.id, x.name]));
      }
      setMessage(errorId, "");
    } catch (e) {
      setMessage(errorId, describe(e));
    }
  }

  // === tokens ===

  async function loadTokens() {
    const seq = ++state.seq;
    let q = "/tokens?from=" + state.from + "&size=" + PAGE;
    if (state.name) q += "&name=" + enc(state.name);
    try {
      const data = await api("GET", q);
      if (seq !== state.seq) return;
      state.total = data.total || 0;
      if (state.from > 0 && state.from >= state.total) {
        state.from = Math.max(0, Math.floor((state.total - 1) / PAGE) * PAGE);
        return loadTokens();
      }
      setMessage("tokens-error", "");
      renderTokens(data.tokens || []);
    } catch (e) {
      if (seq === state.seq) setMessage("tokens-error", describe(e));
    }
  }

  function libraryFilter(id) {
    return state.filters.find((f) => f.id === id);
  }

  function filterNodes(filters) {
    if (!filters.length) return [el("span", { class: "muted", text: "none" })];
    return filters.map((f) => {
      if (f.missing) return el("span", { class: "chip bad", text: "missing library filter" });
      const pair = f.field + ": " + f.value;
      if (f.id) {
        const lib = libraryFilter(f.id);
        const label = lib && lib.description ? lib.description : pair;
        return el("span", { class: "chip lib", title: "library filter " + pair }, label);
      }
      return el("span", { class: "chip" }, pair);
    });
  }

  function renderTokens(tokens) {
    const body = $("tokens-table").tBodies[0];
    body.replaceChildren(...tokens.map(tokenRow));
    show($("tokens-empty"), tokens.length === 0);
    const first = tokens.length ? state.from + 1 : 0;
    const last = state.from + tokens.length;
    $("page-info").textContent = tokens.length
      ? first + "–" + last + " of " + state.total
      : state.total + " tokens";
    $("page-prev").disabled = state.from === 0;
    $("page-next").disabled = last >= state.total;
  }

  // Per-token limits (rate, concurrency, search cost), when the server has and the token sets any.
  // The scores the token's searches expose ("constant" or "relevance"), when the server has the field.
  function scoresNode(scores) {
    if (typeof scores !== "string" || !scores) return null;
    return el("span", { class: "limit small" }, el("br"), "scores: " + scores);
  }

  function limitNodes(limits) {
    if (!limits || typeof limits !== "object") return [];
    return Object.entries(limits).map(([k, v]) => el("span", { class: "limit small" }, el("br"), k.replace(/_/g, " ") + ": " + String(v)));
  }

  function tokenRow(t) {
    let expiry;
    if (!t.expires_at) expiry = el("span", { class: "muted", text: "never" });
    else if (t.expired) {
      expiry = el("time", { datetime: t.expires_at },
        el("span", { class: "badge expired", text: "expired" }), el("br"),
        el("span", { class: "muted small", text: absolute(t.expires_at) }));
    }
    else expiry = timeNode(t.expires_at, true);
    const ip = t.ip_filter
      ? el("span", { title: (t.ip_cidrs || []).join(", ") }, t.ip_filter)
      : el("span", { class: "muted", text: "any address" });
    const used = t.last_used_at ? timeNode(t.last_used_at, true) : el("span", { class: "muted", text: "never" });
    return el(
      "tr",
      { "data-token-id": t.id, class: t.expired ? "is-expired" : "" },
      el("td", { class: "name" },
        el("span", { class: "name-text", id: "name-" + t.id }, t.name), el("br"),
        el("code", { class: "muted small", title: "created " + absolute(t.created_at) }, t.id),
        t.previous_secret_expires_at && new Date(t.previous_secret_expires_at).getTime() > Date.now()
          ? el("span", { class: "overlap small" }, el("br"), "previous secret works until " + absolute(t.previous_secret_expires_at))
          : null),
      el("td", {}, filterNodes(t.filters || [])),
      el("td", {}, (t.indices || []).join(", ")),
      el("td", {}, (t.permissions || []).join(", "), limitNodes(t.limits), scoresNode(t.scores)),
      el("td", {}, expiry),
      el("td", {}, ip),
      el("td", {}, used),
      el(
        "td",
        { class: "row-actions" },
        // Each button's description is the token's name (screen readers: "Edit, acme").
        el("button", { type: "button", "aria-describedby": "name-" + t.id, click: () => openTokenForm(t) }, "Edit"),
        // Share links are for read tokens (the API refuses them for an `all` token).
        (t.permissions || []).includes("read")
          ? el("button", { type: "button", "aria-describedby": "name-" + t.id, click: () => openLinks(t) }, "Share link")
          : null,
        el("button", { type: "button", "aria-describedby": "name-" + t.id, click: () => confirmRotate(t) }, "Rotate"),
        el("button", { type: "button", "aria-describedby": "name-" + t.id, click: () => confirmReset(t) }, "Reset secret"),
        el("button", { type: "button", class: "danger-text", "aria-describedby": "name-" + t.id, click: () => confirmDelete(t) }, "Delete"),
      ),
    );
  }

  // --- the create / edit form ---

  const TOKEN_FIELDS = {
    name: { input: "t-name", error: "t-name-error" },
    indices: { input: "t-indices", error: "t-indices-error" },
    permissions: { input: "t-permissions", error: "t-permissions-error" },
    expires_in: { input: "t-expires", error: "t-expires-error" },
    expires_at: { input: "t-expires", error: "t-expires-error" },
    ip_filter: { input: "t-ip", error: "t-ip-error" },
    filters: { input: null, error: "t-filters-error" },
  };

  function addPair(field, value) {
    const n = ++state.pairSeq;
    const row = el(
      "div",
      { class: "pair" },
      el("div", { class: "field" }, el("label", { for: "t-field-" + n }, "Field"),
        el("input", { id: "t-field-" + n, class: "pair-field", autocomplete: "off", spellcheck: "false" })),
      el("div", { class: "field" }, el("label", { for: "t-value-" + n }, "Value"),
        el("input", { id: "t-value-" + n, class: "pair-value", autocomplete: "off", spellcheck: "false" })),
    );
    const remove = el("button", { type: "button", class: "quiet", "aria-label": "Remove this field filter" }, "Remove");
    remove.addEventListener("click", () => row.remove());
    row.append(remove);
    row.querySelector(".pair-field").value = field || "";
    row.querySelector(".pair-value").value = value || "";
    $("t-pairs").append(row);
    return row;
  }

  function libraryLabel(f) {
    const pair = f.field + ": " + f.value;
    return f.description ? f.description + " (" + pair + ")" : pair;
  }

  function renderChosen() {
    $("t-chosen").replaceChildren(
      ...state.chosen.map((id) => {
        const f = libraryFilter(id);
        const remove = el("button", { type: "button", class: "quiet", "aria-label": "Remove library filter " + (f ? libraryLabel(f) : id) }, "Remove");
        remove.addEventListener("click", () => {
          state.chosen = state.chosen.filter((x) => x !== id);
          renderChosen();
        });
        return el("li", { class: "chip lib" }, f ? libraryLabel(f) : id, " ", remove);
      }),
    );
  }

  function addChosenLibrary() {
    const id = $("t-library").value;
    if (id && !state.chosen.includes(id)) state.chosen.push(id);
    $("t-library").value = "";
    renderChosen();
  }

  function openTokenForm(token) {
    const form = $("token-form");
    form.reset();
    clearErrors(form);
    state.editing = token;
    $("token-dialog-title").textContent = token ? "Edit token" : "New token";
    $("t-submit").textContent = token ? "Save changes" : "Create token";

    $("t-library").replaceChildren(
      el("option", { value: "" }, state.filters.length ? "choose a library filter…" : "no library filters"),
      ...state.filters.map((f) => el("option", { value: f.id }, libraryLabel(f))),
    );
    $("t-ip").replaceChildren(
      el("option", { value: "" }, "none (any address)"),
      ...state.ipFilters.map((f) => el("option", { value: f.name }, f.name + " (" + f.cidrs.join(", ") + ")")),
    );

    $("t-pairs").replaceChildren();
    state.chosen = [];
    if (token) {
      $("t-name").value = token.name;
      $("t-indices").value = (token.indices || []).join(", ");
      $("t-permissions").value = (token.permissions || ["read"])[0];
      for (const f of token.filters || []) {
        if (f.id) state.chosen.push(f.id);
        else addPair(f.field, f.value);
      }
      if (!$("t-pairs").children.length) addPair();
      $("t-expires-hint").textContent = token.expires_at
        ? "Now " + (token.expired ? "expired" : "expires " + relative(token.expires_at)) + " (" + absolute(token.expires_at) +
          "). Type a shorter time from now to shorten it; it cannot be extended or removed. Empty = unchanged."
        : "Now it never expires. Type a time from now (e.g. 7d) to set an expiry; once set it cannot be removed. Empty = unchanged.";
      const fixed = Boolean(token.ip_filter);
      show($("t-ip-field"), !fixed);
      show($("t-ip-fixed-field"), fixed);
      if (fixed) $("t-ip-fixed").textContent = token.ip_filter + " (" + (token.ip_cidrs || []).join(", ") + ")";
      $("t-ip").options[0].textContent = "none (unchanged)";
      show($("t-ip-hint"), true);
    } else {
      addPair();
      $("t-expires-hint").textContent = "e.g. 30m, 12h, 7d; empty = no expiry.";
      show($("t-ip-field"), true);
      show($("t-ip-fixed-field"), false);
      show($("t-ip-hint"), false);
    }
    renderChosen();
    $("token-dialog").showModal();
    $("t-name").focus();
  }

  function splitList(text) {
    return text.split(/[,\n]/).map((s) => s.trim()).filter((s) => s.length > 0);
  }

  // The filters the form describes, as the API takes them; null after showing a problem.
  function formFilters() {
    const out = [];
    for (const row of $("t-pairs").querySelectorAll(".pair")) {
      const field = row.querySelector(".pair-field").value.trim();
      const value = row.querySelector(".pair-value").value.trim();
      if (!field && !value) continue;
      if (!field || !value) {
        setMessage("t-filters-error", "Each field filter needs both a Field and a Value.");
        (field ? row.querySelector(".pair-value") : row.querySelector(".pair-field")).setAttribute("aria-invalid", "true");
        return null;
      }
      out.push({ field, value });
    }
    const ids = state.chosen.slice();
    const picked = $("t-library").value;
    if (picked && !ids.includes(picked)) ids.push(picked);
    return out.concat(ids);
  }

  async function submitToken(ev) {
    ev.preventDefault();
    const form = $("token-form");
    clearErrors(form);
    const filters = formFilters();
    if (filters === null) return;
    const name = $("t-name").value.trim();
    const indices = splitList($("t-indices").value);
    const permissions = [$("t-permissions").value];
    const expires = $("t-expires").value.trim();
    const ip = $("t-ip").value;
    const token = state.editing;
    const button = $("t-submit");
    button.disabled = true;
    try {
      if (!token) {
        if (!name) {
          setMessage("t-name-error", "A token needs a name.");
          $("t-name").setAttribute("aria-invalid", "true");
          return;
        }
        const body = { name, permissions };
        if (filters.length) body.filters = filters;
        if (indices.length) body.indices = indices;
        if (expires) body.expires_in = expires;
        if (ip) body.ip_filter = ip;
        const created = await api("POST", "/tokens", body);
        $("token-dialog").close();
        showSecret(created.id, created.secret, created.name, "");
        loadTokens();
      } else {
        const body = {};
        if (name !== token.name) body.name = name;
        const wantIndices = indices.length ? indices : ["*"];
        if (JSON.stringify(wantIndices) !== JSON.stringify(token.indices)) body.indices = wantIndices;
        const current = (token.filters || []).map((f) => (f.id ? f.id : { field: f.field, value: f.value }));
        if (JSON.stringify(filters) !== JSON.stringify(current)) body.filters = filters;
        if (JSON.stringify(permissions) !== JSON.stringify(token.permissions)) body.permissions = permissions;
        if (expires) body.expires_in = expires;
        if (ip && !token.ip_filter) body.ip_filter = ip;
        if (Object.keys(body).length) await api("PATCH", "/tokens/" + enc(token.id), body);
        $("token-dialog").close();
        loadTokens();
      }
    } catch (e) {
      showFormError(e, TOKEN_FIELDS, "t-error");
    } finally {
      button.disabled = false;
    }
  }

  // --- the secret, shown once ---

  function clearSecret() {
    $("secret-value").value = "";
    $("secret-id").textContent = "";
    $("secret-usage").replaceChildren();
    $("secret-copied").textContent = "";
  }

  // Copies `text`, saying so in the status line `statusId` (inside the open dialog `host`).
  async function copyText(text, what, statusId, host) {
    let done = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        done = true;
      }
    } catch (_) {
      done = false;
    }
    if (!done) {
      const area = el("textarea", { class: "offscreen", readonly: true });
      area.value = text;
      $(host || "secret-dialog").append(area);
      area.select();
      try {
        done = document.execCommand("copy");
      } catch (_) {
        done = false;
      }
      area.remove();
    }
    $(statusId || "secret-copied").textContent = done ? what + " copied." : "Copying failed: select the text and copy it by hand.";
  }

  function showSecret(id, secret, name, extra) {
    clearSecret();
    $("secret-title").textContent = "Secret of " + name;
    $("secret-value").value = secret;
    $("secret-id").textContent = id;
    setMessage("secret-extra", extra);
    const forms = [
      ["Bearer", "Authorization: Bearer " + secret],
      ["Basic, secret as user name", "Authorization: Basic " + btoa(secret + ":token")],
      ["Basic, secret as password", "Authorization: Basic " + btoa("esgate:" + secret)],
      ["ApiKey (token id and secret)", "Authorization: ApiKey " + btoa(id + ":" + secret)],
    ];
    $("secret-usage").replaceChildren(
      ...forms.map(([label, header]) => {
        const copy = el("button", { type: "button", "aria-label": "Copy " + label + " header" }, "Copy");
        copy.addEventListener("click", () => copyText(header, label + " header"));
        return el("li", {}, el("span", { class: "usage-label" }, label), el("code", {}, header), copy);
      }),
    );
    $("secret-dialog").showModal();
    $("secret-copy").focus();
  }

  // --- rotate, reset, delete: each asks first ---

  function askFirst(title, message, extra, list, action) {
    const form = $("confirm-form");
    clearErrors(form);
    $("confirm-title").textContent = title;
    $("confirm-message").textContent = message;
    $("confirm-list").replaceChildren(...(list || []).map((x) => el("li", {}, x)));
    show($("confirm-list"), Boolean(list && list.length));
    $("confirm-extra").replaceChildren(...(extra || []));
    state.confirmAction = action;
    $("confirm-dialog").showModal();
    const first = $("confirm-extra").querySelector("input");
    (first || $("confirm-ok")).focus();
  }

  async function submitConfirm(ev) {
    ev.preventDefault();
    clearErrors($("confirm-form"));
    const action = state.confirmAction;
    if (!action) return;
    $("confirm-ok").disabled = true;
    try {
      await action();
    } catch (e) {
      setMessage("confirm-error", describe(e));
    } finally {
      $("confirm-ok").disabled = false;
    }
  }

  function confirmRotate(t) {
    const input = el("input", { id: "c-overlap", autocomplete: "off", spellcheck: "false", "aria-describedby": "c-overlap-hint" });
    input.value = "1h";
    const extra = [
      el("div", { class: "field" },
        el("label", { for: "c-overlap" }, "Overlap"),
        input,
        el("p", { class: "hint", id: "c-overlap-hint" }, "How long the current secret keeps working (e.g. 1h, 7d at most; 0s ends it at once).")),
    ];
    askFirst("Rotate the secret of " + t.name + "?",
      "A new secret is made. The current one keeps working until the overlap ends, then stops.",
      extra, null, async () => {
        const r = await api("POST", "/tokens/" + enc(t.id) + "/rotate", { overlap: input.value.trim() });
        $("confirm-dialog").close();
        const until = r.previous_secret_expires_at
          ? "The previous secret works until " + absolute(r.previous_secret_expires_at) + "."
          : "";
        showSecret(t.id, r.secret, t.name, until);
        loadTokens();
      });
  }

  function confirmReset(t) {
    askFirst("Reset the secret of " + t.name + "?",
      "A new secret is made and the current one stops working at once.",
      null, null, async () => {
        const r = await api("POST", "/tokens/" + enc(t.id) + "/reset");
        $("confirm-dialog").close();
        showSecret(t.id, r.secret, t.name, "The previous secret no longer works.");
        loadTokens();
      });
  }

  function confirmDelete(t) {
    askFirst("Delete " + t.name + "?",
      "The token is deleted and its secret stops working at once.",
      null, null, async () => {
        await api("DELETE", "/tokens/" + enc(t.id));
        $("confirm-dialog").close();
        loadTokens();
      });
  }

  // === share links (a token's Kibana links) ===

  const LINK_FIELDS = {
    path: { input: "l-path", error: "l-path-error" },
    "time.from": { input: "l-from", error: "l-time-error" },
    "time.to": { input: "l-to", error: "l-time-error" },
    time: { input: null, error: "l-time-error" },
    expires_in: { input: "l-expires", error: "l-expires-error" },
  };

  // Shows a link API error next to the field its reason names (`field [time.to] ...`), or at
  // the form's foot (a 409: an `all` or expired token, no Kibana front configured).
  function showLinkError(err) {
    const reason = err instanceof ApiError ? err.reason || "" : "";
    const m = /field \[([A-Za-z_.]+)\]/.exec(reason);
    const target = m ? LINK_FIELDS[m[1]] || LINK_FIELDS[m[1].split(".")[0]] : null;
    if (target) {
      setMessage(target.error, describe(err));
      if (target.input) $(target.input).setAttribute("aria-invalid", "true");
    } else {
      setMessage("l-error", describe(err));
    }
  }

  // A `datetime-local` value read as UTC, as the API takes it ("" stays "").
  function utcFromInput(value) {
    if (!value) return "";
    return (value.length === 16 ? value + ":00" : value) + "Z";
  }

  // An RFC 3339 time as "2026-11-01 00:00 UTC" (seconds only when not zero).
  function utcText(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const s = d.toISOString().slice(0, 19).replace("T", " ");
    return (s.endsWith(":00") ? s.slice(0, 16) : s) + " UTC";
  }

  function openLinks(t) {
    state.linkToken = t;
    $("links-title").textContent = "Share links of " + t.name;
    const form = $("link-form");
    form.reset();
    clearErrors(form);
    setMessage("links-error", "");
    $("links-copied").textContent = "";
    $("link-new-url").value = "";
    show($("link-new"), false);
    $("links-table").tBodies[0].replaceChildren();
    show($("links-empty"), false);
    $("links-dialog").showModal();
    $("l-path").focus();
    loadLinks();
  }

  async function loadLinks() {
    const t = state.linkToken;
    if (!t) return;
    const seq = ++state.linkSeq;
    try {
      const data = await api("GET", "/tokens/" + enc(t.id) + "/links");
      if (seq !== state.linkSeq) return;
      setMessage("links-error", "");
      const links = data.links || [];
      $("links-table").tBodies[0].replaceChildren(...links.map(linkRow));
      show($("links-empty"), links.length === 0);
    } catch (e) {
      if (seq === state.linkSeq) setMessage("links-error", describe(e));
    }
  }

  function linkRow(l) {
    const time = l.time
      ? el("span", {}, "snapshot", el("br"), el("span", { class: "small" }, utcText(l.time.from) + " – " + utcText(l.time.to)))
      : el("span", {}, "live");
    let expiry;
    if (l.ended) {
      expiry = el("span", { title: "The token was reset after this link was made: the link no longer opens." },
        el("span", { class: "badge expired", text: "ended" }), el("br"),
        el("span", { class: "muted small", text: "token reset" }));
    } else if (!l.expires_at) expiry = el("span", { class: "muted", text: "never" });
    else if (l.expired) {
      expiry = el("time", { datetime: l.expires_at },
        el("span", { class: "badge expired", text: "expired" }), el("br"),
        el("span", { class: "muted small", text: absolute(l.expires_at) }));
    } else expiry = timeNode(l.expires_at, true);
    const pathId = "link-path-" + l.id;
    let url;
    if (l.url) {
      url = el("span", {}, el("code", { class: "link-url" }, l.url),
        el("button", { type: "button", "aria-label": "Copy the link to " + l.path, click: () => copyText(l.url, "Link", "links-copied", "links-dialog") }, "Copy"));
    } else {
      url = el("span", { class: "muted", text: "no Kibana front configured" });
    }
    return el(
      "tr",
      { "data-link-id": l.id },
      el("td", { class: "path" }, el("code", { id: pathId }, l.path)),
      el("td", {}, time),
      el("td", {}, expiry),
      el("td", { class: "url" }, url),
      el("td", { class: "row-actions" },
        el("button", { type: "button", class: "danger-text", "aria-describedby": pathId, click: () => confirmLinkDelete(l) }, "Delete")),
    );
  }

  async function submitLink(ev) {
    ev.preventDefault();
    const form = $("link-form");
    clearErrors(form);
    const t = state.linkToken;
    if (!t) return;
    const body = { path: $("l-path").value.trim() };
    const from = utcFromInput($("l-from").value);
    const to = utcFromInput($("l-to").value);
    // Both empty: live. One alone is sent as is, and the API names the missing one.
    if (from || to) {
      body.time = {};
      if (from) body.time.from = from;
      if (to) body.time.to = to;
    }
    const expires = $("l-expires").value.trim();
    if (expires) body.expires_in = expires;
    const button = $("l-submit");
    button.disabled = true;
    try {
      const created = await api("POST", "/tokens/" + enc(t.id) + "/links", body);
      form.reset();
      $("links-copied").textContent = "";
      $("link-new-url").value = created.url || "";
      show($("link-new"), true);
      $("link-new-copy").focus();
      loadLinks();
    } catch (e) {
      showLinkError(e);
    } finally {
      button.disabled = false;
    }
  }

  function confirmLinkDelete(l) {
    askFirst("Delete this share link?",
      "Whoever has it can no longer open it, from their next request on.",
      null, [l.path + (l.url ? " (" + l.url + ")" : "")], async () => {
        await api("DELETE", "/links/" + enc(l.id));
        $("confirm-dialog").close();
        if ($("link-new-url").value === l.url) {
          $("link-new-url").value = "";
          show($("link-new"), false);
        }
        loadLinks();
      });
  }

  // === the filter library ===

  function tokenName(id) {
    return state.tokenNames.get(id) || id;
  }

  function usedBy(ids) {
    if (!ids || !ids.length) return el("span", { class: "muted", text: "no token" });
    return el("span", {}, ids.map(tokenName).join(", "));
  }

  function renderFilters() {
    const body = $("filters-table").tBodies[0];
    body.replaceChildren(
      ...state.filters.map((f) =>
        el(
          "tr",
          { "data-filter-id": f.id },
          el("td", {}, f.description ? f.description : el("span", { class: "muted", text: "(no description)" })),
          el("td", {}, el("code", {}, f.field)),
          el("td", {}, el("code", {}, f.value)),
          el("td", {}, usedBy(f.used_by)),
          el(
            "td",
            { class: "row-actions" },
            el("button", { type: "button", click: () => openFilterForm(f) }, "Edit"),
            el("button", { type: "button", class: "danger-text", click: () => confirmFilterDelete(f) }, "Delete"),
          ),
        ),
      ),
    );
    show($("filters-empty"), state.filters.length === 0);
  }

  const FILTER_FIELDS = {
    description: { input: "f-description", error: "f-description-error" },
    field: { input: "f-field", error: "f-field-error" },
    value: { input: "f-value", error: "f-value-error" },
  };

  function openFilterForm(f) {
    const form = $("filter-form");
    form.reset();
    clearErrors(form);
    state.filterEditing = f;
    $("filter-dialog-title").textContent = f ? "Edit filter" : "Add filter";
    if (f) {
      $("f-description").value = f.description || "";
      $("f-field").value = f.field;
      $("f-value").value = f.value;
      const users = (f.used_by || []).map(tokenName);
      setMessage("filter-warning", users.length
        ? "A change applies at once to the " + plural(users.length, "token") + " using it: " + users.join(", ") + "."
        : "A change applies at once to every token using it (none now).");
    } else {
      setMessage("filter-warning", "");
    }
    $("filter-dialog").showModal();
    $("f-description").focus();
  }

  async function submitFilter(ev) {
    ev.preventDefault();
    const form = $("filter-form");
    clearErrors(form);
    const body = {
      description: $("f-description").value.trim(),
      field: $("f-field").value.trim(),
      value: $("f-value").value.trim(),
    };
    const f = state.filterEditing;
    try {
      if (f) {
        const patch = {};
        for (const k of ["description", "field", "value"]) if (body[k] !== (f[k] || "")) patch[k] = body[k];
        if (Object.keys(patch).length) await api("PATCH", "/filters/" + enc(f.id), patch);
      } else {
        await api("POST", "/filters", body);
      }
      $("filter-dialog").close();
      refresh();
    } catch (e) {
      showFormError(e, FILTER_FIELDS, "f-error");
    }
  }

  function confirmFilterDelete(f) {
    const users = (f.used_by || []).map(tokenName);
    const label = f.description || f.field + ": " + f.value;
    let extra = null;
    let detach = null;
    if (users.length) {
      detach = el("input", { type: "checkbox", id: "c-detach" });
      extra = [el("div", { class: "check" }, detach,
        el("label", { for: "c-detach" }, "Also remove it from these tokens (they then see more)"))];
    }
    askFirst("Delete the filter " + label + "?",
      users.length
        ? "These tokens use it; esgate refuses to delete it while they do, unless it is removed from them too:"
        : "No token uses it.",
      extra, users, async () => {
        await api("DELETE", "/filters/" + enc(f.id) + (detach && detach.checked ? "?detach=true" : ""));
        $("confirm-dialog").close();
        refresh();
      });
  }

  // === IP filters ===

  function renderIpFilters() {
    const body = $("ip-filters-table").tBodies[0];
    body.replaceChildren(
      ...state.ipFilters.map((f) =>
        el(
          "tr",
          { "data-ip-filter": f.name },
          el("td", {}, f.name),
          el("td", {}, el("code", {}, f.cidrs.join(", "))),
          el("td", {}, usedBy(f.used_by)),
          el(
            "td",
            { class: "row-actions" },
            el("button", { type: "button", click: () => openIpForm(f) }, "Edit"),
            el("button", { type: "button", class: "danger-text", click: () => confirmIpDelete(f) }, "Delete"),
          ),
        ),
      ),
    );
    show($("ip-filters-empty"), state.ipFilters.length === 0);
  }

  const IP_FIELDS = {
    name: { input: "i-name", error: "i-name-error" },
    cidrs: { input: "i-cidrs", error: "i-cidrs-error" },
  };

  function openIpForm(f) {
    const form = $("ip-form");
    form.reset();
    clearErrors(form);
    state.ipEditing = f;
    $("ip-dialog-title").textContent = f ? "Edit IP filter" : "Add IP filter";
    $("i-name").readOnly = Boolean(f);
    if (f) {
      $("i-name").value = f.name;
      $("i-cidrs").value = f.cidrs.join("\n");
      const users = (f.used_by || []).map(tokenName);
      setMessage("ip-warning", users.length
        ? "A change applies at once to the " + plural(users.length, "token") + " using it: " + users.join(", ") + "."
        : "");
    } else {
      setMessage("ip-warning", "");
    }
    $("ip-dialog").showModal();
    (f ? $("i-cidrs") : $("i-name")).focus();
  }

  async function submitIp(ev) {
    ev.preventDefault();
    const form = $("ip-form");
    clearErrors(form);
    const cidrs = splitList($("i-cidrs").value);
    const f = state.ipEditing;
    try {
      if (f) await api("PATCH", "/ip-filters/" + enc(f.name), { cidrs });
      else await api("POST", "/ip-filters", { name: $("i-name").value.trim(), cidrs });
      $("ip-dialog").close();
      refresh();
    } catch (e) {
      showFormError(e, IP_FIELDS, "i-error");
    }
  }

  function confirmIpDelete(f) {
    const users = (f.used_by || []).map(tokenName);
    askFirst("Delete the IP filter " + f.name + "?",
      users.length ? "These tokens use it; esgate refuses to delete an IP filter in use:" : "No token uses it.",
      null, users, async () => {
        await api("DELETE", "/ip-filters/" + enc(f.name));
        $("confirm-dialog").close();
        refresh();
      });
  }

  // === wiring ===

  function start() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    for (const b of document.querySelectorAll("#nav .tab")) {
      b.addEventListener("click", () => showView(b.dataset.view));
    }
    let timer = null;
    $("token-search").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        state.name = $("token-search").value.trim();
        state.from = 0;
        loadTokens();
      }, 150);
    });
    $("page-prev").addEventListener("click", () => {
      state.from = Math.max(0, state.from - PAGE);
      loadTokens();
    });
    $("page-next").addEventListener("click", () => {
      state.from += PAGE;
      loadTokens();
    });
    $("new-token").addEventListener("click", () => openTokenForm(null));
    $("token-form").addEventListener("submit", submitToken);
    $("t-add-pair").addEventListener("click", () => addPair().querySelector("input").focus());
    $("t-add-library").addEventListener("click", addChosenLibrary);
    $("secret-copy").addEventListener("click", () => copyText($("secret-value").value, "Secret"));
    $("secret-done").addEventListener("click", () => {
      clearSecret();
      $("secret-dialog").close();
    });
    // Esc closes a dialog too: the secret leaves the page however its dialog is closed.
    $("secret-dialog").addEventListener("close", () => {
      if (!$("secret-dialog").open) clearSecret();
    });
    $("confirm-form").addEventListener("submit", submitConfirm);
    $("link-form").addEventListener("submit", submitLink);
    $("link-new-copy").addEventListener("click", () => copyText($("link-new-url").value, "Link", "links-copied", "links-dialog"));
    $("links-dialog").addEventListener("close", () => {
      state.linkToken = null;
      state.linkSeq++;
    });
    $("add-filter").addEventListener("click", () => openFilterForm(null));
    $("filter-form").addEventListener("submit", submitFilter);
    $("add-ip-filter").addEventListener("click", () => openIpForm(null));
    $("ip-form").addEventListener("submit", submitIp);
    for (const b of document.querySelectorAll("[data-close]")) {
      b.addEventListener("click", () => b.closest("dialog").close());
    }
    if (sessionStorage.getItem(KEY)) enter();
    else signOut("");
  }

  start();
})();
