// The JavaScript socket.io-client (4.8) recovers its session from a socketioxide server
// through a real blip: a TCP proxy between them cuts every connection and refuses new ones.
//
//   node recovery.mjs <server port> <polling|websocket> <cut|blackhole>
//
// cut:       both sides of the proxied connections are closed; the server notices the loss
//            (its on_transport_lost runs) before the client is let back in.
// blackhole: only the client's side is closed; the server's side stays open and silent, so
//            the server has not noticed when the client comes back (a takeover).
//
// Events 1..3 arrive before the blip, 4..6 are emitted during it (odd ones to a room, even
// ones to the socket alone), 7 after it. Exits 0 if the client recovered (same id,
// `socket.recovered`), got 1..7 once each and in order, and the server's handlers saw
// exactly the expected lifecycle; 1 otherwise, saying why.
import net from "node:net";
import { io } from "socket.io-client";

const [serverPort, transport, mode] = process.argv.slice(2);
const fail = (why) => {
  console.error(`FAIL (${transport}, ${mode}): ${why}`);
  process.exit(1);
};
setTimeout(() => fail(`timed out at: ${step}`), 20_000).unref();

let step = "start";
const until = async (what, check) => {
  step = what;
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) fail(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

// The proxy: forwards bytes both ways until a blip. After it, nothing of the engine.io
// sessions from before the blip gets through (not even the client's farewell, a close packet
// on a new HTTP request): their network is gone.
let refusing = false;
const links = new Set();
const sessions = new Set();
let deadSessions = new Set();
const proxy = net.createServer((client) => {
  client.on("error", () => {});
  if (refusing) return client.destroy();
  client.once("data", (first) => {
    const sid = /[?&]sid=([\w-]+)/.exec(first.toString())?.[1];
    if (sid && deadSessions.has(sid)) return client.destroy();
    if (sid) sessions.add(sid);
    const upstream = net.connect(Number(serverPort), "127.0.0.1");
    upstream.on("error", () => {});
    const link = { client, upstream, open: true };
    links.add(link);
    upstream.write(first);
    client.on("data", (d) => link.open && upstream.write(d));
    upstream.on("data", (d) => {
      if (!link.open) return;
      const sid = /"sid":"([\w-]+)"/.exec(d.toString())?.[1];
      if (sid) sessions.add(sid);
      client.write(d);
    });
    client.on("close", () => link.open && upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
});
await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
const blip = () => {
  refusing = true;
  deadSessions = new Set(sessions);
  for (const link of links) {
    link.open = false;
    link.client.destroy();
    if (mode === "cut") link.upstream.destroy();
  }
  links.clear();
};

const socket = io(`http://127.0.0.1:${proxy.address().port}`, {
  transports: [transport],
  reconnectionDelay: 100,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
});
const control = io(`http://127.0.0.1:${serverPort}`, { transports: ["websocket"] });

const ticks = [];
socket.on("tick", (n, offset) => {
  if (typeof offset !== "string") fail(`tick ${n} came without an offset`);
  ticks.push(n);
});
const connects = [];
socket.on("connect", () => connects.push({ id: socket.id, recovered: socket.recovered }));

await until("connected", () => connects.length === 1 && control.connected);
if (connects[0].recovered) fail("recovered on the first connection");
const id = socket.id;
step = "subscribe";
await socket.emitWithAck("subscribe");
const stats = () => control.emitWithAck("stats", id);

step = "burst 1..3";
await control.emitWithAck("burst", id, 1, 3);
await until("ticks 1..3", () => ticks.length === 3);

blip();
if (mode === "cut") {
  await until("the server noticed the loss", async () => (await stats()).lost === 1);
}
step = "burst 4..6";
await control.emitWithAck("burst", id, 4, 6);
refusing = false;

await until("reconnected", () => connects.length === 2);
if (!connects[1].recovered) fail("socket.recovered is false after the blip");
if (connects[1].id !== id) fail(`new id ${connects[1].id}, was ${id}`);

await control.emitWithAck("burst", id, 7, 7);
await until("tick 7", () => ticks.includes(7));
await new Promise((r) => setTimeout(r, 200));
if (JSON.stringify(ticks) !== "[1,2,3,4,5,6,7]") fail(`ticks ${JSON.stringify(ticks)}`);

const seen = await stats();
const expected = { lost: mode === "cut" ? 1 : 0, recovered: 1, disconnected: 0 };
if (JSON.stringify(seen) !== JSON.stringify(expected)) {
  fail(`server lifecycle ${JSON.stringify(seen)}, expected ${JSON.stringify(expected)}`);
}
console.log(`ok (${transport}, ${mode})`);
process.exit(0);
