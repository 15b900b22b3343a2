// Command kv is Synod's example service: a replicated key/value store
// (package kvstore) served over HTTP, with a command-line client and a load
// generator. It is what a newcomer runs first and what a user deploys on
// three machines.
//
// Usage:
//
//	kv [flags]                       a local cluster: 3 nodes in this process (see -h)
//	kv serve --id N --peers ... ...  one node of a cluster, one per process or machine
//	kv get KEY [--nodes URL,...]     read a key through the HTTP API
//	kv put KEY [VALUE]               set a key (VALUE from stdin when omitted)
//	kv append KEY [VALUE]            append to a key (acts as put on a missing key)
//	kv bench [flags]                 load generator against running nodes
//	kv certs [--dir DIR] NAME...     a throwaway CA and node certificates, to try TLS
//
// Each node keeps its paxos logs ("promise", "accepted", "recorded") and its
// kvstore snapshots ("snapshots") in one Badger database of its own, talks to
// its peers over transport/tcp (mutual TLS with -tls-ca, -tls-cert,
// -tls-key), and serves on its HTTP address:
//
//	GET  /kv/{key}   the value (200), or 404 if the key has none
//	PUT  /kv/{key}   set the key to the request body (204)
//	POST /kv/{key}   append the request body to the key (204)
//	GET  /status     JSON: node id, leader, Min/Max/applied slots, peers reachable, counters
//	GET  /metrics    Prometheus text exposition
//	/debug/pprof/    only with -pprof
//
// Every operation, reads included, goes through the replicated log, so a node
// cut off from a majority answers 503 (with Retry-After) once the request
// timeout passes, never stale data. Errors are plain text, or JSON when the
// request accepts application/json: 400 (empty key, malformed path), 404,
// 405 (with Allow), 413 (key or value over the limits, refused before
// anything is proposed), 503 (no quorum within the request timeout, or the
// node is shutting down; the outcome of a write is then unknown).
//
// The HTTP handlers of a node use one kvstore.Client bound to that node's own
// kvstore.Server, reached in-process, so each request is one operation of one
// exactly-once session: a retry inside the node executes once. A client that
// retries an append over HTTP after a 503 or a lost connection may apply it
// twice (kv append therefore retries on another node only when the first
// could not be reached at all).
package main
