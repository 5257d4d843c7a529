// Drives headless Chromium (Debian's) with playwright-core through one test page.
//
// Usage: node tools/run-page.mjs '{"url": ..., "timeout": seconds}'
// The page sets window.fedgridTest = {state: 'running' | 'reload' | 'done' |
// 'failed', result, error}. On 'reload' it reloads the page; on
// 'done' it prints the result as JSON on stdout and exits.
import { createRequire } from 'node:module';

const packageDir = process.env.FEDGRID_BROWSER_DIR ?? new URL('..', import.meta.url).pathname;
const require = createRequire(`${packageDir}/package.json`);
const { chromium } = require('playwright-core');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const options = JSON.parse(process.argv[2]);
const deadline = Date.now() + (options.timeout ?? 60) * 1000;
const browser = await chromium.launch({
  executablePath: process.env.FEDGRID_CHROMIUM ?? '/usr/bin/chromium',
  args: FLAGS,
  headless: true,
});
let code = 1;
try {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(`[page ${message.type()}] ${message.text()}`));
  page.on('pageerror', (error) => console.error(`[page error] ${error.message}`));
  await page.goto(options.url);
  let reloads = 0;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`the page did not finish in ${options.timeout}s`);
    const status = await page
      .evaluate(() => window.fedgridTest ?? null)
      .catch(() => null); // the page is navigating
    if (status?.state === 'done') {
      console.log(JSON.stringify({ result: status.result, reloads }));
      code = 0;
      break;
    }
    if (status?.state === 'failed') {
      console.log(JSON.stringify({ error: status.error, reloads }));
      break;
    }
    if (status?.state === 'reload') {
      reloads += 1;
      await page.reload();
      continue;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
} finally {
  await browser.close();
}
process.exit(code);
