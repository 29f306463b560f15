// The web UI's page: sign-in, the three dialogue modes of Chatchat 0.2 (LLM, knowledge base,
// file), and knowledge-base management. Every call goes to this origin: `/api/...` is proxied
// to the API with the signed-in user's credential, `/ui/render` turns Markdown into sanitised
// HTML. Text from users, the API or the llm reaches the DOM only as textContent, or as HTML
// that `/ui/render` sanitised (the page's CSP also forbids any inline script).
"use strict";
const $ = (id) => document.getElementById(id);
const LANG_KEY = "chatchat-webui-lang";
const RETRY_CAP_S = 120; // a Retry-After larger than this is waited as this
const RENDER_EVERY_MS = 250; // how often a streaming answer is rendered
const HISTORY_LEN = 10; // messages of history sent with a question, per mode
let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
let csrf = "";
let fileChatId = "";
let editing = null; // {kb, file, chunks: [{id, text}]} while the chunk editor is open
const conversations = {
  llm: { history: [], view: () => $("conv-llm") },
  kb: { history: [], view: () => $("conv-kb") },
  file: { history: [], view: () => $("conv-file") },
};

// -- language ---------------------------------------------------------------------------------
function t(key, vars = {}) {
  const entry = MESSAGES[key];
  const text = entry ? entry[lang] : key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}
// A translated text that follows later language switches.
function say(el, key, vars = {}) {
  el.dataset.i18n = key;
  el.dataset.i18nVars = JSON.stringify(vars);
  el.textContent = t(key, vars);
  return el;
}
// Text that is data (a name, a model), never translated.
function plain(el, text) {
  delete el.dataset.i18n;
  delete el.dataset.i18nVars;
  el.textContent = text;
  return el;
}
function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n, JSON.parse(el.dataset.i18nVars || "{}"));
  }
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of document.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  document.title = t("title");
  for (const select of document.querySelectorAll("select.lang")) select.value = lang;
}
function setLang(value) {
  lang = value === "en" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, lang);
  applyLang();
}
for (const select of document.querySelectorAll("select.lang")) {
  select.onchange = () => setLang(select.value);
}

// File pickers: the browser's own button speaks the browser's language, so the page shows its
// own (translated) button and the chosen names instead.
for (const input of document.querySelectorAll(".file-pick input[type=file]")) {
  input.addEventListener("change", () => {
    const chosen = input.parentElement.querySelector(".chosen");
    const names = Array.from(input.files, (f) => f.name);
    if (names.length) plain(chosen, names.join(", "));
    else say(chosen, "noFileChosen");
  });
}

function node(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

// -- calls ------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// Seconds a 503/429 asks us to wait (Retry-After in seconds or as a date), else null.
function retryAfter(response) {
  if (response.status !== 503 && response.status !== 429) return null;
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  let seconds = /^\d+$/.test(value.trim())
    ? parseInt(value, 10)
    : Math.ceil((Date.parse(value) - Date.now()) / 1000);
  if (!Number.isFinite(seconds)) return null;
  return Math.min(Math.max(seconds, 1), RETRY_CAP_S);
}

async function call(url, options = {}) {
  options.headers = { ...(options.headers || {}), "X-CSRF-Token": csrf };
  const response = await fetch(url, options);
  if (response.status === 401) {
    showLogin("sessionExpired");
    throw new ApiError("not signed in", 401);
  }
  return response;
}

async function failure(response) {
  const body = await response.json().catch(() => ({ msg: response.statusText }));
  return new ApiError(body.msg || String(response.status), response.status, retryAfter(response));
}

async function json(url, options) {
  const response = await call(url, options);
  if (!response.ok) throw await failure(response);
  const body = await response.json();
  if (body && body.code && body.code !== 200) throw new ApiError(body.msg, body.code);
  return body;
}

const api = (path, options) => json("/api" + path, options);
const jsonPost = (body) => ({
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body),
});
const post = (path, body) => api(path, jsonPost(body));
const kbQuery = (kb) => "knowledge_base_name=" + encodeURIComponent(kb);

