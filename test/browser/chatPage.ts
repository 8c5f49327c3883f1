/**
 * Reading and driving the chat page (examples/chat/public) from a Playwright page: what the browser tests of the
 * chat (chat.test.ts, scaleout.test.ts) share.
 */
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import type { Test } from 'tap';

/** Anything with a page: the tests' members. */
export interface OnPage {
  readonly page: Page;
}

/** A notice of the given kind (`joined`, `left`, `system`, `error`) that contains `text`. */
export function notice(member: OnPage, kind: string, text: string): Locator {
  return member.page.locator(`#messages li[data-kind="${kind}"]`, { hasText: text });
}

/** A chat message from `from` that contains `text`. */
export function message(member: OnPage, from: string, text: string): Locator {
  return member.page.locator('#messages li[data-kind="message"]').filter({ has: member.page.locator('.name', { hasText: from }) }).filter({ hasText: text });
}

/** Types `text` into the message box and sends it with Enter. */
export async function say(member: OnPage, text: string): Promise<void> {
  await member.page.fill('#text', text);
  await member.page.press('#text', 'Enter');
}

/**
 * A subtest that, when it fails (a throw or a failed assertion), leaves a screenshot of every page in `open` in its
 * test folder, and says where in a comment (with `details()` after it, e.g. HAProxy's log). Rethrows what `fn` threw.
 */
export function stepWithScreenshots(
  t: Test,
  open: Iterable<OnPage & { readonly name: string }>,
  name: string,
  fn: (t: Test) => Promise<void>,
  details?: () => string,
): Promise<unknown> {
  return t.test(name, async (t) => {
    let error: unknown;
    try {
      await fn(t);
    } catch (e) {
      error = e;
    }
    if (error !== undefined || !t.passing()) {
      t.saveFixture = true;
      const dir = t.testdir();
      for (const member of open) {
        await member.page.screenshot({ path: join(dir, `${member.name}.png`), fullPage: true }).catch(() => {});
      }
      t.comment(`screenshots of the open pages in ${dir}${details === undefined ? '' : `; ${details()}`}`);
    }
    if (error !== undefined) throw error;
  });
}
