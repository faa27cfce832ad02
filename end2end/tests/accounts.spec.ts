import { test, expect, hydrated, createAdmin, password, signUp, submitSignIn } from "./fixtures";

test("sign up, sign out, sign in, and come back to the protected page", async ({ page }) => {
  const email = `player-${Date.now()}@example.com`;

  // Signed out, the account page sends the visitor to sign in, remembering where they were going.
  await page.goto("/account");
  await expect(page).toHaveURL(/\/signin\?next=%2Faccount$/);
  await hydrated(page);
  await page.locator("section.auth").getByRole("link", { name: "Sign up" }).click();
  await expect(page).toHaveURL(/\/signup\?next=%2Faccount$/);

  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByRole("heading", { name: "Your account" })).toBeVisible();
  await expect(page.locator("dd.email")).toHaveText(email);
  const nav = page.locator("header.topbar");
  await expect(nav.getByRole("link", { name: email })).toBeVisible();

  await nav.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(nav.getByRole("link", { name: "Sign in" })).toBeVisible();
  await expect(nav.getByRole("link", { name: email })).toHaveCount(0);

  await page.goto("/account");
  await expect(page).toHaveURL(/\/signin\?next=%2Faccount$/);
  await submitSignIn(page, email.toUpperCase(), password);
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.locator("dd.email")).toHaveText(email);
  await expect(page.locator("dd", { hasText: "customer" })).toBeVisible();

  // Reloading keeps the session: it lives in the cookie, checked by the server.
  await page.reload();
  await expect(page.getByRole("heading", { name: "Your account" })).toBeVisible();
});

test("an administrator made on the command line sees every account", async ({ page }) => {
  const admin = `admin-${Date.now()}@example.com`;
  createAdmin(admin, password);
  await page.goto("/signin?next=%2Fadmin");
  await submitSignIn(page, admin, password);
  await expect(page).toHaveURL(/\/admin$/);
  const accounts = page.getByRole("table", { name: "All accounts" });
  await expect(accounts.getByRole("row", { name: new RegExp(`${admin} admin`) })).toBeVisible();
  await expect(page.locator("header.topbar").getByRole("link", { name: "Admin", exact: true })).toBeVisible();
});

test.describe("refusals", () => {
  // A refused sign-in answers 401 and the admin page 403 to a customer; Chromium reports each on the
  // console as a failed resource load.
  // (One pattern: Playwright would read a two-item array as a fixture tuple.)
  test.use({ expectedBrowserErrors: [/status of (401 \(Unauthorized\)|403 \(Forbidden\))/] });

  test("a customer is shown the door of the admin area", async ({ page }) => {
    await signUp(page, `customer-${Date.now()}@example.com`);
    await expect(page.locator("header.topbar").getByRole("link", { name: "Admin", exact: true })).toHaveCount(0);
    await page.goto("/admin");
    await expect(page.getByRole("heading", { name: "Administrators only" })).toBeVisible();
    await expect(page.getByRole("table")).toHaveCount(0);
  });

  test("a wrong password is refused with a message and no session", async ({ page }) => {
    const email = `guesser-${Date.now()}@example.com`;
    await signUp(page, email);
    await page.locator("header.topbar").getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(/\/$/);

    await page.goto("/signin");
    await submitSignIn(page, email, "not the password");
    await expect(page.getByRole("alert")).toHaveText("the email or password is incorrect");
    await expect(page).toHaveURL(/\/signin$/);
  });
});