// Server-sent events of a fetch response, parsed as JSON (as 0.2's client reads them).
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("data: ")) yield JSON.parse(line.slice(6));
      }
    }
  }
}

// -- the served model ---------------------------------------------------------------------------
let modelTimer = null;
async function refreshModel() {
  clearTimeout(modelTimer);
  const el = $("model-name");
  try {
    const { data } = await post("/llm_model/list_running_models", {});
    const names = Object.keys(data || {});
    if (names.length) plain(el, names.join(", "));
    else say(el, "modelNone");
  } catch (e) {
    if (e.status === 401) return;
    if (e.retryAfter) {
      say(el, "modelStartingShort", { n: e.retryAfter });
      modelTimer = setTimeout(refreshModel, e.retryAfter * 1000);
    } else say(el, "modelUnavailable", { msg: e.message });
  }
}

// -- dialogue ---------------------------------------------------------------------------------
function mode() {
  return $("mode").value;
}

function showMode() {
  const m = mode();
  $("kb-settings").hidden = m !== "kb";
  $("file-settings").hidden = m !== "file";
  $("retrieval-settings").hidden = m === "llm";
  for (const [name, c] of Object.entries(conversations)) c.view().hidden = name !== m;
  plain($("chat-status"), "");
}
$("mode").onchange = showMode;

async function renderHtml(text, sources = []) {
  return json("/ui/render", jsonPost({ text, sources }));
}

// One answer bubble: streamed text rendered as Markdown (throttled), a notice line for
// "model starting" and errors, the sources at the end.
function answerView(conversation) {
  const bubble = node("div", "msg assistant");
  const notice = node("div", "notice");
  notice.hidden = true;
  const body = node("div", "answer");
  bubble.append(notice, body);
  conversation.append(bubble);
  let text = "";
  let latest = 0;
  let shown = 0;
  let timer = null;

  async function render(sources) {
    const mine = ++latest;
    try {
      const result = await renderHtml(text, sources || []);
      if (mine < shown) return;
      shown = mine;
      body.innerHTML = result.html; // sanitised by the server (nh3 allow-list)
      if (sources && sources.length) {
        const box = node("details", "sources");
        box.open = true;
        box.append(say(node("summary"), "sources"));
        for (const html of result.sources) {
          const item = node("div", "source");
          item.innerHTML = html; // sanitised by the server as above
          box.append(item);
        }
        bubble.append(box);
      }
    } catch (e) {
      if (mine >= shown) {
        shown = mine;
        body.textContent = text;
      }
    }
  }

  return {
    bubble,
    get text() {
      return text;
    },
    add(piece) {
      text += piece;
      if (!shown) body.textContent = text;
      if (timer === null) {
        timer = setTimeout(() => {
          timer = null;
          render();
        }, RENDER_EVERY_MS);
      }
      conversation.parentElement.scrollTop = 1e9;
    },
    async finish(sources) {
      clearTimeout(timer);
      timer = null;
      notice.hidden = true;
      await render(sources);
      conversation.parentElement.scrollTop = 1e9;
    },
    notice(key, vars) {
      notice.hidden = false;
      notice.classList.remove("error");
      say(notice, key, vars);
    },
    fail(message) {
      clearTimeout(timer);
      notice.hidden = false;
      notice.classList.add("error");
      say(notice, "errorPrefix", { msg: message });
      if (text) render();
    },
  };
}

let stopping = null; // the AbortController of the answer in progress

function wait(seconds, signal, tick) {
  return new Promise((resolve, reject) => {
    let left = seconds;
    tick(left);
    const timer = setInterval(() => {
      left -= 1;
      if (left <= 0) {
        clearInterval(timer);
        resolve();
      } else tick(left);
    }, 1000);
    signal.addEventListener("abort", () => {
      clearInterval(timer);
      reject(new DOMException("stopped", "AbortError"));
    });
  });
}

