// The cameras (/v1/streams), their events (/v1/events) and the faces not named yet (/v1/unknowns).
// Every request carries the token in a header (app.js's headers()), so frames and events are fetched, not
// given to <img src> or EventSource, which cannot send one.
"use strict";

const FRAME_EVERY_MS = 300; // a camera's frame is asked for again this long after the last one arrived
const EVENTS_SHOWN = 20;
const UNKNOWNS_EVERY_MS = 15000;
const CAMERAS_EVERY_MS = 3000; // the cameras' states and frame counts
const STREAM_CHANGES = new Set(["stream_started", "stream_stopped", "source_end", "source_lost", "reconnected"]);
let eventsAbort = null;
let lastEventId = null;
let unknownsServed = true; // until the server answers 404
let camerasRefreshing = null; // the refresh under way: one at a time, so no camera is shown twice
let camerasAgain = false;

async function addCamera() {
  const out = $("camera-result");
  try {
    const source = $("camera-source").value.trim();
    if (!source) throw new Error("type a camera's URL, index or video file first");
    const body = { source };
    if ($("camera-name").value.trim()) body.name = $("camera-name").value.trim();
    const r = await (await fetch("/v1/streams", {
      method: "POST", body: JSON.stringify(body), headers: headers({ "Content-Type": "application/json" }),
    }).then(checked)).json();
    show(out, "watching " + r.name + " (stream " + r.id + ")", "same");
  } catch (e) { show(out, e.message, "error"); }
  refreshCameras();
}

// fetch's response when it is ok, else an Error with the server's one-line message (as api() in app.js).
async function checked(response) {
  if (response.ok) return response;
  let message = response.status + " " + response.statusText;
  try { const e = (await response.json()).error; message = e.message + " (" + e.code + ")"; } catch (_) {}
  const error = new Error(message);
  error.status = response.status;
  throw error;
}

async function refreshCameras() {
  if (camerasRefreshing) { camerasAgain = true; return camerasRefreshing; }
  camerasRefreshing = showCameras();
  try { await camerasRefreshing; } finally { camerasRefreshing = null; }
  if (camerasAgain) { camerasAgain = false; await refreshCameras(); }
}

async function showCameras() {
  const list = $("camera-list");
  let streams;
  try { streams = (await (await api("GET", "/v1/streams")).json()).streams; } catch (e) { return; }
  const shown = new Map([...list.children].map((figure) => [figure.dataset.id, figure]));
  for (const s of streams) {
    const figure = shown.get(s.id) || cameraFigure(s);
    shown.delete(s.id);
    figure.querySelector(".state").textContent = s.state + (s.error ? ": " + s.error : "") + " · " + s.frames + " frames";
    figure.dataset.state = s.state;
  }
  for (const figure of shown.values()) figure.remove();
}

function cameraFigure(stream) {
  const figure = document.createElement("figure");
  figure.dataset.id = stream.id;
  figure.dataset.frames = "0";
  const img = Object.assign(document.createElement("img"), { alt: stream.name });
  const caption = document.createElement("figcaption");
  const remove = Object.assign(document.createElement("button"), { textContent: "remove" });
  remove.addEventListener("click", async () => {
    try { await api("DELETE", "/v1/streams/" + encodeURIComponent(stream.id)); } catch (e) { alert(e.message); }
    refreshCameras();
  });
  caption.append(Object.assign(document.createElement("span"), { className: "name", textContent: stream.name }),
                 Object.assign(document.createElement("span"), { className: "state" }), remove);
  figure.append(img, caption);
  $("camera-list").appendChild(figure);
  followFrames(figure, img, stream.id);
  return figure;
}

