// A loopback stand-in for PaperMC's downloads API (v3), for the browser tests: the builds of Paper 1.20.4 (a JSON
// array, newest first, as https://fill.papermc.io answers) and their server jar. The jar is built here with the
// JDK: its main runs flying-squid (server/tests/games/), a real Minecraft server written in Node.js, and it
// carries a megabyte of padding, sent slowly, so that the browser has an install's progress to show.
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const port = Number(process.env.FAKE_PAPERMC_PORT ?? 3299);
const script = resolve(import.meta.dirname, "../../server/tests/games/minecraft-server.js");
const work = mkdtempSync(join(tmpdir(), "spawnpoint-paper-"));
mkdirSync(join(work, "classes"));
writeFileSync(
  join(work, "Main.java"),
  `public class Main { public static void main(String[] args) throws Exception {
     Process game = new ProcessBuilder("node", ${JSON.stringify(script)}).inheritIO().start();
     System.exit(game.waitFor()); } }`,
);
writeFileSync(join(work, "classes", "padding.bin"), Buffer.alloc(1024 * 1024, 7));
execFileSync("javac", ["-d", join(work, "classes"), join(work, "Main.java")]);
execFileSync("jar", ["--create", "--no-compress", "--main-class", "Main", "--file", join(work, "server.jar"), "-C", join(work, "classes"), "."]);
const jar = readFileSync(join(work, "server.jar"));
const sha256 = createHash("sha256").update(jar).digest("hex");

createServer((request, response) => {
  const base = `http://${request.headers.host}`;
  if (request.url === "/v3/projects/paper/versions/1.20.4/builds") {
    const build = (id, channel) => ({
      id,
      time: "2024-04-01T12:00:00Z",
      channel,
      commits: [],
      downloads: { "server:default": { name: `paper-1.20.4-${id}.jar`, checksums: { sha256 }, size: jar.length, url: `${base}/files/paper.jar` } },
    });
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify([build(500, "BETA"), build(499, "STABLE")]));
  } else if (request.url === "/files/paper.jar") {
    response.writeHead(200, { "content-type": "application/java-archive", "content-length": jar.length });
    let at = 0;
    const next = () => {
      if (at >= jar.length) return response.end();
      response.write(jar.subarray(at, at + 16 * 1024));
      at += 16 * 1024;
      setTimeout(next, 60);
    };
    next();
  } else if (request.url === "/ready") {
    response.end("ok");
  } else {
    response.writeHead(404, { "content-type": "application/json" });
    response.end(JSON.stringify({ ok: false, error: "version_not_found", message: "No version was found with the given identifier." }));
  }
}).listen(port, "127.0.0.1");
