#!/usr/bin/env node
// Paper-like wrapper around flying-squid. Run with cwd = server data dir.
'use strict'
const t0 = Date.now()
const fs = require('fs')
const path = require('path')
const VERSION = process.env.MC_VERSION || '1.16.5'

const log = (level, msg) => {
  const d = new Date(); const p = n => String(n).padStart(2, '0')
  const line = `[${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${level}]: ${msg}`
  process.stdout.write(line + '\n')
  if (logStream) logStream.write(line + '\n')
}
let logStream = null

// --- server.properties (Java properties, minimal unescaping) ---
function readProps (file) {
  const props = {}
  let text = ''
  try { text = fs.readFileSync(file, 'utf8') } catch { return props }
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (!line || line[0] === '#' || line[0] === '!') continue
    const m = line.match(/^((?:\\.|[^=:\s\\])+)\s*[=:\s]\s*(.*)$/) || [null, line, '']
    const unesc = s => s.replace(/\\u([0-9a-fA-F]{4})/g, (_, h) => String.fromCharCode(parseInt(h, 16)))
      .replace(/\\(.)/g, (_, c) => ({ n: '\n', t: '\t', r: '\r' }[c] ?? c))
    props[unesc(m[1])] = unesc(m[2])
  }
  return props
}
const props = readProps('server.properties')
const int = (v, d) => { const n = parseInt(v, 10); return Number.isFinite(n) ? n : d }
const port = int(props['server-port'], 25565)
const maxPlayers = int(props['max-players'], 20)
const motd = props.motd ?? 'A Minecraft Server'
const levelName = props['level-name'] || 'world'
const host = props['server-ip'] || undefined

// --- EULA ---
let eula = ''
try { eula = fs.readFileSync('eula.txt', 'utf8') } catch {}
if (!/^\s*eula\s*=\s*true\s*$/m.test(eula)) {
  if (!fs.existsSync('eula.txt')) { // like vanilla: write a template eula.txt
    fs.writeFileSync('eula.txt', '#By changing the setting below to TRUE you are indicating your agreement to our EULA (https://aka.ms/MinecraftEULA).\n' +
      `#${new Date().toString()}\neula=false\n`)
  }
  log('INFO', 'You need to agree to the EULA in order to run the server. Go to eula.txt for more info.')
  process.exit(1)
}
fs.mkdirSync('logs', { recursive: true })
logStream = fs.createWriteStream(path.join('logs', 'latest.log'), { flags: 'w' })
log('INFO', `Starting minecraft server version ${VERSION} (flying-squid ${require('flying-squid/package.json').version})`)
log('INFO', `Starting Minecraft server on ${host || '*'}:${port}`)

// flying-squid's log plugin opens a readline on stdin at require() time and writes a
// "> " prompt to stdout; drop its output stream so stdout only carries log lines.
// flying-squid's exit-hook (registered asynchronously) would process.exit(143) on
// SIGTERM/SIGINT without saving; swallow its process.once() signal registrations.
const origOnce = process.once
process.once = function (ev, fn) {
  if (ev === 'SIGTERM' || ev === 'SIGINT') return this
  return origOnce.call(this, ev, fn)
}
const readline = require('readline')
const origCreateInterface = readline.createInterface
readline.createInterface = (opts) => origCreateInterface({ ...opts, output: undefined, terminal: false })
const mcServer = require('flying-squid')
require('colors').disable() // no ANSI in e.g. `help` output (stdout is a pipe for a panel)

const serv = mcServer.createMCServer({
  port,
  host,
  motd,
  'max-players': maxPlayers,
  'online-mode': false,
  version: VERSION,
  worldFolder: levelName, // anvil region files + level.dat + playerdata/ (overworld only)
  generation: { name: 'diamond_square', options: { worldHeight: 80 } },
  logging: false, // we write logs/latest.log ourselves
  gameMode: 0,
  difficulty: 1,
  kickTimeout: 10000,
  plugins: {},
  modpe: false,
  'view-distance': int(props['view-distance'], 6),
  'player-list-text': { header: { text: '' }, footer: { text: '' } },
  'everybody-op': false,
  'max-entities': 100,
  // server-icon.png in cwd -> favicon, like vanilla
  favicon: fs.existsSync('server-icon.png') ? 'data:image/png;base64,' + fs.readFileSync('server-icon.png').toString('base64') : undefined,
  // vanilla fills players.sample (flying-squid leaves it empty)
  beforePing: (response) => {
    response.players.online = serv.players.length
    response.players.sample = serv.players.slice(0, 12).map(p => ({ name: p.username, id: p.uuid }))
    return response
  }
})
readline.createInterface = origCreateInterface // plugins (log.js) are loaded inside createMCServer

