// edgecv dashboard: boxes over a job's image, and live numbers on the status page. No libraries.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function describe(d) {
  const attrs = Object.entries(d.attributes || {})
    .map(([k, v]) => `${k}=${v === null ? "null" : typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
  const conf = typeof d.confidence === "number" ? ` ${(d.confidence * 100).toFixed(1)}%` : "";
  return `${d.objectName}${conf}${attrs ? " · " + attrs : ""}`;
}

function colourOf(name) {
  let h = 0;
  for (const c of String(name)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return "c" + (h % 8);
}

// The job page: one <rect> per detection in image pixels (the viewBox is the image's size), with a
// <title> (the browser's tooltip) and the same text in #box-info on hover.
function drawBoxes() {
  const data = document.getElementById("job-data");
  const figure = document.getElementById("figure");
  if (!data || !figure) return;
  const job = JSON.parse(data.textContent);
  if (!job.width || !job.height) return;
  const svg = svgElement("svg", {
    class: "boxes", viewBox: `0 0 ${job.width} ${job.height}`, preserveAspectRatio: "none",
    role: "img", "aria-label": `${job.detections.length} detection(s)`,
  });
  const info = document.getElementById("box-info");
  job.detections.forEach((d, i) => {
    const b = d.boundingBox || {};
    const rect = svgElement("rect", {
      x: b.x, y: b.y, width: b.width, height: b.height,
      class: `box ${colourOf(d.objectName)}`, "data-index": i, "data-name": d.objectName,
    });
    const title = svgElement("title");
    title.textContent = describe(d);
    rect.appendChild(title);
    rect.addEventListener("mouseenter", () => { if (info) info.textContent = `#${i + 1} ${describe(d)}`; });
    svg.appendChild(rect);
  });
  figure.appendChild(svg);
}

function drawBars(svg, perMinute) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const top = Math.max(1, ...perMinute.map((m) => m.completed + m.failed));
  perMinute.forEach((m, i) => {
    const hOk = (40 * m.completed) / top;
    const hBad = (40 * m.failed) / top;
    const g = svgElement("g");
    const title = svgElement("title");
    title.textContent = `${m.minute}Z: ${m.completed} completed, ${m.failed} failed`;
    g.appendChild(title);
    g.appendChild(svgElement("rect", { class: "ok", x: i * 4, y: 40 - hOk, width: 3, height: hOk }));
    g.appendChild(svgElement("rect", { class: "bad", x: i * 4, y: 40 - hOk - hBad, width: 3, height: hBad }));
    svg.appendChild(g);
  });
}

// The status page: poll /live.json and put each value into its [data-live] element.
function pollLive() {
  const url = document.body.dataset.liveUrl;
  if (!url) return;
  const every = 2000;
  async function tick() {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const body = await response.json();
        for (const [key, value] of Object.entries(body.values)) {
          for (const el of document.querySelectorAll(`[data-live="${key}"]`)) {
            if (el.textContent !== value) el.textContent = value;
          }
        }
        const spark = document.getElementById("throughput");
        if (spark && body.perMinute) drawBars(spark, body.perMinute);
        document.body.dataset.liveAt = body.at;
      }
    } catch (err) {
      // the agent restarting: try again at the next tick
    }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
}

document.addEventListener("DOMContentLoaded", () => {
  drawBoxes();
  pollLive();
});
