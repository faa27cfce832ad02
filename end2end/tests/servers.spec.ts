import { connect } from "node:net";
import { test, expect, hydrated, signUp, submitSignIn, password } from "./fixtures";

/** Asks a demo game server for its state over its own TCP protocol, as a player's client would. */
function gameState(address: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => socket.write("GET_STATE\n"));
    socket.setEncoding("utf8");
    socket.once("data", (data) => {
      socket.destroy();
      resolve(String(data).trim());
    });
    socket.once("error", reject);
  });
}

test("create a demo server, watch it come up without reloading, stop it and delete it", async ({ page }) => {
  // A new account lands where its first server is made.
  await signUp(page, `owner-${Date.now()}@example.com`);
  await hydrated(page);
  await expect(page.getByText("No servers yet.")).toBeVisible();

  // Only games this host can run are offered (Minecraft Java runs on the host's Java; the SteamCMD games and
  // Bedrock, whose zip the operator has not set, do not); the demo game's plans show their prices.
  const game = page.locator("select[name=game]");
  await expect(game.locator("option")).toHaveText(["Minecraft: Java Edition", "Spawnpoint Demo"]);
  await game.selectOption("demo");
  await expect(page.getByLabel("Plan").locator("option")).toHaveText([/^Tiny · 1–4 players · \$1\.00\/mo$/, /^Small/]);
  await page.getByLabel("Plan").selectOption("small");
  await page.getByLabel("Name").fill("Friday night");
  await page.getByRole("button", { name: "Create server" }).click();
  await expect(page).toHaveURL(/\/servers\/de-[a-z0-9]+$/);
  await expect(page.getByRole("heading", { name: "Friday night" })).toBeVisible();
  await expect(page.locator("dd.game")).toHaveText(/^Spawnpoint Demo · Small: 0\.5 vCPU, 256 MiB memory, 2 GiB storage, 2–8 players, \$1\.50\/mo$/);

  // From here on the page must change by itself: any new document load would be a reload.
  let loads = 0;
  page.on("load", () => loads++);
  const status = page.locator(".facts .status");
  await expect(status).toHaveText("running", { timeout: 20_000 });
  const address = page.locator("dd.address");
  await expect(address).toHaveText(/^127\.0\.0\.1:\d+$/);
  expect(await gameState((await address.textContent())!)).toBe("STATE open");

  const button = (name: string) => page.getByRole("group", { name: "Power" }).getByRole("button", { name, exact: true });
  await expect(button("Start")).toBeDisabled();
  await expect(button("Stop")).toBeEnabled();
  await expect(button("Restart")).toBeEnabled();
  await expect(page.locator(".console .screen")).toContainText("Server ready on port");

  await button("Stop").click();
  await expect(status).toHaveText("stopped");
  await expect(address).toHaveText(/not running/);
  await expect(button("Start")).toBeEnabled();
  await expect(button("Stop")).toBeDisabled();
  await expect(button("Restart")).toBeDisabled();

  // Deleting asks first; keeping it changes nothing.
  await button("Delete").click();
  const confirm = page.getByRole("alertdialog", { name: "Confirm deletion" });
  await expect(confirm).toContainText("cannot be undone");
  await confirm.getByRole("button", { name: "Keep it" }).click();
  await expect(confirm).toHaveCount(0);
  await expect(status).toHaveText("stopped");
  await button("Delete").click();
  await confirm.getByRole("button", { name: "Delete for good" }).click();
  await expect(page.getByRole("heading", { name: "Server deleted" })).toBeVisible({ timeout: 20_000 });
  expect(loads, "the page was never reloaded").toBe(0);

  await page.getByRole("link", { name: "Back to my servers" }).click();
  await expect(page.getByText("No servers yet.")).toBeVisible();
});

test("the server list follows a server's status live", async ({ page }) => {
  await signUp(page, `lister-${Date.now()}@example.com`);
  await page.goto("/servers");
  await hydrated(page);
  // Created from the API with the browser's own session, while the list page stays open.
  const created = await page.evaluate(async () => {
    const response = await fetch("/api/servers", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "From the API", game: "demo", plan: "tiny" }),
    });
    return (await response.json()) as { id: string };
  });
  const row = page.locator(`tr[data-server="${created.id}"]`);
  await expect(row).toContainText("From the API");
  await expect(row.locator(".status")).toHaveText("running", { timeout: 20_000 });
  await expect(row.locator(".address")).toHaveText(/^127\.0\.0\.1:\d+$/);
});

test("a plan chosen in the catalog carries over to the create form", async ({ page }) => {
  await signUp(page, `shopper-${Date.now()}@example.com`);
  await page.goto("/games/demo");
  await hydrated(page);
  await page.getByRole("button", { name: "Choose Small" }).click();
  await page.getByRole("status").getByRole("link", { name: "Create this server" }).click();
  await expect(page).toHaveURL(/\/servers\?game=demo&plan=small$/);
  await expect(page.getByLabel("Plan")).toHaveValue("small");
});

test("two browsers on one server's console both see what one of them typed", async ({ page, browser }) => {
  const email = `console-${Date.now()}@example.com`;
  await signUp(page, email);
  await page.goto("/servers");
  await hydrated(page);
  await page.locator("select[name=game]").selectOption("demo");
  await page.getByLabel("Name").fill("Console");
  await page.getByRole("button", { name: "Create server" }).click();
  await expect(page).toHaveURL(/\/servers\/de-[a-z0-9]+$/);
  await expect(page.locator(".facts .status")).toHaveText("running", { timeout: 20_000 });

  // The same account in a second browser (its own cookies), on the same page.
  const other = await (await browser.newContext({ baseURL: new URL(page.url()).origin })).newPage();
  await other.goto("/signin");
  await submitSignIn(other, email, password);
  await expect(other).toHaveURL(/\/account$/);
  await other.goto(page.url());
  await hydrated(other);

  const terminal = (p: typeof page) => p.locator(".console .screen");
  for (const p of [page, other]) {
    await expect(p.locator(".console .link")).toHaveText("live");
    await expect(terminal(p)).toContainText("Server ready on port");
  }
  const command = page.getByLabel("Command");
  await command.fill("say hello");
  await command.press("Enter");
  await expect(command).toHaveValue("");
  for (const p of [page, other]) {
    await expect(terminal(p)).toContainText("[Server] hello");
  }

  // The command box remembers: up brings the last command back.
  await command.press("ArrowUp");
  await expect(command).toHaveValue("say hello");

  // Stopped: the console says so, and says so again when it runs once more, output resuming.
  await page.getByRole("group", { name: "Power" }).getByRole("button", { name: "Stop", exact: true }).click();
  await expect(terminal(other)).toContainText("the server is stopped");
  await page.getByRole("group", { name: "Power" }).getByRole("button", { name: "Start", exact: true }).click();
  await expect(terminal(other)).toContainText("the server is running", { timeout: 20_000 });
  await other.getByLabel("Command").fill("say back again");
  await other.getByLabel("Command").press("Enter");
  await expect(terminal(page)).toContainText("[Server] back again");
  await other.context().close();
});
