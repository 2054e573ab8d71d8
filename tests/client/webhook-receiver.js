// A webhook receiver for the tests: an HTTP server on loopback that plays the application's
// backend. Every delivery is verified with the Standard Webhooks reference library
// (npm `standardwebhooks`), never with the server's own code. Its answer is scripted per
// attempt (`answer`: 200, 500, or 'hang' = never answer), so tests can fail it and recover it.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { eventually } from './helpers.js';

/** A fresh Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export function newSecret() {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/**
 * Starts a receiver verifying with `secret`. `answer(attempt)` decides each answer (default:
 * 200). Resolves `{url, attempts, accepted, hanging, stop, ...}`:
 * - `attempts`: every request, in arrival order: `{id, timestamp, headers, raw, event, verified, status}`
 * - `accepted`: the events answered 2xx (each at most once), in the order they were accepted
 */
export async function startReceiver(secret, { answer = () => 200 } = {}) {
  const verifier = new Webhook(secret);
  const attempts = [];
  const accepted = [];
  const acceptedIds = new Set();
  const hanging = new Set();
  const receiver = {
    attempts,
    accepted,
    answer,
    /** Resolves once `check(accepted)` is truthy. */
    until(check, { timeout = 10_000, what = 'webhooks' } = {}) {
      return eventually(() => check(accepted), { timeout, what: `${what}; accepted so far: ${JSON.stringify(accepted.map((e) => [e.type, e.data]))}` });
    },
    /** The accepted events about `roomId`, in order. */
    ofRoom(roomId) {
      return accepted.filter((e) => e.data?.roomId === roomId);
    },
    /** Requests still waiting for an answer. */
    get hanging() {
      return hanging.size;
    },
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': req.headers['webhook-id'],
        'webhook-timestamp': req.headers['webhook-timestamp'],
        'webhook-signature': req.headers['webhook-signature'],
      };
      let event = null;
      let verified = false;
      try {
        event = verifier.verify(raw, headers);
        verified = true;
      } catch (e) {
        event = { error: e.message };
      }
      const attempt = {
        id: headers['webhook-id'],
        timestamp: headers['webhook-timestamp'],
        contentType: req.headers['content-type'],
        method: req.method,
        raw,
        event,
        verified,
        status: null,
      };
      attempts.push(attempt);
      const decision = verified ? receiver.answer(attempt) : 400;
      if (decision === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      attempt.status = decision;
      if (decision >= 200 && decision < 300 && !acceptedIds.has(attempt.id)) {
        acceptedIds.add(attempt.id);
        accepted.push({ ...event, webhookId: attempt.id });
      }
      res.writeHead(decision, { 'content-type': 'text/plain' });
      res.end(decision < 300 ? 'ok' : 'no');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${server.address().port}/hooks`;
  receiver.stop = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return receiver;
}
