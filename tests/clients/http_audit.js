// Runs graphql-http's GraphQL-over-HTTP conformance audit against a server.
// Reads {url} as JSON on stdin; prints the results as a JSON list of
// {id, name, status, reason?}, plus the response (status, content type, body)
// of any audit that did not pass, so a failure explains itself.
"use strict";

const { auditServer } = require("graphql-http");

async function describe(result) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status === "ok") return entry;
  entry.reason = result.reason;
  const response = result.response;
  if (response) {
    // An audit may already have read the body; a clone may not be possible then.
    let body = null;
    try {
      body = await response.clone().text();
    } catch {
      body = "(already read)";
    }
    entry.response = {
      status: response.status,
      contentType: response.headers.get("content-type"),
      body: body && body.slice(0, 500),
    };
  }
  return entry;
}

async function main() {
  const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  const results = await auditServer({ url: input.url });
  process.stdout.write(JSON.stringify(await Promise.all(results.map(describe))));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
