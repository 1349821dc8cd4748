// Runs a query through Apollo Client from Node, as a mobile app would: with
// automatic persisted queries sent as hash-only GETs. Reads {url, query,
// variables, runs} as JSON on stdin; prints {results, requests} as JSON, where
// requests lists each HTTP request the client made: [method, status, hashOnly].
"use strict";

const { ApolloClient, InMemoryCache, gql } = require("@apollo/client/core");
const { mobileLink, readInput, run } = require("./apollo_link");

run(async () => {
  const input = readInput();
  const requests = [];
  const link = mobileLink(input.url, (method, uri, response) => {
    const hashOnly = method === "GET" && !new URL(uri).searchParams.has("query");
    requests.push([method, response.status, hashOnly]);
  });
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
});
