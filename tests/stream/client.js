// Streaming clients crib did not write: spdy-transport (SPDY/3.1) and ws (WebSocket), for the
// interoperability tests of crib's streaming server. One run, one session; the outcome is
// printed as one JSON object on stdout.
//
//   node client.js spdy-exec URL PROTOCOL OPTIONS_JSON
//   node client.js ws-exec URL PROTOCOL OPTIONS_JSON
//   node client.js spdy-portforward URL PORT REQUEST
//   node client.js ws-portforward URL REQUEST
//
// OPTIONS_JSON: {"stdin": "text", "closeStdin": true, "stdout": true, "stderr": true,
//                "tty": false, "resize": [width, height]}
'use strict';

const net = require('net');
const tls = require('tls');
const transport = require('spdy-transport');
const WebSocket = require('ws');

// Exits once stdout is written: a pipe takes writes asynchronously.
function finish(result, code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

function fail(message) {
  finish({ failure: String(message) }, 2);
}

setTimeout(() => fail('timed out'), 60000).unref();

// Sends the HTTP upgrade and resolves with the socket positioned after the response head.
function upgrade(url, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const port = Number(u.port);
    const socket = u.protocol === 'https:'
      ? tls.connect({ host: u.hostname, port, rejectUnauthorized: false })
      : net.connect({ host: u.hostname, port });
    socket.once('error', reject);
    socket.once(u.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      let head = `POST ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n`;
      for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
      socket.write(head + '\r\n');
    });
    let buffer = Buffer.alloc(0);
    const onData = (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.removeListener('data', onData);
      socket.pause();
      const lines = buffer.slice(0, end).toString().split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const response = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        response[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const rest = buffer.slice(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve({ socket, status, headers: response, body: rest.toString() });
    };
    socket.on('data', onData);
  });
}

function collect(stream) {
  return new Promise((resolve) => {
    const chunks = [];
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', () => resolve(Buffer.concat(chunks)));
  });
}

async function spdyExec(url, protocol, options) {
  const up = await upgrade(url, [
    ['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'], ['X-Stream-Protocol-Version', protocol],
  ]);
  if (up.status !== 101) return { status: up.status, body: up.body };
  const conn = transport.connection.create(up.socket, { protocol: 'spdy', isServer: false });
  conn.start(3.1);
  const open = (type) => conn.request({ method: 'POST', path: '/', headers: { streamtype: type } });
  const error = open('error');
  const stdin = options.stdin !== undefined ? open('stdin') : null;
  const stdout = options.stdout !== false ? open('stdout') : null;
  const stderr = options.stderr && !options.tty ? open('stderr') : null;
  const resize = options.tty ? open('resize') : null;
  const results = [collect(error), stdout ? collect(stdout) : null, stderr ? collect(stderr) : null];
  if (resize && options.resize) {
    resize.write(JSON.stringify({ Width: options.resize[0], Height: options.resize[1] }));
  }
  if (stdin) {
    if (options.stdin.length > 0) stdin.write(options.stdin);
    if (options.closeStdin !== false) stdin.end();
  }
  const [errorData, out, err] = await Promise.all(results.map((p) => p || Promise.resolve(null)));
  up.socket.destroy();
  return {
    status: 101,
    protocol: up.headers['x-stream-protocol-version'],
    error: errorData.toString(),
    stdout: out ? out.toString() : null,
    stderr: err ? err.toString() : null,
  };
}

function wsUrl(url) {
  return url.replace(/^http/, 'ws');
}

function wsExec(url, protocol, options) {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsUrl(url), [protocol], { rejectUnauthorized: false });
    const channels = {};
    const base64 = protocol.includes('base64');
    ws.on('unexpected-response', (req, res) => resolve({ status: res.statusCode }));
    ws.on('error', (e) => resolve({ failure: e.message }));
    ws.on('open', () => {
      const send = (channel, data) => {
        if (base64) {
          ws.send(String(channel) + Buffer.from(data).toString('base64'));
        } else {
          ws.send(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]));
        }
      };
      if (options.resize) {
        send(4, JSON.stringify({ Width: options.resize[0], Height: options.resize[1] }));
      }
      if (options.stdin !== undefined) {
        if (options.stdin.length > 0) send(0, options.stdin);
        // v5: close stdin with the CLOSE signal on channel 255.
        if (options.closeStdin !== false && protocol === 'v5.channel.k8s.io') {
          ws.send(Buffer.from([255, 0]));
        }
      }
    });
    ws.on('message', (data, isBinary) => {
      let channel;
      let payload;
      if (isBinary) {
        channel = data[0];
        payload = data.slice(1);
      } else {
        const text = data.toString();
        channel = Number(text[0]);
        payload = Buffer.from(text.slice(1), 'base64');
      }
      channels[channel] = Buffer.concat([channels[channel] || Buffer.alloc(0), payload]);
    });
    ws.on('close', (code) => {
      resolve({
        status: 101,
        protocol: ws.protocol,
        close: code,
        stdout: (channels[1] || '').toString(),
        stderr: (channels[2] || '').toString(),
        error: (channels[3] || '').toString(),
      });
    });
  });
}

async function spdyPortForward(url, port, request) {
  const up = await upgrade(url, [
    ['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'],
    ['X-Stream-Protocol-Version', 'portforward.k8s.io'],
  ]);
  if (up.status !== 101) return { status: up.status, body: up.body };
  const conn = transport.connection.create(up.socket, { protocol: 'spdy', isServer: false });
  conn.start(3.1);
  const headers = (type) => ({ streamtype: type, port: String(port), requestid: '0' });
  const error = conn.request({ method: 'POST', path: '/', headers: headers('error') });
  const data = conn.request({ method: 'POST', path: '/', headers: headers('data') });
  const results = Promise.all([collect(error), collect(data)]);
  data.end(request);
  const [errorData, received] = await results;
  up.socket.destroy();
  return { status: 101, error: errorData.toString(), data: received.toString('latin1'),
           bytes: received.length };
}

function wsPortForward(url, request) {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsUrl(url), ['v4.channel.k8s.io'], { rejectUnauthorized: false });
    const channels = {};
    ws.on('unexpected-response', (req, res) => resolve({ status: res.statusCode }));
    ws.on('error', (e) => resolve({ failure: e.message }));
    ws.on('open', () => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(request)])));
    ws.on('message', (data) => {
      channels[data[0]] = Buffer.concat([channels[data[0]] || Buffer.alloc(0), data.slice(1)]);
    });
    ws.on('close', (code) => {
      const data = channels[0] || Buffer.alloc(0);
      const error = channels[1] || Buffer.alloc(0);
      resolve({
        status: 101,
        close: code,
        // Each channel starts with its port (uint16, little-endian).
        port: data.length >= 2 ? data.readUInt16LE(0) : null,
        errorPort: error.length >= 2 ? error.readUInt16LE(0) : null,
        data: data.slice(2).toString('latin1'),
        error: error.slice(2).toString(),
      });
    });
  });
}

async function main() {
  const [mode, url, a, b] = process.argv.slice(2);
  let result;
  switch (mode) {
    case 'spdy-exec':
      result = await spdyExec(url, a, JSON.parse(b || '{}'));
      break;
    case 'ws-exec':
      result = await wsExec(url, a, JSON.parse(b || '{}'));
      break;
    case 'spdy-portforward':
      result = await spdyPortForward(url, Number(a), b);
      break;
    case 'ws-portforward':
      result = await wsPortForward(url, a);
      break;
    default:
      fail(`unknown mode ${mode}`);
  }
  finish(result, 0);
}

main().catch((e) => fail(e && e.stack ? e.stack : e));
