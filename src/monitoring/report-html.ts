// A run's drift report as one self-contained HTML page (inline CSS and SVG, no scripts, no
// external assets): the verdict and counts, the features sorted by drift, each feature's
// reference and current distributions overlaid, the predictions, and rejected rows by reason.
import type { DistributionDrift, DriftReport } from './drift.ts';
import type { RunDrift } from './store.ts';

const esc = (value: unknown) => String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const fmt = (x: number, digits = 4) => (Number.isFinite(x) ? Number(x.toPrecision(digits)).toString() : '–');
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

const WIDTH = 560;
const HEIGHT = 200;
const MARGIN = { left: 44, bottom: 52, top: 10, right: 10 };

/** Reference (grey) and current (blue) shares per bin, overlaid as translucent bars. */
function chart(d: DistributionDrift, kind: 'feature' | 'prediction' | 'actual'): string {
  const n = d.bins.length;
  const top = Math.max(...d.reference, ...d.current, 1e-9);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const step = plotW / n;
  const bar = (share: number, i: number, cls: string) => {
    const h = (share / top) * plotH;
    return `<rect class="${cls}" x="${(MARGIN.left + i * step + step * 0.1).toFixed(1)}" y="${(MARGIN.top + plotH - h).toFixed(1)}" width="${(step * 0.8).toFixed(1)}" height="${h.toFixed(1)}"><title>${esc(d.bins[i])}: ${cls} ${pct(share)}</title></rect>`;
  };
  const labelEvery = Math.ceil(n / 12);
  const labels = d.bins
    .map((label, i) =>
      i % labelEvery === 0
        ? `<text x="${(MARGIN.left + (i + 0.5) * step).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 12}" transform="rotate(30 ${(MARGIN.left + (i + 0.5) * step).toFixed(1)} ${HEIGHT - MARGIN.bottom + 12})">${esc(label.length > 14 ? `${label.slice(0, 13)}…` : label)}</text>`
        : '',
    )
    .join('');
  const axis = `<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${WIDTH - MARGIN.right}" y2="${MARGIN.top + plotH}" class="axis"/><text x="4" y="${MARGIN.top + 10}">${pct(top)}</text>`;
  return `<figure class="chart" data-${kind}="${esc(d.name)}">
<figcaption><b>${esc(d.name)}</b> · PSI ${fmt(d.psi)} ${d.drifted ? '<span class="bad">drifted</span>' : '<span class="good">stable</span>'}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${esc(d.name)}: reference and current distributions">
${axis}${d.reference.map((s, i) => bar(s, i, 'reference')).join('')}${d.current.map((s, i) => bar(s, i, 'current')).join('')}<g class="labels">${labels}</g>
</svg></figure>`;
}

function featureRow(d: DistributionDrift): string {
  return `<tr class="${d.drifted ? 'drifted' : ''}"><td>${esc(d.name)}</td><td>${d.kind}</td><td>${fmt(d.psi)}</td><td>${d.test.test} ${fmt(d.test.statistic)}</td><td>${fmt(d.test.pValue, 3)}</td><td>${pct(d.missingShare.reference)} → ${pct(d.missingShare.current)}</td><td>${d.mean ? `${fmt(d.mean.reference)} → ${fmt(d.mean.current)}` : ''}</td><td>${d.drifted ? '<span class="bad">drifted</span>' : '<span class="good">stable</span>'}</td></tr>`;
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:24px;color:#1b1f24;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
td,th{border-bottom:1px solid #d8dee4;padding:4px 10px;text-align:left;font-size:14px}tr.drifted td{background:#fff1f0}
.verdict{display:inline-block;padding:6px 14px;border-radius:6px;font-weight:600;font-size:18px}
.verdict.drifted{background:#cf222e;color:#fff}.verdict.stable{background:#1a7f37;color:#fff}
.bad{color:#cf222e;font-weight:600}.good{color:#1a7f37}.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #d8dee4;border-radius:6px;padding:8px}figcaption{font-size:14px;margin-bottom:4px}
rect.reference{fill:#8c959f;fill-opacity:.55}rect.current{fill:#0969da;fill-opacity:.55}.axis{stroke:#57606a}
svg text{font-size:10px;fill:#57606a}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}`;

export function renderReport(run: RunDrift, report: DriftReport, links: { workflow?: string } = {}): string {
  const title = `Drift report: ${run.job} · ${run.model.name}@${run.model.version}`;
  const quality = report.quality
    ? `<tr><th>RMSE / MAE vs actual</th><td>${fmt(report.quality.rmse)} / ${fmt(report.quality.mae)} (${report.quality.rows} rows)</td></tr>`
    : '<tr><th>Quality</th><td>no actual column</td></tr>';
  const rejected = report.rejected.length
    ? `<table><tr><th>reason</th><th>rows</th></tr>${report.rejected.map((r) => `<tr><td>${esc(r.reason)}</td><td>${r.rows}</td></tr>`).join('')}</table>`
    : '<p>No rows were rejected.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${esc(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${esc(title)}</h1>
<p><span id="verdict" class="verdict ${report.drifted ? 'drifted' : 'stable'}">${report.drifted ? 'Drift detected' : 'No drift'}</span>
 ${report.features.filter((f) => f.drifted).length} of ${report.features.length} features drifted (${pct(report.driftedShare)}; the run drifts at ${pct(report.thresholds.share)}, a feature at PSI ≥ ${report.thresholds.psi})</p>
<table class="summary">
<tr><th>Run</th><td>${esc(run.runId)}${links.workflow ? ` (<a href="${esc(links.workflow)}">workflow</a>)` : ''}</td></tr>
<tr><th>Window</th><td>${esc(run.window.from)} – ${esc(run.window.to)}</td></tr>
<tr><th>Status</th><td>${esc(run.status)}</td></tr>
<tr><th>Rows read / scored / rejected</th><td>${run.rowsRead} / ${run.rowsScored} / ${run.rowsRejected}</td></tr>
<tr><th>Prediction drift</th><td>PSI ${fmt(report.prediction.psi)} ${report.prediction.drifted ? '<span class="bad">drifted</span>' : '<span class="good">stable</span>'}; mean ${report.prediction.mean ? `${fmt(report.prediction.mean.reference)} → ${fmt(report.prediction.mean.current)}` : ''}</td></tr>
${quality}
<tr><th>Reference</th><td>${esc(report.referenceSource)} (${report.referenceRows} rows)</td></tr>
</table>
<h2>Features by drift</h2>
<table class="features"><tr><th>feature</th><th>kind</th><th>PSI</th><th>test</th><th>p-value</th><th>missing (ref → now)</th><th>mean (ref → now)</th><th>verdict</th></tr>
${report.features.map(featureRow).join('\n')}</table>
<h2>Distributions</h2>
<p class="legend"><span style="background:#8c959f"></span>reference<span style="background:#0969da"></span>this run</p>
<div class="charts">
${report.features.map((f) => chart(f, 'feature')).join('\n')}
</div>
<h2>Predictions</h2>
<div class="charts">${chart(report.prediction, 'prediction')}${report.actual ? chart(report.actual, 'actual') : ''}</div>
<h2>Rejected rows by reason</h2>
${rejected}
</body></html>
`;
}
