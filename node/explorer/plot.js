// The log's growth as an inline SVG: tree size over integrated time, from the node's sampled
// `growth` read. Drawn with DOM calls only (no markup strings), so the page's Trusted Types
// policy holds.

const SVG = "http://www.w3.org/2000/svg";

function element(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function shortDate(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

/**
 * An SVG plot of `points` ([size, time in ms or null]), or a note when fewer than two points
 * have a known time.
 */
export function growthPlot(points) {
  const known = points.filter(([size, time]) => Number.isFinite(size) && Number.isFinite(time));
  const width = 640;
  const height = 240;
  const pad = { left: 64, right: 16, top: 16, bottom: 40 };
  const svg = element("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "plot",
    role: "img",
    "aria-label": "tree size over time",
  });
  if (known.length < 2) {
    svg.append(element("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "not enough history yet"));
    return svg;
  }
  const t0 = known[0][1];
  const t1 = Math.max(known[known.length - 1][1], t0 + 1);
  const s1 = Math.max(known[known.length - 1][0], 1);
  const x = (time) => pad.left + ((time - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (size) => height - pad.bottom - (size / s1) * (height - pad.top - pad.bottom);
  svg.append(
    element("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, class: "axis" }),
    element("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom, class: "axis" }),
    element("text", { x: pad.left - 6, y: pad.top + 4, "text-anchor": "end", class: "tick" }, String(s1)),
    element("text", { x: pad.left - 6, y: height - pad.bottom, "text-anchor": "end", class: "tick" }, "0"),
    element("text", { x: pad.left, y: height - pad.bottom + 16, class: "tick" }, shortDate(t0)),
    element("text", { x: width - pad.right, y: height - pad.bottom + 16, "text-anchor": "end", class: "tick" }, shortDate(t1)),
    element("text", { x: width / 2, y: height - 6, "text-anchor": "middle", class: "label" }, "integrated time (UTC)"),
  );
  // A step line: the size holds until the next batch.
  let path = `M ${x(known[0][1]).toFixed(1)} ${y(known[0][0]).toFixed(1)}`;
  for (const [size, time] of known.slice(1)) {
    path += ` H ${x(time).toFixed(1)} V ${y(size).toFixed(1)}`;
  }
  svg.append(element("path", { d: path, class: "growth" }));
  for (const [size, time] of known) {
    const dot = element("circle", { cx: x(time).toFixed(1), cy: y(size).toFixed(1), r: 2.5, class: "point" });
    dot.append(element("title", {}, `${size} entries by ${shortDate(time)}`));
    svg.append(dot);
  }
  return svg;
}
