// The facestyle page: plain JavaScript over the /v1 API, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const tokenInput = $("token");
tokenInput.value = localStorage.getItem("facestyle-token") || "";
tokenInput.addEventListener("change", () => { localStorage.setItem("facestyle-token", tokenInput.value); refresh(); });

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (tokenInput.value) h["Authorization"] = "Bearer " + tokenInput.value;
  return h;
}

async function api(method, path, body, accept) {
  const response = await fetch(path, { method, body, headers: headers(accept ? { Accept: accept } : {}) });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { const e = (await response.json()).error; message = e.message + " (" + e.code + ")"; } catch (_) {}
    throw new Error(message);
  }
  return response;
}

function show(element, text, cls) {
  element.textContent = text;
  element.className = "result " + (cls || "");
}

function fileOf(input, what) {
  if (!input.files.length) throw new Error("choose " + what + " first");
  return input.files[0];
}

// Draws the photo on the canvas with its face boxes ([left, top, right, bottom]) and labels.
async function drawFaces(canvas, file, faces) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const line = Math.max(2, Math.round(bitmap.width / 200));
  ctx.lineWidth = line;
  ctx.font = (line * 7) + "px sans-serif";
  for (const face of faces) {
    const [l, t, r, b] = face.box;
    ctx.strokeStyle = face.color || "#00e676";
    ctx.strokeRect(l, t, r - l + 1, b - t + 1);
    if (face.label) {
      ctx.fillStyle = face.color || "#00e676";
      ctx.fillText(face.label, l, Math.max(line * 7, t - line));
    }
  }
  canvas.dataset.faces = String(faces.length);
}

$("verify-run").addEventListener("click", async () => {
  const out = $("verify-result");
  try {
    const a = fileOf($("verify-a"), "photo A"), b = fileOf($("verify-b"), "photo B");
    show(out, "comparing...");
    const form = new FormData();
    form.append("a", a);
    form.append("b", b);
    const r = await (await api("POST", "/v1/verify", form)).json();
    const color = r.same ? "#00e676" : "#ff5252";
    await drawFaces($("verify-canvas-a"), a, [{ box: r.boxes.a, color }]);
    await drawFaces($("verify-canvas-b"), b, [{ box: r.boxes.b, color }]);
    const verdict = r.same ? "Same person" : "Different people";
    show(out, verdict + ": distance " + r.distance.toFixed(4) + (r.same ? " <= " : " > ") + "threshold " + r.threshold,
         r.same ? "same" : "different");
    out.dataset.distance = String(r.distance);
  } catch (e) { show(out, e.message, "error"); }
});

async function refreshPeople() {
  const list = $("people");
  try {
    const { people } = await (await api("GET", "/v1/people")).json();
    list.replaceChildren(...people.map((p) => {
      const item = document.createElement("li");
      item.textContent = p.name + " (" + p.photos + " photo" + (p.photos === 1 ? "" : "s") + ") ";
      const remove = document.createElement("button");
      remove.textContent = "forget";
      remove.addEventListener("click", async () => {
        try { await api("DELETE", "/v1/people/" + encodeURIComponent(p.name)); } catch (e) { alert(e.message); }
        refreshPeople();
      });
      item.appendChild(remove);
      return item;
    }));
  } catch (e) { list.replaceChildren(Object.assign(document.createElement("li"), { textContent: e.message })); }
}

$("enroll-run").addEventListener("click", async () => {
  const out = $("enroll-result");
  try {
    const name = $("enroll-name").value.trim();
    if (!name) throw new Error("type the person's name first");
    const files = $("enroll-files").files;
    if (!files.length) throw new Error("choose at least one photo first");
    const form = new FormData();
    form.append("name", name);
    for (const f of files) form.append("images", f);
    show(out, "enrolling...");
    const r = await (await api("POST", "/v1/enroll", form)).json();
    show(out, r.person + ": " + r.photos.map((p) => p.name + " " + p.status).join(", ") +
         " (" + r.photos_enrolled + " photo(s) enrolled)", "same");
  } catch (e) { show(out, e.message, "error"); }
  refreshPeople();
});

$("identify-run").addEventListener("click", async () => {
  const out = $("identify-result");
  out.replaceChildren();
  out.className = "result";
  try {
    const file = fileOf($("identify-file"), "a photo");
    const form = new FormData();
    form.append("image", file);
    const r = await (await api("POST", "/v1/identify", form)).json();
    const faces = r.faces.map((f) => ({
      box: f.box, label: f.identity, color: f.identity === "unknown" ? "#ffab00" : "#00e676",
    }));
    await drawFaces($("identify-canvas"), file, faces);
    if (!r.faces.length) out.appendChild(Object.assign(document.createElement("li"), { textContent: "no face found" }));
    for (const f of r.faces) {
      const near = f.matches.length ? " (nearest " + f.matches[0].name + " at " + f.matches[0].distance.toFixed(3) + ")" : "";
      out.appendChild(Object.assign(document.createElement("li"), { textContent: f.identity + near }));
    }
  } catch (e) {
    out.appendChild(Object.assign(document.createElement("li"), { textContent: e.message }));
    out.className = "result error";
  }
});

$("stylize-strength").addEventListener("input", () => { $("stylize-strength-value").value = $("stylize-strength").value; });
$("stylize-file").addEventListener("change", () => {
  if ($("stylize-file").files.length) $("stylize-original").src = URL.createObjectURL($("stylize-file").files[0]);
});

$("stylize-run").addEventListener("click", async () => {
  const out = $("stylize-status");
  try {
    const file = fileOf($("stylize-file"), "a photo");
    const style = $("stylize-style").value;
    if (!style) throw new Error("no style is served here");
    const form = new FormData();
    form.append("image", file);
    show(out, "stylising...");
    const query = "?style=" + encodeURIComponent(style) + "&strength=" + $("stylize-strength").value;
    const blob = await (await api("POST", "/v1/stylize" + query, form, "image/png")).blob();
    $("stylize-original").src = URL.createObjectURL(file);
    const img = $("stylize-output");
    await new Promise((resolve, reject) => { img.onload = resolve; img.onerror = reject; img.src = URL.createObjectURL(blob); });
    show(out, style + ": " + img.naturalWidth + "x" + img.naturalHeight, "same");
  } catch (e) { show(out, e.message, "error"); }
});

async function refreshStyles() {
  const select = $("stylize-style");
  try {
    const { styles } = await (await api("GET", "/v1/styles")).json();
    select.replaceChildren(...styles.filter((s) => s.loaded).map((s) =>
      Object.assign(document.createElement("option"), { value: s.name, textContent: s.name.replace(/_/g, " ") })));
  } catch (e) { select.replaceChildren(); }
}

async function refresh() {
  const ready = $("ready");
  try {
    const r = await (await fetch("/readyz")).json();
    ready.textContent = r.ready ? "ready" : "loading models...";
    if (!r.ready) { setTimeout(refresh, 1000); return; }
  } catch (e) { ready.textContent = "server unreachable"; return; }
  await Promise.all([refreshStyles(), refreshPeople()]);
  document.body.dataset.ready = "true";
}

refresh();
