// The panel's main flow in Debian's Chromium, for tests/tests/panel_browser.rs, which
// starts the gateway and the box and passes everything in the environment:
//   IKS_PANEL          the panel's base URL
//   IKS_LINK_*         one-time password links (paths) for OPERATOR, CUSTOMER, AUDITOR
//   IKS_SSH_ARGV       the engineer's ssh command as a JSON array
//   IKS_TICKET         the ticket to ask access for
//   IKS_SHOTS          where screenshots go
// Each step prints a line, so a failure says how far the flow got. Every wait is bounded.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('IKS_PANEL');
const shots = env('IKS_SHOTS');
const ticket = env('IKS_TICKET');
const password = 'correct horse battery staple';
const step = (s) => console.log(`step: ${s}`);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
let ssh;
const pages = [];
try {
  const person = async (link) => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, baseURL: base });
    ctx.setDefaultTimeout(20000);
    const page = await ctx.newPage();
    pages.push([link, page]);
    await page.goto(env(link));
    await page.fill('input[name=password]', password);
    await page.fill('input[name=repeat]', password);
    await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/password/')), page.click('button[type=submit]')]);
    return page;
  };
  const shot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  step('the operator sets a password and asks for access');
  const operator = await person('IKS_LINK_OPERATOR');
  await operator.goto('/access');
  const request = operator.locator('form[action="/access"]');
  await request.locator('input[name=ticket]').fill(ticket);
  await request.locator('input[name=box]').fill('main-gw');
  await request.locator('input[name=duration]').fill('1h');
  await request.locator('textarea[name=reason]').fill('VPN does not start: read the logs');
  await request.locator('button[type=submit]').click();
  await operator.waitForSelector('.flash');
  await shot(operator, 'operator-access');

  step('the customer approves it');
  const customer = await person('IKS_LINK_CUSTOMER');
  await customer.goto('/access');
  await shot(customer, 'customer-access');
  await customer.locator('form[action$="/approve"] button[type=submit]').first().click();
  await customer.waitForSelector('form[action$="/revoke"]');

  step('the engineer connects with ssh');
  const argv = JSON.parse(env('IKS_SSH_ARGV'));
  ssh = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '', err = '';
  ssh.stdout.on('data', (d) => { out += d; });
  ssh.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => ssh.on('exit', (code) => resolve(code)));
  const until = async (what, cond, ms = 20000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; ssh stdout: ${out}\nssh stderr: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  // `:` ignores its arguments: the command is typed and recorded, and harms nothing.
  ssh.stdin.write('echo panel-live-$((6*7))\n');
  await until('the shell to answer', () => out.includes('panel-live-42'));
  ssh.stdin.write(': iptables -F\n');

  step('the customer watches the session live');
  await customer.goto('/sessions?live=1');
  const link = customer.locator('a[href^="/sessions/"]').filter({ hasText: /^\s*(S-)?\d+\s*$/ }).first();
  await link.click();
  await customer.waitForSelector('[data-iks-player="live"] .iks-term');
  await customer.waitForFunction(
    () => document.querySelector('[data-iks-player="live"] .iks-term')?.textContent.includes('panel-live-42'));
  ssh.stdin.write('echo still-watching\n');
  await customer.waitForFunction(
    () => document.querySelector('[data-iks-player="live"] .iks-term')?.textContent.includes('still-watching'));
  await shot(customer, 'customer-live');

  step('the customer revokes the access; the ssh dies');
  await customer.goto('/access');
  await customer.locator('form[action$="/revoke"] button[type=submit]').first().click();
  await customer.waitForSelector('.flash');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 10000))]);
  if (code === 0 || code === 'still running') throw new Error(`ssh after the revocation: ${code}\n${err}`);
  if (!/revoked/.test(err + out)) throw new Error(`ssh said nothing of the revocation: ${err}`);
  ssh = undefined;
  await customer.setViewportSize({ width: 390, height: 844 });
  await customer.goto('/access');
  await shot(customer, 'customer-access-phone');

  step('the auditor finds the command and replays that moment');
  const auditor = await person('IKS_LINK_AUDITOR');
  await auditor.goto('/search?q=' + encodeURIComponent('iptables -F'));
  await auditor.waitForSelector('a.hit-line');
  await shot(auditor, 'auditor-search');
  await auditor.locator('a.hit-line').first().click();
  await auditor.waitForSelector('[data-iks-player="replay"] .iks-term');
  await auditor.waitForFunction(
    () => document.querySelector('[data-iks-player="replay"] .iks-term')?.textContent.includes('iptables -F'));
  if (!/#t=/.test(auditor.url())) throw new Error(`the result does not open at its moment: ${auditor.url()}`);
  await shot(auditor, 'auditor-replay');
  console.log('flow: ok');
} catch (e) {
  // What each person's page showed when the flow stopped, to explain the failure.
  for (const [who, page] of pages) {
    const term = await page.locator('.iks-term').allTextContents().catch(() => []);
    console.log(`${who} at ${page.url()}; terminal: ${JSON.stringify(term)}`);
    await page.screenshot({ path: path.join(shots, `failed-${who}.png`), fullPage: true }).catch(() => {});
  }
  throw e;
} finally {
  if (ssh) ssh.kill('SIGKILL');
  await browser.close();
}
