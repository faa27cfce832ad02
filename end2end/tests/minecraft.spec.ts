import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { test, expect, hydrated, signUp } from "./fixtures";

const client = resolve(__dirname, "../../server/tests/games/minecraft-client.js");

test("a Minecraft server made in the browser installs with progress, runs, and a real player joins", async ({ page }) => {
  test.setTimeout(120_000);
  await signUp(page, `crafter-${Date.now()}@example.com`);
  await hydrated(page);
  await page.locator("select[name=game]").selectOption("minecraft-java");
  await page.getByLabel("Name").fill("Crafting");
  await page.getByLabel("Max players").fill("3");
  await page.getByLabel("Message of the day").fill("Made in the browser");
  // The licence must be accepted, and the form links to it.
  await expect(page.getByRole("link", { name: "licence (EULA)" })).toHaveAttribute("href", "https://aka.ms/MinecraftEULA");
  await page.getByLabel(/I accept the game's/).check();
  await page.getByRole("button", { name: "Create server" }).click();
  await expect(page).toHaveURL(/\/servers\/mi-[a-z0-9]+$/);
  await expect(page.locator("dd.game")).toContainText("Minecraft: Java Edition · Starter: 2 vCPU, 2 GiB memory");
  await expect(page.locator("dd.disk")).toContainText(/ of 10 GiB$/);

  // What is happening, live: the download's progress, then the game up.
  await expect(page.locator(".install")).toContainText(/Installing: paper: [\d.]+ of 1\.0 MiB/, { timeout: 20_000 });
  await expect(page.locator(".facts .status")).toHaveText("running", { timeout: 60_000 });
  const address = (await page.locator("dd.address").textContent())!;
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), address.slice(address.lastIndexOf(":") + 1)];

  // A real client (mineflayer) joins at the address shown; the console shows it and carries a command to it.
  const player = spawn("node", [client, host, port, "steve", "hi from steve"], { stdio: ["pipe", "pipe", "inherit"] });
  let heard = "";
  player.stdout.on("data", (data) => (heard += String(data)));
  try {
    const screen = page.locator(".console .screen");
    await expect(screen).toContainText("steve joined the game", { timeout: 30_000 });
    await expect(screen).toContainText("<steve> hi from steve");
    const command = page.getByLabel("Command");
    await command.fill("say welcome, steve");
    await command.press("Enter");
    await expect.poll(() => heard, { timeout: 15_000 }).toContain("[Server] welcome, steve");
  } finally {
    player.kill();
  }

  // The settings page holds what was chosen at create.
  const settings = page.locator("section.settings");
  await expect(settings.getByLabel("Max players")).toHaveValue("3");
  await expect(settings.getByLabel("Message of the day")).toHaveValue("Made in the browser");

  const power = (name: string) => page.getByRole("group", { name: "Power" }).getByRole("button", { name, exact: true });
  await power("Stop").click();
  await expect(page.locator(".facts .status")).toHaveText("stopped", { timeout: 30_000 });
  await expect(page.locator(".console .screen")).toContainText("All dimensions are saved");
});

test.describe("on a phone", () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test("every page fits the screen, and billing and sign out are in reach", async ({ page }) => {
    await signUp(page, `phone-${Date.now()}@example.com`);
    for (const path of ["/", "/games/minecraft-java", "/servers", "/billing", "/account"]) {
      await page.goto(path);
      await hydrated(page);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(width, `${path} is no wider than the phone`).toBeLessThanOrEqual(390);
    }
    const nav = page.locator("header.topbar");
    await expect(nav.getByRole("link", { name: "Billing" })).toBeInViewport();
    await expect(nav.getByRole("button", { name: "Sign out" })).toBeInViewport();
    await nav.getByRole("link", { name: "Billing" }).click();
    await expect(page).toHaveURL(/\/billing$/);
    await nav.getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(nav.getByRole("link", { name: "Sign in" })).toBeInViewport();
  });
});