// Shows the camera's newest frame, asking for the next once it has arrived, until the camera is removed.
async function followFrames(figure, img, id) {
  while (figure.isConnected) {
    let wait = FRAME_EVERY_MS;
    try {
      const response = await fetch("/v1/streams/" + encodeURIComponent(id) + "/frame.jpg", { headers: headers() });
      if (response.status === 404) { refreshCameras(); return; }
      if (response.ok) {
        const url = URL.createObjectURL(await response.blob());
        await new Promise((resolve) => { img.onload = img.onerror = resolve; img.src = url; });
        if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
        img.dataset.url = url;
        figure.dataset.frames = String(Number(figure.dataset.frames) + 1);
        if (figure.dataset.frames === "1") refreshCameras(); // its state, now that it shows
      } else {
        wait = 1000; // no frame yet, or the token is wrong: ask again more slowly
      }
    } catch (e) { wait = 2000; }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

function showEvent(kind, data) {
  const list = $("events");
  const at = data.at ? new Date(data.at * 1000).toLocaleTimeString() : new Date().toLocaleTimeString();
  let text = at + " " + (data.name || "") + ": " + kind.replace(/_/g, " ");
  if (kind === "dropped") text = at + " " + data.dropped + " event(s) missed: this page fell behind";
  if (data.identity) text += " " + data.identity;
  if (data.track != null) text += " (track " + data.track + ")";
  if (data.error) text += ": " + data.error;
  const item = Object.assign(document.createElement("li"), { textContent: text, className: kind });
  item.dataset.kind = kind;
  if (data.identity) item.dataset.identity = data.identity;
  list.prepend(item);
  while (list.children.length > EVENTS_SHOWN) list.lastElementChild.remove();
}

// One Server-Sent Event block ("id: ..\nevent: ..\ndata: ..") -> [id, kind, data], or null for a comment.
function parseEvent(block) {
  let id = null, kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0) continue;
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? [id, kind, JSON.parse(data.join("\n"))] : null;
}

// Follows /v1/events with fetch (the token goes in a header), resuming after the last event when cut off.
async function followEvents() {
  if (eventsAbort) eventsAbort.abort();
  const abort = eventsAbort = new AbortController();
  while (!abort.signal.aborted) {
    try {
      const extra = lastEventId ? { "Last-Event-ID": lastEventId } : {};
      const response = await checked(await fetch("/v1/events?replay=" + EVENTS_SHOWN,
                                                  { headers: headers(extra), signal: abort.signal }));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const parsed = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!parsed) continue;
          const [id, kind, data] = parsed;
          if (id) lastEventId = id;
          showEvent(kind, data);
          if (STREAM_CHANGES.has(kind)) refreshCameras();
        }
      }
    } catch (e) {
      if (abort.signal.aborted || e.status === 401) return; // a new token follows them again
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function refreshUnknowns() {
  const section = $("unknowns");
  let clusters;
  try {
    const response = await fetch("/v1/unknowns", { headers: headers() });
    unknownsServed = response.status !== 404; // a server without that feature: the panel stays hidden
    if (!unknownsServed) { section.hidden = true; return; }
    clusters = (await (await checked(response)).json()).clusters;
  } catch (e) { return; }
  section.hidden = false;
  $("unknown-list").replaceChildren(...clusters.map(unknownItem));
  if (!clusters.length) {
    $("unknown-list").appendChild(Object.assign(document.createElement("li"), { textContent: "none yet" }));
  }
}

function unknownItem(cluster) {
  const item = document.createElement("li");
  item.dataset.id = cluster.id;
  const chip = Object.assign(document.createElement("img"), { alt: "face " + cluster.id });
  fetch(cluster.chip, { headers: headers() }).then(checked).then((r) => r.blob())
    .then((blob) => { chip.src = URL.createObjectURL(blob); }).catch(() => {});
  const seen = new Date(cluster.last_seen * 1000).toLocaleTimeString();
  const about = Object.assign(document.createElement("span"),
                              { textContent: "seen " + cluster.count + " times, last at " + seen });
  const name = Object.assign(document.createElement("input"), { type: "text", placeholder: "name" });
  const save = Object.assign(document.createElement("button"), { textContent: "name" });
  save.addEventListener("click", async () => {
    const out = $("unknown-result");
    try {
      if (!name.value.trim()) throw new Error("type a name first");
      await checked(await fetch("/v1/unknowns/" + encodeURIComponent(cluster.id) + "/name", {
        method: "POST", body: JSON.stringify({ name: name.value.trim() }),
        headers: headers({ "Content-Type": "application/json" }),
      }));
      show(out, name.value.trim() + " enrolled", "same");
    } catch (e) { show(out, e.message, "error"); }
    refreshUnknowns();
    refreshPeople();
  });
  item.append(chip, about, name, save);
  return item;
}

function followCameras() {
  refreshCameras();
  followEvents();
  refreshUnknowns();
}

$("camera-add").addEventListener("click", addCamera);
tokenInput.addEventListener("change", followCameras);
setInterval(() => { if (unknownsServed) refreshUnknowns(); }, UNKNOWNS_EVERY_MS);
setInterval(() => { if ($("camera-list").children.length) refreshCameras(); }, CAMERAS_EVERY_MS);
followCameras();