// POST a chat and read its stream. While the API answers 503/429 with Retry-After (the llm
// scaled to zero and starting, or busy), say so and try again after that many seconds.
async function streamAnswer(path, body, view, signal) {
  for (;;) {
    const response = await call("/api" + path, { ...jsonPost(body), signal });
    const delay = retryAfter(response);
    if (delay !== null) {
      await response.body?.cancel();
      await wait(delay, signal, (n) => view.notice("modelStarting", { n }));
      view.notice("retrying");
      continue;
    }
    if (!response.ok) throw await failure(response);
    let sources = null;
    for await (const data of sseEvents(response)) {
      if (data.code !== undefined && data.code !== 200) throw new ApiError(data.msg, data.code);
      if (data.answer !== undefined) view.add(data.answer);
      if (data.text !== undefined) view.add(data.text);
      if (data.docs) sources = data.docs;
    }
    await view.finish(sources);
    return;
  }
}

function chatRequest(m, query, history) {
  const common = { query, history, history_len: HISTORY_LEN, stream: true };
  if (m === "llm") return ["/chat/chat", common];
  const retrieval = {
    top_k: parseInt($("top-k").value, 10) || 3,
    score_threshold: parseFloat($("score-threshold").value),
  };
  if (m === "kb") {
    return ["/chat/knowledge_base_chat", { ...common, ...retrieval, knowledge_base_name: $("chat-kb").value }];
  }
  return ["/chat/file_chat", { ...common, ...retrieval, knowledge_id: fileChatId }];
}

$("chat-form").onsubmit = async (event) => {
  event.preventDefault();
  const query = $("question").value.trim();
  if (!query || stopping) return;
  const m = mode();
  if (m === "kb" && !$("chat-kb").value) return say($("chat-status"), "kbNeeded");
  if (m === "file" && !fileChatId) return say($("chat-status"), "tempNeeded");
  $("chat-status").textContent = "";
  const conversation = conversations[m];
  $("question").value = "";
  conversation.view().append(node("div", "msg user", query));
  const view = answerView(conversation.view());
  const [path, body] = chatRequest(m, query, conversation.history.slice(-HISTORY_LEN));
  stopping = new AbortController();
  $("send").hidden = true;
  $("stop").hidden = false;
  try {
    await streamAnswer(path, body, view, stopping.signal);
    conversation.history.push({ role: "user", content: query }, { role: "assistant", content: view.text });
  } catch (e) {
    if (e.name === "AbortError") view.notice("stopped");
    else view.fail(e.message);
  } finally {
    stopping = null;
    $("send").hidden = false;
    $("stop").hidden = true;
  }
};
$("stop").onclick = () => stopping && stopping.abort();
$("clear-history").onclick = () => {
  const conversation = conversations[mode()];
  conversation.history = [];
  conversation.view().replaceChildren();
};

// Links in answers that leave this origin open in a new tab, so the conversation stays.
$("messages").addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (link && link.origin !== location.origin) {
    event.preventDefault();
    window.open(link.href, "_blank", "noopener,noreferrer");
  }
});

$("temp-upload").onclick = async () => {
  const files = $("temp-files").files;
  if (!files.length) return say($("temp-status"), "tempNeeded");
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  if (fileChatId) form.append("prev_id", fileChatId);
  say($("temp-status"), "tempUploading");
  try {
    const { data } = await json("/api/knowledge_base/upload_temp_docs", { method: "POST", body: form });
    fileChatId = data.id;
    const failed = data.failed_files.map((f) => Object.entries(f).map(([k, v]) => `${k}: ${v}`)).flat();
    if (failed.length) say($("temp-status"), "tempFailed", { files: failed.join("; ") });
    else say($("temp-status"), "tempUploaded", { n: files.length });
  } catch (e) {
    say($("temp-status"), "failed", { msg: e.message });
  }
};

// -- knowledge-base management ----------------------------------------------------------------
const kbStatus = (key, vars) => say($("kb-status"), key, vars);

function fillKbs(select, names, keep) {
  const previous = keep || select.value;
  select.replaceChildren();
  if (!names.length) {
    const none = say(node("option"), "kbNone");
    none.value = "";
    select.add(none);
  }
  for (const name of names) select.add(new Option(name, name));
  if (names.includes(previous)) select.value = previous;
}

async function refreshKbs(selected) {
  const { data } = await api("/knowledge_base/list_knowledge_bases");
  fillKbs($("kb-select"), data, selected);
  fillKbs($("chat-kb"), data, selected);
  await refreshFiles();
}

