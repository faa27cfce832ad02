import { defineConfig } from "@playwright/test";

// The browser tests run against the real binary. scripts/test.sh builds the site and the server, then
// Playwright starts `spawnpoint` itself on a free port with a throw-away data directory.
const port = Number(process.env.SPAWNPOINT_E2E_PORT ?? 3210);
const baseURL = `http://127.0.0.1:${port}`;
// PaperMC's downloads API, played on loopback (support/fake-papermc.mjs), for installing Minecraft servers.
const paperPort = port + 89;
// Shared with the tests (tests/fixtures.ts), which run the same binary's CLI against the same data.
process.env.SPAWNPOINT_BIN ??= "target/debug/spawnpoint";
process.env.SPAWNPOINT_E2E_DATA_DIR ??= "target/e2e-data";

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  forbidOnly: !!process.env.CI,
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      // Debian's Chromium, never a downloaded browser; flags keep it off the (closed) network.
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
  },
  webServer: [
    {
      command: "node support/fake-papermc.mjs",
      url: `http://127.0.0.1:${paperPort}/ready`,
      timeout: 60_000,
      reuseExistingServer: false,
      env: { FAKE_PAPERMC_PORT: String(paperPort) },
    },
    {
      command: process.env.SPAWNPOINT_BIN,
      // The binary finds the built site relative to the repository root.
      cwd: "..",
      url: `${baseURL}/ready`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
      env: {
        SPAWNPOINT_ADDR: `127.0.0.1:${port}`,
        SPAWNPOINT_SFTP_ADDR: "127.0.0.1:0",
        SPAWNPOINT_DATA_DIR: process.env.SPAWNPOINT_E2E_DATA_DIR,
        SPAWNPOINT_PAPER_API: `http://127.0.0.1:${paperPort}`,
        RUST_LOG: "warn",
      },
    },
  ],
});
