#!/usr/bin/env bash
# The web UI (docs/ui.md) in a real browser: Debian's headless Chromium driven by playwright-core
# (npm) against a dev server on 127.0.0.1. Checks the security headers, sign-in, writing a
# secret through the form and reading it back (through the API too), that a hostile key and
# value are shown as text and never run, and unsealing a sealed server from the page.
source "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || fail "chromium is not installed (scripts/install-deps: chromium)"
MODULES="$(cd "$(dirname "$0")/../acceptance" && pwd)/node_modules"
[ -d "$MODULES/playwright-core" ] || fail "playwright-core is missing (scripts/install-deps: npm ci in tests/acceptance)"

start_dev
UNSEAL_KEY=$(grep -o 'Unseal Key: [^ ]*' "$WORK/server.log" | head -1 | sed 's/Unseal Key: //')
[ -n "$UNSEAL_KEY" ] || fail "no unseal key in the dev server's output"

# Headers and the redirect from /.
for f in "" app.js style.css; do
  curl -s -D "$WORK/h" -o /dev/null "$ADDR/ui/$f"
  grep -qi "^content-security-policy: default-src 'none'; script-src 'self'" "$WORK/h" || fail "no CSP on /ui/$f: $(cat "$WORK/h")"
  grep -qi '^x-frame-options: DENY' "$WORK/h" || fail "no X-Frame-Options on /ui/$f"
  grep -qi '^x-content-type-options: nosniff' "$WORK/h" || fail "no nosniff on /ui/$f"
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$ADDR/uix")" = 404 ] || fail "/uix is not a plain 404"
curl -s "$ADDR/uix" | grep -q 'served under /v1/' || fail "/uix was caught by the UI route"
[ "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$ADDR/")" = "307 $ADDR/ui/" ] || fail "/ does not redirect to /ui/"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$ADDR/ui/nope.js")" = 404 ] || fail "an unknown UI file is not 404"
pass "UI files served with a strict CSP, no framing, no sniffing; / redirects to /ui/"

# A limited token: its own folder only (a second KV mount it must not see listed).
expect_status 204 POST sys/mounts/other '{"type":"kv","options":{"version":"2"}}'
expect_status 204 PUT sys/policies/acl/app-ui '{"policy":"path \"secret/data/app/*\" { capabilities = [\"create\", \"update\", \"read\"] }\npath \"secret/metadata/app/*\" { capabilities = [\"list\"] }\npath \"secret/metadata/app\" { capabilities = [\"list\"] }"}'
expect_status 200 POST auth/token/create '{"policies":["app-ui"]}'
LIMITED=$(json "$LAST" o.auth.client_token)
expect_status 200 POST secret/data/app/x '{"data":{"k":"limited-view"}}'