function downloadUrl(kb, file) {
  return "/ui/download?" + new URLSearchParams({ knowledge_base_name: kb, file_name: file });
}

// The file list shows one page of FILE_PAGE files (a KB filled by a bulk import has 100k):
// the server pages and filters (`offset`, `limit`, `name_contains`); `total` is what matched.
const FILE_PAGE = 100;
const fileView = { kb: "", offset: 0, filter: "", shown: 0 };

async function refreshFiles() {
  const kb = $("kb-select").value;
  const shown = ++fileView.shown; // a later refresh (typing in the filter) supersedes this one
  if (kb !== fileView.kb) {
    fileView.kb = kb; // another KB: its first page, unfiltered
    fileView.offset = 0;
    fileView.filter = $("file-filter").value = "";
  }
  const list = $("file-list");
  if (!kb) {
    list.replaceChildren();
    showPager(0, 0);
    return;
  }
  const page = new URLSearchParams({ offset: fileView.offset, limit: FILE_PAGE });
  if (fileView.filter) page.set("name_contains", fileView.filter);
  const query = kbQuery(kb) + "&" + page;
  const [{ data, total }, { data: imported }] = await Promise.all([
    api("/knowledge_base/list_files?" + query),
    api("/knowledge_base/imported_files?" + query),
  ]);
  if (shown !== fileView.shown) return;
  if (!data.length && fileView.offset > 0 && total > 0) {
    // the page emptied (its last files deleted): show the last page there is
    fileView.offset = Math.floor((total - 1) / FILE_PAGE) * FILE_PAGE;
    return refreshFiles();
  }
  list.replaceChildren();
  if (!data.length) {
    const row = node("tr");
    const cell = fileView.filter
      ? say(node("td", "empty"), "noMatchingFiles", { filter: fileView.filter })
      : say(node("td", "empty"), "noFiles");
    cell.colSpan = 2;
    row.append(cell);
    list.append(row);
  }
  for (const file of data) {
    const row = node("tr");
    row.dataset.file = file;
    const actions = node("td", "actions");
    // A bulk-imported file has no original on the KB volume: say where it came from instead.
    const origin = imported[file];
    const link = origin
      ? say(node("span", "imported"), "importedFrom", { id: origin.import_id })
      : say(node("a", "download"), "download");
    if (origin) link.title = origin.source_path;
    else link.href = downloadUrl(kb, file);
    const edit = say(node("button", "edit secondary"), "editChunks");
    edit.type = "button";
    edit.onclick = () => openEditor(kb, file);
    const remove = say(node("button", "delete danger"), "deleteFile");
    remove.type = "button";
    remove.onclick = () => deleteFile(kb, file);
    actions.append(link, edit, remove);
    row.append(node("td", "name", file), actions);
    list.append(row);
  }
  showPager(data.length, total);
}

function showPager(count, total) {
  $("file-pager").hidden = total <= FILE_PAGE && fileView.offset === 0;
  $("files-prev").disabled = fileView.offset === 0;
  $("files-next").disabled = fileView.offset + count >= total;
  const range = $("files-range");
  if (count) say(range, "filesRange", { from: fileView.offset + 1, to: fileView.offset + count, total });
  else plain(range, "");
}

function showFiles(offset) {
  fileView.offset = Math.max(0, offset);
  refreshFiles().catch((e) => kbStatus("failed", { msg: e.message }));
}
$("files-prev").onclick = () => showFiles(fileView.offset - FILE_PAGE);
$("files-next").onclick = () => showFiles(fileView.offset + FILE_PAGE);
let filterTimer;
$("file-filter").oninput = () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    fileView.filter = $("file-filter").value.trim();
    showFiles(0);
  }, 250);
};
$("kb-select").onchange = () => {
  closeEditor();
  refreshFiles().catch((e) => kbStatus("failed", { msg: e.message }));
};