// Paper-style log lines for everything flying-squid logs.
serv.log = (m) => log('INFO', m)
serv.info = (m) => log('INFO', m)
serv.warn = (m) => log('WARN', m)
serv.err = (m) => log('ERROR', m)

// Console commands: flying-squid's own readline calls serv.handleCommand(line).
// Run them one at a time so output order matches input order.
// Lines typed during startup are held until "Done", like Paper.
const origHandle = serv.handleCommand
let markReady
let queue = new Promise(resolve => { markReady = resolve })
serv.handleCommand = (line) => {
  const cmd = String(line).trim().replace(/^\//, '')
  if (!cmd) return queue
  queue = queue.then(() => serv.commands.find(cmd)
    ? origHandle(cmd)
    : log('INFO', 'Unknown command. Type "/help" for help.')).catch(e => log('ERROR', String(e)))
  return queue
}

serv.commands.add({
  base: 'list',
  info: 'List online players',
  usage: '/list',
  action () {
    const names = serv.players.map(p => p.username)
    return `There are ${names.length} of a max of ${maxPlayers} players online: ${names.join(', ')}`
  }
})
serv.commands.add({ // vanilla format: console log "[Server] text", chat "[Server] text"
  base: 'say',
  info: 'Broadcast a message',
  usage: '/say <message>',
  op: true,
  parse: (s) => s || false,
  action (text, ctx) {
    const who = ctx.player ? ctx.player.username : 'Server'
    serv.broadcast(`[${who}] ${text}`)
    log('INFO', `[${who}] ${text}`)
  }
})

const withTimeout = (p, ms) => Promise.race([p, new Promise(resolve => setTimeout(resolve, ms))])
let stopping = false
async function shutdown (code = 0) {
  if (stopping) return
  stopping = true
  log('INFO', 'Stopping the server')
  log('INFO', 'Stopping server')
  const players = [...serv.players]
  log('INFO', 'Saving players')
  await withTimeout(Promise.all(players.map(p => p.save().catch(e => log('WARN', 'save ' + p.username + ': ' + e)))), 5000)
  await withTimeout(Promise.all(players.map(p => new Promise(resolve => {
    p.once('disconnected', resolve); p.kick('Server closed')
  }))), 3000)
  log('INFO', 'Saving worlds')
  if (serv.overworld) {
    await withTimeout(serv.overworld.waitSaving(), 10000)
    serv.overworld.stopSaving()
  }
  log('INFO', `Saving chunks for level '${levelName}'/minecraft:overworld`)
  await withTimeout(serv.destroy(), 2000)
  log('INFO', 'ThreadedAnvilChunkStorage: All dimensions are saved')
  logStream.end(() => process.exit(code))
  setTimeout(() => process.exit(code), 1000)
}
serv.commands.add({ base: 'stop', info: 'Stop the server', usage: '/stop', op: true, action: () => shutdown(0) })

serv.on('newPlayer', (player) => {
  player.on('connected', () => log('INFO', `${player.username} joined the game`))
  player.on('disconnected', () => log('INFO', `${player.username} left the game`))
})

serv._server.on('error', (err) => {
  if (err.code === 'EADDRINUSE' || err.code === 'EACCES') {
    log('WARN', '**** FAILED TO BIND TO PORT!')
    log('WARN', `The exception was: ${err}`)
    log('WARN', 'Perhaps a server is already running on that port?')
    process.exit(1)
  }
})

let listening = false; let pluginsReady = serv.pluginsReady
function maybeDone () {
  if (!listening || !pluginsReady) return
  log('INFO', `Done (${((Date.now() - t0) / 1000).toFixed(3)}s)! For help, type "help"`)
  markReady()
}
// SIGTERM/SIGINT: graceful stop + save, like Paper.
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => shutdown(0))
serv._server.on('listening', () => { listening = true; maybeDone() })
serv.once('pluginsReady', () => { pluginsReady = true; maybeDone() })
