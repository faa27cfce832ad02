import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { test as base, expect, type Page } from "@playwright/test";

/**
 * Every page collects what the browser console reports and what the page throws; a test fails if anything
 * went wrong in the browser, even when the page still looked right. A test that provokes a refusal on
 * purpose (a wrong password answers 401) names the console line it expects in `expectedBrowserErrors`.
 */
export const test = base.extend<{ browserErrors: string[]; expectedBrowserErrors: RegExp[] }>({
  expectedBrowserErrors: [[], { option: true }],
  browserErrors: [
    async ({ page, expectedBrowserErrors }, use) => {
      const errors: string[] = [];
      page.on("console", (message) => {
        const text = message.text();
        if (message.type() === "error" && !expectedBrowserErrors.some((expected) => expected.test(text))) {
          errors.push(text);
        }
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

/** Creates an administrator the way an operator does: `spawnpoint admin create`, password on stdin. */
export function createAdmin(email: string, password: string) {
  const root = resolve(__dirname, "../..");
  execFileSync(resolve(root, process.env.SPAWNPOINT_BIN!), ["admin", "create", "--email", email], {
    cwd: root,
    input: `${password}\n`,
    env: { PATH: process.env.PATH, SPAWNPOINT_DATA_DIR: process.env.SPAWNPOINT_E2E_DATA_DIR, RUST_LOG: "warn" },
  });
}

export const password = "correct horse battery";

/** Signs up through the form, as a visitor does, and waits to land where a server is made. */
export async function signUp(page: Page, email: string) {
  await page.goto("/signup");
  await hydrated(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page).toHaveURL(/\/servers$/);
}

/** Fills and submits the sign-in form on the current page, once it has hydrated. */
export async function submitSignIn(page: Page, email: string, secret: string) {
  await hydrated(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
}