$("kb-create").onclick = async () => {
  const name = $("kb-name").value.trim();
  const info = $("kb-info").value.trim();
  try {
    await post("/knowledge_base/create_knowledge_base", { knowledge_base_name: name });
    if (info) await post("/knowledge_base/update_info", { knowledge_base_name: name, kb_info: info });
    $("kb-name").value = "";
    $("kb-info").value = "";
    await refreshKbs(name);
    kbStatus("kbCreated", { name });
  } catch (e) {
    kbStatus("failed", { msg: e.message });
  }
};

$("kb-delete").onclick = async () => {
  const name = $("kb-select").value;
  if (!name || !confirm(t("kbDeleteConfirm", { name }))) return;
  try {
    await post("/knowledge_base/delete_knowledge_base", name);
    closeEditor();
    await refreshKbs();
    kbStatus("kbDeleted", { name });
  } catch (e) {
    kbStatus("failed", { msg: e.message });
  }
};

async function deleteFile(kb, file) {
  if (!confirm(t("deleteFileConfirm", { file }))) return;
  try {
    await post("/knowledge_base/delete_docs", {
      knowledge_base_name: kb,
      file_names: [file],
      delete_content: true,
    });
    if (editing && editing.file === file) closeEditor();
    await refreshFiles();
    kbStatus("fileDeleted", { file });
  } catch (e) {
    kbStatus("failed", { msg: e.message });
  }
}

$("upload").onclick = () => {
  const kb = $("kb-select").value;
  const files = $("files").files;
  if (!kb || !files.length) return kbStatus("chooseFirst");
  const form = new FormData();
  form.append("knowledge_base_name", kb);
  form.append("override", "true");
  form.append("chunk_size", $("chunk-size").value);
  form.append("chunk_overlap", $("chunk-overlap").value);
  form.append("zh_title_enhance", $("zh-title").checked ? "true" : "false");
  for (const f of files) form.append("files", f, f.name);
  // XMLHttpRequest, not fetch: only it reports upload progress.
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/knowledge_base/upload_docs");
  xhr.setRequestHeader("X-CSRF-Token", csrf);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) $("upload-progress").value = (100 * e.loaded) / e.total;
  };
  xhr.onload = async () => {
    let body;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (e) {
      body = { msg: xhr.statusText };
    }
    $("upload-progress").value = 100;
    if (xhr.status === 401) return showLogin("sessionExpired");
    if (xhr.status === 200) kbStatus("uploaded", { n: files.length });
    else kbStatus("uploadFailed", { msg: body.msg });
    await refreshFiles();
  };
  xhr.onerror = () => kbStatus("uploadFailed", { msg: t("networkError") });
  $("upload-progress").value = 0;
  kbStatus("uploading");
  xhr.send(form);
};

// Rebuild: 0.2's stream of {code, msg, total, finished, doc}, one event per file.
$("kb-rebuild").onclick = async () => {
  const kb = $("kb-select").value;
  if (!kb) return kbStatus("kbNeeded");
  const bar = $("rebuild-progress");
  const line = $("rebuild-status");
  bar.value = 0;
  const failed = [];
  try {
    const response = await call(
      "/api/knowledge_base/recreate_vector_store",
      jsonPost({
        knowledge_base_name: kb,
        allow_empty_kb: true,
        chunk_size: parseInt($("chunk-size").value, 10) || 250,
        chunk_overlap: parseInt($("chunk-overlap").value, 10) || 0,
        zh_title_enhance: $("zh-title").checked,
      }),
    );
    if (!response.ok) throw await failure(response);
    for await (const data of sseEvents(response)) {
      if (data.total) bar.value = (100 * data.finished) / data.total;
      if (data.code !== 200) failed.push(data.msg);
      say(line, "rebuilding", { msg: data.msg || "" });
    }
    bar.value = 100;
    if (failed.length) say(line, "rebuiltWithErrors", { n: failed.length, msg: failed.join("; ") });
    else say(line, "rebuilt");
  } catch (e) {
    say(line, "failed", { msg: e.message });
  }
};

