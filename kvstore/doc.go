// Package kvstore is a linearizable, replicated key/value store built on
// the paxos log: Get, Put and Append on string keys and byte values, with
// exactly-once execution of retried writes and snapshots that bound every
// replica's memory and disk.
//
// # Servers
//
// A Server wraps one paxos node. Every operation a client sends, Get
// included, is proposed to the log, and each server applies the chosen
// operations in slot order to its own copy of the map, so every replica
// goes through the same states, and a server cut off from a majority never
// answers (it blocks until the caller's context ends). Wire a node like so:
//
//	node, _ := paxos.New(pcfg)
//	srv, err := kvstore.NewServer(node, kvstore.Config{
//		Snapshots: snapshotLog,   // a log.Log of its own, durable for a real node
//		Peers:     peerAddrs,     // the other servers, to fetch snapshots from
//		Dialer:    dialer,
//	})
//	mux := transport.NewMux()
//	paxos.Register(mux, node)
//	kvstore.Register(mux, srv)
//	go node.Start(ctx, members)
//	go srv.Run(ctx)
//
// # Clients
//
// A Client (safe for concurrent use) sends each operation to one server at
// a time, moving to the next after an error or an attempt timeout, until
// one answers or the call's context ends. A client bound to one server
// lists only that server.
//
// # Exactly-once
//
// A Client has a session: a random 64-bit id, opened in the log by its
// first write, under which it numbers its requests. Replicas remember, per
// session, which writes they executed, and the client piggybacks on every
// request the number below which it needs no more outcomes, so they forget
// them at once. A write retried on another server, or chosen twice by the
// log after a leader change, is executed once. Reads are not remembered:
// a retried Get simply reads again, which is still linearizable.
//
// Sessions of idle clients expire, by a rule every replica applies at the
// same slot: each op carries its proposing server's clock reading, the
// largest reading applied so far is the log time, and a session with no
// op for Config.SessionTTL of log time is dropped. A write in an unknown
// session is not executed; the Client then opens a new session and
// retries, unless an earlier attempt of that write may have been applied,
// in which case it returns ErrSessionExpired (outcome unknown). Server
// clocks should be roughly synchronized (skew well below SessionTTL).
//
// # Snapshots
//
// When SnapshotEvery slots or SnapshotBytes bytes have been applied since
// the last snapshot, a server encodes its map, its session table and the
// slot it reached into chunks (Config.SnapshotChunkSize), writes them to
// its snapshot log with a manifest written last, then calls Compact and
// Done on its node so that the paxos logs are released, even while a peer
// is down: below the previous snapshot, so that one snapshot interval of
// log stays for peers that were down briefly. A restarted server loads its
// newest complete snapshot and replays the log from there. A server that fell behind what
// its peers still hold (or a new, empty one) fetches the newest snapshot
// of a peer over RouteSnapshot, streamed in chunks whose total size is not
// known up front, installs it atomically and replays the rest.
//
// A server calls Done only up to its snapshots, not up to every slot it
// applied, so that the cluster never forgets a slot that some server could
// still need to replay from its own snapshot after a restart (were every
// server to crash at once).
//
// # Errors
//
// See the package's error variables: ErrNoKey is an answer; ErrEmptyKey,
// ErrKeyTooLarge, ErrValueTooLarge and ErrUnknownOp refuse a request before
// anything is proposed; ErrSessionExpired and context errors leave a
// write's outcome unknown.
package kvstore
