// Notebook 06b: the same CPU route as helpers/servers/demo_app.py, under Node's cluster.
// The primary accepts every connection and hands it to a worker, round-robin.
// Usage: node node_cluster.js WORKERS   (prints the port; exits when stdin closes)
const cluster = require("node:cluster"), http = require("node:http");
const workers = Number(process.argv[2] || 2);
if (cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_RR;  // Node's default on Linux and macOS
  for (let i = 0; i < workers; i++) cluster.fork();
  let ready = 0;
  cluster.on("message", (w, m) => { if (++ready === workers) process.stdout.write(m.port + "\n"); });
  process.stdin.on("end", () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0); });
  process.stdin.resume();
} else {
  http.createServer((req, res) => {
    const ms = Number(new URL(req.url, "http://x").searchParams.get("ms") || 0);
    const start = process.cpuUsage(), spent = () => { const u = process.cpuUsage(start); return (u.user + u.system) / 1000; };
    while (spent() < ms) { let s = 0; for (let i = 0; i < 200; i++) s += i * i; }
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ route: "cpu", ms, pid: process.pid }));
  }).listen(0, "127.0.0.1", function () { process.send({ port: this.address().port }); });
}
