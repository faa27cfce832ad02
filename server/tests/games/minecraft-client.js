#!/usr/bin/env node
// usage: node client.js <host> <port> <username> <message>
'use strict'
const mineflayer = require('mineflayer')
const [host, port, username, ...rest] = process.argv.slice(2)
const message = rest.join(' ')
if (!host || !port || !username) {
  process.stderr.write('usage: node client.js <host> <port> <username> <message>\n')
  process.exit(2)
}
const out = (s) => process.stdout.write(s + '\n')

const bot = mineflayer.createBot({
  host,
  port: parseInt(port, 10),
  username,
  auth: 'offline',
  version: process.env.MC_VERSION || '1.16.5',
  hideErrors: true // errors are reported via the 'error' event below
})

let done = false
function finish (code, why) {
  if (done) return
  done = true
  if (why) out(why)
  try { bot.quit() } catch {}
  setTimeout(() => process.exit(code), 200)
}

bot.once('spawn', () => {
  out('joined')
  if (message) bot.chat(message)
})
// 'message' fires for every chat/system message (player chat, /say, join/leave notices).
bot.on('message', (msg) => out('chat: ' + msg.toString()))
bot.on('kicked', (reason) => { // reason is a JSON chat component (string or object)
  let r = reason
  try {
    const ChatMessage = require('prismarine-chat')(bot.registry)
    r = new ChatMessage(typeof reason === 'string' ? JSON.parse(reason) : reason).toString()
  } catch { r = typeof reason === 'string' ? reason : JSON.stringify(reason) }
  finish(3, 'kicked: ' + r)
})
bot.on('error', (err) => finish(4, 'error: ' + (err && err.message ? err.message : err)))
bot.on('end', (reason) => finish(done ? 0 : 5, 'end: ' + reason))

process.stdin.on('end', () => finish(0))
process.stdin.on('close', () => finish(0))
process.stdin.resume()
process.on('SIGTERM', () => finish(0))
process.on('SIGINT', () => finish(0))
