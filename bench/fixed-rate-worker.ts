/**
 * Open-loop load at a fixed rate, in its own process (so it shares no event loop with the servers
 * it measures): request k is due at start + k / rate whether or not earlier ones were answered, and
 * its latency is measured from that due time, not from when a connection was free to send it, so a
 * server that falls behind shows its queue in the percentiles (no coordinated omission, as wrk2).
 * Requests go over `connections` keep-alive connections (node:http Agent); a request due while all
 * of them are busy waits in the agent's queue, and that wait is part of its latency.
 *
 * Argument (IPC message): { url, rate, connections, seconds, warmupSeconds, drainSeconds, tokens }.
 * Answer: FixedRateRun (bench/fixed-rate.ts).
 */
import { Agent, request } from 'node:http';
import { percentile } from './stats.js';
import type { FixedRateRun, FixedRateTask } from './fixed-rate.js';

function run(task: FixedRateTask): Promise<FixedRateRun> {
  const url = new URL(task.url);
  const agent = new Agent({ keepAlive: true, maxSockets: task.connections, maxFreeSockets: task.connections, keepAliveMsecs: 30_000 });
  const interval = 1000 / task.rate; // ms between due times
  const warm = Math.round(task.rate * task.warmupSeconds);
  const total = warm + Math.round(task.rate * task.seconds);
  // Latency per measured request (index k - warm); NaN until answered.
  const latency = new Float64Array(total - warm).fill(Number.NaN);
  let errors = 0;
  let answered = 0;
  // Answers (to any request) that arrived inside the measured window: the rate the server delivered.
  let answeredInWindow = 0;
  let sent = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let tokenIndex = 0;

  const send = (k: number) => {
    const due = t0 + k * interval;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (task.tokens.length > 0) headers.authorization = `Bearer ${task.tokens[tokenIndex++ % task.tokens.length]}`;
    const req = request({ agent, hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers }, (res) => {
      res.resume();
      res.on('end', () => {
        const done = performance.now();
        if (done >= t0 + warm * interval && done <= t0 + total * interval) answeredInWindow++;
        if (res.statusCode !== 200) errors++;
        else if (k >= warm) latency[k - warm] = done - due;
        answered++;
      });
    });
    req.on('error', () => {
      errors++;
      answered++;
    });
    req.end();
  };

  return new Promise((resolve) => {
    const measuredEnd = t0 + total * interval;
    const tick = () => {
      const now = performance.now();
      // Everything due by now goes out now: a late tick sends its backlog at once, as the schedule says.
      const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
      while (sent < due) send(sent++);
      if (sent < total) setTimeout(tick, Math.max(0, Math.min(1, t0 + sent * interval - performance.now())));
      else finish();
    };
    const finish = () => {
      const drainBy = performance.now() + task.drainSeconds * 1000;
      const wait = () => {
        if (answered < total && performance.now() < drainBy) return void setTimeout(wait, 5);
        const end = performance.now();
        const cpu = process.cpuUsage(cpu0);
        let late = 0;
        for (let i = 0; i < latency.length; i++) {
          const v = latency[i]!;
          if (Number.isNaN(v)) {
            // Never answered before the drain ended: counted at the time it had waited, a lower bound.
            latency[i] = end - (t0 + (i + warm) * interval);
            late++;
          }
        }
        // A server that keeps the rate has no queue that grows: the requests due in the last fifth
        // of the window wait about as long as those due in the first fifth.
        const fifth = Math.max(1, Math.floor(latency.length / 5));
        const firstMedian = percentile(Float64Array.from(latency.subarray(0, fifth)).sort(), 50);
        const lastMedian = percentile(Float64Array.from(latency.subarray(latency.length - fifth)).sort(), 50);
        const sorted = Float64Array.from(latency).sort();
        agent.destroy();
        const windowSeconds = (measuredEnd - (t0 + warm * interval)) / 1000;
        resolve({
          rate: task.rate,
          scheduled: latency.length,
          answeredPerSecond: Math.round(answeredInWindow / windowSeconds),
          unanswered: late,
          kept: late === 0 && errors === 0 && lastMedian <= 2 * firstMedian + 5,
          medianFirstLastMs: [round3(firstMedian), round3(lastMedian)],
          errors,
          latencyMs: { p50: round3(percentile(sorted, 50)), p99: round3(percentile(sorted, 99)), p999: round3(percentile(sorted, 99.9)), max: round3(sorted[sorted.length - 1] ?? Number.NaN) },
          loadgenCores: Math.round(((cpu.user + cpu.system) / 1000 / (end - t0)) * 100) / 100,
        });
      };
      wait();
    };
    tick();
  });
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

process.once('disconnect', () => process.exit(0));
process.once('message', (task: FixedRateTask) => {
  void run(task).then((r) => process.send!(r));
});
