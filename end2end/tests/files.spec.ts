import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, expect, hydrated, signUp } from "./fixtures";

/** Makes a demo server through the create form and waits for it to run; returns its page's path. */
async function runningDemoServer(page: import("@playwright/test").Page, name: string): Promise<string> {
  await signUp(page, `files-${Date.now()}@example.com`);
  await hydrated(page);
  await page.locator("select[name=game]").selectOption("demo");
  await page.getByLabel("Name").fill(name);
  await page.getByRole("button", { name: "Create server" }).click();
  await expect(page).toHaveURL(/\/servers\/de-[a-z0-9]+$/);
  await expect(page.locator(".facts .status")).toHaveText("running", { timeout: 20_000 });
  return new URL(page.url()).pathname;
}

test("the file manager uploads with progress, edits keeping earlier versions, searches, copies, compresses, makes folders and deletes", async ({ page }) => {
  const server = await runningDemoServer(page, "Files");
  await page.getByRole("link", { name: "Files", exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`${server}/files`));
  await hydrated(page);
  await expect(page.getByText(/^\d+ entries$/)).toBeVisible();
  // How to reach the same files over SFTP: this account's username for this server.
  await page.getByText("SFTP", { exact: true }).click();
  const id = server.split("/").pop()!;
  await expect(page.locator(".sftp-username")).toHaveText(new RegExp(`^files-\\d+@example\\.com\\.${id}$`));

  // Two files at once, through the picker; the progress bar shows the upload.
  const big = Buffer.alloc(3 * 1024 * 1024, "x");
  await page.getByLabel(/Upload files/).setInputFiles([
    { name: "server.properties", mimeType: "text/plain", buffer: Buffer.from("motd=Hello\n") },
    { name: "big.bin", mimeType: "application/octet-stream", buffer: big },
  ]);
  await expect(page.getByRole("status")).toHaveText("Uploaded 2 file(s)");
  const progress = page.getByLabel("Upload progress");
  await expect(progress).toHaveAttribute("value", String(await progress.getAttribute("max")));
  await expect(page.locator("tr[data-name='big.bin'] .size")).toHaveText("3 MiB");
  // Dropped on the page, as from a file browser.
  const dropped = await page.evaluateHandle(() => {
    const transfer = new DataTransfer();
    transfer.items.add(new File(["dropped in\n"], "dropped.txt", { type: "text/plain" }));
    return transfer;
  });
  await page.locator(".upload").dispatchEvent("drop", { dataTransfer: dropped });
  await expect(page.getByRole("status")).toHaveText("Uploaded 1 file(s)");
  await expect(page.locator("tr[data-name='dropped.txt'] .size")).toHaveText("11 B");

  // Edited in the browser, then put back as it was.
  // The editor is CodeMirror: its lines, its line numbers, the properties file highlighted.
  await page.locator("tr[data-name='server.properties'] .name a").click();
  const lines = page.locator(".cm-line");
  await expect(lines).toHaveText(["motd=Hello", ""]);
  await expect(page.locator(".language")).toHaveText("properties");
  await expect(lines.first().locator("span")).not.toHaveCount(0);
  await page.getByLabel("File content").click();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.type("motd=Changed\nmax-players=4\n");
  await expect(page.locator(".cm-lineNumbers .cm-gutterElement", { hasText: /^3$/ })).toBeVisible();
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByRole("status")).toHaveText(/^Saved/);
  await page.reload();
  await hydrated(page);
  await expect(lines).toHaveText(["motd=Changed", "max-players=4", ""]);
  await expect(page.locator(".version")).toContainText(/Saved over at \d{4}-\d{2}-\d{2}/);
  await page.locator(".version").getByRole("button", { name: "Restore" }).click();
  await expect(page.getByRole("status")).toHaveText("Restored the earlier version");
  await expect(lines).toHaveText(["motd=Hello", ""]);
  await page.getByRole("button", { name: "Close" }).click();

  // A new file opens in the editor; a search finds text inside files.
  await page.getByLabel("New file name").fill("notes.txt");
  await page.getByRole("button", { name: "New file" }).click();
  await expect(page.locator(".editing")).toHaveText("notes.txt");
  await page.getByRole("button", { name: "Close" }).click();
  await page.getByLabel("Search files").fill("motd");
  await page.getByLabel("in contents").check();
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await expect(page.locator(".hits li").first()).toContainText("server.properties:1 motd=Hello");

  // Copied beside itself; several ticked, compressed together, then deleted at once.
  await page.locator("tr[data-name='server.properties']").getByRole("button", { name: "Copy" }).click();
  await expect(page.locator("tr[data-name='server copy.properties']")).toBeVisible();
  const tick = async () => {
    await page.getByLabel("Select server copy.properties").check();
    await page.getByLabel("Select notes.txt").check();
    await expect(page.getByText("2 selected")).toBeVisible();
  };
  await tick();
  await page.getByLabel("Archive name").fill("two.zip");
  await page.getByRole("button", { name: "Compress selected" }).click();
  await expect(page.locator("tr[data-name='two.zip'] .kind")).toHaveText("file");
  await tick();
  await page.getByRole("button", { name: "Delete selected" }).click();
  await expect(page.locator("tr[data-name='notes.txt']")).toHaveCount(0);
  await expect(page.locator("tr[data-name='server copy.properties']")).toHaveCount(0);

  // A folder, a rename into it, and a delete.
  await page.getByLabel("New folder name").fill("configs");
  await page.getByRole("button", { name: "New folder" }).click();
  await expect(page.locator("tr[data-name='configs'] .kind")).toHaveText("folder");
  await page.locator("tr[data-name='server.properties']").getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("New name").fill("configs/server.properties");
  await page.getByRole("button", { name: "OK" }).click();
  await expect(page.locator("tr[data-name='server.properties']")).toHaveCount(0);
  await page.locator("tr[data-name='configs'] .name a").click();
  await expect(page.locator("tr[data-name='server.properties']")).toBeVisible();
  await page.getByRole("link", { name: "Files", exact: true }).click();
  await page.locator("tr[data-name='big.bin']").getByRole("button", { name: "Delete" }).click();
  await expect(page.locator("tr[data-name='big.bin']")).toHaveCount(0);
});

