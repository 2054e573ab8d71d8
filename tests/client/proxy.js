// A TCP proxy in front of one server instance, to give a client a real network blip: it
// forwards bytes both ways until `cut()`, which closes every proxied connection on both sides
// (so the server notices the loss, as it would a dropped Wi-Fi link) and refuses new ones
// until `restore()`. After a cut nothing of the Engine.IO sessions from before it gets
// through, not even a request naming one of them: their network is gone. `retarget(url)`
// sends later connections to another instance (a load balancer without sticky sessions).
import net from 'node:net';

/** Starts a proxy to `target` (`http://host:port`); resolves with its handle. */
export async function startProxy(target) {
  let upstream = new URL(target);
  let refusing = false;
  const links = new Set();
  // Engine.IO session ids seen through the proxy, and those a cut killed.
  const sessions = new Set();
  let dead = new Set();
  const server = net.createServer((client) => {
    client.on('error', () => {});
    if (refusing) {
      client.destroy();
      return;
    }
    client.once('data', (first) => {
      const sid = /[?&]sid=([\w-]+)/.exec(first.toString('latin1'))?.[1];
      if (refusing || (sid && dead.has(sid))) {
        client.destroy();
        return;
      }
      if (sid) sessions.add(sid);
      const link = { client, server: net.connect(Number(upstream.port), upstream.hostname), open: true };
      links.add(link);
      link.server.on('error', () => {});
      link.server.write(first);
      client.on('data', (d) => link.open && link.server.write(d));
      link.server.on('data', (d) => {
        if (!link.open) return;
        const opened = /"sid":"([\w-]+)"/.exec(d.toString('latin1'))?.[1];
        if (opened) sessions.add(opened);
        client.write(d);
      });
      client.on('close', () => {
        links.delete(link);
        if (link.open) link.server.destroy();
      });
      link.server.on('close', () => {
        links.delete(link);
        client.destroy();
      });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Closes every proxied connection, both sides, and refuses new ones. */
    cut() {
      refusing = true;
      dead = new Set(sessions);
      for (const link of links) {
        link.open = false;
        link.client.destroy();
        link.server.destroy();
      }
      links.clear();
    },
    /** Lets connections through again. */
    restore() {
      refusing = false;
    },
    /** Later connections go to `url` instead. */
    retarget(url) {
      upstream = new URL(url);
    },
    async close() {
      this.cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
