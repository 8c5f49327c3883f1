/**
 * The system Chromium for browser tests: where it is, and how it starts on a machine with a closed network.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';

/** Where Debian's `apt-get install chromium` puts it. */
export const SYSTEM_CHROMIUM = '/usr/bin/chromium';

/** The Chromium to drive, or why there is none (the browser tests then skip with that reason). */
export type ChromiumLookup = { path: string } | { missing: string } | { invalid: string };

/** CHROME_PATH when set (it must exist: a wrong setting is an error, not a skip), else the system Chromium. */
export function findChromium(): ChromiumLookup {
  const configured = process.env['CHROME_PATH'];
  if (configured !== undefined && configured !== '') {
    return existsSync(configured) ? { path: configured } : { invalid: `CHROME_PATH=${configured} does not exist` };
  }
  if (existsSync(SYSTEM_CHROMIUM)) return { path: SYSTEM_CHROMIUM };
  return {
    missing: `no Chromium: ${SYSTEM_CHROMIUM} is missing and CHROME_PATH is unset (install it with ` +
      '`apt-get install chromium`, as .ci/run does, or point CHROME_PATH at a Chromium or Chrome)',
  };
}

/**
 * Flags that keep Chromium quiet on a closed network: without the background-networking ones it dials out
 * (component updates, sync, field trials) and those refused connections slow or break start-up. Playwright adds a
 * fresh temporary --user-data-dir per launch.
 */
const ARGS = [
  '--headless',
  '--no-sandbox', // CI containers run as root, where the sandbox cannot start
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches headless Chromium; bounded (`timeoutMs`) so that a broken install fails instead of hanging. */
export function launchChromium(executablePath: string, timeoutMs = 15_000, extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath, args: [...ARGS, ...extraArgs], headless: true, timeout: timeoutMs });
}

/**
 * The flag that makes Chromium trust the keys of these certificates (PEM), e.g. a test CA: a chain that holds one
 * of them is accepted, any other certificate error still fails the page. Narrower than
 * `--ignore-certificate-errors`, which would accept any certificate at all; Chromium has no flag that adds a CA to
 * its trust store (on Linux that is the NSS database, which needs certutil). The value is the base64 SHA-256 of
 * each certificate's SubjectPublicKeyInfo.
 */
export function trustKeysFlag(...certificates: readonly string[]): string {
  const hashes = certificates.map((pem) =>
    createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('base64'),
  );
  return `--ignore-certificate-errors-spki-list=${hashes.join(',')}`;
}
