// `mldeploy report <runId>`: a batch or monitor run's drift report as a self-contained HTML file, and
// optionally a PNG rendered by headless Chromium.
import fs from 'node:fs';
import type { Command } from 'commander';
import { renderPng } from '../monitoring/png.ts';
import { reportUrl, runReportHtml } from '../monitoring/run-report.ts';
import { printJson, withStack } from './context.ts';

export function reportCommand(program: Command): void {
  program
    .command('report <runId>')
    .description("write a batch or monitor run's drift report (HTML, and PNG with --png); runId: a run id or workflow id from a score summary or a monitor run")
    .option('--out <file.html>', 'HTML file to write', 'report.html')
    .option('--png <file.png>', 'also render the report as a PNG (needs Chromium)')
    .action(async (runId: string, opts: { out: string; png?: string }) => {
      await withStack({ temporal: false }, async (stack) => {
        const html = await runReportHtml(stack.pool, runId);
        fs.writeFileSync(opts.out, html);
        if (opts.png) await renderPng(html, opts.png);
        printJson({ runId, html: opts.out, ...(opts.png ? { png: opts.png } : {}), url: reportUrl(stack.config.monitoring.publicUrl, runId) });
      });
    });
}
