// gossipchain explorer: plain JavaScript, no dependencies. Reads /api/v1, listens to its event
// stream and redraws what changed. Hash routes: #/ (home), #/block/<height or hash>,
// #/address/<address>.
"use strict";
const $ = (id) => document.getElementById(id);
const TREE_DEPTH = 24;
const LATEST = 10;
const state = { status: null, tree: null, timer: null, colours: {} };

async function api(path, options) {
  const response = await fetch("/api/v1" + path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
const short = (h) => (h ? String(h).slice(0, 8) : "");
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const utc = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
const blockLink = (id, text) => `<a class="hash" href="#/block/${esc(id)}">${esc(text ?? short(id))}</a>`;
const addrLink = (a) => (a ? `<a class="hash" href="#/address/${esc(a)}">${esc(short(a))}</a>` : "coinbase");
function say(text, bad) { const m = $("message"); m.textContent = text; m.className = bad ? "err" : ""; }

// Colour per source: this node's miner is blue, each peer gets its own hue from its id.
function colour(source) {
  if (!source) return "#bbb";
  if (source === "mined") return "#2f6fde";
  if (!state.colours[source]) {
    let h = 0;
    for (const c of source) h = (h * 31 + c.charCodeAt(0)) % 360;
    state.colours[source] = `hsl(${(h + 90) % 360} 60% 50%)`;
  }
  return state.colours[source];
}
const sourceName = (s) => (s === "mined" ? "this node's miner" : s ? "peer " + s.slice(-6) : "unknown (before this run)");

async function refresh() {
  const status = await api("/status");
  state.status = status;
  $("network").textContent = status.network;
  $("height").textContent = status.height;
  $("tip").textContent = short(status.tip);
  $("tip").href = "#/block/" + status.tip;
  $("peers").textContent = status.peers;
  $("mempool-count").textContent = status.mempool;
  $("syncing").textContent = status.syncing ? "yes" : "no";
  $("peer-id").textContent = status.peer_id;
  $("account").textContent = short(status.address);
  $("account").href = "#/address/" + status.address;
  const from = Math.max(0, status.height - LATEST + 1);
  const [chain, mempool, tree] = await Promise.all([
    api(`/chain?from=${from}&limit=${LATEST}`),
    api("/mempool"),
    api(`/tree?depth=${TREE_DEPTH}`),
  ]);
  $("blocks").innerHTML = chain.blocks.slice().reverse().map((b) =>
    `<tr data-hash="${b.hash}"><td>${blockLink(b.height, b.height)}</td><td>${blockLink(b.hash)}</td><td>${utc(b.timestamp)}</td><td>${b.transactions.length}</td></tr>`).join("");
  $("mempool").innerHTML = mempool.transactions.slice(0, 50).map((t) =>
    `<tr data-txid="${t.txid}"><td class="hash">${short(t.txid)}</td><td>${addrLink(t.from)}</td><td>${addrLink(t.to)}</td><td>${t.amount}</td></tr>`).join("")
    || `<tr><td colspan="4" class="note">empty</td></tr>`;
  renderPosts(chain.blocks);
  state.tree = tree;
  drawTree(tree);
}

// Posts: transfers that carry a memo (a field the API adds once memos exist).
function renderPosts(blocks) {
  const posts = [];
  for (const b of blocks) for (const t of b.transactions) if (t.memo) posts.push({ b, t });
  if (!posts.length) {
    $("posts").innerHTML = `<p class="note">No posts in the latest blocks. A post is a transfer that carries a memo.</p>`;
    return;
  }
  $("posts").innerHTML = posts.reverse().map(({ b, t }) => {
    let author = t.from, content = t.memo;
    try { const p = JSON.parse(t.memo); if (p && p.content !== undefined) { author = p.author || author; content = p.content; } } catch (_) { /* plain text */ }
    return `<div class="post" data-txid="${t.txid}"><div class="meta">${esc(author || "")} · ${utc(b.timestamp)} · block ${blockLink(b.hash, b.height)}</div><div>${esc(content)}</div></div>`;
  }).join("");
}

// The tree: columns by height, the main chain in row 0, each side branch in a row below.
function drawTree(tree) {
  const W = 86, H = 46, BW = 70, BH = 30, PAD = 12;
  const row = {}, lastInRow = [];
  for (const b of tree.blocks) {
    if (b.on_main) { row[b.hash] = 0; continue; }
    const parentRow = row[b.parent];
    if (parentRow > 0 && lastInRow[parentRow] === b.parent) row[b.hash] = parentRow;
    else { let r = 1; while (lastInRow[r] !== undefined && heightOf(tree, lastInRow[r]) >= b.height - 1) r++; row[b.hash] = r; }
    lastInRow[row[b.hash]] = b.hash;
  }
  const byHash = Object.fromEntries(tree.blocks.map((b) => [b.hash, b]));
  const rows = Math.max(1, ...Object.values(row).map((r) => r + 1));
  const cols = tree.height - tree.from_height + 1;
  const x = (b) => PAD + (b.height - tree.from_height) * W, y = (b) => PAD + 14 + row[b.hash] * H;
  const disconnected = new Set(tree.reorgs.flatMap((r) => r.disconnected));
  let svg = "";
  for (const b of tree.blocks) {
    const p = byHash[b.parent];
    if (p) svg += `<path class="edge" d="M${x(p) + BW},${y(p) + BH / 2} C${x(p) + BW + 8},${y(p) + BH / 2} ${x(b) - 8},${y(b) + BH / 2} ${x(b)},${y(b) + BH / 2}"/>`;
  }
  for (const b of tree.blocks) {
    const dead = disconnected.has(b.hash) && !b.on_main;
    svg += `<g class="block ${b.on_main ? "main" : "side"}${dead ? " reorged" : ""}" data-hash="${b.hash}" data-main="${b.on_main}" data-source="${esc(b.source || "")}"><a href="#/block/${b.hash}">`
      + `<title>height ${b.height} ${b.hash}\nfrom ${esc(sourceName(b.source))}\n${utc(b.timestamp)}</title>`
      + `<rect x="${x(b)}" y="${y(b)}" width="${BW}" height="${BH}" rx="4" fill="${colour(b.source)}" fill-opacity="${b.on_main ? 0.9 : 0.45}" stroke="#333"/>`
      + `<text x="${x(b) + 5}" y="${y(b) + 12}" fill="#fff">${b.height}</text><text x="${x(b) + 5}" y="${y(b) + 25}" fill="#fff">${short(b.hash)}</text></a>`;
    if (dead) svg += `<path class="reorg-mark" d="M${x(b)},${y(b)} l${BW},${BH} M${x(b) + BW},${y(b)} l${-BW},${BH}"/>`;
    svg += `</g>`;
  }
  for (const r of tree.reorgs) {
    if (r.fork_height < tree.from_height) continue;
    const fx = PAD + (r.fork_height - tree.from_height) * W + BW + 4;
    svg += `<text class="fork-label reorg-label" x="${fx}" y="${PAD + 8}">reorg −${r.depth} at ${utc(r.at).slice(11, 19)}</text>`;
  }
  const el = $("tree");
  el.setAttribute("width", PAD * 2 + cols * W);
  el.setAttribute("height", PAD * 2 + 14 + rows * H);
  el.innerHTML = svg;
  const sources = [...new Set(tree.blocks.map((b) => b.source || ""))];
  $("legend").innerHTML = sources.map((s) => `<span><i style="background:${colour(s)}"></i>${esc(sourceName(s))}</span>`).join("")
    + (tree.reorgs.length ? `<span>${tree.reorgs.length} reorg(s) remembered</span>` : "");
}
function heightOf(tree, hash) { const b = tree.blocks.find((x) => x.hash === hash); return b ? b.height : -1; }

// Pages reached by hash routes.
async function showPage() {
  const [, kind, id] = location.hash.split("/");
  const page = $("page");
  if (!kind || !id) { page.hidden = true; $("home").hidden = false; return; }
  $("home").hidden = true; page.hidden = false; page.innerHTML = "<p class='note'>loading…</p>";
  try {
    if (kind === "block") {
      const b = await api("/blocks/" + encodeURIComponent(id));
      page.innerHTML = `<h2>Block ${b.height}</h2><table id="block-page">`
        + `<tr><th>hash</th><td class="hash">${b.hash}</td></tr><tr><th>parent</th><td>${blockLink(b.prev_hash, b.prev_hash)}</td></tr>`
        + `<tr><th>time</th><td>${utc(b.timestamp)}</td></tr><tr><th>difficulty</th><td>${b.difficulty}</td></tr><tr><th>nonce</th><td>${b.nonce}</td></tr></table>`
        + `<h2>Transactions</h2><table><tr><th>txid</th><th>from</th><th>to</th><th>amount</th><th>fee</th><th>memo</th></tr>`
        + b.transactions.map((t) => `<tr data-txid="${t.txid}"><td class="hash">${short(t.txid)}</td><td>${addrLink(t.from)}</td><td>${addrLink(t.to)}</td><td>${t.amount}</td><td>${t.fee}</td><td>${t.memo ? esc(t.memo) : ""}</td></tr>`).join("")
        + `</table><p><a href="#/">back</a></p>`;
    } else if (kind === "address") {
      const a = await api("/accounts/" + encodeURIComponent(id));
      page.innerHTML = `<h2>Address</h2><table id="address-page"><tr><th>address</th><td class="hash">${a.address}</td></tr>`
        + `<tr><th>balance</th><td id="address-balance">${a.balance}</td></tr><tr><th>next nonce</th><td>${a.nonce}</td></tr></table><p><a href="#/">back</a></p>`;
    } else throw new Error("no such page");
  } catch (e) { page.innerHTML = `<p class="err">${esc(e.message)}</p><p><a href="#/">back</a></p>`; }
}

// Live updates: each event asks for one redraw, at most every 200 ms.
function schedule() {
  if (state.timer) return;
  state.timer = setTimeout(() => { state.timer = null; refresh().catch((e) => say(e.message, true)); }, 200);
}
function listen() {
  const stream = new EventSource("/api/v1/events");
  stream.onopen = () => { $("live").textContent = "live"; $("live").className = "pill"; schedule(); };
  stream.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "pill off"; };
  stream.onmessage = () => schedule();
}

$("send-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const body = { to: $("send-to").value.trim(), amount: Number($("send-amount").value), fee: Number($("send-fee").value || 0) };
    const r = await api("/transactions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    say("sent " + r.txid);
    schedule();
  } catch (err) { say(err.message, true); }
});
$("mine-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  say("mining…");
  try {
    const r = await api("/mine", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ count: Number($("mine-count").value || 1) }) });
    say(`mined ${r.mined} block(s), tip at height ${r.height}`);
  } catch (err) { say(err.message, true); }
});
$("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("search-input").value.trim();
  location.hash = /^[0-9a-fA-F]{40}$/.test(q) ? "#/address/" + q : "#/block/" + q;
});
window.addEventListener("hashchange", showPage);
showPage();
refresh().catch((e) => say(e.message, true));
listen();