test("a backup is made and restored from the browser", async ({ page }) => {
  const server = await runningDemoServer(page, "Backed up");
  const id = server.split("/").pop()!;
  // A file of the customer's, backed up as it is now (written as the app's own pages would: same origin).
  const origin = new URL(page.url()).origin;
  const write = (text: string) =>
    page.request.put(`/api/servers/${id}/files/content?path=notes.txt`, { data: text, headers: { Origin: origin } });
  expect((await write("before")).status()).toBe(200);

  await page.getByRole("link", { name: "Backups", exact: true }).click();
  await hydrated(page);
  await expect(page.getByText("No backups yet.")).toBeVisible();
  await page.getByLabel("Name").fill("nightly");
  await page.getByRole("button", { name: "Back up now" }).click();
  const row = page.locator("tr[data-name='nightly']");
  await expect(row.locator(".status")).toHaveText("ok", { timeout: 20_000 });
  await expect(row.locator(".checksum")).toHaveText(/^[0-9a-f]{12}$/);

  // Changed afterwards, then restored: the file is what it was, and the server runs again.
  expect((await write("after")).status()).toBe(200);
  await row.getByRole("button", { name: "Restore" }).click();
  await expect(row.locator(".status")).toHaveText("ok", { timeout: 30_000 });
  await expect(row.locator(".problem")).toHaveText("");
  const notes = await page.request.get(`/api/servers/${id}/files/content?path=notes.txt`);
  expect(await notes.text()).toBe("before");

  // Locked, it cannot be deleted; unlocked, it can.
  await row.getByRole("button", { name: "Lock" }).click();
  await expect(row.locator(".locked")).toHaveText("locked");
  await expect(row.getByRole("button", { name: "Delete" })).toBeDisabled();
  await row.getByRole("button", { name: "Unlock" }).click();
  await row.getByRole("button", { name: "Delete" }).click();
  await expect(page.getByText("No backups yet.")).toBeVisible();
});

