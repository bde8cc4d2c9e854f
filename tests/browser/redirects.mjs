// Redirects taken from a request, followed by Debian's Chromium, for
// tests/tests/panel_doors.rs:
//   IKS_PANEL   the panel's base URL
//   IKS_LINK    a one-time password link (path) for a person
//   IKS_LOGIN   that person's login
//   IKS_TARGETS a JSON array of `back`/`next` values to try, already percent-encoded
// Any other origin answers "EVIL" (no network is used). Prints one line per try,
// `<where> <value> -> <final URL>`, and exits 1 if any try left the panel's origin.
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('IKS_PANEL');
const origin = new URL(base).origin;
const targets = JSON.parse(env('IKS_TARGETS'));
const password = 'correct horse battery staple';

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
let left = 0;
try {
  const context = async () => {
    const ctx = await browser.newContext({ baseURL: base });
    ctx.setDefaultTimeout(20000);
    await ctx.route((u) => u.origin !== origin, (r) => r.fulfill({ status: 200, contentType: 'text/plain', body: 'EVIL' }));
    return ctx;
  };
  const report = (where, value, url) => {
    const out = new URL(url).origin !== origin;
    if (out) left += 1;
    console.log(`${where} ${value} -> ${url}${out ? ' LEFT THE ORIGIN' : ''}`);
  };

  // A person with a password, so the sign-in form can be used.
  const setup = await (await context()).newPage();
  await setup.goto(env('IKS_LINK'));
  await setup.fill('input[name=password]', password);
  await setup.fill('input[name=repeat]', password);
  await Promise.all([setup.waitForURL((u) => !u.pathname.startsWith('/password/')), setup.click('button[type=submit]')]);

  for (const value of targets) {
    const page = await (await context()).newPage();
    await page.goto(`/lang/en?back=${value}`).catch(() => {});
    await page.waitForLoadState('load').catch(() => {});
    report('back', value, page.url());

    const signin = await (await context()).newPage();
    await signin.goto(`/login?next=${value}`);
    await signin.fill('input[name=login]', env('IKS_LOGIN'));
    await signin.fill('input[name=password]', password);
    await Promise.all([signin.waitForURL((u) => !u.pathname.startsWith('/login')).catch(() => {}),
                       signin.click('button[type=submit]')]);
    await signin.waitForLoadState('load').catch(() => {});
    report('next', value, signin.url());
  }
} finally {
  await browser.close();
}
process.exit(left ? 1 : 0);
