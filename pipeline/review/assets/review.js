"use strict";
// The review queue, keyboard first: the answer box always has the focus; digits type, Enter saves
// (alone: accepts the reading, except where it is unsure: then the clerk keys what the field says, as an
// ICR verification station asks), S skip, B back, U unreadable, Esc clear, R start over.
const $ = (id) => document.getElementById(id);
const TOKEN = new URLSearchParams(location.search).get("token") || "";
const SURE = 0.9;
const state = { item: null, history: [], confirming: false, busy: false, shownAt: 0 };

async function api(path, body) {
  const opts = { headers: { "X-Formdigits-Token": TOKEN } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) { const err = new Error(data.error || res.statusText); err.data = data; err.status = res.status; throw err; }
  return data;
}

function filters() {
  return { template: $("f-template").value, field: $("f-field").value, reason: $("f-reason").value,
           status: $("f-status").value, source: $("f-source").value.trim() };
}

// Below the review threshold the reading is a guess: Enter alone must not make it the answer.
const unsure = (item) => /low confidence/.test(item.review_reason || "");
const DONE = { accept: "accepted", correct: "corrected", unreadable: "marked unreadable" };

function query(params) {
  const q = new URLSearchParams(filters());
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) q.set(k, JSON.stringify(v));
  return q.toString();
}

function setRemaining(n) { $("remaining").textContent = `${n} left`; $("remaining").dataset.count = n; }

