/**
 * Reading and driving the chat page (examples/chat/public) from a Playwright page: what the browser tests of the
 * chat (chat.test.ts, scaleout.test.ts) share.
 */
import type { Locator, Page } from 'playwright-core';

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
