// A Node.js http server that stops gracefully on SIGTERM, as Node servers
// in the wild do: it never joins the bus (a non-member).
//
//     node node_server.js MARKER [PORT]
//
// Listens on PORT (default: one the OS picks) and prints "listening PORT"
// once it answers; on SIGTERM it writes MARKER (its cleanup), closes the
// server and exits 0.
"use strict";
const fs = require("fs");
const http = require("http");

const marker = process.argv[2];
const port = Number(process.argv[3] || 0);
const server = http.createServer((request, response) => response.end("ok\n"));
server.listen(port, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => {
  fs.writeFileSync(marker, "cleaned up after SIGTERM\n");
  server.close(() => process.exit(0));
});