cat > "$WORK/ui.js" <<'JS'
const { chromium } = require('playwright-core');
const [addr, token, unsealKey, chromiumPath, limited] = process.argv.slice(2);
const fail = (m) => { console.error('FAIL: ' + m); process.exit(1); };
(async () => {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // Chromium logs every 4xx answer as a console error ("Failed to load resource"): the page
  // expects some (a wrong token, an empty mount); anything else is a problem.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push('console: ' + m.text());
  });
  page.on('dialog', async (d) => { problems.push('a dialog opened: ' + d.message()); await d.dismiss(); });
  try {
    await page.goto(addr + '/ui/');
    await page.waitForSelector('#status:text("Unsealed")', { timeout: 10000 });
    await page.waitForSelector('#login-view:not([hidden])');
    // A wrong token is refused with the server's message.
    await page.fill('#token', 'not-a-token');
    await page.click('#login-button');
    await page.waitForSelector('#error:not([hidden])');
    // The root token signs in.
    await page.fill('#token', token);
    await page.click('#login-button');
    await page.waitForSelector('#whoami:has-text("root")');
    await page.waitForSelector('#mount option[value="secret/"]', { state: 'attached' });
    await page.selectOption('#mount', 'secret/');
    // Write a secret through the form; it is listed and shown.
    await page.fill('#new-path', 'webapp/db');
    await page.fill('#new-data', '{"password":"from-the-browser-42"}');
    await page.click('#save');
    await page.waitForSelector('#secret-path:text("secret/webapp/db")');
    const shown = await page.textContent('#secret-data');
    if (!shown.includes('from-the-browser-42')) fail('secret not shown: ' + shown);
    // A hostile key and value are text, not markup.
    const evil = '<img src=x onerror=alert(1)>';
    await page.fill('#new-path', 'evil');
    await page.fill('#new-data', JSON.stringify({ [evil]: evil }));
    await page.click('#save');
    await page.waitForSelector('#secret-path:text("secret/evil")');
    if ((await page.$$('#secret-data img')).length !== 0) fail('markup from a secret was rendered');
    if (!(await page.textContent('#secret-data')).includes(evil)) fail('hostile value not shown as text');
    // A hostile key name is listed as text.
    await page.fill('#new-path', evil);
    await page.fill('#new-data', '{"a":"b"}');
    await page.click('#save');
    await page.waitForSelector('#secret-path:has-text("onerror")');
    await page.fill('#browse-path', '');
    await page.click('#open');
    await page.waitForSelector('#keys button[data-key="webapp/"]');
    if ((await page.$$('#keys img')).length !== 0) fail('markup from a key name was rendered');
    // Navigate: the folder lists its key.
    await page.click('#keys button[data-key="webapp/"]');
    await page.waitForSelector('#keys button[data-key="webapp/db"]');
    // A typed path that would leave the mount is refused before any request.
    await page.fill('#new-path', '../../sys/policies/acl/x');
    await page.fill('#new-data', '{"policy":"path \\"*\\" { capabilities = [\\"sudo\\"] }"}');
    await page.click('#save');
    await page.waitForSelector('#error:has-text("invalid path")');
    console.log('WRITTEN');
    // A token limited to one folder sees only the mount it can reach, and opens its folder.
    await page.click('#logout');
    await page.waitForSelector('#login-view:not([hidden])');
    await page.fill('#token', limited);
    await page.click('#login-button');
    await page.waitForSelector('#whoami:has-text("app-ui")');
    await page.waitForSelector('#mount option[value="secret/"]', { state: 'attached' });
    const mounts = await page.$$eval('#mount option', (os) => os.map((o) => o.value));
    if (mounts.join(',') !== 'secret/') fail('the limited token sees mounts: ' + mounts.join(','));
    await page.fill('#browse-path', 'app/');
    await page.click('#open');
    await page.waitForSelector('#keys button[data-key="app/x"]');
    await page.click('#keys button[data-key="app/x"]');
    await page.waitForSelector('#secret-data:has-text("limited-view")');
    console.log('LIMITED');
    await page.click('#logout');
    await page.fill('#token', token);
    await page.click('#login-button');
    await page.waitForSelector('#whoami:has-text("root")');
    // Seal through the API, reload: the page offers to unseal, and unseals.
    const r = await fetch(addr + '/v1/sys/seal', { method: 'PUT', headers: { 'X-Vault-Token': token } });
    if (r.status !== 204) fail('seal: HTTP ' + r.status);
    await page.reload();
    await page.waitForSelector('#unseal-view:not([hidden])');
    await page.fill('#unseal-key', unsealKey);
    await page.click('#unseal-button');
    await page.waitForSelector('#status:text("Unsealed")');
    await page.waitForSelector('#secrets-view:not([hidden])');
    if (problems.length) fail(problems.join('; '));
    console.log('UNSEALED');
  } catch (e) {
    fail(e.message + (problems.length ? ' [' + problems.join('; ') + ']' : ''));
  } finally {
    await browser.close();
  }
})();
JS
out=$(NODE_PATH="$MODULES" timeout 120 node "$WORK/ui.js" "$ADDR" "$TOKEN" "$UNSEAL_KEY" "$CHROMIUM" "$LIMITED" 2>&1) || fail "browser test: $out"
grep -q WRITTEN <<< "$out" && grep -q LIMITED <<< "$out" && grep -q UNSEALED <<< "$out" || fail "browser test: $out"
expect_status 404 GET sys/policies/acl/x
expect_status 200 GET secret/data/webapp/db
[ "$(json "$LAST" o.data.data.password)" = from-the-browser-42 ] || fail "API read of the UI's write: $LAST"
pass "in headless Chromium: sign-in (a bad token refused), a secret written and shown, hostile keys and data shown as text, a typed path leaving the mount refused, a limited token browsing its folder, unseal from the page"
finish