// The chunk editor: a file's chunks (search_docs by file_name, no query), saved with
// update_docs_by_id. Saving gives the file's chunks new ids, so the list is read again.
async function openEditor(kb, file) {
  const docs = await post("/knowledge_base/search_docs", { knowledge_base_name: kb, file_name: file, query: "" })
    .catch((e) => kbStatus("failed", { msg: e.message }));
  if (!docs) return;
  editing = { kb, file, chunks: docs.map((d) => ({ id: d.id, text: d.page_content, metadata: d.metadata })) };
  say($("editor-title"), "editorTitle", { file });
  const list = $("chunks");
  list.replaceChildren();
  if (!docs.length) list.append(say(node("p", "empty"), "noChunks"));
  editing.chunks.forEach((chunk, n) => {
    const item = node("label", "chunk");
    const area = node("textarea");
    area.value = chunk.text;
    area.dataset.id = chunk.id;
    area.rows = Math.min(12, Math.max(3, Math.ceil(chunk.text.length / 70)));
    item.append(say(node("span", "chunk-id"), "chunkId", { n: n + 1, id: chunk.id }), area);
    list.append(item);
  });
  $("chunk-editor").hidden = false;
  $("chunk-editor").scrollIntoView();
}
function closeEditor() {
  editing = null;
  $("chunk-editor").hidden = true;
  $("chunks").replaceChildren();
}
$("editor-close").onclick = closeEditor;
$("chunks-save").onclick = async () => {
  if (!editing) return;
  const docs = {};
  for (const area of $("chunks").querySelectorAll("textarea")) {
    const chunk = editing.chunks.find((c) => c.id === area.dataset.id);
    if (chunk && area.value !== chunk.text) {
      docs[chunk.id] = { page_content: area.value, metadata: chunk.metadata };
    }
  }
  const n = Object.keys(docs).length;
  if (!n) return kbStatus("chunksUnchanged");
  try {
    await post("/knowledge_base/update_docs_by_id", { knowledge_base_name: editing.kb, docs });
    kbStatus("chunksSaved", { n });
    await openEditor(editing.kb, editing.file);
  } catch (e) {
    kbStatus("failed", { msg: e.message });
  }
};

// -- pages, sign-in ---------------------------------------------------------------------------
function showPage(page) {
  $("page-chat").hidden = page !== "chat";
  $("page-kb").hidden = page !== "kb";
  $("chat-settings").hidden = page !== "chat";
  for (const button of document.querySelectorAll("nav .nav")) {
    button.classList.toggle("active", button.dataset.page === page);
  }
}
for (const button of document.querySelectorAll("nav .nav")) {
  button.onclick = () => showPage(button.dataset.page);
}

function showApp(token, user) {
  csrf = token;
  say($("signed-in-as"), "signedInAs", { user });
  $("login-form").hidden = true;
  $("app-side").hidden = false;
  $("app-main").hidden = false;
  showPage("chat");
  showMode();
  refreshKbs().catch((e) => kbStatus("unreachable", { msg: e.message }));
  refreshModel();
}
function showLogin(key, vars) {
  csrf = "";
  clearTimeout(modelTimer);
  $("login-form").hidden = false;
  $("app-side").hidden = true;
  $("app-main").hidden = true;
  if (key) say($("login-status"), key, vars);
  else plain($("login-status"), "");
}
$("login-form").onsubmit = async (event) => {
  event.preventDefault();
  const response = await fetch("/login", jsonPost({ api_key: $("api-key").value }));
  const body = await response.json().catch(() => ({ msg: response.statusText }));
  $("api-key").value = "";
  if (response.ok) showApp(body.csrf, "admin");
  else showLogin("signInFailed", { msg: body.msg });
};
$("sign-out").onclick = async () => {
  await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf } });
  for (const c of Object.values(conversations)) {
    c.history = [];
    c.view().replaceChildren();
  }
  fileChatId = "";
  closeEditor();
  showLogin("signedOut");
};

applyLang();
fetch("/auth/methods")
  .then(async (r) => {
    $("oidc-sign-in").hidden = !(r.ok && (await r.json()).oidc);
  })
  .catch(() => {});
fetch("/session")
  .then(async (r) => {
    if (r.ok) {
      const body = await r.json();
      showApp(body.csrf, body.user);
    } else showLogin();
  })
  .catch((e) => showLogin("unreachable", { msg: e.message }));
