import { test as base, expect, type Page } from "@playwright/test";

/**
 * Every page collects what the browser console reports and what the page throws; a test fails if anything
 * went wrong in the browser, even when the page still looked right.
 */
export const test = base.extend<{ browserErrors: string[] }>({
  browserErrors: [
    async ({ page }, use) => {
      const errors: string[] = [];
      page.on("console", (message) => {
        if (message.type() === "error") errors.push(message.text());
      });
      page.on("pageerror", (error) => errors.push(error.message));
      await use(errors);
      expect(errors, "errors in the browser console").toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** Waits until the WASM app has hydrated the server-rendered page; clicks before that do nothing. */
export async function hydrated(page: Page) {
  await expect(page.locator("main[data-hydrated=true]")).toBeAttached();
}
