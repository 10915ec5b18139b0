// A report page as a PNG, rendered by headless Chromium (playwright-core drives the browser
// installed on the machine; nothing is downloaded).
import fs from 'node:fs';
import path from 'node:path';
import { executableSearchPath } from '../config.ts';

const BROWSERS = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];

export class NoBrowserError extends Error {
  override name = 'NoBrowserError';
}

export function findChromium(): string | undefined {
  for (const dir of executableSearchPath()) {
    for (const name of BROWSERS) {
      const file = path.join(dir, name);
      if (fs.existsSync(file)) return file;
    }
  }
  return undefined;
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu'];

export async function renderPng(html: string, out: string): Promise<void> {
  const executablePath = findChromium();
  if (!executablePath) {
    throw new NoBrowserError(
      `no Chromium on PATH (looked for ${BROWSERS.join(', ')}) to render ${out}: install it (Debian/Ubuntu: apt-get install chromium), or open the HTML report in a browser`,
    );
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
    await page.setContent(html, { waitUntil: 'load' });
    await page.screenshot({ path: out, fullPage: true });
  } finally {
    await browser.close();
  }
}
