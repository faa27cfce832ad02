#!/usr/bin/env node
// A Minecraft Bedrock server for the tests, from npm's bedrock-protocol, behaving as the official Bedrock
// Dedicated Server does where a hosting panel can tell: it reads server.properties in its working directory
// (server-port, server-name, max-players), answers the RakNet unconnected ping, prints "Server started." once
// players can connect and stops on `stop` from its console.
'use strict'
const fs = require('fs')
const readline = require('readline')
const bedrock = require('bedrock-protocol')

const props = {}
for (const line of (fs.existsSync('server.properties') ? fs.readFileSync('server.properties', 'utf8') : '').split(/\r?\n/)) {
  const m = line.match(/^\s*([^#!=:\s][^=:]*?)\s*[=:]\s*(.*)$/)
  if (m) props[m[1]] = m[2]
}
const port = parseInt(props['server-port'] || '19132', 10)
const log = (msg) => process.stdout.write(`[${new Date().toISOString().replace('T', ' ').slice(0, 19)} INFO] ${msg}\n`)
log('Starting Server')
const server = bedrock.createServer({
  host: '0.0.0.0',
  port,
  raknetBackend: 'jsp-raknet',
  offline: true,
  motd: { motd: props['server-name'] || 'Dedicated Server', levelName: props['level-name'] || 'Bedrock level' },
  maxPlayers: parseInt(props['max-players'] || '10', 10)
})
server.on('connect', (client) => client.on('join', () => log(`Player connected: ${client.getUserData().displayName}`)))
log(`IPv4 supported, port: ${port}`)
log('Server started.')
readline.createInterface({ input: process.stdin, terminal: false }).on('line', (line) => {
  if (line.trim() === 'stop') {
    log('Server stop requested.')
    server.close()
    log('Quit correctly')
    process.exit(0)
  }
})
