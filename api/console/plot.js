// A line of samples as inline SVG (no chart library): x is time over the last hour.
const SVG = 'http://www.w3.org/2000/svg';
const HOUR_MS = 3600_000;

/** An SVG of `values` ([{at, value}]) scaled to its largest value; `label` says what and how much. */
export function plot(values, { width = 180, height = 48, color = '#1a73e8', label }) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'plot');
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  const title = document.createElementNS(SVG, 'title');
  title.textContent = label;
  svg.append(title);
  const now = Date.now();
  const top = Math.max(...values.map((v) => v.value), 1e-9);
  const points = values.map((v) => {
    const x = Math.max(0, width - ((now - Date.parse(v.at)) / HOUR_MS) * width);
    const y = height - 2 - (v.value / top) * (height - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', points.join(' '));
  line.setAttribute('stroke', color);
  svg.append(line);
  return svg;
}
