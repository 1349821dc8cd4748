// Runs a query through Apollo Client from Node, as a mobile app would: with
// automatic persisted queries sent as hash-only GETs. Reads {url, query,
// variables, runs} as JSON on stdin; prints {results, requests} as JSON, where
// requests lists each HTTP request the client made: [method, status, hashOnly].
"use strict";

const crypto = require("node:crypto");
const { ApolloClient, HttpLink, InMemoryCache, gql } = require("@apollo/client/core");
const { createPersistedQueryLink } = require("@apollo/client/link/persisted-queries");

async function main() {
  const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  const requests = [];
  const recordingFetch = async (uri, options) => {
    const response = await fetch(uri, options);
    const method = (options && options.method) || "GET";
    const hashOnly = method === "GET" && !new URL(uri).searchParams.has("query");
    requests.push([method, response.status, hashOnly]);
    return response;
  };
  const sha256 = (text) => crypto.createHash("sha256").update(text).digest("hex");
  const link = createPersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
    new HttpLink({ uri: input.url, fetch: recordingFetch })
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  const results = [];
  for (let i = 0; i < input.runs; i++) {
    const { data, errors } = await client.query({
      query: gql(input.query),
      variables: input.variables,
      fetchPolicy: "no-cache",
    });
    results.push({ data, errors: errors || null });
  }
  process.stdout.write(JSON.stringify({ results, requests }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
