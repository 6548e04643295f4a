// Screenshot a page of the built site after MathJax has typeset it and its fonts have loaded.
// Needs Node 20+ (--experimental-websocket) and a headless Chromium (Debian: apt-get install chromium).
//   mkdocs build && (cd site && python3 -m http.server 8765 &)
//   node --experimental-websocket docs/screenshots/shoot.mjs http://localhost:8765/ landing.png "" 1500
//   node --experimental-websocket docs/screenshots/shoot.mjs http://localhost:8765/agents/td3/ td3.png "#equations" 1000
// Usage: node --experimental-websocket shoot.mjs URL OUT.png [CSS selector to scroll to] [height]
// It prints how many equations MathJax typeset, how many failed, and which fonts loaded.
import { spawn } from "node:child_process";
const [url, out, selector, heightArg] = process.argv.slice(2);
const height = Number(heightArg || 1400);
const port = 9333;
const chrome = spawn("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
  `--remote-debugging-port=${port}`, "--window-size=1280,1400", "about:blank"], { stdio: "ignore" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let pages;
for (let i = 0; i < 50; i++) {
  try { pages = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json(); break; } catch { await sleep(200); }
}
const page = pages.find((p) => p.type === "page");
const ws = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((r) => (ws.onopen = r));
let id = 0; const waiting = new Map();
ws.onmessage = (m) => { const d = JSON.parse(m.data); if (d.id && waiting.has(d.id)) { waiting.get(d.id)(d); waiting.delete(d.id); } };
const send = (method, params = {}) => new Promise((r) => { const i = ++id; waiting.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
await send("Page.enable");
await send("Emulation.setDeviceMetricsOverride", { width: 1280, height, deviceScaleFactor: 1, mobile: false });
await send("Page.navigate", { url });
await sleep(3000);
// Wait for MathJax's typesetting and the web fonts it asked for.
const ready = await send("Runtime.evaluate", { awaitPromise: true, returnByValue: true, expression: `
  (async () => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    await document.fonts.ready;
    return { math: document.querySelectorAll("mjx-container").length,
             errors: document.querySelectorAll("mjx-merror").length,
             fonts: [...document.fonts].filter(f => f.status === "loaded").map(f => f.family).join(",") };
  })()` });
console.log(JSON.stringify(ready.result.result.value));
let y = 0;
if (selector) {
  const r = await send("Runtime.evaluate", { returnByValue: true, expression:
    `(() => { const e = document.querySelector(${JSON.stringify(selector)}); return e ? e.getBoundingClientRect().top + window.scrollY - 20 : 0; })()` });
  y = r.result.result.value;
}
await send("Runtime.evaluate", { expression: `window.scrollTo(0, ${y})` });
await sleep(1500);
const shot = await send("Page.captureScreenshot", { format: "png" });
const fs = await import("node:fs");
fs.writeFileSync(out, Buffer.from(shot.result.data, "base64"));
ws.close(); chrome.kill();
