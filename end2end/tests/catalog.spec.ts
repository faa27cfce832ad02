import { test, expect, hydrated } from "./fixtures";

test("the catalog is readable before hydration and interactive after it", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Host a game server" })).toBeVisible();
  for (const name of ["Minecraft: Java Edition", "Valheim", "ARK: Survival Evolved"]) {
    await expect(page.getByRole("link", { name: new RegExp(name) })).toBeVisible();
  }

  await hydrated(page);
  await page.getByRole("link", { name: /Minecraft: Java Edition/ }).click();
  await expect(page).toHaveURL(/\/games\/minecraft-java$/);
  const plans = page.getByRole("table", { name: "Minecraft: Java Edition plans" });
  await expect(plans.getByRole("row")).toHaveCount(4);

  await plans.getByRole("button", { name: "Choose Standard" }).click();
  const summary = page.getByRole("status");
  await expect(summary).toContainText("You picked Standard for Minecraft: Java Edition");
  await expect(summary).toContainText("$6.00/mo");
  await expect(plans.getByRole("button", { name: "Choose Standard" })).toHaveAttribute("aria-pressed", "true");

  // Another game starts without a choice; its plans carry their own prices.
  await page.getByRole("link", { name: /Valheim/ }).click();
  await expect(page.getByRole("table", { name: "Valheim plans" })).toBeVisible();
  await expect(page.getByRole("status")).toHaveCount(0);
  await page.getByRole("button", { name: "Choose Starter" }).click();
  await expect(page.getByRole("status")).toContainText("$5.00/mo");
});

test("a game page opened directly hydrates and lets a plan be picked", async ({ page }) => {
  await page.goto("/games/minecraft-bedrock");
  await hydrated(page);
  await page.getByRole("button", { name: "Choose Starter" }).click();
  await expect(page.getByRole("status")).toContainText("$2.00/mo");
});