test.describe(() => {
  // The cron mistake at the end is refused with a 422, which the browser reports.
  test.use({ expectedBrowserErrors: [/status of 422/] });
  test("a schedule is made, run by hand, and shows how it went", async ({ page }) => {
    const server = await runningDemoServer(page, "Scheduled");
    await page.getByRole("link", { name: "Schedules", exact: true }).click();
    await expect(page).toHaveURL(new RegExp(`${server}/schedules`));
    await hydrated(page);
    await expect(page.getByText("No schedules yet.")).toBeVisible();
    await page.getByLabel("Name").fill("nightly");
    await page.getByLabel(/^When/).fill("30 3 * * *");
    await page.getByLabel("Time zone").fill("Europe/Berlin");
    await page.getByLabel(/^Tasks/).fill("say Saving now\nbackup");
    await page.getByRole("button", { name: "Make schedule" }).click();
    const schedule = page.locator("article[data-name='nightly']");
    // 03:30 in Berlin is 02:30 UTC in winter, 01:30 in summer.
    await expect(schedule.locator(".next")).toHaveText(/^\d{4}-\d\d-\d\d 0[12]:30 UTC$/);
    await expect(schedule.locator(".tasks")).toHaveText("say Saving now\nbackup");

    await schedule.getByRole("button", { name: "Run now" }).click();
    await expect(schedule.locator(".last")).toHaveText(/: ok$/, { timeout: 30_000 });
    await page.goto(`${server}/backups`);
    await expect(page.locator("tr[data-name='nightly (scheduled)'] .status")).toHaveText("ok");

    // A mistake is named and nothing is made.
    await page.goto(`${server}/schedules`);
    await hydrated(page);
    await page.getByLabel("Name").fill("broken");
    await page.getByLabel(/^When/).fill("99 * * * *");
    await page.getByRole("button", { name: "Make schedule" }).click();
    await expect(page.getByRole("alert")).toHaveText(/^cron: minute: 99 is outside 0-59/);
    await expect(page.locator("article[data-name='broken']")).toHaveCount(0);
  });
});

test.describe(() => {
  // The key that is not one is refused with a 422, which the browser reports.
  test.use({ expectedBrowserErrors: [/status of 422/] });
  test("an SSH key for SFTP is added and removed on the account page", async ({ page }) => {
    await signUp(page, `keys-${Date.now()}@example.com`);
    await page.goto("/account");
    await hydrated(page);
    await expect(page.getByText("No keys yet.")).toBeVisible();
    const dir = mkdtempSync(join(tmpdir(), "spawnpoint-key-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", join(dir, "key")]);
    const fingerprint = execFileSync("ssh-keygen", ["-lf", join(dir, "key.pub")]).toString().split(" ")[1];

    // Something that is not a public key is refused, saying so.
    await page.getByLabel("Name").fill("Laptop");
    await page.getByLabel("Public key").fill("not a key");
    await page.getByRole("button", { name: "Add key" }).click();
    await expect(page.getByRole("alert")).toContainText("public_key");

    await page.getByLabel("Public key").fill(readFileSync(join(dir, "key.pub"), "utf8"));
    await page.getByRole("button", { name: "Add key" }).click();
    await expect(page.getByRole("status")).toHaveText("Key “Laptop” added");
    const row = page.locator("tr[data-name='Laptop']");
    await expect(row.locator(".fingerprint")).toHaveText(fingerprint);
    await page.reload();
    await expect(row.locator(".algorithm")).toHaveText("ssh-ed25519");

    await hydrated(page);
    await row.getByRole("button", { name: "Remove Laptop" }).click();
    await expect(page.getByRole("status")).toHaveText("Key “Laptop” removed");
    await expect(page.getByText("No keys yet.")).toBeVisible();
  });
});