function svgEl(name, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function showCrop(item) {
  const crop = item.crop, img = $("crop"), svg = $("boxes");
  svg.replaceChildren();
  $("nocrop").hidden = !!crop;
  img.hidden = svg.hidden = !crop;
  if (!crop) return;
  // Shown at 1.5x (about 216 dpi on screen), never wider than the card nor taller than a third of the
  // window: the answer box stays in view on a 1280x720 screen.
  const width = Math.min(crop.width * 1.5, 900, crop.width * (window.innerHeight * 0.3) / crop.height);
  img.src = crop.src;
  img.style.width = `${width}px`;
  svg.setAttribute("viewBox", `0 0 ${crop.width} ${crop.height}`);
  const byPos = Object.fromEntries(item.digits.map((d) => [d.position, d]));
  for (const { position, box } of crop.boxes) {
    const d = byPos[position], cls = d && d.confidence >= SURE ? "sure" : "";
    svg.append(svgEl("rect", { x: box[0], y: box[1], width: box[2], height: box[3], class: cls }));
    if (d) {
      const label = svgEl("text", { x: box[0] + box[2] / 2, y: box[1] + box[3] + 9, class: cls, "text-anchor": "middle" });
      label.textContent = `${d.digit}·${Math.round(d.confidence * 100)}`;
      svg.append(label);
    }
  }
}

function showDigits(item) {
  const rows = item.digits.map((d) => {
    const tr = document.createElement("tr");
    const second = d.second_digit === null ? "" : `${d.second_digit} (${(d.second_confidence * 100).toFixed(1)}%)`;
    for (const [text, low] of [[d.position + 1, false], [d.digit, false],
                               [`${(d.confidence * 100).toFixed(1)}%`, d.confidence < SURE], [second, false]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (low) td.className = "low";
      tr.append(td);
    }
    return tr;
  });
  $("digits").tBodies[0].replaceChildren(...rows);
}

function show(item) {
  state.item = item;
  state.confirming = false;
  $("confirm").hidden = true;
  $("item").hidden = !item;
  $("done").hidden = !!item;
  $("answer").value = "";
  if (!item) { $("done-note").textContent = doneNote(); return; }
  $("source").textContent = item.source_uri.split("/").pop();
  $("source").title = item.source_uri;
  $("page").textContent = item.page;
  $("field").textContent = item.field;
  $("template").textContent = item.template ? `(${item.template})` : "";
  $("earlier").textContent = item.review ? `already ${DONE[item.review.action] || item.review.action}`
    + (item.review.action === "unreadable" ? "" : `: ${item.review.value ?? ""}`) : "";
  $("answer").placeholder = unsure(item) ? "unsure reading: type the digits you see"
                                         : "type the right digits, or Enter to accept";
  $("value").textContent = item.value || "(nothing read)";
  $("confidence").textContent = item.confidence === null ? "" : `lowest digit ${(item.confidence * 100).toFixed(1)}%`;
  $("reason").textContent = item.review_reason || "";
  $("rule").textContent = item.rule_text;
  showCrop(item);
  showDigits(item);
  document.body.dataset.key = JSON.stringify(item.key);
  state.shownAt = performance.now();
  $("answer").focus();
}

function doneNote() {
  const n = Number($("remaining").dataset.count || 0);
  return n ? `End of the queue; ${n} skipped item(s) left: press R to start over.` : "Every flagged field here is reviewed.";
}

let loads = 0;  // the latest request wins: two filters changed in a row must not show the first one's answer

async function load(after) {
  const t0 = performance.now(), mine = ++loads;
  const data = await api(`/api/next?${query({ after })}`);
  if (mine !== loads) return;
  setRemaining(data.remaining);
  show(data.item);
  document.body.dataset.nextMs = (performance.now() - t0).toFixed(1);
}

async function act(action, value, confirm = false) {
  if (!state.item || state.busy) return;
  state.busy = true;
  const item = state.item;
  try {
    const data = await api("/api/review", { key: item.key, action, value, confirm, after: item.cursor,
                                            filters: filters(), reviewer: $("reviewer").value });
    state.history.push(item.key);
    const s = data.saved;
    status(`${item.field}: ${s.action}${s.action === "correct" ? ` ${s.value_read || "∅"} → ${s.value_corrected}` : ""}`);
    setRemaining(data.remaining);
    show(data.item);
  } catch (err) {
    if (err.data && err.data.needs_confirmation) {
      state.confirming = true;
      $("confirm").hidden = false;
      $("confirm").textContent = `${value} ${err.data.error}. Enter saves it anyway, Esc goes back to edit.`;
    } else status(`not saved: ${err.message}`, true);
  } finally { state.busy = false; }
}

function status(text, bad = false) { $("status").textContent = text; $("status").style.color = bad ? "#b91c1c" : ""; }

async function back() {
  const key = state.history.pop();
  if (!key) { status("nothing to go back to"); return; }
  const data = await api(`/api/item?${new URLSearchParams({ key: JSON.stringify(key) })}`);
  show(data.item);
}

function submit() {
  const value = $("answer").value.trim();
  if (state.confirming) return act("correct", value, true);
  if (!value && unsure(state.item)) {
    status("the reading is unsure: type the digits you see (U if they cannot be read)", true);
    return;
  }
  if (!value || value === state.item.value) return act("accept", null);
  return act("correct", value);
}

function skip() {
  if (state.item) state.history.push(state.item.key);
  return load(state.item && state.item.cursor);
}

const COMMANDS = {
  s: skip, ArrowRight: skip,
  b: back, ArrowLeft: back, u: () => act("unreadable", null), r: () => { state.history = []; return load(null); },
};

document.addEventListener("keydown", (ev) => {
  const target = ev.target;
  if (target !== $("answer") && target.matches("input, select")) return;  // filters and the name keep their keys
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.key === "Enter") { ev.preventDefault(); if (state.item) submit(); return; }
  if (ev.key === "Escape") { ev.preventDefault(); state.confirming = false; $("confirm").hidden = true; $("answer").value = ""; return; }
  const arrow = ev.key === "ArrowLeft" || ev.key === "ArrowRight";
  const command = COMMANDS[arrow ? ev.key : ev.key.toLowerCase()];
  if (command && (!arrow || !$("answer").value)) { ev.preventDefault(); command(); return; }
  if (ev.key.length === 1 && !/[0-9]/.test(ev.key)) ev.preventDefault();  // digits only in the answer
  else if (/^[0-9]$/.test(ev.key) && target !== $("answer")) $("answer").focus();
});

$("form").addEventListener("submit", (ev) => ev.preventDefault());
$("answer").addEventListener("input", () => { state.confirming = false; $("confirm").hidden = true; });

function fillSelect(select, values) {
  const keep = select.value;
  select.replaceChildren(new Option("all", ""), ...values.map((v) => new Option(v || "(none)", v)));
  select.value = values.includes(keep) ? keep : "";
}

async function init() {
  const opts = await api("/api/options");
  const templates = opts.templates;
  fillSelect($("f-template"), Object.keys(templates));
  fillSelect($("f-reason"), opts.reasons);
  const fields = () => {
    const t = $("f-template").value;
    const names = t ? Object.keys(templates[t] || {}) : [...new Set(Object.values(templates).flatMap(Object.keys))].sort();
    fillSelect($("f-field"), names);
  };
  fields();
  $("reviewer").value = localStorage.getItem("formdigits-reviewer") || opts.reviewer;
  $("reviewer").addEventListener("change", () => localStorage.setItem("formdigits-reviewer", $("reviewer").value));
  $("f-template").addEventListener("change", () => { fields(); state.history = []; load(null); });
  for (const id of ["f-field", "f-reason", "f-status", "f-source"]) $(id).addEventListener("change", () => { state.history = []; load(null); });
  await load(null);
  document.body.dataset.ready = "1";
}

init().catch((err) => status(`cannot load the queue: ${err.message}`, true));
